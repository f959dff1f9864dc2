// A small BER codec (ITU-T X.690), just enough for the sandbox directory's LDAPv3 messages
// (RFC 4511): single-byte tags (no high-tag-number form), definite lengths of at most four
// length octets (no indefinite form), integers that fit a JavaScript number. Anything else is
// rejected with a BerError, never guessed at.

export class BerError extends Error {
  override name = 'BerError';
}

/** One decoded element: its tag byte and its content octets. */
export interface BerElement {
  tag: number;
  value: Buffer;
}

/** Universal and LDAP-relevant tags. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  ENUMERATED: 0x0a,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/**
 * The first element in `buf` starting at `offset`, with the offset just after it; undefined
 * when `buf` does not yet hold all of it (a stream reader waits for more). Throws BerError on
 * what can never become valid, and when the element's content is longer than `maxLength`.
 */
export function readElement(buf: Buffer, offset = 0, maxLength = Number.MAX_SAFE_INTEGER): { element: BerElement; end: number } | undefined {
  if (buf.length - offset < 2) return undefined;
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new BerError('high-tag-number form is not supported');
  const first = buf[offset + 1] as number;
  let length: number;
  let at = offset + 2;
  if (first < 0x80) length = first;
  else {
    const n = first & 0x7f;
    if (n === 0) throw new BerError('indefinite length is not supported');
    if (n > 4) throw new BerError(`length of ${n} octets is too long`);
    if (buf.length - at < n) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (buf[at + i] as number);
    at += n;
  }
  if (length > maxLength) throw new BerError(`element of ${length} bytes is larger than the limit of ${maxLength}`);
  if (buf.length - at < length) return undefined;
  return { element: { tag, value: buf.subarray(at, at + length) }, end: at + length };
}

/** Every element of a constructed element's content; throws when it does not split exactly. */
export function children(value: Buffer): BerElement[] {
  const out: BerElement[] = [];
  let at = 0;
  while (at < value.length) {
    const r = readElement(value, at, value.length);
    if (!r) throw new BerError('truncated element');
    out.push(r.element);
    at = r.end;
  }
  return out;
}

/** A two's-complement integer (INTEGER, ENUMERATED) of at most six octets. */
export function decodeInteger(value: Buffer): number {
  if (value.length === 0 || value.length > 6) throw new BerError(`integer of ${value.length} octets`);
  return value.readIntBE(0, value.length);
}

export function decodeBoolean(value: Buffer): boolean {
  if (value.length !== 1) throw new BerError('boolean of other than one octet');
  return value[0] !== 0;
}

/** Length octets: short form below 128, long form above. */
function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** An element from its tag and content (one buffer, or the encoded children of a constructed one). */
export function encode(tag: number, content: Buffer | readonly Buffer[] = Buffer.alloc(0)): Buffer {
  const body = Buffer.isBuffer(content) ? content : Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

/** A two's-complement integer in the fewest octets (INTEGER by default; ENUMERATED with its tag). */
export function encodeInteger(n: number, tag: number = TAG.INTEGER): Buffer {
  if (!Number.isSafeInteger(n)) throw new BerError(`not an integer: ${n}`);
  let size = 1;
  while (size < 6 && (n < -(2 ** (8 * size - 1)) || n >= 2 ** (8 * size - 1))) size++;
  const b = Buffer.alloc(size);
  b.writeIntBE(n, 0, size);
  return encode(tag, b);
}

export function encodeString(s: string | Buffer, tag: number = TAG.OCTET_STRING): Buffer {
  return encode(tag, typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
}

export function encodeBoolean(b: boolean): Buffer {
  return encode(TAG.BOOLEAN, Buffer.from([b ? 0xff : 0]));
}
