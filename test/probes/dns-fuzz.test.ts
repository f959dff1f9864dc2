// Fuzzing the dns probe's reply parsing: valid replies (many record types, with and without name
// compression), then mutated ones (bit flips, truncation at every length, random header counts,
// forged compression pointers with self/forward/mutual loops, 64 KiB buffers, random bytes with
// the right id). parseReply must return a reply, return undefined or throw DnsProtocolError, and
// what the probe does with a parsed reply (validation, text forms) must not throw; a few hundred
// cases then go through the real probe over UDP (and the TCP fallback). Seeded: a failure prints
// the seed; rerun with DNS_FUZZ_SEED=<seed> to reproduce it.
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { afterAll, describe, expect, it, onTestFailed } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { type DnsOptions } from '../../probes/dns/options.js';
import { DnsProtocolError, dnsProbe, judgeReply, parseReply, recordText, recordValue, type DnsReply } from '../../probes/dns/probe.js';
import type { FailureReason, ProbeResult } from '../../probes/types.js';
import { ALL_FAILURE_REASONS } from '../../probes/kinds.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { prng, type Rng } from '../helpers/prng.js';

const SEED = process.env.DNS_FUZZ_SEED !== undefined ? Number(process.env.DNS_FUZZ_SEED) : randomInt(2 ** 31);
const reproduce = `seed ${SEED} (rerun with DNS_FUZZ_SEED=${SEED})`;

interface Q {
  id: number;
  name: string;
  type: string;
}

const QTYPES = ['A', 'AAAA', 'CNAME', 'MX', 'SRV', 'TXT', 'PTR', 'NS', 'SOA', 'CAA', 'DS', 'DNSKEY'] as const;
const LABELS = ['cosmic', 'region', 'local', 'ns1', 'ns2', 'mail', 'dc1', '_ldap', '_tcp', 'x', 'a-b', 'Lab', 'l'.repeat(63)];

/** `label.name`, or `name` itself when the longer one would exceed a valid name's 253 characters. */
function under(label: string, name: string): string {
  const longer = `${label}.${name}`;
  return longer.length > 253 ? name : longer;
}

function randomName(r: Rng): string {
  if (r.chance(0.03)) return '.';
  const labels = Array.from({ length: 1 + r.int(4) }, () => r.pick(LABELS));
  while (labels.join('.').length > 253) labels.pop(); // a valid name (dns-packet encodes longer ones)
  return labels.join('.');
}

function rdata(r: Rng, type: string): unknown {
  switch (type) {
    case 'A':
      return `10.${r.int(256)}.${r.int(256)}.${r.int(256)}`;
    case 'AAAA':
      return `2001:db8::${r.int(65536).toString(16)}`;
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return randomName(r);
    case 'MX':
      return { preference: r.int(65536), exchange: randomName(r) };
    case 'SRV':
      return { priority: r.int(65536), weight: r.int(65536), port: r.int(65536), target: randomName(r) };
    case 'TXT':
      return Array.from({ length: 1 + r.int(3) }, () => r.bytes(r.int(40)).toString('latin1'));
    case 'SOA':
      return {
        mname: randomName(r),
        rname: randomName(r),
        serial: r.int(2 ** 32),
        refresh: r.int(2 ** 31),
        retry: r.int(2 ** 31),
        expire: r.int(2 ** 31),
        minimum: r.int(2 ** 31),
      };
    case 'CAA':
      return { flags: r.pick([0, 128]), tag: r.pick(['issue', 'issuewild', 'iodef']), value: r.pick(['letsencrypt.org', 'mailto:pki@region.local', '']) };
    case 'DS':
      return { keyTag: r.int(65536), algorithm: r.pick([8, 13, 15]), digestType: r.pick([1, 2]), digest: r.bytes(r.pick([20, 32])) };
    case 'DNSKEY':
      return { flags: r.pick([256, 257]), algorithm: r.pick([8, 13]), key: r.bytes(32 + r.int(64)) };
    default:
      return r.bytes(4);
  }
}

function record(r: Rng, name: string, type: string) {
  return { type, name, ttl: r.int(2 ** 31), class: 'IN', data: rdata(r, type) } as dnsPacket.Answer;
}

