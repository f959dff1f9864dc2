// Fuzzing the queue probe with hostile management APIs and file-drop folders (issue 6, "Bad
// input"). For each HTTP source one real server on loopback answers, case after case, with the
// recorded broker bodies of test/fixtures/queue mutated by structure (a value replaced by random
// JSON: huge, negative, fractional or NaN-as-string numbers, strings, nulls, arrays, nested
// objects; keys removed; entries duplicated; lists wrapped and unwrapped) and by bytes (truncated,
// flipped, garbage inserted, HTML instead of JSON), with random status codes, content types and
// framing. One check memory per source runs through all its cases, so the rate, stall and growth
// code sees garbage sequences too. Every run must resolve with ok, or with a failure whose reason
// is a real one (never 'internal') and whose message is of sane length; every reading it reports
// must hold finite, non-negative numbers. A second family does the same for source directory:
// random file names (unicode, spaces, globs, 255 bytes, not UTF-8) and mtimes (1960, 1970, the
// future), random globs. Seeded: rerun with QUEUE_FUZZ_SEED=<seed>.
import { randomInt } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { createServer, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, onTestFailed } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { type QueueOptions } from '../../probes/queue/options.js';
import { globMatcher } from '../../probes/queue/sources.js';
import { queueProbe } from '../../probes/queue/probe.js';
import type { ProbeResult, QueueReading } from '../../probes/types.js';
import { ALL_DEGRADED_REASONS, ALL_FAILURE_REASONS } from '../../probes/kinds.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { prng, type Rng } from '../helpers/prng.js';

const SEED = process.env.QUEUE_FUZZ_SEED !== undefined ? Number(process.env.QUEUE_FUZZ_SEED) : randomInt(2 ** 31);
const reproduce = `seed ${SEED} (rerun with QUEUE_FUZZ_SEED=${SEED})`;

/** Cases per HTTP source (five sources: 10,000 in all), and the directory family's size. */
const CASES_PER_SOURCE = 2000;
const DIR_SCENARIOS = 50;
const DIR_RUNS_PER_SCENARIO = 24;
/**
 * Longest failure or degraded message accepted. Bounded is what matters: a message is made of
 * configured names (at most 255 characters each) and snippets of server text (120-200 characters),
 * never of a whole header or body from the server.
 */
const MAX_MESSAGE = 2048;
/** Longest queue name or state accepted in a reading (Mirth's are "channel/destination", from the server). */
const MAX_LABEL = 512;
const SECRET = 'fuzz-secret-d41d8cd9';

/** An independent stream per source, so the sources can run concurrently and stay reproducible. */
const streamSeed = (k: number) => (SEED ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0;

// ---------------------------------------------------------------------------------------------
// Realistic bodies: the recorded (and constructed) answers of each API.

const FIXTURES = fileURLToPath(new URL('../fixtures/queue/', import.meta.url));
const FIXTURE_FILES = readdirSync(FIXTURES).sort();
const fixtureDocs = (prefix: string): unknown[] =>
  FIXTURE_FILES.filter((f) => f.startsWith(prefix) && f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as unknown);

const RABBIT_DOCS = fixtureDocs('rabbitmq-');
const ACTIVEMQ_DOCS = fixtureDocs('activemq-');
const ARTEMIS_DOCS = fixtureDocs('artemis-');
const MIRTH_DOCS = fixtureDocs('mirth-');
/** An engine we do not know (http-json), in the recording's clock (epoch ~1795385000). */
const ENGINE_DOCS: unknown[] = [
  { engine: 'edi-gateway', version: '4.2.1', stats: { pending: 42, oldest: 1795384970000, workers: 3, in: 900, out: 858 } },
  { engine: 'edi-gateway', stats: { pending: 0, oldest: null, workers: 1, in: 12, out: 12 } },
  { stats: { pending: '17', oldest: '1795384902000', workers: '2', in: '100', out: '83' } },
  { stats: { pending: 5, oldest: 1795384990123, workers: 0, in: 5, out: 0 }, queues: [{ name: 'edifact.in', pending: 5 }] },
];
const ALL_DOCS = [...RABBIT_DOCS, ...ACTIVEMQ_DOCS, ...ARTEMIS_DOCS, ...MIRTH_DOCS, ...ENGINE_DOCS];
const HTML_PAGES = [
  ...FIXTURE_FILES.filter((f) => f.endsWith('.html')).map((f) => readFileSync(join(FIXTURES, f), 'utf8')),
  '<!doctype html><html><head><title>Sign in</title></head><body><form method="post" action="/login"><input name="username"><input type="password" name="password"></form></body></html>',
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n',
  '<?xml version="1.0" encoding="UTF-8"?><list><dashboardStatus><channelId>c1</channelId><queued>3</queued></dashboardStatus></list>',
  '<HTML><BODY>Access denied by corporate proxy',
];

// ---------------------------------------------------------------------------------------------
// Random JSON values and structure-aware mutations.

/** A JSON token written as it is: numbers JSON.stringify cannot produce (1e400, -0, 400 digits). */
class Raw {
  constructor(readonly text: string) {}
}

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  3,
  7,
  42,
  255,
  65535,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  1e21,
  1e300,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MIN_VALUE,
  0.5,
  -0.25,
  0.1,
  2.5e-7,
  -3.7,
  1795384902,
  1795384902123,
  -1795384902,
];
const RAW_NUMBERS = [
  '1e400',
  '-1e400',
  '1E+2',
  '-0',
  '0.000',
  `1${'0'.repeat(400)}`,
  '123456789012345678901234567890',
  `-${'9'.repeat(330)}`,
  '4.9e-325',
  '0e0',
];
const NUMERIC_STRINGS = [
  'NaN',
  '-NaN',
  'Infinity',
  '-Infinity',
  'null',
  'undefined',
  '12',
  ' 7 ',
  '\t3\n',
  '-5',
  '-0',
  '1.5',
  '1e5',
  '1e400',
  '0x1F',
  '',
  ' ',
  '007',
  '12abc',
  '１２',
  '٣',
  '9'.repeat(400),
  `-${'9'.repeat(400)}`,
  '9'.repeat(309),
  `0.${'0'.repeat(400)}1`,
  '1,000',
  '+4',
];
const STRINGS = [
  'running',
  'idle',
  'down',
  'crashed',
  'flow',
  'STARTED',
  'STOPPED',
  'PAUSED',
  'DEPLOYING',
  'lab.results',
  'HL7.IN',
  'ORDERS.OUT',
  'LAB_RESULTS_OUT',
  '8f1c2d5e-3b7a-4c19-9e0f-6a2b4d8c1e37',
  'RECEIVED',
  'SENT',
  'ERROR',
  'FILTERED',
  'QUEUED',
  '__proto__',
  'constructor',
  'toString',
  '<html>',
  '"',
  '\\',
  '\u0000',
  '\ud800',
  'ø',
  '😀',
  SECRET,
];
const KEYS = [
  'messages',
  'messages_ready',
  'messages_unacknowledged',
  'consumers',
  'head_message_timestamp',
  'message_stats',
  'publish',
  'deliver_get',
  'rate',
  'name',
  'state',
  'status',
  'value',
  'request',
  'error',
  'error_type',
  'QueueSize',
  'EnqueueCount',
  'DequeueCount',
  'ConsumerCount',
  'InFlightCount',
  'MessageCount',
  'MessagesAdded',
  'MessagesAcknowledged',
  'FirstMessageAge',
  'DeliveringCount',
  'list',
  'dashboardStatus',
  'channelId',
  'queued',
  'statistics',
  'entry',
  'long',
  'int',
  'stats',
  'pending',
  'oldest',
  'workers',
  'in',
  'out',
  '__proto__',
  'constructor',
  '',
  'x',
];

