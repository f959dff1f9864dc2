// deploy/kubernetes without a cluster: every kustomization is built as kustomize builds it
// (test/helpers/kustomize.ts: the subset the manifests use, refusing anything else; its output was
// compared with `kubectl kustomize` of kustomize 5.7.1 for every overlay), and each overlay's
// output is held to the rules of the install: the agent's pod hardened (non-root as the image's
// uid, read-only root filesystem, no privilege escalation, every capability dropped, RuntimeDefault
// seccomp), sized, probed on /healthz and /readyz at its port; every ConfigMap, Secret, claim and
// volume it names present; selectors of Services, monitors, policies and budgets matching the
// agents' pods; one monitor per agent, scraping with the token the agent accepts; shards and
// replicas consistent; the config valid for each agent (vakt's own loader, with the files the pod
// mounts); the PrometheusRule what `npm run gen:kubernetes` makes of deploy/prometheus/vakt-rules.yml.
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig, type Config } from '../../config/loader.js';
import { PROMETHEUS_RULE_FILE, prometheusRule, REGENERATE, RULES_FILE } from '../../deploy/kubernetes/generate-rules.js';
import { chainInstructions, repositoryDockerfile, ROOT } from '../helpers/dockerfile.js';
import { containers, isObj, kustomizations, kustomize, podSpec, readObjects, type K8sObject, type Obj } from '../helpers/kustomize.js';

const KUBE = resolve(ROOT, 'deploy/kubernetes');
const OVERLAYS = readdirSync(join(KUBE, 'overlays')).sort();
/** Capabilities a probe kind documents that it needs; none does (icmp uses ICMP datagram sockets: the pod's net.ipv4.ping_group_range sysctl, not NET_RAW). */
const KIND_CAPABILITIES: readonly string[] = [];
/** The image's uid and gid (Dockerfile: USER uid:gid of the production stage). */
const [IMAGE_UID, IMAGE_GID] = (() => {
  const { stages, production } = repositoryDockerfile();
  const user = chainInstructions(stages, production)
    .filter((i) => i.keyword === 'USER')
    .at(-1)!.rest;
  return user.split(':').map(Number) as [number, number];
})();

