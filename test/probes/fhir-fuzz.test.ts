// Fuzzing the fhir probe with hostile FHIR servers. One real HTTP server on loopback answers case
// after case (the case travels in the probe's User-Agent): a CapabilityStatement, a token response
// and a read or search answer (Patient, searchset Bundle, OperationOutcome), each mutated by
// structure (values replaced by random JSON, keys removed, arrays where objects belong) and by
// bytes (truncated, flipped, garbage inserted, HTML, deep nesting), with random status codes and
// WWW-Authenticate headers, and secrets echoed back. Every run must resolve before its deadline
// with ok or a declared reason (never 'internal'), a message of sane length, finite values and
// no secret anywhere in the result. A second family feeds the exported parsers (OperationOutcome
// codes, search totals, SMART's token endpoint) 12,000 parsed documents directly. Seeded: rerun
// with FHIR_FUZZ_SEED=<seed>.
import { randomInt } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { fhirProbe, FHIR_ISSUE_CODES, oauthTokenUrl, outcomeCode, searchTotal } from '../../probes/fhir/probe.js';
import { parseJson } from '../../probes/kit/json.js';
import { ALL_FAILURE_REASONS } from '../../probes/kinds.js';
import type { ProbeResult } from '../../probes/types.js';
import { budget, BUSY_SLACK_MS, quietLog, targetsOf } from '../helpers/peers.js';
import { prng, type Rng } from '../helpers/prng.js';

const SEED = process.env.FHIR_FUZZ_SEED !== undefined ? Number(process.env.FHIR_FUZZ_SEED) : randomInt(2 ** 31);
const reproduce = `seed ${SEED} (rerun with FHIR_FUZZ_SEED=${SEED})`;
const PROBE_CASES = 10_000;
const PARSER_CASES = 12_000;
const CONCURRENCY = 8;
const MAX_MESSAGE = 1024;
const SECRETS = { client_secret: 'fuzz-client-S3cret', api_token: 'fuzz-api-T0ken-9f8e' };
const ISSUED = 'fuzz-issued-Acc3ss-T0ken';

const CAPABILITY = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  kind: 'instance',
  fhirVersion: '4.0.1',
  format: ['application/fhir+json', 'xml'],
  rest: [
    {
      mode: 'server',
      security: {
        extension: [{ url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: [{ url: 'token', valueUri: 'TOKEN_URL' }] }],
      },
      resource: [{ type: 'Patient', interaction: [{ code: 'read' }, { code: 'search-type' }] }],
    },
  ],
};
const PATIENT = { resourceType: 'Patient', id: 'p1', name: [{ family: 'Tolvansson', given: ['Tolvan'] }], identifier: [{ system: 'urn:x', value: '1' }] };
const BUNDLE = {
  resourceType: 'Bundle',
  type: 'searchset',
  total: 1,
  entry: [{ fullUrl: 'http://x/Patient/p1', resource: PATIENT, search: { mode: 'match' } }],
};
const OUTCOME = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found', diagnostics: 'Patient p1 is not known' }] };
const TOKEN = { access_token: ISSUED, token_type: 'Bearer', expires_in: 300, scope: 'system/Patient.read' };

function randomJson(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 3 ? 6 : 9)) {
    case 0:
      return null;
    case 1:
      return r.pick([0, -1, 1e308, -0, 2 ** 53 + 1, 0.5, 7]);
    case 2:
      return r.pick(['', 'x'.repeat(r.int(5000)), '4.0.1', 'R4', 'active', 'searchset', 'not-found', SECRETS.api_token, ISSUED, '\u0000\u202e', 'Patient']);
    case 3:
      return r.chance(0.5);
    case 4:
      return r.pick(FHIR_ISSUE_CODES);
    case 5:
      return 'http://127.0.0.1:1/token';
    case 6:
      return Array.from({ length: r.int(4) }, () => randomJson(r, depth + 1));
    case 7:
      return Object.fromEntries(
        Array.from({ length: r.int(4) }, (_, i) => [r.pick(['resourceType', 'issue', 'code', 'total', 'entry', 'url', `k${i}`]), randomJson(r, depth + 1)]),
      );
    default:
      return JSON.parse(JSON.stringify(r.pick([CAPABILITY, PATIENT, BUNDLE, OUTCOME, TOKEN]))) as unknown;
  }
}

