// The agent's endpoint security: the web config file in the format Prometheus exporters use (the
// exporter-toolkit's web.yml: tls_server_config, basic_auth_users with bcrypt hashes,
// http_server_config.headers), and the route classes of agent.web.access. Parsed and checked
// when the config loads, so `vakt validate` reports a bad web config like any other error.
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import type { SecretRef } from './fields.js';

/** Who may use a route class: anyone, only clients on the same host, any valid credential, or the named credentials. */
export type AccessRule = 'open' | 'loopback' | 'authenticated' | readonly string[];

export type RouteClass = 'status' | 'read' | 'admin';

/** exporter-toolkit's client_auth_type values, as Go's crypto/tls names them. */
export const CLIENT_AUTH_TYPES = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

const TLS_VERSIONS = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' } as const;
export type TlsVersion = (typeof TLS_VERSIONS)[keyof typeof TLS_VERSIONS];

export interface WebTls {
  certFile: string;
  keyFile: string;
  clientCaFile?: string;
  clientAuth: ClientAuthType;
  minVersion: TlsVersion;
  maxVersion?: TlsVersion;
  /** Subject alternative names a verified client certificate must carry one of (client_allowed_sans). */
  clientAllowedSans?: string[];
  honorCipherOrder: boolean;
}

export interface WebConfig {
  /** The web config file it came from, when there is one. */
  file?: string;
  tls?: WebTls;
  /** Basic-auth user name → bcrypt hash. */
  users: Record<string, string>;
  /** Bearer token name → token value (resolved from its secret reference). */
  tokens: Record<string, string>;
  /** Response headers for every answer (http_server_config.headers). */
  headers: Record<string, string>;
  access: Record<RouteClass, AccessRule>;
  /** A second listener that serves the status class only (agent.web.statusListen). */
  statusListen?: { host: string; port: number };
}

/** A bcrypt hash as htpasswd, Go's x/crypto/bcrypt and bcryptjs write it. */
const BCRYPT = /^\$2[abxy]?\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** Names of credentials: basic-auth users and bearer tokens share one name space. */
export const credentialName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, { message: 'expected a name of letters, digits, ".", "_", "@" and "-" (at most 64)' });

/** Response headers the server sets itself or that would break it. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'connection', 'www-authenticate', 'vary']);

const webFileSchema = z.strictObject({
  tls_server_config: z
    .strictObject({
      cert_file: z.string().min(1),
      key_file: z.string().min(1),
      client_ca_file: z.string().min(1).optional(),
      client_auth_type: z.enum(CLIENT_AUTH_TYPES).default('NoClientCert'),
      min_version: z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS]).default('TLS12'),
      max_version: z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS]).optional(),
      client_allowed_sans: z.array(z.string().min(1)).min(1).optional(),
      prefer_server_cipher_suites: z.boolean().default(true),
      cipher_suites: z.unknown().optional(),
      curve_preferences: z.unknown().optional(),
    })
    .optional(),
  http_server_config: z
    .strictObject({
      /** Go's HTTP/2 switch: vakt serves HTTP/1.1, so only false or absent mean what they say. */
      http2: z.boolean().optional(),
      headers: z
        .record(
          z.string().regex(/^[A-Za-z0-9-]{1,64}$/, { message: 'expected a header name' }),
          z
            .string()
            .max(4096)
            .regex(/^[\t\x20-\x7e\x80-\xff]*$/, { message: 'expected a header value without line breaks or control characters' }),
        )
        .default({}),
    })
    .optional(),
  basic_auth_users: z.record(credentialName, z.string()).default({}),
});

export interface WebFileError {
  file: string;
  line: number;
  column: number;
  path: string;
  message: string;
}

/** What a web config file sets. */
export interface WebFile {
  tls?: WebTls;
  users: Record<string, string>;
  headers: Record<string, string>;
}

/** Largest web config file read: it holds a few keys and hashes. */
const MAX_WEB_FILE = 1 << 20;

/**
 * Reads and checks a web config file; relative file names in it are taken from its own folder,
 * as the exporter-toolkit does. Returns errors (each with line and column) instead of throwing.
 */
