// The http probe: one request, or a login flow of several steps that share a cookie jar and
// variables (a CSRF token from the form, a session cookie from the POST), like a user logging in.
// Every step is timed per phase (resolve, connect, tls, processing, transfer) on a cold
// connection pool per run, redirects are followed by the probe itself so cookies are kept at
// every hop, bodies are read only up to a limit. The Region Uppsala story: show which part of
// the login got slow while every port still answers.
import { isIP } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { PHASES, type HttpOptions, type HttpStepOptions } from './options.js';
import { jsonPath, parseJson, type JsonResult } from '../kit/json.js';
import { closePool, classifyError, describeError, now, raceAbort, readBounded } from '../kit/net.js';
import type { WebTarget } from '../kit/target.js';
import { failed, tlsFilesStep } from '../kit/step.js';
import { Redactor, runRedactor } from '../kit/redact.js';
import { connectionPhases, expiryVerdict, setupPhase, timedConnector, tlsFileOptions, type ConnTimes, type ExchangeClock } from '../kit/tls.js';
import type { FailureReason, Probe, ProbeContext, ProbeFailure, ProbeResult, StepResult } from '../types.js';

type Phase = (typeof PHASES)[number];

class StepError extends Error {
  constructor(
    readonly reason: FailureReason,
    readonly phase: string,
    message: string,
  ) {
    super(message);
  }
}

export const httpProbe: Probe<HttpOptions, WebTarget> = {
  phases: PHASES,
  async run(ctx: ProbeContext<HttpOptions, WebTarget>): Promise<ProbeResult> {
    const o = ctx.options;
    const steps: HttpStepOptions[] = o.steps ?? [{ ...o, name: 'request' }];
    let timing: ConnTimes | undefined;
    /** Of the run's TLS handshakes, the one whose chain expires first (any of them breaks the login). */
    let tls: ConnTimes['tls'];
    const tlsOptions = await tlsFilesStep({ phases: {}, signal: ctx.budget.signal }, () => tlsFileOptions(o.tls));
    if (failed(tlsOptions)) return tlsOptions.result;
    // undici gives up on a connect after 10 s by default; a connect may take the whole run instead.
    const connectTimeout = Math.max(1, Math.ceil(ctx.budget.left()));
    const base = buildConnector({
      ...tlsOptions,
      maxCachedSessions: 0,
      timeout: connectTimeout,
      ...(o.ipFamily === 'ip4' ? { family: 4 } : o.ipFamily === 'ip6' ? { family: 6 } : {}),
    });
    // A fresh pool per run: the first request to each origin pays resolve/connect/tls, as a
    // user's browser does after a restart; later steps reuse the connection (and report no
    // connect phases, rather than zeros). One connection per origin: with more, undici opens a
    // second one for the next step while the first is still being handed back to the pool.
    /** Each request's own times (the steps take turns on the run's connections). */
    const exchanges: ExchangeClock = {};
    const agent = new Agent({
      connect: timedConnector(
        base,
        (t) => (timing = t),
        (t) => {
          if (t.tls && (!tls || (t.tls.earliestExpiry ?? Infinity) < (tls.earliestExpiry ?? Infinity))) tls = t.tls;
        },
        ctx.budget.signal,
        exchanges,
      ),
      connections: 1,
      pipelining: 1,
    });
    const jar = new CookieJar();
    const vars: Record<string, string> = {};
    const results: StepResult[] = [];
    const totals: Partial<Record<Phase, number>> = {};
    const values: NonNullable<ProbeResult['values']> = { http_redirects: 0 };
    let failure: ProbeFailure | undefined;
    let slow: string | undefined;
    try {
      for (const step of steps) {
        const r = await runStep(step, o, ctx, jar, vars, agent, exchanges, () => {
          const t = timing;
          timing = undefined;
          return t;
        });
        results.push(r.result);
        for (const [p, v] of Object.entries(r.result.phases)) totals[p as Phase] = (totals[p as Phase] ?? 0) + v;
        values.http_redirects = (values.http_redirects ?? 0) + (r.result.redirects ?? 0);
        if (r.result.status !== undefined) values.http_status_code = r.result.status;
        if (r.contentLength !== undefined) values.http_content_length = r.contentLength;
        if (r.finalUrl) values.http_ssl = r.finalUrl.startsWith('https:') ? 1 : 0;
        if (!r.result.ok) {
          failure = r.result.failure;
          break;
        }
        if (r.result.slow && slow === undefined) {
          slow = `step ${step.name} took ${fmt(r.result.durationSeconds)} (limit ${fmt((step.degradedAbove ?? 0) / 1000)})`;
        }
      }
    } finally {
      await closePool(agent);
    }
    const phases: Record<string, number> = {};
    for (const p of PHASES) if (totals[p] !== undefined) phases[p] = totals[p];
    const facts = tls;
    if (facts?.earliestExpiry !== undefined) values.ssl_earliest_cert_expiry = facts.earliestExpiry;
    let degraded: ProbeResult['degraded'];
    if (failure === undefined && slow) degraded = { reason: 'slow', message: slow };
    else if (failure === undefined && facts?.earliestExpiry !== undefined) {
      degraded = expiryVerdict(facts.earliestExpiry, o.tls?.expiryWarning, `certificate${facts.info.certSubject ? ` ${facts.info.certSubject}` : ''}`);
    }
    return {
      ok: failure === undefined,
      phases,
      steps: results,
      values,
      ...(facts ? { info: facts.info } : {}),
      ...(failure ? { failure } : {}),
      ...(degraded ? { degraded } : {}),
    };
  },
};

