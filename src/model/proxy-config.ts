/**
 * The egress proxy's configuration document: the one contract between the constructs (which
 * render it into the gateway's ConfigMap) and the proxy (which validates and enforces it).
 * Plain data only, versioned by apiVersion/kind. Durations are milliseconds, named `...Ms`.
 */

export const PROXY_CONFIG_API_VERSION = 'egress.cdk8s.io/v1alpha1';
export const PROXY_CONFIG_KIND = 'EgressProxyConfig';
/** File name of the config inside the gateway's ConfigMap and its mount directory. */
export const PROXY_CONFIG_FILE = 'config.json';
/** Kind of a shard file: more external services and routes of the config that lists it. */
export const PROXY_CONFIG_SHARD_KIND = 'EgressProxyConfigShard';

/**
 * A config too large for one ConfigMap is split: the main file (`config.json`) keeps every
 * setting and lists its shard files under `shards`; the shards carry the external services and
 * routes, appended in the order listed. Each entry pins its shard's SHA-256 (of the file's
 * bytes), so the proxy only ever loads a set of files written from one config: a ConfigMap
 * update still on its way shows up as a mismatch, and the last good config stays in force.
 */
export interface ConfigShardRef {
  /** File name in the main file's directory, e.g. `config-1.json`. */
  readonly file: string;
  /** Lower-case hex SHA-256 of the file's bytes. */
  readonly sha256: string;
}

/** A shard file's document. */
export interface ProxyConfigShard {
  readonly apiVersion: typeof PROXY_CONFIG_API_VERSION;
  readonly kind: typeof PROXY_CONFIG_SHARD_KIND;
  readonly externalServices?: readonly ExternalServiceSpec[];
  readonly routes?: readonly RouteSpec[];
}

/** The main file of a split config: a config whose list of shards is still to be merged. */
export interface ProxyConfigMain extends Omit<ProxyConfig, 'externalServices' | 'routes'> {
  readonly externalServices?: readonly ExternalServiceSpec[];
  readonly routes?: readonly RouteSpec[];
  readonly shards: readonly ConfigShardRef[];
}

/** Linkerd's EgressNetwork trafficPolicy: what happens to traffic no route matches. */
export type TrafficPolicySpec = 'Allow' | 'Deny';

/** Enforce decisions, or only log and count the ones that would deny (beyond Linkerd). */
export type EnforcementModeSpec = 'Enforce' | 'ReportOnly';

/** Application protocol of an external service port (Kuma's MeshExternalService spelling). */
export type AppProtocolSpec = 'http' | 'http2' | 'grpc' | 'tcp';

/**
 * What the HTTP listener does with a path that servers read in different ways: an encoded slash
 * or backslash (`%2F`, `%5C`), a raw backslash, an encoded dot segment (`%2e%2e`), or a `;`
 * parameter on a dot segment (`..;`). Like Envoy's `path_with_escaped_slashes_action`.
 * - Reject: 400 when a route that takes the host restricts paths (a path match other than
 *   PathPrefix '/'); elsewhere the path cannot change the decision and is forwarded as received.
 * - UnescapeAndForward: decode those (`%2F`, `%5C` and `\` to '/', `%2e` in dot segments to
 *   '.', parameters dropped from dot segments), remove dot segments, and match and forward that.
 * - KeepUnchanged: match and forward the path as received (only literal dot segments removed);
 *   an upstream that decodes `%2F` may then serve a path the routes did not allow.
 */
export type AmbiguousPathsSpec = 'Reject' | 'UnescapeAndForward' | 'KeepUnchanged';

/**
 * A CONNECT tunnel whose client speaks TLS first: the ClientHello's server name (SNI) must be the
 * CONNECT host, else the tunnel is closed and counted as a denial. A CONNECT to an IP address
 * takes a ClientHello without SNI (IP addresses are not valid SNI).
 * - RequireMatch: a ClientHello without SNI is refused too.
 * - MatchIfPresent: a ClientHello without SNI passes (clients that send none, e.g. to an IP).
 */
export type ConnectSniSpec = 'RequireMatch' | 'MatchIfPresent';

/** Kuma's TLS version spelling. TLSAuto means: min TLS 1.2, max TLS 1.3. */
export type TlsVersionSpec = 'TLSAuto' | 'TLS10' | 'TLS11' | 'TLS12' | 'TLS13';

