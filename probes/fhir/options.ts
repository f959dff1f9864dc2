// The fhir kind's options block (`fhir: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { byteSize } from '../../config/fields.js';
import { secretName, tlsClient } from '../kit/options.js';
import { parseWebTarget } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'metadata', 'token', 'query'] as const;

/** FHIR release names and the version numbers they stand for (http://hl7.org/fhir/directory.html). */
const RELEASES: Readonly<Record<string, string>> = { DSTU2: '1.0', STU3: '3.0', R4: '4.0', R4B: '4.3', R5: '5.0', R6: '6.0' };

/** `R4` or a version prefix (`4.0`, `4.0.1`): the prefix the CapabilityStatement's fhirVersion must have. */
const fhirVersion = z.string({ error: 'expected a FHIR version: R4, R4B, R5, STU3, DSTU2 or a version such as 4.0 or 4.0.1' }).transform((s, ctx) => {
  const v = RELEASES[s.toUpperCase()] ?? s;
  if (!/^\d{1,2}\.\d{1,2}(\.\d{1,3})?$/.test(v)) {
    ctx.addIssue({ code: 'custom', message: `expected a FHIR version: ${Object.keys(RELEASES).join(', ')} or a version such as 4.0 or 4.0.1` });
    return z.NEVER;
  }
  return v;
});

const TYPE = '[A-Z][A-Za-z]{1,63}';
/** A read: `Patient/123` (a logical id: letters, digits, - and ., at most 64). */
const readPath = z.string().regex(new RegExp(`^${TYPE}/[A-Za-z0-9.-]{1,64}$`), { message: 'expected ResourceType/id, e.g. Patient/123' });
/** A search: `Patient?identifier=...` or `Patient` (the query as FHIR search parameters, URL-encoded as needed). */
const searchPath = z
  .string()
  .max(2048)
  .regex(new RegExp(`^${TYPE}(\\?[^\\s#]*)?$`), { message: 'expected ResourceType?parameters, e.g. Patient?identifier=urn:oid:1.2.3|42&_count=1' });

export const options = z
  .strictObject({
    /** The version the CapabilityStatement's fhirVersion must have: R4 (4.0), a release name, or a version prefix. */
    fhirVersion: fhirVersion.prefault('R4'),
    /** CapabilityStatement.status values accepted. */
    status: z
      .array(z.enum(['draft', 'active', 'retired', 'unknown']))
      .min(1)
      .default(['active']),
    /** A resource to read after the metadata (ResourceType/id). */
    read: readPath.optional(),
    /** A search to run after the metadata (ResourceType?parameters). */
    search: searchPath.optional(),
    expect: z
      .strictObject({
        /** The resource type the read must return; default: the type in `read`. */
        resourceType: z
          .string()
          .regex(new RegExp(`^${TYPE}$`), { message: 'expected a FHIR resource type, e.g. Patient' })
          .optional(),
        /** The search must find at least this many (Bundle.total, or its entries when the server sends no total). */
        minTotal: z.int().min(0).optional(),
        /** ... and at most this many. */
        maxTotal: z.int().min(0).optional(),
      })
      .prefault({}),
    /** Secret name of a bearer token sent with the read or search (a long-lived API token). */
    bearerToken: secretName.optional(),
    /** SMART backend services (client_credentials): the client's id; the token is fetched each run. */
    clientId: z.string().min(1).max(256).optional(),
    /** Secret name of the client secret. */
    clientSecret: secretName.optional(),
    /** basic: HTTP Basic (RFC 6749 2.3.1, the default); body: client_id and client_secret in the form. */
    clientAuth: z.enum(['basic', 'body']).default('basic'),
    /** Space-separated scopes, e.g. system/Patient.read. */
    scope: z.string().min(1).max(1024).optional(),
    /** The token endpoint; default: the CapabilityStatement's SMART oauth-uris `token`. */
    tokenUrl: z
      .string()
      .refine((s) => parseWebTarget(s) !== undefined, { message: 'expected an http:// or https:// URL' })
      .optional(),
    /** Larger responses fail the run (body_too_large). A server's full CapabilityStatement may be a few hundred KB. */
    maxBodySize: byteSize.default(4 * 1024 * 1024),
    tls: tlsClient.optional(),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    userAgent: z.string().min(1).default('vakt (synthetic monitoring)'),
  })
  .superRefine((o, ctx) => {
    const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (o.read !== undefined && o.search !== undefined) issue(['search'], 'expected either read or search, not both');
    if ((o.expect.minTotal !== undefined || o.expect.maxTotal !== undefined) && o.search === undefined)
      issue(['expect', o.expect.minTotal !== undefined ? 'minTotal' : 'maxTotal'], 'expected minTotal and maxTotal only with search');
    if (o.expect.minTotal !== undefined && o.expect.maxTotal !== undefined && o.expect.maxTotal < o.expect.minTotal)
      issue(['expect', 'maxTotal'], 'expected maxTotal at or above minTotal');
    if (o.expect.resourceType !== undefined && o.read === undefined) issue(['expect', 'resourceType'], 'expected expect.resourceType only with read');
    if (o.bearerToken !== undefined && o.clientId !== undefined) issue(['clientId'], 'expected either bearerToken or clientId (a token is fetched), not both');
    if (o.clientId !== undefined && o.clientSecret === undefined) issue(['clientSecret'], 'expected clientSecret with clientId');
    if (o.clientId === undefined)
      for (const key of ['clientSecret', 'scope', 'tokenUrl'] as const) if (o[key] !== undefined) issue([key], `expected ${key} only with clientId`);
  });
export type FhirOptions = z.output<typeof options>;
