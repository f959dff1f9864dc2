// A planted password goes through real http logins (succeeding, refused, and against a server
// that echoes the request back) and must come out nowhere: not in the agent's debug logs, not in
// /metrics, the API or the status page, not in `vakt probe` output, not in failure messages.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { runVakt } from '../helpers/cli.js';
import { startLoginApp, type LoginApp } from '../helpers/login-app.js';
import { samples } from '../helpers/prom.js';

const SECRET = 'Pw-9f2c-PLANTED-ø å';
/** A second one with the characters that escaping changes: JSON, URLs, forms, HTML. */
const TOKEN = 'Tk-7d1e-PLANTED-&"<x>+%\\ ø';
const ENV = 'VAKT_TEST_HTTP_PASSWORD';
const TOKEN_ENV = 'VAKT_TEST_HTTP_TOKEN';
const CHECKS = ['login-ok', 'login-refused', 'echo-header', 'echo-piece', 'echo-piece-token', 'echo-form', 'echo-json', 'echo-refused', 'echo-extract'];

/** Every form a secret could take on its way out, and their tell-tale middle (a cut-off piece). */
const FORMS = [
  ...[SECRET, TOKEN].flatMap((s) => [
    s,
    JSON.stringify(s).slice(1, -1),
    JSON.stringify(JSON.stringify(s)).slice(3, -3),
    encodeURIComponent(s),
    new URLSearchParams({ v: s }).toString().slice(2),
    Buffer.from(s).toString('base64'),
  ]),
  'PLANTED',
];

function expectNoSecret(text: string, where: string): void {
  for (const form of FORMS) expect(text.includes(form), `${where} contains ${form}`).toBe(false);
}

interface ApiCheck {
  name: string;
  lastResult: {
    result: string;
    failure: { phase: string; reason: string; message: string } | null;
    degraded: { reason: string; message: string } | null;
  } | null;
}

let ok: LoginApp;
let refusing: LoginApp;
let echo: LoginApp;
let agent: Agent;
let http: HttpServer;
let logText = '';
let file = '';

const loginSteps = (extra = '') => `
      steps:
        - { name: form, url: /login, extract: { csrf: { regex: 'name="csrf" value="([0-9a-f]+)"' } } }
        - name: login
          method: POST
          url: /login
          headers: { X-Api-Key: "\${secret.password}" }
          form: { username: probe.user, password: "\${secret.password}", csrf: "\${var.csrf}" }${extra}
        - { name: home, url: /app/home, expect: { bodyContains: [Welcome] } }`;

