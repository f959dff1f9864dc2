// The incident replays' common parts (test/system/incidents/*.test.ts, docs/incidents.md): vakt
// agents as their own processes (`vakt run`, in the host or in a network namespace the scenario
// made), a real Prometheus loaded with the shipped rules — their timing scaled by
// `vakt rules --scale` (RULE_SCALE), never an edited copy — scraping them every second, and the
// bookkeeping every scenario shares: a clean baseline with no alert and no check out of `ok`,
// the fault, time to detect and time to alert against documented bounds, recovery, and cleanup
// of everything made, also when a step fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderRules, SHIPPED_RULES_FILE } from '../../../agent/alert-rules.js';
import { freePort, run, startPrometheus, tryRun, waitFor, watchDaemon, type PrometheusProcess } from '../helpers.js';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * The factor every `for:` and group interval of the shipped rules is scaled by in the replays
 * (`vakt rules --scale 0.1`): VaktRootCauseDown's 1 minute is 6 s, VaktLoginSlow's 15 minutes
 * 90 s. docs/incidents.md gives each figure with this factor.
 */
export const RULE_SCALE = 0.1;

/** Where each run's figures are appended, one JSON object per line (also printed). */
export const FIGURES_FILE = join(ROOT, 'test-artifacts', 'incidents.jsonl');

/** Things to undo, newest first; run by `cleanup()` in afterAll, and on exit for processes. */
export class Cleanup {
  private readonly steps: { what: string; fn: () => Promise<void> | void }[] = [];

  add(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }

  /** Runs every step (a failing one does not stop the others) and throws the failures together. */
  async run(): Promise<void> {
    const errors: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        errors.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed:\n${errors.join('\n')}`);
  }
}

/** Processes of this test process that must not outlive it, even when it dies before afterAll. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface CheckView {
  name: string;
  kind: string;
  state: string;
  observedState?: string;
  since: string;
  cause: string | null;
  lastResult: {
    time: string;
    result: string;
    durationSeconds: number;
    failure: { phase: string; reason: string; message: string } | null;
    degraded: { reason: string; message?: string } | null;
    values?: Record<string, number>;
    steps?: { name: string; durationSeconds: number }[];
  } | null;
}

export interface AgentProcess {
  name: string;
  /** host:port Prometheus scrapes and the test asks. */
  address: string;
  url: string;
  checks(): Promise<CheckView[]>;
  check(name: string): Promise<CheckView>;
  /** The status page's HTML in English. */
  statusPage(): Promise<string>;
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts `vakt run -c <config>` as its own process from the TypeScript sources (tsx), in network
 * namespace `netns` when given, listening on `listen` (default a free port of 127.0.0.1), and
 * waits until every check has a verdict.
 */
export async function startAgent(
  cleanup: Cleanup,
  opts: { name: string; config: string; netns?: string; listen?: string; site?: string; env?: Record<string, string> },
): Promise<AgentProcess> {
  const dir = mkdtempSync(join(tmpdir(), `vakt-test-${process.pid}-incident-`));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'vakt.yaml');
  writeFileSync(file, opts.config);
  const listen = opts.listen ?? `127.0.0.1:${await freePort()}`;
  const args = [
    '--import',
    'tsx',
    '-e',
    `import(${JSON.stringify(join(ROOT, 'agent/cli.ts'))}).then((m) => m.main(process.argv.slice(1))).then((c) => { process.exitCode = c; })`,
  ];
  const vakt = ['run', '-c', file, '--listen', listen, ...(opts.site ? ['--site', opts.site] : [])];
  const cmd = opts.netns ? ['ip', ['netns', 'exec', opts.netns, process.execPath, ...args, ...vakt]] : [process.execPath, [...args, ...vakt]];
  const child = spawn(cmd[0] as string, cmd[1] as string[], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const daemon = watchDaemon(child, children);
  const url = `http://${listen}`;
  const stop = async () => {
    if (!daemon.exited()) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await daemon.exit;
      clearTimeout(timer);
    }
  };
  cleanup.add(`stop agent ${opts.name}`, stop);
  const checks = async () => {
    const res = await fetch(`${url}/api/v1/checks`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`${opts.name}: GET /api/v1/checks: ${res.status}`);
    return ((await res.json()) as { checks: CheckView[] }).checks;
  };
  const agent: AgentProcess = {
    name: opts.name,
    address: listen,
    url,
    checks,
    check: async (name) => {
      const c = (await checks()).find((x) => x.name === name);
      if (!c) throw new Error(`${opts.name} has no check ${name}`);
      return c;
    },
    statusPage: async () => (await fetch(`${url}/?lang=en`, { signal: AbortSignal.timeout(5000) })).text(),
    log: daemon.output,
    stop,
  };
  await waitFor(
    `agent ${opts.name} answering with every check run`,
    async () => {
      if (daemon.exited()) throw new Error(`agent ${opts.name} exited: ${daemon.output()}`);
      const all = await checks().catch(() => undefined);
      return all !== undefined && all.length > 0 && all.every((c) => c.lastResult !== null);
    },
    60_000,
    250,
  );
  return agent;
}

