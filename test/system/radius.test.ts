// The radius probe against FreeRADIUS from Debian (package freeradius; runs as root). The test
// copies Debian's configuration (/etc/freeradius/3.0) to a folder of its own, replaces the
// virtual servers with one that listens on a free UDP port of 127.0.0.1 (authorize: chap, files,
// pap), writes its own clients.conf (127.0.0.1 with a shared secret) and users file, and starts
// `freeradius -X -d <folder>` in the foreground: never the system service. radclient
// (freeradius-utils) is the independent witness of what the server answers. Shown: PAP and
// CHAP accepted (with the Filter-Id and VLAN the users file grants), a wrong password and a
// locked account refused (auth), a wrong shared secret (FreeRADIUS drops the request: timeout,
// and the message says why that may be), a server that never answers (SIGSTOP: timeout), a
// stopped server (ICMP port unreachable: refused), and a Reply-Message that reaches the API's
// failure message (redacted) but never a label or the status page.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { radiusProbe } from '../../probes/radius/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { freePort, requireRoot, requireTool, tryRun, waitFor } from './helpers.js';

const SECRET = 'fr-Shared-secret-93';
const PASSWORD = 'Wifi-probe-pass-17';
const LOCKED_MESSAGE = 'Account locked by the service desk';

let dir = '';
let port = 0;
let freeradius: ChildProcess | undefined;
let output = '';
const secrets = { pw: PASSWORD, radius: SECRET };

function probe(user: string, options: Record<string, unknown> = {}, withSecrets: Record<string, string> = secrets, ms = 5000): Promise<ProbeResult> {
  return radiusProbe.run({
    ...targetsOf('radius', `127.0.0.1:${port}`),
    options: KIND_OPTIONS.radius.parse({ username: user, password: 'pw', sharedSecret: 'radius', ...options }),
    ...budget(ms),
    log: quietLog,
    secrets: withSecrets,
  });
}

