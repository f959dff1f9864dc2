// cpu: CPU per probe by kind (tcp, dns, http) and rate (200/s, 1,000/s). vakt: an agent child
// (`vakt run`) with N checks of one kind every 10 s (N = rate x 10). blackbox_exporter: /probe
// requests at the same rate from an open-loop generator in this process. Both CPU figures are
// utime + stime from /proc/PID/stat over a measured window after a warm-up.
// Method and caveats: bench/RESULTS.md.
import { startUnbound, type UnboundInstance } from '../test/system/helpers.js';
import {
  BBE_MISSING,
  DNS_NAME,
  LoadGen,
  PROBE_THREADS,
  Report,
  SMOKE,
  cpuOf,
  httpPeer,
  lagQuantiles,
  scrape,
  sleep,
  startAgent,
  startBbe,
  sumBy,
  sumMetric,
  tcpListener,
  threadsTag,
  threadsYaml,
  uptime,
  which,
  type AgentChild,
  type Peer,
} from './lib.js';

type Kind = 'tcp' | 'dns' | 'http';

interface Targets {
  tcp: Peer;
  http: Peer;
  dns?: UnboundInstance;
}

const INTERVAL_S = SMOKE ? 2 : 10;
/** Requests in flight at most from the generator to blackbox_exporter (a request due beyond it is dropped and counted). */
const CAP = 256;

function checkLine(kind: Kind, i: number, t: Targets): string {
  if (kind === 'tcp') return `  - { name: c${i}, kind: tcp, target: "127.0.0.1:${t.tcp.port}" }`;
  if (kind === 'dns') return `  - { name: c${i}, kind: dns, target: "${t.dns!.target}", dns: { name: ${DNS_NAME}, type: A } }`;
  return `  - { name: c${i}, kind: http, target: "http://127.0.0.1:${t.http.port}/" }`;
}

function probePath(kind: Kind, t: Targets): string {
  if (kind === 'tcp') return `/probe?module=tcp_connect&target=127.0.0.1:${t.tcp.port}`;
  if (kind === 'dns') return `/probe?module=dns_a&target=${t.dns!.target}`;
  return `/probe?module=http_2xx&target=${encodeURIComponent(`http://127.0.0.1:${t.http.port}/`)}`;
}

interface VaktCell {
  perK: number;
  cores: number;
  runs: number;
  skipped: number;
  failed: number;
  reasons: string;
  lagP99: number;
  eldP99: number;
  eldMax: number;
}

async function vaktCell(kind: Kind, rate: number, seconds: number, t: Targets, threads: number | undefined): Promise<VaktCell> {
  const n = rate * INTERVAL_S;
  const lines = Array.from({ length: n }, (_, i) => checkLine(kind, i, t));
  let agent: AgentChild | undefined;
  try {
    agent = await startAgent(
      `cpu-${kind}-${rate}`,
      `${threadsYaml(threads)}defaults: { interval: ${INTERVAL_S}s, timeout: ${Math.min(5, INTERVAL_S)}s }\nchecks:\n${lines.join('\n')}\n`,
    );
    // Warm-up: one whole interval (every check's first run, which creates its series) and 2 s.
    await sleep((INTERVAL_S + 2) * 1000);
    const c0 = cpuOf(agent.pid);
    const s0 = await agent.stats(true);
    const w0 = performance.now();
    await sleep(seconds * 1000);
    const c1 = cpuOf(agent.pid);
    const s1 = await agent.stats(true);
    const w = (performance.now() - w0) / 1000;
    // Read after the window, so rendering /metrics is not in the measured CPU.
    const text = (await scrape(`${agent.url}/metrics`)).text;
    const runs = s1.hooked ? s1.fires - s0.fires : NaN;
    const reasons = [...sumBy(text, 'vakt_probe_failures_total', 'reason')].filter(([, k]) => k > 0);
    return {
      perK: ((c1 - c0) / runs) * 1000,
      cores: (c1 - c0) / w,
      runs,
      skipped: s1.hooked ? s1.skipped : sumMetric(text, 'vakt_probe_skipped_runs_total'),
      failed: sumMetric(text, 'vakt_probe_runs_total', /result="failed"/),
      reasons: reasons.map(([r, k]) => `${r} ${k}`).join(', '),
      lagP99: lagQuantiles(s1.lag).p99,
      eldP99: s1.eld.p99,
      eldMax: s1.eld.max,
    };
  } finally {
    await agent?.stop();
  }
}

