// Probe threads: runs go to worker threads and come back as the same outcomes the runner gives
// on the main thread; the concurrency cap stays the main thread's; a thread that ends is started
// again and its runs in flight fail with reason internal; the agent stops its threads.
import { getPriority } from 'node:os';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ProbeThreads } from '../../agent/probe-threads.js';
import { Limiter } from '../../agent/runner.js';
import { parseConfig, type CheckConfig } from '../../config/loader.js';
import { blackholePeer, closedPort, tcpPeer, type Peer } from '../helpers/peers.js';

const log = pino({ level: 'silent' });

function checks(yaml: string): CheckConfig[] {
  return parseConfig(`checks:\n${yaml}`, 'test.yaml').checks;
}

const peers: Peer[] = [];
const pools: { threads: ProbeThreads; root: AbortController }[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) {
    p.root.abort();
    await p.threads.terminate();
  }
  for (const p of peers.splice(0)) await p.close();
});

function pool(count: number, limiter = new Limiter(100), maxLoopDelayMs = 20): { threads: ProbeThreads; lines: string[]; root: AbortController } {
  const root = new AbortController();
  const lines: string[] = [];
  const threads = new ProbeThreads(count, root.signal, limiter, log, (l) => lines.push(l), { maxLoopDelayMs, logLevel: 'info' });
  pools.push({ threads, root });
  return { threads, lines, root };
}

