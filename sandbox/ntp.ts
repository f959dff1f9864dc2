// The sandbox's time server: an NTPv4 server on loopback (UDP) for `vakt demo` and the tests of
// the ntp kind. It answers a client request (mode 3) with a server reply (mode 4) that echoes
// the request's transmit timestamp as its origin, as RFC 5905 servers do; anything else (short
// datagrams, other modes) is ignored. Fault switches (`mode`):
//   ok      stratum 2, the local clock: offset ~0
//   drift   the clock is `driftMs` ahead (2 s by default): degraded
//   skew    the clock is 10 minutes ahead: Kerberos logins would fail (incident story: a DC whose
//           time source died)
//   unsync  leap indicator 3, stratum 0: the server has lost its time source
//   kod     a kiss-o'-death: stratum 0, kiss code RATE
//   down    no answer at all
import type { Socket } from 'node:dgram';
import { bindUdp, closeUdp } from './udp-service.js';
import { ntpTimestamp } from '../probes/ntp/probe.js';

export const NTP_MODES = ['ok', 'drift', 'skew', 'unsync', 'kod', 'down'] as const;
export type NtpMode = (typeof NTP_MODES)[number];
export const DEFAULT_NTP_DRIFT_MS = 2000;
const SKEW_MS = 10 * 60_000;

export class SandboxTimeServer {
  mode: NtpMode = 'ok';
  /** Requests answered or ignored since the start. */
  requests = 0;
  private socket: Socket | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    public driftMs = DEFAULT_NTP_DRIFT_MS,
  ) {}

  get address(): { host: string; port: number } {
    const a = this.socket?.address();
    return { host: this.host, port: a?.port ?? this.port };
  }

  async start(): Promise<void> {
    this.socket = await bindUdp(this.host, this.port, (socket, msg, from) => this.answer(socket, msg, from));
  }

  setMode(mode: NtpMode): void {
    this.mode = mode;
  }

  async stop(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    await closeUdp(s);
  }

  private answer(socket: Socket, msg: Buffer, from: { address: string; port: number }): void {
    this.requests++;
    if (this.mode === 'down' || msg.length < 48 || (msg.readUInt8(0) & 7) !== 3) return;
    const received = this.clock();
    const version = (msg.readUInt8(0) >> 3) & 7;
    const reply = Buffer.alloc(48);
    const leap = this.mode === 'unsync' ? 3 : 0;
    reply.writeUInt8((leap << 6) | (version << 3) | 4, 0);
    reply.writeUInt8(this.mode === 'unsync' || this.mode === 'kod' ? 0 : 2, 1);
    reply.writeInt8(6, 2); // poll
    reply.writeInt8(-20, 3); // precision ~1 µs
    reply.writeUInt32BE(this.mode === 'unsync' ? 65536 : 0x0000_0200, 4); // root delay
    reply.writeUInt32BE(this.mode === 'unsync' ? 65536 : 0x0000_0400, 8); // root dispersion
    if (this.mode === 'kod') reply.write('RATE', 12, 'latin1');
    else if (this.mode !== 'unsync') Buffer.from([127, 0, 0, 1]).copy(reply, 12);
    msg.copy(reply, 24, 40, 48); // origin = the client's transmit timestamp
    if (this.mode !== 'kod' && this.mode !== 'unsync') {
      ntpTimestamp(received - 60_000).copy(reply, 16); // reference: set a minute ago
      ntpTimestamp(received).copy(reply, 32);
      ntpTimestamp(this.clock()).copy(reply, 40);
    } else msg.copy(reply, 40, 40, 48);
    socket.send(reply, from.port, from.address);
  }

  /** This server's clock (wall-clock ms, sub-millisecond), as far off as its mode says. */
  private clock(): number {
    return performance.timeOrigin + performance.now() + (this.mode === 'drift' ? this.driftMs : this.mode === 'skew' ? SKEW_MS : 0);
  }
}
