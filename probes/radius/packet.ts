// RADIUS packets on the wire (RFC 2865): encoding an Access-Request with its hidden User-Password
// (5.2) or CHAP-Password (5.3) and a Message-Authenticator (RFC 3579 3.2, HMAC-MD5), and reading
// a reply: bounded to 4096 bytes, every attribute length checked, then the Response
// Authenticator and the reply's own Message-Authenticator verified. The sandbox's server uses the
// same functions for its side. MD5 comes from node:crypto (OpenSSL); a FIPS-only OpenSSL refuses
// it, and with it RADIUS itself (radiusMd5Available()).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const CODE = { accessRequest: 1, accessAccept: 2, accessReject: 3, accessChallenge: 11 } as const;

export const CODE_NAMES: Readonly<Record<number, string>> = {
  1: 'Access-Request',
  2: 'Access-Accept',
  3: 'Access-Reject',
  4: 'Accounting-Request',
  5: 'Accounting-Response',
  11: 'Access-Challenge',
  12: 'Status-Server',
  13: 'Status-Client',
};

export const ATTR = {
  userName: 1,
  userPassword: 2,
  chapPassword: 3,
  nasIpAddress: 4,
  filterId: 11,
  replyMessage: 18,
  state: 24,
  class: 25,
  nasIdentifier: 32,
  chapChallenge: 60,
  messageAuthenticator: 80,
  tunnelPrivateGroupId: 81,
} as const;

/** RFC 2865 3: the largest packet, and the header (code, identifier, length, authenticator). */
export const MAX_PACKET = 4096;
export const HEADER = 20;
/** An attribute's value: its length octet counts the 2 octets of type and length. */
export const MAX_VALUE = 253;
/** RFC 2865 5.2: a User-Password carries at most 128 octets. */
export const MAX_PAP_PASSWORD = 128;

export interface Attribute {
  type: number;
  value: Buffer;
}

export interface RadiusPacket {
  code: number;
  identifier: number;
  authenticator: Buffer;
  attributes: Attribute[];
  /** The packet as its Length field bounds it (octets after it are padding, RFC 2865 3). */
  raw: Buffer;
}

/** Whether this Node's OpenSSL computes MD5 (a FIPS-only provider does not; RADIUS cannot work without it). */
export function radiusMd5Available(): boolean {
  try {
    createHash('md5').update('radius').digest();
    createHmac('md5', 'radius').update('radius').digest();
    return true;
  } catch {
    return false;
  }
}

