// The sandbox's PACS: a DICOM Verification SCP on loopback (the image archive radiology sends
// to), for `vakt demo` and the tests of the dicom kind, over plain TCP or DICOM TLS. It reads
// PDUs with the probe's own bounded reader and answers as a PACS does: an association to another
// called AE title is rejected (called AE title not recognised), the Verification SOP class is
// accepted with Implicit or Explicit VR Little Endian (the first of those proposed), a C-ECHO is
// answered with status 0x0000, a release with A-RELEASE-RP. Bytes that are not DICOM get an
// A-ABORT (unrecognised PDU) and the connection closed; connections are limited in number and
// closed when idle: the PACS never crashes on input and its buffers are bounded.
// Fault switches (`mode`):
//   ok         as above
//   reject     every association rejected, called AE title not recognised (1/1/7): the PACS was
//              migrated to a new AE title and nobody told the modalities
//   busy       every association rejected transiently, local limit exceeded (2/3/2): its
//              association table is full
//   nocontext  associations accepted, the Verification presentation context not (abstract
//              syntax not supported)
//   abort      associations accepted, then an A-ABORT instead of the C-ECHO response
//   status     the C-ECHO answered with status 0x0110 (processing failure)
//   silent     connections accepted, nothing ever answered: a hung archive process
//   slow       the association accepted after `slowMs` (3 s by default)
//   down       the PACS stops listening: connections are refused
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import {
  abortPdu,
  APPLICATION_CONTEXT,
  associateAc,
  associateRj,
  COMMAND,
  CommandAssembler,
  commandPdus,
  DicomProtocolError,
  echoRsp,
  parseAssociateRq,
  parseCommand,
  parsePData,
  PDU_TYPE,
  PduReader,
  releaseRp,
  TRANSFER_SYNTAX_UIDS,
  VERIFICATION_SOP_CLASS,
  type AssociateRq,
  type Rejection,
} from '../probes/dicom/pdu.js';
import { TcpService } from './tcp-service.js';

export const DICOM_MODES = ['ok', 'reject', 'busy', 'nocontext', 'abort', 'status', 'silent', 'slow', 'down'] as const;
export type DicomMode = (typeof DICOM_MODES)[number];

/** The sandbox PACS's own AE title: the demo's check calls it. */
export const SANDBOX_PACS_AE = 'SANDBOX_PACS';
/** How long a `slow` association takes unless told otherwise. */
export const DEFAULT_DICOM_SLOW_MS = 3000;
/** The C-ECHO status of the `status` fault: processing failure. */
export const FAULT_STATUS = 0x0110;
/** The largest PDU the PACS reads (its announced Maximum Length is far below). */
const MAX_PDU = 64 * 1024;
const OUR_MAX_PDU = 16_384;
const MAX_CONNECTIONS = 64;
const IDLE_MS = 60_000;
const IMPLEMENTATION_CLASS_UID = '2.25.99013837266093718331040112004856337213';
const IMPLEMENTATION_VERSION_NAME = 'VAKT_SANDBOX';

const REJECT_CALLED_AE: Rejection = { result: 1, source: 1, reason: 7 };
const REJECT_BUSY: Rejection = { result: 2, source: 3, reason: 2 };
const REJECT_CONTEXT_NAME: Rejection = { result: 1, source: 1, reason: 2 };
/** A-ABORT by the DICOM stack: unrecognised PDU, unexpected PDU. */
const ABORT_UNRECOGNISED = { source: 2, reason: 1 };
const ABORT_UNEXPECTED = { source: 2, reason: 2 };

const OURS: readonly string[] = [TRANSFER_SYNTAX_UIDS.ImplicitVRLittleEndian, TRANSFER_SYNTAX_UIDS.ExplicitVRLittleEndian];

export interface SandboxPacsOptions {
  host: string;
  port: number;
  /** Its own AE title (default SANDBOX_PACS). */
  aeTitle?: string;
  slowMs?: number;
  /** DICOM TLS: the server certificate and key (TLS from the start). */
  tls?: { cert: Buffer | string; key: Buffer | string };
}

/** The simulated PACS (a DICOM Verification SCP) with its fault switch. */
export class SandboxPacs extends TcpService<DicomMode> {
  readonly aeTitle: string;
  slowMs: number;
  /** Associations requested and C-ECHOs answered since the start (whatever the mode). */
  associations = 0;
  echoes = 0;
  private readonly secureContext: SecureContext | undefined;

  constructor(options: SandboxPacsOptions) {
    super(options.host, options.port, 'ok', MAX_CONNECTIONS);
    this.aeTitle = options.aeTitle ?? SANDBOX_PACS_AE;
    this.slowMs = options.slowMs ?? DEFAULT_DICOM_SLOW_MS;
    this.secureContext = options.tls ? createSecureContext({ cert: options.tls.cert, key: options.tls.key }) : undefined;
  }

