// Reusable schema pieces: durations, sizes, host:port, regexes, secret references.
// Every custom message reads "expected ..."; the loader appends "found ..." from the YAML node.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';
import { LANGUAGES } from '../probes/kit/kind.js';

export const duration = z.string({ error: 'expected a duration such as 250ms, 5s or 2m' }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 250ms, 5s or 2m' });
    return z.NEVER;
  }
  return ms;
});

/** Node timers fire after 1 ms when given more than 2^31-1 ms (about 24.8 days). */
export const MAX_TIMER_MS = 24 * 86_400_000;

/** A duration that may be 0 but must fit a timer. */
export const boundedDuration = duration.refine((ms) => ms <= MAX_TIMER_MS, { message: 'expected a duration of at most 24d' });

export const positiveDuration = duration
  .refine((ms) => ms > 0, { message: 'expected a duration greater than 0' })
  .refine((ms) => ms <= MAX_TIMER_MS, { message: 'expected a duration of at most 24d' });

export const byteSize = z.union([z.string(), z.number()], { error: 'expected a size such as 65536, 64KiB or 1MiB' }).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined || n <= 0) {
    ctx.addIssue({ code: 'custom', message: 'expected a size such as 65536, 64KiB or 1MiB' });
    return z.NEVER;
  }
  return n;
});

/** Where the agent listens: like hostPort, but port 0 (any free port) is allowed. */
export const listenAddress = z.string({ error: 'expected host:port' }).refine((s) => splitHostPort(s, true) !== undefined, {
  message: 'expected host:port to listen on (IPv6 in brackets, e.g. [::]:9464; port 0 picks a free port)',
});

export function splitHostPort(s: string, allowPortZero = false): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port < (allowPortZero ? 0 : 1) || port > 65535) return undefined;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

export const ipAddress = z.string({ error: 'expected an IP address' }).refine((s) => isIP(s) !== 0, {
  message: 'expected an IPv4 or IPv6 address',
});

export const regex = z.string({ error: 'expected a regular expression' }).superRefine((s, ctx) => {
  try {
    new RegExp(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `expected a valid regular expression (${(err as Error).message.replace(/^Invalid regular expression: /, '')})` });
  }
});

export type SecretRef = { env: string } | { file: string };

/** A secret is never written inline: only `{env: NAME}` or `{file: PATH}`. */
export const secretRef = z.unknown().transform((v, ctx): SecretRef => {
  const bad = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (typeof v === 'string' || typeof v === 'number') {
    return bad('expected a secret reference {env: NAME} or {file: PATH} (secrets are never written inline)');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad('expected a secret reference {env: NAME} or {file: PATH}');
  const keys = Object.keys(v);
  const obj = v as Record<string, unknown>;
  if (keys.length === 1 && keys[0] === 'env' && typeof obj.env === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(obj.env)) {
    return { env: obj.env };
  }
  if (keys.length === 1 && keys[0] === 'file' && typeof obj.file === 'string' && obj.file.length > 0) {
    return { file: obj.file };
  }
  return bad('expected exactly one of {env: NAME} or {file: PATH}');
});

export const checkName = z
  .string({ error: 'expected a check name' })
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, { message: 'expected a name of lowercase letters, digits, "-" and "_" (at most 63)' });

/** A site (vantage point) name: safe as a label value, in a file name and on a command line. */
export const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const siteName = z
  .string({ error: 'expected a site name' })
  .regex(SITE_NAME, { message: 'expected a site name of letters, digits, "-", "_" and "." (at most 63, starting with a letter or digit)' });

/**
 * Label names vakt's own series use (and Prometheus' target labels): a constant label of the same
 * name would be silently dropped from those series, so it is refused. test/agent/metrics.test.ts
 * checks this list against every registered metric.
 */
export const RESERVED_LABELS = [
  'check',
  'kind',
  'target',
  'phase',
  'reason',
  'result',
  'status',
  'cause',
  'stat',
  'version',
  'nodejs',
  'fingerprint_sha256',
  'subject',
  'issuer',
  'subjectalternative',
  'serialnumber',
  'group',
  'title',
  'step',
  'code',
  'rcode',
  'queue',
  'oid_name',
  'le',
  'quantile',
  'type',
  'space',
  'major',
  'minor',
  'patch',
  'job',
  'instance',
  'depends_on',
  'webhook',
  'service',
  'window',
] as const;

export const labelName = z
  .string()
  .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, { message: 'expected a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)' })
  .refine((s) => !(RESERVED_LABELS as readonly string[]).includes(s) && !s.startsWith('__'), {
    message: `expected a label name vakt's own series do not use (reserved: ${RESERVED_LABELS.join(', ')}, __*)`,
  });

/** An IANA time zone name that this Node knows (Europe/Stockholm). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** A text in some of the status page's languages (`{sv: Patientjournal, fi: Potilaskertomus}`). */
export function translations(max: number) {
  const languages = LANGUAGES.join(', ');
  return z
    .partialRecord(z.enum(LANGUAGES), z.string().min(1).max(max), { error: `expected a map of language (${languages}) to string` })
    .refine((m) => Object.keys(m).length > 0, { message: `expected at least one language (${languages})`, when: (p) => p.issues.length === 0 });
}

/**
 * A text people read on the status page: one string, or one per language. In a map the first
 * entry is the plain text (the API's, and the page's in a language the map lacks).
 */
export function pageText(max: number) {
  return z.union([z.string().min(1).max(max), translations(max)], {
    error: `expected a string, or a map of language (${LANGUAGES.join(', ')}) to string`,
  });
}
