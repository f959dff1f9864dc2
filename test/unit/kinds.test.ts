// Walks the one list of kinds (probes/kinds.ts) and fails when a kind lacks a part of itself:
// its section and rows in the docs, its words in every status-page language, an example that
// validates, a check in the demo (the sandbox serves every kind), or a declaration that does not
// hold together (phases, reasons, values, secret options). A new kind that forgets one of these
// is named here, not found by a user.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RESERVED_LABELS } from '../../config/fields.js';
import { parseConfig } from '../../config/loader.js';
import { KIND, KIND_LIST, KINDS, loadedProbe, loadProbe } from '../../probes/kinds.js';
import { LANGUAGES } from '../../probes/kit/kind.js';
import { ROOT } from '../helpers/cli.js';

const doc = (name: string) => readFileSync(join(ROOT, 'docs', name), 'utf8');
const configuration = doc('configuration.md');
const metrics = doc('metrics.md');
const demo = parseConfig(readFileSync(join(ROOT, 'config', 'default.yaml'), 'utf8'), join(ROOT, 'config', 'default.yaml'), process.env);

/** The example as the only check of a config, with a value for every environment variable it names. */
function loadExample(example: string) {
  const env = Object.fromEntries([...example.matchAll(/\benv: (\w+)/g)].map((m) => [m[1]!, 'example-secret-value']));
  const text = `checks:\n${example
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n`;
  return parseConfig(text, 'example.yaml', env);
}

