// The command line: help for every command, probe output and exit codes, usage errors.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runVakt } from '../helpers/cli.js';
import { closedPort, tcpPeer, type Peer } from '../helpers/peers.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-cli-'));
const peers: Peer[] = [];
afterAll(async () => {
  for (const p of peers) await p.close();
});

describe('vakt CLI', () => {
  it('--help lists the commands; each command has its own help', async () => {
    const main = await runVakt(['--help']);
    expect(main.code).toBe(0);
    for (const c of ['run', 'validate', 'probe', 'demo']) expect(main.stdout).toContain(c);
    for (const c of ['run', 'validate', 'probe', 'demo']) {
      const r = await runVakt([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: vakt ${c}`);
    }
  });

  it('unknown commands and options are usage errors (exit 2)', async () => {
    expect((await runVakt(['frobnicate'])).code).toBe(2);
    const r = await runVakt(['run', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bogus');
    expect((await runVakt(['run'])).stderr).toContain('-c FILE');
  });

  it('probe: prints every phase and the verdict; exit 0 on success, 1 on failure', async () => {
    const p = await tcpPeer((s) => s.end('220 ready\r\n'));
    peers.push(p);
    const down = await closedPort();
    const file = join(dir, 'p.yaml');
    writeFileSync(
      file,
      `checks:\n  - { name: smtp, kind: tcp, target: "127.0.0.1:${p.port}", tcp: { receive: "^220 " } }\n  - { name: gone, kind: tcp, target: "127.0.0.1:${down}" }\n`,
    );
    const ok = await runVakt(['probe', '-c', file, 'smtp']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^connect\s+\d+\.\d{3} ms$/m);
    expect(ok.stdout).toMatch(/^expect\s+\d+\.\d{3} ms$/m);
    expect(ok.stdout).toMatch(/^tls\s+-$/m);
    expect(ok.stdout).toContain('result    OK');
    const bad = await runVakt(['probe', '-c', file, 'gone']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('result    FAILED: refused in connect');
    const json = await runVakt(['probe', '-c', file, 'gone', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ check: 'gone', ok: false, failure: { reason: 'refused' } });
    const missing = await runVakt(['probe', '-c', file, 'nope']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no check named "nope"');
  });

  it('run with a broken config prints the errors and exits 1', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'checks:\n  - { name: x, kind: tcp, target: nope }\n');
    const r = await runVakt(['run', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:2:35: checks[0].target: expected host:port`);
  });
});