/** A copy of `doc` with one to three values replaced, removed or retyped, somewhere in it. */
function mutateStructure(r: Rng, doc: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(doc)) as unknown;
  for (let n = 1 + r.int(3); n > 0; n--) {
    let node: unknown = copy;
    for (let d = 0; d < 6; d++) {
      if (node === null || typeof node !== 'object') break;
      const keys = Object.keys(node);
      if (keys.length === 0) break;
      const key = r.pick(keys);
      const child = (node as Record<string, unknown>)[key];
      if (child !== null && typeof child === 'object' && r.chance(0.6)) {
        node = child;
        continue;
      }
      if (r.chance(0.3) && !Array.isArray(node)) delete (node as Record<string, unknown>)[key];
      else (node as Record<string, unknown>)[key] = randomJson(r);
      break;
    }
  }
  return copy;
}

function mutateBytes(r: Rng, text: string): string {
  switch (r.int(6)) {
    case 0:
      return text.slice(0, r.int(text.length + 1));
    case 1: {
      const b = Buffer.from(text);
      for (let i = 0; i < 1 + r.int(8) && b.length > 0; i++) b[r.int(b.length)] = r.int(256);
      return b.toString('latin1');
    }
    case 2: {
      const at = r.int(text.length + 1);
      return text.slice(0, at) + r.bytes(1 + r.int(64)).toString('latin1') + text.slice(at);
    }
    case 3:
      return r.pick(['<html><body>502 Bad Gateway</body></html>', '', 'null', '[]', '"CapabilityStatement"', '{"resourceType":']);
    case 4:
      return '['.repeat(200 + r.int(5000)) + ']'.repeat(r.int(5200));
    default:
      return `{"resourceType":"OperationOutcome","issue":${'['.repeat(r.int(300))}{"code":"x"}${']'.repeat(r.int(300))}}`;
  }
}

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

function answer(r: Rng, doc: unknown, tokenUrl: string): Answer {
  let body = JSON.stringify(r.chance(0.55) ? doc : mutateStructure(r, doc)).replaceAll('TOKEN_URL', tokenUrl);
  if (r.chance(0.25)) body = mutateBytes(r, body);
  const status = r.chance(0.7) ? 200 : r.pick([201, 204, 302, 400, 401, 403, 404, 410, 429, 500, 503]);
  const headers: Record<string, string> = { 'content-type': r.pick(['application/fhir+json', 'application/json', 'text/html']) };
  if (r.chance(0.2))
    headers['www-authenticate'] = r.pick(['Bearer error="invalid_token"', `Bearer error="${SECRETS.api_token}"`, 'Bearer error=insufficient_scope', 'Basic']);
  return { status, body, headers };
}

interface Case {
  options: Record<string, unknown>;
  metadata: Answer;
  token: Answer;
  query: Answer;
}

function makeCase(seed: number, base: string): Case {
  const r = prng(seed);
  const tokenUrl = `${base.replace(/\/fhir$/, '')}/auth/token`;
  const options: Record<string, unknown> = r.chance(0.5)
    ? { read: 'Patient/p1' }
    : { search: 'Patient?identifier=urn:x|1', expect: { minTotal: r.int(2), maxTotal: 1 + r.int(3) } };
  const auth = r.int(4);
  if (auth < 2) Object.assign(options, { clientId: 'vakt', clientSecret: 'client_secret', ...(auth === 1 ? { tokenUrl } : {}) });
  else if (auth === 2) options.bearerToken = 'api_token';
  if (r.chance(0.1)) options.maxBodySize = '2KiB';
  return {
    options,
    metadata: answer(r, CAPABILITY, tokenUrl),
    token: answer(r, r.chance(0.8) ? TOKEN : { error: r.pick(['invalid_client', 'weird', SECRETS.client_secret]) }, tokenUrl),
    query: answer(r, r.pick([PATIENT, BUNDLE, OUTCOME, { ...OUTCOME, issue: [{ severity: 'fatal', code: SECRETS.api_token }] }]), tokenUrl),
  };
}

