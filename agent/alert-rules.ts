// `vakt rules`: the shipped Prometheus rules (deploy/prometheus/vakt-rules.yml) with their timing
// parameters set: how long each alert's condition must hold (`for:`), how long an alert that
// mutes others keeps firing after its condition ends (`keep_firing_for:`, scaled with the rest)
// and how often a group that has its own `interval:` is evaluated. Everything else — every expression, label, annotation and
// comment — is the shipped text, so a site that pages sooner on DNS, or a drill or incident
// replay that runs in minutes, uses the rules as shipped instead of an edited copy that drifts
// from them at the next upgrade. Rendered again from the new version at every upgrade.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { parseDuration } from '../config/units.js';
import { packageRoot } from './paths.js';

export const SHIPPED_RULES_FILE = resolve(packageRoot, 'deploy/prometheus/vakt-rules.yml');

export interface RuleTiming {
  /** Multiplies every alert's `for:` and `keep_firing_for:` and every group's own `interval:` (0 < scale ≤ 100). */
  scale?: number;
  /** An alert's `for:` set outright (after scaling, which it replaces), by alert name, in ms. */
  forAlert?: ReadonlyMap<string, number>;
  /** A group's `interval:` set outright, by group name, in ms. */
  groupInterval?: ReadonlyMap<string, number>;
}

export class RuleTimingError extends Error {}

/** A duration in Prometheus' format (`1m30s`, `500ms`), whole milliseconds. */
export function promDuration(ms: number): string {
  if (ms <= 0) return '0s';
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ];
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of units) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}

function durationOf(where: string, text: unknown): number {
  const ms = typeof text === 'string' ? parseDuration(text) : undefined;
  if (ms === undefined) throw new RuleTimingError(`${where}: "${String(text)}" is not a duration`);
  return ms;
}

/**
 * The rules text with the timing applied: only the `for:` and `keep_firing_for:` lines of alerts
 * and the `interval:` lines of groups change, every other byte stays (block scalars, comments), and the result is
 * checked to parse to the same rules but for those values. Fails when an alert or group named in
 * `timing` is not in the rules (a typo would otherwise leave the shipped timing in place).
 */
