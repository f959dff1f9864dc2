// The command line: vakt run | validate | probe | demo. Each has --help.
import { parseArgs } from 'node:util';
import { SITE_NAME, splitHostPort } from '../config/fields.js';
import { ConfigLoadError, formatConfigError, loadConfigFile, type CheckConfig } from '../config/loader.js';
import { placeChecks } from '../config/placement.js';
import { parseShard, shardFromEnv, type Shard } from '../config/shard.js';
import { formatDuration } from '../config/units.js';
import { PROBES } from '../probes/kinds.js';
import { Agent } from './agent.js';
import { HEAP_TUNE_AFTER_MS, heapGrowth, nodeFlagsSetting } from './heap.js';
import { createLogger } from './log.js';
import { defaultConfigFile } from './paths.js';
import { Redactor } from '../probes/kit/redact.js';
import { Limiter, Runner } from './runner.js';
import { startServer } from './server.js';
import { VERSION } from './version.js';

const HELP: Record<string, string> = {
  main: `vakt ${VERSION} — synthetic monitoring and outage detection for hospital IT

Usage: vakt <command> [options]

Commands:
  run -c FILE        run the agent with a config file (and the files it includes)
  validate FILE...   check config files (secrets need not be present); print every error; exit 1 if any;
                     with --site NAME, list the checks that run at that site
  probe -c FILE NAME run one check once and print every phase and the verdict
  demo               run the agent on the built-in sandbox (simulated hospital services)

Options:
  -h, --help         help for vakt or a command (vakt run --help)
  --version          print the version

Docs: README.md, docs/configuration.md, docs/metrics.md`,
  run: `Usage: vakt run -c FILE [--listen HOST:PORT] [--log-level LEVEL] [--web.config.file FILE]

Runs the agent: schedules every check in FILE and serves /metrics, /api/v1/checks,
/healthz, /readyz, POST /-/reload and the status page.

  -c, --config FILE     the config file (required)
  --listen HOST:PORT    overrides agent.listen (e.g. 127.0.0.1:9464, [::]:9464)
  --log-level LEVEL     trace|debug|info|warn|error|fatal (overrides agent.logLevel)
  --web.config.file F   TLS and basic auth in the exporter-toolkit format (overrides agent.web.config)
  --site NAME           the site this agent runs at: it runs the checks without sites: and those
                        whose sites: name it; also its site label (default: VAKT_SITE, else
                        agent.labels.site)
  --shard I/N           run shard I (from 0) of N of the site's checks, by rendezvous hashing of
                        their names (default: VAKT_SHARD=I/N, or VAKT_SHARDS=N with I from the
                        StatefulSet ordinal at the end of HOSTNAME)
  --replica NAME        the replica label of an HA pair (two agents, same shard; default VAKT_REPLICA)

Signals: SIGHUP reloads the config (like POST /-/reload); SIGTERM/SIGINT stop cleanly.`,
  validate: `Usage: vakt validate [--require-secrets] [--site NAME] FILE...

Checks config files and the files they include: YAML syntax, schema, defaults, check names,
dependsOn references and cycles, sites, secret references. Prints each error as
FILE:LINE:COLUMN: KEY.PATH: expected ..., found ...
A secret whose value is not present here (its environment variable unset, its file missing) is
listed as such, not as an error: production config validates in CI without production secrets.
Without a site, a check's dependsOn must run wherever the check runs, at every site the config
names.
  --require-secrets   a secret that cannot be read is an error (on the host the agent runs on)
  --site NAME         validate as the agent at site NAME runs the config (default: VAKT_SITE), and
                      list the checks that run there: name, kind, target, interval, group
Exit status: 0 when every file is valid, 1 otherwise.`,
  probe: `Usage: vakt probe -c FILE CHECK [--json] [--site NAME]

Runs one check once, with its timeout, and prints every phase, the values and the verdict.
  -c, --config FILE   the config file (required)
  --json              print the result as JSON
  --site NAME         the site this host is at (default: VAKT_SITE, else agent.labels.site):
                      the check must run there
Exit status: 0 when the check succeeded (also when degraded), 1 when it failed, 2 on usage errors.`,
  demo: `Usage: vakt demo [--listen HOST:PORT] [--log-level LEVEL] [--site NAME]

Starts the sandbox (simulated hospital services on 127.0.0.1 with fault switches) and the
agent monitoring it with config/default.yaml. The sandbox's control API on 127.0.0.1:9465
flips faults, e.g.:  curl -X POST 127.0.0.1:9465/faults/fw-a/drop
See README.md for the list of faults.`,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined;
    process.stdout.write(`${HELP[topic ?? 'main'] ?? HELP.main}\n`);
    return 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    const text = HELP[command];
    if (!text) return usage(`unknown command "${command}"`);
    process.stdout.write(`${text}\n`);
    return 0;
  }
  try {
    switch (command) {
      case 'run':
        return await cmdRun(rest, false);
      case 'demo':
        return await cmdRun(rest, true);
      case 'validate':
        return await cmdValidate(rest);
      case 'probe':
        return await cmdProbe(rest);
      default:
        return usage(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }
}

class UsageError extends Error {}

function usage(message: string): number {
  process.stderr.write(`vakt: ${message}\nRun "vakt --help" for usage.\n`);
  return 2;
}

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function cmdRun(args: string[], demo: boolean): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string', short: 'c' },
    listen: { type: 'string' },
    'log-level': { type: 'string' },
    'web.config.file': { type: 'string' },
    site: { type: 'string' },
    shard: { type: 'string' },
    replica: { type: 'string' },
  });
  const webConfigFile = typeof values['web.config.file'] === 'string' ? values['web.config.file'] : undefined;
  const site = siteOption(values.site);
  const shard = shardOption(values.shard);
  const replica = typeof values.replica === 'string' ? values.replica : process.env.VAKT_REPLICA || undefined;
  if (replica !== undefined && !REPLICA_NAME.test(replica))
    throw new UsageError(`--replica (or VAKT_REPLICA) expects a short name such as a or b, got ${JSON.stringify(replica)}`);
  const configFile = typeof values.config === 'string' ? values.config : demo ? defaultConfigFile : undefined;
  if (!configFile) throw new UsageError('run needs -c FILE');
  let listen: { host: string; port: number } | undefined;
  if (typeof values.listen === 'string') {
    listen = splitHostPort(values.listen.startsWith(':') ? `0.0.0.0${values.listen}` : values.listen, true);
    if (!listen) throw new UsageError(`--listen expects HOST:PORT, got "${values.listen}"`);
  }
  const logLevel = typeof values['log-level'] === 'string' ? values['log-level'] : undefined;
  if (logLevel && !['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(logLevel)) throw new UsageError(`unknown log level "${logLevel}"`);

  let heap: ReturnType<typeof heapGrowth>;
  try {
    heap = heapGrowth();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // The sandbox (its servers and their libraries) is loaded for `vakt demo` only: `vakt run`
  // never reads a line of it.
  const sandbox = demo ? await (await import('../sandbox/index.js')).startSandbox() : undefined;
  let agent: Agent;
  try {
    agent = await Agent.start({
      configFile,
      ...(listen ? { listen } : {}),
      ...(logLevel ? { logLevel } : {}),
      ...(webConfigFile ? { webConfigFile } : {}),
      ...(site ? { site } : {}),
      ...(shard ? { shard } : {}),
      ...(replica ? { replica } : {}),
    });
  } catch (err) {
    await sandbox?.stop();
    if (err instanceof ConfigLoadError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  let http;
  try {
    http = await startServer(agent, agent.listen.host, agent.listen.port);
  } catch (err) {
    agent.log.fatal({ err }, `cannot listen on ${agent.listen.host}:${agent.listen.port}`);
    await agent.stop();
    await sandbox?.stop();
    return 1;
  }
  // The signal handlers go on before the agent says it is listening: a supervisor (or a test)
  // that sends SIGHUP as soon as it reads that line must not find the default action (exit).
  const stopped = new Promise<number>((resolve) => {
    // Once stopped, the process ends: a socket some library still holds open (a connection
    // attempt to a host that drops packets) must not keep it alive for its own timeout. The
    // timer is unref'd, so it only fires when something does.
    const exitSoon = () => {
      resolve(0);
      setTimeout(() => {
        agent.log.warn('exiting with handles still open');
        process.exit(process.exitCode ?? 0);
      }, 500).unref();
    };
    const onHup = () => void agent.reload();
    const shutdown = (signal: string) => {
      process.removeListener('SIGHUP', onHup);
      agent.log.info({ signal }, 'stopping');
      // Hard deadline: exit 0 within 5 s even if something refuses to close.
      const force = setTimeout(() => {
        agent.log.warn({ signal }, 'shutdown forced: the agent did not stop within 4.5 s');
        exitSoon();
      }, 4500);
      force.unref();
      void (async () => {
        await agent.stop(2500);
        await http.close();
        await sandbox?.stop();
        clearTimeout(force);
        exitSoon();
      })();
    };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  setTimeout(() => heap.apply(), HEAP_TUNE_AFTER_MS).unref();
  agent.log.info(
    {
      url: http.url,
      ...(http.statusUrl ? { statusUrl: http.statusUrl } : {}),
      heap: heap.setting,
      nodeFlags: nodeFlagsSetting(),
      ...(sandbox ? { sandboxControl: sandbox.controlUrl } : {}),
    },
    'vakt listening',
  );
  if (sandbox) {
    process.stderr.write(
      `\nvakt demo: status page ${http.url}/  metrics ${http.url}/metrics\n` +
        `sandbox faults: curl -X POST ${sandbox.controlUrl}/faults/fw-a/overload   (firewall path A overloaded)\n` +
        `                curl -X POST ${sandbox.controlUrl}/faults/ns1/timeout      (internal DNS ns1 stops answering)\n` +
        `                curl -X POST ${sandbox.controlUrl}/faults/login/slow       (Cosmic login takes ${sandbox.loginFaults.slowMs / 1000} s; also idp/invalid_client)\n` +
        `                curl -X POST ${sandbox.controlUrl}/faults/ldap/locked      (the directory refuses the probe account: account locked; also ldap/slow)\n` +
        `                curl -X POST ${sandbox.controlUrl}/faults/mllp/stall       (the lab orders interface stops acknowledging HL7; also mllp/error)\n` +
        `                curl -X POST ${sandbox.controlUrl}/faults/amqp/blocked     (the integration broker blocks publishers: memory alarm; also amqp/stall)\n` +
        `                curl -X POST ${sandbox.controlUrl}/faults/reset            (all back to normal; list: curl ${sandbox.controlUrl}/faults)\n\n`,
    );
  }

  return stopped;
}

async function cmdValidate(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { 'require-secrets': { type: 'boolean' }, site: { type: 'string' } });
  if (positionals.length === 0) throw new UsageError('validate needs at least one FILE');
  const site = siteOption(values.site);
  let failed = 0;
  for (const file of positionals) {
    try {
      const cfg = await loadConfigFile(file, process.env, {
        secrets: values['require-secrets'] === true ? 'require' : 'report',
        everySite: true,
        ...(site ? { site } : {}),
      });
      for (const e of cfg.missingSecrets) process.stdout.write(`${formatConfigError({ ...e, message: `not present here (${e.message})` })}\n`);
      if (cfg.site && cfg.site.from !== 'agent.labels.site') {
        const placed = placeChecks(cfg, { site: cfg.site.name }).checks;
        process.stdout.write(checkTable(placed));
        process.stdout.write(`${placed.length} of ${cfg.checks.length} checks run at site ${cfg.site.name}\n`);
      }
      const missing = cfg.missingSecrets.length;
      const note = missing > 0 ? `; ${missing} secret${missing === 1 ? '' : 's'} not present here, read when the agent starts` : '';
      const files = cfg.files.length > 1 ? ` in ${cfg.files.length} files` : '';
      process.stdout.write(`${file}: ok (${cfg.checks.length} checks${files}${note})\n`);
    } catch (err) {
      if (!(err instanceof ConfigLoadError)) throw err;
      failed++;
      for (const e of err.errors) process.stdout.write(`${formatConfigError(e)}\n`);
      process.stdout.write(`${file}: ${err.errors.length} error${err.errors.length === 1 ? '' : 's'}\n`);
    }
  }
  return failed > 0 ? 1 : 0;
}

/** One line per check in aligned columns: name, kind, target, interval (or cron), group. */
function checkTable(checks: readonly CheckConfig[]): string {
  const rows = checks.map((c) => [
    c.name,
    c.kind,
    c.target,
    c.schedule.type === 'interval'
      ? `every ${formatDuration(c.schedule.everyMs)}`
      : `cron ${c.schedule.expression}${c.schedule.timezone !== undefined ? ` (${c.schedule.timezone})` : ''}`,
    c.group,
  ]);
  const widths = rows.reduce<number[]>((w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), []);
  return rows.map((row) => `${row.map((cell, i) => (i < row.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  ')}\n`).join('');
}

/** A replica's name (the `replica` label of an HA pair). */
const REPLICA_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

/** The shard from --shard i/n, else from VAKT_SHARD or VAKT_SHARDS and the pod's ordinal; undefined: not sharded. */
function shardOption(value: string | boolean | undefined): Shard | undefined {
  const s = typeof value === 'string' ? parseShard(value) : shardFromEnv(process.env);
  if (s !== undefined && 'error' in s) throw new UsageError(typeof value === 'string' ? `--shard: ${s.error}` : s.error);
  return s;
}

/** The value of --site, which must be a site name. */
function siteOption(value: string | boolean | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (!SITE_NAME.test(value)) throw new UsageError(`--site expects a site name (letters, digits, "-", "_" and "."; at most 63), got ${JSON.stringify(value)}`);
  return value;
}

async function cmdProbe(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, site: { type: 'string' } });
  if (typeof values.config !== 'string' || positionals.length !== 1) throw new UsageError('probe needs -c FILE and one CHECK name');
  const name = positionals[0] as string;
  const site = siteOption(values.site);
  let config;
  try {
    config = await loadConfigFile(values.config, process.env, site ? { site } : {});
  } catch (err) {
    if (!(err instanceof ConfigLoadError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  const placed = placeChecks(config, { site: config.site?.name });
  const check = placed.checks.find((c) => c.name === name);
  if (!check) {
    const elsewhere = placed.elsewhere.find((c) => c.name === name);
    process.stderr.write(
      elsewhere
        ? `vakt: check "${name}" does not run at site ${config.site?.name ?? '(none)'} (sites: ${elsewhere.sites?.join(', ') ?? ''})\n`
        : `vakt: no check named "${name}" in ${values.config} (checks: ${config.checks.map((c) => c.name).join(', ')})\n`,
    );
    return 2;
  }
  const redactor = new Redactor();
  redactor.setSecrets(placed.checks.flatMap((c) => Object.values(c.secrets)));
  const log = createLogger('warn', redactor, process.stderr);
  const ctrl = new AbortController();
  const onInt = () => ctrl.abort(new Error('interrupted'));
  process.once('SIGINT', onInt);
  const outcome = await new Runner(ctrl.signal, new Limiter(1), log).run(check);
  process.removeListener('SIGINT', onInt);
  if (!outcome) return 1;
  const r = outcome.result;
  if (values.json) {
    process.stdout.write(
      `${redactor.scrub(JSON.stringify({ check: check.name, kind: check.kind, target: check.target, durationSeconds: outcome.duration, ...r }, null, 2))}\n`,
    );
    return r.ok ? 0 : 1;
  }
  const lines: string[] = [];
  lines.push(`check     ${check.name} (${check.kind}) -> ${check.target}`);
  const phases = PROBES[check.kind].phases;
  const describe = (p: { phases: Record<string, number>; values?: Partial<Record<string, number>>; info?: object }, indent: string) => {
    for (const ph of phases) {
      const v = p.phases[ph];
      lines.push(`${indent}${ph.padEnd(11)} ${v === undefined ? '-' : `${(v * 1000).toFixed(3)} ms`}`);
    }
    for (const [k, v] of Object.entries(p.values ?? {})) if (v !== undefined) lines.push(`${indent}${k.padEnd(26)} ${Number.isInteger(v) ? v : v.toFixed(6)}`);
    for (const [k, v] of Object.entries(p.info ?? {})) lines.push(`${indent}${k.padEnd(26)} ${String(v)}`);
  };
  if (r.steps) {
    for (const st of r.steps) {
      lines.push(
        `step      ${st.name}: ${st.ok ? (st.slow ? 'SLOW' : 'ok') : `FAILED: ${st.failure?.reason} in ${st.failure?.phase}: ${st.failure?.message}`} (${(st.durationSeconds * 1000).toFixed(3)} ms${st.status !== undefined ? `, status ${st.status}` : ''}${st.redirects ? `, ${st.redirects} redirect(s)` : ''})`,
      );
      for (const ph of phases) {
        const v = st.phases[ph];
        if (v !== undefined) lines.push(`  ${ph.padEnd(11)} ${(v * 1000).toFixed(3)} ms`);
      }
    }
  }
  if (r.targets) {
    for (const t of r.targets) {
      lines.push(`target    ${t.target}: ${t.ok ? 'ok' : `FAILED: ${t.failure?.reason} in ${t.failure?.phase}: ${t.failure?.message}`}`);
      describe(t, '  ');
    }
  } else describe(r, '');
  for (const q of r.queues ?? []) {
    const parts = [`depth ${q.depth}`];
    if (q.ready !== undefined || q.unacked !== undefined) parts[0] += ` (ready ${q.ready ?? '-'}, unacked ${q.unacked ?? '-'})`;
    if (q.consumers !== undefined) parts.push(`consumers ${q.consumers}`);
    if (q.oldestAgeSeconds !== undefined) parts.push(`oldest ${q.oldestAgeSeconds.toFixed(1)} s`);
    if (q.arrivalRate !== undefined) parts.push(`arriving ${q.arrivalRate.toFixed(2)}/s`);
    if (q.drainRate !== undefined) parts.push(`draining ${q.drainRate.toFixed(2)}/s`);
    if (q.deliverRate !== undefined) parts.push(`delivering ${q.deliverRate.toFixed(2)}/s`);
    if (q.state !== undefined) parts.push(`state ${q.state}`);
    if (q.errors !== undefined) parts.push(`errors ${q.errors}`);
    lines.push(`queue     ${q.queue}: ${parts.join(', ')}`);
  }
  if (r.queues) lines.push("          (one run: rates are the broker's own, if any; stalls and growth need the agent's runs over time)");
  lines.push(`${'total'.padEnd(11)} ${(outcome.duration * 1000).toFixed(3)} ms`);
  if (!r.ok && r.failure) lines.push(`result    FAILED: ${r.failure.reason} in ${r.failure.phase}: ${r.failure.message}`);
  else if (r.degraded) lines.push(`result    DEGRADED: ${r.degraded.reason}: ${r.degraded.message}`);
  else lines.push('result    OK');
  process.stdout.write(`${redactor.scrub(lines.join('\n'))}\n`);
  return r.ok ? 0 : 1;
}
