// scale: one agent with 10,000 mixed checks (7,000 tcp, 2,000 dns, 1,000 http) against loopback
// peers in their own processes, every 60 s, run as `vakt run` in a child process and scraped by a
// real Prometheus every 15 s. Then blackbox_exporter driven at the same rate and mix.
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
  fmtMs,
  freePort,
  histogramBound,
  httpPeer,
  lagQuantiles,
  lagSum,
  rssOf,
  scrape,
  sleep,
  slope,
  startAgent,
  threadsYaml,
  startBbe,
  startPrometheus,
  sumBy,
  sumMetric,
  tcpListener,
  uptime,
  which,
  type AgentChild,
  type ChildStats,
  type Scrape,
} from './lib.js';

export async function benchScale(): Promise<Report> {
  const rep = new Report();
  const total = Number(process.env.BENCH_CHECKS ?? (SMOKE ? 300 : 10_000));
  const INTERVAL_S = Number(process.env.BENCH_INTERVAL ?? (SMOKE ? 5 : 60));
  const DURATION_S = Number(process.env.BENCH_SECONDS ?? (SMOKE ? 10 : 120));
  const SCRAPE_S = SMOKE ? 2 : 15;
  const SAMPLE_S = SMOKE ? 2 : 10;

  const tcp = await tcpListener();
  const http = await httpPeer();
  let ub: UnboundInstance | undefined;
  if (which('unbound') && which('dig'))
    ub = await startUnbound({ server: ['local-zone: "region.test." static', `local-data: "${DNS_NAME}. 300 IN A 10.20.1.5"`] });
  const nDns = ub ? Math.round(total * 0.2) : 0;
  const nHttp = Math.round(total * 0.1);
  const nTcp = total - nDns - nHttp;
  const checks: string[] = [];
  for (let i = 0; i < nTcp; i++) checks.push(`  - { name: t${i}, kind: tcp, target: "127.0.0.1:${tcp.port}" }`);
  for (let i = 0; i < nDns; i++) checks.push(`  - { name: d${i}, kind: dns, target: "${ub!.target}", dns: { name: ${DNS_NAME}, type: A } }`);
  for (let i = 0; i < nHttp; i++) checks.push(`  - { name: h${i}, kind: http, target: "http://127.0.0.1:${http.port}/" }`);
  const threads = PROBE_THREADS[0];
  const yaml = `${threadsYaml(threads)}defaults: { interval: ${INTERVAL_S}s, timeout: 5s }\nchecks:\n${checks.join('\n')}\n`;

  rep.line(
    `${total} checks (${nTcp} tcp to a node listener, ${nDns} dns to unbound ${ub ? ub.target : '(missing: apt-get install unbound dnsutils; its share went to tcp)'}, ${nHttp} http to a node keep-alive server), every ${INTERVAL_S} s, ${DURATION_S} s after ready; agent defaults otherwise (${threads === undefined ? 'probe threads: the default, ' : `probeThreads ${threads}, `}concurrency 256, start spread 10 s, jitter 1 %, log level info to a file)`,
  );
  rep.line(`load before: ${uptime()}`);

  const port = await freePort();
  const prom = await startPrometheus(`127.0.0.1:${port}`, SCRAPE_S);
  if (!prom) rep.line('prometheus: not installed (apt-get install prometheus); no scraping by Prometheus, the bench still GETs /metrics');
  let agent: AgentChild | undefined;
  try {
    agent = await startAgent('scale', yaml, port);
    const pid = agent.pid;
    const cpu0 = cpuOf(pid);
    const s0 = await agent.stats(true);
    const t0 = performance.now();
    rep.line(
      `start-to-ready: ${rep.fig('start_to_ready_ms', agent.readyMs).toFixed(0)} ms (spawn of \`node vakt.js run\` until /readyz answered 200; node itself was up after ${s0.preloadAt.toFixed(0)} ms; CPU used by then ${cpu0.toFixed(2)} s)`,
    );
    if (!s0.hooked) rep.line('note: the scheduler hooks could not be wrapped; runs and lag come from /metrics only');

    const rss: [number, number][] = [];
    const scrapes: Scrape[] = [];
    const at = (s: number) => t0 + s * 1000;
    const getAt = [0.4, 0.7, 0.95].map((f) => at(Math.max(1, f * DURATION_S)));
    const startupEnd = DURATION_S >= INTERVAL_S + 10 ? at(INTERVAL_S) : undefined;
    let startup: { stats: ChildStats; cpu: number } | undefined;
    let nextSample = t0;
    for (;;) {
      const now = performance.now();
      if (now >= nextSample) {
        rss.push([(now - t0) / 60_000, rssOf(pid)]);
        nextSample += SAMPLE_S * 1000;
      }
      if (startupEnd !== undefined && startup === undefined && now >= startupEnd) startup = { cpu: cpuOf(pid), stats: await agent.stats(true) };
      if (getAt.length > 0 && now >= getAt[0]!) {
        getAt.shift();
        scrapes.push(await scrape(`${agent.url}/metrics`));
      }
      if (now >= at(DURATION_S)) break;
      await sleep(
        Math.max(
          1,
          Math.min(nextSample, getAt[0] ?? Infinity, startupEnd !== undefined && !startup ? startupEnd : Infinity, at(DURATION_S)) - performance.now(),
        ),
      );
    }
    const cpu1 = cpuOf(pid);
    const s1 = await agent.stats(true);
    const elapsed = (performance.now() - t0) / 1000;
    rss.push([elapsed / 60, rssOf(pid)]);
    const last = await scrape(`${agent.url}/metrics`);
    scrapes.push(last);
    const text = last.text;
    // After the window: a full collection in the agent says how much of its heap is alive.
    const live = await agent.stats(false, true);
    rep.line(`load at the end: ${uptime()}`);

    // Runs: the preload's count of runs started (fires); /metrics' runs_total counts finished ones.
    const runsDone = sumMetric(text, 'vakt_probe_runs_total');
    const fires = s0.hooked ? s1.fires - s0.fires : runsDone;
    const failed = sumMetric(text, 'vakt_probe_runs_total', /result="failed"/);
    const skipped = s1.hooked ? s1.skipped : sumMetric(text, 'vakt_probe_skipped_runs_total');
    const reasons = [...sumBy(text, 'vakt_probe_failures_total', 'reason')].filter(([, n]) => n > 0);
    rep.line(
      `runs: ${rep.fig('runs', fires)} started in ${elapsed.toFixed(1)} s (${(fires / elapsed).toFixed(1)}/s; vakt_probe_runs_total, read after the window and the final GET, counts ${runsDone} finished since start), skipped ${rep.fig('skipped', skipped)}, failed ${rep.fig('failed', failed)}${reasons.length ? ` (${reasons.map(([r, n]) => `${r} ${n}`).join(', ')})` : ''}`,
    );

    const showLag = (label: string, tally: [number, number][]) => {
      const q = lagQuantiles(tally);
      return `${label}: p50 ${fmtMs(q.p50, 0)}, p99 ${fmtMs(q.p99, 0)}, max ${fmtMs(q.max, 0)} over ${q.n} fires`;
    };
    if (s1.hooked) {
      const all = startup ? lagSum(startup.stats.lag, s1.lag) : s1.lag;
      const q = lagQuantiles(all);
      rep.fig('lag_p50_s', q.p50);
      rep.fig('lag_p99_s', q.p99);
      rep.fig('lag_max_s', q.max);
      rep.line(`scheduler lag (every fire's value, whole ms as the scheduler computes it): ${showLag('whole run', all)}`);
      if (startup)
        rep.line(
          `  ${showLag(`first interval (start spread and first runs, 0-${INTERVAL_S} s)`, startup.stats.lag)}; ${showLag(`after it (${INTERVAL_S}-${DURATION_S} s)`, s1.lag)}`,
        );
    }
    rep.line(
      `scheduler lag as exported (vakt_scheduler_lag_seconds, cumulative since start, upper bucket bounds): p50 <= ${histogramBound(text, 'vakt_scheduler_lag_seconds', 0.5)} s, p99 <= ${histogramBound(text, 'vakt_scheduler_lag_seconds', 0.99)} s`,
    );
    const eld = (e: ChildStats['eld']) => `p50 ${e.p50.toFixed(1)} ms, p99 ${e.p99.toFixed(1)} ms, max ${e.max.toFixed(1)} ms`;
    if (startup) rep.line(`event-loop delay beyond the 10 ms tick: first interval ${eld(startup.stats.eld)}; after it ${eld(s1.eld)}`);
    else rep.line(`event-loop delay beyond the 10 ms tick: ${eld(s1.eld)}`);
    rep.fig('eld_p99_ms', s1.eld.p99);

    const rssV = rss.map(([, v]) => v);
    rep.line(
      `RSS every ${SAMPLE_S} s (/proc/PID/status VmRSS): first ${rep.fig('rss_first_mib', rssV[0]!).toFixed(0)} MiB, last ${rep.fig('rss_last_mib', rssV.at(-1)!).toFixed(0)} MiB, max ${rep.fig('rss_max_mib', Math.max(...rssV)).toFixed(0)} MiB, slope ${rep.fig('rss_slope_mib_per_min', slope(rss)).toFixed(1)} MiB/min${startup ? `, slope after the first interval ${slope(rss.filter(([m]) => m * 60 >= INTERVAL_S)).toFixed(1)} MiB/min` : ''} (${rss.length} samples); at the end: heap used ${s1.heapUsed.toFixed(0)} of ${s1.heapTotal.toFixed(0)} MiB, external ${s1.external.toFixed(0)} MiB; alive after a full collection ${rep.fig('live_heap_mib', live.heapUsed).toFixed(0)} MiB (${((live.heapUsed * 1024) / total).toFixed(1)} KiB per check)`,
    );

    // The highest sample of each minute, to tell start-up from growth.
    const perMinute = new Map<number, number>();
    for (const [m, v] of rss) perMinute.set(Math.floor(m), Math.max(perMinute.get(Math.floor(m)) ?? 0, v));
    rep.line(`RSS, highest sample per minute since ready: ${[...perMinute].map(([m, v]) => `${m}: ${v.toFixed(0)}`).join(', ')} MiB`);

    const sizes = scrapes.map((s) => s.bytes);
    const times = scrapes.map((s) => s.seconds);
    rep.line(
      `/metrics: ${rep.fig('metrics_bytes', Buffer.byteLength(text))} bytes of text (${(Buffer.byteLength(text) / 1048576).toFixed(1)} MiB, ${text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length} samples) at the end; GET to last byte (Prometheus' headers, gzip accepted) ${times.map((t) => `${(t * 1000).toFixed(0)}`).join(', ')} ms (${sizes.map((b) => (b / 1048576).toFixed(2)).join(', ')} MiB on the wire)`,
    );
    rep.fig('metrics_get_max_s', Math.max(...times));
    if (prom) {
      const win = `${Math.ceil(elapsed + 30)}s`;
      const one = async (e: string) => (await prom.query(e)).get('');
      const last = await one('scrape_duration_seconds{job="vakt"}');
      const avg = await one(`avg_over_time(scrape_duration_seconds{job="vakt"}[${win}])`);
      const max = await one(`max_over_time(scrape_duration_seconds{job="vakt"}[${win}])`);
      const samples = await one('scrape_samples_scraped{job="vakt"}');
      const ups = await one(`sum_over_time(up{job="vakt"}[${win}])`);
      const n = await one(`count_over_time(up{job="vakt"}[${win}])`);
      if (last === undefined) rep.line('Prometheus: no scrape of the agent recorded yet');
      else {
        rep.line(
          `Prometheus (every ${SCRAPE_S} s): scrape_duration_seconds last ${fmtMs(last, 0)}, avg ${fmtMs(avg ?? NaN, 0)}, max ${fmtMs(max ?? NaN, 0)}; scrape_samples_scraped ${samples}; ${ups ?? 0} of ${n ?? 0} scrapes up`,
        );
        rep.fig('prom_scrape_max_s', max ?? NaN);
        rep.fig('prom_samples', samples ?? NaN);
      }
    }

    const cpu = cpu1 - cpu0;
    rep.line(
      `vakt CPU (/proc/PID/stat, ready to end, scrapes included): ${cpu.toFixed(2)} s = ${rep.fig('vakt_cpu_s_per_1000', (cpu / fires) * 1000).toFixed(3)} CPU-s per 1000 probes`,
    );
    if (startup && s0.hooked) {
      const steadyFires = s1.fires - startup.stats.fires;
      rep.line(
        `  first interval ${(((startup.cpu - cpu0) / (startup.stats.fires - s0.fires)) * 1000).toFixed(3)}, after it ${(((cpu1 - startup.cpu) / steadyFires) * 1000).toFixed(3)} CPU-s per 1000 probes`,
      );
    }
    await agent.stop();
    await prom?.stop();

    // blackbox_exporter at the same rate and mix, driven over HTTP as Prometheus would.
    const bbe = await startBbe();
    if (!bbe) rep.line(BBE_MISSING);
    else {
      const rate = total / INTERVAL_S;
      const items = [
        { path: `/probe?module=tcp_connect&target=127.0.0.1:${tcp.port}`, weight: nTcp },
        ...(nDns > 0 ? [{ path: `/probe?module=dns_a&target=${ub!.target}`, weight: nDns }] : []),
        { path: `/probe?module=http_2xx&target=${encodeURIComponent(`http://127.0.0.1:${http.port}/`)}`, weight: nHttp },
      ];
      const gen = new LoadGen(bbe.url, items, rate, 256);
      const W = SMOKE ? 4 : Math.min(DURATION_S, 60);
      gen.start();
      await sleep(SMOKE ? 1000 : 5000);
      const c0 = cpuOf(bbe.pid);
      const n0 = gen.ok + gen.failed;
      await sleep(W * 1000);
      const c1 = cpuOf(bbe.pid);
      const n1 = gen.ok + gen.failed;
      const bbeRss = rssOf(bbe.pid);
      await gen.stop();
      await bbe.stop();
      const per = ((c1 - c0) / (n1 - n0)) * 1000;
      rep.line(
        `blackbox_exporter, same mix at ${rate.toFixed(1)}/s for ${W} s after ${SMOKE ? 1 : 5} s of warm-up (open loop, cap 256 in flight): ${(c1 - c0).toFixed(2)} CPU-s for ${n1 - n0} probes = ${rep.fig('bbe_cpu_s_per_1000', per).toFixed(3)} CPU-s per 1000 probes; RSS ${bbeRss.toFixed(0)} MiB; failed ${gen.failed}, errors ${gen.errors}, dropped ${gen.dropped} of ${gen.sent + gen.dropped}`,
      );
      rep.line(
        `ratio vakt/bbe CPU per probe: ${rep.fig('ratio_cpu', ((cpu / fires) * 1000) / per).toFixed(2)} (vakt's includes its scheduling, metrics and ${scrapes.length} bench GETs plus Prometheus' scrapes of /metrics; bbe's includes serving one HTTP request per probe)`,
      );
      rep.line(`load after blackbox_exporter: ${uptime()}`);
    }
  } finally {
    await agent?.stop();
    await prom?.stop();
    await tcp.stop();
    await http.stop();
    await ub?.stop();
  }
  return rep;
}
