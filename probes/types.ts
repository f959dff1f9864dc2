// The probe contract: what every probe kind receives and returns.
// A probe is a protocol conversation. It knows nothing of schedules, metrics or HTTP serving;
// it gets a target, its own validated options, an AbortSignal and a logger, and resolves with a
// result. It throws only on its own bugs (the runner reports those as reason "internal").
import type { Budget } from './kit/budget.js';
import type { Target } from './kit/target.js';

/**
 * Why a run failed: a short snake_case word, safe as a metric label. Each kind declares the
 * reasons it may report (its `reasons` in defineKind, documented in docs/configuration.md);
 * their union is the closed set (ALL_FAILURE_REASONS in probes/kinds.ts), and the runner turns
 * any other into "internal".
 */
export type FailureReason = string;

/** Why a successful run is still marked degraded: declared per kind the same way ("slow" is every kind's). */
export type DegradedReason = string;

/**
 * The name of a numeric fact a probe reports besides its phases. Each kind declares the names it
 * may report, with their gauges (its `values` in defineKind): the agent exports only declared
 * ones, so a probe cannot invent unbounded series; all are in the API's lastResult.values.
 */
export type ValueName = string;

/** Bounded, low-cardinality text facts (they change only when the peer changes). */
export interface ProbeInfo {
  tlsVersion?: string;
  tlsCipher?: string;
  /** Distinguished names as "CN=..,O=..". */
  certSubject?: string;
  certIssuer?: string;
  /** DNS names of the leaf's subjectAltName, comma-separated. */
  certSubjectAlternative?: string;
  certSerialNumber?: string;
  certFingerprintSha256?: string;
  certChainLength?: number;
  resolvedAddress?: string;
  /** Response code of the last DNS reply (one of the named rcodes). */
  dnsRcode?: string;
  /** How a DNS query went: "udp", "tcp" or "system" (getaddrinfo). */
  dnsTransport?: string;
  /**
   * Why authentication was refused, as a bounded code: an OAuth error (invalid_client,
   * invalid_grant, ...), an LDAP result (invalid_credentials, ...) or an AD reason
   * (account_locked, password_expired, ...). Exported as a label, so only codes from a fixed list.
   */
  authCode?: string;
  /** MSA-1 of the last HL7 ACK: AA, AE, AR, CA, CE, CR or other. */
  hl7AckCode?: string;
  /** A kind's own text facts (in the API and `vakt probe`; never a label unless named above). */
  [fact: string]: string | number | undefined;
}

export interface ProbeFailure {
  /** The phase that failed (one of the kind's declared phases). */
  phase: string;
  reason: FailureReason;
  /** Human-readable detail. Never carries secrets; not used as a label. */
  message: string;
}

/** The part of a run that concerns one of a check's several targets (e.g. one resolver). */
export interface TargetResult {
  target: string;
  ok: boolean;
  durationSeconds: number;
  phases: Record<string, number>;
  failure?: ProbeFailure;
  values?: Partial<Record<ValueName, number>>;
  info?: ProbeInfo;
  /** For dns checks: the records of this target's reply. */
  records?: ReplyRecord[];
}

/**
 * A record of a DNS reply, in presentation form as dig prints it (the dns kind's `records`). A
 * reply's first few only, each field cut to a bounded length: for `vakt probe` and the API,
 * never a metric label.
 */
export interface ReplyRecord {
  section: 'answer' | 'authority' | 'additional';
  name: string;
  /** Absent where the source does not tell (the host's own resolver). */
  ttl?: number;
  class?: string;
  type: string;
  data: string;
}

/** One step of a multi-step conversation (an HTTP login flow). */
export interface StepResult {
  name: string;
  ok: boolean;
  durationSeconds: number;
  /** Summed over the step's redirect hops; only phases that happened. */
  phases: Record<string, number>;
  status?: number;
  redirects?: number;
  failure?: ProbeFailure;
  /** The step exceeded its own latency limit. */
  slow?: boolean;
}

