// The status page at "/": the situation picture ("lägesbild") for clinical departments, not
// engineers. Systems grouped by `group`, each in plain words with an icon (colour is never the
// only signal), since when, a latency sparkline; open incidents as one sentence each ("Internal
// DNS (ns1) not answering since 03:02 — 14 systems affected"). Plain HTML that refreshes itself
// and needs no JavaScript; English, Swedish and Danish. No targets, messages or stack traces:
// only titles, states and times.
import { weighted } from './accept.js';
import type { CheckView } from './agent.js';
import type { RunRecord } from './history.js';
import { kindNamed } from '../probes/kinds.js';
import type { Language } from '../probes/kit/kind.js';
import { median, type CheckState } from './detector.js';
import type { Incident } from './root-cause.js';

export type { Language };

interface Texts {
  states: Record<CheckState, string>;
  since: string;
  updated: string;
  refresh: (s: number) => string;
  allWell: string;
  /** The summary line: n problems (incidents and other impaired checks), m systems affected in all. */
  problems: (n: number, systems: number) => string;
  /** "<title> <verb> since <time>" for the root cause of an incident, when its kind has no words of its own. */
  notAnswering: string;
  affected: (n: number) => string;
  system: string;
  status: string;
  recent: string;
  sparkline: (n: number, min: string, max: string, failed: number) => string;
  noData: string;
  incidents: string;
  flapping: string;
  cause: (title: string) => string;
  /** For an impaired queue check: how many messages wait, and for how long the oldest. */
  waiting: (n: number, oldest: string | undefined) => string;
}

const TEXT: Record<Language, Texts> = {
  en: {
    states: { unknown: 'Not checked yet', ok: 'Working', degraded: 'Slow', failing: 'Problems, being checked', down: 'Not reachable' },
    since: 'since',
    updated: 'Last updated',
    refresh: (s) => `This page updates itself every ${s} seconds.`,
    allWell: 'All systems are working.',
    problems: (n, m) => `${n === 1 ? '1 problem' : `${n} problems`} right now${m > n ? ` — ${m} systems affected` : ''}.`,
    notAnswering: 'not working',
    affected: (n) => (n === 0 ? 'no other systems affected' : n === 1 ? '1 system affected' : `${n} systems affected`),
    system: 'System',
    status: 'Status',
    recent: 'Recent response times',
    sparkline: (n, min, max, failed) => `Response times of the last ${n} checks, ${min} to ${max}${failed > 0 ? `, ${failed} failed` : ''}`,
    noData: 'no data yet',
    incidents: 'Current problems',
    flapping: 'unstable',
    cause: (t) => `because ${t} is not working`,
    waiting: (n, oldest) => `${n === 1 ? '1 message' : `${n} messages`} waiting${oldest ? `, the oldest for ${oldest}` : ''}`,
  },
  sv: {
    states: { unknown: 'Inte kontrollerad än', ok: 'Fungerar', degraded: 'Långsam', failing: 'Problem, kontrolleras', down: 'Går inte att nå' },
    since: 'sedan',
    updated: 'Senast uppdaterad',
    refresh: (s) => `Sidan uppdateras automatiskt var ${s}:e sekund.`,
    allWell: 'Alla system fungerar.',
    problems: (n, m) => `${n} problem just nu${m > n ? ` — ${m} system påverkas` : ''}.`,
    notAnswering: 'fungerar inte',
    affected: (n) => (n === 0 ? 'inga andra system påverkas' : n === 1 ? '1 system påverkas' : `${n} system påverkas`),
    system: 'System',
    status: 'Status',
    recent: 'Svarstider senaste tiden',
    sparkline: (n, min, max, failed) => `Svarstider för de senaste ${n} kontrollerna, ${min} till ${max}${failed > 0 ? `, ${failed} misslyckades` : ''}`,
    noData: 'inga data än',
    incidents: 'Aktuella problem',
    flapping: 'instabil',
    cause: (t) => `eftersom ${t} inte fungerar`,
    waiting: (n, oldest) => `${n} ${n === 1 ? 'meddelande väntar' : 'meddelanden väntar'}${oldest ? `, det äldsta har väntat ${oldest}` : ''}`,
  },
  da: {
    states: { unknown: 'Ikke kontrolleret endnu', ok: 'Virker', degraded: 'Langsom', failing: 'Problemer, kontrolleres', down: 'Kan ikke nås' },
    since: 'siden',
    updated: 'Senest opdateret',
    refresh: (s) => `Siden opdaterer sig selv hvert ${s}. sekund.`,
    allWell: 'Alle systemer virker.',
    problems: (n, m) => `${n === 1 ? '1 problem' : `${n} problemer`} lige nu${m > n ? ` — ${m} systemer berørt` : ''}.`,
    notAnswering: 'virker ikke',
    affected: (n) => (n === 0 ? 'ingen andre systemer berørt' : n === 1 ? '1 system berørt' : `${n} systemer berørt`),
    system: 'System',
    status: 'Status',
    recent: 'Svartider for nylig',
    sparkline: (n, min, max, failed) => `Svartider for de seneste ${n} kontroller, ${min} til ${max}${failed > 0 ? `, ${failed} fejlede` : ''}`,
    noData: 'ingen data endnu',
    incidents: 'Aktuelle problemer',
    flapping: 'ustabil',
    cause: (t) => `fordi ${t} ikke virker`,
    waiting: (n, oldest) => `${n} ${n === 1 ? 'besked venter' : 'beskeder venter'}${oldest ? `, den ældste har ventet ${oldest}` : ''}`,
  },
};

