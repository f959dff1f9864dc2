// Push from behind NAT (deploy/prometheus/agent-mode): a vakt agent at site clinic-north, a
// Prometheus in agent mode beside it scraping it every second and remote-writing to a central
// Prometheus (TLS, basic auth, the remote-write receiver on, deploy/prometheus/vakt-rules.yml
// loaded). Both are real processes (Debian package `prometheus`) started with the recipe's own
// files, only addresses, paths, credentials and intervals substituted. The test checks that
// vakt's series arrive once each with the site label, that the shipped rules work on pushed
// series, that the agent's WAL bridges an outage of the central Prometheus (the samples of the
// gap arrive, none fails), and that an agent that stops answering is up == 0 centrally.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Agent as HttpAgent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { parseMetrics } from '../helpers/prom.js';
import { freePort, requireTool, run, waitFor } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RECIPE = join(ROOT, 'deploy/prometheus/agent-mode');
const RULES = join(ROOT, 'deploy/prometheus/vakt-rules.yml');

const SITE = 'clinic-north';
/** The instance the recipe gives the clinic's vakt (unique in the region). */
const VAKT_INSTANCE = 'vakt-clinic-north:9464';
const PUSHED = `job="vakt",site="${SITE}"`;
const USER = 'clinic-north';
const PASSWORD = 'clinic-north-test-password';
/** bcrypt (cost 10) of PASSWORD, made once with bcryptjs (htpasswd -nbBC 10 writes the same kind). */
const PASSWORD_HASH = '$2b$10$rqcGJZvXu1HElbkHcZg3y.gVXlNw8AmUk1bWdZiSlJvVpYgUo.hCW';
/** How long the central Prometheus stays down. */
const OUTAGE_MS = 10_000;

/**
 * A file of the recipe with each `from` (a string or a pattern) replaced by `to`. Each must
 * occur exactly once, so a changed recipe fails here instead of silently testing something else.
 */
