// Prometheus metrics: last-run gauges with blackbox_exporter's names, cumulative counters of our
// own that stay right whatever the scrape timing, check state, and the agent's self-metrics.
// Each check's series are written as exposition text when its run finishes (agent/exposition.ts),
// so a scrape only joins text: it costs the same however often Prometheus asks, and it never
// holds up the probes. The default set is lean (about blackbox_exporter's per target, plus the
// check's state and counters by reason; budget per kind in docs/metrics.md); per-phase
// histograms are opt-in (`histograms:` globally, in defaults or per check). Label values from the
// config or from peers pass the redactor when their text is built, not per scrape.
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { CheckConfig, HistogramMode } from '../config/loader.js';
import { KIND, KIND_LIST, KINDS } from '../probes/kinds.js';
import type { Redactor } from '../probes/kit/redact.js';
import type { MetricSpec, ReadingField, ReadingGauges, TallySpec } from '../probes/kit/kind.js';
import { RUN_RESULTS, runResult, type ProbeResult, type RunResult, type TargetResult } from '../probes/types.js';
import type { CheckStatus } from './detector.js';
import type { ServiceView } from './composite.js';
import { escapeLabel, expose, Family, flat, HistogramState, labelText, leTexts, line, type FamilyType } from './exposition.js';
import type { WebhookFigures } from './notify.js';
import type { Incident } from './root-cause.js';
import type { RunOutcome } from './runner.js';
import { VERSION } from './version.js';

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_LE = leTexts(DURATION_BUCKETS);
const LAG_LE = leTexts(LAG_BUCKETS);

/** The owner key of the agent's own series (check names cannot contain a NUL). */
const AGENT = '\u0000agent';

/** Probe values exported as their own gauge, labelled check/kind/target: what the kinds declare (one gauge per value name). */
const VALUE_GAUGES = new Map<string, { name: string; help: string }>();
for (const kind of KIND_LIST) {
  for (const [value, spec] of Object.entries(kind.values) as [string, { metric?: string; help: string }][]) {
    if (spec.metric !== undefined && !VALUE_GAUGES.has(value)) VALUE_GAUGES.set(value, { name: spec.metric, help: spec.help });
  }
}

/** What the metrics keep of one check: enough to write all of its text again. */
interface CheckSeries {
  config: CheckConfig;
  /** `check="name"`, escaped. */
  own: string;
  /**
   * `check=..,kind=..,target=..` per target as written in the config (escaped, redacted): the
   * check's own target's (config.target; most checks have only it, and a Map each is ~2 MiB at
   * 10,000 checks), and any other's in a Map.
   */
  targetText?: string | undefined;
  otherTargets?: Map<string, string> | undefined;
  last?: RunOutcome;
  runs: Record<RunResult, number>;
  /** Tallies by reason or code, and histogram states: created with their first value (at 10,000 checks an empty Map each is ~10 MiB). */
  failures?: Map<string, number>;
  degradations?: Map<string, number>;
  /** The kind's tallies (its `tallies`), by info key. */
  codes?: Map<string, Map<string, number>>;
  skipped: number;
  disturbed: number;
  /** Histogram state per phase ("total" included) and per step and phase. */
  histograms?: Map<string, HistogramState>;
  stepHistograms?: Map<string, HistogramState>;
  /** The last-run families the check's last run wrote (the next run clears those it does not write). */
  lastFamilies: Family[];
  status?: CheckStatus;
  cause?: string;
  /** The planned-work window holding the check, and the window after which a change regression stands. */
  maintenance?: string;
  regression?: string;
}

/** Planned work and change verification, as the agent's series count them. */
export interface PlannedWorkFigures {
  windowsOpen: number;
  verifications: { regressed: number; verified: number };
}

/** What an agent runs of its config (agent/agent.ts from config/placement.ts). */
export interface Placement {
  shard: { index: number; count: number };
  owned: number;
  remote: readonly { check: string; dependsOn: string }[];
}

/** The agent's own server, as its metrics see it. */
export interface WebServerFigures {
  refused: { unauthenticated: number; forbidden: number; throttled: number };
  /** The served certificate's notAfter (Unix seconds), with TLS. */
  certificateNotAfter?: number;
}

export class Metrics {
  /** The Node.js process metrics (prom-client's default collectors) and nothing else. */
  readonly registry: Registry<'text/plain; version=0.0.4; charset=utf-8' | 'application/openmetrics-text; version=1.0.0; charset=utf-8'> = new Registry();
  private readonly families: Family[] = [];
  private readonly checks = new Map<string, CheckSeries>();
  private readonly services = new Map<string, ServiceView>();
  /** Constant labels as text (`,site="x"`), appended to every label set. */
  private constant = '';
  /** The histogram mode of checks that do not set one (agent.histograms). */
  private histogramDefault: HistogramMode = 'off';
  private scrapeChain: Promise<unknown> = Promise.resolve();

