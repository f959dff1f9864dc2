// The ntp probe: an SNTP client (RFC 4330, NTPv4 packet of RFC 5905). One or a few requests per
// run over UDP; the answer with the smallest round trip is judged: the offset between the
// server's clock and ours, the server's stratum, leap indicator and root distance, and a
// kiss-o'-death (stratum 0 with a kiss code such as RATE or DENY). A clock that drifts breaks
// Kerberos (every Active Directory login) at 5 minutes of skew, long before anything else
// notices. Only the first 48 bytes of a reply are read; a reply must echo our transmit
// timestamp (its origin), so a stale or forged datagram is ignored, not believed.
import { createSocket, type Socket } from 'node:dgram';
import { describeError, ProbeAbortError, raceAbort, reasonAfter, resolveStep, sleep } from '../kit/net.js';
import type { Endpoint } from '../kit/target.js';
import { failed } from '../kit/step.js';
import type { ProbeContext, ProbeInfo, ProbeResult } from '../types.js';
import { PHASES, type NtpOptions } from './options.js';

/** Seconds from the NTP era 0 (1900-01-01) to the Unix epoch. */
const NTP_UNIX_OFFSET = 2_208_988_800;
const PACKET = 48;
const NO_ANSWER = 'no answer from the NTP server before the deadline';

type Into = { phases: Record<string, number>; values: NonNullable<ProbeResult['values']>; info: ProbeInfo };

/** A run that failed in its request, with what it learnt so far. */
function requestFailed(into: Into, reason: string, message: string): ProbeResult {
  return { ok: false, ...into, failure: { phase: 'request', reason, message } };
}

/** The wall clock in milliseconds, with performance.now()'s sub-millisecond steps. */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A wall-clock time (ms) as a 64-bit NTP timestamp. */
export function ntpTimestamp(ms: number): Buffer {
  const b = Buffer.alloc(8);
  const seconds = Math.floor(ms / 1000);
  b.writeUInt32BE((seconds + NTP_UNIX_OFFSET) % 2 ** 32, 0);
  b.writeUInt32BE(Math.floor(((ms - seconds * 1000) / 1000) * 2 ** 32) >>> 0, 4);
  return b;
}

/** An NTP timestamp as wall-clock ms, in the era closest to `near` (ms); undefined when it is zero (not set). */
export function fromNtpTimestamp(b: Buffer, offset: number, near: number): number | undefined {
  const seconds = b.readUInt32BE(offset);
  const fraction = b.readUInt32BE(offset + 4);
  if (seconds === 0 && fraction === 0) return undefined;
  const era = Math.round((near / 1000 + NTP_UNIX_OFFSET - seconds) / 2 ** 32);
  return (seconds + era * 2 ** 32 - NTP_UNIX_OFFSET) * 1000 + (fraction / 2 ** 32) * 1000;
}

/** A server's answer, as read from the first 48 bytes. */
export interface NtpReply {
  leap: number;
  version: number;
  mode: number;
  stratum: number;
  /** log2 seconds. */
  precision: number;
  rootDelay: number;
  rootDispersion: number;
  refId: Buffer;
  origin: Buffer;
  receive: Buffer;
  transmit: Buffer;
}

export function parseReply(msg: Buffer): NtpReply | string {
  if (msg.length < PACKET) return `a reply of ${msg.length} bytes, expected at least ${PACKET}`;
  const first = msg.readUInt8(0);
  return {
    leap: first >> 6,
    version: (first >> 3) & 7,
    mode: first & 7,
    stratum: msg.readUInt8(1),
    precision: msg.readInt8(3),
    rootDelay: msg.readUInt32BE(4) / 65536,
    rootDispersion: msg.readUInt32BE(8) / 65536,
    refId: msg.subarray(12, 16),
    origin: msg.subarray(24, 32),
    receive: msg.subarray(32, 40),
    transmit: msg.subarray(40, 48),
  };
}

