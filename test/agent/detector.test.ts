// Outage detection: confirmation by retries, recovery, flapping, baselines, root cause.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { Detector } from '../../agent/detector.js';
import { incidents, rootCauses, type Node } from '../../agent/root-cause.js';
import { parseConfig, type CheckConfig } from '../../config/loader.js';
import type { ProbeResult } from '../../probes/types.js';
import { blackholePeer, closedPort, tcpPeer, type Peer } from '../helpers/peers.js';

function check(extra = '', retries = 2): CheckConfig {
  return parseConfig(
    `checks:\n  - { name: c, kind: tcp, target: "10.0.0.1:1", interval: 30s, timeout: 2s, retries: ${retries}, retryInterval: 5s${extra} }\n`,
    't.yaml',
  ).checks[0] as CheckConfig;
}
const ok: ProbeResult = { ok: true, phases: {} };
const bad: ProbeResult = { ok: false, phases: {}, failure: { phase: 'connect', reason: 'timeout', message: 'x' } };

describe('detector: states', () => {
  it('a failure is "failing" with a retry, and "down" only after `retries` more failures', () => {
    const d = new Detector();
    const c = check();
    expect(d.update(c, ok, 0).status.state).toBe('ok');
    const v1 = d.update(c, bad, 1000);
    expect(v1.status.state).toBe('failing');
    expect(v1.retryAfterMs).toBe(5000);
    const v2 = d.update(c, bad, 2000);
    expect(v2.status.state).toBe('failing');
    expect(v2.changed).toBe(false);
    const v3 = d.update(c, bad, 3000);
    expect(v3.status.state).toBe('down');
    expect(v3.status.since).toBe(3000);
    expect(v3.retryAfterMs).toBeUndefined();
  });

  it('a success while failing goes straight back; recovery from down needs recoverAfter successes', () => {
    const d = new Detector();
    const c = check(', recoverAfter: 3');
    d.update(c, bad, 0);
    expect(d.update(c, ok, 1).status.state).toBe('ok');
    for (let i = 0; i < 3; i++) d.update(c, bad, 10 + i);
    expect(d.status('c').state).toBe('down');
    expect(d.update(c, ok, 20).status.state).toBe('down');
    expect(d.update(c, ok, 21).status.state).toBe('down');
    expect(d.update(c, ok, 22).status.state).toBe('ok');
  });

  it('flags flapping when state changes exceed the threshold in the window, and clears it later', () => {
    const d = new Detector();
    const c = check(', flapping: { window: 10m, changes: 3 }', 0);
    let t = 0;
    d.update(c, ok, t);
    const flips: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      flips.push(d.update(c, i % 2 === 0 ? bad : ok, (t += 60_000)).status.flapping);
    }
    expect(flips).toEqual([false, false, false, true, true]);
    // Quiet for longer than the window: no longer flapping.
    const v = d.update(c, ok, t + 11 * 60_000);
    expect(v.status.flapping).toBe(false);
    expect(v.flappingChanged).toBe(true);
  });
});

