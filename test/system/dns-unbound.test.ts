// The dns probe against a real resolver: unbound, started by the test itself (not the system
// service) on a free port of 127.0.0.1, with its own configuration and a local zone
// "region.test." (A, MX, SRV, PTR, SOA and a TXT set too large for 512 bytes). The Region
// Kronoberg story is a resolver that answers wrongly, not at all, or differently from its peer;
// here a real one does each: NXDOMAIN from the static zone, SERVFAIL from a forwarder that is
// down, TC without EDNS, silence after it is stopped, and two instances that disagree.
// dig (dnsutils) is the independent witness for the text forms the probe validates against.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { dnsProbe } from '../../probes/dns/probe.js';
import type { ProbeLogger, ProbeResult } from '../../probes/types.js';
import { freePort, removeStaleUnbound, requireTool, run, startUnbound, type UnboundInstance } from './helpers.js';
import { Budget } from '../../probes/kit/budget.js';
import { targetsOf } from '../helpers/peers.js';

const silent: ProbeLogger = { debug() {}, info() {}, warn() {} };

interface Timed extends ProbeResult {
  /** Wall-clock seconds the run took. */
  elapsed: number;
}

/** One probe run the way the agent's runner makes it: schema-parsed options and a run timeout. */
async function probeDns(targets: string | string[], options: Record<string, unknown>, runTimeoutMs = 3000): Promise<Timed> {
  const list = typeof targets === 'string' ? [targets] : targets;
  const controller = new AbortController();
  const start = performance.now();
  const deadline = start + runTimeoutMs;
  const timer = setTimeout(() => controller.abort(new Error('check timeout')), runTimeoutMs);
  try {
    const r = await dnsProbe.run({
      ...targetsOf('dns', ...list),
      options: KIND_OPTIONS.dns.parse(options),
      budget: new Budget(controller.signal, deadline),
      memory: new Map(),
      log: silent,
      secrets: {},
    });
    return { ...r, elapsed: (performance.now() - start) / 1000 };
  } finally {
    clearTimeout(timer);
  }
}

/** dig's short answer lines (the record data in presentation form), sorted. */
async function digShort(server: UnboundInstance, args: readonly string[]): Promise<string[]> {
  const out = await run('dig', [`@127.0.0.1`, '-p', String(server.port), '+tries=1', '+time=2', '+short', ...args]);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();
}

const SERIAL = 2026112201;
/** Four TXT strings of 200 characters: about 830 bytes of answer, well over 512. */
const TXT = Array.from({ length: 4 }, (_, i) => `inventory-${i}:${'ward7-pacs-gw-lab-hl7-'.repeat(9)}`.slice(0, 200));

/** The `server:` statements of a region.test zone; `cosmic` and `serial` differ between instances. */
function regionZone(o: { cosmic: readonly string[]; serial: number }): string[] {
  return [
    'local-zone: "region.test." static',
    `local-data: "region.test. 3600 IN SOA ns1.region.test. hostmaster.region.test. ${o.serial} 3600 900 604800 300"`,
    'local-data: "region.test. 3600 IN NS ns1.region.test."',
    ...o.cosmic.map((ip) => `local-data: "cosmic.region.test. 300 IN A ${ip}"`),
    'local-data: "region.test. 300 IN MX 10 mail.region.test."',
    'local-data: "region.test. 300 IN MX 20 mail2.region.test."',
    'local-data: "_ldap._tcp.region.test. 300 IN SRV 0 100 389 dc1.region.test."',
    'local-data: "_ldap._tcp.region.test. 300 IN SRV 10 50 389 dc2.region.test."',
    'local-data-ptr: "10.20.1.5 cosmic.region.test."',
    ...TXT.map((t) => `local-data: 'big.region.test. 300 IN TXT "${t}"'`),
  ];
}

/** An unbound serving region.test plus a forward zone dead.test to a port that refuses. */
async function startRegion(o: { cosmic: readonly string[]; serial: number }): Promise<UnboundInstance> {
  const dead = await freePort();
  return startUnbound({ server: regionZone(o), forwardZones: [{ name: 'dead.test.', addr: `127.0.0.1@${dead}` }] });
}

beforeAll(async () => {
  // Tools the suite needs, checked up front so a missing one is named plainly (never a skip).
  await requireTool('unbound', ['-V'], 'unbound');
  await requireTool('unbound-checkconf', ['-h'], 'unbound');
  await requireTool('dig', ['-v'], 'dnsutils');
  removeStaleUnbound();
});

