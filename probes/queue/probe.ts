// The queue probe: reads depth, age and consumers of integration queues from a source (see
// sources.ts), and compares each reading with the previous run's (kept in the check's
// memory) to get arrival and drain rates. A queue that holds messages while nothing drains is
// the Sundhedsplatformen failure: orders and results stop and nobody is told. It fails the run
// (reason backlog) once that lasts stalledAfter, or when depth/age limits are crossed; a queue
// that keeps growing faster than it drains makes the run degraded (backlog_growing).
import { PHASES, type QueueOptions, type QueueTarget } from './options.js';
import { fail, failed, now, raceAbort } from '../kit/net.js';
import { tlsFilesStep } from '../kit/step.js';
import { setupPhase, tlsFileOptions, type ConnTimes, type TlsFiles } from '../kit/tls.js';
import { runRedactor } from '../kit/redact.js';
import { readSource, SourceError, type SourceReading } from './sources.js';
import type { FailureReason, Probe, ProbeContext, ProbeResult, QueueReading } from '../types.js';

// fetch covers setting up the connection and the requests; a run that fails while setting it up
// (or reading the check's TLS files) reports resolve, connect or tls, as every kind does.

/** One sample of a queue's history, for the growth window. Cumulative counts since memory began. */
interface Sample {
  t: number;
  depth: number;
  arrived: number;
  drained: number;
}

/** What the check remembers about one queue between runs. */
interface QueueMemo {
  t: number;
  depth: number;
  arrivedTotal: number | undefined;
  drainedTotal: number | undefined;
  deliveredTotal: number | undefined;
  names: Set<string> | undefined;
  /** When something last drained (epoch ms). */
  lastDrainAt: number | undefined;
  /** When the queue was last seen going from empty to holding messages (or first seen holding them). */
  waitingSince: number | undefined;
  arrivedCum: number;
  drainedCum: number;
  history: Sample[];
}

const MEMORY_KEY = 'queue';
/** Samples kept per queue's growth window at most (older ones are thinned out, evenly). */
const WINDOW_SAMPLES = 1000;

interface Issue {
  reason: FailureReason;
  message: string;
}

export const queueProbe: Probe<QueueOptions, QueueTarget> = {
  phases: PHASES,
  async run(ctx: ProbeContext<QueueOptions, QueueTarget>): Promise<ProbeResult> {
    const { options: o, target } = ctx;
    const { signal } = ctx.budget;
    // The loader refuses a target that is not what the source reads; this guards direct calls.
    if ((o.source === 'directory') !== (target.folder !== undefined)) {
      return fail({}, 'fetch', 'resolve', `target "${target.text}" is not ${o.source === 'directory' ? 'an absolute folder path' : 'an http(s) URL'}`);
    }
    // An error page may echo the Authorization header back: its base64 is a secret too (the
    // redactor also finds each secret's own base64 inside it).
    const redactor = runRedactor(ctx.secrets);
    if (o.source !== 'directory') {
      const password = o.password !== undefined ? ctx.secrets[o.password] : undefined;
      if (o.username !== undefined && password !== undefined) redactor.add(Buffer.from(`${o.username}:${password}`).toString('base64'));
    }
    const scrub = (text: string) => redactor.scrub(text);
    const phases: Record<string, number> = {};
    let tlsFiles: TlsFiles | undefined;
    if (o.source !== 'directory' && o.tls !== undefined) {
      const read = await tlsFilesStep({ phases, signal }, () => tlsFileOptions(o.tls));
      if (failed(read)) return read.result;
      tlsFiles = read;
    }
    const t0 = now();
    const progress: { conn?: ConnTimes; url?: URL } = {};
    let readings: SourceReading[];
    try {
      const source = target.folder ?? target.href;
      const reading = readSource({
        target: source,
        o,
        budget: ctx.budget,
        ...(tlsFiles ? { tlsFiles } : {}),
        progress,
        secrets: ctx.secrets,
        memory: ctx.memory,
        scrub,
      });
      readings = await raceAbort(reading, signal).catch((err: unknown) => {
        if (err instanceof SourceError || !signal.aborted) throw err;
        const setup = progress.url ? setupPhase(progress.conn, progress.url) : undefined;
        throw new SourceError('timeout', "reading the source took longer than the check's timeout", setup);
      });
    } catch (err) {
      if (err instanceof SourceError) {
        // Setting up the connection failed: in that phase (resolve, connect, tls), as every kind reports it.
        if (err.phase === 'fetch') phases.fetch = now() - t0;
        return { ok: false, phases, failure: { phase: err.phase, reason: signal.aborted ? 'timeout' : err.reason, message: scrub(err.message) } };
      }
      phases.fetch = now() - t0;
      throw err;
    }
    phases.fetch = now() - t0;
    const t1 = now();
    const memos = memoryOf(ctx.memory);
    // Intervals, stalls and the growth window on the monotonic clock: a wall-clock step (NTP, a
    // VM resumed) is neither a stall nor a hole in the rates. Message ages stay wall-clock.
    const at = performance.now();
    const queues: QueueReading[] = [];
    const failures: Issue[] = [];
    const growing: string[] = [];
    let partial: string | undefined;
    for (const r of readings) {
      const q = advance(memos, r, at, o);
      queues.push(q.reading);
      const issue = judgeQueue(q.reading, o, r.stopped === true);
      if (issue) failures.push(issue);
      if (q.growth) growing.push(q.growth);
      if (r.partial) partial = `${r.queue}: ${r.partial}`;
    }
    // Forget queues that are gone (a Mirth channel removed), so memory stays bounded.
    for (const name of [...memos.keys()]) if (!readings.some((r) => r.queue === name)) memos.delete(name);
    phases.assess = now() - t1;
    const result: ProbeResult = { ok: failures.length === 0, phases, queues };
    const first = failures[0];
    if (first) {
      const more =
        failures.length > 1
          ? ` (and ${failures.length - 1} more: ${failures
              .slice(1, 4)
              .map((f) => f.message.split(':')[0])
              .join(', ')})`
          : '';
      result.failure = { phase: 'assess', reason: first.reason, message: `${first.message}${more}` };
    } else if (growing.length > 0) result.degraded = { reason: 'backlog_growing', message: growing.join('; ') };
    else if (partial) result.degraded = { reason: 'partial', message: partial };
    return result;
  },
};

