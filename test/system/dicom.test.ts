// The dicom probe against DCMTK from Debian (package dcmtk), started by the test itself on free
// ports of 127.0.0.1, never a system service: storescp (a storage SCP that accepts Verification;
// with --refuse it rejects every association; with a configuration profile without Verification
// it accepts associations but not the Verification context; under DICOM TLS with a certificate of
// the test's own CA), and dcmqrscp (an archive whose AE table decides which called AE titles
// exist, and whose MaxAssociations rejects one association too many). A stopped SCP refuses; a
// SIGSTOPped one accepts TCP (the kernel completes the handshake) and never answers.
// DCMTK's own echoscu is the independent witness: for every peer, it must agree with the probe's
// verdict, and where it names a rejection, with the probe's reason.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIND_OPTIONS } from '../../probes/kinds.js';
import { dicomProbe } from '../../probes/dicom/probe.js';
import { associateRq, PduReader, TRANSFER_SYNTAX_UIDS, VERIFICATION_SOP_CLASS } from '../../probes/dicom/pdu.js';
import type { ProbeResult } from '../../probes/types.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { budget, quietLog, targetsOf } from '../helpers/peers.js';
import { freePort, requireTool, tryRun, waitFor } from './helpers.js';

const children = new Set<ChildProcess>();
let dir = '';
let pki: TestPki;

function probe(port: number, options: Record<string, unknown> = {}, ms = 5000): Promise<ProbeResult> {
  return dicomProbe.run({ ...targetsOf('dicom', `127.0.0.1:${port}`), options: KIND_OPTIONS.dicom.parse(options), ...budget(ms), log: quietLog, secrets: {} });
}

/** DCMTK's echoscu against the same peer: its exit status and what it printed. */
async function echoscu(port: number, args: string[] = []): Promise<{ ok: boolean; output: string }> {
  const r = await tryRun('echoscu', ['-ta', '3', '-to', '3', '-td', '3', ...args, '127.0.0.1', String(port)], 30_000);
  return { ok: r.code === 0, output: `${r.stdout}${r.stderr}` };
}

/** Whether something accepts TCP connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface Daemon {
  port: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** A DCMTK SCP on a free port (its port is the last argument), ready once it accepts connections. */
