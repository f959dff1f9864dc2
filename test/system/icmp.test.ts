// The icmp probe with the real iputils ping, against a host in a network namespace this test
// creates (a veth pair, helpers.ts createNetnsLink): answers, loses every second echo request
// (iptables statistic match in the namespace), answers nothing (DROP), has no route to it. And
// the agent without privileges (vakt probe as nobody, no_new_privs, so ping's file capability
// does not apply): refused with icmp_unavailable while the namespace's
// net.ipv4.ping_group_range leaves it out, working once the sysctl lets its group use ICMP
// datagram sockets — what the Kubernetes manifests set.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { icmpProbe } from '../../probes/icmp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { ROOT } from '../helpers/cli.js';
import { createNetnsLink, destroyNetnsLink, removeStaleNetns, requireRoot, requireTool, run, tryRun, type NetnsLink } from './helpers.js';

let link: NetnsLink;

function probe(target: string, options: Record<string, unknown> = {}, ms = 4000): Promise<ProbeResult> {
  return icmpProbe.run({ ...targetsOf('icmp', target), options: KIND_OPTIONS.icmp.parse(options), ...budget(ms), log: quietLog, secrets: {} });
}

const inNs = (args: string[]) => run('ip', ['netns', 'exec', link.netns, ...args]);
/** Echo requests the namespace drops: every second one (`--every 2`), or all. */
const dropEchoes = (every?: number) =>
  inNs([
    'iptables',
    '-I',
    'INPUT',
    '-p',
    'icmp',
    '--icmp-type',
    'echo-request',
    ...(every ? ['-m', 'statistic', '--mode', 'nth', '--every', String(every), '--packet', '0'] : []),
    '-j',
    'DROP',
  ]);
const flush = () => inNs(['iptables', '-F', 'INPUT']);

beforeAll(async () => {
  requireRoot();
  await requireTool('ping', ['-V'], 'iputils-ping');
  await requireTool('setpriv', ['--version'], 'util-linux');
  await removeStaleNetns();
  link = await createNetnsLink(11);
});

afterAll(async () => {
  if (link) await destroyNetnsLink(link);
});

describe('icmp probe with iputils ping', () => {
  it('a host that answers: ok, every request answered, the round trip as ping measured it', async () => {
    const r = await probe(link.nsAddr, { count: 4, interval: '50ms' });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.degraded).toBeUndefined();
    expect(r.values).toMatchObject({ samples: 4, samples_ok: 4, samples_loss_ratio: 0, ip_protocol: 4 });
    const { icmp_rtt_min_seconds: min, icmp_rtt_median_seconds: median, icmp_rtt_max_seconds: max } = r.values!;
    expect(min).toBeGreaterThan(0);
    expect(min).toBeLessThanOrEqual(median!);
    expect(median).toBeLessThanOrEqual(max!);
    expect(r.phases.rtt).toBe(median);
  });

  it('every second echo request dropped: degraded, sample_loss, 2 of 4', async () => {
    await dropEchoes(2);
    try {
      const r = await probe(link.nsAddr, { count: 4, interval: '50ms' });
      expect(r.ok).toBe(true);
      expect(r.degraded).toEqual({ reason: 'sample_loss', message: '2 of 4 echo requests unanswered (50 %)' });
      expect(r.values).toMatchObject({ samples: 4, samples_ok: 2, samples_loss_ratio: 0.5 });
      // With maxLoss below the loss, the same path fails.
      const strict = await probe(link.nsAddr, { count: 4, interval: '50ms', maxLoss: 0.25 });
      expect(strict.failure).toMatchObject({ phase: 'rtt', reason: 'timeout' });
      expect(strict.failure?.message).toMatch(/more than maxLoss 0.25$/);
    } finally {
      await flush();
    }
  });

  it('a host that answers nothing: timeout within the run, every request counted lost', async () => {
    await dropEchoes();
    try {
      const start = performance.now();
      const r = await probe(link.nsAddr, { count: 3, interval: '100ms' }, 1500);
      expect(performance.now() - start).toBeLessThan(1500 + 3000);
      expect(r.ok).toBe(false);
      expect(r.failure).toMatchObject({ phase: 'rtt', reason: 'timeout' });
      expect(r.failure?.message).toMatch(/^no echo reply to 3 requests/);
      expect(r.values).toMatchObject({ samples: 3, samples_ok: 0, samples_loss_ratio: 1 });
      expect(r.phases.rtt).toBeUndefined();
    } finally {
      await flush();
    }
  });

  it('no route to the host: unreachable', async () => {
    // The namespace has a route to the /30 of its link only.
    const out = await probeInNs([], '192.0.2.1');
    expect(out.failure).toMatchObject({ phase: 'rtt', reason: 'unreachable' });
    expect(out.failure?.message).toMatch(/^no route to 192\.0\.2\.1: connect: Network is unreachable/);
  });
});

/** `vakt probe icmp HOST --json` in the test's namespace, after `prefix` (e.g. setpriv as another user). */
async function probeInNs(prefix: string[], host: string): Promise<ProbeResult> {
  const r = await tryRun(
    'ip',
    ['netns', 'exec', link.netns, ...prefix, process.execPath, '--import', 'tsx', `${ROOT}/test/helpers/vakt.ts`, 'probe', 'icmp', host, '--json'],
    60_000,
  );
  if (r.stdout.trim() === '') throw new Error(`vakt probe printed nothing: ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeResult;
}

describe('icmp without privileges (vakt probe as nobody, no_new_privs)', () => {
  /** As nobody, where ping's file capability does not apply. */
  const asNobody = () => probeInNs(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--no-new-privs'], link.hostAddr);

  it('refused while net.ipv4.ping_group_range leaves its group out: icmp_unavailable, saying what to set', async () => {
    await inNs(['sysctl', '-qw', 'net.ipv4.ping_group_range=1 0']);
    const r = await asNobody();
    expect(r.failure).toMatchObject({ phase: 'rtt', reason: 'icmp_unavailable' });
    expect(r.failure?.message).toMatch(/net\.ipv4\.ping_group_range/);
  });

  it('works once the sysctl allows ICMP datagram sockets for its group', async () => {
    await inNs(['sysctl', '-qw', 'net.ipv4.ping_group_range=0 2147483647']);
    const r = await asNobody();
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.values?.samples_ok).toBe(3);
  });
});
