// Probe threads: the main thread's side of agent/probe-worker.ts. The agent hands every run to
// one of `agent.probeThreads` worker threads (a check is pinned to one by a hash of its name, so
// its probe memory stays in one place) and keeps for itself the concurrency cap, the schedule,
// the judging and recording of runs, and all serving. Why: vakt measures latency on the loop it
// computes on; with probes on a loop of their own, rendering /metrics, a large heap's garbage
// collection or a slow API client cannot make a measured connect or login read slower
// (docs/operations.md#probe-threads has the measurements behind the choice).
// A thread that dies (a bug, or memory exhausted by a hostile peer) fails its runs in flight
// with reason `internal` and is started again with the same checks.
import { getPriority, setPriority } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CheckConfig } from '../config/loader.js';
import type { ProbeResult } from '../probes/types.js';
import type { Logger } from './log.js';
import { runSpec, type Limiter, type RunOutcome, type RunSpec } from './runner.js';
import { fnv1a } from './scheduler.js';

export interface ThreadSettings {
  maxLoopDelayMs: number;
  logLevel: string;
}

/** Main thread -> probe thread (sent in batches). */
export type ToThread =
  | { t: 'run'; id: number; name: string }
  | { t: 'set'; checks: RunSpec[] }
  | { t: 'remove'; names: string[] }
  | { t: 'settings'; settings: ThreadSettings }
  | { t: 'stop' };

/** Probe thread -> main thread (sent in batches). */
export type FromThread = { t: 'done'; id: number; outcome?: RunOutcome } | { t: 'log'; line: string };

interface Pending {
  resolve: (outcome: RunOutcome | undefined) => void;
  startedAt: number;
  t0: number;
}

/** How much lower the main thread's CPU priority is than the probe threads' (nice steps; each is about 25 % less CPU share under contention). */
const MAIN_THREAD_NICE = 5;
/** The main thread yields once, however many agents it holds (tests make several): its nice value before and after. */
let mainYielded: { before: number; after: number } | undefined;

/**
 * The probe thread's young generation (where a run's short-lived objects are born), MiB. V8 sizes
 * it for the host (up to 48 MiB here) and a thread allocating for 170 runs a second fills it;
 * almost nothing of a run outlives it, so a small one costs few extra scavenges and holds RSS.
 */
const PROBE_YOUNG_GENERATION_MB = 12;

/** How long to wait before starting a thread again that died soon after its start. */
const RESTART_BACKOFF_MS = 1000;

