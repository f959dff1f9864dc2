// The exposition text on its own: chunks, headers per format, escaping, and a scrape that runs
// while checks finish.
import { describe, expect, it } from 'vitest';
import { escapeLabel, expose, Family, HistogramState, leTexts, line } from '../../agent/exposition.js';

async function all(gen: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

describe('exposition', () => {
  it('a large family comes in several chunks; the text is the same as one piece', async () => {
    const f = new Family('probe_success', 'gauge', 'Whether it worked.');
    for (let i = 0; i < 5000; i++) f.set(`c${i}`, line('probe_success', `check="c${i}",kind="tcp",target="10.0.0.1:443"`, 1));
    const chunks = await all(expose([f], false, ''));
    expect(chunks.length).toBeGreaterThan(1);
    const text = chunks.join('');
    expect(text.startsWith('# HELP probe_success Whether it worked.\n# TYPE probe_success gauge\n')).toBe(true);
    expect(text.split('\n').filter((l) => l.startsWith('probe_success{'))).toHaveLength(5000);
  });

  it('a check whose lines go and come back while a scrape yields appears once in that scrape', async () => {
    const f = new Family('vakt_probe_failure_info', 'gauge', 'Why.');
    for (let i = 0; i < 5000; i++) f.set(`c${i}`, line('vakt_probe_failure_info', `check="c${i}",reason="timeout"`, 1));
    const gen = expose([f], false, '');
    const first = await gen.next();
    // Between two chunks: c0 (already sent) recovers and fails again.
    f.set('c0', '');
    f.set('c0', line('vakt_probe_failure_info', 'check="c0",reason="refused"', 1));
    let text = first.value as string;
    for await (const c of gen) text += c;
    expect(text.split('\n').filter((l) => l.includes('check="c0"'))).toHaveLength(1);
  });

  it('OpenMetrics: counters named without _total in HELP and TYPE, # EOF at the end; empty families left out', async () => {
    const runs = new Family('vakt_probe_runs_total', 'counter', 'Runs.');
    const empty = new Family('vakt_unused', 'gauge', 'Nothing.');
    runs.set('a', line('vakt_probe_runs_total', 'check="a",result="ok"', 3));
    const om = (await all(expose([runs, empty], true, ''))).join('');
    expect(om).toBe('# HELP vakt_probe_runs Runs.\n# TYPE vakt_probe_runs counter\nvakt_probe_runs_total{check="a",result="ok"} 3\n# EOF\n');
    const text = (await all(expose([runs, empty], false, ''))).join('');
    expect(text).toBe('# HELP vakt_probe_runs_total Runs.\n# TYPE vakt_probe_runs_total counter\nvakt_probe_runs_total{check="a",result="ok"} 3\n');
  });

  it('label values escaped; special values spelled as the formats want; histogram lines cumulative', () => {
    expect(escapeLabel('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    expect(line('x', '', Number.POSITIVE_INFINITY)).toBe('x +Inf\n');
    expect(line('x', '', Number.NaN)).toBe('x NaN\n');
    const h = new HistogramState([0.1, 1]);
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    expect(h.render('d', 'check="a"', leTexts([0.1, 1]))).toBe(
      'd_bucket{check="a",le="0.1"} 1\nd_bucket{check="a",le="1.0"} 2\nd_bucket{check="a",le="+Inf"} 3\nd_sum{check="a"} 5.55\nd_count{check="a"} 3\n',
    );
  });
});
