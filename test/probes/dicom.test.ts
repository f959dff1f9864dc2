// The dicom probe against real peers on loopback: the sandbox's PACS (plain and DICOM TLS, with
// each of its faults) and scripted peers that answer with what a PACS should not send (garbage,
// a huge declared PDU, half a PDU, silence, wrong message ids, a tiny Maximum Length).
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { dicomProbe } from '../../probes/dicom/probe.js';
import {
  associateAc,
  associateRj,
  abortPdu,
  CommandAssembler,
  commandPdus,
  echoRsp,
  IMPLEMENTATION_CLASS_UID,
  parseAssociateRq,
  parseCommand,
  parsePData,
  PDU_TYPE,
  PduReader,
  releaseRp,
  TRANSFER_SYNTAX_UIDS,
  VERIFICATION_SOP_CLASS,
  type AssociateRq,
  type Pdu,
} from '../../probes/dicom/pdu.js';
import type { ProbeResult } from '../../probes/types.js';
import { FAULT_STATUS, SANDBOX_PACS_AE, SandboxPacs } from '../../sandbox/dicom.js';
import { makePki } from '../helpers/certs.js';
import { budget, BUSY_SLACK_MS, closedPort, quietLog, tcpPeer, targetsOf, type Peer } from '../helpers/peers.js';

const IMPLICIT = TRANSFER_SYNTAX_UIDS.ImplicitVRLittleEndian;
const EXPLICIT = TRANSFER_SYNTAX_UIDS.ExplicitVRLittleEndian;

function run(target: string, options: Record<string, unknown> = {}, timeoutMs = 3000): Promise<ProbeResult> {
  return dicomProbe.run({
    ...targetsOf('dicom', target),
    options: KIND_OPTIONS.dicom.parse({ calledAeTitle: SANDBOX_PACS_AE, ...options }),
    ...budget(timeoutMs),
    log: quietLog,
    secrets: {},
  });
}

const cleanup: Peer[] = [];
afterAll(async () => {
  for (const p of cleanup) await p.close();
});

interface Script {
  /** Every PDU the peer received, in order. */
  received: Pdu[];
  /** The association request, once it came. */
  rq?: AssociateRq;
}

/**
 * A scripted DICOM peer: reads our PDUs with the reader under test and lets `answer` reply to
 * each (it gets the PDU and its index). Bytes it cannot read close the connection.
 */
async function scripted(answer: (s: Socket, p: Pdu, i: number, script: Script) => void): Promise<Peer & { target: string; received: Pdu[]; script: Script }> {
  const script: Script = { received: [] };
  const peer = await tcpPeer((s) => {
    const reader = new PduReader();
    let i = 0;
    s.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
        for (let p = reader.next(); p; p = reader.next()) {
          script.received.push(p);
          if (p.type === PDU_TYPE.associateRq) script.rq = parseAssociateRq(p.body);
          answer(s, p, i++, script);
        }
      } catch {
        s.destroy();
      }
    });
  });
  cleanup.push(peer);
  return Object.assign(peer, { target: `127.0.0.1:${peer.port}`, received: script.received, script });
}

/** The A-ASSOCIATE-AC a PACS sends for our request, with the Verification context's result and transfer syntax. */
function acFor(rq: AssociateRq | undefined, context: { result?: number; transferSyntax?: string; maxPdu?: number } = {}): Buffer {
  return associateAc({
    calledAe: rq?.calledAe ?? 'X',
    callingAe: rq?.callingAe ?? 'Y',
    contexts: [...(rq?.contexts.keys() ?? [1])].map((id) => ({ id, result: context.result ?? 0, transferSyntax: context.transferSyntax ?? IMPLICIT })),
    maxPdu: context.maxPdu ?? 16384,
    implementationClassUid: '1.2.3.4',
    implementationVersionName: 'SCRIPTED',
  });
}

/** The message id of the C-ECHO-RQ in a P-DATA-TF PDU. */
function messageIdOf(p: Pdu): number {
  const pdv = parsePData(p.body)[0]!;
  return parseCommand(pdv.data).messageId ?? -1;
}

