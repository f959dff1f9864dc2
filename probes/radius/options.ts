// The radius kind's target (host[:port], UDP port 1812 by default) and options block (`radius: {...}`).
import { isIP } from 'node:net';
import { z } from 'zod';
import { positiveDuration } from '../../config/fields.js';
import { secretName } from '../kit/options.js';
import { parseEndpoint, targetSchema } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'request'] as const;

/** host[:port] of a RADIUS server; the port defaults to 1812 (RFC 2865's authentication port). */
export const radiusTarget = targetSchema(
  (s) => parseEndpoint(s, 1812),
  'expected a RADIUS server as host[:port] (UDP port 1812 by default; IPv6 in brackets with a port)',
);

/** A text attribute's value: 1 to 253 octets in UTF-8 (what one RADIUS attribute carries). */
const attributeText = (what: string) =>
  z
    .string({ error: `expected ${what} as text` })
    .min(1, { message: `expected ${what} of at least 1 character` })
    .refine((s) => Buffer.byteLength(s, 'utf8') <= 253, { message: `expected ${what} of at most 253 bytes in UTF-8 (one RADIUS attribute)` });

export const options = z.strictObject({
  /** User-Name of the probe account (not a secret). */
  username: attributeText('a user name'),
  /** Secret name (in the check's `secrets`) of the probe account's password. */
  password: secretName,
  /** Secret name of the shared secret the server has for this client (the agent's address). */
  sharedSecret: secretName,
  /** How the password travels: PAP (User-Password hidden with the shared secret) or CHAP (only its MD5 response). */
  method: z.enum(['pap', 'chap']).default('pap'),
  /** NAS-Identifier sent with the request; "vakt" when neither it nor nasIpAddress is set (RFC 2865 4.1 wants one of them). */
  nasIdentifier: attributeText('a NAS-Identifier').optional(),
  /** NAS-IP-Address sent with the request (an IPv4 address). */
  nasIpAddress: z
    .string({ error: 'expected an IPv4 address' })
    .refine((s) => isIP(s) === 4, { message: 'expected an IPv4 address such as 10.0.0.5' })
    .optional(),
  /** Retransmissions of the same request (same Identifier and Request Authenticator) while no answer comes, within the run's timeout. */
  retransmits: z.int().min(0).max(10).default(2),
  /**
   * Time without an answer before the request is sent again. Above FreeRADIUS's reject_delay
   * (1 s by default: an Access-Reject is held back that long), so a refused login is not retransmitted.
   */
  retransmitInterval: positiveDuration.prefault('2s'),
  /** A reply without a Message-Authenticator fails (reason protocol): servers patched for BlastRADIUS (CVE-2024-3596) always send one. */
  requireMessageAuthenticator: z.boolean().default(false),
  ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
  /** A successful run whose request took longer than this is degraded (reason slow). */
  requestDegradedAbove: positiveDuration.optional(),
  /** Attributes the Access-Accept must carry (any one of several of a type may match): the network access the login grants. */
  expect: z
    .strictObject({
      filterId: attributeText('a Filter-Id').optional(),
      class: attributeText('a Class').optional(),
      /** The VLAN a Wi-Fi or wired login lands in (RFC 3580), without its tag octet. */
      tunnelPrivateGroupId: attributeText('a Tunnel-Private-Group-Id').optional(),
    })
    .refine((e) => Object.values(e).some((v) => v !== undefined), { message: 'expected at least one of filterId, class, tunnelPrivateGroupId' })
    .optional(),
});
export type RadiusOptions = z.output<typeof options>;