describe('the list of kinds', () => {
  it('words the status page in English, Swedish, Danish, Norwegian (bokmål) and Finnish', () => {
    expect([...LANGUAGES]).toEqual(['en', 'sv', 'da', 'nb', 'fi']);
  });

  it('holds each kind once, by the name of its folder', () => {
    expect(new Set(KINDS).size).toBe(KINDS.length);
    expect(KINDS.length).toBeGreaterThanOrEqual(8);
  });

  it("loads a kind's probe code only when asked, once, with the phases its declaration names", async () => {
    // Nothing this file imports (the config loader, the kinds) loads probe code.
    expect(KINDS.filter((k) => loadedProbe(k) !== undefined)).toEqual([]);
    const tcp = await loadProbe('tcp');
    expect(tcp.phases).toBe(KIND.tcp.phases);
    expect(loadedProbe('tcp')).toBe(tcp);
    expect(await loadProbe('tcp')).toBe(tcp);
    expect(loadedProbe('dns')).toBeUndefined();
    for (const k of KIND_LIST) expect((await loadProbe(k.name)).phases, k.name).toBe(k.phases);
  });

  it('declares a metric that several kinds share alike in each (one family, one type and help)', () => {
    const declared = new Map<string, string>();
    const declare = (metric: string, type: string, help: string) => {
      const seen = declared.get(metric);
      expect(seen ?? `${type} ${help}`, metric).toBe(`${type} ${help}`);
      declared.set(metric, `${type} ${help}`);
    };
    for (const k of KIND_LIST) {
      for (const v of Object.values(k.values)) if (v.metric !== undefined) declare(v.metric, 'gauge', v.help);
      if (k.phaseMetric) declare(k.phaseMetric.name, 'gauge', k.phaseMetric.help);
      for (const g of Object.values(k.readings?.gauges ?? {})) declare(g.metric, 'gauge', g.help);
      if ('itemGauge' in k && k.itemGauge) declare(k.itemGauge.metric, 'gauge', k.itemGauge.help);
      for (const t of Object.values(k.tallies ?? {})) declare(t.metric, 'counter', t.help);
      for (const l of Object.values(k.infoLabels ?? {})) declare(l.metric, 'gauge', l.help);
    }
    expect(declared.size).toBeGreaterThan(10);
  });

  for (const kind of KIND_LIST) {
    describe(kind.name, () => {
      it('has its section, phases, reasons and values in docs/configuration.md and its budget row in docs/metrics.md', () => {
        expect(configuration, `a "## ${kind.name} options" section`).toContain(`## ${kind.name} options`);
        for (const p of kind.phases) expect(configuration, `phase ${p}`).toContain(`\`${p}\``);
        for (const r of [...kind.reasons, ...kind.degradedReasons]) expect(configuration, `reason ${r}`).toContain(`\`${r}\``);
        for (const [name, spec] of Object.entries(kind.values)) {
          if (spec.metric !== undefined) expect(metrics, `gauge ${spec.metric} of value ${name}`).toContain(`\`${spec.metric}\``);
        }
        if ('phaseMetric' in kind && kind.phaseMetric) expect(metrics).toContain(`\`${kind.phaseMetric.name}\``);
        for (const g of Object.values(kind.readings?.gauges ?? {})) expect(metrics, `reading gauge ${g.metric}`).toContain(`\`${g.metric}\``);
        if ('itemGauge' in kind && kind.itemGauge) expect(metrics, `item gauge ${kind.itemGauge.metric}`).toContain(`\`${kind.itemGauge.metric}\``);
        for (const l of Object.values(kind.infoLabels ?? {})) expect(metrics, `info gauge ${l.metric}`).toContain(`\`${l.metric}\``);
        for (const t of Object.values(kind.tallies ?? {})) {
          expect(metrics, `tally ${t.metric}`).toContain(`\`${t.metric}\``);
          for (const v of [...t.values, 'other']) expect(metrics, `${t.metric} value ${v}`).toContain(`\`${v}\``);
        }
        expect(metrics, 'a row in the series budget').toMatch(new RegExp(`^\\| \`${kind.name}\` \\|`, 'm'));
      });

      it('words its states in every status-page language', () => {
        for (const lang of LANGUAGES) {
          const w = kind.words[lang];
          expect(w.notAnswering.trim().length, `${lang}: notAnswering`).toBeGreaterThan(0);
          for (const word of Object.values(w.states ?? {})) expect(word.trim().length).toBeGreaterThan(0);
        }
        // A kind that words some states, reasons or refusal codes in one language words the same in all.
        const keys = (lang: (typeof LANGUAGES)[number], part: 'states' | 'reasons' | 'refusals') => Object.keys(kind.words[lang][part] ?? {}).sort();
        for (const part of ['states', 'reasons', 'refusals'] as const)
          for (const lang of LANGUAGES) {
            expect(keys(lang, part), `${lang} ${part}`).toEqual(keys('en', part));
            for (const word of Object.values(kind.words[lang][part] ?? {})) expect(word.trim().length, `${lang} ${part}`).toBeGreaterThan(0);
          }
        // Words for a reason are for one the kind reports.
        for (const r of keys('en', 'reasons')) expect([...kind.reasons, ...kind.degradedReasons], `reason ${r}`).toContain(r);
        // A degraded run reads truthfully: its reason has words (the kind's, or the page's for
        // slow and cert_expiring), or the kind words its degraded state itself. Never a bare "Slow"
        // for a queue that backs up or one resolver of two failing.
        const worded = new Set([...keys('en', 'reasons'), 'slow', 'cert_expiring']);
        if (kind.words.en.states?.degraded === undefined) for (const r of kind.degradedReasons) expect(worded, `degraded reason ${r}`).toContain(r);
      });

      it('has an example that validates as a check of this kind', () => {
        const config = loadExample(kind.example);
        expect(config.checks).toHaveLength(1);
        expect(config.checks[0]!.kind).toBe(kind.name);
      });

      it('is in the demo, against a service of the sandbox', () => {
        expect(demo.checks.some((c) => c.kind === kind.name)).toBe(true);
      });

      it('declares a coherent kind: phases, known reasons, secret options that are option keys', () => {
        expect(kind.phases.length).toBeGreaterThan(0);
        expect(new Set(kind.phases).size).toBe(kind.phases.length);
        // Reasons are label values: short snake_case words; the kit's network reasons are every connecting kind's.
        for (const r of [...kind.reasons, ...kind.degradedReasons]) expect(r).toMatch(/^[a-z][a-z0-9_]{1,31}$/);
        expect(new Set(kind.reasons).size).toBe(kind.reasons.length);
        expect(kind.reasons).toContain('timeout');
        // An object schema, or a union of them (a queue's sources, an oidc grant): each secret option is a key of one.
        const variants: unknown[] = kind.options instanceof z.ZodDiscriminatedUnion ? [...kind.options.options] : [kind.options];
        const shapes = variants.map((v) => (v as { shape?: Record<string, unknown> }).shape);
        for (const shape of shapes) expect(shape, 'options is an object schema, or a union of them').toBeDefined();
        for (const key of kind.secretOptions) expect(shapes.flatMap((shape) => Object.keys(shape ?? {}))).toContain(key);
        expect(kind.summary.length).toBeGreaterThan(20);
        // The labels of its own series are vakt's, refused as constant agent labels; a tally's values are label values.
        const labels = [
          ...(kind.readings ? [kind.readings.label] : []),
          ...('itemGauge' in kind && kind.itemGauge ? [kind.itemGauge.label] : []),
          ...Object.values(kind.tallies ?? {}).map((t) => t.label),
          ...Object.values(kind.infoLabels ?? {}).map((l) => l.label),
        ];
        for (const l of labels) expect(RESERVED_LABELS).toContain(l);
        for (const t of Object.values(kind.tallies ?? {})) {
          expect(t.metric).toMatch(/_total$/);
          for (const v of t.values) expect(v).toMatch(/^[A-Za-z0-9_]{1,32}$/);
        }
      });
    });
  }
});
