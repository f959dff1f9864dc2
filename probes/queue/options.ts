// The queue kind's options block (`queue: {...}` in a check) and the types the probe reads: one
// variant per source, each holding only the keys that source uses.
import { z } from 'zod';
import { byteSize, positiveDuration } from '../../config/fields.js';
import { secretName, tlsClient, whenMissing } from '../kit/options.js';
import { parseWebTarget, targetSchema, type WebTarget } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'fetch', 'assess'] as const;

/** A JSON path as the http kind's assertions take it: `$.a.b[0].c`. */
const jsonPathText = z.string().min(1).max(512);

/** Queue names (or mirth channel names or ids), each once; `missing` is the message when a source requires them. */
function queueNames(missing?: string) {
  return z
    .array(z.string().min(1).max(255), missing === undefined ? undefined : whenMissing(missing))
    .min(1)
    .max(100)
    .refine((qs) => new Set(qs).size === qs.length, { message: 'expected each queue once' });
}

/** Limits every source takes. */
const limits = {
  /** The run fails (reason backlog) when a queue holds more than this many messages. */
  maxDepth: z.int().min(0).optional(),
  /** Stalled: messages waiting and nothing drained for this long → failure, reason backlog. */
  stalledAfter: positiveDuration.optional(),
  /** Growing: depth rose by at least minIncrease over window while more arrived than drained → degraded (backlog_growing); false turns it off. */
  growth: z
    .union([
      z.literal(false),
      z.strictObject({
        window: positiveDuration.refine((ms) => ms <= 86_400_000, { message: 'expected a window of at most 24h' }).prefault('15m'),
        minIncrease: z.int().min(1).default(10),
      }),
    ])
    .prefault({}),
};

/** Sources that report message age (not activemq, mirth). */
const ageLimit = {
  /** The run fails (reason backlog) when a queue's oldest message is older than this. */
  maxOldestAge: positiveDuration.optional(),
};

/** Sources that report consumers (rabbitmq, activemq, artemis, http-json). */
const consumersLimit = {
  /** The run fails (reason consumers) when a queue has fewer consumers than this. */
  minConsumers: z.int().min(0).max(100_000).optional(),
};

/** How the API sources (all but directory) are reached. */
const httpAccess = {
  /** HTTP Basic credentials; the password is a secret name. */
  username: z.string().min(1).max(255).optional(),
  password: secretName.optional(),
  /** https targets: how the server's certificate is checked. */
  tls: tlsClient.optional(),
  /** Largest API response read; a bigger one fails the run (reason body_too_large). */
  maxBodySize: byteSize.default(4 * 1024 * 1024),
};

