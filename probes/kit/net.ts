// Small helpers shared by socket-based probes: timing, name resolution under an AbortSignal,
// error classification into the closed set of failure reasons, bounded file reads.
import { lookup } from 'node:dns/promises';
import { isIP, type Socket } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import type { Dispatcher } from 'undici';
import type { FailureReason, ProbeInfo, ProbeResult, ValueName } from '../types.js';

/** Writes to a socket; resolves once the data is handed to the OS, rejects on an error or the signal. */
export function writeAll(socket: Socket, data: Buffer | string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new ProbeAbortError('aborted'));
    const onAbort = () => reject(new ProbeAbortError('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    socket.write(data, (err) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * Reads a socket until `step` settles it: `step` gets each chunk and returns the result (done) or
 * undefined (read on), and may throw to fail the read; `ended` says what the peer closing first
 * means (a result, or an Error to reject with). A socket error rejects with it, the signal with a
 * ProbeAbortError. Whatever ends it, the listeners go and the socket is paused.
 */
export function readUntil<T>(socket: Socket, signal: AbortSignal, step: (chunk: Buffer) => T | undefined, ended: () => T | Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const finish = (outcome: { value: T } | { error: Error }) => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('error', onError);
      signal.removeEventListener('abort', onAbort);
      socket.pause();
      if ('error' in outcome) reject(outcome.error);
      else resolve(outcome.value);
    };
    const onData = (chunk: Buffer) => {
      let v: T | undefined;
      try {
        v = step(chunk);
      } catch (err) {
        finish({ error: err instanceof Error ? err : new Error(String(err)) });
        return;
      }
      if (v !== undefined) finish({ value: v });
    };
    const onEnd = () => {
      const v = ended();
      finish(v instanceof Error ? { error: v } : { value: v });
    };
    const onError = (err: Error) => finish({ error: err });
    const onAbort = () => finish({ error: new ProbeAbortError('aborted') });
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}

/** A kit step that failed (resolveStep, step, tlsFilesStep): the run's result, to be returned as it is. */
export class Failed {
  constructor(readonly result: ProbeResult) {}
}

export function failed(v: unknown): v is Failed {
  return v instanceof Failed;
}

/** A run that failed before it got far: the phases so far and the one failure. */
export function fail(phases: Record<string, number>, phase: string, reason: FailureReason, message: string): ProbeResult {
  return { ok: false, phases, failure: { phase, reason, message } };
}

/** Monotonic seconds. */
export function now(): number {
  return performance.now() / 1000;
}

/** Rejects with the signal's reason as soon as it aborts; cleans its listener either way. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * What a run's connection pool is torn down with once the run is done with it (requests still
 * queued on it are rejected with this; the probes ignore them). One error made once: undici makes
 * a ClientDestroyedError per pool otherwise, and node formats its stack when it destroys each
 * socket; at 1,000 http runs a second that was 7 % of the probe thread's CPU (bench/RESULTS.md,
 * 2026-12-06 (2)).
 */
const POOL_CLOSED = new Error('the run is over: its connection pool is closed');

/** Closes a run's undici pool (Agent or Client): its sockets are destroyed at once; never rejects. */
export function closePool(pool: Dispatcher): Promise<void> {
  return pool.destroy(POOL_CLOSED).then(
    () => undefined,
    () => undefined,
  );
}

export class ProbeAbortError extends Error {
  override readonly name = 'ProbeAbortError';
  readonly code = 'ABORT_ERR';
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  const detail = reason instanceof Error ? reason.message : 'aborted';
  return new ProbeAbortError(detail);
}

/** Resolves after `ms`, or rejects when the signal aborts (timer cleared). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export interface Resolved {
  address: string;
  family: 4 | 6;
  /** Seconds spent resolving; undefined when the host was already an address. */
  seconds?: number;
}

/** Resolves a host name once (OS resolver) unless it is already an IP address. */
export async function resolveHost(host: string, family: 'auto' | 'ip4' | 'ip6', signal: AbortSignal): Promise<Resolved> {
  const ipv = isIP(host);
  if (ipv !== 0) return { address: host, family: ipv as 4 | 6 };
  const start = now();
  const opts = family === 'ip4' ? { family: 4 } : family === 'ip6' ? { family: 6 } : { family: 0, order: 'ipv4first' as const };
  const result = await raceAbort(lookup(host, opts), signal);
  return { address: result.address, family: result.family as 4 | 6, seconds: now() - start };
}

const REFUSED = new Set(['ECONNREFUSED']);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENETDOWN', 'EHOSTDOWN', 'EADDRINUSE']);
const TIMEOUT = new Set(['ETIMEDOUT', 'ABORT_ERR']);
const RESOLVE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'ENODATA', 'EAI_NONAME']);
const TLS_EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
const UNDICI_TIMEOUT = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_ABORTED']);

