// The snmp probe: one SNMP GET (v2c with a community, or v3 with a USM user, authNoPriv or
// authPriv) of the configured OIDs, each judged against what it must be: a firewall cluster
// member's HA state, an interface's oper status, a temperature within a range. Built on net-snmp
// (its BER codec, USM and retransmits); this file owns the socket, the budget and what a reply
// means. The socket is connected to the agent, so datagrams from anyone else never reach the
// parser, and an ICMP port unreachable says `refused` at once. net-snmp parses a datagram (at most
// 64 KiB) in one linear pass; anything it throws while doing so fails the run (`protocol`)
// instead of escaping as an uncaught exception.
import { createSocket, type Socket, type SocketType } from 'node:dgram';
import type * as NetSnmpModule from 'net-snmp';
import type { Varbind } from 'net-snmp';
import { classifyError, describeError, now, resolveStep } from '../kit/net.js';
import { runRedactor, type Redactor } from '../kit/redact.js';
import { failed } from '../kit/step.js';
import type { Endpoint } from '../kit/target.js';
import type { ItemReading, ProbeContext, ProbeInfo, ProbeResult } from '../types.js';
import { PHASES, type OidSpec, type SnmpOptions } from './options.js';

type NetSnmp = typeof NetSnmpModule;
let library: Promise<NetSnmp> | undefined;

/** net-snmp, loaded at the first snmp run: an agent or a CLI without snmp checks never pays its start-up (about 0.1 s) or memory. */
function netSnmp(): Promise<NetSnmp> {
  // A CommonJS module: its exports object is the default export (the named ones are only what Node's lexer detects).
  return (library ??= import('net-snmp').then((m) => (m as NetSnmp & { default?: NetSnmp }).default ?? m));
}

/** SNMP's value types by BER tag (RFC 2578, RFC 3416). */
const TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'Boolean',
  2: 'Integer',
  3: 'BitString',
  4: 'OctetString',
  5: 'Null',
  6: 'OID',
  64: 'IpAddress',
  65: 'Counter',
  66: 'Gauge',
  67: 'TimeTicks',
  68: 'Opaque',
  70: 'Counter64',
};

/** Longest value quoted in a message; longest kept in the API (`items[].text`). */
const QUOTE = 64;
const KEEP = 256;

type Into = { phases: Record<string, number>; values: NonNullable<ProbeResult['values']>; info: ProbeInfo };

/** A varbind as net-snmp hands it over: the value's JavaScript form depends on its type. */
export interface RawVarbind {
  oid: string;
  type: number;
  value: unknown;
}

/** A value as the probe reads it: a number when the type is numeric, and its text. */
export interface ReadValue {
  /** The SNMP type's name (Integer, OctetString, ...). */
  type: string;
  number?: number;
  text: string;
}

/** SNMP's exception values (RFC 3416): the OID or instance does not exist, or the MIB view ended. */
const EXCEPTIONS: Readonly<Record<number, string>> = { 128: 'noSuchObject', 129: 'noSuchInstance', 130: 'endOfMibView' };

/** RFC 3416 error-status names. */
const ERROR_STATUS: Readonly<Record<number, string>> = {
  1: 'tooBig',
  2: 'noSuchName',
  3: 'badValue',
  4: 'readOnly',
  5: 'genErr',
  6: 'noAccess',
  7: 'wrongType',
  8: 'wrongLength',
  9: 'wrongEncoding',
  10: 'wrongValue',
  11: 'noCreation',
  12: 'inconsistentValue',
  13: 'resourceUnavailable',
  14: 'commitFailed',
  15: 'undoFailed',
  16: 'authorizationError',
  17: 'notWritable',
  18: 'inconsistentName',
};

/**
 * The USM report counters (RFC 3414 usmStats*) by the fixed message net-snmp gives each (its own
 * constants, not the agent's words): what we tell, and the bounded code of info.authCode.
 */
