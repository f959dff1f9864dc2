// The dns probe against a DNS server built in the test (dns-packet) on 127.0.0.1:0.
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { type DnsOptions, type DnsRcode } from '../../probes/dns/options.js';
import { dnsProbe, reverseName, serialLag } from '../../probes/dns/probe.js';
import type { FailureReason, ProbeResult } from '../../probes/types.js';
import { startDnsServer, type DnsAnswer, type DnsQuery, type TestDnsServer } from '../helpers/dns-server.js';
import { budget, BUSY_SLACK_MS, quietLog, tcpPeer, targetsOf } from '../helpers/peers.js';

const servers: TestDnsServer[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const c of closers.splice(0)) await c();
});

async function server(handler: (q: DnsQuery) => DnsAnswer): Promise<TestDnsServer> {
  const s = await startDnsServer(handler);
  servers.push(s);
  return s;
}

function run(targets: string[], options: Record<string, unknown>, timeoutMs = 1500): Promise<ProbeResult> {
  const opts: DnsOptions = KIND_OPTIONS.dns.parse(options);
  return dnsProbe.run({ ...targetsOf('dns', ...targets), options: opts, ...budget(timeoutMs), log: quietLog, secrets: {} });
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

  it('carries the reply records (answer, authority, additional; no OPT), at most 16, each field bounded, and no more values', async () => {
    const long = Array<string>(4).fill('x'.repeat(250));
    const s = await server(() => ({
      reply: {
        answers: [A('cosmic.region.local', '10.20.1.5'), { type: 'TXT', name: 'cosmic.region.local', ttl: 60, data: long }],
        authorities: [{ type: 'NS', name: 'region.local', ttl: 3600, class: 'IN', data: 'ns1.region.local' }],
        additionals: [A('ns1.region.local', '10.40.0.53')],
      },
    }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local' });
    expect(r.failure).toBeUndefined();
    expect(r.records?.map((x) => [x.section, x.name, x.ttl, x.type])).toEqual([
      ['answer', 'cosmic.region.local.', 300, 'A'],
      ['answer', 'cosmic.region.local.', 60, 'TXT'],
      ['authority', 'region.local.', 3600, 'NS'],
      ['additional', 'ns1.region.local.', 300, 'A'],
    ]);
    expect(r.records?.[1]?.data).toHaveLength(256);
    expect(r.records?.[1]?.data.endsWith('...')).toBe(true);
    expect(Object.keys(r.values ?? {}).sort()).toEqual(['dns_additional_rrs', 'dns_answer_rrs', 'dns_authority_rrs', 'dns_query_succeeded', 'ip_protocol']);
    const many = await server(() => ({ reply: { answers: Array.from({ length: 100 }, (_, i) => A('vdi.region.local', `10.30.0.${i}`)) } }));
    const big = await run([`127.0.0.1:${many.port}`], { name: 'vdi.region.local', transport: 'tcp' });
    expect(big.records).toHaveLength(16);
    expect(big.values?.dns_answer_rrs).toBe(100);
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
    const soa = (serial: number) => () => ({
      reply: {
        answers: [
          {
            type: 'SOA' as const,
            name: 'region.local',
            ttl: 60,
            data: { mname: 'ns1.region.local', rname: 'hostmaster.region.local', serial, refresh: 3600, retry: 600, expire: 86400, minimum: 60 },
          },
        ],
      },
    });
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

const NS = (name: string, host: string, ttl = 3600) => ({ type: 'NS' as const, name, ttl, class: 'IN' as const, data: host });
const OPT = { type: 'OPT' as const, name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every rcode of the schema's list and the reason it fails with when not expected (a Record, so a new rcode must be added here). */
const RCODE_REASONS: Record<DnsRcode, FailureReason | undefined> = {
  NOERROR: undefined,
  FORMERR: 'dns_rcode',
  SERVFAIL: 'dns_servfail',
  NXDOMAIN: 'dns_nxdomain',
  NOTIMP: 'dns_rcode',
  REFUSED: 'dns_refused',
  YXDOMAIN: 'dns_rcode',
  YXRRSET: 'dns_rcode',
  NXRRSET: 'dns_rcode',
  NOTAUTH: 'dns_rcode',
  NOTZONE: 'dns_rcode',
};

describe('dns probe: every rcode', () => {
  it.each(Object.entries(RCODE_REASONS) as [DnsRcode, FailureReason | undefined][])('%s -> %s', async (rcode, reason) => {
    const s = await server(() => ({ reply: { rcode, answers: rcode === 'NOERROR' ? [A('x.region.local', '10.20.1.5')] : [] } }));
    const t = [`127.0.0.1:${s.port}`];
    const r = await run(t, { name: 'x.region.local' });
    expect(r.info).toMatchObject({ dnsRcode: rcode, dnsTransport: 'udp' });
    expect(r.values?.dns_query_succeeded).toBe(1);
    if (reason === undefined) {
      expect(r.failure).toBeUndefined();
      // NOERROR when only NXDOMAIN is expected is a plain rcode mismatch.
      const other = await run(t, { name: 'x.region.local', expect: { rcodes: ['NXDOMAIN'] } });
      expect(other.failure).toMatchObject({ phase: 'request', reason: 'dns_rcode' });
      expect(other.failure?.message).toContain('rcode NOERROR, expected NXDOMAIN');
    } else {
      expect(r.failure).toMatchObject({ phase: 'request', reason });
      expect(r.failure?.message).toContain(`rcode ${rcode}`);
      // The same rcode passes when it is listed.
      const listed = await run(t, { name: 'x.region.local', expect: { rcodes: ['NOERROR', rcode] } });
      expect(listed.failure).toBeUndefined();
      expect(listed.ok).toBe(true);
    }
  });

  it('an rcode outside the named ones (11..15) is dns_rcode', async () => {
    const s = await server((q) => {
      const b = encodeReply(q.id, q.name, '10.20.1.5');
      b[3] = (b[3]! & 0xf0) | 0x0f;
      return { raw: [b] };
    });
    const r = await run([`127.0.0.1:${s.port}`], { name: 'x.region.local' });
    expect(r.failure).toMatchObject({ reason: 'dns_rcode' });
    expect(r.info?.dnsRcode).toBe('RCODE_15');
  });

  it('NODATA: NOERROR with an empty answer and the SOA in authority', async () => {
    const soa = {
      type: 'SOA' as const,
      name: 'region.local',
      ttl: 60,
      data: { mname: 'ns1.region.local', rname: 'hostmaster.region.local', serial: 7, refresh: 3600, retry: 600, expire: 86400, minimum: 60 },
    };
    const s = await server(() => ({ reply: { authorities: [soa] } }));
    const t = [`127.0.0.1:${s.port}`];
    const r = await run(t, { name: 'x.region.local', type: 'MX' });
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'dns_nodata' });
    expect(r.values).toMatchObject({ dns_answer_rrs: 0, dns_authority_rrs: 1, dns_query_succeeded: 1 });
    const allowed = await run(t, {
      name: 'x.region.local',
      type: 'MX',
      transport: 'tcp',
      expect: { nodata: true, authority: { mustMatch: ['IN SOA ns1\\.region\\.local\\. '] } },
    });
    expect(allowed.failure).toBeUndefined();
    expect(allowed.info?.dnsTransport).toBe('tcp');
  });
});

type SectionName = 'answer' | 'authority' | 'additional';
/** Per section: the reply, and the two records' type and values it carries there. */
const SECTIONS: Record<SectionName, { reply: Record<string, unknown>; type: string; v1: string; v2: string }> = {
  answer: { reply: { answers: [A('cosmic.region.local', '10.20.1.5'), A('cosmic.region.local', '10.20.1.6')] }, type: 'A', v1: '10.20.1.5', v2: '10.20.1.6' },
  authority: {
    reply: { answers: [A('cosmic.region.local', '10.20.1.5')], authorities: [NS('region.local', 'ns1.region.local'), NS('region.local', 'ns2.region.local')] },
    type: 'NS',
    v1: 'ns1.region.local.',
    v2: 'ns2.region.local.',
  },
  additional: {
    // With an OPT record, which no rule may see (maxCount 2, allMatch and exactValues pass).
    reply: { answers: [A('cosmic.region.local', '10.20.1.5')], additionals: [A('ns1.region.local', '10.20.0.1'), OPT, A('ns2.region.local', '10.20.0.2')] },
    type: 'A',
    v1: '10.20.0.1',
    v2: '10.20.0.2',
  },
};

function sectionRules(type: string, v1: string, v2: string): [rule: string, pass: unknown, fail: unknown][] {
  return [
    ['mustMatch', [` IN ${type} ${esc(v1)}$`], [`IN ${type} 192\\.0\\.2\\.`]],
    ['mustNotMatch', ['192\\.0\\.2\\.'], [esc(v2)]],
    ['allMatch', [`^\\S+ \\d+ IN ${type} `], [esc(v1)]],
    ['values', [v2], ['192.0.2.99']],
    ['exactValues', [v2, v1], [v1]],
    ['minCount', 2, 3],
    ['maxCount', 2, 1],
  ];
}

describe('dns probe: section expectations', () => {
  for (const [section, { reply, type, v1, v2 }] of Object.entries(SECTIONS) as [SectionName, (typeof SECTIONS)[SectionName]][]) {
    it.each(sectionRules(type, v1, v2))(`${section}: %s passes and fails`, async (rule, pass, fail) => {
      const s = await server(() => ({ reply }));
      const t = [`127.0.0.1:${s.port}`];
      const ok = await run(t, { name: 'cosmic.region.local', expect: { [section]: { [rule]: pass } } });
      expect(ok.failure, `${section}.${rule} ${JSON.stringify(pass)}`).toBeUndefined();
      expect(ok.ok).toBe(true);
      const bad = await run(t, { name: 'cosmic.region.local', expect: { [section]: { [rule]: fail } } });
      expect(bad.failure, `${section}.${rule} ${JSON.stringify(fail)}`).toMatchObject({ phase: 'request', reason: 'dns_mismatch' });
      expect(bad.failure?.message.startsWith(`${section}: `)).toBe(true);
    });
  }

  it('the OPT pseudo-record is not counted in the additional section', async () => {
    const s = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')], additionals: [OPT] } }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', expect: { additional: { maxCount: 0, mustNotMatch: ['OPT'] } } });
    expect(r.failure).toBeUndefined();
    expect(r.values).toMatchObject({ dns_answer_rrs: 1, dns_authority_rrs: 0, dns_additional_rrs: 0 });
    const s2 = await server(() => ({ reply: SECTIONS.additional.reply }));
    expect((await run([`127.0.0.1:${s2.port}`], { name: 'cosmic.region.local' })).values?.dns_additional_rrs).toBe(2);
  });
});

describe('dns probe: the query on the wire (EDNS, RD)', () => {
  const ok = () => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')] } });

  it('advertises EDNS0 with 1232 bytes, DO clear and RD set by default', async () => {
    const s = await server(ok);
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local' })).ok).toBe(true);
    expect(s.queries[0]).toMatchObject({ udpPayloadSize: 1232, dnssecOk: false });
    expect(s.queries[0]!.flags & dnsPacket.RECURSION_DESIRED).toBe(dnsPacket.RECURSION_DESIRED);
  });

  it('ednsPayloadSize: 0 sends no OPT record', async () => {
    const s = await server(ok);
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', ednsPayloadSize: 0 })).ok).toBe(true);
    expect(s.queries[0]?.udpPayloadSize).toBeUndefined();
    expect(s.queries[0]?.dnssecOk).toBe(false);
  });

  it('dnssecOk: true sets DO; another payload size is advertised as given', async () => {
    const s = await server(ok);
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', dnssecOk: true, ednsPayloadSize: 4096 })).ok).toBe(true);
    expect(s.queries[0]).toMatchObject({ udpPayloadSize: 4096, dnssecOk: true });
  });

  it('recursionDesired: false clears RD, over UDP and TCP', async () => {
    const s = await server(ok);
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', recursionDesired: false })).ok).toBe(true);
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', recursionDesired: false, transport: 'tcp' })).ok).toBe(true);
    expect(s.queries.map((q) => [q.transport, q.flags & dnsPacket.RECURSION_DESIRED])).toEqual([
      ['udp', 0],
      ['tcp', 0],
    ]);
  });

  it('the TCP fallback after TC asks again over TCP with the same options', async () => {
    const s = await server((q) => (q.transport === 'udp' ? { reply: { flags: dnsPacket.TRUNCATED_RESPONSE } } : ok()));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', dnssecOk: true });
    expect(r.failure).toBeUndefined();
    expect(r.values?.dns_tcp_fallback).toBe(1);
    expect(s.queries.map((q) => [q.transport, q.name, q.type, q.dnssecOk])).toEqual([
      ['udp', 'cosmic.region.local', 'A', true],
      ['tcp', 'cosmic.region.local', 'A', true],
    ]);
  });
});

describe('dns probe: record types in text and value form', () => {
  const soaData = { mname: 'ns1.region.local', rname: 'hostmaster.region.local', serial: 2024010101, refresh: 3600, retry: 600, expire: 86400, minimum: 60 };
  const cases: { type: string; data: unknown; text: string; value: string }[] = [
    {
      type: 'MX',
      data: { preference: 10, exchange: 'mail.region.local' },
      text: 'cosmic.region.local. 300 IN MX 10 mail.region.local.',
      value: '10 mail.region.local.',
    },
    {
      type: 'SRV',
      data: { priority: 0, weight: 5, port: 389, target: 'dc1.region.local' },
      text: 'cosmic.region.local. 300 IN SRV 0 5 389 dc1.region.local.',
      value: '0 5 389 dc1.region.local.',
    },
    {
      type: 'TXT',
      data: ['v=spf1 -all', 'second part'],
      text: 'cosmic.region.local. 300 IN TXT "v=spf1 -all" "second part"',
      value: '"v=spf1 -all" "second part"',
    },
    { type: 'NS', data: 'ns1.region.local', text: 'cosmic.region.local. 300 IN NS ns1.region.local.', value: 'ns1.region.local.' },
    {
      type: 'SOA',
      data: soaData,
      text: 'cosmic.region.local. 300 IN SOA ns1.region.local. hostmaster.region.local. 2024010101 3600 600 86400 60',
      value: 'ns1.region.local. hostmaster.region.local. 2024010101 3600 600 86400 60',
    },
    { type: 'CNAME', data: 'cosmic-lb.region.local', text: 'cosmic.region.local. 300 IN CNAME cosmic-lb.region.local.', value: 'cosmic-lb.region.local.' },
    { type: 'AAAA', data: '2001:0db8:0000::0005', text: 'cosmic.region.local. 300 IN AAAA 2001:db8::5', value: '2001:db8::5' },
  ];
  it.each(cases)('$type', async ({ type, data, text, value }) => {
    const s = await server((q) => ({ reply: { answers: [{ type: q.type, name: q.name, ttl: 300, class: 'IN', data } as dnsPacket.Answer] } }));
    const t = [`127.0.0.1:${s.port}`];
    const r = await run(t, { name: 'cosmic.region.local', type, expect: { answer: { mustMatch: [`^${esc(text)}$`], values: [value], exactValues: [value] } } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(s.queries[0]).toMatchObject({ name: 'cosmic.region.local', type });
    // Values compare without the trailing dot and case-insensitively.
    expect(
      (await run(t, { name: 'cosmic.region.local', type, expect: { answer: { values: [value.replace(/\.$/, '').toUpperCase()] } } })).failure,
    ).toBeUndefined();
    const bad = await run(t, { name: 'cosmic.region.local', type, expect: { answer: { values: [`${value}x`] } } });
    expect(bad.failure?.reason).toBe('dns_mismatch');
    expect(bad.failure?.message).toContain(value);
    if (type === 'SOA') expect(r.values?.dns_serial).toBe(2024010101);
  });
});

/**
 * A bare UDP "resolver" on 127.0.0.1:0 with a second socket that answers from elsewhere: another
 * port on 127.0.0.1, or (otherAddress) the same port on another loopback address (Linux routes
 * all of 127/8 to lo).
 */
async function twoPortUdpServer(
  onQuery: (query: dnsPacket.DecodedPacket, from: RemoteInfo, main: UdpSocket, other: UdpSocket) => void,
  otherAddress?: string,
): Promise<number> {
  const main = createSocket('udp4');
  const other = createSocket('udp4');
  main.on('message', (msg, from) => onQuery(dnsPacket.decode(msg), from, main, other));
  await new Promise<void>((r) => main.bind(0, '127.0.0.1', r));
  await new Promise<void>((r) => other.bind(otherAddress ? main.address().port : 0, otherAddress ?? '127.0.0.1', r));
  closers.push(async () => {
    await new Promise<void>((r) => main.close(() => r()));
    await new Promise<void>((r) => other.close(() => r()));
  });
  return main.address().port;
}

describe('dns probe: replies that are not for us are ignored', () => {
  it('a reply from another source port is ignored (timeout)', async () => {
    const port = await twoPortUdpServer((q, from, _main, other) =>
      other.send(encodeReply(q.id ?? 0, q.questions![0]!.name, '10.66.6.6'), from.port, from.address),
    );
    const r = await run([`127.0.0.1:${port}`], { name: 'cosmic.region.local' }, 400);
    expect(r.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
  });

  it('a reply from another source address (same port) is ignored (timeout)', async () => {
    const port = await twoPortUdpServer(
      (q, from, _main, other) => other.send(encodeReply(q.id ?? 0, q.questions![0]!.name, '10.66.6.6'), from.port, from.address),
      '127.0.0.2',
    );
    const r = await run([`127.0.0.1:${port}`], { name: 'cosmic.region.local' }, 400);
    expect(r.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
  });

  it('a reply with another id alone is ignored (timeout)', async () => {
    const s = await server((q) => ({ raw: [encodeReply(q.id ^ 0x8000, q.name, '10.66.6.6')] }));
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local' }, 300)).failure).toMatchObject({ reason: 'timeout', phase: 'request' });
  });

  it('a reply from another source port does not stop the wait for the real one', async () => {
    const port = await twoPortUdpServer((q, from, main, other) => {
      const name = q.questions![0]!.name;
      other.send(encodeReply(q.id ?? 0, name, '10.66.6.6'), from.port, from.address);
      setTimeout(() => main.send(encodeReply(q.id ?? 0, name, '10.20.1.5'), from.port, from.address), 50);
    });
    const r = await run([`127.0.0.1:${port}`], { name: 'cosmic.region.local', expect: { answer: { exactValues: ['10.20.1.5'] } } });
    expect(r.failure).toBeUndefined();
  });

  it('a reply with a different question name or type is ignored (timeout)', async () => {
    const s = await server((q) => ({
      reply: { questions: [{ type: 'A', name: q.type === 'A' ? 'other.region.local' : q.name, class: 'IN' }], answers: [A(q.name, '10.66.6.6')] },
    }));
    const t = [`127.0.0.1:${s.port}`];
    expect((await run(t, { name: 'cosmic.region.local' }, 300)).failure).toMatchObject({ reason: 'timeout' });
    // Same name, other type (A instead of the MX asked for).
    expect((await run(t, { name: 'cosmic.region.local', type: 'MX' }, 300)).failure).toMatchObject({ reason: 'timeout' });
  });

  it('wrong question, wrong id and a query (QR=0) are skipped; the right reply after them is taken', async () => {
    const s = await server((q) => {
      const otherName = dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: 0x8180,
        questions: [{ type: 'A', name: 'other.region.local', class: 'IN' }],
        answers: [A('other.region.local', '10.66.6.1')],
      });
      const otherId = encodeReply((q.id + 1) & 0xffff, q.name, '10.66.6.2');
      const notReply = Buffer.from(encodeReply(q.id, q.name, '10.66.6.3'));
      notReply[2] = notReply[2]! & 0x7f;
      return { raw: [otherName, otherId, notReply, encodeReply(q.id, q.name, '10.20.1.5')] };
    });
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', expect: { answer: { exactValues: ['10.20.1.5'] } } });
    expect(r.failure).toBeUndefined();
  });

  it('a reply without a question section is accepted (servers omit it on errors)', async () => {
    const s = await server(() => ({ reply: { rcode: 'SERVFAIL', questions: [] } }));
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local' })).failure).toMatchObject({ reason: 'dns_servfail' });
  });

  it('the question name is compared case-insensitively', async () => {
    const s = await server((q) => ({ reply: { questions: [{ type: 'A', name: q.name.toUpperCase(), class: 'IN' }], answers: [A(q.name, '10.20.1.5')] } }));
    expect((await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local' })).failure).toBeUndefined();
  });
});

describe('dns probe: TCP failures', () => {
  it('the server closes the connection before replying: protocol', async () => {
    const p = await tcpPeer((s) => s.once('data', () => s.end()));
    closers.push(() => p.close());
    const r = await run([`127.0.0.1:${p.port}`], { name: 'cosmic.region.local', transport: 'tcp' });
    expect(r.failure).toMatchObject({ reason: 'protocol', phase: 'request' });
    expect(r.failure?.message).toContain('connection closed after 0 bytes');
    expect(r.info?.dnsTransport).toBe('tcp');
    expect(r.values?.dns_query_succeeded).toBe(0);
  });

  it('the server closes in the middle of a reply: protocol', async () => {
    const p = await tcpPeer((s) =>
      s.once('data', (d: Buffer) => {
        const id = d.readUInt16BE(2);
        const reply = encodeReply(id, 'cosmic.region.local', '10.20.1.5');
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(reply.length);
        s.end(Buffer.concat([prefix, reply.subarray(0, 10)]));
      }),
    );
    closers.push(() => p.close());
    const r = await run([`127.0.0.1:${p.port}`], { name: 'cosmic.region.local', transport: 'tcp' });
    expect(r.failure).toMatchObject({ reason: 'protocol', phase: 'request' });
    expect(r.failure?.message).toContain('connection closed after 12 bytes');
  });

  it('a length prefix and then nothing: timeout', async () => {
    const p = await tcpPeer((s) => s.once('data', () => s.write(Buffer.from([0x00, 0x40]))));
    closers.push(() => p.close());
    const r = await run([`127.0.0.1:${p.port}`], { name: 'cosmic.region.local', transport: 'tcp' }, 300);
    expect(r.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
    expect(r.failure?.message).toContain('tcp');
  });

  it('a TCP reply for another query (wrong id) is protocol, not a wait', async () => {
    const s = await server((q) => ({ raw: [encodeReply(q.id ^ 1, q.name, '10.20.1.5')] }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', transport: 'tcp' });
    expect(r.failure).toMatchObject({ reason: 'protocol' });
  });

  it('the TCP fallback that gets no answer times out, with the fallback counted', async () => {
    const s = await server((q) => (q.transport === 'udp' ? { reply: { flags: dnsPacket.TRUNCATED_RESPONSE } } : { drop: true }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local' }, 300);
    expect(r.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
    expect(r.values?.dns_tcp_fallback).toBe(1);
  });
});

describe('dns probe: target system and resolvers by name', () => {
  it('target system resolves localhost through getaddrinfo: phase resolve only', async () => {
    const r = await run(['system'], { name: 'localhost', expect: { answer: { values: ['127.0.0.1'] } } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['resolve']);
    expect(r.info).toEqual({ dnsTransport: 'system' });
    expect(r.values?.dns_answer_rrs).toBeGreaterThanOrEqual(1);
  });

  it('target system: a name that does not exist is dns_nxdomain', async () => {
    const r = await run(['system'], { name: 'no-such-name.invalid' }, 3000);
    expect(r.failure).toMatchObject({ reason: 'dns_nxdomain', phase: 'resolve' });
    // The OS path answered (NXDOMAIN): how long it took is part of the signal.
    expect(Object.keys(r.phases)).toEqual(['resolve']);
    expect(r.info?.dnsRcode).toBe('NXDOMAIN');
  });

  it('target system: an expected NXDOMAIN (or NODATA with nodata: true) passes', async () => {
    const r = await run(['system'], { name: 'no-such-name.invalid', expect: { rcodes: ['NXDOMAIN'] } }, 3000);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
  });

  it('TXT data is shown as dig shows it: quotes and backslashes escaped, other bytes as \\DDD', async () => {
    const s = await server(() => ({
      reply: { answers: [{ type: 'TXT', name: 't.region.local', ttl: 60, data: [Buffer.from('say "hi"\\ok'), Buffer.from([0x61, 0x0a, 0xc3, 0xa5])] }] },
    }));
    const r = await run([`127.0.0.1:${s.port}`], {
      name: 't.region.local',
      type: 'TXT',
      expect: { answer: { exactValues: ['"say \\"hi\\"\\\\ok" "a\\010\\195\\165"'] } },
    });
    expect(r.failure).toBeUndefined();
  });

  it('a TCP connect that succeeded is still reported when the reply never comes', async () => {
    const s = await server((q) => (q.transport === 'tcp' ? { drop: true } : { drop: true }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'x.region.local', transport: 'tcp' }, 400);
    expect(r.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
    expect(r.phases.connect).toBeGreaterThan(0);
    expect(r.values).toMatchObject({ ip_protocol: 4, dns_query_succeeded: 0 });
  });

  it('a resolver given by name (localhost:PORT) has a resolve phase', async () => {
    const s = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')] } }));
    const r = await run([`localhost:${s.port}`], { name: 'cosmic.region.local', ipFamily: 'ip4' });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases).sort()).toEqual(['request', 'resolve']);
    expect(r.phases.resolve).toBeGreaterThanOrEqual(0);
  });
});

describe('dns probe: several resolvers, one silent', () => {
  const timeoutMs = 800;
  async function twoResolvers(): Promise<string[]> {
    const good = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5')] } }));
    const silent = await server(() => ({ drop: true }));
    return [`127.0.0.1:${good.port}`, `127.0.0.1:${silent.port}`];
  }

  it('quorum all: the check fails as timeout, the other resolver is still reported, within the run timeout', async () => {
    const t = await twoResolvers();
    const start = performance.now();
    const r = await run(t, { name: 'cosmic.region.local' }, timeoutMs);
    expect(performance.now() - start).toBeLessThan(timeoutMs + BUSY_SLACK_MS);
    expect(r.ok).toBe(false);
    expect(r.failure?.reason).toBe('timeout');
    expect(r.failure?.message).toContain('1 of 2 resolvers');
    expect(r.targets?.map((x) => [x.target, x.ok, x.failure?.reason])).toEqual([
      [t[0], true, undefined],
      [t[1], false, 'timeout'],
    ]);
    expect(r.targets?.[0]?.values?.dns_answer_rrs).toBe(1);
  });

  it('quorum 1: ok, degraded as partial, within the run timeout', async () => {
    const t = await twoResolvers();
    const start = performance.now();
    const r = await run(t, { name: 'cosmic.region.local', quorum: 1 }, timeoutMs);
    expect(performance.now() - start).toBeLessThan(timeoutMs + BUSY_SLACK_MS);
    expect(r.ok).toBe(true);
    expect(r.failure).toBeUndefined();
    expect(r.degraded?.reason).toBe('partial');
    expect(r.targets?.[1]?.failure?.reason).toBe('timeout');
  });
});

describe('dns probe: odd but decodable records', () => {
  it('an OPT record in the answer or authority section is validated, not an internal error', async () => {
    const s = await server(() => ({ reply: { answers: [A('cosmic.region.local', '10.20.1.5'), OPT], authorities: [OPT] } }));
    const r = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', expect: { answer: { values: ['10.20.1.5'] }, authority: { maxCount: 1 } } });
    expect(r.failure).toBeUndefined();
    expect(r.values).toMatchObject({ dns_answer_rrs: 2, dns_authority_rrs: 1 });
    const bad = await run([`127.0.0.1:${s.port}`], { name: 'cosmic.region.local', expect: { answer: { exactValues: ['10.20.1.5'] } } });
    expect(bad.failure?.reason).toBe('dns_mismatch');
  });

  it('a datagram cut in the middle of the last record is protocol, not a garbled answer', async () => {
    const s = await server((q) => {
      const full =
        q.type === 'A'
          ? encodeReply(q.id, q.name, '10.20.1.5')
          : dnsPacket.encode({
              type: 'response',
              id: q.id,
              flags: 0x8180,
              questions: [{ type: 'TXT', name: q.name, class: 'IN' }],
              answers: [{ type: 'TXT', name: q.name, ttl: 60, data: ['hello world'] }],
            });
      return { raw: [full.subarray(0, full.length - 2)] };
    });
    const t = [`127.0.0.1:${s.port}`];
    for (const type of ['A', 'TXT']) {
      const r = await run(t, { name: 'cosmic.region.local', type });
      expect(r.failure, type).toMatchObject({ reason: 'protocol', phase: 'request' });
      expect(r.failure?.message).toContain('malformed reply');
    }
  });

  it('binary fields (DS digest, DNSKEY key) are hex in the text form', async () => {
    const s = await server((q) => ({
      reply: {
        answers: [
          q.type === 'DS'
            ? { type: 'DS', name: q.name, ttl: 300, class: 'IN', data: { keyTag: 12345, algorithm: 13, digestType: 2, digest: Buffer.from('abcdef01', 'hex') } }
            : { type: 'DNSKEY', name: q.name, ttl: 300, class: 'IN', data: { flags: 257, algorithm: 13, key: Buffer.from('0102ff', 'hex') } },
        ],
      },
    }));
    const t = [`127.0.0.1:${s.port}`];
    const ds = await run(t, { name: 'region.local', type: 'DS', expect: { answer: { mustMatch: ['IN DS .*"keyTag":12345.*"digest":"abcdef01"'] } } });
    expect(ds.failure).toBeUndefined();
    const key = await run(t, { name: 'region.local', type: 'DNSKEY', expect: { answer: { mustMatch: ['IN DNSKEY .*"key":"0102ff"'] } } });
    expect(key.failure).toBeUndefined();
  });
});
