// The mllp probe: one synthetic HL7 v2 message over MLLP per run, timed until its ACK arrives.
// It checks MSA-1 (the ACK code) against the expected codes and MSA-2 against the control id it
// sent, so a queue that stopped draining (no ACK) or an engine that rejects shows per interface.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { PHASES, HL7_ACK_CODES, type MllpOptions } from './options.js';
import { classifyError, describeError, readUntil, resolveStep, writeAll } from '../kit/net.js';
import type { Endpoint } from '../kit/target.js';
import { failed, Timeline, tlsFilesStep } from '../kit/step.js';
import { certExpiring, certFacts, connectSocket, handshake, loadTlsMaterial, type TlsMaterial } from '../kit/tls.js';
import type { FailureReason, Probe, ProbeContext, ProbeInfo, ProbeResult } from '../types.js';

type Phase = (typeof PHASES)[number];

/** MLLP frame bytes: start block, end block, carriage return. */
const MLLP_START = 0x0b;
const MLLP_END = 0x1c;
export const MLLP_CR = 0x0d;

/** The only error the reader and the parser throw: the bytes are not a usable MLLP frame or ACK. */
export class MllpError extends Error {
  override readonly name = 'MllpError';
}

/**
 * Reassembles the first MLLP frame from a byte stream, whatever the TCP segmentation: bytes
 * before the start byte are skipped (and counted), the end sequence may be split across chunks,
 * bytes after the first complete frame are ignored. Never buffers more than maxFrame bytes.
 */
export class MllpReader {
  private started = false;
  private pendingEnd = false;
  private readonly parts: Buffer[] = [];
  private size = 0;
  private done: Buffer | undefined;
  /** Bytes received before the start byte. */
  skipped = 0;

  constructor(readonly maxFrame: number) {}

  /** Whether a frame has begun (its start byte arrived). */
  get inFrame(): boolean {
    return this.started;
  }

  /** Bytes of the current frame buffered so far. */
  get buffered(): number {
    return this.size;
  }

  /** Feeds bytes; returns the first complete frame's payload once it is there. Throws MllpError when it grows beyond maxFrame. */
  push(chunk: Uint8Array): Buffer | undefined {
    if (this.done) return this.done;
    let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (!this.started) {
      const s = data.indexOf(MLLP_START);
      if (s < 0) {
        this.skipped += data.length;
        if (this.skipped > this.maxFrame) throw new MllpError(`no MLLP start byte in the first ${this.skipped} bytes`);
        return undefined;
      }
      this.skipped += s;
      this.started = true;
      data = data.subarray(s + 1);
    }
    if (this.pendingEnd) {
      this.pendingEnd = false;
      if (data.length > 0 && data[0] === MLLP_CR) return this.finish();
      this.append(Buffer.of(MLLP_END));
    }
    let from = 0;
    for (;;) {
      const e = data.indexOf(MLLP_END, from);
      if (e < 0) break;
      if (e === data.length - 1) {
        this.append(data.subarray(0, e));
        this.pendingEnd = true;
        return undefined;
      }
      if (data[e + 1] === MLLP_CR) {
        this.append(data.subarray(0, e));
        return this.finish();
      }
      from = e + 1;
    }
    this.append(data);
    return undefined;
  }

  private append(b: Buffer): void {
    if (b.length === 0) return;
    if (this.size + b.length > this.maxFrame) throw new MllpError(`MLLP frame larger than ${this.maxFrame} bytes`);
    this.parts.push(Buffer.from(b));
    this.size += b.length;
  }

  private finish(): Buffer {
    this.done = Buffer.concat(this.parts, this.size);
    this.parts.length = 0;
    return this.done;
  }
}

export type AckCode = (typeof HL7_ACK_CODES)[number] | 'other';

export interface ParsedAck {
  /** MSA-1 as sent. */
  code: string;
  /** MSA-1 bounded to the known codes (a metric label). */
  ackCode: AckCode;
  /** MSA-2: the control id of the message acknowledged. */
  controlId: string;
  /** MSA-3 text (bounded). */
  text: string;
  /** Error codes from ERR-3 (v2.5+), ERR-1's fourth component (v2.4 and earlier) and MSA-6. */
  errorCodes: string[];
}

