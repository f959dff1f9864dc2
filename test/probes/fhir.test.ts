// The fhir probe against the sandbox's FHIR server (every fault switch) and against hostile HTTP
// peers: garbage, a truncated body, an endless body, a silent server, JSON nested past the bound,
// OperationOutcomes with unknown codes and echoed secrets.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import type { FhirOptions } from '../../probes/fhir/options.js';
import { fhirProbe, oauthTokenUrl, outcomeCode, searchTotal } from '../../probes/fhir/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { SANDBOX_PATIENT, SandboxFhirServer } from '../../sandbox/fhir.js';
import { parseConfig } from '../../config/loader.js';
import { budget, BUSY_SLACK_MS, closedPort, quietLog, targetsOf } from '../helpers/peers.js';

const CLIENT_ID = 'vakt-probe';
const CLIENT_SECRET = 'fhir-S3cret/with+plus';
const SECRETS = { client_secret: CLIENT_SECRET, api_token: 'static-Api-T0ken' };
const SEARCH = `Patient?identifier=${SANDBOX_PATIENT.identifier[0].system}|${SANDBOX_PATIENT.identifier[0].value}`;
const LOGIN = { clientId: CLIENT_ID, clientSecret: 'client_secret', scope: 'system/Patient.read' };

function probe(target: string, options: Record<string, unknown> = {}, ms = 3000): Promise<ProbeResult> {
  return fhirProbe.run({ ...targetsOf('fhir', target), options: KIND_OPTIONS.fhir.parse(options), ...budget(ms), log: quietLog, secrets: SECRETS });
}

describe('fhir options', () => {
  const parse = (o: Record<string, unknown>) => KIND_OPTIONS.fhir.safeParse(o);
  it('takes release names and version prefixes, R4 by default', () => {
    expect(KIND_OPTIONS.fhir.parse({}).fhirVersion).toBe('4.0');
    expect(KIND_OPTIONS.fhir.parse({ fhirVersion: 'r5' }).fhirVersion).toBe('5.0');
    expect(KIND_OPTIONS.fhir.parse({ fhirVersion: '4.0.1' }).fhirVersion).toBe('4.0.1');
    expect(parse({ fhirVersion: 'R9' }).success).toBe(false);
  });
  it('refuses read with search, totals without search, a token two ways, a client without its secret', () => {
    expect(parse({ read: 'Patient/1', search: 'Patient' }).success).toBe(false);
    expect(parse({ read: 'Patient/1', expect: { minTotal: 1 } }).success).toBe(false);
    expect(parse({ search: 'Patient', expect: { minTotal: 2, maxTotal: 1 } }).success).toBe(false);
    expect(parse({ bearerToken: 'a', clientId: 'x', clientSecret: 'b' }).success).toBe(false);
    expect(parse({ clientId: 'x' }).success).toBe(false);
    expect(parse({ scope: 'system/*.read' }).success).toBe(false);
    expect(parse({ read: 'patient/1' }).success).toBe(false);
    expect(parse({ read: 'Patient/../x' }).success).toBe(false);
    expect(parse({ search: 'Patient?identifier=a|b&_count=1' }).success).toBe(true);
  });
});

describe('fhir parsers', () => {
  it('reads an OperationOutcome issue code from a closed set', () => {
    expect(
      outcomeCode({
        resourceType: 'OperationOutcome',
        issue: [
          { severity: 'warning', code: 'informational' },
          { severity: 'error', code: 'not-found' },
        ],
      }),
    ).toBe('not-found');
    expect(outcomeCode({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'Patient 1912 is dead' }] })).toBe('other');
    expect(outcomeCode({ resourceType: 'OperationOutcome', issue: 'x' })).toBe('other');
    expect(outcomeCode({ resourceType: 'Patient' })).toBeUndefined();
    expect(outcomeCode([1])).toBeUndefined();
  });
  it('counts a search: total when given, else the matching entries', () => {
    expect(searchTotal({ total: 7, entry: [] })).toBe(7);
    expect(searchTotal({ entry: [{ search: { mode: 'match' } }, { search: { mode: 'include' } }, {}] })).toBe(2);
    expect(searchTotal({ total: -1 })).toBe(0);
  });
  it("finds SMART's token endpoint in the CapabilityStatement", () => {
    const ext = { url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: [{ url: 'token', valueUri: 'https://idp/token' }] };
    expect(oauthTokenUrl({ rest: [{ security: { extension: [ext] } }] })).toBe('https://idp/token');
    expect(oauthTokenUrl({ rest: [{ security: { extension: [{ ...ext, url: 'other' }] } }] })).toBeUndefined();
    expect(oauthTokenUrl({ rest: 'x' })).toBeUndefined();
  });
});

