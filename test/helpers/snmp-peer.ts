// A hand-made SNMPv2c peer for the snmp kind's tests: it reads a GET request (community, request
// id, OIDs) with the sandbox's small BER codec and writes whatever response a test wants, well
// formed or not, so the probe meets answers no real agent would give. Written apart from
// net-snmp, so the probe is not only tested against its own library.
import { createSocket, type Socket } from 'node:dgram';
import { children, encode, encodeInteger, encodeString, readElement } from '../../sandbox/ber.js';

export interface GetRequest {
  version: number;
  community: string;
  requestId: number;
  oids: string[];
}

const OID_TAG = 0x06;

export function encodeOid(oid: string): Buffer {
  const arcs = oid.split('.').map(Number);
  const out: number[] = [40 * (arcs[0] ?? 0) + (arcs[1] ?? 0)];
  for (const arc of arcs.slice(2)) {
    const bytes: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return encode(OID_TAG, Buffer.from(out));
}

function decodeOid(b: Buffer): string {
  const first = b[0] ?? 0;
  const arcs = [Math.floor(first / 40), first % 40];
  let v = 0;
  for (const byte of b.subarray(1)) {
    v = v * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/** A v1/v2c GET request; undefined for anything else (a v3 message, garbage). */
export function parseGet(msg: Buffer): GetRequest | undefined {
  try {
    const top = readElement(msg);
    if (!top) return undefined;
    const [version, community, pdu] = children(top.element.value);
    if (!version || !community || !pdu || pdu.tag !== 0xa0) return undefined;
    const [id, , , list] = children(pdu.value);
    if (!id || !list) return undefined;
    return {
      version: version.value.readIntBE(0, version.value.length),
      community: community.value.toString('latin1'),
      requestId: id.value.readIntBE(0, id.value.length),
      oids: children(list.value).map((vb) => decodeOid((children(vb.value)[0] as { value: Buffer }).value)),
    };
  } catch {
    return undefined;
  }
}

/** Encoded values by SNMP type, for a varbind. */
export const value = {
  integer: (n: number) => encodeInteger(n),
  string: (s: string | Buffer) => encodeString(s),
  counter64: (bytes: Buffer) => encode(0x46, bytes),
  gauge: (n: number) => encode(0x42, Buffer.from(n.toString(16).padStart(8, '0'), 'hex')),
  noSuchObject: () => encode(0x80),
  noSuchInstance: () => encode(0x81),
  endOfMibView: () => encode(0x82),
  null: () => encode(0x05),
};

export interface ResponseParts {
  community?: string;
  requestId?: number;
  errorStatus?: number;
  errorIndex?: number;
  /** Each varbind as [oid, encoded value]. */
  varbinds: [string, Buffer][];
  version?: number;
  /** The PDU's tag (GetResponse 0xa2 by default). */
  pduTag?: number;
}

/** A v2c GetResponse-PDU. */
export function response(p: ResponseParts): Buffer {
  const varbinds = p.varbinds.map(([oid, v]) => encode(0x30, [encodeOid(oid), v]));
  const pdu = encode(p.pduTag ?? 0xa2, [
    encodeInteger(p.requestId ?? 0),
    encodeInteger(p.errorStatus ?? 0),
    encodeInteger(p.errorIndex ?? 0),
    encode(0x30, varbinds),
  ]);
  return encode(0x30, [encodeInteger(p.version ?? 1), encodeString(p.community ?? 'public'), pdu]);
}

/** The well-formed answer to `req` with `values` by OID (missing ones: noSuchObject). */
export function answer(req: GetRequest, values: Record<string, Buffer>, patch: Partial<ResponseParts> = {}): Buffer {
  return response({
    community: req.community,
    requestId: req.requestId,
    varbinds: req.oids.map((oid) => [oid, values[oid] ?? value.noSuchObject()]),
    ...patch,
  });
}

/** A UDP peer on 127.0.0.1 that answers each datagram with `reply(datagram, request)` (undefined: no answer). */
export async function snmpPeer(
  reply: (msg: Buffer, req: GetRequest | undefined) => Buffer | Buffer[] | undefined,
): Promise<{ port: number; socket: Socket; received: () => number }> {
  const socket = createSocket('udp4');
  let received = 0;
  socket.on('message', (msg, from) => {
    received++;
    const r = reply(msg, parseGet(msg));
    for (const b of r === undefined ? [] : Array.isArray(r) ? r : [r]) socket.send(b, from.port, from.address);
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, socket, received: () => received };
}