const ICON: Record<CheckState, string> = { unknown: '○', ok: '✓', degraded: '◐', failing: '!', down: '✕' };

/** The language for a request: the configured one, or the best match of Accept-Language. */
export function pickLanguage(configured: 'auto' | Language, acceptLanguage: string | undefined): Language {
  if (configured !== 'auto') return configured;
  const prefs = weighted(acceptLanguage)
    .filter((p) => p.q > 0)
    .sort((a, b) => b.q - a.q);
  for (const { value: tag } of prefs) {
    const base = tag.split('-')[0];
    if (base === 'sv' || base === 'da' || base === 'en') return base;
    // Norwegian readers get Danish, the closer written language.
    if (base === 'nb' || base === 'no' || base === 'nn') return 'da';
  }
  return 'en';
}

export interface StatusPageInput {
  checks: readonly CheckView[];
  incidents: readonly Incident[];
  labels: Record<string, string>;
  title: string;
  language: Language;
  refreshSeconds: number;
  now?: number;
  timeZone?: string;
}

export function statusPage(input: StatusPageInput): string {
  const t = TEXT[input.language];
  const now = input.now ?? Date.now();
  const time = (ms: number) => formatTime(ms, now, input.language, input.timeZone);
  const byName = new Map(input.checks.map((v) => [v.config.name, v]));
  const groups = new Map<string, CheckView[]>();
  for (const v of input.checks) groups.set(v.config.group, [...(groups.get(v.config.group) ?? []), v]);
  // One problem per incident (however many checks it takes down), plus every other impaired
  // check: "one alert, not a hundred" holds for people too.
  const impaired = input.checks.filter((v) => v.status.state === 'down' || v.status.state === 'failing' || v.status.state === 'degraded');
  const incidentCauses = new Set(input.incidents.map((i) => i.cause));
  const problems = input.incidents.length + impaired.filter((v) => !(v.cause !== undefined && incidentCauses.has(v.cause))).length;

  const incidents = input.incidents.map((i) => {
    const cause = byName.get(i.cause);
    const title = cause?.config.title ?? i.cause;
    const verb = (cause ? kindNamed(cause.config.kind)?.words[input.language].notAnswering : undefined) ?? t.notAnswering;
    return `<li><strong>${esc(title)}</strong> ${esc(verb)} ${t.since} <time datetime="${iso(i.since)}">${time(i.since)}</time> — ${t.affected(i.affected.length)}${
      i.affected.length > 0 ? `: ${i.affected.map((a) => esc(byName.get(a)?.config.title ?? a)).join(', ')}` : ''
    }.</li>`;
  });

  const sections = [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, list]) => {
      const id = `g-${slug(group)}`;
      const rows = list
        .sort((a, b) => a.config.title.localeCompare(b.config.title))
        .map((v) => {
          const state = v.status.state;
          const cause = v.cause && v.cause !== v.config.name ? (byName.get(v.cause)?.config.title ?? v.cause) : undefined;
          const extra = [cause ? t.cause(esc(cause)) : undefined, queueNote(v, t), v.status.flapping ? t.flapping : undefined].filter(Boolean).join('; ');
          return `<tr class="s-${state}">
<th scope="row">${esc(v.config.title)}</th>
<td><span class="icon" aria-hidden="true">${ICON[state]}</span> <span class="word">${stateWord(v, state, input.language) ?? t.states[state]}</span>${extra ? ` <span class="note">(${extra})</span>` : ''}</td>
<td>${state === 'unknown' ? '' : `${t.since} <time datetime="${iso(v.status.since)}">${time(v.status.since)}</time>`}</td>
<td>${sparkline(v.history.records(), t)}</td>
</tr>`;
        })
        .join('\n');
      return `<section aria-labelledby="${id}">
<h2 id="${id}">${esc(group)}</h2>
<table>
<thead><tr><th scope="col">${t.system}</th><th scope="col">${t.status}</th><th scope="col"><span class="visually-hidden">${t.since}</span></th><th scope="col">${t.recent}</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</section>`;
    })
    .join('\n');

  const site = input.labels.site ? ` — ${esc(input.labels.site)}` : '';
  return `<!doctype html>
<html lang="${input.language}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${input.refreshSeconds}">
<title>${problems > 0 ? `(${problems}) ` : ''}${esc(input.title)}${site}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1rem 1.5rem;color:#1b1b1b;max-width:64rem;line-height:1.4}
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
.summary{font-size:1.15rem;padding:.75rem 1rem;border-radius:.4rem;border:2px solid}
.summary.ok{background:#e8f5ec;border-color:#0a6b2d}.summary.bad{background:#fdecea;border-color:#b00020}
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
.note{color:#444;font-size:.9rem}
svg.spark{vertical-align:middle}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
footer{margin-top:2rem;color:#444;font-size:.9rem}
</style>
</head>
<body>
<header>
<h1>${esc(input.title)}${site}</h1>
<p class="summary ${problems > 0 ? 'bad' : 'ok'}" role="status">${problems > 0 ? t.problems(problems, impaired.length) : t.allWell}</p>
</header>
<main>
${incidents.length > 0 ? `<section aria-labelledby="incidents"><h2 id="incidents">${t.incidents}</h2><ul class="incidents">\n${incidents.join('\n')}\n</ul></section>` : ''}
${sections}
</main>
<footer><p>${t.updated} <time datetime="${iso(now)}">${time(now)}</time>. ${t.refresh(input.refreshSeconds)}</p></footer>
</body>
</html>
`;
}

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

/** A kind's own word for a check's state (its variant's first: a port that must stay blocked reads "Blocked as intended"). */
function stateWord(v: CheckView, state: CheckState, language: Language): string | undefined {
  if (state === 'unknown') return undefined;
  const kind = kindNamed(v.config.kind);
  if (!kind) return undefined;
  return kind.variantWords?.(v.config.options)?.[language][state] ?? kind.words[language].states?.[state];
}

function ms(seconds: number): string {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`;
}

function formatTime(ms: number, now: number, lang: Language, timeZone: string | undefined): string {
  const locale = lang === 'en' ? 'en-GB' : lang === 'sv' ? 'sv-SE' : 'da-DK';
  const opts: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit', ...(timeZone ? { timeZone } : {}) };
  const sameDay = new Date(ms).toDateString() === new Date(now).toDateString();
  if (!sameDay) Object.assign(opts, { day: 'numeric', month: 'short' });
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
