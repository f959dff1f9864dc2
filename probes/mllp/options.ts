// The mllp kind's options block (`mllp: {...}` in a check) and the types the probe reads.
import { z } from 'zod';
import { byteSize } from '../../config/fields.js';
import { tlsClient } from '../kit/options.js';

/** Phases a run can report, in order (here, not in probe.ts, so the kind's declaration does not load the probe code). */
export const PHASES = ['resolve', 'connect', 'tls', 'send', 'ack'] as const;

/** A field of the probe's HL7 message: no field separator, no segment or line breaks. */
const hl7Field = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^|\r\n]*$/, { message: 'expected no "|", carriage return or line break in an HL7 field' });

export const HL7_ACK_CODES = ['AA', 'AE', 'AR', 'CA', 'CE', 'CR'] as const;

export const options = z.strictObject({
  /** MSH-9, e.g. ADT^A08^ADT_A01; its second component is EVN-1. */
  messageType: hl7Field(64).min(3).default('ADT^A08^ADT_A01'),
  sendingApplication: hl7Field(180).default('VAKT'),
  sendingFacility: hl7Field(180).default(''),
  receivingApplication: hl7Field(180).default(''),
  receivingFacility: hl7Field(180).default(''),
  /** MSH-11: P production, T training, D debugging. */
  processingId: z.enum(['P', 'T', 'D']).default('T'),
  /** MSH-12. */
  version: hl7Field(16).min(1).default('2.5'),
  /** The synthetic test patient of the PID segment. */
  patient: z
    .strictObject({
      id: hl7Field(64).min(1).default('SYNTH0001'),
      name: hl7Field(128).min(1).default('TESTPATIENT^SYNTHETIC'),
    })
    .prefault({}),
  /** Extra segments appended after PV1, one line each (e.g. "OBR|1||..."). */
  segments: z
    .array(
      z
        .string()
        .max(4096)
        .regex(/^(?!MSH)[A-Z][A-Z0-9]{2}\|[^\r\n]*$/, { message: 'expected a segment such as "ZVK|1" (three-letter id, "|", no line breaks, not MSH)' }),
    )
    .max(50)
    .optional(),
  /** MSA-1 codes that make the run succeed. */
  expectAck: z.array(z.enum(HL7_ACK_CODES)).min(1).default(['AA', 'CA']),
  /** ERR-3 codes (table 0357) that make an AE/AR/CE/CR answer a success anyway (e.g. 202 for a heartbeat route a filter drops). */
  acceptErrorCodes: z
    .array(z.union([z.int().min(0).max(99999), z.string().regex(/^[0-9]{1,5}$/, { message: 'expected a numeric HL7 error code such as 202' })]))
    .min(1)
    .transform((xs) => xs.map((x) => String(x)))
    .optional(),
  /** Largest ACK frame read; a longer one fails the run (reason protocol). */
  maxFrame: byteSize.default(1024 * 1024),
  tls: z.union([z.literal(true), tlsClient]).optional(),
  ipFamily: z.enum(['auto', 'ip4', 'ip6']).default('auto'),
});
export type MllpOptions = z.output<typeof options>;
