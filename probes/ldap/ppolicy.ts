// The password policy controls (draft-behera-ldap-password-policy-10, 1.3.6.1.4.1.42.2.27.8.5.1):
// OpenLDAP (the ppolicy overlay) and 389-ds say why they refuse a bind — the account is locked,
// the password expired, it must be changed after a reset — only to a client that sent this
// control with the bind; without it a locked account is a bare invalidCredentials (49), and an
// operator would rotate a password that is not wrong. The probe sends the request control (no
// value, not critical: a server that does not know it ignores it, as Active Directory does) and
// reads the response control the server attaches to its bind response, success or refusal.
//
// ldapts hands a response control of a type it does not know to the request control of the same
// type (ControlParser), so the control sent is the one that receives the answer; its value is
// decoded here with bounds of its own (a few dozen bytes; anything else is ignored as malformed).
import { Control, type BerReader } from 'ldapts';

export const PASSWORD_POLICY_OID = '1.3.6.1.4.1.42.2.27.8.5.1';

/** The response: at most one warning and at most one error. */
export interface PasswordPolicyResponse {
  /** Seconds until the password expires (the server's pwdExpireWarning period has begun). */
  timeBeforeExpiration?: number;
  /** The password has expired; binds left before the account refuses them (grace logins). */
  graceAuthNsRemaining?: number;
  /** The error, by its enumeration value (PASSWORD_POLICY_ERRORS). */
  error?: number;
}

/** The errors a bind can carry, by enumeration value, with the authCode they are reported as. */
export const PASSWORD_POLICY_ERRORS: Readonly<Record<number, { name: string; authCode?: string }>> = {
  0: { name: 'passwordExpired', authCode: 'password_expired' },
  1: { name: 'accountLocked', authCode: 'account_locked' },
  2: { name: 'changeAfterReset', authCode: 'must_change_password' },
  3: { name: 'passwordModNotAllowed' },
  4: { name: 'mustSupplyOldPassword' },
  5: { name: 'insufficientPasswordQuality' },
  6: { name: 'passwordTooShort' },
  7: { name: 'passwordTooYoung' },
  8: { name: 'passwordInHistory' },
};

/** The largest control value decoded: the biggest valid one is about 20 bytes. */
const MAX_VALUE_BYTES = 64;

/** The request control; after the bind, `response` holds what the server answered, if anything. */
export class PasswordPolicyControl extends Control {
  /** The server's response control, decoded; undefined when none came (or it was malformed). */
  response: PasswordPolicyResponse | undefined;
  /** A response control came but could not be decoded. */
  malformed = false;

  constructor() {
    super(PASSWORD_POLICY_OID, { critical: false });
  }

  protected override parseControl(reader: BerReader): void {
    const value = reader.remainingBuffer;
    const r = decodePasswordPolicy(value);
    if (r === undefined) this.malformed = true;
    else this.response = r;
  }
}

/**
 * Decodes a PasswordPolicyResponseValue:
 *   SEQUENCE { warning [0] CHOICE { timeBeforeExpiration [0] INTEGER, graceAuthNsRemaining [1] INTEGER } OPTIONAL,
 *              error [1] ENUMERATED OPTIONAL }
 * Undefined for anything else (wrong tags, lengths past the end, integers over 4 bytes or negative).
 */
export function decodePasswordPolicy(value: Uint8Array): PasswordPolicyResponse | undefined {
  if (value.length > MAX_VALUE_BYTES) return undefined;
  const top = element(value, 0);
  if (!top || top.tag !== 0x30 || top.end !== value.length) return undefined;
  const out: PasswordPolicyResponse = {};
  let at = top.start;
  while (at < top.end) {
    const e = element(value, at, top.end);
    if (!e) return undefined;
    if (e.tag === 0xa0 && out.timeBeforeExpiration === undefined && out.graceAuthNsRemaining === undefined && out.error === undefined) {
      const w = element(value, e.start, e.end);
      if (!w || w.end !== e.end) return undefined;
      const n = unsigned(value, w.start, w.end);
      if (n === undefined) return undefined;
      if (w.tag === 0x80) out.timeBeforeExpiration = n;
      else if (w.tag === 0x81) out.graceAuthNsRemaining = n;
      else return undefined;
    } else if (e.tag === 0x81 && out.error === undefined) {
      const n = unsigned(value, e.start, e.end);
      if (n === undefined) return undefined;
      out.error = n;
    } else return undefined;
    at = e.end;
  }
  return out;
}

/** One BER element at `at`: its tag and the bounds of its contents (definite lengths of up to 2 bytes only). */
function element(buf: Uint8Array, at: number, limit = buf.length): { tag: number; start: number; end: number } | undefined {
  if (at + 2 > limit) return undefined;
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    if (bytes === 0 || bytes > 2 || start + bytes > limit) return undefined;
    len = 0;
    for (let i = 0; i < bytes; i++) len = len * 256 + buf[start + i]!;
    start += bytes;
  }
  const end = start + len;
  return end > limit ? undefined : { tag, start, end };
}

/** A non-negative INTEGER or ENUMERATED of 1 to 4 content bytes. */
function unsigned(buf: Uint8Array, start: number, end: number): number | undefined {
  const n = end - start;
  if (n < 1 || n > 4 || buf[start]! & 0x80) return undefined;
  let v = 0;
  for (let i = start; i < end; i++) v = v * 256 + buf[i]!;
  return v;
}

/** "2 d 3 h", "5 h 10 min", "40 s": how long until a password expires, for a message. */
export function describeSeconds(s: number): string {
  if (s >= 86_400) return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min`;
  return `${s} s`;
}
