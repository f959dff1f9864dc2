// A check's recent runs for the API and the status page's sparkline, in a fixed-size ring of
// typed arrays. At 10,000 checks a list of 30 run objects per check (each with its own phases
// object and boxed numbers) was ~4.7 KiB per check and filled over the first 30 intervals, so
// the agent's memory grew for half an hour; this ring is ~1 KiB per check, allocated by the
// first run, and never grows after. Records are built only when someone asks (API, page).
import { RUN_RESULTS, type RunResult } from '../probes/types.js';
import { Ring } from './ring.js';

/** One finished run as kept for the API and the status page's sparkline. */
export interface RunRecord {
  time: number;
  result: RunResult;
  durationSeconds: number;
  phases: Record<string, number>;
  /** Seconds per step, for kinds with steps (a login flow); absent otherwise. */
  steps?: Record<string, number>;
  reason?: string;
  /** The agent's event loop stalled during the run beyond agent.maxLoopDelay (timings not trusted). */
  disturbed?: boolean;
}

/** Runs kept per check for the API and the sparkline. */
export const HISTORY = 30;
/** Distinct phase and step names a check's history keeps (a kind declares at most a handful of phases; a login flow has a few steps). */
const MAX_PHASES = 32;
/** Steps share the phases' blocks under names with this prefix (no phase name starts with it). */
const STEP = '\u0001';
const DISTURBED = 0x80;

export class RunHistory {
  /**
   * Every number of the ring in one array (a typed array costs ~200 bytes of its own, more than
   * the 30 values it holds): slots [0, capacity) are the runs' times, then their durations, then
   * one block of `capacity` per phase name seen (NaN: the phase did not run).
   */
  private numbers: Float64Array;
  /** RUN_RESULTS index, | DISTURBED. */
  private readonly flags: Uint8Array;
  /** Failure or degraded reasons: words from a fixed list, so references, not copies. */
  private readonly reasons: (string | undefined)[];
  private readonly phaseNames: string[] = [];
  private readonly ring: Ring;

  constructor(readonly capacity: number = HISTORY) {
    this.numbers = new Float64Array(2 * capacity);
    this.flags = new Uint8Array(capacity);
    this.reasons = new Array<string | undefined>(capacity).fill(undefined);
    this.ring = new Ring(capacity);
  }

  /** A history holding `records` (oldest first; the last `capacity` of them). */
  static of(records: Iterable<RunRecord>, capacity: number = HISTORY): RunHistory {
    const h = new RunHistory(capacity);
    for (const r of records) h.push(r);
    return h;
  }

  get length(): number {
    return this.ring.size;
  }

  push(r: RunRecord): void {
    const i = this.ring.next();
    const cap = this.capacity;
    const n = this.numbers;
    n[i] = r.time;
    n[cap + i] = r.durationSeconds;
    this.flags[i] = RUN_RESULTS.indexOf(r.result) | (r.disturbed ? DISTURBED : 0);
    this.reasons[i] = r.reason;
    for (let p = 0; p < this.phaseNames.length; p++) this.numbers[(2 + p) * cap + i] = Number.NaN;
    this.put(r.phases, '', i);
    if (r.steps) this.put(r.steps, STEP, i);
  }

  private put(values: Record<string, number>, prefix: string, i: number): void {
    const cap = this.capacity;
    for (const key in values) {
      const name = prefix + key;
      let p = this.phaseNames.indexOf(name);
      if (p < 0) {
        if (this.phaseNames.length >= MAX_PHASES) continue;
        p = this.phaseNames.push(name) - 1;
        // A new phase name (a kind has a handful; each is seen within the first runs): one more block.
        const grown = new Float64Array((2 + this.phaseNames.length) * cap);
        grown.set(this.numbers);
        grown.fill(Number.NaN, (2 + p) * cap);
        this.numbers = grown;
      }
      this.numbers[(2 + p) * cap + i] = values[key] as number;
    }
  }

  /** The kept runs, oldest first. */
  records(): RunRecord[] {
    const out: RunRecord[] = [];
    for (let k = 0; k < this.ring.size; k++) out.push(this.record(this.ring.slot(k)));
    return out;
  }

  last(): RunRecord | undefined {
    return this.ring.size === 0 ? undefined : this.record(this.ring.slot(this.ring.size - 1));
  }

  clear(): void {
    this.ring.clear();
    this.reasons.fill(undefined);
  }

  private record(i: number): RunRecord {
    const cap = this.capacity;
    const phases: Record<string, number> = {};
    let steps: Record<string, number> | undefined;
    this.phaseNames.forEach((name, p) => {
      const v = this.numbers[(2 + p) * cap + i] as number;
      if (Number.isNaN(v)) return;
      if (name.startsWith(STEP)) (steps ??= {})[name.slice(STEP.length)] = v;
      else phases[name] = v;
    });
    const flags = this.flags[i] as number;
    const reason = this.reasons[i];
    return {
      time: this.numbers[i] as number,
      result: RUN_RESULTS[flags & ~DISTURBED] as RunResult,
      durationSeconds: this.numbers[cap + i] as number,
      phases,
      ...(steps ? { steps } : {}),
      ...(reason !== undefined ? { reason } : {}),
      ...(flags & DISTURBED ? { disturbed: true } : {}),
    };
  }
}
