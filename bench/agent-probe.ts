// Preloaded into the agent's child process by the benchmark (`node --import agent-probe.js
// vakt.js run ...`): measures from inside the process without changing what the agent does.
// - Wraps the scheduler's hooks (fire, skipped, lag) when the first check is added, so the bench
//   gets runs started, runs skipped and every lag value exactly (the exported histogram's
//   buckets, 1 ms then 5 ms, are too coarse for a p50 or p99 below 5 ms).
// - Watches the event loop (perf_hooks.monitorEventLoopDelay, 10 ms resolution).
// - Answers the bench's IPC messages { id, reset } with { id, stats } (see ChildStats in lib.ts).
// Only the scheduler's constructor argument `hooks` is relied on; if it is not there, `hooked`
// is false and the bench falls back to the exported metrics.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Scheduler, type SchedulerHooks } from '../agent/scheduler.js';

const preloadAt = performance.now();
const RESOLUTION_MS = 10;
const eld = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
eld.enable();

let hooked = false;
let fires = 0;
let skipped = 0;
/** Lag tally since the last reset: seconds -> count (the scheduler's values are whole ms). */
let lag = new Map<number, number>();
const wrapped = new WeakSet<object>();

const proto = Scheduler.prototype as unknown as { add: (this: { hooks?: SchedulerHooks }, ...args: unknown[]) => unknown };
const add = proto.add;
proto.add = function (this: { hooks?: SchedulerHooks }, ...args: unknown[]) {
  const h = this.hooks;
  if (h && typeof h.fire === 'function' && typeof h.lag === 'function' && typeof h.skipped === 'function' && !wrapped.has(h)) {
    wrapped.add(h);
    const fire = h.fire.bind(h);
    const skip = h.skipped.bind(h);
    const onLag = h.lag.bind(h);
    h.fire = (name) => {
      fires++;
      return fire(name);
    };
    h.skipped = (name) => {
      skipped++;
      skip(name);
    };
    h.lag = (name, seconds) => {
      lag.set(seconds, (lag.get(seconds) ?? 0) + 1);
      onLag(name, seconds);
    };
    hooked = true;
  }
  return add.apply(this, args);
};

const ms = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);

/** A full collection on request (the bench asks once, after its window): what is really alive. */
function collect(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

process.on('message', (m: { id: number; reset?: boolean; live?: boolean }) => {
  if (m.live) collect();
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const stats = {
    hooked,
    cpu: (cpu.user + cpu.system) / 1e6,
    fires,
    skipped,
    lag: [...lag],
    eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), count: eld.count },
    rss: mem.rss / 1048576,
    heapUsed: mem.heapUsed / 1048576,
    heapTotal: mem.heapTotal / 1048576,
    external: mem.external / 1048576,
    preloadAt,
  };
  if (m.reset) {
    eld.reset();
    lag = new Map();
  }
  process.send?.({ id: m.id, stats });
});
// The channel must not keep the agent alive: `vakt run` exits on its own (a bad config, SIGTERM).
process.channel?.unref();
