// accuracy: a known delay on the path to a TCP/HTTP peer, and what vakt and blackbox_exporter
// report for it, idle and under load of their own. The peer (a node HTTP server; the tcp probes
// connect to the same port) runs in a network namespace of this process, joined by a veth pair;
// every packet from the host to the peer's port is held 20 ms (one way: a round trip takes 20 ms
// longer) by netem or, where the kernel has no netem, by the NFQUEUE delay line of
// test/system/helpers.ts. Needs root, ip, iptables and python3; otherwise the part is skipped.
// Method and caveats: bench/RESULTS.md.
import type { ChildProcess } from 'node:child_process';
import {
  createNetnsLink,
  delayLink,
  destroyNetnsLink,
  removeStaleNetns,
  removeStaleRules,
  run,
  spawnInNetns,
  waitForLine,
  type LinkDelay,
  type NetnsLink,
} from '../test/system/helpers.js';
import {
  BBE_MISSING,
  HTTP_PEER,
  LoadGen,
  PROBE_THREADS,
  Report,
  SMOKE,
  fmtMs,
  get,
  lagQuantiles,
  probeValue,
  quantile,
  scrape,
  sleep,
  startAgent,
  startBbe,
  tcpListener,
  threadsTag,
  threadsYaml,
  uptime,
  which,
  type AgentChild,
  type Peer,
} from './lib.js';

const DELAY_MS = 20;

/**
 * The independent witness: plain sockets in a Python process, timed with perf_counter around
 * connect, and from sending a GET to its first byte. `n` rounds after 10 of warm-up, or, with
 * `seconds`, as many as fit in that time (the witness that runs alongside a tool's window).
 */
const WITNESS = String.raw`
import socket, sys, time
addr, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
req = b'GET / HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n'
end = time.monotonic() + seconds if seconds > 0 else None
i = 0
while (end is None and i < n + 10) or (end is not None and time.monotonic() < end):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t0 = time.perf_counter()
    s.connect((addr, port))
    t1 = time.perf_counter()
    s.sendall(req)
    s.recv(1)
    t2 = time.perf_counter()
    s.close()
    if end is not None or i >= 10:   # the first 10 rounds of a counted witness warm up the peer (and the delay line)
        print('%.9f %.9f' % (t1 - t0, t2 - t1))
    i += 1
    time.sleep(0.05 if end is not None else 0.01)
`;

interface Witnessed {
  connect: number[];
  processing: number[];
}

async function witness(addr: string, port: number, n: number, seconds = 0): Promise<Witnessed> {
  const out = await run('python3', ['-c', WITNESS, addr, String(port), String(n), String(seconds)], 120_000 + seconds * 1000);
  const rows = out
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' ').map(Number));
  return { connect: rows.map((r) => r[0]!), processing: rows.map((r) => r[1]!) };
}

interface Condition {
  name: string;
  background: boolean;
  scrape: boolean;
}

const ALL_CONDITIONS: Condition[] = [
  { name: 'idle', background: false, scrape: false },
  { name: 'load', background: true, scrape: false },
  { name: 'load+scrape', background: true, scrape: true },
];

/** `BENCH_ACCURACY_CONDITIONS` (e.g. `load+scrape`) and `BENCH_ACCURACY_TOOLS` (`vakt`, `bbe`): a subset, for A/B runs of one cell. */
function subset<T>(all: T[], env: string | undefined, name: (x: T) => string): T[] {
  if (!env) return all;
  const want = env.split(',').map((s) => s.trim());
  const unknown = want.filter((w) => !all.some((x) => name(x) === w));
  if (unknown.length > 0) throw new Error(`unknown ${unknown.join(', ')}: one of ${all.map(name).join(', ')}`);
  return all.filter((x) => want.includes(name(x)));
}
const CONDITIONS = subset(ALL_CONDITIONS, process.env.BENCH_ACCURACY_CONDITIONS, (c) => c.name);

