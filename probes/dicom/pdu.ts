// The DICOM upper layer (PS3.8) and DIMSE (PS3.7) as far as a Verification conversation needs
// them, for the probe (the SCU) and the sandbox's PACS (the SCP): the PDUs built and parsed, an
// incremental PDU reader, and the C-ECHO command sets in Implicit VR Little Endian. Every parser
// takes peer bytes: each length is checked against the bytes that are there, a PDU's declared
// length against MAX_PDU_BYTES as soon as its 6-byte header has arrived (before any of its body
// is kept), text is cut to a bounded length, repeated items are kept up to a bound, and the only
// error thrown is DicomProtocolError.

/** The only error the reader and the parsers throw: the bytes are not the DICOM the conversation expects. */
export class DicomProtocolError extends Error {
  override readonly name = 'DicomProtocolError';
}

export const PDU_TYPE = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pData: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07,
} as const;

const PDU_NAMES: Readonly<Record<number, string>> = {
  1: 'A-ASSOCIATE-RQ',
  2: 'A-ASSOCIATE-AC',
  3: 'A-ASSOCIATE-RJ',
  4: 'P-DATA-TF',
  5: 'A-RELEASE-RQ',
  6: 'A-RELEASE-RP',
  7: 'A-ABORT',
};

/** "A-ASSOCIATE-AC (0x02)". */
export function pduName(type: number): string {
  return `${PDU_NAMES[type] ?? 'PDU'} (0x${hex(type, 2)})`;
}

/** The largest PDU accepted from a peer, whatever it declares: a longer one is refused from its header. */
export const MAX_PDU_BYTES = 1024 * 1024;
/** The largest P-DATA-TF we announce we receive (the Maximum Length sub-item; DCMTK's default). */
export const OUR_MAX_PDU = 16_384;
/** The largest command set reassembled from fragments (a C-ECHO-RSP is about 100 bytes). */
export const MAX_COMMAND_BYTES = 64 * 1024;
/** Fragments a command set may come in (each PDV of a P-DATA-TF is one). */
export const MAX_COMMAND_FRAGMENTS = 256;
/** Items kept per list (transfer syntaxes of one presentation context). */
const MAX_LIST = 64;
/** Longest UID (PS3.5 9.1). */
const MAX_UID = 64;

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';
export const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
export const TRANSFER_SYNTAX_UIDS = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
} as const;
export type TransferSyntaxName = keyof typeof TRANSFER_SYNTAX_UIDS;
export const TRANSFER_SYNTAX_NAMES = Object.keys(TRANSFER_SYNTAX_UIDS) as TransferSyntaxName[];

/** vakt's implementation class UID: a UUID-derived UID (PS3.5 B.2), so no organisation root is needed. */
export const IMPLEMENTATION_CLASS_UID = '2.25.186541493845118861082661849888012659866';
export const IMPLEMENTATION_VERSION_NAME = 'VAKT';

/** DIMSE command fields and statuses a Verification conversation uses. */
export const COMMAND = { echoRq: 0x0030, echoRsp: 0x8030 } as const;
/** CommandDataSetType: no data set follows. */
export const NO_DATA_SET = 0x0101;

function hex(n: number, digits: number): string {
  return n.toString(16).toUpperCase().padStart(digits, '0');
}

/** "0x0110". */
export function statusHex(status: number): string {
  return `0x${hex(status, 4)}`;
}

/** Peer text (an AE title, a UID, a version name) as a bounded, printable string: padding removed, other bytes as "?". */
export function peerText(b: Buffer, max: number): string {
  let s = '';
  for (let i = 0; i < b.length && s.length < max; i++) {
    const c = b[i] as number;
    s += c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : c === 0 ? '\0' : '?';
  }
  return s
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '')
    .replaceAll('\0', '?');
}

// ---------------------------------------------------------------------------------------------
// The reader

export interface Pdu {
  type: number;
  /** The PDU's bytes after its 6-byte header. */
  body: Buffer;
}

/**
 * Reassembles PDUs from a byte stream, whatever its segmentation. A PDU's type and declared
 * length are checked as soon as its header is there: an unknown type or a length over `maxPdu`
 * throws at once, so a peer that announces a huge PDU is refused before any of it is kept. At
 * most one PDU and the chunk that completed it are buffered.
 */
export class PduReader {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(readonly maxPdu: number = MAX_PDU_BYTES) {}

