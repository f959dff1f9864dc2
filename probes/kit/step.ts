// The kit's steps: one phase of a run, timed, with what goes wrong in it turned into the run's
// failure in that phase. Every kind reports the same things the same way through these: a name
// that does not resolve fails in `resolve`, a TLS file that cannot be read in `tls` (reason
// tls_handshake: the handshake cannot even be tried), and a step the run's deadline cut short
// with reason `timeout`, whatever the error then said.
import { describeError, fail, Failed, now, reasonAfter, resolveStep, type Resolved } from './net.js';
import type { TlsClientOptions } from './options.js';
import { loadTlsMaterial, type TlsMaterial } from './tls.js';
import type { FailureReason, ProbeInfo, ProbeResult } from '../types.js';

export { Failed, failed } from './net.js';

/** What a step records into: the run's phases so far, and the run's signal (for the reason of an error). */
export interface StepRun {
  phases: Record<string, number>;
  signal: AbortSignal;
}

export interface StepOptions {
  /** Record the step's duration as its phase (default true; reading local files is not network time). */
  timed?: boolean;
  /** The reason for an error (default: timeout once the run's signal fired, else by the error's code). */
  reason?: (err: unknown) => FailureReason;
  /** What the step does, for the failure message ("resolving ehr.example"). */
  what?: string;
}

/**
 * Runs one step of a run in `phase`: its value, or the run's failed result (the phases so far
 * and one failure in `phase`). Callers tell the two apart with `failed()`.
 */
export async function step<T>(run: StepRun, phase: string, fn: () => Promise<T>, options: StepOptions = {}): Promise<T | Failed> {
  const start = now();
  try {
    const value = await fn();
    if (options.timed !== false) run.phases[phase] = now() - start;
    return value;
  } catch (err) {
    if (options.timed !== false) run.phases[phase] = now() - start;
    const reason = options.reason?.(err) ?? reasonAfter(err, run.signal);
    return new Failed(fail(run.phases, phase, reason, options.what !== undefined ? `${options.what}: ${describeError(err)}` : describeError(err)));
  }
}

/** The kit's TLS-files step: the check's TLS material, read before anything connects, or the run's failure in phase tls. */
export function tlsFilesStep<T>(run: StepRun, load: () => Promise<T>): Promise<T | Failed> {
  return step(run, 'tls', load, { timed: false, reason: () => 'tls_handshake', what: 'reading TLS files' });
}

/**
 * The first steps of a run that connects: the target's address (resolveStep), then, when the run
 * uses TLS (`tls` given), the check's TLS files (tlsFilesStep) — both before anything connects.
 */
export async function resolveThenTlsFiles(
  host: string,
  ipFamily: 'auto' | 'ip4' | 'ip6',
  tls: { options: TlsClientOptions | true | undefined } | undefined,
  signal: AbortSignal,
  into: { phases: Record<string, number>; values: NonNullable<ProbeResult['values']>; info: ProbeInfo },
): Promise<(Resolved & { tls: TlsMaterial | undefined }) | Failed> {
  const resolved = await resolveStep(host, ipFamily, signal, into);
  if (resolved instanceof Failed || !tls) return resolved instanceof Failed ? resolved : { ...resolved, tls: undefined };
  const material = await tlsFilesStep({ phases: into.phases, signal }, () => loadTlsMaterial(tls.options, host));
  return material instanceof Failed ? material : { ...resolved, tls: material };
}

/**
 * A conversation's phases as it goes: `time(phase, fn)` times one phase into `phases` and keeps
 * which phase is running, so that whatever fails is reported in the phase it failed in, with its
 * time so far when the peer's refusal ended it (`stop()`).
 */
export class Timeline {
  /** The phase running, or the last one started. */
  current: string;
  private start = now();

  constructor(
    readonly phases: Record<string, number>,
    first: string,
  ) {
    this.current = first;
  }

  /** Times `fn` as `phase`. */
  async time<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    this.begin(phase);
    const value = await fn();
    this.end();
    return value;
  }

  /** Starts `phase` (for a phase whose end is not one awaited call). */
  begin(phase: string): void {
    this.current = phase;
    this.start = now();
  }

  /** The running phase starts again now (its start-up before this is not its time). */
  restart(): void {
    this.start = now();
  }

  /** Ends the running phase: its time is recorded. */
  end(): void {
    this.phases[this.current] = now() - this.start;
  }

  /** Records the running phase's time so far, unless it already has one (a peer's answer that ended it is timed). */
  stop(): void {
    if (this.phases[this.current] === undefined) this.end();
  }
}
