// The agent's operational memory: every state change and every incident (opened, updated,
// closed) appended as one JSON line to a journal file on the state volume, and an index of the
// recent past kept in memory for the API and the status page. The file is bounded (rotated at
// agent.journal.maxSize, agent.journal.keep old files kept), read back at start (a torn last
// line after a crash is skipped, and the next record starts on a line of its own), and synced
// to disk within a second of a write, so a restart loses nothing and a crash at most the last
// second. Writes never block the loop that takes the probes' timestamps: records are queued
// and written by the event loop's I/O, one write per batch.
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { CheckState } from './detector.js';

export type JournalRecord =
  | { t: number; type: 'state'; check: string; from: CheckState; to: CheckState; reason?: string; cause?: string }
  | { t: number; type: 'incident'; event: 'opened' | 'updated' | 'closed'; cause: string; since: number; affected: string[]; count?: number; reason?: string }
  /** started, stopped, and alive every 5 minutes (so a crash is dated to within 5 minutes). */
  | { t: number; type: 'agent'; event: 'started' | 'stopped' | 'alive' }
  /**
   * Planned work (agent/maintenance.ts): a window made through the admin API is `scheduled` (so
   * it outlives a restart) and may be `cancelled`; every window, from config or API, is `started`
   * and `ended` when its checks enter and leave maintenance, and `updated` when a reload changes
   * an open window's title or end (older agents skip `updated` lines when they read them back).
   */
  | ({ t: number; type: 'maintenance'; event: 'scheduled' | 'cancelled' | 'started' | 'updated' | 'ended' } & PlannedWindow)
  /**
   * Change verification after a window ended: its checks compared with their pre-window
   * baseline. `regressed` (worse than before), `verified` (no worse), `cleared` (a regression
   * that went away, or that an operator accepted).
   */
  | { t: number; type: 'change'; event: 'regressed' | 'verified' | 'cleared'; window: string; title: string; check: string; ended: number; message: string };

/** A window of planned work as the journal keeps it. */
export interface PlannedWindow {
  /** The window's id: its config name and the occurrence's start for config windows, `api-…` for windows made through the API. */
  id: string;
  title: string;
  source: 'config' | 'api';
  /** The checks it covers (at most 10,000 named; `count` counts them all). */
  checks: string[];
  count?: number;
  /** Epoch ms. */
  start: number;
  end: number;
  /** Whether the checks are compared with their pre-window baseline when it ends. */
  verify: boolean;
}

/** A window as the journal remembers it: scheduled, running or over. */
export interface JournalWindow extends PlannedWindow {
  state: 'scheduled' | 'cancelled' | 'started' | 'ended';
  /** When it started and ended (epoch ms), as they happened. */
  startedAt?: number;
  endedAt?: number;
  /** When its last record was written (epoch ms). */
  updatedAt: number;
}

/** A change verification's latest word on one check after one window. */
export interface JournalChange {
  window: string;
  title: string;
  check: string;
  ended: number;
  state: 'regressed' | 'verified' | 'cleared';
  message: string;
  /** When it was last said (epoch ms). */
  t: number;
}

/** An incident as the journal remembers it: open, or closed with when. */
export interface JournalIncident {
  cause: string;
  since: number;
  /** When it closed; undefined while open. */
  until?: number;
  /** The checks it takes down now (open) or took down when it closed (at most 1,000 named). */
  affected: string[];
  /** How many checks that is (all of them, named or not). */
  affectedCount: number;
  /** The most checks it took down at once. */
  peakAffected: number;
  /** The cause's failure reason when it opened. */
  reason?: string;
  /** The agent stopped (or crashed) while it was open: `until` is when it stopped watching, not when it ended. */
  interrupted?: boolean;
  /** When its first record (opened) and its last (opened, updated or closed) were written (epoch ms). */
  openedAt: number;
  updatedAt: number;
}

export interface JournalLimits {
  /** The journal file; undefined: the journal lives in memory only (lost on restart). */
  file?: string;
  /** Size at which the file is rotated. */
  maxBytes: number;
  /** Rotated files kept (file.1 … file.N). */
  keep: number;
}

