// The sandbox's AMQP broker (sandbox/amqp.ts) through the real amqp probe: the canary end to end,
// each fault switch (through the control API) with the failure reason it must give, and a broker
// that survives what no client should send (garbage, oversized and malformed frames, frames out
// of order, a client gone mid-frame), answering each with the reply code the specification names.
import { readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqpKind from '../../probes/amqp/index.js';
import { amqpProbe } from '../../probes/amqp/probe.js';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import type { ProbeLogger, ProbeResult } from '../../probes/types.js';
import { AMQP_MODES, FRAME_MAX, FRAME_MIN, FrameReader, MAX_BODY, REPLY } from '../../sandbox/amqp.js';
import { CANARY_QUEUE, SANDBOX_AMQP_USER, sandboxSecretDir, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { freeSandboxPorts } from '../helpers/demo-config.js';
import { budget, quietLog } from '../helpers/peers.js';

/** A `slow` message in these tests (the demo's is 3 s), and the transit limit it must exceed. */
const SLOW_MS = 600;
const TRANSIT_LIMIT = '300ms';

let sb: Sandbox;
let password: string;
beforeAll(async () => {
  sb = await startSandbox({ ports: freeSandboxPorts(), slowAmqpMs: SLOW_MS });
  password = readFileSync(join(sandboxSecretDir(), 'canary-password'), 'utf8').replace(/\r?\n$/, '');
});
afterAll(async () => {
  await sb.stop();
});

async function fault(path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${sb.controlUrl}/faults/${path}`, { method: 'POST' });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

/** The canary as the demo runs it: the sandbox's user (password a secret by name) on the dedicated queue. */
const canary = { username: SANDBOX_AMQP_USER, password: 'canary', queue: CANARY_QUEUE };

/** One run of the amqp probe against the sandbox's broker; `logged` holds what it logged at info and warn. */
async function run(options: Record<string, unknown> = canary, timeoutMs = 3000, secret = password): Promise<ProbeResult & { logged: object[] }> {
  const logged: object[] = [];
  const log: ProbeLogger = { ...quietLog, info: (o) => logged.push(o), warn: (o) => logged.push(o) };
  // The target as the config loader hands it to the probe.
  const target = amqpKind.target.schema.parse(sb.amqp.target);
  const r = await amqpProbe.run({
    target,
    targets: [target],
    options: KIND_OPTIONS.amqp.parse(options),
    ...budget(timeoutMs),
    log,
    secrets: { canary: secret },
  });
  return { ...r, logged };
}

/** Waits (polling, no time limit of its own: the test's timeout is the bound) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}

describe('sandbox integration broker (amqp)', () => {
  it('ok: the canary is confirmed and delivered back, on vakt.canary and on a server-named queue; nothing is left behind', async () => {
    const r = await run();
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['connect', 'channel', 'publish', 'transit']);
    const own = await run({ username: SANDBOX_AMQP_USER, password: 'canary', heartbeat: '1s' });
    expect(own.failure).toBeUndefined();
    expect(own.ok).toBe(true);
    await until(() => sb.amqp.connections.size === 0);
    expect(sb.amqp.depth(CANARY_QUEUE)).toBe(0);
    expect([...sb.amqp.queues.keys()]).toEqual([CANARY_QUEUE]);
    expect(sb.amqp.heldBytes).toBe(0);
  });

  it('what the broker refuses as RabbitMQ does: a wrong password, another virtual host, another exchange, the guest user', async () => {
    const wrong = await run(canary, 3000, 'not-the-password');
    expect(wrong.failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    expect(wrong.failure?.message).toContain('ACCESS_REFUSED (403)');
    expect((await run({})).failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    expect((await run({ ...canary, vhost: 'lab' })).failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    const exchange = await run({ ...canary, exchange: 'integration' });
    expect(exchange.failure).toMatchObject({ phase: 'publish', reason: 'queue_missing' });
    expect(exchange.failure?.message).toContain("no exchange 'integration' in vhost '/'");
    // Back to a working canary on the same broker.
    expect((await run()).ok).toBe(true);
  });

  it('amqp/slow: the canary arrives late: degraded (slow) naming transit, not a failure', async () => {
    expect((await fault('amqp/slow')).amqp).toBe('slow');
    try {
      const r = await run({ ...canary, transitDegradedAbove: TRANSIT_LIMIT }, 5000);
      expect(r.failure).toBeUndefined();
      expect(r).toMatchObject({ ok: true, degraded: { reason: 'slow' } });
      expect(r.degraded?.message).toMatch(/^transit took \S+, above transitDegradedAbove 300ms$/);
    } finally {
      await fault('amqp/ok');
    }
  });

  it('amqp/stall: confirmed and never delivered: timeout in transit; back to ok, the waiting canary is dropped as stale', async () => {
    await fault('amqp/stall');
    const r = await run(canary, 2000);
    expect(r.failure).toMatchObject({ phase: 'transit', reason: 'timeout' });
    expect(r.phases.publish).toBeDefined();
    expect(sb.amqp.depth(CANARY_QUEUE)).toBe(1);
    await fault('amqp/ok');
    const next = await run();
    expect(next.ok).toBe(true);
    expect(next.logged).toContainEqual({ stale: 1 });
    expect(sb.amqp.depth(CANARY_QUEUE)).toBe(0);
  });

  it('amqp/blocked: a memory alarm: the publish is never confirmed, timeout in publish naming connection.blocked; ok unblocks', async () => {
    await fault('amqp/blocked');
    const r = await run(canary, 2000);
    expect(r.failure).toMatchObject({ phase: 'publish', reason: 'timeout' });
    expect(r.failure?.message).toContain('the broker blocks publishers (low on memory)');
    expect(r.phases.publish).toBeUndefined();
    await fault('amqp/ok');
    expect((await run()).ok).toBe(true);
  });

  it('amqp/auth: the right password is refused: auth in connect (403), the password in no message', async () => {
    await fault('amqp/auth');
    const r = await run();
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    expect(r.failure?.message).toContain('ACCESS_REFUSED (403)');
    expect(r.phases.connect).toBeDefined();
    expect(JSON.stringify(r)).not.toContain(password);
    await fault('amqp/ok');
    expect((await run()).ok).toBe(true);
  });

  it('amqp/noqueue: vakt.canary is gone (404, queue_missing in channel); a server-named queue still works', async () => {
    await fault('amqp/noqueue');
    const r = await run();
    expect(r.failure).toMatchObject({ phase: 'channel', reason: 'queue_missing' });
    expect(r.failure?.message).toContain("NOT_FOUND (404): NOT_FOUND - no queue 'vakt.canary' in vhost '/'");
    expect((await run({ username: SANDBOX_AMQP_USER, password: 'canary' })).ok).toBe(true);
    await fault('amqp/ok');
    expect(sb.amqp.depth(CANARY_QUEUE)).toBe(0);
    expect((await run()).ok).toBe(true);
  });

  it('the queue deleted while a run waits for its canary: the consumer is cancelled, queue_missing in transit', async () => {
    await fault('amqp/stall');
    const waiting = run(canary, 5000);
    await until(() => sb.amqp.depth(CANARY_QUEUE) === 1);
    await fault('amqp/noqueue');
    const r = await waiting;
    expect(r.failure).toMatchObject({ phase: 'transit', reason: 'queue_missing' });
    expect(r.failure?.message).toContain('cancelled the consumer');
    expect((await fault('reset')).amqp).toBe('ok');
    expect((await run()).ok).toBe(true);
  });

  it('amqp/down: refused in connect; reset listens again', async () => {
    expect((await fault('amqp/down')).amqp).toBe('down');
    expect((await run()).failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect((await fault('reset')).amqp).toBe('ok');
    expect((await run()).ok).toBe(true);
  });

  it('the control API lists the amqp switch and refuses unknown modes', async () => {
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as { amqp: string; modes: { amqp: string[] } };
    expect(list.amqp).toBe('ok');
    expect(list.modes.amqp).toEqual([...AMQP_MODES]);
    expect(list.modes.amqp).toEqual(['ok', 'slow', 'stall', 'blocked', 'auth', 'noqueue', 'down']);
    for (const bad of ['amqp/explode', 'amqp/timeout', 'amqp', 'amqp/pass']) {
      expect((await fetch(`${sb.controlUrl}/faults/${bad}`, { method: 'POST' })).status, bad).toBe(400);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Raw bytes: frames written by hand (specification 4.2.3), read back with a reader of their own.

const PROTOCOL_HEADER = Buffer.from('AMQP\x00\x00\x09\x01', 'latin1');
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const shortstr = (s: string) => Buffer.concat([Buffer.of(Buffer.byteLength(s)), Buffer.from(s)]);
const longstr = (b: Buffer | string) => Buffer.concat([u32(Buffer.byteLength(b)), Buffer.from(b)]);
const frameOf = (type: number, channel: number, payload: Buffer, end = 0xce) =>
  Buffer.concat([Buffer.of(type), u16(channel), u32(payload.length), payload, Buffer.of(end)]);
const methodFrame = (channel: number, classId: number, methodId: number, ...args: Buffer[]) =>
  frameOf(1, channel, Buffer.concat([u16(classId), u16(methodId), ...args]));
/** connection.start-ok announcing authentication_failure_close, PLAIN with the given password. */
const startOk = (
  pw: string,
  properties = longstr(
    Buffer.concat([
      shortstr('capabilities'),
      Buffer.from('F'),
      longstr(Buffer.concat([shortstr('authentication_failure_close'), Buffer.from('t'), Buffer.of(1)])),
    ]),
  ),
) => methodFrame(0, 10, 11, properties, shortstr('PLAIN'), longstr(`\0${SANDBOX_AMQP_USER}\0${pw}`), shortstr('en_US'));
const tuneOk = methodFrame(0, 10, 31, u16(8), u32(FRAME_MAX), u16(0));
const open = methodFrame(0, 10, 40, shortstr('/'), shortstr(''), Buffer.of(0));
const channelOpen = methodFrame(1, 20, 10, shortstr(''));

interface Reply {
  frames: { type: number; channel: number; method: number; payload: Buffer }[];
  /** The server closed the connection (within the test's time). */
  closed: boolean;
}

const CONNECTION_CLOSE = 0x000a_0032;
const CONNECTION_CLOSE_OK = 0x000a_0033;
const CHANNEL_CLOSE = 0x0014_0028;

/** The reply code of the first connection.close (or channel.close) among the frames. */
const closeCode = (r: Reply, method: number = CONNECTION_CLOSE) => r.frames.find((f) => f.method === method)?.payload.readUInt16BE(4);

/** The broker's connection.close code for `parts`, once it has closed the connection after the client's close-ok. */
async function closedWith(parts: Buffer[]): Promise<number | undefined> {
  const r = await exchange(parts);
  expect(r.closed, 'the broker closed the connection').toBe(true);
  return closeCode(r);
}

/**
 * Writes `parts` to the broker at once, then reads what comes back. A connection.close from the
 * broker is answered with close-ok, as a client does; the broker must then close the connection
 * (`closed`) within `settleMs`.
 */
function exchange(parts: Buffer[], settleMs = 3000): Promise<Reply> {
  return new Promise((resolve) => {
    const s: Socket = createConnection(sb.ports.amqp, '127.0.0.1');
    const reader = new FrameReader(1 << 30);
    const frames: Reply['frames'] = [];
    let first = true;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ frames, closed });
    };
    const timer = setTimeout(() => finish(false), settleMs);
    s.on('data', (d: Buffer) => {
      // Our own protocol header comes back unframed when the broker refuses a client's.
      if (first && d.subarray(0, 4).equals(PROTOCOL_HEADER.subarray(0, 4))) d = d.subarray(8);
      first = false;
      reader.push(d);
      for (let f = reader.next(); f; f = reader.next()) {
        const method = f.type === 1 ? f.payload.readUInt32BE(0) : 0;
        frames.push({ ...f, method });
        if (method === CONNECTION_CLOSE) s.write(methodFrame(0, 10, 51));
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => finish(true));
    s.on('connect', () => {
      for (const p of parts) s.write(p);
    });
  });
}

describe('sandbox amqp broker: what no client should send', () => {
  it('a reader of its own: a frame over the limit is refused from its header, before its payload is waited for', () => {
    const r = new FrameReader(FRAME_MIN);
    r.push(Buffer.concat([Buffer.of(1), u16(0), u32(FRAME_MIN)]));
    expect(() => r.next()).toThrow(/larger than frame_max 4096/);
    const ok = new FrameReader(FRAME_MIN);
    const f = methodFrame(0, 10, 51);
    ok.push(f.subarray(0, 5));
    expect(ok.next()).toBeUndefined();
    ok.push(f.subarray(5));
    expect(ok.next()).toMatchObject({ type: 1, channel: 0 });
    expect(ok.buffered).toBe(0);
    const bad = new FrameReader(FRAME_MIN);
    bad.push(frameOf(1, 0, Buffer.alloc(4), 0x00));
    expect(() => bad.next()).toThrow(/frame-end/);
  });

  it('garbage and another protocol header: answered with the AMQP 0-9-1 header, then closed', async () => {
    for (const bytes of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from('AMQP\x00\x01\x00\x00', 'latin1'), Buffer.alloc(100_000, 0xff)]) {
      const got: Buffer[] = [];
      await new Promise<void>((resolve) => {
        const s = createConnection(sb.ports.amqp, '127.0.0.1', () => s.write(bytes));
        s.on('data', (d: Buffer) => got.push(d));
        s.on('error', () => undefined);
        s.on('close', () => resolve());
      });
      expect(Buffer.concat(got)).toEqual(PROTOCOL_HEADER);
    }
  });

  it('oversized and malformed frames close the connection with the reply code the specification names', async () => {
    // A frame announcing 2 GiB before tuning: 501 at once, without the payload ever being sent.
    const huge = await exchange([PROTOCOL_HEADER, Buffer.concat([Buffer.of(1), u16(0), u32(0x7fff_fff0)])]);
    expect(huge.closed).toBe(true);
    expect(closeCode(huge)).toBe(REPLY.frameError);
    // A start-ok larger than the 4096 bytes allowed before tuning.
    const big = await exchange([PROTOCOL_HEADER, startOk(password, longstr(Buffer.alloc(5000)))]);
    expect(closeCode(big)).toBe(REPLY.frameError);
    // No frame-end octet.
    expect(await closedWith([PROTOCOL_HEADER, frameOf(1, 0, Buffer.from(startOk(password).subarray(7, -1)), 0x41)])).toBe(REPLY.frameError);
    // A client-properties table that claims more than it holds, an unknown field type, tables nested too deep.
    expect(await closedWith([PROTOCOL_HEADER, startOk(password, u32(100))])).toBe(REPLY.syntaxError);
    const unknownType = longstr(Buffer.concat([shortstr('k'), Buffer.from('Z'), Buffer.of(1)]));
    expect(await closedWith([PROTOCOL_HEADER, startOk(password, unknownType)])).toBe(REPLY.syntaxError);
    let nested = Buffer.alloc(4);
    for (let i = 0; i < 20; i++) nested = longstr(Buffer.concat([shortstr('n'), Buffer.from('F'), nested]));
    expect(await closedWith([PROTOCOL_HEADER, startOk(password, nested)])).toBe(REPLY.syntaxError);
    // A method frame shorter than its ids; a heartbeat on a channel; a frame type that does not exist.
    expect(await closedWith([PROTOCOL_HEADER, frameOf(1, 0, Buffer.of(0, 10))])).toBe(REPLY.frameError);
    expect(await closedWith([PROTOCOL_HEADER, frameOf(8, 3, Buffer.alloc(0))])).toBe(REPLY.frameError);
    expect(await closedWith([PROTOCOL_HEADER, frameOf(9, 0, Buffer.alloc(0))])).toBe(REPLY.frameError);
  });

  it('frames out of order: channel and content frames that do not fit the conversation', async () => {
    const login = [PROTOCOL_HEADER, startOk(password), tuneOk, open];
    // A refused login, by hand: 403 for a client that takes it.
    expect(await closedWith([PROTOCOL_HEADER, startOk('wrong')])).toBe(REPLY.accessRefused);
    // The handshake out of order, then a method on a channel that was never opened.
    expect(await closedWith([PROTOCOL_HEADER, open])).toBe(REPLY.commandInvalid);
    expect(await closedWith([...login, methodFrame(1, 85, 10, Buffer.of(0))])).toBe(REPLY.channelError);
    // Content without a publish; a method where the content of a publish belongs.
    const publish = methodFrame(1, 60, 40, u16(0), shortstr(''), shortstr(CANARY_QUEUE), Buffer.of(0));
    expect(await closedWith([...login, channelOpen, frameOf(3, 1, Buffer.from('body'))])).toBe(REPLY.unexpectedFrame);
    expect(await closedWith([...login, channelOpen, publish, methodFrame(1, 60, 10, u32(0), u16(1), Buffer.of(0))])).toBe(REPLY.unexpectedFrame);
    // A body larger than its header announced.
    const header = (size: bigint, props = u16(0)) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(size);
      return frameOf(2, 1, Buffer.concat([u16(60), u16(0), b, props]));
    };
    expect(await closedWith([...login, channelOpen, publish, header(2n), frameOf(3, 1, Buffer.from('three'))])).toBe(REPLY.frameError);
    // Properties that claim a header table and hold none.
    expect(await closedWith([...login, channelOpen, publish, header(0n, u16(1 << 13))])).toBe(REPLY.syntaxError);
    // A message over the size limit closes only its channel (406); the connection stays usable.
    const bye = methodFrame(0, 10, 50, u16(200), shortstr('bye'), u16(0), u16(0));
    const tooBig = await exchange([...login, channelOpen, publish, header(BigInt(MAX_BODY + 1)), bye]);
    expect(closeCode(tooBig, CHANNEL_CLOSE)).toBe(REPLY.preconditionFailed);
    expect(tooBig.frames.map((f) => f.method)).toContain(CONNECTION_CLOSE_OK);
    // An ack for a delivery that never was: 406 on the channel.
    const tag7 = Buffer.alloc(8);
    tag7.writeBigUInt64BE(7n);
    const unknownTag = await exchange([...login, channelOpen, methodFrame(1, 60, 80, tag7, Buffer.of(0)), bye]);
    expect(closeCode(unknownTag, CHANNEL_CLOSE)).toBe(REPLY.preconditionFailed);
    expect(unknownTag.frames.map((f) => f.method)).toContain(CONNECTION_CLOSE_OK);
  });

  it('a client gone mid-frame, and one that never finishes its header: the broker carries on, holding nothing', async () => {
    const half = createConnection(sb.ports.amqp, '127.0.0.1');
    await new Promise((r) => half.once('connect', r));
    half.end(Buffer.concat([PROTOCOL_HEADER, startOk(password).subarray(0, 20)]));
    const quiet = createConnection(sb.ports.amqp, '127.0.0.1');
    await new Promise((r) => quiet.once('connect', r));
    quiet.write('AMQ');
    try {
      const r = await run();
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
    } finally {
      quiet.destroy();
    }
    await until(() => sb.amqp.connections.size === 0);
    expect(sb.amqp.heldBytes).toBe(0);
  });
});
