// The radius probe: a RADIUS client (RFC 2865) as a Wi-Fi access point or VPN gateway is one. One
// Access-Request per run over UDP, with PAP (the password hidden with the shared secret) or CHAP,
// always signed with a Message-Authenticator (RFC 3579); retransmitted unchanged (same Identifier
// and Request Authenticator, as RFC 5080 2.2.1 asks) while no answer comes, within the run's
// budget. A reply counts only when it answers our Identifier and its Response Authenticator (and
// Message-Authenticator, when present) verify with the shared secret; anything else is dropped as
// RFC 2865 says and, if no genuine answer follows, reported as `protocol` with why. Accept is ok,
// Reject is `auth`, Challenge is `radius_challenge`, no answer is `timeout`. A Reply-Message is
// server text: it is only ever quoted in the failure message, cut short, stripped of control
// characters and redacted; never in info, labels or the status page.
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { describeError, ProbeAbortError, raceAbort, reasonAfter, resolveStep } from '../kit/net.js';
import { runRedactor, type Redactor } from '../kit/redact.js';
import { failed } from '../kit/step.js';
import type { Endpoint } from '../kit/target.js';
import type { ProbeContext, ProbeInfo, ProbeResult } from '../types.js';
import { PHASES, type RadiusOptions } from './options.js';
import {
  ATTR,
  chapResponse,
  CODE,
  CODE_NAMES,
  decodePacket,
  encodePacket,
  hidePassword,
  MAX_PAP_PASSWORD,
  radiusMd5Available,
  signMessageAuthenticator,
  untagged,
  valuesOf,
  verifyReply,
  type Attribute,
  type RadiusPacket,
} from './packet.js';

/** The longest Reply-Message text quoted in a failure message. */
export const MAX_REPLY_MESSAGE = 120;

type Into = { phases: Record<string, number>; values: NonNullable<ProbeResult['values']>; info: ProbeInfo };

function requestFailed(into: Into, reason: string, message: string): ProbeResult {
  return { ok: false, ...into, failure: { phase: 'request', reason, message } };
}

/** An Access-Request ready to send, and what its reply is checked against. */
export interface AccessRequest {
  bytes: Buffer;
  identifier: number;
  authenticator: Buffer;
}

export interface RequestParts {
  username: string;
  password: Buffer;
  secret: Buffer;
  method: 'pap' | 'chap';
  nasIdentifier?: string | undefined;
  nasIpAddress?: string | undefined;
}

/**
 * Builds an Access-Request: a random Identifier and Request Authenticator, the
 * Message-Authenticator first (the BlastRADIUS advice), User-Name, the password as PAP or CHAP,
 * and the NAS's identity (NAS-Identifier "vakt" when none is configured).
 */
export function accessRequest(p: RequestParts): AccessRequest {
  const identifier = randomInt(256);
  const authenticator = randomBytes(16);
  const attributes: Attribute[] = [
    { type: ATTR.messageAuthenticator, value: Buffer.alloc(16) },
    { type: ATTR.userName, value: Buffer.from(p.username, 'utf8') },
  ];
  if (p.method === 'pap') {
    attributes.push({ type: ATTR.userPassword, value: hidePassword(p.password, p.secret, authenticator) });
  } else {
    const chapId = randomInt(256);
    const challenge = randomBytes(16);
    attributes.push({ type: ATTR.chapPassword, value: Buffer.concat([Buffer.of(chapId), chapResponse(chapId, p.password, challenge)]) });
    attributes.push({ type: ATTR.chapChallenge, value: challenge });
  }
  if (p.nasIpAddress !== undefined) attributes.push({ type: ATTR.nasIpAddress, value: Buffer.from(p.nasIpAddress.split('.').map(Number)) });
  if (p.nasIdentifier !== undefined || p.nasIpAddress === undefined) {
    attributes.push({ type: ATTR.nasIdentifier, value: Buffer.from(p.nasIdentifier ?? 'vakt', 'utf8') });
  }
  const bytes = encodePacket(CODE.accessRequest, identifier, authenticator, attributes);
  signMessageAuthenticator(bytes, p.secret);
  return { bytes, identifier, authenticator };
}