function randomString(r: Rng): string {
  const k = r.int(20);
  if (k < 8) return r.pick(STRINGS);
  if (k < 18)
    return Array.from({ length: r.int(24) }, () =>
      String.fromCodePoint(r.chance(0.8) ? 32 + r.int(95) : r.pick([0, 9, 10, 0xa0, 0xf8, 0x200b, 0xfeff, 0x1f600, 0xd800 + r.int(0x800)])),
    ).join('');
  // Long: a channel name or state of a few kilobytes.
  return r.pick(['A', 'é', '<x>', 'LAB_']).repeat(1000 + r.int(4000));
}

/** Deeply nested, but bounded (64 levels). */
function deep(r: Rng): unknown {
  let v: unknown = r.chance(0.5) ? r.pick(NUMBERS) : r.pick(NUMERIC_STRINGS);
  for (let i = 1 + r.int(64); i > 0; i--) v = r.chance(0.5) ? [v] : { [r.pick(KEYS)]: v };
  return v;
}

function randomValue(r: Rng, depth: number): unknown {
  switch (r.int(depth > 0 ? 13 : 10)) {
    case 0:
    case 1:
      return r.pick(NUMBERS);
    case 2:
      return (r.next() - 0.5) * 10 ** r.int(25);
    case 3:
      return new Raw(r.pick(RAW_NUMBERS));
    case 4:
    case 5:
      return r.pick(NUMERIC_STRINGS);
    case 6:
    case 7:
      return randomString(r);
    case 8:
      return r.pick([null, null, true, false]);
    case 9:
      return r.chance(0.5) ? [] : {};
    case 10:
      return Array.from({ length: 1 + r.int(4) }, () => randomValue(r, depth - 1));
    case 11:
      return Object.fromEntries(Array.from({ length: 1 + r.int(4) }, () => [r.pick(KEYS), randomValue(r, depth - 1)]));
    default:
      return deep(r);
  }
}

/** A copy that keeps Raw tokens (structuredClone would turn them into plain objects). */
function clone(v: unknown): unknown {
  if (v instanceof Raw || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(clone);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) setKey(out, k, clone(x));
  return out;
}

/** Sets an own property, also for "__proto__" (plain assignment would change the prototype). */
function setKey(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
}

type Container = Record<string, unknown> | unknown[];
interface Slot {
  parent: Container;
  key: string | number;
}

function isContainer(v: unknown): v is Container {
  return v !== null && typeof v === 'object' && !(v instanceof Raw);
}

/** Every place a value sits in the tree (breadth first, bounded). */
function slots(holder: Record<string, unknown>): Slot[] {
  const out: Slot[] = [];
  const todo: Container[] = [holder];
  while (todo.length > 0 && out.length < 4000) {
    const c = todo.shift() as Container;
    const keys: (string | number)[] = Array.isArray(c) ? c.map((_, i) => i) : Object.keys(c);
    for (const key of keys) {
      out.push({ parent: c, key });
      const v = get({ parent: c, key });
      if (isContainer(v)) todo.push(v);
    }
  }
  return out;
}

function get(s: Slot): unknown {
  return Array.isArray(s.parent) ? s.parent[s.key as number] : s.parent[s.key as string];
}

function put(s: Slot, v: unknown): void {
  if (Array.isArray(s.parent)) s.parent[s.key as number] = v;
  else setKey(s.parent, s.key as string, v);
}

const STRUCT_OPS = ['replace', 'replace', 'replace', 'scale', 'retype', 'remove', 'remove', 'duplicate', 'wrap', 'unwrap', 'empty'] as const;

/** One structure-aware mutation at a random place (numbers are hit more often); returns its label. */
function mutateTree(r: Rng, holder: Record<string, unknown>): string {
  const all = slots(holder);
  const numeric = all.filter((s) => typeof get(s) === 'number');
  const strings = all.filter((s) => typeof get(s) === 'string');
  const k = r.next();
  // Numbers (counts, rates, timestamps) are hit most; strings (names, states) next.
  const fromStrings = k >= 0.45 && k < 0.65 && strings.length > 0;
  const s = numeric.length > 0 && k < 0.45 ? r.pick(numeric) : fromStrings ? r.pick(strings) : r.pick(all);
  const v = get(s);
  if (fromStrings && r.chance(0.3)) {
    put(s, r.pick(['LAB_', 'ø', '<x>', ' ']).repeat(300 + r.int(6000)));
    return 'long';
  }
  const op = r.pick(STRUCT_OPS);
  switch (op) {
    case 'replace':
      put(s, randomValue(r, 3));
      break;
    case 'scale':
      put(s, typeof v === 'number' ? v * r.pick([-1, 1e300, 1e-300, 1.5, 0.001, 1e6, -0.5, 2 ** 60]) + r.pick([0, 0, 0.5, -1]) : r.pick(NUMBERS));
      break;
    case 'retype':
      put(
        s,
        typeof v === 'number'
          ? r.pick([String(v), `${v}`.padStart(400, '9'), `${v}x`])
          : typeof v === 'string'
            ? Number(v)
            : isContainer(v)
              ? JSON.stringify(v)
              : String(v),
      );
      break;
    case 'remove':
      if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
      else if (s.parent !== holder) delete s.parent[s.key as string];
      else put(s, r.pick([null, {}, []]));
      break;
    case 'duplicate':
      if (Array.isArray(s.parent)) for (let n = 1 + r.int(3); n > 0; n--) s.parent.splice(r.int(s.parent.length + 1), 0, clone(v));
      else if (s.parent !== holder) setKey(s.parent, r.pick([...Object.keys(s.parent), ...KEYS]), clone(v));
      else put(s, [v, clone(v)]);
      break;
    case 'wrap':
      put(s, r.chance(0.7) ? [v] : { [r.pick(KEYS)]: v });
      break;
    case 'unwrap':
      if (Array.isArray(v)) put(s, v.length > 0 ? v[r.int(v.length)] : null);
      else if (isContainer(v)) put(s, Object.values(v)[0] ?? null);
      else put(s, randomValue(r, 2));
      break;
    case 'empty':
      put(s, Array.isArray(v) ? [] : isContainer(v) ? {} : r.pick(['', null, 0]));
      break;
  }
  return op;
}

