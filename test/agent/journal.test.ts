// The incident journal (agent/journal.ts): records survive a restart, a torn last line after a
// crash is skipped and the next record starts clean, the file rotates within its bounds, a
// journal that cannot be written leaves the agent running; and an agent writes its state
// changes and incidents to it and serves them at /api/v1/incidents?since=… after a restart.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { Journal, type JournalRecord } from '../../agent/journal.js';
import { parseSince, startServer, type HttpServer } from '../../agent/server.js';
import { closedPort } from '../helpers/peers.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `j${n++}`, 'journal.jsonl');

function logger() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return { log: pino({ level: 'info' }, out), text: () => text };
}

const T0 = Date.now() - 3_600_000;
const opened: JournalRecord = {
  t: T0 + 2000,
  type: 'incident',
  event: 'opened',
  cause: 'dns-ns1',
  since: T0 + 1000,
  affected: ['ehr-login'],
  reason: 'timeout',
};

describe('the journal file', () => {
  it('knows when planned work held a check, also after a restart', async () => {
    const file = fresh();
    const a = new Journal({ file, maxBytes: 1 << 20, keep: 1 }, logger().log);
    await a.open();
    const w = { id: 'api-1', title: 'DNS upgrade', source: 'api' as const, checks: ['dns-ns1'], start: T0, end: T0 + 60_000, verify: true };
    a.append({ t: T0, type: 'maintenance', event: 'started', ...w });
    a.append({ t: T0 + 60_000, type: 'maintenance', event: 'ended', ...w });
    await a.close();
    const b = new Journal({ file, maxBytes: 1 << 20, keep: 1 }, logger().log);
    await b.open();
    for (const j of [a, b]) {
      expect(j.plannedAt('dns-ns1', T0 + 1000)).toBe(true);
      expect(j.plannedAt('dns-ns1', T0 - 1)).toBe(false);
      expect(j.plannedAt('dns-ns1', T0 + 60_000)).toBe(false);
      expect(j.plannedAt('ehr', T0 + 1000)).toBe(false);
    }
    await b.close();
  });

  it('keeps state changes and incidents across a restart', async () => {
    const file = fresh();
    const a = new Journal({ file, maxBytes: 1 << 20, keep: 2 }, logger().log);
    await a.open();
    a.append({ t: T0, type: 'state', check: 'dns-ns1', from: 'ok', to: 'down', reason: 'timeout' });
    a.append(opened);
    a.append({ ...opened, t: T0 + 3000, event: 'updated', affected: ['ehr-login', 'lab-orders', 'pacs'] });
    a.append({ ...opened, t: T0 + 9000, event: 'closed', affected: ['ehr-login'] });
    a.append({ t: T0 + 9000, type: 'state', check: 'dns-ns1', from: 'down', to: 'ok' });
    await a.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(JSON.parse(lines[1] as string)).toEqual(opened);

    const b = new Journal({ file, maxBytes: 1 << 20, keep: 2 }, logger().log);
    await b.open();
    expect(b.incidents(T0)).toEqual([
      {
        cause: 'dns-ns1',
        since: T0 + 1000,
        until: T0 + 9000,
        affected: ['ehr-login'],
        affectedCount: 1,
        peakAffected: 3,
        reason: 'timeout',
        openedAt: T0 + 2000,
        updatedAt: T0 + 9000,
      },
    ]);
    expect(b.incidents(T0 + 10_000)).toEqual([]);
    expect(b.history('dns-ns1', T0 - 1)).toEqual([
      { t: T0, state: 'down' },
      { t: T0 + 9000, state: 'ok' },
    ]);
    await b.close();
  });

  it('skips a torn last line after a crash, says so, and starts the next record on a line of its own', async () => {
    const file = fresh();
    const a = new Journal({ file, maxBytes: 1 << 20, keep: 1 }, logger().log);
    await a.open();
    a.append(opened);
    await a.close();
    appendFileSync(file, '{"t":1,"type":"state","check":"half-writ'); // the crash
    const { log, text } = logger();
    const b = new Journal({ file, maxBytes: 1 << 20, keep: 1 }, log);
    await b.open();
    expect(text()).toContain('skipped lines that are not records');
    expect(b.incidents(0).map((i) => i.cause)).toEqual(['dns-ns1']);
    b.append({ ...opened, t: T0 + 5000, event: 'closed' });
    await b.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines[1]).toBe('{"t":1,"type":"state","check":"half-writ');
    expect(JSON.parse(lines[2] as string)).toMatchObject({ event: 'closed' });
    const c = new Journal({ file, maxBytes: 1 << 20, keep: 1 }, logger().log);
    await c.open();
    expect(c.incidents(0)).toMatchObject([{ cause: 'dns-ns1', until: T0 + 5000 }]);
    await c.close();
  });

  it('rotates at maxSize, keeps `keep` old files, and reads them all back', async () => {
    const file = fresh();
    const j = new Journal({ file, maxBytes: 4096, keep: 2 }, logger().log);
    await j.open();
    for (let i = 0; i < 400; i++) {
      j.append({ t: T0 + i, type: 'state', check: `c${i % 7}`, from: i % 2 ? 'down' : 'ok', to: i % 2 ? 'ok' : 'down' });
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await j.close();
    const files = readdirSync(join(file, '..')).sort();
    expect(files).toEqual(['journal.jsonl', 'journal.jsonl.1', 'journal.jsonl.2']);
    for (const f of files) expect(statSync(join(file, '..', f)).size).toBeLessThanOrEqual(4096);
    const back = new Journal({ file, maxBytes: 4096, keep: 2 }, logger().log);
    await back.open();
    const last = back.history('c0', 0);
    expect(last[last.length - 1]?.t).toBe(T0 + 399 - (399 % 7));
    await back.close();
  });

  it('after a crash (a start with no stop before it) the time since the last record counts neither way, and its open incidents end there', () => {
    const H = 3_600_000;
    const now = Date.parse('2026-12-03T12:00:00Z');
    const j = new Journal({ maxBytes: 1 << 20, keep: 0 }, logger().log, () => now);
    j.append({ t: now - 10 * H, type: 'agent', event: 'started' });
    j.append({ t: now - 10 * H, type: 'state', check: 'ehr', from: 'unknown', to: 'down' });
    j.append({ t: now - 10 * H, type: 'incident', event: 'opened', cause: 'ehr', since: now - 10 * H, affected: [] });
    j.append({ t: now - 9 * H, type: 'agent', event: 'alive' }); // last sign of life; then the crash
    j.append({ t: now - 2 * H, type: 'agent', event: 'started' });
    j.append({ t: now - 2 * H, type: 'state', check: 'ehr', from: 'unknown', to: 'ok' });
    const a = j.availability('ehr', 24 * H, now);
    expect(a?.downMs).toBe(H);
    expect(a?.knownMs).toBe(3 * H);
    expect(j.incidents(0)).toMatchObject([{ cause: 'ehr', until: now - 9 * H, interrupted: true }]);
  });

  it('an incident record names at most 100 affected checks and counts them all', async () => {
    const file = fresh();
    const j = new Journal({ file, maxBytes: 1 << 20, keep: 0 }, logger().log);
    await j.open();
    const many = Array.from({ length: 2000 }, (_, i) => `c${i}`);
    j.append({ ...opened, event: 'updated', affected: many });
    await j.close();
    const rec = JSON.parse(readFileSync(file, 'utf8').trim()) as { affected: string[]; count: number };
    expect(rec.affected).toHaveLength(100);
    expect(rec.count).toBe(2000);
    const back = new Journal({ file, maxBytes: 1 << 20, keep: 0 }, logger().log);
    await back.open();
    expect(back.incidents(0)[0]?.peakAffected).toBe(2000);
    await back.close();
  });

  it('a journal file removed by hand is started afresh at the next rotation, nothing stalls', async () => {
    const file = fresh();
    const j = new Journal({ file, maxBytes: 2048, keep: 1 }, logger().log);
    await j.open();
    for (let i = 0; i < 10; i++) j.append({ t: T0 + i, type: 'state', check: 'a', from: 'ok', to: 'down' });
    await new Promise((r) => setTimeout(r, 50));
    rmSync(file);
    for (let i = 0; i < 60; i++) j.append({ t: T0 + 100 + i, type: 'state', check: 'a', from: i % 2 ? 'down' : 'ok', to: i % 2 ? 'ok' : 'down' });
    await j.close();
    expect(j.dropped).toBe(0);
    expect(readFileSync(file, 'utf8').trim().split('\n').length).toBeGreaterThan(0);
  });

  it('a journal that cannot be written keeps the agent going and says why (once)', async () => {
    const ro = join(dir, `ro${n++}`);
    mkdirSync(ro);
    writeFileSync(join(ro, 'journal.jsonl'), '');
    chmodSync(join(ro, 'journal.jsonl'), 0o444);
    chmodSync(ro, 0o555);
    const { log, text } = logger();
    const j = new Journal({ file: join(ro, 'journal.jsonl'), maxBytes: 1 << 20, keep: 1 }, log);
    await j.open();
    j.append(opened);
    await j.close();
    // As root the file may be writable all the same; either way nothing throws and the index has it.
    expect(j.incidents(0).map((i) => i.cause)).toEqual(['dns-ns1']);
    if (process.getuid?.() !== 0) expect(text()).toContain('journal: cannot open the file');
    chmodSync(ro, 0o755);
  });

  it('availability: up time over known time, per window; unknown and the agent not running count neither way', () => {
    const H = 3_600_000;
    const now = Date.parse('2026-12-03T12:00:00Z');
    const j = new Journal({ maxBytes: 1 << 20, keep: 0 }, logger().log, () => now);
    // 10 days ago ok; 2 h down last night; stopped for 1 h this morning; degraded since.
    j.append({ t: now - 240 * H, type: 'state', check: 'ehr', from: 'unknown', to: 'ok' });
    j.append({ t: now - 9 * H, type: 'state', check: 'ehr', from: 'ok', to: 'down' });
    j.append({ t: now - 7 * H, type: 'state', check: 'ehr', from: 'down', to: 'ok' });
    j.append({ t: now - 4 * H, type: 'agent', event: 'stopped' });
    j.append({ t: now - 3 * H, type: 'agent', event: 'started' });
    j.append({ t: now - 3 * H + 1000, type: 'state', check: 'ehr', from: 'unknown', to: 'degraded' });
    const day = j.availability('ehr', 24 * H, now);
    expect(day?.downMs).toBe(2 * H);
    expect(day?.knownMs).toBe(23 * H - 1000);
    expect(day?.ratio).toBeCloseTo(1 - (2 * H) / (23 * H - 1000), 9);
    const month = j.availability('ehr', 30 * 24 * H, now);
    expect(month?.knownMs).toBe(239 * H - 1000);
    expect(j.availability('ehr', H / 2, now - 8 * H)?.ratio).toBe(0);
    expect(j.availability('nothing-known', 24 * H, now)).toBeUndefined();
  });

  it('parses since as a time or a duration back from now, never more than 30 days back', () => {
    const now = Date.parse('2026-12-03T12:00:00Z');
    expect(parseSince('24h', now)).toBe(now - 86_400_000);
    expect(parseSince('2026-12-03T03:00:00Z', now)).toBe(Date.parse('2026-12-03T03:00:00Z'));
    expect(parseSince('2026-12-02', now)).toBe(Date.parse('2026-12-02'));
    expect(parseSince('400d', now)).toBe(now - 30 * 86_400_000);
    expect(parseSince('yesterday', now)).toBeUndefined();
    expect(parseSince('2026-13-45T99:00:00Z', now)).toBeUndefined();
  });
});