/** A valid reply to q, encoded by dns-packet (no compression). */
function validReply(r: Rng, q: Q): Buffer {
  const answers = Array.from({ length: r.int(7) }, () => record(r, r.chance(0.8) ? q.name : randomName(r), r.chance(0.7) ? q.type : r.pick(QTYPES)));
  const authorities = Array.from({ length: r.int(3) }, () => record(r, randomName(r), r.pick(['NS', 'SOA'])));
  const additionals: dnsPacket.Answer[] = Array.from({ length: r.int(3) }, () => record(r, randomName(r), r.pick(['A', 'AAAA'])));
  if (r.chance(0.6))
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      flags: r.chance(0.5) ? dnsPacket.DNSSEC_OK : 0,
      options: [],
    } as unknown as dnsPacket.Answer);
  const flags =
    dnsPacket.RECURSION_AVAILABLE |
    (r.chance(0.5) ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
    (r.chance(0.1) ? dnsPacket.TRUNCATED_RESPONSE : 0) |
    (r.chance(0.2) ? r.int(16) : 0);
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags,
    questions: [{ type: q.type as dnsPacket.RecordType, name: q.name, class: 'IN' }],
    answers,
    authorities,
    additionals,
  });
}

/** A valid reply with RFC 1035 name compression (dns-packet does not compress), for a few types. */
function compressedReply(r: Rng, q: Q): { buf: Buffer; names: string[] } {
  const out: number[] = [];
  const table = new Map<string, number>();
  const u16 = (v: number) => out.push((v >> 8) & 0xff, v & 0xff);
  const writeName = (name: string) => {
    const labels = name === '.' ? [] : name.split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.');
      const at = table.get(suffix);
      if (at !== undefined) return u16(0xc000 | at);
      if (out.length < 0x3fff) table.set(suffix, out.length);
      const label = Buffer.from(labels[i]!, 'latin1');
      out.push(label.length, ...label);
    }
    out.push(0);
  };
  const types = ['A', 'AAAA', 'CNAME', 'NS', 'PTR', 'MX'] as const;
  const count = 1 + r.int(6);
  u16(q.id);
  u16(0x8180);
  u16(1);
  u16(count);
  u16(0);
  u16(0);
  writeName(q.name);
  u16(dnsPacket_type(q.type));
  u16(1);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const type = r.chance(0.5) ? q.type : r.pick(types);
    const name = r.chance(0.6) ? q.name : under(r.pick(LABELS), q.name);
    names.push(name);
    writeName(name);
    u16(dnsPacket_type(type));
    u16(1);
    u16(0);
    u16(300);
    const lenAt = out.length;
    u16(0);
    const start = out.length;
    if (type === 'A') out.push(10, r.int(256), r.int(256), r.int(256));
    else if (type === 'AAAA') out.push(...r.bytes(16));
    else if (type === 'MX') {
      u16(r.int(100));
      writeName(under(r.pick(['mail', 'mx1']), q.name));
    } else if (type === 'CNAME' || type === 'NS' || type === 'PTR') writeName(under(r.pick(LABELS), q.name));
    else out.push(...r.bytes(4)); // the question's type when it is not one of ours: opaque rdata
    const len = out.length - start;
    out[lenAt] = len >> 8;
    out[lenAt + 1] = len & 0xff;
  }
  return { buf: Buffer.from(out), names };
}

const TYPE_NUM: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, DS: 43, DNSKEY: 48, CAA: 257 };
function dnsPacket_type(t: string): number {
  return TYPE_NUM[t] ?? 65280;
}

// --- mutators: each takes a valid reply and returns a hostile variant (the id kept mostly) ---

const withId = (b: Buffer, q: Q) => {
  if (b.length >= 2) b.writeUInt16BE(q.id, 0);
  return b;
};
const setQr = (b: Buffer, r: Rng) => {
  if (b.length >= 3 && r.chance(0.9)) b[2] = b[2]! | 0x80;
  return b;
};

type Mutator = (r: Rng, base: Buffer, q: Q) => Buffer;

