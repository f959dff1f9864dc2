// A private ActiveMQ Classic broker with Jolokia for the system tests: ActiveMQJolokia.java (next
// to this file) run with the JDK's source launcher (no build step) on a classpath of Debian's jars
// under /usr/share/java, on free ports of 127.0.0.1, in a temporary directory of its own
// (`$TMPDIR/vakt-test-<pid>-activemq-*`, holding the Jolokia access policy and the broker's data).
// The test drives it over stdin: `send QUEUE N`, `consume QUEUE`, `stop-consume QUEUE`, `quit`.
// Nothing here skips: a missing JDK or jar is an error naming the Debian package (.ci/run installs
// them). The JVM exits when its stdin closes, so a killed test process leaves no broker behind;
// directories of earlier, killed test processes are removed before a new broker starts.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, requireTool, tryRun } from '../helpers.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(HERE, 'ActiveMQJolokia.java');
const POLICY = join(HERE, 'jolokia-access.xml');
const JAVA_DIR = '/usr/share/java';

/** The jars the harness needs, by their Debian name under /usr/share/java, and the package of each. */
const JARS: readonly (readonly [jar: string, pkg: string])[] = [
  ['activemq-broker', 'libactivemq-java'],
  ['activemq-client', 'libactivemq-java'],
  ['geronimo-jms_1.1_spec', 'libgeronimo-jms-1.1-spec-java'],
  ['geronimo-j2ee-management-1.1-spec', 'libgeronimo-j2ee-management-1.1-spec-java'],
  ['hawtbuf', 'libhawtbuf-java'],
  ['slf4j-api', 'libslf4j-java'],
  ['slf4j-simple', 'libslf4j-java'],
  ['jolokia-core', 'libjolokia-core-java'],
  ['json-simple', 'libjson-simple-java'],
  ['jetty9-server', 'libjetty9-java'],
  ['jetty9-http', 'libjetty9-java'],
  ['jetty9-io', 'libjetty9-java'],
  ['jetty9-util', 'libjetty9-java'],
  ['jetty9-servlet', 'libjetty9-java'],
  ['jetty9-security', 'libjetty9-java'],
  ['servlet-api', 'libservlet-api-java'],
];

/** The packages .ci/run installs for this harness (the jars' packages pull each other in). */
const APT_HINT = 'apt-get install --no-install-recommends default-jdk-headless libactivemq-java libjolokia-core-java libjetty9-java';

/**
 * The classpath: each jar as Debian's unversioned name (`jetty9-server.jar`), or else a versioned
 * one (`jetty9-server-9.4.57.v20241219.jar`). Fails naming every jar that is missing and its package.
 */
export function activemqClasspath(dir = JAVA_DIR): string {
  const files = existsSync(dir) ? readdirSync(dir) : [];
  const found: string[] = [];
  const missing: string[] = [];
  for (const [jar, pkg] of JARS) {
    const exact = `${jar}.jar`;
    const versioned = new RegExp(`^${jar.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d[^/]*\\.jar$`);
    const file = files.includes(exact)
      ? exact
      : files
          .filter((f) => versioned.test(f))
          .sort()
          .at(-1);
    if (file) found.push(join(dir, file));
    else missing.push(`${jar}.jar (${pkg})`);
  }
  if (missing.length > 0) throw new Error(`the ActiveMQ harness needs jars missing from ${dir}: ${missing.join(', ')} (${APT_HINT}; .ci/run installs them)`);
  return found.join(':');
}

/** Fails unless `java` is a JDK 11+ (the source launcher compiles with the jdk.compiler module). */
async function requireJdk(): Promise<string> {
  const version = (await requireTool('java', ['-version'], 'default-jdk-headless')).trim().split('\n')[0] ?? '';
  const modules = await tryRun('java', ['--list-modules']);
  if (modules.code !== 0 || !/^jdk\.compiler@/m.test(modules.stdout)) {
    throw new Error(
      `java (${version}) cannot run a source file: it is not a JDK 11 or later (no jdk.compiler module; apt-get install default-jdk-headless; .ci/run installs it)`,
    );
  }
  return version;
}

export interface ActiveMQ {
  /** The queue check's target: http://127.0.0.1:<httpPort> (Jolokia at /api/jolokia/). */
  url: string;
  httpPort: number;
  openwirePort: number;
  /** User admin's password (given to the JVM in its environment, not on the command line). */
  password: string;
  dir: string;
  /** From spawning the JVM until its READY line (ms), and the line (the JVM's own timings). */
  startMs: number;
  ready: string;
  java: string;
  /** Sends one command and resolves with its `ok ...` answer; rejects on `error ...`, exit or time out. */
  command(line: string, timeoutMs?: number): Promise<string>;
  /** The JVM's stderr (the broker's and Jetty's log) and stray stdout so far, for failure messages. */
  log(): string;
  running(): boolean;
  /** `quit` (graceful), SIGKILL after 10 s; removes the directory. Idempotent. */
  stop(): Promise<void>;
}

