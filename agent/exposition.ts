// The text of /metrics, kept up to date as runs finish so that a scrape is a concatenation.
// Each metric family holds, per owner (a check, or the agent), the exposition lines of that
// owner's current series. A run rewrites only its own check's lines; a scrape joins the lines
// family by family and hands them out in chunks, yielding to the event loop between chunks, so
// serving a large agent never holds up the timers and sockets of the probes it is measuring.
// Prometheus text format 0.0.4 and OpenMetrics 1.0 differ here only in the counter family's
// name (without `_total` in OpenMetrics) and the closing `# EOF`.

export type FamilyType = 'gauge' | 'counter' | 'histogram';

export class Family {
  /** Each owner's lines of this family (each line ends with "\n"), in insertion order. */
  private readonly lines = new Map<string, string>();

  constructor(
    readonly name: string,
    readonly type: FamilyType,
    readonly help: string,
  ) {}

  /** Sets (or with "" removes) the owner's lines of this family. */
  set(owner: string, text: string): void {
    if (text === '') this.lines.delete(owner);
    else this.lines.set(owner, flat(text));
  }

  get size(): number {
    return this.lines.size;
  }

  header(openMetrics: boolean): string {
    const name = openMetrics && this.type === 'counter' ? this.name.replace(/_total$/, '') : this.name;
    return `# HELP ${name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${name} ${this.type}\n`;
  }

  values(): IterableIterator<string> {
    return this.lines.values();
  }
}

const FLATTEN = /^$/;

/**
 * The same string, stored flat. Text built by concatenation is, in V8, a tree of its pieces
 * (a "cons string", 32 bytes per piece); kept for a whole interval per check and family, those
 * trees were a fifth of the agent's heap at 10,000 checks (33 of 150 MiB live) and made every
 * scrape walk them. Running a RegExp flattens its subject in place, and unlike a bare read of a
 * character (whose unused result the optimiser may drop) a RegExp call is always made.
 */
export function flat(s: string): string {
  FLATTEN.test(s);
  return s;
}

/** Label value escaping of the text formats: backslash, double quote, line feed. */
export function escapeLabel(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

/** A label set's inner text (`a="x",b="y"`) from pairs; values escaped. */
export function labelText(pairs: Record<string, string>): string {
  let out = '';
  for (const k in pairs) out += `${out === '' ? '' : ','}${k}="${escapeLabel(pairs[k] as string)}"`;
  return out;
}

/** A sample value as the text formats spell it (Go's strconv style for the special values). */
export function num(v: number): string {
  if (Number.isFinite(v)) return String(v);
  return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf';
}

/** One sample line: `name{labels} value\n` (labels without braces; "" for none). */
export function line(name: string, labels: string, value: number): string {
  return labels === '' ? `${name} ${num(value)}\n` : `${name}{${labels}} ${num(value)}\n`;
}

/** Bytes of text per chunk handed to the server before the scrape yields to the event loop. */
const CHUNK_CHARS = 256 * 1024;

/**
 * The families' text, in chunks of about CHUNK_CHARS, yielding to the event loop between
 * chunks. `tail` is appended (another registry's text); OpenMetrics ends with "# EOF".
 */
export async function* expose(families: readonly Family[], openMetrics: boolean, tail: string): AsyncGenerator<string> {
  let parts: string[] = [];
  let size = 0;
  for (const f of families) {
    if (f.size === 0) continue;
    const h = f.header(openMetrics);
    parts.push(h);
    size += h.length;
    // The family's lines as they are now: runs that finish while this scrape yields must not
    // make a check's lines appear twice (a Map visits a key deleted and set again twice).
    for (const text of [...f.values()]) {
      parts.push(text);
      size += text.length;
      if (size >= CHUNK_CHARS) {
        yield parts.join('');
        parts = [];
        size = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
  parts.push(tail);
  if (openMetrics) parts.push('# EOF\n');
  yield parts.join('');
}

/** Cumulative histogram state of one series, rendered as _bucket/_sum/_count lines. */
export class HistogramState {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) if (v <= (b[i] as number)) this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += v;
    this.count++;
  }

  render(name: string, labels: string, leTexts: readonly string[]): string {
    const sep = labels === '' ? '' : `${labels},`;
    let out = '';
    for (let i = 0; i < leTexts.length; i++) out += `${name}_bucket{${sep}le="${leTexts[i]}"} ${this.counts[i]}\n`;
    out += `${name}_bucket{${sep}le="+Inf"} ${this.count}\n`;
    out +=
      labels === ''
        ? `${name}_sum ${num(this.sum)}\n${name}_count ${this.count}\n`
        : `${name}_sum{${labels}} ${num(this.sum)}\n${name}_count{${labels}} ${this.count}\n`;
    return out;
  }
}

/** `le` label values for bucket bounds, spelled as floats (OpenMetrics wants "1.0", not "1"). */
export function leTexts(bounds: readonly number[]): string[] {
  return bounds.map((b) => (Number.isInteger(b) ? `${b}.0` : String(b)));
}