/** The reference id as people read it: a kiss code or a stratum-1 source (ASCII), else an IPv4 address (or a hash of an IPv6 one). */
export function refIdText(r: Pick<NtpReply, 'stratum' | 'refId'>): string {
  const ascii = r.refId.toString('latin1').replace(/\0+$/, '');
  if (r.stratum <= 1 && /^[\x20-\x7e]{1,4}$/.test(ascii)) return ascii;
  return [...r.refId].join('.');
}

interface Sample {
  reply: NtpReply;
  /** Offset of the server's clock from ours, and the round trip without the server's own time (seconds). */
  offset: number;
  delay: number;
  /** Seconds from sending the request to reading the answer. */
  request: number;
}

export const ntpProbe = {
  phases: PHASES,
  async run(ctx: ProbeContext<NtpOptions, Endpoint>): Promise<ProbeResult> {
    const o = ctx.options;
    const into: Into = { phases: {}, values: {}, info: {} };
    const { target } = ctx;
    const resolved = await resolveStep(target.host, o.ipFamily, ctx.budget.signal, into);
    if (failed(resolved)) return resolved.result;
    const { address, family } = resolved;
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    const samples: Sample[] = [];
    try {
      await raceAbort(
        new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          // Connected: only datagrams from the server's address and port arrive.
          socket.connect(target.port, address, () => {
            socket.removeListener('error', reject);
            resolve();
          });
        }),
        ctx.budget.signal,
      );
      const end = ctx.budget.end();
      for (let i = 0; i < o.samples; i++) {
        if (i > 0) {
          if (performance.now() + o.sampleSpacing >= end) break;
          await sleep(o.sampleSpacing, ctx.budget.signal);
        }
        const got = await exchange(socket, o.version, ctx.budget.signal, end);
        if (typeof got === 'string') {
          if (samples.length > 0) break;
          return requestFailed(into, 'protocol', got);
        }
        if (!got) break;
        samples.push(got);
        // A kiss-o'-death or an unsynchronised server will not answer differently a moment later.
        if (got.reply.stratum === 0 || got.reply.leap === 3) break;
      }
    } catch (err) {
      if (samples.length === 0) {
        const reason = reasonAfter(err, ctx.budget.signal);
        return requestFailed(into, reason, reason === 'timeout' ? NO_ANSWER : describeError(err));
      }
    } finally {
      socket.close();
    }
    if (samples.length === 0) return requestFailed(into, 'timeout', NO_ANSWER);
    return judge(samples, o, into);
  },
};

/** One request and its answer; undefined when none came before `end` (ms, performance clock); a string when the answer is malformed. */
async function exchange(socket: Socket, version: 3 | 4, signal: AbortSignal, end: number): Promise<Sample | string | undefined> {
  const request = Buffer.alloc(PACKET);
  request.writeUInt8((0 << 6) | (version << 3) | 3, 0); // no leap warning, version, mode 3 (client)
  const t1 = wallNow();
  const p1 = performance.now();
  // The transmit timestamp is also our nonce: the server must send it back as its origin.
  const sent = ntpTimestamp(t1);
  sent.copy(request, 40);
  return new Promise((resolve, reject) => {
    const finish = (v: Sample | string | undefined, err?: Error) => {
      clearTimeout(timer);
      socket.removeListener('message', onMessage);
      socket.removeListener('error', onError);
      signal.removeEventListener('abort', onAbort);
      if (err !== undefined) reject(err);
      else resolve(v);
    };
    const onMessage = (msg: Buffer) => {
      const t4 = wallNow();
      const p4 = performance.now();
      const r = parseReply(msg);
      if (typeof r === 'string') return finish(r);
      if (!r.origin.equals(sent)) return; // stale (an earlier request's) or forged: not ours
      if (r.mode !== 4) return finish(`a reply in mode ${r.mode}, expected 4 (server)`);
      if (r.stratum === 0 || r.leap === 3) return finish({ reply: r, offset: 0, delay: 0, request: (p4 - p1) / 1000 });
      const t2 = fromNtpTimestamp(r.receive, 0, t1);
      const t3 = fromNtpTimestamp(r.transmit, 0, t1);
      if (t2 === undefined || t3 === undefined) return finish('a reply without receive or transmit timestamp');
      const offset = (t2 - t1 + (t3 - t4)) / 2 / 1000;
      const delay = Math.max(0, (t4 - t1 - (t3 - t2)) / 1000);
      finish({ reply: r, offset, delay, request: (p4 - p1) / 1000 });
    };
    const onError = (err: Error) => finish(undefined, err);
    const onAbort = () => finish(undefined, new ProbeAbortError('run ran out of time'));
    const timer = setTimeout(() => finish(undefined), Math.max(0, end - performance.now()));
    socket.on('message', onMessage);
    socket.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.send(request, (err) => {
      if (err) finish(undefined, err);
    });
  });
}