/** Parses an ACK frame's payload (MSH ... MSA ... [ERR ...]). Throws MllpError when it is not an HL7 ACK. */
export function parseAck(frame: Uint8Array): ParsedAck {
  const text = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('latin1');
  const segments = text.split(/\r\n|\r|\n/).filter((s) => s.length > 0);
  const msh = segments[0];
  if (msh === undefined || !msh.startsWith('MSH') || msh.length < 8) throw new MllpError('the answer is not an HL7 message (no MSH segment first)');
  const fieldSep = msh[3] as string;
  const componentSep = msh[4] as string;
  if (/[A-Za-z0-9\r\n]/.test(fieldSep) || componentSep === fieldSep) throw new MllpError('the answer has no valid MSH encoding characters');
  const subSep = msh[7] !== undefined && msh[7] !== fieldSep ? msh[7] : '&';
  let msa: string[] | undefined;
  const errorCodes: string[] = [];
  const firstComponent = (f: string | undefined) => (f ?? '').split(componentSep)[0]?.trim() ?? '';
  for (const seg of segments.slice(1)) {
    const fields = seg.split(fieldSep);
    if (fields[0] === 'MSA' && msa === undefined) {
      msa = fields;
      const cond = firstComponent(fields[6]);
      if (cond) errorCodes.push(cond);
    } else if (fields[0] === 'ERR') {
      const err3 = firstComponent(fields[3]);
      if (err3) errorCodes.push(err3);
      const err1 = (fields[1] ?? '').split(componentSep)[3]?.split(subSep)[0]?.trim();
      if (err1) errorCodes.push(err1);
    }
  }
  if (!msa) throw new MllpError('the answer has no MSA segment');
  const code = (msa[1] ?? '').trim();
  if (code === '') throw new MllpError('the answer has an empty MSA-1');
  const ackCode: AckCode = (HL7_ACK_CODES as readonly string[]).includes(code) ? (code as AckCode) : 'other';
  return {
    code: code.slice(0, 16),
    ackCode,
    controlId: (msa[2] ?? '').trim().slice(0, 64),
    text: (msa[3] ?? '').slice(0, 200),
    errorCodes: [...new Set(errorCodes)].slice(0, 10),
  };
}

let sequence = 0;

/** A control id unique per run: "VK" + base36 milliseconds + a base36 counter and random part; at most 20 characters. */
function newControlId(): string {
  sequence = (sequence + 1) % 1296;
  const rand = randomBytes(4).readUInt32BE(0).toString(36).padStart(7, '0').slice(0, 7);
  return `VK${Date.now().toString(36).toUpperCase()}${sequence.toString(36).padStart(2, '0')}${rand}`.toUpperCase().slice(0, 20);
}

/** YYYYMMDDHHMMSS in the agent's local time (HL7 DTM). */
function hl7Timestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** The probe's message, segments separated (and ended) by "\r", without the MLLP frame. */
function buildMessage(o: MllpOptions, controlId: string, timestamp: string): string {
  const trigger = o.messageType.split('^')[1] ?? '';
  const lines = [
    `MSH|^~\\&|${o.sendingApplication}|${o.sendingFacility}|${o.receivingApplication}|${o.receivingFacility}|${timestamp}||${o.messageType}|${controlId}|${o.processingId}|${o.version}`,
    ...(trigger ? [`EVN|${trigger}|${timestamp}`] : []),
    `PID|1||${o.patient.id}^^^${o.receivingFacility}^MR||${o.patient.name}`,
    'PV1|1|N',
    ...(o.segments ?? []),
  ];
  return lines.map((l) => `${l}\r`).join('');
}

export function frame(message: string): Buffer {
  return Buffer.concat([Buffer.of(MLLP_START), Buffer.from(message, 'latin1'), Buffer.of(MLLP_END, MLLP_CR)]);
}

