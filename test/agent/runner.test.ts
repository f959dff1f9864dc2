// The runner: timeouts through the AbortSignal, probe bugs as "internal", the concurrency cap.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig, type CheckConfig } from '../../config/loader.js';
import { LoopMonitor } from '../../agent/loop-monitor.js';
import { Limiter, Runner, runSpec } from '../../agent/runner.js';
import type { Probe, ProbeResult } from '../../probes/types.js';
import { blackholePeer, BUSY_SLACK_MS, tcpPeer } from '../helpers/peers.js';

const log = pino({ level: 'silent' });

function check(yaml: string): CheckConfig {
  return parseConfig(`checks:\n${yaml}`, 'test.yaml').checks[0] as CheckConfig;
}

const base = check('  - { name: c, kind: tcp, target: "127.0.0.1:9", timeout: 200ms, interval: 1s }');

function runnerWith(probe: Probe<never>, limiter = new Limiter(10), root = new AbortController()) {
  return { runner: new Runner(root.signal, limiter, log, { tcp: probe }), root, limiter };
}

describe('runner', () => {
  it('aborts the probe signal at the check timeout and reports timeout', async () => {
    let aborted = false;
    const probe: Probe<never> = {
      phases: ['connect'],
      run: ({ budget: { signal } }) =>
        new Promise<ProbeResult>((resolve) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve({ ok: false, phases: {}, failure: { phase: 'connect', reason: 'timeout', message: 'aborted' } });
          });
        }),
    };
    const { runner } = runnerWith(probe);
    const t0 = Date.now();
    const out = await runner.run(base);
    expect(aborted).toBe(true);
    expect(out?.result.failure?.reason).toBe('timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(Date.now() - t0).toBeLessThan(1000 + BUSY_SLACK_MS);
  });

  it("a result late only because the agent's own loop stalled keeps its verdict and is marked disturbed; without a loop monitor it is a timeout", async () => {
    // The probe's reply is in at 150 ms (deadline 200 ms), then the loop is blocked until 100 ms
    // past the deadline before the result is handed over: the overrun is the agent's stall.
    const probe: Probe<never> = {
      phases: ['connect'],
      run: ({ budget: { deadline } }) =>
        new Promise<ProbeResult>((resolve) =>
          setTimeout(() => {
            while (performance.now() < deadline + 100) {
              /* a synchronous stall of the agent's loop */
            }
            resolve({ ok: true, phases: { connect: 0.001 } });
          }, 150),
        ),
    };
    const loop = new LoopMonitor();
    const watched = await new Runner(new AbortController().signal, new Limiter(1), log, { tcp: probe }, loop).run(base);
    loop.stop();
    expect(watched?.result.ok).toBe(true);
    expect(watched?.disturbed).toBe(true);
    const { runner } = runnerWith(probe);
    const unwatched = await runner.run(base);
    expect(unwatched?.result.ok).toBe(false);
    expect(unwatched?.result.failure?.reason).toBe('timeout');
  });

  it('a probe that ignores its signal is abandoned after a grace period and reported as timeout', async () => {
    const probe: Probe<never> = { phases: [], run: () => new Promise<ProbeResult>(() => undefined) };
    const { runner, limiter } = runnerWith(probe);
    const out = await runner.run(base);
    expect(out?.result.failure?.reason).toBe('timeout');
    expect(out?.result.failure?.message).toContain('did not stop');
    expect(limiter.inFlight).toBe(0);
  });

  it('a probe that throws is reason internal and does not take the runner down', async () => {
    const probe: Probe<never> = {
      phases: [],
      run: () => {
        throw new TypeError('bug in probe');
      },
    };
    const { runner } = runnerWith(probe);
    const out = await runner.run(base);
    expect(out?.result.failure).toMatchObject({ reason: 'internal' });
    expect(out?.result.failure?.message).toContain('bug in probe');
  });

  it('a failure with an unknown reason becomes internal', async () => {
    const probe: Probe<never> = {
      phases: [],
      run: () => Promise.resolve({ ok: false, phases: {}, failure: { phase: 'x', reason: 'made_up' as never, message: 'm' } }),
    };
    const { runner } = runnerWith(probe);
    expect((await runner.run(base))?.result.failure?.reason).toBe('internal');
  });

  it("reasons are the kind's own: another kind's failure reason becomes internal, an undeclared degraded reason is dropped", async () => {
    const failing: Probe<never> = {
      phases: [],
      run: () => Promise.resolve({ ok: false, phases: {}, failure: { phase: 'x', reason: 'dns_nxdomain', message: 'm' } }),
    };
    expect((await runnerWith(failing).runner.run(base))?.result.failure?.reason).toBe('internal');
    const degraded: Probe<never> = { phases: [], run: () => Promise.resolve({ ok: true, phases: {}, degraded: { reason: 'backlog_growing', message: 'm' } }) };
    const out = await runnerWith(degraded).runner.run(base);
    expect(out?.result.ok).toBe(true);
    expect(out?.result.degraded).toBeUndefined();
    const own: Probe<never> = { phases: [], run: () => Promise.resolve({ ok: true, phases: {}, degraded: { reason: 'sample_loss', message: 'm' } }) };
    expect((await runnerWith(own).runner.run(base))?.result.degraded?.reason).toBe('sample_loss');
  });

  it('a success that came after the deadline is a timeout', async () => {
    const probe: Probe<never> = { phases: [], run: () => new Promise((r) => setTimeout(() => r({ ok: true, phases: {} }), 300)) };
    const { runner } = runnerWith(probe);
    expect((await runner.run(base))?.result.failure?.reason).toBe('timeout');
  });

  it('caps probes in flight and measures the queue wait', async () => {
    let active = 0;
    let peak = 0;
    const probe: Probe<never> = {
      phases: [],
      run: async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 30));
        active--;
        return { ok: true, phases: {} };
      },
    };
    const { runner } = runnerWith(probe, new Limiter(3));
    const outs = await Promise.all(Array.from({ length: 9 }, () => runner.run(base)));
    expect(peak).toBe(3);
    expect(outs.every((o) => o?.result.ok)).toBe(true);
    expect(Math.max(...outs.map((o) => o!.queueWait))).toBeGreaterThan(0.05);
  });

  it('the real tcp probe: the timeout really closes the socket', async () => {
    const peer = await tcpPeer(() => undefined);
    try {
      const c = check(`  - { name: c, kind: tcp, target: "127.0.0.1:${peer.port}", timeout: 300ms, interval: 1s, tcp: { receive: "^x" } }`);
      const out = await new Runner(new AbortController().signal, new Limiter(1), log).run(c);
      expect(out?.result.failure).toMatchObject({ reason: 'timeout', phase: 'expect' });
      await new Promise((r) => setTimeout(r, 100));
      expect(peer.sockets.size).toBe(0);
    } finally {
      await peer.close();
    }
  });

  it('attempts that stall end before the check timeout: the run is degraded with its loss, not cut off', async () => {
    let n = 0;
    const peer = await tcpPeer((s) => (n++ % 2 === 0 ? s.end('hi\n') : undefined));
    try {
      const c = check(
        `  - { name: c, kind: tcp, target: "127.0.0.1:${peer.port}", timeout: 600ms, interval: 1s, tcp: { samples: 6, sampleSpacing: 20ms, receive: "^hi" } }`,
      );
      const out = await new Runner(new AbortController().signal, new Limiter(1), log).run(c);
      expect(out?.result).toMatchObject({ ok: true, degraded: { reason: 'sample_loss' } });
      expect(out?.result.values?.samples_loss_ratio).toBe(0.5);
      expect(out?.duration).toBeLessThan(0.6);
    } finally {
      await peer.close();
    }
  });

  it('expect: blocked against unanswered SYNs succeeds within the check timeout, without connectTimeout', async () => {
    const peer = await blackholePeer();
    try {
      const c = check(`  - { name: c, kind: tcp, target: "127.0.0.1:${peer.port}", timeout: 500ms, interval: 1s, tcp: { expect: blocked } }`);
      // With the agent's loop monitor, as the agent runs it: on a busy machine the attempt's
      // timer (50 ms before the deadline) may fire late, and a stall that explains the overrun
      // leaves the probe's verdict standing (the run is marked disturbed instead).
      const loop = new LoopMonitor();
      const out = await new Runner(new AbortController().signal, new Limiter(1), log, undefined, loop).run(c);
      loop.stop();
      expect(out?.result.failure).toBeUndefined();
      expect(out?.result.ok).toBe(true);
    } finally {
      await peer.close();
    }
  });

  it('stopping the agent (root abort) ends a hanging connect at once', async () => {
    const peer = await blackholePeer();
    try {
      const c = check(`  - { name: c, kind: tcp, target: "127.0.0.1:${peer.port}", timeout: 10s, interval: 30s }`);
      const root = new AbortController();
      const t0 = Date.now();
      setTimeout(() => root.abort(new Error('stop')), 100);
      const out = await new Runner(root.signal, new Limiter(1), log).run(c);
      expect(Date.now() - t0).toBeLessThan(1500 + BUSY_SLACK_MS);
      expect(out?.result.ok).toBe(false);
    } finally {
      await peer.close();
    }
  });

  it("a check's memory lasts across its runs, is made only when a probe reads it, and starts afresh for a changed check", async () => {
    const counts: number[] = [];
    let logged = 0;
    const probe: Probe<never> = {
      phases: ['connect'],
      run: (ctx) => {
        const n = ((ctx.memory.get('n') as number | undefined) ?? 0) + 1;
        ctx.memory.set('n', n);
        counts.push(n);
        ctx.log.info({ n }, 'a probe line');
        logged++;
        return Promise.resolve({ ok: true, phases: { connect: 0.001 } });
      },
    };
    const { runner } = runnerWith(probe);
    await runner.run(base);
    await runner.run(base);
    const changed = check('  - { name: c, kind: tcp, target: "127.0.0.1:9", timeout: 300ms, interval: 1s }');
    await runner.run(changed);
    await runner.run(base);
    expect(counts).toEqual([1, 2, 1, 3]);
    expect(logged).toBe(4);
  });

  it("runs a check from its run spec alone (all a probe thread is sent), loading the kind's probe code on the first run", async () => {
    const peer = await tcpPeer((s) => s.end());
    try {
      const c = check(`  - { name: c, kind: tcp, target: "127.0.0.1:${peer.port}", timeout: 2s, interval: 5s, title: Firewall path }`);
      const spec = runSpec(c);
      expect(Object.keys(spec).sort()).toEqual(['kind', 'name', 'options', 'secrets', 'targets', 'timeoutMs']);
      // What a probe thread receives: a structured clone.
      const out = await new Runner(new AbortController().signal, new Limiter(1), log).run(structuredClone(spec));
      expect(out?.result).toMatchObject({ ok: true });
      expect(out?.result.phases.connect).toBeGreaterThan(0);
    } finally {
      await peer.close();
    }
  });

  it('a kind that has no probe fails its run as internal, with the reason', async () => {
    const out = await new Runner(new AbortController().signal, new Limiter(1), log).run({ ...base, kind: 'nonesuch' } as never);
    expect(out?.result.failure).toMatchObject({ reason: 'internal', message: expect.stringMatching(/no probe registered for kind nonesuch/) as unknown });
  });
});
