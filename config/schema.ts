// The config file's schema: agent block, defaults, checks; and the cross-field rules
// (unique names, dependsOn references without cycles, schedule sanity).
import { validate as validateCron } from 'node-cron';
import { z } from 'zod';
import {
  byteSize,
  checkName,
  duration,
  isTimeZone,
  labelName,
  listenAddress,
  pageText,
  positiveDuration,
  secretRef,
  siteName,
  translations,
} from './fields.js';
import { KIND, KIND_LIST, type Kind } from '../probes/kinds.js';
import { LANGUAGES, type KindDefinition, type Language } from '../probes/kit/kind.js';
import type { Target } from '../probes/kit/target.js';
import { SECRET_NAME } from '../probes/kit/options.js';
import { formatDuration } from './units.js';
import { credentialName } from './web.js';
import { maintenanceWindowSchema } from './maintenance.js';
import { notifySchema } from './notify.js';

/** The plain text of a page text: the string, or a map's first entry. */
export function plainText(text: string | Partial<Record<Language, string>>): string {
  return typeof text === 'string' ? text : (Object.values(text)[0] ?? '');
}

/** Who may use a route class: open, loopback (clients on this host), authenticated (any valid credential) or a list of credential names. */
const accessRule = z.union([z.enum(['open', 'loopback', 'authenticated']), z.array(credentialName).min(1)], {
  error: 'expected open, loopback, authenticated or a list of user and token names',
});

/** Which duration histograms a check exports: none, the whole run only, or also per phase. */
const histogramMode = z.enum(['off', 'total', 'phases']);

const agent = z.strictObject({
  listen: listenAddress.default('0.0.0.0:9464'),
  /** Constant labels on every series: the vantage point (site, zone, agent). */
  labels: z.record(labelName, z.string().max(128)).default({}),
  /** Maximum probes in flight at once. */
  concurrency: z.int().min(1).max(100_000).default(256),
  /** Worker threads that run the probes, off the thread that serves and records; 0 runs them on the main thread. */
  probeThreads: z.int().min(0).max(64).default(1),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** Largest random delay added to each interval run, as a fraction of the interval. */
  jitter: z.number().min(0).max(0.5).default(0.01),
  /** Where learnt baselines are kept across restarts (JSON; written atomically). */
  stateFile: z.string().min(1).optional(),
  /** Connections the agent's own HTTP server holds at most; more are closed as they arrive. */
  maxConnections: z.int().min(8).max(65_536).default(512),
  /** The incident journal: every state change and incident, appended to a file on the state volume. */
  journal: z
    .strictObject({
      /** Default: journal.jsonl beside agent.stateFile; without either, the journal is kept in memory only. */
      file: z.string().min(1).optional(),
      /** Size at which the file is rotated. */
      maxSize: byteSize.prefault('16MiB').refine((n) => n >= 65_536 && n <= 1 << 30, { message: 'expected a size from 64KiB to 1GiB' }),
      /** Rotated files kept beside the current one. */
      keep: z.int().min(0).max(20).default(3),
    })
    .prefault({}),
  /** Endpoint security: TLS and basic auth from a web config file, bearer tokens, who may use which routes. */
  web: z
    .strictObject({
      /** A web config file in the exporter-toolkit format (tls_server_config, basic_auth_users, http_server_config). */
      config: z.string().min(1).optional(),
      /** Bearer tokens by name, each from a secret reference. */
      tokens: z.record(credentialName, secretRef).default({}),
      access: z
        .strictObject({
          status: accessRule.optional(),
          read: accessRule.optional(),
          admin: accessRule.optional(),
        })
        .prefault({}),
      /** A second listener serving the status page (and /healthz, /readyz) alone. */
      statusListen: listenAddress.optional(),
    })
    .prefault({}),
  statusPage: z
    .strictObject({
      /** The page's heading; absent: "System status" in the page's language. */
      title: pageText(120).optional(),
      /** A line under the heading; absent: where the checks run from (the site label), when there is one. */
      subtitle: pageText(200).optional(),
      /** Interface language; `auto` follows the browser's Accept-Language. */
      language: z.enum(['auto', ...LANGUAGES]).default('auto'),
      /** Seconds between automatic refreshes of the page. */
      refresh: z.int().min(5).max(3600).default(15),
      /** Group names in other languages, by the name the checks' `group` uses. */
      groups: z.record(z.string().min(1).max(120), translations(120)).optional(),
    })
    .prefault({}),
  /** Telling departments: the feed's public URL and the webhooks (config/notify.ts). */
  notify: notifySchema.prefault({}),
  /** Duration histograms of checks that do not set their own: off (the lean default), total, phases. */
  histograms: histogramMode.optional(),
  /** Deprecated (before 0.2): true means histograms: phases, false histograms: total. */
  phaseHistograms: z.boolean().optional(),
  /** A run during which the event loop stalled longer than this is marked disturbed (timings not trusted). */
  maxLoopDelay: positiveDuration.prefault('20ms'),
  /** First runs after start (or reload) are spread over this time, so checks do not fire together. */
  startSpread: duration.prefault('10s'),
});

