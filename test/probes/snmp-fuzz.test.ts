// Fuzzing the snmp kind's handling of peer bytes. Two parts:
// - the kind's own reading of a value (readValue, meets): random varbinds of every type and shape
//   net-snmp could hand over, and some it never should;
// - net-snmp's BER parser, USM and decryption, through the probe: a hostile relay stands between
//   the probe and the sandbox's agent (net-snmp's agent, v2c and v3 authPriv) and mutates every
//   real answer (bit flips, bytes changed, inserted, cut, lengths tampered, garbage appended), or
//   sends random bytes or random BER instead. Every run must end in a result whose reason the
//   kind declares (never a throw, never "internal"), and no run may hang; anything net-snmp throws
//   outside its own try is counted (the probe catches it: a finding about the library).
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND, KIND_OPTIONS } from '../../probes/kinds.js';
import { oid as oidSchema } from '../../probes/snmp/options.js';
import { meets, readValue, snmpProbe, type RawVarbind } from '../../probes/snmp/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { OIDS, SandboxSnmpAgent } from '../../sandbox/snmp.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { prng, type Rng } from '../helpers/prng.js';

const SEED = Number(process.env.SNMP_FUZZ_SEED ?? Date.now() % 2 ** 31);
const VALUE_CASES = 20_000;
const REPLY_CASES = { v2c: 6_000, v3: 6_000 };
const LANES = 24;
const CREDENTIALS = { community: 'fuzz-community', authKey: 'fuzz-auth-key', privKey: 'fuzz-priv-key' };
const SECRETS = { community: CREDENTIALS.community, auth: CREDENTIALS.authKey, priv: CREDENTIALS.privKey };
const OID_LIST = [
  { name: 'ha-state', oid: OIDS.haState, equals: 'active', values: { 1: 'active', 2: 'standby' } },
  { name: 'uplink', oid: OIDS.uplinkOper, oneOf: [1, 5] },
  { name: 'sys-name', oid: OIDS.sysName },
];
const OPTIONS = {
  v2c: KIND_OPTIONS.snmp.parse({ community: 'community', retries: 0, oids: OID_LIST }),
  v3: KIND_OPTIONS.snmp.parse({ version: 3, user: 'vakt-monitor', authKey: 'auth', privProtocol: 'aes', privKey: 'priv', retries: 0, oids: OID_LIST }),
};

function randomValue(r: Rng): unknown {
  switch (r.int(9)) {
    case 0:
      return r.int(2 ** 32) - 2 ** 31;
    case 1:
      return r.bytes(r.int(r.chance(0.1) ? 2000 : 40));
    case 2:
      return Buffer.from(r.bytes(r.int(30)).toString('latin1'), 'latin1').toString('utf8');
    case 3:
      return r.pick([null, undefined, NaN, Infinity, -0, true, false]);
    case 4:
      return { some: 'object' };
    case 5:
      return r.pick([0, 1, 2, 5, 2 ** 53, -(2 ** 53)]);
    case 6:
      return Buffer.from('active');
    case 7:
      return [1, 2, 3];
    default:
      return r.next() * 1e12;
  }
}

function mutate(r: Rng, base: Buffer): Buffer {
  const out = [...base];
  const edits = 1 + r.int(6);
  for (let e = 0; e < edits; e++) {
    const at = r.int(out.length + 1);
    switch (r.int(8)) {
      case 0:
        out[at] = (out[at] ?? 0) ^ (1 << r.int(8)); // a bit flipped
        break;
      case 1:
        out[at] = r.int(256);
        break;
      case 2:
        out.splice(at, 0, ...r.bytes(1 + r.int(8)));
        break;
      case 3:
        out.splice(at, 1 + r.int(8));
        break;
      case 4:
        out.length = Math.max(0, at); // truncated
        break;
      case 5:
        out[at] = r.pick([0x80, 0x81, 0x82, 0x84, 0x85, 0xff, 0x00, 0x7f]); // a length (or tag) tampered with
        break;
      case 6:
        out.push(...r.bytes(r.int(r.chance(0.05) ? 3000 : 30))); // garbage after
        break;
      default:
        out[at] = r.pick([0x02, 0x04, 0x05, 0x06, 0x30, 0x40, 0x41, 0x46, 0x80, 0x81, 0x82, 0xa2, 0xa8]); // another tag
    }
  }
  return Buffer.from(out);
}

/** Random but plausible BER: nested sequences of SNMP's tags. */
function randomBer(r: Rng, depth = 0): Buffer {
  const tag = r.pick([0x02, 0x04, 0x05, 0x06, 0x30, 0x40, 0x41, 0x42, 0x43, 0x46, 0x80, 0x81, 0x82, 0xa2, 0xa8]);
  const content =
    (tag === 0x30 || tag >= 0xa0) && depth < 5
      ? Buffer.concat(Array.from({ length: r.int(5) }, () => randomBer(r, depth + 1)))
      : r.bytes(r.int(tag === 0x02 ? 10 : 20));
  const len = content.length < 128 ? Buffer.of(content.length) : Buffer.of(0x82, content.length >> 8, content.length & 0xff);
  return Buffer.concat([Buffer.of(tag), r.chance(0.05) ? Buffer.of(r.int(256)) : len, content]);
}

/** What the relay sends back instead of the agent's answer. */
function hostile(r: Rng, real: Buffer): Buffer {
  const roll = r.next();
  if (roll < 0.04) return real; // unchanged: the run must be ok
  if (roll < 0.1) return r.bytes(r.int(200));
  if (roll < 0.18) return Buffer.concat([Buffer.of(0x30, 0x82, 0, 0), randomBer(r)]);
  return mutate(r, real);
}

