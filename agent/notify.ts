// Webhooks (agent.notify.webhooks): every notice (agent/notices.ts) the journal makes is POSTed
// to each receiver that wants its event, as vakt's plain JSON, a Slack-style {"text"} or a Teams
// Adaptive Card message, signed with HMAC-SHA256 over "<timestamp>.<body>". Each receiver has a
// bounded queue (past it the oldest notice is dropped and counted) and one delivery in flight at
// a time, in order; an attempt has a deadline for the whole exchange and reads at most 64 KiB of
// the answer; network errors, 408, 429 and 5xx are tried again with backoff (a Retry-After is
// honoured, bounded), other 4xx are not. A slow, dead or hostile receiver costs a socket and a
// timer, never the loop that measures and never unbounded memory. incident.updated and
// maintenance.updated wait agent.notify.updateDelay for further changes and only the latest is
// sent. Secrets (the HMAC key, the URL's credentials and tokens) never reach the log: the URL is
// logged redacted, and every body passes the agent's redactor.
import { createHmac, randomUUID } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import { redactUrl, type NotifyConfig, type WebhookConfig } from '../config/notify.js';
import type { Language } from '../probes/kit/kind.js';
import type { JournalRecord } from './journal.js';
import { incidentId, noticeOf, noticePayload, type Notice, type NoticeContext } from './notices.js';
import { VERSION } from './version.js';

/** The longest wait between attempts, whatever the backoff or a Retry-After says. */
export const MAX_RETRY_WAIT_MS = 5 * 60_000;
/** The most of an answer's body that is read (then the connection is closed). */
const MAX_ANSWER_BYTES = 64 * 1024;
/** A receiver's trouble is logged at most this often. */
const LOG_EVERY_MS = 60_000;

/** What the metrics say of one webhook. */
export interface WebhookFigures {
  name: string;
  delivered: number;
  failed: number;
  dropped: number;
  /** Notices waiting (the one being delivered not counted). */
  queued: number;
}

export interface NotifierHooks {
  /** How notices are told in a language (titles, time zone, public URL, labels). */
  context(language: Language): NoticeContext;
  /** Whether a check is in planned work now: an incident it causes then is not told (the window was). */
  planned(check: string): boolean;
  /** The agent's redactor: every body passes it. */
  scrub(text: string): string;
}

interface Item {
  notice: Notice;
  /** X-Vakt-Delivery: the same for every attempt, so a receiver can drop a repeat. */
  id: string;
  /** What an update replaces: the incident's or the window's key. */
  key: string | undefined;
}

/** One attempt's outcome. */
type Attempt = { ok: true; status: number } | { ok: false; retry: boolean; why: string; retryAfterMs?: number };

class Receiver {
  readonly queue: Item[] = [];
  busy = false;
  stopped = false;
  delivered = 0;
  failed = 0;
  dropped = 0;
  private loggedAt = 0;
  abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(public config: WebhookConfig) {}

  /** Whether to log now (at most once a minute per receiver). */
  shouldLog(now: number): boolean {
    if (now - this.loggedAt < LOG_EVERY_MS) return false;
    this.loggedAt = now;
    return true;
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
      this.timer.unref();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    this.abort?.abort();
  }
}

export class Notifier {
  private readonly receivers = new Map<string, Receiver>();
  /** Updates waiting for agent.notify.updateDelay, by incident or window. */
  private readonly held = new Map<string, { notice: Notice; timer: NodeJS.Timeout }>();
  /** Incidents whose cause was in planned work when they opened: not told, nor their updates and close. */
  private readonly quiet = new Set<string>();
  private updateDelayMs = 0;
  private stopped = false;

  constructor(
    config: NotifyConfig,
    private readonly hooks: NotifierHooks,
    private readonly log: Logger,
  ) {
    this.configure(config);
  }

  /** Takes the webhooks of a (re)loaded config: a receiver that stays keeps its queue and counts. */
  configure(config: NotifyConfig): void {
    this.updateDelayMs = config.updateDelayMs;
    const names = new Set(config.webhooks.map((w) => w.name));
    for (const [name, r] of this.receivers) {
      if (names.has(name)) continue;
      r.stop();
      this.receivers.delete(name);
    }
    for (const w of config.webhooks) {
      const r = this.receivers.get(w.name);
      if (!r) {
        this.receivers.set(w.name, new Receiver(w));
        continue;
      }
      r.config = w;
      while (r.queue.length > w.queue) {
        r.queue.shift();
        r.dropped++;
      }
    }
  }