export function readWebFile(file: string): { web: WebFile } | { errors: WebFileError[] } {
  const fail = (message: string, line = 0, column = 0, path = ''): { errors: WebFileError[] } => ({ errors: [{ file, line, column, path, message }] });
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) return fail('expected a web config file, found something that is not a regular file');
    if (st.size > MAX_WEB_FILE) return fail(`expected a web config file of at most 1 MiB, found ${st.size} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return fail(`expected a readable web config file, found ${(err as NodeJS.ErrnoException).code ?? 'an error'}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const { line, col } = lines.linePos(e.pos[0]);
    return fail(`expected valid YAML, found ${e.message.split('\n')[0] ?? 'a syntax error'}`, line, col);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 10 }) ?? {};
  } catch (err) {
    return fail(`expected valid YAML, found ${(err as Error).message}`, 1, 1);
  }
  const where = (path: readonly PropertyKey[]): { line: number; column: number } => {
    let node: unknown = doc.contents;
    let at: YamlNode | undefined = isMap(node) ? node : undefined;
    for (const seg of path) {
      if (!isMap(node)) break;
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      at = (pair.value ?? pair.key) as YamlNode;
      node = pair.value;
    }
    const { line, col } = lines.linePos(at?.range?.[0] ?? 0);
    return { line, column: col };
  };
  const errors: WebFileError[] = [];
  const add = (path: readonly PropertyKey[], message: string) => errors.push({ file, ...where(path), path: path.join('.'), message });
  const parsed = webFileSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      if (issue.code === 'unrecognized_keys')
        for (const key of issue.keys) add([...issue.path, key], `expected no key "${key}" (not part of the web config format)`);
      else add(issue.path, issue.message.startsWith('expected') ? issue.message : `expected ${issue.message}`);
    }
    return { errors };
  }
  const p = parsed.data;
  const base = dirname(resolvePath(file));
  const local = (f: string) => (isAbsolute(f) ? f : resolvePath(base, f));
  for (const [user, hash] of Object.entries(p.basic_auth_users)) {
    if (!BCRYPT.test(hash)) add(['basic_auth_users', user], 'expected a bcrypt hash such as $2y$10$... (htpasswd -nbBC 10 USER PASSWORD)');
  }
  for (const name of Object.keys(p.http_server_config?.headers ?? {})) {
    if (RESERVED_HEADERS.has(name.toLowerCase()))
      add(['http_server_config', 'headers', name], `expected a header the server does not set itself, found ${name}`);
  }
  if (p.http_server_config?.http2 === true) add(['http_server_config', 'http2'], 'expected false or no http2 key (vakt serves HTTP/1.1)');
  let tls: WebTls | undefined;
  const t = p.tls_server_config;
  if (t) {
    if (t.cipher_suites !== undefined)
      add(
        ['tls_server_config', 'cipher_suites'],
        "expected no cipher_suites (Go's cipher names; vakt uses OpenSSL's defaults for TLS 1.2 and 1.3): remove the key",
      );
    if (t.curve_preferences !== undefined)
      add(['tls_server_config', 'curve_preferences'], "expected no curve_preferences (vakt uses OpenSSL's defaults): remove the key");
    const needsCa = t.client_auth_type === 'VerifyClientCertIfGiven' || t.client_auth_type === 'RequireAndVerifyClientCert';
    if (needsCa && t.client_ca_file === undefined)
      add(['tls_server_config', 'client_auth_type'], `expected client_ca_file with client_auth_type ${t.client_auth_type}`);
    if (t.client_allowed_sans && !needsCa)
      add(['tls_server_config', 'client_allowed_sans'], 'expected client_allowed_sans only with a client_auth_type that verifies client certificates');
    const min = TLS_VERSIONS[t.min_version];
    const max = t.max_version ? TLS_VERSIONS[t.max_version] : undefined;
    if (max && max < min) add(['tls_server_config', 'max_version'], `expected max_version at least min_version (${t.min_version})`);
    tls = {
      certFile: local(t.cert_file),
      keyFile: local(t.key_file),
      ...(t.client_ca_file ? { clientCaFile: local(t.client_ca_file) } : {}),
      clientAuth: t.client_auth_type,
      minVersion: min,
      ...(max ? { maxVersion: max } : {}),
      ...(t.client_allowed_sans ? { clientAllowedSans: t.client_allowed_sans } : {}),
      honorCipherOrder: t.prefer_server_cipher_suites,
    };
    for (const [key, f] of [
      ['cert_file', tls.certFile],
      ['key_file', tls.keyFile],
      ['client_ca_file', tls.clientCaFile],
    ] as const) {
      if (f === undefined) continue;
      try {
        readFileSync(f);
      } catch (err) {
        add(['tls_server_config', key], `expected a readable file ${f}, found ${(err as NodeJS.ErrnoException).code ?? 'an error'}`);
      }
    }
  }
  if (errors.length > 0) return { errors };
  return { web: { ...(tls ? { tls } : {}), users: p.basic_auth_users, headers: p.http_server_config?.headers ?? {} } };
}

