/**
 * The Kubernetes manifests in `k8s/`: every object validated against the Kubernetes schemas
 * (`kubernetes-models`), and the cross references a schema cannot see: selectors match the pod
 * labels, every Service reaches a named port of the right container, the hive's own flags
 * (parsed by the hive's real configuration parser) agree with the Services and probes, the hive
 * reaches its own redis through redis's Unix socket on an emptyDir both containers share, redis
 * starts parked and without persistence, and the pod is locked down.
 *
 * Every check is a function of the parsed manifests; the last test breaks a copy of the
 * manifests once per check and asserts that the check notices. The redis command line is also
 * handed to a real `redis-server` (on a unix socket only) to prove redis accepts it as written.
 *
 * @example
 * ```sh
 * deno test --allow-all tests/deploy/manifests_test.ts
 * ```
 */

import { sleep } from "../../testing/wait.ts";
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment";
import {
  type IPodDisruptionBudget,
  PodDisruptionBudget,
} from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { type ISecret, Secret } from "kubernetes-models/v1/Secret";
import { type IService, Service } from "kubernetes-models/v1/Service";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEnvVar } from "kubernetes-models/v1/EnvVar";
import type { IProbe } from "kubernetes-models/v1/Probe";
import { type Config, parseConfig } from "../../lib/hive/config.ts";
import { PARKED_MASTER } from "../../lib/redis/redis_state.ts";
import { HANDOFF_SYNC_TIMEOUT_MS, HANDOFF_TAKEOVER_TIMEOUT_MS } from "../../lib/hive/hive.ts";
import { MAX_EPOLL_WORKERS } from "../../lib/proxy/proxy_workers.ts";

/** The directory holding the manifests. */
const K8S_DIR = new URL("../../k8s/", import.meta.url);
/** The kustomization, which must list every manifest but the Secret example. */
const KUSTOMIZATION_FILE = "kustomization.yaml";
/** An example Secret, deliberately not applied by `kubectl apply -k`. */
const SECRET_EXAMPLE_FILE = "secret.example.yaml";
/** Kinds the product must never need (no RBAC, no CRD, no persistence). */
const FORBIDDEN_KINDS = [
  "Role",
  "ClusterRole",
  "RoleBinding",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PersistentVolumeClaim",
  "StatefulSet",
];
/** Name of the redis container in the pod. */
const REDIS_CONTAINER = "redis";
/** Name of the hive container in the pod. */
const HIVE_CONTAINER = "redis-hive";
/** Pods of the Deployment: one leader and two copies of the dataset. */
const EXPECTED_REPLICAS = 3;
/** Shortest grace period that leaves a leader time to hand over on SIGTERM, in seconds. */
const MIN_TERMINATION_GRACE_SECONDS = 30;
/**
 * The hive's resident memory in service, at most, as measured (`deno task bench memory`: 96.1 to
 * 100.1 MiB before issues 13 and 14 landed, 122.7 MiB with them, 94.4 MiB with the election
 * socket read on the main thread and V8's memory flags;
 * docs/benchmarks.md): its memory request must cover it.
 */
const HIVE_RSS_IN_SERVICE_MIB = 100;
/**
 * The hive's start-up peak (VmHWM) measured by `deno task bench memory` (119 to 136 MiB,
 * rounded up), plus 1000 idle proxied connections at about 11 KiB each: the memory limit must
 * cover it, or a busy pod is OOM-killed while it starts.
 */
const HIVE_MEMORY_FLOOR_MIB = 136 + 11;
/** The hive's CPU limit: at least one whole CPU (the proxy's first worker and the loop). */
const MIN_HIVE_CPU_LIMIT = 1;
/** The port redis listens on when its command line sets none. */
const REDIS_DEFAULT_PORT = 6379;
/** Stands in for the pod IP (downward API) when the hive's configuration is parsed. */
const SAMPLE_POD_IP = "192.0.2.10";
/** Most time a test waits for a real redis-server to answer, in milliseconds. */
const REDIS_START_TIMEOUT_MS = 10_000;

/** Which container and named port each Service must reach. */
const SERVICE_TARGETS: Record<string, { container: string; portName: string }> = {
  "redis-hive": { container: HIVE_CONTAINER, portName: "election" },
  "redis-hive-master": { container: HIVE_CONTAINER, portName: "proxy" },
  "redis-hive-replica": { container: REDIS_CONTAINER, portName: "redis" },
  "redis-hive-sentinel": { container: HIVE_CONTAINER, portName: "sentinel" },
};

/** The port Sentinel clients expect by default (Sentinel's own). */
const SENTINEL_DEFAULT_PORT = 26379;

/** The schema (a `kubernetes-models` class) of every kind the manifests may hold. */
const SCHEMAS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "v1/Secret": Secret,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

/** One YAML file of `k8s/` and its documents. */
interface ManifestFile {
  name: string;
  docs: unknown[];
}

/** Every YAML file of `k8s/`, parsed. */
interface Bundle {
  files: ManifestFile[];
}

/** The fields of any Kubernetes object the checks rely on. */
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: NonNullable<IDeployment["metadata"]>;
}

/** A label selector, as the checks read it. */
interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}

/** The part of a kustomization the checks read. */
interface Kustomization {
  apiVersion?: string;
  kind?: string;
  resources?: string[];
  namespace?: string;
  [key: string]: unknown;
}

