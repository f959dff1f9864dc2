// The queue probe (source activemq) against a real ActiveMQ Classic 5.17.2 read over Jolokia 1.7.1:
// Debian's broker, Jolokia and Jetty embedded by test/system/activemq/ActiveMQJolokia.java (Debian's
// activemq package ships no web console or Jolokia), with Basic auth and upstream's Jolokia access
// policy (an Origin is required). The test sends and consumes messages over OpenWire through the
// harness, and reads the queue with the probe exactly as the runner would: schema-parsed options,
// the password by secret name, one memory per check across its runs.
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { queueProbe } from '../../probes/queue/probe.js';
import type { ProbeResult, QueueReading } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { startActiveMQ, type ActiveMQ } from './activemq/broker.js';
import { requireRoot } from './helpers.js';

const QUEUE = 'HL7.IN';
const MBEAN = `org.apache.activemq:type=Broker,brokerName=localhost,destinationType=Queue,destinationName=${QUEUE}`;

let amq: ActiveMQ;

/** A queue check: each call is one run, with the check's memory kept between runs. */
function check(options: Record<string, unknown> = {}): (secrets?: Record<string, string>) => Promise<ProbeResult> {
  const parsed = KIND_OPTIONS.queue.parse({ source: 'activemq', queues: [QUEUE], username: 'admin', password: 'pw', ...options });
  const memory = new Map<string, unknown>();
  return (secrets = { pw: amq.password }) =>
    queueProbe.run({ ...targetsOf('queue', amq.url), options: parsed, ...budget(10_000), memory, log: quietLog, secrets });
}

function only(r: ProbeResult): QueueReading {
  expect(r.queues, JSON.stringify(r)).toHaveLength(1);
  return r.queues![0]!;
}

/** One raw Jolokia read of the queue's QueueSize, with or without an Origin header. */
async function rawRead(origin: string | undefined): Promise<{ status: number; json: unknown }> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    authorization: `Basic ${Buffer.from(`admin:${amq.password}`).toString('base64')}`,
  };
  if (origin !== undefined) headers.origin = origin;
  const res = await request(`${amq.url}/api/jolokia/`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ type: 'read', mbean: MBEAN, attribute: 'QueueSize' }),
  });
  return { status: res.statusCode, json: await res.body.json() };
}

beforeAll(async () => {
  requireRoot();
  amq = await startActiveMQ(60_000);
  console.log(`ActiveMQ 5.17.2 + Jolokia 1.7.1 harness (${amq.java}): JVM spawn to READY ${Math.round(amq.startMs)} ms (${amq.ready})`);
});

afterAll(async () => {
  await amq?.stop();
});

