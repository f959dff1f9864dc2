// Where the package lives, whether running from TypeScript sources or from dist/.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  for (let i = 0; i < 5; i++) {
    if (existsSync(resolve(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`package.json not found above ${start}`);
}

export const packageRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
export const defaultConfigFile = resolve(packageRoot, 'config/default.yaml');
