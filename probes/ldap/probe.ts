// The ldap probe: a directory login (Active Directory, OpenLDAP) over ldap://, ldaps:// or
// StartTLS, with a simple bind by DN and password and an optional search that must find a
// minimum number of entries. A slow domain controller shows as a fast connect and a slow bind,
// so every step is its own phase.
//
// How the phases are measured: the probe opens the TCP connection itself (and, for ldaps://,
// does the TLS handshake itself), timing each exactly as the tcp probe does, and only then hands
// the established socket to ldapts through its `createConnection` option. ldapts sees an open
// socket and sends its first request at once, so `bind` and `search` are the library's own
// request-to-response round trips and contain no connect or handshake time. StartTLS goes
// through ldapts (`startTLS()`: the extended request, then the handshake on the same socket);
// its `tls` phase is both, from sending the request to the end of the handshake.
import type { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { Client, ResultCodeError } from 'ldapts';
import { PHASES, type LdapOptions, type LdapTarget } from './options.js';
import { describeSeconds, PASSWORD_POLICY_ERRORS, PasswordPolicyControl } from './ppolicy.js';
import { classifyError, describeError, fail, ProbeAbortError, raceAbort } from '../kit/net.js';
import { failed, resolveThenTlsFiles, Timeline } from '../kit/step.js';
import { runRedactor } from '../kit/redact.js';
import { certFacts, connectionResult, connectSocket, handshake, tlsConnectOptions } from '../kit/tls.js';
import type { FailureReason, Probe, ProbeContext, ProbeFailure, ProbeInfo, ProbeResult } from '../types.js';

type Phase = (typeof PHASES)[number];

/** How long the probe waits for its unbind to be written before it destroys the socket anyway. */
const UNBIND_WAIT_MS = 200;

export const ldapProbe: Probe<LdapOptions, LdapTarget> = {
  phases: PHASES,
  async run(ctx: ProbeContext<LdapOptions, LdapTarget>): Promise<ProbeResult> {
    const { options: o } = ctx;
    const phases: Record<string, number> = {};
    const url = ctx.target;

    let password: string | undefined;
    if (o.bindDn !== undefined) {
      password = o.password === undefined ? undefined : ctx.secrets[o.password];
      // The loader refuses a password that names no secret; this guards direct calls.
      if (password === undefined) return fail(phases, 'bind', 'internal', `the check has no secret named "${o.password ?? ''}" for the bind password`);
      // An empty password is an "unauthenticated bind" (RFC 4513 5.1.2), which many servers
      // accept as anonymous: it would prove nothing, so it is refused here, not sent.
      if (password === '')
        return fail(phases, 'bind', 'auth', `the secret "${o.password ?? ''}" is empty; an empty password would be an unauthenticated (anonymous) bind`);
    }

    const values: NonNullable<ProbeResult['values']> = {};
    let info: ProbeInfo = {};
    const setup = await resolveThenTlsFiles(url.host, o.ipFamily, url.secure || o.startTls ? { options: o.tls } : undefined, ctx.budget.signal, {
      phases,
      values,
      info,
    });
    if (failed(setup)) return setup.result;
    const { address, family, tls } = setup;

    // The conversation ends a little before the runner's deadline (as tcp attempts do), so a
    // bind that hangs is reported as a timeout of the bind, with connect and tls still timed.
    const endAt = ctx.budget.end();
    const conversation = ctx.budget.part('run ran out of time', endAt);
    const signal = conversation.signal;

    const line = new Timeline(phases, 'connect');
    let raw: Socket | undefined;
    let secure: TLSSocket | undefined;
    let client: Client | undefined;
    let failure: ProbeFailure | undefined;
    let entries: number | undefined;
    let earliestExpiry: number | undefined;
    // Sent with the bind (passwordPolicy, default on): the directory's answer says why it refused.
    const ppolicy = o.passwordPolicy && o.bindDn !== undefined ? new PasswordPolicyControl() : undefined;
    try {
      raw = await connectSocket({ address, port: url.port, family }, Number.POSITIVE_INFINITY, signal, line);

      if (url.secure && tls) {
        const socket = raw;
        secure = await line.time('tls', () => handshake(socket, tls, signal));
        const facts = certFacts(secure);
        info = { ...info, ...facts.info };
        earliestExpiry = facts.earliestExpiry;
      }

      // ldapts gets the open socket. Its per-operation timeout is a backstop at the run's
      // deadline (the probe's own end above comes first and destroys the socket); its
      // connectTimeout is set likewise but never arms, as the socket is already connected.
      const backstop = Math.max(1, Math.ceil(ctx.budget.deadline - performance.now()));
      const established: Socket = secure ?? raw;
      client = new Client({
        url: `ldap://${family === 6 ? `[${address}]` : address}:${url.port}`,
        timeout: backstop,
        connectTimeout: backstop,
        createConnection: () => established,
        // Only used by startTLS(): the upgraded socket is kept for its certificate facts.
        createSecureConnection: ((opts: ConnectionOptions) => {
          secure = tlsConnect(opts);
          return secure;
        }) as ClientCreateSecureConnection,
      });

      if (o.startTls && !url.secure && tls) {
        const c = client;
        await line.time('tls', () => raceAbort(c.startTLS(tlsConnectOptions(tls)), signal));
        if (secure) {
          const facts = certFacts(secure);
          info = { ...info, ...facts.info };
          earliestExpiry = facts.earliestExpiry;
        }
      }

      if (o.bindDn !== undefined && password !== undefined) {
        const [c, dn, pw] = [client, o.bindDn, password];
        await line.time('bind', () => raceAbort(c.bind(dn, pw, ppolicy ? [ppolicy] : undefined), signal));
        // Accepted, but the session may do nothing but change the password (pwdMustChange after
        // a reset): the login works for no one until it is changed.
        const refused = policyRefusal(ppolicy);
        if (refused) {
          failure = { phase: 'bind', reason: 'auth', message: `bind accepted, but ${refused.message}` };
          info.authCode = refused.authCode;
        }
      }

      if (o.search && !failure) {
        const [s, c] = [o.search, client];
        // The server is asked for at most minEntries entries (at least one): enough to judge,
        // and a search over a large directory never pulls it all.
        const r = await line.time('search', () =>
          raceAbort(c.search(s.baseDn, { scope: s.scope, filter: s.filter, attributes: s.attributes, sizeLimit: Math.max(1, s.minEntries) }), signal),
        );
        entries = r.searchEntries.length;
        values.ldap_search_entries = entries;
        if (entries < s.minEntries) {
          failure = {
            phase: 'search',
            reason: 'assertion',
            message: `search under "${s.baseDn}" for ${s.filter} (scope ${s.scope}) found ${entries} entries, expected at least ${s.minEntries}`,
          };
        }
      }
    } catch (err) {
      // A result code is the server's answer: the phase ran to its end and is timed.
      if (isResultError(err)) line.stop();
      const phase = line.current as Phase;
      const c = withPolicy(classifyLdap(err, phase, raw?.errored ?? secure?.errored ?? undefined), phase === 'bind' ? ppolicy : undefined);
      failure = { phase, reason: c.reason, message: runRedactor(ctx.secrets).scrub(c.message) };
      if (c.authCode !== undefined) info.authCode = c.authCode;
    } finally {
      conversation.done();
      await close(client, raw, secure, signal.aborted);
    }

    const warning = policyWarning(ppolicy, values);
    const result = connectionResult({ phases, values, info, failure, slow: () => slowPhase(phases, o), tls, earliestExpiry });
    // The probe account's password about to expire, or expired and living on grace logins: the
    // check keeps working, for now; the slowness of a phase, if any, is said first.
    if (result.ok && warning && result.degraded?.reason !== 'slow') result.degraded = { reason: 'password_expiring', message: warning };
    return result;
  },
};

/** The refusal the password policy response names (locked, expired, must change), or undefined. */
function policyRefusal(ppolicy: PasswordPolicyControl | undefined): { authCode: string; why: string; message: string } | undefined {
  const error = ppolicy?.response?.error;
  const known = error === undefined ? undefined : PASSWORD_POLICY_ERRORS[error];
  if (!known?.authCode) return undefined;
  const why = `the directory's password policy says ${known.name}`;
  return { authCode: known.authCode, why, message: `${why} (${known.authCode})` };
}

/** A refused bind's classification, made precise by the password policy response when it names why. */
function withPolicy(c: LdapClassification, ppolicy: PasswordPolicyControl | undefined): LdapClassification {
  const refused = policyRefusal(ppolicy);
  if (!refused || c.reason !== 'auth') return c;
  // "bind refused (account_locked: the directory's password policy says accountLocked): invalidCredentials (49)"
  const what = c.message.replace(/^bind refused \([a-z_]+\): /, '');
  return { reason: 'auth', authCode: refused.authCode, message: `bind refused (${refused.authCode}: ${refused.why}): ${what}` };
}

/** The password policy's warning as a message, its numbers in `values`; undefined when none came. */
function policyWarning(ppolicy: PasswordPolicyControl | undefined, values: NonNullable<ProbeResult['values']>): string | undefined {
  const r = ppolicy?.response;
  if (r?.timeBeforeExpiration !== undefined) {
    values.ldap_password_expiry_seconds = r.timeBeforeExpiration;
    return `the probe account's password expires in ${describeSeconds(r.timeBeforeExpiration)} (the directory's password policy warns)`;
  }
  if (r?.graceAuthNsRemaining !== undefined) {
    values.ldap_grace_logins_remaining = r.graceAuthNsRemaining;
    return `the probe account's password has expired: ${r.graceAuthNsRemaining} grace login${r.graceAuthNsRemaining === 1 ? '' : 's'} left (the directory's password policy)`;
  }
  return undefined;
}

/** tls.connect's overloads; startTLS() calls it with one options object only. */
type ClientCreateSecureConnection = NonNullable<ConstructorParameters<typeof Client>[0]['createSecureConnection']>;

/**
 * Always ends the session: an unbind when the connection is still usable (not after an abort),
 * waited for at most UNBIND_WAIT_MS, then every socket destroyed whatever happened.
 */
async function close(client: Client | undefined, raw: Socket | undefined, secure: TLSSocket | undefined, aborted: boolean): Promise<void> {
  if (client?.isConnected && !aborted) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([client.unbind().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, UNBIND_WAIT_MS)))]);
    clearTimeout(timer);
  }
  secure?.destroy();
  raw?.destroy();
}