interface StepOutcome {
  result: StepResult;
  contentLength?: number;
  finalUrl?: string;
}

async function runStep(
  step: HttpStepOptions,
  o: HttpOptions,
  ctx: ProbeContext<HttpOptions, WebTarget>,
  jar: CookieJar,
  vars: Record<string, string>,
  agent: Agent,
  exchanges: ExchangeClock,
  takeTiming: () => ConnTimes | undefined,
): Promise<StepOutcome> {
  const fill = (text: string) => template(text, ctx.secrets, vars);
  const started = now();
  const phases: Partial<Record<Phase, number>> = {};
  const add = (p: Phase, v: number) => (phases[p] = (phases[p] ?? 0) + Math.max(0, v));
  /** The connection phases a new connection completed; returns when it was ready for the request. */
  const addConnection = (t: ConnTimes): number | undefined => {
    for (const [p, v] of Object.entries(connectionPhases(t))) add(p as Phase, v);
    return t.secure ?? t.connect;
  };
  const result: StepResult = { name: step.name, ok: false, durationSeconds: 0, phases: {}, redirects: 0 };
  let url: URL;
  let method: string = step.method;
  let body: string | undefined;
  const headers: Record<string, string> = { 'user-agent': o.userAgent };
  /** Headers that carry a secret: not sent on to another origin by a redirect. */
  const secretHeaders = new Set(['authorization', 'proxy-authorization']);
  let finalUrl: string | undefined;
  let contentLength: number | undefined;
  try {
    url = new URL(fill(step.url ?? ''), ctx.target.href);
    const origin = url.origin;
    for (const [k, v] of Object.entries(step.headers ?? {})) {
      headers[k.toLowerCase()] = fill(v);
      if (v.includes('${secret.')) secretHeaders.add(k.toLowerCase());
    }
    if (step.form) {
      body = new URLSearchParams(Object.entries(step.form).map(([k, v]): [string, string] => [k, fill(v)])).toString();
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
    } else if (step.json !== undefined) {
      body = JSON.stringify(templateJson(step.json, fill));
      headers['content-type'] ??= 'application/json';
    } else if (step.body !== undefined) body = fill(step.body);

    for (let hop = 0; ; hop++) {
      const cookie = jar.header(url);
      const hopHeaders = { ...headers, ...(cookie ? { cookie } : {}) };
      const hopStart = now();
      takeTiming();
      exchanges.sent = exchanges.answered = undefined;
      let res: Awaited<ReturnType<typeof request>>;
      try {
        // undici notices the signal only once a request has a connection: a connect that hangs
        // (SYNs dropped) would outlive the run, so the probe stops waiting by itself. The request
        // it stops waiting for is rejected when the pool is destroyed; that is expected.
        const pending = request(url, {
          method: method as 'GET',
          headers: hopHeaders,
          ...(body !== undefined ? { body } : {}),
          dispatcher: agent,
          signal: ctx.budget.signal,
        });
        pending.catch(() => undefined);
        res = await raceAbort(pending, ctx.budget.signal);
      } catch (err) {
        // The phase that was under way: a new connection's first unfinished phase, or (on a
        // reused connection, or once connected) waiting for the response headers.
        const t = takeTiming();
        if (t) addConnection(t);
        throw stepError(err, setupPhase(t, url) ?? 'processing', ctx.budget.signal);
      }
      // The peer's processing: from the request written to its answer's headers, as undici
      // stamped them (ExchangeClock), or else from the connection being ready to the await resuming.
      const t = takeTiming();
      const ready = (t && addConnection(t)) ?? hopStart;
      const headersAt = exchanges.answered ?? now();
      add('processing', headersAt - Math.max(ready, exchanges.sent ?? ready));
      jar.store(url, res.headers['set-cookie']);
      const location = res.headers.location;
      if (step.followRedirects && [301, 302, 303, 307, 308].includes(res.statusCode) && typeof location === 'string') {
        try {
          await res.body.dump({ limit: o.maxBodySize });
        } catch (err) {
          throw stepError(err, 'transfer', ctx.budget.signal);
        }
        add('transfer', now() - headersAt);
        if (hop >= o.maxRedirects) throw new StepError('too_many_redirects', 'processing', `more than ${o.maxRedirects} redirects`);
        result.redirects = (result.redirects ?? 0) + 1;
        url = new URL(location, url);
        if (url.origin !== origin) for (const h of secretHeaders) delete headers[h];
        if ((res.statusCode === 303 && method !== 'HEAD') || ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          delete headers['content-type'];
        }
        continue;
      }
      let read: { text: string; bytes: number; tooLarge: boolean };
      try {
        read = await readBounded(res.body, o.maxBodySize);
      } catch (err) {
        // A phase that did not complete is absent, as everywhere (a body cut off at the limit did complete).
        throw stepError(err, 'transfer', ctx.budget.signal);
      }
      add('transfer', now() - headersAt);
      finalUrl = url.href;
      result.status = res.statusCode;
      contentLength = read.bytes;
      if (read.tooLarge) throw new StepError('body_too_large', 'transfer', `body larger than ${o.maxBodySize} bytes (read stopped)`);
      const elapsed = now() - started;
      // Parsed once, and only when an expectation or an extraction asks for JSON.
      let parsed: Promise<JsonResult> | undefined;
      const text = read.text;
      const json = () => (parsed ??= parseJson(text, { signal: ctx.budget.signal }));
      await checkExpect(step, res.statusCode, res.headers, text, json, elapsed, ctx.secrets);
      await extract(step, text, json, res.headers, jar, url, vars);
      break;
    }
    result.ok = true;
  } catch (err) {
    const e = err instanceof StepError ? err : stepError(err, 'processing', ctx.budget.signal);
    result.failure = { phase: e.phase, reason: e.reason, message: `step ${step.name}: ${e.message}` };
  }
  result.durationSeconds = now() - started;
  for (const p of PHASES) if (phases[p] !== undefined) result.phases[p] = phases[p];
  if (result.ok && step.degradedAbove !== undefined && result.durationSeconds * 1000 > step.degradedAbove) result.slow = true;
  return { result, ...(contentLength !== undefined ? { contentLength } : {}), ...(finalUrl ? { finalUrl } : {}) };
}

