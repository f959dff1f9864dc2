// The radius probe against real UDP peers on 127.0.0.1: the sandbox's RADIUS server in each of
// its modes, and raw sockets that answer with what no server should (garbage, truncated,
// oversized, forged, another Identifier, a bad Message-Authenticator) or nothing at all. The
// packet code is checked against RFC 2865's own example (7.1). System tests against FreeRADIUS:
// test/system/radius.test.ts.
import { describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { radiusTarget } from '../../probes/radius/options.js';
import {
  ATTR,
  CODE,
  decodePacket,
  encodePacket,
  encodeReply,
  hidePassword,
  requestMessageAuthenticatorValid,
  responseAuthenticator,
  revealPassword,
  untagged,
  verifyReply,
  type Attribute,
} from '../../probes/radius/packet.js';
import { accessRequest, MAX_REPLY_MESSAGE, radiusProbe, readReply, replyMessageText } from '../../probes/radius/probe.js';
import { runRedactor } from '../../probes/kit/redact.js';
import type { ProbeResult } from '../../probes/types.js';
import { SandboxRadiusServer } from '../../sandbox/radius.js';
import { budget, BUSY_SLACK_MS, closedPort, quietLog, serviceDuring, targetsOf, udpPeersDuring } from '../helpers/peers.js';

const SECRET = 'shared-Secret-4711';
const PASSWORD = 'pr0be-Passw0rd';
const USER = 'svc-vakt-wifi';
const secrets = { pw: PASSWORD, radius: SECRET };
const base = { username: USER, password: 'pw', sharedSecret: 'radius' };

function probe(target: string, options: Record<string, unknown> = {}, ms = 2500, withSecrets: Record<string, string> = secrets): Promise<ProbeResult> {
  return radiusProbe.run({
    ...targetsOf('radius', target),
    options: KIND_OPTIONS.radius.parse({ ...base, ...options }),
    ...budget(ms),
    log: quietLog,
    secrets: withSecrets,
  });
}

/** A well-formed, correctly signed reply to `req` with the peer's `secret`. */
function signedReply(req: Buffer, code: number = CODE.accessAccept, attributes: Attribute[] = [], secret = SECRET, withMa = true): Buffer {
  const r = decodePacket(req);
  if (typeof r === 'string') throw new Error(r);
  return encodeReply(code, r.identifier, r.authenticator, attributes, Buffer.from(secret), withMa);
}

/**
 * The budget of a run that gets only replies it must drop: it waits for a genuine one until its
 * end, so a reply that a busy machine delays still arrives within it.
 */
const DROPPED_MS = 1500;

const text = (type: number, s: string): Attribute => ({ type, value: Buffer.from(s, 'utf8') });

describe('radius packets', () => {
  // RFC 2865 7.1: user nemo, password arctangent, secret xyzzy5461, and the server's Access-Accept.
  const rfcRequest = Buffer.from(
    '010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a801100506000000' + '03',
    'hex',
  );
  const rfcAccept = Buffer.from('0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103', 'hex');
  const rfcSecret = Buffer.from('xyzzy5461');

  it("hides a PAP password as RFC 2865's example does, and the server reveals it", () => {
    const req = decodePacket(rfcRequest);
    if (typeof req === 'string') throw new Error(req);
    const hidden = hidePassword(Buffer.from('arctangent'), rfcSecret, req.authenticator);
    expect(hidden.toString('hex')).toBe('0dbe708d93d413ce3196e43f782a0aee');
    expect(revealPassword(hidden, rfcSecret, req.authenticator).toString()).toBe('arctangent');
    // Longer than one block: each block chains on the one before.
    const long = Buffer.from('x'.repeat(40));
    const h = hidePassword(long, rfcSecret, req.authenticator);
    expect(h.length).toBe(48);
    expect(revealPassword(h, rfcSecret, req.authenticator).equals(long)).toBe(true);
  });

  it("computes the Response Authenticator of RFC 2865's example Access-Accept", () => {
    const req = decodePacket(rfcRequest);
    const reply = decodePacket(rfcAccept);
    if (typeof req === 'string' || typeof reply === 'string') throw new Error('not decoded');
    expect(responseAuthenticator(rfcAccept, req.authenticator, rfcSecret).toString('hex')).toBe('86fe220e7624ba2a1005f6bf9b55e0b2');
    expect(verifyReply(reply, req.authenticator, rfcSecret, false)).toBeUndefined();
    expect(verifyReply(reply, req.authenticator, Buffer.from('wrong'), false)).toMatch(/^its Response Authenticator does not verify/);
    expect(verifyReply(reply, req.authenticator, rfcSecret, true)).toBe('it carries no Message-Authenticator (requireMessageAuthenticator is set)');
  });

  it('builds an Access-Request with the Message-Authenticator first, signed with the shared secret', () => {
    const secret = Buffer.from(SECRET);
    for (const method of ['pap', 'chap'] as const) {
      const req = accessRequest({ username: USER, password: Buffer.from(PASSWORD), secret, method });
      const p = decodePacket(req.bytes);
      if (typeof p === 'string') throw new Error(p);
      expect(p.code).toBe(CODE.accessRequest);
      expect(p.attributes[0]?.type).toBe(ATTR.messageAuthenticator);
      expect(p.attributes.map((a) => a.type)).toEqual(
        method === 'pap'
          ? [ATTR.messageAuthenticator, ATTR.userName, ATTR.userPassword, ATTR.nasIdentifier]
          : [ATTR.messageAuthenticator, ATTR.userName, ATTR.chapPassword, ATTR.chapChallenge, ATTR.nasIdentifier],
      );
      expect(requestMessageAuthenticatorValid(req.bytes, secret)).toBe(true);
      expect(requestMessageAuthenticatorValid(req.bytes, Buffer.from('other'))).toBe(false);
      // The password never travels in the clear.
      expect(req.bytes.includes(Buffer.from(PASSWORD))).toBe(false);
    }
    const nas = decodePacket(accessRequest({ username: USER, password: Buffer.from('x'), secret, method: 'pap', nasIpAddress: '10.1.2.3' }).bytes);
    if (typeof nas === 'string') throw new Error(nas);
    expect(nas.attributes.find((a) => a.type === ATTR.nasIpAddress)?.value).toEqual(Buffer.from([10, 1, 2, 3]));
    expect(nas.attributes.some((a) => a.type === ATTR.nasIdentifier)).toBe(false);
  });

  it('refuses what is not a bounded, well-formed packet', () => {
    expect(decodePacket(Buffer.alloc(19))).toBe('19 bytes, shorter than a RADIUS header (20)');
    const head = (length: number, size = length) => {
      const b = Buffer.alloc(size);
      b.writeUInt8(2, 0);
      b.writeUInt16BE(length, 2);
      return b;
    };
    expect(decodePacket(head(19, 20))).toBe('a Length field of 19, expected 20 to 4096');
    expect(decodePacket(head(4097, 5000))).toBe('a Length field of 4097, expected 20 to 4096');
    expect(decodePacket(head(30, 25))).toBe('a Length field of 30 in a datagram of 25 bytes');
    const zeroLen = Buffer.concat([head(22), Buffer.alloc(0)]);
    zeroLen.writeUInt8(18, 20);
    zeroLen.writeUInt8(0, 21);
    expect(decodePacket(zeroLen)).toBe('attribute 18 at byte 20 with length 0, expected at least 2');
    const past = head(24);
    past.writeUInt8(18, 20);
    past.writeUInt8(9, 21);
    expect(decodePacket(past)).toBe("attribute 18 at byte 20 with length 9 runs past the packet's end (24)");
    const cut = head(21);
    expect(decodePacket(cut)).toBe('an attribute header cut off at byte 20');
    // Octets after the Length are padding.
    const padded = Buffer.concat([encodePacket(2, 7, Buffer.alloc(16), [text(ATTR.replyMessage, 'hi')]), Buffer.alloc(100, 0xff)]);
    const p = decodePacket(padded);
    expect(typeof p === 'string' ? p : p.raw.length).toBe(24);
  });

  it('reads a tagged Tunnel-Private-Group-Id without its tag', () => {
    expect(untagged(Buffer.from('\x01120', 'latin1')).toString()).toBe('120');
    expect(untagged(Buffer.from('120')).toString()).toBe('120');
  });

  it('quotes a Reply-Message bounded, on one line, with every secret redacted', () => {
    const redactor = runRedactor(secrets);
    const reply = { attributes: [text(ATTR.replyMessage, `Hello\r\n\x1b[31mpassword ${PASSWORD} is wrong\u2028`), text(ATTR.replyMessage, ' bye')] };
    expect(replyMessageText(reply, redactor)).toBe('Hello [31mpassword [REDACTED] is wrong bye');
    const long = replyMessageText({ attributes: [text(ATTR.replyMessage, 'å'.repeat(250))] }, redactor);
    expect([...(long ?? '')].length).toBe(MAX_REPLY_MESSAGE);
    expect(long?.endsWith('…')).toBe(true);
    expect(replyMessageText({ attributes: [] }, redactor)).toBeUndefined();
    expect(replyMessageText({ attributes: [text(ATTR.replyMessage, '\x00\x01')] }, redactor)).toBeUndefined();
  });

  it('takes host, host:port and [v6]:port, port 1812 by default', () => {
    const parse = (s: string) => radiusTarget.safeParse(s).data;
    expect(parse('nps1.region.example')).toEqual({ text: 'nps1.region.example', host: 'nps1.region.example', port: 1812 });
    expect(parse('10.0.0.1:11812')).toEqual({ text: '10.0.0.1:11812', host: '10.0.0.1', port: 11812 });
    expect(parse('[::1]:1812')).toEqual({ text: '[::1]:1812', host: '::1', port: 1812 });
    expect(parse('a b')).toBeUndefined();
  });

  it('refuses options that cannot be sent', () => {
    const bad = (o: Record<string, unknown>) => KIND_OPTIONS.radius.safeParse({ ...base, ...o }).error?.issues[0]?.message;
    expect(bad({ username: 'x'.repeat(254) })).toBe('expected a user name of at most 253 bytes in UTF-8 (one RADIUS attribute)');
    expect(bad({ nasIpAddress: '::1' })).toBe('expected an IPv4 address such as 10.0.0.5');
    expect(bad({ method: 'mschap' })).toMatch(/pap|chap/);
    expect(bad({ expect: {} })).toBe('expected at least one of filterId, class, tunnelPrivateGroupId');
    expect(bad({ retransmits: 11 })).toMatch(/10/);
    expect(KIND_OPTIONS.radius.safeParse({ username: USER, password: 'pw' }).success).toBe(false);
  });
});

describe('radius probe against the sandbox RADIUS server', () => {
  const server = new SandboxRadiusServer({ host: '127.0.0.1', port: 0, secret: SECRET, user: USER, password: PASSWORD, slowMs: 400 });
  const service = serviceDuring(server);

  it('PAP and CHAP: Access-Accept is ok, answered at once, with the expected filter and VLAN', async () => {
    server.setMode('ok');
    for (const method of ['pap', 'chap']) {
      const r = await probe(service.target(), { method, expect: { filterId: 'clinical-devices', tunnelPrivateGroupId: '120' } });
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.degraded).toBeUndefined();
      expect(r.values?.radius_attempts).toBe(1);
      expect(r.phases.request).toBeGreaterThan(0);
    }
  });

  it('a wrong password is auth (Access-Reject), with the Reply-Message quoted', async () => {
    server.setMode('ok');
    const r = await probe(service.target(), {}, 2500, { ...secrets, pw: 'not-the-password' });
    expect(r.failure).toEqual({
      phase: 'request',
      reason: 'auth',
      message: 'the server refused the login (Access-Reject); Reply-Message "Wrong user name or password"',
    });
  });

  it('reject: auth whatever the password', async () => {
    server.setMode('reject');
    const r = await probe(service.target());
    expect(r.failure).toMatchObject({ reason: 'auth', message: expect.stringContaining('"Account disabled in the directory"') as unknown });
  });

  it('challenge: radius_challenge', async () => {
    server.setMode('challenge');
    const r = await probe(service.target(), { method: 'chap' });
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'radius_challenge' });
    expect(r.failure?.message).toContain('Access-Challenge');
  });

  it('an expected attribute missing or different is assertion, naming only the expected value', async () => {
    server.setMode('ok');
    const r = await probe(service.target(), { expect: { filterId: 'clinical-devices', tunnelPrivateGroupId: '130' } });
    expect(r.failure).toEqual({
      phase: 'request',
      reason: 'assertion',
      message: 'the Access-Accept carries another Tunnel-Private-Group-Id, expected Tunnel-Private-Group-Id "130"',
    });
    const c = await probe(service.target(), { expect: { class: 'nurses' } });
    expect(c.failure?.message).toBe('the Access-Accept carries no Class, expected Class "nurses"');
  });

  it('slow (later than the retransmit interval): accepted after a retransmit, degraded retransmitted', async () => {
    server.setMode('slow');
    const before = server.received.length;
    const r = await probe(service.target(), { retransmitInterval: '150ms', retransmits: 5 });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('retransmitted');
    expect(r.values?.radius_attempts).toBeGreaterThan(1);
    // Every retransmission is the same request: same Identifier, same Request Authenticator, same bytes.
    const sent = server.received.slice(before);
    expect(sent.length).toBeGreaterThan(1);
    for (const s of sent) expect(s.equals(sent[0]!)).toBe(true);
    server.setMode('ok');
  });

  it('a request slower than requestDegradedAbove (no retransmit) is degraded slow', async () => {
    server.setMode('slow');
    const r = await probe(service.target(), { retransmitInterval: '2s', requestDegradedAbove: '100ms' });
    expect(r.ok).toBe(true);
    expect(r.degraded).toMatchObject({ reason: 'slow', message: expect.stringMatching(/^request took \d+ ms \(limit 100 ms\)$/) as unknown });
    server.setMode('ok');
  });

  it('silent: timeout after the retransmits that fit, with a message that names the shared secret', async () => {
    server.setMode('silent');
    const before = server.requests;
    const started = performance.now();
    const r = await probe(service.target(), { retransmits: 3, retransmitInterval: '200ms' }, 1000);
    expect(performance.now() - started).toBeLessThan(1000 + BUSY_SLACK_MS);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
    expect(r.failure?.message).toMatch(/^no answer to 4 Access-Requests \(200 ms apart\) before the deadline/);
    expect(r.failure?.message).toContain('shared secret');
    expect(server.requests - before).toBe(4);
    server.setMode('ok');
  });

  it("retransmits only within the budget: none after the run's own end", async () => {
    server.setMode('silent');
    const before = server.requests;
    const r = await probe(service.target(), { retransmits: 10, retransmitInterval: '400ms' }, 1000);
    expect(r.failure?.reason).toBe('timeout');
    expect(r.values?.radius_attempts).toBe(3);
    expect(server.requests - before).toBe(3);
    server.setMode('ok');
  });

  it('a wrong shared secret: the server drops the request (as FreeRADIUS does): timeout', async () => {
    server.setMode('ok');
    const r = await probe(service.target(), { retransmits: 1, retransmitInterval: '200ms' }, 800, { ...secrets, radius: 'not-the-secret' });
    expect(r.failure).toMatchObject({ reason: 'timeout', message: expect.stringContaining('wrong shared secret') as unknown });
  });

  it('badauth: an answer whose Response Authenticator does not verify is protocol, never believed', async () => {
    server.setMode('badauth');
    const r = await probe(service.target(), { retransmits: 0 }, DROPPED_MS);
    expect(r.ok).toBe(false);
    expect(r.failure).toEqual({
      phase: 'request',
      reason: 'protocol',
      message:
        'no valid answer to 1 Access-Request: 1 reply dropped: an Access-Accept whose Response Authenticator does not verify (the shared secret differs from the one the server has for this client, or the reply was altered)',
    });
    server.setMode('ok');
  });

  it('a closed port is refused (ICMP port unreachable on loopback)', async () => {
    const r = await probe(`127.0.0.1:${await closedPort()}`);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'refused' });
  });
});

