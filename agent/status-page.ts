// The status page at "/": the situation picture ("lägesbild") for clinical departments, not
// engineers. Systems grouped by `group`, each in plain words with an icon (colour is never the
// only signal), since when, a latency sparkline; every current problem as one sentence
// ("Internal DNS (ns1) not answering since 03:02 — 14 systems affected"), exactly as many as the
// banner counts. Plain HTML that refreshes itself and needs no JavaScript; in English, Swedish,
// Danish, Norwegian (bokmål) and Finnish, with the titles and group names the config translates.
// It says only what is true: a reason's own words where the state word would mislead (a port
// that must stay blocked answers: "Reachable — should be blocked"; a refused login, with why; a
// certificate about to expire, with its date). No targets, messages or stack traces: only
// titles, states, reasons in plain words, and times.
import { weighted } from './accept.js';
import type { CheckView } from './agent.js';
import type { RunRecord } from './history.js';
import { kindNamed } from '../probes/kinds.js';
import { LANGUAGES, NETWORK_REASONS, type Language } from '../probes/kit/kind.js';
import { median, type CheckState } from './detector.js';
import type { Incident } from './root-cause.js';
import { heldByPlannedWork, type Window } from './maintenance.js';
import { factorText } from './change.js';
import type { MemberTally, ServiceView } from './composite.js';

export type { Language };

/** A text in the config for people to read: one string, or one per language (the first is the plain one). */
export type PageText = string | Readonly<Partial<Record<Language, string>>>;

interface Texts {
  /** The page's heading when agent.statusPage.title is not set. */
  title: string;
  /** The line under the heading, when the agent has a site label and agent.statusPage.subtitle is not set. */
  checkedFrom: (site: string) => string;
  states: Record<CheckState, string>;
  /** "since <time>", the time already marked up. */
  since: (time: string) => string;
  /** The (visually hidden) heading of the "since" column. */
  sinceColumn: string;
  updated: string;
  refresh: (s: number) => string;
  allWell: string;
  /** The summary line: n problems (each listed below it), m systems affected in all. */
  problems: (n: number, systems: number) => string;
  /** "<title> <verb> since <time>" for the root cause of an incident, when its kind has no words of its own. */
  notAnswering: string;
  /** A down check whose failure is not the network's (an error page, a wrong answer): it answers, so it is not "Not reachable". */
  notWorking: string;
  /** A refused login (reason auth), with why in plain words when the kind knows the code. */
  loginRefused: (why: string | undefined) => string;
  /** A certificate inside its expiry warning (degraded: cert_expiring), with its date when the run reported it. */
  certExpires: (date: string | undefined) => string;
  /** A certificate that has expired (reason tls_expired). */
  certExpired: string;
  affected: (n: number) => string;
  system: string;
  status: string;
  recent: string;
  sparkline: (n: number, min: string, max: string, failed: number) => string;
  noData: string;
  incidents: string;
  flapping: string;
  cause: (title: string) => string;
  /** A check down because its root cause is in planned work. */
  causePlanned: (title: string) => string;
  /** For an impaired queue check: how many messages wait, and for how long the oldest. */
  waiting: (n: number, oldest: string | undefined) => string;
  /** The heading of the incidents that ended in the last 7 days (from the journal). */
  earlier: string;
  /** How many checks an ended incident took down at most. */
  wereAffected: (n: number) => string;
  /** An incident that was still open when the agent stopped watching. */
  interrupted: string;
  /** A group's availability over the last 30 days, the percentage already formatted. */
  available: (percent: string) => string;
  /** A check in a planned-work window: "Planned work until 06:00" (the time already marked up). */
  maintenance: (until: string) => string;
  /** The heading of the planned-work section. */
  planned: string;
  /** A window in that section: its title, when (already marked up), how many systems. */
  plannedWindow: (title: string, when: string, n: number) => string;
  /** "until 06:00" and "from 02:00 to 06:00" (times already marked up). */
  until: (time: string) => string;
  fromTo: (from: string, to: string) => string;
  /** A service's members that are not well: "1 of 2 firewall paths down, 1 slow" (noun: the members, plural). */
  members: (t: Pick<MemberTally, 'total' | 'down' | 'slow' | 'held'>, noun: string) => string;
  /** The members' plural when the service does not name it (memberNoun). */
  memberNoun: string;
  /** A service in planned work whose windows' end is not known here. */
  plannedWork: string;
  /** After planned work, a check worse than before it: slower (by a factor, in a step or phase) or failing where it worked. */
  regression: (ended: string, r: { kind: 'slower'; factor: string; step?: string } | { kind: 'failing' }) => string;
}

