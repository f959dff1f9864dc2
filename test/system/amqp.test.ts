// The amqp canary against a real broker: Debian's rabbitmq-server, started by the test itself on
// free ports (test/system/rabbitmq.ts), plain and amqps with a certificate of the test's own CA.
// The management HTTP API is the independent witness: what is left on a queue after the canary
// ran (canaries of timed-out runs included) is read there, not from the probe.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { amqpProbe } from '../../probes/amqp/probe.js';
import type { ProbeLogger, ProbeResult } from '../../probes/types.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { delayingProxy, requireRoot } from './helpers.js';
import { startRabbit, type Rabbit } from './rabbitmq.js';
import { targetsOf } from '../helpers/peers.js';
import { Budget } from '../../probes/kit/budget.js';

interface Logged {
  level: string;
  obj: object;
  msg: string | undefined;
}

interface Timed extends ProbeResult {
  elapsed: number;
  logged: Logged[];
}

/** One run the way the runner makes it: schema-parsed options, secrets by name, a run timeout. */
async function probe(target: string, options: Record<string, unknown>, secrets: Record<string, string>, runTimeoutMs = 3000): Promise<Timed> {
  const controller = new AbortController();
  const start = performance.now();
  const timer = setTimeout(() => controller.abort(new Error('check timeout')), runTimeoutMs);
  const logged: Logged[] = [];
  const log: ProbeLogger = {
    debug: (obj, msg) => logged.push({ level: 'debug', obj, msg }),
    info: (obj, msg) => logged.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => logged.push({ level: 'warn', obj, msg }),
  };
  try {
    const r = await amqpProbe.run({
      ...targetsOf('amqp', target),
      options: KIND_OPTIONS.amqp.parse(options),
      budget: new Budget(controller.signal, start + runTimeoutMs),
      memory: new Map(),
      log,
      secrets,
    });
    return { ...r, elapsed: (performance.now() - start) / 1000, logged };
  } finally {
    clearTimeout(timer);
  }
}

let pki: TestPki;
let rabbit: Rabbit;
let target: string;
const asVakt = { username: 'vakt', password: 'amqp_pw' };
let secrets: Record<string, string>;

/** The queue's message count as the management API reports it, once its statistics exist. */
async function messagesOn(queue: string): Promise<number | undefined> {
  const r = await rabbit.api('GET', `/queues/%2F/${encodeURIComponent(queue)}`);
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  const m = (r.json as { messages?: unknown }).messages;
  return typeof m === 'number' ? m : undefined;
}

/** Waits until the management API reports `expected` messages on the queue (statistics lag by about a second). */
async function waitForMessages(queue: string, expected: number, withinMs = 15_000): Promise<void> {
  const deadline = performance.now() + withinMs;
  let seen: number | undefined;
  while (performance.now() < deadline) {
    seen = await messagesOn(queue);
    if (seen === expected) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`queue ${queue} holds ${seen ?? 'an unknown number of'} messages after ${withinMs} ms, expected ${expected}`);
}

async function declareQueue(name: string, args: Record<string, unknown> = {}): Promise<void> {
  const r = await rabbit.api('PUT', `/queues/%2F/${encodeURIComponent(name)}`, { durable: true, auto_delete: false, arguments: args });
  expect(r.status, JSON.stringify(r.json)).toBeOneOf([201, 204]);
}

async function bind(queue: string, exchange: string, routingKey: string): Promise<void> {
  const r = await rabbit.api('POST', `/bindings/%2F/e/${encodeURIComponent(exchange)}/q/${encodeURIComponent(queue)}`, { routing_key: routingKey });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
}

/** Publishes a message that is not a canary (no marker header) through the management API. */
async function publishForeign(queue: string, payload: string): Promise<void> {
  const r = await rabbit.api('POST', '/exchanges/%2F/amq.default/publish', {
    properties: { delivery_mode: 2 },
    routing_key: queue,
    payload,
    payload_encoding: 'string',
  });
  expect(r.json).toEqual({ routed: true });
}

beforeAll(async () => {
  requireRoot();
  pki = makePki();
  const certFile = join(pki.dir, 'broker.pem');
  const keyFile = join(pki.dir, 'broker-key.pem');
  writeFileSync(certFile, pki.valid.cert);
  writeFileSync(keyFile, pki.valid.key);
  rabbit = await startRabbit({ tls: { certFile, keyFile, caFile: pki.caFile } });
  target = `127.0.0.1:${rabbit.amqpPort}`;
  secrets = { amqp_pw: rabbit.vakt.password };
});

