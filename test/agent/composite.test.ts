// A service's state from its members' (agent/composite.ts): the state table with minUp, planned
// work (held members), members not yet judged; and the Services holder's since and change reports.
import { describe, expect, it } from 'vitest';
import { evaluate, Services, type MemberState } from '../../agent/composite.js';
import type { CheckState } from '../../agent/detector.js';
import type { ServiceSpec } from '../../config/services.js';

const m = (state: CheckState, held = false): MemberState => ({ state, held });

describe('evaluate: the state table', () => {
  const cases: [string, MemberState[], number, string, string][] = [
    // name, members, minUp, state, observed
    ['all ok', [m('ok'), m('ok')], 1, 'ok', 'ok'],
    ['one down of two, minUp 1', [m('ok'), m('down')], 1, 'degraded', 'degraded'],
    ['one failing of two, minUp 1', [m('ok'), m('failing')], 1, 'degraded', 'degraded'],
    ['one slow of two', [m('ok'), m('degraded')], 1, 'degraded', 'degraded'],
    ['both down', [m('down'), m('down')], 1, 'down', 'down'],
    ['one down, one failing: not yet confirmed', [m('down'), m('failing')], 1, 'failing', 'failing'],
    ['one down, the other not judged yet', [m('down'), m('unknown')], 1, 'unknown', 'unknown'],
    ['nothing judged yet', [m('unknown'), m('unknown')], 1, 'unknown', 'unknown'],
    ['one ok, one not judged yet', [m('ok'), m('unknown')], 1, 'ok', 'ok'],
    ['minUp 2 of 3, one down', [m('ok'), m('ok'), m('down')], 2, 'degraded', 'degraded'],
    ['minUp 2 of 3, two down', [m('ok'), m('down'), m('down')], 2, 'down', 'down'],
    ['minUp 2 of 2, one down', [m('ok'), m('down')], 2, 'down', 'down'],
    ['a held member down: no problem of the service', [m('ok'), m('down', true)], 1, 'ok', 'degraded'],
    ['every member held and down: planned work', [m('down', true), m('down', true)], 1, 'maintenance', 'down'],
    ['a held member that works still counts', [m('ok', true), m('down')], 1, 'degraded', 'degraded'],
    ['one held, the other down outside planned work: down', [m('down', true), m('down')], 1, 'down', 'down'],
    ['one held, the other failing: being confirmed', [m('down', true), m('failing')], 1, 'failing', 'failing'],
    ['minUp 2 of 3: one held and one down leave one', [m('ok'), m('down', true), m('down')], 2, 'down', 'down'],
    ['minUp 2 of 3: one held, two ok', [m('ok'), m('ok'), m('down', true)], 2, 'ok', 'degraded'],
  ];
  for (const [name, members, minUp, state, observed] of cases) {
    it(name, () => {
      const v = evaluate(members, minUp);
      expect({ state: v.state, observed: v.observed }).toEqual({ state, observed });
    });
  }

  it('counts the members: up (held or not), down and slow (not held), held', () => {
    expect(evaluate([m('ok'), m('degraded'), m('failing'), m('down'), m('down', true), m('ok', true), m('unknown')], 1).tally).toEqual({
      total: 7,
      up: 3,
      down: 2,
      slow: 1,
      held: 1,
    });
  });
});

describe('Services', () => {
  const spec = (name: string, members: string[], minUp = 1): ServiceSpec => ({ name, title: name, group: 'G', members, minUp });

  it('re-evaluates a service when asked, reports a change once, and keeps since until the state changes', () => {
    const states = new Map<string, MemberState>([
      ['a', m('ok')],
      ['b', m('ok')],
    ]);
    const services = new Services((n) => states.get(n));
    services.configure([spec('paths', ['a', 'b'])], 1000);
    expect(services.get('paths')).toMatchObject({ state: 'ok', since: 1000, tally: { total: 2, up: 2 } });
    expect(services.serviceOf('a')).toBe('paths');
    expect(services.serviceOf('c')).toBeUndefined();
    expect(services.evaluate('paths', 2000)).toBeUndefined();
    states.set('a', m('down'));
    expect(services.evaluate('paths', 3000)).toMatchObject({ previous: 'ok', view: { state: 'degraded', since: 3000 } });
    expect(services.evaluate('paths', 4000)).toBeUndefined();
    states.set('b', m('degraded'));
    // Same state, other tally: reported (the metrics change), since kept.
    expect(services.evaluate('paths', 5000)).toMatchObject({ previous: 'degraded', view: { state: 'degraded', since: 3000, tally: { slow: 1 } } });
  });

  it('a reload keeps an unchanged service state and since, adds and removes the others', () => {
    const services = new Services(() => m('ok'));
    services.configure([spec('x', ['a']), spec('y', ['b'])], 1000);
    const r = services.configure([spec('y', ['b']), spec('z', ['c'])], 2000);
    expect(r).toEqual({ added: ['z'], removed: ['x'] });
    expect(services.get('y')?.since).toBe(1000);
    expect(services.list().map((v) => v.config.name)).toEqual(['y', 'z']);
    expect(services.serviceOf('a')).toBeUndefined();
  });

  it('members that do not run here are left out of the count', () => {
    const services = new Services((n) => (n === 'a' ? m('ok') : undefined));
    services.configure([spec('x', ['a', 'b'])]);
    expect(services.get('x')?.tally.total).toBe(1);
  });
});