const TEXT: Record<Language, Texts> = {
  en: {
    members: (m, noun) => memberText(m, (n, what) => `${n} of ${m.total} ${noun} ${what}`, { down: 'down', slow: 'slow', held: 'in planned work' }),
    memberNoun: 'parts',
    plannedWork: 'Planned work',
    title: 'System status',
    checkedFrom: (site) => `Checked from ${site}`,
    states: { unknown: 'Not checked yet', ok: 'Working', degraded: 'Slow', failing: 'Problems, being checked', down: 'Not reachable' },
    since: (time) => `since ${time}`,
    sinceColumn: 'Since',
    updated: 'Last updated',
    refresh: (s) => `This page updates itself every ${s} seconds.`,
    allWell: 'All systems are working.',
    problems: (n, m) => `${n === 1 ? '1 problem' : `${n} problems`} right now${m > n ? ` — ${m} systems affected` : ''}.`,
    notAnswering: 'not working',
    notWorking: 'Not working',
    loginRefused: (why) => `Login refused${why ? ` (${why})` : ''}`,
    certExpires: (date) => (date ? `Certificate expires ${date}` : 'Certificate expires soon'),
    certExpired: 'Certificate expired',
    affected: (n) => (n === 0 ? 'no other systems affected' : n === 1 ? '1 system affected' : `${n} systems affected`),
    system: 'System',
    status: 'Status',
    recent: 'Recent response times',
    sparkline: (n, min, max, failed) => `Response times of the last ${n} checks, ${min} to ${max}${failed > 0 ? `, ${failed} failed` : ''}`,
    noData: 'no data yet',
    incidents: 'Current problems',
    earlier: 'Earlier (last 7 days)',
    wereAffected: (n) => (n === 0 ? 'no other systems affected' : n === 1 ? '1 system affected' : `${n} systems affected`),
    interrupted: 'monitoring stopped before it ended',
    available: (p) => `${p} % available, last 30 days`,
    maintenance: (until) => `Planned work until ${until}`,
    planned: 'Planned work',
    plannedWindow: (title, when, n) => `${title} ${when} (${n === 1 ? '1 system' : `${n} systems`})`,
    until: (time) => `until ${time}`,
    fromTo: (from, to) => `${from}–${to}`,
    regression: (ended, r) =>
      r.kind === 'slower'
        ? `after the planned work ended at ${ended}, ${r.step ? `the step ${r.step} ` : ''}takes ${r.factor} as long as before`
        : `after the planned work ended at ${ended}, it fails; it worked before`,
    flapping: 'unstable',
    cause: (t) => `because ${t} is not working`,
    causePlanned: (t) => `because of planned work on ${t}`,
    waiting: (n, oldest) => `${n === 1 ? '1 message' : `${n} messages`} waiting${oldest ? `, the oldest for ${oldest}` : ''}`,
  },
  sv: {
    members: (m, noun) => memberText(m, (n, what) => `${n} av ${m.total} ${noun} ${what}`, { down: 'nere', slow: 'långsamma', held: 'i planerat arbete' }),
    memberNoun: 'delar',
    plannedWork: 'Planerat arbete',
    title: 'Driftstatus',
    checkedFrom: (site) => `Kontrolleras från ${site}`,
    states: { unknown: 'Inte kontrollerad än', ok: 'Fungerar', degraded: 'Långsam', failing: 'Problem, kontrolleras', down: 'Går inte att nå' },
    since: (time) => `sedan ${time}`,
    sinceColumn: 'Sedan',
    updated: 'Senast uppdaterad',
    refresh: (s) => `Sidan uppdateras automatiskt var ${s}:e sekund.`,
    allWell: 'Alla system fungerar.',
    problems: (n, m) => `${n} problem just nu${m > n ? ` — ${m} system påverkas` : ''}.`,
    notAnswering: 'fungerar inte',
    notWorking: 'Fungerar inte',
    loginRefused: (why) => `Inloggningen nekades${why ? ` (${why})` : ''}`,
    certExpires: (date) => (date ? `Certifikatet går ut ${date}` : 'Certifikatet går snart ut'),
    certExpired: 'Certifikatet har gått ut',
    affected: (n) => (n === 0 ? 'inga andra system påverkas' : n === 1 ? '1 system påverkas' : `${n} system påverkas`),
    system: 'System',
    status: 'Status',
    recent: 'Svarstider senaste tiden',
    sparkline: (n, min, max, failed) => `Svarstider för de senaste ${n} kontrollerna, ${min} till ${max}${failed > 0 ? `, ${failed} misslyckades` : ''}`,
    noData: 'inga data än',
    incidents: 'Aktuella problem',
    earlier: 'Tidigare (senaste 7 dagarna)',
    wereAffected: (n) => (n === 0 ? 'inga andra system påverkades' : n === 1 ? '1 system påverkades' : `${n} system påverkades`),
    interrupted: 'övervakningen stoppades innan det var över',
    available: (p) => `${p} % tillgängligt senaste 30 dagarna`,
    maintenance: (until) => `Planerat arbete till ${until}`,
    planned: 'Planerat arbete',
    plannedWindow: (title, when, n) => `${title} ${when} (${n} system)`,
    until: (time) => `till ${time}`,
    fromTo: (from, to) => `${from}–${to}`,
    regression: (ended, r) =>
      r.kind === 'slower'
        ? `efter det planerade arbetet som slutade ${ended} tar ${r.step ? `steget ${r.step} ` : 'det '}${r.factor} så lång tid som före`
        : `efter det planerade arbetet som slutade ${ended} fungerar det inte; det fungerade före`,
    flapping: 'instabil',
    cause: (t) => `eftersom ${t} inte fungerar`,
    causePlanned: (t) => `på grund av planerat arbete på ${t}`,
    waiting: (n, oldest) => `${n} ${n === 1 ? 'meddelande väntar' : 'meddelanden väntar'}${oldest ? `, det äldsta har väntat ${oldest}` : ''}`,
  },
  da: {
    members: (m, noun) => memberText(m, (n, what) => `${n} af ${m.total} ${noun} ${what}`, { down: 'nede', slow: 'langsomme', held: 'i planlagt arbejde' }),
    memberNoun: 'dele',
    plannedWork: 'Planlagt arbejde',
    title: 'Driftstatus',
    checkedFrom: (site) => `Kontrolleres fra ${site}`,
    states: { unknown: 'Ikke kontrolleret endnu', ok: 'Virker', degraded: 'Langsom', failing: 'Problemer, kontrolleres', down: 'Kan ikke nås' },
    since: (time) => `siden ${time}`,
    sinceColumn: 'Siden',
    updated: 'Senest opdateret',
    refresh: (s) => `Siden opdaterer sig selv hvert ${s}. sekund.`,
    allWell: 'Alle systemer virker.',
    problems: (n, m) => `${n === 1 ? '1 problem' : `${n} problemer`} lige nu${m > n ? ` — ${m} systemer berørt` : ''}.`,
    notAnswering: 'virker ikke',
    notWorking: 'Virker ikke',
    loginRefused: (why) => `Login afvist${why ? ` (${why})` : ''}`,
    certExpires: (date) => (date ? `Certifikatet udløber ${date}` : 'Certifikatet udløber snart'),
    certExpired: 'Certifikatet er udløbet',
    affected: (n) => (n === 0 ? 'ingen andre systemer berørt' : n === 1 ? '1 system berørt' : `${n} systemer berørt`),
    system: 'System',
    status: 'Status',
    recent: 'Svartider for nylig',
    sparkline: (n, min, max, failed) => `Svartider for de seneste ${n} kontroller, ${min} til ${max}${failed > 0 ? `, ${failed} fejlede` : ''}`,
    noData: 'ingen data endnu',
    incidents: 'Aktuelle problemer',
    earlier: 'Tidligere (de seneste 7 dage)',
    wereAffected: (n) => (n === 0 ? 'ingen andre systemer blev berørt' : n === 1 ? '1 system blev berørt' : `${n} systemer blev berørt`),
    interrupted: 'overvågningen stoppede, før det var slut',
    available: (p) => `${p} % tilgængeligt de seneste 30 dage`,
    maintenance: (until) => `Planlagt arbejde til ${until}`,
    planned: 'Planlagt arbejde',
    plannedWindow: (title, when, n) => `${title} ${when} (${n} ${n === 1 ? 'system' : 'systemer'})`,
    until: (time) => `til ${time}`,
    fromTo: (from, to) => `${from}–${to}`,
    regression: (ended, r) =>
      r.kind === 'slower'
        ? `efter det planlagte arbejde, der sluttede ${ended}, tager ${r.step ? `trinnet ${r.step} ` : 'det '}${r.factor} så lang tid som før`
        : `efter det planlagte arbejde, der sluttede ${ended}, virker det ikke; det virkede før`,
    flapping: 'ustabil',
    cause: (t) => `fordi ${t} ikke virker`,
    causePlanned: (t) => `på grund af planlagt arbejde på ${t}`,
    waiting: (n, oldest) => `${n} ${n === 1 ? 'besked venter' : 'beskeder venter'}${oldest ? `, den ældste har ventet ${oldest}` : ''}`,
  },
  nb: {
    members: (m, noun) => memberText(m, (n, what) => `${n} av ${m.total} ${noun} ${what}`, { down: 'nede', slow: 'trege', held: 'i planlagt arbeid' }),
    memberNoun: 'deler',
    plannedWork: 'Planlagt arbeid',
    title: 'Driftsstatus',
    checkedFrom: (site) => `Kontrolleres fra ${site}`,
    states: { unknown: 'Ikke kontrollert ennå', ok: 'Fungerer', degraded: 'Treg', failing: 'Problemer, undersøkes', down: 'Ikke tilgjengelig' },
    since: (time) => `siden ${time}`,
    sinceColumn: 'Siden',
    updated: 'Sist oppdatert',
    refresh: (s) => `Siden oppdaterer seg selv hvert ${s}. sekund.`,
    allWell: 'Alle systemer fungerer.',
    problems: (n, m) => `${n === 1 ? '1 problem' : `${n} problemer`} akkurat nå${m > n ? ` — ${m} systemer berørt` : ''}.`,
    notAnswering: 'fungerer ikke',
    notWorking: 'Fungerer ikke',
    loginRefused: (why) => `Innlogging avvist${why ? ` (${why})` : ''}`,
    certExpires: (date) => (date ? `Sertifikatet utløper ${date}` : 'Sertifikatet utløper snart'),
    certExpired: 'Sertifikatet er utløpt',
    affected: (n) => (n === 0 ? 'ingen andre systemer berørt' : n === 1 ? '1 system berørt' : `${n} systemer berørt`),
    system: 'System',
    status: 'Status',
    recent: 'Svartider siste tiden',
    sparkline: (n, min, max, failed) => `Svartider for de siste ${n} kontrollene, ${min} til ${max}${failed > 0 ? `, ${failed} feilet` : ''}`,
    noData: 'ingen data ennå',
    incidents: 'Aktuelle problemer',
    earlier: 'Tidligere (siste 7 dager)',
    wereAffected: (n) => (n === 0 ? 'ingen andre systemer ble berørt' : n === 1 ? '1 system ble berørt' : `${n} systemer ble berørt`),
    interrupted: 'overvåkingen stoppet før det var over',
    available: (p) => `${p} % tilgjengelig siste 30 dager`,
    maintenance: (until) => `Planlagt arbeid til ${until}`,
    planned: 'Planlagt arbeid',
    plannedWindow: (title, when, n) => `${title} ${when} (${n} ${n === 1 ? 'system' : 'systemer'})`,
    until: (time) => `til ${time}`,
    fromTo: (from, to) => `${from}–${to}`,
    regression: (ended, r) =>
      r.kind === 'slower'
        ? `etter det planlagte arbeidet som sluttet ${ended}, tar ${r.step ? `steget ${r.step} ` : 'det '}${r.factor} så lang tid som før`
        : `etter det planlagte arbeidet som sluttet ${ended}, virker det ikke; det virket før`,
    flapping: 'ustabil',
    cause: (t) => `fordi ${t} ikke fungerer`,
    causePlanned: (t) => `på grunn av planlagt arbeid på ${t}`,
    waiting: (n, oldest) => `${n} ${n === 1 ? 'melding venter' : 'meldinger venter'}${oldest ? `, den eldste har ventet i ${oldest}` : ''}`,
  },
  fi: {
    // Finnish puts the members first: "palomuurireitit: 1/2 ei toimi".
    members: (m, noun) => `${noun}: ${memberText(m, (n, what) => `${n}/${m.total} ${what}`, { down: 'ei toimi', slow: 'hidas', held: 'huoltotyössä' })}`,
    memberNoun: 'osat',
    plannedWork: 'Suunniteltu huoltotyö',
    title: 'Järjestelmien tila',
    checkedFrom: (site) => `Tarkistuspaikka: ${site}`,
    states: { unknown: 'Ei vielä tarkistettu', ok: 'Toimii', degraded: 'Hidas', failing: 'Ongelmia, tarkistetaan', down: 'Ei tavoitettavissa' },
    // Finnish puts it after the time: "03.02 alkaen".
    since: (time) => `${time} alkaen`,
    sinceColumn: 'Alkaen',
    updated: 'Päivitetty',
    refresh: (s) => `Sivu päivittyy itsestään ${s} sekunnin välein.`,
    allWell: 'Kaikki järjestelmät toimivat.',
    problems: (n, m) => `${n === 1 ? '1 häiriö' : `${n} häiriötä`} juuri nyt${m > n ? ` — ${n === 1 ? 'koskee' : 'koskevat'} ${m} järjestelmää` : ''}.`,
    notAnswering: 'ei toimi',
    notWorking: 'Ei toimi',
    loginRefused: (why) => `Kirjautuminen hylättiin${why ? ` (${why})` : ''}`,
    certExpires: (date) => (date ? `Varmenne vanhenee ${date}` : 'Varmenne vanhenee pian'),
    certExpired: 'Varmenne on vanhentunut',
    affected: (n) => (n === 0 ? 'ei vaikuta muihin järjestelmiin' : `koskee myös ${n} järjestelmää`),
    system: 'Järjestelmä',
    status: 'Tila',
    recent: 'Viimeaikaiset vasteajat',
    sparkline: (n, min, max, failed) => `Viimeisten ${n} tarkistuksen vasteajat, ${min}–${max}${failed > 0 ? `, ${failed} epäonnistui` : ''}`,
    noData: 'ei vielä tietoja',
    incidents: 'Ajankohtaiset häiriöt',
    earlier: 'Aiemmin (viimeiset 7 päivää)',
    wereAffected: (n) => (n === 0 ? 'ei vaikuttanut muihin järjestelmiin' : `vaikutti myös ${n} järjestelmään`),
    interrupted: 'valvonta keskeytyi ennen häiriön päättymistä',
    available: (p) => `${p} % käytettävissä viimeisten 30 päivän aikana`,
    maintenance: (until) => `Suunniteltu huoltotyö ${until} asti`,
    planned: 'Suunnitellut huoltotyöt',
    plannedWindow: (title, when, n) => `${title} ${when} (${n} ${n === 1 ? 'järjestelmä' : 'järjestelmää'})`,
    until: (time) => `${time} asti`,
    fromTo: (from, to) => `${from}–${to}`,
    regression: (ended, r) =>
      r.kind === 'slower'
        ? `klo ${ended} päättyneen huoltotyön jälkeen ${r.step ? `vaihe ${r.step} ` : ''}kestää ${r.factor} niin kauan kuin ennen`
        : `klo ${ended} päättyneen huoltotyön jälkeen se ei toimi; ennen se toimi`,
    flapping: 'epävakaa',
    cause: (t) => `koska ${t} ei toimi`,
    causePlanned: (t) => `kohteen ${t} suunnitellun huoltotyön vuoksi`,
    waiting: (n, oldest) => `${n} ${n === 1 ? 'viesti odottaa' : 'viestiä odottaa'}${oldest ? `, vanhin on odottanut ${oldest}` : ''}`,
  },
};