/** Whether an address is this host's own: an address the agent listens on that only this host reaches, or a client on this host. */
export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\./.test(address) || /^::ffff:127\./i.test(address);
}

/** agent.web as the schema parsed it. */
export interface WebInput {
  config?: string | undefined;
  tokens: Record<string, SecretRef>;
  access: Partial<Record<RouteClass, AccessRule | undefined>>;
  statusListen?: string | undefined;
}

/**
 * agent.web with its web config file read, its tokens resolved and its access rules completed:
 * status is open unless set; read needs a credential once any exists (open otherwise, with a
 * warning from the server when that is reachable from other hosts); admin answers loopback
 * clients only unless set. `file` overrides agent.web.config (vakt run --web.config.file).
 */
export function resolveWeb(
  input: WebInput,
  baseDir: string,
  file: string | undefined,
  secret: (ref: SecretRef) => string | { error: string },
  fail: (path: PropertyKey[], message: string) => void,
  failIn: (e: WebFileError) => void,
  listen: (text: string) => { host: string; port: number },
): WebConfig {
  const webFile = file ?? (input.config === undefined ? undefined : isAbsolute(input.config) ? input.config : resolvePath(baseDir, input.config));
  let read: WebFile = { users: {}, headers: {} };
  if (webFile !== undefined) {
    const r = readWebFile(webFile);
    if ('errors' in r) r.errors.forEach(failIn);
    else read = r.web;
  }
  const tokens: Record<string, string> = {};
  for (const [name, ref] of Object.entries(input.tokens)) {
    const value = secret(ref);
    if (typeof value === 'string') tokens[name] = value;
    else fail(['agent', 'web', 'tokens', name], value.error);
    if (name in read.users) fail(['agent', 'web', 'tokens', name], `expected a name no basic_auth_users entry has, found "${name}" in both (${webFile})`);
  }
  const known = new Set([...Object.keys(read.users), ...Object.keys(input.tokens)]);
  const any = known.size > 0;
  const access: Record<RouteClass, AccessRule> = {
    status: input.access.status ?? 'open',
    read: input.access.read ?? (any ? 'authenticated' : 'open'),
    admin: input.access.admin ?? 'loopback',
  };
  for (const cls of ['status', 'read', 'admin'] as const) {
    const rule = access[cls];
    if (rule === 'authenticated' && !any && input.access[cls] !== undefined)
      fail(['agent', 'web', 'access', cls], 'expected credentials for "authenticated": basic_auth_users in agent.web.config or agent.web.tokens, found none');
    if (typeof rule === 'string') continue;
    rule.forEach((name, i) => {
      if (!known.has(name))
        fail(
          ['agent', 'web', 'access', cls, i],
          `expected the name of a basic_auth_users entry or an agent.web.tokens entry, found "${name}" (known: ${[...known].join(', ') || 'none'})`,
        );
    });
  }
  return {
    ...(webFile !== undefined ? { file: webFile } : {}),
    ...(read.tls ? { tls: read.tls } : {}),
    users: read.users,
    tokens,
    headers: read.headers,
    access,
    ...(input.statusListen !== undefined ? { statusListen: listen(input.statusListen) } : {}),
  };
}
