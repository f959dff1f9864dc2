// The Atom feed (RFC 4287) at /feed.atom: what the status page says over time, for departments'
// feed readers, intranet pages and Teams/Outlook RSS connectors. One entry per incident (opened,
// updated, closed: its `updated` moves, its id stays), per window of planned work (scheduled,
// started, changed, ended, cancelled; config windows to come within 7 days too) and per change
// regression after planned work; the last 7 days, newest first, at most 100 entries. Every text
// is escaped, and characters XML 1.0 forbids (control characters, lone surrogates) are left out:
// titles come from the config and check names from peers' config files.
import type { JournalChange, JournalIncident, JournalWindow } from './journal.js';
import type { Window } from './maintenance.js';
import { changeNotice, incidentNotice, noticeHeadline, noticeText, windowNotice, type Notice, type NoticeContext } from './notices.js';
import { plainText } from '../config/schema.js';

/** How far back the feed reaches, and how many entries it holds at most. */
export const FEED_WINDOW_MS = 7 * 86_400_000;
export const FEED_ENTRIES = 100;

/** What the feed is made of: the journal's memory of the last FEED_WINDOW_MS, and the config's windows to come. */
export interface FeedSource {
  incidents(since: number): JournalIncident[];
  windows(since: number): JournalWindow[];
  verifications(since: number): JournalChange[];
  /** Whether planned work held the check at `t`: an incident it caused then is no news (the window was), as in the webhooks. */
  plannedAt(check: string, t: number): boolean;
}

/** The feed's notices, newest first, at most FEED_ENTRIES. */
export function feedNotices(journal: FeedSource, upcoming: readonly Window[], now: number): Notice[] {
  const since = now - FEED_WINDOW_MS;
  const out: Notice[] = journal
    .incidents(since)
    .filter((i) => !journal.plannedAt(i.cause, i.since))
    .map(incidentNotice);
  const windows = journal.windows(since);
  out.push(...windows.map(windowNotice));
  const known = new Set(windows.map((w) => w.id));
  for (const w of upcoming) {
    if (known.has(w.id)) continue;
    // A config window is in the feed from when it comes within 7 days: a time that stays put from one fetch to the next.
    const time = Math.min(now, Math.max(w.start - FEED_WINDOW_MS, 0));
    out.push({
      event: 'maintenance.scheduled',
      time,
      window: { id: w.id, title: plainText(w.title), source: w.source, start: w.start, end: w.end, checks: w.checks.slice(0, 100), count: w.checks.length },
    });
  }
  for (const c of journal.verifications(since)) if (c.state === 'regressed') out.push(changeNotice({ ...c, state: 'regressed' }));
  return out.sort((a, b) => b.time - a.time).slice(0, FEED_ENTRIES);
}

export interface FeedInput {
  notices: readonly Notice[];
  context: NoticeContext;
  /** The feed's title (the status page's heading in the feed's language). */
  title: string;
  /** The agent's site, when it has one: part of the feed's and the entries' ids. */
  site?: string | undefined;
  now: number;
}

/** The feed as XML text. */
export function atomFeed(input: FeedInput): string {
  const ctx = input.context;
  const base = ctx.publicUrl;
  const scope = encodeURIComponent(input.site ?? 'agent');
  const updated = input.notices.reduce((t, n) => Math.max(t, n.time), 0) || input.now;
  const links =
    base !== undefined
      ? [
          `<link rel="self" type="application/atom+xml" href="${xml(`${base}/feed.atom`)}"/>`,
          `<link rel="alternate" type="text/html" href="${xml(`${base}/`)}"/>`,
        ]
      : [];
  const entries = input.notices.map((n) => {
    return `<entry>
<id>${xml(`urn:vakt:${scope}:${entryKey(n)}`)}</id>
<title>${xml(noticeHeadline(n, ctx))}</title>
<updated>${iso(n.time)}</updated>
<category term="${xml(n.event)}"/>
<summary type="text">${xml(noticeText(n, ctx))}</summary>${base !== undefined ? `\n<link rel="alternate" type="text/html" href="${xml(`${base}/`)}"/>` : ''}
</entry>`;
  });
  return `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="${ctx.language}">
<id>${xml(base !== undefined ? `${base}/feed.atom` : `urn:vakt:${scope}:feed`)}</id>
<title>${xml(input.title)}</title>
<updated>${iso(updated)}</updated>
<author><name>vakt</name></author>
<generator>vakt</generator>
${links.map((l) => `${l}\n`).join('')}${entries.join('\n')}
</feed>
`;
}

/** An entry's lasting key: one per incident, per window, per regression after a window. */
function entryKey(n: Notice): string {
  if ('incident' in n) return `incident:${encodeURIComponent(n.incident.cause)}:${n.incident.since}`;
  if ('window' in n) return `maintenance:${encodeURIComponent(n.window.id)}`;
  return `change:${encodeURIComponent(n.change.window)}:${encodeURIComponent(n.change.check)}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Characters XML 1.0 does not allow anywhere, escaped or not (C0 controls but tab, LF, CR; lone surrogates; U+FFFE, U+FFFF). */
const NOT_XML = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text for XML character data and attribute values. */
export function xml(s: string): string {
  return s.replace(NOT_XML, '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);
}
