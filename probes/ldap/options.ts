// The ldap kind's options block (`ldap: {...}` in a check) and the types the probe reads.
import { FilterParser } from 'ldapts';
import { z } from 'zod';
import { positiveDuration } from '../../config/fields.js';
import { secretName, tlsClient } from '../kit/options.js';
import { targetSchema, type Endpoint } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'bind', 'search'] as const;

/** ldap://host[:port] or ldaps://host[:port] (389 and 636 by default); no DN, query or user info. */
export function parseLdapUrl(s: string): LdapTarget | undefined {
  const m = /^(ldaps?):\/\/([^\s/?#@]+?)\/?$/i.exec(s);
  if (!m || !URL.canParse(s)) return undefined;
  const u = new URL(s);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const secure = (m[1] as string).toLowerCase() === 'ldaps';
  const port = u.port === '' ? (secure ? 636 : 389) : Number(u.port);
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { text: s, secure, host, port };
}

/** The ldap kind's target, parsed on load: ldaps:// (TLS from the start) or ldap://, host and port. */
export interface LdapTarget extends Endpoint {
  readonly secure: boolean;
}

export const ldapUrl = targetSchema(parseLdapUrl, 'expected ldap://host[:port] or ldaps://host[:port]');

/** An LDAP search filter (RFC 4515), checked with the parser the probe uses. */
const ldapFilter = z.string({ error: 'expected an LDAP filter such as (objectClass=person)' }).superRefine((s, ctx) => {
  try {
    FilterParser.parseString(s);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected an LDAP filter (RFC 4515) such as (&(objectClass=person)(uid=probe))' });
  }
});

export const options = z
  .strictObject({
    /** ldap:// only: upgrade the connection with StartTLS before binding. */
    startTls: z.boolean().default(false),
    /** DN to bind as (simple bind); without it the run does no bind (anonymous search). */
    bindDn: z.string().min(1).max(1024).optional(),
    /** Secret name (in the check's `secrets`) of the bind password. */
    password: secretName.optional(),
    /** A search after the bind; the run fails (assertion) when it finds fewer than minEntries. */
    search: z
      .strictObject({
        /** Search base; "" is the root DSE. */
        baseDn: z.string().max(1024),
        filter: ldapFilter.default('(objectClass=*)'),
        scope: z.enum(['base', 'one', 'sub', 'children']).default('sub'),
        minEntries: z.int().min(0).max(10000).default(1),
        /** Attributes to return; "1.1" (the default) asks for none. */
        attributes: z.array(z.string().min(1).max(256)).min(1).max(50).default(['1.1']),
      })
      .optional(),
    /**
     * Send the password policy request control with the bind (1.3.6.1.4.1.42.2.27.8.5.1, not
     * critical): OpenLDAP and 389-ds then say why they refuse (locked, expired, must change) and
     * warn of an expiring password; servers without it (Active Directory) ignore it.
     */
    passwordPolicy: z.boolean().default(true),
    /** ldaps:// or startTls: how the server's certificate is checked. */
    tls: tlsClient.optional(),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    /** A successful run whose phase took longer than its limit is degraded (reason slow), naming the phase. */
    connectDegradedAbove: positiveDuration.optional(),
    tlsDegradedAbove: positiveDuration.optional(),
    bindDegradedAbove: positiveDuration.optional(),
    searchDegradedAbove: positiveDuration.optional(),
  })
  .superRefine((o, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (o.bindDn !== undefined && o.password === undefined) issue(['password'], 'expected password (a secret name) with bindDn');
    if (o.password !== undefined && o.bindDn === undefined) issue(['bindDn'], 'expected bindDn with password');
    if (o.bindDn === undefined && o.search === undefined) issue(['bindDn'], 'expected bindDn (a bind), search, or both');
  });
export type LdapOptions = z.output<typeof options>;
