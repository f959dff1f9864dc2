// The ldap probe's pure parts: Active Directory `data` codes from a bind diagnostic, result-code
// classification, the per-phase slow limits, the target and option rules. Plus what needs no
// LDAP server at all: a closed port, a peer that never answers, a peer that hangs up. The
// conversation with a real directory (slapd) is in test/system/ldap-slapd.test.ts.
import { BusyError, InsufficientAccessError, InvalidCredentialsError, NoSuchObjectError, StrongAuthRequiredError, UnavailableError } from 'ldapts';
import { afterAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { parseLdapUrl } from '../../probes/ldap/options.js';
import { AD_DATA_CODES, adReason, classifyLdap, classifyResult, LDAP_AUTH_CODES, ldapProbe, slowPhase } from '../../probes/ldap/probe.js';
import { ProbeAbortError } from '../../probes/kit/net.js';
import type { ProbeResult } from '../../probes/types.js';
import { decodePasswordPolicy, PASSWORD_POLICY_OID } from '../../probes/ldap/ppolicy.js';
import { children, decodeInteger, encode, encodeInteger, encodeString, readElement, TAG } from '../../sandbox/ber.js';
import { budget, BUSY_SLACK_MS, closedPort, type Peer, quietLog, tcpPeer, targetsOf } from '../helpers/peers.js';
import { prng } from '../helpers/prng.js';

/** What Active Directory sends with result 49 (the text of a real DC's bind refusal). */
const adDiagnostic = (data: string) => `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data ${data}, v4563\u0000`;

describe('Active Directory data codes', () => {
  it('decodes every documented reason from a bind diagnostic', () => {
    const expected: Record<string, string> = {
      '525': 'user_not_found',
      '52e': 'invalid_credentials',
      '530': 'time_restriction',
      '531': 'workstation_restriction',
      '532': 'password_expired',
      '533': 'account_disabled',
      '701': 'account_expired',
      '773': 'must_change_password',
      '775': 'account_locked',
    };
    expect(AD_DATA_CODES).toEqual(expected);
    for (const [data, code] of Object.entries(expected)) {
      expect(adReason(adDiagnostic(data)), data).toBe(code);
      expect(adReason(adDiagnostic(data.toUpperCase())), data.toUpperCase()).toBe(code);
    }
  });

  it('gives no reason for a diagnostic without a known data code', () => {
    expect(adReason('')).toBeUndefined();
    expect(adReason('invalid credentials')).toBeUndefined();
    expect(adReason(adDiagnostic('0'))).toBeUndefined();
    expect(adReason(adDiagnostic('52f'))).toBeUndefined();
    // "data" must be the token, not part of a longer word or a longer hex number.
    expect(adReason('metadata 775')).toBeUndefined();
    expect(adReason('data 7755')).toBeUndefined();
  });
});

describe('result-code classification', () => {
  it('49 is auth: the AD reason when present, invalid_credentials otherwise (plain LDAP, unknown data)', () => {
    expect(classifyResult(49, adDiagnostic('775'), 'bind')).toMatchObject({ reason: 'auth', authCode: 'account_locked' });
    expect(classifyResult(49, adDiagnostic('532'), 'bind')).toMatchObject({ reason: 'auth', authCode: 'password_expired' });
    expect(classifyResult(49, '', 'bind')).toMatchObject({ reason: 'auth', authCode: 'invalid_credentials' });
    expect(classifyResult(49, adDiagnostic('0'), 'bind')).toMatchObject({ reason: 'auth', authCode: 'invalid_credentials' });
    const m = classifyResult(49, adDiagnostic('775'), 'bind').message;
    expect(m).toContain('invalidCredentials (49)');
    expect(m).toContain('data 775');
  });

  it('other refusals of the login are auth with their own code', () => {
    expect(classifyResult(50, 'no read access', 'search')).toMatchObject({ reason: 'auth', authCode: 'insufficient_access' });
    expect(classifyResult(8, '00002028: LdapErr: DSID-0C090259, comment: The server requires binds to turn on integrity checking', 'bind')).toMatchObject({
      reason: 'auth',
      authCode: 'strong_auth_required',
    });
    expect(classifyResult(13, '', 'bind')).toMatchObject({ reason: 'auth', authCode: 'confidentiality_required' });
    expect(classifyResult(48, '', 'bind')).toMatchObject({ reason: 'auth', authCode: 'inappropriate_auth' });
    expect(classifyResult(7, '', 'bind')).toMatchObject({ reason: 'auth', authCode: 'auth_method_not_supported' });
    expect(classifyResult(32, '', 'bind')).toMatchObject({ reason: 'auth', authCode: 'user_not_found' });
  });

  it('a missing search base is an assertion; a busy or unavailable server is protocol', () => {
    expect(classifyResult(32, 'no such object', 'search')).toEqual({
      reason: 'assertion',
      message: 'search base not found: noSuchObject (32): no such object',
    });
    expect(classifyResult(10, '', 'search').reason).toBe('assertion');
    for (const code of [1, 2, 51, 52, 53, 80, 4711]) {
      const c = classifyResult(code, '', 'bind');
      expect(c.reason, String(code)).toBe('protocol');
      expect(c.authCode).toBeUndefined();
    }
    expect(classifyResult(51, '', 'search').message).toBe('search: busy (51)');
    expect(classifyResult(3, '', 'search').reason).toBe('timeout');
  });

  it('any result in the tls phase is a refused StartTLS', () => {
    expect(classifyResult(2, 'unsupported extended operation', 'tls')).toEqual({
      reason: 'tls_handshake',
      message: 'StartTLS refused: protocolError (2): unsupported extended operation',
    });
  });

  it('classifies ldapts errors by class and code, socket errors by errno, never by text', () => {
    expect(classifyLdap(new InvalidCredentialsError(adDiagnostic('533')), 'bind')).toMatchObject({ reason: 'auth', authCode: 'account_disabled' });
    // The same text under another result code does not become an auth reason.
    expect(classifyLdap(new BusyError(adDiagnostic('775')), 'bind')).toMatchObject({ reason: 'protocol' });
    expect(classifyLdap(new UnavailableError(), 'bind').reason).toBe('protocol');
    expect(classifyLdap(new InsufficientAccessError(), 'search')).toMatchObject({ reason: 'auth', authCode: 'insufficient_access' });
    expect(classifyLdap(new StrongAuthRequiredError(), 'bind')).toMatchObject({ reason: 'auth', authCode: 'strong_auth_required' });
    expect(classifyLdap(new NoSuchObjectError(), 'search').reason).toBe('assertion');
    expect(classifyLdap(new ProbeAbortError('aborted'), 'bind')).toEqual({ reason: 'timeout', message: "bind did not complete before the run's deadline" });
    expect(classifyLdap(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'bind').reason).toBe('reset');
    // ldapts reports a broken connection with its own code-less error; the socket's error decides.
    const closed = new Error('Socket error. Message type: BindRequest (0x60)\nread ECONNRESET');
    expect(classifyLdap(closed, 'bind', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })).reason).toBe('reset');
    expect(classifyLdap(new Error('Connection closed before message response was received.'), 'bind').reason).toBe('protocol');
  });

  it('every authCode it can produce is in the closed list', () => {
    const seen = new Set<string>();
    for (const code of [...Array(130).keys()]) {
      for (const phase of ['bind', 'search']) {
        for (const data of ['', ...Object.keys(AD_DATA_CODES), '0', 'fff']) {
          const c = classifyResult(code, data === '' ? '' : adDiagnostic(data), phase);
          if (c.authCode !== undefined) seen.add(c.authCode);
          if (c.reason === 'auth') expect(c.authCode, `${code} ${phase} ${data}`).toBeDefined();
        }
      }
    }
    expect([...seen].sort()).toEqual([...LDAP_AUTH_CODES].sort());
    for (const c of LDAP_AUTH_CODES) expect(c).toMatch(/^[a-z_]+$/);
  });
});

