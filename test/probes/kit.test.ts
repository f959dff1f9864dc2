// The probe kit makes the kinds agree: a refused connection is reason `refused` in phase
// `connect` for every kind that opens one (queue reads its API in one `fetch` phase, and ntp
// asks over UDP, which has no connection: their first phase), and a run against a port that is
// gone never takes longer than its deadline. Every kind of the list is run against a real closed
// port on 127.0.0.1, and given a target it cannot take (the schema refuses those on load; a
// probe called directly must still fail plainly, not throw).
import { describe, expect, it } from 'vitest';
import { KIND_LIST } from '../../probes/kinds.js';
import { classifyError, ProbeAbortError } from '../../probes/kit/net.js';
import { budget, closedPort, quietLog } from '../helpers/peers.js';

const OPTIONS: Record<string, unknown> = {
  oidc: { clientId: 'vakt', clientSecret: 's' },
  ldap: { bindDn: 'cn=probe', password: 's' },
  queue: { source: 'rabbitmq', queues: ['q'] },
  dns: { name: 'ehr.region.example', transport: 'tcp' },
};
const TARGET: Record<string, (port: number) => string> = {
  http: (p) => `http://127.0.0.1:${p}/`,
  oidc: (p) => `http://127.0.0.1:${p}/realms/x`,
  queue: (p) => `http://127.0.0.1:${p}/`,
  ldap: (p) => `ldap://127.0.0.1:${p}`,
};
const FIRST_PHASE: Record<string, string> = { queue: 'fetch', ntp: 'request' };

function run(kind: (typeof KIND_LIST)[number], target: string) {
  return kind.run({
    target,
    targets: [target],
    options: kind.options.parse(OPTIONS[kind.name] ?? {}) as never,
    ...budget(3000),
    log: quietLog,
    secrets: { s: 'kit-secret-1234' },
  });
}

describe('the probe kit across kinds', () => {
  it.each(KIND_LIST.map((k) => [k.name, k] as const))('%s: a refused connection is refused, in connect (or its first phase)', async (_name, kind) => {
    const port = await closedPort();
    const target = (TARGET[kind.name] ?? ((p: number) => `127.0.0.1:${p}`))(port);
    const r = await run(kind, target);
    expect(r.ok).toBe(false);
    expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ reason: 'refused', phase: FIRST_PHASE[kind.name] ?? 'connect' });
    expect(kind.reasons).toContain('refused');
  });

  it.each(KIND_LIST.map((k) => [k.name, k] as const))(
    '%s: a target that is not what the kind takes fails in resolve (queue: fetch) with reason resolve, never a throw',
    async (_name, kind) => {
      const r = await run(kind, 'not a target');
      expect(r.failure).toMatchObject({ reason: 'resolve', phase: kind.name === 'queue' ? 'fetch' : 'resolve' });
      expect(r.failure?.message).toContain('"not a target" is not');
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
});