async function bbeCell(
  kind: Kind,
  rate: number,
  seconds: number,
  t: Targets,
): Promise<{ perK: number; cores: number; probes: number; lost: string } | undefined> {
  const bbe = await startBbe();
  if (!bbe) return undefined;
  const gen = new LoadGen(bbe.url, [{ path: probePath(kind, t), weight: 1 }], rate, CAP);
  try {
    gen.start();
    await sleep(SMOKE ? 1000 : 5000);
    const c0 = cpuOf(bbe.pid);
    const n0 = gen.ok + gen.failed;
    const w0 = performance.now();
    await sleep(seconds * 1000);
    const c1 = cpuOf(bbe.pid);
    const n1 = gen.ok + gen.failed;
    const w = (performance.now() - w0) / 1000;
    await gen.stop();
    return {
      perK: ((c1 - c0) / (n1 - n0)) * 1000,
      cores: (c1 - c0) / w,
      probes: n1 - n0,
      lost: `failed ${gen.failed}, errors ${gen.errors}, dropped ${gen.dropped} of ${gen.sent + gen.dropped} (generator loop delay p99 ${gen.loopP99.toFixed(0)} ms)`,
    };
  } finally {
    await gen.stop();
    await bbe.stop();
  }
}

export async function benchCpu(): Promise<Report> {
  const rep = new Report();
  const seconds = Number(process.env.BENCH_CELL_SECONDS ?? (SMOKE ? 4 : 30));
  const kinds = (process.env.BENCH_CPU_KINDS ?? 'tcp,dns,http').split(',').map((k) => k.trim()) as Kind[];
  const rates = (process.env.BENCH_CPU_RATES ?? (SMOKE ? '50' : '200,1000')).split(',').map(Number);
  for (const k of kinds) if (!['tcp', 'dns', 'http'].includes(k)) throw new Error(`BENCH_CPU_KINDS: unknown kind ${k}`);
  const t: Targets = { tcp: await tcpListener(), http: await httpPeer() };
  try {
    if (kinds.includes('dns')) {
      if (which('unbound') && which('dig'))
        t.dns = await startUnbound({ server: ['local-zone: "region.test." static', `local-data: "${DNS_NAME}. 300 IN A 10.20.1.5"`] });
      else rep.line('dns: unbound or dig missing (apt-get install unbound dnsutils); dns rows left out');
    }
    rep.line(
      `CPU per probe (utime+stime from /proc/PID/stat) over ${seconds} s windows. vakt: \`vakt run\` child with rate x ${INTERVAL_S} checks every ${INTERVAL_S} s, window after ${INTERVAL_S + 2} s of warm-up, no scraping. blackbox_exporter: open-loop /probe requests at the rate (cap ${CAP} in flight, Prometheus' headers), window after ${SMOKE ? 1 : 5} s of warm-up.`,
    );
    rep.line(
      'kind  rate/s | vakt CPU-s/1000 probes (cores) runs | bbe CPU-s/1000 probes (cores) probes | ratio vakt/bbe | vakt lost (whole cell): skipped, failed | bbe lost (whole cell) | vakt lag p99, loop delay p99 / max | load at the end',
    );
    for (const kind of kinds) {
      if (kind === 'dns' && !t.dns) continue;
      for (const rate of rates) {
        const b = await bbeCell(kind, rate, seconds, t);
        if (b) rep.fig(`${kind}_${rate}_bbe_cpu_s_per_1000`, b.perK);
        for (const threads of PROBE_THREADS) {
          const v = await vaktCell(kind, rate, seconds, t, threads);
          const ratio = b ? v.perK / b.perK : NaN;
          const key = `${kind}_${rate}${threads === undefined ? '' : `_t${threads}`}`;
          rep.fig(`${key}_vakt_cpu_s_per_1000`, v.perK);
          if (b) rep.fig(`${key}_ratio`, ratio);
          rep.line(
            `${`${kind}${threadsTag(threads)}`.padEnd(8)} ${String(rate).padStart(6)} | ${v.perK.toFixed(3)} (${v.cores.toFixed(2)}) ${v.runs} | ${b ? `${b.perK.toFixed(3)} (${b.cores.toFixed(2)}) ${b.probes}` : 'bbe missing'} | ${b ? ratio.toFixed(2) : '-'} | skipped ${v.skipped}, failed ${v.failed}${v.reasons ? ` (${v.reasons})` : ''} | ${b?.lost ?? '-'} | ${(v.lagP99 * 1000).toFixed(0)} ms, ${v.eldP99.toFixed(1)} / ${v.eldMax.toFixed(0)} ms | ${uptime().replace(/^.*load average/, 'load average')}`,
          );
        }
      }
    }
    if (!which('prometheus-blackbox-exporter') && !which('blackbox_exporter')) rep.line(BBE_MISSING);
  } finally {
    await t.tcp.stop();
    await t.http.stop();
    await t.dns?.stop();
  }
  return rep;
}
