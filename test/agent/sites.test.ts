// An agent at a site: it runs only the checks placed there (config/placement.ts), its series
// carry the site it was given, and a reload re-reads every included file and keeps the site.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { tcpPeer, type Peer } from '../helpers/peers.js';
import { value } from '../helpers/prom.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-sites-'));
mkdirSync(join(dir, 'checks.d'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const running: Agent[] = [];
const peers: Peer[] = [];
afterEach(async () => {
  for (const a of running.splice(0)) await a.stop();
  for (const p of peers.splice(0)) await p.close();
});

async function boot(site?: string) {
  const logs = new PassThrough();
  let text = '';
  logs.on('data', (d: Buffer) => (text += d.toString()));
  const agent = await Agent.start({ configFile: join(dir, 'vakt.yaml'), listen: { host: '127.0.0.1', port: 0 }, logStream: logs, ...(site ? { site } : {}) });
  running.push(agent);
  return { agent, logs: () => text };
}

const names = (agent: Agent) =>
  agent
    .list()
    .map((v) => v.config.name)
    .sort();

describe('an agent at a site', () => {
  it('runs only the checks placed at its site; --site is its site label; a reload re-reads the included files and keeps the site', async () => {
    const p = await tcpPeer((s) => s.end());
    peers.push(p);
    const check = (name: string, extra = '') => `  - { name: ${name}, kind: tcp, target: "127.0.0.1:${p.port}"${extra} }\n`;
    writeFileSync(
      join(dir, 'vakt.yaml'),
      `agent: { labels: { site: dc1 }, startSpread: 10ms }\nsites: [dc1, clinic-a]\ndefaults: { interval: 1s, timeout: 500ms }\ninclude: ["checks.d/*.yaml"]\nchecks:\n${check('everywhere')}`,
    );
    writeFileSync(join(dir, 'checks.d/dc.yaml'), `checks:\n${check('dc-only', ', sites: [dc1]')}`);
    writeFileSync(join(dir, 'checks.d/clinic.yaml'), `checks:\n${check('clinic-only', ', sites: [clinic-a]')}`);

    const { agent, logs } = await boot('clinic-a');
    expect(names(agent)).toEqual(['clinic-only', 'everywhere']);
    expect(agent.labels).toEqual({ site: 'clinic-a' });
    expect(logs()).toContain('site clinic-a (--site) replaces agent.labels.site \\"dc1\\" as this agent\'s site label');
    expect(logs()).toMatch(/"files":3,"checks":2,"site":"clinic-a","elsewhere":1,"msg":"config loaded, scheduling checks"/);
    const { body } = await agent.metrics.render(false);
    expect(value(body, 'vakt_checks_configured', { kind: 'tcp', site: 'clinic-a' })).toBe(2);
    expect(body).not.toContain('check="dc-only"');

    // A new check in an included file, one moved to this site, one moved away.
    writeFileSync(join(dir, 'checks.d/dc.yaml'), `checks:\n${check('dc-only', ', sites: [dc1, clinic-a]')}${check('new-everywhere')}`);
    writeFileSync(join(dir, 'checks.d/clinic.yaml'), `checks:\n${check('clinic-only', ', sites: [dc1]')}`);
    const result = await agent.reload();
    expect(result).toMatchObject({ ok: true, added: ['dc-only', 'new-everywhere'], removed: ['clinic-only'], changed: [], unchanged: 1 });
    expect(names(agent)).toEqual(['dc-only', 'everywhere', 'new-everywhere']);
    expect(agent.labels.site).toBe('clinic-a');

    // An error in an included file fails the reload, named by that file; the running checks stay.
    const line = check('clinic-only', ', sites: [clinic-b]');
    writeFileSync(join(dir, 'checks.d/clinic.yaml'), `checks:\n${line}`);
    const bad = await agent.reload();
    expect(bad.ok).toBe(false);
    expect(bad.errors).toEqual([
      `${join(dir, 'checks.d/clinic.yaml')}:2:${line.indexOf('clinic-b') + 1}: checks[0].sites[0]: expected one of the declared sites (dc1, clinic-a), found "clinic-b" (did you mean "clinic-a"?)`,
    ]);
    expect(names(agent)).toEqual(['dc-only', 'everywhere', 'new-everywhere']);
  });

  it('without --site: VAKT_SITE, else agent.labels.site; a site no check names runs the checks without sites', async () => {
    const p = await tcpPeer((s) => s.end());
    peers.push(p);
    writeFileSync(
      join(dir, 'vakt.yaml'),
      `agent: { labels: { site: dc1 } }\ninclude: []\nchecks:\n  - { name: all, kind: tcp, target: "127.0.0.1:${p.port}" }\n  - { name: dc, kind: tcp, target: "127.0.0.1:${p.port}", sites: [dc1] }\n`,
    );
    expect(names((await boot()).agent)).toEqual(['all', 'dc']);
    process.env.VAKT_SITE = 'clinic-z';
    try {
      const { agent } = await boot();
      expect(names(agent)).toEqual(['all']);
      expect(agent.labels.site).toBe('clinic-z');
    } finally {
      delete process.env.VAKT_SITE;
    }
  });
});