/** How far back the index remembers (the availability windows go up to 30 days). */
export const JOURNAL_MEMORY_MS = 30 * 86_400_000;
/** Incidents remembered at most (a flapping dependency must not grow memory without end). */
const MAX_INCIDENTS = 10_000;
/** State changes remembered per check at most; older ones are folded into the first kept. */
const MAX_CHANGES_PER_CHECK = 4_096;
/** A line longer than this is not a record (read back at start). */
const MAX_LINE = 1 << 20;
/** Records waiting to be written at most; past it the oldest are dropped and counted. */
const MAX_QUEUED = 100_000;
const MAX_QUEUED_BYTES = 16 << 20;
/** Affected checks an incident record names (it counts them all). */
const AFFECTED_NAMES = 100;
/** Checks a planned-work record names at most (all of them in practice: a window made through the API is restored from it). */
const WINDOW_NAMES = 10_000;
/** How often a running agent says so (dates a crash). */
export const JOURNAL_ALIVE_MS = 5 * 60_000;
const SYNC_MS = 1000;

/** Up time over known time in a window, with the down and known time (ms). */
export interface Availability {
  ratio: number;
  downMs: number;
  knownMs: number;
}

/** The windows availability is reported over. */
export const AVAILABILITY_WINDOWS = { '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 } as const;

/** One state change of a check, for availability. */
export interface StateChange {
  t: number;
  state: CheckState | 'absent';
}

export class Journal {
  /** Incidents by `${cause}@${since}`, oldest first. */
  private readonly incidentIndex = new Map<string, JournalIncident>();
  /** Planned-work windows by id, oldest first. */
  private readonly windowIndex = new Map<string, JournalWindow>();
  /** Change verifications by `${window}\0${check}`, oldest first. */
  private readonly changeIndex = new Map<string, JournalChange>();
  /** Per check, the spans of planned work it was in (oldest first; `end` absent while open): left out of availability. */
  private readonly plannedSpans = new Map<string, { start: number; end?: number }[]>();
  /** Told of every record appended (not of those read back at start): notifications, the feed. */
  private readonly listeners: ((rec: JournalRecord) => void)[] = [];
  /** State changes per check, oldest first; `absent` marks the agent not running. */
  private readonly changes = new Map<string, StateChange[]>();
  private queue: string[] = [];
  private fh: FileHandle | undefined;
  private size = 0;
  /** Writes in order, one at a time (a rotation must never run beside a write). */
  private chain: Promise<void> = Promise.resolve();
  private scheduled = false;
  private queuedBytes = 0;
  /** A write failed or was short: the next one starts on a line of its own. */
  private torn = false;
  /** The time of the last record read or written, and whether the agent was running then (dates a crash). */
  private lastT = 0;
  private running = false;
  private aliveTimer: NodeJS.Timeout | undefined;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Records lost: the queue overflowed, or the disk refused a write. */
  dropped = 0;
  /** Write or sync failures (disk full, volume gone). */
  writeErrors = 0;
  private errorLoggedAt = 0;

  constructor(
    private readonly limits: JournalLimits,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get file(): string | undefined {
    return this.limits.file;
  }

  /** Reads what the journal files hold (oldest first) into the index, then opens the file for appending. */
  async open(): Promise<void> {
    const file = this.limits.file;
    if (file === undefined) return;
    let read = 0;
    let skipped = 0;
    for (let i = this.limits.keep; i >= 0; i--) {
      const f = i === 0 ? file : `${file}.${i}`;
      const r = await this.readFile(f);
      read += r.records;
      skipped += r.skipped;
    }
    if (skipped > 0) this.log.warn({ file, skipped }, 'journal: skipped lines that are not records (a torn last line after a crash, or damage)');
    try {
      await mkdir(dirname(file), { recursive: true });
      this.fh = await open(file, 'a');
      const st = await this.fh.stat();
      this.size = st.size;
      if (st.size > 0) {
        // A record torn by a crash left no newline: start the next one on a line of its own.
        const last = Buffer.alloc(1);
        const fd = await open(file, 'r');
        try {
          await fd.read(last, 0, 1, st.size - 1);
        } finally {
          await fd.close();
        }
        if (last[0] !== 0x0a) this.queue.push('\n');
      }
    } catch (err) {
      this.fail(err, 'journal: cannot open the file; keeping the journal in memory only');
      this.fh = undefined;
    }
    this.log.info({ file, records: read, incidents: this.incidentIndex.size }, 'journal read');
    this.aliveTimer = setInterval(() => this.append({ t: this.now(), type: 'agent', event: 'alive' }), JOURNAL_ALIVE_MS);
    this.aliveTimer.unref();
  }

  /** Calls `fn` with every record appended from now on (a listener that throws is logged, never stops the journal). */
  subscribe(fn: (rec: JournalRecord) => void): void {
    this.listeners.push(fn);
  }

  /** Appends a record and puts it in the index. */
  append(rec: JournalRecord): void {
    this.index(rec);
    for (const fn of this.listeners) {
      try {
        fn(rec);
      } catch (err) {
        this.log.error({ err }, 'journal listener failed');
      }
    }
    if (this.limits.file === undefined || this.closed) return;
    // An incident's record names at most AFFECTED_NAMES checks and counts them all: a DNS
    // outage updating a 2,000-check incident check by check must not write N² names.
    const written =
      rec.type === 'incident' && rec.affected.length > AFFECTED_NAMES
        ? { ...rec, affected: rec.affected.slice(0, AFFECTED_NAMES), count: rec.affected.length }
        : rec.type === 'maintenance' && rec.checks.length > WINDOW_NAMES
          ? { ...rec, checks: rec.checks.slice(0, WINDOW_NAMES), count: rec.count ?? rec.checks.length }
          : rec;
    const line = `${JSON.stringify(written)}\n`;
    while (this.queue.length > 0 && (this.queue.length >= MAX_QUEUED || this.queuedBytes + line.length > MAX_QUEUED_BYTES)) {
      this.queuedBytes -= (this.queue.shift() as string).length;
      this.dropped++;
    }
    this.queue.push(line);
    this.queuedBytes += line.length;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.chain = this.chain.then(() => this.flush());
    });
  }

  /** Incidents open now or closed at or after `since` (epoch ms), oldest first. */
  incidents(since: number): JournalIncident[] {
    const out: JournalIncident[] = [];
    for (const i of this.incidentIndex.values()) if (i.until === undefined || i.until >= since) out.push({ ...i, affected: [...i.affected] });
    return out;
  }

  /** Planned-work windows scheduled, running, or over at or after `since` (epoch ms), oldest first. */
  windows(since: number): JournalWindow[] {
    const out: JournalWindow[] = [];
    for (const w of this.windowIndex.values()) if ((w.endedAt ?? w.end) >= since) out.push({ ...w, checks: [...w.checks] });
    return out;
  }

  /** Change verifications said at or after `since` (epoch ms), oldest first. */
  verifications(since: number): JournalChange[] {
    const out: JournalChange[] = [];
    for (const c of this.changeIndex.values()) if (c.t >= since || c.state === 'regressed') out.push({ ...c });
    return out;
  }

  /** A check's state changes since `since` (epoch ms), with the state it was in at `since` first. */
  history(check: string, since: number): StateChange[] {
    const list = this.changes.get(check) ?? [];
    let first = 0;
    while (first + 1 < list.length && (list[first + 1] as StateChange).t <= since) first++;
    return list.slice(first);
  }

  /** Whether a planned-work window held the check at `t` (the last 30 days). */
  plannedAt(check: string, t: number): boolean {
    return (this.plannedSpans.get(check) ?? []).some((s) => s.start <= t && t < (s.end ?? Infinity));
  }

  /**
   * A check's availability over the `windowMs` before `now`, from its state changes: the time it
   * was up (ok, degraded, or failing: a failure not yet confirmed) over the time its state was
   * known (unknown, and the agent not running, count neither way). Undefined when nothing was
   * known in the window.
   */
  availability(check: string, windowMs: number, now: number = this.now()): Availability | undefined {
    const from = now - windowMs;
    const list = this.history(check, from);
    let up = 0;
    let down = 0;
    for (let i = 0; i < list.length; i++) {
      const c = list[i] as StateChange;
      const start = Math.max(c.t, from);
      const end = Math.min(list[i + 1]?.t ?? now, now);
      if (end <= start) continue;
      if (c.state === 'down') down += end - start;
      else if (c.state === 'ok' || c.state === 'degraded' || c.state === 'failing') up += end - start;
    }
    // Planned work counts neither way, as an SLA leaves announced maintenance out.
    const spans = this.plannedSpans.get(check);
    if (spans)
      for (let i = 0; i < list.length; i++) {
        const c = list[i] as StateChange;
        const start = Math.max(c.t, from);
        const end = Math.min(list[i + 1]?.t ?? now, now);
        if (end <= start) continue;
        const planned = covered(start, end, spans, now);
        if (c.state === 'down') down -= planned;
        else if (c.state === 'ok' || c.state === 'degraded' || c.state === 'failing') up -= planned;
      }
    const known = up + down;
    return known <= 0 ? undefined : { ratio: up / known, downMs: down, knownMs: known };
  }

  /** Writes what is queued, syncs, closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.chain;
    this.chain = this.chain.then(() => this.flush());
    await this.chain;
    this.closed = true;
    clearTimeout(this.syncTimer);
    clearInterval(this.aliveTimer);
    const fh = this.fh;
    this.fh = undefined;
    if (fh) {
      try {
        await fh.datasync();
      } catch (err) {
        this.fail(err, 'journal: sync failed');
      }
      await fh.close().catch(() => undefined);
    }
  }

  private async flush(): Promise<void> {
    if (this.queue.length > 0 && !this.fh && this.limits.file !== undefined && !this.closed) await this.reopen();
    if (!this.fh) {
      // No file to write to (it could not be opened): drop and count, never hoard.
      this.dropped += this.queue.length;
      this.queue = [];
      this.queuedBytes = 0;
      return;
    }
    while (this.queue.length > 0 && this.fh) {
      // As many records as fit before the file reaches maxSize (at least one).
      let take = 0;
      let bytes = 0;
      const room = Math.max(this.limits.maxBytes - this.size, 0);
      while (take < this.queue.length && (take === 0 || bytes + (this.queue[take] as string).length <= room)) bytes += (this.queue[take++] as string).length;
      const batch = (this.torn ? '\n' : '') + this.queue.slice(0, take).join('');
      const n = take;
      this.queue = this.queue.slice(take);
      this.queuedBytes -= bytes;
      try {
        if (this.size > 0 && this.size + Buffer.byteLength(batch) > this.limits.maxBytes) await this.rotate();
        const fh = this.fh as FileHandle | undefined;
        if (!fh) {
          this.dropped += n;
          return;
        }
        const buf = Buffer.from(batch);
        const { bytesWritten } = await fh.write(buf);
        this.size += bytesWritten;
        this.torn = bytesWritten < buf.length;
        if (this.torn) {
          this.dropped += n;
          this.fail(new Error(`short write (${bytesWritten} of ${buf.length} bytes)`), 'journal: write failed; records lost');
        }
        this.dirty = true;
        this.syncSoon();
      } catch (err) {
        this.dropped += n;
        this.torn = true;
        this.fail(err, 'journal: write failed; records lost');
      }
    }
  }

  private syncSoon(): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (!this.dirty || !this.fh) return;
      this.dirty = false;
      this.fh.datasync().catch((err: unknown) => this.fail(err, 'journal: sync failed'));
    }, SYNC_MS);
    this.syncTimer.unref();
  }

  /** file → file.1 → … → file.keep (the oldest dropped), and a fresh file. */
  private async rotate(): Promise<void> {
    const file = this.limits.file as string;
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    try {
      if (this.limits.keep === 0) await rm(file, { force: true });
      else {
        await rm(`${file}.${this.limits.keep}`, { force: true });
        for (let i = this.limits.keep - 1; i >= 1; i--) await rename(`${file}.${i}`, `${file}.${i + 1}`).catch(() => undefined);
        // The file may be gone (removed by hand, or by logrotate): nothing to keep then.
        await rename(file, `${file}.1`).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      this.log.info({ file, keep: this.limits.keep }, 'journal rotated');
    } finally {
      await this.reopen();
    }
  }

  /** Opens the file for appending again (after a rotation, or a failed open: tried again on the next write). */
  private async reopen(): Promise<void> {
    const file = this.limits.file as string;
    try {
      await mkdir(dirname(file), { recursive: true });
      this.fh = await open(file, 'a');
      this.size = (await this.fh.stat()).size;
    } catch (err) {
      this.fh = undefined;
      this.fail(err, 'journal: cannot open the file; records are dropped until it can');
    }
  }

  private async readFile(f: string): Promise<{ records: number; skipped: number }> {
    let records = 0;
    let skipped = 0;
    try {
      const st = await stat(f);
      if (!st.isFile()) return { records, skipped };
    } catch {
      return { records, skipped };
    }
    const lines = createInterface({ input: createReadStream(f, { encoding: 'utf8', highWaterMark: 1 << 16 }), crlfDelay: Infinity });
    let n = 0;
    for await (const line of lines) {
      if (line === '') continue;
      const rec = line.length > MAX_LINE ? undefined : parseRecord(line);
      if (rec === undefined) skipped++;
      else {
        this.index(rec);
        records++;
      }
      // Yield now and then: a 64 MiB journal must not hold the loop for a second at start.
      if (++n % 2000 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    return { records, skipped };
  }

  private index(rec: JournalRecord): void {
    const horizon = this.now() - JOURNAL_MEMORY_MS;
    const before = this.lastT;
    this.lastT = Math.max(this.lastT, rec.t);
    if (rec.type === 'agent' && rec.event === 'started' && this.running) this.lastT = before;
    if (rec.type === 'state') this.change(rec.check, { t: rec.t, state: rec.to }, horizon);
    else if (rec.type === 'agent') {
      if (rec.event === 'alive') {
        this.lastT = Math.max(this.lastT, rec.t);
        return;
      }
      // Started without a stop before it: the agent crashed, some time after its last record.
      // From then on it was not watching: that time counts neither way.
      const crashed = rec.event === 'started' && this.running;
      if (crashed) for (const check of this.changes.keys()) this.change(check, { t: this.lastT, state: 'absent' }, horizon);
      const stoppedAt = crashed ? this.lastT : rec.t;
      this.lastT = rec.t;
      this.running = rec.event === 'started';
      // Not running: every check's state is unknown until it runs again.
      const state = rec.event === 'stopped' ? 'absent' : 'unknown';
      for (const check of this.changes.keys()) this.change(check, { t: rec.t, state }, horizon);
      // Incidents open when the agent stopped (or, after a crash, when it started again) end
      // there as far as the journal knows: marked interrupted, not resolved.
      for (const i of this.incidentIndex.values()) {
        if (i.until !== undefined) continue;
        i.until = Math.max(stoppedAt, i.since);
        i.interrupted = true;
      }
    } else if (rec.type === 'maintenance') {
      const known = this.windowIndex.get(rec.id);
      const { t, type: _type, event, ...window } = rec;
      // `updated` changes what the window is, not where it stands.
      const state = event === 'updated' ? (known?.state ?? 'started') : event;
      const w: JournalWindow = { ...(known ?? {}), ...window, checks: rec.checks.slice(0, WINDOW_NAMES), state, updatedAt: t };
      if (event === 'started') {
        w.startedAt = t;
        for (const c of w.checks) {
          const list = this.plannedSpans.get(c) ?? [];
          if (list.length === 0) this.plannedSpans.set(c, list);
          const last = list[list.length - 1];
          if (!last || last.end !== undefined) list.push({ start: t });
          while (list.length > 1 && ((list[0] as { end?: number }).end ?? Infinity) < horizon) list.shift();
          if (list.length > MAX_CHANGES_PER_CHECK) list.shift();
        }
      }
      if (event === 'ended' || event === 'cancelled') {
        w.endedAt = t;
        if (event === 'ended')
          for (const c of w.checks) {
            const last = this.plannedSpans.get(c)?.at(-1);
            if (last && last.end === undefined) last.end = t;
          }
      }
      this.windowIndex.delete(rec.id);
      this.windowIndex.set(rec.id, w);
      for (const [k, old] of this.windowIndex) {
        if (this.windowIndex.size <= MAX_INCIDENTS && (old.endedAt ?? old.end) >= horizon) break;
        this.windowIndex.delete(k);
      }
    } else if (rec.type === 'change') {
      const key = `${rec.window}\0${rec.check}`;
      this.changeIndex.delete(key);
      this.changeIndex.set(key, { window: rec.window, title: rec.title, check: rec.check, ended: rec.ended, state: rec.event, message: rec.message, t: rec.t });
      for (const [k, old] of this.changeIndex) {
        if (this.changeIndex.size <= MAX_INCIDENTS && old.t >= horizon) break;
        this.changeIndex.delete(k);
      }
    } else {
      const key = `${rec.cause}@${rec.since}`;
      const known = this.incidentIndex.get(key);
      const i: JournalIncident = known ?? {
        cause: rec.cause,
        since: rec.since,
        affected: [],
        affectedCount: 0,
        peakAffected: 0,
        openedAt: rec.t,
        updatedAt: rec.t,
        ...(rec.reason ? { reason: rec.reason } : {}),
      };
      i.affected = rec.affected.slice(0, 1000);
      i.affectedCount = rec.count ?? rec.affected.length;
      i.updatedAt = rec.t;
      i.peakAffected = Math.max(i.peakAffected, i.affectedCount);
      if (rec.event === 'closed') i.until = rec.t;
      else {
        delete i.until;
        delete i.interrupted;
      }
      if (!known) this.incidentIndex.set(key, i);
      for (const [k, old] of this.incidentIndex) {
        if (this.incidentIndex.size <= MAX_INCIDENTS && (old.until === undefined || old.until >= horizon)) break;
        this.incidentIndex.delete(k);
      }
    }
  }

  private change(check: string, c: StateChange, horizon: number): void {
    let list = this.changes.get(check);
    if (!list) this.changes.set(check, (list = []));
    const last = list[list.length - 1];
    if (last && last.state === c.state) return;
    list.push(c);
    // Keep the last change before the horizon (it says what the state was at the horizon).
    let drop = 0;
    while (drop + 1 < list.length && (list[drop + 1] as StateChange).t <= horizon) drop++;
    if (list.length - drop > MAX_CHANGES_PER_CHECK) drop = list.length - MAX_CHANGES_PER_CHECK;
    if (drop > 0) list.splice(0, drop);
  }

  /** Forgets a check that left the config (its records stay in the file). */
  forget(check: string): void {
    this.changes.delete(check);
  }

  private fail(err: unknown, message: string): void {
    this.writeErrors++;
    const now = Date.now();
    if (now - this.errorLoggedAt < 60_000) return;
    this.errorLoggedAt = now;
    this.log.error({ file: this.limits.file, err: (err as NodeJS.ErrnoException).code ?? String(err) }, message);
  }
}

/** How much of [start, end) the spans cover (spans oldest first, not overlapping; an open one lasts until `now`). */
function covered(start: number, end: number, spans: readonly { start: number; end?: number }[], now: number): number {
  let sum = 0;
  for (const s of spans) {
    const a = Math.max(start, s.start);
    const b = Math.min(end, s.end ?? now);
    if (b > a) sum += b - a;
  }
  return sum;
}

const STATES = new Set(['unknown', 'ok', 'degraded', 'failing', 'down']);

/** A line read back: a record of a known shape, or undefined (torn, damaged, foreign). */
function parseRecord(line: string): JournalRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.t !== 'number' || !Number.isFinite(r.t)) return undefined;
  const str = (x: unknown, max = 256): x is string => typeof x === 'string' && x.length <= max;
  if (r.type === 'state' && str(r.check) && STATES.has(r.from as string) && STATES.has(r.to as string)) {
    return {
      t: r.t,
      type: 'state',
      check: r.check,
      from: r.from as CheckState,
      to: r.to as CheckState,
      ...(str(r.reason) ? { reason: r.reason } : {}),
      ...(str(r.cause) ? { cause: r.cause } : {}),
    };
  }
  if (
    r.type === 'incident' &&
    (r.event === 'opened' || r.event === 'updated' || r.event === 'closed') &&
    str(r.cause) &&
    typeof r.since === 'number' &&
    Array.isArray(r.affected) &&
    r.affected.every((a) => str(a))
  ) {
    return {
      t: r.t,
      type: 'incident',
      event: r.event,
      cause: r.cause,
      since: r.since,
      affected: r.affected,
      ...(typeof r.count === 'number' && Number.isInteger(r.count) && r.count >= 0 ? { count: r.count } : {}),
      ...(str(r.reason) ? { reason: r.reason } : {}),
    };
  }
  if (r.type === 'agent' && (r.event === 'started' || r.event === 'stopped' || r.event === 'alive')) return { t: r.t, type: 'agent', event: r.event };
  const time = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  if (
    r.type === 'maintenance' &&
    (r.event === 'scheduled' || r.event === 'cancelled' || r.event === 'started' || r.event === 'updated' || r.event === 'ended') &&
    str(r.id) &&
    str(r.title, 1024) &&
    (r.source === 'config' || r.source === 'api') &&
    Array.isArray(r.checks) &&
    r.checks.every((c) => str(c)) &&
    time(r.start) &&
    time(r.end) &&
    typeof r.verify === 'boolean'
  ) {
    return {
      t: r.t,
      type: 'maintenance',
      event: r.event,
      id: r.id,
      title: r.title,
      source: r.source,
      checks: r.checks,
      ...(typeof r.count === 'number' && Number.isInteger(r.count) && r.count >= 0 ? { count: r.count } : {}),
      start: r.start,
      end: r.end,
      verify: r.verify,
    };
  }
  if (
    r.type === 'change' &&
    (r.event === 'regressed' || r.event === 'verified' || r.event === 'cleared') &&
    str(r.window) &&
    str(r.title, 1024) &&
    str(r.check) &&
    time(r.ended) &&
    str(r.message, 1024)
  ) {
    return { t: r.t, type: 'change', event: r.event, window: r.window, title: r.title, check: r.check, ended: r.ended, message: r.message };
  }
  return undefined;
}
