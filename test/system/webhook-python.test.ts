// The receiver's signature check of docs/api.md in Python (python3 from Debian, as .ci/run
// installs it), run on a notice a real Notifier sent to a real receiver: it accepts the notice,
// and refuses a changed body, another key and an old timestamp. Does not need root.
import { execFile } from 'node:child_process';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Notifier } from '../../agent/notify.js';
import { NOTICE_EVENTS } from '../../config/notify.js';
import { signatureSnippet } from '../helpers/webhook-docs.js';

const SECRET = 'hmac-key-4f9c1e2a7b';
const got: { headers: IncomingHttpHeaders; body: string }[] = [];
const server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  req.on('end', () => {
    got.push({ headers: req.headers, body });
    res.writeHead(204).end();
  });
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function python(headers: IncomingHttpHeaders, body: string, secret = SECRET): Promise<string> {
  // The docs' function takes a mapping with the headers' canonical names, as a framework gives them.
  const named = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase()), v]));
  const program = `${signatureSnippet('python')}
import json, sys
args = json.load(sys.stdin)
print(verified(args["headers"], args["body"].encode(), args["secret"].encode()))
`;
  const child = promisify(execFile)('python3', ['-c', program]);
  child.child.stdin?.end(JSON.stringify({ headers: named, body, secret }));
  return (await child).stdout.trim();
}

describe('verifying a webhook in Python, as docs/api.md shows it', () => {
  it('accepts a real notice; refuses a changed body, another key, an old timestamp', async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    const n = new Notifier(
      {
        updateDelayMs: 0,
        webhooks: [
          {
            name: 'py',
            url,
            secret: SECRET,
            events: [...NOTICE_EVENTS],
            format: 'json',
            language: 'da',
            timeoutMs: 5000,
            attempts: 1,
            retryDelayMs: 10,
            queue: 10,
          },
        ],
      },
      { context: (language) => ({ language, titleOf: (c) => c, labels: {} }), planned: () => false, scrub: (s) => s },
      pino({ level: 'silent' }),
    );
    const t = Date.now();
    n.record({ t, type: 'incident', event: 'opened', cause: 'intern-dns', since: t - 60_000, affected: ['sundhedsplatformen'] });
    for (let i = 0; i < 1000 && n.figures()[0]?.delivered !== 1; i++) await new Promise((r) => setTimeout(r, 10));
    n.stop();
    const g = got[0];
    expect(g).toBeDefined();
    if (!g) return;
    expect(g.body).toContain('intern-dns virker ikke siden');
    expect(await python(g.headers, g.body)).toBe('True');
    expect(await python(g.headers, g.body.replace('intern-dns', 'intern-dnz'))).toBe('False');
    expect(await python(g.headers, g.body, 'another-key')).toBe('False');
    expect(await python({ ...g.headers, 'x-vakt-timestamp': String(Number(g.headers['x-vakt-timestamp']) - 600) }, g.body)).toBe('False');
  }, 30_000);
});
