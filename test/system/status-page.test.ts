// The status page in a real browser: headless Chromium (Debian package `chromium`) driven by
// playwright-core, against agents monitoring the sandbox. The page must render its groups and
// plain-language states, pick up a fault through its own meta refresh (no reload by hand, no
// JavaScript needed), speak the browser's language, and keep basic accessibility facts. And it
// must say only what is true, each state checked as a browser shows it: a port that must stay
// blocked and opens reads as open; a refused login (OAuth invalid_client, an Active Directory
// account locked) as refused, with why; a certificate inside its expiry warning as such, with
// its date; a banner that counts what the page lists, a degraded check included; the configured
// title, the site as a line under it; check titles and group names translated by the config; and
// each of English, Swedish, Danish, Norwegian (bokmål) and Finnish. Planned work reads as such and
// is no problem; a path the work broke is a change regression after it.
// Screenshots of every state and language are test artefacts, written to
// test-artifacts/status-page/*.png (git-ignored) for people to look at.
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { sandboxCertDir, sandboxSecretDir, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { requireTool, waitFor } from './helpers.js';
import { freeSandboxPorts } from '../helpers/demo-config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts', 'status-page');
const CHROMIUM = '/usr/bin/chromium';
const REFRESH_S = 5;
const TITLE = 'Region Syddanmark IT status';

let sandbox: Sandbox | undefined;
let agent: Agent | undefined;
let http: HttpServer | undefined;
let browser: Browser | undefined;
let agentLog = '';
const dirs: string[] = [];
const contexts: BrowserContext[] = [];
const stops: (() => Promise<void>)[] = [];

function config(sb: Sandbox): string {
  const h = sb.host;
  const tls = `{ serverName: ehr.sandbox.vakt.test, caFile: "${join(sandboxCertDir(), 'ca.pem')}" }`;
  return `
agent:
  labels: { site: odense-dc1 }
  startSpread: 100ms
  statusPage: { title: ${TITLE}, refresh: ${REFRESH_S} }
defaults: { interval: 1s, timeout: 800ms, retries: 0 }
checks:
  - name: ehr-via-fw-a
    title: Patient records (Cosmic) through firewall A
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwA}"
    tcp: { samples: 3, sampleSpacing: 20ms, connectTimeout: 300ms, tls: ${tls} }
  - name: ehr-via-fw-b
    title: Patient records (Cosmic) through firewall B
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwB}"
    tcp: { samples: 3, sampleSpacing: 20ms, connectTimeout: 300ms, tls: ${tls} }
  - name: cosmic-login-via-fw-a
    title: Cosmic login through firewall A
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwA}"
    dependsOn: [ehr-via-fw-a]
    tcp: { tls: ${tls} }
  - name: rdp-blocked
    title: Remote desktop to EHR servers stays blocked
    group: Firewall policy
    kind: tcp
    target: "${h}:${sb.ports.blocked}"
    tcp: { expect: blocked }
  - name: dns-ns1
    title: Internal DNS (ns1)
    group: Core network
    kind: dns
    target: "${h}:${sb.ports.ns1}"
    dns: { name: cosmic.region.sandbox, type: A, expect: { answer: { exactValues: [10.20.1.5] } } }
`;
}

/** Starts an agent with `yaml` (its HTTP server on a free port); stopped after all tests. */
async function startAgent(yaml: string, log: (d: string) => void): Promise<{ agent: Agent; http: HttpServer }> {
  const dir = mkdtempSync(join(tmpdir(), 'vakt-test-status-page-'));
  dirs.push(dir);
  const file = join(dir, 'vakt.yaml');
  writeFileSync(file, yaml);
  const logs = new PassThrough();
  logs.on('data', (d: Buffer) => log(d.toString()));
  const started = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
  const server = await startServer(started, '127.0.0.1', 0);
  stops.push(async () => {
    await started.stop();
    await server.close();
  });
  return { agent: started, http: server };
}

async function newPage(options: { locale?: string; javaScriptEnabled?: boolean } = {}): Promise<Page> {
  const context = await browser!.newContext({
    viewport: { width: 1100, height: 800 },
    locale: options.locale ?? 'en-GB',
    javaScriptEnabled: options.javaScriptEnabled ?? true,
  });
  contexts.push(context);
  return context.newPage();
}

