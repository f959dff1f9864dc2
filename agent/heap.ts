// How far the agent lets V8's heap grow past what it holds alive. V8 sizes its heap for the
// host: with much memory (24 GiB on the bench machine) it lets the old generation reach up to
// four times its live size before a full collection, so at 10,000 checks (about 100 MiB live)
// the agent's RSS rose from 220 to 560 MiB over 12 minutes and was still rising: not a leak,
// but not what ops want from an agent that runs for months beside other services. The agent
// asks V8 to grow the heap by at most HEAP_GROWTH_PERCENT between full collections instead;
// they come more often, each marks concurrently on a helper thread, and runs they disturb
// are marked like any other stall (agent/loop-monitor.ts). The setting starts only after
// HEAP_TUNE_AFTER_MS: while the agent starts, its live heap grows fivefold within seconds, and
// growing it 30 % at a time then meant a full collection every few hundred milliseconds (the
// scheduler's lag in the first interval went from 51 to 344 ms at p99). Measured:
// bench/RESULTS.md.
import { setFlagsFromString } from 'node:v8';

/** The default growth of the heap over its live size between full collections. */
export const HEAP_GROWTH_PERCENT = 30;
/** How long after start-up the growth setting begins. */
export const HEAP_TUNE_AFTER_MS = 60_000;

/**
 * Reads `VAKT_HEAP_GROWTH_PERCENT` (an integer 0-1000; 0 leaves V8's own heuristics), else
 * HEAP_GROWTH_PERCENT, unless node was started with its own heap flags (then those are kept).
 * Throws on a bad value. Returns what will be in force (for the log) and `apply`, which sets it.
 */
export function heapGrowth(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): { setting: string; apply(): void } {
  const own = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].find((a) => /^--(heap-growing-percent|max-old-space-size|max-heap-size)\b/.test(a.replace(/_/g, '-')));
  const none = { apply() {} };
  if (own) return { setting: `node's own ${own.split('=')[0]} kept`, ...none };
  const raw = env.VAKT_HEAP_GROWTH_PERCENT;
  const percent = raw === undefined || raw === '' ? HEAP_GROWTH_PERCENT : /^\d{1,4}$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!(percent >= 0 && percent <= 1000)) throw new RangeError(`VAKT_HEAP_GROWTH_PERCENT must be an integer from 0 to 1000, got "${raw}"`);
  if (percent === 0) return { setting: "V8's own heap growth", ...none };
  return { setting: `heap growth ${percent}% over live, from ${HEAP_TUNE_AFTER_MS / 1000} s after start`, apply: () => setFlagsFromString(`--heap-growing-percent=${percent}`) };
}
