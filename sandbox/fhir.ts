// The sandbox's FHIR server: a small FHIR R4 endpoint under /fhir/R4 for `vakt demo` and the tests
// of the fhir kind. It serves a CapabilityStatement (with SMART oauth-uris naming its own token
// endpoint), Patient reads and a Patient search by identifier or family as searchset Bundles, and
// issues bearer tokens to one client at POST /auth/token (client_credentials, HTTP Basic).
// Requests without a token it issued are refused (401, OperationOutcome `login`). Fault switches
// (`mode`):
//   ok       as above
//   slow     every answer `slowMs` late (1.5 s by default)
//   error    500 with an OperationOutcome (issue `exception`) for reads and searches
//   version  the CapabilityStatement says FHIR 3.0.2 (STU3): a server "upgraded" backwards
//   missing  the patient is gone: reads answer 404, OperationOutcome `not-found`; searches find 0
//   auth     every token is refused (401, OperationOutcome `expired`)
//   down     the port closes (refused)
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export const FHIR_MODES = ['ok', 'slow', 'error', 'version', 'missing', 'auth', 'down'] as const;
export type FhirMode = (typeof FHIR_MODES)[number];
export const DEFAULT_FHIR_SLOW_MS = 1500;
/** The demo's patient: a Swedish test personal identity number (Skatteverket's test series). */
export const SANDBOX_PATIENT = {
  resourceType: 'Patient',
  id: 'tolvan',
  identifier: [{ system: 'urn:oid:1.2.752.129.2.1.3.1', value: '191212121212' }],
  name: [{ family: 'Tolvansson', given: ['Tolvan'] }],
} as const;
const BASE = '/fhir/R4';

export interface FhirServerOptions {
  host: string;
  port: number;
  clientId: string;
  clientSecret: string;
  slowMs?: number;
}

export class SandboxFhirServer {
  mode: FhirMode = 'ok';
  slowMs: number;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly tokens = new Set<string>();
  private port: number;

  constructor(private readonly opts: FhirServerOptions) {
    this.slowMs = opts.slowMs ?? DEFAULT_FHIR_SLOW_MS;
    this.port = opts.port;
  }

  get address(): { host: string; port: number } {
    return { host: this.opts.host, port: this.port };
  }

  /** The FHIR base URL (the check's target). */
  get baseUrl(): string {
    return `http://${this.opts.host}:${this.port}${BASE}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.opts.host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async setMode(mode: FhirMode): Promise<void> {
    this.mode = mode;
    if (mode === 'down') await this.stop();
    else if (!this.server) await this.start();
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 64 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      const answer = () => this.route(req, Buffer.concat(chunks).toString(), res);
      if (this.mode === 'slow') setTimeout(answer, this.slowMs);
      else answer();
    });
  }

  private route(req: IncomingMessage, body: string, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const send = (status: number, doc: unknown, type = 'application/fhir+json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(JSON.stringify(doc));
    };
    const outcome = (status: number, code: string, text: string) =>
      send(status, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] });
    if (req.method === 'POST' && url.pathname === '/auth/token') return this.token(req, body, send);
    if (req.method !== 'GET' || !url.pathname.startsWith(`${BASE}/`)) return outcome(404, 'not-found', 'no such endpoint');
    const path = url.pathname.slice(BASE.length + 1);
    if (path === 'metadata') return send(200, this.capability());
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (!this.tokens.has(token)) {
      res.setHeader('www-authenticate', 'Bearer realm="fhir", error="invalid_token"');
      return outcome(401, 'login', 'a bearer token is required');
    }
    if (this.mode === 'auth') {
      res.setHeader('www-authenticate', 'Bearer realm="fhir", error="invalid_token"');
      return outcome(401, 'expired', 'the token has expired');
    }
    if (this.mode === 'error') return outcome(500, 'exception', 'the patient index is not available');
    const present = this.mode !== 'missing';
    if (path === `Patient/${SANDBOX_PATIENT.id}`) return present ? send(200, SANDBOX_PATIENT) : outcome(404, 'not-found', 'Patient is not known');
    if (path.startsWith('Patient/')) return outcome(404, 'not-found', 'Patient is not known');
    if (path === 'Patient') {
      const identifier = url.searchParams.get('identifier');
      const family = url.searchParams.get('family');
      const want = SANDBOX_PATIENT.identifier[0];
      const match =
        present &&
        (identifier === null || identifier === want.value || identifier === `${want.system}|${want.value}`) &&
        (family === null || family.toLowerCase() === 'tolvansson');
      return send(200, {
        resourceType: 'Bundle',
        type: 'searchset',
        total: match ? 1 : 0,
        ...(match ? { entry: [{ fullUrl: `${this.baseUrl}/Patient/${SANDBOX_PATIENT.id}`, resource: SANDBOX_PATIENT, search: { mode: 'match' } }] } : {}),
      });
    }
    return outcome(404, 'not-supported', 'resource type not supported');
  }

  private capability(): unknown {
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      kind: 'instance',
      date: '2026-01-01',
      software: { name: 'vakt sandbox FHIR server' },
      fhirVersion: this.mode === 'version' ? '3.0.2' : '4.0.1',
      format: ['application/fhir+json', 'json'],
      rest: [
        {
          mode: 'server',
          security: {
            service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
            extension: [
              {
                url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                extension: [{ url: 'token', valueUri: `http://${this.opts.host}:${this.port}/auth/token` }],
              },
            ],
          },
          resource: [{ type: 'Patient', interaction: [{ code: 'read' }, { code: 'search-type' }], searchParam: [{ name: 'identifier', type: 'token' }] }],
        },
      ],
    };
  }

  private token(req: IncomingMessage, body: string, send: (status: number, doc: unknown, type?: string) => void): void {
    const form = new URLSearchParams(body);
    const enc = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);
    const basic = `Basic ${Buffer.from(`${enc(this.opts.clientId)}:${enc(this.opts.clientSecret)}`).toString('base64')}`;
    if (form.get('grant_type') !== 'client_credentials') return send(400, { error: 'unsupported_grant_type' }, 'application/json');
    if (req.headers.authorization !== basic) return send(401, { error: 'invalid_client' }, 'application/json');
    const token = randomBytes(24).toString('base64url');
    // A few live tokens at most: the demo asks for one per run.
    if (this.tokens.size >= 64) this.tokens.clear();
    this.tokens.add(token);
    send(200, { access_token: token, token_type: 'Bearer', expires_in: 300, scope: form.get('scope') ?? 'system/Patient.read' }, 'application/json');
  }
}
