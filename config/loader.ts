// Loads a YAML config: the main file and the files it includes (config/include.ts finds and
// reads them); parse, validate against the schema, apply defaults, check the site rules
// (config/placement.ts), resolve secret references and relative file paths. Every error names
// the file it is in, line:column, key path, what was expected and what was found. The only place
// that reads config files.
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import {
  Composer,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  visit,
  YAMLParseError,
  type CST,
  type Document,
  type Node as YamlNode,
} from 'yaml';
import { z } from 'zod';
import { SITE_NAME, splitHostPort, type SecretRef } from './fields.js';
import { resolveMaintenance, type MaintenanceSpec } from './maintenance.js';
import { resolveServices, type ServiceSpec } from './services.js';
import { findConfigFile, includeTargets, MAX_FILES, MAX_INCLUDE_DEPTH, MAX_TOTAL_BYTES, readConfigFile } from './include.js';
import { ANY_OTHER_SITE, runsAt, splitDependencies } from './placement.js';
import { resolveWeb, type WebConfig } from './web.js';
import { resolveNotify, type NotifyConfig } from './notify.js';
import type { Kind, KindOptions, KindTarget } from '../probes/kinds.js';
import type { Language } from '../probes/kit/kind.js';
import {
  checkSchema,
  checkTiming,
  configSchema,
  crossCheckIssues,
  defaultsSchema,
  DEFAULT_RECOVER_AFTER,
  DEFAULT_RETRIES,
  DEFAULT_RETRY_INTERVAL,
  DEFAULT_BASELINE_MIN_RUNS,
  DEFAULT_BASELINE_WINDOW,
  DEFAULT_FLAP_CHANGES,
  DEFAULT_FLAP_WINDOW,
  includedFileSchema,
  plainText,
  type ParsedCheck,
  type ParsedConfig,
  type ParsedDefaults,
  type Schedule,
} from './schema.js';

export type { Schedule };

interface CheckCommon {
  name: string;
  /** The target as written, or with several targets their list joined by ","; for display and logs. */
  target: string;
  /** The plain title (the API's): as written, the first of a map of languages, or the name. */
  title: string;
  /** The title per language, when written as a map (the status page's). */
  titles?: Partial<Record<Language, string>>;
  group: string;
  schedule: Schedule;
  timeoutMs: number;
  retries: number;
  retryIntervalMs: number;
  recoverAfter: number;
  dependsOn: string[];
  degraded: DegradedLimits;
  flapping: { windowMs: number; changes: number };
  /** Duration histograms set for this check or in defaults; absent: the agent's default. */
  histograms?: HistogramMode;
  /** Resolved secret values by name. Never logged: the agent registers them with its redactor. */
  secrets: Record<string, string>;
  /** The sites the check runs at (config/placement.ts); absent: every site. */
  sites?: string[];
  /** false: configured and validated, but not run (`enabled: false`, or `defaults.enabled`); absent: it runs. */
  enabled?: false;
}

export type HistogramMode = 'off' | 'total' | 'phases';

export interface DegradedLimits {
  aboveMs?: number;
  baselineFactor?: number;
  baselineWindow: number;
  baselineMinRuns: number;
}

/** A check of kind K, with that kind's parsed options and targets. */
export type CheckOf<K extends Kind> = {
  [P in K]: CheckCommon & {
    kind: P;
    options: KindOptions[P];
    /** Every target of the check (one, or several for kinds that allow `targets`), parsed on load; each keeps its `text`. */
    targets: KindTarget[P][];
  };
}[K];

export type CheckConfig = CheckOf<Kind>;

export interface AgentConfig {
  listen: { host: string; port: number };
  labels: Record<string, string>;
  concurrency: number;
  /** Worker threads that run the probes (agent.probeThreads); 0: on the main thread. */
  probeThreads: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  jitter: number;
  startSpreadMs: number;
  /** Duration histograms of checks that set none (agent.histograms; default off). */
  histograms: HistogramMode;
  /** Event-loop stall above which a run is marked disturbed (agent.maxLoopDelay). */
  maxLoopDelayMs: number;
  /** Connections the agent's HTTP server holds at most (agent.maxConnections). */
  maxConnections: number;
  /** The incident journal (agent.journal): its file (absolute; absent: memory only), rotation size and files kept. */
  journal: { file?: string; maxBytes: number; keep: number };
  /** Absolute path of the state file, when configured. */
  stateFile?: string;
  statusPage: ParsedConfig['agent']['statusPage'];
  /** Endpoint security (agent.web and its web config file). */
  web: WebConfig;
  /** Telling departments: the public URL, the webhooks with their secrets read (agent.notify). */
  notify: NotifyConfig;
}

export interface Config {
  file: string;
  /** Every file the config was read from (absolute): the main file first, then the included ones in the order read. */
  files: string[];
  agent: AgentConfig;
  /** Every check of the config, whatever its sites: placeChecks (config/placement.ts) picks the ones an agent runs. */
  checks: CheckConfig[];
  /** This agent's site, when it has one: also its `site` label (agent.labels.site). */
  site?: SiteChoice;
  /** Planned-work windows (`maintenance:`), their patterns checked against every check's name. */
  maintenance: MaintenanceSpec[];
  /** Services made of redundant checks (`services:`), every one of the config, whatever its sites (placeChecks picks an agent's). */
  services: ServiceSpec[];
  /**
   * Secrets that could not be read, when the config was loaded with `secrets: 'report'` (vakt
   * validate): the config is valid, these values are just not present here. Empty otherwise (a
   * missing secret is then an error).
   */
  missingSecrets: ConfigError[];
}

/** How a load treats a secret it cannot read: an error (the agent), or a fact it reports (vakt validate, where production secrets are absent). */
export interface LoadOptions {
  secrets?: 'require' | 'report';
  /** A web config file that overrides agent.web.config (vakt run --web.config.file). */
  webConfigFile?: string;
  /** The agent's site from the command line (--site): over VAKT_SITE and agent.labels.site. */
  site?: string;
  /**
   * vakt validate: when no site is given (--site, VAKT_SITE), the site rules are checked for every
   * site the config names and no site is needed; otherwise the config is read as the agent at its
   * site runs it.
   */
  everySite?: boolean;
}