describe('an agent and its journal', () => {
  const running: { agent: Agent; http: HttpServer }[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) {
      await r.agent.stop();
      await r.http.close();
    }
  });

  it('writes state changes and incidents, and serves them after a restart at /api/v1/incidents?since=', async () => {
    const state = join(dir, `agent${n++}`);
    mkdirSync(state);
    const port = await closedPort();
    const cfg = join(state, 'vakt.yaml');
    writeFileSync(
      cfg,
      `agent: { stateFile: state.json, startSpread: 10ms }
defaults: { interval: 1h, timeout: 500ms, retries: 0 }
checks:
  - { name: dns, title: Internal DNS, kind: tcp, target: "127.0.0.1:${port}" }
  - { name: ehr-login, kind: tcp, target: "127.0.0.1:${port}", dependsOn: [dns] }
`,
    );
    const boot = async () => {
      const logs = new PassThrough();
      logs.resume();
      const agent = await Agent.start({ configFile: cfg, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
      const http = await startServer(agent, '127.0.0.1', 0);
      running.push({ agent, http });
      return { agent, http };
    };
    const first = await boot();
    await first.agent.runNow('dns');
    await first.agent.runNow('ehr-login');
    await new Promise((r) => setImmediate(r));
    expect(first.agent.incidents().map((i) => i.cause)).toEqual(['dns']);
    for (const r of running.splice(0)) {
      await r.agent.stop();
      await r.http.close();
    }
    const records = readFileSync(join(state, 'journal.jsonl'), 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as JournalRecord);
    expect(
      records.map((r) => (r.type === 'state' ? `${r.check}:${r.to}` : r.type === 'incident' ? `incident ${r.event} ${r.cause}` : `agent ${r.event}`)),
    ).toEqual(['agent started', 'dns:down', 'incident opened dns', 'ehr-login:down', 'incident updated dns', 'agent stopped']);

    const second = await boot();
    const body = (await (await fetch(`${second.http.url}/api/v1/incidents?since=1h`)).json()) as { incidents: Record<string, unknown>[] };
    expect(body.incidents).toMatchObject([
      { cause: 'dns', title: 'Internal DNS', open: false, interrupted: true, reason: 'refused', peakAffected: 1, affected: [{ name: 'ehr-login' }] },
    ]);
    expect((await fetch(`${second.http.url}/api/v1/incidents?since=last-week`)).status).toBe(400);
    const avail = (await (await fetch(`${second.http.url}/api/v1/availability`)).json()) as {
      windows: string[];
      checks: { name: string; availability: Record<string, { ratio: number } | null> }[];
      groups: { group: string; availability: Record<string, number | null> }[];
    };
    expect(avail.windows).toEqual(['24h', '7d', '30d']);
    // Both checks were down from their first run to the stop: known only as down.
    expect(avail.checks.map((c) => [c.name, c.availability['24h']?.ratio])).toEqual([
      ['dns', 0],
      ['ehr-login', 0],
    ]);
    expect(avail.groups).toEqual([{ group: 'Other', availability: { '24h': 0, '7d': 0, '30d': 0 } }]);
    // Without since: the open incidents only, as before (none yet after the restart).
    expect(((await (await fetch(`${second.http.url}/api/v1/incidents`)).json()) as { incidents: unknown[] }).incidents).toEqual([]);
  });
});