  // Last run, per target (check, kind, target): replaced whole by each run.
  private readonly success = this.family('probe_success', 'gauge', 'Whether the last run of the check succeeded (1) or failed (0).');
  private readonly duration = this.family('probe_duration_seconds', 'gauge', 'Seconds the last run of the check took.');
  private readonly phase = this.family('vakt_probe_phase_seconds', 'gauge', 'Seconds spent in each phase of the last run (only phases that ran).');
  /** Phase gauges under blackbox_exporter's per-kind names (as the kinds declare them), besides vakt_probe_phase_seconds. */
  private readonly kindPhase = new Map<string, Family>(
    KIND_LIST.flatMap((k) => ('phaseMetric' in k && k.phaseMetric ? [[k.name, this.family(k.phaseMetric.name, 'gauge', k.phaseMetric.help)] as const] : [])),
  );
  private readonly values = [...VALUE_GAUGES].map(([value, d]) => ({ value, family: this.family(d.name, 'gauge', d.help) }));
  private readonly connectStats = this.family('vakt_probe_connect_seconds', 'gauge', 'Connect time over the attempts of the last run: min, median, max.');
  private readonly tlsVersion = this.family('probe_tls_version_info', 'gauge', 'TLS version negotiated in the last run (value 1).');
  private readonly chainInfo = this.family('probe_ssl_last_chain_info', 'gauge', 'Leaf certificate presented in the last run (value 1).');
  /** Last-run info gauges from a run's bounded text facts (a DNS rcode, why a login was refused), as the kinds declare them. */
  private readonly infoLabels = new Map(
    KIND_LIST.map(
      (k) => [k.name, Object.entries(k.infoLabels ?? {}).map(([key, l]) => ({ key, label: l.label, family: this.family(l.metric, 'gauge', l.help) }))] as const,
    ),
  );
  private readonly failureInfo = this.family(
    'vakt_probe_failure_info',
    'gauge',
    'Why the last run against the target failed (value 1; absent when it succeeded).',
  );
  private readonly lastRun = this.family('vakt_probe_last_run_timestamp_seconds', 'gauge', 'When the last run of the check started (Unix seconds).');
  private readonly stepSuccess = this.family(
    'vakt_step_success',
    'gauge',
    'Whether the step succeeded in the last run (1) or failed (0); absent for steps the run did not reach.',
  );
  private readonly stepSeconds = this.family('vakt_step_last_duration_seconds', 'gauge', 'Seconds the step took in the last run.');
  /** Gauges per item of a result list (a queue check's readings), as the kinds declare them. */
  private readonly readings = new Map(KIND_LIST.flatMap((k) => (k.readings ? [[k.name, this.readingFamilies(k.readings)] as const] : [])));
  /** A gauge per named item of a run (an SNMP check's numeric OIDs), as the kinds declare it. */
  private readonly itemGauges = new Map(
    KIND_LIST.flatMap((k) =>
      'itemGauge' in k && k.itemGauge
        ? [[k.name, { label: k.itemGauge.label, family: this.family(k.itemGauge.metric, 'gauge', k.itemGauge.help) }] as const]
        : [],
    ),
  );

  // Cumulative, per check.
  private readonly runs = this.family('vakt_probe_runs_total', 'counter', 'Runs by result (ok, degraded, failed).');
  private readonly failures = this.family('vakt_probe_failures_total', 'counter', 'Failed runs by reason.');
  private readonly degradations = this.family('vakt_probe_degraded_total', 'counter', 'Degraded runs by reason.');
  /** Counters of codes a run reports in its info (an HL7 ACK code), as the kinds declare them. */
  private readonly tallies = new Map(KIND_LIST.map((k) => [k.name, this.tallyFamilies(k.tallies ?? {})] as const));
  private readonly skipped = this.family(
    'vakt_probe_skipped_runs_total',
    'counter',
    'Scheduled runs skipped because the previous run of the check was still in progress.',
  );
  private readonly disturbed = this.family(
    'vakt_probe_disturbed_runs_total',
    'counter',
    "Runs during which the agent's event loop stalled beyond agent.maxLoopDelay: their timings are not trusted (no slow verdict, not learnt).",
  );
  private readonly histogram = this.family(
    'vakt_probe_duration_seconds',
    'histogram',
    'Cumulative distribution of run and phase durations by check (phase="total" is the whole run); only for checks with histograms enabled.',
  );
  private readonly stepHistogram = this.family(
    'vakt_step_duration_seconds',
    'histogram',
    'Cumulative distribution of step phase durations by check and step (phase="total" is the whole step); only for checks with histograms enabled.',
  );

  // Check state.
  private readonly checkInfo = this.family(
    'vakt_check_info',
    'gauge',
    'One series per configured check (value 1) with its kind, target(s), status-page group and title, for joins.',
  );
  private readonly status = this.family('vakt_check_status', 'gauge', 'Current state of the check: one series, value 1, labelled with the state.');
  private readonly statusSince = this.family('vakt_check_status_since_timestamp_seconds', 'gauge', 'When the check entered its current state (Unix seconds).');
  private readonly flapping = this.family(
    'vakt_check_flapping',
    'gauge',
    'Whether the check changes state too often (1) or not (0); see flapping in the config.',
  );
  private readonly baseline = this.family(
    'vakt_check_baseline_seconds',
    'gauge',
    "The check's learnt normal run duration: median of its recent good runs (once enough were seen).",
  );
  private readonly rootCause = this.family(
    'vakt_check_root_cause',
    'gauge',
    'Present (value 1) while the check is down, naming its root cause: itself, or the deepest down check it depends on.',
  );

