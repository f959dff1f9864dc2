// What departments are told ("driftinformation"): journal records of incidents, planned work and
// change verification turned into notices. A notice is the facts (names and times); told in a
// language it is a one-line sentence and a short headline, in the status page's languages (en,
// sv, da, nb, fi), and the plain JSON that the webhooks send (agent/notify.ts) and the Atom feed
// (agent/feed.ts) is made of. Documented in docs/api.md ("Notifications").
import type { JournalChange, JournalIncident, JournalRecord, JournalWindow } from './journal.js';
import { LOCALE, type Language } from './status-page.js';
import type { NoticeEvent } from '../config/notify.js';

export { NOTICE_EVENTS, type NoticeEvent } from '../config/notify.js';

/** An incident: its root cause, since when, until when (closed), the checks it takes down. */
export interface IncidentFacts {
  cause: string;
  since: number;
  until?: number;
  /** The checks it takes down (at most 100 named; `count` counts them all). */
  affected: string[];
  count: number;
  reason?: string;
  /** Closed because the agent stopped watching, not because it ended. */
  interrupted?: boolean;
}

/** A window of planned work. */
export interface WindowFacts {
  id: string;
  title: string;
  source: 'config' | 'api';
  start: number;
  end: number;
  /** The checks it covers (at most 100 named; `count` counts them all). */
  checks: string[];
  count: number;
}

/** A change verification's word on one check after one window. */
export interface ChangeFacts {
  window: string;
  title: string;
  check: string;
  ended: number;
  message: string;
}

export type Notice =
  | { event: 'incident.opened' | 'incident.updated' | 'incident.closed'; time: number; incident: IncidentFacts }
  | {
      event: 'maintenance.scheduled' | 'maintenance.started' | 'maintenance.updated' | 'maintenance.ended' | 'maintenance.cancelled';
      time: number;
      window: WindowFacts;
    }
  | { event: 'change.regressed' | 'change.verified'; time: number; change: ChangeFacts };

/** Names a notice carries at most (a 2,000-check DNS outage is one notice, not a 2,000-name one). */
const NAMES = 100;

/** The notice a journal record makes, if it makes one (state changes, agent records and cleared regressions do not). */
export function noticeOf(rec: JournalRecord): Notice | undefined {
  if (rec.type === 'incident') {
    return {
      event: `incident.${rec.event}`,
      time: rec.t,
      incident: {
        cause: rec.cause,
        since: rec.since,
        ...(rec.event === 'closed' ? { until: rec.t } : {}),
        affected: rec.affected.slice(0, NAMES),
        count: rec.count ?? rec.affected.length,
        ...(rec.reason !== undefined ? { reason: rec.reason } : {}),
      },
    };
  }
  if (rec.type === 'maintenance') return { event: `maintenance.${rec.event}`, time: rec.t, window: windowFacts(rec) };
  if (rec.type === 'change' && rec.event !== 'cleared') {
    return {
      event: `change.${rec.event}`,
      time: rec.t,
      change: { window: rec.window, title: rec.title, check: rec.check, ended: rec.ended, message: rec.message },
    };
  }
  return undefined;
}

/** An incident as the journal remembers it, as the notice of where it stands now (the feed's entry). */
export function incidentNotice(i: JournalIncident): Notice {
  const event = i.until !== undefined ? 'incident.closed' : i.updatedAt > i.openedAt ? 'incident.updated' : 'incident.opened';
  return {
    event,
    time: i.updatedAt,
    incident: {
      cause: i.cause,
      since: i.since,
      ...(i.until !== undefined ? { until: i.until } : {}),
      affected: i.affected.slice(0, NAMES),
      count: i.until !== undefined ? i.peakAffected : i.affectedCount,
      ...(i.reason !== undefined ? { reason: i.reason } : {}),
      ...(i.interrupted ? { interrupted: true } : {}),
    },
  };
}

/** A window as the journal remembers it, as the notice of where it stands now (the feed's entry). */
export function windowNotice(w: JournalWindow): Notice {
  const event = w.state === 'started' && w.startedAt !== undefined && w.updatedAt > w.startedAt ? 'updated' : w.state;
  return { event: `maintenance.${event}`, time: w.updatedAt, window: windowFacts(w) };
}

