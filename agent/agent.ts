// The agent: holds the running config and wires config -> scheduler -> runner -> probe ->
// detector -> metrics/API. Reloads atomically (a bad file keeps the running config; unchanged
// checks keep their schedule and state) and stops cleanly (no new runs, in-flight probes aborted).
import { isDeepStrictEqual } from 'node:util';
import { ConfigLoadError, formatConfigError, loadConfigFile, type CheckConfig, type Config } from '../config/loader.js';
import { Detector, type CheckStatus } from './detector.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { Redactor } from './redact.js';
import { Limiter, Runner, type RunOutcome } from './runner.js';
import { Scheduler } from './scheduler.js';

export interface CheckView {
  config: CheckConfig;
  status: CheckStatus;
  last?: RunOutcome;
}

export interface AgentOptions {
  configFile: string;
  /** Overrides agent.listen (host:port already split). */
  listen?: { host: string; port: number };
  logLevel?: string;
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
}

export class Agent {
  readonly redactor = new Redactor();
  readonly log: Logger;
  readonly metrics: Metrics;
  private readonly limiter: Limiter;
  private readonly root = new AbortController();
  private readonly runner: Runner;
  private readonly scheduler: Scheduler;
  private readonly detector = new Detector();
  private readonly checks = new Map<string, CheckView>();
  private readonly inFlight = new Set<Promise<void>>();
  private reloading: Promise<ReloadResult> | undefined;
  private stopping = false;

  private constructor(
    private config: Config,
    private readonly options: AgentOptions,
  ) {
    this.redactor.setSecrets(secretValues(config));
    this.log = createLogger(options.logLevel ?? config.agent.logLevel, this.redactor, options.logStream);
    this.limiter = new Limiter(config.agent.concurrency);
    this.metrics = new Metrics(
      () => this.limiter.inFlight,
      () => this.limiter.queued,
      () => this.config.agent.concurrency,
    );
    this.metrics.setConstantLabels(config.agent.labels);
    this.metrics.phaseHistograms = config.agent.phaseHistograms;
    this.runner = new Runner(this.root.signal, this.limiter, this.log);
    this.scheduler = new Scheduler(
      {
        fire: (name) => this.runOnce(name),
        skipped: (name) => {
          this.metrics.skippedRun(name);
          this.log.debug({ check: name }, 'run skipped: previous run still in progress');
        },
        lag: (_name, seconds) => this.metrics.lag.observe(seconds),
      },
      config.agent.jitter,
      config.agent.startSpreadMs,
    );
  }

  /** Loads the config file and starts scheduling. Throws ConfigLoadError on a bad file. */
  static async start(options: AgentOptions): Promise<Agent> {
    const config = await loadConfigFile(options.configFile);
    const agent = new Agent(config, options);
    agent.metrics.configLoaded(true, config.checks, false);
    for (const c of config.checks) agent.addCheck(c);
    agent.log.info({ file: config.file, checks: config.checks.length }, 'config loaded, scheduling checks');
    return agent;
  }

  get listen(): { host: string; port: number } {
    return this.options.listen ?? this.config.agent.listen;
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

  list(): CheckView[] {
    return [...this.checks.values()];
  }

  get(name: string): CheckView | undefined {
    return this.checks.get(name);
  }

  /** Re-reads the config file. Concurrent calls share one reload. */
  reload(): Promise<ReloadResult> {
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  /** Stops scheduling, aborts in-flight probes and waits (bounded) for them to settle. */
  async stop(waitMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.scheduler.stop();
    this.root.abort(new Error('agent stopping'));
    const pending = [...this.inFlight];
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(pending), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
      clearTimeout(timer);
    }
    this.log.info({ aborted: pending.length }, 'agent stopped');
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
    try {
      next = await loadConfigFile(this.options.configFile);
    } catch (err) {
      const errors = err instanceof ConfigLoadError ? err.errors.map(formatConfigError) : [String(err)];
      this.metrics.configLoaded(false, undefined, true);
      this.log.error({ file: this.options.configFile, errors }, 'config reload failed: keeping the running config');
      return { ok: false, errors };
    }
    if (this.stopping) return { ok: false, errors: ['agent is stopping'] };
    const old = this.config;
    this.config = next;
    this.redactor.setSecrets(secretValues(next));
    if (this.options.logLevel === undefined) this.log.level = next.agent.logLevel;
    if (!isDeepStrictEqual(old.agent.listen, next.agent.listen) && this.options.listen === undefined) {
      this.log.warn({ listen: `${next.agent.listen.host}:${next.agent.listen.port}` }, 'agent.listen changed: takes effect after a restart');
    }
    this.metrics.setConstantLabels(next.agent.labels);
    this.metrics.phaseHistograms = next.agent.phaseHistograms;
    this.limiter.setMax(next.agent.concurrency);
    this.scheduler.setTiming(next.agent.jitter, next.agent.startSpreadMs);

    const wanted = new Map(next.checks.map((c) => [c.name, c]));
    const result: Required<Omit<ReloadResult, 'errors'>> = { ok: true, added: [], removed: [], changed: [], unchanged: 0 };
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
        // A changed check starts afresh: new schedule, state and series.
        this.removeCheck(c.name);
        this.addCheck(c);
        result.changed.push(c.name);
      } else result.unchanged++;
    }
    this.metrics.configLoaded(true, next.checks, true);
    this.log.info({ added: result.added, removed: result.removed, changed: result.changed, unchanged: result.unchanged }, 'config reloaded');
    return result;
  }

  private addCheck(c: CheckConfig): void {
    this.checks.set(c.name, { config: c, status: this.detector.status(c.name) });
    this.metrics.addCheck(c);
    this.scheduler.add(c.name, c.schedule);
  }

  private removeCheck(name: string): void {
    this.scheduler.remove(name);
    this.detector.forget(name);
    this.metrics.removeCheck(name);
    this.checks.delete(name);
  }

  private runOnce(name: string): Promise<void> {
    const view = this.checks.get(name);
    if (!view || this.stopping) return Promise.resolve();
    const config = view.config;
    const run = this.runner
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

  private record(view: CheckView, outcome: RunOutcome): void {
    const c = view.config;
    view.last = outcome;
    this.metrics.observe(c, outcome);
    const verdict = this.detector.update(c, outcome.result, outcome.startedAt);
    view.status = verdict.status;
    const r = outcome.result;
    const detail = {
      check: c.name,
      kind: c.kind,
      target: c.target,
      ok: r.ok,
      durationSeconds: round(outcome.duration),
      phases: roundAll(r.phases),
      ...(r.failure ? { reason: r.failure.reason, phase: r.failure.phase, message: r.failure.message } : {}),
      ...(r.degraded ? { degraded: r.degraded.reason, message: r.degraded.message } : {}),
    };
    this.log.debug(detail, 'run finished');
    if (verdict.changed) {
      this.metrics.setStatus(c.name, verdict.status.state);
      const line = { ...detail, from: verdict.previous, to: verdict.status.state };
      if (verdict.status.state === 'ok' || (verdict.previous === 'unknown' && verdict.status.state !== 'down' && verdict.status.state !== 'failing')) {
        this.log.info(line, `check ${c.name} is ${verdict.status.state}`);
      } else this.log.warn(line, `check ${c.name} is ${verdict.status.state}`);
    }
    if (verdict.retryAfterMs !== undefined) this.scheduler.runAfter(c.name, verdict.retryAfterMs);
  }
}

function secretValues(config: Config): string[] {
  return config.checks.flatMap((c) => Object.values(c.secrets));
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function roundAll(phases: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(v)]));
}
