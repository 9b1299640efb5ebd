// The egress gateway's workload: the hardened Deployment (or node-local DaemonSet) running the
// proxy container with its config mounted, the Service in front of it and the
// PodDisruptionBudget.
import { createHash } from 'crypto';
import { ApiObject, ApiObjectMetadata, Duration, JsonPatch, Lazy, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { GatewayConfigMaps } from './gateway-config';
import type { GatewaySettings } from './gateway-validation';
import { PROXY_RUNTIME_ENV } from './proxy-runtime';
import { workerResources } from './workers';
import { ConfigReload, EgressGatewayProps, LogLevel } from '../egress-gateway-props';
import { PROXY_CONFIG_FILE } from '../model/proxy-config';
import { ProxyImage } from '../proxy-image';

const CONFIG_DIR = '/etc/egress';
const RUN_AS = 65532;
const CHECKSUM_ANNOTATION = 'egress.cdk8s.io/config-checksum';
/** Keeps Linkerd's sidecar serving after SIGTERM for this many seconds (a preStop sleep it adds to itself). */
const LINKERD_WAIT_BEFORE_EXIT = 'config.alpha.linkerd.io/proxy-wait-before-exit-seconds';

/** The gateway's ports, as the workload and its Service expose them. */
export interface GatewayPorts {
  /** Container port of the HTTP listener. */
  readonly http: number;
  /** Service port clients address for HTTP. */
  readonly service: number;
  /** Container port of the admin listener (also its Service port). */
  readonly admin: number;
  /** Container and Service port of the TLS passthrough listener, when enabled. */
  readonly tls?: { readonly container: number; readonly service: number };
  /** Port of every node's IP the HTTP listener is also exposed on (node-local gateways only). */
  readonly host?: number;
}

/** What the workload is rendered from. */
export interface GatewayWorkloadInput {
  readonly props: EgressGatewayProps;
  readonly settings: GatewaySettings;
  readonly ports: GatewayPorts;
  readonly configReload: ConfigReload;
  readonly serviceAccount: kplus.ServiceAccount;
  readonly configMaps: GatewayConfigMaps;
  readonly podSelectorLabels: { [key: string]: string };
  readonly labels: { [key: string]: string };
  readonly metadata: (name: string) => ApiObjectMetadata;
}

/** The objects the workload is made of. */
export interface GatewayWorkload {
  readonly deployment?: kplus.Deployment;
  readonly daemonSet?: kplus.DaemonSet;
  readonly workload: kplus.Workload;
  readonly container: kplus.Container;
  readonly service: kplus.Service;
}

/** Adds the workload, its Service and disruption budget under `scope`, in the order they are synthesised. */
export function renderGatewayWorkload(scope: Construct, input: GatewayWorkloadInput): GatewayWorkload {
  const { props, settings, ports, metadata } = input;
  const podAnnotations: { [key: string]: string } = {};
  if (props.linkerdInject ?? true) {
    podAnnotations['linkerd.io/inject'] = 'enabled';
    // The sidecar stops taking connections on SIGTERM; through it the drain delay would be void.
    // It adds a preStop sleep of this length to itself, within terminationGracePeriodSeconds.
    podAnnotations[LINKERD_WAIT_BEFORE_EXIT] = String(settings.drainSeconds);
  }
  if (props.prometheusScrape ?? true) {
    podAnnotations['prometheus.io/scrape'] = 'true';
    podAnnotations['prometheus.io/port'] = String(ports.admin);
    podAnnotations['prometheus.io/path'] = '/metrics';
  }

  const podProps: kplus.WorkloadProps = {
    metadata: metadata(settings.name),
    select: false,
    podMetadata: { labels: input.labels, annotations: podAnnotations },
    serviceAccount: input.serviceAccount,
    automountServiceAccountToken: false,
    securityContext: {
      user: RUN_AS,
      group: RUN_AS,
      fsGroup: RUN_AS,
      ensureNonRoot: true,
      fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH,
    },
    terminationGracePeriod: Duration.seconds(settings.terminationSeconds),
  };
  let deployment: kplus.Deployment | undefined;
  let daemonSet: kplus.DaemonSet | undefined;
  let workload: kplus.Workload;
  if (settings.nodeLocal) {
    daemonSet = new kplus.DaemonSet(scope, 'Resource', podProps);
    workload = daemonSet;
    // cdk8s-plus renders no updateStrategy for DaemonSets. Surge first where possible: the
    // node's new proxy is ready before the old one stops, so the node never loses egress. A
    // host port cannot be held by two pods on one node, so there the old pod goes first.
    // The patch passes through the typed KubeDaemonSet serialiser, which reads IntOrString
    // values from `.value` (the shape of k8s.IntOrString.fromNumber()).
    const intOrString = (n: number) => ({ value: n });
    ApiObject.of(daemonSet).addJsonPatch(JsonPatch.add('/spec/updateStrategy', {
      type: 'RollingUpdate',
      rollingUpdate: ports.host === undefined
        ? { maxSurge: intOrString(1), maxUnavailable: intOrString(0) }
        : { maxSurge: intOrString(0), maxUnavailable: intOrString(1) },
    }));
  } else {
    deployment = new kplus.Deployment(scope, 'Resource', {
      ...podProps,
      // With an autoscaler the Deployment carries no replicas: the autoscaler owns the number.
      replicas: props.autoscaling !== undefined ? undefined : settings.replicas,
      // Surge first: capacity never drops during a rollout, which also keeps the PDB satisfied.
      strategy: kplus.DeploymentStrategy.rollingUpdate({
        maxSurge: kplus.PercentOrAbsolute.absolute(1),
        maxUnavailable: kplus.PercentOrAbsolute.absolute(0),
      }),
    });
    workload = deployment;
  }
  workload.select(kplus.LabelSelector.of({ labels: input.podSelectorLabels }));
  if (input.configReload === ConfigReload.ROLLING) {
    workload.podMetadata.addAnnotation(CHECKSUM_ANNOTATION,
      Lazy.any({ produce: () => createHash('sha256').update(input.configMaps.files()[0].text).digest('hex') }) as unknown as string);
  }

  const containerPorts: kplus.ContainerPort[] = [
    { number: ports.http, name: 'http', ...(ports.host !== undefined ? { hostPort: ports.host } : {}) },
    { number: ports.admin, name: 'admin' },
  ];
  if (ports.tls) containerPorts.push({ number: ports.tls.container, name: 'tls' });
  const container = workload.addContainer({
    name: 'proxy',
    image: (props.image ?? ProxyImage.default()).uri,
    imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
    args: ['--config', `${CONFIG_DIR}/${PROXY_CONFIG_FILE}`],
    ports: containerPorts,
    // The image sets PROXY_RUNTIME_ENV too; here it also holds for an image of another build
    // (ProxyImage.fromRegistry).
    // A variable added later through `container.env.addVariable()` replaces these.
    envVariables: {
      EGRESS_LOG_LEVEL: kplus.EnvValue.fromValue(props.logLevel ?? LogLevel.INFO),
      ...(settings.idleReclaimMs !== undefined ? { EGRESS_IDLE_RECLAIM_MS: kplus.EnvValue.fromValue(String(settings.idleReclaimMs)) } : {}),
      ...Object.fromEntries(Object.entries(PROXY_RUNTIME_ENV).map(([k, v]) => [k, kplus.EnvValue.fromValue(v)])),
    },
    securityContext: {
      user: RUN_AS,
      group: RUN_AS,
      ensureNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: [kplus.Capability.ALL] },
      seccompProfile: { type: kplus.SeccompProfileType.RUNTIME_DEFAULT },
    },
    resources: props.resources ?? workerResources(settings.workers),
    liveness: kplus.Probe.fromHttpGet('/live', {
      port: ports.admin, periodSeconds: Duration.seconds(10), failureThreshold: 3, timeoutSeconds: Duration.seconds(2),
    }),
    readiness: kplus.Probe.fromHttpGet('/ready', {
      port: ports.admin, periodSeconds: Duration.seconds(5), failureThreshold: 2, timeoutSeconds: Duration.seconds(2),
    }),
  });
  // The whole ConfigMap directory, not a subPath: subPath mounts never see updates, and HOT reload needs them.
  // A split config is several ConfigMaps in one projected volume: one directory, swapped by the
  // kubelet as a whole; the main file pins each shard's hash, so a half-updated set is refused.
  const configMaps = input.configMaps;
  const configVolume = kplus.Volume.fromConfigMap(scope, 'ConfigVolume', configMaps.main, { name: 'config' });
  const single = configVolume._toKube.bind(configVolume);
  configVolume._toKube = () => (configMaps.shardConfigMaps.length === 0 ? single() : {
    name: 'config',
    projected: {
      sources: configMaps.all.map((cm) => ({ configMap: { name: cm.name } })),
    },
  });
  container.mount(CONFIG_DIR, configVolume, { readOnly: true });
  // The root filesystem is read-only; Node and TLS libraries still want a scratch directory.
  const tmp = kplus.Volume.fromEmptyDir(scope, 'TmpVolume', 'tmp', { sizeLimit: Size.mebibytes(64) });
  container.mount('/tmp', tmp);

  if (deployment) {
    // cdk8s-plus has no topologySpreadConstraints; patch them in so replicas land on different nodes.
    ApiObject.of(deployment).addJsonPatch(JsonPatch.add('/spec/template/spec/topologySpreadConstraints', [{
      maxSkew: 1,
      topologyKey: 'kubernetes.io/hostname',
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: { ...input.podSelectorLabels } },
    }]));
  }

  const service = new kplus.Service(scope, 'Service', {
    metadata: metadata(settings.serviceName),
    type: kplus.ServiceType.CLUSTER_IP,
    ports: [
      { name: 'http', port: ports.service, targetPort: ports.http, protocol: kplus.Protocol.TCP },
      // Named, so a ServiceMonitor can scrape it; the gateway's NetworkPolicy admits only the
      // metrics scrapers to it (lockDown()).
      { name: 'admin', port: ports.admin, targetPort: ports.admin, protocol: kplus.Protocol.TCP },
    ],
  });
  for (const [k, v] of Object.entries(input.podSelectorLabels)) service.selectLabel(k, v);
  if (settings.nodeLocal) {
    // Clients reach the proxy on their own node only (Linkerd's destination service honours
    // this too, since 2.13); cdk8s-plus has no field for it.
    ApiObject.of(service).addJsonPatch(JsonPatch.add('/spec/internalTrafficPolicy', 'Local'));
  }
  if (ports.tls) service.bind(ports.tls.service, { name: 'tls', targetPort: ports.tls.container, protocol: kplus.Protocol.TCP });

  // A node-local pod serves only its own node, so a budget across nodes would protect nothing
  // (and kubectl drain leaves DaemonSet pods in place anyway).
  if (!settings.nodeLocal && settings.minPods > 1) {
    new ApiObject(scope, 'DisruptionBudget', {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: metadata(settings.name),
      spec: {
        ...(props.minAvailable !== undefined ? { minAvailable: props.minAvailable } : { maxUnavailable: 1 }),
        selector: { matchLabels: { ...input.podSelectorLabels } },
      },
    });
  }
  return { deployment, daemonSet, workload, container, service };
}
