// Who is asking: checks the credentials of a request to the agent's own server against
// agent.web (basic-auth users with bcrypt hashes, bearer tokens, a verified client certificate)
// and decides by route class. Comparisons take the same time whether a name or a token is
// known or not: tokens are compared as SHA-256 digests with timingSafeEqual, all of them every
// time; an unknown user is checked against a dummy hash, as a known one against its own.
// bcrypt is slow on purpose (~70 ms at cost 10), so it runs on a thread of its own, never on the
// loop that takes the probes' timestamps, with a bounded queue; a password that verified is
// remembered (by its digest) so Prometheus scraping every few seconds costs one bcrypt in all.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Worker } from 'node:worker_threads';
import { isLoopback, type AccessRule, type RouteClass, type WebConfig } from '../config/web.js';

/** The routes of each class. Anything else is 404 whoever asks. */
export function routeClass(path: string, method = 'GET'): RouteClass | undefined {
  if (path === '/' || path === '/feed.atom' || path === '/healthz' || path === '/readyz') return 'status';
  if (path === '/-/reload') return 'admin';
  // Planned work and change verification: reading is `read`, changing is `admin`.
  if (path === '/api/v1/maintenance' || /^\/api\/v1\/(maintenance|changes)\/[^/]+$/.test(path) || path === '/api/v1/changes')
    return method === 'GET' || method === 'HEAD' ? 'read' : 'admin';
  if (
    path === '/metrics' ||
    path === '/api/v1/checks' ||
    path === '/api/v1/incidents' ||
    path === '/api/v1/availability' ||
    path === '/api/v1/services' ||
    /^\/api\/v1\/(checks|services)\/[^/]+$/.test(path)
  )
    return 'read';
  return undefined;
}

export type Decision =
  | { allow: true; who?: string }
  /** 401: no credential, or a wrong one. */
  | { allow: false; status: 401; why: string }
  /** 403: a valid credential without the right, or a client from another host on a loopback-only route. */
  | { allow: false; status: 403; why: string }
  /** 429: too many password checks queued (someone is guessing). */
  | { allow: false; status: 429; why: string };

/** bcrypt checks waiting or running at most; past it a request gets 429. */
const MAX_PENDING = 32;
/** Verified passwords remembered (digests only). */
const CACHE_SIZE = 256;
/** A valid bcrypt hash (of a random password) for users that do not exist. */
const DUMMY_HASH = '$2b$10$VUlYt6NGD2BlLxphnVC0Ju4hc1D.PUCpnwgoda3azbK44DOnQ8vaG';

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest();

export class WebAuth {
  private tokens: { name: string; digest: Buffer }[] = [];
  private users = new Map<string, string>();
  private access: Record<RouteClass, AccessRule> = { status: 'open', read: 'open', admin: 'loopback' };
  private readonly verified = new Map<string, string>();
  private dummy = DUMMY_HASH;
  private certsVerified = false;
  private worker: BcryptThread | undefined;
  /** Refused requests by why (for the agent's metrics). */
  readonly refused = { unauthenticated: 0, forbidden: 0, throttled: 0 };
  /** Passwords checked with bcrypt (an unknown user's too: the answer takes as long either way). */
  bcryptRuns = 0;

  constructor(web: WebConfig) {
    this.update(web);
  }

  /** Takes new users, tokens and access rules (a reload). */
  update(web: WebConfig): void {
    this.tokens = Object.entries(web.tokens).map(([name, value]) => ({ name, digest: sha256(value) }));
    this.users = new Map(Object.entries(web.users));
    // An unknown user is checked against the costliest configured hash, so it takes as long as a
    // known user would (htpasswd -B defaults to cost 5, far cheaper than a fixed dummy of cost 10).
    const cost = (h: string) => Number(/^\$2[abxy]?\$(\d\d)\$/.exec(h)?.[1] ?? 0);
    this.dummy = [...this.users.values()].reduce((a, b) => (cost(b) > cost(a) ? b : a), DUMMY_HASH);
    // A client certificate is a credential only when the TLS layer verified it against
    // client_ca_file: in the other modes Node would verify against public CAs, Go not at all.
    this.certsVerified = web.tls?.clientAuth === 'VerifyClientCertIfGiven' || web.tls?.clientAuth === 'RequireAndVerifyClientCert';
    this.access = web.access;
    this.verified.clear();
  }

  get anyCredentials(): boolean {
    return this.tokens.length > 0 || this.users.size > 0;
  }

  rule(cls: RouteClass): AccessRule {
    return this.access[cls];
  }

  async decide(cls: RouteClass, req: IncomingMessage): Promise<Decision> {
    const d = await this.decideOnly(cls, req);
    if (!d.allow) this.refused[d.status === 401 ? 'unauthenticated' : d.status === 403 ? 'forbidden' : 'throttled']++;
    return d;
  }