/** When the page in the browser was rendered by the agent (the footer's <time datetime>). */
async function renderedAt(page: Page): Promise<number> {
  return Date.parse((await page.locator('footer time').getAttribute('datetime', { timeout: 2000 })) ?? '');
}

/** Waits (up to two refresh intervals) until the page shows a rendering from `since` or later; returns its time. */
async function renderingAfter(page: Page, since: number): Promise<number> {
  return waitFor(
    'a rendering after the change',
    async () => {
      // During a refresh the old document is gone for a moment; just look again.
      const t = await renderedAt(page).catch(() => NaN);
      return t >= since ? t : undefined;
    },
    2 * REFRESH_S * 1000 + 2000,
  );
}

/** Text of each row of the status tables: [system, status]. */
async function rows(page: Page): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const row of await page.locator('main table tbody tr').all()) {
    const name = (await row.locator('th').innerText()).trim();
    out[name] = (await row.locator('td').first().innerText()).trim();
  }
  return out;
}

beforeAll(async () => {
  await requireTool(CHROMIUM, ['--version'], 'chromium');
  mkdirSync(ARTIFACTS, { recursive: true });
  sandbox = await startSandbox({ ports: freeSandboxPorts() });
  ({ agent, http } = await startAgent(config(sandbox), (d) => (agentLog = (agentLog + d).slice(-20_000))));
  // playwright-core brings no browser: the system's Chromium, headless, with a fresh profile
  // (Playwright gives every launch its own temporary --user-data-dir and removes it on close).
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  await waitFor('every check ok', () => agent!.list().every((c) => c.status.state === 'ok' && c.history.length >= 2), 15_000);
}, 60_000);

