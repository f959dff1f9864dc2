// The options schema of every probe kind, keyed by kind. This map is the list of kinds: the
// probe registry (probes/registry.ts) is typed against it, so a kind without a probe, or a
// probe without a schema, does not compile.
import { z } from 'zod';
import { boundedDuration, byteSize, duration, hostPort, ipAddress, positiveDuration, regex } from './fields.js';

const tlsClient = z.strictObject({
  /** SNI and the name the certificate must match; defaults to the target host. */
  serverName: z.string().min(1).optional(),
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  insecureSkipVerify: z.boolean().default(false),
  minVersion: z.enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']).optional(),
  /** A certificate expiring within this time makes the run degraded (reason cert_expiring). */
  expiryWarning: duration.prefault('14d'),
});
export type TlsClientOptions = z.output<typeof tlsClient>;

const tcp = z
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
export type TcpOptions = z.output<typeof tcp>;

export const KIND_OPTIONS = {
  tcp,
} as const;

/** What `target` means for each kind. */
export const KIND_TARGET = {
  tcp: hostPort,
} as const satisfies Record<keyof typeof KIND_OPTIONS, z.ZodType>;

export type Kind = keyof typeof KIND_OPTIONS;
export type KindOptions = { [K in Kind]: z.output<(typeof KIND_OPTIONS)[K]> };
export const KINDS = Object.keys(KIND_OPTIONS) as Kind[];