  // The agent's own series.
  private readonly incidentsOpen = this.family('vakt_incidents_open', 'gauge', 'Open incidents: root causes that are down.');
  private readonly incidentAffected = this.family(
    'vakt_incident_affected_checks',
    'gauge',
    'Per open incident (root cause), how many other checks are down because of it.',
  );
  private readonly incidentSince = this.family(
    'vakt_incident_since_timestamp_seconds',
    'gauge',
    'Per open incident (root cause), when the cause went down (Unix seconds).',
  );
  private readonly buildInfo = this.family('vakt_build_info', 'gauge', 'Version of vakt and of the Node.js runtime (value 1).');
  private readonly inFlightFamily = this.family('vakt_probes_in_flight', 'gauge', 'Probes running right now.');
  private readonly queuedFamily = this.family('vakt_probes_queued', 'gauge', 'Runs waiting for a slot under the concurrency cap.');
  private readonly concurrencyFamily = this.family('vakt_probe_concurrency_limit', 'gauge', 'Maximum probes in flight (agent.concurrency).');
  private readonly threadsFamily = this.family(
    'vakt_probe_threads',
    'gauge',
    'Worker threads that run the probes (agent.probeThreads; 0: on the main thread).',
  );
  private readonly threadRestartsFamily = this.family(
    'vakt_probe_thread_restarts_total',
    'counter',
    'Probe threads started again after they ended unexpectedly (their runs in flight failed with reason internal).',
  );
  private readonly lagFamily = this.family('vakt_scheduler_lag_seconds', 'histogram', 'How late scheduled runs fired compared with their intended time.');
  private readonly queueWaitFamily = this.family('vakt_scheduler_queue_wait_seconds', 'histogram', 'Time runs waited for a slot under the concurrency cap.');
  private readonly reloadOk = this.family('vakt_config_last_reload_successful', 'gauge', 'Whether the last configuration load or reload succeeded.');
  private readonly reloadTime = this.family(
    'vakt_config_last_reload_success_timestamp_seconds',
    'gauge',
    'When the configuration was last loaded successfully (Unix seconds).',
  );
  private readonly reloads = this.family('vakt_config_reloads_total', 'counter', 'Configuration reloads by result.');
  private readonly checksConfigured = this.family('vakt_checks_configured', 'gauge', 'Configured checks by kind.');
  private readonly ownedFamily = this.family('vakt_agent_checks_owned', 'gauge', 'Checks this agent runs, after its site and its shard.');
  private readonly shardFamily = this.family('vakt_agent_shard', 'gauge', "This agent's shard: its index, from 0 (--shard i/n; 0 when not sharded).");
  private readonly shardsFamily = this.family(
    'vakt_agent_shards',
    'gauge',
    'The number of shards the checks are spread over (--shard i/n; 1 when not sharded).',
  );
  private readonly remoteDependencyFamily = this.family(
    'vakt_check_remote_dependency',
    'gauge',
    'A dependsOn edge from a check this agent runs to a check another shard runs (value 1): the shipped rules resolve the root cause across shards with it.',
  );
  private readonly journalLostFamily = this.family(
    'vakt_journal_records_lost_total',
    'counter',
    'Journal records (state changes, incidents) that could not be written: the disk refused them, or too many waited.',
  );
  private readonly journalErrorsFamily = this.family('vakt_journal_write_errors_total', 'counter', 'Failed writes, syncs or opens of the journal file.');
  private readonly maintenanceFamily = this.family(
    'vakt_check_maintenance',
    'gauge',
    'The check is in a planned-work window (value 1; absent otherwise): the shipped rules stay quiet about it.',
  );
  private readonly regressionFamily = this.family(
    'vakt_check_change_regression',
    'gauge',
    'After the planned-work window `window` ended, the check is worse than before it (value 1; absent otherwise).',
  );
  private readonly windowsOpenFamily = this.family('vakt_maintenance_windows_active', 'gauge', 'Planned-work windows open now.');
  private readonly verificationsFamily = this.family(
    'vakt_change_verifications_total',
    'counter',
    'Checks compared with their pre-window level after planned work, by result (regressed, verified).',
  );
  private readonly notifyDeliveriesFamily = this.family(
    'vakt_notify_deliveries_total',
    'counter',
    'Notices for a webhook (agent.notify.webhooks) by result: delivered (2xx), failed (refused, or every attempt failed), dropped (its queue was full).',
  );
  private readonly notifyQueueFamily = this.family('vakt_notify_queue', 'gauge', 'Notices waiting for a webhook (the one being delivered not counted).');
  private readonly webRefusedFamily = this.family(
    'vakt_web_requests_refused_total',
    'counter',
    "Requests to the agent's own server refused by agent.web, by reason: unauthenticated (401), forbidden (403), throttled (429).",
  );
  private readonly webCertFamily = this.family(
    'vakt_web_tls_certificate_not_after_timestamp_seconds',
    'gauge',
    "When the certificate the agent's own server presents expires (Unix seconds); only with tls_server_config.",
  );

  // Services made of redundant checks (agent/composite.ts).
  private readonly serviceInfo = this.family(
    'vakt_service_info',
    'gauge',
    'One series per service made of redundant checks (value 1) with its status-page group and title, for joins.',
  );
  private readonly serviceStatus = this.family(
    'vakt_service_status',
    'gauge',
    'Current state of the service: one series, value 1, labelled with the state (unknown, ok, degraded, failing, down, maintenance).',
  );
  private readonly serviceUp = this.family(
    'vakt_service_up',
    'gauge',
    "Whether at least minUp of the service's members work (1) or not (0); absent until its members have been judged.",
  );
  private readonly serviceMembers = this.family('vakt_service_members', 'gauge', 'Members of the service that this agent runs.');
  private readonly serviceMembersUp = this.family('vakt_service_members_up', 'gauge', 'Members of the service that work now (ok or degraded).');
  private readonly serviceMembersRequired = this.family(
    'vakt_service_members_required',
    'gauge',
    'Members that must work for the service to be up (its minUp).',
  );
  private readonly redundantMember = this.family(
    'vakt_check_redundant_member',
    'gauge',
    'The check is a redundant member of the service `service` (value 1): the shipped rules page on the service, not on the member.',
  );

  private readonly lagState = new HistogramState(LAG_BUCKETS);
  private readonly queueWaitState = new HistogramState(LAG_BUCKETS);
  private readonly reloadCounts = { success: 0, failure: 0 };
  private reloadSuccessAt: number | undefined;
  private reloadSucceeded = 1;
  private configuredByKind = new Map<string, number>(KINDS.map((k) => [k, 0]));
  private openIncidents: readonly Incident[] = [];
  private probeThreads: () => { threads: number; restarts: number } = () => ({ threads: 0, restarts: 0 });
  private placement: Placement = { shard: { index: 0, count: 1 }, owned: 0, remote: [] };
  private journal: () => { lost: number; errors: number } = () => ({ lost: 0, errors: 0 });
  private plannedWork: () => PlannedWorkFigures = () => ({ windowsOpen: 0, verifications: { regressed: 0, verified: 0 } });
  private notify: () => readonly WebhookFigures[] = () => [];
  private webServer: () => WebServerFigures = () => ({ refused: { unauthenticated: 0, forbidden: 0, throttled: 0 } });

