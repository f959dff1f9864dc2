// `vakt run` must not load the sandbox (its servers, fixtures and their libraries), nor a
// kind's probe code before a check of that kind runs on the thread: walks the static imports
// from the CLI and the probe thread and fails when one reaches sandbox/ or a probes/<kind>/probe.ts.
// The sandbox is loaded with a dynamic import() for `vakt demo` only, a probe by its kind's load().
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The project's own files reached from `entry` by static `import`/`export ... from` (type-only imports left out). */
function staticGraph(entry: string): Map<string, string> {
  const seen = new Map<string, string>([[entry, '(entry)']]);
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift()!;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm)) {
      const target = resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'));
      if (!existsSync(target) || seen.has(target)) continue;
      seen.set(target, file);
      queue.push(target);
    }
  }
  return seen;
}

describe('module graph', () => {
  it('neither the CLI nor the probe thread imports the sandbox statically', () => {
    for (const entry of ['agent/cli.ts', 'agent/probe-worker.ts']) {
      const graph = staticGraph(join(ROOT, entry));
      const sandbox = [...graph.keys()].filter((f) => relative(ROOT, f).startsWith('sandbox/'));
      expect(
        sandbox.map((f) => `${relative(ROOT, f)} (imported by ${relative(ROOT, graph.get(f)!)})`),
        entry,
      ).toEqual([]);
      // The walk itself works: it reaches the agent and a kind's declaration.
      expect([...graph.keys()].some((f) => f.endsWith('probes/tcp/index.ts'))).toBe(true);
    }
  });

  it("neither the CLI nor the probe thread imports a kind's probe code statically (a thread loads only the kinds it runs)", () => {
    for (const entry of ['agent/cli.ts', 'agent/probe-worker.ts']) {
      const graph = staticGraph(join(ROOT, entry));
      const probes = [...graph.keys()].filter((f) => /^probes\/[a-z]+\/probe\.ts$/.test(relative(ROOT, f)));
      expect(
        probes.map((f) => `${relative(ROOT, f)} (imported by ${relative(ROOT, graph.get(f)!)})`),
        entry,
      ).toEqual([]);
    }
  });

  it('the demo still reaches the sandbox (through a dynamic import)', () => {
    expect(readFileSync(join(ROOT, 'agent/cli.ts'), 'utf8')).toMatch(/await import\('\.\.\/sandbox\/index\.js'\)/);
  });
});
