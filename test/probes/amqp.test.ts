// The amqp probe's pure parts (options and their rules, the classification of amqplib's and the
// broker's errors, the transit limit, the canary marker) and what needs no broker: a closed port,
// a peer that accepts and never answers, a peer that drops SYNs, garbage, an AMQP protocol header
// of another version, a peer that hangs up, an abort in the middle of the handshake. Two peers
// send one or two hand-made AMQP frames (a connection.start, a connection.close) to reach the
// login; they are not brokers. The conversation with a real broker (canary end to end, a refused
// login, TTL clean-up) is in test/system/amqp.test.ts.
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { KIND, KIND_OPTIONS } from '../../probes/kinds.js';
import { amqpProbe, CANARY_HEADER, classifyAmqp, classifyReplyCode, isCanary, slowTransit } from '../../probes/amqp/probe.js';
import { ProbeAbortError } from '../../probes/kit/net.js';
import { runRedactor } from '../../probes/kit/redact.js';
import type { ProbeResult } from '../../probes/types.js';
import { leaks } from '../helpers/leaks.js';
import { blackholePeer, budget, BUSY_SLACK_MS, closedPort, type Peer, quietLog, tcpPeer, targetsOf } from '../helpers/peers.js';

const PASSWORD = 'Canary-S3cret-pw';

describe('amqp options', () => {
  const issues = (v: unknown) => (KIND_OPTIONS.amqp.safeParse(v).error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);

  it('defaults: guest on vhost "/", the default exchange, a 60 s message TTL', () => {
    expect(KIND_OPTIONS.amqp.parse({})).toEqual({ vhost: '/', username: 'guest', exchange: '', messageTtl: 60_000, ipFamily: 'auto' });
  });

  it('takes every option, durations in ms', () => {
    const o = KIND_OPTIONS.amqp.parse({
      vhost: 'lab',
      username: 'vakt',
      password: 'amqp_pw',
      tls: { caFile: 'ca.pem' },
      queue: 'vakt.canary.odense',
      exchange: 'integration',
      routingKey: 'canary.odense',
      heartbeat: '30s',
      messageTtl: '5m',
      ipFamily: 'ip4',
      transitDegradedAbove: '250ms',
    });
    expect(o).toMatchObject({
      vhost: 'lab',
      username: 'vakt',
      password: 'amqp_pw',
      queue: 'vakt.canary.odense',
      exchange: 'integration',
      routingKey: 'canary.odense',
      heartbeat: 30_000,
      messageTtl: 300_000,
      transitDegradedAbove: 250,
    });
    expect(KIND_OPTIONS.amqp.parse({ tls: true }).tls).toBe(true);
    expect(KIND_OPTIONS.amqp.parse({ heartbeat: '0s' }).heartbeat).toBe(0);
  });

  it('refuses what cannot work', () => {
    expect(issues({ username: 'vakt' })).toEqual(['password: expected password (a secret name) with a username other than guest']);
    expect(issues({ exchange: 'integration' })).toEqual([
      'queue: expected queue (the queue the exchange routes the canary to, consumed by the probe) with exchange',
    ]);
    expect(issues({ queue: 'q', routingKey: 'k' })).toEqual(['routingKey: expected routingKey only with exchange (the default exchange routes by queue name)']);
    expect(issues({ heartbeat: '1500ms' })).toEqual(['heartbeat: expected whole seconds from 0s to 65535s (0s turns heartbeats off)']);
    expect(issues({ heartbeat: '19h' })).toHaveLength(1);
    expect(issues({ messageTtl: '0s' })).toEqual(['messageTtl: expected a duration greater than 0']);
    expect(issues({ vhost: '' })).toHaveLength(1);
    expect(issues({ queue: '' })).toHaveLength(1);
    expect(issues({ queue: 'q'.repeat(256) })).toHaveLength(1);
    expect(issues({ username: 'vakt', password: 'not a name' })).toHaveLength(1);
    expect(issues({ tls: { verify: false } })).toHaveLength(1);
    expect(issues({ prefetch: 10 })).toHaveLength(1);
  });
});

