// Planned work and change verification through a real agent: a window made through the admin
// API puts its check in `maintenance` (API, series) while it keeps running; when it ends, the
// check runs at once and is compared with its level before the window (a web server made slower
// during the window is a regression; put right, the regression clears); windows outlive a
// restart through the journal; the API refuses what it cannot take. Config windows (one-off and
// cron in a time zone) are in the PlannedWork tests below, on a clock of their own.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { compare, levelOf } from '../../agent/change.js';
import { Journal } from '../../agent/journal.js';
import { PlannedWork, type Window } from '../../agent/maintenance.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { DEFAULT_VERIFY, resolveMaintenance, maintenanceWindowSchema } from '../../config/maintenance.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-maintenance-'));
const running: { agent: Agent; http: HttpServer }[] = [];
let web: Server;
let delayMs = 0;

afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.agent.stop();
    await r.http.close();
  }
});
afterAll(() => web?.close());

async function webServer(): Promise<number> {
  web = createServer((_req, res) => setTimeout(() => res.end('ok'), delayMs));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  return (web.address() as AddressInfo).port;
}

async function boot(cfg: string): Promise<{ agent: Agent; http: HttpServer; url: string }> {
  const logs = new PassThrough();
  logs.resume();
  const agent = await Agent.start({ configFile: cfg, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
  const http = await startServer(agent, '127.0.0.1', 0);
  running.push({ agent, http });
  return { agent, http, url: http.url };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const post = (url: string, body: unknown, type = 'application/json') =>
  fetch(url, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });
const getJson = async (url: string) => (await (await fetch(url)).json()) as Record<string, unknown>;

describe('planned work through the admin API, and the change verification after it', () => {
  it('maintenance while open; a change that made the check slower is a regression; put right, it clears', async () => {
    const port = await webServer();
    const cfg = join(dir, 'api.yaml');
    writeFileSync(
      cfg,
      `agent: { stateFile: state.json, startSpread: 10ms }
defaults: { interval: 1h, timeout: 5s, retries: 0, retryInterval: 20ms }
checks:
  - { name: cosmic-login, kind: http, target: "http://127.0.0.1:${port}/" }
  - { name: other, kind: http, target: "http://127.0.0.1:${port}/" }
`,
    );
    const { agent, url } = await boot(cfg);
    delayMs = 0;
    for (let i = 0; i < 6; i++) await agent.runNow('cosmic-login');
    await agent.runNow('other');

    const made = await post(`${url}/api/v1/maintenance`, { title: 'Windows security update', checks: ['cosmic-*'], duration: '1h' });
    expect(made.status).toBe(201);
    const w = (await made.json()) as { id: string; open: boolean; checks: string[]; by: string };
    expect(w).toMatchObject({ open: true, checks: ['cosmic-login'], by: 'loopback' });
    const during = await getJson(`${url}/api/v1/checks/cosmic-login`);
    expect(during.state).toBe('maintenance');
    expect(during.observedState).toBe('ok');
    expect(during.maintenance).toMatchObject({ window: w.id, title: 'Windows security update' });
    expect((await getJson(`${url}/api/v1/checks/other`)).state).toBe('ok');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain(`vakt_check_maintenance{check="cosmic-login",window="${w.id}"} 1`);
    expect(metrics).not.toContain('vakt_check_maintenance{check="other"');
    expect(metrics).toContain('vakt_maintenance_windows_active 1');

    // The update: every request now takes 300 ms more. Runs go on during the window.
    delayMs = 300;
    await agent.runNow('cosmic-login');
    expect((await getJson(`${url}/api/v1/checks/cosmic-login`)).state).toBe('maintenance');

    const ended = await fetch(`${url}/api/v1/maintenance/${w.id}`, { method: 'DELETE' });
    expect(await ended.json()).toEqual({ id: w.id, result: 'ended' });
    // The check runs at once, and twice more at its retry interval; then the verdict.
    const after = await until('a change regression', async () => {
      const c = await getJson(`${url}/api/v1/checks/cosmic-login`);
      return c.change === null ? undefined : c;
    });
    expect(after.state).toBe('ok');
    expect(after.maintenance).toBeNull();
    const change = after.change as { message: string; finding: { kind: string; factor: number } };
    expect(change.finding.kind).toBe('slower');
    expect(change.finding.factor).toBeGreaterThan(2);
    expect(change.message).toMatch(/^after the planned work ended at \d\d:\d\d, cosmic-login .*takes \d+(\.\d)?× as long as before \(\d+ ms, was \d+ ms\)$/);
    const m2 = await (await fetch(`${url}/metrics`)).text();
    expect(m2).toContain(`vakt_check_change_regression{check="cosmic-login",window="${w.id}"} 1`);
    expect(m2).toContain('vakt_change_verifications_total{result="regressed"} 1');
    expect(m2).not.toContain('vakt_check_maintenance{');
    const listed = (await getJson(`${url}/api/v1/maintenance`)) as { recent: { id: string; state: string; verification: { state: string }[] }[] };
    expect(listed.recent.find((r) => r.id === w.id)?.verification.map((v) => v.state)).toEqual(['regressed']);

    // Put right: back at its level for 3 runs in a row, the regression clears.
    delayMs = 0;
    let runs = 0;
    // (A run the agent itself disturbed says nothing either way: on a busy machine it may take more than 3.)
    while ((await getJson(`${url}/api/v1/checks/cosmic-login`)).change !== null && runs < 20) {
      await agent.runNow('cosmic-login');
      runs++;
    }
    expect(runs).toBeGreaterThanOrEqual(3);
    expect((await getJson(`${url}/api/v1/checks/cosmic-login`)).change).toBeNull();
    expect(await (await fetch(`${url}/metrics`)).text()).not.toContain('vakt_check_change_regression{');
    const changes = (await getJson(`${url}/api/v1/changes`)) as { changes: { state: string; check: string }[] };
    expect(changes.changes.map((c) => c.state)).toEqual(['cleared']);
    await agent.journal.close();
    const records = readFileSync(join(dir, 'journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; event: string });
    expect(records.filter((r) => r.type === 'maintenance' || r.type === 'change').map((r) => `${r.type} ${r.event}`)).toEqual([
      'maintenance scheduled',
      'maintenance started',
      'maintenance ended',
      'change regressed',
      'change cleared',
    ]);
  });

  it('a change that broke nothing is verified; an operator may accept a regression; windows to come outlive a restart', async () => {
    const port = await webServer();
    mkdirSync(join(dir, 'restart'));
    const cfg = join(dir, 'restart', 'restart.yaml');
    writeFileSync(
      cfg,
      `agent: { stateFile: restart-state.json, startSpread: 10ms }
defaults: { interval: 1h, timeout: 5s, retries: 0, retryInterval: 20ms }
checks:
  - { name: pacs, kind: http, target: "http://127.0.0.1:${port}/" }
  - { name: lab, kind: http, target: "http://127.0.0.1:${port}/" }
`,
    );
    delayMs = 0;
    const first = await boot(cfg);
    for (let i = 0; i < 4; i++) {
      await first.agent.runNow('pacs');
      await first.agent.runNow('lab');
    }
    const id = ((await (await post(`${first.url}/api/v1/maintenance`, { checks: ['pacs', 'lab'], duration: '1h' })).json()) as { id: string }).id;
    delayMs = 0;
    await fetch(`${first.url}/api/v1/maintenance/${id}`, { method: 'DELETE' });
    const verified = await until('both verified', async () => {
      const c = (await getJson(`${first.url}/api/v1/maintenance`)) as { recent: { id: string; verification: { check: string; state: string }[] }[] };
      const v = c.recent.find((r) => r.id === id)?.verification ?? [];
      return v.length === 2 ? v : undefined;
    });
    expect(verified.map((v) => [v.check, v.state]).sort()).toEqual([
      ['lab', 'verified'],
      ['pacs', 'verified'],
    ]);

    // A regression an operator accepts as the new normal.
    const id2 = ((await (await post(`${first.url}/api/v1/maintenance`, { checks: ['lab'], duration: '1h' })).json()) as { id: string }).id;
    delayMs = 400;
    await fetch(`${first.url}/api/v1/maintenance/${id2}`, { method: 'DELETE' });
    await until('lab regressed', async () => ((await getJson(`${first.url}/api/v1/checks/lab`)).change === null ? undefined : true));
    const accepted = await fetch(`${first.url}/api/v1/changes/lab`, { method: 'DELETE' });
    expect(await accepted.json()).toEqual({ check: 'lab', accepted: true, window: id2 });
    expect((await getJson(`${first.url}/api/v1/checks/lab`)).change).toBeNull();
    expect((await fetch(`${first.url}/api/v1/changes/lab`, { method: 'DELETE' })).status).toBe(404);
    delayMs = 0;

    // Scheduled for tomorrow: still there after a restart.
    const start = new Date(Date.now() + 86_400_000).toISOString();
    const later = await post(`${first.url}/api/v1/maintenance`, { checks: ['pacs'], start, duration: '2h', title: 'PACS upgrade' });
    expect(later.status).toBe(201);
    const laterId = ((await later.json()) as { id: string }).id;
    for (const r of running.splice(0)) {
      await r.agent.stop();
      await r.http.close();
    }
    const second = await boot(cfg);
    const planned = (await getJson(`${second.url}/api/v1/maintenance`)) as { upcoming: { id: string; title: string; checks: string[] }[]; open: unknown[] };
    expect(planned.open).toEqual([]);
    expect(planned.upcoming).toEqual([expect.objectContaining({ id: laterId, title: 'PACS upgrade', checks: ['pacs'] })]);
    // A new window made after the restart does not reuse an id.
    const next = (await (await post(`${second.url}/api/v1/maintenance`, { checks: ['lab'], duration: '1h' })).json()) as { id: string };
    expect([id, id2, laterId]).not.toContain(next.id);
    // Cancelled before it starts.
    expect(await (await fetch(`${second.url}/api/v1/maintenance/${laterId}`, { method: 'DELETE' })).json()).toEqual({ id: laterId, result: 'cancelled' });
  });

  it('refuses what it cannot take, with a reason', async () => {
    const port = await webServer();
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, `agent: { startSpread: 10ms }\ndefaults: { interval: 1h }\nchecks:\n  - { name: a, kind: http, target: "http://127.0.0.1:${port}/" }\n`);
    const { url } = await boot(cfg);
    const cases: [unknown, number, RegExp][] = [
      ['not json', 400, /JSON body/],
      [[1], 400, /JSON object/],
      [{ checks: ['nope'], duration: '1h' }, 400, /no check of this agent/],
      [{ checks: ['a'] }, 400, /end or duration/],
      [{ checks: ['a'], duration: '8d' }, 400, /at most 7 days/],
      [{ checks: ['a'], end: '2020-01-01T00:00Z' }, 400, /future/],
      [{ checks: ['a'], duration: '1h', colour: 'red' }, 400, /unknown field "colour"/],
      [{ checks: ['a'], duration: 'soon' }, 400, /duration/],
    ];
    for (const [body, status, why] of cases) {
      const r = await post(`${url}/api/v1/maintenance`, body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(((await r.json()) as { error: string }).error).toMatch(why);
    }
    // A cross-site form post cannot make a window: JSON only.
    expect((await post(`${url}/api/v1/maintenance`, 'checks=a', 'application/x-www-form-urlencoded')).status).toBe(415);
    expect((await post(`${url}/api/v1/maintenance`, 'x'.repeat(70_000))).status).toBe(413);
    expect((await fetch(`${url}/api/v1/maintenance/api-99`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${url}/api/v1/maintenance`, { method: 'PUT' })).status).toBe(405);
  });
});

describe('config windows on a clock of their own', () => {
  const log = pino({ level: 'silent' });
  const spec = (w: unknown) => {
    const errors: string[] = [];
    const out = resolveMaintenance([maintenanceWindowSchema.parse(w)], ['dns-a', 'dns-b', 'login'], (_i, p, m) => errors.push(`${p.join('.')}: ${m}`));
    expect(errors).toEqual([]);
    return out;
  };
  function planned(now: { t: number }) {
    const events: string[] = [];
    const journal = new Journal({ maxBytes: 1 << 20, keep: 0 }, log, () => now.t);
    const p = new PlannedWork(
      journal,
      { started: (w: Window) => events.push(`start ${w.id} ${w.checks.join(',')}`), ended: (w: Window) => events.push(`end ${w.id}`) },
      log,
      () => now.t,
    );
    return { p, events, journal };
  }

  it('a recurring window follows its time zone through the change to summer time', () => {
    // 02:00 Stockholm every Sunday, 3 hours: 01:00Z in winter, 00:00Z in summer.
    const specs = spec({ name: 'patch', checks: ['dns-*'], cron: '0 2 * * 0', duration: '3h', timezone: 'Europe/Stockholm' });
    const now = { t: Date.parse('2026-03-22T00:59:59Z') };
    const { p, events } = planned(now);
    p.configure(specs, ['dns-a', 'dns-b', 'login']);
    expect(events).toEqual([]);
    expect(p.list().upcoming.map((w) => new Date(w.start).toISOString())).toEqual(['2026-03-22T01:00:00.000Z']);
    now.t = Date.parse('2026-03-22T01:00:00Z');
    p.configure(specs, ['dns-a', 'dns-b', 'login']);
    expect(events).toEqual(['start patch@2026-03-22T01:00:00.000Z dns-a,dns-b']);
    expect(p.windowOf('dns-a')?.end).toBe(Date.parse('2026-03-22T04:00:00Z'));
    expect(p.windowOf('login')).toBeUndefined();
    now.t = Date.parse('2026-03-22T04:00:00Z');
    p.configure(specs, ['dns-a', 'dns-b', 'login']);
    expect(events.at(-1)).toBe('end patch@2026-03-22T01:00:00.000Z');
    expect(p.windowOf('dns-a')).toBeUndefined();
    // 29 March: the clocks go from 02:00 to 03:00, so 02:00 does not happen; the window opens at
    // 03:00 CEST (01:00Z), as cron runs a job whose hour was skipped.
    expect(p.list().upcoming.map((w) => new Date(w.start).toISOString())).toEqual(['2026-03-29T01:00:00.000Z']);
    // The Sunday after is summer time: 02:00 there is 00:00Z.
    now.t = Date.parse('2026-04-05T00:00:00Z');
    p.configure(specs, ['dns-a', 'dns-b', 'login']);
    expect(events.at(-1)).toBe('start patch@2026-04-05T00:00:00.000Z dns-a,dns-b');
    p.stop();
  });

  it('a one-off window opens and closes once; ended early through the API, it stays ended', () => {
    const specs = spec({ name: 'dns-upgrade', checks: ['dns-a', 'login'], start: '2026-12-05T02:00', end: '2026-12-05T06:00', timezone: 'Europe/Stockholm' });
    const now = { t: Date.parse('2026-12-05T01:30:00Z') };
    const { p, events } = planned(now);
    p.configure(specs, ['dns-a', 'dns-b', 'login']);
    expect(events).toEqual(['start dns-upgrade@2026-12-05T01:00:00.000Z dns-a,login']);
    expect(p.remove('dns-upgrade@2026-12-05T01:00:00.000Z', 'ops')).toBe('ended');
    expect(events.at(-1)).toBe('end dns-upgrade@2026-12-05T01:00:00.000Z');
    now.t += 60_000;
    p.configure(specs, ['dns-a', 'dns-b', 'login']);
    expect(events).toHaveLength(2);
    expect(p.windowOf('dns-a')).toBeUndefined();
    p.stop();
  });

  it("a reload that changes an open window's title or end journals it as updated; the journal reads it back", async () => {
    const once = (title: string, end: string) =>
      spec({ name: 'fw-swap', title, checks: ['dns-a'], start: '2026-12-05T02:00', end, timezone: 'Europe/Stockholm' });
    const now = { t: Date.parse('2026-12-05T01:30:00Z') };
    const { p, events, journal } = planned(now);
    const records: string[] = [];
    journal.subscribe((r) => records.push(r.type === 'maintenance' ? `${r.event} ${r.title} ${new Date(r.end).toISOString()}` : r.type));
    p.configure(once('Firewall swap', '2026-12-05T06:00'), ['dns-a', 'login']);
    p.configure(once('Firewall swap', '2026-12-05T06:00'), ['dns-a', 'login']);
    p.configure(once('Firewall swap, part 2', '2026-12-05T07:00'), ['dns-a', 'login']);
    expect(records).toEqual(['started Firewall swap 2026-12-05T05:00:00.000Z', 'updated Firewall swap, part 2 2026-12-05T06:00:00.000Z']);
    expect(events).toEqual(['start fw-swap@2026-12-05T01:00:00.000Z dns-a']);
    expect(p.windowOf('dns-a')?.end).toBe(Date.parse('2026-12-05T06:00:00Z'));
    expect(journal.windows(0)).toMatchObject([{ id: 'fw-swap@2026-12-05T01:00:00.000Z', state: 'started', title: 'Firewall swap, part 2', updatedAt: now.t }]);
    p.stop();
    // Read back from a file: an `updated` line keeps the window started, with its new title and end.
    const dir = mkdtempSync(join(tmpdir(), 'vakt-maintenance-journal-'));
    const file = join(dir, 'journal.jsonl');
    const w = { id: 'x@1', title: 'Old', source: 'config', checks: ['dns-a'], start: 1000, end: 5000, verify: false };
    writeFileSync(
      file,
      [
        JSON.stringify({ t: 1000, type: 'maintenance', event: 'started', ...w }),
        JSON.stringify({ t: 2000, type: 'maintenance', event: 'updated', ...w, title: 'New', end: 6000 }),
        '',
      ].join('\n'),
    );
    const back = new Journal({ file, maxBytes: 1 << 20, keep: 0 }, log, () => 3000);
    await back.open();
    expect(back.windows(0)).toMatchObject([{ id: 'x@1', state: 'started', title: 'New', end: 6000, startedAt: 1000, updatedAt: 2000 }]);
    await back.close();
  });

  it('config errors name the key', () => {
    const errors: string[] = [];
    resolveMaintenance(
      [
        maintenanceWindowSchema.parse({ name: 'a', checks: ['x-*'], cron: '0 2 * * 3', duration: '1h', timezone: 'Mars/Olympus' }),
        maintenanceWindowSchema.parse({ name: 'b', checks: ['login'], start: '2026-12-05T02:00', end: '2026-12-15T02:00' }),
        maintenanceWindowSchema.parse({ name: 'c', checks: ['login'], cron: '61 2 * * *', duration: '1h' }),
      ],
      ['login'],
      (i, p, m) => errors.push(`maintenance[${i}].${p.join('.')}: ${m}`),
    );
    expect(errors).toEqual([
      'maintenance[0].timezone: expected an IANA time zone such as Europe/Stockholm',
      'maintenance[0].checks.0: expected a check name or a glob that picks one, found "x-*" (no check matches)',
      'maintenance[1].end: expected a window of at most 7 days (a check to be left alone longer: enabled: false)',
      expect.stringMatching(/^maintenance\[2\]\.cron: expected a cron expression such as "0 2 \* \* 3" \(.+\)$/),
    ]);
  });
});

describe('the comparison', () => {
  const run = (s: number, steps: Record<string, number> = {}, ok = true) => ({
    time: 0,
    result: ok ? ('ok' as const) : ('failed' as const),
    durationSeconds: s,
    phases: { connect: 0.001 },
    steps,
  });
  it('names the step that got slow, fails what broke, and lets noise be', () => {
    const level = levelOf([run(0.05, { form: 0.01, login: 0.03 }), run(0.06, { form: 0.01, login: 0.04 }), run(0.05, { form: 0.01, login: 0.03 })], true);
    const sample = (total: number, login: number, ok = true) => ({ ok, total, phases: { connect: 0.001 }, steps: { form: 0.01, login } });
    expect(compare(level, [sample(0.45, 0.42), sample(0.46, 0.43), sample(0.44, 0.41)], DEFAULT_VERIFY)).toMatchObject({
      kind: 'slower',
      what: 'step',
      name: 'login',
    });
    // Twice as slow but only 20 ms more: below minDelta, not a regression.
    expect(compare(level, [sample(0.07, 0.05)], DEFAULT_VERIFY).kind).toBe('verified');
    expect(compare(level, [sample(0, 0, false), sample(0, 0, false), sample(0.05, 0.03)], DEFAULT_VERIFY)).toMatchObject({ kind: 'failing', failed: 2, of: 3 });
    // Broken before the window: failing after it is not the change's doing.
    expect(compare({ ...level, working: false }, [sample(0, 0, false)], DEFAULT_VERIFY).kind).not.toBe('failing');
    expect(compare(levelOf([], true), [sample(0.05, 0.03)], DEFAULT_VERIFY).kind).toBe('unknown');
  });

  it('reads a check of several steps by its steps, even when a phase summed over them grew by a larger factor; one of a single request by its phases', () => {
    const steps = (login: number, processing: number) => ({
      time: 0,
      result: 'ok' as const,
      durationSeconds: login + 0.01,
      phases: { connect: 0.001, processing },
      steps: { form: 0.005, login },
    });
    const level = levelOf([steps(0.004, 0.002), steps(0.004, 0.002), steps(0.004, 0.002)], true);
    const after = { ok: true, total: 0.16, phases: { connect: 0.001, processing: 0.152 }, steps: { form: 0.005, login: 0.154 } };
    // processing went 76x, the login step 38.5x: the step is the finding.
    expect(compare(level, [after, after, after], DEFAULT_VERIFY)).toMatchObject({ kind: 'slower', what: 'step', name: 'login' });
    const single = (processing: number) => ({
      time: 0,
      result: 'ok' as const,
      durationSeconds: processing + 0.002,
      phases: { connect: 0.001, processing },
      steps: { request: processing + 0.002 },
    });
    const one = levelOf([single(0.002), single(0.002), single(0.002)], true);
    const slow = { ok: true, total: 0.154, phases: { connect: 0.001, processing: 0.152 }, steps: { request: 0.154 } };
    expect(compare(one, [slow, slow, slow], DEFAULT_VERIFY)).toMatchObject({ kind: 'slower', what: 'phase', name: 'processing' });
  });
});
