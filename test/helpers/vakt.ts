// Runs the CLI from the TypeScript sources (no build needed): node --import tsx test/helpers/vakt.ts ARGS
import { main } from '../../agent/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 2;
  },
);
