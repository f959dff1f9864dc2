// The kit's timestamps count the peer's time, not the agent's. A probe thread starts a batch of
// runs together and handles many answers per turn of its loop; what it does meanwhile (another
// run's start-up, the promise chain back to the run) must not read as connect or processing time.
// Each test blocks the loop for BLOCK_MS at the point where the agent's own work would fall and
// asserts the phase stayed below it (the block is far above a loopback connect or answer).
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { httpProbe } from '../../probes/http/probe.js';
import { Timeline } from '../../probes/kit/step.js';
import { connectSocket } from '../../probes/kit/tls.js';
import { budget, quietLog, targetsOf, tcpPeer, type Peer } from '../helpers/peers.js';

const BLOCK_MS = 200;

function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

const peers: Peer[] = [];
afterAll(async () => {
  for (const p of peers) await p.close();
});

describe('timestamps the agent takes', () => {
  it('Node issues connect(2) to an address on the next tick, after one queued before net.connect (what connectSocket relies on)', async () => {
    const peer = await tcpPeer((s) => s.end());
    peers.push(peer);
    let before: number | undefined;
    let after: number | undefined;
    const held: { socket?: Socket } = {};
    // libuv opens the socket's descriptor at connect(2): none yet (-1) means not yet issued.
    const fd = () => (held.socket as unknown as { _handle?: { fd: number } } | undefined)?._handle?.fd;
    process.nextTick(() => (before = fd()));
    const socket = (held.socket = connect({ host: '127.0.0.1', port: peer.port }));
    process.nextTick(() => (after = fd()));
    await new Promise((r) => socket.once('connect', r));
    socket.destroy();
    expect(before).toBe(-1);
    expect(after).toBeGreaterThan(0);
  });

  it("connectSocket: start-up work after the call (the rest of a batch of runs) is not the connection's time", async () => {
    const peer = await tcpPeer(() => undefined);
    peers.push(peer);
    const phases: Record<string, number> = {};
    const line = new Timeline(phases, 'resolve');
    const pending = connectSocket({ address: '127.0.0.1', port: peer.port, family: 4 }, 5000, new AbortController().signal, line);
    block(BLOCK_MS);
    const socket = await pending;
    socket.destroy();
    expect(line.current).toBe('connect');
    expect(phases.connect).toBeGreaterThan(0);
    expect(phases.connect! * 1000).toBeLessThan(BLOCK_MS);
  });

  it("http: the loop busy after the answer's headers arrived is not the peer's processing", async () => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const get = () =>
      httpProbe.run({
        ...targetsOf('http', `http://127.0.0.1:${port}/`),
        options: KIND_OPTIONS.http.parse({}),
        ...budget(5000),
        log: quietLog,
        secrets: {},
      });
    // Subscribed after the kit (its first run subscribes): runs once the kit has stamped the answer.
    const first = await get();
    expect(first.ok).toBe(true);
    const busy = () => block(BLOCK_MS);
    subscribe('undici:request:headers', busy);
    try {
      const r = await get();
      expect(r.failure).toBeUndefined();
      expect(r.phases.processing).toBeGreaterThan(0);
      expect(r.phases.processing! * 1000).toBeLessThan(BLOCK_MS);
      // The block fell after the answer: the body is read behind it.
      expect(r.phases.transfer! * 1000).toBeGreaterThanOrEqual(BLOCK_MS);
    } finally {
      unsubscribe('undici:request:headers', busy);
      await new Promise((r) => server.close(r));
    }
  });
});
