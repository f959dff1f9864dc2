// The oidc probe against an identity provider built here: a discovery document, a token endpoint
// (client_credentials and password grants, Basic or body client authentication, every OAuth
// error), a userinfo endpoint, over HTTP and HTTPS, and its hostile corners (stalls, endless
// bodies, error descriptions that echo the credentials back).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { type OidcOptions } from '../../probes/oidc/options.js';
import { parseConfig } from '../../config/loader.js';
import { JSON_MAX_DEPTH } from '../../probes/kit/json.js';
import { OAUTH_ERROR_CODES, oidcProbe } from '../../probes/oidc/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { makePki, type Pem, type TestPki } from '../helpers/certs.js';
import { budget, BUSY_SLACK_MS, closedPort, quietLog, targetsOf } from '../helpers/peers.js';

const CLIENT_ID = 'vakt-probe';
// Characters that form encoding, URL encoding and JSON escaping all change.
const CLIENT_SECRET = 'cl1ent-S3cret/with+plus&amp=eq "q"';
const PASSWORD = 'p@ss wörd-Secr3t%25';
const USER = 'probe.user';
const ACCESS_TOKEN = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJwcm9iZSJ9.sig-Acc3ssT0ken';
const SECRETS = { client_secret: CLIENT_SECRET, user_password: PASSWORD };

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Handler = (req: Seen, res: ServerResponse) => void;

interface Idp {
  base: string;
  port: number;
  seen: Seen[];
  /** Replaces the token endpoint's behaviour for one test (reset after each test). */
  token: Handler | undefined;
  userinfo: Handler | undefined;
  discovery: Handler | undefined;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** The token endpoint of a well-behaved server: checks the client and the user like Keycloak does. */
function goodToken(req: Seen, res: ServerResponse): void {
  const form = new URLSearchParams(req.body);
  let id = form.get('client_id');
  let secret = form.get('client_secret');
  const auth = req.headers.authorization;
  if (auth?.startsWith('Basic ')) {
    const [u = '', p = ''] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
    id = decodeURIComponent(u.replace(/\+/g, ' '));
    secret = decodeURIComponent(p.replace(/\+/g, ' '));
  }
  // Echo what was sent in the description, as careless servers do.
  if (id !== CLIENT_ID || secret !== CLIENT_SECRET) return json(res, 401, { error: 'invalid_client', error_description: `bad client ${id}/${secret}` });
  const grant = form.get('grant_type');
  if (grant === 'password' && (form.get('username') !== USER || form.get('password') !== PASSWORD)) {
    return json(res, 400, { error: 'invalid_grant', error_description: `Invalid user credentials for ${form.get('username')} with ${form.get('password')}` });
  }
  if (grant !== 'password' && grant !== 'client_credentials') return json(res, 400, { error: 'unsupported_grant_type' });
  const openid = (form.get('scope') ?? '').split(' ').includes('openid');
  json(res, 200, { access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 300, ...(openid ? { id_token: 'aGVhZA.Ym9keQ.c2ln' } : {}) });
}

async function startIdp(pem?: Pem): Promise<Idp> {
  const sockets = new Set<Socket>();
  const idp = { seen: [] as Seen[], token: undefined, userinfo: undefined, discovery: undefined } as unknown as Idp;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: Seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      idp.seen.push(seen);
      const path = seen.path;
      if (path === '/realms/ward/.well-known/openid-configuration' && req.method === 'GET') {
        if (idp.discovery) return idp.discovery(seen, res);
        return json(res, 200, {
          issuer: `${idp.base}/realms/ward`,
          token_endpoint: `${idp.base}/realms/ward/token`,
          userinfo_endpoint: `${idp.base}/realms/ward/userinfo`,
        });
      }
      if (path === '/realms/ward/token' && req.method === 'POST') return (idp.token ?? goodToken)(seen, res);
      if (path === '/realms/ward/userinfo') {
        if (idp.userinfo) return idp.userinfo(seen, res);
        if (seen.headers.authorization === `Bearer ${ACCESS_TOKEN}`) return json(res, 200, { sub: 'probe' });
        return json(res, 401, {}, { 'www-authenticate': 'Bearer realm="ward", error="invalid_token"' });
      }
      json(res, 404, { error: 'not_found' });
    });
  };
  const server: Server = pem ? createHttpsServer({ cert: pem.cert, key: pem.key }, handle) : createHttpServer(handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  idp.port = (server.address() as { port: number }).port;
  idp.base = `${pem ? 'https' : 'http'}://127.0.0.1:${idp.port}`;
  idp.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return idp;
}

