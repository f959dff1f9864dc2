#!/usr/bin/env -S node --single-threaded-gc --max-semi-space-size=4
// Entry point: the compiled CLI lives in dist/ (built by `npm run build`, run by `prepare`).
import { main } from '../dist/agent/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 2;
  },
);
