// The queue probe against a real RabbitMQ (Debian's rabbitmq-server with its management plugin,
// started by the test on free ports, statistics every second): incident 5 replayed on a real
// broker. 100 lab results published with nobody consuming → depth 100 and a growing oldest age;
// a consumer starts → the queue drains and the check recovers; the consumer stops while results
// keep arriving → stalled, reason backlog. Publishing and consuming go through amqplib as the
// broker's own user; the probe reads as a `monitoring`-tagged user.
import { connect, type Channel, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { queueProbe } from '../../probes/queue/probe.js';
import type { ProbeResult, QueueReading } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { requireRoot } from './helpers.js';
import { startRabbit, type Rabbit } from './rabbitmq.js';

const QUEUE = 'lab.results';
let rabbit: Rabbit;
let conn: ChannelModel;
let ch: Channel;

beforeAll(async () => {
  requireRoot();
  rabbit = await startRabbit();
  conn = await connect(`amqp://${rabbit.vakt.username}:${encodeURIComponent(rabbit.vakt.password)}@127.0.0.1:${rabbit.amqpPort}`);
  ch = await conn.createChannel();
  await ch.assertQueue(QUEUE, { durable: true });
  // The read-only monitoring user: the `monitoring` tag and a permission entry on the vhost that
  // allows nothing (without an entry the API answers 401 for the vhost's queues).
  await rabbit.api('PUT', `/permissions/%2F/${rabbit.monitoring.username}`, { configure: '^$', write: '^$', read: '^$' });
}, 90_000);

afterAll(async () => {
  await conn?.close().catch(() => undefined);
  await rabbit?.stop();
});

/** One check: the same options and memory for every run, as the agent keeps them. */
function check(extra: Record<string, unknown> = {}): (password?: string) => Promise<ProbeResult> {
  const options = KIND_OPTIONS.queue.parse({ source: 'rabbitmq', queues: [QUEUE], username: rabbit.monitoring.username, password: 'pw', ...extra });
  const memory = new Map<string, unknown>();
  const target = `http://127.0.0.1:${rabbit.mgmtPort}`;
  return (password = rabbit.monitoring.password) =>
    queueProbe.run({ ...targetsOf('queue', target), options, ...budget(3000), memory, log: quietLog, secrets: { pw: password } });
}

const only = (r: ProbeResult): QueueReading => {
  expect(r.queues, JSON.stringify(r)).toHaveLength(1);
  return r.queues?.[0] as QueueReading;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the check until `done` holds (the broker's statistics lag up to its 1 s interval). */
async function runUntil(run: () => Promise<ProbeResult>, done: (r: ProbeResult) => boolean, ms = 20_000, everyMs = 500): Promise<ProbeResult> {
  const end = performance.now() + ms;
  let last: ProbeResult | undefined;
  for (;;) {
    last = await run();
    if (done(last)) return last;
    if (performance.now() > end) throw new Error(`condition not reached within ${ms} ms; last result ${JSON.stringify(last)}`);
    await sleep(everyMs);
  }
}

function publish(n: number, from = 0): void {
  for (let i = 0; i < n; i++) {
    ch.sendToQueue(QUEUE, Buffer.from(`ORU^R01 result ${from + i}`), { persistent: true, timestamp: Math.floor(Date.now() / 1000), messageId: `r${from + i}` });
  }
}

describe('queue probe against RabbitMQ 3.10 (management API)', () => {
  const options = { stalledAfter: '3s', minConsumers: 1 };
  const run = () => check(options)();
  let stage: ReturnType<typeof check>;

  it('100 results published, nobody consuming: depth 100, no consumers (reason consumers), oldest age growing', async () => {
    stage = check({ stalledAfter: '1h' });
    publish(100);
    const first = await runUntil(stage, (r) => r.queues?.[0]?.depth === 100);
    expect(only(first)).toMatchObject({ queue: QUEUE, depth: 100, ready: 100, unacked: 0, consumers: 0 });
    const age1 = only(first).oldestAgeSeconds as number;
    expect(age1).toBeTypeOf('number');
    await sleep(2100);
    const second = await stage();
    expect(only(second).depth).toBe(100);
    // head_message_timestamp has whole seconds: two seconds later it is older by about that much.
    expect((only(second).oldestAgeSeconds as number) - age1).toBeGreaterThanOrEqual(1);
    expect(only(second).drainRate).toBe(0);
    const strict = await run();
    expect(strict.failure).toMatchObject({ reason: 'consumers', phase: 'assess' });
    expect(strict.failure?.message).toContain('0 consumers (at least 1 expected), 100 waiting');
  });

  let consumerTag = '';
  it('a consumer starts: the queue drains, the drain rate shows it, the check recovers', async () => {
    stage = check(options);
    await stage(); // the check's memory starts at depth 100
    const { consumerTag: tag } = await ch.consume(QUEUE, (m) => m && ch.ack(m), { noAck: false });
    consumerTag = tag;
    let sawDrain = false;
    const done = await runUntil(stage, (r) => {
      if ((r.queues?.[0]?.drainRate ?? 0) > 0) sawDrain = true;
      return r.ok && r.queues?.[0]?.depth === 0;
    });
    expect(sawDrain).toBe(true);
    expect(only(done)).toMatchObject({ depth: 0, consumers: 1, undrainedSeconds: 0 });
    expect(only(done).oldestAgeSeconds).toBeUndefined();
  });

  it('the consumer stops while results keep arriving: after stalledAfter the run fails, reason backlog (stalled)', async () => {
    await ch.cancel(consumerTag);
    let n = 1000;
    const feeder = setInterval(() => publish(2, (n += 2)), 200);
    try {
      // minConsumers off here: the stall itself is what must be seen.
      const stalled = check({ stalledAfter: '3s' });
      // The broker refreshes its statistics every second: a single interval may show no arrivals.
      let sawArrivals = false;
      const r = await runUntil(
        stalled,
        (x) => {
          if ((x.queues?.[0]?.arrivalRate ?? 0) > 0) sawArrivals = true;
          return x.failure?.reason === 'backlog';
        },
        30_000,
      );
      expect(sawArrivals).toBe(true);
      expect(r.failure?.phase).toBe('assess');
      expect(r.failure?.message).toMatch(/^lab\.results: stalled, \d+ waiting and nothing drained for [\d.]+s/);
      const q = only(r);
      expect(q.consumers).toBe(0);
      expect(q.depth).toBeGreaterThan(0);
      expect(q.drainRate).toBe(0);
      expect(q.undrainedSeconds).toBeGreaterThanOrEqual(3);
    } finally {
      clearInterval(feeder);
    }
  });

  it('a consumer that rejects and requeues every message (a poison message going round): deliveries, no drain, stalled', async () => {
    const loop = await conn.createChannel();
    await loop.prefetch(1);
    const pending = new Set<NodeJS.Timeout>();
    const { consumerTag: tag } = await loop.consume(
      QUEUE,
      (m) => {
        if (!m) return;
        const t = setTimeout(() => {
          pending.delete(t);
          loop.nack(m, false, true);
        }, 20);
        pending.add(t);
      },
      { noAck: false },
    );
    try {
      const stalled = check({ stalledAfter: '3s' });
      let sawDeliveries = false;
      const r = await runUntil(
        stalled,
        (x) => {
          if ((x.queues?.[0]?.deliverRate ?? 0) > 0) sawDeliveries = true;
          return sawDeliveries && x.failure?.reason === 'backlog';
        },
        30_000,
      );
      expect(sawDeliveries).toBe(true);
      expect(only(r)).toMatchObject({ consumers: 1, drainRate: 0 });
      expect(r.failure?.message).toMatch(/^lab\.results: stalled, \d+ waiting and nothing drained for/);
    } finally {
      await loop.cancel(tag);
      for (const t of pending) clearTimeout(t);
      await loop.close();
    }
  });

  it('the monitoring user reads; a wrong password is auth; a queue that does not exist is queue_missing', async () => {
    expect((await check()('not-the-password')).failure?.reason).toBe('auth');
    const missing = await check({ queues: ['no.such.queue'] })();
    expect(missing.failure).toMatchObject({ reason: 'queue_missing', phase: 'fetch' });
    // A vhost with a slash in its name, URL-encoded by the probe.
    await rabbit.api('PUT', '/vhosts/region%2Flab', {});
    await rabbit.api('PUT', `/permissions/region%2Flab/${rabbit.vakt.username}`, { configure: '.*', write: '.*', read: '.*' });
    await rabbit.api('PUT', `/permissions/region%2Flab/${rabbit.monitoring.username}`, { configure: '^$', write: '^$', read: '^$' });
    await rabbit.api('PUT', '/queues/region%2Flab/orders.out', { durable: true });
    const r = await runUntil(check({ vhost: 'region/lab', queues: ['orders.out'] }), (x) => x.ok, 15_000);
    expect(only(r)).toMatchObject({ queue: 'orders.out', depth: 0 });
  });
});
