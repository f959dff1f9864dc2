// vakt probe KIND TARGET: ad-hoc probes without a config file, against real peers on loopback;
// the loader's errors for bad options; secrets from the environment only; a DNS reply's records
// and a certificate's expiry as a date in the output; and every example of `vakt probe --help`.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdHocError, adHocProbe } from '../../agent/adhoc.js';
import { main } from '../../agent/cli.js';
import { ConfigLoadError, parseConfig } from '../../config/loader.js';
import { makePki } from '../helpers/certs.js';
import { runVakt } from '../helpers/cli.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { closedPort, tcpPeer, tlsPeer, type Peer } from '../helpers/peers.js';

const peers: Peer[] = [];
let dns: TestDnsServer;
let web: Server;
let webPort = 0;
const webRequests: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  dns = await startDnsServer((q) =>
    q.name === 'gone.region.test'
      ? { reply: { rcode: 'NXDOMAIN', authorities: [{ name: 'region.test', type: 'SOA', ttl: 600, class: 'IN', data: soa }] } }
      : {
          reply: {
            answers: Array.from({ length: q.name === 'vdi.region.test' ? 40 : 2 }, (_, i) => ({
              name: q.name,
              type: 'A' as const,
              ttl: 300,
              class: 'IN' as const,
              data: `10.20.1.${i + 5}`,
            })),
          },
        },
  );
  web = createServer((req, res) => {
    webRequests.push(req.headers);
    res.writeHead(req.url === '/health' ? 200 : 503, { 'content-type': 'text/plain' }).end(req.url === '/health' ? 'ok\n' : 'down\n');
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as { port: number }).port;
});
afterAll(async () => {
  for (const p of peers) await p.close();
  await dns.close();
  await new Promise((r) => web.close(r));
});

const soa = { mname: 'ns1.region.test', rname: 'hostmaster.region.test', serial: 2026112201, refresh: 3600, retry: 600, expire: 86400, minimum: 300 };

