// `vakt rules`: the shipped rules with their timing set, every other byte as shipped.
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../agent/cli.js';
import { parse } from 'yaml';
import { parseAssignment, promDuration, renderRules, RuleTimingError, SHIPPED_RULES_FILE } from '../../agent/alert-rules.js';

const shipped = readFileSync(SHIPPED_RULES_FILE, 'utf8');
interface Groups {
  groups: { name: string; interval?: string; rules: { alert?: string; record?: string; for?: string; keep_firing_for?: string; expr: string }[] }[];
}
const alertsOf = (text: string) => new Map((parse(text) as Groups).groups.flatMap((g) => g.rules.filter((r) => r.alert).map((r) => [r.alert!, r] as const)));

describe('vakt rules', () => {
  it('scales every for:, keep_firing_for: and group interval, and changes no other line', () => {
    const out = renderRules(shipped, { scale: 0.1 });
    const before = shipped.split('\n');
    const after = out.split('\n');
    expect(after).toHaveLength(before.length);
    const changed = after.filter((line, i) => line !== before[i]);
    expect(changed.length).toBeGreaterThan(20);
    for (const line of changed) expect(line).toMatch(/^ +(for|keep_firing_for|interval): \d/);
    const a = alertsOf(shipped);
    const b = alertsOf(out);
    expect(b.get('VaktRootCauseDown')?.for).toBe('6s'); // 1m
    expect(b.get('VaktCheckDegraded')?.for).toBe('1m30s'); // 15m
    // The muting alerts outlive what they mute, scaled alike (1m, 2m).
    expect(b.get('VaktRootCauseDown')?.keep_firing_for).toBe('6s');
    expect(b.get('VaktCheckDownSomeSites')?.keep_firing_for).toBe('12s');
    for (const [name, rule] of a) expect(b.get(name)?.expr, name).toBe(rule.expr);
    const sites = (parse(out) as Groups).groups.find((g) => g.name === 'vakt.sites');
    expect(sites?.interval).toBe('6s');
  });

  it('sets one alert or one group outright, over the scale', () => {
    const out = renderRules(shipped, { scale: 0.5, forAlert: new Map([['VaktDNSResolverDown', 60_000]]), groupInterval: new Map([['vakt.sites', 15_000]]) });
    expect(alertsOf(out).get('VaktDNSResolverDown')?.for).toBe('1m');
    expect(alertsOf(out).get('VaktRootCauseDown')?.for).toBe('30s');
    expect((parse(out) as Groups).groups.find((g) => g.name === 'vakt.sites')?.interval).toBe('15s');
  });

  it('refuses an alert or group that is not in the rules, a group without an interval, and a bad scale', () => {
    expect(() => renderRules(shipped, { forAlert: new Map([['VaktDNSResolverDwn', 1000]]) })).toThrow(/VaktDNSResolverDwn: no alert of that name/);
    expect(() => renderRules(shipped, { groupInterval: new Map([['vakt.nope', 1000]]) })).toThrow(/no group of that name/);
    expect(() => renderRules(shipped, { groupInterval: new Map([['vakt.outage', 1000]]) })).toThrow(/no interval of its own/);
    expect(() => renderRules(shipped, { scale: 0 })).toThrow(RuleTimingError);
    expect(() => renderRules(shipped, { scale: Number.NaN })).toThrow(RuleTimingError);
    expect(() => parseAssignment('--for', 'VaktRootCauseDown')).toThrow(/NAME=DURATION/);
    expect(() => parseAssignment('--for', 'VaktRootCauseDown=soon')).toThrow(/NAME=DURATION/);
    expect(parseAssignment('--for', 'VaktRootCauseDown=1m30s')).toEqual(['VaktRootCauseDown', 90_000]);
  });

  it('refuses a file laid out so that line edits would change more than the timing', () => {
    const odd = 'groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: 1m\n        labels: { for: 5m }\n';
    expect(renderRules(odd, { scale: 2 })).toContain('for: 2m');
    const flow = 'groups:\n  - name: g\n    rules:\n      - { alert: A, expr: up, for: 1m }\n';
    // A flow mapping has no for: line to edit: the shipped timing would stay, so it is refused.
    expect(() => renderRules(flow, { scale: 2 })).toThrow(/not on a line of its own/);
    expect(() => renderRules(flow, { forAlert: new Map([['A', 1000]]) })).toThrow(/no for: line of its own/);
  });

  it('prints durations as Prometheus reads them', () => {
    expect(promDuration(90_000)).toBe('1m30s');
    expect(promDuration(6000)).toBe('6s');
    expect(promDuration(0)).toBe('0s');
    expect(promDuration(86_400_000 + 1500)).toBe('1d1s500ms');
  });

  it('vakt rules prints them (exit 0) and refuses a typo or a stray argument (exit 2)', async () => {
    let out = '';
    let err = '';
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((out += String(c)), true));
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((err += String(c)), true));
    try {
      expect(await main(['rules', '--scale', '0.1', '--for', 'VaktDNSResolverDown=1m'])).toBe(0);
      expect(out.split('\n')[0]).toBe(
        "# Rendered by `vakt rules --scale 0.1 --for VaktDNSResolverDown=1m` from vakt's shipped rules: render again after an upgrade.",
      );
      expect(alertsOf(out).get('VaktDNSResolverDown')?.for).toBe('1m');
      out = '';
      expect(await main(['rules'])).toBe(0);
      expect(out).toBe(shipped);
      expect(await main(['rules', '--for', 'VaktDNSResolverDwn=1m'])).toBe(2);
      expect(err).toContain('--for VaktDNSResolverDwn: no alert of that name');
      expect(await main(['rules', 'extra'])).toBe(2);
      expect(await main(['rules', '--scale', 'fast'])).toBe(2);
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
  });
});