/** Kuma's verification modes. Secured checks chain and name; the others skip a part. */
export type VerificationModeSpec = 'Secured' | 'SkipSAN' | 'SkipCA' | 'SkipAll';

export interface ProxyConfig {
  readonly apiVersion: typeof PROXY_CONFIG_API_VERSION;
  readonly kind: typeof PROXY_CONFIG_KIND;
  /** Which gateway this config belongs to (logs, config dump). */
  readonly gateway: { readonly name: string; readonly namespace: string };
  readonly listeners: ListenersSpec;
  /** The EgressNetwork this gateway enforces; an implicit one when none is attached. */
  readonly parent: ParentSpec;
  readonly externalServices: readonly ExternalServiceSpec[];
  readonly routes: readonly RouteSpec[];
  readonly addressPolicy: AddressPolicySpec;
  readonly timeouts: TimeoutsSpec;
  readonly limits: LimitsSpec;
  /**
   * Proxy processes serving the listeners. 1: one process. Above 1: a supervising process owns
   * the listeners and the admin port and hands connections to this many workers (node:cluster);
   * `limits` stay per pod, each worker enforcing its share. A change needs a restart.
   */
  readonly workers: number;
  /** Trust used when originating TLS to hosts without an ExternalService of their own. */
  readonly defaultTls: TlsOriginationSpec;
  /** Who is calling and what an unidentified caller may do. Absent: source None, unknown AllowUnrestricted. */
  readonly callers?: CallersSpec;
}

/* ---------------------------------------------------------------- callers (who may call what) */

/**
 * Where the gateway learns who is calling. The identity header is trusted only on a connection
 * whose peer is the pod's own sidecar (a loopback address, or the pod IP itself: see
 * CallersSpec.trustedPeers); on any other connection it is ignored, and it is stripped from every
 * request sent upstream.
 * - None: no identity; every caller is unknown.
 * - Linkerd: `l5d-client-id`, which the gateway's Linkerd proxy sets from the client's mTLS
 *   identity (`<sa>.<ns>.serviceaccount.identity.linkerd.<trust domain>`).
 * - Istio: the `URI` of the last element of `x-forwarded-client-cert`
 *   (`spiffe://<trust domain>/ns/<ns>/sa/<sa>`).
 */
export type CallerIdentitySourceSpec = 'None' | 'Linkerd' | 'Istio';

/** What a caller without a trusted identity may use. See CallersSpec.unknown. */
export type UnknownCallerSpec = 'AllowUnrestricted' | 'Deny';

export interface CallersSpec {
  readonly source: CallerIdentitySourceSpec;
  /** The mesh's trust domain; an identity from another trust domain is unknown. */
  readonly trustDomain: string;
  /**
   * A caller is unknown when it has no trusted identity: no header, a header on an untrusted
   * connection, an unparsable header, another trust domain, and every TLS-passthrough and TCP
   * connection (no headers there).
   * - AllowUnrestricted: it may use what declares no clients, never what does (403 CALLER_UNKNOWN);
   * - Deny: it is refused everything (403 CALLER_UNKNOWN).
   */
  readonly unknown: UnknownCallerSpec;
  /**
   * Add a `caller` label to the request metrics. Its values stay bounded by the config: the key of
   * the declared client the caller matched (`sa:<ns>/<name>`, `ns:<ns>`, `id:<identity>`),
   * `other` for a known caller no client names, `unknown` for an unknown one.
   */
  readonly metricsLabel: boolean;
  /**
   * Connections whose identity header is trusted, by peer address: CIDRs inside loopback
   * (127.0.0.0/8, ::1/128) and `PodIP`, a peer whose address is the one the connection arrived on
   * (a sidecar connecting to the pod IP from the pod IP, as Linkerd's inbound proxy does since
   * 2.11). Both kinds of connection can only come from inside the pod. Narrow it to where the
   * sidecar connects from (Istio: `127.0.0.6/32`) so another container cannot assert an identity.
   * Absent: `['127.0.0.0/8', '::1/128', 'PodIP']`.
   */
  readonly trustedPeers?: readonly string[];
}

/**
 * A client allowed to use an external service or a route: exactly one field is set. An
 * ExternalServiceSpec or RouteSpec without `clients` is open to every caller; with `clients`,
 * only to callers one of them names. A request needs the consent of both the route it matched
 * and the ExternalService of its host, where each declares clients.
 */
