// The icmp probe's own parts: reading iputils ping's output (captured from ping 20221126 in the C
// locale), bounded and fuzzed; its target and options; a host without ping. The probe against a
// real ping and real hosts (loss, silence, no route, an agent without privileges) is in
// test/system/icmp.test.ts, which needs iputils-ping and network namespaces.
import { afterEach, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { parseIcmpTarget } from '../../probes/icmp/options.js';
import { icmpProbe, MAX_OUTPUT, parsePingOutput } from '../../probes/icmp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { prng } from '../helpers/prng.js';

function probe(target: string, options: Record<string, unknown> = {}, ms = 3000): Promise<ProbeResult> {
  return icmpProbe.run({ ...targetsOf('icmp', target), options: KIND_OPTIONS.icmp.parse(options), ...budget(ms), log: quietLog, secrets: {} });
}

const OK = `PING 10.20.0.1 (10.20.0.1) 56(84) bytes of data.
64 bytes from 10.20.0.1: icmp_seq=1 ttl=64 time=0.412 ms
64 bytes from 10.20.0.1: icmp_seq=2 ttl=64 time=0.388 ms
64 bytes from 10.20.0.1: icmp_seq=2 ttl=64 time=0.390 ms (DUP!)
64 bytes from 10.20.0.1: icmp_seq=3 ttl=64 time=1.27 ms

--- 10.20.0.1 ping statistics ---
3 packets transmitted, 3 received, +1 duplicates, 0% packet loss, time 402ms
rtt min/avg/max/mdev = 0.388/0.615/1.270/0.410 ms
`;

const UNREACHABLE = `PING 10.20.9.9 (10.20.9.9) 56(84) bytes of data.
From 10.20.0.2 icmp_seq=1 Destination Host Unreachable
From 10.20.0.2 icmp_seq=2 Destination Host Unreachable

--- 10.20.9.9 ping statistics ---
2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1003ms
`;

describe('ping output', () => {
  it('reads replies by sequence number (a duplicate once), the summary, and ICMP errors', () => {
    const o = parsePingOutput(OK);
    expect([...o.replies]).toEqual([
      [1, 0.000412],
      [2, 0.000388],
      [3, 0.00127],
    ]);
    expect(o.transmitted).toBe(3);
    expect(o.fatal).toBeUndefined();
    const u = parsePingOutput(UNREACHABLE);
    expect(u.replies.size).toBe(0);
    expect(u.errors).toEqual(['Destination Host Unreachable', 'Destination Host Unreachable']);
    expect(u.transmitted).toBe(2);
  });

  it("takes ping's own errors: no permission, no route", () => {
    expect(parsePingOutput('ping: socket: Operation not permitted\n').fatal).toBe('socket: Operation not permitted');
    expect(parsePingOutput('ping: connect: Network is unreachable\n').fatal).toBe('connect: Network is unreachable');
  });

  it('fuzz: 20,000 random and mutated outputs parse without throwing, within bounds', () => {
    const rng = prng(0x1c4b);
    const seeds = [OK, UNREACHABLE, 'ping: socket: Operation not permitted\n'];
    const alphabet = 'From bytes icmp_seq= ttl= time= ms (DUP!)\n0123456789.:ping: -- packets transmitted, received';
    for (let i = 0; i < 20_000; i++) {
      let text: string;
      if (rng.chance(0.3)) text = rng.bytes(rng.int(400)).toString('latin1');
      else if (rng.chance(0.5)) {
        text = '';
        for (let k = rng.int(300); k > 0; k--) text += alphabet[rng.int(alphabet.length)];
      } else {
        const chars = [...rng.pick(seeds)];
        for (let k = 1 + rng.int(8); k > 0; k--) chars[rng.int(chars.length)] = String.fromCharCode(rng.int(128));
        text = chars.join('');
      }
      const o = parsePingOutput(text);
      expect(o.errors.length).toBeLessThanOrEqual(5);
      for (const [seq, rtt] of o.replies) {
        expect(Number.isInteger(seq)).toBe(true);
        expect(rtt).toBeGreaterThanOrEqual(0);
      }
      if (o.fatal !== undefined) expect(o.fatal.length).toBeLessThanOrEqual(200);
    }
    // A huge output is read up to its bound only.
    const huge = parsePingOutput(`${'64 bytes from 1.2.3.4: icmp_seq=1 ttl=1 time=1 ms\n'.repeat(10_000)}`);
    expect(huge.replies.size).toBe(1);
    expect(MAX_OUTPUT).toBe(65_536);
  });
});

describe('icmp target and options', () => {
  it('takes a name or an address, never a port or a URL', () => {
    expect(parseIcmpTarget('fw-a.region.example')).toEqual({ text: 'fw-a.region.example', host: 'fw-a.region.example' });
    expect(parseIcmpTarget('10.20.0.1')?.host).toBe('10.20.0.1');
    expect(parseIcmpTarget('[fd00::1]')?.host).toBe('fd00::1');
    expect(parseIcmpTarget('fd00::1')?.host).toBe('fd00::1');
    for (const bad of ['10.20.0.1:80', 'http://fw-a', 'fw a', '', '-x', 'a'.repeat(254)]) expect(parseIcmpTarget(bad), bad).toBeUndefined();
  });

  it('defaults and limits', () => {
    expect(KIND_OPTIONS.icmp.parse({})).toEqual({ count: 3, interval: 200, size: 56, ipFamily: 'auto', maxLoss: 1 });
    expect(KIND_OPTIONS.icmp.safeParse({ count: 21 }).success).toBe(false);
    expect(KIND_OPTIONS.icmp.safeParse({ interval: '1ms' }).success).toBe(false);
    expect(KIND_OPTIONS.icmp.safeParse({ size: 1473 }).success).toBe(false);
    expect(KIND_OPTIONS.icmp.parse({ rttDegradedAbove: '20ms' }).rttDegradedAbove).toBe(20);
  });
});

describe('icmp probe on a host without ping', () => {
  const path = process.env.PATH;
  afterEach(() => {
    process.env.PATH = path;
  });

  it('fails with icmp_unavailable, saying what to install', async () => {
    process.env.PATH = '/nonexistent-vakt-test-dir';
    const r = await probe('127.0.0.1');
    expect(r.ok).toBe(false);
    expect(r.failure).toEqual({ phase: 'rtt', reason: 'icmp_unavailable', message: 'ping is not installed on the agent host (install iputils-ping)' });
  });

  it('a name that does not resolve fails in resolve, before any ping', async () => {
    process.env.PATH = '/nonexistent-vakt-test-dir';
    const r = await probe('no-such-host.invalid');
    expect(r.failure?.phase).toBe('resolve');
    expect(r.failure?.reason).toBe('resolve');
  });
});
