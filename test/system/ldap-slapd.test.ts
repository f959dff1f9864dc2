// The ldap probe against a real directory: OpenLDAP's slapd, started by the test itself (not the
// system service) from a slapd.conf and an LDIF in a temporary directory, on free ports of
// 127.0.0.1, plain (ldap://, StartTLS) and ldaps:// with a certificate of the test's own CA.
// A second database (back-sock) answers binds the way Active Directory refuses them, with the
// `data XXX` reason in the diagnostic, so the AD decoding is tested over the wire of a real
// LDAP server. A slow domain controller is a TCP proxy that holds the client's bytes for a
// while: the connect is as fast as ever, the bind is slow.
// ldap-utils (ldapwhoami, ldapsearch) is the independent witness: what it sees, the probe must see.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { ldapProbe } from '../../probes/ldap/probe.js';
import type { ProbeLogger, ProbeResult } from '../../probes/types.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { runVakt } from '../helpers/cli.js';
import { delayingProxy, freePort, requireRoot, requireTool, run, tryRun, waitForLine } from './helpers.js';

const silent: ProbeLogger = { debug() {}, info() {}, warn() {} };

const SUFFIX = 'dc=region,dc=test';
const PEOPLE = `ou=people,${SUFFIX}`;
const PROBE_DN = `uid=svc-vakt,${PEOPLE}`;
const PROBE_PW = 'Vakt-probe-S3cret!';
const NURSES = ['nurse1', 'nurse2'];
const AD_SUFFIX = 'dc=ad,dc=test';

interface Timed extends ProbeResult {
  elapsed: number;
}

/** One run the way the runner makes it: schema-parsed options, secrets by name, a run timeout. */
async function probe(
  target: string,
  options: Record<string, unknown>,
  secrets: Record<string, string> = { bind_password: PROBE_PW },
  runTimeoutMs = 3000,
): Promise<Timed> {
  const controller = new AbortController();
  const start = performance.now();
  const timer = setTimeout(() => controller.abort(new Error('check timeout')), runTimeoutMs);
  try {
    const r = await ldapProbe.run({
      ...targetsOf('ldap', target),
      options: KIND_OPTIONS.ldap.parse(options),
      budget: new Budget(controller.signal, start + runTimeoutMs),
      memory: new Map(),
      log: silent,
      secrets,
    });
    return { ...r, elapsed: (performance.now() - start) / 1000 };
  } finally {
    clearTimeout(timer);
  }
}

const bindAsProbe = { bindDn: PROBE_DN, password: 'bind_password' };

// ---------------------------------------------------------------------------------------------
// slapd, started by the test

interface Slapd {
  dir: string;
  port: number;
  tlsPort: number;
  url: string;
  ldapsUrl: string;
  caFile: string;
  /** slapd's stats log (-d 256: one line per connection, operation and result) so far. */
  log(): string;
  stop(): Promise<void>;
}

const DIR_PREFIX = `vakt-test-${process.pid}-slapd-`;
const DIR_RE = /^vakt-test-(\d+)-slapd-/;

/** Processes this test started; killed if it exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * Answers back-sock requests for dc=ad,dc=test as Active Directory answers binds: cn=ok binds,
 * every other cn is refused with result 49 and AD's diagnostic carrying the `data` reason.
 */
const AD_RESPONDER = String.raw`
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
open(sys.argv[2], 'w').write(str(os.getpid()))
print('ready', flush=True)
REASONS = {'cn=badpw': '52e', 'cn=nouser': '525', 'cn=hours': '530', 'cn=workstation': '531', 'cn=expiredpw': '532',
           'cn=disabled': '533', 'cn=expired': '701', 'cn=mustchange': '773', 'cn=locked': '775'}
while True:
    c, _ = s.accept()
    f = c.makefile('rwb')
    lines = []
    for raw in f:
        line = raw.decode('utf-8', 'replace').rstrip('\n')
        if line == '':
            break
        lines.append(line)
    op = lines[0] if lines else ''
    dn = next((l[4:] for l in lines if l.startswith('dn: ')), '')
    if op == 'BIND':
        rdn = dn.split(',')[0].lower()
        if rdn == 'cn=ok':
            f.write(b'RESULT\ncode: 0\n\n')
        else:
            data = REASONS.get(rdn, '0')
            f.write(('RESULT\ncode: 49\ninfo: 80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data %s, v4563\n\n' % data).encode())
    elif op != 'UNBIND':
        f.write(b'RESULT\ncode: 53\n\n')
    try:
        f.flush()
    except OSError:
        pass
    c.close()
`;
import { targetsOf } from '../helpers/peers.js';
import { Budget } from '../../probes/kit/budget.js';

