// The sandbox's integration broker (incident 5, Sundhedsplatformen: orders and results to and
// from the lab stopped and "there is still queueing"): a simulated RabbitMQ whose management
// HTTP API (the subset the queue probe reads) is served on loopback. There is no AMQP: the
// queues are a model, computed lazily from elapsed time on each request (no timers), and the
// same clock always gives the same numbers.
//
// vhost "/" holds two queues: `orders.out` (orders from the EHR to the lab) and `lab.results`
// (results back from the lab), each with one consumer. Messages arrive at a steady rate; message
// k arrives at start + k/rate and carries that second as its AMQP timestamp. The consumer takes
// up to `prefetch` messages (unacknowledged) and works through them one at a time at its own
// rate, faster than they arrive, so a queue normally holds 0-2 messages. Only counters are kept
// (published, acknowledged, unacknowledged, delivered) and a few samples for the rates: memory
// does not grow with the number of messages.
//
// API (HTTP Basic, user `vakt-monitor`, password from sandbox/secrets/queue-password):
//   GET /api/overview                     totals
//   GET /api/queues, /api/queues/%2F      every queue
//   GET /api/queues/%2F/<name>            one queue; `?columns=a,b.c` picks fields as RabbitMQ does
// with RabbitMQ's answers: 401 {"error":"not_authorised","reason":"Login failed"} without the
// right credentials, 404 {"error":"Object Not Found","reason":"Not Found"} for a queue or vhost
// that does not exist, message_stats only once something happened, head_message_timestamp
// (seconds) of the oldest ready message, null when none is ready.
//
// Fault switch (`mode`), acting on the consumer of `lab.results` (orders.out keeps flowing) or on
// the API:
//   ok          the consumer drains at its normal rate (5/s, results arrive at 2/s)
//   stall       the consumer stays attached (consumers 1) but stops acknowledging: it holds
//               `prefetch` (10) messages unacknowledged, nothing more is delivered or drained,
//               depth and the oldest message's age grow ("still queueing")
//   noconsumer  the consumer is gone (consumers 0); its unacknowledged messages go back to ready
//   slow        the consumer drains at 1/s, below the arrival rate: the queue grows slowly
//   down        the management API stops listening: connections are refused (the queues go on)
//   html        the API answers 200 with an HTML sign-in page (a misrouted proxy)
// Changing the mode first brings the model up to now under the old mode; a backlog left by a
// fault drains at the consumer's normal rate once it is `ok` again.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { listenOn } from './tcp-service.js';

export const QUEUE_MODES = ['ok', 'stall', 'noconsumer', 'slow', 'down', 'html'] as const;
export type QueueMode = (typeof QUEUE_MODES)[number];
type ConsumerMode = 'ok' | 'stall' | 'noconsumer' | 'slow';

/** The monitoring account of the management API. */
export const SANDBOX_QUEUE_USER = 'vakt-monitor';
/** The queue the fault switch acts on. */
export const FAULTY_QUEUE = 'lab.results';
/** Messages a consumer holds unacknowledged at most (its prefetch count). */
export const DEFAULT_PREFETCH = 10;
/** How fast the `lab.results` consumer drains in `slow` mode (messages per second). */
export const DEFAULT_SLOW_DRAIN = 1;

export interface QueueSpec {
  name: string;
  /** Messages published per second. */
  arrivalPerSecond: number;
  /** Messages the consumer acknowledges per second at most. */
  drainPerSecond: number;
}

export const DEFAULT_QUEUES: readonly QueueSpec[] = [
  { name: 'orders.out', arrivalPerSecond: 1, drainPerSecond: 5 },
  { name: FAULTY_QUEUE, arrivalPerSecond: 2, drainPerSecond: 5 },
];

const VHOST = '/';
const NODE = 'rabbit@sandbox';
/** RabbitMQ's rates are over the last few seconds. */
const RATE_WINDOW_MS = 5000;
const MAX_SAMPLES = 32;

/** One queue's state at a moment, as the management API reports it. */
export interface QueueSnapshot {
  name: string;
  consumers: number;
  messages: number;
  ready: number;
  unacked: number;
  /** Epoch seconds of the oldest ready message, if any. */
  headTimestamp: number | undefined;
  published: number;
  delivered: number;
  acked: number;
  publishRate: number;
  deliverRate: number;
}

