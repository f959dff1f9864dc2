// The agent's HTTP face: /metrics, /healthz, /readyz, /api/v1/checks[/NAME], POST /-/reload,
// and / (a page for people), in three route classes (status, read, admin) that agent.web opens
// to anyone, to this host, or to credentials; over TLS when the web config says so, and on a
// second listener for the status page alone when asked. Every body goes through the redactor;
// errors never carry stacks.
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createSecureContext, type Server as TlsServer, type TlsOptions as TlsServerOptions, type TLSSocket } from 'node:tls';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip } from 'node:zlib';
import type { Agent, CheckView } from './agent.js';
import type { ServiceView } from './composite.js';
import type { CheckConfig } from '../config/loader.js';
import type { Incident } from './root-cause.js';
import { acceptsGzip } from './accept.js';
import { inLanguage, pickLanguage, statusPage, type EarlierIncident } from './status-page.js';
import { atomFeed, feedNotices } from './feed.js';
import { feedTitle } from './notices.js';
import { routeClass, WebAuth } from './web-auth.js';
import { isLoopback, type RouteClass, type WebConfig, type WebTls } from '../config/web.js';
import { runResult } from '../probes/types.js';
import { parseDuration } from '../config/units.js';
import { AVAILABILITY_WINDOWS, JOURNAL_MEMORY_MS, type JournalChange, type JournalIncident } from './journal.js';
import { UPCOMING_MS, type Window } from './maintenance.js';
import { plainText } from '../config/schema.js';

export interface HttpServer {
  server: Server;
  /** The main listener's base URL (https:// with tls_server_config). */
  url: string;
  /** The status listener's base URL, when agent.web.statusListen is set. */
  statusUrl?: string;
  close(): Promise<void>;
}

/** How often the served certificate, key and client CA files are looked at for a renewal. */
const CERT_POLL_MS = 10_000;

/** What Go's HTTPS servers answer plain HTTP on a TLS port; said here too, so a curl without https:// gets a reason. */
const PLAIN_HTTP_ON_TLS =
  'HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n';

/**
 * Starts the agent's server on host:port, and the status listener when agent.web.statusListen
 * is set. With tls_server_config both speak TLS (the status listener never asks for a client
 * certificate); the certificate files are read again when they change, without a restart.
 */
