// The agent: holds the running config and wires config -> scheduler -> runner -> probe ->
// detector -> metrics/API. The runner and probes run on probe threads (agent/probe-threads.ts)
// unless agent.probeThreads is 0; everything else stays on this thread. Reloads atomically (a
// bad file keeps the running config; unchanged checks keep their schedule and state) and stops
// cleanly (no new runs, in-flight probes aborted).
import { isDeepStrictEqual } from 'node:util';
import { ConfigLoadError, formatConfigError, loadConfigFile, type CheckConfig, type Config, type LoadOptions } from '../config/loader.js';
import type { WebConfig } from '../config/web.js';
import { placeChecks, type RemoteDependency } from '../config/placement.js';
import { formatShard, type Shard } from '../config/shard.js';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { RunHistory } from './history.js';
import { Journal } from './journal.js';
import { Detector, type CheckState, type CheckStatus, type DetectorSnapshot } from './detector.js';
import { dependentsOf, incidents, PendingBlame, rootCauses, type BlameCheck, type Incident, type Node as RootNode } from './root-cause.js';
import { createLogger, type Logger } from './log.js';
import { LoopMonitor } from './loop-monitor.js';
import { Metrics } from './metrics.js';
import { Redactor } from '../probes/kit/redact.js';
import { ProbeThreads } from './probe-threads.js';
import { Limiter, Runner, type RunOutcome } from './runner.js';
import { Scheduler } from './scheduler.js';
import { runResult } from '../probes/types.js';
import { plainText } from '../config/schema.js';
import { ChangeVerifier, levelOf, type Regression, type Sample } from './change.js';
import { heldByPlannedWork, PlannedWork, type Window } from './maintenance.js';
import type { NoticeContext } from './notices.js';
import { Notifier } from './notify.js';
import { urlSecrets } from '../config/notify.js';
import type { Language } from '../probes/kit/kind.js';
import { Services, type MemberState, type ServiceState, type ServiceView } from './composite.js';

export interface CheckView {
  config: CheckConfig;
  status: CheckStatus;
  last?: RunOutcome;
  /** Recent runs (at most HISTORY). */
  history: RunHistory;
  /** Root cause when the check is down: itself, or the deepest down dependency. */
  cause?: string;
  /** The planned-work window holding the check now: its state reads `maintenance`. */
  maintenance?: Window;
  /** A change regression standing after planned work (agent/change.ts). */
  change?: Regression;
}

function loadOptions(o: AgentOptions): LoadOptions {
  return { ...(o.webConfigFile !== undefined ? { webConfigFile: o.webConfigFile } : {}), ...(o.site !== undefined ? { site: o.site } : {}) };
}

/** The config as this agent runs it: only the checks placed here (config/placement.ts); `elsewhere` counts the others, `disabled` holds those placed here but switched off. */
function placedHere(config: Config, o: AgentOptions): { config: Config; elsewhere: number; remote: RemoteDependency[]; disabled: CheckConfig[] } {
  const placed = placeChecks(config, { site: config.site?.name, shard: o.shard });
  const agent = o.replica === undefined ? config.agent : { ...config.agent, labels: { ...config.agent.labels, replica: o.replica } };
  // A service runs where its members do (placement keeps them together).
  const here = new Set(placed.checks.map((c) => c.name));
  const services = config.services.filter((s) => s.members.some((m) => here.has(m))).map((s) => ({ ...s, members: s.members.filter((m) => here.has(m)) }));
  return {
    config: { ...config, agent, checks: placed.checks, services },
    elsewhere: placed.elsewhere.length,
    remote: placed.remote,
    disabled: placed.disabled,
  };
}

/** How often learnt baselines are written to agent.stateFile. */
const STATE_SAVE_MS = 5 * 60_000;

export interface AgentOptions {
  configFile: string;
  /** Overrides agent.listen (host:port already split). */
  listen?: { host: string; port: number };
  logLevel?: string;
  /** Overrides agent.web.config (vakt run --web.config.file). */
  webConfigFile?: string;
  /** The agent's site (vakt run --site): over VAKT_SITE and agent.labels.site; kept across reloads. */
  site?: string;
  /** This agent's shard of its site's checks (vakt run --shard i/n, VAKT_SHARD, VAKT_SHARDS); kept across reloads. */
  shard?: Shard;
  /** The `replica` label of an agent in an HA pair (vakt run --replica, VAKT_REPLICA). */
  replica?: string;
  /** Log destination (tests capture it). */
  logStream?: NodeJS.WritableStream;
}

