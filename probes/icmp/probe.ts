// The icmp probe: echo requests (ping), several per run, with the loss ratio and the round trip's
// min/median/max. Node has no ICMP sockets, so each run starts the system's `ping` (iputils-ping)
// with fixed arguments and a plain C locale, and reads its output, bounded. ping needs no
// privileges of the agent: it sends from an ICMP datagram socket where the host's
// net.ipv4.ping_group_range includes the agent's group (the Kubernetes manifests set that safe
// sysctl), and otherwise from a raw socket through its own file capability (cap_net_raw, as Debian
// installs it) where the container keeps NET_RAW. Where neither holds, the run fails with
// `icmp_unavailable` saying which to set (docs/configuration.md#icmp-options).
//
// The round trips are ping's own (taken from the kernel's receive timestamps), so the agent's
// event loop adds nothing to them. The run ends at its deadline: the requests that fit the budget
// are sent (at least one), and ping is killed when the deadline comes.
import { spawn } from 'node:child_process';
import { ProbeAbortError, resolveStep } from '../kit/net.js';
import { failed } from '../kit/step.js';
import type { ProbeContext, ProbeInfo, ProbeResult } from '../types.js';
import { PHASES, type IcmpOptions, type IcmpTarget } from './options.js';

/** The most of ping's output read (a run of 20 requests writes about 1.5 KiB); beyond it ping is killed. */
export const MAX_OUTPUT = 64 * 1024;
/** How long after the last request ping waits for a reply at least, when the budget allows. */
const MIN_WAIT_MS = 100;

/** What a run of ping said: the replies by sequence number, errors, and whether it could not run at all. */
export interface PingOutput {
  /** Round trip in seconds by icmp_seq, duplicates ignored. */
  replies: Map<number, number>;
  /** ICMP errors reported for requests ("Destination Host Unreachable", ...), the first few. */
  errors: string[];
  /** Requests ping said it sent (its summary), when it got that far. */
  transmitted?: number;
  /** ping itself failed: no permission, no route, bad argument (its first error line). */
  fatal?: string;
}

/** Parses ping's (iputils, C locale) output; bounded line by line, never throws. */
export function parsePingOutput(text: string): PingOutput {
  const out: PingOutput = { replies: new Map(), errors: [] };
  for (const raw of text.slice(0, MAX_OUTPUT).split('\n')) {
    const line = raw.slice(0, 512).trim();
    if (line === '') continue;
    const reply = /^\d+ bytes from \S+ icmp_seq=(\d{1,9}) (?:ident=\d+ )?ttl=\d{1,3} time=(\d{1,9}(?:\.\d{1,9})?) ms(?: \(DUP!\))?$/.exec(line);
    if (reply) {
      const seq = Number(reply[1]);
      if (!out.replies.has(seq)) out.replies.set(seq, Number(reply[2]) / 1000);
      continue;
    }
    const summary = /^(\d{1,9}) packets transmitted, (\d{1,9}) received/.exec(line);
    if (summary) {
      out.transmitted = Number(summary[1]);
      continue;
    }
    const error = /^From \S+ icmp_seq=\d{1,9} (.{1,120})$/.exec(line);
    if (error) {
      if (out.errors.length < 5) out.errors.push(error[1]!);
      continue;
    }
    if (/^ping: /.test(line) && out.fatal === undefined) out.fatal = line.slice(6, 206);
  }
  return out;
}

/** Why ping could not send at all, as a failure reason: a missing route is the network's; the rest is this host's setup. */
function fatalReason(fatal: string): 'unreachable' | 'icmp_unavailable' {
  return /unreachable/i.test(fatal) ? 'unreachable' : 'icmp_unavailable';
}