/** A peer that accepts the association, answers the C-ECHO with `echo` and the release with an RP. */
function pacsLike(echo: (s: Socket, messageId: number) => void, release: (s: Socket) => void = (s) => s.end(releaseRp())) {
  return scripted((s, p, _i, script) => {
    if (p.type === PDU_TYPE.associateRq) s.write(acFor(script.rq));
    else if (p.type === PDU_TYPE.pData) echo(s, messageIdOf(p));
    else if (p.type === PDU_TYPE.releaseRq) release(s);
  });
}

describe('dicom probe against the sandbox PACS', () => {
  const pacs = new SandboxPacs({ host: '127.0.0.1', port: 0, slowMs: 400 });
  beforeAll(() => pacs.start());
  afterAll(async () => {
    await pacs.stop();
  });
  const fault = (mode: Parameters<SandboxPacs['setMode']>[0]) => pacs.setMode(mode);

  it('ok: associates, echoes and releases; each phase timed, the PACS named in info', async () => {
    await fault('ok');
    const before = pacs.echoes;
    const r = await run(pacs.target);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['connect', 'associate', 'echo', 'release']);
    expect(r.info).toMatchObject({
      dicomTransferSyntax: 'ImplicitVRLittleEndian',
      dicomEchoStatus: '0x0000',
      dicomImplementationVersionName: 'VAKT_SANDBOX',
    });
    expect(r.values?.dicom_peer_max_pdu_bytes).toBe(16384);
    expect(pacs.echoes).toBe(before + 1);
  });

  it('the first proposed transfer syntax the PACS takes is the one used', async () => {
    const r = await run(pacs.target, { transferSyntaxes: ['ExplicitVRLittleEndian'] });
    expect(r.ok).toBe(true);
    expect(r.info?.dicomTransferSyntax).toBe('ExplicitVRLittleEndian');
  });

  it('a called AE title the PACS does not answer to: dicom_rejected_called_ae, its numbers and the title in the message', async () => {
    const r = await run(pacs.target, { calledAeTitle: 'OLD_PACS' });
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'dicom_rejected_called_ae' });
    expect(r.failure?.message).toBe(
      'association rejected, called AE title not recognised (A-ASSOCIATE-RJ result 1 (permanent), source 1 (service user), reason 7): it does not answer to "OLD_PACS"',
    );
    // The rejection is the PACS's answer: the phase is timed.
    expect(r.phases.associate).toBeGreaterThan(0);
  });

  it('reject (the PACS renamed): dicom_rejected_called_ae', async () => {
    await fault('reject');
    expect((await run(pacs.target)).failure).toMatchObject({ phase: 'associate', reason: 'dicom_rejected_called_ae' });
  });

  it('busy: dicom_busy, transient, local limit exceeded', async () => {
    await fault('busy');
    const r = await run(pacs.target);
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'dicom_busy' });
    expect(r.failure?.message).toContain('local limit exceeded (A-ASSOCIATE-RJ result 2 (transient), source 3 (service provider, presentation), reason 2)');
  });

  it('nocontext: dicom_no_context with the context result', async () => {
    await fault('nocontext');
    const r = await run(pacs.target);
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'dicom_no_context' });
    expect(r.failure?.message).toContain('result 3 (abstract syntax not supported)');
  });

  it('abort: dicom_abort in the echo phase, with source and reason', async () => {
    await fault('abort');
    const r = await run(pacs.target);
    expect(r.failure).toMatchObject({ phase: 'echo', reason: 'dicom_abort' });
    expect(r.failure?.message).toBe('the peer aborted the association instead of the C-ECHO response, by its DICOM application (A-ABORT source 0, reason 0)');
    expect(r.phases.associate).toBeGreaterThan(0);
  });

  it('status: dicom_status with the status in hex and words; the association is still released', async () => {
    await fault('status');
    const r = await run(pacs.target);
    expect(r.failure).toMatchObject({ phase: 'echo', reason: 'dicom_status', message: 'C-ECHO status 0x0110 (processing failure)' });
    expect(FAULT_STATUS).toBe(0x0110);
    expect(r.info?.dicomEchoStatus).toBe('0x0110');
    expect(r.phases.release).toBeGreaterThan(0);
  });

  it('silent: a timeout in associate, before the deadline, with connect timed', async () => {
    await fault('silent');
    const t0 = performance.now();
    const r = await run(pacs.target, {}, 600);
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'timeout', message: 'no answer to the association request before the deadline' });
    expect(r.phases.connect).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(600 + BUSY_SLACK_MS);
  });

  it('slow: succeeds within the deadline, the wait in the associate phase; beyond the deadline it times out there', async () => {
    await fault('slow');
    const r = await run(pacs.target, {}, 3000);
    expect(r.ok).toBe(true);
    expect(r.phases.associate).toBeGreaterThanOrEqual(0.39);
    expect((await run(pacs.target, {}, 250)).failure).toMatchObject({ phase: 'associate', reason: 'timeout' });
  });

  it('down: refused in connect; ok again once it listens', async () => {
    await fault('down');
    expect((await run(pacs.target)).failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    await fault('ok');
    expect((await run(pacs.target)).ok).toBe(true);
  });
});

