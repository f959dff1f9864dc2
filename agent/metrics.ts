// Prometheus metrics: last-run gauges with blackbox_exporter's names, cumulative series of our
// own that stay right whatever the scrape timing, and the agent's self-metrics. Updated as each
// run finishes (never rebuilt per scrape). Every series of a check is tracked so that removing
// the check removes them all.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import type { CheckConfig } from '../config/loader.js';
import { PROBES } from '../probes/registry.js';
import { RUN_RESULTS, runResult, type ProbeResult, type QueueReading, type TargetResult, type ValueName } from '../probes/types.js';
import { CHECK_STATES, type CheckStatus } from './detector.js';
import type { Incident } from './root-cause.js';
import type { RunOutcome } from './runner.js';
import { VERSION } from './version.js';

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CHECK = ['check', 'kind', 'target'] as const;

/** Probe values exported as their own gauge, labelled check/kind/target. */
const VALUE_GAUGES: Partial<Record<ValueName, { name: string; help: string }>> = {
  ip_protocol: { name: 'probe_ip_protocol', help: 'IP protocol of the last run (4 or 6).' },
  dns_lookup_time_seconds: { name: 'probe_dns_lookup_time_seconds', help: 'Seconds spent resolving the target name (OS resolver), last run.' },
  ssl_earliest_cert_expiry: { name: 'probe_ssl_earliest_cert_expiry', help: 'Earliest expiry (Unix seconds) of the certificates the peer presented, last run.' },
  failed_due_to_regex: { name: 'probe_failed_due_to_regex', help: '1 when the last run failed because the expected pattern did not match.' },
  samples: { name: 'vakt_probe_samples', help: 'Connection attempts made in the last run.' },
  samples_loss_ratio: { name: 'vakt_probe_sample_loss_ratio', help: 'Share of connection attempts that failed in the last run (0..1).' },
  dns_answer_rrs: { name: 'probe_dns_answer_rrs', help: 'Records in the answer section of the last DNS reply.' },
  dns_authority_rrs: { name: 'probe_dns_authority_rrs', help: 'Records in the authority section of the last DNS reply.' },
  dns_additional_rrs: { name: 'probe_dns_additional_rrs', help: 'Records in the additional section of the last DNS reply (without the OPT pseudo-record).' },
  dns_query_succeeded: { name: 'probe_dns_query_succeeded', help: 'Whether the last DNS query got a reply at all (1), whatever its rcode, or none (0).' },
  dns_serial: { name: 'probe_dns_serial', help: 'SOA serial in the last reply from the target.' },
  dns_serial_lag: { name: 'vakt_dns_serial_lag', help: 'How far (RFC 1982) the target\'s SOA serial is behind the newest among the check\'s targets.' },
  dns_tcp_fallback: { name: 'vakt_dns_tcp_fallback', help: '1 when the last query was retried over TCP after a truncated UDP reply.' },
  http_status_code: { name: 'probe_http_status_code', help: 'HTTP status of the final response of the last step that got one.' },
  http_content_length: { name: 'probe_http_content_length', help: 'Body bytes read from that response.' },
  http_redirects: { name: 'probe_http_redirects', help: 'Redirects followed in the last run, over all steps.' },
  http_ssl: { name: 'probe_http_ssl', help: 'Whether the final response came over TLS (1) or not (0).' },
};

