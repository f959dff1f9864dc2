// The dns probe: asks each configured resolver directly over UDP or TCP (dns-packet), never
// through the OS resolver (except in `target: system` mode, which times getaddrinfo on purpose),
// validates rcode and answers, and across several resolvers checks quorum, agreement and SOA
// serials. The Region Kronoberg story: see the internal DNS fail within one interval, and say
// precisely what is wrong with which resolver.
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import { PHASES, type DnsOptions, type DnsSectionExpect, type DnsServer } from './options.js';
import { classifyError, describeError, now, ProbeAbortError, raceAbort, resolveHost } from '../kit/net.js';
import type { Budget } from '../kit/budget.js';
import type { Endpoint } from '../kit/target.js';
import type { FailureReason, Probe, ProbeContext, ProbeFailure, ProbeResult, ReplyRecord, TargetResult } from '../types.js';

/** Largest DNS message over TCP (the 2-byte length prefix). */
const MAX_TCP_MESSAGE = 65535;
/** Records of a reply carried in the result (`records`), and the longest text of each field: a reply of 100 addresses or a 64 KiB TXT stays small. */
export const MAX_REPLY_RECORDS = 16;
const MAX_RECORD_TEXT = 256;

/** The parts of a decoded reply the probe reads (dns-packet's types omit rcode and flags). */
export interface DnsReply {
  id: number;
  type: string;
  rcode: string;
  flag_tc: boolean;
  questions: { name: string; type: string; class?: string }[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

export interface DnsRecord {
  name: string;
  type: string;
  class?: string;
  ttl?: number;
  data?: unknown;
}

interface Query {
  id: number;
  name: string;
  type: string;
}

/** One target's outcome plus what the check-level judgement needs. */
interface TargetOutcome extends TargetResult {
  /** Sorted answer values of an accepted reply (for the consistency check). */
  answerValues?: string[];
  serial?: number;
}

export const dnsProbe: Probe<DnsOptions, DnsServer> = {
  phases: PHASES,
  async run(ctx: ProbeContext<DnsOptions, DnsServer>): Promise<ProbeResult> {
    // Each target's query ends a little before the run's deadline, so that one resolver that
    // does not answer still leaves time to report the others.
    const endAt = ctx.budget.end();
    const outcomes = await Promise.all(ctx.targets.map((t) => queryTarget(t, ctx.options, ctx.budget, endAt)));
    if (outcomes.length === 1) {
      const [one] = outcomes as [TargetOutcome];
      return {
        ok: one.ok,
        phases: one.phases,
        ...(one.failure ? { failure: one.failure } : {}),
        ...(one.values ? { values: one.values } : {}),
        ...(one.info ? { info: one.info } : {}),
        ...(one.records ? { records: one.records } : {}),
      };
    }
    return judgeTargets(outcomes, ctx.options);
  },
};

async function queryTarget(target: DnsServer, o: DnsOptions, run: Budget, endAt: number): Promise<TargetOutcome> {
  const query = run.part('query ran out of time', endAt);
  const start = now();
  const out: TargetOutcome = { target: target.text, ok: false, durationSeconds: 0, phases: {} };
  try {
    if (target.system) await systemQuery(out, o, query.signal);
    else await directQuery(out, target, o, query.signal);
  } catch (err) {
    // Bugs in this file surface as an internal failure of this target, not of the agent.
    out.failure = { phase: 'request', reason: 'internal', message: describeError(err) };
  } finally {
    query.done();
  }
  out.durationSeconds = now() - start;
  out.ok = out.failure === undefined;
  return out;
}

/** getaddrinfo, as every other program on the host resolves names (resolv.conf, nsswitch). */
async function systemQuery(out: TargetOutcome, o: DnsOptions, signal: AbortSignal): Promise<void> {
  out.info = { dnsTransport: 'system' };
  const start = now();
  try {
    const family = o.type === 'AAAA' ? 6 : 4;
    const addrs = await raceAbort(lookup(o.name, { all: true, family }), signal);
    out.phases.resolve = now() - start;
    const records: DnsRecord[] = addrs.map((a) => ({ name: o.name, type: family === 6 ? 'AAAA' : 'A', class: 'IN', ttl: 0, data: a.address }));
    out.values = { dns_query_succeeded: 1, dns_answer_rrs: records.length };
    out.records = replyRecords({ answers: records, authorities: [], additionals: [] }).map(({ ttl: _unknown, ...r }) => r);
    const failure = checkSection('answer', records, o.expect.answer);
    if (failure) {
      out.failure = failure;
      return;
    }
    out.answerValues = records.map(recordValue).sort();
  } catch (err) {
    if (!(err instanceof ProbeAbortError)) out.phases.resolve = now() - start;
    const code = (err as { code?: unknown }).code;
    // getaddrinfo's answers, read as the rcodes they stand for. EAI_AGAIN covers both SERVFAIL
    // and "no resolver in resolv.conf answered".
    const rcode = code === 'ENOTFOUND' || code === 'EAI_NONAME' ? 'NXDOMAIN' : code === 'EAI_AGAIN' ? 'SERVFAIL' : code === 'ENODATA' ? 'NOERROR' : undefined;
    out.values = { dns_query_succeeded: rcode === undefined ? 0 : 1 };
    if (rcode !== undefined) out.info = { ...out.info, dnsRcode: rcode };
    const accepted = rcode === 'NOERROR' ? o.expect.nodata : rcode !== undefined && (o.expect.rcodes as readonly string[]).includes(rcode);
    if (accepted) return;
    const reason: FailureReason =
      rcode === 'NXDOMAIN' ? 'dns_nxdomain' : rcode === 'NOERROR' ? 'dns_nodata' : rcode === 'SERVFAIL' ? 'dns_servfail' : classifyError(err);
    out.failure = { phase: 'resolve', reason, message: `getaddrinfo ${o.name}: ${describeError(err)}` };
  }
}

async function directQuery(out: TargetOutcome, hp: Endpoint, o: DnsOptions, signal: AbortSignal): Promise<void> {
  let server: { address: string; family: 4 | 6 };
  try {
    const r = await resolveHost(hp.host, o.ipFamily, signal);
    server = r;
    if (r.seconds !== undefined) out.phases.resolve = r.seconds;
  } catch (err) {
    out.failure = { phase: 'resolve', reason: classifyError(err), message: `resolving resolver ${hp.host}: ${describeError(err)}` };
    return;
  }
  const q: Query = { id: randomInt(65536), name: queryName(o), type: o.type };
  const wire = encodeQuery(q, o);
  let reply: DnsReply | undefined;
  let transport: 'udp' | 'tcp' = o.transport === 'tcp' ? 'tcp' : 'udp';
  const phase: TcpPhase = { now: 'request' };
  out.values = { ip_protocol: server.family, ...(out.phases.resolve !== undefined ? { dns_lookup_time_seconds: out.phases.resolve } : {}) };
  try {
    let udpSeconds = 0;
    if (transport === 'udp') {
      const u = await udpExchange(server.address, hp.port, server.family, wire, q, signal);
      reply = u.reply;
      udpSeconds = u.seconds;
      out.phases.request = udpSeconds;
      if (reply.flag_tc && o.transport === 'udp') {
        out.values = { ...out.values, ...sectionCounts(reply), dns_query_succeeded: 1 };
        out.info = { dnsRcode: reply.rcode, dnsTransport: 'udp' };
        out.records = replyRecords(reply);
        out.failure = { phase: 'request', reason: 'truncated', message: 'reply truncated (TC) and transport is udp only' };
        return;
      }
    }
    if (transport === 'tcp' || reply?.flag_tc === true) {
      // TCP from the start, or the fallback after a truncated UDP reply (with a fresh id; the
      // UDP exchange stays part of the request phase).
      if (transport === 'udp') {
        (out.values ??= {}).dns_tcp_fallback = 1;
        q.id = randomInt(65536);
      }
      transport = 'tcp';
      const t = await tcpExchange(server.address, hp.port, server.family, encodeQuery(q, o), q, signal, phase);
      reply = t.reply;
      out.phases.connect = t.connectSeconds;
      out.phases.request = udpSeconds + t.requestSeconds;
    }
  } catch (err) {
    // A TCP connect that completed before the failure is still reported.
    if (phase.connectSeconds !== undefined) out.phases.connect = phase.connectSeconds;
    out.values = { ...out.values, dns_query_succeeded: 0 };
    out.info = { dnsTransport: transport };
    const reason = err instanceof DnsProtocolError ? 'protocol' : classifyError(err);
    out.failure = { phase: phase.now, reason, message: `${transport} ${describeError(err)}` };
    return;
  }
  if (!reply) throw new Error('no reply and no error');
  out.info = { dnsRcode: reply.rcode, dnsTransport: transport };
  out.values = { ...out.values, ...sectionCounts(reply), dns_query_succeeded: 1 };
  out.records = replyRecords(reply);
  const serial = reply.answers.find((a) => a.type === 'SOA')?.data as { serial?: unknown } | undefined;
  if (typeof serial?.serial === 'number') {
    out.serial = serial.serial;
    out.values.dns_serial = serial.serial;
  }
  const failure = judgeReply(reply, o);
  if (failure) out.failure = failure;
  // For consistency, SOA records are compared without their serial when serials are judged by
  // maxSerialLag (a secondary that is one transfer behind is lag, not disagreement).
  else
    out.answerValues = reply.answers
      .map((r) => (r.type === 'SOA' && o.maxSerialLag !== undefined ? recordValue({ ...r, data: { ...(r.data as object), serial: 0 } }) : recordValue(r)))
      .sort();
}

interface TcpPhase {
  now: 'connect' | 'request';
  connectSeconds?: number;
}

function queryName(o: DnsOptions): string {
  return o.type === 'PTR' && isIP(o.name) !== 0 ? reverseName(o.name) : o.name.replace(/\.$/, '');
}

/** 10.1.2.3 -> 3.2.1.10.in-addr.arpa; 2001:db8::1 -> 1.0.0....8.b.d.0.1.0.0.2.ip6.arpa */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = groups(tail);
  const full = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t].map((g) => g.padStart(4, '0')).join('');
  return `${[...full].reverse().join('.')}.ip6.arpa`;
}

