// Incident 4 replayed (Region Sörmland and Västra Götaland: clinics could not log in while the
// region's systems worked from elsewhere). A "data centre" namespace holds two services on one
// service address: patient records on the web (python3 http.server) and a records database port
// (a TCP listener). Two site namespaces, site-a and site-b, each reach that address over an
// uplink of their own (a veth to the data centre) and run one vakt agent with the same config,
// told apart only by `--site` (its `site` label); each agent is scraped by the one Prometheus,
// with the shipped rules (timing scaled, harness.ts), over a link to the host that the cut leaves
// alone.
// Cut: iptables DROP of everything arriving over the uplink, at both ends (the site's INPUT from
// its uplink and the data centre's INPUT from that uplink): packets leave and vanish, as on a
// dead WAN link, so the checks fail by timeout (not "no route", as `ip link set down` would).
// Expected: site A cut: both checks down at site A, ok at site B; VaktCheckDownSomeSites firing
// for each check (cause = the check), VaktCheckDownAllSites never seen, not even pending; in the
// Alertmanager the site's VaktRootCauseDown held inhibited by it. Restored: all recovers. Both
// cut: VaktCheckDownAllSites firing for each check, VaktCheckDownSomeSites never firing.
// Restored: all recovers and every alert resolves.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IptablesRules, requireRoot, spawnInNetns, startNetnsListener, waitFor, waitForLine } from '../helpers.js';
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
  type Link,
  type RulesPrometheus,
} from './harness.js';

const cleanup = new Cleanup();
const SITES = ['site-a', 'site-b'] as const;
type Site = (typeof SITES)[number];
const CHECKS = ['ehr-web', 'records-db'];

// Every check: every 3 s, 1 s timeout, one confirmation 1 s later. Down after at most
// interval + timeout + retries × (retryInterval + timeout) = 3 + 1 + 1 × 2 = 6 s
// (docs/configuration.md, "Check state"), plus a jitter of at most 1 % of the interval.
const CHECK = { interval: '3s', timeout: '1s', retries: 1, retryInterval: '1s' };
// The vakt.sites group is evaluated every 6 s (1m × 0.1); its alerts go pending at the first
// evaluation after the down state is scraped (1 s) and its root cause recorded by vakt.outage
// (1 s), and fire one `for:` later: SomeSites 3m × 0.1 = 18 s, AllSites 2m × 0.1 = 12 s.
const BOUNDS_ONE_SITE = {
  // every check down at site A: 6 s + 3 s for a busy machine
  detect: 9,
  // VaktCheckDownSomeSites firing for every check: 6 + 1 + 1 + up to 6 (the group's next
  // evaluation) + 18 + 1 = 33 s, + 7 s
  alert: 40,
};
const BOUNDS_ALL_SITES = {
  // every check down at both sites
  detect: 9,
  // VaktCheckDownAllSites firing for every check: 6 + 1 + 1 + up to 6 + 12 + 1 = 27 s, + 8 s
  alert: 35,
};
// Restored: the next run (≤ 3 s) succeeds and recoverAfter is 1; scraped (1 s); the root-cause
// alerts end at the next vakt.outage evaluation (1 s) and keep firing 6 s (keep_firing_for 1m ×
// 0.1), the site alerts end at the next vakt.sites one (≤ 6 s) and keep firing 12 s (2m × 0.1,
// so that the root-cause alerts they mute end first): 22 s, + 13 s.
const BOUNDS_RESTORED = { recovered: 35 };

let net: Net;
const agents = new Map<Site, AgentProcess>();
const uplinks = new Map<Site, Link>();
let prometheus: RulesPrometheus;

/** The cut of one site's uplink: every packet arriving over it is dropped, at both of its ends. */
class Cut {
  private readonly rules: IptablesRules[] = [];

  async make(site: Site): Promise<void> {
    const up = uplinks.get(site)!;
    for (const end of [up.a, up.b]) {
      const rules = new IptablesRules(end.netns);
      this.rules.push(rules);
      await rules.add('INPUT', ['-i', end.dev, '-j', 'DROP']);
    }
  }