describe('vakt probe KIND TARGET (ad hoc)', () => {
  it('tcp: an open port is OK (exit 0), a closed one FAILED: refused (exit 1), printed as probe -c prints', async () => {
    const open = await tcpPeer((s) => s.end('220 ready\r\n'));
    peers.push(open);
    const ok = await runVakt(['probe', 'tcp', `127.0.0.1:${open.port}`, '--receive', '^220 ', '--samples', '2']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`probe     tcp -> 127.0.0.1:${open.port}\n`);
    expect(ok.stdout).toMatch(/^connect\s+\d+\.\d{3} ms$/m);
    expect(ok.stdout).toMatch(/^samples\s+2$/m);
    expect(ok.stdout).toContain('result    OK');
    const down = await closedPort();
    const bad = await runVakt(['probe', 'tcp', `127.0.0.1:${down}`]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('result    FAILED: refused in connect');
    const json = await runVakt(['probe', 'tcp', `127.0.0.1:${down}`, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'tcp', target: `127.0.0.1:${down}`, ok: false, failure: { reason: 'refused', phase: 'connect' } });
  });

  it('dns: prints the reply records as dig does (name, TTL, class, type, data), several resolvers each with their own', async () => {
    const r = await runVakt(['probe', 'dns', `127.0.0.1:${dns.port}`, '--name', 'cosmic.region.test', '--type', 'A', '--expect.answer.values', '10.20.1.5']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^answer\s+cosmic\.region\.test\.\s+300\s+IN\s+A\s+10\.20\.1\.5$/m);
    expect(r.stdout).toMatch(/^answer\s+cosmic\.region\.test\.\s+300\s+IN\s+A\s+10\.20\.1\.6$/m);
    const nx = await runVakt(['probe', 'dns', `127.0.0.1:${dns.port}`, '--name', 'gone.region.test', '--transport', 'tcp']);
    expect(nx.code).toBe(1);
    expect(nx.stdout).toMatch(/^authority\s+region\.test\.\s+600\s+IN\s+SOA\s+ns1\.region\.test\. hostmaster\.region\.test\. 2026112201 3600 600 86400 300$/m);
    expect(nx.stdout).toContain('result    FAILED: dns_nxdomain in request');
    // A long answer: the first 16 records, and how many more there were.
    const two = await runVakt(['probe', 'dns', `127.0.0.1:${dns.port}`, `localhost:${dns.port}`, '--name', 'vdi.region.test', '--ip-family', 'ip4', '--json']);
    expect(two.code).toBe(0);
    const out = JSON.parse(two.stdout) as { targets: { target: string; records: { section: string; data: string; ttl: number }[] }[] };
    expect(out.targets.map((t) => t.target)).toEqual([`127.0.0.1:${dns.port}`, `localhost:${dns.port}`]);
    for (const t of out.targets) {
      expect(t.records).toHaveLength(16);
      expect(t.records[0]).toEqual({ section: 'answer', name: 'vdi.region.test.', ttl: 300, class: 'IN', type: 'A', data: '10.20.1.5' });
    }
    const text = await runVakt(['probe', 'dns', `127.0.0.1:${dns.port}`, '--name', 'vdi.region.test']);
    expect(text.stdout).toContain('... 24 more record(s) not shown');
  });

  it('http: a local server, its status judged; a header option set with --opt', async () => {
    const ok = await runVakt(['probe', 'http', `http://127.0.0.1:${webPort}/health`, '--opt', 'headers.X-Probe=ad-hoc', '--expect.body-contains', 'ok']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^step {6}request: ok \(\d+\.\d{3} ms, status 200\)$/m);
    expect(ok.stdout).toMatch(/^http_status_code\s+200$/m);
    expect(ok.stdout).toContain('result    OK');
    expect(webRequests.some((h) => h['x-probe'] === 'ad-hoc')).toBe(true);
    const bad = await runVakt(['probe', 'http', `http://127.0.0.1:${webPort}/other`]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/result {4}FAILED: http_status/);
  });

  it("a bad option is the loader's own error, named by its flag, exit 2", async () => {
    const typo = await runVakt(['probe', 'dns', '127.0.0.1', '--name', 'x', '--tyep', 'A']);
    expect(typo.code).toBe(2);
    expect(typo.stdout).toBe('');
    expect(typo.stderr).toContain('vakt: probe dns: --tyep: expected one of name, type,');
    expect(typo.stderr).toContain('found unknown key "tyep" (did you mean "type"?)');
    const value = await runVakt(['probe', 'tcp', '127.0.0.1:1', '--samples', '0', '--connect-timeout', 'soon']);
    expect(value.code).toBe(2);
    expect(value.stderr).toContain('vakt: probe tcp: --samples: expected a value >= 1, found 0');
    expect(value.stderr).toContain('vakt: probe tcp: --connect-timeout: expected a duration such as 250ms, 5s or 2m, found "soon"');
    const target = await runVakt(['probe', 'tcp', 'no-port']);
    expect(target.code).toBe(2);
    expect(target.stderr).toContain('vakt: probe tcp: TARGET: expected host:port');
    const rule = await runVakt(['probe', 'ldap', 'ldaps://127.0.0.1:1', '--bind-dn', 'cn=x']);
    expect(rule.code).toBe(2);
    expect(rule.stderr).toContain('vakt: probe ldap: --password: expected password (a secret name) with bindDn');
    const kind = await runVakt(['probe', 'smtp', '127.0.0.1:25']);
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain('unknown kind "smtp" (kinds: tcp, dns, http');
    const two = await runVakt(['probe', 'tcp', '127.0.0.1:1', '127.0.0.1:2']);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('probe tcp takes one TARGET, got 2');
  });

  it('secrets come from the environment or a file, never from the command line, and never appear in the output', async () => {
    webRequests.length = 0;
    const token = 'tok-3f9a7c-secret';
    const r = await runVakt(
      [
        'probe',
        'http',
        `http://127.0.0.1:${webPort}/health`,
        '--secret',
        'api=env:VAKT_TEST_TOKEN',
        '--opt',
        'headers.Authorization=Bearer ${secret.api}',
        '--json',
      ],
      { VAKT_TEST_TOKEN: token },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(webRequests.at(-1)?.authorization).toBe(`Bearer ${token}`);
    expect(r.stdout).not.toContain(token);
    const unset = await runVakt(['probe', 'ldap', 'ldaps://127.0.0.1:1', '--bind-dn', 'cn=x', '--password-env', 'VAKT_TEST_UNSET']);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('vakt: probe ldap: --password-env: expected environment variable VAKT_TEST_UNSET to be set, found it unset or empty');
    const inline = await runVakt(['probe', 'ldap', 'ldaps://127.0.0.1:1', '--bind-dn', 'cn=x', '--password', 'hunter2-plain']);
    expect(inline.code).toBe(2);
    expect(inline.stderr).toContain('--password takes env:VARIABLE or file:PATH');
    expect(inline.stderr).not.toContain('hunter2-plain');
    expect((await runVakt(['probe', 'http', 'http://127.0.0.1:1/', '--secret', 'api=plain-value'])).stderr).toContain('--secret expects NAME=env:VARIABLE');
  });

  it("prints a certificate's expiry as a date", async () => {
    const pki = makePki();
    const peer = await tlsPeer({ cert: pki.valid.cert, key: pki.valid.key });
    peers.push(peer);
    const r = await runVakt(['probe', 'tcp', `127.0.0.1:${peer.port}`, '--tls.ca-file', pki.caFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const line = /^ssl_earliest_cert_expiry\s+(\d+) \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC, expires in (\d+) days\)$/m.exec(r.stdout);
    expect(line, r.stdout).not.toBeNull();
    expect(new Date(`${line?.[2]}Z`.replace(' ', 'T')).getTime()).toBe(Number(line?.[1]) * 1000);
    expect(Number(line?.[3])).toBeGreaterThanOrEqual(89);
  });
});

describe('ad-hoc flags', () => {
  const config = (kind: string, words: string[], env: NodeJS.ProcessEnv = {}) =>
    parseConfig(JSON.stringify(adHocProbe(kind, words).config), '(command line)', env);

  it('are read by the option schema: kebab or camel case, dotted keys, flags, repeated list keys, typed values, --options', () => {
    const c = config('tcp', ['h:443', '--tls', '--tls.server-name', 'ehr.test', '--samples', '3', '--sourceAddress', '10.0.0.1']).checks[0];
    expect(c?.options).toMatchObject({ tls: { serverName: 'ehr.test' }, samples: 3, sourceAddress: '10.0.0.1' });
    const d = config('dns', [
      '10.0.0.53',
      '--options',
      '{name: x.test, expect: {rcodes: [NOERROR]}}',
      '--expect.answer.values',
      '10.0.0.1',
      '--expect.answer.values',
      '10.0.0.2',
      '--dnssec-ok',
      '--type=AAAA',
    ]).checks[0];
    expect(d?.options).toMatchObject({
      name: 'x.test',
      type: 'AAAA',
      dnssecOk: true,
      expect: { rcodes: ['NOERROR'], answer: { values: ['10.0.0.1', '10.0.0.2'] } },
    });
    // A name that reads as a number stays a name; a comment sign is text.
    expect(config('dns', ['10.0.0.53', '--name', '010']).checks[0]?.options).toMatchObject({ name: '010' });
    expect(config('tcp', ['h:25', '--receive', '^220 #ok']).checks[0]?.options).toMatchObject({ receive: '^220 #ok' });
    // A record's keys are kept as written.
    expect(config('http', ['http://h/', '-o', 'headers.X-Request-Id=1']).checks[0]?.options).toMatchObject({ headers: { 'X-Request-Id': '1' } });
    expect(config('tcp', ['h:1', '--timeout', '1m']).checks[0]?.timeoutMs).toBe(60_000);
    expect(() => adHocProbe('tcp', ['h:1', '--__proto__.x', '1'])).toThrow(AdHocError);
    expect(() => adHocProbe('tcp', ['h:1', '--samples'])).toThrow('--samples needs a value');
  });

  it('every example of vakt probe --help builds a valid check', async () => {
    let help = '';
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = (chunk: string) => {
      help += chunk;
      return true;
    };
    try {
      expect(await main(['probe', '--help'])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    const examples = [...help.matchAll(/^ {2}vakt probe (\w+) (.+)$/gm)];
    expect(new Set(examples.map((m) => m[1]))).toEqual(new Set(['tcp', 'dns', 'http', 'oidc', 'ldap', 'mllp', 'queue', 'amqp', 'ntp', 'dicom']));
    const env = { VAKT_IDP_SECRET: 's', VAKT_AD_PASSWORD: 'p', VAKT_MQ_PASSWORD: 'm' };
    for (const [line, kind, rest] of examples) {
      try {
        config(kind as string, (rest as string).split(' '), env);
      } catch (err) {
        throw new Error(`${line}: ${err instanceof ConfigLoadError ? err.message : String(err)}`);
      }
    }
  });
});
