// The Grafana dashboards in deploy/grafana against real data: the sandbox (simulated hospital
// services with fault switches), an agent monitoring it, and a real Prometheus (Debian package
// `prometheus`) scraping the agent every second. With faults injected so that failures,
// degradations, incidents, root causes, skipped runs and config reloads exist, every query of
// every panel (and every template variable) of every dashboard must return data, and every
// label its legend names. No panel is excluded: a panel without data in this setup is either a
// wrong query or a missing fault here.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { sandboxCertDir, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { startPrometheus as startPrometheusProcess, waitFor, type PrometheusProcess } from './helpers.js';
import { freeSandboxPorts } from '../helpers/demo-config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GRAFANA_DIR = join(ROOT, 'deploy/grafana');

// ---------------------------------------------------------------------------------------------
// Dashboard JSON

interface Target {
  refId?: string;
  expr?: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  collapsed?: boolean;
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  allValue?: string;
  includeAll?: boolean;
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  tags: string[];
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboards: { file: string; json: Dashboard }[] = readdirSync(GRAFANA_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((file) => ({ file, json: JSON.parse(readFileSync(join(GRAFANA_DIR, file), 'utf8')) as Dashboard }));

/** Every panel, rows' nested panels (collapsed rows) included. */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
}

/** Template variables referenced in a text: $name, ${name}, ${name:format}, [[name]]. */
function referencedVariables(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g)) names.add((m[1] ?? m[2] ?? m[3]) as string);
  return [...names];
}

/** Grafana's built-in interval variables as this test evaluates them (1 s scrape interval). */
const BUILTINS: Record<string, string> = {
  __rate_interval: '1m',
  __interval: '5s',
  __interval_ms: '5000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

/** A query as Grafana would send it with every template variable at "All" (`.*`). */
function substitute(expr: string): string {
  const out = expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (_all, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c) as string;
    // replica has no All: one replica of an HA pair at a time, and none here (no HA pair).
    return BUILTINS[name] ?? (name === 'replica' ? '' : '.*');
  });
  if (out.includes('$')) throw new Error(`unsubstituted variable left in ${out}`);
  return out;
}

/** Panels that show data (not rows, not text). */
function dataPanels(d: Dashboard): Panel[] {
  return allPanels(d).filter((p) => p.type !== 'row' && p.type !== 'text');
}

