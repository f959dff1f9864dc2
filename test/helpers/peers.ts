// Real peers on loopback for probe tests: closed ports, silent and hostile listeners, a listener
// whose accept queue is full (SYNs go unanswered, like a DROP rule), TLS servers.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { ProbeLogger } from '../../probes/types.js';
import { afterAll, beforeAll } from 'vitest';
import type { z } from 'zod';
import { Budget } from '../../probes/kit/budget.js';
import { KIND, type Kind, type KindTarget } from '../../probes/kinds.js';

export interface Peer {
  port: number;
  close(): Promise<void>;
}

/**
 * Slack for upper bounds on elapsed time. A probe that ignores its deadline overruns by seconds
 * (undici's 10 s connect timeout, a minute of SYN retries, forever); a busy machine delays a
 * timer by up to a few hundred milliseconds. Bounds on how long a run took add this, so they
 * catch the first and never fail on the second.
 */
export const BUSY_SLACK_MS = 3000;

export const quietLog: ProbeLogger = { debug() {}, info() {}, warn() {} };

/** A port that nothing listens on (bound once, then released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function tcpPeer(onSocket: (s: Socket) => void, host = '127.0.0.1'): Promise<Peer & { server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    s.once('close', () => sockets.delete(s));
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    server,
    sockets,
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A UDP peer that answers every datagram with `reply(datagram)` (undefined: no answer); it keeps what it received. */
export async function udpPeer(reply: (datagram: Buffer) => Buffer | Buffer[] | undefined): Promise<Peer & { received: Buffer[] }> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (msg, from) => {
    received.push(msg);
    const r = reply(msg);
    for (const b of r === undefined ? [] : Array.isArray(r) ? r : [r]) socket.send(b, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, received, close: () => new Promise<void>((r) => socket.close(() => r())) };
}

/** UDP peers for the tests of one describe block, all closed after them: each call starts one (udpPeer). */
export function udpPeersDuring(): (reply: (datagram: Buffer) => Buffer | Buffer[] | undefined) => Promise<Peer & { received: Buffer[] }> {
  const peers: Peer[] = [];
  afterAll(async () => {
    for (const p of peers) await p.close();
  });
  return async (reply) => {
    const p = await udpPeer(reply);
    peers.push(p);
    return p;
  };
}

/** A sandbox service started for the tests of one describe block and stopped after them; `target()` is its 127.0.0.1:port. */
export function serviceDuring(service: { start(): Promise<void>; stop(): Promise<void>; readonly address: { port: number } }): { target(): string } {
  beforeAll(() => service.start());
  afterAll(() => service.stop());
  return { target: () => `127.0.0.1:${service.address.port}` };
}

export function tlsPeer(options: TlsOptions, onSecure: (s: Socket) => void = (s) => s.end('hello\n')): Promise<Peer> {
  const sockets = new Set<Socket>();
  const server = createTlsServer(options, onSecure);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as { port: number }).port,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    ),
  );
}

/**
 * A listener that never accepts, with its accept queue filled: further SYNs are dropped by the
 * kernel and connects hang, as behind a DROP rule or an overloaded firewall. Needs python3
 * (node always accepts).
 */
export async function blackholePeer(): Promise<Peer> {
  const child: ChildProcess = spawn(
    'python3',
    ['-c', 'import socket,sys,time\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(300)'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // Fill the accept queue; those connections complete, every later SYN goes unanswered.
  const fillers: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** What the runner hands a probe: a signal that aborts after `ms`, and the matching deadline. */
export function budget(ms: number, signal?: AbortSignal): { budget: Budget; memory: Map<string, unknown> } {
  return { budget: new Budget(signal ?? AbortSignal.timeout(ms), performance.now() + ms), memory: new Map() };
}

/** A probe's `target` and `targets` as the config would parse them for a check of `kind` (the kind's target schema). */
export function targetsOf<K extends Kind>(kind: K, ...texts: string[]): { target: KindTarget[K]; targets: KindTarget[K][] } {
  const schema = KIND[kind].target.schema as unknown as z.ZodType<KindTarget[K]>;
  const targets = texts.map((t) => schema.parse(t));
  return { target: targets[0] as KindTarget[K], targets };
}