export function renderRules(rulesText: string, timing: RuleTiming, header?: string): string {
  const scale = timing.scale ?? 1;
  if (!(scale > 0 && scale <= 100)) throw new RuleTimingError(`scale ${scale}: expected a number above 0 and at most 100`);
  const shipped = rulesOf(rulesText);
  const seenAlerts = new Set(shipped.flatMap((g) => g.rules.flatMap((r) => (r.alert === undefined ? [] : [r.alert]))));
  const seenGroups = new Set(shipped.map((g) => g.name));
  let group = '';
  let alert: string | undefined;
  const edited = new Set<string>();
  const keptScaled = new Set<string>();
  const lines = rulesText.split('\n').map((line) => {
    const g = GROUP_LINE.exec(line);
    if (g) {
      group = unquote(g[1]!);
      alert = undefined;
      return line;
    }
    const r = RULE_LINE.exec(line);
    if (r) {
      alert = r[1] === 'alert' ? unquote(r[2]!) : undefined;
      return line;
    }
    const i = INTERVAL_LINE.exec(line);
    if (i) {
      const wanted = timing.groupInterval?.get(group);
      const ms = wanted ?? Math.max(1000, Math.round((durationOf(`group ${group}: interval`, i[2]) * scale) / 1000) * 1000);
      return `${i[1]}interval: ${promDuration(ms)}`;
    }
    const k = KEEP_LINE.exec(line);
    if (k && alert !== undefined) {
      keptScaled.add(alert);
      return `${k[1]}keep_firing_for: ${promDuration(Math.round((durationOf(`alert ${alert}: keep_firing_for`, k[2]) * scale) / 1000) * 1000)}`;
    }
    const f = FOR_LINE.exec(line);
    if (f && alert !== undefined) {
      const wanted = timing.forAlert?.get(alert);
      const ms = wanted ?? Math.round((durationOf(`alert ${alert}: for`, f[2]) * scale) / 1000) * 1000;
      edited.add(alert);
      return `${f[1]}for: ${promDuration(ms)}`;
    }
    return line;
  });
  for (const name of timing.forAlert?.keys() ?? []) {
    if (!seenAlerts.has(name)) throw new RuleTimingError(`--for ${name}: no alert of that name in the rules`);
  }
  for (const name of timing.groupInterval?.keys() ?? []) {
    if (!seenGroups.has(name)) throw new RuleTimingError(`--interval ${name}: no group of that name in the rules (groups: ${[...seenGroups].join(', ')})`);
  }
  const text = `${header === undefined ? '' : `#${header}\n`}${lines.join('\n')}`;
  // The line edits rely on the file's layout; make sure they changed the timing and nothing else.
  const rendered = rulesOf(text);
  const strip = (groups: RuleGroup[]) =>
    JSON.stringify(groups.map((g) => ({ ...g, interval: undefined, rules: g.rules.map((r) => ({ ...r, for: undefined, keep_firing_for: undefined })) })));
  if (strip(rendered) !== strip(shipped)) throw new RuleTimingError('the rules file is laid out in a way vakt rules cannot edit line by line');
  for (const g of rendered) {
    if (timing.groupInterval?.has(g.name) && g.interval === undefined)
      throw new RuleTimingError(`--interval ${g.name}: the group has no interval of its own to set`);
    for (const r of g.rules) {
      if (r.alert === undefined || edited.has(r.alert)) continue;
      if (timing.forAlert?.has(r.alert)) throw new RuleTimingError(`--for ${r.alert}: the alert has no for: line of its own to set`);
      if (r.for !== undefined && scale !== 1) throw new RuleTimingError(`alert ${r.alert}: its for: is not on a line of its own, so it cannot be scaled`);
    }
    for (const r of g.rules) {
      if (r.alert !== undefined && r.keep_firing_for !== undefined && scale !== 1 && !keptScaled.has(r.alert))
        throw new RuleTimingError(`alert ${r.alert}: its keep_firing_for: is not on a line of its own, so it cannot be scaled`);
    }
  }
  return text;
}

interface RuleGroup {
  name: string;
  interval?: string;
  rules: { alert?: string; record?: string; for?: string; keep_firing_for?: string; [key: string]: unknown }[];
}

const GROUP_LINE = /^ {2}- name: (\S+)\s*$/;
const RULE_LINE = /^ {6}- (alert|record): (\S+)\s*$/;
const INTERVAL_LINE = /^( {4})interval: (\S+)\s*$/;
const FOR_LINE = /^( {8})for: (\S+)\s*$/;
const KEEP_LINE = /^( {8})keep_firing_for: (\S+)\s*$/;
const unquote = (s: string) => s.replace(/^(['"])(.*)\1$/, '$2');

function rulesOf(text: string): RuleGroup[] {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) throw new RuleTimingError(`the rules file does not parse: ${doc.errors[0]!.message}`);
  const groups = (doc.toJS() as { groups?: unknown } | null)?.groups;
  if (!Array.isArray(groups)) throw new RuleTimingError('the rules file has no list under groups');
  return groups as RuleGroup[];
}

/** NAME=DURATION, as given to --for and --interval. */
export function parseAssignment(flag: string, text: string): [string, number] {
  const eq = text.indexOf('=');
  const name = text.slice(0, eq);
  const ms = eq > 0 ? parseDuration(text.slice(eq + 1)) : undefined;
  if (eq <= 0 || ms === undefined) throw new RuleTimingError(`${flag} ${text}: expected NAME=DURATION, e.g. ${flag} VaktDNSResolverDown=1m`);
  return [name, ms];
}

/** The shipped rules as `vakt rules` prints them. */
export function shippedRules(timing: RuleTiming, command: string): string {
  const text = readFileSync(SHIPPED_RULES_FILE, 'utf8');
  const changed = timing.scale !== undefined || (timing.forAlert?.size ?? 0) > 0 || (timing.groupInterval?.size ?? 0) > 0;
  return changed ? renderRules(text, timing, ` Rendered by \`${command}\` from vakt's shipped rules: render again after an upgrade.`) : text;
}
