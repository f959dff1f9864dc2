// Services made of redundant checks through a real agent: two tcp paths, one to a peer on
// 127.0.0.1:0 and one to a closed port; the service is degraded while one path works and down
// when none does, as the API (/api/v1/services), the series and the status page say; a reload
// keeps an unchanged service and takes a changed one.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { closedPort, tcpPeer, type Peer } from '../helpers/peers.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-services-'));
const file = join(dir, 'vakt.yaml');
let peer: Peer;
let closed: number;
let agent: Agent;
let http: HttpServer;

const config = (portA: number, portB: number) => `agent: { startSpread: 10ms, labels: { site: dc1 } }
defaults: { interval: 1h, retries: 0 }
checks:
  - { name: ehr-via-fw-a, title: Patient records through firewall A, group: Patient records, kind: tcp, target: "127.0.0.1:${portA}" }
  - { name: ehr-via-fw-b, title: Patient records through firewall B, group: Patient records, kind: tcp, target: "127.0.0.1:${portB}" }
  - { name: pacs, title: Radiology images, group: Imaging, kind: tcp, target: "127.0.0.1:${portA}" }
services:
  - name: ehr-paths
    title: { en: Patient records reachable, sv: Patientjournalen nåbar }
    anyOf: [ehr-via-fw-*]
    memberNoun: { en: firewall paths, sv: brandväggsvägar }
`;

beforeAll(async () => {
  peer = await tcpPeer((s) => s.end());
  closed = await closedPort();
  writeFileSync(file, config(peer.port, closed));
  const logs = new PassThrough();
  logs.resume();
  agent = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
  http = await startServer(agent, '127.0.0.1', 0);
});
afterAll(async () => {
  await agent?.stop();
  await http?.close();
  await peer?.close();
});

const runAll = () => Promise.all(agent.list().map((v) => agent.runNow(v.config.name)));
const getJson = async (path: string) => (await (await fetch(`${http.url}${path}`)).json()) as Record<string, unknown>;

describe('a service of two firewall paths', () => {
  it('one path down: degraded, in the API with its members', async () => {
    await runAll();
    const body = await getJson('/api/v1/services');
    expect(body.services).toEqual([
      {
        name: 'ehr-paths',
        title: 'Patient records reachable',
        group: 'Patient records',
        minUp: 1,
        state: 'degraded',
        observedState: 'degraded',
        since: expect.any(String),
        membersUp: 1,
        members: [
          { name: 'ehr-via-fw-a', title: 'Patient records through firewall A', state: 'ok', observedState: 'ok', since: expect.any(String) },
          { name: 'ehr-via-fw-b', title: 'Patient records through firewall B', state: 'down', observedState: 'down', since: expect.any(String) },
        ],
      },
    ]);
    expect(await getJson('/api/v1/services/ehr-paths')).toEqual((body.services as unknown[])[0]);
    const missing = await fetch(`${http.url}/api/v1/services/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'no service named nope' });
  });

  it('availability: the service counts for its group in place of its members', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const body = (await getJson('/api/v1/availability')) as {
      checks: { name: string; availability: Record<string, { ratio: number } | null> }[];
      services: { name: string; group: string; availability: Record<string, { ratio: number; knownSeconds: number } | null> }[];
      groups: { group: string; availability: Record<string, number | null> }[];
    };
    const check = (n: string) => body.checks.find((c) => c.name === n)?.availability['24h'];
    // Path B has been down since its first run, path A up; the service was up (degraded) all along.
    expect(check('ehr-via-fw-b')?.ratio).toBe(0);
    expect(check('ehr-via-fw-a')?.ratio).toBe(1);
    expect(body.services.map((v) => [v.name, v.group, v.availability['24h']?.ratio])).toEqual([['ehr-paths', 'Patient records', 1]]);
    // The group is the service's, not a mean of its paths (which would say 50 %).
    expect(body.groups.find((g) => g.group === 'Patient records')?.availability['24h']).toBe(1);
    expect(await (await fetch(`${http.url}/`)).text()).toContain(
      '<h2 id="g-patient-records">Patient records</h2>\n<p class="availability">100 % available, last 30 days</p>',
    );
  });

  it('the series: state, up, members, and each member marked', async () => {
    const text = await (await fetch(`${http.url}/metrics`)).text();
    for (const l of [
      'vakt_service_info{service="ehr-paths",group="Patient records",title="Patient records reachable",site="dc1"} 1',
      'vakt_service_status{service="ehr-paths",status="degraded",site="dc1"} 1',
      'vakt_service_up{service="ehr-paths",site="dc1"} 1',
      'vakt_service_members{service="ehr-paths",site="dc1"} 2',
      'vakt_service_members_up{service="ehr-paths",site="dc1"} 1',
      'vakt_service_members_required{service="ehr-paths",site="dc1"} 1',
      'vakt_check_redundant_member{check="ehr-via-fw-a",service="ehr-paths",site="dc1"} 1',
      'vakt_check_redundant_member{check="ehr-via-fw-b",service="ehr-paths",site="dc1"} 1',
    ])
      expect(text).toContain(l);
    expect(text).not.toContain('vakt_check_redundant_member{check="pacs"');
    expect(text.match(/^vakt_service_status\{/gm)).toHaveLength(1);
  });

  it('the status page: one row for the service, counted once, its members not listed', async () => {
    const html = await (await fetch(`${http.url}/?lang=en`)).text();
    expect(html).toContain('<th scope="row">Patient records reachable</th>');
    expect(html).toContain('<span class="word">Working</span> <span class="note">(1 of 2 firewall paths down)</span>');
    expect(html).toContain('1 problem right now.');
    expect(html).toContain('<li><strong>Patient records reachable</strong>: working — 1 of 2 firewall paths down (since');
    expect(html).not.toContain('through firewall');
    const sv = await (await fetch(`${http.url}/?lang=sv`)).text();
    expect(sv).toContain('<th scope="row">Patientjournalen nåbar</th>');
    expect(sv).toContain('(1 av 2 brandväggsvägar nere)');
  });

  it('both paths down: down, up 0, and the page says it is not reachable', async () => {
    writeFileSync(file, config(closed, closed));
    const r = await agent.reload();
    expect(r).toMatchObject({ ok: true, changed: ['ehr-via-fw-a', 'pacs'] });
    await runAll();
    expect(agent.service('ehr-paths')).toMatchObject({ state: 'down', tally: { total: 2, up: 0, down: 2 } });
    const text = await (await fetch(`${http.url}/metrics`)).text();
    expect(text).toContain('vakt_service_status{service="ehr-paths",status="down",site="dc1"} 1');
    expect(text).toContain('vakt_service_up{service="ehr-paths",site="dc1"} 0');
    const html = await (await fetch(`${http.url}/?lang=en`)).text();
    expect(html).toContain('<span class="word">Not reachable</span> <span class="note">(2 of 2 firewall paths down)</span>');
    // The service and pacs: two problems, the paths not counted on their own.
    expect(html).toContain('2 problems right now.');
  });

  it('a reload without the service removes its series', async () => {
    writeFileSync(file, config(closed, closed).replace(/services:[\s\S]*$/, ''));
    expect(await agent.reload()).toMatchObject({ ok: true });
    expect(agent.serviceList()).toEqual([]);
    const text = await (await fetch(`${http.url}/metrics`)).text();
    expect(text).not.toMatch(/^vakt_service_\w+\{/m);
    expect(text).not.toMatch(/^vakt_check_redundant_member\{/m);
    expect(await getJson('/api/v1/services')).toMatchObject({ services: [] });
  });
});
