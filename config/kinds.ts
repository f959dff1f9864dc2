// The options schema of every probe kind, keyed by kind. This map is the list of kinds: the
// probe registry (probes/registry.ts) is typed against it, so a kind without a probe, or a
// probe without a schema, does not compile.
import { FilterParser } from 'ldapts';
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
export type DnsOptions = z.output<typeof dns>;

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const varName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'expected a variable name ([A-Za-z_][A-Za-z0-9_]*)' });

/** What a response must look like. A mismatch fails the step (reason http_status or assertion). */
const httpExpect = z.strictObject({
  /** Accepted status codes of the final response; default any 2xx. */
  status: z.array(z.int().min(100).max(599)).min(1).optional(),
  bodyMatches: z.array(regex).optional(),
  bodyNotMatches: z.array(regex).optional(),
  bodyContains: z.array(z.string().min(1)).optional(),
  /** JSON path ($.a.b[0]) -> expected value. */
  json: z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  /** JSON paths that must exist. */
  jsonExists: z.array(z.string().min(1)).optional(),
  /** Header name -> regex its value must match. */
  headers: z.record(z.string().min(1), regex).optional(),
  /** The step must take at most this long (a failure, reason assertion; for "slow", use degradedAbove). */
  maxDuration: positiveDuration.optional(),
});

/** Where a variable for later steps comes from. */
const httpExtract = z.union([
  z.strictObject({ regex, group: z.int().min(0).max(20).default(1) }),
  z.strictObject({ jsonPath: z.string().min(1) }),
  z.strictObject({ header: z.string().min(1) }),
  z.strictObject({ cookie: z.string().min(1) }),
]);

const httpRequest = {
  method: z.enum(HTTP_METHODS).default('GET'),
  /** Absolute URL, or a path relative to the check's target. Templated: ${secret.NAME}, ${var.NAME}. */
  url: z.string().min(1).optional(),
  headers: z.record(z.string().min(1), z.string()).optional(),
  /** Sent as application/x-www-form-urlencoded. */
  form: z.record(z.string().min(1), z.string()).optional(),
  /** Sent as application/json (string leaves templated). */
  json: z.unknown().optional(),
  body: z.string().optional(),
  followRedirects: z.boolean().default(true),
  expect: httpExpect.prefault({}),
  extract: z.record(varName, httpExtract).optional(),
  /** A step slower than this makes the run degraded (reason slow), naming the step. */
  degradedAbove: positiveDuration.optional(),
};

const httpStep = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, { message: 'expected a step name of lowercase letters, digits, "-" and "_" (at most 32)' }),
    ...httpRequest,
  })
  .superRefine(bodyRules);

function bodyRules(o: { form?: unknown; json?: unknown; body?: unknown }, ctx: z.RefinementCtx): void {
  const bodies = [o.form, o.json, o.body].filter((b) => b !== undefined).length;
  if (bodies > 1) ctx.addIssue({ code: 'custom', path: ['body'], message: 'expected at most one of form, json and body' });
}

const http = z
  .strictObject({
    /** Several requests in order, sharing cookies and variables (a login flow). */
    steps: z.array(httpStep).min(1).max(20).optional(),
    ...httpRequest,
    maxRedirects: z.int().min(0).max(30).default(10),
    /** Larger response bodies fail the step (reason body_too_large) instead of being read on. */
    maxBodySize: byteSize.default(1024 * 1024),
    tls: tlsClient.optional(),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    userAgent: z.string().min(1).default('vakt (synthetic monitoring)'),
  })
  .superRefine((o, ctx) => {
    bodyRules(o, ctx);
    if (o.steps !== undefined) {
      for (const key of ['url', 'headers', 'form', 'json', 'body', 'extract', 'degradedAbove'] as const) {
        if (o[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `expected ${key} inside a step when steps are given` });
      }
      const names = new Set<string>();
      o.steps.forEach((st, i) => {
        if (names.has(st.name)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'name'], message: 'expected a unique step name' });
        names.add(st.name);
      });
    }
  });
export type HttpOptions = z.output<typeof http>;
export type HttpStepOptions = z.output<typeof httpStep>;

/** What a secret's name looks like (an entry of the check's `secrets`). */
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The name of an entry of the check's `secrets` (the value itself is never written here). */
const secretName = z
  .string({ error: "expected the name of an entry of the check's secrets" })
  .regex(SECRET_NAME, { message: "expected the name of an entry of the check's secrets ([A-Za-z_][A-Za-z0-9_]*)" });
