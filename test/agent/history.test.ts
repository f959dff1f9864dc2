// The run history ring: order, wrap-around, phases that did not run, flags and reasons.
import { describe, expect, it } from 'vitest';
import { HISTORY, RunHistory, type RunRecord } from '../../agent/history.js';

const run = (i: number, extra: Partial<RunRecord> = {}): RunRecord => ({
  time: 1_000 * i,
  result: 'ok',
  durationSeconds: i / 100,
  phases: { connect: i / 1000 },
  ...extra,
});

describe('RunHistory', () => {
  it('keeps the last `capacity` runs, oldest first, across wrap-around', () => {
    const h = new RunHistory(4);
    expect(h.length).toBe(0);
    expect(h.records()).toEqual([]);
    expect(h.last()).toBeUndefined();
    for (let i = 1; i <= 6; i++) h.push(run(i));
    expect(h.length).toBe(4);
    expect(h.records().map((r) => r.time)).toEqual([3_000, 4_000, 5_000, 6_000]);
    expect(h.last()).toEqual(run(6));
    expect(h.records()).toEqual([3, 4, 5, 6].map((i) => run(i)));
  });

  it('keeps phases per run: a phase that did not run is absent, not 0 or stale', () => {
    const h = new RunHistory(3);
    h.push({ time: 1, result: 'ok', durationSeconds: 0.1, phases: { resolve: 0.01, connect: 0.02, tls: 0.03 } });
    h.push({ time: 2, result: 'failed', durationSeconds: 0.2, phases: { resolve: 0.01 }, reason: 'refused' });
    h.push({ time: 3, result: 'ok', durationSeconds: 0, phases: { connect: 0 } });
    h.push({ time: 4, result: 'degraded', durationSeconds: 0.4, phases: {}, reason: 'slow', disturbed: true });
    expect(h.records()).toEqual([
      { time: 2, result: 'failed', durationSeconds: 0.2, phases: { resolve: 0.01 }, reason: 'refused' },
      { time: 3, result: 'ok', durationSeconds: 0, phases: { connect: 0 } },
      { time: 4, result: 'degraded', durationSeconds: 0.4, phases: {}, reason: 'slow', disturbed: true },
    ]);
  });

  it('of() and clear()', () => {
    const h = RunHistory.of(Array.from({ length: HISTORY + 5 }, (_, i) => run(i)));
    expect(h.length).toBe(HISTORY);
    expect(h.records()[0]?.time).toBe(5_000);
    h.clear();
    expect(h.length).toBe(0);
    h.push(run(9, { result: 'failed', reason: 'timeout' }));
    expect(h.records()).toEqual([run(9, { result: 'failed', reason: 'timeout' })]);
  });
});
