// The fhir probe: a FHIR server answers as a client needs it to. GET <base>/metadata must be a
// CapabilityStatement of the expected FHIR version and status that offers JSON; then, with a
// bearer token from a secret or from a SMART backend-services login (client_credentials, the
// token endpoint from the check or from the statement's oauth-uris), optionally a read
// (`Patient/123`: that resource, of the expected type) or a search (`Patient?identifier=...`: a
// searchset Bundle with a total in range). An OperationOutcome in an error answer is judged by its
// issue code, a closed FHIR value set (info.fhirIssue); its text is never quoted, as it may carry
// patient data. Every body is read up to maxBodySize and parsed with the kit's bounded JSON reader.
import { Agent, buildConnector, request } from 'undici';
import { PHASES, type FhirOptions } from './options.js';
import { parseJsonObject } from '../kit/json.js';
import { closePool, describeError, failed, now, raceAbort, readBounded, reasonAfter } from '../kit/net.js';
import { runRedactor, type Redactor } from '../kit/redact.js';
import { tlsFilesStep } from '../kit/step.js';
import type { WebTarget } from '../kit/target.js';
import { connectionPhases, expiryVerdict, setupPhase, timedConnector, tlsFileOptions, type ConnTimes } from '../kit/tls.js';
import { OAUTH_ERROR_CODES } from '../oidc/probe.js';
import type { FailureReason, Probe, ProbeContext, ProbeInfo, ProbeResult } from '../types.js';

type Phase = (typeof PHASES)[number];
type Exchange = 'metadata' | 'token' | 'query';

/**
 * FHIR IssueType codes (R4 and R5, http://hl7.org/fhir/valueset-issue-type.html): the values
 * info.fhirIssue takes (exported as vakt_fhir_issue_info{code}); any other value is "other".
 */
export const FHIR_ISSUE_CODES = [
  'invalid',
  'structure',
  'required',
  'value',
  'invariant',
  'security',
  'login',
  'unknown',
  'expired',
  'forbidden',
  'suppressed',
  'processing',
  'not-supported',
  'duplicate',
  'multiple-matches',
  'not-found',
  'deleted',
  'too-long',
  'code-invalid',
  'extension',
  'too-costly',
  'business-rule',
  'conflict',
  'limited-filter',
  'transient',
  'lock-error',
  'no-store',
  'exception',
  'timeout',
  'incomplete',
  'throttled',
  'informational',
  'success',
] as const;

/** Issue codes that say the caller may not (a login, a token, a permission): reason auth. */
const AUTH_ISSUES = new Set(['security', 'login', 'unknown', 'expired', 'forbidden', 'suppressed']);
/** Issue codes that say the resource is not there: reason resource_not_found. */
const MISSING_ISSUES = new Set(['not-found', 'deleted']);

/** The JSON formats a CapabilityStatement may list (R4 `json` and mime types; DSTU2's application/json+fhir). */
const JSON_FORMATS = new Set(['json', 'application/fhir+json', 'application/json+fhir', 'application/json']);

const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

