// The tcp probe: reachability of host:port through a firewall path, optionally with a TLS
// handshake and a send/expect exchange, over one or several connection attempts per run.
// Several samples show loss and connect-time spread, the early signal of an overloaded firewall.
import type { Socket } from 'node:net';
import { PHASES, type TcpOptions } from './options.js';
import { classifyError, describeError, readUntil, resolveStep, sleep, writeAll } from '../kit/net.js';
import type { Budget } from '../kit/budget.js';
import type { Endpoint } from '../kit/target.js';
import { failed, Timeline, tlsFilesStep } from '../kit/step.js';
import { certExpiring, certFacts, connectSocket, handshake, loadTlsMaterial, type TlsMaterial } from '../kit/tls.js';
import type { Probe, ProbeContext, ProbeFailure, ProbeInfo, ProbeResult } from '../types.js';

type Phase = (typeof PHASES)[number];

interface Sample {
  ok: boolean;
  connected: boolean;
  phases: Partial<Record<Phase, number>>;
  failure?: ProbeFailure;
  regexFailed?: boolean;
  tls?: { info: ProbeInfo; earliestExpiry: number | undefined };
  bytesRead?: number;
}

export const tcpProbe: Probe<TcpOptions, Endpoint> = {
  phases: PHASES,
  async run(ctx: ProbeContext<TcpOptions, Endpoint>): Promise<ProbeResult> {
    const { options: o, target, budget } = ctx;
    const { signal } = budget;
    const phases: Record<string, number> = {};
    const values: NonNullable<ProbeResult['values']> = {};
    const info: ProbeInfo = {};
    const resolved = await resolveStep(target.host, o.ipFamily, signal, { phases, values, info });
    if (failed(resolved)) return resolved.result;
    const { address, family } = resolved;

    let tls: TlsMaterial | undefined;
    if (o.tls !== undefined) {
      const material = await tlsFilesStep({ phases, signal }, () => loadTlsMaterial(o.tls, target.host));
      if (failed(material)) return material.result;
      tls = material;
    }

    const connectTimeout = o.connectTimeout ?? Number.POSITIVE_INFINITY;
    // Attempts end a little before the runner's deadline, so a run in which some attempts stall
    // still reports its loss and its successful attempts instead of being cut off as a whole.
    const attemptsEnd = budget.end();
    const runs: Promise<Sample>[] = [];
    for (let i = 0; i < o.samples; i++) {
      if (i > 0) {
        if (performance.now() + o.sampleSpacing >= attemptsEnd) break;
        try {
          await sleep(o.sampleSpacing, signal);
        } catch {
          break;
        }
      }
      const end = Math.min(attemptsEnd, o.attemptTimeout !== undefined ? performance.now() + o.attemptTimeout : Number.POSITIVE_INFINITY);
      runs.push(runSample(address, target.port, family, o, tls, connectTimeout, budget, end));
    }
    const samples = await Promise.all(runs);
    // Samples never started because the run was cut short count as timed out.
    while (samples.length < o.samples) {
      samples.push({ ok: false, connected: false, phases: {}, failure: { phase: 'connect', reason: 'timeout', message: 'run timed out before this attempt' } });
    }
    const base: ProbeResult = { ok: false, phases, values };
    const result = o.expect === 'blocked' ? judgeBlocked(base, samples, target.port) : judgeReachable(base, samples, tls);
    if (info.resolvedAddress !== undefined) result.info = { ...result.info, resolvedAddress: info.resolvedAddress };
    return result;
  },
};

async function runSample(
  address: string,
  port: number,
  family: 4 | 6,
  o: TcpOptions,
  tls: TlsMaterial | undefined,
  connectTimeout: number,
  run: Budget,
  endAt: number,
): Promise<Sample> {
  const s: Sample = { ok: false, connected: false, phases: {} };
  let socket: Socket | undefined;
  const line = new Timeline(s.phases, 'connect');
  // An attempt that only connects ends by connectSocket's one timer (its connect timeout or the
  // attempt's end, the sooner); one that goes on after the connect has a signal of its own: the
  // run's, or the attempt's end, whichever comes first.
  const connectOnly = o.expect === 'blocked' || (!tls && o.send === undefined && o.receive === undefined);
  const attempt = connectOnly ? undefined : run.part('attempt ran out of time', endAt);
  const signal = (attempt ?? run).signal;
  try {
    const untilEnd = endAt - performance.now();
    const to = { address, port, family, localAddress: o.sourceAddress };
    let open = await (connectOnly && untilEnd < connectTimeout
      ? connectSocket(to, Math.max(0, untilEnd), signal, line, 'attempt ran out of time')
      : connectSocket(to, connectTimeout, signal, line));
    socket = open;
    s.connected = true;
    if (o.expect === 'blocked') return s;
    if (tls) {
      const plain = open;
      const secure = await line.time('tls', () => handshake(plain, tls, signal));
      open = socket = secure;
      s.tls = certFacts(secure);
    }
    const conn = open;
    if (o.send !== undefined) {
      const send = o.send;
      await line.time('send', () => writeAll(conn, send, signal));
    }
    if (o.receive !== undefined) {
      const receive = o.receive;
      const r = await line.time('expect', () => expectBytes(conn, new RegExp(receive), o.maxRead, signal));
      s.bytesRead = r.bytes;
      if (!r.matched) {
        s.regexFailed = true;
        s.failure = { phase: 'expect', reason: 'expect_mismatch', message: `no match for /${o.receive}/ in ${r.bytes} bytes (${r.why})` };
        return s;
      }
    }
    s.ok = true;
    return s;
  } catch (err) {
    s.failure = { phase: line.current, reason: classifyError(err), message: describeError(err) };
    return s;
  } finally {
    attempt?.done();
    socket?.destroy();
  }
}