export const icmpProbe = {
  phases: PHASES,
  async run(ctx: ProbeContext<IcmpOptions, IcmpTarget>): Promise<ProbeResult> {
    const o = ctx.options;
    const phases: Record<string, number> = {};
    const values: NonNullable<ProbeResult['values']> = {};
    const info: ProbeInfo = {};
    const resolved = await resolveStep(ctx.target.host, o.ipFamily, ctx.budget.signal, { phases, values, info });
    if (failed(resolved)) return resolved.result;

    // As many requests as fit before the deadline with MIN_WAIT_MS for the last reply (at least one).
    const end = ctx.budget.end();
    const left = end - performance.now();
    const count = Math.max(1, Math.min(o.count, 1 + Math.floor((left - MIN_WAIT_MS) / o.interval)));
    const waitS = Math.max(0.001, (left - (count - 1) * o.interval) / 1000);
    const args = [
      '-n',
      `-${resolved.family}`,
      '-c',
      String(count),
      '-i',
      (o.interval / 1000).toFixed(3),
      '-W',
      waitS.toFixed(3),
      '-s',
      String(o.size),
      resolved.address,
    ];

    let ran: { text: string; spawnError?: Error };
    try {
      ran = await runPing(args, end, ctx.budget.signal);
    } catch (err) {
      if (err instanceof ProbeAbortError)
        return { ok: false, phases, values, info, failure: { phase: 'rtt', reason: 'timeout', message: 'the run ran out of time' } };
      throw err;
    }
    if (ran.spawnError) {
      const e = ran.spawnError as NodeJS.ErrnoException;
      const message =
        e.code === 'ENOENT' ? 'ping is not installed on the agent host (install iputils-ping)' : `ping could not be started: ${e.code ?? e.message}`;
      return { ok: false, phases, values, info, failure: { phase: 'rtt', reason: 'icmp_unavailable', message } };
    }
    const out = parsePingOutput(ran.text);
    if (out.replies.size === 0 && out.fatal !== undefined) {
      const reason = fatalReason(out.fatal);
      const message =
        reason === 'unreachable'
          ? `no route to ${resolved.address}: ${out.fatal}`
          : `the agent may not send ICMP echo requests here: ${out.fatal} (allow its group in net.ipv4.ping_group_range, or keep NET_RAW for ping; see the icmp docs)`;
      return { ok: false, phases, values, info, failure: { phase: 'rtt', reason, message } };
    }

    const sent = out.transmitted ?? count;
    const rtts = [...out.replies.values()].sort((a, b) => a - b);
    const received = Math.min(rtts.length, sent);
    const loss = sent === 0 ? 1 : (sent - received) / sent;
    values.samples = sent;
    values.samples_ok = received;
    values.samples_loss_ratio = loss;
    if (received === 0) {
      const unreachable = out.errors.length > 0;
      return {
        ok: false,
        phases,
        values,
        info,
        failure: unreachable
          ? { phase: 'rtt', reason: 'unreachable', message: `no echo reply to ${sent} request${sent === 1 ? '' : 's'}: ${out.errors[0]}` }
          : {
              phase: 'rtt',
              reason: 'timeout',
              message: `no echo reply to ${sent} request${sent === 1 ? '' : 's'} (the last waited for ${waitS.toFixed(1)} s)`,
            },
      };
    }
    const median = rtts.length % 2 === 1 ? rtts[(rtts.length - 1) / 2]! : (rtts[rtts.length / 2 - 1]! + rtts[rtts.length / 2]!) / 2;
    phases.rtt = median;
    values.icmp_rtt_min_seconds = rtts[0]!;
    values.icmp_rtt_median_seconds = median;
    values.icmp_rtt_max_seconds = rtts[rtts.length - 1]!;
    const lost = `${sent - received} of ${sent} echo requests unanswered (${Math.round(loss * 100)} %)`;
    if (loss > o.maxLoss)
      return { ok: false, phases, values, info, failure: { phase: 'rtt', reason: 'timeout', message: `${lost}, more than maxLoss ${o.maxLoss}` } };
    const result: ProbeResult = { ok: true, phases, values, info };
    if (received < sent) result.degraded = { reason: 'sample_loss', message: lost };
    else if (o.rttDegradedAbove !== undefined && median * 1000 > o.rttDegradedAbove)
      result.degraded = { reason: 'slow', message: `median round trip ${ms(median)} (limit ${ms(o.rttDegradedAbove / 1000)})` };
    return result;
  },
};

function ms(seconds: number): string {
  return seconds < 1 ? `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms` : `${seconds.toFixed(2)} s`;
}

/**
 * Runs ping and collects its output (stdout and stderr, at most MAX_OUTPUT bytes). ping is killed
 * at `end` (the run's deadline, performance clock) and when the run is aborted (then this
 * rejects with ProbeAbortError); a ping that could not be started resolves with its error.
 */
function runPing(args: string[], end: number, signal: AbortSignal): Promise<{ text: string; spawnError?: Error }> {
  if (signal.aborted) return Promise.reject(new ProbeAbortError('run ran out of time'));
  return new Promise((resolve, reject) => {
    const child = spawn('ping', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' } });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const collect = (d: Buffer) => {
      if (size >= MAX_OUTPUT) return;
      chunks.push(d.subarray(0, MAX_OUTPUT - size));
      size += d.length;
      if (size >= MAX_OUTPUT) child.kill('SIGKILL');
    };
    const onAbort = () => {
      child.kill('SIGKILL');
      finish(() => reject(new ProbeAbortError('run ran out of time')));
    };
    // At the deadline ping is stopped; what it printed until then is judged.
    const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(0, end - performance.now()));
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (err) => finish(() => resolve({ text: '', spawnError: err })));
    child.once('close', () => finish(() => resolve({ text: Buffer.concat(chunks).toString('latin1') })));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
