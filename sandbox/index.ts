// The sandbox: a small simulated hospital network on loopback for `vakt demo` and for tests,
// with switches that inject each incident's fault. Control API (JSON):
//   GET  /faults                     every switch and its current setting
//   POST /faults/<path>/<mode>       fw-a|fw-b: pass|drop|reject|reset|overload
//   POST /faults/policy/<open|closed> open the port that must stay blocked (a policy regression)
//   POST /faults/<resolver>/<mode>   ns1|ns2: ok|timeout|servfail|wrong|nxdomain|refused|stale
//   POST /faults/login/<mode>        the Cosmic web login: ok|slow|down|reject
//   POST /faults/idp/<mode>          the identity provider: ok|slow|invalid_client|down
//   POST /faults/ldap/<mode>         the directory: ok|slow|locked|expired|down
//   POST /faults/mllp/<mode>         the HL7 interface engine: ok|stall|error|reject|slow|down
//   POST /faults/queue/<mode>        the integration broker's lab.results queue and its API: ok|stall|noconsumer|slow|down|html
//   POST /faults/ntp/<mode>          the domain controller's time service: ok|drift|skew|unsync|kod|down
//   POST /faults/radius/<mode>       the clinical devices' Wi-Fi login (RADIUS): ok|reject|challenge|slow|silent|badauth
//   POST /faults/fhir/<mode>         the patient data API (FHIR R4): ok|slow|error|version|missing|auth|down
//   POST /faults/amqp/<mode>         the integration broker's AMQP port (the canary): ok|slow|stall|blocked|auth|noqueue|down
//   POST /faults/dicom/<mode>        the PACS (DICOM): ok|reject|busy|nocontext|abort|status|silent|slow|down
//   POST /faults/snmp/<mode>         firewall member fw-a's SNMP agent: ok|standby|linkdown|silent|community|nouser
//   POST /faults/reset               everything back to normal
//   POST /changes/login-update       the scripted change of incident 2 (sandbox/change.ts); GET /changes
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AMQP_MODES, DEFAULT_AMQP_SLOW_MS, SandboxAmqpBroker, type AmqpMode } from './amqp.js';
import { DEFAULT_DICOM_SLOW_MS, DICOM_MODES, SandboxPacs, type DicomMode } from './dicom.js';
import { DEFAULT_FHIR_SLOW_MS, FHIR_MODES, SandboxFhirServer, type FhirMode } from './fhir.js';
import { DNS_MODES, SandboxResolver, type DnsMode } from './dns.js';
import { FIREWALL_MODES, FirewallPath, type FirewallMode } from './firewall.js';
import { DEFAULT_LDAP_SLOW_MS, LDAP_MODES, SandboxDirectory, sandboxEntries, type LdapMode } from './ldap.js';
import { DEFAULT_MLLP_SLOW_MS, MLLP_MODES, SandboxInterfaceEngine, type MllpMode } from './mllp.js';
import { NTP_MODES, SandboxTimeServer, type NtpMode } from './ntp.js';
import { DEFAULT_RADIUS_SLOW_MS, RADIUS_MODES, SandboxRadiusServer, type RadiusMode } from './radius.js';
import { QUEUE_MODES, SandboxBroker, type QueueMode, type QueueSpec } from './queue.js';
import { SandboxSnmpAgent, SNMP_MODES, type SnmpMode } from './snmp.js';
import { ScriptedChange, type ChangeTiming } from './change.js';
import {
  DEFAULT_SLOW_MS,
  DEFAULT_UPDATE_MS,
  IDP_MODES,
  LOGIN_MODES,
  loginFaults,
  startLoginApp,
  type IdpMode,
  type LoginApp,
  type LoginFaults,
  type LoginMode,
} from './login.js';