function encodeQuery(q: Query, o: DnsOptions): Buffer {
  const packet = {
    type: 'query' as const,
    id: q.id,
    flags: o.recursionDesired ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ type: q.type as dnsPacket.RecordType, name: q.name, class: 'IN' as const }],
    additionals:
      o.ednsPayloadSize > 0
        ? [
            {
              type: 'OPT' as const,
              name: '.',
              udpPayloadSize: o.ednsPayloadSize,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: o.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
              flag_do: o.dnssecOk,
              options: [],
            },
          ]
        : [],
  };
  return dnsPacket.encode(packet);
}

export class DnsProtocolError extends Error {
  override readonly name = 'DnsProtocolError';
}

/**
 * Decodes a reply for query `q`. Returns undefined for a datagram that is not an answer to it
 * (too short, other id, not a response, other question: ignored, as a spoofed packet would be),
 * and throws DnsProtocolError when it is ours but malformed. Never throws anything else.
 */
export function parseReply(buf: Buffer, q: Query): DnsReply | undefined {
  if (buf.length < 12 || buf.readUInt16BE(0) !== q.id) return undefined;
  if (((buf[2] ?? 0) & 0x80) === 0) return undefined; // QR=0: a query, not a reply
  let decoded: DnsReply;
  try {
    decoded = dnsPacket.decode(buf) as unknown as DnsReply;
  } catch (err) {
    throw new DnsProtocolError(`malformed reply (${err instanceof Error ? err.message : 'undecodable'})`);
  }
  if (!recordsFit(buf)) throw new DnsProtocolError(`malformed reply (a record runs past the end of the ${buf.length}-byte message)`);
  const question = decoded.questions[0];
  // A reply without a question section is allowed (some servers omit it on errors); one with a
  // different question is not for us.
  if (question && (question.name.toLowerCase().replace(/\.$/, '') !== q.name.toLowerCase() || question.type !== q.type)) return undefined;
  if (typeof decoded.rcode !== 'string') throw new DnsProtocolError('reply without a response code');
  return decoded;
}