  /** Bytes buffered and not yet handed out. */
  get buffered(): number {
    return this.size;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.size += chunk.byteLength;
  }

  /** The next complete PDU, or undefined until its bytes are all there. Throws DicomProtocolError for a header no PDU has. */
  next(): Pdu | undefined {
    if (this.size < 6) return undefined;
    const head = this.peek(6);
    const type = head[0] as number;
    if (PDU_NAMES[type] === undefined) throw new DicomProtocolError(`not a DICOM PDU: type 0x${hex(type, 2)}`);
    const length = head.readUInt32BE(2);
    if (length > this.maxPdu) throw new DicomProtocolError(`${pduName(type)} declares ${length} bytes, above the limit of ${this.maxPdu}`);
    if (this.size < 6 + length) return undefined;
    const whole = this.take(6 + length);
    return { type, body: whole.subarray(6) };
  }

  /** The first n buffered bytes (n at most what is buffered), joining parts only as far as needed. */
  private peek(n: number): Buffer {
    const first = this.parts[0] as Buffer;
    if (first.length >= n) return first;
    const joined = Buffer.concat(this.parts, this.size);
    this.parts = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    const all = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size);
    const rest = all.subarray(n);
    this.parts = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    return all.subarray(0, n);
  }
}

// ---------------------------------------------------------------------------------------------
// A-ASSOCIATE-RQ and -AC

export interface UserInformation {
  /** The peer's Maximum Length (0: no limit). */
  maxPdu?: number;
  implementationClassUid?: string;
  implementationVersionName?: string;
}

export interface AssociateAc extends UserInformation {
  protocolVersion: number;
  applicationContext?: string;
  /** Presentation context results by id: 0 acceptance, 1 user rejection, 2 no reason, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  contexts: Map<number, { result: number; transferSyntax?: string }>;
}

export interface AssociateRq extends UserInformation {
  protocolVersion: number;
  calledAe: string;
  callingAe: string;
  applicationContext?: string;
  /** Proposed presentation contexts by id (at most 256: ids are one byte). */
  contexts: Map<number, { abstractSyntax?: string; transferSyntaxes: string[] }>;
}

/** The fixed part of both A-ASSOCIATE PDUs: version, reserved, called and calling AE titles, 32 reserved bytes. */
const ASSOCIATE_FIXED = 68;

/** The items of `b` from `at`: type and value, each length checked against the bytes left. */
function* items(b: Buffer, at: number, what: string): Generator<{ type: number; value: Buffer }> {
  while (at < b.length) {
    if (at + 4 > b.length) throw new DicomProtocolError(`${what}: an item header cut short (${b.length - at} bytes left)`);
    const type = b[at] as number;
    const length = b.readUInt16BE(at + 2);
    if (at + 4 + length > b.length) throw new DicomProtocolError(`${what}: item 0x${hex(type, 2)} declares ${length} bytes, ${b.length - at - 4} are left`);
    yield { type, value: b.subarray(at + 4, at + 4 + length) };
    at += 4 + length;
  }
}

function parseUserInformation(value: Buffer, into: UserInformation): void {
  for (const sub of items(value, 0, 'user information')) {
    if (sub.type === 0x51) {
      if (sub.value.length !== 4) throw new DicomProtocolError(`maximum length sub-item of ${sub.value.length} bytes, expected 4`);
      into.maxPdu = sub.value.readUInt32BE(0);
    } else if (sub.type === 0x52) into.implementationClassUid = peerText(sub.value, MAX_UID);
    else if (sub.type === 0x55) into.implementationVersionName = peerText(sub.value, 16);
    // Asynchronous operations, role selection, extended negotiation, user identity: not ours to judge.
  }
}

function associateFixed(body: Buffer, what: string): { protocolVersion: number; calledAe: string; callingAe: string } {
  if (body.length < ASSOCIATE_FIXED) throw new DicomProtocolError(`${what} of ${body.length} bytes, shorter than its fixed ${ASSOCIATE_FIXED}`);
  return { protocolVersion: body.readUInt16BE(0), calledAe: peerText(body.subarray(4, 20), 16), callingAe: peerText(body.subarray(20, 36), 16) };
}

