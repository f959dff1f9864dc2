// The icmp kind's target (a host: a name, an IPv4 address or an IPv6 address) and options block (`icmp: {...}`).
import { isIP } from 'node:net';
import { z } from 'zod';
import { boundedDuration, positiveDuration } from '../../config/fields.js';
import { targetSchema, type Target } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'rtt'] as const;

/** A host to ping: a name or an address, nothing else. */
export interface IcmpTarget extends Target {
  readonly host: string;
}

/** A host name (RFC 1123 labels) or an IP address (IPv6 with or without brackets); no port, no path. */
export function parseIcmpTarget(s: string): IcmpTarget | undefined {
  const bare = /^\[([0-9a-fA-F:.]+)\]$/.exec(s)?.[1] ?? s;
  if (isIP(bare) !== 0) return { text: s, host: bare };
  if (s.length > 253 || !/^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*\.?$/.test(s))
    return undefined;
  return { text: s, host: s };
}

export const icmpTarget = targetSchema(parseIcmpTarget, 'expected a host to ping: a name or an IP address, without a port');

export const options = z.strictObject({
  /** Echo requests per run; loss ratio and round-trip spread come from these. */
  count: z.int().min(1).max(20).default(3),
  /** Time between two echo requests of a run (iputils ping refuses less than 2 ms to a user without privileges). */
  interval: boundedDuration.prefault('200ms').refine((ms) => ms >= 2, { message: 'expected an interval of at least 2ms' }),
  /** ICMP payload bytes (ping -s): 56 gives the usual 84-byte IPv4 packet. */
  size: z.int().min(0).max(1472).default(56),
  ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
  /** A successful run whose median round trip is longer is degraded (reason slow). */
  rttDegradedAbove: positiveDuration.optional(),
  /**
   * The share of requests that may go unanswered before the run fails (0..1). Below it, and above
   * 0, the run is degraded (sample_loss); every request lost always fails.
   */
  maxLoss: z.number().min(0).max(1).default(1),
});
export type IcmpOptions = z.output<typeof options>;
