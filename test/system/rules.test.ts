// The shipped alerting (deploy/prometheus, deploy/alertmanager) checked with the real tools:
// promtool and amtool accept the files and the promtool unit tests pass; every alert follows
// the conventions (severity, summary, description, runbook anchor) and has a firing and a
// not-firing test; the rules read only metrics the agent exports and, fed the agent's real
// /metrics output, fire exactly the expected alerts; a real Alertmanager inhibits and groups
// as the root-cause alerts' labels say. Needs the Debian packages prometheus (promtool) and
// prometheus-alertmanager (alertmanager, amtool); does not need root.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { CheckState } from '../../agent/detector.js';
import { Metrics } from '../../agent/metrics.js';
import { parseConfig, type CheckConfig } from '../../config/loader.js';
import type { ProbeResult } from '../../probes/types.js';
import { parseMetrics } from '../helpers/prom.js';
import { run, tryRun } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RULES = join(ROOT, 'deploy/prometheus/vakt-rules.yml');
const RULE_TESTS = join(ROOT, 'deploy/prometheus/tests');
const PROMETHEUS_CONFIG = join(ROOT, 'deploy/prometheus/prometheus.yml');
const ALERTMANAGER_CONFIG = join(ROOT, 'deploy/alertmanager/alertmanager.yml');
const DEPARTMENTS_CONFIG = join(ROOT, 'deploy/alertmanager/departments.yml');
const RUNBOOKS = 'https://github.com/vakt/vakt/blob/main/docs/operations.md#';
const SEVERITIES = ['page', 'ticket'];

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; interval?: string; rules: Rule[] }[];
}
interface RuleTestFile {
  rule_files: string[];
  tests: {
    name?: string;
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts?: unknown[] | null }[];
    promql_expr_test?: { expr: string; eval_time: string; exp_samples?: unknown[] | null }[];
  }[];
}
interface AlertmanagerFile {
  inhibit_rules: { source_matchers: string[]; target_matchers: string[]; equal: string[] }[];
}

const rulesFile = parse(readFileSync(RULES, 'utf8')) as RulesFile;
const rules = rulesFile.groups.flatMap((g) => g.rules);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);
const records = rules.filter((r): r is Rule & { record: string } => r.record !== undefined);
const ruleTestFiles = readdirSync(RULE_TESTS)
  .filter((f) => f.endsWith('.yml'))
  .sort()
  .map((f) => join(RULE_TESTS, f));
const ruleTests = ruleTestFiles.map((f) => parse(readFileSync(f, 'utf8')) as RuleTestFile);

/** Fails with a plain message naming the Debian package when a tool is missing. */
async function requireProgram(cmd: string, pkg: string): Promise<void> {
  try {
    await tryRun(cmd, ['--version']);
  } catch (err) {
    throw new Error(`${cmd} is not installed (apt-get install ${pkg}; .ci/run installs it): ${(err as Error).message}`);
  }
}

beforeAll(async () => {
  await requireProgram('promtool', 'prometheus');
  await requireProgram('amtool', 'prometheus-alertmanager');
  await requireProgram('prometheus-alertmanager', 'prometheus-alertmanager');
});