/**
 * What a datagram is to the run waiting for `request`'s answer: the reply (decoded and verified),
 * or why it was dropped. Every byte of the peer's goes through here.
 */
export function readReply(
  datagram: Buffer,
  request: Pick<AccessRequest, 'identifier' | 'authenticator'>,
  secret: Buffer,
  requireMessageAuthenticator: boolean,
): RadiusPacket | string {
  const reply = decodePacket(datagram);
  if (typeof reply === 'string') return `a malformed reply (${reply})`;
  if (reply.identifier !== request.identifier) return `a reply with Identifier ${reply.identifier}, ours was ${request.identifier}`;
  if (reply.code !== CODE.accessAccept && reply.code !== CODE.accessReject && reply.code !== CODE.accessChallenge) {
    return `${packetName(reply.code)}, expected Access-Accept, Access-Reject or Access-Challenge`;
  }
  const problem = verifyReply(reply, request.authenticator, secret, requireMessageAuthenticator);
  return problem === undefined ? reply : `${packetName(reply.code)} whose ${problem.replace(/^its /, '')}`;
}

/** "an Access-Accept", "a Status-Server", "a packet of code 99". */
function packetName(code: number): string {
  const name = CODE_NAMES[code];
  return name === undefined ? `a packet of code ${code}` : `${name.startsWith('A') ? 'an' : 'a'} ${name}`;
}

/**
 * A reply's Reply-Message attributes as one line fit for a failure message: decoded as UTF-8,
 * control characters made spaces, at most MAX_REPLY_MESSAGE characters, every secret of the
 * check redacted (a server may echo the password); undefined when there is none.
 */
export function replyMessageText(reply: Pick<RadiusPacket, 'attributes'>, redactor: Redactor): string | undefined {
  const parts = valuesOf(reply, ATTR.replyMessage);
  if (parts.length === 0) return undefined;
  // Enough octets for the bound (a character is at most 4), never the whole packet.
  const text = Buffer.concat(parts)
    .subarray(0, MAX_REPLY_MESSAGE * 4)
    .toString('utf8')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (text === '') return undefined;
  const chars = [...text];
  const bounded = chars.length > MAX_REPLY_MESSAGE ? `${chars.slice(0, MAX_REPLY_MESSAGE - 1).join('')}…` : text;
  return redactor.scrub(bounded);
}

/** How a run's request ended: a verified reply, an error (refused, the deadline), or nothing by the end. */
type Exchange =
  | { kind: 'reply'; reply: RadiusPacket; attempts: number; seconds: number }
  | { kind: 'error'; error: Error; attempts: number; seconds: number }
  | { kind: 'none'; attempts: number; seconds: number; dropped?: string; droppedCount: number };

/**
 * Sends the request, again every `interval` ms while no verified answer comes (at most
 * `retransmits` times, none after `end`), and waits until `end` (performance clock, ms).
 */
