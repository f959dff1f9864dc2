// The status page at "/": systems grouped by group, each in plain words, readable without
// JavaScript and refreshed by the browser. Shows states and times only: no targets' secrets,
// no stack traces, no failure texts from peers.
import type { CheckView } from './agent.js';
import type { CheckState } from './detector.js';

const WORDS: Record<CheckState, string> = {
  unknown: 'Not checked yet',
  ok: 'Working',
  degraded: 'Slow or impaired',
  failing: 'Problems, being confirmed',
  down: 'Not reachable',
};

const MARK: Record<CheckState, string> = { unknown: '?', ok: '✓', degraded: '!', failing: '!', down: '✕' };

export function statusPage(checks: readonly CheckView[], labels: Record<string, string>): string {
  const groups = new Map<string, CheckView[]>();
  for (const v of checks) {
    const list = groups.get(v.config.group) ?? [];
    list.push(v);
    groups.set(v.config.group, list);
  }
  const sections = [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([group, list]) => `<section aria-labelledby="g-${slug(group)}">
<h2 id="g-${slug(group)}">${esc(group)}</h2>
<table>
<thead><tr><th scope="col">System</th><th scope="col">Status</th><th scope="col">Since</th></tr></thead>
<tbody>
${list
  .sort((a, b) => a.config.title.localeCompare(b.config.title))
  .map(
    (v) =>
      `<tr class="s-${v.status.state}"><th scope="row">${esc(v.config.title)}</th><td><span aria-hidden="true">${MARK[v.status.state]}</span> ${WORDS[v.status.state]}</td><td><time datetime="${new Date(v.status.since).toISOString()}">${fmt(v.status.since)}</time></td></tr>`,
  )
  .join('\n')}
</tbody>
</table>
</section>`,
    )
    .join('\n');
  const site = labels.site ? ` — ${esc(labels.site)}` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="15">
<title>System status${site}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a;max-width:60rem}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ccc}
.s-ok td:nth-child(2){color:#0a6b2d}.s-degraded td:nth-child(2),.s-failing td:nth-child(2){color:#8a5a00;font-weight:600}
.s-down td:nth-child(2){color:#b00020;font-weight:700}
</style>
</head>
<body>
<header><h1>System status${site}</h1><p>Last updated <time datetime="${new Date().toISOString()}">${fmt(Date.now())}</time>. This page refreshes every 15 seconds.</p></header>
<main>
${sections}
</main>
</body>
</html>
`;
}

function fmt(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}