/** The DNS ports are UDP and TCP both. login and loginTls serve the same login app and identity provider. ldap is the directory (ldap://, StartTLS). mllp is the HL7 interface engine. queue is the integration broker's management API (RabbitMQ's is 15672), amqp its AMQP 0-9-1 port (RabbitMQ's is 5672). */
export const SANDBOX_PORTS = {
  control: 9465,
  ehr: 16443,
  fwA: 16001,
  fwB: 16002,
  blocked: 16010,
  ns1: 15353,
  ns2: 15354,
  login: 16080,
  loginTls: 16444,
  ldap: 16389,
  mllp: 16575,
  queue: 16672,
  ntp: 16123,
  amqp: 16567,
  dicom: 16104,
  radius: 16812,
  snmp: 16161,
  fhir: 16180,
} as const;
export type SandboxPorts = { [K in keyof typeof SANDBOX_PORTS]: number };

export interface Sandbox {
  host: string;
  ports: SandboxPorts;
  controlUrl: string;
  paths: Record<string, FirewallPath>;
  /** The internal resolvers ns1 and ns2 (zone region.sandbox). */
  resolvers: Record<string, SandboxResolver>;
  /** The Cosmic web login and identity provider over HTTP, and the same over HTTPS (sandbox certificate). */
  login: LoginApp;
  loginTls: LoginApp;
  /** The login and identity provider fault switches, shared by both. */
  loginFaults: LoginFaults;
  /** The directory (dc=region,dc=sandbox) and its fault switch (`directory.mode`, `directory.slowMs`). */
  directory: SandboxDirectory;
  /** The HL7 interface engine (MLLP) and its fault switch (`mllp.mode`, `mllp.slowMs`). */
  mllp: SandboxInterfaceEngine;
  /** The integration broker (a simulated RabbitMQ management API) and its fault switch (`broker.mode`). */
  broker: SandboxBroker;
  /** The domain controller's time service (NTP over UDP) and its fault switch (`time.mode`). */
  time: SandboxTimeServer;
  /** The integration broker's AMQP 0-9-1 side (queue vakt.canary) and its fault switch (`amqp.mode`, `amqp.slowMs`). */
  amqp: SandboxAmqpBroker;
  /** The PACS (a DICOM Verification SCP, AE title SANDBOX_PACS) and its fault switch (`pacs.mode`, `pacs.slowMs`). */
  pacs: SandboxPacs;
  /** The clinical devices' Wi-Fi login (RADIUS over UDP) and its fault switch (`radius.mode`, `radius.slowMs`). */
  radius: SandboxRadiusServer;
  /** Firewall member fw-a's SNMP agent (v2c and v3, UDP) and its fault switch (`snmp.mode`). */
  snmp: SandboxSnmpAgent;
  /** The patient data API (FHIR R4 under /fhir/R4) and its fault switch (`fhir.mode`, `fhir.slowMs`). */
  fhir: SandboxFhirServer;
  /** The scripted change (incident 2): set `change.agentUrl` to the agent it announces planned work to. */
  change: ScriptedChange;
  setPolicy(open: boolean): Promise<void>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** A folder of the sandbox's files, next to the sources (or next to dist/ once built), found by a file it holds. */
function sandboxDir(sub: string, marker: string, what: string): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = [resolve(here, sub), resolve(here, '../../sandbox', sub)];
  for (const c of candidates) {
    try {
      readFileSync(resolve(c, marker));
      return c;
    } catch {
      // try the next location
    }
  }
  // The production container image leaves the demo's certificates and secrets out on purpose
  // (Dockerfile, target `demo`): say where the demo is instead of a bare "not found".
  throw new Error(
    `vakt demo: the sandbox's ${what} are not part of this install (looked in ${candidates.join(', ')}). ` +
      'The production image carries no demo certificates or secrets; run the demo image instead: ' +
      'docker build --target demo -t vakt:demo . && docker run --rm -p 9464:9464 vakt:demo ' +
      '(or `npm start` in a clone of the repository).',
  );
}

/** The sandbox's certificate folder. */
export function sandboxCertDir(): string {
  return sandboxDir('certs', 'ca.pem', 'certificates');
}

/** The demo's credentials: the probe account's password and the identity provider's client secret. */
export const SANDBOX_USER = 'svc-vakt-probe';
export const SANDBOX_CLIENT_ID = 'vakt-probe';
export { SANDBOX_QUEUE_USER } from './queue.js';
export { CANARY_QUEUE, SANDBOX_AMQP_USER } from './amqp.js';

