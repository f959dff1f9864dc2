// The dns kind's options block (`dns: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { regex } from '../../config/fields.js';
import { parseEndpoint, targetSchema, type Endpoint } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'request'] as const;

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

export const options = z
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
    maxSerialLag: z
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .optional(),
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
      ctx.addIssue({
        code: 'custom',
        path: ['dnssecOk'],
        message: 'expected ednsPayloadSize above 0 with dnssecOk (the DO bit travels in the EDNS OPT record)',
      });
    }
  });
export type DnsOptions = z.output<typeof options>;

/** A dns check's target, parsed on load: the OS resolver path, or a resolver's host and port. */
export type DnsServer = { readonly text: 'system'; readonly system: true } | (Endpoint & { readonly system: false });

/** "system" (the OS resolver path) or a resolver's host[:port] (port 53 by default). */
export const dnsServer = targetSchema<DnsServer>((s) => {
  if (s === 'system') return { text: 'system', system: true };
  const e = parseEndpoint(s, 53);
  return e ? { ...e, system: false } : undefined;
}, 'expected a resolver as host[:port] (IPv6 in brackets) or "system"');