afterAll(async () => {
  for (const c of contexts.splice(0)) await c.close().catch(() => undefined);
  await browser?.close();
  for (const stop of stops.splice(0)) await stop();
  await sandbox?.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('status page in headless Chromium', () => {
  let page: Page;
  /** Page loads of the main page (its meta refreshes after the first). */
  let loads = 0;

  it('renders the title, site, groups and every system as working', async () => {
    page = await newPage();
    page.on('load', () => loads++);
    const res = await page.goto(`${http!.url}/`);
    expect(res?.status()).toBe(200);
    // The configured title heads the page; the site is a line under it, not part of the heading.
    expect(await page.title()).toBe(TITLE);
    await expect.poll(() => page.locator('h1').innerText()).toBe(TITLE);
    expect(await page.locator('header .subtitle').innerText()).toBe('Checked from odense-dc1');
    expect(await page.locator('.summary').innerText()).toBe('All systems are working.');
    expect(await page.locator('h2').allInnerTexts()).toEqual(['Core network', 'Firewall policy', 'Patient records']);
    const states = await rows(page);
    expect(Object.keys(states).sort()).toEqual([
      'Cosmic login through firewall A',
      'Internal DNS (ns1)',
      'Patient records (Cosmic) through firewall A',
      'Patient records (Cosmic) through firewall B',
      'Remote desktop to EHR servers stays blocked',
    ]);
    for (const [name, state] of Object.entries(states)) expect(state, name).toBe(name.includes('stays blocked') ? '✓ Blocked as intended' : '✓ Working');
    // No targets, addresses or ports on a page meant for clinical departments.
    expect(await page.content()).not.toContain(`:${sandbox!.ports.fwA}`);
    expect(await page.locator('meta[http-equiv="refresh"]').getAttribute('content')).toBe(String(REFRESH_S));
    await page.screenshot({ path: join(ARTIFACTS, 'ok.png'), fullPage: true });
  });

  it('has basic accessibility: lang, headings, scoped table headers, labelled sparklines, readable contrast', async () => {
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    expect(await page.locator('h1').count()).toBe(1);
    const tables = await page.locator('table').count();
    expect(tables).toBe(3);
    expect(await page.locator('th:not([scope])').count()).toBe(0);
    expect(await page.locator('thead th[scope="col"]').count()).toBe(tables * 4);
    expect(await page.locator('tbody th[scope="row"]').count()).toBe(5);
    // Every column header has a name, the visually hidden one included.
    for (const th of await page.locator('thead th').all()) expect((await th.textContent())?.trim()).not.toBe('');
    const sparks = page.locator('svg.spark');
    expect(await sparks.count()).toBe(5);
    for (const svg of await sparks.all()) {
      expect(await svg.getAttribute('role')).toBe('img');
      expect(await svg.getAttribute('aria-label')).toMatch(/^Response times of the last \d+ checks, /);
    }
    // The state icons are decoration: the word says it (colour is never the only signal).
    expect(await page.locator('.icon:not([aria-hidden="true"])').count()).toBe(0);
    expect(await page.locator('[role="status"]').count()).toBe(1);
    // WCAG AA contrast (4.5:1) of every text element against its background.
    const low = await page.evaluate<string[]>(CONTRAST_CHECK);
    expect(low).toEqual([]);
  });

  it('shows a fault within one refresh of the agent seeing it, by its own meta refresh', async () => {
    const before = await renderedAt(page);
    const res = await fetch(`${sandbox!.controlUrl}/faults/fw-a/reject`, { method: 'POST' });
    expect(res.status).toBe(200);
    await res.text();
    const seen = await waitFor(
      'agent sees ehr-via-fw-a down',
      () => (agent!.get('ehr-via-fw-a')?.status.state === 'down' && agent!.get('cosmic-login-via-fw-a')?.status.state === 'down' ? Date.now() : undefined),
      10_000,
    );
    // The page reloads itself (never reloaded here); the first rendering after the agent saw the
    // fault must come within one refresh interval.
    const loadsBefore = loads;
    const shown = await renderingAfter(page, seen);
    expect(shown - seen).toBeLessThanOrEqual((REFRESH_S + 1) * 1000);
    expect(shown).toBeGreaterThan(before);
    expect(loads).toBeGreaterThan(loadsBefore);

    expect(await page.title()).toBe(`(1) ${TITLE}`);
    // One incident, two systems: one problem for the ward, not two.
    expect(await page.locator('.summary').innerText()).toBe('1 problem right now — 2 systems affected.');
    const states = await rows(page);
    expect(states['Patient records (Cosmic) through firewall A']).toBe('✕ Not reachable');
    expect(states['Cosmic login through firewall A']).toBe('✕ Not reachable (because Patient records (Cosmic) through firewall A is not working)');
    expect(states['Patient records (Cosmic) through firewall B']).toBe('✓ Working');
    expect(await page.locator('#incidents').innerText()).toBe('Current problems');
    const incident = await page.locator('ul.incidents li').allInnerTexts();
    expect(incident).toHaveLength(1);
    expect(incident[0]).toMatch(
      /^Patient records \(Cosmic\) through firewall A not reachable since \d\d:\d\d — 1 system affected: Cosmic login through firewall A\.$/,
    );
    // The failed runs are red marks in the sparkline, and its label says how many failed.
    const spark = page.locator('tr', { has: page.locator('th', { hasText: 'Patient records (Cosmic) through firewall A' }) }).locator('svg.spark');
    expect(await spark.getAttribute('aria-label')).toMatch(/, \d+ failed$/);
    expect(await spark.locator('rect').count()).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: join(ARTIFACTS, 'fault.png'), fullPage: true });
  });

  it('speaks Swedish to a Swedish browser (Accept-Language) and Danish with ?lang=da', async () => {
    const sv = await newPage({ locale: 'sv-SE' });
    const res = await sv.goto(`${http!.url}/`);
    expect(res?.headers()['content-language']).toBe('sv');
    expect(await sv.locator('html').getAttribute('lang')).toBe('sv');
    expect(await sv.locator('.summary').innerText()).toBe('1 problem just nu — 2 system påverkas.');
    const states = await rows(sv);
    expect(states['Patient records (Cosmic) through firewall A']).toBe('✕ Går inte att nå');
    expect(states['Patient records (Cosmic) through firewall B']).toBe('✓ Fungerar');
    expect(await sv.locator('#incidents').innerText()).toBe('Aktuella problem');
    expect(await sv.locator('thead th').first().innerText()).toBe('System');
    expect(await sv.locator('footer').innerText()).toContain(`Sidan uppdateras automatiskt var ${REFRESH_S}:e sekund.`);
    await sv.screenshot({ path: join(ARTIFACTS, 'sv.png'), fullPage: true });
    // A phone or a narrow window on a ward: no sideways scrolling (the sparkline column goes).
    await sv.setViewportSize({ width: 390, height: 844 });
    const fit = await sv.evaluate<{ scroll: number; width: number; wide: string[] }>(
      `(() => { const width = window.innerWidth; const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > width + 0.5).map((e) => e.tagName + ' ' + Math.round(e.getBoundingClientRect().right)); return { scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5) }; })()`,
    );
    expect(fit.scroll, `too wide: ${fit.wide.join(', ')}`).toBeLessThanOrEqual(fit.width);
    await sv.screenshot({ path: join(ARTIFACTS, 'sv-narrow.png'), fullPage: true });

    await sv.goto(`${http!.url}/?lang=da`);
    expect(await sv.locator('html').getAttribute('lang')).toBe('da');
    expect((await rows(sv))['Patient records (Cosmic) through firewall B']).toBe('✓ Virker');
  });

  it('works with JavaScript disabled, refresh included', async () => {
    const nojs = await newPage({ javaScriptEnabled: false });
    await nojs.goto(`${http!.url}/`);
    const first = await renderedAt(nojs);
    expect(await nojs.locator('h1').innerText()).toBe(TITLE);
    expect((await rows(nojs))['Patient records (Cosmic) through firewall A']).toBe('✕ Not reachable');
    expect(await nojs.locator('svg.spark').count()).toBe(5);
    // The meta refresh is HTML, not script: the page still reloads itself.
    await nojs.waitForEvent('load', { timeout: (REFRESH_S + 3) * 1000 });
    expect(await renderedAt(nojs)).toBeGreaterThan(first);
  });

  it('recovers on the page when the fault is cleared', async () => {
    const res = await fetch(`${sandbox!.controlUrl}/faults/reset`, { method: 'POST' });
    await res.text();
    const seen = await waitFor('agent sees every check ok', () => (agent!.list().every((c) => c.status.state === 'ok') ? Date.now() : undefined), 10_000);
    expect((await renderingAfter(page, seen)) - seen).toBeLessThanOrEqual((REFRESH_S + 1) * 1000);
    expect(await page.locator('.summary').innerText()).toBe('All systems are working.');
    expect(await page.locator('ul.incidents').count()).toBe(0);
  });

  it('says "Planned work until" for a window and counts none of it; after the window, a path the work broke is a change regression', async () => {
    const post = await fetch(`${http!.url}/api/v1/maintenance`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Firewall A software upgrade', checks: ['ehr-via-fw-a'], duration: '2h' }),
    });
    expect(post.status).toBe(201);
    const window = (await post.json()) as { id: string; end: string };
    // A time of day, and the date too when the window ends on another day (a run near midnight).
    const end = Date.parse(window.end);
    const day = (ms: number) => new Date(ms).toDateString();
    const until = new Intl.DateTimeFormat('en-GB', {
      hour: '2-digit',
      minute: '2-digit',
      ...(day(end) === day(Date.now()) ? {} : { day: 'numeric', month: 'short' }),
    }).format(end);
    // The work takes the path down (and the login through it): planned, so no problem for the ward.
    await (await fetch(`${sandbox!.controlUrl}/faults/fw-a/reject`, { method: 'POST' })).text();
    const seen = await waitFor(
      'the path down in planned work',
      () => (agent!.get('cosmic-login-via-fw-a')?.status.state === 'down' ? Date.now() : undefined),
      10_000,
    );
    await renderingAfter(page, seen);
    expect(await page.locator('.summary').innerText()).toBe('All systems are working.');
    expect(await page.locator('ul.incidents').count()).toBe(0);
    const states = await rows(page);
    expect(states['Patient records (Cosmic) through firewall A']).toBe(`◇ Planned work until ${until} (not reachable)`);
    expect(states['Cosmic login through firewall A']).toBe('✕ Not reachable (because of planned work on Patient records (Cosmic) through firewall A)');
    expect(await page.locator('ul.planned li').allInnerTexts()).toEqual([`Firewall A software upgrade until ${until} (1 system)`]);
    await page.screenshot({ path: join(ARTIFACTS, 'planned-work.png'), fullPage: true });

    // The work ends with the path still refusing: the check worked before, so the change broke it.
    expect((await fetch(`${http!.url}/api/v1/maintenance/${window.id}`, { method: 'DELETE' })).status).toBe(200);
    const found = await waitFor('the change regression', () => (agent!.get('ehr-via-fw-a')?.change ? Date.now() : undefined), 15_000);
    await renderingAfter(page, found);
    expect(await page.locator('.summary').innerText()).toBe('1 problem right now — 2 systems affected.');
    expect((await rows(page))['Patient records (Cosmic) through firewall A']).toMatch(
      /^✕ Not reachable \(after the planned work ended at \d\d:\d\d, it fails; it worked before\)$/,
    );
    expect(await page.locator('ul.planned').count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'change-regression.png'), fullPage: true });

    // Put right: back at its old level, the regression clears.
    await (await fetch(`${sandbox!.controlUrl}/faults/reset`, { method: 'POST' })).text();
    const cleared = await waitFor('the regression to clear', () => (agent!.get('ehr-via-fw-a')?.change === undefined ? Date.now() : undefined), 20_000);
    await renderingAfter(page, cleared);
    expect(await page.locator('.summary').innerText()).toBe('All systems are working.');
  });

  it('agent log has no errors', () => {
    expect(agentLog).not.toMatch(/"level":(50|60)/);
  });
});