export interface ReloadResult {
  ok: boolean;
  errors?: string[];
  added?: string[];
  removed?: string[];
  changed?: string[];
  unchanged?: number;
  /** The checks the new config has with `enabled: false` (not run; a check switched off is also in `removed`). */
  disabled?: string[];
}

export class Agent {
  readonly redactor = new Redactor();
  readonly log: Logger;
  readonly metrics: Metrics;
  private readonly limiter: Limiter;
  private readonly root = new AbortController();
  private readonly loop = new LoopMonitor();
  private readonly runner: Runner;
  /** The probe threads (agent.probeThreads > 0); without them the runner runs probes on this thread. */
  private readonly threads: ProbeThreads | undefined;
  private readonly scheduler: Scheduler;
  private readonly detector = new Detector();
  /** State changes and incidents, on the state volume (agent.journal). */
  readonly journal: Journal;
  private readonly checks = new Map<string, CheckView>();
  private readonly inFlight = new Set<Promise<void>>();
  private reloading: Promise<ReloadResult> | undefined;
  private stopping = false;
  private openIncidents: Incident[] = [];
  /** Blame that waits for runs asked for on demand (agent/root-cause.ts), and who depends on whom. */
  private readonly blame = new PendingBlame();
  private dependents = new Map<string, string[]>();
  private blameTimer: NodeJS.Timeout | undefined;
  /** Planned-work windows (config and admin API) and the change verification after them. */
  readonly planned: PlannedWork;
  private readonly verifier: ChangeVerifier;
  /** Webhooks told of incidents, planned work and change verification (agent.notify). */
  private readonly notifier: Notifier;
  private stateTimer: NodeJS.Timeout | undefined;
  private causesPending = false;
  /** Services made of redundant checks (agent/composite.ts), re-evaluated when a member changes. */
  private readonly services = new Services((name) => this.memberState(name));

  private constructor(
    private config: Config,
    private readonly options: AgentOptions,
  ) {
    this.redactor.setSecrets(secretValues(config));
    this.log = createLogger(options.logLevel ?? config.agent.logLevel, this.redactor, options.logStream);
    this.journal = new Journal(config.agent.journal, this.log);
    const journal = this.journal;
    this.limiter = new Limiter(config.agent.concurrency);
    this.metrics = new Metrics(
      () => this.limiter.inFlight,
      () => this.limiter.queued,
      () => this.config.agent.concurrency,
      this.redactor,
    );
    this.metrics.setJournal(() => ({ lost: journal.dropped, errors: journal.writeErrors }));
    this.planned = new PlannedWork(journal, { started: (w) => this.workStarted(w), ended: (w, at) => this.workEnded(w, at) }, this.log);
    this.verifier = new ChangeVerifier({
      runAfter: (check, ms) => this.scheduler.runAfter(check, ms),
      verdict: (check, kind, r) => this.changeVerdict(check, kind, r),
      cleared: (check, r, why) => this.changeCleared(check, r, why),
    });
    this.notifier = new Notifier(
      config.agent.notify,
      {
        context: (language) => this.noticeContext(language),
        planned: (check) => this.planned.windowOf(check) !== undefined,
        scrub: (text) => this.redactor.scrub(text),
      },
      this.log,
    );
    const notifier = this.notifier;
    journal.subscribe((rec) => notifier.record(rec));
    this.metrics.setNotify(() => notifier.figures());
    const planned = this.planned;
    const verifier = this.verifier;
    this.metrics.setPlannedWork(() => ({ windowsOpen: planned.list().open.length, verifications: verifier.counts }));
    this.metrics.setConstantLabels(config.agent.labels);
    this.metrics.setHistogramDefault(config.agent.histograms);
    this.runner = new Runner(this.root.signal, this.limiter, this.log, undefined, this.loop);
    this.runner.maxLoopDelayMs = config.agent.maxLoopDelayMs;
    if (config.agent.probeThreads > 0) {
      const destination = options.logStream ?? process.stdout;
      this.threads = new ProbeThreads(
        config.agent.probeThreads,
        this.root.signal,
        this.limiter,
        this.log,
        (line) => destination.write(this.redactor.scrub(line)),
        { maxLoopDelayMs: config.agent.maxLoopDelayMs, logLevel: this.log.level },
      );
      const threads = this.threads;
      this.metrics.setProbeThreads(() => ({ threads: threads.count, restarts: threads.restarts }));
    }
    this.scheduler = new Scheduler(
      {
        fire: (name) => this.runOnce(name),
        skipped: (name) => {
          this.metrics.skippedRun(name);
          this.log.debug({ check: name }, 'run skipped: previous run still in progress');
        },
        lag: (_name, seconds) => this.metrics.lag(seconds),
      },
      config.agent.jitter,
      config.agent.startSpreadMs,
    );
  }

