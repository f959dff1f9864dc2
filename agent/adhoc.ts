// `vakt probe KIND TARGET [options]`: the words of an ad-hoc probe, like dig's or curl's, turned
// into a config of one check as a file would hold it, for the loader to validate as it does a
// file. Every option is named from the kind's own options schema (--bind-dn is ldap's bindDn,
// --tls.server-name its tls.serverName), so no kind has a flag list of its own here.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../config/units.js';
import { KINDS, kindNamed } from '../probes/kinds.js';
import { SECRET_NAME } from '../probes/kit/options.js';

/** The name the ad-hoc check has in the loader (never shown: its output names the kind). */
export const AD_HOC_CHECK = 'ad-hoc';

/** A command line that is not an ad-hoc probe: a usage error (exit 2). */
export class AdHocError extends Error {
  override readonly name = 'AdHocError';
}

export interface AdHocProbe {
  /** One check, as a config file would hold it. */
  config: { checks: [Record<string, unknown>] };
  json: boolean;
  /** A loader error's key path (checks[0].ldap.bindDn) as the flag that sets it (--bind-dn). */
  flagOf(path: string): string;
}

/** A node of a JSON Schema (zod's export of a kind's options), as far as the flags read it. */
interface SchemaNode {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
  allOf?: SchemaNode[];
}

type SecretRef = { env: string } | { file: string };

/**
 * Reads `vakt probe KIND WORDS...`: TARGET (several for kinds that take `targets`), the kind's
 * options as --KEY VALUE (dotted keys for nesting, kebab or camel case), --opt KEY=VALUE,
 * --options YAML, secrets as --secret NAME=env:VAR|file:PATH or, for an option that names a
 * secret, --KEY env:VAR (--KEY-env VAR, --KEY-file PATH), --timeout and --json.
 * @example adHocProbe('dns', ['10.0.0.53', '--name', 'ehr.region.local', '--type', 'A'])
 */
