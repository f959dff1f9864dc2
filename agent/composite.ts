// A service's state from its members' (config/services.ts): up while at least `minUp` members
// work, `degraded` while some do not (or are slow), `down` when fewer than `minUp` work and that
// is confirmed. Planned work: a member in a window, or down because its root cause is, is held:
// its failure is no problem of the service (no degradation, no page); what it does while held
// still counts when it works. A service whose shortfall is all held members reads `maintenance`;
// one short because a member failed outside planned work is down, whatever else is held (users
// cannot reach it; the window on the other path is why it had no redundancy left).
// Re-evaluated whenever a member's state changes: O(members), no timers.
import type { ServiceSpec } from '../config/services.js';
import type { CheckState } from './detector.js';

export type ServiceState = CheckState | 'maintenance';

export const SERVICE_STATES: readonly ServiceState[] = ['unknown', 'ok', 'degraded', 'failing', 'down', 'maintenance'];

/** What the evaluation reads of a member. */
export interface MemberState {
  state: CheckState;
  /** In planned work: in a window itself, or down because its root cause is. */
  held: boolean;
}

/** How the members stand. */
export interface MemberTally {
  /** Members that run here. */
  total: number;
  /** Working now (ok or degraded), held or not. */
  up: number;
  /** Not working (failing or down) and not held. */
  down: number;
  /** Working but degraded, not held. */
  slow: number;
  /** Not working and held (planned work). */
  held: number;
}

export interface ServiceVerdict {
  state: ServiceState;
  /** The state the members show, planned work or not (what `maintenance` stands for). */
  observed: CheckState;
  tally: MemberTally;
}

/**
 * The service's state from its members' states.
 * @example evaluate([{ state: 'ok', held: false }, { state: 'down', held: false }], 1).state // 'degraded'
 */
export function evaluate(members: readonly MemberState[], minUp: number): ServiceVerdict {
  const tally: MemberTally = { total: members.length, up: 0, down: 0, slow: 0, held: 0 };
  let failing = 0;
  let unknown = 0;
  let confirmedDown = 0;
  for (const m of members) {
    const working = m.state === 'ok' || m.state === 'degraded';
    if (working) tally.up++;
    if (m.state === 'unknown') {
      unknown++;
      continue;
    }
    if (m.held) {
      if (!working) tally.held++;
      continue;
    }
    if (m.state === 'degraded') tally.slow++;
    else if (m.state === 'failing') {
      tally.down++;
      failing++;
    } else if (m.state === 'down') {
      tally.down++;
      confirmedDown++;
    }
  }
  const observed = observedState(tally, failing, unknown, minUp);
  if (tally.up >= minUp) return { state: tally.down > 0 || tally.slow > 0 ? 'degraded' : 'ok', observed, tally };
  // Short of minUp: members not yet judged (failing, unknown) may still make it.
  if (tally.up + failing + unknown >= minUp) return { state: failing > 0 ? 'failing' : 'unknown', observed, tally };
  // Short for good: planned work alone, or a failure outside it.
  if (confirmedDown === 0 && failing === 0 && unknown === 0 && tally.held > 0) return { state: 'maintenance', observed, tally };
  return { state: 'down', observed, tally };
}

/** The state planned work aside: as if no member were held. */
function observedState(t: MemberTally, failing: number, unknown: number, minUp: number): CheckState {
  if (t.up >= minUp) return t.down + t.held > 0 || t.slow > 0 ? 'degraded' : 'ok';
  if (t.up + failing + unknown >= minUp) return failing > 0 ? 'failing' : 'unknown';
  return 'down';
}

/** A service as the agent runs it: its config, state and since when. */
export interface ServiceView {
  config: ServiceSpec;
  state: ServiceState;
  observed: CheckState;
  /** When the service entered its state (epoch ms). */
  since: number;
  tally: MemberTally;
}

/**
 * The services whose members this agent runs, each re-evaluated when a member changes.
 * `member(name)` reads a member's state now (undefined: not run here).
 */
export class Services {
  private readonly views = new Map<string, ServiceView>();
  /** Service name by member check name. */
  private readonly byMember = new Map<string, string>();

  constructor(private readonly member: (name: string) => MemberState | undefined) {}

  /** Sets the services to evaluate (start and reload): an unchanged service keeps its state and since. */
  configure(specs: readonly ServiceSpec[], now: number = Date.now()): { added: string[]; removed: string[] } {
    const wanted = new Map(specs.map((s) => [s.name, s]));
    const removed = [...this.views.keys()].filter((n) => !wanted.has(n));
    for (const n of removed) this.views.delete(n);
    this.byMember.clear();
    const added: string[] = [];
    for (const spec of specs) {
      for (const m of spec.members) this.byMember.set(m, spec.name);
      const view = this.views.get(spec.name);
      if (view) view.config = spec;
      else {
        this.views.set(spec.name, { config: spec, state: 'unknown', observed: 'unknown', since: now, tally: { total: 0, up: 0, down: 0, slow: 0, held: 0 } });
        added.push(spec.name);
      }
      this.evaluate(spec.name, now);
    }
    return { added, removed };
  }

  /** The service a check is a member of. */
  serviceOf(check: string): string | undefined {
    return this.byMember.get(check);
  }

  /** Evaluates a service again; returns its view when anything about it changed (state or tally). */
  evaluate(name: string, now: number = Date.now()): { view: ServiceView; previous: ServiceState } | undefined {
    const view = this.views.get(name);
    if (!view) return undefined;
    const members = view.config.members.flatMap((m) => {
      const s = this.member(m);
      return s ? [s] : [];
    });
    const v = evaluate(members, view.config.minUp);
    const previous = view.state;
    const same = v.state === view.state && v.observed === view.observed && sameTally(v.tally, view.tally);
    if (same) return undefined;
    if (v.state !== view.state) view.since = now;
    view.state = v.state;
    view.observed = v.observed;
    view.tally = v.tally;
    return { view, previous };
  }

  get(name: string): ServiceView | undefined {
    return this.views.get(name);
  }

  list(): ServiceView[] {
    return [...this.views.values()];
  }
}

function sameTally(a: MemberTally, b: MemberTally): boolean {
  return a.total === b.total && a.up === b.up && a.down === b.down && a.slow === b.slow && a.held === b.held;
}