async function hash(pw: string): Promise<string> {
  return (await run('slappasswd', ['-h', '{SSHA}', '-s', pw])).trim();
}

// The password policies (OpenLDAP's ppolicy overlay) and the accounts under them, in ou=staff
// (ou=people is counted by the search tests). Each account's password is `<uid>-pw`.
const POLICIES = `ou=policies,${SUFFIX}`;
const STAFF = `ou=staff,${SUFFIX}`;
const STAFF_ACCOUNTS: Record<string, { policy: string; changed?: string; reset?: boolean }> = {
  // three failures lock the account until an administrator unlocks it
  'locked-user': { policy: 'lockout' },
  // password older than its maximum age, no grace logins
  'expired-user': { policy: 'expire', changed: '20200101000000Z' },
  // password older than its maximum age, grace logins left
  'grace-user': { policy: 'grace', changed: '20200101000000Z' },
  // password reset by an administrator: must be changed at the next login
  'reset-user': { policy: 'reset', reset: true },
  // password changed a day ago, expires after 30 days, warned of from the start
  'soon-user': { policy: 'warn', changed: generalizedTime(Date.now() - 86_400_000) },
};

function generalizedTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace(/[-:T]/g, '')}Z`;
}

async function policyEntries(): Promise<string[]> {
  const policy = (cn: string, attrs: string[]) =>
    [`dn: cn=${cn},${POLICIES}`, 'objectClass: device', 'objectClass: pwdPolicy', `cn: ${cn}`, 'pwdAttribute: userPassword', ...attrs, ''].join('\n');
  return [
    [`dn: ${POLICIES}`, 'objectClass: organizationalUnit', 'ou: policies', ''].join('\n'),
    policy('lockout', ['pwdMaxFailure: 3', 'pwdLockout: TRUE', 'pwdLockoutDuration: 0']),
    policy('expire', ['pwdMaxAge: 3600', 'pwdGraceAuthNLimit: 0']),
    policy('grace', ['pwdMaxAge: 3600', 'pwdGraceAuthNLimit: 5']),
    policy('reset', ['pwdMustChange: TRUE']),
    policy('warn', ['pwdMaxAge: 2592000', 'pwdExpireWarning: 2592000']),
    [`dn: ${STAFF}`, 'objectClass: organizationalUnit', 'ou: staff', ''].join('\n'),
    ...(await Promise.all(
      Object.entries(STAFF_ACCOUNTS).map(async ([uid, a]) =>
        [
          `dn: uid=${uid},${STAFF}`,
          'objectClass: inetOrgPerson',
          `uid: ${uid}`,
          `cn: ${uid}`,
          `sn: ${uid}`,
          `userPassword: ${await hash(`${uid}-pw`)}`,
          `pwdPolicySubentry: cn=${a.policy},${POLICIES}`,
          ...(a.changed ? [`pwdChangedTime: ${a.changed}`] : []),
          ...(a.reset ? ['pwdReset: TRUE'] : []),
          '',
        ].join('\n'),
      ),
    )),
  ];
}

async function startSlapd(pki: TestPki): Promise<Slapd> {
  let lastError: Error | undefined;
  // A port found free may be taken before slapd binds it; then try others.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
    try {
      return await startSlapdIn(dir, pki);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      lastError = err as Error;
      if (!/Address already in use|errno=98/i.test(lastError.message)) throw lastError;
    }
  }
  throw lastError!;
}

async function startSlapdIn(dir: string, pki: TestPki): Promise<Slapd> {
  const port = await freePort();
  let tlsPort = await freePort();
  while (tlsPort === port) tlsPort = await freePort();
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const caFile = file('ca.pem', pki.ca.cert);
  const certFile = file('server.pem', pki.valid.cert);
  const keyFile = file('server-key.pem', pki.valid.key);
  const sock = join(dir, 'ad.sock');
  const conf = file(
    'slapd.conf',
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      `pidfile ${join(dir, 'slapd.pid')}`,
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'moduleload back_sock',
      'moduleload ppolicy',
      `TLSCACertificateFile ${caFile}`,
      `TLSCertificateFile ${certFile}`,
      `TLSCertificateKeyFile ${keyFile}`,
      // Passwords are readable by nobody; binding with them is allowed to anyone.
      'access to attrs=userPassword by anonymous auth by self read by * none',
      'access to * by * read',
      'database mdb',
      'maxsize 16777216',
      `suffix "${SUFFIX}"`,
      `rootdn "cn=admin,${SUFFIX}"`,
      `rootpw ${await hash('admin-not-used-by-the-probe')}`,
      `directory ${join(dir, 'db')}`,
      // The password policy overlay, its policies per user (pwdPolicySubentry: no default, so the
      // probe account's wrong-password tests never lock it); a locked account says so to a client
      // that sent the control (ppolicy_use_lockout), otherwise it is a bare 49.
      'overlay ppolicy',
      'ppolicy_use_lockout',
      'database sock',
      `suffix "${AD_SUFFIX}"`,
      `socketpath ${sock}`,
      '',
    ].join('\n'),
  );
  const person = async (uid: string, pw: string) =>
    [`dn: uid=${uid},${PEOPLE}`, 'objectClass: inetOrgPerson', `uid: ${uid}`, `cn: ${uid}`, `sn: ${uid}`, `userPassword: ${await hash(pw)}`, ''].join('\n');
  const ldif = file(
    'seed.ldif',
    [
      [`dn: ${SUFFIX}`, 'objectClass: dcObject', 'objectClass: organization', 'o: Region', 'dc: region', ''].join('\n'),
      [`dn: ${PEOPLE}`, 'objectClass: organizationalUnit', 'ou: people', ''].join('\n'),
      await person('svc-vakt', PROBE_PW),
      ...(await Promise.all(NURSES.map((n) => person(n, `${n}-pw`)))),
      ...(await policyEntries()),
    ].join('\n'),
  );
  mkdirSync(join(dir, 'db'));
  await run('slaptest', ['-u', '-f', conf]);
  await run('slapadd', ['-f', conf, '-b', SUFFIX, '-l', ldif]);

  const ad = spawn('python3', ['-c', AD_RESPONDER, sock, join(dir, 'ad.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(ad);
  ad.once('exit', () => live.delete(ad));
  await waitForLine(ad, /^ready$/, 10_000);

  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = `ldaps://127.0.0.1:${tlsPort}`;
  // -d 256: stay in the foreground and log every connection and operation (stats) to stderr.
  const child = spawn('slapd', ['-f', conf, '-h', `${url}/ ${ldapsUrl}/`, '-d', '256'], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = String(code ?? signal);
      live.delete(child);
      resolve();
    }),
  );
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const c of [child, ad]) {
        if (c.exitCode !== null || c.signalCode !== null) continue;
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(timer);
      }
      await exit;
      rmSync(dir, { recursive: true, force: true });
    })());
  const slapd: Slapd = { dir, port, tlsPort, url, ldapsUrl, caFile, log: () => output, stop };
  try {
    const deadline = performance.now() + 10_000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      if (exited !== undefined) throw new Error(`slapd exited (${exited}) before answering: ${output.trim()}`);
      const r = await tryRun('ldapwhoami', ['-x', '-H', url, '-D', PROBE_DN, '-w', PROBE_PW]);
      if (r.code === 0) return slapd;
      if (performance.now() > deadline) throw new Error(`slapd on ${url} did not answer within 10 s: ${r.stderr.trim()} ${output.trim()}`);
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** Kills slapd and responder processes of earlier test runs that are gone, and removes their directories. */
function removeStaleSlapd(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = DIR_RE.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || existsSync(`/proc/${owner}`)) continue;
    const dir = join(tmpdir(), name);
    for (const pidFile of ['slapd.pid', 'ad.pid']) {
      const p = join(dir, pidFile);
      const pid = existsSync(p) ? Number(readFileSync(p, 'utf8').trim()) : NaN;
      if (!Number.isInteger(pid) || pid <= 0 || !existsSync(`/proc/${pid}`)) continue;
      try {
        // Only a process whose command line names this directory is ours to kill.
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
      } catch {
        // gone in the meantime
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** slapd's stats lines for connections opened after `mark` characters of its log. */
async function connectionsSince(slapd: Slapd, mark: number, count: number): Promise<string> {
  // slapd logs asynchronously; wait until every connection opened since `mark` was closed.
  const deadline = performance.now() + 2000;
  for (;;) {
    const text = slapd.log().slice(mark);
    // Only connections accepted since the mark count (an earlier one may close after it).
    const accepted = [...text.matchAll(/conn=(\d+) fd=\d+ ACCEPT from /g)].map((m) => m[1]);
    const allClosed = accepted.every((id) => new RegExp(`conn=${id} fd=\\d+ closed`).test(text));
    if ((accepted.length >= count && allClosed) || performance.now() > deadline) return text;
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------

let pki: TestPki;
let slapd: Slapd;

beforeAll(async () => {
  requireRoot();
  // Tools the suite needs, checked up front so a missing one is named plainly (never a skip).
  await requireTool('slapd', ['-VV'], 'slapd');
  await requireTool('slappasswd', ['-h', '{SSHA}', '-s', 'x'], 'slapd');
  await requireTool('ldapwhoami', ['-VV'], 'ldap-utils');
  await requireTool('python3', ['-V'], 'python3');
  removeStaleSlapd();
  pki = makePki();
  slapd = await startSlapd(pki);
});

afterAll(async () => {
  await slapd?.stop();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('ldap probe against slapd: bind', () => {
  it('binds over ldap:// with connect and bind timed separately, then unbinds and closes', async () => {
    const mark = slapd.log().length;
    const r = await probe(slapd.url, bindAsProbe);
    expect(r.failure, slapd.log().slice(mark)).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['connect', 'bind']);
    expect(r.phases.connect).toBeGreaterThan(0);
    expect(r.phases.connect).toBeLessThan(0.1);
    expect(r.phases.bind).toBeGreaterThan(0);
    expect(r.phases.bind).toBeLessThan(0.5);
    expect(r.values).toEqual({ ip_protocol: 4 });
    expect(r.info).toBeUndefined();
    expect(r.degraded).toBeUndefined();
    const log = await connectionsSince(slapd, mark, 1);
    expect(log).toContain(`BIND dn="${PROBE_DN}" method=128`);
    expect(log).toMatch(/RESULT tag=97 err=0 /);
    expect(log).toMatch(/op=1 UNBIND/);
    expect(log).toMatch(/fd=\d+ closed/);
  });

  it('a wrong password is auth / invalid_credentials, as ldapwhoami sees it; still unbinds', async () => {
    const witness = await tryRun('ldapwhoami', ['-x', '-H', slapd.url, '-D', PROBE_DN, '-w', 'wrong-password']);
    expect(witness.code).toBe(49);
    const mark = slapd.log().length;
    const r = await probe(slapd.url, bindAsProbe, { bind_password: 'wrong-password' });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(r.info).toEqual({ authCode: 'invalid_credentials' });
    // The server answered: the bind phase ran to its end and is timed.
    expect(Object.keys(r.phases)).toEqual(['connect', 'bind']);
    expect(r.failure?.message).toContain('invalidCredentials (49)');
    expect(r.failure?.message).not.toContain('wrong-password');
    const log = await connectionsSince(slapd, mark, 1);
    expect(log).toMatch(/RESULT tag=97 err=49 /);
    expect(log).toMatch(/op=1 UNBIND/);
  });

  it('an unknown user is auth too (OpenLDAP does not say why; AD does, below)', async () => {
    const r = await probe(slapd.url, { bindDn: `uid=nobody,${PEOPLE}`, password: 'bind_password' });
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(r.info?.authCode).toBe('invalid_credentials');
    expect(r.failure?.message).not.toContain(PROBE_PW);
  });

  it("decodes Active Directory's data reasons from a real server's bind refusals", async () => {
    const witness = await tryRun('ldapwhoami', ['-x', '-H', slapd.url, '-D', `cn=locked,${AD_SUFFIX}`, '-w', 'x']);
    expect(witness.code).toBe(49);
    expect(witness.stderr).toContain('data 775');
    const cases: Record<string, string> = {
      badpw: 'invalid_credentials',
      nouser: 'user_not_found',
      hours: 'time_restriction',
      workstation: 'workstation_restriction',
      expiredpw: 'password_expired',
      disabled: 'account_disabled',
      expired: 'account_expired',
      mustchange: 'must_change_password',
      locked: 'account_locked',
      // data 0: not a reason vakt knows, so the plain LDAP code.
      other: 'invalid_credentials',
    };
    for (const [cn, code] of Object.entries(cases)) {
      const r = await probe(slapd.url, { bindDn: `cn=${cn},${AD_SUFFIX}`, password: 'bind_password' });
      expect(r.failure, cn).toMatchObject({ phase: 'bind', reason: 'auth' });
      expect(r.info?.authCode, cn).toBe(code);
    }
    const ok = await probe(slapd.url, { bindDn: `cn=ok,${AD_SUFFIX}`, password: 'bind_password' });
    expect(ok.failure).toBeUndefined();
    expect(ok.ok).toBe(true);
  });
});

describe('ldap probe against slapd: the password policy says why (ppolicy overlay)', () => {
  const staff = (uid: string) => ({ bindDn: `uid=${uid},${STAFF}`, password: 'bind_password' });
  const own = (uid: string) => ({ bind_password: `${uid}-pw` });
  /** What ldapwhoami says with the password policy control (-e ppolicy): the independent witness. */
  const witness = async (uid: string, pw = `${uid}-pw`) => {
    const r = await tryRun('ldapwhoami', ['-x', '-e', 'ppolicy', '-H', slapd.url, '-D', `uid=${uid},${STAFF}`, '-w', pw]);
    return { code: r.code, text: `${r.stdout}${r.stderr}` };
  };

  it('three wrong passwords lock the account: then the right one is account_locked, as ldapwhoami -e ppolicy says; without the control a bare invalid_credentials', async () => {
    for (let i = 0; i < 3; i++) {
      const wrong = await probe(slapd.url, staff('locked-user'), { bind_password: `not-it-${i}` });
      expect(wrong.info?.authCode, `failure ${i + 1}`).toBe('invalid_credentials');
      expect(wrong.failure?.message).not.toContain(`not-it-${i}`);
    }
    const w = await witness('locked-user');
    expect(w.code).toBe(49);
    expect(w.text).toMatch(/Account locked/i);
    const r = await probe(slapd.url, staff('locked-user'), own('locked-user'));
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(r.info?.authCode).toBe('account_locked');
    expect(r.failure?.message).toMatch(/^bind refused \(account_locked: the directory's password policy says accountLocked\): invalidCredentials \(49\)/);
    expect(r.failure?.message).not.toContain('locked-user-pw');
    // The issue as found: without the control, slapd says only 49, and an operator would
    // rotate a password that is not wrong.
    const plain = await probe(slapd.url, { ...staff('locked-user'), passwordPolicy: false }, own('locked-user'));
    expect(plain.info?.authCode).toBe('invalid_credentials');
  });

  it('an expired password is password_expired', async () => {
    const w = await witness('expired-user');
    expect(w.code).toBe(49);
    expect(w.text).toMatch(/Password expired/i);
    const r = await probe(slapd.url, staff('expired-user'), own('expired-user'));
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(r.info?.authCode).toBe('password_expired');
  });

  it('a password reset by an administrator: the bind is accepted but the account must change it first: must_change_password', async () => {
    const w = await witness('reset-user');
    expect(w.text).toMatch(/Password must be changed/i);
    const r = await probe(slapd.url, { ...staff('reset-user'), search: { baseDn: PEOPLE } }, own('reset-user'));
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(r.failure?.message).toMatch(/^bind accepted, but the directory's password policy says changeAfterReset/);
    expect(r.info?.authCode).toBe('must_change_password');
    expect(r.phases.search).toBeUndefined();
  });

  it('an expired password living on grace logins works, degraded, counting them down as slapd does', async () => {
    const first = await probe(slapd.url, staff('grace-user'), own('grace-user'));
    expect(first.ok).toBe(true);
    expect(first.degraded?.reason).toBe('password_expiring');
    const left = first.values?.ldap_grace_logins_remaining;
    expect(left).toBeGreaterThanOrEqual(0);
    expect(first.degraded?.message).toContain(`${left} grace login`);
    const w = await witness('grace-user');
    expect(w.code).toBe(0);
    expect(w.text).toMatch(new RegExp(`Password expired, ${left! - 1} grace logins? remain`, 'i'));
    const next = await probe(slapd.url, staff('grace-user'), own('grace-user'));
    expect(next.values?.ldap_grace_logins_remaining).toBe(left! - 2);
  });

  it('a password inside its warning period works, degraded, with the time left', async () => {
    const w = await witness('soon-user');
    expect(w.code).toBe(0);
    expect(w.text).toMatch(/Password expires in \d+ seconds/i);
    const r = await probe(slapd.url, staff('soon-user'), own('soon-user'));
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('password_expiring');
    expect(r.degraded?.message).toMatch(/expires in 2\d d \d+ h/);
    const seconds = r.values?.ldap_password_expiry_seconds ?? 0;
    expect(seconds).toBeGreaterThan(28 * 86_400);
    expect(seconds).toBeLessThanOrEqual(29 * 86_400);
  });
});

describe('ldap probe against slapd: search', () => {
  const people = { baseDn: PEOPLE, filter: '(objectClass=inetOrgPerson)', scope: 'one' };

  it('counts entries as ldapsearch does; at least minEntries is ok, fewer is an assertion', async () => {
    const witness = await run('ldapsearch', [
      '-x',
      '-LLL',
      '-H',
      slapd.url,
      '-D',
      PROBE_DN,
      '-w',
      PROBE_PW,
      '-b',
      PEOPLE,
      '-s',
      'one',
      '(objectClass=inetOrgPerson)',
      '1.1',
    ]);
    const found = (witness.match(/^dn: /gm) ?? []).length;
    expect(found).toBe(1 + NURSES.length);

    const ok = await probe(slapd.url, { ...bindAsProbe, search: { ...people, minEntries: found } });
    expect(ok.failure).toBeUndefined();
    expect(Object.keys(ok.phases)).toEqual(['connect', 'bind', 'search']);
    expect(ok.values?.ldap_search_entries).toBe(found);

    const few = await probe(slapd.url, { ...bindAsProbe, search: { ...people, minEntries: found + 1 } });
    expect(few.failure).toEqual({
      phase: 'search',
      reason: 'assertion',
      message: `search under "${PEOPLE}" for (objectClass=inetOrgPerson) (scope one) found ${found} entries, expected at least ${found + 1}`,
    });
    expect(few.values?.ldap_search_entries).toBe(found);
    expect(few.phases.search).toBeGreaterThan(0);

    // Asking for 2 stops the server after 2 (sizeLimit): a large directory is never pulled whole.
    const capped = await probe(slapd.url, { ...bindAsProbe, search: { ...people, minEntries: 2 } });
    expect(capped.ok).toBe(true);
    expect(capped.values?.ldap_search_entries).toBe(2);
  });

  it('a search base that does not exist is an assertion; an anonymous root DSE search needs no bind', async () => {
    const missing = await probe(slapd.url, { ...bindAsProbe, search: { baseDn: `ou=gone,${SUFFIX}` } });
    expect(missing.failure).toMatchObject({ phase: 'search', reason: 'assertion' });
    expect(missing.failure?.message).toContain('noSuchObject (32)');

    const rootDse = await probe(slapd.url, { search: { baseDn: '', scope: 'base', attributes: ['namingContexts'] } });
    expect(rootDse.failure).toBeUndefined();
    expect(Object.keys(rootDse.phases)).toEqual(['connect', 'search']);
    expect(rootDse.values?.ldap_search_entries).toBe(1);
  });
});

describe('ldap probe against slapd: TLS', () => {
  it('ldaps:// times connect, tls and bind, and reports the certificate', async () => {
    const r = await probe(slapd.ldapsUrl, { ...bindAsProbe, tls: { caFile: slapd.caFile } });
    expect(r.failure, slapd.log().slice(-2000)).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['connect', 'tls', 'bind']);
    expect(r.phases.tls).toBeGreaterThan(0);
    expect(r.info).toMatchObject({ certSubject: 'CN=service.test', certIssuer: 'CN=vakt test CA' });
    expect(r.info?.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    expect(r.values?.ssl_earliest_cert_expiry).toBeGreaterThan(Date.now() / 1000 + 80 * 86_400);
    expect(r.degraded).toBeUndefined();
  });

  it('ldaps:// with a certificate the probe does not trust fails in tls, before any bind', async () => {
    const r = await probe(slapd.ldapsUrl, bindAsProbe);
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    expect(Object.keys(r.phases)).toEqual(['connect']);
  });

  it('StartTLS upgrades ldap:// before the bind; a name the certificate lacks fails in tls', async () => {
    const r = await probe(slapd.url, { ...bindAsProbe, startTls: true, tls: { caFile: slapd.caFile } });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['connect', 'tls', 'bind']);
    expect(r.info?.certSubject).toBe('CN=service.test');

    const wrongName = await probe(slapd.url, { ...bindAsProbe, startTls: true, tls: { caFile: slapd.caFile, serverName: 'dc9.region.test' } });
    expect(wrongName.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    expect(wrongName.phases.bind).toBeUndefined();
  });
});

describe('ldap probe against slapd: a slow directory', () => {
  it('a bind slowed in the network is degraded (slow) with the bind phase carrying the delay, connect fast', async () => {
    const delay = 400;
    const proxy = await delayingProxy(slapd.port, delay, { direction: 'up' });
    try {
      const r = await probe(`ldap://127.0.0.1:${proxy.port}`, { ...bindAsProbe, bindDegradedAbove: '200ms' });
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.degraded).toEqual({ reason: 'slow', message: expect.stringMatching(/^bind took \d+ms, above bindDegradedAbove 200ms$/) });
      expect(r.phases.bind).toBeGreaterThanOrEqual(delay / 1000);
      expect(r.phases.bind).toBeLessThan(delay / 1000 + 0.3);
      expect(r.phases.connect).toBeLessThan(0.05);

      // The same path without a limit on the bind: ok, and not degraded by the probe.
      const plain = await probe(`ldap://127.0.0.1:${proxy.port}`, bindAsProbe);
      expect(plain.ok).toBe(true);
      expect(plain.degraded).toBeUndefined();
    } finally {
      await proxy.close();
    }
  });

  it('a directory that stops answering: timeout in bind within the run, connect timed', async () => {
    const proxy = await delayingProxy(slapd.port, 10_000, { direction: 'up' });
    try {
      const r = await probe(`ldap://127.0.0.1:${proxy.port}`, bindAsProbe, undefined, 800);
      expect(r.failure).toMatchObject({ phase: 'bind', reason: 'timeout' });
      expect(r.elapsed).toBeLessThan(0.8);
      expect(Object.keys(r.phases)).toEqual(['connect']);
    } finally {
      await proxy.close();
    }
  });
});

describe('ldap check through the CLI', () => {
  it('vakt probe runs a configured ldap check with its password from the environment and never prints it', async () => {
    const config = join(slapd.dir, 'vakt.yaml');
    writeFileSync(
      config,
      [
        'checks:',
        '  - name: directory-login',
        '    kind: ldap',
        `    target: ${slapd.url}`,
        '    secrets:',
        '      bind_password: { env: VAKT_LDAP_PW }',
        '    ldap:',
        `      bindDn: "${PROBE_DN}"`,
        '      password: bind_password',
        `      search: { baseDn: "${PEOPLE}", filter: "(uid=nurse*)", minEntries: ${NURSES.length} }`,
        '',
      ].join('\n'),
    );
    const ok = await runVakt(['probe', '-c', config, 'directory-login'], { VAKT_LDAP_PW: PROBE_PW });
    expect(ok.stderr).toBe('');
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/^bind +\d+\.\d{3} ms$/m);
    expect(ok.stdout).toMatch(/^search +\d+\.\d{3} ms$/m);
    expect(ok.stdout).toMatch(/^tls +-$/m);
    expect(ok.stdout).toContain('result    OK');

    const bad = await runVakt(['probe', '-c', config, 'directory-login'], { VAKT_LDAP_PW: 'not-the-Password-9' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('result    FAILED: auth in bind');
    expect(bad.stdout).toMatch(/^authCode +invalid_credentials$/m);
    expect(bad.stdout + bad.stderr).not.toContain('not-the-Password-9');
  }, 60_000);
});

describe('ldap probe against slapd: stopped', () => {
  it('a stopped directory refuses the connect', async () => {
    await slapd.stop();
    const r = await probe(slapd.url, bindAsProbe);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect(r.phases).toEqual({});
  });
});
