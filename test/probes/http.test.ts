// The http probe against a login application built in the test (test/helpers/login-app.ts) and
// other real peers on loopback: phases, TLS, the login flow, cookies, redirects, limits,
// timeouts, expectations, extraction and templating.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Budget } from '../../probes/kit/budget.js';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { type HttpOptions } from '../../probes/http/options.js';
import { CookieJar, expectedText, httpProbe, template } from '../../probes/http/probe.js';
import { JSON_MAX_CONTAINERS, JSON_MAX_DEPTH, jsonPath } from '../../probes/kit/json.js';
import type { ProbeResult } from '../../probes/types.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { startLoginApp, type LoginApp, type LoginAppOptions } from '../helpers/login-app.js';
import { blackholePeer, budget, BUSY_SLACK_MS, closedPort, type Peer, quietLog, targetsOf } from '../helpers/peers.js';

function run(target: string, options: Record<string, unknown> = {}, opts: { timeoutMs?: number; secrets?: Record<string, string> } = {}): Promise<ProbeResult> {
  const parsed: HttpOptions = KIND_OPTIONS.http.parse(options);
  return httpProbe.run({ ...targetsOf('http', target), options: parsed, ...budget(opts.timeoutMs ?? 3000), log: quietLog, secrets: opts.secrets ?? {} });
}

const cleanup: Peer[] = [];
afterAll(async () => {
  for (const p of cleanup) await p.close();
});
async function app(options: LoginAppOptions = {}): Promise<LoginApp> {
  const a = await startLoginApp(options);
  cleanup.push(a);
  return a;
}

const phaseNames = (r: { phases: Record<string, number> }) => Object.keys(r.phases);

/** The login flow of the app: form, POST with the CSRF token, redirects, protected page. */
function loginFlow(extra: { login?: Record<string, unknown>; home?: Record<string, unknown> } = {}) {
  return {
    steps: [
      { name: 'form', url: '/login', expect: { bodyContains: ['Sign in'] }, extract: { csrf: { regex: 'name="csrf" value="([0-9a-f]+)"' } } },
      { name: 'login', method: 'POST', url: '/login', form: { username: 'probe.user', password: '${secret.password}', csrf: '${var.csrf}' }, ...extra.login },
      { name: 'home', url: '/app/home', expect: { status: [200], bodyMatches: ['<h1>Welcome</h1>'] }, ...extra.home },
    ],
  };
}

describe('http probe: one request', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });

  it('a GET to an IP address: connect, processing and transfer, no resolve and no tls', async () => {
    const r = await run(`${a.url}/api/health`);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(phaseNames(r)).toEqual(['connect', 'processing', 'transfer']);
    for (const v of Object.values(r.phases)) expect(v).toBeGreaterThan(0);
    expect(r.steps).toHaveLength(1);
    expect(r.steps?.[0]).toMatchObject({ name: 'request', ok: true, status: 200, redirects: 0 });
    expect(r.steps?.[0]?.phases).toEqual(r.phases);
    expect(r.values).toMatchObject({ http_status_code: 200, http_ssl: 0, http_redirects: 0 });
    expect(r.values?.http_content_length).toBe(
      Buffer.byteLength(JSON.stringify({ status: 'ok', version: '2026.11.3', checks: [{ name: 'db', ok: true }], 'dotted.key': 'yes' })),
    );
    // The run's duration covers its phases.
    const sum = Object.values(r.phases).reduce((x, y) => x + y, 0);
    expect(r.steps![0]!.durationSeconds).toBeGreaterThanOrEqual(sum * 0.99);
  });

  it('a host name has a resolve phase', async () => {
    const r = await run(`${a.localUrl}/api/health`, { ipFamily: 'ip4' });
    expect(r.ok).toBe(true);
    expect(phaseNames(r)).toEqual(['resolve', 'connect', 'processing', 'transfer']);
    expect(r.phases.resolve).toBeGreaterThan(0);
  });

  it('every run starts cold: a new connection (and its connect phase) per run', async () => {
    const before = a.connections;
    const r1 = await run(`${a.url}/api/health`);
    const r2 = await run(`${a.url}/api/health`);
    expect(r1.phases.connect).toBeGreaterThan(0);
    expect(r2.phases.connect).toBeGreaterThan(0);
    expect(a.connections - before).toBe(2);
  });

  it('a closed port is refused in connect; an unknown name fails in resolve', async () => {
    const refused = await run(`http://127.0.0.1:${await closedPort()}/`);
    expect(refused.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect(refused.phases).toEqual({});
    expect(refused.steps?.[0]?.ok).toBe(false);
    const unknown = await run('http://no-such-host.invalid/');
    expect(unknown.failure).toMatchObject({ phase: 'resolve', reason: 'resolve' });
    expect(unknown.phases).toEqual({});
  });

  it('a top-level degradedAbove makes a slow request degraded, naming it', async () => {
    const r = await run(`${a.url}/slow?ms=250`, { degradedAbove: '100ms' });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('slow');
    expect(r.degraded?.message).toMatch(/^step request took \d+ ms \(limit 100 ms\)$/);
    const fast = await run(`${a.url}/api/health`, { degradedAbove: '2s' });
    expect(fast.degraded).toBeUndefined();
  });
});