describe('Grafana dashboards: structure', () => {
  it('have unique uids and titles, schemaVersion 39, tagged vakt', () => {
    // More drill-downs (login, queues) are added as further files; these four are the base.
    expect(dashboards.map((d) => d.file)).toEqual(expect.arrayContaining(['vakt-agent.json', 'vakt-dns.json', 'vakt-firewall.json', 'vakt-overview.json']));
    expect(new Set(dashboards.map((d) => d.json.uid)).size).toBe(dashboards.length);
    expect(new Set(dashboards.map((d) => d.json.title)).size).toBe(dashboards.length);
    for (const { file, json } of dashboards) {
      expect(json.uid, file).toMatch(/^[a-z0-9-]{1,40}$/);
      expect(json.schemaVersion, file).toBeGreaterThanOrEqual(39);
      expect(json.tags, file).toContain('vakt');
      expect((json as unknown as { id: unknown }).id, `${file}: no instance-specific id`).toBeNull();
    }
  });

  it('pick the datasource through a variable and define every variable they use', () => {
    for (const { file, json } of dashboards) {
      const vars = json.templating.list;
      const names = vars.map((v) => v.name);
      expect(new Set(names).size, `${file}: variable names unique`).toBe(names.length);
      const ds = vars.find((v) => v.name === 'datasource');
      expect(ds, `${file}: datasource variable`).toMatchObject({ type: 'datasource', query: 'prometheus' });
      expect(names, file).toContain('site');
      const known = new Set([...names, ...Object.keys(BUILTINS)]);
      // Query variables use their All value as a regex (=~), so "All" is `.*`, not a huge alternation.
      // replica shows one replica of an HA pair at a time, so that nothing is counted twice: no All.
      expect(
        vars.find((v) => v.name === 'replica'),
        `${file}: replica variable`,
      ).toMatchObject({ type: 'query', includeAll: false, multi: false });
      for (const v of vars.filter((x) => x.type === 'query' && x.name !== 'replica')) {
        expect(v.allValue, `${file}: ${v.name}`).toBe('.*');
        for (const r of referencedVariables(variableQuery(v))) expect(known.has(r), `${file}: variable ${v.name} uses $${r}`).toBe(true);
      }
      for (const p of dataPanels(json)) {
        expect(p.datasource, `${file}: ${p.title}`).toEqual({ type: 'prometheus', uid: '${datasource}' });
        expect(p.targets?.length, `${file}: ${p.title} has queries`).toBeGreaterThan(0);
        const refIds = (p.targets ?? []).map((t) => t.refId);
        expect(new Set(refIds).size, `${file}: ${p.title} refIds unique`).toBe(refIds.length);
        for (const t of p.targets ?? []) {
          expect(t.expr?.trim(), `${file}: ${p.title} ${t.refId} expr`).toBeTruthy();
          expect(t.datasource, `${file}: ${p.title} ${t.refId}`).toEqual({ type: 'prometheus', uid: '${datasource}' });
          for (const r of referencedVariables(t.expr as string)) expect(known.has(r), `${file}: ${p.title} uses $${r}`).toBe(true);
          // A `=` matcher on a multi-value variable breaks as soon as two values are picked.
          expect(t.expr, `${file}: ${p.title}`).not.toMatch(/[^=~!]=\s*"\$/);
        }
      }
    }
  });

  it("filter every series of the agent by site and replica, and Prometheus' own series by job and instance", () => {
    for (const { file, json } of dashboards) {
      for (const p of dataPanels(json)) {
        for (const t of p.targets ?? []) {
          const expr = t.expr as string;
          for (const m of expr.matchAll(/\b((?:vakt|probe|process|nodejs)_[a-z0-9_]+)\b(\{[^}]*\})?/g)) {
            expect(m[2] ?? '', `${file}: ${p.title}: ${m[1]} without a site filter`).toContain('site=~"$site"');
            // HA pairs: one replica's series (or, without HA pairs, the series without a replica).
            expect(m[2] ?? '', `${file}: ${p.title}: ${m[1]} without a replica filter`).toContain('replica=~"$replica|"');
          }
          for (const m of expr.matchAll(/\b(up|scrape_[a-z_]+)\b(\{[^}]*\})?/g)) {
            expect(m[2] ?? '', `${file}: ${p.title}: ${m[1]}`).toMatch(/job=~"\$job".*instance=~"\$instance"/);
          }
        }
      }
    }
  });

  it('lay out panels on the 24-column grid without overlaps, with unique ids and titles', () => {
    for (const { file, json } of dashboards) {
      const panels = allPanels(json);
      const ids = panels.map((p) => p.id);
      expect(new Set(ids).size, `${file}: panel ids unique`).toBe(ids.length);
      const titles = dataPanels(json).map((p) => p.title);
      expect(new Set(titles).size, `${file}: panel titles unique`).toBe(titles.length);
      const cells = new Map<string, string>();
      for (const p of panels) {
        const g = p.gridPos;
        expect(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `${file}: ${p.title} gridPos ${JSON.stringify(g)}`).toBe(true);
        for (let x = g.x; x < g.x + g.w; x++) {
          for (let y = g.y; y < g.y + g.h; y++) {
            const other = cells.get(`${x},${y}`);
            expect(other, `${file}: "${p.title}" overlaps "${other}"`).toBeUndefined();
            cells.set(`${x},${y}`, p.title);
          }
        }
      }
      // Rows are open (their panels follow them), so a new row can be appended at the end.
      for (const row of panels.filter((p) => p.type === 'row')) expect(row.collapsed, `${file}: ${row.title}`).toBe(false);
    }
  });

  it('provisioning examples name a Prometheus datasource and a file provider', () => {
    const ds = parseYaml(readFileSync(join(GRAFANA_DIR, 'provisioning/datasources/vakt-prometheus.yaml'), 'utf8')) as {
      apiVersion: number;
      datasources: { type: string; url: string }[];
    };
    expect(ds.apiVersion).toBe(1);
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus' });
    const prov = parseYaml(readFileSync(join(GRAFANA_DIR, 'provisioning/dashboards/vakt.yaml'), 'utf8')) as {
      apiVersion: number;
      providers: { type: string; options: { path: string } }[];
    };
    expect(prov.apiVersion).toBe(1);
    expect(prov.providers[0]).toMatchObject({ type: 'file', options: { path: expect.any(String) as string } });
  });
});

