// The probe kit makes the kinds agree: a refused connection is reason `refused` in phase
// `connect` for every kind that opens one (ntp, radius and snmp ask over UDP, which has no
// connection: their first phase, request; icmp reaches no port), and a run against a port that is
// gone never takes longer than its deadline. Every kind of the list is run against a real closed
// port on 127.0.0.1; a target a kind cannot take is refused when the config loads (probes get
// targets parsed); and a TLS file that cannot be read fails every kind that takes one the same way.
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigLoadError, parseConfig } from '../../config/loader.js';
import { KIND_LIST } from '../../probes/kinds.js';
import { classifyError, closePool, ProbeAbortError } from '../../probes/kit/net.js';
import { budget, closedPort, quietLog, targetsOf, tcpPeer } from '../helpers/peers.js';

const OPTIONS: Record<string, unknown> = {
  oidc: { clientId: 'vakt', clientSecret: 's' },
  ldap: { bindDn: 'cn=probe', password: 's' },
  queue: { source: 'rabbitmq', queues: ['q'] },
  dns: { name: 'ehr.region.example', transport: 'tcp' },
  radius: { username: 'probe', password: 's', sharedSecret: 's' },
  snmp: { community: 's', oids: [{ name: 'sys-name', oid: '1.3.6.1.2.1.1.5.0' }] },
};
const TARGET: Record<string, (port: number) => string> = {
  http: (p) => `http://127.0.0.1:${p}/`,
  oidc: (p) => `http://127.0.0.1:${p}/realms/x`,
  queue: (p) => `http://127.0.0.1:${p}/`,
  ldap: (p) => `ldap://127.0.0.1:${p}`,
  fhir: (p) => `http://127.0.0.1:${p}/fhir/R4`,
};
// The UDP kinds have no connection: an ICMP port unreachable answers their first request.
const FIRST_PHASE: Record<string, string> = { ntp: 'request', radius: 'request', snmp: 'request' };
/** Kinds that reach no port (icmp pings a host): no refused connection to test. */
const PORTLESS = new Set(['icmp']);
/** Targets that name a host (the kinds not listed take host:port). */
const NAME_TARGET: Record<string, (host: string) => string> = {
  http: (h) => `http://${h}/`,
  oidc: (h) => `http://${h}/realms/x`,
  queue: (h) => `http://${h}/`,
  ldap: (h) => `ldap://${h}`,
  ntp: (h) => h,
  icmp: (h) => h,
  fhir: (h) => `http://${h}/fhir/R4`,
};
/** Targets that make a kind use TLS (the others take tls on a host:port target). */
const TLS_TARGET: Record<string, (port: number) => string> = {
  http: (p) => `https://127.0.0.1:${p}/`,
  oidc: (p) => `https://127.0.0.1:${p}/realms/x`,
  queue: (p) => `https://127.0.0.1:${p}/`,
  ldap: (p) => `ldaps://127.0.0.1:${p}`,
  fhir: (p) => `https://127.0.0.1:${p}/fhir/R4`,
};

/** Whether a kind's options take a `tls` block (in any of its variants), read from the schema's public JSON export. */
function takesTls(kind: (typeof KIND_LIST)[number]): boolean {
  type Node = { properties?: Record<string, unknown>; oneOf?: Node[]; anyOf?: Node[] };
  const root = z.toJSONSchema(kind.options, { io: 'input', unrepresentable: 'any' }) as Node;
  return [root, ...(root.oneOf ?? []), ...(root.anyOf ?? [])].some((n) => n.properties?.tls !== undefined);
}

async function run(kind: (typeof KIND_LIST)[number], target: string) {
  return (await kind.load()).run({
    ...(targetsOf(kind.name, target) as { target: never; targets: never[] }),
    options: kind.options.parse(OPTIONS[kind.name] ?? {}) as never,
    ...budget(3000),
    log: quietLog,
    secrets: { s: 'kit-secret-1234' },
  });
}

