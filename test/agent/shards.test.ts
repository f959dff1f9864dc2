// An agent with a shard: it runs only the checks its shard wins, says so in the API and its
// metrics (owned, shard, shards, the dependsOn edges to other shards), keeps the shard across a
// reload, labels an HA replica; and the CLI refuses a shard that cannot be.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { shardOf } from '../../config/shard.js';
import { runVakt } from '../helpers/cli.js';
import { closedPort } from '../helpers/peers.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-shards-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const running: { agent: Agent; http: HttpServer }[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.agent.stop();
    await r.http.close();
  }
});

const port = await closedPort();
const file = join(dir, 'vakt.yaml');
const apps = Array.from({ length: 24 }, (_, i) => `app-${i}`);
writeFileSync(
  file,
  `agent: { labels: { site: dc1 }, startSpread: 10ms }
defaults: { interval: 1h, timeout: 500ms }
checks:
  - { name: dns, kind: tcp, target: "127.0.0.1:${port}" }
${apps.map((a) => `  - { name: ${a}, kind: tcp, target: "127.0.0.1:${port}", dependsOn: [dns] }`).join('\n')}
`,
);

async function boot(index: number, count: number, replica?: string) {
  const logs = new PassThrough();
  logs.resume();
  const agent = await Agent.start({
    configFile: file,
    listen: { host: '127.0.0.1', port: 0 },
    logStream: logs,
    shard: { index, count },
    ...(replica ? { replica } : {}),
  });
  const http = await startServer(agent, '127.0.0.1', 0);
  running.push({ agent, http });
  return { agent, http };
}

describe('a sharded agent', () => {
  it('runs what its shard wins; the API and the metrics say what it owns and which dependencies run elsewhere', async () => {
    const dnsShard = shardOf('dns', 3);
    const index = (dnsShard + 1) % 3; // a shard without the DNS check
    const { agent, http } = await boot(index, 3, 'b');
    const mine = ['dns', ...apps].filter((n) => shardOf(n, 3) === index);
    expect(
      agent
        .list()
        .map((v) => v.config.name)
        .sort(),
    ).toEqual([...mine].sort());
    const api = (await (await fetch(`${http.url}/api/v1/checks`)).json()) as { labels: Record<string, string>; placement: Record<string, unknown> };
    expect(api.labels).toEqual({ site: 'dc1', replica: 'b' });
    expect(api.placement).toEqual({
      site: 'dc1',
      shard: `${index}/3`,
      owned: mine.length,
      elsewhere: 25 - mine.length,
      disabled: 0,
      remoteDependencies: mine.map((check) => ({ check, dependsOn: 'dns' })),
    });
    const metrics = await (await fetch(`${http.url}/metrics`)).text();
    expect(metrics).toContain(`vakt_agent_checks_owned{site="dc1",replica="b"} ${mine.length}`);
    expect(metrics).toContain(`vakt_agent_shard{site="dc1",replica="b"} ${index}`);
    expect(metrics).toContain('vakt_agent_shards{site="dc1",replica="b"} 3');
    for (const check of mine) expect(metrics).toContain(`vakt_check_remote_dependency{check="${check}",depends_on="dns",site="dc1",replica="b"} 1`);
    expect(metrics.match(/^vakt_check_remote_dependency\{/gm)?.length).toBe(mine.length);
    // A reload keeps the shard (and recounts).
    expect((await agent.reload()).ok).toBe(true);
    expect(agent.placement).toMatchObject({ shard: { index, count: 3 }, owned: mine.length });
  });

  it('the shard that runs the dependency has no remote edges; unsharded agents export shard 0 of 1', async () => {
    const { http } = await boot(shardOf('dns', 3), 3);
    const metrics = await (await fetch(`${http.url}/metrics`)).text();
    expect(metrics).not.toMatch(/^vakt_check_remote_dependency\{/m);
    const whole = await boot(0, 1);
    const all = await (await fetch(`${whole.http.url}/metrics`)).text();
    expect(all).toContain('vakt_agent_checks_owned{site="dc1"} 25');
    expect(all).toContain('vakt_agent_shards{site="dc1"} 1');
  });
});

describe('the CLI', () => {
  it('refuses a shard that cannot be, from the flag or the environment, before it starts', async () => {
    const bad = await runVakt(['run', '-c', file, '--listen', '127.0.0.1:0', '--shard', '3/3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--shard: expected a shard index below the count (0 to 2), found 3');
    const env = await runVakt(['run', '-c', file, '--listen', '127.0.0.1:0'], { VAKT_SHARDS: '3', HOSTNAME: 'vakthost' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('VAKT_SHARDS=3 takes the shard index from a StatefulSet pod\'s name (HOSTNAME such as vakt-2), found HOSTNAME="vakthost"');
    const replica = await runVakt(['run', '-c', file, '--listen', '127.0.0.1:0', '--replica', 'a b']);
    expect(replica.code).toBe(2);
    expect(replica.stderr).toContain('--replica (or VAKT_REPLICA) expects a short name');
  });
});