export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

export interface RulesPrometheus {
  url: string;
  alerts(): Promise<Alert[]>;
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Waits until every agent is scraped (up == 1) and the rules have been evaluated once. */
  ready(agents: number): Promise<void>;
  /**
   * The notifications a real Alertmanager with the shipped deploy/alertmanager/alertmanager.yml
   * (its inhibitions, routes and grouping; receivers pointed at this test) sent so far to the
   * page receiver: each with the alerts it announced firing.
   */
  pages(): Notification[];
  /** The alerts the Alertmanager holds: labels and state (`active`, or `suppressed` with what inhibits it). */
  alertmanagerAlerts(): Promise<{ labels: Record<string, string>; status: { state: string; inhibitedBy: string[] } }[]>;
}

export interface Notification {
  receiver: string;
  status: string;
  groupLabels: Record<string, string>;
  alerts: { status: string; labels: Record<string, string>; startsAt?: string; endsAt?: string }[];
  /** When the test's webhook received it (ISO time; added by the test, not by Alertmanager). */
  receivedAt?: string;
}

/** The shipped Alertmanager, receivers pointed at a webhook of this test; resolves with its address and what it sent. */
async function startAlertmanager(cleanup: Cleanup, dir: string): Promise<{ address: string; notifications: Notification[] }> {
  const notifications: Notification[] = [];
  const hook = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      notifications.push({ ...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Notification), receivedAt: new Date().toISOString() });
      res.end();
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  cleanup.add('close the webhook receiver', () => new Promise<void>((resolve) => hook.close(() => resolve())));
  const shipped = readFileSync(join(ROOT, 'deploy/alertmanager/alertmanager.yml'), 'utf8');
  if (!shipped.includes('http://127.0.0.1:5001/'))
    throw new Error('deploy/alertmanager/alertmanager.yml: its receivers no longer post to http://127.0.0.1:5001/');
  const config = join(dir, 'alertmanager.yml');
  writeFileSync(config, shipped.replaceAll('http://127.0.0.1:5001/', `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`));
  const port = await freePort();
  const child = spawn(
    'prometheus-alertmanager',
    [
      `--config.file=${config}`,
      `--storage.path=${join(dir, 'am-data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const daemon = watchDaemon(child, children);
  cleanup.add('stop Alertmanager', async () => {
    if (!daemon.exited()) {
      child.kill('SIGTERM');
      await daemon.exit;
    }
  });
  await waitFor(
    'Alertmanager ready',
    async () => {
      if (daemon.exited()) throw new Error(`Alertmanager exited: ${daemon.output()}`);
      return (await fetch(`http://127.0.0.1:${port}/-/ready`).catch(() => undefined))?.ok === true;
    },
    30_000,
    250,
  );
  return { address: `127.0.0.1:${port}`, notifications };
}

/**
 * A real Prometheus scraping `targets` every second and evaluating the shipped rules, timing
 * scaled by RULE_SCALE, every second. Each target: its address and the labels of its scrape
 * (site; the agent's own constant labels come with honor_labels).
 */
