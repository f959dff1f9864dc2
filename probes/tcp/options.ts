// The tcp kind's options block (`tcp: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { boundedDuration, byteSize, ipAddress, positiveDuration, regex } from '../../config/fields.js';
import { tlsClient } from '../kit/options.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'send', 'expect'] as const;

export const options = z
  .strictObject({
    /** Source address to bind, to pin the path through one member of a firewall pair. */
    sourceAddress: ipAddress.optional(),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    /** Connection attempts per run; loss ratio and connect-time spread come from these. */
    samples: z.int().min(1).max(100).default(1),
    /** Time between starting two samples. */
    sampleSpacing: boundedDuration.prefault('100ms'),
    /** Per-attempt connect timeout; defaults to the check's timeout. */
    connectTimeout: positiveDuration.optional(),
    /** Per-attempt limit on the whole conversation (connect, TLS, send, expect). Attempts always end shortly before the check's timeout. */
    attemptTimeout: positiveDuration.optional(),
    /** `blocked`: the port must NOT be reachable (firewall policy); success here is a failure. */
    expect: z.enum(['reachable', 'blocked']).default('reachable'),
    tls: z.union([z.literal(true), tlsClient]).optional(),
    /** Bytes sent after connecting (YAML double quotes allow "\r\n"). */
    send: z.string().optional(),
    /** Regex over the first bytes read. */
    receive: regex.optional(),
    maxRead: byteSize.default(65536),
  })
  .superRefine((o, ctx) => {
    if (o.expect === 'blocked' && (o.tls !== undefined || o.send !== undefined || o.receive !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['expect'], message: 'expected no tls, send or receive together with expect: blocked' });
    }
  });
export type TcpOptions = z.output<typeof options>;