/** JSON text of a tree; now and then an object carries one key twice (JSON.parse keeps the last). */
function emit(v: unknown, r: Rng, dup: number): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map((x) => emit(x, r, dup)).join(',')}]`;
  if (isContainer(v)) {
    const entries = Object.entries(v);
    const parts = entries.map(([k, x]) => `${JSON.stringify(k)}:${emit(x, r, dup)}`);
    if (entries.length > 0 && r.chance(dup)) {
      const [k] = r.pick(entries);
      parts.splice(r.int(parts.length + 1), 0, `${JSON.stringify(k)}:${emit(randomValue(r, 1), r, 0)}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

// ---------------------------------------------------------------------------------------------
// Byte-level mutations and the rest of an HTTP answer.

const GARBAGE = Buffer.from('{}[]",:\\<>\x00\xff\xc3\xa9\xef\xbb\xbf\r\n\t 0123456789-.eE', 'latin1');
const BYTE_OPS = ['truncate', 'truncate', 'flip', 'garbage', 'cut', 'html', 'htmlWrap', 'empty', 'pad', 'brackets', 'concat', 'bom', 'utf16', 'nul'] as const;

function mutateBytes(r: Rng, b: Buffer): { body: Buffer; op: string } {
  const op = r.pick(BYTE_OPS);
  const at = () => r.int(b.length + 1);
  switch (op) {
    case 'truncate':
      return { body: b.subarray(0, r.int(b.length)), op };
    case 'flip': {
      const c = Buffer.from(b);
      for (let k = 1 + r.int(8); k > 0 && c.length > 0; k--) {
        const i = r.int(c.length);
        c[i] = (c[i] as number) ^ (1 << r.int(8));
      }
      return { body: c, op };
    }
    case 'garbage': {
      const g = Buffer.from(Array.from({ length: 1 + r.int(16) }, () => (r.chance(0.7) ? (GARBAGE[r.int(GARBAGE.length)] as number) : r.int(256))));
      const i = at();
      return { body: Buffer.concat([b.subarray(0, i), g, b.subarray(i)]), op };
    }
    case 'cut': {
      const i = at();
      return { body: Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + r.int(40))]), op };
    }
    case 'html':
      return { body: Buffer.from(r.pick(HTML_PAGES)), op };
    case 'htmlWrap':
      return { body: Buffer.concat([Buffer.from('<html><body><pre>'), b, Buffer.from('</pre></body></html>')]), op };
    case 'empty':
      return { body: Buffer.alloc(0), op };
    case 'pad': {
      // Whitespace around JSON is still JSON, but may push the body past a small maxBodySize.
      const pad = Buffer.alloc(1000 + r.int(6000), r.pick([0x20, 0x0a, 0x09]));
      return { body: r.chance(0.5) ? Buffer.concat([pad, b]) : Buffer.concat([b, pad]), op };
    }
    case 'brackets': {
      const n = 1 + r.int(20_000);
      return { body: Buffer.concat([Buffer.from(r.pick(['[', '{"a":']).repeat(n)), b, Buffer.from(']'.repeat(r.int(n + 1)))]), op };
    }
    case 'concat':
      return { body: Buffer.concat([b, r.chance(0.5) ? Buffer.from('\n') : Buffer.alloc(0), b]), op };
    case 'bom':
      return { body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]), op };
    case 'utf16':
      return { body: Buffer.from(b.toString('utf8'), 'utf16le'), op };
    case 'nul':
      return { body: Buffer.concat([b, Buffer.from([0])]), op };
  }
}

const STATUSES = [200, 204, 301, 401, 403, 404, 429, 500, 503] as const;
const CONTENT_TYPES = [
  'application/json; charset=utf-8',
  'text/html; charset=utf-8',
  'text/plain',
  'application/xml',
  undefined,
  'application/octet-stream',
  'application/problem+json',
  'application/vnd.api+json',
  ';;;',
  'json',
  'text/html;charset=ISO-8859-1',
];

interface Answer {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
  /** length: Content-Length; chunked: in pieces without a length; short: a Content-Length the body never reaches, then the connection drops. */
  framing: 'length' | 'chunked' | 'short';
  pieces: number[];
  label: string;
}

function makeAnswer(r: Rng, docs: readonly unknown[]): Answer {
  const labels: string[] = [];
  const holder: Record<string, unknown> = { root: clone(r.chance(0.03) ? r.pick(ALL_DOCS) : r.pick(docs)) };
  const structural = r.chance(0.85);
  if (structural) for (let n = 1 + r.int(4); n > 0; n--) labels.push(mutateTree(r, holder));
  else labels.push('unmutated');
  let body: Buffer = Buffer.from(emit(holder.root, r, structural ? 0.05 : 0));
  if (r.chance(0.3)) {
    for (let n = 1 + (r.chance(0.25) ? 1 : 0); n > 0; n--) {
      const m = mutateBytes(r, body);
      body = m.body;
      labels.push(`bytes:${m.op}`);
    }
  }
  const status = r.chance(0.75) ? 200 : r.pick(STATUSES);
  const headers: OutgoingHttpHeaders = {};
  const type = r.chance(0.6) ? 'application/json' : r.chance(0.03) ? `application/${'x'.repeat(2500 + r.int(9000))}` : r.pick(CONTENT_TYPES);
  if (type !== undefined) headers['content-type'] = type;
  if (status === 301 && r.chance(0.7)) headers.location = r.pick(['/login', 'http://127.0.0.1:1/api', '//elsewhere/']);
  if (status === 401 && r.chance(0.5)) headers['www-authenticate'] = 'Basic realm="RabbitMQ Management"';
  if (status === 429 || status === 503) headers['retry-after'] = r.pick(['5', '-1', 'soon']);
  if (r.chance(0.03)) headers['content-encoding'] = r.pick(['gzip', 'br', 'identity']);
  const f = r.next();
  const framing = f < 0.85 || status === 204 ? 'length' : f < 0.96 ? 'chunked' : 'short';
  const pieces = framing === 'chunked' ? Array.from({ length: r.int(4) }, () => r.int(body.length + 1)).sort((x, y) => x - y) : [];
  return { status, headers, body, framing, pieces, label: labels.join(',') };
}

