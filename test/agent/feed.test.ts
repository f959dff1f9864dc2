// The Atom feed (agent/feed.ts): well-formed XML whatever the titles hold (markup characters,
// control characters, lone surrogates), one entry per incident that moves from opened to updated
// to closed under the same id, planned work and change regressions, the self link from
// agent.notify.publicUrl; and through a real agent at /feed.atom, in the reader's language.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { atomFeed, feedNotices, FEED_ENTRIES } from '../../agent/feed.js';
import type { JournalIncident } from '../../agent/journal.js';
import type { Notice, NoticeContext } from '../../agent/notices.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { routeClass } from '../../agent/web-auth.js';
import { child, childrenNamed, parseXml, type XmlElement } from '../helpers/xml.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-feed-'));
const running: { agent: Agent; http: HttpServer }[] = [];
let peer: Server | undefined;
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.agent.stop();
    await r.http.close();
  }
  peer?.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = 'DNS <ns1> & "co" \'x\' \u0001\u0000\u001b[31m \uD800 ]]> \uFFFE end';
const CLEAN = 'DNS <ns1> & "co" \'x\' [31m  ]]>  end';
const T = Date.parse('2026-12-01T03:02:00Z');

function context(language: NoticeContext['language'] = 'en', publicUrl?: string): NoticeContext {
  return {
    language,
    titleOf: (name) => (name === 'dns' ? HOSTILE : name),
    timeZone: 'Europe/Stockholm',
    publicUrl,
    labels: { site: 'odense' },
    now: T + 3_600_000,
  };
}

const entries = (feed: XmlElement) => childrenNamed(feed, 'entry');

describe('atomFeed', () => {
  const notices: Notice[] = [
    { event: 'incident.updated', time: T + 60_000, incident: { cause: 'dns', since: T, affected: ['ehr-login'], count: 14 } },
    {
      event: 'maintenance.scheduled',
      time: T,
      window: { id: 'api-1', title: `Firewall ${HOSTILE}`, source: 'api', start: T + 86_400_000, end: T + 90_000_000, checks: ['fw'], count: 1 },
    },
  ];

  it('is well-formed XML, every text escaped and the characters XML 1.0 forbids left out', () => {
    const text = atomFeed({ notices, context: context('en', 'https://status.example.org/vakt'), title: `Status ${HOSTILE}`, site: 'odense', now: T });
    const feed = parseXml(text);
    expect(feed.name).toBe('feed');
    expect(feed.attrs).toEqual({ xmlns: 'http://www.w3.org/2005/Atom', 'xml:lang': 'en' });
    expect(child(feed, 'title').text).toBe(`Status ${CLEAN}`);
    expect(child(feed, 'id').text).toBe('https://status.example.org/vakt/feed.atom');
    expect(child(feed, 'updated').text).toBe(new Date(T + 60_000).toISOString());
    expect(child(child(feed, 'author'), 'name').text).toBe('vakt');
    expect(childrenNamed(feed, 'link').map((l) => l.attrs)).toEqual([
      { rel: 'self', type: 'application/atom+xml', href: 'https://status.example.org/vakt/feed.atom' },
      { rel: 'alternate', type: 'text/html', href: 'https://status.example.org/vakt/' },
    ]);
    const [incident, work] = entries(feed) as [XmlElement, XmlElement];
    expect(child(incident, 'id').text).toBe(`urn:vakt:odense:incident:dns:${T}`);
    expect(child(incident, 'title').text).toBe(`${CLEAN}: not working`);
    expect(child(incident, 'summary').attrs).toEqual({ type: 'text' });
    expect(child(incident, 'summary').text).toBe(`${CLEAN} is still not working (since 04:02) — 14 systems affected.`);
    expect(child(incident, 'category').attrs).toEqual({ term: 'incident.updated' });
    expect(child(incident, 'updated').text).toBe('2026-12-01T03:03:00.000Z');
    expect(child(work, 'title').text).toBe(`Planned work: Firewall ${CLEAN}`);
    expect(child(work, 'summary').text).toBe(`Planned work scheduled: Firewall ${CLEAN}, 2 Dec, 04:02–2 Dec, 05:02 (1 system).`);
    expect(child(work, 'id').text).toBe('urn:vakt:odense:maintenance:api-1');
  });

  it('without a public URL: an id of its own and no links', () => {
    const feed = parseXml(atomFeed({ notices: [], context: context('fi'), title: 'Tila', now: T }));
    expect(child(feed, 'id').text).toBe('urn:vakt:agent:feed');
    expect(childrenNamed(feed, 'link')).toEqual([]);
    expect(entries(feed)).toEqual([]);
    expect(child(feed, 'updated').text).toBe(new Date(T).toISOString());
    expect(feed.attrs['xml:lang']).toBe('fi');
  });

  it('holds the last 7 days, newest first, at most 100 entries; one entry per incident', () => {
    const now = Date.now();
    const incident = (i: number): JournalIncident => ({
      cause: `c${i}`,
      since: now - i * 60_000,
      until: now - i * 60_000 + 1000,
      affected: [],
      affectedCount: 0,
      peakAffected: 0,
      openedAt: now - i * 60_000,
      updatedAt: now - i * 60_000 + 1000,
    });
    const all = Array.from({ length: 150 }, (_, i) => incident(i));
    const seen: number[] = [];
    const list = feedNotices(
      {
        incidents: (since) => (seen.push(since), all),
        windows: () => [],
        verifications: () => [{ window: 'w', title: 'Upgrade', check: 'ehr', ended: now - 1000, state: 'verified', message: 'as before', t: now }],
        plannedAt: () => false,
      },
      [],
      now,
    );
    expect(seen).toEqual([now - 7 * 86_400_000]);
    expect(list).toHaveLength(FEED_ENTRIES);
    expect(list.map((n) => n.time)).toEqual([...list.map((n) => n.time)].sort((a, b) => b - a));
    // A verified change is no news for a department; only regressions are in the feed.
    expect(list.some((n) => n.event.startsWith('change.'))).toBe(false);
    expect(list[0]).toMatchObject({ event: 'incident.closed', incident: { cause: 'c0' } });
  });

  it('leaves out incidents whose cause was in planned work when they began, as the webhooks do', () => {
    const now = Date.now();
    const incident = (cause: string): JournalIncident => ({
      cause,
      since: now - 60_000,
      affected: [],
      affectedCount: 0,
      peakAffected: 0,
      openedAt: now - 60_000,
      updatedAt: now - 60_000,
    });
    const list = feedNotices(
      {
        incidents: () => [incident('dns-ns1'), incident('ehr')],
        windows: () => [],
        verifications: () => [],
        plannedAt: (check, t) => check === 'dns-ns1' && t === now - 60_000,
      },
      [],
      now,
    );
    expect(list.map((n) => ('incident' in n ? n.incident.cause : undefined))).toEqual(['ehr']);
  });
});

