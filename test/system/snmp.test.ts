// The snmp probe against a real SNMP agent: net-snmp's snmpd (Debian package snmpd), started by
// the test itself on a free UDP port of 127.0.0.1 with its own config and persistent directory
// (never the system service): a read-only community for v2c, a v3 user created with createUser
// (SHA, AES) for authPriv, and a `pass_persist` script that serves a firewall member's HA state from a
// file the test rewrites (the member going standby). net-snmp's snmpget (package snmp) is the
// independent witness: what it sees, the probe must see.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { snmpProbe } from '../../probes/snmp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { leaks } from '../helpers/leaks.js';
import { freePort, requireRoot, requireTool, tryRun, waitFor, watchDaemon } from './helpers.js';

const COMMUNITY = 'vakt-test-c0mmunity';
const USER = 'vakt-monitor';
const AUTH = 'vakt-auth-passphrase-1';
const PRIV = 'vakt-priv-passphrase-1';
const HA_OID = '1.3.6.1.4.1.99999.1.1.0';
const LO_OPER = '1.3.6.1.2.1.2.2.1.8.1'; // ifOperStatus of interface 1 (lo): up
const SYS_NAME = '1.3.6.1.2.1.1.5.0';
const SECRETS = { community: COMMUNITY, auth: AUTH, priv: PRIV };
const OIDS = [
  { name: 'ha-state', oid: HA_OID, equals: 'active', values: { 1: 'active', 2: 'standby' } },
  { name: 'lo-oper', oid: LO_OPER, equals: 1, values: { 1: 'up', 2: 'down' } },
  { name: 'sys-name', oid: SYS_NAME, equals: 'fw-a' },
];
const v2c = (oids: unknown[] = OIDS) => ({ community: 'community', oids });
const v3 = (oids: unknown[] = OIDS) => ({ version: 3, user: USER, authProtocol: 'sha', authKey: 'auth', privProtocol: 'aes', privKey: 'priv', oids });

const live = new Set<ChildProcess>();
let dir = '';
let port = 0;
let target = '';
let snmpd: ChildProcess | undefined;
let daemon: ReturnType<typeof watchDaemon> | undefined;

function probe(options: Record<string, unknown>, secrets: Record<string, string> = SECRETS, ms = 3000): Promise<ProbeResult> {
  return snmpProbe.run({ ...targetsOf('snmp', target), options: KIND_OPTIONS.snmp.parse(options), ...budget(ms), log: quietLog, secrets });
}

/** The witness: snmpget with the same credentials (numeric OIDs, no MIBs), one try of 1 s. */
function snmpget(args: string[], oids: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return tryRun('env', [`SNMP_PERSISTENT_DIR=${join(dir, 'client')}`, 'MIBS=', 'snmpget', '-On', '-t', '1', '-r', '0', ...args, target, ...oids]);
}
const v2cArgs = (community = COMMUNITY) => ['-v2c', '-c', community];
const v3Args = (auth = AUTH) => ['-v3', '-l', 'authPriv', '-u', USER, '-a', 'SHA', '-A', auth, '-x', 'AES', '-X', PRIV];

const setHaState = (n: number) => writeFileSync(join(dir, 'ha-state'), `${n}\n`);

