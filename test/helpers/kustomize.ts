// The part of kustomize that deploy/kubernetes uses, for tests that check the manifests without a
// cluster or a kustomize binary: `resources` (files and folders), `namespace`, `nameSuffix`,
// `configMapGenerator` (files), `patches` (strategic merge patches from files), and the name
// references kustomize rewrites when a ConfigMap, Secret, claim, service account or Service gets
// a new name. Anything else in a kustomization, a patch directive, or a list whose merge key this
// file does not know is an error, so a manifest that uses more of kustomize cannot pass unread.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parseAllDocuments, parseDocument } from 'yaml';

export type Obj = Record<string, unknown>;

export interface K8sObject extends Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> } & Obj;
}

/** A resource as a kustomization level sees it: the object and the names it had before. */
interface Tracked {
  object: K8sObject;
  /** Its name where it was first read or generated (a generated ConfigMap: without the hash). */
  originalName: string;
  /** The file it came from (for messages). */
  file: string;
}

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'nameSuffix', 'configMapGenerator', 'patches']);
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
]);

/** Strategic merge: the merge key of each list field a patch may hold (Kubernetes' patchMergeKey). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
  imagePullSecrets: 'name',
  topologySpreadConstraints: 'topologyKey',
};

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function isK8sObject(o: unknown): o is K8sObject {
  return isObj(o) && typeof o.kind === 'string' && typeof o.apiVersion === 'string' && isObj(o.metadata) && typeof o.metadata.name === 'string';
}

/** Reads every document of a YAML file as a Kubernetes object. */
export function readObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'), { prettyErrors: false }).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    const o: unknown = doc.toJS();
    if (o === null || o === undefined) return [];
    if (!isK8sObject(o)) throw new Error(`${file}: expected a Kubernetes object with apiVersion, kind and metadata.name`);
    return [o];
  });
}

function fail(file: string, message: string): never {
  throw new Error(`${file}: ${message} (test/helpers/kustomize.ts implements only the part of kustomize deploy/kubernetes uses)`);
}

/** A file named in a kustomization must lie in its folder or below (kustomize's default load restriction). */
function ownFile(dir: string, entry: string, file: string): string {
  const path = resolve(dir, entry);
  if (relative(dir, path).startsWith('..')) fail(file, `${entry} lies outside the kustomization's folder; kustomize refuses it`);
  return path;
}

/**
 * kustomize's name hash of a generated ConfigMap (api/hasher): sha256 over its kind, name and data
 * as Go's JSON, 10 letters. kustomize 5 hashes before the name is set (name ""): checked against
 * `kubectl kustomize` (kustomize 5.7.1).
 */
export function configMapHash(data: Record<string, string>): string {
  const sorted = Object.fromEntries(
    Object.keys(data)
      .sort()
      .map((k) => [k, data[k]]),
  );
  // Go's encoding/json escapes <, > and & in strings.
  const json = JSON.stringify({ data: sorted, kind: 'ConfigMap', name: '' }).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
  const hex = createHash('sha256').update(json).digest('hex').slice(0, 10);
  return hex.replace(/[013ae]/g, (c) => ({ '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' })[c]!);
}