const USM_REPORTS: Readonly<Record<string, { says: string; code?: string }>> = {
  'Unsupported Security Level': { says: 'does not allow this security level for the user', code: 'inappropriate_auth' },
  'Not In Time Window': { says: 'says our message is outside its time window' },
  'Unknown User Name': { says: 'does not know the user', code: 'user_not_found' },
  'Unknown Engine ID': { says: 'does not know the engine ID we used' },
  'Wrong Digest (incorrect password, community or key)': { says: 'refused the digest: wrong authKey or authProtocol', code: 'invalid_credentials' },
  'Decryption Error': { says: 'could not decrypt our request: wrong privKey or privProtocol', code: 'invalid_credentials' },
};

/** Text of an octet string: as UTF-8 when it is printable text, else hex (0x...). */
function octets(b: Buffer): string {
  const text = b.toString('utf8');
  // eslint-disable-next-line no-control-regex
  if (!text.includes('\uFFFD') && !/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(text)) return text;
  return `0x${b.subarray(0, KEEP).toString('hex')}`;
}

/** An unsigned big-endian integer of up to 9 bytes (Counter64 with a sign byte) as a number (exact below 2^53). */
function unsigned(b: Buffer): number | undefined {
  if (b.length === 0 || b.length > 9) return undefined;
  let n = 0;
  for (const byte of b) n = n * 256 + byte;
  return n;
}

/** A varbind's value as the probe reads it; its text cut to KEEP characters. The kind's own parser of peer data (fuzzed). */
export function readValue(vb: RawVarbind): ReadValue {
  const type = TYPE_NAMES[vb.type] ?? `type ${vb.type}`;
  const v = vb.value;
  let out: ReadValue;
  if (typeof v === 'number' && Number.isFinite(v)) out = { type, number: v, text: String(v) };
  else if (typeof v === 'boolean') out = { type, number: v ? 1 : 0, text: String(v) };
  else if (Buffer.isBuffer(v)) {
    if (vb.type === 70) {
      const n = unsigned(v);
      out = n === undefined ? { type, text: `0x${v.subarray(0, KEEP).toString('hex')}` } : { type, number: n, text: String(n) };
    } else out = { type, text: vb.type === 4 ? octets(v) : `0x${v.subarray(0, KEEP).toString('hex')}` };
  } else if (typeof v === 'string') out = { type, text: v };
  else if (v === null || v === undefined) out = { type, text: 'null' };
  else out = { type, text: Object.prototype.toString.call(v) };
  if (out.text.length > KEEP) out.text = `${out.text.slice(0, KEEP)}…`;
  return out;
}

/** A value as messages quote it: cut to QUOTE characters, its name from `values` beside it. */
function shown(spec: OidSpec, v: ReadValue | number | string, redactor: Redactor): string {
  const text = typeof v === 'object' ? v.text : String(v);
  const cut = text.length > QUOTE ? `${text.slice(0, QUOTE)}…` : text;
  const name = spec.values?.[typeof v === 'object' ? (v.number !== undefined ? String(v.number) : '') : String(v)];
  const quoted = typeof v === 'object' && v.number === undefined ? `"${cut}"` : cut;
  return redactor.scrub(name !== undefined && name !== cut ? `${quoted} (${name})` : quoted);
}

/** Whether a read value is `expected` (an integer, a text, or a name from the OID's `values`). */
function matches(spec: OidSpec, v: ReadValue, expected: number | string): boolean {
  if (typeof expected === 'number') return v.number === expected || (v.number === undefined && v.text === String(expected));
  if (v.number !== undefined && spec.values?.[String(v.number)] === expected) return true;
  return v.text === expected;
}

/** What an OID's value must be, in words; undefined when it need only exist. */
function expectation(spec: OidSpec, redactor: Redactor): string | undefined {
  if (spec.equals !== undefined) return shown(spec, spec.equals, redactor);
  if (spec.oneOf !== undefined) return `one of ${spec.oneOf.map((e) => shown(spec, e, redactor)).join(', ')}`;
  if (spec.min !== undefined && spec.max !== undefined) return `${spec.min} to ${spec.max}`;
  if (spec.min !== undefined) return `at least ${spec.min}`;
  if (spec.max !== undefined) return `at most ${spec.max}`;
  return undefined;
}

