// The dicom probe: a DICOM Verification conversation with a PACS (or any DICOM node: a modality
// worklist, a router, a viewer's SCP), as `echoscu` has it. One run connects (optionally over
// DICOM TLS), requests an association from the called AE title as the calling one, proposing the
// Verification SOP class with Implicit and Explicit VR Little Endian, sends one C-ECHO-RQ, checks
// the C-ECHO-RSP's status, and releases the association. A PACS that still accepts TCP but no
// longer takes associations (a full association table, our AE title dropped from its list of
// known peers, a hung storage process) fails here while a plain port check looks fine.
//
// Every byte read is parsed by pdu.ts: a PDU's declared length is refused over 1 MiB from its
// header, before any of its body is kept. Refusals are the peer's answers and become bounded
// reasons, their numbers (result, source, reason of an A-ASSOCIATE-RJ; source and reason of an
// A-ABORT; a C-ECHO status) in the message. Whenever the run gives up on an association it holds,
// it sends an A-ABORT first, so the PACS frees the association at once instead of after its
// own timeout.
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { describeError, readUntil, reasonAfter, writeAll } from '../kit/net.js';
import { failed, resolveThenTlsFiles, Timeline } from '../kit/step.js';
import type { Endpoint } from '../kit/target.js';
import { certFacts, connectionResult, connectSocket, handshake } from '../kit/tls.js';
import type { FailureReason, Probe, ProbeContext, ProbeFailure, ProbeInfo, ProbeResult } from '../types.js';
import { PHASES, type DicomOptions } from './options.js';
import {
  abortPdu,
  associateRq,
  COMMAND,
  CommandAssembler,
  commandPdus,
  DicomProtocolError,
  echoRq,
  parseAbort,
  parseAssociateAc,
  parseCommand,
  parsePData,
  parseRejection,
  PDU_TYPE,
  pduName,
  PduReader,
  releaseRq,
  statusHex,
  TRANSFER_SYNTAX_UIDS,
  VERIFICATION_SOP_CLASS,
  type Abort,
  type AssociateAc,
  type Command,
  type Pdu,
  type Rejection,
} from './pdu.js';

type Phase = (typeof PHASES)[number];

/** The Verification presentation context's id (odd, PS3.8 9.3.2.2). */
const CONTEXT_ID = 1;

/**
 * The peer's answer ended the conversation (a rejection, an abort, a close, a refused
 * presentation context): the run's reason and message. `ended`: no association is left to abort.
 */
