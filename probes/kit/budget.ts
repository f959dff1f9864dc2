// A run's time budget: one object from the runner to the socket. It carries the run's signal
// (aborted at the check's timeout or when the agent stops) and its deadline, and hands out parts
// (an attempt, a query, the conversation) that end with the run or sooner, each with at most one
// timer of its own. Probes time nothing against their own clocks: they ask the budget.
import { ProbeAbortError } from './net.js';

export class Budget {
  private timer: NodeJS.Timeout | undefined;
  private release: (() => void) | undefined;

  /**
   * @param signal aborts when the run must stop (the runner's timeout, the agent stopping)
   * @param deadline when the runner aborts (performance.now() milliseconds)
   */
  constructor(
    readonly signal: AbortSignal,
    readonly deadline: number,
  ) {}

  /** Milliseconds until the deadline (0 once it passed). */
  left(): number {
    return Math.max(0, this.deadline - performance.now());
  }

  /**
   * When a probe's own work ends: a little (a tenth of what is left, at most 100 ms) before the
   * deadline, so a run whose conversation hangs still reports the phases that ran and times out
   * in the phase that hung, instead of being cut off whole.
   */
  end(): number {
    return this.deadline - Math.min(100, this.left() * 0.1);
  }

  /**
   * A part of the run: its signal aborts when the run's does (with its reason), or at `endAt`
   * (default: end()) with a ProbeAbortError saying `why`. One timer; `done()` when the part ends.
   */
  part(why: string, endAt: number = this.end()): Budget {
    const ctrl = new AbortController();
    const part = new Budget(ctrl.signal, Math.min(endAt, this.deadline));
    const parent = this.signal;
    if (parent.aborted) {
      ctrl.abort(parent.reason);
      return part;
    }
    const onParent = () => ctrl.abort(parent.reason);
    parent.addEventListener('abort', onParent, { once: true });
    part.timer = setTimeout(() => ctrl.abort(new ProbeAbortError(why)), Math.max(0, part.deadline - performance.now()));
    part.release = () => parent.removeEventListener('abort', onParent);
    return part;
  }

  /** Ends a part: its timer cleared, its listener on the run's signal removed (a run's own budget has neither). */
  done(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.release?.();
    this.release = undefined;
  }
}
