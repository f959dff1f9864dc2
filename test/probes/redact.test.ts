// The one redaction: a secret comes out of no message in any form a peer may echo it in, and
// ordinary text is left alone. `leaks` (test/helpers/leaks.ts) decodes independently.
import { describe, expect, it } from 'vitest';
import { REDACTED, Redactor, runRedactor } from '../../probes/kit/redact.js';
import { leaks } from '../helpers/leaks.js';

const SECRETS = ['Canary-S3cret-pw', 'pass word with spaces', 'ø å &"<x>+%\\ é', 'a', 'four', 'x/y+z?=='];

/** What a peer could send back: the secret as is and encoded, alone and inside other text. */
function echoes(s: string): string[] {
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  const b64url = (t: string) => Buffer.from(t).toString('base64url');
  return [
    `bad password ${s}`,
    `{"error":"bad ${JSON.stringify(s).slice(1, -1)}"}`,
    `GET /x?p=${encodeURIComponent(s)}`,
    `p=${new URLSearchParams({ v: s }).toString().slice(2)}&q=1`,
    `diagnostic: ${b64(s)}`,
    `Authorization: Basic ${b64(`probe.user:${s}`)}`,
    `PLAIN ${b64(`\0vakt\0${s}`)} end`,
    `${b64(`x${s}y`)} ${b64(`xy${s}`)} ${b64url(`xyz${s}`)}`,
  ];
}

describe('Redactor', () => {
  it('hides every secret of at least four characters in every echoed form, behind one marker', () => {
    for (const secret of SECRETS.filter((s) => s.length >= 4)) {
      const r = new Redactor();
      r.setSecrets([secret]);
      for (const text of echoes(secret)) {
        const out = r.scrub(text);
        expect(leaks(out, secret), `${JSON.stringify(secret)} in ${JSON.stringify(out)}`).toBe(false);
        expect(out).toContain(REDACTED);
      }
    }
  });

  it("a run's redactor hides the check's secrets at any length, and what the run adds", () => {
    const r = runRedactor({ a: 'Canary-S3cret-pw', b: 'xy' });
    expect(r.scrub('xy and Canary-S3cret-pw')).toBe(`${REDACTED} and ${REDACTED}`);
    r.add('tok-123456');
    expect(leaks(r.scrub(`token ${Buffer.from('tok-123456').toString('base64')}`), 'tok-123456')).toBe(false);
  });

  it('leaves text without a secret unchanged, and short secrets alone in the agent-wide redactor', () => {
    const r = new Redactor();
    r.setSecrets(['abc', 'Canary-S3cret-pw']);
    const text = 'connect ECONNREFUSED 127.0.0.1:389 (abc) QWxhZGRpbjpvcGVuIHNlc2FtZQ== "quoted"';
    expect(r.scrub(text)).toBe(text);
  });

  it('the test helper itself finds every form the redaction must hide', () => {
    for (const secret of SECRETS.filter((s) => s.length >= 4)) for (const text of echoes(secret)) expect(leaks(text, secret), text).toBe(true);
  });
});