describe('http probe: TLS', () => {
  let pki: TestPki;
  let a: LoginApp;
  beforeAll(async () => {
    pki = makePki();
    a = await app({ tls: pki.valid });
  });

  it('https has a tls phase between connect and processing', async () => {
    const r = await run(`${a.url}/api/health`, { tls: { caFile: pki.caFile } });
    expect(r.failure).toBeUndefined();
    expect(phaseNames(r)).toEqual(['connect', 'tls', 'processing', 'transfer']);
    expect(r.phases.tls).toBeGreaterThan(0);
    expect(r.values?.http_ssl).toBe(1);
  });

  it('https to a name: resolve, connect, tls, processing, transfer', async () => {
    const r = await run(`${a.localUrl}/api/health`, { tls: { caFile: pki.caFile }, ipFamily: 'ip4' });
    expect(r.failure).toBeUndefined();
    expect(phaseNames(r)).toEqual(['resolve', 'connect', 'tls', 'processing', 'transfer']);
  });

  it('an untrusted issuer fails in tls with tls_handshake, keeping the connect phase', async () => {
    const r = await run(`${a.url}/api/health`);
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    expect(phaseNames(r)).toEqual(['connect']);
  });

  it('an expired certificate is tls_expired; a wrong name is tls_handshake', async () => {
    const expired = await app({ tls: pki.expired });
    const r = await run(`${expired.url}/`, { tls: { caFile: pki.caFile } });
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_expired' });
    const wrong = await app({ tls: pki.wrongName });
    const w = await run(`${wrong.url}/`, { tls: { caFile: pki.caFile } });
    expect(w.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    // serverName names the host the certificate is for.
    const named = await run(`${wrong.url}/api/health`, { tls: { caFile: pki.caFile, serverName: 'other.test' } });
    expect(named.ok).toBe(true);
  });

  it('insecureSkipVerify accepts an untrusted certificate', async () => {
    const r = await run(`${a.url}/api/health`, { tls: { insecureSkipVerify: true } });
    expect(r.ok).toBe(true);
  });

  it('reports the certificate: TLS version, chain facts and the earliest expiry', async () => {
    const r = await run(`${a.url}/api/health`, { tls: { caFile: pki.caFile } });
    expect(r.info).toMatchObject({ certSubject: 'CN=service.test', certIssuer: 'CN=vakt test CA', certSubjectAlternative: 'localhost,service.test' });
    expect(r.info?.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    expect(r.info?.certFingerprintSha256).toMatch(/^[0-9a-f]{64}$/);
    const days = (r.values!.ssl_earliest_cert_expiry! * 1000 - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(88);
    expect(days).toBeLessThan(91);
    expect(r.degraded).toBeUndefined();
    const plain = await run(`${(await app()).url}/api/health`);
    expect(plain.info).toBeUndefined();
    expect(plain.values?.ssl_earliest_cert_expiry).toBeUndefined();
  });

  it('a certificate expiring within tls.expiryWarning makes the run degraded (cert_expiring)', async () => {
    const soon = await app({ tls: pki.expiringSoon });
    const r = await run(`${soon.url}/api/health`, { tls: { caFile: pki.caFile } });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('cert_expiring');
    expect(r.degraded?.message).toMatch(/^certificate CN=service\.test expires in [23]\.\d days$/);
    const shorter = await run(`${soon.url}/api/health`, { tls: { caFile: pki.caFile, expiryWarning: '1d' } });
    expect(shorter.degraded).toBeUndefined();
    // A slow step is the more urgent news.
    const slow = await run(`${soon.url}/slow?ms=150`, { tls: { caFile: pki.caFile }, degradedAbove: '50ms' });
    expect(slow.degraded?.reason).toBe('slow');
    // Accepted without verification, an expired certificate still shows.
    const expired = await app({ tls: pki.expired });
    const skip = await run(`${expired.url}/api/health`, { tls: { insecureSkipVerify: true } });
    expect(skip.ok).toBe(true);
    expect(skip.degraded).toMatchObject({ reason: 'cert_expiring', message: 'certificate CN=service.test expires in 0.0 days' });
  });

  it('an unreadable caFile is a tls_handshake failure, not a crash', async () => {
    const r = await run(`${a.url}/`, { tls: { caFile: `${pki.dir}/missing.pem` } });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    expect(r.failure?.message).toContain('ENOENT');
  });

  it('the whole login flow over https: tls only on the first connection', async () => {
    const r = await run(a.url, { ...loginFlow(), tls: { caFile: pki.caFile } }, { secrets: { password: a.password } });
    expect(r.failure).toBeUndefined();
    expect(r.steps?.map((s) => Object.keys(s.phases).includes('tls'))).toEqual([true, false, false]);
  });
});

describe('http probe: the login flow', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });

  it('form, CSRF token, POST, redirect chain setting the session, protected page', async () => {
    const from = a.requests.length;
    const r = await run(a.url, loginFlow(), { secrets: { password: a.password } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.steps?.map((s) => [s.name, s.ok, s.status, s.redirects])).toEqual([
      ['form', true, 200, 0],
      ['login', true, 200, 3],
      ['home', true, 200, 0],
    ]);
    expect(r.values).toMatchObject({ http_redirects: 3, http_status_code: 200 });
    const seen = a.requests
      .slice(from)
      .map((q) => `${q.method} ${q.url.replace(/=[0-9a-f]+/, '=T')} cookie:${(q.headers.cookie ?? '').replace(/=[0-9a-f]+/g, '')}`);
    expect(seen).toEqual([
      'GET /login cookie:',
      'POST /login cookie:pre',
      // 303 after the POST: a GET; the callback sets the session cookie on its 302 and deletes pre.
      'GET /auth/callback?ticket=T cookie:pre',
      'GET /app/ cookie:session',
      'GET /app/home cookie:session',
      'GET /app/home cookie:session',
    ]);
    const post = a.requests[from + 1]!;
    expect(post.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(new URLSearchParams(post.body).get('password')).toBe(a.password);
  });

  it('steps share one kept-alive connection: only the first step has a connect phase', async () => {
    const before = a.connections;
    const r = await run(a.url, loginFlow(), { secrets: { password: a.password } });
    expect(r.ok).toBe(true);
    // Node's http server keeps connections alive, and the probe's pool holds one per origin.
    expect(a.connections - before).toBe(1);
    expect(r.steps?.map((s) => Object.keys(s.phases))).toEqual([
      ['connect', 'processing', 'transfer'],
      ['processing', 'transfer'],
      ['processing', 'transfer'],
    ]);
    // The run's phases are the sums over its steps.
    const processing = r.steps!.reduce((x, s) => x + (s.phases.processing ?? 0), 0);
    expect(r.phases.processing).toBeCloseTo(processing, 9);
  });

  it('a server that closes each connection: every step connects anew, and says so', async () => {
    const before = a.connections;
    const r = await run(a.url, { ...loginFlow({ login: { headers: { connection: 'close' } } }) }, { secrets: { password: a.password } });
    expect(r.ok).toBe(true);
    // The POST (on the form's connection) and its three redirect hops ask for "Connection: close":
    // each hop after it needs a new connection, and so does the next step.
    expect(a.connections - before).toBe(1 + 3 + 1);
    expect(r.steps?.[1]?.phases.connect).toBeGreaterThan(0);
  });

  it('a wrong password fails the login step with http_status; later steps are not run', async () => {
    const r = await run(a.url, loginFlow(), { secrets: { password: 'not-the-password' } });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'processing', reason: 'http_status' });
    expect(r.failure?.message).toBe('step login: status 401, expected 2xx');
    expect(r.steps?.map((s) => [s.name, s.ok])).toEqual([
      ['form', true],
      ['login', false],
    ]);
    expect(r.steps?.[1]?.failure).toEqual(r.failure);
  });

  it('without the login, the protected page ends on the login form: an assertion fails in home', async () => {
    const flow = loginFlow();
    const r = await run(a.url, { steps: [flow.steps[0], flow.steps[2]] });
    expect(r.failure).toMatchObject({ phase: 'processing', reason: 'assertion' });
    expect(r.failure?.message).toBe('step home: body does not match /<h1>Welcome</h1>/');
    expect(r.steps?.[1]).toMatchObject({ name: 'home', ok: false, status: 200, redirects: 1 });
  });

  it('a missing CSRF token is refused by the app (403)', async () => {
    const flow = loginFlow({ login: { form: { username: 'probe.user', password: '${secret.password}' } } });
    const r = await run(a.url, flow, { secrets: { password: a.password } });
    expect(r.failure).toMatchObject({ reason: 'http_status', message: 'step login: status 403, expected 2xx' });
  });

  it('logout deletes the session cookie: the protected page redirects to the login form again', async () => {
    const r = await run(
      a.url,
      {
        steps: [
          ...loginFlow().steps,
          { name: 'logout', url: '/logout', expect: { bodyContains: ['Sign in'] } },
          { name: 'after', url: '/app/home', followRedirects: false, expect: { status: [302], headers: { location: '^/login$' } } },
        ],
      },
      { secrets: { password: a.password } },
    );
    expect(r.failure).toBeUndefined();
    const after = a.requests.at(-1)!;
    expect(after.url).toBe('/app/home');
    // Only the new pre-login cookie the login form set after the logout; no session.
    expect(after.headers.cookie).toMatch(/^pre=[0-9a-f]+$/);
  });

  it('the slow-login switch: the login step over its degradedAbove makes the run degraded, naming it', async () => {
    a.slowLoginMs = 300;
    try {
      const r = await run(a.url, loginFlow({ login: { degradedAbove: '150ms' }, home: { degradedAbove: '150ms' } }), { secrets: { password: a.password } });
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.degraded?.reason).toBe('slow');
      expect(r.degraded?.message).toMatch(/^step login took \d+ ms \(limit 150 ms\)$/);
      expect(r.steps?.map((s) => s.slow ?? false)).toEqual([false, true, false]);
      // The time is in the login step's processing phase, where the directory behind it waits.
      expect(r.steps?.[1]?.phases.processing).toBeGreaterThan(0.29);
    } finally {
      a.slowLoginMs = 0;
    }
  });

  it('a fast login under its limit is not degraded', async () => {
    const r = await run(a.url, loginFlow({ login: { degradedAbove: '2s' } }), { secrets: { password: a.password } });
    expect(r.ok).toBe(true);
    expect(r.degraded).toBeUndefined();
  });

  it('the JSON API: token from a JSON body, used as a bearer token', async () => {
    const r = await run(
      a.url,
      {
        steps: [
          {
            name: 'token',
            method: 'POST',
            url: '/api/token',
            json: { username: 'probe.user', password: '${secret.password}' },
            expect: { jsonExists: ['$.access_token'], json: { '$.token_type': 'Bearer', '$.expires_in': 300 } },
            extract: { token: { jsonPath: '$.access_token' } },
          },
          {
            name: 'me',
            url: '/api/me',
            headers: { Authorization: 'Bearer ${var.token}' },
            expect: { json: { '$.ok': true, '$.user.roles[1]': 'ward-7', '$.ward.beds': 24 } },
          },
        ],
      },
      { secrets: { password: a.password } },
    );
    expect(r.failure).toBeUndefined();
    const tokenReq = a.requests.find((q) => q.url === '/api/token')!;
    expect(tokenReq.headers['content-type']).toBe('application/json');
    expect(JSON.parse(tokenReq.body)).toEqual({ username: 'probe.user', password: a.password });
  });
});