class RunFailure extends Error {
  constructor(
    readonly phase: Phase,
    readonly reason: FailureReason,
    message: string,
    readonly facts: { authCode?: string; fhirIssue?: string } = {},
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
  o: FhirOptions;
  signal: AbortSignal;
  agent: Agent;
  scrubber: Redactor;
  phases: Partial<Record<Phase, number>>;
  values: NonNullable<ProbeResult['values']>;
  /** The connection the agent is opening now (set by its connector). */
  connecting: { opening?: ConnTimes | undefined };
  /** The FHIR server's first TLS connection: its facts are the run's. */
  serverTls?: ConnTimes['tls'];
}

export const fhirProbe: Probe<FhirOptions, WebTarget> = {
  phases: PHASES,
  async run(ctx: ProbeContext<FhirOptions, WebTarget>): Promise<ProbeResult> {
    const o = ctx.options;
    const phases: Partial<Record<Phase, number>> = {};
    const values: NonNullable<ProbeResult['values']> = {};
    const tlsFiles = await tlsFilesStep({ phases, signal: ctx.budget.signal }, () => tlsFileOptions(o.tls));
    if (failed(tlsFiles)) return tlsFiles.result;
    const base = buildConnector({
      ...tlsFiles,
      maxCachedSessions: 0,
      // undici gives up on a connect after 10 s by default; a connect may take the whole run instead.
      timeout: Math.max(1, Math.ceil(ctx.budget.left())),
      ...(o.ipFamily === 'ip4' ? { family: 4 } : o.ipFamily === 'ip6' ? { family: 6 } : {}),
    });
    const connecting: Run['connecting'] = {};
    // One pool per run: the metadata request pays resolve/connect/tls, the query reuses its connection.
    const agent = new Agent({ connect: timedConnector(base, (t) => (connecting.opening = t), undefined, ctx.budget.signal), connections: 1, pipelining: 1 });
    const run: Run = { o, signal: ctx.budget.signal, agent, connecting, scrubber: runRedactor(ctx.secrets), phases, values };
    const info: ProbeInfo = {};
    let failure: RunFailure | undefined;
    try {
      const baseUrl = new URL(ctx.target.href.endsWith('/') ? ctx.target.href : `${ctx.target.href}/`);
      const capability = await metadata(run, baseUrl, info);
      const token =
        o.bearerToken !== undefined
          ? secret(ctx, 'query', 'bearerToken', o.bearerToken)
          : o.clientId !== undefined
            ? await login(run, ctx, baseUrl, capability)
            : undefined;
      if (o.read !== undefined || o.search !== undefined) await query(run, baseUrl, token);
    } catch (err) {
      if (!(err instanceof RunFailure)) throw err;
      failure = err;
    } finally {
      await closePool(run.agent);
    }
    const tls = run.serverTls;
    if (tls) Object.assign(info, tls.info);
    if (tls?.earliestExpiry !== undefined) values.ssl_earliest_cert_expiry = tls.earliestExpiry;
    const ordered: Record<string, number> = {};
    for (const p of PHASES) if (phases[p] !== undefined) ordered[p] = phases[p];
    const result: ProbeResult = { ok: failure === undefined, phases: ordered, values };
    // A token learnt late in the run may have been quoted earlier (a version or type the server echoed): hidden here too.
    for (const [k, v] of Object.entries(info)) if (typeof v === 'string') info[k] = run.scrubber.scrub(v);
    // Codes from closed sets (OAuth errors, FHIR issue types) are not the peer's text and are not
    // scrubbed: a short token the server issued ("in") would otherwise hide "invalid".
    if (failure?.facts.authCode !== undefined) info.authCode = failure.facts.authCode;
    if (failure?.facts.fhirIssue !== undefined) info.fhirIssue = failure.facts.fhirIssue;
    if (failure) result.failure = { phase: failure.phase, reason: failure.reason, message: run.scrubber.scrub(failure.message) };
    else if (tls?.earliestExpiry !== undefined) {
      const degraded = expiryVerdict(tls.earliestExpiry, o.tls?.expiryWarning, 'FHIR server certificate');
      if (degraded) result.degraded = degraded;
    }
    if (Object.keys(info).length > 0) result.info = info;
    return result;
  },
};

function secret(ctx: ProbeContext<FhirOptions>, phase: Phase, key: string, name: string): string {
  const v = ctx.secrets[name];
  if (v === undefined) throw new RunFailure(phase, 'internal', `the secret named by ${key} is not among the check's secrets`);
  return v;
}

/** GET metadata: a CapabilityStatement of the expected version and status that offers JSON. Returns it. */
async function metadata(run: Run, base: URL, info: ProbeInfo): Promise<Record<string, unknown>> {
  const reply = await exchange(run, 'metadata', new URL('metadata', base), 'GET', { accept: 'application/fhir+json' });
  const doc = await judgeStatus(run, 'metadata', reply, 'the metadata');
  if (doc.resourceType !== 'CapabilityStatement')
    throw new RunFailure('metadata', 'fhir_capability', `the metadata is ${typeName(run, doc.resourceType)}, not a CapabilityStatement`);
  const o = run.o;
  const version = typeof doc.fhirVersion === 'string' ? doc.fhirVersion : undefined;
  const shown = quoted(run, version, /^[0-9A-Za-z.-]{1,24}$/);
  if (shown !== undefined) info.fhirVersion = shown;
  if (version === undefined || !(version === o.fhirVersion || version.startsWith(`${o.fhirVersion}.`))) {
    throw new RunFailure(
      'metadata',
      'fhir_version',
      `the server speaks FHIR ${version === undefined ? '(no fhirVersion)' : (shown ?? '(an unreadable version)')}, expected ${o.fhirVersion}${release(o.fhirVersion)}`,
    );
  }
  if (typeof doc.status !== 'string' || !(o.status as readonly string[]).includes(doc.status)) {
    const status = quoted(run, doc.status, /^[a-z-]{1,16}$/) ?? 'missing or unreadable';
    throw new RunFailure('metadata', 'fhir_capability', `the CapabilityStatement's status is ${status}, expected ${o.status.join(' or ')}`);
  }
  const formats = Array.isArray(doc.format) ? doc.format.filter((f): f is string => typeof f === 'string') : [];
  if (!formats.some((f) => JSON_FORMATS.has(f.split(';')[0]?.trim().toLowerCase() ?? ''))) {
    const listed = formats
      .slice(0, 16)
      .map((f) => quoted(run, f, /^[\w.+/-]{1,48}$/))
      .filter((f) => f !== undefined)
      .slice(0, 4);
    throw new RunFailure(
      'metadata',
      'fhir_capability',
      `the CapabilityStatement offers no JSON format (${listed.length > 0 ? `format: ${listed.join(', ')}` : 'no format listed'})`,
    );
  }
  return doc;
}

/** " (R4)" after a version a release name stands for. */
function release(version: string): string {
  const names: Record<string, string> = { '1.0': 'DSTU2', '3.0': 'STU3', '4.0': 'R4', '4.3': 'R4B', '5.0': 'R5', '6.0': 'R6' };
  const name = names[version];
  return name !== undefined ? ` (${name})` : '';
}

/** The token endpoint SMART names in the CapabilityStatement (rest[].security.extension oauth-uris, token). */
export function oauthTokenUrl(capability: Record<string, unknown>): string | undefined {
  const rest = Array.isArray(capability.rest) ? (capability.rest as unknown[]) : [];
  for (const r of rest.slice(0, 8)) {
    const security = (r as { security?: { extension?: unknown } } | null)?.security;
    const extensions = Array.isArray(security?.extension) ? (security.extension as unknown[]) : [];
    for (const e of extensions.slice(0, 32)) {
      const ext = e as { url?: unknown; extension?: unknown } | null;
      if (ext?.url !== OAUTH_URIS || !Array.isArray(ext.extension)) continue;
      for (const inner of (ext.extension as unknown[]).slice(0, 32)) {
        const i = inner as { url?: unknown; valueUri?: unknown } | null;
        if (i?.url === 'token' && typeof i.valueUri === 'string') return i.valueUri;
      }
    }
  }
  return undefined;
}

/** SMART backend services: a client_credentials grant at the token endpoint; returns the access token. */
async function login(run: Run, ctx: ProbeContext<FhirOptions>, base: URL, capability: Record<string, unknown>): Promise<string> {
  const o = run.o;
  const where = o.tokenUrl ?? oauthTokenUrl(capability);
  if (where === undefined || !URL.canParse(where))
    throw new RunFailure('token', 'fhir_capability', 'the CapabilityStatement names no token endpoint (SMART oauth-uris); set tokenUrl');
  const url = new URL(where);
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || (base.protocol === 'https:' && url.protocol !== 'https:'))
    throw new RunFailure('token', 'fhir_capability', 'the token endpoint is not an https:// URL (the client secret is not sent there)');
  const clientSecret = secret(ctx, 'token', 'clientSecret', o.clientSecret ?? '');
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (o.scope !== undefined) form.set('scope', o.scope);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (o.clientAuth === 'basic') {
    // RFC 6749 2.3.1: id and secret are form-encoded before they are joined.
    const enc = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);
    const basic = Buffer.from(`${enc(o.clientId ?? '')}:${enc(clientSecret)}`).toString('base64');
    run.scrubber.add(basic);
    headers.authorization = `Basic ${basic}`;
  } else {
    form.set('client_id', o.clientId ?? '');
    form.set('client_secret', clientSecret);
  }
  const reply = await exchange(run, 'token', url, 'POST', headers, form.toString());
  const doc = await jsonObject(run, 'token', 'the token response', reply.text);
  const error = doc?.error;
  if (typeof error === 'string' && reply.status < 500) {
    const code = (OAUTH_ERROR_CODES as readonly string[]).includes(error) ? error : 'other';
    throw new RunFailure(
      'token',
      'auth',
      `the client_credentials grant was refused: ${code === 'other' ? 'an unknown OAuth error' : code} (status ${reply.status})`,
      {
        authCode: code,
      },
    );
  }
  if (reply.status === 401 || reply.status === 403)
    throw new RunFailure('token', 'auth', `the client_credentials grant was refused: status ${reply.status}`, { authCode: 'other' });
  if (reply.status < 200 || reply.status > 299)
    throw new RunFailure('token', 'http_status', `the token endpoint answered status ${reply.status}, expected 2xx`);
  const token = doc?.access_token;
  if (typeof token !== 'string' || token.length === 0) throw new RunFailure('token', 'protocol', 'the token response has no access_token');
  run.scrubber.add(token);
  return token;
}

