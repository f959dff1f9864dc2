// Webhooks (agent/notify.ts) against a real HTTP receiver on 127.0.0.1: the signature verifies
// as docs/api.md tells receivers to check it, notices arrive in order, 5xx is tried again and 4xx
// is not, Retry-After is waited (on a fake clock), a receiver that never answers costs one
// deadline and holds up neither the agent nor the other receivers, a full queue drops its oldest
// and counts it, updates wait and only the latest is sent, the slack and teams shapes; and
// through a real agent: an incident told to a receiver, the secret and the URL's credentials in
// no log line, no metric and no API answer.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../agent/agent.js';
import type { JournalRecord } from '../../agent/journal.js';
import { Notifier, render, retryAfterMs, MAX_RETRY_WAIT_MS } from '../../agent/notify.js';
import type { NoticePayload } from '../../agent/notices.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { NOTICE_EVENTS, redactUrl, type NotifyConfig, type WebhookConfig } from '../../config/notify.js';
import { leaks } from '../helpers/leaks.js';
import { makePki } from '../helpers/certs.js';
import { signatureSnippet } from '../helpers/webhook-docs.js';
import { parseConfig } from '../../config/loader.js';
import { createServer as createHttpsServer } from 'node:https';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const SECRET = 'hmac-key-4f9c1e2a7b';
const T = Date.parse('2026-12-01T03:02:00Z');
const dir = mkdtempSync(join(tmpdir(), 'vakt-notify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Got {
  headers: IncomingHttpHeaders;
  body: string;
}
type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A receiver that answers the n-th request (from 0) as `answer` says; 'hang' never answers (until released). */
async function receiver(answer: (got: Got, n: number) => Answer = () => ({ status: 204 })) {
  const got: Got[] = [];
  const hanging: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const g = { headers: req.headers, body };
      const a = answer(g, got.length);
      got.push(g);
      if (a === 'hang') hanging.push(res);
      else res.writeHead(a.status, a.headers).end(a.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/vakt`;
  return { url, got, hanging, events: () => got.map((g) => g.headers['x-vakt-event']) };
}

function logger() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return { log: pino({ level: 'debug' }, out), text: () => text };
}

function webhook(url: string, extra: Partial<Omit<WebhookConfig, 'secret'>> & { secret?: string | undefined } = {}): WebhookConfig {
  const { secret = SECRET, ...rest } = extra;
  const w: WebhookConfig = {
    name: 'ward',
    url,
    events: [...NOTICE_EVENTS],
    format: 'json',
    language: 'en',
    timeoutMs: 5000,
    attempts: 3,
    retryDelayMs: 10,
    queue: 100,
    ...rest,
  };
  // `secret: undefined` asks for a webhook without one.
  if ('secret' in extra && extra.secret === undefined) delete w.secret;
  else w.secret = secret;
  return w;
}

function notifier(webhooks: WebhookConfig[], config: Partial<NotifyConfig> = {}, planned: (check: string) => boolean = () => false) {
  const l = logger();
  const n = new Notifier(
    { updateDelayMs: 0, webhooks, ...config },
    {
      context: (language) => ({
        language,
        titleOf: (c, lang) => (c === 'dns' ? (lang === 'sv' ? 'Intern DNS' : 'Internal DNS') : c),
        labels: { site: 'vaxjo' },
        publicUrl: 'https://status.region.example',
        timeZone: 'Europe/Stockholm',
      }),
      planned,
      scrub: (s) => s,
    },
    l.log,
  );
  cleanup.push(() => n.stop());
  return { n, logs: l.text };
}

async function until<T>(what: string, fn: () => T | undefined | false): Promise<T> {
  // Polled on setImmediate (not a timer), so it also works while timers are fake.
  for (let i = 0; i < 200_000; i++) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`${what}: never`);
}

const opened: Extract<JournalRecord, { type: 'incident' }> = {
  t: T,
  type: 'incident',
  event: 'opened',
  cause: 'dns',
  since: T - 60_000,
  affected: ['ehr-login', 'lab-orders'],
  reason: 'timeout',
};
const updated = (affected: string[], t = T + 1000): JournalRecord => ({ ...opened, t, event: 'updated', affected });
const closed: JournalRecord = { ...opened, t: T + 3_600_000, event: 'closed', affected: [] };
const started: JournalRecord = {
  t: T,
  type: 'maintenance',
  event: 'started',
  id: 'api-1',
  title: 'Firewall upgrade',
  source: 'api',
  checks: ['fw-a'],
  start: T,
  end: T + 7_200_000,
  verify: true,
};

/** How a receiver checks a notice, as docs/api.md shows it (Node). */
function verify(got: Got, secret: string): boolean {
  const ts = got.headers['x-vakt-timestamp'] as string;
  const sig = got.headers['x-vakt-signature'] as string;
  const want = `sha256=${createHmac('sha256', secret).update(`${ts}.${got.body}`).digest('hex')}`;
  return sig.length === want.length && timingSafeEqual(Buffer.from(sig), Buffer.from(want));
}

describe('webhooks against a real receiver', () => {
  it('signs every notice, sends them in order in the documented plain JSON', async () => {
    const r = await receiver();
    const { n } = notifier([webhook(r.url)]);
    n.record(opened);
    n.record({ t: T, type: 'state', check: 'dns', from: 'ok', to: 'down' });
    n.record(started);
    n.record(closed);
    await until('three notices', () => n.figures()[0]?.delivered === 3);
    expect(r.events()).toEqual(['incident.opened', 'maintenance.started', 'incident.closed']);
    for (const g of r.got) {
      expect(g.headers['content-type']).toBe('application/json');
      expect(verify(g, SECRET)).toBe(true);
      expect(verify(g, 'another-key')).toBe(false);
      expect(Number(g.headers['x-vakt-timestamp'])).toBeGreaterThan(1_700_000_000);
      expect(g.headers['x-vakt-delivery']).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(new Set(r.got.map((g) => g.headers['x-vakt-delivery'])).size).toBe(3);
    const first = JSON.parse(r.got[0]?.body as string) as NoticePayload;
    expect(first).toEqual({
      version: 1,
      event: 'incident.opened',
      time: '2026-12-01T03:02:00.000Z',
      text: 'Internal DNS is not working since 04:01 — 2 systems affected.',
      title: 'Internal DNS: not working',
      url: 'https://status.region.example/',
      labels: { site: 'vaxjo' },
      incident: {
        id: 'dns@2026-12-01T03:01:00.000Z',
        cause: 'dns',
        title: 'Internal DNS',
        checks: ['ehr-login', 'lab-orders'],
        affected: 2,
        reason: 'timeout',
        started: '2026-12-01T03:01:00.000Z',
        ended: null,
      },
      window: null,
      change: null,
    });
    const work = JSON.parse(r.got[1]?.body as string) as NoticePayload;
    expect(work).toMatchObject({
      event: 'maintenance.started',
      text: 'Planned work started: Firewall upgrade, until 06:02 (1 system).',
      incident: null,
      window: {
        id: 'api-1',
        title: 'Firewall upgrade',
        source: 'api',
        start: '2026-12-01T03:02:00.000Z',
        end: '2026-12-01T05:02:00.000Z',
        checks: ['fw-a'],
        count: 1,
      },
    });
    expect(JSON.parse(r.got[2]?.body as string)).toMatchObject({
      event: 'incident.closed',
      text: 'Internal DNS is working again (not working 04:01–05:02).',
      incident: { ended: '2026-12-01T04:02:00.000Z' },
    });
    expect(n.figures()).toEqual([{ name: 'ward', delivered: 3, failed: 0, dropped: 0, queued: 0 }]);
  });

  it('tries a 500 again (same delivery id) and stops at success; a 400 is not tried again', async () => {
    const r = await receiver((_g, i) => ({ status: i < 2 ? 500 : 200 }));
    const refusing = await receiver(() => ({ status: 400, body: 'bad' }));
    const { n } = notifier([webhook(r.url), webhook(refusing.url, { name: 'refusing', attempts: 5 })]);
    n.record(opened);
    await until('delivered after two 500s', () => n.figures()[0]?.delivered === 1);
    expect(r.got).toHaveLength(3);
    expect(new Set(r.got.map((g) => g.headers['x-vakt-delivery'])).size).toBe(1);
    await until('refused', () => n.figures()[1]?.failed === 1);
    expect(refusing.got).toHaveLength(1);
    // A 408 and a 429 are tried again; every attempt failing counts once as failed.
    const busy = await receiver((_g, i) => ({ status: i === 0 ? 408 : 503 }));
    const { n: n2 } = notifier([webhook(busy.url, { attempts: 3 })]);
    n2.record(opened);
    await until('attempts used up', () => n2.figures()[0]?.failed === 1);
    expect(busy.got).toHaveLength(3);
  });

  it('waits as long as Retry-After says (bounded), on a fake clock', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(T);
    const r = await receiver((_g, i) => (i === 0 ? { status: 429, headers: { 'Retry-After': '120' } } : { status: 200 }));
    const { n } = notifier([webhook(r.url, { retryDelayMs: 10 })]);
    n.record(opened);
    await until('the first attempt', () => r.got.length === 1);
    await until('its answer read', () => vi.getTimerCount() === 1);
    await vi.advanceTimersByTimeAsync(119_000);
    for (let i = 0; i < 200; i++) await new Promise((res) => setImmediate(res));
    expect(r.got).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    await until('the second attempt', () => n.figures()[0]?.delivered === 1);
    expect(r.got).toHaveLength(2);
    expect(retryAfterMs('120')).toBe(120_000);
    expect(retryAfterMs(new Date(Date.now() + 30_000).toUTCString())).toBe(30_000);
    expect(retryAfterMs('86400')).toBe(MAX_RETRY_WAIT_MS);
    expect(retryAfterMs('soon')).toBeUndefined();
  });

  it('a receiver that never answers costs one deadline per attempt and holds up nobody else', async () => {
    const silent = await receiver((_g, i) => (i === 0 ? 'hang' : { status: 200 }));
    const fast = await receiver();
    const { n, logs } = notifier([webhook(silent.url, { name: 'silent', timeoutMs: 300, attempts: 1 }), webhook(fast.url, { name: 'fast' })]);
    n.record(opened);
    n.record(started);
    await until('the fast receiver has both', () => fast.got.length === 2);
    expect(silent.got).toHaveLength(1);
    await until('the silent one timed out', () => n.figures()[0]?.failed === 1);
    await until('and went on with the next', () => n.figures()[0]?.delivered === 1);
    expect(silent.events()).toEqual(['incident.opened', 'maintenance.started']);
    expect(logs()).toContain('"why":"timeout"');
  });

  it('a full queue drops its oldest notice and counts it', async () => {
    const r = await receiver((_g, i) => (i === 0 ? 'hang' : { status: 200 }));
    const { n, logs } = notifier([webhook(r.url, { queue: 2 })]);
    const records = [0, 1, 2, 3, 4].map((i): JournalRecord => ({ ...started, id: `api-${i}`, title: `Window ${i}` }));
    n.record(records[0] as JournalRecord);
    await until('the first in flight', () => r.got.length === 1);
    for (const rec of records.slice(1)) n.record(rec);
    expect(n.figures()).toEqual([{ name: 'ward', delivered: 0, failed: 0, dropped: 2, queued: 2 }]);
    expect(logs()).toContain('webhook queue full: oldest notice dropped');
    r.hanging[0]?.writeHead(200).end();
    await until('the rest delivered', () => n.figures()[0]?.delivered === 3);
    expect(r.got.map((g) => (JSON.parse(g.body) as NoticePayload).window?.id)).toEqual(['api-0', 'api-3', 'api-4']);
  });

  it('updates wait for agent.notify.updateDelay and only the latest is sent; a close cancels a waiting update', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const r = await receiver();
    const { n } = notifier([webhook(r.url)], { updateDelayMs: 60_000 });
    n.record(opened);
    n.record(updated(['a', 'b', 'c']));
    n.record(updated(['a', 'b', 'c', 'd']));
    await until('opened', () => r.got.length === 1);
    await vi.advanceTimersByTimeAsync(60_000);
    await until('one update', () => r.got.length === 2);
    expect(JSON.parse(r.got[1]?.body as string)).toMatchObject({ event: 'incident.updated', incident: { affected: 4 } });
    n.record(updated(['a']));
    n.record(closed);
    await until('closed', () => r.got.length === 3);
    await vi.advanceTimersByTimeAsync(120_000);
    for (let i = 0; i < 100; i++) await new Promise((res) => setImmediate(res));
    expect(r.events()).toEqual(['incident.opened', 'incident.updated', 'incident.closed']);
  });

  it('sends only the events a webhook asks for; an incident whose cause is in planned work is not told', async () => {
    const r = await receiver();
    const { n } = notifier([webhook(r.url, { events: ['incident.closed', 'maintenance.started'] })], {}, (c) => c === 'fw-a');
    n.record(opened);
    n.record({ ...opened, cause: 'fw-a', affected: [] });
    n.record(started);
    n.record({ ...closed, cause: 'fw-a' });
    n.record(closed);
    await until('two', () => r.got.length === 2);
    expect(r.events()).toEqual(['maintenance.started', 'incident.closed']);
    expect((JSON.parse(r.got[1]?.body as string) as NoticePayload).incident?.cause).toBe('dns');
  });

  it('slack and teams shapes, in the webhook language', async () => {
    const slack = await receiver();
    const teams = await receiver();
    const { n } = notifier([
      webhook(slack.url, { name: 'chat', format: 'slack', language: 'sv', secret: undefined }),
      webhook(teams.url, { name: 'teams', format: 'teams', language: 'fi' }),
    ]);
    n.record({ ...opened, cause: 'dns' });
    await until('both', () => slack.got.length === 1 && teams.got.length === 1);
    expect(JSON.parse(slack.got[0]?.body as string)).toEqual({
      text: 'Intern DNS fungerar inte sedan 04:01 — 2 system påverkas. https://status.region.example/',
    });
    expect(slack.got[0]?.headers['x-vakt-signature']).toBeUndefined();
    const card = JSON.parse(teams.got[0]?.body as string) as {
      type: string;
      attachments: { contentType: string; content: { type: string; version: string; body: { text: string }[]; actions: { url: string }[] } }[];
    };
    expect(card.type).toBe('message');
    expect(card.attachments[0]?.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(card.attachments[0]?.content).toMatchObject({ type: 'AdaptiveCard', version: '1.4' });
    expect(card.attachments[0]?.content.body.map((b) => b.text)).toEqual([
      'Internal DNS: ei toimi',
      'Internal DNS ei toimi 04.01 alkaen — koskee myös 2 järjestelmää.',
    ]);
    expect(card.attachments[0]?.content.actions[0]?.url).toBe('https://status.region.example/');
    expect(verify(teams.got[0] as Got, SECRET)).toBe(true);
    // Slack reads <, > and & as markup: a title that holds them shows as written.
    const ctx = { language: 'en' as const, titleOf: () => 'A <b> & c', labels: {} };
    expect(render({ format: 'slack' }, { event: 'incident.opened', time: T, incident: { cause: 'x', since: T, affected: [], count: 0 } }, ctx)).toEqual({
      text: 'A &lt;b&gt; &amp; c is not working since 03:02 — no other systems affected.'.replace(
        '03:02',
        new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' }).format(T),
      ),
    });
  });

  it('an https receiver with a private CA: verified against caFile, refused without it', async () => {
    const pki = makePki();
    const got: string[] = [];
    const server = createHttpsServer({ cert: pki.valid.cert, key: pki.valid.key }, (req, res) => {
      got.push(req.headers['x-vakt-event'] as string);
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
    const url = `https://localhost:${(server.address() as AddressInfo).port}/hooks`;
    writeFileSync(join(dir, 'hook.secret'), SECRET);
    const parsed = parseConfig(
      `agent:\n  notify:\n    webhooks:\n      - { name: private, url: "${url}", secret: { file: hook.secret }, caFile: "${pki.caFile}" }\nchecks: [ { name: a, kind: tcp, target: "h:1" } ]\n`,
      join(dir, 'ca.yaml'),
    );
    const withCa = parsed.agent.notify.webhooks[0] as WebhookConfig;
    expect(withCa.ca).toBe(pki.ca.cert);
    expect(withCa.secret).toBe(SECRET);
    const { n } = notifier([withCa, { ...withCa, name: 'public-cas', attempts: 1, ca: undefined } as unknown as WebhookConfig]);
    n.record(opened);
    await until('both done', () => n.figures().every((f) => f.delivered + f.failed === 1));
    expect(n.figures().map((f) => [f.name, f.delivered, f.failed])).toEqual([
      ['private', 1, 0],
      ['public-cas', 0, 1],
    ]);
    expect(got).toEqual(['incident.opened']);
  });

  it("the receiver's check in docs/api.md accepts a real notice and refuses a changed one (Node)", async () => {
    const r = await receiver();
    const { n } = notifier([webhook(r.url)]);
    n.record(opened);
    await until('delivered', () => r.got.length === 1);
    const g = r.got[0] as Got;
    const node = async (headers: IncomingHttpHeaders, body: string) =>
      (
        await promisify(execFile)(process.execPath, [
          '--input-type=commonjs',
          '-e',
          `${signatureSnippet('js')}\nconst h = ${JSON.stringify(headers)};\nprocess.stdout.write(String(verified(h, Buffer.from(${JSON.stringify(body)}), ${JSON.stringify(SECRET)})));`,
        ])
      ).stdout;
    expect(await node(g.headers, g.body)).toBe('true');
    expect(await node(g.headers, g.body.replace('Internal DNS', 'Internal DNZ'))).toBe('false');
    expect(await node({ ...g.headers, 'x-vakt-timestamp': String(Number(g.headers['x-vakt-timestamp']) - 600) }, g.body)).toBe('false');
  });

  it('logs a webhook URL without its credentials, query or token', () => {
    expect(redactUrl('https://user:pa55word@hooks.example.org/services/T0AB/B0CD/XoXoXoXoXoXoXoXoXoXoXo?sig=abcdef123456#x')).toBe(
      'https://hooks.example.org/services/T0AB/B0CD/…?…',
    );
  });
});