export interface ClientSpec {
  /** The workloads running as a ServiceAccount. */
  readonly serviceAccount?: { readonly namespace: string; readonly name: string };
  /** Every workload of a namespace. */
  readonly namespace?: string;
  /** One mesh identity exactly as the header carries it: a Linkerd name or a SPIFFE URI. */
  readonly identity?: string;
}

export interface ListenersSpec {
  /** Address to bind every listener to (default '0.0.0.0'; tests use '127.0.0.1'). */
  readonly bindAddress: string;
  /**
   * Plaintext HTTP/1.1 listener. Takes `Host: <name>.<suffix>[:port]` requests, absolute-form
   * `http_proxy` requests and CONNECT tunnels (when forwardProxy is on).
   */
  readonly http: {
    readonly port: number;
    /** Name suffixes that mark a request for the gateway, without leading dot ('egress.local'). */
    readonly suffixes: readonly string[];
    /** Accept absolute-form (`GET http://host/...`) and CONNECT requests (node-proxy mode). */
    readonly forwardProxy: boolean;
    /**
     * The port the clients address, used as `parent_port` and to match routes whose parentRef
     * names a port (Service port 80 by default, whatever the container port is).
     */
    readonly parentPort: number;
    /** Paths with encoded separators or dot segments; see AmbiguousPathsSpec. */
    readonly ambiguousPaths: AmbiguousPathsSpec;
    /** CONNECT tunnels carrying TLS: must the ClientHello name the CONNECT host? See ConnectSniSpec. */
    readonly connectSni: ConnectSniSpec;
  };
  /** TLS passthrough by SNI (hijacked real hostnames on 443; TLSRoute enforcement). */
  readonly tls?: { readonly port: number; readonly parentPort: number };
  /** Raw TCP listeners, each bound to one external service port (Kuma's TCP examples). */
  readonly tcp: readonly TcpListenerSpec[];
  /** Admin: /metrics, /live, /ready, /config. */
  readonly admin: { readonly port: number };
}

export interface TcpListenerSpec {
  readonly port: number;
  /** Name of the ExternalService the connections go to. */
  readonly externalService: string;
  /** The external service's client-facing port (selects its target port, TLS and metrics). */
  readonly servicePort: number;
}

export interface ParentSpec {
  readonly group: 'policy.linkerd.io';
  readonly kind: 'EgressNetwork';
  readonly name: string;
  readonly namespace: string;
  readonly trafficPolicy: TrafficPolicySpec;
  /**
   * Destination networks this parent covers. A resolved address must be inside one of them and
   * not in its `except`, else the request is denied. Empty: any address the address policy allows.
   */
  readonly networks: readonly NetworkSpec[];
  readonly mode: EnforcementModeSpec;
  /**
   * Under Deny, a host declared as an ExternalService is allowed when no route matched (route
   * kind 'ExternalService', named after the service) instead of getting the deny route. The gateway's implicit parent sets it, so that Deny there means
   * "only declared services"; an attached EgressNetwork leaves it off and its routes decide.
   */
  readonly allowDeclaredServices?: boolean;
}

export interface NetworkSpec {
  readonly cidr: string;
  readonly except: readonly string[];
}

/**
 * SSRF defence. Built in and always refused unless listed in allowCidrs: loopback, unspecified,
 * RFC 1918 private ranges, link-local (169.254.0.0/16, fe80::/10, cloud metadata), CGNAT
 * (100.64.0.0/10), unique-local (fc00::/7), multicast, reserved, Teredo (2001::/32), and the
 * IPv4-mapped forms of them. The IPv4 address inside a NAT64, 6to4 or Teredo address is vetted too.
 */
export interface AddressPolicySpec {
  /** Exceptions to the built-in refusals (e.g. an on-premises API at 10.20.0.0/16). */
  readonly allowCidrs: readonly string[];
  /** Extra refusals: the cluster's pod and service ranges. Wins over allowCidrs. */
  readonly denyCidrs: readonly string[];
}

