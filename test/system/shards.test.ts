// Sharded agents with a real Prometheus (Debian `prometheus`) loaded with the shipped rules
// (deploy/prometheus/vakt-rules.yml) and scraping them every second: three agents (--shard 0/3,
// 1/3, 2/3) run one config of 300 checks; every check's series come from exactly one agent; a
// failure whose root cause runs on one shard and whose dependents run on the others is one
// incident in Prometheus (vakt:root_cause_down:affected_checks), not three; resharding to four
// agents moves at most 35 % of the checks; stopping one agent makes VaktAgentDown name its shard
// and the number of checks it leaves unwatched.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { freePort, startPrometheus as startPrometheusProcess, waitFor, type PrometheusProcess } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), `vakt-test-${process.pid}-shards-`));
const CHECKS = 300;
const APPS = 30;

let core: Server;
let corePort = 0;
let other: Server;
let otherPort = 0;
let prometheus: PrometheusProcess | undefined;
let promUrl = '';
const running = new Map<number, { agent: Agent; http: HttpServer }>();
let ports: number[] = [];

/** 269 checks of another listening port (every 5 s), and core with 30 "apps" that depend on "core": all tcp to the core port. */
function config(): string {
  const lines = ['agent:', '  labels: { site: vg-dc1 }', '  startSpread: 0s', 'defaults:', '  interval: 1s', '  timeout: 800ms', '  retries: 0', 'checks:'];
  lines.push(`  - { name: core, kind: tcp, target: "127.0.0.1:${corePort}" }`);
  for (let i = 0; i < APPS; i++) lines.push(`  - { name: app-${i}, kind: tcp, target: "127.0.0.1:${corePort}", dependsOn: [core] }`);
  for (let i = 0; i < CHECKS - APPS - 1; i++) lines.push(`  - { name: other-${i}, kind: tcp, target: "127.0.0.1:${otherPort}", interval: 5s }`);
  return `${lines.join('\n')}\n`;
}

async function startAgent(i: number, count: number): Promise<void> {
  const file = join(dir, 'vakt.yaml');
  writeFileSync(file, config());
  const logs = new PassThrough();
  logs.resume();
  const agent = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: ports[i] as number }, logStream: logs, shard: { index: i, count } });
  const http = await startServer(agent, '127.0.0.1', ports[i] as number);
  running.set(i, { agent, http });
}

async function stopAgent(i: number): Promise<void> {
  const r = running.get(i);
  running.delete(i);
  await r?.agent.stop();
  await r?.http.close();
}

async function owned(i: number): Promise<{ names: string[]; shard: string }> {
  const r = running.get(i);
  if (!r) throw new Error(`agent ${i} not running`);
  const body = (await (await fetch(`${r.http.url}/api/v1/checks`)).json()) as { placement: { shard: string }; checks: { name: string }[] };
  return { names: body.checks.map((c) => c.name), shard: body.placement.shard };
}

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
  return body.data.result;
}

async function startPrometheus(): Promise<void> {
  prometheus = await startPrometheusProcess(`global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }
rule_files: ["${join(ROOT, 'deploy/prometheus/vakt-rules.yml')}"]
scrape_configs:
  - job_name: vakt
    honor_labels: true
    static_configs: [{ targets: [${ports.map((p) => `"127.0.0.1:${p}"`).join(', ')}], labels: { site: vg-dc1 } }]
`);
  promUrl = prometheus.url;
}

beforeAll(async () => {
  core = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => core.listen(0, '127.0.0.1', resolve));
  corePort = (core.address() as { port: number }).port;
  other = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  otherPort = (other.address() as { port: number }).port;
  ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  for (let i = 0; i < 3; i++) await startAgent(i, 3);
  await startPrometheus();
}, 120_000);

