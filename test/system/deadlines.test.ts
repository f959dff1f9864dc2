// Every kind honours its run's deadline against a host that drops connection attempts (runs as
// root). A firewall that silently DROPs is the first symptom of incident 1; a probe that waits
// on past its deadline there stalls its check, and one that keeps sockets open delays shutdown.
// Here one loopback port DROPs every packet (tcp and udp) and an agent runs 200 oidc checks and
// a few of every other kind against it: every run must end as a timeout at its deadline (none
// "ignored its abort signal"), and SIGTERM must stop the agent cleanly while they are in flight.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnVakt } from '../helpers/cli.js';
import { freePort, IptablesRules, removeStaleRules, requireRoot, run, waitFor } from './helpers.js';

const rules = new IptablesRules();
let port: number;

beforeAll(async () => {
  requireRoot();
  await run('iptables', ['--version']);
  await removeStaleRules();
  port = await freePort();
  for (const proto of ['tcp', 'udp']) await rules.add('INPUT', ['-i', 'lo', '-p', proto, '--dport', String(port), '-j', 'DROP']);
});

afterAll(async () => {
  await rules.removeAll();
});

interface ApiCheck {
  name: string;
  kind: string;
  lastResult: { result: string; duration?: number; failure: { phase: string; reason: string; message: string } | null } | null;
}

function config(agentPort: number): string {
  const t = `127.0.0.1:${port}`;
  const lines: string[] = [`agent: { listen: "127.0.0.1:${agentPort}", logLevel: info }`, 'defaults: { interval: 4s, timeout: 2s }', 'checks:'];
  const secret = '{ env: VAKT_TEST_DEADLINE_SECRET }';
  for (let i = 0; i < 200; i++)
    lines.push(`  - { name: oidc-${i}, kind: oidc, target: "http://${t}/realms/x", secrets: { s: ${secret} }, oidc: { clientId: vakt, clientSecret: s } }`);
  for (let i = 0; i < 5; i++) {
    lines.push(
      `  - { name: tcp-${i}, kind: tcp, target: "${t}" }`,
      `  - { name: tls-${i}, kind: tcp, target: "${t}", tcp: { tls: true } }`,
      `  - { name: http-${i}, kind: http, target: "http://${t}/" }`,
      `  - { name: ldap-${i}, kind: ldap, target: "ldap://${t}", secrets: { s: ${secret} }, ldap: { bindDn: "cn=probe,dc=x", password: s } }`,
      `  - { name: mllp-${i}, kind: mllp, target: "${t}" }`,
      `  - { name: amqp-${i}, kind: amqp, target: "${t}" }`,
      `  - { name: queue-${i}, kind: queue, target: "http://${t}/", secrets: { s: ${secret} }, queue: { source: rabbitmq, queues: [q], username: u, password: s } }`,
      `  - { name: dns-${i}, kind: dns, target: "${t}", dns: { name: example.org, transport: udp } }`,
      `  - { name: dnstcp-${i}, kind: dns, target: "${t}", dns: { name: example.org, transport: tcp } }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

describe('deadlines against a port that drops everything', () => {
  it('every run of every kind ends as a timeout at its deadline, and SIGTERM stops the agent cleanly with them in flight', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vakt-deadlines-'));
    const file = join(dir, 'vakt.yaml');
    const agentPort = await freePort();
    writeFileSync(file, config(agentPort));
    const child = spawnVakt(['run', '-c', file], { VAKT_TEST_DEADLINE_SECRET: 'Dl-secret-1234' });
    let log = '';
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const checks = await waitFor(
        'a finished run of every check',
        async () => {
          const res = await fetch(`http://127.0.0.1:${agentPort}/api/v1/checks`).catch(() => undefined);
          if (!res?.ok) return undefined;
          const all = (await res.json()) as { checks: ApiCheck[] };
          return all.checks.length === 245 && all.checks.every((c) => c.lastResult !== null) ? all.checks : undefined;
        },
        60_000,
        500,
      );
      for (const c of checks) {
        expect(c.lastResult?.result, c.name).toBe('failed');
        expect(c.lastResult?.failure?.reason, `${c.name}: ${c.lastResult?.failure?.message}`).toBe('timeout');
      }
      // A second round is under way now: stop with runs in flight.
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(log).not.toContain('ignored its abort signal');
    expect(log).toContain('agent stopped');
    expect(log).not.toContain('shutdown forced');
  }, 120_000);
});
