// The sandbox's firewall faults, seen through the tcp probe (the demo's story, end to end).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../config/kinds.js';
import { tcpProbe } from '../../probes/tcp.js';
import { sandboxCertDir, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { budget, quietLog } from '../helpers/peers.js';

let sb: Sandbox;
beforeAll(async () => {
  sb = await startSandbox({ ports: { control: 0, ehr: 0, fwA: 0, fwB: 0, blocked: 0 } });
});
afterAll(async () => {
  await sb.stop();
});

function probe(port: number, options: Record<string, unknown>, timeoutMs = 1500) {
  return tcpProbe.run({ target: `127.0.0.1:${port}`, targets: [`127.0.0.1:${port}`], options: KIND_OPTIONS.tcp.parse(options), ...budget(timeoutMs), log: quietLog, secrets: {} });
}

const tls = () => ({ serverName: 'ehr.sandbox.vakt.test', caFile: `${sandboxCertDir()}/ca.pem` });

async function fault(path: string): Promise<{ paths: Record<string, string>; policy: string }> {
  const res = await fetch(`${sb.controlUrl}/faults/${path}`, { method: 'POST' });
  expect(res.status).toBe(200);
  return (await res.json()) as { paths: Record<string, string>; policy: string };
}

describe('sandbox firewall paths', () => {
  it('both paths pass by default: TLS through to the EHR front, HTTP answer read', async () => {
    for (const port of [sb.ports.fwA, sb.ports.fwB]) {
      const r = await probe(port, { tls: tls(), send: 'GET / HTTP/1.0\r\n\r\n', receive: '^HTTP/1\\.1 200' });
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
    }
  });

  it('drop: connections hang (timeout); reject: refused; reset: reset; back to pass: ok', async () => {
    expect((await fault('fw-a/drop')).paths['fw-a']).toBe('drop');
    expect((await probe(sb.ports.fwA, { tls: tls() }, 500)).failure).toMatchObject({ reason: 'timeout', phase: 'tls' });
    await fault('fw-a/reject');
    expect((await probe(sb.ports.fwA, { tls: tls() })).failure).toMatchObject({ reason: 'refused', phase: 'connect' });
    await fault('fw-a/reset');
    expect((await probe(sb.ports.fwA, { tls: tls() })).failure?.reason).toBe('reset');
    // Path B is untouched throughout.
    expect((await probe(sb.ports.fwB, { tls: tls() })).ok).toBe(true);
    await fault('fw-a/pass');
    expect((await probe(sb.ports.fwA, { tls: tls() })).ok).toBe(true);
  });

  it('overload: some connection attempts stall; the run is degraded with sample loss', async () => {
    await fault('fw-b/overload');
    let loss = 0;
    // Half of the attempts stall at random: retry until a run shows partial loss.
    for (let i = 0; i < 5 && !(loss > 0 && loss < 1); i++) {
      const r = await probe(sb.ports.fwB, { tls: tls(), samples: 10, sampleSpacing: '10ms' }, 800);
      loss = r.values?.samples_loss_ratio ?? 0;
      if (loss > 0 && loss < 1) expect(r).toMatchObject({ ok: true, degraded: { reason: 'sample_loss' } });
    }
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeLessThan(1);
    await fault('reset');
  });

  it('policy: the blocked port is blocked until the fault opens it', async () => {
    expect((await probe(sb.ports.blocked, { expect: 'blocked' })).ok).toBe(true);
    expect((await fault('policy/open')).policy).toBe('open');
    expect((await probe(sb.ports.blocked, { expect: 'blocked' })).failure?.reason).toBe('policy_open');
    await fault('policy/closed');
    expect((await probe(sb.ports.blocked, { expect: 'blocked' })).ok).toBe(true);
  });

  it('the control API rejects unknown faults and lists the switches', async () => {
    const bad = await fetch(`${sb.controlUrl}/faults/fw-a/explode`, { method: 'POST' });
    expect(bad.status).toBe(400);
    const list = (await (await fetch(`${sb.controlUrl}/faults`)).json()) as { paths: Record<string, string> };
    expect(Object.keys(list.paths)).toEqual(['fw-a', 'fw-b']);
  });
});
