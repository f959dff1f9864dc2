// The sandbox's integration broker, AMQP side: a small AMQP 0-9-1 server on loopback, written on
// node:net from the specification (and RabbitMQ's errata for field-table types), so the demo's
// amqp canary has a broker on any machine (RabbitMQ cannot be assumed). It speaks what a client
// like the canary needs and answers as RabbitMQ does (reply codes and texts):
//   connection  the protocol header (another one is answered with ours, then the connection
//               closes), start / start-ok with SASL PLAIN only, tune (frame_max 131072, channel_max
//               8, heartbeat 60 s, lower values accepted), open of virtual host "/" only (another
//               is 530 NOT_ALLOWED), close, blocked / unblocked, heartbeats both ways.
//               A refused login is connection.close 403 ACCESS_REFUSED for a client that announces
//               the capability authentication_failure_close, a closed socket for one that does not.
//   channel     open, close, flow; confirm.select (publisher confirms: basic.ack, basic.nack when
//               the broker has no room left).
//   queue       declare: passive for any queue; a server-named queue (amq.gen-...) is created,
//               with `x-message-ttl` honoured; any other new name is 403 ACCESS_REFUSED (the
//               canary user may configure only server-named queues, as the docs advise).
//   basic       qos (prefetch count, per consumer), consume, cancel, publish to the default
//               exchange (another exchange is 404 NOT_FOUND; a mandatory message that routes
//               nowhere comes back with basic.return 312 NO_ROUTE), deliver, ack, nack, reject,
//               recover. Per-message `expiration` and the queue's TTL expire messages at the head.
// Anything else is 540 NOT_IMPLEMENTED. Frames over frame_max (4096 bytes before tuning), a frame
// without its end octet, malformed arguments or tables, and frames out of order close the
// connection with the reply code the specification names; the broker never crashes on input.
// What it holds is bounded: one frame per connection, MAX_BODY per message, MAX_HELD_BYTES of
// messages in all queues together (beyond, publishes are nacked), MAX_QUEUES_PER_CONNECTION
// server-named queues per connection (they live as long as it), connections in number, and a
// client that does not read its deliveries (over MAX_WRITE_BACKLOG unsent) is disconnected.
//
// Virtual host "/" holds one durable queue, `vakt.canary`, dedicated to the canary. The one user
// is `vakt-canary`, its password from sandbox/secrets/canary-password.
//
// Fault switches (`mode`):
//   ok       messages are confirmed and delivered at once
//   slow     each message reaches its queue `slowMs` (3 s by default) after its confirm: a
//            broker under load (flow control, paging to disk); the canary's transit is slow
//   stall    messages are confirmed, stay in their queue and are never delivered: a stuck queue
//            process (consumers stay attached). Back to ok, what waited is delivered.
//   blocked  a memory alarm: a connection that publishes is sent connection.blocked ("low on
//            memory") and is not read any further, so its publish is never confirmed; leaving
//            the mode sends connection.unblocked and carries on
//   auth     every login is refused (403 ACCESS_REFUSED), the right password too
//   noqueue  `vakt.canary` is deleted (its consumers get basic.cancel, its messages are gone): a
//            passive declare is 404 NOT_FOUND. Leaving the mode declares it again, empty.
//   down     the broker stops listening: connections are refused
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { TcpService } from './tcp-service.js';

export const AMQP_MODES = ['ok', 'slow', 'stall', 'blocked', 'auth', 'noqueue', 'down'] as const;
export type AmqpMode = (typeof AMQP_MODES)[number];

/** The canary's user. */
export const SANDBOX_AMQP_USER = 'vakt-canary';
/** The one virtual host. */
export const SANDBOX_AMQP_VHOST = '/';
/** The durable queue dedicated to the canary. */
export const CANARY_QUEUE = 'vakt.canary';
/** How late a `slow` message reaches its queue unless told otherwise. */
export const DEFAULT_AMQP_SLOW_MS = 3000;
/** The largest frame (header and end octet included) the broker offers and reads once tuned: RabbitMQ's default. */
export const FRAME_MAX = 131_072;
/** The largest frame before tuning (the specification's minimum frame_max). */
export const FRAME_MIN = 4096;
/** The largest message body the broker takes (RabbitMQ's max_message_size, scaled to a sandbox). */
export const MAX_BODY = 64 * 1024;
/** Bytes of messages (bodies and properties) held in all queues and unacknowledged, together. */
export const MAX_HELD_BYTES = 4 * 1024 * 1024;
const CHANNEL_MAX = 8;
const HEARTBEAT_S = 60;
const MAX_CONNECTIONS = 64;
const MAX_QUEUES_PER_CONNECTION = 4;
const MAX_WRITE_BACKLOG = 1024 * 1024;
const IDLE_MS = 60_000;
/** How long the broker waits for close-ok after closing a connection itself. */
const CLOSE_WAIT_MS = 1000;
const MAX_TABLE_DEPTH = 8;
const BLOCKED_REASON = 'low on memory';

const PROTOCOL_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]);
const FRAME_END = 0xce;
const FRAME = { method: 1, header: 2, body: 3, heartbeat: 8 } as const;

/** AMQP 0-9-1 reply codes the broker sends. */
export const REPLY = {
  success: 200,
  noRoute: 312,
  accessRefused: 403,
  notFound: 404,
  resourceLocked: 405,
  preconditionFailed: 406,
  frameError: 501,
  syntaxError: 502,
  commandInvalid: 503,
  channelError: 504,
  unexpectedFrame: 505,
  notAllowed: 530,
  notImplemented: 540,
} as const;
const REPLY_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  312: 'NO_ROUTE',
  403: 'ACCESS_REFUSED',
  404: 'NOT_FOUND',
  405: 'RESOURCE_LOCKED',
  406: 'PRECONDITION_FAILED',
  501: 'FRAME_ERROR',
  502: 'SYNTAX_ERROR',
  503: 'COMMAND_INVALID',
  504: 'CHANNEL_ERROR',
  505: 'UNEXPECTED_FRAME',
  530: 'NOT_ALLOWED',
  540: 'NOT_IMPLEMENTED',
};

