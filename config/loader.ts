// Loads a YAML config file: parse, validate against the schema, apply defaults, resolve secret
// references and relative file paths. Every error names file, line:column, key path, what was
// expected and what was found. The only place that reads config files.
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument, Parser, visit, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { splitHostPort, type SecretRef } from './fields.js';
import { resolveWeb, type WebConfig } from './web.js';
import type { Kind, KindOptions, KindTarget } from '../probes/kinds.js';
import {
  checkSchema,
  checkTiming,
  configSchema,
  crossCheckIssues,
  defaultsSchema,
  DEFAULT_RECOVER_AFTER,
  DEFAULT_RETRIES,
  DEFAULT_RETRY_INTERVAL,
  type CrossIssue,
  DEFAULT_BASELINE_MIN_RUNS,
  DEFAULT_BASELINE_WINDOW,
  DEFAULT_FLAP_CHANGES,
  DEFAULT_FLAP_WINDOW,
  type ParsedConfig,
  type Schedule,
} from './schema.js';

export type { Schedule };

interface CheckCommon {
  name: string;
  /** The target as written, or with several targets their list joined by ","; for display and logs. */
  target: string;
  title: string;
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
  /** Absolute path of the state file, when configured. */
  stateFile?: string;
  statusPage: { title: string; language: 'auto' | 'en' | 'sv' | 'da'; refresh: number };
  /** Endpoint security (agent.web and its web config file). */
  web: WebConfig;
}

export interface Config {
  file: string;
  agent: AgentConfig;
  checks: CheckConfig[];
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

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigLoadError([
      { file, line: 0, column: 0, path: '', message: `expected a readable config file, found ${(err as NodeJS.ErrnoException).code ?? String(err)}` },
    ]);
  }
  return parseConfig(text, file, env, options);
}

/** Parses config text; `file` names it in errors and anchors relative paths. Throws ConfigLoadError. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Config {
  const lineCounter = new LineCounter();
  const at = (offset: number) => lineCounter.linePos(offset);
  const deep = nestingExceeded(text, MAX_DEPTH);
  if (deep !== undefined) {
    // Nothing was composed, so the line counter is empty: count the lines up to the offset.
    const before = text.slice(0, deep);
    throw new ConfigLoadError([
      {
        file,
        line: before.split('\n').length,
        column: deep - before.lastIndexOf('\n'),
        path: '',
        message: `expected at most ${MAX_DEPTH} levels of nesting, found deeper`,
      },
    ]);
  }
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  } catch (err) {
    if (err instanceof RangeError)
      throw new ConfigLoadError([{ file, line: 1, column: 1, path: '', message: `expected valid YAML, found more nesting than it can read (${err.message})` }]);
    throw err;
  }
  if (doc.errors.length > 0) {
    throw new ConfigLoadError(
      doc.errors.map((e) => {
        const { line, col } = at(e.pos[0]);
        return { file, line, column: col, path: '', message: `expected valid YAML, found ${e.message.split('\n')[0] ?? 'a syntax error'}` };
      }),
    );
  }
  const unsafe = unsafeNodes(doc);
  if (unsafe.length > 0) {
    throw new ConfigLoadError(
      unsafe.map((u) => {
        const { line, col } = at(u.offset);
        return { file, line, column: col, path: formatPath(u.path), message: u.message };
      }),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
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
    throw new ConfigLoadError([{ file, line, column: col, path: '', message: `expected valid YAML, found ${(err as Error).message}` }]);
  }
  const parsed = configSchema.safeParse(raw);
  const errors: ConfigError[] = parsed.success ? [] : parsed.error.issues.flatMap((issue) => describeIssue(issue, doc, raw, file, at));
  for (const issue of crossIssues(parsed.success ? parsed.data : undefined, raw)) {
    errors.push(locate(doc, issue.path, file, at, `${issue.message}, found ${found(doc, issue.path)}`));
  }
  if (!parsed.success || errors.length > 0) throw new ConfigLoadError(sortErrors(errors));
  const missingSecrets: ConfigError[] = [];
  const config = resolveConfig(parsed.data, file, env, (path, message) => {
    const e = locate(doc, path, file, at, message);
    if (options.secrets === 'report' && path.includes('secrets')) missingSecrets.push(e);
    else errors.push(e);
  });
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
  if (errors.length > 0) throw new ConfigLoadError(errors);
  return { ...config, agent: { ...config.agent, web }, missingSecrets };
}

/**
 * The rules across fields and checks, on parsed checks. When the file has schema errors, each
 * check and the defaults block are parsed on their own, so the rules still run on every check
 * that is valid by itself and `vakt validate` reports those errors in the same go.
 */
