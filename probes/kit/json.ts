// JSON from peers (http bodies, OIDC documents, broker APIs), parsed without trusting it. Parsing
// runs on the event loop that times every check, so a hostile body must neither hold the loop nor
// reach a recursive walker: a linear scan (no recursion, no regular expressions) refuses nesting
// deeper than JSON_MAX_DEPTH before any value is built, and a large document is handed to
// JSON.parse in pieces of bounded cost, yielding to the loop between them. The value is the one
// JSON.parse would return for the whole text.

/**
 * Deepest nesting of arrays and objects accepted (`[[1]]` is 2). Real answers stay far below it:
 * RabbitMQ and Jolokia about 5, Mirth's XStream statuses about 10, OIDC documents 3, a FHIR bundle
 * with nested extensions some 20. It is serde_json's default (128); .NET's System.Text.Json stops
 * at 64. Every walker over a parsed document may recurse this deep at most.
 */
export const JSON_MAX_DEPTH = 128;

/**
 * Most arrays and objects one document may hold. Building values, not reading bytes, is what a
 * parse costs (4 MB of `[{},{},...]` is 1.4 million objects, over 100 MB of heap and half a second
 * and more of garbage collection); real answers carry some 30 to 70 bytes per container (a
 * RabbitMQ queue list 64, Mirth's channel statuses 34), so one of the largest default body size
 * (4 MiB, the queue kind's) holds at most about 125,000.
 */
export const JSON_MAX_CONTAINERS = 250_000;

/**
 * Most members one object may have. V8 rehashes a large object's properties in one step as it
 * grows (about 25 ms at 44,000 members, 75 ms or more at 175,000), whoever builds it; real objects
 * (a discovery document, a queue, a Jolokia answer) have tens of members.
 */
export const JSON_MAX_MEMBERS = 50_000;

/**
 * Cost units of a piece, roughly JSON.parse's work: one per character, more per container,
 * string and value (allocation, not bytes, is what makes 4 MB of `[{},{},...]` cost 40 times a
 * 4 MB string). A piece of at most PIECE_UNITS is one JSON.parse call of a millisecond or two.
 */
const UNIT_CONTAINER = 64;
const UNIT_STRING = 16;
const UNIT_VALUE = 4;
const PIECE_UNITS = 96 * 1024;
/** After this much synchronous work the parse yields to the event loop (setImmediate). */
const SLICE_MS = 5;
/** Characters scanned between two looks at the clock. */
const SCAN_STEP = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * Why a text was not parsed: `too_deep` (nested deeper than the limit), `too_large` (more
 * containers, or members in one object, than the limits), `syntax` (not JSON), or `aborted` (the
 * signal fired while a large document was being parsed). `message` is a phrase for a failure
 * message ("JSON nested deeper than 128 levels ..."); it never quotes the text.
 */
export interface JsonFailure {
  code: 'too_deep' | 'too_large' | 'syntax' | 'aborted';
  message: string;
}

export type JsonResult = { ok: true; value: unknown } | { ok: false; error: JsonFailure };

export interface ParseJsonOptions {
  /** Deepest nesting accepted; JSON_MAX_DEPTH unless given. */
  maxDepth?: number;
  /** Most arrays and objects accepted; JSON_MAX_CONTAINERS unless given. */
  maxContainers?: number;
  /** Most members of one object; JSON_MAX_MEMBERS unless given. */
  maxMembers?: number;
  /** The run's signal: a large parse stops at its next yield once it fired. */
  signal?: AbortSignal;
}

/** Thrown inside this module only, and returned as a JsonFailure. */
class Refused extends Error {
  constructor(readonly failure: JsonFailure) {
    super(failure.message);
  }
}

const syntax = (): Refused => new Refused({ code: 'syntax', message: 'not valid JSON' });

/**
 * Parses untrusted JSON within the limits above, holding the event loop a few milliseconds at a time.
 *
 * @example
 * const r = await parseJson(body, { signal });
 * if (!r.ok) return fail(r.error.code === 'syntax' ? 'assertion' : 'protocol', `body is ${r.error.message}`);
 */
export async function parseJson(text: string, options: ParseJsonOptions = {}): Promise<JsonResult> {
  const limits: Limits = {
    depth: options.maxDepth ?? JSON_MAX_DEPTH,
    containers: options.maxContainers ?? JSON_MAX_CONTAINERS,
    members: options.maxMembers ?? JSON_MAX_MEMBERS,
  };
  const slicer = new Slicer(options.signal);
  try {
    const big = await scan(text, limits, slicer);
    let root = 0;
    while (root < text.length && isBlank(text.charCodeAt(root))) root++;
    const span = big.get(root);
    // A document of one piece, or whose root is not a large container (a lone string costs a
    // few milliseconds per MB; garbage fails at its first wrong character): one JSON.parse.
    if (span === undefined) return { ok: true, value: parsePiece(text) };
    if (!blank(text, span.end + 1, text.length)) throw syntax();
    return { ok: true, value: await new Builder(text, big, slicer).container(root) };
  } catch (err) {
    if (err instanceof Refused) return { ok: false, error: err.failure };
    throw err;
  }
}