/** A method's id: class id in the high 16 bits, method id in the low 16. */
const m = (classId: number, methodId: number) => classId * 0x10000 + methodId;
const METHOD = {
  connectionStart: m(10, 10),
  connectionStartOk: m(10, 11),
  connectionTune: m(10, 30),
  connectionTuneOk: m(10, 31),
  connectionOpen: m(10, 40),
  connectionOpenOk: m(10, 41),
  connectionClose: m(10, 50),
  connectionCloseOk: m(10, 51),
  connectionBlocked: m(10, 60),
  connectionUnblocked: m(10, 61),
  channelOpen: m(20, 10),
  channelOpenOk: m(20, 11),
  channelFlow: m(20, 20),
  channelFlowOk: m(20, 21),
  channelClose: m(20, 40),
  channelCloseOk: m(20, 41),
  queueDeclare: m(50, 10),
  queueDeclareOk: m(50, 11),
  basicQos: m(60, 10),
  basicQosOk: m(60, 11),
  basicConsume: m(60, 20),
  basicConsumeOk: m(60, 21),
  basicCancel: m(60, 30),
  basicCancelOk: m(60, 31),
  basicPublish: m(60, 40),
  basicReturn: m(60, 50),
  basicDeliver: m(60, 60),
  basicAck: m(60, 80),
  basicReject: m(60, 90),
  basicRecover: m(60, 110),
  basicRecoverOk: m(60, 111),
  basicNack: m(60, 120),
  confirmSelect: m(85, 10),
  confirmSelectOk: m(85, 11),
} as const;
const BASIC_CLASS = 60;

// ---------------------------------------------------------------------------------------------
// The wire format (specification section 4.2, field tables as in RabbitMQ's errata).

/** Input the broker cannot take: the connection is closed with `code` (a connection exception). */
export class AmqpWireError extends Error {
  override readonly name = 'AmqpWireError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A refusal that closes one channel (a channel exception), not the connection. */
class AmqpChannelError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Frame {
  type: number;
  channel: number;
  payload: Buffer;
}

/**
 * Cuts a byte stream into frames. It holds at most one incomplete frame (and the chunk that
 * brought it): a frame header announcing more than `limit` bytes is refused as soon as it is
 * read, before its payload is waited for.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    /** The largest frame, header and end octet included. */
    public limit: number,
  ) {}

  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** The next complete frame, or undefined until one is. */
  next(): Frame | undefined {
    if (this.buf.length < 7) return undefined;
    const size = this.buf.readUInt32BE(3);
    if (size + 8 > this.limit) throw new AmqpWireError(REPLY.frameError, `frame of ${size + 8} bytes is larger than frame_max ${this.limit}`);
    if (this.buf.length < size + 8) return undefined;
    if (this.buf[size + 7] !== FRAME_END) throw new AmqpWireError(REPLY.frameError, 'frame does not end with the frame-end octet');
    const frame = { type: this.buf[0] as number, channel: this.buf.readUInt16BE(1), payload: this.buf.subarray(7, 7 + size) };
    this.buf = this.buf.subarray(size + 8);
    return frame;
  }
}

/** A field-table value as decoded. */
export type FieldValue = boolean | number | bigint | string | Buffer | null | FieldValue[] | FieldTable;
export interface FieldTable {
  [key: string]: FieldValue;
}

/** Reads method arguments and properties; anything that does not fit is a SYNTAX_ERROR. */
export class ArgReader {
  constructor(
    private readonly b: Buffer,
    private at = 0,
  ) {}

  get done(): boolean {
    return this.at === this.b.length;
  }

  private need(n: number): number {
    if (this.at + n > this.b.length) throw new AmqpWireError(REPLY.syntaxError, 'truncated arguments');
    const at = this.at;
    this.at += n;
    return at;
  }

  octet(): number {
    return this.b.readUInt8(this.need(1));
  }
  short(): number {
    return this.b.readUInt16BE(this.need(2));
  }
  long(): number {
    return this.b.readUInt32BE(this.need(4));
  }
  longlong(): bigint {
    return this.b.readBigUInt64BE(this.need(8));
  }
  /** Consecutive bit arguments, packed into one octet (never more than 8 in a method). */
  bits(): (i: number) => boolean {
    const o = this.octet();
    return (i) => (o & (1 << i)) !== 0;
  }
  bytes(n: number): Buffer {
    const at = this.need(n);
    return this.b.subarray(at, at + n);
  }
  shortstr(): string {
    return this.bytes(this.octet()).toString('utf8');
  }
  longstr(): Buffer {
    return this.bytes(this.long());
  }
  table(depth = 0): FieldTable {
    if (depth >= MAX_TABLE_DEPTH) throw new AmqpWireError(REPLY.syntaxError, 'field table nested too deep');
    const r = new ArgReader(this.longstr());
    const t: FieldTable = {};
    while (!r.done) {
      const key = r.shortstr();
      // Own keys only: "__proto__" from a client must stay data.
      Object.defineProperty(t, key, { value: r.value(depth), enumerable: true, writable: true, configurable: true });
    }
    return t;
  }
  private value(depth: number): FieldValue {
    const type = String.fromCharCode(this.octet());
    switch (type) {
      case 't':
        return this.octet() !== 0;
      case 'b':
        return this.b.readInt8(this.need(1));
      case 'B':
        return this.octet();
      case 's':
        return this.b.readInt16BE(this.need(2));
      case 'u':
        return this.short();
      case 'I':
        return this.b.readInt32BE(this.need(4));
      case 'i':
        return this.long();
      case 'l':
        return this.b.readBigInt64BE(this.need(8));
      case 'f':
        return this.b.readFloatBE(this.need(4));
      case 'd':
        return this.b.readDoubleBE(this.need(8));
      case 'D': {
        const scale = this.octet();
        return this.b.readInt32BE(this.need(4)) / 10 ** scale;
      }
      case 'S':
        return this.longstr().toString('utf8');
      case 'x':
        return Buffer.from(this.longstr());
      case 'T':
        return this.longlong();
      case 'V':
        return null;
      case 'F':
        return this.table(depth + 1);
      case 'A': {
        if (depth + 1 >= MAX_TABLE_DEPTH) throw new AmqpWireError(REPLY.syntaxError, 'field array nested too deep');
        const r = new ArgReader(this.longstr());
        const items: FieldValue[] = [];
        while (!r.done) items.push(r.value(depth + 1));
        return items;
      }
      default:
        throw new AmqpWireError(REPLY.syntaxError, `unknown field type 0x${type.charCodeAt(0).toString(16)}`);
    }
  }
}

/** Builds method arguments. */
class ArgWriter {
  private readonly parts: Buffer[] = [];

