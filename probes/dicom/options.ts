// The dicom kind's options block (`dicom: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { tlsClient } from '../kit/options.js';
import { TRANSFER_SYNTAX_NAMES, type TransferSyntaxName } from './pdu.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'associate', 'echo', 'release'] as const;

/**
 * An application entity title (PS3.5, VR AE): 1 to 16 characters of the default repertoire
 * without backslash or control characters; leading and trailing spaces are not significant and
 * are dropped.
 */
const aeTitle = z
  .string({ error: 'expected an AE title (1 to 16 characters)' })
  .regex(/^[\x20-\x5b\x5d-\x7e]{1,16}$/, { message: 'expected an AE title: 1 to 16 printable ASCII characters, no backslash' })
  .transform((s) => s.trim())
  .refine((s) => s !== '', { message: 'expected an AE title that is not only spaces' });

export const options = z.strictObject({
  /** Our AE title: the PACS may only accept associations from AE titles it knows. */
  callingAeTitle: aeTitle.default('VAKT'),
  /** The AE title of the PACS (or modality worklist, router) we call. */
  calledAeTitle: aeTitle.default('ANY-SCP'),
  /** Transfer syntaxes proposed for the Verification presentation context, in order of preference. */
  transferSyntaxes: z
    .array(z.enum(TRANSFER_SYNTAX_NAMES as [TransferSyntaxName, ...TransferSyntaxName[]]))
    .min(1)
    .refine((xs) => new Set(xs).size === xs.length, { message: 'expected each transfer syntax once' })
    .default(['ImplicitVRLittleEndian', 'ExplicitVRLittleEndian']),
  /** DICOM TLS (PS3.15 B.1; port 2762 by convention): TLS from the start. */
  tls: z.union([z.literal(true), tlsClient]).optional(),
  ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
});
export type DicomOptions = z.output<typeof options>;