export async function startRulesPrometheus(
  cleanup: Cleanup,
  targets: { address: string; labels?: Record<string, string> }[],
  opts: { alertmanager?: boolean } = {},
): Promise<RulesPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), `vakt-test-${process.pid}-rules-`));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const am = opts.alertmanager ? await startAlertmanager(cleanup, dir) : undefined;
  const rules = join(dir, 'vakt-rules.yml');
  writeFileSync(rules, renderRules(readFileSync(SHIPPED_RULES_FILE, 'utf8'), { scale: RULE_SCALE }, ` vakt rules --scale ${RULE_SCALE}`));
  const staticConfigs = targets.map((t) => `{ targets: ["${t.address}"], labels: ${JSON.stringify(t.labels ?? {})} }`).join(', ');
  const prometheus: PrometheusProcess = await startPrometheus(`global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }
rule_files: ["${rules}"]
${am ? `alerting: { alertmanagers: [{ static_configs: [{ targets: ["${am.address}"] }] }] }\n` : ''}scrape_configs:
  - job_name: vakt
    honor_labels: true
    static_configs: [${staticConfigs}]
`);
  cleanup.add('stop Prometheus', () => prometheus.stop());
  const query = async (expr: string) => {
    const res = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string };
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
    return body.data.result;
  };
  return {
    url: prometheus.url,
    query,
    pages: () => {
      if (!am) throw new Error('pages(): start the Prometheus with { alertmanager: true }');
      return am.notifications.filter((n) => n.receiver === 'vakt-page');
    },
    alertmanagerAlerts: async () => {
      if (!am) throw new Error('alertmanagerAlerts(): start the Prometheus with { alertmanager: true }');
      return (await (await fetch(`http://${am.address}/api/v2/alerts`)).json()) as {
        labels: Record<string, string>;
        status: { state: string; inhibitedBy: string[] };
      }[];
    },
    alerts: async () => {
      const body = (await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as { data: { alerts: Alert[] } };
      return body.data.alerts;
    },
    ready: async (agents) => {
      await waitFor('every agent scraped', async () => (await query('sum(up{job="vakt"})'))[0]?.value[1] === String(agents), 60_000, 250);
      await waitFor('the rules evaluated', async () => (await query('count(vakt:check_cause:info)')).length > 0, 30_000, 250);
      // A run counted between two scrapes: until then the rate VaktAgentNotProbing reads is 0.
      await waitFor(
        'runs counted',
        async () => (await query('count(sum by (instance) (rate(vakt_probe_runs_total[10m])) > 0)'))[0]?.value[1] === String(agents),
        30_000,
        250,
      );
      // Before the first scrape VaktAgentAbsent, before the first counted run VaktAgentNotProbing
      // may have gone pending: wait them out.
      await waitFor(
        'no agent alert left from before the first scrape',
        async () => {
          const body = (await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as { data: { alerts: Alert[] } };
          return !body.data.alerts.some((a) => a.labels.alertname?.startsWith('VaktAgent'));
        },
        30_000,
        250,
      );
    },
  };
}

/** An alert's name and its identifying labels, for messages. */
export function describeAlert(a: Pick<Alert, 'labels' | 'state'>): string {
  const { alertname, ...rest } = a.labels;
  const keep = ['check', 'cause', 'site', 'target', 'queue', 'service'].filter((k) => rest[k] !== undefined);
  return `${alertname}{${keep.map((k) => `${k}="${rest[k]}"`).join(',')}} ${a.state}`;
}

/** True when `a` is `alertname` with every label of `labels`. */
export function alertIs(a: Alert, alertname: string, labels: Record<string, string> = {}): boolean {
  return a.labels.alertname === alertname && Object.entries(labels).every(([k, v]) => a.labels[k] === v);
}

/**
 * A clean period (the baseline, and after recovery): for `ms`, every check of every agent stays `ok` and Prometheus has no
 * alert at all, pending or firing. Fails at the first sample that breaks it, naming it.
 */
export async function expectQuiet(agents: AgentProcess[], prometheus: RulesPrometheus, ms: number, ignore?: RegExp): Promise<void> {
  const end = performance.now() + ms;
  let samples = 0;
  while (performance.now() < end || samples < 3) {
    const bad = await problems(agents, prometheus, ignore);
    if (bad.length > 0) throw new Error(`not quiet: ${bad.join('; ')}`);
    samples++;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** A scenario's clock: the fault's moment, and the figures measured from it. */
export class Stopwatch {
  private faultAt = 0;
  readonly figures: Record<string, number> = {};

  constructor(
    readonly scenario: string,
    /** The bound each figure must stay within, in seconds, by figure name (docs/incidents.md). */
    readonly bounds: Record<string, number>,
  ) {}

  fault(): void {
    this.faultAt = performance.now();
  }

  /** Polls `fn` every 200 ms until it holds; records the seconds since the fault as `figure`. */
  async until<T>(figure: string, fn: () => Promise<T | undefined | false>, explain?: () => Promise<string>): Promise<T> {
    const bound = this.bounds[figure];
    if (bound === undefined) throw new Error(`${this.scenario}: no bound for ${figure}`);
    // The wait goes on past the bound (a slow busy machine shows by how much), then fails.
    const value = await waitFor(`${this.scenario}: ${figure}`, fn, Math.max(2 * bound * 1000, 30_000), 200).catch(async (err: Error) => {
      throw new Error(`${err.message}${explain ? `; ${await explain().catch((e: Error) => e.message)}` : ''}`);
    });
    this.figures[figure] = Math.round((performance.now() - this.faultAt) / 100) / 10;
    return value;
  }

  /** Prints the figures, appends them to FIGURES_FILE, and fails for a figure over its bound. */
  report(config: Record<string, unknown>): void {
    const line = { scenario: this.scenario, at: new Date().toISOString(), ruleScale: RULE_SCALE, figures: this.figures, bounds: this.bounds, config };
    process.stdout.write(
      `incident ${this.scenario}: ${Object.entries(this.figures)
        .map(([k, v]) => `${k} ${v} s (bound ${this.bounds[k]} s)`)
        .join(', ')}\n`,
    );
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    appendFileSync(FIGURES_FILE, `${JSON.stringify(line)}\n`);
    const over = Object.entries(this.figures).filter(([k, v]) => v > (this.bounds[k] ?? Infinity));
    if (over.length > 0)
      throw new Error(`${this.scenario}: over the documented bound: ${over.map(([k, v]) => `${k} ${v} s > ${this.bounds[k]} s`).join(', ')}`);
  }
}

/**
 * The error-budget alerts (VaktSLOBudgetBurnFast/Slow) look back over windows of 5 minutes to 3
 * days, which `vakt rules --scale` does not shorten (only `for:` and group intervals): any outage
 * in a replay burns the budget, and the alerts resolve only as their 5-minute window passes. After
 * a fault they are left out of "recovered"; the baseline has them too (none may fire).
 */
export const SLOW_TO_RESOLVE = /^VaktSLOBudgetBurn/;

/** What keeps the scenario from being quiet: checks not `ok` (with their state and reason) and alerts (pending or firing) but those named by `ignore`. */
export async function problems(agents: AgentProcess[], prometheus: RulesPrometheus, ignore?: RegExp): Promise<string[]> {
  const bad: string[] = [];
  for (const agent of agents) {
    for (const c of await agent.checks()) {
      if (c.state !== 'ok') bad.push(`${agent.name}/${c.name} ${c.state} (${c.lastResult?.failure?.reason ?? c.lastResult?.degraded?.reason ?? 'no reason'})`);
    }
  }
  for (const a of await prometheus.alerts()) if (!ignore?.test(a.labels.alertname ?? '')) bad.push(describeAlert(a));
  return bad;
}

// ---------------------------------------------------------------------------------------------
// networks: namespaces joined by veth pairs, with addresses from 10.233.<pid % 250>.0/24

const NETNS_PREFIX = 'vakt-i';
const NETNS_RE = /^vakt-i(\d+)-/;

export interface Link {
  /** The ends: namespace (undefined: the host), interface, address. */
  a: { netns: string | undefined; dev: string; addr: string };
  b: { netns: string | undefined; dev: string; addr: string };
}

/** Runs `cmd` in `netns` (or in the host when undefined). */
export async function inNs(netns: string | undefined, cmd: string, args: readonly string[]): Promise<string> {
  return netns ? run('ip', ['netns', 'exec', netns, cmd, ...args]) : run(cmd, args);
}

/**
 * The namespaces and links of one scenario. Every namespace, veth pair and /etc/netns folder it
 * makes is undone by the scenario's Cleanup (namespaces deleted with every process left in them).
 */
export class Net {
  private links = 0;
  private readonly octet = process.pid % 250;

  constructor(private readonly cleanup: Cleanup) {}

  /** A new namespace `vakt-i<pid>-<role>` with its loopback up; `resolver` becomes its resolv.conf. */
  async namespace(role: string, resolver?: string): Promise<string> {
    const name = `${NETNS_PREFIX}${process.pid}-${role}`;
    await run('ip', ['netns', 'add', name]);
    this.cleanup.add(`delete namespace ${name}`, async () => {
      await killIn(name);
      await run('ip', ['netns', 'del', name]);
    });
    await run('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    if (resolver !== undefined) this.resolver(name, resolver);
    return name;
  }

  /** /etc/netns/<netns>/resolv.conf, which `ip netns exec` shows its processes as /etc/resolv.conf. */
  resolver(netns: string, nameserver: string): void {
    const dir = `/etc/netns/${netns}`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${nameserver}\noptions timeout:1 attempts:1\n`);
    this.cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  }

  /** A veth pair between `a` and `b` (undefined: the host) with a /30 of its own. */
  async link(a: string | undefined, b: string | undefined): Promise<Link> {
    const k = this.links++;
    if (k >= 63) throw new Error('more than 63 links in one test process');
    const base = `10.233.${this.octet}.${4 * k}`;
    const addrA = `10.233.${this.octet}.${4 * k + 1}`;
    const addrB = `10.233.${this.octet}.${4 * k + 2}`;
    const inUse = await run('ip', ['-4', '-o', 'addr', 'show', 'to', `${base}/30`]);
    if (inUse.trim() !== '') throw new Error(`${base}/30 is already assigned on this machine:\n${inUse}`);
    const devA = `vi${process.pid}${k}a`;
    const devB = `vi${process.pid}${k}b`;
    await run('ip', ['link', 'add', devA, 'type', 'veth', 'peer', 'name', devB]);
    // Deleting either end removes the pair; the host end is deleted here, a namespace end goes with its namespace.
    this.cleanup.add(`delete link ${devA}`, async () => {
      for (const [ns, dev] of [
        [a, devA],
        [b, devB],
      ] as const) {
        const r = ns ? await tryRun('ip', ['netns', 'exec', ns, 'ip', 'link', 'del', dev]) : await tryRun('ip', ['link', 'del', dev]);
        if (r.code === 0) return;
      }
    });
    for (const [ns, dev, addr] of [
      [a, devA, addrA],
      [b, devB, addrB],
    ] as const) {
      if (ns) await run('ip', ['link', 'set', dev, 'netns', ns]);
      await inNs(ns, 'ip', ['addr', 'add', `${addr}/30`, 'dev', dev]);
      await inNs(ns, 'ip', ['link', 'set', dev, 'up']);
    }
    return { a: { netns: a, dev: devA, addr: addrA }, b: { netns: b, dev: devB, addr: addrB } };
  }
}

/** Kills every process left in a namespace. */
async function killIn(netns: string): Promise<void> {
  const pids = await tryRun('ip', ['netns', 'pids', netns]);
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** Removes namespaces, their /etc/netns folders and host veth ends left by earlier test processes that are gone. */
export async function removeStaleIncidentNets(): Promise<void> {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  for (const line of (await run('ip', ['netns', 'list'])).split('\n')) {
    const name = line.split(/\s+/)[0] ?? '';
    const m = NETNS_RE.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    await killIn(name);
    await tryRun('ip', ['netns', 'del', name]);
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  }
  for (const line of (await run('ip', ['-o', 'link', 'show'])).split('\n')) {
    const m = /^\d+: (vi(\d+?)\d{1,2}[ab])[@:]/.exec(line);
    if (!m) continue;
    // The pid is ambiguous against the link number; remove only ends whose every reading is a dead process.
    const digits = m[1]!.slice(2, -1);
    const owners = [digits.slice(0, -1), digits.slice(0, -2)].filter((d) => d.length > 0).map(Number);
    if (owners.some((p) => p === process.pid || alive(p))) continue;
    await tryRun('ip', ['link', 'del', m[1]!]);
  }
}
