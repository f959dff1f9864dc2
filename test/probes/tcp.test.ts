// The tcp probe against real peers on loopback.
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { type TcpOptions } from '../../probes/tcp/options.js';
import { tcpProbe } from '../../probes/tcp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { blackholePeer, budget, BUSY_SLACK_MS, closedPort, type Peer, quietLog, tcpPeer, tlsPeer, targetsOf } from '../helpers/peers.js';

function run(target: string, options: Record<string, unknown> = {}, timeoutMs = 3000, signal?: AbortSignal): Promise<ProbeResult> {
  const opts: TcpOptions = KIND_OPTIONS.tcp.parse(options);
  return tcpProbe.run({ ...targetsOf('tcp', target), options: opts, ...budget(signal ? 10_000 : timeoutMs, signal), log: quietLog, secrets: {} });
}

const cleanup: Peer[] = [];
afterAll(async () => {
  for (const p of cleanup) await p.close();
});
async function peer<P extends Peer>(p: Promise<P>): Promise<P> {
  const x = await p;
  cleanup.push(x);
  return x;
}

describe('tcp probe: plain connections', () => {
  it('connects to a listener and reports only the phases that ran', async () => {
    const p = await peer(tcpPeer((s) => s.end()));
    const r = await run(`127.0.0.1:${p.port}`);
    expect(r.ok).toBe(true);
    expect(r.failure).toBeUndefined();
    expect(r.phases.connect).toBeGreaterThan(0);
    expect(Object.keys(r.phases)).toEqual(['connect']);
    expect(r.values?.ip_protocol).toBe(4);
  });

  it('a closed port is refused', async () => {
    const r = await run(`127.0.0.1:${await closedPort()}`);
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
  });

  it('unanswered SYNs (full accept queue) are a connect timeout', async () => {
    const p = await peer(blackholePeer());
    const t0 = Date.now();
    const r = await run(`127.0.0.1:${p.port}`, { connectTimeout: '300ms' });
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'timeout' });
    expect(Date.now() - t0).toBeLessThan(2000 + BUSY_SLACK_MS);
  });

  it('a listener that accepts and says nothing times out in the expect phase, and the socket is closed', async () => {
    const p = await peer(tcpPeer(() => undefined));
    const r = await run(`127.0.0.1:${p.port}`, { receive: '^220 ' }, 400);
    expect(r.failure).toMatchObject({ phase: 'expect', reason: 'timeout' });
    expect(r.phases.connect).toBeGreaterThan(0);
    await new Promise((res) => setTimeout(res, 100));
    expect(p.sockets.size).toBe(0);
  });

  it('accept-then-reset is reported as reset', async () => {
    const p = await peer(tcpPeer((s) => s.resetAndDestroy()));
    const r = await run(`127.0.0.1:${p.port}`, { receive: 'never' });
    expect(r.failure?.reason).toBe('reset');
    // The RST may land before or after the connect event surfaces.
    expect(['connect', 'expect']).toContain(r.failure?.phase);
  });

  it('a server streaming endless bytes is read only up to maxRead', async () => {
    const chunk = Buffer.alloc(16 * 1024, 'x');
    const p = await peer(
      tcpPeer((s) => {
        const pump = () => {
          while (!s.destroyed && s.write(chunk));
          if (!s.destroyed) s.once('drain', pump);
        };
        pump();
      }),
    );
    const r = await run(`127.0.0.1:${p.port}`, { receive: '^SSH-', maxRead: '64KiB' });
    expect(r.failure).toMatchObject({ phase: 'expect', reason: 'expect_mismatch' });
    expect(r.failure?.message).toContain('65536 bytes');
    expect(r.values?.failed_due_to_regex).toBe(1);
  });

  it('send/expect: sends bytes and matches the reply', async () => {
    const p = await peer(tcpPeer((s) => s.on('data', (d: Buffer) => (d.toString() === 'PING\r\n' ? s.end('+PONG\r\n') : s.end('-ERR\r\n')))));
    const ok = await run(`127.0.0.1:${p.port}`, { send: 'PING\r\n', receive: '^\\+PONG' });
    expect(ok.ok).toBe(true);
    expect(ok.phases.send).toBeGreaterThanOrEqual(0);
    expect(ok.phases.expect).toBeGreaterThan(0);
    expect(ok.values?.failed_due_to_regex).toBe(0);
    const bad = await run(`127.0.0.1:${p.port}`, { send: 'HELLO\r\n', receive: '^\\+PONG' });
    expect(bad.failure?.reason).toBe('expect_mismatch');
  });

  it('resolves a host name once and times it as the resolve phase', async () => {
    const p = await peer(tcpPeer((s) => s.end()));
    const r = await run(`localhost:${p.port}`, { ipFamily: 'ip4' });
    expect(r.ok).toBe(true);
    expect(r.phases.resolve).toBeGreaterThanOrEqual(0);
    expect(r.values?.dns_lookup_time_seconds).toBe(r.phases.resolve);
  });

  it('an unknown host name fails in the resolve phase', async () => {
    const r = await run('no-such-host.invalid:443');
    expect(r.failure).toMatchObject({ phase: 'resolve', reason: 'resolve' });
  });

  it('connects over IPv6', async () => {
    const p = await peer(tcpPeer((s) => s.end(), '::1'));
    const r = await run(`[::1]:${p.port}`);
    expect(r.ok).toBe(true);
    expect(r.values?.ip_protocol).toBe(6);
  });

  it('binds the source address to pin a path', async () => {
    const seen: string[] = [];
    const p = await peer(
      tcpPeer((s) => {
        seen.push(s.remoteAddress ?? '');
        s.end();
      }),
    );
    const r = await run(`127.0.0.1:${p.port}`, { sourceAddress: '127.0.0.2' });
    expect(r.ok).toBe(true);
    await new Promise((res) => setTimeout(res, 50));
    expect(seen).toContain('127.0.0.2');
  });

  it('an unusable source address is unreachable', async () => {
    const p = await peer(tcpPeer((s) => s.end()));
    const r = await run(`127.0.0.1:${p.port}`, { sourceAddress: '192.0.2.77' });
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'unreachable' });
  });

  it('aborting the signal stops a hanging connect at once', async () => {
    const p = await peer(blackholePeer());
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(new Error('deadline')), 200);
    const t0 = Date.now();
    const r = await run(`127.0.0.1:${p.port}`, {}, 0, ctrl.signal);
    expect(r.failure?.reason).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(1000 + BUSY_SLACK_MS);
  });
});

