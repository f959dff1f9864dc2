// The agent's own endpoints secured (agent.web): route classes, basic auth with bcrypt hashes and
// bearer tokens from secrets, loopback-only admin, TLS from an exporter-toolkit web config
// (plain HTTP on the TLS port, an expired certificate, client certificates, a renewed
// certificate taken without a restart), the status listener, and config errors that name the
// web config file. Real servers on 127.0.0.1:0, real TLS, real bcrypt.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { startServer, type HttpServer } from '../../agent/server.js';
import { WebAuth } from '../../agent/web-auth.js';
import { ConfigLoadError, loadConfigFile, parseConfig } from '../../config/loader.js';
import { makePki } from '../helpers/certs.js';
import { closedPort } from '../helpers/peers.js';

const dir = mkdtempSync(join(tmpdir(), 'vakt-web-'));
const pki = makePki();
let n = 0;
function file(text: string, ext = 'yaml'): string {
  const f = join(dir, `f${n++}.${ext}`);
  writeFileSync(f, text);
  return f;
}

// Cost 4 keeps the tests quick; the format is the one htpasswd -B writes ($2y$).
const ALICE_PASSWORD = 'correct horse battery staple';
const aliceHash = bcrypt.hashSync(ALICE_PASSWORD, 4).replace(/^\$2b\$/, '$2y$');
const bobHash = bcrypt.hashSync('bobs password', 4);
const SCRAPE_TOKEN = 's3cr3t-scrape-token-0123456789';
const OPS_TOKEN = 'ops-token-abcdefghijklmnopqrstuv';

const running: { agent: Agent; http: HttpServer }[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.agent.stop();
    await r.http.close();
  }
});
afterAll(() => {
  delete process.env.VAKT_TEST_OPS_TOKEN;
});

async function boot(config: string, opts: { certPollMs?: number } = {}) {
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (d: Buffer) => (logText += d.toString()));
  const agent = await Agent.start({ configFile: file(config), listen: { host: '127.0.0.1', port: 0 }, logStream: logs });
  const http = await startServer(agent, '127.0.0.1', 0, opts);
  running.push({ agent, http });
  return { agent, http, logs: () => logText };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function call(
  url: string,
  o: { method?: string; headers?: Record<string, string>; ca?: string; cert?: string; key?: string; servername?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const onReply = (res: IncomingMessage) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const base = { method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false as const };
    const req =
      u.protocol === 'https:'
        ? httpsRequest(
            u,
            { ...base, ...(o.ca ? { ca: o.ca } : {}), ...(o.cert ? { cert: o.cert, key: o.key } : {}), servername: o.servername ?? 'localhost' },
            onReply,
          )
        : httpRequest(u, base, onReply);
    req.on('error', reject);
    req.end();
  });
}

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const CHECK = `checks:
  - name: closed-port
    kind: tcp
    target: 127.0.0.1:${await closedPort()}
`;

function webFile(extra = ''): string {
  return file(`basic_auth_users:
  alice: ${aliceHash}
  bob: ${bobHash}
${extra}`);
}