async function scp(cmd: string, args: (port: number) => string[]): Promise<Daemon> {
  const port = await freePort();
  const child = spawn(cmd, args(port), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(
    `${cmd} listening on ${port}`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${cmd} exited ${child.exitCode}: ${output}`);
      return listening(port);
    },
    15_000,
    50,
  );
  return {
    port,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      children.delete(child);
    },
  };
}

/** A dcmqrscp archive with the AE titles of `aeTitles`, at most `maxAssociations` at a time (a process per association; its --single-process mode ends after one). */
async function dcmqrscp(name: string, aeTitles: string[], maxAssociations = 16): Promise<Daemon> {
  const db = join(dir, `${name}-db`);
  mkdirSync(db, { recursive: true });
  const conf = join(dir, `${name}.cfg`);
  return scp('dcmqrscp', (port) => {
    writeFileSync(
      conf,
      [
        `NetworkTCPPort = ${port}`,
        'MaxPDUSize = 16384',
        `MaxAssociations = ${maxAssociations}`,
        'HostTable BEGIN',
        'HostTable END',
        'VendorTable BEGIN',
        'VendorTable END',
        'AETable BEGIN',
        ...aeTitles.map((ae) => `${ae} ${db} RW (10, 64mb) ANY`),
        'AETable END',
        '',
      ].join('\n'),
    );
    return ['-c', conf, '--fork', String(port)];
  });
}

beforeAll(async () => {
  await requireTool('storescp', ['--version'], 'dcmtk');
  await requireTool('echoscu', ['--version'], 'dcmtk');
  dir = mkdtempSync(join(tmpdir(), 'vakt-dicom-'));
  pki = makePki();
});

afterAll(() => {
  // Each test stops its own SCPs; these are what a failed test left running.
  for (const c of children) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

describe('dicom probe against storescp', () => {
  it('accepts Verification: ok, every phase timed, DCMTK named; echoscu agrees', async () => {
    const d = await scp('storescp', (port) => ['--aetitle', 'STORESCP', String(port)]);
    try {
      const r = await probe(d.port, { calledAeTitle: 'STORESCP' });
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(Object.keys(r.phases)).toEqual(['connect', 'associate', 'echo', 'release']);
      expect(r.info?.dicomImplementationVersionName).toMatch(/^OFFIS_DCMTK_\d+$/);
      expect(r.info?.dicomImplementationClassUid).toMatch(/^1\.2\.276\.0\.7230010\.3\./);
      expect(r.info?.dicomEchoStatus).toBe('0x0000');
      // storescp prefers explicit VR little endian when it is proposed at all.
      expect(r.info?.dicomTransferSyntax).toBe('ExplicitVRLittleEndian');
      const implicitOnly = await probe(d.port, { transferSyntaxes: ['ImplicitVRLittleEndian'] });
      expect(implicitOnly.info?.dicomTransferSyntax).toBe('ImplicitVRLittleEndian');
      expect((await echoscu(d.port, ['-aec', 'STORESCP'])).ok).toBe(true);
    } finally {
      await d.stop();
    }
  });

  it('--refuse: dicom_rejected (no reason given, 1/1/1); echoscu rejected too', async () => {
    const d = await scp('storescp', (port) => ['--refuse', String(port)]);
    try {
      const r = await probe(d.port);
      expect(r.failure).toMatchObject({ phase: 'associate', reason: 'dicom_rejected' });
      expect(r.failure?.message).toContain('(A-ASSOCIATE-RJ result 1 (permanent), source 1 (service user), reason 1)');
      const witness = await echoscu(d.port);
      expect(witness.ok).toBe(false);
      expect(witness.output).toContain('Reason: No Reason');
    } finally {
      await d.stop();
    }
  });

  it('a profile without Verification: dicom_no_context (abstract syntax not supported); echoscu finds no context either', async () => {
    const cfg = join(dir, 'no-verification.cfg');
    writeFileSync(
      cfg,
      [
        '[[TransferSyntaxes]]',
        '[Uncompressed]',
        'TransferSyntax1 = LittleEndianExplicit',
        'TransferSyntax2 = LittleEndianImplicit',
        '[[PresentationContexts]]',
        '[CTOnly]',
        'PresentationContext1 = CTImageStorage\\Uncompressed',
        '[[Profiles]]',
        '[NoVerification]',
        'PresentationContexts = CTOnly',
        '',
      ].join('\n'),
    );
    const d = await scp('storescp', (port) => ['-xf', cfg, 'NoVerification', String(port)]);
    try {
      const r = await probe(d.port);
      expect(r.failure).toMatchObject({ phase: 'associate', reason: 'dicom_no_context' });
      expect(r.failure?.message).toContain('result 3 (abstract syntax not supported)');
      const witness = await echoscu(d.port);
      expect(witness.ok).toBe(false);
      expect(witness.output).toContain('No Acceptable Presentation Contexts');
    } finally {
      await d.stop();
    }
  });

  it('stopped: refused in connect; echoscu cannot connect either', async () => {
    const d = await scp('storescp', (port) => [String(port)]);
    await d.stop();
    const r = await probe(d.port);
    expect(r.failure).toMatchObject({ phase: 'connect', reason: 'refused' });
    const witness = await echoscu(d.port);
    expect(witness.ok).toBe(false);
    expect(witness.output).toContain('Connection refused');
  });

  it('hung (SIGSTOP): TCP accepted by the kernel, no answer: a timeout in associate; echoscu times out too', async () => {
    const d = await scp('storescp', (port) => [String(port)]);
    try {
      d.child.kill('SIGSTOP');
      const r = await probe(d.port, {}, 1500);
      expect(r.failure).toMatchObject({ phase: 'associate', reason: 'timeout', message: 'no answer to the association request before the deadline' });
      expect(r.phases.connect).toBeGreaterThan(0);
      const witness = await echoscu(d.port);
      expect(witness.ok).toBe(false);
      // Woken up, the same SCP answers again: the timeout was the hang, not the probe.
      d.child.kill('SIGCONT');
      await waitFor('storescp answering after SIGCONT', async () => (await probe(d.port, {}, 1000)).ok, 20_000, 200);
    } finally {
      await d.stop();
    }
  });
});

describe('dicom probe against dcmqrscp (an archive with an AE table)', () => {
  it('its own AE title: ok; an unknown called AE title: dicom_rejected_called_ae (1/1/7); echoscu agrees on both', async () => {
    const d = await dcmqrscp('archive', ['PACS_ARCHIVE']);
    try {
      const r = await probe(d.port, { callingAeTitle: 'VAKT', calledAeTitle: 'PACS_ARCHIVE' });
      expect(r.failure).toBeUndefined();
      expect((await echoscu(d.port, ['-aet', 'VAKT', '-aec', 'PACS_ARCHIVE'])).ok).toBe(true);

      const wrong = await probe(d.port, { calledAeTitle: 'OLD_ARCHIVE' });
      expect(wrong.failure).toMatchObject({ phase: 'associate', reason: 'dicom_rejected_called_ae' });
      expect(wrong.failure?.message).toBe(
        'association rejected, called AE title not recognised (A-ASSOCIATE-RJ result 1 (permanent), source 1 (service user), reason 7): it does not answer to "OLD_ARCHIVE"',
      );
      const witness = await echoscu(d.port, ['-aec', 'OLD_ARCHIVE']);
      expect(witness.ok).toBe(false);
      expect(witness.output).toContain('Reason: Called AE Title Not Recognized');
    } finally {
      await d.stop();
    }
  });

  it('its association table full (MaxAssociations 1, one held open): dicom_busy (2/3/2); echoscu rejected alike', async () => {
    const d = await dcmqrscp('busy', ['PACS_ARCHIVE'], 1);
    let holder: Socket | undefined;
    try {
      // One association, accepted and held open: the archive's only one.
      holder = connect(d.port, '127.0.0.1');
      holder.on('error', () => undefined);
      const reader = new PduReader();
      const answered = new Promise<number>((resolve) =>
        holder!.on('data', (chunk: Buffer) => {
          reader.push(chunk);
          const p = reader.next();
          if (p) resolve(p.type);
        }),
      );
      holder.write(
        associateRq({
          calledAe: 'PACS_ARCHIVE',
          callingAe: 'HOLDER',
          contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [TRANSFER_SYNTAX_UIDS.ImplicitVRLittleEndian] }],
        }),
      );
      expect(await answered).toBe(2); // A-ASSOCIATE-AC

      const r = await probe(d.port, { calledAeTitle: 'PACS_ARCHIVE' });
      expect(r.failure).toMatchObject({ phase: 'associate', reason: 'dicom_busy' });
      expect(r.failure?.message).toBe(
        'association rejected, local limit exceeded (A-ASSOCIATE-RJ result 2 (transient), source 3 (service provider, presentation), reason 2)',
      );
      const witness = await echoscu(d.port, ['-aec', 'PACS_ARCHIVE']);
      expect(witness.ok).toBe(false);
      expect(witness.output).toContain('Reason: Local Limit Exceeded');

      // The held association gone, the archive takes the probe's again.
      holder.destroy();
      await waitFor('dcmqrscp accepting again', async () => (await probe(d.port, { calledAeTitle: 'PACS_ARCHIVE' }, 2000)).ok, 30_000, 250);
    } finally {
      holder?.destroy();
      await d.stop();
    }
  });
});

describe('dicom probe over DICOM TLS against storescp', () => {
  let d: Daemon;
  beforeAll(async () => {
    const key = join(dir, 'scp-key.pem');
    const cert = join(dir, 'scp.pem');
    writeFileSync(key, pki.valid.key);
    writeFileSync(cert, pki.valid.cert);
    // Mutual TLS as DICOM TLS has it: storescp requires a client certificate of the CA (its default, -rc).
    d = await scp('storescp', (port) => ['+tls', key, cert, '+cf', pki.caFile, '--aetitle', 'TLS_PACS', String(port)]);
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('with our client certificate and the CA: ok, the handshake timed, the certificate reported; echoscu agrees', async () => {
    const r = await probe(d.port, {
      calledAeTitle: 'TLS_PACS',
      tls: { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, serverName: 'service.test' },
    });
    expect(r.failure).toBeUndefined();
    expect(Object.keys(r.phases)).toEqual(['connect', 'tls', 'associate', 'echo', 'release']);
    expect(r.info?.certSubject).toContain('CN=service.test');
    expect(r.info?.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    const witness = await echoscu(d.port, ['-aec', 'TLS_PACS', '+tls', pki.clientKeyFile, pki.clientCertFile, '+cf', pki.caFile]);
    expect(witness.ok, witness.output).toBe(true);
  });

  it('without the CA: tls_handshake in tls; echoscu (which verifies too) fails', async () => {
    const r = await probe(d.port, { calledAeTitle: 'TLS_PACS', tls: { certFile: pki.clientCertFile, keyFile: pki.clientKeyFile } });
    expect(r.failure).toMatchObject({ phase: 'tls', reason: 'tls_handshake' });
    expect((await echoscu(d.port, ['-aec', 'TLS_PACS', '+tls', pki.clientKeyFile, pki.clientCertFile])).ok).toBe(false);
  });

  it('without a client certificate: refused by storescp, tls_handshake; anonymous echoscu refused too', async () => {
    const r = await probe(d.port, { calledAeTitle: 'TLS_PACS', tls: { caFile: pki.caFile, serverName: 'service.test' } });
    expect(r.ok).toBe(false);
    // TLS 1.3 (which storescp negotiates) finishes the client's handshake before the server checks
    // the client certificate: the refusal, an alert, arrives where the association's answer should.
    expect(r.failure).toMatchObject({ phase: 'associate', reason: 'tls_handshake' });
    expect(r.failure?.message).toContain('CERTIFICATE_REQUIRED');
    expect(r.phases.tls).toBeGreaterThan(0);
    expect((await echoscu(d.port, ['-aec', 'TLS_PACS', '+tla', '+cf', pki.caFile])).ok).toBe(false);
  });
});