  constructor(
    private readonly inFlight: () => number,
    private readonly queued: () => number,
    private readonly concurrency: () => number,
    private readonly redactor?: Redactor,
  ) {
    // The event-loop delay histogram behind nodejs_eventloop_lag_* samples every 100 ms, not
    // every 10 ms: its timer woke an idle agent 100 times a second (about 6 ms of CPU per second
    // here). Stalls still show in it; each run's own stall is measured by agent/loop-monitor.ts.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    this.writeAgent();
  }

  /** The names of every family this agent can expose (the docs test walks them). */
  familyNames(): string[] {
    return [...this.families.map((f) => f.name), ...this.registry.getMetricsAsArray().map((m) => m.name)];
  }

  /** Histogram mode for checks that do not set their own (agent.histograms). */
  setHistogramDefault(mode: HistogramMode): void {
    if (mode === this.histogramDefault) return;
    this.histogramDefault = mode;
    for (const cs of this.checks.values()) if (cs.config.histograms === undefined) this.writeHistograms(cs);
  }

  /** Constant labels on every series (agent.labels); a change rewrites every check's text. */
  setConstantLabels(labels: Record<string, string>): void {
    const text = labelText(labels);
    const constant = text === '' ? '' : `,${text}`;
    this.registry.setDefaultLabels(labels);
    if (constant === this.constant) return;
    this.constant = constant;
    this.rewriteAll();
  }

  /** The secrets changed (a reload): label values are redacted again. */
  secretsChanged(): void {
    this.rewriteAll();
  }

  /** Where the probe threads' count and restarts are read when scraped. */
  setProbeThreads(source: () => { threads: number; restarts: number }): void {
    this.probeThreads = source;
  }

  /** Self-metric: how late a scheduled run fired. */
  lag(seconds: number): void {
    this.lagState.observe(seconds);
  }

  configLoaded(ok: boolean, checks: readonly CheckConfig[] | undefined, isReload: boolean): void {
    this.reloadSucceeded = ok ? 1 : 0;
    if (isReload) this.reloadCounts[ok ? 'success' : 'failure']++;
    if (ok && checks) {
      this.reloadSuccessAt = Date.now() / 1000;
      this.configuredByKind = new Map<string, number>(KINDS.map((k) => [k, 0]));
      for (const c of checks) this.configuredByKind.set(c.kind, (this.configuredByKind.get(c.kind) ?? 0) + 1);
    }
    this.writeAgent();
  }

  /** Creates the series a check has before its first run (counters at 0, info). */
  addCheck(check: CheckConfig): CheckSeries {
    this.removeCheck(check.name);
    const cs: CheckSeries = {
      config: check,
      own: flat(`check="${escapeLabel(check.name)}"`),
      runs: { ok: 0, degraded: 0, failed: 0 },
      skipped: 0,
      disturbed: 0,
      lastFamilies: [],
    };
    this.checks.set(check.name, cs);
    this.writeInfo(cs);
    this.writeCounters(cs);
    return cs;
  }

  setStatus(name: string, status: CheckStatus): void {
    const cs = this.checks.get(name);
    if (!cs) return;
    const shown = cs.status;
    if (shown && shown.state === status.state && shown.since === status.since && shown.flapping === status.flapping && shown.baseline === status.baseline)
      return;
    cs.status = { ...status };
    this.writeStatus(cs);
  }

  /** The check's root cause while it is down (itself or a dependency); no series otherwise. */
  setRootCause(name: string, cause: string | undefined): void {
    const cs = this.checks.get(name);
    if (!cs || cs.cause === cause) return;
    if (cause === undefined) delete cs.cause;
    else cs.cause = cause;
    this.writeRootCause(cs);
  }

  /** Open incidents: one series per root cause, valued with the number of checks it affects. */
  setIncidents(list: readonly Incident[]): void {
    this.openIncidents = list;
    this.writeAgent();
  }

  skippedRun(name: string): void {
    const cs = this.checks.get(name);
    if (!cs) return;
    cs.skipped++;
    this.writeCount(cs, this.skipped, cs.skipped);
  }

  observe(check: CheckConfig, outcome: RunOutcome): void {
    const known = this.checks.get(check.name);
    const cs = known?.config === check ? known : this.addCheck(check);
    const result = outcome.result;
    this.queueWaitState.observe(outcome.queueWait);
    cs.last = outcome;
    // Only the counters this run moved are written again.
    cs.runs[runResult(result)]++;
    this.writeRuns(cs);
    if (!result.ok && result.failure) {
      this.writeTally(cs, this.failures, 'reason', (cs.failures = bump(cs.failures, result.failure.reason)));
    }
    if (result.ok && result.degraded) {
      this.writeTally(cs, this.degradations, 'reason', (cs.degradations = bump(cs.degradations, result.degraded.reason)));
    }
    for (const t of this.tallies.get(check.kind) ?? []) {
      const code = result.info?.[t.key];
      if (typeof code !== 'string') continue;
      const codes = (cs.codes ??= new Map());
      const counts = bump(codes.get(t.key), t.values.has(code) ? code : 'other');
      codes.set(t.key, counts);
      this.writeTally(cs, t.family, t.label, counts);
    }
    if (outcome.disturbed) this.writeCount(cs, this.disturbed, ++cs.disturbed);
    const mode = cs.config.histograms ?? this.histogramDefault;
    if (mode !== 'off') this.observeHistograms(cs, outcome, mode);
    this.writeLastRun(cs);
  }

  /** Writes a service's series from its view (at start, on reload, whenever its state or members' tally changes). */
  setService(v: ServiceView): void {
    this.services.set(v.config.name, v);
    this.writeService(v);
  }

  /** Removes a service's series (it was removed from the config, or its members run elsewhere now). */
  removeService(name: string): void {
    if (!this.services.delete(name)) return;
    const owner = serviceOwner(name);
    for (const f of this.families) f.set(owner, '');
  }