/**
 * One queue with one consumer, as a deterministic model: counters brought up to a given time on
 * demand. Message k (from 1) arrives at start + k × period; the consumer is handed messages as
 * they arrive (at most `prefetch` unacknowledged) and acknowledges one every 1/drain seconds.
 */
export class SimulatedQueue {
  readonly name: string;
  private readonly period: number;
  private readonly drainPerSecond: number;
  private last: number;
  private acked = 0;
  private unacked = 0;
  private delivered = 0;
  /** When the consumer started on the message it is working on. */
  private serviceStart: number;
  private consumer: ConsumerMode = 'ok';
  private readonly samples: { t: number; delivered: number }[] = [];

  constructor(
    spec: QueueSpec,
    private readonly start: number,
    private readonly prefetch = DEFAULT_PREFETCH,
    private readonly slowPerSecond = DEFAULT_SLOW_DRAIN,
  ) {
    for (const [what, v] of [
      ['arrivalPerSecond', spec.arrivalPerSecond],
      ['drainPerSecond', spec.drainPerSecond],
      ['slow drain', slowPerSecond],
      ['prefetch', prefetch],
    ] as const) {
      if (!(Number.isFinite(v) && v > 0)) throw new Error(`queue ${spec.name}: ${what} must be a positive number`);
    }
    this.name = spec.name;
    this.period = 1000 / spec.arrivalPerSecond;
    this.drainPerSecond = spec.drainPerSecond;
    this.last = start;
    this.serviceStart = start;
  }

  get mode(): ConsumerMode {
    return this.consumer;
  }

  /** Messages published up to `t` (ms). */
  private published(t: number): number {
    return t <= this.start ? 0 : Math.floor((t - this.start) / this.period + 1e-9);
  }

  /** When message k (from 1) arrived (ms). */
  private arrival(k: number): number {
    return this.start + k * this.period;
  }

  /** Hands the consumer what has arrived by `at`, up to its prefetch. */
  private deliver(at: number): void {
    const room = Math.min(this.published(at) - this.acked, this.prefetch);
    if (room > this.unacked) {
      if (this.unacked === 0) this.serviceStart = at;
      this.delivered += room - this.unacked;
      this.unacked = room;
    }
  }

  /** Brings the counters up to `to` (ms) under the current consumer mode. */
  advance(to: number): void {
    if (to <= this.last) return;
    const mode = this.consumer;
    if (mode === 'ok' || mode === 'slow') {
      const service = 1000 / (mode === 'slow' ? this.slowPerSecond : this.drainPerSecond);
      let cur = this.last;
      for (;;) {
        this.deliver(cur);
        if (this.unacked === 0) {
          // Idle and empty. When each message is done before the next arrives, that stays so: jump.
          if (service < this.period) {
            const p = this.published(to);
            if (p > this.acked) {
              const lastArrival = this.arrival(p);
              const busy = lastArrival + service > to;
              this.delivered += p - this.acked;
              this.acked = busy ? p - 1 : p;
              this.unacked = busy ? 1 : 0;
              this.serviceStart = lastArrival;
            }
            break;
          }
          const next = this.arrival(this.acked + 1);
          if (next > to) break;
          cur = next;
          continue;
        }
        const end = this.serviceStart + service;
        if (end > to) break;
        this.acked++;
        this.unacked--;
        this.serviceStart = end;
        cur = end;
      }
    }
    // stall: messages are still handed over until the prefetch is full; noconsumer: nothing.
    if (mode !== 'noconsumer') this.deliver(to);
    this.last = to;
    // For the delivery rate: keep the samples of the last window and the latest one before it.
    this.samples.push({ t: to, delivered: this.delivered });
    while (this.samples.length > MAX_SAMPLES || (this.samples.length > 2 && (this.samples[1] as { t: number }).t <= to - RATE_WINDOW_MS)) this.samples.shift();
  }