/** When a successful run still counts as degraded because it was slow. */
const degradedLimits = z.strictObject({
  /** Absolute limit on the run's duration. */
  above: positiveDuration.optional(),
  /** Relative limit: this many times the check's learnt baseline (median of recent good runs). */
  baselineFactor: z.number().min(1).max(1000).optional(),
  /** How many recent good runs the baseline is learnt from. */
  baselineWindow: z.int().min(5).max(10_000).optional(),
  /** Runs needed before the baseline is used. */
  baselineMinRuns: z.int().min(1).max(10_000).optional(),
});

/** A check whose state changes more than `changes` times within `window` is flagged as flapping. */
const flapping = z.strictObject({
  window: positiveDuration.optional(),
  changes: z.int().min(2).max(1000).optional(),
});

const defaults = z.strictObject({
  interval: positiveDuration.optional(),
  timeout: positiveDuration.optional(),
  retries: z.int().min(0).max(10).optional(),
  retryInterval: positiveDuration.optional(),
  recoverAfter: z.int().min(1).max(100).optional(),
  group: z.string().min(1).optional(),
  degraded: degradedLimits.optional(),
  flapping: flapping.optional(),
  histograms: histogramMode.optional(),
  /** false: the checks that inherit it stay in the config but do not run (an included file's checks under construction). */
  enabled: z.boolean().optional(),
});

/** The fields every check has besides name, kind and target(s), whatever its kind. */
const checkRest = {
  /** Display name on the status page: one, or one per language. */
  title: pageText(120).optional(),
  group: z.string().min(1).max(120).optional(),
  interval: positiveDuration.optional(),
  cron: z
    .string()
    .refine((s) => validateCron(s), { message: 'expected a cron expression such as "*/5 * * * *"' })
    .optional(),
  timezone: z
    .string()
    .refine((tz) => isTimeZone(tz), { message: 'expected an IANA time zone such as Europe/Stockholm' })
    .optional(),
  timeout: positiveDuration.optional(),
  retries: z.int().min(0).max(10).optional(),
  retryInterval: positiveDuration.optional(),
  recoverAfter: z.int().min(1).max(100).optional(),
  dependsOn: z.array(checkName).default([]),
  degraded: degradedLimits.optional(),
  flapping: flapping.optional(),
  /** Duration histograms for this check (overrides defaults and agent.histograms). */
  histograms: histogramMode.optional(),
  secrets: z.record(z.string().regex(SECRET_NAME, { message: 'expected a secret name ([A-Za-z_][A-Za-z0-9_]*)' }), secretRef).default({}),
  /** The sites this check runs at (config/placement.ts); without it, every site. */
  sites: z.array(siteName).min(1).max(1000).optional(),
  /** false: the check stays in the config, validated, but is not run (config/placement.ts); default defaults.enabled, else true. */
  enabled: z.boolean().optional(),
};

function checkVariant<K extends Kind>(kind: K) {
  const def = KIND[kind];
  const target = def.target.schema;
  return z.strictObject({
    name: checkName,
    kind: z.literal(kind),
    target: target.optional(),
    ...(def.target.multiple ? { targets: z.array(target).min(1).max(16).optional() } : {}),
    ...checkRest,
    [kind]: (def.options as z.ZodType).prefault({}),
  } as unknown as {
    kind: z.ZodLiteral<K>;
    target: z.ZodOptional<(typeof KIND)[K]['target']['schema']>;
    targets: z.ZodOptional<z.ZodArray<(typeof KIND)[K]['target']['schema']>>;
  } & {
    name: typeof checkName;
  } & typeof checkRest & {
      [P in K]: z.ZodPrefault<(typeof KIND)[K]['options']>;
    });
}

const check = z.discriminatedUnion('kind', KIND_LIST.map((k) => checkVariant(k.name)) as unknown as [ReturnType<typeof checkVariant<Kind>>]);