/** One HTTP server per source; the test sets the answer before each run. */
interface FuzzServer {
  url: string;
  answer: Answer | undefined;
  requests: number;
  server: Server;
}

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

function respond(res: ServerResponse, a: Answer): void {
  res.on('error', () => undefined);
  if (a.framing === 'short') {
    res.writeHead(a.status, { ...a.headers, 'content-length': String(a.body.length + 1 + (a.pieces[0] ?? 17)) });
    res.write(a.body, () => res.destroy());
    return;
  }
  res.writeHead(a.status, a.headers);
  if (a.framing === 'chunked' && a.status !== 204) {
    let from = 0;
    for (const to of a.pieces) {
      if (to > from) res.write(a.body.subarray(from, to));
      from = to;
    }
    res.end(a.body.subarray(from));
  } else res.end(a.body);
}

async function fuzzServer(): Promise<FuzzServer> {
  const fs: FuzzServer = { url: '', answer: undefined, requests: 0, server: createServer() };
  fs.server.on('request', (req, res: ServerResponse) => {
    req.on('error', () => undefined);
    req.resume();
    req.on('end', () => {
      fs.requests++;
      if (fs.answer) respond(res, fs.answer);
      else res.writeHead(500).end();
    });
  });
  fs.server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((r) => fs.server.listen(0, '127.0.0.1', r));
  servers.push(fs.server);
  fs.url = `http://127.0.0.1:${(fs.server.address() as AddressInfo).port}`;
  return fs;
}

// ---------------------------------------------------------------------------------------------
// What each source is asked (several option sets each, thresholds included), and over which bodies.

interface Family {
  docs: readonly unknown[];
  options: { label: string; o: QueueOptions }[];
}
interface Source {
  name: string;
  path: string;
  families: Family[];
}

/** Every base with every extra that the schema accepts (some extras do not fit some sources). */
function optionSets(bases: Record<string, unknown>[], extras: Record<string, unknown>[]): Family['options'] {
  const out: Family['options'] = [];
  for (const b of bases) {
    for (const e of extras) {
      const parsed = KIND_OPTIONS.queue.safeParse({ ...b, ...e });
      if (parsed.success) out.push({ label: JSON.stringify({ ...b, ...e }), o: parsed.data });
    }
  }
  return out;
}

const EXTRAS: Record<string, unknown>[] = [
  {},
  {},
  { maxDepth: 5, minConsumers: 1 },
  { maxDepth: 5 },
  { stalledAfter: '5ms', growth: { window: '20ms', minIncrease: 1 } },
  { stalledAfter: '1s', maxOldestAge: '1m' },
  { maxBodySize: '2KiB' },
  { username: 'monitor', password: 'pw' },
];

const HTTP_JSON_PATHS = {
  rabbit: {
    depthPath: '$.messages',
    oldestAgePath: '$.head_message_timestamp',
    oldestAgeUnit: 'timestamp-s',
    consumersPath: '$.consumers',
    arrivedPath: '$.message_stats.publish',
    drainedPath: '$.message_stats.deliver_get',
  },
  artemis: {
    depthPath: '$[0].value.MessageCount',
    oldestAgePath: '$[0].value.FirstMessageAge',
    oldestAgeUnit: 'ms',
    consumersPath: '$[0].value.ConsumerCount',
    arrivedPath: '$[0].value.MessagesAdded',
    drainedPath: '$[0].value.MessagesAcknowledged',
  },
  engineMs: {
    depthPath: '$.stats.pending',
    oldestAgePath: '$.stats.oldest',
    oldestAgeUnit: 'timestamp-ms',
    consumersPath: '$.stats.workers',
    arrivedPath: '$.stats.in',
    drainedPath: '$.stats.out',
  },
  engineS: { depthPath: '$["stats"]["pending"]', oldestAgePath: '$.stats.oldest', oldestAgeUnit: 's', arrivedPath: '$.stats.in' },
};

