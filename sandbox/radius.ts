// The sandbox's RADIUS server: the clinical devices' Wi-Fi login (RFC 2865 over UDP on loopback)
// for `vakt demo` and the tests of the radius kind. It knows one client secret and one user,
// checks a request the way FreeRADIUS does (a Message-Authenticator that does not verify, or a
// packet that is not one, is dropped without a word), reads PAP and CHAP, and answers with a
// Response Authenticator and its own Message-Authenticator. Fault switches (`mode`):
//   ok         Access-Accept for the right password (Filter-Id clinical-devices, VLAN 120), Access-Reject otherwise
//   reject     Access-Reject with a Reply-Message, whatever the password (an account disabled in the directory)
//   challenge  Access-Challenge (someone turned on a second factor for the probe account)
//   slow       answers after `slowMs` (2.5 s by default: later than the probe's retransmit interval of 2 s)
//   silent     no answer at all (a server that is down, or one that no longer knows this client)
//   badauth    answers with a Response Authenticator that does not verify (a shared secret changed on one side)
import type { Socket } from 'node:dgram';
import { bindUdp, closeUdp } from './udp-service.js';
import { timingSafeEqual } from 'node:crypto';
import {
  ATTR,
  chapResponse,
  CODE,
  decodePacket,
  encodeReply,
  requestMessageAuthenticatorValid,
  revealPassword,
  valuesOf,
  type Attribute,
  type RadiusPacket,
} from '../probes/radius/packet.js';

export const RADIUS_MODES = ['ok', 'reject', 'challenge', 'slow', 'silent', 'badauth'] as const;
export type RadiusMode = (typeof RADIUS_MODES)[number];
export const DEFAULT_RADIUS_SLOW_MS = 2500;
/** What the server grants the probe account: the clinical devices' filter and VLAN. */
export const SANDBOX_RADIUS_FILTER = 'clinical-devices';
export const SANDBOX_RADIUS_VLAN = '120';

export interface SandboxRadiusOptions {
  host: string;
  port: number;
  /** The shared secret of the one client (any address on loopback). */
  secret: string;
  user: string;
  password: string;
  slowMs?: number;
}

export class SandboxRadiusServer {
  mode: RadiusMode = 'ok';
  /** Datagrams received since the start, and the last few as they came (for tests of retransmits). */
  requests = 0;
  readonly received: Buffer[] = [];
  slowMs: number;
  private socket: Socket | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: SandboxRadiusOptions) {
    this.slowMs = opts.slowMs ?? DEFAULT_RADIUS_SLOW_MS;
  }

  get address(): { host: string; port: number } {
    const a = this.socket?.address();
    return { host: this.opts.host, port: a?.port ?? this.opts.port };
  }

  async start(): Promise<void> {
    this.socket = await bindUdp(this.opts.host, this.opts.port, (socket, msg, from) => this.answer(socket, msg, from));
  }

  setMode(mode: RadiusMode): void {
    this.mode = mode;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const s = this.socket;
    this.socket = undefined;
    await closeUdp(s);
  }

  private answer(socket: Socket, msg: Buffer, from: { address: string; port: number }): void {
    this.requests++;
    this.received.push(Buffer.from(msg));
    if (this.received.length > 16) this.received.shift();
    const secret = Buffer.from(this.opts.secret, 'utf8');
    const request = decodePacket(msg);
    // As FreeRADIUS: what is not an Access-Request signed with our secret gets no answer.
    if (typeof request === 'string' || request.code !== CODE.accessRequest || requestMessageAuthenticatorValid(request.raw, secret) === false) return;
    if (this.mode === 'silent') return;
    const reply = this.reply(request, secret);
    if (this.mode === 'badauth') reply.fill(0x5a, 4, 20);
    if (this.mode === 'slow') {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (this.socket === socket) socket.send(reply, from.port, from.address);
      }, this.slowMs);
      this.timers.add(timer);
    } else socket.send(reply, from.port, from.address);
  }

  private reply(request: RadiusPacket, secret: Buffer): Buffer {
    const send = (code: number, attributes: Attribute[]) => encodeReply(code, request.identifier, request.authenticator, attributes, secret, true);
    const text = (type: number, s: string): Attribute => ({ type, value: Buffer.from(s, 'utf8') });
    if (this.mode === 'reject') return send(CODE.accessReject, [text(ATTR.replyMessage, 'Account disabled in the directory')]);
    if (this.mode === 'challenge') {
      return send(CODE.accessChallenge, [text(ATTR.replyMessage, 'Enter the code from your authenticator app'), text(ATTR.state, 'sandbox-challenge')]);
    }
    if (!this.knows(request, secret)) return send(CODE.accessReject, [text(ATTR.replyMessage, 'Wrong user name or password')]);
    return send(CODE.accessAccept, [
      text(ATTR.replyMessage, 'Welcome to the clinical network'),
      text(ATTR.filterId, SANDBOX_RADIUS_FILTER),
      // Tag 1, then the VLAN (RFC 2868 3.6).
      { type: ATTR.tunnelPrivateGroupId, value: Buffer.concat([Buffer.of(1), Buffer.from(SANDBOX_RADIUS_VLAN)]) },
    ]);
  }

  /** The request names our user and carries their password (PAP or CHAP). */
  private knows(request: RadiusPacket, secret: Buffer): boolean {
    const [name] = valuesOf(request, ATTR.userName);
    if (!name?.equals(Buffer.from(this.opts.user, 'utf8'))) return false;
    const password = Buffer.from(this.opts.password, 'utf8');
    const [hidden] = valuesOf(request, ATTR.userPassword);
    if (hidden !== undefined) return hidden.length >= 16 && hidden.length % 16 === 0 && revealPassword(hidden, secret, request.authenticator).equals(password);
    const [chap] = valuesOf(request, ATTR.chapPassword);
    if (chap?.length !== 17) return false;
    const challenge = valuesOf(request, ATTR.chapChallenge)[0] ?? request.authenticator;
    return timingSafeEqual(chapResponse(chap[0] as number, password, challenge), chap.subarray(1));
  }
}