describe('per-phase slow limits', () => {
  it('names the first phase over its limit', () => {
    expect(slowPhase({ connect: 0.002, bind: 0.61 }, { bindDegradedAbove: 300 })).toBe('bind took 610ms, above bindDegradedAbove 300ms');
    expect(slowPhase({ connect: 1.5, bind: 2.5 }, { connectDegradedAbove: 1000, bindDegradedAbove: 1000 })).toBe(
      'connect took 1.50s, above connectDegradedAbove 1.00s',
    );
    expect(slowPhase({ connect: 0.002, bind: 0.2 }, { bindDegradedAbove: 300 })).toBeUndefined();
    // A phase that did not run is never slow.
    expect(slowPhase({ connect: 0.002 }, { searchDegradedAbove: 1 })).toBeUndefined();
  });
});

describe('ldap target and options', () => {
  it('accepts ldap:// and ldaps:// with the default ports, and nothing else', () => {
    expect(parseLdapUrl('ldap://dc1.region.example')).toEqual({ text: 'ldap://dc1.region.example', secure: false, host: 'dc1.region.example', port: 389 });
    expect(parseLdapUrl('ldaps://dc1.region.example')).toEqual({ text: 'ldaps://dc1.region.example', secure: true, host: 'dc1.region.example', port: 636 });
    expect(parseLdapUrl('LDAPS://10.1.2.3:3269/')).toEqual({ text: 'LDAPS://10.1.2.3:3269/', secure: true, host: '10.1.2.3', port: 3269 });
    expect(parseLdapUrl('ldap://[fd00::10]:389')).toEqual({ text: 'ldap://[fd00::10]:389', secure: false, host: 'fd00::10', port: 389 });
    for (const bad of [
      'dc1:389',
      'http://dc1',
      'ldap://',
      'ldap://dc1:0',
      'ldap://dc1:70000',
      'ldap://dc1/dc=region,dc=example',
      'ldap://svc:pw@dc1',
      'ldap://dc1?uid',
      'ldap://dc 1',
    ]) {
      expect(parseLdapUrl(bad), bad).toBeUndefined();
    }
  });

  it('defaults and rules of the options', () => {
    const o = KIND_OPTIONS.ldap.parse({ bindDn: 'uid=probe,dc=x', password: 'pw', search: { baseDn: 'dc=x' } });
    expect(o).toEqual({
      startTls: false,
      bindDn: 'uid=probe,dc=x',
      password: 'pw',
      search: { baseDn: 'dc=x', filter: '(objectClass=*)', scope: 'sub', minEntries: 1, attributes: ['1.1'] },
      ipFamily: 'auto',
      passwordPolicy: true,
    });
    expect(KIND_OPTIONS.ldap.parse({ bindDn: 'a', password: 'pw', bindDegradedAbove: '300ms' }).bindDegradedAbove).toBe(300);
    const issues = (v: unknown) => (KIND_OPTIONS.ldap.safeParse(v).error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({})).toEqual(['bindDn: expected bindDn (a bind), search, or both']);
    expect(issues({ bindDn: 'a' })).toEqual(['password: expected password (a secret name) with bindDn']);
    expect(issues({ password: 'pw', search: { baseDn: '' } })).toEqual(['bindDn: expected bindDn with password']);
    expect(issues({ search: { baseDn: '', filter: 'objectClass=*)(' } })).toEqual([
      'search.filter: expected an LDAP filter (RFC 4515) such as (&(objectClass=person)(uid=probe))',
    ]);
    expect(issues({ bindDn: 'a', password: 'not a name' })).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Runs that need no LDAP server: the socket side, with real sockets on loopback.

const peers: Peer[] = [];
afterAll(async () => {
  for (const p of peers) await p.close();
});

function probe(
  target: string,
  options: Record<string, unknown>,
  secrets: Record<string, string> = { pw: 'S3cret-probe-pw' },
  timeoutMs = 3000,
): Promise<ProbeResult> {
  return ldapProbe.run({ ...targetsOf('ldap', target), options: KIND_OPTIONS.ldap.parse(options), ...budget(timeoutMs), log: quietLog, secrets });
}

const bind = { bindDn: 'uid=probe,ou=people,dc=region,dc=test', password: 'pw' };

describe('ldap probe without a directory', () => {
  it('a closed port is refused in connect, with no later phase', async () => {
    const r = await probe(`ldap://127.0.0.1:${await closedPort()}`, bind);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect(r.phases).toEqual({});
    expect(r.info?.authCode).toBeUndefined();
  });

  it('a server that accepts but never answers the bind: timeout in bind, connect still timed', async () => {
    const p = await tcpPeer(() => undefined);
    peers.push(p);
    const start = performance.now();
    const r = await probe(`ldap://127.0.0.1:${p.port}`, bind, undefined, 600);
    expect(performance.now() - start).toBeLessThan(600 + BUSY_SLACK_MS);
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'timeout' });
    expect(r.phases.connect).toBeGreaterThan(0);
    expect(r.phases.bind).toBeUndefined();
  });

  it('a server that hangs up on the bind: the bind fails (reset or protocol), never auth', async () => {
    const p = await tcpPeer((s) => s.once('data', () => s.destroy()));
    peers.push(p);
    const r = await probe(`ldap://127.0.0.1:${p.port}`, bind);
    expect(r.failure?.phase).toBe('bind');
    expect(['reset', 'protocol']).toContain(r.failure?.reason);
    expect(r.failure?.message).not.toContain('S3cret-probe-pw');
  });

  it('refuses to send an empty password (an anonymous bind in disguise) and a missing secret', async () => {
    const port = await closedPort();
    const empty = await probe(`ldap://127.0.0.1:${port}`, bind, { pw: '' });
    expect(empty.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(empty.phases).toEqual({});
    const missing = await probe(`ldap://127.0.0.1:${port}`, bind, {});
    expect(missing.failure).toMatchObject({ phase: 'bind', reason: 'internal' });
  });
});

// ---------------------------------------------------------------------------------------------
// The password policy control (OpenLDAP's ppolicy overlay, 389-ds): what a directory attaches to
// its bind response says why it refused (or warns), and the probe reports that code. The bytes
// below are what slapd sends (checked against slapd with ppolicy in test/system/ldap-slapd.test.ts).

/** A password policy response control's value: warning [0] {timeBeforeExpiration [0] | grace [1]}, error [1]. */
function ppolicyValue(r: { expiry?: number; grace?: number; error?: number }): Buffer {
  const parts: Buffer[] = [];
  if (r.expiry !== undefined) parts.push(encode(0xa0, [encodeInteger(r.expiry, 0x80)]));
  if (r.grace !== undefined) parts.push(encode(0xa0, [encodeInteger(r.grace, 0x81)]));
  if (r.error !== undefined) parts.push(encodeInteger(r.error, 0x81));
  return encode(TAG.SEQUENCE, parts);
}

/** An LDAP server that answers every bind with `code` and, if given, a password policy response control. */
async function policyDirectory(code: number, value?: Buffer): Promise<Peer & { requests: Buffer[] }> {
  const requests: Buffer[] = [];
  const p = await tcpPeer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = readElement(buf);
        if (!r) return;
        buf = buf.subarray(r.end);
        const [id, op] = children(r.element.value);
        if (!id || !op) return void s.destroy();
        requests.push(r.element.value);
        if (op.tag !== 0x60) return void s.end();
        const controls = value === undefined ? [] : [encode(0xa0, [encode(TAG.SEQUENCE, [encodeString(PASSWORD_POLICY_OID), encodeString(value)])])];
        const result = encode(0x61, [encodeInteger(code, 0x0a), encodeString(''), encodeString(code === 0 ? '' : 'Invalid credentials')]);
        s.write(encode(TAG.SEQUENCE, [encodeInteger(decodeInteger(id.value)), result, ...controls]));
      }
    });
  });
  return Object.assign(p, { requests });
}