/**
 * The members not well, as one phrase: the first count in full ("1 of 2 firewall paths down"),
 * the others short (", 1 slow"); empty when all are well.
 */
function memberText(
  m: Pick<MemberTally, 'down' | 'slow' | 'held'>,
  full: (n: number, what: string) => string,
  words: { down: string; slow: string; held: string },
): string {
  const parts = (['down', 'slow', 'held'] as const).filter((k) => m[k] > 0);
  return parts.map((k, i) => (i === 0 ? full(m[k], words[k]) : `${m[k]} ${words[k]}`)).join(', ');
}

/** Each language's locale, for times and sorting. */
export const LOCALE: Record<Language, string> = { en: 'en-GB', sv: 'sv-SE', da: 'da-DK', nb: 'nb-NO', fi: 'fi-FI' };

/** Language tags (their first subtag) the page speaks: Norwegian in any form (nb, nn, no) reads bokmål. */
const TAGS: ReadonlyMap<string, Language> = new Map([...LANGUAGES.map((l) => [l, l] as const), ['nn', 'nb'], ['no', 'nb']]);

const ICON: Record<CheckState, string> = { unknown: '○', ok: '✓', degraded: '◐', failing: '!', down: '✕' };

/**
 * The language for a request: `?lang=` when it names one, else the configured one, else the best
 * match of Accept-Language (English when none matches).
 */
