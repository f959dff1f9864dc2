// The amqp probe: a canary through an AMQP 0-9-1 broker (RabbitMQ). One run logs in, opens a
// confirm channel, starts a consumer on the canary queue, publishes one uniquely marked,
// timestamped message, waits for the broker's publisher confirm and for the message to come
// back, and times the end-to-end transit from publish to delivery. A broker that accepts
// connections but no longer moves messages (memory or disk alarm, a stuck queue process) fails
// here while a TCP or management-API check still looks fine.
//
// The canary's own messages never pile up: each is published with a per-message expiration
// (`messageTtl`), and a server-named queue is exclusive, auto-delete and expires. Canaries of
// earlier runs found on the queue (a run that timed out) are acked and dropped; messages that are
// not vakt canaries are never acked: they stay unacknowledged until the run ends and go back to
// the queue when the connection closes (the canary queue should be dedicated anyway).
//
// Cancellation: amqplib opens its own socket. The probe hands it an AbortSignal (net and tls
// connect both take one), so an abort destroys the socket in any phase, and an idle timeout as a
// backstop for the handshake. The plain TCP socket is also captured when it is created
// (diagnostics channel `net.client.socket`), to tell a broker that closed the connection after
// the login was sent from a peer that never answered at all.
import { randomBytes } from 'node:crypto';
import { channel as diagnosticsChannel } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { connect as amqpConnect, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Message, type Options } from 'amqplib';
import { PHASES, type AmqpOptions } from './options.js';
import { classifyError, describeError, fail, now, ProbeAbortError, raceAbort } from '../kit/net.js';
import type { Endpoint } from '../kit/target.js';
import { failed, resolveThenTlsFiles, Timeline } from '../kit/step.js';
import { runRedactor, type Redactor } from '../kit/redact.js';
import { certFacts, connectionResult, tlsConnectOptions } from '../kit/tls.js';
import type { FailureReason, Probe, ProbeContext, ProbeFailure, ProbeInfo, ProbeResult } from '../types.js';

// connect covers the TCP connect, the TLS handshake (amqplib does both) and the AMQP open; tls is
// reported only when the check's TLS files cannot be read (the kit's step, as every kind).
type Phase = (typeof PHASES)[number];

/** The header that marks a vakt canary; its value is the format version. */
export const CANARY_HEADER = 'x-vakt-canary';
const CANARY_VERSION = 1;
/** Deliveries the broker may have in flight to the probe: foreign messages ahead of the canary hold one each. */
const CANARY_PREFETCH = 50;
/** How long the probe waits for the broker's close-ok before it destroys the socket anyway. */
const CLOSE_WAIT_MS = 200;
/** Largest frame accepted from the broker (the canary's are tiny; this bounds a hostile peer's). */
const MAX_FRAME = 4 * 1024 * 1024;
/** The AMQP 0-9-1 protocol header the client sends first. */
const PROTOCOL_HEADER_BYTES = 8;

/** Client sockets as node:net creates them; subscribed only around amqplib's synchronous connect call. */
const netClientSocket = diagnosticsChannel('net.client.socket');