const PHASE_LIMITS = [
  ['connect', 'connectDegradedAbove'],
  ['tls', 'tlsDegradedAbove'],
  ['bind', 'bindDegradedAbove'],
  ['search', 'searchDegradedAbove'],
] as const;

/** The first phase over its own limit, as a message naming it; undefined when none is. */
export function slowPhase(phases: Readonly<Record<string, number>>, o: Pick<LdapOptions, (typeof PHASE_LIMITS)[number][1]>): string | undefined {
  for (const [p, key] of PHASE_LIMITS) {
    const limit = o[key];
    const took = phases[p];
    if (limit !== undefined && took !== undefined && took * 1000 > limit) return `${p} took ${fmt(took)}, above ${key} ${fmt(limit / 1000)}`;
  }
  return undefined;
}

function fmt(seconds: number): string {
  return seconds < 1 ? `${Math.round(seconds * 1000)}ms` : `${seconds.toFixed(2)}s`;
}

// ---------------------------------------------------------------------------------------------
// Classification: by result code (and, for code 49, Active Directory's `data` sub-code), never
// by the text of a message.

/** LDAP result codes (RFC 4511 4.1.9) by number, for messages. */
const RESULT_NAMES: Readonly<Record<number, string>> = {
  1: 'operationsError',
  2: 'protocolError',
  3: 'timeLimitExceeded',
  4: 'sizeLimitExceeded',
  7: 'authMethodNotSupported',
  8: 'strongerAuthRequired',
  10: 'referral',
  11: 'adminLimitExceeded',
  12: 'unavailableCriticalExtension',
  13: 'confidentialityRequired',
  14: 'saslBindInProgress',
  16: 'noSuchAttribute',
  17: 'undefinedAttributeType',
  18: 'inappropriateMatching',
  19: 'constraintViolation',
  20: 'attributeOrValueExists',
  21: 'invalidAttributeSyntax',
  32: 'noSuchObject',
  33: 'aliasProblem',
  34: 'invalidDNSyntax',
  36: 'aliasDereferencingProblem',
  48: 'inappropriateAuthentication',
  49: 'invalidCredentials',
  50: 'insufficientAccessRights',
  51: 'busy',
  52: 'unavailable',
  53: 'unwillingToPerform',
  54: 'loopDetect',
  64: 'namingViolation',
  65: 'objectClassViolation',
  80: 'other',
};