/**
 * Whether every question and record the header counts lies within the message. dns-packet does
 * not check that a record's data fits: a datagram cut inside the last record decodes anyway (an
 * A record "10.20.undefined.undefined", a DS with a short digest). Called after a decode that
 * succeeded, so names are well-formed; pointers are skipped, not followed.
 */
function recordsFit(buf: Buffer): boolean {
  let off = 12;
  const skipName = (): boolean => {
    for (;;) {
      if (off >= buf.length) return false;
      const len = buf[off] as number;
      if (len === 0) {
        off += 1;
        return true;
      }
      if ((len & 0xc0) === 0xc0) {
        off += 2;
        return off <= buf.length;
      }
      off += 1 + len;
    }
  };
  for (let i = buf.readUInt16BE(4); i > 0; i--) {
    if (!skipName()) return false;
    off += 4;
  }
  for (let i = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10); i > 0; i--) {
    if (!skipName() || off + 10 > buf.length) return false;
    off += 10 + buf.readUInt16BE(off + 8);
  }
  return off <= buf.length;
}

/** One UDP exchange; `seconds` runs from the send to the arrival of the accepted reply (as dig times it). */
function udpExchange(address: string, port: number, family: 4 | 6, wire: Buffer, q: Query, signal: AbortSignal): Promise<{ reply: DnsReply; seconds: number }> {
  return new Promise((resolve, reject) => {
    let sentAt = now();
    if (signal.aborted) return reject(new ProbeAbortError('aborted'));
    // A fresh socket per query: the OS picks a random source port.
    const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
    const done = (err: Error | undefined, reply?: DnsReply) => {
      signal.removeEventListener('abort', onAbort);
      sock.removeAllListeners('message');
      sock.on('error', () => undefined);
      try {
        sock.close();
      } catch {
        // already closed
      }
      if (err) reject(err);
      else resolve({ reply: reply as DnsReply, seconds: receivedAt - sentAt });
    };
    let receivedAt = 0;
    const onAbort = () => done(new ProbeAbortError('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    sock.on('error', (err) => done(err));
    sock.on('message', (msg, rinfo) => {
      receivedAt = now();
      // Only the resolver we asked, from the port we asked; everything else is ignored.
      if (!sameAddress(rinfo.address, address) || rinfo.port !== port) return;
      try {
        const reply = parseReply(msg, q);
        if (reply) done(undefined, reply);
      } catch (err) {
        done(err as Error);
      }
    });
    sock.bind(0, () => {
      sentAt = now();
      sock.send(wire, port, address, (err) => {
        if (err) done(err);
      });
    });
  });
}

function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase() || a === `::ffff:${b}`;
}

function tcpExchange(
  address: string,
  port: number,
  family: 4 | 6,
  wire: Buffer,
  q: Query,
  signal: AbortSignal,
  phase: TcpPhase,
): Promise<{ reply: DnsReply; connectSeconds: number; requestSeconds: number }> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new ProbeAbortError('aborted'));
    phase.now = 'connect';
    const start = now();
    let connectSeconds = 0;
    const socket: Socket = netConnect({ host: address, port, family, noDelay: true });
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (err: Error | undefined, reply?: DnsReply) => {
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('data');
      socket.removeAllListeners('end');
      socket.on('error', () => undefined);
      socket.destroy();
      if (err) reject(err);
      else resolve({ reply: reply as DnsReply, connectSeconds, requestSeconds: now() - start - connectSeconds });
    };
    const onAbort = () => done(new ProbeAbortError('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => done(err));
    socket.once('connect', () => {
      connectSeconds = now() - start;
      phase.connectSeconds = connectSeconds;
      phase.now = 'request';
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(wire.length);
      socket.write(Buffer.concat([prefix, wire]));
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes > MAX_TCP_MESSAGE + 2) return done(new DnsProtocolError('reply longer than the largest DNS message'));
      const buf = chunks.length === 1 ? chunk : Buffer.concat(chunks, bytes);
      if (buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < len + 2) return;
      try {
        const reply = parseReply(buf.subarray(2, len + 2), q);
        if (reply) done(undefined, reply);
        else done(new DnsProtocolError('reply over TCP does not answer the query (id or question differ)'));
      } catch (err) {
        done(err as Error);
      }
    });
    socket.once('end', () => done(new DnsProtocolError(`connection closed after ${bytes} bytes, before a complete reply`)));
  });
}