export const amqpProbe: Probe<AmqpOptions, Endpoint> = {
  phases: PHASES,
  async run(ctx: ProbeContext<AmqpOptions, Endpoint>): Promise<ProbeResult> {
    const { options: o } = ctx;
    const phases: Record<string, number> = {};
    const hp = ctx.target;

    // Without a password the login is RabbitMQ's well-known guest/guest (the schema allows that only for guest).
    const password = o.password === undefined ? (o.username === 'guest' ? 'guest' : undefined) : ctx.secrets[o.password];
    // The loader refuses a password that names no secret; this guards direct calls.
    if (password === undefined) return fail(phases, 'connect', 'internal', `the check has no secret named "${o.password ?? ''}" for the password`);

    const values: NonNullable<ProbeResult['values']> = {};
    let info: ProbeInfo = {};
    const setup = await resolveThenTlsFiles(hp.host, o.ipFamily, o.tls === undefined ? undefined : { options: o.tls }, ctx.budget.signal, {
      phases,
      values,
      info,
    });
    if (failed(setup)) return setup.result;
    const { address, family, tls } = setup;

    // The conversation ends a little before the runner's deadline (as ldap and tcp do), so a
    // canary that never comes back is a timeout of `transit` with the earlier phases timed, and
    // the connection can still be closed properly. `socketCtrl` destroys the socket: at once when
    // the runner aborts, otherwise after the close in `finally`.
    const endAt = ctx.budget.end();
    const conversation = ctx.budget.part('run ran out of time', endAt);
    const signal = conversation.signal;
    const socketCtrl = new AbortController();
    const onParent = () => socketCtrl.abort(ctx.budget.signal.reason);
    ctx.budget.signal.addEventListener('abort', onParent, { once: true });
    if (ctx.budget.signal.aborted) onParent();

    const runs = ((ctx.memory.get('amqp.runs') as number | undefined) ?? 0) + 1;
    ctx.memory.set('amqp.runs', runs);
    const id = `vakt-${randomBytes(9).toString('base64url')}-${runs}`;
    const state: SessionState = {
      socket: undefined,
      channelError: undefined,
      connectionError: undefined,
      blocked: undefined,
      returned: undefined,
      broken: undefined,
    };

    const line = new Timeline(phases, 'connect');
    let model: ChannelModel | undefined;
    let ch: ConfirmChannel | undefined;
    let failure: ProbeFailure | undefined;
    let earliestExpiry: number | undefined;
    let foreign = 0;
    let stale = 0;
    let transitStart = 0;
    try {
      line.begin('connect');
      const url: Options.Connect = {
        protocol: tls ? 'amqps' : 'amqp',
        hostname: address,
        port: hp.port,
        username: o.username,
        password,
        // amqplib URL-decodes the vhost it is given; encoding it keeps "%" and "/" literal.
        vhost: encodeURIComponent(o.vhost),
        maxFrameSize: MAX_FRAME,
        ...(o.heartbeat !== undefined ? { heartbeat: Math.ceil(o.heartbeat / 1000) } : {}),
      };
      const backstop = Math.max(1, Math.ceil(ctx.budget.deadline - performance.now()));
      const socketOptions = {
        ...(tls ? tlsConnectOptions(tls) : {}),
        noDelay: true,
        timeout: backstop,
        signal: socketCtrl.signal,
        family,
        clientProperties: { connection_name: 'vakt canary' },
      };
      const connecting = captureClientSocket(
        () => amqpConnect(url, socketOptions),
        (s) => {
          state.socket = s;
          s.on('error', noop);
        },
      ).then((m) => {
        // Errors after the handshake arrive as events; an 'error' without a listener would crash
        // the process, so the listeners go on as soon as the connection exists (even if this run
        // has stopped waiting for it).
        m.on('error', (err: Error) => {
          state.connectionError ??= err;
          state.broken?.(err);
        });
        m.on('close', () => state.broken?.(state.connectionError ?? new CanaryError('reset', 'the connection closed')));
        m.on('blocked', (reason: string) => (state.blocked = reason));
        m.on('unblocked', () => (state.blocked = undefined));
        return m;
      });
      model = await raceAbort(connecting, signal);
      line.end();
      if (tls) {
        // amqplib keeps its socket as `connection.stream` (not in its types): the TLS facts come from there.
        const stream = (model.connection as unknown as { stream?: unknown }).stream;
        if (stream instanceof TLSSocket) {
          const facts = certFacts(stream);
          info = { ...info, ...facts.info };
          earliestExpiry = facts.earliestExpiry;
        }
      }

      line.begin('channel');
      const channel = await raceAbort(model.createConfirmChannel(), signal);
      ch = channel;
      channel.on('error', (err: Error) => {
        state.channelError ??= err;
        state.broken?.(err);
      });
      channel.on('return', (msg: Message) => {
        const f = msg.fields as Partial<Returned>;
        state.returned ??= { replyCode: f.replyCode ?? 0, replyText: f.replyText ?? '', exchange: f.exchange ?? '', routingKey: f.routingKey ?? '' };
      });
      let queue: string;
      if (o.queue !== undefined) {
        // Passive: the named queue must exist; the probe never creates or changes broker objects.
        queue = (await raceAbort(channel.checkQueue(o.queue), signal)).queue;
      } else {
        const q = await raceAbort(
          channel.assertQueue('', {
            exclusive: true,
            autoDelete: true,
            durable: false,
            arguments: { 'x-expires': Math.max(1000, o.messageTtl), 'x-message-ttl': o.messageTtl },
          }),
          signal,
        );
        queue = q.queue;
      }
      await raceAbort(channel.prefetch(CANARY_PREFETCH), signal);
      let delivered: number | undefined;
      let onDelivered: (() => void) | undefined;
      let onCancelled: ((err: Error) => void) | undefined;
      const arrived = new Promise<void>((resolve, reject) => {
        onDelivered = resolve;
        onCancelled = reject;
      });
      arrived.catch(noop);
      // A channel or connection the broker closes ends the wait for the canary at once.
      state.broken = (err) => onCancelled?.(err);
      if (state.channelError ?? state.connectionError) state.broken(state.channelError ?? state.connectionError!);
      await raceAbort(
        channel.consume(
          queue,
          (msg: ConsumeMessage | null) => {
            if (msg === null) {
              onCancelled?.(new CanaryError('queue_missing', `the broker cancelled the consumer on queue "${queue}" (the queue was deleted)`));
              return;
            }
            if (!isCanary(msg)) {
              // Not ours to take: left unacknowledged, it returns to the queue when the channel closes.
              foreign++;
              return;
            }
            channel.ack(msg);
            if (msg.properties.messageId === id && delivered === undefined) {
              delivered = now();
              onDelivered?.();
            } else {
              stale++;
            }
          },
          { noAck: false, consumerTag: `${id}-consumer` },
        ),
        signal,
      );
      line.end();

      line.begin('publish');
      const exchange = o.exchange;
      const routingKey = exchange === '' ? queue : (o.routingKey ?? queue);
      const publishedAt = Date.now();
      const body = Buffer.from(JSON.stringify({ vakt: 'canary', id, publishedAt: new Date(publishedAt).toISOString() }));
      const confirmed = new Promise<void>((resolve, reject) => {
        channel.publish(
          exchange,
          routingKey,
          body,
          {
            messageId: id,
            correlationId: id,
            timestamp: Math.floor(publishedAt / 1000),
            expiration: String(o.messageTtl),
            headers: { [CANARY_HEADER]: CANARY_VERSION, 'x-vakt-published-ms': publishedAt },
            contentType: 'application/json',
            deliveryMode: 1,
            mandatory: true,
            appId: 'vakt',
          },
          // A nack is the broker refusing the message (an internal error, a full queue with reject-publish).
          (err: unknown) =>
            err === null || err === undefined
              ? resolve()
              : reject(
                  err instanceof Error && err.message !== 'message nacked'
                    ? err
                    : new CanaryError('protocol', 'the broker nacked the canary (it did not take responsibility for it)'),
                ),
        );
      });
      confirmed.catch(noop);
      // transit starts with the publish and overlaps it (a broker may deliver before it confirms).
      transitStart = now();
      await line.time('publish', () => raceAbort(confirmed, signal));
      // A mandatory message the broker could not route comes back (basic.return) before its confirm.
      if (state.returned) {
        const r = state.returned;
        throw new CanaryError(
          'queue_missing',
          `the broker could not route the canary to a queue: ${r.replyCode} ${r.replyText} (exchange "${r.exchange}", routing key "${r.routingKey}")`,
        );
      }

      line.begin('transit');
      await raceAbort(arrived, signal);
      phases.transit = (delivered ?? now()) - transitStart;
    } catch (err) {
      const phase = line.current as Phase;
      const c = classifyAmqp(err, phase, state, {
        tls: tls !== undefined,
        username: o.username,
        vhost: o.vhost,
        redactor: runRedactor({ ...ctx.secrets, password }),
      });
      // A refusal is the broker's answer: the phase ran to its end and is timed.
      if (c.answered && phase === 'transit') phases.transit ??= now() - transitStart;
      else if (c.answered) line.stop();
      failure = { phase, reason: c.reason, message: c.message };
      if (phase === 'transit' && c.reason === 'timeout' && foreign > 0) {
        failure.message += ` (${foreign} messages that are not vakt canaries were delivered from the queue instead: the canary queue must be dedicated to the canary)`;
      }
    } finally {
      conversation.done();
      ctx.budget.signal.removeEventListener('abort', onParent);
      await close(ch, model, ctx);
      socketCtrl.abort(new ProbeAbortError('run ended'));
    }

    if (stale > 0) ctx.log.info({ stale }, 'dropped canaries of earlier runs found on the queue');
    if (foreign > 0)
      ctx.log.warn(
        { foreign },
        'messages that are not vakt canaries were delivered from the canary queue and left unacknowledged (the queue should be dedicated to the canary)',
      );
    return connectionResult({ phases, values, info, failure, slow: () => slowTransit(phases, o), tls, earliestExpiry });
  },
};