/** A strategic merge patch applied to a copy of `target`. */
export function strategicMerge(target: unknown, patch: unknown, file: string, path = ''): unknown {
  if (!isObj(patch)) return patch;
  if (!isObj(target)) target = {};
  const out: Obj = { ...(target as Obj) };
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) fail(file, `the patch directive ${key} at ${path || '(root)'}`);
    if (value === null) {
      delete out[key];
    } else if (Array.isArray(value)) {
      const mergeKey = MERGE_KEYS[key];
      if (!value.every(isObj) || mergeKey === undefined) {
        if (value.some(isObj)) fail(file, `a list of objects at ${path}.${key} whose strategic merge key is not known here`);
        out[key] = value; // a list of scalars is replaced
        continue;
      }
      // kustomize's order: the patch's items first (merged into their originals), then the originals the patch does not name.
      const original = Array.isArray(out[key]) ? (out[key] as unknown[]) : [];
      const matching = (item: Obj) => original.find((m) => isObj(m) && m[mergeKey] === item[mergeKey]);
      out[key] = [
        ...value.map((item) => strategicMerge(matching(item), item, file, `${path}.${key}[${mergeKey}=${String(item[mergeKey])}]`)),
        ...original.filter((m) => !value.some((item) => isObj(m) && m[mergeKey] === item[mergeKey])),
      ];
    } else if (isObj(value)) {
      out[key] = strategicMerge(out[key], value, file, `${path}.${key}`);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** The pod specs of a workload (Deployment, StatefulSet, DaemonSet, Job: spec.template.spec). */
export function podSpec(o: K8sObject): Obj | undefined {
  const spec = o.spec;
  if (!isObj(spec) || !isObj(spec.template) || !isObj(spec.template.spec)) return undefined;
  return spec.template.spec;
}

/** Every container of a pod spec. */
export function containers(pod: Obj): Obj[] {
  return [...((pod.containers as Obj[] | undefined) ?? []), ...((pod.initContainers as Obj[] | undefined) ?? [])];
}

/** The name references in an object: [kind referred to, holder object, key] for each. */
function references(o: K8sObject): [string, Obj, string][] {
  const refs: [string, Obj, string][] = [];
  if (o.kind === 'StatefulSet' && isObj(o.spec) && typeof o.spec.serviceName === 'string') refs.push(['Service', o.spec, 'serviceName']);
  const pod = podSpec(o);
  if (!pod) return refs;
  if (typeof pod.serviceAccountName === 'string') refs.push(['ServiceAccount', pod, 'serviceAccountName']);
  for (const v of (pod.volumes as Obj[] | undefined) ?? []) {
    if (isObj(v.configMap)) refs.push(['ConfigMap', v.configMap, 'name']);
    if (isObj(v.secret)) refs.push(['Secret', v.secret, 'secretName']);
    if (isObj(v.persistentVolumeClaim)) refs.push(['PersistentVolumeClaim', v.persistentVolumeClaim, 'claimName']);
    if (isObj(v.projected)) fail(o.metadata.name, 'a projected volume');
  }
  for (const c of containers(pod)) {
    for (const e of (c.env as Obj[] | undefined) ?? []) {
      const from = e.valueFrom;
      if (isObj(from) && isObj(from.configMapKeyRef)) refs.push(['ConfigMap', from.configMapKeyRef, 'name']);
      if (isObj(from) && isObj(from.secretKeyRef)) refs.push(['Secret', from.secretKeyRef, 'name']);
    }
    for (const e of (c.envFrom as Obj[] | undefined) ?? []) {
      if (isObj(e.configMapRef)) refs.push(['ConfigMap', e.configMapRef, 'name']);
      if (isObj(e.secretRef)) refs.push(['Secret', e.secretRef, 'name']);
    }
  }
  return refs;
}

/** Rewrites references to resources that this level renamed, as kustomize's name reference transformer does. */
function fixReferences(resources: Tracked[], file: string): void {
  for (const r of resources) {
    for (const [kind, holder, key] of references(r.object)) {
      const value = holder[key];
      const same = resources.filter((t) => t.object.kind === kind && t.object.metadata.namespace === r.object.metadata.namespace);
      if (same.some((t) => t.object.metadata.name === value)) continue;
      const renamed = same.filter((t) => t.originalName === value);
      if (renamed.length > 1)
        fail(file, `${r.object.kind} ${r.object.metadata.name} refers to ${kind} ${String(value)}, which several resources were renamed from`);
      if (renamed.length === 1) holder[key] = renamed[0]!.object.metadata.name;
    }
  }
}

/** Builds a kustomization folder as `kubectl kustomize DIR` would (the subset above). */
export function kustomize(dir: string): K8sObject[] {
  return build(resolve(dir)).map((t) => t.object);
}

function build(dir: string): Tracked[] {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) fail(dir, 'no kustomization.yaml');
  const k = readKustomization(file);
  for (const key of Object.keys(k)) if (!KNOWN_FIELDS.has(key)) fail(file, `the kustomization field "${key}"`);
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization')
    fail(file, 'expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization');

  const resources: Tracked[] = [];
  for (const entry of (k.resources as string[] | undefined) ?? []) {
    const path = resolve(dir, entry);
    if (existsSync(path) && statSync(path).isDirectory()) resources.push(...build(path));
    else for (const object of readObjects(ownFile(dir, entry, file))) resources.push({ object, originalName: object.metadata.name, file: path });
  }
  for (const g of (k.configMapGenerator as Obj[] | undefined) ?? []) {
    for (const key of Object.keys(g)) if (key !== 'name' && key !== 'files') fail(file, `configMapGenerator field "${key}"`);
    const name = g.name as string;
    const data = Object.fromEntries(((g.files as string[] | undefined) ?? []).map((f) => [basename(f), readFileSync(ownFile(dir, f, file), 'utf8')]));
    const object: K8sObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-${configMapHash(data)}` }, data };
    resources.push({ object, originalName: name, file });
  }
  for (const p of (k.patches as Obj[] | undefined) ?? []) {
    for (const key of Object.keys(p)) if (key !== 'path') fail(file, `patches field "${key}" (only path: a strategic merge patch file)`);
    for (const patch of readObjects(ownFile(dir, p.path as string, file))) {
      const targets = resources.filter((t) => t.object.kind === patch.kind && [t.object.metadata.name, t.originalName].includes(patch.metadata.name));
      if (targets.length !== 1) fail(file, `patch ${String(p.path)} must match one resource, found ${targets.length} ${patch.kind} ${patch.metadata.name}`);
      targets[0]!.object = strategicMerge(targets[0]!.object, patch, String(p.path)) as K8sObject;
    }
  }
  if (typeof k.namespace === 'string') {
    for (const t of resources) {
      if (t.object.kind === 'Namespace') {
        if (t.object.metadata.name !== k.namespace) fail(file, `namespace ${k.namespace} with a Namespace resource named ${t.object.metadata.name}`);
      } else if (!CLUSTER_SCOPED.has(t.object.kind)) {
        t.object = { ...t.object, metadata: { ...t.object.metadata, namespace: k.namespace } };
      }
    }
  }
  if (typeof k.nameSuffix === 'string') {
    for (const t of resources) {
      if (CLUSTER_SCOPED.has(t.object.kind)) fail(file, `nameSuffix over the cluster-scoped ${t.object.kind} ${t.object.metadata.name}`);
      t.object = { ...t.object, metadata: { ...t.object.metadata, name: `${t.object.metadata.name}${k.nameSuffix}` } };
    }
  }
  // Objects are copied before references are rewritten in place: resources of other levels stay as built.
  for (const t of resources) t.object = structuredClone(t.object);
  fixReferences(resources, file);
  return resources;
}

/** A kustomization file as a plain object (it has no metadata.name). */
function readKustomization(file: string): Obj {
  const doc = parseDocument(readFileSync(file, 'utf8'), { prettyErrors: false });
  if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
  const o: unknown = doc.toJS();
  if (!isObj(o)) throw new Error(`${file}: expected a kustomization`);
  return o;
}

/** Every kustomization folder at or below `dir` (overlays and the base's parts). */
export function kustomizations(dir: string): string[] {
  const found = existsSync(join(dir, 'kustomization.yaml')) ? [dir] : [];
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) found.push(...kustomizations(join(dir, e.name)));
  return found;
}