/** A change verification as its notice (the feed's entry). */
export function changeNotice(c: JournalChange & { state: 'regressed' | 'verified' }): Notice {
  return { event: `change.${c.state}`, time: c.t, change: { window: c.window, title: c.title, check: c.check, ended: c.ended, message: c.message } };
}

function windowFacts(w: { id: string; title: string; source: 'config' | 'api'; start: number; end: number; checks: string[]; count?: number }): WindowFacts {
  return { id: w.id, title: w.title, source: w.source, start: w.start, end: w.end, checks: w.checks.slice(0, NAMES), count: w.count ?? w.checks.length };
}

/** How a notice is told: in which language and time zone, with which titles, and where the status page is. */
export interface NoticeContext {
  language: Language;
  /** A check's title in a language (its name when it is no longer configured). */
  titleOf(check: string, language: Language): string;
  /** IANA zone for the times in the sentences; absent: the host's. */
  timeZone?: string | undefined;
  /** The status page as its readers reach it (agent.notify.publicUrl), without a trailing slash. */
  publicUrl?: string | undefined;
  /** The agent's labels (its site). */
  labels: Readonly<Record<string, string>>;
  /** Times on the day of `now` are told without their date (default: the notice's own time). */
  now?: number;
}

interface Texts {
  /** The feed's title when agent.statusPage.title is not set. */
  feed: string;
  /** "n systems affected" besides the cause (n = 0: none other). */
  affected: (n: number) => string;
  /** "n systems" a window covers. */
  systems: (n: number) => string;
  opened: (title: string, since: string, affected: string) => string;
  updated: (title: string, since: string, affected: string) => string;
  closed: (title: string, from: string, to: string) => string;
  /** Closed because monitoring stopped: nobody knows that it works again. */
  interrupted: (title: string, since: string) => string;
  scheduled: (title: string, from: string, to: string, systems: string) => string;
  started: (title: string, to: string, systems: string) => string;
  changed: (title: string, from: string, to: string, systems: string) => string;
  ended: (title: string) => string;
  cancelled: (title: string, from: string, to: string) => string;
  regressed: (check: string, work: string) => string;
  verified: (check: string, work: string) => string;
  headline: { down: (t: string) => string; up: (t: string) => string; planned: (t: string) => string; after: (t: string) => string };
}