describe('http probe: cookies', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });
  const set = (path: string, ...lines: string[]) => `${path}/set?${lines.map((l) => `c=${encodeURIComponent(l)}`).join('&')}`;
  /** Runs the steps and returns the Cookie header of each request the app received. */
  async function cookiesSent(steps: { name: string; url: string }[]): Promise<(string | undefined)[]> {
    const from = a.requests.length;
    const r = await run(a.url, { steps });
    expect(r.failure).toBeUndefined();
    return a.requests.slice(from).map((q) => q.headers.cookie);
  }

  it('Path: a cookie goes to its path and below, not to a sibling that shares a prefix', async () => {
    const sent = await cookiesSent([
      { name: 'set', url: set('/c', 'scoped=1; Path=/c/inner', 'root=2; Path=/') },
      { name: 'inner', url: '/c/inner/show' },
      { name: 'sibling', url: '/c/innerx/show' },
      { name: 'top', url: '/c/show' },
    ]);
    expect(sent).toEqual([undefined, 'scoped=1; root=2', 'root=2', 'root=2']);
  });

  it('without Path, a cookie belongs to the folder of the URL that set it', async () => {
    const sent = await cookiesSent([
      { name: 'set', url: set('/d/e', 'deflt=1') },
      { name: 'same', url: '/d/e/show' },
      { name: 'parent', url: '/d/show' },
    ]);
    expect(sent).toEqual([undefined, 'deflt=1', undefined]);
  });

  it('Domain: a foreign domain is rejected; a host-only cookie does not go to another host', async () => {
    const sent = await cookiesSent([
      { name: 'set', url: set('', 'foreign=1; Domain=example.org', 'mine=1') },
      { name: 'same', url: '/show' },
      { name: 'other', url: `${a.localUrl}/show` },
    ]);
    expect(sent).toEqual([undefined, 'mine=1', undefined]);
  });

  it('Secure: not accepted over http, so never sent back', async () => {
    const sent = await cookiesSent([
      { name: 'set', url: set('', 'sec=1; Secure', 'plain=1') },
      { name: 'show', url: '/show' },
    ]);
    expect(sent).toEqual([undefined, 'plain=1']);
  });

  it('Max-Age=0 and an Expires in the past delete; a new value replaces the old one', async () => {
    const sent = await cookiesSent([
      { name: 'set', url: set('', 'a=1', 'b=1', 'c=1') },
      { name: 'show1', url: '/show' },
      { name: 'delete', url: set('', 'a=; Max-Age=0', 'b=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT', 'c=2') },
      { name: 'show2', url: '/show' },
    ]);
    expect(sent).toEqual([undefined, 'a=1; b=1; c=1', 'a=1; b=1; c=1', 'c=2']);
  });

  it('a cookie set on a redirect hop is sent on the next hop and in later steps', async () => {
    const from = a.requests.length;
    const r = await run(a.url, {
      steps: [
        { name: 'hop', url: `/redirect?code=302&to=${encodeURIComponent('/h/show')}&c=${encodeURIComponent('hop=1; Path=/')}` },
        { name: 'later', url: '/show' },
      ],
    });
    expect(r.ok).toBe(true);
    expect(a.requests.slice(from).map((q) => q.headers.cookie)).toEqual([undefined, 'hop=1', 'hop=1']);
  });

  it('the jar on its own: domain cookies reach subdomains, host-only ones do not', () => {
    const jar = new CookieJar();
    jar.store(new URL('https://portal.region.example/login'), ['sso=1; Domain=region.example; Path=/', 'host=1; Path=/', 'evil=1; Domain=other.example']);
    expect(jar.header(new URL('https://portal.region.example/'))).toBe('sso=1; host=1');
    expect(jar.header(new URL('https://ehr.region.example/app'))).toBe('sso=1');
    expect(jar.header(new URL('https://region.example/'))).toBe('sso=1');
    expect(jar.header(new URL('https://notregion.example/'))).toBeUndefined();
    expect(jar.header(new URL('https://other.example/'))).toBeUndefined();
    // Over https a Secure cookie is kept, and sent only over https.
    jar.store(new URL('https://portal.region.example/'), 'tok=1; Secure; Path=/');
    expect(jar.header(new URL('https://portal.region.example/'))).toContain('tok=1');
    expect(jar.header(new URL('http://portal.region.example/'))).not.toContain('tok=1');
    // Max-Age wins over Expires, whatever the order.
    jar.store(new URL('https://portal.region.example/'), 'ma=1; Max-Age=3600; Expires=Thu, 01 Jan 1970 00:00:00 GMT');
    expect(jar.get(new URL('https://portal.region.example/'), 'ma')).toBe('1');
  });
});

