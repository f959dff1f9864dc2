// The demo's scripted change (sandbox/change.ts), incident 2's story end to end: the sandbox
// announces planned work through a real agent's admin API, puts a security update in that leaves
// the login slower but under every threshold, and ends the work; the agent compares the login
// with its level before the window and raises a regression; rolled back, the regression clears.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { freeSandboxPorts, sandboxDirOfRepo } from '../helpers/demo-config.js';

let sb: Sandbox;
let agent: Agent;
let http: HttpServer;

beforeAll(async () => {
  // The update adds 400 ms: far more than the loopback login's few ms, far under the step's 900 ms.
  sb = await startSandbox({ ports: freeSandboxPorts(), updateLoginMs: 400, changeTiming: { applyAfterMs: 2500, endAfterMs: 5000 } });
  const dir = mkdtempSync(join(tmpdir(), 'vakt-change-'));
  const sandbox = sandboxDirOfRepo();
  const cfg = join(dir, 'vakt.yaml');
  writeFileSync(
    cfg,
    `agent:
  stateFile: ${join(dir, 'state.json')}
  labels: { site: sandbox }
checks:
  - name: cosmic-login
    title: Cosmic login
    kind: http
    target: https://127.0.0.1:${sb.ports.loginTls}
    interval: 1s
    timeout: 1s
    secrets:
      password: { file: ${sandbox}/secrets/probe-password }
    http:
      tls: { caFile: ${sandbox}/certs/ca.pem }
      steps:
        - { name: form, url: /login, extract: { csrf: { regex: 'name="csrf" value="([0-9a-f]+)"' } } }
        - { name: login, method: POST, url: /login, form: { username: svc-vakt-probe, password: "\${secret.password}", csrf: "\${var.csrf}" }, degradedAbove: 900ms }
        - { name: home, url: /app/home, expect: { status: [200] } }
`,
  );
  const logs = new PassThrough();
  logs.resume();
  agent = await Agent.start({ configFile: cfg, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
  http = await startServer(agent, '127.0.0.1', 0);
  sb.change.agentUrl = http.url;
});

afterAll(async () => {
  await agent?.stop();
  await http?.close();
  await sb?.stop();
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const control = async (method: string, path: string) => {
  const res = await fetch(`${sb.controlUrl}${path}`, { method });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const check = async () => (await (await fetch(`${http.url}/api/v1/checks/cosmic-login`)).json()) as Record<string, unknown>;

describe('the scripted change (incident 2)', () => {
  it('announces planned work, slows the login in it, ends it; vakt finds the regression, and it clears when rolled back', async () => {
    // A level before the window: a few good runs.
    await until('good runs', async () => {
      const c = await check();
      return c.state === 'ok' && Array.isArray(c.history) && c.history.length >= 4 ? c : undefined;
    });
    const started = await control('POST', '/changes/login-update');
    expect(started.status).toBe(202);
    expect(started.body.step).toBe('announced');
    // One at a time.
    expect((await control('POST', '/changes/login-update')).status).toBe(409);
    const held = await check();
    expect(held.state).toBe('maintenance');
    expect((held.maintenance as Record<string, unknown>).title).toBe('Security update on the Cosmic web servers');

    const regressed = await until('the regression', async () => {
      const c = await check();
      return (c.change as Record<string, unknown> | undefined)?.state === 'regressed' ? c : undefined;
    });
    expect((await control('GET', '/changes')).body['login-update']).toMatchObject({ step: 'ended' });
    const change = regressed.change as { message: string; finding: { kind: string; what: string; name: string; factor: number } };
    // The login step got slower; the check itself stayed ok (under every threshold).
    expect(regressed.state).toBe('ok');
    expect(change.finding).toMatchObject({ kind: 'slower', what: 'step', name: 'login' });
    expect(change.finding.factor).toBeGreaterThan(2);
    expect(change.message).toMatch(/after the planned work ended at \d\d:\d\d, cosmic-login \(step login\) takes \d+× as long as before/);
    const metrics = await (await fetch(`${http.url}/metrics`)).text();
    expect(metrics).toMatch(/^vakt_check_change_regression\{check="cosmic-login",window="api-1",site="sandbox"\} 1$/m);
    const page = await (await fetch(`${http.url}/`)).text();
    expect(page).toContain('after the planned work ended at');

    // Rolled back: the login is back at its old level, the regression clears.
    expect((await control('POST', '/faults/login/ok')).status).toBe(200);
    await until('the regression to clear', async () => {
      const c = await check();
      return c.change === null ? c : undefined;
    });
    expect(await (await fetch(`${http.url}/metrics`)).text()).not.toContain('vakt_check_change_regression{');
  }, 120_000);
});
