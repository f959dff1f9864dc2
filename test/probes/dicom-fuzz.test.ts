// Fuzzing every parser of peer bytes in the dicom kind: the PDU reader (random segmentation,
// random declared lengths), the A-ASSOCIATE-AC/-RQ, -RJ, A-ABORT and P-DATA-TF parsers, the
// command reassembly and the command-set parser, with random and mutated PDUs. They may only ever
// yield a value or throw DicomProtocolError, keep every bound, and read a stream the same however
// it is cut. Then the probe itself, end to end, against a peer that answers with mutated PDUs:
// every run ends with a declared reason, never a throw, never past its deadline.
import { describe, expect, it } from 'vitest';
import dicomKind from '../../probes/dicom/index.js';
import { dicomProbe } from '../../probes/dicom/probe.js';
import {
  abortPdu,
  associateAc,
  associateRj,
  associateRq,
  CommandAssembler,
  commandPdus,
  DicomProtocolError,
  echoRsp,
  MAX_COMMAND_BYTES,
  parseAbort,
  parseAssociateAc,
  parseAssociateRq,
  parseCommand,
  parsePData,
  parseRejection,
  PDU_TYPE,
  PduReader,
  releaseRp,
  TRANSFER_SYNTAX_UIDS,
  VERIFICATION_SOP_CLASS,
  type Pdu,
} from '../../probes/dicom/pdu.js';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { budget, BUSY_SLACK_MS, quietLog, tcpPeer, targetsOf } from '../helpers/peers.js';
import { prng, type Rng } from '../helpers/prng.js';

const SEED = Number(process.env.DICOM_FUZZ_SEED ?? Date.now() % 2 ** 31);
const ITERATIONS = 12_000;
const END_TO_END = 400;
const CHUNK_MAX = 64;

const IMPLICIT = TRANSFER_SYNTAX_UIDS.ImplicitVRLittleEndian;
const EXPLICIT = TRANSFER_SYNTAX_UIDS.ExplicitVRLittleEndian;

const AC = associateAc({
  calledAe: 'SANDBOX_PACS',
  callingAe: 'VAKT',
  contexts: [
    { id: 1, result: 0, transferSyntax: IMPLICIT },
    { id: 3, result: 3, transferSyntax: EXPLICIT },
  ],
  maxPdu: 16384,
  implementationClassUid: '1.2.276.0.7230010.3.0.3.6.7',
  implementationVersionName: 'OFFIS_DCMTK_367',
});
const RQ = associateRq({
  calledAe: 'SANDBOX_PACS',
  callingAe: 'VAKT',
  contexts: [
    { id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT, EXPLICIT] },
    { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: [EXPLICIT] },
  ],
});
const TEMPLATES: readonly Buffer[] = [
  AC,
  RQ,
  associateRj({ result: 1, source: 1, reason: 7 }),
  abortPdu({ source: 2, reason: 1 }),
  releaseRp(),
  ...commandPdus(1, echoRsp(4711, 0), 0),
  Buffer.concat(commandPdus(1, echoRsp(4711, 0x0110), 24)),
];

function mutate(r: Rng, base: Buffer): Buffer {
  const out = [...base];
  const edits = 1 + r.int(6);
  for (let e = 0; e < edits; e++) {
    const at = r.int(out.length + 1);
    switch (r.int(6)) {
      case 0:
        out.splice(at, 0, r.int(256));
        break;
      case 1:
        out.splice(at, 1);
        break;
      case 2:
        out[at] = r.int(256);
        break;
      case 3:
        out.splice(at, r.int(24));
        break;
      case 4: {
        // A length field (2 or 4 bytes) made small, large or off by a little.
        const v = r.pick([0, 1, 2, 3, 4, 0xff, 0xffff, r.int(0x10000)]);
        out[at] = (v >> 8) & 0xff;
        if (at + 1 < out.length) out[at + 1] = v & 0xff;
        break;
      }
      default:
        out.length = Math.min(out.length, at);
    }
  }
  return Buffer.from(out);
}

function input(r: Rng, i: number): Buffer {
  switch (i % 5) {
    case 0:
      return r.bytes(r.int(300));
    case 1:
      return mutate(r, r.pick(TEMPLATES));
    case 2:
      return Buffer.concat([mutate(r, r.pick(TEMPLATES)), r.pick(TEMPLATES), mutate(r, r.pick(TEMPLATES))]);
    case 3: {
      // A valid header with a random type and declared length, then random bytes.
      const head = Buffer.from([1 + r.int(8), 0, 0, 0, 0, 0]);
      head.writeUInt32BE(r.chance(0.5) ? r.int(400) : r.int(2 ** 32), 2);
      return Buffer.concat([head, r.bytes(r.int(400))]);
    }
    default:
      return Buffer.concat([r.pick(TEMPLATES), r.pick(TEMPLATES)]);
  }
}

