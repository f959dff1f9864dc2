// Fuzzing every reader of a RADIUS peer's bytes: the packet decoder, the probe's whole reading of
// a reply (decode, Identifier, code, Response Authenticator, Message-Authenticator), the
// Reply-Message quoting, and the sandbox server's side (a request's Message-Authenticator, the
// hidden password). Random datagrams, mutated genuine replies and genuine replies re-signed after
// mutation (so the attribute walk behind a valid authenticator is reached too) must only ever
// give a packet or a reason; never a throw, never a hang, never a quoted secret.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runRedactor } from '../../probes/kit/redact.js';
import {
  ATTR,
  CODE,
  decodePacket,
  encodeReply,
  MAX_PACKET,
  requestMessageAuthenticatorValid,
  revealPassword,
  type Attribute,
} from '../../probes/radius/packet.js';
import { accessRequest, MAX_REPLY_MESSAGE, readReply, replyMessageText } from '../../probes/radius/probe.js';
import { prng, type Rng } from '../helpers/prng.js';

const SEED = Number(process.env.RADIUS_FUZZ_SEED ?? Date.now() % 2 ** 31);
const ITERATIONS = 12_000;
const SECRET = Buffer.from('fuzz-shared-secret');
const PASSWORD = 'fuzz-Passw0rd';
const redactor = runRedactor({ pw: PASSWORD, secret: SECRET.toString() });

function attributes(rng: Rng): Attribute[] {
  const out: Attribute[] = [];
  const n = rng.int(12);
  for (let i = 0; i < n; i++) {
    const type = rng.pick([ATTR.replyMessage, ATTR.filterId, ATTR.class, ATTR.tunnelPrivateGroupId, ATTR.state, ATTR.messageAuthenticator, rng.int(256)]);
    const value =
      type === ATTR.replyMessage && rng.chance(0.3)
        ? Buffer.from(`${PASSWORD} ${'é'.repeat(rng.int(80))}\x00\x1b\n`, 'utf8').subarray(0, 253)
        : rng.bytes(rng.int(60));
    out.push({ type, value });
  }
  return out;
}

function mutate(rng: Rng, b: Buffer): Buffer {
  const out = [...b];
  const edits = 1 + rng.int(6);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(out.length + 1);
    const op = rng.int(5);
    if (op === 0) out.splice(at, 0, rng.int(256));
    else if (op === 1) out.splice(at, 1);
    else if (op === 2) out[at] = rng.int(256);
    else if (op === 3) out.splice(at, rng.int(30));
    // An attribute length octet or the Length field: where parsers break.
    else if (out.length > 21) out[rng.chance(0.5) ? 2 + rng.int(2) : 21] = rng.pick([0, 1, 2, 255, rng.int(256)]);
  }
  return Buffer.from(out);
}

describe('radius fuzz', () => {
  it(`${ITERATIONS} random, mutated and re-signed datagrams through every reader (seed ${SEED})`, () => {
    console.log(`radius fuzz seed ${SEED} (replay with RADIUS_FUZZ_SEED=${SEED})`);
    const rng = prng(SEED);
    const started = performance.now();
    const seen = { replies: 0, dropped: 0, messages: 0, decoded: 0 };
    for (let i = 0; i < ITERATIONS; i++) {
      const request = accessRequest({ username: 'svc', password: Buffer.from(PASSWORD), secret: SECRET, method: rng.chance(0.5) ? 'pap' : 'chap' });
      const genuine = () => {
        const code = rng.pick([CODE.accessAccept, CODE.accessReject, CODE.accessChallenge, rng.int(256)]);
        try {
          return encodeReply(code, request.identifier, request.authenticator, attributes(rng), SECRET, rng.chance(0.5));
        } catch {
          return encodeReply(code, request.identifier, request.authenticator, [], SECRET, true); // too long for one packet
        }
      };
      let datagram: Buffer;
      switch (i % 4) {
        case 0:
          datagram = rng.bytes(rng.int(rng.chance(0.1) ? 6000 : 300));
          break;
        case 1:
          datagram = mutate(rng, genuine());
          break;
        case 2:
          datagram = genuine();
          break;
        default: {
          // Mutated, then given a correct Response Authenticator again: the walk past verification.
          datagram = mutate(rng, genuine());
          if (datagram.length >= 20) {
            datagram.writeUInt8(request.identifier, 1);
            const d = decodePacket(datagram);
            if (typeof d !== 'string') {
              const fixed = Buffer.from(d.raw);
              request.authenticator.copy(fixed, 4);
              createHash('md5').update(fixed).update(SECRET).digest().copy(fixed, 4);
              datagram = fixed;
            }
          }
        }
      }
      const decoded = decodePacket(datagram);
      if (typeof decoded !== 'string') {
        seen.decoded++;
        expect(decoded.raw.length).toBeLessThanOrEqual(MAX_PACKET);
        let end = 20;
        for (const a of decoded.attributes) end += a.value.length + 2;
        expect(end).toBe(decoded.raw.length);
      }
      const got = readReply(datagram, request, SECRET, rng.chance(0.3));
      if (typeof got === 'string') {
        seen.dropped++;
        expect(got.length).toBeLessThan(400);
      } else {
        seen.replies++;
        const text = replyMessageText(got, redactor);
        if (text !== undefined) {
          seen.messages++;
          expect([...text].length).toBeLessThanOrEqual(MAX_REPLY_MESSAGE);
          expect(text).not.toContain(PASSWORD);
          expect(text).not.toMatch(/[\p{Cc}]/u);
        }
      }
      // The server's side of the same bytes.
      expect(typeof (requestMessageAuthenticatorValid(datagram.length >= 20 ? datagram : Buffer.alloc(20), SECRET) ?? false)).toBe('boolean');
      revealPassword(datagram.subarray(0, 128), SECRET, request.authenticator);
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `radius fuzz: ${ITERATIONS} cases in ${seconds.toFixed(2)} s: ${seen.decoded} decoded, ${seen.replies} accepted, ${seen.dropped} dropped, ${seen.messages} Reply-Messages quoted`,
    );
    // Each path was really reached.
    expect(seen.replies).toBeGreaterThan(ITERATIONS / 12);
    expect(seen.dropped).toBeGreaterThan(ITERATIONS / 4);
    expect(seen.messages).toBeGreaterThan(100);
  });
});
