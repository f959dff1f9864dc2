// The status page as HTML: words in three languages, the incident sentence, sparklines, no secrets.
import { describe, expect, it } from 'vitest';
import type { CheckView } from '../../agent/agent.js';
import { RunHistory } from '../../agent/history.js';
import { pickLanguage, statusPage } from '../../agent/status-page.js';
import { parseConfig } from '../../config/loader.js';

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

function render(language: 'en' | 'sv' | 'da') {
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

  it('speaks Swedish and Danish', () => {
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
    const page = (language: 'en' | 'sv' | 'da') =>
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
    expect(pickLanguage('auto', 'nb-NO')).toBe('da');
    expect(pickLanguage('auto', 'de-DE')).toBe('en');
    expect(pickLanguage('auto', undefined)).toBe('en');
    expect(pickLanguage('sv', 'da')).toBe('sv');
  });
});