  /** Loads the config file and starts scheduling. Throws ConfigLoadError on a bad file. */
  static async start(options: AgentOptions): Promise<Agent> {
    const { config, elsewhere, remote, disabled } = placedHere(await loadConfigFile(options.configFile, process.env, loadOptions(options)), options);
    const agent = new Agent(config, options);
    agent.placed(elsewhere, remote, disabled);
    agent.logSite(undefined);
    agent.metrics.configLoaded(true, config.checks, false);
    await agent.loadState();
    await agent.journal.open();
    agent.journal.append({ t: Date.now(), type: 'agent', event: 'started' });
    // Probes on this thread: their kinds' code is in before the first run is due.
    if (!agent.threads) await Promise.all([...new Set(config.checks.map((c) => c.kind))].map((k) => agent.runner.preload(k)));
    for (const c of config.checks) agent.addCheck(c);
    agent.dependents = dependentsOf(config.checks);
    agent.planned.restore();
    agent.planned.configure(
      config.maintenance,
      config.checks.map((c) => c.name),
    );
    agent.configureServices();
    agent.log.info(
      {
        file: config.file,
        files: config.files.length,
        checks: config.checks.length,
        ...(config.site ? { site: config.site.name } : {}),
        ...(options.shard ? { shard: formatShard(options.shard) } : {}),
        ...(config.site || options.shard ? { elsewhere } : {}),
        ...(config.services.length > 0 ? { services: config.services.length } : {}),
        ...(disabled.length > 0 ? { disabled: disabled.map((c) => c.name) } : {}),
      },
      'config loaded, scheduling checks',
    );
    agent.stateTimer = setInterval(() => void agent.saveState(), STATE_SAVE_MS);
    agent.stateTimer.unref();
    return agent;
  }

  get listen(): { host: string; port: number } {
    return this.options.listen ?? this.config.agent.listen;
  }

  /** Endpoint security as the running config has it (the server takes users, tokens and access rules from it on every request). */
  get web(): WebConfig {
    return this.config.agent.web;
  }

  /** The agent's HTTP server's connection cap (agent.maxConnections; read when the server starts). */
  get maxConnections(): number {
    return this.config.agent.maxConnections;
  }

  get ready(): boolean {
    return !this.stopping && this.scheduler.size === this.checks.size;
  }

  get configFile(): string {
    return this.config.file;
  }

  get labels(): Record<string, string> {
    return this.config.agent.labels;
  }

  get statusPage(): Config['agent']['statusPage'] {
    return this.config.agent.statusPage;
  }

  incidents(): Incident[] {
    return this.openIncidents;
  }

  /** Telling departments (agent.notify): the public URL, the time zone, the webhooks. */
  get notify(): Config['agent']['notify'] {
    return this.config.agent.notify;
  }

  /** How notices are told in a language (the feed's and the webhooks' texts): check titles as the status page shows them. */
  noticeContext(language: Language, now?: number): NoticeContext {
    const notify = this.config.agent.notify;
    return {
      language,
      titleOf: (check, lang) => {
        const c = this.checks.get(check)?.config ?? this.disabled.find((d) => d.name === check);
        return c ? (c.titles?.[lang] ?? c.title) : check;
      },
      timeZone: notify.timeZone,
      publicUrl: notify.publicUrl,
      labels: this.config.agent.labels,
      ...(now !== undefined ? { now } : {}),
    };
  }

  list(): CheckView[] {
    return [...this.checks.values()];
  }

  get(name: string): CheckView | undefined {
    return this.checks.get(name);
  }

  /** The services whose members this agent runs, in config order. */
  serviceList(): ServiceView[] {
    return this.services.list();
  }

  service(name: string): ServiceView | undefined {
    return this.services.get(name);
  }

  /** What a service reads of a member: its state, and whether planned work holds it (its window, or its root cause's). */
  private memberState(name: string): MemberState | undefined {
    const v = this.checks.get(name);
    if (!v) return undefined;
    return { state: v.status.state, held: heldByPlannedWork(v, (n) => this.checks.get(n)) };
  }

  /** Sets the services of the running config (start, reload): an unchanged one keeps its state. */
  private configureServices(): void {
    const { removed } = this.services.configure(this.config.services);
    for (const name of removed) {
      this.metrics.removeService(name);
      this.journal.forget(name);
    }
    for (const v of this.services.list()) this.metrics.setService(v);
  }

  /** A planned-work window opened or closed: which members are held may have changed anywhere. */
  private servicesChanged(): void {
    for (const v of this.services.list()) this.serviceChanged(v.config.name);
  }