function run(target: string, options: Record<string, unknown>, timeoutMs = 3000, secrets: Record<string, string> = SECRETS): Promise<ProbeResult> {
  const opts: OidcOptions = KIND_OPTIONS.oidc.parse(options);
  return oidcProbe.run({ ...targetsOf('oidc', target), options: opts, ...budget(timeoutMs), log: quietLog, secrets });
}

const CC = { clientId: CLIENT_ID, clientSecret: 'client_secret' };
const PW = { grant: 'password', clientId: CLIENT_ID, clientSecret: 'client_secret', username: USER, password: 'user_password', scope: 'openid profile' };

/** No form in which a credential or the token could appear is anywhere in the result. */
function expectNoSecrets(r: ProbeResult): void {
  const text = JSON.stringify(r);
  for (const v of [CLIENT_SECRET, PASSWORD, ACCESS_TOKEN]) {
    for (const form of [v, encodeURIComponent(v), new URLSearchParams({ v }).toString().slice(2), JSON.stringify(v).slice(1, -1)]) {
      expect(text).not.toContain(form);
    }
  }
  expect(text).not.toContain('S3cret');
  expect(text).not.toContain('Secr3t');
  expect(text).not.toContain('T0ken');
}

let idp: Idp;
beforeAll(async () => {
  idp = await startIdp();
});
afterEach(() => {
  idp.token = undefined;
  idp.userinfo = undefined;
  idp.discovery = undefined;
  idp.seen.length = 0;
});
afterAll(async () => {
  await idp.close();
});

const issuer = () => `${idp.base}/realms/ward`;
const tokenEndpoint = () => `${idp.base}/realms/ward/token`;
const tokenRequests = () => idp.seen.filter((s) => s.path === '/realms/ward/token');

