// The single-probe parts: tcp (one connect probe, vakt vs blackbox_exporter, interleaved) and dns
// (one query to a local unbound: dig, vakt, blackbox_exporter and bare node:dgram, interleaved).
// Both run vakt's probe in this process through the real Runner. Method: bench/RESULTS.md.
import { execFile, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { parseConfig, type CheckConfig } from '../config/loader.js';
import { Limiter, Runner } from '../agent/runner.js';
import { startUnbound } from '../test/system/helpers.js';
import { BBE_MISSING, DNS_NAME, Report, SMOKE, dir, fmtMs, quantile, startBbe, tcpListener, which } from './lib.js';

const log = pino({ level: 'silent' });
const execFileP = promisify(execFile);

/** The duration of one tcp connect probe, vakt vs blackbox_exporter, interleaved. */
export async function benchTcp(): Promise<Report> {
  const rep = new Report();
  const N = SMOKE ? 40 : 400;
  const peer = await tcpListener();
  const bbe = await startBbe();
  try {
    const check = parseConfig(`checks:\n  - { name: b, kind: tcp, target: "127.0.0.1:${peer.port}", timeout: 5s }\n`, join(dir, 'b.yaml'))
      .checks[0] as CheckConfig;
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
    rep.line(`tcp connect probe to a loopback listener, ${N} interleaved runs each`);
    rep.line(
      `vakt:              median ${fmtMs(rep.fig('vakt_median_s', quantile(vakt, 0.5)))}  p90 ${fmtMs(rep.fig('vakt_p90_s', quantile(vakt, 0.9)))}  (${vakt.length} ok)`,
    );
    if (peerTimes.length > 0) {
      rep.line(
        `blackbox_exporter: median ${fmtMs(rep.fig('bbe_median_s', quantile(peerTimes, 0.5)))}  p90 ${fmtMs(rep.fig('bbe_p90_s', quantile(peerTimes, 0.9)))}  (${peerTimes.length} ok)`,
      );
      rep.line(
        `ratio vakt/bbe:    median ${rep.fig('ratio_median', quantile(vakt, 0.5) / quantile(peerTimes, 0.5)).toFixed(2)}  p90 ${(quantile(vakt, 0.9) / quantile(peerTimes, 0.9)).toFixed(2)}`,
      );
    } else rep.line(BBE_MISSING);
  } finally {
    await peer.stop();
    await bbe?.stop();
  }
  return rep;
}

/**
 * One DNS query (A cosmic.region.test over UDP) against one local unbound answering from
 * local-data, measured by dig, by vakt's dns probe (through the runner) and by blackbox_exporter's
 * dns prober, interleaved (the order rotates each round). Compared are the tools' own figures for
 * the query itself: dig's "Query time" in microseconds (`dig -u`, one dig process per query, as a
 * person runs it), vakt's `phases.request` and blackbox_exporter's
 * `probe_dns_duration_seconds{phase="request"}`. A bare node:dgram exchange in the same rotation
 * shows where vakt's figure goes. Method and caveats: bench/RESULTS.md.
 */
export async function benchDns(): Promise<Report> {
  const rep = new Report();
  if (!which('unbound') || !which('dig')) return rep.skip('unbound or dig missing (apt-get install unbound dnsutils)');
  const N = Number(process.env.BENCH_DNS_QUERIES ?? (SMOKE ? 30 : 500));
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
    const wire = dnsPacket.encode({
      type: 'query',
      id: 4711,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: 'A', name: DNS_NAME, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    });
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

    const versions = `unbound ${spawnSync('unbound', ['-V'])
      .stdout.toString()
      .split('\n')[0]
      ?.replace(/^Version /, '')}, ${spawnSync('dig', ['-v']).stderr.toString().trim()}`;
    const row = (label: string, xs: number[]) =>
      `${label.padEnd(40)} median ${fmtMs(quantile(xs, 0.5))}  p10 ${fmtMs(quantile(xs, 0.1))}  p90 ${fmtMs(quantile(xs, 0.9))}  (${xs.length} ok)`;
    rep.line(`dns A ${DNS_NAME} over UDP to one unbound on ${ub.target} (local-data), ${N} interleaved rounds (${versions})`);
    rep.line(row('dig -u, one process per query:', digT), row('vakt dns probe, phases.request:', vaktT));
    rep.fig('dig_median_s', quantile(digT, 0.5));
    rep.fig('vakt_median_s', quantile(vaktT, 0.5));
    if (bbeT.length > 0) {
      rep.line(row('blackbox_exporter, request phase:', bbeT));
      rep.fig('bbe_median_s', quantile(bbeT, 0.5));
    } else rep.line(BBE_MISSING);
    rep.line(
      `${'bare node:dgram in this process:'.padEnd(40)} socket+bind median ${fmtMs(quantile(bare.bind, 0.5))}, send->reply ${fmtMs(quantile(bareT, 0.5))} (p90 ${fmtMs(quantile(bareT, 0.9))}), decode ${fmtMs(quantile(bare.decode, 0.5))}`,
    );
    const diff = quantile(vaktT, 0.5) - quantile(digT, 0.5);
    rep.line(`vakt - dig at the median:                ${diff >= 0 ? '+' : ''}${fmtMs(diff)} (goal: within 1 ms)`);
    if (bbeT.length > 0)
      rep.line(
        `ratio vakt/bbe:                          median ${rep.fig('ratio_median', quantile(vaktT, 0.5) / quantile(bbeT, 0.5)).toFixed(2)}  p90 ${(quantile(vaktT, 0.9) / quantile(bbeT, 0.9)).toFixed(2)}`,
      );
    return rep;
  } finally {
    await bbe?.stop();
    await ub.stop();
  }
}