  /** A member's state or root cause changed: its service is evaluated again. */
  private memberChanged(check: string): void {
    const name = this.services.serviceOf(check);
    if (name !== undefined) this.serviceChanged(name);
  }

  private serviceChanged(name: string): void {
    const r = this.services.evaluate(name);
    if (!r) return;
    this.metrics.setService(r.view);
    const v = r.view;
    if (v.state === r.previous) return;
    // Journaled like a check's state (service names are no check's), for its availability: in
    // planned work it is neither up nor down, as a check in a window is not.
    const journaled = (st: ServiceState): CheckState => (st === 'maintenance' ? 'unknown' : st);
    if (journaled(r.previous) !== journaled(v.state))
      this.journal.append({ t: v.since, type: 'state', check: name, from: journaled(r.previous), to: journaled(v.state) });
    const line = { service: name, from: r.previous, to: v.state, up: v.tally.up, members: v.tally.total, minUp: v.config.minUp };
    if (v.state === 'down' || v.state === 'failing' || (v.state === 'degraded' && r.previous === 'ok')) this.log.warn(line, `service ${name} is ${v.state}`);
    else this.log.info(line, `service ${name} is ${v.state}`);
  }

  /** Re-reads the config file. Concurrent calls share one reload. */
  reload(): Promise<ReloadResult> {
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  /** What this agent runs of the config, for the API and the metrics. */
  placement = { shard: { index: 0, count: 1 }, owned: 0, elsewhere: 0, disabled: 0, remote: [] as RemoteDependency[] };

  /** The checks placed here with `enabled: false`: configured, not run (no state, no series). */
  private disabled: CheckConfig[] = [];

  /** The disabled checks placed here, in config order (the API lists them as such). */
  disabledChecks(): readonly CheckConfig[] {
    return this.disabled;
  }

  private placed(elsewhere: number, remote: RemoteDependency[], disabled: CheckConfig[]): void {
    this.disabled = disabled;
    this.placement = { shard: this.options.shard ?? { index: 0, count: 1 }, owned: this.config.checks.length, elsewhere, disabled: disabled.length, remote };
    this.metrics.setPlacement(this.placement);
  }

  /** Says so when the site from --site or VAKT_SITE replaces the file's agent.labels.site (at start, and when a reload changes that). */
  private logSite(before: Config['site']): void {
    const site = this.config.site;
    if (site?.replaces === undefined || (before?.name === site.name && before.replaces === site.replaces)) return;
    this.log.info(
      { site: site.name, from: site.from, fileSite: site.replaces },
      `site ${site.name} (${site.from}) replaces agent.labels.site "${site.replaces}" as this agent's site label`,
    );
  }

  /** Stops scheduling, aborts in-flight probes and waits (bounded) for them to settle. */
  async stop(waitMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.scheduler.stop();
    this.planned.stop();
    clearTimeout(this.blameTimer);
    this.notifier.stop();
    this.loop.stop();
    if (this.stateTimer) clearInterval(this.stateTimer);
    this.root.abort(new Error('agent stopping'));
    const pending = [...this.inFlight];
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(pending), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
      clearTimeout(timer);
    }
    await this.threads?.terminate();
    await this.saveState();
    this.journal.append({ t: Date.now(), type: 'agent', event: 'stopped' });
    await this.journal.close();
    this.log.info({ aborted: pending.length }, 'agent stopped');
  }