const SOURCES: Source[] = [
  {
    name: 'rabbitmq',
    path: '',
    families: [
      {
        docs: RABBIT_DOCS,
        options: optionSets(
          [
            { source: 'rabbitmq', queues: ['lab.results'] },
            { source: 'rabbitmq', queues: ['lab.results', 'orders.out'], vhost: 'region/lab' },
          ],
          EXTRAS,
        ),
      },
    ],
  },
  {
    name: 'activemq',
    path: '',
    families: [
      {
        docs: ACTIVEMQ_DOCS,
        options: optionSets(
          [
            { source: 'activemq', queues: ['HL7.IN'] },
            { source: 'activemq', queues: ['HL7.IN', 'ORDERS.OUT'] },
          ],
          EXTRAS,
        ),
      },
    ],
  },
  {
    name: 'artemis',
    path: '',
    families: [
      {
        docs: ARTEMIS_DOCS,
        options: optionSets(
          [
            { source: 'artemis', queues: ['ORDERS.OUT'] },
            { source: 'artemis', queues: ['HL7.IN', 'ORDERS.OUT'] },
          ],
          EXTRAS,
        ),
      },
    ],
  },
  {
    name: 'mirth',
    path: '',
    families: [
      {
        docs: MIRTH_DOCS,
        options: optionSets(
          [
            { source: 'mirth' },
            { source: 'mirth', queues: ['LAB_RESULTS_OUT'] },
            { source: 'mirth', queues: ['8f1c2d5e-3b7a-4c19-9e0f-6a2b4d8c1e37'], runningStates: ['STARTED', 'PAUSED'] },
          ],
          EXTRAS,
        ),
      },
    ],
  },
  {
    name: 'http-json',
    path: '/engine/queue',
    families: [
      { docs: RABBIT_DOCS, options: optionSets([{ source: 'http-json', queues: ['lab.results'], ...HTTP_JSON_PATHS.rabbit }], EXTRAS) },
      { docs: ARTEMIS_DOCS, options: optionSets([{ source: 'http-json', ...HTTP_JSON_PATHS.artemis }], EXTRAS) },
      {
        docs: ENGINE_DOCS,
        options: optionSets(
          [
            { source: 'http-json', queues: ['edifact'], ...HTTP_JSON_PATHS.engineMs },
            { source: 'http-json', ...HTTP_JSON_PATHS.engineS },
          ],
          EXTRAS,
        ),
      },
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// The oracle: what every run's result must look like, whatever came in.

type Kind = 'rejected' | 'shape' | 'numbers' | 'message';

const NUMERIC_FIELDS = [
  'depth',
  'ready',
  'unacked',
  'consumers',
  'oldestAgeSeconds',
  'arrivalRate',
  'drainRate',
  'deliverRate',
  'undrainedSeconds',
  'errors',
] as const;
const REASONS = new Set<string>(ALL_FAILURE_REASONS.filter((x) => x !== 'internal'));
const DEGRADED = new Set<string>(ALL_DEGRADED_REASONS);

function inspect(res: ProbeResult): { kind: Kind; problem: string }[] {
  const out: { kind: Kind; problem: string }[] = [];
  const shape = (problem: string) => out.push({ kind: 'shape', problem });
  if (res === null || typeof res !== 'object') return [{ kind: 'shape', problem: `result is ${String(res)}` }];
  if (typeof res.ok !== 'boolean') shape(`ok is ${typeof res.ok}`);
  if (res.ok && res.failure !== undefined) shape(`ok with a failure ${JSON.stringify(res.failure).slice(0, 200)}`);
  if (!res.ok) {
    const f = res.failure;
    if (!f) shape('not ok, and no failure');
    else {
      if (!REASONS.has(f.reason)) shape(`failure reason ${JSON.stringify(f.reason)} (message: ${String(f.message).slice(0, 200)})`);
      if (typeof f.message !== 'string') shape(`failure message is ${typeof f.message}`);
      else if (f.message.length > MAX_MESSAGE)
        out.push({ kind: 'message', problem: `failure message of ${f.message.length} characters (reason ${f.reason}): ${f.message.slice(0, 160)}...` });
    }
  }
  if (res.degraded !== undefined) {
    if (!DEGRADED.has(res.degraded.reason)) shape(`degraded reason ${JSON.stringify(res.degraded.reason)}`);
    if (typeof res.degraded.message !== 'string') shape(`degraded message is ${typeof res.degraded.message}`);
    else if (res.degraded.message.length > MAX_MESSAGE)
      out.push({ kind: 'message', problem: `degraded message of ${res.degraded.message.length} characters: ${res.degraded.message.slice(0, 160)}...` });
  }
  // The check's secret may come back in an error page; it is scrubbed from whatever is quoted.
  for (const text of [res.failure?.message, res.degraded?.message])
    if (typeof text === 'string' && text.includes(SECRET)) shape(`the secret is in a message: ${text.slice(0, 200)}`);
  for (const [phase, v] of Object.entries(res.phases ?? {}))
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) shape(`phase ${phase} took ${String(v)}`);
  if (res.queues !== undefined && !Array.isArray(res.queues)) shape('queues is not an array');
  for (const q of res.queues ?? []) {
    if (typeof q.queue !== 'string') shape(`a reading's queue is ${typeof q.queue}`);
    // Queue names and states become metric labels and status-page text: bounded too.
    for (const [field, v] of [
      ['queue', q.queue],
      ['state', q.state],
    ] as const) {
      if (typeof v === 'string' && v.length > MAX_LABEL)
        out.push({ kind: 'message', problem: `a reading's ${field} of ${v.length} characters: ${v.slice(0, 60)}...` });
    }
    if (q.depth === undefined) out.push({ kind: 'numbers', problem: `${String(q.queue).slice(0, 60)}: no depth` });
    for (const field of NUMERIC_FIELDS) {
      const v = (q as unknown as Record<string, unknown>)[field];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
        out.push({ kind: 'numbers', problem: `${String(q.queue).slice(0, 60)}: ${field} = ${typeof v === 'number' ? String(v) : JSON.stringify(v)}` });
    }
  }
  return out;
}

function errText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message.slice(0, 300)}` : `non-Error ${String(err)}`;
}

const preview = (b: Buffer | string, n = 400) => {
  const s = typeof b === 'string' ? b : b.toString('utf8');
  return s.length > n ? `${JSON.stringify(s.slice(0, n))}... (${s.length} chars)` : JSON.stringify(s);
};

class Findings {
  readonly kept: Record<Kind, string[]> = { rejected: [], shape: [], numbers: [], message: [] };
  readonly counts: Record<Kind, number> = { rejected: 0, shape: 0, numbers: 0, message: 0 };
  private readonly perKey = new Map<string, number>();

  /** How many cases of this kind, by what went wrong (numbers blanked out). */
  report(kind: Kind, summary: string): string {
    const keys = [...this.perKey].filter(([k]) => k.startsWith(`${kind}/`)).map(([k, n]) => `${n}x ${k.slice(kind.length + 1)}`);
    return `${this.counts[kind]} case(s) [${keys.slice(0, 12).join(' | ')}]; ${summary}${this.kept[kind].join('')}`;
  }

  /** Keeps the first few of each kind and source (a bug repeats thousands of times). */
  add(kind: Kind, key: string, text: string): void {
    this.counts[kind]++;
    const k = `${kind}/${key}`;
    const n = this.perKey.get(k) ?? 0;
    this.perKey.set(k, n + 1);
    if (n < 2 && this.kept[kind].length < 6) this.kept[kind].push(text);
  }
}

/** A problem without its numbers and tail, to group repeats of one bug. */
const blank = (problem: string) => problem.replace(/\d+(\.\d+)?/g, 'N').slice(0, 80);

function reasonOf(res: ProbeResult): string {
  return res.ok ? (res.degraded ? `ok/${res.degraded.reason}` : 'ok') : (res.failure?.reason ?? 'no failure');
}

async function fuzzSource(src: Source, index: number, findings: Findings): Promise<{ cases: number; tally: Record<string, number> }> {
  const r = prng(streamSeed(index));
  const server = await fuzzServer();
  const target = `${server.url}${src.path}`;
  const memory = new Map<string, unknown>();
  const tally: Record<string, number> = {};
  let previous: Answer | undefined;
  let cases = 0;
  for (let i = 0; i < CASES_PER_SOURCE; i++) {
    const family = r.pick(src.families);
    const opt = r.pick(family.options);
    const answer = makeAnswer(r, family.docs);
    server.answer = answer;
    cases++;
    const where = () =>
      `\n- ${src.name} case #${i} [${answer.label}] status ${answer.status}, content-type ${preview(String(answer.headers['content-type'] ?? 'none'), 60)}, ${answer.framing}; options ${opt.label}; body ${preview(answer.body, 300)}; previous body (same memory) ${previous ? preview(previous.body, 150) : 'none'}`;
    let res: ProbeResult;
    try {
      res = await queueProbe.run({ ...targetsOf('queue', target), options: opt.o, ...budget(3000), memory, log: quietLog, secrets: { pw: SECRET } });
    } catch (err) {
      findings.add('rejected', `${src.name}/${blank(errText(err))}`, `${where()}: the probe rejected with ${errText(err)}`);
      previous = answer;
      continue;
    }
    const outcome = reasonOf(res);
    tally[outcome] = (tally[outcome] ?? 0) + 1;
    for (const p of inspect(res)) findings.add(p.kind, `${src.name}/${blank(p.problem)}`, `${where()}: ${p.problem}`);
    previous = answer;
  }
  server.answer = undefined;
  return { cases, tally };
}

