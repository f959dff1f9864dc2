// The sandbox's faults seen through the probes (the demo's stories, end to end): the firewall
// paths through the tcp probe, the internal resolvers through the dns probe, the Cosmic login and
// the identity provider through the http and oidc probes, the directory through the ldap probe,
// the HL7 interface engine through the mllp probe and the integration broker through the queue
// probe, the clinical devices' Wi-Fi login through the radius probe, with the demo's own checks.
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Detector } from '../../agent/detector.js';
import { defaultConfigFile } from '../../agent/paths.js';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { loadConfigFile, type CheckConfig } from '../../config/loader.js';
import { dnsProbe } from '../../probes/dns/probe.js';
import { httpProbe } from '../../probes/http/probe.js';
import { ldapProbe } from '../../probes/ldap/probe.js';
import { frame, MllpReader, mllpProbe, parseAck } from '../../probes/mllp/probe.js';
import { oidcProbe } from '../../probes/oidc/probe.js';
import { rabbitmqOptions, type QueueOptions, type SourceOptions } from '../../probes/queue/options.js';
import { queueProbe } from '../../probes/queue/probe.js';
import { radiusProbe } from '../../probes/radius/probe.js';
import { tcpProbe } from '../../probes/tcp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { STALE_SERIAL, WRONG_ADDRESS, ZONE_SERIAL } from '../../sandbox/dns.js';
import { SANDBOX_PEOPLE_DN } from '../../sandbox/ldap.js';
import {
  SANDBOX_CLIENT_ID,
  SANDBOX_PORTS,
  SANDBOX_USER,
  sandboxCertDir,
  sandboxSecretDir,
  startSandbox,
  type Sandbox,
  type SandboxPorts,
} from '../../sandbox/index.js';
import { SANDBOX_QUEUE_USER, SimulatedQueue } from '../../sandbox/queue.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { freeSandboxPorts } from '../helpers/demo-config.js';

/** A `slow` login in these tests (the demo's is 4 s). */
const SLOW_MS = 400;
/** A `slow` HL7 ACK in these tests (the demo's is 3 s). */
const MLLP_SLOW_MS = 1200;
/** The broker's queues in these tests: ten times the demo's rates (orders.out 1/s, lab.results 2/s, drained at 5/s, slow 1/s). */
const TEST_QUEUES = [
  { name: 'orders.out', arrivalPerSecond: 10, drainPerSecond: 50 },
  { name: 'lab.results', arrivalPerSecond: 20, drainPerSecond: 50 },
];
const TEST_SLOW_DRAIN = 10;
/** A `slow` RADIUS answer in these tests (the demo's is 2.5 s, after its 2 s retransmit interval). */
const RADIUS_SLOW_MS = 500;

let sb: Sandbox;
beforeAll(async () => {
  sb = await startSandbox({
    ports: freeSandboxPorts(),
    slowLoginMs: SLOW_MS,
    slowMllpMs: MLLP_SLOW_MS,
    queues: TEST_QUEUES,
    slowQueueDrainPerSecond: TEST_SLOW_DRAIN,
    slowRadiusMs: RADIUS_SLOW_MS,
  });
});
afterAll(async () => {
  await sb.stop();
});

/** A check of the demo (config/default.yaml) by name, pointed at this test's sandbox (its port replaced by the sandbox's `port`). */
async function demoCheck<K extends CheckConfig['kind']>(name: string, kind: K, port: keyof SandboxPorts): Promise<Extract<CheckConfig, { kind: K }>> {
  const config = await loadConfigFile(defaultConfigFile);
  const c = config.checks.find((x) => x.name === name);
  if (c?.kind !== kind) throw new Error(`config/default.yaml has no ${name} (${kind})`);
  const target = c.target.replace(`:${SANDBOX_PORTS[port]}`, `:${sb.ports[port]}`);
  // The kind was checked above; TypeScript cannot narrow a union by a generic kind.
  return { ...c, ...targetsOf(kind, target), target } as unknown as Extract<CheckConfig, { kind: K }>;
}

function probe(port: number, options: Record<string, unknown>, timeoutMs = 1500) {
  return tcpProbe.run({
    ...targetsOf('tcp', `127.0.0.1:${port}`),
    options: KIND_OPTIONS.tcp.parse(options),
    ...budget(timeoutMs),
    log: quietLog,
    secrets: {},
  });
}

const tls = () => ({ serverName: 'ehr.sandbox.vakt.test', caFile: `${sandboxCertDir()}/ca.pem` });

interface FaultState {
  paths: Record<string, string>;
  policy: string;
  dns: Record<string, string>;
  login: string;
  idp: string;
  ldap: string;
  mllp: string;
  queue: string;
}

async function fault(path: string): Promise<FaultState> {
  const res = await fetch(`${sb.controlUrl}/faults/${path}`, { method: 'POST' });
  expect(res.status).toBe(200);
  return (await res.json()) as FaultState;
}