const TEXT: Record<Language, Texts> = {
  en: {
    feed: 'Operational notices',
    affected: (n) => (n === 0 ? 'no other systems affected' : n === 1 ? '1 system affected' : `${n} systems affected`),
    systems: (n) => (n === 1 ? '1 system' : `${n} systems`),
    opened: (t, since, a) => `${t} is not working since ${since} — ${a}.`,
    updated: (t, since, a) => `${t} is still not working (since ${since}) — ${a}.`,
    closed: (t, from, to) => `${t} is working again (not working ${from}–${to}).`,
    interrupted: (t, since) => `${t} was not working since ${since} when monitoring stopped.`,
    scheduled: (t, from, to, s) => `Planned work scheduled: ${t}, ${from}–${to} (${s}).`,
    started: (t, to, s) => `Planned work started: ${t}, until ${to} (${s}).`,
    changed: (t, from, to, s) => `Planned work changed: ${t}, now ${from}–${to} (${s}).`,
    ended: (t) => `Planned work ended: ${t}.`,
    cancelled: (t, from, to) => `Planned work cancelled: ${t} (${from}–${to}).`,
    regressed: (c, w) => `${c} works worse than before the planned work ${w}.`,
    verified: (c, w) => `${c} works as before the planned work ${w}.`,
    headline: {
      down: (t) => `${t}: not working`,
      up: (t) => `${t}: working again`,
      planned: (t) => `Planned work: ${t}`,
      after: (t) => `After planned work: ${t}`,
    },
  },
  sv: {
    feed: 'Driftinformation',
    affected: (n) => (n === 0 ? 'inga andra system påverkas' : n === 1 ? '1 system påverkas' : `${n} system påverkas`),
    systems: (n) => `${n} system`,
    opened: (t, since, a) => `${t} fungerar inte sedan ${since} — ${a}.`,
    updated: (t, since, a) => `${t} fungerar fortfarande inte (sedan ${since}) — ${a}.`,
    closed: (t, from, to) => `${t} fungerar igen (fungerade inte ${from}–${to}).`,
    interrupted: (t, since) => `${t} fungerade inte sedan ${since} när övervakningen stoppades.`,
    scheduled: (t, from, to, s) => `Nytt planerat arbete: ${t}, ${from}–${to} (${s}).`,
    started: (t, to, s) => `Planerat arbete har börjat: ${t}, till ${to} (${s}).`,
    changed: (t, from, to, s) => `Planerat arbete ändrat: ${t}, nu ${from}–${to} (${s}).`,
    ended: (t) => `Planerat arbete avslutat: ${t}.`,
    cancelled: (t, from, to) => `Planerat arbete inställt: ${t} (${from}–${to}).`,
    regressed: (c, w) => `${c} fungerar sämre än före det planerade arbetet ${w}.`,
    verified: (c, w) => `${c} fungerar som före det planerade arbetet ${w}.`,
    headline: {
      down: (t) => `${t}: fungerar inte`,
      up: (t) => `${t}: fungerar igen`,
      planned: (t) => `Planerat arbete: ${t}`,
      after: (t) => `Efter planerat arbete: ${t}`,
    },
  },
  da: {
    feed: 'Driftinformation',
    affected: (n) => (n === 0 ? 'ingen andre systemer berørt' : n === 1 ? '1 system berørt' : `${n} systemer berørt`),
    systems: (n) => `${n} ${n === 1 ? 'system' : 'systemer'}`,
    opened: (t, since, a) => `${t} virker ikke siden ${since} — ${a}.`,
    updated: (t, since, a) => `${t} virker stadig ikke (siden ${since}) — ${a}.`,
    closed: (t, from, to) => `${t} virker igen (virkede ikke ${from}–${to}).`,
    interrupted: (t, since) => `${t} virkede ikke siden ${since}, da overvågningen stoppede.`,
    scheduled: (t, from, to, s) => `Nyt planlagt arbejde: ${t}, ${from}–${to} (${s}).`,
    started: (t, to, s) => `Planlagt arbejde er begyndt: ${t}, til ${to} (${s}).`,
    changed: (t, from, to, s) => `Planlagt arbejde ændret: ${t}, nu ${from}–${to} (${s}).`,
    ended: (t) => `Planlagt arbejde afsluttet: ${t}.`,
    cancelled: (t, from, to) => `Planlagt arbejde aflyst: ${t} (${from}–${to}).`,
    regressed: (c, w) => `${c} virker dårligere end før det planlagte arbejde ${w}.`,
    verified: (c, w) => `${c} virker som før det planlagte arbejde ${w}.`,
    headline: {
      down: (t) => `${t}: virker ikke`,
      up: (t) => `${t}: virker igen`,
      planned: (t) => `Planlagt arbejde: ${t}`,
      after: (t) => `Efter planlagt arbejde: ${t}`,
    },
  },
  nb: {
    feed: 'Driftsinformasjon',
    affected: (n) => (n === 0 ? 'ingen andre systemer berørt' : n === 1 ? '1 system berørt' : `${n} systemer berørt`),
    systems: (n) => `${n} ${n === 1 ? 'system' : 'systemer'}`,
    opened: (t, since, a) => `${t} fungerer ikke siden ${since} — ${a}.`,
    updated: (t, since, a) => `${t} fungerer fortsatt ikke (siden ${since}) — ${a}.`,
    closed: (t, from, to) => `${t} fungerer igjen (fungerte ikke ${from}–${to}).`,
    interrupted: (t, since) => `${t} fungerte ikke siden ${since} da overvåkingen stoppet.`,
    scheduled: (t, from, to, s) => `Nytt planlagt arbeid: ${t}, ${from}–${to} (${s}).`,
    started: (t, to, s) => `Planlagt arbeid har startet: ${t}, til ${to} (${s}).`,
    changed: (t, from, to, s) => `Planlagt arbeid endret: ${t}, nå ${from}–${to} (${s}).`,
    ended: (t) => `Planlagt arbeid avsluttet: ${t}.`,
    cancelled: (t, from, to) => `Planlagt arbeid avlyst: ${t} (${from}–${to}).`,
    regressed: (c, w) => `${c} fungerer dårligere enn før det planlagte arbeidet ${w}.`,
    verified: (c, w) => `${c} fungerer som før det planlagte arbeidet ${w}.`,
    headline: {
      down: (t) => `${t}: fungerer ikke`,
      up: (t) => `${t}: fungerer igjen`,
      planned: (t) => `Planlagt arbeid: ${t}`,
      after: (t) => `Etter planlagt arbeid: ${t}`,
    },
  },
  fi: {
    feed: 'Käyttötiedotteet',
    affected: (n) => (n === 0 ? 'ei vaikuta muihin järjestelmiin' : `koskee myös ${n} järjestelmää`),
    systems: (n) => `${n} ${n === 1 ? 'järjestelmä' : 'järjestelmää'}`,
    // Finnish puts "since" after the time: "03.02 alkaen".
    opened: (t, since, a) => `${t} ei toimi ${since} alkaen — ${a}.`,
    updated: (t, since, a) => `${t} ei edelleenkään toimi (${since} alkaen) — ${a}.`,
    closed: (t, from, to) => `${t} toimii taas (ei toiminut ${from}–${to}).`,
    interrupted: (t, since) => `${t} ei toiminut ${since} alkaen, kun valvonta keskeytyi.`,
    scheduled: (t, from, to, s) => `Uusi suunniteltu huoltotyö: ${t}, ${from}–${to} (${s}).`,
    started: (t, to, s) => `Suunniteltu huoltotyö alkoi: ${t}, ${to} asti (${s}).`,
    changed: (t, from, to, s) => `Suunniteltua huoltotyötä muutettu: ${t}, nyt ${from}–${to} (${s}).`,
    ended: (t) => `Suunniteltu huoltotyö päättyi: ${t}.`,
    cancelled: (t, from, to) => `Suunniteltu huoltotyö peruttu: ${t} (${from}–${to}).`,
    regressed: (c, w) => `${c} toimii huonommin kuin ennen suunniteltua huoltotyötä ${w}.`,
    verified: (c, w) => `${c} toimii kuten ennen suunniteltua huoltotyötä ${w}.`,
    headline: {
      down: (t) => `${t}: ei toimi`,
      up: (t) => `${t}: toimii taas`,
      planned: (t) => `Suunniteltu huoltotyö: ${t}`,
      after: (t) => `Huoltotyön jälkeen: ${t}`,
    },
  },
};

