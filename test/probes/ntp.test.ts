// The ntp probe against real UDP peers on 127.0.0.1: the sandbox's time server in each of its
// modes, and raw sockets that answer with what no server should (short, wrong mode, stale,
// forged, huge). System tests against chrony and ntpsec: test/system/ntp.test.ts.
import { describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { fromNtpTimestamp, ntpProbe, ntpTimestamp, parseReply, refIdText } from '../../probes/ntp/probe.js';
import { ntpTarget } from '../../probes/ntp/options.js';
import type { ProbeResult } from '../../probes/types.js';
import { SandboxTimeServer } from '../../sandbox/ntp.js';
import { budget, quietLog, serviceDuring, targetsOf, udpPeersDuring } from '../helpers/peers.js';

function probe(target: string, options: Record<string, unknown> = {}, ms = 2000): Promise<ProbeResult> {
  return ntpProbe.run({ ...targetsOf('ntp', target), options: KIND_OPTIONS.ntp.parse(options), ...budget(ms), log: quietLog, secrets: {} });
}

/** A well-formed server reply to `req`, with `patch` applied last. */
function serverReply(req: Buffer, patch: (b: Buffer) => void = () => undefined): Buffer {
  const b = Buffer.alloc(48);
  b.writeUInt8((0 << 6) | (4 << 3) | 4, 0);
  b.writeUInt8(2, 1);
  req.copy(b, 24, 40, 48);
  const t = performance.timeOrigin + performance.now();
  ntpTimestamp(t).copy(b, 32);
  ntpTimestamp(t).copy(b, 40);
  patch(b);
  return b;
}

describe('ntp timestamps and targets', () => {
  it('round-trips wall-clock time through the 64-bit NTP form, in the right era', () => {
    for (const ms of [Date.UTC(2026, 11, 3, 12, 0, 0, 250.5), Date.UTC(2036, 1, 7, 6, 28, 17), Date.UTC(2040, 0, 1)]) {
      const back = fromNtpTimestamp(ntpTimestamp(ms), 0, ms + 1000);
      expect(Math.abs((back ?? 0) - ms)).toBeLessThan(0.001);
    }
    expect(fromNtpTimestamp(Buffer.alloc(8), 0, Date.now())).toBeUndefined();
  });

  it('takes host, host:port, [v6]:port and a bare IPv6 address, port 123 by default', () => {
    const parseNtpTarget = (s: string) => ntpTarget.safeParse(s).data;
    expect(parseNtpTarget('dc1.region.example')).toEqual({ text: 'dc1.region.example', host: 'dc1.region.example', port: 123 });
    expect(parseNtpTarget('10.0.0.1:1123')).toEqual({ text: '10.0.0.1:1123', host: '10.0.0.1', port: 1123 });
    expect(parseNtpTarget('[::1]:123')).toEqual({ text: '[::1]:123', host: '::1', port: 123 });
    expect(parseNtpTarget('fe80::1')).toEqual({ text: 'fe80::1', host: 'fe80::1', port: 123 });
    expect(parseNtpTarget('a b')).toBeUndefined();
    expect(parseNtpTarget('host:0')).toBeUndefined();
  });

  it('reads the reference id as a code or an address', () => {
    const r = parseReply(Buffer.alloc(48));
    expect(typeof r).not.toBe('string');
    expect(refIdText({ stratum: 1, refId: Buffer.from('GPS\0', 'latin1') })).toBe('GPS');
    expect(refIdText({ stratum: 2, refId: Buffer.from([10, 20, 0, 53]) })).toBe('10.20.0.53');
    expect(parseReply(Buffer.alloc(47))).toBe('a reply of 47 bytes, expected at least 48');
  });

  it('refuses offsetDegradedAbove at or above maxOffset', () => {
    expect(KIND_OPTIONS.ntp.safeParse({ offsetDegradedAbove: '2m', maxOffset: '1m' }).success).toBe(false);
  });
});

describe('ntp probe against the sandbox time server', () => {
  const server = new SandboxTimeServer('127.0.0.1', 0);
  const service = serviceDuring(server);

  it('ok: offset near 0, stratum 2, the request timed, facts reported', async () => {
    server.setMode('ok');
    const r = await probe(service.target(), { samples: 3, sampleSpacing: '20ms' });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.degraded).toBeUndefined();
    expect(Math.abs(r.values?.ntp_offset_seconds ?? 1)).toBeLessThan(0.25);
    expect(r.values?.ntp_stratum).toBe(2);
    expect(r.values?.ntp_leap).toBe(0);
    expect(r.values?.ntp_rtt_seconds).toBeGreaterThanOrEqual(0);
    expect(r.phases.request).toBeGreaterThan(0);
    expect(r.info?.ntpRefId).toBe('127.0.0.1');
  });

  it('drift: degraded (clock_offset) with the offset, sign and limit in the message', async () => {
    server.setMode('drift');
    const r = await probe(service.target());
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('clock_offset');
    expect(r.degraded?.message).toMatch(/^the server's clock is 2\.\d\d s ahead of ours \(limit 1\.00 s\)$/);
    expect(r.values?.ntp_offset_seconds).toBeGreaterThan(1.5);
  });

  it('skew: 10 minutes ahead fails (clock_skew) and says why it matters', async () => {
    server.setMode('skew');
    const r = await probe(service.target());
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'clock_skew' });
    expect(r.failure?.message).toContain('10 min 00 s ahead of ours');
    expect(r.failure?.message).toContain('Kerberos');
  });

  it('unsync: leap indicator 3 is ntp_unsynchronised', async () => {
    server.setMode('unsync');
    const r = await probe(service.target(), { samples: 3, sampleSpacing: '20ms' });
    expect(r.failure).toMatchObject({ reason: 'ntp_unsynchronised' });
    expect(r.values?.ntp_leap).toBe(3);
  });

  it("kod: a kiss-o'-death names its code", async () => {
    server.setMode('kod');
    const r = await probe(service.target());
    expect(r.failure).toMatchObject({ reason: 'ntp_kiss_of_death' });
    expect(r.failure?.message).toContain('RATE (asked too often: rate limited)');
  });

  it('down: no answer is a timeout at the deadline', async () => {
    server.setMode('down');
    const r = await probe(service.target(), {}, 600);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
    server.setMode('ok');
  });
});