/** The dns probe against the sandbox's resolvers (by name: ns1, ns2). */
function dns(resolvers: string[], options: Record<string, unknown>, timeoutMs = 1000) {
  const targets = resolvers.map((r) => sb.resolvers[r]!.target);
  return dnsProbe.run({ ...targetsOf('dns', ...targets), options: KIND_OPTIONS.dns.parse(options), ...budget(timeoutMs), log: quietLog, secrets: {} });
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
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as {
      paths: Record<string, string>;
      dns: Record<string, string>;
      modes: { dns: string[] };
    };
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
    const mx = await dns(['ns1'], {
      name: 'region.sandbox',
      type: 'MX',
      expect: { answer: { values: ['10 mail.region.sandbox.'] }, additional: { values: ['10.20.3.25'] } },
    });
    expect(mx.failure).toBeUndefined();
    const srv = await dns(['ns1'], {
      name: '_ldap._tcp.region.sandbox',
      type: 'SRV',
      expect: { answer: { minCount: 2, allMatch: [' IN SRV 0 100 389 dc0[12]\\.region\\.sandbox\\.$'] } },
    });
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

  it("stale: an older SOA serial (and last month's address for pacs)", async () => {
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

  it("stale on one resolver: dns_serial_lag, with each target's lag", async () => {
    await fault('ns2/stale');
    const r = await dns(['ns1', 'ns2'], { name: 'region.sandbox', type: 'SOA', consistency: true, maxSerialLag: 0 });
    expect(r.failure).toMatchObject({ reason: 'dns_serial_lag' });
    expect(r.targets?.map((t) => t.values?.dns_serial_lag)).toEqual([0, ZONE_SERIAL - STALE_SERIAL]);
    await fault('reset');
    const list: unknown = await (await fetch(`${sb.controlUrl}/faults`)).json();
    expect(list).toMatchObject({ dns: { ns1: 'ok', ns2: 'ok' } });
  });
});

describe('sandbox login (Cosmic web login and identity provider)', () => {
  /** The demo's own checks from config/default.yaml, pointed at this test's sandbox. */
  let login: Extract<CheckConfig, { kind: 'http' }>;
  let idp: Extract<CheckConfig, { kind: 'oidc' }>;
  beforeAll(async () => {
    const config = await loadConfigFile(defaultConfigFile);
    const here = (s: string) => s.replace(`:${SANDBOX_PORTS.loginTls}`, `:${sb.ports.loginTls}`);
    const l = config.checks.find((c) => c.name === 'cosmic-login');
    const i = config.checks.find((c) => c.name === 'idp-token');
    if (l?.kind !== 'http' || i?.kind !== 'oidc') throw new Error('config/default.yaml has no cosmic-login (http) and idp-token (oidc)');
    login = { ...l, ...targetsOf('http', here(l.target)), target: here(l.target) };
    idp = {
      ...i,
      ...targetsOf('oidc', here(i.target)),
      target: here(i.target),
      options: { ...i.options, expect: { ...i.options.expect, issuer: here(i.options.expect.issuer ?? '') } },
    };
  });

  const runLogin = (check = login) =>
    httpProbe.run({
      target: check.targets[0]!,
      targets: check.targets,
      options: check.options,
      ...budget(check.timeoutMs),
      log: quietLog,
      secrets: check.secrets,
    });
  const runIdp = (check = idp) =>
    oidcProbe.run({
      target: check.targets[0]!,
      targets: check.targets,
      options: check.options,
      ...budget(check.timeoutMs),
      log: quietLog,
      secrets: check.secrets,
    });
  /** The oidc probe with options of the test's own (credentials by secret name). */
  const oidc = (
    target: string,
    options: Record<string, unknown>,
    secrets: Record<string, string> = { client_secret: sb.login.clients[SANDBOX_CLIENT_ID]!, password: sb.login.password },
  ) => oidcProbe.run({ ...targetsOf('oidc', target), options: KIND_OPTIONS.oidc.parse(options), ...budget(3000), log: quietLog, secrets });
  const stepNames = (r: ProbeResult) => r.steps?.map((s) => s.name);

  it("the demo's checks succeed: cosmic-login over HTTPS in four steps, idp-token by discovery and client_credentials", async () => {
    expect(login.secrets.password).toBe(sb.login.password);
    const r = await runLogin();
    expect(r.failure).toBeUndefined();
    expect(r.degraded).toBeUndefined();
    expect(stepNames(r)).toEqual(['form', 'login', 'home', 'logout']);
    expect(r.steps?.map((s) => s.status)).toEqual([200, 200, 200, 200]);
    // The POST is answered by the redirect chain that sets the session cookie.
    expect(r.steps?.[1]?.redirects).toBe(3);
    expect(Object.keys(r.phases)).toEqual(['connect', 'tls', 'processing', 'transfer']);
    expect(r.values).toMatchObject({ http_ssl: 1 });

    const t = await runIdp();
    expect(t.failure).toBeUndefined();
    expect(t).toMatchObject({ ok: true, values: { http_status_code: 200 } });
    expect(Object.keys(t.phases)).toEqual(['discovery', 'connect', 'tls', 'token']);

    // The same app over plain HTTP.
    const plain = { ...login, ...targetsOf('http', sb.login.url), target: sb.login.url, options: { ...login.options, tls: undefined } };
    expect((await runLogin(plain)).ok).toBe(true);
    expect((await oidc(sb.login.url, { clientId: SANDBOX_CLIENT_ID, clientSecret: 'client_secret', expect: { issuer: sb.login.url } })).ok).toBe(true);
  });

  it('login/slow: the POST takes the time, the form stays fast; degraded (slow) naming the login step', async () => {
    // Longer than the demo check's `degradedAbove: 1s` on the login step.
    sb.loginFaults.slowMs = 1300;
    try {
      expect((await fault('login/slow')).login).toBe('slow');
      const r = await runLogin();
      expect(r.failure).toBeUndefined();
      expect(r).toMatchObject({ ok: true, degraded: { reason: 'slow' } });
      expect(r.degraded?.message).toMatch(/^step login took 1\.\d\d s \(limit 1\.00 s\)$/);
      const [form, post, home] = r.steps ?? [];
      expect(post).toMatchObject({ name: 'login', ok: true, slow: true });
      // Where the time went: waiting for the server (processing), on a connection already open.
      expect(post!.phases.processing).toBeGreaterThanOrEqual(1.25);
      expect(post!.phases.connect).toBeUndefined();
      expect(form!.durationSeconds).toBeLessThan(0.5);
      expect(home!.durationSeconds).toBeLessThan(0.5);
      expect(form!.slow).toBeUndefined();
      // The check's own limits (above: 3s) are not exceeded by a 1.4 s run; the probe's reason,
      // naming the step, is what the check reports (and it wins over the check's own too).
      const judged = new Detector().judge(login, r, 1.4);
      expect(judged.degraded).toEqual(r.degraded);
    } finally {
      sb.loginFaults.slowMs = SLOW_MS;
      await fault('login/ok');
    }
  });

  it('login/down: 500 at the first step; login/reject: 401 at the login step; ok: back to normal', async () => {
    await fault('login/down');
    const down = await runLogin();
    expect(down.failure).toEqual({ phase: 'processing', reason: 'http_status', message: 'step form: status 500, expected 2xx' });
    expect(stepNames(down)).toEqual(['form']);
    // The identity provider has its own switch: still fine.
    expect((await runIdp()).ok).toBe(true);
    await fault('login/reject');
    const reject = await runLogin();
    expect(reject.failure).toMatchObject({ reason: 'http_status', message: 'step login: status 401, expected 2xx' });
    expect(JSON.stringify(reject)).not.toContain(sb.login.password);
    expect((await fault('login/ok')).login).toBe('ok');
    expect((await runLogin()).ok).toBe(true);
  });

  it('idp/invalid_client: reason auth with authCode invalid_client; idp/slow: the token phase; idp/down: 503', async () => {
    await fault('idp/invalid_client');
    const refused = await runIdp();
    expect(refused.failure).toMatchObject({ phase: 'token', reason: 'auth' });
    expect(refused.failure?.message).toMatch(/^the client_credentials grant was refused: invalid_client \(status 401\)/);
    expect(refused.info?.authCode).toBe('invalid_client');
    // The web login is another switch: still fine.
    expect((await runLogin()).ok).toBe(true);

    await fault('idp/slow');
    const slow = await runIdp();
    expect(slow.failure).toBeUndefined();
    expect(slow.phases.token).toBeGreaterThanOrEqual((SLOW_MS - 20) / 1000);
    expect(slow.phases.discovery).toBeLessThan(0.3);
    // The check's degraded.above (1s) makes a slower run degraded; here a run of 1.5 s.
    expect(new Detector().judge(idp, slow, 1.5).degraded).toMatchObject({ reason: 'slow', message: 'took 1.50 s, limit 1.00 s' });

    await fault('idp/down');
    const down = await runIdp();
    expect(down.failure).toMatchObject({ phase: 'discovery', reason: 'http_status' });
    expect(down.failure?.message).toContain('status 503');

    await fault('reset');
    expect((await runIdp()).ok).toBe(true);
  });

  it('the identity provider: password grant with an ID token and userinfo; OAuth errors as JSON; the bearer check', async () => {
    const base = sb.login.url;
    const pw = await oidc(base, {
      grant: 'password',
      clientId: SANDBOX_CLIENT_ID,
      clientSecret: 'client_secret',
      username: SANDBOX_USER,
      password: 'password',
      scope: 'openid profile',
      expect: { idToken: true },
      resource: { url: 'userinfo' },
    });
    expect(pw.failure).toBeUndefined();
    expect(Object.keys(pw.phases)).toEqual(['discovery', 'connect', 'token', 'resource']);
    // Client secret in the form instead of HTTP Basic.
    expect((await oidc(base, { clientId: SANDBOX_CLIENT_ID, clientSecret: 'client_secret', clientAuth: 'body' })).ok).toBe(true);
    // A wrong user password: invalid_grant; a wrong client secret: invalid_client; an unknown scope.
    const badUser = await oidc(
      base,
      { grant: 'password', clientId: SANDBOX_CLIENT_ID, clientSecret: 'client_secret', username: SANDBOX_USER, password: 'password' },
      { client_secret: sb.login.clients[SANDBOX_CLIENT_ID]!, password: 'not-the-password' },
    );
    expect(badUser).toMatchObject({ failure: { reason: 'auth' }, info: { authCode: 'invalid_grant' } });
    const badClient = await oidc(base, { clientId: SANDBOX_CLIENT_ID, clientSecret: 'client_secret' }, { client_secret: 'not-the-secret' });
    expect(badClient).toMatchObject({ failure: { reason: 'auth' }, info: { authCode: 'invalid_client' } });
    expect(await oidc(base, { clientId: SANDBOX_CLIENT_ID, clientSecret: 'client_secret', scope: 'admin' })).toMatchObject({
      info: { authCode: 'invalid_scope' },
    });

    // By hand: the error JSON, no caching, the Basic challenge, grant types.
    const token = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${base}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
    const basic = `Basic ${Buffer.from(`${SANDBOX_CLIENT_ID}:${sb.login.clients[SANDBOX_CLIENT_ID]!}`).toString('base64')}`;
    const noClient = await token('grant_type=client_credentials');
    expect(noClient.status).toBe(401);
    expect(noClient.headers.get('cache-control')).toBe('no-store');
    expect(await noClient.json()).toMatchObject({ error: 'invalid_client' });
    const wrongBasic = await token('grant_type=client_credentials', { authorization: `Basic ${Buffer.from(`${SANDBOX_CLIENT_ID}:nope`).toString('base64')}` });
    expect(wrongBasic.status).toBe(401);
    expect(wrongBasic.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect(await (await token('grant_type=authorization_code', { authorization: basic })).json()).toMatchObject({ error: 'unsupported_grant_type' });
    expect(await (await token('', { authorization: basic })).json()).toMatchObject({ error: 'invalid_request' });
    const both = await token(`grant_type=client_credentials&client_secret=x`, { authorization: basic });
    expect([both.status, ((await both.json()) as { error: string }).error]).toEqual([400, 'invalid_request']);
    const ok = await token('grant_type=client_credentials&scope=openid', { authorization: basic });
    expect(ok.status).toBe(200);
    const doc = (await ok.json()) as { access_token: string; token_type: string; expires_in: number; scope: string };
    expect(doc).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'openid' });

    // userinfo: no token, an unknown token, a token without openid, a good one.
    const userinfo = (auth?: string) => fetch(`${base}/oauth2/userinfo`, { headers: auth ? { authorization: auth } : {} });
    const none = await userinfo();
    expect([none.status, none.headers.get('www-authenticate')]).toEqual([401, 'Bearer realm="sandbox"']);
    const unknown = await userinfo('Bearer not-a-token');
    expect(unknown.status).toBe(401);
    expect(unknown.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const noOpenid = (await (await token('grant_type=client_credentials&scope=ehr.read', { authorization: basic })).json()) as { access_token: string };
    expect((await userinfo(`Bearer ${noOpenid.access_token}`)).status).toBe(403);
    expect(await (await userinfo(`Bearer ${doc.access_token}`)).json()).toEqual({ sub: SANDBOX_CLIENT_ID });

    const discovery = (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({ issuer: base, token_endpoint: `${base}/oauth2/token`, userinfo_endpoint: `${base}/oauth2/userinfo` });
  });

  it('the control API lists the login and idp switches, refuses unknown modes, and reset clears them', async () => {
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as { login: string; idp: string; modes: { login: string[]; idp: string[] } };
    expect(list).toMatchObject({ login: 'ok', idp: 'ok' });
    expect(list.modes.login).toEqual(['ok', 'slow', 'update', 'down', 'reject']);
    expect(list.modes.idp).toEqual(['ok', 'slow', 'invalid_client', 'down']);
    for (const bad of ['login/explode', 'login/invalid_client', 'idp/reject', 'idp/pass', 'login', 'idp']) {
      expect((await fetch(`${sb.controlUrl}/faults/${bad}`, { method: 'POST' })).status, bad).toBe(400);
    }
    await fault('login/reject');
    expect(await fault('idp/down')).toMatchObject({ login: 'reject', idp: 'down' });
    expect(await fault('reset')).toMatchObject({ login: 'ok', idp: 'ok' });
    expect((await runLogin()).ok).toBe(true);
    expect((await runIdp()).ok).toBe(true);
  });
});

describe('sandbox directory (ldap)', () => {
  /** The demo's directory-bind check from config/default.yaml, pointed at this test's sandbox. */
  let check: Extract<CheckConfig, { kind: 'ldap' }>;
  beforeAll(async () => {
    check = await demoCheck('directory-bind', 'ldap', 'ldap');
  });

  const runCheck = (secrets = check.secrets) =>
    ldapProbe.run({ target: check.targets[0]!, targets: check.targets, options: check.options, ...budget(check.timeoutMs), log: quietLog, secrets });
  /** The ldap probe with options of the test's own (the password by secret name). */
  const ldap = (options: Record<string, unknown>, password = sb.login.password, timeoutMs = 2000) =>
    ldapProbe.run({
      ...targetsOf('ldap', sb.directory.url),
      options: KIND_OPTIONS.ldap.parse(options),
      ...budget(timeoutMs),
      log: quietLog,
      secrets: { pw: password },
    });
  const probeDn = `uid=${SANDBOX_USER},${SANDBOX_PEOPLE_DN}`;

  /** Bytes written to the directory's port; resolves with what came back once the server closed the connection. */
  const garbage = (bytes: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      const got: Buffer[] = [];
      const s = createConnection(sb.ports.ldap, '127.0.0.1');
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error('the server kept the connection open'));
      }, 3000);
      s.on('data', (d: Buffer) => got.push(d));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(got));
      });
      s.write(bytes);
    });

  it("the demo's check succeeds: bind as the probe account, then a search under ou=people", async () => {
    expect(check.secrets.password).toBe(sb.login.password);
    const r = await runCheck();
    expect(r.failure).toBeUndefined();
    expect(r.degraded).toBeUndefined();
    expect(r).toMatchObject({ ok: true, values: { ldap_search_entries: 3 } });
    expect(Object.keys(r.phases)).toEqual(['connect', 'bind', 'search']);
    // A UPN as Active Directory accepts it, StartTLS with the sandbox certificate, a filter.
    const tls = await ldap({
      bindDn: `${SANDBOX_USER}@region.sandbox`,
      password: 'pw',
      startTls: true,
      tls: { serverName: 'localhost', caFile: `${sandboxCertDir()}/ca.pem` },
      search: { baseDn: 'dc=region,dc=sandbox', filter: `(&(objectClass=groupOfNames)(member=${probeDn}))`, minEntries: 1 },
    });
    expect(tls.failure).toBeUndefined();
    expect(Object.keys(tls.phases)).toEqual(['connect', 'tls', 'bind', 'search']);
    expect(tls.values?.ssl_earliest_cert_expiry).toBeGreaterThan(0);
    // A search that finds too little, and one under a base that does not exist.
    expect((await ldap({ bindDn: probeDn, password: 'pw', search: { baseDn: SANDBOX_PEOPLE_DN, filter: '(title=Surgeon)' } })).failure).toMatchObject({
      phase: 'search',
      reason: 'assertion',
    });
    expect((await ldap({ bindDn: probeDn, password: 'pw', search: { baseDn: 'ou=nowhere,dc=region,dc=sandbox' } })).failure).toMatchObject({
      phase: 'search',
      reason: 'assertion',
    });
    // The directory is read-only.
    const c = new Client({ url: sb.directory.url });
    try {
      await expect(c.add(`uid=new,${SANDBOX_PEOPLE_DN}`, { objectClass: 'person' })).rejects.toThrow(/read-only/);
    } finally {
      await c.unbind();
    }
  });

  it('a wrong password is auth/invalid_credentials (data 52e); an unknown user is user_not_found (data 525)', async () => {
    const wrong = await runCheck({ password: 'not-the-password' });
    expect(wrong.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(wrong.failure?.message).toContain('data 52e');
    expect(wrong.info?.authCode).toBe('invalid_credentials');
    expect(wrong.phases.bind).toBeGreaterThan(0);
    const unknown = await ldap({ bindDn: `uid=nobody,${SANDBOX_PEOPLE_DN}`, password: 'pw' });
    expect(unknown).toMatchObject({ failure: { phase: 'bind', reason: 'auth' }, info: { authCode: 'user_not_found' } });
    // A staff account has no password in the sandbox: every bind as it is refused.
    expect((await ldap({ bindDn: `uid=anna.berg,${SANDBOX_PEOPLE_DN}`, password: 'pw' })).info?.authCode).toBe('invalid_credentials');
  });

  it('ldap/slow: the bind takes the time, connect stays fast; degraded (slow) naming the bind phase', async () => {
    sb.directory.slowMs = 1200;
    try {
      expect((await fault('ldap/slow')).ldap).toBe('slow');
      const r = await runCheck();
      expect(r.failure).toBeUndefined();
      expect(r).toMatchObject({ ok: true, degraded: { reason: 'slow' } });
      expect(r.degraded?.message).toMatch(/^bind took 1\.\d\ds, above bindDegradedAbove 1\.00s$/);
      expect(r.phases.bind).toBeGreaterThanOrEqual(1.15);
      expect(r.phases.connect).toBeLessThan(0.3);
      expect(r.phases.search).toBeLessThan(0.3);
    } finally {
      sb.directory.slowMs = 3000;
      await fault('ldap/ok');
    }
  });

  it('ldap/locked, ldap/expired: refused with the AD reason; ldap/down: refused at connect; ok recovers', async () => {
    await fault('ldap/locked');
    const locked = await runCheck();
    expect(locked).toMatchObject({ ok: false, failure: { phase: 'bind', reason: 'auth' }, info: { authCode: 'account_locked' } });
    expect(locked.failure?.message).toContain('data 775');
    expect(JSON.stringify(locked)).not.toContain(sb.login.password);

    await fault('ldap/expired');
    expect(await runCheck()).toMatchObject({ failure: { phase: 'bind', reason: 'auth' }, info: { authCode: 'password_expired' } });
    // A wrong password is still a wrong password.
    expect((await runCheck({ password: 'not-the-password' })).info?.authCode).toBe('invalid_credentials');

    expect((await fault('ldap/down')).ldap).toBe('down');
    const down = await runCheck();
    expect(down.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    // The login app is another switch: still fine.
    expect((await fetch(`${sb.login.url}/api/health`)).status).toBe(200);

    await fault('ldap/ok');
    expect((await runCheck()).ok).toBe(true);
    await fault('ldap/down');
    expect((await fault('reset')).ldap).toBe('ok');
    expect((await runCheck()).ok).toBe(true);
  });

  it('the control API lists the ldap switch and refuses unknown modes', async () => {
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as { ldap: string; modes: { ldap: string[] } };
    expect(list.ldap).toBe('ok');
    expect(list.modes.ldap).toEqual(['ok', 'slow', 'locked', 'expired', 'down']);
    for (const bad of ['ldap/explode', 'ldap/reject', 'ldap', 'ldap/pass']) {
      expect((await fetch(`${sb.controlUrl}/faults/${bad}`, { method: 'POST' })).status, bad).toBe(400);
    }
  });

  it('garbage on the port: the connection is closed (with a Notice of Disconnection), the directory carries on', async () => {
    const cases = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(20)),
      Buffer.alloc(100_000, 0xff),
      Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]),
      Buffer.from([0x30, 0x80, 0x00, 0x00]),
      Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]),
      Buffer.from([0x30, 0x06, 0x02, 0x01, 0x01, 0x7f, 0x01, 0x00]),
      Buffer.concat([Buffer.from([0x30, 0x83, 0x01, 0x00, 0x00]), Buffer.alloc(70_000, 0x04)]),
    ];
    for (const bytes of cases) {
      const reply = await garbage(bytes);
      // The notice of disconnection: an LDAPMessage with message ID 0 and an ExtendedResponse.
      expect(reply.length, bytes.subarray(0, 16).toString('hex')).toBeGreaterThan(0);
      expect(reply.subarray(0, 1)).toEqual(Buffer.from([0x30]));
      expect(reply.includes(Buffer.from('1.3.6.1.4.1.1466.20036'))).toBe(true);
    }
    // A client that goes away in the middle of a message.
    const s = createConnection(sb.ports.ldap, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.end(Buffer.from([0x30, 0x10, 0x02]));
    expect((await runCheck()).ok).toBe(true);
  });
});

