// The sandbox's internal DNS: the resolvers of the Region Kronoberg story (incident 3). Two
// instances, ns1 and ns2, each serving the internal zones over UDP and TCP on one port:
//   region.sandbox        SOA, NS, MX, A for cosmic, ehr (CNAME), lab, pacs, mail, dc01/dc02,
//                         SRV _ldap._tcp, and vdi (100 addresses: too big for UDP, so the
//                         UDP reply is truncated and a client must retry over TCP)
//   20.10.in-addr.arpa    PTR for the addresses above
// Names outside these zones are REFUSED (the sandbox resolves nothing on the internet).
// Modes (the fault switches, per resolver):
//   ok        answers from the current zone
//   timeout   never answers (UDP ignored; TCP accepted and held silent)
//   servfail  SERVFAIL to every query (the zone failed to load after the upgrade)
//   wrong     answers from the wrong zone copy: every address is 10.99.9.9 and the SOA names
//             the upgraded server as primary (the botched upgrade)
//   nxdomain  NXDOMAIN to every query (the zone is gone)
//   refused   REFUSED to every query (an access list that no longer lets clients in)
//   stale     answers from last month's zone: an older SOA serial, pacs at its old address
//             (a secondary that stopped receiving zone transfers)
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';

export const DNS_MODES = ['ok', 'timeout', 'servfail', 'wrong', 'nxdomain', 'refused', 'stale'] as const;
export type DnsMode = (typeof DNS_MODES)[number];

export const SANDBOX_ZONE = 'region.sandbox';
export const SANDBOX_REVERSE_ZONE = '20.10.in-addr.arpa';
/** The zone's SOA serial (date-based, YYYYMMDDnn). */
export const ZONE_SERIAL = 2026112201;
/** The serial a `stale` resolver still has. */
export const STALE_SERIAL = 2026110402;
/** What a `wrong` resolver answers for every address. */
export const WRONG_ADDRESS = '10.99.9.9';

type Answer = dnsPacket.Answer;
type Variant = 'current' | 'wrong' | 'stale';

const TTL = 300;
/** How long an idle TCP connection from a client is kept open. */
const TCP_IDLE_MS = 30_000;
/** A held (timeout mode) TCP connection is let go after this. */
const HOLD_MS = 120_000;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** The address records of the forward zone, by host (without the zone). */
function addresses(variant: Variant): [string, string[]][] {
  const hosts: [string, string[]][] = [
    ['ns1', ['10.20.0.53']],
    ['ns2', ['10.20.0.54']],
    ['dc01', ['10.20.0.10']],
    ['dc02', ['10.20.0.11']],
    ['cosmic', ['10.20.1.5']],
    ['lab', ['10.20.2.15']],
    ['pacs', [variant === 'stale' ? '10.20.2.9' : '10.20.2.30']],
    ['mail', ['10.20.3.25']],
    // The VDI pool: 100 addresses, a reply of about 3 kB (more than any UDP payload size offered).
    ['vdi', Array.from({ length: 100 }, (_, i) => `10.20.8.${i + 1}`)],
  ];
  return variant === 'wrong' ? hosts.map(([h]) => [h, [WRONG_ADDRESS]]) : hosts;
}

