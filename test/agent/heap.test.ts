// The agent's heap growth setting: the default, the environment's, and node's own flags first.
// The node flags every entry point starts the agent with, and what the agent says without them.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWTH_PERCENT, NODE_FLAGS, heapGrowth, nodeFlagsSetting } from '../../agent/heap.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('heapGrowth', () => {
  it('sets the default growth, or the one from VAKT_HEAP_GROWTH_PERCENT', () => {
    expect(heapGrowth({}, []).setting).toBe(`heap growth ${HEAP_GROWTH_PERCENT}% over live, from ready`);
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '' }, []).setting).toContain(`heap growth ${HEAP_GROWTH_PERCENT}% over live`);
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '75' }, []).setting).toContain('heap growth 75% over live');
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '0' }, []).setting).toBe("V8's own heap growth");
    // What apply() does to memory is measured by the scale soak (bench/RESULTS.md), not here.
  });

  it('apply() collects what is garbage at once, whatever the setting (in a child: it sets V8 flags)', () => {
    const script = `
      import { heapGrowth } from './agent/heap.ts';
      for (const env of [{}, { VAKT_HEAP_GROWTH_PERCENT: '0' }]) {
        let junk = Array.from({ length: 400000 }, (_, i) => ({ i, s: 'x' + i }));
        const before = process.memoryUsage().heapUsed;
        junk = undefined;
        heapGrowth(env, []).apply();
        console.log(Math.round((before - process.memoryUsage().heapUsed) / 1048576));
      }
      console.log(typeof globalThis.gc);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    const freed = lines.slice(0, -1).map(Number);
    expect(freed).toHaveLength(2);
    // 400,000 small objects and their strings are well over 20 MiB; all of it goes.
    for (const mib of freed) expect(mib).toBeGreaterThan(20);
    // The gc() it reaches is not left as a global of the agent's own context.
    expect(lines.at(-1)).toBe('undefined');
  });

  it("keeps node's own heap flags from the command line or NODE_OPTIONS", () => {
    expect(heapGrowth({}, ['--max-old-space-size=512']).setting).toBe("node's own --max-old-space-size kept");
    expect(heapGrowth({ NODE_OPTIONS: '--enable-source-maps --max_old_space_size=300' }, []).setting).toBe("node's own --max_old_space_size kept");
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '50' }, ['--heap-growing-percent=20']).setting).toBe("node's own --heap-growing-percent kept");
  });

  it('refuses a value that is not a whole percentage', () => {
    for (const bad of ['-1', '1001', '12.5', 'lots', '0x10 '])
      expect(() => heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: bad }, [])).toThrow(/VAKT_HEAP_GROWTH_PERCENT must be an integer from 0 to 1000/);
  });
});

describe('node flags', () => {
  it('are on every entry point: the bin script, npm start (the Dockerfile has its own test)', () => {
    const bin = readFileSync(`${ROOT}/bin/vakt.js`, 'utf8').split('\n')[0];
    expect(bin).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${NODE_FLAGS.join(' ')} bin/vakt.js demo`);
  });

  it('are accepted by this node, which runs the script with them', () => {
    const r = spawnSync(process.execPath, [...NODE_FLAGS, '-e', 'process.stdout.write("ran")'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ran');
  });

  it('says in the log line when node was started without them', () => {
    expect(nodeFlagsSetting([...NODE_FLAGS])).toBe('as shipped');
    expect(nodeFlagsSetting(['--max_semi_space_size=4', '--single_threaded_gc', '--enable-source-maps'])).toBe('as shipped');
    expect(nodeFlagsSetting(['--single-threaded-gc'])).toBe(
      'node started without --max-semi-space-size=4: more CPU or memory per check, see docs/operations.md#node-flags-and-garbage-collection',
    );
    expect(nodeFlagsSetting([])).toMatch(/^node started without --single-threaded-gc --max-semi-space-size=4:/);
  });
});
