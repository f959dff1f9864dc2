// The sandbox's login: a small web application with a sign-in form and an OpenID Connect
// identity provider in the same process, for `vakt demo` and for the http and oidc probe tests.
//
// The web application: a form with a CSRF token, a POST answered by a redirect chain that sets the
// session cookie at one of its hops, a protected page, logout, a JSON API with a bearer token, and
// the hostile corners a probe must survive (an echo of the request, an endless body, stalls, a
// redirect loop).
//
// The identity provider (issuer: the app's base URL):
//   GET  /.well-known/openid-configuration   discovery document
//   POST /oauth2/token                        client_credentials and password grants; client
//                                             authentication by HTTP Basic or in the form; OAuth
//                                             errors as JSON (invalid_client, invalid_grant, ...)
//   GET  /oauth2/userinfo                     the token's subject, with a bearer check (RFC 6750)
//
// Fault switches (`faults`, one object may be shared by several apps):
//   login  ok | slow (POST /login and POST /api/token take `slowMs`; the form stays fast: the
//          Region Uppsala story) | update (they take `updateMs` more: a security update that left
//          the login slower but under every threshold, the change of sandbox/change.ts) | down
//          (the web application answers 500) | reject (every password is refused)
//   idp    ok | slow (the token endpoint takes `slowMs`) | invalid_client (every client is
//          refused) | down (discovery, token and userinfo answer 503 temporarily_unavailable)
// `slowLoginMs` is a second, fine-grained delay for POST /login and POST /api/token (tests).
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';

export const LOGIN_MODES = ['ok', 'slow', 'update', 'down', 'reject'] as const;
export type LoginMode = (typeof LOGIN_MODES)[number];
export const IDP_MODES = ['ok', 'slow', 'invalid_client', 'down'] as const;
export type IdpMode = (typeof IDP_MODES)[number];

/** The fault switches of a login app. Share one object between apps to switch them together. */
export interface LoginFaults {
  login: LoginMode;
  idp: IdpMode;
  /** How long a `slow` login (POST /login, POST /api/token) or token request takes, in ms. */
  slowMs: number;
  /** How much longer a login takes after the `update` (ms). */
  updateMs: number;
}

/** How long a `slow` login takes unless told otherwise. */
export const DEFAULT_SLOW_MS = 4000;
/**
 * How much longer a login takes after the `update` unless told otherwise: several times the
 * sandbox's usual ~30 ms, yet under the demo check's thresholds (1 s for the step, 10x its
 * learnt normal for the run), so only change verification can tell.
 */
export const DEFAULT_UPDATE_MS = 150;

export function loginFaults(slowMs = DEFAULT_SLOW_MS, updateMs = DEFAULT_UPDATE_MS): LoginFaults {
  return { login: 'ok', idp: 'ok', slowMs, updateMs };
}

/** Scopes the identity provider grants; any other is `invalid_scope`. */
export const IDP_SCOPES = ['openid', 'profile', 'ehr.read'] as const;

export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface LoginApp {
  /** Base URL, `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`; also the issuer. */
  url: string;
  port: number;
  /** The same app under the name `localhost`. */
  localUrl: string;
  /** The identity provider's issuer (the base URL). */
  issuer: string;
  user: string;
  password: string;
  /** OAuth clients: client id -> client secret. */
  clients: Record<string, string>;
  /** Delay before POST /login and POST /api/token answer (a fine-grained "slow login" switch). */
  slowLoginMs: number;
  faults: LoginFaults;
  /** Every request received, in order (empty when `recordRequests` is false). */
  requests: RecordedRequest[];
  /** TCP connections accepted so far. */
  connections: number;
  /** Bytes written by /endless so far. */
  endlessBytes: number;
  close(): Promise<void>;
}

export interface LoginAppOptions {
  user?: string;
  password?: string;
  /** OAuth clients of the identity provider (client id -> secret); default one, `vakt-probe`. */
  clients?: Record<string, string>;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** The fault switches; default a fresh set, all `ok`. */
  faults?: LoginFaults;
  /** Keep every request in `requests` (default true, for tests; off for a long-running demo). */
  recordRequests?: boolean;
  /** Lifetime of access tokens, in seconds (default 300). */
  tokenLifetimeS?: number;
}

const MAX_REQUEST_BODY = 1024 * 1024;
/** Tokens, sessions and tickets kept at most: a demo that runs for weeks must not grow without end. */
const MAX_ENTRIES = 10_000;