  /** A journal record appended: its notice, if it makes one, goes to every receiver that wants it. */
  record(rec: JournalRecord): void {
    if (this.stopped || this.receivers.size === 0) return;
    const n = noticeOf(rec);
    if (!n) return;
    const key = keyOf(n);
    if ('incident' in n) {
      if (n.event === 'incident.opened' && this.hooks.planned(n.incident.cause)) this.quiet.add(key);
      if (this.quiet.has(key)) {
        if (n.event === 'incident.closed') this.quiet.delete(key);
        return;
      }
    }
    if (n.event === 'incident.updated' || n.event === 'maintenance.updated') {
      this.hold(key, n);
      return;
    }
    // What closes an incident or a window says more than an update still waiting.
    const waiting = this.held.get(key);
    if (waiting) {
      clearTimeout(waiting.timer);
      this.held.delete(key);
    }
    this.enqueue(n, key);
  }

  /** Per webhook: deliveries by result and notices waiting. */
  figures(): WebhookFigures[] {
    return [...this.receivers.values()].map((r) => ({
      name: r.config.name,
      delivered: r.delivered,
      failed: r.failed,
      dropped: r.dropped,
      queued: r.queue.length,
    }));
  }

  /** Stops every delivery (in-flight requests are aborted; what waits is dropped). */
  stop(): void {
    this.stopped = true;
    for (const h of this.held.values()) clearTimeout(h.timer);
    this.held.clear();
    for (const r of this.receivers.values()) r.stop();
  }

  private hold(key: string, n: Notice): void {
    const waiting = this.held.get(key);
    if (waiting) {
      waiting.notice = n;
      return;
    }
    if (this.updateDelayMs <= 0) {
      this.enqueue(n, key);
      return;
    }
    const timer = setTimeout(() => {
      const h = this.held.get(key);
      this.held.delete(key);
      if (h && !this.stopped) this.enqueue(h.notice, key);
    }, this.updateDelayMs);
    timer.unref();
    this.held.set(key, { notice: n, timer });
  }

  private enqueue(n: Notice, key: string): void {
    const id = randomUUID();
    for (const r of this.receivers.values()) {
      if (!r.config.events.includes(n.event)) continue;
      const item: Item = { notice: n, id, key };
      // An update still waiting for this receiver is replaced in place: the newest word, at the place in line of the first.
      const stale = n.event.endsWith('.updated') ? r.queue.findIndex((q) => q.key === key && q.notice.event === n.event) : -1;
      if (stale >= 0) {
        r.queue[stale] = item;
        continue;
      }
      while (r.queue.length >= r.config.queue) {
        r.queue.shift();
        r.dropped++;
        if (r.shouldLog(Date.now()))
          this.log.warn(
            { webhook: r.config.name, url: redactUrl(r.config.url), queue: r.config.queue, dropped: r.dropped },
            'webhook queue full: oldest notice dropped',
          );
      }
      r.queue.push(item);
      void this.pump(r);
    }
  }

  /** Delivers a receiver's queue in order, one at a time; never rejects. */
  private async pump(r: Receiver): Promise<void> {
    if (r.busy) return;
    r.busy = true;
    try {
      for (let item = r.queue.shift(); item && !r.stopped; item = r.queue.shift()) await this.deliver(r, item);
    } catch (err) {
      this.log.error({ webhook: r.config.name, err: (err as Error).message }, 'webhook delivery failed unexpectedly');
    } finally {
      r.busy = false;
    }
    // Something may have come while the last delivery ended.
    if (r.queue.length > 0 && !r.stopped) void this.pump(r);
  }

  private async deliver(r: Receiver, item: Item): Promise<void> {
    const cfg = r.config;
    const body = this.hooks.scrub(JSON.stringify(render(cfg, item.notice, this.hooks.context(cfg.language))));
    for (let attempt = 1; ; attempt++) {
      const a = await send(r, body, item);
      if (r.stopped) return;
      if (a.ok) {
        r.delivered++;
        this.log.debug({ webhook: cfg.name, event: item.notice.event, delivery: item.id, status: a.status, attempt }, 'webhook delivered');
        return;
      }
      if (!a.retry || attempt >= cfg.attempts) {
        r.failed++;
        if (r.shouldLog(Date.now()))
          this.log.warn(
            { webhook: cfg.name, url: redactUrl(cfg.url), event: item.notice.event, delivery: item.id, attempts: attempt, why: a.why },
            a.retry ? 'webhook not delivered: attempts used up' : 'webhook not delivered: the receiver refused it',
          );
        return;
      }
      const backoff = Math.min(cfg.retryDelayMs * 2 ** (attempt - 1), MAX_RETRY_WAIT_MS);
      await r.sleep(Math.min(Math.max(backoff, a.retryAfterMs ?? 0), MAX_RETRY_WAIT_MS));
      if (r.stopped) return;
    }
  }
}