export function pickLanguage(configured: 'auto' | Language, acceptLanguage: string | undefined, asked?: string | null): Language {
  const own = asked ? TAGS.get(asked.toLowerCase()) : undefined;
  if (own) return own;
  if (configured !== 'auto') return configured;
  const prefs = weighted(acceptLanguage)
    .filter((p) => p.q > 0)
    .sort((a, b) => b.q - a.q);
  for (const { value: tag } of prefs) {
    const language = TAGS.get(tag.split('-')[0] ?? '');
    if (language) return language;
  }
  return 'en';
}

/** A page text in a language: its own entry, else the plain text (a string, or a map's first entry). */
export function inLanguage(text: PageText, language: Language): string {
  return typeof text === 'string' ? text : (text[language] ?? Object.values(text)[0] ?? '');
}

export interface StatusPageInput {
  checks: readonly CheckView[];
  incidents: readonly Incident[];
  labels: Record<string, string>;
  /** agent.statusPage.title; absent: "System status" in the page's language. */
  title?: PageText | undefined;
  /** agent.statusPage.subtitle; absent: the site the checks run from, when the agent has one. */
  subtitle?: PageText | undefined;
  /** agent.statusPage.groups: group names in other languages, by the name the checks use. */
  groups?: Readonly<Record<string, Readonly<Partial<Record<Language, string>>>>> | undefined;
  language: Language;
  refreshSeconds: number;
  /** Incidents that ended in the last 7 days (the journal's), oldest first. */
  earlier?: readonly EarlierIncident[] | undefined;
  /** Availability over the last 30 days by group (0…1), from the journal; a group without a figure shows none. */
  availability?: ReadonlyMap<string, number> | undefined;
  /** Planned work open now and to come (agent/maintenance.ts). */
  planned?: { open: readonly Window[]; upcoming: readonly Window[] } | undefined;
  /** Services made of redundant checks (agent/composite.ts): each one row in its group, in place of its members. */
  services?: readonly ServiceView[] | undefined;
  now?: number;
  timeZone?: string;
}