describe('http probe: redirects', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });
  const to = (code: number, target: string) => `/redirect?code=${code}&to=${encodeURIComponent(target)}`;

  it('303 turns a POST into a GET without a body; 307 keeps both', async () => {
    const see = await run(a.url, { method: 'POST', url: to(303, '/echo'), form: { a: 'b' }, expect: { json: { '$.method': 'GET', '$.body': '' } } });
    expect(see.failure).toBeUndefined();
    expect(a.requests.at(-1)?.headers['content-type']).toBeUndefined();
    const found = await run(a.url, { method: 'POST', url: to(302, '/echo'), form: { a: 'b' }, expect: { json: { '$.method': 'GET' } } });
    expect(found.failure).toBeUndefined();
    const temp = await run(a.url, { method: 'POST', url: to(307, '/echo'), form: { a: 'b' }, expect: { json: { '$.method': 'POST', '$.body': 'a=b' } } });
    expect(temp.failure).toBeUndefined();
    const perm = await run(a.url, { method: 'PUT', url: to(308, '/echo'), body: 'x', expect: { json: { '$.method': 'PUT', '$.body': 'x' } } });
    expect(perm.failure).toBeUndefined();
    expect(perm.values?.http_redirects).toBe(1);
  });

  it('a redirect loop ends with too_many_redirects after maxRedirects', async () => {
    const from = a.requests.length;
    const r = await run(`${a.url}/loop`, { maxRedirects: 3 });
    expect(r.failure).toMatchObject({ phase: 'processing', reason: 'too_many_redirects', message: 'step request: more than 3 redirects' });
    expect(a.requests.length - from).toBe(4);
    expect(r.values?.http_redirects).toBe(3);
    const none = await run(`${a.url}/loop`, { maxRedirects: 0 });
    expect(none.failure?.reason).toBe('too_many_redirects');
  });

  it('followRedirects: false keeps the 302 as the response', async () => {
    const r = await run(a.url, { url: to(302, '/elsewhere'), followRedirects: false, expect: { status: [302], headers: { location: '^/elsewhere$' } } });
    expect(r.failure).toBeUndefined();
    expect(r.values).toMatchObject({ http_status_code: 302, http_redirects: 0 });
    const strict = await run(a.url, { url: to(302, '/elsewhere'), followRedirects: false });
    expect(strict.failure).toMatchObject({ reason: 'http_status', message: 'step request: status 302, expected 2xx' });
  });

  it('a redirect to another origin does not carry secret-bearing headers there', async () => {
    const other = await app();
    const headers = { Authorization: 'Bearer ${secret.token}', 'X-Api-Key': '${secret.token}', 'X-Trace': 'plain' };
    const secrets = { secret: 'unused', token: 'tok-0b1c-secret' };
    const same = await run(a.url, { url: to(302, '/echo'), headers }, { secrets });
    expect(same.ok).toBe(true);
    expect(a.requests.at(-1)?.headers).toMatchObject({ authorization: 'Bearer tok-0b1c-secret', 'x-api-key': 'tok-0b1c-secret', 'x-trace': 'plain' });
    const cross = await run(a.url, { url: to(302, `${other.url}/echo`), headers }, { secrets });
    expect(cross.ok).toBe(true);
    const got = other.requests.at(-1)!;
    expect(got.url).toBe('/echo');
    expect(got.headers.authorization).toBeUndefined();
    expect(got.headers['x-api-key']).toBeUndefined();
    expect(got.headers['x-trace']).toBe('plain');
  });
});