function judge(samples: Sample[], o: NtpOptions, into: Into): ProbeResult {
  const { phases, values, info } = into;
  const failed = (reason: string, message: string) => requestFailed(into, reason, message);
  const best = samples.reduce((a, b) => (b.delay < a.delay ? b : a));
  const r = best.reply;
  phases.request = best.request;
  info.ntpRefId = refIdText(r);
  values.ntp_stratum = r.stratum;
  values.ntp_leap = r.leap;
  if (r.stratum === 0) {
    const code = r.refId.toString('latin1').replace(/\0+$/, '');
    // INIT and STEP say "not synchronised yet"; the others refuse us.
    if (/^[\x20-\x7e]{1,4}$/.test(code) && code !== 'INIT' && code !== 'STEP') {
      return failed('ntp_kiss_of_death', `the server sent a kiss-o'-death: ${code}${KISS_CODES[code] ? ` (${KISS_CODES[code]})` : ''}`);
    }
  }
  if (r.leap === 3 || r.stratum === 0 || r.stratum >= 16) {
    return failed('ntp_unsynchronised', `the server's clock is not synchronised (leap indicator ${r.leap}, stratum ${r.stratum})`);
  }
  if (r.stratum > o.maxStratum) {
    return failed('ntp_unsynchronised', `the server is at stratum ${r.stratum}, above maxStratum ${o.maxStratum}`);
  }
  const rootDistance = r.rootDelay / 2 + r.rootDispersion;
  values.ntp_offset_seconds = best.offset;
  values.ntp_rtt_seconds = best.delay;
  values.ntp_root_distance_seconds = rootDistance;
  const off = Math.abs(best.offset) * 1000;
  const side = best.offset > 0 ? 'ahead of' : 'behind';
  if (off > o.maxOffset) {
    return failed(
      'clock_skew',
      `the server's clock is ${span(off)} ${side} ours (limit ${span(o.maxOffset)}); Kerberos (Active Directory) logins fail at 5 minutes`,
    );
  }
  const result: ProbeResult = { ok: true, phases, values, info };
  if (off > o.offsetDegradedAbove)
    result.degraded = { reason: 'clock_offset', message: `the server's clock is ${span(off)} ${side} ours (limit ${span(o.offsetDegradedAbove)})` };
  else if (rootDistance * 1000 > o.maxRootDistance) {
    result.degraded = {
      reason: 'clock_offset',
      message: `the server's own time is uncertain by ${span(rootDistance * 1000)} (root distance; limit ${span(o.maxRootDistance)})`,
    };
  }
  return result;
}

/** RFC 5905 7.4 kiss codes a client meets. */
const KISS_CODES: Readonly<Record<string, string>> = {
  RATE: 'asked too often: rate limited',
  DENY: 'access denied',
  RSTR: 'access restricted',
  NKEY: 'no such key',
  AUTH: 'authentication failed',
  CRYP: 'cryptographic authentication failed',
  INIT: 'not yet synchronised',
  STEP: 'the clock was stepped',
};

function span(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(2)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}