/** The feed's title in a language: the status page's heading when one is configured, else "Operational notices" (from the site, when there is one). */
export function feedTitle(language: Language, configured: string | undefined, site: string | undefined): string {
  return configured ?? `${TEXT[language].feed}${site !== undefined ? ` (${site})` : ''}`;
}

/** A notice as one sentence for people ("Internal DNS is not working since 03:02 — 14 systems affected."). */
export function noticeText(n: Notice, ctx: NoticeContext): string {
  const t = TEXT[ctx.language];
  const when = timeTeller(ctx, n.time);
  if ('incident' in n) {
    const i = n.incident;
    const title = ctx.titleOf(i.cause, ctx.language);
    if (n.event === 'incident.closed') return i.interrupted ? t.interrupted(title, when(i.since)) : t.closed(title, when(i.since), when(i.until ?? n.time));
    return (n.event === 'incident.opened' ? t.opened : t.updated)(title, when(i.since), t.affected(i.count));
  }
  if ('window' in n) {
    const w = n.window;
    const systems = t.systems(w.count);
    switch (n.event) {
      case 'maintenance.scheduled':
        return t.scheduled(w.title, when(w.start), when(w.end), systems);
      case 'maintenance.started':
        return t.started(w.title, when(w.end), systems);
      case 'maintenance.updated':
        return t.changed(w.title, when(w.start), when(w.end), systems);
      case 'maintenance.ended':
        return t.ended(w.title);
      case 'maintenance.cancelled':
        return t.cancelled(w.title, when(w.start), when(w.end));
    }
  }
  const c = n.change;
  return (n.event === 'change.regressed' ? t.regressed : t.verified)(ctx.titleOf(c.check, ctx.language), c.title);
}