/**
 * The sandbox's secrets folder (demo-only values, see sandbox/secrets/README.md): the login app
 * reads them from the same files that config/default.yaml refers to, so the two cannot disagree.
 */
export function sandboxSecretDir(): string {
  return sandboxDir('secrets', 'probe-password', 'secrets');
}

/** A secret file's content without its final newline, as the config loader reads `{file: PATH}`. */
function readSecret(dir: string, name: string): string {
  return readFileSync(resolve(dir, name), 'utf8').replace(/\r?\n$/, '');
}

export interface SandboxOptions {
  host?: string;
  ports?: Partial<SandboxPorts>;
  /** How long a `slow` login or token request takes (default 4 s). */
  slowLoginMs?: number;
  /** How long a `slow` directory bind takes (default 3 s). */
  slowLdapMs?: number;
  /** How long a `slow` HL7 ACK takes (default 3 s). */
  slowMllpMs?: number;
  /** The broker's queues and their rates (default: orders.out 1/s and lab.results 2/s, drained at 5/s). */
  queues?: readonly QueueSpec[];
  /** How fast lab.results drains in `slow` mode (default 1/s). */
  slowQueueDrainPerSecond?: number;
  /** How late a message reaches its queue in the AMQP broker's `slow` mode (default 3 s). */
  slowAmqpMs?: number;
  /** How long a `slow` DICOM association takes (default 3 s). */
  slowDicomMs?: number;
  /** How long a `slow` RADIUS answer takes (default 2.5 s). */
  slowRadiusMs?: number;
  /** How late a `slow` FHIR server answers (default 1.5 s). */
  slowFhirMs?: number;
  /** How much longer a login takes after the `update` (default 150 ms). */
  updateLoginMs?: number;
  /** The scripted change's timing (default: update after 15 s, planned work ended after 40 s). */
  changeTiming?: ChangeTiming;
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const host = opts.host ?? '127.0.0.1';
  const want = { ...SANDBOX_PORTS, ...opts.ports };
  const certs = sandboxCertDir();
  const secrets = sandboxSecretDir();
  const closers: (() => Promise<void>)[] = [];
  try {
    const pem = { cert: readFileSync(resolve(certs, 'ehr.pem')), key: readFileSync(resolve(certs, 'ehr-key.pem')) };
    const ehr = createHttpsServer(pem, (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('Cosmic EHR front: ok\n');
    });
    const ehrPort = await listen(ehr, host, want.ehr);
    closers.push(() => closeServer(ehr));

    const upstream = () => ({ host, port: ehrPort });
    const paths: Record<string, FirewallPath> = {
      'fw-a': new FirewallPath('fw-a', host, want.fwA, upstream),
      'fw-b': new FirewallPath('fw-b', host, want.fwB, upstream),
    };
    for (const p of Object.values(paths)) {
      await p.start();
      closers.push(() => p.stop());
    }

    // The internal resolvers of incident 3 (Region Kronoberg), UDP and TCP on one port each.
    const resolvers: Record<string, SandboxResolver> = {
      ns1: new SandboxResolver('ns1', host, want.ns1),
      ns2: new SandboxResolver('ns2', host, want.ns2),
    };
    for (const r of Object.values(resolvers)) {
      await r.start();
      closers.push(() => r.stop());
    }

    // The login of incident 2 (Region Uppsala): the Cosmic web login and the identity provider,
    // over HTTP and over HTTPS, with one set of fault switches.
    const faults = loginFaults(opts.slowLoginMs ?? DEFAULT_SLOW_MS, opts.updateLoginMs ?? DEFAULT_UPDATE_MS);
    const loginOptions = {
      host,
      user: SANDBOX_USER,
      password: readSecret(secrets, 'probe-password'),
      clients: { [SANDBOX_CLIENT_ID]: readSecret(secrets, 'idp-client-secret') },
      faults,
      recordRequests: false,
    };
    const login = await startLoginApp({ ...loginOptions, port: want.login });
    closers.push(() => login.close());
    const loginTls = await startLoginApp({ ...loginOptions, port: want.loginTls, tls: pem });
    closers.push(() => loginTls.close());

    // The directory of the same story: a domain controller whose binds get slow.
    const directory = new SandboxDirectory({
      host,
      port: want.ldap,
      entries: sandboxEntries(SANDBOX_USER, loginOptions.password),
      tls: pem,
      slowMs: opts.slowLdapMs ?? DEFAULT_LDAP_SLOW_MS,
    });
    await directory.start();
    closers.push(() => directory.stop());

    // The HL7 interface engine of incident 5: an integration that stops acknowledging.
    const mllp = new SandboxInterfaceEngine(host, want.mllp, opts.slowMllpMs ?? DEFAULT_MLLP_SLOW_MS);
    await mllp.start();
    closers.push(() => mllp.stop());

    // The integration broker of the same story: lab results that stop draining.
    const broker = new SandboxBroker({
      host,
      port: want.queue,
      password: readSecret(secrets, 'queue-password'),
      ...(opts.queues ? { queues: opts.queues } : {}),
      ...(opts.slowQueueDrainPerSecond !== undefined ? { slowDrainPerSecond: opts.slowQueueDrainPerSecond } : {}),
    });
    await broker.start();
    closers.push(() => broker.stop());

    // The domain controller's time service: a clock that drifts breaks every Kerberos login.
    const time = new SandboxTimeServer(host, want.ntp);
    await time.start();
    closers.push(() => time.stop());

    // The same integration broker over AMQP: the canary's way through it (publish, confirm, deliver).
    const amqp = new SandboxAmqpBroker({
      host,
      port: want.amqp,
      password: readSecret(secrets, 'canary-password'),
      slowMs: opts.slowAmqpMs ?? DEFAULT_AMQP_SLOW_MS,
    });
    await amqp.start();
    closers.push(() => amqp.stop());

    // The image archive radiology sends to: a PACS that stops taking associations.
    const pacs = new SandboxPacs({ host, port: want.dicom, slowMs: opts.slowDicomMs ?? DEFAULT_DICOM_SLOW_MS });
    await pacs.start();
    closers.push(() => pacs.stop());
    // The clinical devices' Wi-Fi login: a RADIUS server for the same probe account.
    const radius = new SandboxRadiusServer({
      host,
      port: want.radius,
      secret: readSecret(secrets, 'radius-shared-secret'),
      user: SANDBOX_USER,
      password: loginOptions.password,
      slowMs: opts.slowRadiusMs ?? DEFAULT_RADIUS_SLOW_MS,
    });
    await radius.start();
    closers.push(() => radius.stop());
    // Firewall member fw-a's management agent: its HA state and uplink over SNMP.
    const snmp = new SandboxSnmpAgent(host, want.snmp, {
      community: readSecret(secrets, 'snmp-community'),
      authKey: readSecret(secrets, 'snmp-auth-key'),
      privKey: readSecret(secrets, 'snmp-priv-key'),
    });
    await snmp.start();
    closers.push(() => snmp.stop());
    // The patient data API (FHIR R4), with its own SMART token endpoint for the demo's client.
    const fhir = new SandboxFhirServer({
      host,
      port: want.fhir,
      clientId: SANDBOX_CLIENT_ID,
      clientSecret: readSecret(secrets, 'idp-client-secret'),
      slowMs: opts.slowFhirMs ?? DEFAULT_FHIR_SLOW_MS,
    });
    await fhir.start();
    closers.push(() => fhir.stop());

    // The port that policy says must stay closed; "open" starts a listener on it.
    let blocked: NetServer | undefined;
    const blockedSockets = new Set<Socket>();
    // A concrete port even when asked for "any": the probe must have something to knock on.
    let blockedPort = want.blocked === 0 ? await freePort(host) : want.blocked;
    const setPolicy = async (open: boolean) => {
      if (open && !blocked) {
        blocked = createNetServer((s) => {
          blockedSockets.add(s);
          s.on('error', () => s.destroy());
          s.once('close', () => blockedSockets.delete(s));
          s.end('RFB 003.008\n');
        });
        blockedPort = await listen(blocked, host, blockedPort);
      } else if (!open && blocked) {
        const b = blocked;
        blocked = undefined;
        for (const s of blockedSockets) s.destroy();
        await closeServer(b);
      }
    };
    closers.push(() => setPolicy(false));

    const change = new ScriptedChange(faults, opts.changeTiming);
    closers.push(() => Promise.resolve(change.stop()));
    const reset = async () => {
      await change.cancel();
      for (const p of Object.values(paths)) await p.setMode('pass');
      for (const r of Object.values(resolvers)) r.setMode('ok');
      faults.login = 'ok';
      faults.idp = 'ok';
      await directory.setMode('ok');
      await mllp.setMode('ok');
      await broker.setMode('ok');
      time.setMode('ok');
      await amqp.setMode('ok');
      await pacs.setMode('ok');
      radius.setMode('ok');
      snmp.setMode('ok');
      await fhir.setMode('ok');
      await setPolicy(false);
    };

    const switches: Record<string, Switch> = {
      login: { modes: LOGIN_MODES, get: () => faults.login, set: (m) => (faults.login = m as LoginMode) },
      idp: { modes: IDP_MODES, get: () => faults.idp, set: (m) => (faults.idp = m as IdpMode) },
      ldap: { modes: LDAP_MODES, get: () => directory.mode, set: (m) => directory.setMode(m as LdapMode) },
      mllp: { modes: MLLP_MODES, get: () => mllp.mode, set: (m) => mllp.setMode(m as MllpMode) },
      queue: { modes: QUEUE_MODES, get: () => broker.mode, set: (m) => broker.setMode(m as QueueMode) },
      ntp: { modes: NTP_MODES, get: () => time.mode, set: (m) => time.setMode(m as NtpMode) },
      amqp: { modes: AMQP_MODES, get: () => amqp.mode, set: (m) => amqp.setMode(m as AmqpMode) },
      dicom: { modes: DICOM_MODES, get: () => pacs.mode, set: (m) => pacs.setMode(m as DicomMode) },
      radius: { modes: RADIUS_MODES, get: () => radius.mode, set: (m) => radius.setMode(m as RadiusMode) },
      snmp: { modes: SNMP_MODES, get: () => snmp.mode, set: (m) => snmp.setMode(m as SnmpMode) },
      fhir: { modes: FHIR_MODES, get: () => fhir.mode, set: (m) => fhir.setMode(m as FhirMode) },
    };
    const control = createHttpServer((req, res) => {
      const route = (req.url ?? '/').split('?')[0];
      void (
        route === '/changes' || route?.startsWith('/changes/')
          ? handleChange(req.method ?? 'GET', route, change)
          : handleControl(req.method ?? 'GET', req.url ?? '/', paths, resolvers, switches, setPolicy, reset, () => blocked !== undefined)
      )
        // A switch that fails (e.g. the blocked port is taken) answers 500 instead of crashing the demo.
        .catch((err: unknown): [number, unknown] => [500, { error: err instanceof Error ? err.message : String(err) }])
        .then(([status, body]) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(`${JSON.stringify(body, null, 2)}\n`);
        });
      req.resume();
    });
    const controlPort = await listen(control, host, want.control);
    closers.push(() => closeServer(control));

