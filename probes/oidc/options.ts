// The oidc kind's options block (`oidc: {...}` in a check) and the types the probe reads: one
// variant per grant (client_credentials, password), the keys both take spread from one object.
import { z } from 'zod';
import { byteSize, duration } from '../../config/fields.js';
import { SECRET_NAME, secretName, tlsClient, whenMissing } from '../kit/options.js';
import { parseWebTarget } from '../kit/target.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['discovery', 'resolve', 'connect', 'tls', 'token', 'resource'] as const;

/** Form parameters the oidc probe sets itself; `params` may not override them. */
const OIDC_OWN_PARAMS = ['grant_type', 'client_id', 'client_secret', 'username', 'password', 'scope'];

/** The keys of both grants. */
const shared = {
  /** true: target is the issuer (or its discovery URL); the token endpoint comes from its discovery document. false: target is the token endpoint. */
  discovery: z.boolean().default(true),
  clientId: z.string().min(1).max(256),
  /** Secret name (in the check's `secrets`) of the client secret. */
  clientSecret: secretName.optional(),
  /** basic: HTTP Basic (RFC 6749 2.3.1); body: client_id/client_secret in the form; none: client_id only (public client, or mutual TLS). Default: basic with clientSecret, else none. */
  clientAuth: z.enum(['basic', 'body', 'none']).optional(),
  /** Space-separated scopes, e.g. "openid profile". */
  scope: z.string().min(1).max(1024).optional(),
  /** More form parameters of the token request (audience, resource, ...). Plain text: never secrets. */
  params: z
    .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'expected a form parameter name ([A-Za-z0-9_.-], at most 64)' }), z.string().max(1024))
    .optional(),
  expect: z
    .strictObject({
      /** token_type the response must have (compared case-insensitively, RFC 6749 5.1). */
      tokenType: z.string().min(1).max(64).default('Bearer'),
      /** Fail when the response has no expires_in (it is only RECOMMENDED by RFC 6749). */
      requireExpiresIn: z.boolean().default(true),
      /** expires_in must be at least this long. */
      minExpiresIn: duration.optional(),
      /** The response must carry an id_token (a JWT; OpenID scope). */
      idToken: z.boolean().default(false),
      /** discovery: the document's issuer must be exactly this. */
      issuer: z.string().min(1).optional(),
    })
    .prefault({}),
  /** A protected resource (or the userinfo endpoint) called with the new token. */
  resource: z
    .strictObject({
      /** An http(s) URL, or `userinfo` for the discovery document's userinfo_endpoint. */
      url: z.string({ error: 'expected an http(s) URL or userinfo' }).refine((s) => s === 'userinfo' || parseWebTarget(s) !== undefined, {
        message: 'expected an http:// or https:// URL, or userinfo',
      }),
      /** Accepted statuses; default any 2xx. */
      expectStatus: z.array(z.int().min(100).max(599)).min(1).optional(),
    })
    .optional(),
  /** Larger response bodies (discovery, token, resource) fail the run (body_too_large). */
  maxBodySize: byteSize.default(256 * 1024),
  tls: tlsClient.optional(),
  ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
  userAgent: z.string().min(1).default('vakt (synthetic monitoring)'),
};

/** The rules between shared keys, the same in both grants. */
function sharedRules(o: z.output<z.ZodObject<typeof shared>>, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (o.clientAuth === 'none' && o.clientSecret !== undefined) issue(['clientAuth'], 'expected basic or body with clientSecret (none sends no secret)');
  if ((o.clientAuth === 'basic' || o.clientAuth === 'body') && o.clientSecret === undefined)
    issue(['clientAuth'], `expected clientSecret with clientAuth: ${o.clientAuth}`);
  for (const key of Object.keys(o.params ?? {}))
    if (OIDC_OWN_PARAMS.includes(key))
      issue(['params', key], `expected a parameter the probe does not set itself (${OIDC_OWN_PARAMS.join(', ')} come from their own keys)`);
  if (!o.discovery && o.expect.issuer !== undefined) issue(['expect', 'issuer'], 'expected expect.issuer only with discovery: true');
  if (!o.discovery && o.resource?.url === 'userinfo') issue(['resource', 'url'], 'expected an http(s) URL (userinfo needs discovery: true)');
}

/** The application logs in as itself: the default grant. */
export const clientCredentialsOptions = z
  .strictObject({
    grant: z.literal('client_credentials').default('client_credentials'),
    ...shared,
  })
  .superRefine((o, ctx) => {
    if (o.clientSecret === undefined && o.tls?.certFile === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['clientSecret'],
        message: 'expected clientSecret (or tls.certFile for mutual TLS) with grant: client_credentials',
      });
    sharedRules(o, ctx);
  });

/** A (test) user logs in through the client: username and password are required. */
export const passwordOptions = z
  .strictObject({
    grant: z.literal('password'),
    ...shared,
    /** Plain text, but never quoted in messages or labels. */
    username: z.string(whenMissing('expected username with grant: password')).min(1).max(256),
    /** Secret name of the user's password. */
    password: z
      .string(whenMissing('expected password (a secret name) with grant: password'))
      .regex(SECRET_NAME, { message: "expected the name of an entry of the check's secrets ([A-Za-z_][A-Za-z0-9_]*)" }),
  })
  .superRefine(sharedRules);

export const options = z.discriminatedUnion('grant', [clientCredentialsOptions, passwordOptions], {
  error: 'expected a grant: client_credentials, password',
});
export type OidcOptions = z.output<typeof options>;