const MUTATORS: Record<string, Mutator> = {
  bitflip(r, base, q) {
    const b = Buffer.from(base);
    for (let k = 1 + r.int(8); k > 0 && b.length > 2; k--) {
      const i = 2 + r.int(b.length - 2);
      b[i] = b[i]! ^ (1 << r.int(8));
    }
    return setQr(withId(b, q), r);
  },
  byte(r, base, q) {
    const b = Buffer.from(base);
    for (let k = 1 + r.int(4); k > 0 && b.length > 2; k--) b[2 + r.int(b.length - 2)] = r.pick([0, 0xff, 0xc0, 0x3f, 0x40, 0x80, r.int(256)]);
    return setQr(withId(b, q), r);
  },
  truncate(r, base) {
    return base.subarray(0, r.int(base.length));
  },
  counts(r, base, q) {
    const b = Buffer.from(base.length >= 12 ? base : Buffer.concat([base, Buffer.alloc(12)]));
    for (const at of [4, 6, 8, 10]) if (r.chance(0.6)) b.writeUInt16BE(r.pick([0, 1, 2, 3, 255, 256, 65535, r.int(65536)]), at);
    return withId(b, q);
  },
  recount(r, base, q) {
    // The same records split differently among the sections (the OPT lands in answer or authority).
    const b = Buffer.from(base);
    if (b.length < 12) return b;
    const total = b.readUInt16BE(6) + b.readUInt16BE(8) + b.readUInt16BE(10);
    const an = r.int(total + 1);
    const ns = r.int(total - an + 1);
    b.writeUInt16BE(an, 6);
    b.writeUInt16BE(ns, 8);
    b.writeUInt16BE(total - an - ns, 10);
    return withId(b, q);
  },
  pointer(r, base, _q) {
    const b = Buffer.from(base);
    if (b.length < 14) return b;
    const at = r.chance(0.4) ? 12 : 12 + r.int(b.length - 13);
    const kind = r.int(5);
    const target = kind === 0 ? at : kind === 1 ? at + 2 + r.int(64) : kind === 2 ? r.int(12) : kind === 3 ? r.int(0x4000) : r.int(at);
    b.writeUInt16BE(0xc000 | (target & 0x3fff), at);
    if (kind === 4 && target + 2 <= b.length) b.writeUInt16BE(0xc000 | at, target); // mutual loop
    return b;
  },
  label(r, base, q) {
    // A label length with the reserved 01/10 prefixes, or one running past the end.
    const b = Buffer.from(base);
    if (b.length > 12) b[12 + r.int(b.length - 12)] = r.pick([0x40 + r.int(64), 0x80 + r.int(64), 63, 0x3f]);
    return withId(b, q);
  },
  splice(r, base, q) {
    const other = validReply(r, q);
    return Buffer.concat([base.subarray(0, r.int(base.length + 1)), other.subarray(r.int(other.length + 1))]);
  },
  insertDelete(r, base, q) {
    const at = 12 + r.int(Math.max(1, base.length - 12));
    const b = r.chance(0.5)
      ? Buffer.concat([base.subarray(0, at), r.bytes(1 + r.int(8)), base.subarray(at)])
      : Buffer.concat([base.subarray(0, at), base.subarray(at + 1 + r.int(8))]);
    return withId(b, q);
  },
  random(r, _base, q) {
    return setQr(withId(r.bytes(r.chance(0.9) ? r.int(600) : r.int(4096)), q), r);
  },
  oversize(r, base, q) {
    const size = r.chance(0.5) ? 65535 : 65507;
    const kind = r.int(3);
    if (kind === 0) return Buffer.concat([base.subarray(0, 12), r.bytes(size - 12)]).subarray(0, size); // a header, then noise
    if (kind === 1) return Buffer.concat([base, Buffer.alloc(Math.max(0, size - base.length))]); // trailing zeroes
    return withId(setQr(r.bytes(size), r), q);
  },
};

/** A reply near 64 KiB: thousands of answers, each named by a pointer into a chain of pointers. */
function pointerChainReply(q: Q, chain: number): Buffer {
  const size = 65507;
  const b = Buffer.alloc(size);
  b.writeUInt16BE(q.id, 0);
  b.writeUInt16BE(0x8180, 2);
  let off = 12;
  const qname = dnsPacket.encode({ type: 'query', id: 0, questions: [{ type: q.type as dnsPacket.RecordType, name: q.name }] }).subarray(12);
  qname.copy(b, off);
  const nameAt = off;
  off += qname.length;
  // A carrier record whose opaque rdata holds the chain: pointer i -> pointer i-1 -> ... -> the question name.
  b[off] = 0;
  b.writeUInt16BE(65280, off + 1);
  b.writeUInt16BE(1, off + 3);
  b.writeUInt16BE(chain * 2, off + 9);
  off += 11;
  for (let i = 0; i < chain; i++, off += 2) b.writeUInt16BE(0xc000 | (i === 0 ? nameAt : off - 2), off);
  const last = off - 2;
  let n = 1;
  for (; off + 16 <= size; off += 16, n++) {
    b.writeUInt16BE(0xc000 | last, off);
    b.writeUInt16BE(1, off + 2);
    b.writeUInt16BE(1, off + 4);
    b.writeUInt32BE(60, off + 6);
    b.writeUInt16BE(4, off + 10);
  }
  b.writeUInt16BE(1, 4);
  b.writeUInt16BE(n, 6);
  return b;
}