  async restore(): Promise<void> {
    while (this.rules.length > 0) await this.rules.pop()!.removeAll();
  }
}
const cut = new Cut();

/** python3 http.server in `netns` on `address`, serving a page; resolves with its port. */
async function startWebServer(netns: string, address: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), `vakt-test-${process.pid}-www-`));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'index.html'), '<html><body><h1>Patient records</h1></body></html>\n');
  const child = spawnInNetns(netns, 'python3', ['-u', '-m', 'http.server', '0', '--bind', address, '--directory', dir]);
  cleanup.add('stop http.server', () => void child.kill('SIGKILL'));
  const line = await waitForLine(child, /^Serving HTTP on .* port \d+/, 10_000);
  return Number(/ port (\d+)/.exec(line)![1]);
}

beforeAll(async () => {
  requireRoot();
  await removeStaleIncidentNets();
  net = new Net(cleanup);
  const dc = await net.namespace('dc');
  // The data centre's service address: one end of a veth pair whose both ends are in the data
  // centre, so every site reaches the same address (one config for all sites) over its own uplink.
  const service = await net.link(dc, dc);
  const serviceNet = service.a.addr.replace(/\.\d+$/, (m) => `.${Number(m.slice(1)) - 1}/30`);
  const web = await startWebServer(dc, service.a.addr);
  const db = await startNetnsListener(dc, service.a.addr);
  cleanup.add('stop listener', () => void db.process.kill('SIGKILL'));
  const config = [
    'agent:',
    '  startSpread: 0s',
    `defaults: { interval: ${CHECK.interval}, timeout: ${CHECK.timeout}, retries: ${CHECK.retries}, retryInterval: ${CHECK.retryInterval} }`,
    'checks:',
    `  - { name: ehr-web, title: "Patient records (web)", group: Patient records, kind: http, target: "http://${service.a.addr}:${web}/", http: { expect: { bodyContains: ["Patient records"] } } }`,
    `  - { name: records-db, title: "Patient records (database)", group: Patient records, kind: tcp, target: "${service.a.addr}:${db.port}" }`,
    '',
  ].join('\n');
  for (const site of SITES) {
    const ns = await net.namespace(site);
    const up = await net.link(ns, dc);
    uplinks.set(site, up);
    await inNs(ns, 'ip', ['route', 'add', serviceNet, 'via', up.b.addr]);
    const scrape = await net.link(undefined, ns);
    agents.set(site, await startAgent(cleanup, { name: site, netns: ns, listen: `${scrape.b.addr}:9464`, site, config }));
  }
  cleanup.add('restore the uplinks', () => cut.restore());
  prometheus = await startRulesPrometheus(
    cleanup,
    SITES.map((site) => ({ address: agents.get(site)!.address, labels: { site } })),
    { alertmanager: true },
  );
  await prometheus.ready(SITES.length);
}, 180_000);

afterAll(async () => {
  await cleanup.run();
});

/** The checks of `site` in `state`, or undefined while some are not. */
async function allIn(site: Site, state: string): Promise<boolean> {
  const checks = await agents.get(site)!.checks();
  return checks.length === CHECKS.length && checks.every((c) => c.state === state);
}