/** A named timeout per phase, in milliseconds. */
export interface TimeoutsSpec {
  readonly dnsMs: number;
  readonly connectMs: number;
  readonly tlsHandshakeMs: number;
  /** Client must send complete request headers within this. */
  readonly requestHeadersMs: number;
  /** Upstream must start its response within this. */
  readonly responseHeadersMs: number;
  /** No bytes either way for this long ends the exchange. */
  readonly idleMs: number;
  /** Whole request, first byte in to last byte out. 0 disables. */
  readonly totalMs: number;
  /** No bytes either way on a tunnel (CONNECT, TLS passthrough, TCP) for this long closes it. */
  readonly tunnelIdleMs: number;
  /**
   * After SIGTERM, in-flight work may finish for this long before the process exits; a request
   * still without a response then gets 503 DRAINING. Counted from the end of the drain delay.
   */
  readonly shutdownGraceMs: number;
  /**
   * After SIGTERM, keep accepting and serving this long (readiness failing, `Connection: close`
   * on every response) while Kubernetes removes the endpoint; then stop listening. 0: at once.
   */
  readonly drainDelayMs: number;
  /** An idle keep-alive client connection (HTTP/1.1, between requests) is closed after this. */
  readonly clientKeepAliveMs: number;
}

export interface LimitsSpec {
  /** Concurrent in-flight requests plus tunnels before new ones get 503. */
  readonly maxConcurrent: number;
  /** Largest request header block accepted from clients, bytes. */
  readonly maxHeaderBytes: number;
  /**
   * Open client connections (HTTP, TLS passthrough and TCP listeners together) before new ones
   * are closed at accept, counted in egress_client_connections_refused_total.
   */
  readonly maxClientConnections: number;
}

export interface TlsOriginationSpec {
  /** Originate TLS to the upstream. Off only for an ExternalService explicitly declared plaintext. */
  readonly enabled: boolean;
  readonly minVersion: TlsVersionSpec;
  readonly maxVersion: TlsVersionSpec;
  readonly mode: VerificationModeSpec;
  /** Extra CA bundle (PEM file path, mounted from a Secret or ConfigMap); added to system roots. */
  readonly caFile?: string;
  /** Extra CA bundle inline (public data only). */
  readonly caPem?: string;
  /** Client certificate and key (mTLS to the upstream), PEM file paths. */
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
  /** SNI to send and name to verify, instead of the requested host. */
  readonly serverName?: string;
  /** Names the certificate must carry (any one matches); default: the SNI name. */
  readonly subjectAltNames: readonly SubjectAltNameSpec[];
  readonly allowRenegotiation: boolean;
}

export interface SubjectAltNameSpec {
  readonly type: 'Exact' | 'Prefix';
  readonly value: string;
}

export interface ExternalServiceSpec {
  /** Stable identifier (construct-derived); used in logs, never a raw client string. */
  readonly name: string;
  /** Exact DNS name, or a leading wildcard '*.example.com' (TLS goes to the name requested). */
  readonly host: string;
  /** Ports the clients address, each with its protocol and the upstream port it maps to. */
  readonly ports: readonly ExternalServicePortSpec[];
  /**
   * Where to connect. Empty: the requested host itself at the port's targetPort.
   * Lower priority is tried first; a higher one only when every lower one failed to connect.
   */
  readonly endpoints: readonly EndpointSpec[];
  readonly tls: TlsOriginationSpec;
  /** Per-service overrides of the gateway timeouts. */
  readonly timeouts?: Partial<TimeoutsSpec>;
  readonly retry?: RetrySpec;
  readonly pool: PoolSpec;
  /** Headers added to every request upstream, values read from files (mounted Secrets). */
  readonly injectHeaders: readonly InjectedHeaderSpec[];
  /** Who may use this service; absent: every caller. See ClientSpec. */
  readonly clients?: readonly ClientSpec[];
}

export interface ExternalServicePortSpec {
  readonly port: number;
  readonly protocol: AppProtocolSpec;
  /** Upstream port (default 443 with TLS, else the same port). */
  readonly targetPort: number;
}

export interface EndpointSpec {
  /** DNS name, IPv4 or IPv6 address. */
  readonly address: string;
  /** Upstream port; default the service port's targetPort. */
  readonly port?: number;
  readonly priority: number;
}

export interface PoolSpec {
  /** Connections per upstream origin. */
  readonly maxConnections: number;
  /** Idle keep-alive connections are closed after this. */
  readonly keepAliveTimeoutMs: number;
}

export interface InjectedHeaderSpec {
  readonly name: string;
  /** File holding the value (a mounted Secret key); read at load and on reload, never logged. */
  readonly valueFile: string;
}

