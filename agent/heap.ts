// How far the agent lets V8's heap grow past what it holds alive. V8 sizes its heap for the
// host: with much memory (24 GiB on the bench machine) it lets the old generation reach up to
// four times its live size before a full collection, so at 10,000 checks (about 100 MiB live)
// the agent's RSS rose from 220 to 560 MiB over 12 minutes and was still rising: not a leak,
// but not what ops want from an agent that runs for months beside other services. The agent
// asks V8 to grow the heap by at most HEAP_GROWTH_PERCENT between full collections instead;
// they come more often, each marks in small steps (on the thread that owns the heap, see
// NODE_FLAGS), and runs they disturb are marked like any other stall (agent/loop-monitor.ts).
// The setting starts once the agent is ready (config loaded, checks scheduled), after one full
// collection: loading the config leaves most of a 150-190 MiB heap behind as garbage, which V8
// otherwise collected only 20-40 s later, in one long pause. At 10,000 checks that collection
// at ready took the start-up minute's RSS from 373 to 245 MiB and the first interval's scheduler
// lag from p99 138 / max 216 ms to 47 / 74 ms (bench/RESULTS.md, 2026-12-06). Set while the
// config still loads, 30 % had meant a full collection every few hundred milliseconds (lag p99
// 344 ms in the first interval).
// The entry points (bin/vakt.js, `npm start`, the container's ENTRYPOINT) also start node with
// NODE_FLAGS, measured at 10,000 checks and at 200 probes/s (bench/RESULTS.md, 2026-12-03):
// - `--single-threaded-gc`: V8 collects each heap on the thread that owns it instead of waking
//   helper threads for scavenges, marking and sweeping. On two cores the helpers cost more than
//   they saved (12-22 ms of CPU a second of the agent's 78-97 at 200 tcp runs a second; 4-6 ms
//   single-threaded): CPU per probe 0.57 -> 0.49 times blackbox_exporter's (tcp).
// - `--max-semi-space-size=4`: the main heap's young generation at most 3 x 4 MiB (V8 sizes it
//   for the host, up to 3 x 16 MiB). Almost nothing a run allocates on the main thread outlives
//   it; RSS at 10,000 checks 292-315 -> 269-290 MiB, CPU per probe unchanged within the spread.
//   (The probe threads set their own, agent/probe-threads.ts.)
// Neither can be set once node runs (V8 reads them when it creates the heap, and aborts on some),
// so they are on the command line; an agent started without them says so in its log.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** The node flags vakt's entry points start it with. */
export const NODE_FLAGS: readonly string[] = ['--single-threaded-gc', '--max-semi-space-size=4'];

/** A node flag as node reads it: `--max_old_space_size` is `--max-old-space-size`. */
function flagName(arg: string): string {
  return arg.replace(/_/g, '-');
}

/** Whether node runs with NODE_FLAGS (for the start-up log line). */
export function nodeFlagsSetting(execArgv: readonly string[] = process.execArgv): string {
  const given = execArgv.map(flagName);
  const missing = NODE_FLAGS.filter((f) => !given.includes(f));
  return missing.length === 0
    ? 'as shipped'
    : `node started without ${missing.join(' ')}: more CPU or memory per check, see docs/operations.md#node-flags-and-garbage-collection`;
}

/** The default growth of the heap over its live size between full collections. */
export const HEAP_GROWTH_PERCENT = 30;

/**
 * One full collection now (V8's gc(), reached without starting node with --expose-gc): what
 * loading the config left behind goes at once, and a growth setting takes effect from the live
 * heap it finds, instead of at V8's first full collection tens of seconds later. Done whatever the
 * heap setting (node's own flags too): the garbage is the same.
 */
function fullCollection(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * Reads `VAKT_HEAP_GROWTH_PERCENT` (an integer 0-1000; 0 leaves V8's own heuristics), else
 * HEAP_GROWTH_PERCENT, unless node was started with its own heap flags (then those are kept).
 * Throws on a bad value. Returns what will be in force (for the log) and `apply`, which the CLI
 * calls once the agent is ready: it sets the growth, if vakt's, and collects once (fullCollection).
 */
export function heapGrowth(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): { setting: string; apply(): void } {
  const own = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].find((a) =>
    /^--(heap-growing-percent|max-old-space-size|max-heap-size)\b/.test(flagName(a)),
  );
  const collectOnly = { apply: fullCollection };
  if (own) return { setting: `node's own ${own.split('=')[0]} kept`, ...collectOnly };
  const raw = env.VAKT_HEAP_GROWTH_PERCENT;
  const percent = raw === undefined || raw === '' ? HEAP_GROWTH_PERCENT : /^\d{1,4}$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!(percent >= 0 && percent <= 1000)) throw new RangeError(`VAKT_HEAP_GROWTH_PERCENT must be an integer from 0 to 1000, got "${raw}"`);
  if (percent === 0) return { setting: "V8's own heap growth", ...collectOnly };
  return {
    setting: `heap growth ${percent}% over live, from ready`,
    apply() {
      setFlagsFromString(`--heap-growing-percent=${percent}`);
      fullCollection();
    },
  };
}