  private writeService(v: ServiceView): void {
    const owner = serviceOwner(v.config.name);
    const k = this.constant;
    const own = `service="${escapeLabel(v.config.name)}"`;
    this.serviceInfo.set(owner, line('vakt_service_info', `${own},group="${this.label(v.config.group)}",title="${this.label(v.config.title)}"${k}`, 1));
    this.serviceStatus.set(owner, line('vakt_service_status', `${own},status="${v.state}"${k}`, 1));
    const judged = v.state !== 'unknown';
    this.serviceUp.set(owner, judged ? line('vakt_service_up', `${own}${k}`, v.tally.up >= v.config.minUp ? 1 : 0) : '');
    this.serviceMembers.set(owner, line('vakt_service_members', `${own}${k}`, v.tally.total));
    this.serviceMembersUp.set(owner, line('vakt_service_members_up', `${own}${k}`, v.tally.up));
    this.serviceMembersRequired.set(owner, line('vakt_service_members_required', `${own}${k}`, v.config.minUp));
    let members = '';
    for (const m of v.config.members) members += line('vakt_check_redundant_member', `check="${escapeLabel(m)}",${own}${k}`, 1);
    this.redundantMember.set(owner, members);
  }

  /** Removes every series of a check (it was removed from the config). */
  removeCheck(name: string): void {
    if (!this.checks.delete(name)) return;
    for (const f of this.families) f.set(name, '');
  }

  /** Prometheus text format, or OpenMetrics when asked, in chunks that yield to the event loop between them. */
  async *renderChunks(openMetrics: boolean): AsyncGenerator<string> {
    this.writeAgentLive();
    const tail = await this.processText(openMetrics);
    yield* expose(this.families, openMetrics, tail);
  }

  contentType(openMetrics: boolean): string {
    return openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
  }

  /** The whole exposition as one string (tests, the bench, `vakt probe`). */
  async render(openMetrics: boolean): Promise<{ contentType: string; body: string }> {
    const parts: string[] = [];
    for await (const chunk of this.renderChunks(openMetrics)) parts.push(chunk);
    return { contentType: this.contentType(openMetrics), body: parts.join('') };
  }

  // ---- writing a check's text ------------------------------------------------------------

  private rewriteAll(): void {
    for (const cs of this.checks.values()) {
      cs.targetText = cs.otherTargets = undefined;
      this.writeInfo(cs);
      this.writeCounters(cs);
      this.writeLastRun(cs);
      this.writeHistograms(cs);
      this.writeStatus(cs);
      this.writeRootCause(cs);
      this.writePlanned(cs);
    }
    for (const v of this.services.values()) this.writeService(v);
    this.writeAgent();
  }

  /** A label value from the config or a peer, as it may be shown: secrets hidden, escaped. */
  private label(v: string): string {
    return escapeLabel(this.redactor ? this.redactor.scrub(v) : v);
  }

  private targetLabels(cs: CheckSeries, target: string): string {
    if (target === cs.config.target) return (cs.targetText ??= this.targetLabelText(cs, target));
    let other = cs.otherTargets?.get(target);
    if (other === undefined) (cs.otherTargets ??= new Map()).set(target, (other = this.targetLabelText(cs, target)));
    return other;
  }

  private targetLabelText(cs: CheckSeries, target: string): string {
    return flat(`${cs.own},kind="${cs.config.kind}",target="${this.label(target)}"`);
  }

  private writeInfo(cs: CheckSeries): void {
    const c = cs.config;
    this.checkInfo.set(
      c.name,
      line(
        'vakt_check_info',
        `${cs.own},kind="${c.kind}",target="${this.label(c.target)}",group="${this.label(c.group)}",title="${this.label(c.title)}"${this.constant}`,
        1,
      ),
    );
  }

  private writeRuns(cs: CheckSeries): void {
    const k = this.constant;
    let runs = '';
    for (const r of RUN_RESULTS) runs += line('vakt_probe_runs_total', `${cs.own},result="${r}"${k}`, cs.runs[r]);
    this.runs.set(cs.config.name, runs);
  }

  private writeCounters(cs: CheckSeries): void {
    this.writeRuns(cs);
    this.writeTally(cs, this.failures, 'reason', cs.failures);
    this.writeTally(cs, this.degradations, 'reason', cs.degradations);
    for (const t of this.tallies.get(cs.config.kind) ?? []) this.writeTally(cs, t.family, t.label, cs.codes?.get(t.key));
    this.writeCount(cs, this.skipped, cs.skipped);
    this.writeCount(cs, this.disturbed, cs.disturbed);
  }

  /** A counter by one label (values from closed sets); a series per value seen. */
  private writeTally(cs: CheckSeries, family: Family, label: string, counts: Map<string, number> | undefined): void {
    let out = '';
    if (counts) for (const [v, n] of counts) out += line(family.name, `${cs.own},${label}="${escapeLabel(v)}"${this.constant}`, n);
    family.set(cs.config.name, out);
  }

  /** A per-check counter that appears with its first count. */
  private writeCount(cs: CheckSeries, family: Family, n: number): void {
    family.set(cs.config.name, n > 0 ? line(family.name, `${cs.own}${this.constant}`, n) : '');
  }

  private writeStatus(cs: CheckSeries): void {
    const name = cs.config.name;
    const s = cs.status;
    if (!s) {
      for (const f of [this.status, this.statusSince, this.flapping, this.baseline]) f.set(name, '');
      return;
    }
    const k = this.constant;
    // Only the current state has a series (not one-hot with four zeros: at 10,000 checks that
    // was 40,000 series saying nothing); flapping likewise only while it is so.
    this.status.set(name, line('vakt_check_status', `${cs.own},status="${s.state}"${k}`, 1));
    this.statusSince.set(name, line('vakt_check_status_since_timestamp_seconds', `${cs.own}${k}`, s.since / 1000));
    this.flapping.set(name, s.flapping ? line('vakt_check_flapping', `${cs.own}${k}`, 1) : '');
    this.baseline.set(name, s.baseline === undefined ? '' : line('vakt_check_baseline_seconds', `${cs.own}${k}`, micro(s.baseline)));
  }

