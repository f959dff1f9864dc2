// The dns probe against a DNS server built in the test (dns-packet) on 127.0.0.1:0.
import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { KIND_OPTIONS, type DnsOptions } from '../../config/kinds.js';
import { dnsProbe, reverseName, serialLag } from '../../probes/dns.js';
import type { ProbeResult } from '../../probes/types.js';
import { startDnsServer, type DnsAnswer, type DnsQuery, type TestDnsServer } from '../helpers/dns-server.js';
import { budget, quietLog } from '../helpers/peers.js';

const servers: TestDnsServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function server(handler: (q: DnsQuery) => DnsAnswer): Promise<TestDnsServer> {
  const s = await startDnsServer(handler);
  servers.push(s);
  return s;
}

function run(targets: string[], options: Record<string, unknown>, timeoutMs = 1500): Promise<ProbeResult> {
  const opts: DnsOptions = KIND_OPTIONS.dns.parse(options);
  return dnsProbe.run({ target: targets.join(','), targets, options: opts, ...budget(timeoutMs), log: quietLog, secrets: {} });
}

const A = (name: string, ip: string, ttl = 300) => ({ type: 'A' as const, name, ttl, class: 'IN' as const, data: ip });

describe('dns probe: basics', () => {
  it('answers over UDP: phases, counts, rcode', async () => {
    const s = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')] } }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', expect: { answer: { values: ['10.20.1.5'] } } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['request']);
    expect(r.values).toMatchObject({ dns_answer_rrs: 1, dns_authority_rrs: 0, dns_additional_rrs: 0, dns_query_succeeded: 1 });
    expect(r.info).toMatchObject({ dnsRcode: 'NOERROR', dnsTransport: 'udp' });
    expect(s.queries[0]).toMatchObject({ name: 'cosmic.region.local', type: 'A', transport: 'udp', udpPayloadSize: 1232 });
  });

  it('NXDOMAIN, SERVFAIL, REFUSED and other rcodes have their own reasons', async () => {
    let rcode = 'NXDOMAIN';
    const s = await server(() => ({ reply: { rcode } }));
    const cases: [string, string][] = [
      ['NXDOMAIN', 'dns_nxdomain'],
      ['SERVFAIL', 'dns_servfail'],
      ['REFUSED', 'dns_refused'],
      ['NOTIMP', 'dns_rcode'],
      ['FORMERR', 'dns_rcode'],
    ];
    for (const [code, reason] of cases) {
      rcode = code;
      const r = await run([`127.0.0.1:${s.port}`], { name: 'x.region.local' });
      expect(r.failure, code).toMatchObject({ reason, phase: 'request' });
      expect(r.info?.dnsRcode).toBe(code);
      expect(r.values?.dns_query_succeeded).toBe(1);
    }
  });

  it('NOERROR with no answer is NODATA, unless allowed', async () => {
    const s = await server(() => ({ reply: {} }));
    expect((await run([`127.0.0.1:${s.port}`], { name: 'x.region.local', type: 'AAAA' })).failure?.reason).toBe('dns_nodata');
    expect((await run([`127.0.0.1:${s.port}`], { name: 'x.region.local', type: 'AAAA', expect: { nodata: true } })).ok).toBe(true);
  });

  it('an expected NXDOMAIN passes', async () => {
    const s = await server(() => ({ reply: { rcode: 'NXDOMAIN' } }));
    expect((await run([`127.0.0.1:${s.port}`], { name: 'gone.region.local', expect: { rcodes: ['NXDOMAIN'] } })).ok).toBe(true);
  });

  it('a wrong answer is dns_mismatch', async () => {
    const s = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.99.9.9')] } }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', expect: { answer: { mustMatch: ['IN A 10\\.20\\.'] } } });
    expect(r.failure).toMatchObject({ reason: 'dns_mismatch' });
    expect(r.failure?.message).toContain('10.99.9.9');
  });

  it('truncated over UDP falls back to TCP in auto mode; fails as truncated in udp mode', async () => {
    const s = await server((q) => (q.transport === 'udp' ? { reply: { flags: dnsPacket_TC } } : { reply: { answers: [A('big.region.local', '10.20.1.7')] } }));
    const auto = await run([`127.0.0.1:${s.port}`], { name: 'big.region.local' });
    expect(auto.failure).toBeUndefined();
    expect(auto.values?.dns_tcp_fallback).toBe(1);
    expect(auto.info?.dnsTransport).toBe('tcp');
    expect(auto.phases.connect).toBeGreaterThan(0);
    expect(auto.phases.request).toBeGreaterThan(0);
    const udpOnly = await run([`127.0.0.1:${s.port}`], { name: 'big.region.local', transport: 'udp' });
    expect(udpOnly.failure?.reason).toBe('truncated');
  });

  it('a slow reply is a timeout', async () => {
    const s = await server(() => ({ reply: { answers: [A('slow.region.local', '10.20.1.8')] }, delayMs: 2000 }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'slow.region.local' }, 300);
    expect(r.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
    expect(r.values?.dns_query_succeeded).toBe(0);
  });

  it('a reply with the wrong id is ignored and the right one that follows is taken', async () => {
    const s = await server((q) => {
      const wrong = encodeReply(q.id ^ 0x5a5a, q.name, '10.66.6.6');
      const right = encodeReply(q.id, q.name, '10.20.1.5');
      return { raw: [wrong, right] };
    });
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', expect: { answer: { exactValues: ['10.20.1.5'] } } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
  });

  it('garbage carrying our id is a protocol failure', async () => {
    const s = await server((q) => {
      const b = Buffer.alloc(40, 0xff);
      b.writeUInt16BE(q.id, 0);
      b[2] = 0x81;
      return { raw: [b] };
    });
    expect((await run([`127.0.0.1:${s.port}`], { name: 'x.region.local' })).failure).toMatchObject({ reason: 'protocol' });
  });

  it('TCP transport: connect and request phases', async () => {
    const s = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')] } }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', transport: 'tcp' });
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases).sort()).toEqual(['connect', 'request']);
    expect(s.queries[0]?.transport).toBe('tcp');
  });

  it('PTR for an IP queries its reverse name', async () => {
    const s = await server(() => ({ reply: { answers: [{ type: 'PTR', name: '5.1.20.10.in-addr.arpa', ttl: 60, data: 'cosmic.region.local' }] } }));
    const r = await run([`127.0.0.1:${s.port}`], { name: '10.20.1.5', type: 'PTR', expect: { answer: { values: ['cosmic.region.local.'] } } });
    expect(r.ok).toBe(true);
    expect(s.queries[0]?.name).toBe('5.1.20.10.in-addr.arpa');
    expect(reverseName('2001:db8::1')).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  });
});