/** A notice's headline: what it is about and, for an incident, whether it works ("Internal DNS: not working"). */
export function noticeHeadline(n: Notice, ctx: NoticeContext): string {
  const h = TEXT[ctx.language].headline;
  if ('incident' in n) return (n.event === 'incident.closed' && !n.incident.interrupted ? h.up : h.down)(ctx.titleOf(n.incident.cause, ctx.language));
  if ('window' in n) return h.planned(n.window.title);
  return h.after(ctx.titleOf(n.change.check, ctx.language));
}

/** The plain JSON of a notice: the webhooks' `json` format. Documented in docs/api.md. */
export interface NoticePayload {
  version: 1;
  event: NoticeEvent;
  time: string;
  /** One sentence in the webhook's language. */
  text: string;
  /** A short headline in that language. */
  title: string;
  /** The status page (agent.notify.publicUrl), or null. */
  url: string | null;
  labels: Record<string, string>;
  incident: {
    id: string;
    cause: string;
    title: string;
    checks: string[];
    affected: number;
    reason: string | null;
    started: string;
    ended: string | null;
  } | null;
  window: { id: string; title: string; source: 'config' | 'api'; start: string; end: string; checks: string[]; count: number } | null;
  change: { window: string; title: string; check: string; checkTitle: string; ended: string; message: string } | null;
}

export function noticePayload(n: Notice, ctx: NoticeContext): NoticePayload {
  const iso = (ms: number) => new Date(ms).toISOString();
  const i = 'incident' in n ? n.incident : undefined;
  const w = 'window' in n ? n.window : undefined;
  const c = 'change' in n ? n.change : undefined;
  return {
    version: 1,
    event: n.event,
    time: iso(n.time),
    text: noticeText(n, ctx),
    title: noticeHeadline(n, ctx),
    url: ctx.publicUrl !== undefined ? `${ctx.publicUrl}/` : null,
    labels: { ...ctx.labels },
    incident: i
      ? {
          id: incidentId(i),
          cause: i.cause,
          title: ctx.titleOf(i.cause, ctx.language),
          checks: i.affected,
          affected: i.count,
          reason: i.reason ?? null,
          started: iso(i.since),
          ended: i.until !== undefined ? iso(i.until) : null,
        }
      : null,
    window: w ? { id: w.id, title: w.title, source: w.source, start: iso(w.start), end: iso(w.end), checks: w.checks, count: w.count } : null,
    change: c
      ? { window: c.window, title: c.title, check: c.check, checkTitle: ctx.titleOf(c.check, ctx.language), ended: iso(c.ended), message: c.message }
      : null,
  };
}

/** An incident's id: its cause and when the cause went down ("dns-internal@2026-12-01T03:02:00.000Z"), as the API's window ids read. */
export function incidentId(i: { cause: string; since: number }): string {
  return `${i.cause}@${new Date(i.since).toISOString()}`;
}

/** Tells times as people read them: 03:02 on the day of `now`, with the date on another day ("5 Dec 03:02"). */
function timeTeller(ctx: NoticeContext, fallbackNow: number): (ms: number) => string {
  const locale = LOCALE[ctx.language];
  const zone = ctx.timeZone !== undefined ? { timeZone: ctx.timeZone } : {};
  const day = new Intl.DateTimeFormat('sv-SE', { year: 'numeric', month: '2-digit', day: '2-digit', ...zone });
  const clock = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', ...zone });
  const dated = new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', ...zone });
  const today = day.format(ctx.now ?? fallbackNow);
  return (ms) => (day.format(ms) === today ? clock : dated).format(ms);
}
