// Runs one check once: takes a slot under the global concurrency cap, hands the probe an
// AbortSignal that fires at the check's timeout (or when the agent stops), and turns a probe
// that throws, hangs past its deadline or returns nonsense into a failed result with a reason.
import type { CheckConfig, CheckOf } from '../config/loader.js';
import { kindNamed, loadedProbe, loadProbe, type Kind, type KindOptions, type KindTarget } from '../probes/kinds.js';
import { Budget } from '../probes/kit/budget.js';
import type { Probe, ProbeResult } from '../probes/types.js';
import type { Logger } from './log.js';
import type { LoopMonitor } from './loop-monitor.js';

/** The part of a check's config its runs read: what a probe thread is sent of each check. */
export type RunSpec<K extends Kind = Kind> = { [P in K]: Pick<CheckOf<P>, 'name' | 'kind' | 'targets' | 'options' | 'secrets' | 'timeoutMs'> }[K];

/** The run spec of a check: a new object with only those fields (a probe thread holds 10,000 of them). */
export function runSpec(c: CheckConfig): RunSpec {
  return { name: c.name, kind: c.kind, targets: c.targets, options: c.options, secrets: c.secrets, timeoutMs: c.timeoutMs } as RunSpec;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  signal: AbortSignal;
}

/** A counting semaphore: the cap on probes in flight. */
export class Limiter {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  private readonly watched = new WeakSet<AbortSignal>();

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

