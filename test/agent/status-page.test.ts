// The status page as HTML: words in five languages, the incident sentence, sparklines, no
// secrets; and its rules of truth: a reason's own words where the state word would mislead
// (policy open, a refused login and why, a certificate about to expire and when), a banner that
// counts what the page lists, the configured title, translated titles and group names.
import { describe, expect, it } from 'vitest';
import type { CheckView } from '../../agent/agent.js';
import type { ServiceView } from '../../agent/composite.js';
import type { CheckState } from '../../agent/detector.js';
import type { Regression } from '../../agent/change.js';
import { RunHistory } from '../../agent/history.js';
import type { Window } from '../../agent/maintenance.js';
import type { RunOutcome } from '../../agent/runner.js';
import { inLanguage, pickLanguage, statusPage, type Language, type StatusPageInput } from '../../agent/status-page.js';
import { parseConfig } from '../../config/loader.js';
import { LDAP_AUTH_CODES } from '../../probes/ldap/probe.js';
import { OAUTH_ERROR_CODES } from '../../probes/oidc/probe.js';
import { kindNamed } from '../../probes/kinds.js';
import { LANGUAGES } from '../../probes/kit/kind.js';
import type { ProbeResult } from '../../probes/types.js';

const cfg = parseConfig(
  `checks:
  - { name: dns-ns1, title: "Internal DNS (ns1)", group: Core network, kind: dns, target: "10.0.0.53", dns: { name: cosmic.region.local } }
  - { name: ehr, title: "Patient records <Cosmic>", group: Clinical systems, kind: tcp, target: "10.0.0.1:443", dependsOn: [dns-ns1] }
  - { name: lab, title: "Lab orders", group: Clinical systems, kind: tcp, target: "10.0.0.2:443", dependsOn: [dns-ns1] }
  - { name: pacs, title: "Radiology images", group: Clinical systems, kind: tcp, target: "10.0.0.3:443" }
`,
  'sp.yaml',
);
const at = Date.UTC(2026, 10, 23, 2, 2); // 03:02 in Stockholm
const views = (): CheckView[] => {
  const byName = Object.fromEntries(cfg.checks.map((c) => [c.name, c]));
  const down = { since: at, consecutiveFailures: 3, consecutiveSuccesses: 0, flapping: false };
  return [
    { config: byName['dns-ns1']!, status: { state: 'down', ...down }, history: new RunHistory(), cause: 'dns-ns1' },
    { config: byName.ehr!, status: { state: 'down', ...down }, history: new RunHistory(), cause: 'dns-ns1' },
    { config: byName.lab!, status: { state: 'down', ...down }, history: new RunHistory(), cause: 'dns-ns1' },
    {
      config: byName.pacs!,
      status: { state: 'ok', since: at - 3_600_000, consecutiveFailures: 0, consecutiveSuccesses: 9, flapping: false },
      history: RunHistory.of(
        [0.012, 0.015, 0.03, 0.011].map((d, i) => ({
          time: at - (4 - i) * 30_000,
          result: i === 2 ? ('failed' as const) : ('ok' as const),
          durationSeconds: d,
          phases: {},
        })),
      ),
    },
  ];
};
const incidents = [{ cause: 'dns-ns1', since: at, affected: ['ehr', 'lab'] }];

function render(language: Language) {
  return statusPage({
    checks: views(),
    incidents,
    labels: { site: 'växjö' },
    title: 'Systemstatus',
    language,
    refreshSeconds: 15,
    now: at + 60_000,
    timeZone: 'Europe/Stockholm',
  });
}