/**
 * A document that must be a JSON object (a FHIR resource, a token response): `doc` is the object,
 * or undefined for text that is not JSON or whose value is not an object (the caller says what it
 * expected); `refused` when the limits refused it (too_deep, too_large) or the signal stopped it.
 */
export async function parseJsonObject(
  text: string,
  options: ParseJsonOptions = {},
): Promise<{ doc: Record<string, unknown> | undefined } | { refused: JsonFailure }> {
  const r = await parseJson(text, options);
  if (!r.ok) return r.error.code === 'syntax' ? { doc: undefined } : { refused: r.error };
  const v = r.value;
  return { doc: v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined };
}

/** Yields to the event loop once SLICE_MS of synchronous work has passed; stops once the signal fired. */
class Slicer {
  private since = performance.now();

  constructor(private readonly signal: AbortSignal | undefined) {}

  async tick(): Promise<void> {
    if (this.signal?.aborted) throw new Refused({ code: 'aborted', message: 'parsing stopped: the run was aborted' });
    if (performance.now() - this.since < SLICE_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    this.since = performance.now();
  }
}

/** A container whose text costs more than one piece: where it ends. */
interface Span {
  end: number;
}

interface Limits {
  depth: number;
  containers: number;
  members: number;
}

/**
 * One pass over the text: refuses nesting deeper than the limit at the first bracket too many (a
 * document 2 million levels deep costs maxDepth characters) and more containers, or members of
 * one object, than the limits; checks that brackets pair up and strings end; returns the
 * containers too large for one piece, by the offset of their opening bracket. Strings are skipped
 * escape by escape, so brackets, quotes and commas inside them do not count.
 */
async function scan(text: string, limits: Limits, slicer: Slicer): Promise<Map<number, Span>> {
  const maxDepth = limits.depth;
  const opens = new Int32Array(maxDepth + 1);
  const unitsAtOpen = new Float64Array(maxDepth + 1);
  /** Commas so far in each open object (-1: an array). */
  const commas = new Int32Array(maxDepth + 1);
  const big = new Map<number, Span>();
  const n = text.length;
  let depth = 0;
  let containers = 0;
  let units = 0;
  let i = 0;
  while (i < n) {
    const stop = Math.min(n, i + SCAN_STEP);
    for (; i < stop; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        units += UNIT_STRING;
        i = stringEnd(text, i);
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        if (depth === maxDepth)
          throw new Refused({ code: 'too_deep', message: `JSON nested deeper than ${maxDepth} levels (refused at character ${i}, before parsing)` });
        if (++containers > limits.containers)
          throw new Refused({
            code: 'too_large',
            message: `JSON with more than ${limits.containers} arrays and objects (refused at character ${i}, before parsing)`,
          });
        opens[depth] = i;
        unitsAtOpen[depth] = units;
        commas[depth] = c === OPEN_OBJECT ? 0 : -1;
        depth++;
        units += UNIT_CONTAINER;
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        if (depth === 0) throw syntax();
        depth--;
        const open = opens[depth] as number;
        // '[' and ']' are 0x5b and 0x5d, '{' and '}' 0x7b and 0x7d.
        if (text.charCodeAt(open) !== c - 2) throw syntax();
        if (i + 1 - open + units - (unitsAtOpen[depth] as number) > PIECE_UNITS) big.set(open, { end: i });
      } else if (c === COMMA) {
        units += UNIT_VALUE;
        const inner = depth - 1;
        if (inner >= 0 && commas[inner] !== -1) {
          const seen = (commas[inner] as number) + 1;
          // n commas separate n + 1 members.
          if (seen >= limits.members)
            throw new Refused({
              code: 'too_large',
              message: `JSON object with more than ${limits.members} members (refused at character ${i}, before parsing)`,
            });
          commas[inner] = seen;
        }
      }
    }
    await slicer.tick();
  }
  if (depth !== 0) throw syntax();
  return big;
}

/** The offset of the quote that closes the string opened at `open`; a string that never ends is a syntax error. */
function stringEnd(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i;
  }
  throw syntax();
}

/** JSON's whitespace: space, tab, line feed, carriage return. */
function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function blank(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isBlank(text.charCodeAt(i))) return false;
  return true;
}

function parsePiece(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // V8's message quotes the text, which may carry anything the peer sent.
    throw syntax();
  }
}

/** Sets a key as JSON.parse does: an own property even when it is "__proto__". */
function setKey(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
  else out[key] = value;
}

