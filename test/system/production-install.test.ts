// The production container image, emulated without a Docker engine: the file tree the
// Dockerfile's production stage (its last) makes, built from the Dockerfile itself (its COPY
// instructions, its `npm ci --omit=dev`, its WORKDIR, ENV, USER, ENTRYPOINT and CMD), run by the
// Node release the Dockerfile pins, as the image's uid with no capabilities and no_new_privs,
// from a tree owned by root and without write permission, with a read-only config and token
// "mounted" beside it and one writable state folder: what Kubernetes runs with
// readOnlyRootFilesystem (deploy/kubernetes). The agent must serve /healthz and /metrics, write
// its state file to the state folder and nothing anywhere else, the tree must hold none of the
// sandbox's certificates or demo secrets, and `vakt demo` must say to use the demo image.
// Image paths (/app, /etc/vakt, /var/lib/vakt, ...) live under a temporary directory (IMAGE);
// the pieces this emulation does not run from the Dockerfile (the useradd, mkdir and chown of
// the production stage's RUN) are done by the test itself, as commented below.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dockerfile from '../helpers/dockerfile.js';
import { freePort, requireRoot, requireTool, run, tryRun, waitFor, watchDaemon } from './helpers.js';

const { chainInstructions, contextFiles, contextFilesAt, copyArgs, copyLanding, execForm, expandSource, ROOT, workdirAt } = dockerfile;
const { stages, build, production, isIgnored } = dockerfile.repositoryDockerfile();
const instructions = chainInstructions(stages, production);
const lastOf = (keyword: string) => instructions.filter((i) => i.keyword === keyword).at(-1);

/** The image's uid and gid (USER uid:gid). */
const [UID, GID] = (/^(\d+):(\d+)$/.exec(lastOf('USER')?.rest ?? '') ?? []).slice(1).map(Number) as [number, number];
/** The Node release the Dockerfile pins (FROM node:24.x.y-slim). */
const NODE_VERSION = /^node:(\d+\.\d+\.\d+)-slim/.exec(stages.find((s) => s.image.startsWith('node:'))?.image ?? '')?.[1];
const SCRAPE_TOKEN = 'production-install-test-token';

let work: string;
/** The image's root filesystem. */
let IMAGE: string;
let node: string;
let tcpPeer: Server;
const live = new Set<ChildProcess>();

/** A path inside the image, on this machine. */
const inImage = (abs: string) => join(IMAGE, abs);