describe('queue probe against ActiveMQ Classic over Jolokia', () => {
  // The same check across the tests: a backlog is stalled once nothing drained for 1 s.
  let main: ReturnType<typeof check>;
  let firstRunAt = 0;

  it('a backlog without consumers: depth 100, consumers 0; minConsumers 1 fails with reason consumers', async () => {
    await amq.command(`send ${QUEUE} 100`);
    main = check({ stalledAfter: '1s' });
    const r = await main();
    // After the run: its reading is timed at the end of its fetch, so the next is at least `wait` later.
    firstRunAt = performance.now();
    expect(r.failure, amq.log().slice(-2000)).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['fetch', 'assess']);
    const q = only(r);
    expect(q).toMatchObject({ queue: QUEUE, depth: 100, consumers: 0, unacked: 0, undrainedSeconds: 0 });
    // A first run has nothing to compare with: no rates yet.
    expect(q.arrivalRate).toBeUndefined();
    expect(q.drainRate).toBeUndefined();

    const withConsumers = await check({ minConsumers: 1 })();
    expect(withConsumers.ok).toBe(false);
    expect(withConsumers.failure).toEqual({ phase: 'assess', reason: 'consumers', message: `${QUEUE}: 0 consumers (at least 1 expected), 100 waiting` });
    expect(only(withConsumers)).toMatchObject({ depth: 100, consumers: 0 });
  });

  it('more arrive and nothing drains: arrival rate > 0, drain rate 0, and past stalledAfter the run fails (backlog, stalled)', async () => {
    await amq.command(`send ${QUEUE} 20`);
    const wait = 1300 - (performance.now() - firstRunAt);
    if (wait > 0) await sleep(wait);
    const r = await main();
    const q = only(r);
    expect(q).toMatchObject({ depth: 120, consumers: 0, drainRate: 0 });
    // 20 arrived between the runs, which are at least 1.3 s apart.
    expect(q.arrivalRate).toBeGreaterThan(0);
    expect(q.arrivalRate).toBeLessThan(20 / 1.3);
    expect(q.undrainedSeconds).toBeGreaterThanOrEqual(1);
    expect(r.ok).toBe(false);
    expect(r.failure?.phase).toBe('assess');
    expect(r.failure?.reason).toBe('backlog');
    expect(r.failure?.message).toMatch(/^HL7\.IN: stalled, 120 waiting and nothing drained for \d+(\.\d)?s$/);
  });

  it('a consumer drains the queue: within a few runs depth 0 with a drain rate > 0, and the run is ok', async () => {
    await amq.command(`consume ${QUEUE}`);
    let r: ProbeResult | undefined;
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) {
      r = await main();
      const q = only(r);
      seen.push(`depth ${q.depth} drain ${q.drainRate?.toFixed(1)} consumers ${q.consumers}`);
      if (q.depth === 0) break;
      await sleep(250);
    }
    const q = only(r!);
    expect(q.depth, seen.join('; ')).toBe(0);
    // The first run that sees it empty: everything that drained since the previous run counts.
    expect(q.drainRate).toBeGreaterThan(0);
    expect(q).toMatchObject({ consumers: 1, unacked: 0, undrainedSeconds: 0 });
    expect(r!.failure).toBeUndefined();
    expect(r!.degraded).toBeUndefined();
    expect(r!.ok).toBe(true);
    console.log(`drained within ${seen.length} run(s): ${seen.join('; ')}`);

    // With the consumer attached, minConsumers 1 is met; once it is closed, not any more.
    const withConsumers = check({ minConsumers: 1 });
    expect((await withConsumers()).failure).toBeUndefined();
    await amq.command(`stop-consume ${QUEUE}`);
    const after = await withConsumers();
    expect(after.failure?.reason).toBe('consumers');
    expect(only(after)).toMatchObject({ depth: 0, consumers: 0 });
  });

  it('a queue the broker does not have is queue_missing, also next to one it has', async () => {
    const r = await check({ queues: ['NO.SUCH.QUEUE'] })();
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'fetch', reason: 'queue_missing' });
    expect(r.failure?.message).toContain('queue "NO.SUCH.QUEUE" not found');
    const both = await check({ queues: [QUEUE, 'NO.SUCH.QUEUE'] })();
    expect(both.failure).toMatchObject({ phase: 'fetch', reason: 'queue_missing' });
    expect(both.failure?.message).toContain('NO.SUCH.QUEUE');
  });

  it.each([
    ['LAB:RESULTS', 3],
    ["O'K", 2],
    ['A=B', 4],
    ['STAR*', 1],
  ] as const)("a name with special characters (%s) is read under ActiveMQ's own MBean name for it", async (name, n) => {
    await amq.command(`send ${name} ${n}`);
    const r = await check({ queues: [name] })();
    expect(r.failure).toBeUndefined();
    expect(only(r)).toMatchObject({ queue: name, depth: n, consumers: 0 });
  });

  it('a wrong password is auth, and the password is not in the result', async () => {
    const wrong = 'Wrong-Passw0rd-for-admin';
    const r = await check()({ pw: wrong });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'fetch', reason: 'auth' });
    expect(r.failure?.message).toContain('status 401');
    expect(JSON.stringify(r)).not.toContain(wrong);
  });

  it('the probe sends an Origin: its reads pass, while the same read without one is refused (403 inside a 200)', async () => {
    const r = await check()();
    expect(r.failure).toBeUndefined();
    const without = await rawRead(undefined);
    expect(without.status).toBe(200);
    expect(without.json).toMatchObject({ status: 403, error: expect.stringContaining('Origin null is not allowed to call this agent') });
    const withOrigin = await rawRead(amq.url);
    expect(withOrigin.status).toBe(200);
    expect(withOrigin.json).toMatchObject({ status: 200, value: 0 });
  });

  it('a stopped broker is refused', async () => {
    await amq.stop();
    expect(amq.running()).toBe(false);
    const r = await main();
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
  });
});