/**
 * Builds a large container from its children: runs of small children go to JSON.parse together
 * (wrapped in the container's brackets, so JSON.parse checks them), large ones are built the same
 * way in turn, at most maxDepth deep. Every character between is checked here.
 */
class Builder {
  constructor(
    private readonly text: string,
    private readonly big: Map<number, Span>,
    private readonly slicer: Slicer,
  ) {}

  async container(open: number): Promise<unknown> {
    const { text } = this;
    const close = (this.big.get(open) as Span).end;
    const isArray = text.charCodeAt(open) === OPEN_ARRAY;
    const array: unknown[] = [];
    const object: Record<string, unknown> = {};
    let runStart = -1;
    let runEnd = -1;
    let runUnits = 0;
    const flush = async (): Promise<void> => {
      if (runStart < 0) return;
      const part = text.slice(runStart, runEnd);
      if (isArray) for (const v of parsePiece(`[${part}]`) as unknown[]) array.push(v);
      else {
        const members = parsePiece(`{${part}}`) as Record<string, unknown>;
        for (const k of Object.keys(members)) setKey(object, k, members[k]);
      }
      runStart = -1;
      runUnits = 0;
      await this.slicer.tick();
    };
    let i = open + 1;
    for (let index = 0; ; index++) {
      const start = i;
      let inner = -1;
      let units = 0;
      while (i < close) {
        const c = text.charCodeAt(i);
        if (c === COMMA) break;
        if (c === QUOTE) {
          const end = stringEnd(text, i);
          units += UNIT_STRING + end + 1 - i;
          i = end + 1;
        } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
          const span = this.big.get(i);
          if (span !== undefined) {
            // Two values in one child (`[[...] [...]]`) is not JSON; refused here, before the
            // first would be handed whole to JSON.parse as part of a key.
            if (inner >= 0) throw syntax();
            inner = i;
            i = span.end + 1;
          } else {
            const end = this.smallEnd(i);
            units += this.smallUnits;
            i = end;
          }
        } else {
          units++;
          i++;
        }
      }
      if (blank(text, start, i)) {
        // Only `[ ]` and `{ }` have a child of nothing; `[1,,2]` and `[1,]` are not JSON.
        if (index === 0 && i === close) break;
        throw syntax();
      }
      if (inner < 0) {
        if (runStart >= 0 && runUnits + units > PIECE_UNITS) await flush();
        if (runStart < 0) runStart = start;
        runEnd = i;
        runUnits += units + UNIT_VALUE;
      } else {
        await flush();
        const end = (this.big.get(inner) as Span).end;
        if (!blank(text, end + 1, i)) throw syntax();
        if (isArray) {
          if (!blank(text, start, inner)) throw syntax();
          array.push(await this.container(inner));
        } else {
          // The member's key, checked by JSON.parse: `"key" :` becomes `{"key" :0}`.
          const keys = Object.keys(parsePiece(`{${text.slice(start, inner)}0}`) as Record<string, unknown>);
          if (keys.length !== 1) throw syntax();
          setKey(object, keys[0] as string, await this.container(inner));
        }
      }
      if (i === close) break;
      i++;
    }
    await flush();
    return isArray ? array : object;
  }

  /** The cost of the container smallEnd last skipped. */
  private smallUnits = 0;

  /** The offset after the container opened at `open`, which the scan found small (and balanced). */
  private smallEnd(open: number): number {
    const { text } = this;
    let depth = 0;
    let units = 0;
    for (let i = open; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        units += UNIT_STRING;
        i = stringEnd(text, i);
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        depth++;
        units += UNIT_CONTAINER;
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        if (--depth === 0) {
          this.smallUnits = units + i + 1 - open;
          return i + 1;
        }
      } else if (c === COMMA) units += UNIT_VALUE;
    }
    throw syntax();
  }
}

/**
 * A small JSON path: `$.a.b[0].c`, `a.b`, `$["key with dots"]`. Walked in a loop, one step per
 * segment, so a document's depth costs nothing here.
 */
export function jsonPath(doc: unknown, path: string): unknown {
  const segments: (string | number)[] = [];
  const re = /\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\["([^"]*)"\]|^([A-Za-z_][\w$-]*)/g;
  const p = path.startsWith('$') ? path.slice(1) : path;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(p)) !== null) {
    if (m.index !== consumed) return undefined;
    consumed = re.lastIndex;
    segments.push(m[2] !== undefined ? Number(m[2]) : ((m[1] ?? m[3] ?? m[4]) as string));
  }
  if (consumed !== p.length) return undefined;
  let cur: unknown = doc;
  for (const s of segments) {
    // Own keys only: `$.constructor` or `$.__proto__` is not in the document.
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, s)) return undefined;
    cur = (cur as Record<string | number, unknown>)[s];
  }
  return cur;
}
