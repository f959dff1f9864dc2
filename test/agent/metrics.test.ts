// The metrics layer on its own: blackbox-compatible shapes, series lifecycle, label safety.
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../agent/metrics.js';
import { RESERVED_LABELS } from '../../config/fields.js';
import { parseConfig, type CheckConfig } from '../../config/loader.js';
import type { ProbeResult } from '../../probes/types.js';
import { parseMetrics, samples, value } from '../helpers/prom.js';

function check(name: string, extra = ''): CheckConfig {
  return parseConfig(`checks:\n  - { name: ${name}, kind: tcp, target: "10.0.0.1:443"${extra} }\n`, 't.yaml').checks[0] as CheckConfig;
}

const tlsResult: ProbeResult = {
  ok: true,
  phases: { connect: 0.001, tls: 0.004 },
  values: {
    ip_protocol: 4,
    ssl_earliest_cert_expiry: 2_000_000_000,
    samples: 5,
    samples_loss_ratio: 0.2,
    connect_min_seconds: 0.001,
    connect_median_seconds: 0.002,
    connect_max_seconds: 0.01,
  },
  info: {
    tlsVersion: 'TLSv1.3',
    certSubject: 'CN=ehr',
    certIssuer: 'CN=CA',
    certSubjectAlternative: 'ehr,ehr.local',
    certSerialNumber: '1f',
    certFingerprintSha256: 'ab',
  },
  degraded: { reason: 'sample_loss', message: '1 of 5' },
};

const outcome = (result: ProbeResult) => ({ result, startedAt: Date.now(), duration: 0.006, queueWait: 0, loopStall: 0, disturbed: false });