describe('oidc probe: discovery and grants', () => {
  it('finds the token endpoint through discovery and gets a token with client_credentials (Basic auth)', async () => {
    const r = await run(issuer(), CC);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['discovery', 'connect', 'token']);
    for (const v of Object.values(r.phases)) expect(v).toBeGreaterThanOrEqual(0);
    expect(r.values?.http_status_code).toBe(200);
    expect(r.info).toBeUndefined();
    expect(idp.seen.map((s) => `${s.method} ${s.path}`)).toEqual(['GET /realms/ward/.well-known/openid-configuration', 'POST /realms/ward/token']);
    const [t] = tokenRequests();
    expect(t!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(t!.headers.authorization).toMatch(/^Basic /);
    const form = new URLSearchParams(t!.body);
    expect(form.get('grant_type')).toBe('client_credentials');
    // Basic auth: the secret travels only in the header.
    expect(form.has('client_secret')).toBe(false);
    expect(form.has('client_id')).toBe(false);
  });

  it('Basic credentials are form-encoded before base64 (RFC 6749 2.3.1)', async () => {
    await run(issuer(), CC);
    const auth = tokenRequests()[0]!.headers.authorization!;
    const decoded = Buffer.from(auth.slice(6), 'base64').toString();
    expect(decoded).toBe(`${CLIENT_ID}:${new URLSearchParams({ v: CLIENT_SECRET }).toString().slice(2)}`);
  });

  it('clientAuth: body sends client_id and client_secret in the form, no Authorization header', async () => {
    const r = await run(issuer(), { ...CC, clientAuth: 'body' });
    expect(r.ok).toBe(true);
    const [t] = tokenRequests();
    expect(t!.headers.authorization).toBeUndefined();
    const form = new URLSearchParams(t!.body);
    expect(form.get('client_id')).toBe(CLIENT_ID);
    expect(form.get('client_secret')).toBe(CLIENT_SECRET);
  });

  it('password grant sends username, password and scope, and can require an id_token', async () => {
    const r = await run(issuer(), { ...PW, expect: { idToken: true } });
    expect(r.failure).toBeUndefined();
    const form = new URLSearchParams(tokenRequests()[0]!.body);
    expect(form.get('grant_type')).toBe('password');
    expect(form.get('username')).toBe(USER);
    expect(form.get('password')).toBe(PASSWORD);
    expect(form.get('scope')).toBe('openid profile');
  });

  it('a missing id_token fails when expect.idToken is set', async () => {
    const r = await run(issuer(), { ...PW, scope: 'profile', expect: { idToken: true } });
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'assertion' });
    expect(r.failure?.message).toContain('id_token');
  });

  it('extra params are sent with the token request', async () => {
    await run(issuer(), { ...CC, params: { audience: 'https://ehr.region.example' } });
    expect(new URLSearchParams(tokenRequests()[0]!.body).get('audience')).toBe('https://ehr.region.example');
  });

  it('discovery: false posts to the target itself', async () => {
    const r = await run(tokenEndpoint(), { ...CC, discovery: false });
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['connect', 'token']);
    expect(idp.seen.map((s) => s.path)).toEqual(['/realms/ward/token']);
  });

  it('a target that is already the discovery URL is used as it is', async () => {
    const r = await run(`${issuer()}/.well-known/openid-configuration`, CC);
    expect(r.ok).toBe(true);
    expect(idp.seen[0]!.path).toBe('/realms/ward/.well-known/openid-configuration');
  });

  it('a trailing slash on the issuer is dropped before /.well-known', async () => {
    const r = await run(`${issuer()}/`, CC);
    expect(r.ok).toBe(true);
  });

  it('a host name is resolved and timed as the resolve phase', async () => {
    const r = await run(`http://localhost:${idp.port}/realms/ward/token`, { ...CC, discovery: false, ipFamily: 'ip4' });
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['resolve', 'connect', 'token']);
  });

  it('expect.issuer must match the document', async () => {
    expect((await run(issuer(), { ...CC, expect: { issuer: issuer() } })).ok).toBe(true);
    idp.seen.length = 0;
    const r = await run(issuer(), { ...CC, expect: { issuer: 'https://login.region.example/realms/ward' } });
    expect(r.failure).toMatchObject({ phase: 'discovery', reason: 'assertion' });
    expect(tokenRequests()).toHaveLength(0);
  });

  it('a 404 discovery document is http_status and hints at discovery: false', async () => {
    const r = await run(tokenEndpoint(), CC);
    expect(r.failure).toMatchObject({ phase: 'discovery', reason: 'http_status' });
    expect(r.failure?.message).toContain('discovery: false');
  });

  it('a discovery document without token_endpoint, or that is not JSON, is protocol', async () => {
    idp.discovery = (_req, res) => json(res, 200, { issuer: issuer() });
    expect((await run(issuer(), CC)).failure).toMatchObject({ phase: 'discovery', reason: 'protocol' });
    idp.discovery = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>login</html>');
    };
    expect((await run(issuer(), CC)).failure).toMatchObject({ phase: 'discovery', reason: 'protocol' });
  });
});

