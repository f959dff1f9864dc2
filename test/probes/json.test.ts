// The bounded JSON parser every probe uses on peer bodies: the scan (strings, escapes, depth and
// container limits, garbage), the value of a large document built in pieces (the same as
// JSON.parse's, checked against it on generated and mutated documents), and jsonPath.
import { describe, expect, it } from 'vitest';
import { JSON_MAX_CONTAINERS, JSON_MAX_DEPTH, JSON_MAX_MEMBERS, jsonPath, parseJson, parseJsonObject, type JsonResult } from '../../probes/kit/json.js';
import { prng, type Rng } from '../helpers/prng.js';

const nested = (depth: number, inner = '1') => '['.repeat(depth) + inner + ']'.repeat(depth);

/** parseJson agrees with JSON.parse: the same value, or a syntax failure where JSON.parse throws. */
async function agrees(text: string, label = text.slice(0, 60)): Promise<JsonResult> {
  const r = await parseJson(text);
  let want: { value: unknown } | undefined;
  try {
    want = { value: JSON.parse(text) as unknown };
  } catch {
    want = undefined;
  }
  if (want) {
    expect(r.ok, label).toBe(true);
    if (r.ok) expect(r.value, label).toStrictEqual(want.value);
  } else expect(r, label).toMatchObject({ ok: false, error: { code: 'syntax', message: 'not valid JSON' } });
  return r;
}

/** A container far above one piece (about 300,000 cost units), so it is built from several. */
const big = (tag: number) => JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ i, tag, s: 'x]"[' })));
const bigObject = (tag: number) => JSON.stringify(Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`k${i}`, { tag, v: [i] }])));