/** The read or the search, judged against expect. */
async function query(run: Run, base: URL, token: string | undefined): Promise<void> {
  const o = run.o;
  const path = o.read ?? o.search ?? '';
  const type = /^[A-Za-z]+/.exec(path)?.[0] ?? '';
  const headers: Record<string, string> = { accept: 'application/fhir+json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const reply = await exchange(run, 'query', new URL(path, base), 'GET', headers);
  const what = o.read !== undefined ? `the read of ${type}` : `the ${type} search`;
  if (o.read !== undefined && reply.status === 404) {
    const outcome = await operationOutcome(run, reply);
    throw new RunFailure('query', 'resource_not_found', `${o.read} was not found (status 404${outcome ? `, issue ${outcome}` : ''})`, issueFact(outcome));
  }
  const doc = await judgeStatus(run, 'query', reply, what);
  if (o.read !== undefined) {
    const want = o.expect.resourceType ?? type;
    if (doc.resourceType !== want) throw new RunFailure('query', 'expect_mismatch', `${what} returned ${typeName(run, doc.resourceType)}, expected ${want}`);
    const id = o.read.slice(type.length + 1);
    if (doc.id !== id) throw new RunFailure('query', 'expect_mismatch', `${what} returned a ${want} with another id, expected ${o.read}`);
    return;
  }
  if (doc.resourceType !== 'Bundle' || doc.type !== 'searchset') {
    const got =
      doc.resourceType === 'Bundle' ? `a Bundle of type ${quoted(run, doc.type, /^[a-z-]{1,24}$/) ?? '(unreadable)'}` : typeName(run, doc.resourceType);
    throw new RunFailure('query', 'expect_mismatch', `${what} returned ${got}, expected a searchset Bundle`);
  }
  const total = searchTotal(doc);
  run.values.fhir_search_total = total;
  const { minTotal, maxTotal } = o.expect;
  if (minTotal !== undefined && total < minTotal) throw new RunFailure('query', 'expect_mismatch', `${what} found ${total}, expected at least ${minTotal}`);
  if (maxTotal !== undefined && total > maxTotal) throw new RunFailure('query', 'expect_mismatch', `${what} found ${total}, expected at most ${maxTotal}`);
}

/** Bundle.total when the server counted; else the entries that matched (mode match, or without a mode). */
export function searchTotal(bundle: Record<string, unknown>): number {
  if (typeof bundle.total === 'number' && Number.isSafeInteger(bundle.total) && bundle.total >= 0) return bundle.total;
  const entries = Array.isArray(bundle.entry) ? (bundle.entry as unknown[]) : [];
  let n = 0;
  for (const e of entries) {
    const mode = (e as { search?: { mode?: unknown } } | null)?.search?.mode;
    if (mode === undefined || mode === 'match') n++;
  }
  return n;
}

/**
 * A 2xx answer's JSON object, or the run's failure: 401/403 auth, an OperationOutcome by its
 * issue code (auth, resource_not_found, else http_status), any other status http_status.
 */
async function judgeStatus(run: Run, phase: Exchange, reply: Reply, what: string): Promise<Record<string, unknown>> {
  if (reply.status < 200 || reply.status > 299) {
    const outcome = await operationOutcome(run, reply);
    const issue = outcome ? `, issue ${outcome}` : '';
    const facts = issueFact(outcome);
    if (reply.status === 401 || reply.status === 403)
      throw new RunFailure(phase, 'auth', `${what} was refused: status ${reply.status}${issue}${bearerError(reply)}`, facts);
    if (outcome !== undefined && AUTH_ISSUES.has(outcome)) throw new RunFailure(phase, 'auth', `${what} was refused: status ${reply.status}${issue}`, facts);
    if (outcome !== undefined && MISSING_ISSUES.has(outcome))
      throw new RunFailure(phase, 'resource_not_found', `${what}: status ${reply.status}${issue}`, facts);
    throw new RunFailure(phase, 'http_status', `${what}: status ${reply.status}, expected 2xx${issue}`, facts);
  }
  const doc = await jsonObject(run, phase, what, reply.text);
  if (!doc) throw new RunFailure(phase, 'protocol', `${what} is not a JSON object`);
  return doc;
}

function issueFact(code: string | undefined): { fhirIssue?: string } {
  return code === undefined ? {} : { fhirIssue: (FHIR_ISSUE_CODES as readonly string[]).includes(code) ? code : 'other' };
}

/** RFC 6750's error in WWW-Authenticate (invalid_token, insufficient_scope), when it is one of the known codes. */
function bearerError(reply: Reply): string {
  const h = reply.headers['www-authenticate'];
  const header = (Array.isArray(h) ? h.join(', ') : (h ?? '')).slice(0, 1024);
  const error = /(?:^|[\s,])error\s*=\s*"?([a-z_]{1,40})"?/i.exec(header)?.[1];
  return error !== undefined && (OAUTH_ERROR_CODES as readonly string[]).includes(error) ? ` (${error})` : '';
}

/**
 * The issue code of an OperationOutcome body (the first error or fatal issue, else the first):
 * one of FHIR_ISSUE_CODES or "other"; undefined when the body is no OperationOutcome.
 */
export async function operationOutcome(run: Pick<Run, 'signal'>, reply: Pick<Reply, 'text'>): Promise<string | undefined> {
  const r = await parseJsonObject(reply.text, { signal: run.signal });
  return 'doc' in r ? outcomeCode(r.doc) : undefined;
}

/** The issue code of a parsed OperationOutcome, as operationOutcome says. */
export function outcomeCode(doc: unknown): string | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  if (d.resourceType !== 'OperationOutcome') return undefined;
  const issues = (Array.isArray(d.issue) ? (d.issue as unknown[]) : [d.issue]).slice(0, 64) as ({ severity?: unknown; code?: unknown } | null)[];
  const first = issues.find((i) => i?.severity === 'error' || i?.severity === 'fatal') ?? issues[0];
  const code = first?.code;
  return typeof code === 'string' && (FHIR_ISSUE_CODES as readonly string[]).includes(code) ? code : 'other';
}