type Lang = 'en' | 'sv' | 'da' | 'nb' | 'fi';
const LOCALES: Record<Lang, string> = { en: 'en-GB', sv: 'sv-SE', da: 'da-DK', nb: 'nb-NO', fi: 'fi-FI' };

// What the second agent's config writes for people to read, in the languages it gives.
const TRUTH_TITLE = {
  en: 'Region Syddanmark IT status',
  da: 'Region Syddanmarks IT-driftstatus',
  sv: 'IT-driftstatus, Region Syddanmark',
  nb: 'IT-driftsstatus, Region Syddanmark',
  fi: 'Region Syddanmarkin IT-palvelujen tila',
};
const FW_B = {
  en: 'Patient records (Cosmic) through firewall B',
  sv: 'Patientjournalen (Cosmic) via brandvägg B',
  da: 'Patientjournalen (Cosmic) via firewall B',
  nb: 'Pasientjournalen (Cosmic) via brannmur B',
  fi: 'Potilaskertomus (Cosmic) palomuurin B kautta',
};
const RDP = {
  en: 'Remote desktop to EHR servers stays blocked',
  sv: 'Fjärrskrivbord till journalservrarna hålls blockerat',
  da: 'Fjernskrivebord til journalserverne holdes blokeret',
  nb: 'Eksternt skrivebord til journalserverne holdes blokkert',
  fi: 'Etätyöpöytä potilastietopalvelimille pysyy estettynä',
};
const DIRECTORY = {
  en: 'Directory login (domain controller)',
  sv: 'Kataloginloggning (domänkontrollant)',
  da: 'Kataloglogin (domænecontroller)',
  nb: 'Kataloginnlogging (domenekontroller)',
  fi: 'Hakemistokirjautuminen (toimialueen ohjauskone)',
};
/** Not translated: every language reads the plain title. */
const IDP = 'Single sign-on (token service)';
const GROUPS = {
  'Patient records': { sv: 'Patientjournal', da: 'Patientjournal', nb: 'Pasientjournal', fi: 'Potilaskertomus' },
  'Firewall policy': { sv: 'Brandväggsregler', da: 'Firewallregler', nb: 'Brannmurregler', fi: 'Palomuurisäännöt' },
  Login: { sv: 'Inloggning', da: 'Login', nb: 'Innlogging', fi: 'Kirjautuminen' },
};
const group = (name: keyof typeof GROUPS, lang: Lang) => (lang === 'en' ? name : GROUPS[name][lang]);