describe('oidc probe: the token response', () => {
  it('expires_in as a numeric string is accepted; minExpiresIn is checked', async () => {
    idp.token = (_req, res) => json(res, 200, { access_token: ACCESS_TOKEN, token_type: 'bearer', expires_in: '60' });
    expect((await run(issuer(), CC)).ok).toBe(true);
    const r = await run(issuer(), { ...CC, expect: { minExpiresIn: '5m' } });
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'assertion' });
    expect(r.failure?.message).toBe('expires_in is 60 s, expected at least 300 s');
  });

  it('no access_token, a wrong token_type or no expires_in is an assertion failure', async () => {
    idp.token = (_req, res) => json(res, 200, { token_type: 'Bearer', expires_in: 300 });
    expect((await run(issuer(), CC)).failure?.message).toBe('the token response has no access_token');
    idp.token = (_req, res) => json(res, 200, { access_token: ACCESS_TOKEN, token_type: 'mac', expires_in: 300 });
    expect((await run(issuer(), CC)).failure?.message).toBe('token_type is "mac", expected Bearer');
    idp.token = (_req, res) => json(res, 200, { access_token: ACCESS_TOKEN, token_type: 'Bearer' });
    const r = await run(issuer(), CC);
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'assertion', message: 'the token response has no expires_in' });
    expectNoSecrets(r);
    expect((await run(issuer(), { ...CC, expect: { requireExpiresIn: false } })).ok).toBe(true);
    idp.token = (_req, res) => json(res, 200, { access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: -5 });
    expect((await run(issuer(), CC)).failure?.message).toBe('expires_in is not a positive number of seconds');
  });

  it('a 200 that is not JSON is protocol', async () => {
    idp.token = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>Sign in</html>');
    };
    expect((await run(issuer(), CC)).failure).toMatchObject({ phase: 'token', reason: 'protocol' });
  });

  it('5xx is http_status, also with an OAuth error body, and sets no authCode', async () => {
    idp.token = (_req, res) => json(res, 503, { error: 'temporarily_unavailable' });
    const r = await run(issuer(), CC);
    expect(r.failure).toMatchObject({
      phase: 'token',
      reason: 'http_status',
      message: 'the token endpoint answered status 503 (error temporarily_unavailable)',
    });
    expect(r.info?.authCode).toBeUndefined();
    expect(r.values?.http_status_code).toBe(503);
    idp.token = (_req, res) => {
      res.writeHead(502);
      res.end('bad gateway');
    };
    expect((await run(issuer(), CC)).failure).toMatchObject({ phase: 'token', reason: 'http_status' });
  });

  it('other 4xx without an OAuth error is http_status; 401 without one is auth (other)', async () => {
    idp.token = (_req, res) => {
      res.writeHead(405);
      res.end();
    };
    expect((await run(issuer(), CC)).failure).toMatchObject({ reason: 'http_status' });
    idp.token = (_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="ward"' });
      res.end();
    };
    const r = await run(issuer(), CC);
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'auth' });
    expect(r.info?.authCode).toBe('other');
  });
});