describe('status page', () => {
  it('says what is wrong in one sentence, in plain words, grouped', () => {
    const html = render('en');
    expect(html).toContain('<html lang="en">');
    expect(html).toContain(
      '<strong>Internal DNS (ns1)</strong> not answering since <time datetime="2026-11-23T02:02:00.000Z">03:02</time> — 2 systems affected: Patient records &lt;Cosmic&gt;, Lab orders.',
    );
    // One incident taking three checks down is one problem, not three.
    expect(html).toContain('1 problem right now — 3 systems affected.');
    expect(html).toContain('Not reachable');
    expect(html).toContain('Working');
    expect(html).toContain('because Internal DNS (ns1) is not working');
    expect(html).toMatch(/<h2 id="g-core-network">Core network<\/h2>/);
    expect(html).toContain('<meta http-equiv="refresh" content="15">');
    expect(html).not.toContain('<script');
    // Targets are engineers' business, not the ward's.
    expect(html).not.toContain('10.0.0.1');
  });

  it('remembers the last 7 days and each group’s availability (from the journal), in the page’s language', () => {
    const night = { cause: 'dns-ns1', since: at - 86_400_000, until: at - 86_400_000 + 218 * 60_000, peakAffected: 41 };
    const base = { checks: views(), incidents: [], labels: {}, refreshSeconds: 15, now: at + 60_000, timeZone: 'Europe/Stockholm' };
    const availability = new Map([
      ['Core network', 0.99497],
      ['Clinical systems', 1],
    ]);
    const en = statusPage({ ...base, language: 'en', earlier: [night, { ...night, cause: 'pacs', peakAffected: 0, interrupted: true }], availability });
    expect(en).toContain('<h2 id="earlier">Earlier (last 7 days)</h2>');
    expect(en).toMatch(
      /<strong>Internal DNS \(ns1\)<\/strong> not answering <time datetime="2026-11-22T02:02:00.000Z">[^<]*03:02<\/time>–<time datetime="2026-11-22T05:40:00.000Z">[^<]*06:40<\/time>, 41 systems affected\./,
    );
    expect(en).toContain('no other systems affected (monitoring stopped before it ended).');
    expect(en).toContain('<p class="availability">99.49 % available, last 30 days</p>');
    expect(en).toContain('<p class="availability">100 % available, last 30 days</p>');
    const sv = statusPage({ ...base, language: 'sv', earlier: [night], availability });
    expect(sv).toContain('Tidigare (senaste 7 dagarna)');
    expect(sv).toContain('41 system påverkades.');
    expect(sv).toContain('99,49 % tillgängligt senaste 30 dagarna');
    // Nothing ended and nothing known: neither section.
    const none = statusPage({ ...base, language: 'en' });
    expect(none).not.toContain('id="earlier"');
    expect(none).not.toContain('class="availability"');
  });

  it('draws a sparkline with an accessible description, failed runs marked', () => {
    const html = render('en');
    // The failed run (30 ms) is drawn as a red bar and left out of the range and the line.
    expect(html).toContain('role="img" aria-label="Response times of the last 4 checks, 11 ms to 15 ms, 1 failed"');
    expect(html).toMatch(/<polyline[^>]+points="[\d.,\s]+"/);
    expect(html).toContain('fill="#b00020" fill-opacity="0.3"');
    // Broken at the failure: one polyline before it, a single point after it.
    expect(html.match(/<polyline/g)).toHaveLength(1);
    expect(html).toContain('<circle');
  });

  it('speaks Swedish, Danish, Norwegian and Finnish', () => {
    const sv = render('sv');
    expect(sv).toContain('<html lang="sv">');
    expect(sv).toContain('svarar inte sedan');
    expect(sv).toContain('2 system påverkas');
    expect(sv).toContain('Går inte att nå');
    expect(sv).toContain('Fungerar');
    const da = render('da');
    expect(da).toContain('svarer ikke siden');
    expect(da).toContain('2 systemer berørt');
    expect(da).toContain('Kan ikke nås');
    // Norwegian and Finnish say the same in their words (Finnish puts "since" after the time: "03.02 alkaen").
    const says: Record<'nb' | 'fi', string[]> = {
      nb: [
        '<html lang="nb">',
        'svarer ikke siden',
        '1 problem akkurat nå — 3 systemer berørt.',
        'Ikke tilgjengelig',
        'Fungerer',
        'fordi Internal DNS (ns1) ikke fungerer',
      ],
      fi: [
        '<html lang="fi">',
        '<strong>Internal DNS (ns1)</strong> ei vastaa <time datetime="2026-11-23T02:02:00.000Z">03.02</time> alkaen — koskee myös 2 järjestelmää',
        '1 häiriö juuri nyt — koskee 3 järjestelmää.',
        'Ei tavoitettavissa',
        'Toimii',
        'Viimeisten 4 tarkistuksen vasteajat, 11 ms–15 ms, 1 epäonnistui',
      ],
    };
    for (const [lang, phrases] of Object.entries(says)) {
      const html = render(lang as Language);
      for (const phrase of phrases) expect(html, lang).toContain(phrase);
    }
  });

  it('says what a stuck queue means for the ward: messages not getting through, how many wait and for how long', () => {
    const qcfg = parseConfig(
      `checks:
  - { name: lab-q, title: "Lab results", group: Integration, kind: queue, target: "http://10.0.0.9:15672", queue: { source: rabbitmq, queues: [lab.results, lab.orders] } }
  - { name: adt, title: "Admissions to lab", group: Integration, kind: mllp, target: "10.0.0.9:6661" }
`,
      'q.yaml',
    );
    const [lab, adt] = qcfg.checks as [CheckView['config'], CheckView['config']];
    const result = {
      ok: false,
      phases: {},
      queues: [
        { queue: 'lab.results', depth: 230, oldestAgeSeconds: 840 },
        { queue: 'lab.orders', depth: 10 },
      ],
    };
    const checks: CheckView[] = [
      {
        config: lab,
        status: { state: 'down', since: at, consecutiveFailures: 3, consecutiveSuccesses: 0, flapping: false },
        history: new RunHistory(),
        cause: 'lab-q',
        last: { result, startedAt: at, duration: 0.01, queueWait: 0, loopStall: 0, disturbed: false },
      },
      { config: adt, status: { state: 'degraded', since: at, consecutiveFailures: 0, consecutiveSuccesses: 3, flapping: false }, history: new RunHistory() },
    ];
    const page = (language: Language) =>
      statusPage({
        checks,
        incidents: [{ cause: 'lab-q', since: at, affected: [] }],
        labels: {},
        title: 'Status',
        language,
        refreshSeconds: 15,
        now: at + 60_000,
        timeZone: 'Europe/Stockholm',
      });
    const en = page('en');
    expect(en).toContain('<strong>Lab results</strong> not moving messages since');
    expect(en).toContain('Messages not getting through');
    expect(en).toContain('240 messages waiting, the oldest for 14 min');
    expect(en).toContain('Slow to accept messages');
    expect(en).not.toContain('lab.results');
    expect(page('sv')).toContain('Meddelanden kommer inte fram</span> <span class="note">(240 meddelanden väntar, det äldsta har väntat 14 min)');
    expect(page('da')).toContain('Beskeder kommer ikke igennem</span> <span class="note">(240 beskeder venter, den ældste har ventet 14 min)');
  });

  it('picks the language from config or Accept-Language', () => {
    expect(pickLanguage('auto', 'sv-SE,sv;q=0.9,en;q=0.5')).toBe('sv');
    expect(pickLanguage('auto', 'en;q=0.4, da;q=0.8')).toBe('da');
    // Norwegian in any of its tags reads bokmål; Finnish reads Finnish.
    expect(pickLanguage('auto', 'nb-NO')).toBe('nb');
    expect(pickLanguage('auto', 'nn-NO,nn;q=0.9')).toBe('nb');
    expect(pickLanguage('auto', 'no')).toBe('nb');
    expect(pickLanguage('auto', 'fi-FI,fi;q=0.9,en;q=0.8')).toBe('fi');
    expect(pickLanguage('auto', 'de-DE')).toBe('en');
    expect(pickLanguage('auto', 'de-DE, fi;q=0.5')).toBe('fi');
    expect(pickLanguage('auto', undefined)).toBe('en');
    expect(pickLanguage('sv', 'da')).toBe('sv');
    // ?lang= wins when it names a language the page speaks, and is ignored otherwise.
    expect(pickLanguage('sv', 'da', 'fi')).toBe('fi');
    expect(pickLanguage('auto', 'da', 'NB')).toBe('nb');
    expect(pickLanguage('sv', 'da', 'xx')).toBe('sv');
    expect(pickLanguage('auto', 'da', null)).toBe('da');
    // Names of Object.prototype are no languages.
    expect(pickLanguage('auto', 'constructor, __proto__;q=0.9', 'toString')).toBe('en');
  });
});