export function parseAssociateAc(body: Buffer): AssociateAc {
  const { protocolVersion } = associateFixed(body, 'A-ASSOCIATE-AC');
  const ac: AssociateAc = { protocolVersion, contexts: new Map() };
  for (const item of items(body, ASSOCIATE_FIXED, 'A-ASSOCIATE-AC')) {
    if (item.type === 0x10) ac.applicationContext = peerText(item.value, MAX_UID);
    else if (item.type === 0x21) {
      if (item.value.length < 4) throw new DicomProtocolError(`presentation context item of ${item.value.length} bytes, expected at least 4`);
      const id = item.value[0] as number;
      const context: { result: number; transferSyntax?: string } = { result: item.value[2] as number };
      for (const sub of items(item.value, 4, `presentation context ${id}`)) {
        if (sub.type === 0x40) context.transferSyntax = peerText(sub.value, MAX_UID);
      }
      ac.contexts.set(id, context);
    } else if (item.type === 0x50) parseUserInformation(item.value, ac);
  }
  return ac;
}

export function parseAssociateRq(body: Buffer): AssociateRq {
  const rq: AssociateRq = { ...associateFixed(body, 'A-ASSOCIATE-RQ'), contexts: new Map() };
  for (const item of items(body, ASSOCIATE_FIXED, 'A-ASSOCIATE-RQ')) {
    if (item.type === 0x10) rq.applicationContext = peerText(item.value, MAX_UID);
    else if (item.type === 0x20) {
      if (item.value.length < 4) throw new DicomProtocolError(`presentation context item of ${item.value.length} bytes, expected at least 4`);
      const id = item.value[0] as number;
      const context: { abstractSyntax?: string; transferSyntaxes: string[] } = { transferSyntaxes: [] };
      for (const sub of items(item.value, 4, `presentation context ${id}`)) {
        if (sub.type === 0x30) context.abstractSyntax = peerText(sub.value, MAX_UID);
        else if (sub.type === 0x40 && context.transferSyntaxes.length < MAX_LIST) context.transferSyntaxes.push(peerText(sub.value, MAX_UID));
      }
      rq.contexts.set(id, context);
    } else if (item.type === 0x50) parseUserInformation(item.value, rq);
  }
  return rq;
}

// ---------------------------------------------------------------------------------------------
// A-ASSOCIATE-RJ, A-ABORT, A-RELEASE

export interface Rejection {
  /** 1 rejected permanently, 2 rejected transiently. */
  result: number;
  /** 1 service user, 2 service provider (ACSE), 3 service provider (presentation). */
  source: number;
  reason: number;
}

export function parseRejection(body: Buffer): Rejection {
  if (body.length < 4) throw new DicomProtocolError(`A-ASSOCIATE-RJ of ${body.length} bytes, expected 4`);
  return { result: body[1] as number, source: body[2] as number, reason: body[3] as number };
}

export interface Abort {
  /** 0 service user (the peer's application), 2 service provider (its DICOM stack). */
  source: number;
  reason: number;
}

export function parseAbort(body: Buffer): Abort {
  if (body.length < 4) throw new DicomProtocolError(`A-ABORT of ${body.length} bytes, expected 4`);
  return { source: body[2] as number, reason: body[3] as number };
}

// ---------------------------------------------------------------------------------------------
// P-DATA-TF and DIMSE commands

/** A presentation data value: one fragment of a command or a data set. */
export interface Pdv {
  contextId: number;
  command: boolean;
  last: boolean;
  data: Buffer;
}

export function parsePData(body: Buffer): Pdv[] {
  const pdvs: Pdv[] = [];
  let at = 0;
  while (at < body.length) {
    if (at + 4 > body.length) throw new DicomProtocolError(`P-DATA-TF: a PDV header cut short (${body.length - at} bytes left)`);
    const length = body.readUInt32BE(at);
    if (length < 2) throw new DicomProtocolError(`P-DATA-TF: a PDV of ${length} bytes, expected at least 2`);
    if (at + 4 + length > body.length) throw new DicomProtocolError(`P-DATA-TF: a PDV declares ${length} bytes, ${body.length - at - 4} are left`);
    const header = body[at + 5] as number;
    pdvs.push({ contextId: body[at + 4] as number, command: (header & 1) === 1, last: (header & 2) === 2, data: body.subarray(at + 6, at + 4 + length) });
    at += 4 + length;
  }
  if (pdvs.length === 0) throw new DicomProtocolError('P-DATA-TF without a PDV');
  return pdvs;
}

