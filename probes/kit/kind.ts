// What a probe kind is: one declaration (defineKind) that holds everything the rest of vakt
// needs to know about it, so that adding a kind is one folder under probes/ and one line in
// probes/kinds.ts. The config schema, the metrics, the status page, the CLI and the docs tests
// read kinds only through this shape; nothing in agent/ or config/ names a kind.
import type { z } from 'zod';
import type { Target } from './target.js';
import type { DegradedReason, FailureReason, Probe, QueueReading } from '../types.js';

/** The status page's languages (English, Swedish, Danish, Norwegian bokmål, Finnish): every kind words its states in each. */
export const LANGUAGES = ['en', 'sv', 'da', 'nb', 'fi'] as const;
export type Language = (typeof LANGUAGES)[number];

/** The check states a kind may word differently from the generic ones. */
export type StateWord = 'ok' | 'degraded' | 'failing' | 'down';

export interface KindWords {
  /** "<title> <verb> since <time>" when a check of this kind is the root cause of an incident. */
  notAnswering: string;
  /** State words where the generic ones mislead (a queue is not "slow", it backs up). */
  states?: Partial<Record<StateWord, string>>;
  /**
   * What a down or degraded check reads for one of its failure or degraded reasons, where the
   * state word would say something untrue (a port that must stay blocked and answers is not
   * "Not reachable"; one resolver of two failing is not "Slow").
   */
  reasons?: Readonly<Record<string, string>>;
  /** Why a login was refused, in plain words, by the code the run reports in `info.authCode` ("account locked"). */
  refusals?: Readonly<Record<string, string>>;
}

/** A number a kind may report besides its phases; exported as a gauge when `metric` is set. */
export interface ValueSpec {
  metric?: string;
  help: string;
}

/** A metric a kind declares: its exact name and help text. */
export interface MetricSpec {
  readonly metric: string;
  readonly help: string;
}

/** The numeric fields of a reading: what a reading gauge may export. */
export type ReadingField = { [F in keyof QueueReading]-?: QueueReading[F] extends number | undefined ? F : never }[keyof QueueReading];

/**
 * Gauges per item of a result list: one series per check and item, labelled with the item's name.
 * The one such list is a queue check's readings (`result.queues`, each named by its `queue`).
 */
export interface ReadingGauges {
  /** The result's list of items. */
  readonly list: 'queues';
  /** The label naming the item, and the item's key that holds its name. */
  readonly label: 'queue';
  /** A gauge per numeric field, in this order; a field an item lacks has no series. */
  readonly gauges: { readonly [F in ReadingField]?: MetricSpec };
}

/**
 * A counter, per check and by one label, of a code the run reports in `result.info` (an ACK code):
 * a series per code seen. `values` bounds its cardinality: any other code counts as "other".
 */
export interface TallySpec extends MetricSpec {
  readonly label: string;
  readonly values: readonly string[];
}

/**
 * A gauge per item of a run (`result.items`) that has a number: one series per check and item,
 * labelled `label` with the item's name from the check's config (so the config bounds the series).
 */
export interface ItemGauge extends MetricSpec {
  readonly label: string;
}

/** A last-run info gauge (value 1) that carries one of the run's bounded text facts (its `info`) as a label. */
export interface InfoLabelSpec extends MetricSpec {
  readonly label: string;
}

/** Why a login was refused, as the kinds that log in report it (info.authCode: a code from a fixed list). */
export const AUTH_CODE_LABEL = {
  authCode: {
    metric: 'vakt_auth_error_info',
    label: 'code',
    help: 'Why the last login attempt was refused (value 1): an OAuth error, LDAP result or Active Directory reason code.',
  },
} as const satisfies Record<string, InfoLabelSpec>;

/** A rule across a parsed check's fields (its target and its options), with the key path it is about. */
export interface CheckIssue {
  /** Path from the check: ['target'], or into the kind's options (['tls']; the kind's key is prefixed). */
  path: (string | number)[];
  message: string;
}