  private writeRootCause(cs: CheckSeries): void {
    this.rootCause.set(
      cs.config.name,
      cs.cause === undefined ? '' : line('vakt_check_root_cause', `${cs.own},cause="${escapeLabel(cs.cause)}"${this.constant}`, 1),
    );
  }

  /** Rewrites every last-run family of the check from its last outcome (what the run did not produce is removed). */
  private writeLastRun(cs: CheckSeries): void {
    const name = cs.config.name;
    const outcome = cs.last;
    const text = new Map<Family, string>();
    const add = (f: Family, labels: string, v: number) => text.set(f, (text.get(f) ?? '') + line(f.name, `${labels}${this.constant}`, v));
    if (outcome) {
      const check = cs.config;
      const result = outcome.result;
      for (const part of targetParts(check, outcome)) this.targetText(cs, part, add);
      // Check-level last-run facts (kind and target are in vakt_check_info).
      add(this.lastRun, cs.own, outcome.startedAt / 1000);
      // Per step only for checks configured with steps: a single request's step would repeat
      // probe_success and probe_duration_seconds.
      if (hasSteps(check)) {
        for (const step of result.steps ?? []) {
          const labels = `${cs.own},step="${this.label(step.name)}"`;
          add(this.stepSuccess, labels, step.ok ? 1 : 0);
          add(this.stepSeconds, labels, micro(step.durationSeconds));
        }
      }
      const readings = this.readings.get(check.kind);
      if (readings) {
        for (const item of result[readings.list] ?? []) {
          const labels = `${cs.own},${readings.label}="${this.label(item[readings.label])}"`;
          for (const { field, family } of readings.gauges) {
            const v = item[field];
            if (typeof v === 'number') add(family, labels, v);
          }
        }
      }
      const items = this.itemGauges.get(check.kind);
      if (items)
        for (const item of result.items ?? [])
          if (item.value !== undefined) add(items.family, `${cs.own},${items.label}="${this.label(item.name)}"`, item.value);
    }
    for (const f of cs.lastFamilies) if (!text.has(f)) f.set(name, '');
    for (const [f, t] of text) f.set(name, t);
    cs.lastFamilies = [...text.keys()];
  }

  private targetText(cs: CheckSeries, part: TargetResult, add: (f: Family, labels: string, v: number) => void): void {
    const base = this.targetLabels(cs, part.target);
    add(this.success, base, part.ok ? 1 : 0);
    add(this.duration, base, micro(part.durationSeconds));
    const kindPhase = this.kindPhase.get(cs.config.kind);
    // Phases that did not run have no series (not 0).
    for (const p of KIND[cs.config.kind].phases) {
      const v = part.phases[p];
      if (v === undefined) continue;
      add(this.phase, `${base},phase="${p}"`, micro(v));
      if (kindPhase) add(kindPhase, `${base},phase="${p}"`, micro(v));
    }
    const values = part.values;
    if (values) {
      for (const { value, family } of this.values) {
        const v = values[value];
        if (v !== undefined) add(family, base, value.endsWith('_seconds') ? micro(v) : v);
      }
      for (const stat of ['min', 'median', 'max'] as const) {
        const v = values[`connect_${stat}_seconds`];
        if (v !== undefined) add(this.connectStats, `${base},stat="${stat}"`, micro(v));
      }
    }
    const info = part.info;
    if (info?.tlsVersion !== undefined) add(this.tlsVersion, `${base},version="${this.label(bbeTlsVersion(info.tlsVersion))}"`, 1);
    if (info?.certFingerprintSha256 !== undefined) {
      const l = (v: string | undefined) => this.label(v ?? '');
      add(
        this.chainInfo,
        `${base},fingerprint_sha256="${l(info.certFingerprintSha256)}",subject="${l(info.certSubject)}",issuer="${l(info.certIssuer)}",subjectalternative="${l(info.certSubjectAlternative)}",serialnumber="${l(info.certSerialNumber)}"`,
        1,
      );
    }
    if (part.failure) add(this.failureInfo, `${base},phase="${this.label(part.failure.phase)}",reason="${part.failure.reason}"`, 1);
    if (info) {
      for (const { key, label, family } of this.infoLabels.get(cs.config.kind) ?? []) {
        const v = info[key];
        if (v !== undefined) add(family, `${base},${label}="${this.label(String(v))}"`, 1);
      }
    }
  }

  // ---- histograms (opt-in) --------------------------------------------------------------

  private observeHistograms(cs: CheckSeries, outcome: RunOutcome, mode: HistogramMode): void {
    const result = outcome.result;
    const hist = (field: 'histograms' | 'stepHistograms', key: string) => {
      const map = (cs[field] ??= new Map());
      let h = map.get(key);
      if (!h) map.set(key, (h = new HistogramState(DURATION_BUCKETS)));
      return h;
    };
    hist('histograms', 'total').observe(outcome.duration);
    if (mode === 'phases') {
      for (const part of targetParts(cs.config, outcome)) {
        for (const p of KIND[cs.config.kind].phases) {
          const v = part.phases[p];
          if (v !== undefined) hist('histograms', p).observe(v);
        }
      }
    }
    for (const step of result.steps ?? []) {
      hist('stepHistograms', `${step.name}\u0000total`).observe(step.durationSeconds);
      if (mode === 'phases') for (const [p, v] of Object.entries(step.phases)) hist('stepHistograms', `${step.name}\u0000${p}`).observe(v);
    }
    this.writeHistograms(cs);
  }

