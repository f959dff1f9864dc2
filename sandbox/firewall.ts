// A simulated firewall path: a TCP relay on loopback in front of a service, with the faults of
// the Region Syddanmark story. Modes:
//   pass      relay every connection
//   drop      accept but never relay or answer (connections hang; in a real network a DROP rule
//             makes the SYN itself go unanswered, which the system tests reproduce with iptables)
//   reject    stop listening: connections are refused
//   reset     accept, then reset at once
//   overload  a share of connections hang, the rest are relayed (the morning login peak)
import { createServer, connect, type Server, type Socket } from 'node:net';

export const FIREWALL_MODES = ['pass', 'drop', 'reject', 'reset', 'overload'] as const;
export type FirewallMode = (typeof FIREWALL_MODES)[number];

/** How long a held ("dropped") connection is kept before the sandbox lets go of it. */
const HOLD_MS = 120_000;

export class FirewallPath {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  mode: FirewallMode = 'pass';
  /** Share of connections that hang in overload mode. */
  overloadShare = 0.5;
  private boundPort = 0;

  constructor(
    readonly name: string,
    private readonly host: string,
    private readonly port: number,
    private readonly upstream: () => { host: string; port: number },
  ) {}

  get address(): { host: string; port: number } {
    return { host: this.host, port: this.boundPort };
  }

  async start(): Promise<void> {
    await this.listen(this.port);
  }

  async setMode(mode: FirewallMode): Promise<void> {
    this.mode = mode;
    if (mode === 'reject') await this.close();
    else if (!this.server) await this.listen(this.boundPort);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await this.close();
  }

  private listen(port: number): Promise<void> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => {
        server.removeListener('error', reject);
        this.boundPort = (server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  /** Stops listening at once; connections already held or relayed live on until they end. */
  private close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => {
      server.close();
      if (server.listening) server.once('close', () => resolve());
      else resolve();
    });
  }

  private accept(client: Socket): void {
    client.on('error', () => client.destroy());
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    const mode = this.mode;
    if (mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    if (mode === 'drop' || (mode === 'overload' && Math.random() < this.overloadShare)) {
      client.pause();
      client.setTimeout(HOLD_MS, () => client.destroy());
      return;
    }
    const up = this.upstream();
    const server = connect(up.port, up.host);
    server.on('error', () => client.destroy());
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
    client.pipe(server).pipe(client);
  }
}
