// The snmp probe against real UDP peers on 127.0.0.1: the sandbox's agent (net-snmp's own agent,
// v2c and v3 authPriv) in each of its modes, and a hand-made v2c peer (test/helpers/snmp-peer.ts)
// that answers with what no agent should: garbage, truncated, oversized, error-status, another
// OID, a stale request id, a community it was not asked with, nothing at all. System tests
// against net-snmp's snmpd: test/system/snmp.test.ts.
import type { Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import snmp from 'net-snmp';
import { KEY_CACHE_LIMIT, meets, readValue, snmpProbe } from '../../probes/snmp/probe.js';
import { oid as oidSchema } from '../../probes/snmp/options.js';
import type { ProbeResult } from '../../probes/types.js';
import { OIDS, SandboxSnmpAgent } from '../../sandbox/snmp.js';
import { leaks } from '../helpers/leaks.js';
import { budget, closedPort, quietLog, targetsOf } from '../helpers/peers.js';
import { answer, response, snmpPeer, value } from '../helpers/snmp-peer.js';

const CREDENTIALS = { community: 'c0mmunity-of-fw-a', authKey: 'auth-key-of-fw-a', privKey: 'priv-key-of-fw-a' };
const SECRETS = { community: CREDENTIALS.community, auth: CREDENTIALS.authKey, priv: CREDENTIALS.privKey };
const HA = { name: 'ha-state', oid: OIDS.haState, equals: 'active', values: { 1: 'active', 2: 'standby' } };
const UPLINK = { name: 'uplink-oper', oid: OIDS.uplinkOper, equals: 1, values: { 1: 'up', 2: 'down' } };
const SYSNAME = { name: 'sys-name', oid: OIDS.sysName };

function probe(target: string, options: Record<string, unknown>, ms = 2000, secrets: Record<string, string> = SECRETS): Promise<ProbeResult> {
  return snmpProbe.run({ ...targetsOf('snmp', target), options: KIND_OPTIONS.snmp.parse(options), ...budget(ms), log: quietLog, secrets });
}

const v2c = (oids: unknown[], extra: Record<string, unknown> = {}) => ({ community: 'community', oids, ...extra });
const v3 = (oids: unknown[], extra: Record<string, unknown> = {}) => ({
  version: 3,
  user: 'vakt-monitor',
  authProtocol: 'sha',
  authKey: 'auth',
  privProtocol: 'aes',
  privKey: 'priv',
  oids,
  ...extra,
});

/** UDP sockets of this process (net-snmp's sessions must all be closed after every run), once libuv has let go of the closed ones. */
async function udpSockets(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
}

describe('snmp options', () => {
  const parse = (o: Record<string, unknown>) => KIND_OPTIONS.snmp.safeParse(o);
  const messages = (o: Record<string, unknown>) => {
    const r = parse(o);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('takes v2c by default and v3 as 3 or "3", with defaults', () => {
    const a = KIND_OPTIONS.snmp.parse(v2c([SYSNAME]));
    expect(a).toMatchObject({ version: '2c', retries: 1, community: 'community' });
    expect(KIND_OPTIONS.snmp.parse(v3([SYSNAME], { version: '3' }))).toMatchObject({ version: '3', authProtocol: 'sha', context: '' });
    expect(KIND_OPTIONS.snmp.parse(v3([{ name: 'x', oid: '.1.3.6.1.2.1.1.3.0' }])).oids[0]?.oid).toBe('1.3.6.1.2.1.1.3.0');
  });

  it('refuses what cannot work, saying what it expected', () => {
    expect(messages({ oids: [SYSNAME] })).toContain('community: expected community (a secret name) with version 2c');
    expect(messages(v3([SYSNAME], { authKey: undefined }))).toContain('authKey: expected authKey (a secret name) with version 3');
    expect(messages(v3([SYSNAME], { privProtocol: undefined }))).toContain('privProtocol: expected privProtocol (aes, aes256b, aes256r) with privKey');
    expect(messages(v3([SYSNAME], { privKey: undefined }))).toContain('privKey: expected privKey (a secret name) with privProtocol');
    expect(messages(v2c([SYSNAME], { version: 1 }))[0]).toContain('expected version: 2c or 3');
    expect(messages(v2c([{ name: 'x', oid: 'sysUpTime.0' }]))[0]).toContain('expected a numeric OID');
    expect(messages(v2c([{ name: 'has space', oid: '1.3.6.1' }]))[0]).toContain('expected a name of 1–64 letters');
    expect(messages(v2c([SYSNAME, SYSNAME]))).toContain('oids.1.name: expected a name not used by another OID ("sys-name")');
    expect(messages(v2c([{ ...SYSNAME, equals: 1, oneOf: [1, 2] }]))).toContain('oids.0.equals: expected one of equals, oneOf, min/max or exists');
    expect(messages(v2c([{ ...SYSNAME, min: 5, max: 1 }]))).toContain('oids.0.min: expected min at most max');
    expect(messages(v2c([]))).toContain('oids: expected at least one OID');
    expect(messages(v2c([SYSNAME], { community: 'not a name' }))[0]).toContain("expected the name of an entry of the check's secrets");
    expect(messages(v3([SYSNAME], { authProtocol: 'sha1' }))[0]).toContain('authProtocol');
  });
});

describe('snmp values and expectations', () => {
  const spec = (o: Record<string, unknown>) => oidSchema.parse({ name: 'x', oid: '1.3.6.1', ...o });

  it('reads numbers as numbers, text as text, other bytes as hex, Counter64 as a number', () => {
    expect(readValue({ oid: '1', type: 2, value: -5 })).toEqual({ type: 'Integer', number: -5, text: '-5' });
    expect(readValue({ oid: '1', type: 4, value: Buffer.from('active') })).toEqual({ type: 'OctetString', text: 'active' });
    expect(readValue({ oid: '1', type: 4, value: Buffer.from([0, 1, 0xff]) }).text).toBe('0x0001ff');
    expect(readValue({ oid: '1', type: 70, value: Buffer.from([1, 0, 0, 0, 0]) })).toEqual({ type: 'Counter64', number: 2 ** 32, text: '4294967296' });
    expect(readValue({ oid: '1', type: 4, value: Buffer.alloc(1000, 0x61) }).text).toHaveLength(257);
  });

  it('equals by number, by text and by the name of a number; oneOf; ranges only for numbers; exists', () => {
    const int = (n: number) => readValue({ oid: '1', type: 2, value: n });
    const text = (s: string) => readValue({ oid: '1', type: 4, value: Buffer.from(s) });
    expect(meets(spec({ equals: 1 }), int(1))).toBe(true);
    expect(meets(spec({ equals: 1 }), int(2))).toBe(false);
    expect(meets(spec({ equals: 1 }), text('1'))).toBe(true);
    expect(meets(spec({ equals: 'active', values: { 1: 'active' } }), int(1))).toBe(true);
    expect(meets(spec({ equals: 'active', values: { 1: 'active' } }), int(2))).toBe(false);
    expect(meets(spec({ equals: 'active' }), text('active'))).toBe(true);
    expect(meets(spec({ oneOf: [1, 'standby'], values: { 2: 'standby' } }), int(2))).toBe(true);
    expect(meets(spec({ oneOf: [1, 3] }), int(2))).toBe(false);
    expect(meets(spec({ min: 10, max: 60 }), int(45))).toBe(true);
    expect(meets(spec({ min: 10, max: 60 }), int(61))).toBe(false);
    expect(meets(spec({ min: 10 }), text('45'))).toBe(false);
    expect(meets(spec({}), text('anything'))).toBe(true);
  });
});

describe('snmp probe against the sandbox agent (net-snmp)', () => {
  const agent = new SandboxSnmpAgent('127.0.0.1', 0, CREDENTIALS);
  let target = '';
  beforeAll(async () => {
    await agent.start();
    target = `127.0.0.1:${agent.address.port}`;
  });
  afterAll(async () => {
    await agent.stop();
  });

  it('v2c: every OID as expected, numbers as item values, the request timed, the session closed', async () => {
    agent.setMode('ok');
    const before = await udpSockets();
    const r = await probe(target, v2c([HA, UPLINK, SYSNAME]));
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.items).toEqual([
      { name: 'ha-state', ok: true, value: 1, text: '1' },
      { name: 'uplink-oper', ok: true, value: 1, text: '1' },
      { name: 'sys-name', ok: true, text: 'fw-a' },
    ]);
    expect(r.phases.request).toBeGreaterThan(0);
    expect(r.values?.ip_protocol).toBe(4);
    expect(await udpSockets()).toBe(before);
  });

  it('v3 authPriv (SHA, AES): ok', async () => {
    const r = await probe(target, v3([HA, UPLINK, SYSNAME]));
    expect(r.failure).toBeUndefined();
    expect(r.items?.map((i) => i.ok)).toEqual([true, true, true]);
  });

  it('standby: snmp_mismatch naming the OID, what it must be and what it is, by name', async () => {
    agent.setMode('standby');
    const r = await probe(target, v3([HA, UPLINK]));
    expect(r.failure).toEqual({
      phase: 'request',
      reason: 'snmp_mismatch',
      message: `ha-state (${OIDS.haState}): expected active, got 2 (standby)`,
    });
    expect(r.items?.[0]).toEqual({ name: 'ha-state', ok: false, value: 2, text: '2' });
    expect(r.items?.[1]?.ok).toBe(true);
  });

  it('linkdown: the uplink is down (v2c)', async () => {
    agent.setMode('linkdown');
    const r = await probe(target, v2c([HA, UPLINK]));
    expect(r.failure).toMatchObject({ reason: 'snmp_mismatch', message: `uplink-oper (${OIDS.uplinkOper}): expected 1 (up), got 2 (down)` });
  });

  it('an OID the agent does not have: snmp_no_such (noSuchObject, noSuchInstance)', async () => {
    agent.setMode('ok');
    const r = await probe(target, v2c([HA, { name: 'nothing', oid: '1.3.6.1.4.1.99999.7.0' }, { name: 'no-row', oid: '1.3.6.1.2.1.2.2.1.8.9' }]));
    expect(r.failure).toMatchObject({ reason: 'snmp_no_such', message: 'nothing (1.3.6.1.4.1.99999.7.0): noSuchObject (and 1 more)' });
    expect(r.items?.map((i) => i.text)).toEqual(['1', 'noSuchObject', 'noSuchInstance']);
  });

  it('silent: timeout when the budget ends, the session closed', async () => {
    agent.setMode('silent');
    const before = await udpSockets();
    const r = await probe(target, v2c([HA], { retries: 2 }), 600);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
    expect(r.failure?.message).toMatch(/^no answer from the SNMP agent/);
    expect(await udpSockets()).toBe(before);
  });

  it('community: a changed community is dropped without a word: timeout, with the hint', async () => {
    agent.setMode('community');
    const r = await probe(target, v2c([HA]), 800);
    expect(r.failure).toMatchObject({
      reason: 'timeout',
      message: 'no answer from the SNMP agent to 2 requests (a wrong community gets no answer either: agents drop it without a word)',
    });
    expect(leaks(JSON.stringify(r), CREDENTIALS.community)).toBe(false);
  });

  it('nouser: the v3 user is gone: auth, user_not_found', async () => {
    agent.setMode('nouser');
    const r = await probe(target, v3([HA]));
    expect(r.failure).toMatchObject({ reason: 'auth', message: 'the agent does not know the user (a USM report)' });
    expect(r.info?.authCode).toBe('user_not_found');
    agent.setMode('ok');
  });

  it("net-snmp's cache of localized keys is emptied past its limit after a v3 run (it never shrinks by itself)", async () => {
    const holder = snmp.Authentication as unknown as { authToKeyCache: Record<string, unknown> };
    for (let i = 0; i <= KEY_CACHE_LIMIT; i++) holder.authToKeyCache[`filler-${i}`] = Buffer.alloc(20);
    agent.setMode('ok');
    expect((await probe(target, v3([HA]))).ok).toBe(true);
    expect(Object.keys(holder.authToKeyCache).length).toBe(0);
    expect((await probe(target, v3([HA]))).ok).toBe(true);
    expect(Object.keys(holder.authToKeyCache).length).toBeGreaterThan(0);
  });

  it('the run ends with the signal: aborted mid-request, timeout, the session closed', async () => {
    agent.setMode('silent');
    const before = await udpSockets();
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(new Error('agent stopping')), 100);
    const r = await snmpProbe.run({
      ...targetsOf('snmp', target),
      options: KIND_OPTIONS.snmp.parse(v2c([HA])),
      ...budget(5000, ctrl.signal),
      log: quietLog,
      secrets: SECRETS,
    });
    expect(r.failure).toMatchObject({ reason: 'timeout' });
    expect(await udpSockets()).toBe(before);
    agent.setMode('ok');
  });
});

