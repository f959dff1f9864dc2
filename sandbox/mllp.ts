// The sandbox's HL7 interface engine: an MLLP endpoint on loopback (the story of incident 5, an
// integration that stops acknowledging while its queue backs up). It reads MLLP frames with the
// probe's own MllpReader, several messages per connection, and answers each with an ACK: MSH with
// sender and receiver swapped, MSH-10 its own control id, MSA-1 the code and MSA-2 the received
// MSH-10, and an ERR segment (ERR-3, table 0357) with AE and AR. A frame that is not an HL7
// message (no MSH) is answered AR with ERR-3 100. Bytes that are not MLLP, a frame over
// MAX_FRAME bytes or too many unanswered messages close the connection; connections are limited
// in number and closed when idle: the engine never crashes on input and its buffers are bounded.
// Fault switches (`mode`):
//   ok      every message is accepted: AA
//   stall   messages are read and never acknowledged (the connection stays open): the queue
//           that stopped draining (the Sundhedsplatformen picture)
//   error   AE with ERR-3 204 (unknown key identifier: the patient is not known)
//   reject  AR with ERR-3 207 (application internal error)
//   slow    AA after `slowMs` (3 s by default)
//   down    the engine stops listening: connections are refused
import type { Socket } from 'node:net';
import { frame, MllpError, MllpReader, MLLP_CR } from '../probes/mllp/probe.js';
import { TcpService } from './tcp-service.js';

export const MLLP_MODES = ['ok', 'stall', 'error', 'reject', 'slow', 'down'] as const;
export type MllpMode = (typeof MLLP_MODES)[number];

/** How long a `slow` ACK takes unless told otherwise. */
export const DEFAULT_MLLP_SLOW_MS = 3000;
/** The largest frame the engine reads; a bigger one (or as many bytes without a start byte) closes the connection. */
export const MAX_FRAME = 256 * 1024;
const MAX_CONNECTIONS = 64;
const IDLE_MS = 60_000;
/** Messages read but not yet answered (slow mode) per connection; more closes the connection. */
const MAX_PENDING = 32;
/** Longest value echoed from the received MSH into the ACK. */
const MAX_ECHO = 180;

const ERRORS = {
  error: { code: 'AE', err: '204^Unknown key identifier^HL70357', text: 'Unknown patient identifier' },
  reject: { code: 'AR', err: '207^Application internal error^HL70357', text: 'Interface engine cannot process the message' },
  notHl7: { code: 'AR', err: '100^Segment sequence error^HL70357', text: 'The message does not start with an MSH segment' },
} as const;

let sequence = 0;

/** The engine's own control id for an ACK (MSH-10), at most 20 characters. */
function ackControlId(): string {
  sequence = (sequence + 1) % 46656;
  return `SB${Date.now().toString(36).toUpperCase()}${sequence.toString(36).toUpperCase().padStart(3, '0')}`.slice(0, 20);
}

function timestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** A value from the received message, safe to put in a field of the ACK. */
function echo(value: string | undefined): string {
  let out = '';
  for (const ch of value ?? '') {
    if (ch !== '|' && ch !== '\r' && ch !== '\n' && ch !== '\x0b' && ch !== '\x1c') out += ch;
    if (out.length >= MAX_ECHO) break;
  }
  return out;
}

/** The ACK (without the MLLP frame) to one received message in the given mode (not stall, not down). */
export function buildAck(message: Buffer, mode: 'ok' | 'error' | 'reject' | 'slow'): string {
  const text = message.toString('latin1');
  const mshLine = text.split(/\r\n|\r|\n/, 1)[0] ?? '';
  const valid = mshLine.startsWith('MSH') && mshLine.length >= 8 && !/[A-Za-z0-9]/.test(mshLine[3] as string) && mshLine[4] !== mshLine[3];
  const f = valid ? mshLine.split(mshLine[3] as string) : [];
  const component = valid ? (mshLine[4] as string) : '^';
  // f[n] is MSH-(n+1): f[2] MSH-3 ... f[9] MSH-10.
  const trigger = echo((f[8] ?? '').split(component)[1]);
  const processingId = echo((f[10] ?? '').split(component)[0]) || 'P';
  const version = echo((f[11] ?? '').split(component)[0]) || '2.5';
  const msh = `MSH|^~\\&|${echo(f[4])}|${echo(f[5])}|${echo(f[2])}|${echo(f[3])}|${timestamp(new Date())}||ACK${trigger ? `^${trigger}^ACK` : ''}|${ackControlId()}|${processingId}|${version}`;
  const controlId = echo(f[9]).slice(0, 64);
  const e = !valid ? ERRORS.notHl7 : mode === 'error' ? ERRORS.error : mode === 'reject' ? ERRORS.reject : undefined;
  const lines = e ? [msh, `MSA|${e.code}|${controlId}|${e.text}`, `ERR|||${e.err}|E`] : [msh, `MSA|AA|${controlId}`];
  return lines.map((l) => `${l}\r`).join('');
}

/** The simulated HL7 interface engine (MLLP over TCP) with its fault switch. */
export class SandboxInterfaceEngine extends TcpService<MllpMode> {
  /** How long a `slow` ACK takes. */
  slowMs: number;
  /** Messages received since the start (whatever the mode). */
  received = 0;

  constructor(host: string, port: number, slowMs = DEFAULT_MLLP_SLOW_MS) {
    super(host, port, 'ok', MAX_CONNECTIONS);
    this.slowMs = slowMs;
  }

  /** host:port as an mllp check's target. */
  get target(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  protected serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.setNoDelay(true);
    let reader = new MllpReader(MAX_FRAME);
    let pending = 0;
    socket.on('data', (chunk: Buffer) => {
      // A frame can only end on a carriage return: feed the reader up to each one, so the bytes
      // after a complete frame start the next one (several messages per connection).
      let from = 0;
      while (from < chunk.length && !socket.destroyed) {
        const cr = chunk.indexOf(MLLP_CR, from);
        const to = cr < 0 ? chunk.length : cr + 1;
        let message: Buffer | undefined;
        try {
          message = reader.push(chunk.subarray(from, to));
        } catch (err) {
          if (err instanceof MllpError) socket.destroy();
          else throw err;
          return;
        }
        from = to;
        if (!message) continue;
        reader = new MllpReader(MAX_FRAME);
        this.received++;
        const mode = this.mode;
        if (mode === 'stall' || mode === 'down') continue;
        if (++pending > MAX_PENDING) {
          socket.destroy();
          return;
        }
        const answer = frame(buildAck(message, mode));
        const send = () => {
          pending--;
          if (!socket.destroyed) socket.write(answer);
        };
        if (mode === 'slow') {
          const t = setTimeout(() => {
            this.timers.delete(t);
            send();
          }, this.slowMs);
          this.timers.add(t);
        } else send();
      }
    });
  }
}
