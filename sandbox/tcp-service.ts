// What the sandbox's TCP services (the LDAP directory, the HL7 interface engine) share (and the
// queue broker's HTTP API, its listening): listening
// on a loopback port (0 picks one and keeps it for later restarts), a fault mode whose `down`
// stops listening and drops every connection, and cleanup of open sockets and pending timers.
import { createServer, type Server, type Socket } from 'node:net';

/** Listens on host:port (0 picks a port); resolves with the port. Later server errors are ignored (the sandbox serves faults on purpose). */
export async function listenOn(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  return (server.address() as { port: number }).port;
}

export abstract class TcpService<Mode extends string> {
  protected readonly sockets = new Set<Socket>();
  protected readonly timers = new Set<NodeJS.Timeout>();
  private server: Server | undefined;

  protected constructor(
    protected readonly host: string,
    protected port: number,
    public mode: Mode,
    private readonly maxConnections: number,
  ) {}

  get address(): { host: string; port: number } {
    return { host: this.host, port: this.port };
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((s) => this.serve(s));
    server.maxConnections = this.maxConnections;
    this.port = await listenOn(server, this.port, this.host);
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** `down` stops listening (and drops every connection); any other mode listens again. */
  async setMode(mode: Mode): Promise<void> {
    this.mode = mode;
    if (mode === 'down') await this.stop();
    else await this.start();
  }

  protected abstract serve(socket: Socket): void;
}