/** What the page must say in each language once the port is open and both logins are refused. */
const SAYS: Record<Lang, { open: string; locked: string; invalidClient: string; cert: (date: string) => string; summary: string; problems: string }> = {
  en: {
    open: '✕ Reachable — should be blocked',
    locked: '✕ Login refused (account locked)',
    invalidClient: '✕ Login refused (application credentials not accepted)',
    cert: (d) => `◐ Certificate expires ${d}`,
    summary: '4 problems right now.',
    problems: 'Current problems',
  },
  sv: {
    open: '✕ Går att nå — ska vara blockerad',
    locked: '✕ Inloggningen nekades (kontot är låst)',
    invalidClient: '✕ Inloggningen nekades (applikationens inloggningsuppgifter godtas inte)',
    cert: (d) => `◐ Certifikatet går ut ${d}`,
    summary: '4 problem just nu.',
    problems: 'Aktuella problem',
  },
  da: {
    open: '✕ Kan nås — skal være blokeret',
    locked: '✕ Login afvist (kontoen er låst)',
    invalidClient: '✕ Login afvist (applikationens loginoplysninger accepteres ikke)',
    cert: (d) => `◐ Certifikatet udløber ${d}`,
    summary: '4 problemer lige nu.',
    problems: 'Aktuelle problemer',
  },
  nb: {
    open: '✕ Kan nås — skal være blokkert',
    locked: '✕ Innlogging avvist (kontoen er låst)',
    invalidClient: '✕ Innlogging avvist (applikasjonens innloggingsopplysninger godtas ikke)',
    cert: (d) => `◐ Sertifikatet utløper ${d}`,
    summary: '4 problemer akkurat nå.',
    problems: 'Aktuelle problemer',
  },
  fi: {
    open: '✕ Tavoitettavissa — pitäisi olla estetty',
    locked: '✕ Kirjautuminen hylättiin (tili on lukittu)',
    invalidClient: '✕ Kirjautuminen hylättiin (sovelluksen tunnistetietoja ei hyväksytä)',
    cert: (d) => `◐ Varmenne vanhenee ${d}`,
    summary: '4 häiriötä juuri nyt.',
    problems: 'Ajankohtaiset häiriöt',
  },
};

