// Option schemas shared by several kinds: the TLS client block and the name of a secret.
import { z } from 'zod';
import { duration } from '../../config/fields.js';

/** How long before a certificate expires a run turns degraded (cert_expiring), unless the check's `tls.expiryWarning` says otherwise. */
export const EXPIRY_WARNING = '14d';
export const EXPIRY_WARNING_MS = 14 * 86_400_000;

export const tlsClient = z.strictObject({
  /** SNI and the name the certificate must match; defaults to the target host. */
  serverName: z.string().min(1).optional(),
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  insecureSkipVerify: z.boolean().default(false),
  minVersion: z.enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']).optional(),
  /** A certificate expiring within this time makes the run degraded (reason cert_expiring). */
  expiryWarning: duration.prefault(EXPIRY_WARNING),
});
export type TlsClientOptions = z.output<typeof tlsClient>;

/** What a secret's name looks like (an entry of the check's `secrets`). */
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The name of an entry of the check's `secrets` (the value itself is never written here). */
export const secretName = z
  .string({ error: "expected the name of an entry of the check's secrets" })
  .regex(SECRET_NAME, { message: "expected the name of an entry of the check's secrets ([A-Za-z_][A-Za-z0-9_]*)" });

/** A zod error option: `message` when the key is missing, zod's own message otherwise (a required key of one variant). */
export const whenMissing = (message: string) => ({ error: (iss: { input?: unknown }) => (iss.input === undefined ? message : undefined) });
