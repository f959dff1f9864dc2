// The probe kit's connection plumbing, shared by every kind that opens a TCP connection or an
// HTTP pool: a connect that honours the run's signal, TLS material read once per run, the TLS
// handshake, timing a pooled connection's set-up (undici), the certificate facts and the
// certificate-expiry verdict, and the verdict of a run over one connection.
import { subscribe } from 'node:diagnostics_channel';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type DetailedPeerCertificate, type SecureVersion, type TLSSocket } from 'node:tls';
import type { buildConnector } from 'undici';
import { EXPIRY_WARNING_MS, type TlsClientOptions } from './options.js';
import { now, ProbeAbortError, readSmallFile } from './net.js';
import type { ProbeFailure, ProbeInfo, ProbeResult } from '../types.js';

export interface TlsMaterial {
  servername: string | undefined;
  host: string;
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
  rejectUnauthorized: boolean;
  minVersion: SecureVersion | undefined;
  expiryWarningMs: number;
}

/** Degraded (cert_expiring) when the earliest expiry in the chain is within the check's expiryWarning. */
export function certExpiring(tls: TlsMaterial, earliestExpiry: number): { reason: 'cert_expiring'; message: string } | undefined {
  return expiryVerdict(earliestExpiry, tls.expiryWarningMs);
}

/**
 * The one certificate-expiry verdict of every kind: degraded (cert_expiring) when the earliest
 * expiry (Unix seconds) is within `warningMs` (the check's tls.expiryWarning, 14 days by
 * default). `what` names the certificate in the message.
 */
export function expiryVerdict(
  earliestExpiry: number,
  warningMs: number = EXPIRY_WARNING_MS,
  what = 'certificate',
): { reason: 'cert_expiring'; message: string } | undefined {
  const left = earliestExpiry * 1000 - Date.now();
  return left < warningMs ? { reason: 'cert_expiring', message: `${what} expires in ${Math.max(0, left / 86_400_000).toFixed(1)} days` } : undefined;
}

/**
 * The verdict of a run over one connection (ldap, amqp): its failure; else degraded for a slow
 * phase (the message names it); else for a certificate about to expire; else ok.
 */
export function connectionResult(r: {
  phases: Record<string, number>;
  values: NonNullable<ProbeResult['values']>;
  info: ProbeInfo;
  failure: ProbeFailure | undefined;
  slow: () => string | undefined;
  tls: TlsMaterial | undefined;
  earliestExpiry: number | undefined;
}): ProbeResult {
  if (r.earliestExpiry !== undefined) r.values.ssl_earliest_cert_expiry = r.earliestExpiry;
  const result: ProbeResult = { ok: r.failure === undefined, phases: r.phases, values: r.values };
  if (Object.keys(r.info).length > 0) result.info = r.info;
  if (r.failure) {
    result.failure = r.failure;
    return result;
  }
  const slow = r.slow();
  const expiring = r.earliestExpiry !== undefined && r.tls ? certExpiring(r.tls, r.earliestExpiry) : undefined;
  if (slow) result.degraded = { reason: 'slow', message: slow };
  else if (expiring) result.degraded = expiring;
  return result;
}

/** The client side of a TLS handshake from the check's `tls` options (files read, cached by mtime). */
export async function loadTlsMaterial(tls: TlsClientOptions | true | undefined, defaultHost: string): Promise<TlsMaterial> {
  const t = tls === true ? undefined : tls;
  const name = t?.serverName ?? defaultHost;
  return {
    servername: isIP(name) === 0 ? name : undefined,
    host: name,
    ca: t?.caFile ? await readSmallFile(t.caFile) : undefined,
    cert: t?.certFile ? await readSmallFile(t.certFile) : undefined,
    key: t?.keyFile ? await readSmallFile(t.keyFile) : undefined,
    rejectUnauthorized: !(t?.insecureSkipVerify ?? false),
    minVersion: t?.minVersion,
    expiryWarningMs: t?.expiryWarning ?? EXPIRY_WARNING_MS,
  };
}