/** A relay on 127.0.0.1 in front of the agent that mutates every answer with its own random numbers. */
class HostileRelay {
  replies = 0;
  private readonly front: Socket = createSocket('udp4');
  private readonly back: Socket = createSocket('udp4');
  private client: { port: number; address: string } | undefined;

  constructor(
    private readonly rng: Rng,
    private readonly agentPort: number,
  ) {}

  get port(): number {
    return this.front.address().port;
  }

  async start(): Promise<void> {
    this.front.on('message', (msg, from) => {
      this.client = { port: from.port, address: from.address };
      this.back.send(msg, this.agentPort, '127.0.0.1');
    });
    this.back.on('message', (msg) => {
      const c = this.client;
      if (!c) return;
      this.replies++;
      this.front.send(hostile(this.rng, msg), c.port, c.address);
    });
    for (const s of [this.front, this.back]) s.on('error', () => undefined);
    await new Promise<void>((resolve) => this.front.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => this.back.bind(0, '127.0.0.1', resolve));
  }

  close(): void {
    this.front.close();
    this.back.close();
  }
}

describe('snmp fuzz', () => {
  it(`${VALUE_CASES} random varbinds through the kind's own reading of values and expectations (seed ${SEED})`, () => {
    const r = prng(SEED);
    const specs = [
      oidSchema.parse({ name: 'a', oid: '1.3.6.1', equals: 'active', values: { 1: 'active' } }),
      oidSchema.parse({ name: 'b', oid: '1.3.6.1', oneOf: [1, 'x', 3] }),
      oidSchema.parse({ name: 'c', oid: '1.3.6.1', min: -5, max: 5 }),
      oidSchema.parse({ name: 'd', oid: '1.3.6.1' }),
    ];
    for (let i = 0; i < VALUE_CASES; i++) {
      const vb: RawVarbind = { oid: '1.3.6.1', type: r.pick([1, 2, 3, 4, 5, 6, 64, 65, 66, 67, 68, 70, 99, -1]), value: randomValue(r) };
      const v = readValue(vb);
      expect(typeof v.text).toBe('string');
      expect(v.text.length).toBeLessThanOrEqual(257);
      if (v.number !== undefined) expect(Number.isFinite(v.number)).toBe(true);
      for (const s of specs) expect(typeof meets(s, v)).toBe('boolean');
    }
  });

  describe('hostile answers through the probe (net-snmp parses them)', () => {
    const agent = new SandboxSnmpAgent('127.0.0.1', 0, CREDENTIALS);
    beforeAll(async () => {
      await agent.start();
    });
    afterAll(async () => {
      await agent.stop();
    });

    for (const version of ['v2c', 'v3'] as const) {
      it(`${REPLY_CASES[version]} mutated, random and random-BER ${version} answers: every run a declared result, none hangs (seed ${SEED})`, async () => {
        const declared = new Set(KIND.snmp.reasons);
        const tally = new Map<string, number>();
        const escaped: string[] = [];
        const relays: HostileRelay[] = [];
        let runs = 0;
        const lane = async (n: number) => {
          const relay = new HostileRelay(prng(SEED + n + (version === 'v3' ? 1000 : 0)), agent.address.port);
          relays.push(relay);
          await relay.start();
          while (relay.replies < REPLY_CASES[version] / LANES) {
            runs++;
            let watchdog: NodeJS.Timeout | undefined;
            const r = await Promise.race([
              snmpProbe.run({
                ...targetsOf('snmp', `127.0.0.1:${relay.port}`),
                options: OPTIONS[version],
                ...budget(150),
                log: quietLog,
                secrets: SECRETS,
              }),
              new Promise<ProbeResult>((resolve) => {
                watchdog = setTimeout(
                  () => resolve({ ok: false, phases: {}, failure: { phase: 'hang', reason: 'HANG', message: 'no result in 10 s' } }),
                  10_000,
                );
              }),
            ]);
            clearTimeout(watchdog);
            const reason = r.ok ? 'ok' : (r.failure?.reason ?? 'none');
            tally.set(reason, (tally.get(reason) ?? 0) + 1);
            if (!r.ok) expect(declared, `${reason}: ${r.failure?.message}`).toContain(reason);
            if (r.failure?.message.startsWith('an answer net-snmp failed on')) escaped.push(r.failure.message);
          }
        };
        try {
          await Promise.all(Array.from({ length: LANES }, (_, n) => lane(n)));
        } finally {
          for (const relay of relays) relay.close();
        }
        const replies = relays.reduce((n, relay) => n + relay.replies, 0);
        console.log(
          `snmp fuzz ${version}: ${replies} hostile answers in ${runs} runs; results ${JSON.stringify(Object.fromEntries(tally))}; thrown outside net-snmp's own try: ${escaped.length}${escaped.length ? ` (${[...new Set(escaped)].slice(0, 5).join(' | ')})` : ''}`,
        );
        expect(replies).toBeGreaterThanOrEqual(REPLY_CASES[version]);
        expect(tally.get('HANG') ?? 0).toBe(0);
        expect(tally.get('internal') ?? 0).toBe(0);
        // The unchanged answers (about 4 %) come through as ok: the relay really is in the way of real answers.
        expect(tally.get('ok') ?? 0).toBeGreaterThan(0);
      }, 300_000);
    }
  });
});