function recipe(file: string, replacements: [string | RegExp, string][]): string {
  let text = readFileSync(join(RECIPE, file), 'utf8');
  for (const [from, to] of replacements) {
    const parts = typeof from === 'string' ? text.split(from) : text.split(new RegExp(from.source, `${from.flags}g`));
    if (parts.length !== 2) throw new Error(`${file}: expected ${String(from)} once, found it ${parts.length - 1} times`);
    text = parts.join(to);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Prometheus processes

const DIR_PREFIX = `vakt-test-${process.pid}-remote-write-`;

/** Removes the directories of earlier test processes that are gone (their Prometheus died with them). */
function removeStaleDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const owner = /^vakt-test-(\d+)-remote-write-/.exec(name)?.[1];
    if (owner === undefined || Number(owner) === process.pid) continue;
    try {
      process.kill(Number(owner), 0);
    } catch {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

/**
 * One Prometheus server, run under `setpriv --pdeathsig KILL` so that it dies with this test
 * process even when the test is killed before afterAll. Restartable on the same port and data.
 */
class PrometheusProcess {
  private child: ChildProcess | undefined;
  private output = '';

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly args: string[],
    private readonly ready: () => Promise<boolean>,
  ) {}

  log(): string {
    return this.output.slice(-4000);
  }

  async start(): Promise<void> {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'prometheus', ...this.args, `--web.listen-address=127.0.0.1:${this.port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const collect = (d: Buffer) => (this.output = (this.output + d.toString()).slice(-50_000));
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    await waitFor(
      `${this.name} ready on port ${this.port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`${this.name} exited ${child.exitCode}: ${this.log()}`);
        return this.ready().catch(() => false);
      },
      30_000,
      100,
    );
  }

  /** SIGTERM: Prometheus shuts down cleanly and keeps its data (SIGKILL if it hangs). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child?.exitCode !== null || child.signalCode !== null || !child.kill('SIGTERM')) return;
    await once(child, 'exit', { signal: AbortSignal.timeout(15_000) }).catch(() => child.kill('SIGKILL'));
  }
}

interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

let dir = '';
let pki: TestPki | undefined;
let central: PrometheusProcess | undefined;
let agentMode: PrometheusProcess | undefined;
let centralClient: HttpAgent | undefined;
let vakt: Agent | undefined;
let vaktHttp: HttpServer | undefined;
let listener: NetServer | undefined;
let vaktLog = '';

/** GET or POST to the central Prometheus (TLS, basic auth); the parsed JSON answer. */
async function centralApi(path: string, params?: Record<string, string>): Promise<{ status: string; error?: string; data?: unknown }> {
  const res = await fetch(`https://127.0.0.1:${central!.port}${path}`, {
    method: params ? 'POST' : 'GET',
    ...(params ? { body: new URLSearchParams(params) } : {}),
    headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` },
    dispatcher: centralClient!,
  });
  return (await res.json()) as { status: string; error?: string; data?: unknown };
}

/** An instant query at the central Prometheus (now, or at `time` in seconds). */
async function query(expr: string, time?: number): Promise<PromSeries[]> {
  const r = await centralApi('/api/v1/query', { query: expr, ...(time === undefined ? {} : { time: String(time) }) });
  if (r.status !== 'success') throw new Error(`${expr}: ${r.error ?? r.status}`);
  return (r.data as { result: PromSeries[] }).result;
}

/** The agent-mode Prometheus' own metrics, summed over their labels by name. */
async function agentModeTotals(): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${agentMode!.port}/metrics`);
  const totals = new Map<string, number>();
  for (const s of parseMetrics(await res.text())) totals.set(s.name, (totals.get(s.name) ?? 0) + s.value);
  return totals;
}

function listenerAcceptingAndClosing(): Promise<NetServer> {
  const server = createNetServer((socket) => socket.destroy());
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('push from behind NAT: Prometheus in agent mode remote-writing to a central Prometheus', () => {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const mark = (name: string) => (timings[name] = Math.round(performance.now() - t0));

  beforeAll(async () => {
    await requireTool('prometheus', ['--version'], 'prometheus');
    await requireTool('promtool', ['--version'], 'prometheus');
    await requireTool('setpriv', ['--version'], 'util-linux');
    removeStaleDirs();
    dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
    pki = makePki();

    // The clinic's vakt: one service that answers, one port where nothing listens.
    listener = await listenerAcceptingAndClosing();
    const closedPort = await freePort();
    const vaktConfig = join(dir, 'vakt.yaml');
    writeFileSync(
      vaktConfig,
      `agent:
  labels: { site: ${SITE} }
defaults: { interval: 1s, timeout: 900ms, retries: 1, retryInterval: 200ms }
checks:
  - name: records-front
    title: Patient records front
    kind: tcp
    target: "127.0.0.1:${(listener.address() as AddressInfo).port}"
  - name: lab-interface
    title: Lab interface
    kind: tcp
    target: "127.0.0.1:${closedPort}"
`,
    );
    const logs = new PassThrough();
    logs.on('data', (d: Buffer) => (vaktLog = (vaktLog + d.toString()).slice(-20_000)));
    vakt = await Agent.start({ configFile: vaktConfig, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
    vaktHttp = await startServer(vakt, '127.0.0.1', 0);

    // The central Prometheus: recipe's config, web config (TLS, basic auth) and flags.
    const centralDir = join(dir, 'central');
    mkdirSync(centralDir);
    const certFile = join(centralDir, 'prometheus.pem');
    const keyFile = join(centralDir, 'prometheus-key.pem');
    writeFileSync(certFile, pki.valid.cert);
    writeFileSync(keyFile, pki.valid.key);
    const webConfig = join(centralDir, 'web.yml');
    writeFileSync(
      webConfig,
      recipe('web-central.yml', [
        ['/etc/prometheus/tls/prometheus.pem', certFile],
        ['/etc/prometheus/tls/prometheus-key.pem', keyFile],
        [/^ {2}clinic-north: .*$/m, `  ${USER}: ${PASSWORD_HASH}`],
      ]),
    );
    const centralConfig = join(centralDir, 'prometheus.yml');
    writeFileSync(
      centralConfig,
      recipe('prometheus-central.yml', [
        ['evaluation_interval: 15s', 'evaluation_interval: 1s'],
        ['- vakt-rules.yml', `- ${RULES}`],
      ]),
    );
    await run('promtool', ['check', 'web-config', webConfig]);
    await run('promtool', ['check', 'config', centralConfig]);
    centralClient = new HttpAgent({ connect: { ca: pki.ca.cert } });
    central = new PrometheusProcess(
      'central Prometheus',
      await freePort(),
      [
        `--config.file=${centralConfig}`,
        `--web.config.file=${webConfig}`,
        '--web.enable-remote-write-receiver',
        `--storage.tsdb.path=${join(centralDir, 'data')}`,
        '--log.level=warn',
      ],
      async () => (await centralApi('/api/v1/status/runtimeinfo')).status === 'success',
    );
    await central.start();
    mark('central ready');

    // The clinic's Prometheus in agent mode: the recipe's config, scraping every second.
    const agentDir = join(dir, 'agent');
    mkdirSync(agentDir);
    const passwordFile = join(agentDir, 'central-password');
    writeFileSync(passwordFile, `${PASSWORD}\n`);
    const agentPort = await freePort();
    const agentConfig = join(agentDir, 'prometheus-agent.yml');
    writeFileSync(
      agentConfig,
      recipe('prometheus-agent.yml', [
        ['scrape_interval: 15s', 'scrape_interval: 1s'],
        ['scrape_timeout: 10s', 'scrape_timeout: 900ms'],
        ["targets: ['127.0.0.1:9464']", `targets: ['${new URL(vaktHttp.url).host}']`],
        ["targets: ['127.0.0.1:9090']", `targets: ['127.0.0.1:${agentPort}']`],
        ['https://prometheus.region.example:9090/api/v1/write', `https://127.0.0.1:${central.port}/api/v1/write`],
        ['/etc/prometheus/central-ca.pem', pki.caFile],
        ['/etc/prometheus/central-password', passwordFile],
      ]),
    );
    await run('promtool', ['check', 'config', '--agent', agentConfig]);
    agentMode = new PrometheusProcess(
      'agent-mode Prometheus',
      agentPort,
      ['--enable-feature=agent', `--config.file=${agentConfig}`, `--storage.agent.path=${join(agentDir, 'wal')}`],
      async () => (await fetch(`http://127.0.0.1:${agentPort}/-/ready`)).status === 200,
    );
    await agentMode.start();
    mark('agent-mode ready');
  }, 90_000);

  afterAll(async () => {
    await agentMode?.stop();
    await central?.stop();
    await centralClient?.close();
    await vakt?.stop();
    await vaktHttp?.close();
    await new Promise((r) => (listener ? listener.close(r) : r(undefined)));
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`remote-write test timings (ms since start): ${JSON.stringify(timings)}`);
  });

  it("vakt's series arrive at the central Prometheus once each, with the site label", async () => {
    await waitFor('probe_success of both checks arrives centrally', async () => (await query(`probe_success{${PUSHED}}`)).length === 2, 60_000, 250);
    mark('first series central');

    const success = await query(`probe_success{${PUSHED}}`);
    // One series per check, with vakt's labels, the scrape's job and instance, and nothing else.
    expect(success.map((s) => s.metric).sort((a, b) => String(a.check).localeCompare(String(b.check)))).toEqual(
      ['lab-interface', 'records-front'].map((check) => ({
        __name__: 'probe_success',
        check,
        kind: 'tcp',
        target: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        site: SITE,
        job: 'vakt',
        instance: VAKT_INSTANCE,
      })),
    );
    // Every pushed series of the vakt job (not the rules' own): one site, the clinic's instance, no renamed labels.
    const series = await centralApi('/api/v1/series', { 'match[]': '{job="vakt",__name__!~"ALERTS.*|.*:.*"}', start: String(Date.now() / 1000 - 60) });
    const all = series.data as Record<string, string>[];
    expect(all.length).toBeGreaterThan(20);
    for (const labels of all) {
      expect(labels, JSON.stringify(labels)).toMatchObject({ site: SITE, instance: VAKT_INSTANCE });
      expect(
        Object.keys(labels).filter((k) => k.startsWith('exported_')),
        JSON.stringify(labels),
      ).toEqual([]);
    }
    // `up` has no site of its own: it gets the agent-mode Prometheus' external label.
    const up = await query(`up{site="${SITE}"}`);
    expect(Object.fromEntries(up.map((s) => [s.metric.job, [s.metric.instance, s.value?.[1]]]))).toEqual({
      vakt: [VAKT_INSTANCE, '1'],
      'prometheus-agent': ['prometheus-agent-clinic-north:9090', '1'],
    });
    // The clinic's queue figures arrive too (the prometheus-agent job).
    expect(await query(`prometheus_remote_storage_samples_failed_total{job="prometheus-agent",site="${SITE}"}`)).toHaveLength(1);
  });

  it('the check states are right, and the shipped rules evaluate them centrally', async () => {
    await waitFor(
      'lab-interface is down',
      async () => (await query(`vakt_check_status{${PUSHED},check="lab-interface",status="down"} == 1`)).length === 1,
      30_000,
      250,
    );
    const success = await query(`probe_success{${PUSHED}}`);
    expect(Object.fromEntries(success.map((s) => [s.metric.check, s.value?.[1]]))).toEqual({ 'lab-interface': '0', 'records-front': '1' });
    expect((await query(`vakt_check_status{${PUSHED},check="records-front"}`)).map((s) => s.metric.status)).toEqual(['ok']);

    // Recording rules over pushed series, and the root-cause alert (pending: its `for` is 1m).
    const causes = await waitFor(
      'vakt:check_cause:info for both checks',
      async () => {
        const r = await query(`vakt:check_cause:info{${PUSHED}}`);
        return r.length === 2 ? r : undefined;
      },
      30_000,
      250,
    );
    expect(Object.fromEntries(causes.map((s) => [s.metric.check, s.metric.cause ?? '']))).toEqual({ 'lab-interface': 'lab-interface', 'records-front': '' });
    const alert = await waitFor(
      'VaktRootCauseDown for lab-interface',
      async () => (await query(`ALERTS{alertname="VaktRootCauseDown",${PUSHED}}`))[0],
      30_000,
      250,
    );
    expect(alert.metric).toMatchObject({ cause: 'lab-interface', check: 'lab-interface', instance: VAKT_INSTANCE, severity: 'page' });
    const rules = await centralApi('/api/v1/rules');
    const groups = (rules.data as { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] }).groups;
    const unhealthy = groups.flatMap((g) => g.rules.filter((r) => r.health === 'err').map((r) => `${g.name}/${r.name}: ${r.lastError}`));
    expect(unhealthy).toEqual([]);
    mark('rules checked');
  });

  it("the agent's WAL bridges an outage of the central Prometheus: the gap's samples arrive, none fails", async () => {
    const before = await agentModeTotals();
    await central!.stop();
    const downFrom = Date.now() / 1000;
    mark('central stopped');
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await central!.start();
    const downTo = Date.now() / 1000;
    mark('central restarted');

    // Raw samples of `up` in the gap, read at the end of the gap (a range selector returns samples, not lookback values).
    const gapSamples = async (selector: string) => {
      const r = await query(`${selector}[${Math.round((downTo - downFrom) * 1000)}ms]`, downTo);
      return (r[0]?.values ?? []).map(([t]) => t);
    };
    const expected = Math.floor(downTo - downFrom);
    const arrived = await waitFor(
      'the samples scraped while the central Prometheus was down',
      async () => {
        const ts = await gapSamples(`up{${PUSHED}}`);
        return ts.length >= expected * 0.8 ? ts : undefined;
      },
      90_000,
      500,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${(await gapSamples(`up{${PUSHED}}`)).length} of ~${expected}\nagent: ${agentMode!.log()}\ncentral: ${central!.log()}`);
    });
    mark('gap arrived');
    timings.gapSeconds = Math.round(downTo - downFrom);
    timings.gapSamplesUp = arrived.length;
    // vakt's own series come through the same queue.
    const lab = await gapSamples(`probe_success{${PUSHED},check="lab-interface"}`);
    timings.gapSamplesProbeSuccess = lab.length;
    expect(lab.length).toBeGreaterThanOrEqual(expected * 0.8);

    const after = await agentModeTotals();
    expect(after.get('prometheus_remote_storage_samples_failed_total'), agentMode!.log()).toBe(0);
    expect(after.get('prometheus_remote_storage_samples_dropped_total') ?? 0).toBe(0);
    // The outage was seen: batches were retried, not dropped.
    expect(
      (after.get('prometheus_remote_storage_samples_retried_total') ?? 0) - (before.get('prometheus_remote_storage_samples_retried_total') ?? 0),
    ).toBeGreaterThan(0);
    // And the stream goes on: fresh samples after the gap.
    await waitFor('fresh samples after the outage', async () => (await query(`up{${PUSHED}} == 1`)).length === 1, 30_000, 250);
  }, 150_000);

  it('an agent that stops answering is up == 0 centrally, its series stale, VaktAgentDown pending', async () => {
    await vaktHttp!.close();
    mark('vakt stopped answering');
    await waitFor('up == 0 arrives', async () => (await query(`up{${PUSHED},instance="${VAKT_INSTANCE}"} == 0`)).length === 1, 30_000, 250);
    // The failed scrape marks the agent's series stale at the clinic; the markers are pushed too.
    await waitFor('probe_success is stale', async () => (await query(`probe_success{${PUSHED}}`)).length === 0, 30_000, 250);
    const alert = await waitFor('VaktAgentDown pending', async () => (await query(`ALERTS{alertname="VaktAgentDown",${PUSHED}}`))[0], 30_000, 250);
    expect(alert.metric).toMatchObject({ alertstate: 'pending', instance: VAKT_INSTANCE, site: SITE, severity: 'page' });
    mark('agent down seen');
  });

  it('vakt logged no errors', () => {
    expect(vaktLog).not.toMatch(/"level":(50|60)/);
  });
});