/** What the session's event listeners saw, for the classification of a failure. */
interface SessionState {
  /** The plain TCP socket amqplib opened (undefined with TLS). */
  socket: Socket | undefined;
  channelError: Error | undefined;
  connectionError: Error | undefined;
  /** The broker's reason for blocking publishers (connection.blocked: a memory or disk alarm). */
  blocked: string | undefined;
  returned: Returned | undefined;
  /** Set while the run waits for its canary: called when the broker closes the channel or connection. */
  broken: ((err: Error) => void) | undefined;
}

/** A basic.return: the broker could not route a mandatory message. */
interface Returned {
  replyCode: number;
  replyText: string;
  exchange: string;
  routingKey: string;
}

/** A failure the probe decided itself, with its reason. */
class CanaryError extends Error {
  override readonly name = 'CanaryError';
  constructor(
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
  }
}

function noop(): void {}

/** A vakt canary carries the marker header (this run's, or an earlier run's). */
export function isCanary(msg: Pick<ConsumeMessage, 'properties'>): boolean {
  const headers = msg.properties.headers as Record<string, unknown> | undefined;
  return headers !== undefined && headers[CANARY_HEADER] !== undefined;
}

/**
 * Calls `connect` (which must create its socket synchronously, as amqplib's does) and hands the
 * first client TCP socket node:net creates meanwhile to `onSocket`. JavaScript runs one call at a
 * time, so the socket is this call's.
 */