function sectionCounts(r: DnsReply): { dns_answer_rrs: number; dns_authority_rrs: number; dns_additional_rrs: number } {
  return {
    dns_answer_rrs: r.answers.length,
    dns_authority_rrs: r.authorities.length,
    // The OPT pseudo-record is not counted (blackbox_exporter does not count it either).
    dns_additional_rrs: r.additionals.filter((a) => a.type !== 'OPT').length,
  };
}

/** The first MAX_REPLY_RECORDS records of a reply, section by section (no OPT), each field cut to MAX_RECORD_TEXT. */
function replyRecords(r: Pick<DnsReply, 'answers' | 'authorities' | 'additionals'>): ReplyRecord[] {
  const cut = (s: string) => (s.length > MAX_RECORD_TEXT ? `${s.slice(0, MAX_RECORD_TEXT - 3)}...` : s);
  const sections = [
    ['answer', r.answers],
    ['authority', r.authorities],
    ['additional', r.additionals.filter((a) => a.type !== 'OPT')],
  ] as const;
  return sections
    .flatMap(([section, records]) => records.slice(0, MAX_REPLY_RECORDS).map((rec) => ({ section, rec })))
    .slice(0, MAX_REPLY_RECORDS)
    .map(({ section, rec }) => ({
      section,
      name: cut(fqdn(rec.name)),
      ...(typeof rec.ttl === 'number' ? { ttl: rec.ttl } : {}),
      ...(typeof rec.class === 'string' ? { class: cut(rec.class) } : {}),
      type: cut(String(rec.type)),
      data: cut(recordValue(rec)),
    }));
}