/** activemq, artemis: where Jolokia answers and which broker it reads. */
const jolokia = {
  /** activemq: brokerName (default localhost); artemis: the broker name (default 0.0.0.0). */
  broker: z.string().min(1).max(255).optional(),
  /** activemq/artemis: the Jolokia endpoint's path (default /api/jolokia/ and /console/jolokia/). */
  jolokiaPath: z.string().regex(/^\//, { message: 'expected a path starting with /' }).optional(),
};

/** A password without a username sends no credentials: refused in every API source. */
const passwordNeedsUsername = (o: { username?: string | undefined; password?: string | undefined }) => o.password === undefined || o.username !== undefined;
const usernameMissing = { path: ['username'], message: 'expected username with password' };

const queuesRequired = (source: string) => `expected queues (the names to read) with source ${source}`;

export const rabbitmqOptions = z
  .strictObject({
    source: z.literal('rabbitmq'),
    /** The queues to read. */
    queues: queueNames(queuesRequired('rabbitmq')),
    /** The virtual host. */
    vhost: z.string().max(255).default('/'),
    ...httpAccess,
    ...limits,
    ...ageLimit,
    ...consumersLimit,
  })
  .refine(passwordNeedsUsername, usernameMissing);

export const activemqOptions = z
  .strictObject({
    source: z.literal('activemq'),
    /** The queues to read. */
    queues: queueNames(queuesRequired('activemq')),
    ...jolokia,
    ...httpAccess,
    ...limits,
    ...consumersLimit,
  })
  .refine(passwordNeedsUsername, usernameMissing);

export const artemisOptions = z
  .strictObject({
    source: z.literal('artemis'),
    /** The queues to read. */
    queues: queueNames(queuesRequired('artemis')),
    ...jolokia,
    /** The queue's address (default: the queue name) and routing type. */
    address: z.string().min(1).max(255).optional(),
    routingType: z.enum(['anycast', 'multicast']).default('anycast'),
    ...httpAccess,
    ...limits,
    ...ageLimit,
    ...consumersLimit,
  })
  .refine(passwordNeedsUsername, usernameMissing);

export const mirthOptions = z
  .strictObject({
    source: z.literal('mirth'),
    /** Channel names or ids; all channels when omitted. */
    queues: queueNames().optional(),
    /** Channel states that count as running (others fail the run, reason queue_stopped). */
    runningStates: z.array(z.string().min(1).max(32)).min(1).default(['STARTED']),
    ...httpAccess,
    ...limits,
  })
  .refine(passwordNeedsUsername, usernameMissing);

export const httpJsonOptions = z
  .strictObject({
    source: z.literal('http-json'),
    /** One label for the reading (one URL reads one queue). */
    queues: queueNames().max(1, { message: 'expected at most one queue name with source http-json (one URL reads one queue)' }).optional(),
    /** Where the numbers are in the document the target URL returns. */
    depthPath: z.string(whenMissing('expected depthPath (where the queue depth is in the JSON) with source http-json')).min(1).max(512),
    oldestAgePath: jsonPathText.optional(),
    /** Unit of the number at oldestAgePath; `timestamp-s`/`timestamp-ms` are the oldest message's epoch time. */
    oldestAgeUnit: z.enum(['s', 'ms', 'timestamp-s', 'timestamp-ms']).default('s'),
    consumersPath: jsonPathText.optional(),
    /** Running totals of messages added and removed (rates are computed from them between runs). */
    arrivedPath: jsonPathText.optional(),
    drainedPath: jsonPathText.optional(),
    ...httpAccess,
    ...limits,
    ...ageLimit,
    ...consumersLimit,
  })
  .refine(passwordNeedsUsername, usernameMissing)
  .refine((o) => o.minConsumers === undefined || o.consumersPath !== undefined, {
    path: ['minConsumers'],
    message: 'expected consumersPath with minConsumers',
  })
  .refine((o) => o.maxOldestAge === undefined || o.oldestAgePath !== undefined, {
    path: ['maxOldestAge'],
    message: 'expected oldestAgePath with maxOldestAge',
  });

export const directoryOptions = z.strictObject({
  source: z.literal('directory'),
  /** Which files count (a glob over the name: *, ?, [abc]), whether sub-folders are read, and a cap on entries read. The target folder is the queue. */
  pattern: z.string().min(1).max(255).default('*'),
  recursive: z.boolean().default(false),
  maxFiles: z.int().min(1).max(1_000_000).default(100_000),
  ...limits,
  ...ageLimit,
});

const variants = [rabbitmqOptions, activemqOptions, artemisOptions, mirthOptions, httpJsonOptions, directoryOptions] as const;

/** Where a queue check reads its numbers from (docs/configuration.md, "queue"). */
export const QUEUE_SOURCES = variants.map((v) => v.shape.source.value);

export const options = z.discriminatedUnion('source', variants, { error: `expected a source: ${QUEUE_SOURCES.join(', ')}` });
export type QueueOptions = z.output<typeof options>;
export type QueueSource = QueueOptions['source'];
/** The options of one source. */
export type SourceOptions<S extends QueueSource> = Extract<QueueOptions, { source: S }>;

/** The queue kind's target: the API's base URL, or for source directory the folder's absolute path. */
export type QueueTarget = (WebTarget & { readonly folder?: undefined }) | { readonly text: string; readonly folder: string };

export const queueTarget = targetSchema<QueueTarget>(
  (s) => parseWebTarget(s) ?? (s.startsWith('/') && !s.includes('\0') ? { text: s, folder: s } : undefined),
  'expected an http:// or https:// URL, or an absolute folder path (source directory)',
);
