// The scheduler under fake timers: start spread, grid, jitter, no overlap, cron with time zone.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { firstSlot, MERGE_UP_TO, phaseOffset, Scheduler, TICK_MS, type SchedulerHooks } from '../../agent/scheduler.js';

function recorder(runMs = 0) {
  const fires: { name: string; at: number }[] = [];
  const skipped: string[] = [];
  const lags: number[] = [];
  const hooks: SchedulerHooks = {
    fire: (name) => {
      fires.push({ name, at: Date.now() });
      return runMs > 0 ? new Promise((r) => setTimeout(r, runMs)) : Promise.resolve();
    },
    skipped: (name) => skipped.push(name),
    lag: (_n, s) => lags.push(s),
  };
  return { hooks, fires, skipped, lags };
}

describe('scheduler', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-11-23T07:00:00.000Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('spreads the first runs of 1,000 checks over the start spread, not one millisecond', async () => {
    const rec = recorder();
    const s = new Scheduler(rec.hooks, 0, 10_000);
    const t0 = Date.now();
    for (let i = 0; i < 1000; i++) s.add(`check-${i}`, { type: 'interval', everyMs: 30_000 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(rec.fires).toHaveLength(1000);
    // Fires share slots of TICK_MS (one timer each; a sparse slot takes the next along), about
    // one check per slot here.
    const perSlot = new Map<number, number>();
    for (const f of rec.fires) perSlot.set(Math.floor(f.at / TICK_MS), (perSlot.get(Math.floor(f.at / TICK_MS)) ?? 0) + 1);
    expect(Math.max(...perSlot.values())).toBeLessThanOrEqual(12);
    expect(perSlot.size).toBeGreaterThan(250);
    const offsets = rec.fires.map((f) => f.at - t0);
    expect(Math.min(...offsets)).toBeLessThan(200);
    expect(Math.max(...offsets)).toBeGreaterThan(9_800);
    // Roughly uniform: every second of the spread gets a share.
    for (let sec = 0; sec < 10; sec++) {
      const n = offsets.filter((o) => o >= sec * 1000 && o < (sec + 1) * 1000).length;
      expect(n).toBeGreaterThan(60);
      expect(n).toBeLessThan(140);
    }
    s.stop();
  });

  it('then runs each check once per interval on its own grid', async () => {
    const rec = recorder();
    const s = new Scheduler(rec.hooks, 0, 10_000);
    for (let i = 0; i < 50; i++) s.add(`c${i}`, { type: 'interval', everyMs: 15_000 });
    await vi.advanceTimersByTimeAsync(10_000 + 15_000 * 6);
    for (let i = 0; i < 50; i++) {
      const mine = rec.fires.filter((f) => f.name === `c${i}`).map((f) => f.at);
      expect(mine.length).toBeGreaterThanOrEqual(6);
      expect(mine.length).toBeLessThanOrEqual(8);
      // After the first run, consecutive runs are exactly one interval apart (no jitter here).
      for (let k = 2; k < mine.length; k++) expect((mine[k] as number) - (mine[k - 1] as number)).toBe(15_000);
      // ...on the check's grid: epoch-aligned at its name-derived phase (or one slot early,
      // when the slot before its own fired it along).
      expect([0, 15_000 - TICK_MS]).toContain(((mine[2] as number) - phaseOffset(`c${i}`, 15_000)) % 15_000);
    }
    s.stop();
  });

  it('a slot fires the next one along when the two hold few runs, and not when they hold many', async () => {
    const everyMs = 60_000;
    // Names whose grid phases are one slot apart (first runs come later; watch the second).
    const byPhase = new Map<number, string[]>();
    for (let i = 0; i < 20_000; i++) {
      const name = `m${i}`;
      const p = phaseOffset(name, everyMs);
      byPhase.set(p, [...(byPhase.get(p) ?? []), name]);
    }
    const phases = [...byPhase.keys()].sort((a, b) => a - b);
    const pair = phases.find((p) => byPhase.get(p)!.length === 1 && byPhase.get(p + TICK_MS)?.length === 1)!;
    const crowd = phases.find((p) => byPhase.get(p)!.length >= 3 && (byPhase.get(p + TICK_MS)?.length ?? 0) >= MERGE_UP_TO - 2)!;
    expect(pair).toBeDefined();
    expect(crowd).toBeDefined();
    const rec = recorder();
    const s = new Scheduler(rec.hooks, 0, 1000);
    const few = [byPhase.get(pair)![0]!, byPhase.get(pair + TICK_MS)![0]!];
    const many = [...byPhase.get(crowd)!, ...byPhase.get(crowd + TICK_MS)!];
    for (const name of [...few, ...many]) s.add(name, { type: 'interval', everyMs });
    await vi.advanceTimersByTimeAsync(1000 + everyMs * 2);
    const second = (name: string) => rec.fires.filter((f) => f.name === name)[1]!.at;
    // Two runs in neighbouring slots: one wake-up, the later run a slot early (lag 0).
    expect(second(few[1]!)).toBe(second(few[0]!));
    expect((second(few[0]!) - pair) % everyMs).toBe(0);
    // More than MERGE_UP_TO: each slot on its own time.
    expect(many.length).toBeGreaterThan(MERGE_UP_TO);
    for (const name of many) expect((second(name) - phaseOffset(name, everyMs)) % everyMs).toBe(0);
    expect(Math.max(...rec.lags)).toBe(0);
    s.stop();
  });

  it('adds a small random jitter per run, bounded by jitter x interval', async () => {
    const rec = recorder();
    const s = new Scheduler(rec.hooks, 0.01, 1000, () => 0.999);
    s.add('j', { type: 'interval', everyMs: 60_000 });
    await vi.advanceTimersByTimeAsync(1000 + 60_000 * 3 + 1000);
    const at = rec.fires.map((f) => f.at);
    const grid = (t: number) => (t - phaseOffset('j', 60_000)) % 60_000;
    for (const t of at.slice(1)) {
      expect(grid(t)).toBeGreaterThan(500);
      expect(grid(t)).toBeLessThanOrEqual(600);
    }
    s.stop();
  });

  it('never runs a check twice at once: a fire during a run is skipped and counted', async () => {
    const rec = recorder(25_000);
    const s = new Scheduler(rec.hooks, 0, 1);
    s.add('slow', { type: 'interval', everyMs: 10_000 });
    await vi.advanceTimersByTimeAsync(61_000);
    // Runs of 25 s on a 10 s grid: a run, then two skipped slots, and so on.
    expect(rec.fires.length).toBeGreaterThanOrEqual(2);
    expect(rec.fires.length).toBeLessThanOrEqual(3);
    expect(rec.skipped.length).toBeGreaterThanOrEqual(3);
    for (let k = 1; k < rec.fires.length; k++) expect((rec.fires[k]?.at ?? 0) - (rec.fires[k - 1]?.at ?? 0)).toBeGreaterThanOrEqual(25_000);
    s.stop();
  });

  it('measures lag when the event loop fired a timer late', async () => {
    const rec = recorder();
    const s = new Scheduler(rec.hooks, 0, 1);
    s.add('a', { type: 'interval', everyMs: 1000 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(rec.lags.length).toBeGreaterThan(3);
    expect(Math.max(...rec.lags)).toBeLessThan(0.01);
    s.stop();
  });

  it('runAfter fires a retry outside the grid', async () => {
    const rec = recorder();
    const s = new Scheduler(rec.hooks, 0, 1);
    s.add('r', { type: 'interval', everyMs: 60_000 });
    await vi.advanceTimersByTimeAsync(10);
    const before = rec.fires.length;
    s.runAfter('r', 5000);
    await vi.advanceTimersByTimeAsync(5001);
    expect(rec.fires.length).toBe(before + 1);
    s.stop();
  });

  it('a removed check stops firing', async () => {
    const rec = recorder();
    const s = new Scheduler(rec.hooks, 0, 1);
    s.add('x', { type: 'interval', everyMs: 1000 });
    await vi.advanceTimersByTimeAsync(2500);
    s.remove('x');
    const n = rec.fires.length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(rec.fires.length).toBe(n);
  });

  it('cron fires at the wall-clock time of its time zone', async () => {
    const rec = recorder();
    const s = new Scheduler(rec.hooks);
    // 03:00 in Stockholm (CET, UTC+1) is 02:00 UTC.
    vi.setSystemTime(new Date('2026-11-23T01:59:58.000Z'));
    s.add('stockholm', { type: 'cron', expression: '0 3 * * *', timezone: 'Europe/Stockholm' });
    s.add('utc', { type: 'cron', expression: '0 3 * * *', timezone: 'UTC' });
    await vi.advanceTimersByTimeAsync(4000);
    expect(rec.fires.map((f) => f.name)).toEqual(['stockholm']);
    expect(new Date(rec.fires[0]!.at).toISOString()).toBe('2026-11-23T02:00:00.000Z');
    s.stop();
  });

  it('grid slots are stable for a name and spread across the interval', () => {
    expect(phaseOffset('dns-ns1', 30_000)).toBe(phaseOffset('dns-ns1', 30_000));
    const now = Date.now();
    const slot = firstSlot('dns-ns1', 30_000, now);
    expect(slot).toBeGreaterThan(now);
    expect(slot - now).toBeLessThanOrEqual(30_000);
    const offsets = new Set(Array.from({ length: 200 }, (_, i) => Math.floor(phaseOffset(`fw-${i}`, 30_000) / 3000)));
    expect(offsets.size).toBe(10);
  });
});