const RCODE_REASON: Record<string, FailureReason> = { NXDOMAIN: 'dns_nxdomain', SERVFAIL: 'dns_servfail', REFUSED: 'dns_refused' };

/** The validation of one reply; undefined when it is as expected. */
export function judgeReply(r: DnsReply, o: DnsOptions): ProbeFailure | undefined {
  const e = o.expect;
  if (!(e.rcodes as readonly string[]).includes(r.rcode)) {
    return { phase: 'request', reason: RCODE_REASON[r.rcode] ?? 'dns_rcode', message: `rcode ${r.rcode}, expected ${e.rcodes.join(' or ')}` };
  }
  if (r.rcode === 'NOERROR' && r.answers.length === 0 && !e.nodata) {
    return { phase: 'request', reason: 'dns_nodata', message: `no ${o.type} record for ${queryName(o)} (NOERROR, empty answer)` };
  }
  return (
    checkSection('answer', r.answers, e.answer) ??
    checkSection('authority', r.authorities, e.authority) ??
    checkSection(
      'additional',
      r.additionals.filter((a) => a.type !== 'OPT'),
      e.additional,
    )
  );
}

function checkSection(section: string, records: DnsRecord[], x: DnsSectionExpect | undefined): ProbeFailure | undefined {
  if (!x) return undefined;
  const fail = (message: string): ProbeFailure => ({ phase: 'request', reason: 'dns_mismatch', message: `${section}: ${message}` });
  const texts = records.map(recordText);
  const values = records.map(recordValue);
  if (x.minCount !== undefined && records.length < x.minCount) return fail(`${records.length} records, expected at least ${x.minCount}`);
  if (x.maxCount !== undefined && records.length > x.maxCount) return fail(`${records.length} records, expected at most ${x.maxCount}`);
  for (const re of x.mustMatch ?? []) {
    if (!texts.some((t) => new RegExp(re).test(t))) return fail(`no record matches /${re}/ (got ${summary(values)})`);
  }
  for (const re of x.mustNotMatch ?? []) {
    const hit = texts.find((t) => new RegExp(re).test(t));
    if (hit !== undefined) return fail(`record "${hit}" matches /${re}/`);
  }
  if (x.allMatch && x.allMatch.length > 0) {
    const res = x.allMatch.map((re) => new RegExp(re));
    const odd = texts.find((t) => !res.some((re) => re.test(t)));
    if (odd !== undefined) return fail(`record "${odd}" matches none of ${x.allMatch.map((re) => `/${re}/`).join(', ')}`);
  }
  const have = new Set(values.map(normalizeValue));
  const missing = (x.values ?? []).filter((v) => !have.has(normalizeValue(v)));
  if (missing.length > 0) return fail(`missing ${missing.join(', ')} (got ${summary(values)})`);
  if (x.exactValues) {
    const want = new Set(x.exactValues.map(normalizeValue));
    if (want.size !== have.size || [...want].some((v) => !have.has(v))) return fail(`got ${summary(values)}, expected exactly ${x.exactValues.join(', ')}`);
  }
  return undefined;
}