describe('incident 4: a site-local network fault, then a central one', () => {
  // Every alert seen in Prometheus, by phase.
  const seen: Record<string, Alert[]> = { oneSite: [], allSites: [] };
  let phase: keyof typeof seen | undefined;
  let sampling = true;
  let sampler: Promise<void> = Promise.resolve();
  const allAgents = () => SITES.map((s) => agents.get(s)!);

  it('baseline: every check ok at both sites, no alert, for 20 s', async () => {
    await expectQuiet(allAgents(), prometheus, 20_000);
    // The site label of each agent's series is its own (--site), not the scrape's.
    const sites = await prometheus.query('count by (site) (vakt_check_status{status="ok"} == 1)');
    expect(sites.map((s) => `${s.metric.site} ${s.value[1]}`).sort()).toEqual(SITES.map((s) => `${s} ${CHECKS.length}`));
    sampler = (async () => {
      while (sampling) {
        const alerts = await prometheus.alerts().catch(() => []);
        if (phase) seen[phase]!.push(...alerts);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
  });

  it("site A's uplink cut: down at site A, ok at site B, VaktCheckDownSomeSites for each check, never VaktCheckDownAllSites", async () => {
    phase = 'oneSite';
    const watch = new Stopwatch('sites: site A uplink cut', BOUNDS_ONE_SITE);
    watch.fault();
    await cut.make('site-a');
    await watch.until('detect', () => allIn('site-a', 'down'));
    for (const c of await agents.get('site-a')!.checks()) {
      expect(c.lastResult?.failure?.reason, c.name).toBe('timeout');
      expect(c.cause, c.name).toBe(c.name);
    }
    expect(await allIn('site-b', 'ok')).toBe(true);
    const firing = await watch.until(
      'alert',
      async () => {
        const a = (await prometheus.alerts()).filter((x) => alertIs(x, 'VaktCheckDownSomeSites') && x.state === 'firing');
        return a.length === CHECKS.length ? a : undefined;
      },
      async () => `alerts: ${(await prometheus.alerts()).map(describeAlert).join('; ')}`,
    );
    expect(firing.map(describeAlert).sort()).toEqual(CHECKS.map((c) => `VaktCheckDownSomeSites{check="${c}",cause="${c}"} firing`));
    for (const a of firing) expect(Number(a.value), a.labels.check).toBe(1); // down from 1 site
    expect(await allIn('site-b', 'ok')).toBe(true);
    // Prometheus: the per-site root cause fires at site A only, once per check.
    const alerts = await prometheus.alerts();
    expect(
      alerts
        .filter((a) => alertIs(a, 'VaktRootCauseDown'))
        .map((a) => `${a.labels.check} ${a.labels.cause} ${a.labels.site} ${a.state}`)
        .sort(),
    ).toEqual(CHECKS.map((c) => `${c} ${c} site-a firing`));
    expect(alerts.filter((a) => alertIs(a, 'VaktCheckDownAllSites'))).toEqual([]);
    // The Alertmanager holds the site's root-cause alerts inhibited by the site comparison.
    await waitFor(
      'the site comparison in the Alertmanager',
      async () => {
        const held = await prometheus.alertmanagerAlerts();
        return CHECKS.every((c) => held.some((a) => a.labels.alertname === 'VaktCheckDownSomeSites' && a.labels.check === c));
      },
      10_000,
    );
    const held = await prometheus.alertmanagerAlerts();
    const active = held.filter((a) => a.labels.severity === 'page' && a.status.state === 'active');
    expect(active.map((a) => `${a.labels.alertname}/${a.labels.check}`).sort()).toEqual(CHECKS.map((c) => `VaktCheckDownSomeSites/${c}`));
    for (const a of held.filter((x) => x.labels.alertname === 'VaktRootCauseDown')) {
      expect(a.status.state, `VaktRootCauseDown/${a.labels.check}`).toBe('suppressed');
      expect(a.status.inhibitedBy.length).toBeGreaterThan(0);
    }
    watch.report({ checks: CHECK, fault: "iptables DROP of everything arriving over site A's uplink, at both ends (timeouts)" });
  });

  it("site A's uplink restored: everything recovers, the alerts resolve", async () => {
    const watch = new Stopwatch('sites: site A uplink restored', BOUNDS_RESTORED);
    watch.fault();
    await cut.restore();
    await watch.until(
      'recovered',
      async () => (await problems(allAgents(), prometheus, SLOW_TO_RESOLVE)).length === 0,
      async () => `still: ${(await problems(allAgents(), prometheus, SLOW_TO_RESOLVE)).join('; ')}`,
    );
    await expectQuiet(allAgents(), prometheus, 5_000, SLOW_TO_RESOLVE);
    phase = undefined;
    // VaktCheckDownAllSites never appeared while one site was cut off, not even pending.
    expect(seen.oneSite!.filter((a) => alertIs(a, 'VaktCheckDownAllSites')).map(describeAlert)).toEqual([]);
    expect(seen.oneSite!.some((a) => alertIs(a, 'VaktCheckDownSomeSites'))).toBe(true);
    watch.report({ fix: 'the DROP rules removed' });
  });

  it('both uplinks cut: VaktCheckDownAllSites for each check, VaktCheckDownSomeSites gone', async () => {
    phase = 'allSites';
    const watch = new Stopwatch('sites: both uplinks cut', BOUNDS_ALL_SITES);
    watch.fault();
    await cut.make('site-a');
    await cut.make('site-b');
    await watch.until('detect', async () => (await allIn('site-a', 'down')) && (await allIn('site-b', 'down')));
    const firing = await watch.until(
      'alert',
      async () => {
        const a = (await prometheus.alerts()).filter((x) => alertIs(x, 'VaktCheckDownAllSites') && x.state === 'firing');
        return a.length === CHECKS.length ? a : undefined;
      },
      async () => `alerts: ${(await prometheus.alerts()).map(describeAlert).join('; ')}`,
    );
    expect(firing.map(describeAlert).sort()).toEqual(CHECKS.map((c) => `VaktCheckDownAllSites{check="${c}",cause="${c}"} firing`));
    for (const a of firing) expect(Number(a.value), a.labels.check).toBe(2); // down from both sites
    const alerts = await prometheus.alerts();
    expect(alerts.filter((a) => alertIs(a, 'VaktCheckDownSomeSites')).map(describeAlert)).toEqual([]);
    expect(
      alerts
        .filter((a) => alertIs(a, 'VaktRootCauseDown'))
        .map((a) => `${a.labels.check} ${a.labels.site} ${a.state}`)
        .sort(),
    ).toEqual(CHECKS.flatMap((c) => SITES.map((s) => `${c} ${s} firing`)).sort());
    await waitFor(
      'the all-sites alert in the Alertmanager',
      async () => {
        const held = await prometheus.alertmanagerAlerts();
        return CHECKS.every((c) => held.some((a) => a.labels.alertname === 'VaktCheckDownAllSites' && a.labels.check === c));
      },
      10_000,
    );
    const held = await prometheus.alertmanagerAlerts();
    const active = held.filter((a) => a.labels.severity === 'page' && a.status.state === 'active');
    expect(active.map((a) => `${a.labels.alertname}/${a.labels.check}`).sort()).toEqual(CHECKS.map((c) => `VaktCheckDownAllSites/${c}`));
    watch.report({ checks: CHECK, fault: 'iptables DROP of everything arriving over both uplinks, at both ends (timeouts)' });
  });

  it('both uplinks restored: everything recovers and every alert resolves', async () => {
    const watch = new Stopwatch('sites: both uplinks restored', BOUNDS_RESTORED);
    watch.fault();
    await cut.restore();
    await watch.until(
      'recovered',
      async () => (await problems(allAgents(), prometheus, SLOW_TO_RESOLVE)).length === 0,
      async () => `still: ${(await problems(allAgents(), prometheus, SLOW_TO_RESOLVE)).join('; ')}`,
    );
    await expectQuiet(allAgents(), prometheus, 8_000, SLOW_TO_RESOLVE);
    phase = undefined;
    sampling = false;
    await sampler;
    // Both sites went down close together: the some-sites comparison may have gone pending in
    // between, but never fired.
    expect(seen.allSites!.filter((a) => alertIs(a, 'VaktCheckDownSomeSites') && a.state === 'firing').map(describeAlert)).toEqual([]);
    // What was paged (the shipped Alertmanager, its page route): printed for the report.
    const paged = prometheus
      .pages()
      .flatMap((n) => n.alerts.map((a) => `${a.labels.alertname}{check=${a.labels.check},site=${a.labels.site ?? ''}} ${a.status}`));
    process.stdout.write(`incident sites: paged: ${paged.join('; ') || 'nothing'}\n`);
    watch.report({ fix: 'the DROP rules removed' });
  });
});
