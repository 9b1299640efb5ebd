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
 * Proxy worker processes per pod. Each is a Node process with its own heap (tens of MiB) and
 * only pays off with a core of its own; 64 is past any pod a proxy should run in.
 */
export const WORKER_BOUNDS: IntRange = Object.freeze({ min: 1, max: 64 });