describe('the tools accept the files', () => {
  it('promtool check rules', async () => {
    expect(await run('promtool', ['check', 'rules', RULES])).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('promtool test rules: every unit test in deploy/prometheus/tests passes', async () => {
    expect(ruleTestFiles.length).toBeGreaterThan(0);
    // Some 90 s on a quiet 2-core machine (checks.yml alone takes most of it): room for a busy one.
    const out = await run('promtool', ['test', 'rules', ...ruleTestFiles], 300_000);
    expect(out.match(/SUCCESS/g)).toHaveLength(ruleTestFiles.length);
  }, 320_000);

  it('promtool check config: the example scrape config, and the rules it loads', async () => {
    expect(await run('promtool', ['check', 'config', PROMETHEUS_CONFIG])).toContain('is valid prometheus config file syntax');
  });

  it('amtool check-config', async () => {
    expect(await run('amtool', ['check-config', ALERTMANAGER_CONFIG])).toContain('SUCCESS');
  });

  it('the department recipe: amtool check-config (with its template), and its routes', async () => {
    const checked = await run('amtool', ['check-config', DEPARTMENTS_CONFIG]);
    expect(checked).toContain('SUCCESS');
    expect(checked).toContain('1 templates');
    const route = async (...labels: string[]) => (await run('amtool', ['config', 'routes', 'test', `--config.file=${DEPARTMENTS_CONFIG}`, ...labels])).trim();
    // A root cause reaches its department by e-mail and the site's duty officer by SMS; IT too.
    expect(await route('alertname=VaktRootCauseDown', 'cause=lab-hl7', 'department=laboratory', 'site=odense')).toBe(
      'dept-laboratory,sms-duty-odense,it-on-call',
    );
    expect(await route('alertname=VaktRootCauseDown', 'cause=dns-ns1', 'department=all', 'site=svendborg')).toBe('dept-all,sms-duty-svendborg,it-on-call');
    // Departments hear of root causes only, and only those mapped to them.
    expect(await route('alertname=VaktCheckDegraded', 'check=lab-hl7', 'department=laboratory', 'site=odense')).toBe('it-on-call');
    expect(await route('alertname=VaktRootCauseDown', 'cause=printer', 'site=elsewhere')).toBe('it-on-call');
    const rendered = await run('amtool', [
      'template',
      'render',
      `--template.glob=${join(ROOT, 'deploy/alertmanager/vakt-departments.tmpl')}`,
      '--template.text={{ template "vakt.department.subject" . }}',
    ]);
    expect(rendered).toMatch(/^\[(Not working|Working again)\]/);
  });
});

describe('conventions', () => {
  it('every alert has a severity (page or ticket), a summary, a description and its runbook anchor', () => {
    expect(alerts.length).toBeGreaterThan(10);
    for (const a of alerts) {
      expect(SEVERITIES, `${a.alert}: severity`).toContain(a.labels?.severity);
      expect(a.annotations?.summary?.trim(), `${a.alert}: summary`).toBeTruthy();
      expect(a.annotations?.description?.trim(), `${a.alert}: description`).toBeTruthy();
      // The description says more than the summary, with at least one label or value in it.
      expect(a.annotations?.description, `${a.alert}: description`).toMatch(/\{\{.*(\$labels|\$value).*\}\}/s);
      expect(a.annotations?.runbook_url, `${a.alert}: runbook_url`).toBe(`${RUNBOOKS}${a.alert.toLowerCase()}`);
    }
    expect(new Set(alerts.map((a) => a.alert)).size, 'alert names are unique').toBe(alerts.length);
  });

  it('every alert has a test where it fires and one where it does not', () => {
    const cases = ruleTests.flatMap((f) => f.tests.flatMap((t) => t.alert_rule_test ?? []));
    for (const a of alerts) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${a.alert}: a test where it fires`,
      ).toBe(true);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${a.alert}: a test where it does not fire`,
      ).toBe(true);
    }
    // And no test names an alert that does not exist (it would pass vacuously).
    const names = new Set(alerts.map((a) => a.alert));
    for (const c of cases) expect(names, `test of unknown alert ${c.alertname}`).toContain(c.alertname);
  });

  it('every recording rule has an expression test', () => {
    const exprs = ruleTests.flatMap((f) => f.tests.flatMap((t) => (t.promql_expr_test ?? []).map((e) => e.expr)));
    for (const r of records) {
      expect(
        exprs.some((e) => e.includes(r.record)),
        `${r.record}: a promql_expr_test`,
      ).toBe(true);
    }
  });

  it('every alert named in an inhibit rule exists, and each rule compares at least one label', () => {
    const am = parse(readFileSync(ALERTMANAGER_CONFIG, 'utf8')) as AlertmanagerFile;
    const names = new Set(alerts.map((a) => a.alert));
    expect(am.inhibit_rules.length).toBeGreaterThan(0);
    for (const rule of am.inhibit_rules) {
      expect(rule.equal.length).toBeGreaterThan(0);
      for (const m of [...rule.source_matchers, ...rule.target_matchers]) {
        const named = /^alertname(?:=~|!~|=|!=)"([^"]+)"$/.exec(m)?.[1];
        for (const n of named?.split('|') ?? []) expect(names, `${m}: alert ${n}`).toContain(n);
      }
    }
  });

  it('the rules read only metrics the agent exports', () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    // Every family the agent can export (an empty one has no lines in a scrape).
    const families = new Set(m.familyNames());
    const histograms = new Set([
      'vakt_probe_duration_seconds',
      'vakt_step_duration_seconds',
      'vakt_scheduler_lag_seconds',
      'vakt_scheduler_queue_wait_seconds',
    ]);
    for (const h of histograms) expect(families.has(h), h).toBe(true);
    const used = new Set<string>();
    for (const r of rules) {
      const text = [r.expr, ...Object.values(r.annotations ?? {})].join('\n');
      for (const [name] of text.matchAll(/\b(?:vakt|probe)_[a-z0-9_]+\b/g)) used.add(name);
    }
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) {
      const histogram = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
      const known = families.has(name) || (histogram !== undefined && histograms.has(histogram));
      expect(known, `${name} is not a metric the agent exports`).toBe(true);
    }
  });
});

