// The oidc probe: an OAuth 2.0 / OpenID Connect login as a machine client does it. The token
// endpoint comes from the issuer's discovery document (or is the target itself); a
// client_credentials or password grant is sent; the token response must carry access_token,
// token_type and expires_in; optionally a protected resource (or userinfo) is called with the
// token. A refused login is reason "auth" with the OAuth error as a bounded code (info.authCode,
// exported as vakt_auth_error_info{code}). Client secret, password and tokens never reach a
// message: the server's own text (error_description) is scrubbed of them before it is quoted.
import { Agent, buildConnector, request } from 'undici';
import { PHASES, type OidcOptions } from './options.js';
import { parseJsonObject } from '../kit/json.js';
import { closePool, describeError, failed, now, readBounded, reasonAfter } from '../kit/net.js';
import type { Budget } from '../kit/budget.js';
import { tlsFilesStep } from '../kit/step.js';
import type { WebTarget } from '../kit/target.js';
import { Redactor } from '../kit/redact.js';
import { connectionPhases, expiryVerdict, setupPhase, timedConnector, tlsFileOptions, type ConnTimes } from '../kit/tls.js';
import type { FailureReason, Probe, ProbeContext, ProbeInfo, ProbeResult } from '../types.js';

type Phase = (typeof PHASES)[number];
type Exchange = 'discovery' | 'token' | 'resource';

/**
 * OAuth error codes exported as authCode: RFC 6749 5.2 (token endpoint) and 4.1.2.1
 * (access_denied, server_error, temporarily_unavailable), RFC 6750 3.1 (protected resource:
 * invalid_token, insufficient_scope). Any other value is "other", so the label stays bounded.
 */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'access_denied',
  'server_error',
  'temporarily_unavailable',
  'invalid_token',
  'insufficient_scope',
] as const;
export type OAuthErrorCode = (typeof OAUTH_ERROR_CODES)[number] | 'other';

function authCodeOf(error: unknown): OAuthErrorCode {
  return typeof error === 'string' && (OAUTH_ERROR_CODES as readonly string[]).includes(error) ? (error as OAuthErrorCode) : 'other';
}

