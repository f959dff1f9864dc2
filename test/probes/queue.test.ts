// The queue probe against real HTTP servers on loopback that answer like each broker's API, and
// against a temporary folder; rates, stalls and growth over several runs with one check memory.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { JSON_MAX_DEPTH } from '../../probes/kit/json.js';
import type { QueueSource } from '../../probes/queue/options.js';
import { activemqName, globMatcher } from '../../probes/queue/sources.js';
import { humanDuration, queueProbe } from '../../probes/queue/probe.js';
import type { ProbeResult, QueueReading } from '../../probes/types.js';
import { blackholePeer, budget, closedPort, quietLog, tcpPeer, targetsOf } from '../helpers/peers.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface Api {
  url: string;
  seen: Seen[];
  handle: (req: Seen, res: ServerResponse) => void;
}

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A real HTTP server whose answers the test sets per request. */
async function api(handle: Api['handle']): Promise<Api> {
  const a: Api = { url: '', seen: [], handle };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      a.seen.push(seen);
      a.handle(seen, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  a.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return a;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

const SECRET = 'hunter2-queue-secret';

function run(target: string, options: Record<string, unknown>, memory = new Map<string, unknown>(), timeoutMs = 3000): Promise<ProbeResult> {
  const opts = KIND_OPTIONS.queue.parse(options);
  return queueProbe.run({ ...targetsOf('queue', target), options: opts, ...budget(timeoutMs), memory, log: quietLog, secrets: { pw: SECRET } });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const q = (r: ProbeResult, name?: string): QueueReading => {
  const found = name === undefined ? r.queues?.[0] : r.queues?.find((x) => x.queue === name);
  if (!found) throw new Error(`no reading for ${name ?? 'the first queue'} in ${JSON.stringify(r)}`);
  return found;
};

/** A RabbitMQ-like queue whose numbers the test changes. */
interface RabbitQueue {
  messages: number;
  ready?: number;
  unacked?: number;
  consumers: number;
  head?: number;
  publish?: number;
  deliver?: number;
  state?: string;
}

async function rabbit(queues: Record<string, RabbitQueue>, vhost = '/'): Promise<Api> {
  return api((req, res) => {
    const auth = req.headers.authorization;
    if (auth !== `Basic ${Buffer.from(`monitor:${SECRET}`).toString('base64')}`) return json(res, 401, { error: 'not_authorised', reason: 'Login failed' });
    const m = /^\/api\/queues\/([^/]+)\/([^/?]+)\?columns=/.exec(req.url);
    const qq = m && decodeURIComponent(m[1] as string) === vhost ? queues[decodeURIComponent(m[2] as string)] : undefined;
    if (!qq) return json(res, 404, { error: 'Object Not Found', reason: 'Not Found' });
    const stats =
      qq.publish !== undefined
        ? {
            message_stats: {
              publish: qq.publish,
              publish_details: { rate: 0.4 },
              deliver_get: qq.deliver ?? 0,
              ack: qq.deliver ?? 0,
              deliver_get_details: { rate: 0.2 },
            },
          }
        : {};
    json(res, 200, {
      name: m?.[2],
      state: qq.state ?? 'running',
      messages: qq.messages,
      messages_ready: qq.ready ?? qq.messages,
      messages_unacknowledged: qq.unacked ?? 0,
      consumers: qq.consumers,
      ...(qq.head !== undefined ? { head_message_timestamp: qq.head } : {}),
      ...stats,
    });
  });
}

describe('queue: rabbitmq management API', () => {
  const base = { source: 'rabbitmq', queues: ['lab.results'], username: 'monitor', password: 'pw' };

  it('reads depth, ready, unacked, consumers and the oldest age; encodes the vhost and sends Basic auth', async () => {
    const head = Math.floor(Date.now() / 1000) - 120;
    const a = await rabbit({ 'lab.results': { messages: 12, ready: 10, unacked: 2, consumers: 1, head, publish: 500, deliver: 488 } }, 'region/lab');
    const r = await run(a.url, { ...base, vhost: 'region/lab' });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(a.seen[0]?.url).toMatch(/^\/api\/queues\/region%2Flab\/lab\.results\?columns=.*head_message_timestamp/);
    const x = q(r);
    expect(x).toMatchObject({ queue: 'lab.results', depth: 12, ready: 10, unacked: 2, consumers: 1, undrainedSeconds: 0 });
    expect(x.oldestAgeSeconds).toBeGreaterThanOrEqual(119);
    expect(x.oldestAgeSeconds).toBeLessThan(125);
    // First run: the broker's own smoothed rates; no computed rate yet. Its deliver rate counts
    // redeliveries: it is not a drain rate (the answer has no ack rate).
    expect(x.arrivalRate).toBe(0.4);
    expect(x.deliverRate).toBe(0.2);
    expect(x.drainRate).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['fetch', 'assess']);
  });

  it('computes arrival and drain rates from the totals between runs', async () => {
    const lab: RabbitQueue = { messages: 5, consumers: 1, publish: 1000, deliver: 995 };
    const a = await rabbit({ 'lab.results': lab });
    const memory = new Map<string, unknown>();
    await run(a.url, base, memory);
    await sleep(250);
    Object.assign(lab, { messages: 15, publish: 1050, deliver: 1035 });
    const r = await run(a.url, base, memory);
    const x = q(r);
    // 50 arrived and 40 drained in ~0.25 s.
    expect(x.arrivalRate).toBeGreaterThan(50 / 0.4);
    expect(x.arrivalRate).toBeLessThan(50 / 0.2);
    expect((x.drainRate as number) / (x.arrivalRate as number)).toBeCloseTo(40 / 50, 5);
  });

  it('a missing queue is its own reason; the vhost is named', async () => {
    const a = await rabbit({ other: { messages: 0, consumers: 0 } });
    const r = await run(a.url, base);
    expect(r.failure).toMatchObject({ phase: 'fetch', reason: 'queue_missing' });
    expect(r.failure?.message).toContain('lab.results');
  });

  it('wrong credentials → auth, and the password is nowhere in the result', async () => {
    const a = await rabbit({ 'lab.results': { messages: 0, consumers: 1 } });
    const r = await run(a.url, { ...base, username: 'intruder' });
    expect(r.failure?.reason).toBe('auth');
    expect(JSON.stringify(r)).not.toContain(SECRET);
  });

  it('a queue whose process is down fails with queue_stopped', async () => {
    const a = await rabbit({ 'lab.results': { messages: 3, consumers: 0, state: 'down' } });
    const r = await run(a.url, base);
    expect(r.failure?.reason).toBe('queue_stopped');
  });

  it('reads several queues and fails on the one over its limit, naming it', async () => {
    const a = await rabbit({ 'lab.results': { messages: 3, consumers: 1 }, 'orders.out': { messages: 900, consumers: 1 } });
    const r = await run(a.url, { ...base, queues: ['lab.results', 'orders.out'], maxDepth: 500 });
    expect(r.queues?.map((x) => x.queue)).toEqual(['lab.results', 'orders.out']);
    expect(r.failure).toMatchObject({ phase: 'assess', reason: 'backlog' });
    expect(r.failure?.message).toMatch(/^orders\.out: 900 waiting \(limit 500\)/);
  });

  it('maxOldestAge and minConsumers', async () => {
    const a = await rabbit({ 'lab.results': { messages: 2, consumers: 1, head: Math.floor(Date.now() / 1000) - 3600 } });
    const old = await run(a.url, { ...base, maxOldestAge: '15m' });
    expect(old.failure?.reason).toBe('backlog');
    expect(old.failure?.message).toMatch(/oldest message waited (59m 5\ds|1h) \(limit 15m\)/);
    const few = await run(a.url, { ...base, minConsumers: 2 });
    expect(few.failure).toMatchObject({ reason: 'consumers' });
    expect(few.failure?.message).toContain('1 consumer (at least 2 expected)');
  });
});

describe('queue: stalls and growth across runs', () => {
  const base = { source: 'rabbitmq', queues: ['lab.results'], username: 'monitor', password: 'pw' };

  it('messages waiting and nothing drained for stalledAfter → backlog; draining again → ok', async () => {
    const lab: RabbitQueue = { messages: 4, consumers: 1, publish: 100, deliver: 96 };
    const a = await rabbit({ 'lab.results': lab });
    const memory = new Map<string, unknown>();
    const opts = { ...base, stalledAfter: '600ms' };
    expect((await run(a.url, opts, memory)).ok).toBe(true);
    await sleep(100);
    lab.publish = 110;
    lab.messages = 14; // arrivals only: still not stalled long enough
    const r1 = await run(a.url, opts, memory);
    expect(r1.ok).toBe(true);
    expect(q(r1).drainRate).toBe(0);
    await sleep(550);
    const r2 = await run(a.url, opts, memory);
    expect(r2.failure, JSON.stringify(r2)).toMatchObject({ reason: 'backlog', phase: 'assess' });
    expect(r2.failure?.message).toMatch(/stalled, 14 waiting and nothing drained for/);
    expect(q(r2).undrainedSeconds).toBeGreaterThanOrEqual(0.6);
    // The consumer takes 10: the stall ends at once.
    Object.assign(lab, { deliver: 106, messages: 4 });
    const r3 = await run(a.url, opts, memory);
    expect(r3.ok).toBe(true);
    expect(q(r3).undrainedSeconds).toBe(0);
  });

  it('an empty queue with no traffic is never stalled', async () => {
    const a = await rabbit({ 'lab.results': { messages: 0, consumers: 1, publish: 7, deliver: 7 } });
    const memory = new Map<string, unknown>();
    await run(a.url, { ...base, stalledAfter: '100ms' }, memory);
    await sleep(150);
    const r = await run(a.url, { ...base, stalledAfter: '100ms' }, memory);
    expect(r.ok).toBe(true);
    expect(q(r).undrainedSeconds).toBe(0);
  });

  it('growing faster than draining over the window → degraded backlog_growing; a slow but keeping-up queue is not', async () => {
    const lab: RabbitQueue = { messages: 0, consumers: 1, publish: 0, deliver: 0 };
    const a = await rabbit({ 'lab.results': lab });
    const memory = new Map<string, unknown>();
    const opts = { ...base, growth: { window: '400ms', minIncrease: 5 } };
    let last: ProbeResult | undefined;
    for (let i = 1; i <= 6; i++) {
      Object.assign(lab, { publish: 10 * i, deliver: 7 * i, messages: 3 * i });
      last = await run(a.url, opts, memory);
      await sleep(110);
    }
    expect(last?.ok).toBe(true);
    expect(last?.degraded?.reason).toBe('backlog_growing');
    expect(last?.degraded?.message).toMatch(/^lab\.results grew by \d+ in/);
    // Same traffic, drained as fast as it arrives.
    const steady: RabbitQueue = { messages: 2, consumers: 1, publish: 0, deliver: 0 };
    const b = await rabbit({ 'lab.results': steady });
    const mem2 = new Map<string, unknown>();
    for (let i = 1; i <= 6; i++) {
      Object.assign(steady, { publish: 10 * i, deliver: 10 * i });
      last = await run(b.url, opts, mem2);
      await sleep(110);
    }
    expect(last?.degraded).toBeUndefined();
  });

  it('a broker restart (totals going backwards) is not read as a drain', async () => {
    const lab: RabbitQueue = { messages: 50, consumers: 1, publish: 1000, deliver: 950 };
    const a = await rabbit({ 'lab.results': lab });
    const memory = new Map<string, unknown>();
    await run(a.url, base, memory);
    await sleep(50);
    Object.assign(lab, { publish: 3, deliver: 0, messages: 53 });
    const r = await run(a.url, base, memory);
    expect(q(r).drainRate).toBe(0);
    expect(q(r).arrivalRate).toBeGreaterThan(0);
  });
});

describe('queue: what must not look like draining (review findings)', () => {
  const base = { source: 'rabbitmq', queues: ['lab.results'], username: 'monitor', password: 'pw', stalledAfter: '300ms' };

  it('rabbitmq: a consumer that rejects and requeues a poison message (deliver_get rising, nothing acknowledged) is stalled', async () => {
    let delivered = 100;
    const a = await api((_, res) =>
      json(res, 200, {
        name: 'lab.results',
        state: 'running',
        messages: 50,
        messages_ready: 49,
        messages_unacknowledged: 1,
        consumers: 1,
        message_stats: { publish: 150, deliver_get: (delivered += 500), ack: 100 },
      }),
    );
    const memory = new Map<string, unknown>();
    await run(a.url, base, memory);
    await sleep(350);
    const r = await run(a.url, base, memory);
    expect(q(r).drainRate).toBe(0);
    // Going round: 500 deliveries per run, nothing leaving.
    expect(q(r).deliverRate).toBeGreaterThan(500);
    expect(r.failure?.reason, JSON.stringify(r)).toBe('backlog');
  });

  it('rabbitmq: a down queue without counts is queue_stopped, not a protocol error', async () => {
    const a = await api((_, res) => json(res, 200, { name: 'lab.results', state: 'down' }));
    expect((await run(a.url, base)).failure).toMatchObject({ reason: 'queue_stopped', phase: 'fetch' });
  });

  it('a wall-clock step between runs is neither a stall nor a negative time', async () => {
    const a = await rabbit({ 'lab.results': { messages: 4, consumers: 1, publish: 10, deliver: 6 } });
    const memory = new Map<string, unknown>();
    await run(a.url, base, memory);
    const realNow = Date.now;
    try {
      Date.now = () => realNow() + 3_600_000;
      const forward = await run(a.url, base, memory);
      expect(forward.ok, JSON.stringify(forward)).toBe(true);
      Date.now = () => realNow() - 3_600_000;
      const back = await run(a.url, base, memory);
      expect(q(back).undrainedSeconds).toBeGreaterThanOrEqual(0);
      expect(q(back).undrainedSeconds).toBeLessThan(5);
    } finally {
      Date.now = realNow;
    }
  });

  it('mirth: one reading per destination, so a stuck destination is not hidden by a working one', async () => {
    const stats = (received: number, sent: number) => ({
      entry: [
        { 'com.mirth.connect.donkey.model.message.Status': 'RECEIVED', long: received },
        { 'com.mirth.connect.donkey.model.message.Status': 'SENT', long: sent },
      ],
    });
    let n = 0;
    const a = await api((_, res) => {
      n += 10;
      json(res, 200, {
        list: {
          dashboardStatus: {
            channelId: 'c1',
            name: 'LAB_OUT',
            state: 'STARTED',
            queued: n,
            // Channel totals: SENT adds up both destinations, so the channel looks as if it drains.
            statistics: stats(100 + n, 200 + n),
            childStatuses: {
              dashboardStatus: [
                { name: 'Source', metaDataId: 0, statusType: 'SOURCE_CONNECTOR', state: 'STARTED', queued: 0, statistics: stats(100 + n, 0) },
                { name: 'Archive', metaDataId: 1, statusType: 'DESTINATION_CONNECTOR', state: 'STARTED', queued: 0, statistics: stats(0, 100 + n) },
                { name: 'EHR', metaDataId: 2, statusType: 'DESTINATION_CONNECTOR', state: 'STARTED', queued: n, statistics: stats(0, 100) },
              ],
            },
          },
        },
      });
    });
    const memory = new Map<string, unknown>();
    const opts = { source: 'mirth', stalledAfter: '300ms' };
    await run(a.url, opts, memory);
    await sleep(350);
    const r = await run(a.url, opts, memory);
    expect(r.queues?.map((x) => x.queue)).toEqual(['LAB_OUT/Archive', 'LAB_OUT/EHR']);
    expect(q(r, 'LAB_OUT/Archive').depth).toBe(0);
    expect(q(r, 'LAB_OUT/EHR')).toMatchObject({ depth: 20, drainRate: 0 });
    expect(r.failure?.message, JSON.stringify(r)).toMatch(/^LAB_OUT\/EHR: stalled, 20 waiting/);
  });

  it('mirth: more than 100 channel destinations → the rest counted and the run degraded (partial)', async () => {
    const channels = Array.from({ length: 60 }, (_, i) => ({
      channelId: `c${i}`,
      name: `CH${i}`,
      state: 'STARTED',
      queued: 0,
      childStatuses: {
        dashboardStatus: [1, 2].map((m) => ({ name: `D${m}`, metaDataId: m, statusType: 'DESTINATION_CONNECTOR', state: 'STARTED', queued: 0 })),
      },
    }));
    const a = await api((_, res) => json(res, 200, { list: { dashboardStatus: channels } }));
    const r = await run(a.url, { source: 'mirth' });
    expect(r.queues).toHaveLength(100);
    expect(r.degraded).toMatchObject({ reason: 'partial' });
    expect(r.degraded?.message).toContain('20 more channel destinations not read');
  });

  it('numbers beyond 2^53 (or 400-digit strings) are not counts: protocol, never Infinity', async () => {
    const a = await api((_, res) => json(res, 200, `{"name":"lab.results","messages":"${'9'.repeat(400)}","consumers":1}`));
    const r = await run(a.url, base);
    expect(r.failure?.reason).toBe('protocol');
    expect(JSON.stringify(r)).not.toContain('Infinity');
  });

  it('a missing caFile is tls_handshake; a deeply nested value at depthPath is protocol (no stack overflow)', async () => {
    const a = await api((_, res) => json(res, 200, `{"q":${'['.repeat(5000)}1${']'.repeat(5000)}}`));
    const missingCa = await run(a.url.replace('http:', 'https:'), { ...base, tls: { caFile: '/nonexistent/ca.pem' } });
    expect(missingCa.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    // The files, not the handshake with a plain-HTTP server, are what failed.
    expect(missingCa.failure?.message).toMatch(/^reading TLS files: .*\/nonexistent\/ca\.pem/);
    const deep = await run(a.url, { source: 'http-json', depthPath: '$.q' });
    expect(deep.failure?.reason).toBe('protocol');
  });

  it('an error page that echoes the Authorization header does not leak the credentials (base64)', async () => {
    const a = await api((req, res) => json(res, 500, `{"error":"boom","echo":"${req.headers.authorization ?? ''}"}`));
    const r = await run(a.url, base);
    expect(r.failure?.reason).toBe('http_status');
    expect(r.failure?.message).not.toContain(Buffer.from(`monitor:${SECRET}`).toString('base64'));
  });
});

describe('queue: bad answers fail with a reason', () => {
  const base = { source: 'rabbitmq', queues: ['lab.results'] };

  it('HTML (a login page behind a proxy) → protocol', async () => {
    const a = await api((_, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><html><body>Please log in</body></html>');
    });
    const r = await run(a.url, base);
    expect(r.failure).toMatchObject({ phase: 'fetch', reason: 'protocol' });
    expect(r.failure?.message).toMatch(/expected JSON, got \d+ bytes of text\/html \(an HTML/);
  });

  it('truncated JSON → protocol', async () => {
    const a = await api((_, res) => json(res, 200, '{"name":"lab.results","messages":4,"consu'));
    const r = await run(a.url, base);
    expect(r.failure?.reason).toBe('protocol');
    expect(r.failure?.message).toContain('does not parse');
  });

  it('JSON without the counts → protocol', async () => {
    const a = await api((_, res) => json(res, 200, { name: 'lab.results' }));
    expect((await run(a.url, base)).failure?.reason).toBe('protocol');
  });

  it('500 → http_status with the server text quoted but secrets scrubbed', async () => {
    const a = await api((_, res) => json(res, 500, `{"error":"internal","reason":"boom ${SECRET}"}`));
    const r = await run(a.url, { ...base, username: 'monitor', password: 'pw' });
    expect(r.failure).toMatchObject({ reason: 'http_status' });
    expect(r.failure?.message).toContain('status 500');
    expect(r.failure?.message).not.toContain(SECRET);
  });

  it('a body beyond maxBodySize stops reading → body_too_large (an endless stream)', async () => {
    let written = 0;
    const a = await api((_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (written < 2 * 1024 ** 3 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      res.on('close', () => undefined);
      pump();
    });
    const r = await run(a.url, { ...base, maxBodySize: '1MiB' });
    expect(r.failure?.reason).toBe('body_too_large');
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it('a server that accepts and never answers → timeout at the deadline', async () => {
    const hole = await blackholePeer();
    try {
      const t0 = performance.now();
      const r = await run(`http://127.0.0.1:${hole.port}`, base, new Map(), 400);
      expect(r.failure?.reason).toBe('timeout');
      expect(performance.now() - t0).toBeLessThan(2000);
    } finally {
      await hole.close();
    }
  });

  it('a server that accepts, reads the request and never answers → timeout, connection closed', async () => {
    const peer = await tcpPeer((s) => s.resume());
    try {
      const r = await run(`http://127.0.0.1:${peer.port}`, base, new Map(), 300);
      expect(r.failure).toMatchObject({ phase: 'fetch', reason: 'timeout' });
      await expect.poll(() => peer.sockets.size, { timeout: 2000 }).toBe(0);
    } finally {
      await peer.close();
    }
  });

  it('nothing listening → refused', async () => {
    const r = await run(`http://127.0.0.1:${await closedPort()}`, base);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
  });
});

describe('queue: activemq and artemis over Jolokia', () => {
  /** A Jolokia endpoint: POST only, Origin required, per-request status inside a 200. */
  async function jolokia(path: string, values: Record<string, Record<string, unknown>>): Promise<Api> {
    return api((req, res) => {
      if (req.method !== 'POST') return json(res, 405, { error: 'POST only' });
      if (!req.url.startsWith(path)) return json(res, 404, { error: 'not here' });
      if (!req.headers.origin) return json(res, 403, { error: 'Origin required' });
      const reads = JSON.parse(req.body) as { mbean: string; attribute: string[] }[];
      json(
        res,
        200,
        reads.map((r) => {
          const v = values[r.mbean];
          return v
            ? { request: { type: 'read', ...r }, value: v, timestamp: 1, status: 200 }
            : {
                request: { type: 'read', ...r },
                error_type: 'javax.management.InstanceNotFoundException',
                error: `javax.management.InstanceNotFoundException : ${r.mbean}`,
                status: 404,
              };
        }),
      );
    });
  }

  it('activemq: bulk read with Origin; counts and totals; missing queue → queue_missing', async () => {
    const mbean = 'org.apache.activemq:type=Broker,brokerName=localhost,destinationType=Queue,destinationName=HL7.IN';
    const a = await jolokia('/api/jolokia/', { [mbean]: { QueueSize: 7, EnqueueCount: 120, DequeueCount: 113, ConsumerCount: 2, InFlightCount: 1 } });
    const r = await run(a.url, { source: 'activemq', queues: ['HL7.IN'] });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(a.seen[0]).toMatchObject({ method: 'POST' });
    expect(a.seen[0]?.headers.origin).toBe(a.url);
    expect(q(r)).toMatchObject({ depth: 7, consumers: 2, unacked: 1 });
    expect(q(r).oldestAgeSeconds).toBeUndefined();
    const missing = await run(a.url, { source: 'activemq', queues: ['HL7.IN', 'HL7.OUT'] });
    expect(missing.failure).toMatchObject({ reason: 'queue_missing' });
    expect(missing.failure?.message).toContain('HL7.OUT');
  });

  it('artemis: quoted mbean, FirstMessageAge in ms, MessagesAcknowledged as the drain total', async () => {
    const mbean =
      'org.apache.activemq.artemis:broker="0.0.0.0",component=addresses,address="lab.results",subcomponent=queues,routing-type="anycast",queue="lab.results"';
    const vals = { MessageCount: 3, MessagesAdded: 40, MessagesAcknowledged: 37, ConsumerCount: 1, DeliveringCount: 0, FirstMessageAge: 95_000 };
    const a = await jolokia('/console/jolokia/', { [mbean]: vals });
    const memory = new Map<string, unknown>();
    const r = await run(a.url, { source: 'artemis', queues: ['lab.results'] }, memory);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(q(r)).toMatchObject({ depth: 3, consumers: 1, oldestAgeSeconds: 95 });
    await sleep(100);
    Object.assign(vals, { MessagesAdded: 50, MessagesAcknowledged: 47 });
    expect(q(await run(a.url, { source: 'artemis', queues: ['lab.results'] }, memory)).drainRate).toBeGreaterThan(0);
  });

  it('activemq: destination names encoded as ActiveMQ names its MBeans (checked on 5.17.2)', () => {
    expect(activemqName("O'K")).toBe('O_K');
    expect(activemqName('A=B')).toBe('A&amp;B');
    expect(activemqName('STAR*')).toBe('STAR&ast;');
    expect(activemqName('LAB:RESULTS')).toBe('LAB_RESULTS');
    expect(activemqName('HL7.IN')).toBe('HL7.IN');
  });

  it('a Jolokia answer with a non-200 status inside a 200 response is not read as numbers', async () => {
    const a = await api((_, res) => json(res, 200, [{ status: 500, error: 'java.lang.IllegalStateException: broker stopping' }]));
    const r = await run(a.url, { source: 'activemq', queues: ['HL7.IN'] });
    expect(r.failure?.reason).toBe('protocol');
    expect(r.failure?.message).toContain('status 500');
  });
});

describe('queue: mirth (NextGen Connect)', () => {
  const statusOf = (name: string, id: string, state: string, queued: number, received: number, sent: number, error = 0) => ({
    channelId: id,
    name,
    state,
    queued,
    statistics: {
      '@class': 'linked-hash-map',
      entry: [
        { 'com.mirth.connect.donkey.model.message.Status': 'RECEIVED', long: received },
        { 'com.mirth.connect.donkey.model.message.Status': 'FILTERED', long: 0 },
        { 'com.mirth.connect.donkey.model.message.Status': 'SENT', long: sent },
        { 'com.mirth.connect.donkey.model.message.Status': 'ERROR', long: error },
      ],
    },
  });

  async function mirth(body: () => unknown): Promise<Api> {
    return api((req, res) => {
      if (!req.headers['x-requested-with']) return json(res, 400, 'All requests must have the X-Requested-With header');
      if (req.url !== '/api/channels/statuses') return json(res, 404, {});
      json(res, 200, body());
    });
  }

  it('reads every channel (XStream list), with state, queued, errors; X-Requested-With is sent', async () => {
    const a = await mirth(() => ({
      list: { dashboardStatus: [statusOf('ADT to LIS', 'c1', 'STARTED', 2, 100, 97, 1), statusOf('Results in', 'c2', 'STARTED', 0, 50, 50)] },
    }));
    const r = await run(a.url, { source: 'mirth' });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(r.queues?.map((x) => [x.queue, x.depth, x.state, x.errors])).toEqual([
      ['ADT to LIS', 2, 'STARTED', 1],
      ['Results in', 0, 'STARTED', 0],
    ]);
  });

  it('a single channel comes as a bare object; a stopped channel → queue_stopped; an unknown one → queue_missing', async () => {
    const a = await mirth(() => ({ list: { dashboardStatus: statusOf('ADT to LIS', 'c1', 'PAUSED', 30, 100, 70) } }));
    const r = await run(a.url, { source: 'mirth', queues: ['c1'] });
    expect(q(r)).toMatchObject({ queue: 'c1', depth: 30, state: 'PAUSED' });
    expect(r.failure).toMatchObject({ reason: 'queue_stopped' });
    expect((await run(a.url, { source: 'mirth', queues: ['Lab orders'] })).failure?.reason).toBe('queue_missing');
  });
});

describe('queue: http-json', () => {
  it('numbers at JSON paths; timestamps turned into ages; a missing depth → protocol', async () => {
    let doc: unknown = { stats: { pending: 42, oldest: Date.now() - 30_000, workers: 3, in: 900, out: 858 } };
    const a = await api((_, res) => json(res, 200, doc));
    const opts = {
      source: 'http-json',
      queues: ['edifact'],
      depthPath: '$.stats.pending',
      oldestAgePath: '$.stats.oldest',
      oldestAgeUnit: 'timestamp-ms',
      consumersPath: '$.stats.workers',
      arrivedPath: '$.stats.in',
      drainedPath: '$.stats.out',
    };
    const r = await run(`${a.url}/engine/queue`, opts);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(q(r)).toMatchObject({ queue: 'edifact', depth: 42, consumers: 3 });
    expect(q(r).oldestAgeSeconds).toBeGreaterThanOrEqual(29);
    doc = { stats: { pending: 'many' } };
    const bad = await run(`${a.url}/engine/queue`, opts);
    expect(bad.failure?.reason).toBe('protocol');
    expect(bad.failure?.message).toContain('$.stats.pending');
  });
});

describe('queue: JSON nested too deep', () => {
  const nested = (depth: number, inner = '') => '['.repeat(depth) + inner + ']'.repeat(depth);
  // 4,000,000 bytes, under the default maxBodySize (4 MiB): 2 million levels.
  const deep = nested(2e6);

  it('rabbitmq and http-json: a 2-million-level answer → protocol naming the depth limit, refused before parsing', async () => {
    const a = await api((_, res) => json(res, 200, deep));
    const message = `JSON nested deeper than ${JSON_MAX_DEPTH} levels (refused at character ${JSON_MAX_DEPTH}, before parsing)`;
    const rabbitmq = await run(a.url, { source: 'rabbitmq', queues: ['lab.results'] });
    expect(rabbitmq.failure).toMatchObject({ phase: 'fetch', reason: 'protocol', message: `/api/queues/%2F/lab.results: ${message}` });
    const httpJson = await run(`${a.url}/engine/queue`, { source: 'http-json', depthPath: '$.q' });
    expect(httpJson.failure).toMatchObject({ phase: 'fetch', reason: 'protocol', message: `/engine/queue: ${message}` });
    // Above maxBodySize it is not read at all.
    expect((await run(a.url, { source: 'http-json', depthPath: '$.q', maxBodySize: '1MiB' })).failure?.reason).toBe('body_too_large');
  });

  it('rabbitmq and http-json: answers nested exactly at the limit are read', async () => {
    const extra = nested(JSON_MAX_DEPTH - 1);
    const a = await api((req, res) => {
      if (req.url.startsWith('/api/queues/')) return json(res, 200, `{"name":"lab.results","messages":3,"consumers":1,"arguments":${extra}}`);
      json(res, 200, `{"stats":{"pending":5},"history":${extra}}`);
    });
    const rabbitmq = await run(a.url, { source: 'rabbitmq', queues: ['lab.results'] });
    expect(rabbitmq.ok, JSON.stringify(rabbitmq.failure)).toBe(true);
    expect(q(rabbitmq).depth).toBe(3);
    const httpJson = await run(`${a.url}/engine/queue`, { source: 'http-json', depthPath: '$.stats.pending' });
    expect(httpJson.ok, JSON.stringify(httpJson.failure)).toBe(true);
    expect(q(httpJson).depth).toBe(5);
  });
});

describe('queue: directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vakt-queue-'));
    return () => rm(dir, { recursive: true, force: true });
  });

  it("counts matching files, the oldest one's age, recursion on request, and arrivals/removals between runs", async () => {
    await writeFile(join(dir, 'a.edi'), 'x');
    await sleep(1100);
    await writeFile(join(dir, 'b.edi'), 'x');
    await writeFile(join(dir, 'c.tmp'), 'x');
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'd.edi'), 'x');
    // Copied with its old modification time kept (rsync -t): it waits since it landed, not since 10 min.
    const old = new Date(Date.now() - 600_000);
    await utimes(join(dir, 'b.edi'), old, old);
    const memory = new Map<string, unknown>();
    const flat = await run(dir, { source: 'directory', pattern: '*.edi' }, memory);
    expect(flat.ok, JSON.stringify(flat)).toBe(true);
    expect(q(flat).depth).toBe(2);
    expect(q(flat).oldestAgeSeconds).toBeGreaterThanOrEqual(1);
    expect(q(flat).oldestAgeSeconds).toBeLessThan(60);
    expect(q(flat).consumers).toBeUndefined();
    expect(q(await run(dir, { source: 'directory', pattern: '*.edi', recursive: true })).depth).toBe(3);
    // One picked up, two dropped: 2 arrivals, 1 removal, although the depth rose by only 1.
    await rm(join(dir, 'b.edi'));
    await writeFile(join(dir, 'e.edi'), 'x');
    await writeFile(join(dir, 'f.edi'), 'x');
    await sleep(100);
    const next = await run(dir, { source: 'directory', pattern: '*.edi' }, memory);
    expect(q(next).depth).toBe(3);
    const ratio = (q(next).arrivalRate as number) / (q(next).drainRate as number);
    expect(ratio).toBeCloseTo(2, 5);
    // A file rewritten in place (a writer still appending, a touched heartbeat file) is neither an
    // arrival nor a removal: with nothing picked up, the folder stalls.
    await sleep(50);
    const opts = { source: 'directory', pattern: '*.edi', stalledAfter: '300ms' };
    await run(dir, opts, memory);
    for (let i = 0; i < 4; i++) {
      await sleep(120);
      await writeFile(join(dir, 'a.edi'), `x${i}`);
    }
    const stalled = await run(dir, opts, memory);
    expect(q(stalled).drainRate).toBe(0);
    expect(stalled.failure?.reason, JSON.stringify(stalled)).toBe('backlog');
  });

  it('a missing folder → queue_missing; the maxFiles cap → degraded partial', async () => {
    expect((await run(join(dir, 'nope'), { source: 'directory' })).failure?.reason).toBe('queue_missing');
    for (let i = 0; i < 20; i++) await writeFile(join(dir, `m${i}.xml`), 'x');
    const r = await run(dir, { source: 'directory', maxFiles: 10 });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('partial');
    expect(q(r).depth).toBeLessThanOrEqual(10);
  });

  it('durations in messages read as people say them', () => {
    expect([850, 4240, 42_000, 311_000, 600_000, 7_500_000, 7_200_000].map(humanDuration)).toEqual(['850ms', '4.2s', '42s', '5m 11s', '10m', '2h 05m', '2h']);
  });

  it('a read of the folder still hanging (a dead network mount) blocks the next run from starting another', async () => {
    // The hang itself cannot be made on loopback; the state it leaves in the check's memory can.
    const memory = new Map<string, unknown>([['queue.directory-pending', true]]);
    const r = await run(dir, { source: 'directory' }, memory);
    expect(r.failure).toMatchObject({ phase: 'fetch', reason: 'timeout' });
    expect(r.failure?.message).toContain('previous read of the folder has still not finished');
    // Once it returned, runs read again.
    const fresh = new Map<string, unknown>();
    expect((await run(dir, { source: 'directory' }, fresh)).ok).toBe(true);
    expect(fresh.has('queue.directory-pending')).toBe(false);
  });

  it('glob: *, ?, classes, ranges, negation, literal dots; reversed ranges match nothing; no backtracking blow-up', () => {
    const m = (g: string, n: string) => globMatcher(g)(n);
    expect(m('*.edi', 'x.edi')).toBe(true);
    expect(m('*.edi', 'x.ediX')).toBe(false);
    expect(m('*.edi', 'xedi')).toBe(false);
    expect(m('MSG??.xml', 'MSG01.xml')).toBe(true);
    expect(m('MSG??.xml', 'MSG1.xml')).toBe(false);
    expect(m('[!.]*', '.hidden')).toBe(false);
    expect(m('[!.]*', 'visible')).toBe(true);
    expect(m('[ab]*', 'b1')).toBe(true);
    expect(m('[0-9]*.xml', '7.xml')).toBe(true);
    expect(m('[0-9]*.xml', 'x.xml')).toBe(false);
    expect(m('[9-0].edi', '5.edi')).toBe(false);
    expect(m('a*b*c', 'aXbYc')).toBe(true);
    expect(m('a*b*c', 'aXbY')).toBe(false);
    expect(m('*', '')).toBe(true);
    expect(m('[unclosed', '[unclosed')).toBe(true);
    expect(m('*.edi', 'prøve.edi')).toBe(true);
    const t0 = performance.now();
    expect(m('*_*_*_*_*.edi', '_'.repeat(255))).toBe(false);
    expect(performance.now() - t0).toBeLessThan(100);
  });
});

