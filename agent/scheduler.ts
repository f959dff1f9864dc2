// When each check runs. Interval checks first fire within a start spread, then on a fixed grid
// whose phase is derived from the check's name (so 1,000 checks spread over the interval instead
// of firing together, and keep their phase across restarts), each run nudged by a small jitter. Cron checks use
// node-cron with a time zone. A check never runs twice at once: a fire while the previous run
// is still going is skipped and counted. Lag (how late a timer fired) is reported per fire.
// Interval fires are gathered in slots of TICK_MS: one timer per slot, not per check. Every timer
// that wakes a sleeping process costs about 0.1 ms of CPU on these machines, which at 200 runs a
// second was most of a probe's cost, and with probe threads a slot also wakes the thread its runs
// go to. So a slot whose next slot holds few runs fires that one too (MERGE_UP_TO runs at most,
// TICK_MS early): at 200 runs a second half the wake-ups; at 1,000 the slots stay apart, since
// 20 runs started together measurably delayed each other's completions (bench/RESULTS.md). A
// slot is far finer than the jitter every run already has (1 % of the interval: 600 ms at 60 s).
import { createTask, type ScheduledTask } from 'node-cron';
import type { Schedule } from '../config/loader.js';

export interface SchedulerHooks {
  /** Runs the check; the returned promise settles when the run is over. */
  fire(name: string): Promise<void>;
  /** A fire that found the previous run still in progress. */
  skipped(name: string): void;
  /** Seconds between the intended and the actual fire time. */
  lag(name: string, seconds: number): void;
}

/** Interval fires are due on multiples of this (ms since the epoch). */
export const TICK_MS = 10;
/** A slot fires the next one with it when the two hold at most this many runs together. */
export const MERGE_UP_TO = 6;

interface Slot {
  timer: NodeJS.Timeout;
  entries: Set<Entry>;
}

interface Entry {
  name: string;
  schedule: Schedule;
  running: boolean;
  /** The slot (epoch ms, a multiple of TICK_MS) the next interval fire waits in. */
  slot?: number | undefined;
  cron?: ScheduledTask;
  /** Grid time (epoch ms) of the next interval fire, before jitter. */
  nextSlot?: number;
  /** A retry requested by the detector (epoch ms), fired independently of the grid. */
  retryTimer?: NodeJS.Timeout | undefined;
}

