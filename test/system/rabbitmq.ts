// A private RabbitMQ broker for the system tests: Debian's rabbitmq-server started by the test
// itself (not the system service), as root, in a temporary directory of its own, with the
// management plugin enabled offline, listening on free ports of 127.0.0.1 only. Its Erlang node
// has its own name (`vakt-test-<pid>-<random>@localhost`), its own cookie (HOME is the directory)
// and its own epmd (ERL_EPMD_PORT), so it neither sees nor disturbs a broker already on the
// machine. Optional TLS listener (amqps) with a certificate of the test's own CA. Optionally inside
// a network namespace (`netns`), listening on every address of that namespace.
// Users: `admin` (administrator: the management API calls of the tests), `vakt` (a plain user with
// full permissions on "/", as a canary account would have) and `monitoring` (tag monitoring, no
// permissions on any virtual host).
// Leftovers of an earlier, killed test run (a broker, its epmd, the directory) are removed first.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, watchDaemon } from './helpers.js';

/** The broker's own scripts (Debian's /usr/sbin wrappers switch to the rabbitmq user). */
const RABBIT_BIN = '/usr/lib/rabbitmq/bin';

export interface RabbitUser {
  username: string;
  password: string;
}

export interface Rabbit {
  /** The Erlang node, e.g. vakt-test-4242-1a2b3c@localhost. */
  node: string;
  amqpPort: number;
  /** The amqps (TLS) port when started with `tls`. */
  amqpsPort?: number;
  mgmtPort: number;
  /** The address the test reaches its AMQP and management listeners at: 127.0.0.1, or `netns.address`. */
  host: string;
  dir: string;
  admin: RabbitUser;
  vakt: RabbitUser;
  monitoring: RabbitUser;
  /** A management API call as admin, path below /api (e.g. `/queues/%2F/canary`); JSON in and out. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  /** rabbitmqctl against this node. */
  ctl(args: readonly string[]): Promise<string>;
  /** The broker's output and log file so far, for failure messages. */
  log(): string;
  running(): boolean;
  /** Stops the broker (SIGTERM, SIGKILL after 3 s), its epmd, and removes the directory. Idempotent. */
  stop(): Promise<void>;
}

export interface RabbitOptions {
  /** Also listen for amqps with this certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /**
   * Run the broker (and rabbitmqctl, rabbitmq-plugins) inside this network namespace, its AMQP and
   * management listeners on every address of it; `address` is the one the test process reaches
   * (the management API calls). epmd and the Erlang distribution stay on the namespace's loopback.
   */
  netns?: { name: string; address: string };
}

const DIR_PREFIX = `vakt-test-${process.pid}-rabbit-`;
const DIR_RE = /^vakt-test-(\d+)-rabbit-/;

/** Brokers this process started and that still run: killed if it exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
});

/**
 * Signals the broker's process group: the rabbitmq-server script runs the Erlang VM as its child
 * (forwarding SIGTERM to it as a graceful stop), so a SIGKILL of the script alone would orphan it.
 */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Starts a broker; fails (never skips) when rabbitmq-server is not installed or does not come up within 60 s. */
export async function startRabbit(options: RabbitOptions = {}): Promise<Rabbit> {
  if (!existsSync(join(RABBIT_BIN, 'rabbitmq-server'))) {
    throw new Error(`${RABBIT_BIN}/rabbitmq-server is not installed (apt-get install rabbitmq-server; .ci/run installs it)`);
  }
  await removeStaleRabbit();
  let lastError: Error | undefined;
  // A port found free may be taken before the broker binds it; then try others.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
    try {
      return await startIn(dir, options);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      lastError = err as Error;
      if (!/eaddrinuse|address already in use/i.test(lastError.message)) throw lastError;
    }
  }
  throw lastError!;
}

/** Distinct free ports. */
async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  return ports;
}

