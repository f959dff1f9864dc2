// The agent booted for real on port 0: scraped, queried, reloaded, stopped.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { get as httpGet, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { acceptsGzip } from '../../agent/accept.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { spawnVakt } from '../helpers/cli.js';
import { closedPort, tcpPeer, type Peer } from '../helpers/peers.js';
import { samples, value } from '../helpers/prom.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-agent-'));
let n = 0;
function configFile(text: string): string {
  const f = join(dir, `c${n++}.yaml`);
  writeFileSync(f, text);
  return f;
}

const running: { agent: Agent; http: HttpServer }[] = [];
const peers: Peer[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.agent.stop();
    await r.http.close();
  }
  for (const p of peers.splice(0)) await p.close();
});

async function boot(file: string, env?: Record<string, string>) {
  Object.assign(process.env, env);
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (d: Buffer) => (logText += d.toString()));
  const agent = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
  const http = await startServer(agent, '127.0.0.1', 0);
  running.push({ agent, http });
  return { agent, http, logs: () => logText };
}

/** Polls `fn` until it gives a value; the generous default is for a busy machine, not a timing claim. */
async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A GET that shows the bytes as sent (fetch would decompress them). */
const rawGet = (url: string, headers: Record<string, string>) =>
  new Promise<{ headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    httpGet(url, { headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    }).on('error', reject);
  });
const get = async (url: string, headers: Record<string, string> = {}) => {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
};

describe('Accept-Encoding', () => {
  it('allows gzip only where the header does', () => {
    for (const h of ['gzip', 'gzip, deflate', 'deflate, GZIP;q=0.5', 'x-gzip', '*', 'br, *;q=0.1', 'identity, gzip']) expect(acceptsGzip(h), h).toBe(true);
    for (const h of [undefined, '', 'identity', 'br', 'gzip;q=0', 'gzip;q=0.0, *', '*;q=0', 'deflate, br']) expect(acceptsGzip(h), String(h)).toBe(false);
  });
});

