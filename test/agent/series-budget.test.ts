// The series budget of docs/metrics.md, enforced from a real scrape: the demo's checks (one of
// each kind the sandbox serves, plus a second amqp check against a closed port) run in a real agent
// against the sandbox; every check's series in /metrics are counted and must stay within the
// documented budget of its kind, and every kind must have a budget row.
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { KINDS } from '../../probes/kinds.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { demoConfigFor, freeSandboxPorts, sandboxDirOfRepo } from '../helpers/demo-config.js';
import { closedPort } from '../helpers/peers.js';
import { parseMetrics } from '../helpers/prom.js';

/** The budget table of docs/metrics.md: kind → series per check (and per extra target or queue). */
function documentedBudget(): Map<string, { base: number; perTarget: number; perQueue: number }> {
  const text = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('## Series budget'));
  const rows = new Map<string, { base: number; perTarget: number; perQueue: number }>();
  for (const m of section.matchAll(/^\| `([a-z0-9]+)` \| (\d+) \| (\d+) \| (\d+) \|/gm)) {
    rows.set(m[1] as string, { base: Number(m[2]), perTarget: Number(m[3]), perQueue: Number(m[4]) });
  }
  return rows;
}

let sb: Sandbox;
let agent: Agent;
let http: HttpServer;
beforeAll(async () => {
  sb = await startSandbox({ ports: freeSandboxPorts() });
  // The demo's own config against this sandbox, histograms off (the default set), and a second
  // amqp check, against a closed port (a failed run's series).
  const secret = `${sandboxDirOfRepo()}/secrets/probe-password`;
  const file = demoConfigFor(
    sb,
    ['startSpread: 100ms', 'histograms: off'],
    `  - { name: broker-canary, kind: amqp, target: "127.0.0.1:${await closedPort()}", secrets: { canary: { file: "${secret}" } }, amqp: { username: vakt-canary, password: canary, queue: vakt.canary } }\n`,
  );
  agent = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: 0 }, logStream: new PassThrough() });
  http = await startServer(agent, '127.0.0.1', 0);
}, 30_000);
afterAll(async () => {
  await agent?.stop();
  await http?.close();
  await sb?.stop();
});

describe('series budget (docs/metrics.md)', () => {
  it('every kind has a budget row', () => {
    const budget = documentedBudget();
    expect([...budget.keys()].sort()).toEqual([...KINDS].sort());
  });

  it("each of the demo's checks stays within its kind's budget in a real scrape", async () => {
    // Two runs of each check beyond its schedule, so counters, rates and state have settled.
    for (let round = 0; round < 2; round++) await Promise.all(agent.list().map((v) => agent.runNow(v.config.name)));
    expect(agent.list().every((v) => v.history.length >= 2)).toBe(true);
    const body = await (await fetch(`${http.url}/metrics`)).text();
    const series = parseMetrics(body);
    const budget = documentedBudget();
    const seen: string[] = [];
    for (const view of agent.list()) {
      const c = view.config;
      // What the budget adds on top of its base as runs fail, degrade, skip or are disturbed.
      const extras = new Set([
        'vakt_probe_failures_total',
        'vakt_probe_degraded_total',
        'vakt_probe_disturbed_runs_total',
        'vakt_probe_skipped_runs_total',
        'vakt_probe_failure_info',
      ]);
      const mine = series.filter((s) => s.labels.check === c.name && !extras.has(s.name)).length;
      const b = budget.get(c.kind);
      expect(b, `budget row for ${c.kind}`).toBeDefined();
      // Queues a queue check read, or items with a number (an snmp check's numeric OIDs).
      const items = (view.last?.result.queues?.length ?? 0) + (view.last?.result.items?.filter((i) => i.value !== undefined).length ?? 0);
      const allowed = (b?.base ?? 0) + (b?.perTarget ?? 0) * (c.targets.length - 1) + (b?.perQueue ?? 0) * items;
      expect(mine, `${c.name} (${c.kind}): ${mine} series, budget ${allowed}`).toBeLessThanOrEqual(allowed);
      expect(mine).toBeGreaterThan(5);
      seen.push(c.kind);
    }
    // The demo covers every kind.
    expect(new Set(seen)).toEqual(new Set(KINDS));
  }, 60_000);
});
