// Watches the agent's own event loop, so that each run can tell whether its timings can be
// trusted. vakt measures latency on the loop it computes on: when that loop stalls (a long
// synchronous task, a major GC, a starved CPU), every timestamp taken during the stall is late
// and a run overlapping it reads slower than the network was. While runs are in flight, a
// repeating timer notes how late it fires (an idle agent has no timer: each wake-up of an
// otherwise sleeping process costs about 0.1 ms of CPU here); stalls are kept in a small ring
// with their end time, and the runner asks for the worst stall that overlapped a run.

/** Stalls shorter than this are not kept (timer granularity and ordinary callbacks). */
const KEEP_ABOVE_MS = 2;
/** How many recent stalls are kept (at one per tick, well over the longest check timeout at 10 ms ticks). */
const RING = 8192;

export class LoopMonitor {
  private timer: NodeJS.Timeout | undefined;
  private last = performance.now();
  private readonly ends = new Float64Array(RING);
  private readonly lengths = new Float64Array(RING);
  /** Index of the next slot to write; slots before it (mod RING) are the newest. */
  private next = 0;
  private stored = 0;
  /** Runs in flight: the timer ticks only while there is one (an idle agent's loop sleeps). */
  private watching = 0;
  private stopped = false;

  /** @param tickMs how often the timer fires while runs are in flight; a stall is seen to within this. */
  constructor(private readonly tickMs = 10) {}

  /** A run begins: watch the loop until every run has ended. */
  enter(): void {
    if (this.watching++ > 0 || this.stopped) return;
    this.last = performance.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  /** A run has ended (after its stall was asked for). */
  leave(): void {
    if (this.watching === 0 || --this.watching > 0) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** No more watching (the agent stops). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = performance.now();
    const stall = now - this.last - this.tickMs;
    this.last = now;
    if (stall > KEEP_ABOVE_MS) this.record(now, stall);
  }

  private record(end: number, length: number): void {
    this.ends[this.next] = end;
    this.lengths[this.next] = length;
    this.next = (this.next + 1) % RING;
    if (this.stored < RING) this.stored++;
  }

  /**
   * The longest stall (ms) that overlapped [from, to] (performance.now() times), including one
   * that is just ending at `to` (the timer has not fired yet because the loop was busy).
   */
  worstStall(from: number, to: number): number {
    let worst = this.timer ? Math.max(0, to - this.last - this.tickMs) : 0;
    for (let n = 0, i = this.next; n < this.stored; n++) {
      i = (i - 1 + RING) % RING;
      const end = this.ends[i] as number;
      if (end < from) break;
      const length = this.lengths[i] as number;
      if (end - length < to && length > worst) worst = length;
    }
    return worst;
  }
}