describe('sandbox HL7 interface engine (mllp)', () => {
  /** The demo's lab-orders-hl7 check from config/default.yaml, pointed at this test's sandbox. */
  let check: Extract<CheckConfig, { kind: 'mllp' }>;
  beforeAll(async () => {
    check = await demoCheck('lab-orders-hl7', 'mllp', 'mllp');
  });

  const runCheck = (timeoutMs = check.timeoutMs) =>
    mllpProbe.run({ target: check.targets[0]!, targets: check.targets, options: check.options, ...budget(timeoutMs), log: quietLog, secrets: {} });

  /** Bytes written to the engine's port; resolves with the frames that came back within waitMs (or until it closed). */
  const exchange = (bytes: Buffer, waitMs = 300) =>
    new Promise<{ frames: Buffer[]; closed: boolean }>((resolve) => {
      const frames: Buffer[] = [];
      let reader = new MllpReader(1 << 20);
      let closed = false;
      const s = createConnection(sb.ports.mllp, '127.0.0.1');
      const done = () => {
        clearTimeout(timer);
        s.destroy();
        resolve({ frames, closed });
      };
      const timer = setTimeout(done, waitMs);
      s.on('data', (d: Buffer) => {
        // Byte by byte, so the bytes after one frame begin the next.
        for (const b of d) {
          const f = reader.push(Buffer.of(b));
          if (f) {
            frames.push(f);
            reader = new MllpReader(1 << 20);
          }
        }
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        closed = true;
        done();
      });
      s.write(bytes);
    });

  const message = (controlId: string, type = 'ORM^O01^ORM_O01') =>
    `MSH|^~\\&|VAKT|REGION|LABENGINE|LAB|20261122120000||${type}|${controlId}|T|2.5\rPID|1||SYNTH0001||TESTPATIENT^SYNTHETIC\r`;

  it("the demo's check succeeds: AA echoing the control id, sender and receiver swapped", async () => {
    const r = await runCheck();
    expect(r.failure).toBeUndefined();
    expect(r).toMatchObject({ ok: true, info: { hl7AckCode: 'AA' } });
    expect(Object.keys(r.phases)).toEqual(['connect', 'send', 'ack']);
    // Two messages on one connection, each acknowledged with its own ACK.
    const { frames } = await exchange(Buffer.concat([frame(message('CTRL1')), frame(message('CTRL2', 'ADT^A08^ADT_A01'))]));
    expect(frames.length).toBe(2);
    const [a, b] = frames.map((f) => parseAck(f));
    expect(a).toMatchObject({ code: 'AA', controlId: 'CTRL1', errorCodes: [] });
    expect(b).toMatchObject({ code: 'AA', controlId: 'CTRL2' });
    const msh = (frames[0] as Buffer).toString('latin1').split('\r')[0]!.split('|');
    expect(msh.slice(2, 6)).toEqual(['LABENGINE', 'LAB', 'VAKT', 'REGION']);
    expect(msh[8]).toBe('ACK^O01^ACK');
    expect(msh[9]).not.toBe('CTRL1');
    expect(msh[9]!.length).toBeGreaterThan(0);
    expect(msh.slice(10, 12)).toEqual(['T', '2.5']);
  });

  it('mllp/stall: read, never acknowledged: timeout in phase ack; the connection stays open', async () => {
    expect((await fault('mllp/stall')).mllp).toBe('stall');
    const before = sb.mllp.received;
    const r = await runCheck(800);
    expect(r.failure).toMatchObject({ phase: 'ack', reason: 'timeout' });
    expect(r.failure?.message).toContain('no ACK');
    expect(sb.mllp.received).toBeGreaterThan(before);
    const { frames, closed } = await exchange(frame(message('CTRL3')), 300);
    expect(frames).toEqual([]);
    expect(closed).toBe(false);
    await fault('mllp/ok');
    expect((await runCheck()).ok).toBe(true);
  });

  it('mllp/error: AE with ERR-3 204 (ack_error); mllp/reject: AR with ERR-3 207 (ack_reject)', async () => {
    await fault('mllp/error');
    const error = await runCheck();
    expect(error).toMatchObject({ ok: false, failure: { phase: 'ack', reason: 'ack_error' }, info: { hl7AckCode: 'AE' } });
    expect(error.failure?.message).toContain('204');
    await fault('mllp/reject');
    const reject = await runCheck();
    expect(reject).toMatchObject({ ok: false, failure: { phase: 'ack', reason: 'ack_reject' }, info: { hl7AckCode: 'AR' } });
    expect(reject.failure?.message).toContain('207');
    const { frames } = await exchange(frame(message('CTRL4')));
    expect(parseAck(frames[0] as Buffer)).toMatchObject({ code: 'AR', controlId: 'CTRL4', errorCodes: ['207'] });
    await fault('mllp/ok');
  });

  it('mllp/slow: the ACK takes the time, connect and send stay fast; down: refused at connect; reset: ok', async () => {
    await fault('mllp/slow');
    const slow = await runCheck();
    expect(slow.failure).toBeUndefined();
    expect(slow.ok).toBe(true);
    expect(slow.phases.ack).toBeGreaterThanOrEqual((MLLP_SLOW_MS - 50) / 1000);
    expect(slow.phases.connect).toBeLessThan(0.3);
    // The demo check's limits: a slow ACK is above the degraded limit and well inside the timeout.
    expect(check.degraded.aboveMs).toBeLessThan(MLLP_SLOW_MS);
    expect(check.timeoutMs).toBeGreaterThan(3000 + 1000);

    expect((await fault('mllp/down')).mllp).toBe('down');
    expect((await runCheck()).failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect((await fault('reset')).mllp).toBe('ok');
    expect((await runCheck()).ok).toBe(true);
  });

  it('the control API lists the mllp switch and refuses unknown modes', async () => {
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as { mllp: string; modes: { mllp: string[] } };
    expect(list.mllp).toBe('ok');
    expect(list.modes.mllp).toEqual(['ok', 'stall', 'error', 'reject', 'slow', 'down']);
    for (const bad of ['mllp/explode', 'mllp/pass', 'mllp', 'mllp/timeout']) {
      expect((await fetch(`${sb.controlUrl}/faults/${bad}`, { method: 'POST' })).status, bad).toBe(400);
    }
  });

  it('garbage on the port: closed or answered AR, the engine carries on', async () => {
    // Not MLLP at all, and a frame larger than the engine reads: the connection is closed.
    expect((await exchange(Buffer.alloc(300_000, 0x41), 3000)).closed).toBe(true);
    expect((await exchange(Buffer.concat([Buffer.of(0x0b), Buffer.alloc(300_000, 0x0d)]), 3000)).closed).toBe(true);
    // A frame that is not HL7: AR with ERR-3 100.
    const { frames } = await exchange(frame('GET / HTTP/1.1\r\n\r\n'));
    expect(parseAck(frames[0] as Buffer)).toMatchObject({ code: 'AR', controlId: '', errorCodes: ['100'] });
    // An MSH with odd encoding characters, a split end sequence, a client gone mid-frame.
    expect((await exchange(Buffer.concat([frame('MSHA'), frame('MSH|^~\\&|' + 'x|'.repeat(5000))]))).frames.length).toBe(2);
    const s = createConnection(sb.ports.mllp, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.end(Buffer.concat([Buffer.of(0x0b), Buffer.from(message('CTRL5')), Buffer.of(0x1c)]));
    expect((await runCheck()).ok).toBe(true);
  });
});

describe('sandbox integration broker (queue)', () => {
  /** The demo's lab-results-queue check from config/default.yaml, pointed at this test's sandbox. */
  let check: Extract<CheckConfig, { kind: 'queue' }>;
  /** The same queues with test-sized limits: stalled after 300 ms, growth over a 1 s window. */
  let fast: SourceOptions<'rabbitmq'>;
  /** One memory across runs, as the agent keeps it per check: rates and stalls need the previous run. */
  const memory = new Map<string, unknown>();
  beforeAll(async () => {
    const config = await loadConfigFile(defaultConfigFile);
    const c = config.checks.find((x) => x.name === 'lab-results-queue');
    if (c?.kind !== 'queue' || c.options.source !== 'rabbitmq') throw new Error('config/default.yaml has no lab-results-queue (queue, source rabbitmq)');
    const target = c.target.replace(`:${SANDBOX_PORTS.queue}`, `:${sb.ports.queue}`);
    check = { ...c, ...targetsOf('queue', target), target };
    fast = rabbitmqOptions.parse({
      source: 'rabbitmq',
      queues: c.options.queues,
      username: c.options.username,
      password: c.options.password,
      minConsumers: 1,
      stalledAfter: '300ms',
      growth: { window: '1s', minIncrease: 5 },
    });
  });

  const run = (options: QueueOptions = fast, secrets = check.secrets) =>
    queueProbe.run({ target: check.targets[0]!, targets: check.targets, options, ...budget(2000), memory, log: quietLog, secrets });
  const reading = (r: ProbeResult, queue: string) => r.queues?.find((q) => q.queue === queue);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** Runs every 150 ms until `done` says so (at most ~4 s); returns the last result. */
  const runUntil = async (done: (r: ProbeResult) => boolean) => {
    let r = await run();
    for (let i = 0; i < 25 && !done(r); i++) {
      await sleep(150);
      r = await run();
    }
    return r;
  };
  const api = (path: string, auth: string | null = `${SANDBOX_QUEUE_USER}:${check.secrets.password}`) =>
    fetch(`${sb.broker.url}${path}`, auth ? { headers: { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } } : {});

  it("the demo's check succeeds: both queues nearly empty, one consumer each; the next run has drain rates", async () => {
    // The check's password is the file the sandbox read its own from.
    expect(check.secrets.password).toBe(readFileSync(`${sandboxSecretDir()}/queue-password`, 'utf8').trimEnd());
    expect(check.options).toMatchObject({ source: 'rabbitmq', queues: ['orders.out', 'lab.results'], minConsumers: 1, stalledAfter: 60_000 });
    await sleep(200); // some traffic first
    const first = await run(check.options);
    expect(first.failure).toBeUndefined();
    expect(first).toMatchObject({ ok: true });
    expect(first.queues?.map((q) => q.queue)).toEqual(['orders.out', 'lab.results']);
    for (const q of first.queues ?? []) {
      expect(q.depth, q.queue).toBeLessThanOrEqual(2);
      expect(q.consumers, q.queue).toBe(1);
      expect(q.undrainedSeconds, q.queue).toBe(0);
    }
    await sleep(300);
    const second = await run(check.options);
    expect(second.ok).toBe(true);
    expect(second.degraded).toBeUndefined();
    const lab = reading(second, 'lab.results');
    expect(lab?.drainRate).toBeGreaterThan(0);
    expect(lab?.arrivalRate).toBeGreaterThan(0);
    expect(reading(second, 'orders.out')?.drainRate).toBeGreaterThan(0);
  });

  it('the management API as RabbitMQ answers: columns, message_stats, 401 and 404 bodies', async () => {
    const res = await api('/api/queues/%2F/lab.results?columns=name,consumers,messages,message_stats.publish,message_stats.deliver_get_details.rate');
    expect(res.status).toBe(200);
    const q = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(q).sort()).toEqual(['consumers', 'message_stats', 'messages', 'name']);
    expect(q).toMatchObject({
      name: 'lab.results',
      consumers: 1,
      message_stats: { publish: expect.any(Number), deliver_get_details: { rate: expect.any(Number) } },
    });
    const all = (await (await api('/api/queues/%2F')).json()) as Record<string, unknown>[];
    expect(all.map((x) => x.name)).toEqual(['orders.out', 'lab.results']);
    expect(all[0]).toMatchObject({ vhost: '/', state: 'running', durable: true, messages_unacknowledged: expect.any(Number) });

    const anonymous = await api('/api/queues/%2F/lab.results', null);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({ error: 'not_authorised', reason: 'Login failed' });
    expect((await api('/api/queues/%2F/lab.results', `${SANDBOX_QUEUE_USER}:wrong`)).status).toBe(401);
    for (const missing of ['/api/queues/%2F/lab.resultz', '/api/queues/other/lab.results', '/api/nothing']) {
      const r = await api(missing);
      expect(r.status, missing).toBe(404);
      expect(await r.json(), missing).toEqual({ error: 'Object Not Found', reason: 'Not Found' });
    }
    // Through the probe: a wrong password is auth, a queue that does not exist queue_missing.
    expect((await run(fast, { password: 'not-the-password' })).failure).toMatchObject({ phase: 'fetch', reason: 'auth' });
    const missing = await run({ ...fast, queues: ['lab.resultz'] });
    expect(missing.failure).toMatchObject({ phase: 'fetch', reason: 'queue_missing' });
  });

  it('queue/stall: the consumer stays attached and stops acknowledging; backlog (stalled) once nothing drained for stalledAfter; ok drains it', async () => {
    expect((await fault('queue/stall')).queue).toBe('stall');
    const r = await runUntil((x) => x.failure !== undefined);
    expect(r.failure).toMatchObject({ phase: 'assess', reason: 'backlog' });
    expect(r.failure?.message).toMatch(/^lab\.results: stalled, \d+ waiting and nothing drained for /);
    const lab = reading(r, 'lab.results');
    // Acknowledgements stopped: the consumer is still there and holds messages (up to its
    // prefetch of 10) unacknowledged.
    expect(lab?.consumers).toBe(1);
    expect(lab?.unacked).toBeGreaterThan(0);
    expect(lab?.unacked).toBeLessThanOrEqual(10);
    expect(lab?.depth).toBeGreaterThanOrEqual(lab?.unacked ?? 0);
    // RabbitMQ's head timestamp is of the first ready message: none while all are unacknowledged.
    if ((lab?.depth ?? 0) > (lab?.unacked ?? 0)) expect(lab?.oldestAgeSeconds).toBeTypeOf('number');
    else expect(lab?.oldestAgeSeconds).toBeUndefined();
    expect(lab?.undrainedSeconds).toBeGreaterThanOrEqual(0.3);
    // The other queue is fine: the fault is per interface.
    expect(reading(r, 'orders.out')).toMatchObject({ consumers: 1, undrainedSeconds: 0 });
    expect(reading(r, 'orders.out')?.depth).toBeLessThanOrEqual(2);

    expect((await fault('queue/ok')).queue).toBe('ok');
    await sleep(100);
    const back = await run();
    expect(back.failure).toBeUndefined();
    expect(reading(back, 'lab.results')?.drainRate).toBeGreaterThan(20); // the backlog drains faster than it arrives
    const drained = await runUntil((x) => (reading(x, 'lab.results')?.depth ?? 99) <= 2);
    expect(drained.ok).toBe(true);
  });

  it('queue/slow: drains, but slower than results arrive: degraded (backlog_growing), not stalled', async () => {
    await fault('queue/slow');
    const r = await runUntil((x) => x.degraded !== undefined || x.failure !== undefined);
    expect(r.failure).toBeUndefined();
    expect(r.degraded).toMatchObject({ reason: 'backlog_growing' });
    expect(r.degraded?.message).toMatch(/^lab\.results grew by \d+ in /);
    expect(reading(r, 'lab.results')?.drainRate).toBeGreaterThan(0);
    expect(reading(r, 'lab.results')?.consumers).toBe(1);
    await fault('queue/ok');
  });

  it('queue/noconsumer: consumers (0 of at least 1), its unacknowledged messages back to ready', async () => {
    await fault('queue/noconsumer');
    const r = await run();
    expect(r.failure).toMatchObject({ phase: 'assess', reason: 'consumers' });
    expect(r.failure?.message).toMatch(/^lab\.results: 0 consumers \(at least 1 expected\), \d+ waiting/);
    expect(reading(r, 'lab.results')).toMatchObject({ consumers: 0, unacked: 0 });
    await fault('queue/ok');
  });

  it('queue/html: a 200 sign-in page instead of JSON is protocol; queue/down: refused; wrong password: auth; reset: ok', async () => {
    expect((await fault('queue/html')).queue).toBe('html');
    const html = await run();
    expect(html.failure).toMatchObject({ phase: 'fetch', reason: 'protocol' });
    expect(html.failure?.message).toContain('expected JSON, got');
    expect(html.failure?.message).toContain('HTML');

    expect((await fault('queue/down')).queue).toBe('down');
    expect((await run()).failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    // The rest of the sandbox is another switch: the HL7 engine still listens.
    expect(sb.mllp.mode).toBe('ok');

    expect((await fault('reset')).queue).toBe('ok');
    expect((await run(fast, { password: 'not-the-password' })).failure?.reason).toBe('auth');
    const ok = await runUntil((x) => x.ok && (reading(x, 'lab.results')?.depth ?? 99) <= 2);
    expect(ok.failure).toBeUndefined();
    expect(ok.ok).toBe(true);
    expect((await run(check.options)).ok).toBe(true);
  });

  it('the control API lists the queue switch and refuses unknown modes', async () => {
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as { queue: string; modes: { queue: string[] } };
    expect(list.queue).toBe('ok');
    expect(list.modes.queue).toEqual(['ok', 'stall', 'noconsumer', 'slow', 'down', 'html']);
    for (const bad of ['queue/explode', 'queue/pass', 'queue', 'queue/constructor']) {
      expect((await fetch(`${sb.controlUrl}/faults/${bad}`, { method: 'POST' })).status, bad).toBe(400);
    }
  });

  it('the model: deterministic from the clock, counters only', () => {
    const t0 = 1_800_000_000_000;
    const q = new SimulatedQueue({ name: 'lab.results', arrivalPerSecond: 2, drainPerSecond: 5 }, t0);
    const at = (s: number) => q.snapshot(t0 + s * 1000);
    // Normal: 2/s in, each done in 0.2 s: never more than one waiting, totals keep pace.
    for (let s = 0.1; s < 60; s += 0.7) expect(at(s).messages).toBeLessThanOrEqual(1);
    expect(at(60)).toMatchObject({ published: 120, consumers: 1, ready: 0, headTimestamp: undefined, publishRate: 2 });
    expect(at(60).acked).toBeGreaterThanOrEqual(119);
    // Stall for two minutes: 10 held unacknowledged, 240 more arrive, nothing drains.
    q.setMode('stall', t0 + 60_000);
    const stalled = at(180);
    expect(stalled).toMatchObject({ messages: 241, unacked: 10, ready: 231, consumers: 1, deliverRate: 0 });
    // The oldest ready message is the 11th after the stall began: it arrived 5.5 s into it, and
    // its timestamp is in whole seconds, as AMQP's.
    expect(t0 / 1000 + 180 - stalled.headTimestamp!).toBe(115);
    // Back to normal: drains at 5/s while 2/s arrive, empty again after 80 s.
    q.setMode('ok', t0 + 180_000);
    expect(at(200).messages).toBe(181);
    expect(at(200).deliverRate).toBe(5);
    expect(at(261).messages).toBeLessThanOrEqual(1);
    // No consumer: its messages go back to ready; slow: 1/s out, 2/s in.
    q.setMode('noconsumer', t0 + 300_000);
    expect(at(310)).toMatchObject({ consumers: 0, unacked: 0 });
    expect(at(310).messages).toBeGreaterThanOrEqual(20);
    q.setMode('slow', t0 + 310_000);
    const before = at(340).messages;
    const d = at(400).messages - before;
    expect(d).toBeGreaterThanOrEqual(59);
    expect(d).toBeLessThanOrEqual(61);
    // The same times give the same numbers.
    const again = new SimulatedQueue({ name: 'x', arrivalPerSecond: 2, drainPerSecond: 5 }, t0);
    again.setMode('stall', t0 + 60_000);
    expect(again.snapshot(t0 + 180_000)).toMatchObject({ messages: 241, unacked: 10, ready: 231 });
  });
});

describe('sandbox Wi-Fi login (radius)', () => {
  /** The demo's wifi-login check from config/default.yaml, pointed at this test's sandbox. */
  let check: Extract<CheckConfig, { kind: 'radius' }>;
  beforeAll(async () => {
    check = await demoCheck('wifi-login', 'radius', 'radius');
  });
  afterAll(async () => {
    await fault('radius/ok');
  });

  const runCheck = (options: Partial<Extract<CheckConfig, { kind: 'radius' }>['options']> = {}, timeoutMs = check.timeoutMs) =>
    radiusProbe.run({
      target: check.targets[0]!,
      targets: check.targets,
      options: { ...check.options, ...options },
      ...budget(timeoutMs),
      log: quietLog,
      secrets: check.secrets,
    });

  it("the demo's check succeeds: PAP accepted at once, with the clinical devices' filter and VLAN; CHAP too", async () => {
    expect(check.secrets.password).toBe(sb.login.password);
    const r = await runCheck();
    expect(r.failure).toBeUndefined();
    expect(r.degraded).toBeUndefined();
    expect(r).toMatchObject({ ok: true, values: { radius_attempts: 1 } });
    expect(Object.keys(r.phases)).toEqual(['request']);
    expect((await runCheck({ method: 'chap' })).ok).toBe(true);
  });

  it('each fault switch, through the control API, as the demo check sees it', async () => {
    expect((await fault('radius/reject')) as unknown).toMatchObject({ radius: 'reject' });
    expect((await runCheck()).failure).toMatchObject({ reason: 'auth', message: expect.stringContaining('Account disabled in the directory') as unknown });
    await fault('radius/challenge');
    expect((await runCheck()).failure?.reason).toBe('radius_challenge');
    await fault('radius/slow');
    const slow = await runCheck({ retransmitInterval: 250 });
    expect(slow.degraded?.reason).toBe('retransmitted');
    await fault('radius/silent');
    expect((await runCheck({ retransmitInterval: 200 }, 700)).failure?.reason).toBe('timeout');
    await fault('radius/badauth');
    expect((await runCheck({}, 700)).failure?.reason).toBe('protocol');
    await fault('reset');
    expect((await runCheck()).ok).toBe(true);
  });
});