/** A view of `config` in `state`, its last run `result` (epoch `at`). */
function viewOf(config: CheckView['config'], state: CheckState, result?: ProbeResult, cause?: string): CheckView {
  const failed = state === 'down' || state === 'failing';
  const last: RunOutcome | undefined = result && { result, startedAt: at, duration: 0.02, queueWait: 0, loopStall: 0, disturbed: false };
  return {
    config,
    status: { state, since: at, consecutiveFailures: failed ? 3 : 0, consecutiveSuccesses: failed ? 0 : 3, flapping: false },
    history: new RunHistory(),
    ...(last ? { last } : {}),
    ...(cause ? { cause } : {}),
  };
}

const failed = (reason: string, info?: ProbeResult['info']): ProbeResult => ({
  ok: false,
  phases: {},
  failure: { phase: 'connect', reason, message: 'engineers only' },
  ...(info ? { info } : {}),
});
const degraded = (reason: string, values?: ProbeResult['values']): ProbeResult => ({
  ok: true,
  phases: {},
  degraded: { reason, message: 'engineers only' },
  ...(values ? { values } : {}),
});

const truth = parseConfig(
  `agent:
  labels: { site: odense-dc1 }
  statusPage:
    title: { en: Region Syddanmark IT status, da: Region Syddanmarks IT-driftstatus, sv: IT-driftstatus }
    groups:
      Patient records: { sv: Patientjournal, da: Patientjournal, nb: Pasientjournal, fi: Potilaskertomus }
      Firewall policy: { da: Firewallregler }
checks:
  - name: rdp-blocked
    title: { en: Remote desktop to EHR servers stays blocked, da: Fjernskrivebord til EPJ-servere forbliver blokeret }
    group: Firewall policy
    kind: tcp
    target: "10.0.0.10:3389"
    tcp: { expect: blocked }
  - { name: ehr-a, title: Patient records through firewall A, group: Patient records, kind: tcp, target: "10.0.0.1:443" }
  - { name: ehr-web, title: Patient records (web), group: Patient records, kind: http, target: "https://ehr.region.example/" }
  - name: idp
    title: Single sign-on
    group: Login
    kind: oidc
    target: https://login.region.example/
    secrets: { s: { env: IDP_SECRET } }
    oidc: { clientId: vakt, clientSecret: s }
  - name: ad
    title: Windows login
    group: Login
    kind: ldap
    target: ldaps://dc1.region.example
    secrets: { p: { env: AD_PASSWORD } }
    ldap: { bindDn: "CN=vakt,DC=region,DC=example", password: p }
  - { name: ns, title: Name lookup, group: Core network, kind: dns, targets: ["10.0.0.53", "10.0.0.54"], dns: { name: ehr.region.example, quorum: 1 } }
`,
  'truth.yaml',
  { IDP_SECRET: 'x', AD_PASSWORD: 'y' },
);
const cfgOf = (name: string) => truth.checks.find((c) => c.name === name)!;
// 2027-01-04 12:00 UTC, the expiry of the certificate ehr-web presents.
const EXPIRY = Date.UTC(2027, 0, 4, 12) / 1000;