function captureClientSocket<T>(connect: () => T, onSocket: (s: Socket) => void): T {
  let seen = false;
  const subscriber = (message: unknown) => {
    if (seen) return;
    const s = (message as { socket?: unknown } | null)?.socket;
    if (s && typeof s === 'object') {
      seen = true;
      onSocket(s as Socket);
    }
  };
  netClientSocket.subscribe(subscriber);
  try {
    return connect();
  } finally {
    netClientSocket.unsubscribe(subscriber);
  }
}

/**
 * Ends the session: the channel first (its close follows the acks on the same channel, so they
 * reach the broker; what was delivered and not acked goes back to the queue), then the
 * connection. Both waited for at most CLOSE_WAIT_MS together (never past the deadline), not at
 * all after an abort; the socket is destroyed afterwards in any case.
 */
async function close(ch: ConfirmChannel | undefined, model: ChannelModel | undefined, ctx: ProbeContext<AmqpOptions, Endpoint>): Promise<void> {
  if (!model || ctx.budget.signal.aborted) return;
  const wait = Math.min(CLOSE_WAIT_MS, Math.max(0, ctx.budget.deadline - performance.now()));
  let timer: NodeJS.Timeout | undefined;
  const closing = (async () => {
    // A channel the broker already closed rejects at once.
    if (ch) await ch.close().catch(noop);
    await model.close().catch(noop);
  })();
  await Promise.race([closing, new Promise<void>((resolve) => (timer = setTimeout(resolve, wait)))]);
  clearTimeout(timer);
}