function exchange(
  socket: Socket,
  request: AccessRequest,
  accept: (datagram: Buffer) => RadiusPacket | string,
  o: Pick<RadiusOptions, 'retransmits' | 'retransmitInterval'>,
  signal: AbortSignal,
  end: number,
): Promise<Exchange> {
  const start = performance.now();
  const seconds = () => (performance.now() - start) / 1000;
  let attempts = 0;
  let dropped: string | undefined;
  let droppedCount = 0;
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (outcome: Exchange) => {
      clearTimeout(timer);
      socket.removeListener('message', onMessage);
      socket.removeListener('error', onError);
      signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const send = () => {
      attempts++;
      socket.send(request.bytes, (err) => {
        if (err) finish({ kind: 'error', error: err, attempts, seconds: seconds() });
      });
      const next = performance.now() + o.retransmitInterval;
      if (attempts <= o.retransmits && next < end) timer = setTimeout(send, o.retransmitInterval);
      else
        timer = setTimeout(
          () => finish({ kind: 'none', attempts, seconds: seconds(), droppedCount, ...(dropped !== undefined ? { dropped } : {}) }),
          Math.max(0, end - performance.now()),
        );
    };
    const onMessage = (datagram: Buffer) => {
      const got = accept(datagram);
      if (typeof got !== 'string') return finish({ kind: 'reply', reply: got, attempts, seconds: seconds() });
      droppedCount++;
      dropped ??= got;
    };
    const onError = (error: Error) => finish({ kind: 'error', error, attempts, seconds: seconds() });
    const onAbort = () => finish({ kind: 'error', error: new ProbeAbortError('run ran out of time'), attempts, seconds: seconds() });
    if (signal.aborted) return onAbort();
    socket.on('message', onMessage);
    socket.on('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
    send();
  });
}

function requestsText(n: number): string {
  return n === 1 ? '1 Access-Request' : `${n} Access-Requests`;
}

export const radiusProbe = {
  phases: PHASES,
  async run(ctx: ProbeContext<RadiusOptions, Endpoint>): Promise<ProbeResult> {
    const o = ctx.options;
    const into: Into = { phases: {}, values: {}, info: {} };
    const password = ctx.secrets[o.password];
    const sharedSecret = ctx.secrets[o.sharedSecret];
    // The config loader resolves every secret an option names before a check runs.
    if (password === undefined || sharedSecret === undefined) throw new Error('radius: a secret named by password or sharedSecret is missing');
    const redactor = runRedactor(ctx.secrets);
    const secret = Buffer.from(sharedSecret, 'utf8');
    const passwordBytes = Buffer.from(password, 'utf8');
    if (!radiusMd5Available()) {
      return requestFailed(into, 'protocol', "this Node's OpenSSL refuses MD5 (FIPS mode?): RADIUS (RFC 2865) cannot be spoken without it");
    }
    if (o.method === 'pap' && passwordBytes.length > MAX_PAP_PASSWORD) {
      return requestFailed(into, 'protocol', `the password is ${passwordBytes.length} bytes; PAP carries at most ${MAX_PAP_PASSWORD} (RFC 2865 5.2)`);
    }

    const resolved = await resolveStep(ctx.target.host, o.ipFamily, ctx.budget.signal, into);
    if (failed(resolved)) return resolved.result;
    const request = accessRequest({
      username: o.username,
      password: passwordBytes,
      secret,
      method: o.method,
      nasIdentifier: o.nasIdentifier,
      nasIpAddress: o.nasIpAddress,
    });

    const socket = createSocket({ type: resolved.family === 6 ? 'udp6' : 'udp4' });
    let outcome: Exchange;
    try {
      await raceAbort(
        new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          // Connected: only datagrams from the server's address and port arrive, and an ICMP
          // port unreachable comes back as ECONNREFUSED.
          socket.connect(ctx.target.port, resolved.address, () => {
            socket.removeListener('error', reject);
            resolve();
          });
        }),
        ctx.budget.signal,
      );
      outcome = await exchange(socket, request, (d) => readReply(d, request, secret, o.requireMessageAuthenticator), o, ctx.budget.signal, ctx.budget.end());
    } catch (err) {
      const reason = reasonAfter(err, ctx.budget.signal);
      return requestFailed(into, reason, describeError(err));
    } finally {
      socket.close();
    }

    into.phases.request = outcome.seconds;
    into.values.radius_attempts = outcome.attempts;
    if (outcome.kind === 'error') {
      const reason = reasonAfter(outcome.error, ctx.budget.signal);
      if (reason === 'timeout') return requestFailed(into, 'timeout', noAnswer(outcome.attempts, o.retransmitInterval));
      if (reason === 'refused') {
        return requestFailed(
          into,
          'refused',
          `the server's port is closed (ICMP port unreachable after ${requestsText(outcome.attempts)}): no RADIUS server is running there`,
        );
      }
      return requestFailed(into, reason, describeError(outcome.error));
    }
    if (outcome.kind === 'none') {
      if (outcome.dropped !== undefined) {
        const dropped = outcome.droppedCount === 1 ? '1 reply dropped' : `${outcome.droppedCount} replies dropped, the first`;
        return requestFailed(into, 'protocol', `no valid answer to ${requestsText(outcome.attempts)}: ${dropped}: ${outcome.dropped}`);
      }
      return requestFailed(into, 'timeout', noAnswer(outcome.attempts, o.retransmitInterval));
    }
    return judge(outcome.reply, outcome.attempts, o, into, redactor);
  },
};