describe('route classes and credentials', () => {
  it('without agent.web: everything open except admin, which answers loopback clients only', async () => {
    const { http } = await boot(CHECK);
    expect((await call(`${http.url}/metrics`)).status).toBe(200);
    expect((await call(`${http.url}/api/v1/checks`)).status).toBe(200);
    expect((await call(`${http.url}/`)).status).toBe(200);
    expect((await call(`${http.url}/-/reload`, { method: 'POST' })).status).toBe(200);
    // The same rule for a client on another host (the decision, with the peer it would see).
    const auth = new WebAuth({ users: {}, tokens: {}, headers: {}, access: { status: 'open', read: 'open', admin: 'loopback' } });
    const from = (remoteAddress: string) => ({ socket: { remoteAddress }, headers: {} }) as unknown as IncomingMessage;
    expect(await auth.decide('admin', from('10.1.2.3'))).toMatchObject({ allow: false, status: 403 });
    expect(await auth.decide('admin', from('::ffff:192.168.1.9'))).toMatchObject({ allow: false, status: 403 });
    expect(await auth.decide('admin', from('::ffff:127.0.0.1'))).toMatchObject({ allow: true });
    expect(await auth.decide('admin', from('::1'))).toMatchObject({ allow: true });
    expect(await auth.decide('read', from('10.1.2.3'))).toMatchObject({ allow: true });
  });

  it('basic auth: no, wrong or unknown credentials are 401 with a challenge; a user outside a list is 403', async () => {
    const { http, agent } = await boot(`agent:
  web:
    config: ${webFile()}
    access:
      read: [alice]
      admin: [alice]
${CHECK}`);
    const none = await call(`${http.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm="vakt"/);
    expect(JSON.parse(none.body)).toEqual({ error: 'credentials required' });
    expect((await call(`${http.url}/metrics`, { headers: basic('alice', 'wrong') })).status).toBe(401);
    expect((await call(`${http.url}/metrics`, { headers: basic('mallory', ALICE_PASSWORD) })).status).toBe(401);
    expect((await call(`${http.url}/metrics`, { headers: basic('alice', '') })).status).toBe(401);
    expect((await call(`${http.url}/metrics`, { headers: { authorization: 'Basic !!!not-base64' } })).status).toBe(401);
    expect((await call(`${http.url}/metrics`, { headers: { authorization: 'Digest username="alice"' } })).status).toBe(401);
    const ok = await call(`${http.url}/metrics`, { headers: basic('alice', ALICE_PASSWORD) });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('vakt_build_info');
    const bob = await call(`${http.url}/metrics`, { headers: basic('bob', 'bobs password') });
    expect(bob.status).toBe(403);
    expect(JSON.parse(bob.body).error).toMatch(/bob may not use the read routes/);
    // The status page stays open; the admin route needs alice, also from this host.
    expect((await call(`${http.url}/`)).status).toBe(200);
    expect((await call(`${http.url}/healthz`)).status).toBe(200);
    expect((await call(`${http.url}/-/reload`, { method: 'POST' })).status).toBe(401);
    expect((await call(`${http.url}/-/reload`, { method: 'POST', headers: basic('alice', ALICE_PASSWORD) })).status).toBe(200);
    // Refusals are counted by reason.
    const metrics = (await call(`${http.url}/metrics`, { headers: basic('alice', ALICE_PASSWORD) })).body;
    expect(metrics).toMatch(/vakt_web_requests_refused_total\{reason="unauthenticated"\} 7/);
    expect(metrics).toMatch(/vakt_web_requests_refused_total\{reason="forbidden"\} 1/);
    void agent;
  });

  it('an unknown user costs a bcrypt comparison like a known one (no timing tells which names exist); a verified password is remembered', async () => {
    const auth = new WebAuth({
      users: { alice: aliceHash },
      tokens: {},
      headers: {},
      access: { status: 'open', read: 'authenticated', admin: 'loopback' },
    });
    const req = (h: Record<string, string>) => ({ socket: { remoteAddress: '10.0.0.1' }, headers: h }) as unknown as IncomingMessage;
    try {
      expect(await auth.decide('read', req(basic('nobody', 'x')))).toMatchObject({ allow: false, status: 401 });
      expect(auth.bcryptRuns).toBe(1);
      expect(await auth.decide('read', req(basic('alice', 'x')))).toMatchObject({ allow: false, status: 401 });
      expect(auth.bcryptRuns).toBe(2);
      expect(await auth.decide('read', req(basic('alice', ALICE_PASSWORD)))).toEqual({ allow: true, who: 'alice' });
      expect(await auth.decide('read', req(basic('alice', ALICE_PASSWORD)))).toEqual({ allow: true, who: 'alice' });
      expect(auth.bcryptRuns).toBe(3);
    } finally {
      await auth.close();
    }
  });

  it('too many password checks at once are 429, not a queue that grows without end (the queue is counted as requests arrive)', async () => {
    const slow = bcrypt.hashSync('slow', 4);
    const auth = new WebAuth({ users: { slow }, tokens: {}, headers: {}, access: { status: 'open', read: 'authenticated', admin: 'loopback' } });
    const req = { socket: { remoteAddress: '10.0.0.1' }, headers: basic('slow', 'wrong') } as unknown as IncomingMessage;
    try {
      const all = await Promise.all(Array.from({ length: 40 }, () => auth.decide('read', req)));
      const statuses = all.map((d) => (d.allow ? 200 : d.status));
      expect(statuses.filter((s) => s === 429).length).toBe(8);
      expect(statuses.filter((s) => s === 401).length).toBe(32);
    } finally {
      await auth.close();
    }
  });

  it('bearer tokens from env and file: the right one passes, any other (shorter, longer, same prefix) is 401; tokens never show', async () => {
    process.env.VAKT_TEST_OPS_TOKEN = OPS_TOKEN;
    const scrapeFile = file(`${SCRAPE_TOKEN}\n`, 'token');
    const { http, logs } = await boot(`agent:
  web:
    tokens:
      prometheus: { file: ${scrapeFile} }
      ops: { env: VAKT_TEST_OPS_TOKEN }
    access:
      admin: [ops]
${CHECK}`);
    expect((await call(`${http.url}/metrics`)).headers['www-authenticate']).toBe('Bearer realm="vakt"');
    for (const wrong of [SCRAPE_TOKEN.slice(0, -1), `${SCRAPE_TOKEN}x`, SCRAPE_TOKEN.replace(/.$/, 'X'), '', 'a']) {
      expect((await call(`${http.url}/metrics`, { headers: bearer(wrong) })).status).toBe(401);
    }
    expect((await call(`${http.url}/metrics`, { headers: bearer(SCRAPE_TOKEN) })).status).toBe(200);
    expect((await call(`${http.url}/api/v1/checks`, { headers: bearer(OPS_TOKEN) })).status).toBe(200);
    expect((await call(`${http.url}/-/reload`, { method: 'POST', headers: bearer(SCRAPE_TOKEN) })).status).toBe(403);
    expect((await call(`${http.url}/-/reload`, { method: 'POST', headers: bearer(OPS_TOKEN) })).status).toBe(200);
    // Planned work: reading is a read route, scheduling, ending and accepting are admin routes.
    const planned = (token: string, method = 'POST', path = '/api/v1/maintenance') =>
      fetch(`${http.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: JSON.stringify({ checks: ['closed-port'], duration: '1h' }) } : {}),
      });
    expect((await planned(SCRAPE_TOKEN)).status).toBe(403);
    expect((await planned(SCRAPE_TOKEN, 'GET')).status).toBe(200);
    expect((await planned(SCRAPE_TOKEN, 'DELETE', '/api/v1/changes/closed-port')).status).toBe(403);
    const made = await planned(OPS_TOKEN);
    expect(made.status).toBe(201);
    const { id } = (await made.json()) as { id: string };
    expect((await planned(SCRAPE_TOKEN, 'DELETE', `/api/v1/maintenance/${id}`)).status).toBe(403);
    expect((await planned(OPS_TOKEN, 'DELETE', `/api/v1/maintenance/${id}`)).status).toBe(200);
    expect((await fetch(`${http.url}/api/v1/maintenance`, { method: 'POST', body: '{}' })).status).toBe(401);
    const api = await call(`${http.url}/api/v1/checks`, { headers: bearer(OPS_TOKEN) });
    const everything = api.body + (await call(`${http.url}/metrics`, { headers: bearer(OPS_TOKEN) })).body + logs();
    for (const secret of [SCRAPE_TOKEN, OPS_TOKEN, Buffer.from(OPS_TOKEN).toString('base64')]) expect(everything).not.toContain(secret);
  });

  it('unknown paths are 404 before any credential is asked for', async () => {
    const { http } = await boot(`agent:
  web:
    config: ${webFile()}
${CHECK}`);
    expect((await call(`${http.url}/nothing-here`)).status).toBe(404);
    expect((await call(`${http.url}/metrics`)).status).toBe(401);
  });
});