/** An agent's site: --site, else VAKT_SITE, else agent.labels.site. */
export interface SiteChoice {
  name: string;
  from: '--site' | 'VAKT_SITE' | 'agent.labels.site';
  /** The file's agent.labels.site that the site from --site or VAKT_SITE replaced, when they differ. */
  replaces?: string;
}

export interface ConfigError {
  file: string;
  line: number;
  column: number;
  /** Key path such as checks[2].tcp.samples ("" for the whole document). */
  path: string;
  message: string;
}

export class ConfigLoadError extends Error {
  constructor(readonly errors: ConfigError[]) {
    super(errors.map(formatConfigError).join('\n'));
    this.name = 'ConfigLoadError';
  }
}

export function formatConfigError(e: ConfigError): string {
  return `${e.file}:${e.line}:${e.column}: ${e.path === '' ? '(document)' : e.path}: ${e.message}`;
}

/** Reads and parses a config file and the files it includes (see parseConfig). Throws ConfigLoadError. */
// eslint-disable-next-line @typescript-eslint/require-await -- async for its callers: reading stays synchronous and bounded (config/include.ts)
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Promise<Config> {
  const found = findConfigFile(file, '');
  const text = 'error' in found ? found : readConfigFile(file, found, '');
  if (typeof text !== 'string') throw new ConfigLoadError([{ file, line: 0, column: 0, path: '', message: text.error }]);
  return parseConfig(text, file, env, options);
}

/**
 * Parses config text, and reads the files it includes; `file` names it in errors and anchors
 * relative paths. Throws ConfigLoadError.
 */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Config {
  const read = readDocument(text, file);
  if (!('doc' in read)) throw new ConfigLoadError(read);
  const { doc, at, raw } = read;
  const main: Source = { file, dir: dirname(resolvePath(file)), doc, at, raw, chain: [file] };
  const errors: ConfigError[] = [];
  const mainFound = findConfigFile(resolvePath(file), '');
  const sources = readIncludes(main, 'error' in mainFound ? undefined : mainFound.id, Buffer.byteLength(text), errors);
  if (errors.length > 0) throw new ConfigLoadError(sortErrors(errors, sources));
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) errors.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, doc, raw, file, at)));
  const parts = sources.map((src, i) => (i === 0 ? fileParts(parsed.data, raw) : includedParts(src, main, errors)));
  const entries = checkEntries(sources, parts);
  errors.push(...crossErrors(main, entries));
  const site = siteChoice(options, env, parsed.data?.agent.labels.site, main, errors);
  // vakt validate without a site: every site the config names, and the checks of all of them resolved.
  const everySite = options.everySite === true && site?.from !== '--site' && site?.from !== 'VAKT_SITE';
  if (parsed.success) errors.push(...siteErrors(main, entries, parsed.data.sites, site, everySite));
  if (!parsed.success || errors.length > 0) throw new ConfigLoadError(sortErrors(dedupe(errors), sources));
  const missingSecrets: ConfigError[] = [];
  const checks = entries.map((e) =>
    resolveCheck(e.check as ParsedCheck, e.defaults as ParsedDefaults, e.src.dir, env, (path, message) => {
      // A check that runs only at other sites need not have its secrets and files on this host.
      if (!everySite && !runsAt(e.check as ParsedCheck, site?.name)) return;
      const err = locate(e.src.doc, ['checks', e.index, ...path], e.src.file, e.src.at, message);
      if (options.secrets === 'report' && path.includes('secrets')) missingSecrets.push(err);
      else errors.push(err);
    }),
  );
  const maintenance = resolveMaintenance(
    parsed.data.maintenance,
    entries.flatMap((e) => (e.name === undefined ? [] : [e.name])),
    (i, path, message) => errors.push(locate(doc, ['maintenance', i, ...path], file, at, message)),
  );
  const services = resolveServices(parsed.data.services, checks, (i, path, message) => errors.push(locate(doc, ['services', i, ...path], file, at, message)));
  const config = resolveConfig(parsed.data, { file, checks, files: sources.map((s) => resolvePath(s.file)), ...(site ? { site } : {}) });
  const web = resolveWeb(
    parsed.data.agent.web,
    dirname(resolvePath(file)),
    options.webConfigFile,
    (ref: SecretRef) => resolveSecret(ref, dirname(resolvePath(file)), env),
    (path, message) => {
      const e = locate(doc, path, file, at, message);
      if (options.secrets === 'report' && path.includes('tokens')) missingSecrets.push(e);
      else errors.push(e);
    },
    (e) => errors.push(e),
    (text) => splitHostPort(text, true) as { host: string; port: number },
  );
  const notify = resolveNotify(
    parsed.data.agent.notify,
    dirname(resolvePath(file)),
    (ref: SecretRef) => resolveSecret(ref, dirname(resolvePath(file)), env),
    (path, message) => errors.push(locate(doc, ['agent', 'notify', ...path], file, at, message)),
    (path, message) => {
      const e = locate(doc, ['agent', 'notify', ...path], file, at, message);
      if (options.secrets === 'report') missingSecrets.push(e);
      else errors.push(e);
    },
  );
  if (errors.length > 0) throw new ConfigLoadError(errors);
  return { ...config, agent: { ...config.agent, web, notify }, maintenance, services, missingSecrets };
}

/** One file of the config: the main file or an included one, read up to plain JavaScript. */
interface Source {
  /** As errors name it: the main file as given; an included one joined to its includer's folder (or absolute, as written). */
  file: string;
  /** Its folder, absolute: relative paths written in the file are resolved against it. */
  dir: string;
  doc: Document.Parsed;
  at: At;
  raw: unknown;
  /** The files that led to it, the main file first (for messages about cycles and files included twice). */
  chain: string[];
}

/**
 * YAML text to a document and plain JavaScript, refusing what a config never holds: nesting past
 * MAX_DEPTH, syntax errors, tags outside the core schema, __proto__ keys, unresolved aliases and
 * alias bombs. Every file of a config goes through here.
 */
