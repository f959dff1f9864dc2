// Benchmarks, measured as ratios against blackbox_exporter run in the same session against the same
// peers, since these machines are shared and noisy. Results and method: bench/RESULTS.md.
//
//   npm run bench                   all parts
//   npm run bench -- scale cpu      some parts: tcp | dns | scale | cpu | accuracy
//   BENCH_SMOKE=1 npm run bench     every part, tiny and short: checks the harness produces figures
//
// Peers: prometheus-blackbox-exporter (the reference in every part), prometheus (scale), unbound
// and dig (dns, and the dns checks of scale and cpu), root with ip, iptables and python3
// (accuracy: a network namespace and an NFQUEUE delay line). A missing peer is reported and its
// figures left out; the part still runs (or says it is skipped) and passes.
// Knobs: BENCH_SECONDS (scale, default 120), BENCH_CHECKS (scale, default 10000),
// BENCH_CELL_SECONDS (cpu, default 30), BENCH_CPU_KINDS (cpu: tcp,dns,http), BENCH_CPU_RATES
// (cpu: 200,1000), BENCH_ACCURACY_SECONDS (accuracy, default 30), BENCH_ACCURACY_ROUNDS (accuracy, default 1), BENCH_DNS_QUERIES (dns, 500).
// Exit status: 1 when a part threw or produced no figures (and was not skipped), else 0.
import { cpus, totalmem } from 'node:os';
import { benchAccuracy } from './accuracy.js';
import { benchCpu } from './cpu.js';
import { AGENT_NODE_FLAGS, BBE, SMOKE, bbeVersion, buildAgent, prometheusVersion, treeState, uptime, type PartResult } from './lib.js';
import { benchDns, benchTcp } from './micro.js';
import { benchScale } from './scale.js';

const parts: Record<string, () => Promise<PartResult>> = { tcp: benchTcp, dns: benchDns, scale: benchScale, cpu: benchCpu, accuracy: benchAccuracy };
const args = process.argv.slice(2);
const unknown = args.filter((a) => !(a in parts));
if (unknown.length > 0) {
  console.error(`unknown part(s): ${unknown.join(', ')}; parts: ${Object.keys(parts).join(', ')}`);
  process.exit(2);
}
const wanted = args.length > 0 ? args : Object.keys(parts);

console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${new Date().toISOString()}${SMOKE ? ' (BENCH_SMOKE=1: tiny sizes, figures not meaningful)' : ''}`,
);
console.log(`tree: ${treeState()}; blackbox_exporter ${BBE ? bbeVersion() : 'missing'}, prometheus ${prometheusVersion()}`);
if (wanted.some((p) => p === 'scale' || p === 'cpu' || p === 'accuracy')) {
  const t = performance.now();
  const b = await buildAgent();
  console.log(
    `agent child: compiled with tsc into ${b.out} in ${((performance.now() - t) / 1000).toFixed(1)} s; node flags: ${AGENT_NODE_FLAGS.join(' ') || 'none'}${b.warning ? `\n${b.warning}` : ''}`,
  );
}

const failures: string[] = [];
for (const name of wanted) {
  console.log(`\n## ${name}\nload: ${uptime()}`);
  const t0 = performance.now();
  try {
    const r = await (parts[name] as () => Promise<PartResult>)();
    const figures = Object.entries(r.figures);
    const bad = figures.filter(([, v]) => !Number.isFinite(v)).map(([k]) => k);
    if (r.skipped) console.log(`(${name} skipped: ${r.skipped})`);
    else if (figures.length === 0) failures.push(`${name}: produced no figures`);
    else if (SMOKE && bad.length > 0) failures.push(`${name}: no number for ${bad.join(', ')}`);
    else if (bad.length > 0) console.log(`(no number for ${bad.join(', ')})`);
  } catch (err) {
    console.log(`${name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
  }
  console.log(`(${name} took ${((performance.now() - t0) / 1000).toFixed(0)} s; load: ${uptime()})`);
}
if (failures.length > 0) {
  console.log(`\nbench: ${failures.length} part(s) failed:\n  ${failures.join('\n  ')}`);
  process.exitCode = 1;
} else console.log(`\nbench: ${wanted.length} part(s) ran${SMOKE ? ' (smoke: the harness produced figures for every part that was not skipped)' : ''}`);
// Peers and agents were stopped by the parts; whatever is left is killed on exit (lib.ts).
process.exit();