describe('parseJson: the scan', () => {
  it('brackets, braces and escaped quotes inside strings do not count', async () => {
    const doc = { a: '[[[[{{{{', b: 'say \\"]]]]\\"', c: '\\', d: '\\\\"}', e: '\u0000\u001f\u2028', f: '😀' };
    const text = JSON.stringify(doc);
    expect(text).toContain('\\\\\\"]]]]');
    expect(await parseJson(text, { maxDepth: 1 })).toStrictEqual({ ok: true, value: doc });
    // A string ending in an escaped backslash ends there: the bracket after it counts.
    expect(await parseJson('["\\\\", [1]]', { maxDepth: 1 })).toMatchObject({ ok: false, error: { code: 'too_deep' } });
    expect(await parseJson('["\\\\", [1]]', { maxDepth: 2 })).toStrictEqual({ ok: true, value: ['\\', [1]] });
  });

  it(`nesting exactly at the limit (${JSON_MAX_DEPTH}) parses; one level more is refused, naming the limit`, async () => {
    const at = await parseJson(nested(JSON_MAX_DEPTH));
    expect(at.ok).toBe(true);
    const objects = '{"a":'.repeat(JSON_MAX_DEPTH) + '1' + '}'.repeat(JSON_MAX_DEPTH);
    expect((await parseJson(objects)).ok).toBe(true);
    const over = await parseJson(nested(JSON_MAX_DEPTH + 1));
    expect(over).toStrictEqual({
      ok: false,
      error: { code: 'too_deep', message: `JSON nested deeper than ${JSON_MAX_DEPTH} levels (refused at character ${JSON_MAX_DEPTH}, before parsing)` },
    });
    expect(await parseJson(nested(3), { maxDepth: 3 })).toMatchObject({ ok: true });
    expect(await parseJson(nested(4), { maxDepth: 3 })).toMatchObject({
      ok: false,
      error: { code: 'too_deep', message: expect.stringMatching(/^JSON nested deeper than 3 levels/) as unknown },
    });
  });

  it('a 2-million-level document (4 MB) and its object form are refused at the first bracket too many', async () => {
    const arrays = '['.repeat(2e6) + ']'.repeat(2e6);
    expect(await parseJson(arrays)).toMatchObject({
      ok: false,
      error: { code: 'too_deep', message: expect.stringContaining(`refused at character ${JSON_MAX_DEPTH},`) as unknown },
    });
    const n = 700_000;
    const objects = '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    expect(await parseJson(objects)).toMatchObject({
      ok: false,
      error: { code: 'too_deep', message: expect.stringContaining(`refused at character ${JSON_MAX_DEPTH * 5},`) as unknown },
    });
    // Not a stack overflow either when the depth is hidden behind a long flat prefix.
    const late = `[${'1,'.repeat(100_000)}${nested(10_000)}]`;
    expect(await parseJson(late)).toMatchObject({ ok: false, error: { code: 'too_deep' } });
  });

  it(`more than ${JSON_MAX_CONTAINERS} arrays and objects are refused as too large; exactly that many parse`, async () => {
    const at = await parseJson(
      `[${Array(JSON_MAX_CONTAINERS - 1)
        .fill('{}')
        .join(',')}]`,
    );
    expect(at.ok && Array.isArray(at.value) && at.value.length).toBe(JSON_MAX_CONTAINERS - 1);
    const over = await parseJson(`[${Array(JSON_MAX_CONTAINERS).fill('[]').join(',')}]`);
    expect(over).toStrictEqual({
      ok: false,
      error: {
        code: 'too_large',
        message: `JSON with more than ${JSON_MAX_CONTAINERS} arrays and objects (refused at character ${1 + 3 * (JSON_MAX_CONTAINERS - 1)}, before parsing)`,
      },
    });
    expect(await parseJson('[[],{}]', { maxContainers: 2 })).toMatchObject({ ok: false, error: { code: 'too_large' } });
  });

  it(`an object with more than ${JSON_MAX_MEMBERS} members is refused as too large; exactly that many parse, and arrays may be longer`, async () => {
    const members = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`;
    const at = await parseJson(members(JSON_MAX_MEMBERS));
    expect(at.ok && Object.keys(at.value as object).length).toBe(JSON_MAX_MEMBERS);
    const over = await parseJson(`[1,${members(JSON_MAX_MEMBERS + 1)}]`);
    expect(over).toMatchObject({
      ok: false,
      error: {
        code: 'too_large',
        message: expect.stringMatching(
          new RegExp(`^JSON object with more than ${JSON_MAX_MEMBERS} members \\(refused at character \\d+, before parsing\\)$`),
        ) as unknown,
      },
    });
    expect(
      (
        await parseJson(
          `[${Array(JSON_MAX_MEMBERS * 2)
            .fill('"a,b"')
            .join(',')}]`,
        )
      ).ok,
    ).toBe(true);
    expect(await parseJson('{"a":[1,2,3],"b":{"c":1,"d":2}}', { maxMembers: 2 })).toMatchObject({ ok: true });
    expect(await parseJson('{"a":1,"b":2,"c":3}', { maxMembers: 2 })).toMatchObject({ ok: false, error: { code: 'too_large' } });
  });

  it('garbage is a syntax failure that quotes nothing of the text, never a throw', async () => {
    const garbage = [
      '',
      ' ',
      '[',
      ']',
      '[}',
      '{]',
      '{"a":1',
      '"abc',
      '"ab\\"',
      '[1,]',
      '[,1]',
      '[1 2]',
      '{"a" 1}',
      '{1:2}',
      'nul',
      '[] x',
      '\ufeff[]',
      '[1]]',
      '}{',
      "{'a':1}",
      'secret-token-123',
      '<html>',
      '[\\]',
      '"\\u12"',
    ];
    for (const text of garbage) {
      const r = await agrees(text, JSON.stringify(text));
      expect(JSON.stringify(r)).not.toContain('secret-token');
    }
    for (const text of ['0', ' true ', 'null', '"x"', '[]', '{}', ' [ ] ', '-1.5e3', '{"__proto__":{"x":1}}']) await agrees(text);
  });
});

describe('parseJson: large documents, built in pieces', () => {
  it('is JSON.parse on large documents: nested large containers, duplicate keys, __proto__, integer keys, escapes', async () => {
    const docs = [
      big(1),
      bigObject(2),
      `{"head":1,"list":${big(3)},"obj":${bigObject(4)},"tail":[${big(5)},2,${big(6)}]}`,
      // Duplicate keys across pieces: the last value wins, in the first one's place.
      `{"a":1,"b":${big(7)},"a":2,"b":3,"c":${big(8)},"a":${big(9)}}`,
      `{"__proto__":${big(10)},"x":{"__proto__":1},"10":1,"2":2,"z":3}`,
      JSON.stringify(Array.from({ length: 20_000 }, (_, i) => `\ud83d\ude00 ${i} \\ " \u0001 [`)),
      `  \n\t[ ${big(11)} ,\n ${big(12)} ]\r\n`,
      JSON.stringify({ deep: JSON.parse(nested(100, big(13))) as unknown }),
      `[${' '.repeat(300_000)}]`,
      `{${' '.repeat(300_000)}}`,
    ];
    for (const [i, text] of docs.entries()) {
      const r = await agrees(text, `doc ${i}`);
      expect(r.ok, `doc ${i}`).toBe(true);
    }
    const proto = await parseJson(docs[4] as string);
    expect(proto.ok && Object.getPrototypeOf(proto.value)).toBe(Object.prototype);
    expect(proto.ok && Object.keys(proto.value as object)).toEqual(['2', '10', '__proto__', 'x', 'z']);
  });

  it('broken separators between pieces are syntax failures, as JSON.parse says', async () => {
    const b = big(1);
    const o = bigObject(2);
    const broken = [
      `[${b},,${b}]`,
      `[${b},]`,
      `[,${b}]`,
      `[${b} ${b}]`,
      `[x ${b}]`,
      `[${b} x]`,
      `[1 ${b}]`,
      `{"a" ${b}}`,
      `{${b}}`,
      `{"a":${b},}`,
      `{"a":1 "b":${b}}`,
      `{"a":${b} "b":1}`,
      `{"a"::${o}}`,
      `${b} x`,
      `${b}]`,
      `[${b}`,
      `[${b}}`,
      `[${' '.repeat(300_000)},]`,
      `{"a":${b},"b":}`,
      `[${b},1,]`,
    ];
    for (const [i, text] of broken.entries()) await agrees(text, `broken ${i}`);
  });

  it('generated and mutated documents: the same value as JSON.parse, or both refuse', async () => {
    const seed = Number(process.env.JSON_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const r = prng(seed);
    const label = `seed ${seed} (rerun with JSON_FUZZ_SEED=${seed})`;
    for (let n = 0; n < 30; n++) {
      const text = serialise(r, [value(r, 0, { n: 6000 }), value(r, 0, { n: 6000 })], 0);
      await agrees(text, `${label}, document ${n}`);
      for (let m = 0; m < 8; m++) await agrees(mutate(r, text), `${label}, document ${n}, mutation ${m}`);
    }
  });

  it('an aborted signal stops a large parse at its next slice', async () => {
    const ctrl = new AbortController();
    ctrl.abort();
    const text = `[${Array.from({ length: 6 }, (_, i) => big(i)).join(',')}]`;
    expect(await parseJson(text, { signal: ctrl.signal })).toMatchObject({ ok: false, error: { code: 'aborted' } });
  });
});