describe('http probe: body limit', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });

  it('a 2 GB body fails quickly with body_too_large, and the read stops', async () => {
    globalThis.gc?.();
    const rss = process.memoryUsage().rss;
    const sentBefore = a.endlessBytes;
    const t0 = performance.now();
    const r = await run(`${a.url}/endless?bytes=${2 * 1024 ** 3}`, {}, { timeoutMs: 10_000 });
    const ms = performance.now() - t0;
    expect(r.failure).toMatchObject({ phase: 'transfer', reason: 'body_too_large', message: 'step request: body larger than 1048576 bytes (read stopped)' });
    expect(ms).toBeLessThan(2000 + BUSY_SLACK_MS);
    expect(phaseNames(r)).toEqual(['connect', 'processing', 'transfer']);
    expect(r.values?.http_content_length).toBeGreaterThan(1024 * 1024);
    expect(r.values?.http_content_length).toBeLessThan(1024 * 1024 + 256 * 1024);
    expect(process.memoryUsage().rss - rss).toBeLessThan(50 * 1024 * 1024);
    // The connection was closed: the server could not keep sending.
    await new Promise((res) => setTimeout(res, 100));
    const sent = a.endlessBytes - sentBefore;
    await new Promise((res) => setTimeout(res, 200));
    expect(a.endlessBytes - sentBefore).toBe(sent);
    expect(sent).toBeLessThan(64 * 1024 * 1024);
  });

  it('an endless body without a length fails the same way', async () => {
    const r = await run(`${a.url}/endless`, { maxBodySize: '64KiB' });
    expect(r.failure).toMatchObject({ phase: 'transfer', reason: 'body_too_large' });
  });

  it('a body of exactly maxBodySize is read; one byte more is not', async () => {
    const ok = await run(`${a.url}/big?bytes=1024`, { maxBodySize: '1KiB' });
    expect(ok.ok).toBe(true);
    expect(ok.values?.http_content_length).toBe(1024);
    const over = await run(`${a.url}/big?bytes=1025`, { maxBodySize: '1KiB' });
    expect(over.failure?.reason).toBe('body_too_large');
  });

  it('a redirect with an endless body is cut off at the limit and followed', async () => {
    const r = await run(`${a.url}/endless?redirect=${encodeURIComponent('/api/health')}`, { maxBodySize: '64KiB' });
    expect(r.failure).toBeUndefined();
    expect(r.values).toMatchObject({ http_redirects: 1, http_status_code: 200 });
  });
});