interface Samples {
  tcpConnect: number[];
  httpConnect: number[];
  httpProcessing: number[];
  /** vakt: the same, of the runs the agent did not mark disturbed (what its slow verdicts and baselines see). */
  trusted?: { tcpConnect: number[]; httpConnect: number[]; httpProcessing: number[] };
  /** The witness that ran alongside the window, through the same path under the same load: the truth of this condition. */
  alongside?: Witnessed;
  notes: string;
}

/** GETs `url` every second (a new one only once the previous finished; a tick that finds one still running is counted as skipped). */
function scraper(url: string): { stop(): Promise<string> } {
  const times: number[] = [];
  let skipped = 0;
  let errors = 0;
  let busy: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (busy) {
      skipped++;
      return;
    }
    busy = scrape(url)
      .then((s) => void times.push(s.seconds))
      .catch(() => void errors++)
      .finally(() => (busy = undefined));
  }, 1000);
  return {
    async stop() {
      clearInterval(timer);
      await busy;
      return `scrapes every 1 s: ${times.length} done (median ${fmtMs(quantile(times, 0.5), 0)}, max ${fmtMs(Math.max(...times), 0)}), ${skipped} ticks skipped (previous still running), ${errors} errors`;
    },
  };
}

interface Setup {
  link: NetnsLink;
  port: number;
  bg: Peer;
  seconds: number;
  perKind: number;
  bgRate: number;
  bgInterval: number;
  rounds: number;
}

/** The samples of several windows of one tool and condition, as one. */
function pool(rs: Samples[]): { tcpConnect: number[]; httpConnect: number[]; httpProcessing: number[]; alongside: Witnessed } {
  return {
    tcpConnect: rs.flatMap((r) => r.tcpConnect),
    httpConnect: rs.flatMap((r) => r.httpConnect),
    httpProcessing: rs.flatMap((r) => r.httpProcessing),
    alongside: { connect: rs.flatMap((r) => r.alongside?.connect ?? []), processing: rs.flatMap((r) => r.alongside?.processing ?? []) },
  };
}