afterAll(async () => {
  await rabbit?.stop();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('amqp canary against rabbitmq-server', () => {
  it('end to end through a server-named queue: every phase timed, transit well under a second, no queue left behind', async () => {
    const transits: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await probe(target, asVakt, secrets);
      expect(r.failure, rabbit.log().slice(-2000)).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(Object.keys(r.phases)).toEqual(['connect', 'channel', 'publish', 'transit']);
      for (const p of Object.values(r.phases)) expect(p).toBeGreaterThan(0);
      expect(r.phases.transit).toBeLessThan(1);
      expect(r.values).toEqual({ ip_protocol: 4 });
      expect(r.degraded).toBeUndefined();
      transits.push(r.phases.transit!);
    }
    transits.sort((a, b) => a - b);
    console.log(
      `amqp canary transit against rabbitmq-server: median ${(transits[5]! * 1000).toFixed(2)} ms, max ${(transits[9]! * 1000).toFixed(2)} ms over 10 runs`,
    );
    // The exclusive queue went with its connection.
    const queues = await rabbit.api('GET', '/queues/%2F');
    expect((queues.json as { name: string }[]).filter((q) => q.name.startsWith('amq.gen-'))).toEqual([]);
  });

  it('over amqps with the CA: ok, with the certificate facts', async () => {
    const r = await probe(`127.0.0.1:${rabbit.amqpsPort}`, { ...asVakt, tls: { caFile: pki.caFile, serverName: 'service.test' } }, secrets);
    expect(r.failure, rabbit.log().slice(-2000)).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.info?.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    expect(r.values?.ssl_earliest_cert_expiry).toBeGreaterThan(Date.now() / 1000);
    const untrusted = await probe(`127.0.0.1:${rabbit.amqpsPort}`, { ...asVakt, tls: true }, secrets);
    expect(untrusted.failure).toMatchObject({ phase: 'connect', reason: 'tls_handshake' });
  });

  it('a transit over transitDegradedAbove makes the run degraded (slow), naming transit', async () => {
    // Between probe and broker, a proxy that holds every byte from the broker for 40 ms: the
    // canary comes back at least 40 ms after it was published.
    const proxy = await delayingProxy(rabbit.amqpPort, 40, { direction: 'down' });
    try {
      const r = await probe(`127.0.0.1:${proxy.port}`, { ...asVakt, transitDegradedAbove: '30ms' }, secrets);
      expect(r.failure).toBeUndefined();
      expect(r.phases.transit).toBeGreaterThan(0.04);
      expect(r.degraded?.reason).toBe('slow');
      expect(r.degraded?.message).toMatch(/^transit took \d+ms, above transitDegradedAbove 30ms$/);
      const fast = await probe(target, { ...asVakt, transitDegradedAbove: '30ms' }, secrets);
      expect(fast.degraded).toBeUndefined();
    } finally {
      await proxy.close();
    }
  });

  it('a wrong password is auth in connect, and the password is nowhere in the result or the log', async () => {
    const wrong = 'Wrong-Passw0rd-for-vakt';
    const r = await probe(target, asVakt, { amqp_pw: wrong });
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    expect(r.failure?.message).toContain('refused the login of user "vakt"');
    expect(r.failure?.message).toContain('ACCESS_REFUSED');
    expect(r.phases.connect).toBeGreaterThan(0);
    expect(JSON.stringify(r)).not.toContain(wrong);
    expect(rabbit.log()).not.toContain(wrong);
  });

  it('a virtual host the user may not open is auth; a missing queue is queue_missing', async () => {
    const restricted = await rabbit.api('PUT', '/vhosts/restricted');
    expect(restricted.status).toBeOneOf([201, 204]);
    const denied = await probe(target, { ...asVakt, vhost: 'restricted' }, secrets);
    expect(denied.failure).toMatchObject({ phase: 'connect', reason: 'auth' });
    expect(denied.failure?.message).toContain('virtual host "restricted"');
    const monitoring = await probe(target, { username: 'monitoring', password: 'mon_pw' }, { mon_pw: rabbit.monitoring.password });
    expect(monitoring.failure).toMatchObject({ phase: 'connect', reason: 'auth' });

    const missing = await probe(target, { ...asVakt, queue: 'no-such-canary-queue' }, secrets);
    expect(missing.failure).toMatchObject({ phase: 'channel', reason: 'queue_missing' });
    expect(missing.failure?.message).toContain("no queue 'no-such-canary-queue'");
    const noExchange = await probe(target, { ...asVakt, queue: 'vakt.canary.exchange', exchange: 'no-such-exchange' }, secrets);
    expect(noExchange.failure?.reason).toBe('queue_missing');
  });

  it('through an exchange and routing key; an unroutable key is queue_missing', async () => {
    await declareQueue('vakt.canary.exchange');
    await bind('vakt.canary.exchange', 'amq.direct', 'canary.site1');
    const r = await probe(target, { ...asVakt, queue: 'vakt.canary.exchange', exchange: 'amq.direct', routingKey: 'canary.site1' }, secrets);
    expect(r.failure).toBeUndefined();
    expect(r.phases.transit).toBeLessThan(1);
    const unroutable = await probe(target, { ...asVakt, queue: 'vakt.canary.exchange', exchange: 'amq.direct', routingKey: 'canary.nobody' }, secrets);
    expect(unroutable.failure).toMatchObject({ phase: 'publish', reason: 'queue_missing' });
    expect(unroutable.failure?.message).toContain('NO_ROUTE');
  });

  it('a named queue holds no canary after many runs, timed-out runs included: stale canaries are dropped, the rest expire', async () => {
    // The canary queue has no TTL of its own: only the per-message expiration can clean it.
    await declareQueue('vakt.canary');
    await declareQueue('vakt.canary.decoy');
    await bind('vakt.canary', 'amq.direct', 'to-canary');
    for (let i = 0; i < 3; i++) expect((await probe(target, { ...asVakt, queue: 'vakt.canary' }, secrets)).ok).toBe(true);
    await waitForMessages('vakt.canary', 0);

    // Two runs whose canary lands on vakt.canary while they wait on another queue: they time out
    // in transit and leave their canaries behind, as a run cut off by its deadline does.
    for (let i = 0; i < 2; i++) {
      const r = await probe(target, { ...asVakt, queue: 'vakt.canary.decoy', exchange: 'amq.direct', routingKey: 'to-canary' }, secrets, 800);
      expect(r.failure).toMatchObject({ phase: 'transit', reason: 'timeout' });
      expect(r.phases.publish).toBeGreaterThan(0);
      expect(r.elapsed).toBeLessThan(0.8);
    }
    await waitForMessages('vakt.canary', 2);

    // The next run drops them (acked, never requeued) and succeeds: nothing is left.
    const next = await probe(target, { ...asVakt, queue: 'vakt.canary' }, secrets);
    expect(next.ok).toBe(true);
    expect(next.logged).toContainEqual(expect.objectContaining({ level: 'info', obj: { stale: 2 } }));
    await waitForMessages('vakt.canary', 0);

    // Canaries no later run picks up expire by their own TTL (6 s here: long enough for the
    // statistics to show all three first).
    const left = performance.now();
    for (let i = 0; i < 3; i++) {
      const r = await probe(target, { ...asVakt, queue: 'vakt.canary.decoy', exchange: 'amq.direct', routingKey: 'to-canary', messageTtl: '6s' }, secrets, 500);
      expect(r.failure).toMatchObject({ phase: 'transit', reason: 'timeout' });
    }
    await waitForMessages('vakt.canary', 3, 4000);
    await waitForMessages('vakt.canary', 0, 15_000);
    expect(performance.now() - left).toBeGreaterThan(6000);
    await waitForMessages('vakt.canary.decoy', 0);
  });

  it('a message that is not a canary on the queue is never consumed: it is still there after the run', async () => {
    await declareQueue('vakt.canary.shared');
    await publishForeign('vakt.canary.shared', 'a lab order that is not ours');
    await waitForMessages('vakt.canary.shared', 1);
    const r = await probe(target, { ...asVakt, queue: 'vakt.canary.shared' }, secrets);
    expect(r.ok).toBe(true);
    expect(r.logged).toContainEqual(expect.objectContaining({ level: 'warn', obj: { foreign: 1 } }));
    await waitForMessages('vakt.canary.shared', 1);
    const got = await rabbit.api('POST', '/queues/%2F/vakt.canary.shared/get', { count: 5, ackmode: 'ack_requeue_false', encoding: 'auto' });
    expect((got.json as { payload: string }[]).map((m) => m.payload)).toEqual(['a lab order that is not ours']);
  });

  it('a queue crowded with other messages: the canary cannot get through (timeout, saying why), and none of them is lost', async () => {
    await declareQueue('vakt.canary.crowded');
    for (let i = 0; i < 60; i++) await publishForeign('vakt.canary.crowded', `order ${i}`);
    await waitForMessages('vakt.canary.crowded', 60);
    const r = await probe(target, { ...asVakt, queue: 'vakt.canary.crowded' }, secrets, 1000);
    expect(r.failure).toMatchObject({ phase: 'transit', reason: 'timeout' });
    expect(r.failure?.message).toContain('50 messages that are not vakt canaries were delivered from the queue instead');
    // The 60 orders and the canary behind them.
    await waitForMessages('vakt.canary.crowded', 61);
  });

  it('a broker under a memory alarm blocks the canary: timeout in publish, naming the block', async () => {
    await rabbit.ctl(['set_vm_memory_high_watermark', 'absolute', '1']);
    try {
      const r = await probe(target, { ...asVakt, queue: 'vakt.canary' }, secrets, 1500);
      expect(r.failure).toMatchObject({ phase: 'publish', reason: 'timeout' });
      expect(r.failure?.message).toContain('the broker blocks publishers');
    } finally {
      await rabbit.ctl(['set_vm_memory_high_watermark', '0.4']);
    }
    // Once the alarm clears, the canary flows again (and drops whatever the blocked run left).
    let r: Timed | undefined;
    for (let i = 0; i < 20 && !r?.ok; i++) {
      r = await probe(target, { ...asVakt, queue: 'vakt.canary' }, secrets);
      if (!r.ok) await new Promise((res) => setTimeout(res, 250));
    }
    expect(r?.failure).toBeUndefined();
    await waitForMessages('vakt.canary', 0);
  });

  it('a stopped broker is refused', async () => {
    await rabbit.stop();
    const r = await probe(target, asVakt, secrets);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    expect(r.phases).toEqual({});
  });
});