  private async decideOnly(cls: RouteClass, req: IncomingMessage): Promise<Decision> {
    const rule = this.access[cls];
    if (rule === 'open') return { allow: true };
    if (rule === 'loopback') {
      return req.socket.remoteAddress !== undefined && isLoopback(req.socket.remoteAddress)
        ? { allow: true }
        : { allow: false, status: 403, why: `${cls} routes answer clients on this host only (agent.web.access.${cls}: loopback)` };
    }
    const who = await this.identify(req);
    if (typeof who !== 'string') return who;
    if (rule === 'authenticated' || rule.includes(who)) return { allow: true, who };
    return { allow: false, status: 403, why: `${who} may not use the ${cls} routes (agent.web.access.${cls})` };
  }

  /** The name of the credential the request carries, or why there is none. */
  private async identify(req: IncomingMessage): Promise<string | Exclude<Decision, { allow: true }>> {
    const header = req.headers.authorization;
    if (header === undefined) {
      const cert = this.certsVerified ? verifiedClient(req) : undefined;
      if (cert !== undefined) return cert;
      return { allow: false, status: 401, why: 'credentials required' };
    }
    const space = header.indexOf(' ');
    const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
    const value = space < 0 ? '' : header.slice(space + 1).trim();
    if (scheme === 'bearer') {
      const name = this.token(value);
      return name ?? { allow: false, status: 401, why: 'wrong credentials' };
    }
    if (scheme === 'basic') {
      const text = Buffer.from(value, 'base64').toString('utf8');
      const colon = text.indexOf(':');
      if (colon < 0) return { allow: false, status: 401, why: 'wrong credentials' };
      const user = text.slice(0, colon);
      const ok = await this.password(user, text.slice(colon + 1));
      if (ok === 'busy') return { allow: false, status: 429, why: 'too many password checks at once' };
      return ok ? user : { allow: false, status: 401, why: 'wrong credentials' };
    }
    return { allow: false, status: 401, why: 'unsupported authorization scheme (Basic or Bearer)' };
  }

  /** The token's name; every configured token is compared, whichever matches. */
  private token(value: string): string | undefined {
    const digest = sha256(value);
    let found: string | undefined;
    for (const t of this.tokens) if (timingSafeEqual(t.digest, digest) && found === undefined) found = t.name;
    return found;
  }

  private async password(user: string, password: string): Promise<boolean | 'busy'> {
    const hash = this.users.get(user);
    const key = sha256(`${user}\u0000${password}\u0000${hash ?? ''}`).toString('base64');
    if (hash !== undefined && this.verified.get(key) === hash) return true;
    if (this.worker?.dead) this.worker = undefined;
    this.worker ??= new BcryptThread();
    if (this.worker.pending >= MAX_PENDING) return 'busy';
    this.bcryptRuns++;
    const ok = await this.worker.compare(password, hash ?? this.dummy);
    if (!ok || hash === undefined) return false;
    if (this.verified.size >= CACHE_SIZE) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(key, hash);
    return true;
  }

  close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    return w ? w.close() : Promise.resolve();
  }
}

/** The subject CN of a client certificate the TLS layer verified, as a credential name. */
function verifiedClient(req: IncomingMessage): string | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return undefined;
  const cert = socket.getPeerCertificate();
  const cn = cert.subject?.CN;
  return `cert:${Array.isArray(cn) ? cn[0] : (cn ?? '')}`;
}

/** A thread that runs bcrypt comparisons, one at a time, in order. */
class BcryptThread {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, (ok: boolean) => void>();
  private next = 0;
  /** Ended (it failed, or ran out of memory): a new one is started for the next check. */
  dead = false;

  constructor() {
    const bcrypt = import.meta.resolve('bcryptjs');
    const code = `const { parentPort } = require('node:worker_threads');
import(${JSON.stringify(bcrypt)}).then(({ default: b }) => {
  parentPort.on('message', ({ id, password, hash }) => {
    let ok = false;
    try { ok = b.compareSync(password, hash); } catch {}
    parentPort.postMessage({ id, ok });
  });
});`;
    this.worker = new Worker(code, { eval: true, name: 'vakt-bcrypt', resourceLimits: { maxOldGenerationSizeMb: 32 } });
    this.worker.unref();
    this.worker.on('message', ({ id, ok }: { id: number; ok: boolean }) => {
      const done = this.waiting.get(id);
      this.waiting.delete(id);
      done?.(ok === true);
    });
    const failAll = () => {
      this.dead = true;
      for (const done of this.waiting.values()) done(false);
      this.waiting.clear();
    };
    this.worker.on('error', failAll);
    this.worker.on('exit', failAll);
  }

  get pending(): number {
    return this.waiting.size;
  }

  compare(password: string, hash: string): Promise<boolean> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.worker.postMessage({ id, password, hash });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