/** An incident that ended, as the page tells it: "Internal DNS not answering 03:02–06:40, 41 systems affected". */
export interface EarlierIncident {
  cause: string;
  since: number;
  until: number;
  peakAffected: number;
  interrupted?: boolean | undefined;
}

/** What the page says of one check: its state in words, and whether those are a reason's own (not the bare state's). */
interface Said {
  word: string;
  reason: boolean;
}

export function statusPage(input: StatusPageInput): string {
  const lang = input.language;
  const t = TEXT[lang];
  const now = input.now ?? Date.now();
  const time = (ms: number, ref = now) => `<time datetime="${iso(ms)}">${formatTime(ms, ref, lang, input.timeZone)}</time>`;
  const byName = new Map(input.checks.map((v) => [v.config.name, v]));
  const title = (name: string) => {
    const v = byName.get(name);
    return v ? (v.config.titles?.[lang] ?? v.config.title) : name;
  };
  const said = (v: CheckView): Said => say(v, lang, input.timeZone);
  const groupName = (group: string) => (input.groups && Object.hasOwn(input.groups, group) ? input.groups[group]?.[lang] : undefined) ?? group;
  // A service is one row in its group, in place of its members (they are told of in its note).
  const services = input.services ?? [];
  const serviceOf = new Map<string, ServiceView>();
  for (const sv of services) for (const m of sv.config.members) serviceOf.set(m, sv);
  const groups = new Map<string, { checks: CheckView[]; services: ServiceView[] }>();
  const groupOf = (group: string) => {
    let g = groups.get(group);
    if (!g) groups.set(group, (g = { checks: [], services: [] }));
    return g;
  };
  for (const v of input.checks) if (!serviceOf.has(v.config.name)) groupOf(v.config.group).checks.push(v);
  for (const sv of services) groupOf(sv.config.group).services.push(sv);

  // Every problem is listed, and the banner counts the list: one per incident (however many
  // checks it takes down: "one alert, not a hundred" holds for people too), then every other
  // impaired check (failing, degraded, or down for a cause no incident names, or worse than
  // before planned work). Planned work is no problem: a check in a window, or down because of
  // one that is, is told of under "Planned work". A service counts once, as its row shows it
  // (degraded, failing, down); its members never count on their own, nor does the incident of a
  // member that takes no other check down.
  const planned = (v: CheckView) => heldByPlannedWork(v, (n) => byName.get(n));
  const impaired = input.checks.filter(
    (v) =>
      !serviceOf.has(v.config.name) &&
      !planned(v) &&
      (v.status.state === 'down' || v.status.state === 'failing' || v.status.state === 'degraded' || v.change !== undefined),
  );
  const incidents = input.incidents.filter((i) => byName.get(i.cause)?.maintenance === undefined && !(serviceOf.has(i.cause) && i.affected.length === 0));
  const incidentCauses = new Set(incidents.map((i) => i.cause));
  const others = impaired
    .filter((v) => !(v.cause !== undefined && incidentCauses.has(v.cause)))
    .sort((a, b) => SEVERITY[b.status.state] - SEVERITY[a.status.state] || title(a.config.name).localeCompare(title(b.config.name), LOCALE[lang]));
  const serviceTitle = (sv: ServiceView) => sv.config.titles?.[lang] ?? sv.config.title;
  const troubled = services
    .filter((sv) => sv.state === 'degraded' || sv.state === 'failing' || sv.state === 'down')
    .sort((a, b) => SEVERITY[b.observed] - SEVERITY[a.observed] || serviceTitle(a).localeCompare(serviceTitle(b), LOCALE[lang]));
  const problems = incidents.length + others.length + troubled.length;
  /** A service's state in words: "Working" while enough members work (the note says how many do not). */
  const serviceWord = (sv: ServiceView) => (sv.state === 'degraded' ? t.states.ok : sv.state === 'maintenance' ? t.plannedWork : t.states[sv.state]);
  const serviceNote = (sv: ServiceView) => t.members(sv.tally, inLanguage(sv.config.memberNoun ?? t.memberNoun, lang));
  const regression = (v: CheckView) => {
    const c = v.change;
    if (!c) return undefined;
    const f = c.finding;
    const ended = formatTime(c.ended, now, lang, input.timeZone);
    return f.kind === 'slower'
      ? t.regression(ended, { kind: 'slower', factor: factorText(f.factor), ...(f.what !== 'run' && f.name !== undefined ? { step: esc(f.name) } : {}) })
      : t.regression(ended, { kind: 'failing' });
  };

  const affected = (names: readonly string[]) => `${t.affected(names.length)}${names.length > 0 ? `: ${names.map((a) => esc(title(a))).join(', ')}` : ''}`;
  const listed = [
    ...incidents.map((i) => {
      const cause = byName.get(i.cause);
      const s = cause ? said(cause) : undefined;
      // A reason's own words ("Reachable — should be blocked") say it better than the kind's verb.
      if (s?.reason)
        return `<li><strong>${esc(title(i.cause))}</strong>: ${esc(lowerFirst(s.word, lang))} (${t.since(time(i.since))}) — ${affected(i.affected)}.</li>`;
      const verb = (cause ? kindNamed(cause.config.kind)?.words[lang].notAnswering : undefined) ?? t.notAnswering;
      return `<li><strong>${esc(title(i.cause))}</strong> ${esc(verb)} ${t.since(time(i.since))} — ${affected(i.affected)}.</li>`;
    }),
    ...troubled.map((sv) => {
      const note = serviceNote(sv);
      return `<li><strong>${esc(serviceTitle(sv))}</strong>: ${esc(lowerFirst(serviceWord(sv), lang))}${note ? ` — ${esc(note)}` : ''} (${t.since(time(sv.since))}).</li>`;
    }),
    ...others.map((v) =>
      v.change !== undefined && v.status.state === 'ok'
        ? `<li><strong>${esc(title(v.config.name))}</strong>: ${regression(v)} (${t.since(time(v.change.since))}).</li>`
        : `<li><strong>${esc(title(v.config.name))}</strong>: ${esc(lowerFirst(said(v).word, lang))} (${t.since(time(v.status.since))})${v.change ? `; ${regression(v)}` : ''}.</li>`,
    ),
  ];
  const work = [
    ...(input.planned?.open ?? []).map((w) => ({ w, when: t.until(time(w.end)) })),
    ...(input.planned?.upcoming ?? []).map((w) => ({ w, when: t.fromTo(time(w.start), time(w.end, w.start)) })),
  ].map(({ w, when }) => `<li>${t.plannedWindow(`<strong>${esc(inLanguage(w.title, lang))}</strong>`, when, w.checks.length)}</li>`);

  const earlier = (input.earlier ?? []).map((i) => {
    const cause = byName.get(i.cause);
    const verb = (cause ? kindNamed(cause.config.kind)?.words[lang].notAnswering : undefined) ?? t.notAnswering;
    return `<li><strong>${esc(title(i.cause))}</strong> ${esc(verb)} ${time(i.since)}–${time(i.until, i.since)}, ${esc(t.wereAffected(i.peakAffected))}${i.interrupted ? ` (${esc(t.interrupted)})` : ''}.</li>`;
  });
  const percent = (ratio: number) =>
    new Intl.NumberFormat(LOCALE[lang], { minimumFractionDigits: ratio >= 1 ? 0 : 2, maximumFractionDigits: 2 }).format(Math.floor(ratio * 10_000) / 100);

  const sections = [...groups.entries()]
    .map(([group, list]) => ({ group, name: groupName(group), list }))
    .sort((a, b) => a.name.localeCompare(b.name, LOCALE[lang]))
    .map(({ group, name, list }) => {
      const id = `g-${slug(group)}`;
      const serviceRows = list.services.map((sv) => {
        const held = sv.state === 'maintenance';
        // The end of the planned work, when a member's window says it (a member held by its root cause's window does not).
        const ends = sv.config.members.flatMap((m) => {
          const end = byName.get(m)?.maintenance?.end;
          return end === undefined ? [] : [end];
        });
        const word = held && ends.length > 0 ? t.maintenance(time(Math.max(...ends))) : esc(serviceWord(sv));
        const note = serviceNote(sv);
        const html = `<tr class="s-${held ? 'maintenance' : sv.state}">
<th scope="row">${esc(serviceTitle(sv))}</th>
<td><span class="icon" aria-hidden="true">${sv.state === 'maintenance' ? '◇' : ICON[sv.state]}</span> <span class="word">${word}</span>${note ? ` <span class="note">(${esc(note)})</span>` : ''}</td>
<td>${sv.state === 'unknown' ? '' : t.since(time(sv.since))}</td>
<td></td>
</tr>`;
        return { title: serviceTitle(sv), html };
      });
      const rows = list.checks
        .map((v) => ({ v, title: title(v.config.name) }))
        .map(({ v, title: shown }) => {
          const state = v.status.state;
          const cause = v.cause && v.cause !== v.config.name ? title(v.cause) : undefined;
          const held = v.maintenance;
          // In planned work the state's word goes in the note: the runs go on, and what they see is no secret.
          const observed = held && state !== 'ok' && state !== 'unknown' ? esc(lowerFirst(said(v).word, lang)) : undefined;
          const causeNote = cause ? (byName.get(v.cause ?? '')?.maintenance ? t.causePlanned(esc(cause)) : t.cause(esc(cause))) : undefined;
          const extra = [observed, causeNote, queueNote(v, t), regression(v), v.status.flapping ? t.flapping : undefined].filter(Boolean).join('; ');
          const word = held ? t.maintenance(time(held.end)) : esc(said(v).word);
          const html = `<tr class="s-${held ? 'maintenance' : v.change && state === 'ok' ? 'degraded' : state}">
<th scope="row">${esc(shown)}</th>
<td><span class="icon" aria-hidden="true">${held ? '◇' : ICON[state]}</span> <span class="word">${word}</span>${extra ? ` <span class="note">(${extra})</span>` : ''}</td>
<td>${state === 'unknown' ? '' : t.since(time(v.status.since))}</td>
<td>${sparkline(v.history.records(), t)}</td>
</tr>`;
          return { title: shown, html };
        })
        .concat(serviceRows)
        .sort((a, b) => a.title.localeCompare(b.title, LOCALE[lang]))
        .map((r) => r.html)
        .join('\n');
      return `<section aria-labelledby="${id}">
<h2 id="${id}">${esc(name)}</h2>${input.availability?.has(group) ? `\n<p class="availability">${esc(t.available(percent(input.availability.get(group) as number)))}</p>` : ''}
<table>
<thead><tr><th scope="col">${t.system}</th><th scope="col">${t.status}</th><th scope="col"><span class="visually-hidden">${t.sinceColumn}</span></th><th scope="col">${t.recent}</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</section>`;
    })
    .join('\n');

  const heading = input.title !== undefined ? inLanguage(input.title, lang) : t.title;
  const subtitle = input.subtitle !== undefined ? inLanguage(input.subtitle, lang) : input.labels.site ? t.checkedFrom(input.labels.site) : undefined;
  // Red while anything is down or failing; amber when all that is wrong is degraded.
  const broken = (state: string) => state === 'down' || state === 'failing';
  const tone = problems === 0 ? 'ok' : impaired.some((v) => broken(v.status.state)) || troubled.some((sv) => broken(sv.state)) ? 'bad' : 'warn';
  return `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${input.refreshSeconds}">
<title>${problems > 0 ? `(${problems}) ` : ''}${esc(heading)}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1rem 1.5rem;color:#1b1b1b;max-width:64rem;line-height:1.4}
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
.subtitle{margin:-.25rem 0 .75rem;color:#444}
.summary{font-size:1.15rem;padding:.75rem 1rem;border-radius:.4rem;border:2px solid}
.summary.ok{background:#e8f5ec;border-color:#0a6b2d}.summary.bad{background:#fdecea;border-color:#b00020}.summary.warn{background:#fff4e0;border-color:#8a4b00}
.incidents li{margin:.4rem 0}
table{border-collapse:collapse;width:100%;table-layout:fixed}
thead th:nth-child(1){width:38%}thead th:nth-child(2){width:30%}thead th:nth-child(3){width:12%}thead th:nth-child(4){width:140px}
td:nth-child(3){white-space:nowrap}
@media (max-width:40rem){body{padding:.75rem}thead th:nth-child(4),td:nth-child(4){display:none}thead th:nth-child(1){width:40%}thead th:nth-child(3){width:28%}td:nth-child(3){white-space:normal}th,td{padding:.4rem .35rem}}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #d0d0d0;vertical-align:middle}
thead th{font-size:.85rem;color:#444}
.icon{display:inline-block;width:1.3em;text-align:center;font-weight:700}
.s-ok .icon,.s-ok .word{color:#0a6b2d}
.s-degraded .icon,.s-degraded .word,.s-failing .icon,.s-failing .word{color:#8a4b00;font-weight:600}
.s-down .icon,.s-down .word{color:#b00020;font-weight:700}
.s-unknown .word{color:#555}
.s-maintenance .icon,.s-maintenance .word{color:#1f4e8c;font-weight:600}
.planned li{margin:.3rem 0}
.note{color:#444;font-size:.9rem}
.availability{margin:-.4rem 0 .4rem;color:#444;font-size:.9rem}
.earlier li{margin:.3rem 0;color:#333}
svg.spark{vertical-align:middle}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
footer{margin-top:2rem;color:#444;font-size:.9rem}
</style>
</head>
<body>
<header>
<h1>${esc(heading)}</h1>
${subtitle ? `<p class="subtitle">${esc(subtitle)}</p>\n` : ''}<p class="summary ${tone}" role="status">${problems > 0 ? t.problems(problems, impaired.length + troubled.length) : t.allWell}</p>
</header>
<main>
${listed.length > 0 ? `<section aria-labelledby="incidents"><h2 id="incidents">${t.incidents}</h2><ul class="incidents">\n${listed.join('\n')}\n</ul></section>` : ''}
${work.length > 0 ? `<section aria-labelledby="planned"><h2 id="planned">${t.planned}</h2><ul class="planned">\n${work.join('\n')}\n</ul></section>` : ''}
${sections}
${earlier.length > 0 ? `<section aria-labelledby="earlier"><h2 id="earlier">${t.earlier}</h2><ul class="earlier">\n${earlier.join('\n')}\n</ul></section>` : ''}
</main>
<footer><p>${t.updated} ${time(now)}. ${t.refresh(input.refreshSeconds)}</p></footer>
</body>
</html>
`;
}