function readDocument(text: string, file: string): { doc: Document.Parsed; at: At; raw: unknown } | ConfigError[] {
  const lineCounter = new LineCounter();
  const at = (offset: number) => lineCounter.linePos(offset);
  // The text is parsed once: the depth is checked on the syntax tree, and the document is
  // composed from the same tree (parseDocument would parse it again; at 10,000 checks the second
  // parse was a quarter of the start-up's CPU and its garbage grew the heap for the first minute).
  const tokens = Array.from(new Parser(lineCounter.addNewLine).parse(text));
  const deep = nestingExceeded(tokens, MAX_DEPTH);
  if (deep !== undefined) {
    const { line, col } = at(deep);
    return [{ file, line, column: col, path: '', message: `expected at most ${MAX_DEPTH} levels of nesting, found deeper` }];
  }
  let doc: Document.Parsed;
  try {
    doc = composeOne(tokens, text.length);
  } catch (err) {
    if (err instanceof RangeError)
      return [{ file, line: 1, column: 1, path: '', message: `expected valid YAML, found more nesting than it can read (${err.message})` }];
    throw err;
  }
  if (doc.errors.length > 0) {
    return doc.errors.map((e) => {
      const { line, col } = at(e.pos[0]);
      return { file, line, column: col, path: '', message: `expected valid YAML, found ${e.message.split('\n')[0] ?? 'a syntax error'}` };
    });
  }
  const unsafe = unsafeNodes(doc);
  if (unsafe.length > 0) {
    return unsafe.map((u) => {
      const { line, col } = at(u.offset);
      return { file, line, column: col, path: formatPath(u.path), message: u.message };
    });
  }
  try {
    return { doc, at, raw: doc.toJS({ maxAliasCount: 100 }) ?? {} };
  } catch (err) {
    // An alias without its anchor, or an alias bomb, only surfaces here (yaml throws ReferenceError).
    let pos = 0;
    visit(doc, {
      Alias(_, node) {
        if (node.resolve(doc) === undefined) {
          pos = node.range?.[0] ?? 0;
          return visit.BREAK;
        }
        return undefined;
      },
    });
    const { line, col } = at(pos);
    return [{ file, line, column: col, path: '', message: `expected valid YAML, found ${(err as Error).message}` }];
  }
}

/** Errors past which the files an include names are no longer read (a list of 1,000 missing files says enough with 100). */
const MAX_INCLUDE_ERRORS = 100;

/**
 * The main file and every file it includes, depth first in the order written (a glob's matches
 * sorted by name), each read through readDocument. An error goes to `errors` at the include entry
 * that named the file, or into the file itself; the walk stops at the first limit reached
 * (MAX_FILES, MAX_TOTAL_BYTES), so hostile input costs bounded time and memory.
 */
function readIncludes(main: Source, mainId: string | undefined, mainBytes: number, errors: ConfigError[]): Source[] {
  const sources = [main];
  const firstChain = new Map<string, string[]>(mainId !== undefined ? [[mainId, main.chain]] : []);
  let bytes = mainBytes;
  let stopped = false;
  const walk = (src: Source, ids: readonly (string | undefined)[]): void => {
    const list = isRecord(src.raw) ? src.raw.include : undefined;
    const fail = (path: PropertyKey[], message: string, stop = false) => {
      errors.push(locate(src.doc, path, src.file, src.at, message));
      stopped ||= stop || errors.length >= MAX_INCLUDE_ERRORS;
    };
    if (list === undefined) return;
    if (!Array.isArray(list)) return fail(['include'], `expected a list of file paths or globs, found ${found(src.doc, ['include'])}`);
    if (list.length > MAX_FILES) return fail(['include'], `expected at most ${MAX_FILES} entries, found ${list.length}`);
    for (const [i, entry] of list.entries()) {
      if (stopped) return;
      const here = ['include', i];
      if (typeof entry !== 'string' || entry === '' || entry.includes('\0')) {
        fail(here, `expected a file path or glob, found ${found(src.doc, here)}`);
        continue;
      }
      if (src.chain.length > MAX_INCLUDE_DEPTH) {
        fail(here, `expected at most ${MAX_INCLUDE_DEPTH} levels of include, found more (${[...src.chain, entry].join(' -> ')})`);
        continue;
      }
      const targets = includeTargets(entry, src.dir, dirname(src.file), MAX_FILES - sources.length);
      if (!Array.isArray(targets)) {
        fail(here, targets.error);
        continue;
      }
      for (const t of targets) {
        if (stopped) return;
        if (sources.length >= MAX_FILES) return fail(here, `expected at most ${MAX_FILES} config files in all, found more`, true);
        const file = findConfigFile(t.path, t.shown);
        if ('error' in file) {
          fail(here, file.error);
          continue;
        }
        const chain = [...src.chain, t.shown];
        const before = firstChain.get(file.id);
        if (ids.includes(file.id)) fail(here, `expected no include cycle, found ${JSON.stringify(t.shown)} (${chain.join(' -> ')})`);
        else if (before) fail(here, `expected each file included once, found ${JSON.stringify(t.shown)} again (${before.join(' -> ')}; ${chain.join(' -> ')})`);
        else if (bytes + file.size > MAX_TOTAL_BYTES)
          fail(here, `expected at most ${MAX_TOTAL_BYTES / 1024 / 1024} MiB of config files in all, found more`, true);
        if (ids.includes(file.id) || before || stopped) continue;
        const text = readConfigFile(t.path, file, t.shown);
        if (typeof text !== 'string') {
          fail(here, text.error);
          continue;
        }
        bytes += file.size;
        firstChain.set(file.id, chain);
        const read = readDocument(text, t.shown);
        if (!('doc' in read)) {
          errors.push(...read);
          continue;
        }
        const child: Source = { file: t.shown, dir: dirname(t.path), ...read, chain };
        sources.push(child);
        walk(child, [...ids, file.id]);
      }
    }
  };
  walk(main, [mainId]);
  return sources;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** What the rules read of one file: its checks' names, and its checks and defaults as parsed (undefined where refused). */
interface FileParts {
  names: (string | undefined)[];
  checks: (ParsedCheck | undefined)[];
  defaults: ParsedDefaults | undefined;
}

/**
 * A file's checks and defaults. When the file has schema errors, each check and the defaults
 * block are parsed on their own, so the rules across checks still run on every check that is
 * valid by itself and `vakt validate` reports those errors in the same go.
 */
function fileParts(parsed: { checks: ParsedCheck[]; defaults: ParsedDefaults } | undefined, raw: unknown): FileParts {
  const list: unknown[] = isRecord(raw) && Array.isArray(raw.checks) ? raw.checks : [];
  const names = list.map((c) => {
    const name = isRecord(c) ? c.name : undefined;
    return typeof name === 'string' ? name : undefined;
  });
  if (parsed) return { names, checks: parsed.checks, defaults: parsed.defaults };
  const defaults = defaultsSchema.safeParse(isRecord(raw) ? (raw.defaults ?? {}) : {});
  return { names, checks: list.map((c) => checkSchema.safeParse(c).data), defaults: defaults.success ? defaults.data : undefined };
}

/** An included file's parts; agent settings and declared sites in it are errors (they belong to the main file). */
function includedParts(src: Source, main: Source, errors: ConfigError[]): FileParts {
  const raw = isRecord(src.raw) ? { ...src.raw } : src.raw;
  if (isRecord(raw)) {
    for (const [key, what] of [
      ['agent', 'agent settings'],
      ['sites', 'the declared sites'],
    ] as const) {
      if (!(key in raw)) continue;
      errors.push(locate(src.doc, [key], src.file, src.at, `expected ${what} only in the main file (${main.file}), found ${found(src.doc, [key])}`, true));
      delete raw[key];
    }
  }
  const parsed = includedFileSchema.safeParse(raw);
  if (!parsed.success) errors.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, src.doc, raw, src.file, src.at, includedJsonSchema())));
  return fileParts(parsed.data, raw);
}