describe('detector: slow runs', () => {
  it('an absolute limit marks a successful run degraded (slow), failures stay failures', () => {
    const d = new Detector();
    const c = check(', degraded: { above: 500ms }');
    expect(d.judge(c, ok, 0.2).degraded).toBeUndefined();
    expect(d.judge(c, ok, 0.8).degraded).toMatchObject({ reason: 'slow' });
    expect(d.judge(c, bad, 0.8)).toBe(bad);
  });

  it('names the slowest step of a multi-step run that exceeds the check-level limit', () => {
    const d = new Detector();
    const c = check(', degraded: { above: 1s }');
    const steps = [
      { name: 'form', ok: true, durationSeconds: 0.05, phases: {} },
      { name: 'login', ok: true, durationSeconds: 2.4, phases: {} },
      { name: 'home', ok: true, durationSeconds: 0.1, phases: {} },
    ];
    expect(d.judge(c, { ...ok, steps }, 2.6).degraded?.message).toBe('took 2.60 s, limit 1.00 s; slowest step login (2.40 s)');
  });

  it('learns a baseline (median of good runs) and flags runs far above it; slow runs are not learnt', () => {
    const d = new Detector();
    const c = check(', degraded: { baselineFactor: 3, baselineWindow: 50, baselineMinRuns: 10 }');
    for (let i = 0; i < 9; i++) expect(d.judge(c, ok, 0.1 + (i % 3) * 0.01).degraded).toBeUndefined();
    expect(d.status('c').baseline).toBeUndefined();
    d.judge(c, ok, 0.11);
    expect(d.status('c').baseline).toBeCloseTo(0.11, 5);
    const slow = d.judge(c, ok, 0.5);
    expect(slow.degraded?.reason).toBe('slow');
    expect(slow.degraded?.message).toContain('4.5x');
    // A lasting slowdown does not become the new normal.
    for (let i = 0; i < 100; i++) d.judge(c, ok, 0.5);
    expect(d.status('c').baseline).toBeCloseTo(0.11, 5);
    expect(d.judge(c, ok, 0.5).degraded?.reason).toBe('slow');
  });

  it('the baseline survives a restart through the snapshot', () => {
    const c = check(', degraded: { baselineFactor: 2, baselineMinRuns: 5 }');
    const a = new Detector();
    for (let i = 0; i < 8; i++) a.judge(c, ok, 0.2);
    const b = new Detector();
    expect(b.restore(JSON.parse(JSON.stringify(a.snapshot())) as never, [c])).toBe(1);
    expect(b.status('c').baseline).toBeCloseTo(0.2, 5);
    expect(b.judge(c, ok, 0.5).degraded?.reason).toBe('slow');
    expect(b.restore({ c: { window: ['x', -1, null] } } as never, [c])).toBe(0);
  });
  it('the baseline is the median of exactly the last baselineWindow good runs, across wrap-around, a resized window and a snapshot', () => {
    const c = check(', degraded: { baselineFactor: 1000, baselineWindow: 7, baselineMinRuns: 3 }');
    const d = new Detector();
    const seen: number[] = [];
    const reference = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    // A deterministic but unordered sequence (no Math.random: a failure must be reproducible).
    for (let i = 1; i <= 40; i++) {
      const x = ((i * 37) % 23) / 100 + 0.01;
      d.judge(c, ok, x);
      seen.push(x);
      if (seen.length >= 3) expect(d.status('c').baseline).toBeCloseTo(reference(seen.slice(-7)), 9);
    }
    expect(d.snapshot().c?.window).toEqual(seen.slice(-7));
    // A reload with a smaller window keeps the newest durations.
    const smaller = check(', degraded: { baselineFactor: 1000, baselineWindow: 5, baselineMinRuns: 3 }');
    d.judge(smaller, ok, 0.5);
    seen.push(0.5);
    expect(d.snapshot().c?.window).toEqual(seen.slice(-5));
    expect(d.status('c').baseline).toBeCloseTo(reference(seen.slice(-5)), 9);
    // A snapshot longer than the window is cut to its newest values.
    const e = new Detector();
    expect(e.restore({ c: { window: seen } }, [smaller])).toBe(1);
    expect(e.snapshot().c?.window).toEqual(seen.slice(-5));
  });
});

describe('root cause', () => {
  const node = (name: string, state: Node['state'], dependsOn: string[] = [], since = 0): [string, Node] => [name, { name, state, dependsOn, since }];

  it('a down check whose dependency is down gets the deepest down dependency as cause', () => {
    const nodes = new Map([
      node('dns', 'down', [], 100),
      node('fw', 'down', ['dns']),
      node('ehr', 'down', ['fw', 'dns']),
      node('lab', 'down', ['dns']),
      node('pacs', 'ok', ['dns']),
    ]);
    const causes = rootCauses(nodes);
    expect(Object.fromEntries(causes)).toEqual({ dns: 'dns', fw: 'dns', ehr: 'dns', lab: 'dns' });
    expect(incidents(nodes, causes)).toEqual([{ cause: 'dns', since: 100, affected: ['ehr', 'fw', 'lab'] }]);
  });

  it('a down check whose dependencies are fine is its own root cause; two causes, two incidents', () => {
    const nodes = new Map([node('dns', 'ok'), node('fw', 'down', ['dns'], 5), node('ehr', 'down', ['fw']), node('mllp', 'down', ['dns'], 7)]);
    const causes = rootCauses(nodes);
    expect(Object.fromEntries(causes)).toEqual({ fw: 'fw', ehr: 'fw', mllp: 'mllp' });
    expect(incidents(nodes, causes).map((i) => i.cause)).toEqual(['fw', 'mllp']);
  });

  it('a dependency still being confirmed (failing) is the cause, but opens no incident yet', () => {
    const nodes = new Map([node('dns', 'failing'), node('ehr', 'down', ['dns'])]);
    const causes = rootCauses(nodes);
    expect(causes.get('ehr')).toBe('dns');
    expect(incidents(nodes, causes)).toEqual([]);
  });
});

