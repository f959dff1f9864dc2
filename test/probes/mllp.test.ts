// The mllp probe against an MLLP responder on loopback.
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../agent/metrics.js';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { type MllpOptions } from '../../probes/mllp/options.js';
import { parseConfig, type CheckConfig } from '../../config/loader.js';
import { MllpReader, mllpProbe } from '../../probes/mllp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { makePki } from '../helpers/certs.js';
import { budget, BUSY_SLACK_MS, closedPort, type Peer, quietLog, tcpPeer, tlsPeer, targetsOf } from '../helpers/peers.js';
import { value } from '../helpers/prom.js';

function run(target: string, options: Record<string, unknown> = {}, timeoutMs = 3000): Promise<ProbeResult> {
  const opts: MllpOptions = KIND_OPTIONS.mllp.parse(options);
  return mllpProbe.run({ ...targetsOf('mllp', target), options: opts, ...budget(timeoutMs), log: quietLog, secrets: {} });
}

const cleanup: Peer[] = [];
afterAll(async () => {
  for (const p of cleanup) await p.close();
});

const framed = (s: string) => Buffer.concat([Buffer.of(0x0b), Buffer.from(s, 'latin1'), Buffer.of(0x1c, 0x0d)]);

interface Received {
  segments: string[][];
  controlId: string;
}

/** An MLLP responder: reads one framed message, then lets `answer` reply (it gets the parsed message). */
async function responder(answer: (s: Socket, m: Received) => void): Promise<Peer & { received: Received[] }> {
  const received: Received[] = [];
  const p = await tcpPeer((s) => {
    const reader = new MllpReader(1 << 20);
    s.on('data', (chunk: Buffer) => {
      const f = reader.push(chunk);
      if (!f) return;
      s.removeAllListeners('data');
      const segments = f
        .toString('latin1')
        .split('\r')
        .filter((x) => x)
        .map((x) => x.split('|'));
      const m = { segments, controlId: segments[0]?.[9] ?? '' };
      received.push(m);
      answer(s, m);
    });
  });
  cleanup.push(p);
  return Object.assign(p, { received });
}

function ack(code: string, controlId: string, extra = ''): string {
  return `MSH|^~\\&|HIS|HOSP|VAKT|ITOPS|20261122190001||ACK^A08^ACK|ACK${Date.now()}|T|2.5\rMSA|${code}|${controlId}\r${extra}`;
}

const answerWith = (code: string, extra = '') => responder((s, m) => s.write(framed(ack(code, m.controlId, extra))));

