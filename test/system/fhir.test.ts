// The fhir probe against a real FHIR R4 server from npm, none of it written here
// (test/system/fhir-server.ts: @asymmetrik/node-fhir-server-core's HTTP server, CapabilityStatement,
// SMART scope checks and OperationOutcomes, over Medplum's FhirRouter and in-memory repository for
// reads and searches), started by the test on a free port of 127.0.0.1 as a child process: its
// metadata, a read, searches with their totals, a missing patient, wrong and under-scoped tokens,
// a SMART client_credentials login, a wrong version expectation, the server frozen (SIGSTOP: it
// accepts but never answers) and stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { fhirProbe } from '../../probes/fhir/probe.js';
import type { ProbeResult } from '../../probes/types.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { watchDaemon, waitForLine } from './helpers.js';

const TOKEN = 'sys-Fhir-T0ken-42';
const CLIENT_ID = 'vakt-probe';
const CLIENT_SECRET = 'sys-client-S3cret';
const SECRETS = { api_token: TOKEN, wrong_token: 'not-the-token', client_secret: CLIENT_SECRET, wrong_secret: 'nope' };
const MRN = 'urn:oid:1.2.752.129.2.1.3.1|191212121212';
const SERVER = fileURLToPath(new URL('./fhir-server.ts', import.meta.url));

const live = new Set<ChildProcess>();

interface FhirServer {
  child: ChildProcess;
  base: string;
  patient: string;
}

/** The real server on a free port; `scope` is what its tokens may do (SMART scopes). */
async function startServer(scope = 'user/Patient.read'): Promise<FhirServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], {
    // node-fhir-server-core skips authentication and scope checks under NODE_ENV=test (vitest's).
    env: { ...process.env, NODE_ENV: 'production', FHIR_TOKEN: TOKEN, FHIR_CLIENT_ID: CLIENT_ID, FHIR_CLIENT_SECRET: CLIENT_SECRET, FHIR_SCOPE: scope },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  watchDaemon(child, live);
  const line = await waitForLine(child, /^\{"port":\d+/, 90_000);
  const { port, patient } = JSON.parse(line) as { port: number; patient: string };
  return { child, base: `http://127.0.0.1:${port}/4_0_1`, patient };
}

function probe(base: string, options: Record<string, unknown> = {}, ms = 8000): Promise<ProbeResult> {
  return fhirProbe.run({ ...targetsOf('fhir', base), options: KIND_OPTIONS.fhir.parse(options), ...budget(ms), log: quietLog, secrets: SECRETS });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  await exited;
}

afterAll(async () => {
  await Promise.all([...live].map(stop));
});

describe('fhir probe against node-fhir-server-core over Medplum', () => {
  let server: FhirServer;
  beforeAll(async () => {
    server = await startServer();
  });

  it("the server's own CapabilityStatement: R4 (4.0.1), active, application/fhir+json", async () => {
    const r = await probe(server.base);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.info?.fhirVersion).toBe('4.0.1');
    expect(r.phases.metadata).toBeGreaterThan(0);
  });

  it('a read with the bearer token: the Patient, ok', async () => {
    const r = await probe(server.base, { read: `Patient/${server.patient}`, bearerToken: 'api_token' });
    expect(r.failure).toBeUndefined();
    expect(r.values?.http_status_code).toBe(200);
  });

  it("searches: Medplum's identifier search finds 1, family 2 (total, with _count=1 paging)", async () => {
    const one = await probe(server.base, { search: `Patient?identifier=${MRN}`, expect: { minTotal: 1, maxTotal: 1 }, bearerToken: 'api_token' });
    expect(one.failure).toBeUndefined();
    expect(one.values?.fhir_search_total).toBe(1);
    const two = await probe(server.base, { search: 'Patient?family=Andersson&_count=1', expect: { minTotal: 2 }, bearerToken: 'api_token' });
    expect(two.failure).toBeUndefined();
    expect(two.values?.fhir_search_total).toBe(2);
    const none = await probe(server.base, { search: 'Patient?family=Nobody', expect: { minTotal: 1 }, bearerToken: 'api_token' });
    expect(none.failure).toMatchObject({ phase: 'query', reason: 'expect_mismatch', message: 'the Patient search found 0, expected at least 1' });
  });

  it("a missing patient: Medplum's OperationOutcome not-found is resource_not_found", async () => {
    const r = await probe(server.base, { read: 'Patient/no-such-patient', bearerToken: 'api_token' });
    expect(r.failure).toMatchObject({
      phase: 'query',
      reason: 'resource_not_found',
      message: 'Patient/no-such-patient was not found (status 404, issue not-found)',
    });
    expect(r.info?.fhirIssue).toBe('not-found');
  });

  it('a wrong token: refused by the server (401), reason auth, the token in no message', async () => {
    const r = await probe(server.base, { read: `Patient/${server.patient}`, bearerToken: 'wrong_token' });
    expect(r.failure).toMatchObject({ phase: 'query', reason: 'auth' });
    expect(r.failure?.message).toMatch(/^the read of Patient was refused: status 401/);
    expect(JSON.stringify(r)).not.toContain(SECRETS.wrong_token);
  });

  it("SMART backend services: the token endpoint from the statement's oauth-uris, then the search", async () => {
    const login = { clientId: CLIENT_ID, clientSecret: 'client_secret', scope: 'user/Patient.read' };
    const r = await probe(server.base, { ...login, search: `Patient?identifier=${MRN}`, expect: { minTotal: 1 } });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['connect', 'metadata', 'token', 'query']);
    const refused = await probe(server.base, { ...login, clientSecret: 'wrong_secret', search: 'Patient' });
    expect(refused.failure).toMatchObject({ phase: 'token', reason: 'auth' });
    expect(refused.info?.authCode).toBe('invalid_client');
  });

  it('a wrong version expectation: fhir_version', async () => {
    const r = await probe(server.base, { fhirVersion: 'R5' });
    expect(r.failure).toMatchObject({ phase: 'metadata', reason: 'fhir_version', message: 'the server speaks FHIR 4.0.1, expected 5.0 (R5)' });
  });

  it('the server frozen (SIGSTOP: the kernel accepts, nothing answers): timeout in metadata', async () => {
    server.child.kill('SIGSTOP');
    try {
      const r = await probe(server.base, {}, 1500);
      expect(r.failure).toMatchObject({ phase: 'metadata', reason: 'timeout' });
    } finally {
      server.child.kill('SIGCONT');
    }
    expect((await probe(server.base)).ok).toBe(true);
  });

  it('the server stopped: refused in connect', async () => {
    await stop(server.child);
    const r = await probe(server.base);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
  });
});

describe("fhir probe against the server's SMART scope check", () => {
  it('a token whose scopes do not cover Patient: the server refuses it with its OperationOutcome (forbidden)', async () => {
    const server = await startServer('user/Observation.read');
    try {
      const r = await probe(server.base, { read: `Patient/${server.patient}`, bearerToken: 'api_token' });
      expect(r.failure).toMatchObject({ phase: 'query', reason: 'auth' });
      expect(r.info?.fhirIssue).toBe('forbidden');
    } finally {
      await stop(server.child);
    }
  });
});
