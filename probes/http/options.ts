// The http kind's options block (`http: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { byteSize, positiveDuration, regex } from '../../config/fields.js';
import { tlsClient } from '../kit/options.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'processing', 'transfer'] as const;

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const varName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'expected a variable name ([A-Za-z_][A-Za-z0-9_]*)' });

/** What a response must look like. A mismatch fails the step (reason http_status or assertion). */
const httpExpect = z.strictObject({
  /** Accepted status codes of the final response; default any 2xx. */
  status: z.array(z.int().min(100).max(599)).min(1).optional(),
  bodyMatches: z.array(regex).optional(),
  bodyNotMatches: z.array(regex).optional(),
  bodyContains: z.array(z.string().min(1)).optional(),
  /** JSON path ($.a.b[0]) -> expected value. */
  json: z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  /** JSON paths that must exist. */
  jsonExists: z.array(z.string().min(1)).optional(),
  /** Header name -> regex its value must match. */
  headers: z.record(z.string().min(1), regex).optional(),
  /** The step must take at most this long (a failure, reason assertion; for "slow", use degradedAbove). */
  maxDuration: positiveDuration.optional(),
});

/** Where a variable for later steps comes from. */
const httpExtract = z.union([
  z.strictObject({ regex, group: z.int().min(0).max(20).default(1) }),
  z.strictObject({ jsonPath: z.string().min(1) }),
  z.strictObject({ header: z.string().min(1) }),
  z.strictObject({ cookie: z.string().min(1) }),
]);

const httpRequest = {
  method: z.enum(HTTP_METHODS).default('GET'),
  /** Absolute URL, or a path relative to the check's target. Templated: ${secret.NAME}, ${var.NAME}. */
  url: z.string().min(1).optional(),
  headers: z.record(z.string().min(1), z.string()).optional(),
  /** Sent as application/x-www-form-urlencoded. */
  form: z.record(z.string().min(1), z.string()).optional(),
  /** Sent as application/json (string leaves templated). */
  json: z.unknown().optional(),
  body: z.string().optional(),
  followRedirects: z.boolean().default(true),
  expect: httpExpect.prefault({}),
  extract: z.record(varName, httpExtract).optional(),
  /** A step slower than this makes the run degraded (reason slow), naming the step. */
  degradedAbove: positiveDuration.optional(),
};

const httpStep = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, { message: 'expected a step name of lowercase letters, digits, "-" and "_" (at most 32)' }),
    ...httpRequest,
  })
  .superRefine(bodyRules);

function bodyRules(o: { form?: unknown; json?: unknown; body?: unknown }, ctx: z.RefinementCtx): void {
  const bodies = [o.form, o.json, o.body].filter((b) => b !== undefined).length;
  if (bodies > 1) ctx.addIssue({ code: 'custom', path: ['body'], message: 'expected at most one of form, json and body' });
}

export const options = z
  .strictObject({
    /** Several requests in order, sharing cookies and variables (a login flow). */
    steps: z.array(httpStep).min(1).max(20).optional(),
    ...httpRequest,
    maxRedirects: z.int().min(0).max(30).default(10),
    /** Larger response bodies fail the step (reason body_too_large) instead of being read on. */
    maxBodySize: byteSize.default(1024 * 1024),
    tls: tlsClient.optional(),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    userAgent: z.string().min(1).default('vakt (synthetic monitoring)'),
  })
  .superRefine((o, ctx) => {
    bodyRules(o, ctx);
    if (o.steps !== undefined) {
      for (const key of ['url', 'headers', 'form', 'json', 'body', 'extract', 'degradedAbove'] as const) {
        if (o[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `expected ${key} inside a step when steps are given` });
      }
      const names = new Set<string>();
      o.steps.forEach((st, i) => {
        if (names.has(st.name)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'name'], message: 'expected a unique step name' });
        names.add(st.name);
      });
    }
  });
export type HttpOptions = z.output<typeof options>;
export type HttpStepOptions = z.output<typeof httpStep>;
