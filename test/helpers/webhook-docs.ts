// The receiver's signature check as docs/api.md shows it ("Verifying the signature"), taken
// from the docs so that the tests run the very code receivers are told to copy.
import { readFileSync } from 'node:fs';

/** The fenced code block of `language` (js, python) in docs/api.md's "Verifying the signature". */
export function signatureSnippet(language: 'js' | 'python'): string {
  const text = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('#### Verifying the signature'));
  const m = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(section);
  if (!m) throw new Error(`no ${language} block under "Verifying the signature" in docs/api.md`);
  return m[1] as string;
}