class DicomRefusal extends Error {
  override readonly name = 'DicomRefusal';
  constructor(
    readonly reason: FailureReason,
    message: string,
    readonly ended = true,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// What the peer's numbers mean (PS3.8 9.3.4, 9.3.8, 9.3.3.2; PS3.7 C)

const RJ_RESULT: Readonly<Record<number, string>> = { 1: 'permanent', 2: 'transient' };
const RJ_SOURCE: Readonly<Record<number, string>> = { 1: 'service user', 2: 'service provider, ACSE', 3: 'service provider, presentation' };
const RJ_REASON: Readonly<Record<number, Readonly<Record<number, string>>>> = {
  1: { 1: 'no reason given', 2: 'application context name not supported', 3: 'calling AE title not recognised', 7: 'called AE title not recognised' },
  2: { 1: 'no reason given', 2: 'protocol version not supported' },
  3: { 1: 'temporary congestion', 2: 'local limit exceeded' },
};

/** The bounded reason of an A-ASSOCIATE-RJ. */
export function rejectionReason(rj: Rejection): FailureReason {
  if (rj.source === 1 && rj.reason === 7) return 'dicom_rejected_called_ae';
  if (rj.source === 1 && rj.reason === 3) return 'dicom_rejected_calling_ae';
  if (rj.source === 3 && (rj.reason === 1 || rj.reason === 2)) return 'dicom_busy';
  return 'dicom_rejected';
}

export function describeRejection(rj: Rejection, o: Pick<DicomOptions, 'calledAeTitle' | 'callingAeTitle'>): string {
  const what = RJ_REASON[rj.source]?.[rj.reason] ?? 'reason not defined';
  const numbers = `result ${rj.result} (${RJ_RESULT[rj.result] ?? 'undefined'}), source ${rj.source} (${RJ_SOURCE[rj.source] ?? 'undefined'}), reason ${rj.reason}`;
  const reason = rejectionReason(rj);
  const detail =
    reason === 'dicom_rejected_called_ae'
      ? `: it does not answer to "${o.calledAeTitle}"`
      : reason === 'dicom_rejected_calling_ae'
        ? `: it does not accept calls from "${o.callingAeTitle}"`
        : '';
  return `association rejected, ${what} (A-ASSOCIATE-RJ ${numbers})${detail}`;
}

const ABORT_SOURCE: Readonly<Record<number, string>> = { 0: 'its DICOM application', 2: 'its DICOM protocol stack' };
const ABORT_REASON: Readonly<Record<number, string>> = {
  0: 'reason not specified',
  1: 'unrecognised PDU',
  2: 'unexpected PDU',
  4: 'unrecognised PDU parameter',
  5: 'unexpected PDU parameter',
  6: 'invalid PDU parameter value',
};

export function describeAbort(a: Abort, when: string): string {
  const why = a.source === 2 ? `: ${ABORT_REASON[a.reason] ?? 'reason not defined'}` : '';
  return `the peer aborted the association ${when}, by ${ABORT_SOURCE[a.source] ?? 'an undefined source'}${why} (A-ABORT source ${a.source}, reason ${a.reason})`;
}

const CONTEXT_RESULT: Readonly<Record<number, string>> = {
  1: 'user rejection',
  2: 'no reason',
  3: 'abstract syntax not supported',
  4: 'transfer syntaxes not supported',
};

const STATUS: Readonly<Record<number, string>> = {
  0x0110: 'processing failure',
  0x0112: 'no such SOP instance',
  0x0122: 'SOP class not supported',
  0x0210: 'duplicate invocation',
  0x0211: 'unrecognised operation',
  0x0212: 'mistyped argument',
  0x0213: 'resource limitation',
};

/** A C-ECHO status in words: its name where PS3.7 gives one, else its class. */
export function describeStatus(status: number): string {
  const named = STATUS[status];
  if (named !== undefined) return named;
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status >= 0xb000 && status <= 0xbfff)) return 'warning';
  if (status === 0xfe00) return 'cancelled';
  if (status === 0xff00 || status === 0xff01) return 'pending';
  return 'failure';
}

// ---------------------------------------------------------------------------------------------

