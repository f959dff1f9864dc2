// The amqp kind's options block (`amqp: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { boundedDuration, positiveDuration } from '../../config/fields.js';
import { secretName, tlsClient } from '../kit/options.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'channel', 'publish', 'transit'] as const;

/** AMQP heartbeats are negotiated in whole seconds, at most 65535. */
const amqpHeartbeat = boundedDuration.refine((ms) => ms % 1000 === 0 && ms <= 65_535_000, {
  message: 'expected whole seconds from 0s to 65535s (0s turns heartbeats off)',
});

export const options = z
  .strictObject({
    /** The virtual host to open. */
    vhost: z.string().min(1).max(255).default('/'),
    username: z.string().min(1).max(255).default('guest'),
    /** Secret name (in the check's `secrets`) of the password; without it, only user guest (password guest). */
    password: secretName.optional(),
    /** amqps: TLS from the start (port 5671 by convention). */
    tls: z.union([z.literal(true), tlsClient]).optional(),
    /** An existing queue the canary goes through (checked passively, never created); default: a server-named, exclusive, auto-delete queue per run. */
    queue: z.string().min(1).max(255).optional(),
    /** The exchange to publish to; "" is the default exchange (routes by queue name). */
    exchange: z.string().max(255).default(''),
    /** With an exchange: the routing key (default: the queue name). */
    routingKey: z.string().max(255).optional(),
    /** Heartbeat interval to ask for; default: the broker's. */
    heartbeat: amqpHeartbeat.optional(),
    /** Every canary is published with this per-message expiration; also the TTL of a server-named queue. */
    messageTtl: positiveDuration.prefault('60s'),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    /** A successful run whose transit took longer is degraded (reason slow). */
    transitDegradedAbove: positiveDuration.optional(),
  })
  .superRefine((o, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (o.username !== 'guest' && o.password === undefined) issue(['password'], 'expected password (a secret name) with a username other than guest');
    if (o.exchange !== '' && o.queue === undefined)
      issue(['queue'], 'expected queue (the queue the exchange routes the canary to, consumed by the probe) with exchange');
    if (o.exchange === '' && o.routingKey !== undefined)
      issue(['routingKey'], 'expected routingKey only with exchange (the default exchange routes by queue name)');
  });
export type AmqpOptions = z.output<typeof options>;