  /**
   * A slot, or a rejection when `signal` aborts first. Waiters share one listener per signal
   * (not one each: an EventTarget scans its listeners, so that would grow with the queue).
   */
  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new Error('stopped while waiting for a probe slot'));
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    if (!this.watched.has(signal)) {
      this.watched.add(signal);
      signal.addEventListener('abort', () => this.dropWaiters(signal), { once: true });
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject, signal }));
  }

  /** A slot and how long it was waited for (seconds), or undefined when `signal` aborted first. */
  async slot(signal: AbortSignal): Promise<number | undefined> {
    const queuedAt = performance.now();
    try {
      await this.acquire(signal);
    } catch {
      return undefined;
    }
    return (performance.now() - queuedAt) / 1000;
  }

  private dropWaiters(signal: AbortSignal): void {
    const keep: Waiter[] = [];
    for (const w of this.waiting) {
      if (w.signal === signal) w.reject(new Error('stopped while waiting for a probe slot'));
      else keep.push(w);
    }
    this.waiting.splice(0, this.waiting.length, ...keep);
  }

  release(): void {
    this.active--;
    if (this.waiting.length > 0 && this.active < this.max) this.grant();
  }

  private grant(): void {
    const next = this.waiting.shift();
    if (next) {
      this.active++;
      next.resolve();
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
  /** The longest stall of the agent's event loop during the run, in seconds. */
  loopStall: number;
  /** The stall exceeded agent.maxLoopDelay: the run's timings are not trusted. */
  disturbed: boolean;
}

/** How long a probe may overrun its aborted deadline before the runner stops waiting for it. */
const ABORT_GRACE_MS = 1000;

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * What the runner keeps per check config (a changed check is a new object, so starts afresh),
 * made only when a probe first asks for it: most kinds never log through the run's logger nor
 * keep a memory, and at 10,000 checks a child logger and a map each are ~6 MiB.
 */
interface PerCheck {
  memory?: Map<string, unknown>;
  log?: Logger;
}

export class Runner {
  private readonly perCheck = new WeakMap<RunSpec, PerCheck>();
  /** Runs in flight: the root signal aborts them all through one listener. */
  private readonly running = new Set<AbortController>();
  /** Event-loop stall (ms) above which a run is marked disturbed. */
  maxLoopDelayMs = 20;

  constructor(
    private readonly root: AbortSignal,
    private readonly limiter: Limiter,
    private readonly log: Logger,
    /** Probes to call instead of the kinds' own (tests); a kind not in it runs its own. */
    private readonly probes: ProbeTable = {},
    private readonly loop?: LoopMonitor,
  ) {
    root.addEventListener(
      'abort',
      () => {
        for (const ctrl of this.running) ctrl.abort(root.reason);
      },
      { once: true },
    );
  }

  /** Runs the check once. Resolves undefined when the agent stopped before the probe began. */
  async run(check: RunSpec): Promise<RunOutcome | undefined> {
    // The kind's code is loaded when its first check is configured (preload); a run that comes
    // first waits for it here, before its slot and its clock.
    const probe = this.probeOf(check.kind) ?? (await this.loadProbeOf(check.kind));
    const queueWait = await this.limiter.slot(this.root);
    if (queueWait === undefined) return undefined;
    const ctrl = new AbortController();
    this.running.add(ctrl);
    const deadline = performance.now() + check.timeoutMs;
    const timer = setTimeout(() => ctrl.abort(new TimeoutError(`check timeout of ${check.timeoutMs}ms`)), check.timeoutMs);
    let grace: NodeJS.Timeout | undefined;
    const startedAt = Date.now();
    this.loop?.enter();
    const t0 = performance.now();
    const finish = (result: ProbeResult): RunOutcome => {
      const t1 = performance.now();
      const stallMs = this.loop ? this.loop.worstStall(t0, t1) : 0;
      return { result, startedAt, duration: (t1 - t0) / 1000, queueWait, loopStall: stallMs / 1000, disturbed: stallMs > this.maxLoopDelayMs };
    };
    try {
      if (this.root.aborted) return undefined;
      if (probe instanceof Error) throw probe;
      const pending = startProbe(probe, check, new Budget(ctrl.signal, deadline), this.state);
      const overrun = new Promise<'overrun'>((resolve) => {
        const arm = () => {
          grace = setTimeout(() => resolve('overrun'), ABORT_GRACE_MS);
        };
        if (ctrl.signal.aborted) arm();
        else ctrl.signal.addEventListener('abort', arm, { once: true });
      });
      const settled = await Promise.race([pending, overrun]);
      if (settled === 'overrun') {
        pending.catch(() => undefined);
        this.log.error({ check: check.name, kind: check.kind }, 'probe ignored its abort signal; result abandoned');
        return finish(timeoutResult(check, 'probe did not stop after its deadline'));
      }
      // Past the deadline is a timeout, whatever the probe made of it (its timer may not have
      // fired yet when the loop was busy, so the clock decides, not only the signal) -- unless
      // the agent's own loop stalled at least as long as the overrun: then the lateness is the
      // agent's, the probe's reading stands and the run is marked disturbed.
      const pastDeadline = performance.now() - deadline;
      const late =
        (ctrl.signal.aborted && ctrl.signal.reason instanceof TimeoutError) ||
        (pastDeadline > 0 && (this.loop === undefined || pastDeadline > this.loop.worstStall(t0, deadline + pastDeadline)));
      return finish(this.vet(check, settled, late));
    } catch (err) {
      this.log.error({ check: check.name, kind: check.kind, err }, 'probe threw: reported as reason internal');
      return finish({
        ok: false,
        phases: {},
        failure: { phase: 'internal', reason: 'internal', message: `probe error: ${err instanceof Error ? err.message : String(err)}` },
      });
    } finally {
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      this.running.delete(ctrl);
      this.loop?.leave();
      this.limiter.release();
    }
  }

  /** A check's logger and memory, made on first use (PerCheck); one object for all runs. */
  private readonly state: CheckState = {
    log: (check) => (this.perCheckOf(check).log ??= this.log.child({ check: check.name, kind: check.kind })),
    memory: (check) => (this.perCheckOf(check).memory ??= new Map<string, unknown>()),
  };

  private perCheckOf(check: RunSpec): PerCheck {
    let mine = this.perCheck.get(check);
    if (!mine) this.perCheck.set(check, (mine = {}));
    return mine;
  }

  /**
   * Loads the code of this kind, so the first run of a check of it finds it ready; resolves when
   * it is in (or could not be: the runs then fail with the reason). loadProbe imports it once.
   */
  preload(kind: string): Promise<void> {
    return this.probeOf(kind) ? Promise.resolve() : this.loadProbeOf(kind).then(() => undefined);
  }

  private probeOf(kind: string): AnyProbe | undefined {
    return (this.probes as Record<string, AnyProbe | undefined>)[kind] ?? (kindNamed(kind) ? loadedProbe(kind as Kind) : undefined);
  }

  /** The kind's probe once its code is loaded, or why it cannot be (the run then fails as internal). */
  private async loadProbeOf(kind: string): Promise<AnyProbe | Error> {
    if (!kindNamed(kind)) return new Error(`no probe registered for kind ${kind}`);
    try {
      return await loadProbe(kind as Kind);
    } catch (err) {
      this.log.error({ kind, err }, "the kind's probe code could not be loaded");
      return new Error(`the ${kind} probe could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** A probe's result is trusted only in shape; nonsense becomes "internal". */
  private vet(check: RunSpec, r: ProbeResult, late: boolean): ProbeResult {
    if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean' || typeof r.phases !== 'object') {
      return { ok: false, phases: {}, failure: { phase: 'internal', reason: 'internal', message: 'probe returned a malformed result' } };
    }
    // Reasons are label values: only those the kind declares (a test probe not in the list may use any).
    const kind = kindNamed(check.kind);
    if (
      !r.ok &&
      (!r.failure ||
        typeof r.failure.reason !== 'string' ||
        (kind !== undefined && r.failure.reason !== 'internal' && !kind.reasons.includes(r.failure.reason)))
    ) {
      this.log.error({ check: check.name, failure: r.failure }, 'probe returned a failure without a known reason');
      return { ...r, failure: { phase: r.failure?.phase ?? 'internal', reason: 'internal', message: r.failure?.message ?? 'failed without a reason' } };
    }
    if (r.ok && r.degraded && kind !== undefined && r.degraded.reason !== 'slow' && !kind.degradedReasons.includes(r.degraded.reason)) {
      this.log.error({ check: check.name, degraded: r.degraded }, 'probe returned a degraded reason its kind does not declare; the run counts as ok');
      const { degraded: _dropped, ...rest } = r;
      return rest;
    }
    if (late && r.ok) return { ...timeoutResult(check, 'finished only after its deadline'), phases: r.phases };
    if (late && r.failure && r.failure.reason !== 'timeout') {
      return {
        ...r,
        failure: {
          phase: r.failure.phase,
          reason: 'timeout',
          message: `timed out after ${check.timeoutMs}ms (ended only after its deadline with: ${r.failure.reason}: ${r.failure.message})`,
        },
      };
    }
    return r;
  }
}

/** The probes the runner calls, by kind (tests hand in their own for some kinds). */
export type ProbeTable = { readonly [K in Kind]?: Probe<KindOptions[K], KindTarget[K]> };

/** A probe of some kind, as the runner holds it before it knows which. */
type AnyProbe = Probe<never, never>;

/** A check's logger and memory, made when the probe first reads them. */
interface CheckState {
  log(check: RunSpec): Logger;
  memory(check: RunSpec): Map<string, unknown>;
}

/** Starts the check's probe with its own options and targets (the probe was looked up by the kind the check names, so it takes them). */
function startProbe(probe: AnyProbe, check: RunSpec, budget: Budget, state: CheckState): Promise<ProbeResult> {
  const target = check.targets[0];
  if (target === undefined) throw new Error(`check ${check.name} has no target`);
  return (probe as unknown as Probe<RunSpec['options'], RunSpec['targets'][number]>).run({
    budget,
    secrets: check.secrets,
    target,
    targets: check.targets,
    options: check.options,
    get log() {
      return state.log(check);
    },
    get memory() {
      return state.memory(check);
    },
  });
}

function timeoutResult(check: RunSpec, why: string): ProbeResult {
  return { ok: false, phases: {}, failure: { phase: 'total', reason: 'timeout', message: `timed out after ${check.timeoutMs}ms (${why})` } };
}
