// The sandbox's faults seen through the probes (the demo's stories, end to end): the firewall
// paths through the tcp probe, the internal resolvers through the dns probe.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../config/kinds.js';
import { dnsProbe } from '../../probes/dns.js';
import { tcpProbe } from '../../probes/tcp.js';
import { STALE_SERIAL, WRONG_ADDRESS, ZONE_SERIAL } from '../../sandbox/dns.js';
import { sandboxCertDir, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { budget, quietLog } from '../helpers/peers.js';

let sb: Sandbox;
beforeAll(async () => {
  sb = await startSandbox({ ports: { control: 0, ehr: 0, fwA: 0, fwB: 0, blocked: 0, ns1: 0, ns2: 0 } });
});
afterAll(async () => {
  await sb.stop();
});

function probe(port: number, options: Record<string, unknown>, timeoutMs = 1500) {
  return tcpProbe.run({ target: `127.0.0.1:${port}`, targets: [`127.0.0.1:${port}`], options: KIND_OPTIONS.tcp.parse(options), ...budget(timeoutMs), log: quietLog, secrets: {} });
}

const tls = () => ({ serverName: 'ehr.sandbox.vakt.test', caFile: `${sandboxCertDir()}/ca.pem` });

async function fault(path: string): Promise<{ paths: Record<string, string>; policy: string; dns: Record<string, string> }> {
  const res = await fetch(`${sb.controlUrl}/faults/${path}`, { method: 'POST' });
  expect(res.status).toBe(200);
  return (await res.json()) as { paths: Record<string, string>; policy: string; dns: Record<string, string> };
}

/** The dns probe against the sandbox's resolvers (by name: ns1, ns2). */
function dns(resolvers: string[], options: Record<string, unknown>, timeoutMs = 1000) {
  const targets = resolvers.map((r) => sb.resolvers[r]!.target);
  return dnsProbe.run({ target: targets.join(','), targets, options: KIND_OPTIONS.dns.parse(options), ...budget(timeoutMs), log: quietLog, secrets: {} });
}

const cosmic = { name: 'cosmic.region.sandbox', expect: { answer: { exactValues: ['10.20.1.5'] } } };

describe('sandbox firewall paths', () => {
  it('both paths pass by default: TLS through to the EHR front, HTTP answer read', async () => {
    for (const port of [sb.ports.fwA, sb.ports.fwB]) {
      const r = await probe(port, { tls: tls(), send: 'GET / HTTP/1.0\r\n\r\n', receive: '^HTTP/1\\.1 200' });
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
    }
  });

  it('drop: connections hang (timeout); reject: refused; reset: reset; back to pass: ok', async () => {
    expect((await fault('fw-a/drop')).paths['fw-a']).toBe('drop');
    expect((await probe(sb.ports.fwA, { tls: tls() }, 500)).failure).toMatchObject({ reason: 'timeout', phase: 'tls' });
    await fault('fw-a/reject');
    expect((await probe(sb.ports.fwA, { tls: tls() })).failure).toMatchObject({ reason: 'refused', phase: 'connect' });
    await fault('fw-a/reset');
    expect((await probe(sb.ports.fwA, { tls: tls() })).failure?.reason).toBe('reset');
    // Path B is untouched throughout.
    expect((await probe(sb.ports.fwB, { tls: tls() })).ok).toBe(true);
    await fault('fw-a/pass');
    expect((await probe(sb.ports.fwA, { tls: tls() })).ok).toBe(true);
  });

  it('overload: some connection attempts stall; the run is degraded with sample loss', async () => {
    await fault('fw-b/overload');
    let loss = 0;
    // Half of the attempts stall at random: retry until a run shows partial loss.
    for (let i = 0; i < 5 && !(loss > 0 && loss < 1); i++) {
      const r = await probe(sb.ports.fwB, { tls: tls(), samples: 10, sampleSpacing: '10ms' }, 800);
      loss = r.values?.samples_loss_ratio ?? 0;
      if (loss > 0 && loss < 1) expect(r).toMatchObject({ ok: true, degraded: { reason: 'sample_loss' } });
    }
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeLessThan(1);
    await fault('reset');
  });

  it('policy: the blocked port is blocked until the fault opens it', async () => {
    expect((await probe(sb.ports.blocked, { expect: 'blocked' })).ok).toBe(true);
    expect((await fault('policy/open')).policy).toBe('open');
    expect((await probe(sb.ports.blocked, { expect: 'blocked' })).failure?.reason).toBe('policy_open');
    await fault('policy/closed');
    expect((await probe(sb.ports.blocked, { expect: 'blocked' })).ok).toBe(true);
  });

  it('the control API rejects unknown faults and lists the switches', async () => {
    const bad = await fetch(`${sb.controlUrl}/faults/fw-a/explode`, { method: 'POST' });
    expect(bad.status).toBe(400);
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as { paths: Record<string, string>; dns: Record<string, string>; modes: { dns: string[] } };
    expect(Object.keys(list.paths)).toEqual(['fw-a', 'fw-b']);
    expect(list.dns).toEqual({ ns1: 'ok', ns2: 'ok' });
    expect(list.modes.dns).toEqual(['ok', 'timeout', 'servfail', 'wrong', 'nxdomain', 'refused', 'stale']);
    // A resolver mode on a firewall path, a path mode on a resolver, and inherited names are refused.
    for (const bad of ['fw-a/servfail', 'ns1/drop', 'ns3/ok', 'constructor/ok', 'constructor/pass', '__proto__/ok']) {
      expect((await fetch(`${sb.controlUrl}/faults/${bad}`, { method: 'POST' })).status, bad).toBe(400);
    }
  });
});

describe('sandbox internal DNS (ns1, ns2)', () => {
  it('both resolvers serve zone region.sandbox by default, over UDP and TCP', async () => {
    for (const r of ['ns1', 'ns2']) {
      const udp = await dns([r], cosmic);
      expect(udp.failure).toBeUndefined();
      expect(udp).toMatchObject({ ok: true, info: { dnsRcode: 'NOERROR', dnsTransport: 'udp' }, values: { dns_answer_rrs: 1 } });
      const tcp = await dns([r], { ...cosmic, transport: 'tcp' });
      expect(tcp).toMatchObject({ ok: true, info: { dnsTransport: 'tcp' } });
      expect(Object.keys(tcp.phases)).toEqual(['connect', 'request']);
    }
  });

  it('the zone: CNAME, MX and SRV with glue, PTR, SOA, NODATA, NXDOMAIN, out-of-zone REFUSED', async () => {
    const ehr = await dns(['ns1'], { name: 'ehr.region.sandbox', expect: { answer: { exactValues: ['cosmic.region.sandbox.', '10.20.1.5'] } } });
    expect(ehr.failure).toBeUndefined();
    const mx = await dns(['ns1'], { name: 'region.sandbox', type: 'MX', expect: { answer: { values: ['10 mail.region.sandbox.'] }, additional: { values: ['10.20.3.25'] } } });
    expect(mx.failure).toBeUndefined();
    const srv = await dns(['ns1'], { name: '_ldap._tcp.region.sandbox', type: 'SRV', expect: { answer: { minCount: 2, allMatch: [' IN SRV 0 100 389 dc0[12]\\.region\\.sandbox\\.$'] } } });
    expect(srv.failure).toBeUndefined();
    const ptr = await dns(['ns2'], { name: '10.20.2.30', type: 'PTR', expect: { answer: { exactValues: ['pacs.region.sandbox.'] } } });
    expect(ptr.failure).toBeUndefined();
    const soa = await dns(['ns1'], { name: 'region.sandbox', type: 'SOA' });
    expect(soa.values?.dns_serial).toBe(ZONE_SERIAL);
    const nodata = await dns(['ns1'], { name: 'cosmic.region.sandbox', type: 'AAAA' });
    expect(nodata.failure?.reason).toBe('dns_nodata');
    expect(nodata.values?.dns_authority_rrs).toBe(1); // the SOA, as a real server sends it
    expect((await dns(['ns1'], { name: 'nosuch.region.sandbox' })).failure?.reason).toBe('dns_nxdomain');
    expect((await dns(['ns1'], { name: 'nosuch.region.sandbox', expect: { rcodes: ['NXDOMAIN'] } })).ok).toBe(true);
    expect((await dns(['ns1'], { name: 'www.example.com' })).failure?.reason).toBe('dns_refused');
  });

  it('a reply too big for UDP comes back truncated; the probe retries over TCP', async () => {
    const auto = await dns(['ns1'], { name: 'vdi.region.sandbox', expect: { answer: { minCount: 100 } } });
    expect(auto.failure).toBeUndefined();
    expect(auto).toMatchObject({ ok: true, values: { dns_tcp_fallback: 1, dns_answer_rrs: 100 }, info: { dnsTransport: 'tcp' } });
    expect(Object.keys(auto.phases).sort()).toEqual(['connect', 'request']);
    expect((await dns(['ns1'], { name: 'vdi.region.sandbox', transport: 'udp' })).failure?.reason).toBe('truncated');
  });

  it('each fault mode gives its failure reason; ns2 is untouched; ok recovers', async () => {
    const cases: [string, string][] = [
      ['servfail', 'dns_servfail'],
      ['wrong', 'dns_mismatch'],
      ['nxdomain', 'dns_nxdomain'],
      ['refused', 'dns_refused'],
    ];
    for (const [mode, reason] of cases) {
      expect((await fault(`ns1/${mode}`)).dns).toEqual({ ns1: mode, ns2: 'ok' });
      const r = await dns(['ns1'], cosmic);
      expect(r.failure, mode).toMatchObject({ reason, phase: 'request' });
      expect(r.values?.dns_query_succeeded, mode).toBe(1);
      expect((await dns(['ns2'], cosmic)).ok, mode).toBe(true);
    }
    await fault('ns1/wrong');
    expect((await dns(['ns1'], cosmic)).failure?.message).toContain(WRONG_ADDRESS);
    await fault('ns1/ok');
    expect((await dns(['ns1'], cosmic)).ok).toBe(true);
  });

  it('timeout: the resolver never answers, over UDP or TCP', async () => {
    await fault('ns2/timeout');
    const udp = await dns(['ns2'], cosmic, 400);
    expect(udp.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
    expect(udp.values?.dns_query_succeeded).toBe(0);
    expect(udp.info?.dnsRcode).toBeUndefined();
    const tcp = await dns(['ns2'], { ...cosmic, transport: 'tcp' }, 400);
    // Connected, then silence: the failure is in the request phase, not the connect.
    expect(tcp.failure).toMatchObject({ reason: 'timeout', phase: 'request' });
    await fault('reset');
    expect((await dns(['ns2'], cosmic)).ok).toBe(true);
  });

  it('stale: an older SOA serial (and last month\'s address for pacs)', async () => {
    await fault('ns2/stale');
    expect((await dns(['ns2'], { name: 'region.sandbox', type: 'SOA' })).values?.dns_serial).toBe(STALE_SERIAL);
    expect((await dns(['ns2'], { name: 'pacs.region.sandbox', expect: { answer: { exactValues: ['10.20.2.30'] } } })).failure?.reason).toBe('dns_mismatch');
    // The address most checks look at is unchanged: only the serial comparison sees it.
    expect((await dns(['ns2'], cosmic)).ok).toBe(true);
    await fault('reset');
  });

  it('both resolvers: wrong on one is dns_inconsistent with consistency; one down is partial with quorum 1', async () => {
    const both = { name: 'cosmic.region.sandbox', consistency: true };
    expect((await dns(['ns1', 'ns2'], both)).ok).toBe(true);
    await fault('ns1/wrong');
    const a = await dns(['ns1', 'ns2'], both);
    expect(a.failure).toMatchObject({ reason: 'dns_inconsistent' });
    expect(a.failure?.message).toContain(`say ${WRONG_ADDRESS}`);
    // Each resolver on its own answered: the disagreement is only the check's verdict.
    expect(a.targets?.map((t) => t.ok)).toEqual([true, true]);
    // Without consistency the wrong answer goes unnoticed unless the values are checked.
    expect((await dns(['ns1', 'ns2'], { name: 'cosmic.region.sandbox' })).ok).toBe(true);
    // The demo's zone check (SOA, consistency, maxSerialLag): the wrong copy of the zone.
    const zone = { name: 'region.sandbox', type: 'SOA', quorum: 1, consistency: true, maxSerialLag: 0 };
    expect((await dns(['ns1', 'ns2'], zone)).failure?.reason).toBe('dns_inconsistent');
    await fault('ns1/servfail');
    const partial = await dns(['ns1', 'ns2'], zone);
    expect(partial).toMatchObject({ ok: true, degraded: { reason: 'partial' } });
    expect(partial.targets?.find((t) => t.target === sb.resolvers.ns1!.target)?.failure?.reason).toBe('dns_servfail');
    await fault('ns2/servfail');
    expect((await dns(['ns1', 'ns2'], zone)).failure?.reason).toBe('dns_servfail');
    await fault('reset');
    expect((await dns(['ns1', 'ns2'], zone)).ok).toBe(true);
  });

  it('stale on one resolver: dns_serial_lag, with each target\'s lag', async () => {
    await fault('ns2/stale');
    const r = await dns(['ns1', 'ns2'], { name: 'region.sandbox', type: 'SOA', consistency: true, maxSerialLag: 0 });
    expect(r.failure).toMatchObject({ reason: 'dns_serial_lag' });
    expect(r.targets?.map((t) => t.values?.dns_serial_lag)).toEqual([0, ZONE_SERIAL - STALE_SERIAL]);
    await fault('reset');
    const list: unknown = await (await fetch(`${sb.controlUrl}/faults`)).json();
    expect(list).toMatchObject({ dns: { ns1: 'ok', ns2: 'ok' } });
  });
});
