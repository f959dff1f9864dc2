// The ntp probe against real NTP servers from Debian (runs as root). chronyd (package chrony)
// serves time on a free UDP port on 127.0.0.1 without touching the system clock (-x): as a
// normal stratum-2 server (`local stratum 2`), with a deliberately wrong clock (the same server
// under libfaketime, FAKETIME=+10m: the clock is wrong, the host's is not), and with no time
// source at all (unsynchronised). ntpsec's ntpd (package ntpsec, extracted by .ci/run beside
// chrony, with which it cannot be installed) sends a real kiss-o'-death (RATE) when a client asks
// too often; it only serves port 123, so it runs in a network namespace of the test's own, with
// the clock-setting capability dropped.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { ntpProbe } from '../../probes/ntp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { createNetnsLink, destroyNetnsLink, freePort, removeStaleNetns, requireRoot, requireTool, spawnInNetns, waitFor, type NetnsLink } from './helpers.js';

const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
/** Where .ci/run extracts ntpsec's ntpd (override with VAKT_NTPSEC_NTPD). */
const NTPD = process.env.VAKT_NTPSEC_NTPD ?? '/opt/vakt-ci/ntpsec/usr/sbin/ntpd';

const children: ChildProcess[] = [];
let dir = '';

function probe(target: string, options: Record<string, unknown> = {}, ms = 2000): Promise<ProbeResult> {
  return ntpProbe.run({ ...targetsOf('ntp', target), options: KIND_OPTIONS.ntp.parse(options), ...budget(ms), log: quietLog, secrets: {} });
}

/** Whether a server answers at all (before it binds, the port is unreachable: refused, or the request times out). */
async function answers(target: string): Promise<boolean> {
  const reason = (await probe(target, {}, 300)).failure?.reason;
  return reason !== 'timeout' && reason !== 'refused';
}

/** A chronyd serving on a free port of 127.0.0.1; `extra` config lines, `env` for the process (libfaketime). */
async function chronyd(name: string, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const port = await freePort();
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bindaddress 127.0.0.1',
      'cmdport 0', // no command port
      'bindcmdaddress /', // no command socket under /run
      `pidfile ${join(dir, `${name}.pid`)}`,
      'allow 127.0.0.1',
      ...extra,
      '',
    ].join('\n'),
  );
  // -d: foreground, log to stderr; -x: never touch the system clock; -u root: files in our own dir.
  const child = spawn('chronyd', ['-d', '-x', '-u', 'root', '-f', conf], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const target = `127.0.0.1:${port}`;
  // Answering at all is enough to go on (an unsynchronised server answers too).
  await waitFor(`chronyd ${name} answering`, () => answers(target), 15_000, 100);
  return target;
}

beforeAll(async () => {
  requireRoot();
  await requireTool('chronyd', ['-v'], 'chrony');
  if (!existsSync(FAKETIME_LIB)) throw new Error(`${FAKETIME_LIB} is missing (apt-get install faketime; .ci/run installs it)`);
  dir = mkdtempSync(join(tmpdir(), 'vakt-ntp-'));
});

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : Promise.resolve())));
});

describe('ntp probe against chrony', () => {
  it('a normal server: ok, offset within milliseconds, stratum 2 (its local reference), no leap warning', async () => {
    const target = await chronyd('normal', ['local stratum 2']);
    const r = await probe(target, { samples: 3, sampleSpacing: '50ms' });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.degraded).toBeUndefined();
    expect(Math.abs(r.values?.ntp_offset_seconds ?? 1)).toBeLessThan(0.1);
    expect(r.values?.ntp_stratum).toBeGreaterThanOrEqual(2);
    expect(r.values?.ntp_stratum).toBeLessThanOrEqual(3);
    expect(r.values?.ntp_leap).toBe(0);
  });

  it('a server whose clock is 10 minutes ahead (libfaketime): clock_skew, with how far and which way', async () => {
    const target = await chronyd('skewed', ['local stratum 2'], { LD_PRELOAD: FAKETIME_LIB, FAKETIME: '+10m' });
    const r = await probe(target);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'clock_skew' });
    expect(r.failure?.message).toMatch(/^the server's clock is (9 min 59|10 min 00|10 min 01) s ahead of ours/);
    expect(r.values?.ntp_offset_seconds).toBeGreaterThan(590);
    expect(r.values?.ntp_offset_seconds).toBeLessThan(610);
    // Within the hard limit it is only degraded: the same server, with a limit above its skew.
    const lenient = await probe(target, { offsetDegradedAbove: '1s', maxOffset: '20m' });
    expect(lenient.ok).toBe(true);
    expect(lenient.degraded?.reason).toBe('clock_offset');
  });

  it('a server with no time source: ntp_unsynchronised (leap indicator 3)', async () => {
    const target = await chronyd('unsync', []);
    const r = await probe(target);
    expect(r.failure).toMatchObject({ reason: 'ntp_unsynchronised' });
    expect(r.values?.ntp_leap).toBe(3);
  });
});

describe("ntp probe against ntpsec's kiss-o'-death", () => {
  let link: NetnsLink | undefined;
  let ntpd: ChildProcess | undefined;

  beforeAll(async () => {
    if (!existsSync(NTPD)) throw new Error(`ntpsec's ntpd is missing at ${NTPD} (.ci/run extracts it: apt-get download ntpsec; dpkg-deb -x)`);
    await removeStaleNetns();
    link = await createNetnsLink(7);
    const conf = join(dir, 'ntpsec.conf');
    // Every request after the first from an address is over the limit and answered with RATE.
    writeFileSync(conf, ['disable ntp', 'disable kernel', 'limit average 0.5 burst 1 kod 1000', 'restrict default kod limited', ''].join('\n'));
    // ntpd tries to adjust the kernel clock at start even so: without CAP_SYS_TIME it cannot.
    ntpd = spawnInNetns(link.netns, 'setpriv', [
      '--bounding-set',
      '-sys_time',
      '--inh-caps',
      '-sys_time',
      NTPD,
      '-n',
      '-c',
      conf,
      '-l',
      join(dir, 'ntpsec.log'),
      '-I',
      link.nsAddr,
    ]);
    children.push(ntpd);
    await waitFor('ntpd answering', () => answers(`${link!.nsAddr}:123`), 15_000, 200);
  });

  afterAll(async () => {
    ntpd?.kill('SIGTERM');
    if (link) await destroyNetnsLink(link);
  });

  it('asked again at once: ntp_kiss_of_death RATE', async () => {
    const r = await probe(`${link!.nsAddr}:123`, { samples: 2, sampleSpacing: '10ms' });
    expect(r.failure).toMatchObject({ reason: 'ntp_kiss_of_death' });
    expect(r.failure?.message).toContain('RATE');
    expect(r.values?.ntp_stratum).toBe(0);
  });
});
