// The options schema of every probe kind, keyed by kind. This map is the list of kinds: the
// probe registry (probes/registry.ts) is typed against it, so a kind without a probe, or a
// probe without a schema, does not compile.
import { z } from 'zod';
import { boundedDuration, byteSize, duration, hostPort, ipAddress, positiveDuration, regex, splitHostPort } from './fields.js';

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

const RECORD_TYPES = ['A', 'AAAA', 'CNAME', 'MX', 'SRV', 'TXT', 'PTR', 'NS', 'SOA', 'CAA', 'DS', 'DNSKEY'] as const;
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'] as const;
export type DnsRcode = (typeof RCODES)[number];

/** What a section of a DNS reply (answer, authority, additional) must hold. */
const dnsSection = z.strictObject({
  /** Each regex must match at least one record (its text form, e.g. "cosmic.region.local. 300 IN A 10.20.1.5"). */
  mustMatch: z.array(regex).optional(),
  /** No record may match any of these. */
  mustNotMatch: z.array(regex).optional(),
  /** Every record must match at least one of these. */
  allMatch: z.array(regex).optional(),
  /** These record values (the data only: "10.20.1.5", "10 mail.region.local.") must all be present. */
  values: z.array(z.string().min(1)).optional(),
  /** The record values must be exactly this set. */
  exactValues: z.array(z.string().min(1)).optional(),
  minCount: z.int().min(0).max(65535).optional(),
  maxCount: z.int().min(0).max(65535).optional(),
});
export type DnsSectionExpect = z.output<typeof dnsSection>;

const dns = z
  .strictObject({
    /** The name to query. For PTR, an IP address is turned into its reverse name. */
    name: z.string().min(1).max(253),
    type: z.enum(RECORD_TYPES).default('A'),
    transport: z.enum(['auto', 'udp', 'tcp']).default('auto'),
    recursionDesired: z.boolean().default(true),
    /** EDNS0 UDP payload size advertised; 0 sends no OPT record. */
    ednsPayloadSize: z.int().min(0).max(65535).default(1232),
    dnssecOk: z.boolean().default(false),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    /** With several targets: how many must answer as expected ("all" or a number). */
    quorum: z.union([z.literal('all'), z.int().min(1).max(16)]).default('all'),
    /** With several targets: fail when the resolvers that answered disagree on the answer. */
    consistency: z.boolean().default(false),
    /** SOA queries with several targets: largest allowed serial difference (RFC 1982). */
    maxSerialLag: z.int().min(0).max(2 ** 31 - 1).optional(),
    expect: z
      .strictObject({
        rcodes: z.array(z.enum(RCODES)).min(1).default(['NOERROR']),
        /** Accept NOERROR with no answer (NODATA) instead of failing with dns_nodata. */
        nodata: z.boolean().default(false),
        answer: dnsSection.optional(),
        authority: dnsSection.optional(),
        additional: dnsSection.optional(),
      })
      .prefault({}),
  })
  .superRefine((o, ctx) => {
    if (o.maxSerialLag !== undefined && o.type !== 'SOA') {
      ctx.addIssue({ code: 'custom', path: ['maxSerialLag'], message: 'expected maxSerialLag only with type: SOA' });
    }
    if (o.dnssecOk && o.ednsPayloadSize === 0) {
      ctx.addIssue({ code: 'custom', path: ['dnssecOk'], message: 'expected ednsPayloadSize above 0 with dnssecOk (the DO bit travels in the EDNS OPT record)' });
    }
  });
export type DnsOptions = z.output<typeof dns>;

export const KIND_OPTIONS = {
  tcp,
  dns,
} as const;

/** "system" (the OS resolver path) or a resolver's host[:port] (port 53 by default). */
const dnsServer = z.string({ error: 'expected a resolver as host[:port] or "system"' }).refine((s) => s === 'system' || splitHostPort(s) !== undefined || splitHostPort(`${s.includes(':') && !s.startsWith('[') ? `[${s}]` : s}:53`) !== undefined, {
  message: 'expected a resolver as host[:port] (IPv6 in brackets) or "system"',
});

/** What `target` means for each kind. */
export const KIND_TARGET = {
  tcp: hostPort,
  dns: dnsServer,
} as const satisfies Record<keyof typeof KIND_OPTIONS, z.ZodType>;

/** Kinds whose checks may name several targets (`targets: [...]`). */
export const MULTI_TARGET: Readonly<Record<keyof typeof KIND_OPTIONS, boolean>> = { tcp: false, dns: true };

export type Kind = keyof typeof KIND_OPTIONS;
export type KindOptions = { [K in Kind]: z.output<(typeof KIND_OPTIONS)[K]> };
export const KINDS = Object.keys(KIND_OPTIONS) as Kind[];