describe('oidc probe: OAuth errors are reason auth with a bounded code', () => {
  it('a wrong client secret is invalid_client, and the echoed secret is not in the result', async () => {
    const r = await run(issuer(), CC, 3000, { client_secret: `${CLIENT_SECRET}-old` });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'auth' });
    expect(r.info?.authCode).toBe('invalid_client');
    expect(r.failure?.message).toContain('invalid_client (status 401): bad client vakt-probe/[REDACTED]');
    expect(JSON.stringify(r)).not.toContain('-old');
    expectNoSecrets(r);
  });

  it('wrong user credentials are invalid_grant, with neither password nor client secret in the message', async () => {
    const r = await run(issuer(), PW, 3000, { ...SECRETS, user_password: 'wrong-Secr3t-pw' });
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'auth' });
    expect(r.info?.authCode).toBe('invalid_grant');
    expect(r.failure?.message).toContain('Invalid user credentials');
    expect(r.failure?.message).not.toContain('wrong-');
    expectNoSecrets(r);
  });

  for (const code of [...OAUTH_ERROR_CODES, 'account_locked_by_policy', '']) {
    it(`error ${JSON.stringify(code)} -> auth, authCode ${(OAUTH_ERROR_CODES as readonly string[]).includes(code) ? code : 'other'}`, async () => {
      // The description echoes every credential the request carried, in every encoding.
      idp.token = (req, res) =>
        json(res, code === 'invalid_client' ? 401 : 400, {
          error: code,
          error_description: `${req.body} | ${req.headers.authorization ?? ''} | ${CLIENT_SECRET} ${PASSWORD}`,
        });
      const r = await run(issuer(), { ...PW, clientAuth: 'body' });
      expect(r.ok).toBe(false);
      expect(r.failure?.reason).toBe('auth');
      expect(r.failure?.phase).toBe('token');
      expect(r.info?.authCode).toBe((OAUTH_ERROR_CODES as readonly string[]).includes(code) ? code : 'other');
      expectNoSecrets(r);
    });
  }

  it('an echo through the Basic header (base64) is scrubbed too', async () => {
    idp.token = (req, res) => json(res, 400, { error: 'invalid_request', error_description: `got ${req.headers.authorization}` });
    const r = await run(issuer(), CC);
    expect(r.failure?.message).toContain('got Basic [REDACTED]');
  });

  it('a hostile error value is quoted bounded, and the label stays "other"', async () => {
    idp.token = (_req, res) => json(res, 400, { error: `x\n${'y'.repeat(500)}${CLIENT_SECRET}` });
    const r = await run(issuer(), CC);
    expect(r.info?.authCode).toBe('other');
    expect(r.failure!.message.length).toBeLessThan(200);
    expect(r.failure!.message).not.toContain('\n');
    expectNoSecrets(r);
  });
});

describe('oidc probe: protected resource', () => {
  it('calls userinfo from discovery with the bearer token', async () => {
    const r = await run(issuer(), { ...CC, resource: { url: 'userinfo' } });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['discovery', 'connect', 'token', 'resource']);
    const u = idp.seen.find((s) => s.path === '/realms/ward/userinfo');
    expect(u?.headers.authorization).toBe(`Bearer ${ACCESS_TOKEN}`);
  });

  it('calls a configured URL, with expectStatus', async () => {
    idp.userinfo = (_req, res) => json(res, 204, {});
    expect((await run(issuer(), { ...CC, resource: { url: `${issuer()}/userinfo`, expectStatus: [204] } })).ok).toBe(true);
    const r = await run(issuer(), { ...CC, resource: { url: `${issuer()}/userinfo`, expectStatus: [200] } });
    expect(r.failure).toMatchObject({ phase: 'resource', reason: 'http_status', message: 'the resource answered status 204, expected 200' });
  });

  it('401 from the resource is auth, with the RFC 6750 error as code; the echoed token is scrubbed', async () => {
    idp.userinfo = (req, res) =>
      json(
        res,
        401,
        { seen: req.headers.authorization },
        { 'www-authenticate': `Bearer realm="ward", error="invalid_token", error_description="${ACCESS_TOKEN} expired"` },
      );
    const r = await run(issuer(), { ...CC, resource: { url: 'userinfo' } });
    expect(r.failure).toMatchObject({ phase: 'resource', reason: 'auth', message: 'the resource refused the token: status 401 (invalid_token)' });
    expect(r.info?.authCode).toBe('invalid_token');
    expect(r.phases.resource).toBeGreaterThan(0);
    expectNoSecrets(r);
    idp.userinfo = (_req, res) => json(res, 403, {}, { 'www-authenticate': 'Bearer error="insufficient_scope", scope="ehr.read"' });
    expect((await run(issuer(), { ...CC, resource: { url: 'userinfo' } })).info?.authCode).toBe('insufficient_scope');
    idp.userinfo = (_req, res) => {
      res.writeHead(401);
      res.end();
    };
    expect((await run(issuer(), { ...CC, resource: { url: 'userinfo' } })).info?.authCode).toBe('other');
  });

  it('5xx from the resource is http_status', async () => {
    idp.userinfo = (_req, res) => json(res, 500, {});
    expect((await run(issuer(), { ...CC, resource: { url: 'userinfo' } })).failure).toMatchObject({ phase: 'resource', reason: 'http_status' });
  });

  it('resource: userinfo fails in discovery when the document has no userinfo_endpoint', async () => {
    idp.discovery = (_req, res) => json(res, 200, { issuer: issuer(), token_endpoint: tokenEndpoint() });
    const r = await run(issuer(), { ...CC, resource: { url: 'userinfo' } });
    expect(r.failure).toMatchObject({ phase: 'discovery', reason: 'assertion' });
    expect(tokenRequests()).toHaveLength(0);
  });
});

