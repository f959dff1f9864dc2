// Root cause over `dependsOn` (transitive). A check that is down while something it depends on
// is down gets as cause the deepest down dependency on that path; a down check whose
// dependencies are fine is its own root cause. Incidents group a root cause with the checks it
// takes down. Nothing is hidden: every check keeps its own state; this only adds the "why".
import type { CheckState } from './detector.js';

export interface Node {
  name: string;
  dependsOn: readonly string[];
  state: CheckState;
  /** When the check entered its state (epoch ms). */
  since: number;
}

export interface Incident {
  /** The root cause: a down check whose own dependencies are fine. */
  cause: string;
  /** When the cause went down (epoch ms). */
  since: number;
  /** Down checks whose root cause this is (without the cause itself). */
  affected: string[];
}

/** Failed states that count when looking for a cause ("failing" is a failure being confirmed). */
const BROKEN: ReadonlySet<CheckState> = new Set(['down', 'failing']);

/**
 * Root cause of every down check: name -> cause (the check itself when its dependencies are
 * fine). Checks that are not down have no entry.
 */
export function rootCauses(nodes: ReadonlyMap<string, Node>): Map<string, string> {
  const memo = new Map<string, string | null>();
  const visiting = new Set<string>();
  // The deepest broken check reachable through broken dependencies, starting at `name`
  // (itself when none of its dependencies is broken). Config validation forbids cycles; the
  // visiting set only keeps a bad graph from recursing forever.
  const deepest = (name: string): string | null => {
    const cached = memo.get(name);
    if (cached !== undefined) return cached;
    const node = nodes.get(name);
    if (!node || !BROKEN.has(node.state) || visiting.has(name)) return null;
    visiting.add(name);
    let found: string | null = null;
    for (const dep of node.dependsOn) {
      const d = deepest(dep);
      if (d !== null) {
        found = d;
        break;
      }
    }
    visiting.delete(name);
    const result = found ?? name;
    memo.set(name, result);
    return result;
  };
  const causes = new Map<string, string>();
  for (const node of nodes.values()) {
    if (node.state !== 'down') continue;
    const c = deepest(node.name);
    if (c !== null) causes.set(node.name, c);
  }
  return causes;
}

/** Open incidents: one per root cause that is down, with the checks it affects. */
export function incidents(nodes: ReadonlyMap<string, Node>, causes: ReadonlyMap<string, string>): Incident[] {
  const byCause = new Map<string, string[]>();
  for (const [check, cause] of causes) {
    const list = byCause.get(cause) ?? [];
    if (check !== cause) list.push(check);
    byCause.set(cause, list);
  }
  const out: Incident[] = [];
  for (const [cause, affected] of byCause) {
    const node = nodes.get(cause);
    // A cause still being confirmed (failing) opens no incident yet; its dependents wait too.
    if (!node || node.state !== 'down') continue;
    out.push({ cause, since: node.since, affected: affected.sort() });
  }
  return out.sort((a, b) => a.since - b.since || a.cause.localeCompare(b.cause));
}