/** A request or body error as a step failure; once the run's signal fired, it is a timeout. */
function stepError(err: unknown, phase: Phase, signal: AbortSignal): StepError {
  if (signal.aborted) return new StepError('timeout', phase, `timed out in ${phase}`);
  return new StepError(classifyError(err), phase, describeError(err));
}

type Headers = Record<string, string | string[] | undefined>;

function headerValue(headers: Headers, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * The body as JSON, or the step's failure: a body that is not JSON fails the assertion that wanted
 * JSON; one nested too deep or holding too many values is the peer breaking the protocol.
 */
function bodyJson(r: JsonResult): { doc: unknown } | undefined {
  if (r.ok) return { doc: r.value };
  if (r.error.code === 'syntax') return undefined;
  if (r.error.code === 'aborted') throw new StepError('timeout', 'processing', 'timed out in processing');
  throw new StepError('protocol', 'processing', `body is ${r.error.message}`);
}

/** How much of an expected text a failure message quotes. */
const EXPECTED_TEXT_SHOWN = 80;

/** An expected text from the config, quoted for a message: cut when long, any secret value in it masked. */
export function expectedText(text: string, secrets: Readonly<Record<string, string>>): string {
  const shown = text.length > EXPECTED_TEXT_SHOWN ? `${text.slice(0, EXPECTED_TEXT_SHOWN)}…` : text;
  const quoted = JSON.stringify(runRedactor(secrets).scrub(shown));
  return text.length > EXPECTED_TEXT_SHOWN ? `${quoted} (${text.length} characters)` : quoted;
}

async function checkExpect(
  step: HttpStepOptions,
  status: number,
  headers: Headers,
  body: string,
  json: () => Promise<JsonResult>,
  elapsed: number,
  secrets: Readonly<Record<string, string>>,
): Promise<void> {
  const e = step.expect;
  const fail = (reason: FailureReason, message: string) => {
    throw new StepError(reason, 'processing', message);
  };
  if (e.status ? !e.status.includes(status) : status < 200 || status > 299) {
    fail('http_status', `status ${status}, expected ${e.status ? e.status.join(' or ') : '2xx'}`);
  }
  // Messages name the rule, never quote the body: a login page may echo what was sent.
  for (const re of e.bodyMatches ?? []) if (!new RegExp(re).test(body)) fail('assertion', `body does not match /${re}/`);
  for (const re of e.bodyNotMatches ?? []) if (new RegExp(re).test(body)) fail('assertion', `body matches /${re}/`);
  // The text is the config's (never the body's), quoted and cut at EXPECTED_TEXT_SHOWN characters.
  for (const text of e.bodyContains ?? []) if (!body.includes(text)) fail('assertion', `body does not contain ${expectedText(text, secrets)}`);
  if (e.json || e.jsonExists) {
    const parsed = bodyJson(await json());
    if (!parsed) fail('assertion', 'body is not JSON');
    const doc = parsed?.doc;
    for (const path of e.jsonExists ?? []) if (jsonPath(doc, path) === undefined) fail('assertion', `JSON has no ${path}`);
    for (const [path, want] of Object.entries(e.json ?? {})) {
      const got = jsonPath(doc, path);
      if (got !== want) fail('assertion', `JSON ${path} is ${describeJson(got, secrets)}, expected ${JSON.stringify(want)}`);
    }
  }
  for (const [name, re] of Object.entries(e.headers ?? {})) {
    const v = headerValue(headers, name);
    if (v === undefined || !new RegExp(re).test(v)) fail('assertion', `header ${name} ${v === undefined ? 'missing' : `does not match /${re}/`}`);
  }
  if (e.maxDuration !== undefined && elapsed * 1000 > e.maxDuration) fail('assertion', `took ${fmt(elapsed)}, more than ${fmt(e.maxDuration / 1000)}`);
}

/**
 * A JSON value for a failure message: short scalars whole, anything else by its kind only. A
 * server may echo what it was sent, so the check's secrets are hidden in the value first, in every
 * form they may come back in. Only then is it quoted: the agent's redactor knows a secret raw and
 * JSON-escaped once, not inside a quotation that escapes it again, nor cut off.
 */
function describeJson(v: unknown, secrets: Readonly<Record<string, string>>): string {
  if (v === undefined) return 'missing';
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v !== 'string') return Array.isArray(v) ? 'an array' : 'an object';
  const redactor = new Redactor();
  redactor.setSecrets(Object.values(secrets));
  const text = redactor.scrub(v);
  return text.length <= 64 ? JSON.stringify(text) : `a string of ${v.length} characters`;
}