describe('the probe kit across kinds', () => {
  it.each(KIND_LIST.filter((k) => !PORTLESS.has(k.name)).map((k) => [k.name, k] as const))(
    '%s: a refused connection is refused, in connect (or its first phase)',
    async (_name, kind) => {
      const port = await closedPort();
      const target = (TARGET[kind.name] ?? ((p: number) => `127.0.0.1:${p}`))(port);
      const r = await run(kind, target);
      expect(r.ok).toBe(false);
      expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ reason: 'refused', phase: FIRST_PHASE[kind.name] ?? 'connect' });
      expect(kind.reasons).toContain('refused');
    },
  );

  it.each(KIND_LIST.map((k) => [k.name, k] as const))(
    "%s: a target that is not what the kind takes is refused when the config loads, with the kind's own words",
    (_name, kind) => {
      const yaml = `checks:\n  - name: c\n    kind: ${kind.name}\n    target: "not a target"\n`;
      let message = '';
      try {
        parseConfig(yaml, 'kit.yaml');
      } catch (err) {
        message = err instanceof ConfigLoadError ? err.errors.map((e) => `${e.path}: ${e.message}`).join('\n') : String(err);
      }
      expect(message).toMatch(/^checks\[0\]\.target: expected .*, found "not a target"$/m);
    },
  );

  it.each(KIND_LIST.filter((k) => takesTls(k)).map((k) => [k.name, k] as const))(
    '%s: a TLS file that cannot be read fails in phase tls with reason tls_handshake, before anything connects',
    async (_name, kind) => {
      const port = await closedPort();
      const target = (TLS_TARGET[kind.name] ?? ((p: number) => `127.0.0.1:${p}`))(port);
      const r = await (
        await kind.load()
      ).run({
        ...(targetsOf(kind.name, target) as { target: never; targets: never[] }),
        options: kind.options.parse({ ...(OPTIONS[kind.name] as object | undefined), tls: { caFile: '/nonexistent/vakt-ca.pem' } }) as never,
        ...budget(3000),
        log: quietLog,
        secrets: { s: 'kit-secret-1234' },
      });
      expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
      expect(r.failure?.message).toMatch(/^reading TLS files: .*\/nonexistent\/vakt-ca\.pem/);
      // Nothing was tried on the network: no connect phase was recorded.
      expect(r.phases.connect).toBeUndefined();
    },
  );

  it.each(KIND_LIST.map((k) => [k.name, k] as const))(
    '%s: a target name that does not resolve fails in phase resolve with reason resolve',
    async (_name, kind) => {
      // .invalid never resolves (RFC 6761); ntp and the host:port kinds take the name bare.
      const target = (NAME_TARGET[kind.name] ?? ((h: string) => `${h}:1`))('no-such-host.invalid');
      const r = await run(kind, target);
      expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ reason: 'resolve', phase: 'resolve' });
    },
  );

  it('one classification of errors for every kind: system, TLS and undici codes, and the cause behind a wrapper', () => {
    const err = (code: string, cause?: unknown) => Object.assign(new Error(code), { code, ...(cause ? { cause } : {}) });
    const table: [unknown, string][] = [
      [err('ECONNREFUSED'), 'refused'],
      [err('ECONNRESET'), 'reset'],
      [err('EHOSTUNREACH'), 'unreachable'],
      [err('ENOTFOUND'), 'resolve'],
      [err('CERT_HAS_EXPIRED'), 'tls_expired'],
      [err('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls_handshake'],
      [err('UND_ERR_CONNECT_TIMEOUT'), 'timeout'],
      [err('UND_ERR_HEADERS_TIMEOUT'), 'timeout'],
      [err('UND_ERR_SOCKET'), 'reset'],
      [err('HPE_INVALID_CONSTANT'), 'protocol'],
      [Object.assign(new Error('fetch failed'), { cause: err('ECONNREFUSED') }), 'refused'],
      [new ProbeAbortError('run ran out of time'), 'timeout'],
      [new Error('something else'), 'protocol'],
    ];
    for (const [e, reason] of table) expect(classifyError(e), String(e)).toBe(reason);
  });

  it("closePool ends a run's pool at once: its socket closes, the request on it and the one queued behind it are rejected, and it never rejects itself", async () => {
    // A peer that takes the request and never answers: the pool's one connection stays busy.
    const closed: Promise<void>[] = [];
    const peer = await tcpPeer((s) => {
      s.resume();
      closed.push(new Promise((resolve) => s.once('close', () => resolve())));
    });
    try {
      const pool = new Agent({ connections: 1, pipelining: 1 });
      const first = request(`http://127.0.0.1:${peer.port}/a`, { dispatcher: pool });
      const queued = request(`http://127.0.0.1:${peer.port}/b`, { dispatcher: pool });
      const settled = Promise.allSettled([first, queued]);
      await expect.poll(() => closed.length).toBe(1);
      await closePool(pool);
      const [a, b] = await settled;
      expect(a.status).toBe('rejected');
      expect(b.status).toBe('rejected');
      await Promise.all(closed);
      expect(pool.destroyed).toBe(true);
      // Again, on a pool already gone: resolves.
      await expect(closePool(pool)).resolves.toBeUndefined();
    } finally {
      await peer.close();
    }
  });
});
