// Planned work at run time: which windows are open now, from the config (`maintenance:`, one-off
// or recurring by cron in an IANA zone) and from the admin API (POST /api/v1/maintenance). A
// timer wakes at the next start or end (at least once a minute, so a clock step is caught); each
// start and end is journaled, and windows made through the API are journaled when scheduled, so
// they outlive a restart. The agent is told of starts and ends (hooks) and asks, per check,
// which window holds it: a Map lookup on the recording path.
import { CronExpressionParser } from 'cron-parser';
import type { Logger } from 'pino';
import { DEFAULT_VERIFY, MAX_WINDOW_MS, pickChecks, parseDateTime, type MaintenanceSpec, type VerifySpec } from '../config/maintenance.js';
import { plainText } from '../config/schema.js';
import type { Language } from '../probes/kit/kind.js';
import type { Journal, JournalWindow } from './journal.js';
import { parseDuration } from '../config/units.js';

/** An occurrence of planned work: a config window's current or next occurrence, or a window made through the API. */
export interface Window {
  id: string;
  /** The config window's name (absent for API windows). */
  name?: string;
  title: string | Partial<Record<Language, string>>;
  source: 'config' | 'api';
  /** The checks of this agent it holds. */
  checks: string[];
  start: number;
  end: number;
  verify?: VerifySpec;
  /** Who made it (API windows: the credential's name, or "loopback"). */
  by?: string;
}

/**
 * Whether planned work holds a check: it is in a window, or down because of a root cause that is
 * (`get` looks the cause up). Such a check is no problem of its own: the page does not count it,
 * its service is not made worse by it.
 */
export function heldByPlannedWork(
  v: { maintenance?: Window | undefined; cause?: string | undefined },
  get: (name: string) => { maintenance?: Window | undefined } | undefined,
): boolean {
  return v.maintenance !== undefined || (v.cause !== undefined && get(v.cause)?.maintenance !== undefined);
}

export interface PlannedWorkHooks {
  /** A window opened: its checks enter maintenance. */
  started(w: Window): void;
  /** A window closed (at its end, or ended early through the API): its checks leave maintenance. */
  ended(w: Window, at: number): void;
}

/** Windows made through the API at most (open or scheduled). */
const MAX_API_WINDOWS = 1000;
/** The timer wakes at least this often (a clock step, a cron occurrence beyond a long sleep). */
const MAX_SLEEP_MS = 60_000;
/** How far ahead upcoming windows are listed. */
export const UPCOMING_MS = 7 * 86_400_000;

export class PlannedWork {
  private specs: MaintenanceSpec[] = [];
  private names: string[] = [];
  private picked = new Map<MaintenanceSpec, string[]>();
  private readonly api = new Map<string, Window>();
  /** Open windows by id. */
  private readonly open = new Map<string, Window>();
  /** Check name -> the open windows holding it (usually one). */
  private readonly byCheck = new Map<string, Window[]>();
  /** Config occurrences ended early through the API (they stay ended until their time is over). */
  private readonly endedEarly = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private seq = 0;

