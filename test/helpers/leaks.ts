// Whether a text still carries a secret in any form a peer may echo it in: as is, URL- or
// form-encoded, JSON-escaped, or base64/base64url (alone or inside a longer encoded text, at any
// alignment). Written independently of probes/kit/redact.ts, so a test of the redaction does not
// check it against itself. The secret's first and last characters are not required: base64
// text around a hidden secret may keep a character that carries a few of its edge bits.
export function leaks(text: string, secret: string): boolean {
  const core = secret.length > 4 ? secret.slice(1, -1) : secret;
  const plain = [text, safeDecode(text), safeDecode(text.replace(/\+/g, ' ')), text.replace(/\\(["\\/])/g, '$1')];
  if (plain.some((t) => t.includes(core))) return true;
  for (const run of text.match(/[A-Za-z0-9+/_-]{6,}/g) ?? []) {
    for (let k = 0; k < 4; k++) {
      const part = run.slice(k);
      for (const enc of ['base64', 'base64url'] as const) {
        if (Buffer.from(part, enc).toString('latin1').includes(Buffer.from(core).toString('latin1'))) return true;
      }
    }
  }
  return false;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