describe('amqp classification', () => {
  const state = { socket: undefined, channelError: undefined, connectionError: undefined, blocked: undefined };
  const c = { tls: false, username: 'vakt', vhost: '/', redactor: runRedactor({ password: PASSWORD }) };
  /** An amqplib error for a channel or connection the broker closed. */
  const closed = (code: number, name: string, text: string) =>
    Object.assign(new Error(`Channel closed by server: ${code} (${name}) with message "${text}"`), { code });

  it('broker reply codes: 403 auth, 404 queue_missing, 320 reset, the rest protocol', () => {
    expect(classifyReplyCode(404, "NOT_FOUND - no queue 'canary' in vhost '/'", 'channel')).toEqual({
      reason: 'queue_missing',
      message: "channel: NOT_FOUND (404): NOT_FOUND - no queue 'canary' in vhost '/'",
      answered: true,
    });
    expect(classifyReplyCode(403, "ACCESS_REFUSED - access to queue 'canary' in vhost '/' refused for user 'vakt'", 'channel').reason).toBe('auth');
    expect(classifyReplyCode(320, 'CONNECTION_FORCED - broker forced connection closure with reason shutdown', 'transit')).toMatchObject({ reason: 'reset' });
    for (const code of [405, 406, 501, 504, 530, 541, 599]) expect(classifyReplyCode(code, '', 'publish').reason, String(code)).toBe('protocol');
  });

  it('a generic "channel closed" takes the broker close the channel saw', () => {
    const channelError = closed(404, 'NOT-FOUND', "NOT_FOUND - no exchange 'integration' in vhost '/'");
    const r = classifyAmqp(new Error('channel closed'), 'publish', { ...state, channelError }, c);
    expect(r).toEqual({ reason: 'queue_missing', message: "publish: NOT_FOUND (404): NOT_FOUND - no exchange 'integration' in vhost '/'", answered: true });
    expect(classifyAmqp(new Error('channel closed'), 'publish', state, c)).toEqual({ reason: 'protocol', message: 'publish: channel closed' });
  });

  it("amqplib's handshake outcomes", () => {
    const refused = classifyAmqp(
      new Error(
        'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."',
      ),
      'connect',
      state,
      c,
    );
    expect(refused).toMatchObject({ reason: 'auth', answered: true });
    expect(refused.message).toBe(
      'the broker refused the login of user "vakt": ACCESS_REFUSED (403): ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.',
    );
    expect(
      classifyAmqp(new Error('Handshake terminated by server: 530 (NOT-ALLOWED) with message "NOT_ALLOWED - connection limit"'), 'connect', state, c).reason,
    ).toBe('protocol');
    expect(classifyAmqp(new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>'), 'connect', state, { ...c, vhost: 'lab' })).toEqual({
      reason: 'auth',
      message: 'the broker refused to open virtual host "lab" for user "vakt" (it does not exist, or the user has no permission on it)',
      answered: true,
    });
    expect(classifyAmqp(new Error('SASL mechanism PLAIN is not provided by the server'), 'connect', state, c).reason).toBe('auth');
    expect(classifyAmqp(new Error('connect ETIMEDOUT'), 'connect', state, c).reason).toBe('timeout');
    expect(classifyAmqp(new Error('Frame size 1342177536 exceeds maxFrameSize 4194304'), 'connect', state, c)).toEqual({
      reason: 'protocol',
      message: 'the peer answered with an AMQP protocol header of another version: it does not speak AMQP 0-9-1',
    });
    expect(classifyAmqp(new Error('Frame size 1345270062 exceeds maxFrameSize 4194304'), 'connect', state, c).message).toBe(
      'the peer answered with an AMQP protocol header of another version: it does not speak AMQP 0-9-1',
    );
    expect(classifyAmqp(new Error('Frame size 758263344 exceeds maxFrameSize 4194304'), 'connect', state, c).reason).toBe('protocol');
    expect(classifyAmqp(new Error('Unknown frame type 72'), 'connect', state, c).reason).toBe('protocol');
  });

  it('a close during the handshake is auth only once the login was sent', () => {
    const closedEarly = new Error('Socket closed abruptly during opening handshake');
    const socketAfter = (bytesWritten: number) => ({ ...state, socket: { bytesWritten } as Socket });
    expect(classifyAmqp(closedEarly, 'connect', socketAfter(8), c).reason).toBe('protocol');
    expect(classifyAmqp(closedEarly, 'connect', socketAfter(8 + 120), c).reason).toBe('auth');
    // With TLS the socket is not seen: a peer that completed the TLS handshake is taken as a broker.
    expect(classifyAmqp(closedEarly, 'connect', state, { ...c, tls: true }).reason).toBe('auth');
  });

  it('socket errors by code; the deadline by phase', () => {
    expect(classifyAmqp(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5672'), { code: 'ECONNREFUSED' }), 'connect', state, c).reason).toBe('refused');
    expect(classifyAmqp(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'transit', state, c).reason).toBe('reset');
    expect(classifyAmqp(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'connect', state, c).reason).toBe(
      'tls_handshake',
    );
    expect(classifyAmqp(Object.assign(new Error('The operation was aborted'), { code: 'ABORT_ERR' }), 'connect', state, c).reason).toBe('timeout');
    expect(classifyAmqp(new ProbeAbortError('run ran out of time'), 'transit', state, c)).toEqual({
      reason: 'timeout',
      message: "the canary was confirmed but not delivered back before the run's deadline",
    });
    expect(classifyAmqp(new ProbeAbortError('x'), 'channel', state, c)).toEqual({
      reason: 'timeout',
      message: "channel did not complete before the run's deadline",
    });
    expect(classifyAmqp(new ProbeAbortError('x'), 'publish', { ...state, blocked: 'low on memory' }, c).message).toContain(
      'the broker blocks publishers (low on memory)',
    );
  });

  it('never passes the password on, whatever a broker or library wrote', () => {
    const echoed = [
      new Error(`Handshake terminated by server: 403 (ACCESS-REFUSED) with message "bad password ${PASSWORD}"`),
      Object.assign(new Error(`connect ECONNRESET ${PASSWORD}`), { code: 'ECONNRESET' }),
      new Error(`something ${PASSWORD} went wrong`),
      // Echoed encoded: base64 (alone and inside "user:password"), URL-encoded, JSON-escaped.
      new Error(`close reason ${Buffer.from(PASSWORD).toString('base64')}`),
      new Error(`PLAIN response ${Buffer.from(`\0vakt\0${PASSWORD}`).toString('base64')}`),
      new Error(`form ${encodeURIComponent(PASSWORD)} json ${JSON.stringify(PASSWORD)}`),
    ];
    for (const err of echoed) {
      const message = classifyAmqp(err, 'connect', state, c).message;
      expect(leaks(message, PASSWORD), message).toBe(false);
      expect(message).toContain('[REDACTED]');
    }
    expect(
      classifyAmqp(new Error('channel closed'), 'publish', { ...state, channelError: closed(406, 'PRECONDITION-FAILED', PASSWORD) }, c).message,
    ).not.toContain(PASSWORD);
  });
});

describe('amqp transit limit and canary marker', () => {
  it('names a transit over its limit, nothing else', () => {
    expect(slowTransit({ connect: 0.01, transit: 0.61 }, { transitDegradedAbove: 300 })).toBe('transit took 610ms, above transitDegradedAbove 300ms');
    expect(slowTransit({ transit: 2.5 }, { transitDegradedAbove: 1000 })).toBe('transit took 2.50s, above transitDegradedAbove 1.00s');
    expect(slowTransit({ transit: 0.2 }, { transitDegradedAbove: 300 })).toBeUndefined();
    expect(slowTransit({ connect: 5 }, { transitDegradedAbove: 300 })).toBeUndefined();
    expect(slowTransit({ transit: 5 }, {})).toBeUndefined();
  });

  it('a canary is a message with the marker header, whatever its id', () => {
    expect(isCanary({ properties: { headers: { [CANARY_HEADER]: 1 } } as never })).toBe(true);
    expect(isCanary({ properties: { headers: { 'x-other': 1 } } as never })).toBe(false);
    expect(isCanary({ properties: { headers: undefined } as never })).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Runs that need no broker: real sockets on loopback.

const peers: Peer[] = [];
afterAll(async () => {
  for (const p of peers) await p.close();
});
async function peer<P extends Peer>(p: Promise<P>): Promise<P> {
  const x = await p;
  peers.push(x);
  return x;
}

function probe(
  target: string,
  options: Record<string, unknown> = { username: 'vakt', password: 'pw' },
  timeoutMs = 3000,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  return amqpProbe.run({
    ...targetsOf('amqp', target),
    options: KIND_OPTIONS.amqp.parse(options),
    ...budget(signal ? 10_000 : timeoutMs, signal),
    log: quietLog,
    secrets: { pw: PASSWORD },
  });
}

/** An AMQP 0-9-1 method frame on channel 0: class and method ids, then the arguments. */
function methodFrame(classId: number, methodId: number, args: Buffer): Buffer {
  const payload = Buffer.concat([Buffer.from([classId >> 8, classId & 0xff, methodId >> 8, methodId & 0xff]), args]);
  const header = Buffer.alloc(7);
  header.writeUInt8(1, 0);
  header.writeUInt16BE(0, 1);
  header.writeUInt32BE(payload.length, 3);
  return Buffer.concat([header, payload, Buffer.from([0xce])]);
}

const longString = (s: string) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(Buffer.byteLength(s));
  return Buffer.concat([b, Buffer.from(s)]);
};

/** connection.start: version 0-9, no server properties, PLAIN, en_US. */
const CONNECTION_START = methodFrame(10, 10, Buffer.concat([Buffer.from([0, 9, 0, 0, 0, 0]), longString('PLAIN'), longString('en_US')]));

/** connection.close with a reply code and text. */
function connectionClose(code: number, text: string): Buffer {
  const t = Buffer.from(text.slice(0, 255));
  return methodFrame(10, 50, Buffer.concat([Buffer.from([code >> 8, code & 0xff, t.length]), t, Buffer.from([0, 0, 0, 0])]));
}

/** Answers the client's protocol header with connection.start, then does `onLogin` with the start-ok frame. */
function loginPeer(onLogin: (s: Socket, startOk: Buffer) => void): Promise<Peer & { sockets: Set<Socket> }> {
  return tcpPeer((s) => {
    let seen: Buffer = Buffer.alloc(0);
    let started = false;
    s.on('data', (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      if (!started && seen.length >= 8) {
        started = true;
        seen = seen.subarray(8);
        s.write(CONNECTION_START);
      }
      if (started && seen.length >= 7 && seen.length >= 8 + seen.readUInt32BE(3)) {
        const startOk = seen;
        seen = Buffer.alloc(0);
        onLogin(s, startOk);
      }
    });
  });
}

describe('amqp probe without a broker', () => {
  it('a closed port is refused in connect, with no phase timed', async () => {
    const r = await probe(`127.0.0.1:${await closedPort()}`);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect(r.phases).toEqual({});
    expect(r.values?.ip_protocol).toBe(4);
  });

  it('a peer that accepts and never answers: timeout in connect, just before the deadline, socket closed', async () => {
    // The peer reads (and drops) what it gets: a socket with unread bytes would never see the close.
    const p = await peer(tcpPeer((s) => s.resume()));
    const start = performance.now();
    const r = await probe(`127.0.0.1:${p.port}`, undefined, 600);
    const took = performance.now() - start;
    expect(took).toBeGreaterThan(450);
    expect(took).toBeLessThan(600 + BUSY_SLACK_MS);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'timeout' });
    expect(r.phases).toEqual({});
    await new Promise((res) => setTimeout(res, 100));
    expect(p.sockets.size).toBe(0);
  });

  it('a peer that drops SYNs: timeout in connect at the deadline', async () => {
    const p = await peer(blackholePeer());
    const start = performance.now();
    const r = await probe(`127.0.0.1:${p.port}`, undefined, 500);
    expect(performance.now() - start).toBeLessThan(500 + BUSY_SLACK_MS);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'timeout' });
  });

  it('garbage is protocol', async () => {
    const p = await peer(tcpPeer((s) => s.once('data', () => s.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'))));
    const r = await probe(`127.0.0.1:${p.port}`);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'protocol' });
    expect(r.failure?.message).toContain('does not speak AMQP 0-9-1');
  });

  it('a protocol header of another version (AMQP 1.0) is protocol, named as such', async () => {
    const p = await peer(tcpPeer((s) => s.once('data', () => s.end(Buffer.from('AMQP\x00\x01\x00\x00', 'latin1')))));
    const r = await probe(`127.0.0.1:${p.port}`);
    expect(r.failure).toEqual({
      phase: 'connect',
      reason: 'protocol',
      message: 'the peer answered with an AMQP protocol header of another version: it does not speak AMQP 0-9-1',
    });
  });

  it('a peer that hangs up without a word is protocol (or reset), never auth', async () => {
    const closes = await peer(tcpPeer((s) => s.once('data', () => s.end())));
    const r = await probe(`127.0.0.1:${closes.port}`);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'protocol' });
    expect(r.failure?.message).toContain('without answering the AMQP 0-9-1 protocol header');
    const resets = await peer(tcpPeer((s) => s.once('data', () => s.resetAndDestroy())));
    expect((await probe(`127.0.0.1:${resets.port}`)).failure).toMatchObject({ phase: 'connect', reason: 'reset' });
  });

  it('a peer that closes after the login was sent is auth, and the password stays out of the message', async () => {
    let login: Buffer = Buffer.alloc(0);
    const p = await peer(
      loginPeer((s, startOk) => {
        login = startOk;
        s.end();
      }),
    );
    const r = await probe(`127.0.0.1:${p.port}`);
    // The peer really got the PLAIN response with the password: the test reaches the login.
    expect(login.includes(Buffer.from(`\u0000vakt\u0000${PASSWORD}`))).toBe(true);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    expect(r.failure?.message).toBe(
      'the broker closed the connection during the handshake after the login of user "vakt" was sent (a refused login or virtual host "/")',
    );
  });

  it('a refusal that echoes the password (403) is auth, with the password removed', async () => {
    const p = await peer(
      loginPeer((s, startOk) =>
        s.write(connectionClose(403, `ACCESS_REFUSED - bad login ${startOk.toString('latin1').includes(PASSWORD) ? PASSWORD : 'none'}`)),
      ),
    );
    const r = await probe(`127.0.0.1:${p.port}`);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    expect(r.failure?.message).toBe('the broker refused the login of user "vakt": ACCESS_REFUSED (403): ACCESS_REFUSED - bad login [REDACTED]');
    expect(r.phases.connect).toBeGreaterThan(0);
  });

  it('an abort in the middle of the handshake closes the socket at once', async () => {
    let serverSawClose = false;
    const p = await peer(tcpPeer((s) => s.resume().once('close', () => (serverSawClose = true))));
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(new Error('agent stopping')), 200);
    const start = performance.now();
    const r = await probe(`127.0.0.1:${p.port}`, undefined, 0, ctrl.signal);
    expect(performance.now() - start).toBeLessThan(1000 + BUSY_SLACK_MS);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'timeout' });
    await new Promise((res) => setTimeout(res, 100));
    expect(serverSawClose).toBe(true);
    expect(p.sockets.size).toBe(0);
  });

  it('a password that names no secret is internal, nothing sent', async () => {
    const r = await amqpProbe.run({
      ...targetsOf('amqp', '127.0.0.1:1'),
      options: KIND_OPTIONS.amqp.parse({ username: 'vakt', password: 'missing' }),
      ...budget(1000),
      log: quietLog,
      secrets: {},
    });
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'internal' });
  });

  it('a target that is not host:port is refused on load (the probe gets it parsed)', () => {
    expect(KIND.amqp.target.schema.safeParse('amqp://broker:5672').success).toBe(false);
    expect(KIND.amqp.target.schema.parse('broker:5672')).toEqual({ text: 'broker:5672', host: 'broker', port: 5672 });
  });
});