describe('TLS from the web config', () => {
  const certFile = file(pki.valid.cert, 'pem');
  const keyFile = file(pki.valid.key, 'pem');

  it('serves HTTPS; plain HTTP on the TLS port gets a 400 that says why; headers from http_server_config are sent', async () => {
    const { http } = await boot(`agent:
  web:
    config: ${file(`tls_server_config:
  cert_file: ${certFile}
  key_file: ${keyFile}
http_server_config:
  headers:
    Strict-Transport-Security: max-age=31536000
`)}
${CHECK}`);
    expect(http.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ok = await call(`${http.url}/metrics`, { ca: pki.ca.cert });
    expect(ok.status).toBe(200);
    expect(ok.headers['strict-transport-security']).toBe('max-age=31536000');
    const plain = await call(http.url.replace('https:', 'http:') + '/metrics');
    expect(plain.status).toBe(400);
    expect(plain.body).toContain('Client sent an HTTP request to an HTTPS server.');
    // A client that connects and sends nothing is let go (headers timeout), not kept forever: here it just closes.
    await new Promise<void>((resolve) => {
      const s = connect(Number(new URL(http.url).port), '127.0.0.1', () => s.end());
      s.on('close', () => resolve());
    });
    expect((await call(`${http.url}/healthz`, { ca: pki.ca.cert })).status).toBe(200);
  });

  it('an expired certificate is served as configured, said in the log and the metric; verifying clients refuse it', async () => {
    const { http, logs } = await boot(`agent:
  web:
    config: ${file(`tls_server_config:
  cert_file: ${file(pki.expired.cert, 'pem')}
  key_file: ${file(pki.expired.key, 'pem')}
`)}
${CHECK}`);
    await expect(call(`${http.url}/metrics`, { ca: pki.ca.cert })).rejects.toMatchObject({ code: 'CERT_HAS_EXPIRED' });
    expect(logs()).toContain("the agent's own TLS certificate has expired");
    const insecure = await new Promise<Reply>((resolve, reject) => {
      const req = httpsRequest(`${http.url}/metrics`, { rejectUnauthorized: false, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
    const m = /vakt_web_tls_certificate_not_after_timestamp_seconds (\d+)/.exec(insecure.body);
    expect(Number(m?.[1])).toBeLessThan(Date.now() / 1000);
  });

  it('RequireAndVerifyClientCert: no client certificate, no connection; a verified one is a credential', async () => {
    const { http } = await boot(`agent:
  web:
    config: ${file(`tls_server_config:
  cert_file: ${certFile}
  key_file: ${keyFile}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ${pki.caFile}
basic_auth_users:
  alice: ${aliceHash}
`)}
${CHECK}`);
    await expect(call(`${http.url}/metrics`, { ca: pki.ca.cert })).rejects.toBeTruthy();
    const ok = await call(`${http.url}/metrics`, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
    expect(ok.status).toBe(200);
  });

  it('RequestClientCert: a client certificate is asked for but never a credential (only the Verify modes make it one)', async () => {
    const { http } = await boot(`agent:
  web:
    config: ${file(`tls_server_config:
  cert_file: ${certFile}
  key_file: ${keyFile}
  client_auth_type: RequestClientCert
  client_ca_file: ${pki.caFile}
basic_auth_users:
  alice: ${aliceHash}
`)}
${CHECK}`);
    expect((await call(`${http.url}/metrics`, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key })).status).toBe(401);
  });

  it('a client that sends one plain byte to the TLS port gets the 400 and is let go, not kept', async () => {
    const { http } = await boot(`agent:
  web:
    config: ${file(`tls_server_config:
  cert_file: ${certFile}
  key_file: ${keyFile}
`)}
${CHECK}`);
    const closed = await new Promise<string>((resolve) => {
      let got = '';
      const s = connect(Number(new URL(http.url).port), '127.0.0.1', () => s.write('G')); // and never closes
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('close', () => resolve(got));
    });
    expect(closed).toContain('400 Bad Request');
  });

  it('VerifyClientCertIfGiven with client_allowed_sans: a certificate without an allowed SAN is refused', async () => {
    const { http } = await boot(`agent:
  web:
    config: ${file(`tls_server_config:
  cert_file: ${certFile}
  key_file: ${keyFile}
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: ${pki.caFile}
  client_allowed_sans: [prometheus.monitoring.svc]
`)}
${CHECK}`);
    expect((await call(`${http.url}/metrics`, { ca: pki.ca.cert })).status).toBe(200);
    await expect(call(`${http.url}/metrics`, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key })).rejects.toBeTruthy();
  });

  it('a renewed certificate is served without a restart; a broken renewal keeps the one in use', async () => {
    const served = file(pki.expiringSoon.cert, 'pem');
    const servedKey = file(pki.expiringSoon.key, 'pem');
    const { http, logs } = await boot(
      `agent:
  web:
    config: ${file(`tls_server_config:
  cert_file: ${served}
  key_file: ${servedKey}
`)}
${CHECK}`,
      { certPollMs: 100 },
    );
    const serial = () =>
      new Promise<string>((resolve, reject) => {
        const req = httpsRequest(`${http.url}/healthz`, { ca: pki.ca.cert, servername: 'localhost', agent: false }, (res) => {
          const cert = (res.socket as TLSSocket).getPeerCertificate();
          res.resume();
          res.on('end', () => resolve(cert.serialNumber));
        });
        req.on('error', reject);
        req.end();
      });
    const before = await serial();
    expect(before).toBe(new X509Certificate(pki.expiringSoon.cert).serialNumber);
    expect(logs()).toContain('expires within 14 days');
    // A half-written renewal (a certificate whose key is not there yet) is not taken.
    writeFileSync(served, pki.valid.cert);
    await waitFor(() => logs().includes('does not load'));
    expect(await serial()).toBe(before);
    copyFileSync(keyFile, servedKey);
    await waitFor(() => logs().includes('TLS certificate loaded again'));
    expect(await serial()).toBe(new X509Certificate(pki.valid.cert).serialNumber);
  });
});

describe('the status listener', () => {
  it('serves the status class alone; the main listener keeps every route', async () => {
    const { http } = await boot(`agent:
  web:
    statusListen: 127.0.0.1:0
    tokens:
      prometheus: { file: ${file(SCRAPE_TOKEN, 'token')} }
${CHECK}`);
    expect(http.statusUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const statusUrl = http.statusUrl ?? '';
    expect((await call(`${statusUrl}/`)).status).toBe(200);
    expect((await call(`${statusUrl}/healthz`)).status).toBe(200);
    expect((await call(`${statusUrl}/metrics`, { headers: bearer(SCRAPE_TOKEN) })).status).toBe(404);
    expect((await call(`${statusUrl}/api/v1/checks`, { headers: bearer(SCRAPE_TOKEN) })).status).toBe(404);
    expect((await call(`${statusUrl}/-/reload`, { method: 'POST' })).status).toBe(404);
    expect((await call(`${http.url}/metrics`, { headers: bearer(SCRAPE_TOKEN) })).status).toBe(200);
  });
});

describe('warnings and config errors', () => {
  it('warns when read routes are open on an address other hosts reach', async () => {
    const logs = new PassThrough();
    let text = '';
    logs.on('data', (d: Buffer) => (text += d.toString()));
    const agent = await Agent.start({ configFile: file(CHECK), logStream: logs });
    const http = await startServer(agent, '0.0.0.0', 0);
    running.push({ agent, http });
    expect(text).toContain('read routes are open to anyone who can reach this address');
  });

  it('a bad web config is a config error naming its own file, line and key', () => {
    const bad = webFile(`tls_server_config:
  cert_file: /nonexistent/cert.pem
  key_file: ${pki.dir}/client-key.pem
  cipher_suites: [TLS_AES_128_GCM_SHA256]
  client_auth_type: RequireAndVerifyClientCert
`).replace(/$/, '');
    writeFileSync(bad, readFileSync(bad, 'utf8') + 'unknown_key: 1\n');
    const hashes = file(`basic_auth_users:\n  carol: plaintext-password\n`);
    const badHeader = file(`http_server_config:\n  headers:\n    X-Note: |\n      two\n      lines\n`);
    const run = (text: string) => {
      try {
        parseConfig(text + CHECK, join(dir, 'main.yaml'));
        return [];
      } catch (err) {
        if (!(err instanceof ConfigLoadError)) throw err;
        return err.errors.map((e) => `${e.file === bad || e.file === hashes ? 'WEB' : 'MAIN'}:${e.line}: ${e.path}: ${e.message}`);
      }
    };
    const errs = run(`agent:\n  web:\n    config: ${bad}\n`);
    expect(errs).toContain('WEB:9: unknown_key: expected no key "unknown_key" (not part of the web config format)');
    expect(run(`agent:\n  web:\n    config: ${bad.replace(/.*\//, 'nope-')}\n`)[0]).toMatch(
      /^WEB:0: : expected a readable web config file, found ENOENT|^MAIN/,
    );
    const fixed = file(readFileSync(bad, 'utf8').replace('unknown_key: 1\n', ''));
    const more = run(`agent:\n  web:\n    config: ${fixed}\n`).join('\n');
    expect(more).toContain('cert_file: expected a readable file /nonexistent/cert.pem, found ENOENT');
    expect(more).toContain('cipher_suites: expected no cipher_suites');
    expect(more).toContain('client_auth_type: expected client_ca_file with client_auth_type RequireAndVerifyClientCert');
    expect(run(`agent:\n  web:\n    config: ${badHeader}\n`)[0]).toMatch(/expected a header value without line breaks/);
    expect(run(`agent:\n  web:\n    config: ${hashes}\n`)).toEqual([expect.stringMatching(/^WEB:2: basic_auth_users.carol: expected a bcrypt hash/)]);
    expect(run(`agent:\n  web:\n    config: ${webFile()}\n    access:\n      admin: [alcie]\n`)).toEqual([
      expect.stringMatching(/^MAIN:5: agent.web.access.admin\[0\]: expected the name of a basic_auth_users entry or an agent.web.tokens entry, found "alcie"/),
    ]);
    expect(run(`agent:\n  web:\n    access:\n      read: authenticated\n`)).toEqual([
      expect.stringMatching(/^MAIN:4: agent.web.access.read: expected credentials/),
    ]);
    expect(run(`agent:\n  web:\n    access:\n      read: everyone\n`)[0]).toMatch(
      /^MAIN:4: agent.web.access.read: expected open, loopback, authenticated or a list/,
    );
    expect(run(`agent:\n  web:\n    tokens:\n      t: abc\n`)[0]).toMatch(/^MAIN:4: agent.web.tokens.t: expected a secret reference/);
  });

  it('vakt validate lists a token whose secret is not present here without failing', async () => {
    const cfg = await loadConfigFile(
      file(`agent:\n  web:\n    tokens:\n      prometheus: { env: VAKT_TEST_UNSET_TOKEN }\n${CHECK}`),
      {},
      { secrets: 'report' },
    );
    expect(cfg.missingSecrets.map((e) => e.path)).toEqual(['agent.web.tokens.prometheus']);
    await expect(loadConfigFile(file(`agent:\n  web:\n    tokens:\n      prometheus: { env: VAKT_TEST_UNSET_TOKEN }\n${CHECK}`), {})).rejects.toThrow(
      /agent.web.tokens.prometheus: expected environment variable VAKT_TEST_UNSET_TOKEN/,
    );
  });
});

async function waitFor(fn: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
