// The container image's contract, checked on the Dockerfile text (CI has no Docker engine):
// stages on one pinned Node 24 slim base; a build stage; the production image as the last stage
// (the default target) with production dependencies only, no package manager, no sandbox
// certificates or demo secrets, a fixed non-root uid, port 9464, a health check without
// curl/wget and `vakt run -c /etc/vakt/vakt.yaml` as the default command; a `demo` target that
// adds the sandbox's material and runs `vakt demo`; and every file the build copies present in the
// repository and not hidden by .dockerignore. test/system/production-install.test.ts runs the
// production stage's install as that uid on a read-only tree.
import { readFileSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../agent/heap.js';
import {
  chainInstructions,
  contextFiles,
  contextFilesAt,
  copyArgs,
  copyLanding,
  execForm,
  expandSource,
  repositoryDockerfile,
  ROOT,
  stageChain,
  workdirAt,
  type Instruction,
  type Stage,
} from '../helpers/dockerfile.js';

/** A Node 24 slim image pinned to one release (24.x.y), optionally also by digest. */
const PINNED_NODE_24 = /^node:24\.\d+\.\d+-slim(?:@sha256:[0-9a-f]{64})?$/;
/** What the production image must never hold (the demo target adds them). */
const DEMO_ONLY = ['sandbox/certs', 'sandbox/secrets'];

const { stages, build, production, isIgnored } = repositoryDockerfile();
const demo = stages.find((s) => s.name === 'demo');

/** Every instruction that makes the stage's image (its parents' first). */
const made = (stage: Stage) => chainInstructions(stages, stage);
const runs = (stage: Stage) =>
  made(stage)
    .filter((i) => i.keyword === 'RUN')
    .map((i) => i.rest);
const last = (stage: Stage, keyword: string) =>
  made(stage)
    .filter((i) => i.keyword === keyword)
    .at(-1);
const demoOnly = (path: string) => DEMO_ONLY.some((d) => path === d || path.startsWith(`${d}/`));

/** Context files a COPY instruction of a stage's chain brings into the image (from the context or another stage). */
function copiedFiles(stage: Stage, ins: Instruction): string[] {
  const { sources } = copyArgs(ins);
  if (ins.flags.from === undefined) return sources.flatMap(expandSource).flatMap((s) => contextFiles(s, isIgnored));
  const from = stages.find((s) => s.name === ins.flags.from);
  if (!from) return [];
  return sources.flatMap((s) => contextFilesAt(stages, from, posix.resolve('/', s), isIgnored));
}

describe('Dockerfile', () => {
  it('builds every stage on one Node 24 slim release, pinned, or on an earlier stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    for (const s of stages) {
      const onStage = stages.slice(0, stages.indexOf(s)).some((p) => p.name === s.image);
      if (!onStage) expect(s.image, `FROM ${s.image}`).toMatch(PINNED_NODE_24);
    }
    const images = [...new Set(stages.filter((s) => PINNED_NODE_24.test(s.image)).map((s) => s.image))];
    expect(images, 'one pinned base for every stage').toHaveLength(1);
    // The label names the same base as the FROM lines.
    const labels = made(production)
      .filter((i) => i.keyword === 'LABEL')
      .map((i) => i.rest)
      .join(' ');
    expect(labels).toContain(`org.opencontainers.image.base.name="docker.io/library/${images[0]!.replace(/@.*$/, '')}"`);
  });

  it('compiles in a build stage that the production image does not descend from', () => {
    expect(runs(build).some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(runs(build).some((r) => /\bnpm run build\b/.test(r))).toBe(true);
    expect(stageChain(stages, production)).not.toContain(build);
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
    const instructions = made(build);
    const buildAt = workdirAt(
      instructions,
      instructions.find((i) => /\bnpm run build\b/.test(i.rest))!,
    );
    const copied = new Set<string>();
    for (const ins of instructions.filter((i) => i.keyword === 'COPY' && i.flags.from === undefined)) {
      for (const s of copyArgs(ins).sources.flatMap(expandSource)) {
        if (copyLanding(instructions, ins, s) === posix.resolve(buildAt, s)) copied.add(s);
      }
    }
    expect(needed.filter((n) => !copied.has(n))).toEqual([]);
  });

  it('installs production dependencies only in the production image, without running scripts, and drops the package managers', () => {
    const install = runs(production).filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    expect(install).toHaveLength(1);
    expect(install[0]).toMatch(/\bnpm ci\b/);
    expect(install[0]).toMatch(/--omit=dev\b/);
    expect(install[0]).toMatch(/--ignore-scripts\b/);
    expect(runs(production).some((r) => /\bnpm run build\b|\btsc\b/.test(r))).toBe(false);
    // Nothing runs npm once the image is built: the entrypoint is node, and npm itself is removed.
    const removal = runs(production).find((r) => /\brm -rf\b[^&;|]*\/usr\/local\/lib\/node_modules\/npm\b/.test(r));
    expect(removal, 'a RUN that removes npm').toBeDefined();
    expect(runs(production).indexOf(removal!)).toBeGreaterThanOrEqual(runs(production).indexOf(install[0]!));
  });

  it('keeps the sandbox certificates and demo secrets out of the production image', () => {
    const problems: string[] = [];
    for (const ins of made(production).filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
      for (const f of copiedFiles(production, ins).filter(demoOnly)) problems.push(`line ${ins.line}: ${ins.keyword} ${ins.rest} brings ${f}`);
    }
    expect(problems).toEqual([]);
  });

  it('has a demo target that adds the sandbox material to the same app and runs `vakt demo`', () => {
    expect(demo, 'a stage named demo (docker build --target demo)').toBeDefined();
    // The demo is the production app plus the sandbox's files, not a second build of it.
    const shared = stageChain(stages, demo!).filter((s) => stageChain(stages, production).includes(s));
    expect(shared.some((s) => s.instructions.some((i) => i.keyword === 'ENTRYPOINT'))).toBe(true);
    const copied = made(demo!)
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) => copiedFiles(demo!, i));
    for (const d of DEMO_ONLY)
      expect(
        copied.some((f) => f.startsWith(`${d}/`)),
        d,
      ).toBe(true);
    expect(execForm(last(demo!, 'CMD'))[0]).toBe('demo');
    expect(stages.indexOf(demo!)).toBeLessThan(stages.length - 1);
  });

  it('runs as a fixed, numeric, non-root uid and gid', () => {
    const user = last(production, 'USER');
    expect(user, 'USER in the production image').toBeDefined();
    // Numeric, so that Kubernetes can verify runAsNonRoot against it (deploy/kubernetes).
    const m = /^(\d+):(\d+)$/.exec(user!.rest);
    expect(m, `USER ${user!.rest} as uid:gid`).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![2])).toBeGreaterThan(0);
    // Nothing after USER switches back.
    const after = made(production).slice(made(production).indexOf(user!) + 1);
    expect(after.filter((i) => i.keyword === 'USER')).toEqual([]);
  });

  it('exposes the metrics port 9464', () => {
    const ports = made(production)
      .filter((i) => i.keyword === 'EXPOSE')
      .flatMap((i) => i.rest.split(/\s+/));
    expect(ports.map((p) => p.replace(/\/tcp$/, ''))).toContain('9464');
  });

  it('has a health check on /healthz that needs neither curl nor wget', () => {
    const hc = last(production, 'HEALTHCHECK');
    expect(hc, 'HEALTHCHECK in the production image').toBeDefined();
    expect(hc!.rest).toMatch(/^CMD\s/);
    expect(hc!.rest).not.toMatch(/\b(curl|wget)\b/);
    expect(hc!.rest).toMatch(/\bnode\b/);
    expect(hc!.rest).toContain('http://127.0.0.1:9464/healthz');
  });

  it('runs `vakt run -c /etc/vakt/vakt.yaml` by default, through the package bin script', () => {
    const entrypoint = execForm(last(production, 'ENTRYPOINT'));
    const cmd = execForm(last(production, 'CMD'));
    // node starts with the flags every entry point gives it (agent/heap.ts NODE_FLAGS).
    expect([...entrypoint, ...cmd]).toEqual(['node', ...NODE_FLAGS, expect.any(String), 'run', '-c', '/etc/vakt/vakt.yaml']);
    // The script node runs is where the production image put package.json's `vakt` bin.
    const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const binRel = posix.normalize(pkg.bin.vakt!);
    const instructions = made(production);
    const landed = instructions
      .filter((i) => i.keyword === 'COPY' && i.flags.from === undefined)
      .flatMap((i) =>
        copyArgs(i)
          .sources.map((s) => posix.normalize(s).replace(/\/+$/, ''))
          .filter((s) => binRel === s || binRel.startsWith(`${s}/`))
          .map((s) => (binRel === s ? copyLanding(instructions, i, s) : posix.join(copyLanding(instructions, i, s), binRel.slice(s.length + 1)))),
      );
    expect(landed).toContain(entrypoint[1 + NODE_FLAGS.length]);
  });

  it('has OCI labels', () => {
    const labels = made(production)
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

  it('copies from another stage only what that stage has or makes', () => {
    const problems: string[] = [];
    const outDir = (JSON.parse(readFileSync(resolve(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string } }).compilerOptions.outDir;
    for (const stage of stages) {
      for (const ins of stage.instructions.filter((i) => i.keyword === 'COPY' && i.flags.from !== undefined)) {
        const from = stages.find((s) => s.name === ins.flags.from);
        if (!from) {
          problems.push(`line ${ins.line}: --from=${ins.flags.from} is not a stage of this Dockerfile`);
          continue;
        }
        const instructions = made(from);
        for (const source of copyArgs(ins).sources) {
          const abs = posix.resolve('/', source).replace(/\/+$/, '');
          const byRun = instructions.some((i) => {
            if (i.keyword !== 'RUN') return false;
            const rel = posix.relative(workdirAt(instructions, i), abs);
            if (rel === posix.normalize(outDir) && /\bnpm run build\b/.test(i.rest)) return true;
            return new RegExp(`\\bmkdir -p\\b[^&;|]*\\s${rel.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|/|$)`).test(i.rest);
          });
          if (!byRun && contextFilesAt(stages, from, abs, isIgnored).length === 0) {
            problems.push(`line ${ins.line}: ${source} is neither copied into nor made by stage ${from.name}`);
          }
        }
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
    // The demo target needs the sandbox's material in the context; only the production stage leaves it out.
    for (const p of ['package.json', 'agent/cli.ts', 'bin/vakt.js', 'config/default.yaml', 'sandbox/certs/ca.pem', 'sandbox/secrets/probe-password']) {
      expect(isIgnored(p), p).toBe(false);
    }
  });
});