describe('dicom probe over DICOM TLS', () => {
  const pki = makePki();
  const secure = new SandboxPacs({ host: '127.0.0.1', port: 0, tls: pki.valid });
  const expiring = new SandboxPacs({ host: '127.0.0.1', port: 0, tls: pki.expiringSoon });
  beforeAll(async () => {
    await secure.start();
    await expiring.start();
  });
  afterAll(async () => {
    await secure.stop();
    await expiring.stop();
  });

  it('verifies the PACS certificate, times the handshake and reports its facts', async () => {
    const r = await run(secure.target, { tls: { caFile: pki.caFile, serverName: 'service.test' } });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['connect', 'tls', 'associate', 'echo', 'release']);
    expect(r.info?.certSubject).toContain('CN=service.test');
    expect(r.values?.ssl_earliest_cert_expiry).toBeGreaterThan(Date.now() / 1000);
  });

  it('a certificate from an unknown CA is tls_handshake; one about to expire is degraded', async () => {
    expect((await run(secure.target, { tls: true })).failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    const r = await run(expiring.target, { tls: { caFile: pki.caFile, serverName: 'service.test' } });
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('cert_expiring');
  });

  it('TLS against a plain PACS fails in tls', async () => {
    const plain = new SandboxPacs({ host: '127.0.0.1', port: 0 });
    await plain.start();
    try {
      const r = await run(plain.target, { tls: { insecureSkipVerify: true } }, 1500);
      expect(r.failure?.phase).toBe('tls');
      expect(['tls_handshake', 'reset', 'timeout']).toContain(r.failure?.reason);
    } finally {
      await plain.stop();
    }
  });
});