/** radclient's view of one request: its exit status and what it printed. */
async function radclient(attributes: string, secret = SECRET): Promise<{ code: number; out: string }> {
  const file = join(dir, `radclient-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(file, `${attributes}\n`);
  const r = await tryRun('radclient', ['-r', '1', '-t', '3', '-x', '-f', file, `127.0.0.1:${port}`, 'auth', secret], 20_000);
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** FreeRADIUS's configuration: Debian's, with our own listener, client and users. */
function configure(raddb: string, listenPort: number): void {
  cpSync('/etc/freeradius/3.0', raddb, { recursive: true, verbatimSymlinks: true });
  for (const f of readdirSync(join(raddb, 'sites-enabled'))) rmSync(join(raddb, 'sites-enabled', f));
  // EAP needs TLS certificates the package does not make; PAP and CHAP do not need it.
  rmSync(join(raddb, 'mods-enabled', 'eap'), { force: true });
  const conf = join(raddb, 'radiusd.conf');
  const radiusd = readFileSync(conf, 'utf8')
    .replace(/^logdir = .*$/m, `logdir = ${raddb}`)
    .replace(/^run_dir = .*$/m, `run_dir = ${raddb}`)
    // Stay root: the folder is the test's own, not readable by the freerad user.
    .replace(/^(\s*)(user|group) = freerad$/gm, '$1#$2 = freerad');
  writeFileSync(conf, radiusd);
  writeFileSync(join(raddb, 'clients.conf'), `client vakt-test {\n  ipaddr = 127.0.0.1\n  secret = ${SECRET}\n}\n`);
  writeFileSync(
    join(raddb, 'mods-config', 'files', 'authorize'),
    [
      `probe Cleartext-Password := "${PASSWORD}"`,
      '      Reply-Message := "Welcome to the clinical network",',
      '      Filter-Id := "clinical-devices",',
      '      Tunnel-Type := VLAN,',
      '      Tunnel-Medium-Type := IEEE-802,',
      '      Tunnel-Private-Group-Id := "120"',
      '',
      // A refusal that says why, and repeats what it should not (a server may echo anything).
      `locked Cleartext-Password := "${PASSWORD}", Auth-Type := Reject`,
      `      Reply-Message := "${LOCKED_MESSAGE} (old password ${PASSWORD})"`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(raddb, 'sites-enabled', 'vakt-test'),
    `server vakt-test {
  listen {
    type = auth
    ipaddr = 127.0.0.1
    port = ${listenPort}
  }
  authorize {
    preprocess
    chap
    files
    pap
  }
  authenticate {
    Auth-Type PAP {
      pap
    }
    Auth-Type CHAP {
      chap
    }
  }
  post-auth {
    Post-Auth-Type REJECT {
      attr_filter.access_reject
    }
  }
}
`,
  );
}

/** Starts FreeRADIUS in the foreground on a free port (another one when the port was taken meanwhile). */
async function startFreeRadius(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    const raddb = join(dir, `raddb-${attempt}`);
    configure(raddb, port);
    output = '';
    const child = spawn('freeradius', ['-X', '-d', raddb], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      output = (output + d.toString()).slice(-200_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    try {
      await waitFor(
        'FreeRADIUS ready',
        () => {
          if (child.exitCode !== null) throw new Error(`freeradius exited (${child.exitCode}): ${output.slice(-3000)}`);
          return output.includes('Ready to process requests');
        },
        20_000,
        50,
      );
      freeradius = child;
      // A test process killed before afterAll leaves no server behind.
      process.once('exit', () => child.kill('SIGKILL'));
      return;
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt >= 2 || !/Address already in use/i.test(output)) throw err;
    }
  }
}

async function stopFreeRadius(): Promise<void> {
  const child = freeradius;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((r) => child.once('exit', r));
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exit;
  clearTimeout(timer);
}

beforeAll(async () => {
  requireRoot();
  await requireTool('freeradius', ['-v'], 'freeradius');
  await requireTool('radclient', ['-h'], 'freeradius-utils');
  dir = mkdtempSync(join(tmpdir(), 'vakt-radius-'));
  await startFreeRadius();
}, 60_000);

afterAll(async () => {
  await stopFreeRadius();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('radius probe against FreeRADIUS', () => {
  it('PAP: Access-Accept with the Filter-Id and VLAN the users file grants; radclient is accepted too', async () => {
    const r = await probe('probe', { expect: { filterId: 'clinical-devices', tunnelPrivateGroupId: '120' } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.degraded).toBeUndefined();
    expect(r.values?.radius_attempts).toBe(1);
    const witness = await radclient(`User-Name = "probe", User-Password = "${PASSWORD}", Message-Authenticator = 0x00`);
    expect(witness.out).toContain('Received Access-Accept');
    expect(witness.out).toContain('Filter-Id = "clinical-devices"');
  });

  it('CHAP: Access-Accept; radclient with CHAP-Password is accepted too', async () => {
    const r = await probe('probe', { method: 'chap', expect: { filterId: 'clinical-devices' } });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    const witness = await radclient(`User-Name = "probe", CHAP-Password = "${PASSWORD}"`);
    expect(witness.out).toContain('Received Access-Accept');
  });

  it('a VLAN other than the expected one is assertion', async () => {
    const r = await probe('probe', { expect: { tunnelPrivateGroupId: '130' } });
    expect(r.failure).toEqual({
      phase: 'request',
      reason: 'assertion',
      message: 'the Access-Accept carries another Tunnel-Private-Group-Id, expected Tunnel-Private-Group-Id "130"',
    });
  });

  it('a wrong password: auth (Access-Reject, after FreeRADIUS reject_delay); radclient is rejected too', async () => {
    const r = await probe('probe', {}, { ...secrets, pw: 'not-the-password' });
    // FreeRADIUS keeps the user's reply items in the Reject (attr_filter.access_reject lets a
    // Reply-Message through): server text, quoted, never taken for a reason.
    expect(r.failure).toEqual({
      phase: 'request',
      reason: 'auth',
      message: 'the server refused the login (Access-Reject); Reply-Message "Welcome to the clinical network"',
    });
    const witness = await radclient('User-Name = "probe", User-Password = "not-the-password", Message-Authenticator = 0x00');
    expect(witness.out).toContain('Received Access-Reject');
  });

  it('a locked account (Auth-Type := Reject): auth, its Reply-Message quoted with the password redacted', async () => {
    const r = await probe('locked', { method: 'chap' });
    expect(r.failure).toEqual({
      phase: 'request',
      reason: 'auth',
      message: `the server refused the login (Access-Reject); Reply-Message "${LOCKED_MESSAGE} (old password [REDACTED])"`,
    });
    const witness = await radclient(`User-Name = "locked", User-Password = "${PASSWORD}"`);
    expect(witness.out).toContain(`Reply-Message = "${LOCKED_MESSAGE}`);
  });

  it('a wrong shared secret: FreeRADIUS drops the request unanswered; timeout, and the message says a wrong secret looks so', async () => {
    const r = await probe('probe', { retransmits: 1, retransmitInterval: '500ms' }, { ...secrets, radius: 'not-the-shared-secret' }, 2000);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
    expect(r.failure?.message).toMatch(/^no answer to 2 Access-Requests \(500 ms apart\) before the deadline/);
    expect(r.failure?.message).toContain('wrong shared secret');
    expect(r.failure?.message).toContain('Message-Authenticator');
    expect(output).toContain('invalid Message-Authenticator!  (Shared secret is incorrect.)');
    const witness = await radclient(`User-Name = "probe", User-Password = "${PASSWORD}", Message-Authenticator = 0x00`, 'not-the-shared-secret');
    expect(witness.out).toContain('No reply from server');
  });

  it('a server that never answers (stopped with SIGSTOP): timeout after the retransmits', async () => {
    freeradius!.kill('SIGSTOP');
    try {
      const r = await probe('probe', { retransmits: 2, retransmitInterval: '300ms' }, secrets, 1500);
      expect(r.failure).toMatchObject({ phase: 'request', reason: 'timeout' });
      expect(r.values?.radius_attempts).toBe(3);
    } finally {
      freeradius!.kill('SIGCONT');
    }
    // And back: the queued requests are answered, a new run is ok.
    await waitFor('FreeRADIUS answering again', async () => (await probe('probe', {}, secrets, 1500)).ok, 15_000, 100);
  });
});