/** Reads and parses every `.yaml` file in `k8s/` (YAML 1.1, as kubectl reads it). */
function loadBundle(): Bundle {
  const files: ManifestFile[] = [];
  for (const entry of Deno.readDirSync(K8S_DIR)) {
    if (!entry.isFile) continue;
    assert.ok(
      entry.name.endsWith(".yaml"),
      `k8s/${entry.name}: every file in k8s/ is a .yaml manifest`,
    );
    const text = Deno.readTextFileSync(new URL(entry.name, K8S_DIR));
    // YAML 1.1 like kubectl: an unquoted `no` there is a boolean, not the string redis needs.
    const docs = parseAllDocuments(text, { version: "1.1" });
    assert.ok(Array.isArray(docs), `k8s/${entry.name}: not a YAML stream`);
    const parsed = docs.map((doc, index) => {
      const problems = [...doc.errors, ...doc.warnings].map((e) => e.message);
      assert.deepEqual(problems, [], `k8s/${entry.name} document ${index + 1} does not parse`);
      const value: unknown = doc.toJS();
      assert.ok(isRecord(value), `k8s/${entry.name} document ${index + 1} is not a mapping`);
      return value;
    });
    files.push({ name: entry.name, docs: parsed });
  }
  files.sort((a, b) => a.name.localeCompare(b.name));
  return { files };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Every Kubernetes object of the bundle (the kustomization is not one), with its file. */
function objectsOf(bundle: Bundle): { file: string; object: K8sObject }[] {
  const out: { file: string; object: K8sObject }[] = [];
  for (const file of bundle.files) {
    if (file.name === KUSTOMIZATION_FILE) continue;
    for (const doc of file.docs) {
      assert.ok(isRecord(doc), `k8s/${file.name}: a document is not a mapping`);
      const { apiVersion, kind, metadata } = doc;
      assert.ok(typeof apiVersion === "string", `k8s/${file.name}: an object has no apiVersion`);
      assert.ok(typeof kind === "string", `k8s/${file.name}: an object has no kind`);
      assert.ok(
        isRecord(metadata) && typeof metadata.name === "string" && metadata.name !== "",
        `k8s/${file.name}: a ${kind} has no metadata.name`,
      );
      out.push({ file: file.name, object: doc as unknown as K8sObject });
    }
  }
  return out;
}

/** The objects of one kind, applied ones only (the Secret example is not applied). */
function appliedOfKind<T>(bundle: Bundle, kind: string): T[] {
  return objectsOf(bundle)
    .filter(({ file, object }) => file !== SECRET_EXAMPLE_FILE && object.kind === kind)
    .map(({ object }) => object as unknown as T);
}

/** The kustomization document. */
function kustomizationOf(bundle: Bundle): Kustomization {
  const file = bundle.files.find((f) => f.name === KUSTOMIZATION_FILE);
  assert.ok(file !== undefined, `k8s/${KUSTOMIZATION_FILE} is missing`);
  assert.equal(file.docs.length, 1, `k8s/${KUSTOMIZATION_FILE} holds one document`);
  return file.docs[0] as Kustomization;
}

/** The one Deployment. */
function deploymentOf(bundle: Bundle): IDeployment {
  const deployments = appliedOfKind<IDeployment>(bundle, "Deployment");
  assert.equal(deployments.length, 1, "exactly one Deployment");
  return deployments[0]!;
}

/** The one Service of that name. */
function serviceOf(bundle: Bundle, name: string): IService {
  const found = appliedOfKind<IService>(bundle, "Service").filter((s) => s.metadata?.name === name);
  assert.equal(found.length, 1, `exactly one Service named ${name}`);
  return found[0]!;
}

/** The headless Service (the peer discovery name). */
function headlessServiceOf(bundle: Bundle): IService {
  const found = appliedOfKind<IService>(bundle, "Service").filter((s) =>
    s.spec?.clusterIP === "None"
  );
  assert.equal(found.length, 1, "exactly one headless Service (clusterIP: None)");
  return found[0]!;
}

/** A container of the Deployment's pod, by name. */
function containerOf(bundle: Bundle, name: string): IContainer {
  const containers = deploymentOf(bundle).spec?.template.spec?.containers ?? [];
  const found = containers.filter((c) => c.name === name);
  assert.equal(found.length, 1, `the pod has exactly one container named ${name}`);
  return found[0]!;
}

/** The value of a containerPort by its name, checking the protocol. */
function namedPort(container: IContainer, portName: string, protocol: string): number {
  const found = (container.ports ?? []).filter((p) => p.name === portName);
  assert.equal(found.length, 1, `container ${container.name} has one port named ${portName}`);
  const port = found[0]!;
  assert.equal(
    port.protocol ?? "TCP",
    protocol,
    `port ${portName} of container ${container.name} is ${protocol}`,
  );
  return port.containerPort;
}

/** The port number a probe or targetPort means in a container (a name or a number). */
function resolvePort(container: IContainer, port: number | string, protocol: string): number {
  return typeof port === "number" ? port : namedPort(container, port, protocol);
}

/** Asserts that a label selector's matchLabels select the given labels (no matchExpressions). */
function assertSelects(
  what: string,
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): void {
  assert.ok(
    selector !== undefined && Object.keys(selector).length > 0,
    `${what}: an empty selector`,
  );
  for (const [key, value] of Object.entries(selector)) {
    assert.equal(
      labels[key],
      value,
      `${what}: selects ${key}=${value}, the pods carry ${key}=${labels[key]}`,
    );
  }
}

/**
 * Splits a redis-server command line into options: `--name` followed by its values, until
 * the next `--`. Repeated options keep the last (as redis does for single-value options).
 */
function redisOptions(args: string[]): Map<string, string[]> {
  const options = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const arg of args) {
    if (arg.startsWith("--")) {
      current = [];
      options.set(arg.slice(2), current);
    } else {
      assert.ok(current !== null, `redis argument ${JSON.stringify(arg)} precedes any --option`);
      current.push(arg);
    }
  }
  return options;
}

/** Every `$(NAME)` reference of a string (Kubernetes expands them in command and args). */
function variableRefs(text: string): string[] {
  return [...text.replaceAll("$$", "").matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) =>
    m[1]!
  );
}

/** An env var of a container by name. */
function envOf(container: IContainer, name: string): IEnvVar {
  const found = (container.env ?? []).filter((e) => e.name === name);
  assert.equal(found.length, 1, `container ${container.name} defines ${name} once`);
  return found[0]!;
}

/** The keys of the Secret example, by Secret name. */
function exampleSecretKeys(bundle: Bundle): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const { file, object } of objectsOf(bundle)) {
    if (file !== SECRET_EXAMPLE_FILE || object.kind !== "Secret") continue;
    const secret = object as unknown as ISecret;
    const keys = new Set([
      ...Object.keys(secret.data ?? {}),
      ...Object.keys(secret.stringData ?? {}),
    ]);
    out.set(secret.metadata?.name ?? "", keys);
  }
  return out;
}

/** The environment Kubernetes would give a container, with stand-ins for pod IP and secrets. */
function sampleEnv(container: IContainer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) {
      env[variable.name] = variable.value;
    } else if (variable.valueFrom?.fieldRef?.fieldPath === "status.podIP") {
      env[variable.name] = SAMPLE_POD_IP;
    } else if (variable.valueFrom?.secretKeyRef !== undefined) {
      env[variable.name] = `sample-${variable.valueFrom.secretKeyRef.key}`;
    } else {
      assert.fail(
        `container ${container.name}: env ${variable.name} has a source this test does not model`,
      );
    }
  }
  return env;
}

/** Expands `$(NAME)` references as Kubernetes does (an undefined one stays as written). */
function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (ref, name: string) => env[name] ?? ref);
}

/** The hive's configuration, parsed by the hive's own parser from the container's args and env. */
function hiveConfigOf(hive: IContainer): Config {
  const env = sampleEnv(hive);
  return parseConfig(
    (hive.args ?? []).map((a) => expand(a, env)),
    env,
    (path) => assert.fail(`the manifest makes the hive read a file: ${path}`),
  );
}

/** The user and group a container runs as (its own securityContext, else the pod's). */
function runAsOf(bundle: Bundle, container: IContainer): { uid: number; gid: number } {
  const pod = deploymentOf(bundle).spec?.template.spec?.securityContext;
  const uid = container.securityContext?.runAsUser ?? pod?.runAsUser;
  const gid = container.securityContext?.runAsGroup ?? pod?.runAsGroup;
  assert.ok(uid !== undefined, `container ${container.name}: no runAsUser`);
  assert.ok(gid !== undefined, `container ${container.name}: no runAsGroup`);
  return { uid, gid };
}

// ---------------------------------------------------------------------------------------------
// The checks. Each throws an AssertionError naming what is wrong.

/** Every object matches the Kubernetes schema of its kind, and only known kinds appear. */
function checkSchemas(bundle: Bundle): void {
  for (const { file, object } of objectsOf(bundle)) {
    const key = `${object.apiVersion}/${object.kind}`;
    const Model = SCHEMAS[key];
    assert.ok(
      Model !== undefined,
      `k8s/${file}: ${key} is not a kind these manifests use (${Object.keys(SCHEMAS).join(", ")})`,
    );
    try {
      new Model(object as never).validate();
    } catch (error) {
      assert.fail(`k8s/${file}: ${key} ${object.metadata.name}: ${(error as Error).message}`);
    }
  }
}

