// Planned work in the config file (`maintenance:`): windows during which the named checks keep
// running but read `maintenance`, and after which they are compared with their pre-window
// baseline (agent/maintenance.ts, agent/change.ts). A window is one-off (`start`, `end`) or
// recurring (`cron` and `duration`, in an IANA `timezone`: "0 2 * * 3" with Europe/Stockholm is
// 02:00 Swedish time every Wednesday, summer and winter). Parsed here; when a window is open is
// decided at run time.
import { CronExpressionParser } from 'cron-parser';
import { DateTime } from 'luxon';
import { z } from 'zod';
import { checkName, isTimeZone, pageText, positiveDuration } from './fields.js';
import { globMatcher } from './include.js';
import type { Language } from '../probes/kit/kind.js';

/** Longest window (one-off or each occurrence): planned work is not a way to switch a check off (enabled: false is). */
export const MAX_WINDOW_MS = 7 * 86_400_000;

/** How a window's end is checked against its checks' pre-window level. */
export interface VerifySpec {
  /** Runs after the window compared with the baseline (their median). */
  runs: number;
  /** A phase, step or the whole run this many times slower than before is a regression. */
  slowerThan: number;
  /** ... and at least this much slower (ms): a 2 ms step taking 6 ms is noise, not a regression. */
  minDeltaMs: number;
}

export const DEFAULT_VERIFY: VerifySpec = { runs: 3, slowerThan: 2, minDeltaMs: 50 };

/** One configured window, resolved. */
export interface MaintenanceSpec {
  name: string;
  title: string | Partial<Record<Language, string>>;
  /** Names and globs (`*` any characters) as written. */
  patterns: string[];
  when: { type: 'once'; start: number; end: number } | { type: 'cron'; expression: string; timezone: string; durationMs: number };
  /** Undefined: no change verification when it ends. */
  verify?: VerifySpec;
}

/** A check name, or a glob of them with `*`. */
const pattern = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_.*-]+$/, { message: 'expected a check name or a glob of check names (letters, digits, _ . - and *)' });

/** A date and time: with an offset (2026-12-05T02:00+01:00, ...Z) or local to the window's timezone (2026-12-05T02:00). */
const dateTime = z.string().min(1).max(40);

export const maintenanceWindowSchema = z.strictObject({
  name: checkName,
  /** What the status page says ("Planned work: <title> until 06:00"); default the name. */
  title: pageText(200).optional(),
  /** The checks it covers: names or globs. */
  checks: z.array(pattern).min(1).max(1000),
  start: dateTime.optional(),
  end: dateTime.optional(),
  /** Recurring: each occurrence starts at this cron time (minute hour day-of-month month day-of-week). */
  cron: z.string().min(1).max(120).optional(),
  /** Recurring: how long each occurrence lasts. */
  duration: positiveDuration.optional(),
  /** The time zone of cron and of start/end without an offset (IANA, such as Europe/Stockholm); default UTC. */
  timezone: z.string().min(1).max(64).optional(),
  /** Compare the checks with their pre-window level when the window ends: true (default), false, or the comparison's settings. */
  verify: z
    .union([
      z.boolean(),
      z.strictObject({
        runs: z.int().min(1).max(10).optional(),
        slowerThan: z.number().min(1.1).max(1000).optional(),
        minDelta: positiveDuration.optional(),
      }),
    ])
    .default(true),
});

export type ParsedMaintenanceWindow = z.output<typeof maintenanceWindowSchema>;

/** A matcher of check names for a pattern: equal, or by the glob's `*` (compiled once, by config/include.ts's globMatcher). */
export function checkMatcher(p: string): (name: string) => boolean {
  const re = p.includes('*') ? globMatcher(p) : undefined;
  return re ? (name) => re.test(name) : (name) => name === p;
}

/** The check names the patterns pick, in the order given. */
export function pickChecks(patterns: readonly string[], names: readonly string[]): string[] {
  const matchers = patterns.map(checkMatcher);
  return names.filter((n) => matchers.some((m) => m(n)));
}

/** A date-time in the window's zone, or undefined when it is not one. */
export function parseDateTime(text: string, zone: string): number | undefined {
  const d = DateTime.fromISO(text, { zone });
  return d.isValid ? d.toMillis() : undefined;
}

