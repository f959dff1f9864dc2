// vakt's version, read once from package.json.
import { readFileSync } from 'node:fs';
import { packageRoot } from './paths.js';

export const VERSION: string = (JSON.parse(readFileSync(`${packageRoot}/package.json`, 'utf8')) as { version: string }).version;