describe('fhir probe against the sandbox FHIR server', () => {
  const server = new SandboxFhirServer({ host: '127.0.0.1', port: 0, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, slowMs: 1500 });
  let base = '';
  beforeAll(async () => {
    await server.start();
    base = server.baseUrl;
  });
  afterAll(async () => {
    await server.stop();
  });

  it('metadata only: ok, phases resolve-free, the version reported', async () => {
    await server.setMode('ok');
    const r = await probe(base);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(Object.keys(r.phases)).toEqual(['connect', 'metadata']);
    expect(r.info?.fhirVersion).toBe('4.0.1');
    expect(r.values?.http_status_code).toBe(200);
  });

  it('SMART backend services: token from the statement, a search that finds exactly one', async () => {
    const r = await probe(base, { ...LOGIN, search: SEARCH, expect: { minTotal: 1, maxTotal: 1 } });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['connect', 'metadata', 'token', 'query']);
    expect(r.values?.fhir_search_total).toBe(1);
  });

  it('a read of the patient: ok; a read of another: resource_not_found with the issue code', async () => {
    expect((await probe(base, { ...LOGIN, read: `Patient/${SANDBOX_PATIENT.id}` })).ok).toBe(true);
    const r = await probe(base, { ...LOGIN, read: 'Patient/nobody' });
    expect(r.failure).toMatchObject({ phase: 'query', reason: 'resource_not_found', message: 'Patient/nobody was not found (status 404, issue not-found)' });
    expect(r.info?.fhirIssue).toBe('not-found');
  });

  it('a read typed otherwise than expected: expect_mismatch', async () => {
    const r = await probe(base, { ...LOGIN, read: `Patient/${SANDBOX_PATIENT.id}`, expect: { resourceType: 'Practitioner' } });
    expect(r.failure).toMatchObject({ reason: 'expect_mismatch', message: 'the read of Patient returned a Patient, expected Practitioner' });
  });

  it('no token: auth (401, issue login, invalid_token), the token never in a message', async () => {
    const r = await probe(base, { search: SEARCH, bearerToken: 'api_token' });
    expect(r.failure).toMatchObject({ phase: 'query', reason: 'auth', message: 'the Patient search was refused: status 401, issue login (invalid_token)' });
    expect(r.info?.fhirIssue).toBe('login');
  });

  it('a wrong client secret: auth at the token endpoint, invalid_client', async () => {
    const r = await fhirProbe.run({
      ...targetsOf('fhir', base),
      options: KIND_OPTIONS.fhir.parse({ ...LOGIN, search: SEARCH }),
      ...budget(3000),
      log: quietLog,
      secrets: { client_secret: 'wrong' },
    });
    expect(r.failure).toMatchObject({ phase: 'token', reason: 'auth' });
    expect(r.info?.authCode).toBe('invalid_client');
  });

  it('fault version: fhir_version with both versions named', async () => {
    await server.setMode('version');
    const r = await probe(base);
    expect(r.failure).toMatchObject({ phase: 'metadata', reason: 'fhir_version', message: 'the server speaks FHIR 3.0.2, expected 4.0 (R4)' });
    expect((await probe(base, { fhirVersion: 'STU3' })).ok).toBe(true);
  });

  it('fault error: http_status with the OperationOutcome code, never its text', async () => {
    await server.setMode('error');
    const r = await probe(base, { ...LOGIN, search: SEARCH });
    expect(r.failure).toMatchObject({ reason: 'http_status', message: 'the Patient search: status 500, expected 2xx, issue exception' });
    expect(r.info?.fhirIssue).toBe('exception');
  });

  it('fault missing: the search finds 0 (expect_mismatch), the read is resource_not_found', async () => {
    await server.setMode('missing');
    const r = await probe(base, { ...LOGIN, search: SEARCH, expect: { minTotal: 1 } });
    expect(r.failure).toMatchObject({ reason: 'expect_mismatch', message: 'the Patient search found 0, expected at least 1' });
    expect(r.values?.fhir_search_total).toBe(0);
  });

  it('fault auth: an expired token is auth', async () => {
    await server.setMode('auth');
    const r = await probe(base, { ...LOGIN, search: SEARCH });
    expect(r.failure).toMatchObject({ reason: 'auth' });
    expect(r.info?.fhirIssue).toBe('expired');
  });

  it('fault slow: ok with a slow metadata phase; a short budget is timeout in metadata', async () => {
    await server.setMode('slow');
    const r = await probe(base, {}, 4000);
    expect(r.ok).toBe(true);
    expect(r.phases.metadata).toBeGreaterThan(1.2);
    const t = await probe(base, {}, 600);
    expect(t.failure).toMatchObject({ phase: 'metadata', reason: 'timeout' });
  });

  it('fault down: refused in connect', async () => {
    await server.setMode('down');
    const r = await probe(base);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    await server.setMode('ok');
    expect((await probe(base)).ok).toBe(true);
  });
});

