// EgressGateway: the egress proxy's Namespace, ServiceAccount, ConfigMap (the proxy config),
// hardened Deployment (or node-local DaemonSet), Service and PodDisruptionBudget, and the
// registry of what it serves.
import { createHash } from 'crypto';
import { ApiObject, ApiObjectMetadata, Duration, JsonPatch, Lazy, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { CertManagerCertificate, CertManagerCertificateOptions } from './cert-manager-certificate';
import { DnsRewrite, EgressGatewayAddDnsRewriteOptions } from './dns-rewrite';
import type { IEgressGateway } from './egress-gateway-ref';
import {
  EgressClient, EgressGatewayConfigureClientOptions, EgressGatewayLockDownOptions, EgressGatewayPolicy,
  EgressGatewayRestrictEgressOfOptions, EgressGatewayTarget, EgressLockdown,
} from './egress-lockdown';
import { ExternalService, ExternalServiceOptions, ExternalServiceProtocol } from './external-service';
import { GatewayAlerts, GatewayAlertsOptions } from './gateway-alerts';
import { GatewayAutoscaling, GatewayAutoscalingOptions } from './gateway-autoscaling';
import { GatewayDashboard, GatewayDashboardOptions } from './gateway-dashboard';
import { GatewayMetricsMonitor, GatewayMetricsMonitorOptions } from './gateway-metrics-monitor';
import { GATEWAY_FACTS, GatewayFacts, otherAppProblem } from './internal/app-tree';
import { ConfigFile, shardFileName, splitConfig, SplitResult } from './internal/config-files';
import { cidrReason, dnsNameProblem, isDnsLabel } from './internal/dns';
import { durationMs } from './internal/duration';
import { MountRef, mountDir, volumeName } from './internal/mounts';
import { Problems } from './internal/problems';
import { timeoutsToSpec } from './internal/timeouts';
import { resolveWorkers, workerResources } from './internal/workers';
import { IntRange, LIMIT_BOUNDS, TIMEOUT_BOUNDS } from './model/bounds';
import {
  DEFAULT_ADMIN_PORT, DEFAULT_AMBIGUOUS_PATHS, DEFAULT_CONNECT_SNI, DEFAULT_EGRESS_SUFFIX,
  DEFAULT_HTTP_PARENT_PORT, DEFAULT_HTTP_PORT, DEFAULT_LIMITS,
  DEFAULT_TIMEOUTS, DEFAULT_TLS_PORT, DEFAULT_TLS_TARGET_PORT,
} from './model/defaults';
import {
  PROXY_CONFIG_API_VERSION, PROXY_CONFIG_FILE, PROXY_CONFIG_KIND,
  ParentSpec, ProxyConfig, TcpListenerSpec, TimeoutsSpec,
} from './model/proxy-config';
import { ProxyImage } from './proxy-image';
import type { ProxyTimeouts } from './proxy-timeouts';
import type { IRouteParent } from './route-parent';
import { TlsOrigination } from './tls';
import { EnforcementMode, TrafficPolicy } from './traffic-policy';

/** How a config change reaches running gateway pods. */
export enum ConfigReload {
  /**
   * The proxy watches its mounted ConfigMap and swaps to a new config in place (an invalid one
   * is rejected and the last good config kept). Kubelet takes up to about a minute to update
   * the mounted file.
   */
  HOT = 'Hot',
  /**
   * A checksum of the config is written on the pod template, so every config change rolls the
   * pods (slower, but every pod runs a config a fresh start has validated). The contents of
   * mounted Secrets are not part of the checksum: rotating a credential does not roll the pods.
   */
  ROLLING = 'Rolling',
}

/** How the gateway's pods are run. */
export enum GatewayDeployment {
  /**
   * A Deployment of `replicas` pods behind a ClusterIP Service, spread across nodes, kept
   * available by a PodDisruptionBudget and a surge-first rollout.
   */
  DEPLOYMENT = 'Deployment',
  /**
   * A DaemonSet: one proxy on every node, reached through a Service with
   * `internalTrafficPolicy: Local`, so a client's traffic goes to the proxy on its own node and
   * never crosses nodes in plaintext (the node-local `http_proxy` pattern of Linkerd 1).
   * When the node's proxy is not ready, Kubernetes drops the traffic instead of sending it to
   * another node: egress on that node fails closed until the proxy is back.
   *
   * @see https://kubernetes.io/docs/concepts/services-networking/service-traffic-policy/
   */
  NODE_LOCAL = 'NodeLocal',
}

/**
 * What the gateway does with a request path that servers read in different ways: an encoded
 * slash or backslash (`%2F`, `%5C`), a raw backslash, an encoded dot segment (`%2e%2e`), or a `;`
 * parameter on a dot segment (`/get/..;/admin`, a dot segment to Tomcat and Spring). An upstream
 * that decodes `%2F` would serve `/admin` for `/get/..%2Fadmin`, which a `PathPrefix /get` route
 * let through. Like Envoy's `path_with_escaped_slashes_action`.
 *
 * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto
 */
export enum AmbiguousPathAction {
  /**
   * Refuse with 400 when a route that takes the host restricts paths (any path match other than
   * `PathPrefix /`). Where no route looks at the path, it cannot change the decision and is
   * forwarded as received.
   */
  REJECT = 'Reject',
  /**
   * Decode them (`%2F`, `%5C` and `\` become `/`, dot segments lose their escapes and `;`
   * parameters), remove dot segments, and match and forward the result: `/get/..%2Fadmin` is
   * matched and sent as `/admin`.
   */
  UNESCAPE_AND_FORWARD = 'UnescapeAndForward',
  /**
   * Match and forward the path as received (only literal `.` and `..` segments are removed).
   * Only for upstreams known not to decode `%2F` or read `;` parameters: otherwise routes that
   * restrict paths can be bypassed.
   */
  KEEP_UNCHANGED = 'KeepUnchanged',
}

/**
 * CONNECT tunnels whose client speaks TLS first: the server name in the ClientHello (SNI) must be
 * the host the CONNECT named, or the tunnel is closed and counted as denied (reason
 * `sni-mismatch`), so that a tunnel to an allowed host cannot carry TLS to another one behind the
 * same address (domain fronting). A CONNECT to an IP address takes a ClientHello without a name.
 */
export enum ConnectSniPolicy {
  /** The ClientHello must name the CONNECT host; one without a name is refused (`sni-missing`). */
  REQUIRE_MATCH = 'RequireMatch',
  /** A name, when the ClientHello carries one, must be the CONNECT host; none is accepted. */
  MATCH_IF_PRESENT = 'MatchIfPresent',
}

/** The proxy's log level. */
export enum LogLevel {
  /** Everything, including per-phase details. */
  DEBUG = 'debug',
  /** One line per request or connection, plus lifecycle events. */
  INFO = 'info',
  /** Only problems. */
  WARN = 'warn',
  /** Only failures. */
  ERROR = 'error',
}

/** Props of `EgressGateway`. */
export interface EgressGatewayProps {
  /**
   * Name of the gateway: its Deployment, ServiceAccount and PodDisruptionBudget, the prefix of its
   * ConfigMap, and the implicit parent's name when no EgressNetwork is attached.
   * @default "egress-gateway"
   */
  readonly name?: string;

  /**
   * Namespace of every object of the gateway.
   * @default "egress"
   */
  readonly namespace?: string;

  /**
   * Create the Namespace object. Turn off when the namespace is managed elsewhere.
   * @default true
   */
  readonly createNamespace?: boolean;

  /**
   * Name of the gateway's Service. The default makes `proxy.egress.svc.cluster.local` the target
   * of the DNS rewrite, as in the original proof of concept.
   * @default "proxy"
   */
  readonly serviceName?: string;

  /**
   * The cluster's DNS domain, for `serviceFqdn`.
   * @default "cluster.local"
   */
  readonly clusterDomain?: string;

  /**
   * The name suffix that marks a request for the gateway: clients call
   * `http://api.github.com.<suffix>`. It must not resolve outside the cluster, so that a
   * misrouted plaintext call fails instead of leaking.
   * @default "egress.local"
   */
  readonly suffix?: string;

  /**
   * More suffixes the gateway accepts, e.g. during a rename.
   * @default - none
   */
  readonly additionalSuffixes?: string[];

  /**
   * What traffic to undeclared hosts gets, when no EgressNetwork is attached (the gateway is then
   * its own implicit parent): with DENY only the hosts declared by `addExternalService()` leave
   * the cluster (metrics route_kind "ExternalService", route_name the service's name); everything
   * else gets 403. With a network attached, the network and its routes decide; setting both is an error.
   * @see https://linkerd.io/2-edge/reference/egress-network/
   * @default TrafficPolicy.ALLOW
   */
  readonly trafficPolicy?: TrafficPolicy;

  /**
   * Enforce denials or only report them. Overrides the attached network's mode when set.
   * @default EnforcementMode.ENFORCE
   */
  readonly enforcement?: EnforcementMode;

  /**
   * Accept `http_proxy` style requests (absolute-form `GET http://host/...`) and CONNECT tunnels
   * on the HTTP listener, as a node-local forward proxy does.
   * @default - true with GatewayDeployment.NODE_LOCAL (its clients use `http_proxy`), else false
   */
  readonly forwardProxy?: boolean;

  /**
   * How the gateway's pods run: a Deployment, or one proxy per node (DaemonSet). A node-local
   * gateway has no `replicas`, PodDisruptionBudget or topology spread; setting `replicas` with it
   * is an error.
   * @default GatewayDeployment.DEPLOYMENT
   */
  readonly deployment?: GatewayDeployment;

  /**
   * Node-local gateways only: also expose the HTTP listener on this port of every node's IP, so
   * `configureClient(w, { mode: FORWARD_PROXY, proxyAddress: EgressClientProxyAddress.NODE_IP })`
   * can point `http_proxy` at `http://$(NODE_IP):<hostPort>` as Linkerd 1 did.
   *
   * Trade-offs, against the default Service with `internalTrafficPolicy: Local`: the port is
   * open on the node's address to anything that can reach the node (lock the gateway down, and
   * firewall the port at the node or cloud level); whether NetworkPolicies apply to hostPort
   * traffic depends on the CNI (Calico and Cilium evaluate them after the port mapping, some
   * others do not); the Pod Security Standards `baseline` and `restricted` levels forbid host
   * ports, so the gateway's namespace must run at `privileged`; two pods cannot hold the port on
   * one node, so rollouts replace each node's proxy in place (brief unavailability per node)
   * instead of surging; and `$(NODE_IP)` is the node's primary address, an IPv4 address on
   * single-stack IPv4 and dual-stack clusters (IPv6-only clusters should use the Service).
   *
   * A number from 1024 to 65535, outside the NodePort range (30000-32767) and the kubelet's and
   * kube-proxy's ports (10248-10259).
   * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/
   * @default - no host port; clients use the node-local Service
   */
  readonly hostPort?: number;

  /**
   * Add a TLS passthrough listener (Service port 443) that routes by SNI without terminating TLS.
   * @default false
   */
  readonly tlsPassthrough?: boolean;

  /**
   * Per-phase timeouts of the proxy.
   * @default - the proxy's defaults (see ProxyTimeouts)
   */
  readonly timeouts?: ProxyTimeouts;

  /**
   * After SIGTERM, how long the proxy keeps accepting and serving new connections while
   * Kubernetes takes the pod out of the Service's endpoints, kube-proxy rules and mesh load
   * balancers (which goes on for a few seconds after the pod starts terminating). Meanwhile
   * `/ready` fails, every HTTP/1.1 response says `Connection: close` and HTTP/2 clients get
   * GOAWAY. Then the proxy stops listening, without resetting connections already queued, and
   * drains for `shutdownGrace`. The proxy waits itself, so no preStop hook (and no `sleep` in
   * the image) is needed; with `linkerdInject` the Linkerd sidecar is told to outlive the drain.
   * @see https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
   * @default Duration.seconds(5)
   */
  readonly drainDelay?: Duration;

  /**
   * After the drain delay, requests and tunnels already received may finish for this long;
   * what is still running then is answered 503 `DRAINING` (requests without a response yet) or
   * closed (tunnels, responses under way).
   * @default Duration.seconds(20)
   */
  readonly shutdownGrace?: Duration;

  /**
   * The pods' terminationGracePeriodSeconds; must be longer than `drainDelay` plus
   * `shutdownGrace` so Kubernetes never kills a draining proxy.
   * @default - drainDelay plus shutdownGrace plus 10 seconds, rounded up to whole seconds
   */
  readonly terminationGracePeriod?: Duration;

  /**
   * Destination networks the gateway may reach although the built-in address policy refuses
   * them (private ranges, e.g. an on-premises API at 10.20.0.0/16).
   * @default - none
   */
  readonly allowedCidrs?: string[];

  /**
   * The cluster's pod and service ranges: always refused as destinations (wins over allowedCidrs),
   * so the gateway cannot be used to reach in-cluster services.
   * @default - none
   */
  readonly clusterCidrs?: string[];

  /**
   * TLS origination for hosts without an ExternalService of their own.
   * @default TlsOrigination.originate()
   */
  readonly defaultTls?: TlsOrigination;

  /**
   * Concurrent requests and tunnels per pod before new ones get 503.
   * @default 10000
   */
  readonly maxConcurrentRequests?: number;

  /**
   * Largest request header block accepted, in bytes.
   * @default 16384
   */
  readonly maxHeaderBytes?: number;

  /**
   * Open client connections per pod (HTTP, TLS passthrough and TCP listeners together) before
   * new ones are closed at accept. Refusals are counted in `egress_client_connections_refused_total`
   * and logged when the limit starts and stops biting.
   * @default 20000
   */
  readonly maxClientConnections?: number;

  /**
   * How long an idle keep-alive client connection (HTTP/1.1, between requests) stays open.
   * Keep it longer than the clients' own keep-alive idle timeout, so that they close first.
   * @default Duration.seconds(5)
   */
  readonly clientKeepAliveTimeout?: Duration;

  /**
   * What to do with request paths that upstream servers may read as another path than the one
   * the routes matched (`%2F`, `%5C`, `\`, `%2e%2e`, `..;`). Whatever the choice, the path the
   * routes match is the path sent upstream.
   * @default AmbiguousPathAction.REJECT
   */
  readonly ambiguousPaths?: AmbiguousPathAction;

  /**
   * CONNECT tunnels carrying TLS: whether the ClientHello must name the CONNECT host (tunnels
   * that start with anything but a TLS handshake are not affected).
   * @default ConnectSniPolicy.REQUIRE_MATCH
   */
  readonly connectSni?: ConnectSniPolicy;

  /**
   * The proxy image.
   * @default ProxyImage.default()
   */
  readonly image?: ProxyImage;

  /**
   * Number of gateway pods. Above 1 a PodDisruptionBudget keeps all but one available.
   * Not allowed with GatewayDeployment.NODE_LOCAL, which runs one pod per node, nor with
   * `autoscaling`, which decides the number (set `autoscaling.minReplicas` instead).
   * @default 2
   */
  readonly replicas?: number;

  /**
   * Scale the gateway's Deployment with a HorizontalPodAutoscaler (autoscaling/v2) on the proxy
   * container's CPU; the Deployment then leaves `replicas` to it, and the PodDisruptionBudget is
   * sized against `minReplicas`. `{}` takes every default. Not with GatewayDeployment.NODE_LOCAL.
   * @see https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
   * @default - no autoscaler: `replicas` pods
   */
  readonly autoscaling?: GatewayAutoscalingOptions;

  /**
   * The PodDisruptionBudget's `minAvailable`, instead of the default `maxUnavailable: 1`. Must
   * be below `replicas` (or `autoscaling.minReplicas`): a budget that no eviction can satisfy
   * blocks every node drain.
   * @see https://kubernetes.io/docs/tasks/run-application/configure-pdb/
   * @default - maxUnavailable 1 when there are 2 or more pods; no budget for a single pod
   */
  readonly minAvailable?: number;

  /**
   * Container resources. Their CPU request sets the default `workers` (one per whole CPU), and a
   * CPU limit must leave each worker a core.
   * @default - one worker: requests 100m CPU and 128Mi memory, limits 1 CPU and 512Mi memory;
   * N workers: N CPUs requested and as limit, N × 128Mi requested and N × 512Mi as limit
   */
  readonly resources?: kplus.ContainerResources;

  /**
   * Proxy processes per pod. Above 1, a supervising process owns the listeners and the admin
   * port and hands each client connection to one of the workers (node:cluster, round robin);
   * `/metrics` sums every worker's counters in one scrape, a config change is applied by all
   * workers or rejected by all, and SIGTERM drains every worker within `shutdownGrace`.
   *
   * A worker is one Node process and uses at most one core: without `resources` the CPU
   * request and limit follow the count; with them, a CPU limit below the count is an error.
   * `maxConcurrentRequests` and `maxClientConnections` stay per pod, split among the workers.
   * A change takes effect when the pods restart (the rendered resources change with it).
   * @default - one per whole CPU `resources` requests, at least 1 (1 with the default resources)
   */
  readonly workers?: number;

  /**
   * The proxy's log level (environment variable EGRESS_LOG_LEVEL).
   * @default LogLevel.INFO
   */
  readonly logLevel?: LogLevel;

  /**
   * How config changes reach running pods.
   * @default ConfigReload.HOT
   */
  readonly configReload?: ConfigReload;

  /**
   * Annotate the pods with `linkerd.io/inject: enabled`, so Linkerd mTLS protects the plaintext
   * hop from workloads to the gateway.
   * @see https://linkerd.io/2-edge/features/proxy-injection/
   * @default true
   */
  readonly linkerdInject?: boolean;

  /**
   * Annotate the pods for Prometheus scraping (`prometheus.io/scrape`, port, path `/metrics`):
   * the fallback for Prometheus setups without the Prometheus Operator.
   * @default true
   */
  readonly prometheusScrape?: boolean;

  /**
   * Render a ServiceMonitor (or PodMonitor) that scrapes the admin port, which the Service
   * names `admin`. Needs the Prometheus Operator's CRDs, so it is off unless set; `{}` takes
   * every default. Same as `addMetricsMonitor()`.
   * @see https://prometheus-operator.dev/docs/developer/getting-started/
   * @default - none: Prometheus finds the pods through the prometheus.io annotations
   */
  readonly metricsMonitor?: GatewayMetricsMonitorOptions;

  /**
   * Render a PrometheusRule with the gateway's alerts (each with a runbook annotation). Needs the
   * Prometheus Operator's CRDs, so it is off unless set; `{}` takes every default. Same as `addAlerts()`.
   * @default - no alerts
   */
  readonly alerts?: GatewayAlertsOptions;

  /**
   * Render the Grafana dashboard in a ConfigMap labelled for Grafana's dashboard sidecar. Off
   * unless set; `{}` takes every default. Same as `addDashboard()`.
   * @default - no dashboard ConfigMap (the JSON still ships in the package)
   */
  readonly dashboard?: GatewayDashboardOptions;

  /**
   * The EgressNetwork (parent) this gateway enforces; same as calling `attachNetwork()`.
   * @default - an implicit parent named after the gateway
   */
  readonly network?: IRouteParent;
}

const CONFIG_DIR = '/etc/egress';
const RUN_AS = 65532;
const FIRST_TCP_LISTENER_PORT = 10000;
const CHECKSUM_ANNOTATION = 'egress.cdk8s.io/config-checksum';
const LINKERD_OPAQUE_PORTS = 'config.linkerd.io/opaque-ports';
const DEFAULT_SHUTDOWN_GRACE_MS = DEFAULT_TIMEOUTS.shutdownGraceMs;
// Kubernetes must not SIGKILL a pod that is still draining; 10 s covers the Linkerd sidecar's own stop.
const TERMINATION_MARGIN_S = 10;
/** Keeps Linkerd's sidecar serving after SIGTERM for this many seconds (a preStop sleep it adds to itself). */
const LINKERD_WAIT_BEFORE_EXIT = 'config.alpha.linkerd.io/proxy-wait-before-exit-seconds';
// Host ports a node-local proxy must not take: below 1024 (system services), the kubelet and
// kube-proxy (10248-10259), and the default NodePort range, where kube-proxy owns the ports.
const HOST_PORT_MIN = 1024;
const NODE_COMPONENT_PORTS = [10248, 10259];
const NODE_PORT_RANGE = [30000, 32767];
/** Linkerd 1's http_proxy port, suggested in errors. */
const SUGGESTED_HOST_PORT = 4140;

interface ServicePortUse {
  readonly protocol: 'http' | 'tcp' | 'tls' | 'admin';
  readonly owner: string;
}

/**
 * The egress gateway: the proxy that receives plaintext calls to `<host>.<suffix>` from
 * workloads and originates verified TLS to the host, with its Kubernetes objects.
 *
 * @example
 * const gateway = new EgressGateway(chart, 'Egress', {
 *   trafficPolicy: TrafficPolicy.DENY, // only the declared services leave the cluster
 *   tlsPassthrough: true,
 * });
 * gateway.addExternalService('Github', {
 *   host: 'api.github.com',
 *   injectHeaders: [InjectedHeader.fromSecret('Authorization', 'github-token', 'header')],
 * });
 * gateway.addDnsRewrite('Dns', { flavor: DnsFlavor.corednsCustom() });
 * gateway.restrictEgressOf(Namespaces.select(chart, 'Apps', { names: ['apps'] }));
 */
export class EgressGateway extends Construct implements IEgressGateway {
  /** Gateway name (Deployment, ServiceAccount, implicit parent). */
  public readonly name: string;
  /** Namespace of the gateway's objects. */
  public readonly namespaceName: string;
  /** Name of the gateway's Service. */
  public readonly serviceName: string;
  /** `<service>.<namespace>.svc.<clusterDomain>`: the DNS rewrite target. */
  public readonly serviceFqdn: string;
  /** The main suffix (`egress.local`). */
  public readonly suffix: string;
  /** Every suffix the gateway accepts, the main one first. */
  public readonly suffixes: string[];
  /** Container port of the HTTP listener. */
  public readonly httpPort: number;
  /** Service port clients address for HTTP (80). */
  public readonly servicePort: number;
  /** Container port of the TLS passthrough listener, when enabled. */
  public readonly tlsPort?: number;
  /** Service port of the TLS passthrough listener (443), when enabled. */
  public readonly tlsServicePort?: number;
  /** Container port of the admin listener (/metrics, /live, /ready). */
  public readonly adminPort: number;
  /** Labels that select the gateway pods. */
  public readonly podSelectorLabels: { [key: string]: string };
  /** Labels every object of the gateway carries (the selector labels and `part-of`). */
  public readonly commonLabels: { [key: string]: string };
  /** The HorizontalPodAutoscaler, when `autoscaling` is set. */
  public readonly autoscaling?: GatewayAutoscaling;
  /** The Namespace object, when the gateway creates it. */
  public readonly namespace?: kplus.Namespace;
  /** The pods' ServiceAccount. */
  public readonly serviceAccount: kplus.ServiceAccount;
  /**
   * The ConfigMap holding the proxy config under `config.json`. A config past one ConfigMap's
   * size is split: this one keeps the settings and lists the shard ConfigMaps (`configMaps`).
   */
  public readonly configMap: kplus.ConfigMap;
  /** How the pods run. */
  public readonly deploymentMode: GatewayDeployment;
  /** The proxy Deployment (GatewayDeployment.DEPLOYMENT). */
  public readonly deployment?: kplus.Deployment;
  /** The proxy DaemonSet (GatewayDeployment.NODE_LOCAL). */
  public readonly daemonSet?: kplus.DaemonSet;
  /** The proxy workload, whichever kind it is: pod template, containers, scheduling. */
  public readonly workload: kplus.Workload;
  /** Port of every node's IP the HTTP listener is also exposed on (node-local gateways only). */
  public readonly hostPort?: number;
  /** The proxy container. */
  public readonly container: kplus.Container;
  /** The gateway's Service. */
  public readonly service: kplus.Service;
  /** How config changes reach the pods. */
  public readonly configReload: ConfigReload;
  /** Proxy worker processes per pod. */
  public readonly workers: number;
  /** Whether the HTTP listener accepts `http_proxy` requests and CONNECT tunnels. */
  public readonly forwardProxy: boolean;
  /** Destination ranges allowed although the built-in address policy refuses them. */
  public readonly allowedCidrs: string[];
  /** The cluster's pod and service ranges, always refused as destinations. */
  public readonly clusterCidrs: string[];

  private readonly props: EgressGatewayProps;
  private readonly configMetadata: (name: string) => ApiObjectMetadata;
  private readonly shardConfigMaps: kplus.ConfigMap[] = [];
  /**
   * The split made when the app was last validated, which starts every synthesis. Cleared by
   * this gateway's own mutators; a route added to the attached network afterwards shows up at
   * the next synthesis, which validates again.
   */
  private splitCache?: SplitResult;
  private readonly services: ExternalService[] = [];
  private readonly servicesByHost = new Map<string, ExternalService>();
  private readonly servicesByName = new Map<string, ExternalService>();
  private readonly mounted = new Set<string>();
  private readonly servicePorts = new Map<number, ServicePortUse>();
  private readonly tcpListeners: TcpListenerSpec[] = [];
  private readonly timeoutsSpec: TimeoutsSpec;
  /** Seconds the proxy may run after SIGTERM: drain delay plus shutdown grace, rounded up. */
  private readonly drainSeconds: number;
  private readonly defaultTls: TlsOrigination;
  private attached?: IRouteParent;
  private monitor?: GatewayMetricsMonitor;
  private alertsConstruct?: GatewayAlerts;
  private dashboardConstruct?: GatewayDashboard;

  public constructor(scope: Construct, id: string, props: EgressGatewayProps = {}) {
    super(scope, id);
    this.props = props;
    const problems = new Problems(`EgressGateway "${this.node.path}"`);

    this.name = props.name ?? 'egress-gateway';
    this.namespaceName = props.namespace ?? 'egress';
    this.serviceName = props.serviceName ?? 'proxy';
    const clusterDomain = props.clusterDomain ?? 'cluster.local';
    for (const [prop, value] of [['name', this.name], ['namespace', this.namespaceName], ['serviceName', this.serviceName]] as const) {
      if (!isDnsLabel(value)) {
        problems.add(prop, value, 'is not a DNS label (lower-case letters, digits and "-", at most 63 characters)',
          `use e.g. ${JSON.stringify(value.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'egress')}`);
      }
    }
    const domainProblem = dnsNameProblem(clusterDomain);
    if (domainProblem) problems.add('clusterDomain', clusterDomain, domainProblem.rule, domainProblem.fix);
    this.serviceFqdn = `${this.serviceName}.${this.namespaceName}.svc.${clusterDomain}`;

    this.suffix = props.suffix ?? DEFAULT_EGRESS_SUFFIX;
    this.suffixes = [this.suffix];
    const suffixProblem = dnsNameProblem(this.suffix);
    if (suffixProblem) problems.add('suffix', this.suffix, suffixProblem.rule, suffixProblem.fix);
    (props.additionalSuffixes ?? []).forEach((s, i) => {
      const p = dnsNameProblem(s);
      if (p) problems.add(`additionalSuffixes[${i}]`, s, p.rule, p.fix);
      else if (this.suffixes.includes(s)) problems.add(`additionalSuffixes[${i}]`, s, 'is already accepted', 'list each suffix once and leave the main one out');
      else this.suffixes.push(s);
    });

    checkEnum(problems, 'deployment', props.deployment, GatewayDeployment, 'GatewayDeployment');
    const nodeLocal = props.deployment === GatewayDeployment.NODE_LOCAL;
    const replicas = props.replicas ?? 2;
    if (nodeLocal && props.replicas !== undefined) {
      problems.add('replicas', props.replicas, "cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL, which runs exactly one proxy per node",
        'remove replicas (choose the nodes with the DaemonSet\'s scheduling instead), or use GatewayDeployment.DEPLOYMENT');
    } else if (!Number.isInteger(replicas) || replicas < 1) {
      problems.add('replicas', replicas, 'must be a whole number of at least 1', 'use 2 or more so a node failure or rollout never stops egress');
    }
    // The fewest pods the gateway runs with: what the disruption budget is measured against.
    let floor = replicas;
    if (props.autoscaling !== undefined) {
      if (nodeLocal) {
        problems.add('autoscaling', props.autoscaling, "cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL, which runs exactly one proxy per node",
          'remove autoscaling, or use GatewayDeployment.DEPLOYMENT');
      } else if (props.replicas !== undefined) {
        problems.add('replicas', props.replicas, "cannot be set with 'autoscaling', which decides the number of pods (a fixed replicas would reset the autoscaler at every apply)",
          `remove replicas and set autoscaling.minReplicas: ${props.replicas}`);
      } else {
        floor = GatewayAutoscaling._checkOptions(problems, 'autoscaling.', props.autoscaling)[0];
      }
      const cpuRequest = props.resources?.cpu?.request;
      if (props.resources && !cpuRequest) {
        problems.add('resources', 'no cpu.request', "must request CPU when 'autoscaling' scales on CPU utilization (a percentage of the request)",
          'add cpu: { request: Cpu.millis(100) } to resources');
      }
    }
    if (props.minAvailable !== undefined) {
      const m = props.minAvailable;
      if (nodeLocal) {
        problems.add('minAvailable', m, "cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL: a node-local pod serves only its own node, so it has no disruption budget",
          'remove minAvailable');
      } else if (!Number.isInteger(m) || m < 1) {
        problems.add('minAvailable', m, 'must be a whole number of at least 1', 'leave it unset for maxUnavailable 1');
      } else if (m >= floor) {
        const of = props.autoscaling !== undefined ? `'autoscaling.minReplicas' (${floor})` : `'replicas' (${floor})`;
        problems.add('minAvailable', m, `must be below ${of}: with ${m} of ${floor} pods required, no pod may ever be evicted and every node drain blocks`,
          `use at most ${Math.max(1, floor - 1)}, or raise ${props.autoscaling !== undefined ? 'autoscaling.minReplicas' : 'replicas'} to ${m + 1}`);
      }
    }
    if (props.hostPort !== undefined) {
      const hp = props.hostPort;
      if (!nodeLocal) {
        problems.add('hostPort', hp, "needs 'deployment' GatewayDeployment.NODE_LOCAL: a host port only means \"the proxy on my node\" when every node runs one",
          'set deployment: GatewayDeployment.NODE_LOCAL, or remove hostPort and let clients use the Service');
      } else if (!Number.isInteger(hp) || hp < HOST_PORT_MIN || hp > 65535) {
        problems.add('hostPort', hp, `must be a whole number from ${HOST_PORT_MIN} to 65535 (lower ports belong to the node's system services)`, `use e.g. ${SUGGESTED_HOST_PORT}`);
      } else if (hp >= NODE_COMPONENT_PORTS[0] && hp <= NODE_COMPONENT_PORTS[1]) {
        problems.add('hostPort', hp, `is in ${NODE_COMPONENT_PORTS.join('-')}, where the kubelet and kube-proxy listen on every node`, `use e.g. ${SUGGESTED_HOST_PORT}`);
      } else if (hp >= NODE_PORT_RANGE[0] && hp <= NODE_PORT_RANGE[1]) {
        problems.add('hostPort', hp, `is in the NodePort range ${NODE_PORT_RANGE.join('-')}, where kube-proxy may bind it for any Service`, `use e.g. ${SUGGESTED_HOST_PORT}`);
      }
      if (props.forwardProxy === false) {
        problems.add('forwardProxy', false, `cannot be combined with 'hostPort' ${hp}: clients of a host port reach the proxy only through http_proxy, which needs the forward proxy`,
          'leave forwardProxy unset (on for node-local gateways), or remove hostPort');
      }
    }
    checkEnum(problems, 'trafficPolicy', props.trafficPolicy, TrafficPolicy, 'TrafficPolicy');
    checkEnum(problems, 'enforcement', props.enforcement, EnforcementMode, 'EnforcementMode');
    checkEnum(problems, 'configReload', props.configReload, ConfigReload, 'ConfigReload');
    checkEnum(problems, 'logLevel', props.logLevel, LogLevel, 'LogLevel');
    checkEnum(problems, 'ambiguousPaths', props.ambiguousPaths, AmbiguousPathAction, 'AmbiguousPathAction');
    checkEnum(problems, 'connectSni', props.connectSni, ConnectSniPolicy, 'ConnectSniPolicy');

    const shutdownGraceMs = durationMs(problems, 'shutdownGrace', props.shutdownGrace) ?? DEFAULT_SHUTDOWN_GRACE_MS;
    let drainDelayMs = durationMs(problems, 'drainDelay', props.drainDelay) ?? DEFAULT_TIMEOUTS.drainDelayMs;
    if (drainDelayMs > TIMEOUT_BOUNDS.drainDelayMs.max) {
      problems.add('drainDelay', props.drainDelay!.toHumanString(), `must be at most ${TIMEOUT_BOUNDS.drainDelayMs.max / 1000} s: endpoint removal does not take longer`,
        `use e.g. Duration.seconds(${DEFAULT_TIMEOUTS.drainDelayMs / 1000}), or Duration.seconds(0) to stop listening at once`);
      drainDelayMs = DEFAULT_TIMEOUTS.drainDelayMs;
    }
    // The proxy runs for at most the delay plus the grace after SIGTERM.
    const drainMs = drainDelayMs + shutdownGraceMs;
    const terminationMs = durationMs(problems, 'terminationGracePeriod', props.terminationGracePeriod);
    const terminationS = terminationMs !== undefined ? terminationMs / 1000 : Math.ceil(drainMs / 1000) + TERMINATION_MARGIN_S;
    if (terminationMs !== undefined && (!Number.isInteger(terminationS) || terminationMs <= drainMs)) {
      problems.add('terminationGracePeriod', props.terminationGracePeriod!.toHumanString(),
        `must be whole seconds and longer than 'drainDelay' plus 'shutdownGrace' (${drainDelayMs / 1000} s + ${shutdownGraceMs / 1000} s), or Kubernetes kills the proxy while it drains`,
        `use at least Duration.seconds(${Math.floor(drainMs / 1000) + 1}), or leave it unset for drainDelay + shutdownGrace + ${TERMINATION_MARGIN_S} s`);
    }
    this.drainSeconds = Math.ceil(drainMs / 1000);
    this.timeoutsSpec = { ...DEFAULT_TIMEOUTS, ...timeoutsToSpec(problems, 'timeouts', props.timeouts ?? {}), shutdownGraceMs, drainDelayMs };

    this.allowedCidrs = checkCidrs(problems, 'allowedCidrs', props.allowedCidrs);
    this.clusterCidrs = checkCidrs(problems, 'clusterCidrs', props.clusterCidrs);

    this.defaultTls = props.defaultTls ?? TlsOrigination.originate();
    if (!this.defaultTls.enabled) {
      problems.add('defaultTls', 'TlsOrigination.disabled()', 'would send every undeclared host plaintext over the internet',
        'keep TLS on here and declare the plaintext upstreams as ExternalServices with tls: TlsOrigination.disabled()');
    }
    if (props.maxConcurrentRequests !== undefined && (!Number.isInteger(props.maxConcurrentRequests) || props.maxConcurrentRequests < 1)) {
      problems.add('maxConcurrentRequests', props.maxConcurrentRequests, 'must be a whole number of at least 1', `use e.g. ${DEFAULT_LIMITS.maxConcurrent}`);
    }
    checkRange(problems, 'maxHeaderBytes', props.maxHeaderBytes, LIMIT_BOUNDS.maxHeaderBytes, DEFAULT_LIMITS.maxHeaderBytes);
    checkRange(problems, 'maxClientConnections', props.maxClientConnections, LIMIT_BOUNDS.maxClientConnections, DEFAULT_LIMITS.maxClientConnections);
    const clientKeepAliveMs = durationMs(problems, 'clientKeepAliveTimeout', props.clientKeepAliveTimeout);
    if (clientKeepAliveMs !== undefined) {
      const { min, max } = TIMEOUT_BOUNDS.clientKeepAliveMs;
      if (clientKeepAliveMs < min || clientKeepAliveMs > max) {
        problems.add('clientKeepAliveTimeout', props.clientKeepAliveTimeout!.toHumanString(), `must be from ${min} ms to ${max / 1000} s`,
          `use e.g. Duration.seconds(${DEFAULT_TIMEOUTS.clientKeepAliveMs / 1000})`);
      } else {
        this.timeoutsSpec = { ...this.timeoutsSpec, clientKeepAliveMs };
      }
    }
    this.workers = resolveWorkers(problems, props.workers, props.resources);
    problems.throwIfAny();

    this.configReload = props.configReload ?? ConfigReload.HOT;
    this.deploymentMode = props.deployment ?? GatewayDeployment.DEPLOYMENT;
    this.forwardProxy = props.forwardProxy ?? nodeLocal;
    this.hostPort = props.hostPort;
    this.httpPort = DEFAULT_HTTP_PORT;
    this.servicePort = DEFAULT_HTTP_PARENT_PORT;
    this.adminPort = DEFAULT_ADMIN_PORT;
    if (props.tlsPassthrough) {
      this.tlsPort = DEFAULT_TLS_PORT;
      this.tlsServicePort = 443;
    }
    this.podSelectorLabels = {
      'app.kubernetes.io/name': 'egress-gateway',
      'app.kubernetes.io/instance': this.name,
    };
    const labels = { ...this.podSelectorLabels, 'app.kubernetes.io/part-of': 'cdk8s-egress' };
    this.commonLabels = { ...labels };
    const metadata = (name: string) => ({ name, namespace: this.namespaceName, labels });

    if (props.createNamespace ?? true) {
      this.namespace = new kplus.Namespace(this, 'Namespace', { metadata: { name: this.namespaceName, labels } });
    }

    this.serviceAccount = new kplus.ServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(this.name),
      automountToken: false,
    });

    this.configMetadata = metadata;
    this.configMap = new kplus.ConfigMap(this, 'ConfigMap', { metadata: metadata(`${this.name}-config`) });
    // Lazy: services and networks added after construction must land in the rendered config.
    this.configMap.addData(PROXY_CONFIG_FILE, Lazy.any({ produce: () => this.configFiles()[0].text }) as unknown as string);

    const podAnnotations: { [key: string]: string } = {};
    if (props.linkerdInject ?? true) {
      podAnnotations['linkerd.io/inject'] = 'enabled';
      // The sidecar stops taking connections on SIGTERM; through it the drain delay would be void.
      // It adds a preStop sleep of this length to itself, within terminationGracePeriodSeconds.
      podAnnotations[LINKERD_WAIT_BEFORE_EXIT] = String(this.drainSeconds);
    }
    if (props.prometheusScrape ?? true) {
      podAnnotations['prometheus.io/scrape'] = 'true';
      podAnnotations['prometheus.io/port'] = String(this.adminPort);
      podAnnotations['prometheus.io/path'] = '/metrics';
    }

    const podProps: kplus.WorkloadProps = {
      metadata: metadata(this.name),
      select: false,
      podMetadata: { labels, annotations: podAnnotations },
      serviceAccount: this.serviceAccount,
      automountServiceAccountToken: false,
      securityContext: {
        user: RUN_AS,
        group: RUN_AS,
        fsGroup: RUN_AS,
        ensureNonRoot: true,
        fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH,
      },
      terminationGracePeriod: Duration.seconds(terminationS),
    };
    if (nodeLocal) {
      this.daemonSet = new kplus.DaemonSet(this, 'Resource', podProps);
      this.workload = this.daemonSet;
      // cdk8s-plus renders no updateStrategy for DaemonSets. Surge first where possible: the
      // node's new proxy is ready before the old one stops, so the node never loses egress. A
      // host port cannot be held by two pods on one node, so there the old pod goes first.
      // The patch passes through the typed KubeDaemonSet serialiser, which reads IntOrString
      // values from `.value` (the shape of k8s.IntOrString.fromNumber()).
      const intOrString = (n: number) => ({ value: n });
      ApiObject.of(this.daemonSet).addJsonPatch(JsonPatch.add('/spec/updateStrategy', {
        type: 'RollingUpdate',
        rollingUpdate: this.hostPort === undefined
          ? { maxSurge: intOrString(1), maxUnavailable: intOrString(0) }
          : { maxSurge: intOrString(0), maxUnavailable: intOrString(1) },
      }));
    } else {
      this.deployment = new kplus.Deployment(this, 'Resource', {
        ...podProps,
        // With an autoscaler the Deployment carries no replicas: the autoscaler owns the number.
        replicas: props.autoscaling !== undefined ? undefined : replicas,
        // Surge first: capacity never drops during a rollout, which also keeps the PDB satisfied.
        strategy: kplus.DeploymentStrategy.rollingUpdate({
          maxSurge: kplus.PercentOrAbsolute.absolute(1),
          maxUnavailable: kplus.PercentOrAbsolute.absolute(0),
        }),
      });
      this.workload = this.deployment;
    }
    this.workload.select(kplus.LabelSelector.of({ labels: this.podSelectorLabels }));
    if (this.configReload === ConfigReload.ROLLING) {
      this.workload.podMetadata.addAnnotation(CHECKSUM_ANNOTATION,
        Lazy.any({ produce: () => createHash('sha256').update(this.configFiles()[0].text).digest('hex') }) as unknown as string);
    }

    const ports: kplus.ContainerPort[] = [
      { number: this.httpPort, name: 'http', ...(this.hostPort !== undefined ? { hostPort: this.hostPort } : {}) },
      { number: this.adminPort, name: 'admin' },
    ];
    if (this.tlsPort) ports.push({ number: this.tlsPort, name: 'tls' });
    this.container = this.workload.addContainer({
      name: 'proxy',
      image: (props.image ?? ProxyImage.default()).uri,
      imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      args: ['--config', `${CONFIG_DIR}/${PROXY_CONFIG_FILE}`],
      ports,
      envVariables: { EGRESS_LOG_LEVEL: kplus.EnvValue.fromValue(props.logLevel ?? LogLevel.INFO) },
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
      resources: props.resources ?? workerResources(this.workers),
      liveness: kplus.Probe.fromHttpGet('/live', {
        port: this.adminPort, periodSeconds: Duration.seconds(10), failureThreshold: 3, timeoutSeconds: Duration.seconds(2),
      }),
      readiness: kplus.Probe.fromHttpGet('/ready', {
        port: this.adminPort, periodSeconds: Duration.seconds(5), failureThreshold: 2, timeoutSeconds: Duration.seconds(2),
      }),
    });
    // The whole ConfigMap directory, not a subPath: subPath mounts never see updates, and HOT reload needs them.
    // A split config is several ConfigMaps in one projected volume: one directory, swapped by the
    // kubelet as a whole; the main file pins each shard's hash, so a half-updated set is refused.
    const configVolume = kplus.Volume.fromConfigMap(this, 'ConfigVolume', this.configMap, { name: 'config' });
    const single = configVolume._toKube.bind(configVolume);
    configVolume._toKube = () => (this.shardConfigMaps.length === 0 ? single() : {
      name: 'config',
      projected: {
        sources: [this.configMap, ...this.shardConfigMaps].map((cm) => ({ configMap: { name: cm.name } })),
      },
    });
    this.container.mount(CONFIG_DIR, configVolume, { readOnly: true });
    // The root filesystem is read-only; Node and TLS libraries still want a scratch directory.
    const tmp = kplus.Volume.fromEmptyDir(this, 'TmpVolume', 'tmp', { sizeLimit: cdk8sSize(64) });
    this.container.mount('/tmp', tmp);

    if (this.deployment) {
      // cdk8s-plus has no topologySpreadConstraints; patch them in so replicas land on different nodes.
      ApiObject.of(this.deployment).addJsonPatch(JsonPatch.add('/spec/template/spec/topologySpreadConstraints', [{
        maxSkew: 1,
        topologyKey: 'kubernetes.io/hostname',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: { ...this.podSelectorLabels } },
      }]));
    }

    this.service = new kplus.Service(this, 'Service', {
      metadata: metadata(this.serviceName),
      type: kplus.ServiceType.CLUSTER_IP,
      ports: [
        { name: 'http', port: this.servicePort, targetPort: this.httpPort, protocol: kplus.Protocol.TCP },
        // Named, so a ServiceMonitor can scrape it; the gateway's NetworkPolicy admits only the
        // metrics scrapers to it (lockDown()).
        { name: 'admin', port: this.adminPort, targetPort: this.adminPort, protocol: kplus.Protocol.TCP },
      ],
    });
    for (const [k, v] of Object.entries(this.podSelectorLabels)) this.service.selectLabel(k, v);
    if (nodeLocal) {
      // Clients reach the proxy on their own node only (Linkerd's destination service honours
      // this too, since 2.13); cdk8s-plus has no field for it.
      ApiObject.of(this.service).addJsonPatch(JsonPatch.add('/spec/internalTrafficPolicy', 'Local'));
    }
    this.servicePorts.set(this.servicePort, { protocol: 'http', owner: 'the HTTP listener' });
    this.servicePorts.set(this.adminPort, { protocol: 'admin', owner: 'the admin listener (/metrics, /ready, /live)' });
    if (this.tlsPort && this.tlsServicePort) {
      this.service.bind(this.tlsServicePort, { name: 'tls', targetPort: this.tlsPort, protocol: kplus.Protocol.TCP });
      this.servicePorts.set(this.tlsServicePort, { protocol: 'tls', owner: 'the TLS passthrough listener' });
    }

    // A node-local pod serves only its own node, so a budget across nodes would protect nothing
    // (and kubectl drain leaves DaemonSet pods in place anyway).
    if (!nodeLocal && floor > 1) {
      new ApiObject(this, 'DisruptionBudget', {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: metadata(this.name),
        spec: {
          ...(props.minAvailable !== undefined ? { minAvailable: props.minAvailable } : { maxUnavailable: 1 }),
          selector: { matchLabels: { ...this.podSelectorLabels } },
        },
      });
    }
    if (props.autoscaling !== undefined && this.deployment) {
      this.autoscaling = new GatewayAutoscaling(this, 'Autoscaling', {
        ...props.autoscaling,
        target: this.deployment,
        container: this.container,
        name: this.name,
        namespace: this.namespaceName,
        commonLabels: labels,
      });
    }

    this.mount(this.defaultTls._mounts());
    if (props.network) this.attachNetwork(props.network);
    if (props.metricsMonitor !== undefined) this.addMetricsMonitor(props.metricsMonitor);
    if (props.alerts !== undefined) this.addAlerts(props.alerts);
    if (props.dashboard !== undefined) this.addDashboard(props.dashboard);

    this.node.addValidation({ validate: () => this.crossChecks() });
    this.node.addValidation({ validate: () => this.prepareConfigFiles() });
    Object.defineProperty(this, GATEWAY_FACTS, {
      value: (): GatewayFacts => ({ network: this.attached, trafficPolicy: props.trafficPolicy, declaredServices: this.services.length }),
    });
  }

  /** The attached EgressNetwork, if any. */
  public get network(): IRouteParent | undefined {
    return this.attached;
  }

  /** The ServiceMonitor or PodMonitor, once added. */
  public get metricsMonitor(): GatewayMetricsMonitor | undefined {
    return this.monitor;
  }

  /** The PrometheusRule of the gateway's alerts, once added. */
  public get alerts(): GatewayAlerts | undefined {
    return this.alertsConstruct;
  }

  /** The Grafana dashboard ConfigMap, once added. */
  public get dashboard(): GatewayDashboard | undefined {
    return this.dashboardConstruct;
  }

  /**
   * Renders a ServiceMonitor (default) or PodMonitor named after the gateway that scrapes the
   * admin port of every pod (Prometheus Operator CRDs). One per gateway.
   */
  public addMetricsMonitor(options: GatewayMetricsMonitorOptions = {}): GatewayMetricsMonitor {
    if (this.monitor) throw new Error(`EgressGateway "${this.node.path}": 'metricsMonitor' is already added (${this.monitor.kind}); a gateway has one, so set it once, in props or with addMetricsMonitor()`);
    this.monitor = new GatewayMetricsMonitor(this, 'MetricsMonitor', {
      ...options, name: this.name, namespace: this.namespaceName, selectorLabels: this.podSelectorLabels, commonLabels: this.commonLabels, portName: 'admin',
    });
    return this.monitor;
  }

  /** Renders the PrometheusRule with the gateway's alerts (Prometheus Operator CRDs). One per gateway. */
  public addAlerts(options: GatewayAlertsOptions = {}): GatewayAlerts {
    if (this.alertsConstruct) throw new Error(`EgressGateway "${this.node.path}": 'alerts' are already added; set them once, in props or with addAlerts()`);
    this.alertsConstruct = new GatewayAlerts(this, 'Alerts', { ...options, gateway: this });
    return this.alertsConstruct;
  }

  /** Renders the Grafana dashboard ConfigMap (`<name>-dashboard`). One per gateway. */
  public addDashboard(options: GatewayDashboardOptions = {}): GatewayDashboard {
    if (this.dashboardConstruct) throw new Error(`EgressGateway "${this.node.path}": 'dashboard' is already added; set it once, in props or with addDashboard()`);
    this.dashboardConstruct = new GatewayDashboard(this, 'Dashboard', {
      ...options, name: `${this.name}-dashboard`, defaultNamespace: this.namespaceName, commonLabels: this.commonLabels,
    });
    return this.dashboardConstruct;
  }

  /**
   * Renders a cert-manager Certificate for a client certificate in the gateway's namespace and
   * returns it; pass its `certificate`, `privateKey` (and `caBundle`) to `TlsOrigination.originate()`.
   * The gateway mounts its Secret like any other, and the proxy picks up renewals without a restart.
   */
  public addClientCertificate(id: string, options: CertManagerCertificateOptions): CertManagerCertificate {
    // `<id>Certificate`, so the certificate and the ExternalService that uses it can share an id.
    return new CertManagerCertificate(this, `${id}Certificate`, {
      ...options,
      namespace: this.namespaceName,
      defaultName: `${this.name}-${id.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '')}`,
      defaultCommonName: this.name,
      commonLabels: this.commonLabels,
    });
  }

  /**
   * Container ports clients' connections arrive on: the HTTP listener, the TLS passthrough
   * listener when enabled, and one per TCP external service port (grows as services are added).
   */
  public get proxyPorts(): number[] {
    return [this.httpPort, ...(this.tlsPort ? [this.tlsPort] : []), ...this.tcpListeners.map((l) => l.port)];
  }

  /**
   * Upstream ports the gateway dials: 443 (TLS to undeclared hosts) plus every external
   * service's target ports and explicit endpoint ports, sorted (grows as services are added).
   */
  public get upstreamPorts(): number[] {
    const ports = new Set<number>([DEFAULT_TLS_TARGET_PORT]);
    for (const svc of this.services) {
      for (const p of svc.ports) ports.add(p.targetPort!);
      for (const e of svc.endpoints) if (e.port !== undefined) ports.add(e.port);
    }
    return [...ports].sort((a, b) => a - b);
  }

  /** The external services this gateway serves, in the order they were added. */
  public get externalServices(): ExternalService[] {
    return [...this.services];
  }

  /**
   * Makes `network` the parent this gateway enforces: its trafficPolicy, networks and routes go
   * into the proxy config. A gateway has one parent.
   */
  public attachNetwork(network: IRouteParent): void {
    if (this.attached === network) return;
    this.splitCache = undefined;
    const foreign = otherAppProblem(this, network);
    if (foreign) {
      throw new Error(`EgressGateway "${this.node.path}": 'network' EgressNetwork "${network.node.path}" ${foreign}, so the gateway would enforce routes whose objects are written to the other App's manifests; attach a network of this App, or create the gateway in the network's App`);
    }
    network._bindGateway(this);
    if (this.attached) {
      throw new Error(`EgressGateway "${this.node.path}": 'network' EgressNetwork "${network.node.path}" cannot be attached because EgressNetwork "${this.attached.node.path}" already is, and a gateway enforces exactly one parent; attach "${network.node.path}" to another EgressGateway, or move its routes to "${this.attached.node.path}"`);
    }
    this.attached = network;
  }

  /** Declares an external service this gateway serves and returns it. */
  public addExternalService(id: string, options: ExternalServiceOptions): ExternalService {
    return new ExternalService(this, id, { ...options, gateway: this });
  }

  /**
   * @internal called by ExternalService: checks that its host, name and client ports are free on
   * this gateway, then mounts what it reads and exposes its ports.
   */
  public _registerExternalService(svc: ExternalService): void {
    this.splitCache = undefined;
    const problems = new Problems(`EgressGateway "${this.node.path}"`);
    // Indexed, not scanned: a large gateway declares thousands of services.
    const sameHost = this.servicesByHost.get(svc.host);
    if (sameHost) {
      problems.add('host', svc.host, `of ExternalService "${svc.node.path}" is already served by ExternalService "${sameHost.node.path}"`,
        'declare each host once per gateway: merge the two services\' ports into one');
    }
    const sameName = this.servicesByName.get(svc.name);
    if (sameName) {
      problems.add('name', svc.name, `of ExternalService "${svc.node.path}" is already used by ExternalService "${sameName.node.path}"`,
        'give one of them another construct id or an explicit name');
    }
    const claims = new Map<number, ServicePortUse>();
    for (const p of svc.ports) {
      const wanted: ServicePortUse['protocol'] = p.protocol === ExternalServiceProtocol.TCP ? 'tcp' : 'http';
      const taken = this.servicePorts.get(p.port) ?? claims.get(p.port);
      // HTTP-family ports share the HTTP listener; anything else needs the Service port to itself.
      if (taken && !(taken.protocol === 'http' && wanted === 'http')) {
        problems.add('ports', p.port, `of ExternalService "${svc.node.path}" (${p.protocol}) is already taken on Service "${this.serviceName}" by ${taken.owner}`,
          wanted === 'tcp' ? 'give the TCP service a client port no other service uses' : 'use another client port for this service');
      }
      if (!taken) claims.set(p.port, { protocol: wanted, owner: wanted === 'tcp' ? `TCP port of ExternalService "${svc.node.path}"` : `HTTP port of ExternalService "${svc.node.path}"` });
    }
    problems.throwIfAny();

    this.services.push(svc);
    this.servicesByHost.set(svc.host, svc);
    this.servicesByName.set(svc.name, svc);
    this.mount(svc._mounts());
    for (const p of svc.ports) {
      if (!claims.has(p.port)) continue;
      const use = claims.get(p.port)!;
      this.servicePorts.set(p.port, use);
      if (use.protocol === 'http') {
        this.service.bind(p.port, { name: `http-${p.port}`, targetPort: this.httpPort, protocol: kplus.Protocol.TCP });
      } else {
        const containerPort = FIRST_TCP_LISTENER_PORT + this.tcpListeners.length;
        this.tcpListeners.push({ port: containerPort, externalService: svc.name, servicePort: p.port });
        this.container.addPort({ number: containerPort, name: `tcp-${containerPort}` });
        this.service.bind(p.port, { name: `tcp-${p.port}`, targetPort: containerPort, protocol: kplus.Protocol.TCP });
        this.markOpaque();
      }
    }
  }

  /**
   * Locks the gateway down with its own NetworkPolicy: proxy ports only from allowed clients,
   * the admin port only from the metrics scraper, egress only to DNS and to public addresses
   * on its external services' ports. Call it before `allowFrom()`/`restrictEgressOf()` to pass
   * options; they create it with defaults otherwise.
   */
  public lockDown(options?: EgressGatewayLockDownOptions): EgressGatewayPolicy {
    return EgressGatewayPolicy._ofGateway(this, () => this._egressTarget(), options, (this.props.linkerdInject ?? true) ? 'linkerd' : undefined);
  }

  /** Lets `peer` (a workload, `Pods.select()`, `Namespaces.select()`) use the gateway; locks the gateway down. */
  public allowFrom(peer: kplus.INetworkPolicyPeer): void {
    this.lockDown().allowFrom(peer);
  }

  /**
   * Makes the gateway the only way out for `peer`'s pods: default-deny egress except DNS, the
   * gateway and `allowInCluster`; the gateway admits them (and is locked down).
   */
  public restrictEgressOf(peer: kplus.INetworkPolicyPeer, options: EgressGatewayRestrictEgressOfOptions = {}): EgressLockdown {
    const lockdown = EgressLockdown._forGateway(this, () => this._egressTarget(), peer, options);
    this.allowFrom(peer);
    return lockdown;
  }

  /** Labels `workload` as a client of this gateway and sets its environment (`EgressClient.configure()`). */
  public configureClient(workload: kplus.AbstractPod, options: EgressGatewayConfigureClientOptions = {}): void {
    EgressClient.configure(workload, { ...options, gateway: this._egressTarget(), clusterDomain: this.props.clusterDomain });
  }

  /** Adds the DNS rewrite that sends `<name>.<suffix>` for every suffix of this gateway to its Service. */
  public addDnsRewrite(id: string, options: EgressGatewayAddDnsRewriteOptions): DnsRewrite {
    return DnsRewrite._forGateway(this, id, {
      serviceName: this.serviceName,
      namespace: this.namespaceName,
      clusterDomain: this.props.clusterDomain ?? 'cluster.local',
      suffixes: [...this.suffixes],
      tlsPassthrough: this.tlsPort !== undefined,
    }, options);
  }

  /** @internal the gateway as lock-down policies and clients see it; read again at synth time. */
  public _egressTarget(): EgressGatewayTarget {
    return {
      namespace: this.namespaceName,
      serviceName: this.serviceName,
      podSelectorLabels: { ...this.podSelectorLabels },
      proxyPorts: this.proxyPorts,
      servicePort: this.servicePort,
      adminPort: this.adminPort,
      externalPorts: this.upstreamPorts,
      suffix: this.suffix,
      clusterCidrs: [...this.clusterCidrs],
      allowedCidrs: [...this.allowedCidrs],
      forwardProxy: this.forwardProxy,
      hostPort: this.hostPort,
    };
  }

  /** @internal the complete proxy config, as the ConfigMap carries it. */
  public _renderConfig(): ProxyConfig {
    const props = this.props;
    const parent: ParentSpec = this.attached
      ? { ...this.attached._renderParent(), ...(props.enforcement ? { mode: props.enforcement } : {}) }
      : {
        group: 'policy.linkerd.io',
        kind: 'EgressNetwork',
        name: this.name,
        namespace: this.namespaceName,
        trafficPolicy: props.trafficPolicy ?? TrafficPolicy.ALLOW,
        networks: [],
        mode: props.enforcement ?? EnforcementMode.ENFORCE,
        // Deny on a gateway without a network means: only the services declared on it.
        allowDeclaredServices: true,
      };
    return {
      apiVersion: PROXY_CONFIG_API_VERSION,
      kind: PROXY_CONFIG_KIND,
      gateway: { name: this.name, namespace: this.namespaceName },
      listeners: {
        bindAddress: '0.0.0.0',
        http: {
          port: this.httpPort,
          suffixes: [...this.suffixes],
          forwardProxy: this.forwardProxy,
          parentPort: this.servicePort,
          ambiguousPaths: props.ambiguousPaths ?? DEFAULT_AMBIGUOUS_PATHS,
          connectSni: props.connectSni ?? DEFAULT_CONNECT_SNI,
        },
        tls: this.tlsPort && this.tlsServicePort ? { port: this.tlsPort, parentPort: this.tlsServicePort } : undefined,
        tcp: this.tcpListeners.map((l) => ({ ...l })),
        admin: { port: this.adminPort },
      },
      parent,
      externalServices: this.services.map((s) => s._toSpec()),
      routes: this.attached ? this.attached._renderRoutes() : [],
      addressPolicy: { allowCidrs: [...this.allowedCidrs], denyCidrs: [...this.clusterCidrs] },
      timeouts: { ...this.timeoutsSpec },
      limits: {
        maxConcurrent: props.maxConcurrentRequests ?? DEFAULT_LIMITS.maxConcurrent,
        maxHeaderBytes: props.maxHeaderBytes ?? DEFAULT_LIMITS.maxHeaderBytes,
        maxClientConnections: props.maxClientConnections ?? DEFAULT_LIMITS.maxClientConnections,
      },
      workers: this.workers,
      defaultTls: this.defaultTls._toSpec(),
    };
  }

  /**
   * Linkerd sniffs the protocol of every new connection, and a server-speaks-first protocol on a
   * TCP listener (SMTP, MySQL) would stall until the sniff times out; opaque ports skip the sniff.
   * The Service carries client-facing ports (read by meshed clients), the pods container ports.
   */
  private markOpaque(): void {
    if (!(this.props.linkerdInject ?? true)) return;
    this.workload.podMetadata.addAnnotation(LINKERD_OPAQUE_PORTS, this.tcpListeners.map((l) => l.port).join(','));
    this.service.metadata.addAnnotation(LINKERD_OPAQUE_PORTS, this.tcpListeners.map((l) => l.servicePort).join(','));
  }

  /**
   * The ConfigMaps carrying the proxy config: `configMap`, then the shards a large config needs.
   * The shards are created when the app is synthesised (validation time), once every service and
   * route is known.
   */
  public get configMaps(): kplus.ConfigMap[] {
    return [this.configMap, ...this.shardConfigMaps];
  }

  /** The config's files (`config.json` first); throws when they cannot fit the limits. */
  private configFiles(): readonly ConfigFile[] {
    // Every object of the config (main, shards, checksum, volume) asks during one synthesis;
    // the split made at validation serves them all.
    const split = this.splitCache ?? this.splitConfig();
    if (!split.ok) {
      const problems = new Problems(`EgressGateway "${this.node.path}"`);
      for (const p of split.problems) problems.add(p.prop, p.value, p.rule, p.fix);
      problems.throwIfAny();
    }
    const files = (split as { files: readonly ConfigFile[] }).files;
    if (files.length - 1 !== this.shardConfigMaps.length) {
      throw new Error(`EgressGateway "${this.node.path}": the proxy config needs ${files.length - 1} shard ConfigMaps but ${this.shardConfigMaps.length} exist; synthesise through App.synth() or Chart.toJson(), which create them`);
    }
    return files;
  }

  private splitConfig(): SplitResult {
    return splitConfig(this._renderConfig(), {
      externalServices: this.services.map((svc) => svc.node.path),
      routes: this.attached ? this.attached._routePaths() : [],
    });
  }

  /**
   * Validation time: split the config and create the shard ConfigMaps it needs (the tree still
   * takes new constructs then), so every file is an object of the synthesised app. Problems that
   * rendering itself reports are left to the render, which states them in full.
   */
  private prepareConfigFiles(): string[] {
    let split: SplitResult;
    this.splitCache = undefined;
    try {
      split = this.splitConfig();
    } catch {
      return [];
    }
    this.splitCache = split;
    if (!split.ok) {
      const problems = new Problems(`EgressGateway "${this.node.path}"`);
      for (const p of split.problems) problems.add(p.prop, p.value, p.rule, p.fix);
      try {
        problems.throwIfAny();
      } catch (e) {
        return [(e as Error).message];
      }
    }
    const files = (split as { files: readonly ConfigFile[] }).files;
    for (let n = this.shardConfigMaps.length + 1; n < files.length; n++) {
      const cm = new kplus.ConfigMap(this, `ConfigShard${n}`, { metadata: this.configMetadata(`${this.name}-config-${n}`) });
      const file = shardFileName(n);
      cm.addData(file, Lazy.any({ produce: () => this.configFiles().find((f) => f.file === file)!.text }) as unknown as string);
      this.shardConfigMaps.push(cm);
    }
    // Fewer shards than an earlier synth of the same app needed: drop the surplus.
    while (this.shardConfigMaps.length > files.length - 1) {
      const cm = this.shardConfigMaps.pop()!;
      this.node.tryRemoveChild(cm.node.id);
    }
    return [];
  }

  /** One read-only volume per Secret or ConfigMap, mounted once whoever references it. */
  private mount(refs: MountRef[]): void {
    for (const ref of refs) {
      const vol = volumeName(ref.kind, ref.name);
      if (this.mounted.has(vol)) continue;
      this.mounted.add(vol);
      const volume = ref.kind === 'secret'
        ? kplus.Volume.fromSecret(this, `Volume-${vol}`, kplus.Secret.fromSecretName(this, `Secret-${vol}`, ref.name), { name: vol, defaultMode: 0o440 })
        : kplus.Volume.fromConfigMap(this, `Volume-${vol}`, kplus.ConfigMap.fromConfigMapName(this, `ConfigMapRef-${vol}`, ref.name), { name: vol, defaultMode: 0o444 });
      this.container.mount(mountDir(ref.kind, ref.name), volume, { readOnly: true });
    }
  }

  private crossChecks(): string[] {
    const problems = new Problems(`EgressGateway "${this.node.path}"`);
    if (this.attached && this.props.trafficPolicy !== undefined) {
      problems.add('trafficPolicy', this.props.trafficPolicy, `is set although EgressNetwork "${this.attached.node.path}" is attached and decides what unmatched traffic gets`,
        'set trafficPolicy on the EgressNetwork and remove it from the gateway');
    }
    for (const svc of this.services) {
      const bare = svc.host.replace(/^\*\./, '');
      for (const s of this.suffixes) {
        if (bare === s || bare.endsWith(`.${s}`)) {
          problems.add('host', svc.host, `of ExternalService "${svc.node.path}" is under the gateway suffix "${s}", so the gateway would call itself`,
            `use the real upstream name, e.g. ${JSON.stringify(bare.slice(0, -(s.length + 1)) || 'api.example.com')}`);
        }
      }
    }
    try {
      problems.throwIfAny();
    } catch (e) {
      return [(e as Error).message];
    }
    return [];
  }
}

function cdk8sSize(mebibytes: number): Size {
  return Size.mebibytes(mebibytes);
}

/** A whole number inside a range shared with the proxy's config validation (src/model/bounds.ts). */
function checkRange(problems: Problems, prop: string, value: number | undefined, range: IntRange, example: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    problems.add(prop, value, `must be a whole number from ${range.min} to ${range.max}`, `use e.g. ${example}`);
  }
}

function checkEnum(problems: Problems, prop: string, value: string | undefined, e: Record<string, string>, name: string): void {
  if (value === undefined) return;
  const values = Object.values(e);
  if (!values.includes(value)) problems.add(prop, value, `is not one of ${values.map((v) => JSON.stringify(v)).join(', ')}`, `use a ${name} member`);
}

function checkCidrs(problems: Problems, prop: string, cidrs: string[] | undefined): string[] {
  const out: string[] = [];
  (cidrs ?? []).forEach((c, i) => {
    const reason = cidrReason(c);
    if (reason) problems.add(`${prop}[${i}]`, c, `is not a CIDR: ${reason}`, 'write it as "10.20.0.0/16" or "fd00::/8"');
    else out.push(c);
  });
  return out;
}
