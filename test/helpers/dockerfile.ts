// Reads the Dockerfile as Docker does, for the tests that check the image without a Docker engine:
// instructions grouped by stage (comments dropped, continuation lines joined), a stage's chain of
// `FROM <earlier stage>` parents, COPY sources and destinations, WORKDIR, and .dockerignore.
// test/unit/dockerfile.test.ts checks the image's contract on it; test/system/
// production-install.test.ts builds the production stage's file tree from it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Instruction {
  keyword: string;
  /** Flags such as --from=build, --chown=..., --interval=30s. */
  flags: Record<string, string>;
  /** The rest after the flags, as written. */
  rest: string;
  line: number;
}

export interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Parses a Dockerfile: comments dropped, continuation lines joined, instructions grouped by stage. */
export function parseDockerfile(text: string): Stage[] {
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

/** A stage and the stages it is built FROM, the first image-based one first. */
export function stageChain(stages: readonly Stage[], stage: Stage): Stage[] {
  const chain = [stage];
  for (let s = stage; ;) {
    const parent = stages.slice(0, stages.indexOf(s)).find((p) => p.name === s.image);
    if (!parent) return chain;
    chain.unshift(parent);
    s = parent;
  }
}

/** Every instruction that makes a stage's image, its parents' first. */
export function chainInstructions(stages: readonly Stage[], stage: Stage): Instruction[] {
  return stageChain(stages, stage).flatMap((s) => s.instructions);
}

/** The exec (JSON array) form of ENTRYPOINT/CMD; the shell form is refused (signals would go to sh). */
export function execForm(ins: Instruction | undefined): string[] {
  if (!ins) return [];
  const parsed: unknown = JSON.parse(ins.rest);
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`line ${ins.line}: ${ins.keyword} is not in exec form`);
  return parsed;
}

/** COPY sources and destination, exec or shell form. */
export function copyArgs(ins: Instruction): { sources: string[]; dest: string } {
  const parts = ins.rest.startsWith('[') ? (JSON.parse(ins.rest) as string[]) : ins.rest.split(/\s+/);
  return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
}

/** The absolute path a relative path names at an instruction (WORKDIR applied), in a list of instructions. */
export function workdirAt(instructions: readonly Instruction[], ins: Instruction): string {
  let dir = '/';
  for (const i of instructions) {
    if (i === ins) break;
    if (i.keyword === 'WORKDIR') dir = posix.resolve(dir, i.rest);
  }
  return dir;
}

export function globToRegExp(pattern: string): RegExp {
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
export function dockerIgnore(text: string): (path: string) => boolean {
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
export function contextFiles(rel: string, ignored: (p: string) => boolean): string[] {
  const abs = resolve(ROOT, rel);
  if (!existsSync(abs) || ignored(rel)) return [];
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs).flatMap((e) => contextFiles(posix.join(rel, e), ignored));
}

/** Context paths a COPY source names, with its glob expanded (Docker globs only the last parts here). */
export function expandSource(source: string): string[] {
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

function isDirInRepo(rel: string): boolean {
  const abs = resolve(ROOT, rel);
  return existsSync(abs) && statSync(abs).isDirectory();
}

/** Where a COPY from the context puts one of its sources: a folder's content lands in dest, a file in dest/ when dest ends in '/'. */
export function copyLanding(instructions: readonly Instruction[], ins: Instruction, source: string): string {
  const { dest } = copyArgs(ins);
  const to = posix.resolve(workdirAt(instructions, ins), dest);
  const rel = posix.normalize(source).replace(/\/+$/, '');
  return !isDirInRepo(rel) && dest.endsWith('/') ? posix.join(to, posix.basename(rel)) : to;
}

/**
 * The context files a stage holds at or under an absolute path, as copied there from the build
 * context by its own COPY instructions (and its parents'): what a `COPY --from=<stage> PATH`
 * may bring along besides what the stage's RUN instructions make.
 */
export function contextFilesAt(stages: readonly Stage[], stage: Stage, abs: string, ignored: (p: string) => boolean): string[] {
  const instructions = chainInstructions(stages, stage);
  const found = new Set<string>();
  const target = abs.replace(/\/+$/, '') || '/';
  for (const ins of instructions.filter((i) => (i.keyword === 'COPY' || i.keyword === 'ADD') && i.flags.from === undefined)) {
    for (const source of copyArgs(ins).sources.flatMap(expandSource)) {
      const landed = copyLanding(instructions, ins, source);
      const rel = posix.normalize(source).replace(/\/+$/, '');
      if (target === landed || target.startsWith(`${landed}/`)) {
        for (const f of contextFiles(posix.join(rel, posix.relative(landed, target)), ignored)) found.add(f);
      } else if (landed.startsWith(`${target}/`) || target === '/') {
        for (const f of contextFiles(rel, ignored)) found.add(f);
      }
    }
  }
  return [...found];
}

/** The repository's Dockerfile, read: its stages, the build stage (the first), the production image (the last, the default target), and its .dockerignore. */
export function repositoryDockerfile(): { stages: Stage[]; build: Stage; production: Stage; isIgnored: (path: string) => boolean } {
  const stages = parseDockerfile(readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8'));
  const ignoreFile = resolve(ROOT, '.dockerignore');
  return { stages, build: stages[0]!, production: stages.at(-1)!, isIgnored: dockerIgnore(existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8') : '') };
}