describe('the strict XML reader the feed is checked with', () => {
  it('refuses what is not XML', () => {
    for (const bad of ['<a>&</a>', '<a><b></a>', '<a>\u0001</a>', '<a x="1" x="2"/>', '<a/><b/>', '<a>&nbsp;</a>', '<a x=1/>', '<a>x < y</a>']) {
      expect(() => parseXml(bad), bad).toThrow();
    }
    expect(parseXml('<?xml version="1.0"?><a x="&lt;&#65;&#x42;">t&amp;u<b/></a>')).toEqual({
      name: 'a',
      attrs: { x: '<AB' },
      children: [{ name: 'b', attrs: {}, children: [], text: '' }],
      text: 't&u',
    });
  });
});

describe('/feed.atom', () => {
  it('tells of an incident as it opens, grows and closes, and of planned work, in the language asked for', async () => {
    let up = false;
    peer = createServer((_req, res) => {
      res.statusCode = up ? 200 : 503;
      res.end();
    });
    await new Promise<void>((r) => peer?.listen(0, '127.0.0.1', r));
    const port = (peer.address() as AddressInfo).port;
    const cfg = join(dir, 'vakt.yaml');
    writeFileSync(
      cfg,
      `agent:
  startSpread: 10ms
  labels: { site: odense }
  notify: { publicUrl: "https://status.example.org/" }
defaults: { timeout: 2s, retries: 0 }
# Once a year: the test runs them itself, in the order it needs.
checks:
  - { name: dns, title: { en: Internal DNS, sv: Intern DNS }, kind: http, target: "http://127.0.0.1:${port}/", cron: "0 0 1 1 *" }
  - { name: ehr-login, title: Cosmic, kind: http, target: "http://127.0.0.1:${port}/", dependsOn: [dns], cron: "0 0 1 1 *" }
`,
    );
    const logs = new PassThrough();
    logs.resume();
    const agent = await Agent.start({ configFile: cfg, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
    const http = await startServer(agent, '127.0.0.1', 0);
    running.push({ agent, http });
    const feed = async (query = '') => {
      const res = await fetch(`${http.url}/feed.atom${query}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/atom+xml; charset=utf-8');
      return parseXml(await res.text());
    };
    const incidentEntries = (f: XmlElement) => entries(f).filter((e) => child(e, 'category').attrs.term?.startsWith('incident.'));

    await agent.runNow('dns');
    await new Promise((r) => setImmediate(r));
    let f = await feed();
    expect(childrenNamed(f, 'link')[0]?.attrs.href).toBe('https://status.example.org/feed.atom');
    expect(incidentEntries(f).map((e) => child(e, 'category').attrs.term)).toEqual(['incident.opened']);
    expect(child(incidentEntries(f)[0] as XmlElement, 'summary').text).toMatch(/^Internal DNS is not working since \d\d:\d\d — no other systems affected\.$/);
    const id = child(incidentEntries(f)[0] as XmlElement, 'id').text;

    await agent.runNow('ehr-login');
    await new Promise((r) => setImmediate(r));
    f = await feed('?lang=sv');
    expect(f.attrs['xml:lang']).toBe('sv');
    expect(incidentEntries(f).map((e) => [child(e, 'id').text, child(e, 'category').attrs.term])).toEqual([[id, 'incident.updated']]);
    expect(child(incidentEntries(f)[0] as XmlElement, 'summary').text).toMatch(
      /^Intern DNS fungerar fortfarande inte \(sedan \d\d:\d\d\) — 1 system påverkas\.$/,
    );

    const made = await fetch(`${http.url}/api/v1/maintenance`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Firewall <swap> & reboot', checks: ['ehr-login'], start: new Date(Date.now() + 3_600_000).toISOString(), duration: '1h' }),
    });
    expect(made.status).toBe(201);
    up = true;
    await agent.runNow('ehr-login');
    await agent.runNow('dns');
    await new Promise((r) => setImmediate(r));
    f = await feed();
    expect(incidentEntries(f).map((e) => [child(e, 'id').text, child(e, 'category').attrs.term, child(e, 'title').text])).toEqual([
      [id, 'incident.closed', 'Internal DNS: working again'],
    ]);
    const work = entries(f).find((e) => child(e, 'category').attrs.term === 'maintenance.scheduled') as XmlElement;
    expect(child(work, 'title').text).toBe('Planned work: Firewall <swap> & reboot');
    expect(routeClass('/feed.atom')).toBe('status');
    expect((await fetch(`${http.url}/feed.atom`, { method: 'HEAD' })).status).toBe(200);
  });
});