export function adHocProbe(kind: string, words: readonly string[]): AdHocProbe {
  const def = kindNamed(kind);
  if (!def) throw new AdHocError(`unknown kind "${kind}" (kinds: ${KINDS.join(', ')}); a check of a config file: vakt probe -c FILE CHECK`);
  const schema = optionSchema(kind);
  const targets: string[] = [];
  let options: Record<string, unknown> = {};
  const sets: { path: string[]; value: unknown }[] = [];
  const secrets: Record<string, SecretRef> = {};
  const secretFlags = new Map<string, string>();
  /** Options that name a secret, given as env:VAR, file:PATH or a --secret's name: resolved once every --secret is read. */
  const secretOptions: { path: string[]; value: string; flag: string }[] = [];
  /** The flag as written, by the option path it set (for messages). */
  const written = new Map<string, string>();
  let timeout: string | undefined;
  let json = false;

  const addSecret = (name: string, ref: SecretRef, flag: string) => {
    if (secrets[name] !== undefined) throw new AdHocError(`${flag}: secret ${name} is given twice`);
    secrets[name] = ref;
    secretFlags.set(name, flag);
  };
  /** Sets option KEY (as written) from `text`, or as a flag (`text` undefined: true). */
  const assign = (key: string, text: string | undefined, flag: string) => {
    const path = resolveKey(schema, key);
    written.set(path.join('.'), flag);
    const top = path[0] as string;
    const stem = /^(.+)(Env|File)$/.exec(top);
    if (path.length === 1 && stem && def.secretOptions.includes(stem[1] as string)) {
      // --password-env VAR, --password-file PATH: a secret named after the option.
      const name = stem[1] as string;
      written.set(name, flag);
      addSecret(name, stem[2] === 'Env' ? { env: text ?? '' } : { file: text ?? '' }, flag);
      sets.push({ path: [name], value: name });
      return;
    }
    if (path.length === 1 && def.secretOptions.includes(top)) {
      secretOptions.push({ path, value: text ?? '', flag });
      return;
    }
    const node = nodeAt(schema, path);
    if (text === undefined) sets.push({ path, value: true });
    else if (accepts(node, 'array') && !text.startsWith('[')) sets.push({ path, value: [scalar(node?.items ?? itemsOf(node), text)] });
    else sets.push({ path, value: scalar(node, text) });
  };

  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (word === '--') {
      targets.push(...words.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      targets.push(word);
      continue;
    }
    const eq = word.startsWith('--') ? word.indexOf('=') : -1;
    const flag = eq > 0 ? word.slice(0, eq) : word;
    const inline = eq > 0 ? word.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = words[i + 1];
      if (next === undefined) throw new AdHocError(`${flag} needs a value`);
      i++;
      return next;
    };
    switch (flag) {
      case '--json':
        json = true;
        continue;
      case '--timeout':
        timeout = value();
        continue;
      case '-o':
      case '--opt': {
        const kv = value();
        const at = kv.indexOf('=');
        if (at < 1) throw new AdHocError(`${flag} expects KEY=VALUE (e.g. --opt tls.serverName=ehr.example), got ${JSON.stringify(kv)}`);
        assign(kv.slice(0, at), kv.slice(at + 1), `--opt ${kv.slice(0, at)}`);
        continue;
      }
      case '--options': {
        const text = value();
        let parsed: unknown;
        try {
          parsed = parseYaml(text);
        } catch (err) {
          throw new AdHocError(`--options expects a YAML or JSON mapping such as '{name: ehr.local, type: A}' (${(err as Error).message.split('\n')[0]})`);
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
          throw new AdHocError(`--options expects a mapping such as '{name: ehr.local}'`);
        options = parsed as Record<string, unknown>;
        continue;
      }
      case '--secret': {
        const spec = value();
        const m = /^([^=]+)=(env|file):(.+)$/.exec(spec);
        if (!m || !SECRET_NAME.test(m[1] as string)) {
          throw new AdHocError('--secret expects NAME=env:VARIABLE or NAME=file:PATH (a secret is never written on the command line)');
        }
        addSecret(m[1] as string, m[2] === 'env' ? { env: m[3] as string } : { file: m[3] as string }, `--secret ${m[1]}`);
        continue;
      }
    }
    if (!flag.startsWith('--') || flag.length === 2) throw new AdHocError(`unknown option ${flag} (options of ${kind}: ${optionFlags(kind).join(' ')})`);
    const key = flag.slice(2);
    const path = resolveKey(schema, key);
    const node = nodeAt(schema, path);
    const next = words[i + 1];
    // A key that takes true (a boolean, tls: true) is a flag unless a value follows it.
    const isFlag = node !== undefined && inline === undefined && accepts(node, 'boolean') && (next === undefined || !/^(true|false|\{.*)$/s.test(next));
    assign(key, isFlag ? undefined : value(), flag);
  }

  for (const s of secretOptions) {
    const ref = /^(env|file):(.+)$/.exec(s.value);
    const name = s.path[0] as string;
    if (ref) {
      addSecret(name, ref[1] === 'env' ? { env: ref[2] as string } : { file: ref[2] as string }, s.flag);
      sets.push({ path: s.path, value: name });
    } else if (secrets[s.value] !== undefined) sets.push({ path: s.path, value: s.value });
    else {
      // Never echoed: it may be the password itself.
      throw new AdHocError(
        `${s.flag} takes env:VARIABLE or file:PATH (${s.flag}-env VARIABLE, ${s.flag}-file PATH), or the name of a --secret; a secret is never written on the command line`,
      );
    }
  }
  for (const { path, value } of sets) setAt(options, path, value);

  if (targets.length === 0) throw new AdHocError(`probe ${kind} needs a TARGET (vakt probe --help)`);
  if (targets.length > 1 && !def.target.multiple) throw new AdHocError(`probe ${kind} takes one TARGET, got ${targets.length}: ${targets.join(' ')}`);
  const check: Record<string, unknown> = {
    name: AD_HOC_CHECK,
    kind,
    ...(targets.length === 1 ? { target: targets[0] } : { targets }),
    // The interval only has to leave room for the timeout: an ad-hoc check is run once.
    ...(timeout !== undefined ? { timeout, ...(parseDuration(timeout) !== undefined ? { interval: timeout } : {}) } : {}),
    ...(Object.keys(secrets).length > 0 ? { secrets } : {}),
    [kind]: options,
  };
  return {
    config: { checks: [check] },
    json,
    flagOf: (path) => flagOf(path, kind, written, secretFlags),
  };
}

/** The probe's own flags: an option of the same name is set with --opt (http's json). */
const OWN_FLAGS = ['json', 'timeout', 'opt', 'options', 'secret'];

/** The kind's top-level options as flags (--bind-dn), for help and messages. */
export function optionFlags(kind: string): string[] {
  const keys = new Set(variants(optionSchema(kind)).flatMap((n) => Object.keys(n.properties ?? {})));
  return [...keys].map((k) => (OWN_FLAGS.includes(k) ? `--opt ${k}=...` : `--${kebab(k)}`));
}

const schemas = new Map<string, SchemaNode>();

function optionSchema(kind: string): SchemaNode {
  let s = schemas.get(kind);
  if (!s) {
    const def = kindNamed(kind);
    s = def ? (z.toJSONSchema(def.options, { io: 'input', unrepresentable: 'any' }) as SchemaNode) : {};
    schemas.set(kind, s);
  }
  return s;
}

/** A node and the alternatives of its unions, flattened. */
function variants(n: SchemaNode | undefined): SchemaNode[] {
  if (!n) return [];
  const alts = [...(n.anyOf ?? []), ...(n.oneOf ?? []), ...(n.allOf ?? [])];
  return [n, ...alts.flatMap(variants)];
}

/** The node of a key under `n`, across the variants of a union (undefined: the schema has no such key). */
function child(n: SchemaNode | undefined, key: string): SchemaNode | undefined {
  const found: SchemaNode[] = [];
  for (const v of variants(n)) {
    const p = v.properties?.[key];
    if (p) found.push(p);
    else if (typeof v.additionalProperties === 'object') found.push(v.additionalProperties);
    else if (/^\d+$/.test(key) && v.items) found.push(v.items);
  }
  return found.length <= 1 ? found[0] : { anyOf: found };
}

function nodeAt(schema: SchemaNode, path: readonly string[]): SchemaNode | undefined {
  let n: SchemaNode | undefined = schema;
  for (const seg of path) n = child(n, seg);
  return n;
}

function itemsOf(n: SchemaNode | undefined): SchemaNode | undefined {
  return variants(n).find((v) => v.items)?.items;
}

/** A dotted key as written (kebab or camel case) as the schema's path: each part as the schema names it, a record's keys as written. */
function resolveKey(schema: SchemaNode, key: string): string[] {
  const path: string[] = [];
  let n: SchemaNode | undefined = schema;
  for (const part of key.split('.')) {
    if (part === '__proto__' || part === 'constructor' || part === 'prototype') throw new AdHocError(`--${key}: no option is named ${part}`);
    const has = (k: string) => variants(n).some((v) => v.properties?.[k] !== undefined);
    const camel = part.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    const record = variants(n).some((v) => typeof v.additionalProperties === 'object');
    const seg = has(part) ? part : has(camel) ? camel : record ? part : camel;
    path.push(seg);
    n = child(n, seg);
  }
  return path;
}

/** Whether a node takes values of a JSON type (any node the schema does not know takes every type). */
function accepts(n: SchemaNode | undefined, type: string): boolean {
  if (!n) return type !== 'array';
  return variants(n).some((v) => {
    const types = v.type === undefined ? [] : Array.isArray(v.type) ? v.type : [v.type];
    if (types.includes(type) || (type === 'integer' && types.includes('number'))) return true;
    if (v.const !== undefined) return jsonType(v.const) === type;
    return (v.enum ?? []).some((e) => jsonType(e) === type);
  });
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/**
 * A value as written: quoted text and [lists] and {mappings} read as YAML; a plain word as the
 * number, true, false or null it reads as where the key takes one, else as the text it is (so
 * "010" stays a name where a name is expected, and "#" starts no comment).
 */
function scalar(n: SchemaNode | undefined, text: string): unknown {
  if (/^["'[{]/.test(text)) {
    try {
      return parseYaml(text) as unknown;
    } catch {
      return text;
    }
  }
  let v: unknown;
  try {
    v = parseYaml(text);
  } catch {
    return text;
  }
  return typeof v !== 'string' && (v === null || typeof v !== 'object') && accepts(n, jsonType(v)) ? v : text;
}

/** Sets `value` at `path` in `obj`, making the mappings on the way (a `true` on the way becomes one); a list is added to. */
function setAt(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let o = obj;
  for (const seg of path.slice(0, -1)) {
    const next = o[seg];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) o[seg] = {};
    o = o[seg] as Record<string, unknown>;
  }
  const last = path[path.length - 1] as string;
  const before = o[last];
  o[last] = Array.isArray(before) && Array.isArray(value) ? [...(before as unknown[]), ...(value as unknown[])] : value;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** checks[0].ldap.search.baseDn -> the flag written for it or its nearest parent (--search.base-dn). */
function flagOf(path: string, kind: string, written: ReadonlyMap<string, string>, secretFlags: ReadonlyMap<string, string>): string {
  const check = /^checks\[0\]\.?(.*)$/.exec(path)?.[1];
  if (check === undefined) return path === '' ? 'the command line' : path;
  if (check === '' || check === 'target' || check.startsWith('targets')) return 'TARGET';
  if (check === 'timeout' || check === 'interval') return '--timeout';
  const secret = /^secrets\.(.+)$/.exec(check)?.[1];
  if (secret !== undefined) return secretFlags.get(secret) ?? `--secret ${secret}`;
  if (check === kind) return '--options';
  if (!check.startsWith(`${kind}.`)) return check;
  const parts = check
    .slice(kind.length + 1)
    .split(/\.|\[(\d+)\]/)
    .filter((p) => p !== undefined && p !== '');
  for (let n = parts.length; n > 0; n--) {
    const flag = written.get(parts.slice(0, n).join('.'));
    if (flag !== undefined) return [flag, ...parts.slice(n).map(kebab)].join('.');
  }
  return `--${parts.map(kebab).join('.')}`;
}