const DIR_PREFIX = `vakt-test-${process.pid}-activemq-`;
const DIR_RE = /^vakt-test-(\d+)-activemq-/;

/** JVMs this process started that still run: killed if it exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Removes directories left by earlier test processes that are gone (their JVMs exited with their stdin). */
function removeStaleDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = DIR_RE.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || existsSync(`/proc/${owner}`)) continue;
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** Starts the harness; fails (never skips) when the JDK or a jar is missing or READY does not come within `readyMs`. */
export async function startActiveMQ(readyMs = 60_000): Promise<ActiveMQ> {
  const java = await requireJdk();
  const classpath = activemqClasspath();
  removeStaleDirs();
  let lastError: Error | undefined;
  // A port found free may be taken before the JVM binds it; then try others.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(java, classpath, readyMs);
    } catch (err) {
      lastError = err as Error;
      if (!/BindException|Address already in use/.test(lastError.message)) throw lastError;
    }
  }
  throw lastError!;
}

async function startOnce(java: string, classpath: string, readyMs: number): Promise<ActiveMQ> {
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  copyFileSync(POLICY, join(dir, 'jolokia-access.xml'));
  const httpPort = await freePort();
  let openwirePort = await freePort();
  while (openwirePort === httpPort) openwirePort = await freePort();
  const password = randomBytes(12).toString('base64url');

  const t0 = performance.now();
  const child = spawn(
    'java',
    // Small heap, serial GC and the client compiler: a quick start on a 2-core machine.
    ['-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', classpath, SOURCE, dir, String(openwirePort), String(httpPort)],
    { cwd: dir, env: { ...process.env, VAKT_ACTIVEMQ_PASSWORD: password }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  live.add(child);
  let output = '';
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-200_000)));
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = `${code ?? signal}`;
      live.delete(child);
      resolve();
    });
  });
  child.once('error', (err) => {
    output += `\n${err.message}`;
  });
  child.stdin.on('error', () => undefined); // EPIPE once the JVM is gone: shows as the exit

  // stdout: the READY line, then one answer per command; anything else is kept for the log.
  const waiting: ((line: string) => void)[] = [];
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else output += `\n[stdout] ${line}`;
  });
  const nextLine = (what: string, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = waiting.indexOf(take);
        if (i >= 0) waiting.splice(i, 1);
        reject(new Error(`no answer to ${what} within ${timeoutMs} ms; log:\n${output.slice(-4000)}`));
      }, timeoutMs);
      const take = (line: string) => {
        clearTimeout(timer);
        resolve(line);
      };
      waiting.push(take);
      void exit.then(() => {
        clearTimeout(timer);
        reject(new Error(`the ActiveMQ harness exited (${exited}) before answering ${what}; log:\n${output.slice(-4000)}`));
      });
    });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (exited === undefined) {
        child.stdin.end('quit\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exit;
        clearTimeout(timer);
      }
      lines.close();
      rmSync(dir, { recursive: true, force: true });
    })());

  let queue = Promise.resolve();
  const command = (line: string, timeoutMs = 30_000): Promise<string> => {
    // One command at a time: answers come back in order.
    const answer = queue.then(async () => {
      if (exited !== undefined) throw new Error(`the ActiveMQ harness is not running (exited ${exited}); cannot ${line}`);
      const reply = nextLine(`"${line}"`, timeoutMs);
      child.stdin.write(`${line}\n`);
      const got = await reply;
      if (!got.startsWith('ok')) throw new Error(`"${line}": ${got}`);
      return got;
    });
    queue = answer.then(
      () => undefined,
      () => undefined,
    );
    return answer;
  };

  try {
    const ready = await nextLine('the start (READY)', readyMs);
    if (!ready.startsWith('READY')) throw new Error(`expected READY from the ActiveMQ harness, got: ${ready}; log:\n${output.slice(-4000)}`);
    const startMs = performance.now() - t0;
    return {
      url: `http://127.0.0.1:${httpPort}`,
      httpPort,
      openwirePort,
      password,
      dir,
      startMs,
      ready,
      java,
      command,
      log: () => output,
      running: () => exited === undefined,
      stop,
    };
  } catch (err) {
    child.kill('SIGKILL');
    await exit;
    lines.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
