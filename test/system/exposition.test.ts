// /metrics through strict parsers that none of us wrote: Python prometheus_client's text parser
// and its OpenMetrics parser (Debian python3-prometheus-client), over a real scrape of the demo's
// checks with every kind of series present (histograms on, failures, label values that need
// escaping). No two families may share a name in either format.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { demoConfigFor, freeSandboxPorts } from '../helpers/demo-config.js';
import { closedPort } from '../helpers/peers.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/**
 * Parses stdin with prometheus_client's text (argv[1] == "text") or OpenMetrics parser and
 * prints JSON: the families (name, type, sample names) or the parser's error.
 */
const CHECKER = `
import json, sys
kind = sys.argv[1]
text = sys.stdin.read()
try:
    if kind == "openmetrics":
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    fams = [{"name": f.name, "type": f.type, "samples": sorted({s.name for s in f.samples}), "n": len(f.samples)} for f in text_string_to_metric_families(text)]
    print(json.dumps({"families": fams}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)}))
`;

interface Parsed {
  families?: { name: string; type: string; samples: string[]; n: number }[];
  error?: string;
}

function parse(format: 'text' | 'openmetrics', body: string): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', CHECKER, format], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${PYTHON} exited ${code}: ${err} (apt-get install python3-prometheus-client; .ci/run installs it)`));
      else resolve(JSON.parse(out) as Parsed);
    });
    child.stdin.end(body);
  });
}

let sb: Sandbox;
let agent: Agent;
let http: HttpServer;
beforeAll(async () => {
  sb = await startSandbox({ ports: freeSandboxPorts() });
  // Everything on: per-phase and per-step histograms, a label value with a quote, a backslash
  // and a line break, a check that fails.
  const file = demoConfigFor(
    sb,
    ['startSpread: 100ms', 'histograms: phases'],
    `  - { name: odd-title, title: "Lab \\"orders\\" \\\\ queue\\nsecond line", kind: tcp, target: "127.0.0.1:${await closedPort()}", retries: 0 }\n`,
  );
  agent = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: 0 }, logStream: new PassThrough() });
  http = await startServer(agent, '127.0.0.1', 0);
  for (let round = 0; round < 2; round++) await Promise.all(agent.list().map((v) => agent.runNow(v.config.name)));
}, 60_000);
afterAll(async () => {
  await agent?.stop();
  await http?.close();
  await sb?.stop();
});

async function scrape(openMetrics: boolean): Promise<{ type: string; body: string }> {
  const res = await fetch(`${http.url}/metrics`, openMetrics ? { headers: { accept: 'application/openmetrics-text; version=1.0.0' } } : {});
  return { type: res.headers.get('content-type') ?? '', body: await res.text() };
}

describe('exposition formats, strictly parsed', () => {
  it('OpenMetrics: the strict parser accepts it; every family name is unique; counters, gauges and histograms typed', async () => {
    const { type, body } = await scrape(true);
    expect(type).toContain('application/openmetrics-text; version=1.0.0');
    expect(body.endsWith('# EOF\n')).toBe(true);
    const parsed = await parse('openmetrics', body);
    expect(parsed.error).toBeUndefined();
    const fams = parsed.families ?? [];
    const names = fams.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    const byName = new Map(fams.map((f) => [f.name, f]));
    expect(byName.get('vakt_probe_runs')?.type).toBe('counter');
    expect(byName.get('vakt_probe_failures')?.type).toBe('counter');
    expect(byName.get('probe_success')?.type).toBe('gauge');
    expect(byName.get('vakt_probe_duration_seconds')?.type).toBe('histogram');
    expect(byName.get('vakt_step_duration_seconds')?.type).toBe('histogram');
    expect(byName.get('vakt_check_info')?.samples).toEqual(['vakt_check_info']);
    expect(fams.length).toBeGreaterThan(50);
  });

  it("Prometheus text 0.0.4: the parser accepts it; no family name is another family's sample name", async () => {
    const { type, body } = await scrape(false);
    expect(type).toContain('text/plain; version=0.0.4');
    const parsed = await parse('text', body);
    expect(parsed.error).toBeUndefined();
    const fams = parsed.families ?? [];
    // Family names as OpenMetrics would see them (a counter without _total) must not repeat,
    // and no sample may belong to two families.
    const omNames = fams.map((f) => (f.type === 'counter' ? f.name.replace(/_total$/, '') : f.name));
    expect(new Set(omNames).size).toBe(omNames.length);
    const owner = new Map<string, string>();
    for (const f of fams) {
      for (const s of f.samples) {
        expect(owner.get(s), `${s} in ${f.name} and ${owner.get(s)}`).toBeUndefined();
        owner.set(s, f.name);
      }
    }
    // The odd title survived escaping as the same text.
    expect(body).toContain('title="Lab \\"orders\\" \\\\ queue\\nsecond line"');
    expect(fams.reduce((n, f) => n + f.n, 0)).toBeGreaterThan(300);
  });

  it('HEAD /metrics: headers, no body', async () => {
    const res = await fetch(`${http.url}/metrics`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toBe('');
  });
});