// --- the oracle ---

/** Options whose validation touches every rule of every section. */
const JUDGE_OPTIONS: DnsOptions[] = [
  KIND_OPTIONS.dns.parse({ name: 'x' }),
  KIND_OPTIONS.dns.parse({
    name: 'x',
    expect: {
      rcodes: ['NOERROR', 'NXDOMAIN', 'SERVFAIL'],
      nodata: true,
      ...Object.fromEntries(
        ['answer', 'authority', 'additional'].map((s) => [
          s,
          { mustMatch: ['.'], mustNotMatch: ['^$'], allMatch: ['.', 'IN'], values: ['10.0.0.1'], exactValues: ['10.0.0.1'], minCount: 0, maxCount: 65535 },
        ]),
      ),
    },
  }),
];

type Outcome = 'reply' | 'ignored' | 'protocol';

/** Runs one input through parseReply and, for a parsed reply, through what the probe does next. */
function oracle(buf: Buffer, q: Q): { outcome: Outcome } | { bad: string } {
  let reply: DnsReply | undefined;
  try {
    reply = parseReply(buf, q);
  } catch (err) {
    if (err instanceof DnsProtocolError) return { outcome: 'protocol' };
    return { bad: `parseReply threw ${errText(err)}` };
  }
  if (reply === undefined) return { outcome: 'ignored' };
  if (typeof reply.rcode !== 'string' || !Array.isArray(reply.answers) || !Array.isArray(reply.authorities) || !Array.isArray(reply.additionals)) {
    return { bad: `parseReply returned a malformed reply: ${safeJson(reply)}` };
  }
  try {
    // As the probe sees them: the OPT pseudo-record of the additional section is skipped (an OPT
    // anywhere else is not).
    for (const rec of [...reply.answers, ...reply.authorities, ...reply.additionals.filter((a) => a.type !== 'OPT')]) {
      const v: unknown = recordValue(rec);
      if (typeof v !== 'string') return { bad: `recordValue of a ${rec.type} record is ${typeof v}, not a string` };
      if (typeof recordText(rec) !== 'string') return { bad: `recordText of a ${rec.type} record is not a string` };
    }
    for (const o of JUDGE_OPTIONS) judgeReply(reply, { ...o, name: q.name, type: q.type as DnsOptions['type'] });
  } catch (err) {
    return { bad: `validating a parsed reply threw ${errText(err)}` };
  }
  return { outcome: 'reply' };
}

function errText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : `non-Error ${String(err)}`;
}
function safeJson(x: unknown): string {
  try {
    return JSON.stringify(x).slice(0, 300);
  } catch {
    return String(x);
  }
}
const hex = (b: Buffer) => (b.length > 160 ? `${b.subarray(0, 160).toString('hex')}... (${b.length} bytes)` : b.toString('hex'));