/** Where a connection goes: an address already resolved (the phase `resolve` is the caller's). */
export interface ConnectTo {
  address: string;
  port: number;
  family: 4 | 6;
  localAddress?: string | undefined;
}

/** The run's phase timeline as connectSocket uses it (the kit's Timeline). */
export interface PhaseClock {
  begin(phase: string): void;
  restart(): void;
  end(): void;
}

/** A host that is an IP address (IPv6 with or without its URL brackets): nothing to resolve. */
function isAddress(host: string): boolean {
  return isIP(host.replace(/^\[|\]$/g, '')) !== 0;
}

/**
 * Calls `stamp` just before Node issues connect(2) to `host`; call it right before net.connect or
 * tls.connect. To an address, Node connects on the next tick (net's lookupAndConnect), after all
 * else this turn of the loop does: the rest of a batch of runs started together, the TLS context
 * and socket being built. A tick queued first runs just before that one, so the connect phase
 * counts none of it (test/probes/timing.test.ts checks Node still connects on that tick). For a
 * name, the lookup's own event ends the resolve phase right before the connect: nothing to do.
 */
function justBeforeConnect(host: string, stamp: () => void): void {
  if (isAddress(host)) process.nextTick(stamp);
}

/**
 * A TCP connection to `to`, timed as the phase `connect` on `line` from the connect(2) to the
 * connect event; rejects at `timeoutMs` (ETIMEDOUT, or a ProbeAbortError saying `why`), when
 * `signal` aborts, or with the socket's error.
 */
export function connectSocket(to: ConnectTo, timeoutMs: number, signal: AbortSignal, line: PhaseClock, why?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    line.begin('connect');
    if (signal.aborted) return reject(new ProbeAbortError('aborted'));
    justBeforeConnect(to.address, () => line.restart());
    const socket = netConnect({
      host: to.address,
      port: to.port,
      family: to.family,
      noDelay: true,
      ...(to.localAddress ? { localAddress: to.localAddress } : {}),
    });
    let timer: NodeJS.Timeout | undefined;
    const done = (err?: Error) => {
      if (timer) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
      socket.removeListener('connect', onConnect);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(socket);
    };
    const onAbort = () => done(new ProbeAbortError('aborted'));
    const onError = (err: Error) => done(err);
    const onConnect = () => {
      // Timed here, as the event is handled, not when the awaiting run gets to it.
      line.end();
      // Keep a no-op error listener: a late RST must not become an uncaught exception.
      socket.on('error', noop);
      done();
    };
    if (Number.isFinite(timeoutMs))
      timer = setTimeout(
        () =>
          done(why !== undefined ? new ProbeAbortError(why) : Object.assign(new Error(`no answer to connect within ${timeoutMs}ms`), { code: 'ETIMEDOUT' })),
        timeoutMs,
      );
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', onError);
    socket.once('connect', onConnect);
  });
}

function noop(): void {}

/**
 * A kind's `tls` block as TLS client options for undici's connector (http, oidc, queue): the
 * files read (cached by mtime), SNI, minimum version, verification. Throws when a file cannot be
 * read; each caller reports that in its own phase.
 */
export type TlsFiles = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername' | 'minVersion' | 'rejectUnauthorized'>;

export async function tlsFileOptions(t: TlsClientOptions | undefined): Promise<TlsFiles> {
  return {
    ...(t?.caFile ? { ca: await readSmallFile(t.caFile) } : {}),
    ...(t?.certFile ? { cert: await readSmallFile(t.certFile) } : {}),
    ...(t?.keyFile ? { key: await readSmallFile(t.keyFile) } : {}),
    ...(t?.serverName ? { servername: t.serverName } : {}),
    ...(t?.minVersion ? { minVersion: t.minVersion } : {}),
    rejectUnauthorized: !(t?.insecureSkipVerify ?? false),
  };
}