function noAnswer(attempts: number, interval: number): string {
  return (
    `no answer to ${requestsText(attempts)}${attempts > 1 ? ` (${seconds(interval)} apart)` : ''} before the deadline: the server is down or unreachable, ` +
    'or it drops our requests unanswered, as RADIUS servers do with a request from a client they do not know or with a wrong shared secret ' +
    '(FreeRADIUS drops a request whose Message-Authenticator does not verify)'
  );
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}

function judge(reply: RadiusPacket, attempts: number, o: RadiusOptions, into: Into, redactor: Redactor): ProbeResult {
  const said = replyMessageText(reply, redactor);
  const quoted = said !== undefined ? `; Reply-Message ${JSON.stringify(said)}` : '';
  if (reply.code === CODE.accessReject) {
    return requestFailed(into, 'auth', `the server refused the login (Access-Reject)${quoted}`);
  }
  if (reply.code === CODE.accessChallenge) {
    return requestFailed(
      into,
      'radius_challenge',
      `the server answered with an Access-Challenge: it wants a further step (a one-time code, EAP) that a plain ${o.method.toUpperCase()} login of the probe account cannot give${quoted}`,
    );
  }
  const missing = missingExpectation(reply, o.expect);
  if (missing !== undefined) return requestFailed(into, 'assertion', missing);
  const result: ProbeResult = { ok: true, ...into };
  const took = into.phases.request ?? 0;
  if (attempts > 1) {
    result.degraded = {
      reason: 'retransmitted',
      message: `accepted only after ${requestsText(attempts)}: no answer within ${seconds(o.retransmitInterval)} to the first (a lost datagram or a slow server; access points give up after a few)`,
    };
  } else if (o.requestDegradedAbove !== undefined && took * 1000 > o.requestDegradedAbove) {
    result.degraded = { reason: 'slow', message: `request took ${(took * 1000).toFixed(0)} ms (limit ${seconds(o.requestDegradedAbove)})` };
  }
  return result;
}

const EXPECTED = [
  { key: 'filterId', name: 'Filter-Id', type: ATTR.filterId, read: (v: Buffer) => v },
  { key: 'class', name: 'Class', type: ATTR.class, read: (v: Buffer) => v },
  { key: 'tunnelPrivateGroupId', name: 'Tunnel-Private-Group-Id', type: ATTR.tunnelPrivateGroupId, read: untagged },
] as const;

/** The first expected attribute the Access-Accept lacks, said with the expected value only (from the config, never the reply's). */
function missingExpectation(reply: RadiusPacket, expect: RadiusOptions['expect']): string | undefined {
  if (expect === undefined) return undefined;
  for (const e of EXPECTED) {
    const want = expect[e.key];
    if (want === undefined) continue;
    const wanted = Buffer.from(want, 'utf8');
    const values = valuesOf(reply, e.type).map(e.read);
    if (values.some((v) => v.equals(wanted))) continue;
    const had = values.length === 0 ? `no ${e.name}` : values.length === 1 ? `another ${e.name}` : `${values.length} other ${e.name} values`;
    return `the Access-Accept carries ${had}, expected ${e.name} ${JSON.stringify(want)}`;
  }
  return undefined;
}