export async function startServer(agent: Agent, host: string, port: number, opts: { certPollMs?: number } = {}): Promise<HttpServer> {
  const web = agent.web;
  const auth = new WebAuth(web);
  let seen = web;
  const current = () => {
    if (agent.web !== seen) {
      seen = agent.web;
      auth.update(seen);
    }
    return seen;
  };
  const tlsFiles = web.tls ? new ServedCertificate(agent, web.tls) : undefined;
  agent.metrics.setWebServer(() => ({ refused: { ...auth.refused }, ...(tlsFiles?.notAfter !== undefined ? { certificateNotAfter: tlsFiles.notAfter } : {}) }));
  const handler = (only: RouteClass | undefined) => (req: IncomingMessage, res: ServerResponse) => {
    handle(agent, current(), auth, only, req, res).catch((err: unknown) => {
      agent.log.error({ err, url: req.url }, 'request failed');
      if (!res.headersSent) send(agent, res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
      else res.destroy();
    });
  };
  const main = await listen(agent, host, port, handler(undefined), tlsFiles, true);
  let status: Listening | undefined;
  if (web.statusListen) {
    try {
      status = await listen(agent, web.statusListen.host, web.statusListen.port, handler('status'), tlsFiles, false);
    } catch (err) {
      await main.close();
      throw err;
    }
  }
  warnOpenRoutes(agent, host, auth, web.statusListen);
  tlsFiles?.watch(
    [main, status].flatMap((l) => (l?.secure ? [l.secure] : [])),
    opts.certPollMs ?? CERT_POLL_MS,
  );
  return {
    server: main.http,
    url: main.url,
    ...(status ? { statusUrl: status.url } : {}),
    close: async () => {
      tlsFiles?.stop();
      await Promise.all([main.close(), status?.close(), auth.close()]);
    },
  };
}

interface Listening {
  http: Server;
  /** The TLS server behind the listener, when it speaks TLS (its context is renewed in place). */
  secure?: TlsServer;
  url: string;
  close(): Promise<void>;
}

/**
 * One listener. With TLS a plain TCP server takes the connections and looks at the first byte:
 * a TLS handshake goes to the HTTPS server, anything else gets Go's "HTTP request to an HTTPS
 * server" answer. Header, request and keep-alive timeouts and the connection cap hold for both.
 */
async function listen(
  agent: Agent,
  host: string,
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  tlsFiles: ServedCertificate | undefined,
  clientCerts: boolean,
): Promise<Listening> {
  const secure = tlsFiles ? createHttpsServer(tlsFiles.options(clientCerts), handler) : undefined;
  const http: Server = secure ?? createServer(handler);
  http.requestTimeout = 30_000;
  http.headersTimeout = 10_000;
  http.keepAliveTimeout = 5_000;
  let front: NetServer = http;
  if (tlsFiles && secure) {
    if (clientCerts) secure.on('secureConnection', (socket: TLSSocket) => tlsFiles.admit(socket));
    secure.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      agent.log.debug({ err: err.code ?? err.message, peer: socket.remoteAddress }, 'TLS handshake failed');
      socket.destroy();
    });
    front = createNetServer({ pauseOnConnect: true }, (socket) => {
      // A client that connects and says nothing is dropped like one that sends no headers.
      socket.setTimeout(http.headersTimeout, () => socket.destroy());
      socket.once('error', () => socket.destroy());
      socket.once('data', (first: Buffer) => {
        socket.pause();
        socket.setTimeout(0);
        if (first[0] !== 0x16) {
          // Said and gone: a client that sends one byte and never closes must not keep a slot.
          socket.end(PLAIN_HTTP_ON_TLS, () => socket.destroy());
          setTimeout(() => socket.destroy(), 2000).unref();
          return;
        }
        socket.unshift(first);
        http.emit('connection', socket);
        process.nextTick(() => socket.resume());
      });
      socket.resume();
    });
  }
  // A cap on connections: past it, new ones are closed as they arrive (a scanner or a client
  // that opens thousands and sends nothing must not take the agent's file descriptors, which its
  // probes need). Said in the log at most once a minute, with how many were refused.
  front.maxConnections = agent.maxConnections;
  let dropped = 0;
  let warnedAt = 0;
  front.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - warnedAt < 60_000) return;
    warnedAt = now;
    agent.log.warn({ maxConnections: front.maxConnections, refused: dropped }, 'connection refused: agent.maxConnections reached');
    dropped = 0;
  });
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(port, host, () => {
      front.removeListener('error', reject);
      resolve();
    });
  });
  const addr = front.address() as AddressInfo;
  const url = `${tlsFiles ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  return {
    http,
    ...(secure ? { secure } : {}),
    url,
    close: () =>
      new Promise<void>((resolve) => {
        if (front !== http) front.close();
        http.close(() => resolve());
        http.closeAllConnections();
        if (front !== http) resolve();
      }),
  };
}

/** Says when routes are open to every host that can reach the listener. */
function warnOpenRoutes(agent: Agent, host: string, auth: WebAuth, statusListen: { host: string } | undefined): void {
  if (isLoopback(host)) return;
  if (auth.rule('read') === 'open') {
    agent.log.warn(
      { listen: host, routes: '/metrics, /api/v1/*' },
      'read routes are open to anyone who can reach this address: set agent.web.access.read and credentials (docs/operations.md, "Securing the endpoints")',
    );
  }
  if (auth.rule('admin') === 'open')
    agent.log.warn({ listen: host, routes: '/-/reload' }, 'admin routes are open to anyone who can reach this address (agent.web.access.admin: open)');
  if (statusListen && auth.rule('status') !== 'open') agent.log.info('agent.web.statusListen serves the status routes with agent.web.access.status as set');
}

/**
 * The certificate the server presents: its files are read at start, and again whenever one of
 * them changes (looked at every 10 s, and on a config reload that names other files); a renewal
 * that does not load (key does not match, half-written file) keeps the running one and says why.
 */
class ServedCertificate {
  notAfter: number | undefined;
  private tls: WebTls;
  private stamp = '';
  private timer: NodeJS.Timeout | undefined;
  private servers: TlsServer[] = [];
  private context: { cert: Buffer; key: Buffer; ca?: Buffer };

  constructor(
    private readonly agent: Agent,
    tls: WebTls,
  ) {
    this.tls = tls;
    this.context = this.read(tls);
    this.stamp = stampOf(tls);
    this.judge();
  }

  options(clientCerts: boolean): TlsServerOptions {
    const t = this.tls;
    const ask = clientCerts && t.clientAuth !== 'NoClientCert';
    return {
      ...this.context,
      minVersion: t.minVersion,
      ...(t.maxVersion ? { maxVersion: t.maxVersion } : {}),
      honorCipherOrder: t.honorCipherOrder,
      requestCert: ask,
      rejectUnauthorized: clientCerts && t.clientAuth === 'RequireAndVerifyClientCert',
      // A client that starts a handshake and stalls is let go like one that sends no headers.
      handshakeTimeout: 10_000,
    };
  }

  /** Client certificate rules the TLS layer cannot apply by itself (exporter-toolkit's semantics). */
  admit(socket: TLSSocket): void {
    const t = this.tls;
    const cert = socket.getPeerCertificate();
    const given = cert !== null && Object.keys(cert).length > 0;
    const verifying = t.clientAuth === 'VerifyClientCertIfGiven' || t.clientAuth === 'RequireAndVerifyClientCert';
    let why: string | undefined;
    if (t.clientAuth === 'RequireAnyClientCert' && !given) why = 'no client certificate';
    else if (verifying && given && !socket.authorized) why = `client certificate not verified (${String(socket.authorizationError)})`;
    else if (verifying && given && t.clientAllowedSans && !sansOf(cert.subjectaltname).some((san) => t.clientAllowedSans?.includes(san))) {
      why = 'client certificate has none of client_allowed_sans';
    }
    if (why === undefined) return;
    this.agent.log.debug({ peer: socket.remoteAddress, why }, 'TLS client refused');
    socket.destroy();
  }

  watch(servers: TlsServer[], everyMs: number): void {
    this.servers = servers;
    this.timer = setInterval(() => this.poll(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Loads the files again when they (or the files the running config names) changed. */
  private poll(): void {
    // New certificate, key and client CA files are taken at once; the client certificate mode
    // and TLS versions are the listener's own and change with a restart (the agent says so).
    const next = this.agent.web.tls;
    const tls: WebTls = next
      ? { ...this.tls, certFile: next.certFile, keyFile: next.keyFile, ...(next.clientCaFile ? { clientCaFile: next.clientCaFile } : {}) }
      : this.tls;
    let stamp: string;
    try {
      stamp = stampOf(tls);
    } catch {
      return; // a file being replaced right now; looked at again next time
    }
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    try {
      const context = this.read(tls);
      for (const s of this.servers) s.setSecureContext({ ...context, minVersion: tls.minVersion, ...(tls.maxVersion ? { maxVersion: tls.maxVersion } : {}) });
      this.context = context;
      this.tls = tls;
      this.judge();
      this.agent.log.info({ certFile: tls.certFile, notAfter: new Date((this.notAfter ?? 0) * 1000).toISOString() }, 'TLS certificate loaded again');
    } catch (err) {
      this.agent.log.error({ certFile: tls.certFile, err: (err as Error).message }, 'TLS certificate changed but does not load: keeping the one in use');
    }
  }

  private read(tls: WebTls): { cert: Buffer; key: Buffer; ca?: Buffer } {
    const context = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), ...(tls.clientCaFile ? { ca: readFileSync(tls.clientCaFile) } : {}) };
    createSecureContext(context); // throws when the key does not match or a file is not PEM
    return context;
  }

  /** Records the certificate's expiry and says when it is past or near. */
  private judge(): void {
    const cert = new X509Certificate(this.context.cert);
    const notAfter = Date.parse(cert.validTo);
    this.notAfter = notAfter / 1000;
    const left = notAfter - Date.now();
    if (left <= 0)
      this.agent.log.error(
        { certFile: this.tls.certFile, notAfter: cert.validTo },
        "the agent's own TLS certificate has expired: clients that verify it refuse to connect",
      );
    else if (left < 14 * 86_400_000)
      this.agent.log.warn({ certFile: this.tls.certFile, notAfter: cert.validTo }, "the agent's own TLS certificate expires within 14 days");
  }
}

function stampOf(tls: WebTls): string {
  return [tls.certFile, tls.keyFile, tls.clientCaFile]
    .filter((f): f is string => f !== undefined)
    .map((f) => {
      const st = statSync(f);
      return `${f}:${st.ino}:${st.size}:${st.mtimeMs}`;
    })
    .join('|');
}

/** "DNS:a.example, IP Address:10.0.0.1" → ["a.example", "10.0.0.1"]. */
function sansOf(text: string | undefined): string[] {
  return (text ?? '').split(', ').map((s) => s.slice(s.indexOf(':') + 1));
}

async function handle(agent: Agent, web: WebConfig, auth: WebAuth, only: RouteClass | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  for (const [name, value] of Object.entries(web.headers)) res.setHeader(name, value);
  const url = new URL(req.url ?? '/', 'http://vakt.invalid');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const json = (status: number, body: unknown) => send(agent, res, status, 'application/json; charset=utf-8', JSON.stringify(body, null, 2));
  const cls = routeClass(path, method);
  if (cls === undefined || (only !== undefined && cls !== only)) return json(404, { error: 'not found' });
  const decision = await auth.decide(cls, req);
  if (!decision.allow) {
    if (decision.status === 401)
      res.setHeader('WWW-Authenticate', Object.keys(web.users).length > 0 ? 'Basic realm="vakt", charset="UTF-8"' : 'Bearer realm="vakt"');
    if (decision.status === 429) res.setHeader('Retry-After', '1');
    return json(decision.status, { error: decision.why });
  }

  if (path === '/-/reload') {
    if (method !== 'POST' && method !== 'PUT') return methodNotAllowed(agent, res, 'POST, PUT');
    const r = await agent.reload();
    return json(r.ok ? 200 : 400, r);
  }
  const who = decision.who ?? (isLoopback(req.socket.remoteAddress ?? '') ? 'loopback' : 'anonymous');
  if (path === '/api/v1/maintenance' && method === 'POST') {
    const body = await readJson(req);
    if ('error' in body) return json(body.status, { error: body.error });
    const w = agent.planned.schedule(body.value, who);
    return 'error' in w ? json(400, w) : json(201, windowJson(w, Date.now()));
  }
  const work = /^\/api\/v1\/maintenance\/([^/]+)$/.exec(path);
  if (work && method === 'DELETE') {
    const id = decodeURIComponent(work[1] as string);
    const r = agent.planned.remove(id, who);
    if (r === 'not found') return json(404, { error: `no window ${id} open or to come` });
    if (r === 'config') return json(409, { error: `${id} is a window of the config file that has not started: change the config to cancel it` });
    return json(200, { id, result: r });
  }
  const change = /^\/api\/v1\/changes\/([a-z0-9_-]+)$/.exec(path);
  if (change && method === 'DELETE') {
    const r = agent.acceptChange(change[1] as string, who);
    return r ? json(200, { check: change[1], accepted: true, window: r.window }) : json(404, { error: `no change regression stands for ${change[1]}` });
  }
  if (method !== 'GET' && method !== 'HEAD') {
    const allow = path === '/api/v1/maintenance' ? 'GET, HEAD, POST' : work || change ? 'GET, HEAD, DELETE' : 'GET, HEAD';
    return methodNotAllowed(agent, res, allow);
  }
  switch (path) {
    case '/api/v1/maintenance':
      return json(200, { labels: agent.labels, ...plannedWorkJson(agent, Date.now()) });
    case '/api/v1/changes':
      return json(200, { labels: agent.labels, changes: agent.journal.verifications(Date.now() - 7 * 86_400_000).map(changeJson) });
    case '/metrics':
      return sendMetrics(agent, req, res);
    case '/healthz':
      return send(agent, res, 200, 'text/plain; charset=utf-8', 'ok\n');
    case '/readyz':
      return agent.ready ? send(agent, res, 200, 'text/plain; charset=utf-8', 'ready\n') : send(agent, res, 503, 'text/plain; charset=utf-8', 'not ready\n');
    case '/api/v1/checks':
      return json(200, {
        labels: agent.labels,
        placement: placementJson(agent),
        checks: [...agent.list().map(checkJson), ...agent.disabledChecks().map(disabledCheckJson)],
      });
    case '/api/v1/services':
      return json(200, { labels: agent.labels, services: agent.serviceList().map((v) => serviceJson(agent, v)) });
    case '/api/v1/availability':
      return json(200, { labels: agent.labels, journal: agent.journal.file ?? null, ...availabilityJson(agent, Date.now()) });
    case '/api/v1/incidents': {
      const sinceText = url.searchParams.get('since');
      if (sinceText === null) return json(200, { labels: agent.labels, incidents: agent.incidents().map((i) => incidentJson(agent, i)) });
      const since = parseSince(sinceText, Date.now());
      if (since === undefined) return json(400, { error: 'since: expected an ISO 8601 time (2026-12-01T03:00:00Z) or a duration back from now (24h, 7d)' });
      return json(200, {
        labels: agent.labels,
        since: new Date(since).toISOString(),
        journal: agent.journal.file ?? null,
        incidents: agent.journal.incidents(since).map((i) => journalIncidentJson(agent, i)),
      });
    }
    case '/feed.atom': {
      const sp = agent.statusPage;
      const language = pickLanguage(sp.language, req.headers['accept-language'], url.searchParams.get('lang'));
      res.setHeader('Content-Language', language);
      res.setHeader('Vary', 'Accept-Language');
      const now = Date.now();
      const feed = atomFeed({
        notices: feedNotices(agent.journal, agent.planned.list(now).upcoming, now),
        context: agent.noticeContext(language, now),
        title: feedTitle(language, sp.title !== undefined ? inLanguage(sp.title, language) : undefined, agent.labels.site),
        site: agent.labels.site,
        now,
      });
      return send(agent, res, 200, 'application/atom+xml; charset=utf-8', feed);
    }
    case '/': {
      const sp = agent.statusPage;
      const language = pickLanguage(sp.language, req.headers['accept-language'], url.searchParams.get('lang'));
      res.setHeader('Content-Language', language);
      res.setHeader('Vary', 'Accept-Language');
      return send(
        agent,
        res,
        200,
        'text/html; charset=utf-8',
        statusPage({
          ...sp,
          checks: agent.list(),
          incidents: agent.incidents(),
          labels: agent.labels,
          language,
          refreshSeconds: sp.refresh,
          planned: agent.planned.list(),
          services: agent.serviceList(),
          ...pageHistory(agent, Date.now()),
        }),
      );
    }
  }
  const service = /^\/api\/v1\/services\/([a-z0-9_-]+)$/.exec(path);
  if (service) {
    const v = agent.service(service[1] as string);
    return v ? json(200, serviceJson(agent, v)) : json(404, { error: `no service named ${service[1]}` });
  }
  const m = /^\/api\/v1\/checks\/([a-z0-9_-]+)$/.exec(path);
  if (m) {
    const view = agent.get(m[1] as string);
    const disabled = view ? undefined : agent.disabledChecks().find((c) => c.name === m[1]);
    if (disabled) return json(200, disabledCheckJson(disabled));
    return view ? json(200, checkJson(view)) : json(404, { error: `no check named ${m[1]}` });
  }
  return json(404, { error: 'not found' });
}

/** Windows open and to come, and those of the last 7 days with what their verification found. Documented in docs/api.md. */
export function plannedWorkJson(agent: Agent, now: number): { open: unknown[]; upcoming: unknown[]; recent: unknown[] } {
  const { open, upcoming } = agent.planned.list(now);
  const changes = agent.journal.verifications(now - UPCOMING_MS);
  const recent = agent.journal
    .windows(now - UPCOMING_MS)
    .filter((w) => w.state === 'ended' || w.state === 'cancelled')
    .map((w) => ({
      id: w.id,
      title: w.title,
      source: w.source,
      state: w.state,
      start: new Date(w.start).toISOString(),
      end: new Date(w.endedAt ?? w.end).toISOString(),
      checks: w.checks,
      count: w.count ?? w.checks.length,
      verification: changes.filter((c) => c.window === w.id).map(changeJson),
    }));
  return { open: open.map((w) => windowJson(w, now)), upcoming: upcoming.map((w) => windowJson(w, now)), recent };
}

/** A window open or to come. Documented in docs/api.md. */
export function windowJson(w: Window, now: number): unknown {
  return {
    id: w.id,
    name: w.name ?? null,
    title: plainText(w.title),
    source: w.source,
    open: w.start <= now && now < w.end,
    start: new Date(w.start).toISOString(),
    end: new Date(w.end).toISOString(),
    checks: w.checks,
    verify: w.verify ?? false,
    by: w.by ?? null,
  };
}

/** A verification's word on one check. Documented in docs/api.md. */
function changeJson(c: JournalChange): unknown {
  return {
    check: c.check,
    window: c.window,
    title: c.title,
    ended: new Date(c.ended).toISOString(),
    state: c.state,
    message: c.message,
    at: new Date(c.t).toISOString(),
  };
}

/** A JSON request body: at most 64 KiB, sent as application/json (a browser's cross-site form post cannot be). */
async function readJson(req: IncomingMessage): Promise<{ value: unknown } | { status: number; error: string }> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') return { status: 415, error: 'expected Content-Type: application/json' };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return { status: 413, error: `expected a body of at most ${MAX_BODY} bytes` };
    chunks.push(chunk);
  }
  try {
    return { value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown };
  } catch {
    return { status: 400, error: 'expected a JSON body' };
  }
}

/** Largest request body the admin API reads. */
const MAX_BODY = 64 * 1024;

/** What this agent runs of its config: its site and shard, how many checks, and its dependsOn edges to other shards. Documented in docs/api.md. */
function placementJson(agent: Agent): unknown {
  const p = agent.placement;
  return {
    site: agent.labels.site ?? null,
    shard: `${p.shard.index}/${p.shard.count}`,
    owned: p.owned,
    elsewhere: p.elsewhere,
    disabled: p.disabled,
    remoteDependencies: p.remote,
  };
}

/** The API's view of a check. Documented in docs/api.md. */
export function checkJson(v: CheckView): unknown {
  const c = v.config;
  const last = v.last;
  return {
    ...checkIdentity(c),
    enabled: true,
    state: v.maintenance ? 'maintenance' : v.status.state,
    observedState: v.status.state,
    since: new Date(v.status.since).toISOString(),
    maintenance: v.maintenance
      ? {
          window: v.maintenance.id,
          title: plainText(v.maintenance.title),
          start: new Date(v.maintenance.start).toISOString(),
          end: new Date(v.maintenance.end).toISOString(),
        }
      : null,
    change: v.change
      ? {
          state: 'regressed',
          window: v.change.window,
          title: v.change.title,
          ended: new Date(v.change.ended).toISOString(),
          since: new Date(v.change.since).toISOString(),
          message: v.change.message,
          finding: v.change.finding,
          before: v.change.level,
        }
      : null,
    cause: v.cause ?? null,
    flapping: v.status.flapping,
    baselineSeconds: v.status.baseline ?? null,
    consecutiveFailures: v.status.consecutiveFailures,
    lastResult: last
      ? {
          time: new Date(last.startedAt).toISOString(),
          result: runResult(last.result),
          durationSeconds: last.duration,
          disturbed: last.disturbed,
          loopStallSeconds: last.loopStall,
          phases: last.result.phases,
          failure: last.result.failure ?? null,
          degraded: last.result.degraded ?? null,
          values: last.result.values ?? {},
          info: last.result.info ?? {},
          ...(last.result.targets ? { targets: last.result.targets } : {}),
          ...(last.result.steps ? { steps: last.result.steps } : {}),
          ...(last.result.queues ? { queues: last.result.queues } : {}),
          ...(last.result.items ? { items: last.result.items } : {}),
          ...(last.result.records ? { records: last.result.records } : {}),
        }
      : null,
    history: v.history.records().map((h) => ({
      time: new Date(h.time).toISOString(),
      result: h.result,
      durationSeconds: h.durationSeconds,
      phases: h.phases,
      ...(h.steps ? { steps: h.steps } : {}),
      reason: h.reason ?? null,
      disturbed: h.disturbed ?? false,
    })),
  };
}

/** The API's view of a service made of redundant checks, with its members' states. Documented in docs/api.md. */
export function serviceJson(agent: Agent, v: ServiceView): unknown {
  const s = v.config;
  return {
    name: s.name,
    title: s.title,
    group: s.group,
    minUp: s.minUp,
    state: v.state,
    observedState: v.observed,
    since: new Date(v.since).toISOString(),
    membersUp: v.tally.up,
    members: s.members.map((name) => {
      const m = agent.get(name);
      return {
        name,
        title: m?.config.title ?? name,
        state: m ? (m.maintenance ? 'maintenance' : m.status.state) : null,
        observedState: m?.status.state ?? null,
        since: m ? new Date(m.status.since).toISOString() : null,
      };
    }),
  };
}

/** What a check is, enabled or not: the first fields of both check objects. */
function checkIdentity(c: CheckConfig) {
  return {
    name: c.name,
    title: c.title,
    kind: c.kind,
    target: c.target,
    group: c.group,
    dependsOn: c.dependsOn,
    schedule: c.schedule,
    timeoutSeconds: c.timeoutMs / 1000,
  };
}

/** A check with `enabled: false`: what it is, and no state (it does not run). Documented in docs/api.md. */
export function disabledCheckJson(c: CheckConfig): unknown {
  return {
    ...checkIdentity(c),
    enabled: false,
    state: null,
    lastResult: null,
  };
}

/** A check named by an incident: its name, title and group (the name alone for a check no longer configured). */
function named(agent: Agent, name: string): { name: string; title: string; group: string | null } {
  const v = agent.get(name);
  return { name, title: v?.config.title ?? name, group: v?.config.group ?? null };
}

/** What every incident object starts with: the cause named, since when, and the checks it takes down. */
function incidentBase(agent: Agent, cause: string, since: number, affected: readonly string[]) {
  const { title, group } = named(agent, cause);
  return { cause, title, group, since: new Date(since).toISOString(), affected: affected.map((name) => named(agent, name)) };
}

export function incidentJson(agent: Agent, i: Incident): unknown {
  const cause = agent.get(i.cause);
  return { ...incidentBase(agent, i.cause, i.since, i.affected), reason: cause?.last?.result.failure?.reason ?? null, planned: cause?.maintenance?.id ?? null };
}

/** An incident from the journal, open or closed. Documented in docs/api.md. */
export function journalIncidentJson(agent: Agent, i: JournalIncident): unknown {
  return {
    ...incidentBase(agent, i.cause, i.since, i.affected),
    until: i.until === undefined ? null : new Date(i.until).toISOString(),
    open: i.until === undefined,
    interrupted: i.interrupted ?? false,
    reason: i.reason ?? null,
    peakAffected: i.peakAffected,
  };
}

/** Summed up time and known time of a group's checks over one window. */
interface GroupSum {
  up: number;
  known: number;
}

/**
 * Availability per check, per service and per group over 24 h, 7 d and 30 d, from the journal. A
 * group's is its systems' up time over their known time, summed: the share of system-time they
 * were up. A service of redundant checks counts as one system of its group, in place of its
 * members (one firewall path down an hour did not make patient records unavailable).
 * Documented in docs/api.md.
 */
export function availabilityJson(agent: Agent, now: number): { windows: string[]; groups: unknown[]; checks: unknown[]; services: unknown[] } {
  const windows = Object.keys(AVAILABILITY_WINDOWS) as (keyof typeof AVAILABILITY_WINDOWS)[];
  const groups = new Map<string, Map<string, GroupSum>>();
  const members = memberNames(agent);
  const entry = (name: string, title: string, group: string, counts: boolean) => {
    const per: Record<string, unknown> = {};
    for (const w of windows) {
      const a = addAvailability(agent, name, counts ? group : undefined, AVAILABILITY_WINDOWS[w], now, groups, w);
      per[w] = a === undefined ? null : { ratio: round6(a.ratio), downSeconds: Math.round(a.downMs / 1000), knownSeconds: Math.round(a.knownMs / 1000) };
    }
    return { name, title, group, availability: per };
  };
  const checks = agent.list().map((v) => entry(v.config.name, v.config.title, v.config.group, !members.has(v.config.name)));
  const services = agent.serviceList().map((v) => entry(v.config.name, v.config.title, v.config.group, true));
  return {
    windows,
    groups: [...groups].map(([group, per]) => ({ group, availability: Object.fromEntries(windows.map((w) => [w, groupRatio(per.get(w))])) })),
    checks,
    services,
  };
}

/** The checks that are members of a service: their group counts the service instead. */
function memberNames(agent: Agent): Set<string> {
  return new Set(agent.serviceList().flatMap((v) => v.config.members));
}

/** A check's or service's availability over one window, also added to `group`'s sum for that window (none: counted in no group). */
function addAvailability(
  agent: Agent,
  name: string,
  group: string | undefined,
  windowMs: number,
  now: number,
  groups: Map<string, Map<string, GroupSum>>,
  window: string,
) {
  const a = agent.journal.availability(name, windowMs, now);
  if (group === undefined) return a;
  const perWindow = groups.get(group) ?? new Map<string, GroupSum>();
  groups.set(group, perWindow);
  const sum = perWindow.get(window) ?? { up: 0, known: 0 };
  perWindow.set(window, sum);
  if (a) {
    sum.up += a.knownMs - a.downMs;
    sum.known += a.knownMs;
  }
  return a;
}

const groupRatio = (sum: GroupSum | undefined) => (sum === undefined || sum.known === 0 ? null : round6(sum.up / sum.known));

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/** What the status page shows of the journal: incidents that ended in the last 7 days, and each group's availability over 30 days. */
function pageHistory(agent: Agent, now: number): { earlier: EarlierIncident[]; availability: Map<string, number> } {
  const earlier = agent.journal
    .incidents(now - 7 * 86_400_000)
    .filter((i): i is JournalIncident & { until: number } => i.until !== undefined)
    .slice(-20)
    .map((i) => ({ cause: i.cause, since: i.since, until: i.until, peakAffected: i.peakAffected, interrupted: i.interrupted }));
  const groups = new Map<string, Map<string, GroupSum>>();
  const members = memberNames(agent);
  for (const v of agent.list())
    if (!members.has(v.config.name)) addAvailability(agent, v.config.name, v.config.group, AVAILABILITY_WINDOWS['30d'], now, groups, '30d');
  for (const v of agent.serviceList()) addAvailability(agent, v.config.name, v.config.group, AVAILABILITY_WINDOWS['30d'], now, groups, '30d');
  const availability = new Map<string, number>();
  for (const [group, per] of groups) {
    const sum = per.get('30d');
    if (sum && sum.known > 0) availability.set(group, sum.up / sum.known);
  }
  return { earlier, availability };
}

/** `since` of /api/v1/incidents: an ISO 8601 time, or a duration back from `now` (7d); at most the journal's 30 days back. */
export function parseSince(text: string, now: number): number | undefined {
  const back = parseDuration(text);
  const t = back !== undefined ? now - back : /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(t)) return undefined;
  return Math.max(t, now - JOURNAL_MEMORY_MS);
}

function methodNotAllowed(agent: Agent, res: ServerResponse, allow: string): void {
  res.setHeader('Allow', allow);
  send(agent, res, 405, 'application/json', JSON.stringify({ error: 'method not allowed' }));
}

/** Text the server lets queue for a reader before it waits for the reader to catch up. */
const MAX_QUEUED = 1 << 20;

/**
 * /metrics, streamed in the chunks the metrics hand out (they yield to the event loop between
 * chunks; a slow reader holds back the next chunk, not the agent), gzip-compressed when the
 * scraper accepts it, as Prometheus does: 10,000 checks are ~10 MiB of text and ~1 MiB
 * compressed, and zlib runs on libuv's thread pool, not on the loop that measures. Label values
 * were redacted when the series were written, so the body is not scrubbed again here.
 */
async function sendMetrics(agent: Agent, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const openMetrics = (req.headers.accept ?? '').includes('application/openmetrics-text');
  const gzip = acceptsGzip(req.headers['accept-encoding']);
  res.writeHead(200, {
    'Content-Type': agent.metrics.contentType(openMetrics),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    Vary: 'Accept-Encoding',
    ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  let out: Writable = res;
  let sent: Promise<void> | undefined;
  if (gzip) {
    const gz = createGzip({ level: constants.Z_BEST_SPEED });
    // A reader that goes away ends the pipeline (and destroys gz); nothing to report.
    sent = pipeline(gz, res).catch(() => undefined);
    out = gz;
  }
  for await (const chunk of agent.metrics.renderChunks(openMetrics)) {
    if (res.destroyed || out.destroyed) break;
    out.write(chunk);
    if (out.writableLength > MAX_QUEUED) await caughtUp(out);
  }
  if (!out.destroyed) out.end();
  await sent;
}

/** Resolves when `out` drained its queue or was closed. */
function caughtUp(out: Writable): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

function send(agent: Agent, res: ServerResponse, status: number, contentType: string, body: string): void {
  const out = agent.redactor.scrub(body);
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(out),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(res.req.method === 'HEAD' ? undefined : out);
}