function memoryOf(memory: Map<string, unknown>): Map<string, QueueMemo> {
  let m = memory.get(MEMORY_KEY) as Map<string, QueueMemo> | undefined;
  if (!m) memory.set(MEMORY_KEY, (m = new Map()));
  return m;
}

/** Arrived/drained since the previous reading: from totals, file names, or (lower bounds) from the depth change. */
function delta(prev: QueueMemo, r: SourceReading): { arrived: number; drained: number } {
  const dDepth = r.depth - prev.depth;
  if (r.names && prev.names) {
    let arrived = 0;
    for (const n of r.names) if (!prev.names.has(n)) arrived++;
    return { arrived, drained: Math.max(0, prev.depth + arrived - r.depth) };
  }
  // A total that went backwards is a broker restart or a statistics reset: not a drain.
  const a =
    r.arrivedTotal !== undefined && prev.arrivedTotal !== undefined && r.arrivedTotal >= prev.arrivedTotal ? r.arrivedTotal - prev.arrivedTotal : undefined;
  const d =
    r.drainedTotal !== undefined && prev.drainedTotal !== undefined && r.drainedTotal >= prev.drainedTotal ? r.drainedTotal - prev.drainedTotal : undefined;
  if (a !== undefined && d !== undefined) return { arrived: a, drained: d };
  // One total known: the other follows from depth(now) = depth(before) + arrived - drained.
  if (a !== undefined) return { arrived: a, drained: Math.max(0, prev.depth + a - r.depth) };
  if (d !== undefined) return { arrived: Math.max(0, dDepth + d), drained: d };
  return { arrived: Math.max(0, dDepth), drained: Math.max(0, -dDepth) };
}