/** Whether a value meets the OID's expectation. */
export function meets(spec: OidSpec, v: ReadValue): boolean {
  if (spec.equals !== undefined) return matches(spec, v, spec.equals);
  if (spec.oneOf !== undefined) return spec.oneOf.some((e) => matches(spec, v, e));
  if (spec.min !== undefined || spec.max !== undefined) {
    if (v.number === undefined) return false;
    return (spec.min === undefined || v.number >= spec.min) && (spec.max === undefined || v.number <= spec.max);
  }
  return true;
}

/** What the GET came back with: the varbinds, or why there are none. */
type Outcome = { varbinds: RawVarbind[] } | { error: unknown } | { parseError: unknown; escaped?: true };

/**
 * net-snmp keeps every key it localizes (per protocol, passphrase and engine ID) in a module-wide
 * cache that never shrinks: an agent that shows a new engine ID on every run (a hostile one, or
 * one that reboots without keeping its ID) would grow it for as long as the agent runs. Past this
 * many entries the cache is emptied after a run (a key costs a millisecond or two to derive again).
 */
export const KEY_CACHE_LIMIT = 256;

function boundKeyCache(snmp: NetSnmp): void {
  const holder = snmp.Authentication as unknown as { authToKeyCache: Record<string, unknown> };
  if (Object.keys(holder.authToKeyCache).length > KEY_CACHE_LIMIT) holder.authToKeyCache = {};
}

