// The command line: vakt run | validate | probe | demo | rules. Each has --help.
import { parseArgs } from 'node:util';
import { SITE_NAME, splitHostPort } from '../config/fields.js';
import { ConfigLoadError, formatConfigError, loadConfigFile, parseConfig, type CheckConfig } from '../config/loader.js';
import { placeChecks, runsAt } from '../config/placement.js';
import { parseShard, shardFromEnv, type Shard } from '../config/shard.js';
import { formatDuration } from '../config/units.js';
import { KIND, KINDS } from '../probes/kinds.js';
import type { CONNECTION_VALUES } from '../probes/kit/kind.js';
import type { TargetResult } from '../probes/types.js';
import { AdHocError, adHocProbe, optionFlags } from './adhoc.js';
import { parseAssignment, RuleTimingError, shippedRules, type RuleTiming } from './alert-rules.js';
import { Agent } from './agent.js';
import { heapGrowth, nodeFlagsSetting } from './heap.js';
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
  probe KIND TARGET  probe once without a config file, like dig or curl (vakt probe --help)
  demo               run the agent on the built-in sandbox (simulated hospital services)
  rules              print the shipped Prometheus rules, with alert timings set (--for, --scale)

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
  get probe() {
    return `Usage: vakt probe -c FILE CHECK [--json] [--site NAME]
       vakt probe KIND TARGET... [--KEY VALUE]... [--opt KEY=VALUE]... [--options YAML]
                  [--secret NAME=env:VAR|NAME=file:PATH]... [--timeout DURATION] [--json]

Runs one check once, with its timeout, and prints every phase, the values (a certificate's
expiry also as a date), a DNS reply's records as dig shows them, and the verdict.

A check of a config file:
  -c, --config FILE   the config file (required); a check with enabled: false runs too
  --site NAME         the site this host is at (default: VAKT_SITE, else agent.labels.site):
                      the check must run there
  --json              print the result as JSON

Ad hoc, without a config file: KIND and TARGET as in a check (several TARGETs for dns), and
the kind's options as in its options block (docs/configuration.md), validated the same way:
  --KEY VALUE         an option: --bind-dn is bindDn, --tls.server-name is tls.serverName; a
                      key that takes true is a flag (--tls); a list key repeats (--queues a
                      --queues b) or takes [a, b]; "..." and [..] and {..} are read as YAML
  -o, --opt KEY=VALUE the same (--opt expect.answer.values=10.20.1.5)
  --options YAML      the whole options block ('{name: ehr.local, type: A}'); keys add to it
  --KEY env:VAR, --KEY-env VAR, --KEY-file PATH
                      an option that names a secret (password, clientSecret): its value from
                      an environment variable or a file, never from the command line
  --secret NAME=env:VAR, --secret NAME=file:PATH
                      a secret for templates (http: \${secret.NAME}) or for --KEY NAME
  --timeout DURATION  the run's deadline (default 5s)
  --json              print the result as JSON (http's own json option: --opt json=...)

Examples:
  vakt probe tcp ehr.region.example:443 --tls --samples 5
  vakt probe tcp 10.50.1.10:3389 --expect blocked --connect-timeout 2s
  vakt probe dns 10.40.0.53 --name ehr.region.local --type A
  vakt probe dns 10.40.0.53 10.40.0.54 --name region.local --type SOA --consistency
  vakt probe http https://ehr.region.example/health --expect.status 200 --timeout 10s
  vakt probe http https://ehr.region.example/api -o headers.Accept=application/json --json
  vakt probe oidc https://login.region.example/realms/clinical --client-id vakt-probe --client-secret-env VAKT_IDP_SECRET
  vakt probe ldap ldaps://dc1.region.example --bind-dn CN=vakt-probe,OU=Service,DC=region,DC=example --password-env VAKT_AD_PASSWORD
  vakt probe mllp hl7.region.example:6661 --receiving-application LAB
  vakt probe queue https://mq.region.example:15671 --source rabbitmq --queues lab.results --username vakt --password env:VAKT_MQ_PASSWORD
  vakt probe amqp mq.region.example:5672 --vhost integration --username vakt --password-env VAKT_MQ_PASSWORD
  vakt probe ntp dc1.region.example --samples 3 --max-offset 1m
  vakt probe dicom pacs.region.example:104 --calling-ae-title VAKT --called-ae-title PACS_ARCHIVE

Options of each kind:
${KINDS.map((k) => wrap(`  ${k.padEnd(6)} `, optionFlags(k))).join('\n')}

Exit status: 0 when the check succeeded (also when degraded), 1 when it failed, 2 on usage or
config errors.`;
  },
  rules: `Usage: vakt rules [--for ALERT=DURATION]... [--interval GROUP=DURATION]... [--scale F]

Prints the shipped Prometheus rules (deploy/prometheus/vakt-rules.yml) with their timing
parameters set, every expression, label and annotation as shipped: use it instead of editing a
copy, and render again after an upgrade (docs/operations.md, "Tuning the alert timings").
  --for ALERT=DURATION       how long ALERT's condition must hold before it fires (its for:),
                             e.g. --for VaktDNSResolverDown=1m; repeatable
  --interval GROUP=DURATION  how often GROUP is evaluated, for a group with its own interval
                             (vakt.sites: 1m); repeatable
  --scale F                  multiply every for: and group interval by F (0.1 for a drill or an
                             incident replay that runs in minutes); --for and --interval win
Exit status: 0, or 2 when an alert or group named is not in the rules.`,
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
      case 'rules':
        return cmdRules(rest);
      default:
        return usage(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }
}