/** No RBAC, CRD, PVC or StatefulSet, anywhere. */
function checkNoForbiddenKinds(bundle: Bundle): void {
  for (const { file, object } of objectsOf(bundle)) {
    assert.ok(
      !FORBIDDEN_KINDS.includes(object.kind),
      `k8s/${file}: ${object.kind} ${object.metadata.name} is forbidden (no RBAC, CRD, PVC or StatefulSet)`,
    );
  }
  for (const volume of deploymentOf(bundle).spec?.template.spec?.volumes ?? []) {
    assert.equal(volume.persistentVolumeClaim, undefined, `volume ${volume.name} claims a PVC`);
  }
}

/** No object names a namespace, nor does the kustomization: `-n` decides. */
function checkNamespaceAgnostic(bundle: Bundle): void {
  for (const { file, object } of objectsOf(bundle)) {
    assert.equal(
      object.metadata.namespace,
      undefined,
      `k8s/${file}: ${object.kind} ${object.metadata.name} names a namespace`,
    );
  }
  assert.equal(kustomizationOf(bundle).namespace, undefined, "the kustomization names a namespace");
}

/** The kustomization lists every manifest, exactly once, and not the Secret example. */
function checkKustomization(bundle: Bundle): void {
  const kustomization = kustomizationOf(bundle);
  assert.equal(
    kustomization.apiVersion,
    "kustomize.config.k8s.io/v1beta1",
    "kustomization apiVersion",
  );
  assert.equal(kustomization.kind, "Kustomization", "kustomization kind");
  const resources = kustomization.resources ?? [];
  assert.equal(new Set(resources).size, resources.length, "the kustomization lists a file twice");
  const manifests = bundle.files
    .map((f) => f.name)
    .filter((name) => name !== KUSTOMIZATION_FILE && name !== SECRET_EXAMPLE_FILE);
  assert.deepEqual(
    [...resources].sort(),
    manifests,
    "the kustomization's resources are exactly the manifest files (the Secret example excepted)",
  );
}

/** The Deployment, Services, PDB and spread constraint all select the pods' labels. */
function checkSelectors(bundle: Bundle): void {
  const deployment = deploymentOf(bundle);
  const labels = deployment.spec?.template.metadata?.labels ?? {};
  assert.ok(Object.keys(labels).length > 0, "the pod template has no labels");
  const selectors: [string, LabelSelector | undefined][] = [
    ["Deployment selector", deployment.spec?.selector],
  ];
  for (const pdb of appliedOfKind<IPodDisruptionBudget>(bundle, "PodDisruptionBudget")) {
    selectors.push([`PodDisruptionBudget ${pdb.metadata?.name}`, pdb.spec?.selector]);
  }
  for (const spread of deployment.spec?.template.spec?.topologySpreadConstraints ?? []) {
    selectors.push([`topologySpreadConstraint on ${spread.topologyKey}`, spread.labelSelector]);
  }
  for (const [what, selector] of selectors) {
    assert.equal(
      selector?.matchExpressions,
      undefined,
      `${what}: matchExpressions are not checked here`,
    );
    assertSelects(what, selector?.matchLabels, labels);
  }
  const services = appliedOfKind<IService>(bundle, "Service");
  assert.ok(services.length > 0, "no Service");
  for (const service of services) {
    assertSelects(`Service ${service.metadata?.name}`, service.spec?.selector, labels);
  }
}

/** Every Service port targets a named port of the right container, with the same protocol. */
function checkServiceTargets(bundle: Bundle): void {
  const services = appliedOfKind<IService>(bundle, "Service");
  assert.deepEqual(
    services.map((s) => s.metadata?.name).sort(),
    Object.keys(SERVICE_TARGETS).sort(),
    "the Services are exactly the headless, -master, -replica and -sentinel ones",
  );
  for (const service of services) {
    const name = service.metadata?.name ?? "";
    const expected = SERVICE_TARGETS[name];
    assert.ok(expected !== undefined);
    const ports = service.spec?.ports ?? [];
    assert.equal(ports.length, 1, `Service ${name} has one port`);
    for (const port of ports) {
      assert.equal(
        port.targetPort,
        expected.portName,
        `Service ${name} targets the named port ${expected.portName} of container ${expected.container}`,
      );
      namedPort(containerOf(bundle, expected.container), expected.portName, port.protocol ?? "TCP");
    }
  }
  const master = serviceOf(bundle, "redis-hive-master").spec?.ports?.[0];
  const replica = serviceOf(bundle, "redis-hive-replica").spec?.ports?.[0];
  assert.equal(master?.port, REDIS_DEFAULT_PORT, "clients reach -master on the redis port");
  assert.equal(replica?.port, REDIS_DEFAULT_PORT, "clients reach -replica on the redis port");
  const sentinel = serviceOf(bundle, "redis-hive-sentinel").spec?.ports?.[0];
  assert.equal(sentinel?.port, SENTINEL_DEFAULT_PORT, "clients reach -sentinel on Sentinel's port");
}

/** The headless Service publishes every pod, ready or not, on the UDP election port. */
function checkHeadlessService(bundle: Bundle): void {
  const headless = headlessServiceOf(bundle);
  assert.equal(
    headless.spec?.publishNotReadyAddresses,
    true,
    "starting hives must find each other",
  );
  const ports = headless.spec?.ports ?? [];
  assert.deepEqual(
    ports.map((p) => p.protocol),
    ["UDP"],
    "the headless Service carries the UDP election port",
  );
}

/**
 * The hive's configuration, parsed by the hive's own parser from the container's args and
 * env, agrees with the Services, the container ports, the probes and the redis container.
 */
function checkHiveConfig(bundle: Bundle): void {
  const hive = containerOf(bundle, HIVE_CONTAINER);
  const redis = containerOf(bundle, REDIS_CONTAINER);
  const config = hiveConfigOf(hive);
  const headless = headlessServiceOf(bundle);
  assert.equal(config.service, headless.metadata?.name, "--service names the headless Service");
  assert.equal(config.peers, null, "no static peers in Kubernetes");
  assert.equal(config.announceIp, SAMPLE_POD_IP, "the hive announces the pod IP (POD_IP)");
  assert.equal(config.electionPort, namedPort(hive, "election", "UDP"), "election port");
  assert.equal(
    config.electionPort,
    headless.spec?.ports?.[0]?.port,
    "headless Service port = election port",
  );
  assert.equal(config.proxyPort, namedPort(hive, "proxy", "TCP"), "proxy port");
  assert.equal(config.httpPort, namedPort(hive, "http", "TCP"), "http port");
  assert.equal(config.sentinelPort, namedPort(hive, "sentinel", "TCP"), "sentinel port");
  assert.equal(config.masterName, "mymaster", "the master name clients are configured with");
  const probes: [string, IProbe | undefined, string][] = [
    ["readinessProbe", hive.readinessProbe, "/readyz"],
    ["livenessProbe", hive.livenessProbe, "/healthz"],
  ];
  for (const [what, probe, path] of probes) {
    const get = probe?.httpGet;
    assert.ok(get !== undefined, `hive ${what} is an httpGet`);
    assert.equal(get.path, path, `hive ${what} path`);
    assert.equal(
      resolvePort(hive, get.port, "TCP"),
      config.httpPort,
      `hive ${what} port = --http-port`,
    );
  }
  assert.equal(config.redisHost, "127.0.0.1", "the hive talks to the redis of its own pod");
  const redisPort = Number(redisOptions(redis.args ?? []).get("port")?.[0] ?? REDIS_DEFAULT_PORT);
  assert.equal(config.redisPort, redisPort, "--redis-port = the port redis listens on");
  assert.equal(namedPort(redis, "redis", "TCP"), redisPort, "redis containerPort = redis port");
  assert.ok(config.stateFile !== null, "the hive keeps a --state-file");
  const stateDir = config.stateFile.slice(0, config.stateFile.lastIndexOf("/"));
  const stateMount = (hive.volumeMounts ?? []).find((m) => m.mountPath === stateDir);
  assert.ok(
    stateMount !== undefined,
    `--state-file ${config.stateFile}: no volume mounted at ${stateDir}`,
  );
  assert.notEqual(
    stateMount.readOnly,
    true,
    `the state file's volume ${stateMount.name} is read-only`,
  );
  const stateVolume = (deploymentOf(bundle).spec?.template.spec?.volumes ?? []).find((v) =>
    v.name === stateMount.name
  );
  assert.ok(
    stateVolume?.emptyDir !== undefined,
    `the state file's volume ${stateMount.name} is not an emptyDir (it must go with the pod)`,
  );
  assert.ok(config.secret !== null, "heartbeats are signed (HIVE_SECRET)");
  assert.ok(config.redisPassword !== null, "the hive logs in to redis (REDIS_PASSWORD)");
}

