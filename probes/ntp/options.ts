// The ntp kind's target (host[:port], port 123 by default) and options block (`ntp: {...}`).
import { z } from 'zod';
import { boundedDuration, positiveDuration } from '../../config/fields.js';
import { parseEndpoint, targetSchema } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'request'] as const;

/** host[:port] of an NTP server; the port defaults to 123. */
export const ntpTarget = targetSchema(
  (s) => parseEndpoint(s, 123),
  'expected an NTP server as host[:port] (port 123 by default; IPv6 in brackets with a port)',
);

export const options = z
  .strictObject({
    /** NTP version sent in the request (the server answers in the same). */
    version: z.union([z.literal(3), z.literal(4)]).default(4),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    /** Requests per run; the answer with the smallest round trip is judged (the most accurate offset). */
    samples: z.int().min(1).max(8).default(1),
    /** Time between two requests of a run. */
    sampleSpacing: boundedDuration.prefault('250ms'),
    /** The server's clock this far from ours (either way) makes the run degraded (reason clock_offset). */
    offsetDegradedAbove: positiveDuration.prefault('1s'),
    /**
     * This far off (either way) fails the run (reason clock_skew). Kerberos, and so every Active
     * Directory login, refuses clocks 5 minutes apart: the default fails at 1 minute, while
     * there is still time to act.
     */
    maxOffset: positiveDuration.prefault('1m'),
    /** A stratum above this fails the run (reason ntp_unsynchronised); 16 is "not synchronised" by definition. */
    maxStratum: z.int().min(1).max(15).default(15),
    /** A root distance (root delay / 2 + root dispersion) above this makes the run degraded (reason clock_offset): the server's own time is uncertain by that much. */
    maxRootDistance: positiveDuration.prefault('1500ms'),
  })
  .superRefine((o, ctx) => {
    if (o.offsetDegradedAbove >= o.maxOffset) {
      ctx.addIssue({ code: 'custom', path: ['offsetDegradedAbove'], message: 'expected offsetDegradedAbove below maxOffset' });
    }
  });
export type NtpOptions = z.output<typeof options>;
