// Incident 2 replayed (Region Uppsala: after an update, login became so slow that users could not
// get in, while every port still answered). A "directory" namespace runs OpenLDAP's slapd; an
// "app" namespace runs a login web app that binds to the directory on every sign-in
// (login-lib.ts); the agent runs in a "clinic" namespace with a synthetic web login (form, POST,
// landing page, logout) and an LDAP bind-and-search of the directory, which it reaches through the
// app's network (the app namespace routes), over the same app↔directory link. A real Prometheus
// with the shipped rules (timing scaled, harness.ts) and the shipped Alertmanager.
// Fault: the app↔directory link delays every packet to the directory's port 389 (the NFQUEUE delay
// line, helpers.ts delayIncoming; this kernel has no netem): first 600 ms, which makes a login
// slow but leaves every run well inside its timeout; then 3 s, which makes it time out.
// Expected: first the login `degraded` (reason slow) naming the slow step (`login`, the POST that
// binds), the directory `degraded` naming its slow phase (`bind`), nothing failing; VaktLoginSlow
// firing and paged. Then the login and the directory `down` (timeout), the login blamed on the
// directory, one VaktRootCauseDown (for the directory), VaktLoginSlow gone. Then fixed: all
// recovers and resolves.
// The week-over-week alert (VaktCheckSlowerThanLastWeek) compares with `offset 1w` and cannot
// fire in a replay: there is no week of history. VaktLoginSlow (an absolute limit, or a factor
// over the learnt baseline) is the alert for "far above its normal level" here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delayIncoming, requireRoot, type LinkDelay } from '../helpers.js';
import {
  alertIs,
  Cleanup,
  describeAlert,
  expectQuiet,
  inNs,
  Net,
  problems,
  removeStaleIncidentNets,
  SLOW_TO_RESOLVE,
  startAgent,
  startRulesPrometheus,
  Stopwatch,
  type AgentProcess,
  type Alert,
  type CheckView,
  type RulesPrometheus,
} from './harness.js';
import { ACCOUNTS, PEOPLE, startLoginApp, startSlapd } from './login-lib.js';

const cleanup = new Cleanup();
let net: Net;
let agent: AgentProcess;
let prometheus: RulesPrometheus;
let dirNs = '';
let dirDev = '';
let delay: LinkDelay | undefined;

const LOGIN = 'ehr-login';
const DIRECTORY = 'directory';
// Both checks: every 5 s, 4 s timeout, one confirmation 1 s later (timeout ≤ interval).
const CHECK = { interval: '5s', timeout: '4s', retries: 1, retryInterval: '1s' };
// Slow: the step `login` (the POST that binds) over 500 ms (it takes ~30 ms unslowed) and the
// directory's bind over 300 ms; absolute limits, not the learnt baseline: a login of ~30 ms on a
// shared 2-core machine times 10 is 300 ms, which noise alone reaches, and the baseline needs
// baselineMinRuns (default 20) good runs, 100 s at this interval.
const SLOW = { loginDegradedAbove: '500ms', bindDegradedAbove: '300ms' };
// The delays, per packet to port 389. A bind from a new connection waits for the SYN and then the
// bind request: 2 × the delay (the app's login step ~1.2 s at 600 ms, the ldap check with its
// search ~1.8 s: inside the 4 s timeout); at 3 s, ≥ 6 s: a timeout.
const DELAY_SLOW_MS = 600;
const DELAY_DOWN_MS = 3000;