afterAll(async () => {
  for (const i of [...running.keys()]) await stopAgent(i);
  await prometheus?.stop();
  core?.close();
  other?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('three shards, one Prometheus', () => {
  let before: Map<string, number>;

  it('every check runs on exactly one agent, and its series come from that agent alone', async () => {
    before = new Map();
    for (let i = 0; i < 3; i++) {
      const o = await owned(i);
      expect(o.shard).toBe(`${i}/3`);
      for (const name of o.names) {
        expect(before.has(name), `${name} on two shards`).toBe(false);
        before.set(name, i);
      }
    }
    expect(before.size).toBe(CHECKS);
    // Each shard gets a fair part (rendezvous hashing over 300 names: not exact, not lopsided).
    for (let i = 0; i < 3; i++) expect([...before.values()].filter((s) => s === i).length).toBeGreaterThan(70);
    const perCheck = await waitFor(
      'every check scraped',
      async () => {
        const r = await query('count by (check) (vakt_check_status)');
        return r.length === CHECKS ? r : undefined;
      },
      60_000,
    );
    expect(perCheck.every((s) => s.value[1] === '1')).toBe(true);
    const instances = await query('count by (check) (count by (check, instance) (probe_success))');
    expect(instances.length).toBe(CHECKS);
    expect(instances.every((s) => s.value[1] === '1')).toBe(true);
    const total = await query('sum(vakt_agent_checks_owned)');
    expect(total[0]?.value[1]).toBe(String(CHECKS));
  });

  it('a root cause on one shard with dependents on the others is one incident in Prometheus', async () => {
    const coreShard = before.get('core') as number;
    const elsewhere = [...Array(APPS).keys()].filter((i) => before.get(`app-${i}`) !== coreShard).length;
    expect(elsewhere).toBeGreaterThan(0); // the point of the test: dependents on other shards
    const remote = await query('count(vakt_check_remote_dependency{depends_on="core"})');
    expect(Number(remote[0]?.value[1])).toBe(elsewhere);
    core.close(); // every check of the core port now fails: core and all 30 apps
    const incidents = await waitFor(
      'one incident with all the apps',
      async () => {
        const r = await query('vakt:root_cause_down:affected_checks');
        return r.length === 1 && r[0]?.value[1] === String(APPS) ? r : undefined;
      },
      90_000,
    );
    expect(incidents[0]?.metric.cause).toBe('core');
    const causes = await query('count by (cause) (vakt:check_cause:info{check=~"app-.*", cause!=""})');
    expect(causes.map((c) => [c.metric.cause, c.value[1]])).toEqual([['core', String(APPS)]]);
    core = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => core.listen(corePort, '127.0.0.1', resolve));
    await waitFor('incident closed', async () => ((await query('vakt:root_cause_down:affected_checks')).length === 0 ? true : undefined), 90_000);
  });

  it('resharding 3 to 4 moves at most 35 % of the checks; stopping one agent names its shard and its unwatched checks', async () => {
    for (let i = 0; i < 3; i++) await stopAgent(i);
    for (let i = 0; i < 4; i++) await startAgent(i, 4);
    const after = new Map<string, number>();
    for (let i = 0; i < 4; i++) for (const name of (await owned(i)).names) after.set(name, i);
    expect(after.size).toBe(CHECKS);
    const moved = [...after].filter(([name, s]) => before.get(name) !== s).length;
    // Rendezvous hashing moves only what the new shard wins: about 1/4 (a quarter of 300 is 75).
    expect(moved / CHECKS).toBeLessThanOrEqual(0.35);
    expect([...after].filter(([name, s]) => before.get(name) !== s).every(([, s]) => s === 3)).toBe(true);
    process.stdout.write(`resharding 3 -> 4: ${moved} of ${CHECKS} checks moved (${((100 * moved) / CHECKS).toFixed(1)} %)\n`);

    const victim = 2;
    const left = (await owned(victim)).names.length;
    await waitFor(
      'shard 2 of 4 scraped',
      async () => ((await query(`vakt_agent_shards{instance="127.0.0.1:${ports[victim]}"} == 4`)).length === 1 ? true : undefined),
      60_000,
    );
    // The restart from 3 to 4 shards left each port unscraped for a while, long enough for
    // VaktAgentDown to go pending with the old shard's count; wait until the rules have seen the
    // new agent up and dropped it, so the alert below is the one for this stop.
    const agentDown = async () => {
      const res = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as {
        data: { alerts: { labels: Record<string, string>; annotations: Record<string, string>; state: string; value: string }[] };
      };
      return res.data.alerts.find((a) => a.labels.alertname === 'VaktAgentDown' && a.labels.instance === `127.0.0.1:${ports[victim]}`);
    };
    await waitFor('no VaktAgentDown left from the restart', async () => ((await agentDown()) ? undefined : true), 60_000);
    await stopAgent(victim);
    const alert = await waitFor('VaktAgentDown pending for the stopped agent', agentDown, 60_000);
    expect(Number(alert.value)).toBe(left);
    expect(alert.annotations.summary).toBe(`vakt agent 127.0.0.1:${ports[victim]} (shard 2 of 4, site vg-dc1) cannot be scraped: ${left} checks unwatched`);
    expect(alert.annotations.description).toContain(`It ran shard 2 of 4: the ${left} checks of that shard are not watched by any agent`);
  });
});