describe('http probe: hostile JSON bodies', () => {
  /** A peer answering every request with this JSON text. */
  async function jsonPeer(body: string): Promise<string> {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push({ port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }
  const nested = (depth: number, inner: string) => '['.repeat(depth) + inner + ']'.repeat(depth);
  let deep: string;
  beforeAll(async () => {
    // 4,000,000 bytes: 2 million levels.
    deep = await jsonPeer(nested(2e6, ''));
  });

  it('2 million levels: body_too_large under the default limit; above it, expect.json fails with protocol naming the depth limit', async () => {
    expect((await run(deep, { expect: { jsonExists: ['$'] } })).failure).toMatchObject({ phase: 'transfer', reason: 'body_too_large' });
    const r = await run(deep, { maxBodySize: '8MiB', expect: { json: { '$[0]': 1 } } });
    expect(r.failure).toMatchObject({
      phase: 'processing',
      reason: 'protocol',
      message: `step request: body is JSON nested deeper than ${JSON_MAX_DEPTH} levels (refused at character ${JSON_MAX_DEPTH}, before parsing)`,
    });
  });

  it('2 million levels: a jsonPath extraction fails with protocol, not "could not extract"', async () => {
    const r = await run(deep, { maxBodySize: '8MiB', extract: { v: { jsonPath: '$[0]' } } });
    expect(r.failure).toMatchObject({
      phase: 'processing',
      reason: 'protocol',
      message: expect.stringContaining(`nested deeper than ${JSON_MAX_DEPTH} levels`) as unknown,
    });
  });

  it(`more than ${JSON_MAX_CONTAINERS} arrays and objects: protocol, naming the limit`, async () => {
    const url = await jsonPeer(`[${Array(JSON_MAX_CONTAINERS).fill('{}').join(',')}]`);
    const r = await run(url, { expect: { jsonExists: ['$[0]'] } });
    expect(r.failure).toMatchObject({
      reason: 'protocol',
      message: expect.stringContaining(`JSON with more than ${JSON_MAX_CONTAINERS} arrays and objects`) as unknown,
    });
  });

  it('JSON nested exactly at the limit is checked and extracted as usual', async () => {
    const path = `$${'[0]'.repeat(JSON_MAX_DEPTH - 1)}.ok`;
    const url = await jsonPeer(nested(JSON_MAX_DEPTH - 1, '{"ok":"yes"}'));
    const r = await run(url, {
      steps: [
        { name: 'doc', url: '/', expect: { json: { [path]: 'yes' } }, extract: { v: { jsonPath: path }, whole: { jsonPath: '$' } } },
        { name: 'use', url: '/?v=${var.v}' },
      ],
    });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
  });
});

describe('http probe: timeouts', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });

  it('a server that accepts and never answers: timeout in processing, within the deadline', async () => {
    const t0 = performance.now();
    const r = await run(`${a.url}/stall-headers`, {}, { timeoutMs: 400 });
    expect(performance.now() - t0).toBeLessThan(400 + 250);
    expect(r.failure).toMatchObject({ phase: 'processing', reason: 'timeout', message: 'step request: timed out in processing' });
    // Connected, but the phase under way when time ran out did not complete: absent.
    expect(phaseNames(r)).toEqual(['connect']);
  });

  it('headers, then a stalled body: timeout in transfer', async () => {
    const t0 = performance.now();
    const r = await run(`${a.url}/stall-body`, {}, { timeoutMs: 400 });
    expect(performance.now() - t0).toBeLessThan(400 + 250);
    expect(r.failure).toMatchObject({ phase: 'transfer', reason: 'timeout' });
    expect(phaseNames(r)).toEqual(['connect', 'processing']);
    expect(r.steps?.[0]?.status).toBeUndefined();
  });

  it('unanswered SYNs: timeout in connect', async () => {
    const p = await blackholePeer();
    cleanup.push(p);
    const t0 = performance.now();
    const r = await run(`http://127.0.0.1:${p.port}/`, {}, { timeoutMs: 400 });
    // undici itself would wait for its connect timeout (10 s) before noticing the abort.
    expect(performance.now() - t0).toBeLessThan(400 + 250);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'timeout' });
    expect(r.phases).toEqual({});
  });

  it('a run whose signal already fired ends at once with timeout (and leaves no stray rejection)', async () => {
    const ctrl = new AbortController();
    ctrl.abort(new Error('agent stopping'));
    const r = await httpProbe.run({
      ...targetsOf('http', a.url),
      options: KIND_OPTIONS.http.parse({}),
      budget: new Budget(ctrl.signal, performance.now()),
      memory: new Map(),
      log: quietLog,
      secrets: {},
    });
    expect(r.failure?.reason).toBe('timeout');
    // An unhandled rejection would fail the test file.
    await new Promise((res) => setTimeout(res, 50));
  });

  it('a timeout in a later step names that step; the earlier steps keep their results', async () => {
    const r = await run(
      a.url,
      {
        steps: [
          { name: 'health', url: '/api/health' },
          { name: 'hang', url: '/stall-headers' },
        ],
      },
      { timeoutMs: 400 },
    );
    expect(r.failure).toMatchObject({ phase: 'processing', reason: 'timeout', message: 'step hang: timed out in processing' });
    expect(r.steps?.map((s) => [s.name, s.ok])).toEqual([
      ['health', true],
      ['hang', false],
    ]);
  });
});