export interface KindDefinition<Name extends string, Schema extends z.ZodType, TargetSchema extends z.ZodType<Target, string> = z.ZodType<Target, string>> {
  /** The `kind:` of a check, and the key of its options block. */
  readonly name: Name;
  /** One line: what a check of this kind proves. */
  readonly summary: string;
  readonly target: {
    /** A target as written in the config, parsed on load into what the probe reads (probes/kit/target.ts). */
    readonly schema: TargetSchema;
    /** Whether a check may name several (`targets: [...]`). */
    readonly multiple: boolean;
  };
  /** The options block (`<name>: {...}`), with its own cross-field rules. */
  readonly options: Schema;
  /** Options whose value names an entry of the check's `secrets`. */
  readonly secretOptions: readonly string[];
  /**
   * Rules between a check's targets and its options, on the parsed check (a check the schema
   * refused gets these once its own errors are fixed).
   */
  readonly checkRules?: (check: { targets: readonly z.output<TargetSchema>[]; options: z.output<Schema> }) => CheckIssue[];
  /** Phases a run can report, in order. */
  readonly phases: readonly string[];
  /** Failure reasons a run of this kind may report. */
  readonly reasons: readonly FailureReason[];
  /** Reasons a successful run may be degraded for. */
  readonly degradedReasons: readonly DegradedReason[];
  /** blackbox_exporter's per-kind phase gauge, exported besides vakt_probe_phase_seconds. */
  readonly phaseMetric?: { readonly name: string; readonly help: string };
  /** The numbers a run may report (lastResult.values), with their gauges. */
  readonly values: Readonly<Record<string, ValueSpec>>;
  /** Gauges per item of the run's result list (a queue check's readings). */
  readonly readings?: ReadingGauges;
  /** A gauge per named item of the run (an SNMP check's numeric OIDs). */
  readonly itemGauge?: ItemGauge;
  /** Counters of codes the run reports in its info, by info key (an HL7 ACK code). */
  readonly tallies?: Readonly<Record<string, TallySpec>>;
  /** Last-run info gauges from bounded text facts of the run (a DNS rcode, why a login was refused), by info key. */
  readonly infoLabels?: Readonly<Record<string, InfoLabelSpec>>;
  /** Its words for the status page, in every language. */
  readonly words: Readonly<Record<Language, KindWords>>;
  /** State words for checks whose options change what a state means (a port that must stay blocked). */
  readonly variantWords?: (options: z.output<Schema>) => Readonly<Record<Language, Partial<Record<StateWord, string>>>> | undefined;
  /** A check of this kind as a user would write it (YAML, one list item under `checks:`), validated by the tests. */
  readonly example: string;
  /**
   * The probe code (its probe.ts), imported on first use: a thread runs only the kinds its checks
   * have, so it loads only their code, and the main thread, whose checks run on probe threads,
   * loads none (probes/kinds.ts loadProbe).
   */
  readonly load: () => Promise<Probe<z.output<Schema>, z.output<TargetSchema>>>;
}

/** Declares a kind. The identity function: it fixes the types, so a kind that lacks a part does not compile. */
export function defineKind<const Name extends string, Schema extends z.ZodType, TargetSchema extends z.ZodType<Target, string>>(
  kind: KindDefinition<Name, Schema, TargetSchema>,
): KindDefinition<Name, Schema, TargetSchema> {
  return kind;
}

/** Values the kit itself reports for every kind that connects (resolve, TLS). */
export const CONNECTION_VALUES = {
  ip_protocol: { metric: 'probe_ip_protocol', help: 'IP protocol of the last run (4 or 6).' },
  dns_lookup_time_seconds: { metric: 'probe_dns_lookup_time_seconds', help: 'Seconds spent resolving the target name (OS resolver), last run.' },
  ssl_earliest_cert_expiry: {
    metric: 'probe_ssl_earliest_cert_expiry',
    help: 'Earliest expiry (Unix seconds) of the certificates the peer presented, last run.',
  },
} as const satisfies Record<string, ValueSpec>;

/** What a kind that makes several attempts per run reports of them (tcp connections, icmp echo requests): one family for both. */
export const SAMPLE_VALUES = {
  samples: { metric: 'vakt_probe_samples', help: 'Echo requests (icmp) or connection attempts (tcp) made in the last run.' },
  samples_ok: { help: 'Attempts (tcp connections, icmp echo requests) that succeeded in the last run.' },
  samples_loss_ratio: {
    metric: 'vakt_probe_sample_loss_ratio',
    help: 'Share of echo requests (icmp) or connection attempts (tcp) that failed in the last run (0..1).',
  },
} as const satisfies Record<string, ValueSpec>;

/** Failure reasons of the kit's own steps (resolve, connect, TLS, reading a reply), for every kind that connects. */
export const NETWORK_REASONS = [
  'timeout',
  'refused',
  'reset',
  'unreachable',
  'resolve',
  'tls_handshake',
  'tls_expired',
  'protocol',
] as const satisfies readonly FailureReason[];