async function vaktCondition(c: Condition, s: Setup, threads: number | undefined): Promise<Samples> {
  const { link, port } = s;
  const lines: string[] = [];
  for (let i = 0; i < s.perKind; i++) lines.push(`  - { name: at${i}, kind: tcp, target: "${link.nsAddr}:${port}", interval: 1s, timeout: 1s }`);
  for (let i = 0; i < s.perKind; i++) lines.push(`  - { name: ah${i}, kind: http, target: "http://${link.nsAddr}:${port}/", interval: 1s, timeout: 1s }`);
  if (c.background)
    for (let i = 0; i < s.bgRate * s.bgInterval; i++)
      lines.push(`  - { name: b${i}, kind: tcp, target: "127.0.0.1:${s.bg.port}", interval: ${s.bgInterval}s }`);
  let agent: AgentChild | undefined;
  try {
    agent = await startAgent(`accuracy-${c.name}`, `${threadsYaml(threads)}defaults: { timeout: 5s }\nchecks:\n${lines.join('\n')}\n`);
    await sleep((c.background ? s.bgInterval + 2 : SMOKE ? 2 : 3) * 1000);
    await agent.stats(true);
    const w0 = Date.now();
    const scr = c.scrape ? scraper(`${agent.url}/metrics`) : undefined;
    const alongside = witness(link.nsAddr, port, 0, s.seconds);
    type Run = { time: string; result: string; phases: Record<string, number>; disturbed?: boolean };
    const runs = new Map<string, { kind: 'tcp' | 'http'; run: Run }>();
    const poll = async () => {
      for (let i = 0; i < s.perKind; i++) {
        for (const [kind, name] of [
          ['tcp', `at${i}`],
          ['http', `ah${i}`],
        ] as const) {
          const r = await get(`${agent!.url}/api/v1/checks/${name}`);
          const j = JSON.parse(r.body.toString()) as { history?: Run[] };
          for (const run of j.history ?? []) runs.set(`${name} ${run.time}`, { kind, run });
        }
      }
    };
    while (Date.now() < w0 + s.seconds * 1000) {
      await sleep(Math.min(10_000, w0 + s.seconds * 1000 - Date.now()));
      await poll();
    }
    // The window ends on time even when the last poll (queued behind slow scrapes) ends later.
    const w1 = Math.min(Date.now(), w0 + s.seconds * 1000);
    const scrNote = await scr?.stop();
    const st = await agent.stats(false);
    const out: Samples = {
      tcpConnect: [],
      httpConnect: [],
      httpProcessing: [],
      trusted: { tcpConnect: [], httpConnect: [], httpProcessing: [] },
      alongside: await alongside,
      notes: '',
    };
    let disturbed = 0;
    let marks = false;
    let failed = 0;
    for (const { kind, run } of runs.values()) {
      const t = Date.parse(run.time);
      if (t < w0 || t > w1 - 1000) continue;
      if (run.result === 'failed') {
        failed++;
        continue;
      }
      if (run.disturbed !== undefined) marks = true;
      if (run.disturbed) disturbed++;
      if (kind === 'tcp' && run.phases.connect !== undefined) {
        out.tcpConnect.push(run.phases.connect);
        if (!run.disturbed) out.trusted?.tcpConnect.push(run.phases.connect);
      }
      if (kind === 'http') {
        if (run.phases.connect !== undefined) {
          out.httpConnect.push(run.phases.connect);
          if (!run.disturbed) out.trusted?.httpConnect.push(run.phases.connect);
        }
        if (run.phases.processing !== undefined) {
          out.httpProcessing.push(run.phases.processing);
          if (!run.disturbed) out.trusted?.httpProcessing.push(run.phases.processing);
        }
      }
    }
    out.notes = `lag p99 ${fmtMs(lagQuantiles(st.lag).p99, 0)}, loop delay p99 ${st.eld.p99.toFixed(1)} ms, max ${st.eld.max.toFixed(1)} ms; ${failed} failed runs${marks ? `; ${disturbed} runs marked disturbed by the agent` : ''}${scrNote ? `; ${scrNote}` : ''}`;
    return out;
  } finally {
    await agent?.stop();
  }
}

async function bbeCondition(c: Condition, s: Setup): Promise<Samples | undefined> {
  const bbe = await startBbe();
  if (!bbe) return undefined;
  const { link, port } = s;
  const out: Samples = { tcpConnect: [], httpConnect: [], httpProcessing: [], notes: '' };
  let collect = false;
  const acc = new LoadGen(
    bbe.url,
    [
      {
        path: `/probe?module=tcp_connect&target=${link.nsAddr}:${port}`,
        weight: 1,
        onProbe: (b) => {
          const v = probeValue(b, 'probe_duration_seconds');
          if (collect && v !== undefined) out.tcpConnect.push(v);
        },
      },
      {
        path: `/probe?module=http_2xx&target=${encodeURIComponent(`http://${link.nsAddr}:${port}/`)}`,
        weight: 1,
        onProbe: (b) => {
          const cn = probeValue(b, 'probe_http_duration_seconds', 'phase="connect"');
          const pr = probeValue(b, 'probe_http_duration_seconds', 'phase="processing"');
          if (!collect) return;
          if (cn !== undefined) out.httpConnect.push(cn);
          if (pr !== undefined) out.httpProcessing.push(pr);
        },
      },
    ],
    2 * s.perKind,
    16,
  );
  const bg = c.background ? new LoadGen(bbe.url, [{ path: `/probe?module=tcp_connect&target=127.0.0.1:${s.bg.port}`, weight: 1 }], s.bgRate, 64) : undefined;
  let scr: ReturnType<typeof scraper> | undefined;
  try {
    bg?.start();
    acc.start();
    await sleep((SMOKE ? 1 : 3) * 1000);
    collect = true;
    scr = c.scrape ? scraper(`${bbe.url}/metrics`) : undefined;
    const alongside = witness(link.nsAddr, port, 0, s.seconds);
    await sleep(s.seconds * 1000);
    collect = false;
    out.alongside = await alongside;
    const scrNote = await scr?.stop();
    scr = undefined;
    await acc.stop();
    await bg?.stop();
    out.notes = `accuracy probes: failed ${acc.failed}, errors ${acc.errors}, dropped ${acc.dropped}${bg ? `; background: ${bg.ok + bg.failed} probes, failed ${bg.failed}, errors ${bg.errors}, dropped ${bg.dropped}` : ''}${scrNote ? `; ${scrNote}` : ''}`;
    return out;
  } finally {
    await scr?.stop();
    await acc.stop();
    await bg?.stop();
    await bbe.stop();
  }
}