describe('ntp probe against hostile or broken peers', () => {
  const udp = udpPeersDuring();
  const peer = async (reply: (req: Buffer) => Buffer | Buffer[] | undefined) => `127.0.0.1:${(await udp(reply)).port}`;

  it('a short reply is protocol', async () => {
    const r = await probe(await peer(() => Buffer.from('hello')));
    expect(r.failure).toMatchObject({ reason: 'protocol', message: 'a reply of 5 bytes, expected at least 48' });
  });

  it('a reply in another mode is protocol', async () => {
    const r = await probe(await peer((req) => serverReply(req, (b) => b.writeUInt8((4 << 3) | 3, 0))));
    expect(r.failure).toMatchObject({ reason: 'protocol', message: 'a reply in mode 3, expected 4 (server)' });
  });

  it('a reply that does not echo our timestamp (stale or forged) is ignored: the real one after it counts', async () => {
    const target = await peer((req) => [serverReply(req, (b) => b.fill(7, 24, 32)), serverReply(req)]);
    const r = await probe(target);
    expect(r.ok).toBe(true);
  });

  it('only forged replies are a timeout, never believed', async () => {
    const r = await probe(await peer((req) => serverReply(req, (b) => ntpTimestamp(Date.now() + 3_600_000).copy(b, 24))), {}, 600);
    expect(r.failure).toMatchObject({ reason: 'timeout' });
  });

  it('a 60 KB reply is read as its first 48 bytes', async () => {
    const r = await probe(await peer((req) => Buffer.concat([serverReply(req), Buffer.alloc(60_000, 0xff)])));
    expect(r.ok).toBe(true);
  });

  it('a reply without timestamps is protocol', async () => {
    const r = await probe(await peer((req) => serverReply(req, (b) => b.fill(0, 32, 48))));
    expect(r.failure).toMatchObject({ reason: 'protocol', message: 'a reply without receive or transmit timestamp' });
  });

  it('stratum 16 from a server that claims to be synchronised is ntp_unsynchronised; one above maxStratum too', async () => {
    expect((await probe(await peer((req) => serverReply(req, (b) => b.writeUInt8(16, 1))))).failure?.reason).toBe('ntp_unsynchronised');
    const r = await probe(await peer((req) => serverReply(req, (b) => b.writeUInt8(9, 1))), { maxStratum: 8 });
    expect(r.failure).toMatchObject({ reason: 'ntp_unsynchronised', message: 'the server is at stratum 9, above maxStratum 8' });
  });

  it('a large root distance is degraded', async () => {
    const r = await probe(await peer((req) => serverReply(req, (b) => b.writeUInt32BE(3 * 65536, 8))));
    expect(r.degraded?.reason).toBe('clock_offset');
    expect(r.degraded?.message).toContain('root distance');
  });
});