describe('oidc probe: time, size and connection failures', () => {
  it('a token endpoint that never answers times out in the token phase, and the connection is closed', async () => {
    const open: ServerResponse[] = [];
    idp.token = (_req, res) => void open.push(res);
    const t0 = Date.now();
    const r = await run(issuer(), CC, 600);
    expect(Date.now() - t0).toBeLessThan(1500 + BUSY_SLACK_MS);
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'timeout' });
    expect(r.phases.discovery).toBeGreaterThan(0);
    expect(r.phases.connect).toBeGreaterThanOrEqual(0);
    expect(r.phases.token).toBeUndefined();
    await new Promise((res) => setTimeout(res, 100));
    expect(open).toHaveLength(1);
    expect(open[0]!.destroyed || open[0]!.socket === null || open[0]!.socket.destroyed).toBe(true);
  });

  it('a slow discovery document times out in the discovery phase', async () => {
    idp.discovery = () => undefined;
    const r = await run(issuer(), CC, 400);
    expect(r.failure).toMatchObject({ phase: 'discovery', reason: 'timeout' });
    expect(r.phases.discovery).toBeUndefined();
  });

  it('an endless token response is read only up to maxBodySize', async () => {
    let written = 0;
    idp.token = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"access_token":"');
      const chunk = Buffer.alloc(64 * 1024, 'a');
      const pump = () => {
        while (!res.destroyed && written < 512 * 1024 * 1024 && res.write(chunk)) written += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('error', () => undefined);
      pump();
    };
    const t0 = Date.now();
    const r = await run(issuer(), { ...CC, maxBodySize: '64KiB' });
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'body_too_large' });
    expect(r.failure?.message).toContain('65536 bytes');
    expect(Date.now() - t0).toBeLessThan(2000 + BUSY_SLACK_MS);
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it('a huge discovery document is bounded too', async () => {
    idp.discovery = (_req, res) => json(res, 200, { issuer: issuer(), token_endpoint: tokenEndpoint(), padding: 'x'.repeat(300 * 1024) });
    expect((await run(issuer(), CC)).failure).toMatchObject({ phase: 'discovery', reason: 'body_too_large' });
  });

  it('a discovery document or token response 2 million levels deep: body_too_large by default, protocol above the limit, naming the depth limit', async () => {
    const deep = '['.repeat(2e6) + ']'.repeat(2e6);
    const send = (_req: Seen, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(deep);
    };
    idp.discovery = send;
    expect((await run(issuer(), CC)).failure).toMatchObject({ phase: 'discovery', reason: 'body_too_large' });
    const discovery = await run(issuer(), { ...CC, maxBodySize: '8MiB' });
    expect(discovery.failure).toMatchObject({
      phase: 'discovery',
      reason: 'protocol',
      message: `the discovery document is JSON nested deeper than ${JSON_MAX_DEPTH} levels (refused at character ${JSON_MAX_DEPTH}, before parsing)`,
    });
    idp.discovery = undefined;
    idp.token = send;
    const token = await run(issuer(), { ...CC, maxBodySize: '8MiB' });
    expect(token.failure).toMatchObject({
      phase: 'token',
      reason: 'protocol',
      message: expect.stringContaining(`the token response is JSON nested deeper than ${JSON_MAX_DEPTH} levels`) as unknown,
    });
  });

  it('documents nested exactly at the depth limit are read as usual', async () => {
    const deep = JSON.parse('['.repeat(JSON_MAX_DEPTH - 1) + ']'.repeat(JSON_MAX_DEPTH - 1)) as unknown;
    idp.discovery = (_req, res) => json(res, 200, { issuer: issuer(), token_endpoint: tokenEndpoint(), mtls_endpoint_aliases: deep });
    idp.token = (_req, res) => json(res, 200, { access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 300, authorization_details: deep });
    const r = await run(issuer(), CC);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
  });

  it('a closed port is refused in connect, whether of the discovery or of the token request (as in every kind)', async () => {
    const port = await closedPort();
    expect((await run(`http://127.0.0.1:${port}/realms/ward`, CC)).failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    const r = await run(`http://127.0.0.1:${port}/token`, { ...CC, discovery: false });
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect(r.phases).toEqual({});
  });

  it('an unknown host fails in resolve', async () => {
    const r = await run('http://no-such-idp.invalid/token', { ...CC, discovery: false });
    expect(r.failure).toMatchObject({ phase: 'resolve', reason: 'resolve' });
  });

  it('a secret name the check does not define is internal (the loader refuses such a file)', async () => {
    const r = await run(issuer(), CC, 3000, {});
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'internal' });
    expect(tokenRequests()).toHaveLength(0);
  });
});