/**
 * The hive reaches its own redis through redis's Unix socket: its `--redis-socket` is redis's
 * `--unixsocket`, both containers mount the same emptyDir volume (shared by this pod's
 * containers only) at the socket's directory, and the socket's permissions let the hive's user
 * connect (connecting to a Unix socket needs write permission on it).
 */
function checkRedisSocket(bundle: Bundle): void {
  const hive = containerOf(bundle, HIVE_CONTAINER);
  const redis = containerOf(bundle, REDIS_CONTAINER);
  const socket = hiveConfigOf(hive).redisSocket;
  assert.ok(
    socket !== null,
    "the hive reaches its own redis through its Unix socket (--redis-socket)",
  );
  const options = redisOptions(redis.args ?? []);
  assert.deepEqual(options.get("unixsocket"), [socket], "hive --redis-socket = redis --unixsocket");
  const dir = socket.slice(0, socket.lastIndexOf("/"));
  const mountAt = (container: IContainer) => {
    const found = (container.volumeMounts ?? []).filter((m) => m.mountPath === dir);
    assert.equal(
      found.length,
      1,
      `${container.name} mounts a volume at ${dir}, the socket's directory`,
    );
    const mount = found[0]!;
    assert.equal(mount.subPath ?? "", "", `${container.name} mounts a subPath at ${dir}`);
    assert.equal(mount.subPathExpr ?? "", "", `${container.name} mounts a subPathExpr at ${dir}`);
    return mount;
  };
  const hiveMount = mountAt(hive);
  const redisMount = mountAt(redis);
  assert.equal(hiveMount.name, redisMount.name, `both containers mount the same volume at ${dir}`);
  assert.notEqual(redisMount.readOnly, true, `redis cannot create its socket in read-only ${dir}`);
  const volume = (deploymentOf(bundle).spec?.template.spec?.volumes ?? []).find((v) =>
    v.name === hiveMount.name
  );
  assert.ok(
    volume?.emptyDir !== undefined,
    `the socket's volume ${hiveMount.name} is not an emptyDir (only this pod's containers may reach the socket)`,
  );
  const permText = options.get("unixsocketperm")?.[0] ?? "";
  assert.match(permText, /^[0-7]{3,4}$/, "redis --unixsocketperm is set, in octal");
  const perm = parseInt(permText, 8);
  const hiveUser = runAsOf(bundle, hive);
  const redisUser = runAsOf(bundle, redis);
  const [writeBit, who] = hiveUser.uid === redisUser.uid
    ? [0o200, "owner"]
    : hiveUser.gid === redisUser.gid
    ? [0o020, "group"]
    : [0o002, "others"];
  assert.ok(
    (perm & writeBit) !== 0,
    `redis --unixsocketperm ${permText}: the hive (uid ${hiveUser.uid}, gid ${hiveUser.gid}) connects as ${who} of redis's socket (uid ${redisUser.uid}, gid ${redisUser.gid}) and needs write permission`,
  );
}

/** Pod IP from the downward API; secrets from the Secret, the same keys in both containers. */
function checkEnvSources(bundle: Bundle): void {
  const secretKeys = exampleSecretKeys(bundle);
  for (
    const container of [containerOf(bundle, HIVE_CONTAINER), containerOf(bundle, REDIS_CONTAINER)]
  ) {
    assert.equal(
      envOf(container, "POD_IP").valueFrom?.fieldRef?.fieldPath,
      "status.podIP",
      `${container.name}: POD_IP from the downward API`,
    );
    for (const variable of container.env ?? []) {
      const ref = variable.valueFrom?.secretKeyRef;
      if (ref === undefined) continue;
      assert.ok(
        secretKeys.get(ref.name ?? "")?.has(ref.key),
        `${container.name}: ${variable.name} reads key ${ref.key} of Secret ${ref.name}, which ${SECRET_EXAMPLE_FILE} does not show`,
      );
    }
  }
  const hive = containerOf(bundle, HIVE_CONTAINER);
  const redis = containerOf(bundle, REDIS_CONTAINER);
  assert.ok(envOf(hive, "HIVE_SECRET").valueFrom?.secretKeyRef, "HIVE_SECRET comes from a Secret");
  const hivePassword = envOf(hive, "REDIS_PASSWORD").valueFrom?.secretKeyRef;
  const redisPassword = envOf(redis, "REDIS_PASSWORD").valueFrom?.secretKeyRef;
  assert.ok(hivePassword !== undefined, "the hive's REDIS_PASSWORD comes from a Secret");
  assert.deepEqual(hivePassword, redisPassword, "hive and redis read the same password");
}

/** Every `$(NAME)` in a container's command and args is one of its env vars. */
function checkVariableRefs(bundle: Bundle): void {
  for (const container of deploymentOf(bundle).spec?.template.spec?.containers ?? []) {
    const defined = new Set((container.env ?? []).map((e) => e.name));
    for (const arg of [...(container.command ?? []), ...(container.args ?? [])]) {
      for (const name of variableRefs(arg)) {
        assert.ok(
          defined.has(name),
          `${container.name}: ${arg} refers to ${name}, which it does not define (Kubernetes would pass it literally)`,
        );
      }
    }
  }
}

/** redis keeps nothing on disk, starts parked, requires the password and announces the pod IP. */
function checkRedisCommandLine(bundle: Bundle): void {
  const redis = containerOf(bundle, REDIS_CONTAINER);
  assert.deepEqual(redis.command, ["redis-server"], "redis runs redis-server directly");
  const options = redisOptions(redis.args ?? []);
  const expected: [string, string[], string][] = [
    ["save", [""], "no RDB snapshots"],
    ["appendonly", ["no"], "no AOF"],
    ["rdb-del-sync-files", ["yes"], "a full sync leaves no file behind"],
    [
      "replicaof",
      [PARKED_MASTER.host, String(PARKED_MASTER.port)],
      "starts parked (PARKED_MASTER)",
    ],
    ["requirepass", ["$(REDIS_PASSWORD)"], "clients need the password"],
    ["masterauth", ["$(REDIS_PASSWORD)"], "replicas log in to the master"],
    ["replica-announce-ip", ["$(POD_IP)"], "peers see the pod IP"],
  ];
  for (const [name, values, why] of expected) {
    assert.deepEqual(options.get(name), values, `redis --${name}: ${why}`);
  }
  const volumes = deploymentOf(bundle).spec?.template.spec?.volumes ?? [];
  for (const mount of redis.volumeMounts ?? []) {
    const volume = volumes.find((v) => v.name === mount.name);
    assert.ok(
      volume?.emptyDir !== undefined,
      `redis mounts ${mount.name}, which is not an emptyDir`,
    );
  }
}