  octet(n: number): this {
    this.parts.push(Buffer.of(n));
    return this;
  }
  short(n: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    this.parts.push(b);
    return this;
  }
  long(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    this.parts.push(b);
    return this;
  }
  longlong(n: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    this.parts.push(b);
    return this;
  }
  bits(...flags: boolean[]): this {
    return this.octet(flags.reduce((o, f, i) => (f ? o | (1 << i) : o), 0));
  }
  shortstr(s: string): this {
    let b = Buffer.from(s, 'utf8');
    if (b.length > 255) b = b.subarray(0, 255);
    return this.octet(b.length).raw(b);
  }
  longstr(s: string | Buffer): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    return this.long(b.length).raw(b);
  }
  /** A table of strings, booleans, 32-bit integers and nested tables: what the broker itself sends. */
  table(t: Readonly<Record<string, string | boolean | number | Record<string, string | boolean | number>>>): this {
    const w = new ArgWriter();
    for (const [key, v] of Object.entries(t)) {
      w.shortstr(key);
      if (typeof v === 'string') w.octet(0x53).longstr(v);
      else if (typeof v === 'boolean') w.octet(0x74).octet(v ? 1 : 0);
      else if (typeof v === 'number') w.octet(0x49).long(v >>> 0);
      else w.octet(0x46).table(v);
    }
    return this.longstr(w.build());
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function encodeFrame(type: number, channel: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(payload.length + 8);
  f.writeUInt8(type, 0);
  f.writeUInt16BE(channel, 1);
  f.writeUInt32BE(payload.length, 3);
  payload.copy(f, 7);
  f.writeUInt8(FRAME_END, payload.length + 7);
  return f;
}

export function encodeMethod(channel: number, method: number, args: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(method);
  return encodeFrame(FRAME.method, channel, Buffer.concat([head, args]));
}

/** What the broker reads from a message's basic properties (the bytes themselves go out unchanged). */
interface BasicProperties {
  /** Per-message TTL in ms (`expiration`), if set. */
  expirationMs: number | undefined;
}

/** Reads (and so validates) the property list of a basic content header: flags, then the properties they announce. */
export function readBasicProperties(b: Buffer): BasicProperties {
  const r = new ArgReader(b);
  const flags = r.short();
  // Bit 0 continues the flags: basic has 14 properties, so it never does; bit 1 is unused.
  if ((flags & 0b11) !== 0) throw new AmqpWireError(REPLY.syntaxError, 'invalid property flags');
  const has = (bit: number) => (flags & (1 << bit)) !== 0;
  let expiration: string | undefined;
  if (has(15)) r.shortstr(); // content-type
  if (has(14)) r.shortstr(); // content-encoding
  if (has(13)) r.table(); // headers
  if (has(12)) r.octet(); // delivery-mode
  if (has(11)) r.octet(); // priority
  if (has(10)) r.shortstr(); // correlation-id
  if (has(9)) r.shortstr(); // reply-to
  if (has(8)) expiration = r.shortstr();
  if (has(7)) r.shortstr(); // message-id
  if (has(6)) r.longlong(); // timestamp
  if (has(5)) r.shortstr(); // type
  if (has(4)) r.shortstr(); // user-id
  if (has(3)) r.shortstr(); // app-id
  if (has(2)) r.shortstr(); // cluster-id
  if (!r.done) throw new AmqpWireError(REPLY.syntaxError, 'bytes after the last property');
  if (expiration !== undefined && !/^\d{1,10}$/.test(expiration)) throw new AmqpChannelError(REPLY.preconditionFailed, `invalid expiration '${expiration}'`);
  return { expirationMs: expiration === undefined ? undefined : Number(expiration) };
}

const replyText = (code: number, text: string) => `${REPLY_TEXT[code] ?? 'ERROR'} - ${text}`;
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

// ---------------------------------------------------------------------------------------------
// The broker.

interface Message {
  exchange: string;
  routingKey: string;
  /** The content header's property flags and list, as published. */
  properties: Buffer;
  body: Buffer;
  redelivered: boolean;
  /** performance.now() after which the message is dead, if it has a TTL. */
  expiresAt: number | undefined;
  /** Bytes it counts against MAX_HELD_BYTES. */
  size: number;
}

interface Queue {
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  /** The connection that declared a server-named queue: it lives as long as that connection. */
  owner: Connection | undefined;
  /** x-message-ttl in ms. */
  ttlMs: number | undefined;
  ready: Message[];
  consumers: Consumer[];
  /** Round-robin position among the consumers. */
  next: number;
  hadConsumer: boolean;
}

interface Consumer {
  tag: string;
  queue: Queue;
  channel: Channel;
  noAck: boolean;
}

interface Publishing {
  exchange: string;
  routingKey: string;
  mandatory: boolean;
  bodySize?: number;
  properties?: Buffer;
  expirationMs?: number | undefined;
  chunks: Buffer[];
  received: number;
}

interface Channel {
  id: number;
  connection: Connection;
  /** `closing`: the broker closed it and discards everything until close-ok. */
  state: 'open' | 'closing';
  confirm: boolean;
  publishSeq: number;
  prefetch: number;
  nextDeliveryTag: number;
  unacked: Map<number, { message: Message; queue: Queue }>;
  consumers: Map<string, Consumer>;
  publishing: Publishing | undefined;
}

export interface AmqpBrokerOptions {
  host: string;
  port: number;
  /** The password of `vakt-canary`. */
  password: string;
  slowMs?: number;
}

/** The simulated broker (AMQP 0-9-1 over TCP) with its fault switch. */
export class SandboxAmqpBroker extends TcpService<AmqpMode> {
  /** How late a `slow` message reaches its queue. */
  slowMs: number;
  /** Messages published and routed to a queue since the start (whatever the mode). */
  published = 0;
  /** Bytes held in queues and unacknowledged (bounded by MAX_HELD_BYTES). */
  heldBytes = 0;
  readonly queues = new Map<string, Queue>();
  readonly connections = new Set<Connection>();
  private readonly passwordHash: Buffer;
  /** Messages on their way to a queue in slow mode, by their timer. */
  private readonly arriving = new Map<NodeJS.Timeout, Message>();

  constructor(options: AmqpBrokerOptions) {
    super(options.host, options.port, 'ok', MAX_CONNECTIONS);
    this.slowMs = options.slowMs ?? DEFAULT_AMQP_SLOW_MS;
    this.passwordHash = sha256(options.password);
    this.declareCanaryQueue();
  }

  /** host:port as an amqp check's target. */
  get target(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /** Stops listening and drops every connection; messages still on their way to a queue (slow mode) are lost, as transient messages are when a broker stops. */
  override async stop(): Promise<void> {
    for (const m of this.arriving.values()) this.heldBytes -= m.size;
    this.arriving.clear();
    await super.stop();
  }

  override async setMode(mode: AmqpMode): Promise<void> {
    const was = this.mode;
    await super.setMode(mode);
    if (mode === 'noqueue') {
      const q = this.queues.get(CANARY_QUEUE);
      if (q) this.deleteQueue(q);
    } else this.declareCanaryQueue();
    if (was === 'blocked' && mode !== 'blocked') for (const c of this.connections) c.unblock();
    if (mode !== 'stall') for (const q of this.queues.values()) this.dispatch(q);
  }

  /** The messages waiting (ready) in a queue, or undefined when it does not exist. */
  depth(name: string): number | undefined {
    return this.queues.get(name)?.ready.length;
  }

  protected serve(socket: Socket): void {
    this.sockets.add(socket);
    const c = new Connection(this, socket);
    this.connections.add(c);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.connections.delete(c);
      c.release();
    });
  }

  checkLogin(user: string, password: string): boolean {
    if (this.mode === 'auth' || user !== SANDBOX_AMQP_USER) return false;
    return timingSafeEqual(sha256(password), this.passwordHash);
  }

  addTimer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  addInterval(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setInterval(fn, ms);
    this.timers.add(t);
    return t;
  }

  dropTimer(t: NodeJS.Timeout | undefined): void {
    if (t === undefined) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  private declareCanaryQueue(): void {
    if (!this.queues.has(CANARY_QUEUE)) this.queues.set(CANARY_QUEUE, newQueue(CANARY_QUEUE, { durable: true, exclusive: false, autoDelete: false }));
  }

  /** Takes a routed message into `queue` (in slow mode, slowMs later); false when the broker has no room (the publish is nacked). */
  enqueue(queue: Queue, message: Message): boolean {
    this.expireHead(queue);
    if (this.heldBytes + message.size > MAX_HELD_BYTES) return false;
    this.heldBytes += message.size;
    this.published++;
    const arrive = () => {
      if (this.queues.get(queue.name) !== queue) {
        this.heldBytes -= message.size;
        return;
      }
      queue.ready.push(message);
      this.dispatch(queue);
    };
    if (this.mode === 'slow') {
      const t = this.addTimer(() => {
        this.arriving.delete(t);
        arrive();
      }, this.slowMs);
      this.arriving.set(t, message);
    } else arrive();
    return true;
  }

  /** Puts unacknowledged messages back at the head of their queue (or drops them when it is gone). */
  requeue(items: Iterable<{ message: Message; queue: Queue }>): void {
    const touched = new Set<Queue>();
    for (const { message, queue } of [...items].reverse()) {
      if (this.queues.get(queue.name) === queue) {
        message.redelivered = true;
        queue.ready.unshift(message);
        touched.add(queue);
      } else this.heldBytes -= message.size;
    }
    for (const q of touched) this.dispatch(q);
  }

  release(message: Message): void {
    this.heldBytes -= message.size;
  }

  /** Hands ready messages to consumers with room under their prefetch, round robin; nothing in stall mode. */
  dispatch(queue: Queue): void {
    if (this.mode === 'stall' || this.queues.get(queue.name) !== queue) return;
    while (queue.ready.length > 0 && queue.consumers.length > 0) {
      if (this.expireHead(queue)) continue;
      let consumer: Consumer | undefined;
      for (let i = 0; i < queue.consumers.length && !consumer; i++) {
        const c = queue.consumers[(queue.next + i) % queue.consumers.length] as Consumer;
        const ch = c.channel;
        if (ch.state === 'open' && ch.connection.alive && (c.noAck || ch.prefetch === 0 || ch.unacked.size < ch.prefetch)) {
          consumer = c;
          queue.next = (queue.next + i + 1) % queue.consumers.length;
        }
      }
      if (!consumer) return;
      consumer.channel.connection.deliver(consumer, queue.ready.shift() as Message);
    }
  }

  /** Drops the head of the queue if it has expired; true if it did. */
  private expireHead(queue: Queue): boolean {
    const head = queue.ready[0];
    if (head?.expiresAt === undefined || head.expiresAt > performance.now()) return false;
    queue.ready.shift();
    this.heldBytes -= head.size;
    return true;
  }

  /** Deletes a queue: its consumers are cancelled (basic.cancel to clients that take it), its messages are gone. */
  deleteQueue(queue: Queue): void {
    if (this.queues.get(queue.name) !== queue) return;
    this.queues.delete(queue.name);
    for (const m of queue.ready) this.heldBytes -= m.size;
    queue.ready = [];
    for (const consumer of queue.consumers) {
      consumer.channel.consumers.delete(consumer.tag);
      consumer.channel.connection.cancelled(consumer);
    }
    queue.consumers = [];
  }

  /** A server-named queue of `owner`. */
  newServerNamedQueue(owner: Connection, flags: { durable: boolean; exclusive: boolean; autoDelete: boolean }, ttlMs: number | undefined): Queue {
    const q = newQueue(`amq.gen-${randomBytes(16).toString('base64url')}`, flags);
    q.owner = owner;
    q.ttlMs = ttlMs;
    this.queues.set(q.name, q);
    return q;
  }

  removeConsumer(consumer: Consumer): void {
    const q = consumer.queue;
    consumer.channel.consumers.delete(consumer.tag);
    q.consumers = q.consumers.filter((c) => c !== consumer);
    if (q.autoDelete && q.hadConsumer && q.consumers.length === 0) this.deleteQueue(q);
  }
}

function newQueue(name: string, flags: { durable: boolean; exclusive: boolean; autoDelete: boolean }): Queue {
  return { name, ...flags, owner: undefined, ttlMs: undefined, ready: [], consumers: [], next: 0, hadConsumer: false };
}

type ConnectionState = 'header' | 'start-ok' | 'tune-ok' | 'open' | 'opened' | 'closing' | 'closed';

/** One client connection: the handshake, its channels, and what it publishes and consumes. */
class Connection {
  readonly channels = new Map<number, Channel>();
  private state: ConnectionState = 'header';
  private header: Buffer = Buffer.alloc(0);
  private readonly reader = new FrameReader(FRAME_MIN);
  private capabilities: FieldTable = {};
  private channelMax = CHANNEL_MAX;
  private frameMax = FRAME_MIN;
  private lastReceived = performance.now();
  private heartbeat: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  /** A publish held by a memory alarm: the connection is not read until it is handled. */
  private held: { channel: Channel; publishing: Required<Publishing> } | undefined;
  private blockedSent = false;

  get alive(): boolean {
    return this.state !== 'closed' && this.state !== 'closing' && !this.socket.destroyed;
  }

  constructor(
    private readonly broker: SandboxAmqpBroker,
    private readonly socket: Socket,
  ) {
    socket.on('error', () => socket.destroy());
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastReceived = performance.now();
    if (this.state === 'header') {
      const need = PROTOCOL_HEADER.length - this.header.length;
      this.header = Buffer.concat([this.header, chunk.subarray(0, need)]);
      chunk = chunk.subarray(need);
      if (this.header.length < PROTOCOL_HEADER.length) return;
      if (!this.header.equals(PROTOCOL_HEADER)) {
        // Specification 4.2.2: answer with the protocol header the broker speaks, then close.
        this.state = 'closed';
        this.socket.end(PROTOCOL_HEADER);
        this.destroySoon();
        return;
      }
      this.state = 'start-ok';
      this.sendStart();
    }
    if (chunk.length === 0) return;
    // While a memory alarm holds a publish, the rest is not read; a client that goes on sending
    // more than a frame meanwhile is disconnected.
    if (this.held && this.reader.buffered + chunk.length > this.frameMax * 2) {
      this.socket.destroy();
      return;
    }
    this.reader.push(chunk);
    this.pump();
  }

  private pump(): void {
    while (this.state !== 'closed' && !this.held && !this.socket.destroyed) {
      let frame: Frame | undefined;
      try {
        frame = this.reader.next();
      } catch (err) {
        // The stream can no longer be cut into frames: close without waiting for close-ok.
        if (!(err instanceof AmqpWireError)) throw err;
        this.closeConnection(err.code, err.message, 0, true);
        return;
      }
      if (!frame) return;
      try {
        this.onFrame(frame);
      } catch (err) {
        if (err instanceof AmqpWireError) this.closeConnection(err.code, err.message, frame.type === FRAME.method ? methodOf(frame) : 0);
        else throw err;
      }
    }
  }

  private onFrame(frame: Frame): void {
    if (this.state === 'closing') {
      // After its own close the broker reads nothing but close and close-ok.
      if (frame.type === FRAME.method && frame.channel === 0 && frame.payload.length >= 4) {
        const id = frame.payload.readUInt32BE(0);
        if (id === METHOD.connectionClose) this.send(encodeMethod(0, METHOD.connectionCloseOk));
        if (id === METHOD.connectionClose || id === METHOD.connectionCloseOk) this.finish();
      }
      return;
    }
    switch (frame.type) {
      case FRAME.heartbeat:
        if (frame.channel !== 0) throw new AmqpWireError(REPLY.frameError, 'heartbeat frame on a channel other than 0');
        return;
      case FRAME.method: {
        if (frame.payload.length < 4) throw new AmqpWireError(REPLY.frameError, 'method frame too short');
        if (frame.channel === 0) this.onConnectionMethod(frame.payload.readUInt32BE(0), new ArgReader(frame.payload, 4));
        else this.onChannelFrame(frame);
        return;
      }
      case FRAME.header:
      case FRAME.body:
        if (frame.channel === 0) throw new AmqpWireError(REPLY.commandInvalid, 'content frame on channel 0');
        this.onChannelFrame(frame);
        return;
      default:
        throw new AmqpWireError(REPLY.frameError, `unknown frame type ${frame.type}`);
    }
  }

  // --- connection class ---------------------------------------------------------------------

  private sendStart(): void {
    const args = new ArgWriter()
      .octet(0)
      .octet(9)
      .table({
        product: 'vakt sandbox broker',
        version: '0.1',
        platform: `Node.js ${process.version}`,
        cluster_name: 'rabbit@sandbox',
        information: 'A simulated RabbitMQ for the vakt demo (sandbox/amqp.ts)',
        capabilities: {
          publisher_confirms: true,
          'basic.nack': true,
          consumer_cancel_notify: true,
          'connection.blocked': true,
          authentication_failure_close: true,
          per_consumer_qos: true,
        },
      })
      .longstr('PLAIN')
      .longstr('en_US')
      .build();
    this.send(encodeMethod(0, METHOD.connectionStart, args));
  }

  private onConnectionMethod(id: number, args: ArgReader): void {
    if (id === METHOD.connectionClose) {
      this.send(encodeMethod(0, METHOD.connectionCloseOk));
      this.finish();
      return;
    }
    switch (this.state) {
      case 'start-ok': {
        if (id !== METHOD.connectionStartOk) throw new AmqpWireError(REPLY.commandInvalid, 'expected connection.start-ok');
        const clientProperties = args.table();
        const mechanism = args.shortstr();
        const response = args.longstr();
        args.shortstr(); // locale
        const caps = clientProperties.capabilities;
        this.capabilities = caps !== null && typeof caps === 'object' && !Array.isArray(caps) && !Buffer.isBuffer(caps) ? caps : {};
        // SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL password.
        const parts = response.toString('utf8').split('\0');
        const ok = mechanism === 'PLAIN' && parts.length === 3 && this.broker.checkLogin(parts[1] as string, parts[2] as string);
        if (!ok) return this.refuseLogin(mechanism);
        this.state = 'tune-ok';
        this.send(encodeMethod(0, METHOD.connectionTune, new ArgWriter().short(CHANNEL_MAX).long(FRAME_MAX).short(HEARTBEAT_S).build()));
        return;
      }
      case 'tune-ok': {
        if (id !== METHOD.connectionTuneOk) throw new AmqpWireError(REPLY.commandInvalid, 'expected connection.tune-ok');
        const channelMax = args.short();
        const frameMax = args.long();
        const heartbeat = args.short();
        if (channelMax > CHANNEL_MAX)
          throw new AmqpWireError(REPLY.notAllowed, `negotiated channel_max = ${channelMax} is higher than the maximum allowed value (${CHANNEL_MAX})`);
        if (frameMax > FRAME_MAX)
          throw new AmqpWireError(REPLY.notAllowed, `negotiated frame_max = ${frameMax} is higher than the maximum allowed value (${FRAME_MAX})`);
        if (frameMax !== 0 && frameMax < FRAME_MIN)
          throw new AmqpWireError(REPLY.notAllowed, `negotiated frame_max = ${frameMax} is lower than the minimum allowed value (${FRAME_MIN})`);
        this.channelMax = channelMax === 0 ? CHANNEL_MAX : channelMax;
        this.frameMax = frameMax === 0 ? FRAME_MAX : frameMax;
        this.reader.limit = this.frameMax;
        if (heartbeat > 0) this.startHeartbeat(heartbeat);
        this.state = 'open';
        return;
      }
      case 'open': {
        if (id !== METHOD.connectionOpen) throw new AmqpWireError(REPLY.commandInvalid, 'expected connection.open');
        const vhost = args.shortstr();
        if (vhost !== SANDBOX_AMQP_VHOST) throw new AmqpWireError(REPLY.notAllowed, `vhost ${vhost} not found`);
        this.state = 'opened';
        this.send(encodeMethod(0, METHOD.connectionOpenOk, new ArgWriter().shortstr('').build()));
        return;
      }
      default:
        if (id === METHOD.connectionCloseOk) return;
        throw new AmqpWireError(REPLY.commandInvalid, `unexpected method ${methodName(id)} on channel 0`);
    }
  }

  private refuseLogin(mechanism: string): void {
    if (this.capabilities.authentication_failure_close === true) {
      const why =
        mechanism === 'PLAIN'
          ? 'Login was refused using authentication mechanism PLAIN. For details see the broker logfile.'
          : `unsupported authentication mechanism '${mechanism}'`;
      this.closeConnection(REPLY.accessRefused, why, METHOD.connectionStartOk);
    } else {
      // RabbitMQ closes the socket on a client that did not announce it takes a close here.
      this.state = 'closed';
      this.socket.end();
      this.destroySoon();
    }
  }

  private startHeartbeat(seconds: number): void {
    const ms = seconds * 1000;
    this.heartbeat = this.broker.addInterval(() => {
      // Two intervals without a byte from the client: it is gone (specification 4.2.7).
      if (performance.now() - this.lastReceived > 2 * ms) this.socket.destroy();
      else this.send(encodeFrame(FRAME.heartbeat, 0, Buffer.alloc(0)));
    }, ms);
  }

  /** Closes the connection with a reply code; waits for close-ok unless the stream is past reading. */
  private closeConnection(code: number, text: string, method: number, unreadable = false): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    const args = new ArgWriter()
      .short(code)
      .shortstr(replyText(code, text))
      .short(Math.floor(method / 0x10000))
      .short(method % 0x10000)
      .build();
    this.send(encodeMethod(0, METHOD.connectionClose, args));
    if (unreadable) {
      this.state = 'closed';
      this.socket.end();
    } else this.state = 'closing';
    this.destroySoon();
  }

  private destroySoon(): void {
    this.broker.dropTimer(this.closeTimer);
    this.closeTimer = this.broker.addTimer(() => this.socket.destroy(), CLOSE_WAIT_MS);
  }

  private finish(): void {
    this.state = 'closed';
    this.socket.end();
    this.destroySoon();
  }

  /** The socket closed: consumers cancelled, unacknowledged messages back on their queues, own queues deleted, timers stopped. */
  release(): void {
    this.state = 'closed';
    this.held = undefined;
    this.broker.dropTimer(this.heartbeat);
    this.broker.dropTimer(this.closeTimer);
    for (const ch of this.channels.values()) this.releaseChannel(ch);
    this.channels.clear();
    for (const q of [...this.broker.queues.values()]) if (q.owner === this) this.broker.deleteQueue(q);
  }

  /** Leaves a memory alarm: connection.unblocked, the held publish goes through, reading resumes. */
  unblock(): void {
    if (this.blockedSent) this.send(encodeMethod(0, METHOD.connectionUnblocked));
    this.blockedSent = false;
    const held = this.held;
    this.held = undefined;
    if (held && held.channel.state === 'open' && this.channels.get(held.channel.id) === held.channel) this.publish(held.channel, held.publishing);
    this.pump();
  }

  // --- channels -------------------------------------------------------------------------------

  private onChannelFrame(frame: Frame): void {
    if (this.state !== 'opened') throw new AmqpWireError(REPLY.commandInvalid, 'a channel frame before the connection is open');
    const ch = this.channels.get(frame.channel);
    if (!ch) return this.openChannel(frame);
    try {
      if (frame.type === FRAME.method) this.onChannelMethod(ch, frame.payload.readUInt32BE(0), new ArgReader(frame.payload, 4));
      else if (frame.type === FRAME.header) this.onContentHeader(ch, frame.payload);
      else this.onContentBody(ch, frame.payload);
    } catch (err) {
      if (!(err instanceof AmqpChannelError)) throw err;
      this.closeChannel(ch, err.code, err.message);
    }
  }

  /** A frame on a channel that is not open: it must be channel.open. */
  private openChannel(frame: Frame): void {
    const id = frame.channel;
    if (frame.type !== FRAME.method || methodOf(frame) !== METHOD.channelOpen)
      throw new AmqpWireError(REPLY.channelError, `expected 'channel.open' on channel ${id}`);
    if (id > this.channelMax) throw new AmqpWireError(REPLY.channelError, `channel ${id} is above channel_max ${this.channelMax}`);
    new ArgReader(frame.payload, 4).shortstr();
    this.channels.set(id, {
      id,
      connection: this,
      state: 'open',
      confirm: false,
      publishSeq: 0,
      prefetch: 0,
      nextDeliveryTag: 1,
      unacked: new Map(),
      consumers: new Map(),
      publishing: undefined,
    });
    this.send(encodeMethod(id, METHOD.channelOpenOk, new ArgWriter().longstr('').build()));
  }

  private onChannelMethod(ch: Channel, id: number, args: ArgReader): void {
    if (ch.state === 'closing') {
      // The broker closed this channel: it discards everything until close-ok (or a close that crossed ours).
      if (id === METHOD.channelClose) this.send(encodeMethod(ch.id, METHOD.channelCloseOk));
      if (id === METHOD.channelClose || id === METHOD.channelCloseOk) this.channels.delete(ch.id);
      return;
    }
    if (ch.publishing) throw new AmqpWireError(REPLY.unexpectedFrame, `expected content for basic.publish on channel ${ch.id}, got ${methodName(id)}`);
    switch (id) {
      case METHOD.channelOpen:
        throw new AmqpWireError(REPLY.channelError, `second 'channel.open' on channel ${ch.id}`);
      case METHOD.channelClose:
        this.releaseChannel(ch);
        this.channels.delete(ch.id);
        this.send(encodeMethod(ch.id, METHOD.channelCloseOk));
        return;
      case METHOD.channelCloseOk:
        return;
      case METHOD.channelFlow: {
        const active = args.bits()(0);
        this.send(encodeMethod(ch.id, METHOD.channelFlowOk, new ArgWriter().bits(active).build()));
        return;
      }
      case METHOD.confirmSelect: {
        const noWait = args.bits()(0);
        ch.confirm = true;
        if (!noWait) this.send(encodeMethod(ch.id, METHOD.confirmSelectOk));
        return;
      }
      case METHOD.queueDeclare:
        return this.declareQueue(ch, args);
      case METHOD.basicQos: {
        const prefetchSize = args.long();
        const prefetchCount = args.short();
        args.bits(); // global: per consumer, as RabbitMQ's per_consumer_qos
        if (prefetchSize !== 0) throw new AmqpWireError(REPLY.notImplemented, 'prefetch_size!=0 (' + prefetchSize + ')');
        ch.prefetch = prefetchCount;
        this.send(encodeMethod(ch.id, METHOD.basicQosOk));
        for (const c of ch.consumers.values()) this.broker.dispatch(c.queue);
        return;
      }
      case METHOD.basicConsume:
        return this.consume(ch, args);
      case METHOD.basicCancel: {
        const tag = args.shortstr();
        const noWait = args.bits()(0);
        const consumer = ch.consumers.get(tag);
        if (consumer) this.broker.removeConsumer(consumer);
        if (!noWait) this.send(encodeMethod(ch.id, METHOD.basicCancelOk, new ArgWriter().shortstr(tag).build()));
        return;
      }
      case METHOD.basicPublish: {
        args.short();
        const exchange = args.shortstr();
        const routingKey = args.shortstr();
        const flags = args.bits();
        if (flags(1)) throw new AmqpWireError(REPLY.notImplemented, 'immediate=true');
        ch.publishing = { exchange, routingKey, mandatory: flags(0), chunks: [], received: 0 };
        return;
      }
      case METHOD.basicAck: {
        const tag = Number(args.longlong());
        const multiple = args.bits()(0);
        return this.settle(ch, tag, multiple, 'ack');
      }
      case METHOD.basicNack: {
        const tag = Number(args.longlong());
        const flags = args.bits();
        return this.settle(ch, tag, flags(0), flags(1) ? 'requeue' : 'drop');
      }
      case METHOD.basicReject: {
        const tag = Number(args.longlong());
        return this.settle(ch, tag, false, args.bits()(0) ? 'requeue' : 'drop');
      }
      case METHOD.basicRecover: {
        args.bits();
        const all = [...ch.unacked.values()];
        ch.unacked.clear();
        this.broker.requeue(all);
        this.send(encodeMethod(ch.id, METHOD.basicRecoverOk));
        return;
      }
      default:
        throw new AmqpWireError(REPLY.notImplemented, `the sandbox broker does not implement ${methodName(id)}`);
    }
  }

  private declareQueue(ch: Channel, args: ArgReader): void {
    args.short();
    const name = args.shortstr();
    const f = args.bits();
    const [passive, durable, exclusive, autoDelete, noWait] = [f(0), f(1), f(2), f(3), f(4)];
    const argTable = args.table();
    const where = `in vhost '${SANDBOX_AMQP_VHOST}'`;
    let queue = name === '' ? undefined : this.broker.queues.get(name);
    if (passive || (name !== '' && queue)) {
      if (!queue) throw new AmqpChannelError(REPLY.notFound, `no queue '${name}' ${where}`);
      if (queue.exclusive && queue.owner !== this)
        throw new AmqpChannelError(
          REPLY.resourceLocked,
          `cannot obtain exclusive access to locked queue '${name}' ${where}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.`,
        );
      if (!passive && (queue.durable !== durable || queue.autoDelete !== autoDelete))
        throw new AmqpChannelError(
          REPLY.preconditionFailed,
          `inequivalent arg '${queue.durable !== durable ? 'durable' : 'auto_delete'}' for queue '${name}' ${where}`,
        );
    } else if (name === '') {
      const given = argTable['x-message-ttl'];
      const ttl = typeof given === 'bigint' ? Number(given) : given;
      if (ttl !== undefined && !(typeof ttl === 'number' && Number.isSafeInteger(ttl) && ttl >= 0))
        throw new AmqpChannelError(REPLY.preconditionFailed, `invalid arg 'x-message-ttl' for queue '' ${where}`);
      if ([...this.broker.queues.values()].filter((q) => q.owner === this).length >= MAX_QUEUES_PER_CONNECTION)
        throw new AmqpChannelError(REPLY.preconditionFailed, `cannot declare queue: queue limit of a connection (${MAX_QUEUES_PER_CONNECTION}) is reached`);
      queue = this.broker.newServerNamedQueue(this, { durable, exclusive, autoDelete }, ttl);
    } else if (name.startsWith('amq.')) {
      throw new AmqpChannelError(REPLY.accessRefused, `queue name '${name}' contains reserved prefix 'amq.*'`);
    } else {
      // The canary user may configure server-named queues only.
      throw new AmqpChannelError(REPLY.accessRefused, `access to queue '${name}' ${where} refused for user '${SANDBOX_AMQP_USER}'`);
    }
    if (!noWait)
      this.send(encodeMethod(ch.id, METHOD.queueDeclareOk, new ArgWriter().shortstr(queue.name).long(queue.ready.length).long(queue.consumers.length).build()));
  }

  private consume(ch: Channel, args: ArgReader): void {
    args.short();
    const name = args.shortstr();
    const givenTag = args.shortstr();
    const f = args.bits();
    const [noAck, exclusive, noWait] = [f(1), f(2), f(3)];
    args.table();
    const queue = this.broker.queues.get(name);
    const where = `in vhost '${SANDBOX_AMQP_VHOST}'`;
    if (!queue) throw new AmqpChannelError(REPLY.notFound, `no queue '${name}' ${where}`);
    if (queue.exclusive && queue.owner !== this)
      throw new AmqpChannelError(REPLY.resourceLocked, `cannot obtain exclusive access to locked queue '${name}' ${where}`);
    if (exclusive && queue.consumers.length > 0) throw new AmqpChannelError(REPLY.accessRefused, `queue '${name}' ${where} in exclusive use`);
    const tag = givenTag === '' ? `amq.ctag-${randomBytes(16).toString('base64url')}` : givenTag;
    if (ch.consumers.has(tag)) throw new AmqpWireError(REPLY.notAllowed, `attempt to reuse consumer tag '${tag}'`);
    const consumer: Consumer = { tag, queue, channel: ch, noAck };
    ch.consumers.set(tag, consumer);
    queue.consumers.push(consumer);
    queue.hadConsumer = true;
    if (!noWait) this.send(encodeMethod(ch.id, METHOD.basicConsumeOk, new ArgWriter().shortstr(tag).build()));
    this.broker.dispatch(queue);
  }

  private settle(ch: Channel, tag: number, multiple: boolean, how: 'ack' | 'requeue' | 'drop'): void {
    const settled: { message: Message; queue: Queue }[] = [];
    if (multiple) {
      for (const [t, item] of ch.unacked) {
        if (tag === 0 || t <= tag) {
          settled.push(item);
          ch.unacked.delete(t);
        }
      }
    } else {
      const item = ch.unacked.get(tag);
      if (!item) throw new AmqpChannelError(REPLY.preconditionFailed, `unknown delivery tag ${tag}`);
      settled.push(item);
      ch.unacked.delete(tag);
    }
    if (how === 'requeue') this.broker.requeue(settled);
    else for (const { message } of settled) this.broker.release(message);
    for (const q of new Set(settled.map((s) => s.queue))) this.broker.dispatch(q);
    for (const c of ch.consumers.values()) this.broker.dispatch(c.queue);
  }

  private onContentHeader(ch: Channel, payload: Buffer): void {
    if (ch.state === 'closing') return;
    const p = ch.publishing;
    if (!p || p.bodySize !== undefined) throw new AmqpWireError(REPLY.unexpectedFrame, `unexpected content header on channel ${ch.id}`);
    const r = new ArgReader(payload);
    const classId = r.short();
    r.short(); // weight
    const bodySize = r.longlong();
    if (classId !== BASIC_CLASS) throw new AmqpWireError(REPLY.frameError, `content header of class ${classId}, expected basic`);
    const properties = Buffer.from(payload.subarray(12));
    const { expirationMs } = readBasicProperties(properties);
    if (bodySize > BigInt(MAX_BODY)) {
      ch.publishing = undefined;
      throw new AmqpChannelError(REPLY.preconditionFailed, `message size ${bodySize} is larger than configured max size ${MAX_BODY}`);
    }
    p.bodySize = Number(bodySize);
    p.properties = properties;
    p.expirationMs = expirationMs;
    if (p.bodySize === 0) this.contentComplete(ch);
  }

  private onContentBody(ch: Channel, payload: Buffer): void {
    if (ch.state === 'closing') return;
    const p = ch.publishing;
    if (p?.bodySize === undefined) throw new AmqpWireError(REPLY.unexpectedFrame, `unexpected content body on channel ${ch.id}`);
    p.received += payload.length;
    if (p.received > p.bodySize) throw new AmqpWireError(REPLY.frameError, `content body larger than the ${p.bodySize} bytes its header announced`);
    p.chunks.push(payload);
    if (p.received === p.bodySize) this.contentComplete(ch);
  }

  /** A publish whose content is complete: held by a memory alarm, or routed. */
  private contentComplete(ch: Channel): void {
    const p = ch.publishing as Required<Publishing>;
    ch.publishing = undefined;
    p.chunks = [Buffer.concat(p.chunks)];
    if (this.broker.mode === 'blocked') {
      this.held = { channel: ch, publishing: p };
      if (!this.blockedSent && this.capabilities['connection.blocked'] === true) {
        this.blockedSent = true;
        this.send(encodeMethod(0, METHOD.connectionBlocked, new ArgWriter().shortstr(BLOCKED_REASON).build()));
      }
      return;
    }
    this.publish(ch, p);
  }

  private publish(ch: Channel, p: Required<Publishing>): void {
    const seq = ch.confirm ? ++ch.publishSeq : 0;
    if (p.exchange !== '') {
      this.closeChannel(ch, REPLY.notFound, `no exchange '${p.exchange}' in vhost '${SANDBOX_AMQP_VHOST}'`);
      return;
    }
    const body = p.chunks[0] as Buffer;
    const queue = this.broker.queues.get(p.routingKey);
    if (!queue) {
      if (p.mandatory) {
        const args = new ArgWriter().short(REPLY.noRoute).shortstr('NO_ROUTE').shortstr(p.exchange).shortstr(p.routingKey).build();
        this.sendContent(ch.id, encodeMethod(ch.id, METHOD.basicReturn, args), p.properties, body);
      }
      if (seq) this.confirm(ch, seq, true);
      return;
    }
    const now = performance.now();
    const ttls = [p.expirationMs, queue.ttlMs].filter((t): t is number => t !== undefined);
    const message: Message = {
      exchange: p.exchange,
      routingKey: p.routingKey,
      properties: p.properties,
      body,
      redelivered: false,
      expiresAt: ttls.length > 0 ? now + Math.min(...ttls) : undefined,
      size: body.length + p.properties.length,
    };
    const taken = this.broker.enqueue(queue, message);
    if (seq) this.confirm(ch, seq, taken);
  }

  private confirm(ch: Channel, seq: number, ack: boolean): void {
    const args = new ArgWriter().longlong(seq);
    if (ack) this.send(encodeMethod(ch.id, METHOD.basicAck, args.bits(false).build()));
    else this.send(encodeMethod(ch.id, METHOD.basicNack, args.bits(false, false).build()));
  }

  deliver(consumer: Consumer, message: Message): void {
    const ch = consumer.channel;
    const tag = ch.nextDeliveryTag++;
    if (consumer.noAck) this.broker.release(message);
    else ch.unacked.set(tag, { message, queue: consumer.queue });
    const args = new ArgWriter().shortstr(consumer.tag).longlong(tag).bits(message.redelivered).shortstr(message.exchange).shortstr(message.routingKey).build();
    this.sendContent(ch.id, encodeMethod(ch.id, METHOD.basicDeliver, args), message.properties, message.body);
  }

  /** A consumer whose queue was deleted: basic.cancel, for a client that takes it. */
  cancelled(consumer: Consumer): void {
    if (this.capabilities.consumer_cancel_notify !== true) return;
    this.send(encodeMethod(consumer.channel.id, METHOD.basicCancel, new ArgWriter().shortstr(consumer.tag).bits(true).build()));
  }

  private sendContent(channel: number, method: Buffer, properties: Buffer, body: Buffer): void {
    const head = new ArgWriter().short(BASIC_CLASS).short(0).longlong(body.length).raw(properties).build();
    const frames = [method, encodeFrame(FRAME.header, channel, head)];
    const room = this.frameMax - 8;
    for (let at = 0; at < body.length; at += room) frames.push(encodeFrame(FRAME.body, channel, body.subarray(at, at + room)));
    this.send(Buffer.concat(frames));
  }

  /** Closes one channel with a reply code; the broker then discards its frames until close-ok. */
  private closeChannel(ch: Channel, code: number, text: string): void {
    this.releaseChannel(ch);
    ch.state = 'closing';
    ch.publishing = undefined;
    const args = new ArgWriter().short(code).shortstr(replyText(code, text)).short(0).short(0).build();
    this.send(encodeMethod(ch.id, METHOD.channelClose, args));
  }

  private releaseChannel(ch: Channel): void {
    for (const consumer of [...ch.consumers.values()]) this.broker.removeConsumer(consumer);
    const unacked = [...ch.unacked.values()];
    ch.unacked.clear();
    this.broker.requeue(unacked);
    if (this.held?.channel === ch) this.held = undefined;
  }

  private send(bytes: Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    // A client that does not read what it is sent is not kept waiting on forever.
    if (this.socket.writableLength > MAX_WRITE_BACKLOG) {
      this.socket.destroy();
      return;
    }
    this.socket.write(bytes);
  }
}

function methodOf(frame: Frame): number {
  return frame.payload.length >= 4 ? frame.payload.readUInt32BE(0) : 0;
}

function methodName(id: number): string {
  const name = Object.entries(METHOD).find(([, v]) => v === id)?.[0];
  return name
    ? name.replace(/^([a-z]+)([A-Z])/, (_, c: string, first: string) => `${c}.${first.toLowerCase()}`).replace(/([A-Z])/g, (x) => `-${x.toLowerCase()}`)
    : `method ${Math.floor(id / 0x10000)}/${id % 0x10000}`;
}
