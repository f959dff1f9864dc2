// The container image's contract, checked on the Dockerfile text (CI has no Docker engine):
// two node:24-slim stages, production dependencies only, a non-root user, port 9464, a health
// check without curl/wget, `vakt run -c /etc/vakt/vakt.yaml` as the default command, and every
// file the build copies present in the repository and not hidden by .dockerignore.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../agent/heap.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Instruction {
  keyword: string;
  /** Flags such as --from=build, --chown=..., --interval=30s. */
  flags: Record<string, string>;
  /** The rest after the flags, as written. */
  rest: string;
  line: number;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Parses a Dockerfile: comments dropped, continuation lines joined, instructions grouped by stage. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = '';
  let startLine = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (/^\s*#/.test(raw)) continue; // comments, also inside a continued instruction
    if (pending === '') {
      if (raw.trim() === '') continue;
      startLine = i + 1;
    }
    if (/\\\s*$/.test(raw)) {
      pending += raw.replace(/\\\s*$/, '') + ' ';
      continue;
    }
    pending += raw;
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(pending);
    pending = '';
    if (!m) throw new Error(`Dockerfile line ${startLine}: cannot parse`);
    let rest = m[2]!.trim();
    const flags: Record<string, string> = {};
    for (let f = /^--([\w-]+)(?:=(\S*))?\s*/.exec(rest); f; f = /^--([\w-]+)(?:=(\S*))?\s*/.exec(rest)) {
      flags[f[1]!] = f[2] ?? 'true';
      rest = rest.slice(f[0].length);
    }
    const ins: Instruction = { keyword: m[1]!.toUpperCase(), flags, rest, line: startLine };
    if (ins.keyword === 'FROM') {
      const from = /^(\S+)(?:\s+as\s+(\S+))?$/i.exec(rest);
      if (!from) throw new Error(`Dockerfile line ${startLine}: cannot parse FROM ${rest}`);
      stages.push({ image: from[1]!, name: from[2], instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`Dockerfile line ${startLine}: ${ins.keyword} before the first FROM`);
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

/** The exec (JSON array) form of ENTRYPOINT/CMD; the shell form is refused (signals would go to sh). */
function execForm(ins: Instruction | undefined): string[] {
  if (!ins) return [];
  const parsed: unknown = JSON.parse(ins.rest);
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`line ${ins.line}: ${ins.keyword} is not in exec form`);
  return parsed;
}

function last(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1);
}

/** COPY sources and destination, exec or shell form. */
function copyArgs(ins: Instruction): { sources: string[]; dest: string } {
  const parts = ins.rest.startsWith('[') ? (JSON.parse(ins.rest) as string[]) : ins.rest.split(/\s+/);
  return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
}

/** The absolute path a relative path names in a stage at a given instruction (WORKDIR applied). */
function workdirAt(stage: Stage, ins: Instruction): string {
  let dir = '/';
  for (const i of stage.instructions) {
    if (i === ins) break;
    if (i.keyword === 'WORKDIR') dir = posix.resolve(dir, i.rest);
  }
  return dir;
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** .dockerignore semantics: patterns in order, `!` re-includes, a match on a folder covers its content. */
function dockerIgnore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const p = posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
      return { negate, re: globToRegExp(p) };
    });
  return (path) => {
    const segments = path.split('/');
    let ignored = false;
    for (const r of rules) {
      for (let n = 1; n <= segments.length; n++) {
        if (r.re.test(segments.slice(0, n).join('/'))) {
          ignored = !r.negate;
          break;
        }
      }
    }
    return ignored;
  };
}

/** Files (recursively) under a repository path that the build context holds. */
function contextFiles(rel: string, ignored: (p: string) => boolean): string[] {
  const abs = resolve(ROOT, rel);
  if (!existsSync(abs) || ignored(rel)) return [];
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs).flatMap((e) => contextFiles(posix.join(rel, e), ignored));
}