function onlyProtocolErrors<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof DicomProtocolError)) throw err;
    expect(err.message.length).toBeLessThan(300);
    return undefined;
  }
}

/** Text read from a peer: bounded and printable. */
function expectPeerText(s: string | undefined, max: number): void {
  if (s === undefined) return;
  expect(s.length).toBeLessThanOrEqual(max);
  expect(s).toMatch(/^[\x20-\x7e]*$/);
}

/** Every PDU of `bytes` (and the error that stopped the reader, if any), fed in random pieces. */
function readAll(r: Rng, bytes: Buffer, maxPdu: number, segmented: boolean): { pdus: Pdu[]; error?: string } {
  const reader = new PduReader(maxPdu);
  const pdus: Pdu[] = [];
  try {
    for (let at = 0; at < bytes.length;) {
      const n = segmented ? 1 + r.int(r.chance(0.3) ? 3 : CHUNK_MAX) : bytes.length;
      reader.push(bytes.subarray(at, at + n));
      at += n;
      for (let p = reader.next(); p; p = reader.next()) {
        expect(p.body.length).toBeLessThanOrEqual(maxPdu);
        pdus.push(p);
      }
      // At most one PDU and the piece that completed it, whatever the peer declares.
      if (segmented) expect(reader.buffered).toBeLessThanOrEqual(maxPdu + 6 + CHUNK_MAX);
    }
  } catch (err) {
    if (!(err instanceof DicomProtocolError)) throw err;
    return { pdus, error: err.message };
  }
  return { pdus };
}

/** Every parser on a PDU body, whatever its type. */
function parseEvery(body: Buffer): number {
  let parsed = 0;
  const ac = onlyProtocolErrors(() => parseAssociateAc(body));
  if (ac) {
    parsed++;
    expect(ac.contexts.size).toBeLessThanOrEqual(256);
    for (const c of ac.contexts.values()) expectPeerText(c.transferSyntax, 64);
    expectPeerText(ac.implementationClassUid, 64);
    expectPeerText(ac.implementationVersionName, 16);
  }
  const rq = onlyProtocolErrors(() => parseAssociateRq(body));
  if (rq) {
    parsed++;
    expect(rq.contexts.size).toBeLessThanOrEqual(256);
    expectPeerText(rq.calledAe, 16);
    expectPeerText(rq.callingAe, 16);
    for (const c of rq.contexts.values()) {
      expect(c.transferSyntaxes.length).toBeLessThanOrEqual(64);
      expectPeerText(c.abstractSyntax, 64);
    }
  }
  if (onlyProtocolErrors(() => parseRejection(body))) parsed++;
  if (onlyProtocolErrors(() => parseAbort(body))) parsed++;
  const pdvs = onlyProtocolErrors(() => parsePData(body));
  if (pdvs) {
    parsed++;
    const assembler = new CommandAssembler();
    for (const pdv of pdvs) {
      const whole = onlyProtocolErrors(() => assembler.push(pdv));
      if (whole) {
        expect(whole.length).toBeLessThanOrEqual(MAX_COMMAND_BYTES);
        const c = onlyProtocolErrors(() => parseCommand(whole));
        if (c) {
          parsed++;
          expectPeerText(c.errorComment, 64);
          for (const n of [c.commandField, c.messageIdBeingRespondedTo, c.status]) if (n !== undefined) expect(n).toBeLessThanOrEqual(0xffff);
        }
        break;
      }
    }
  }
  // The command parser straight on peer bytes, too.
  if (onlyProtocolErrors(() => parseCommand(body))) parsed++;
  return parsed;
}