/** One version of the zones: every record set by lowercase owner name. */
function buildZone(variant: Variant): Map<string, Answer[]> {
  const z = SANDBOX_ZONE;
  const zone = new Map<string, Answer[]>();
  const add = (a: Answer) => {
    const key = a.name.toLowerCase();
    zone.set(key, [...(zone.get(key) ?? []), a]);
  };
  add({
    name: z,
    type: 'SOA',
    ttl: 3600,
    class: 'IN',
    data: {
      mname: variant === 'wrong' ? `ns-upgrade.${z}` : `ns1.${z}`,
      rname: `hostmaster.${z}`,
      serial: variant === 'stale' ? STALE_SERIAL : ZONE_SERIAL,
      refresh: 3600,
      retry: 600,
      expire: 1209600,
      minimum: 300,
    },
  });
  add({ name: z, type: 'NS', ttl: 3600, class: 'IN', data: `ns1.${z}` });
  add({ name: z, type: 'NS', ttl: 3600, class: 'IN', data: `ns2.${z}` });
  add({ name: z, type: 'MX', ttl: 3600, class: 'IN', data: { preference: 10, exchange: `mail.${z}` } });
  for (const [host, ips] of addresses(variant)) for (const ip of ips) add({ name: `${host}.${z}`, type: 'A', ttl: TTL, class: 'IN', data: ip });
  add({ name: `ehr.${z}`, type: 'CNAME', ttl: TTL, class: 'IN', data: `cosmic.${z}` });
  for (const dc of ['dc01', 'dc02'])
    add({ name: `_ldap._tcp.${z}`, type: 'SRV', ttl: TTL, class: 'IN', data: { priority: 0, weight: 100, port: 389, target: `${dc}.${z}` } });

  const r = SANDBOX_REVERSE_ZONE;
  add({
    name: r,
    type: 'SOA',
    ttl: 3600,
    class: 'IN',
    data: {
      mname: `ns1.${z}`,
      rname: `hostmaster.${z}`,
      serial: variant === 'stale' ? STALE_SERIAL : ZONE_SERIAL,
      refresh: 3600,
      retry: 600,
      expire: 1209600,
      minimum: 300,
    },
  });
  add({ name: r, type: 'NS', ttl: 3600, class: 'IN', data: `ns1.${z}` });
  add({ name: r, type: 'NS', ttl: 3600, class: 'IN', data: `ns2.${z}` });
  // PTRs from the correct addresses (the reverse zone is not what the botched upgrade broke).
  for (const [host, ips] of addresses(variant === 'wrong' ? 'current' : variant)) {
    if (host === 'vdi') continue;
    for (const ip of ips) add({ name: `${ip.split('.').reverse().join('.')}.in-addr.arpa`, type: 'PTR', ttl: TTL, class: 'IN', data: `${host}.${z}` });
  }
  return zone;
}

const ZONES: Record<Variant, Map<string, Answer[]>> = { current: buildZone('current'), wrong: buildZone('wrong'), stale: buildZone('stale') };

function inZone(name: string): string | undefined {
  for (const apex of [SANDBOX_ZONE, SANDBOX_REVERSE_ZONE]) if (name === apex || name.endsWith(`.${apex}`)) return apex;
  return undefined;
}

interface Reply {
  rcode: number;
  aa: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

/** The authoritative answer to one question from one version of the zones. */
export function lookup(qname: string, qtype: string, variant: Variant = 'current'): Reply {
  const name = qname.toLowerCase().replace(/\.$/, '');
  const apex = inZone(name);
  if (!apex) return { rcode: RCODE.REFUSED, aa: false, answers: [], authorities: [], additionals: [] };
  const zone = ZONES[variant];
  const soa = (zone.get(apex) ?? []).filter((a) => a.type === 'SOA');
  const at = zone.get(name);
  if (!at) return { rcode: RCODE.NXDOMAIN, aa: true, answers: [], authorities: soa, additionals: [] };
  const answers = at.filter((a) => a.type === qtype || qtype === 'ANY');
  const cname = at.find((a): a is dnsPacket.StringAnswer => a.type === 'CNAME');
  if (answers.length === 0 && cname && qtype !== 'CNAME') {
    // One level of CNAME, inside the zone (all the sandbox has).
    const target = (zone.get(cname.data.toLowerCase()) ?? []).filter((a) => a.type === qtype);
    return { rcode: RCODE.NOERROR, aa: true, answers: [cname, ...target], authorities: target.length === 0 ? soa : [], additionals: [] };
  }
  if (answers.length === 0) return { rcode: RCODE.NOERROR, aa: true, answers: [], authorities: soa, additionals: [] };
  // Addresses of the names MX, SRV and NS records point at, as a real server adds them.
  const glue: Answer[] = [];
  for (const a of answers) {
    const host = a.type === 'MX' ? a.data.exchange : a.type === 'SRV' ? a.data.target : a.type === 'NS' ? a.data : undefined;
    if (host) glue.push(...(zone.get(host.toLowerCase()) ?? []).filter((g) => g.type === 'A'));
  }
  return { rcode: RCODE.NOERROR, aa: true, answers, authorities: [], additionals: glue };
}

/** One simulated internal resolver (UDP and TCP on the same port) with its fault switch. */
export class SandboxResolver {
  mode: DnsMode = 'ok';
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  constructor(
    readonly name: string,
    private readonly host: string,
    private readonly port: number,
  ) {}

