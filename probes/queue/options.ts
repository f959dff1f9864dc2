// The queue kind's options block (`queue: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { byteSize, positiveDuration } from '../../config/fields.js';
import { secretName, tlsClient } from '../kit/options.js';

/** Where a queue check reads its numbers from (docs/configuration.md, "queue"). */
export const QUEUE_SOURCES = ['rabbitmq', 'activemq', 'artemis', 'mirth', 'http-json', 'directory'] as const;
export type QueueSource = (typeof QUEUE_SOURCES)[number];
/** Sources that report consumers (minConsumers needs one of these). */
export const QUEUE_SOURCES_WITH_CONSUMERS: readonly QueueSource[] = ['rabbitmq', 'activemq', 'artemis', 'http-json'];

/** A JSON path as the http kind's assertions take it: `$.a.b[0].c`. */
const jsonPathText = z.string().min(1).max(512);

export const options = z
  .strictObject({
    source: z.enum(QUEUE_SOURCES, { error: `expected a source: ${QUEUE_SOURCES.join(', ')}` }),
    /**
     * What to read: queue names (rabbitmq, activemq, artemis), channel names or ids (mirth; all
     * channels when omitted), one label for http-json. Not for directory (the folder is the queue).
     */
    queues: z
      .array(z.string().min(1).max(255))
      .min(1)
      .max(100)
      .refine((qs) => new Set(qs).size === qs.length, { message: 'expected each queue once' })
      .optional(),
    /** rabbitmq: the virtual host. */
    vhost: z.string().max(255).default('/'),
    /** activemq: brokerName (default localhost); artemis: the broker name (default 0.0.0.0). */
    broker: z.string().min(1).max(255).optional(),
    /** artemis: the queue's address (default: the queue name) and routing type. */
    address: z.string().min(1).max(255).optional(),
    routingType: z.enum(['anycast', 'multicast']).default('anycast'),
    /** activemq/artemis: the Jolokia endpoint's path (default /api/jolokia/ and /console/jolokia/). */
    jolokiaPath: z.string().regex(/^\//, { message: 'expected a path starting with /' }).optional(),
    /** HTTP Basic credentials; the password is a secret name. */
    username: z.string().min(1).max(255).optional(),
    password: secretName.optional(),
    /** https targets: how the server's certificate is checked. */
    tls: tlsClient.optional(),
    /** Largest API response read; a bigger one fails the run (reason body_too_large). */
    maxBodySize: byteSize.default(4 * 1024 * 1024),
    /** http-json: where the numbers are in the document the target URL returns. */
    depthPath: jsonPathText.optional(),
    oldestAgePath: jsonPathText.optional(),
    /** Unit of the number at oldestAgePath; `timestamp-s`/`timestamp-ms` are the oldest message's epoch time. */
    oldestAgeUnit: z.enum(['s', 'ms', 'timestamp-s', 'timestamp-ms']).default('s'),
    consumersPath: jsonPathText.optional(),
    /** Running totals of messages added and removed (rates are computed from them between runs). */
    arrivedPath: jsonPathText.optional(),
    drainedPath: jsonPathText.optional(),
    /** directory: which files count (a glob over the name: *, ?, [abc]), whether sub-folders are read, and a cap on entries read. */
    pattern: z.string().min(1).max(255).default('*'),
    recursive: z.boolean().default(false),
    maxFiles: z.int().min(1).max(1_000_000).default(100_000),
    /** The run fails (reason backlog) when a queue holds more than this many messages. */
    maxDepth: z.int().min(0).optional(),
    /** The run fails (reason backlog) when a queue's oldest message is older than this. */
    maxOldestAge: positiveDuration.optional(),
    /** The run fails (reason consumers) when a queue has fewer consumers than this. */
    minConsumers: z.int().min(0).max(100_000).optional(),
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
    /** mirth: channel states that count as running (others fail the run, reason queue_stopped). */
    runningStates: z.array(z.string().min(1).max(32)).min(1).default(['STARTED']),
  })
  .superRefine((o, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const named = ['rabbitmq', 'activemq', 'artemis'] as QueueSource[];
    if (named.includes(o.source) && o.queues === undefined) issue(['queues'], `expected queues (the names to read) with source ${o.source}`);
    if (o.source === 'directory' && o.queues !== undefined) issue(['queues'], 'expected no queues with source directory (the target folder is the queue)');
    if (o.source === 'http-json') {
      if (o.depthPath === undefined) issue(['depthPath'], 'expected depthPath (where the queue depth is in the JSON) with source http-json');
      if (o.queues !== undefined && o.queues.length > 1) issue(['queues'], 'expected at most one queue name with source http-json (one URL reads one queue)');
    }
    if (o.source !== 'http-json') {
      for (const key of ['depthPath', 'oldestAgePath', 'consumersPath', 'arrivedPath', 'drainedPath'] as const)
        if (o[key] !== undefined) issue([key], 'expected this only with source http-json');
    }
    if (o.minConsumers !== undefined && !QUEUE_SOURCES_WITH_CONSUMERS.includes(o.source))
      issue(['minConsumers'], `expected minConsumers only with a source that reports consumers (${QUEUE_SOURCES_WITH_CONSUMERS.join(', ')})`);
    if (o.minConsumers !== undefined && o.source === 'http-json' && o.consumersPath === undefined)
      issue(['minConsumers'], 'expected consumersPath with minConsumers');
    if (o.maxOldestAge !== undefined && (o.source === 'activemq' || o.source === 'mirth'))
      issue(['maxOldestAge'], `expected no maxOldestAge with source ${o.source} (it does not report message age)`);
    const jolokia = o.source === 'activemq' || o.source === 'artemis';
    if (!jolokia && o.jolokiaPath !== undefined) issue(['jolokiaPath'], 'expected jolokiaPath only with source activemq or artemis');
    if (!jolokia && o.broker !== undefined) issue(['broker'], 'expected broker only with source activemq or artemis');
    if (o.source !== 'artemis' && o.address !== undefined) issue(['address'], 'expected address only with source artemis');
    if (o.maxOldestAge !== undefined && o.source === 'http-json' && o.oldestAgePath === undefined)
      issue(['maxOldestAge'], 'expected oldestAgePath with maxOldestAge');
    if (o.password !== undefined && o.username === undefined) issue(['username'], 'expected username with password');
    if (o.source === 'directory' && (o.username !== undefined || o.tls !== undefined))
      issue([o.username !== undefined ? 'username' : 'tls'], 'expected no credentials or tls with source directory');
  });
export type QueueOptions = z.output<typeof options>;

/** The queue kind's target: the API's base URL, or for source directory the folder's absolute path. */
export const queueTarget = z
  .string({ error: 'expected an http(s) URL or an absolute folder path' })
  .refine((s) => (/^https?:\/\/[^\s/]+/.test(s) && URL.canParse(s)) || (s.startsWith('/') && !s.includes('\0')), {
    message: 'expected an http:// or https:// URL, or an absolute folder path (source directory)',
  });