describe('password policy (ppolicy) response control', () => {
  it('decodes each warning and error, and nothing else', () => {
    expect(decodePasswordPolicy(ppolicyValue({}))).toEqual({});
    expect(decodePasswordPolicy(ppolicyValue({ error: 1 }))).toEqual({ error: 1 });
    expect(decodePasswordPolicy(ppolicyValue({ expiry: 86_400 * 3 }))).toEqual({ timeBeforeExpiration: 259_200 });
    expect(decodePasswordPolicy(ppolicyValue({ grace: 2, error: 0 }))).toEqual({ graceAuthNsRemaining: 2, error: 0 });
    // Wrong tags, trailing bytes, a negative or 5-byte integer, two errors, a truncated length.
    for (const bad of [
      Buffer.from([0x31, 0x00]),
      Buffer.concat([ppolicyValue({ error: 1 }), Buffer.from([0x00])]),
      Buffer.from([0x30, 0x03, 0x81, 0x01, 0xff]),
      Buffer.from([0x30, 0x07, 0x81, 0x05, 1, 2, 3, 4, 5]),
      Buffer.from([0x30, 0x06, 0x81, 0x01, 0x01, 0x81, 0x01, 0x02]),
      Buffer.from([0x30, 0x05, 0x81, 0x09, 0x01]),
      Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
      Buffer.alloc(100, 0x30),
    ])
      expect(decodePasswordPolicy(bad), bad.toString('hex')).toBeUndefined();
  });

  it('fuzz: 20,000 random and mutated control values decode or are refused, never throw', () => {
    const rng = prng(0x9e11c7);
    const seeds = [ppolicyValue({}), ppolicyValue({ error: 1 }), ppolicyValue({ expiry: 1_000_000 }), ppolicyValue({ grace: 3, error: 0 })];
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      let b: Buffer;
      if (rng.chance(0.5)) b = rng.bytes(rng.int(70));
      else {
        b = Buffer.from(rng.pick(seeds));
        for (let k = 1 + rng.int(3); k > 0; k--) b[rng.int(b.length)] = rng.int(256);
        if (rng.chance(0.2)) b = b.subarray(0, rng.int(b.length + 1));
      }
      const r = decodePasswordPolicy(b);
      if (r === undefined) continue;
      decoded++;
      for (const v of [r.error, r.graceAuthNsRemaining, r.timeBeforeExpiration]) if (v !== undefined) expect(v >= 0 && v <= 0x7fffffff).toBe(true);
    }
    expect(decoded).toBeGreaterThan(100);
  });

  it('a locked account (49 with accountLocked) is account_locked, not invalid_credentials; the control was sent, not critical', async () => {
    const p = await policyDirectory(49, ppolicyValue({ error: 1 }));
    peers.push(p);
    const r = await probe(`ldap://127.0.0.1:${p.port}`, bind);
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(r.failure?.message).toMatch(
      /^bind refused \(account_locked: the directory's password policy says accountLocked\): invalidCredentials \(49\): Invalid credentials$/,
    );
    expect(r.info?.authCode).toBe('account_locked');
    expect(LDAP_AUTH_CODES).toContain('account_locked');
    expect(p.requests[0]!.includes(Buffer.from(PASSWORD_POLICY_OID))).toBe(true);
    // Sent without the option: no control in the bind, and a bare 49 again.
    const plain = await probe(`ldap://127.0.0.1:${p.port}`, { ...bind, passwordPolicy: false });
    expect(plain.info?.authCode).toBe('invalid_credentials');
    expect(p.requests.at(-1)!.includes(Buffer.from(PASSWORD_POLICY_OID))).toBe(false);
  });

  it('an expired password (49 with passwordExpired) is password_expired', async () => {
    const p = await policyDirectory(49, ppolicyValue({ error: 0 }));
    peers.push(p);
    const r = await probe(`ldap://127.0.0.1:${p.port}`, bind);
    expect(r.info?.authCode).toBe('password_expired');
  });

  it('a bind accepted with changeAfterReset fails as must_change_password, and no search is made', async () => {
    const p = await policyDirectory(0, ppolicyValue({ error: 2 }));
    peers.push(p);
    const r = await probe(`ldap://127.0.0.1:${p.port}`, { ...bind, search: { baseDn: 'dc=region,dc=test' } });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'bind', reason: 'auth' });
    expect(r.failure?.message).toContain('bind accepted, but');
    expect(r.info?.authCode).toBe('must_change_password');
    expect(r.phases.search).toBeUndefined();
  });

  it('a warning keeps the check working, degraded (password_expiring) with the time or the grace logins left', async () => {
    const soon = await policyDirectory(0, ppolicyValue({ expiry: 2 * 86_400 + 3 * 3600 }));
    peers.push(soon);
    const r = await probe(`ldap://127.0.0.1:${soon.port}`, bind);
    expect(r.ok).toBe(true);
    expect(r.degraded).toEqual({ reason: 'password_expiring', message: expect.stringMatching(/expires in 2 d 3 h/) });
    expect(r.values?.ldap_password_expiry_seconds).toBe(183_600);
    const grace = await policyDirectory(0, ppolicyValue({ grace: 1 }));
    peers.push(grace);
    const g = await probe(`ldap://127.0.0.1:${grace.port}`, bind);
    expect(g.degraded?.reason).toBe('password_expiring');
    expect(g.degraded?.message).toMatch(/has expired: 1 grace login left/);
    expect(g.values?.ldap_grace_logins_remaining).toBe(1);
  });

  it('a malformed control is ignored: the bind result alone decides', async () => {
    const p = await policyDirectory(49, Buffer.from([0x30, 0x03, 0x81, 0x05, 0x01]));
    peers.push(p);
    const r = await probe(`ldap://127.0.0.1:${p.port}`, bind);
    expect(r.info?.authCode).toBe('invalid_credentials');
    const ok = await policyDirectory(0, Buffer.from('not ber'));
    peers.push(ok);
    expect((await probe(`ldap://127.0.0.1:${ok.port}`, bind)).ok).toBe(true);
  });
});