describe('dicom probe: what it sends', () => {
  it('an A-ASSOCIATE-RQ with the AE titles, Verification with both transfer syntaxes, and our user information', async () => {
    const peer = await pacsLike((s, id) => s.write(commandPdus(1, echoRsp(id, 0), 0)[0]!));
    const r = await run(peer.target, { callingAeTitle: 'VAKT_RAD', calledAeTitle: 'PACS_MAIN' });
    expect(r.ok).toBe(true);
    const rq = peer.script.rq!;
    expect(rq).toMatchObject({
      calledAe: 'PACS_MAIN',
      callingAe: 'VAKT_RAD',
      protocolVersion: 1,
      maxPdu: 16384,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
    });
    expect(rq.applicationContext).toBe('1.2.840.10008.3.1.1.1');
    expect([...rq.contexts]).toEqual([[1, { abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT, EXPLICIT] }]]);
    // Then one C-ECHO-RQ (command, last fragment) and a release request, nothing else.
    expect(peer.received.map((p) => p.type)).toEqual([PDU_TYPE.associateRq, PDU_TYPE.pData, PDU_TYPE.releaseRq]);
    const [pdv] = parsePData(peer.received[1]!.body);
    expect(pdv).toMatchObject({ contextId: 1, command: true, last: true });
    const command = parseCommand(pdv!.data);
    expect(command).toMatchObject({ commandField: 0x0030, dataSetType: 0x0101, affectedSopClassUid: VERIFICATION_SOP_CLASS });
    expect(command.messageId).toBeGreaterThan(0);
  });

  it("fragments its C-ECHO-RQ to fit the peer's Maximum Length", async () => {
    const peer = await scripted((s, p, _i, script) => {
      if (p.type === PDU_TYPE.associateRq) s.write(acFor(script.rq, { maxPdu: 26 }));
      else if (p.type === PDU_TYPE.pData) {
        const pdv = parsePData(p.body)[0]!;
        expect(p.body.length).toBeLessThanOrEqual(26);
        if (pdv.last) {
          const a = new CommandAssembler();
          let whole: Buffer | undefined;
          for (const q of script.received.filter((x) => x.type === PDU_TYPE.pData)) whole = a.push(parsePData(q.body)[0]!);
          s.write(commandPdus(1, echoRsp(parseCommand(whole!).messageId!, 0), 0)[0]!);
        }
      } else if (p.type === PDU_TYPE.releaseRq) s.end(releaseRp());
    });
    const r = await run(peer.target);
    expect(r.failure).toBeUndefined();
    expect(peer.received.filter((p) => p.type === PDU_TYPE.pData).length).toBeGreaterThan(2);
  });

  it('options: AE titles of 1 to 16 printable characters, each transfer syntax once', () => {
    const parse = (o: Record<string, unknown>) => KIND_OPTIONS.dicom.safeParse(o).success;
    expect(KIND_OPTIONS.dicom.parse({})).toMatchObject({ callingAeTitle: 'VAKT', calledAeTitle: 'ANY-SCP' });
    expect(KIND_OPTIONS.dicom.parse({ calledAeTitle: ' PACS ' }).calledAeTitle).toBe('PACS');
    expect(parse({ calledAeTitle: 'A_SEVENTEEN_CHARS' })).toBe(false);
    expect(parse({ calledAeTitle: 'BACK\\SLASH' })).toBe(false);
    expect(parse({ calledAeTitle: '    ' })).toBe(false);
    expect(parse({ callingAeTitle: 'TAB\tHERE' })).toBe(false);
    expect(parse({ transferSyntaxes: ['ImplicitVRLittleEndian', 'ImplicitVRLittleEndian'] })).toBe(false);
    expect(parse({ transferSyntaxes: ['JPEGBaseline'] })).toBe(false);
    expect(parse({ transferSyntaxes: [] })).toBe(false);
  });
});