// ---------------------------------------------------------------------------------------------
// Recorded answers (test/fixtures/queue/README.md): RabbitMQ 3.10 and ActiveMQ 5.17 recorded from
// the Debian packages; Artemis and Mirth constructed from their sources (marked so there).

const FIXTURES = fileURLToPath(new URL('../fixtures/queue/', import.meta.url));

/** A recorded answer: its body, and status and content type from the sibling .request.txt. */
function recorded(name: string): { status: number; type: string | undefined; body: string } {
  const meta = readFileSync(join(FIXTURES, `${name}.request.txt`), 'utf8');
  const file = ['json', 'body', 'html'].map((ext) => `${name}.${ext}`).find((f) => existsSync(join(FIXTURES, f)));
  const body = readFileSync(join(FIXTURES, file ?? `${name}.json`), 'utf8');
  const status = Number(/^status: (\d+)/m.exec(meta)?.[1] ?? 200);
  const type = /^\s*content-type: (.+)$/im.exec(meta)?.[1]?.trim();
  return { status, type, body };
}

async function replay(name: string): Promise<Api> {
  const r = recorded(name);
  return api((_, res) => {
    res.writeHead(r.status, r.type ? { 'content-type': r.type } : {});
    res.end(r.body);
  });
}

describe('queue: recorded broker answers', () => {
  const rabbit = { source: 'rabbitmq', queues: ['lab.results'], username: 'monitor', password: 'pw' };
  it.each([
    ['rabbitmq-queue-backlog-columns-dotted', rabbit, { depth: 10, consumers: 0, ready: 10, unacked: 0 }],
    ['rabbitmq-queue-after-node-restart-columns', rabbit, { depth: 62, consumers: 0 }],
    ['activemq-jolokia-bulk-read', { source: 'activemq', queues: ['HL7.IN', 'ORDERS.OUT'] }, { depth: 7, consumers: 1, unacked: 5 }],
    [
      'artemis-jolokia-bulk-read',
      { source: 'artemis', queues: ['HL7.IN', 'ORDERS.OUT'] },
      { depth: 342, consumers: 1, unacked: 10, oldestAgeSeconds: 754.213 },
    ],
    ['artemis-jolokia-read-queue-empty', { source: 'artemis', queues: ['ORDERS.OUT'] }, { depth: 0, consumers: 2 }],
    ['mirth-channels-statuses-single', { source: 'mirth' }, { queue: 'LAB_RESULTS_OUT/EPIC results (MLLP)', depth: 57, state: 'STARTED', errors: 3 }],
  ] as const)('%s reads', async (name, options, expected) => {
    const a = await replay(name);
    const r = await run(a.url, options);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(q(r)).toMatchObject(expected);
  });

  it('recorded RabbitMQ head_message_timestamp (seconds) becomes an age', async () => {
    const r = await run((await replay('rabbitmq-queue-backlog-columns-dotted')).url, rabbit);
    const head = (JSON.parse(recorded('rabbitmq-queue-backlog-columns-dotted').body) as { head_message_timestamp: number }).head_message_timestamp;
    expect(q(r).oldestAgeSeconds).toBeCloseTo(Date.now() / 1000 - head, -1);
  });

  it('Mirth: both channels of a two-channel list, an empty list ({"list":null})', async () => {
    const two = await run((await replay('mirth-channels-statuses-two')).url, { source: 'mirth' });
    expect(two.queues?.length).toBe(2);
    const none = await run((await replay('mirth-channels-statuses-empty')).url, { source: 'mirth' });
    expect(none.ok).toBe(true);
    expect(none.queues).toEqual([]);
  });

  it.each([
    ['rabbitmq-queue-just-created-columns', rabbit, 'protocol', 'no statistics'],
    ['rabbitmq-queue-404-missing-queue', rabbit, 'queue_missing', 'lab.results'],
    ['rabbitmq-queue-404-missing-vhost', rabbit, 'queue_missing', 'vhost'],
    ['rabbitmq-queue-401-no-auth', rabbit, 'auth', '401'],
    ['rabbitmq-queue-401-bad-password', rabbit, 'auth', '401'],
    ['rabbitmq-queue-monitoring-user-no-vhost-permission', rabbit, 'auth', '401'],
    ['activemq-jolokia-bulk-read-one-missing', { source: 'activemq', queues: ['HL7.IN', 'NO.SUCH.QUEUE'] }, 'queue_missing', 'NO.SUCH.QUEUE'],
    ['activemq-jolokia-read-no-origin', { source: 'activemq', queues: ['HL7.IN'] }, 'auth', 'Origin null is not allowed'],
    ['activemq-jolokia-401-no-auth', { source: 'activemq', queues: ['HL7.IN'] }, 'auth', '401'],
    ['artemis-jolokia-read-missing-mbean', { source: 'artemis', queues: ['NO.SUCH.QUEUE'] }, 'queue_missing', 'NO.SUCH.QUEUE'],
  ] as const)('%s fails with reason %s', async (name, options, reason, text) => {
    const r = await run((await replay(name)).url, options);
    expect(r.failure?.reason, JSON.stringify(r)).toBe(reason);
    expect(r.failure?.message).toContain(text);
  });
});