// -------------------------------------------------------------------------------------------
// The rules over the agent's own exposition: two agents (two sites) built with the real
// Metrics class, their /metrics text turned into promtool input series, the alerts checked.

const KRONOBERG = `checks:
  - { name: dns-ns1, kind: dns, target: "10.10.0.53:53", dns: { name: cosmic.region.local, type: A } }
  - { name: cosmic-login, kind: tcp, target: "cosmic.region.local:443", dependsOn: [dns-ns1] }
  - { name: lab-orders, kind: tcp, target: "lab.region.local:443", dependsOn: [dns-ns1] }
`;

const ok = (values: ProbeResult['values'] = {}): ProbeResult => ({ ok: true, phases: { connect: 0.001 }, values });
const failed = (reason: 'timeout' | 'resolve', values: ProbeResult['values'] = {}): ProbeResult => ({
  ok: false,
  phases: {},
  failure: { phase: reason === 'timeout' ? 'request' : 'resolve', reason, message: reason },
  values,
});

/** One agent's /metrics after its checks ran: `down` checks failed, the others succeeded. */
async function agentExposition(site: string, down: boolean): Promise<string> {
  const checks = parseConfig(`agent:\n  labels: { site: ${site} }\n${KRONOBERG}`, `${site}.yaml`).checks;
  const m = new Metrics(
    () => 0,
    () => 0,
    () => 64,
  );
  m.setConstantLabels({ site });
  m.configLoaded(true, checks, false);
  const since = Date.now() - 5 * 60_000;
  for (const c of checks) {
    m.addCheck(c);
    const dns = c.kind === 'dns';
    const result = !down
      ? ok(dns ? { dns_query_succeeded: 1, dns_answer_rrs: 1 } : {})
      : dns
        ? failed('timeout', { dns_query_succeeded: 0 })
        : failed('resolve');
    m.observe(c, { result, startedAt: Date.now(), duration: 0.01, queueWait: 0, loopStall: 0, disturbed: false });
    const state: CheckState = down ? 'down' : 'ok';
    m.setStatus(c.name, { state, since, consecutiveFailures: down ? 3 : 0, consecutiveSuccesses: down ? 0 : 3, flapping: false });
    if (down) m.setRootCause(c.name, 'dns-ns1');
  }
  const affected = checks.filter((c: CheckConfig) => c.name !== 'dns-ns1').map((c) => c.name);
  m.setIncidents(down ? [{ cause: 'dns-ns1', since, affected }] : []);
  return (await m.render(false)).body;
}

/** promtool input series from exposition text: gauges constant, counters rising. */
function inputSeries(text: string, extra: Record<string, string>, minutes: number): { series: string; values: string }[] {
  const kinds = new Map<string, string>();
  for (const t of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) kinds.set(t[1]!, t[2]!);
  const kindOf = (name: string) => kinds.get(name) ?? kinds.get(name.replace(/_(bucket|sum|count)$/, ''));
  const out: { series: string; values: string }[] = [];
  for (const s of parseMetrics(text)) {
    if (!/^(vakt|probe)_/.test(s.name) || !Number.isFinite(s.value)) continue;
    const labels = Object.entries({ ...s.labels, ...extra })
      .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
      .join(',');
    const rising = kindOf(s.name) === 'counter' || kindOf(s.name) === 'histogram';
    out.push({ series: `${s.name}{${labels}}`, values: rising ? `${s.value}+1x${minutes}` : `${s.value}x${minutes}` });
  }
  out.push({
    series: `up{${Object.entries(extra)
      .map(([k, v]) => `${k}="${v}"`)
      .join(',')}}`,
    values: `1x${minutes}`,
  });
  return out;
}

