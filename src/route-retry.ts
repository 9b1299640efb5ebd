// Linkerd's per-route retry and timeout policy, which Linkerd reads from annotations on
// HTTPRoute and GRPCRoute objects (retry.linkerd.io/*, timeout.linkerd.io/*).
import type { Duration } from 'cdk8s';

/**
 * HTTP response statuses to retry, in the `retry.linkerd.io/http` spelling.
 * @see https://linkerd.io/2/reference/retries/
 */
export class HttpRetryStatus {
  /** Every 5xx status ('5xx'). */
  public static readonly SERVER_ERROR = new HttpRetryStatus('5xx', 500, 599);
  /** 502, 503 and 504 ('gateway-error'). */
  public static readonly GATEWAY_ERROR = new HttpRetryStatus('gateway-error', 502, 504);

  /** One status code, e.g. 429. */
  public static code(status: number): HttpRetryStatus {
    return new HttpRetryStatus(String(status), status, status);
  }

  /** An inclusive range of status codes, e.g. 500-504. */
  public static range(first: number, last: number): HttpRetryStatus {
    return new HttpRetryStatus(`${first}-${last}`, first, last);
  }

  private constructor(
    /** The annotation spelling. */
    public readonly value: string,
    /** Lowest status retried. */
    public readonly minStatus: number,
    /** Highest status retried. */
    public readonly maxStatus: number,
  ) {}
}

/** gRPC statuses Linkerd can retry (`retry.linkerd.io/grpc`). */
export enum GrpcRetryStatus {
  CANCELLED = 'cancelled',
  DEADLINE_EXCEEDED = 'deadline-exceeded',
  INTERNAL = 'internal',
  RESOURCE_EXHAUSTED = 'resource-exhausted',
  UNAVAILABLE = 'unavailable',
}

/** Retry settings shared by HTTP and gRPC routes. */
export interface RouteRetryOptions {
  /**
   * Most retries after the first attempt (`retry.linkerd.io/limit`), 1-10.
   * @default 1 (Linkerd's default)
   */
  readonly limit?: number;
  /**
   * Each attempt's own deadline, after which it is cancelled and retried (`retry.linkerd.io/timeout`).
   * Whole milliseconds.
   * @default - attempts are bounded only by the route's timeouts
   */
  readonly timeout?: Duration;
}

/** When and how often Linkerd retries requests of an HTTPRoute. */
export interface HttpRouteRetry extends RouteRetryOptions {
  /** Response statuses that are retried (`retry.linkerd.io/http`). */
  readonly on: HttpRetryStatus[];
}

/** When and how often Linkerd retries requests of a GRPCRoute. */
export interface GrpcRouteRetry extends RouteRetryOptions {
  /** gRPC statuses that are retried (`retry.linkerd.io/grpc`). */
  readonly on: GrpcRetryStatus[];
}

/**
 * Linkerd's route timeouts (`timeout.linkerd.io/*` annotations). Linkerd prefers these over a
 * rule's Gateway API `timeouts.request`, so a route may set one or the other, not both.
 * @see https://linkerd.io/2/reference/timeouts/
 */
export interface LinkerdRouteTimeouts {
  /**
   * Longest a whole request-response exchange may take (`timeout.linkerd.io/request`).
   * @default - no limit
   */
  readonly request?: Duration;
  /**
   * Longest the response may take once the request is sent (`timeout.linkerd.io/response`).
   * @default - no limit
   */
  readonly response?: Duration;
  /**
   * Longest an exchange may stay silent (`timeout.linkerd.io/idle`).
   * @default - no limit
   */
  readonly idle?: Duration;
}