/** Form parameters the oidc probe sets itself; `params` may not override them. */
const OIDC_OWN_PARAMS = ['grant_type', 'client_id', 'client_secret', 'username', 'password', 'scope'];

const oidc = z
  .strictObject({
    /** true: target is the issuer (or its discovery URL); the token endpoint comes from its discovery document. false: target is the token endpoint. */
    discovery: z.boolean().default(true),
    grant: z.enum(['client_credentials', 'password']).default('client_credentials'),
    clientId: z.string().min(1).max(256),
    /** Secret name (in the check's `secrets`) of the client secret. */
    clientSecret: secretName.optional(),
    /** basic: HTTP Basic (RFC 6749 2.3.1); body: client_id/client_secret in the form; none: client_id only (public client, or mutual TLS). Default: basic with clientSecret, else none. */
    clientAuth: z.enum(['basic', 'body', 'none']).optional(),
    /** grant: password only. */
    username: z.string().min(1).max(256).optional(),
    /** grant: password only: secret name of the user's password. */
    password: secretName.optional(),
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
        url: z.string({ error: 'expected an http(s) URL or userinfo' }).refine((s) => s === 'userinfo' || (/^https?:\/\/[^\s/]+/.test(s) && URL.canParse(s)), {
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
  })
  .superRefine((o, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (o.grant === 'password') {
      if (o.username === undefined) issue(['username'], 'expected username with grant: password');
      if (o.password === undefined) issue(['password'], 'expected password (a secret name) with grant: password');
    } else {
      if (o.username !== undefined) issue(['username'], 'expected username only with grant: password');
      if (o.password !== undefined) issue(['password'], 'expected password only with grant: password');
      if (o.clientSecret === undefined && o.tls?.certFile === undefined)
        issue(['clientSecret'], 'expected clientSecret (or tls.certFile for mutual TLS) with grant: client_credentials');
    }
    if (o.clientAuth === 'none' && o.clientSecret !== undefined) issue(['clientAuth'], 'expected basic or body with clientSecret (none sends no secret)');
    if ((o.clientAuth === 'basic' || o.clientAuth === 'body') && o.clientSecret === undefined)
      issue(['clientAuth'], `expected clientSecret with clientAuth: ${o.clientAuth}`);
    for (const key of Object.keys(o.params ?? {}))
      if (OIDC_OWN_PARAMS.includes(key))
        issue(['params', key], `expected a parameter the probe does not set itself (${OIDC_OWN_PARAMS.join(', ')} come from their own keys)`);
    if (!o.discovery && o.expect.issuer !== undefined) issue(['expect', 'issuer'], 'expected expect.issuer only with discovery: true');
    if (!o.discovery && o.resource?.url === 'userinfo') issue(['resource', 'url'], 'expected an http(s) URL (userinfo needs discovery: true)');
  });
export type OidcOptions = z.output<typeof oidc>;

/** ldap://host[:port] or ldaps://host[:port] (389 and 636 by default); no DN, query or user info. */
export function parseLdapUrl(s: string): { secure: boolean; host: string; port: number } | undefined {
  const m = /^(ldaps?):\/\/([^\s/?#@]+?)\/?$/i.exec(s);
  if (!m || !URL.canParse(s)) return undefined;
  const u = new URL(s);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const secure = (m[1] as string).toLowerCase() === 'ldaps';
  const port = u.port === '' ? (secure ? 636 : 389) : Number(u.port);
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { secure, host, port };
}

const ldapUrl = z
  .string({ error: 'expected an ldap:// or ldaps:// URL' })
  .refine((s) => parseLdapUrl(s) !== undefined, { message: 'expected ldap://host[:port] or ldaps://host[:port]' });

/** An LDAP search filter (RFC 4515), checked with the parser the probe uses. */
const ldapFilter = z.string({ error: 'expected an LDAP filter such as (objectClass=person)' }).superRefine((s, ctx) => {
  try {
    FilterParser.parseString(s);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected an LDAP filter (RFC 4515) such as (&(objectClass=person)(uid=probe))' });
  }
});

const ldap = z
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
export type LdapOptions = z.output<typeof ldap>;

/** A field of the probe's HL7 message: no field separator, no segment or line breaks. */
const hl7Field = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^|\r\n]*$/, { message: 'expected no "|", carriage return or line break in an HL7 field' });

export const HL7_ACK_CODES = ['AA', 'AE', 'AR', 'CA', 'CE', 'CR'] as const;

const mllp = z.strictObject({
  /** MSH-9, e.g. ADT^A08^ADT_A01; its second component is EVN-1. */
  messageType: hl7Field(64).min(3).default('ADT^A08^ADT_A01'),
  sendingApplication: hl7Field(180).default('VAKT'),
  sendingFacility: hl7Field(180).default(''),
  receivingApplication: hl7Field(180).default(''),
  receivingFacility: hl7Field(180).default(''),
  /** MSH-11: P production, T training, D debugging. */
  processingId: z.enum(['P', 'T', 'D']).default('T'),
  /** MSH-12. */
  version: hl7Field(16).min(1).default('2.5'),
  /** The synthetic test patient of the PID segment. */
  patient: z
    .strictObject({
      id: hl7Field(64).min(1).default('SYNTH0001'),
      name: hl7Field(128).min(1).default('TESTPATIENT^SYNTHETIC'),
    })
    .prefault({}),
  /** Extra segments appended after PV1, one line each (e.g. "OBR|1||..."). */
  segments: z
    .array(
      z
        .string()
        .max(4096)
        .regex(/^(?!MSH)[A-Z][A-Z0-9]{2}\|[^\r\n]*$/, { message: 'expected a segment such as "ZVK|1" (three-letter id, "|", no line breaks, not MSH)' }),
    )
    .max(50)
    .optional(),
  /** MSA-1 codes that make the run succeed. */
  expectAck: z.array(z.enum(HL7_ACK_CODES)).min(1).default(['AA', 'CA']),
  /** ERR-3 codes (table 0357) that make an AE/AR/CE/CR answer a success anyway (e.g. 202 for a heartbeat route a filter drops). */
  acceptErrorCodes: z
    .array(z.union([z.int().min(0).max(99999), z.string().regex(/^[0-9]{1,5}$/, { message: 'expected a numeric HL7 error code such as 202' })]))
    .min(1)
    .transform((xs) => xs.map((x) => String(x)))
    .optional(),
  /** Largest ACK frame read; a longer one fails the run (reason protocol). */
  maxFrame: byteSize.default(1024 * 1024),
  tls: z.union([z.literal(true), tlsClient]).optional(),
});
export type MllpOptions = z.output<typeof mllp>;

/** AMQP heartbeats are negotiated in whole seconds, at most 65535. */
const amqpHeartbeat = boundedDuration.refine((ms) => ms % 1000 === 0 && ms <= 65_535_000, {
  message: 'expected whole seconds from 0s to 65535s (0s turns heartbeats off)',
});

const amqp = z
  .strictObject({
    /** The virtual host to open. */
    vhost: z.string().min(1).max(255).default('/'),
    username: z.string().min(1).max(255).default('guest'),
    /** Secret name (in the check's `secrets`) of the password; without it, only user guest (password guest). */
    password: secretName.optional(),
    /** amqps: TLS from the start (port 5671 by convention). */
    tls: z.union([z.literal(true), tlsClient]).optional(),
    /** An existing queue the canary goes through (checked passively, never created); default: a server-named, exclusive, auto-delete queue per run. */
    queue: z.string().min(1).max(255).optional(),
    /** The exchange to publish to; "" is the default exchange (routes by queue name). */
    exchange: z.string().max(255).default(''),
    /** With an exchange: the routing key (default: the queue name). */
    routingKey: z.string().max(255).optional(),
    /** Heartbeat interval to ask for; default: the broker's. */
    heartbeat: amqpHeartbeat.optional(),
    /** Every canary is published with this per-message expiration; also the TTL of a server-named queue. */
    messageTtl: positiveDuration.prefault('60s'),
    ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
    /** A successful run whose transit took longer is degraded (reason slow). */
    transitDegradedAbove: positiveDuration.optional(),
  })
  .superRefine((o, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (o.username !== 'guest' && o.password === undefined) issue(['password'], 'expected password (a secret name) with a username other than guest');
    if (o.exchange !== '' && o.queue === undefined)
      issue(['queue'], 'expected queue (the queue the exchange routes the canary to, consumed by the probe) with exchange');
    if (o.exchange === '' && o.routingKey !== undefined)
      issue(['routingKey'], 'expected routingKey only with exchange (the default exchange routes by queue name)');
  });
export type AmqpOptions = z.output<typeof amqp>;

/** Where a queue check reads its numbers from (docs/configuration.md, "queue"). */
export const QUEUE_SOURCES = ['rabbitmq', 'activemq', 'artemis', 'mirth', 'http-json', 'directory'] as const;
export type QueueSource = (typeof QUEUE_SOURCES)[number];
/** Sources that report consumers (minConsumers needs one of these). */
export const QUEUE_SOURCES_WITH_CONSUMERS: readonly QueueSource[] = ['rabbitmq', 'activemq', 'artemis', 'http-json'];

/** A JSON path as the http kind's assertions take it: `$.a.b[0].c`. */
const jsonPathText = z.string().min(1).max(512);

const queue = z
  .strictObject({
    source: z.enum(QUEUE_SOURCES, { error: `expected a source: ${QUEUE_SOURCES.join(', ')}` }),
    /**
     * What to read: queue names (rabbitmq, activemq, artemis), channel names or ids (mirth; all
     * channels when omitted), one label for http-json. Not for directory (the folder is the queue).
     */
    queues: z
      .array(z.string().min(1).max(255))
      .min(1)
      .max(100)
      .refine((qs) => new Set(qs).size === qs.length, { message: 'expected each queue once' })
      .optional(),
    /** rabbitmq: the virtual host. */
    vhost: z.string().max(255).default('/'),
    /** activemq: brokerName (default localhost); artemis: the broker name (default 0.0.0.0). */
    broker: z.string().min(1).max(255).optional(),
    /** artemis: the queue's address (default: the queue name) and routing type. */
    address: z.string().min(1).max(255).optional(),
    routingType: z.enum(['anycast', 'multicast']).default('anycast'),
    /** activemq/artemis: the Jolokia endpoint's path (default /api/jolokia/ and /console/jolokia/). */
    jolokiaPath: z.string().regex(/^\//, { message: 'expected a path starting with /' }).optional(),
    /** HTTP Basic credentials; the password is a secret name. */
    username: z.string().min(1).max(255).optional(),
    password: secretName.optional(),
    /** https targets: how the server's certificate is checked. */
    tls: tlsClient.optional(),
    /** Largest API response read; a bigger one fails the run (reason body_too_large). */
    maxBodySize: byteSize.default(4 * 1024 * 1024),
    /** http-json: where the numbers are in the document the target URL returns. */
    depthPath: jsonPathText.optional(),
    oldestAgePath: jsonPathText.optional(),
    /** Unit of the number at oldestAgePath; `timestamp-s`/`timestamp-ms` are the oldest message's epoch time. */
    oldestAgeUnit: z.enum(['s', 'ms', 'timestamp-s', 'timestamp-ms']).default('s'),
    consumersPath: jsonPathText.optional(),
    /** Running totals of messages added and removed (rates are computed from them between runs). */
    arrivedPath: jsonPathText.optional(),
    drainedPath: jsonPathText.optional(),
    /** directory: which files count (a glob over the name: *, ?, [abc]), whether sub-folders are read, and a cap on entries read. */
    pattern: z.string().min(1).max(255).default('*'),
    recursive: z.boolean().default(false),
    maxFiles: z.int().min(1).max(1_000_000).default(100_000),
    /** The run fails (reason backlog) when a queue holds more than this many messages. */
    maxDepth: z.int().min(0).optional(),
    /** The run fails (reason backlog) when a queue's oldest message is older than this. */
    maxOldestAge: positiveDuration.optional(),
    /** The run fails (reason consumers) when a queue has fewer consumers than this. */
    minConsumers: z.int().min(0).max(100_000).optional(),
    /** Stalled: messages waiting and nothing drained for this long → failure, reason backlog. */
    stalledAfter: positiveDuration.optional(),
    /** Growing: depth rose by at least minIncrease over window while more arrived than drained → degraded (backlog_growing); false turns it off. */
    growth: z
      .union([
        z.literal(false),
        z.strictObject({
          window: positiveDuration.refine((ms) => ms <= 86_400_000, { message: 'expected a window of at most 24h' }).prefault('15m'),
          minIncrease: z.int().min(1).default(10),
        }),
      ])
      .prefault({}),
    /** mirth: channel states that count as running (others fail the run, reason queue_stopped). */
    runningStates: z.array(z.string().min(1).max(32)).min(1).default(['STARTED']),
  })
  .superRefine((o, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const named = ['rabbitmq', 'activemq', 'artemis'] as QueueSource[];
    if (named.includes(o.source) && o.queues === undefined) issue(['queues'], `expected queues (the names to read) with source ${o.source}`);
    if (o.source === 'directory' && o.queues !== undefined) issue(['queues'], 'expected no queues with source directory (the target folder is the queue)');
    if (o.source === 'http-json') {
      if (o.depthPath === undefined) issue(['depthPath'], 'expected depthPath (where the queue depth is in the JSON) with source http-json');
      if (o.queues !== undefined && o.queues.length > 1) issue(['queues'], 'expected at most one queue name with source http-json (one URL reads one queue)');
    }
    if (o.source !== 'http-json') {
      for (const key of ['depthPath', 'oldestAgePath', 'consumersPath', 'arrivedPath', 'drainedPath'] as const)
        if (o[key] !== undefined) issue([key], 'expected this only with source http-json');
    }
    if (o.minConsumers !== undefined && !QUEUE_SOURCES_WITH_CONSUMERS.includes(o.source))
      issue(['minConsumers'], `expected minConsumers only with a source that reports consumers (${QUEUE_SOURCES_WITH_CONSUMERS.join(', ')})`);
    if (o.minConsumers !== undefined && o.source === 'http-json' && o.consumersPath === undefined)
      issue(['minConsumers'], 'expected consumersPath with minConsumers');
    if (o.maxOldestAge !== undefined && (o.source === 'activemq' || o.source === 'mirth'))
      issue(['maxOldestAge'], `expected no maxOldestAge with source ${o.source} (it does not report message age)`);
    const jolokia = o.source === 'activemq' || o.source === 'artemis';
    if (!jolokia && o.jolokiaPath !== undefined) issue(['jolokiaPath'], 'expected jolokiaPath only with source activemq or artemis');
    if (!jolokia && o.broker !== undefined) issue(['broker'], 'expected broker only with source activemq or artemis');
    if (o.source !== 'artemis' && o.address !== undefined) issue(['address'], 'expected address only with source artemis');
    if (o.maxOldestAge !== undefined && o.source === 'http-json' && o.oldestAgePath === undefined)
      issue(['maxOldestAge'], 'expected oldestAgePath with maxOldestAge');
    if (o.password !== undefined && o.username === undefined) issue(['username'], 'expected username with password');
    if (o.source === 'directory' && (o.username !== undefined || o.tls !== undefined))
      issue([o.username !== undefined ? 'username' : 'tls'], 'expected no credentials or tls with source directory');
  });
export type QueueOptions = z.output<typeof queue>;

/** Per kind, the options that name an entry of the check's `secrets` (checked against it on load). */
export const SECRET_NAME_OPTIONS: Readonly<Partial<Record<keyof typeof KIND_OPTIONS, readonly string[]>>> = {
  oidc: ['clientSecret', 'password'],
  ldap: ['password'],
  amqp: ['password'],
  queue: ['password'],
};

export const KIND_OPTIONS = {
  tcp,
  dns,
  http,
  oidc,
  ldap,
  mllp,
  queue,
  amqp,
} as const;

/** "system" (the OS resolver path) or a resolver's host[:port] (port 53 by default). */
const dnsServer = z
  .string({ error: 'expected a resolver as host[:port] or "system"' })
  .refine(
    (s) => s === 'system' || splitHostPort(s) !== undefined || splitHostPort(`${s.includes(':') && !s.startsWith('[') ? `[${s}]` : s}:53`) !== undefined,
    {
      message: 'expected a resolver as host[:port] (IPv6 in brackets) or "system"',
    },
  );

/** What `target` means for each kind. */
/** An http(s) URL: the base that relative step URLs are resolved against. */
const httpUrl = z
  .string({ error: 'expected an http(s) URL' })
  .refine((s) => /^https?:\/\/[^\s/]+/.test(s) && URL.canParse(s), { message: 'expected an http:// or https:// URL' });

/** The queue kind's target: the API's base URL, or for source directory the folder's absolute path. */
const queueTarget = z
  .string({ error: 'expected an http(s) URL or an absolute folder path' })
  .refine((s) => (/^https?:\/\/[^\s/]+/.test(s) && URL.canParse(s)) || (s.startsWith('/') && !s.includes('\0')), {
    message: 'expected an http:// or https:// URL, or an absolute folder path (source directory)',
  });

export const KIND_TARGET = {
  tcp: hostPort,
  dns: dnsServer,
  http: httpUrl,
  oidc: httpUrl,
  ldap: ldapUrl,
  mllp: hostPort,
  queue: queueTarget,
  amqp: hostPort,
} as const satisfies Record<keyof typeof KIND_OPTIONS, z.ZodType>;

/** Kinds whose checks may name several targets (`targets: [...]`). */
export const MULTI_TARGET: Readonly<Record<keyof typeof KIND_OPTIONS, boolean>> = {
  tcp: false,
  dns: true,
  http: false,
  oidc: false,
  ldap: false,
  mllp: false,
  queue: false,
  amqp: false,
};

export type Kind = keyof typeof KIND_OPTIONS;
export type KindOptions = { [K in Kind]: z.output<(typeof KIND_OPTIONS)[K]> };
export const KINDS = Object.keys(KIND_OPTIONS) as Kind[];