/** Node's TLS client options for the material (no undefined keys: exactOptionalPropertyTypes). */
export function tlsConnectOptions(t: TlsMaterial): ConnectionOptions {
  return {
    host: t.host,
    ...(t.servername ? { servername: t.servername } : {}),
    ...(t.ca ? { ca: t.ca } : {}),
    ...(t.cert ? { cert: t.cert } : {}),
    ...(t.key ? { key: t.key } : {}),
    ...(t.minVersion ? { minVersion: t.minVersion } : {}),
    rejectUnauthorized: t.rejectUnauthorized,
  };
}

export function handshake(socket: Socket, t: TlsMaterial, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({ socket, ...tlsConnectOptions(t) });
    const done = (err?: Error) => {
      signal.removeEventListener('abort', onAbort);
      secure.removeListener('error', onError);
      secure.removeListener('secureConnect', onSecure);
      if (err) {
        secure.destroy();
        reject(err);
      } else {
        secure.on('error', noop);
        resolve(secure);
      }
    };
    const onAbort = () => done(new ProbeAbortError('aborted'));
    const onError = (err: Error) => done(err);
    const onSecure = () => done();
    signal.addEventListener('abort', onAbort, { once: true });
    secure.once('error', onError);
    secure.once('secureConnect', onSecure);
  });
}

/** Timestamps (now(), seconds) of one new connection's set-up, and its TLS facts once secure. */
export interface ConnTimes {
  start: number;
  lookup?: number;
  connect?: number;
  secure?: number;
  tls?: ReturnType<typeof certFacts>;
}

/**
 * A run's HTTP exchanges over its connections (one request at a time): when undici wrote the
 * latest request's headers to the socket and when it had parsed its response's headers
 * (performance clock, seconds). Stamped synchronously in undici's own callbacks through its
 * diagnostics channels, so the time from the answer's arrival to the run's await resuming (a
 * promise chain, and whatever else the loop runs first) and undici's set-up of a new connection
 * before it writes are not counted as the peer's processing. Absent when undici publishes
 * neither (the caller then falls back on its own timestamps).
 */
export interface ExchangeClock {
  sent?: number | undefined;
  answered?: number | undefined;
}

const clockOfSocket = new WeakMap<object, ExchangeClock>();
const clockOfRequest = new WeakMap<object, ExchangeClock>();
let watchingExchanges = false;

/** Subscribes once to undici's request channels; other users of undici (Node's fetch too) are not in the maps and cost a lookup. */
function watchExchanges(): void {
  if (watchingExchanges) return;
  watchingExchanges = true;
  subscribe('undici:client:sendHeaders', (m) => {
    const { request, socket } = m as { request: object; socket: object };
    const clock = clockOfSocket.get(socket);
    if (!clock) return;
    clock.sent = now();
    clock.answered = undefined;
    clockOfRequest.set(request, clock);
  });
  subscribe('undici:request:headers', (m) => {
    const clock = clockOfRequest.get((m as { request: object }).request);
    if (clock && clock.answered === undefined) clock.answered = now();
  });
}

/**
 * undici's `connect` option: `base` (from buildConnector), timing every new connection it makes
 * (http, oidc). `onConnection` gets each connection's times as it starts; they fill in as its
 * phases end, and `onSecure` is called once its TLS handshake is done. The listeners are
 * prepended: base's own listener hands the socket to undici, which sets up its parser and writes
 * the request before returning, and a listener after it would count that work (~0.5 ms) as
 * network time. With `exchanges`, the requests on its connections are timed too (ExchangeClock).
 */