describe('snmp probe against hostile or broken peers', () => {
  const peers: Socket[] = [];
  afterAll(() => {
    for (const s of peers) s.close();
  });
  const peer = async (reply: Parameters<typeof snmpPeer>[0]) => {
    const p = await snmpPeer(reply);
    peers.push(p.socket);
    return `127.0.0.1:${p.port}`;
  };
  const sysName = { [OIDS.sysName]: value.string('fw-a') };

  it('the hand-made peer answers well: ok (the probe is not only tested against its own library)', async () => {
    const r = await probe(await peer((_m, req) => (req ? answer(req, sysName) : undefined)), v2c([SYSNAME]));
    expect(r.failure).toBeUndefined();
    expect(r.items?.[0]?.text).toBe('fw-a');
  });

  it('garbage is protocol, at once', async () => {
    const r = await probe(await peer(() => Buffer.from('hello, this is not BER')), v2c([SYSNAME]));
    expect(r.failure).toMatchObject({ reason: 'protocol' });
    expect(r.failure?.message).toMatch(/^an answer that could not be read/);
  });

  it('a truncated answer is protocol', async () => {
    const r = await probe(await peer((_m, req) => (req ? answer(req, sysName).subarray(0, 20) : undefined)), v2c([SYSNAME]));
    expect(r.failure).toMatchObject({ reason: 'protocol' });
  });

  it('a 60 KB value is read, and kept and quoted only in part', async () => {
    const big = { [OIDS.sysName]: value.string(Buffer.alloc(60_000, 0x41)) };
    const r = await probe(await peer((_m, req) => (req ? answer(req, big) : undefined)), v2c([{ ...SYSNAME, equals: 'fw-a' }]));
    expect(r.failure?.reason).toBe('snmp_mismatch');
    expect(r.failure?.message.length).toBeLessThan(200);
    expect(r.items?.[0]?.text?.length).toBe(257);
  });

  it('genErr at an index is snmp_error naming the OID; tooBig without one; noSuchName is snmp_no_such', async () => {
    const status = (errorStatus: number, errorIndex: number) =>
      peer((_m, req) => (req ? answer(req, { ...sysName, [OIDS.haState]: value.integer(1) }, { errorStatus, errorIndex }) : undefined));
    const gen = await probe(await status(5, 2), v2c([SYSNAME, HA]));
    expect(gen.failure).toEqual({ phase: 'request', reason: 'snmp_error', message: `the agent answered genErr for ha-state (${OIDS.haState})` });
    const big = await probe(await status(1, 0), v2c([SYSNAME, HA]));
    expect(big.failure).toMatchObject({ reason: 'snmp_error', message: 'the agent answered tooBig' });
    const auth = await probe(await status(16, 1), v2c([SYSNAME]));
    expect(auth.failure).toMatchObject({ reason: 'snmp_error', message: `the agent answered authorizationError for sys-name (${OIDS.sysName})` });
    const v1 = await probe(await status(2, 1), v2c([SYSNAME]));
    expect(v1.failure).toMatchObject({ reason: 'snmp_no_such', message: `the agent answered noSuchName for sys-name (${OIDS.sysName})` });
  });

  it('endOfMibView is snmp_no_such', async () => {
    const r = await probe(await peer((_m, req) => (req ? answer(req, { [OIDS.sysName]: value.endOfMibView() }) : undefined)), v2c([SYSNAME]));
    expect(r.failure).toMatchObject({ reason: 'snmp_no_such', message: `sys-name (${OIDS.sysName}): endOfMibView` });
  });

  it('an answer for another OID is protocol; fewer values than OIDs too', async () => {
    const other = await probe(
      await peer((_m, req) =>
        req ? response({ community: req.community, requestId: req.requestId, varbinds: [['1.3.6.1.2.1.1.1.0', value.string('x')]] }) : undefined,
      ),
      v2c([SYSNAME]),
    );
    expect(other.failure).toMatchObject({ reason: 'protocol', message: `sys-name (${OIDS.sysName}): the agent answered with another OID in its place` });
    const fewer = await probe(await peer((_m, req) => (req ? answer({ ...req, oids: req.oids.slice(0, 1) }, sysName) : undefined)), v2c([SYSNAME, HA]));
    expect(fewer.failure?.reason).toBe('protocol');
  });

  it('a stale request id is ignored (the real answer after it counts); only stale ones are a timeout', async () => {
    const r = await probe(
      await peer((_m, req) => (req ? [answer(req, sysName, { requestId: req.requestId + 1 }), answer(req, sysName)] : undefined)),
      v2c([SYSNAME]),
    );
    expect(r.ok).toBe(true);
    const stale = await probe(await peer((_m, req) => (req ? answer(req, sysName, { requestId: req.requestId ^ 0x5a5a }) : undefined)), v2c([SYSNAME]), 500);
    expect(stale.failure?.reason).toBe('timeout');
  });

  it('an answer with another community is protocol', async () => {
    const r = await probe(await peer((_m, req) => (req ? answer(req, sysName, { community: 'public' }) : undefined)), v2c([SYSNAME]));
    expect(r.failure).toMatchObject({ reason: 'protocol', message: 'an answer net-snmp refused (ECommunityNoMatch)' });
  });

  it('a v2c answer in a Report PDU: net-snmp throws outside its own try (reading v3 security parameters a v2c message lacks); the probe catches it: protocol, and the process lives', async () => {
    const r = await probe(await peer((_m, req) => (req ? answer(req, sysName, { pduTag: 0xa8 }) : undefined)), v2c([SYSNAME]));
    expect(r.failure).toMatchObject({ reason: 'protocol' });
    expect(r.failure?.message).toMatch(/^an answer net-snmp failed on: .*msgAuthoritativeEngineID/);
  });

  it('a peer that echoes the community in a value: never in the message, the items or anywhere in the result', async () => {
    const r = await probe(
      await peer((_m, req) => (req ? answer(req, { [OIDS.sysName]: value.string(`the community is ${req.community}`) }) : undefined)),
      v2c([{ ...SYSNAME, equals: 'fw-a' }]),
    );
    expect(r.failure?.reason).toBe('snmp_mismatch');
    expect(r.failure?.message).toContain('[REDACTED]');
    expect(leaks(JSON.stringify(r), CREDENTIALS.community)).toBe(false);
  });

  it('numbers of every numeric type are item values: Gauge32, Counter64', async () => {
    const r = await probe(
      await peer((_m, req) =>
        req
          ? answer(req, { '1.3.6.1.2.1.2.2.1.5.3': value.gauge(1_000_000_000), '1.3.6.1.2.1.31.1.1.1.6.3': value.counter64(Buffer.from('0102030405', 'hex')) })
          : undefined,
      ),
      v2c([
        { name: 'speed', oid: '1.3.6.1.2.1.2.2.1.5.3', min: 1e8 },
        { name: 'in-octets', oid: '1.3.6.1.2.1.31.1.1.1.6.3' },
      ]),
    );
    expect(r.failure).toBeUndefined();
    expect(r.items?.map((i) => i.value)).toEqual([1_000_000_000, 0x0102030405]);
  });

  it('nothing at all: timeout at the deadline; a closed port: refused (ICMP port unreachable on the connected socket)', async () => {
    const silent = await peer(() => undefined);
    const r = await probe(silent, v2c([SYSNAME], { retries: 0 }), 500);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
    const closed = await probe(`127.0.0.1:${await closedPort()}`, v2c([SYSNAME]), 2000);
    expect(closed.failure).toMatchObject({ phase: 'request', reason: 'refused' });
    expect(closed.failure?.message).toMatch(/^UDP port \d+ is closed \(ICMP port unreachable\): no SNMP agent runs there$/);
  });

  it('v3 against a peer that answers only garbage: protocol; a name that does not resolve: resolve', async () => {
    const r = await probe(await peer(() => Buffer.from([0x30, 0x03, 0x02, 0x01, 0x03])), v3([SYSNAME]));
    expect(r.failure?.reason).toBe('protocol');
    const n = await probe('no-such-host.invalid:161', v2c([SYSNAME]));
    expect(n.failure).toMatchObject({ phase: 'resolve', reason: 'resolve' });
  });
});
