// The reference docs name everything the code defines: every metric the agent registers, every
// key of the config schema, every failure and degraded reason, every phase. A metric, key or
// reason added without its docs row fails here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Metrics } from '../../agent/metrics.js';
import { ALL_DEGRADED_REASONS, ALL_FAILURE_REASONS, KIND_LIST, KIND_OPTIONS } from '../../probes/kinds.js';
import { configSchema } from '../../config/schema.js';

function readDoc(name: string): string {
  return readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');
}

/** Every `code span` of a Markdown text. */
function codeSpans(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string));
}

/** A name is documented when it stands alone in a code span, or ends a dotted key path (`tls.caFile`). */
function documented(spans: Set<string>, name: string): boolean {
  if (spans.has(name)) return true;
  for (const s of spans) if (s.endsWith(`.${name}`)) return true;
  return false;
}

/** Every property name reachable in a JSON Schema (zod's public export of the config schema). */
function objectKeys(schema: z.ZodType): Set<string> {
  const keys = new Set<string>();
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    for (const [key, value] of Object.entries((n.properties as Record<string, unknown> | undefined) ?? {})) {
      keys.add(key);
      visit(value);
    }
    for (const k of ['items', 'additionalProperties']) visit(n[k]);
    for (const k of ['oneOf', 'anyOf', 'allOf']) for (const v of (n[k] as unknown[] | undefined) ?? []) visit(v);
  };
  visit(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }));
  return keys;
}

describe('docs/metrics.md', () => {
  const spans = codeSpans(readDoc('metrics.md'));

  it('names every metric the agent registers, in backticks', () => {
    const metrics = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const names = metrics.familyNames();
    // Guards against a registry that comes back empty, which would make this test vacuous.
    expect(names).toEqual(expect.arrayContaining(['probe_success', 'vakt_probe_duration_seconds', 'vakt_check_status', 'process_cpu_seconds_total']));
    const missing = names.filter((n) => !spans.has(n));
    expect(missing).toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  const text = readDoc('configuration.md');
  const spans = codeSpans(text);

  it('names every key of the config schema and of every kind, in backticks', () => {
    const keys = new Set([...objectKeys(configSchema), ...Object.values(KIND_OPTIONS).flatMap((s) => [...objectKeys(s)])]);
    // The walk must reach the agent block, the checks, the kind options and the nested TLS block.
    expect([...keys]).toEqual(expect.arrayContaining(['agent', 'listen', 'startSpread', 'checks', 'dependsOn', 'tcp', 'samples', 'caFile', 'expiryWarning']));
    const missing = [...keys].filter((k) => !documented(spans, k));
    expect(missing).toEqual([]);
  });

  it('lists every failure reason and every degraded reason', () => {
    expect(ALL_FAILURE_REASONS.filter((r) => !spans.has(r))).toEqual([]);
    expect(ALL_DEGRADED_REASONS.filter((r) => !spans.has(r))).toEqual([]);
  });

  it('lists every phase of every kind', () => {
    for (const kind of KIND_LIST) {
      expect(kind.phases.filter((p) => !spans.has(p))).toEqual([]);
    }
  });
});