describe('tcp probe: samples', () => {
  it('several attempts give min/median/max connect time and no loss', async () => {
    const p = await peer(tcpPeer((s) => s.end()));
    const r = await run(`127.0.0.1:${p.port}`, { samples: 5, sampleSpacing: '10ms' });
    expect(r.ok).toBe(true);
    expect(r.degraded).toBeUndefined();
    const v = r.values!;
    expect(v.samples).toBe(5);
    expect(v.samples_ok).toBe(5);
    expect(v.samples_loss_ratio).toBe(0);
    expect(v.connect_min_seconds!).toBeLessThanOrEqual(v.connect_median_seconds!);
    expect(v.connect_median_seconds!).toBeLessThanOrEqual(v.connect_max_seconds!);
  });

  it('some attempts failing is degraded with the loss ratio, not a failure', async () => {
    let n = 0;
    const p = await peer(tcpPeer((s) => (n++ % 2 === 0 ? s.end('hi\n') : s.resetAndDestroy())));
    const r = await run(`127.0.0.1:${p.port}`, { samples: 4, sampleSpacing: '20ms', receive: '^hi' });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('sample_loss');
    expect(r.values?.samples_loss_ratio).toBe(0.5);
    expect(r.degraded?.message).toContain('2 of 4');
  });

  it('all attempts failing is a failure with the most common reason', async () => {
    const r = await run(`127.0.0.1:${await closedPort()}`, { samples: 3, sampleSpacing: '10ms' });
    expect(r.ok).toBe(false);
    expect(r.failure?.reason).toBe('refused');
    expect(r.values?.samples_loss_ratio).toBe(1);
  });

  it('attempts cut off by the run deadline count as timed out', async () => {
    const p = await peer(blackholePeer());
    const r = await run(`127.0.0.1:${p.port}`, { samples: 5, sampleSpacing: '200ms' }, 500);
    expect(r.ok).toBe(false);
    expect(r.failure?.reason).toBe('timeout');
    expect(r.values?.samples).toBe(5);
  });
});