function summary(values: string[]): string {
  if (values.length === 0) return 'none';
  const shown = values.slice(0, 5).join(', ');
  return values.length > 5 ? `${shown}, ... (${values.length})` : shown;
}

function normalizeValue(v: string): string {
  return v.toLowerCase().replace(/\.$/, '').replace(/\.\s/g, ' ');
}

const fqdn = (n: unknown) => (typeof n === 'string' ? (n === '.' || n.endsWith('.') ? n : `${n}.`) : String(n));

/** A record's data in presentation form, as dig prints it. */
export function recordValue(r: DnsRecord): string {
  const d = r.data as Record<string, unknown> | string | Buffer | unknown[] | undefined;
  switch (r.type) {
    case 'A':
    case 'AAAA':
      return typeof d === 'string' ? d : '';
    case 'CNAME':
    case 'NS':
    case 'PTR':
    case 'DNAME':
      return fqdn(d);
    case 'MX': {
      const m = d as { preference?: number; exchange?: string };
      return `${m.preference ?? 0} ${fqdn(m.exchange)}`;
    }
    case 'SRV': {
      const s = d as { priority?: number; weight?: number; port?: number; target?: string };
      return `${s.priority ?? 0} ${s.weight ?? 0} ${s.port ?? 0} ${fqdn(s.target)}`;
    }
    case 'SOA': {
      const s = d as { mname?: string; rname?: string; serial?: number; refresh?: number; retry?: number; expire?: number; minimum?: number };
      return `${fqdn(s.mname)} ${fqdn(s.rname)} ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`;
    }
    case 'TXT': {
      const parts = Array.isArray(d) ? d : [d];
      return parts.map((p) => txtString(Buffer.isBuffer(p) ? p : Buffer.from(typeof p === 'string' ? p : '', 'utf8'))).join(' ');
    }
    default:
      // The replacer looks at the holder's raw value: JSON.stringify calls Buffer#toJSON before
      // the replacer sees it. A record without data (an OPT outside the additional section)
      // stringifies to undefined: it is "".
      return Buffer.isBuffer(d)
        ? d.toString('hex')
        : (JSON.stringify(d, function (this: Record<string, unknown>, k: string, v: unknown) {
            const raw = this[k];
            return Buffer.isBuffer(raw) ? raw.toString('hex') : v;
          }) ?? '');
  }
}

