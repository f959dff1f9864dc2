// A small web application with a login, built for http probe tests: a form with a CSRF token,
// a POST answered by a redirect chain that sets the session cookie at one of its hops, a
// protected page, logout, a JSON API with a bearer token, and the hostile corners (an echo of the
// request, an endless body, stalls, a redirect loop). Plain HTTP, or HTTPS with a test PKI
// certificate. `slowLoginMs` is the Region Uppsala switch: the login itself gets slow while
// everything else still answers at once.
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Pem } from './certs.js';

export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface LoginApp {
  /** Base URL, `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** The same app under the name `localhost`. */
  localUrl: string;
  user: string;
  password: string;
  /** Delay before POST /login and POST /api/token answer (the "slow login" switch). */
  slowLoginMs: number;
  /** Every request received, in order. */
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
  /** Serve HTTPS with this certificate. */
  tls?: Pem;
}

const MAX_REQUEST_BODY = 1024 * 1024;

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

export async function startLoginApp(options: LoginAppOptions = {}): Promise<LoginApp> {
  /** Pre-login cookie -> the CSRF token issued with it. */
  const csrfTokens = new Map<string, string>();
  /** One-time tickets from the POST to the callback hop. */
  const tickets = new Set<string>();
  const sessions = new Set<string>();
  const bearer = new Set<string>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const app: LoginApp = {
    url: '',
    port: 0,
    localUrl: '',
    user: options.user ?? 'probe.user',
    password: options.password ?? 'correct horse',
    slowLoginMs: 0,
    requests: [],
    connections: 0,
    endlessBytes: 0,
    close: () => Promise.resolve(),
  };

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
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(text);
    };
    const json = (status: number, doc: unknown, headers: Record<string, string | string[]> = {}) => send(status, JSON.stringify(doc), { 'content-type': 'application/json', ...headers });
    const redirect = (status: number, location: string, headers: Record<string, string | string[]> = {}) => send(status, `<a href="${location}">moved</a>`, { location, ...headers });
    const signedIn = jar.session !== undefined && sessions.has(jar.session);

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
        if (form.get('username') !== app.user || form.get('password') !== app.password) {
          const echo = { username: form.get('username') ?? '', password: form.get('password') ?? '' };
          return send(401, loginPage(csrf, 'Invalid username or password', echo));
        }
        const ticket = token();
        tickets.add(ticket);
        redirect(303, `/auth/callback?ticket=${ticket}`);
      };
      if (app.slowLoginMs > 0) later(app.slowLoginMs, answer);
      else answer();
      return;
    }
    if (path === '/auth/callback') {
      const ticket = url.searchParams.get('ticket') ?? '';
      if (!tickets.delete(ticket)) return redirect(302, '/login');
      const session = token();
      sessions.add(session);
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
        if (doc.username !== app.user || doc.password !== app.password) return json(401, { error: 'invalid_grant', error_description: 'Bad credentials' });
        const t = token();
        bearer.add(t);
        return json(200, { access_token: t, token_type: 'Bearer', expires_in: 300 }, { 'x-request-id': 'req-4711' });
      };
      if (app.slowLoginMs > 0) later(app.slowLoginMs, answer);
      else answer();
      return;
    }
    if (path === '/api/me') {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!auth?.[1] || !bearer.has(auth[1])) return json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer' });
      return json(200, { ok: true, user: { name: app.user, roles: ['doctor', 'ward-7'] }, ward: { beds: 24, open: true } });
    }
    if (path === '/api/health') return json(200, { status: 'ok', version: '2026.11.3', checks: [{ name: 'db', ok: true }], 'dotted.key': 'yes' }, { 'x-build': '2026.11.3', 'cache-control': 'no-store' });

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
      res.writeHead(location ? 302 : 200, { 'content-type': 'application/octet-stream', ...(Number.isFinite(total) ? { 'content-length': String(total) } : {}), ...(location ? { location } : {}) });
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

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_REQUEST_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      app.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
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
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const scheme = options.tls ? 'https' : 'http';
  app.port = port;
  app.url = `${scheme}://127.0.0.1:${port}`;
  app.localUrl = `${scheme}://localhost:${port}`;
  app.close = () =>
    new Promise<void>((r) => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return app;
}