describe('dns probe against one unbound with a local zone', () => {
  let ub: UnboundInstance;

  beforeAll(async () => {
    ub = await startRegion({ cosmic: ['10.20.1.5', '10.20.1.6'], serial: SERIAL });
  });

  afterAll(async () => {
    await ub?.stop();
  });

  it('validates A, MX, SRV, PTR (asked by IP), SOA and TXT answers in the text forms dig prints', async () => {
    const a = await probeDns(ub.target, { name: 'cosmic.region.test', type: 'A', expect: { answer: { exactValues: ['10.20.1.5', '10.20.1.6'] } } });
    expect(a.failure, ub.log()).toBeUndefined();
    expect(a.ok).toBe(true);
    expect(a.info).toEqual({ dnsRcode: 'NOERROR', dnsTransport: 'udp' });
    expect(a.values).toMatchObject({ dns_query_succeeded: 1, dns_answer_rrs: 2 });
    expect(a.values?.dns_tcp_fallback).toBeUndefined();
    expect(a.phases.request).toBeGreaterThan(0);
    expect(a.phases.request).toBeLessThan(0.5);
    expect(a.phases.connect).toBeUndefined();

    // dig's presentation form is what the probe's values and regexes are written against.
    const cases: { name: string; type: string; want: string[] }[] = [
      { name: 'region.test', type: 'MX', want: ['10 mail.region.test.', '20 mail2.region.test.'] },
      { name: '_ldap._tcp.region.test', type: 'SRV', want: ['0 100 389 dc1.region.test.', '10 50 389 dc2.region.test.'] },
      { name: 'region.test', type: 'SOA', want: [`ns1.region.test. hostmaster.region.test. ${SERIAL} 3600 900 604800 300`] },
      { name: 'big.region.test', type: 'TXT', want: TXT.map((t) => `"${t}"`).sort() },
    ];
    for (const c of cases) {
      const dig = await digShort(ub, [c.name, c.type]);
      expect(dig, `dig ${c.name} ${c.type}`).toEqual(c.want);
      const r = await probeDns(ub.target, { name: c.name, type: c.type, expect: { answer: { exactValues: dig } } });
      expect(r.failure, `${c.name} ${c.type}`).toBeUndefined();
      expect(r.values?.dns_answer_rrs).toBe(c.want.length);
    }

    const ptrDig = await digShort(ub, ['-x', '10.20.1.5']);
    expect(ptrDig).toEqual(['cosmic.region.test.']);
    const ptr = await probeDns(ub.target, {
      name: '10.20.1.5',
      type: 'PTR',
      expect: { answer: { exactValues: ptrDig, mustMatch: ['^5\\.1\\.20\\.10\\.in-addr\\.arpa\\. \\d+ IN PTR cosmic\\.region\\.test\\.$'] } },
    });
    expect(ptr.failure).toBeUndefined();

    const soa = await probeDns(ub.target, { name: 'region.test', type: 'SOA' });
    expect(soa.ok).toBe(true);
    expect(soa.values?.dns_serial).toBe(SERIAL);

    const srvRegex = await probeDns(ub.target, {
      name: '_ldap._tcp.region.test',
      type: 'SRV',
      expect: { answer: { allMatch: ['IN SRV \\d+ \\d+ 389 dc\\d\\.region\\.test\\.$'], minCount: 2 } },
    });
    expect(srvRegex.failure).toBeUndefined();

    // And a wrong expectation is caught, with what the resolver did say.
    const wrong = await probeDns(ub.target, { name: 'cosmic.region.test', expect: { answer: { values: ['10.20.1.99'] } } });
    expect(wrong.ok).toBe(false);
    expect(wrong.failure).toMatchObject({ phase: 'request', reason: 'dns_mismatch' });
    // The message names what is missing and what came instead (in reply order: unbound rotates).
    expect(wrong.failure?.message).toMatch(/10\.20\.1\.99/);
    expect(wrong.failure?.message).toMatch(/10\.20\.1\.5\b/);
    expect(wrong.failure?.message).toMatch(/10\.20\.1\.6\b/);
    const mx = await probeDns(ub.target, { name: 'region.test', type: 'MX', expect: { answer: { mustNotMatch: ['mail2\\.'] } } });
    expect(mx.failure).toMatchObject({ reason: 'dns_mismatch' });
  });

  it('reports NXDOMAIN for a name missing from the static zone, and NODATA for a missing type', async () => {
    const nx = await probeDns(ub.target, { name: 'nope.region.test', type: 'A' });
    expect(nx.ok).toBe(false);
    expect(nx.failure).toMatchObject({ phase: 'request', reason: 'dns_nxdomain' });
    expect(nx.info).toEqual({ dnsRcode: 'NXDOMAIN', dnsTransport: 'udp' });
    // The static zone's SOA comes along in the authority section, as for any negative answer.
    expect(nx.values).toMatchObject({ dns_query_succeeded: 1, dns_answer_rrs: 0, dns_authority_rrs: 1 });
    const nxOk = await probeDns(ub.target, {
      name: 'nope.region.test',
      expect: { rcodes: ['NXDOMAIN'], authority: { mustMatch: ['IN SOA ns1\\.region\\.test\\.'] } },
    });
    expect(nxOk.failure).toBeUndefined();

    const nodata = await probeDns(ub.target, { name: 'cosmic.region.test', type: 'AAAA' });
    expect(nodata.failure).toMatchObject({ reason: 'dns_nodata' });
    expect(nodata.info?.dnsRcode).toBe('NOERROR');
    const nodataOk = await probeDns(ub.target, { name: 'cosmic.region.test', type: 'AAAA', expect: { nodata: true } });
    expect(nodataOk.ok).toBe(true);
  });

  it('reports SERVFAIL when the forwarder of a zone is down, within a few seconds', async () => {
    // The dead.test forwarder's port refuses (ICMP port unreachable); unbound, tuned in
    // startUnbound, gives up after one retry: 0.76 s for the first query, 1.5 s for the second,
    // then at once (measured with unbound 1.17.1; untuned it gives no answer for over 30 s).
    const first = await probeDns(ub.target, { name: 'ward7.dead.test', type: 'A' }, 8000);
    expect(first.failure, ub.log()).toMatchObject({ phase: 'request', reason: 'dns_servfail' });
    expect(first.info).toEqual({ dnsRcode: 'SERVFAIL', dnsTransport: 'udp' });
    expect(first.values?.dns_query_succeeded).toBe(1);
    expect(first.elapsed).toBeLessThan(4);
    const again = await probeDns(ub.target, { name: 'pacs.dead.test', type: 'A' }, 8000);
    expect(again.failure?.reason).toBe('dns_servfail');
    expect(again.elapsed).toBeLessThan(4);
  });

  it('falls back to TCP when the UDP reply is truncated, and fails with truncated when only UDP is allowed', async () => {
    // Without EDNS the ~850-byte TXT set does not fit 512 bytes: unbound sets TC. dig agrees.
    const digUdp = await run('dig', ['@127.0.0.1', '-p', String(ub.port), '+tries=1', '+time=2', '+noedns', '+ignore', 'big.region.test', 'TXT']);
    expect(digUdp).toMatch(/;; flags: qr aa tc rd ra;/);

    const fallback = await probeDns(ub.target, {
      name: 'big.region.test',
      type: 'TXT',
      ednsPayloadSize: 0,
      expect: { answer: { exactValues: TXT.map((t) => `"${t}"`) } },
    });
    expect(fallback.failure).toBeUndefined();
    expect(fallback.values?.dns_tcp_fallback).toBe(1);
    expect(fallback.values?.dns_answer_rrs).toBe(4);
    expect(fallback.info).toEqual({ dnsRcode: 'NOERROR', dnsTransport: 'tcp' });
    expect(fallback.phases.connect).toBeGreaterThan(0);
    // The truncated UDP exchange stays part of the request phase.
    expect(fallback.phases.request).toBeGreaterThan(0);

    const udpOnly = await probeDns(ub.target, { name: 'big.region.test', type: 'TXT', ednsPayloadSize: 0, transport: 'udp' });
    expect(udpOnly.ok).toBe(false);
    expect(udpOnly.failure).toMatchObject({ phase: 'request', reason: 'truncated' });
    expect(udpOnly.info).toEqual({ dnsRcode: 'NOERROR', dnsTransport: 'udp' });
    expect(udpOnly.values?.dns_tcp_fallback).toBeUndefined();

    // With EDNS (1232 by default) the same set fits in one datagram.
    const edns = await probeDns(ub.target, { name: 'big.region.test', type: 'TXT' });
    expect(edns.failure).toBeUndefined();
    expect(edns.info?.dnsTransport).toBe('udp');
    expect(edns.values?.dns_tcp_fallback).toBeUndefined();
    expect(edns.values?.dns_answer_rrs).toBe(4);
  });

  it('queries over TCP from the start with transport tcp', async () => {
    const tcp = await probeDns(ub.target, { name: 'cosmic.region.test', transport: 'tcp', expect: { answer: { exactValues: ['10.20.1.5', '10.20.1.6'] } } });
    expect(tcp.failure).toBeUndefined();
    expect(tcp.info).toEqual({ dnsRcode: 'NOERROR', dnsTransport: 'tcp' });
    expect(tcp.values?.dns_tcp_fallback).toBeUndefined();
    expect(tcp.phases.connect).toBeGreaterThan(0);
    expect(tcp.phases.connect).toBeLessThan(0.5);
    const txt = await probeDns(ub.target, { name: 'big.region.test', type: 'TXT', transport: 'tcp', ednsPayloadSize: 0 });
    expect(txt.failure).toBeUndefined();
    expect(txt.values?.dns_answer_rrs).toBe(4);
  });
});