/**
 * The kit's resolve step: the target's address, or the run's failure in phase resolve (see
 * step.ts). Records what the run learnt: ip_protocol always; the resolve phase,
 * dns_lookup_time_seconds and the address only when a name was actually resolved.
 */
export async function resolveStep(
  host: string,
  family: 'auto' | 'ip4' | 'ip6',
  signal: AbortSignal,
  into: { phases: Record<string, number>; values: Partial<Record<ValueName, number>>; info: ProbeInfo },
): Promise<Resolved | Failed> {
  let r: Resolved;
  try {
    r = await resolveHost(host, family, signal);
  } catch (err) {
    return new Failed(fail(into.phases, 'resolve', reasonAfter(err, signal), `resolving ${host}: ${describeError(err)}`));
  }
  into.values.ip_protocol = r.family;
  if (r.seconds !== undefined) {
    into.phases.resolve = r.seconds;
    into.values.dns_lookup_time_seconds = r.seconds;
    into.info.resolvedAddress = r.address;
  }
  return r;
}

/** A run's failure reason for an error: timeout once the run's signal fired (whatever the error then says), else by its code. */
export function reasonAfter(err: unknown, signal: AbortSignal): FailureReason {
  return signal.aborted ? 'timeout' : classifyError(err);
}

/** Maps a socket/TLS error to a failure reason, by code, never by message text. */
export function classifyError(err: unknown): FailureReason {
  const e = err as { code?: unknown; name?: unknown; cause?: unknown } | null;
  const code = e?.code;
  // undici's own errors (http, oidc, the queue kind's HTTP sources): its timeouts are timeouts
  // (a connect timeout of the run's remaining budget can fire just before the run's signal), a
  // socket it lost is a reset; the system error behind one is in `cause`.
  if (e?.name === 'AbortError' || (typeof code === 'string' && UNDICI_TIMEOUT.has(code))) return 'timeout';
  if (code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') return 'reset';
  if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'ERR_INVALID_URL' || (typeof code === 'string' && code.startsWith('HPE_'))) return 'protocol';
  if (e?.cause && typeof e.cause === 'object' && 'code' in e.cause) return classifyError(e.cause);
  if (typeof code === 'string') {
    if (REFUSED.has(code)) return 'refused';
    if (RESET.has(code)) return 'reset';
    if (UNREACHABLE.has(code)) return 'unreachable';
    if (TIMEOUT.has(code)) return 'timeout';
    if (RESOLVE.has(code)) return 'resolve';
    if (TLS_EXPIRED.has(code)) return 'tls_expired';
    if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SIGNATURE|ISSUER|SELF_SIGNED|UNABLE_TO/.test(code)) return 'tls_handshake';
  }
  if (err instanceof ProbeAbortError) return 'timeout';
  return 'protocol';
}

/** A short, secret-free description of an error for the failure message. */
export function describeError(err: unknown): string {
  if (err instanceof ProbeAbortError) return 'timed out';
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message.split('\n')[0]?.slice(0, 200) : String(err);
  return code !== undefined && !(message ?? '').includes(code) ? `${code}: ${message}` : (message ?? 'error');
}

const fileCache = new Map<string, { mtimeMs: number; size: number; data: Buffer }>();
const MAX_FILE = 1024 * 1024;

/** Reads a small file (certificates, keys), re-reading only when it changed on disk. */
export async function readSmallFile(path: string): Promise<Buffer> {
  const st = await stat(path);
  const cached = fileCache.get(path);
  if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.data;
  if (st.size > MAX_FILE) throw Object.assign(new Error(`${path} is larger than 1 MiB`), { code: 'EFBIG' });
  const data = await readFile(path);
  fileCache.set(path, { mtimeMs: st.mtimeMs, size: st.size, data });
  return data;
}

/** Reads a body up to `limit` bytes; beyond that it stops reading (and destroys the stream) and says so. */
export async function readBounded(
  body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
  limit: number,
): Promise<{ text: string; bytes: number; tooLarge: boolean }> {
  // Each chunk is decoded as it arrives (the decoder carries a character split between chunks),
  // so a large body costs the event loop a little per chunk instead of one copy and one decode
  // of the whole at the end. ignoreBOM keeps a byte-order mark, as Buffer#toString does.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const parts: string[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > limit) {
      body.destroy();
      return { text: '', bytes, tooLarge: true };
    }
    parts.push(decoder.decode(chunk, { stream: true }));
  }
  parts.push(decoder.decode());
  return { text: parts.join(''), bytes, tooLarge: false };
}
