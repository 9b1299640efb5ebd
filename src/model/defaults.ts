/**
 * Defaults shared by the constructs (what they render when a prop is unset) and the proxy
 * (what it assumes when a hand-written config leaves an optional field out).
 */
import type {
  AmbiguousPathsSpec, AddressPolicySpec, CallerIdentitySourceSpec, CallersSpec, ConnectSniSpec, LimitsSpec, PoolSpec, RetrySpec,
  TimeoutsSpec, TlsOriginationSpec, UnknownCallerSpec,
} from './proxy-config';

export const DEFAULT_EGRESS_SUFFIX = 'egress.local';
export const DEFAULT_HTTP_PORT = 8080;
export const DEFAULT_HTTP_PARENT_PORT = 80;
export const DEFAULT_TLS_PORT = 8443;
export const DEFAULT_ADMIN_PORT = 9901;
/** Refuse what an upstream could read as another path than the one the routes matched. */
export const DEFAULT_AMBIGUOUS_PATHS: AmbiguousPathsSpec = 'Reject';
/** A TLS tunnel names its server in the clear; one that names none cannot be checked against the CONNECT host. */
export const DEFAULT_CONNECT_SNI: ConnectSniSpec = 'RequireMatch';
export const CONNECT_SNI_VALUES: readonly ConnectSniSpec[] = Object.freeze(['RequireMatch', 'MatchIfPresent'] as const);
export const AMBIGUOUS_PATHS_VALUES: readonly AmbiguousPathsSpec[] = Object.freeze(['Reject', 'UnescapeAndForward', 'KeepUnchanged'] as const);
export const DEFAULT_TLS_TARGET_PORT = 443;

export const DEFAULT_TIMEOUTS: TimeoutsSpec = {
  // Cluster DNS answers in milliseconds; seconds means it is down, and clients should hear so.
  dnsMs: 5_000,
  // A SYN that is not answered in 10 s is lost; failing over to the next endpoint beats waiting.
  connectMs: 10_000,
  // Handshakes cross the internet once per pooled connection; 10 s covers slow links.
  tlsHandshakeMs: 10_000,
  // Slowloris defence: a client that cannot send its headers in 30 s is not a real client.
  requestHeadersMs: 30_000,
  // Third-party APIs may compute before answering; a minute is the common upper bound.
  responseHeadersMs: 60_000,
  // A stalled body holds a pooled connection; five idle minutes is past any healthy stream.
  idleMs: 300_000,
  // Off: streaming downloads must not be cut by a wall clock the user did not ask for.
  totalMs: 0,
  // Tunnels (CONNECT, TLS passthrough, TCP) carry long-lived sessions; an hour of silence ends them.
  tunnelIdleMs: 3_600_000,
  // Kubernetes' default terminationGracePeriodSeconds is 30 s; drain well inside it.
  shutdownGraceMs: 20_000,
  // Endpoint removal reaches kube-proxy, CoreDNS and the meshes within a few seconds of SIGTERM.
  drainDelayMs: 5_000,
  // Node's own default: longer than undici's 4 s client idle, so clients close first, not mid-send.
  clientKeepAliveMs: 5_000,
};

export const DEFAULT_LIMITS: LimitsSpec = {
  maxConcurrent: 10_000,
  maxHeaderBytes: 16_384,
  // Every in-flight request holds a connection (maxConcurrent), plus as many idle keep-alive ones.
  maxClientConnections: 20_000,
};

/** A hand-written config without `workers` runs one process, as before the setting existed. */
export const DEFAULT_WORKERS = 1;

export const DEFAULT_POOL: PoolSpec = {
  // A pool opens connections as concurrent requests need them; this only bounds a runaway. Well
  // above one gateway's concurrency, so no client waits behind another's request for a connection.
  maxConnections: 1024,
  keepAliveTimeoutMs: 30_000,
};

export const DEFAULT_ADDRESS_POLICY: AddressPolicySpec = {
  allowCidrs: [],
  denyCidrs: [],
};

export const DEFAULT_TLS: TlsOriginationSpec = {
  enabled: true,
  minVersion: 'TLS12',
  maxVersion: 'TLSAuto',
  mode: 'Secured',
  subjectAltNames: [],
  allowRenegotiation: false,
};

export const DEFAULT_RETRY: RetrySpec = {
  maxRetries: 2,
  statusCodes: [502, 503, 504],
  conditions: ['connect-failure', 'reset'],
  retryNonIdempotent: false,
  perTryTimeoutMs: 0,
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  // Linkerd's defaults: retries add at most 20% load, with a floor of 10 per second, over 10 s.
  budgetRatio: 0.2,
  budgetMinPerSecond: 10,
  budgetTtlMs: 10_000,
};

/**
 * A config without `callers` (or with only some of its fields): nobody is identified, and an
 * unidentified caller may use whatever declares no clients. Kubernetes' default trust domain.
 */
export const DEFAULT_CALLERS: CallersSpec = Object.freeze({
  source: 'None',
  trustDomain: 'cluster.local',
  unknown: 'AllowUnrestricted',
  metricsLabel: false,
});
export const CALLER_SOURCE_VALUES: readonly CallerIdentitySourceSpec[] = Object.freeze(['None', 'Linkerd', 'Istio'] as const);
export const UNKNOWN_CALLER_VALUES: readonly UnknownCallerSpec[] = Object.freeze(['AllowUnrestricted', 'Deny'] as const);
/**
 * The `trustedPeers` entry for a connection whose peer address is the address it arrived on: a
 * sidecar in the pod that connects to the pod IP from the pod IP (Linkerd's inbound proxy since 2.11).
 */
export const TRUSTED_PEER_POD_IP = 'PodIP';
/**
 * Where the pod's own sidecar connects from: loopback (Istio's inbound uses 127.0.0.6) or the pod
 * IP itself (Linkerd's inbound since 2.11). No other pod can open a connection from either.
 */
export const DEFAULT_TRUSTED_PEERS: readonly string[] = Object.freeze(['127.0.0.0/8', '::1/128', TRUSTED_PEER_POD_IP]);

/**
 * Idle time before the proxy gives memory back after a burst (EGRESS_IDLE_RECLAIM_MS). A minute:
 * the collection costs the next burst a warm-up (on Node 24, 16-18 % more CPU per request over
 * its first seconds, measured), paid only after a long idle period.
 */
export const DEFAULT_IDLE_RECLAIM_MS = 60_000;