export class Scheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly slots = new Map<number, Slot>();
  private stopped = false;

  constructor(
    private readonly hooks: SchedulerHooks,
    private jitter = 0.01,
    private startSpreadMs = 10_000,
    private readonly random: () => number = Math.random,
  ) {}

  setTiming(jitter: number, startSpreadMs: number): void {
    this.jitter = jitter;
    this.startSpreadMs = startSpreadMs;
  }

  get size(): number {
    return this.entries.size;
  }

  add(name: string, schedule: Schedule): void {
    if (this.stopped) return;
    this.remove(name);
    const entry: Entry = { name, schedule, running: false };
    this.entries.set(name, entry);
    if (schedule.type === 'interval') {
      // The first run comes within the start spread; later runs follow the check's grid.
      entry.nextSlot = Date.now() + phaseOffset(name, Math.min(schedule.everyMs, this.startSpreadMs));
      this.arm(entry);
    } else {
      const task = createTask(
        schedule.expression,
        (ctx) => {
          this.hooks.lag(name, Math.max(0, (Date.now() - ctx.date.getTime()) / 1000));
          this.trigger(entry);
        },
        { name: `vakt:${name}`, ...(schedule.timezone ? { timezone: schedule.timezone } : {}), noOverlap: false },
      );
      entry.cron = task;
      void task.start();
    }
  }

  remove(name: string): void {
    const e = this.entries.get(name);
    if (!e) return;
    this.unslot(e);
    if (e.retryTimer) clearTimeout(e.retryTimer);
    if (e.cron) void e.cron.destroy();
    this.entries.delete(name);
  }

  /** Runs the check again after `ms`, outside its regular schedule (confirmation retries). */
  runAfter(name: string, ms: number): void {
    const e = this.entries.get(name);
    if (!e || this.stopped) return;
    if (e.retryTimer) clearTimeout(e.retryTimer);
    e.retryTimer = setTimeout(() => {
      e.retryTimer = undefined;
      this.trigger(e);
    }, ms);
  }

  /** Runs the check now, outside its schedule, unless a run of it is under way (that one will do). */
  runNow(name: string): void {
    const e = this.entries.get(name);
    if (!e || this.stopped || e.running) return;
    this.trigger(e);
  }

  stop(): void {
    this.stopped = true;
    for (const name of [...this.entries.keys()]) this.remove(name);
  }

  private arm(entry: Entry): void {
    const schedule = entry.schedule;
    if (schedule.type !== 'interval' || entry.nextSlot === undefined) return;
    const jitterMs = Math.floor((this.random() * this.jitter * schedule.everyMs) / TICK_MS) * TICK_MS;
    const due = Math.ceil((entry.nextSlot + jitterMs) / TICK_MS) * TICK_MS;
    entry.slot = due;
    let slot = this.slots.get(due);
    if (!slot) {
      slot = { timer: setTimeout(() => this.fireSlot(due), Math.max(0, due - Date.now())), entries: new Set() };
      this.slots.set(due, slot);
    }
    slot.entries.add(entry);
  }

  private fireSlot(due: number): void {
    const slot = this.slots.get(due);
    this.slots.delete(due);
    if (!slot) return;
    const firedAt = Date.now();
    const next = this.slots.get(due + TICK_MS);
    const along = next && slot.entries.size + next.entries.size <= MERGE_UP_TO ? next : undefined;
    if (along) {
      // The next slot's runs come along, TICK_MS early (lag 0): one wake-up instead of two.
      clearTimeout(along.timer);
      this.slots.delete(due + TICK_MS);
    }
    for (const entry of slot.entries) this.fireEntry(entry, due, firedAt);
    if (along) for (const entry of along.entries) this.fireEntry(entry, due + TICK_MS, firedAt);
  }

  /** An interval entry's fire from the slot due at `due`: lag, the next slot on its grid, the run. */
  private fireEntry(entry: Entry, due: number, firedAt: number): void {
    entry.slot = undefined;
    const schedule = entry.schedule;
    if (schedule.type !== 'interval') return;
    this.hooks.lag(entry.name, Math.max(0, (firedAt - due) / 1000));
    // Next slot on the grid at least half an interval away; slots missed while the process
    // was stalled are not replayed.
    entry.nextSlot = firstSlot(entry.name, schedule.everyMs, firedAt + Math.floor(schedule.everyMs / 2) - 1);
    this.arm(entry);
    this.trigger(entry);
  }

  private unslot(entry: Entry): void {
    const key = entry.slot;
    if (key === undefined) return;
    entry.slot = undefined;
    const slot = this.slots.get(key);
    if (!slot) return;
    slot.entries.delete(entry);
    if (slot.entries.size === 0) {
      clearTimeout(slot.timer);
      this.slots.delete(key);
    }
  }

  private trigger(entry: Entry): void {
    if (this.entries.get(entry.name) !== entry) return;
    if (entry.running) {
      this.hooks.skipped(entry.name);
      return;
    }
    entry.running = true;
    this.hooks
      .fire(entry.name)
      .catch(() => undefined)
      .finally(() => {
        entry.running = false;
      });
  }
}

/** The check's phase within its interval: a stable hash of its name, spread over [0, interval). */
export function phaseOffset(name: string, everyMs: number): number {
  let h = fnv1a(name);
  // Finalise (murmur3 fmix32) so names differing in one trailing character spread well.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  const offset = Math.floor(((h >>> 0) / 2 ** 32) * everyMs);
  // On the slot grid, so a check's runs stay exactly one interval apart.
  return everyMs >= TICK_MS ? offset - (offset % TICK_MS) : offset;
}

/** FNV-1a of a name's UTF-16 code units (unsigned 32 bits): a check's stable hash. */
export function fnv1a(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** First grid slot after `now` for a check: slots are epoch-aligned at offset + k*interval. */
export function firstSlot(name: string, everyMs: number, now: number): number {
  const offset = phaseOffset(name, everyMs);
  const k = Math.floor((now - offset) / everyMs) + 1;
  return k * everyMs + offset;
}