async function startIn(dir: string, options: RabbitOptions): Promise<Rabbit> {
  const [amqpPort, mgmtPort, distPort, epmdPort, ctlPort, amqpsPort] = (await freePorts(6)) as [number, number, number, number, number, number];
  const node = `vakt-test-${process.pid}-${randomBytes(3).toString('hex')}@localhost`;
  const admin = { username: 'admin', password: `admin-${randomBytes(6).toString('hex')}` };
  const vakt = { username: 'vakt', password: `vakt-${randomBytes(6).toString('hex')}` };
  const monitoring = { username: 'monitoring', password: `mon-${randomBytes(6).toString('hex')}` };

  writeFileSync(join(dir, '.erlang.cookie'), randomBytes(16).toString('hex'));
  chmodSync(join(dir, '.erlang.cookie'), 0o400);
  const host = options.netns?.address ?? '127.0.0.1';
  // In a namespace of the test's own, every address of it: its only interfaces are the test's.
  const bind = options.netns ? '0.0.0.0' : '127.0.0.1';
  const conf = [
    `listeners.tcp.1 = ${bind}:${amqpPort}`,
    `management.tcp.ip = ${bind}`,
    `management.tcp.port = ${mgmtPort}`,
    `default_user = ${admin.username}`,
    `default_pass = ${admin.password}`,
    'default_user_tags.administrator = true',
    // A CI machine's disk may be nearly full: the default 50 MB limit would block publishers.
    'disk_free_limit.absolute = 1MB',
    // Queue statistics (message counts in the management API) every second instead of every 5.
    'collect_statistics_interval = 1000',
    'log.console = false',
    'log.file.level = info',
  ];
  if (options.tls) {
    conf.push(
      `listeners.ssl.1 = ${bind}:${amqpsPort}`,
      `ssl_options.cacertfile = ${options.tls.caFile}`,
      `ssl_options.certfile = ${options.tls.certFile}`,
      `ssl_options.keyfile = ${options.tls.keyFile}`,
      'ssl_options.verify = verify_none',
      'ssl_options.fail_if_no_peer_cert = false',
    );
  }
  writeFileSync(join(dir, 'rabbitmq.conf'), `${conf.join('\n')}\n`);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: node,
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    // Not /etc/rabbitmq: no rabbitmq-env.conf, no advanced.config of the machine's own broker.
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    // The CLI tools are Erlang nodes too; they pick a port from this range.
    RABBITMQ_CTL_DIST_PORT_MIN: String(ctlPort),
    RABBITMQ_CTL_DIST_PORT_MAX: String(Math.min(65535, ctlPort + 10)),
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };

  // In the namespace when given: `ip netns exec` runs the command in the same process (setns, exec).
  const inNs = (cmd: string, args: readonly string[]): [string, string[]] =>
    options.netns ? ['ip', ['netns', 'exec', options.netns.name, cmd, ...args]] : [cmd, [...args]];
  await runWithEnv(...inNs(join(RABBIT_BIN, 'rabbitmq-plugins'), ['--offline', 'enable', 'rabbitmq_management']), env).catch((err: Error) => {
    throw new Error(`enabling the management plugin offline failed: ${err.message}`);
  });

  // Its own process group (detached), so stop() reaches the VM behind the script.
  const child = spawn(...inNs(join(RABBIT_BIN, 'rabbitmq-server'), []), { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const { output, exited, exit, spawnError } = watchDaemon(child, live);

  const log = () => {
    const file = join(dir, 'log', `${node}.log`);
    return `${output()}${existsSync(file) ? readFileSync(file, 'utf8') : ''}`.trim();
  };
  const base = `http://${host}:${mgmtPort}/api`;
  const auth = `Basic ${Buffer.from(`${admin.username}:${admin.password}`).toString('base64')}`;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (!exited()) {
        // A graceful stop takes RabbitMQ several seconds; the broker is thrown away, so not long.
        killGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
        await exit;
        clearTimeout(timer);
        // The script exits once the VM has; anything left in the group goes now.
        killGroup(child, 'SIGKILL');
      }
      // Its epmd (a daemon, outside the process group) and anything else left with HOME there.
      await killProcessesOf(dir);
      rmSync(dir, { recursive: true, force: true });
    })());

  const rabbit: Rabbit = {
    node,
    amqpPort,
    ...(options.tls ? { amqpsPort } : {}),
    mgmtPort,
    host,
    dir,
    admin,
    vakt,
    monitoring,
    api,
    // The CLI needs the node's environment (cookie, epmd port).
    ctl: (args) => runWithEnv(...inNs(join(RABBIT_BIN, 'rabbitmqctl'), ['-n', node, ...args]), env),
    log,
    running: () => !exited(),
    stop,
  };

  try {
    const deadline = performance.now() + 60_000;
    for (;;) {
      await Promise.race([spawnError, new Promise((r) => setTimeout(r, 250))]);
      const gone = exited();
      if (gone) throw new Error(`rabbitmq-server exited (${gone.code ?? gone.signal}) before its management API answered: ${log().slice(-4000)}`);
      const up = await api('GET', '/overview').catch(() => undefined);
      if (up?.status === 200) break;
      if (performance.now() > deadline)
        throw new Error(`rabbitmq-server (node ${node}) did not answer on the management port ${mgmtPort} within 60 s: ${log().slice(-4000)}`);
    }
    const put = async (path: string, body: unknown) => {
      const r = await api('PUT', path, body);
      if (r.status !== 201 && r.status !== 204) throw new Error(`PUT /api${path} answered ${r.status}: ${JSON.stringify(r.json)}`);
    };
    await put(`/users/${vakt.username}`, { password: vakt.password, tags: '' });
    await put(`/permissions/%2F/${vakt.username}`, { configure: '.*', write: '.*', read: '.*' });
    await put(`/users/${monitoring.username}`, { password: monitoring.password, tags: 'monitoring' });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return rabbit;
}

function runWithEnv(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim() || out.trim()}`));
    });
  });
}

function processAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/**
 * Kills (SIGKILL) every process whose HOME is `dir`: a test broker's VM, its helpers and the epmd
 * it started, which daemonizes and so outlives the node. Returns how many were killed.
 */
async function killProcessesOf(dir: string): Promise<number> {
  let killed = 0;
  for (const pid of readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)) {
    if (pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`HOME=${dir}`)) {
        process.kill(pid, 'SIGKILL');
        killed++;
      }
    } catch {
      // gone in the meantime, or not ours to read
    }
  }
  // Let the kernel finish them before the caller removes the directory.
  if (killed > 0) await new Promise((r) => setTimeout(r, 100));
  return killed;
}

/**
 * Kills brokers (and their epmd) left by an earlier test process that is gone, and removes their
 * directories. Only a process whose HOME is such a directory is killed.
 */
export async function removeStaleRabbit(): Promise<number> {
  let killed = 0;
  for (const name of readdirSync(tmpdir())) {
    const m = DIR_RE.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || processAlive(owner)) continue;
    const dir = join(tmpdir(), name);
    killed += await killProcessesOf(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  return killed;
}