describe('agent: detection time and root cause, end to end', () => {
  const peers: Peer[] = [];
  afterEach(async () => {
    vi.useRealTimers();
    for (const p of peers.splice(0)) await p.close();
  });

  it('worst-case detection time is timeout + retries x (retryInterval + timeout)', async () => {
    const hole = await blackholePeer();
    peers.push(hole);
    const dir = mkdtempSync(join(tmpdir(), 'vakt-det-'));
    const file = join(dir, 'c.yaml');
    const timeout = 2000;
    const retries = 2;
    const retryInterval = 5000;
    writeFileSync(
      file,
      // Probes on the main thread: fake timers do not reach a probe thread's clock.
      `agent: { startSpread: 1ms, jitter: 0, probeThreads: 0 }\nchecks:\n  - { name: fw, kind: tcp, target: "127.0.0.1:${hole.port}", interval: 60s, timeout: ${timeout}ms, retries: ${retries}, retryInterval: ${retryInterval}ms }\n`,
    );
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const sink = new PassThrough();
    sink.resume();
    const agent = await Agent.start({ configFile: file, logStream: sink });
    const t0 = Date.now();
    const states: { state: string; at: number }[] = [];
    let last = '';
    for (let elapsed = 0; elapsed < 20_000; elapsed += 50) {
      await vi.advanceTimersByTimeAsync(50);
      // Let real socket events (none will come from the blackhole) and promise chains settle.
      await new Promise((r) => setImmediate(r));
      const s = agent.get('fw')?.status.state ?? '';
      if (s !== last) states.push({ state: (last = s), at: Date.now() - t0 });
    }
    await agent.stop(100);
    const down = states.find((s) => s.state === 'down');
    const bound = timeout + retries * (retryInterval + timeout);
    expect(states.map((s) => s.state)).toEqual(['unknown', 'failing', 'down']);
    expect(down).toBeDefined();
    // The documented bound holds. The probe ends its attempt up to 100 ms before each run's
    // deadline (so it can still report), hence up to (retries + 1) x 100 ms under the bound.
    expect(down!.at).toBeLessThanOrEqual(bound + 60);
    expect(down!.at).toBeGreaterThanOrEqual(bound - (retries + 1) * 100 - 60);
  });

  it('a DNS outage: one incident naming DNS, its dependents down with cause, metrics and API', async () => {
    const up = await tcpPeer((s) => s.end());
    peers.push(up);
    const dead = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), 'vakt-rc-'));
    const file = join(dir, 'c.yaml');
    const stateFile = join(dir, 'state.json');
    writeFileSync(
      file,
      `agent: { startSpread: 10ms, stateFile: ${stateFile} }
defaults: { interval: 1s, timeout: 300ms, retries: 0 }
checks:
  - { name: dns-ns1, title: "Internal DNS (ns1)", kind: tcp, target: "127.0.0.1:${dead}" }
  - { name: ehr, kind: tcp, target: "127.0.0.1:${dead}", dependsOn: [dns-ns1] }
  - { name: lab, kind: tcp, target: "127.0.0.1:${dead}", dependsOn: [ehr] }
  - { name: pacs, kind: tcp, target: "127.0.0.1:${up.port}", dependsOn: [dns-ns1] }
`,
    );
    const sink = new PassThrough();
    let logs = '';
    sink.on('data', (d: Buffer) => (logs += d.toString()));
    const agent = await Agent.start({ configFile: file, logStream: sink });
    try {
      const until = Date.now() + 5000;
      while (Date.now() < until && !(['dns-ns1', 'ehr', 'lab'].every((n) => agent.get(n)?.status.state === 'down') && agent.incidents().length === 1)) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(agent.get('ehr')?.cause).toBe('dns-ns1');
      expect(agent.get('lab')?.cause).toBe('dns-ns1');
      expect(agent.get('dns-ns1')?.cause).toBe('dns-ns1');
      expect(agent.get('pacs')?.cause).toBeUndefined();
      expect(agent.incidents()).toEqual([{ cause: 'dns-ns1', since: agent.get('dns-ns1')!.status.since, affected: ['ehr', 'lab'] }]);
      const text = (await agent.metrics.render(false)).body;
      expect(text).toContain('vakt_check_root_cause{check="lab",cause="dns-ns1"} 1');
      expect(text).toContain('vakt_incident_affected_checks{cause="dns-ns1"} 2');
      expect(text).toMatch(/vakt_incidents_open 1/);
      expect(logs).toContain('incident opened: dns-ns1 is down');
    } finally {
      await agent.stop();
    }
    // The state file was written on stop (baselines of the checks that had good runs).
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { version: number; baselines: Record<string, { window: number[] }> };
    expect(state.version).toBe(1);
    expect(state.baselines.pacs?.window.length).toBeGreaterThan(0);
  });
});