// ---------------------------------------------------------------------------------------------
// Live: sandbox, agent, Prometheus

interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
}
interface PromResponse {
  status: string;
  error?: string;
  data?: { resultType: string; result: PromSeries[] | [number, string] } | string[];
}

let sandbox: Sandbox | undefined;
let agent: Agent | undefined;
let http: HttpServer | undefined;
let prometheus: PrometheusProcess | undefined;
let promUrl = '';
let agentLog = '';
const dirs: string[] = [];
let configFile = '';

function agentConfig(sb: Sandbox): string {
  const h = sb.host;
  const ca = join(sandboxCertDir(), 'ca.pem');
  const tls = `{ serverName: ehr.sandbox.vakt.test, caFile: "${ca}" }`;
  return `
agent:
  labels: { site: test-site }
  startSpread: 200ms
  concurrency: 16
  # The duration panels read the histograms, which are opt-in.
  histograms: phases
# Baselines (the checks' learnt normal durations) after 3 good runs instead of 20.
defaults: { interval: 1s, timeout: 900ms, retries: 1, retryInterval: 200ms, degraded: { baselineMinRuns: 3 } }
checks:
  # Firewall A rejects (fault): down, reason refused; the check behind it is down with it as cause.
  - name: ehr-via-fw-a
    title: Patient records through firewall A
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwA}"
    tcp: { samples: 3, sampleSpacing: 20ms, connectTimeout: 300ms, tls: ${tls}, send: "GET /health HTTP/1.0\\r\\nHost: ehr.sandbox.vakt.test\\r\\n\\r\\n", receive: "^HTTP/1\\\\.[01] 200" }
  - name: ehr-app-via-fw-a
    title: Patient records application through firewall A
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwA}"
    dependsOn: [ehr-via-fw-a]
    tcp: { tls: ${tls} }
  # Firewall B overloaded (fault): a share of attempts hang, so sample loss and degraded runs.
  - name: ehr-via-fw-b
    title: Patient records through firewall B
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwB}"
    tcp: { samples: 5, sampleSpacing: 20ms, attemptTimeout: 300ms, tls: ${tls} }
  # A batch check every second whose runs take longer than that once firewall B hangs: skipped runs.
  - name: ehr-batch-via-fw-b
    title: Batch export through firewall B
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.fwB}"
    cron: "* * * * * *"
    timeout: 2500ms
    retries: 0
    tcp: { samples: 5, sampleSpacing: 20ms, attemptTimeout: 2s, tls: ${tls} }
  # Degraded without a fault: the certificate "expires soon" against a 100-year warning.
  - name: ehr-direct
    title: Patient records front (direct)
    group: Patient records
    kind: tcp
    target: "${h}:${sb.ports.ehr}"
    tcp: { tls: { serverName: ehr.sandbox.vakt.test, caFile: "${ca}", expiryWarning: 36500d }, send: "GET / HTTP/1.0\\r\\n\\r\\n", receive: "^HTTP/1\\\\.[01] 200" }
  - name: rdp-blocked
    title: Remote desktop stays blocked
    group: Firewall policy
    kind: tcp
    target: "${h}:${sb.ports.blocked}"
    tcp: { expect: blocked }
  # Ping: the loopback answers (icmp kind; the ping panels).
  - name: gateway-ping
    title: Gateway (ping)
    group: Firewall policy
    kind: icmp
    target: ${h}
    icmp: { count: 2, interval: 50ms }
  # ns2 answers SERVFAIL (fault): dns-ns2 down, dns-zone degraded (quorum 1).
  - name: dns-ns1
    title: Internal DNS (ns1)
    group: Core network
    kind: dns
    target: "${h}:${sb.ports.ns1}"
    dns: { name: cosmic.region.sandbox, type: A, expect: { answer: { exactValues: [10.20.1.5] } } }
  - name: dns-ns2
    title: Internal DNS (ns2)
    group: Core network
    kind: dns
    target: "${h}:${sb.ports.ns2}"
    dns: { name: cosmic.region.sandbox, type: A, expect: { answer: { exactValues: [10.20.1.5] } } }
  # 100 addresses: truncated over UDP, retried over TCP; and "slow" against a 1 ms limit.
  - name: dns-vdi
    title: VDI pool in DNS
    group: Core network
    kind: dns
    target: "${h}:${sb.ports.ns1}"
    degraded: { above: 1ms }
    dns: { name: vdi.region.sandbox, type: A, expect: { answer: { minCount: 100 } } }
  - name: dns-zone
    title: Internal DNS (ns1 and ns2 agree)
    group: Core network
    kind: dns
    targets: ["${h}:${sb.ports.ns1}", "${h}:${sb.ports.ns2}"]
    dns: { name: region.sandbox, type: SOA, quorum: 1, consistency: true, maxSerialLag: 0 }
  # The web login flow; its form step has a limit it always exceeds (degraded: slow), so the
  # login dashboard's step, phase and baseline panels have data.
  - name: login-web
    title: Patient records login
    group: Login
    kind: http
    target: "http://${h}:${sb.ports.login}"
    secrets: { password: { file: "${join(SANDBOX_SECRETS, 'probe-password')}" } }
    http:
      steps:
        - { name: form, url: /login, degradedAbove: 1ms, extract: { csrf: { regex: 'name="csrf" value="([0-9a-f]+)"' } } }
        - { name: login, method: POST, url: /login, form: { username: svc-vakt-probe, password: "\${secret.password}", csrf: "\${var.csrf}" } }
        - { name: home, url: /app/home }
  # The token service refuses a wrong client secret: reason auth, code invalid_client.
  - name: login-idp
    title: Single sign-on
    group: Login
    kind: oidc
    target: "http://${h}:${sb.ports.login}"
    secrets: { client_secret: { file: "${join(SANDBOX_SECRETS, 'wrong-client-secret')}" } }
    oidc: { clientId: vakt-probe, clientSecret: client_secret }
  # The HL7 interface engine acknowledges (AA); a second interface expects AE, so it fails
  # (expect_mismatch) and the integration dashboard's failure panels have data.
  - name: lab-orders-hl7
    title: Lab orders (HL7)
    group: Integration
    kind: mllp
    target: "${h}:${sb.ports.mllp}"
  - name: adt-errors-hl7
    title: ADT interface expecting errors
    group: Integration
    kind: mllp
    target: "${h}:${sb.ports.mllp}"
    mllp: { expectAck: [AE] }
  # The lab results queue stalls (fault): depth over 5 (backlog), nothing draining.
  - name: lab-results-queue
    title: Lab orders and results queues
    group: Integration
    kind: queue
    target: "http://${h}:${sb.ports.queue}"
    secrets: { password: { file: "${join(SANDBOX_SECRETS, 'queue-password')}" } }
    queue: { source: rabbitmq, queues: [orders.out, lab.results], username: vakt-monitor, password: password, maxDepth: 5 }
  # The PACS answers C-ECHO (the imaging row: association and echo times).
  - name: pacs-echo
    title: PACS
    group: Imaging
    kind: dicom
    target: "${h}:${sb.ports.dicom}"
    dicom: { callingAeTitle: VAKT, calledAeTitle: SANDBOX_PACS }
  # The patient data API: metadata, a SMART token, a search (the FHIR row).
  - name: patient-api
    title: Patient data API
    group: Integration
    kind: fhir
    target: "http://${h}:${sb.ports.fhir}/fhir/R4"
    secrets: { client_secret: { file: "${join(SANDBOX_SECRETS, 'idp-client-secret')}" } }
    fhir: { fhirVersion: R4, search: "Patient?identifier=urn:oid:1.2.752.129.2.1.3.1|191212121212", expect: { minTotal: 1, maxTotal: 1 }, clientId: vakt-probe, clientSecret: client_secret, scope: system/Patient.read }
  # The clinical devices' Wi-Fi login (the RADIUS row).
  - name: wifi-login
    title: Wi-Fi login
    group: Login
    kind: radius
    target: "${h}:${sb.ports.radius}"
    secrets: { password: { file: "${join(SANDBOX_SECRETS, 'probe-password')}" }, radius_secret: { file: "${join(SANDBOX_SECRETS, 'radius-shared-secret')}" } }
    radius: { username: svc-vakt-probe, password: password, sharedSecret: radius_secret }
  # Firewall member A's own view (the SNMP row: its values).
  - name: fw-a-state
    title: Firewall A state
    group: Firewall policy
    kind: snmp
    target: "${h}:${sb.ports.snmp}"
    secrets: { fw_auth: { file: "${join(SANDBOX_SECRETS, 'snmp-auth-key')}" }, fw_priv: { file: "${join(SANDBOX_SECRETS, 'snmp-priv-key')}" } }
    snmp:
      version: 3
      user: vakt-monitor
      authProtocol: sha
      authKey: fw_auth
      privProtocol: aes
      privKey: fw_priv
      oids:
        - { name: ha-state, oid: 1.3.6.1.4.1.99999.1.1.0, equals: active, values: { 1: active, 2: standby } }
        - { name: uplink-oper, oid: 1.3.6.1.2.1.2.2.1.8.3, equals: up, values: { 1: up, 2: down } }
`;
}