async function extract(
  step: HttpStepOptions,
  body: string,
  json: () => Promise<JsonResult>,
  headers: Headers,
  jar: CookieJar,
  url: URL,
  vars: Record<string, string>,
): Promise<void> {
  for (const [name, x] of Object.entries(step.extract ?? {})) {
    let v: string | undefined;
    if ('regex' in x) v = new RegExp(x.regex).exec(body)?.[x.group];
    else if ('jsonPath' in x) {
      const parsed = bodyJson(await json());
      const got = parsed ? jsonPath(parsed.doc, x.jsonPath) : undefined;
      // JSON.stringify recurses, at most JSON_MAX_DEPTH deep here.
      v =
        typeof got === 'string'
          ? got
          : typeof got === 'number' || typeof got === 'boolean'
            ? String(got)
            : got === undefined || got === null
              ? undefined
              : JSON.stringify(got);
    } else if ('header' in x) v = headerValue(headers, x.header);
    else v = jar.get(url, x.cookie);
    if (v === undefined) throw new StepError('assertion', 'processing', `could not extract ${name}`);
    vars[name] = v;
  }
}

/** `${secret.NAME}` and `${var.NAME}` in request text. An unknown name is a failure, not "". */
export function template(text: string, secrets: Readonly<Record<string, string>>, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{(secret|var)\.([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, kind: string, name: string) => {
    const v = kind === 'secret' ? secrets[name] : vars[name];
    if (v === undefined) throw new StepError('internal', 'processing', `\${${kind}.${name}} is not defined`);
    return v;
  });
}

function templateJson(v: unknown, fill: (s: string) => string): unknown {
  if (typeof v === 'string') return fill(v);
  if (Array.isArray(v)) return v.map((x) => templateJson(x, fill));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, templateJson(x, fill)]));
  return v;
}

