// Shared machinery of the benchmark parts: peers in their own processes, blackbox_exporter,
// Prometheus, the agent as a child process (`vakt run`, compiled like the shipped build), an
// open-loop load generator for blackbox_exporter's /probe, and /proc readings.
// Everything here talks to 127.0.0.1 only (the accuracy part adds a namespace of its own).
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { NODE_FLAGS } from '../agent/heap.js';
import { freePort } from '../test/system/helpers.js';

export { freePort };

/**
 * The node flags the agent child starts with: the shipped entry points' (agent/heap.ts
 * NODE_FLAGS) unless `BENCH_AGENT_NODE_FLAGS` gives others ('' for none).
 */
export const AGENT_NODE_FLAGS: readonly string[] =
  process.env.BENCH_AGENT_NODE_FLAGS === undefined ? NODE_FLAGS : process.env.BENCH_AGENT_NODE_FLAGS.split(/\s+/).filter((f) => f !== '');

/** BENCH_SMOKE=1: tiny sizes and a few seconds per part; checks that the harness produces numbers. */
export const SMOKE = process.env.BENCH_SMOKE === '1';
/**
 * `BENCH_PROBE_THREADS=0,1,2`: the vakt rows (accuracy, cpu) once per `agent.probeThreads` value;
 * scale takes the first. Unset: the agent's default only (`[undefined]`).
 */