/** What a queue check read about one queue (a broker queue, an engine channel, a drop folder). */
export interface QueueReading {
  queue: string;
  /** Messages waiting (RabbitMQ: ready + unacknowledged). */
  depth: number;
  ready?: number;
  unacked?: number;
  consumers?: number;
  /** Age of the oldest waiting message, when the source can tell. */
  oldestAgeSeconds?: number;
  /** Messages per second added / removed since the previous run (absent on the first). */
  arrivalRate?: number;
  drainRate?: number;
  /** Messages per second handed to consumers, redeliveries included (RabbitMQ): high with no drain is a poison message going round. */
  deliverRate?: number;
  /** Seconds the queue has had messages waiting with nothing drained (0 while draining or empty). */
  undrainedSeconds?: number;
  /** Channel or queue state as the source names it (Mirth: STARTED, PAUSED, ...). */
  state?: string;
  /** Messages the source counts as errored (Mirth). */
  errors?: number;
}

/** One item a check's config names (an SNMP check's OIDs), as the run read it. */
export interface ItemReading {
  /** The item's name from the check's config: the label value of the kind's item gauge. */
  name: string;
  /** Whether the item met the check's expectation. */
  ok: boolean;
  /** The value, when it is a number: exported as the kind's item gauge. */
  value?: number;
  /** The value as read, bounded and scrubbed of secrets (the API and `vakt probe`; never a label). */
  text?: string;
}

export interface ProbeResult {
  ok: boolean;
  /** For kinds whose config names items (an SNMP check's OIDs): each item as read, in the configured order. */
  items?: ItemReading[];
  /** For queue checks: one reading per queue, in the configured order. */
  queues?: QueueReading[];
  /** For dns checks with one target: the records of the reply (answer, authority, additional; bounded). */
  records?: ReplyRecord[];
  /** For kinds with steps: each step's outcome, in order (steps after a failed one are absent). */
  steps?: StepResult[];
  /**
   * For checks with several targets: each target's own outcome. The agent exports per-target
   * last-run series from these; the check's verdict (ok, failure, degraded) stays the whole's.
   */
  targets?: TargetResult[];
  /** Seconds per phase, only for phases that actually ran (a phase never run is absent, not 0). */
  phases: Record<string, number>;
  failure?: ProbeFailure;
  degraded?: { reason: DegradedReason; message: string };
  values?: Partial<Record<ValueName, number>>;
  info?: ProbeInfo;
}

/** A run's outcome in one word: the `result` label of vakt_probe_runs_total, the history and the API. */
export const RUN_RESULTS = ['ok', 'degraded', 'failed'] as const;
export type RunResult = (typeof RUN_RESULTS)[number];

export function runResult(r: ProbeResult): RunResult {
  return !r.ok ? 'failed' : r.degraded ? 'degraded' : 'ok';
}

export interface ProbeLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ProbeContext<Options, T extends Target = Target> {
  /** The check's target, parsed when the config loaded (host and port, a URL's parts; `text` as written); with several, the first. */
  target: T;
  /** Every target of the check (a single one for most kinds). */
  targets: readonly T[];
  options: Options;
  /**
   * The run's time: its signal (aborted by the runner when the check's timeout expires or the
   * agent stops), its deadline, and parts of it for attempts and conversations. A probe that
   * makes several attempts ends each one a little before the deadline (budget.end()), so it can
   * still report what it saw.
   */
  budget: Budget;
  log: ProbeLogger;
  /** Resolved secret values by name (from {env}/{file} references). */
  secrets: Readonly<Record<string, string>>;
  /**
   * Scratch space that lives as long as the check's definition: the same object on every run of
   * the check, fresh after the agent restarts or a reload changes the check. Kinds that compare
   * one run with the previous (queue drain and arrival rates) keep their last reading here; the
   * others ignore it.
   */
  memory: Map<string, unknown>;
}

export interface Probe<Options, T extends Target = Target> {
  /** Phases this kind can report, in order. Used for docs, metrics and the CLI. */
  readonly phases: readonly string[];
  run(ctx: ProbeContext<Options, T>): Promise<ProbeResult>;
}