  constructor(
    private readonly journal: Journal,
    private readonly hooks: PlannedWorkHooks,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** The config's windows and this agent's checks (at start and on every reload); re-evaluates. */
  configure(specs: readonly MaintenanceSpec[], checkNames: readonly string[]): void {
    this.specs = [...specs];
    this.names = [...checkNames];
    // The checks each config window picks, worked out once per config (not at every evaluation).
    this.picked = new Map(specs.map((spec) => [spec, pickChecks(spec.patterns, this.names)]));
    // API windows named their checks when made: keep those this agent still runs.
    const running = new Set(checkNames);
    for (const w of this.api.values()) w.checks = w.checks.filter((c) => running.has(c));
    this.evaluate();
  }

  /**
   * Takes back what the journal remembers: windows made through the API that are still to come
   * or open, and windows that were open when the agent stopped (those whose end passed while it
   * was away end now, so their checks are verified). Call once, after journal.open().
   */
  restore(): void {
    const now = this.now();
    // Ids of windows made through the API are never reused (the journal remembers 30 days of them).
    for (const w of this.journal.windows(0)) {
      const n = Number(/^api-(\d+)$/.exec(w.id)?.[1]);
      if (Number.isInteger(n)) this.seq = Math.max(this.seq, n);
    }
    for (const w of this.journal.windows(now - MAX_WINDOW_MS)) {
      if (w.state === 'cancelled' || w.state === 'ended') continue;
      const window = fromJournal(w);
      if (w.source === 'api') this.api.set(w.id, window);
      if (w.state === 'started') {
        // Open when the agent stopped: open again without a second `started`; evaluate() ends it if its time is over.
        this.open.set(w.id, window);
        for (const c of window.checks) this.hold(c, window);
        this.hooks.started(window);
      }
    }
    this.evaluate();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** The open window holding a check (the one that ends last), if any. */
  windowOf(check: string): Window | undefined {
    const list = this.byCheck.get(check);
    if (!list || list.length === 0) return undefined;
    return list.reduce((a, b) => (b.end > a.end ? b : a));
  }

  /** Open windows, and those to come within UPCOMING_MS (each config window's next occurrence, the API's scheduled ones), by start. */
  list(now: number = this.now()): { open: Window[]; upcoming: Window[] } {
    const open = [...this.open.values()].sort((a, b) => a.start - b.start);
    const upcoming: Window[] = [];
    for (const w of this.api.values()) if (w.start > now && w.start <= now + UPCOMING_MS) upcoming.push(w);
    for (const s of this.specs) {
      const next = this.occurrence(s, now, 'next');
      if (next && next.start > now && next.start <= now + UPCOMING_MS && !this.open.has(next.id)) upcoming.push(next);
    }
    return { open, upcoming: upcoming.sort((a, b) => a.start - b.start) };
  }

  /**
   * A window through the admin API: checks (names or globs of this agent's checks), a title, and
   * when (start, default now; end, or a duration). Returns it, or why it cannot be.
   */
  schedule(body: unknown, by: string): Window | { error: string } {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return { error: 'expected a JSON object' };
    const b = body as Record<string, unknown>;
    const known = new Set(['title', 'checks', 'start', 'end', 'duration', 'timezone', 'verify']);
    const unknown = Object.keys(b).find((k) => !known.has(k));
    if (unknown !== undefined) return { error: `unknown field ${JSON.stringify(unknown.slice(0, 64))} (expected ${[...known].join(', ')})` };
    if (this.api.size >= MAX_API_WINDOWS) return { error: `at most ${MAX_API_WINDOWS} windows made through the API at once` };
    if (
      !Array.isArray(b.checks) ||
      b.checks.length === 0 ||
      b.checks.length > 1000 ||
      !b.checks.every((c) => typeof c === 'string' && /^[A-Za-z0-9_.*-]{1,256}$/.test(c))
    )
      return { error: 'checks: expected a list of check names or globs (at most 1000)' };
    const checks = pickChecks(b.checks as string[], this.names);
    if (checks.length === 0) return { error: 'checks: no check of this agent matches' };
    if (b.title !== undefined && (typeof b.title !== 'string' || b.title.length === 0 || b.title.length > 200))
      return { error: 'title: expected a string of 1 to 200 characters' };
    if (b.timezone !== undefined && typeof b.timezone !== 'string') return { error: 'timezone: expected an IANA time zone' };
    const zone = b.timezone ?? 'UTC';
    const now = this.now();
    const at = (key: 'start' | 'end'): number | undefined | { error: string } => {
      const v = b[key];
      if (v === undefined) return undefined;
      const t = typeof v === 'string' && v.length <= 40 ? parseDateTime(v, zone) : undefined;
      return t ?? { error: `${key}: expected an ISO 8601 date and time such as 2026-12-05T06:00+01:00` };
    };
    const start = at('start') ?? now;
    if (typeof start === 'object') return start;
    let end = at('end');
    if (typeof end === 'object') return end;
    if (b.duration !== undefined) {
      if (end !== undefined) return { error: 'expected end or duration, not both' };
      const d = typeof b.duration === 'string' ? parseDuration(b.duration) : undefined;
      if (d === undefined || d <= 0) return { error: 'duration: expected a duration such as 2h or 30m' };
      end = start + d;
    }
    if (end === undefined) return { error: 'expected end or duration' };
    if (end <= now) return { error: 'end: expected in the future' };
    if (end <= start) return { error: 'end: expected after start' };
    if (end - start > MAX_WINDOW_MS) return { error: 'expected a window of at most 7 days' };
    let verify: VerifySpec | undefined = DEFAULT_VERIFY;
    if (b.verify === false) verify = undefined;
    else if (b.verify !== undefined && b.verify !== true) return { error: 'verify: expected true or false' };
    const id = `api-${++this.seq}`;
    const w: Window = { id, title: b.title ?? 'Planned work', source: 'api', checks, start, end, ...(verify ? { verify } : {}), by };
    this.api.set(id, w);
    this.journal.append({ t: now, type: 'maintenance', event: 'scheduled', ...journalWindow(w) });
    this.log.info({ window: id, checks: checks.length, start: new Date(start).toISOString(), end: new Date(end).toISOString(), by }, 'planned work scheduled');
    this.evaluate();
    return w;
  }

  /** Ends an open window now (its checks are verified) or cancels one to come. */
  remove(id: string, by: string): 'ended' | 'cancelled' | 'not found' | 'config' {
    const now = this.now();
    const w = this.open.get(id) ?? this.api.get(id);
    if (!w) return 'not found';
    if (w.source === 'config') {
      if (!this.open.has(id)) return 'config';
      // A config window ended early: this occurrence closes now; the next one comes as configured.
      this.endedEarly.add(id);
      w.end = now;
      this.evaluate();
      this.log.info({ window: id, by }, 'planned work ended early');
      return 'ended';
    }
    if (this.open.has(id)) {
      w.end = now;
      this.evaluate();
      this.log.info({ window: id, by }, 'planned work ended early');
      return 'ended';
    }
    this.api.delete(id);
    this.journal.append({ t: now, type: 'maintenance', event: 'cancelled', ...journalWindow(w) });
    this.log.info({ window: id, by }, 'planned work cancelled');
    return 'cancelled';
  }

  /** Opens and closes windows as the clock says, and sets the timer for the next change. */
  private evaluate(): void {
    if (this.stopped) return;
    const now = this.now();
    const due = new Map<string, Window>();
    let next = now + MAX_SLEEP_MS;
    const current = new Set<string>();
    for (const s of this.specs) {
      const w = this.occurrence(s, now, 'current');
      if (w) current.add(w.id);
      // A config occurrence ended early through the API stays ended.
      if (w && !this.endedEarly.has(w.id)) due.set(w.id, this.reconfigured(this.open.get(w.id), w, now) ?? w);
      const n = this.occurrence(s, now, 'next');
      if (n) next = Math.min(next, n.start);
    }
    for (const id of this.endedEarly) if (!current.has(id)) this.endedEarly.delete(id);
    for (const w of this.api.values()) {
      if (w.start <= now && now < w.end) due.set(w.id, w);
      if (w.start > now) next = Math.min(next, w.start);
    }
    for (const [id, w] of this.open) {
      if (due.has(id)) continue;
      this.open.delete(id);
      for (const c of w.checks) this.release(c, w);
      if (w.source === 'api') this.api.delete(id);
      const at = Math.min(now, w.end);
      this.journal.append({ t: now, type: 'maintenance', event: 'ended', ...journalWindow(w) });
      this.log.info({ window: id, checks: w.checks.length }, `planned work ended: ${plainText(w.title)}`);
      this.hooks.ended(w, at);
    }
    for (const [id, w] of due) {
      next = Math.min(next, w.end);
      if (this.open.has(id)) continue;
      this.open.set(id, w);
      for (const c of w.checks) this.hold(c, w);
      this.journal.append({ t: now, type: 'maintenance', event: 'started', ...journalWindow(w) });
      this.log.info({ window: id, checks: w.checks.length, until: new Date(w.end).toISOString() }, `planned work started: ${plainText(w.title)}`);
      this.hooks.started(w);
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.evaluate(), Math.max(10, Math.min(next - now, MAX_SLEEP_MS)));
    this.timer.unref();
  }

  /**
   * An open config window as a reload left it: a new title or end is taken (and journaled as
   * `updated`, so the feed and the webhooks tell of it); its checks stay those it opened with
   * until it ends (they entered maintenance, and their pre-window level was kept, then).
   */
  private reconfigured(open: Window | undefined, fresh: Window, now: number): Window | undefined {
    if (!open) return undefined;
    if (plainText(open.title) === plainText(fresh.title) && open.end === fresh.end) return open;
    open.title = fresh.title;
    open.end = fresh.end;
    if (open.end > now) {
      this.journal.append({ t: now, type: 'maintenance', event: 'updated', ...journalWindow(open) });
      this.log.info({ window: open.id, until: new Date(open.end).toISOString() }, `planned work changed: ${plainText(open.title)}`);
    }
    return open;
  }

  /** A config window's occurrence holding `now` (current), or the first starting after it (next). */
  private occurrence(s: MaintenanceSpec, now: number, which: 'current' | 'next'): Window | undefined {
    let start: number;
    let end: number;
    if (s.when.type === 'once') {
      ({ start, end } = s.when);
      if (which === 'current' ? !(start <= now && now < end) : start <= now) return undefined;
    } else {
      try {
        // cron-parser works in whole seconds: a second ahead, so an occurrence starting at `now` is found by prev().
        const e = CronExpressionParser.parse(s.when.expression, { currentDate: new Date(which === 'current' ? now + 1000 : now), tz: s.when.timezone });
        start = (which === 'current' ? e.prev() : e.next()).getTime();
      } catch {
        return undefined;
      }
      end = start + s.when.durationMs;
      if (which === 'current' && (now >= end || start > now)) return undefined;
      if (which === 'next' && start <= now) return undefined;
    }
    return {
      id: `${s.name}@${new Date(start).toISOString()}`,
      name: s.name,
      title: s.title,
      source: 'config',
      checks: this.picked.get(s) ?? pickChecks(s.patterns, this.names),
      start,
      end,
      ...(s.verify ? { verify: s.verify } : {}),
    };
  }

  private hold(check: string, w: Window): void {
    const list = this.byCheck.get(check);
    if (list) list.push(w);
    else this.byCheck.set(check, [w]);
  }

  private release(check: string, w: Window): void {
    const list = this.byCheck.get(check)?.filter((x) => x !== w);
    if (list && list.length > 0) this.byCheck.set(check, list);
    else this.byCheck.delete(check);
  }
}

function journalWindow(w: Window): Omit<JournalWindow, 'state' | 'updatedAt'> {
  return { id: w.id, title: plainText(w.title), source: w.source, checks: w.checks, start: w.start, end: w.end, verify: w.verify !== undefined };
}

function fromJournal(w: JournalWindow): Window {
  return { id: w.id, title: w.title, source: w.source, checks: [...w.checks], start: w.start, end: w.end, ...(w.verify ? { verify: DEFAULT_VERIFY } : {}) };
}
