// Change verification: when planned work ends, were its checks made worse? Each check's level
// before the window (did it work; the median of its recent good runs: whole run, each phase,
// each step) is taken when the window opens, and compared with the first `runs` runs after it
// ends (run at once, then at the check's retry interval). Failing where it worked, or a phase,
// step or the whole run `slowerThan` times slower (and at least `minDelta` slower), is a
// regression: it stands (API, page, metric, the VaktChangeRegression alert) until the check is
// back at its pre-window level for `runs` runs in a row, or an operator accepts the new level.
import type { VerifySpec } from '../config/maintenance.js';
import { formatSeconds, median } from './detector.js';
import type { RunRecord } from './history.js';

/** A check's level before planned work. */
export interface Level {
  /** It worked (its last run succeeded) when the window opened. */
  working: boolean;
  /** Medians over the good runs before the window (seconds); absent without good runs. */
  total?: number;
  phases: Record<string, number>;
  steps: Record<string, number>;
  /** Good runs the medians come from. */
  runs: number;
}

/** One run after the window, as the comparison needs it. */
export interface Sample {
  ok: boolean;
  reason?: string;
  total: number;
  phases: Record<string, number>;
  steps: Record<string, number>;
}

/** The comparison's outcome. */
export type Finding =
  | { kind: 'verified'; total?: { before: number; after: number } }
  | { kind: 'failing'; reason?: string; failed: number; of: number }
  | { kind: 'slower'; what: 'run' | 'phase' | 'step'; name?: string; before: number; after: number; factor: number }
  /** Nothing to compare with: no good run before the window. */
  | { kind: 'unknown' };

/** The level from a check's recent runs (oldest first) before the window; disturbed and failed runs do not count. */
export function levelOf(runs: readonly RunRecord[], working: boolean): Level {
  const good = runs.filter((r) => r.result !== 'failed' && !r.disturbed);
  const phases = medians(good.map((r) => r.phases));
  const steps = medians(good.map((r) => r.steps ?? {}));
  return {
    working,
    ...(good.length > 0 ? { total: median(good.map((r) => r.durationSeconds)) } : {}),
    phases,
    steps,
    runs: good.length,
  };
}

/** Compares the runs after the window with the level before it. */
export function compare(before: Level, after: readonly Sample[], spec: VerifySpec): Finding {
  const failed = after.filter((s) => !s.ok);
  // Most runs after the window fail where the check worked before: the change broke it.
  if (before.working && failed.length * 2 > after.length) {
    const reason = mostCommon(failed.map((s) => s.reason).filter((r): r is string => r !== undefined));
    return { kind: 'failing', ...(reason !== undefined ? { reason } : {}), failed: failed.length, of: after.length };
  }
  if (before.total === undefined) return { kind: 'unknown' };
  const good = after.filter((s) => s.ok);
  if (good.length === 0) return { kind: 'verified' };
  const total = median(good.map((s) => s.total));
  const minDelta = spec.minDeltaMs / 1000;
  const worse = (b: number | undefined, a: number) => b !== undefined && a > b * spec.slowerThan && a - b >= minDelta;
  // The step or phase that got worst, by factor (a login whose password step went 40x is the finding even if the whole went 3x).
  // A check of several steps is read by its steps, the units its owner wrote (a slower `processing`
  // summed over a login's requests says less than which request slowed); one of a single request by its phases.
  let worst: Extract<Finding, { kind: 'slower' }> | undefined;
  const consider = (what: 'run' | 'phase' | 'step', name: string | undefined, b: number | undefined, a: number | undefined) => {
    if (a === undefined || b === undefined || !worse(b, a)) return;
    const factor = b > 0 ? a / b : Infinity;
    if (!worst || factor > worst.factor) worst = { kind: 'slower', what, ...(name !== undefined ? { name } : {}), before: b, after: a, factor };
  };
  const afterSteps = medians(good.map((s) => s.steps));
  const afterPhases = medians(good.map((s) => s.phases));
  if (Object.keys(afterSteps).length > 1) for (const [name, a] of Object.entries(afterSteps)) consider('step', name, before.steps[name], a);
  if (!worst) for (const [name, a] of Object.entries(afterPhases)) consider('phase', name, before.phases[name], a);
  if (!worst) consider('run', undefined, before.total, total);
  return worst ?? { kind: 'verified', total: { before: before.total, after: total } };
}