/** The sandbox's demo secrets, and a wrong one written by the test. */
const SANDBOX_SECRETS = mkdtempSync(join(tmpdir(), 'vakt-test-dashboards-secrets-'));

async function fault(path: string): Promise<void> {
  const res = await fetch(`${sandbox!.controlUrl}/faults/${path}`, { method: 'POST' });
  expect(res.status, `POST /faults/${path}`).toBe(200);
  await res.text();
}

async function promApi(path: string, params: Record<string, string>): Promise<PromResponse> {
  const res = await fetch(`${promUrl}${path}`, { method: 'POST', body: new URLSearchParams(params) });
  return (await res.json()) as PromResponse;
}

/** Starts Prometheus on a free port of 127.0.0.1 scraping `scrapeTarget` every second. */
async function startPrometheus(scrapeTarget: string): Promise<void> {
  prometheus = await startPrometheusProcess(`global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }
scrape_configs:
  - job_name: vakt
    static_configs: [{ targets: ["${scrapeTarget}"] }]
`);
  promUrl = prometheus.url;
}

async function stopPrometheus(): Promise<void> {
  const p = prometheus;
  prometheus = undefined;
  await p?.stop();
}

/** One query of a panel (or variable), ready to evaluate. */
interface Query {
  dashboard: string;
  panel: string;
  refId: string;
  expr: string;
  legend?: string;
}