  /** Changes the consumer's behaviour at `at` (after bringing the model up to then). */
  setMode(mode: ConsumerMode, at: number): void {
    this.advance(at);
    if (mode === this.consumer) return;
    // A consumer that goes away returns its unacknowledged messages to the queue.
    if (mode === 'noconsumer') this.unacked = 0;
    // A consumer that resumes starts on the message in hand afresh.
    this.serviceStart = Math.max(at, this.last);
    this.consumer = mode;
    if (mode !== 'noconsumer') this.deliver(this.last);
  }

  /** The queue at `at` (ms), as the management API reports it. */
  snapshot(at: number): QueueSnapshot {
    // Stopping at the start of the rate window first leaves a sample there (the model is the same either way).
    this.advance(at - RATE_WINDOW_MS);
    this.advance(at);
    const t = Math.max(at, this.last);
    const published = this.published(t);
    const messages = published - this.acked;
    const ready = messages - this.unacked;
    // Rates over the last 5 s, as RabbitMQ's: publish from the model, deliveries from the samples.
    const from = Math.max(this.start, t - RATE_WINDOW_MS);
    const publishRate = t > from ? (published - this.published(from)) / ((t - from) / 1000) : 0;
    // The latest sample at least the window old, else the oldest there is.
    let ref = this.samples[0];
    for (const s of this.samples) if (s.t <= t - RATE_WINDOW_MS) ref = s;
    const deliverRate = ref && t > ref.t ? (this.delivered - ref.delivered) / ((t - ref.t) / 1000) : 0;
    return {
      name: this.name,
      consumers: this.consumer === 'noconsumer' ? 0 : 1,
      messages,
      ready,
      unacked: this.unacked,
      headTimestamp: ready > 0 ? Math.floor(this.arrival(this.acked + this.unacked + 1) / 1000) : undefined,
      published,
      delivered: this.delivered,
      acked: this.acked,
      publishRate: round(publishRate),
      deliverRate: round(deliverRate),
    };
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** A queue as GET /api/queues/{vhost}/{name} shows it (before `columns`). */
function queueJson(q: QueueSnapshot): Record<string, unknown> {
  const stats: Record<string, unknown> = {};
  if (q.published > 0) Object.assign(stats, { publish: q.published, publish_details: { rate: q.publishRate } });
  if (q.delivered > 0) Object.assign(stats, { deliver_get: q.delivered, deliver_get_details: { rate: q.deliverRate } });
  if (q.acked > 0) Object.assign(stats, { ack: q.acked });
  return {
    name: q.name,
    vhost: VHOST,
    type: 'classic',
    durable: true,
    auto_delete: false,
    exclusive: false,
    arguments: {},
    node: NODE,
    state: 'running',
    consumers: q.consumers,
    messages: q.messages,
    messages_ready: q.ready,
    messages_unacknowledged: q.unacked,
    head_message_timestamp: q.headTimestamp ?? null,
    ...(Object.keys(stats).length > 0 ? { message_stats: stats } : {}),
  };
}

/** RabbitMQ's `columns`: only the listed fields, dotted names reaching into nested objects. */
function pickColumns(obj: Record<string, unknown>, columns: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const col of columns) {
    const path = col.split('.');
    let v: unknown = obj;
    for (const k of path) v = v !== null && typeof v === 'object' && Object.hasOwn(v, k) ? (v as Record<string, unknown>)[k] : undefined;
    if (v === undefined) continue;
    let o = out;
    for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
    o[path[path.length - 1] as string] = v;
  }
  return out;
}

const LOGIN_PAGE = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in - Region Sandbox</title></head>
<body>
<h1>Region Sandbox single sign-on</h1>
<form method="post" action="/sso/login">
<label>User name <input name="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in</button>
</form>
</body>
</html>
`;

export interface SandboxBrokerOptions {
  host: string;
  port: number;
  password: string;
  user?: string;
  queues?: readonly QueueSpec[];
  prefetch?: number;
  /** Drain rate of the faulty queue's consumer in `slow` mode (per second). */
  slowDrainPerSecond?: number;
  /** The model's clock (epoch ms); Date.now by default. Message timestamps come from it. */
  now?: () => number;
}

/** The simulated broker: the queue model and its management API, with the fault switch. */
export class SandboxBroker {
  mode: QueueMode = 'ok';
  readonly queues: ReadonlyMap<string, SimulatedQueue>;
  private readonly host: string;
  private port: number;
  private readonly user: string;
  private readonly passwordHash: Buffer;
  private readonly now: () => number;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(opts: SandboxBrokerOptions) {
    this.host = opts.host;
    this.port = opts.port;
    this.user = opts.user ?? SANDBOX_QUEUE_USER;
    this.passwordHash = sha256(opts.password);
    this.now = opts.now ?? Date.now;
    const start = this.now();
    this.queues = new Map((opts.queues ?? DEFAULT_QUEUES).map((s) => [s.name, new SimulatedQueue(s, start, opts.prefetch, opts.slowDrainPerSecond)]));
  }

  get address(): { host: string; port: number } {
    return { host: this.host, port: this.port };
  }

  /** The management API's base URL (a queue check's target). */
  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /** Every queue now, in order. */
  snapshots(): QueueSnapshot[] {
    const at = this.now();
    return [...this.queues.values()].map((q) => q.snapshot(at));
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    this.port = await listenOn(server, this.port, this.host);
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Sets the fault: the faulty queue's consumer follows stall/noconsumer/slow; `down` stops the API listening. */
  async setMode(mode: QueueMode): Promise<void> {
    const consumer: ConsumerMode = mode === 'stall' || mode === 'noconsumer' || mode === 'slow' ? mode : 'ok';
    this.queues.get(FAULTY_QUEUE)?.setMode(consumer, this.now());
    this.mode = mode;
    if (mode === 'down') await this.stop();
    else await this.start();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-cache', ...headers });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
    };
    if (this.mode === 'html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : LOGIN_PAGE);
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://sandbox');
    } catch {
      send(400, { error: 'bad_request', reason: 'Invalid URL' });
      return;
    }
    if (!url.pathname.startsWith('/api/')) {
      send(404, { error: 'Object Not Found', reason: 'Not Found' });
      return;
    }
    if (!this.authorised(req.headers.authorization)) {
      send(401, { error: 'not_authorised', reason: 'Login failed' }, { 'www-authenticate': 'Basic realm="RabbitMQ Management"' });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, { error: 'Method Not Allowed', reason: 'the sandbox broker is read-only' }, { allow: 'GET, HEAD' });
      return;
    }
    const columns = url.searchParams.get('columns')?.split(',').filter(Boolean).slice(0, 100);
    const shape = (q: QueueSnapshot) => (columns ? pickColumns(queueJson(q), columns) : queueJson(q));
    let parts: string[];
    try {
      parts = url.pathname
        .split('/')
        .filter(Boolean)
        .map((p) => decodeURIComponent(p));
    } catch {
      send(404, { error: 'Object Not Found', reason: 'Not Found' });
      return;
    }
    const [, what, vhost, name] = parts;
    if (what === 'overview' && parts.length === 2) {
      const all = this.snapshots();
      const sum = (f: (q: QueueSnapshot) => number) => all.reduce((n, q) => n + f(q), 0);
      send(200, {
        management_version: '3.13.7',
        rabbitmq_version: '3.13.7',
        product_name: 'RabbitMQ (vakt sandbox)',
        cluster_name: NODE,
        node: NODE,
        queue_totals: { messages: sum((q) => q.messages), messages_ready: sum((q) => q.ready), messages_unacknowledged: sum((q) => q.unacked) },
        object_totals: { queues: all.length, consumers: sum((q) => q.consumers) },
      });
      return;
    }
    if (what === 'queues' && parts.length <= 4) {
      if (vhost !== undefined && vhost !== VHOST) {
        send(404, { error: 'Object Not Found', reason: 'Not Found' });
        return;
      }
      if (name === undefined) {
        send(200, this.snapshots().map(shape));
        return;
      }
      const q = this.queues.get(name);
      if (!q) {
        send(404, { error: 'Object Not Found', reason: 'Not Found' });
        return;
      }
      send(200, shape(q.snapshot(this.now())));
      return;
    }
    send(404, { error: 'Object Not Found', reason: 'Not Found' });
  }

  private authorised(header: string | undefined): boolean {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
    if (!m) return false;
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const userOk = decoded.slice(0, colon) === this.user;
    const passwordOk = timingSafeEqual(sha256(decoded.slice(colon + 1)), this.passwordHash);
    return userOk && passwordOk;
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
