// A run whose timing the agent itself disturbed: the event loop blocked for 200 ms during a
// login run. The run is marked (API, counter) and does not make the check slow nor enter its
// baseline; the same slowness from the server does make it slow.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { LoopMonitor } from '../../agent/loop-monitor.js';
import { value } from '../helpers/prom.js';

/** Holds the event loop for `ms` (what a long synchronous task does to the agent). */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy: nothing else on this loop runs meanwhile
  }
}

let server: Server;
let port = 0;
/** How long the login page takes to answer (ms), set per test. */
let answerAfterMs = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>Welcome, you are logged in</body></html>');
    }, answerAfterMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function agentWith(extra: string): Promise<Agent> {
  const dir = mkdtempSync(join(tmpdir(), 'vakt-disturbed-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(
    file,
    // maxLoopDelay 100 ms: a busy test machine's own scheduling hiccups stay below it.
    `agent: { listen: "127.0.0.1:0", startSpread: 1h, maxLoopDelay: 100ms }
checks:
  - name: login
    kind: http
    target: "http://127.0.0.1:${port}/login"
    interval: 1h
    timeout: 5s
    retries: 0
    # Slow above 150 ms; the baseline is learnt from the first good runs.
    degraded: { above: 150ms, baselineMinRuns: 1 }
    http: { expect: { bodyContains: [logged in] } }
${extra}`,
  );
  return Agent.start({ configFile: file, logStream: new PassThrough() });
}

describe('disturbed runs', () => {
  it('a 200 ms block of the loop during a login run: the check stays ok, the run is marked and not learnt', async () => {
    const agent = await agentWith('');
    try {
      // Calm runs until one was learnt (the first run of a fresh process can itself stall the
      // loop while code is compiled, and is then rightly not learnt).
      answerAfterMs = 20;
      let calmRuns = 0;
      while (agent.get('login')?.status.baseline === undefined && calmRuns < 5) {
        const calm = await agent.runNow('login');
        expect(calm?.result.ok).toBe(true);
        calmRuns++;
      }
      const baseline = agent.get('login')?.status.baseline;
      expect(baseline).toBeDefined();
      const disturbedBefore = agent.get('login')?.history.filter((h) => h.disturbed).length ?? 0;

      // The server answers after 60 ms; 10 ms into the wait the agent's loop is blocked 200 ms.
      answerAfterMs = 60;
      const blocker = setTimeout(() => block(200), 10);
      const hit = await agent.runNow('login');
      clearTimeout(blocker);
      expect(hit?.result.ok).toBe(true);
      // It took longer than the 150 ms limit, but that was the agent's own stall.
      expect(hit?.duration).toBeGreaterThan(0.15);
      expect(hit?.disturbed).toBe(true);
      expect(hit?.loopStall).toBeGreaterThan(0.15);
      expect(hit?.result.degraded).toBeUndefined();
      const view = agent.get('login');
      expect(view?.status.state).toBe('ok');
      expect(view?.status.baseline).toBe(baseline);
      expect(view?.history.at(-1)?.disturbed).toBe(true);
      const text = (await agent.metrics.render(false)).body;
      expect(value(text, 'vakt_probe_disturbed_runs_total', { check: 'login' })).toBe(disturbedBefore + 1);
      // Every run counted (a first run slowed by code compilation may have been degraded).
      expect((value(text, 'vakt_probe_runs_total', { check: 'login', result: 'ok' }) ?? 0) + (value(text, 'vakt_probe_runs_total', { check: 'login', result: 'degraded' }) ?? 0)).toBe(calmRuns + 1);
    } finally {
      await agent.stop();
    }
  });

  it('the same slowness from the server is slow: degraded, not marked', async () => {
    const agent = await agentWith('');
    try {
      answerAfterMs = 250;
      const slow = await agent.runNow('login');
      expect(slow?.result.ok).toBe(true);
      expect(slow?.disturbed).toBe(false);
      expect(slow?.result.degraded?.reason).toBe('slow');
      expect(agent.get('login')?.status.state).toBe('degraded');
    } finally {
      await agent.stop();
    }
  });
});

describe('LoopMonitor', () => {
  it('sees a stall that overlapped a window, also one ending just now, and not one before it', async () => {
    const m = new LoopMonitor(10);
    m.enter();
    try {
      await new Promise((r) => setTimeout(r, 50));
      const before = performance.now();
      await new Promise((r) => setTimeout(r, 30));
      const t0 = performance.now();
      block(120);
      // Asked before the timer could fire: the stall is still seen (it ends now).
      expect(m.worstStall(t0, performance.now())).toBeGreaterThan(80);
      await new Promise((r) => setTimeout(r, 30));
      // Recorded by the timer: seen in a window that overlaps it.
      expect(m.worstStall(t0 + 50, performance.now())).toBeGreaterThan(80);
      // A window that ended before the stall began does not see it.
      expect(m.worstStall(before - 40, before)).toBeLessThan(80);
    } finally {
      m.stop();
    }
  });
});