/** Problems listed worst first. */
const SEVERITY: Record<CheckState, number> = { unknown: 0, ok: 0, degraded: 1, failing: 2, down: 3 };

/**
 * Inline SVG of recent run durations. Failed runs are full-height translucent red bars and break
 * the line (their durations, often a quick "refused", would make a failure look fast). The scale
 * has a floor so millisecond jitter does not look like a swing.
 */
function sparkline(history: readonly RunRecord[], t: Texts): string {
  if (history.length === 0) return `<span class="note">${t.noData}</span>`;
  const w = 120;
  const h = 24;
  const good = history.filter((r) => r.result !== 'failed').map((r) => r.durationSeconds);
  const lo = good.length > 0 ? Math.min(...good) : 0;
  const hi = good.length > 0 ? Math.max(...good) : 0;
  const top = Math.max(hi, 2 * (good.length > 0 ? median(good) : 0), lo + 0.05, 1e-6);
  const step = history.length > 1 ? w / (history.length - 1) : 0;
  const x = (i: number) => (history.length > 1 ? i * step : w / 2);
  const segments: string[][] = [[]];
  const bars: string[] = [];
  history.forEach((r, i) => {
    if (r.result === 'failed') {
      bars.push(
        `<rect x="${(x(i) - Math.max(1.5, step / 2)).toFixed(1)}" y="0" width="${Math.max(3, step).toFixed(1)}" height="${h}" fill="#b00020" fill-opacity="0.3"/>`,
      );
      segments.push([]);
    } else {
      (segments[segments.length - 1] as string[]).push(`${x(i).toFixed(1)},${(h - 2 - (r.durationSeconds / top) * (h - 6)).toFixed(1)}`);
    }
  });
  const lines = segments
    .filter((p) => p.length > 0)
    .map((p) =>
      p.length === 1
        ? `<circle cx="${p[0]?.split(',')[0]}" cy="${p[0]?.split(',')[1]}" r="1.5" fill="#3a5f8f"/>`
        : `<polyline fill="none" stroke="#3a5f8f" stroke-width="1.5" points="${p.join(' ')}"/>`,
    )
    .join('');
  const label = t.sparkline(history.length, ms(lo), ms(hi), history.length - good.length);
  return `<svg class="spark" role="img" aria-label="${esc(label)}" width="${w}" height="${h}" viewBox="-2 0 ${w + 4} ${h}"><title>${esc(label)}</title>${bars.join('')}${lines}</svg>`;
}