describe('queue probe fuzz: hostile management APIs', () => {
  it(`${CASES_PER_SOURCE} mutated answers per HTTP source (rabbitmq, activemq, artemis, mirth, http-json): a reason or sane readings, never a throw`, async () => {
    onTestFailed(() => console.error(`queue fuzz (http) failed with ${reproduce}`));
    console.log(`queue fuzz ${reproduce}`);
    const findings = new Findings();
    const started = performance.now();
    // The sources run side by side; each one's cases run in order, through one check memory.
    const results = await Promise.all(SOURCES.map((src, k) => fuzzSource(src, k, findings)));
    const elapsed = performance.now() - started;
    const cases = results.reduce((n, x) => n + x.cases, 0);
    const summary = `${reproduce}: ${cases} cases in ${elapsed.toFixed(0)} ms; ${SOURCES.map((s, k) => `${s.name} ${JSON.stringify(results[k]?.tally)}`).join('; ')}`;
    console.log(summary);
    const found = (kind: Kind) => findings.report(kind, summary);
    expect
      .soft(findings.kept.rejected, `the probe rejected (a throw escaped the source reader, which the runner reports as 'internal'): ${found('rejected')}`)
      .toEqual([]);
    expect.soft(findings.kept.shape, `malformed results (ok/failure/reason, or the check's secret in a message): ${found('shape')}`).toEqual([]);
    expect
      .soft(
        findings.kept.numbers,
        `PROBE BUG, do not weaken this assertion: hostile input gave a queue reading with a NaN, infinite or negative number (probes/queue/sources.ts num()/count() and the sums and rates in probes/queue/probe.ts must stay finite): ${found('numbers')}`,
      )
      .toEqual([]);
    expect
      .soft(
        findings.kept.message,
        `PROBE BUG: server-controlled text made a failure/degraded message longer than ${MAX_MESSAGE} characters, or a reading's queue name/state longer than ${MAX_LABEL}: ${found('message')}`,
      )
      .toEqual([]);
    expect(cases).toBe(SOURCES.length * CASES_PER_SOURCE);
    // The fuzzer reaches both sides for every source: readings that pass and answers that fail.
    for (const [k, s] of SOURCES.entries()) {
      const t = results[k]?.tally ?? {};
      const ok = Object.entries(t)
        .filter(([x]) => x.startsWith('ok'))
        .reduce((n, [, c]) => n + c, 0);
      expect(ok, `${s.name}: ${JSON.stringify(t)}`).toBeGreaterThan(CASES_PER_SOURCE * 0.02);
      expect(t.protocol ?? 0, `${s.name}: ${JSON.stringify(t)}`).toBeGreaterThan(CASES_PER_SOURCE * 0.1);
      expect(t.http_status ?? 0, `${s.name}: ${JSON.stringify(t)}`).toBeGreaterThan(0);
    }
    // A guard against a case costing seconds (super-linear parsing), generous for a busy machine;
    // speed itself is measured by `npm run bench`, not here.
    expect(elapsed, summary).toBeLessThan(60_000);
  }, 90_000);
});

// ---------------------------------------------------------------------------------------------
// Source directory: random names, mtimes and globs in a temporary folder.

const NAME_PARTS = [
  'MSG',
  'edi',
  'ORDERS',
  'prøve',
  'Ærø_Sygehus',
  '日本語',
  '😀',
  'e\u0301',
  'ﬁle',
  'עברית',
  '\u200b',
  '\u00a0',
  ' ',
  '  ',
  '*',
  '?',
  '[a-z]',
  '[!x]',
  '[',
  ']',
  '[z-a]',
  '{a,b}',
  '**',
  '\\',
  '-',
  '_',
  '.',
  '~',
  '$HOME',
  '%2F',
  '\t',
  '\n',
  'a',
  'Z',
  '0',
  '12345',
  '#',
  "'",
  '"',
  '&',
  ';',
  'CON',
  'nul',
];
const EXTS = ['.edi', '.edi', '.EDI', '.xml', '.hl7', '.tmp', '', '.edi.part', '.', '.edi '];
/** Names a Latin-1 or Windows-1252 sender writes: bytes that are not UTF-8. */
const LATIN1_NAMES = ['prøve', 'Ærø', 'Å_ordre', 'müller', 'señal', 'ÆØÅ-æøå'];

const utf8Len = (s: string) => Buffer.byteLength(s, 'utf8');
const isUtf8 = (b: Buffer) => Buffer.from(b.toString('utf8'), 'utf8').equals(b);
/** A name for a report: as it is when UTF-8, else with its bytes >= 0x80 as \xNN. */
const showName = (b: Buffer) => (isUtf8(b) ? b.toString('utf8') : [...b].map((c) => (c < 0x80 ? String.fromCharCode(c) : `\\x${c.toString(16)}`)).join(''));

