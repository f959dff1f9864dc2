// Turns run results into a check's state. A failure first makes the check `failing` and asks
// for a sooner retry; only when `retries` retries failed too is it `down`, so the worst-case
// detection time is timeout + retries x (retryInterval + timeout). Recovery needs `recoverAfter`
// consecutive successes. A successful run is `degraded` when the probe says so (sample loss,
// certificate expiry, ...) or when it was slow: above an absolute limit, or above
// `baselineFactor` x the check's learnt baseline (the median of its recent good runs, which
// slow runs do not enter, so a lasting slowdown is not learnt as normal; nor do runs whose
// timing the agent itself disturbed). Many state changes in
// a window flag the check as flapping.
import type { CheckConfig } from '../config/loader.js';
import type { ProbeResult } from '../probes/types.js';
import { Ring } from './ring.js';

export const CHECK_STATES = ['unknown', 'ok', 'degraded', 'failing', 'down'] as const;
export type CheckState = (typeof CHECK_STATES)[number];

export interface CheckStatus {
  state: CheckState;
  /** When the check entered this state (epoch ms). */
  since: number;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  flapping: boolean;
  /** Learnt normal duration in seconds (median of recent good runs), once enough runs were seen. */
  baseline?: number;
}

export interface Verdict {
  previous: CheckState;
  status: CheckStatus;
  changed: boolean;
  flappingChanged: boolean;
  /** Milliseconds after which the check should be run again to confirm a failure. */
  retryAfterMs?: number;
}

interface Memory {
  status: CheckStatus;
  /** Recent good run durations (seconds): a ring of baselineWindow slots, allocated by the first good run (a fixed size from then on, not a list that grows for 100 intervals). */
  window?: { values: Float64Array; ring: Ring };
  /** Times of recent state changes (epoch ms), for flapping. */
  changes: number[];
}

/** What the state file keeps per check: the baseline's window. */
export type DetectorSnapshot = Record<string, { window: number[] }>;

export class Detector {
  private readonly memory = new Map<string, Memory>();

  private mem(name: string): Memory {
    let m = this.memory.get(name);
    if (!m) {
      m = { status: { state: 'unknown', since: Date.now(), consecutiveFailures: 0, consecutiveSuccesses: 0, flapping: false }, changes: [] };
      this.memory.set(name, m);
    }
    return m;
  }

  status(name: string): CheckStatus {
    return this.mem(name).status;
  }

  forget(name: string): void {
    this.memory.delete(name);
  }

  /**
   * The run's result as the check sees it: the probe's, plus `degraded: slow` when a successful
   * run exceeded the check's absolute or baseline limit. Feeds the baseline with good runs.
   * A disturbed run (the agent's own event loop stalled during it) is judged on its result only:
   * its duration says more about the agent than the peer, so it neither makes the check slow
   * nor enters the baseline.
   */
  judge(check: CheckConfig, result: ProbeResult, seconds: number, disturbed = false): ProbeResult {
    const m = this.mem(check.name);
    const limits = check.degraded;
    if (!result.ok || disturbed) return result;
    let slow: string | undefined;
    if (limits.aboveMs !== undefined && seconds * 1000 > limits.aboveMs) {
      slow = `took ${formatSeconds(seconds)}, limit ${formatSeconds(limits.aboveMs / 1000)}`;
    }
    const baseline = m.status.baseline;
    if (slow === undefined && limits.baselineFactor !== undefined && baseline !== undefined && seconds > baseline * limits.baselineFactor) {
      slow = `took ${formatSeconds(seconds)}, ${(seconds / baseline).toFixed(1)}x its usual ${formatSeconds(baseline)} (limit ${limits.baselineFactor}x)`;
    }
    if (slow === undefined) this.learn(check, m, seconds);
    if (slow === undefined || result.degraded) return result;
    // For multi-step conversations (a login flow) say which step took the time.
    const slowest = result.steps?.reduce<(typeof result.steps)[number] | undefined>(
      (a, st) => (a === undefined || st.durationSeconds > a.durationSeconds ? st : a),
      undefined,
    );
    if (slowest && result.steps && result.steps.length > 1) slow += `; slowest step ${slowest.name} (${formatSeconds(slowest.durationSeconds)})`;
    return { ...result, degraded: { reason: 'slow', message: slow } };
  }