describe('the rules over the agent’s real /metrics', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vakt-rules-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('dns-ns1 down from one site, up from another: one root-cause alert with its 2 dependents, its own resolver alert, "some sites"; the dependents silent', async () => {
    const vaxjo = { site: 'vaxjo-dc1', job: 'vakt', instance: 'vakt-vaxjo:9464' };
    const ljungby = { site: 'ljungby-hospital', job: 'vakt', instance: 'vakt-ljungby:9464' };
    const series = [
      ...inputSeries(await agentExposition('vaxjo-dc1', true), { job: vaxjo.job, instance: vaxjo.instance }, 30),
      ...inputSeries(await agentExposition('ljungby-hospital', false), { job: ljungby.job, instance: ljungby.instance }, 30),
    ];
    const alert = (labels: Record<string, string>) => ({
      labels: `ALERTS{${Object.entries({ alertstate: 'firing', ...labels })
        .map(([k, v]) => `${k}="${v}"`)
        .join(',')}}`,
      value: 1,
    });
    const dnsNs1 = { check: 'dns-ns1', kind: 'dns', target: '10.10.0.53:53', severity: 'page' };
    const testFile = {
      rule_files: [RULES],
      evaluation_interval: '1m',
      tests: [
        {
          name: 'agent exposition',
          interval: '1m',
          input_series: series,
          promql_expr_test: [
            {
              expr: 'vakt:root_cause_down:affected_checks',
              eval_time: '10m',
              exp_samples: [
                {
                  labels: `vakt:root_cause_down:affected_checks{cause="dns-ns1",check="dns-ns1",kind="dns",target="10.10.0.53:53",site="vaxjo-dc1",job="vakt",instance="vakt-vaxjo:9464"}`,
                  value: 2,
                },
              ],
            },
            {
              // The two dependents are down because of dns-ns1: their own alerts are left out.
              expr: 'vakt:check_caused_elsewhere:info',
              eval_time: '10m',
              exp_samples: ['cosmic-login', 'lab-orders'].map((check) => ({
                labels: `vakt:check_caused_elsewhere:info{check="${check}",cause="dns-ns1",site="vaxjo-dc1",job="vakt",instance="vakt-vaxjo:9464"}`,
                value: 1,
              })),
            },
            {
              // The SLO alerts are left out: every counter here rises by one a minute, failed runs as fast as good ones.
              expr: 'ALERTS{alertstate="firing", alertname!~"VaktSLO.*"}',
              eval_time: '10m',
              exp_samples: [
                alert({ alertname: 'VaktRootCauseDown', cause: 'dns-ns1', ...dnsNs1, ...vaxjo }),
                alert({ alertname: 'VaktDNSResolverDown', ...dnsNs1, ...vaxjo }),
                alert({ alertname: 'VaktCheckDownSomeSites', check: 'dns-ns1', cause: 'dns-ns1', severity: 'page' }),
              ],
            },
          ],
        },
      ],
    };
    const file = join(dir, 'exposition.yml');
    writeFileSync(file, stringify(testFile));
    const r = await tryRun('promtool', ['test', 'rules', file], 60_000);
    expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });
});

// -------------------------------------------------------------------------------------------
// A real Alertmanager with the shipped config (receivers pointed at this test's webhook).

interface AmAlert {
  fingerprint: string;
  labels: Record<string, string>;
  status: { state: string; inhibitedBy: string[] };
}
interface Notification {
  receiver: string;
  status: string;
  groupLabels: Record<string, string>;
  alerts: { status: string; labels: Record<string, string> }[];
}

const canonical = (o: Record<string, unknown>) =>
  JSON.stringify(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );

function freePort(): Promise<number> {
  const server = createNetServer();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${last}` : ''}`);
}