describe('agent', () => {
  it('runs checks and serves metrics, API, health and readiness', async () => {
    const up = await tcpPeer((s) => s.end());
    peers.push(up);
    const down = await closedPort();
    const file = configFile(`
agent: { labels: { site: odense-dc1 }, startSpread: 50ms, histograms: phases }
defaults: { interval: 1s, timeout: 500ms, retries: 0 }
checks:
  - { name: up, kind: tcp, target: "127.0.0.1:${up.port}", group: Core }
  - { name: down, kind: tcp, target: "127.0.0.1:${down}" }
`);
    const { http } = await boot(file);
    const metrics = await waitFor(async () => {
      const m = await get(`${http.url}/metrics`);
      return m.body.includes('probe_success{check="down"') && m.body.includes('probe_success{check="up"') ? m : undefined;
    });
    expect(metrics.type).toContain('text/plain; version=0.0.4');
    const body = metrics.body;
    expect(body).toContain(`probe_success{check="up",kind="tcp",target="127.0.0.1:${up.port}",site="odense-dc1"} 1`);
    expect(body).toContain(`probe_success{check="down",kind="tcp",target="127.0.0.1:${down}",site="odense-dc1"} 0`);
    expect(value(body, 'vakt_probe_failures_total', { check: 'down', reason: 'refused', site: 'odense-dc1' })).toBeGreaterThanOrEqual(1);
    expect(value(body, 'vakt_probe_runs_total', { check: 'up', result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(value(body, 'vakt_probe_runs_total', { check: 'up', result: 'failed' })).toBe(0);
    expect(value(body, 'vakt_probe_duration_seconds_bucket', { le: '0.05', check: 'up', phase: 'connect', site: 'odense-dc1' })).toBeGreaterThanOrEqual(1);
    expect(value(body, 'vakt_probe_duration_seconds_count', { check: 'down', phase: 'total' })).toBeGreaterThanOrEqual(1);
    expect(value(body, 'vakt_scheduler_lag_seconds_count', { site: 'odense-dc1' })).toBeGreaterThanOrEqual(2);
    expect(value(body, 'vakt_check_status', { check: 'down', status: 'down' })).toBe(1);
    // Only the current state has a series.
    expect(samples(body, 'vakt_check_status', { check: 'down' })).toHaveLength(1);
    expect(body).toContain('vakt_config_last_reload_successful{site="odense-dc1"} 1');
    expect(body).toMatch(/vakt_build_info\{version="[^"]+",nodejs="[^"]+",site="odense-dc1"\} 1/);
    expect(body).toContain('process_cpu_user_seconds_total');
    expect(body).toContain('nodejs_eventloop_lag_seconds');
    // A phase that never ran (tls) is absent, not 0.
    expect(body).not.toMatch(/vakt_probe_phase_seconds\{[^}]*phase="tls"/);

    const om = await get(`${http.url}/metrics`, { accept: 'application/openmetrics-text; version=1.0.0' });
    expect(om.type).toContain('application/openmetrics-text');
    expect(om.body.trimEnd().endsWith('# EOF')).toBe(true);
    expect(om.body).toContain('# TYPE vakt_probe_runs counter');
    // Counter names survive an OpenMetrics scrape in the next Prometheus-format scrape.
    expect((await get(`${http.url}/metrics`)).body).toContain('# TYPE vakt_probe_runs_total counter');

    // Compressed when the scraper accepts gzip (Prometheus does), plain otherwise; same text.
    const gz = await rawGet(`${http.url}/metrics`, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers.vary).toBe('Accept-Encoding');
    expect([...gz.body.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    const unzipped = gunzipSync(gz.body).toString();
    expect(unzipped).toContain(`probe_success{check="up",kind="tcp",target="127.0.0.1:${up.port}",site="odense-dc1"} 1`);
    // Whole: the agent's families and prom-client's process metrics after them.
    expect(unzipped).toContain('nodejs_eventloop_lag_seconds');
    expect(unzipped.endsWith('\n')).toBe(true);
    for (const headers of [{}, { 'accept-encoding': 'gzip;q=0, *' }, { 'accept-encoding': 'br' }]) {
      const plain = await rawGet(`${http.url}/metrics`, headers);
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(plain.body.toString()).toContain('# TYPE vakt_probe_runs_total counter');
    }
    const om2 = await rawGet(`${http.url}/metrics`, { 'accept-encoding': 'x-gzip', accept: 'application/openmetrics-text' });
    expect(gunzipSync(om2.body).toString().endsWith('# EOF\n')).toBe(true);

    const api = JSON.parse((await get(`${http.url}/api/v1/checks`)).body) as {
      checks: { name: string; state: string; lastResult: { failure: { reason: string } | null; phases: Record<string, number> } }[];
    };
    const byName = Object.fromEntries(api.checks.map((c) => [c.name, c]));
    expect(byName.up?.state).toBe('ok');
    expect(byName.up?.lastResult.phases.connect).toBeGreaterThan(0);
    expect(byName.down?.state).toBe('down');
    expect(byName.down?.lastResult.failure?.reason).toBe('refused');
    const one = await get(`${http.url}/api/v1/checks/up`);
    expect(JSON.parse(one.body)).toMatchObject({ name: 'up', group: 'Core' });
    expect((await get(`${http.url}/api/v1/checks/nope`)).status).toBe(404);
    expect((await get(`${http.url}/healthz`)).status).toBe(200);
    expect((await get(`${http.url}/readyz`)).status).toBe(200);
    const page = await get(`${http.url}/`);
    expect(page.type).toContain('text/html');
    expect(page.body).toContain('Not reachable');
  });

  it('reload: bad file keeps the running config; good file adds, changes and removes checks', async () => {
    const p = await tcpPeer((s) => s.end());
    peers.push(p);
    const text = (extra: string) => `
agent: { startSpread: 50ms }
defaults: { interval: 1s, timeout: 500ms }
checks:
  - { name: keep, kind: tcp, target: "127.0.0.1:${p.port}" }
${extra}`;
    const file = configFile(text(`  - { name: gone, kind: tcp, target: "127.0.0.1:${p.port}" }`));
    const { agent, http } = await boot(file);
    await waitFor(async () => (await get(`${http.url}/metrics`)).body.includes('probe_success{check="gone"'));
    await waitFor(() => agent.get('keep')?.status.state === 'ok');
    const keepState = agent.get('keep')?.status;
    const keepSince = keepState?.since;
    const keepNext = agent.get('keep')?.last?.startedAt;

    writeFileSync(file, 'checks: [ {name: broken');
    const bad = await fetch(`${http.url}/-/reload`, { method: 'POST' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: string[] }).errors[0]).toContain(`${file}:1:`);
    const afterBad = (await get(`${http.url}/metrics`)).body;
    expect(value(afterBad, 'vakt_config_last_reload_successful')).toBe(0);
    expect(value(afterBad, 'vakt_config_reloads_total', { result: 'failure' })).toBe(1);
    expect(afterBad).toContain('probe_success{check="gone"');
    expect(
      agent
        .list()
        .map((c) => c.config.name)
        .sort(),
    ).toEqual(['gone', 'keep']);

    writeFileSync(file, text(`  - { name: added, kind: tcp, target: "127.0.0.1:${p.port}" }`));
    const good = await fetch(`${http.url}/-/reload`, { method: 'POST' });
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({ ok: true, added: ['added'], removed: ['gone'], changed: [], unchanged: 1 });
    const m = (await get(`${http.url}/metrics`)).body;
    expect(value(m, 'vakt_config_last_reload_successful')).toBe(1);
    expect(m).not.toContain('check="gone"');
    // The unchanged check kept its state object and since-time.
    expect(agent.get('keep')?.status).toBe(keepState);
    expect(agent.get('keep')?.status.since).toBe(keepSince);
    expect(agent.get('keep')?.status.state).toBe('ok');
    // ...and its last result (a restarted check would have lost it).
    expect(agent.get('keep')?.last?.startedAt).toBeGreaterThanOrEqual(keepNext ?? 0);
    await waitFor(async () => (await get(`${http.url}/metrics`)).body.includes('probe_success{check="added"'));
    expect((await fetch(`${http.url}/-/reload`)).status).toBe(405);
  });

  it('secret values never reach logs, metrics or the API', async () => {
    const secret = 'S3cr3t-Planted-Value-9f2c';
    const p = await tcpPeer((s) => s.end());
    peers.push(p);
    const file = configFile(`
agent: { startSpread: 10ms, logLevel: debug }
defaults: { interval: 1s, timeout: 500ms }
checks:
  - name: echo
    kind: tcp
    target: "127.0.0.1:${p.port}"
    secrets: { token: { env: VAKT_TEST_TOKEN } }
    tcp: { send: "hello", receive: "${secret}" }
`);
    // The probe sends the secret-bearing pattern's text nowhere, but the regex itself contains it:
    // the failure message quotes the pattern, which must come out redacted.
    const { agent, http, logs } = await boot(file, { VAKT_TEST_TOKEN: secret });
    await waitFor(() => agent.get('echo')?.last);
    const api = (await get(`${http.url}/api/v1/checks`)).body;
    expect(api).toContain('[REDACTED]');
    expect(api).not.toContain(secret);
    expect((await get(`${http.url}/metrics`)).body).not.toContain(secret);
    expect((await get(`${http.url}/`)).body).not.toContain(secret);
    expect(logs()).toContain('run finished');
    expect(logs()).not.toContain(secret);
  });

  it('SIGTERM: stops scheduling, aborts in-flight probes and exits 0 on the clean path (not the 4.5 s forced one)', async () => {
    const hang = await tcpPeer(() => undefined);
    peers.push(hang);
    const file = configFile(`
agent: { listen: "127.0.0.1:0", startSpread: 10ms }
checks:
  - { name: hang, kind: tcp, target: "127.0.0.1:${hang.port}", interval: 1m, timeout: 50s, tcp: { receive: "^never" } }
`);
    const child = spawnVakt(['run', '-c', file]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('vakt listening') && hang.sockets.size > 0, 60_000);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    expect(out).toContain('"signal":"SIGTERM"');
    // The in-flight run was aborted and the agent stopped by itself: the 4.5 s deadline, which
    // ends the process whatever holds it, was not needed (no wall clock measured here: on a busy
    // machine the exit itself may take longer than the agent's own stop).
    expect(out).toContain('"aborted":1');
    expect(out).toContain('agent stopped');
    expect(out).not.toContain('shutdown forced');
    await waitFor(() => hang.sockets.size === 0);
  }, 90_000);

  it('the server holds at most agent.maxConnections: one more is closed on arrival (and logged), and requests work again once the idle ones go', async () => {
    const file = configFile(`
agent: { listen: "127.0.0.1:0", maxConnections: 8, startSpread: 10ms }
checks:
  - { name: a, kind: tcp, target: "127.0.0.1:9", interval: 1m }
`);
    const { http, logs } = await boot(file);
    const { hostname, port } = new URL(http.url);
    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect(Number(port), hostname, () => resolve(s));
        s.once('error', reject);
      });
    const connections = () => new Promise<number>((resolve) => http.server.getConnections((_err, n) => resolve(n)));
    // Eight connections that send nothing hold every slot.
    const idle: Socket[] = [];
    for (let i = 0; i < 8; i++) idle.push(await open());
    await waitFor(async () => (await connections()) >= 8 || undefined);
    const extra = await open();
    // The ninth is accepted by the kernel and closed by the server without an answer.
    const got = await new Promise<string>((resolve) => {
      let data = '';
      extra.on('data', (d: Buffer) => (data += d.toString()));
      extra.on('close', () => resolve(data));
      extra.on('error', () => undefined);
      extra.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(got).toBe('');
    await waitFor(() => logs().includes('agent.maxConnections reached') || undefined);
    for (const s of idle) s.destroy();
    await waitFor(async () => (await connections()) === 0 || undefined);
    expect((await fetch(`${http.url}/healthz`)).status).toBe(200);
  }, 90_000);

  it('SIGHUP reloads the config', async () => {
    const file = configFile(`
agent: { listen: "127.0.0.1:0", startSpread: 10ms }
checks:
  - { name: a, kind: tcp, target: "127.0.0.1:9", interval: 1m }
`);
    const child = spawnVakt(['run', '-c', file]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('vakt listening'), 60_000);
    writeFileSync(file, file.length > 0 ? `checks:\n  - { name: b, kind: tcp, target: "127.0.0.1:9", interval: 1m }\n` : '');
    child.kill('SIGHUP');
    // Generous: on a loaded machine the child is still compiling its probe thread's code (tsx).
    await waitFor(() => out.includes('"msg":"config reloaded"'), 20_000);
    expect(out).toContain('"added":["b"]');
    child.kill('SIGTERM');
    expect(await new Promise((r) => child.once('exit', r))).toBe(0);
  }, 90_000);
});

describe('enabled: false', () => {
  /** A listener that counts the connections it gets. */
  const countingPeer = async () => {
    let count = 0;
    const p = await tcpPeer((s) => {
      count++;
      s.end();
    });
    peers.push(p);
    return { port: p.port, connections: () => count };
  };

  it('is not scheduled, not probed and has no series; the API lists it as disabled; a reload switches it on, off and on', async () => {
    const on = await countingPeer();
    const off = await countingPeer();
    const text = (enabled: string) => `
agent: { startSpread: 50ms }
defaults: { interval: 200ms, timeout: 150ms, retries: 0 }
checks:
  - { name: on, kind: tcp, target: "127.0.0.1:${on.port}", dependsOn: [off] }
  - { name: off, kind: tcp, target: "127.0.0.1:${off.port}", title: Switched off${enabled} }
`;
    const file = configFile(text(', enabled: false'));
    const { agent, http } = await boot(file);
    const metrics = async () => (await get(`${http.url}/metrics`)).body;
    const api = async (path: string) => JSON.parse((await get(`${http.url}/api/v1/checks${path}`)).body) as Record<string, unknown>;

    // Several runs of `on` and none of `off`.
    await waitFor(() => on.connections() >= 3);
    expect(off.connections()).toBe(0);
    expect(agent.get('off')).toBeUndefined();
    expect(agent.ready).toBe(true);
    let m = await metrics();
    expect(samples(m, 'probe_success', { check: 'on' })).toHaveLength(1);
    expect(m).not.toContain('check="off"');
    expect(value(m, 'vakt_checks_configured', { kind: 'tcp' })).toBe(1);
    const list = (await api('')) as { placement: unknown; checks: { name: string }[] };
    expect(list.placement).toMatchObject({ owned: 1, disabled: 1, elsewhere: 0 });
    expect(list.checks.find((c) => c.name === 'on')).toMatchObject({ enabled: true, state: 'ok' });
    const disabled = { name: 'off', title: 'Switched off', kind: 'tcp', enabled: false, state: null, lastResult: null };
    expect(list.checks.find((c) => c.name === 'off')).toEqual(expect.objectContaining(disabled));
    expect(await api('/off')).toEqual(expect.objectContaining(disabled));
    // The status page is for the people the checks serve: a check nobody runs is not on it.
    expect((await get(`${http.url}/`)).body).not.toContain('Switched off');

    // On: it starts (added), is probed and gets its series.
    writeFileSync(file, text(''));
    expect(await agent.reload()).toMatchObject({ ok: true, added: ['off'], removed: [], disabled: [] });
    await waitFor(() => off.connections() >= 1);
    await waitFor(async () => samples(await metrics(), 'probe_success', { check: 'off' }).length === 1);
    expect(await api('/off')).toMatchObject({ enabled: true });

    // Off again: it stops (removed), its series go, no more connections.
    writeFileSync(file, text(', enabled: false'));
    expect(await agent.reload()).toMatchObject({ ok: true, added: [], removed: ['off'], disabled: ['off'], unchanged: 1 });
    m = await metrics();
    expect(m).not.toContain('check="off"');
    const after = off.connections();
    const onBefore = on.connections();
    await waitFor(() => on.connections() >= onBefore + 3);
    expect(off.connections()).toBe(after);
    expect(await api('/off')).toMatchObject({ enabled: false, state: null });

    // And on once more: a fresh start.
    writeFileSync(file, text(''));
    expect(await agent.reload()).toMatchObject({ ok: true, added: ['off'] });
    await waitFor(() => off.connections() > after);
    expect(agent.get('off')?.config.enabled).toBeUndefined();
  });
});
