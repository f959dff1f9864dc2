// Keeps secret values out of everything vakt writes: logs, API responses, CLI output, and the
// failure messages probes quote from servers. Shared by the agent (secrets resolved by the config
// loader) and by probes (credentials and tokens of a run). Every outgoing text passes scrub().

/** Every form in which a secret can come back: as is, inside a JSON string, URL-encoded, form-encoded (spaces as "+"). */
function formsOf(v: string): string[] {
  return [v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v), new URLSearchParams({ v }).toString().slice(2)];
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
    for (const n of this.needles) if (out.includes(n)) out = out.split(n).join('[REDACTED]');
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