export const mllpProbe: Probe<MllpOptions, Endpoint> = {
  phases: PHASES,
  async run(ctx: ProbeContext<MllpOptions, Endpoint>): Promise<ProbeResult> {
    const { options: o } = ctx;
    const phases: Record<string, number> = {};
    const result: ProbeResult = { ok: false, phases };
    const failWith = (phase: Phase, reason: FailureReason, message: string): ProbeResult => {
      result.failure = { phase, reason, message };
      return result;
    };
    const hp = ctx.target;

    // The run ends a little before the runner's deadline, so a missing ACK is reported as such.
    const conversation = ctx.budget.part('run ran out of time');
    const signal = conversation.signal;

    let socket: Socket | undefined;
    const line = new Timeline(phases, 'connect');
    let reader: MllpReader | undefined;
    try {
      const values: NonNullable<ProbeResult['values']> = {};
      const info: ProbeInfo = {};
      const resolved = await resolveStep(hp.host, o.ipFamily, signal, { phases, values, info });
      if (failed(resolved)) return resolved.result;
      result.values = values;
      if (Object.keys(info).length > 0) result.info = { ...result.info, ...info };
      const { address, family } = resolved;
      let tls: TlsMaterial | undefined;
      if (o.tls !== undefined) {
        const material = await tlsFilesStep({ phases, signal }, () => loadTlsMaterial(o.tls, hp.host));
        if (failed(material)) return material.result;
        tls = material;
      }
      const plain = await connectSocket({ address, port: hp.port, family }, Number.POSITIVE_INFINITY, signal, line);
      let open: Socket = plain;
      socket = plain;
      if (tls) {
        const material = tls;
        const secure = await line.time('tls', () => handshake(plain, material, signal));
        open = socket = secure;
        const facts = certFacts(secure);
        result.info = { ...result.info, ...facts.info };
        if (facts.earliestExpiry !== undefined) {
          result.values = { ...result.values, ssl_earliest_cert_expiry: facts.earliestExpiry };
          const expiring = certExpiring(tls, facts.earliestExpiry);
          if (expiring) result.degraded = expiring;
        }
      }

      const controlId = newControlId();
      const message = buildMessage(o, controlId, hl7Timestamp(new Date()));
      line.begin('send');
      reader = new MllpReader(o.maxFrame);
      // Listen before writing: a fast peer may answer before the write callback fires.
      const ack = readFrame(open, reader, signal);
      ack.catch(() => undefined);
      await writeAll(open, frame(message), signal);
      line.end();
      const payload = await line.time('ack', () => ack);

      let parsed: ParsedAck;
      try {
        parsed = parseAck(payload);
      } catch (err) {
        return failWith('ack', 'protocol', describeError(err));
      }
      result.info = { ...result.info, hl7AckCode: parsed.ackCode };
      if (parsed.controlId !== controlId)
        return failWith('ack', 'ack_mismatch', `MSA-2 "${parsed.controlId}" is not the control id sent (${controlId}); MSA-1 ${parsed.code}`);
      const detail = `${parsed.code}${parsed.errorCodes.length ? ` (error ${parsed.errorCodes.join(', ')})` : ''}${parsed.text ? `: ${parsed.text}` : ''}`;
      if ((o.expectAck as readonly string[]).includes(parsed.code)) {
        result.ok = true;
        return result;
      }
      const isError = parsed.code === 'AE' || parsed.code === 'CE';
      const isReject = parsed.code === 'AR' || parsed.code === 'CR';
      if ((isError || isReject) && o.acceptErrorCodes?.some((c) => parsed.errorCodes.includes(c))) {
        result.ok = true;
        return result;
      }
      if (isError) return failWith('ack', 'ack_error', `ACK ${detail}`);
      if (isReject) return failWith('ack', 'ack_reject', `ACK ${detail}`);
      if (parsed.ackCode === 'other') return failWith('ack', 'protocol', `unknown MSA-1 code ${JSON.stringify(parsed.code)}`);
      return failWith('ack', 'expect_mismatch', `ACK ${detail}, expected one of ${o.expectAck.join(', ')}`);
    } catch (err) {
      const phase = line.current as Phase;
      if (err instanceof MllpError) return failWith(phase, 'protocol', err.message);
      const reason = classifyError(err);
      // Only unframed bytes before the deadline: the peer does not speak MLLP.
      if (reason === 'timeout' && phase === 'ack' && reader && !reader.inFrame && reader.skipped > 0) {
        return failWith('ack', 'protocol', `no MLLP frame: ${reader.skipped} bytes without a start byte`);
      }
      const what =
        reason === 'timeout' && phase === 'ack'
          ? reader?.inFrame
            ? `incomplete ACK frame (${reader.buffered} bytes) before the deadline`
            : 'no ACK before the deadline'
          : describeError(err);
      return failWith(phase, reason, what);
    } finally {
      conversation.done();
      socket?.destroy();
    }
  },
};

/** Reads until the reader has a complete frame; the peer closing first is a protocol failure. */
function readFrame(socket: Socket, reader: MllpReader, signal: AbortSignal): Promise<Buffer> {
  return readUntil<Buffer>(
    socket,
    signal,
    (chunk) => reader.push(chunk),
    () =>
      new MllpError(
        reader.inFrame
          ? `peer closed the connection inside an ACK frame (${reader.buffered} bytes)`
          : reader.skipped > 0
            ? `no MLLP frame: ${reader.skipped} bytes without a start byte, then the peer closed`
            : 'peer closed the connection without an ACK',
      ),
  );
}