/** Context paths a COPY source names, with its glob expanded (Docker globs only the last parts here). */
function expandSource(source: string): string[] {
  const rel = posix.normalize(source).replace(/^\/+|\/+$/g, '');
  if (!/[*?[]/.test(rel)) return [rel];
  const dir = posix.dirname(rel);
  const re = globToRegExp(posix.basename(rel));
  const abs = resolve(ROOT, dir);
  return existsSync(abs)
    ? readdirSync(abs)
        .filter((e) => re.test(e))
        .map((e) => (dir === '.' ? e : `${dir}/${e}`))
    : [];
}

const dockerfile = readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const build = stages[0]!;
const runtime = stages.at(-1)!;
const ignoreFile = resolve(ROOT, '.dockerignore');
const isIgnored = dockerIgnore(existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8') : '');
const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.rest);

describe('Dockerfile', () => {
  it('builds in a separate stage, every stage on node:24-slim', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.image, `FROM ${s.image}`).toMatch(/^node:24(?:\.\d+){0,2}-slim(?:@sha256:[0-9a-f]{64})?$/);
    expect(runs(build).some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(runs(build).some((r) => /\bnpm run build\b/.test(r))).toBe(true);
  });

  it('gives the build stage everything tsconfig.build.json compiles, at the same relative paths', () => {
    const tsBuild = JSON.parse(readFileSync(resolve(ROOT, 'tsconfig.build.json'), 'utf8')) as { extends?: string; include: string[] };
    const needed = [
      'package.json',
      'package-lock.json',
      'tsconfig.build.json',
      ...(tsBuild.extends ? [posix.normalize(tsBuild.extends)] : []),
      ...tsBuild.include,
    ];
    const buildAt = workdirAt(
      build,
      build.instructions.find((i) => /\bnpm run build\b/.test(i.rest))!,
    );
    const copied = new Set<string>();
    for (const ins of build.instructions.filter((i) => i.keyword === 'COPY' && i.flags.from === undefined)) {
      const { sources, dest } = copyArgs(ins);
      const to = posix.resolve(workdirAt(build, ins), dest);
      for (const s of sources.flatMap(expandSource)) {
        const isDir = existsSync(resolve(ROOT, s)) && statSync(resolve(ROOT, s)).isDirectory();
        const landed = !isDir && dest.endsWith('/') ? posix.join(to, posix.basename(s)) : to;
        if (landed === posix.resolve(buildAt, s)) copied.add(s);
      }
    }
    expect(needed.filter((n) => !copied.has(n))).toEqual([]);
  });

  it('installs production dependencies only in the runtime image, without running scripts', () => {
    const install = runs(runtime).filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    expect(install).toHaveLength(1);
    expect(install[0]).toMatch(/\bnpm ci\b/);
    expect(install[0]).toMatch(/--omit=dev\b/);
    expect(install[0]).toMatch(/--ignore-scripts\b/);
    expect(runs(runtime).some((r) => /\bnpm run build\b|\btsc\b/.test(r))).toBe(false);
  });

  it('runs as a non-root user', () => {
    const user = last(runtime, 'USER');
    expect(user, 'USER in the runtime stage').toBeDefined();
    const [name, group] = user!.rest.split(':');
    expect(['root', '0']).not.toContain(name);
    if (group !== undefined) expect(['root', '0']).not.toContain(group);
    // Nothing after USER switches back.
    const after = runtime.instructions.slice(runtime.instructions.indexOf(user!) + 1);
    expect(after.filter((i) => i.keyword === 'USER')).toEqual([]);
  });

  it('exposes the metrics port 9464', () => {
    const ports = runtime.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.rest.split(/\s+/));
    expect(ports.map((p) => p.replace(/\/tcp$/, ''))).toContain('9464');
  });

  it('has a health check on /healthz that needs neither curl nor wget', () => {
    const hc = last(runtime, 'HEALTHCHECK');
    expect(hc, 'HEALTHCHECK in the runtime stage').toBeDefined();
    expect(hc!.rest).toMatch(/^CMD\s/);
    expect(hc!.rest).not.toMatch(/\b(curl|wget)\b/);
    expect(hc!.rest).toMatch(/\bnode\b/);
    expect(hc!.rest).toContain('http://127.0.0.1:9464/healthz');
  });

  it('runs `vakt run -c /etc/vakt/vakt.yaml` by default, through the package bin script', () => {
    const entrypoint = execForm(last(runtime, 'ENTRYPOINT'));
    const cmd = execForm(last(runtime, 'CMD'));
    // node starts with the flags every entry point gives it (agent/heap.ts NODE_FLAGS).
    expect([...entrypoint, ...cmd]).toEqual(['node', ...NODE_FLAGS, expect.any(String), 'run', '-c', '/etc/vakt/vakt.yaml']);
    // The script node runs is where the runtime stage put package.json's `vakt` bin.
    const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const binRel = posix.normalize(pkg.bin.vakt!);
    const landed = runtime.instructions
      .filter((i) => i.keyword === 'COPY' && i.flags.from === undefined)
      .flatMap((i) => {
        const { sources, dest } = copyArgs(i);
        const to = posix.resolve(workdirAt(runtime, i), dest);
        return sources
          .map((s) => posix.normalize(s).replace(/\/+$/, ''))
          .filter((s) => binRel === s || binRel.startsWith(`${s}/`))
          .map((s) => (binRel === s ? (dest.endsWith('/') ? posix.join(to, posix.basename(s)) : to) : posix.join(to, binRel.slice(s.length + 1))));
      });
    expect(landed).toContain(entrypoint[1 + NODE_FLAGS.length]);
  });

  it('has OCI labels', () => {
    const labels = runtime.instructions
      .filter((i) => i.keyword === 'LABEL')
      .map((i) => i.rest)
      .join(' ');
    for (const key of ['title', 'description', 'licenses', 'version', 'revision']) {
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
    }
  });

  it('copies only paths the repository has and .dockerignore lets through', () => {
    const problems: string[] = [];
    for (const stage of stages) {
      for (const ins of stage.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
        if (ins.flags.from !== undefined) continue; // checked in the next test
        for (const source of copyArgs(ins).sources) {
          const paths = expandSource(source);
          if (paths.length === 0) problems.push(`line ${ins.line}: ${source} matches nothing`);
          for (const p of paths) {
            // Git keeps no empty folders: a folder without files is missing from a fresh clone.
            if (contextFiles(p, isIgnored).length === 0) problems.push(`line ${ins.line}: ${p} is missing, empty or excluded by .dockerignore`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('copies from the build stage only what that stage has or makes', () => {
    const problems: string[] = [];
    const outDir = (JSON.parse(readFileSync(resolve(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string } }).compilerOptions.outDir;
    for (const ins of runtime.instructions.filter((i) => i.keyword === 'COPY' && i.flags.from !== undefined)) {
      const from = stages.find((s) => s.name === ins.flags.from);
      if (!from) {
        problems.push(`line ${ins.line}: --from=${ins.flags.from} is not a stage of this Dockerfile`);
        continue;
      }
      for (const source of copyArgs(ins).sources) {
        const abs = posix.resolve('/', source).replace(/\/+$/, '');
        const made = from.instructions.some((i) => {
          const dir = workdirAt(from, i);
          if (i.keyword === 'RUN') {
            const rel = posix.relative(dir, abs);
            if (rel === posix.normalize(outDir) && /\bnpm run build\b/.test(i.rest)) return true;
            return new RegExp(`\\bmkdir -p\\b[^&;|]*\\s${rel.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|/|$)`).test(i.rest);
          }
          if (i.keyword !== 'COPY' || i.flags.from !== undefined) return false;
          const { sources, dest } = copyArgs(i);
          const to = posix.resolve(dir, dest);
          // The path lies under a folder this stage copied from the context, and the context has it.
          return sources.some((s) => {
            const inRepo = posix.normalize(s).replace(/\/+$/, '');
            // A folder's content lands in the destination; a file lands in it when it ends in '/'.
            const isDir = existsSync(resolve(ROOT, inRepo)) && statSync(resolve(ROOT, inRepo)).isDirectory();
            const landed = !isDir && dest.endsWith('/') ? posix.join(to, posix.basename(inRepo)) : to;
            if (abs !== landed && !abs.startsWith(`${landed}/`)) return false;
            return contextFiles(posix.join(inRepo, posix.relative(landed, abs)), isIgnored).length > 0;
          });
        });
        if (!made) problems.push(`line ${ins.line}: ${source} is neither copied into nor made by stage ${from.name}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('.dockerignore', () => {
  it('keeps dependencies, build output, history and test output out of the context', () => {
    for (const p of ['node_modules', 'node_modules/zod/package.json', 'dist/agent/cli.js', '.git/HEAD', 'test-artifacts/x', 'coverage/index.html']) {
      expect(isIgnored(p), p).toBe(true);
    }
    for (const p of ['package.json', 'agent/cli.ts', 'bin/vakt.js', 'config/default.yaml', 'sandbox/certs/ca.pem', 'sandbox/secrets/probe-password']) {
      expect(isIgnored(p), p).toBe(false);
    }
  });
});