function truthConfig(sb: Sandbox): string {
  const h = sb.host;
  const ca = join(sandboxCertDir(), 'ca.pem');
  const secrets = sandboxSecretDir();
  const json = (v: unknown) => JSON.stringify(v);
  return `
agent:
  labels: { site: odense-dc1 }
  startSpread: 100ms
  statusPage:
    title: ${json(TRUTH_TITLE)}
    refresh: 60
    groups: ${json(GROUPS)}
defaults: { interval: 1s, timeout: 800ms, retries: 0 }
checks:
  # The sandbox's certificate is valid for twenty years: a warning longer than that makes it "expiring".
  - name: ehr-via-fw-b
    title: ${json(FW_B)}
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwB}"
    tcp: { tls: { serverName: ehr.sandbox.vakt.test, caFile: "${ca}", expiryWarning: 9000d } }
  - name: rdp-blocked
    title: ${json(RDP)}
    group: Firewall policy
    kind: tcp
    target: "${h}:${sb.ports.blocked}"
    tcp: { expect: blocked }
  - name: idp-token
    title: ${IDP}
    group: Login
    kind: oidc
    target: "https://${h}:${sb.ports.loginTls}"
    interval: 2s
    timeout: 2s
    secrets: { client_secret: { file: "${join(secrets, 'idp-client-secret')}" } }
    oidc: { clientId: vakt-probe, clientSecret: client_secret, scope: ehr.read, tls: { caFile: "${ca}" } }
  - name: directory-bind
    title: ${json(DIRECTORY)}
    group: Login
    kind: ldap
    target: "ldap://${h}:${sb.ports.ldap}"
    interval: 2s
    timeout: 2s
    secrets: { password: { file: "${join(secrets, 'probe-password')}" } }
    ldap: { bindDn: "uid=svc-vakt-probe,ou=people,dc=region,dc=sandbox", password: password }
`;
}