export async function benchAccuracy(): Promise<Report> {
  const rep = new Report();
  if (process.getuid?.() !== 0) return rep.skip('needs root (a network namespace and an NFQUEUE or netem delay)');
  const missing = ['ip', 'iptables', 'python3'].filter((t) => !which(t));
  if (missing.length > 0) return rep.skip(`${missing.join(', ')} missing (apt-get install iproute2 iptables python3)`);
  const setup: Omit<Setup, 'link' | 'port' | 'bg'> = {
    seconds: Number(process.env.BENCH_ACCURACY_SECONDS ?? (SMOKE ? 3 : 30)),
    rounds: Math.max(1, Number(process.env.BENCH_ACCURACY_ROUNDS ?? 1)),
    perKind: SMOKE ? 2 : 10,
    bgRate: SMOKE ? 100 : 1000,
    bgInterval: SMOKE ? 5 : 10,
  };
  await removeStaleRules();
  await removeStaleNetns();
  let link: NetnsLink | undefined;
  for (let index = 0; !link; index++) {
    try {
      link = await createNetnsLink(index);
    } catch (err) {
      // Another process of the project may own the /30 derived from this pid: try the next one.
      if (index >= 5 || !/already assigned/.test((err as Error).message)) throw err;
    }
  }
  let peer: ChildProcess | undefined;
  let delay: LinkDelay | undefined;
  let bg: Peer | undefined;
  try {
    peer = spawnInNetns(link.netns, process.execPath, ['-e', HTTP_PEER, link.nsAddr]);
    const port = Number(await waitForLine(peer, /^\d+$/, 10_000));
    bg = await tcpListener();
    const s: Setup = { ...setup, link, port, bg };

    const base = await witness(link.nsAddr, port, SMOKE ? 20 : 300);
    delay = await delayLink(link, DELAY_MS, port);
    const delayed = await witness(link.nsAddr, port, SMOKE ? 10 : 300);
    // The truth is what an independent minimal client measures on the same delayed path, with
    // nothing else running: the delay plus the path plus the delay line's own cost (about 1 ms,
    // shown below against the bare 20 ms + undelayed baseline).
    const nominal = { connect: DELAY_MS / 1000 + quantile(base.connect, 0.5), processing: DELAY_MS / 1000 + quantile(base.processing, 0.5) };
    const truth = { connect: quantile(delayed.connect, 0.5), processing: quantile(delayed.processing, 0.5) };
    rep.line(
      `peer: node HTTP server in namespace ${link.netns} at ${link.nsAddr}:${port} (veth from ${link.hostAddr}); delay ${DELAY_MS} ms one way (every packet host -> peer port; a round trip takes ${DELAY_MS} ms longer) by ${delay.mechanism}`,
      `witness (python3 sockets, perf_counter), no delay, ${base.connect.length} rounds: connect median ${fmtMs(quantile(base.connect, 0.5))} p99 ${fmtMs(quantile(base.connect, 0.99))}; GET to first byte median ${fmtMs(quantile(base.processing, 0.5))} p99 ${fmtMs(quantile(base.processing, 0.99))}`,
      `truth = the witness's median through the delay, idle (${delayed.connect.length} rounds): connect ${fmtMs(truth.connect)} (p99 ${fmtMs(quantile(delayed.connect, 0.99))}), GET to first byte ${fmtMs(truth.processing)} (p99 ${fmtMs(quantile(delayed.processing, 0.99))})`,
      `the delay line's own cost (truth - (${DELAY_MS} ms + undelayed baseline)): connect ${fmtMs(truth.connect - nominal.connect)}, processing ${fmtMs(truth.processing - nominal.processing)}`,
    );
    rep.fig('witness_connect_err_ms', (truth.connect - nominal.connect) * 1000);
    rep.line(
      `per condition, ${setup.seconds} s each, vakt then blackbox_exporter${setup.rounds > 1 ? ` in ${setup.rounds} rounds (order reversed every other round; samples pooled per tool)` : ''}: ${setup.perKind} tcp + ${setup.perKind} http probes/s of the peer (vakt: ${setup.perKind} checks of each kind every 1 s; bbe: /probe at the same rate); load = ${setup.bgRate} tcp probes/s to a loopback listener in the same tool (vakt: ${setup.bgRate * setup.bgInterval} checks every ${setup.bgInterval} s; bbe: /probe at ${setup.bgRate}/s); +scrape = GET /metrics every 1 s`,
      'error = reported - truth, ms: median / p99 (n)   [tcp: vakt phases.connect, bbe probe_duration_seconds; http: phase connect and processing of both]',
    );
    const medErr = (xs: number[], ws: number[]) => (xs.length === 0 ? 'no samples' : `${((quantile(xs, 0.5) - quantile(ws, 0.5)) * 1000).toFixed(2)}`);
    const cell = (xs: number[], t: number) =>
      xs.length === 0 ? 'no samples' : `${((quantile(xs, 0.5) - t) * 1000).toFixed(2)} / ${((quantile(xs, 0.99) - t) * 1000).toFixed(2)} (${xs.length})`;
    // Rounds: each condition runs every tool once per round, the order reversed every other
    // round (vakt, bbe, bbe, vakt...), so that a drift of the machine's speed falls on both
    // tools alike; the samples of all rounds are pooled per tool and condition. One 30-40 s
    // window gives ~400 samples per cell, whose p99 (the fourth-worst run) moves by several ms
    // between runs; the pooled p99 of several rounds is what the tools are compared on.
    const tools = subset(
      [...PROBE_THREADS.map((t) => ({ tool: 'vakt' as const, threads: t })), { tool: 'bbe' as const, threads: undefined }],
      process.env.BENCH_ACCURACY_TOOLS,
      (t) => t.tool,
    );
    for (const c of CONDITIONS) {
      const pooled = new Map<string, Samples[]>();
      for (let round = 0; round < setup.rounds; round++) {
        for (const { tool, threads } of round % 2 === 0 ? tools : [...tools].reverse()) {
          const r = tool === 'vakt' ? await vaktCondition(c, s, threads) : await bbeCondition(c, s);
          if (!r) {
            rep.line(`${c.name.padEnd(12)} bbe : ${BBE_MISSING}`);
            continue;
          }
          const label = tool === 'vakt' ? `vakt${threadsTag(threads)}` : tool;
          const key = `${c.name}_${tool}${tool === 'vakt' && threads !== undefined ? `_t${threads}` : ''}`;
          pooled.set(key, [...(pooled.get(key) ?? []), r]);
          rep.line(
            `${c.name.padEnd(12)} ${label.padEnd(4)}${setup.rounds > 1 ? ` (round ${round + 1})` : ''}: tcp connect ${cell(r.tcpConnect, truth.connect)} | http connect ${cell(r.httpConnect, truth.connect)} | http processing ${cell(r.httpProcessing, truth.processing)}`,
            ...(r.trusted &&
            r.trusted.tcpConnect.length + r.trusted.httpConnect.length + r.trusted.httpProcessing.length <
              r.tcpConnect.length + r.httpConnect.length + r.httpProcessing.length
              ? [
                  `${''.padEnd(18)}without the runs marked disturbed: tcp connect ${cell(r.trusted.tcpConnect, truth.connect)} | http connect ${cell(r.trusted.httpConnect, truth.connect)} | http processing ${cell(r.trusted.httpProcessing, truth.processing)}`,
                ]
              : []),
            ...(r.alongside && r.alongside.connect.length > 0
              ? [
                  `${''.padEnd(18)}vs the witness alongside (${r.alongside.connect.length} rounds in the same window: connect median ${fmtMs(quantile(r.alongside.connect, 0.5))} p99 ${fmtMs(quantile(r.alongside.connect, 0.99))}, first byte median ${fmtMs(quantile(r.alongside.processing, 0.5))}), median error: tcp connect ${medErr(r.tcpConnect, r.alongside.connect)} | http connect ${medErr(r.httpConnect, r.alongside.connect)} | http processing ${medErr(r.httpProcessing, r.alongside.processing)}`,
                ]
              : []),
            `${''.padEnd(18)}${r.notes}; ${uptime().replace(/^.*load average/, 'load average')}`,
          );
        }
      }
      for (const [key, rs] of pooled) {
        const all = pool(rs);
        if (setup.rounds > 1) {
          rep.line(
            `${c.name.padEnd(12)} ${key.slice(c.name.length + 1).padEnd(4)} pooled over ${rs.length} rounds: tcp connect ${cell(all.tcpConnect, truth.connect)} | http connect ${cell(all.httpConnect, truth.connect)} | http processing ${cell(all.httpProcessing, truth.processing)}`,
          );
          const trusted = rs.every((r) => r.trusted) ? rs.map((r) => r.trusted!) : undefined;
          if (trusted)
            rep.line(
              `${''.padEnd(18)}pooled, without the runs marked disturbed: tcp connect ${cell(
                trusted.flatMap((t) => t.tcpConnect),
                truth.connect,
              )} | http connect ${cell(
                trusted.flatMap((t) => t.httpConnect),
                truth.connect,
              )} | http processing ${cell(
                trusted.flatMap((t) => t.httpProcessing),
                truth.processing,
              )}`,
            );
        }
        if (all.tcpConnect.length > 0) {
          rep.fig(`${key}_tcp_connect_median_err_ms`, (quantile(all.tcpConnect, 0.5) - truth.connect) * 1000);
          rep.fig(`${key}_tcp_connect_p99_err_ms`, (quantile(all.tcpConnect, 0.99) - truth.connect) * 1000);
        }
        if (all.httpConnect.length > 0) {
          rep.fig(`${key}_http_connect_median_err_ms`, (quantile(all.httpConnect, 0.5) - truth.connect) * 1000);
          rep.fig(`${key}_http_connect_p99_err_ms`, (quantile(all.httpConnect, 0.99) - truth.connect) * 1000);
        }
        if (all.httpProcessing.length > 0) {
          rep.fig(`${key}_http_processing_median_err_ms`, (quantile(all.httpProcessing, 0.5) - truth.processing) * 1000);
          rep.fig(`${key}_http_processing_p99_err_ms`, (quantile(all.httpProcessing, 0.99) - truth.processing) * 1000);
        }
        if (all.alongside.connect.length > 0) {
          const w = quantile(all.alongside.connect, 0.5);
          rep.fig(`${key}_witness_alongside_connect_ms`, w * 1000);
          if (all.tcpConnect.length > 0) rep.fig(`${key}_tcp_connect_median_err_alongside_ms`, (quantile(all.tcpConnect, 0.5) - w) * 1000);
          if (all.httpConnect.length > 0) rep.fig(`${key}_http_connect_median_err_alongside_ms`, (quantile(all.httpConnect, 0.5) - w) * 1000);
        }
      }
    }
  } finally {
    await delay?.remove().catch(() => undefined);
    peer?.kill('SIGKILL');
    await bg?.stop();
    await destroyNetnsLink(link);
  }
  return rep;
}