/** Queue readings exported per check and queue (absent when the source cannot tell, or the last run read nothing). */
const QUEUE_GAUGES: readonly { field: keyof QueueReading; name: string; help: string }[] = [
  { field: 'depth', name: 'vakt_queue_depth', help: 'Messages waiting in the queue at the last run (RabbitMQ: ready + unacknowledged; a folder: matching files).' },
  { field: 'unacked', name: 'vakt_queue_unacknowledged', help: 'Messages delivered to consumers and not yet acknowledged, at the last run.' },
  { field: 'oldestAgeSeconds', name: 'vakt_queue_oldest_message_age_seconds', help: 'Age of the oldest waiting message at the last run (when the source reports it).' },
  { field: 'consumers', name: 'vakt_queue_consumers', help: 'Consumers attached to the queue at the last run.' },
  { field: 'arrivalRate', name: 'vakt_queue_arrival_rate', help: 'Messages per second added to the queue between the last two runs.' },
  { field: 'drainRate', name: 'vakt_queue_drain_rate', help: 'Messages per second removed from the queue between the last two runs.' },
  { field: 'deliverRate', name: 'vakt_queue_deliver_rate', help: 'Messages per second handed to consumers between the last two runs, redeliveries included (RabbitMQ).' },
  { field: 'undrainedSeconds', name: 'vakt_queue_undrained_seconds', help: 'How long the queue has held messages with nothing drained (0 while it drains or is empty).' },
  { field: 'errors', name: 'vakt_queue_errored_messages', help: 'Messages the source counts as errored (Mirth channel ERROR statistic).' },
];


export class Metrics {
  readonly registry: Registry<'text/plain; version=0.0.4; charset=utf-8' | 'application/openmetrics-text; version=1.0.0; charset=utf-8'> = new Registry();
  private readonly series = new Map<string, Map<string, { metric: Metric<string>; labels: Record<string, string> }>>();
  /** The one current series of each info-style gauge, per check and target. */
  private readonly infoCurrent = new Map<string, { key: string; labels: Record<string, string> }>();
  /** What setStatus last exported per check, so unchanged state costs nothing per run. */
  private readonly statusShown = new Map<string, { state: string; since: number; flapping: boolean; baseline: number | undefined }>();
  private scrapeChain: Promise<unknown> = Promise.resolve();