/**
 * A short value from the server for a message, only when it has the shape `re` allows once the
 * run's secrets are hidden in it (a server may echo a token as its version); else undefined.
 */
function quoted(run: Pick<Run, 'scrubber'>, v: unknown, re: RegExp): string | undefined {
  if (typeof v !== 'string' || v.length > 64) return undefined;
  const s = run.scrubber.scrub(v);
  return re.test(s) ? s : undefined;
}

/** A resourceType for a message: a type name when it looks like one, else what it is. */
function typeName(run: Pick<Run, 'scrubber'>, v: unknown): string {
  const type = quoted(run, v, /^[A-Z][A-Za-z]{1,63}$/);
  if (type !== undefined) return `a${/^[AEIOU]/.test(type) ? 'n' : ''} ${type}`;
  return v === undefined ? 'JSON without a resourceType' : 'JSON with an unreadable resourceType';
}

/**
 * One request through the run's pool, body read up to maxBodySize. A new connection's set-up is
 * added to resolve/connect/tls; the exchange's own phase runs from the connection being ready
 * (or from the request, on a reused one) to the end of the body.
 */
async function exchange(run: Run, phase: Exchange, url: URL, method: 'GET' | 'POST', headers: Record<string, string>, body?: string): Promise<Reply> {
  run.connecting.opening = undefined;
  const started = now();
  const connection = (): ConnTimes | undefined => {
    const c = run.connecting.opening;
    run.connecting.opening = undefined;
    if (c) {
      for (const [p, v] of Object.entries(connectionPhases(c))) run.phases[p as Phase] = (run.phases[p as Phase] ?? 0) + v;
      if (c.tls && run.serverTls === undefined && phase !== 'token') run.serverTls = c.tls;
    }
    return c;
  };
  let res: Awaited<ReturnType<typeof request>>;
  try {
    // undici notices the signal only once a request has a connection: the probe stops waiting by itself.
    const pending = request(url, {
      method,
      headers: { 'user-agent': run.o.userAgent, ...headers },
      ...(body !== undefined ? { body } : {}),
      dispatcher: run.agent,
      signal: run.signal,
    });
    pending.catch(() => undefined);
    res = await raceAbort(pending, run.signal);
  } catch (err) {
    const c = connection();
    throw new RunFailure(setupPhase(c, url) ?? phase, reasonAfter(err, run.signal), run.scrubber.scrub(describeError(err)));
  }
  const c = connection();
  const ready = c?.secure ?? c?.connect ?? started;
  const read = await readBounded(res.body, run.o.maxBodySize).catch((err: unknown) => {
    throw new RunFailure(phase, reasonAfter(err, run.signal), `reading the response: ${run.scrubber.scrub(describeError(err))}`);
  });
  run.phases[phase] = (run.phases[phase] ?? 0) + Math.max(0, now() - ready);
  run.values.http_status_code = res.statusCode;
  if (read.tooLarge) throw new RunFailure(phase, 'body_too_large', `response body larger than ${run.o.maxBodySize} bytes (read stopped)`);
  return { status: res.statusCode, headers: res.headers, text: read.text };
}

/** A body as a JSON object, or undefined; JSON the reader refuses fails the run (protocol; timeout once the run was stopped). */
async function jsonObject(run: Run, phase: Exchange, what: string, text: string): Promise<Record<string, unknown> | undefined> {
  const r = await parseJsonObject(text, { signal: run.signal });
  if ('doc' in r) return r.doc;
  throw new RunFailure(
    phase,
    r.refused.code === 'aborted' ? 'timeout' : 'protocol',
    r.refused.code === 'aborted' ? `timed out reading ${what}` : `${what} is ${r.refused.message}`,
  );
}