  update(check: CheckConfig, result: ProbeResult, at: number = Date.now()): Verdict {
    const m = this.mem(check.name);
    const s = m.status;
    const previous = s.state;
    let next: CheckState;
    let retryAfterMs: number | undefined;
    if (!result.ok) {
      s.consecutiveFailures++;
      s.consecutiveSuccesses = 0;
      if (s.consecutiveFailures > check.retries) next = 'down';
      else {
        next = previous === 'down' ? 'down' : 'failing';
        if (next === 'failing') retryAfterMs = check.retryIntervalMs;
      }
    } else {
      s.consecutiveSuccesses++;
      s.consecutiveFailures = 0;
      const healthy: CheckState = result.degraded ? 'degraded' : 'ok';
      if (previous === 'down' && s.consecutiveSuccesses < check.recoverAfter) next = 'down';
      else next = healthy;
    }
    const changed = next !== previous;
    if (changed) {
      s.state = next;
      s.since = at;
      if (previous !== 'unknown') m.changes.push(at);
    }
    const cutoff = at - check.flapping.windowMs;
    while (m.changes.length > 0 && (m.changes[0] as number) < cutoff) m.changes.shift();
    const flapping = m.changes.length > check.flapping.changes;
    const flappingChanged = flapping !== s.flapping;
    s.flapping = flapping;
    return { previous, status: s, changed, flappingChanged, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }

  snapshot(): DetectorSnapshot {
    const out: DetectorSnapshot = {};
    for (const [name, m] of this.memory) if (m.window && m.window.ring.size > 0) out[name] = { window: ordered(m) };
    return out;
  }

  /** Restores baselines saved by snapshot() (unknown checks and bad values are skipped). */
  restore(snapshot: DetectorSnapshot, checks: readonly CheckConfig[]): number {
    let restored = 0;
    for (const c of checks) {
      const w = snapshot[c.name]?.window;
      if (!Array.isArray(w)) continue;
      const good = w.filter((x): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0).slice(-c.degraded.baselineWindow);
      if (good.length === 0) continue;
      const m = this.mem(c.name);
      delete m.window;
      for (const x of good) push(m, x, c.degraded.baselineWindow);
      this.updateBaseline(c, m);
      restored++;
    }
    return restored;
  }

  private learn(check: CheckConfig, m: Memory, seconds: number): void {
    push(m, seconds, check.degraded.baselineWindow);
    this.updateBaseline(check, m);
  }

  private updateBaseline(check: CheckConfig, m: Memory): void {
    const n = m.window?.ring.size ?? 0;
    if (!m.window || n < check.degraded.baselineMinRuns) {
      delete m.status.baseline;
      return;
    }
    // The window's filled slots (slots [0, n), see Ring), sorted in a scratch array (no allocation per run).
    if (scratch.length < n) scratch = new Float64Array(Math.max(n, 2 * scratch.length));
    const sorted = scratch.subarray(0, n);
    sorted.set(m.window.values.subarray(0, n));
    sorted.sort();
    m.status.baseline = middle(sorted);
  }
}

let scratch = new Float64Array(128);

/** Adds a duration to the window (a new or resized window starts from the durations it kept). */
function push(m: Memory, seconds: number, size: number): void {
  if (!m.window || m.window.ring.capacity !== size) {
    const kept = ordered(m).slice(-size);
    m.window = { values: new Float64Array(size), ring: new Ring(size) };
    for (const x of kept) m.window.values[m.window.ring.next()] = x;
  }
  m.window.values[m.window.ring.next()] = seconds;
}

/** The window's durations, oldest first. */
function ordered(m: Memory): number[] {
  const w = m.window;
  const out: number[] = [];
  if (w) for (let k = 0; k < w.ring.size; k++) out.push(w.values[w.ring.slot(k)] as number);
  return out;
}

export function median(xs: readonly number[]): number {
  return middle([...xs].sort((a, b) => a - b));
}

/** The median of values already sorted. */
function middle(s: ArrayLike<number>): number {
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** 120 ms, 3.40 s. */
export function formatSeconds(seconds: number): string {
  return seconds < 1 ? `${(seconds * 1000).toFixed(0)} ms` : `${seconds.toFixed(2)} s`;
}