/** A TXT character-string as dig prints it: quoted, `"` and `\` escaped, other bytes as \DDD. */
function txtString(b: Buffer): string {
  let out = '"';
  for (const c of b) {
    if (c === 0x22 || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else if (c >= 0x20 && c <= 0x7e) out += String.fromCharCode(c);
    else out += `\\${String(c).padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** The whole record in presentation form: "cosmic.region.local. 300 IN A 10.20.1.5". */
export function recordText(r: DnsRecord): string {
  return `${fqdn(r.name)} ${r.ttl ?? 0} ${r.class ?? 'IN'} ${r.type} ${recordValue(r)}`;
}

/** RFC 1982: how far serial `s` is behind `newest` (0 when equal or ahead). */
export function serialLag(newest: number, s: number): number {
  const diff = (newest - s + 2 ** 32) % 2 ** 32;
  return diff < 2 ** 31 ? diff : 0;
}

/** RFC 1982 "greater than" for 32-bit serials. */
function serialGreater(a: number, b: number): boolean {
  return a !== b && ((a < b && b - a > 2 ** 31) || (a > b && a - b < 2 ** 31));
}

function judgeTargets(outcomes: TargetOutcome[], o: DnsOptions): ProbeResult {
  const targets: TargetResult[] = outcomes.map(({ answerValues: _a, serial: _s, ...t }) => t);
  const result: ProbeResult = { ok: false, phases: {}, targets };
  const ok = outcomes.filter((t) => t.ok);
  const need = o.quorum === 'all' ? outcomes.length : Math.min(o.quorum, outcomes.length);
  const failed = outcomes.filter((t) => !t.ok);
  const describe = (t: TargetOutcome) => `${t.target}: ${t.failure?.reason} (${t.failure?.message})`;

  if (o.maxSerialLag !== undefined) {
    const serials = outcomes.filter((t) => t.serial !== undefined) as (TargetOutcome & { serial: number })[];
    if (serials.length > 0) {
      const newest = serials.reduce((a, t) => (serialGreater(t.serial, a) ? t.serial : a), (serials[0] as { serial: number }).serial);
      for (const t of serials) (targets.find((x) => x.target === t.target)!.values ??= {}).dns_serial_lag = serialLag(newest, t.serial);
      const behind = serials.filter((t) => serialLag(newest, t.serial) > (o.maxSerialLag as number));
      if (behind.length > 0) {
        result.failure = {
          phase: 'request',
          reason: 'dns_serial_lag',
          message: `SOA serial behind by more than ${o.maxSerialLag}: ${behind.map((t) => `${t.target} has ${t.serial}, newest ${newest}`).join('; ')}`,
        };
        return result;
      }
    }
  }
  if (o.consistency) {
    const groups = new Map<string, string[]>();
    for (const t of ok) {
      const key = (t.answerValues ?? []).join(' ');
      groups.set(key, [...(groups.get(key) ?? []), t.target]);
    }
    if (groups.size > 1) {
      result.failure = {
        phase: 'request',
        reason: 'dns_inconsistent',
        message: `resolvers disagree: ${[...groups.entries()].map(([v, ts]) => `${ts.join(', ')} say ${v === '' ? 'nothing' : v}`).join('; ')}`,
      };
      return result;
    }
  }
  if (ok.length < need) {
    // The check fails with the most common reason among the resolvers that failed.
    const counts = new Map<FailureReason, number>();
    for (const t of failed) counts.set(t.failure!.reason, (counts.get(t.failure!.reason) ?? 0) + 1);
    const reason = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'internal';
    const first = failed.find((t) => t.failure!.reason === reason)!;
    result.failure = {
      phase: first.failure!.phase,
      reason,
      message: `${ok.length} of ${outcomes.length} resolvers answered as expected (need ${need}); ${failed.map(describe).join('; ')}`,
    };
    return result;
  }
  result.ok = true;
  if (failed.length > 0) {
    result.degraded = { reason: 'partial', message: `${failed.length} of ${outcomes.length} resolvers failed; ${failed.map(describe).join('; ')}` };
  }
  return result;
}
