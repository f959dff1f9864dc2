// Benchmarks, measured as ratios against blackbox_exporter run in the same session on the same
// loopback peer, since these machines are shared and noisy. Results and method: bench/RESULTS.md.
//
//   npm run bench                 all parts
//   npm run bench -- tcp          one part: tcp | scale | dns
//
// Needs prometheus-blackbox-exporter on PATH (Debian package of that name); without it, the
// peer columns are reported as missing and only vakt's own figures are printed. The dns part
// also needs unbound and dig (Debian packages unbound and dnsutils; .ci/run installs them).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { parseConfig, type CheckConfig } from '../config/loader.js';
import { Agent } from '../agent/agent.js';
import { Limiter, Runner } from '../agent/runner.js';
import { startUnbound } from '../test/system/helpers.js';

const BBE = ['prometheus-blackbox-exporter', 'blackbox_exporter'].find((b) => spawnSync('which', [b]).status === 0);
const dir = mkdtempSync(join(tmpdir(), 'vakt-bench-'));
const log = pino({ level: 'silent' });
const execFileP = promisify(execFile);

/** The name the dns part asks for (a local-data A record of the bench's unbound). */
const DNS_NAME = 'cosmic.region.test';

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
`;

/** A TCP listener in its own process, so the probes' event loop is not the server's. */
async function listener(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', `const s=require('net').createServer(c=>c.end());s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((r) => child.stdout?.once('data', (d: Buffer) => r(Number(d.toString()))));
  return { port, child };
}

async function startBbe(): Promise<{ url: string; child: ChildProcess } | undefined> {
  if (!BBE) return undefined;
  const cfg = join(dir, 'bbe.yml');
  writeFileSync(cfg, BBE_CONFIG);
  const port = 19115 + Math.floor(Math.random() * 500);
  const child = spawn(BBE, [`--config.file=${cfg}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/-/healthy`)).ok) return { url, child };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill();
  throw new Error('blackbox_exporter did not start');
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in seconds (USER_HZ = 100)
}

function fmtMs(s: number): string {
  return `${(s * 1000).toFixed(3)} ms`;
}

/** Part 1: the duration of one tcp connect probe, vakt vs blackbox_exporter, interleaved. */
async function benchTcp(): Promise<string[]> {
  const N = 400;
  const peer = await listener();
  const bbe = await startBbe();
  const check = parseConfig(`checks:\n  - { name: b, kind: tcp, target: "127.0.0.1:${peer.port}", timeout: 5s }\n`, join(dir, 'b.yaml')).checks[0] as CheckConfig;
  const runner = new Runner(new AbortController().signal, new Limiter(1), log);
  const vakt: number[] = [];
  const peerTimes: number[] = [];
  for (let i = 0; i < 20; i++) await runner.run(check); // warm-up
  for (let i = 0; i < N; i++) {
    const out = await runner.run(check);
    if (out?.result.ok) vakt.push(out.duration);
    if (bbe) {
      const body = await (await fetch(`${bbe.url}/probe?module=tcp_connect&target=127.0.0.1:${peer.port}`)).text();
      const m = /^probe_duration_seconds (\S+)/m.exec(body);
      if (m && /^probe_success 1/m.test(body)) peerTimes.push(Number(m[1]));
    }
  }
  peer.child.kill();
  bbe?.child.kill();
  const lines = [`tcp connect probe to a loopback listener, ${N} interleaved runs each`, `vakt:              median ${fmtMs(quantile(vakt, 0.5))}  p90 ${fmtMs(quantile(vakt, 0.9))}  (${vakt.length} ok)`];
  if (peerTimes.length > 0) {
    lines.push(`blackbox_exporter: median ${fmtMs(quantile(peerTimes, 0.5))}  p90 ${fmtMs(quantile(peerTimes, 0.9))}  (${peerTimes.length} ok)`);
    lines.push(`ratio vakt/bbe:    median ${(quantile(vakt, 0.5) / quantile(peerTimes, 0.5)).toFixed(2)}  p90 ${(quantile(vakt, 0.9) / quantile(peerTimes, 0.9)).toFixed(2)}`);
  } else lines.push('blackbox_exporter: not installed (apt-get install prometheus-blackbox-exporter)');
  return lines;
}

/**
 * Part 2: many checks in one process. CHECKS tcp checks at INTERVAL against one loopback
 * listener for DURATION: scheduler lag, event-loop delay, memory, CPU per 1000 probes; and the
 * CPU blackbox_exporter spends for the same number of tcp probes driven over HTTP.
 */
