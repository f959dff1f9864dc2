// Durations ("250ms", "5s", "2m", "1h30m", "14d") and byte sizes ("64KiB", "1MiB") as config
// values. Both parse to plain numbers (milliseconds, bytes); both also format back for messages.

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "5s", "1m30s"; returns undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (text.length === 0 || text.length > 32) return undefined;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const at = DURATION_PART.lastIndex;
    const m = DURATION_PART.exec(text);
    if (!m || m.index !== at) return undefined;
    total += Number(m[1]) * (DURATION_UNIT_MS[m[2] as string] as number);
  }
  const ms = Math.round(total);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const SIZE = /^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/;
const SIZE_UNIT: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, KB: 1000, MB: 1000 ** 2, GB: 1000 ** 3 };

/** Parses 65536, "64KiB", "1MiB"; returns undefined when the value is not a size. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * (SIZE_UNIT[m[2] ?? 'B'] as number);
  return Number.isSafeInteger(n) ? n : undefined;
}
