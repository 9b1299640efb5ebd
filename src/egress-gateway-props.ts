// The props of EgressGateway and the closed choices they take, apart from the construct so that
// the modules that check and render them (internal/gateway-*.ts) need not import the construct.
import type { Duration } from 'cdk8s';
import type * as kplus from 'cdk8s-plus-28';
import type { CallerIdentitySource, UnknownCallerPolicy } from './callers';
import type { GatewayAlertsOptions } from './gateway-alerts';
import type { GatewayAutoscalingOptions } from './gateway-autoscaling';
import type { GatewayDashboardOptions } from './gateway-dashboard';
import type { GatewayMetricsMonitorOptions } from './gateway-metrics-monitor';
import type { ProxyImage } from './proxy-image';
import type { ProxyTimeouts } from './proxy-timeouts';
import type { IRouteParent } from './route-parent';
import type { TlsOrigination } from './tls';
import type { EnforcementMode, TrafficPolicy } from './traffic-policy';

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
   * Proxy processes per pod. Above 1, a supervising process owns the admin port and forks the
   * workers (node:cluster), which bind the client ports beside each other (SO_REUSEPORT: the
   * kernel spreads new connections over them); `/metrics` sums every worker's counters in one
   * scrape, a config change is applied by all workers or rejected by all, and SIGTERM drains
   * every worker within `shutdownGrace`.
   *
   * A worker is one Node process and uses at most one core: without `resources` the CPU
   * request and limit follow the count; with them, a CPU limit below the count is an error.
   * `maxConcurrentRequests` and `maxClientConnections` stay per pod, split among the workers.
   * A change takes effect when the pods restart (the rendered resources change with it).
   * @default - one per whole CPU `resources` requests, at least 1 (1 with the default resources)
   */
  readonly workers?: number;

  /**
   * How long the proxy must go without requests, after its memory grew under load, before it
   * gives memory back (environment variable EGRESS_IDLE_RECLAIM_MS). Once per idle period, and
   * only when its resident memory has grown by 16 MiB since the last time, it runs one
   * memory-reducing garbage collection: a pause of tens of milliseconds (a request arriving then
   * waits for it), and the next burst runs on a fresh heap for its first seconds.
   * `Duration.seconds(0)` turns it off.
   * @default Duration.minutes(1)
   */
  readonly idleMemoryReclaim?: Duration;

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

  /**
   * Where the gateway learns who is calling, for the `clients` of its ExternalServices and
   * routes, its access log and (with `callerMetrics`) its metrics. The identity header is trusted
   * only from the pod's own sidecar (a loopback peer) and never sent upstream.
   *
   * With `CallerIdentitySource.LINKERD` the gateway also renders Linkerd's `Server` (its HTTP
   * port), `MeshTLSAuthentication` and `AuthorizationPolicy` (policy.linkerd.io), admitting at
   * the mesh exactly the callers its rules could allow: the union of the declared clients when
   * everything declares clients, every meshed identity when something is open to every caller and
   * `unknownCallers` is DENY, and everyone when unknown callers may use what is open. The admin
   * port (probes, metrics) keeps the default policy.
   * @see https://linkerd.io/2-edge/reference/authorization-policy/
   * @default - no caller identity: every caller is unknown, and no `clients` may be declared
   */
  readonly callerIdentity?: CallerIdentitySource;

  /**
   * What callers without a trusted identity may use: unmeshed workloads, a header from anything
   * but the sidecar, and every TLS passthrough and TCP listener connection. DENY is an error with
   * `tlsPassthrough` or TCP ports, whose connections never carry an identity.
   * @default UnknownCallerPolicy.ALLOW_UNRESTRICTED - what declares no clients
   */
  readonly unknownCallers?: UnknownCallerPolicy;

  /**
   * Add a `caller` label to the request metrics. Its values stay bounded: the key of the declared
   * client the caller matched (`sa:<namespace>/<name>`, `ns:<namespace>`, `id:<identity>`),
   * `other` for a known caller no client names, `unknown` for the rest.
   * @default false
   */
  readonly callerMetrics?: boolean;

  /**
   * The mesh's trust domain. An identity from another trust domain is an unknown caller.
   * @default "cluster.local"
   */
  readonly trustDomain?: string;
}
