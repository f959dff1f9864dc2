// The agent's logger: pino JSON to stdout, every line scrubbed of secret values.
import { pino, type Logger } from 'pino';
import type { Redactor } from '../probes/kit/redact.js';

export type { Logger } from 'pino';

export function createLogger(level: string, redactor: Redactor, destination: pino.DestinationStream = process.stdout): Logger {
  return pino(
    {
      level,
      base: { svc: 'vakt' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: (s) => redactor.scrub(s) },
    },
    destination,
  );
}