beforeAll(async () => {
  ok = await startLoginApp({ password: SECRET });
  refusing = await startLoginApp({ password: 'the-real-password' });
  echo = await startLoginApp();
  // Slow, so that the degraded message is exercised too.
  ok.slowLoginMs = 60;
  const dir = mkdtempSync(join(tmpdir(), 'vakt-http-secrets-'));
  file = join(dir, 'vakt.yaml');
  const secrets = `secrets: { password: { env: ${ENV} }, token: { env: ${TOKEN_ENV} } }`;
  writeFileSync(
    file,
    `
agent: { startSpread: 10ms, logLevel: debug }
defaults: { interval: 5s, timeout: 3s, retries: 0 }
checks:
  - name: login-ok
    kind: http
    target: "${ok.url}"
    ${secrets}
    http:${loginSteps('\n          degradedAbove: 10ms')}
  - name: login-refused
    kind: http
    target: "${refusing.url}"
    ${secrets}
    http:${loginSteps()}
  # The echo server reflects the request (form body, headers) into its JSON response, and each
  # check then fails in a way whose message is about that response.
  - name: echo-header
    kind: http
    target: "${echo.url}"
    ${secrets}
    http:
      method: POST
      url: /echo
      headers: { X-Api-Key: "\${secret.token}", Authorization: "Bearer \${secret.password}" }
      form: { password: "\${secret.password}" }
      expect: { json: { "$.headers.x-api-key": "something else" } }
  # A quoted value with the secret inside: a message that cut it short would leak a piece of it.
  - name: echo-piece
    kind: http
    target: "${echo.url}"
    ${secrets}
    http:
      url: /echo
      headers: { X-Session: "Session for user 4711 \${secret.password}" }
      expect: { json: { "$.headers.x-session": "something else" } }
  - name: echo-piece-token
    kind: http
    target: "${echo.url}"
    ${secrets}
    http:
      url: /echo
      headers: { X-Session: "Session for user 4711 \${secret.token}" }
      expect: { json: { "$.headers.x-session": "something else" } }
  - name: echo-form
    kind: http
    target: "${echo.url}"
    ${secrets}
    http:
      method: POST
      url: /echo
      form: { password: "\${secret.password}" }
      expect: { json: { "$.body": "something else" } }
  - name: echo-json
    kind: http
    target: "${echo.url}"
    ${secrets}
    http:
      method: POST
      url: /echo
      json: { p: "\${secret.password}", t: "\${secret.token}" }
      expect: { json: { "$.body": "something else" } }
  - name: echo-refused
    kind: http
    target: "${echo.url}"
    ${secrets}
    http:
      method: POST
      url: "/echo?status=401&p=\${secret.password}"
      form: { password: "\${secret.password}" }
      expect: { bodyNotMatches: ['PLANTED'] }
  - name: echo-extract
    kind: http
    target: "${echo.url}"
    ${secrets}
    http:
      steps:
        - name: echo
          method: POST
          url: /echo
          headers: { X-Api-Key: "\${secret.password}" }
          extract: { echoed: { jsonPath: "$.headers.x-api-key" } }
        - { name: use, url: "/status/500?k=\${var.echoed}", headers: { X-Echoed: "\${var.echoed}" } }
`,
  );
  process.env[ENV] = SECRET;
  process.env[TOKEN_ENV] = TOKEN;
  const logs = new PassThrough();
  logs.on('data', (d: Buffer) => (logText += d.toString()));
  agent = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
  http = await startServer(agent, '127.0.0.1', 0);
  const end = Date.now() + 10_000;
  while (!CHECKS.every((n) => agent.get(n)?.last)) {
    if (Date.now() > end) throw new Error('checks did not run in time');
    await new Promise((r) => setTimeout(r, 25));
  }
});

afterAll(async () => {
  await agent?.stop();
  await http?.close();
  for (const a of [ok, refusing, echo]) await a?.close();
  delete process.env[ENV];
  delete process.env[TOKEN_ENV];
});

const get = async (path: string) => (await fetch(`${http.url}${path}`)).text();