const tmp = mkdtempSync(join(tmpdir(), 'vakt-kubernetes-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Labels = Record<string, string>;
const labelsOf = (o: unknown): Labels => (isObj(o) && isObj(o.labels) ? (o.labels as Labels) : {});
const matches = (selector: Labels | undefined, labels: Labels) => selector !== undefined && Object.entries(selector).every(([k, v]) => labels[k] === v);
const matchLabels = (o: unknown): Labels | undefined => {
  if (!isObj(o)) return undefined;
  for (const key of Object.keys(o)) if (key !== 'matchLabels') throw new Error(`selector field ${key}: only matchLabels is checked here`);
  return o.matchLabels as Labels;
};

interface Workload {
  object: K8sObject;
  pod: Obj;
  podLabels: Labels;
  container: Obj;
  env: Record<string, string>;
}

function workloads(objects: K8sObject[]): Workload[] {
  return objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
    .map((object) => {
      const pod = podSpec(object)!;
      const [container, ...more] = containers(pod);
      if (more.length > 0) throw new Error(`${object.metadata.name}: one container expected`);
      const env = Object.fromEntries(((container!.env as Obj[] | undefined) ?? []).map((e) => [e.name as string, e.value as string]));
      return { object, pod, podLabels: labelsOf((object.spec as Obj & { template: Obj }).template.metadata), container: container!, env };
    });
}

const find = (objects: K8sObject[], kind: string, name: unknown) => objects.find((o) => o.kind === kind && o.metadata.name === name);

/** A container port by name or number. */
function containerPort(container: Obj, port: unknown): number | undefined {
  const ports = (container.ports as Obj[] | undefined) ?? [];
  const p = ports.find((x) => x.name === port || x.containerPort === port);
  return p?.containerPort as number | undefined;
}

/** The contents of a ConfigMap or Secret by key. */
function dataOf(o: K8sObject): Record<string, string> {
  const data = { ...((o.stringData as Record<string, string> | undefined) ?? {}) };
  for (const [k, v] of Object.entries((o.data as Record<string, string> | undefined) ?? {}))
    data[k] = o.kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v;
  return data;
}

/**
 * The agent's config as the workload's pod sees it, loaded with vakt's loader: the ConfigMap and
 * Secret volumes written out under a folder of the test's (their mount paths rewritten to it in the
 * config), the pod's environment, its host name (the StatefulSet's first pod).
 */
function loadConfig(objects: K8sObject[], w: Workload): { config: Config; root: string; file: string } {
  const root = mkdtempSync(join(tmp, `${w.object.metadata.name}-`));
  const mounts = (w.container.volumeMounts as Obj[]).map((m) => ({
    mountPath: m.mountPath as string,
    subPath: m.subPath,
    volume: (w.pod.volumes as Obj[] | undefined)?.find((v) => v.name === m.name),
  }));
  for (const m of mounts) {
    if (m.subPath !== undefined) throw new Error('subPath mounts are not checked here');
    const source = isObj(m.volume?.configMap)
      ? find(objects, 'ConfigMap', m.volume.configMap.name)
      : isObj(m.volume?.secret)
        ? find(objects, 'Secret', m.volume.secret.secretName)
        : undefined;
    if (!source) continue;
    mkdirSync(join(root, m.mountPath), { recursive: true });
    for (const [key, value] of Object.entries(dataOf(source))) writeFileSync(join(root, m.mountPath, key), value);
  }
  const args = w.container.args as string[];
  const file = args[args.indexOf('-c') + 1]!;
  let text = readFileSync(join(root, file), 'utf8');
  for (const m of mounts) text = text.replaceAll(`${m.mountPath}/`, `${join(root, m.mountPath)}/`);
  const env = { ...w.env, HOSTNAME: `${w.object.metadata.name}-0` };
  return { config: parseConfig(text, join(root, file), env, { secrets: 'report' }), root, file };
}

/** The pods a workload makes (a StatefulSet's by ordinal), with the meta labels Prometheus' Kubernetes discovery gives them. */
function podsOf(w: Workload): { name: string; index?: number; meta: Labels }[] {
  const meta = (name: string, labels: Labels) => ({
    __meta_kubernetes_pod_name: name,
    ...Object.fromEntries(Object.entries(labels).map(([k, v]) => [`__meta_kubernetes_pod_label_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`, v])),
  });
  if (w.object.kind !== 'StatefulSet')
    return [{ name: `${w.object.metadata.name}-5d8f6c7b9-x2x4z`, meta: meta(`${w.object.metadata.name}-5d8f6c7b9-x2x4z`, w.podLabels) }];
  return Array.from({ length: (w.object.spec as Obj).replicas as number }, (_, index) => {
    const name = `${w.object.metadata.name}-${index}`;
    return { name, index, meta: meta(name, { ...w.podLabels, 'apps.kubernetes.io/pod-index': String(index) }) };
  });
}

/** A target's labels after the monitor's relabelings (action replace only), and its job. */
function targetLabels(job: string, endpoint: Obj, meta: Labels): Labels {
  const labels: Labels = { ...meta, instance: '10.0.0.1:9464' };
  for (const r of (endpoint.relabelings as Obj[] | undefined) ?? []) {
    for (const key of Object.keys(r)) {
      if (!['sourceLabels', 'separator', 'regex', 'replacement', 'targetLabel', 'action'].includes(key))
        throw new Error(`relabeling field ${key} is not evaluated here`);
    }
    if ((r.action ?? 'replace') !== 'replace') throw new Error(`relabeling action ${String(r.action)} is not evaluated here`);
    const value = (r.sourceLabels as string[]).map((l) => labels[l] ?? '').join((r.separator as string | undefined) ?? ';');
    const m = new RegExp(`^(?:${(r.regex as string | undefined) ?? '(.*)'})$`).exec(value);
    if (!m) continue;
    const out = ((r.replacement as string | undefined) ?? '$1').replace(
      /\$\{(\d+)\}|\$(\d+)/g,
      (_, a: string | undefined, b: string | undefined) => m[Number(a ?? b)] ?? '',
    );
    if (out === '') delete labels[r.targetLabel as string];
    else labels[r.targetLabel as string] = out;
  }
  const target = Object.fromEntries(Object.entries(labels).filter(([k]) => !k.startsWith('__')));
  return { ...target, job };
}

describe('deploy/kubernetes', () => {
  it('builds every kustomization, and every manifest is named by one', () => {
    const named = new Set<string>();
    for (const dir of kustomizations(KUBE)) {
      expect(() => kustomize(dir), relative(KUBE, dir)).not.toThrow();
      const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Obj;
      named.add(join(dir, 'kustomization.yaml'));
      for (const r of (k.resources as string[] | undefined) ?? []) named.add(resolve(dir, r));
      for (const g of (k.configMapGenerator as Obj[] | undefined) ?? []) for (const f of g.files as string[]) named.add(resolve(dir, f));
      for (const p of (k.patches as Obj[] | undefined) ?? []) named.add(resolve(dir, p.path as string));
    }
    const files = (readdirSync(KUBE, { recursive: true }) as string[]).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(KUBE, f));
    expect(files.filter((f) => !named.has(f)).map((f) => relative(KUBE, f))).toEqual([]);
    for (const f of files.filter((f) => !f.endsWith('kustomization.yaml') && !f.endsWith('vakt.yaml'))) expect(() => readObjects(f), f).not.toThrow();
  });

  it(`has the PrometheusRule that ${REGENERATE} makes of deploy/prometheus/vakt-rules.yml`, () => {
    const expected = prometheusRule(readFileSync(RULES_FILE, 'utf8'));
    const actual = readFileSync(PROMETHEUS_RULE_FILE, 'utf8');
    expect(actual === expected, `${relative(ROOT, PROMETHEUS_RULE_FILE)} differs from deploy/prometheus/vakt-rules.yml: run \`${REGENERATE}\``).toBe(true);
    const [rule] = readObjects(PROMETHEUS_RULE_FILE);
    expect((rule!.spec as Obj).groups).toEqual((parse(readFileSync(RULES_FILE, 'utf8')) as Obj).groups);
  });

  it('ships placeholders, clearly marked, in its Secret, never real values', () => {
    const [secret] = readObjects(join(KUBE, 'base/common/secret.yaml'));
    expect(secret!.data).toBeUndefined();
    for (const [key, value] of Object.entries(dataOf(secret!))) expect(value, key).toMatch(/^PLACEHOLDER-/);
  });
});

describe.each(OVERLAYS.map((o) => [o]))('overlay %s', (overlay) => {
  const built = ((): K8sObject[] | Error => {
    try {
      return kustomize(join(KUBE, 'overlays', overlay));
    } catch (err) {
      return err as Error;
    }
  })();
  const objects = built instanceof Error ? [] : built;
  const agents = workloads(objects);
  const services = objects.filter((o) => o.kind === 'Service');
  const monitors = objects.filter((o) => o.kind === 'ServiceMonitor' || o.kind === 'PodMonitor');

  it('builds', () => {
    if (built instanceof Error) throw built;
  });

  it('installs into its own namespace, every resource labelled as vakt', () => {
    const ns = objects.filter((o) => o.kind === 'Namespace');
    expect(ns).toHaveLength(1);
    for (const o of objects) {
      if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(ns[0]!.metadata.name);
      if (o.kind !== 'ConfigMap') expect(labelsOf(o.metadata)['app.kubernetes.io/name'], `${o.kind} ${o.metadata.name}`).toBe('vakt');
    }
    expect(agents.length).toBeGreaterThan(0);
  });

  it('runs every agent as the image user, non-root, read-only, unprivileged, without capabilities', () => {
    for (const { object, pod, container } of agents) {
      const at = `${object.kind} ${object.metadata.name}`;
      const psc = pod.securityContext as Obj;
      expect(psc.runAsNonRoot, at).toBe(true);
      expect([psc.runAsUser, psc.runAsGroup, psc.fsGroup], at).toEqual([IMAGE_UID, IMAGE_GID, IMAGE_GID]);
      expect((psc.seccompProfile as Obj).type, at).toBe('RuntimeDefault');
      expect(pod.automountServiceAccountToken, at).toBe(false);
      // Service links would put VAKT_* variables (from the Service named vakt) into the agent's environment.
      expect(pod.enableServiceLinks, at).toBe(false);
      expect(find(objects, 'ServiceAccount', pod.serviceAccountName), `${at}: service account`).toBeDefined();
      const sc = container.securityContext as Obj;
      expect(sc.allowPrivilegeEscalation, at).toBe(false);
      expect(sc.readOnlyRootFilesystem, at).toBe(true);
      expect(sc.privileged ?? false, at).toBe(false);
      expect(sc.runAsUser ?? psc.runAsUser, at).not.toBe(0);
      const caps = sc.capabilities as Obj;
      expect(caps.drop, at).toEqual(['ALL']);
      for (const cap of (caps.add as string[] | undefined) ?? []) expect(KIND_CAPABILITIES, `${at}: capability ${cap}`).toContain(cap);
    }
  });

  it("lets every agent's group send ICMP echo requests without a capability (net.ipv4.ping_group_range, for icmp checks)", () => {
    for (const { object, pod } of agents) {
      const sysctls = ((pod.securityContext as Obj).sysctls ?? []) as { name: string; value: string }[];
      const range = sysctls.find((s) => s.name === 'net.ipv4.ping_group_range')?.value;
      expect(range, `${object.kind} ${object.metadata.name}`).toBeDefined();
      const [lo, hi] = range!.split(/\s+/).map(Number);
      expect(lo! <= IMAGE_GID && IMAGE_GID <= hi!, `${object.metadata.name}: ${range} holds gid ${IMAGE_GID}`).toBe(true);
    }
  });

  it('sizes every agent: CPU and memory requested, a memory limit above the request, no CPU limit', () => {
    const bytes = (q: string) => Number(/^(\d+)(Mi|Gi)$/.exec(q)![1]) * (q.endsWith('Gi') ? 1024 : 1);
    for (const { object, container } of agents) {
      const r = container.resources as { requests: Obj; limits: Obj };
      expect(r.requests.cpu, object.metadata.name).toBeDefined();
      expect(bytes(r.limits.memory as string)).toBeGreaterThan(bytes(r.requests.memory as string));
      // Throttling would stall the event loop that times the probes (disturbed runs).
      expect(r.limits.cpu, object.metadata.name).toBeUndefined();
    }
  });

  it('probes /healthz and /readyz at the port the agent listens on', () => {
    for (const w of agents) {
      const { config } = loadConfig(objects, w);
      for (const [probe, path] of [
        ['livenessProbe', '/healthz'],
        ['readinessProbe', '/readyz'],
      ] as const) {
        const get = (w.container[probe] as Obj).httpGet as Obj;
        expect(get.path, `${w.object.metadata.name} ${probe}`).toBe(path);
        expect(get.scheme ?? 'HTTP').toBe('HTTP');
        expect(containerPort(w.container, get.port), `${w.object.metadata.name} ${probe} port`).toBe(config.agent.listen.port);
      }
      // The kubelet and Prometheus reach the pod's address, not its loopback.
      expect(['0.0.0.0', '::']).toContain(config.agent.listen.host);
      // The status class stays open for the kubelet's probes.
      expect(config.agent.web.access.status).toBe('open');
    }
  });

  it('mounts what every agent names, and writes only to its state volume', () => {
    for (const w of agents) {
      const at = w.object.metadata.name;
      const claims = ((w.object.spec as Obj).volumeClaimTemplates as K8sObject[] | undefined) ?? [];
      const volumes = (w.pod.volumes as Obj[] | undefined) ?? [];
      const mounts = w.container.volumeMounts as Obj[];
      for (const m of mounts)
        expect([...volumes.map((v) => v.name), ...claims.map((c) => c.metadata.name)], `${at}: volume ${String(m.name)}`).toContain(m.name);
      for (const v of volumes) {
        if (isObj(v.configMap)) expect(find(objects, 'ConfigMap', v.configMap.name), `${at}: ConfigMap ${String(v.configMap.name)}`).toBeDefined();
        if (isObj(v.secret)) {
          expect(find(objects, 'Secret', v.secret.secretName), `${at}: Secret ${String(v.secret.secretName)}`).toBeDefined();
          // Secret files: the agent's group reads them, nobody else.
          expect((v.secret.defaultMode as number) & 0o007, `${at}: Secret files world-readable`).toBe(0);
        }
        if (isObj(v.persistentVolumeClaim)) expect(find(objects, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName), `${at}: claim`).toBeDefined();
        expect(
          Object.keys(v).filter((k) => k !== 'name'),
          `${at}: volume ${String(v.name)}`,
        ).toEqual([expect.stringMatching(/^(configMap|secret|persistentVolumeClaim|emptyDir)$/)]);
      }
      const { config, root } = loadConfig(objects, w);
      const writable = mounts.filter((m) => m.readOnly !== true).map((m) => join(root, m.mountPath as string));
      expect(config.agent.stateFile, `${at}: agent.stateFile`).toBeDefined();
      expect(
        writable.some((d) => config.agent.stateFile!.startsWith(`${d}/`)),
        `${at}: the state file ${config.agent.stateFile} lies on a writable volume`,
      ).toBe(true);
      // Config and secrets are mounted read-only; the state volume is the only writable one (the root filesystem is read-only).
      expect(writable, `${at}: writable mounts`).toHaveLength(1);
    }
  });

  it("loads each agent's config with vakt's loader, every secret it names in the mounted Secret", () => {
    for (const w of agents) {
      const { config } = loadConfig(objects, w);
      expect(config.missingSecrets.map((e) => `${e.path}: ${e.message}`)).toEqual([]);
      expect(config.checks.length).toBeGreaterThan(0);
      // The pod's site label (copied onto `up` by the monitors) is the agent's site.
      if (w.podLabels.site !== undefined) expect(config.site?.name, `${w.object.metadata.name}: site`).toBe(w.podLabels.site);
      if (w.env.VAKT_SITE !== undefined) expect(config.site).toMatchObject({ name: w.env.VAKT_SITE, from: 'VAKT_SITE' });
      expect(w.container.args).toEqual(['run', '-c', expect.stringMatching(/^\/etc\/vakt\//)]);
    }
    expect(new Set(agents.map((w) => w.container.image)).size).toBe(1);
    // Deployments (single, sites): one agent per site, each at another.
    const sites = agents.filter((w) => w.object.kind === 'Deployment').map((w) => w.env.VAKT_SITE);
    expect(new Set(sites).size).toBe(sites.length);
  });

  it('keeps every agent pod the same as the base Deployment, apart from environment, labels and state volume', () => {
    const [base] = workloads(kustomize(join(KUBE, 'base')));
    const shape = (pod: Obj) => {
      const copy = structuredClone(pod);
      for (const c of containers(copy)) delete c.env;
      copy.volumes = (copy.volumes as Obj[]).filter((v) => v.name !== 'state');
      return copy;
    };
    for (const w of agents) expect(shape(w.pod), w.object.metadata.name).toEqual(shape(base!.pod));
  });

  it('gives shards a StatefulSet with as many pods as shards, and HA replicas the same shards', () => {
    for (const w of agents) {
      expect(w.env.VAKT_SHARD, `${w.object.metadata.name}: a fixed VAKT_SHARD would give every pod the same shard`).toBeUndefined();
      if (w.env.VAKT_SHARDS === undefined) {
        expect((w.object.spec as Obj).replicas, `${w.object.metadata.name}: one agent`).toBe(1);
        continue;
      }
      expect(w.object.kind).toBe('StatefulSet');
      expect((w.object.spec as Obj).replicas, `${w.object.metadata.name}: replicas = VAKT_SHARDS`).toBe(Number(w.env.VAKT_SHARDS));
      expect(((w.object.spec as Obj).volumeClaimTemplates as K8sObject[]).map((c) => c.metadata.name)).toContain('state');
      const svc = find(objects, 'Service', (w.object.spec as Obj).serviceName);
      expect(svc, `${w.object.metadata.name}: serviceName`).toBeDefined();
      expect((svc!.spec as Obj).clusterIP).toBe('None');
    }
    const replicas = agents.filter((w) => w.env.VAKT_REPLICA !== undefined);
    if (replicas.length > 0) {
      expect(replicas).toHaveLength(agents.length);
      expect(new Set(replicas.map((w) => w.env.VAKT_REPLICA)).size).toBe(replicas.length);
      expect(new Set(replicas.map((w) => w.env.VAKT_SHARDS)).size).toBe(1);
      for (const w of replicas) expect(w.podLabels.replica).toBe(w.env.VAKT_REPLICA);
    }
  });

  it('selects each agent pod by its own workload only; the Service, budget and policy select them all', () => {
    for (const w of agents) {
      const own = matchLabels((w.object.spec as Obj).selector);
      expect(matches(own, w.podLabels), `${w.object.metadata.name} selects its pods`).toBe(true);
      for (const other of agents.filter((o) => o !== w))
        expect(matches(own, other.podLabels), `${w.object.metadata.name} selects ${other.object.metadata.name}'s pods`).toBe(false);
    }
    const everyAgent = (selector: Labels | undefined, what: string) => {
      for (const w of agents) expect(matches(selector, w.podLabels), `${what} selects ${w.object.metadata.name}`).toBe(true);
    };
    expect(services).toHaveLength(1);
    everyAgent((services[0]!.spec as Obj).selector as Labels, `Service ${services[0]!.metadata.name}`);
    for (const p of (services[0]!.spec as Obj).ports as Obj[]) for (const w of agents) expect(containerPort(w.container, p.targetPort)).toBe(p.port);
    const pdb = objects.filter((o) => o.kind === 'PodDisruptionBudget');
    expect(pdb).toHaveLength(1);
    everyAgent(matchLabels((pdb[0]!.spec as Obj).selector), 'PodDisruptionBudget');
    expect((pdb[0]!.spec as Obj).minAvailable, 'minAvailable would block every drain of a single agent').toBeUndefined();
    for (const w of agents) {
      for (const t of (w.pod.topologySpreadConstraints as Obj[] | undefined) ?? []) expect(matches(matchLabels(t.labelSelector), w.podLabels)).toBe(true);
    }
  });

  it('lets only Prometheus in, to the metrics port, and every agent out', () => {
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
    expect(policies).toHaveLength(1);
    const spec = policies[0]!.spec as Obj;
    for (const w of agents) expect(matches(matchLabels(spec.podSelector), w.podLabels), w.object.metadata.name).toBe(true);
    expect(spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const ingress = spec.ingress as Obj[];
    expect(ingress).toHaveLength(1);
    for (const w of agents) expect((ingress[0]!.ports as Obj[]).map((p) => containerPort(w.container, p.port))).toEqual([9464]);
    const from = ingress[0]!.from as Obj[];
    expect(from).toHaveLength(1);
    expect(matchLabels(from[0]!.namespaceSelector)).toEqual({ 'kubernetes.io/metadata.name': 'monitoring' });
    expect(matchLabels(from[0]!.podSelector)).toEqual({ 'app.kubernetes.io/name': 'prometheus' });
    // Egress stays open: the agent's probe targets are anywhere in the hospital's networks (documented).
    expect(spec.egress).toEqual([{}]);
  });

  it('scrapes every agent once, as job vakt, with the token the agent lets read /metrics', () => {
    expect(monitors, 'one ServiceMonitor or PodMonitor: two would scrape every agent twice').toHaveLength(1);
    const m = monitors[0]!;
    const spec = m.spec as Obj;
    const endpoints = (spec.endpoints ?? spec.podMetricsEndpoints) as Obj[];
    expect(endpoints).toHaveLength(1);
    const e = endpoints[0]!;
    expect(e.honorLabels).toBe(true);
    if (m.kind === 'ServiceMonitor') {
      const svc = services.filter((s) => matches(matchLabels(spec.selector), labelsOf(s.metadata)));
      expect(svc).toHaveLength(1);
      expect(((svc[0]!.spec as Obj).ports as Obj[]).map((p) => p.name)).toContain(e.port);
      // job = the Service's label named by jobLabel: the rules select job="vakt".
      expect(labelsOf(svc[0]!.metadata)[spec.jobLabel as string]).toBe('vakt');
    } else {
      for (const w of agents) {
        expect(matches(matchLabels(spec.selector), w.podLabels), w.object.metadata.name).toBe(true);
        expect(containerPort(w.container, e.port), `${w.object.metadata.name}: port ${String(e.port)}`).toBeDefined();
        expect(w.podLabels[spec.jobLabel as string]).toBe('vakt');
      }
    }
    // The targets Prometheus makes of the agents' pods: job vakt, each target its own labels, the
    // pod's site; HA replicas of one shard one instance with another replica (as the rules take them).
    // job: the value of the label jobLabel names, on the Service (ServiceMonitor) or the pod (PodMonitor).
    const jobOf = (w: Workload) => (m.kind === 'ServiceMonitor' ? labelsOf(services[0]!.metadata) : w.podLabels)[spec.jobLabel as string] ?? '';
    const targets = agents.flatMap((w) => podsOf(w).map((pod) => ({ w, ...pod, labels: targetLabels(jobOf(w), e, pod.meta) })));
    expect(new Set(targets.map((t) => JSON.stringify(t.labels))).size, 'every target its own labels').toBe(targets.length);
    for (const t of targets) {
      expect(t.labels.job, t.name).toBe('vakt');
      expect(t.labels.site, t.name).toBe(t.w.env.VAKT_SITE);
      expect(t.labels.replica, t.name).toBe(t.w.env.VAKT_REPLICA);
      if (t.index !== undefined) expect(t.labels.instance, t.name).toBe(`vakt-${t.index}`);
    }
    // The bearer token: from a Secret of the overlay, the value the agent reads as a credential allowed to read.
    const auth = e.authorization as { type: string; credentials: { name: string; key: string } };
    expect(auth.type).toBe('Bearer');
    const secret = find(objects, 'Secret', auth.credentials.name);
    expect(secret, `Secret ${auth.credentials.name}`).toBeDefined();
    const token = dataOf(secret!)[auth.credentials.key];
    expect(token, `key ${auth.credentials.key}`).toBeDefined();
    for (const w of agents) {
      const { config } = loadConfig(objects, w);
      const read = config.agent.web.access.read;
      const names = Object.entries(config.agent.web.tokens)
        .filter(([, value]) => value === token)
        .map(([name]) => name);
      expect(names.length, `${w.object.metadata.name}: a token in agent.web.tokens with the monitor's value`).toBeGreaterThan(0);
      expect(read === 'authenticated' || (Array.isArray(read) && names.some((n) => read.includes(n))), `${w.object.metadata.name}: read allows it`).toBe(true);
    }
  });

  it('has the generated PrometheusRule', () => {
    const rules = objects.filter((o) => o.kind === 'PrometheusRule');
    expect(rules).toHaveLength(1);
    expect(rules[0]!.spec).toEqual(readObjects(PROMETHEUS_RULE_FILE)[0]!.spec);
    expect(dirname(PROMETHEUS_RULE_FILE)).toBe(join(KUBE, 'base/common'));
  });
});