describe('status page truth in headless Chromium', () => {
  let truth: { agent: Agent; http: HttpServer };
  /** The day the sandbox's server certificate expires (the earliest of its chain), as the page writes it. */
  let expires: string;

  const state = (name: string) => truth.agent.get(name)?.status.state;
  const reason = (name: string) => {
    const r = truth.agent.get(name)?.last?.result;
    return r?.failure?.reason ?? r?.degraded?.reason;
  };
  /** Opens the page in `lang` (the browser's locale, so its Accept-Language). */
  async function open(lang: Lang): Promise<Page> {
    const p = await newPage({ locale: LOCALES[lang] });
    const res = await p.goto(`${truth.http.url}/`);
    expect(res?.headers()['content-language']).toBe(lang);
    return p;
  }
  /** The banner's count of problems equals the problems the page lists. */
  async function countsWhatItLists(p: Page): Promise<number> {
    const summary = await p.locator('.summary').innerText();
    const listed = await p.locator('ul.incidents li').count();
    expect(Number(/\d+/.exec(summary)?.[0]), `"${summary}" against ${listed} listed`).toBe(listed);
    return listed;
  }
  async function fault(path: string): Promise<void> {
    const res = await fetch(`${sandbox!.controlUrl}/faults/${path}`, { method: 'POST' });
    expect(res.status, path).toBe(200);
    await res.text();
  }

  beforeAll(async () => {
    truth = await startAgent(truthConfig(sandbox!), (d) => (agentLog = (agentLog + d).slice(-20_000)));
    const cert = new X509Certificate(readFileSync(join(sandboxCertDir(), 'ehr.pem')));
    expires = new Intl.DateTimeFormat('sv-SE', { year: 'numeric', month: '2-digit', day: '2-digit' }).format(Date.parse(cert.validTo));
    await waitFor(
      'the certificate check degraded (cert_expiring), every other check ok',
      () =>
        state('ehr-via-fw-b') === 'degraded' &&
        reason('ehr-via-fw-b') === 'cert_expiring' &&
        ['rdp-blocked', 'idp-token', 'directory-bind'].every((n) => state(n) === 'ok'),
      20_000,
    );
  }, 30_000);

  it('heads the page with the configured title, the site under it; lists the certificate it counts, with its date', async () => {
    const p = await open('en');
    expect(await p.locator('h1').innerText()).toBe(TRUTH_TITLE.en);
    expect(await p.title()).toBe(`(1) ${TRUTH_TITLE.en}`);
    expect(await p.locator('header .subtitle').innerText()).toBe('Checked from odense-dc1');
    // A degraded check is a problem: counted, listed, and the banner amber (nothing is down).
    expect(await p.locator('.summary').innerText()).toBe('1 problem right now.');
    expect(await p.locator('.summary').getAttribute('class')).toBe('summary warn');
    expect(await countsWhatItLists(p)).toBe(1);
    expect(await p.locator('ul.incidents li').innerText()).toMatch(
      new RegExp(`^Patient records \\(Cosmic\\) through firewall B: certificate expires ${expires} \\(since \\d\\d:\\d\\d\\)\\.$`),
    );
    const states = await rows(p);
    expect(states[FW_B.en]).toBe(`◐ Certificate expires ${expires}`);
    expect(Object.values(states)).not.toContain('◐ Slow');
    expect(states[RDP.en]).toBe('✓ Blocked as intended');
    expect(await p.evaluate<string[]>(CONTRAST_CHECK)).toEqual([]);
    await p.screenshot({ path: join(ARTIFACTS, 'truth-certificate.png'), fullPage: true });
  });

  it('reads a port that must stay blocked and answers as open, not "Not reachable"', async () => {
    await fault('policy/open');
    await waitFor('rdp-blocked down (policy_open)', () => state('rdp-blocked') === 'down' && reason('rdp-blocked') === 'policy_open', 10_000);
    const p = await open('en');
    const states = await rows(p);
    expect(states[RDP.en]).toBe('✕ Reachable — should be blocked');
    expect(Object.values(states).filter((s) => s.includes('Not reachable'))).toEqual([]);
    expect(await p.locator('.summary').innerText()).toBe('2 problems right now.');
    expect(await countsWhatItLists(p)).toBe(2);
    expect(await p.locator('ul.incidents li').allInnerTexts()).toContainEqual(
      expect.stringMatching(/^Remote desktop to EHR servers stays blocked: reachable — should be blocked \(since \d\d:\d\d\) — no other systems affected\.$/),
    );
    await p.screenshot({ path: join(ARTIFACTS, 'truth-policy-open.png'), fullPage: true });
  });

  it('reads a refused login as refused, with why: a refused client secret, a locked account', async () => {
    await fault('idp/invalid_client');
    await fault('ldap/locked');
    await waitFor('both logins down (auth)', () => ['idp-token', 'directory-bind'].every((n) => state(n) === 'down' && reason(n) === 'auth'), 10_000);
    const p = await open('en');
    const states = await rows(p);
    expect(states[IDP]).toBe('✕ Login refused (application credentials not accepted)');
    expect(states[DIRECTORY.en]).toBe('✕ Login refused (account locked)');
    expect(await p.locator('.summary').innerText()).toBe('4 problems right now.');
    expect(await countsWhatItLists(p)).toBe(4);
    expect(await p.locator('ul.incidents li').allInnerTexts()).toContainEqual(
      expect.stringMatching(/^Directory login \(domain controller\): login refused \(account locked\) \(since \d\d:\d\d\) — no other systems affected\.$/),
    );
    await p.screenshot({ path: join(ARTIFACTS, 'truth-login-refused.png'), fullPage: true });
  });

  for (const lang of ['en', 'sv', 'da', 'nb', 'fi'] as const) {
    it(`says each of these in ${lang}, with the config's titles and group names in ${lang}`, async () => {
      const p = await open(lang);
      expect(await p.locator('html').getAttribute('lang')).toBe(lang);
      expect(await p.locator('h1').innerText()).toBe(TRUTH_TITLE[lang]);
      const says = SAYS[lang];
      expect(await p.locator('.summary').innerText()).toBe(says.summary);
      expect(await countsWhatItLists(p)).toBe(4);
      const headings = await p.locator('h2').allInnerTexts();
      expect(headings[0]).toBe(says.problems);
      expect(headings.slice(1).sort()).toEqual([group('Firewall policy', lang), group('Login', lang), group('Patient records', lang)].sort());
      const states = await rows(p);
      expect(states).toEqual({
        [FW_B[lang]]: says.cert(expires),
        [RDP[lang]]: says.open,
        [DIRECTORY[lang]]: says.locked,
        [IDP]: says.invalidClient,
      });
      await p.screenshot({ path: join(ARTIFACTS, `truth-${lang}.png`), fullPage: true });
    });
  }

  it('takes ?lang= over the browser, and keeps the plain titles in the API', async () => {
    const p = await newPage({ locale: 'en-GB' });
    await p.goto(`${truth.http.url}/?lang=fi`);
    expect(await p.locator('html').getAttribute('lang')).toBe('fi');
    expect(await p.locator('h1').innerText()).toBe(TRUTH_TITLE.fi);
    const api = (await (await fetch(`${truth.http.url}/api/v1/checks`)).json()) as { checks: { name: string; title: string; group: string }[] };
    const byName = Object.fromEntries(api.checks.map((c) => [c.name, c]));
    expect(byName['ehr-via-fw-b']).toMatchObject({ title: FW_B.en, group: 'Patient records' });
    expect(byName['rdp-blocked']).toMatchObject({ title: RDP.en, group: 'Firewall policy' });
    expect(byName['idp-token']).toMatchObject({ title: IDP, group: 'Login' });
    await fault('reset');
    expect(agentLog).not.toMatch(/"level":(50|60)/);
  });
});

/**
 * Runs in the page: every element with its own text whose contrast against the first opaque
 * background behind it is below WCAG AA (4.5:1, or 3:1 for large text). Returns descriptions.
 */
const CONTRAST_CHECK = `(() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return [0, 0, 0, 0]; const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c[3] > 0) return c; } return [255, 255, 255, 1]; };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
    if (!own) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || cs.display === 'none' || el.closest('.visually-hidden')) continue;
    const fg = parse(cs.color);
    const l1 = lum(fg), l2 = lum(bg(el));
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) out.push(el.tagName.toLowerCase() + '.' + el.className + ' "' + el.textContent.trim().slice(0, 40) + '" ' + ratio.toFixed(2));
  }
  return out;
})()`;
