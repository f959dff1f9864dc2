// The http probe: one request, or a login flow of several steps that share a cookie jar and
// variables (a CSRF token from the form, a session cookie from the POST), like a user logging in.
// Every step is timed per phase (resolve, connect, tls, processing, transfer) on a cold
// connection pool per run, redirects are followed by the probe itself so cookies are kept at
// every hop, bodies are read only up to a limit. The Region Uppsala story: show which part of
// the login got slow while every port still answers.
import { isIP } from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Agent, buildConnector, request } from 'undici';
import type { HttpOptions, HttpStepOptions } from '../config/kinds.js';
import { classifyError, describeError, now, readSmallFile } from './net.js';
import type { FailureReason, Probe, ProbeContext, ProbeFailure, ProbeResult, StepResult } from './types.js';

const PHASES = ['resolve', 'connect', 'tls', 'processing', 'transfer'] as const;
type Phase = (typeof PHASES)[number];

/** Timestamps of one new connection, filled in by the connector's socket events. */
interface ConnTiming {
  start: number;
  lookup?: number;
  connect?: number;
  secure?: number;
}

class StepError extends Error {
  constructor(
    readonly reason: FailureReason,
    readonly phase: string,
    message: string,
  ) {
    super(message);
  }
}

export const httpProbe: Probe<HttpOptions> = {
  phases: PHASES,
  async run(ctx: ProbeContext<HttpOptions>): Promise<ProbeResult> {
    const o = ctx.options;
    const steps: HttpStepOptions[] = o.steps ?? [{ ...o, name: 'request' }];
    let timing: ConnTiming | undefined;
    let tlsOptions: Record<string, unknown> = {};
    if (o.tls) {
      tlsOptions = {
        ...(o.tls.caFile ? { ca: await readSmallFile(o.tls.caFile) } : {}),
        ...(o.tls.certFile ? { cert: await readSmallFile(o.tls.certFile) } : {}),
        ...(o.tls.keyFile ? { key: await readSmallFile(o.tls.keyFile) } : {}),
        ...(o.tls.serverName ? { servername: o.tls.serverName } : {}),
        ...(o.tls.minVersion ? { minVersion: o.tls.minVersion } : {}),
        rejectUnauthorized: !o.tls.insecureSkipVerify,
      };
    }
    const base = buildConnector({ ...tlsOptions, maxCachedSessions: 0, ...(o.ipFamily === 'ip4' ? { family: 4 } : o.ipFamily === 'ip6' ? { family: 6 } : {}) });
    // A fresh pool per run: the first request to each origin pays resolve/connect/tls, as a
    // user's browser does after a restart; later steps reuse the connection (and report no
    // connect phases, rather than zeros).
    const agent = new Agent({
      connect: (opts, cb) => {
        const t: ConnTiming = { start: now() };
        timing = t;
        const socket = base(opts, cb) as unknown as Socket | TLSSocket;
        socket.once('lookup', () => (t.lookup = now()));
        socket.once('connect', () => (t.connect = now()));
        socket.once('secureConnect', () => (t.secure = now()));
        return socket;
      },
      connections: 4,
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
        const r = await runStep(step, o, ctx, jar, vars, agent, () => {
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
      await agent.destroy().catch(() => undefined);
    }
    const phases: Record<string, number> = {};
    for (const p of PHASES) if (totals[p] !== undefined) phases[p] = totals[p];
    return {
      ok: failure === undefined,
      phases,
      steps: results,
      values,
      ...(failure ? { failure } : {}),
      ...(failure === undefined && slow ? { degraded: { reason: 'slow' as const, message: slow } } : {}),
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
  ctx: ProbeContext<HttpOptions>,
  jar: CookieJar,
  vars: Record<string, string>,
  agent: Agent,
  takeTiming: () => ConnTiming | undefined,
): Promise<StepOutcome> {
  const fill = (text: string) => template(text, ctx.secrets, vars);
  const started = now();
  const phases: Partial<Record<Phase, number>> = {};
  const add = (p: Phase, v: number) => (phases[p] = (phases[p] ?? 0) + Math.max(0, v));
  const result: StepResult = { name: step.name, ok: false, durationSeconds: 0, phases: {}, redirects: 0 };
  let url: URL;
  let method: string = step.method;
  let body: string | undefined;
  const headers: Record<string, string> = { 'user-agent': o.userAgent };
  let finalUrl: string | undefined;
  let contentLength: number | undefined;
  try {
    url = new URL(fill(step.url ?? ''), ctx.target);
    for (const [k, v] of Object.entries(step.headers ?? {})) headers[k.toLowerCase()] = fill(v);
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
      let phase: Phase = 'connect';
      let res: Awaited<ReturnType<typeof request>>;
      try {
        res = await request(url, { method: method as 'GET', headers: hopHeaders, ...(body !== undefined ? { body } : {}), dispatcher: agent, signal: ctx.signal });
      } catch (err) {
        const t = takeTiming();
        if (t) phase = t.connect === undefined ? (t.lookup === undefined && isIP(url.hostname) === 0 ? 'resolve' : 'connect') : url.protocol === 'https:' && t.secure === undefined ? 'tls' : 'processing';
        else phase = 'processing';
        throw new StepError(reasonOf(err), phase, `step ${step.name}: ${describeError(err)}`);
      }
      const headersAt = now();
      const t = takeTiming();
      let ready = hopStart;
      if (t) {
        if (t.lookup !== undefined) add('resolve', t.lookup - t.start);
        if (t.connect !== undefined) add('connect', t.connect - (t.lookup ?? t.start));
        if (t.secure !== undefined && t.connect !== undefined) add('tls', t.secure - t.connect);
        ready = t.secure ?? t.connect ?? t.start;
      }
      add('processing', headersAt - ready);
      jar.store(url, res.headers['set-cookie']);
      const location = res.headers.location;
      if (step.followRedirects && [301, 302, 303, 307, 308].includes(res.statusCode) && typeof location === 'string') {
        await res.body.dump({ limit: o.maxBodySize }).catch(() => undefined);
        add('transfer', now() - headersAt);
        if (hop >= o.maxRedirects) throw new StepError('too_many_redirects', 'processing', `step ${step.name}: more than ${o.maxRedirects} redirects`);
        result.redirects = (result.redirects ?? 0) + 1;
        url = new URL(location, url);
        if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          delete headers['content-type'];
        }
        continue;
      }
      const read = await readBody(res.body, o.maxBodySize);
      add('transfer', now() - headersAt);
      finalUrl = url.href;
      result.status = res.statusCode;
      contentLength = read.bytes;
      if (read.tooLarge) throw new StepError('body_too_large', 'transfer', `step ${step.name}: body larger than ${o.maxBodySize} bytes (read stopped)`);
      const elapsed = now() - started;
      checkExpect(step, res.statusCode, res.headers, read.text, elapsed);
      extract(step, read.text, res.headers, jar, url, vars);
      break;
    }
    result.ok = true;
  } catch (err) {
    const e = err instanceof StepError ? err : new StepError(reasonOf(err), 'processing', `step ${step.name}: ${describeError(err)}`);
    result.failure = { phase: e.phase, reason: e.reason, message: e.message };
  }
  result.durationSeconds = now() - started;
  for (const p of PHASES) if (phases[p] !== undefined) result.phases[p] = phases[p];
  if (result.ok && step.degradedAbove !== undefined && result.durationSeconds * 1000 > step.degradedAbove) result.slow = true;
  return { result, ...(contentLength !== undefined ? { contentLength } : {}), ...(finalUrl ? { finalUrl } : {}) };
}

function reasonOf(err: unknown): FailureReason {
  const code = (err as { code?: unknown } | null)?.code;
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'AbortError' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_ABORTED') return 'timeout';
  if (code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') return 'reset';
  if (code === 'ERR_INVALID_URL') return 'protocol';
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause && typeof cause === 'object' && 'code' in cause) return classifyError(cause);
  return classifyError(err);
}

/** Reads a body up to `limit` bytes; beyond that it stops reading and says so. */
async function readBody(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, limit: number): Promise<{ text: string; bytes: number; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > limit) {
      body.destroy();
      return { text: '', bytes, tooLarge: true };
    }
    chunks.push(chunk);
  }
  return { text: Buffer.concat(chunks, bytes).toString('utf8'), bytes, tooLarge: false };
}

type Headers = Record<string, string | string[] | undefined>;

function headerValue(headers: Headers, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

function checkExpect(step: HttpStepOptions, status: number, headers: Headers, body: string, elapsed: number): void {
  const e = step.expect;
  const fail = (reason: FailureReason, message: string) => {
    throw new StepError(reason, 'processing', `step ${step.name}: ${message}`);
  };
  if (e.status ? !e.status.includes(status) : status < 200 || status > 299) {
    fail('http_status', `status ${status}, expected ${e.status ? e.status.join(' or ') : '2xx'}`);
  }
  // Messages name the rule, never quote the body: a login page may echo what was sent.
  for (const re of e.bodyMatches ?? []) if (!new RegExp(re).test(body)) fail('assertion', `body does not match /${re}/`);
  for (const re of e.bodyNotMatches ?? []) if (new RegExp(re).test(body)) fail('assertion', `body matches /${re}/`);
  for (const text of e.bodyContains ?? []) if (!body.includes(text)) fail('assertion', `body does not contain the expected text (${text.length} characters)`);
  if (e.json || e.jsonExists) {
    let doc: unknown;
    try {
      doc = JSON.parse(body);
    } catch {
      fail('assertion', 'body is not JSON');
    }
    for (const path of e.jsonExists ?? []) if (jsonPath(doc, path) === undefined) fail('assertion', `JSON has no ${path}`);
    for (const [path, want] of Object.entries(e.json ?? {})) {
      const got = jsonPath(doc, path);
      if (got !== want) fail('assertion', `JSON ${path} is ${got === undefined ? 'missing' : typeof got === 'object' ? 'not a plain value' : JSON.stringify(got).slice(0, 40)}, expected ${JSON.stringify(want)}`);
    }
  }
  for (const [name, re] of Object.entries(e.headers ?? {})) {
    const v = headerValue(headers, name);
    if (v === undefined || !new RegExp(re).test(v)) fail('assertion', `header ${name} ${v === undefined ? 'missing' : `does not match /${re}/`}`);
  }
  if (e.maxDuration !== undefined && elapsed * 1000 > e.maxDuration) fail('assertion', `took ${fmt(elapsed)}, more than ${fmt(e.maxDuration / 1000)}`);
}

function extract(step: HttpStepOptions, body: string, headers: Headers, jar: CookieJar, url: URL, vars: Record<string, string>): void {
  for (const [name, x] of Object.entries(step.extract ?? {})) {
    let v: string | undefined;
    if ('regex' in x) v = new RegExp(x.regex).exec(body)?.[x.group];
    else if ('jsonPath' in x) {
      try {
        const got = jsonPath(JSON.parse(body), x.jsonPath);
        v = typeof got === 'string' ? got : typeof got === 'number' || typeof got === 'boolean' ? String(got) : got === undefined || got === null ? undefined : JSON.stringify(got);
      } catch {
        v = undefined;
      }
    } else if ('header' in x) v = headerValue(headers, x.header);
    else v = jar.get(url, x.cookie);
    if (v === undefined) throw new StepError('assertion', 'processing', `step ${step.name}: could not extract ${name}`);
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

/** A small JSON path: `$.a.b[0].c`, `a.b`, `$["key with dots"]`. */
export function jsonPath(doc: unknown, path: string): unknown {
  const segments: (string | number)[] = [];
  const re = /\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\["([^"]*)"\]|^([A-Za-z_][\w$-]*)/g;
  const p = path.startsWith('$') ? path.slice(1) : path;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(p)) !== null) {
    if (m.index !== consumed) return undefined;
    consumed = re.lastIndex;
    segments.push(m[2] !== undefined ? Number(m[2]) : ((m[1] ?? m[3] ?? m[4]) as string));
  }
  if (consumed !== p.length) return undefined;
  let cur: unknown = doc;
  for (const s of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[s];
  }
  return cur;
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
      const c: Cookie = { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), domain: url.hostname.toLowerCase(), hostOnly: true, path: defaultPath(url), secure: false, expires: Infinity };
      for (const a of attrs) {
        const [k = '', ...rest] = a.split('=');
        const key = k.trim().toLowerCase();
        const val = rest.join('=').trim();
        if (key === 'domain' && val) {
          const d = val.replace(/^\./, '').toLowerCase();
          if (!domainMatch(url.hostname.toLowerCase(), d)) continue;
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
      this.cookies = this.cookies.filter((x) => !(x.name === c.name && x.domain === c.domain && x.path === c.path));
      if (c.expires > Date.now()) this.cookies.push(c);
    }
  }

  private matching(url: URL): Cookie[] {
    const host = url.hostname.toLowerCase();
    const t = Date.now();
    return this.cookies
      .filter((c) => c.expires > t && (c.hostOnly ? host === c.domain : domainMatch(host, c.domain)) && pathMatch(url.pathname, c.path) && (!c.secure || url.protocol === 'https:'))
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