describe('jsonPath', () => {
  it('follows own keys only, in a loop (no depth to overflow)', () => {
    expect(jsonPath({ a: 1 }, '$.constructor')).toBeUndefined();
    expect(jsonPath({ a: 1 }, '$.__proto__')).toBeUndefined();
    expect(jsonPath(JSON.parse('{"__proto__":{"x":5}}'), '$["__proto__"].x')).toBe(5);
    expect(jsonPath({ a: [1, 2] }, '$.a.length')).toBe(2);
    const deep = JSON.parse(nested(JSON_MAX_DEPTH, '{"ok":true}')) as unknown;
    expect(jsonPath(deep, `$${'[0]'.repeat(JSON_MAX_DEPTH)}.ok`)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Generated documents: every JSON shape, some containers large enough to be built in pieces.

/** A JSON value of at most `left.n` values, at most 90 levels deep (a mutation may add one). */
function value(r: Rng, depth: number, left: { n: number }): unknown {
  left.n--;
  if (left.n <= 0 || depth >= 90 || r.chance(0.05)) return leaf(r);
  if (r.chance(0.1)) return value(r, depth + 1, left);
  const n = 1 + r.int(r.chance(0.3) ? 400 : 8);
  if (r.chance(0.5)) {
    const list: unknown[] = [];
    for (let i = 0; i < n && left.n > 0; i++) list.push(value(r, depth + 1, left));
    return list;
  }
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n && left.n > 0; i++) o[r.pick(['a', 'b', '__proto__', '1', '02', 'k"e]y', `k${r.int(50)}`, '', '😀'])] = value(r, depth + 1, left);
  return o;
}

function leaf(r: Rng): unknown {
  return r.pick([
    () => null,
    () => true,
    () => false,
    () => r.int(1e6) - 5e5,
    () => r.next() * 1e10,
    () => 'x'.repeat(r.int(40)),
    () => '"\\[{\u0000é😀' + 'y'.repeat(r.int(200)),
    () => [],
    () => ({}),
  ])();
}

/** JSON text with random whitespace between tokens (JSON.stringify's, or none). */
function serialise(r: Rng, v: unknown, indent: number): string {
  const text = r.chance(0.5) ? JSON.stringify(v) : JSON.stringify(v, null, indent || 1 + r.int(3));
  return r.chance(0.3) ? `${r.pick([' ', '\n', '\t', '\r\n'])}${text}${r.pick(['', ' ', '\n'])}` : text;
}

/** One edit, usually next to a structural character (where the pieces are joined). */
function mutate(r: Rng, text: string): string {
  let at = r.int(text.length);
  if (r.chance(0.7)) {
    for (let tries = 0; tries < 200; tries++) {
      const p = r.int(text.length);
      if (',:[]{}'.includes(text[p] ?? '')) {
        at = p;
        break;
      }
    }
  }
  const insert = r.pick([',', ':', '[', ']', '{', '}', '"', '\\', ' ', 'x', '1', ',,', '""', '[]']);
  switch (r.int(3)) {
    case 0:
      return text.slice(0, at) + text.slice(at + 1);
    case 1:
      return text.slice(0, at) + insert + text.slice(at);
    default:
      return text.slice(0, at) + insert + text.slice(at + 1);
  }
}

describe('parseJsonObject', () => {
  it('an object is the doc; other JSON and garbage are no doc; refused documents say why', async () => {
    expect(await parseJsonObject('{"resourceType":"Patient"}')).toEqual({ doc: { resourceType: 'Patient' } });
    expect(await parseJsonObject('[{"a":1}]')).toEqual({ doc: undefined });
    expect(await parseJsonObject('null')).toEqual({ doc: undefined });
    expect(await parseJsonObject('<html>')).toEqual({ doc: undefined });
    const deep = await parseJsonObject('['.repeat(JSON_MAX_DEPTH + 1) + ']'.repeat(JSON_MAX_DEPTH + 1));
    expect('refused' in deep && deep.refused.code).toBe('too_deep');
    const ctrl = new AbortController();
    ctrl.abort();
    const big = `{"entry":[${Array.from({ length: 20_000 }, () => '{"a":[1,2,3]}').join(',')}]}`;
    const aborted = await parseJsonObject(big, { signal: ctrl.signal });
    expect('refused' in aborted && aborted.refused.code).toBe('aborted');
  });
});
