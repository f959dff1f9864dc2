// Fuzzing the MLLP reader and the ACK parser: random and mutated frames, fed in random chunks,
// must only ever yield a frame, nothing yet, or an MllpError; never another throw, never a hang.
import { describe, expect, it } from 'vitest';
import { MllpError, MllpReader, parseAck } from '../../probes/mllp/probe.js';
import { prng } from '../helpers/prng.js';

const SEED = Number(process.env.MLLP_FUZZ_SEED ?? Date.now() % 2 ** 31);
const ITERATIONS = 12_000;

const GOOD = Buffer.from(
  'MSH|^~\\&|HIS|HOSP|VAKT|ITOPS|20261122190001||ACK^A08^ACK|20261122190001|T|2.5\rMSA|AR|VK0000000001|filtered\rERR|^^^202&Unsupported&HL70357||202^Unsupported processing id^HL70357|E\r',
  'latin1',
);
const ALPHABET = Buffer.from('MSHAERCERRMSA|^~\\&\r\n0123456789 \x0b\x1c\x0d', 'latin1');

function mutate(rand: () => number, base: Buffer): Buffer {
  const out = [...base];
  const edits = 1 + Math.floor(rand() * 8);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (out.length + 1));
    const op = Math.floor(rand() * 4);
    const byte = rand() < 0.5 ? (ALPHABET[Math.floor(rand() * ALPHABET.length)] as number) : Math.floor(rand() * 256);
    if (op === 0) out.splice(at, 0, byte);
    else if (op === 1) out.splice(at, 1);
    else if (op === 2) out[at] = byte;
    else out.splice(at, Math.floor(rand() * 20));
  }
  return Buffer.from(out);
}

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rand() < 0.3 ? (ALPHABET[Math.floor(rand() * ALPHABET.length)] as number) : Math.floor(rand() * 256);
  return b;
}

function input(rand: () => number, i: number): Buffer {
  const framed = Buffer.concat([Buffer.of(0x0b), GOOD, Buffer.of(0x1c, 0x0d)]);
  switch (i % 4) {
    case 0:
      return randomBytes(rand, Math.floor(rand() * 400));
    case 1:
      return mutate(rand, framed);
    case 2:
      return Buffer.concat([randomBytes(rand, Math.floor(rand() * 10)), mutate(rand, framed), mutate(rand, framed)]);
    default:
      return mutate(rand, GOOD);
  }
}

function expectOnlyMllpError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof MllpError)) throw err;
  }
}

describe('mllp fuzz', () => {
  it(`${ITERATIONS} random and mutated frames through the reader and the parser (seed ${SEED})`, () => {
    console.log(`mllp fuzz seed ${SEED} (replay with MLLP_FUZZ_SEED=${SEED})`);
    const rand = prng(SEED).next;
    const started = performance.now();
    let frames = 0;
    let acks = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const bytes = input(rand, i);
      const maxFrame = rand() < 0.2 ? 1 + Math.floor(rand() * 200) : 1 << 20;
      const reader = new MllpReader(maxFrame);
      let frame: Buffer | undefined;
      expectOnlyMllpError(() => {
        // Random segmentation, down to single bytes.
        for (let at = 0; at < bytes.length && !frame;) {
          const n = 1 + Math.floor(rand() * (rand() < 0.3 ? 3 : 64));
          frame = reader.push(bytes.subarray(at, at + n));
          at += n;
          expect(reader.buffered).toBeLessThanOrEqual(maxFrame);
        }
      });
      if (frame) {
        frames++;
        expect(frame.length).toBeLessThanOrEqual(maxFrame);
        // The whole input at once gives the same frame as any segmentation.
        let whole: Buffer | undefined;
        expectOnlyMllpError(() => (whole = new MllpReader(maxFrame).push(bytes)));
        expect(whole?.equals(frame)).toBe(true);
      }
      expectOnlyMllpError(() => {
        const a = parseAck(frame ?? bytes);
        acks++;
        expect(['AA', 'AE', 'AR', 'CA', 'CE', 'CR', 'other']).toContain(a.ackCode);
        expect(a.controlId.length).toBeLessThanOrEqual(64);
        expect(a.errorCodes.length).toBeLessThanOrEqual(10);
      });
    }
    expect(frames).toBeGreaterThan(1000);
    expect(acks).toBeGreaterThan(100);
    // Never a hang: the whole run is linear in the input.
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  it('the unmutated ACK parses, including ERR-1 (v2.4) and ERR-3 (v2.5) codes', () => {
    expect(parseAck(GOOD)).toMatchObject({ code: 'AR', ackCode: 'AR', controlId: 'VK0000000001', text: 'filtered', errorCodes: ['202'] });
    expect(new MllpReader(1024).push(Buffer.concat([Buffer.from('junk'), Buffer.of(0x0b), GOOD, Buffer.of(0x1c, 0x0d, 0x0b)]))?.equals(GOOD)).toBe(true);
  });
});
