// The demo's own config (config/default.yaml) pointed at a sandbox started on free ports, for
// tests that run the demo's checks in a real agent.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { defaultConfigFile } from '../../agent/paths.js';
import { SANDBOX_PORTS, type Sandbox, type SandboxPorts } from '../../sandbox/index.js';

/** Writes the demo config for `sb` to a temp file: ports rewritten, `agentLines` added to the agent block, `extraChecks` appended. */
export function demoConfigFor(sb: Sandbox, agentLines: string[], extraChecks = ''): string {
  let text = readFileSync(defaultConfigFile, 'utf8');
  for (const [key, port] of Object.entries(SANDBOX_PORTS))
    text = text.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${sb.ports[key as keyof typeof SANDBOX_PORTS]}`);
  text = text.replaceAll('../sandbox/', `${sandboxDirOfRepo()}/`);
  // Where the demo sets histograms itself, the caller's agent lines decide.
  if (agentLines.some((l) => l.startsWith('histograms:'))) text = text.replace(/^ {2}histograms: .*\n/m, '');
  text = text.replace(/^ {2}listen: .*$/m, ['  listen: 127.0.0.1:0', ...agentLines.map((l) => `  ${l}`)].join('\n'));
  const file = join(mkdtempSync(join(tmpdir(), 'vakt-demo-')), 'demo.yaml');
  writeFileSync(file, `${text}\n${extraChecks}`);
  return file;
}

/** The repository's sandbox folder (certificates and demo secrets). */
export function sandboxDirOfRepo(): string {
  return resolve(dirname(defaultConfigFile), '../sandbox');
}

/** Every sandbox port 0: the sandbox on free ports, for tests that run beside others. */
export function freeSandboxPorts(): SandboxPorts {
  return Object.fromEntries(Object.keys(SANDBOX_PORTS).map((k) => [k, 0])) as SandboxPorts;
}
