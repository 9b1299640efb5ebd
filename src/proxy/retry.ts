// Retry policy as pure parts: which failures may be retried, how long to back off, and a
// Linkerd-style retry budget that caps retries to a share of recent traffic. Clock injected.
//
// API (stable):
//   IDEMPOTENT_METHODS: readonly string[]                   RFC 9110 §9.2.2
//   RETRY_CONDITION_CODES: Record<RetryConditionSpec, readonly RetryableErrorCode[]>
//   RETRYABLE_ERROR_CODES: readonly RetryableErrorCode[]    every code any condition names
//   retryVerdict(input): RetryVerdict                       { retry, reason }; input.grpcStatus optional
//   isRetryable(input): boolean
//   backoffMs(attempt, spec, random): number
//   class RetryBudget { constructor(options); static fromSpec(spec, now); recordRequest();
//                       tryAcquireRetry(): boolean; available(): number; window(): { requests, retries } }
import type { RetryConditionSpec, RetrySpec } from '../model/proxy-config';

/** Methods a server must treat as idempotent (RFC 9110 §9.2.2): safe to send twice. */
export const IDEMPOTENT_METHODS: readonly string[] = Object.freeze(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * The proxy's stable error codes (errors.ts) that retry conditions cover. errors.ts must use
 * exactly these spellings for failures it wants retried.
 */
export type RetryableErrorCode = 'CONNECT_FAILED' | 'CONNECT_TIMEOUT' | 'UPSTREAM_RESET' | 'TLS_TIMEOUT' | 'RESPONSE_TIMEOUT';

/**
 * Which codes each configured condition retries. A connect timeout is both a connect failure
 * (nothing reached the upstream, as Envoy counts it) and a timeout. TLS verification failures
 * (TLS_FAILED) and DNS failures are never retried: the same attempt would fail the same way.
 */
export const RETRY_CONDITION_CODES: Readonly<Record<RetryConditionSpec, readonly RetryableErrorCode[]>> = Object.freeze({
  'connect-failure': Object.freeze(['CONNECT_FAILED', 'CONNECT_TIMEOUT'] as const),
  'reset': Object.freeze(['UPSTREAM_RESET'] as const),
  'timeout': Object.freeze(['CONNECT_TIMEOUT', 'TLS_TIMEOUT', 'RESPONSE_TIMEOUT'] as const),
});

export const RETRYABLE_ERROR_CODES: readonly RetryableErrorCode[] = Object.freeze(
  [...new Set(Object.values(RETRY_CONDITION_CODES).flat())],
);

export interface RetryInput {
  readonly method: string;
  /** Upstream response status, when a response arrived. */
  readonly status?: number;
  /** Stable error code, when the attempt failed without a usable response. Wins over status. */
  readonly errorCode?: string;
  /**
   * grpc-status of a gRPC Trailers-Only response (status in the response headers, no body), the
   * only gRPC answer that can be retried: once a message was relayed the call cannot be replayed.
   */
  readonly grpcStatus?: number;
  readonly spec: RetrySpec;
  /** Retries already made for this request (0 when deciding the first retry). @default 0 */
  readonly retriesSoFar?: number;
  /** False when the request body was streamed upstream and cannot be sent again. @default true */
  readonly replayable?: boolean;
}

/**
 * Why, for logs and metrics:
 * - retry: 'status' | 'grpc-status' | 'connect-failure' | 'reset' | 'timeout' (what matched)
 * - no retry: 'disabled' (maxRetries 0), 'exhausted' (maxRetries reached), 'not-replayable',
 *   'method' (not idempotent and retryNonIdempotent off), 'not-retryable' (status or code not listed)
 */
export type RetryVerdictReason = 'status' | 'grpc-status' | RetryConditionSpec | 'disabled' | 'exhausted' | 'not-replayable' | 'method' | 'not-retryable';

export interface RetryVerdict {
  readonly retry: boolean;
  readonly reason: RetryVerdictReason;
}

/**
 * Checks, in order: retries enabled and not used up; the body can be replayed; the method is
 * idempotent (or retryNonIdempotent); then the error code against the configured conditions, or
 * else the grpc-status against grpcStatusCodes, or else the status against statusCodes. The
 * budget is checked separately (RetryBudget).
 *
 * A listed grpc-status is retried whatever the method: every gRPC call is a POST, and a route
 * that names gRPC statuses to retry has declared its calls safe to repeat on them (Linkerd's
 * semantics for GRPCRoute retries). Transport failures of gRPC calls keep the method rule.
 */
export function retryVerdict(input: RetryInput): RetryVerdict {
  const { spec } = input;
  if (spec.maxRetries <= 0) return { retry: false, reason: 'disabled' };
  if ((input.retriesSoFar ?? 0) >= spec.maxRetries) return { retry: false, reason: 'exhausted' };
  if (input.replayable === false) return { retry: false, reason: 'not-replayable' };
  const grpcListed = input.errorCode === undefined && input.grpcStatus !== undefined && (spec.grpcStatusCodes ?? []).includes(input.grpcStatus);
  if (!grpcListed && !spec.retryNonIdempotent && !IDEMPOTENT_METHODS.includes(input.method.toUpperCase())) {
    return { retry: false, reason: 'method' };
  }
  if (grpcListed) return { retry: true, reason: 'grpc-status' };
  if (input.errorCode !== undefined) {
    for (const condition of spec.conditions) {
      if ((RETRY_CONDITION_CODES[condition] as readonly string[])?.includes(input.errorCode)) return { retry: true, reason: condition };
    }
    return { retry: false, reason: 'not-retryable' };
  }
  if (input.status !== undefined && spec.statusCodes.includes(input.status)) return { retry: true, reason: 'status' };
  return { retry: false, reason: 'not-retryable' };
}

export function isRetryable(input: RetryInput): boolean {
  return retryVerdict(input).retry;
}

/**
 * Delay before retry number `attempt` (1 for the first retry): exponential from backoffBaseMs,
 * capped at backoffMaxMs, with "equal jitter": half the step is fixed and half is scaled by
 * `random` in [0, 1). Retries from many clients spread out, yet never fire instantly.
 */
export function backoffMs(attempt: number, spec: Pick<RetrySpec, 'backoffBaseMs' | 'backoffMaxMs'>, random: number): number {
  const n = Math.max(1, Math.floor(attempt));
  const base = Math.max(0, spec.backoffBaseMs);
  const max = Math.max(0, spec.backoffMaxMs);
  // 2 ** 52 and beyond is beyond any cap; stop growing before floats lose integers.
  const step = Math.min(max, base * 2 ** Math.min(n - 1, 52));
  const r = random >= 0 && random < 1 ? random : random >= 1 ? 1 - Number.EPSILON : 0;
  return Math.floor(step / 2 + (step / 2) * r);
}

export interface RetryBudgetOptions {
  /** Retries may add this fraction of the requests in the window (0.2: one retry per 5 requests). */
  readonly ratio: number;
  /** Retries per second always allowed on top of the ratio, so quiet clients can retry at all. */
  readonly minPerSecond: number;
  /** The window, in milliseconds, over which requests and retries are counted. */
  readonly ttlMs: number;
  /** Milliseconds from any fixed origin (Date.now, performance.now, or a test clock). */
  readonly now: () => number;
  /** Buckets the window is counted in; counts expire one bucket at a time. @default 10 */
  readonly slots?: number;
}

/**
 * Linkerd's retry budget (the tower Budget it is built on): within the last `ttl`, retries may
 * number at most `minPerSecond × ttl + ratio × requests`. The minimum is added to the ratio, as
 * Linkerd documents it ("at most 20% more load, plus 10 free retries per second"). During an
 * outage every request fails and asks to retry; once the budget is spent tryAcquireRetry() says
 * no until old counts age out of the window, so the upstream sees at most (1 + ratio) × load plus
 * the small per-second reserve.
 * Only original requests are recorded; retries withdraw. Counts live in `slots` ring buckets,
 * so memory is constant and expiry is accurate to ttl / slots.
 */
export class RetryBudget {
  /** A budget from a RetrySpec's budgetRatio, budgetMinPerSecond and budgetTtlMs. */
  public static fromSpec(spec: Pick<RetrySpec, 'budgetRatio' | 'budgetMinPerSecond' | 'budgetTtlMs'>, now: () => number): RetryBudget {
    return new RetryBudget({ ratio: spec.budgetRatio, minPerSecond: spec.budgetMinPerSecond, ttlMs: spec.budgetTtlMs, now });
  }

  private readonly ratio: number;
  private readonly reserve: number;
  private readonly slotMs: number;
  private readonly now: () => number;
  private readonly requests: number[];
  private readonly retries: number[];
  private currentSlot: number;

  constructor(options: RetryBudgetOptions) {
    const slots = options.slots ?? 10;
    const problems: string[] = [];
    if (!(options.ratio >= 0) || !Number.isFinite(options.ratio)) problems.push(`ratio ${options.ratio} must be a finite number >= 0`);
    if (!(options.minPerSecond >= 0) || !Number.isFinite(options.minPerSecond)) problems.push(`minPerSecond ${options.minPerSecond} must be a finite number >= 0`);
    if (!(options.ttlMs > 0) || !Number.isFinite(options.ttlMs)) problems.push(`ttlMs ${options.ttlMs} must be a finite number > 0`);
    if (!Number.isInteger(slots) || slots < 1) problems.push(`slots ${slots} must be an integer >= 1`);
    if (problems.length > 0) throw new RangeError(`invalid retry budget: ${problems.join('; ')}`);
    this.ratio = options.ratio;
    this.reserve = options.minPerSecond * (options.ttlMs / 1000);
    this.slotMs = options.ttlMs / slots;
    this.now = options.now;
    this.requests = new Array<number>(slots).fill(0);
    this.retries = new Array<number>(slots).fill(0);
    this.currentSlot = this.slotOf(this.now());
  }

  /** Count one original request (not a retry). */
  public recordRequest(): void {
    this.requests[this.advance()]++;
  }

  /** Take one retry from the budget; false (and nothing taken) when it is spent. */
  public tryAcquireRetry(): boolean {
    const i = this.advance();
    // The epsilon keeps 0.1 × 10 requests worth one retry despite binary fractions.
    if (this.available() < 1 - 1e-9) return false;
    this.retries[i]++;
    return true;
  }

  /** Retries that could be taken now (may be fractional; a retry needs at least 1). */
  public available(): number {
    this.advance();
    const w = this.window();
    return Math.max(0, this.reserve + this.ratio * w.requests - w.retries);
  }

  /** Requests and retries counted in the current window. */
  public window(): { readonly requests: number; readonly retries: number } {
    this.advance();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < this.requests.length; i++) {
      requests += this.requests[i];
      retries += this.retries[i];
    }
    return { requests, retries };
  }

  private slotOf(t: number): number {
    return Math.floor(t / this.slotMs);
  }

  /** Move to the current bucket, clearing the ones that fell out of the window. */
  private advance(): number {
    const slot = this.slotOf(this.now());
    const n = this.requests.length;
    if (slot > this.currentSlot) {
      const steps = Math.min(slot - this.currentSlot, n);
      for (let k = 1; k <= steps; k++) {
        const i = (((this.currentSlot + k) % n) + n) % n;
        this.requests[i] = 0;
        this.retries[i] = 0;
      }
      this.currentSlot = slot;
    }
    // A clock that steps back keeps counting in the current bucket rather than reviving old ones.
    return ((this.currentSlot % n) + n) % n;
  }
}
