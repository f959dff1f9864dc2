// The weighted lists of the Accept-* request headers (RFC 9110 12.4.2), for the status page's
// language (Accept-Language) and /metrics' compression (Accept-Encoding).

/** The header's items with their weights, lowercased, in header order; a missing or malformed `q` counts as 1. */
export function weighted(header: string | undefined): { value: string; q: number }[] {
  return (header ?? '')
    .split(',')
    .map((part) => {
      const [value = '', ...params] = part.trim().toLowerCase().split(';');
      const q = params.map((p) => /^q=([\d.]+)$/.exec(p.trim())?.[1]).find((x) => x !== undefined);
      return { value: value.trim(), q: q === undefined ? 1 : Number(q) };
    })
    .filter((p) => p.value !== '');
}

/** Whether an Accept-Encoding header allows gzip: `gzip` or `x-gzip` with a q above 0, else `*` so. */
export function acceptsGzip(header: string | undefined): boolean {
  let star = false;
  for (const { value, q } of weighted(header)) {
    if (value === 'gzip' || value === 'x-gzip') return q > 0;
    if (value === '*') star = q > 0;
  }
  return star;
}