describe('a Reply-Message in the agent', () => {
  let agent: Agent | undefined;
  let http: HttpServer | undefined;
  let logText = '';

  beforeAll(async () => {
    const file = join(dir, 'vakt.yaml');
    writeFileSync(join(dir, 'pw'), PASSWORD);
    writeFileSync(join(dir, 'secret'), SECRET);
    writeFileSync(
      file,
      `
agent: { startSpread: 10ms }
defaults: { interval: 2s, timeout: 1500ms, retries: 0 }
checks:
  - name: wifi-locked
    title: Wi-Fi login (clinical devices)
    kind: radius
    target: 127.0.0.1:${port}
    secrets: { pw: { file: ${join(dir, 'pw')} }, radius: { file: ${join(dir, 'secret')} } }
    radius: { username: locked, password: pw, sharedSecret: radius }
`,
    );
    const logs = new PassThrough();
    logs.on('data', (d: Buffer) => (logText += d.toString()));
    agent = await Agent.start({ configFile: file, listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
    http = await startServer(agent, '127.0.0.1', 0);
  }, 30_000);

  afterAll(async () => {
    await agent?.stop();
    await http?.close();
  });

  const get = async (path: string) => (await fetch(`${http!.url}${path}`)).text();

  it('is in the API failure message (redacted), never in /metrics or on the status page', async () => {
    // Down once the failures are confirmed: the page then words the refusal.
    const page = await waitFor(
      'the status page showing the refused login',
      async () => ((await get('/')).includes('Login refused') ? get('/') : undefined),
      30_000,
      200,
    );
    const api = await get('/api/v1/checks/wifi-locked');
    expect(api).toContain(LOCKED_MESSAGE);
    expect(api).toContain('[REDACTED]');
    expect(api).not.toContain(PASSWORD);
    expect(api).not.toContain(SECRET);
    const metrics = await get('/metrics');
    expect(metrics).toMatch(/vakt_probe_failure_info\{[^}]*check="wifi-locked"[^}]*reason="auth"/);
    expect(metrics).toMatch(/vakt_radius_attempts\{[^}]*check="wifi-locked"[^}]*\} 1/);
    for (const text of [page, metrics]) {
      expect(text).not.toContain(LOCKED_MESSAGE);
      expect(text).not.toContain('Account locked');
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(SECRET);
    }
    expect(page).toContain('Wi-Fi login (clinical devices)');
    // The log says what the API says: redacted.
    expect(logText).toContain(LOCKED_MESSAGE);
    expect(logText).not.toContain(PASSWORD);
    expect(logText).not.toContain(SECRET);
  });
});

describe('a stopped FreeRADIUS', () => {
  it('is refused: the kernel answers the datagram with ICMP port unreachable on loopback', async () => {
    await stopFreeRadius();
    const r = await probe('probe', {}, secrets, 3000);
    expect(r.failure).toMatchObject({ phase: 'request', reason: 'refused' });
    expect(r.failure?.message).toContain('ICMP port unreachable');
  });
});
