// Durations and byte sizes as written in config files: what parses, what does not, and
// formatting back for messages.
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseSize } from '../../config/units.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['5s', 5_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['14d', 14 * 86_400_000],
    ['1h30m', 5_400_000],
    ['1m30s', 90_000],
    ['1d2h3m4s5ms', 86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4_000 + 5],
    ['0.5s', 500],
    ['1.25m', 75_000],
    ['0s', 0],
    ['007s', 7_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('rounds fractions of a millisecond to the nearest millisecond', () => {
    expect(parseDuration('0.5ms')).toBe(1);
    expect(parseDuration('1.4ms')).toBe(1);
    expect(parseDuration('0.0001s')).toBe(0);
  });

  it('accepts parts in any order and repeated units (they add up)', () => {
    expect(parseDuration('30m1h')).toBe(5_400_000);
    expect(parseDuration('1s1s')).toBe(2_000);
  });

  it.each([
    ['empty', ''],
    ['number without unit', '5'],
    ['0 without unit', '0'],
    ['fraction without unit', '1.5'],
    ['space before the unit', '5 s'],
    ['leading space', ' 5s'],
    ['trailing space', '5s '],
    ['negative', '-1s'],
    ['explicit plus', '+1s'],
    ['no digit before the point', '.5s'],
    ['no digit after the point', '5.s'],
    ['upper-case unit', '5S'],
    ['unknown unit', '5w'],
    ['spelled-out unit', '5 seconds'],
    ['trailing number', '1m30'],
    ['exponent', '1e3s'],
    ['comma decimal', '0,5s'],
    ['unit only', 's'],
    ['Infinity', 'Infinity'],
  ])('rejects %s (%j)', (_, text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('rejects text longer than 32 characters, so huge values cannot be written', () => {
    const at32 = `${'1'.padStart(31, '0')}s`;
    expect(at32).toHaveLength(32);
    expect(parseDuration(at32)).toBe(1_000);
    expect(parseDuration(`0${at32}`)).toBeUndefined();
    expect(parseDuration('1s'.repeat(17))).toBeUndefined();
  });

  it('parses large values that fit in a safe integer exactly', () => {
    expect(parseDuration('100000000d')).toBe(8_640_000_000_000_000);
    expect(parseDuration('365d')).toBe(31_536_000_000);
    expect(parseDuration('9007199254740991ms')).toBe(Number.MAX_SAFE_INTEGER);
  });

  // Known issue (reported): a value beyond Number.MAX_SAFE_INTEGER ms is returned as an inexact
  // float (e.g. 8.64e38 for 31 nines and "d") instead of undefined. Once fixed this fails:
  // turn it into an ordinary it().
  it('rejects values beyond Number.MAX_SAFE_INTEGER ms', () => {
    expect(parseDuration(`${'9'.repeat(31)}d`)).toBeUndefined();
  });

  it('is not confused by an earlier call (the sticky regex is reset)', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('x')).toBeUndefined();
    expect(parseDuration('5s')).toBe(5_000);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [1, '1ms'],
    [250, '250ms'],
    [999, '999ms'],
    [1_000, '1s'],
    [1_500, '1500ms'],
    [90_000, '90s'],
    [60_000, '1m'],
    [5_400_000, '90m'],
    [3_600_000, '1h'],
    [36 * 3_600_000, '36h'],
    [86_400_000, '1d'],
    [14 * 86_400_000, '14d'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('uses the largest unit that divides the value', () => {
    expect(formatDuration(2 * 86_400_000)).toBe('2d');
    expect(formatDuration(2 * 86_400_000 + 1)).toBe('172800001ms');
  });

  it('shows zero, negative and fractional values in ms', () => {
    expect(formatDuration(0)).toBe('0ms');
    expect(formatDuration(-1_000)).toBe('-1000ms');
    expect(formatDuration(0.5)).toBe('0.5ms');
  });

  it('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 7, 250, 1_000, 1_001, 59_999, 60_000, 90_000, 3_600_000, 5_400_000, 86_400_000, 90_061_001, 2 ** 40]) {
      expect(parseDuration(formatDuration(ms)), String(ms)).toBe(ms);
    }
  });
});

describe('parseSize', () => {
  it.each([
    [65_536, 65_536],
    [0, 0],
    ['0', 0],
    ['512', 512],
    ['512B', 512],
    ['64KiB', 65_536],
    ['1MiB', 1_048_576],
    ['2GiB', 2 * 1024 ** 3],
    ['64KB', 64_000],
    ['1MB', 1_000_000],
    ['1GB', 1_000_000_000],
    ['1 MiB', 1_048_576],
    ['  64KiB  ', 65_536],
    [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  ])('%j is %d bytes', (value, bytes) => {
    expect(parseSize(value)).toBe(bytes);
  });

  it.each([
    ['empty', ''],
    ['negative string', '-1'],
    ['fraction', '1.5MiB'],
    ['lower-case unit', '64kib'],
    ['unknown unit', '1TiB'],
    ['unit only', 'KiB'],
    ['exponent', '1e6'],
    ['unit before number', 'KiB64'],
    ['negative number', -1],
    ['fractional number', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['number beyond MAX_SAFE_INTEGER', 2 ** 53],
  ])('rejects %s (%j)', (_, value) => {
    expect(parseSize(value)).toBeUndefined();
  });

  // Known issue (reported): the number form rejects unsafe integers, the string form does not
  // ("99999999999999999999GiB" is 1.07e29, "9007199254740993" is 9007199254740992). Once fixed
  // this fails: turn it into an ordinary it().
  it('rejects string sizes beyond Number.MAX_SAFE_INTEGER like numbers', () => {
    expect(parseSize('99999999999999999999GiB')).toBeUndefined();
  });
});