describe('dicom fuzz', () => {
  it(`${ITERATIONS} random and mutated PDU streams through the reader and every parser (seed ${SEED})`, () => {
    console.log(`dicom fuzz seed ${SEED} (replay with DICOM_FUZZ_SEED=${SEED})`);
    const r = prng(SEED);
    const started = performance.now();
    let pdus = 0;
    let parsed = 0;
    let refused = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const bytes = input(r, i);
      const maxPdu = r.chance(0.2) ? 1 + r.int(300) : 1024 * 1024;
      const pieces = readAll(r, bytes, maxPdu, true);
      // Cut anyhow, the stream reads the same: the same PDUs, the same error.
      const whole = readAll(r, bytes, maxPdu, false);
      expect(pieces.pdus.map((p) => `${p.type}:${p.body.toString('hex')}`)).toEqual(whole.pdus.map((p) => `${p.type}:${p.body.toString('hex')}`));
      expect(pieces.error).toBe(whole.error);
      if (pieces.error) refused++;
      pdus += pieces.pdus.length;
      for (const p of pieces.pdus) parsed += parseEvery(p.body);
      // Random bodies straight into the parsers, beside the ones the reader produced.
      parsed += parseEvery(i % 2 === 0 ? bytes : bytes.subarray(6));
    }
    console.log(`dicom fuzz: ${ITERATIONS} streams, ${pdus} PDUs, ${parsed} parses that succeeded, ${refused} streams refused`);
    expect(pdus).toBeGreaterThan(3000);
    expect(refused).toBeGreaterThan(1000);
    expect(parsed).toBeGreaterThan(3000);
    // Never a hang: the work is linear in the input.
    expect(performance.now() - started).toBeLessThan(60_000);
  });

  it('the unmutated PDUs parse as built', () => {
    const reader = new PduReader();
    reader.push(Buffer.concat([AC, RQ]));
    const ac = parseAssociateAc(reader.next()!.body);
    expect([...ac.contexts]).toEqual([
      [1, { result: 0, transferSyntax: IMPLICIT }],
      [3, { result: 3, transferSyntax: EXPLICIT }],
    ]);
    expect(ac).toMatchObject({ maxPdu: 16384, implementationVersionName: 'OFFIS_DCMTK_367' });
    expect(parseAssociateRq(reader.next()!.body)).toMatchObject({ calledAe: 'SANDBOX_PACS', callingAe: 'VAKT' });
    expect(reader.next()).toBeUndefined();
    const fragments = commandPdus(1, echoRsp(4711, 0x0110), 24);
    expect(fragments.length).toBeGreaterThan(3);
    const assembler = new CommandAssembler();
    let whole: Buffer | undefined;
    for (const f of fragments) whole = assembler.push(parsePData(f.subarray(6))[0]!) ?? whole;
    expect(parseCommand(whole!)).toMatchObject({ commandField: 0x8030, messageIdBeingRespondedTo: 4711, status: 0x0110, dataSetType: 0x0101 });
  });

  it(`${END_TO_END} probe runs against a peer answering with mutated PDUs: a declared reason every time, within the deadline (seed ${SEED})`, async () => {
    const r = prng(SEED ^ 0x5eed);
    const reasons = new Set<string>([...dicomKind.reasons]);
    // Each connection's answers, chosen by the test before the run: valid or mutated, per step.
    let plan: { ac: Buffer; rsp: (id: number) => Buffer; rp: Buffer; mutated: [boolean, boolean, boolean] } | undefined;
    const peer = await tcpPeer((s) => {
      const p = plan!;
      const reader = new PduReader();
      const send = (bytes: Buffer, mutated: boolean) => (mutated ? s.end(bytes) : s.write(bytes));
      s.on('data', (chunk: Buffer) => {
        try {
          reader.push(chunk);
          for (let pdu = reader.next(); pdu; pdu = reader.next()) {
            if (pdu.type === PDU_TYPE.associateRq) send(p.ac, p.mutated[0]);
            else if (pdu.type === PDU_TYPE.pData) {
              const id = parseCommand(parsePData(pdu.body)[0]!.data).messageId ?? 0;
              send(p.rsp(id), p.mutated[1]);
            } else if (pdu.type === PDU_TYPE.releaseRq) s.end(p.rp);
            else s.destroy();
          }
        } catch {
          s.destroy();
        }
      });
    });
    const outcomes = new Map<string, number>();
    try {
      for (let i = 0; i < END_TO_END; i++) {
        const mutated: [boolean, boolean, boolean] = [r.chance(0.4), r.chance(0.4), r.chance(0.4)];
        const acBytes = mutated[0] ? mutate(r, AC) : AC;
        const rspSeed = r.int(2 ** 31);
        plan = {
          ac: acBytes,
          rsp: (id) => {
            const good = Buffer.concat(commandPdus(1, echoRsp(id, r.chance(0.1) ? 0xa700 : 0), r.chance(0.3) ? 30 : 0));
            return mutated[1] ? mutate(prng(rspSeed), good) : good;
          },
          rp: mutated[2] ? mutate(r, releaseRp()) : releaseRp(),
          mutated,
        };
        const t0 = performance.now();
        const result = await dicomProbe.run({
          ...targetsOf('dicom', `127.0.0.1:${peer.port}`),
          options: KIND_OPTIONS.dicom.parse({}),
          ...budget(300),
          log: quietLog,
          secrets: {},
        });
        expect(performance.now() - t0).toBeLessThan(300 + BUSY_SLACK_MS);
        const outcome = result.ok ? 'ok' : result.failure!.reason;
        if (!result.ok) {
          expect(reasons.has(result.failure!.reason), result.failure!.reason).toBe(true);
          expect(dicomKind.phases).toContain(result.failure!.phase);
          expect(result.failure!.message.length).toBeLessThan(400);
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    } finally {
      await peer.close();
    }
    console.log(`dicom end-to-end fuzz outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    expect(outcomes.get('ok')).toBeGreaterThan(20);
    expect(outcomes.get('protocol')).toBeGreaterThan(20);
  }, 120_000);
});