describe('dns probe: fuzzing the reply parser', () => {
  it('10,000+ valid and mutated replies: a reply, undefined or DnsProtocolError, never anything else, quickly', () => {
    onTestFailed(() => console.error(`dns fuzz failed with ${reproduce}`));
    const r = prng(SEED);
    const bad: string[] = [];
    const tally: Record<Outcome, number> = { reply: 0, ignored: 0, protocol: 0 };
    const perMutator: Record<string, number> = {};
    let cases = 0;
    let slowest = { ms: 0, label: '' };
    const start = performance.now();
    const feed = (buf: Buffer, q: Q, label: string, must?: Outcome) => {
      cases++;
      const t0 = performance.now();
      const res = oracle(buf, q);
      const ms = performance.now() - t0;
      if (ms > slowest.ms) slowest = { ms, label };
      if ('bad' in res) {
        if (bad.length < 10) bad.push(`${label}: ${res.bad}; q=${JSON.stringify(q)} input=${hex(buf)}`);
        return;
      }
      tally[res.outcome]++;
      if (must !== undefined && res.outcome !== must && bad.length < 10)
        bad.push(`${label}: ${res.outcome}, expected ${must}; q=${JSON.stringify(q)} input=${hex(buf)}`);
    };
    const newQuery = (): Q => ({
      id: r.int(65536),
      name: r.chance(0.9) ? r.pick(['cosmic.region.local', 'region.local', '_ldap._tcp.region.local']) : randomName(r).replace(/^\.$/, 'x'),
      type: r.pick(QTYPES),
    });

    // 1. Valid replies, uncompressed and compressed: they must parse, with the names intact.
    const bases: { buf: Buffer; q: Q }[] = [];
    for (let i = 0; i < 1500; i++) {
      const q = newQuery();
      const buf = validReply(r, q);
      bases.push({ buf, q });
      feed(buf, q, `valid #${i}`, 'reply');
    }
    for (let i = 0; i < 1500; i++) {
      const q = { ...newQuery(), type: r.pick(['A', 'AAAA', 'CNAME', 'NS', 'PTR', 'MX']) };
      const { buf, names } = compressedReply(r, q);
      bases.push({ buf, q });
      feed(buf, q, `compressed #${i}`, 'reply');
      const decoded = parseReply(buf, q);
      const got = decoded?.answers.map((a) => a.name);
      if (JSON.stringify(got) !== JSON.stringify(names) && bad.length < 10)
        bad.push(`compressed #${i}: names ${JSON.stringify(got)}, expected ${JSON.stringify(names)}; input=${hex(buf)}`);
    }
    // 2. Truncation at every length, for some of them: shorter than a header is not a reply at
    // all; any other strict prefix of a valid reply lacks part of a record (protocol).
    for (let i = 0; i < 40; i++) {
      const { buf, q } = r.pick(bases);
      for (let len = 0; len < buf.length; len++) feed(buf.subarray(0, len), q, `truncated #${i} to ${len}`, len < 12 ? 'ignored' : 'protocol');
    }
    // 3. Random mutations of random bases.
    const names = Object.keys(MUTATORS);
    for (let i = 0; i < 12000; i++) {
      const { buf, q } = r.pick(bases);
      const m = r.pick(names);
      perMutator[m] = (perMutator[m] ?? 0) + 1;
      const times = m === 'oversize' ? 1 : 1 + (r.chance(0.3) ? r.int(3) : 0);
      let b = buf;
      for (let k = 0; k < times; k++) b = MUTATORS[m]!(r, b, q);
      feed(b, q, `mutation #${i} ${m}x${times}`);
    }
    // 4. Compression pointer loops at the question name, by hand.
    for (const q of [{ id: 0x1234, name: 'cosmic.region.local', type: 'A' }]) {
      const head = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
      feed(Buffer.concat([head, Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]), q, 'pointer to itself');
      feed(Buffer.concat([head, Buffer.from([0xc0, 0x0e, 0xc0, 0x0c, 0, 1, 0, 1])]), q, 'pointer forward, then back');
      feed(Buffer.concat([head, Buffer.from([0x01, 0x61, 0xc0, 0x0c, 0, 1, 0, 1])]), q, 'label then pointer to its own start');
      feed(Buffer.concat([head, Buffer.from([0xc0, 0x00, 0, 1, 0, 1])]), q, 'pointer into the header');
      feed(Buffer.concat([head, Buffer.from([0xc0])]), q, 'half a pointer');
      feed(pointerChainReply(q, 16000), q, 'thousands of answers named through a 16000-pointer chain');
      feed(pointerChainReply(q, 1), q, 'thousands of answers (64 KiB)');
    }

    const elapsed = performance.now() - start;
    const summary = `${reproduce}: ${cases} cases in ${elapsed.toFixed(0)} ms (slowest ${slowest.ms.toFixed(1)} ms: ${slowest.label}); ${JSON.stringify(tally)}`;
    expect(bad, summary).toEqual([]);
    expect(cases).toBeGreaterThanOrEqual(10_000);
    // The fuzzer reaches all three outcomes in numbers (it is not feeding only noise).
    expect(tally.reply, summary).toBeGreaterThan(3000);
    expect(tally.ignored, summary).toBeGreaterThan(500);
    expect(tally.protocol, summary).toBeGreaterThan(3000);
    // A guard against a case costing seconds (super-linear parsing), generous for a busy machine;
    // speed itself is measured by `npm run bench`, not here.
    expect(elapsed, summary).toBeLessThan(60_000);
  }, 90_000);
});