/** Every file and folder under `dir` with its size and modification time: a tree's fingerprint. */
function listing(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = statSync(p, { bigint: true });
      out.set(relative(dir, p), `${st.size}:${st.mtimeNs}:${st.mode}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Copies a context file (repository path) to an absolute image path. */
function place(rel: string, to: string): void {
  mkdirSync(dirname(inImage(to)), { recursive: true });
  copyFileSync(resolve(ROOT, rel), inImage(to));
}

/**
 * Carries out the production stage's COPY instructions and its `npm ci` (with the compiled tree
 * in `dist` standing for the build stage's `npm run build` output).
 */
async function assemble(dist: string): Promise<void> {
  const buildInstructions = chainInstructions(stages, build);
  const buildDir = workdirAt(
    buildInstructions,
    buildInstructions.find((i) => /\bnpm run build\b/.test(i.rest))!,
  );
  for (const ins of instructions) {
    const at = workdirAt(instructions, ins);
    if (ins.keyword === 'COPY' && ins.flags.from === undefined) {
      for (const source of copyArgs(ins).sources.flatMap(expandSource)) {
        const landed = copyLanding(instructions, ins, source);
        const rel = posix.normalize(source).replace(/\/+$/, '');
        for (const f of contextFiles(rel, isIgnored)) place(f, f === rel ? landed : posix.join(landed, posix.relative(rel, f)));
      }
    } else if (ins.keyword === 'COPY') {
      if (ins.flags.from !== build.name) throw new Error(`line ${ins.line}: this emulation copies from the build stage only, found --from=${ins.flags.from}`);
      const { sources, dest } = copyArgs(ins);
      const to = posix.resolve(at, dest);
      for (const source of sources) {
        const abs = posix.resolve('/', source).replace(/\/+$/, '');
        if (abs === posix.join(buildDir, 'dist')) {
          await run('cp', ['-a', `${dist}/.`, inImage(to)]);
          continue;
        }
        mkdirSync(inImage(to), { recursive: true }); // a folder the build stage makes with mkdir -p
        for (const f of contextFilesAt(stages, build, abs, isIgnored)) {
          const inBuild = posix.join(buildDir, f);
          place(f, posix.join(to, posix.relative(abs, inBuild)));
        }
      }
    } else if (ins.keyword === 'RUN' && /\bnpm ci\b/.test(ins.rest)) {
      const args = /\bnpm ci\b[^&;|]*/.exec(ins.rest)![0].trim().split(/\s+/).slice(1);
      await run('npm', ['--prefix', inImage(at), ...args], 300_000);
    } else if (ins.keyword === 'ADD') {
      throw new Error(`line ${ins.line}: this emulation does not carry out ADD`);
    }
  }
}

/** Runs a command as the image's user: its uid and gid, no supplementary groups, no capabilities, no_new_privs. */
function asImageUser(argv: string[], env: Record<string, string>): ChildProcess {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = spawn(
    'setpriv',
    [`--reuid=${UID}`, `--regid=${GID}`, '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--', 'env', '-i', ...envArgs, ...argv],
    { cwd: inImage(workdirAt(instructions, lastOf('ENTRYPOINT')!)), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** The image's environment (ENV), plus what a container gets: PATH, and HOME of a user without one. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: `${dirname(node)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: '/nonexistent' };
  for (const ins of instructions.filter((i) => i.keyword === 'ENV')) {
    for (const m of ins.rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  return env;
}

/** ENTRYPOINT + CMD (or CMD replaced by `cmd`), with node the pinned release and image paths mapped. */
function imageCommand(cmd?: string[]): string[] {
  const entrypoint = execForm(lastOf('ENTRYPOINT'));
  expect(entrypoint[0], 'the entrypoint is node').toBe('node');
  return [node, ...entrypoint.slice(1), ...(cmd ?? execForm(lastOf('CMD')))].map((a) => (a.startsWith('/') && a !== node ? inImage(a) : a));
}

function configText(port: number, peerPort: number): string {
  return [
    'agent:',
    `  listen: 127.0.0.1:${port}`,
    `  stateFile: ${inImage('/var/lib/vakt/state.json')}`,
    '  startSpread: 100ms',
    '  labels: { site: production-install-test }',
    '  web:',
    '    tokens:',
    `      prometheus: { file: ${inImage('/run/secrets/vakt/scrape-token')} }`,
    '    access: { status: open, read: [prometheus] }',
    'defaults: { interval: 1s, timeout: 1s, retries: 0 }',
    'checks:',
    `  - { name: local-tcp, kind: tcp, target: "127.0.0.1:${peerPort}" }`,
    '',
  ].join('\n');
}

beforeAll(async () => {
  requireRoot();
  await requireTool('setpriv', ['--version'], 'util-linux');
  if (UID === undefined || GID === undefined || UID === 0)
    throw new Error(`the production stage must run as a numeric non-root USER uid:gid, found ${lastOf('USER')?.rest}`);
  if (!NODE_VERSION) throw new Error(`the Dockerfile must pin node:24.x.y-slim, found ${stages.map((s) => s.image).join(', ')}`);
  work = mkdtempSync(join(tmpdir(), 'vakt-production-'));
  chmodSync(work, 0o755);
  IMAGE = join(work, 'image');
  mkdirSync(IMAGE, { mode: 0o755 });

  // The build stage's `npm run build`, into a folder of the test's own (dist/ of the tree is left alone).
  const dist = join(work, 'build', 'dist');
  await run('npm', ['--prefix', ROOT, 'run', 'build', '--', '--outDir', dist], 300_000);
  await assemble(dist);

  // The Node release of the image's base (the npm registry ships Node's own binaries as packages).
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch as string];
  if (!arch) throw new Error(`no Node package for ${process.arch}`);
  const nodeDir = join(work, 'node');
  await run(
    'npm',
    ['install', '--prefix', nodeDir, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', `node-linux-${arch}@${NODE_VERSION}`],
    300_000,
  );
  node = join(nodeDir, 'node_modules', `node-linux-${arch}`, 'bin', 'node');
  expect((await run(node, ['--version'])).trim()).toBe(`v${NODE_VERSION}`);

  // What the production stage's RUN does besides npm ci: the state folder belongs to the user,
  // /etc/vakt exists; the user itself is only a uid here (setpriv needs no passwd entry).
  mkdirSync(inImage('/var/lib/vakt'), { recursive: true });
  mkdirSync(inImage('/etc/vakt'), { recursive: true });
  // The mounted secret (a Kubernetes Secret volume: read-only, root's).
  mkdirSync(inImage('/run/secrets/vakt'), { recursive: true });
  writeFileSync(inImage('/run/secrets/vakt/scrape-token'), `${SCRAPE_TOKEN}\n`);
  // A TMPDIR for the agent, its own, to see whether anything uses it (the image has none writable).
  mkdirSync(inImage('/tmp'), { recursive: true });

  // Everything root's and read-only, except the state folder and the temporary folder.
  await run('chown', ['-R', '0:0', IMAGE, nodeDir]);
  await run('chmod', ['-R', 'a-w', IMAGE, nodeDir]);
  chmodSync(IMAGE, 0o555);
  chownSync(inImage('/var/lib/vakt'), UID, GID);
  chmodSync(inImage('/var/lib/vakt'), 0o700);
  chownSync(inImage('/tmp'), UID, GID);
  chmodSync(inImage('/tmp'), 0o700);
  chmodSync(inImage('/run/secrets/vakt/scrape-token'), 0o444);

  tcpPeer = createServer((s) => s.destroy());
  await new Promise<void>((r) => tcpPeer.listen(0, '127.0.0.1', r));
}, 900_000);

afterAll(async () => {
  for (const child of live) child.kill('SIGKILL');
  await new Promise<void>((r) => (tcpPeer ? tcpPeer.close(() => r()) : r()));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the production image, emulated', () => {
  it('holds none of the sandbox certificates or demo secrets, under any name', () => {
    const demoOnly = ['sandbox/certs', 'sandbox/secrets'].flatMap((d) => contextFiles(d, () => false));
    expect(demoOnly.length).toBeGreaterThan(0);
    const hashes = new Map(demoOnly.map((f) => [sha256(resolve(ROOT, f)), f]));
    const found: string[] = [];
    for (const [rel] of listing(IMAGE)) {
      const p = join(IMAGE, rel);
      if (/sandbox\/(certs|secrets)(\/|$)/.test(rel)) found.push(rel);
      else if (statSync(p).isFile() && hashes.has(sha256(p))) found.push(`${rel} (= ${hashes.get(sha256(p))})`);
    }
    expect(found).toEqual([]);
  });

  it('runs from a read-only tree as its uid: serves /healthz and /metrics, writes its state file and nothing else', async () => {
    const port = await freePort();
    const config = inImage('/etc/vakt/vakt.yaml');
    chmodSync(inImage('/etc/vakt'), 0o755);
    writeFileSync(config, configText(port, (tcpPeer.address() as { port: number }).port));
    chmodSync(config, 0o444);
    chmodSync(inImage('/etc/vakt'), 0o555);
    const marker = join(work, 'marker');
    writeFileSync(marker, '');
    const before = listing(IMAGE);

    const agent = asImageUser(imageCommand(), { ...imageEnv(), TMPDIR: inImage('/tmp') });
    const watch = watchDaemon(agent, new Set());
    const base = `http://127.0.0.1:${port}`;
    const get = async (path: string, token?: string) => {
      try {
        const res = await fetch(`${base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
        return { status: res.status, body: await res.text() };
      } catch {
        return undefined;
      }
    };
    try {
      await Promise.race([
        watch.spawnError,
        waitFor(
          '/healthz',
          async () => (await get('/healthz'))?.status === 200 || (watch.exited() ? Promise.reject(new Error(`agent exited: ${watch.output()}`)) : false),
          30_000,
        ),
      ]);
      await waitFor('/readyz', async () => (await get('/readyz'))?.status === 200, 10_000);
      // /metrics with the scrape token, as the ServiceMonitor sends it; without it, refused.
      const metrics = await waitFor(
        'probe_success of local-tcp',
        async () => {
          const r = await get('/metrics', SCRAPE_TOKEN);
          return r?.status === 200 && /^probe_success\{[^}]*check="local-tcp"[^}]*\} 1$/m.test(r.body) ? r.body : undefined;
        },
        20_000,
      );
      expect(metrics).toMatch(/^vakt_check_status\{[^}]*check="local-tcp"[^}]*status="ok"[^}]*\} 1$/m);
      expect((await get('/metrics'))?.status).toBe(401);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nagent output:\n${watch.output()}`);
    }
    agent.kill('SIGTERM');
    await Promise.race([watch.exit, new Promise((r) => setTimeout(r, 10_000))]);
    expect(watch.exited(), `agent stopped on SIGTERM\n${watch.output()}`).toEqual({ code: 0, signal: null });

    // The state file, on the state volume, written by the agent's uid.
    const state = inImage('/var/lib/vakt/state.json');
    expect(existsSync(state), `state file ${state}\n${watch.output()}`).toBe(true);
    expect(() => JSON.parse(readFileSync(state, 'utf8')) as unknown).not.toThrow();
    expect(statSync(state).uid).toBe(UID);

    // Nothing else changed in the image's tree, nothing was left in its temporary folder, and the
    // uid owns nothing new in the machine's shared temporary folders.
    const after = listing(IMAGE);
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter((p) => before.get(p) !== after.get(p));
    expect(changed.filter((p) => !p.startsWith('var/lib/vakt/') && p !== 'var/lib/vakt')).toEqual([]);
    // The state volume holds the baselines and the incident journal (beside agent.stateFile), nothing else.
    expect(readdirSync(inImage('/var/lib/vakt')).sort()).toEqual(['journal.jsonl', 'state.json']);
    const journal = readFileSync(inImage('/var/lib/vakt/journal.jsonl'), 'utf8').trim().split('\n');
    expect(JSON.parse(journal[0] as string)).toMatchObject({ type: 'agent', event: 'started' });
    expect(JSON.parse(journal[journal.length - 1] as string)).toMatchObject({ type: 'agent', event: 'stopped' });
    expect(readdirSync(inImage('/tmp'))).toEqual([]);
    const stray = await tryRun('find', [
      '/tmp',
      '/var/tmp',
      '/dev/shm',
      '-xdev',
      '-path',
      work,
      '-prune',
      '-o',
      '-user',
      String(UID),
      '-newer',
      marker,
      '-print',
    ]);
    expect(stray.stdout.trim()).toBe('');
  });

  it('says to use the demo image when asked for the demo', async () => {
    const demo = asImageUser(imageCommand(['demo']), imageEnv());
    const watch = watchDaemon(demo, new Set());
    await Promise.race([watch.exit, new Promise((r) => setTimeout(r, 30_000))]);
    expect(watch.exited(), watch.output()).toBeDefined();
    expect(watch.exited()!.code).not.toBe(0);
    expect(watch.output()).toContain('docker build --target demo -t vakt:demo .');
    expect(watch.output()).toMatch(/production image carries no demo certificates or secrets/);
  });
});