export interface RetrySpec {
  /** Retries after the first attempt (0 disables). */
  readonly maxRetries: number;
  /** Response statuses that are retried. */
  readonly statusCodes: readonly number[];
  /** Transport conditions that are retried. */
  readonly conditions: readonly RetryConditionSpec[];
  /** Retry POST/PATCH and other non-idempotent methods too. */
  readonly retryNonIdempotent: boolean;
  /** Each attempt's own timeout; 0: only the overall timeouts apply. */
  readonly perTryTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Retries may add at most this fraction of recent requests (Linkerd's retry budget). */
  readonly budgetRatio: number;
  /** ...but always at least this many per second. */
  readonly budgetMinPerSecond: number;
  /** The window "recent" means. */
  readonly budgetTtlMs: number;
  /**
   * gRPC routes: grpc-status codes that are retried (1 cancelled, 4 deadline-exceeded,
   * 8 resource-exhausted, 13 internal, 14 unavailable). Unset: none.
   */
  readonly grpcStatusCodes?: readonly number[];
}

export type RetryConditionSpec = 'connect-failure' | 'reset' | 'timeout';

/* ---------------------------------------------------------------- routes (Gateway API) */

export type RouteKindSpec = 'HTTPRoute' | 'GRPCRoute' | 'TLSRoute' | 'TCPRoute';

export interface RouteSpec {
  readonly group: 'gateway.networking.k8s.io';
  readonly kind: RouteKindSpec;
  readonly name: string;
  readonly namespace: string;
  /** Declaration order: the stand-in for creationTimestamp in precedence ties. */
  readonly order: number;
  /** parentRef port/sectionName; undefined: every port of the parent. */
  readonly parentPort?: number;
  readonly parentSectionName?: string;
  /** Empty: every host. Exact names or a leading wildcard. */
  readonly hostnames: readonly string[];
  readonly rules: readonly RouteRuleSpec[];
  /** Who may use this route; absent: every caller. See ClientSpec. */
  readonly clients?: readonly ClientSpec[];
}

export interface RouteRuleSpec {
  readonly name?: string;
  /** Empty: match everything (HTTP: PathPrefix '/'). TLS/TCP rules have no matches. */
  readonly matches: readonly RouteMatchSpec[];
  readonly filters: readonly RouteFilterSpec[];
  /**
   * Empty: the parent is the backend, so traffic passes through to the original destination
   * (Linkerd's behaviour for routes on an EgressNetwork). Weights that add up to 0: 500.
   */
  readonly backendRefs: readonly BackendRefSpec[];
  /** Gateway API HTTPRoute timeouts.request / backendRequest. */
  readonly requestTimeoutMs?: number;
  readonly backendRequestTimeoutMs?: number;
  readonly retry?: RetrySpec;
}

export interface RouteMatchSpec {
  /** HTTPRoute only. */
  readonly path?: { readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression'; readonly value: string };
  /** HTTPRoute only. Upper case. */
  readonly method?: string;
  /** GRPCRoute only. */
  readonly grpcMethod?: { readonly type: 'Exact' | 'RegularExpression'; readonly service?: string; readonly method?: string };
  readonly headers: readonly ValueMatchSpec[];
  /** HTTPRoute only. */
  readonly queryParams: readonly ValueMatchSpec[];
}

export interface ValueMatchSpec {
  readonly type: 'Exact' | 'RegularExpression';
  readonly name: string;
  readonly value: string;
}

export interface RouteFilterSpec {
  readonly type: 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestRedirect';
  readonly headerModifier?: HeaderModifierSpec;
  readonly requestRedirect?: RequestRedirectSpec;
}

export interface HeaderModifierSpec {
  readonly set: readonly { readonly name: string; readonly value: string }[];
  readonly add: readonly { readonly name: string; readonly value: string }[];
  readonly remove: readonly string[];
}

export interface RequestRedirectSpec {
  readonly scheme?: 'http' | 'https';
  readonly hostname?: string;
  readonly port?: number;
  readonly path?: { readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; readonly value: string };
  readonly statusCode: 301 | 302;
}

export interface BackendRefSpec {
  /** EgressNetwork: pass through to the original destination. Service: an in-cluster Service. */
  readonly kind: 'EgressNetwork' | 'Service';
  readonly name: string;
  readonly namespace: string;
  readonly port?: number;
  readonly weight: number;
  /** Service only: the in-cluster DNS name to dial ('<name>.<ns>.svc.cluster.local'). */
  readonly host?: string;
}
