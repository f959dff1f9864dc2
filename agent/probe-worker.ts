// A probe thread: runs probes for the agent on an event loop of their own, so what the main
// thread does (render /metrics, serve the API, judge and record runs, collect its large heap)
// never delays a timestamp a probe takes. It holds the configs of the checks pinned to it, runs
// each requested check through the ordinary Runner (deadline, abort, vetting, its own loop
// monitor for disturbed runs) and posts the outcomes back. Messages both ways go in batches
// (one postMessage per turn of the loop), so 1,000 runs a second are not 2,000 messages.
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Redactor } from '../probes/kit/redact.js';
import { createLogger } from './log.js';
import { LoopMonitor } from './loop-monitor.js';
import { Limiter, Runner, type RunSpec } from './runner.js';
import { internalOutcome, type FromThread, type ToThread, type ThreadSettings } from './probe-threads.js';

if (!parentPort) throw new Error('agent/probe-worker.ts runs only as a worker thread');
const port = parentPort;

const initial = workerData as { index: number; settings: ThreadSettings; nice?: number };
const checks = new Map<string, RunSpec>();
const redactor = new Redactor();
const outbox: FromThread[] = [];

/**
 * Outcomes and log lines wait up to this long to go to the main thread together, so 1,000 runs a
 * second are about 100 messages, not 1,000. The wait delays only when a run is recorded, never a
 * timing: the probe has taken its timestamps by then.
 */
const FLUSH_MS = 10;
/** A batch this large goes at once. */
const FLUSH_AT = 256;
/** The pending flush (a timer, or an immediate once the batch is full). */
let flushing: { cancel(): void } | undefined;

function send(m: FromThread): void {
  outbox.push(m);
  if (outbox.length >= FLUSH_AT) {
    flushing?.cancel();
    const immediate = setImmediate(flush);
    flushing = { cancel: () => clearImmediate(immediate) };
  } else if (!flushing) {
    const timer = setTimeout(flush, FLUSH_MS);
    flushing = { cancel: () => clearTimeout(timer) };
  }
}

function flush(): void {
  flushing = undefined;
  const batch = outbox.splice(0);
  if (batch.length === 0) return;
  try {
    port.postMessage(batch);
  } catch {
    // Something in the batch cannot be cloned (a result value no test foresaw): post one by
    // one, and a run whose outcome cannot go fails with reason internal instead.
    for (const m of batch) postOne(m);
  }
}

function postOne(m: FromThread): void {
  try {
    port.postMessage([m]);
  } catch (err) {
    if (m.t === 'done')
      port.postMessage([
        {
          t: 'done',
          id: m.id,
          outcome: internalOutcome(
            `the run's result could not be passed to the agent: ${(err as Error).message}`,
            m.outcome?.startedAt ?? Date.now(),
            performance.now(),
          ),
        },
      ]);
  }
}

// Log lines go to the main thread, which writes them where the agent's own lines go (scrubbed
// again there against the agent's full set of secrets).
const log = createLogger(initial.settings.logLevel, redactor, { write: (line: string) => send({ t: 'log', line }) });

const root = new AbortController();
const loop = new LoopMonitor();
// The concurrency cap is the main thread's (one cap over all threads); here every request runs at once.
const runner = new Runner(root.signal, new Limiter(Number.POSITIVE_INFINITY), log, undefined, loop);
runner.maxLoopDelayMs = initial.settings.maxLoopDelayMs;

function settle(settings: ThreadSettings): void {
  runner.maxLoopDelayMs = settings.maxLoopDelayMs;
  log.level = settings.logLevel;
}

function refreshSecrets(): void {
  redactor.setSecrets([...checks.values()].flatMap((c) => Object.values(c.secrets)));
}

function run(id: number, check: RunSpec | undefined): void {
  if (!check) {
    // Its config never arrived (it could not be passed, see the agent's log).
    send({ t: 'done', id, outcome: internalOutcome('the check is not known on its probe thread', Date.now(), performance.now()) });
    return;
  }
  runner.run(check).then(
    (outcome) => send(outcome ? { t: 'done', id, outcome } : { t: 'done', id }),
    // Runner.run turns every probe error into a result; this is a bug in the runner itself.
    (err: unknown) => {
      log.error({ check: check.name, err }, 'runner failed');
      send({ t: 'done', id });
    },
  );
}

// A thread started again inherits the main thread's lowered CPU priority: ask for the probe
// threads' own (allowed to root or with CAP_SYS_NICE; otherwise it keeps the lower one and says so).
let nice: number | undefined;
try {
  nice = getPriority();
  if (initial.nice !== undefined && nice !== initial.nice) {
    setPriority(initial.nice);
    nice = initial.nice;
  }
} catch (err) {
  log.warn({ thread: initial.index, nice, wanted: initial.nice, err: (err as Error).message }, "probe thread runs at the main thread's lower CPU priority");
}

log.info({ thread: initial.index, nice }, 'probe thread started');

/**
 * Runs asked for and not started yet. A batch of runs (a slot of the scheduler: 10 at 1,000 runs
 * a second) starts one run per turn of the loop, not all in one go: between two starts the loop
 * polls for I/O, so a connect or an answer that arrives meanwhile is timestamped after at most
 * one run's start-up, not the whole batch's (bench/RESULTS.md, 2026-12-05: accuracy).
 */
const toStart: { id: number; check: RunSpec | undefined }[] = [];

/** Starts the next run; an immediate is pending exactly while runs wait to start. */
function startNext(): void {
  const next = toStart.shift();
  if (next) run(next.id, next.check);
  if (toStart.length > 0) setImmediate(startNext);
}

port.on('message', (batch: ToThread[]) => {
  let secretsChanged = false;
  for (const m of batch) {
    switch (m.t) {
      case 'run':
        // The config as it is now: a 'set' or 'remove' later in the batch is for later runs.
        if (toStart.push({ id: m.id, check: checks.get(m.name) }) === 1) setImmediate(startNext);
        break;
      case 'set':
        for (const c of m.checks) checks.set(c.name, c);
        for (const kind of new Set(m.checks.map((c) => c.kind))) void runner.preload(kind);
        secretsChanged = true;
        break;
      case 'remove':
        for (const name of m.names) checks.delete(name);
        secretsChanged = true;
        break;
      case 'settings':
        settle(m.settings);
        break;
      case 'stop':
        loop.stop();
        root.abort(new Error('agent stopping'));
        break;
    }
  }
  if (secretsChanged) refreshSecrets();
});