export const PROBE_THREADS: (number | undefined)[] = (() => {
  const vs = (process.env.BENCH_PROBE_THREADS ?? '')
    .split(',')
    .filter((v) => v.trim() !== '')
    .map(Number);
  for (const v of vs) if (!Number.isInteger(v) || v < 0 || v > 64) throw new Error(`BENCH_PROBE_THREADS: ${v} is not a whole number from 0 to 64`);
  return vs.length > 0 ? vs : [undefined];
})();
/** The `agent:` line that sets probeThreads (empty: the default). */
export const threadsYaml = (threads: number | undefined): string => (threads === undefined ? '' : `agent: { probeThreads: ${threads} }\n`);
/** A row label's suffix for a probeThreads value (empty: the default). */
export const threadsTag = (threads: number | undefined): string => (threads === undefined ? '' : ` t${threads}`);
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** This run's scratch directory (configs, logs, Prometheus' storage); removed at exit. */
export const dir = mkdtempSync(join(tmpdir(), 'vakt-bench-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Children this process started: killed if it exits without stopping them. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

export function track<C extends ChildProcess>(child: C): C {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** What a part hands back: lines to print, named figures (the smoke checks these exist), or why it was skipped. */
export interface PartResult {
  lines: string[];
  figures: Record<string, number>;
  skipped?: string;
}

export class Report implements PartResult {
  lines: string[] = [];
  figures: Record<string, number> = {};
  skipped?: string;

  line(...l: string[]): void {
    for (const s of l) {
      this.lines.push(s);
      console.log(s); // as it goes: long parts show progress
    }
  }

  fig(name: string, value: number): number {
    this.figures[name] = value;
    return value;
  }

  skip(why: string): this {
    this.skipped = why;
    this.line(`skipped: ${why}`);
    return this;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The machine's load as `uptime` prints it. */
export function uptime(): string {
  const r = spawnSync('uptime', []);
  return r.status === 0 ? r.stdout.toString().trim() : `load average: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(', ')}`;
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

export function fmtMs(s: number, digits = 3): string {
  return `${(s * 1000).toFixed(digits)} ms`;
}

export function which(cmd: string): boolean {
  return spawnSync('which', [cmd]).status === 0;
}

/** utime + stime of a process (all its threads), in seconds (USER_HZ = 100). */
export function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Resident set size of a process in MiB (VmRSS). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Least-squares slope of y over x. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exit;
  clearTimeout(timer);
}

/** Starts `node -e script ...args` and resolves with the first line it prints (a port). */
async function nodeChild(script: string, args: string[] = []): Promise<{ line: string; child: ChildProcess }> {
  const child = track(spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`peer exited (${code}) before it listened`)));
    child.stdout?.once('data', (d: Buffer) => resolve(d.toString().trim()));
  });
  return { line, child };
}

export interface Peer {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A TCP listener in its own process that accepts and closes each connection. */
export async function tcpListener(): Promise<Peer> {
  const { line, child } = await nodeChild(
    `const s=require('net').createServer(c=>{c.on('error',()=>{});c.end()});s.maxConnections=100000;s.listen({port:0,host:'127.0.0.1',backlog:4096},()=>console.log(s.address().port))`,
  );
  return { port: Number(line), pid: child.pid ?? -1, stop: () => stopChild(child) };
}

/** The HTTP peer's program: `node -e HTTP_PEER ADDRESS`, answers every request 200 "ok" (keep-alive), prints its port. */
export const HTTP_PEER = `const s=require('http').createServer((q,r)=>{q.resume();r.writeHead(200,{'content-type':'text/plain','content-length':'3'});r.end('ok\\n')});s.keepAliveTimeout=5000;s.listen({port:0,host:process.argv[1],backlog:4096},()=>console.log(s.address().port))`;

/** A small keep-alive HTTP server in its own process on 127.0.0.1. */
export async function httpPeer(): Promise<Peer> {
  const { line, child } = await nodeChild(HTTP_PEER, ['127.0.0.1']);
  return { port: Number(line), pid: child.pid ?? -1, stop: () => stopChild(child) };
}

// ---------------------------------------------------------------------------------------------
// blackbox_exporter

export const BBE = ['prometheus-blackbox-exporter', 'blackbox_exporter'].find(which);
/** The name every dns check and dns_a module asks for (local-data of the bench's unbound). */
export const DNS_NAME = 'cosmic.region.test';
export const BBE_MISSING = 'blackbox_exporter: not installed (apt-get install prometheus-blackbox-exporter); vakt figures only';

const BBE_CONFIG = `modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      query_name: ${DNS_NAME}
      query_type: A
      transport_protocol: udp
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      valid_rcodes: [NOERROR]
  http_2xx:
    prober: http
    timeout: 5s
    http:
      method: GET
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
`;

export interface Bbe {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export function bbeVersion(): string {
  if (!BBE) return 'missing';
  const r = spawnSync(BBE, ['--version']);
  return /version (\S+)/.exec(`${r.stdout.toString()}${r.stderr.toString()}`)?.[1] ?? '?';
}

export async function startBbe(): Promise<Bbe | undefined> {
  if (!BBE) return undefined;
  const cfg = join(dir, 'bbe.yml');
  writeFileSync(cfg, BBE_CONFIG);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let out = '';
    const child = track(
      spawn(BBE, [`--config.file=${cfg}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] }),
    );
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      if ((await fetch(`${url}/-/healthy`).catch(() => undefined))?.ok) return { url, pid: child.pid ?? -1, stop: () => stopChild(child) };
      await sleep(100);
    }
    await stopChild(child, 'SIGKILL');
    if (attempt >= 2 || !/address already in use/i.test(out)) throw new Error(`blackbox_exporter did not start: ${out.trim()}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/** What Prometheus 2.42 sends when it scrapes (the load generator sends the same to blackbox_exporter). */
export const SCRAPE_HEADERS = {
  accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  'accept-encoding': 'gzip',
  'x-prometheus-scrape-timeout-seconds': '5',
};

export interface Prometheus {
  url: string;
  pid: number;
  /** An instant query; the result vector's values by the label `by` (or "" for a single series). */
  query(expr: string, by?: string): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

/** Starts a real Prometheus (Debian's) with its own config and temp storage on a free port, scraping `target`. */
export async function startPrometheus(target: string, intervalS: number): Promise<Prometheus | undefined> {
  if (!which('prometheus')) return undefined;
  const pdir = mkdtempSync(join(dir, 'prometheus-'));
  const conf = join(pdir, 'prometheus.yml');
  writeFileSync(
    conf,
    `global: { scrape_interval: ${intervalS}s, scrape_timeout: ${Math.max(1, intervalS - 1)}s, evaluation_interval: ${intervalS}s }
scrape_configs:
  - job_name: vakt
    static_configs: [{ targets: ["${target}"] }]
`,
  );
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let out = '';
    const child = track(
      spawn(
        'prometheus',
        [
          `--config.file=${conf}`,
          `--storage.tsdb.path=${join(pdir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=warn',
          '--storage.tsdb.retention.time=1d',
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 200 && child.exitCode === null; i++) {
      if ((await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200) {
        return {
          url,
          pid: child.pid ?? -1,
          async query(expr, by) {
            const res = await fetch(`${url}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
            const j = (await res.json()) as { status: string; data?: { result?: { metric: Record<string, string>; value: [number, string] }[] } };
            return new Map((j.data?.result ?? []).map((r) => [by ? (r.metric[by] ?? '') : '', Number(r.value[1])]));
          },
          stop: () => stopChild(child),
        };
      }
      await sleep(100);
    }
    await stopChild(child, 'SIGKILL');
    if (attempt >= 2 || !/address already in use/i.test(out)) throw new Error(`prometheus did not start: ${out.trim()}`);
  }
}

export function prometheusVersion(): string {
  if (!which('prometheus')) return 'missing';
  const r = spawnSync('prometheus', ['--version']);
  return /version (\S+)/.exec(`${r.stdout.toString()}${r.stderr.toString()}`)?.[1] ?? '?';
}

// ---------------------------------------------------------------------------------------------
// The agent as a child process

let built: Promise<{ out: string; warning?: string }> | undefined;

/**
 * Compiles the tree with tsc (as `npm run build` does, tsconfig.json's options) into a temporary
 * directory, together with test/helpers/vakt.ts (the CLI's entry) and bench/agent-probe.ts (the
 * preload that instruments the child). The child then runs plain JavaScript as a deployment does:
 * no tsx loader thread (about 40 MiB of RSS and a second of start-up CPU). Type errors in the tree
 * do not stop the emit; they are reported as a warning line.
 */
export function buildAgent(): Promise<{ out: string; warning?: string }> {
  built ??= (async () => {
    const base = mkdtempSync(join(tmpdir(), 'vakt-bench-build-'));
    process.once('exit', () => rmSync(base, { recursive: true, force: true }));
    const out = join(base, 'out');
    const cfg = join(base, 'tsconfig.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        extends: join(ROOT, 'tsconfig.json'),
        compilerOptions: {
          noEmit: false,
          declaration: false,
          sourceMap: false,
          outDir: out,
          rootDir: ROOT,
          noEmitOnError: false,
          typeRoots: [join(ROOT, 'node_modules/@types')],
        },
        include: [],
        // The probe thread's entry is loaded by URL, not imported: name it.
        files: [join(ROOT, 'test/helpers/vakt.ts'), join(ROOT, 'bench/agent-probe.ts'), join(ROOT, 'agent/probe-worker.ts')],
      }),
    );
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((done) => {
      execFile(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', cfg], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
        done({ status: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      );
    });
    if (!existsSync(join(out, 'test/helpers/vakt.js')) || !existsSync(join(out, 'bench/agent-probe.js'))) {
      throw new Error(`tsc emitted nothing: ${r.stdout}${r.stderr}`);
    }
    mkdirSync(out, { recursive: true });
    copyFileSync(join(ROOT, 'package.json'), join(out, 'package.json')); // "type": "module", and the version
    symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
    const warning = r.status === 0 ? undefined : `warning: tsc reported errors (emitted anyway): ${r.stdout.split('\n').slice(0, 3).join(' | ')}`;
    return warning ? { out, warning } : { out };
  })();
  return built;
}

/** What the preload (bench/agent-probe.ts) reports from inside the agent's process. */
export interface ChildStats {
  /** Whether the scheduler's hooks could be wrapped (fires, skips and exact lag come from there). */
  hooked: boolean;
  /** process.cpuUsage() in seconds, user + system, all threads. */
  cpu: number;
  /** Runs started by the scheduler (scheduled and retries) and fires skipped, since start. */
  fires: number;
  skipped: number;
  /** Scheduler lag values since the last reset: [seconds, count] (the scheduler computes them from Date.now(), so whole ms). */
  lag: [number, number][];
  /** Event-loop delay since the last reset (monitorEventLoopDelay, 10 ms resolution), ms beyond the 10 ms tick. */
  eld: { p50: number; p99: number; max: number; count: number };
  rss: number;
  heapUsed: number;
  /** V8's heap as reserved, and memory outside it held by JS objects (buffers, typed arrays), MiB. */
  heapTotal: number;
  external: number;
  /** ms from process start until the preload ran (node's own start-up). */
  preloadAt: number;
}

export interface AgentChild {
  url: string;
  pid: number;
  /** ms from spawn until /readyz answered 200. */
  readyMs: number;
  /** `live`: after a full garbage collection in the child (heapUsed is then what is alive). */
  stats(reset?: boolean, live?: boolean): Promise<ChildStats>;
  stop(): Promise<void>;
  log(): string;
}

/**
 * Starts `vakt run -c FILE --listen 127.0.0.1:PORT` in a child process (the real CLI: agent and
 * HTTP server wired as in production) and resolves once /readyz answers 200 (every check scheduled).
 */
export async function startAgent(name: string, yaml: string, fixedPort?: number): Promise<AgentChild> {
  const { out } = await buildAgent();
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const logFile = join(dir, `${name}.log`);
  for (let attempt = 0; ; attempt++) {
    const port = attempt === 0 && fixedPort !== undefined ? fixedPort : await freePort();
    const url = `http://127.0.0.1:${port}`;
    const t0 = performance.now();
    const child = track(
      spawn(
        process.execPath,
        [
          ...AGENT_NODE_FLAGS,
          '--import',
          join(out, 'bench/agent-probe.js'),
          join(out, 'test/helpers/vakt.js'),
          'run',
          '-c',
          file,
          '--listen',
          `127.0.0.1:${port}`,
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        },
      ),
    );
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    // The agent's log (JSON lines on stdout) goes to a file, as a service's would go to journald.
    child.stdout?.pipe(createWriteStream(logFile));
    let readyMs: number | undefined;
    while (readyMs === undefined && child.exitCode === null && performance.now() - t0 < 120_000) {
      const res = await fetch(`${url}/readyz`).catch(() => undefined);
      if (res?.status === 200) readyMs = performance.now() - t0;
      else await sleep(10);
      await res?.text().catch(() => undefined);
    }
    if (readyMs === undefined) {
      await stopChild(child, 'SIGKILL');
      if (attempt < 2 && /EADDRINUSE|address already in use/i.test(err)) continue;
      throw new Error(`agent ${name} did not become ready: ${err.trim() || readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    let seq = 0;
    const pending = new Map<number, (s: ChildStats) => void>();
    child.on('message', (m: { id: number; stats: ChildStats }) => pending.get(m.id)?.(m.stats));
    return {
      url,
      pid: child.pid ?? -1,
      readyMs,
      stats: (reset = false, live = false) =>
        new Promise<ChildStats>((resolve, reject) => {
          const id = ++seq;
          const timer = setTimeout(() => reject(new Error('agent child did not answer a stats request within 30 s')), 30_000);
          pending.set(id, (s) => {
            clearTimeout(timer);
            pending.delete(id);
            resolve(s);
          });
          child.send({ id, reset, live });
        }),
      stop: async () => {
        if (child.connected) child.disconnect();
        await stopChild(child, 'SIGTERM', 10_000);
      },
      log: () => `${err}${readFileSync(logFile, 'utf8').slice(-4000)}`,
    };
  }
}

/** Lag quantiles (seconds) from the preload's exact values. */
export function lagQuantiles(lag: readonly [number, number][]): { n: number; p50: number; p99: number; max: number } {
  const sorted = [...lag].sort((a, b) => a[0] - b[0]);
  const n = sorted.reduce((a, [, c]) => a + c, 0);
  const q = (p: number) => {
    let seen = 0;
    for (const [v, c] of sorted) {
      seen += c;
      if (seen >= p * n) return v;
    }
    return NaN;
  };
  return { n, p50: q(0.5), p99: q(0.99), max: sorted.at(-1)?.[0] ?? NaN };
}

/** Two lag tallies added up. */
export function lagSum(a: readonly [number, number][], b: readonly [number, number][]): [number, number][] {
  const m = new Map(a);
  for (const [v, c] of b) m.set(v, (m.get(v) ?? 0) + c);
  return [...m];
}

// ---------------------------------------------------------------------------------------------
// /metrics

export interface Scrape {
  text: string;
  /** Bytes on the wire (after any content encoding). */
  bytes: number;
  /** Seconds from sending the request to the last byte. */
  seconds: number;
}

/** GETs a /metrics URL as Prometheus does (its Accept and Accept-Encoding), timing it to the last byte. */
export async function scrape(url: string): Promise<Scrape> {
  const t0 = performance.now();
  const { status, headers, body } = await get(url, SCRAPE_HEADERS, 60_000);
  const seconds = (performance.now() - t0) / 1000;
  if (status !== 200) throw new Error(`GET ${url}: ${status}`);
  const text = headers['content-encoding'] === 'gzip' ? gunzipSync(body).toString() : body.toString();
  return { text, bytes: body.length, seconds };
}

/** Sum of a metric's samples whose label text matches `labels` (a regex over the label set). */
export function sumMetric(text: string, name: string, labels?: RegExp): number {
  let sum = 0;
  const re = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)`, 'gm');
  for (const m of text.matchAll(re)) if (!labels || labels.test(m[1] ?? '')) sum += Number(m[2]);
  return sum;
}

/** Samples of a metric summed by the value of one label. */
export function sumBy(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)`, 'gm');
  const lre = new RegExp(`(?:^|,)${label}="([^"]*)"`);
  for (const m of text.matchAll(re)) {
    const v = lre.exec(m[1] ?? '')?.[1] ?? '';
    out.set(v, (out.get(v) ?? 0) + Number(m[2]));
  }
  return out;
}

/** Quantile of an exported histogram (summed over its series) as the upper bound of the bucket it falls in. */
export function histogramBound(text: string, name: string, q: number): string {
  const buckets = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\S+)`, 'gm'))) {
    const le = /le="([^"]+)"/.exec(m[1] ?? '')?.[1] ?? '';
    buckets.set(le, (buckets.get(le) ?? 0) + Number(m[2]));
  }
  const sorted = [...buckets].sort((a, b) => (a[0] === '+Inf' ? 1 : b[0] === '+Inf' ? -1 : Number(a[0]) - Number(b[0])));
  const total = buckets.get('+Inf') ?? 0;
  if (total === 0) return '-';
  return sorted.find(([, c]) => c >= q * total)?.[0] ?? '+Inf';
}

// ---------------------------------------------------------------------------------------------
// HTTP client and the load generator

const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 256 });

export function get(
  url: string,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
  agent: HttpAgent = keepAlive,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface LoadItem {
  /** Path and query of the /probe request. */
  path: string;
  /** Share of the requests (weights are relative). */
  weight: number;
  /** Called with the response body of each successful probe (probe_success 1). */
  onProbe?: (body: string) => void;
}

/**
 * An open-loop load generator: issues GET `base + item.path` at a fixed rate whatever the answers
 * do, interleaving the items by weight (smooth weighted round robin, so the mix is exact over any
 * window), with at most `cap` requests in flight; a request due while `cap` are in flight is
 * dropped and counted. Sends Prometheus' scrape headers (gzip), as a Prometheus driving
 * blackbox_exporter would.
 */
export class LoadGen {
  sent = 0;
  ok = 0;
  /** Answered with probe_success 0. */
  failed = 0;
  /** No answer, or not 200. */
  errors = 0;
  /** Due while `cap` requests were in flight: not sent. */
  dropped = 0;
  private inFlight = 0;
  private issued = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly agent: HttpAgent;
  private readonly current: number[];
  private readonly total: number;
  private idle: (() => void) | undefined;
  /** This process's event-loop delay while generating (ms beyond the 10 ms tick): a late generator, not a slow exporter, shows here. */
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });

  constructor(
    private readonly base: string,
    private readonly items: readonly LoadItem[],
    private readonly rate: number,
    private readonly cap = 64,
  ) {
    this.agent = new HttpAgent({ keepAlive: true, maxSockets: cap });
    this.current = items.map(() => 0);
    this.total = items.reduce((a, i) => a + i.weight, 0);
  }

  get loopP99(): number {
    return Math.max(0, this.loop.percentile(99) / 1e6 - 10);
  }

  start(): void {
    this.loop.enable();
    const t0 = performance.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * this.rate);
      while (this.issued < due) {
        this.issued++;
        if (this.inFlight >= this.cap) this.dropped++;
        else this.issue(this.next());
      }
    }, 2);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.loop.disable();
    if (this.inFlight > 0) await Promise.race([new Promise<void>((r) => (this.idle = r)), sleep(10_000)]);
    this.agent.destroy();
  }

  private next(): LoadItem {
    let best = 0;
    for (let i = 0; i < this.items.length; i++) {
      this.current[i]! += this.items[i]!.weight;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best]! -= this.total;
    return this.items[best]!;
  }

  private issue(item: LoadItem): void {
    this.inFlight++;
    this.sent++;
    get(`${this.base}${item.path}`, SCRAPE_HEADERS, 10_000, this.agent)
      .then(({ status, headers, body }) => {
        if (status !== 200) {
          this.errors++;
          return;
        }
        const text = headers['content-encoding'] === 'gzip' ? gunzipSync(body).toString() : body.toString();
        if (/^probe_success 1$/m.test(text)) {
          this.ok++;
          item.onProbe?.(text);
        } else this.failed++;
      })
      .catch(() => this.errors++)
      .finally(() => {
        this.inFlight--;
        if (this.inFlight === 0) this.idle?.();
      });
  }
}

/** A gauge of blackbox_exporter's /probe answer, e.g. probeValue(body, 'probe_http_duration_seconds', 'phase="connect"'). */
export function probeValue(body: string, name: string, labels?: string): number | undefined {
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[{}]/g, '')}\\}` : ''} (\\S+)$`, 'm');
  const m = re.exec(body);
  return m ? Number(m[1]) : undefined;
}

/** The commit the tree is at, and whether it has changes (the benchmark measures the work tree). */
export function treeState(): string {
  try {
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty =
      execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'agent', 'probes', 'config'], { encoding: 'utf8' }).trim() !== '';
    return `${head}${dirty ? ' + uncommitted changes in agent/probes/config' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}
