// The agent's HTTP face: /metrics, /healthz, /readyz, /api/v1/checks[/NAME], POST /-/reload,
// and / (a page for people). Every body goes through the redactor; errors never carry stacks.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip } from 'node:zlib';
import type { Agent, CheckView } from './agent.js';
import type { Incident } from './root-cause.js';
import { acceptsGzip } from './accept.js';
import { pickLanguage, statusPage } from './status-page.js';
import { runResult } from '../probes/types.js';

export interface HttpServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startServer(agent: Agent, host: string, port: number): Promise<HttpServer> {
  const server = createServer((req, res) => {
    handle(agent, req, res).catch((err: unknown) => {
      agent.log.error({ err, url: req.url }, 'request failed');
      if (!res.headersSent) send(agent, res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
      else res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  // A cap on connections: past it, new ones are closed as they arrive (a scanner or a client
  // that opens thousands and sends nothing must not take the agent's file descriptors, which its
  // probes need). Said in the log at most once a minute, with how many were refused.
  server.maxConnections = agent.maxConnections;
  let dropped = 0;
  let warnedAt = 0;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - warnedAt < 60_000) return;
    warnedAt = now;
    agent.log.warn({ maxConnections: server.maxConnections, refused: dropped }, 'connection refused: agent.maxConnections reached');
    dropped = 0;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(agent: Agent, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://vakt.invalid');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const json = (status: number, body: unknown) => send(agent, res, status, 'application/json; charset=utf-8', JSON.stringify(body, null, 2));

  if (path === '/-/reload') {
    if (method !== 'POST' && method !== 'PUT') return methodNotAllowed(agent, res, 'POST, PUT');
    const r = await agent.reload();
    return json(r.ok ? 200 : 400, r);
  }
  if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(agent, res, 'GET, HEAD');
  switch (path) {
    case '/metrics':
      return sendMetrics(agent, req, res);
    case '/healthz':
      return send(agent, res, 200, 'text/plain; charset=utf-8', 'ok\n');
    case '/readyz':
      return agent.ready ? send(agent, res, 200, 'text/plain; charset=utf-8', 'ready\n') : send(agent, res, 503, 'text/plain; charset=utf-8', 'not ready\n');
    case '/api/v1/checks':
      return json(200, { labels: agent.labels, checks: agent.list().map(checkJson) });
    case '/api/v1/incidents':
      return json(200, { labels: agent.labels, incidents: agent.incidents().map((i) => incidentJson(agent, i)) });
    case '/': {
      const sp = agent.statusPage;
      const asked = url.searchParams.get('lang');
      const language = pickLanguage(asked === 'en' || asked === 'sv' || asked === 'da' ? asked : sp.language, req.headers['accept-language']);
      res.setHeader('Content-Language', language);
      res.setHeader('Vary', 'Accept-Language');
      return send(
        agent,
        res,
        200,
        'text/html; charset=utf-8',
        statusPage({ checks: agent.list(), incidents: agent.incidents(), labels: agent.labels, title: sp.title, language, refreshSeconds: sp.refresh }),
      );
    }
  }
  const m = /^\/api\/v1\/checks\/([a-z0-9_-]+)$/.exec(path);
  if (m) {
    const view = agent.get(m[1] as string);
    return view ? json(200, checkJson(view)) : json(404, { error: `no check named ${m[1]}` });
  }
  return json(404, { error: 'not found' });
}

/** The API's view of a check. Documented in docs/api.md. */
export function checkJson(v: CheckView): unknown {
  const c = v.config;
  const last = v.last;
  return {
    name: c.name,
    title: c.title,
    kind: c.kind,
    target: c.target,
    group: c.group,
    dependsOn: c.dependsOn,
    schedule: c.schedule,
    timeoutSeconds: c.timeoutMs / 1000,
    state: v.status.state,
    since: new Date(v.status.since).toISOString(),
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
        }
      : null,
    history: v.history.records().map((h) => ({
      time: new Date(h.time).toISOString(),
      result: h.result,
      durationSeconds: h.durationSeconds,
      phases: h.phases,
      reason: h.reason ?? null,
      disturbed: h.disturbed ?? false,
    })),
  };
}

export function incidentJson(agent: Agent, i: Incident): unknown {
  const cause = agent.get(i.cause);
  return {
    cause: i.cause,
    title: cause?.config.title ?? i.cause,
    group: cause?.config.group ?? null,
    since: new Date(i.since).toISOString(),
    reason: cause?.last?.result.failure?.reason ?? null,
    affected: i.affected.map((name) => ({ name, title: agent.get(name)?.config.title ?? name, group: agent.get(name)?.config.group ?? null })),
  };
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
