// The tcp probe against a real packet filter and a real slow link (runs as root).
// Incident 1 is a firewall that silently drops, actively rejects, or loses a share of new
// connections under load; here the kernel does exactly that to the probe: iptables rules on the
// loopback interface, for the test listener's port only, and a network namespace behind a veth
// pair whose link is delayed. Every rule is tagged `vakt-test-<pid>` and removed after each test.
import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { tcpProbe } from '../../probes/tcp/probe.js';
import type { ProbeLogger, ProbeResult } from '../../probes/types.js';
import {
  createNetnsLink,
  delayLink,
  destroyNetnsLink,
  IptablesRules,
  removeStaleNetns,
  removeStaleRules,
  requireRoot,
  run,
  startNetnsListener,
  type LinkDelay,
  type NetnsLink,
} from './helpers.js';
import { Budget } from '../../probes/kit/budget.js';
import { targetsOf } from '../helpers/peers.js';

const silent: ProbeLogger = { debug() {}, info() {}, warn() {} };

/** One probe run the way the agent's runner makes it: schema-parsed options and a run timeout. */
async function probeTcp(target: string, options: Record<string, unknown>, runTimeoutMs = 3000): Promise<ProbeResult> {
  const controller = new AbortController();
  const deadline = performance.now() + runTimeoutMs;
  const timer = setTimeout(() => controller.abort(new Error('check timeout')), runTimeoutMs);
  try {
    return await tcpProbe.run({
      ...targetsOf('tcp', target),
      options: KIND_OPTIONS.tcp.parse(options),
      budget: new Budget(controller.signal, deadline),
      memory: new Map(),
      log: silent,
      secrets: {},
    });
  } finally {
    clearTimeout(timer);
  }
}

function listen(): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

beforeAll(async () => {
  requireRoot();
  // Tools the suite needs, checked up front so a missing one is named plainly.
  await run('iptables', ['--version']);
  await run('ip', ['-V']);
  await run('python3', ['--version']);
  await removeStaleRules();
  await removeStaleNetns();
});

describe('tcp probe through iptables on loopback', () => {
  let server: Server;
  let port: number;
  let target: string;
  const rules = new IptablesRules();
  /** Only this listener's port on the loopback interface; nothing else on the machine is touched. */
  const onPort = () => ['-i', 'lo', '-p', 'tcp', '--dport', String(port)];

  beforeAll(async () => {
    server = await listen();
    port = (server.address() as { port: number }).port;
    target = `127.0.0.1:${port}`;
  });

  afterEach(async () => {
    await rules.removeAll();
  });

  afterAll(async () => {
    await rules.removeAll();
    await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
  });

  it('is ok without a rule, times out on DROP, is refused on REJECT, and recovers when the rule goes', async () => {
    const baseline = await probeTcp(target, { connectTimeout: '1s' });
    expect(baseline.failure).toBeUndefined();
    expect(baseline.ok).toBe(true);
    expect(baseline.phases.connect).toBeLessThan(0.5);

    await rules.add('INPUT', [...onPort(), '-j', 'DROP']);
    const dropped = await probeTcp(target, { connectTimeout: '1s' });
    expect(dropped.ok).toBe(false);
    expect(dropped.failure).toMatchObject({ phase: 'connect', reason: 'timeout' });
    expect(dropped.phases.connect).toBeUndefined();
    await rules.removeAll();

    await rules.add('INPUT', [...onPort(), '-j', 'REJECT', '--reject-with', 'tcp-reset']);
    const rejected = await probeTcp(target, { connectTimeout: '1s' });
    expect(rejected.ok).toBe(false);
    expect(rejected.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    await rules.removeAll();

    const recovered = await probeTcp(target, { connectTimeout: '1s' });
    expect(recovered.failure).toBeUndefined();
    expect(recovered.ok).toBe(true);
  });

  it('reports sample loss as degraded when a share of SYNs is dropped', async () => {
    // Half of the SYNs vanish. A lost SYN is retransmitted after 1 s, so with a 500 ms connect
    // timeout each lost SYN is a lost sample. With 10 samples, loss of 0 or 10 has a chance of
    // 2/1024 per run; a few runs make the test deterministic in practice without hiding a bug.
    await rules.add('INPUT', [...onPort(), '--syn', '-m', 'statistic', '--mode', 'random', '--probability', '0.5', '-j', 'DROP']);
    const results: ProbeResult[] = [];
    let partial: ProbeResult | undefined;
    for (let attempt = 0; attempt < 5 && !partial; attempt++) {
      const r = await probeTcp(target, { samples: 10, sampleSpacing: '50ms', connectTimeout: '500ms' });
      results.push(r);
      const loss = r.values?.samples_loss_ratio;
      if (loss !== undefined && loss > 0 && loss < 1) partial = r;
    }
    expect(partial, `no run with partial loss in ${results.length} runs: ${JSON.stringify(results.map((r) => r.values))}`).toBeDefined();
    const r = partial!;
    expect(r.ok).toBe(true);
    expect(r.degraded?.reason).toBe('sample_loss');
    expect(r.values?.samples).toBe(10);
    expect(r.values!.samples_ok! + Math.round(r.values!.samples_loss_ratio! * 10)).toBe(10);
    expect(r.degraded?.message).toMatch(/timeout in connect/);
  });
});

describe('tcp probe over a delayed link into a network namespace', () => {
  let link: NetnsLink | undefined;
  let delay: LinkDelay | undefined;
  let target: string;
  let port: number;

  beforeAll(async () => {
    link = await createNetnsLink();
    const listener = await startNetnsListener(link.netns, link.nsAddr);
    port = listener.port;
    target = `${link.nsAddr}:${port}`;
  });

  afterAll(async () => {
    // Tear down even when a test or the setup failed; the namespace takes its listener, its
    // delay line and its veth with it.
    const errors: unknown[] = [];
    await delay?.remove().catch((e: unknown) => errors.push(e));
    if (link) await destroyNetnsLink(link).catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw errors[0];
  });

  it('carries a 200 ms link delay into the connect phase', async () => {
    const baseline = await probeTcp(target, { connectTimeout: '2s' });
    expect(baseline.failure).toBeUndefined();
    expect(baseline.ok).toBe(true);
    expect(baseline.phases.connect).toBeLessThan(0.1);

    delay = await delayLink(link!, 200, port);
    if (delay.mechanism !== 'netem') {
      console.warn(`kernel has no netem qdisc: the 200 ms delay is made by an NFQUEUE delay line instead (${delay.mechanism})`);
    }
    const slow = await probeTcp(target, { connectTimeout: '2s', samples: 3 });
    expect(slow.failure).toBeUndefined();
    expect(slow.ok).toBe(true);
    expect(slow.phases.connect).toBeGreaterThanOrEqual(0.18);
    expect(slow.values?.connect_min_seconds).toBeGreaterThanOrEqual(0.18);
    // A delay, not a loss: well under the 1 s SYN retransmission.
    expect(slow.values?.connect_max_seconds).toBeLessThan(0.9);

    await delay.remove();
    delay = undefined;
    const fast = await probeTcp(target, { connectTimeout: '2s' });
    expect(fast.ok).toBe(true);
    expect(fast.phases.connect).toBeLessThan(0.1);
  });
});
