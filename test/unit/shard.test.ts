// Sharding by rendezvous hashing (config/shard.ts) and its place in placeChecks: every check on
// exactly one shard, shards of about equal size, n → n+1 moving only what the new shard wins
// (about 1/(n+1)), the shard from --shard, VAKT_SHARD or a StatefulSet ordinal, and the
// dependsOn edges that cross shards.
import { describe, expect, it } from 'vitest';
import { placeChecks } from '../../config/placement.js';
import { parseShard, shardFromEnv, shardOf } from '../../config/shard.js';

const names = Array.from({ length: 10_000 }, (_, i) => `check-${i.toString(36)}-${(i * 7919) % 1000}`);

describe('rendezvous hashing', () => {
  it('puts every check on exactly one shard, about evenly', () => {
    for (const count of [1, 2, 3, 7]) {
      const sizes = new Array<number>(count).fill(0);
      for (const n of names) {
        const s = shardOf(n, count);
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThan(count);
        sizes[s]!++;
      }
      const fair = names.length / count;
      for (const size of sizes) expect(Math.abs(size - fair) / fair).toBeLessThan(0.06);
    }
  });

  it('n to n+1 moves about 1/(n+1) of the checks, all to the new shard', () => {
    for (let n = 1; n <= 9; n++) {
      let moved = 0;
      for (const name of names) {
        const before = shardOf(name, n);
        const after = shardOf(name, n + 1);
        if (before !== after) {
          moved++;
          expect(after).toBe(n);
        }
      }
      expect(Math.abs(moved / names.length - 1 / (n + 1))).toBeLessThan(0.02);
    }
  });

  it('is the same answer everywhere: a pure function of the name and the count', () => {
    expect(names.slice(0, 50).map((n) => shardOf(n, 5))).toEqual(names.slice(0, 50).map((n) => shardOf(n, 5)));
    expect(shardOf('cosmic-login', 1)).toBe(0);
  });
});

describe('where the shard comes from', () => {
  it('--shard i/n', () => {
    expect(parseShard('1/3')).toEqual({ index: 1, count: 3 });
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
    expect(parseShard('3/3')).toEqual({ error: 'expected a shard index below the count (0 to 2), found 3' });
    expect(parseShard('0/0')).toEqual({ error: 'expected a shard count from 1 to 1000, found 0' });
    expect(parseShard('1 of 3')).toMatchObject({ error: expect.stringMatching(/^expected a shard as INDEX\/COUNT such as 0\/3/) });
    expect(parseShard('-1/3')).toMatchObject({ error: expect.any(String) });
  });

  it('VAKT_SHARD, or VAKT_SHARDS with the StatefulSet ordinal from HOSTNAME', () => {
    expect(shardFromEnv({})).toBeUndefined();
    expect(shardFromEnv({ VAKT_SHARD: '2/4' })).toEqual({ index: 2, count: 4 });
    expect(shardFromEnv({ VAKT_SHARD: '2/4', VAKT_SHARDS: '9', HOSTNAME: 'vakt-7' })).toEqual({ index: 2, count: 4 });
    expect(shardFromEnv({ VAKT_SHARDS: '3', HOSTNAME: 'vakt-2' })).toEqual({ index: 2, count: 3 });
    expect(shardFromEnv({ VAKT_SHARDS: '3', HOSTNAME: 'vakt-a-0' })).toEqual({ index: 0, count: 3 });
    expect(shardFromEnv({ VAKT_SHARDS: '3', HOSTNAME: 'vakt-3' })).toEqual({
      error: 'VAKT_SHARDS with HOSTNAME vakt-3: expected a shard index below the count (0 to 2), found 3',
    });
    expect(shardFromEnv({ VAKT_SHARDS: '3', HOSTNAME: 'vakthost' })).toMatchObject({
      error: expect.stringMatching(/HOSTNAME="vakthost": set VAKT_SHARD=i\/n instead/),
    });
    expect(shardFromEnv({ VAKT_SHARDS: 'three' })).toEqual({ error: 'VAKT_SHARDS: expected a number of shards, found "three"' });
    expect(shardFromEnv({ VAKT_SHARD: 'x' })).toMatchObject({ error: expect.stringMatching(/^VAKT_SHARD: expected a shard/) });
  });
});

describe('placeChecks with a shard', () => {
  const checks: { name: string; sites?: string[]; dependsOn: string[] }[] = [
    { name: 'dns', dependsOn: [] },
    ...Array.from({ length: 40 }, (_, i) => ({ name: `app-${i}`, dependsOn: ['dns'] })),
    { name: 'clinic-only', sites: ['clinic-north'], dependsOn: [] },
  ];

  it('splits the site’s checks over the shards; the union is the site’s checks, each once', () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 3; i++) {
      const p = placeChecks({ checks }, { site: 'dc1', shard: { index: i, count: 3 } });
      for (const c of p.checks) {
        expect(seen.has(c.name)).toBe(false);
        seen.set(c.name, i);
      }
      expect(p.checks.length + p.elsewhere.length).toBe(checks.length);
    }
    expect([...seen.keys()].sort()).toEqual(
      checks
        .filter((c) => c.sites === undefined)
        .map((c) => c.name)
        .sort(),
    );
  });

  it('lists the dependsOn edges to checks another shard runs, and only those', () => {
    const dnsShard = shardOf('dns', 3);
    for (let i = 0; i < 3; i++) {
      const p = placeChecks({ checks }, { site: 'dc1', shard: { index: i, count: 3 } });
      const expected = i === dnsShard ? [] : p.checks.filter((c) => c.name.startsWith('app-')).map((c) => ({ check: c.name, dependsOn: 'dns' }));
      expect(p.remote).toEqual(expected);
    }
    expect(placeChecks({ checks }, { site: 'dc1' }).remote).toEqual([]);
    expect(placeChecks({ checks }, { site: 'dc1', shard: { index: 0, count: 1 } }).checks.length).toBe(41);
  });
});