/** An error of the cron expression, or undefined when cron-parser takes it. */
export function cronError(expression: string, timezone: string): string | undefined {
  if (expression.trim().split(/\s+/).length !== 5)
    return 'expected a cron expression of five fields (minute hour day-of-month month day-of-week), such as "0 2 * * 3"';
  try {
    CronExpressionParser.parse(expression, { tz: timezone, strict: false });
    return undefined;
  } catch (err) {
    return `expected a cron expression such as "0 2 * * 3" (${(err as Error).message})`;
  }
}

/**
 * The configured windows, resolved and checked across fields; `err` gets each problem at its key
 * path within the window. `names`: every check of the config (a pattern must pick at least one).
 */
export function resolveMaintenance(
  windows: readonly ParsedMaintenanceWindow[],
  names: readonly string[],
  err: (index: number, path: (string | number)[], message: string) => void,
): MaintenanceSpec[] {
  const out: MaintenanceSpec[] = [];
  const seen = new Map<string, number>();
  windows.forEach((w, i) => {
    const before = seen.get(w.name);
    if (before !== undefined) err(i, ['name'], `expected each window name once, found ${JSON.stringify(w.name)} again (maintenance[${before}])`);
    seen.set(w.name, i);
    let ok = true;
    const fail = (path: (string | number)[], message: string) => {
      ok = false;
      err(i, path, message);
    };
    const zone = w.timezone ?? 'UTC';
    if (w.timezone !== undefined && !isTimeZone(w.timezone)) fail(['timezone'], 'expected an IANA time zone such as Europe/Stockholm');
    w.checks.forEach((p, j) => {
      const matches = checkMatcher(p);
      if (!names.some(matches)) fail(['checks', j], `expected a check name or a glob that picks one, found ${JSON.stringify(p)} (no check matches)`);
    });
    let when: MaintenanceSpec['when'] | undefined;
    const once = w.start !== undefined || w.end !== undefined;
    const recurring = w.cron !== undefined || w.duration !== undefined;
    if (once && recurring) fail(['cron'], 'expected either start and end (one-off) or cron and duration (recurring), not both');
    else if (once) {
      if (w.start === undefined) fail(['start'], 'expected start together with end');
      if (w.end === undefined) fail(['end'], 'expected end together with start');
      const start = w.start === undefined ? undefined : parseDateTime(w.start, zone);
      const end = w.end === undefined ? undefined : parseDateTime(w.end, zone);
      const bad = 'expected an ISO 8601 date and time such as 2026-12-05T02:00 (in timezone) or 2026-12-05T02:00+01:00';
      if (w.start !== undefined && start === undefined) fail(['start'], bad);
      if (w.end !== undefined && end === undefined) fail(['end'], bad);
      if (start !== undefined && end !== undefined) {
        if (end <= start) fail(['end'], `expected end after start (${w.start})`);
        else if (end - start > MAX_WINDOW_MS) fail(['end'], 'expected a window of at most 7 days (a check to be left alone longer: enabled: false)');
        else when = { type: 'once', start, end };
      }
    } else if (recurring) {
      if (w.cron === undefined) fail(['duration'], 'expected duration together with cron');
      if (w.duration === undefined) fail(['cron'], 'expected cron together with duration (how long each occurrence lasts)');
      const cron = w.cron === undefined ? undefined : cronError(w.cron, isTimeZone(zone) ? zone : 'UTC');
      if (cron !== undefined) fail(['cron'], cron);
      if (w.duration !== undefined && w.duration > MAX_WINDOW_MS) fail(['duration'], 'expected at most 7d');
      if (w.cron !== undefined && w.duration !== undefined && cron === undefined && w.duration <= MAX_WINDOW_MS)
        when = { type: 'cron', expression: w.cron, timezone: zone, durationMs: w.duration };
    } else fail([], 'expected start and end (a one-off window) or cron and duration (a recurring one)');
    if (!ok || when === undefined) return;
    const verify =
      w.verify === false
        ? undefined
        : w.verify === true
          ? DEFAULT_VERIFY
          : {
              runs: w.verify.runs ?? DEFAULT_VERIFY.runs,
              slowerThan: w.verify.slowerThan ?? DEFAULT_VERIFY.slowerThan,
              minDeltaMs: w.verify.minDelta ?? DEFAULT_VERIFY.minDeltaMs,
            };
    out.push({ name: w.name, title: w.title ?? w.name, patterns: w.checks, when, ...(verify ? { verify } : {}) });
  });
  return out;
}