function panelQueries(): Query[] {
  return dashboards.flatMap(({ file, json }) =>
    dataPanels(json).flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        dashboard: file,
        panel: p.title,
        refId: t.refId ?? '?',
        expr: substitute(t.expr as string),
        ...(t.legendFormat ? { legend: t.legendFormat } : {}),
      })),
    ),
  );
}

/** What is wrong with a query's answer: an error, no series, or a legend label missing. */
async function problem(q: Query): Promise<string | undefined> {
  const r = await promApi('/api/v1/query', { query: q.expr });
  if (r.status !== 'success') return `error: ${r.error ?? r.status}`;
  const data = r.data as { resultType: string; result: PromSeries[] };
  if (data.resultType !== 'vector' || data.result.length === 0) return `no data (${data.resultType})`;
  // Series that are all NaN (e.g. a quantile over a histogram without observations) are gaps in Grafana.
  if (!data.result.some((s) => Number.isFinite(Number(s.value?.[1])))) return `only NaN/Inf values (${data.result.length} series)`;
  const needed = [...(q.legend ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1] as string);
  for (const s of data.result) {
    const missing = needed.filter((l) => s.metric[l] === undefined);
    if (missing.length > 0) return `legend "${q.legend}" names ${missing.join(', ')}, missing in ${JSON.stringify(s.metric)}`;
  }
  return undefined;
}

async function instant(expr: string): Promise<PromSeries[]> {
  const r = await promApi('/api/v1/query', { query: expr });
  expect(r.status, `${expr}: ${r.error ?? ''}`).toBe('success');
  return (r.data as { result: PromSeries[] }).result;
}