class RunFailure extends Error {
  constructor(
    readonly phase: Phase,
    readonly reason: FailureReason,
    message: string,
    readonly authCode?: OAuthErrorCode,
  ) {
    super(message);
  }
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** What a run shares between its exchanges. */
interface Run {
  o: OidcOptions;
  signal: AbortSignal;
  connector: ReturnType<typeof buildConnector>;
  scrubber: Redactor;
  phases: Partial<Record<Phase, number>>;
  /** The token request's connection: its TLS facts are the run's. */
  tokenConn?: ConnTimes;
}

export const oidcProbe: Probe<OidcOptions, WebTarget> = {
  phases: PHASES,
  async run(ctx: ProbeContext<OidcOptions, WebTarget>): Promise<ProbeResult> {
    const o = ctx.options;
    // Credentials and tokens of any length: they are the run's own.
    const scrubber = new Redactor(1);
    // Every resolved secret of the check, not only the two used: the server may echo anything.
    for (const v of Object.values(ctx.secrets)) scrubber.add(v);
    const state: Pick<Run, 'phases' | 'tokenConn'> = { phases: {} };
    const values: NonNullable<ProbeResult['values']> = {};
    const tlsFiles = await tlsFilesStep({ phases: state.phases, signal: ctx.budget.signal }, () => tlsFileOptions(o.tls));
    if (failed(tlsFiles)) return tlsFiles.result;
    let failure: RunFailure | undefined;
    try {
      const run: Run = Object.assign(state, { o, signal: ctx.budget.signal, connector: connector(o, tlsFiles, ctx.budget), scrubber });
      const { tokenUrl, userinfo } = o.discovery ? await discover(run, ctx.target.href) : { tokenUrl: new URL(ctx.target.href), userinfo: undefined };
      const token = await requestToken(run, ctx, tokenUrl, values);
      if (o.resource) await callResource(run, o.resource.url === 'userinfo' ? (userinfo as URL) : new URL(o.resource.url), token);
    } catch (err) {
      if (err instanceof RunFailure) failure = err;
      else throw err;
    }
    const phases: Record<string, number> = {};
    for (const p of PHASES) if (state.phases[p] !== undefined) phases[p] = state.phases[p];
    const result: ProbeResult = { ok: failure === undefined, phases, values };
    const tls = state.tokenConn?.tls;
    const info: ProbeInfo = { ...tls?.info };
    if (tls?.earliestExpiry !== undefined) values.ssl_earliest_cert_expiry = tls.earliestExpiry;
    if (failure) {
      result.failure = { phase: failure.phase, reason: failure.reason, message: failure.message };
      if (failure.authCode !== undefined) info.authCode = failure.authCode;
    } else if (tls?.earliestExpiry !== undefined) {
      const degraded = expiryVerdict(tls.earliestExpiry, o.tls?.expiryWarning, 'token endpoint certificate');
      if (degraded) result.degraded = degraded;
    }
    if (Object.keys(info).length > 0) result.info = info;
    return result;
  },
};

function connector(o: OidcOptions, tls: Awaited<ReturnType<typeof tlsFileOptions>>, budget: Budget): ReturnType<typeof buildConnector> {
  return buildConnector({
    ...tls,
    // Cold handshakes every run: no TLS session resumption.
    maxCachedSessions: 0,
    // undici gives up on a connect after 10 s by default; a connect may take the whole run instead.
    timeout: Math.max(1, Math.ceil(budget.left())),
    ...(o.ipFamily === 'ip4' ? { family: 4 } : o.ipFamily === 'ip6' ? { family: 6 } : {}),
  });
}

/** GET the discovery document; returns the token endpoint (and userinfo, when the resource needs it). */
async function discover(run: Run, target: string): Promise<{ tokenUrl: URL; userinfo: URL | undefined }> {
  const base = new URL(target);
  const url = /\/\.well-known\/(openid-configuration|oauth-authorization-server)$/.test(base.pathname)
    ? base
    : new URL(`${base.origin}${base.pathname.replace(/\/+$/, '')}/.well-known/openid-configuration`);
  const started = now();
  const reply = await exchange(run, 'discovery', url, 'GET', { accept: 'application/json' });
  run.phases.discovery = now() - started;
  if (reply.status < 200 || reply.status > 299) {
    throw new RunFailure(
      'discovery',
      'http_status',
      `${url.pathname} answered status ${reply.status}, expected 2xx${reply.status === 404 ? ' (is the target the token endpoint? then set discovery: false)' : ''}`,
    );
  }
  const doc = await jsonObject(run, 'discovery', 'the discovery document', reply.text);
  if (!doc) throw new RunFailure('discovery', 'protocol', 'the discovery document is not a JSON object');
  const e = run.o.expect;
  if (e.issuer !== undefined && doc.issuer !== e.issuer) {
    throw new RunFailure(
      'discovery',
      'assertion',
      `the discovery document's issuer is ${typeof doc.issuer === 'string' ? JSON.stringify(serverText(doc.issuer, run, 120)) : 'missing'}, expected ${JSON.stringify(e.issuer)}`,
    );
  }
  const tokenUrl = endpoint(doc.token_endpoint, url);
  if (!tokenUrl)
    throw new RunFailure('discovery', 'protocol', 'token_endpoint is missing, not an http(s) URL, or http:// while the document came over https://');
  let userinfo: URL | undefined;
  if (run.o.resource?.url === 'userinfo') {
    userinfo = endpoint(doc.userinfo_endpoint, url);
    if (!userinfo)
      throw new RunFailure(
        'discovery',
        'assertion',
        'userinfo_endpoint (resource.url: userinfo) is missing, not an http(s) URL, or http:// while the document came over https://',
      );
  }
  return { tokenUrl, userinfo };
}

/** An endpoint from the discovery document; credentials are never sent to a downgraded (http://) URL. */
function endpoint(v: unknown, discoveryUrl: URL): URL | undefined {
  if (typeof v !== 'string' || !URL.canParse(v)) return undefined;
  const u = new URL(v);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  if (discoveryUrl.protocol === 'https:' && u.protocol !== 'https:') return undefined;
  return u;
}

async function requestToken(run: Run, ctx: ProbeContext<OidcOptions>, url: URL, values: NonNullable<ProbeResult['values']>): Promise<string> {
  const o = run.o;
  const secret = (key: 'clientSecret' | 'password', name: string | undefined): string => {
    const v = name === undefined ? undefined : ctx.secrets[name];
    if (v === undefined) throw new RunFailure('token', 'internal', `the secret named by ${key} is not among the check's secrets`);
    return v;
  };
  const form = new URLSearchParams({ grant_type: o.grant });
  if (o.grant === 'password') {
    form.set('username', o.username);
    form.set('password', secret('password', o.password));
  }
  if (o.scope !== undefined) form.set('scope', o.scope);
  for (const [k, v] of Object.entries(o.params ?? {})) form.set(k, v);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const auth = o.clientAuth ?? (o.clientSecret !== undefined ? 'basic' : 'none');
  if (auth === 'basic') {
    // RFC 6749 2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
    const enc = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);
    const basic = Buffer.from(`${enc(o.clientId)}:${enc(secret('clientSecret', o.clientSecret))}`).toString('base64');
    run.scrubber.add(basic);
    headers.authorization = `Basic ${basic}`;
  } else {
    form.set('client_id', o.clientId);
    if (auth === 'body') form.set('client_secret', secret('clientSecret', o.clientSecret));
  }
  const reply = await exchange(run, 'token', url, 'POST', headers, form.toString());
  values.http_status_code = reply.status;
  const doc = await jsonObject(run, 'token', 'the token response', reply.text);
  const grant = `the ${o.grant} grant`;
  if (reply.status >= 500) {
    const code = doc && typeof doc.error === 'string' ? ` (error ${oauthCodeText(doc.error, run)})` : '';
    throw new RunFailure('token', 'http_status', `the token endpoint answered status ${reply.status}${code}`);
  }
  if (doc && typeof doc.error === 'string') {
    const description = serverText(doc.error_description, run, 160);
    throw new RunFailure(
      'token',
      'auth',
      `${grant} was refused: ${oauthCodeText(doc.error, run)} (status ${reply.status})${description ? `: ${description}` : ''}`,
      authCodeOf(doc.error),
    );
  }
  if (reply.status === 401 || reply.status === 403)
    throw new RunFailure('token', 'auth', `${grant} was refused: status ${reply.status} without an OAuth error`, 'other');
  if (reply.status < 200 || reply.status > 299)
    throw new RunFailure('token', 'http_status', `the token endpoint answered status ${reply.status}, expected 2xx`);
  if (!doc) throw new RunFailure('token', 'protocol', 'the token response is not a JSON object');
  // From here on the tokens themselves must not leak into a message either.
  for (const k of ['access_token', 'id_token', 'refresh_token']) if (typeof doc[k] === 'string') run.scrubber.add(doc[k]);
  const e = o.expect;
  const accessToken = doc.access_token;
  if (typeof accessToken !== 'string' || accessToken.length === 0) throw new RunFailure('token', 'assertion', 'the token response has no access_token');
  if (typeof doc.token_type !== 'string' || doc.token_type.toLowerCase() !== e.tokenType.toLowerCase()) {
    throw new RunFailure(
      'token',
      'assertion',
      `token_type is ${typeof doc.token_type === 'string' ? JSON.stringify(serverText(doc.token_type, run, 40)) : 'missing'}, expected ${e.tokenType}`,
    );
  }
  // Some servers send expires_in as a string ("3599").
  const rawExpires = doc.expires_in;
  const expiresIn =
    typeof rawExpires === 'number' ? rawExpires : typeof rawExpires === 'string' && /^\d+(\.\d+)?$/.test(rawExpires) ? Number(rawExpires) : undefined;
  if (rawExpires === undefined || rawExpires === null) {
    if (e.requireExpiresIn || e.minExpiresIn !== undefined) throw new RunFailure('token', 'assertion', 'the token response has no expires_in');
  } else if (expiresIn === undefined || !Number.isFinite(expiresIn) || expiresIn <= 0) {
    throw new RunFailure('token', 'assertion', 'expires_in is not a positive number of seconds');
  } else if (e.minExpiresIn !== undefined && expiresIn * 1000 < e.minExpiresIn) {
    throw new RunFailure('token', 'assertion', `expires_in is ${expiresIn} s, expected at least ${e.minExpiresIn / 1000} s`);
  }
  if (e.idToken && !(typeof doc.id_token === 'string' && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(doc.id_token))) {
    throw new RunFailure('token', 'assertion', 'the token response has no id_token (a JWT)');
  }
  return accessToken;
}