/** Joins a command set's fragments (PDVs with the command bit) until the last one; at most MAX_COMMAND_BYTES in MAX_COMMAND_FRAGMENTS. */
export class CommandAssembler {
  private readonly parts: Buffer[] = [];
  private size = 0;

  constructor(readonly max: number = MAX_COMMAND_BYTES) {}

  /** Adds a fragment; the whole command set once its last fragment is there. */
  push(pdv: Pdv): Buffer | undefined {
    this.size += pdv.data.length;
    if (this.size > this.max) throw new DicomProtocolError(`a command set larger than ${this.max} bytes`);
    if (this.parts.length >= MAX_COMMAND_FRAGMENTS) throw new DicomProtocolError(`a command set in more than ${MAX_COMMAND_FRAGMENTS} fragments`);
    this.parts.push(pdv.data);
    return pdv.last ? Buffer.concat(this.parts, this.size) : undefined;
  }
}

/** The elements of a command set a Verification conversation reads. */
export interface Command {
  affectedSopClassUid?: string;
  commandField?: number;
  messageId?: number;
  messageIdBeingRespondedTo?: number;
  dataSetType?: number;
  status?: number;
  errorComment?: string;
}

/** Parses a command set (group 0000, Implicit VR Little Endian, as every command set is). */
export function parseCommand(b: Buffer): Command {
  const c: Command = {};
  const us = (value: Buffer, element: number): number => {
    if (value.length !== 2) throw new DicomProtocolError(`command element (0000,${hex(element, 4)}) of ${value.length} bytes, expected 2`);
    return value.readUInt16LE(0);
  };
  let at = 0;
  while (at < b.length) {
    if (at + 8 > b.length) throw new DicomProtocolError(`command set: an element header cut short (${b.length - at} bytes left)`);
    const group = b.readUInt16LE(at);
    const element = b.readUInt16LE(at + 2);
    const length = b.readUInt32LE(at + 4);
    if (group !== 0) throw new DicomProtocolError(`command set: element (${hex(group, 4)},${hex(element, 4)}) outside group 0000`);
    if (at + 8 + length > b.length)
      throw new DicomProtocolError(`command set: element (0000,${hex(element, 4)}) declares ${length} bytes, ${b.length - at - 8} are left`);
    const value = b.subarray(at + 8, at + 8 + length);
    if (element === 0x0002) c.affectedSopClassUid = peerText(value, MAX_UID);
    else if (element === 0x0100) c.commandField = us(value, element);
    else if (element === 0x0110) c.messageId = us(value, element);
    else if (element === 0x0120) c.messageIdBeingRespondedTo = us(value, element);
    else if (element === 0x0800) c.dataSetType = us(value, element);
    else if (element === 0x0900) c.status = us(value, element);
    else if (element === 0x0902) c.errorComment = peerText(value, 64);
    at += 8 + length;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Builders

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function item(type: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError(`item 0x${hex(type, 2)} of ${value.length} bytes does not fit`);
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** An AE title as its 16-byte field, padded with spaces. */
function aeField(title: string): Buffer {
  return Buffer.from(title.padEnd(16, ' ').slice(0, 16), 'latin1');
}

function associateHeader(calledAe: string, callingAe: string): Buffer {
  const b = Buffer.alloc(ASSOCIATE_FIXED);
  b.writeUInt16BE(1, 0); // protocol version 1
  aeField(calledAe).copy(b, 4);
  aeField(callingAe).copy(b, 20);
  return b;
}

function userInformation(maxPdu: number, implementationClassUid: string, implementationVersionName: string): Buffer {
  return item(
    0x50,
    Buffer.concat([
      item(0x51, u32(maxPdu)),
      item(0x52, Buffer.from(implementationClassUid, 'latin1')),
      item(0x55, Buffer.from(implementationVersionName, 'latin1')),
    ]),
  );
}

export interface AssociateRequest {
  calledAe: string;
  callingAe: string;
  contexts: readonly { id: number; abstractSyntax: string; transferSyntaxes: readonly string[] }[];
  maxPdu?: number;
}

export function associateRq(r: AssociateRequest): Buffer {
  const contexts = r.contexts.map((c) =>
    item(
      0x20,
      Buffer.concat([
        Buffer.from([c.id, 0, 0, 0]),
        item(0x30, Buffer.from(c.abstractSyntax, 'latin1')),
        ...c.transferSyntaxes.map((ts) => item(0x40, Buffer.from(ts, 'latin1'))),
      ]),
    ),
  );
  return pdu(
    PDU_TYPE.associateRq,
    Buffer.concat([
      associateHeader(r.calledAe, r.callingAe),
      item(0x10, Buffer.from(APPLICATION_CONTEXT, 'latin1')),
      ...contexts,
      userInformation(r.maxPdu ?? OUR_MAX_PDU, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME),
    ]),
  );
}

export interface AssociateAccept {
  calledAe: string;
  callingAe: string;
  contexts: readonly { id: number; result: number; transferSyntax: string }[];
  maxPdu: number;
  implementationClassUid: string;
  implementationVersionName: string;
}

export function associateAc(a: AssociateAccept): Buffer {
  const contexts = a.contexts.map((c) => item(0x21, Buffer.concat([Buffer.from([c.id, 0, c.result, 0]), item(0x40, Buffer.from(c.transferSyntax, 'latin1'))])));
  return pdu(
    PDU_TYPE.associateAc,
    Buffer.concat([
      associateHeader(a.calledAe, a.callingAe),
      item(0x10, Buffer.from(APPLICATION_CONTEXT, 'latin1')),
      ...contexts,
      userInformation(a.maxPdu, a.implementationClassUid, a.implementationVersionName),
    ]),
  );
}

export function associateRj(r: Rejection): Buffer {
  return pdu(PDU_TYPE.associateRj, Buffer.from([0, r.result, r.source, r.reason]));
}

export function abortPdu(a: Abort): Buffer {
  return pdu(PDU_TYPE.abort, Buffer.from([0, 0, a.source, a.reason]));
}

export function releaseRq(): Buffer {
  return pdu(PDU_TYPE.releaseRq, Buffer.alloc(4));
}

export function releaseRp(): Buffer {
  return pdu(PDU_TYPE.releaseRp, Buffer.alloc(4));
}

/**
 * A command set as P-DATA-TF PDUs, each within the peer's Maximum Length (0: no limit): one PDV
 * per PDU, the command bit on each, the last-fragment bit on the last.
 */
export function commandPdus(contextId: number, command: Buffer, peerMaxPdu: number | undefined): Buffer[] {
  // A PDU's length counts the PDV's 4-byte length, its context id and its control header.
  const room = peerMaxPdu === undefined || peerMaxPdu === 0 ? command.length : Math.max(1, peerMaxPdu - 6);
  const out: Buffer[] = [];
  for (let at = 0; at < command.length || out.length === 0; at += room) {
    const fragment = command.subarray(at, at + room);
    const last = at + room >= command.length;
    out.push(pdu(PDU_TYPE.pData, Buffer.concat([u32(fragment.length + 2), Buffer.from([contextId, last ? 0x03 : 0x01]), fragment])));
  }
  return out;
}

function element(tag: number, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x0000, 0);
  head.writeUInt16LE(tag, 2);
  head.writeUInt32LE(value.length, 4);
  return Buffer.concat([head, value]);
}

function usValue(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

/** A UID as a UI value: padded to an even length with a NUL. */
function uiValue(uid: string): Buffer {
  return Buffer.from(uid.length % 2 === 0 ? uid : `${uid}\0`, 'latin1');
}

/** A command set with its group length first (elements in ascending tag order). */
function commandSet(elements: Buffer[]): Buffer {
  const rest = Buffer.concat(elements);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(rest.length, 0);
  return Buffer.concat([element(0x0000, length), rest]);
}

export function echoRq(messageId: number): Buffer {
  return commandSet([
    element(0x0002, uiValue(VERIFICATION_SOP_CLASS)),
    element(0x0100, usValue(COMMAND.echoRq)),
    element(0x0110, usValue(messageId)),
    element(0x0800, usValue(NO_DATA_SET)),
  ]);
}

export function echoRsp(messageIdBeingRespondedTo: number, status: number): Buffer {
  return commandSet([
    element(0x0002, uiValue(VERIFICATION_SOP_CLASS)),
    element(0x0100, usValue(COMMAND.echoRsp)),
    element(0x0120, usValue(messageIdBeingRespondedTo)),
    element(0x0800, usValue(NO_DATA_SET)),
    element(0x0900, usValue(status)),
  ]);
}