  /** Restores learnt baselines from agent.stateFile (a missing or broken file is not fatal). */
  private async loadState(): Promise<void> {
    const file = this.config.agent.stateFile;
    if (!file) return;
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as { version?: number; baselines?: DetectorSnapshot; changes?: unknown };
      if (data.version !== 1 || typeof data.baselines !== 'object' || data.baselines === null) throw new Error('not a vakt state file (version 1)');
      const n = this.detector.restore(data.baselines, this.config.checks);
      const names = new Set(this.config.checks.map((c) => c.name));
      this.verifier.restore(data.changes, (c) => names.has(c));
      this.log.info({ file, checks: n }, 'baselines restored from the state file');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.warn({ file, err: (err as Error).message }, 'state file not usable: baselines start afresh');
    }
  }

  /** Writes learnt baselines to agent.stateFile, atomically (temp file + rename). */
  async saveState(): Promise<void> {
    const file = this.config.agent.stateFile;
    if (!file) return;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(
        tmp,
        JSON.stringify({ version: 1, savedAt: new Date().toISOString(), baselines: this.detector.snapshot(), changes: this.verifier.snapshot() }),
      );
      await rename(tmp, file);
    } catch (err) {
      this.log.warn({ file, err: (err as Error).message }, 'could not write the state file');
    }
  }

  /** Runs one check now, outside its schedule (CLI and tests). */
  async runNow(name: string): Promise<RunOutcome | undefined> {
    const view = this.checks.get(name);
    if (!view) return undefined;
    await this.runOnce(name);
    return this.checks.get(name)?.last;
  }

  private async doReload(): Promise<ReloadResult> {
    let next: Config;
    let placement: { elsewhere: number; remote: RemoteDependency[]; disabled: CheckConfig[] };
    try {
      const placed = placedHere(await loadConfigFile(this.options.configFile, process.env, loadOptions(this.options)), this.options);
      next = placed.config;
      placement = placed;
    } catch (err) {
      const errors = err instanceof ConfigLoadError ? err.errors.map(formatConfigError) : [String(err)];
      this.metrics.configLoaded(false, undefined, true);
      this.log.error({ file: this.options.configFile, errors }, 'config reload failed: keeping the running config');
      return { ok: false, errors };
    }
    if (this.stopping) return { ok: false, errors: ['agent is stopping'] };
    const old = this.config;
    this.config = next;
    this.placed(placement.elsewhere, placement.remote, placement.disabled);
    this.logSite(old.site);
    const secrets = secretValues(next);
    this.redactor.setSecrets(secrets);
    // Rewriting every check's text is synchronous work on the measuring loop (a few hundred ms
    // at 10,000 checks): only when the secrets the label values are redacted against changed.
    if (!isDeepStrictEqual(secretValues(old), secrets)) this.metrics.secretsChanged();
    if (this.options.logLevel === undefined) this.log.level = next.agent.logLevel;
    if (!isDeepStrictEqual(old.agent.listen, next.agent.listen) && this.options.listen === undefined) {
      this.log.warn({ listen: `${next.agent.listen.host}:${next.agent.listen.port}` }, 'agent.listen changed: takes effect after a restart');
    }
    this.notifier.configure(next.agent.notify);
    this.metrics.setConstantLabels(next.agent.labels);
    this.metrics.setHistogramDefault(next.agent.histograms);
    this.runner.maxLoopDelayMs = next.agent.maxLoopDelayMs;
    this.threads?.update({ maxLoopDelayMs: next.agent.maxLoopDelayMs, logLevel: this.log.level });
    if (old.agent.maxConnections !== next.agent.maxConnections) {
      this.log.warn(
        { maxConnections: next.agent.maxConnections, running: old.agent.maxConnections },
        'agent.maxConnections changed: takes effect after a restart',
      );
    }
    const [tlsBefore, tlsAfter] = [old.agent.web.tls !== undefined, next.agent.web.tls !== undefined];
    if (tlsBefore !== tlsAfter) this.log.warn({ tls: tlsAfter }, `TLS ${tlsAfter ? 'enabled' : 'disabled'} in the web config: takes effect after a restart`);
    else if (old.agent.web.tls && next.agent.web.tls) {
      const mode = (t: NonNullable<WebConfig['tls']>) => [t.clientAuth, t.minVersion, t.maxVersion, t.clientAllowedSans];
      if (!isDeepStrictEqual(mode(old.agent.web.tls), mode(next.agent.web.tls))) {
        this.log.warn(
          { clientAuth: next.agent.web.tls.clientAuth, running: old.agent.web.tls.clientAuth },
          'client_auth_type, client_allowed_sans or the TLS versions changed in the web config: take effect after a restart (certificate files are taken at once)',
        );
      }
    }
    if (!isDeepStrictEqual(old.agent.web.statusListen, next.agent.web.statusListen)) {
      this.log.warn({ statusListen: next.agent.web.statusListen ?? null }, 'agent.web.statusListen changed: takes effect after a restart');
    }
    if (!isDeepStrictEqual(old.agent.journal, next.agent.journal)) {
      this.log.warn(
        { journal: next.agent.journal.file ?? null, running: old.agent.journal.file ?? null },
        'agent.journal changed: takes effect after a restart',
      );
    }
    if (old.agent.probeThreads !== next.agent.probeThreads) {
      this.log.warn({ probeThreads: next.agent.probeThreads, running: old.agent.probeThreads }, 'agent.probeThreads changed: takes effect after a restart');
    }
    this.limiter.setMax(next.agent.concurrency);
    this.scheduler.setTiming(next.agent.jitter, next.agent.startSpreadMs);

    const wanted = new Map(next.checks.map((c) => [c.name, c]));
    const result: Required<Omit<ReloadResult, 'errors'>> = {
      ok: true,
      added: [],
      removed: [],
      changed: [],
      unchanged: 0,
      disabled: placement.disabled.map((c) => c.name),
    };
    for (const name of [...this.checks.keys()]) {
      if (!wanted.has(name)) {
        this.removeCheck(name);
        result.removed.push(name);
      }
    }
    for (const c of next.checks) {
      const view = this.checks.get(c.name);
      if (!view) {
        this.addCheck(c);
        result.added.push(c.name);
      } else if (!isDeepStrictEqual(view.config, c)) {
        // A changed check starts afresh: new schedule, state and series (its availability history stays).
        this.removeCheck(c.name, false);
        this.addCheck(c);
        result.changed.push(c.name);
      } else result.unchanged++;
    }
    this.planned.configure(
      next.maintenance,
      next.checks.map((c) => c.name),
    );
    this.dependents = dependentsOf(next.checks);
    this.updateCauses();
    this.configureServices();
    this.metrics.configLoaded(true, next.checks, true);
    this.log.info(
      { added: result.added, removed: result.removed, changed: result.changed, unchanged: result.unchanged, disabled: result.disabled },
      'config reloaded',
    );
    return result;
  }

  private addCheck(c: CheckConfig): void {
    const status = this.detector.status(c.name);
    const window = this.planned.windowOf(c.name);
    const change = this.verifier.regressions.get(c.name);
    this.checks.set(c.name, { config: c, status, history: new RunHistory(), ...(window ? { maintenance: window } : {}), ...(change ? { change } : {}) });
    this.metrics.addCheck(c);
    this.metrics.setStatus(c.name, status);
    this.metrics.setMaintenance(c.name, window?.id);
    this.metrics.setRegression(c.name, change?.window);
    // The check runs on a probe thread, which loads its kind's code; else on this one.
    if (this.threads) this.threads.set(c);
    else void this.runner.preload(c.kind);
    this.scheduler.add(c.name, c.schedule);
  }

  private removeCheck(name: string, forgetHistory = true): void {
    this.scheduler.remove(name);
    this.threads?.remove(name);
    this.checks.get(name)?.history.clear();
    this.detector.forget(name);
    if (forgetHistory) {
      this.journal.forget(name);
      this.verifier.forget(name);
    }
    this.blame.forget(name);
    this.metrics.removeCheck(name);
    this.checks.delete(name);
  }

  private runOnce(name: string): Promise<void> {
    const view = this.checks.get(name);
    if (!view || this.stopping) return Promise.resolve();
    const config = view.config;
    const run = (this.threads ?? this.runner)
      .run(config)
      .then((outcome) => {
        // The check may have been removed or replaced by a reload while it ran.
        if (!outcome || this.checks.get(name) !== view || this.stopping) return;
        this.record(view, outcome);
      })
      .catch((err: unknown) => this.log.error({ check: name, err }, 'recording a run failed'))
      .finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
    return run;
  }

  private record(view: CheckView, raw: RunOutcome): void {
    const c = view.config;
    // Detector first: it may mark a slow run degraded. Metrics and API see the judged result.
    const outcome: RunOutcome = { ...raw, result: this.detector.judge(c, raw.result, raw.duration, raw.disturbed) };
    view.last = outcome;
    const r = outcome.result;
    const steps = r.steps ? stepSeconds(r.steps) : undefined;
    view.history.push({
      time: outcome.startedAt,
      result: runResult(r),
      durationSeconds: outcome.duration,
      phases: r.phases,
      ...(steps ? { steps } : {}),
      ...(r.failure ? { reason: r.failure.reason } : r.degraded ? { reason: r.degraded.reason } : {}),
      ...(outcome.disturbed ? { disturbed: true } : {}),
    });
    this.metrics.observe(c, outcome);
    const verdict = this.detector.update(c, r, outcome.startedAt);
    view.status = verdict.status;
    this.metrics.setStatus(c.name, verdict.status);
    if (this.blame.ran(c.name)) this.causesSoon();
    if (verdict.changed) this.memberChanged(c.name);
    // After planned work: the runs that verify the change, and those that tell a regression went (disturbed runs say nothing of the peer).
    if (this.verifier.verifying(c.name) && !view.maintenance && outcome.disturbed) this.scheduler.runAfter(c.name, c.retryIntervalMs);
    else if ((view.change || this.verifier.verifying(c.name)) && !view.maintenance && !outcome.disturbed) {
      const sample: Sample = {
        ok: r.ok,
        ...(r.failure ? { reason: r.failure.reason } : {}),
        total: outcome.duration,
        phases: r.phases,
        steps: steps ?? {},
      };
      this.verifier.sample(c.name, sample, c.retryIntervalMs, Date.now());
    }
    if (!verdict.changed && !verdict.flappingChanged && verdict.retryAfterMs === undefined && !this.log.isLevelEnabled('debug')) return;
    const detail = {
      check: c.name,
      kind: c.kind,
      target: c.target,
      ok: r.ok,
      durationSeconds: round(outcome.duration),
      phases: roundAll(r.phases),
      ...(r.failure ? { reason: r.failure.reason, phase: r.failure.phase, message: r.failure.message } : {}),
      ...(r.degraded ? { degraded: r.degraded.reason, message: r.degraded.message } : {}),
      ...(outcome.disturbed ? { disturbed: true, loopStallSeconds: round(outcome.loopStall) } : {}),
    };
    this.log.debug(detail, 'run finished');
    if (verdict.changed) {
      // Root causes and incidents involve only broken checks: unknown -> ok or ok <-> degraded
      // cannot change them (and at start-up thousands of checks make exactly those moves).
      const broken = (st: string) => st === 'down' || st === 'failing';
      if (broken(verdict.previous) || broken(verdict.status.state)) this.causesSoon();
      // Blame waits for the evidence: the dependencies of a check that broke, or the broken
      // dependents of one that recovered, run at once (agent/root-cause.ts, PendingBlame).
      const ask = this.blame.changed(c, verdict.previous, verdict.status.state, Date.now(), (n) => this.blameView(n), this.dependents.get(c.name) ?? []);
      for (const n of ask) this.scheduler.runNow(n);
      if (ask.length > 0) this.blameExpiry();
      const line = {
        ...detail,
        from: verdict.previous,
        to: verdict.status.state,
        ...(view.cause && view.cause !== c.name ? { cause: view.cause } : {}),
        ...(view.maintenance ? { maintenance: view.maintenance.id } : {}),
      };
      const reason = r.failure?.reason ?? r.degraded?.reason;
      this.journal.append({
        t: outcome.startedAt,
        type: 'state',
        check: c.name,
        from: verdict.previous,
        to: verdict.status.state,
        ...(reason !== undefined && verdict.status.state !== 'ok' ? { reason } : {}),
      });
      if (verdict.status.state === 'ok' || (verdict.previous === 'unknown' && verdict.status.state !== 'down' && verdict.status.state !== 'failing')) {
        this.log.info(line, `check ${c.name} is ${verdict.status.state}`);
      } else this.log.warn(line, `check ${c.name} is ${verdict.status.state}`);
    }
    if (verdict.flappingChanged) {
      this.log.warn(
        { check: c.name, flapping: verdict.status.flapping },
        verdict.status.flapping ? `check ${c.name} is flapping` : `check ${c.name} stopped flapping`,
      );
    }
    if (verdict.retryAfterMs !== undefined) this.scheduler.runAfter(c.name, verdict.retryAfterMs);
  }

  /** A planned-work window opened: its checks read `maintenance`, and their levels are kept for the verification after it. */
  private workStarted(w: Window): void {
    for (const name of w.checks) {
      const view = this.checks.get(name);
      if (!view) continue;
      view.maintenance = this.planned.windowOf(name) ?? w;
      this.metrics.setMaintenance(name, view.maintenance.id);
      if (w.verify) {
        const working = view.last?.result.ok === true && view.status.state !== 'down';
        this.verifier.opened(w.id, name, levelOf(view.history.records(), working));
      }
    }
    if (w.verify) void this.saveState();
    this.servicesChanged();
  }

  /** A planned-work window closed: its checks leave maintenance (unless another window holds them) and are verified. */
  private workEnded(w: Window, at: number): void {
    const free: string[] = [];
    for (const name of w.checks) {
      const view = this.checks.get(name);
      if (!view) continue;
      const other = this.planned.windowOf(name);
      if (other) view.maintenance = other;
      else {
        delete view.maintenance;
        free.push(name);
      }
      this.metrics.setMaintenance(name, other?.id);
    }
    this.verifier.closed(w.id, plainText(w.title), at, w.verify, free);
    this.servicesChanged();
  }

  private changeVerdict(check: string, kind: 'regressed' | 'verified', r: Pick<Regression, 'window' | 'title' | 'ended' | 'message'>): void {
    this.journal.append({ t: Date.now(), type: 'change', event: kind, window: r.window, title: r.title, check, ended: r.ended, message: r.message });
    const view = this.checks.get(check);
    const regression = this.verifier.regressions.get(check);
    if (kind === 'regressed' && view && regression) {
      view.change = regression;
      this.metrics.setRegression(check, regression.window);
      this.log.warn({ check, window: r.window }, `change regression: ${r.message}`);
      void this.saveState();
    } else this.log.info({ check, window: r.window }, `change verified: ${r.message}`);
  }

  private changeCleared(check: string, r: Regression, why: string): void {
    this.journal.append({
      t: Date.now(),
      type: 'change',
      event: 'cleared',
      window: r.window,
      title: r.title,
      check,
      ended: r.ended,
      message: `${check}: ${why}`,
    });
    const view = this.checks.get(check);
    if (view) delete view.change;
    this.metrics.setRegression(check, undefined);
    this.log.info({ check, window: r.window }, `change regression cleared: ${why}`);
    void this.saveState();
  }

  /** Accepts a check's level after planned work as its new normal (admin API): the regression goes. */
  acceptChange(check: string, by: string): Regression | undefined {
    return this.verifier.accept(check, by);
  }

  /**
   * Root causes are recomputed once per burst of state changes (a DNS outage flips hundreds of
   * checks within moments; one pass over the graph after them is enough).
   */
  private causesSoon(): void {
    if (this.causesPending) return;
    this.causesPending = true;
    setImmediate(() => {
      this.causesPending = false;
      if (!this.stopping) this.updateCauses();
    });
  }

  /** What blame needs of one of this agent's checks. */
  private blameView(name: string): (BlameCheck & { state: CheckState }) | undefined {
    const v = this.checks.get(name);
    return v ? { name, dependsOn: v.config.dependsOn, timeoutMs: v.config.timeoutMs, state: v.status.state } : undefined;
  }

  /** Recomputes root causes when the next wait for on-demand runs runs out. */
  private blameExpiry(): void {
    clearTimeout(this.blameTimer);
    const next = this.blame.nextExpiry();
    if (next === undefined || this.stopping) return;
    this.blameTimer = setTimeout(
      () => {
        this.causesSoon();
        this.blameExpiry();
      },
      Math.max(0, next - Date.now()) + 10,
    );
    this.blameTimer.unref();
  }

  /** Recomputes root causes and incidents after a state change. */
  private updateCauses(): void {
    const nodes = new Map<string, RootNode>();
    for (const v of this.checks.values())
      nodes.set(v.config.name, { name: v.config.name, dependsOn: v.config.dependsOn, state: v.status.state, since: v.status.since });
    const causes = rootCauses(nodes);
    this.blame.apply(causes, (n) => this.checks.get(n)?.cause, Date.now());
    for (const v of this.checks.values()) {
      const cause = causes.get(v.config.name);
      if (cause === v.cause) continue;
      if (cause === undefined) delete v.cause;
      else v.cause = cause;
      this.metrics.setRootCause(v.config.name, cause);
      this.memberChanged(v.config.name);
    }
    const before = new Map(this.openIncidents.map((i) => [i.cause, i]));
    this.openIncidents = incidents(nodes, causes);
    this.metrics.setIncidents(this.openIncidents);
    const t = Date.now();
    for (const i of this.openIncidents) {
      const was = before.get(i.cause);
      if (!was || was.since !== i.since) {
        this.log.warn({ cause: i.cause, affected: i.affected, since: new Date(i.since).toISOString() }, `incident opened: ${i.cause} is down`);
        const reason = this.checks.get(i.cause)?.last?.result.failure?.reason;
        this.journal.append({ t, type: 'incident', event: 'opened', cause: i.cause, since: i.since, affected: i.affected, ...(reason ? { reason } : {}) });
      } else if (!isDeepStrictEqual(was.affected, i.affected)) {
        this.journal.append({ t, type: 'incident', event: 'updated', cause: i.cause, since: i.since, affected: i.affected });
      }
    }
    const now = new Map(this.openIncidents.map((i) => [i.cause, i]));
    for (const [c, was] of before) {
      if (now.get(c)?.since === was.since) continue;
      this.log.info({ cause: c }, `incident closed: ${c}`);
      this.journal.append({ t, type: 'incident', event: 'closed', cause: c, since: was.since, affected: was.affected });
    }
  }
}

function secretValues(config: Config): string[] {
  return [
    ...config.checks.flatMap((c) => Object.values(c.secrets)),
    ...Object.values(config.agent.web.tokens),
    ...config.agent.notify.webhooks.flatMap((w) => [...(w.secret !== undefined ? [w.secret] : []), ...urlSecrets(w.url)]),
  ];
}

/** A run's steps as name -> seconds (the history's and the verification's shape). */
function stepSeconds(steps: readonly { name: string; durationSeconds: number }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const st of steps) out[st.name] = st.durationSeconds;
  return out;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function roundAll(phases: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(v)]));
}