describe('metrics', () => {
  it('exports the last run with blackbox_exporter names and label values', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = check('ehr-a');
    m.addCheck(c);
    m.observe(c, outcome(tlsResult));
    const text = (await m.render(false)).body;
    const base = { check: 'ehr-a', kind: 'tcp', target: '10.0.0.1:443' };
    expect(value(text, 'probe_success', base)).toBe(1);
    expect(value(text, 'probe_ssl_earliest_cert_expiry', base)).toBe(2_000_000_000);
    expect(value(text, 'probe_tls_version_info', { ...base, version: 'TLS 1.3' })).toBe(1);
    expect(
      value(text, 'probe_ssl_last_chain_info', { ...base, subject: 'CN=ehr', issuer: 'CN=CA', subjectalternative: 'ehr,ehr.local', serialnumber: '1f' }),
    ).toBe(1);
    expect(value(text, 'vakt_probe_sample_loss_ratio', base)).toBe(0.2);
    expect(value(text, 'vakt_probe_connect_seconds', { ...base, stat: 'median' })).toBe(0.002);
    expect(samples(text, 'vakt_probe_degraded')).toHaveLength(0); // removed: the degraded state is vakt_check_status
    expect(value(text, 'vakt_probe_degraded_total', { check: 'ehr-a', reason: 'sample_loss' })).toBe(1);
    expect(value(text, 'vakt_probe_runs_total', { check: 'ehr-a', result: 'degraded' })).toBe(1);
    // Histograms are opt-in: none by default.
    expect(samples(text, 'vakt_probe_duration_seconds_count')).toHaveLength(0);
  });

  it('a phase or value missing from the next run is removed, not left stale or set to 0', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = check('ehr-a');
    m.observe(c, outcome(tlsResult));
    m.observe(c, outcome({ ok: false, phases: {}, failure: { phase: 'connect', reason: 'refused', message: 'x' } }));
    const text = (await m.render(false)).body;
    expect(samples(text, 'vakt_probe_phase_seconds', { check: 'ehr-a' })).toHaveLength(0);
    expect(samples(text, 'probe_tls_version_info', { check: 'ehr-a' })).toHaveLength(0);
    expect(samples(text, 'probe_ssl_earliest_cert_expiry', { check: 'ehr-a' })).toHaveLength(0);
    expect(value(text, 'probe_success', { check: 'ehr-a' })).toBe(0);
    expect(value(text, 'vakt_probe_failures_total', { check: 'ehr-a', reason: 'refused' })).toBe(1);
  });

  it('a removed check loses every series; others keep theirs', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const a = check('a');
    const b = check('b');
    for (const c of [a, b]) {
      m.addCheck(c);
      m.observe(c, outcome(tlsResult));
      m.skippedRun(c.name);
    }
    m.removeCheck('a');
    const text = (await m.render(false)).body;
    expect(text).not.toMatch(/check="a"/);
    expect(value(text, 'probe_success', { check: 'b' })).toBe(1);
    expect(value(text, 'vakt_probe_skipped_runs_total', { check: 'b' })).toBe(1);
  });

  it('several targets: per-target series; a run cut off by the runner keeps the same series', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = parseConfig('checks:\n  - { name: dns, kind: dns, targets: ["10.0.0.53", "10.0.0.54"], dns: { name: x.local } }\n', 't.yaml')
      .checks[0] as CheckConfig;
    m.observe(
      c,
      outcome({
        ok: true,
        phases: {},
        targets: [
          { target: '10.0.0.53', ok: true, durationSeconds: 0.002, phases: { request: 0.002 }, values: { dns_answer_rrs: 1 }, info: { dnsRcode: 'NOERROR' } },
          { target: '10.0.0.54', ok: false, durationSeconds: 0.5, phases: {}, failure: { phase: 'request', reason: 'timeout', message: 'x' } },
        ],
      }),
    );
    let text = (await m.render(false)).body;
    expect(value(text, 'probe_success', { check: 'dns', target: '10.0.0.53' })).toBe(1);
    expect(value(text, 'probe_success', { check: 'dns', target: '10.0.0.54' })).toBe(0);
    expect(value(text, 'probe_dns_duration_seconds', { check: 'dns', target: '10.0.0.53', phase: 'request' })).toBe(0.002);
    expect(value(text, 'probe_dns_rcode_info', { check: 'dns', target: '10.0.0.53', rcode: 'NOERROR' })).toBe(1);
    m.observe(c, outcome({ ok: false, phases: {}, failure: { phase: 'total', reason: 'timeout', message: 'cut off' } }));
    text = (await m.render(false)).body;
    expect(samples(text, 'probe_success', { check: 'dns' }).map((x) => [x.labels.target, x.value])).toEqual([
      ['10.0.0.53', 0],
      ['10.0.0.54', 0],
    ]);
    expect(samples(text, 'probe_dns_rcode_info', { check: 'dns' })).toHaveLength(0);
  });

  it('queue readings: one series per check and queue and number; unknown numbers absent; a failed read or a queue gone removes them', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = parseConfig('checks:\n  - { name: lab-q, kind: queue, target: "http://10.0.0.9:15672", queue: { source: rabbitmq, queues: [a, b] } }\n', 't.yaml')
      .checks[0] as CheckConfig;
    m.addCheck(c);
    const read: ProbeResult = {
      ok: true,
      phases: { fetch: 0.002, assess: 0.00001 },
      queues: [
        { queue: 'a', depth: 40, unacked: 10, consumers: 1, oldestAgeSeconds: 95, arrivalRate: 2, drainRate: 0, deliverRate: 5, undrainedSeconds: 300 },
        { queue: 'b', depth: 0, consumers: 2 },
      ],
    };
    m.observe(c, outcome(read));
    let text = (await m.render(false)).body;
    expect(value(text, 'vakt_queue_depth', { check: 'lab-q', queue: 'a' })).toBe(40);
    expect(value(text, 'vakt_queue_unacknowledged', { check: 'lab-q', queue: 'a' })).toBe(10);
    expect(value(text, 'vakt_queue_oldest_message_age_seconds', { check: 'lab-q', queue: 'a' })).toBe(95);
    expect(value(text, 'vakt_queue_drain_rate', { check: 'lab-q', queue: 'a' })).toBe(0);
    expect(value(text, 'vakt_queue_arrival_rate', { check: 'lab-q', queue: 'a' })).toBe(2);
    expect(value(text, 'vakt_queue_undrained_seconds', { check: 'lab-q', queue: 'a' })).toBe(300);
    expect(value(text, 'vakt_queue_deliver_rate', { check: 'lab-q', queue: 'a' })).toBe(5);
    expect(samples(text, 'vakt_queue_deliver_rate', { queue: 'b' })).toHaveLength(0);
    expect(value(text, 'vakt_queue_consumers', { check: 'lab-q', queue: 'b' })).toBe(2);
    expect(samples(text, 'vakt_queue_oldest_message_age_seconds', { queue: 'b' })).toHaveLength(0);
    expect(samples(text, 'vakt_queue_drain_rate', { queue: 'b' })).toHaveLength(0);
    // Queue b no longer read: its series go; a's stay.
    m.observe(c, outcome({ ...read, queues: [read.queues?.[0] as NonNullable<ProbeResult['queues']>[number]] }));
    text = (await m.render(false)).body;
    expect(samples(text, 'vakt_queue_depth', { queue: 'b' })).toHaveLength(0);
    expect(value(text, 'vakt_queue_depth', { check: 'lab-q', queue: 'a' })).toBe(40);
    // The API could not be read: no stale depths.
    m.observe(c, outcome({ ok: false, phases: { fetch: 0.001 }, failure: { phase: 'fetch', reason: 'refused', message: 'x' } }));
    text = (await m.render(false)).body;
    expect(samples(text, 'vakt_queue_depth', { check: 'lab-q' })).toHaveLength(0);
    m.observe(c, outcome(read));
    m.removeCheck('lab-q');
    expect(samples((await m.render(false)).body, 'vakt_queue_undrained_seconds', {})).toHaveLength(0);
  });

  it('snmp item values: one vakt_snmp_value per numeric OID named in the config; text values and a failed run leave none', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = parseConfig(
      'checks:\n  - { name: fw, kind: snmp, target: "10.0.0.7", secrets: { c: { env: C } }, snmp: { community: c, oids: [{ name: ha-state, oid: 1.3.6.1.4.1.9.1.0 }, { name: sys-name, oid: 1.3.6.1.2.1.1.5.0 }] } }\n',
      't.yaml',
      { C: 'x' },
    ).checks[0] as CheckConfig;
    m.addCheck(c);
    const read: ProbeResult = {
      ok: true,
      phases: { request: 0.002 },
      items: [
        { name: 'ha-state', ok: true, value: 1, text: '1' },
        { name: 'sys-name', ok: true, text: 'fw-a' },
      ],
    };
    m.observe(c, outcome(read));
    let text = (await m.render(false)).body;
    expect(value(text, 'vakt_snmp_value', { check: 'fw', oid_name: 'ha-state' })).toBe(1);
    expect(samples(text, 'vakt_snmp_value', { oid_name: 'sys-name' })).toHaveLength(0);
    m.observe(c, outcome({ ok: false, phases: { request: 1 }, failure: { phase: 'request', reason: 'timeout', message: 'x' } }));
    text = (await m.render(false)).body;
    expect(samples(text, 'vakt_snmp_value', { check: 'fw' })).toHaveLength(0);
  });

  it("a kind's tallies: only its own checks count; a code outside the declared values counts as other", async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const hl7 = parseConfig('checks:\n  - { name: h, kind: mllp, target: "10.0.0.5:6661" }\n', 't.yaml').checks[0] as CheckConfig;
    const tcp = check('t');
    m.addCheck(hl7);
    let text = (await m.render(false)).body;
    expect(samples(text, 'vakt_hl7_acks_total')).toHaveLength(0);
    m.observe(hl7, outcome({ ok: true, phases: {}, info: { hl7AckCode: 'CA' } }));
    m.observe(hl7, outcome({ ok: false, phases: {}, failure: { phase: 'ack', reason: 'protocol', message: 'x' }, info: { hl7AckCode: 'ZZ' } }));
    m.observe(hl7, outcome({ ok: false, phases: {}, failure: { phase: 'ack', reason: 'protocol', message: 'x' }, info: { hl7AckCode: 'other' } }));
    m.observe(tcp, outcome({ ok: true, phases: {}, info: { hl7AckCode: 'AA' } }));
    text = (await m.render(false)).body;
    expect(value(text, 'vakt_hl7_acks_total', { check: 'h', code: 'CA' })).toBe(1);
    expect(value(text, 'vakt_hl7_acks_total', { check: 'h', code: 'other' })).toBe(2);
    expect(samples(text, 'vakt_hl7_acks_total').map((s) => s.labels.code)).toEqual(['CA', 'other']);
    expect(samples(text, 'vakt_hl7_acks_total', { check: 't' })).toHaveLength(0);
    // Counters survive a rewrite of every check's text (constant labels changed).
    m.setConstantLabels({ site: 'north' });
    expect(value((await m.render(false)).body, 'vakt_hl7_acks_total', { check: 'h', code: 'CA', site: 'north' })).toBe(1);
  });

  it('registers each family once, with one HELP and TYPE line each', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const names = m.familyNames();
    expect(names.length).toBeGreaterThan(40);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    const q = parseConfig('checks:\n  - { name: q, kind: queue, target: "http://10.0.0.9:15672", queue: { source: rabbitmq, queues: [a] } }\n', 't.yaml')
      .checks[0] as CheckConfig;
    m.observe(q, outcome({ ok: true, phases: {}, queues: [{ queue: 'a', depth: 1 }] }));
    m.observe(check('x'), outcome(tlsResult));
    const types = [...(await m.render(false)).body.matchAll(/^# TYPE (\S+)/gm)].map((t) => t[1]);
    expect(types).toContain('vakt_queue_depth');
    expect(types.filter((n, i) => types.indexOf(n) !== i)).toEqual([]);
  });

  it('histograms: off by default; total or phases from the agent default; a check overrides it', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const plain = check('x');
    const own = check('y', ', histograms: phases');
    m.observe(plain, outcome(tlsResult));
    m.observe(own, outcome(tlsResult));
    let text = (await m.render(false)).body;
    expect(samples(text, 'vakt_probe_duration_seconds_count', { check: 'x' })).toHaveLength(0);
    expect(samples(text, 'vakt_probe_duration_seconds_count', { check: 'y' }).map((s) => s.labels.phase)).toEqual(['total', 'connect', 'tls']);
    m.setHistogramDefault('total');
    m.observe(plain, outcome(tlsResult));
    text = (await m.render(false)).body;
    expect(samples(text, 'vakt_probe_duration_seconds_count', { check: 'x' }).map((s) => s.labels.phase)).toEqual(['total']);
    expect(value(text, 'vakt_probe_duration_seconds_bucket', { check: 'x', phase: 'total', le: '0.01' })).toBe(1);
    expect(value(text, 'vakt_probe_duration_seconds_bucket', { check: 'x', phase: 'total', le: '0.005' })).toBe(0);
    expect(value(text, 'vakt_probe_duration_seconds_sum', { check: 'x', phase: 'total' })).toBe(0.006);
    m.setHistogramDefault('off');
    text = (await m.render(false)).body;
    expect(samples(text, 'vakt_probe_duration_seconds_count', { check: 'x' })).toHaveLength(0);
    expect(samples(text, 'vakt_probe_duration_seconds_count', { check: 'y' })).toHaveLength(3);
  });

  it('a disturbed run is counted; the counter appears with the first one', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = check('x');
    m.addCheck(c);
    m.observe(c, outcome(tlsResult));
    let text = (await m.render(false)).body;
    expect(samples(text, 'vakt_probe_disturbed_runs_total')).toHaveLength(0);
    m.observe(c, { ...outcome(tlsResult), loopStall: 0.2, disturbed: true });
    text = (await m.render(false)).body;
    expect(value(text, 'vakt_probe_disturbed_runs_total', { check: 'x' })).toBe(1);
  });

  it('constant labels are on every series, also after they change', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = check('x');
    m.addCheck(c);
    m.setConstantLabels({ site: 'north' });
    m.observe(c, outcome(tlsResult));
    let text = (await m.render(false)).body;
    expect(value(text, 'probe_success', { check: 'x', site: 'north' })).toBe(1);
    m.setConstantLabels({ site: 'south' });
    text = (await m.render(false)).body;
    const all = parseMetrics(text);
    expect(all.length).toBeGreaterThan(20);
    expect(all.filter((s) => s.labels.site !== 'south').map((s) => s.name)).toEqual([]);
  });

  it('every label name vakt uses is refused as a constant agent label', async () => {
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    const c = check('x');
    m.addCheck(c);
    m.observe(c, outcome(tlsResult));
    // Kinds with labels of their own: steps (http), queues (queue), ACK codes (mllp).
    const q = parseConfig('checks:\n  - { name: q, kind: queue, target: "http://10.0.0.9:15672", queue: { source: rabbitmq, queues: [a] } }\n', 't.yaml')
      .checks[0] as CheckConfig;
    m.addCheck(q);
    m.observe(
      q,
      outcome({
        ok: true,
        phases: {},
        queues: [{ queue: 'a', depth: 1 }],
        steps: [{ name: 's', ok: true, durationSeconds: 0.1, phases: {} }],
      }),
    );
    const hl7 = parseConfig('checks:\n  - { name: h, kind: mllp, target: "10.0.0.5:6661" }\n', 't.yaml').checks[0] as CheckConfig;
    m.observe(hl7, outcome({ ok: true, phases: {}, info: { hl7AckCode: 'AA' } }));
    m.setNotify(() => [{ name: 'ward-4', delivered: 1, failed: 0, dropped: 0, queued: 0 }]);
    const used = new Set<string>();
    for (const s of parseMetrics((await m.render(false)).body)) for (const l of Object.keys(s.labels)) if (l !== 'le') used.add(l);
    expect(used.size).toBeGreaterThan(5);
    expect(used).toContain('queue');
    expect(used).toContain('code');
    expect(used).toContain('webhook');
    for (const l of used) expect(RESERVED_LABELS).toContain(l);
    expect(() => parseConfig(`agent: { labels: { version: x } }\nchecks: [ { name: a, kind: tcp, target: "h:1" } ]`, 't.yaml')).toThrow(/reserved/);
  });
});