describe('tcp probe: expect blocked (firewall policy)', () => {
  it('refused is success', async () => {
    const r = await run(`127.0.0.1:${await closedPort()}`, { expect: 'blocked' });
    expect(r.ok).toBe(true);
  });

  it('dropped (timeout) is success', async () => {
    const p = await peer(blackholePeer());
    const r = await run(`127.0.0.1:${p.port}`, { expect: 'blocked', connectTimeout: '300ms' });
    expect(r.ok).toBe(true);
  });

  it('a port that accepts is a policy_open failure', async () => {
    const p = await peer(tcpPeer((s) => s.end()));
    const r = await run(`127.0.0.1:${p.port}`, { expect: 'blocked' });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ reason: 'policy_open', phase: 'connect' });
  });
});

describe('tcp probe: TLS', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makePki();
  });

  it('a valid certificate: handshake timed, version, chain and expiry exported', async () => {
    const p = await peer(tlsPeer(pki.valid));
    const r = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'service.test' } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.phases.tls).toBeGreaterThan(0);
    expect(r.info?.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    expect(r.info?.certSubject).toBe('CN=service.test');
    expect(r.info?.certIssuer).toBe('CN=vakt test CA');
    expect(r.info?.certSubjectAlternative).toBe('localhost,service.test');
    expect(r.info?.certSerialNumber).toMatch(/^[0-9a-f]+$/);
    expect(r.info?.certFingerprintSha256).toMatch(/^[0-9a-f]{64}$/);
    const days = (r.values!.ssl_earliest_cert_expiry! * 1000 - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(88);
    expect(days).toBeLessThan(91);
  });

  it('verifies against the IP address when no server name is given', async () => {
    const p = await peer(tlsPeer(pki.valid));
    const r = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile } });
    expect(r.ok).toBe(true);
  });

  it('an expired certificate is tls_expired', async () => {
    const p = await peer(tlsPeer(pki.expired));
    const r = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'service.test' } });
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_expired' });
  });

  it('a certificate for another name is tls_handshake', async () => {
    const p = await peer(tlsPeer(pki.wrongName));
    const r = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'service.test' } });
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
  });

  it('an untrusted issuer is tls_handshake', async () => {
    const p = await peer(tlsPeer(pki.valid));
    const r = await run(`127.0.0.1:${p.port}`, { tls: { serverName: 'service.test' } });
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
  });

  it('insecureSkipVerify accepts it but still reports the expiry (degraded: expired)', async () => {
    const p = await peer(tlsPeer(pki.expired));
    const r = await run(`127.0.0.1:${p.port}`, { tls: { insecureSkipVerify: true } });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('cert_expiring');
    expect(r.values!.ssl_earliest_cert_expiry! * 1000).toBeLessThan(Date.now());
  });

  it('a certificate expiring within the warning window is degraded', async () => {
    const p = await peer(tlsPeer(pki.expiringSoon));
    const r = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'service.test', expiryWarning: '7d' } });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('cert_expiring');
    const quiet = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'service.test', expiryWarning: '1d' } });
    expect(quiet.degraded).toBeUndefined();
  });

  it('a listener that never completes the TLS handshake times out in the tls phase', async () => {
    const p = await peer(tcpPeer(() => undefined));
    const r = await run(`127.0.0.1:${p.port}`, { tls: true }, 400);
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'timeout' });
  });

  it('presents a client certificate for mutual TLS', async () => {
    const server = { ...pki.valid, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true };
    const p = await peer(tlsPeer(server, (s: Socket) => s.end('hi\n')));
    const withCert = await run(`127.0.0.1:${p.port}`, {
      tls: { caFile: pki.caFile, serverName: 'service.test', certFile: pki.clientCertFile, keyFile: pki.clientKeyFile },
      receive: '^hi',
    });
    expect(withCert.failure).toBeUndefined();
    expect(withCert.ok).toBe(true);
    const without = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'service.test' }, receive: '^hi' });
    expect(without.ok).toBe(false);
  });

  it('TLS then send/expect on the encrypted stream', async () => {
    const p = await peer(tlsPeer(pki.valid, (s: Socket) => s.on('data', () => s.end('HTTP/1.1 200 OK\r\n\r\n'))));
    const r = await run(`127.0.0.1:${p.port}`, {
      tls: { caFile: pki.caFile, serverName: 'service.test' },
      send: 'GET / HTTP/1.0\r\n\r\n',
      receive: '^HTTP/1\\.1 200',
    });
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['connect', 'tls', 'send', 'expect']);
  });
});