describe('oidc probe: HTTPS', () => {
  let pki: TestPki;
  let secure: Idp;
  let expiring: Idp;
  beforeAll(async () => {
    pki = makePki();
    secure = await startIdp(pki.valid);
    expiring = await startIdp(pki.expiringSoon);
  });
  afterAll(async () => {
    await secure.close();
    await expiring.close();
  });

  it('times resolve/connect/tls of the token request and reports the certificate', async () => {
    const r = await run(`${secure.base}/realms/ward`, { ...CC, tls: { caFile: pki.caFile }, resource: { url: 'userinfo' } });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['discovery', 'connect', 'tls', 'token', 'resource']);
    expect(r.phases.tls).toBeGreaterThan(0);
    expect(r.info?.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    expect(r.info?.certSubject).toBe('CN=service.test');
    expect(r.values?.ssl_earliest_cert_expiry).toBeGreaterThan(Date.now() / 1000);
    expect(r.degraded).toBeUndefined();
  });

  it('an untrusted certificate fails the handshake in tls, whether of the discovery or of the token request', async () => {
    const r = await run(`${secure.base}/realms/ward/token`, { ...CC, discovery: false });
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    expect(r.phases.connect).toBeGreaterThanOrEqual(0);
    expect((await run(`${secure.base}/realms/ward`, CC)).failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
  });

  it('serverName and mutual TLS options are accepted like the other kinds', async () => {
    const r = await run(`${secure.base}/realms/ward`, {
      ...CC,
      tls: { caFile: pki.caFile, serverName: 'service.test', certFile: pki.clientCertFile, keyFile: pki.clientKeyFile },
    });
    expect(r.failure).toBeUndefined();
  });

  it('a certificate close to expiry makes the run degraded', async () => {
    const r = await run(`${expiring.base}/realms/ward`, { ...CC, tls: { caFile: pki.caFile } });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('cert_expiring');
  });

  it('credentials are never sent to an http:// token endpoint named by an https:// discovery document', async () => {
    secure.discovery = (_req, res) => json(res, 200, { issuer: `${secure.base}/realms/ward`, token_endpoint: `${idp.base}/realms/ward/token` });
    try {
      const r = await run(`${secure.base}/realms/ward`, { ...CC, tls: { caFile: pki.caFile } });
      expect(r.failure).toMatchObject({ phase: 'discovery', reason: 'protocol' });
      expect(tokenRequests()).toHaveLength(0);
    } finally {
      secure.discovery = undefined;
    }
  });
});

describe('oidc options and config', () => {
  const parse = (o: Record<string, unknown>) => KIND_OPTIONS.oidc.safeParse(o);
  const messages = (o: Record<string, unknown>) => parse(o).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];

  it('defaults', () => {
    const o = KIND_OPTIONS.oidc.parse(CC);
    expect(o).toMatchObject({
      discovery: true,
      grant: 'client_credentials',
      maxBodySize: 256 * 1024,
      expect: { tokenType: 'Bearer', requireExpiresIn: true, idToken: false },
    });
    expect(o.clientAuth).toBeUndefined();
  });

  it('refuses inconsistent grants and client authentication', () => {
    expect(messages({ clientId: 'x' })).toEqual(['clientSecret: expected clientSecret (or tls.certFile for mutual TLS) with grant: client_credentials']);
    expect(messages({ clientId: 'x', grant: 'password' })).toEqual([
      'username: expected username with grant: password',
      'password: expected password (a secret name) with grant: password',
    ]);
    expect(messages({ clientId: 'x', grant: 'password', password: 'pw' })).toEqual(['username: expected username with grant: password']);
    // username and password are keys of the password grant only.
    expect(messages({ ...CC, username: 'u' })).toEqual([': Unrecognized key: "username"']);
    expect(messages({ ...CC, password: 'pw' })).toEqual([': Unrecognized key: "password"']);
    expect(messages({ ...CC, grant: 'implicit' })).toEqual(['grant: expected a grant: client_credentials, password']);
    expect(messages({ ...CC, clientAuth: 'none' })).toEqual(['clientAuth: expected basic or body with clientSecret (none sends no secret)']);
    expect(messages({ clientId: 'x', grant: 'password', username: 'u', password: 'pw', clientAuth: 'body' })).toEqual([
      'clientAuth: expected clientSecret with clientAuth: body',
    ]);
    expect(messages({ ...CC, params: { client_secret: 'x' } })[0]).toMatch(/^params\.client_secret: expected a parameter the probe does not set itself/);
    expect(messages({ ...CC, discovery: false, resource: { url: 'userinfo' } })).toEqual([
      'resource.url: expected an http(s) URL (userinfo needs discovery: true)',
    ]);
    expect(messages({ ...CC, resource: { url: '/userinfo' } })).toEqual(['resource.url: expected an http:// or https:// URL, or userinfo']);
    // A public client with the password grant needs no secret; mutual TLS replaces it for client_credentials.
    expect(parse({ clientId: 'x', grant: 'password', username: 'u', password: 'pw' }).success).toBe(true);
    expect(parse({ clientId: 'x', tls: { certFile: '/c.pem', keyFile: '/k.pem' } }).success).toBe(true);
  });

  it("the loader requires clientSecret and password to name entries of the check's secrets, without echoing them", () => {
    const yaml = [
      'checks:',
      '  - name: idp',
      '    kind: oidc',
      '    target: https://login.region.example/realms/ward',
      '    secrets:',
      '      client_secret: {env: VAKT_TEST_OIDC_SECRET}',
      '    oidc:',
      '      grant: password',
      '      clientId: vakt',
      '      clientSecret: client_secret',
      '      username: probe',
      '      password: Hunter2Secret',
      '',
    ].join('\n');
    let message = '';
    try {
      parseConfig(yaml, 'idp.yaml', { VAKT_TEST_OIDC_SECRET: 'x-secret' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      "idp.yaml:12:17: checks[0].oidc.password: expected the name of an entry of the check's secrets (client_secret), found a value not shown (a secret may stand here)",
    );
    expect(message).not.toContain('Hunter2');
    const ok = parseConfig(
      yaml
        .replace('Hunter2Secret', 'pw')
        .replace(
          '      client_secret: {env: VAKT_TEST_OIDC_SECRET}\n',
          '      client_secret: {env: VAKT_TEST_OIDC_SECRET}\n      pw: {env: VAKT_TEST_OIDC_PW}\n',
        ),
      'idp.yaml',
      {
        VAKT_TEST_OIDC_SECRET: 'x-secret',
        VAKT_TEST_OIDC_PW: 'y-secret',
      },
    );
    expect(ok.checks[0]).toMatchObject({ kind: 'oidc', secrets: { client_secret: 'x-secret', pw: 'y-secret' } });
  });
});