/** Whether one run after a regression is back at the level before the window. */
export function backToLevel(before: Level, s: Sample, spec: VerifySpec): boolean {
  return compare(before, [s], spec).kind === 'verified';
}

/** A finding in plain English (the journal, the log, the API; the page words it per language). */
export function describe(f: Finding, check: string, endedAt: string): string {
  const after = `after the planned work ended at ${endedAt}`;
  switch (f.kind) {
    case 'verified':
      return f.total
        ? `${after}, ${check} is as before (${formatSeconds(f.total.after)}, was ${formatSeconds(f.total.before)})`
        : `${after}, ${check} works as before`;
    case 'unknown':
      return `${after}, ${check} could not be compared: no good run before the work`;
    case 'failing':
      return `${after}, ${check} fails (${f.failed} of ${f.of} runs${f.reason !== undefined ? `, ${f.reason}` : ''}); it worked before`;
    case 'slower': {
      const what = f.what === 'run' ? '' : ` (${f.what} ${f.name ?? ''})`;
      return `${after}, ${check}${what} takes ${factorText(f.factor)} as long as before (${formatSeconds(f.after)}, was ${formatSeconds(f.before)})`;
    }
  }
}

export function factorText(x: number): string {
  return Number.isFinite(x) ? `${x < 10 ? x.toFixed(1).replace(/\.0$/, '') : Math.round(x)}×` : 'far longer';
}

/** Per name, the median of the values the records have for it. */
function medians(records: readonly Record<string, number>[]): Record<string, number> {
  const by = new Map<string, number[]>();
  for (const r of records) for (const [k, v] of Object.entries(r)) (by.get(k) ?? by.set(k, []).get(k))?.push(v);
  const out: Record<string, number> = {};
  for (const [k, vs] of by) out[k] = median(vs);
  return out;
}

function mostCommon(xs: readonly string[]): string | undefined {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  let best: string | undefined;
  for (const [k, c] of n) if (best === undefined || c > (n.get(best) as number)) best = k;
  return best;
}

/** A regression that stands: after which window, against which level, what was found. */
export interface Regression {
  window: string;
  title: string;
  /** When the window ended (epoch ms). */
  ended: number;
  level: Level;
  spec: VerifySpec;
  finding: Finding;
  message: string;
  /** When it was found (epoch ms). */
  since: number;
  /** Runs in a row back at the level since. */
  back: number;
}

/** A verification under way: the runs after the window, collected. */
interface Pending {
  window: string;
  title: string;
  ended: number;
  level: Level;
  spec: VerifySpec;
  samples: Sample[];
}

export interface VerifierHooks {
  /** Run the check again in `ms` (outside its schedule). */
  runAfter(check: string, ms: number): void;
  /** A verification finished: regressed or verified (a regression is also in `regressions`). */
  verdict(check: string, kind: 'regressed' | 'verified', r: Pick<Regression, 'window' | 'title' | 'ended' | 'message'>): void;
  /** A regression went: back at its level, or accepted. */
  cleared(check: string, r: Regression, why: string): void;
}

/** What the state file keeps, so a restart during a window or a standing regression loses neither. */
export interface VerifierSnapshot {
  levels: Record<string, Record<string, Level>>;
  regressions: Record<string, Regression>;
}

/** Levels taken when windows open, verifications under way, regressions standing. */
export class ChangeVerifier {
  /** Window id -> check -> level when it opened. */
  private levels = new Map<string, Map<string, Level>>();
  private readonly pending = new Map<string, Pending>();
  readonly regressions = new Map<string, Regression>();
  readonly counts = { regressed: 0, verified: 0 };

  constructor(private readonly hooks: VerifierHooks) {}

  /** A window opened with the check in it: keep its level (a verification or regression of an earlier window gives way to the new work). */
  opened(window: string, check: string, level: Level): void {
    let m = this.levels.get(window);
    if (!m) this.levels.set(window, (m = new Map<string, Level>()));
    // Restored after a restart: the level taken before the window, not one taken during it.
    if (!m.has(check)) m.set(check, level);
    this.pending.delete(check);
  }