  private readonly success = this.gauge('probe_success', 'Whether the last run of the check succeeded (1) or failed (0).', CHECK);
  private readonly duration = this.gauge('probe_duration_seconds', 'Seconds the last run of the check took.', CHECK);
  private readonly phase = this.gauge('vakt_probe_phase_seconds', 'Seconds spent in each phase of the last run (only phases that ran).', [...CHECK, 'phase']);
  private readonly values = new Map<ValueName, Gauge<string>>();
  private readonly connectStats = this.gauge('vakt_probe_connect_seconds', 'Connect time over the attempts of the last run: min, median, max.', [...CHECK, 'stat']);
  private readonly tlsVersion = this.gauge('probe_tls_version_info', 'TLS version negotiated in the last run (value 1).', [...CHECK, 'version']);
  private readonly chainInfo = this.gauge('probe_ssl_last_chain_info', 'Leaf certificate presented in the last run (value 1).', [
    ...CHECK,
    'fingerprint_sha256',
    'subject',
    'issuer',
    'subjectalternative',
    'serialnumber',
  ]);
  private readonly authError = this.gauge('vakt_auth_error_info', 'Why the last login attempt was refused (value 1): an OAuth error, LDAP result or Active Directory reason code.', [...CHECK, 'code']);
  private readonly dnsRcode = this.gauge('probe_dns_rcode_info', 'Response code of the last DNS reply from the target (value 1).', [...CHECK, 'rcode']);
  /** Phase gauges under blackbox_exporter's per-kind names, besides vakt_probe_phase_seconds. */
  private readonly kindPhase = new Map<string, Gauge<string>>([
    ['dns', this.gauge('probe_dns_duration_seconds', 'Seconds spent in each phase of the last DNS query to the target (resolve, connect, request).', [...CHECK, 'phase'])],
    ['http', this.gauge('probe_http_duration_seconds', 'Seconds spent in each phase of the last run, summed over its steps and redirects (resolve, connect, tls, processing, transfer).', [...CHECK, 'phase'])],
  ]);
  private readonly stepHistogram = new Histogram({
    name: 'vakt_step_duration_seconds',
    help: 'Cumulative distribution of step phase durations by check and step (phase="total" is the whole step).',
    labelNames: ['check', 'step', 'phase'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly stepSuccess = this.gauge('vakt_step_success', 'Whether the step succeeded in the last run (1) or failed (0); absent for steps the run did not reach.', ['check', 'step']);
  private readonly stepSeconds = this.gauge('vakt_step_last_duration_seconds', 'Seconds the step took in the last run.', ['check', 'step']);
  private readonly degraded = this.gauge('vakt_probe_degraded', 'Whether the last run succeeded but was degraded (1) or not (0).', CHECK);
  private readonly lastRun = this.gauge('vakt_probe_last_run_timestamp_seconds', 'When the last run of the check started (Unix seconds).', CHECK);

  private readonly histogram = new Histogram({
    name: 'vakt_probe_duration_seconds',
    help: 'Cumulative distribution of run and phase durations by check (phase="total" is the whole run).',
    labelNames: ['check', 'phase'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly runs = this.counter('vakt_probe_runs_total', 'Runs by result (ok, degraded, failed).', ['check', 'result']);
  private readonly failures = this.counter('vakt_probe_failures_total', 'Failed runs by reason.', ['check', 'reason']);
  private readonly hl7Acks = this.counter('vakt_hl7_acks_total', 'HL7 ACKs received by mllp checks, by MSA-1 code (AA, AE, AR, CA, CE, CR, other).', ['check', 'code']);
  /** Checks that have queue series now (so the others skip the queue bookkeeping). */
  private readonly withQueues = new Set<string>();
  private readonly queueGauges = QUEUE_GAUGES.map((q) => ({ field: q.field, gauge: this.gauge(q.name, q.help, ['check', 'queue']) }));
  private readonly degradations = this.counter('vakt_probe_degraded_total', 'Degraded runs by reason.', ['check', 'reason']);
  private readonly skipped = this.counter('vakt_probe_skipped_runs_total', 'Scheduled runs skipped because the previous run of the check was still in progress.', ['check']);

  private readonly checkInfo = this.gauge('vakt_check_info', 'One series per configured check (value 1) with its kind, target(s), status-page group and title, for joins.', ['check', 'kind', 'target', 'group', 'title']);
  private readonly failureInfo = this.gauge('vakt_probe_failure_info', 'Why the last run against the target failed (value 1; absent when it succeeded).', [...CHECK, 'phase', 'reason']);
  private readonly status = this.gauge('vakt_check_status', 'Current state of the check, one-hot over status.', ['check', 'status']);
  private readonly statusSince = this.gauge('vakt_check_status_since_timestamp_seconds', 'When the check entered its current state (Unix seconds).', ['check']);
  private readonly flapping = this.gauge('vakt_check_flapping', 'Whether the check changes state too often (1) or not (0); see flapping in the config.', ['check']);
  private readonly baseline = this.gauge('vakt_check_baseline_seconds', "The check's learnt normal run duration: median of its recent good runs (once enough were seen).", ['check']);
  private readonly rootCause = this.gauge('vakt_check_root_cause', 'Present (value 1) while the check is down, naming its root cause: itself, or the deepest down check it depends on.', ['check', 'cause']);
  private readonly incidentsOpen = new Gauge({ name: 'vakt_incidents_open', help: 'Open incidents: root causes that are down.', registers: [this.registry] });
  private readonly incidentAffected = new Gauge({
    name: 'vakt_incident_affected_checks',
    help: 'Per open incident (root cause), how many other checks are down because of it.',
    labelNames: ['cause'],
    registers: [this.registry],
  });
  private readonly incidentSince = new Gauge({
    name: 'vakt_incident_since_timestamp_seconds',
    help: 'Per open incident (root cause), when the cause went down (Unix seconds).',
    labelNames: ['cause'],
    registers: [this.registry],
  });

  readonly lag = new Histogram({
    name: 'vakt_scheduler_lag_seconds',
    help: 'How late scheduled runs fired compared with their intended time.',
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });
  readonly queueWait = new Histogram({
    name: 'vakt_scheduler_queue_wait_seconds',
    help: 'Time runs waited for a slot under the concurrency cap.',
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });
  private readonly reloadOk = new Gauge({ name: 'vakt_config_last_reload_successful', help: 'Whether the last configuration load or reload succeeded.', registers: [this.registry] });
  private readonly reloadTime = new Gauge({ name: 'vakt_config_last_reload_success_timestamp_seconds', help: 'When the configuration was last loaded successfully (Unix seconds).', registers: [this.registry] });
  private readonly reloads = new Counter({ name: 'vakt_config_reloads_total', help: 'Configuration reloads by result.', labelNames: ['result'], registers: [this.registry] });
  private readonly checksConfigured = new Gauge({ name: 'vakt_checks_configured', help: 'Configured checks by kind.', labelNames: ['kind'], registers: [this.registry] });

  constructor(inFlight: () => number, queued: () => number, concurrency: () => number) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'vakt_build_info',
      help: 'Version of vakt and of the Node.js runtime (value 1).',
      labelNames: ['version', 'nodejs'],
      registers: [this.registry],
    }).set({ version: VERSION, nodejs: process.versions.node }, 1);
    new Gauge({
      name: 'vakt_probes_in_flight',
      help: 'Probes running right now.',
      registers: [this.registry],
      collect() {
        this.set(inFlight());
      },
    });
    new Gauge({
      name: 'vakt_probes_queued',
      help: 'Runs waiting for a slot under the concurrency cap.',
      registers: [this.registry],
      collect() {
        this.set(queued());
      },
    });
    new Gauge({
      name: 'vakt_probe_concurrency_limit',
      help: 'Maximum probes in flight (agent.concurrency).',
      registers: [this.registry],
      collect() {
        this.set(concurrency());
      },
    });
    for (const [value, def] of Object.entries(VALUE_GAUGES) as [ValueName, { name: string; help: string }][]) {
      this.values.set(value, this.gauge(def.name, def.help, CHECK));
    }
    for (const kind of Object.keys(PROBES)) this.checksConfigured.set({ kind }, 0);
    for (const result of ['success', 'failure']) this.reloads.inc({ result }, 0);
  }

  /** Whether the histogram has a series per phase (true) or only phase="total" (fewer series). */
  phaseHistograms = true;

  setConstantLabels(labels: Record<string, string>): void {
    this.registry.setDefaultLabels(labels);
  }

  configLoaded(ok: boolean, checks: readonly CheckConfig[] | undefined, isReload: boolean): void {
    this.reloadOk.set(ok ? 1 : 0);
    if (isReload) this.reloads.inc({ result: ok ? 'success' : 'failure' });
    if (!ok || !checks) return;
    this.reloadTime.set(Date.now() / 1000);
    const byKind = new Map<string, number>(Object.keys(PROBES).map((k) => [k, 0]));
    for (const c of checks) byKind.set(c.kind, (byKind.get(c.kind) ?? 0) + 1);
    for (const [kind, n] of byKind) this.checksConfigured.set({ kind }, n);
  }

  /** Creates the series a check has before its first run (counters at 0, status unknown). */
  addCheck(check: CheckConfig): void {
    for (const result of RUN_RESULTS) this.track(check.name, this.runs, { check: check.name, result }, (m, l) => m.inc(l, 0));
    this.track(check.name, this.checkInfo, { check: check.name, kind: check.kind, target: check.target, group: check.group, title: check.title }, (m, l) => m.set(l, 1));
  }

  setStatus(name: string, status: CheckStatus): void {
    const shown = this.statusShown.get(name);
    if (shown && shown.state === status.state && shown.since === status.since && shown.flapping === status.flapping && shown.baseline === status.baseline) return;
    this.statusShown.set(name, { state: status.state, since: status.since, flapping: status.flapping, baseline: status.baseline });
    for (const s of CHECK_STATES) {
      this.track(name, this.status, { check: name, status: s }, (m, l) => m.set(l, s === status.state ? 1 : 0));
    }
    this.track(name, this.statusSince, { check: name }, (m, l) => m.set(l, status.since / 1000));
    this.track(name, this.flapping, { check: name }, (m, l) => m.set(l, status.flapping ? 1 : 0));
    if (status.baseline === undefined) this.untrack(name, this.baseline, { check: name });
    else this.track(name, this.baseline, { check: name }, (m, l) => m.set(l, status.baseline as number));
  }

  /** The check's root cause while it is down (itself or a dependency); no series otherwise. */
  setRootCause(name: string, cause: string | undefined): void {
    this.prune(name, (s) => s.metric === this.rootCause && s.labels.cause !== cause);
    if (cause !== undefined) this.track(name, this.rootCause, { check: name, cause }, (m, l) => m.set(l, 1));
  }

  /** Open incidents: one series per root cause, valued with the number of checks it affects. */
  setIncidents(list: readonly Incident[]): void {
    this.incidentsOpen.set(list.length);
    this.incidentAffected.reset();
    this.incidentSince.reset();
    for (const i of list) {
      this.incidentAffected.set({ cause: i.cause }, i.affected.length);
      this.incidentSince.set({ cause: i.cause }, i.since / 1000);
    }
  }

  skippedRun(name: string): void {
    this.track(name, this.skipped, { check: name }, (m, l) => m.inc(l));
  }

  observe(check: CheckConfig, outcome: RunOutcome): void {
    const { result } = outcome;
    const name = check.name;
    this.queueWait.observe(outcome.queueWait);
    // Last-run series per target: the check's own target, or each of its several targets.
    // A run of a several-target check that the runner cut off (timeout, internal error) has no
    // per-target parts: each target then shares the run's outcome, so its series stay stable.
    const parts: TargetResult[] =
      result.targets ??
      check.targets.map((target) => ({
        target: check.targets.length > 1 ? target : check.target,
        ok: result.ok,
        durationSeconds: outcome.duration,
        phases: result.phases,
        ...(result.failure ? { failure: result.failure } : {}),
        ...(result.values ? { values: result.values } : {}),
        ...(result.info ? { info: result.info } : {}),
      }));
    const seen = new Set<string>();
    for (const part of parts) {
      seen.add(part.target);
      this.observeTarget(check, part);
    }
    this.forgetTargets(name, seen);
    // Check-level last-run facts; for several targets, `target` is their list joined by ",".
    const base = { check: name, kind: check.kind, target: check.target };
    this.track(name, this.degraded, base, (m, l) => m.set(l, result.ok && result.degraded ? 1 : 0));
    this.track(name, this.lastRun, base, (m, l) => m.set(l, outcome.startedAt / 1000));
    this.track(name, this.histogram, { check: name, phase: 'total' }, (m, l) => m.observe(l, outcome.duration));
    this.observeSteps(name, result);
    this.observeQueues(name, result);
    this.track(name, this.runs, { check: name, result: runResult(result) }, (m, l) => m.inc(l));
    if (!result.ok && result.failure) this.track(name, this.failures, { check: name, reason: result.failure.reason }, (m, l) => m.inc(l));
    const ackCode = result.info?.hl7AckCode;
    if (ackCode !== undefined) this.track(name, this.hl7Acks, { check: name, code: ackCode }, (m, l) => m.inc(l));
    if (result.ok && result.degraded) this.track(name, this.degradations, { check: name, reason: result.degraded.reason }, (m, l) => m.inc(l));
  }

  private observeTarget(check: CheckConfig, part: TargetResult): void {
    const name = check.name;
    const base = { check: name, kind: check.kind, target: part.target };
    const set = (g: Gauge<string>, labels: Record<string, string>, v: number) => this.track(name, g, labels, (m, l) => m.set(l, v));
    set(this.success, base, part.ok ? 1 : 0);
    set(this.duration, base, part.durationSeconds);
    const kindPhase = this.kindPhase.get(check.kind);
    // Phases that did not run are removed, not reported as 0.
    for (const p of PROBES[check.kind].phases) {
      const v = part.phases[p];
      const labels = { ...base, phase: p };
      if (v === undefined) {
        this.untrack(name, this.phase, labels);
        if (kindPhase) this.untrack(name, kindPhase, labels);
      } else {
        set(this.phase, labels, v);
        if (kindPhase) set(kindPhase, labels, v);
        if (this.phaseHistograms) this.track(name, this.histogram, { check: name, phase: p }, (m, l) => m.observe(l, v));
      }
    }
    for (const [value, gauge] of this.values) {
      const v = part.values?.[value];
      if (v === undefined) this.untrack(name, gauge, base);
      else set(gauge, base, v);
    }
    for (const stat of ['min', 'median', 'max'] as const) {
      const v = part.values?.[`connect_${stat}_seconds`];
      const labels = { ...base, stat };
      if (v === undefined) this.untrack(name, this.connectStats, labels);
      else set(this.connectStats, labels, v);
    }
    const info = part.info;
    this.replaceInfo(name, part.target, this.tlsVersion, info?.tlsVersion !== undefined ? { ...base, version: bbeTlsVersion(info.tlsVersion) } : undefined);
    this.replaceInfo(
      name,
      part.target,
      this.chainInfo,
      info?.certFingerprintSha256 !== undefined
        ? {
            ...base,
            fingerprint_sha256: info.certFingerprintSha256,
            subject: info.certSubject ?? '',
            issuer: info.certIssuer ?? '',
            subjectalternative: info.certSubjectAlternative ?? '',
            serialnumber: info.certSerialNumber ?? '',
          }
        : undefined,
    );
    this.replaceInfo(name, part.target, this.failureInfo, part.failure ? { ...base, phase: part.failure.phase, reason: part.failure.reason } : undefined);
    this.replaceInfo(name, part.target, this.authError, info?.authCode !== undefined ? { ...base, code: info.authCode } : undefined);
    this.replaceInfo(name, part.target, this.dnsRcode, info?.dnsRcode !== undefined ? { ...base, rcode: info.dnsRcode } : undefined);
  }

  /** Per-step series of multi-step kinds; steps the run did not reach lose their last-run series. */
  private observeSteps(name: string, result: ProbeResult): void {
    if (!result.steps) return;
    const reached = new Set(result.steps.map((s) => s.name));
    this.prune(name, (s) => (s.metric === this.stepSuccess || s.metric === this.stepSeconds) && !reached.has(s.labels.step as string));
    for (const step of result.steps) {
      const labels = { check: name, step: step.name };
      this.track(name, this.stepSuccess, labels, (m, l) => m.set(l, step.ok ? 1 : 0));
      this.track(name, this.stepSeconds, labels, (m, l) => m.set(l, step.durationSeconds));
      this.track(name, this.stepHistogram, { ...labels, phase: 'total' }, (m, l) => m.observe(l, step.durationSeconds));
      if (this.phaseHistograms) {
        for (const [phase, v] of Object.entries(step.phases)) this.track(name, this.stepHistogram, { ...labels, phase }, (m, l) => m.observe(l, v));
      }
    }
  }

  /** Per-queue gauges of queue checks; a value the run did not get (or a queue no longer read) loses its series. */
  private observeQueues(name: string, result: ProbeResult): void {
    // Most checks never have queues: no per-run scan of their series for queue gauges.
    if (result.queues === undefined && !this.withQueues.has(name)) return;
    const wanted = new Set<string>();
    for (const q of result.queues ?? []) {
      for (const { field, gauge } of this.queueGauges) {
        const v = q[field];
        if (typeof v !== 'number') continue;
        const labels = { check: name, queue: q.queue };
        wanted.add(seriesKey(gauge, labels));
        this.track(name, gauge, labels, (m, l) => m.set(l, v));
      }
    }
    this.prune(name, (s, key) => s.labels.queue !== undefined && !wanted.has(key) && this.queueGauges.some((g) => g.gauge === s.metric));
    if (wanted.size > 0) this.withQueues.add(name);
    else this.withQueues.delete(name);
  }

  /** Drops the last-run series of targets a check no longer reports (e.g. after a reload). */
  private forgetTargets(check: string, keep: Set<string>): void {
    this.prune(check, (s) => s.labels.target !== undefined && !keep.has(s.labels.target) && s.metric !== this.lastRun && s.metric !== this.degraded);
  }

  /** Removes the check's series that `drop` picks (from the registry and from the check's list). */
  private prune(check: string, drop: (s: { metric: Metric<string>; labels: Record<string, string> }, key: string) => boolean): void {
    const mine = this.series.get(check);
    for (const [key, s] of mine ?? []) {
      if (drop(s, key)) {
        (s.metric as Gauge<string>).remove(s.labels);
        mine?.delete(key);
      }
    }
  }

  /** Removes every series of a check (it was removed from the config). */
  removeCheck(name: string): void {
    this.statusShown.delete(name);
    this.withQueues.delete(name);
    for (const slot of this.infoCurrent.keys()) if (slot.startsWith(`${name}\u0000`)) this.infoCurrent.delete(slot);
    const mine = this.series.get(name);
    if (!mine) return;
    for (const { metric, labels } of mine.values()) (metric as Gauge<string>).remove(labels);
    this.series.delete(name);
  }

  /** Prometheus text format, or OpenMetrics when asked. Scrapes are serialised (see below). */
  render(openMetrics: boolean): Promise<{ contentType: string; body: string }> {
    const next = this.scrapeChain.then(async () => {
      if (!openMetrics) return { contentType: this.registry.contentType, body: await this.registry.metrics() };
      // prom-client renders OpenMetrics by switching the registry's content type and renaming
      // counters in place; switch back and restore the names before the next scrape.
      const counters = this.registry.getMetricsAsArray().map((m) => [m, (m as unknown as { name: string }).name] as const);
      this.registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
      try {
        return { contentType: Registry.OPENMETRICS_CONTENT_TYPE, body: await this.registry.metrics() };
      } finally {
        this.registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
        for (const [m, n] of counters) (m as unknown as { name: string }).name = n;
      }
    });
    this.scrapeChain = next.catch(() => undefined);
    return next;
  }

  private gauge(name: string, help: string, labelNames: readonly string[]): Gauge<string> {
    return new Gauge({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  private counter(name: string, help: string, labelNames: readonly string[]): Counter<string> {
    return new Counter({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  private track<M extends Metric<string>>(check: string, metric: M, labels: Record<string, string>, apply: (m: M, l: Record<string, string>) => void): void {
    apply(metric, labels);
    let mine = this.series.get(check);
    if (!mine) {
      mine = new Map<string, { metric: Metric<string>; labels: Record<string, string> }>();
      this.series.set(check, mine);
    }
    const key = seriesKey(metric, labels);
    if (!mine.has(key)) mine.set(key, { metric, labels });
  }

  private untrack(check: string, metric: Metric<string>, labels: Record<string, string>): void {
    const key = seriesKey(metric, labels);
    const mine = this.series.get(check);
    if (mine?.delete(key)) (metric as Gauge<string>).remove(labels);
  }

  /** Info-style gauges: at most one series per check and target; a changed value replaces the old series. */
  private replaceInfo(check: string, target: string, metric: Gauge<string>, labels: Record<string, string> | undefined): void {
    const slot = `${check}\u0000${metricId(metric)}\u0000${target}`;
    const current = this.infoCurrent.get(slot);
    const key = labels ? seriesKey(metric, labels) : undefined;
    if (current && current.key === key && this.series.get(check)?.has(current.key)) return;
    if (current) {
      metric.remove(current.labels);
      this.series.get(check)?.delete(current.key);
      this.infoCurrent.delete(slot);
    }
    if (labels && key) {
      this.track(check, metric, labels, (m, l) => m.set(l, 1));
      this.infoCurrent.set(slot, { key, labels });
    }
  }
}

/** Node says "TLSv1.3"; blackbox_exporter (and the dashboards built on it) say "TLS 1.3". */
function bbeTlsVersion(v: string): string {
  const m = /^TLSv(\d)(?:\.(\d))?$/.exec(v);
  return m ? `TLS ${m[1]}.${m[2] ?? '0'}` : v;
}

const metricIds = new WeakMap<object, number>();
let nextMetricId = 1;

/** A metric's identity; not its name, which prom-client renames during OpenMetrics scrapes. */
function metricId(metric: Metric<string>): number {
  let id = metricIds.get(metric);
  if (id === undefined) metricIds.set(metric, (id = nextMetricId++));
  return id;
}

/** Label objects are built in a fixed key order per metric in this file, so no sort is needed. */
function seriesKey(metric: Metric<string>, labels: Record<string, string>): string {
  let key = `${metricId(metric)}`;
  for (const k in labels) key += `\u0000${k}=${labels[k]}`;
  return key;
}