async function startSnmpd(): Promise<void> {
  const child = spawn('snmpd', ['-f', '-Lo', '-C', '-c', join(dir, 'snmpd.conf'), `udp:127.0.0.1:${port}`], {
    env: { ...process.env, SNMP_PERSISTENT_DIR: join(dir, 'persist'), MIBS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  snmpd = child;
  daemon = watchDaemon(child, live);
  await waitFor(
    'snmpd answering',
    async () => {
      if (daemon?.exited()) throw new Error(`snmpd exited: ${daemon.output()}`);
      return (await snmpget(v2cArgs(), [SYS_NAME])).code === 0;
    },
    15_000,
    100,
  );
}

async function stopSnmpd(): Promise<void> {
  const child = snmpd;
  snmpd = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  await gone;
}

beforeAll(async () => {
  requireRoot();
  await requireTool('snmpd', ['-v'], 'snmpd');
  await requireTool('snmpget', ['-V'], 'snmp');
  dir = mkdtempSync(join(tmpdir(), 'vakt-snmp-'));
  mkdirSync(join(dir, 'persist'));
  mkdirSync(join(dir, 'client'));
  port = await freePort();
  target = `127.0.0.1:${port}`;
  setHaState(1);
  const script = join(dir, 'ha.sh');
  // A pass_persist script (snmpd keeps it running and asks it line by line; the plain `pass`
  // answer is cached by snmpd): the member's HA state (1 active, 2 standby) from a file the test rewrites.
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      'while read -r cmd; do',
      '  case "$cmd" in',
      '    PING) echo PONG ;;',
      `    get) read -r oid; if [ "$oid" = ".${HA_OID}" ]; then echo "$oid"; echo integer; cat "${join(dir, 'ha-state')}"; else echo NONE; fi ;;`,
      '    getnext) read -r oid; echo NONE ;;',
      '    set) read -r oid; read -r value; echo not-writable ;;',
      '    *) echo NONE ;;',
      '  esac',
      'done',
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  writeFileSync(
    join(dir, 'snmpd.conf'),
    [
      `[snmp] persistentDir ${join(dir, 'persist')}`,
      `rocommunity ${COMMUNITY} 127.0.0.1`,
      `createUser ${USER} SHA "${AUTH}" AES "${PRIV}"`,
      `rouser ${USER} priv`,
      `pass_persist .1.3.6.1.4.1.99999.1 ${script}`,
      'sysName fw-a',
      '',
    ].join('\n'),
  );
  await startSnmpd();
}, 30_000);

afterAll(async () => {
  await stopSnmpd();
  for (const c of live) c.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('snmp probe against net-snmp snmpd', () => {
  it('v2c GET: ok, each OID as expected, numbers as item values; snmpget sees the same', async () => {
    const r = await probe(v2c());
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.items).toEqual([
      { name: 'ha-state', ok: true, value: 1, text: '1' },
      { name: 'lo-oper', ok: true, value: 1, text: '1' },
      { name: 'sys-name', ok: true, text: 'fw-a' },
    ]);
    const w = await snmpget(v2cArgs(), [HA_OID, LO_OPER, SYS_NAME]);
    expect(w.stdout).toContain(`.${HA_OID} = INTEGER: 1`);
    expect(w.stdout).toContain(`.${LO_OPER} = INTEGER: 1`);
    expect(w.stdout).toContain('STRING: "fw-a"');
  });

  it('v3 authPriv (SHA, AES): ok; snmpget with the same user and keys too', async () => {
    const r = await probe(v3());
    expect(r.failure).toBeUndefined();
    expect(r.items?.map((i) => i.ok)).toEqual([true, true, true]);
    expect((await snmpget(v3Args(), [HA_OID])).stdout).toContain('INTEGER: 1');
  });

  it('a wrong community: snmpd drops it without a word: timeout (snmpget: Timeout)', async () => {
    const r = await probe(v2c(), { ...SECRETS, community: 'not-the-community' }, 1500);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
    expect(r.failure?.message).toContain('wrong community');
    expect(leaks(JSON.stringify(r), 'not-the-community')).toBe(false);
    const w = await snmpget(v2cArgs('not-the-community'), [SYS_NAME]);
    expect(w.code).not.toBe(0);
    expect(`${w.stdout}${w.stderr}`).toContain('Timeout');
  });

  it('a wrong v3 auth key: auth (the wrong-digest report), the key nowhere in the result (snmpget: Authentication failure)', async () => {
    const r = await probe(v3(), { ...SECRETS, auth: 'not-the-auth-passphrase' });
    expect(r.failure).toMatchObject({
      phase: 'request',
      reason: 'auth',
      message: 'the agent refused the digest: wrong authKey or authProtocol (a USM report)',
    });
    expect(r.info?.authCode).toBe('invalid_credentials');
    expect(leaks(JSON.stringify(r), 'not-the-auth-passphrase')).toBe(false);
    const w = await snmpget(v3Args('not-the-auth-passphrase'), [HA_OID]);
    expect(w.stderr).toContain('Authentication failure');
  });

  it('a wrong v3 priv key: snmpd cannot decrypt the request and drops it without a report: timeout, with the hint (snmpget: Timeout)', async () => {
    const r = await probe(v3(), { ...SECRETS, priv: 'not-the-priv-passphrase' }, 1500);
    expect(r.failure).toMatchObject({ reason: 'timeout' });
    expect(r.failure?.message).toContain('wrong privKey');
    expect(leaks(JSON.stringify(r), 'not-the-priv-passphrase')).toBe(false);
    const w = await tryRun('env', [
      `SNMP_PERSISTENT_DIR=${join(dir, 'client')}`,
      'MIBS=',
      'snmpget',
      '-t',
      '1',
      '-r',
      '0',
      ...v3Args(AUTH).slice(0, -1),
      'not-the-priv-passphrase',
      target,
      HA_OID,
    ]);
    expect(`${w.stdout}${w.stderr}`).toContain('Timeout');
  });

  it('an unknown v3 user: auth, user_not_found', async () => {
    const r = await probe({ ...v3(), user: 'nobody-here' });
    expect(r.failure).toMatchObject({ reason: 'auth', message: 'the agent does not know the user (a USM report)' });
    expect(r.info?.authCode).toBe('user_not_found');
  });

  it('the member goes standby: snmp_mismatch naming it, expected and got (v2c and v3); back to active: ok', async () => {
    setHaState(2);
    try {
      expect((await snmpget(v2cArgs(), [HA_OID])).stdout).toContain('INTEGER: 2');
      for (const options of [v2c(), v3()]) {
        const r = await probe(options);
        expect(r.failure).toEqual({ phase: 'request', reason: 'snmp_mismatch', message: `ha-state (${HA_OID}): expected active, got 2 (standby)` });
        expect(r.items?.[0]).toMatchObject({ name: 'ha-state', ok: false, value: 2 });
      }
    } finally {
      setHaState(1);
    }
    expect((await probe(v2c())).ok).toBe(true);
  });

  it('an OID snmpd does not have: snmp_no_such (noSuchObject; noSuchInstance under the pass script)', async () => {
    const r = await probe(v2c([{ name: 'nothing', oid: '1.3.6.1.4.1.99998.1.0' }]));
    expect(r.failure).toMatchObject({ reason: 'snmp_no_such', message: 'nothing (1.3.6.1.4.1.99998.1.0): noSuchObject' });
    expect((await snmpget(v2cArgs(), ['1.3.6.1.4.1.99998.1.0'])).stdout).toContain('No Such Object');
    const i = await probe(v3([{ name: 'no-instance', oid: '1.3.6.1.4.1.99999.1.2.0' }]));
    expect(i.failure).toMatchObject({ reason: 'snmp_no_such', message: 'no-instance (1.3.6.1.4.1.99999.1.2.0): noSuchInstance' });
  });

  it('snmpd that never answers (stopped with SIGSTOP): timeout; it answers again after SIGCONT', async () => {
    snmpd?.kill('SIGSTOP');
    try {
      const r = await probe(v3(), SECRETS, 1500);
      expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
      expect((await snmpget(v2cArgs(), [SYS_NAME])).stderr + (await snmpget(v2cArgs(), [SYS_NAME])).stdout).toContain('Timeout');
    } finally {
      snmpd?.kill('SIGCONT');
    }
    await waitFor('snmpd answering again', async () => (await probe(v2c(), SECRETS, 1000)).ok, 10_000, 100);
  });

  it('snmpd stopped: refused at once (ICMP port unreachable on the connected socket); started again: ok', async () => {
    await stopSnmpd();
    const r = await probe(v2c(), SECRETS, 3000);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'refused' });
    await startSnmpd();
    expect((await probe(v3())).ok).toBe(true);
  });
});
