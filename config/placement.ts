// Which checks an agent runs: the one place a config's checks are placed on agents. A check with
// `sites:` runs only at those sites, one without at every site. The agent runs what placeChecks
// returns; the loader uses the same rules to refuse a selection that would not hold together
// (a check whose dependsOn names a check that does not run where it runs). Within a site, the
// checks are spread over shards (config/shard.ts); a dependsOn across shards is allowed: the
// agent exports it (vakt_check_remote_dependency) and the shipped rules resolve it. A disabled
// check (`enabled: false`) runs nowhere: the agent it would be placed on lists it as disabled.
// The members of a service (config/services.ts) are sharded by the service's name, not their
// own, so one agent runs them all and can tell whether the service is up.
import { shardOf, type Shard } from './shard.js';

/** What placement reads of a check. */
export interface Placeable {
  name: string;
  /** The sites the check runs at; absent: every site. */
  sites?: readonly string[] | undefined;
  dependsOn: readonly string[];
  /** false: the check is configured but runs nowhere. */
  enabled?: boolean | undefined;
}

/** A check placed here depends on a check another shard runs. */
export interface RemoteDependency {
  check: string;
  dependsOn: string;
}

export interface PlacementOptions {
  /** This agent's site (--site, VAKT_SITE or agent.labels.site); undefined: it has none and runs only the checks without `sites`. */
  site?: string | undefined;
  /** This agent's shard of the site's checks (--shard i/n); undefined: all of them. */
  shard?: Shard | undefined;
}

export interface Placement<C extends Placeable> {
  /** The checks this agent runs, in config order. */
  checks: C[];
  /** The checks of the config that run elsewhere, not at this agent (at other sites, or on other shards of this one). */
  elsewhere: C[];
  /** The disabled checks that would be placed here: not run, not counted as owned; the agent lists them as disabled. */
  disabled: C[];
  /** dependsOn entries of the checks placed here that name a check another shard of this site runs. */
  remote: RemoteDependency[];
}

/**
 * The checks of `config` this agent runs, and those it leaves to others: first the site (a check
 * with `sites:` runs only there), then the shard (rendezvous hashing of the check's name, so
 * every shard of a site agrees without talking to the others).
 * @example placeChecks(config, { site: 'clinic-vejle', shard: { index: 1, count: 3 } }).checks
 */
export function placeChecks<C extends Placeable>(
  config: { readonly checks: readonly C[]; readonly services?: readonly { name: string; members: readonly string[] }[] },
  options: PlacementOptions,
): Placement<C> {
  const placed: Placement<C> = { checks: [], elsewhere: [], disabled: [], remote: [] };
  const shard = options.shard && options.shard.count > 1 ? options.shard : undefined;
  const atSite = new Set<string>();
  const serviceOf = shard === undefined ? undefined : memberships(config.services ?? []);
  for (const c of config.checks) {
    const here = runsAt(c, options.site);
    const mine = here && (shard === undefined || shardOf(serviceOf?.get(c.name) ?? c.name, shard.count) === shard.index);
    if (c.enabled === false) {
      // A dependsOn naming it is no remote dependency: nothing runs it.
      if (mine) placed.disabled.push(c);
      continue;
    }
    if (here) atSite.add(c.name);
    (mine ? placed.checks : placed.elsewhere).push(c);
  }
  if (shard !== undefined) {
    const local = new Set(placed.checks.map((c) => c.name));
    for (const c of placed.checks) for (const dep of c.dependsOn) if (atSite.has(dep) && !local.has(dep)) placed.remote.push({ check: c.name, dependsOn: dep });
  }
  return placed;
}

/** The service each check is a member of, by check name. */
function memberships(services: readonly { name: string; members: readonly string[] }[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const s of services) for (const m of s.members) map.set(m, s.name);
  return map;
}

/** Whether a check runs at a site (undefined: an agent without a site). */
export function runsAt(check: Pick<Placeable, 'sites'>, site: string | undefined): boolean {
  return check.sites === undefined || (site !== undefined && check.sites.includes(site));
}

/** Stands for every site a config does not name (never a valid site name, so no check names it). */
export const ANY_OTHER_SITE = 'any other site';

/** Check `check`'s dependsOn entry `dep` names a check that does not run at `sites`, where `check` does. */
export interface SplitDependency {
  check: number;
  dep: number;
  sites: string[];
}

/**
 * The dependsOn entries an agent at one of `sites` could not follow: the check runs there and the
 * check it depends on does not, so that agent could not tell the root cause. Checks undefined
 * (refused by the schema) and unknown names are skipped: they are reported on their own.
 */
export function splitDependencies(checks: readonly (Placeable | undefined)[], sites: readonly string[]): SplitDependency[] {
  const byName = new Map<string, Placeable>();
  for (const c of checks) if (c !== undefined && !byName.has(c.name)) byName.set(c.name, c);
  const split: SplitDependency[] = [];
  checks.forEach((c, i) =>
    c?.dependsOn.forEach((name, j) => {
      const dep = byName.get(name);
      if (dep === undefined) return;
      const at = sites.filter((s) => runsAt(c, s) && !runsAt(dep, s));
      if (at.length > 0) split.push({ check: i, dep: j, sites: at });
    }),
  );
  return split;
}