function advance(memos: Map<string, QueueMemo>, r: SourceReading, at: number, o: QueueOptions): { reading: QueueReading; growth?: string } {
  const prev = memos.get(r.queue);
  const out: QueueReading = { queue: r.queue, depth: r.depth };
  if (r.ready !== undefined) out.ready = r.ready;
  if (r.unacked !== undefined) out.unacked = r.unacked;
  if (r.consumers !== undefined) out.consumers = r.consumers;
  if (r.oldestAgeSeconds !== undefined) out.oldestAgeSeconds = r.oldestAgeSeconds;
  if (r.state !== undefined) out.state = r.state;
  if (r.errors !== undefined) out.errors = r.errors;
  const memo: QueueMemo = prev ?? {
    t: at,
    depth: r.depth,
    arrivedTotal: undefined,
    drainedTotal: undefined,
    deliveredTotal: undefined,
    names: undefined,
    lastDrainAt: undefined,
    waitingSince: undefined,
    arrivedCum: 0,
    drainedCum: 0,
    history: [],
  };
  if (prev && at > prev.t) {
    const dt = (at - prev.t) / 1000;
    const { arrived, drained } = delta(prev, r);
    const totalsKnown = r.arrivedTotal !== undefined || r.drainedTotal !== undefined || r.names !== undefined;
    // Without totals of its own, a source's smoothed rates beat a depth difference (which misses traffic that cancels out).
    out.arrivalRate = !totalsKnown && r.arrivalRate !== undefined ? r.arrivalRate : arrived / dt;
    out.drainRate = !totalsKnown && r.drainRate !== undefined ? r.drainRate : drained / dt;
    memo.arrivedCum += arrived;
    memo.drainedCum += drained;
    if (drained > 0 || (!totalsKnown && (r.drainRate ?? 0) > 0)) memo.lastDrainAt = at;
    if (r.deliveredTotal !== undefined && prev.deliveredTotal !== undefined && r.deliveredTotal >= prev.deliveredTotal)
      out.deliverRate = (r.deliveredTotal - prev.deliveredTotal) / dt;
    else if (r.deliverRate !== undefined) out.deliverRate = r.deliverRate;
  } else if (!prev) {
    if (r.arrivalRate !== undefined) out.arrivalRate = r.arrivalRate;
    if (r.drainRate !== undefined) out.drainRate = r.drainRate;
    if (r.deliverRate !== undefined) out.deliverRate = r.deliverRate;
  }
  if (r.depth === 0) memo.waitingSince = undefined;
  else memo.waitingSince ??= at;
  out.undrainedSeconds = memo.waitingSince === undefined ? 0 : (at - Math.max(memo.waitingSince, memo.lastDrainAt ?? 0)) / 1000;
  memo.t = at;
  memo.depth = r.depth;
  memo.arrivedTotal = r.arrivedTotal;
  memo.drainedTotal = r.drainedTotal;
  memo.deliveredTotal = r.deliveredTotal;
  memo.names = r.names;
  memos.set(r.queue, memo);
  if (o.growth === false) return { reading: out };
  // Samples at least window/WINDOW_SAMPLES apart (a newer one replaces the newest otherwise), and
  // one sample older than the window (its start): bounded whatever the interval.
  const sample = { t: at, depth: r.depth, arrived: memo.arrivedCum, drained: memo.drainedCum };
  const h = memo.history;
  const beforeLast = h[h.length - 2];
  if (h.length >= 2 && beforeLast && at - beforeLast.t < o.growth.window / WINDOW_SAMPLES) h[h.length - 1] = sample;
  else h.push(sample);
  const windowStart = at - o.growth.window;
  while (h.length > 2 && (h[1] as Sample).t <= windowStart) h.shift();
  const growth = growthOver(h, windowStart, o.growth);
  return growth ? { reading: out, growth: `${r.queue} ${growth}` } : { reading: out };
}

/** Degraded when, over a whole window, depth rose by minIncrease and more arrived than drained. */
function growthOver(history: Sample[], windowStart: number, g: { minIncrease: number }): string | undefined {
  const start = history[0];
  const end = history[history.length - 1];
  if (!start || !end || start === end || start.t > windowStart) return undefined; // not a full window seen yet
  const rise = end.depth - start.depth;
  const arrived = end.arrived - start.arrived;
  const drained = end.drained - start.drained;
  if (rise < g.minIncrease || arrived <= drained) return undefined;
  return `grew by ${rise} in ${humanDuration(end.t - start.t)} (${arrived} arrived, ${drained} drained)`;
}

function judgeQueue(q: QueueReading, o: QueueOptions, stopped: boolean): Issue | undefined {
  const name = q.queue;
  if (stopped) return { reason: 'queue_stopped', message: `${name}: state ${q.state}, ${q.depth} waiting` };
  // minConsumers and maxOldestAge exist only for the sources that report consumers and ages.
  const minConsumers = 'minConsumers' in o ? o.minConsumers : undefined;
  const maxOldestAge = 'maxOldestAge' in o ? o.maxOldestAge : undefined;
  if (minConsumers !== undefined && q.consumers !== undefined && q.consumers < minConsumers) {
    return {
      reason: 'consumers',
      message: `${name}: ${q.consumers} consumer${q.consumers === 1 ? '' : 's'} (at least ${minConsumers} expected), ${q.depth} waiting`,
    };
  }
  if (o.stalledAfter !== undefined && q.depth > 0 && (q.undrainedSeconds ?? 0) * 1000 >= o.stalledAfter) {
    return { reason: 'backlog', message: `${name}: stalled, ${q.depth} waiting and nothing drained for ${humanDuration((q.undrainedSeconds ?? 0) * 1000)}` };
  }
  if (o.maxDepth !== undefined && q.depth > o.maxDepth) return { reason: 'backlog', message: `${name}: ${q.depth} waiting (limit ${o.maxDepth})` };
  if (maxOldestAge !== undefined && q.oldestAgeSeconds !== undefined && q.oldestAgeSeconds * 1000 > maxOldestAge) {
    return {
      reason: 'backlog',
      message: `${name}: oldest message waited ${humanDuration(q.oldestAgeSeconds * 1000)} (limit ${humanDuration(maxOldestAge)})`,
    };
  }
  return undefined;
}

/** A duration as people read it in a message: 850ms, 4.2s, 42s, 5m 11s, 2h 05m. */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(Math.round(ms / 100) / 10).toString()}s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(s / 60);
  return m % 60 === 0 ? `${m / 60}h` : `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