function crossIssues(parsed: ParsedConfig | undefined, raw: unknown): CrossIssue[] {
  const root = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const list: unknown[] = Array.isArray(root.checks) ? root.checks : [];
  const names = list.map((c) => {
    const name = (c as Record<string, unknown> | null)?.name;
    return typeof name === 'string' ? name : undefined;
  });
  if (parsed) return crossCheckIssues(names, parsed.checks, parsed.defaults);
  const defaults = defaultsSchema.safeParse(root.defaults ?? {});
  const checks = list.map((c) => checkSchema.safeParse(c).data);
  return crossCheckIssues(names, checks, defaults.success ? defaults.data : undefined);
}

/** Deepest nesting of maps and lists a config may have (the deepest real one is about 8). */
export const MAX_DEPTH = 64;

/** The YAML 1.2 core schema's tags: the only ones a config may carry (explicitly or not). */
const CORE_TAGS = new Set(['map', 'seq', 'str', 'null', 'bool', 'int', 'float'].map((t) => `tag:yaml.org,2002:${t}`));

/**
 * Offset of the first map or list nested deeper than `max`, from yaml's concrete syntax tree
 * (its Parser keeps a stack of its own and reads any depth; the Composer that builds the
 * document recurses, and a document thousands deep would run it out of stack); undefined when
 * none is. Walked without recursion.
 */
export function nestingExceeded(text: string, max: number): number | undefined {
  type Tok = { type?: string; offset?: number; value?: unknown; items?: { key?: unknown; value?: unknown }[] };
  let found: number | undefined;
  for (const doc of new Parser().parse(text)) {
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

function resolveConfig(
  p: ParsedConfig,
  file: string,
  env: NodeJS.ProcessEnv,
  fail: (path: PropertyKey[], message: string) => void,
): Omit<Config, 'missingSecrets' | 'agent'> & { agent: Omit<AgentConfig, 'web'> } {
  const baseDir = dirname(resolvePath(file));
  const { host, port } = splitHostPort(p.agent.listen, true) as { host: string; port: number };
  const d = p.defaults;
  const checks = p.checks.map((c, i): CheckConfig => {
    const secrets: Record<string, string> = {};
    for (const [key, ref] of Object.entries(c.secrets)) {
      const value = resolveSecret(ref, baseDir, env);
      if (typeof value === 'string') secrets[key] = value;
      else fail(['checks', i, 'secrets', key], value.error);
    }
    const options = (c as unknown as Record<string, unknown>)[c.kind] as Record<string, unknown>;
    resolveFiles(options, baseDir, ['checks', i, c.kind], fail);
    const { schedule, timeoutMs } = checkTiming(c, d);
    const histograms = c.histograms ?? d.histograms;
    return {
      name: c.name,
      kind: c.kind,
      target: (c.targets ?? (c.target !== undefined ? [c.target] : [])).map((t) => t.text).join(','),
      targets: c.targets ?? (c.target !== undefined ? [c.target] : []),
      title: c.title ?? c.name,
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
      options,
    } as unknown as CheckConfig;
  });
  return {
    file: resolvePath(file),
    agent: {
      listen: { host, port },
      labels: p.agent.labels,
      concurrency: p.agent.concurrency,
      probeThreads: p.agent.probeThreads,
      logLevel: p.agent.logLevel,
      jitter: p.agent.jitter,
      startSpreadMs: p.agent.startSpread,
      histograms: p.agent.histograms ?? (p.agent.phaseHistograms === undefined ? 'off' : p.agent.phaseHistograms ? 'phases' : 'total'),
      maxLoopDelayMs: p.agent.maxLoopDelay,
      maxConnections: p.agent.maxConnections,
      statusPage: p.agent.statusPage,
      ...(p.agent.stateFile !== undefined ? { stateFile: isAbsolute(p.agent.stateFile) ? p.agent.stateFile : resolvePath(baseDir, p.agent.stateFile) } : {}),
    },
    checks,
  };
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

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors.sort((a, b) => a.line - b.line || a.column - b.column);
}

type Issue = z.core.$ZodIssue;
type At = (offset: number) => { line: number; col: number };

function describeIssue(issue: Issue, doc: Document, raw: unknown, file: string, at: At): ConfigError[] {
  const path = issue.path;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const { keys: known, elsewhere } = knownKeysAt(path, raw, key);
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
        if (branch) return branch.flatMap((sub) => describeIssue({ ...sub, path: [...path, ...sub.path] }, doc, raw, file, at));
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

/** The config schema as JSON Schema (its input side), built once, on the first error that needs it. */
export function configJsonSchema(): JsonNode {
  jsonSchema ??= z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonNode;
  return jsonSchema;
}

/**
 * The keys the schema accepts at `path` (for "expected one of" and "did you mean"). Where the
 * schema is a union of variants told apart by a constant (a check's kind, a queue's source), the
 * variant the value names is read; `elsewhere` then says which other variants take `key`
 * ("source rabbitmq or artemis"), when some do.
 */
function knownKeysAt(path: readonly PropertyKey[], raw: unknown, key?: string): { keys: string[]; elsewhere?: string } {
  let node: JsonNode | undefined = configJsonSchema();
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
