// Keeps secret values out of everything vakt writes: logs, API responses, CLI output, and the
// failure messages probes quote from servers. Shared by the agent (secrets resolved by the config
// loader) and by probes (credentials and tokens of a run). Every outgoing text passes scrub().

/** The one marker that stands for a hidden secret, in every message of every kind. */
export const REDACTED = '[REDACTED]';

/**
 * The characters of base64 (and base64url) text that a value alone determines, at each of the
 * three byte offsets it may start at inside a longer encoded text (a peer echoing
 * "user:password" in base64 aligns the password anywhere): the first and last characters, which
 * mix in bits of the neighbouring bytes, are left off.
 */
function base64Forms(v: string): string[] {
  const bytes = Buffer.from(v, 'utf8');
  const out: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
    const text = padded.toString('base64').replace(/=+$/, '');
    // Characters 0..ceil(offset*8/6)-1 carry filler bits; the tail's last character may carry
    // bits of whatever follows unless the value ends on a 3-byte boundary.
    const start = Math.ceil((offset * 8) / 6);
    const end = padded.length % 3 === 0 ? text.length : text.length - 1;
    const core = text.slice(start, end);
    if (core.length >= 4) {
      out.push(core);
      out.push(core.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  return out;
}

/**
 * Every form in which a secret can come back: as is, inside a JSON string, URL-encoded,
 * form-encoded (spaces as "+"), and base64 or base64url (alone or inside a longer encoded text).
 */
export function formsOf(v: string): string[] {
  return [v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v), new URLSearchParams({ v }).toString().slice(2), ...base64Forms(v)];
}

export class Redactor {
  private readonly forms = new Set<string>();
  private needles: string[] = [];

  /**
   * @param minLength secrets shorter than this are not hidden (they would mangle ordinary text);
   * a probe hiding a run's own credentials and tokens passes 1.
   */
  constructor(private readonly minLength = 4) {}

  /** Replaces the set of secret values (on load and on every reload). */
  setSecrets(values: Iterable<string>): void {
    this.forms.clear();
    for (const v of values) this.collect(v);
    this.sort();
  }

  /** Adds one more value to hide (a token received during a run). */
  add(value: string | undefined): void {
    if (value === undefined) return;
    this.collect(value);
    this.sort();
  }

  scrub(text: string): string {
    let out = text;
    for (const n of this.needles) if (out.includes(n)) out = out.split(n).join(REDACTED);
    return out;
  }

  private collect(v: string): void {
    if (v.length < this.minLength) return;
    for (const f of formsOf(v)) if (f.length > 0) this.forms.add(f);
  }

  /** Longest first, so a secret containing another is replaced whole. */
  private sort(): void {
    this.needles = [...this.forms].sort((a, b) => b.length - a.length);
  }
}

/**
 * A run's redactor: every secret of the check at any length (a peer may echo any of them, not
 * only the one this kind sent), plus values the run adds itself (tokens, a Basic header).
 */
export function runRedactor(secrets: Readonly<Record<string, string>>): Redactor {
  const r = new Redactor(1);
  r.setSecrets(Object.values(secrets));
  return r;
}