/** A successful run whose transit took longer than transitDegradedAbove: the message saying so. */
export function slowTransit(phases: Readonly<Record<string, number>>, o: Pick<AmqpOptions, 'transitDegradedAbove'>): string | undefined {
  const limit = o.transitDegradedAbove;
  const took = phases.transit;
  if (limit === undefined || took === undefined || took * 1000 <= limit) return undefined;
  return `transit took ${fmt(took)}, above transitDegradedAbove ${fmt(limit / 1000)}`;
}

function fmt(seconds: number): string {
  return seconds < 1 ? `${Math.round(seconds * 1000)}ms` : `${seconds.toFixed(2)}s`;
}

// ---------------------------------------------------------------------------------------------
// Classification. After the handshake, broker refusals carry their AMQP reply code (`code` on
// amqplib's channel errors). During the handshake amqplib reports what happened in its own
// messages only (no codes), so those few, written by amqplib and not by the peer, are matched.

export interface AmqpClassification {
  reason: FailureReason;
  message: string;
  /** The broker answered (a refusal, a close with a reply code): the phase ran to its end. */
  answered?: boolean;
}

/** AMQP 0-9-1 reply codes by number, for messages. */
const REPLY_NAMES: Readonly<Record<number, string>> = {
  311: 'CONTENT_TOO_LARGE',
  312: 'NO_ROUTE',
  313: 'NO_CONSUMERS',
  320: 'CONNECTION_FORCED',
  402: 'INVALID_PATH',
  403: 'ACCESS_REFUSED',
  404: 'NOT_FOUND',
  405: 'RESOURCE_LOCKED',
  406: 'PRECONDITION_FAILED',
  501: 'FRAME_ERROR',
  502: 'SYNTAX_ERROR',
  503: 'COMMAND_INVALID',
  504: 'CHANNEL_ERROR',
  505: 'UNEXPECTED_FRAME',
  506: 'RESOURCE_ERROR',
  530: 'NOT_ALLOWED',
  540: 'NOT_IMPLEMENTED',
  541: 'INTERNAL_ERROR',
};

/** The classification of a broker's reply code (a channel or connection close) in `phase`. */
export function classifyReplyCode(code: number, text: string, phase: string): AmqpClassification {
  const what = `${REPLY_NAMES[code] ?? 'reply'} (${code})${text ? `: ${text.slice(0, 300)}` : ''}`;
  if (code === 403) return { reason: 'auth', message: `${phase}: the broker refused access: ${what}`, answered: true };
  if (code === 404) return { reason: 'queue_missing', message: `${phase}: ${what}`, answered: true };
  if (code === 320) return { reason: 'reset', message: `${phase}: the broker closed the connection: ${what}` };
  return { reason: 'protocol', message: `${phase}: ${what}`, answered: true };
}

interface ClassifyContext {
  tls: boolean;
  username: string;
  vhost: string;
  /** Applied to every text that comes from the broker or a library (the check's secrets, in every form). */
  redactor: Redactor;
}

/**
 * Maps an error of the run (amqplib's, a socket's, the probe's own) to a failure reason. `state`
 * is what the session's listeners saw: the broker's channel or connection close explains a
 * generic "channel closed"; the plain socket tells whether the login had been sent.
 */