/** What every config file may hold: defaults, checks, and further files to read (the loader reads them). */
const fileParts = {
  defaults: defaults.prefault({}),
  /** At least one check in all the files together (the loader counts them). */
  checks: z.array(check).default([]),
  include: z.array(z.string()).optional(),
};

/**
 * A service made of redundant checks (config/services.ts): up while at least `minUp` of its
 * members work, degraded while some do not, down when fewer than `minUp` do.
 */
const service = z.strictObject({
  name: checkName,
  /** Display name on the status page: one, or one per language; default the name. */
  title: pageText(120).optional(),
  /** Status-page group; default the group of its first member. */
  group: z.string().min(1).max(120).optional(),
  /** The member checks: names, or globs of names (`*` any characters). */
  anyOf: z
    .array(
      z
        .string()
        .min(1)
        .max(256)
        .regex(/^[A-Za-z0-9_.*-]+$/, { message: 'expected a check name or a glob of check names (letters, digits, _ . - and *)' }),
    )
    .min(1)
    .max(100),
  /** Members that must work for the service to be up. */
  minUp: z.int().min(1).max(100).default(1),
  /** What the members are, in the plural, for the status page ("firewall paths"): one, or one per language. */
  memberNoun: pageText(60).optional(),
});

export const configSchema = z.strictObject({
  agent: agent.prefault({}),
  ...fileParts,
  /** The sites agents of this config run at: when set, every site named anywhere must be one of them. */
  sites: z.array(siteName).min(1).max(1000).optional(),
  /** Planned work: windows during which checks read `maintenance` and the shipped rules stay quiet (config/maintenance.ts). */
  maintenance: z.array(maintenanceWindowSchema).max(1000).default([]),
  /** Services made of redundant checks (`anyOf`): one row on the status page, paged on as one (config/services.ts). */
  services: z.array(service).max(1000).default([]),
});

/** An included file: agent settings and the declared sites belong to the main file only. */
export const includedFileSchema = z.strictObject(fileParts);

export interface CrossIssue {
  path: (string | number)[];
  message: string;
  /** For an issue at a defaults key: the check it was found on (the loader tells which file's defaults set the value). */
  check?: number;
}

export type ParsedConfig = z.output<typeof configSchema>;
export type ParsedCheck = ParsedConfig['checks'][number];
export type ParsedService = ParsedConfig['services'][number];
export type ParsedDefaults = ParsedConfig['defaults'];
/** The defaults block and one check, as the schema reads them (each on its own when the file has errors elsewhere). */
export const defaultsSchema = defaults;
export const checkSchema = check;

export type Schedule = { type: 'interval'; everyMs: number } | { type: 'cron'; expression: string; timezone?: string };

/** When a check runs and how long a run may take: the one place the defaults for both are applied. */
export function checkTiming(c: ParsedCheck, d: ParsedDefaults): { schedule: Schedule; timeoutMs: number } {
  const schedule: Schedule =
    c.cron !== undefined
      ? { type: 'cron', expression: c.cron, ...(c.timezone !== undefined ? { timezone: c.timezone } : {}) }
      : { type: 'interval', everyMs: c.interval ?? d.interval ?? DEFAULT_INTERVAL };
  return { schedule, timeoutMs: c.timeout ?? d.timeout ?? DEFAULT_TIMEOUT };
}

/**
 * Rules across a check's fields and across checks, on what the schema parsed: unique names,
 * dependsOn references and cycles, target(s), secret names, schedule sanity, and each kind's own
 * rules. `checks[i]` is undefined for a check the schema refused (its own errors are reported;
 * its name still counts for uniqueness and references); `defaultsOf(i)` gives the defaults check
 * i inherits, undefined when a defaults block was refused (the schedule rule, which needs them,
 * is then not applied to it). `where(first, duplicate)` names the first check of a duplicate name.
 */