describe('Grafana dashboards: every query has data from a real Prometheus', () => {
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  const mark = (name: string) => (timings[name] = Math.round(performance.now() - t0));

  beforeAll(async () => {
    sandbox = await startSandbox({ ports: freeSandboxPorts() });
    const dir = mkdtempSync(join(tmpdir(), 'vakt-test-dashboards-'));
    dirs.push(dir);
    configFile = join(dir, 'vakt.yaml');
    writeFileSync(join(SANDBOX_SECRETS, 'probe-password'), readFileSync(join(sandboxCertDir(), '..', 'secrets', 'probe-password')));
    writeFileSync(join(SANDBOX_SECRETS, 'wrong-client-secret'), 'not-the-client-secret\n');
    for (const name of ['queue-password', 'idp-client-secret', 'radius-shared-secret', 'snmp-auth-key', 'snmp-priv-key'])
      writeFileSync(join(SANDBOX_SECRETS, name), readFileSync(join(sandboxCertDir(), '..', 'secrets', name)));
    writeFileSync(configFile, agentConfig(sandbox));
    const logs = new PassThrough();
    logs.on('data', (d: Buffer) => (agentLog = (agentLog + d.toString()).slice(-20_000)));
    agent = await Agent.start({ configFile, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
    http = await startServer(agent, '127.0.0.1', 0);
    mark('agent started');
    await startPrometheus(new URL(http.url).host);
    mark('prometheus ready');

    // Every check has run once before the faults, so the faults are state changes.
    await waitFor('every check ran once', () => agent!.list().every((c) => c.last !== undefined && c.status.state !== 'unknown'), 15_000);
    mark('checks ran');
    await fault('fw-a/reject');
    await fault('fw-b/overload');
    await fault('ns2/servfail');
    await fault('queue/stall');

    // A failed and then a successful reload, for the reload panels.
    const good = readFileSync(configFile, 'utf8');
    writeFileSync(configFile, 'checks: [ {name: broken');
    expect((await fetch(`${http.url}/-/reload`, { method: 'POST' })).status).toBe(400);
    writeFileSync(configFile, good);
    expect((await fetch(`${http.url}/-/reload`, { method: 'POST' })).status).toBe(200);
    mark('faults injected');
  }, 60_000);

  afterAll(async () => {
    await stopPrometheus();
    await agent?.stop();
    await http?.close();
    await sandbox?.stop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    console.log(`dashboards test timings (ms since start): ${JSON.stringify(timings)}`);
  });

  it('Prometheus scrapes the agent', async () => {
    const up = await waitFor(
      'up == 1',
      async () => {
        const r = await instant('up{job="vakt"} == 1');
        return r.length === 1 ? r : undefined;
      },
      10_000,
    );
    expect(up[0]?.metric.instance).toBe(new URL(http!.url).host);
  });

  it('every panel query of every dashboard returns series (template variables at All)', async () => {
    const queries = panelQueries();
    expect(queries.length).toBeGreaterThan(60);
    let failures: string[] = [];
    // Poll until every query has data: rate() needs two samples in its window, increase() over
    // the range needs the counter to exist twice, and faults need a retry to be confirmed.
    await waitFor(
      'every panel query has data',
      async () => {
        const results = await Promise.all(queries.map(async (q) => [q, await problem(q)] as const));
        failures = results
          .filter(([, p]) => p !== undefined)
          .map(([q, p]) => `${q.dashboard} / ${q.panel} [${q.refId}]: ${p}\n    ${q.expr.replaceAll('\n', ' ')}`);
        return failures.length === 0;
      },
      90_000,
      2000,
    ).catch(() => undefined);
    mark('all panel queries have data');
    expect(failures, `queries without data:\n${failures.join('\n')}\nprometheus: ${prometheus?.log().slice(-2000) ?? ''}`).toEqual([]);
  }, 120_000);

  it('every template variable lists values (replica: none, without an HA pair)', async () => {
    for (const { file, json } of dashboards) {
      for (const v of json.templating.list.filter((x) => x.type === 'query')) {
        const q = variableQuery(v);
        const m = /^label_values\((?:(.*),\s*)?(\w+)\)$/s.exec(q.trim());
        expect(m, `${file}: ${v.name}: ${q} is label_values(...)`).not.toBeNull();
        const params: Record<string, string> = {};
        if (m?.[1]) params['match[]'] = substitute(m[1]);
        const res = await fetch(`${promUrl}/api/v1/label/${m?.[2]}/values?${new URLSearchParams(params).toString()}`);
        const body = (await res.json()) as PromResponse;
        expect(body.status, `${file}: ${v.name}`).toBe('success');
        // replica has values only with HA pairs; this agent runs alone (its query still must work).
        if (v.name !== 'replica') expect((body.data as string[]).length, `${file}: variable ${v.name} (${q}) has values`).toBeGreaterThan(0);
      }
    }
  });

  it('the panels show the injected faults (spot checks)', async () => {
    const byTitle = (file: string, title: string, refId = 'A') => {
      const d = dashboards.find((x) => x.file === file)!.json;
      const p = dataPanels(d).find((x) => x.title === title);
      expect(p, `${file}: panel "${title}"`).toBeDefined();
      return substitute(p!.targets!.find((t) => t.refId === refId)!.expr!);
    };
    const checks = (rs: PromSeries[], label = 'check') => rs.map((s) => s.metric[label]).sort();

    // (Firewall B's checks may be down too when every attempt of a run hung: overload is random.)
    expect(checks(await instant(byTitle('vakt-overview.json', 'Checks down')))).toEqual(
      expect.arrayContaining(['dns-ns2', 'ehr-app-via-fw-a', 'ehr-via-fw-a']),
    );
    const causes = await instant(byTitle('vakt-overview.json', 'Root cause per down check'));
    expect(Object.fromEntries(causes.map((s) => [s.metric.check, s.metric.cause]))).toMatchObject({
      'dns-ns2': 'dns-ns2',
      'ehr-app-via-fw-a': 'ehr-via-fw-a',
      'ehr-via-fw-a': 'ehr-via-fw-a',
    });
    const incidents = await instant(byTitle('vakt-overview.json', 'Open incidents by root cause'));
    expect(Object.fromEntries(incidents.map((s) => [s.metric.cause, Number(s.value?.[1])]))).toMatchObject({ 'dns-ns2': 0, 'ehr-via-fw-a': 1 });
    expect(checks(await instant(byTitle('vakt-overview.json', 'Checks degraded')))).toEqual(expect.arrayContaining(['dns-zone', 'ehr-direct']));
    const reasons = checks(await instant(byTitle('vakt-overview.json', 'Failed runs per minute, by reason')), 'reason');
    expect(reasons).toEqual(expect.arrayContaining(['dns_servfail', 'refused']));
    const degradedReasons = checks(await instant(byTitle('vakt-overview.json', 'Degraded runs per minute, by reason')), 'reason');
    expect(degradedReasons).toEqual(expect.arrayContaining(['cert_expiring', 'partial', 'slow']));

    const rcodes = checks(await instant(byTitle('vakt-dns.json', 'Replies by response code')), 'rcode');
    expect(rcodes).toEqual(['NOERROR', 'SERVFAIL']);
    const fallback = await instant(byTitle('vakt-dns.json', 'Retried over TCP'));
    expect(Number(fallback[0]?.value?.[1])).toBeGreaterThanOrEqual(1);

    const loss = await instant(byTitle('vakt-firewall.json', 'Sample loss ratio'));
    expect(checks(loss)).toEqual(expect.arrayContaining(['ehr-batch-via-fw-b', 'ehr-via-fw-b']));
    const stats = checks(await instant(byTitle('vakt-firewall.json', 'Connect time min / median / max')), 'stat');
    expect(new Set(stats)).toEqual(new Set(['min', 'median', 'max']));

    const skipped = await instant(byTitle('vakt-agent.json', 'Skipped runs per minute (top 10 checks)'));
    expect(checks(skipped)).toContain('ehr-batch-via-fw-b');
    const reloads = await instant(byTitle('vakt-agent.json', 'Config reloads over the selected range'));
    expect(checks(reloads, 'result')).toEqual(['failure', 'success']);
    expect(Number((await instant(byTitle('vakt-agent.json', 'Config')))[0]?.value?.[1])).toBe(1);
  });

  it('agent log has no errors', () => {
    expect(agentLog).not.toMatch(/"level":(50|60)/);
  });
});