export function classifyAmqp(
  err: unknown,
  phase: string,
  state: Pick<SessionState, 'socket' | 'channelError' | 'connectionError' | 'blocked'>,
  c: ClassifyContext,
): AmqpClassification {
  const clean = (text: string) => c.redactor.scrub(text);
  if (err instanceof CanaryError) return { reason: err.reason, message: clean(err.message) };
  if (err instanceof ProbeAbortError) {
    if (phase === 'publish' && state.blocked !== undefined)
      return {
        reason: 'timeout',
        message: `publish not confirmed before the run's deadline: the broker blocks publishers (${clean(state.blocked.slice(0, 200))})`,
      };
    if (phase === 'transit') return { reason: 'timeout', message: "the canary was confirmed but not delivered back before the run's deadline" };
    return { reason: 'timeout', message: `${phase} did not complete before the run's deadline` };
  }
  // A close by the broker is the real cause behind amqplib's generic "channel closed".
  const server = replyOf(err) ?? replyOf(state.channelError) ?? replyOf(state.connectionError);
  if (server) return classifyReplyCode(server.code, clean(server.text), phase);

  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (typeof e?.code === 'string') return { reason: classifyError(err), message: `${phase}: ${clean(describeError(err))}` };
  // amqplib's socket idle timeout (the backstop at the deadline) has no code.
  if (message === 'connect ETIMEDOUT') return { reason: 'timeout', message: `${phase}: the broker did not answer before the run's deadline` };

  if (phase === 'connect') {
    const terminated = /^Handshake terminated by server: (\d+) \([^)]*\) with message "(.*)"$/s.exec(message);
    if (terminated) {
      const code = Number(terminated[1]);
      const text = clean((terminated[2] as string).slice(0, 300));
      if (code === 403)
        return { reason: 'auth', message: `the broker refused the login of user "${c.username}": ${REPLY_NAMES[code]} (${code}): ${text}`, answered: true };
      return classifyReplyCode(code, text, 'connect');
    }
    if (/^Expected ConnectionOpenOk; got <ConnectionClose/.test(message)) {
      return {
        reason: 'auth',
        message: `the broker refused to open virtual host "${c.vhost}" for user "${c.username}" (it does not exist, or the user has no permission on it)`,
        answered: true,
      };
    }
    if (/^SASL mechanism \S+ is not provided by the server/.test(message))
      return { reason: 'auth', message: `the broker does not accept PLAIN logins: ${clean(message.slice(0, 200))}`, answered: true };
    if (message === 'Socket closed abruptly during opening handshake') {
      // Brokers that ignore the authentication_failure_close capability refuse a login (or a
      // virtual host) by closing the connection. A peer that closes before the login was sent
      // never answered the protocol header: not an AMQP 0-9-1 broker, or one that wants TLS.
      // With TLS the socket is not seen; a peer that completed the TLS handshake is taken as a broker.
      const loginSent = state.socket === undefined ? c.tls : state.socket.bytesWritten > PROTOCOL_HEADER_BYTES;
      if (loginSent)
        return {
          reason: 'auth',
          message: `the broker closed the connection during the handshake after the login of user "${c.username}" was sent (a refused login or virtual host "${c.vhost}")`,
        };
      return {
        reason: 'protocol',
        message: 'the peer closed the connection without answering the AMQP 0-9-1 protocol header (not an AMQP 0-9-1 broker, or a TLS port)',
      };
    }
    const frame = /^Frame size (\d+) exceeds maxFrameSize/.exec(message);
    if (frame) {
      // A broker that does not speak 0-9-1 answers with its own protocol header, "AMQP" and four
      // version bytes; read as a frame header, its "P" is the top byte of the frame size.
      if (Number(frame[1]) >>> 24 === 0x50)
        return { reason: 'protocol', message: 'the peer answered with an AMQP protocol header of another version: it does not speak AMQP 0-9-1' };
      return { reason: 'protocol', message: `the peer does not speak AMQP 0-9-1 (its first bytes announce a frame of ${frame[1]} bytes)` };
    }
  }
  return { reason: 'protocol', message: `${phase}: ${clean(describeError(err))}` };
}

/** The broker's reply code and text carried by an amqplib error (a channel or connection closed by the broker). */
function replyOf(err: unknown): { code: number; text: string } | undefined {
  const e = err as { code?: unknown; message?: unknown } | null | undefined;
  if (typeof e?.code !== 'number' || e.code < 300) return undefined;
  const text = typeof e.message === 'string' ? (/with message "(.*)"$/s.exec(e.message)?.[1] ?? e.message) : '';
  return { code: e.code, text };
}
