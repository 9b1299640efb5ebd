/**
 * Ranges of the numeric settings, shared by the constructs' prop checks and the proxy's config
 * validation, so that a bound is written once and both ends reject the same values.
 */
import type { LimitsSpec, TimeoutsSpec } from './proxy-config';

export interface IntRange {
  readonly min: number;
  readonly max: number;
}

const DAY_MS = 86_400_000;

/** Every phase needs a bound (min 1 ms) except where 0 has a meaning of its own. */
export const TIMEOUT_BOUNDS: Readonly<Record<keyof TimeoutsSpec, IntRange>> = Object.freeze({
  dnsMs: { min: 1, max: DAY_MS },
  connectMs: { min: 1, max: DAY_MS },
  tlsHandshakeMs: { min: 1, max: DAY_MS },
  requestHeadersMs: { min: 1, max: DAY_MS },
  responseHeadersMs: { min: 1, max: DAY_MS },
  idleMs: { min: 1, max: DAY_MS },
  // 0 disables the total timeout.
  totalMs: { min: 0, max: DAY_MS },
  tunnelIdleMs: { min: 1, max: DAY_MS },
  shutdownGraceMs: { min: 1, max: DAY_MS },
  // 0 stops listening at once; past 5 minutes no endpoint removal is still propagating.
  drainDelayMs: { min: 0, max: 300_000 },
  // Below 100 ms keep-alive is a race with every client's next request; past an hour it only holds descriptors.
  clientKeepAliveMs: { min: 100, max: 3_600_000 },
});

/**
 * Timeouts that only mean something for the whole gateway (client side and shutdown); an
 * ExternalService cannot override them.
 */
export const GATEWAY_ONLY_TIMEOUTS: readonly (keyof TimeoutsSpec)[] = Object.freeze(['shutdownGraceMs', 'drainDelayMs', 'clientKeepAliveMs'] as const);

export const LIMIT_BOUNDS: Readonly<Record<keyof LimitsSpec, IntRange>> = Object.freeze({
  maxConcurrent: { min: 1, max: 1_000_000 },
  maxHeaderBytes: { min: 1024, max: 1_048_576 },
  // Each connection is a file descriptor; a million is past any pod's limit.
  maxClientConnections: { min: 1, max: 1_000_000 },
});

/**
 * Retry policy fields (RetrySpec). `maxRetries` is also the ceiling of a Linkerd route's retry
 * limit: more retries multiply load on a struggling upstream. `budgetRatio` is the share of
 * recent requests retries may add (Linkerd's retryRatio, 0.2 by default): 1 already lets retries
 * double the load on an upstream that is failing, and past it the budget would cap nothing that
 * maxRetries does not. budgetRatio and budgetMinPerSecond are real numbers, the rest whole.
 */
export const RETRY_BOUNDS = Object.freeze({
  maxRetries: { min: 0, max: 10 },
  perTryTimeoutMs: { min: 0, max: DAY_MS },
  backoffBaseMs: { min: 0, max: 60_000 },
  backoffMaxMs: { min: 0, max: 600_000 },
  budgetRatio: { min: 0, max: 1 },
  budgetMinPerSecond: { min: 0, max: 1_000_000 },
  budgetTtlMs: { min: 1, max: 3_600_000 },
} satisfies Record<string, IntRange>);

/** HTTP response statuses a retry policy may name. */
export const HTTP_STATUS_BOUNDS: IntRange = Object.freeze({ min: 100, max: 599 });

/** gRPC status codes: 0 (OK) to 16 (UNAUTHENTICATED). */
export const GRPC_STATUS_BOUNDS: IntRange = Object.freeze({ min: 0, max: 16 });

/** An external service's upstream connection pool (PoolSpec). */
export const POOL_BOUNDS = Object.freeze({
  // A pool opens connections as concurrent requests need them; past this it is a runaway.
  maxConnections: { min: 1, max: 100_000 },
  keepAliveTimeoutMs: { min: 1, max: DAY_MS },
} satisfies Record<string, IntRange>);

/** An external service endpoint's priority: 0 is tried first, higher numbers are fallbacks. */
export const ENDPOINT_PRIORITY_BOUNDS: IntRange = Object.freeze({ min: 0, max: 1000 });

/**
 * Proxy worker processes per pod. Each is a Node process with its own heap (tens of MiB) and
 * only pays off with a core of its own; 64 is past any pod a proxy should run in.
 */
export const WORKER_BOUNDS: IntRange = Object.freeze({ min: 1, max: 64 });

/** Idle time before the proxy gives memory back after a burst, in ms; 0 turns it off. */
export const IDLE_RECLAIM_BOUNDS: IntRange = Object.freeze({ min: 0, max: 3_600_000 });

/**
 * Sizes of the proxy config's files, shared by the gateway (which splits the config across
 * ConfigMaps) and the proxy (which refuses more than it was built to load).
 */
export interface ConfigFileLimits {
  readonly fileBytes: number;
  readonly maxFiles: number;
  readonly maxTotalBytes: number;
}

export const CONFIG_FILE_LIMITS: ConfigFileLimits = Object.freeze({
  /**
   * Largest file one ConfigMap carries, counted as the characters of its text JSON-escaped (as
   * it appears in the object). The API server refuses ConfigMaps past 1 MiB of data, and
   * `kubectl apply` without `--server-side` copies the whole object into the
   * `kubectl.kubernetes.io/last-applied-configuration` annotation, where all annotations
   * together may hold 256 KiB: 200 KiB leaves room for the rest of the object.
   */
  fileBytes: 200 * 1024,
  /** Files of one config (the main file and its shards): one projected volume, one reload. */
  maxFiles: 40,
  /** All files together, in bytes: what one proxy reads, parses and holds per config. */
  maxTotalBytes: 8 * 1024 * 1024,
});