/** A file name as bytes: unicode, spaces, globs, control characters, up to 255 bytes, sometimes not UTF-8. */
function fileName(r: Rng): Buffer {
  const kind = r.int(10);
  if (kind === 0) return Buffer.from(`${r.pick(LATIN1_NAMES)}${r.int(100)}${r.pick(EXTS)}`, 'latin1');
  let s: string;
  if (kind === 1) {
    // Long: up to the 255-byte limit of ext4 and tmpfs, never splitting a character.
    const target = r.pick([255, 255, 254, 200 + r.int(56)]);
    const ext = r.pick(EXTS);
    s = '';
    while (utf8Len(s) + utf8Len(ext) < target) s += r.chance(0.7) ? r.pick(NAME_PARTS) : 'a';
    while (utf8Len(s) + utf8Len(ext) > target) s = [...s].slice(0, -1).join('');
    s += ext;
    while (utf8Len(s) < target) s = `a${s}`;
  } else {
    s = Array.from({ length: 1 + r.int(4) }, () => r.pick(NAME_PARTS)).join('') + r.pick(EXTS);
  }
  if (s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0') || utf8Len(s) > 255) s = `x${r.int(1000)}.edi`;
  return Buffer.from(s, 'utf8');
}

const DAY = 86_400_000;
function mtime(r: Rng, now: number): Date {
  return new Date(
    r.pick([
      now - r.int(3600_000),
      now - r.int(30 * DAY),
      now,
      0, // 1970-01-01
      1000,
      -315_619_200_000, // 1960
      now + 3_600_000, // clock skew: a sender an hour ahead
      now + 365 * DAY,
      Date.UTC(2200, 0, 1),
      Date.UTC(2400, 0, 1),
    ]),
  );
}

const PATTERNS = [
  '*',
  '*',
  '*.edi',
  '*.EDI',
  '*.xml',
  '*.hl7',
  'MSG*',
  '?',
  '??*',
  '[a-z]*',
  '[!.]*',
  '*[',
  '[',
  ']',
  '[]',
  '[!]',
  '[]]',
  '[\\]*',
  '\\*',
  '*.edi ',
  ' *',
  '**',
  '*ø*',
  '*😀*',
  '.*',
  '*.*',
  '[*]*',
  '[?]*',
  '*[0-9].edi',
  '[z-a]*',
  '[9-0].edi',
  '*{a,b}*',
  '*\n*',
  '日本語*',
  'e\u0301*',
];
const PATTERN_TOKENS = ['*', '?', '[', ']', '!', '-', 'a', 'z', '.', 'edi', 'ø', ' ', '\\', '[a-c]', '[!0-9]', '[z-a]', '^', '$', '(', '|', '+', '{', '}'];

/**
 * A random glob. At most two `*`: more stars against long names make the probe's RegExp backtrack
 * for seconds (covered deterministically by the ReDoS case below), which would make this family's
 * run time depend on the machine.
 */
function randomPattern(r: Rng, names: readonly string[]): string {
  let p: string;
  const k = r.int(3);
  if (k === 0) p = r.pick(PATTERNS);
  else if (k === 1 && names.length > 0) p = r.pick(names);
  else p = Array.from({ length: 1 + r.int(6) }, () => r.pick(PATTERN_TOKENS)).join('');
  let stars = 0;
  p = p.replace(/\*/g, () => (++stars > 2 ? '?' : '*'));
  p = p.slice(0, 255);
  return p === '' ? '*' : p;
}

interface DirFile {
  path: Buffer;
  /** The name as readdir hands it to JavaScript (not-UTF-8 bytes become U+FFFD). */
  decoded: string;
  top: boolean;
}

const DIR_EXTRAS: Record<string, unknown>[] = [
  {},
  {},
  { stalledAfter: '5ms', growth: { window: '20ms', minIncrease: 1 } },
  { maxDepth: 3 },
  { maxOldestAge: '1h' },
];

describe('queue probe fuzz: source directory', () => {
  it(`${DIR_SCENARIOS * DIR_RUNS_PER_SCENARIO} runs over folders of hostile names and mtimes with random globs: finite ages >= 0, every file counted, never a throw`, async () => {
    onTestFailed(() => console.error(`queue fuzz (directory) failed with ${reproduce}`));
    const r = prng(streamSeed(100));
    const root = await mkdtemp(join(tmpdir(), 'vakt-queue-fuzz-'));
    const findings = new Findings();
    const tally: Record<string, number> = {};
    let runs = 0;
    let checkedDepth = 0;
    const started = performance.now();
    try {
      for (let s = 0; s < DIR_SCENARIOS; s++) {
        const dir = join(root, `s${s}`);
        await mkdir(dir);
        const files: DirFile[] = [];
        const dirs: { path: Buffer; top: boolean }[] = [];
        const taken = new Set<string>();
        const addFile = async (parent: Buffer, top: boolean) => {
          const name = fileName(r);
          const path = Buffer.concat([parent, Buffer.from('/'), name]);
          const key = path.toString('hex');
          const when = mtime(r, Date.now());
          if (taken.has(key)) return;
          taken.add(key);
          await writeFile(path, "UNA:+.? 'UNB+UNOC:3'");
          await utimes(path, when, when);
          files.push({ path, decoded: name.toString('utf8'), top });
        };
        const dirBuf = Buffer.from(dir);
        for (let n = r.int(21); n > 0; n--) await addFile(dirBuf, true);
        for (let n = r.chance(0.4) ? 1 + r.int(2) : 0; n > 0; n--) {
          const sub = Buffer.concat([dirBuf, Buffer.from('/'), fileName(r)]);
          const nested = r.chance(0.3);
          if (taken.has(sub.toString('hex'))) continue;
          taken.add(sub.toString('hex'));
          await mkdir(sub);
          dirs.push({ path: sub, top: true });
          for (let m = r.int(9); m > 0; m--) await addFile(sub, false);
          if (nested) {
            const deeper = Buffer.concat([sub, Buffer.from('/'), Buffer.from(`deeper ${r.int(10)}`)]);
            await mkdir(deeper);
            dirs.push({ path: deeper, top: false });
            for (let m = r.int(5); m > 0; m--) await addFile(deeper, false);
          }
        }
        const memory = new Map<string, unknown>();
        const recursive = r.chance(0.4);
        let pattern = randomPattern(
          r,
          files.map((f) => f.decoded),
        );
        for (let run = 0; run < DIR_RUNS_PER_SCENARIO; run++) {
          // Files come and go, and get touched, between runs (the memory compares names and mtimes).
          const change = r.int(6);
          if (change === 0) await addFile(dirBuf, true);
          else if (change === 1 && files.length > 0) {
            const [gone] = files.splice(r.int(files.length), 1);
            await unlink(gone!.path);
          } else if (change === 2 && files.length > 0) {
            const when = mtime(r, Date.now());
            await utimes(r.pick(files).path, when, when);
          }
          if (r.chance(0.3))
            pattern = randomPattern(
              r,
              files.map((f) => f.decoded),
            );
          const maxFiles = r.chance(0.85) ? 100_000 : 1 + r.int(30);
          const raw = { source: 'directory', pattern, recursive: r.chance(0.9) ? recursive : !recursive, maxFiles, ...r.pick(DIR_EXTRAS) };
          const parsed = KIND_OPTIONS.queue.safeParse(raw);
          if (!parsed.success) {
            // A glob refused when the config loads is as good as a failed run; anything else is the fuzzer's mistake.
            if (parsed.error.issues.some((x) => x.path[0] !== 'pattern'))
              throw new Error(`the fuzzer built options the schema refuses: ${JSON.stringify(raw)}: ${parsed.error.message}`);
            tally['refused by the schema'] = (tally['refused by the schema'] ?? 0) + 1;
            runs++;
            continue;
          }
          const o = parsed.data;
          if (o.source !== 'directory') throw new Error(`the schema read ${JSON.stringify(raw)} as source ${o.source}`);
          runs++;
          const rel = (f: DirFile) => showName(f.path.subarray(dirBuf.length + 1));
          const where = `\n- scenario ${s} run ${run}: pattern ${JSON.stringify(pattern)}, recursive ${o.recursive}, maxFiles ${maxFiles}, ${files.length} files ${preview(JSON.stringify(files.map(rel)), 300)}`;
          let res: ProbeResult;
          try {
            res = await queueProbe.run({ ...targetsOf('queue', dir), options: o, ...budget(3000), memory, log: quietLog, secrets: {} });
          } catch (err) {
            findings.add('rejected', `dir/${blank(errText(err).replace(/\/\^.*\$\//s, '/.../'))}`, `${where}: the probe rejected with ${errText(err)}`);
            continue;
          }
          const outcome = reasonOf(res);
          tally[outcome] = (tally[outcome] ?? 0) + 1;
          for (const p of inspect(res)) findings.add(p.kind, `dir/${blank(p.problem)}`, `${where}: ${p.problem}`);
          // Every matching file is counted: the folder is the whole truth here (no cap reached).
          const q: QueueReading | undefined = res.queues?.[0];
          const scanned = files.filter((f) => f.top || o.recursive).length + dirs.filter((d) => d.top || o.recursive).length;
          // The probe's own matcher picks the expected files: this checks the walk, stat and counting
          // (every matching file counted, whatever its name's bytes), not what a glob means — that is
          // pinned by hand-written cases in queue.test.ts.
          const re = globMatcher(pattern);
          if (q && scanned <= maxFiles) {
            checkedDepth++;
            const want = files.filter((f) => (f.top || o.recursive) && re(f.decoded));
            if (q.depth !== want.length) {
              const notUtf8 = want.filter((f) => !isUtf8(f.path));
              findings.add(
                'numbers',
                `dir/depth differs from the folder${notUtf8.length > 0 ? ', names that are not UTF-8 among the matching' : ''}`,
                `${where}: depth ${q.depth}, but ${want.length} matching files are in the folder${notUtf8.length > 0 ? `, ${notUtf8.length} of them named in bytes that are not UTF-8: ${JSON.stringify(notUtf8.map(rel))}` : ''}`,
              );
            }
          }
        }
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
    const elapsed = performance.now() - started;
    const summary = `${reproduce}: ${runs} directory runs (${checkedDepth} with the depth checked) in ${elapsed.toFixed(0)} ms; ${JSON.stringify(tally)}`;
    console.log(summary);
    const found = (kind: Kind) => findings.report(kind, summary);
    expect
      .soft(
        findings.kept.rejected,
        `PROBE BUG: the directory probe rejected (the runner reports it as 'internal'); a glob that is not a valid RegExp must be a config error or a failed run: ${found('rejected')}`,
      )
      .toEqual([]);
    expect.soft(findings.kept.shape, `malformed results: ${found('shape')}`).toEqual([]);
    expect
      .soft(
        findings.kept.numbers,
        `PROBE BUG, do not weaken this assertion: a negative/non-finite age or number, or files on disk the probe did not count (names that are not UTF-8 are listed as U+FFFD and then fail stat): ${found('numbers')}`,
      )
      .toEqual([]);
    expect.soft(findings.kept.message, `over-long messages: ${found('message')}`).toEqual([]);
    expect(runs).toBe(DIR_SCENARIOS * DIR_RUNS_PER_SCENARIO);
    expect(checkedDepth, summary).toBeGreaterThan(runs / 2);
    // A guard against a case costing seconds (super-linear parsing), generous for a busy machine;
    // speed itself is measured by `npm run bench`, not here.
    expect(elapsed, summary).toBeLessThan(60_000);
  }, 90_000);

  it('a glob with many stars against a long hostile name stays within the check budget (no catastrophic RegExp backtracking)', async () => {
    // A plausible EDIFACT pattern (SENDER_RECEIVER_TYPE_DATE.edi) and a name anyone who can drop
    // files controls. The RegExp the glob becomes (^[^/]*_[^/]*_[^/]*_[^/]*\.edi$) backtracks in
    // O(n^4) on a non-matching name, synchronously: no abort interrupts it, and the whole agent's
    // event loop stands still meanwhile.
    const dir = await mkdtemp(join(tmpdir(), 'vakt-queue-redos-'));
    try {
      await writeFile(join(dir, '_'.repeat(255)), 'x');
      const parsed = KIND_OPTIONS.queue.safeParse({ source: 'directory', pattern: '*_*_*_*.edi' });
      // Refusing such globs when the config loads would be a fix too (a blunt one).
      if (!parsed.success) return expect(parsed.error.issues[0]?.path).toEqual(['pattern']);
      const o = parsed.data;
      const t0 = performance.now();
      let res: ProbeResult | undefined;
      let error: unknown;
      try {
        res = await queueProbe.run({ ...targetsOf('queue', dir), options: o, ...budget(200), memory: new Map(), log: quietLog, secrets: {} });
      } catch (err) {
        error = err;
      }
      const ms = performance.now() - t0;
      expect(error, 'the probe rejected').toBeUndefined();
      expect(res?.failure?.reason === 'internal', JSON.stringify(res)).toBe(false);
      expect(
        ms,
        `PROBE BUG: matching one 255-character name against "*_*_*_*.edi" took ${ms.toFixed(0)} ms with a 200 ms budget (globToRegExp in probes/queue/sources.ts backtracks; match globs with a linear wildcard matcher instead)`,
      ).toBeLessThan(400);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
