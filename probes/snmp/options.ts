// The snmp kind's target (host[:port], UDP port 161 by default) and options block (`snmp: {...}`):
// the SNMP version with its credentials (v2c: a community; v3: a USM user with its keys, each a
// secret's name), and the OIDs to read, each with a name and what its value must be.
import { z } from 'zod';
import { parseEndpoint, targetSchema } from '../kit/target.js';
import { SECRET_NAME, secretName, whenMissing } from '../kit/options.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'request'] as const;

/** A required secret's name, with the message a user reads when it is missing. */
const secretRef = (missing: string) =>
  z.string(whenMissing(missing)).regex(SECRET_NAME, { message: "expected the name of an entry of the check's secrets ([A-Za-z_][A-Za-z0-9_]*)" });

/** host[:port] of an SNMP agent; the port defaults to 161. */
export const snmpTarget = targetSchema(
  (s) => parseEndpoint(s, 161),
  'expected an SNMP agent as host[:port] (UDP port 161 by default; IPv6 in brackets with a port)',
);

/** Most OIDs one check reads (one GET request; each numeric one is a series). */
export const MAX_OIDS = 32;

/** A value an OID may be expected to have: an integer, or a text (a string value, or a name from the OID's `values`). */
const expected = z.union([z.int(), z.string().min(1).max(256)], { error: 'expected an integer or a text' });

/** An OID's name: the label value of its gauge, from the config (never from the agent). */
const oidName = z
  .string({ error: 'expected a name for the OID (letters, digits, _ . : -)' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, { message: 'expected a name of 1–64 letters, digits, _ . : - (it is a metric label value)' });

export const oid = z
  .strictObject({
    /** What the OID is (`ha-state`, `uplink-oper`): the value of the oid_name label and the name in messages. */
    name: oidName,
    /** Numeric dotted form (1.3.6.1.2.1.2.2.1.8.3); a leading dot is dropped. */
    oid: z
      .string({ error: 'expected a numeric OID such as 1.3.6.1.2.1.1.3.0' })
      .regex(/^\.?[0-2](\.(0|[1-9][0-9]{0,9})){1,127}$/, { message: 'expected a numeric OID such as 1.3.6.1.2.1.1.3.0 (names from MIBs are not read)' })
      .transform((s) => s.replace(/^\./, '')),
    /** The value must be this. */
    equals: expected.optional(),
    /** The value must be one of these. */
    oneOf: z.array(expected).min(1).max(32).optional(),
    /** The value must be an integer at least this. */
    min: z.number().optional(),
    /** The value must be an integer at most this. */
    max: z.number().optional(),
    /** The OID must exist (the default when nothing else is expected). */
    exists: z.literal(true).optional(),
    /** Names of integer values, for messages and for `equals`/`oneOf` by name (`{1: up, 2: down}`). */
    values: z
      .record(z.string().regex(/^-?[0-9]{1,10}$/, { message: 'expected an integer value as the key' }), z.string().min(1).max(64))
      .refine((m) => Object.keys(m).length <= 64, { message: 'expected at most 64 named values' })
      .optional(),
  })
  .superRefine((o, ctx) => {
    const given = [o.equals !== undefined, o.oneOf !== undefined, o.min !== undefined || o.max !== undefined, o.exists === true].filter(Boolean).length;
    if (given > 1) ctx.addIssue({ code: 'custom', path: ['equals'], message: 'expected one of equals, oneOf, min/max or exists' });
    if (o.min !== undefined && o.max !== undefined && o.min > o.max) ctx.addIssue({ code: 'custom', path: ['min'], message: 'expected min at most max' });
  });
export type OidSpec = z.output<typeof oid>;

const shared = {
  ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
  /** Retransmissions of a request that got no answer, within the run's budget (each waits its share of what is left). */
  retries: z.int().min(0).max(5).default(1),
  /** The OIDs to read, in one GET. */
  oids: z
    .array(oid, whenMissing('expected oids: a list of { name, oid } with what each must be'))
    .min(1, { message: 'expected at least one OID' })
    .max(MAX_OIDS, { message: `expected at most ${MAX_OIDS} OIDs` }),
};

/** Names must be unique: each is a series. */
function uniqueNames(o: { oids: readonly OidSpec[] }, ctx: z.core.$RefinementCtx): void {
  const seen = new Set<string>();
  o.oids.forEach((item, i) => {
    if (seen.has(item.name)) ctx.addIssue({ code: 'custom', path: ['oids', i, 'name'], message: `expected a name not used by another OID ("${item.name}")` });
    seen.add(item.name);
  });
}

/** SNMPv2c: a community string, from the check's secrets. */
export const v2cOptions = z
  .strictObject({
    version: z.literal('2c').default('2c'),
    /** Secret name of the community string. */
    community: secretRef('expected community (a secret name) with version 2c'),
    ...shared,
  })
  .superRefine(uniqueNames);

export const AUTH_PROTOCOLS = ['md5', 'sha', 'sha224', 'sha256', 'sha384', 'sha512'] as const;
export const PRIV_PROTOCOLS = ['aes', 'aes256b', 'aes256r'] as const;

/** SNMPv3 with the user-based security model: authNoPriv, or authPriv with privProtocol and privKey. */
export const v3Options = z
  .strictObject({
    version: z.literal([3, '3']).transform(() => '3' as const),
    /** The USM user name (plain text, not a secret). */
    user: z.string(whenMissing('expected user with version 3')).min(1).max(32),
    authProtocol: z.enum(AUTH_PROTOCOLS).default('sha'),
    /** Secret name of the authentication passphrase. */
    authKey: secretRef('expected authKey (a secret name) with version 3'),
    /** Privacy (encryption): AES-128 (aes), or the AES-256 key extensions of Blumenthal (aes256b, Cisco's) or Reeder (aes256r). */
    privProtocol: z.enum(PRIV_PROTOCOLS).optional(),
    /** Secret name of the privacy passphrase. */
    privKey: secretName.optional(),
    /** SNMPv3 context name (empty by default). */
    context: z.string().max(64).default(''),
    ...shared,
  })
  .superRefine((o, ctx) => {
    if (o.privProtocol !== undefined && o.privKey === undefined)
      ctx.addIssue({ code: 'custom', path: ['privKey'], message: 'expected privKey (a secret name) with privProtocol' });
    if (o.privKey !== undefined && o.privProtocol === undefined)
      ctx.addIssue({ code: 'custom', path: ['privProtocol'], message: `expected privProtocol (${PRIV_PROTOCOLS.join(', ')}) with privKey` });
    uniqueNames(o, ctx);
  });

export const options = z.discriminatedUnion('version', [v2cOptions, v3Options], { error: 'expected version: 2c or 3 (SNMPv1 is not offered)' });
export type SnmpOptions = z.output<typeof options>;