interface Cookie {
  name: string;
  value: string;
  domain: string;
  hostOnly: boolean;
  path: string;
  secure: boolean;
  expires: number;
}

/** Cookies across all steps and redirect hops of one run (RFC 6265, the parts a login needs). */
export class CookieJar {
  private cookies: Cookie[] = [];

  store(url: URL, setCookie: string | string[] | undefined): void {
    for (const line of setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const c: Cookie = {
        name: pair.slice(0, eq).trim(),
        value: pair.slice(eq + 1).trim(),
        domain: url.hostname.toLowerCase(),
        hostOnly: true,
        path: defaultPath(url),
        secure: false,
        expires: Infinity,
      };
      let foreign = false;
      for (const a of attrs) {
        const [k = '', ...rest] = a.split('=');
        const key = k.trim().toLowerCase();
        const val = rest.join('=').trim();
        if (key === 'domain' && val) {
          const d = val.replace(/^\./, '').toLowerCase();
          // A Domain the host is not in: the whole cookie is ignored (RFC 6265, 5.3 step 6).
          if (!domainMatch(url.hostname.toLowerCase(), d)) foreign = true;
          c.domain = d;
          c.hostOnly = false;
        } else if (key === 'path' && val.startsWith('/')) c.path = val;
        else if (key === 'secure') c.secure = true;
        else if (key === 'max-age' && /^-?\d+$/.test(val)) c.expires = Date.now() + Number(val) * 1000;
        else if (key === 'expires' && c.expires === Infinity) {
          const t = Date.parse(val);
          if (Number.isFinite(t)) c.expires = t;
        }
      }
      // A Secure cookie is accepted only over https, as browsers do (RFC 6265bis).
      if (foreign || (c.secure && url.protocol !== 'https:')) continue;
      this.cookies = this.cookies.filter((x) => !(x.name === c.name && x.domain === c.domain && x.path === c.path));
      if (c.expires > Date.now()) this.cookies.push(c);
    }
  }

  private matching(url: URL): Cookie[] {
    const host = url.hostname.toLowerCase();
    const t = Date.now();
    return this.cookies
      .filter(
        (c) =>
          c.expires > t &&
          (c.hostOnly ? host === c.domain : domainMatch(host, c.domain)) &&
          pathMatch(url.pathname, c.path) &&
          (!c.secure || url.protocol === 'https:'),
      )
      .sort((a, b) => b.path.length - a.path.length);
  }

  header(url: URL): string | undefined {
    const list = this.matching(url);
    return list.length > 0 ? list.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  get(url: URL, name: string): string | undefined {
    return this.matching(url).find((c) => c.name === name)?.value ?? this.cookies.find((c) => c.name === name)?.value;
  }
}

function defaultPath(url: URL): string {
  const p = url.pathname;
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function domainMatch(host: string, domain: string): boolean {
  return host === domain || (host.endsWith(`.${domain}`) && isIP(host) === 0);
}

function pathMatch(path: string, cookiePath: string): boolean {
  return path === cookiePath || (path.startsWith(cookiePath) && (cookiePath.endsWith('/') || path[cookiePath.length] === '/'));
}

function fmt(seconds: number): string {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}