describe('dicom probe against hostile or broken peers', () => {
  it('garbage (an HTTP answer) is protocol, at once', async () => {
    const http = await tcpPeer((s) => s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
    cleanup.push(http);
    const r = await run(`127.0.0.1:${http.port}`);
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'protocol', message: 'not a DICOM PDU: type 0x48' });
  });

  it('a PDU declaring 2 GiB is protocol from its header, before the body is read', async () => {
    const peer = await tcpPeer((s) =>
      s.once('data', () => {
        const head = Buffer.from([PDU_TYPE.associateAc, 0, 0x7f, 0xff, 0xff, 0xff]);
        s.write(head);
        // The body never comes: the verdict must not wait for it.
      }),
    );
    cleanup.push(peer);
    const t0 = performance.now();
    const r = await run(`127.0.0.1:${peer.port}`, {}, 10_000);
    expect(r.failure).toMatchObject({
      phase: 'associate',
      reason: 'protocol',
      message: 'A-ASSOCIATE-AC (0x02) declares 2147483647 bytes, above the limit of 1048576',
    });
    expect(performance.now() - t0).toBeLessThan(BUSY_SLACK_MS);
  });

  it('half an A-ASSOCIATE-AC then silence is a timeout saying how much came, the association aborted; then a close is reset', async () => {
    const silent = await scripted((s, p, _i, script) => {
      if (p.type === PDU_TYPE.associateRq) s.write(acFor(script.rq).subarray(0, 40));
    });
    const r = await run(silent.target, {}, 500);
    expect(r.failure).toMatchObject({
      phase: 'associate',
      reason: 'timeout',
      message: 'no answer to the association request before the deadline (40 bytes of a PDU received)',
    });
    await expect.poll(() => silent.received.map((p) => p.type)).toEqual([PDU_TYPE.associateRq, PDU_TYPE.abort]);
    const closing = await scripted((s, p, _i, script) => s.end(acFor(script.rq).subarray(0, 40)));
    expect((await run(closing.target)).failure).toMatchObject({
      phase: 'associate',
      reason: 'reset',
      message: 'the peer closed the connection inside a PDU (40 bytes received)',
    });
  });

  it('a peer that closes on our request is reset in associate; one that never answers a timeout', async () => {
    const closing = await scripted((s) => s.end());
    expect((await run(closing.target)).failure).toMatchObject({
      phase: 'associate',
      reason: 'reset',
      message: 'the peer closed the connection without answering the association request',
    });
    const silent = await scripted(() => undefined);
    expect((await run(silent.target, {}, 400)).failure).toMatchObject({ phase: 'associate', reason: 'timeout' });
  });

  it('a closed port is refused in connect', async () => {
    expect((await run(`127.0.0.1:${await closedPort()}`)).failure).toMatchObject({ phase: 'connect', reason: 'refused' });
  });

  it('rejections map to a small closed set, the numbers kept in the message', async () => {
    const cases: [number, number, number, string][] = [
      [1, 1, 3, 'dicom_rejected_calling_ae'],
      [1, 1, 7, 'dicom_rejected_called_ae'],
      [1, 1, 1, 'dicom_rejected'],
      [1, 1, 2, 'dicom_rejected'],
      [1, 2, 2, 'dicom_rejected'],
      [2, 3, 1, 'dicom_busy'],
      [2, 3, 2, 'dicom_busy'],
      [9, 9, 9, 'dicom_rejected'],
    ];
    for (const [result, source, reason, expected] of cases) {
      const peer = await scripted((s) => s.end(associateRj({ result, source, reason })));
      const r = await run(peer.target, { callingAeTitle: 'VAKT_X' });
      expect(r.failure?.reason, `${result}/${source}/${reason}`).toBe(expected);
      expect(r.failure?.message).toContain(`result ${result} (`);
      expect(r.failure?.message).toContain(`source ${source} (`);
      expect(r.failure?.message).toContain(`reason ${reason})`);
      if (expected === 'dicom_rejected_calling_ae') expect(r.failure?.message).toContain('it does not accept calls from "VAKT_X"');
    }
  });

  it('an A-ABORT instead of the A-ASSOCIATE-AC is dicom_abort in associate', async () => {
    const peer = await scripted((s) => s.end(abortPdu({ source: 2, reason: 2 })));
    expect((await run(peer.target)).failure).toMatchObject({
      phase: 'associate',
      reason: 'dicom_abort',
      message:
        'the peer aborted the association instead of an answer to the association request, by its DICOM protocol stack: unexpected PDU (A-ABORT source 2, reason 2)',
    });
  });

  it('a transfer syntax we did not propose is protocol, and the association is aborted', async () => {
    const peer = await scripted((s, p, _i, script) => {
      if (p.type === PDU_TYPE.associateRq) s.write(acFor(script.rq, { transferSyntax: '1.2.840.10008.1.2.2' }));
    });
    const r = await run(peer.target);
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'protocol' });
    expect(r.failure?.message).toContain('"1.2.840.10008.1.2.2", which was not proposed');
    await expect.poll(() => peer.received.map((p) => p.type)).toEqual([PDU_TYPE.associateRq, PDU_TYPE.abort]);
  });

  it('a refused presentation context aborts the association it got', async () => {
    const peer = await scripted((s, p, _i, script) => {
      if (p.type === PDU_TYPE.associateRq) s.write(acFor(script.rq, { result: 4 }));
    });
    const r = await run(peer.target);
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'dicom_no_context' });
    expect(r.failure?.message).toContain('result 4 (transfer syntaxes not supported)');
    await expect.poll(() => peer.received.map((p) => p.type)).toEqual([PDU_TYPE.associateRq, PDU_TYPE.abort]);
  });

  it('an A-ASSOCIATE-AC with an item running past its end is protocol', async () => {
    const peer = await scripted((s, p, _i, script) => {
      const ac = acFor(script.rq);
      ac.writeUInt16BE(0xffff, 6 + 68 + 2); // the application context item's length
      s.write(ac);
    });
    const r = await run(peer.target);
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'protocol' });
    expect(r.failure?.message).toMatch(/^A-ASSOCIATE-AC: item 0x10 declares 65535 bytes, \d+ are left$/);
  });

  it('a response to another message id is protocol, and the association is aborted', async () => {
    const peer = await pacsLike((s, id) => s.write(commandPdus(1, echoRsp((id + 1) & 0xffff, 0), 0)[0]!));
    const r = await run(peer.target);
    expect(r.failure).toMatchObject({ phase: 'echo', reason: 'protocol' });
    expect(r.failure?.message).toMatch(/^a C-ECHO response to message \d+, not to ours \(\d+\)$/);
    await expect.poll(() => peer.received.map((p) => p.type)).toEqual([PDU_TYPE.associateRq, PDU_TYPE.pData, PDU_TYPE.abort]);
  });

  it('no C-ECHO response is a timeout in echo, and the association is aborted', async () => {
    const peer = await pacsLike(() => undefined);
    const r = await run(peer.target, {}, 500);
    expect(r.failure).toMatchObject({ phase: 'echo', reason: 'timeout', message: 'no C-ECHO response before the deadline' });
    await expect.poll(() => peer.received.map((p) => p.type)).toEqual([PDU_TYPE.associateRq, PDU_TYPE.pData, PDU_TYPE.abort]);
  });

  it('a C-ECHO response in 1-byte segments and several fragments is reassembled', async () => {
    const peer = await pacsLike((s, id) => {
      const bytes = Buffer.concat(commandPdus(1, echoRsp(id, 0), 20));
      let i = 0;
      const next = () => {
        if (s.destroyed || i >= bytes.length) return;
        s.write(bytes.subarray(i, ++i));
        setTimeout(next, 0);
      };
      next();
    });
    const r = await run(peer.target, {}, 5000);
    expect(r.failure).toBeUndefined();
    expect(r.info?.dicomEchoStatus).toBe('0x0000');
  });

  it('a data set where the response should be, a wrong context id, a malformed command: protocol', async () => {
    const dataSet = await pacsLike((s) => s.write(Buffer.from([4, 0, 0, 0, 0, 8, 0, 0, 0, 4, 1, 2, 0xaa, 0xbb])));
    expect((await run(dataSet.target)).failure).toMatchObject({
      phase: 'echo',
      reason: 'protocol',
      message: 'a data set fragment where the C-ECHO response was expected',
    });
    const otherContext = await pacsLike((s, id) => s.write(commandPdus(3, echoRsp(id, 0), 0)[0]!));
    expect((await run(otherContext.target)).failure?.message).toBe('a PDV on presentation context 3, not the accepted 1');
    const badCommand = await pacsLike((s) => s.write(commandPdus(1, Buffer.from([0, 0, 0, 1, 4, 0, 0, 0]), 0)[0]!));
    expect((await run(badCommand.target)).failure?.message).toBe('command set: element (0000,0100) declares 4 bytes, 0 are left');
  });

  it('a status other than success is dicom_status, with the peer comment bounded', async () => {
    const peer = await pacsLike((s, id) => {
      const rsp = echoRsp(id, 0xc001);
      // (0000,0902) Error Comment, 100 bytes with a control character.
      const comment = Buffer.concat([Buffer.from([0, 0, 0x02, 0x09, 100, 0, 0, 0]), Buffer.from(`bad\n${'x'.repeat(96)}`, 'latin1')]);
      s.write(commandPdus(1, Buffer.concat([rsp, comment]), 0)[0]!);
    });
    const r = await run(peer.target);
    expect(r.failure).toMatchObject({ phase: 'echo', reason: 'dicom_status' });
    expect(r.failure?.message).toBe(`C-ECHO status 0xC001 (failure): bad?${'x'.repeat(60)}`);
  });

  it('release: an A-ABORT is dicom_abort, a close without A-RELEASE-RP reset, silence a timeout', async () => {
    const ok = (s: Socket, id: number) => s.write(commandPdus(1, echoRsp(id, 0), 0)[0]!);
    const aborting = await pacsLike(ok, (s) => s.end(abortPdu({ source: 0, reason: 0 })));
    expect((await run(aborting.target)).failure).toMatchObject({ phase: 'release', reason: 'dicom_abort' });
    const closing = await pacsLike(ok, (s) => s.end());
    expect((await run(closing.target)).failure).toMatchObject({
      phase: 'release',
      reason: 'reset',
      message: 'the peer closed the connection without answering the release request',
    });
    const silent = await pacsLike(ok, () => undefined);
    expect((await run(silent.target, {}, 500)).failure).toMatchObject({
      phase: 'release',
      reason: 'timeout',
      message: 'no answer to the release request before the deadline',
    });
  });
});
