// Services made of redundant checks (`services:`): a name, a title and group for the status
// page, and `anyOf`, the member checks (names or globs), of which `minUp` must work for the
// service to be up. Resolved here against the config's checks; evaluated at run time by
// agent/composite.ts. Members are checks, never services (no nesting, so no cycles), each in at
// most one service, all run at the same sites; placement (config/placement.ts) puts a service's
// members on one shard, so one agent sees them all.
import { checkMatcher } from './maintenance.js';
import { plainText, type ParsedService } from './schema.js';
import type { Language } from '../probes/kit/kind.js';

export interface ServiceSpec {
  name: string;
  /** The plain title (the API's): as written, the first of a map of languages, or the name. */
  title: string;
  /** The title per language, when written as a map (the status page's). */
  titles?: Partial<Record<Language, string>>;
  group: string;
  /** The member checks that run (enabled), in the order anyOf picks them. */
  members: string[];
  minUp: number;
  /** What the members are, in the plural ("firewall paths"), as written; absent: the page's own word. */
  memberNoun?: string | Partial<Record<Language, string>>;
}

/** What resolving reads of a check. */
interface Member {
  name: string;
  group: string;
  sites?: readonly string[] | undefined;
  enabled?: boolean | undefined;
}

/**
 * The configured services, resolved and checked against the checks; `err` gets each problem at
 * its key path within the service (services[i]).
 */
export function resolveServices(
  services: readonly ParsedService[],
  checks: readonly Member[],
  err: (index: number, path: (string | number)[], message: string) => void,
): ServiceSpec[] {
  const out: ServiceSpec[] = [];
  const names = new Map<string, number>();
  const checkNames = new Set(checks.map((c) => c.name));
  const serviceNames = new Set(services.map((s) => s.name));
  /** Which service (index) each check is a member of. */
  const owner = new Map<string, number>();
  services.forEach((s, i) => {
    let ok = true;
    const fail = (path: (string | number)[], message: string) => {
      ok = false;
      err(i, path, message);
    };
    const before = names.get(s.name);
    if (before !== undefined) fail(['name'], `expected each service name once, found ${JSON.stringify(s.name)} again (services[${before}])`);
    else names.set(s.name, i);
    if (checkNames.has(s.name)) fail(['name'], `expected a name no check has, found ${JSON.stringify(s.name)} (a check of that name is configured)`);
    const picked: Member[] = [];
    const pickedBy = new Map<string, number>();
    s.anyOf.forEach((pattern, j) => {
      if (!pattern.includes('*') && serviceNames.has(pattern) && !checkNames.has(pattern)) {
        fail(['anyOf', j], `expected a check, found service ${JSON.stringify(pattern)} (the members of a service are checks, not services)`);
        return;
      }
      const picks = checkMatcher(pattern);
      const matches = checks.filter((c) => picks(c.name));
      if (matches.length === 0) {
        fail(['anyOf', j], `expected a check name or a glob that picks one, found ${JSON.stringify(pattern)} (no check matches)`);
        return;
      }
      for (const c of matches) {
        const first = pickedBy.get(c.name);
        if (first !== undefined) {
          fail(['anyOf', j], `expected each check once, found ${c.name} again (also picked by anyOf[${first}])`);
          continue;
        }
        pickedBy.set(c.name, j);
        const other = owner.get(c.name);
        if (other !== undefined && other !== i) {
          fail(['anyOf', j], `expected a check of no other service, found ${c.name} (a member of services[${other}] ${services[other]?.name ?? ''})`);
          continue;
        }
        owner.set(c.name, i);
        picked.push(c);
      }
    });
    const first = picked[0];
    const where = (m: Member) => (m.sites === undefined ? 'every site' : m.sites.join(', '));
    const mismatch = first ? picked.find((m) => where(m) !== where(first)) : undefined;
    if (first && mismatch) {
      fail(
        ['anyOf', pickedBy.get(mismatch.name) ?? 0],
        `expected members that run at the same sites, found ${mismatch.name} at ${where(mismatch)} and ${first.name} at ${where(first)}`,
      );
    }
    // A member switched off (enabled: false) counts neither way; minUp must still be reachable.
    const running = picked.filter((m) => m.enabled !== false);
    if (ok && s.minUp > running.length) {
      const off = picked.length - running.length;
      fail(['minUp'], `expected at most the number of members that run (${running.length}${off > 0 ? `; ${off} switched off` : ''}), found ${s.minUp}`);
    }
    if (!ok || !first) return;
    out.push({
      name: s.name,
      title: s.title !== undefined ? plainText(s.title) : s.name,
      ...(typeof s.title === 'object' ? { titles: s.title } : {}),
      group: s.group ?? first.group,
      members: running.map((m) => m.name),
      minUp: s.minUp,
      ...(s.memberNoun !== undefined ? { memberNoun: s.memberNoun } : {}),
    });
  });
  return out;
}