function page(checks: CheckView[], incidents: StatusPageInput['incidents'], language: Language = 'en', extra: Partial<StatusPageInput> = {}): string {
  return statusPage({
    ...truth.agent.statusPage,
    checks,
    incidents,
    labels: truth.agent.labels,
    language,
    refreshSeconds: 15,
    now: at + 60_000,
    timeZone: 'Europe/Stockholm',
    ...extra,
  });
}

/** Each down check that is its own root cause, as its incident (nothing else affected). */
function incidentsOf(checks: readonly CheckView[]): StatusPageInput['incidents'] {
  return checks.filter((v) => v.status.state === 'down' && v.cause === v.config.name).map((v) => ({ cause: v.config.name, since: at, affected: [] }));
}

/** The text of the row of `title`: its state word and note. */
function row(html: string, title: string): string {
  const m = new RegExp(`<th scope="row">${title.replace(/[()]/g, '\\$&')}</th>\n<td>(.*?)</td>`).exec(html);
  return (m?.[1] ?? '').replace(/<[^>]+>/g, '').trim();
}

/** The list of current problems, as text. */
function listed(html: string): string[] {
  return [...html.matchAll(/<ul class="incidents">\n([\s\S]*?)\n<\/ul>/g)].flatMap((m) => m[1]!.split('\n').map((li) => li.replace(/<[^>]+>/g, '')));
}