/**
 * Active Directory's reasons for a refused bind: the hexadecimal `data` code in the diagnostic
 * message of result 49 ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext
 * error, data 775, v4563"), as bounded labels.
 */
export const AD_DATA_CODES: Readonly<Record<string, string>> = {
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

/** Every authCode the ldap probe can report (a closed set: it becomes a label). */
export const LDAP_AUTH_CODES = [
  ...new Set([
    ...Object.values(AD_DATA_CODES),
    'invalid_credentials',
    'insufficient_access',
    'inappropriate_auth',
    'strong_auth_required',
    'confidentiality_required',
    'auth_method_not_supported',
  ]),
];

/**
 * The AD reason in a bind diagnostic, or undefined when it carries no known `data` code
 * (plain LDAP servers send none; an unknown code is not turned into a label).
 */
export function adReason(diagnostic: string): string | undefined {
  const m = /\bdata ([0-9a-f]{1,8})\b/i.exec(diagnostic);
  return m ? AD_DATA_CODES[(m[1] as string).toLowerCase()] : undefined;
}

export interface LdapClassification {
  reason: FailureReason;
  authCode?: string;
  message: string;
}

/** Result codes that refuse the login itself (besides 49), with their authCode. */
const AUTH_RESULTS: Readonly<Record<number, string>> = {
  7: 'auth_method_not_supported',
  8: 'strong_auth_required',
  13: 'confidentiality_required',
  48: 'inappropriate_auth',
  50: 'insufficient_access',
};

/**
 * Maps an LDAP result (from the server) or a socket/library error to a failure reason, by result
 * code, never by message text. `socketError` is the error that destroyed the connection, if
 * any: ldapts reports a broken connection with an error of its own that carries no code.
 */
export function classifyLdap(err: unknown, phase: string, socketError?: Error): LdapClassification {
  if (isResultError(err)) return classifyResult(err.code, diagnosticOf(err), phase);
  if (err instanceof ProbeAbortError) return { reason: 'timeout', message: `${phase} did not complete before the run's deadline` };
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return { reason: classifyError(err), message: describeError(err) };
  if (socketError) return { reason: classifyError(socketError), message: describeError(socketError) };
  return { reason: 'protocol', message: describeError(err) };
}

/** The classification of an LDAP result code answered in `phase`, with the server's diagnostic. */
export function classifyResult(code: number, diagnostic: string, phase: string): LdapClassification {
  const name = RESULT_NAMES[code] ?? 'result';
  const what = `${name} (${code})${diagnostic ? `: ${diagnostic.slice(0, 200)}` : ''}`;
  if (phase === 'tls') return { reason: 'tls_handshake', message: `StartTLS refused: ${what}` };
  if (code === 49) {
    const authCode = adReason(diagnostic) ?? 'invalid_credentials';
    return { reason: 'auth', authCode, message: `${phase} refused (${authCode}): ${what}` };
  }
  const authCode = AUTH_RESULTS[code];
  if (authCode !== undefined) return { reason: 'auth', authCode, message: `${phase} refused (${authCode}): ${what}` };
  if (phase === 'search' && (code === 32 || code === 34 || code === 10)) return { reason: 'assertion', message: `search base not found: ${what}` };
  if (phase === 'bind' && (code === 32 || code === 34))
    return { reason: 'auth', authCode: 'user_not_found', message: `bind refused (user_not_found): ${what}` };
  if (code === 3) return { reason: 'timeout', message: `${phase}: server time limit: ${what}` };
  return { reason: 'protocol', message: `${phase}: ${what}` };
}

function isResultError(err: unknown): err is ResultCodeError {
  return err instanceof ResultCodeError && typeof err.code === 'number';
}

/** The server's diagnostic message: ldapts appends " Code: 0x.." to it. */
function diagnosticOf(err: ResultCodeError): string {
  return err.message.replace(/\s*Code: 0x[0-9a-f]+$/i, '').trim();
}