async function callResource(run: Run, url: URL, token: string): Promise<void> {
  const started = now();
  const reply = await exchange(run, 'resource', url, 'GET', { authorization: `Bearer ${token}`, accept: 'application/json' });
  run.phases.resource = now() - started;
  const want = run.o.resource?.expectStatus;
  if (want ? want.includes(reply.status) : reply.status >= 200 && reply.status <= 299) return;
  if (reply.status === 401 || reply.status === 403) {
    // RFC 6750 3: WWW-Authenticate: Bearer error="invalid_token", error_description="..."
    const header = headerText(reply.headers['www-authenticate']);
    const error = /(?:^|[\s,])error\s*=\s*"?([^",\s]*)"?/i.exec(header)?.[1] ?? (await jsonObject(run, 'resource', "the resource's answer", reply.text))?.error;
    const code = typeof error === 'string' && error.length > 0 ? error : undefined;
    throw new RunFailure(
      'resource',
      'auth',
      `the resource refused the token: status ${reply.status}${code ? ` (${oauthCodeText(code, run)})` : ''}`,
      code ? authCodeOf(code) : 'other',
    );
  }
  throw new RunFailure('resource', 'http_status', `the resource answered status ${reply.status}, expected ${want ? want.join(' or ') : '2xx'}`);
}

