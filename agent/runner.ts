// Runs one check once: takes a slot under the global concurrency cap, hands the probe an
// AbortSignal that fires at the check's timeout (or when the agent stops), and turns a probe
// that throws, hangs past its deadline or returns nonsense into a failed result with a reason.
import { setMaxListeners } from 'node:events';
import type { CheckConfig } from '../config/loader.js';
import { PROBES } from '../probes/registry.js';
import { FAILURE_REASONS, type Probe, type ProbeResult } from '../probes/types.js';
import type { Logger } from './log.js';

/** A counting semaphore: the cap on probes in flight. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private max: number) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  setMax(max: number): void {
    this.max = max;
    while (this.active < this.max && this.waiting.length > 0) this.grant();
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const entry = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error('stopped while waiting for a probe slot'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  release(): void {
    this.active--;
    if (this.waiting.length > 0 && this.active < this.max) this.grant();
  }

  private grant(): void {
    const next = this.waiting.shift();
    if (next) {
      this.active++;
      next();
    }
  }
}

export interface RunOutcome {
  result: ProbeResult;
  /** Wall-clock start of the probe (epoch ms). */
  startedAt: number;
  /** Seconds the probe ran. */
  duration: number;
  /** Seconds spent waiting for a slot under the concurrency cap. */
  queueWait: number;
}

/** How long a probe may overrun its aborted deadline before the runner stops waiting for it. */
const ABORT_GRACE_MS = 1000;

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

export class Runner {
  /** Per-check probe memory, keyed by the check's config object (a changed check gets a new one). */
  private readonly memories = new WeakMap<CheckConfig, Map<string, unknown>>();

  constructor(
    private readonly root: AbortSignal,
    private readonly limiter: Limiter,
    private readonly log: Logger,
    private readonly probes: Readonly<Record<string, Probe<never>>> = PROBES,
  ) {
    // Every run in flight and every run waiting for a slot listens on the root signal.
    setMaxListeners(0, root);
  }

  /** Runs the check once. Resolves undefined when the agent stopped before the probe began. */
  async run(check: CheckConfig): Promise<RunOutcome | undefined> {
    const queuedAt = performance.now();
    try {
      await this.limiter.acquire(this.root);
    } catch {
      return undefined;
    }
    const queueWait = (performance.now() - queuedAt) / 1000;
    const ctrl = new AbortController();
    const onRootAbort = () => ctrl.abort(this.root.reason);
    this.root.addEventListener('abort', onRootAbort, { once: true });
    const deadline = performance.now() + check.timeoutMs;
    const timer = setTimeout(() => ctrl.abort(new TimeoutError(`check timeout of ${check.timeoutMs}ms`)), check.timeoutMs);
    let grace: NodeJS.Timeout | undefined;
    const startedAt = Date.now();
    const t0 = performance.now();
    try {
      if (this.root.aborted) return undefined;
      const probe = this.probes[check.kind];
      if (!probe) throw new Error(`no probe registered for kind ${check.kind}`);
      const log = this.log.child({ check: check.name, kind: check.kind });
      let memory = this.memories.get(check);
      if (!memory) this.memories.set(check, (memory = new Map<string, unknown>()));
      const pending = probe.run({ target: check.target, targets: check.targets, options: check.options as never, signal: ctrl.signal, deadline, log, secrets: check.secrets, memory });
      const overrun = new Promise<'overrun'>((resolve) => {
        const arm = () => {
          grace = setTimeout(() => resolve('overrun'), ABORT_GRACE_MS);
        };
        if (ctrl.signal.aborted) arm();
        else ctrl.signal.addEventListener('abort', arm, { once: true });
      });
      const settled = await Promise.race([pending, overrun]);
      const duration = (performance.now() - t0) / 1000;
      if (settled === 'overrun') {
        pending.catch(() => undefined);
        this.log.error({ check: check.name, kind: check.kind }, 'probe ignored its abort signal; result abandoned');
        return { result: timeoutResult(check, 'probe did not stop after its deadline'), startedAt, duration, queueWait };
      }
      const timedOut = ctrl.signal.aborted && ctrl.signal.reason instanceof TimeoutError;
      return { result: this.vet(check, settled, timedOut), startedAt, duration, queueWait };
    } catch (err) {
      this.log.error({ check: check.name, kind: check.kind, err }, 'probe threw: reported as reason internal');
      return {
        result: { ok: false, phases: {}, failure: { phase: 'internal', reason: 'internal', message: `probe error: ${err instanceof Error ? err.message : String(err)}` } },
        startedAt,
        duration: (performance.now() - t0) / 1000,
        queueWait,
      };
    } finally {
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      this.root.removeEventListener('abort', onRootAbort);
      this.limiter.release();
    }
  }

  /** A probe's result is trusted only in shape; nonsense becomes "internal". */
  private vet(check: CheckConfig, r: ProbeResult, timedOut: boolean): ProbeResult {
    if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean' || typeof r.phases !== 'object') {
      return { ok: false, phases: {}, failure: { phase: 'internal', reason: 'internal', message: 'probe returned a malformed result' } };
    }
    if (!r.ok && (!r.failure || !(FAILURE_REASONS as readonly string[]).includes(r.failure.reason))) {
      this.log.error({ check: check.name, failure: r.failure }, 'probe returned a failure without a known reason');
      return { ...r, failure: { phase: r.failure?.phase ?? 'internal', reason: 'internal', message: r.failure?.message ?? 'failed without a reason' } };
    }
    if (timedOut && r.ok) return { ...timeoutResult(check, 'finished only after its deadline'), phases: r.phases };
    return r;
  }
}

function timeoutResult(check: CheckConfig, why: string): ProbeResult {
  return { ok: false, phases: {}, failure: { phase: 'total', reason: 'timeout', message: `timed out after ${check.timeoutMs}ms (${why})` } };
}
