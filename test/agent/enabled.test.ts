// enabled: false in the config, placement and command line: validated like any check, placed on
// no agent, marked by vakt validate --site and still run once by vakt probe -c. (The agent's side,
// no runs, no series, the API and reloads, is in agent.test.ts.)
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../config/loader.js';
import { placeChecks } from '../../config/placement.js';
import { runVakt } from '../helpers/cli.js';
import { tcpPeer, type Peer } from '../helpers/peers.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-enabled-'));
let n = 0;
function configFile(text: string, name = `c${n++}.yaml`): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const peers: Peer[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) await p.close();
});

/** A listener that counts the connections it gets. */
async function countingPeer(): Promise<Peer & { connections: () => number }> {
  let count = 0;
  const p = await tcpPeer((s) => {
    count++;
    s.end();
  });
  peers.push(p);
  return { ...p, connections: () => count };
}

describe('enabled: false', () => {
  it('validates like any check; defaults.enabled switches off a whole file, a check may switch itself back on', async () => {
    configFile(
      `defaults: { enabled: false }
checks:
  - { name: new-clinic-edge, kind: tcp, target: "10.62.0.1:22" }
  - { name: new-clinic-dns, kind: dns, target: 10.62.0.53, dns: { name: clinic.test }, enabled: true }
`,
      'new-clinic.yaml',
    );
    const main = configFile(`include: [new-clinic.yaml]
checks:
  - { name: dc-edge, kind: tcp, target: "10.40.0.1:22", dependsOn: [new-clinic-edge] }
`);
    const c = await loadConfigFile(main);
    expect(c.checks.map((x) => [x.name, x.enabled])).toEqual([
      ['dc-edge', undefined],
      ['new-clinic-edge', false],
      ['new-clinic-dns', undefined],
    ]);
    // A disabled check is no less checked: its errors are errors.
    const bad = configFile(`checks:\n  - { name: a, kind: tcp, target: nope, enabled: false }\n  - { name: b, kind: tcp, target: "h:1", enabled: "no" }\n`);
    const r = await runVakt(['validate', bad]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('checks[0].target: expected host:port');
    expect(r.stdout).toContain('checks[1].enabled: expected true or false, found "no"');
  });

  it('placement: a disabled check is neither owned nor elsewhere, and a dependsOn naming it is no remote dependency', () => {
    const checks = Array.from({ length: 12 }, (_, i) => ({ name: `c${i}`, dependsOn: i > 0 ? ['c0'] : [], ...(i === 0 ? { enabled: false } : {}) }));
    const all = placeChecks({ checks }, {});
    expect(all.checks).toHaveLength(11);
    expect(all.disabled.map((c) => c.name)).toEqual(['c0']);
    expect(all.elsewhere).toEqual([]);
    const shards = [0, 1, 2].map((index) => placeChecks({ checks }, { shard: { index, count: 3 } }));
    expect(shards.flatMap((p) => p.disabled.map((c) => c.name))).toEqual(['c0']);
    expect(shards.reduce((sum, p) => sum + p.checks.length, 0)).toBe(11);
    for (const p of shards) {
      expect(p.remote).toEqual([]);
      expect(p.elsewhere.map((c) => c.name)).not.toContain('c0');
    }
  });

  it('vakt validate --site marks it; vakt probe -c runs it once and says it is disabled', async () => {
    const peer = await countingPeer();
    const file = configFile(`checks:
  - { name: live, kind: tcp, target: "127.0.0.1:${peer.port}" }
  - { name: planned, kind: tcp, target: "127.0.0.1:${peer.port}", enabled: false, sites: [dc1] }
`);
    const v = await runVakt(['validate', '--site', 'dc1', file]);
    expect(v.code).toBe(0);
    const lines = v.stdout.trimEnd().split('\n');
    expect(lines.slice(0, 2).map((l) => l.split(/\s{2,}/))).toEqual([
      ['live', 'tcp', `127.0.0.1:${peer.port}`, 'every 30s', 'Other'],
      ['planned', 'disabled', 'tcp', `127.0.0.1:${peer.port}`, 'every 30s', 'Other'],
    ]);
    expect(lines[2]).toBe('1 of 2 checks run at site dc1 (and 1 disabled)');
    expect(lines[3]).toBe(`${file}: ok (2 checks; 1 disabled)`);
    const p = await runVakt(['probe', '-c', file, '--site', 'dc1', 'planned']);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain('note      disabled (enabled: false): the agent does not run it; run once here');
    expect(p.stdout).toContain('result    OK');
    expect(peer.connections()).toBe(1);
    const json = await runVakt(['probe', '-c', file, '--site', 'dc1', 'planned', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ check: 'planned', enabled: false, ok: true });
    expect(json.stderr).toContain('check "planned" is disabled (enabled: false)');
    const elsewhere = await runVakt(['probe', '-c', file, '--site', 'dc2', 'planned']);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toContain('vakt: check "planned" does not run at site dc2 (sites: dc1)');
  });
});
