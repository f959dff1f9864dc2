// Blame waits for the evidence (agent/root-cause.ts, PendingBlame; issue 14 point 4). A dependent
// that fails faster than its dependency (the host's resolver gives up at once, the dns check
// waits out its timeout) must not become its own root cause for those seconds, and one that runs
// less often than its dependency must not be left blamed on itself when the dependency is fixed.
// Real agents against real TCP peers whose behaviour the test switches.
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { dependentsOf, PendingBlame } from '../../agent/root-cause.js';
import { tcpPeer } from '../helpers/peers.js';

type Mode = 'ok' | 'silent' | 'reset';

/** A TCP service whose behaviour the test switches: says READY, says nothing, or resets at once. */
async function service(mode: Mode) {
  const peer = { mode };
  const p = await tcpPeer((s: Socket) => {
    if (peer.mode === 'ok') s.end('READY\n');
    else if (peer.mode === 'reset') s.resetAndDestroy();
  });
  peers.push(p);
  return Object.assign(peer, { port: p.port, sockets: p.sockets });
}

const peers: { close(): Promise<void> }[] = [];
const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
  for (const p of peers.splice(0)) await p.close();
});

async function start(checks: string): Promise<{ agent: Agent; logs: () => string }> {
  const dir = mkdtempSync(join(tmpdir(), 'vakt-blame-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, `agent: { startSpread: 10ms, jitter: 0, stateFile: ${join(dir, 'state.json')} }\nchecks:\n${checks}`);
  const sink = new PassThrough();
  let logs = '';
  sink.on('data', (d: Buffer) => (logs += d.toString()));
  const agent = await Agent.start({ configFile: file, logStream: sink });
  agents.push(agent);
  return { agent, logs: () => logs };
}

async function until(what: string, fn: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}: ${JSON.stringify(agents.map((a) => a.list().map((v) => [v.config.name, v.status.state, v.cause, v.last?.result.failure?.message])))}`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('blame waits for the evidence', () => {
  it('a dependent that fails at once is not its own root cause while its slower dependency is asked', async () => {
    const dns = await service('ok');
    const app = await service('ok');
    // The dependency runs once an hour here: without a run asked for on demand, the dependent
    // would be its own root cause (an incident, a page) until then.
    const { agent, logs } =
      await start(`  - { name: dns, kind: tcp, target: "127.0.0.1:${dns.port}", interval: 1h, timeout: 1500ms, retries: 0, tcp: { receive: READY } }
  - { name: app, kind: tcp, target: "127.0.0.1:${app.port}", interval: 1s, timeout: 500ms, retries: 0, dependsOn: [dns], tcp: { receive: READY } }
`);
    await until('both ok', () => agent.get('dns')?.status.state === 'ok' && agent.get('app')?.status.state === 'ok');
    // The fault: the dependency stops answering (its run waits out its timeout), the dependent fails at once.
    dns.mode = 'silent';
    app.mode = 'reset';
    const seen: (string | undefined)[] = [];
    await until('one incident, caused by dns', () => {
      seen.push(agent.get('app')?.cause);
      return agent.incidents().length === 1 && agent.incidents()[0]?.cause === 'dns';
    });
    expect(agent.incidents()).toEqual([{ cause: 'dns', since: agent.get('dns')!.status.since, affected: ['app'] }]);
    expect(agent.get('app')?.cause).toBe('dns');
    // The dependent went down before the dependency did, and was never blamed on itself.
    expect(seen).not.toContain('app');
    expect(logs()).not.toContain('incident opened: app is down');
    expect(logs()).toContain('incident opened: dns is down');
    const text = (await agent.metrics.render(false)).body;
    expect(text).not.toContain('vakt_check_root_cause{check="app",cause="app"}');
  });

  it('a dependent that runs seldom is run at once when its dependency recovers, and never blamed on itself', async () => {
    const dns = await service('reset');
    const app = await service('reset');
    const { agent, logs } =
      await start(`  - { name: dns, kind: tcp, target: "127.0.0.1:${dns.port}", interval: 1s, timeout: 500ms, retries: 0, tcp: { receive: READY } }
  - { name: app, kind: tcp, target: "127.0.0.1:${app.port}", interval: 1h, timeout: 500ms, retries: 0, dependsOn: [dns], tcp: { receive: READY } }
`);
    await until('one incident, caused by dns', () => agent.incidents().length === 1 && agent.incidents()[0]?.affected.includes('app') === true);
    // Both are fixed; the dependent's next run is an hour away.
    dns.mode = 'ok';
    app.mode = 'ok';
    const seen: (string | undefined)[] = [];
    await until('both ok', () => {
      seen.push(agent.get('app')?.cause);
      return agent.get('dns')?.status.state === 'ok' && agent.get('app')?.status.state === 'ok';
    });
    expect(seen).not.toContain('app');
    expect(agent.incidents()).toEqual([]);
    expect(logs()).not.toContain('incident opened: app is down');
  });

  it('settles on the runs it asked for, or on its deadline', () => {
    const checks = [
      { name: 'dns', dependsOn: [], timeoutMs: 2000, state: 'ok' as const },
      { name: 'ehr', dependsOn: ['dns'], timeoutMs: 1000, state: 'ok' as const },
      { name: 'lab', dependsOn: ['dns'], timeoutMs: 1000, state: 'down' as const },
    ];
    const lookup = (n: string) => checks.find((c) => c.name === n);
    const deps = dependentsOf(checks);
    expect(deps.get('dns')).toEqual(['ehr', 'lab']);
    const b = new PendingBlame();
    // ehr breaks: dns is asked; ehr's blame waits (no cause) until dns has run, at most 2 x 2 s + 1 s.
    expect(b.changed(checks[1]!, 'ok', 'down', 0, lookup, deps.get('ehr') ?? [])).toEqual(['dns']);
    const causes = new Map([['ehr', 'ehr']]);
    b.apply(causes, () => undefined, 1000);
    expect(causes.has('ehr')).toBe(false);
    expect(b.nextExpiry()).toBe(5000);
    // A run of another check settles nothing; dns's run settles ehr's wait.
    expect(b.ran('lab')).toBe(false);
    expect(b.ran('dns')).toBe(true);
    const after = new Map([['ehr', 'ehr']]);
    b.apply(after, () => undefined, 1000);
    expect(after.get('ehr')).toBe('ehr');
    // dns recovers: its broken dependent lab runs at once and keeps its cause meanwhile.
    expect(b.changed(checks[0]!, 'down', 'ok', 2000, lookup, deps.get('dns') ?? [])).toEqual(['lab']);
    const held = new Map([['lab', 'lab']]);
    b.apply(held, () => 'dns', 2500);
    expect(held.get('lab')).toBe('dns');
    // Past its deadline (2 x 1 s + 1 s) the wait ends, run or no run.
    const late = new Map([['lab', 'lab']]);
    b.apply(late, () => 'dns', 5001);
    expect(late.get('lab')).toBe('lab');
    expect(b.nextExpiry()).toBeUndefined();
    // A dependency already broken is not asked again: its verdict is known.
    const broken = [{ ...checks[0]!, state: 'down' as const }, checks[1]!];
    expect(b.changed(checks[1]!, 'ok', 'failing', 0, (n) => broken.find((c) => c.name === n), [])).toEqual([]);
  });
});