describe("the demo's patient-api check", () => {
  it('succeeds against the sandbox FHIR server with the demo secret, and fails with its faults', async () => {
    const file = new URL('../../config/default.yaml', import.meta.url);
    const config = parseConfig(readFileSync(file, 'utf8'), file.pathname);
    const check = config.checks.find((c) => c.name === 'patient-api');
    expect(check?.kind).toBe('fhir');
    const secret = readFileSync(new URL('../../sandbox/secrets/idp-client-secret', import.meta.url), 'utf8').replace(/\r?\n$/, '');
    const server = new SandboxFhirServer({ host: '127.0.0.1', port: 0, clientId: CLIENT_ID, clientSecret: secret });
    await server.start();
    try {
      const run = () =>
        fhirProbe.run({
          ...targetsOf('fhir', server.baseUrl),
          options: (check as unknown as { options: FhirOptions }).options,
          ...budget(3000),
          log: quietLog,
          secrets: { client_secret: secret },
        });
      const ok = await run();
      expect(ok.failure).toBeUndefined();
      expect(ok.values?.fhir_search_total).toBe(1);
      await server.setMode('missing');
      expect((await run()).failure).toMatchObject({ reason: 'expect_mismatch', message: 'the Patient search found 0, expected at least 1' });
    } finally {
      await server.stop();
    }
  });
});