/** A check of the config, with the file it is in and the defaults it inherits. */
interface Entry {
  src: Source;
  /** Its index in its file's checks. */
  index: number;
  name: string | undefined;
  check: ParsedCheck | undefined;
  /** Its file's defaults over the main file's; undefined when either block was refused. */
  defaults: ParsedDefaults | undefined;
  /** Its file's own defaults block. */
  own: ParsedDefaults | undefined;
}

function checkEntries(sources: readonly Source[], parts: readonly FileParts[]): Entry[] {
  const base = parts[0]?.defaults;
  return sources.flatMap((src, f) => {
    const p = parts[f] as FileParts;
    const defaults = f === 0 ? base : base && p.defaults ? mergeDefaults(base, p.defaults) : undefined;
    return p.names.map((name, index) => ({ src, index, name, check: p.checks[index], defaults, own: p.defaults }));
  });
}

/** An included file's defaults over the main file's, key by key (inside degraded and flapping too). */
function mergeDefaults(main: ParsedDefaults, own: ParsedDefaults): ParsedDefaults {
  const degraded = main.degraded || own.degraded ? { degraded: { ...main.degraded, ...definedOnly(own.degraded ?? {}) } } : {};
  const flapping = main.flapping || own.flapping ? { flapping: { ...main.flapping, ...definedOnly(own.flapping ?? {}) } } : {};
  return { ...main, ...definedOnly(own), ...degraded, ...flapping };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The rules across checks (schema.ts's crossCheckIssues) over the checks of every file, each issue located in the file it is about. */
function crossErrors(main: Source, entries: readonly Entry[]): ConfigError[] {
  const errors: ConfigError[] = [];
  const located = (src: Source, path: PropertyKey[], message: string) => locate(src.doc, path, src.file, src.at, `${message}, found ${found(src.doc, path)}`);
  if (entries.length === 0 && isRecord(main.raw) && (main.raw.checks === undefined || Array.isArray(main.raw.checks))) {
    errors.push(located(main, ['checks'], 'expected at least one check'));
  }
  const where = (first: number, duplicate: number): string => {
    const a = entries[first] as Entry;
    if (a.src === (entries[duplicate] as Entry).src) return `checks[${a.index}]`;
    const e = locate(a.src.doc, ['checks', a.index, 'name'], a.src.file, a.src.at, '');
    return `checks[${a.index}] at ${e.file}:${e.line}`;
  };
  const issues = crossCheckIssues(
    entries.flatMap((e) => (e.name === undefined ? [] : [e.name])),
    entries.map((e) => e.check),
    (g) => entries[g]?.defaults,
    where,
  );
  for (const issue of issues) {
    const [head, g, ...rest] = issue.path;
    const e = typeof g === 'number' ? entries[g] : issue.check !== undefined ? entries[issue.check] : undefined;
    if (head === 'checks' && e) errors.push(located(e.src, ['checks', e.index, ...rest], issue.message));
    else if (head === 'defaults' && e && e.src !== main && (e.own?.timeout !== undefined || e.own?.interval !== undefined)) {
      // The value the check's own file sets, where it sets timeout or interval; else the main file's.
      errors.push(located(e.src, ['defaults', e.own.timeout !== undefined ? 'timeout' : 'interval'], issue.message));
    } else errors.push(located(main, issue.path, issue.message));
  }
  return errors;
}

/** The agent's site: --site, else VAKT_SITE, else agent.labels.site; a site given that is no site name is an error. */
function siteChoice(options: LoadOptions, env: NodeJS.ProcessEnv, fileSite: string | undefined, main: Source, errors: ConfigError[]): SiteChoice | undefined {
  const fromEnv = env.VAKT_SITE !== undefined && env.VAKT_SITE !== '' ? env.VAKT_SITE : undefined;
  const given = options.site ?? fromEnv;
  if (given === undefined) return fileSite !== undefined ? { name: fileSite, from: 'agent.labels.site' } : undefined;
  const from = options.site !== undefined ? '--site' : 'VAKT_SITE';
  if (!SITE_NAME.test(given)) {
    errors.push({
      file: main.file,
      line: 0,
      column: 0,
      path: from,
      message: `expected a site name (letters, digits, "-", "_", "."; at most 63), found ${JSON.stringify(given)}`,
    });
  }
  return { name: given, from, ...(fileSite !== undefined && fileSite !== given ? { replaces: fileSite } : {}) };
}

/**
 * The site rules: declared sites (the main file's `sites:`) name every site used; a config with
 * checks for some sites only needs the agent's site; a check's dependsOn runs wherever the check
 * runs (at the agent's site, or with `everySite` at every site the config names).
 */
function siteErrors(
  main: Source,
  entries: readonly Entry[],
  declared: readonly string[] | undefined,
  site: SiteChoice | undefined,
  everySite: boolean,
): ConfigError[] {
  const errors: ConfigError[] = [];
  const err = (src: Source, path: PropertyKey[], message: string) => errors.push(locate(src.doc, path, src.file, src.at, message));
  const known = declared !== undefined ? `one of the declared sites (${declared.join(', ')})` : '';
  const hint = (name: string) => {
    const h = suggest(name, declared ?? []);
    return h !== undefined ? ` (did you mean "${h}"?)` : '';
  };
  declared?.forEach((s, j) => {
    if (declared.indexOf(s) !== j) err(main, ['sites', j], `expected each site once, found ${JSON.stringify(s)} again`);
  });
  for (const e of entries) {
    e.check?.sites?.forEach((s, j, list) => {
      const path = ['checks', e.index, 'sites', j];
      if (list.indexOf(s) !== j) err(e.src, path, `expected each site once, found ${JSON.stringify(s)} again`);
      else if (declared && !declared.includes(s)) err(e.src, path, `expected ${known}, found ${JSON.stringify(s)}${hint(s)}`);
    });
  }
  if (site && declared && !declared.includes(site.name)) {
    if (site.from === 'agent.labels.site') err(main, ['agent', 'labels', 'site'], `expected ${known}, found ${JSON.stringify(site.name)}${hint(site.name)}`);
    else err(main, ['sites'], `expected the agent's site (${site.from}) to be ${known}, found ${JSON.stringify(site.name)}${hint(site.name)}`);
  }
  const limited = entries.filter((e) => e.check?.sites !== undefined);
  if (!everySite && site === undefined && limited.length > 0) {
    const first = limited[0] as Entry;
    const names = limited.slice(0, 5).map((e) => e.name);
    const more = limited.length > 5 ? ` and ${limited.length - 5} more` : '';
    err(
      first.src,
      ['checks', first.index, 'sites'],
      `expected a site for this agent (give --site NAME, VAKT_SITE or agent.labels.site), found none: checks ${names.join(', ')}${more} run only at some sites (sites:)`,
    );
  }
  // The sites whose agents are checked: this agent's, or (vakt validate) every site named, and
  // where no sites are declared any other site too (an agent there runs the checks without sites).
  const named = new Set(limited.flatMap((e) => e.check?.sites ?? []));
  if (site && SITE_NAME.test(site.name)) named.add(site.name);
  const sites = !everySite ? (site ? [site.name] : []) : (declared ?? [...named, ...(limited.length > 0 ? [ANY_OTHER_SITE] : [])]);
  const checks = entries.map((e) => e.check);
  for (const split of splitDependencies(checks, sites)) {
    const e = entries[split.check] as Entry;
    const depName = e.check?.dependsOn[split.dep] as string;
    const depSites = checks.find((c) => c?.name === depName)?.sites ?? [];
    const at = split.sites.length === 1 ? `site ${split.sites[0]}` : `sites ${split.sites.slice(0, -1).join(', ')} and ${split.sites[split.sites.length - 1]}`;
    err(
      e.src,
      ['checks', e.index, 'dependsOn', split.dep],
      `expected a check that also runs at ${at}, where ${e.name} runs, found ${JSON.stringify(depName)} (it runs only at ${depSites.join(', ')})`,
    );
  }
  return errors;
}

/** Each error once (a defaults value many checks inherit is reported once). */
function dedupe(errors: readonly ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = formatConfigError(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Deepest nesting of maps and lists a config may have (the deepest real one is about 8). */
export const MAX_DEPTH = 64;

/** The YAML 1.2 core schema's tags: the only ones a config may carry (explicitly or not). */
const CORE_TAGS = new Set(['map', 'seq', 'str', 'null', 'bool', 'int', 'float'].map((t) => `tag:yaml.org,2002:${t}`));

/**
 * The first document composed from parsed tokens, as yaml's parseDocument composes it (same
 * options; a second document in the text is an error of the first).
 */
function composeOne(tokens: readonly CST.Token[], length: number): Document.Parsed {
  let doc: Document.Parsed | undefined;
  for (const d of new Composer({ uniqueKeys: true }).compose(tokens, true, length)) {
    if (!doc) doc = d;
    else {
      doc.errors.push(new YAMLParseError([d.range[0], d.range[1]], 'MULTIPLE_DOCS', 'Source contains multiple documents'));
      break;
    }
  }
  // compose(…, forceDoc = true) yields a document even for empty text.
  return doc!;
}

/**
 * Offset of the first map or list nested deeper than `max`, from yaml's concrete syntax tree
 * (its Parser keeps a stack of its own and reads any depth; the Composer that builds the
 * document recurses, and a document thousands deep would run it out of stack); undefined when
 * none is. Walked without recursion.
 */
export function nestingExceeded(tokens: readonly CST.Token[], max: number): number | undefined {
  type Tok = { type?: string; offset?: number; value?: unknown; items?: { key?: unknown; value?: unknown }[] };
  let found: number | undefined;
  for (const doc of tokens) {
    const stack: { tok: Tok; depth: number }[] = [{ tok: (doc as Tok).value as Tok, depth: 0 }];
    while (stack.length > 0) {
      const { tok, depth } = stack.pop()!;
      if (tok === null || typeof tok !== 'object' || !Array.isArray(tok.items)) continue;
      if (depth >= max) {
        if (found === undefined || (tok.offset ?? 0) < found) found = tok.offset ?? 0;
        continue;
      }
      for (const item of tok.items) for (const child of [item.key, item.value]) if (child) stack.push({ tok: child, depth: depth + 1 });
    }
  }
  return found;
}

/**
 * What the config refuses before it becomes JavaScript: a tag outside the core schema (such as
 * !!js/function: it would be read as a plain string and mean nothing) and the key __proto__ (it
 * would set an object's prototype). Walked without recursion (depth is bounded before).
 */
function unsafeNodes(doc: Document.Parsed): { offset: number; path: PropertyKey[]; message: string }[] {
  const out: { offset: number; path: PropertyKey[]; message: string }[] = [];
  const stack: { node: unknown; path: PropertyKey[] }[] = [{ node: doc.contents, path: [] }];
  while (stack.length > 0 && out.length < 20) {
    const { node, path } = stack.pop()!;
    if (!isNode(node)) continue;
    const offset = node.range?.[0] ?? 0;
    if (node.tag !== undefined && node.tag !== '!' && !CORE_TAGS.has(node.tag)) {
      out.push({
        offset,
        path,
        message: `expected no YAML tag other than the core ones (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq), found ${node.tag.replace(/^tag:yaml\.org,2002:/, '!!')}`,
      });
      continue;
    }
    if (isMap(node)) {
      for (const item of node.items) {
        const key: unknown = isScalar(item.key) ? item.key.value : item.key;
        if (key === '__proto__') {
          out.push({
            offset: isNode(item.key) ? (item.key.range?.[0] ?? offset) : offset,
            path,
            message: 'expected a key other than __proto__ (reserved: it would set the prototype of an object)',
          });
          continue;
        }
        const seg = typeof key === 'string' || typeof key === 'number' ? key : '?';
        stack.push({ node: item.key, path }, { node: item.value, path: [...path, seg] });
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => stack.push({ node: item, path: [...path, i] }));
  }
  return out.sort((a, b) => a.offset - b.offset);
}

/**
 * A check as the agent runs it: the defaults it inherits applied (`d`: its file's over the main
 * file's), secrets read and file options made absolute against `baseDir`, the folder of the file
 * it is written in. `fail` gets what cannot be read, at a path within the check.
 */
function resolveCheck(
  c: ParsedCheck,
  d: ParsedDefaults,
  baseDir: string,
  env: NodeJS.ProcessEnv,
  fail: (path: PropertyKey[], message: string) => void,
): CheckConfig {
  const secrets: Record<string, string> = {};
  for (const [key, ref] of Object.entries(c.secrets)) {
    const value = resolveSecret(ref, baseDir, env);
    if (typeof value === 'string') secrets[key] = value;
    else fail(['secrets', key], value.error);
  }
  const options = (c as unknown as Record<string, unknown>)[c.kind] as Record<string, unknown>;
  resolveFiles(options, baseDir, [c.kind], fail);
  const { schedule, timeoutMs } = checkTiming(c, d);
  const histograms = c.histograms ?? d.histograms;
  const enabled = c.enabled ?? d.enabled ?? true;
  return {
    name: c.name,
    kind: c.kind,
    target: (c.targets ?? (c.target !== undefined ? [c.target] : [])).map((t) => t.text).join(','),
    targets: c.targets ?? (c.target !== undefined ? [c.target] : []),
    title: c.title !== undefined ? plainText(c.title) : c.name,
    ...(typeof c.title === 'object' ? { titles: c.title } : {}),
    group: c.group ?? d.group ?? 'Other',
    schedule,
    timeoutMs,
    retries: c.retries ?? d.retries ?? DEFAULT_RETRIES,
    retryIntervalMs: c.retryInterval ?? d.retryInterval ?? DEFAULT_RETRY_INTERVAL,
    recoverAfter: c.recoverAfter ?? d.recoverAfter ?? DEFAULT_RECOVER_AFTER,
    dependsOn: c.dependsOn,
    degraded: degradedFor(c.degraded, d.degraded),
    flapping: {
      windowMs: c.flapping?.window ?? d.flapping?.window ?? DEFAULT_FLAP_WINDOW,
      changes: c.flapping?.changes ?? d.flapping?.changes ?? DEFAULT_FLAP_CHANGES,
    },
    ...(histograms !== undefined ? { histograms } : {}),
    secrets,
    ...(c.sites !== undefined ? { sites: c.sites } : {}),
    ...(enabled ? {} : { enabled: false }),
    options,
  } as unknown as CheckConfig;
}

/** The config's agent block as the agent runs it (the main file's), with the checks resolved; a site given on the command line or in VAKT_SITE is the `site` label. */
function resolveConfig(
  p: ParsedConfig,
  { file, files, checks, site }: { file: string; files: string[]; checks: CheckConfig[]; site?: SiteChoice },
): Omit<Config, 'missingSecrets' | 'agent' | 'maintenance' | 'services'> & { agent: Omit<AgentConfig, 'web' | 'notify'> } {
  const baseDir = dirname(resolvePath(file));
  const { host, port } = splitHostPort(p.agent.listen, true) as { host: string; port: number };
  return {
    file: resolvePath(file),
    files,
    ...(site ? { site } : {}),
    agent: {
      listen: { host, port },
      labels: site && site.from !== 'agent.labels.site' ? { ...p.agent.labels, site: site.name } : p.agent.labels,
      concurrency: p.agent.concurrency,
      probeThreads: p.agent.probeThreads,
      logLevel: p.agent.logLevel,
      jitter: p.agent.jitter,
      startSpreadMs: p.agent.startSpread,
      histograms: p.agent.histograms ?? (p.agent.phaseHistograms === undefined ? 'off' : p.agent.phaseHistograms ? 'phases' : 'total'),
      maxLoopDelayMs: p.agent.maxLoopDelay,
      maxConnections: p.agent.maxConnections,
      journal: journalFor(p.agent, baseDir),
      statusPage: p.agent.statusPage,
      ...(p.agent.stateFile !== undefined ? { stateFile: isAbsolute(p.agent.stateFile) ? p.agent.stateFile : resolvePath(baseDir, p.agent.stateFile) } : {}),
    },
    checks,
  };
}

/** agent.journal with its file made absolute: as written, or journal.jsonl beside agent.stateFile. */
function journalFor(a: ParsedConfig['agent'], baseDir: string): AgentConfig['journal'] {
  const abs = (f: string) => (isAbsolute(f) ? f : resolvePath(baseDir, f));
  const file =
    a.journal.file !== undefined ? abs(a.journal.file) : a.stateFile !== undefined ? resolvePath(dirname(abs(a.stateFile)), 'journal.jsonl') : undefined;
  return { ...(file !== undefined ? { file } : {}), maxBytes: a.journal.maxSize, keep: a.journal.keep };
}

type DegradedInput = ParsedConfig['defaults']['degraded'];

function degradedFor(own: DegradedInput, defaults: DegradedInput): DegradedLimits {
  const above = own?.above ?? defaults?.above;
  const factor = own?.baselineFactor ?? defaults?.baselineFactor;
  return {
    ...(above !== undefined ? { aboveMs: above } : {}),
    ...(factor !== undefined ? { baselineFactor: factor } : {}),
    baselineWindow: own?.baselineWindow ?? defaults?.baselineWindow ?? DEFAULT_BASELINE_WINDOW,
    baselineMinRuns: own?.baselineMinRuns ?? defaults?.baselineMinRuns ?? DEFAULT_BASELINE_MIN_RUNS,
  };
}

function resolveSecret(ref: SecretRef, baseDir: string, env: NodeJS.ProcessEnv): string | { error: string } {
  if ('env' in ref) {
    const v = env[ref.env];
    return v === undefined || v === '' ? { error: `expected environment variable ${ref.env} to be set, found it unset or empty` } : v;
  }
  const path = isAbsolute(ref.file) ? ref.file : resolvePath(baseDir, ref.file);
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    return { error: `expected a readable secret file ${path}, found ${(err as NodeJS.ErrnoException).code ?? 'an error'}` };
  }
}

/** Option keys ending in "File" name files: made absolute against the config's folder and checked readable. */
function resolveFiles(obj: Record<string, unknown>, baseDir: string, path: PropertyKey[], fail: (path: PropertyKey[], message: string) => void): void {
  for (const [key, value] of Object.entries(obj)) {
    if (typeof value === 'string' && key.endsWith('File')) {
      const abs = isAbsolute(value) ? value : resolvePath(baseDir, value);
      obj[key] = abs;
      try {
        accessSync(abs, fsConstants.R_OK);
      } catch (err) {
        fail([...path, key], `expected a readable file ${abs}, found ${(err as NodeJS.ErrnoException).code ?? 'an error'}`);
      }
    } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      resolveFiles(value as Record<string, unknown>, baseDir, [...path, key], fail);
    }
  }
}

// ---- error reporting -------------------------------------------------------------------

/** Errors in the order of the files (main first, then as read; a file that could not be read where its errors first are), each file's by line and column. */
function sortErrors(errors: ConfigError[], sources: readonly Source[]): ConfigError[] {
  const files = [...new Set([...sources.map((s) => s.file), ...errors.map((e) => e.file)])];
  return errors.sort((a, b) => files.indexOf(a.file) - files.indexOf(b.file) || a.line - b.line || a.column - b.column);
}

type Issue = z.core.$ZodIssue;
type At = (offset: number) => { line: number; col: number };

/** A schema issue as config errors; `root` is the JSON Schema of the file's kind (main or included), for "expected one of" and "did you mean". */
function describeIssue(issue: Issue, doc: Document, raw: unknown, file: string, at: At, root: JsonNode = configJsonSchema()): ConfigError[] {
  const path = issue.path;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const { keys: known, elsewhere } = knownKeysAt(path, raw, root, key);
        const hint = suggest(key, known);
        const expected = known.length > 0 ? `expected one of ${known.join(', ')}` : 'expected no such key';
        const why = hint ? ` (did you mean "${hint}"?)` : elsewhere ? ` (only with ${elsewhere})` : '';
        return locate(doc, [...path, key], file, at, `${expected}, found unknown key "${key}"${why}`, true);
      });
    case 'invalid_union':
      if (issue.discriminator !== undefined) {
        // A discriminated union (a check's kind, a queue's source, an oidc grant): the values it takes.
        const p = path[path.length - 1] === issue.discriminator ? path : [...path, issue.discriminator];
        const values = ((issue as { options?: unknown[] }).options ?? []).filter((v) => v !== undefined && v !== null).map(String);
        const expected = issue.message.startsWith('expected ') ? issue.message : `expected one of ${values.join(', ')}`;
        return [locate(doc, p, file, at, `${expected}, found ${found(doc, p)}`)];
      }
      if (issue.message.startsWith('expected ')) return [locate(doc, path, file, at, `${issue.message}, found ${found(doc, path)}`)];
      {
        // A plain union such as `tls: true | {caFile, ...}`: when the value has the shape of one
        // alternative (its issues are not a type mismatch at the union itself), report that
        // alternative's issues at their own paths; otherwise list what each alternative accepts.
        const atUnion = (i: Issue) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value');
        const branch = issue.errors.find((b) => b.length > 0 && !b.some(atUnion));
        if (branch) return branch.flatMap((sub) => describeIssue({ ...sub, path: [...path, ...sub.path] }, doc, raw, file, at, root));
        const alternatives = issue.errors.map((b) => {
          const s = b[0];
          return s?.code === 'invalid_value'
            ? s.values.map((v) => JSON.stringify(v)).join(' or ')
            : s?.code === 'invalid_type'
              ? describeType(s.expected)
              : 'another value';
        });
        return [locate(doc, path, file, at, `expected ${alternatives.join(' or ')}, found ${found(doc, path)}`)];
      }
    case 'invalid_type': {
      const expected =
        issue.message.startsWith('expected ') && !issue.message.startsWith('Invalid') ? issue.message.replace(/^expected /, '') : describeType(issue.expected);
      return [locate(doc, path, file, at, `expected ${expected.replace(/, received .*$/, '')}, found ${found(doc, path)}`)];
    }
    case 'too_small':
    case 'too_big': {
      if (issue.message.startsWith('expected ')) return [locate(doc, path, file, at, `${issue.message}, found ${found(doc, path)}`)];
      const small = issue.code === 'too_small';
      const limit = String(small ? issue.minimum : issue.maximum);
      const word = small ? 'at least' : 'at most';
      const op = `${small ? '>' : '<'}${issue.inclusive === false ? '' : '='}`;
      const what =
        issue.origin === 'array' ? `${word} ${limit} item(s)` : issue.origin === 'string' ? `${word} ${limit} character(s)` : `a value ${op} ${limit}`;
      return [locate(doc, path, file, at, `expected ${what}, found ${found(doc, path)}`)];
    }
    case 'invalid_value':
      return [
        locate(
          doc,
          path,
          file,
          at,
          `expected ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map((v) => String(v)).join(', ')}`}, found ${found(doc, path)}`,
        ),
      ];
    case 'invalid_key': {
      const key = String(path[path.length - 1]);
      return issue.issues.map((sub) =>
        locate(doc, path, file, at, `${sub.message.startsWith('expected') ? sub.message : `expected ${sub.message}`}, found key ${JSON.stringify(key)}`, true),
      );
    }
    default: {
      const message = issue.message.startsWith('expected') ? issue.message : `expected ${issue.message}`;
      return [locate(doc, path, file, at, `${message}, found ${found(doc, path)}`)];
    }
  }
}

function describeType(t: string): string {
  const names: Record<string, string> = {
    object: 'a mapping',
    array: 'a list',
    string: 'a string',
    number: 'a number',
    int: 'an integer',
    boolean: 'true or false',
  };
  return names[t] ?? t;
}

function nodeAt(doc: Document, path: readonly PropertyKey[]): { node: YamlNode | undefined; key: YamlNode | undefined } {
  let node: unknown = doc.contents;
  let key: YamlNode | undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return { node: undefined, key: undefined };
      key = isNode(pair.key) ? pair.key : undefined;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      key = undefined;
    } else return { node: undefined, key: undefined };
  }
  return { node: isNode(node) ? node : undefined, key };
}

function found(doc: Document, path: readonly PropertyKey[]): string {
  const { node, key } = nodeAt(doc, path);
  // Never echo what stands where a secret belongs: it may be the secret itself.
  if (path.includes('secrets') && isScalar(node)) return `a plain ${typeof node.value === 'string' ? 'string' : 'value'}`;
  // Keys that name a secret (oidc clientSecret, password): someone may have written the value there.
  if (/(?:secret|password)$/i.test(String(path[path.length - 1] ?? '')) && isScalar(node)) return 'a value not shown (a secret may stand here)';
  if (node === undefined) return key !== undefined ? 'an empty value' : 'nothing (the key is missing)';
  if (isMap(node)) return node.items.length === 0 ? 'an empty mapping' : 'a mapping';
  if (isSeq(node)) return node.items.length === 0 ? 'an empty list' : 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'an empty value';
    if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
    return typeof v === 'number' || typeof v === 'boolean' ? String(v) : 'an unsupported value';
  }
  return 'an unsupported value';
}

function locate(doc: Document, path: readonly PropertyKey[], file: string, at: At, message: string, preferKey = false): ConfigError {
  let p = [...path];
  for (;;) {
    const { node, key } = nodeAt(doc, p);
    const target = preferKey ? (key ?? node) : (node ?? key);
    const range = target?.range;
    if (range) {
      const { line, col } = at(range[0]);
      return { file, line, column: col, path: formatPath(path), message };
    }
    if (p.length === 0) return { file, line: 1, column: 1, path: formatPath(path), message };
    p = p.slice(0, -1);
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/** A node of the config's JSON Schema (zod's public export), as far as key lookups read it. */
interface JsonNode {
  type?: string;
  properties?: Record<string, JsonNode>;
  items?: JsonNode;
  additionalProperties?: JsonNode | boolean;
  oneOf?: JsonNode[];
  anyOf?: JsonNode[];
  const?: unknown;
  default?: unknown;
}

let jsonSchema: JsonNode | undefined;
let includedJson: JsonNode | undefined;

/** The config schema as JSON Schema (its input side), built once, on the first error that needs it. */
export function configJsonSchema(): JsonNode {
  jsonSchema ??= z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonNode;
  return jsonSchema;
}

/** The schema of an included file as JSON Schema, likewise. */
function includedJsonSchema(): JsonNode {
  includedJson ??= z.toJSONSchema(includedFileSchema, { io: 'input', unrepresentable: 'any' }) as JsonNode;
  return includedJson;
}

/**
 * The keys the schema accepts at `path` (for "expected one of" and "did you mean"). Where the
 * schema is a union of variants told apart by a constant (a check's kind, a queue's source), the
 * variant the value names is read; `elsewhere` then says which other variants take `key`
 * ("source rabbitmq or artemis"), when some do.
 */
function knownKeysAt(path: readonly PropertyKey[], raw: unknown, root: JsonNode, key?: string): { keys: string[]; elsewhere?: string } {
  let node: JsonNode | undefined = root;
  let value: unknown = raw;
  for (const seg of path) {
    const n = pickVariant(node, value);
    if (!n) return { keys: [] };
    if (n.type === 'object' && n.properties && typeof seg === 'string') node = n.properties[seg];
    else if (n.type === 'array') node = n.items;
    else if (n.type === 'object' && typeof n.additionalProperties === 'object') node = n.additionalProperties;
    else return { keys: [] };
    value = (value as Record<PropertyKey, unknown> | undefined)?.[seg];
  }
  const n = pickVariant(node, value);
  const keys = n?.type === 'object' && n.properties ? Object.keys(n.properties) : [];
  const variants = node?.oneOf ?? node?.anyOf;
  if (key === undefined || !variants) return { keys };
  const taking = variants.filter((v) => v !== n && v.properties?.[key] !== undefined);
  const tag = taking.length > 0 ? discriminatorOf(variants) : undefined;
  if (tag === undefined) return { keys };
  const names = taking.map((v) => String(v.properties?.[tag]?.const));
  return { keys, elsewhere: `${tag} ${names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : names[0]}` };
}

/** The property every variant of a union fixes to a constant (its discriminator), if there is one. */
function discriminatorOf(variants: readonly JsonNode[]): string | undefined {
  const first = variants[0]?.properties ?? {};
  return Object.keys(first).find((k) => variants.every((v) => v.properties?.[k]?.const !== undefined));
}

/** Of a union, the variant `value` names by its discriminator (or by a default), else the first object; any other node as it is. */
function pickVariant(n: JsonNode | undefined, value: unknown): JsonNode | undefined {
  const variants = n?.oneOf ?? n?.anyOf;
  if (!variants) return n;
  const tag = discriminatorOf(variants);
  const given = tag !== undefined ? (value as Record<string, unknown> | undefined)?.[tag] : undefined;
  return (
    (tag !== undefined &&
      variants.find((v) => {
        const p = v.properties?.[tag];
        return given !== undefined ? p?.const === given : p?.default !== undefined && p.default === p.const;
      })) ||
    variants.find((v) => v.type === 'object')
  );
}

function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] as number;
}