const KRONOBERG_SITE = { site: 'vaxjo-dc1', job: 'vakt', instance: 'vakt-vaxjo:9464' };
/** Alerts as Prometheus would send them: `key` names each one in the assertions. */
const AM_ALERTS: Record<string, Record<string, string>> = {
  // Kronoberg: dns-ns1 is the root cause; its own resolver alert (no `cause`: per-check alerts
  // keep their labels when their check goes down) is muted by it, same check and site. The
  // checks down because of dns-ns1 send no alerts at all (the rules leave them out).
  rootDns: { alertname: 'VaktRootCauseDown', severity: 'page', cause: 'dns-ns1', check: 'dns-ns1', kind: 'dns', target: '10.10.0.53:53', ...KRONOBERG_SITE },
  resolverNs1: { alertname: 'VaktDNSResolverDown', severity: 'page', check: 'dns-ns1', kind: 'dns', target: '10.10.0.53:53', ...KRONOBERG_SITE },
  // The same check's resolver alert from another site, where dns-ns1 is not (yet) a paging root
  // cause: not muted (the same check, another site).
  resolverNs1Ljungby: {
    alertname: 'VaktDNSResolverDown',
    severity: 'page',
    check: 'dns-ns1',
    kind: 'dns',
    target: '10.10.0.53:53',
    site: 'ljungby-hospital',
    job: 'vakt',
    instance: 'vakt-ljungby:9464',
  },
  // A change regression of the root cause's own check says what the page does not: exempt.
  changeNs1: { alertname: 'VaktChangeRegression', severity: 'ticket', check: 'dns-ns1', window: 'dns-upgrade', ...KRONOBERG_SITE },
  // The zone check asks both resolvers and stays up: another check, but the same resolver.
  resolverZone: { alertname: 'VaktDNSResolverDown', severity: 'page', check: 'dns-zone', kind: 'dns', target: '10.10.0.53:53', ...KRONOBERG_SITE },
  degradedZone: { alertname: 'VaktCheckDegraded', severity: 'ticket', check: 'dns-zone', status: 'degraded', ...KRONOBERG_SITE },
  // Another check, whose own root-cause alert is not firing: not muted by dns-ns1.
  lossFwA: {
    alertname: 'VaktFirewallPathSevereLoss',
    severity: 'page',
    check: 'ehr-via-fw-a',
    kind: 'tcp',
    target: '10.20.1.10:443',
    site: 'odense-dc1',
    job: 'vakt',
    instance: 'vakt-ouh:9464',
  },
  // records-portal down from every site: the central alert replaces the per-site ones.
  allSites: { alertname: 'VaktCheckDownAllSites', severity: 'page', check: 'records-portal', cause: 'records-portal' },
  rootPortalDc: {
    alertname: 'VaktRootCauseDown',
    severity: 'page',
    cause: 'records-portal',
    check: 'records-portal',
    site: 'vg-dc1',
    job: 'vakt',
    instance: 'vakt-dc1:9464',
  },
  rootPortalBoras: {
    alertname: 'VaktRootCauseDown',
    severity: 'page',
    cause: 'records-portal',
    check: 'records-portal',
    site: 'clinic-boras',
    job: 'vakt',
    instance: 'vakt-boras:9464',
  },
  // lab-portal down from one clinic only: the site-local alert replaces that site's one.
  someSites: { alertname: 'VaktCheckDownSomeSites', severity: 'page', check: 'lab-portal', cause: 'lab-portal' },
  rootLabBoras: {
    alertname: 'VaktRootCauseDown',
    severity: 'page',
    cause: 'lab-portal',
    check: 'lab-portal',
    site: 'clinic-boras',
    job: 'vakt',
    instance: 'vakt-boras:9464',
  },
  // Unrelated ticket.
  cert: {
    alertname: 'VaktCertificateExpiringSoon',
    severity: 'ticket',
    check: 'ehr-web',
    kind: 'tcp',
    target: 'ehr.region.local:443',
    site: 'odense-dc1',
    job: 'vakt',
    instance: 'vakt-ouh:9464',
  },
};
/** For each alert, the alerts that mute it (none: it is notified). */
const INHIBITED_BY: Record<string, string[]> = {
  rootDns: [],
  resolverNs1: ['rootDns'],
  resolverNs1Ljungby: [],
  changeNs1: [],
  resolverZone: ['rootDns'],
  degradedZone: ['resolverZone'],
  lossFwA: [],
  allSites: [],
  rootPortalDc: ['allSites'],
  rootPortalBoras: ['allSites'],
  someSites: [],
  rootLabBoras: ['someSites'],
  cert: [],
};

