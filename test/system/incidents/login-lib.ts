// The parts of the login replay (login.test.ts, incident 2) that are servers: OpenLDAP's slapd
// with a small directory of its own, in a namespace, and a login web application that
// authenticates every sign-in against it with an LDAP simple bind (ldapts), as many clinical web
// front ends do: GET /login (a form with a CSRF token), POST /login (bind as the user; a session
// cookie and a redirect to /app/home), GET /app/home (the session's page), GET /logout. The app
// runs as its own process in its own namespace (`serveLogin`, started by `startLoginApp`), so its
// traffic to the directory crosses the link the replay slows.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, InvalidCredentialsError } from 'ldapts';
import { run, tryRun, waitForLine, watchDaemon } from '../helpers.js';
import { ROOT, type Cleanup } from './harness.js';

export const SUFFIX = 'dc=region,dc=test';
export const PEOPLE = `ou=people,${SUFFIX}`;

/** The accounts of the directory: uid → password. */
export const ACCOUNTS = { 'svc-vakt': 'Vakt-probe-S3cret!', nurse1: 'nurse1-pw' } as const;

/** slapd in `netns` on ldap://`address`:389, serving SUFFIX with ACCOUNTS; stopped by `cleanup`. */
export async function startSlapd(cleanup: Cleanup, netns: string, address: string): Promise<{ url: string }> {
  const dir = mkdtempSync(join(tmpdir(), `vakt-test-${process.pid}-slapd-`));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const hash = async (pw: string) => (await run('slappasswd', ['-h', '{SSHA}', '-s', pw])).trim();
  const conf = join(dir, 'slapd.conf');
  writeFileSync(
    conf,
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      `pidfile ${join(dir, 'slapd.pid')}`,
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'access to attrs=userPassword by anonymous auth by self read by * none',
      'access to * by * read',
      'database mdb',
      'maxsize 16777216',
      `suffix "${SUFFIX}"`,
      `rootdn "cn=admin,${SUFFIX}"`,
      `rootpw ${await hash(randomBytes(12).toString('hex'))}`,
      `directory ${join(dir, 'db')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const people = await Promise.all(
    Object.entries(ACCOUNTS).map(async ([uid, pw]) =>
      [`dn: uid=${uid},${PEOPLE}`, 'objectClass: inetOrgPerson', `uid: ${uid}`, `cn: ${uid}`, `sn: ${uid}`, `userPassword: ${await hash(pw)}`, ''].join('\n'),
    ),
  );
  const ldif = join(dir, 'seed.ldif');
  writeFileSync(
    ldif,
    [
      [`dn: ${SUFFIX}`, 'objectClass: dcObject', 'objectClass: organization', 'o: Region', 'dc: region', ''].join('\n'),
      [`dn: ${PEOPLE}`, 'objectClass: organizationalUnit', 'ou: people', ''].join('\n'),
      ...people,
    ].join('\n'),
  );
  mkdirSync(join(dir, 'db'));
  await run('slaptest', ['-u', '-f', conf]);
  await run('slapadd', ['-f', conf, '-b', SUFFIX, '-l', ldif]);
  const url = `ldap://${address}:389`;
  // -d 0: in the foreground (killed with its namespace too), logging nothing but errors.
  const child = spawn('ip', ['netns', 'exec', netns, 'slapd', '-f', conf, '-h', `${url}/`, '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const daemon = watchDaemon(child, new Set());
  cleanup.add('stop slapd', async () => {
    if (!daemon.exited()) {
      child.kill('SIGKILL');
      await daemon.exit;
    }
  });
  const deadline = performance.now() + 10_000;
  for (;;) {
    if (daemon.exited()) throw new Error(`slapd exited before answering: ${daemon.output().trim()}`);
    const [uid, pw] = Object.entries(ACCOUNTS)[0]!;
    const r = await tryRun('ip', ['netns', 'exec', netns, 'ldapwhoami', '-x', '-H', url, '-D', `uid=${uid},${PEOPLE}`, '-w', pw]);
    if (r.code === 0) return { url };
    if (performance.now() > deadline) throw new Error(`slapd on ${url} did not answer within 10 s: ${r.stderr.trim()} ${daemon.output().trim()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The login app (`serveLogin`) as its own process in `netns`, on `address`; resolves with its base URL. */
export async function startLoginApp(cleanup: Cleanup, netns: string, address: string, ldapUrl: string): Promise<string> {
  const script = `import(${JSON.stringify(join(ROOT, 'test/system/incidents/login-lib.ts'))}).then((m) => m.serveLogin(${JSON.stringify(address)}, ${JSON.stringify(ldapUrl)}))`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const daemon = watchDaemon(child, new Set());
  cleanup.add('stop the login app', async () => {
    if (!daemon.exited()) {
      child.kill('SIGKILL');
      await daemon.exit;
    }
  });
  const line = await waitForLine(child, /^listening \d+$/, 30_000);
  return `http://${address}:${line.split(' ')[1]}`;
}

function page(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', ...headers });
  res.end(`<!doctype html><html><body>${body}</body></html>\n`);
}

async function formOf(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The login web app: listens on `address` (a free port), prints `listening <port>`, and binds to `ldapUrl` on every sign-in. */
export function serveLogin(address: string, ldapUrl: string): void {
  const tokens = new Set<string>();
  const sessions = new Map<string, string>();
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://app');
      const sid = /(?:^|;\s*)sid=([0-9a-f]+)/.exec(req.headers.cookie ?? '')?.[1];
      if (req.method === 'GET' && url.pathname === '/login') {
        const csrf = randomBytes(16).toString('hex');
        tokens.add(csrf);
        return page(
          res,
          200,
          `<h1>Sign in</h1><form method="post" action="/login"><input type="hidden" name="csrf" value="${csrf}"><input name="username"><input type="password" name="password"><button>Sign in</button></form>`,
        );
      }
      if (req.method === 'POST' && url.pathname === '/login') {
        const form = await formOf(req);
        const csrf = form.get('csrf') ?? '';
        if (!tokens.delete(csrf)) return page(res, 403, '<p>Form expired</p>');
        const user = form.get('username') ?? '';
        if (!/^[a-z0-9-]{1,32}$/.test(user)) return page(res, 401, '<p>Invalid username or password</p>');
        // A connection per sign-in, no timeout of its own: a slow directory is a slow login.
        const client = new Client({ url: ldapUrl });
        try {
          await client.bind(`uid=${user},${PEOPLE}`, form.get('password') ?? '');
        } catch (err) {
          return page(
            res,
            err instanceof InvalidCredentialsError ? 401 : 502,
            err instanceof InvalidCredentialsError ? '<p>Invalid username or password</p>' : '<p>Directory unavailable</p>',
          );
        } finally {
          void client.unbind().catch(() => undefined);
        }
        const id = randomBytes(16).toString('hex');
        sessions.set(id, user);
        return page(res, 303, '', { Location: '/app/home', 'Set-Cookie': `sid=${id}; Path=/; HttpOnly` });
      }
      if (req.method === 'GET' && url.pathname === '/app/home') {
        const user = sid ? sessions.get(sid) : undefined;
        if (!user) return page(res, 302, '', { Location: '/login' });
        return page(res, 200, `<h1>Welcome</h1><p>Signed in as ${user}</p>`);
      }
      if (req.method === 'GET' && url.pathname === '/logout') {
        if (sid) sessions.delete(sid);
        return page(res, 200, '<p>Signed out</p>', { 'Set-Cookie': 'sid=; Path=/; Max-Age=0' });
      }
      return page(res, 404, '<p>Not found</p>');
    })().catch((err: Error) => {
      if (!res.headersSent) page(res, 500, `<p>${err.name}</p>`);
    });
  });
  server.listen(0, address, () => {
    const addr = server.address();
    process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
  });
}