export function timedConnector(
  base: buildConnector.connector,
  onConnection: (times: ConnTimes) => void,
  onSecure?: (times: ConnTimes) => void,
  signal?: AbortSignal,
  exchanges?: ExchangeClock,
): buildConnector.connector {
  if (exchanges) watchExchanges();
  return (opts, cb) => {
    const t: ConnTimes = { start: now() };
    onConnection(t);
    justBeforeConnect(opts.hostname, () => (t.start = now()));
    const socket = base(opts, cb) as unknown as Socket | TLSSocket;
    if (exchanges) clockOfSocket.set(socket, exchanges);
    if (signal) {
      // undici waits for a connection in progress before its pool can close: against a peer that
      // drops the SYN that is its own connect timeout, long past the run's deadline. The run's
      // signal ends the attempt instead.
      const abort = () => socket.destroy(new ProbeAbortError('connection attempt ended at the run deadline'));
      if (signal.aborted) queueMicrotask(abort);
      else {
        signal.addEventListener('abort', abort, { once: true });
        socket.once('close', () => signal.removeEventListener('abort', abort));
      }
    }
    // 'lookup' is emitted on a failed lookup too; only a successful one ends the phase.
    socket.prependOnceListener('lookup', (err: Error | null) => {
      if (!err) t.lookup = now();
    });
    socket.prependOnceListener('connect', () => (t.connect = now()));
    socket.prependOnceListener('secureConnect', () => {
      t.secure = now();
      t.tls = certFacts(socket as TLSSocket);
      onSecure?.(t);
    });
    return socket;
  };
}

/**
 * The set-up phase a new connection to `url` failed in (resolve, connect or tls), from its times;
 * undefined when it had none under way (a reused connection) or completed them all. The same rule
 * for every kind that speaks HTTP through undici (http, oidc, queue).
 */
export function setupPhase(c: ConnTimes | undefined, url: URL): 'resolve' | 'connect' | 'tls' | undefined {
  if (!c) return undefined;
  if (c.connect === undefined) return c.lookup === undefined && !isAddress(url.hostname) ? 'resolve' : 'connect';
  if (url.protocol === 'https:' && c.secure === undefined) return 'tls';
  return undefined;
}

/** The set-up phases a connection completed (seconds; a phase not reached is absent). */
export function connectionPhases(t: ConnTimes): { resolve?: number; connect?: number; tls?: number } {
  return {
    ...(t.lookup !== undefined ? { resolve: t.lookup - t.start } : {}),
    ...(t.connect !== undefined ? { connect: t.connect - (t.lookup ?? t.start) } : {}),
    ...(t.secure !== undefined && t.connect !== undefined ? { tls: t.secure - t.connect } : {}),
  };
}

export function certFacts(secure: TLSSocket): { info: ProbeInfo; earliestExpiry: number | undefined } {
  const info: ProbeInfo = {};
  const version = secure.getProtocol();
  if (version) info.tlsVersion = version;
  const cipher = secure.getCipher();
  if (cipher?.name) info.tlsCipher = cipher.name;
  const leaf = secure.getPeerCertificate(true);
  let earliest: number | undefined;
  if (leaf && Object.keys(leaf).length > 0) {
    info.certSubject = distinguishedName(leaf.subject);
    info.certIssuer = distinguishedName(leaf.issuer);
    info.certSubjectAlternative = (leaf.subjectaltname ?? '')
      .split(', ')
      .filter((n) => n.startsWith('DNS:'))
      .map((n) => n.slice(4))
      .join(',');
    info.certSerialNumber = (leaf.serialNumber ?? '').toLowerCase().replace(/^0+(?=.)/, '');
    info.certFingerprintSha256 = leaf.fingerprint256.replaceAll(':', '').toLowerCase();
    let length = 0;
    const seen = new Set<string>();
    for (let c: DetailedPeerCertificate | undefined = leaf; c && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
      seen.add(c.fingerprint256);
      length++;
      const t = Date.parse(c.valid_to) / 1000;
      if (Number.isFinite(t) && (earliest === undefined || t < earliest)) earliest = t;
    }
    info.certChainLength = length;
  }
  return { info, earliestExpiry: earliest };
}

/** "CN=ehr,O=Region" from Node's certificate name object (blackbox_exporter's label form). */
function distinguishedName(name: Record<string, string | string[] | undefined> | undefined): string {
  if (!name) return '';
  return Object.entries(name)
    .flatMap(([k, v]) => (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((x) => `${k}=${x}`))
    .join(',');
}