  private writeHistograms(cs: CheckSeries): void {
    const name = cs.config.name;
    const mode = cs.config.histograms ?? this.histogramDefault;
    if (mode === 'off') {
      delete cs.histograms;
      delete cs.stepHistograms;
    } else if (mode === 'total') {
      const { histograms, stepHistograms } = cs;
      for (const key of histograms?.keys() ?? []) if (key !== 'total') histograms?.delete(key);
      for (const key of stepHistograms?.keys() ?? []) if (!key.endsWith('\u0000total')) stepHistograms?.delete(key);
    }
    let text = '';
    for (const [p, h] of cs.histograms ?? []) text += h.render('vakt_probe_duration_seconds', `${cs.own},phase="${p}"${this.constant}`, DURATION_LE);
    this.histogram.set(name, text);
    let steps = '';
    for (const [key, h] of cs.stepHistograms ?? []) {
      const [step, p] = key.split('\u0000') as [string, string];
      steps += h.render('vakt_step_duration_seconds', `${cs.own},step="${this.label(step)}",phase="${p}"${this.constant}`, DURATION_LE);
    }
    this.stepHistogram.set(name, steps);
  }

  // ---- the agent's own series -------------------------------------------------------------

  private writeAgent(): void {
    const k = this.constant.slice(1);
    const own = (extra: string) => (extra === '' ? k : k === '' ? extra : `${extra},${k}`);
    this.buildInfo.set(AGENT, line('vakt_build_info', own(`version="${escapeLabel(VERSION)}",nodejs="${escapeLabel(process.versions.node)}"`), 1));
    this.reloadOk.set(AGENT, line('vakt_config_last_reload_successful', own(''), this.reloadSucceeded));
    this.reloadTime.set(
      AGENT,
      this.reloadSuccessAt === undefined ? '' : line('vakt_config_last_reload_success_timestamp_seconds', own(''), this.reloadSuccessAt),
    );
    this.reloads.set(
      AGENT,
      line('vakt_config_reloads_total', own('result="success"'), this.reloadCounts.success) +
        line('vakt_config_reloads_total', own('result="failure"'), this.reloadCounts.failure),
    );
    let kinds = '';
    for (const [kind, n] of this.configuredByKind) kinds += line('vakt_checks_configured', own(`kind="${kind}"`), n);
    this.checksConfigured.set(AGENT, kinds);
    const p = this.placement;
    this.ownedFamily.set(AGENT, line('vakt_agent_checks_owned', k, p.owned));
    this.shardFamily.set(AGENT, line('vakt_agent_shard', k, p.shard.index));
    this.shardsFamily.set(AGENT, line('vakt_agent_shards', k, p.shard.count));
    let remote = '';
    for (const r of p.remote)
      remote += line('vakt_check_remote_dependency', own(`check="${escapeLabel(r.check)}",depends_on="${escapeLabel(r.dependsOn)}"`), 1);
    this.remoteDependencyFamily.set(AGENT, remote);
    this.incidentsOpen.set(AGENT, line('vakt_incidents_open', own(''), this.openIncidents.length));
    let affected = '';
    let since = '';
    for (const i of this.openIncidents) {
      const l = own(`cause="${escapeLabel(i.cause)}"`);
      affected += line('vakt_incident_affected_checks', l, i.affected.length);
      since += line('vakt_incident_since_timestamp_seconds', l, i.since / 1000);
    }
    this.incidentAffected.set(AGENT, affected);
    this.incidentSince.set(AGENT, since);
  }

  /** The agent series that change all the time, written when scraped. */
  private writeAgentLive(): void {
    const k = this.constant.slice(1);
    this.inFlightFamily.set(AGENT, line('vakt_probes_in_flight', k, this.inFlight()));
    this.queuedFamily.set(AGENT, line('vakt_probes_queued', k, this.queued()));
    this.concurrencyFamily.set(AGENT, line('vakt_probe_concurrency_limit', k, this.concurrency()));
    const threads = this.probeThreads();
    this.threadsFamily.set(AGENT, line('vakt_probe_threads', k, threads.threads));
    this.threadRestartsFamily.set(AGENT, line('vakt_probe_thread_restarts_total', k, threads.restarts));
    this.lagFamily.set(AGENT, this.lagState.render('vakt_scheduler_lag_seconds', k, LAG_LE));
    this.queueWaitFamily.set(AGENT, this.queueWaitState.render('vakt_scheduler_queue_wait_seconds', k, LAG_LE));
    const journal = this.journal();
    this.journalLostFamily.set(AGENT, line('vakt_journal_records_lost_total', k, journal.lost));
    this.journalErrorsFamily.set(AGENT, line('vakt_journal_write_errors_total', k, journal.errors));
    const web = this.webServer();
    const own = (extra: string) => (k === '' ? extra : `${extra},${k}`);
    const planned = this.plannedWork();
    this.windowsOpenFamily.set(AGENT, line('vakt_maintenance_windows_active', k, planned.windowsOpen));
    this.verificationsFamily.set(
      AGENT,
      line('vakt_change_verifications_total', own('result="regressed"'), planned.verifications.regressed) +
        line('vakt_change_verifications_total', own('result="verified"'), planned.verifications.verified),
    );
    let deliveries = '';
    let waiting = '';
    for (const w of this.notify()) {
      const l = `webhook="${escapeLabel(w.name)}"`;
      for (const result of ['delivered', 'failed', 'dropped'] as const)
        deliveries += line('vakt_notify_deliveries_total', own(`${l},result="${result}"`), w[result]);
      waiting += line('vakt_notify_queue', own(l), w.queued);
    }
    this.notifyDeliveriesFamily.set(AGENT, deliveries);
    this.notifyQueueFamily.set(AGENT, waiting);
    let refused = '';
    for (const [reason, n] of Object.entries(web.refused)) refused += line('vakt_web_requests_refused_total', own(`reason="${reason}"`), n);
    this.webRefusedFamily.set(AGENT, refused);
    this.webCertFamily.set(
      AGENT,
      web.certificateNotAfter === undefined ? '' : line('vakt_web_tls_certificate_not_after_timestamp_seconds', k, web.certificateNotAfter),
    );
  }