function md5(...parts: Buffer[]): Buffer {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Encodes attributes in order; a value longer than 253 octets is a bug of the caller. */
export function encodeAttributes(attributes: readonly Attribute[]): Buffer {
  return Buffer.concat(
    attributes.map((a) => {
      if (a.value.length > MAX_VALUE) throw new RangeError(`attribute ${a.type}: ${a.value.length} octets, at most ${MAX_VALUE}`);
      return Buffer.concat([Buffer.of(a.type, a.value.length + 2), a.value]);
    }),
  );
}

/** A packet from its parts; `authenticator` is written as given (16 octets). */
export function encodePacket(code: number, identifier: number, authenticator: Buffer, attributes: readonly Attribute[]): Buffer {
  const body = encodeAttributes(attributes);
  const length = HEADER + body.length;
  if (length > MAX_PACKET) throw new RangeError(`a packet of ${length} octets, at most ${MAX_PACKET}`);
  const head = Buffer.alloc(HEADER);
  head.writeUInt8(code, 0);
  head.writeUInt8(identifier, 1);
  head.writeUInt16BE(length, 2);
  authenticator.copy(head, 4, 0, 16);
  return Buffer.concat([head, body]);
}

/** RFC 2865 5.2: the password padded to 16-octet blocks, each XORed with MD5(secret + previous block), the first with the Request Authenticator. */
export function hidePassword(password: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer {
  const padded = Buffer.alloc(Math.max(16, Math.ceil(password.length / 16) * 16));
  password.copy(padded);
  const out = Buffer.alloc(padded.length);
  let previous = requestAuthenticator;
  for (let i = 0; i < padded.length; i += 16) {
    const b = md5(secret, previous);
    for (let j = 0; j < 16; j++) out[i + j] = (padded[i + j] as number) ^ (b[j] as number);
    previous = out.subarray(i, i + 16);
  }
  return out;
}

/** The server's side of hidePassword: the password with its padding removed. */
export function revealPassword(hidden: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer {
  const out = Buffer.alloc(hidden.length - (hidden.length % 16));
  let previous = requestAuthenticator;
  for (let i = 0; i + 16 <= hidden.length; i += 16) {
    const b = md5(secret, previous);
    for (let j = 0; j < 16; j++) out[i + j] = (hidden[i + j] as number) ^ (b[j] as number);
    previous = hidden.subarray(i, i + 16);
  }
  let end = out.length;
  while (end > 0 && out[end - 1] === 0) end--;
  return out.subarray(0, end);
}

/** RFC 1994 / RFC 2865 5.3: the CHAP response, MD5(CHAP id + password + challenge). */
export function chapResponse(chapId: number, password: Buffer, challenge: Buffer): Buffer {
  return md5(Buffer.of(chapId), password, challenge);
}

/**
 * Where a packet's one Message-Authenticator value starts, undefined when it has none, or a string
 * when it is malformed (not 16 octets, or more than one).
 */
function messageAuthenticatorAt(packet: Buffer): number | undefined | string {
  let at: number | undefined;
  for (let p = HEADER; p + 2 <= packet.length;) {
    const type = packet[p] as number;
    const len = packet[p + 1] as number;
    if (len < 2 || p + len > packet.length) return 'a malformed attribute';
    if (type === ATTR.messageAuthenticator) {
      if (len !== 18) return `a Message-Authenticator of ${len - 2} octets, expected 16`;
      if (at !== undefined) return 'two Message-Authenticators';
      at = p + 2;
    }
    p += len;
  }
  return at;
}

/**
 * RFC 3579 3.2: HMAC-MD5 over the packet with the Message-Authenticator zeroed and, in a reply,
 * the Request Authenticator of the request in the authenticator field.
 */
function hmacOver(packet: Buffer, at: number, secret: Buffer, authenticator?: Buffer): Buffer {
  const copy = Buffer.from(packet);
  copy.fill(0, at, at + 16);
  if (authenticator) authenticator.copy(copy, 4, 0, 16);
  return createHmac('md5', secret).update(copy).digest();
}

/** Fills in a packet's Message-Authenticator (its attribute present, zeroed); for a reply, pass the request's authenticator. */
export function signMessageAuthenticator(packet: Buffer, secret: Buffer, requestAuthenticator?: Buffer): void {
  const at = messageAuthenticatorAt(packet);
  if (typeof at !== 'number') throw new Error('signMessageAuthenticator: the packet has no well-formed Message-Authenticator');
  hmacOver(packet, at, secret, requestAuthenticator).copy(packet, at);
}

/** Whether a request's Message-Authenticator verifies (the server's side); undefined when it has none. */
export function requestMessageAuthenticatorValid(packet: Buffer, secret: Buffer): boolean | undefined {
  const at = messageAuthenticatorAt(packet);
  if (at === undefined) return undefined;
  if (typeof at === 'string') return false;
  return timingSafeEqual(hmacOver(packet, at, secret), packet.subarray(at, at + 16));
}

/** RFC 2865 3: MD5(Code + Identifier + Length + Request Authenticator + Attributes + Secret), over the reply as sent. */
export function responseAuthenticator(reply: Buffer, requestAuthenticator: Buffer, secret: Buffer): Buffer {
  const copy = Buffer.from(reply);
  requestAuthenticator.copy(copy, 4, 0, 16);
  return md5(copy, secret);
}

/** A reply (the server's side): Message-Authenticator first when asked for, then the Response Authenticator. */
export function encodeReply(
  code: number,
  identifier: number,
  requestAuthenticator: Buffer,
  attributes: readonly Attribute[],
  secret: Buffer,
  withMessageAuthenticator: boolean,
): Buffer {
  const attrs = withMessageAuthenticator ? [{ type: ATTR.messageAuthenticator, value: Buffer.alloc(16) }, ...attributes] : attributes;
  const packet = encodePacket(code, identifier, requestAuthenticator, attrs);
  if (withMessageAuthenticator) signMessageAuthenticator(packet, secret, requestAuthenticator);
  responseAuthenticator(packet, requestAuthenticator, secret).copy(packet, 4);
  return packet;
}

/**
 * Reads a datagram as a RADIUS packet: a string says why it is not one. Bounded: at most 4096
 * octets are looked at (the Length field may not say more), and each attribute's length must
 * be at least 2 and end within the packet.
 */
export function decodePacket(datagram: Buffer): RadiusPacket | string {
  if (datagram.length < HEADER) return `${datagram.length} bytes, shorter than a RADIUS header (${HEADER})`;
  const length = datagram.readUInt16BE(2);
  if (length < HEADER || length > MAX_PACKET) return `a Length field of ${length}, expected ${HEADER} to ${MAX_PACKET}`;
  if (length > datagram.length) return `a Length field of ${length} in a datagram of ${datagram.length} bytes`;
  const raw = datagram.subarray(0, length);
  const attributes: Attribute[] = [];
  for (let p = HEADER; p < length;) {
    if (p + 2 > length) return `an attribute header cut off at byte ${p}`;
    const type = raw[p] as number;
    const len = raw[p + 1] as number;
    if (len < 2) return `attribute ${type} at byte ${p} with length ${len}, expected at least 2`;
    if (p + len > length) return `attribute ${type} at byte ${p} with length ${len} runs past the packet's end (${length})`;
    attributes.push({ type, value: raw.subarray(p + 2, p + len) });
    p += len;
  }
  return { code: raw[0] as number, identifier: raw[1] as number, authenticator: raw.subarray(4, 20), attributes, raw };
}

/**
 * Verifies a decoded reply against its request: the Response Authenticator, and the
 * Message-Authenticator when present (or when required). A string says what does not verify.
 */
export function verifyReply(reply: RadiusPacket, requestAuthenticator: Buffer, secret: Buffer, requireMessageAuthenticator: boolean): string | undefined {
  if (!timingSafeEqual(responseAuthenticator(reply.raw, requestAuthenticator, secret), reply.authenticator)) {
    return 'its Response Authenticator does not verify (the shared secret differs from the one the server has for this client, or the reply was altered)';
  }
  const at = messageAuthenticatorAt(reply.raw);
  if (typeof at === 'string') return `it carries ${at}`;
  if (at === undefined) return requireMessageAuthenticator ? 'it carries no Message-Authenticator (requireMessageAuthenticator is set)' : undefined;
  const expected = hmacOver(reply.raw, at, secret, requestAuthenticator);
  if (!timingSafeEqual(expected, reply.raw.subarray(at, at + 16))) return 'its Message-Authenticator does not verify';
  return undefined;
}

/** The values of one attribute type, in order. */
export function valuesOf(packet: Pick<RadiusPacket, 'attributes'>, type: number): Buffer[] {
  return packet.attributes.filter((a) => a.type === type).map((a) => a.value);
}

/** RFC 2868 3.6: a Tunnel-Private-Group-ID may start with a tag octet (0x00 to 0x1F); the value is what follows it. */
export function untagged(value: Buffer): Buffer {
  return value.length > 0 && (value[0] as number) <= 0x1f ? value.subarray(1) : value;
}
