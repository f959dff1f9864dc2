// A DNS server for tests, built with dns-packet, on 127.0.0.1:0 over UDP and TCP (same port).
// The handler decides per query: a reply packet, raw bytes, several datagrams, or silence.
import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';

export interface DnsQuery {
  id: number;
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
  flags: number;
  /** EDNS0 payload size the client advertised, if any. */
  udpPayloadSize?: number;
  dnssecOk: boolean;
}

export type DnsAnswer = { reply: Partial<dnsPacket.Packet> & { rcode?: string }; delayMs?: number } | { raw: Buffer[]; delayMs?: number } | { drop: true };

export interface TestDnsServer {
  port: number;
  queries: DnsQuery[];
  close(): Promise<void>;
}

export async function startDnsServer(handler: (q: DnsQuery) => DnsAnswer): Promise<TestDnsServer> {
  const queries: DnsQuery[] = [];
  let udp = createSocket('udp4');
  const tcp = createServer();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const answer = (buf: Buffer, transport: 'udp' | 'tcp', send: (b: Buffer) => void) => {
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(buf);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number; flag_do?: boolean } | undefined;
    const query: DnsQuery = {
      id: q.id ?? 0,
      name: question?.name ?? '',
      type: question?.type ?? '',
      transport,
      flags: q.flags ?? 0,
      ...(opt?.udpPayloadSize !== undefined ? { udpPayloadSize: opt.udpPayloadSize } : {}),
      dnssecOk: opt?.flag_do === true,
    };
    queries.push(query);
    const a = handler(query);
    if ('drop' in a) return;
    const out =
      'raw' in a
        ? a.raw
        : [
            dnsPacket.encode({
              type: 'response',
              id: query.id,
              questions: q.questions ?? [],
              ...a.reply,
              // After the spread: a reply's own `flags` (e.g. TC) add to RA, RD and the rcode.
              flags: (a.reply.flags ?? 0) | dnsPacket.RECURSION_AVAILABLE | (query.flags & dnsPacket.RECURSION_DESIRED) | rcodeBits(a.reply.rcode),
            }),
          ];
    const go = () => {
      for (const b of out) send(b);
    };
    if (a.delayMs) {
      const t = setTimeout(() => {
        timers.delete(t);
        go();
      }, a.delayMs);
      timers.add(t);
    } else go();
  };

  // A send error (e.g. EMSGSIZE for an oversize raw datagram) is the test's business, not an
  // uncaught 'error' event on the socket.
  const onUdp = (msg: Buffer, rinfo: RemoteInfo) => answer(msg, 'udp', (b) => udp.send(b, rinfo.port, rinfo.address, () => undefined));
  udp.on('message', onUdp);
  tcp.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    s.once('close', () => sockets.delete(s));
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, len + 2);
        buf = buf.subarray(len + 2);
        answer(msg, 'tcp', (b) => {
          if (s.destroyed) return;
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(b.length);
          s.write(Buffer.concat([prefix, b]));
        });
      }
    });
  });
  // One port for both transports: bind UDP first, then TCP on the same number. That number may
  // be taken for TCP (e.g. by a client socket's ephemeral port): then try another.
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    port = udp.address().port;
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      break;
    } catch (err) {
      await new Promise<void>((r) => udp.close(() => r()));
      if ((err as { code?: unknown }).code !== 'EADDRINUSE' || attempt >= 20) throw err;
      udp = createSocket('udp4');
      udp.on('message', onUdp);
    }
  }
  return {
    port,
    queries,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

const RCODE_NUM: Record<string, number> = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  YXDOMAIN: 6,
  YXRRSET: 7,
  NXRRSET: 8,
  NOTAUTH: 9,
  NOTZONE: 10,
};

function rcodeBits(rcode: string | undefined): number {
  return rcode === undefined ? 0 : (RCODE_NUM[rcode] ?? 0);
}