  /** What this agent runs of its config: its shard, how many checks, and its dependsOn edges to checks other shards run. */
  setPlacement(p: Placement): void {
    this.placement = p;
    this.writeAgent();
  }

  /** Where the journal's loss and error counts come from. */
  setJournal(figures: () => { lost: number; errors: number }): void {
    this.journal = figures;
  }

  /** Where the webhooks' figures come from (deliveries by result, notices waiting). */
  setNotify(figures: () => readonly WebhookFigures[]): void {
    this.notify = figures;
  }

  /** Where the planned-work figures come from (windows open, verifications by result). */
  setPlannedWork(figures: () => PlannedWorkFigures): void {
    this.plannedWork = figures;
  }

  /** The planned-work window holding the check now (undefined: none). */
  setMaintenance(name: string, window: string | undefined): void {
    const cs = this.checks.get(name);
    if (!cs || cs.maintenance === window) return;
    if (window === undefined) delete cs.maintenance;
    else cs.maintenance = window;
    this.writePlanned(cs);
  }

  /** The window after which the check regressed (undefined: no regression stands). */
  setRegression(name: string, window: string | undefined): void {
    const cs = this.checks.get(name);
    if (!cs || cs.regression === window) return;
    if (window === undefined) delete cs.regression;
    else cs.regression = window;
    this.writePlanned(cs);
  }

  private writePlanned(cs: CheckSeries): void {
    const l = (window: string) => `${cs.own},window="${this.label(window)}"${this.constant}`;
    this.maintenanceFamily.set(cs.config.name, cs.maintenance === undefined ? '' : line('vakt_check_maintenance', l(cs.maintenance), 1));
    this.regressionFamily.set(cs.config.name, cs.regression === undefined ? '' : line('vakt_check_change_regression', l(cs.regression), 1));
  }

  /** Where the figures of the agent's own server come from (its refusals, its certificate). */
  setWebServer(figures: () => WebServerFigures): void {
    this.webServer = figures;
  }

  /** prom-client's process metrics, rendered in the asked format without its closing "# EOF". Serialised: see below. */
  private processText(openMetrics: boolean): Promise<string> {
    const next = this.scrapeChain.then(async () => {
      if (!openMetrics) return await this.registry.metrics();
      // prom-client renders OpenMetrics by switching the registry's content type and renaming
      // counters in place; switch back and restore the names before the next scrape.
      const counters = this.registry.getMetricsAsArray().map((m) => [m, (m as unknown as { name: string }).name] as const);
      this.registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
      try {
        return (await this.registry.metrics()).replace(/# EOF\n?$/, '');
      } finally {
        this.registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
        for (const [m, n] of counters) (m as unknown as { name: string }).name = n;
      }
    });
    this.scrapeChain = next.catch(() => undefined);
    return next;
  }

  /** A kind's reading gauges as families, in the order it declares them. */
  private readingFamilies(r: ReadingGauges) {
    const gauges = Object.entries(r.gauges) as [ReadingField, MetricSpec][];
    return { list: r.list, label: r.label, gauges: gauges.map(([field, g]) => ({ field, family: this.family(g.metric, 'gauge', g.help) })) };
  }

  /** A kind's tallies as families, with the codes each counts by name (any other is "other"). */
  private tallyFamilies(tallies: Readonly<Record<string, TallySpec>>) {
    return Object.entries(tallies).map(([key, t]) => ({ key, label: t.label, values: new Set(t.values), family: this.family(t.metric, 'counter', t.help) }));
  }

  /**
   * Registers a family once: a name declared again (two kinds' same metric) is the same family,
   * and must be declared alike (a family has one type and one help text).
   */
  private family(name: string, type: FamilyType, help: string): Family {
    const known = this.families.find((f) => f.name === name);
    if (known) {
      if (known.type !== type || known.help !== help)
        throw new TypeError(`metric ${name} is declared twice, differently (${known.type}: "${known.help}"; ${type}: "${help}")`);
      return known;
    }
    const f = new Family(name, type, help);
    this.families.push(f);
    return f;
  }
}

/**
 * The run's last-run parts: each target's own result, or for a one-target check (and a run of a
 * several-target check that the runner cut off) the whole run, so the series stay stable.
 */
function targetParts(check: CheckConfig, outcome: RunOutcome): TargetResult[] {
  const result: ProbeResult = outcome.result;
  if (result.targets) return result.targets;
  return check.targets.map((target) => ({
    target: check.targets.length > 1 ? target.text : check.target,
    ok: result.ok,
    durationSeconds: outcome.duration,
    phases: result.phases,
    ...(result.failure ? { failure: result.failure } : {}),
    ...(result.values ? { values: result.values } : {}),
    ...(result.info ? { info: result.info } : {}),
  }));
}

/** The owner key of a service's series (check names cannot contain a NUL, so it is no check's). */
function serviceOwner(name: string): string {
  return `\u0000service:${name}`;
}

/** Seconds to the microsecond: what the clocks measure, in a third of the digits. */
function micro(seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6;
}

function hasSteps(check: CheckConfig): boolean {
  return Array.isArray((check.options as { steps?: unknown }).steps);
}

/** Counts one more `key` in a tally (created with its first count); returns the tally. */
function bump(tally: Map<string, number> | undefined, key: string): Map<string, number> {
  const map = tally ?? new Map<string, number>();
  map.set(key, (map.get(key) ?? 0) + 1);
  return map;
}

/** Node says "TLSv1.3"; blackbox_exporter (and the dashboards built on it) say "TLS 1.3". */
function bbeTlsVersion(v: string): string {
  const m = /^TLSv(\d)(?:\.(\d))?$/.exec(v);
  return m ? `TLS ${m[1]}.${m[2] ?? '0'}` : v;
}
