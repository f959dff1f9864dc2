// Telling departments (`agent.notify`): the public URL the Atom feed and the notices link to,
// and the webhooks that are told of incidents, planned work and change verification (agent/
// notify.ts sends them). Parsed and resolved here: each webhook's secret read from its reference,
// its caFile read, and its URL checked; the URL's own credentials count as secrets too.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { duration, isTimeZone, positiveDuration, secretRef, type SecretRef } from './fields.js';
import { LANGUAGES, type Language } from '../probes/kit/kind.js';

/** Every event a notice can be, in the order docs/api.md lists them. */
export const NOTICE_EVENTS = [
  'incident.opened',
  'incident.updated',
  'incident.closed',
  'maintenance.scheduled',
  'maintenance.started',
  'maintenance.updated',
  'maintenance.ended',
  'maintenance.cancelled',
  'change.regressed',
  'change.verified',
] as const;

export type NoticeEvent = (typeof NOTICE_EVENTS)[number];

/** The shapes a webhook's body takes: vakt's plain JSON, Slack-style `{"text"}`, a Teams Adaptive Card message. */
export const WEBHOOK_FORMATS = ['json', 'slack', 'teams'] as const;

/** A webhook's name: a label value in its metrics, and its name in the log. */
export const WEBHOOK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const httpUrl = (what: string) =>
  z.string({ error: `expected ${what}` }).refine(
    (s) => {
      try {
        const u = new URL(s);
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
      } catch {
        return false;
      }
    },
    { message: `expected ${what}` },
  );

const webhook = z.strictObject({
  name: z.string({ error: 'expected a webhook name' }).regex(WEBHOOK_NAME, {
    message: 'expected a name of letters, digits, "-", "_" and "." (at most 63, starting with a letter or digit)',
  }),
  url: httpUrl('an http:// or https:// URL such as https://hooks.example.org/vakt'),
  /** The HMAC-SHA256 key of X-Vakt-Signature; required with format json. */
  secret: secretRef.optional(),
  /** The events sent (default: all). */
  events: z
    .array(z.enum(NOTICE_EVENTS, { error: `expected one of ${NOTICE_EVENTS.join(', ')}` }))
    .min(1)
    .optional(),
  format: z.enum(WEBHOOK_FORMATS).default('json'),
  /** The language of the text and title. */
  language: z.enum(LANGUAGES).default('en'),
  /** Each attempt: connect, send, and the answer's headers. */
  timeout: positiveDuration.prefault('10s'),
  /** Attempts per notice (1: no retries). */
  attempts: z.int().min(1).max(20).default(5),
  /** The wait before the first retry; doubled for each further one (at most 5 minutes). */
  retryDelay: positiveDuration.prefault('5s'),
  /** Notices waiting at most; past it the oldest is dropped (and counted). */
  queue: z.int().min(1).max(10_000).default(100),
  /** PEM CA certificates to verify an https receiver with (a private CA), instead of the system's. */
  caFile: z.string().min(1).optional(),
});

export const notifySchema = z.strictObject({
  /** The status page as its readers reach it (https://status.example.org/): the feed's self link, the notices' url. */
  publicUrl: httpUrl('an http:// or https:// URL such as https://status.example.org/').optional(),
  /** The time zone of the times in the notices' sentences; absent: the host's. */
  timeZone: z
    .string()
    .refine((tz) => isTimeZone(tz), { message: 'expected an IANA time zone such as Europe/Stockholm' })
    .optional(),
  /** incident.updated and maintenance.updated wait this long for further changes; only the latest is sent. */
  updateDelay: duration.prefault('1m'),
  webhooks: z.array(webhook).max(32).default([]),
});

export type ParsedNotify = z.output<typeof notifySchema>;

/** A webhook as the agent sends to it. */
export interface WebhookConfig {
  name: string;
  url: string;
  /** The HMAC key (resolved); absent: no signature (slack and teams receivers do not check one). */
  secret?: string;
  events: NoticeEvent[];
  format: (typeof WEBHOOK_FORMATS)[number];
  language: Language;
  timeoutMs: number;
  attempts: number;
  retryDelayMs: number;
  queue: number;
  /** PEM text of caFile. */
  ca?: string;
}