describe('status page truth', () => {
  it('reads a port that must stay blocked and answers as open, not "Not reachable"', () => {
    const checks = [viewOf(cfgOf('rdp-blocked'), 'down', failed('policy_open'), 'rdp-blocked'), viewOf(cfgOf('ehr-a'), 'down', failed('timeout'), 'ehr-a')];
    const incidents = incidentsOf(checks);
    const en = page(checks, incidents);
    expect(row(en, 'Remote desktop to EHR servers stays blocked')).toBe('✕ Reachable — should be blocked');
    // A path that times out is still "Not reachable": the words follow the reason, not the kind.
    expect(row(en, 'Patient records through firewall A')).toBe('✕ Not reachable');
    expect(listed(en)).toEqual([
      'Remote desktop to EHR servers stays blocked: reachable — should be blocked (since 03:02) — no other systems affected.',
      'Patient records through firewall A not reachable since 03:02 — no other systems affected.',
    ]);
    const words: Record<Language, string> = {
      en: 'Reachable — should be blocked',
      sv: 'Går att nå — ska vara blockerad',
      da: 'Kan nås — skal være blokeret',
      nb: 'Kan nås — skal være blokkert',
      fi: 'Tavoitettavissa — pitäisi olla estetty',
    };
    for (const lang of LANGUAGES) {
      const html = page(checks, incidents, lang);
      expect(html).toContain(`<span class="word">${words[lang]}</span>`);
      expect(html).not.toContain(`<span class="word">${kindNamed('tcp')!.words[lang].notAnswering}</span>`);
    }
    // The same check while the port stays closed.
    expect(row(page([viewOf(cfgOf('rdp-blocked'), 'ok')], [], 'nb'), 'Remote desktop to EHR servers stays blocked')).toBe('✓ Blokkert som tiltenkt');
  });

  it('reads a refused login as refused, with its reason in plain words', () => {
    const checks = [
      viewOf(cfgOf('idp'), 'down', failed('auth', { authCode: 'invalid_client' }), 'idp'),
      viewOf(cfgOf('ad'), 'down', failed('auth', { authCode: 'account_locked' }), 'ad'),
    ];
    const incidents = incidentsOf(checks);
    const en = page(checks, incidents);
    expect(row(en, 'Single sign-on')).toBe('✕ Login refused (application credentials not accepted)');
    expect(row(en, 'Windows login')).toBe('✕ Login refused (account locked)');
    expect(en).not.toContain('Not reachable');
    expect(listed(en)).toContain('Windows login: login refused (account locked) (since 03:02) — no other systems affected.');
    const sv = page(checks, incidents, 'sv');
    expect(row(sv, 'Windows login')).toBe('✕ Inloggningen nekades (kontot är låst)');
    expect(row(page(checks, incidents, 'da'), 'Windows login')).toBe('✕ Login afvist (kontoen er låst)');
    expect(row(page(checks, incidents, 'nb'), 'Single sign-on')).toBe('✕ Innlogging avvist (applikasjonens innloggingsopplysninger godtas ikke)');
    expect(row(page(checks, incidents, 'fi'), 'Windows login')).toBe('✕ Kirjautuminen hylättiin (tili on lukittu)');
    // A code without words of its own (OAuth's "other"), or none: the refusal alone.
    const other = page([viewOf(cfgOf('idp'), 'down', failed('auth', { authCode: 'other' }), 'idp')], []);
    expect(row(other, 'Single sign-on')).toBe('✕ Login refused');
  });

  it('has words for every refusal code the ldap and oidc kinds report, in every language', () => {
    const codes = [...LDAP_AUTH_CODES, ...OAUTH_ERROR_CODES];
    expect(codes).toEqual(expect.arrayContaining(['account_locked', 'password_expired', 'invalid_client', 'invalid_grant']));
    for (const kind of ['ldap', 'oidc'])
      for (const lang of LANGUAGES) {
        const refusals = kindNamed(kind)!.words[lang].refusals ?? {};
        expect(
          codes.filter((c) => !refusals[c]?.trim()),
          `${kind} ${lang}`,
        ).toEqual([]);
      }
  });

  it('reads a certificate inside its expiry warning as such, with its date, not "Slow"', () => {
    const checks = [viewOf(cfgOf('ehr-web'), 'degraded', degraded('cert_expiring', { ssl_earliest_cert_expiry: EXPIRY }))];
    const en = page(checks, []);
    expect(row(en, 'Patient records (web)')).toBe('◐ Certificate expires 2027-01-04');
    expect(en).not.toContain('Slow');
    expect(row(page(checks, [], 'sv'), 'Patient records (web)')).toBe('◐ Certifikatet går ut 2027-01-04');
    expect(row(page(checks, [], 'fi'), 'Patient records (web)')).toBe('◐ Varmenne vanhenee 2027-01-04');
    // No expiry reported: still the certificate, not "Slow".
    expect(row(page([viewOf(cfgOf('ehr-web'), 'degraded', degraded('cert_expiring'))], []), 'Patient records (web)')).toBe('◐ Certificate expires soon');
    // Slow is slow.
    expect(row(page([viewOf(cfgOf('ehr-web'), 'degraded', degraded('slow'))], []), 'Patient records (web)')).toBe('◐ Slow');
    // An expired one fails the run (tls_expired).
    expect(row(page([viewOf(cfgOf('ehr-web'), 'down', failed('tls_expired'), 'ehr-web')], []), 'Patient records (web)')).toBe('✕ Certificate expired');
  });

  it('words the other reasons the state word would get wrong: one resolver of two, an error page', () => {
    const html = page(
      [viewOf(cfgOf('ns'), 'degraded', degraded('partial')), viewOf(cfgOf('ehr-web'), 'down', failed('http_status'), 'ehr-web')],
      [{ cause: 'ehr-web', since: at, affected: [] }],
    );
    expect(row(html, 'Name lookup')).toBe('◐ One or more name servers not answering');
    // It answered, with an error: working it is not, unreachable neither.
    expect(row(html, 'Patient records (web)')).toBe('✕ Not working');
  });

  it('counts in the banner exactly what it lists, degraded and failing checks included', () => {
    const checks = [
      viewOf(cfgOf('ehr-a'), 'down', failed('timeout'), 'ehr-a'),
      viewOf(cfgOf('rdp-blocked'), 'down', failed('timeout'), 'ehr-a'),
      viewOf(cfgOf('ehr-web'), 'degraded', degraded('cert_expiring', { ssl_earliest_cert_expiry: EXPIRY })),
      viewOf(cfgOf('idp'), 'failing', failed('timeout')),
      viewOf(cfgOf('ns'), 'ok'),
    ];
    const html = page(checks, [{ cause: 'ehr-a', since: at, affected: ['rdp-blocked'] }]);
    expect(html).toContain('<p class="summary bad" role="status">3 problems right now — 4 systems affected.</p>');
    expect(html).toContain('<title>(3) Region Syddanmark IT status</title>');
    expect(listed(html)).toEqual([
      'Patient records through firewall A not reachable since 03:02 — 1 system affected: Remote desktop to EHR servers stays blocked.',
      'Single sign-on: problems, being checked (since 03:02).',
      'Patient records (web): certificate expires 2027-01-04 (since 03:02).',
    ]);
    // Only a degraded check: listed, counted, and the banner amber rather than red.
    const one = page([viewOf(cfgOf('ehr-web'), 'degraded', degraded('slow')), viewOf(cfgOf('ns'), 'ok')], []);
    expect(one).toContain('<p class="summary warn" role="status">1 problem right now.</p>');
    expect(listed(one)).toEqual(['Patient records (web): slow (since 03:02).']);
    for (const lang of LANGUAGES) {
      const n = listed(page(checks, [{ cause: 'ehr-a', since: at, affected: ['rdp-blocked'] }], lang)).length;
      expect(n, lang).toBe(3);
    }
    const all = page([viewOf(cfgOf('ns'), 'ok')], []);
    expect(all).toContain('<p class="summary ok" role="status">All systems are working.</p>');
    expect(all).not.toContain('class="incidents"');
  });

  it('heads the page with the configured title, the site only as a line under it', () => {
    const html = page([viewOf(cfgOf('ns'), 'ok')], []);
    expect(html).toContain('<h1>Region Syddanmark IT status</h1>\n<p class="subtitle">Checked from odense-dc1</p>');
    expect(html).toContain('<title>Region Syddanmark IT status</title>');
    expect(html).not.toMatch(/<h1>[^<]*odense-dc1/);
    // The title in the page's language; a language the map lacks gets its first entry.
    expect(page([], [], 'da')).toContain('<h1>Region Syddanmarks IT-driftstatus</h1>\n<p class="subtitle">Kontrolleres fra odense-dc1</p>');
    expect(page([], [], 'fi')).toContain('<h1>Region Syddanmark IT status</h1>\n<p class="subtitle">Tarkistuspaikka: odense-dc1</p>');
    // No title configured: the page's own, in its language; a subtitle of the config's own replaces the site line.
    const plain = parseConfig('checks:\n  - { name: a, kind: tcp, target: "10.0.0.1:443" }\n', 'plain.yaml');
    expect(plain.agent.statusPage.title).toBeUndefined();
    const own = (language: Language) => statusPage({ ...plain.agent.statusPage, checks: [], incidents: [], labels: {}, language, refreshSeconds: 15 });
    expect(own('en')).toContain('<h1>System status</h1>\n<p class="summary');
    expect(own('sv')).toContain('<h1>Driftstatus</h1>');
    expect(own('nb')).toContain('<h1>Driftsstatus</h1>');
    expect(own('fi')).toContain('<h1>Järjestelmien tila</h1>');
    const sub = page([], [], 'sv', { subtitle: { en: 'Odense University Hospital', sv: 'Odense universitetssjukhus' } });
    expect(sub).toContain('<p class="subtitle">Odense universitetssjukhus</p>');
    expect(sub).not.toContain('odense-dc1');
  });

  it('translates check titles and group names from the config; the plain title stays the first', () => {
    // The API, alerts and logs keep the plain title: a string, or the first entry of a map.
    expect(cfgOf('rdp-blocked').title).toBe('Remote desktop to EHR servers stays blocked');
    expect(cfgOf('rdp-blocked').titles).toEqual({
      en: 'Remote desktop to EHR servers stays blocked',
      da: 'Fjernskrivebord til EPJ-servere forbliver blokeret',
    });
    expect(cfgOf('ehr-a').titles).toBeUndefined();
    const written = parseConfig(
      'checks:\n  - { name: a, title: { fi: Potilaskertomus, en: Patient records }, kind: tcp, target: "10.0.0.1:443" }\n',
      'order.yaml',
    );
    expect(written.checks[0]!.title).toBe('Potilaskertomus');
    const checks = [viewOf(cfgOf('rdp-blocked'), 'down', failed('policy_open'), 'rdp-blocked'), viewOf(cfgOf('ehr-a'), 'ok'), viewOf(cfgOf('ns'), 'ok')];
    const incidents = [{ cause: 'rdp-blocked', since: at, affected: [] }];
    const da = page(checks, incidents, 'da');
    expect(da).toContain('<h2 id="g-firewall-policy">Firewallregler</h2>');
    expect(da).toContain('<h2 id="g-patient-records">Patientjournal</h2>');
    expect(row(da, 'Fjernskrivebord til EPJ-servere forbliver blokeret')).toBe('✕ Kan nås — skal være blokeret');
    expect(listed(da)[0]).toMatch(/^Fjernskrivebord til EPJ-servere forbliver blokeret: kan nås/);
    // Groups sorted by their name in the page's language: Core network, Firewallregler, Patientjournal.
    expect([...da.matchAll(/<h2 id="g-[^"]+">([^<]+)<\/h2>/g)].map((m) => m[1])).toEqual(['Core network', 'Firewallregler', 'Patientjournal']);
    const fi = page(checks, incidents, 'fi');
    expect(fi).toContain('<h2 id="g-patient-records">Potilaskertomus</h2>');
    // No Finnish given: the plain names.
    expect(fi).toContain('<h2 id="g-firewall-policy">Firewall policy</h2>');
    expect(row(fi, 'Remote desktop to EHR servers stays blocked')).toBe('✕ Tavoitettavissa — pitäisi olla estetty');
    expect(inLanguage({ sv: 'Patientjournal', en: 'Patient records' }, 'nb')).toBe('Patientjournal');
  });

  it('says "Planned work until 06:00" for a check in a window, lists the work, and counts none of it as a problem', () => {
    // Planned work 03:00-06:00 Stockholm; the firewall path is down in it, the page is not red.
    const w: Window = {
      id: 'api-1',
      title: { en: 'Firewall upgrade', sv: 'Brandväggsuppgradering' },
      source: 'api',
      checks: ['ehr-a', 'rdp-blocked'],
      start: at - 120_000,
      end: Date.UTC(2026, 10, 23, 5, 0),
    };
    const next: Window = { id: 'dns-night', title: 'DNS upgrade', source: 'config', checks: ['ns'], start: at + 86_400_000, end: at + 86_400_000 + 3_600_000 };
    const checks = [
      { ...viewOf(cfgOf('ehr-a'), 'down', failed('timeout'), 'ehr-a'), maintenance: w },
      { ...viewOf(cfgOf('rdp-blocked'), 'down', failed('timeout'), 'ehr-a'), maintenance: w },
      // Not in the window itself, but down because its root cause is: no problem either, and said so.
      viewOf(cfgOf('ehr-web'), 'down', failed('timeout'), 'ehr-a'),
      viewOf(cfgOf('ns'), 'ok'),
    ];
    const html = page(checks, [{ cause: 'ehr-a', since: at, affected: ['rdp-blocked'] }], 'en', { planned: { open: [w], upcoming: [next] } });
    expect(html).toContain('<p class="summary ok" role="status">All systems are working.</p>');
    expect(html).not.toContain('class="incidents"');
    // The runs go on, and what they see is said in the note.
    expect(row(html, 'Patient records through firewall A')).toBe('◇ Planned work until 06:00 (not reachable)');
    expect(html).toContain('<tr class="s-maintenance">');
    expect(row(html, 'Patient records (web)')).toBe('✕ Not reachable (because of planned work on Patient records through firewall A)');
    const work = [...html.matchAll(/<ul class="planned">\n([\s\S]*?)\n<\/ul>/g)].flatMap((m) => m[1]!.split('\n').map((li) => li.replace(/<[^>]+>/g, '')));
    expect(work).toEqual(['Firewall upgrade until 06:00 (2 systems)', 'DNS upgrade 24 Nov, 03:02–04:02 (1 system)']);
    const sv = page(checks, [], 'sv', { planned: { open: [w], upcoming: [] } });
    expect(row(sv, 'Patient records through firewall A')).toMatch(/^◇ Planerat arbete till 06:00/);
    expect(sv).toContain('<strong>Brandväggsuppgradering</strong>');
    for (const lang of LANGUAGES) expect(page(checks, [], lang, { planned: { open: [w], upcoming: [] } })).toContain('class="s-maintenance"');
  });

  it('tells of a check made worse by planned work, in every language, and counts it', () => {
    const f = { kind: 'slower' as const, what: 'step' as const, name: 'login', before: 0.006, after: 0.157, factor: 26.2 };
    const change: Regression = {
      window: 'api-1',
      title: 'Security update',
      ended: Date.UTC(2026, 10, 23, 5, 0),
      level: { working: true, total: 0.024, phases: {}, steps: { login: 0.006 }, runs: 5 },
      spec: { runs: 3, slowerThan: 2, minDeltaMs: 50 },
      finding: f,
      message: 'engineers only',
      since: at,
      back: 0,
    };
    const checks = [{ ...viewOf(cfgOf('ehr-web'), 'ok'), change }, viewOf(cfgOf('ns'), 'ok')];
    const html = page(checks, []);
    expect(html).toContain('<p class="summary warn" role="status">1 problem right now.</p>');
    expect(listed(html)).toEqual(['Patient records (web): after the planned work ended at 06:00, the step login takes 26× as long as before (since 03:02).']);
    expect(row(html, 'Patient records (web)')).toBe('✓ Working (after the planned work ended at 06:00, the step login takes 26× as long as before)');
    expect(html).toContain('<tr class="s-degraded">');
    // A check the change broke: failing where it worked.
    const broke = page(
      [{ ...viewOf(cfgOf('ehr-web'), 'down', failed('timeout'), 'ehr-web'), change: { ...change, finding: { kind: 'failing', failed: 3, of: 3 } } }],
      [],
    );
    expect(broke).toContain('after the planned work ended at 06:00, it fails; it worked before');
    for (const lang of LANGUAGES) {
      const text = listed(page(checks, [], lang));
      expect(text, lang).toHaveLength(1);
      expect(text[0], lang).toMatch(/06[:.]00/);
      expect(text[0], lang).toMatch(/26/);
      if (lang !== 'en') expect(text[0], lang).not.toContain('planned work');
    }
  });

  it('refuses a translation in a language the page does not speak, and an empty one', () => {
    const load = (text: string) => () => parseConfig(text, 'bad.yaml');
    expect(load('checks:\n  - { name: a, title: { se: X }, kind: tcp, target: "10.0.0.1:443" }\n')).toThrow(
      'bad.yaml:2:25: checks[0].title.se: expected no such key, found unknown key "se"',
    );
    expect(load('checks:\n  - { name: a, title: {}, kind: tcp, target: "10.0.0.1:443" }\n')).toThrow(
      'checks[0].title: expected at least one language (en, sv, da, nb, fi), found an empty mapping',
    );
    expect(load('agent: { statusPage: { groups: { Core: Kärnnät } } }\nchecks:\n  - { name: a, kind: tcp, target: "10.0.0.1:443" }\n')).toThrow(
      'agent.statusPage.groups.Core: expected a map of language (en, sv, da, nb, fi) to string, found "Kärnnät"',
    );
    expect(load('agent: { statusPage: { language: de } }\nchecks:\n  - { name: a, kind: tcp, target: "10.0.0.1:443" }\n')).toThrow(
      'agent.statusPage.language: expected one of auto, en, sv, da, nb, fi, found "de"',
    );
  });
});

describe('status page: a service made of redundant paths', () => {
  const sp = parseConfig(
    `checks:
  - { name: fw-a, title: "EHR through firewall A", group: Patient records, kind: tcp, target: "10.20.1.10:443" }
  - { name: fw-b, title: "EHR through firewall B", group: Patient records, kind: tcp, target: "10.20.2.10:443" }
  - { name: pacs, title: "Radiology images", group: Imaging, kind: tcp, target: "10.0.0.3:443" }
services:
  - name: ehr-paths
    title: { en: Patient records reachable, fi: Potilaskertomus tavoitettavissa }
    anyOf: [fw-a, fw-b]
    memberNoun: { en: firewall paths, sv: brandväggsvägar, da: firewall-veje, nb: brannmurveier, fi: palomuurireitit }
`,
    'svc.yaml',
  );
  const status = (state: CheckState) => ({ state, since: at, consecutiveFailures: 0, consecutiveSuccesses: 0, flapping: false });
  const byName = Object.fromEntries(sp.checks.map((c) => [c.name, c]));
  const checks = (a: CheckState, b: CheckState, pacs: CheckState = 'ok', window?: CheckView['maintenance']): CheckView[] => [
    {
      config: byName['fw-a']!,
      status: status(a),
      history: new RunHistory(),
      ...(a === 'down' ? { cause: 'fw-a' } : {}),
      ...(window ? { maintenance: window } : {}),
    },
    { config: byName['fw-b']!, status: status(b), history: new RunHistory(), ...(b === 'down' ? { cause: 'fw-b' } : {}) },
    { config: byName.pacs!, status: status(pacs), history: new RunHistory(), ...(pacs === 'down' ? { cause: 'pacs' } : {}) },
  ];
  const service = (state: ServiceView['state'], tally: Partial<ServiceView['tally']>): ServiceView => ({
    config: sp.services[0]!,
    state,
    observed: state === 'maintenance' ? 'down' : state,
    since: at,
    tally: { total: 2, up: 0, down: 0, slow: 0, held: 0, ...tally },
  });
  const page = (views: CheckView[], sv: ServiceView, language: Language = 'en', incidents: StatusPageInput['incidents'] = []) =>
    statusPage({
      checks: views,
      services: [sv],
      incidents,
      labels: {},
      language,
      refreshSeconds: 15,
      now: at + 60_000,
      timeZone: 'Europe/Stockholm',
    });

  it('one path down: one row saying how many paths, one problem, the paths and their incident not on their own', () => {
    const html = page(checks('down', 'ok'), service('degraded', { up: 1, down: 1 }), 'en', [{ cause: 'fw-a', since: at, affected: [] }]);
    expect(html).toContain(
      '<tr class="s-degraded">\n<th scope="row">Patient records reachable</th>\n<td><span class="icon" aria-hidden="true">◐</span> <span class="word">Working</span> <span class="note">(1 of 2 firewall paths down)</span></td>',
    );
    expect(html).toContain('1 problem right now.');
    expect(html).toContain('<li><strong>Patient records reachable</strong>: working — 1 of 2 firewall paths down (since');
    expect(html).not.toContain('through firewall');
    expect(html).toContain('class="summary warn"');
    // The group is the first member's.
    expect(html).toMatch(/<h2 id="g-patient-records">Patient records<\/h2>[\s\S]*Patient records reachable/);
  });

  it('counts exactly what it lists: a down service and another system down are two problems, the page red', () => {
    const html = page(checks('down', 'down', 'down'), service('down', { down: 2 }), 'en', [
      { cause: 'fw-a', since: at, affected: [] },
      { cause: 'fw-b', since: at, affected: [] },
      { cause: 'pacs', since: at, affected: [] },
    ]);
    expect(html).toContain('2 problems right now.');
    expect(html.match(/<li><strong>/g)).toHaveLength(2);
    expect(html).toContain('<span class="word">Not reachable</span> <span class="note">(2 of 2 firewall paths down)</span>');
    expect(html).toContain('class="summary bad"');
  });

  it('all paths working: no note, no problem', () => {
    const html = page(checks('ok', 'ok'), service('ok', { up: 2 }));
    expect(html).toContain('<span class="word">Working</span></td>');
    expect(html).toContain('All systems are working.');
  });

  it('planned work: a held path is told of, not counted; a service short through planned work alone reads planned work until its end', () => {
    const window = { id: 'fw-a-firmware', title: 'Firmware', source: 'config' as const, start: at - 60_000, end: at + 3 * 3_600_000, checks: ['fw-a'] };
    const held = page(checks('down', 'ok', 'ok', window), service('ok', { up: 1, held: 1 }));
    expect(held).toContain('<span class="word">Working</span> <span class="note">(1 of 2 firewall paths in planned work)</span>');
    expect(held).toContain('All systems are working.');
    const short = page(checks('down', 'down', 'ok', window), service('maintenance', { held: 2 }));
    expect(short).toContain('<tr class="s-maintenance">');
    expect(short).toContain('<span class="word">Planned work until <time datetime="2026-11-23T05:02:00.000Z">06:02</time></span>');
    expect(short).toContain('All systems are working.');
  });

  it('says it in every language, with the configured noun', () => {
    const sv = service('degraded', { up: 1, down: 1, slow: 1, total: 3 });
    expect(page(checks('down', 'ok'), sv, 'sv')).toContain('(1 av 3 brandväggsvägar nere, 1 långsamma)');
    expect(page(checks('down', 'ok'), sv, 'da')).toContain('(1 af 3 firewall-veje nede, 1 langsomme)');
    expect(page(checks('down', 'ok'), sv, 'nb')).toContain('(1 av 3 brannmurveier nede, 1 trege)');
    const fi = page(checks('down', 'ok'), sv, 'fi');
    expect(fi).toContain('<th scope="row">Potilaskertomus tavoitettavissa</th>');
    expect(fi).toContain('(palomuurireitit: 1/3 ei toimi, 1 hidas)');
    // Without memberNoun, the page's own word.
    const plain = { ...sv, config: { ...sv.config, memberNoun: undefined } } as unknown as ServiceView;
    expect(page(checks('down', 'ok'), plain, 'en')).toContain('(1 of 3 parts down, 1 slow)');
  });
});