/** The worker's entry: the compiled .js next to this file, or (running from source) the .ts through tsx. */
function workerEntry(): { url: URL; boot?: string } {
  const here = import.meta.url;
  if (here.endsWith('.js')) return { url: new URL('./probe-worker.js', here) };
  const url = new URL('./probe-worker.ts', here);
  // Running from TypeScript sources (tests, `tsx`): the thread registers tsx itself; a worker
  // does not inherit the parent's module hooks.
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(url.href)});`;
  return { url, boot };
}

class ProbeThread {
  worker!: Worker;
  readonly pending = new Map<number, Pending>();
  private outbox: ToThread[] = [];
  private flushing = false;
  private startedAt = 0;
  /** Ended and not yet started again. */
  exited = false;
  /** Runs asked for while the thread was being started again (sent once it is). */
  deferred: ToThread[] = [];

  constructor(
    readonly index: number,
    private readonly owner: ProbeThreads,
  ) {
    this.spawn();
  }

  spawn(): void {
    const entry = workerEntry();
    const specifier = entry.boot ? new URL(`data:text/javascript,${encodeURIComponent(entry.boot)}`) : entry.url;
    this.exited = false;
    this.startedAt = performance.now();
    this.worker = new Worker(specifier, {
      workerData: { index: this.index, settings: this.owner.settings, nice: mainYielded?.before },
      name: `vakt-probes-${this.index}`,
      resourceLimits: { maxYoungGenerationSizeMb: PROBE_YOUNG_GENERATION_MB },
    });
    this.worker.unref();
    this.worker.on('message', (batch: FromThread[]) => this.owner.received(this, batch));
    this.worker.on('error', (err) => this.owner.log.error({ thread: this.index, err }, 'probe thread failed'));
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.owner.exited(this, code, performance.now() - this.startedAt);
    });
  }

  send(m: ToThread): void {
    if (this.exited) {
      // A run asked for while the thread is being started again waits for it (its config is
      // sent afresh first); the rest is re-sent from the owner's state.
      if (m.t === 'run') this.deferred.push(m);
      return;
    }
    this.outbox.push(m);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      if (this.exited || this.outbox.length === 0) return;
      const batch = this.outbox.splice(0);
      try {
        this.worker.postMessage(batch);
      } catch {
        // Something in the batch cannot be cloned (a config value no test foresaw): post the
        // messages one by one and fail only what cannot go.
        for (const m of batch) this.postOne(m);
      }
    });
  }

  private postOne(m: ToThread): void {
    try {
      this.worker.postMessage([m]);
    } catch (err) {
      const message = (err as Error).message;
      if (m.t === 'set')
        this.owner.log.error(
          { thread: this.index, checks: m.checks.map((c) => c.name), err: message },
          'check config could not be passed to its probe thread; its runs fail with reason internal',
        );
      else if (m.t === 'run')
        this.owner.received(this, [
          { t: 'done', id: m.id, outcome: internalOutcome(`the run could not be passed to the probe thread: ${message}`, Date.now(), performance.now()) },
        ]);
      else this.owner.log.error({ thread: this.index, message: m.t, err: message }, 'message could not be passed to a probe thread');
    }
  }

  /** The batch not yet posted, and runs deferred (dropped when the thread died: their runs fail, a new thread gets the configs afresh). */
  dropOutbox(): void {
    this.outbox = [];
    this.deferred = [];
  }

  /** After a restart: the runs that waited for it, behind the configs already queued. */
  sendDeferred(): void {
    for (const m of this.deferred.splice(0)) this.send(m);
  }
}

export class ProbeThreads {
  private readonly threads: ProbeThread[] = [];
  private readonly checks = new Map<string, CheckConfig>();
  private nextId = 1;
  private stopping = false;
  /** Threads restarted after they died (vakt_probe_thread_restarts_total). */
  restarts = 0;

  constructor(
    count: number,
    private readonly root: AbortSignal,
    private readonly limiter: Limiter,
    readonly log: Logger,
    /** Where the threads' log lines go (the agent's log destination). */
    private readonly logLine: (line: string) => void,
    public settings: ThreadSettings,
  ) {
    for (let i = 0; i < count; i++) this.threads.push(new ProbeThread(i, this));
    root.addEventListener('abort', () => this.stopAll(), { once: true });
    if (count > 0) this.yieldToProbes();
  }

  /**
   * Lowers this (the main) thread's CPU priority below the probe threads', so when the host's
   * cores are all busy (a scrape being rendered while 1,000 probes a second run) the kernel
   * serves the threads that take timestamps first. Linux only: there the nice value is per
   * thread (the threads already started keep theirs); elsewhere it would be the whole process's.
   */
  private yieldToProbes(): void {
    if (process.platform !== 'linux' || mainYielded) return;
    try {
      const before = getPriority();
      const after = Math.min(19, before + MAIN_THREAD_NICE);
      if (after !== before) setPriority(after);
      mainYielded = { before, after };
      this.log.info({ mainThreadNice: after, probeThreadNice: before }, 'main thread yields the CPU to the probe threads');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not lower the main thread's CPU priority below the probe threads'");
    }
  }

  /** The main thread's nice value before (the probe threads') and after it yielded (Linux; undefined elsewhere). */
  get nice(): { main: number; probes: number } | undefined {
    return mainYielded && { main: mainYielded.after, probes: mainYielded.before };
  }

  get count(): number {
    return this.threads.length;
  }

  /** The threads' workers, in order (diagnostics and tests). */
  get workers(): readonly Worker[] {
    return this.threads.map((t) => t.worker);
  }

  /** The check's config as the threads should know it (added or changed). */
  set(check: CheckConfig): void {
    this.checks.set(check.name, check);
    this.threadOf(check.name).send({ t: 'set', checks: [runSpec(check)] });
  }

  remove(name: string): void {
    this.checks.delete(name);
    this.threadOf(name).send({ t: 'remove', names: [name] });
  }

  update(settings: ThreadSettings): void {
    this.settings = settings;
    for (const t of this.threads) t.send({ t: 'settings', settings });
  }

  /** Runs the check once on its thread. Resolves undefined when the agent stopped, or the check was removed, before the probe began. */
  async run(check: CheckConfig): Promise<RunOutcome | undefined> {
    const queueWait = await this.limiter.slot(this.root);
    if (queueWait === undefined) return undefined;
    try {
      // Stopping, or the check was removed (by a reload) while this run waited: no run.
      if (this.root.aborted || !this.checks.has(check.name)) return undefined;
      const thread = this.threadOf(check.name);
      const id = this.nextId++;
      const outcome = await new Promise<RunOutcome | undefined>((resolve) => {
        thread.pending.set(id, { resolve, startedAt: Date.now(), t0: performance.now() });
        thread.send({ t: 'run', id, name: check.name });
      });
      return outcome && { ...outcome, queueWait };
    } finally {
      this.limiter.release();
    }
  }

  /** Waits for the threads to end (after the agent stopped and its runs settled). */
  async terminate(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  received(thread: ProbeThread, batch: FromThread[]): void {
    for (const m of batch) {
      if (m.t === 'log') {
        this.logLine(m.line);
        continue;
      }
      const p = thread.pending.get(m.id);
      if (!p) continue;
      thread.pending.delete(m.id);
      p.resolve(m.outcome);
    }
  }

  exited(thread: ProbeThread, code: number, livedMs: number): void {
    thread.dropOutbox();
    const lost = [...thread.pending.values()];
    thread.pending.clear();
    for (const p of lost) p.resolve(internalOutcome(`the probe thread ended (exit code ${code}) during the run`, p.startedAt, p.t0));
    if (this.stopping) return;
    this.restarts++;
    this.log.error({ thread: thread.index, code, runsLost: lost.length }, 'probe thread ended: starting it again');
    const again = () => {
      if (this.stopping) return;
      thread.spawn();
      const mine = [...this.checks.values()].filter((c) => this.threadOf(c.name) === thread);
      if (mine.length > 0) thread.send({ t: 'set', checks: mine.map(runSpec) });
      thread.sendDeferred();
    };
    // A thread that dies at once would otherwise be restarted in a tight loop.
    if (livedMs < RESTART_BACKOFF_MS) setTimeout(again, RESTART_BACKOFF_MS).unref();
    else again();
  }

  private stopAll(): void {
    for (const t of this.threads) t.send({ t: 'stop' });
  }

  private threadOf(name: string): ProbeThread {
    return this.threads[this.threads.length === 1 ? 0 : fnv1a(name) % this.threads.length] as ProbeThread;
  }
}

/** A run that failed in the agent's machinery, not at the peer (reason `internal`). */
export function internalOutcome(message: string, startedAt: number, t0: number): RunOutcome {
  const result: ProbeResult = { ok: false, phases: {}, failure: { phase: 'internal', reason: 'internal', message } };
  return { result, startedAt, duration: (performance.now() - t0) / 1000, queueWait: 0, loopStall: 0, disturbed: false };
}