describe('queue: config', () => {
  const issues = (o: Record<string, unknown>) => {
    const r = KIND_OPTIONS.queue.safeParse(o);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  /** The least each source takes. */
  const minimal: Record<QueueSource, Record<string, unknown>> = {
    rabbitmq: { source: 'rabbitmq', queues: ['a'] },
    activemq: { source: 'activemq', queues: ['a'] },
    artemis: { source: 'artemis', queues: ['a'] },
    mirth: { source: 'mirth' },
    'http-json': { source: 'http-json', depthPath: '$.n' },
    directory: { source: 'directory' },
  };

  it('rejects combinations that cannot work, with the field named', () => {
    for (const source of ['rabbitmq', 'activemq', 'artemis'])
      expect(issues({ source })).toEqual([`queues: expected queues (the names to read) with source ${source}`]);
    expect(issues({ source: 'http-json' })).toEqual(['depthPath: expected depthPath (where the queue depth is in the JSON) with source http-json']);
    expect(issues({ ...minimal['http-json'], queues: ['a', 'b'] })).toEqual([
      'queues: expected at most one queue name with source http-json (one URL reads one queue)',
    ]);
    expect(issues({ ...minimal['http-json'], minConsumers: 1 })).toEqual(['minConsumers: expected consumersPath with minConsumers']);
    expect(issues({ ...minimal['http-json'], maxOldestAge: '5m' })).toEqual(['maxOldestAge: expected oldestAgePath with maxOldestAge']);
    expect(issues({ ...minimal['http-json'], consumersPath: '$.c', minConsumers: 1, oldestAgePath: '$.o', maxOldestAge: '5m' })).toEqual([]);
    for (const source of ['rabbitmq', 'activemq', 'artemis', 'mirth', 'http-json'] as const)
      expect(issues({ ...minimal[source], password: 'pw' }), source).toEqual(['username: expected username with password']);
    expect(issues({ source: 'kafka' })).toEqual(['source: expected a source: rabbitmq, activemq, artemis, mirth, http-json, directory']);
    expect(issues({})).toEqual(['source: expected a source: rabbitmq, activemq, artemis, mirth, http-json, directory']);
    expect(issues({ source: 'rabbitmq', queues: ['a'], stalledAfter: '10m', maxDepth: 100, minConsumers: 1 })).toEqual([]);
    expect(issues({ source: 'rabbitmq', queues: ['a', 'a'] })).toEqual(['queues: expected each queue once']);
    expect(issues({ source: 'rabbitmq', queues: ['a'], growth: { window: '25h' } })[0]).toMatch(/^growth.window: expected a window of at most 24h/);
    expect(issues({ source: 'rabbitmq', queues: ['a'], growth: false })).toEqual([]);
  });

  it('each source takes its own keys, with their defaults', () => {
    for (const [source, o] of Object.entries(minimal)) expect(issues(o), source).toEqual([]);
    expect(KIND_OPTIONS.queue.parse(minimal.rabbitmq)).toEqual({
      source: 'rabbitmq',
      queues: ['a'],
      vhost: '/',
      maxBodySize: 4 * 1024 * 1024,
      growth: { window: 900_000, minIncrease: 10 },
    });
    expect(KIND_OPTIONS.queue.parse(minimal.artemis)).toMatchObject({ routingType: 'anycast' });
    expect(KIND_OPTIONS.queue.parse(minimal.mirth)).toMatchObject({ runningStates: ['STARTED'] });
    expect(KIND_OPTIONS.queue.parse(minimal['http-json'])).toMatchObject({ oldestAgeUnit: 's' });
    expect(KIND_OPTIONS.queue.parse(minimal.directory)).toEqual({
      source: 'directory',
      pattern: '*',
      recursive: false,
      maxFiles: 100_000,
      growth: { window: 900_000, minIncrease: 10 },
    });
  });

  it.each([
    ['rabbitmq', 'jolokiaPath', '/j/'],
    ['rabbitmq', 'runningStates', ['STARTED']],
    ['rabbitmq', 'depthPath', '$.n'],
    ['rabbitmq', 'pattern', '*.edi'],
    ['activemq', 'vhost', '/'],
    ['activemq', 'address', 'a'],
    ['activemq', 'maxOldestAge', '5m'],
    ['artemis', 'vhost', '/'],
    ['artemis', 'consumersPath', '$.c'],
    ['mirth', 'broker', 'b'],
    ['mirth', 'minConsumers', 1],
    ['mirth', 'maxOldestAge', '5m'],
    ['http-json', 'routingType', 'anycast'],
    ['http-json', 'recursive', true],
    ['directory', 'queues', ['inbox']],
    ['directory', 'minConsumers', 1],
    ['directory', 'username', 'monitor'],
    ['directory', 'tls', { caFile: '/ca.pem' }],
    ['directory', 'maxBodySize', '1MiB'],
  ] as const)('source %s refuses %s, a key of other sources', (source, key, value) => {
    expect(issues({ ...minimal[source], [key]: value })).toEqual([`: Unrecognized key: "${key}"`]);
  });
});