describe('dns probe: several resolvers', () => {
  it('each resolver is its own target; quorum decides; a failing one degrades', async () => {
    const good = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')] } }));
    const bad = await server(() => ({ reply: { rcode: 'SERVFAIL' } }));
    const t = [`127.0.0.1:${good.port}`, `127.0.0.1:${bad.port}`];
    const all = await run(t, { name: 'cosmic.region.local' });
    expect(all.ok).toBe(false);
    expect(all.failure?.reason).toBe('dns_servfail');
    expect(all.targets?.map((x) => [x.target, x.ok])).toEqual([
      [t[0], true],
      [t[1], false],
    ]);
    const one = await run(t, { name: 'cosmic.region.local', quorum: 1 });
    expect(one.ok).toBe(true);
    expect(one.degraded?.reason).toBe('partial');
  });

  it('consistency: resolvers that disagree fail the check', async () => {
    const a = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')] } }));
    const b = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.9.9')] } }));
    const r = await run([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], { name: 'cosmic.region.local', consistency: true });
    expect(r.failure?.reason).toBe('dns_inconsistent');
  });

  it('SOA serials are compared with RFC 1982 arithmetic', async () => {
    const soa = (serial: number) => () => ({ reply: { answers: [{ type: 'SOA' as const, name: 'region.local', ttl: 60, data: { mname: 'ns1.region.local', rname: 'hostmaster.region.local', serial, refresh: 3600, retry: 600, expire: 86400, minimum: 60 } }] } });
    const a = await server(soa(4294967290));
    const b = await server(soa(5)); // wrapped around: newer than a by 11
    const r = await run([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], { name: 'region.local', type: 'SOA', maxSerialLag: 5 });
    expect(r.failure?.reason).toBe('dns_serial_lag');
    expect(r.targets?.[0]?.values?.dns_serial_lag).toBe(11);
    expect(r.targets?.[1]?.values?.dns_serial_lag).toBe(0);
    expect(serialLag(5, 4294967290)).toBe(11);
  });
});

const dnsPacket_TC = dnsPacket.TRUNCATED_RESPONSE;

function encodeReply(id: number, name: string, ip: string): Buffer {
  return dnsPacket.encode({ type: 'response', id, flags: 0x8180, questions: [{ type: 'A', name, class: 'IN' }], answers: [A(name, ip)] });
}
