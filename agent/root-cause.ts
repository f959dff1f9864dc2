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

/** What blame needs to know of a check. */
export interface BlameCheck {
  name: string;
  dependsOn: readonly string[];
  timeoutMs: number;
}

/** A state that counts as broken for blame (a failure confirmed, or being confirmed). */
export function isBroken(state: CheckState): boolean {
  return BROKEN.has(state);
}

/** Each check's dependents (the reverse of dependsOn), among `checks`. */
export function dependentsOf(checks: Iterable<BlameCheck>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of checks)
    for (const dep of c.dependsOn) {
      const list = out.get(dep);
      if (list) list.push(c.name);
      else out.set(dep, [c.name]);
    }
  return out;
}

/**
 * Blame waits for the evidence, like Icinga's on-demand parent checks. When a check with
 * `dependsOn` breaks, its dependencies run at once, and until they have answered it is not its
 * own root cause: a dependent that fails faster than its dependency (the host's resolver gives up
 * at once, the dns check waits out its timeout) does not open an incident, or page, in its own
 * name for those seconds. When a check recovers, its broken dependents run at once, and until
 * they have answered they keep the cause they had: one that runs less often than its dependency
 * is not left blamed on itself after the dependency was fixed. A wait ends when the runs asked
 * for have finished, or after twice their timeout and a second (a run stuck in a queue).
 */
export class PendingBlame {
  /** Check -> the runs its blame waits for, and until when. */
  private readonly waiting = new Map<string, { until: number; runs: Set<string> }>();

  /**
   * `check` went from `was` to `now`; returns the checks to run at once. `lookup`: this agent's
   * checks (a dependency another shard runs is not asked), `dependents`: the checks depending on it.
   */
  changed(
    check: BlameCheck,
    was: CheckState,
    now: CheckState,
    at: number,
    lookup: (name: string) => (BlameCheck & { state: CheckState }) | undefined,
    dependents: readonly string[],
  ): string[] {
    const ask: string[] = [];
    if (isBroken(now) && !isBroken(was)) {
      const deps = check.dependsOn.map(lookup).filter((d) => d !== undefined && !isBroken(d.state)) as (BlameCheck & { state: CheckState })[];
      if (deps.length > 0) {
        this.wait(check.name, deps, at);
        ask.push(...deps.map((d) => d.name));
      }
    } else if (isBroken(was) && !isBroken(now)) {
      for (const name of dependents) {
        const d = lookup(name);
        if (!d || !isBroken(d.state)) continue;
        this.wait(name, [d], at);
        ask.push(name);
      }
    }
    return ask;
  }

  /** A run of `name` finished: blame that waited only for it goes ahead. True when some wait ended. */
  ran(name: string): boolean {
    let settled = false;
    for (const [check, w] of this.waiting)
      if (w.runs.delete(name) && w.runs.size === 0) {
        this.waiting.delete(check);
        settled = true;
      }
    return settled;
  }

  /**
   * Holds back blame that waits: a check that would be its own root cause keeps its previous
   * cause (`previous`), or has none yet. Waits past their time end here.
   */
  apply(causes: Map<string, string>, previous: (name: string) => string | undefined, at: number): void {
    for (const [check, w] of this.waiting) {
      if (w.until <= at) {
        this.waiting.delete(check);
        continue;
      }
      if (causes.get(check) !== check) continue;
      const before = previous(check);
      if (before !== undefined && before !== check) causes.set(check, before);
      else causes.delete(check);
    }
  }

  /** When the next wait runs out (epoch ms), if any does. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const w of this.waiting.values()) next = next === undefined ? w.until : Math.min(next, w.until);
    return next;
  }

  /** Whether `check`'s blame waits now. */
  waits(check: string): boolean {
    return this.waiting.has(check);
  }

  forget(name: string): void {
    this.waiting.delete(name);
    this.ran(name);
  }

  private wait(check: string, runs: readonly BlameCheck[], at: number): void {
    const until = at + Math.max(...runs.map((r) => 2 * r.timeoutMs)) + 1000;
    const w = this.waiting.get(check);
    if (w) {
      for (const r of runs) w.runs.add(r.name);
      w.until = Math.max(w.until, until);
    } else this.waiting.set(check, { until, runs: new Set(runs.map((r) => r.name)) });
  }
}