/**
 * One request on a fresh connection pool, body read up to maxBodySize. Only the token request's
 * connection set-up is timed on its own (resolve, connect, tls, then token from the connection
 * being ready); discovery and resource are timed whole by their callers.
 */
async function exchange(run: Run, kind: Exchange, url: URL, method: 'GET' | 'POST', headers: Record<string, string>, body?: string): Promise<Reply> {
  /** The one connection an exchange opens (a fresh pool per exchange). */
  let conn: ConnTimes | undefined;
  const agent = new Agent({
    connect: timedConnector(run.connector, (c) => (conn = c), undefined, run.signal),
    connections: 1,
    pipelining: 1,
  });
  let done: number | undefined;
  try {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, {
        method,
        headers: { 'user-agent': run.o.userAgent, ...headers },
        ...(body !== undefined ? { body } : {}),
        dispatcher: agent,
        signal: run.signal,
      });
    } catch (err) {
      // A connection that never came up failed in resolve, connect or tls, as in every kind;
      // once it was up, the exchange itself failed.
      const phase: Phase = setupPhase(conn, url) ?? kind;
      throw new RunFailure(phase, reasonAfter(err, run.signal), run.scrubber.scrub(describeError(err)));
    }
    const read = await readBounded(res.body, run.o.maxBodySize).catch((err: unknown) => {
      throw new RunFailure(kind, reasonAfter(err, run.signal), `reading the response: ${run.scrubber.scrub(describeError(err))}`);
    });
    if (read.tooLarge) throw new RunFailure(kind, 'body_too_large', `response body larger than ${run.o.maxBodySize} bytes (read stopped)`);
    done = now();
    return { status: res.statusCode, headers: res.headers, text: read.text };
  } finally {
    if (kind === 'token') {
      // Completed set-up phases count even when the exchange failed later.
      const c = conn;
      if (c) {
        run.tokenConn = c;
        Object.assign(run.phases, connectionPhases(c));
      }
      if (done !== undefined) run.phases.token = done - (c?.secure ?? c?.connect ?? c?.start ?? done);
    }
    await closePool(agent);
  }
}

/** An exchange failed before a response: in which step of its connection (or in the exchange itself)? */

/**
 * A body as a JSON object; undefined when it is not JSON or not an object (the caller says what it
 * expected). JSON nested too deep or holding too many values fails the run (protocol).
 */
async function jsonObject(run: Run, phase: Phase, what: string, text: string): Promise<Record<string, unknown> | undefined> {
  const r = await parseJsonObject(text, { signal: run.signal });
  if ('doc' in r) return r.doc;
  if (r.refused.code === 'aborted') throw new RunFailure(phase, 'timeout', `timed out reading ${what}`);
  throw new RunFailure(phase, 'protocol', `${what} is ${r.refused.message}`);
}

/** The server's own words, made safe to quote: credentials and tokens removed, one short line. */
function serverText(v: unknown, run: Run, max: number): string | undefined {
  if (typeof v !== 'string') return undefined;
  // Scrubbed whole (a cut could halve a secret), cleaned only at the head (a replace over a
  // 256 KiB description of control characters would hold the event loop).
  const line = run.scrubber
    .scrub(v)
    .trimStart()
    .slice(0, 1024)
    .replace(/\p{Cc}+/gu, ' ')
    .trim();
  if (line.length === 0) return undefined;
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}

/** An OAuth error code as quoted in a message: the code's own characters only, bounded. */
function oauthCodeText(error: string, run: Run): string {
  const s = run.scrubber
    .scrub(error)
    .slice(0, 64)
    .replace(/[^\w.-]/g, '?');
  return s.length > 0 ? s : '(empty)';
}

function headerText(v: string | string[] | undefined): string {
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}