describe('dns probe against an unbound that is stopped', () => {
  let ub: UnboundInstance | undefined;

  afterAll(async () => {
    await ub?.stop();
  });

  it('times out within the run timeout once unbound is gone (UDP), and is refused over TCP', async () => {
    ub = await startRegion({ cosmic: ['10.20.1.5'], serial: SERIAL });
    const before = await probeDns(ub.target, { name: 'cosmic.region.test' });
    expect(before.failure).toBeUndefined();

    await ub.stop('SIGTERM');
    expect(ub.running()).toBe(false);

    const runTimeout = 1500;
    const after = await probeDns(ub.target, { name: 'cosmic.region.test' }, runTimeout);
    expect(after.ok).toBe(false);
    expect(after.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
    expect(after.info?.dnsTransport).toBe('udp');
    expect(after.values?.dns_query_succeeded).toBe(0);
    expect(after.phases.request).toBeUndefined();
    // The probe ends its query a little before the run's deadline, never after it.
    expect(after.elapsed).toBeGreaterThan(1.2);
    expect(after.elapsed).toBeLessThan(runTimeout / 1000);

    const tcp = await probeDns(ub.target, { name: 'cosmic.region.test', transport: 'tcp' }, runTimeout);
    expect(tcp.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect(tcp.elapsed).toBeLessThan(0.5);
  });
});

describe('dns probe against two unbound instances with different zone data', () => {
  let a: UnboundInstance;
  let b: UnboundInstance;
  const SERIAL_B = SERIAL - 51;

  beforeAll(async () => {
    [a, b] = await Promise.all([startRegion({ cosmic: ['10.20.1.5'], serial: SERIAL }), startRegion({ cosmic: ['10.20.1.9'], serial: SERIAL_B })]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('fails with dns_inconsistent when the resolvers disagree, and passes where they agree', async () => {
    const r = await probeDns([a.target, b.target], { name: 'cosmic.region.test', consistency: true });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'dns_inconsistent' });
    // The message says who said what.
    for (const s of [a.target, b.target, '10.20.1.5', '10.20.1.9']) expect(r.failure?.message).toContain(s);
    // Each resolver on its own answered fine.
    expect(r.targets?.map((t) => [t.target, t.ok])).toEqual([
      [a.target, true],
      [b.target, true],
    ]);

    const same = await probeDns([a.target, b.target], { name: 'region.test', type: 'MX', consistency: true });
    expect(same.failure).toBeUndefined();
    expect(same.ok).toBe(true);
  });

  it('fails with dns_serial_lag when one SOA serial is behind by more than maxSerialLag', async () => {
    const r = await probeDns([a.target, b.target], { name: 'region.test', type: 'SOA', maxSerialLag: 10 });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'dns_serial_lag' });
    for (const s of [b.target, String(SERIAL_B), String(SERIAL)]) expect(r.failure?.message).toContain(s);
    const byTarget = Object.fromEntries((r.targets ?? []).map((t) => [t.target, t.values]));
    expect(byTarget[a.target]).toMatchObject({ dns_serial: SERIAL, dns_serial_lag: 0 });
    expect(byTarget[b.target]).toMatchObject({ dns_serial: SERIAL_B, dns_serial_lag: 51 });

    const tolerant = await probeDns([a.target, b.target], { name: 'region.test', type: 'SOA', maxSerialLag: 60 });
    expect(tolerant.failure).toBeUndefined();
    expect(tolerant.ok).toBe(true);
  });

  it('meets a quorum of 2 with a third resolver that does not answer (degraded), and fails with quorum all', async () => {
    const silentResolver = `127.0.0.1:${a.deadPort}`;
    const r = await probeDns([a.target, b.target, silentResolver], { name: 'region.test', type: 'MX', quorum: 2 }, 1500);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('partial');
    expect(r.targets?.find((t) => t.target === silentResolver)?.failure?.reason).toBe('timeout');

    const all = await probeDns([a.target, b.target, silentResolver], { name: 'region.test', type: 'MX' }, 1500);
    expect(all.ok).toBe(false);
    expect(all.failure?.reason).toBe('timeout');
    expect(all.elapsed).toBeLessThan(1.5);
  });
});