describe('probe threads', () => {
  it('run checks on two threads with the same outcomes as on the main thread', async () => {
    const up = await tcpPeer((s) => s.end());
    peers.push(up);
    const dead = await closedPort();
    // Loop stalls of a busy machine are not what this test is about (test/agent/disturbed.test.ts is).
    const { threads, lines } = pool(2, undefined, 60_000);
    const list = checks(
      Array.from({ length: 6 }, (_, i) => `  - { name: up${i}, kind: tcp, target: "127.0.0.1:${up.port}" }`)
        .concat(`  - { name: dead, kind: tcp, target: "127.0.0.1:${dead}" }`)
        .join('\n'),
    );
    for (const c of list) threads.set(c);
    const outcomes = await Promise.all(list.map((c) => threads.run(c)));
    for (const o of outcomes.slice(0, 6)) {
      expect(o?.result.ok).toBe(true);
      expect(o?.result.phases.connect).toBeGreaterThan(0);
      expect(o?.duration).toBeGreaterThan(0);
      expect(o?.disturbed).toBe(false);
    }
    expect(outcomes[6]?.result.failure?.reason).toBe('refused');
    // Both threads started and said so, through the agent's log destination.
    const started = lines.map((l) => JSON.parse(l) as { msg: string; thread: number; svc: string }).filter((l) => l.msg === 'probe thread started');
    expect(started.map((l) => l.thread).sort()).toEqual([0, 1]);
    expect(started.every((l) => l.svc === 'vakt')).toBe(true);
  });

  it('a check removed from the threads is not run; a changed check runs with its new config', async () => {
    const up = await tcpPeer((s) => s.end());
    peers.push(up);
    const dead = await closedPort();
    const { threads } = pool(1);
    const [before] = checks(`  - { name: c, kind: tcp, target: "127.0.0.1:${dead}" }`);
    const [after] = checks(`  - { name: c, kind: tcp, target: "127.0.0.1:${up.port}" }`);
    threads.set(before!);
    expect((await threads.run(before!))?.result.failure?.reason).toBe('refused');
    threads.set(after!);
    expect((await threads.run(after!))?.result.ok).toBe(true);
    threads.remove('c');
    expect(await threads.run(after!)).toBeUndefined();
  });

  it('the concurrency cap holds across threads, and queue wait is measured on the main thread', async () => {
    const hole = await blackholePeer();
    peers.push(hole);
    const limiter = new Limiter(2);
    const { threads } = pool(2, limiter);
    const list = checks(Array.from({ length: 4 }, (_, i) => `  - { name: h${i}, kind: tcp, target: "127.0.0.1:${hole.port}", timeout: 300ms }`).join('\n'));
    for (const c of list) threads.set(c);
    const runs = list.map((c) => threads.run(c));
    await new Promise((r) => setTimeout(r, 50));
    expect(limiter.inFlight).toBe(2);
    expect(limiter.queued).toBe(2);
    const outcomes = await Promise.all(runs);
    expect(outcomes.map((o) => o?.result.failure?.reason)).toEqual(['timeout', 'timeout', 'timeout', 'timeout']);
    // The two that waited for a slot waited about one timeout.
    expect(outcomes.filter((o) => (o?.queueWait ?? 0) > 0.2)).toHaveLength(2);
    expect(limiter.inFlight).toBe(0);
  });

  it('a thread that ends fails its runs in flight with reason internal and is started again', async () => {
    const hole = await blackholePeer();
    peers.push(hole);
    const up = await tcpPeer((s) => s.end());
    peers.push(up);
    const { threads } = pool(1);
    const [hung, ok] = checks(
      `  - { name: hung, kind: tcp, target: "127.0.0.1:${hole.port}", timeout: 5s }\n  - { name: ok, kind: tcp, target: "127.0.0.1:${up.port}" }`,
    );
    threads.set(hung!);
    threads.set(ok!);
    expect((await threads.run(ok!))?.result.ok).toBe(true);
    const inFlight = threads.run(hung!);
    await new Promise((r) => setTimeout(r, 100));
    await threads.workers[0]!.terminate();
    const lost = await inFlight;
    expect(lost?.result.failure).toMatchObject({ phase: 'internal', reason: 'internal', message: expect.stringContaining('probe thread ended') as unknown });
    expect(threads.restarts).toBe(1);
    // A run asked for while the thread is being started again (after the back-off, as it lived
    // < 1 s) waits for it, and the new thread knows the checks again.
    const again = await threads.run(ok!);
    expect(again?.result).toMatchObject({ ok: true });
    expect(threads.restarts).toBe(1);
  });

  it('a config that cannot be passed to its thread fails its runs with reason internal, and the other checks run', async () => {
    const up = await tcpPeer((s) => s.end());
    peers.push(up);
    const lines: string[] = [];
    const root = new AbortController();
    const errors: string[] = [];
    const spy = pino({ level: 'error' }, { write: (l: string) => errors.push(l) });
    const threads = new ProbeThreads(1, root.signal, new Limiter(10), spy, (l) => lines.push(l), { maxLoopDelayMs: 20, logLevel: 'info' });
    pools.push({ threads, root });
    const [odd, fine] = checks(`  - { name: odd, kind: tcp, target: "127.0.0.1:${up.port}" }\n  - { name: fine, kind: tcp, target: "127.0.0.1:${up.port}" }`);
    // A function cannot be structured-cloned: what a future config value might bring.
    const unclonable = { ...odd!, options: { ...odd!.options, hook: () => 1 } } as unknown as CheckConfig;
    threads.set(unclonable);
    threads.set(fine!);
    const [a, b] = await Promise.all([threads.run(unclonable), threads.run(fine!)]);
    expect(a?.result.failure).toMatchObject({ reason: 'internal', message: expect.stringContaining('not known on its probe thread') as unknown });
    expect(b?.result.ok).toBe(true);
    expect(errors.join('')).toContain('could not be passed to its probe thread');
    expect(errors.join('')).toContain('"odd"');
    expect(threads.restarts).toBe(0);
  });

  it.runIf(process.platform === 'linux')(
    'the main thread runs at a lower CPU priority than the probe threads, also after a restart',
    async () => {
      const up = await tcpPeer((s) => s.end());
      peers.push(up);
      const { threads, lines } = pool(1);
      const [c] = checks(`  - { name: c, kind: tcp, target: "127.0.0.1:${up.port}" }`);
      threads.set(c!);
      expect((await threads.run(c!))?.result.ok).toBe(true);
      const nice = threads.nice!;
      expect(nice.main).toBe(Math.min(19, nice.probes + 5));
      // This (the calling) thread is the main thread here; the probe thread said its own value.
      expect(getPriority()).toBe(nice.main);
      const started = () => lines.map((l) => JSON.parse(l) as { msg: string; nice?: number }).filter((l) => l.msg === 'probe thread started');
      expect(started()[0]?.nice).toBe(nice.probes);
      // A thread started again (by the main thread, so at its lower priority at first) asks for the probes' value (root may).
      await threads.workers[0]!.terminate();
      // A new isolate loads the probes: seconds on a busy machine.
      for (let i = 0; i < 600 && started().length < 2; i++) await new Promise((r) => setTimeout(r, 100));
      expect(started()[1]?.nice).toBe(process.getuid?.() === 0 ? nice.probes : nice.main);
    },
    90_000,
  );

  it('stopping aborts the runs in flight on the threads', async () => {
    const hole = await blackholePeer();
    peers.push(hole);
    const up = await tcpPeer((s) => s.end());
    peers.push(up);
    const { threads, root } = pool(1);
    const [warm, hung] = checks(
      `  - { name: warm, kind: tcp, target: "127.0.0.1:${up.port}" }\n  - { name: hung, kind: tcp, target: "127.0.0.1:${hole.port}", timeout: 30s }`,
    );
    threads.set(warm!);
    threads.set(hung!);
    // The thread is up and running (a new isolate loads the probes: a while on a busy machine);
    // a run asked for before it could start would end as not begun, not aborted.
    expect((await threads.run(warm!))?.result.ok).toBe(true);
    const inFlight = threads.run(hung!);
    await new Promise((r) => setTimeout(r, 200));
    root.abort(new Error('agent stopping'));
    const out = await inFlight;
    // The probe saw its signal abort and ended long before its 30 s timeout.
    expect(out?.result.ok).toBe(false);
    expect(out?.duration).toBeLessThan(10);
  });
});
