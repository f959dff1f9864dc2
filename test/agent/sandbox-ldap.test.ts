// The sandbox directory's BER codec and filters: round trips, the limits a stream reader needs,
// and filters encoded by ldapts (the library the ldap probe uses) read back by the sandbox.
import { BerWriter, FilterParser } from 'ldapts';
import { describe, expect, it } from 'vitest';
import { BerError, children, decodeBoolean, decodeInteger, encode, encodeBoolean, encodeInteger, encodeString, readElement, TAG } from '../../sandbox/ber.js';
import { adDiagnostic, matchFilter, normalizeDn, parseFilter, sandboxEntries, type Entry } from '../../sandbox/ldap.js';
import { adReason } from '../../probes/ldap/probe.js';

const one = (b: Buffer) => {
  const r = readElement(b);
  if (!r) throw new Error('incomplete');
  expect(r.end).toBe(b.length);
  return r.element;
};

describe('sandbox BER codec', () => {
  it('integers round trip in the fewest octets, negative ones too', () => {
    for (const n of [0, 1, 127, 128, 255, 256, -1, -128, -129, 65535, 2_147_483_647, -2_147_483_648, 2 ** 40]) {
      const e = one(encodeInteger(n));
      expect(e.tag).toBe(TAG.INTEGER);
      expect(decodeInteger(e.value), String(n)).toBe(n);
    }
    expect(encodeInteger(127)).toEqual(Buffer.from([0x02, 0x01, 0x7f]));
    expect(encodeInteger(128)).toEqual(Buffer.from([0x02, 0x02, 0x00, 0x80]));
    expect(encodeInteger(-129)).toEqual(Buffer.from([0x02, 0x02, 0xff, 0x7f]));
    expect(one(encodeInteger(49, TAG.ENUMERATED))).toEqual({ tag: TAG.ENUMERATED, value: Buffer.from([49]) });
    expect(() => decodeInteger(Buffer.alloc(0))).toThrow(BerError);
    expect(() => decodeInteger(Buffer.alloc(7))).toThrow(BerError);
  });

  it('strings, booleans and nested sequences round trip; long lengths use the long form', () => {
    expect(one(encodeString('dc=region,dc=sandbox')).value.toString()).toBe('dc=region,dc=sandbox');
    expect(decodeBoolean(one(encodeBoolean(true)).value)).toBe(true);
    expect(decodeBoolean(one(encodeBoolean(false)).value)).toBe(false);
    for (const size of [0, 127, 128, 255, 256, 70_000]) {
      const s = 'x'.repeat(size);
      const b = encodeString(s);
      expect(one(b).value.toString(), String(size)).toBe(s);
      expect(b[1], String(size)).toBe(size < 128 ? size : 0x80 | Math.ceil(Math.log2(size + 1) / 8));
    }
    const seq = encode(TAG.SEQUENCE, [encodeInteger(7), encode(0x60, [encodeInteger(3), encodeString('uid=a'), encodeString('pw', 0x80)])]);
    const [id, op] = children(one(seq).value);
    expect(decodeInteger(id!.value)).toBe(7);
    expect(op!.tag).toBe(0x60);
    expect(children(op!.value).map((e) => e.tag)).toEqual([0x02, 0x04, 0x80]);
  });

  it('a stream reader: undefined until complete, then the element and where the next begins', () => {
    const a = encodeString('first');
    const b = encodeString('y'.repeat(300));
    const both = Buffer.concat([a, b]);
    for (let cut = 0; cut < a.length; cut++) expect(readElement(both.subarray(0, cut))).toBeUndefined();
    const r = readElement(both);
    expect(r?.end).toBe(a.length);
    expect(readElement(both, a.length, 300)?.element.value.length).toBe(300);
    // Not yet all the length octets, or not yet all the content.
    expect(readElement(b.subarray(0, 3))).toBeUndefined();
    expect(readElement(b.subarray(0, 100))).toBeUndefined();
  });

  it('refuses what can never be valid: indefinite length, high tag numbers, huge lengths, over the limit, bad splits', () => {
    expect(() => readElement(Buffer.from([0x30, 0x80, 0, 0]))).toThrow(/indefinite/);
    expect(() => readElement(Buffer.from([0x1f, 0x01, 0]))).toThrow(/high-tag/);
    expect(() => readElement(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]))).toThrow(/too long/);
    expect(() => readElement(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), 0, 65536)).toThrow(/larger than the limit/);
    expect(() => readElement(encodeString('y'.repeat(300)), 0, 299)).toThrow(BerError);
    expect(() => children(Buffer.from([0x04, 0x05, 0x61]))).toThrow(BerError);
    expect(() => children(Buffer.from([0x04, 0x01]))).toThrow(/truncated/);
  });
});

describe('sandbox directory filters (encoded by ldapts)', () => {
  const entries = sandboxEntries('svc-vakt-probe', 'secret');
  const run = (filter: string): string[] => {
    const w = new BerWriter();
    FilterParser.parseString(filter).write(w);
    const f = parseFilter(one(w.buffer), 0);
    return entries.filter((e: Entry) => matchFilter(f, e)).map((e) => e.dn.split(',')[0] as string);
  };

  it('equality, presence, substrings, and/or/not, ordering; without regard to case', () => {
    expect(run('(uid=svc-vakt-probe)')).toEqual(['uid=svc-vakt-probe']);
    expect(run('(UID=SVC-VAKT-PROBE)')).toEqual(['uid=svc-vakt-probe']);
    expect(run('(objectClass=organizationalUnit)')).toEqual(['ou=people', 'ou=groups']);
    expect(run('(objectClass=*)')).toHaveLength(entries.length);
    expect(run('(title=*)')).toHaveLength(6);
    expect(run('(cn=*berg)')).toEqual(['uid=anna.berg', 'uid=lars.nyberg']);
    expect(run('(cn=K*n*m)')).toEqual(['uid=karin.holm']);
    expect(run('(&(objectClass=person)(title=Physician))')).toEqual(['uid=erik.lund', 'uid=karin.holm']);
    expect(run('(|(uid=maja.ek)(cn=ward-7))')).toEqual(['uid=maja.ek', 'cn=ward-7']);
    expect(run('(&(objectClass=person)(!(title=Physician)))')).toHaveLength(4);
    expect(run('(&(objectClass=person)(uid>=m))')).toEqual(['uid=svc-vakt-probe', 'uid=maja.ek']);
    // The probe account's password is never matched or returned by a filter on it.
    expect(run('(member=uid=svc-vakt-probe,ou=people,dc=region,dc=sandbox)')).toEqual(['cn=vakt-probes']);
  });

  it('DNs compare without regard to case or spaces; the AD diagnostic decodes as the probe does', () => {
    expect(normalizeDn('UID=svc-vakt-probe, OU=People ,DC=region,DC=sandbox')).toBe('uid=svc-vakt-probe,ou=people,dc=region,dc=sandbox');
    expect(adReason(adDiagnostic('775'))).toBe('account_locked');
    expect(adReason(adDiagnostic('52e'))).toBe('invalid_credentials');
    expect(adDiagnostic('52e')).toBe('80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 52e, v3839');
  });
});