  /** host:port as a dicom check's target. */
  get target(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  protected serve(raw: Socket): void {
    this.sockets.add(raw);
    raw.once('close', () => this.sockets.delete(raw));
    raw.on('error', () => raw.destroy());
    raw.setTimeout(IDLE_MS, () => raw.destroy());
    raw.setNoDelay(true);
    let socket: Socket = raw;
    if (this.secureContext) {
      const secure = new TLSSocket(raw, { isServer: true, secureContext: this.secureContext });
      secure.on('error', () => raw.destroy());
      socket = secure;
    }
    const conversation = new Conversation(this, socket);
    socket.on('data', (chunk: Buffer) => conversation.receive(chunk));
  }

  /** A timer the service clears when it stops. */
  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}

/** One connection's association, from request to release. */
class Conversation {
  private readonly reader = new PduReader(MAX_PDU);
  private state: 'idle' | 'waiting' | 'associated' | 'done' = 'idle';
  private contextId = 0;
  private assembler = new CommandAssembler();

  constructor(
    private readonly pacs: SandboxPacs,
    private readonly socket: Socket,
  ) {}

  /** The conversation is over (released, rejected, aborted): nothing more is read. */
  private get done(): boolean {
    return this.state === 'done';
  }

  receive(chunk: Buffer): void {
    // A hung archive process reads nothing (and keeps nothing).
    if (this.pacs.mode === 'silent' || this.done) return;
    try {
      this.reader.push(chunk);
      for (let p = this.reader.next(); p && !this.done; p = this.reader.next()) this.handle(p.type, p.body);
    } catch (err) {
      if (!(err instanceof DicomProtocolError)) throw err;
      this.abort(ABORT_UNRECOGNISED);
    }
  }

  private handle(type: number, body: Buffer): void {
    if (type === PDU_TYPE.abort) return this.close();
    if (this.state === 'idle' && type === PDU_TYPE.associateRq) return this.associate(parseAssociateRq(body));
    if (this.state === 'associated' && type === PDU_TYPE.pData) return this.command(body);
    if (this.state === 'associated' && type === PDU_TYPE.releaseRq) {
      this.state = 'done';
      this.socket.end(releaseRp());
      return;
    }
    this.abort(ABORT_UNEXPECTED);
  }

  private associate(rq: AssociateRq): void {
    this.pacs.associations++;
    const mode = this.pacs.mode;
    if (mode === 'busy') return this.reject(REJECT_BUSY);
    if (mode === 'reject' || rq.calledAe !== this.pacs.aeTitle) return this.reject(REJECT_CALLED_AE);
    if (rq.applicationContext !== APPLICATION_CONTEXT) return this.reject(REJECT_CONTEXT_NAME);
    const contexts = [...rq.contexts].map(([id, c]) => {
      const ts = c.transferSyntaxes.find((t) => OURS.includes(t));
      const result = c.abstractSyntax !== VERIFICATION_SOP_CLASS || mode === 'nocontext' ? 3 : ts === undefined ? 4 : 0;
      if (result === 0 && this.contextId === 0) this.contextId = id;
      return { id, result, transferSyntax: ts ?? TRANSFER_SYNTAX_UIDS.ImplicitVRLittleEndian };
    });
    const ac = associateAc({
      calledAe: rq.calledAe,
      callingAe: rq.callingAe,
      contexts,
      maxPdu: OUR_MAX_PDU,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION_NAME,
    });
    this.state = 'waiting';
    const accept = () => {
      if (this.socket.destroyed) return;
      this.state = 'associated';
      this.socket.write(ac);
    };
    if (mode === 'slow') this.pacs.later(this.pacs.slowMs, accept);
    else accept();
  }

  private command(body: Buffer): void {
    for (const pdv of parsePData(body)) {
      if (pdv.contextId !== this.contextId || !pdv.command) return this.abort(ABORT_UNEXPECTED);
      const whole = this.assembler.push(pdv);
      if (!whole) continue;
      this.assembler = new CommandAssembler();
      const c = parseCommand(whole);
      if (c.commandField !== COMMAND.echoRq || c.messageId === undefined) return this.abort(ABORT_UNEXPECTED);
      if (this.pacs.mode === 'abort') return this.abort({ source: 0, reason: 0 });
      this.pacs.echoes++;
      const status = this.pacs.mode === 'status' ? FAULT_STATUS : 0;
      for (const p of commandPdus(this.contextId, echoRsp(c.messageId, status), OUR_MAX_PDU)) this.socket.write(p);
    }
  }

  private reject(r: Rejection): void {
    this.state = 'done';
    this.socket.end(associateRj(r));
  }

  private abort(a: { source: number; reason: number }): void {
    this.state = 'done';
    this.socket.end(abortPdu(a));
  }

  private close(): void {
    this.state = 'done';
    this.socket.destroy();
  }
}