export const dicomProbe: Probe<DicomOptions, Endpoint> = {
  phases: PHASES,
  async run(ctx: ProbeContext<DicomOptions, Endpoint>): Promise<ProbeResult> {
    const { options: o } = ctx;
    const hp = ctx.target;
    const phases: Record<string, number> = {};
    const values: NonNullable<ProbeResult['values']> = {};
    let info: ProbeInfo = {};

    const setup = await resolveThenTlsFiles(hp.host, o.ipFamily, o.tls === undefined ? undefined : { options: o.tls }, ctx.budget.signal, {
      phases,
      values,
      info,
    });
    if (failed(setup)) return setup.result;
    const { address, family, tls } = setup;

    // The conversation ends a little before the runner's deadline, so a PACS that never answers
    // is a timeout of the phase it hangs in, with the earlier phases timed.
    const conversation = ctx.budget.part('run ran out of time');
    const signal = conversation.signal;
    const line = new Timeline(phases, 'connect');
    const reader = new PduReader();
    const proposed = o.transferSyntaxes.map((name) => TRANSFER_SYNTAX_UIDS[name]);
    let socket: Socket | undefined;
    /**
     * An association requested or held and not released, rejected or aborted by the peer: the run
     * aborts it when it gives up (PS3.8 9.2: a requestor that meets an invalid PDU or times out
     * issues an A-ABORT), so the PACS does not keep a half-open association until its own timeout.
     */
    let holding = false;
    let failure: ProbeFailure | undefined;
    let earliestExpiry: number | undefined;
    try {
      const plain = await connectSocket({ address, port: hp.port, family }, Number.POSITIVE_INFINITY, signal, line);
      socket = plain;
      if (tls) {
        const material = tls;
        const secure = await line.time('tls', () => handshake(plain, material, signal));
        socket = secure;
        const facts = certFacts(secure);
        info = { ...info, ...facts.info };
        earliestExpiry = facts.earliestExpiry;
      }
      const open = socket;

      const request = associateRq({
        calledAe: o.calledAeTitle,
        callingAe: o.callingAeTitle,
        contexts: [{ id: CONTEXT_ID, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: proposed }],
      });
      const answer = await line.time('associate', async () => {
        await writeAll(open, request, signal);
        holding = true;
        return nextPdu(open, reader, signal, 'without answering the association request');
      });
      const ac = accepted(answer, o);
      if (ac.maxPdu !== undefined) values.dicom_peer_max_pdu_bytes = ac.maxPdu;
      if (ac.implementationClassUid) info.dicomImplementationClassUid = ac.implementationClassUid;
      if (ac.implementationVersionName) info.dicomImplementationVersionName = ac.implementationVersionName;
      const transferSyntax = checkContext(ac, proposed);
      info.dicomTransferSyntax = o.transferSyntaxes.find((name) => TRANSFER_SYNTAX_UIDS[name] === transferSyntax) ?? transferSyntax;

      const messageId = randomInt(1, 0x10000);
      const response = await line.time('echo', async () => {
        for (const p of commandPdus(CONTEXT_ID, echoRq(messageId), ac.maxPdu)) await writeAll(open, p, signal);
        return readCommand(open, reader, signal);
      });
      const status = echoStatus(response, messageId);
      info.dicomEchoStatus = statusHex(status);
      if (status !== 0) {
        const comment = response.errorComment ? `: ${response.errorComment}` : '';
        failure = { phase: 'echo', reason: 'dicom_status', message: `C-ECHO status ${statusHex(status)} (${describeStatus(status)})${comment}` };
      }

      // The association is released either way: a refused echo is the PACS's answer, not a broken association.
      await line.time('release', async () => {
        await writeAll(open, releaseRq(), signal);
        await awaitRelease(open, reader, signal);
      });
      holding = false;
    } catch (err) {
      if (err instanceof DicomRefusal) {
        // The peer's answer ended the phase: it is timed, and there is no association left to abort.
        line.stop();
        if (err.ended) holding = false;
      }
      const phase = line.current as Phase;
      failure ??= classify(err, phase, reader, signal);
    } finally {
      conversation.done();
      if (holding && socket && !socket.destroyed) socket.write(abortPdu({ source: 0, reason: 0 }));
      socket?.destroy();
    }
    return connectionResult({ phases, values, info, failure, slow: () => undefined, tls, earliestExpiry });
  },
};

/** The run's failure for what ended the conversation in `phase`. */
function classify(err: unknown, phase: Phase, reader: PduReader, signal: AbortSignal): ProbeFailure {
  if (err instanceof DicomRefusal) return { phase, reason: err.reason, message: err.message };
  if (err instanceof DicomProtocolError) return { phase, reason: 'protocol', message: err.message };
  const reason = reasonAfter(err, signal);
  if (reason !== 'timeout' || phase === 'connect' || phase === 'tls') return { phase, reason, message: describeError(err) };
  const partial = reader.buffered > 0 ? ` (${reader.buffered} bytes of a PDU received)` : '';
  const waited = phase === 'associate' ? 'no answer to the association request' : phase === 'echo' ? 'no C-ECHO response' : 'no answer to the release request';
  return { phase, reason, message: `${waited} before the deadline${partial}` };
}

/** The next PDU from the peer; the peer closing first is a refusal (reason reset) saying what it left unanswered. */
function nextPdu(socket: Socket, reader: PduReader, signal: AbortSignal, unanswered: string): Promise<Pdu> {
  const ready = reader.next();
  if (ready) return Promise.resolve(ready);
  return readUntil<Pdu>(
    socket,
    signal,
    (chunk) => {
      reader.push(chunk);
      return reader.next();
    },
    () =>
      new DicomRefusal(
        'reset',
        reader.buffered > 0
          ? `the peer closed the connection inside a PDU (${reader.buffered} bytes received)`
          : `the peer closed the connection ${unanswered}`,
      ),
  );
}