/** Every image has an exact version tag (or a digest), never `latest` or none. */
function checkImagesPinned(bundle: Bundle): void {
  for (const container of deploymentOf(bundle).spec?.template.spec?.containers ?? []) {
    const image = container.image ?? "";
    assert.match(
      image,
      /^[a-z0-9./-]+(:\d+\.\d+\.\d+[A-Za-z0-9._-]*)?(@sha256:[0-9a-f]{64})?$/,
      `${container.name}: image ${image} is not a plain reference`,
    );
    assert.ok(
      /:\d+\.\d+\.\d+/.test(image) || image.includes("@sha256:"),
      `${container.name}: image ${image} is not pinned to an exact version`,
    );
  }
}

/** No service account token; non-root, read-only, no privilege, no capabilities, seccomp. */
function checkLockedDown(bundle: Bundle): void {
  const pod = deploymentOf(bundle).spec?.template.spec;
  assert.ok(pod !== undefined);
  assert.equal(pod.automountServiceAccountToken, false, "automountServiceAccountToken: false");
  for (const flag of ["hostNetwork", "hostPID", "hostIPC"] as const) {
    assert.notEqual(pod[flag], true, `the pod sets ${flag}`);
  }
  for (const container of pod.containers) {
    const sc = container.securityContext ?? {};
    const what = `container ${container.name}`;
    assert.equal(
      sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot,
      true,
      `${what}: runAsNonRoot`,
    );
    const uid = sc.runAsUser ?? pod.securityContext?.runAsUser;
    assert.ok(uid !== undefined && uid > 0, `${what}: a numeric non-root runAsUser`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${what}: readOnlyRootFilesystem`);
    assert.equal(sc.allowPrivilegeEscalation, false, `${what}: allowPrivilegeEscalation: false`);
    assert.notEqual(sc.privileged, true, `${what}: privileged`);
    assert.ok(sc.capabilities?.drop?.includes("ALL"), `${what}: drops ALL capabilities`);
    assert.deepEqual(sc.capabilities?.add ?? [], [], `${what}: adds capabilities`);
    assert.equal(
      sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type,
      "RuntimeDefault",
      `${what}: seccompProfile RuntimeDefault`,
    );
  }
}

/** Three pods spread over nodes, a PDB, resources, probes, and time for a handoff. */
function checkAvailability(bundle: Bundle): void {
  const deployment = deploymentOf(bundle);
  assert.equal(deployment.spec?.replicas, EXPECTED_REPLICAS, "replicas");
  const pod = deployment.spec?.template.spec;
  assert.ok(pod !== undefined);
  const spread = (pod.topologySpreadConstraints ?? []).filter((c) =>
    c.topologyKey === "kubernetes.io/hostname"
  );
  assert.equal(spread.length, 1, "one topologySpreadConstraint over kubernetes.io/hostname");
  assert.equal(spread[0]?.maxSkew, 1, "pods spread evenly over nodes");
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  assert.ok(
    grace >= MIN_TERMINATION_GRACE_SECONDS,
    `terminationGracePeriodSeconds ${grace} < ${MIN_TERMINATION_GRACE_SECONDS}: too short for a handoff`,
  );
  const preStop = containerOf(bundle, REDIS_CONTAINER).lifecycle?.preStop?.exec?.command ?? [];
  assert.equal(preStop[0], "sleep", "redis outlives the hive's handoff (preStop sleep)");
  const delaySeconds = Number(preStop[1]);
  // The longest a leader's SIGTERM handoff needs its redis: the sync wait, then the takeover wait.
  const handoffMaxSeconds = (HANDOFF_SYNC_TIMEOUT_MS + HANDOFF_TAKEOVER_TIMEOUT_MS) / 1000;
  assert.ok(
    delaySeconds >= handoffMaxSeconds && delaySeconds < grace,
    `redis preStop sleep ${
      preStop[1]
    } must cover the handoff (${handoffMaxSeconds} s) within the grace period (${grace} s)`,
  );
  const pdbs = appliedOfKind<IPodDisruptionBudget>(bundle, "PodDisruptionBudget");
  assert.equal(pdbs.length, 1, "one PodDisruptionBudget");
  assert.equal(pdbs[0]?.spec?.maxUnavailable, 1, "the PDB lets one pod go at a time");
  for (const container of pod.containers) {
    const resources = container.resources;
    const what = `container ${container.name}`;
    assert.ok(resources?.requests?.cpu !== undefined, `${what}: requests cpu`);
    assert.ok(resources?.requests?.memory !== undefined, `${what}: requests memory`);
    assert.ok(resources?.limits?.memory !== undefined, `${what}: limits memory`);
    assert.ok(container.readinessProbe !== undefined, `${what}: a readinessProbe`);
    assert.ok(container.livenessProbe !== undefined, `${what}: a livenessProbe`);
  }
}

/** A Kubernetes CPU quantity (`250m`, `2`, `1.5`) in CPUs. */
function cpuQuantity(q: string | number | undefined): number {
  const text = String(q);
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(text);
  assert.ok(m !== null, `cpu quantity ${text}`);
  return Number(m[1]) / (m[2] === "m" ? 1000 : 1);
}

/** A Kubernetes memory quantity (`128Mi`, `1Gi`, `134217728`) in MiB. */
function memoryMiB(q: string | number | undefined): number {
  const text = String(q);
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(text);
  assert.ok(m !== null, `memory quantity ${text}`);
  const factor = { Ki: 1 / 1024, Mi: 1, Gi: 1024 }[m[2] as "Ki" | "Mi" | "Gi"] ?? 1 / 2 ** 20;
  return Number(m[1]) * factor;
}

/**
 * The hive container is sized from the measurements: a memory request that covers its
 * resident memory in service, a memory limit above its start-up peak with room for
 * connections, a CPU request and a CPU limit of at least one CPU (whose cgroup quota sets the
 * proxy's worker threads, so `--proxy-workers` is left to it), requests within the limits.
 */
function checkHiveSizing(bundle: Bundle): void {
  const hive = containerOf(bundle, HIVE_CONTAINER);
  const r = hive.resources;
  assert.ok(
    r?.requests?.cpu !== undefined && r.limits?.cpu !== undefined,
    "hive: cpu request and limit",
  );
  assert.ok(
    r.requests.memory !== undefined && r.limits.memory !== undefined,
    "hive: memory request and limit",
  );
  const cpuRequest = cpuQuantity(r.requests.cpu);
  const cpuLimit = cpuQuantity(r.limits.cpu);
  assert.ok(cpuLimit >= MIN_HIVE_CPU_LIMIT, `hive: cpu limit ${cpuLimit} < ${MIN_HIVE_CPU_LIMIT}`);
  assert.ok(
    Math.ceil(cpuLimit) <= MAX_EPOLL_WORKERS,
    `hive: cpu limit ${cpuLimit} asks more than ${MAX_EPOLL_WORKERS} proxy workers`,
  );
  assert.ok(cpuRequest > 0 && cpuRequest <= cpuLimit, "hive: 0 < cpu request <= limit");
  const memRequest = memoryMiB(r.requests.memory);
  const memLimit = memoryMiB(r.limits.memory);
  assert.ok(
    memRequest >= HIVE_RSS_IN_SERVICE_MIB,
    `hive: memory request ${memRequest} MiB < ${HIVE_RSS_IN_SERVICE_MIB} MiB in service`,
  );
  assert.ok(
    memLimit >= HIVE_MEMORY_FLOOR_MIB,
    `hive: memory limit ${memLimit} MiB < ${HIVE_MEMORY_FLOOR_MIB} MiB (start-up peak and connections)`,
  );
  assert.ok(memRequest <= memLimit, "hive: memory request <= limit");
  assert.equal(
    hiveConfigOf(hive).proxyWorkers,
    null,
    "hive: no --proxy-workers (HIVE_PROXY_WORKERS): the CPU limit sets the workers",
  );
}

/** All the checks, by name. */
const CHECKS: Record<string, (bundle: Bundle) => void> = {
  checkSchemas,
  checkNoForbiddenKinds,
  checkNamespaceAgnostic,
  checkKustomization,
  checkSelectors,
  checkServiceTargets,
  checkHeadlessService,
  checkHiveConfig,
  checkRedisSocket,
  checkEnvSources,
  checkVariableRefs,
  checkRedisCommandLine,
  checkImagesPinned,
  checkLockedDown,
  checkAvailability,
  checkHiveSizing,
};

// ---------------------------------------------------------------------------------------------
// The tests.

const bundle = loadBundle();

Deno.test("k8s: every object matches its Kubernetes schema (kubernetes-models)", () => {
  checkSchemas(bundle);
});

Deno.test("k8s: no Role, ClusterRole, binding, CRD, PVC or StatefulSet", () => {
  checkNoForbiddenKinds(bundle);
});

Deno.test("k8s: namespace-agnostic (no object names a namespace)", () => {
  checkNamespaceAgnostic(bundle);
});

Deno.test("k8s: kustomization lists every manifest file, not the Secret example", () => {
  checkKustomization(bundle);
});

Deno.test("k8s: Deployment, Service, PDB and spread selectors match the pod labels", () => {
  checkSelectors(bundle);
});

Deno.test("k8s: every Service targets a named port of the right container", () => {
  checkServiceTargets(bundle);
});

Deno.test("k8s: headless Service publishes not-ready pods on the UDP election port", () => {
  checkHeadlessService(bundle);
});

Deno.test("k8s: the hive's flags (parsed by lib/hive/config.ts) agree with Services, ports and probes", () => {
  checkHiveConfig(bundle);
});

Deno.test("k8s: the hive's --redis-socket is redis's --unixsocket, on an emptyDir both mount", () => {
  checkRedisSocket(bundle);
});

Deno.test("k8s: POD_IP from the downward API, passwords and HMAC secret from the Secret", () => {
  checkEnvSources(bundle);
});

Deno.test("k8s: every $(VAR) in command and args is defined in that container", () => {
  checkVariableRefs(bundle);
});

Deno.test("k8s: redis has no persistence, starts parked and requires the password", () => {
  checkRedisCommandLine(bundle);
});

Deno.test("k8s: every image is pinned to an exact version", () => {
  checkImagesPinned(bundle);
});

Deno.test("k8s: pod is locked down (non-root, read-only, no privileges, no token)", () => {
  checkLockedDown(bundle);
});

Deno.test("k8s: 3 replicas spread over nodes, a PDB, resources, probes, grace for a handoff", () => {
  checkAvailability(bundle);
});

Deno.test("k8s: the hive's requests and limits come from its measured memory and CPU", () => {
  checkHiveSizing(bundle);
});

/** One way to break the manifests, and the check that must notice. */
interface Breakage {
  check: keyof typeof CHECKS;
  what: string;
  breakIt: (copy: Bundle) => void;
}

const hiveIn = (b: Bundle) => containerOf(b, HIVE_CONTAINER);
const redisIn = (b: Bundle) => containerOf(b, REDIS_CONTAINER);
const podIn = (b: Bundle) => deploymentOf(b).spec!.template.spec!;
const replaceArg = (c: IContainer, from: string, to: string) => {
  const index = (c.args ?? []).indexOf(from);
  assert.ok(index >= 0, `${c.name} has no argument ${from} to break`);
  c.args![index] = to;
};
const argAfter = (c: IContainer, flag: string, to: string) => {
  const index = (c.args ?? []).indexOf(flag);
  assert.ok(index >= 0, `${c.name} has no argument ${flag} to break`);
  c.args![index + 1] = to;
};

const BREAKAGES: Breakage[] = [
  {
    check: "checkSchemas",
    what: "replicas is a string",
    breakIt: (b) => {
      (deploymentOf(b).spec as unknown as Record<string, unknown>).replicas = "three";
    },
  },
  {
    check: "checkSchemas",
    what: "a container name that is a number",
    breakIt: (b) => {
      (hiveIn(b) as unknown as Record<string, unknown>).name = 7;
    },
  },
  {
    check: "checkSchemas",
    what: "an unknown kind",
    breakIt: (b) => {
      b.files[0]!.docs.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } });
    },
  },
  {
    check: "checkNoForbiddenKinds",
    what: "a Role",
    breakIt: (b) => {
      b.files[0]!.docs.push({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "x" },
      });
    },
  },
  {
    check: "checkNoForbiddenKinds",
    what: "a PVC volume",
    breakIt: (b) => {
      podIn(b).volumes!.push({ name: "pvc", persistentVolumeClaim: { claimName: "data" } });
    },
  },
  {
    check: "checkNamespaceAgnostic",
    what: "a namespace on the Deployment",
    breakIt: (b) => {
      deploymentOf(b).metadata!.namespace = "default";
    },
  },
  {
    check: "checkNamespaceAgnostic",
    what: "a namespace in the kustomization",
    breakIt: (b) => {
      kustomizationOf(b).namespace = "redis";
    },
  },
  {
    check: "checkKustomization",
    what: "a manifest missing from the kustomization",
    breakIt: (b) => {
      kustomizationOf(b).resources!.pop();
    },
  },
  {
    check: "checkKustomization",
    what: "the Secret example in the kustomization",
    breakIt: (b) => {
      kustomizationOf(b).resources!.push(SECRET_EXAMPLE_FILE);
    },
  },
  {
    check: "checkSelectors",
    what: "a Service selecting another app",
    breakIt: (b) => {
      serviceOf(b, "redis-hive-replica").spec!.selector = { "app.kubernetes.io/name": "other" };
    },
  },
  {
    check: "checkSelectors",
    what: "pod labels that the Deployment selector does not match",
    breakIt: (b) => {
      deploymentOf(b).spec!.template.metadata!.labels = { app: "renamed" };
    },
  },
  {
    check: "checkServiceTargets",
    what: "-master targeting redis instead of the proxy",
    breakIt: (b) => {
      serviceOf(b, "redis-hive-master").spec!.ports![0]!.targetPort = "redis";
    },
  },
  {
    check: "checkServiceTargets",
    what: "a renamed container port",
    breakIt: (b) => {
      hiveIn(b).ports!.find((p) => p.name === "proxy")!.name = "proxy-tcp";
    },
  },
  {
    check: "checkServiceTargets",
    what: "the election port as TCP in the Service",
    breakIt: (b) => {
      headlessServiceOf(b).spec!.ports![0]!.protocol = "TCP";
    },
  },
  {
    check: "checkHeadlessService",
    what: "not-ready pods unpublished",
    breakIt: (b) => {
      headlessServiceOf(b).spec!.publishNotReadyAddresses = false;
    },
  },
  {
    check: "checkHiveConfig",
    what: "--service naming another Service",
    breakIt: (b) => argAfter(hiveIn(b), "--service", "redis-hive-peers"),
  },
  {
    check: "checkHiveConfig",
    what: "--proxy-port not the container's proxy port",
    breakIt: (b) => argAfter(hiveIn(b), "--proxy-port", "6390"),
  },
  {
    check: "checkServiceTargets",
    what: "-sentinel targeting the proxy",
    breakIt: (b) => {
      serviceOf(b, "redis-hive-sentinel").spec!.ports![0]!.targetPort = "proxy";
    },
  },
  {
    check: "checkServiceTargets",
    what: "-sentinel on another port than 26379",
    breakIt: (b) => {
      serviceOf(b, "redis-hive-sentinel").spec!.ports![0]!.port = 26380;
    },
  },
  {
    check: "checkHiveConfig",
    what: "--sentinel-port not the container's sentinel port",
    breakIt: (b) => argAfter(hiveIn(b), "--sentinel-port", "26380"),
  },
  {
    check: "checkHiveConfig",
    what: "the Sentinel endpoint turned off",
    breakIt: (b) => argAfter(hiveIn(b), "--sentinel-port", "0"),
  },
  {
    check: "checkHiveConfig",
    what: "--http-port not the probes' port",
    breakIt: (b) => argAfter(hiveIn(b), "--http-port", "8081"),
  },
  {
    check: "checkHiveConfig",
    what: "--election-port not the headless Service's port",
    breakIt: (b) => argAfter(hiveIn(b), "--election-port", "7380"),
  },
  {
    check: "checkHiveConfig",
    what: "--redis-port not redis's port",
    breakIt: (b) => argAfter(hiveIn(b), "--redis-port", "6381"),
  },
  {
    check: "checkHiveConfig",
    what: "a misspelt flag",
    breakIt: (b) => replaceArg(hiveIn(b), "--proxy-port", "--proxyport"),
  },
  {
    check: "checkHiveConfig",
    what: "no volume for the state file",
    breakIt: (b) => {
      hiveIn(b).volumeMounts = [];
    },
  },
  {
    check: "checkHiveConfig",
    what: "readiness on /healthz",
    breakIt: (b) => {
      hiveIn(b).readinessProbe!.httpGet!.path = "/healthz";
    },
  },
  {
    check: "checkRedisSocket",
    what: "the hive without --redis-socket (its own redis over TCP)",
    breakIt: (b) => {
      const args = hiveIn(b).args!;
      args.splice(args.indexOf("--redis-socket"), 2);
    },
  },
  {
    check: "checkRedisSocket",
    what: "--redis-socket not redis's --unixsocket",
    breakIt: (b) => argAfter(hiveIn(b), "--redis-socket", "/run/redis/redis-6379.sock"),
  },
  {
    check: "checkRedisSocket",
    what: "the hive not mounting the socket's volume",
    breakIt: (b) => {
      hiveIn(b).volumeMounts = hiveIn(b).volumeMounts!.filter((m) => m.name !== "redis-socket");
    },
  },
  {
    check: "checkRedisSocket",
    what: "redis mounting the socket's volume at another directory",
    breakIt: (b) => {
      redisIn(b).volumeMounts!.find((m) => m.name === "redis-socket")!.mountPath = "/var/run/redis";
    },
  },
  {
    check: "checkRedisSocket",
    what: "each container mounting its own volume at the socket's directory",
    breakIt: (b) => {
      podIn(b).volumes!.push({ name: "hive-socket", emptyDir: { medium: "Memory" } });
      hiveIn(b).volumeMounts!.find((m) => m.name === "redis-socket")!.name = "hive-socket";
    },
  },
  {
    check: "checkRedisSocket",
    what: "the socket on a hostPath volume",
    breakIt: (b) => {
      const volume = podIn(b).volumes!.find((v) => v.name === "redis-socket")!;
      volume.emptyDir = undefined;
      volume.hostPath = { path: "/run/redis", type: "DirectoryOrCreate" };
    },
  },
  {
    check: "checkRedisSocket",
    what: "a socket only redis's user may open",
    breakIt: (b) => argAfter(redisIn(b), "--unixsocketperm", "700"),
  },
  {
    check: "checkEnvSources",
    what: "POD_IP from the host IP",
    breakIt: (b) => {
      envOf(hiveIn(b), "POD_IP").valueFrom!.fieldRef!.fieldPath = "status.hostIP";
    },
  },
  {
    check: "checkEnvSources",
    what: "a Secret key the example does not have",
    breakIt: (b) => {
      envOf(hiveIn(b), "HIVE_SECRET").valueFrom!.secretKeyRef!.key = "hive-secrets";
    },
  },
  {
    check: "checkEnvSources",
    what: "hive and redis reading different passwords",
    breakIt: (b) => {
      envOf(redisIn(b), "REDIS_PASSWORD").valueFrom!.secretKeyRef!.key = "hive-secret";
    },
  },
  {
    check: "checkVariableRefs",
    what: "a $(VAR) the container does not define",
    breakIt: (b) => {
      redisIn(b).env = redisIn(b).env!.filter((e) => e.name !== "POD_IP");
    },
  },
  {
    check: "checkRedisCommandLine",
    what: "snapshots on",
    breakIt: (b) => argAfter(redisIn(b), "--save", "3600 1"),
  },
  {
    check: "checkRedisCommandLine",
    what: "append-only file on",
    breakIt: (b) => argAfter(redisIn(b), "--appendonly", "yes"),
  },
  {
    check: "checkRedisCommandLine",
    what: "starting as a master",
    breakIt: (b) => {
      const args = redisIn(b).args!;
      args.splice(args.indexOf("--replicaof"), 3);
    },
  },
  {
    check: "checkRedisCommandLine",
    what: "no password",
    breakIt: (b) => {
      const args = redisIn(b).args!;
      args.splice(args.indexOf("--requirepass"), 2);
    },
  },
  {
    check: "checkImagesPinned",
    what: "redis:latest",
    breakIt: (b) => {
      redisIn(b).image = "redis:latest";
    },
  },
  {
    check: "checkImagesPinned",
    what: "an untagged hive image",
    breakIt: (b) => {
      hiveIn(b).image = "redis-hive";
    },
  },
  {
    check: "checkLockedDown",
    what: "a mounted service account token",
    breakIt: (b) => {
      podIn(b).automountServiceAccountToken = true;
    },
  },
  {
    check: "checkLockedDown",
    what: "a writable root filesystem",
    breakIt: (b) => {
      redisIn(b).securityContext!.readOnlyRootFilesystem = false;
    },
  },
  {
    check: "checkLockedDown",
    what: "privilege escalation",
    breakIt: (b) => {
      hiveIn(b).securityContext!.allowPrivilegeEscalation = true;
    },
  },
  {
    check: "checkLockedDown",
    what: "capabilities kept",
    breakIt: (b) => {
      hiveIn(b).securityContext!.capabilities = { drop: ["NET_RAW"] };
    },
  },
  {
    check: "checkLockedDown",
    what: "no seccomp profile",
    breakIt: (b) => {
      podIn(b).securityContext!.seccompProfile = undefined;
    },
  },
  {
    check: "checkLockedDown",
    what: "running as root",
    breakIt: (b) => {
      podIn(b).securityContext!.runAsNonRoot = false;
    },
  },
  {
    check: "checkAvailability",
    what: "one replica",
    breakIt: (b) => {
      deploymentOf(b).spec!.replicas = 1;
    },
  },
  {
    check: "checkAvailability",
    what: "no spread over nodes",
    breakIt: (b) => {
      podIn(b).topologySpreadConstraints = [];
    },
  },
  {
    check: "checkAvailability",
    what: "a short grace period",
    breakIt: (b) => {
      podIn(b).terminationGracePeriodSeconds = 5;
    },
  },
  {
    check: "checkAvailability",
    what: "redis stopping at once",
    breakIt: (b) => {
      redisIn(b).lifecycle = undefined;
    },
  },
  {
    check: "checkAvailability",
    what: "redis stopping before a handoff can finish",
    breakIt: (b) => {
      redisIn(b).lifecycle!.preStop!.exec!.command = ["sleep", "1"];
    },
  },
  {
    check: "checkAvailability",
    what: "a PDB allowing two pods down",
    breakIt: (b) => {
      appliedOfKind<IPodDisruptionBudget>(b, "PodDisruptionBudget")[0]!.spec!.maxUnavailable = 2;
    },
  },
  {
    check: "checkAvailability",
    what: "no memory limit",
    breakIt: (b) => {
      hiveIn(b).resources!.limits = {};
    },
  },
  {
    check: "checkHiveSizing",
    what: "no CPU limit",
    breakIt: (b) => {
      delete hiveIn(b).resources!.limits!.cpu;
    },
  },
  {
    check: "checkHiveSizing",
    what: "a CPU limit under one CPU",
    breakIt: (b) => {
      hiveIn(b).resources!.limits!.cpu = "500m";
    },
  },
  {
    check: "checkHiveSizing",
    what: "a memory request below the hive's memory in service",
    breakIt: (b) => {
      hiveIn(b).resources!.requests!.memory = "64Mi";
    },
  },
  {
    check: "checkHiveSizing",
    what: "a memory limit below the start-up peak",
    breakIt: (b) => {
      hiveIn(b).resources!.limits!.memory = "128Mi";
    },
  },
  {
    check: "checkHiveSizing",
    what: "--proxy-workers overriding the CPU limit",
    breakIt: (b) => {
      hiveIn(b).args = [...(hiveIn(b).args ?? []), "--proxy-workers", "4"];
    },
  },
];

Deno.test("k8s: every check rejects a manifest broken the way it guards against", async (t) => {
  const covered = new Set(BREAKAGES.map((b) => b.check));
  assert.deepEqual(
    Object.keys(CHECKS).filter((name) => !covered.has(name)),
    [],
    "every check has at least one breakage",
  );
  for (const breakage of BREAKAGES) {
    await t.step(`${breakage.check} rejects ${breakage.what}`, () => {
      const copy = structuredClone(bundle);
      breakage.breakIt(copy);
      const check = CHECKS[breakage.check]!;
      assert.throws(() => check(copy), `${breakage.check} accepted ${breakage.what}`);
      check(bundle); // the original still passes: the breakage, not the check, made it throw
    });
  }
});

/** Runs a command to completion and returns its exit code and trimmed stdout. */
async function run(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string }> {
  const [cmd, ...args] = argv;
  assert.ok(cmd !== undefined);
  const output = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "null" })
    .output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout).trim() };
}

Deno.test("k8s: a real redis-server accepts the manifest's redis command line (unix socket only)", async () => {
  const redis = containerOf(bundle, REDIS_CONTAINER);
  const env = sampleEnv(redis);
  const password = env["REDIS_PASSWORD"];
  assert.ok(password !== undefined);
  const options = redisOptions((redis.args ?? []).map((a) => expand(a, env)));
  const dir = await Deno.makeTempDir({ prefix: "redis-hive-manifest-" });
  const socket = `${dir}/redis.sock`;
  // The manifest's options as written, except: no TCP port, a unix socket, a writable dir.
  options.set("dir", [dir]);
  options.set("port", ["0"]);
  options.set("unixsocket", [socket]);
  options.set("daemonize", ["no"]);
  const argv = [...(redis.command ?? ["redis-server"])];
  for (const [name, values] of options) argv.push(`--${name}`, ...values);
  const [cmd, ...args] = argv;
  assert.ok(cmd !== undefined);
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
  const logs = Promise.all([child.stdout, child.stderr].map((s) => new Response(s).text()));
  let exited = false;
  void child.status.then(() => exited = true);
  const cli = ["redis-cli", "-s", socket, "--no-auth-warning"];
  const auth = { REDISCLI_AUTH: password };
  try {
    const deadline = Date.now() + REDIS_START_TIMEOUT_MS;
    while ((await run([...cli, "ping"], auth)).stdout !== "PONG") {
      if (exited) assert.fail(`redis-server exited: ${(await logs).join("\n")}`);
      assert.ok(Date.now() < deadline, "redis-server did not answer PING");
      await sleep(50);
    }
    const config = async (name: string) =>
      (await run([...cli, "--raw", "config", "get", name], auth)).stdout.split("\n").slice(1).join(
        "\n",
      );
    assert.equal(await config("save"), "");
    assert.equal(await config("appendonly"), "no");
    assert.equal(await config("rdb-del-sync-files"), "yes");
    assert.equal(await config("replica-announce-ip"), SAMPLE_POD_IP);
    assert.equal(await config("masterauth"), password);
    assert.equal(await config("unixsocketperm"), options.get("unixsocketperm")?.[0]);
    const role = (await run([...cli, "--raw", "role"], auth)).stdout.split("\n");
    assert.deepEqual(role.slice(0, 3), ["slave", PARKED_MASTER.host, String(PARKED_MASTER.port)]);
    assert.notEqual(
      (await run([...cli, "ping"])).stdout,
      "PONG",
      "redis answers without a password",
    );

    // The readiness probe's shell line, its redis-cli pointed at this socket.
    const probe = redis.readinessProbe?.exec?.command ?? [];
    assert.equal(probe[0], "sh", "the redis readiness probe is a shell line");
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    const redisCli = (await run(["sh", "-c", "command -v redis-cli"])).stdout;
    await Deno.writeTextFile(
      `${bin}/redis-cli`,
      `#!/bin/sh\nexec ${redisCli} -s ${socket} "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const path = `${bin}:${Deno.env.get("PATH") ?? ""}`;
    assert.equal(
      (await run(probe, { PATH: path, REDISCLI_AUTH: password })).code,
      0,
      "probe on a healthy redis",
    );
    assert.notEqual(
      (await run(probe, { PATH: path, REDISCLI_AUTH: "wrong" })).code,
      0,
      "the probe passes on an error reply",
    );
  } finally {
    if (!exited) child.kill("SIGTERM");
    await child.status;
    await logs;
    await Deno.remove(dir, { recursive: true });
  }
});