export function crossCheckIssues(
  names: readonly (string | undefined)[],
  checks: readonly (ParsedCheck | undefined)[],
  defaultsOf: (i: number) => ParsedDefaults | undefined,
  where: (first: number, duplicate: number) => string = (first) => `checks[${first}]`,
): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const index = new Map<string, number>();
  names.forEach((name, i) => {
    if (name === undefined) return;
    const first = index.get(name);
    if (first !== undefined) issues.push({ path: ['checks', i, 'name'], message: `expected a unique check name (also used by ${where(first, i)})` });
    else index.set(name, i);
  });
  const graph: { name: string; dependsOn: string[] }[] = [];
  checks.forEach((c, i) => {
    if (c === undefined) return;
    // A self-dependency is reported below on its own; it is not also a cycle.
    graph.push({ name: c.name, dependsOn: c.dependsOn.filter((d) => d !== c.name) });
    c.dependsOn.forEach((dep, j) => {
      if (dep === c.name) issues.push({ path: ['checks', i, 'dependsOn', j], message: 'expected another check (a check cannot depend on itself)' });
      else if (!index.has(dep)) issues.push({ path: ['checks', i, 'dependsOn', j], message: 'expected the name of a configured check' });
    });
    const def = KIND[c.kind] as KindDefinition<string, z.ZodType>;
    const own = c as { target?: Target; targets?: Target[] };
    if (own.target === undefined && own.targets === undefined) {
      issues.push({ path: ['checks', i], message: def.target.multiple ? 'expected target (or targets: a list) to be set' : 'expected target to be set' });
    } else if (own.target !== undefined && own.targets !== undefined) {
      issues.push({ path: ['checks', i, 'targets'], message: 'expected either target or targets, not both' });
    }
    own.targets?.forEach((t, j) => {
      if (own.targets?.findIndex((x) => x.text === t.text) !== j) issues.push({ path: ['checks', i, 'targets', j], message: 'expected each target once' });
    });
    // Options that name a secret must name an entry of the check's secrets.
    const options = (c as unknown as Record<string, Record<string, unknown>>)[c.kind] ?? {};
    const secretNames = Object.keys(c.secrets);
    for (const key of def.secretOptions) {
      const v = options[key];
      if (typeof v === 'string' && !secretNames.includes(v)) {
        issues.push({
          path: ['checks', i, c.kind, key],
          message: `expected the name of an entry of the check's secrets (${secretNames.length > 0 ? secretNames.join(', ') : 'it has none'})`,
        });
      }
    }
    const targets = own.targets ?? (own.target !== undefined ? [own.target] : []);
    for (const issue of def.checkRules?.({ targets, options }) ?? []) {
      issues.push({ path: issue.path[0] === 'target' ? ['checks', i, ...issue.path] : ['checks', i, c.kind, ...issue.path], message: issue.message });
    }
    if (c.interval !== undefined && c.cron !== undefined) issues.push({ path: ['checks', i, 'cron'], message: 'expected either interval or cron, not both' });
    if (c.timezone !== undefined && c.cron === undefined)
      issues.push({ path: ['checks', i, 'timezone'], message: 'expected timezone only together with cron' });
    const defaults = defaultsOf(i);
    if (defaults === undefined) return;
    const { schedule, timeoutMs } = checkTiming(c, defaults);
    if (schedule.type === 'interval' && c.cron === undefined && timeoutMs > schedule.everyMs) {
      // Point at the value that is set: the check's own, else the defaults block's (the loader
      // reports that one once, however many checks inherit it).
      const message = `expected timeout (${formatDuration(timeoutMs)}) not longer than interval (${formatDuration(schedule.everyMs)})`;
      if (c.timeout !== undefined) issues.push({ path: ['checks', i, 'timeout'], message });
      else if (c.interval !== undefined) issues.push({ path: ['checks', i, 'interval'], message });
      else issues.push({ path: ['defaults', defaults.timeout !== undefined ? 'timeout' : 'interval'], message, check: i });
    }
  });
  for (const cycle of findCycles(graph)) {
    const i = index.get(cycle[0] as string) as number;
    issues.push({ path: ['checks', i, 'dependsOn'], message: `expected no dependency cycle (${cycle.join(' -> ')})` });
  }
  return issues;
}

export const DEFAULT_INTERVAL = 30_000;
export const DEFAULT_TIMEOUT = 5_000;
export const DEFAULT_RETRIES = 2;
export const DEFAULT_RETRY_INTERVAL = 5_000;
export const DEFAULT_RECOVER_AFTER = 1;
export const DEFAULT_BASELINE_WINDOW = 100;
export const DEFAULT_BASELINE_MIN_RUNS = 20;
export const DEFAULT_FLAP_WINDOW = 30 * 60_000;
export const DEFAULT_FLAP_CHANGES = 6;

/** Each dependency cycle once, as the list of names starting and ending at the same check. */
export function findCycles(checks: readonly { name: string; dependsOn: readonly string[] }[]): string[][] {
  const deps = new Map(checks.map((c) => [c.name, c.dependsOn]));
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[][] = [];
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'open');
    stack.push(name);
    for (const dep of deps.get(name) ?? []) {
      if (!deps.has(dep)) continue;
      const s = state.get(dep);
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
      else if (s === undefined) visit(dep);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const c of checks) if (!state.has(c.name)) visit(c.name);
  return cycles;
}