const BOUNDS_SLOW = {
  // the login degraded: the next run (≤ 5 s + 1 % jitter) and its ~1.3 s, + 3.5 s
  detect: 10,
  // the directory degraded: its own next run (it keeps its own phase, so it may come after the
  // login's) and its ~1.8 s: the same 10 s
  directoryDetect: 10,
  // VaktLoginSlow{check=ehr-login} firing: its expr needs increase(vakt_probe_degraded_total
  // {reason="slow"}[10m]) > 0, and the counter's series is born at 1 with the first slow run, so
  // the second slow run (+5 s) starts it; then a scrape (1 s), an evaluation (1 s) and its for:
  // 15m × 0.1 = 90 s: 6.4 + 5 + 1 + 1 + 90 = 103.4 s, + 11.6 s
  alert: 115,
  // its page: alert + the page route's group_wait (10 s, not scaled)
  page: 130,
};
const BOUNDS_DOWN = {
  // the login down: the next run (≤ 5 s) times out (4 s), its confirmation 1 s later too (4 s):
  // interval + timeout + retries × (retryInterval + timeout) = 14 s, + 6 s
  detect: 20,
  // VaktRootCauseDown{cause=directory} firing: the directory down by the same 14 s, a scrape,
  // its for: 1m × 0.1 = 6 s and an evaluation: 22 s, + 8 s
  alert: 30,
};
// The next runs (≤ 5 s) succeed (recoverAfter 1); scraped, evaluated: ~8 s; VaktRootCauseDown
// keeps firing its keep_firing_for (1m × 0.1 = 6 s): ~14 s, + 11 s.
const BOUNDS_FIXED = { recovered: 25 };

type StepView = { name: string; durationSeconds: number; slow?: boolean; failure?: { reason: string } | null };
const stepsOf = (c: CheckView) => (c.lastResult?.steps ?? []) as StepView[];

/** The network part of an address's /30 (`10.233.7.6` → `10.233.7.4/30`). */
function net30(addr: string): string {
  const parts = addr.split('.').map(Number);
  parts[3] = parts[3]! & ~3;
  return `${parts.join('.')}/30`;
}

async function setDelay(ms: number | undefined, queue: number): Promise<void> {
  // The new line first, its rule on top; then the old one goes (a packet it still held is lost
  // and retransmitted: it only makes the run slower).
  const next = ms === undefined ? undefined : await delayIncoming(dirNs, dirDev, ms, 389, queue);
  const old = delay;
  delay = next;
  await old?.remove();
}