  get address(): { host: string; port: number } {
    return { host: this.host, port: this.boundPort };
  }

  /** host:port as a dns check's target. */
  get target(): string {
    return isIP(this.host) === 6 ? `[${this.host}]:${this.boundPort}` : `${this.host}:${this.boundPort}`;
  }

  setMode(mode: DnsMode): void {
    this.mode = mode;
  }

  async start(): Promise<void> {
    // Port 0: the OS picks a free UDP port, which may be taken for TCP; try a few.
    for (let attempt = 0; ; attempt++) {
      const udp = await this.bindUdp(this.port);
      const port = udp.address().port;
      try {
        this.tcp = await this.listenTcp(port);
        this.udp = udp;
        this.boundPort = port;
        return;
      } catch (err) {
        await new Promise<void>((r) => udp.close(() => r()));
        if (this.port !== 0 || attempt >= 9 || (err as { code?: unknown }).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    if (tcp) await new Promise<void>((r) => tcp.close(() => r()));
  }

  private bindUdp(port: number): Promise<UdpSocket> {
    const udp = createSocket(isIP(this.host) === 6 ? 'udp6' : 'udp4');
    return new Promise((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, this.host, () => {
        udp.removeListener('error', reject);
        udp.on('error', () => undefined);
        udp.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
          const out = this.answer(msg, 'udp');
          if (out) udp.send(out, rinfo.port, rinfo.address, () => undefined);
        });
        resolve(udp);
      });
    });
  }

  private listenTcp(port: number): Promise<Server> {
    const server = createServer((s) => this.accept(s));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => {
        server.removeListener('error', reject);
        resolve(server);
      });
    });
  }

  private accept(s: Socket): void {
    this.sockets.add(s);
    s.on('error', () => s.destroy());
    s.once('close', () => this.sockets.delete(s));
    s.setTimeout(this.mode === 'timeout' ? HOLD_MS : TCP_IDLE_MS, () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, len + 2);
        buf = buf.subarray(len + 2);
        const out = this.answer(msg, 'tcp');
        if (out && !s.destroyed) {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(out.length);
          s.write(Buffer.concat([prefix, out]));
        }
      }
    });
  }

  /** The reply to one query message, or undefined for none (timeout mode, undecodable junk). */
  private answer(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    const mode = this.mode;
    if (mode === 'timeout') return undefined;
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    if (q.type !== 'query') return undefined;
    const question = q.questions?.[0];
    const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    let reply: Reply;
    if (!question) reply = { rcode: RCODE.FORMERR, aa: false, answers: [], authorities: [], additionals: [] };
    else if (mode === 'servfail') reply = { rcode: RCODE.SERVFAIL, aa: false, answers: [], authorities: [], additionals: [] };
    else if (mode === 'refused') reply = { rcode: RCODE.REFUSED, aa: false, answers: [], authorities: [], additionals: [] };
    else if (mode === 'nxdomain') reply = { rcode: RCODE.NXDOMAIN, aa: true, answers: [], authorities: [], additionals: [] };
    else reply = lookup(question.name, question.type, mode === 'wrong' ? 'wrong' : mode === 'stale' ? 'stale' : 'current');

    const flags =
      (reply.aa ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | dnsPacket.RECURSION_AVAILABLE | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | reply.rcode;
    const optOut: Answer[] = opt
      ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
      : [];
    const packet: dnsPacket.Packet = {
      type: 'response',
      id: q.id ?? 0,
      flags,
      questions: q.questions ?? [],
      answers: reply.answers,
      authorities: reply.authorities,
      additionals: [...reply.additionals, ...optOut],
    };
    const out = dnsPacket.encode(packet);
    // Over UDP a reply may be at most the size the client offered (512 bytes without EDNS);
    // a longer one goes out empty with TC set, and the client must ask again over TCP.
    const limit = Math.max(512, Math.min(opt?.udpPayloadSize ?? 512, 1232));
    if (transport === 'udp' && out.length > limit) {
      return dnsPacket.encode({ ...packet, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: optOut });
    }
    return out;
  }
}
