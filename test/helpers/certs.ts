// Certificates made in the test: a CA and leaf certificates (valid, expired, wrong name).
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';

export interface Pem {
  cert: string;
  key: string;
}

function keyPair(): { priv: forge.pki.rsa.PrivateKey; pub: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const priv = forge.pki.privateKeyFromPem(privateKey);
  const pub = forge.pki.setRsaPublicKey(priv.n, priv.e);
  return { priv, pub, pem: privateKey };
}

let serial = 1;

function build(opts: {
  subject: string;
  issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey };
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
  altNames?: string[];
}): { cert: forge.pki.Certificate; priv: forge.pki.rsa.PrivateKey; pem: Pem } {
  const k = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.pub;
  cert.serialNumber = (serial++).toString(16).padStart(2, '0');
  cert.validity.notBefore = opts.notBefore;
  cert.validity.notAfter = opts.notAfter;
  const attrs = [{ name: 'commonName', value: opts.subject }];
  cert.setSubject(attrs);
  cert.setIssuer(opts.issuer ? opts.issuer.cert.subject.attributes : attrs);
  const ext: object[] = [{ name: 'basicConstraints', cA: opts.ca, critical: true }];
  if (opts.ca) ext.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  else {
    ext.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
    ext.push({
      name: 'subjectAltName',
      altNames: (opts.altNames ?? [opts.subject]).map((n) => (/^[\d.]+$/.test(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    });
  }
  cert.setExtensions(ext);
  cert.sign(opts.issuer ? opts.issuer.key : k.priv, forge.md.sha256.create());
  return { cert, priv: k.priv, pem: { cert: forge.pki.certificateToPem(cert), key: k.pem } };
}

const DAY = 86_400_000;

export interface TestPki {
  dir: string;
  caFile: string;
  ca: Pem;
  /** Valid for localhost / 127.0.0.1 / service.test, 90 days. */
  valid: Pem;
  /** Expired yesterday. */
  expired: Pem;
  /** Valid, but for other.test only. */
  wrongName: Pem;
  /** Valid, expires in 3 days. */
  expiringSoon: Pem;
  /** A client certificate signed by the CA (for mutual TLS). */
  client: Pem;
  clientCertFile: string;
  clientKeyFile: string;
}

export function makePki(): TestPki {
  const now = Date.now();
  const ca = build({ subject: 'vakt test CA', notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY), ca: true });
  const issuer = { cert: ca.cert, key: ca.priv };
  const leaf = (subject: string, from: number, to: number, altNames?: string[]) =>
    build({ subject, issuer, notBefore: new Date(from), notAfter: new Date(to), ca: false, ...(altNames ? { altNames } : {}) }).pem;
  const names = ['localhost', '127.0.0.1', 'service.test'];
  const dir = mkdtempSync(join(tmpdir(), 'vakt-pki-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.pem.cert);
  const client = leaf('vakt-probe', now - DAY, now + 90 * DAY);
  const clientCertFile = join(dir, 'client.pem');
  const clientKeyFile = join(dir, 'client-key.pem');
  writeFileSync(clientCertFile, client.cert);
  writeFileSync(clientKeyFile, client.key);
  return {
    dir,
    caFile,
    ca: ca.pem,
    valid: leaf('service.test', now - DAY, now + 90 * DAY, names),
    expired: leaf('service.test', now - 30 * DAY, now - DAY, names),
    wrongName: leaf('other.test', now - DAY, now + 90 * DAY, ['other.test']),
    expiringSoon: leaf('service.test', now - DAY, now + 3 * DAY, names),
    client,
    clientCertFile,
    clientKeyFile,
  };
}