/** An impaired queue check's waiting messages, from its last reading (none once the source is unreadable). */
function queueNote(v: CheckView, t: Texts): string | undefined {
  const queues = v.last?.result.queues;
  if (v.status.state === 'ok' || v.status.state === 'unknown' || !queues || queues.length === 0) return undefined;
  const waiting = queues.reduce((n, q) => n + q.depth, 0);
  if (waiting === 0) return undefined;
  const ages = queues.map((q) => q.oldestAgeSeconds).filter((a): a is number => a !== undefined);
  return esc(t.waiting(waiting, ages.length > 0 ? age(Math.max(...ages)) : undefined));
}

/** A wait as people say it: 40 s, 14 min, 3 h 05 min. */
function age(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  const m = Math.round(seconds / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/**
 * What the page says of a check's state. Down or degraded for a reason whose own words differ
 * from the state's: the kind's words for that reason (a port that must stay blocked answering),
 * a refused login with why, a certificate expired or about to, with its date. Else the kind's
 * word for the state (a variant's first), else the page's; a down check that answers (an error
 * page, a wrong answer) is "Not working", not "Not reachable".
 */
function say(v: CheckView, language: Language, timeZone: string | undefined): Said {
  const t = TEXT[language];
  const state = v.status.state;
  if (state === 'unknown') return { word: t.states.unknown, reason: false };
  const kind = kindNamed(v.config.kind);
  const words = kind?.words[language];
  const result = v.last?.result;
  const failure = state === 'down' ? result?.failure?.reason : undefined;
  const degraded = state === 'degraded' ? result?.degraded?.reason : undefined;
  const reason = failure ?? degraded;
  const own = entry(words?.reasons, reason);
  if (own !== undefined) return { word: own, reason: true };
  if (failure === 'auth') {
    return { word: t.loginRefused(entry(words?.refusals, result?.info?.authCode)), reason: true };
  }
  if (failure === 'tls_expired') return { word: t.certExpired, reason: true };
  if (degraded === 'cert_expiring') {
    const expiry = result?.values?.ssl_earliest_cert_expiry;
    return { word: t.certExpires(expiry !== undefined ? isoDate(expiry * 1000, timeZone) : undefined), reason: true };
  }
  const word = kind?.variantWords?.(v.config.options)?.[language][state] ?? words?.states?.[state];
  if (word !== undefined) return { word, reason: false };
  if (state === 'down' && failure !== undefined && !(NETWORK_REASONS as readonly string[]).includes(failure)) return { word: t.notWorking, reason: false };
  return { word: t.states[state], reason: false };
}

/** A word by a key a run reported (never one of Object.prototype's names). */
function entry(words: Readonly<Record<string, string>> | undefined, key: string | undefined): string | undefined {
  return words && key !== undefined && Object.hasOwn(words, key) ? words[key] : undefined;
}

/** "Reachable — should be blocked" inside a sentence; a word that starts with an abbreviation ("DNS") keeps it. */
function lowerFirst(s: string, language: Language): string {
  const [first = '', second = ''] = s;
  return second !== second.toLocaleUpperCase(LOCALE[language]) ? first.toLocaleLowerCase(LOCALE[language]) + s.slice(first.length) : s;
}

/** A day as YYYY-MM-DD (in the page's time zone): read alike in every language of the page. */
function isoDate(ms: number, timeZone: string | undefined): string {
  return new Intl.DateTimeFormat('sv-SE', { year: 'numeric', month: '2-digit', day: '2-digit', ...(timeZone ? { timeZone } : {}) }).format(ms);
}

function ms(seconds: number): string {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`;
}

/** A time of day, with the date when it is not the day of `ref` (now, or the start of a span) in the page's zone. */
function formatTime(ms: number, ref: number, lang: Language, timeZone: string | undefined): string {
  const locale = LOCALE[lang];
  const zone = timeZone ? { timeZone } : {};
  const opts: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit', ...zone };
  const day = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit', ...zone });
  if (day.format(ms) !== day.format(ref)) Object.assign(opts, { day: 'numeric', month: 'short' });
  return new Intl.DateTimeFormat(locale, opts).format(ms);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}