describe('webhooks through a real agent', () => {
  it('an incident reaches the receiver, signed; the secret and the URL credentials are in no log, metric or API answer', async () => {
    const token = 'XoXoXoXoTokenTokenToken42';
    const password = 'pa55-w0rd-hunter';
    const r = await receiver(() => ({ status: 403 }));
    const port = await new Promise<number>((resolve) => {
      const s = createServer((_q, res) => res.writeHead(503).end());
      s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port));
      cleanup.push(() => new Promise<void>((done) => s.close(() => done())));
    });
    const u = new URL(r.url);
    const hook = `http://vakt:${password}@127.0.0.1:${u.port}/hooks/${token}?code=${token}`;
    writeFileSync(join(dir, 'hook.secret'), `${SECRET}\n`);
    const cfg = join(dir, 'vakt.yaml');
    writeFileSync(
      cfg,
      `agent:
  startSpread: 10ms
  notify:
    updateDelay: 0s
    webhooks:
      - { name: ward-4, url: "${hook}", secret: { file: hook.secret }, attempts: 1 }
defaults: { timeout: 2s, retries: 0 }
checks:
  - { name: dns, title: Internal DNS, kind: http, target: "http://127.0.0.1:${port}/", cron: "0 0 1 1 *" }
`,
    );
    const out = new PassThrough();
    let logs = '';
    out.on('data', (d: Buffer) => (logs += d.toString()));
    const agent = await Agent.start({ configFile: cfg, listen: { host: '127.0.0.1', port: 0 }, logStream: out, logLevel: 'debug' });
    const http: HttpServer = await startServer(agent, '127.0.0.1', 0);
    cleanup.push(async () => {
      await agent.stop();
      await http.close();
    });
    await agent.runNow('dns');
    await until('refused', () => r.got.length === 1);
    await until('counted', async () =>
      (await (await fetch(`${http.url}/metrics`)).text()).includes('vakt_notify_deliveries_total{webhook="ward-4",result="failed"} 1'),
    );
    const got = r.got[0] as Got;
    expect(verify(got, SECRET)).toBe(true);
    expect(got.headers.authorization).toBe(`Basic ${Buffer.from(`vakt:${password}`).toString('base64')}`);
    expect(JSON.parse(got.body)).toMatchObject({ event: 'incident.opened', incident: { cause: 'dns', title: 'Internal DNS', reason: 'http_status' } });
    const metrics = await (await fetch(`${http.url}/metrics`)).text();
    expect(metrics).toContain('vakt_notify_queue{webhook="ward-4"} 0');
    const api = await (await fetch(`${http.url}/api/v1/checks`)).text();
    const page = await (await fetch(`${http.url}/`)).text();
    const feed = await (await fetch(`${http.url}/feed.atom`)).text();
    expect(logs).toContain('webhook not delivered: the receiver refused it');
    expect(logs).toContain('http://127.0.0.1:');
    for (const text of [logs, metrics, api, page, feed]) for (const secret of [SECRET, password, token]) expect(leaks(text, secret), secret).toBe(false);
  });
});