/** A Map that forgets its oldest entries beyond `max`. */
class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly max: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.max) {
      const oldest = this.keys().next();
      if (!oldest.done) this.delete(oldest.value);
    }
    return super.set(key, value);
  }
}

function loginPage(csrf: string, error?: string, echo?: { username: string; password: string }): string {
  // A careless application: on a failed login it puts the submitted values back into the form,
  // password included. The probe must not carry any of that into its messages.
  return `<!doctype html><html><head><title>Cosmic login</title></head><body>
<h1>Sign in</h1>${error ? `\n<p class="error">${error}</p>` : ''}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="${csrf}">
<input name="username" value="${echo?.username ?? ''}">
<input type="password" name="password" value="${echo?.password ?? ''}">
<button>Sign in</button>
</form></body></html>`;
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');

function cookies(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

function token(): string {
  return randomBytes(12).toString('hex');
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** A form-encoded value (RFC 6749 2.3.1: Basic credentials are form-encoded); undefined if malformed. */
function formDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

interface IssuedToken {
  clientId: string;
  /** The user, for a password grant; absent for client_credentials. */
  user?: string;
  scopes: string[];
  expires: number;
}

export async function startLoginApp(options: LoginAppOptions = {}): Promise<LoginApp> {
  /** Pre-login cookie -> the CSRF token issued with it. */
  const csrfTokens = new BoundedMap<string, string>(MAX_ENTRIES);
  /** One-time tickets from the POST to the callback hop. */
  const tickets = new BoundedMap<string, true>(MAX_ENTRIES);
  const sessions = new BoundedMap<string, true>(MAX_ENTRIES);
  const bearer = new BoundedMap<string, true>(MAX_ENTRIES);
  /** Access tokens of the identity provider. */
  const accessTokens = new BoundedMap<string, IssuedToken>(MAX_ENTRIES);
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const record = options.recordRequests ?? true;
  const tokenLifetimeS = options.tokenLifetimeS ?? 300;

  const app: LoginApp = {
    url: '',
    port: 0,
    localUrl: '',
    issuer: '',
    user: options.user ?? 'probe.user',
    password: options.password ?? 'correct horse',
    clients: options.clients ?? { 'vakt-probe': 'sandbox-client-secret' },
    slowLoginMs: 0,
    faults: options.faults ?? loginFaults(),
    requests: [],
    connections: 0,
    endlessBytes: 0,
    close: () => Promise.resolve(),
  };

  /** The delay of POST /login and POST /api/token: the test knob plus the `slow` or `update` fault. */
  const loginDelay = () => app.slowLoginMs + (app.faults.login === 'slow' ? app.faults.slowMs : app.faults.login === 'update' ? app.faults.updateMs : 0);

  /** Writes `total` bytes (or forever) as fast as the client reads them; stops when it goes. */
  const stream = (res: ServerResponse, total: number) => {
    let left = total;
    const pump = () => {
      while (!res.destroyed && left > 0) {
        const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= chunk.length;
        app.endlessBytes += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (left <= 0 && !res.destroyed) res.end();
    };
    pump();
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    const path = url.pathname;
    const jar = cookies(req);
    const send = (status: number, text: string, headers: Record<string, string | string[]> = {}) => {
      // A delayed answer to a client that has gone: nothing to send.
      if (res.destroyed || res.writableEnded) return;
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(text);
    };
    const json = (status: number, doc: unknown, headers: Record<string, string | string[]> = {}) =>
      send(status, JSON.stringify(doc), { 'content-type': 'application/json', ...headers });
    const redirect = (status: number, location: string, headers: Record<string, string | string[]> = {}) =>
      send(status, `<a href="${location}">moved</a>`, { location, ...headers });
    const signedIn = jar.session !== undefined && sessions.has(jar.session);

    // The identity provider (its own fault switch).
    if (path === '/.well-known/openid-configuration' || path.startsWith('/oauth2/')) return void identityProvider(req, path, body, json);

    // The web application is down: every page answers 500.
    if (app.faults.login === 'down')
      return send(500, '<!doctype html><title>Error</title><h1>Internal Server Error</h1><p>The application is not available.</p>');

    // Login flow.
    if (path === '/login' && req.method === 'GET') {
      const pre = token();
      const csrf = token();
      csrfTokens.set(pre, csrf);
      return send(200, loginPage(csrf), { 'set-cookie': `pre=${pre}; Path=/; HttpOnly; SameSite=Lax`, 'cache-control': 'no-store' });
    }
    if (path === '/login' && req.method === 'POST') {
      const form = new URLSearchParams(body);
      const csrf = csrfTokens.get(jar.pre ?? '');
      if (csrf === undefined || form.get('csrf') !== csrf) return send(403, '<p>Invalid or missing CSRF token</p>');
      const answer = () => {
        if (app.faults.login === 'reject' || form.get('username') !== app.user || form.get('password') !== app.password) {
          const echo = { username: form.get('username') ?? '', password: form.get('password') ?? '' };
          return send(401, loginPage(csrf, 'Invalid username or password', echo));
        }
        const ticket = token();
        tickets.set(ticket, true);
        redirect(303, `/auth/callback?ticket=${ticket}`);
      };
      const delay = loginDelay();
      if (delay > 0) later(delay, answer);
      else answer();
      return;
    }
    if (path === '/auth/callback') {
      const ticket = url.searchParams.get('ticket') ?? '';
      if (!tickets.delete(ticket)) return redirect(302, '/login');
      const session = token();
      sessions.set(session, true);
      // The session cookie is set here, on a redirect hop, as SSO front ends do.
      return redirect(302, '/app/', { 'set-cookie': [`session=${session}; Path=/; HttpOnly; SameSite=Lax`, 'pre=; Path=/; Max-Age=0'] });
    }
    if (path === '/app/' || path === '/app') return redirect(302, signedIn ? '/app/home' : '/login');
    if (path === '/app/home') {
      if (!signedIn) return redirect(302, '/login');
      return send(200, `<!doctype html><title>Cosmic</title><h1>Welcome</h1><p id="user">${app.user}</p><a href="/logout">Sign out</a>`);
    }
    if (path === '/logout') {
      if (jar.session) sessions.delete(jar.session);
      return redirect(302, '/login', { 'set-cookie': 'session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT' });
    }

    // JSON API.
    if (path === '/api/token' && req.method === 'POST') {
      const answer = () => {
        let doc: { username?: unknown; password?: unknown } = {};
        try {
          doc = JSON.parse(body) as typeof doc;
        } catch {
          return json(400, { error: 'invalid_request' });
        }
        if (app.faults.login === 'reject' || doc.username !== app.user || doc.password !== app.password)
          return json(401, { error: 'invalid_grant', error_description: 'Bad credentials' });
        const t = token();
        bearer.set(t, true);
        return json(200, { access_token: t, token_type: 'Bearer', expires_in: 300 }, { 'x-request-id': 'req-4711' });
      };
      const delay = loginDelay();
      if (delay > 0) later(delay, answer);
      else answer();
      return;
    }
    if (path === '/api/me') {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!auth?.[1] || !bearer.has(auth[1])) return json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer' });
      return json(200, { ok: true, user: { name: app.user, roles: ['doctor', 'ward-7'] }, ward: { beds: 24, open: true } });
    }
    if (path === '/api/health')
      return json(
        200,
        { status: 'ok', version: '2026.11.3', checks: [{ name: 'db', ok: true }], 'dotted.key': 'yes' },
        { 'x-build': '2026.11.3', 'cache-control': 'no-store' },
      );

    // The request reflected back: method, path, headers and body, as JSON.
    if (path === '/echo') {
      const status = Number(url.searchParams.get('status') ?? 200);
      return json(status, { method: req.method, url: req.url, headers: req.headers, body });
    }

    // Cookie rules: any path ending in /set sets the Set-Cookie lines given as ?c=...;
    // any path ending in /show returns the Cookie header it got.
    if (path.endsWith('/set')) return send(200, 'set', { 'set-cookie': url.searchParams.getAll('c') });
    if (path.endsWith('/show')) return json(200, { cookie: req.headers.cookie ?? null });

    // Redirects.
    if (path === '/redirect') {
      const code = Number(url.searchParams.get('code') ?? 302);
      return redirect(code, url.searchParams.get('to') ?? '/echo', url.searchParams.has('c') ? { 'set-cookie': url.searchParams.getAll('c') } : {});
    }
    if (path === '/loop') return redirect(302, `/loop?n=${Number(url.searchParams.get('n') ?? 0) + 1}`);
    if (path.startsWith('/status/')) return send(Number(path.slice('/status/'.length)), 'status');
    if (path === '/slow') {
      later(Number(url.searchParams.get('ms') ?? 200), () => send(200, 'slow'));
      return;
    }

    // Hostile servers.
    if (path === '/endless') {
      // A body that never ends, or (?bytes=N) one announced with a Content-Length of N and sent
      // chunk by chunk as the client reads: 2 GB cost the server nothing up front.
      const total = url.searchParams.has('bytes') ? Number(url.searchParams.get('bytes')) : Infinity;
      const location = url.searchParams.get('redirect');
      res.writeHead(location ? 302 : 200, {
        'content-type': 'application/octet-stream',
        ...(Number.isFinite(total) ? { 'content-length': String(total) } : {}),
        ...(location ? { location } : {}),
      });
      stream(res, total);
      return;
    }
    if (path === '/big') {
      const size = Number(url.searchParams.get('bytes') ?? 0);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(size) });
      return void res.end(Buffer.alloc(size, 'y'));
    }
    if (path === '/stall-headers') return; // Reads the request, never answers.
    if (path === '/stall-body') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part of the body...');
      return; // and nothing more
    }
    send(404, 'not found');
  };

  type Json = (status: number, doc: unknown, headers?: Record<string, string | string[]>) => void;

  /** Discovery, token and userinfo endpoints. */
  const identityProvider = (req: IncomingMessage, path: string, body: string, json: Json): void => {
    // RFC 6749 5.1 and 5.2: token responses, errors included, are never cached.
    const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' };
    if (app.faults.idp === 'down') {
      return json(503, { error: 'temporarily_unavailable', error_description: 'The identity provider is not available' }, { ...noStore, 'retry-after': '30' });
    }
    if (path === '/.well-known/openid-configuration') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'invalid_request', error_description: 'Use GET' }, { allow: 'GET, HEAD' });
      return json(200, {
        issuer: app.issuer,
        token_endpoint: `${app.issuer}/oauth2/token`,
        userinfo_endpoint: `${app.issuer}/oauth2/userinfo`,
        grant_types_supported: ['client_credentials', 'password'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        scopes_supported: IDP_SCOPES,
        claims_supported: ['sub', 'preferred_username', 'name'],
        // No authorization endpoint and no signing keys: the sandbox serves machine clients only,
        // and its ID tokens are unsigned (alg "none").
        id_token_signing_alg_values_supported: ['none'],
      });
    }
    if (path === '/oauth2/token') {
      if (req.method !== 'POST')
        return json(405, { error: 'invalid_request', error_description: 'The token endpoint takes POST' }, { ...noStore, allow: 'POST' });
      const answer = () => tokenEndpoint(req, body, (status, doc, headers = {}) => json(status, doc, { ...noStore, ...headers }));
      if (app.faults.idp === 'slow') later(app.faults.slowMs, answer);
      else answer();
      return;
    }
    if (path === '/oauth2/userinfo') {
      if (req.method !== 'GET' && req.method !== 'POST') return json(405, { error: 'invalid_request' }, { allow: 'GET, POST' });
      const realm = 'Bearer realm="sandbox"';
      const auth = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(req.headers.authorization ?? '');
      // RFC 6750 3.1: a request without credentials gets the challenge without an error code.
      if (!req.headers.authorization) return json(401, { error: 'invalid_request', error_description: 'No access token' }, { 'www-authenticate': realm });
      if (!auth?.[1])
        return json(
          400,
          { error: 'invalid_request', error_description: 'Malformed Authorization header' },
          { 'www-authenticate': `${realm}, error="invalid_request"` },
        );
      const issued = accessTokens.get(auth[1]);
      if (!issued || issued.expires <= Date.now()) {
        return json(
          401,
          { error: 'invalid_token', error_description: 'The access token is unknown or expired' },
          { 'www-authenticate': `${realm}, error="invalid_token", error_description="The access token is unknown or expired"` },
        );
      }
      if (!issued.scopes.includes('openid')) {
        return json(
          403,
          { error: 'insufficient_scope', error_description: 'userinfo needs scope openid' },
          { 'www-authenticate': `${realm}, error="insufficient_scope", scope="openid"` },
        );
      }
      const sub = issued.user ?? issued.clientId;
      return json(
        200,
        { sub, ...(issued.user ? { preferred_username: issued.user, name: 'Vakt Probe (test account)' } : {}) },
        { 'cache-control': 'no-store' },
      );
    }
    json(404, { error: 'not_found' });
  };

  /** POST /oauth2/token (RFC 6749 4.3, 4.4, 5). */
  const tokenEndpoint = (req: IncomingMessage, body: string, json: Json): void => {
    const invalidClient = (description: string, basic: boolean) =>
      // RFC 6749 5.2: a client that tried the Authorization header gets 401 with a challenge.
      json(401, { error: 'invalid_client', error_description: description }, basic ? { 'www-authenticate': 'Basic realm="sandbox"' } : {});
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded')
      return json(400, { error: 'invalid_request', error_description: 'Expected an application/x-www-form-urlencoded body' });
    const form = new URLSearchParams(body);
    for (const key of new Set(form.keys())) {
      if (form.getAll(key).length > 1) return json(400, { error: 'invalid_request', error_description: `Parameter ${key} given more than once` });
    }

    // Client authentication: HTTP Basic or client_id/client_secret in the form, not both.
    const header = req.headers.authorization;
    const basic = header !== undefined && /^Basic /i.test(header);
    let clientId = form.get('client_id') ?? undefined;
    let secret = form.get('client_secret') ?? undefined;
    if (basic) {
      if (secret !== undefined) return json(400, { error: 'invalid_request', error_description: 'More than one client authentication method' });
      const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const id = colon < 0 ? undefined : formDecode(decoded.slice(0, colon));
      const pw = colon < 0 ? undefined : formDecode(decoded.slice(colon + 1));
      if (id === undefined || pw === undefined) return invalidClient('Malformed Basic credentials', true);
      if (clientId !== undefined && clientId !== id)
        return json(400, { error: 'invalid_request', error_description: 'client_id differs from the authenticated client' });
      clientId = id;
      secret = pw;
    }
    if (app.faults.idp === 'invalid_client') return invalidClient('Client authentication failed', basic);
    if (clientId === undefined) return invalidClient('No client authentication', basic);
    const known = Object.hasOwn(app.clients, clientId) ? app.clients[clientId] : undefined;
    if (known === undefined || secret !== known) return invalidClient('Client authentication failed', basic);

    const grant = form.get('grant_type');
    if (!grant) return json(400, { error: 'invalid_request', error_description: 'Missing grant_type' });
    if (grant !== 'client_credentials' && grant !== 'password')
      return json(400, { error: 'unsupported_grant_type', error_description: 'Supported: client_credentials, password' });
    const scopes = (form.get('scope') ?? '').split(' ').filter((s) => s.length > 0);
    const unknown = scopes.filter((s) => !(IDP_SCOPES as readonly string[]).includes(s));
    if (unknown.length > 0) return json(400, { error: 'invalid_scope', error_description: `Unknown scope (supported: ${IDP_SCOPES.join(' ')})` });

    let user: string | undefined;
    if (grant === 'password') {
      const username = form.get('username');
      const password = form.get('password');
      if (username === null || password === null) return json(400, { error: 'invalid_request', error_description: 'Missing username or password' });
      // Never echo what was sent: the description names no user and no password.
      if (username !== app.user || password !== app.password) return json(400, { error: 'invalid_grant', error_description: 'Invalid user credentials' });
      user = username;
    }

    const accessToken = randomBytes(24).toString('base64url');
    const now = Date.now();
    accessTokens.set(accessToken, { clientId, scopes, expires: now + tokenLifetimeS * 1000, ...(user !== undefined ? { user } : {}) });
    const doc: Record<string, unknown> = { access_token: accessToken, token_type: 'Bearer', expires_in: tokenLifetimeS };
    if (scopes.length > 0) doc.scope = scopes.join(' ');
    if (user !== undefined && scopes.includes('openid')) {
      // An unsigned ID token (alg "none"): the shape a client expects, nothing to verify.
      const iat = Math.floor(now / 1000);
      doc.id_token = `${base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url(JSON.stringify({ iss: app.issuer, sub: user, aud: clientId, iat, exp: iat + tokenLifetimeS, preferred_username: user }))}.`;
    }
    json(200, doc);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_REQUEST_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (record) app.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handle(req, res, body);
    });
  };

  const server: Server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest) : createHttpServer(onRequest);
  server.on('connection', (s: Socket) => {
    app.connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  const scheme = options.tls ? 'https' : 'http';
  app.port = port;
  app.url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  app.issuer = app.url;
  app.localUrl = `${scheme}://localhost:${port}`;
  app.close = () =>
    new Promise<void>((r) => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return app;
}