describe('fhir probe against fuzzed FHIR servers', () => {
  let server: Server;
  let base = '';
  const cases = new Map<string, Case>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      const c = cases.get(req.headers['user-agent'] ?? '');
      if (!c) return res.writeHead(500).end();
      const url = req.url ?? '';
      const a = url.endsWith('/metadata') ? c.metadata : url.startsWith('/auth/token') ? c.token : c.query;
      res.writeHead(a.status, a.headers);
      res.end(a.status === 204 ? undefined : a.body);
    });
    server.keepAliveTimeout = 100;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it(`${PROBE_CASES} cases: no crash, no hang, declared reasons, bounded messages, no secret`, { timeout: 600_000 }, async () => {
    onTestFailed(() => console.error(`fhir fuzz failed: ${reproduce}`));
    const reasons = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < PROBE_CASES; i = next++) {
        const agent = `fuzz-${i}`;
        const c = makeCase((SEED ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0, base);
        cases.set(agent, c);
        const started = performance.now();
        let r: ProbeResult;
        try {
          r = await fhirProbe.run({
            ...targetsOf('fhir', base),
            options: KIND_OPTIONS.fhir.parse({ ...c.options, userAgent: agent }),
            ...budget(3000),
            log: quietLog,
            secrets: SECRETS,
          });
        } catch (err) {
          throw new Error(`case ${i} threw (${reproduce}): ${String(err)}`);
        }
        cases.delete(agent);
        expect(performance.now() - started, `case ${i} (${reproduce})`).toBeLessThan(3000 + BUSY_SLACK_MS);
        if (r.failure) {
          expect(ALL_FAILURE_REASONS, `case ${i} (${reproduce})`).toContain(r.failure.reason);
          expect(r.failure.reason, `case ${i} (${reproduce}): ${r.failure.message}`).not.toBe('internal');
          expect(r.failure.message.length).toBeLessThan(MAX_MESSAGE);
        }
        for (const v of Object.values(r.values ?? {})) expect(Number.isFinite(v)).toBe(true);
        const text = JSON.stringify(r);
        // The issued token is a secret once the probe has it (a query ran after the login); before, it is any string.
        for (const s of [...Object.values(SECRETS), ...(r.phases.query !== undefined ? [ISSUED] : [])])
          expect(text, `case ${i} (${reproduce})`).not.toContain(s);
        if (r.info?.fhirIssue !== undefined) expect([...FHIR_ISSUE_CODES, 'other']).toContain(r.info.fhirIssue);
        const key = r.failure?.reason ?? 'ok';
        reasons.set(key, (reasons.get(key) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // The generator reaches the interesting outcomes, not only one kind of failure.
    for (const want of ['ok', 'protocol', 'fhir_capability', 'fhir_version', 'auth', 'http_status', 'expect_mismatch', 'resource_not_found'])
      expect(reasons.get(want) ?? 0, want).toBeGreaterThan(0);
  });
});

describe('fhir parsers on fuzzed documents', () => {
  it(`${PARSER_CASES} documents: codes from the closed set, totals finite and non-negative`, async () => {
    onTestFailed(() => console.error(`fhir parser fuzz failed: ${reproduce}`));
    const r = prng(SEED);
    for (let i = 0; i < PARSER_CASES; i++) {
      const doc = r.pick([CAPABILITY, PATIENT, BUNDLE, OUTCOME, TOKEN]);
      let text = JSON.stringify(mutateStructure(r, doc));
      if (r.chance(0.3)) text = mutateBytes(r, text);
      const parsed = await parseJson(text);
      const value = parsed.ok ? parsed.value : randomJson(r);
      const code = outcomeCode(value);
      if (code !== undefined) expect([...FHIR_ISSUE_CODES, 'other']).toContain(code);
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const total = searchTotal(value as Record<string, unknown>);
        expect(Number.isSafeInteger(total) && total >= 0, `case ${i} (${reproduce})`).toBe(true);
        const url = oauthTokenUrl(value as Record<string, unknown>);
        if (url !== undefined) expect(typeof url).toBe('string');
      }
    }
  });
});