  /** A window closed: its checks (those not in another window) are run at once and compared with their levels. */
  closed(window: string, title: string, ended: number, spec: VerifySpec | undefined, checks: readonly string[]): void {
    const levels = this.levels.get(window);
    this.levels.delete(window);
    if (!spec || !levels) return;
    for (const check of checks) {
      const level = levels.get(check);
      if (!level) continue;
      this.pending.set(check, { window, title, ended, level, spec, samples: [] });
      this.hooks.runAfter(check, 0);
    }
  }

  /** A check's run after planned work (`retryMs`: its retry interval, the pace of the runs after a window). */
  sample(check: string, s: Sample, retryMs: number, now: number): void {
    const p = this.pending.get(check);
    if (p) {
      p.samples.push(s);
      if (p.samples.length < p.spec.runs) {
        this.hooks.runAfter(check, retryMs);
        return;
      }
      this.pending.delete(check);
      const finding = compare(p.level, p.samples, p.spec);
      const message = describe(finding, check, clock(p.ended));
      if (finding.kind === 'failing' || finding.kind === 'slower') {
        const r: Regression = { window: p.window, title: p.title, ended: p.ended, level: p.level, spec: p.spec, finding, message, since: now, back: 0 };
        this.regressions.set(check, r);
        this.counts.regressed++;
        this.hooks.verdict(check, 'regressed', r);
      } else {
        this.counts.verified++;
        this.hooks.verdict(check, 'verified', { window: p.window, title: p.title, ended: p.ended, message });
      }
      return;
    }
    const r = this.regressions.get(check);
    if (!r) return;
    r.back = backToLevel(r.level, s, r.spec) ? r.back + 1 : 0;
    if (r.back >= r.spec.runs) {
      this.regressions.delete(check);
      this.hooks.cleared(check, r, `back at its level from before the planned work (${r.back} runs in a row)`);
    }
  }

  /** An operator accepts the check's new level: the regression goes. */
  accept(check: string, by: string): Regression | undefined {
    const r = this.regressions.get(check);
    if (!r) return undefined;
    this.regressions.delete(check);
    this.hooks.cleared(check, r, `accepted as the new level by ${by}`);
    return r;
  }

  /** A check that left the config. */
  forget(check: string): void {
    this.pending.delete(check);
    this.regressions.delete(check);
  }

  /** Whether a verification of the check is under way. */
  verifying(check: string): boolean {
    return this.pending.has(check);
  }

  snapshot(): VerifierSnapshot {
    const levels: VerifierSnapshot['levels'] = {};
    for (const [w, m] of this.levels) levels[w] = Object.fromEntries(m);
    return { levels, regressions: Object.fromEntries(this.regressions) };
  }

  /** Takes back a snapshot (what does not look like one is skipped). */
  restore(snap: unknown, known: (check: string) => boolean): void {
    if (typeof snap !== 'object' || snap === null) return;
    const s = snap as Partial<VerifierSnapshot>;
    if (typeof s.levels === 'object' && s.levels !== null)
      for (const [w, m] of Object.entries(s.levels)) {
        if (typeof m !== 'object' || m === null) continue;
        const map = new Map<string, Level>();
        for (const [c, l] of Object.entries(m)) if (known(c) && isLevel(l)) map.set(c, l);
        this.levels.set(w, map);
      }
    if (typeof s.regressions === 'object' && s.regressions !== null)
      for (const [c, r] of Object.entries(s.regressions))
        if (known(c) && typeof r === 'object' && r !== null && typeof r.message === 'string' && typeof r.window === 'string' && isLevel(r.level))
          this.regressions.set(c, r);
  }
}

function isLevel(l: unknown): l is Level {
  if (typeof l !== 'object' || l === null) return false;
  const x = l as Partial<Level>;
  return typeof x.working === 'boolean' && typeof x.phases === 'object' && x.phases !== null && typeof x.steps === 'object' && x.steps !== null;
}

/** 06:00, in the agent's time zone (the TZ of its process). */
export function clock(t: number): string {
  return new Date(t).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', hour12: false });
}
