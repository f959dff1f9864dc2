// Services in the config (config/services.ts): what a valid `services:` entry resolves to (globs,
// defaults, translations, switched-off members), the rules across services and checks that the
// fixture services.yaml does not cover, and placement: a service's members share a shard.
import { describe, expect, it } from 'vitest';
import { ConfigLoadError, formatConfigError, parseConfig } from '../../config/loader.js';
import { placeChecks } from '../../config/placement.js';
import { shardOf } from '../../config/shard.js';

const CHECKS = `checks:
  - { name: ehr-via-fw-a, group: Patient records, kind: tcp, target: "10.20.1.10:443" }
  - { name: ehr-via-fw-b, group: Patient records, kind: tcp, target: "10.20.2.10:443" }
  - { name: ehr-via-fw-c, group: Patient records, kind: tcp, target: "10.20.3.10:443", enabled: false }
  - { name: pacs, group: Imaging, kind: tcp, target: "10.0.0.3:443" }
`;

function errors(text: string): string[] {
  try {
    parseConfig(text, 'x.yaml', {});
    return [];
  } catch (err) {
    if (!(err instanceof ConfigLoadError)) throw err;
    return err.errors.map(formatConfigError);
  }
}

describe('services in the config', () => {
  it('resolves globs in check order, the group of the first member, the title, and leaves switched-off members out', () => {
    const c = parseConfig(
      `${CHECKS}services:
  - name: ehr-paths
    title: { en: Patient records reachable, sv: Patientjournalen nåbar }
    anyOf: [ehr-via-fw-*]
    memberNoun: { en: firewall paths, sv: brandväggsvägar }
`,
      'x.yaml',
      {},
    );
    expect(c.services).toEqual([
      {
        name: 'ehr-paths',
        title: 'Patient records reachable',
        titles: { en: 'Patient records reachable', sv: 'Patientjournalen nåbar' },
        group: 'Patient records',
        members: ['ehr-via-fw-a', 'ehr-via-fw-b'],
        minUp: 1,
        memberNoun: { en: 'firewall paths', sv: 'brandväggsvägar' },
      },
    ]);
  });

  it('defaults: title the name, group as written, no services at all', () => {
    const c = parseConfig(`${CHECKS}services:\n  - { name: mixed, group: Clinical, anyOf: [pacs, ehr-via-fw-a], minUp: 2 }\n`, 'x.yaml', {});
    expect(c.services[0]).toEqual({ name: 'mixed', title: 'mixed', group: 'Clinical', members: ['pacs', 'ehr-via-fw-a'], minUp: 2 });
    expect(parseConfig(CHECKS, 'x.yaml', {}).services).toEqual([]);
  });

  it('refuses members that run at different sites, and unknown keys with a hint', () => {
    const text = `sites: [dc1, dc2]
agent: { labels: { site: dc1 } }
checks:
  - { name: a, kind: tcp, target: "10.0.0.1:443", sites: [dc1] }
  - { name: b, kind: tcp, target: "10.0.0.2:443" }
services:
  - { name: ab, anyOf: [a, b], minup: 1 }
`;
    expect(errors(text)).toEqual([
      'x.yaml:7:32: services[0].minup: expected one of name, title, group, anyOf, minUp, memberNoun, found unknown key "minup" (did you mean "minUp"?)',
    ]);
    expect(errors(text.replace(', minup: 1', ''))).toEqual([
      'x.yaml:7:28: services[0].anyOf[1]: expected members that run at the same sites, found b at every site and a at dc1',
    ]);
  });

  it('refuses a bad minUp and an empty anyOf with located errors', () => {
    expect(errors(`${CHECKS}services:\n  - { name: x, anyOf: [], minUp: 0 }\n`)).toEqual([
      'x.yaml:7:23: services[0].anyOf: expected at least 1 item(s), found an empty list',
      'x.yaml:7:34: services[0].minUp: expected a value >= 1, found 0',
    ]);
  });
});

describe('placement of a service’s members', () => {
  const checks = Array.from({ length: 12 }, (_, i) => ({ name: `path-${i}`, dependsOn: [] }));
  const services = [
    { name: 'paths-a', members: checks.slice(0, 6).map((c) => c.name) },
    { name: 'paths-b', members: checks.slice(6).map((c) => c.name) },
  ];

  it('puts every member on the shard of its service', () => {
    for (const s of services) {
      const shard = shardOf(s.name, 4);
      const p = placeChecks({ checks, services }, { shard: { index: shard, count: 4 } });
      expect(s.members.every((m) => p.checks.some((c) => c.name === m))).toBe(true);
      for (let i = 0; i < 4; i++) {
        if (i === shard) continue;
        const other = placeChecks({ checks, services }, { shard: { index: i, count: 4 } });
        expect(other.checks.filter((c) => s.members.includes(c.name))).toEqual([]);
      }
    }
  });
});