/** The A-ASSOCIATE-AC in `answer`; a rejection, an abort or any other PDU ends the run. */
function accepted(answer: Pdu, o: DicomOptions): AssociateAc {
  if (answer.type === PDU_TYPE.associateAc) return parseAssociateAc(answer.body);
  if (answer.type === PDU_TYPE.associateRj) {
    const rj = parseRejection(answer.body);
    throw new DicomRefusal(rejectionReason(rj), describeRejection(rj, o));
  }
  return unexpected(answer, 'an answer to the association request');
}

/** The transfer syntax of the accepted Verification context; dicom_no_context when the peer turned it down. */
function checkContext(ac: AssociateAc, proposed: readonly string[]): string {
  const c = ac.contexts.get(CONTEXT_ID);
  if (c === undefined)
    throw new DicomRefusal('dicom_no_context', 'the association was accepted without a result for the Verification presentation context', false);
  if (c.result !== 0) {
    throw new DicomRefusal(
      'dicom_no_context',
      `the association was accepted, the Verification presentation context not: result ${c.result} (${CONTEXT_RESULT[c.result] ?? 'undefined'})`,
      false,
    );
  }
  const ts = c.transferSyntax ?? '';
  if (!proposed.includes(ts)) throw new DicomProtocolError(`the Verification context was accepted with transfer syntax "${ts}", which was not proposed`);
  return ts;
}

/** Reads P-DATA-TF PDUs until the command set of the response is complete. */
async function readCommand(socket: Socket, reader: PduReader, signal: AbortSignal): Promise<Command> {
  const assembler = new CommandAssembler();
  for (;;) {
    const p = await nextPdu(socket, reader, signal, 'without answering the C-ECHO');
    if (p.type !== PDU_TYPE.pData) return unexpected(p, 'the C-ECHO response');
    for (const pdv of parsePData(p.body)) {
      if (pdv.contextId !== CONTEXT_ID) throw new DicomProtocolError(`a PDV on presentation context ${pdv.contextId}, not the accepted ${CONTEXT_ID}`);
      if (!pdv.command) throw new DicomProtocolError('a data set fragment where the C-ECHO response was expected');
      const whole = assembler.push(pdv);
      if (whole) return parseCommand(whole);
    }
  }
}

/** The status of the C-ECHO response to `messageId`. */
function echoStatus(c: Command, messageId: number): number {
  if (c.commandField !== COMMAND.echoRsp) {
    throw new DicomProtocolError(
      `command field ${c.commandField === undefined ? 'missing' : statusHex(c.commandField)} where the C-ECHO response (0x8030) was expected`,
    );
  }
  if (c.messageIdBeingRespondedTo !== messageId)
    throw new DicomProtocolError(`a C-ECHO response to message ${c.messageIdBeingRespondedTo ?? 'none'}, not to ours (${messageId})`);
  if (c.status === undefined) throw new DicomProtocolError('a C-ECHO response without a status');
  return c.status;
}

/** Waits for the A-RELEASE-RP; P-DATA the peer still sends is read and dropped. */
async function awaitRelease(socket: Socket, reader: PduReader, signal: AbortSignal): Promise<void> {
  for (;;) {
    const p = await nextPdu(socket, reader, signal, 'without answering the release request');
    if (p.type === PDU_TYPE.releaseRp) return;
    if (p.type !== PDU_TYPE.pData) unexpected(p, 'the release response');
  }
}

/** A PDU the conversation did not expect here: an abort is the peer's refusal, anything else a protocol error. */
function unexpected(p: Pdu, expected: string): never {
  if (p.type === PDU_TYPE.abort) throw new DicomRefusal('dicom_abort', describeAbort(parseAbort(p.body), `instead of ${expected}`));
  throw new DicomProtocolError(`${pduName(p.type)} where ${expected} was expected`);
}