/** The body a receiver gets, in its format. Documented in docs/api.md. */
export function render(cfg: Pick<WebhookConfig, 'format'>, n: Notice, ctx: NoticeContext): unknown {
  const p = noticePayload(n, ctx);
  if (cfg.format === 'slack') return { text: slackEscape(p.url !== null ? `${p.text} ${p.url}` : p.text) };
  if (cfg.format === 'teams') {
    return {
      type: 'message',
      attachments: [
        {
          contentType: 'application/vnd.microsoft.card.adaptive',
          contentUrl: null,
          content: {
            $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
            type: 'AdaptiveCard',
            version: '1.4',
            body: [
              { type: 'TextBlock', text: p.title, weight: 'Bolder', size: 'Medium', wrap: true },
              { type: 'TextBlock', text: p.text, wrap: true },
            ],
            ...(p.url !== null ? { actions: [{ type: 'Action.OpenUrl', title: p.url, url: p.url }] } : {}),
          },
        },
      ],
    };
  }
  return p;
}

/** Slack reads &, < and > as markup: written as entities, they show as themselves. */
function slackEscape(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c] as string);
}

/** X-Vakt-Signature: "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<body>" with the webhook's secret. */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What an update replaces and a close cancels: the incident or the window it is about. */
function keyOf(n: Notice): string {
  if ('incident' in n) return `incident ${incidentId(n.incident)}`;
  if ('window' in n) return `window ${n.window.id}`;
  return `change ${n.change.window} ${n.change.check}`;
}

/** One POST: settles on the answer (read up to 64 KiB), an error, or the deadline; never rejects. */
function send(r: Receiver, body: string, item: Item): Promise<Attempt> {
  const cfg = r.config;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const url = new URL(cfg.url);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Attempt>((resolve) => {
    const abort = new AbortController();
    r.abort = abort;
    let status: number | undefined;
    let retryAfter: string | undefined;
    let settled = false;
    const settle = (a: Attempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (r.abort === abort) r.abort = undefined;
      abort.abort();
      resolve(a);
    };
    const answered = () => (status === undefined ? undefined : judge(status, retryAfter));
    const timer = setTimeout(() => settle(answered() ?? { ok: false, retry: true, why: 'timeout' }), cfg.timeoutMs);
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      'User-Agent': `vakt/${VERSION}`,
      'X-Vakt-Event': item.notice.event,
      'X-Vakt-Delivery': item.id,
      'X-Vakt-Timestamp': timestamp,
      ...(cfg.secret !== undefined ? { 'X-Vakt-Signature': signature(cfg.secret, timestamp, body) } : {}),
    };
    let req: ClientRequest;
    try {
      req = request(
        url,
        { method: 'POST', headers, signal: abort.signal, agent: false, ...(cfg.ca !== undefined ? { ca: cfg.ca } : {}) },
        (res: IncomingMessage) => {
          status = res.statusCode ?? 0;
          retryAfter = res.headers['retry-after'];
          let read = 0;
          res.on('data', (chunk: Buffer) => {
            read += chunk.length;
            // Enough of it: what matters was in the status line.
            if (read > MAX_ANSWER_BYTES) settle(answered() as Attempt);
          });
          res.on('error', () => settle(answered() as Attempt));
          res.on('end', () => settle(answered() as Attempt));
          res.on('close', () => settle(answered() as Attempt));
        },
      );
    } catch (err) {
      settle({ ok: false, retry: false, why: (err as NodeJS.ErrnoException).code ?? 'request refused' });
      return;
    }
    req.on('error', (err: NodeJS.ErrnoException) => settle(answered() ?? { ok: false, retry: true, why: err.code ?? err.name }));
    req.end(body);
  });
}

/** An answer's status as an attempt's outcome: 2xx delivered; 408, 429, 5xx tried again (after Retry-After); other codes refused. */
function judge(status: number, retryAfter: string | undefined): Attempt {
  if (status >= 200 && status < 300) return { ok: true, status };
  const retry = status === 408 || status === 429 || status >= 500;
  const wait = retry ? retryAfterMs(retryAfter) : undefined;
  return { ok: false, retry, why: `HTTP ${status}`, ...(wait !== undefined ? { retryAfterMs: wait } : {}) };
}

/** Retry-After as milliseconds from now: delay-seconds or an HTTP date (RFC 9110 10.2.3). */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_WAIT_MS);
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.min(Math.max(at - now, 0), MAX_RETRY_WAIT_MS) : undefined;
}