async function benchScale(): Promise<string[]> {
  const CHECKS = Number(process.env.BENCH_CHECKS ?? 5000);
  const INTERVAL_S = 10;
  const DURATION_S = Number(process.env.BENCH_SECONDS ?? 40);
  const peer = await listener();
  const lines = [`${CHECKS} tcp checks every ${INTERVAL_S}s for ${DURATION_S}s in one agent (start spread 10s)`];
  const file = join(dir, 'scale.yaml');
  const checks = Array.from({ length: CHECKS }, (_, i) => `  - { name: c${i}, kind: tcp, target: "127.0.0.1:${peer.port}" }`).join('\n');
  writeFileSync(file, `agent: { concurrency: 512, logLevel: error }\ndefaults: { interval: ${INTERVAL_S}s, timeout: 5s }\nchecks:\n${checks}\n`);
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  const sink = new (await import('node:stream')).PassThrough();
  sink.resume();
  const agent = await Agent.start({ configFile: file, logStream: sink });
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, DURATION_S * 1000));
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  const text = (await agent.metrics.render(false)).body;
  const runs = [...text.matchAll(/^vakt_probe_runs_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
  const failed = [...text.matchAll(/^vakt_probe_runs_total\{[^}]*result="failed"[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
  const skipped = [...text.matchAll(/^vakt_probe_skipped_runs_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
  const lagBuckets = [...text.matchAll(/^vakt_scheduler_lag_seconds_bucket\{le="([^"]+)"[^}]*\} (\d+)/gm)].map((m) => [m[1] as string, Number(m[2])] as const);
  const lagCount = Number(/^vakt_scheduler_lag_seconds_count(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
  const lagQ = (q: number) => lagBuckets.find(([, c]) => c >= q * lagCount)?.[0] ?? '+Inf';
  const rss = process.memoryUsage().rss;
  global.gc?.();
  const heap = process.memoryUsage().heapUsed;
  await agent.stop();
  const cpuS = (cpu.user + cpu.system) / 1e6;
  lines.push(`runs ${runs} (${failed} failed, ${skipped} skipped) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  lines.push(`scheduler lag: p50 <= ${lagQ(0.5)} s, p99 <= ${lagQ(0.99)} s (histogram bucket bounds)`);
  lines.push(`event-loop delay: p50 ${(loop.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`);
  lines.push(`memory: RSS +${((rss - rssBefore) / 1048576).toFixed(0)} MiB for ${CHECKS} checks; live heap after GC +${((heap - heapBefore) / 1048576).toFixed(1)} MiB (${((heap - heapBefore) / CHECKS / 1024).toFixed(1)} KiB per check)${global.gc ? '' : ' (run with --expose-gc for the heap figure)'}`);
  lines.push(`vakt CPU: ${cpuS.toFixed(2)} s = ${((cpuS / runs) * 1000).toFixed(3)} CPU-s per 1000 probes`);

  const bbe = await startBbe();
  if (bbe && bbe.child.pid !== undefined) {
    const M = Math.min(runs, 20_000);
    const c0 = cpuOf(bbe.child.pid);
    let done = 0;
    const worker = async () => {
      while (done < M) {
        done++;
        await (await fetch(`${bbe.url}/probe?module=tcp_connect&target=127.0.0.1:${peer.port}`)).text();
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const bbeCpu = cpuOf(bbe.child.pid) - c0;
    bbe.child.kill();
    lines.push(`blackbox_exporter CPU for ${M} tcp probes over HTTP: ${bbeCpu.toFixed(2)} s = ${((bbeCpu / M) * 1000).toFixed(3)} CPU-s per 1000 probes`);
    lines.push(`ratio vakt/bbe CPU per probe: ${(cpuS / runs / (bbeCpu / M)).toFixed(2)} (bbe's figure includes serving its HTTP request per probe; vakt's includes scheduling and metrics)`);
  }
  peer.child.kill();
  return lines;
}

/**
 * Part 3: one DNS query (A cosmic.region.test over UDP) against one local unbound answering from
 * local-data, measured by dig, by vakt's dns probe (through the runner) and by blackbox_exporter's
 * dns prober, interleaved (the order rotates each round). Compared are the tools' own figures for
 * the query itself: dig's "Query time" in microseconds (`dig -u`, one dig process per query, as a
 * person runs it), vakt's `phases.request` and blackbox_exporter's
 * `probe_dns_duration_seconds{phase="request"}`. A bare node:dgram exchange in the same rotation
 * shows where vakt's figure goes. Method and caveats: bench/RESULTS.md.
 */
async function benchDns(): Promise<string[]> {
  const N = Number(process.env.BENCH_DNS_QUERIES ?? 500);
  const ub = await startUnbound({ server: ['local-zone: "region.test." static', `local-data: "${DNS_NAME}. 300 IN A 10.20.1.5"`] });
  const bbe = await startBbe();
  try {
    const check = parseConfig(
      `checks:\n  - { name: d, kind: dns, target: "${ub.target}", timeout: 5s, dns: { name: ${DNS_NAME}, type: A, expect: { answer: { exactValues: [10.20.1.5] } } } }\n`,
      join(dir, 'd.yaml'),
    ).checks[0] as CheckConfig;
    const runner = new Runner(new AbortController().signal, new Limiter(1), log);
    // +nocookie +noadflag: dig then sends what vakt sends (RD, EDNS0 with a 1232-byte payload
    // and no options); its defaults add a COOKIE option and the AD flag.
    const digArgs = ['-u', '@127.0.0.1', '-p', String(ub.port), '+tries=1', '+time=2', '+nocookie', '+noadflag'];
    const digOnce = async (): Promise<number | undefined> => {
      const { stdout } = await execFileP('dig', [...digArgs, DNS_NAME, 'A']);
      const m = /^;; Query time: (\d+) usec$/m.exec(stdout);
      return m && /status: NOERROR/.test(stdout) && /\tA\t10\.20\.1\.5$/m.test(stdout) ? Number(m[1]) / 1e6 : undefined;
    };
    const vaktOnce = async (): Promise<number | undefined> => {
      const out = await runner.run(check);
      return out?.result.ok ? out.result.phases.request : undefined;
    };
    const bbeOnce = async (): Promise<number | undefined> => {
      if (!bbe) return undefined;
      const body = await (await fetch(`${bbe.url}/probe?module=dns_a&target=${ub.target}`)).text();
      const m = /^probe_dns_duration_seconds\{phase="request"\} (\S+)/m.exec(body);
      return m && /^probe_success 1/m.test(body) ? Number(m[1]) : undefined;
    };
    // The same exchange with bare node:dgram in this process, split into its parts: where
    // vakt's request phase goes (it spans socket creation to the decoded reply).
    const wire = dnsPacket.encode({ type: 'query', id: 4711, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: DNS_NAME, class: 'IN' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] });
    const bare = { bind: [] as number[], decode: [] as number[] };
    const bareOnce = async (): Promise<number | undefined> => {
      const t0 = performance.now();
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      const t1 = performance.now();
      const msg = await new Promise<Buffer>((r) => {
        sock.once('message', (m) => r(m));
        sock.send(wire, ub.port, '127.0.0.1');
      });
      const t2 = performance.now();
      const reply = dnsPacket.decode(msg);
      const t3 = performance.now();
      sock.close();
      if (reply.answers?.length !== 1) return undefined;
      bare.bind.push((t1 - t0) / 1000);
      bare.decode.push((t3 - t2) / 1000);
      return (t2 - t1) / 1000;
    };
    const tools = [
      { name: 'dig', once: digOnce, times: [] as number[] },
      { name: 'vakt', once: vaktOnce, times: [] as number[] },
      { name: 'bbe', once: bbeOnce, times: [] as number[] },
      { name: 'bare', once: bareOnce, times: [] as number[] },
    ];
    for (let i = 0; i < 20; i++) for (const t of tools) await t.once(); // warm-up
    bare.bind.length = 0;
    bare.decode.length = 0;
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < tools.length; k++) {
        const t = tools[(i + k) % tools.length]!;
        const v = await t.once();
        if (v !== undefined) t.times.push(v);
      }
    }
    const [digT, vaktT, bbeT, bareT] = tools.map((t) => t.times) as [number[], number[], number[], number[]];

    const versions = `unbound ${spawnSync('unbound', ['-V']).stdout.toString().split('\n')[0]?.replace(/^Version /, '')}, ${spawnSync('dig', ['-v']).stderr.toString().trim()}`;
    const row = (label: string, xs: number[]) => `${label.padEnd(40)} median ${fmtMs(quantile(xs, 0.5))}  p10 ${fmtMs(quantile(xs, 0.1))}  p90 ${fmtMs(quantile(xs, 0.9))}  (${xs.length} ok)`;
    const lines = [
      `dns A ${DNS_NAME} over UDP to one unbound on ${ub.target} (local-data), ${N} interleaved rounds (${versions})`,
      row('dig -u, one process per query:', digT),
      row('vakt dns probe, phases.request:', vaktT),
    ];
    if (bbeT.length > 0) lines.push(row('blackbox_exporter, request phase:', bbeT));
    else lines.push('blackbox_exporter: not installed (apt-get install prometheus-blackbox-exporter)');
    lines.push(
      `${'bare node:dgram in this process:'.padEnd(40)} socket+bind median ${fmtMs(quantile(bare.bind, 0.5))}, send->reply ${fmtMs(quantile(bareT, 0.5))} (p90 ${fmtMs(quantile(bareT, 0.9))}), decode ${fmtMs(quantile(bare.decode, 0.5))}`,
    );
    const diff = quantile(vaktT, 0.5) - quantile(digT, 0.5);
    lines.push(`vakt - dig at the median:                ${diff >= 0 ? '+' : ''}${fmtMs(diff)} (goal: within 1 ms)`);
    if (bbeT.length > 0) lines.push(`ratio vakt/bbe:                          median ${(quantile(vaktT, 0.5) / quantile(bbeT, 0.5)).toFixed(2)}  p90 ${(quantile(vaktT, 0.9) / quantile(bbeT, 0.9)).toFixed(2)}`);
    return lines;
  } finally {
    bbe?.child.kill();
    await ub.stop();
  }
}

const parts: Record<string, () => Promise<string[]>> = { tcp: benchTcp, scale: benchScale, dns: benchDns };
const wanted = process.argv.slice(2).filter((a) => a in parts);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${new Date().toISOString()}`);
for (const name of wanted.length > 0 ? wanted : Object.keys(parts)) {
  console.log(`\n## ${name}`);
  for (const line of await (parts[name] as () => Promise<string[]>)()) console.log(line);
}