describe('dns probe: fuzzed replies through the real probe', () => {
  let s: TestDnsServer | undefined;
  afterAll(async () => {
    await s?.close();
  });

  it('a few hundred hostile replies over UDP (and TCP after TC): every run resolves with ok, protocol, timeout or a dns_* reason', async () => {
    onTestFailed(() => console.error(`dns fuzz (probe) failed with ${reproduce}`));
    const r = prng(SEED ^ 0x5eed);
    const N = 400;
    const cases = new Map<string, Buffer>();
    const plan: { name: string; type: string; options: Record<string, unknown>; label: string }[] = [];
    const names = Object.keys(MUTATORS);
    for (let i = 0; i < N; i++) {
      const q: Q = { id: 0, name: `c${i}.fuzz.region.local`, type: r.pick(QTYPES) };
      const base = r.chance(0.3) ? compressedReply(r, { ...q, type: r.pick(['A', 'CNAME', 'MX']) }).buf : validReply(r, q);
      const m = i < 40 ? 'none' : r.pick(names);
      const buf = m === 'none' ? base : MUTATORS[m]!(r, base, q);
      cases.set(q.name, buf.subarray(0, 65507)); // the most a UDP datagram carries
      const options: Record<string, unknown> = r.pick([
        {},
        JUDGE_OPTIONS_RAW,
        { transport: 'udp' },
        { expect: { nodata: true, rcodes: ['NOERROR', 'NXDOMAIN', 'FORMERR'] } },
      ]);
      plan.push({ name: q.name, type: q.type, options, label: `case #${i} ${m} input=${hex(buf)}` });
    }
    s = await startDnsServer((query) => {
      const buf = cases.get(query.name);
      if (!buf) return { drop: true };
      const b = Buffer.from(buf);
      if (b.length >= 2) b.writeUInt16BE(query.id, 0); // the query's id, so the probe has to look further
      return { raw: [b] };
    });
    const allowed = new Set<FailureReason>(['protocol', 'timeout', ...ALL_FAILURE_REASONS.filter((x) => x.startsWith('dns_'))]);
    const bad: string[] = [];
    const tally: Record<string, number> = {};
    for (let i = 0; i < plan.length; i += 50) {
      await Promise.all(
        plan.slice(i, i + 50).map(async (c) => {
          const opts = KIND_OPTIONS.dns.parse({ name: c.name, type: c.type, ...c.options });
          let res: ProbeResult;
          try {
            res = await dnsProbe.run({
              ...targetsOf('dns', `127.0.0.1:${s!.port}`),
              options: opts,
              ...budget(250),
              log: quietLog,
              secrets: {},
            });
          } catch (err) {
            bad.push(`${c.label}: the probe rejected: ${errText(err)}`);
            return;
          }
          const reason = res.failure?.reason;
          tally[reason ?? 'ok'] = (tally[reason ?? 'ok'] ?? 0) + 1;
          const fine = res.ok ? reason === undefined : reason !== undefined && (allowed.has(reason) || (reason === 'truncated' && opts.transport === 'udp'));
          if (!fine) bad.push(`${c.label}: ok=${res.ok} failure=${JSON.stringify(res.failure)}`);
        }),
      );
    }
    expect(bad.slice(0, 10), `${reproduce}; ${JSON.stringify(tally)}`).toEqual([]);
    expect(s.queries.length).toBeGreaterThanOrEqual(N);
    // The unmutated replies at least get through.
    expect(tally.ok ?? 0, JSON.stringify(tally)).toBeGreaterThan(0);
    expect(tally.protocol ?? 0, JSON.stringify(tally)).toBeGreaterThan(0);
  });
});

const JUDGE_OPTIONS_RAW = {
  expect: {
    rcodes: ['NOERROR', 'NXDOMAIN', 'SERVFAIL'],
    nodata: true,
    answer: { mustMatch: ['.'], mustNotMatch: ['^$'], allMatch: ['.'], minCount: 0 },
    authority: { mustNotMatch: ['^$'], allMatch: ['IN'], maxCount: 65535 },
    additional: { values: ['10.0.0.1'] },
  },
};