describe('fhir probe against hostile peers', () => {
  let server: Server;
  let port = 0;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const sockets = new Set<Socket>();
  const capability = { resourceType: 'CapabilityStatement', status: 'active', fhirVersion: '4.0.1', format: ['json'] };
  beforeAll(async () => {
    server = createServer((req, res) => handler(req, res));
    server.on('connection', (s) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  const base = () => `http://127.0.0.1:${port}/fhir`;
  const answer = (status: number, body: string) => (handler = (_req, res) => res.writeHead(status, { 'content-type': 'application/fhir+json' }).end(body));

  it('garbage metadata is protocol', async () => {
    answer(200, '<html>maintenance</html>');
    expect((await probe(base())).failure).toMatchObject({ reason: 'protocol', message: 'the metadata is not a JSON object' });
  });

  it('another resource as metadata, and a statement offering only XML, are fhir_capability', async () => {
    answer(200, JSON.stringify({ resourceType: 'Conformance', fhirVersion: '4.0.1' }));
    expect((await probe(base())).failure).toMatchObject({ reason: 'fhir_capability', message: 'the metadata is a Conformance, not a CapabilityStatement' });
    answer(200, JSON.stringify({ ...capability, format: ['xml', 'application/fhir+xml'] }));
    expect((await probe(base())).failure).toMatchObject({
      reason: 'fhir_capability',
      message: 'the CapabilityStatement offers no JSON format (format: xml, application/fhir+xml)',
    });
    answer(200, JSON.stringify({ ...capability, status: 'retired' }));
    expect((await probe(base())).failure?.message).toBe("the CapabilityStatement's status is retired, expected active");
  });

  it('a version that is no version is not quoted', async () => {
    answer(200, JSON.stringify({ ...capability, fhirVersion: '<script>4.0' }));
    expect((await probe(base())).failure?.message).toBe('the server speaks FHIR (an unreadable version), expected 4.0 (R4)');
  });

  it("an issue code is the probe's own word from a closed set: a short token that is part of it does not hide it", async () => {
    handler = (req, res) => {
      const body = req.url?.endsWith('/metadata')
        ? capability
        : { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics: 'token in use: in' }] };
      res.writeHead(req.url?.endsWith('/metadata') ? 200 : 400, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(body));
    };
    const r = await fhirProbe.run({
      ...targetsOf('fhir', base()),
      options: KIND_OPTIONS.fhir.parse({ bearerToken: 'api_token', read: 'Patient/1' }),
      ...budget(3000),
      log: quietLog,
      secrets: { api_token: 'in' },
    });
    expect(r.failure?.reason).toBe('http_status');
    expect(r.info?.fhirIssue).toBe('invalid');
    expect(r.failure?.message).not.toContain('in use');
  });

  it('a truncated body is reset or protocol, never ok', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': '1000' });
      res.write(JSON.stringify(capability).slice(0, 40));
      setTimeout(() => res.socket?.destroy(), 20);
    };
    const r = await probe(base());
    expect(r.ok).toBe(false);
    expect(['reset', 'protocol']).toContain(r.failure?.reason);
  });

  it('an endless body stops at maxBodySize: body_too_large', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (res.write(chunk));
      };
      res.on('drain', pump);
      pump();
    };
    const r = await probe(base(), { maxBodySize: '256KiB' });
    expect(r.failure).toMatchObject({ phase: 'metadata', reason: 'body_too_large' });
  });

  it('JSON nested past the bound is protocol, refused before parsing', async () => {
    answer(200, '['.repeat(100_000) + ']'.repeat(100_000));
    expect((await probe(base())).failure).toMatchObject({ reason: 'protocol' });
  });

  it('a silent server is timeout in metadata, at the deadline', async () => {
    handler = () => undefined;
    const started = performance.now();
    const r = await probe(base(), {}, 700);
    expect(r.failure).toMatchObject({ phase: 'metadata', reason: 'timeout' });
    expect(performance.now() - started).toBeLessThan(700 + BUSY_SLACK_MS);
  });

  it('a search answered with a non-searchset Bundle, or an OperationOutcome with a made-up code', async () => {
    handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify(req.url?.endsWith('/metadata') ? capability : { resourceType: 'Bundle', type: 'history', total: 3 }));
    };
    expect((await probe(base(), { search: 'Patient' })).failure?.message).toBe(
      'the Patient search returned a Bundle of type history, expected a searchset Bundle',
    );
    handler = (req, res) => {
      const meta = req.url?.endsWith('/metadata');
      res.writeHead(meta ? 200 : 503, { 'content-type': 'application/fhir+json' });
      res.end(
        JSON.stringify(
          meta
            ? capability
            : { resourceType: 'OperationOutcome', issue: [{ severity: 'fatal', code: `echo ${SECRETS.api_token}`, diagnostics: SECRETS.api_token }] },
        ),
      );
    };
    const r = await probe(base(), { search: 'Patient', bearerToken: 'api_token' });
    expect(r.failure).toMatchObject({ reason: 'http_status', message: 'the Patient search: status 503, expected 2xx, issue other' });
    expect(r.info?.fhirIssue).toBe('other');
    expect(JSON.stringify(r)).not.toContain(SECRETS.api_token);
  });

  it('a token endpoint on http:// for an https:// server is never sent the secret', async () => {
    const r = await fhirProbe.run({
      ...targetsOf('fhir', `https://127.0.0.1:${await closedPort()}/fhir`),
      options: KIND_OPTIONS.fhir.parse({ ...LOGIN, tokenUrl: 'http://127.0.0.1:1/token' }),
      ...budget(2000),
      log: quietLog,
      secrets: SECRETS,
    });
    // The metadata already fails (nothing listens); what matters is the connect failure, not a token sent.
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
  });
});