describe('radius probe against hostile or broken peers', () => {
  const udp = udpPeersDuring();
  const peer = async (reply: (req: Buffer) => Buffer | Buffer[] | undefined) => {
    const p = await udp(reply);
    return { target: `127.0.0.1:${p.port}`, received: p.received };
  };
  const quick = { retransmits: 0 };

  it('garbage is protocol after the deadline (dropped, then no valid answer)', async () => {
    const { target } = await peer(() => Buffer.from('hello, this is not RADIUS at all'));
    const r = await probe(target, quick, DROPPED_MS);
    expect(r.failure).toMatchObject({ reason: 'protocol', message: expect.stringContaining('a malformed reply (a Length field of') as unknown });
  });

  it('a truncated reply (Length beyond the datagram) is protocol', async () => {
    const { target } = await peer((req) => signedReply(req).subarray(0, 20));
    const r = await probe(target, quick, DROPPED_MS);
    expect(r.failure?.message).toMatch(/a malformed reply \(a Length field of \d+ in a datagram of 20 bytes\)/);
  });

  it('an oversized datagram (60 KB) is read only as far as its Length field, the rest is padding', async () => {
    const { target } = await peer((req) => Buffer.concat([signedReply(req), Buffer.alloc(60_000, 0xee)]));
    const r = await probe(target);
    expect(r.ok).toBe(true);
  });

  it('a Length field above 4096 is refused', async () => {
    const { target } = await peer((req) => {
      const b = Buffer.concat([signedReply(req), Buffer.alloc(5000)]);
      b.writeUInt16BE(4500, 2);
      return b;
    });
    const r = await probe(target, quick, DROPPED_MS);
    expect(r.failure?.message).toContain('a Length field of 4500, expected 20 to 4096');
  });

  it('a forged reply first, then the genuine one: the genuine one counts', async () => {
    const { target } = await peer((req) => {
      const forged = signedReply(req, CODE.accessReject, [], 'attacker-secret');
      return [forged, signedReply(req)];
    });
    const r = await probe(target);
    expect(r.ok).toBe(true);
  });

  it('a reply to another Identifier is dropped', async () => {
    const { target } = await peer((req) => {
      const b = signedReply(req);
      b.writeUInt8((b.readUInt8(1) + 1) % 256, 1);
      return b;
    });
    const r = await probe(target, quick, DROPPED_MS);
    expect(r.failure?.message).toMatch(/1 reply dropped: a reply with Identifier \d+, ours was \d+$/);
  });

  it('our own request echoed back is not an answer', async () => {
    const { target } = await peer((req) => req);
    const r = await probe(target, quick, DROPPED_MS);
    expect(r.failure).toMatchObject({ reason: 'protocol', message: expect.stringContaining('1 reply dropped: an Access-Request, expected') as unknown });
  });

  it('a correct Response Authenticator with a Message-Authenticator that does not verify is protocol', async () => {
    const { target } = await peer((req) => {
      const r = decodePacket(req);
      if (typeof r === 'string') return undefined;
      const reply = encodePacket(CODE.accessAccept, r.identifier, r.authenticator, [{ type: ATTR.messageAuthenticator, value: Buffer.alloc(16, 7) }]);
      responseAuthenticator(reply, r.authenticator, Buffer.from(SECRET)).copy(reply, 4);
      return reply;
    });
    const r = await probe(target, quick, DROPPED_MS);
    expect(r.failure?.message).toContain('an Access-Accept whose Message-Authenticator does not verify');
  });

  it('requireMessageAuthenticator: a reply without one is protocol; with one it is ok', async () => {
    const { target } = await peer((req) => signedReply(req, CODE.accessAccept, [], SECRET, false));
    expect((await probe(target, { ...quick }, DROPPED_MS)).ok).toBe(true);
    const r = await probe(target, { ...quick, requireMessageAuthenticator: true }, DROPPED_MS);
    expect(r.failure?.message).toContain('carries no Message-Authenticator (requireMessageAuthenticator is set)');
    const signed = await peer((req) => signedReply(req));
    expect((await probe(signed.target, { ...quick, requireMessageAuthenticator: true })).ok).toBe(true);
  });

  it('NAS-Identifier and NAS-IP-Address go out as configured', async () => {
    const { target, received } = await peer((req) => signedReply(req));
    expect((await probe(target, { nasIdentifier: 'ap-ward-7', nasIpAddress: '10.9.8.7' })).ok).toBe(true);
    const p = decodePacket(received[0]!);
    if (typeof p === 'string') throw new Error(p);
    expect(p.attributes.find((a) => a.type === ATTR.nasIdentifier)?.value.toString()).toBe('ap-ward-7');
    expect(p.attributes.find((a) => a.type === ATTR.nasIpAddress)?.value).toEqual(Buffer.from([10, 9, 8, 7]));
  });

  it('a Reply-Message that echoes the password and the shared secret comes out redacted and bounded', async () => {
    const { target } = await peer((req) => signedReply(req, CODE.accessReject, [text(ATTR.replyMessage, `bad ${PASSWORD} with ${SECRET} ${'x'.repeat(200)}`)]));
    const r = await probe(target);
    expect(r.failure?.reason).toBe('auth');
    expect(r.failure?.message).not.toContain(PASSWORD);
    expect(r.failure?.message).not.toContain(SECRET);
    expect(r.failure?.message).toContain('"bad [REDACTED] with [REDACTED] xxx');
    expect(r.failure?.message.length).toBeLessThan(250);
  });

  it('readReply drops a reply with an attribute of length 1', () => {
    const req = { identifier: 9, authenticator: Buffer.alloc(16, 1) };
    const b = encodePacket(CODE.accessAccept, 9, Buffer.alloc(16), [text(ATTR.replyMessage, 'x')]);
    b.writeUInt8(1, 21);
    expect(readReply(b, req, Buffer.from(SECRET), false)).toBe('a malformed reply (attribute 18 at byte 20 with length 1, expected at least 2)');
  });

  it('a peer that never answers: timeout at the deadline', async () => {
    const { target, received } = await peer(() => undefined);
    const started = performance.now();
    const r = await probe(target, { retransmitInterval: '100ms', retransmits: 2 }, 700);
    expect(performance.now() - started).toBeLessThan(700 + BUSY_SLACK_MS);
    expect(r.failure).toMatchObject({ reason: 'timeout' });
    expect(received).toHaveLength(3);
  });
});