class UsageError extends Error {}

function cmdRules(args: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { for: { type: 'string', multiple: true }, interval: { type: 'string', multiple: true }, scale: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`rules takes no arguments (got ${positionals.join(' ')})`);
  try {
    const timing: RuleTiming = {
      forAlert: new Map((values.for ?? []).map((a) => parseAssignment('--for', a))),
      groupInterval: new Map((values.interval ?? []).map((a) => parseAssignment('--interval', a))),
    };
    if (values.scale !== undefined) timing.scale = Number(values.scale);
    process.stdout.write(shippedRules(timing, ['vakt rules', ...args].join(' ')));
    return 0;
  } catch (err) {
    if (err instanceof RuleTimingError) throw new UsageError(err.message);
    throw err;
  }
}

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
  // The sandbox's scripted change announces its planned work through this agent's admin API.
  if (sandbox) sandbox.change.agentUrl = http.url;
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
  heap.apply();
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
        `                curl -X POST ${sandbox.controlUrl}/faults/reset            (all back to normal; list: curl ${sandbox.controlUrl}/faults)\n` +
        `scripted change: curl -X POST ${sandbox.controlUrl}/changes/login-update  (incident 2: a security update in planned work leaves the login slower; vakt compares before and after)\n\n`,
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
        const placed = placeChecks(cfg, { site: cfg.site.name });
        const here = cfg.checks.filter((c) => placed.checks.includes(c) || placed.disabled.includes(c));
        process.stdout.write(checkTable(here));
        const off = placed.disabled.length > 0 ? ` (and ${placed.disabled.length} disabled)` : '';
        process.stdout.write(`${placed.checks.length} of ${cfg.checks.length} checks run at site ${cfg.site.name}${off}\n`);
      }
      const missing = cfg.missingSecrets.length;
      const disabled = cfg.checks.filter((c) => c.enabled === false).length;
      const note =
        (disabled > 0 ? `; ${disabled} disabled` : '') +
        (missing > 0 ? `; ${missing} secret${missing === 1 ? '' : 's'} not present here, read when the agent starts` : '');
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