export interface NotifyConfig {
  /** Without a trailing slash. */
  publicUrl?: string;
  timeZone?: string;
  updateDelayMs: number;
  webhooks: WebhookConfig[];
}

/**
 * agent.notify as the agent runs it: secrets and CA files read (relative paths against `baseDir`),
 * names unique. `fail` gets what is wrong, at a path under agent.notify; `secretError` a secret
 * that cannot be read (vakt validate reports those apart).
 */
export function resolveNotify(
  p: ParsedNotify,
  baseDir: string,
  readSecret: (ref: SecretRef) => string | { error: string },
  fail: (path: (string | number)[], message: string) => void,
  secretError: (path: (string | number)[], message: string) => void,
): NotifyConfig {
  const names = new Map<string, number>();
  const webhooks = p.webhooks.map((w, i): WebhookConfig => {
    let secret: string | undefined;
    if (w.secret !== undefined) {
      const v = readSecret(w.secret);
      if (typeof v === 'string') secret = v;
      else secretError(['webhooks', i, 'secret'], v.error);
    } else if (w.format === 'json') {
      fail(['webhooks', i], 'expected secret (a secret reference {env: NAME} or {file: PATH}): receivers of format json verify X-Vakt-Signature with it');
    }
    const first = names.get(w.name);
    if (first !== undefined) fail(['webhooks', i, 'name'], `expected a unique webhook name (also used by agent.notify.webhooks[${first}])`);
    else names.set(w.name, i);
    let ca: string | undefined;
    if (w.caFile !== undefined) {
      const file = isAbsolute(w.caFile) ? w.caFile : resolvePath(baseDir, w.caFile);
      try {
        ca = readFileSync(file, 'utf8');
        if (!ca.includes('-----BEGIN CERTIFICATE-----')) fail(['webhooks', i, 'caFile'], `expected PEM certificates in ${file}, found none`);
      } catch (err) {
        fail(['webhooks', i, 'caFile'], `expected a readable file ${file}, found ${(err as NodeJS.ErrnoException).code ?? 'an error'}`);
      }
      if (!w.url.startsWith('https:')) fail(['webhooks', i, 'caFile'], 'expected caFile only with an https:// url');
    }
    return {
      name: w.name,
      url: w.url,
      ...(secret !== undefined ? { secret } : {}),
      events: w.events ? [...new Set(w.events)] : [...NOTICE_EVENTS],
      format: w.format,
      language: w.language,
      timeoutMs: w.timeout,
      attempts: w.attempts,
      retryDelayMs: w.retryDelay,
      queue: w.queue,
      ...(ca !== undefined ? { ca } : {}),
    };
  });
  return {
    ...(p.publicUrl !== undefined ? { publicUrl: p.publicUrl.replace(/\/+$/, '') } : {}),
    ...(p.timeZone !== undefined ? { timeZone: p.timeZone } : {}),
    updateDelayMs: p.updateDelay,
    webhooks,
  };
}

/**
 * The parts of a webhook URL that are secret: its user and password, its query values, and path
 * segments long enough to be a token (a Slack or Teams webhook URL is its own credential).
 */
export function urlSecrets(url: string): string[] {
  const out: string[] = [];
  try {
    const u = new URL(url);
    for (const v of [u.username, u.password, decodeURIComponent(u.username), decodeURIComponent(u.password)]) if (v !== '') out.push(v);
    for (const v of u.searchParams.values()) if (v.length >= 8) out.push(v);
    for (const seg of u.pathname.split('/')) if (tokenLike(seg)) out.push(seg);
  } catch {
    // Not a URL: the schema refused it already.
  }
  return out;
}

/** A webhook URL as the log shows it: no user, password, query or fragment, and token-like path segments as "…". */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname
      .split('/')
      .map((seg) => (tokenLike(seg) ? '…' : seg))
      .join('/');
    return `${u.protocol}//${u.host}${path}${u.search !== '' ? '?…' : ''}`;
  } catch {
    return '(not a URL)';
  }
}

/** A path segment that may be a token: 16 characters or more. */
function tokenLike(seg: string): boolean {
  return seg.length >= 16;
}