describe('http probe: expectations', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });
  const health = (expect: Record<string, unknown>) => run(`${a.url}/api/health`, { expect });

  it('status: any 2xx by default, or the listed codes', async () => {
    expect((await run(`${a.url}/status/204`)).ok).toBe(true);
    expect((await run(`${a.url}/status/500`)).failure).toMatchObject({ reason: 'http_status', message: 'step request: status 500, expected 2xx' });
    expect((await run(`${a.url}/status/503`, { expect: { status: [200, 503] } })).ok).toBe(true);
    expect((await run(`${a.url}/status/200`, { expect: { status: [204] } })).failure?.message).toBe('step request: status 200, expected 204');
  });

  it('body: bodyMatches, bodyNotMatches and bodyContains', async () => {
    expect((await health({ bodyMatches: ['"status":"ok"', '^\\{'], bodyNotMatches: ['error'], bodyContains: ['2026.11.3'] })).ok).toBe(true);
    expect((await health({ bodyMatches: ['"status":"down"'] })).failure).toMatchObject({
      reason: 'assertion',
      message: 'step request: body does not match /"status":"down"/',
    });
    expect((await health({ bodyNotMatches: ['"ok"'] })).failure?.message).toBe('step request: body matches /"ok"/');
    expect((await health({ bodyContains: ['maintenance'] })).failure?.message).toBe('step request: body does not contain "maintenance"');
    // The text missing is named (the config's text, never the body's), cut when long.
    expect((await health({ bodyContains: ['2026.11.3', 'Ward 7'] })).failure?.message).toBe('step request: body does not contain "Ward 7"');
    expect((await health({ bodyContains: ['y'.repeat(100)] })).failure?.message).toBe(
      `step request: body does not contain "${'y'.repeat(80)}…" (100 characters)`,
    );
    // A secret value written into an expected text is masked like everywhere else.
    const quoted = expectedText('Welcome, token Zq8-secret-value-77', { token: 'Zq8-secret-value-77' });
    expect(quoted).not.toContain('Zq8-secret-value-77');
    expect(quoted).toMatch(/^"Welcome, token /);
  });

  it('json: values at JSON paths, and paths that must exist', async () => {
    const ok = await health({
      json: { '$.status': 'ok', '$.checks[0].ok': true, '$["dotted.key"]': 'yes', version: '2026.11.3' },
      jsonExists: ['$.checks[0].name'],
    });
    expect(ok.failure).toBeUndefined();
    expect((await health({ json: { '$.status': 'down' } })).failure).toMatchObject({
      reason: 'assertion',
      message: 'step request: JSON $.status is "ok", expected "down"',
    });
    expect((await health({ json: { '$.checks': 'x' } })).failure?.message).toBe('step request: JSON $.checks is an array, expected "x"');
    expect((await health({ json: { '$.nope': 1 } })).failure?.message).toBe('step request: JSON $.nope is missing, expected 1');
    expect((await health({ jsonExists: ['$.checks[3]'] })).failure?.message).toBe('step request: JSON has no $.checks[3]');
    expect((await run(`${a.url}/login`, { expect: { jsonExists: ['$.a'] } })).failure?.message).toBe('step request: body is not JSON');
  });

  it('headers: each named header must match its regex', async () => {
    expect((await health({ headers: { 'X-Build': '^2026\\.11\\.', 'content-type': 'json' } })).ok).toBe(true);
    expect((await health({ headers: { 'x-build': '^2027' } })).failure?.message).toBe('step request: header x-build does not match /^2027/');
    expect((await health({ headers: { 'x-missing': '.' } })).failure?.message).toBe('step request: header x-missing missing');
  });

  it('maxDuration: a step slower than that fails (an assertion, not degraded)', async () => {
    const r = await run(`${a.url}/slow?ms=250`, { expect: { maxDuration: '100ms' } });
    expect(r.failure).toMatchObject({ phase: 'processing', reason: 'assertion' });
    expect(r.failure?.message).toMatch(/^step request: took \d+ ms, more than 100 ms$/);
    expect((await run(`${a.url}/slow?ms=10`, { expect: { maxDuration: '2s' } })).ok).toBe(true);
  });
});

