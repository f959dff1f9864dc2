// The agent's heap growth setting: the default, the environment's, and node's own flags first.
import { describe, expect, it } from 'vitest';
import { HEAP_GROWTH_PERCENT, heapGrowth } from '../../agent/heap.js';

describe('heapGrowth', () => {
  it('sets the default growth, or the one from VAKT_HEAP_GROWTH_PERCENT', () => {
    expect(heapGrowth({}, []).setting).toMatch(new RegExp(`^heap growth ${HEAP_GROWTH_PERCENT}% over live, from \\d+ s after start$`));
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '' }, []).setting).toContain(`heap growth ${HEAP_GROWTH_PERCENT}% over live`);
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '75' }, []).setting).toContain('heap growth 75% over live');
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '0' }, []).setting).toBe("V8's own heap growth");
    // What apply() does to memory is measured by the scale soak (bench/RESULTS.md), not here.
  });

  it("keeps node's own heap flags from the command line or NODE_OPTIONS", () => {
    expect(heapGrowth({}, ['--max-old-space-size=512']).setting).toBe("node's own --max-old-space-size kept");
    expect(heapGrowth({ NODE_OPTIONS: '--enable-source-maps --max_old_space_size=300' }, []).setting).toBe("node's own --max_old_space_size kept");
    expect(heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: '50' }, ['--heap-growing-percent=20']).setting).toBe("node's own --heap-growing-percent kept");
  });

  it('refuses a value that is not a whole percentage', () => {
    for (const bad of ['-1', '1001', '12.5', 'lots', '0x10 ']) expect(() => heapGrowth({ VAKT_HEAP_GROWTH_PERCENT: bad }, [])).toThrow(/VAKT_HEAP_GROWTH_PERCENT must be an integer from 0 to 1000/);
  });
});