describe('http checks and a planted secret', () => {
  it('the secret really travelled: in the form, the header and the URL the servers received', () => {
    const form = new URLSearchParams({ v: SECRET }).toString().slice(2);
    expect(ok.requests.some((q) => q.method === 'POST' && q.body.includes(`password=${form}`) && q.headers['x-api-key'] === SECRET)).toBe(true);
    expect(refusing.requests.some((q) => q.body.includes(`password=${form}`))).toBe(true);
    expect(echo.requests.some((q) => q.headers.authorization === `Bearer ${SECRET}`)).toBe(true);
    expect(echo.requests.some((q) => q.headers['x-api-key'] === TOKEN)).toBe(true);
    expect(echo.requests.some((q) => q.body.includes(JSON.stringify(TOKEN)))).toBe(true);
    expect(echo.requests.some((q) => q.url.includes(encodeURIComponent(SECRET)))).toBe(true);
    expect(echo.requests.some((q) => q.headers['x-echoed'] === SECRET)).toBe(true);
  });

  it('the runs went as intended: one slow success, failures whose messages are about the echoed secret', async () => {
    const api = JSON.parse(await get('/api/v1/checks')) as { checks: ApiCheck[] };
    const by = Object.fromEntries(api.checks.map((c) => [c.name, c.lastResult]));
    expect(by['login-ok']).toMatchObject({ result: 'degraded', degraded: { reason: 'slow', message: expect.stringMatching(/^step login took/) as unknown } });
    expect(by['login-refused']?.failure).toEqual({ phase: 'processing', reason: 'http_status', message: 'step login: status 401, expected 2xx' });
    expect(by['echo-refused']?.failure).toMatchObject({ reason: 'http_status' });
    expect(by['echo-extract']?.failure).toMatchObject({ reason: 'http_status', message: 'step use: status 500, expected 2xx' });
    // These messages quote the echoed value, which is the secret: it comes out redacted.
    expect(by['echo-header']?.failure).toEqual({
      phase: 'processing',
      reason: 'assertion',
      message: 'step request: JSON $.headers.x-api-key is "[REDACTED]", expected "something else"',
    });
    expect(by['echo-piece']?.failure?.message).toBe('step request: JSON $.headers.x-session is "Session for user 4711 [REDACTED]", expected "something else"');
    expect(by['echo-piece-token']?.failure?.message).toBe(
      'step request: JSON $.headers.x-session is "Session for user 4711 [REDACTED]", expected "something else"',
    );
    expect(by['echo-form']?.failure).toEqual({
      phase: 'processing',
      reason: 'assertion',
      message: 'step request: JSON $.body is "password=[REDACTED]", expected "something else"',
    });
    expect(by['echo-json']?.failure?.message).toBe(
      'step request: JSON $.body is "{\\"p\\":\\"[REDACTED]\\",\\"t\\":\\"[REDACTED]\\"}", expected "something else"',
    );
  });

  it('appears nowhere in the API, the status page, /metrics or the debug logs', async () => {
    const api = await get('/api/v1/checks');
    expectNoSecret(api, '/api/v1/checks');
    for (const name of CHECKS) expectNoSecret(await get(`/api/v1/checks/${name}`), `/api/v1/checks/${name}`);
    expectNoSecret(await get('/api/v1/incidents'), '/api/v1/incidents');
    expectNoSecret(await get('/'), 'the status page');
    const metrics = await get('/metrics');
    // The per-step series exist, so the check is about a populated page.
    expect(samples(metrics, 'vakt_step_success', { check: 'login-ok', step: 'home' })[0]?.value).toBe(1);
    expect(samples(metrics, 'vakt_step_success', { check: 'login-refused', step: 'login' })[0]?.value).toBe(0);
    expectNoSecret(metrics, '/metrics');
    // Debug level logs every run with its failure message.
    expect(logText).toContain('run finished');
    expect(logText).toContain('step login: status 401, expected 2xx');
    expectNoSecret(logText, 'the agent log');
  });

  it('appears nowhere in `vakt probe` output, as text or JSON', { timeout: 240_000 }, async () => {
    const env = { [ENV]: SECRET, [TOKEN_ENV]: TOKEN };
    const names = CHECKS;
    // A few CLI processes at a time: eighteen at once starve each other on a busy two-core machine.
    const runs = [];
    for (const n of names)
      runs.push(...(await Promise.all([runVakt(['probe', '-c', file, n], env, 45_000), runVakt(['probe', '-c', file, n, '--json'], env, 45_000)])));
    runs.forEach((r, i) => {
      const name = names[Math.floor(i / 2)] as string;
      const where = `vakt probe ${name}${i % 2 ? ' --json' : ''}`;
      expect(r.code, `${where}\n${r.stdout}\n${r.stderr}`).toBe(name === 'login-ok' ? 0 : 1);
      expect(r.stdout).toMatch(i % 2 ? /"ok": (true|false)/ : /^result {4}(DEGRADED|FAILED)/m);
      expectNoSecret(r.stdout, `${where} stdout`);
      expectNoSecret(r.stderr, `${where} stderr`);
    });
    const header = JSON.parse(runs[names.indexOf('echo-header') * 2 + 1]!.stdout) as {
      failure: { message: string };
      steps: { failure?: { message: string } }[];
    };
    expect(header.failure.message).toContain('[REDACTED]');
    expect(header.steps[0]?.failure?.message).toContain('[REDACTED]');
  });
});