describe('a real Alertmanager with deploy/alertmanager/alertmanager.yml', () => {
  let dir: string;
  let am: ChildProcess | undefined;
  let amLog = '';
  let webhook: Server;
  const notifications: Notification[] = [];
  let base: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vakt-alertmanager-'));
    webhook = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        notifications.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Notification);
        res.end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    const hookPort = (webhook.address() as AddressInfo).port;
    const shipped = readFileSync(ALERTMANAGER_CONFIG, 'utf8');
    expect(shipped).toContain('http://127.0.0.1:5001/');
    const config = join(dir, 'alertmanager.yml');
    writeFileSync(config, shipped.replaceAll('http://127.0.0.1:5001/', `http://127.0.0.1:${hookPort}/`));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    am = spawn(
      'prometheus-alertmanager',
      [
        `--config.file=${config}`,
        `--storage.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    am.on('error', (err) => (amLog += `spawn failed: ${err.message}\n`));
    am.stdout?.on('data', (c: Buffer) => (amLog += c.toString()));
    am.stderr?.on('data', (c: Buffer) => (amLog += c.toString()));
    await waitFor(`Alertmanager on ${base}`, 20_000, async () => ((await fetch(`${base}/-/ready`)).ok ? true : undefined)).catch((err: Error) => {
      throw new Error(`${err.message}; its log:\n${amLog}`);
    });
    const posted = await fetch(`${base}/api/v2/alerts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(Object.values(AM_ALERTS).map((labels) => ({ labels, annotations: { summary: labels.alertname } }))),
    });
    expect(posted.status, await posted.text()).toBe(200);
  });

  afterAll(async () => {
    if (am && am.exitCode === null) {
      const exited = new Promise((resolve) => am?.once('exit', resolve));
      am.kill('SIGTERM');
      await exited;
    }
    await new Promise((resolve) => webhook?.close(resolve));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('mutes the alerts of a paging root cause at its site, and per-site root causes under the site comparison', async () => {
    const key = (labels: Record<string, string>) =>
      Object.entries(AM_ALERTS).find(
        ([, l]) => Object.keys(l).length === Object.keys(labels).length && Object.entries(l).every(([k, v]) => labels[k] === v),
      )?.[0];
    const expected = Object.fromEntries(Object.entries(INHIBITED_BY).map(([k, v]) => [k, [...v].sort()]));
    // The inhibitor learns of new alerts asynchronously: wait until the picture is complete.
    let seen: Record<string, string[]> = {};
    await waitFor('the expected inhibitions', 15_000, async () => {
      const list = (await (await fetch(`${base}/api/v2/alerts`)).json()) as AmAlert[];
      const byFingerprint = new Map(list.map((a) => [a.fingerprint, key(a.labels) ?? a.fingerprint]));
      seen = Object.fromEntries(list.map((a) => [key(a.labels) ?? a.fingerprint, a.status.inhibitedBy.map((f) => byFingerprint.get(f) ?? f).sort()]));
      return canonical(seen) === canonical(expected) ? true : undefined;
    }).catch(() => undefined); // on timeout, the assertion below shows the difference
    expect(seen).toEqual(expected);
  });

  it('pages once per incident, grouped by cause: nothing for the muted alerts', async () => {
    // The page route waits 10 s (group_wait) before its first notification per group.
    const pages = () => notifications.filter((n) => n.receiver === 'vakt-page');
    await waitFor('five page notifications', 40_000, () => Promise.resolve(pages().length >= 5 ? true : undefined));
    await new Promise((r) => setTimeout(r, 2000)); // anything muted would have come with them
    const got = pages()
      .map((n) => ({ group: n.groupLabels, alerts: n.alerts.filter((a) => a.status === 'firing').map((a) => `${a.labels.alertname}/${a.labels.check}`) }))
      .sort((a, b) => JSON.stringify(a.group).localeCompare(JSON.stringify(b.group)));
    // Per-check alerts carry no cause: grouped by alert name and site.
    expect(got).toEqual([
      { group: { alertname: 'VaktDNSResolverDown', site: 'ljungby-hospital' }, alerts: ['VaktDNSResolverDown/dns-ns1'] },
      { group: { alertname: 'VaktFirewallPathSevereLoss', site: 'odense-dc1' }, alerts: ['VaktFirewallPathSevereLoss/ehr-via-fw-a'] },
      { group: { cause: 'dns-ns1' }, alerts: ['VaktRootCauseDown/dns-ns1'] },
      { group: { cause: 'lab-portal' }, alerts: ['VaktCheckDownSomeSites/lab-portal'] },
      { group: { cause: 'records-portal' }, alerts: ['VaktCheckDownAllSites/records-portal'] },
    ]);
  }, 60_000);

  it('routes by severity (amtool config routes test)', async () => {
    const route = async (...labels: string[]) => (await run('amtool', ['config', 'routes', 'test', `--config.file=${ALERTMANAGER_CONFIG}`, ...labels])).trim();
    expect(await route('alertname=VaktRootCauseDown', 'severity=page', 'cause=dns-ns1')).toBe('vakt-page');
    expect(await route('alertname=VaktAgentAbsent', 'severity=page')).toBe('vakt-page');
    expect(await route('alertname=VaktCheckDegraded', 'severity=ticket')).toBe('vakt-ticket');
    expect(await route('alertname=Other')).toBe('vakt-ticket');
  });
});