/** One line per check in aligned columns: name, kind, target, interval (or cron), group; a disabled check says so first. */
function checkTable(checks: readonly CheckConfig[]): string {
  const anyDisabled = checks.some((c) => c.enabled === false);
  const rows = checks.map((c) => [
    c.name,
    ...(anyDisabled ? [c.enabled === false ? 'disabled' : ''] : []),
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
  // With -c, a check of a config file; without, an ad-hoc probe: vakt probe KIND TARGET [options].
  if (!args.some((a) => /^-c/.test(a) || /^--config(=|$)/.test(a))) return cmdProbeAdHoc(args);
  const { values, positionals } = parse(args, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, site: { type: 'string' } });
  if (typeof values.config !== 'string' || positionals.length !== 1)
    throw new UsageError('probe needs -c FILE and one CHECK name (or KIND TARGET: vakt probe --help)');
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
  const check = config.checks.find((c) => c.name === name);
  if (!check) {
    process.stderr.write(`vakt: no check named "${name}" in ${values.config} (checks: ${config.checks.map((c) => c.name).join(', ')})\n`);
    return 2;
  }
  if (!runsAt(check, config.site?.name)) {
    process.stderr.write(`vakt: check "${name}" does not run at site ${config.site?.name ?? '(none)'} (sites: ${check.sites?.join(', ') ?? ''})\n`);
    return 2;
  }
  return probeOnce(check, config.checks, { json: values.json === true, adHoc: false });
}

/** vakt probe KIND TARGET [options]: a check built from the command line (agent/adhoc.ts), validated by the loader as a file is. */
async function cmdProbeAdHoc(args: string[]): Promise<number> {
  const [kind, ...words] = args;
  if (kind === undefined || kind.startsWith('-'))
    throw new UsageError('probe needs KIND first: vakt probe KIND TARGET [options], or vakt probe -c FILE CHECK (vakt probe --help)');
  let adHoc;
  try {
    adHoc = adHocProbe(kind, words);
  } catch (err) {
    if (err instanceof AdHocError) throw new UsageError(err.message);
    throw err;
  }
  let config;
  try {
    config = parseConfig(JSON.stringify(adHoc.config), '(command line)', process.env);
  } catch (err) {
    if (!(err instanceof ConfigLoadError)) throw err;
    for (const e of err.errors) process.stderr.write(`vakt: probe ${kind}: ${adHoc.flagOf(e.path)}: ${e.message}\n`);
    return 2;
  }
  return probeOnce(config.checks[0] as CheckConfig, config.checks, { json: adHoc.json, adHoc: true });
}

/** Runs `check` once, with its timeout, and prints every phase, value, record and the verdict (or JSON); the exit status. */
async function probeOnce(check: CheckConfig, all: readonly CheckConfig[], how: { json: boolean; adHoc: boolean }): Promise<number> {
  const redactor = new Redactor();
  redactor.setSecrets(all.flatMap((c) => Object.values(c.secrets)));
  const log = createLogger('warn', redactor, process.stderr);
  const disabled = check.enabled === false;
  if (disabled && how.json) process.stderr.write(`vakt: check "${check.name}" is disabled (enabled: false): run once here, the agent does not run it\n`);
  const ctrl = new AbortController();
  const onInt = () => ctrl.abort(new Error('interrupted'));
  process.once('SIGINT', onInt);
  const outcome = await new Runner(ctrl.signal, new Limiter(1), log).run(check);
  process.removeListener('SIGINT', onInt);
  if (!outcome) return 1;
  const r = outcome.result;
  if (how.json) {
    const head = how.adHoc ? {} : { check: check.name, ...(disabled ? { enabled: false } : {}) };
    process.stdout.write(
      `${redactor.scrub(JSON.stringify({ ...head, kind: check.kind, target: check.target, durationSeconds: outcome.duration, ...r }, null, 2))}\n`,
    );
    return r.ok ? 0 : 1;
  }
  const lines: string[] = [];
  lines.push(how.adHoc ? `probe     ${check.kind} -> ${check.target}` : `check     ${check.name} (${check.kind}) -> ${check.target}`);
  if (disabled) lines.push('note      disabled (enabled: false): the agent does not run it; run once here');
  const phases = KIND[check.kind].phases;
  const describe = (p: ProbePart, indent: string) => {
    for (const ph of phases) {
      const v = p.phases[ph];
      lines.push(`${indent}${ph.padEnd(11)} ${v === undefined ? '-' : `${(v * 1000).toFixed(3)} ms`}`);
    }
    for (const [k, v] of Object.entries(p.values ?? {})) if (v !== undefined) lines.push(`${indent}${k.padEnd(26)} ${valueText(k, v)}`);
    for (const [k, v] of Object.entries(p.info ?? {})) lines.push(`${indent}${k.padEnd(26)} ${String(v)}`);
    lines.push(...recordLines(p, indent));
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
  for (const it of r.items ?? []) lines.push(`item      ${it.name}: ${it.ok ? 'ok' : 'NOT AS EXPECTED'}${it.text !== undefined ? `, ${it.text}` : ''}`);
  if (r.queues) lines.push("          (one run: rates are the broker's own, if any; stalls and growth need the agent's runs over time)");
  lines.push(`${'total'.padEnd(11)} ${(outcome.duration * 1000).toFixed(3)} ms`);
  if (!r.ok && r.failure) lines.push(`result    FAILED: ${r.failure.reason} in ${r.failure.phase}: ${r.failure.message}`);
  else if (r.degraded) lines.push(`result    DEGRADED: ${r.degraded.reason}: ${r.degraded.message}`);
  else lines.push('result    OK');
  process.stdout.write(`${redactor.scrub(lines.join('\n'))}\n`);
  return r.ok ? 0 : 1;
}

/** What the output shows of a run, or of one target of it. */
type ProbePart = Pick<TargetResult, 'phases' | 'values' | 'info' | 'records'>;

/** A value as printed; a certificate's expiry (Unix seconds) also as a date and how far off it is. */
function valueText(name: string, v: number): string {
  const text = String(Number.isInteger(v) ? v : v.toFixed(6));
  if (name !== EXPIRY_VALUE) return text;
  const date = new Date(v * 1000)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  const days = (v * 1000 - Date.now()) / 86_400_000;
  const span = (d: number) => (d >= 2 ? `${Math.floor(d)} days` : `${Math.max(0, Math.floor(d * 24))} hours`);
  return `${text} (${date}, ${days >= 0 ? `expires in ${span(days)}` : `expired ${span(-days)} ago`})`;
}

/** Earliest expiry of the certificates the peer presented: every kind that speaks TLS reports it under this name. */
const EXPIRY_VALUE: keyof typeof CONNECTION_VALUES = 'ssl_earliest_cert_expiry';

/** A DNS reply's records as dig prints them (name, TTL, class, type, data in columns), and how many the result left out. */
function recordLines(p: ProbePart, indent: string): string[] {
  const records = p.records ?? [];
  if (records.length === 0) return [];
  const rows = records.map((r) => [`${r.section}`, r.name, r.ttl === undefined ? '-' : String(r.ttl), r.class ?? 'IN', r.type, r.data]);
  const widths = rows.reduce<number[]>((w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), [9]);
  const lines = rows.map((row) => `${indent}${row.map((cell, i) => (i < row.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell)).join(' ')}`);
  const v = p.values ?? {};
  const total = (v.dns_answer_rrs ?? 0) + (v.dns_authority_rrs ?? 0) + (v.dns_additional_rrs ?? 0);
  if (total > records.length) lines.push(`${indent}${''.padEnd(widths[0] ?? 0)} ... ${total - records.length} more record(s) not shown`);
  return lines;
}

/** Words after a lead, wrapped at 100 columns under it. */
function wrap(lead: string, words: readonly string[]): string {
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && lead.length + line.length + 1 + w.length > 100) {
      lines.push(line);
      line = '';
    }
    line += line === '' ? w : ` ${w}`;
  }
  lines.push(line);
  return lines.map((l, i) => `${i === 0 ? lead : ' '.repeat(lead.length)}${l}`).join('\n');
}