beforeAll(async () => {
  requireRoot();
  await removeStaleIncidentNets();
  net = new Net(cleanup);
  dirNs = await net.namespace('dir');
  const appNs = await net.namespace('app');
  const clinicNs = await net.namespace('clinic');
  const appDir = await net.link(appNs, dirNs);
  const clinicApp = await net.link(clinicNs, appNs);
  dirDev = appDir.b.dev;
  // The clinic reaches the directory through the app's network (the data centre), on the same link.
  await inNs(appNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await inNs(clinicNs, 'ip', ['route', 'add', net30(appDir.b.addr), 'via', clinicApp.b.addr]);
  await inNs(dirNs, 'ip', ['route', 'add', net30(clinicApp.a.addr), 'via', appDir.a.addr]);
  const scrape = await net.link(undefined, clinicNs);
  const slapd = await startSlapd(cleanup, dirNs, appDir.b.addr);
  const app = await startLoginApp(cleanup, appNs, clinicApp.b.addr, slapd.url);
  cleanup.add('remove the delay', async () => {
    await delay?.remove();
    delay = undefined;
  });
  const probeUser = 'svc-vakt';
  agent = await startAgent(cleanup, {
    name: 'clinic',
    netns: clinicNs,
    listen: `${scrape.b.addr}:9464`,
    env: { VAKT_TEST_PROBE_PASSWORD: ACCOUNTS[probeUser] },
    config: [
      'agent:',
      '  labels: { site: clinic-uppsala }',
      '  startSpread: 0s',
      `defaults: { interval: ${CHECK.interval}, timeout: ${CHECK.timeout}, retries: ${CHECK.retries}, retryInterval: ${CHECK.retryInterval} }`,
      'checks:',
      `  - name: ${DIRECTORY}`,
      '    title: Directory (LDAP)',
      '    group: Login',
      '    kind: ldap',
      `    target: ${slapd.url}`,
      '    secrets: { bind_password: { env: VAKT_TEST_PROBE_PASSWORD } }',
      '    ldap:',
      `      bindDn: "uid=${probeUser},${PEOPLE}"`,
      '      password: bind_password',
      `      search: { baseDn: "${PEOPLE}", filter: "(uid=nurse1)", minEntries: 1 }`,
      `      bindDegradedAbove: ${SLOW.bindDegradedAbove}`,
      `  - name: ${LOGIN}`,
      '    title: Patient records login',
      '    group: Patient records',
      '    kind: http',
      `    target: ${app}`,
      `    dependsOn: [${DIRECTORY}]`,
      '    secrets: { password: { env: VAKT_TEST_PROBE_PASSWORD } }',
      '    http:',
      '      steps:',
      `        - { name: form, url: /login, expect: { bodyContains: ["Sign in"] }, extract: { csrf: { regex: 'name="csrf" value="([0-9a-f]+)"' } } }`,
      `        - { name: login, method: POST, url: /login, form: { username: ${probeUser}, password: "\${secret.password}", csrf: "\${var.csrf}" }, degradedAbove: ${SLOW.loginDegradedAbove} }`,
      `        - { name: home, url: /app/home, expect: { status: [200], bodyMatches: ['<h1>Welcome</h1>'] } }`,
      '        - { name: logout, url: /logout }',
      '',
    ].join('\n'),
  });
  prometheus = await startRulesPrometheus(cleanup, [{ address: agent.address, labels: { site: 'clinic-uppsala' } }], { alertmanager: true });
  await prometheus.ready(1);
}, 180_000);

afterAll(async () => {
  await cleanup.run();
});

describe('incident 2: login slow after an update, then timing out', () => {
  // Every alert seen in Prometheus and every check state seen in the agent, by phase.
  const seen: Record<'slow' | 'down', { alerts: Alert[]; states: Set<string> }> = {
    slow: { alerts: [], states: new Set() },
    down: { alerts: [], states: new Set() },
  };
  let phase: keyof typeof seen | undefined;
  let sampling = true;
  let sampler: Promise<void> = Promise.resolve();

  it('baseline: both checks ok, no alert, for 20 s', async () => {
    await expectQuiet([agent], prometheus, 20_000);
    const login = await agent.check(LOGIN);
    expect(stepsOf(login).map((s) => s.name)).toEqual(['form', 'login', 'home', 'logout']);
    sampler = (async () => {
      while (sampling) {
        const p = phase;
        if (p) {
          seen[p].alerts.push(...(await prometheus.alerts().catch(() => [])));
          for (const c of await agent.checks().catch(() => [])) seen[p].states.add(`${c.name} ${c.state}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
  });

  it(`the directory link slowed (${DELAY_SLOW_MS} ms a packet): login degraded naming the slow step, nothing times out, VaktLoginSlow`, async () => {
    phase = 'slow';
    const watch = new Stopwatch('login: directory link slow', BOUNDS_SLOW);
    watch.fault();
    await setDelay(DELAY_SLOW_MS, 7);
    const login = await watch.until('detect', async () => {
      const c = await agent.check(LOGIN);
      return c.state === 'degraded' ? c : undefined;
    });
    expect(login.lastResult?.degraded?.reason).toBe('slow');
    expect(login.lastResult?.degraded?.message).toMatch(/^step login took [\d.]+ s \(limit 500 ms\)/);
    const steps = stepsOf(login);
    expect(steps.filter((s) => s.slow).map((s) => s.name)).toEqual(['login']);
    const loginStep = steps.find((s) => s.name === 'login')!;
    expect(loginStep.durationSeconds).toBeGreaterThan((2 * DELAY_SLOW_MS) / 1000 - 0.05);
    expect(loginStep.durationSeconds).toBeLessThan(Number.parseFloat(CHECK.timeout));
    expect(steps.find((s) => s.name === 'form')!.durationSeconds).toBeLessThan(0.5);
    // The directory seen from the clinic: its bind slow, named (its run may come after the login's).
    const directory = await watch.until('directoryDetect', async () => {
      const c = await agent.check(DIRECTORY);
      return c.state === 'degraded' ? c : undefined;
    });
    expect(directory.lastResult?.degraded?.message).toMatch(/^bind took/);
    const firing = await watch.until(
      'alert',
      async () => (await prometheus.alerts()).find((a) => alertIs(a, 'VaktLoginSlow', { check: LOGIN }) && a.state === 'firing'),
      async () =>
        `alerts: ${(await prometheus.alerts()).map(describeAlert).join('; ')}; checks: ${(await agent.checks()).map((c) => `${c.name} ${c.state}`).join(', ')}`,
    );
    expect(firing.labels.severity).toBe('page');
    expect(firing.annotations.description).toContain('the slowest step is login');
    const pages = await watch.until('page', () =>
      Promise.resolve(
        prometheus.pages().some((n) => n.alerts.some((a) => a.labels.alertname === 'VaktLoginSlow' && a.labels.check === LOGIN && a.status === 'firing')),
      ),
    );
    expect(pages).toBe(true);
    // Nothing timed out, nothing failed: the slowdown was seen while it was still only slow.
    expect([...seen.slow.states].filter((s) => !/ (ok|degraded)$/.test(s))).toEqual([]);
    expect(seen.slow.alerts.filter((a) => alertIs(a, 'VaktRootCauseDown')).map(describeAlert)).toEqual([]);
    watch.report({
      checks: CHECK,
      slow: SLOW,
      fault: `NFQUEUE delay of ${DELAY_SLOW_MS} ms on every packet to the directory's port 389 over the app↔directory link`,
    });
  });

  it(`the delay raised past the timeout (${DELAY_DOWN_MS} ms a packet): login down (timeout in step login), blamed on the directory, one root-cause alert`, async () => {
    phase = 'down';
    const watch = new Stopwatch('login: directory link past the timeout', BOUNDS_DOWN);
    watch.fault();
    await setDelay(DELAY_DOWN_MS, 8);
    const login = await watch.until('detect', async () => {
      const c = await agent.check(LOGIN);
      return c.state === 'down' ? c : undefined;
    });
    expect(login.lastResult?.failure?.reason).toBe('timeout');
    expect(login.lastResult?.failure?.message).toMatch(/^step login: timed out/);
    const firing = await watch.until(
      'alert',
      async () => {
        const a = (await prometheus.alerts()).filter((x) => alertIs(x, 'VaktRootCauseDown') && x.state === 'firing');
        return a.length > 0 ? a : undefined;
      },
      async () => `alerts: ${(await prometheus.alerts()).map(describeAlert).join('; ')}`,
    );
    expect(firing.map((a) => `${a.labels.alertname} ${a.labels.check} ${a.labels.cause}`)).toEqual([`VaktRootCauseDown ${DIRECTORY} ${DIRECTORY}`]);
    expect(Number(firing[0]!.value)).toBe(1); // the login
    const directory = await agent.check(DIRECTORY);
    expect(directory.state).toBe('down');
    expect(directory.lastResult?.failure?.reason).toBe('timeout');
    expect((await agent.check(LOGIN)).cause).toBe(DIRECTORY);
    // Down is not slow: VaktLoginSlow is gone for both.
    expect((await prometheus.alerts()).filter((a) => alertIs(a, 'VaktLoginSlow')).map(describeAlert)).toEqual([]);
    watch.report({ checks: CHECK, fault: `NFQUEUE delay raised to ${DELAY_DOWN_MS} ms` });
  });

  it('the delay removed: everything recovers and every alert resolves', async () => {
    const watch = new Stopwatch('login: directory link fixed', BOUNDS_FIXED);
    watch.fault();
    await setDelay(undefined, 0);
    phase = undefined;
    await watch.until(
      'recovered',
      async () => (await problems([agent], prometheus, SLOW_TO_RESOLVE)).length === 0,
      async () => `still: ${(await problems([agent], prometheus, SLOW_TO_RESOLVE)).join('; ')}`,
    );
    await expectQuiet([agent], prometheus, 8_000, SLOW_TO_RESOLVE);
    sampling = false;
    await sampler;
    // The login was a dependent while down: never a root-cause alert of its own.
    expect(seen.down.alerts.filter((a) => alertIs(a, 'VaktRootCauseDown', { check: LOGIN }) && a.state === 'firing').map(describeAlert)).toEqual([]);
    const paged = prometheus.pages().flatMap((n) => n.alerts.map((a) => `${a.labels.alertname}{check=${a.labels.check}} ${a.status}`));
    process.stdout.write(`incident login: paged: ${paged.join('; ') || 'nothing'}\n`);
    watch.report({ fix: 'the delay line removed' });
  });
});
