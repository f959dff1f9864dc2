// Keeps secret values out of everything vakt writes: logs, API responses, CLI output.
// The config loader hands over resolved secrets; every outgoing text passes through scrub().

const MIN_SECRET_LENGTH = 4;

export class Redactor {
  private needles: string[] = [];

  /** Replaces the set of secret values (on load and on every reload). */
  setSecrets(values: Iterable<string>): void {
    const set = new Set<string>();
    for (const v of values) {
      if (v.length < MIN_SECRET_LENGTH) continue;
      set.add(v);
      // The same value as it appears inside a JSON string or a URL.
      const json = JSON.stringify(v).slice(1, -1);
      if (json !== v) set.add(json);
      const url = encodeURIComponent(v);
      if (url !== v) set.add(url);
      // As an HTML form sends it (spaces as "+").
      const form = new URLSearchParams({ v }).toString().slice(2);
      if (form !== v) set.add(form);
    }
    // Longest first, so a secret containing another is replaced whole.
    this.needles = [...set].sort((a, b) => b.length - a.length);
  }

  scrub(text: string): string {
    let out = text;
    for (const n of this.needles) if (out.includes(n)) out = out.split(n).join('[REDACTED]');
    return out;
  }
}