    const ports: SandboxPorts = {
      control: controlPort,
      ehr: ehrPort,
      fwA: (paths['fw-a'] as FirewallPath).address.port,
      fwB: (paths['fw-b'] as FirewallPath).address.port,
      blocked: blockedPort,
      ns1: (resolvers.ns1 as SandboxResolver).address.port,
      ns2: (resolvers.ns2 as SandboxResolver).address.port,
      login: login.port,
      loginTls: loginTls.port,
      ldap: directory.address.port,
      mllp: mllp.address.port,
      queue: broker.address.port,
      ntp: time.address.port,
      amqp: amqp.address.port,
      dicom: pacs.address.port,
      radius: radius.address.port,
      snmp: snmp.address.port,
      fhir: fhir.address.port,
    };
    return {
      host,
      ports,
      controlUrl: `http://${host}:${controlPort}`,
      paths,
      resolvers,
      login,
      loginTls,
      loginFaults: faults,
      time,
      amqp,
      pacs,
      radius,
      snmp,
      fhir,
      directory,
      mllp,
      broker,
      change,
      setPolicy,
      reset,
      stop: async () => {
        for (const close of closers.reverse()) await close().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}

/** A fault switch of one service: its modes, its current one, and how to change it. */
interface Switch {
  modes: readonly string[];
  get(): string;
  set(mode: string): unknown;
}

/** The control API's /changes: the scripted change and where it is. */
async function handleChange(method: string, route: string, change: ScriptedChange): Promise<[number, unknown]> {
  if (route === '/changes' && method === 'GET') return [200, { 'login-update': change.state }];
  if (route !== '/changes/login-update') return [404, { error: 'try POST /changes/login-update' }];
  if (method !== 'POST') return [405, { error: 'use POST to start the change' }];
  const r = await change.start();
  return 'status' in r ? [r.status, { error: r.error }] : [202, r];
}

async function handleControl(
  method: string,
  url: string,
  paths: Record<string, FirewallPath>,
  resolvers: Record<string, SandboxResolver>,
  switches: Record<string, Switch>,
  setPolicy: (open: boolean) => Promise<void>,
  reset: () => Promise<void>,
  policyOpen: () => boolean,
): Promise<[number, unknown]> {
  const state = () => ({
    paths: Object.fromEntries(Object.entries(paths).map(([n, p]) => [n, p.mode])),
    policy: policyOpen() ? 'open' : 'closed',
    dns: Object.fromEntries(Object.entries(resolvers).map(([n, r]) => [n, r.mode])),
    ...Object.fromEntries(Object.entries(switches).map(([n, sw]) => [n, sw.get()])),
    modes: {
      paths: FIREWALL_MODES,
      policy: ['open', 'closed'],
      dns: DNS_MODES,
      ...Object.fromEntries(Object.entries(switches).map(([n, sw]) => [n, sw.modes])),
    },
  });
  const parts = url.split('?')[0]?.split('/').filter(Boolean) ?? [];
  if (parts[0] !== 'faults') return [404, { error: 'try GET /faults' }];
  if (method === 'GET' && parts.length === 1) return [200, state()];
  if (method !== 'POST') return [405, { error: 'use POST to change a fault' }];
  if (parts.length === 2 && parts[1] === 'reset') {
    await reset();
    return [200, state()];
  }
  const [, target, mode] = parts;
  if (target === 'policy' && (mode === 'open' || mode === 'closed')) {
    await setPolicy(mode === 'open');
    return [200, state()];
  }
  // Own keys only: /faults/constructor/pass must not reach Object.prototype.
  const sw = target && Object.hasOwn(switches, target) ? switches[target] : undefined;
  if (sw && sw.modes.includes(mode ?? '')) {
    await sw.set(mode as string);
    return [200, state()];
  }
  const path = target && Object.hasOwn(paths, target) ? paths[target] : undefined;
  if (path && (FIREWALL_MODES as readonly string[]).includes(mode ?? '')) {
    await path.setMode(mode as FirewallMode);
    return [200, state()];
  }
  const resolver = target && Object.hasOwn(resolvers, target) ? resolvers[target] : undefined;
  if (resolver && (DNS_MODES as readonly string[]).includes(mode ?? '')) {
    resolver.setMode(mode as DnsMode);
    return [200, state()];
  }
  return [400, { error: `unknown fault ${target ?? ''}/${mode ?? ''}`, ...state() }];
}

async function freePort(host: string): Promise<number> {
  const s = createNetServer();
  const port = await listen(s, host, 0);
  await closeServer(s);
  return port;
}

function listen(server: HttpServer | HttpsServer | NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

function closeServer(server: HttpServer | HttpsServer | NetServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    if ('closeAllConnections' in server) server.closeAllConnections();
  });
}