/** Reads until the regex matches, the peer closes, or maxRead bytes arrived; never buffers more. */
function expectBytes(socket: Socket, re: RegExp, maxRead: number, signal: AbortSignal): Promise<{ matched: boolean; bytes: number; why: string }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  return readUntil<{ matched: boolean; bytes: number; why: string }>(
    socket,
    signal,
    (chunk) => {
      const part = chunk.subarray(0, maxRead - bytes);
      chunks.push(part);
      bytes += part.length;
      if (re.test(Buffer.concat(chunks, bytes).toString('utf8'))) return { matched: true, bytes, why: 'matched' };
      return bytes >= maxRead ? { matched: false, bytes, why: `read limit of ${maxRead} bytes reached` } : undefined;
    },
    () => ({ matched: false, bytes, why: 'peer closed the connection' }),
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function sampleValues(result: ProbeResult, samples: Sample[]): void {
  const ok = samples.filter((s) => s.ok).length;
  const connects = samples.map((s) => s.phases.connect).filter((x): x is number => x !== undefined);
  const v = result.values ?? (result.values = {});
  v.samples = samples.length;
  v.samples_ok = ok;
  v.samples_loss_ratio = (samples.length - ok) / samples.length;
  if (connects.length > 0) {
    v.connect_min_seconds = Math.min(...connects);
    v.connect_median_seconds = median(connects);
    v.connect_max_seconds = Math.max(...connects);
  }
}

/** Phase times of a run: the median over the samples in which that phase completed. */
function medianPhases(into: Record<string, number>, samples: Sample[]): void {
  for (const p of PHASES) {
    if (p === 'resolve') continue;
    const xs = samples.map((s) => s.phases[p]).filter((x): x is number => x !== undefined);
    if (xs.length > 0) into[p] = median(xs);
  }
}

function mostCommonFailure(samples: Sample[]): ProbeFailure {
  const counts = new Map<string, { n: number; f: ProbeFailure }>();
  for (const s of samples) {
    if (!s.failure) continue;
    const key = `${s.failure.phase}/${s.failure.reason}`;
    const c = counts.get(key);
    if (c) c.n++;
    else counts.set(key, { n: 1, f: s.failure });
  }
  let best: { n: number; f: ProbeFailure } | undefined;
  for (const c of counts.values()) if (!best || c.n > best.n) best = c;
  return best?.f ?? { phase: 'connect', reason: 'internal', message: 'no sample outcome' };
}

function judgeReachable(result: ProbeResult, samples: Sample[], tls: TlsMaterial | undefined): ProbeResult {
  medianPhases(result.phases, samples);
  if (samples.length > 1) sampleValues(result, samples);
  const values = result.values!;
  const okCount = samples.filter((s) => s.ok).length;
  // As in blackbox_exporter: 1 only when the run failed because the pattern did not match.
  if (samples.some((s) => s.bytesRead !== undefined)) values.failed_due_to_regex = okCount === 0 && samples.some((s) => s.regexFailed) ? 1 : 0;
  const withTls = samples.find((s) => s.tls);
  if (withTls?.tls) {
    result.info = withTls.tls.info;
    if (withTls.tls.earliestExpiry !== undefined) values.ssl_earliest_cert_expiry = withTls.tls.earliestExpiry;
  }
  if (okCount === 0) {
    const f = mostCommonFailure(samples);
    result.failure = samples.length > 1 ? { ...f, message: `${samples.length} of ${samples.length} attempts failed; ${f.message}` } : f;
    return result;
  }
  result.ok = true;
  if (okCount < samples.length) {
    const f = mostCommonFailure(samples);
    result.degraded = { reason: 'sample_loss', message: `${samples.length - okCount} of ${samples.length} attempts failed (${f.reason} in ${f.phase})` };
  } else if (tls && values.ssl_earliest_cert_expiry !== undefined) {
    const expiring = certExpiring(tls, values.ssl_earliest_cert_expiry);
    if (expiring) result.degraded = expiring;
  }
  return result;
}

function judgeBlocked(result: ProbeResult, samples: Sample[], port: number): ProbeResult {
  const opened = samples.filter((s) => s.connected).length;
  if (opened > 0) {
    medianPhases(result.phases, samples);
    result.failure = {
      phase: 'connect',
      reason: 'policy_open',
      message: `port ${port} accepted ${opened} of ${samples.length} connections but must be blocked`,
    };
    return result;
  }
  const odd = samples.find((s) => s.failure && !['refused', 'timeout', 'unreachable', 'reset'].includes(s.failure.reason));
  if (odd?.failure) {
    result.failure = odd.failure;
    return result;
  }
  result.ok = true;
  return result;
}