describe('http probe: extraction and templating', () => {
  let a: LoginApp;
  beforeAll(async () => {
    a = await app();
  });

  it('from a regex group, a JSON path, a header and a cookie, into later requests', async () => {
    const from = a.requests.length;
    const r = await run(a.url, {
      steps: [
        {
          name: 'form',
          url: '/login',
          extract: {
            csrf: { regex: 'name="(csrf)" value="([0-9a-f]+)"', group: 2 },
            whole: { regex: '<h1>[A-Za-z ]+</h1>', group: 0 },
            pre: { cookie: 'pre' },
          },
        },
        {
          name: 'health',
          url: '/api/health',
          extract: { version: { jsonPath: '$.version' }, first: { jsonPath: '$.checks[0]' }, build: { header: 'X-Build' } },
        },
        {
          name: 'echo',
          url: '/echo?v=${var.version}',
          headers: { 'x-csrf': '${var.csrf}', 'x-pre': '${var.pre}', 'x-whole': '${var.whole}', 'x-first': '${var.first}', 'x-build': '${var.build}' },
        },
      ],
    });
    expect(r.failure).toBeUndefined();
    const echo = a.requests.slice(from).find((q) => q.url.startsWith('/echo'))!;
    const form = a.requests[from]!;
    expect(echo.url).toBe('/echo?v=2026.11.3');
    expect(echo.headers['x-csrf']).toMatch(/^[0-9a-f]{24}$/);
    expect(echo.headers['x-pre']).toMatch(/^[0-9a-f]{24}$/);
    expect(echo.headers.cookie).toBe(`pre=${String(echo.headers['x-pre'])}`);
    expect(echo.headers['x-whole']).toBe('<h1>Sign in</h1>');
    expect(echo.headers['x-first']).toBe('{"name":"db","ok":true}');
    expect(echo.headers['x-build']).toBe('2026.11.3');
    expect(form.url).toBe('/login');
  });

  it('a value that cannot be extracted fails the step with assertion', async () => {
    for (const extract of [
      { regex: 'name="nothing" value="(\\w+)"' },
      { regex: '(a)', group: 5 },
      { jsonPath: '$.nope' },
      { header: 'x-none' },
      { cookie: 'none' },
    ]) {
      const r = await run(`${a.url}/api/health`, { extract: { v: extract } });
      expect(r.failure, JSON.stringify(extract)).toMatchObject({ phase: 'processing', reason: 'assertion', message: 'step request: could not extract v' });
    }
    const notJson = await run(`${a.url}/login`, { extract: { v: { jsonPath: '$.a' } } });
    expect(notJson.failure?.message).toBe('step request: could not extract v');
  });

  it('an undefined variable or secret fails the step cleanly, before any request', async () => {
    const from = a.requests.length;
    const r = await run(a.url, {
      steps: [
        { name: 'first', url: '/api/health' },
        { name: 'second', url: '/echo', headers: { 'x-v': '${var.never}' } },
      ],
    });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'processing', reason: 'internal', message: 'step second: ${var.never} is not defined' });
    const s = await run(a.url, { url: '/echo', form: { p: '${secret.missing}' } }, { secrets: { password: 'x1234' } });
    expect(s.failure?.message).toBe('step request: ${secret.missing} is not defined');
    expect(a.requests.length - from).toBe(1);
  });

  it('template: only ${secret.NAME} and ${var.NAME}; values are not expanded again', () => {
    expect(template('a ${var.x} ${secret.s} $var.x ${other.y}', { s: 'S' }, { x: '${secret.s}' })).toBe('a ${secret.s} S $var.x ${other.y}');
  });

  it('jsonPath: dotted names, indexes and quoted keys; anything else is no match', () => {
    const doc = { a: { b: [{ c: 1 }, { 'd.e': 2 }] } };
    expect(jsonPath(doc, '$.a.b[0].c')).toBe(1);
    expect(jsonPath(doc, 'a.b[1]["d.e"]')).toBe(2);
    expect(jsonPath(doc, '$')).toEqual(doc);
    expect(jsonPath(doc, '$.a..b')).toBeUndefined();
    expect(jsonPath(doc, '$.a.b[9].c')).toBeUndefined();
  });
});