/** How a run of this kind ended before it could judge values. */
function failure(snmp: NetSnmp, err: unknown, o: SnmpOptions, attempts: number): { reason: string; message: string; authCode?: string } {
  // net-snmp's ResponseInvalidCode by name (its typings lack some).
  const INVALID = snmp.ResponseInvalidCode as unknown as Readonly<Record<string, number | undefined>>;
  const e = err as { name?: unknown; code?: unknown; status?: unknown; message?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : '';
  if (name === 'RequestTimedOutError') {
    const hint =
      o.version === '2c'
        ? ' (a wrong community gets no answer either: agents drop it without a word)'
        : o.privProtocol
          ? ' (a wrong privKey gets no answer either from some agents, snmpd among them)'
          : '';
    return { reason: 'timeout', message: `no answer from the SNMP agent to ${attempts} request${attempts === 1 ? '' : 's'}${hint}` };
  }
  if (name === 'RequestFailedError' && typeof e?.status === 'number') {
    const status = ERROR_STATUS[e.status] ?? `error-status ${e.status}`;
    // net-snmp names the OID the agent's error-index points at after the status; we name it by the config's name.
    const text = typeof e.message === 'string' ? e.message : '';
    const spec = o.oids.find((s) => text.endsWith(`: ${s.oid}`));
    const about = spec ? ` for ${spec.name} (${spec.oid})` : '';
    if (e.status === 2) return { reason: 'snmp_no_such', message: `the agent answered noSuchName${about}` };
    return { reason: 'snmp_error', message: `the agent answered ${status}${about}` };
  }
  if (name === 'ResponseInvalidError' && typeof e?.code === 'number') {
    const code = e.code;
    if (code === INVALID.EAuthFailure) {
      const report = typeof e.message === 'string' ? USM_REPORTS[e.message] : undefined;
      if (report) return { reason: 'auth', message: `the agent ${report.says} (a USM report)`, ...(report.code ? { authCode: report.code } : {}) };
      // A reply whose digest is not ours: the agent keys it differently (or it is not from the agent).
      return { reason: 'auth', message: "the agent's answer failed authentication: wrong authKey or authProtocol", authCode: 'invalid_credentials' };
    }
    if (code === INVALID.ECouldNotDecrypt)
      return { reason: 'auth', message: "could not decrypt the agent's answer: wrong privKey or privProtocol", authCode: 'invalid_credentials' };
    if (code === INVALID.ENotInTimeWindow) return { reason: 'auth', message: "the agent's answer is outside the USM time window" };
    const what = (snmp.ResponseInvalidCode as unknown as Record<number, string | undefined>)[code] ?? `code ${code}`;
    return { reason: 'protocol', message: `an answer net-snmp refused (${what})` };
  }
  return { reason: classifyError(err), message: describeError(err) };
}

export const snmpProbe = {
  phases: PHASES,
  async run(ctx: ProbeContext<SnmpOptions, Endpoint>): Promise<ProbeResult> {
    const o = ctx.options;
    const into: Into = { phases: {}, values: {}, info: {} };
    const { target, budget } = ctx;
    const redactor = runRedactor(ctx.secrets);
    const resolved = await resolveStep(target.host, o.ipFamily, budget.signal, into);
    if (failed(resolved)) return resolved.result;
    const requestFailed = (reason: string, message: string, items?: ItemReading[]): ProbeResult => ({
      ok: false,
      ...into,
      ...(items ? { items } : {}),
      failure: { phase: 'request', reason, message: redactor.scrub(message) },
    });
    const secret = (name: string | undefined) => (name === undefined ? undefined : ctx.secrets[name]);
    const community = o.version === '2c' ? secret(o.community) : undefined;
    const authKey = o.version === '3' ? secret(o.authKey) : undefined;
    const privKey = o.version === '3' ? secret(o.privKey) : undefined;
    if ((o.version === '2c' && community === undefined) || (o.version === '3' && (authKey === undefined || (o.privKey !== undefined && privKey === undefined))))
      return requestFailed('auth', "a credential's secret has no value");

    const snmp = await netSnmp();
    const part = budget.part('the SNMP request ran out of time');
    // Each exchange (v3: discovery, then the GET) may be sent retries + 1 times: each attempt waits its share of what is left.
    const exchanges = o.version === '3' ? 2 : 1;
    const attempts = o.retries + 1;
    // A little under the share, so net-snmp's own 'timed out' comes before the part's end.
    const attemptMs = Math.max(20, Math.floor((part.left() * 0.95) / (exchanges * attempts)));
    const family: SocketType = resolved.family === 6 ? 'udp6' : 'udp4';
    let socket: Socket | undefined;
    // net-snmp creates its socket through this: connected to the agent, sending without an address.
    const dgramModule = {
      createSocket(type: SocketType) {
        const s = createSocket(type);
        const send = s.send.bind(s) as (msg: Buffer, offset: number, length: number, cb?: (err: Error | null) => void) => void;
        Object.assign(s, {
          send: (msg: Buffer, offset: number, length: number, _port: unknown, _address: unknown, cb?: (err: Error | null) => void) =>
            send(msg, offset, length, cb),
        });
        socket = s;
        return s;
      },
    };
    const common = { port: target.port, retries: o.retries, timeout: attemptMs, backoff: 1, transport: family, dgramModule };
    const session =
      o.version === '2c'
        ? snmp.createSession(resolved.address, community, { ...common, version: snmp.Version2c })
        : snmp.createV3Session(
            resolved.address,
            {
              name: o.user,
              level: o.privProtocol ? snmp.SecurityLevel.authPriv : snmp.SecurityLevel.authNoPriv,
              authProtocol: snmp.AuthProtocols[o.authProtocol],
              authKey: authKey ?? '',
              ...(o.privProtocol ? { privProtocol: snmp.PrivProtocols[o.privProtocol], privKey: privKey ?? '' } : {}),
            },
            { ...common, context: o.context },
          );
    // Closed on every path, and waited for: the run ends with its socket gone.
    const close = async () => {
      const s = socket;
      if (!s) return;
      const gone = new Promise<void>((resolve) => s.once('close', () => resolve()));
      try {
        session.close();
      } catch {
        return; // already closed
      }
      await gone;
    };
    const start = now();
    let outcome: Outcome;
    try {
      outcome = await new Promise<Outcome>((resolve) => {
        let settled = false;
        const settle = (v: Outcome) => {
          if (settled) return;
          settled = true;
          part.signal.removeEventListener('abort', onAbort);
          resolve(v);
        };
        const onAbort = () => settle({ error: part.signal.reason });
        if (part.signal.aborted) return onAbort();
        part.signal.addEventListener('abort', onAbort, { once: true });
        const s = socket;
        if (!s) return settle({ error: new Error('net-snmp created no socket') });
        // What net-snmp's parser throws outside its own try (a reply it cannot make sense of) ends
        // the run here, not the process; a datagram it cannot parse at all it emits as 'error'.
        const listeners = s.listeners('message') as ((msg: Buffer, rinfo: unknown) => void)[];
        s.removeAllListeners('message');
        s.on('message', (msg: Buffer, rinfo: unknown) => {
          try {
            for (const l of listeners) l.call(s, msg, rinfo);
          } catch (err) {
            settle({ parseError: err, escaped: true });
          }
        });
        session.on('error', (err: unknown) => settle({ parseError: err }));
        s.on('error', (err: Error) => settle({ error: err }));
        const get = () => {
          if (settled) return;
          session.get(
            o.oids.map((x) => x.oid),
            (err: Error | null, varbinds?: Varbind[]) =>
              settle(err ? { error: err } : { varbinds: (varbinds ?? []).map((vb) => ({ oid: vb.oid, type: vb.type ?? -1, value: vb.value })) }),
          );
        };
        try {
          s.connect(target.port, resolved.address, get);
        } catch (err) {
          settle({ error: err });
        }
      });
    } finally {
      into.phases.request = now() - start;
      part.done();
      await close();
      if (o.version === '3') boundKeyCache(snmp);
    }
    if ('parseError' in outcome) {
      // escaped: net-snmp threw outside its own try while handling the answer (caught here, not by the process).
      const what = outcome.escaped ? 'an answer net-snmp failed on' : 'an answer that could not be read';
      return requestFailed('protocol', `${what}: ${describeError(outcome.parseError)}`);
    }
    if ('error' in outcome) {
      if (part.signal.aborted) return requestFailed('timeout', `no answer from the SNMP agent before the deadline`);
      const f = failure(snmp, outcome.error, o, attempts);
      if (f.reason === 'refused') f.message = `UDP port ${target.port} is closed (ICMP port unreachable): no SNMP agent runs there`;
      if (f.authCode) into.info.authCode = f.authCode;
      return requestFailed(f.reason, f.message);
    }
    return judge(o, outcome.varbinds, into, redactor);
  },
};

/** Each OID's value against its expectation: ok, or the first that fails (no_such before mismatch, in config order). */
function judge(o: SnmpOptions, varbinds: RawVarbind[], into: Into, redactor: Redactor): ProbeResult {
  const items: ItemReading[] = [];
  const noSuch: string[] = [];
  const mismatched: string[] = [];
  const wrong: string[] = [];
  if (varbinds.length !== o.oids.length)
    return {
      ok: false,
      ...into,
      failure: { phase: 'request', reason: 'protocol', message: `the agent answered ${varbinds.length} values for ${o.oids.length} OIDs` },
    };
  o.oids.forEach((spec, i) => {
    const vb = varbinds[i] as RawVarbind;
    if (vb.oid !== spec.oid) {
      items.push({ name: spec.name, ok: false });
      wrong.push(`${spec.name} (${spec.oid}): the agent answered with another OID in its place`);
      return;
    }
    const exception = EXCEPTIONS[vb.type];
    if (exception !== undefined) {
      items.push({ name: spec.name, ok: false, text: exception });
      noSuch.push(`${spec.name} (${spec.oid}): ${exception}`);
      return;
    }
    const v = readValue(vb);
    const ok = meets(spec, v);
    items.push({ name: spec.name, ok, text: redactor.scrub(v.text), ...(v.number !== undefined ? { value: v.number } : {}) });
    if (!ok) {
      const want = expectation(spec, redactor) ?? 'a value';
      mismatched.push(
        `${spec.name} (${spec.oid}): expected ${want}, got ${shown(spec, v, redactor)}${v.number === undefined && spec.min !== undefined ? ' (not a number)' : ''}`,
      );
    }
  });
  const more = (list: string[]) => (list.length > 1 ? ` (and ${list.length - 1} more)` : '');
  if (wrong.length > 0) return { ok: false, ...into, items, failure: { phase: 'request', reason: 'protocol', message: `${wrong[0]}${more(wrong)}` } };
  if (noSuch.length > 0)
    return { ok: false, ...into, items, failure: { phase: 'request', reason: 'snmp_no_such', message: `${noSuch[0]}${more([...noSuch, ...mismatched])}` } };
  if (mismatched.length > 0)
    return { ok: false, ...into, items, failure: { phase: 'request', reason: 'snmp_mismatch', message: `${mismatched[0]}${more(mismatched)}` } };
  return { ok: true, ...into, items };
}