describe('mllp probe: ACK codes', () => {
  it('AA is a success with connect, send and ack phases and the ack code', async () => {
    const p = await answerWith('AA');
    const r = await run(`127.0.0.1:${p.port}`);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['connect', 'send', 'ack']);
    expect(r.phases.ack).toBeGreaterThan(0);
    expect(r.info?.hl7AckCode).toBe('AA');
  });

  it('AE is ack_error', async () => {
    const p = await answerWith('AE', 'ERR|||207^Application internal error^HL70357|E\r');
    const r = await run(`127.0.0.1:${p.port}`);
    expect(r.failure).toMatchObject({ phase: 'ack', reason: 'ack_error' });
    expect(r.failure?.message).toContain('207');
    expect(r.info?.hl7AckCode).toBe('AE');
  });

  it('AR with ERR 202 is ack_reject, and a success with acceptErrorCodes [202]', async () => {
    const p = await answerWith('AR', 'ERR|||202^Unsupported processing id^HL70357|E\r');
    const r = await run(`127.0.0.1:${p.port}`);
    expect(r.failure).toMatchObject({ phase: 'ack', reason: 'ack_reject' });
    expect(r.info?.hl7AckCode).toBe('AR');
    const accepted = await run(`127.0.0.1:${p.port}`, { acceptErrorCodes: [202] });
    expect(accepted.ok).toBe(true);
    expect(accepted.info?.hl7AckCode).toBe('AR');
    const other = await run(`127.0.0.1:${p.port}`, { acceptErrorCodes: ['200'] });
    expect(other.failure?.reason).toBe('ack_reject');
  });

  it('CA is accepted by default; AA fails when only CA is expected', async () => {
    const p = await answerWith('CA');
    expect((await run(`127.0.0.1:${p.port}`)).ok).toBe(true);
    const q = await answerWith('AA');
    expect((await run(`127.0.0.1:${q.port}`, { expectAck: ['CA'] })).failure?.reason).toBe('expect_mismatch');
  });

  it('an ACK for another control id is ack_mismatch', async () => {
    const p = await responder((s) => s.write(framed(ack('AA', 'VKSOMETHINGELSE'))));
    const r = await run(`127.0.0.1:${p.port}`);
    expect(r.failure).toMatchObject({ phase: 'ack', reason: 'ack_mismatch' });
  });

  it('garbage is protocol: framed non-HL7, a frame without MSA, unframed bytes', async () => {
    const a = await responder((s) => s.write(framed('hello there')));
    expect((await run(`127.0.0.1:${a.port}`)).failure).toMatchObject({ phase: 'ack', reason: 'protocol' });
    const b = await responder((s) => s.write(framed('MSH|^~\\&|HIS|HOSP|||x||ACK|1|T|2.5\r')));
    const rb = await run(`127.0.0.1:${b.port}`);
    expect(rb.failure).toMatchObject({ phase: 'ack', reason: 'protocol' });
    expect(rb.failure?.message).toContain('MSA');
    const c = await responder((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    expect((await run(`127.0.0.1:${c.port}`)).failure).toMatchObject({ phase: 'ack', reason: 'protocol' });
    const d = await responder((s) => s.write('220 smtp ready\r\n'));
    expect((await run(`127.0.0.1:${d.port}`, {}, 500)).failure).toMatchObject({ phase: 'ack', reason: 'protocol' });
  });

  it('a closed port is refused in the connect phase', async () => {
    const r = await run(`127.0.0.1:${await closedPort()}`);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
  });
});

describe('mllp probe: timing and framing', () => {
  it('no ACK is a timeout in the ack phase, before the deadline', async () => {
    const p = await responder(() => undefined);
    const t0 = Date.now();
    const r = await run(`127.0.0.1:${p.port}`, {}, 500);
    expect(r.failure).toMatchObject({ phase: 'ack', reason: 'timeout' });
    expect(r.failure?.message).toContain('no ACK');
    expect(r.phases.send).toBeGreaterThanOrEqual(0);
    expect(Date.now() - t0).toBeLessThan(650 + BUSY_SLACK_MS);
  });

  it('a slow ACK within the deadline succeeds; beyond it times out', async () => {
    const p = await responder((s, m) => setTimeout(() => !s.destroyed && s.write(framed(ack('AA', m.controlId))), 300));
    const ok = await run(`127.0.0.1:${p.port}`, {}, 1500);
    expect(ok.ok).toBe(true);
    expect(ok.phases.ack).toBeGreaterThan(0.25);
    const late = await run(`127.0.0.1:${p.port}`, {}, 250);
    expect(late.failure).toMatchObject({ phase: 'ack', reason: 'timeout' });
  });

  it('an ACK split into 1-byte segments is reassembled', async () => {
    const p = await responder((s, m) => {
      const bytes = framed(ack('AA', m.controlId));
      let i = 0;
      const next = () => {
        if (s.destroyed || i >= bytes.length) return;
        s.write(bytes.subarray(i, i + 1));
        i++;
        setTimeout(next, 1);
      };
      next();
    });
    const r = await run(`127.0.0.1:${p.port}`, {}, 5000);
    expect(r.failure).toBeUndefined();
    expect(r.info?.hl7AckCode).toBe('AA');
  });

  it('two frames in one segment: the first counts, junk before the start byte is skipped', async () => {
    const p = await responder((s, m) => s.write(Buffer.concat([Buffer.from('\r\n'), framed(ack('AA', m.controlId)), framed(ack('AR', m.controlId))])));
    const r = await run(`127.0.0.1:${p.port}`);
    expect(r.ok).toBe(true);
    expect(r.info?.hl7AckCode).toBe('AA');
  });

  it('an endless frame (2 MB without end bytes) is protocol, quickly, with bounded buffering', async () => {
    const p = await responder((s) => {
      s.write(Buffer.of(0x0b));
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const pump = () => {
        while (!s.destroyed && sent < 2 * 1024 * 1024) {
          sent += chunk.length;
          if (!s.write(chunk)) return s.once('drain', pump);
        }
      };
      pump();
    });
    const t0 = Date.now();
    const r = await run(`127.0.0.1:${p.port}`, {}, 5000);
    expect(r.failure).toMatchObject({ phase: 'ack', reason: 'protocol' });
    expect(r.failure?.message).toContain('1048576');
    expect(Date.now() - t0).toBeLessThan(1500 + BUSY_SLACK_MS);
    const small = await run(`127.0.0.1:${p.port}`, { maxFrame: '64KiB' }, 5000);
    expect(small.failure?.message).toContain('65536');
    // The reader itself never holds more than maxFrame.
    const reader = new MllpReader(1000);
    reader.push(Buffer.of(0x0b));
    expect(() => {
      for (let i = 0; i < 100; i++) reader.push(Buffer.alloc(100, 'x'));
    }).toThrow(/larger than 1000/);
    expect(reader.buffered).toBeLessThanOrEqual(1000);
  });

  it('half an ACK, then silence, is a timeout', async () => {
    const p = await responder((s, m) => s.write(framed(ack('AA', m.controlId)).subarray(0, 30)));
    const r = await run(`127.0.0.1:${p.port}`, {}, 500);
    expect(r.failure).toMatchObject({ phase: 'ack', reason: 'timeout' });
    expect(r.failure?.message).toContain('incomplete');
  });
});

describe('mllp probe: the message sent', () => {
  it('carries the configured MSH fields, processing id T by default and a unique control id per run', async () => {
    const p = await answerWith('AA');
    const r1 = await run(`127.0.0.1:${p.port}`, { sendingFacility: 'ITOPS', receivingApplication: 'HIS', receivingFacility: 'HOSP' });
    const r2 = await run(`127.0.0.1:${p.port}`, {
      messageType: 'ORM^O01^ORM_O01',
      processingId: 'D',
      version: '2.3',
      patient: { id: 'ZZ9', name: 'DOE^JANE' },
      segments: ['ZVK|1|probe'],
    });
    expect(r1.ok && r2.ok).toBe(true);
    const [a, b] = p.received as [Received, Received];
    const msh = a.segments[0] as string[];
    expect(msh.slice(0, 6)).toEqual(['MSH', '^~\\&', 'VAKT', 'ITOPS', 'HIS', 'HOSP']);
    expect(msh[6]).toMatch(/^\d{14}$/);
    expect(msh[8]).toBe('ADT^A08^ADT_A01');
    expect(msh[10]).toBe('T');
    expect(msh[11]).toBe('2.5');
    expect(a.controlId).toMatch(/^VK[0-9A-Z]{1,18}$/);
    expect(a.controlId.length).toBeLessThanOrEqual(20);
    expect(a.segments.map((s) => s[0])).toEqual(['MSH', 'EVN', 'PID', 'PV1']);
    expect(a.segments[1]?.[1]).toBe('A08');
    expect(a.segments[2]?.[3]).toBe('SYNTH0001^^^HOSP^MR');
    const mshB = b.segments[0] as string[];
    expect([mshB[8], mshB[10], mshB[11]]).toEqual(['ORM^O01^ORM_O01', 'D', '2.3']);
    expect(b.segments[2]?.[5]).toBe('DOE^JANE');
    expect(b.segments.at(-1)).toEqual(['ZVK', '1', 'probe']);
    expect(b.controlId).not.toBe(a.controlId);
  });

  it('control ids stay unique over many runs', async () => {
    const p = await answerWith('AA');
    await Promise.all(Array.from({ length: 30 }, () => run(`127.0.0.1:${p.port}`)));
    const ids = new Set(p.received.map((m) => m.controlId));
    expect(ids.size).toBe(p.received.length);
    expect(p.received.length).toBeGreaterThanOrEqual(30);
  });

  it('rejects unsafe template fields in the schema', () => {
    expect(KIND_OPTIONS.mllp.safeParse({ sendingApplication: 'A|B' }).success).toBe(false);
    expect(KIND_OPTIONS.mllp.safeParse({ segments: ['ZVK|1\rMSH|x'] }).success).toBe(false);
    expect(KIND_OPTIONS.mllp.safeParse({ segments: ['MSH|^~\\&|x'] }).success).toBe(false);
    expect(KIND_OPTIONS.mllp.safeParse({ expectAck: ['XX'] }).success).toBe(false);
    expect(KIND_OPTIONS.mllp.parse({ acceptErrorCodes: [202, '207'] }).acceptErrorCodes).toEqual(['202', '207']);
  });
});

describe('mllp checks in the config and the metrics', () => {
  it('loads a kind: mllp check and counts ACK codes in vakt_hl7_acks_total', async () => {
    const check = parseConfig(
      'checks:\n  - { name: hl7-lab, kind: mllp, target: "10.0.0.5:6661", mllp: { receivingApplication: LAB, acceptErrorCodes: [202] } }\n',
      't.yaml',
    ).checks[0] as CheckConfig;
    expect(check.kind).toBe('mllp');
    const m = new Metrics(
      () => 0,
      () => 0,
      () => 1,
    );
    m.addCheck(check);
    const outcome = (result: ProbeResult) => ({ result, startedAt: Date.now(), duration: 0.01, queueWait: 0, loopStall: 0, disturbed: false });
    m.observe(check, outcome({ ok: true, phases: { connect: 0.001, send: 0.0001, ack: 0.005 }, info: { hl7AckCode: 'AA' } }));
    m.observe(check, outcome({ ok: true, phases: { connect: 0.001, send: 0.0001, ack: 0.005 }, info: { hl7AckCode: 'AA' } }));
    m.observe(
      check,
      outcome({
        ok: false,
        phases: { connect: 0.001, send: 0.0001, ack: 0.005 },
        failure: { phase: 'ack', reason: 'ack_reject', message: 'AR' },
        info: { hl7AckCode: 'AR' },
      }),
    );
    m.observe(check, outcome({ ok: false, phases: { connect: 0.001, send: 0.0001 }, failure: { phase: 'ack', reason: 'timeout', message: 'no ACK' } }));
    const text = (await m.render(false)).body;
    expect(value(text, 'vakt_hl7_acks_total', { check: 'hl7-lab', code: 'AA' })).toBe(2);
    expect(value(text, 'vakt_hl7_acks_total', { check: 'hl7-lab', code: 'AR' })).toBe(1);
    expect(value(text, 'vakt_probe_failures_total', { check: 'hl7-lab', reason: 'ack_reject' })).toBe(1);
    expect(value(text, 'vakt_probe_phase_seconds', { check: 'hl7-lab', phase: 'ack' })).toBeUndefined();
  });
});

describe('mllp probe over TLS', () => {
  it('does the handshake as its own phase, then the MLLP exchange', async () => {
    const pki = makePki();
    const p = await tlsPeer(pki.valid, (s) => {
      const reader = new MllpReader(1 << 20);
      s.on('data', (chunk: Buffer) => {
        const f = reader.push(chunk);
        if (!f) return;
        const controlId = f.toString('latin1').split('\r')[0]?.split('|')[9] ?? '';
        s.write(framed(ack('AA', controlId)));
      });
    });
    cleanup.push(p);
    const r = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'service.test' } });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['connect', 'tls', 'send', 'ack']);
    expect(r.info).toMatchObject({ hl7AckCode: 'AA', tlsVersion: 'TLSv1.3' });
    expect(r.values?.ssl_earliest_cert_expiry).toBeGreaterThan(Date.now() / 1000);
    const bad = await run(`127.0.0.1:${p.port}`, { tls: { caFile: pki.caFile, serverName: 'other.test' } });
    expect(bad.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
  });
});
