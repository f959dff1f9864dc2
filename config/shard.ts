// Sharding: which of n agents runs a check, by rendezvous (highest-random-weight) hashing of the
// check's name. Every agent computes the same answer from the name alone, with no coordination:
// each check lands on exactly one shard, and going from n to n+1 shards moves only the checks the
// new shard wins, about 1/(n+1) of them (each check keeps its shard unless the new one outbids
// it). The shard comes from `--shard i/n`, VAKT_SHARD=i/n, or VAKT_SHARDS=n with the index taken
// from a StatefulSet pod's ordinal (the number at the end of its HOSTNAME, vakt-2 → 2).
import { createHash } from 'node:crypto';

export interface Shard {
  /** 0-based: 0 … count-1 (a StatefulSet's ordinals). */
  index: number;
  count: number;
}

/** More shards than this is a typo, not a region. */
export const MAX_SHARDS = 1000;

/** "i/n" → the shard, or why not. */
export function parseShard(text: string): Shard | { error: string } {
  const m = /^(\d{1,4})\/(\d{1,4})$/.exec(text.trim());
  if (!m) return { error: `expected a shard as INDEX/COUNT such as 0/3 (index from 0), found "${text}"` };
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > MAX_SHARDS) return { error: `expected a shard count from 1 to ${MAX_SHARDS}, found ${count}` };
  if (index >= count) return { error: `expected a shard index below the count (0 to ${count - 1}), found ${index}` };
  return { index, count };
}

/**
 * The shard from the environment: VAKT_SHARD=i/n, or VAKT_SHARDS=n with the index from the pod's
 * ordinal in HOSTNAME. Undefined when neither is set (the agent runs every check placed at it).
 */
export function shardFromEnv(env: NodeJS.ProcessEnv): Shard | { error: string } | undefined {
  const explicit = env.VAKT_SHARD;
  if (explicit !== undefined && explicit !== '') {
    const s = parseShard(explicit);
    return 'error' in s ? { error: `VAKT_SHARD: ${s.error}` } : s;
  }
  const total = env.VAKT_SHARDS;
  if (total === undefined || total === '') return undefined;
  if (!/^\d{1,4}$/.test(total)) return { error: `VAKT_SHARDS: expected a number of shards, found "${total}"` };
  const host = env.HOSTNAME ?? '';
  const ordinal = /-(\d{1,4})$/.exec(host);
  if (!ordinal) {
    return {
      error: `VAKT_SHARDS=${total} takes the shard index from a StatefulSet pod's name (HOSTNAME such as vakt-2), found HOSTNAME="${host}": set VAKT_SHARD=i/n instead`,
    };
  }
  const s = parseShard(`${ordinal[1]}/${total}`);
  return 'error' in s ? { error: `VAKT_SHARDS with HOSTNAME ${host}: ${s.error}` } : s;
}

/** The weight shard `i` bids for a check: 48 bits of SHA-256 over the shard and the name. */
function weight(name: string, i: number): number {
  return createHash('sha256').update(`${i}\u0000${name}`).digest().readUIntBE(0, 6);
}

/** The shard (0 … count-1) that runs the check called `name`: the highest bidder. */
export function shardOf(name: string, count: number): number {
  let best = 0;
  let bestWeight = -1;
  for (let i = 0; i < count; i++) {
    const w = weight(name, i);
    if (w > bestWeight) {
      best = i;
      bestWeight = w;
    }
  }
  return best;
}

export function formatShard(s: Shard): string {
  return `${s.index}/${s.count}`;
}
