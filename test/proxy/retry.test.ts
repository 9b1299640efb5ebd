import { DEFAULT_RETRY } from '../../src/model/defaults';
import type { RetrySpec } from '../../src/model/proxy-config';
import {
  IDEMPOTENT_METHODS, RETRYABLE_ERROR_CODES, RETRY_CONDITION_CODES, RetryBudget, backoffMs, isRetryable, retryVerdict,
} from '../../src/proxy/retry';

const spec = (o: Partial<RetrySpec> = {}): RetrySpec => ({ ...DEFAULT_RETRY, ...o });

describe('error code constants', () => {
  test('conditions map to the stable codes errors.ts uses', () => {
    expect(RETRY_CONDITION_CODES).toEqual({
      'connect-failure': ['CONNECT_FAILED', 'CONNECT_TIMEOUT'],
      'reset': ['UPSTREAM_RESET'],
      'timeout': ['CONNECT_TIMEOUT', 'TLS_TIMEOUT', 'RESPONSE_TIMEOUT'],
    });
    expect([...RETRYABLE_ERROR_CODES].sort()).toEqual(['CONNECT_FAILED', 'CONNECT_TIMEOUT', 'RESPONSE_TIMEOUT', 'TLS_TIMEOUT', 'UPSTREAM_RESET']);
    expect(IDEMPOTENT_METHODS).toEqual(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
    expect(Object.isFrozen(RETRY_CONDITION_CODES)).toBe(true);
  });
});

describe('retryVerdict / isRetryable', () => {
  const all = spec({ conditions: ['connect-failure', 'reset', 'timeout'] });
  test.each([
    // methods
    ['GET 503', { method: 'GET', status: 503, spec: spec() }, true, 'status'],
    ['get (lower case) 503', { method: 'get', status: 503, spec: spec() }, true, 'status'],
    ['HEAD 502', { method: 'HEAD', status: 502, spec: spec() }, true, 'status'],
    ['OPTIONS 504', { method: 'OPTIONS', status: 504, spec: spec() }, true, 'status'],
    ['TRACE 503', { method: 'TRACE', status: 503, spec: spec() }, true, 'status'],
    ['PUT 503', { method: 'PUT', status: 503, spec: spec() }, true, 'status'],
    ['DELETE 503', { method: 'DELETE', status: 503, spec: spec() }, true, 'status'],
    ['POST 503', { method: 'POST', status: 503, spec: spec() }, false, 'method'],
    ['PATCH 503', { method: 'PATCH', status: 503, spec: spec() }, false, 'method'],
    ['CONNECT 503', { method: 'CONNECT', status: 503, spec: spec() }, false, 'method'],
    ['POST 503 with retryNonIdempotent', { method: 'POST', status: 503, spec: spec({ retryNonIdempotent: true }) }, true, 'status'],
    ['POST CONNECT_FAILED (method rule applies to errors too)', { method: 'POST', errorCode: 'CONNECT_FAILED', spec: spec() }, false, 'method'],
    // statuses
    ['GET 500 (not listed)', { method: 'GET', status: 500, spec: spec() }, false, 'not-retryable'],
    ['GET 200', { method: 'GET', status: 200, spec: spec() }, false, 'not-retryable'],
    ['GET 429 when listed', { method: 'GET', status: 429, spec: spec({ statusCodes: [429] }) }, true, 'status'],
    ['GET 503 when only 429 listed', { method: 'GET', status: 503, spec: spec({ statusCodes: [429] }) }, false, 'not-retryable'],
    ['GET without status or code', { method: 'GET', spec: spec() }, false, 'not-retryable'],
    // error codes vs conditions
    ['CONNECT_FAILED with connect-failure', { method: 'GET', errorCode: 'CONNECT_FAILED', spec: spec() }, true, 'connect-failure'],
    ['CONNECT_TIMEOUT with connect-failure', { method: 'GET', errorCode: 'CONNECT_TIMEOUT', spec: spec({ conditions: ['connect-failure'] }) }, true, 'connect-failure'],
    ['CONNECT_TIMEOUT with timeout', { method: 'GET', errorCode: 'CONNECT_TIMEOUT', spec: spec({ conditions: ['timeout'] }) }, true, 'timeout'],
    ['UPSTREAM_RESET with reset', { method: 'GET', errorCode: 'UPSTREAM_RESET', spec: spec() }, true, 'reset'],
    ['UPSTREAM_RESET without reset', { method: 'GET', errorCode: 'UPSTREAM_RESET', spec: spec({ conditions: ['connect-failure'] }) }, false, 'not-retryable'],
    ['RESPONSE_TIMEOUT by default (timeout not on)', { method: 'GET', errorCode: 'RESPONSE_TIMEOUT', spec: spec() }, false, 'not-retryable'],
    ['RESPONSE_TIMEOUT with timeout', { method: 'GET', errorCode: 'RESPONSE_TIMEOUT', spec: all }, true, 'timeout'],
    ['TLS_TIMEOUT with timeout', { method: 'GET', errorCode: 'TLS_TIMEOUT', spec: all }, true, 'timeout'],
    ['TLS_FAILED is never retried', { method: 'GET', errorCode: 'TLS_FAILED', spec: all }, false, 'not-retryable'],
    ['DNS_FAILED is never retried', { method: 'GET', errorCode: 'DNS_FAILED', spec: all }, false, 'not-retryable'],
    ['EGRESS_DENIED is never retried', { method: 'GET', errorCode: 'EGRESS_DENIED', spec: all }, false, 'not-retryable'],
    ['an error code wins over a listed status', { method: 'GET', errorCode: 'TLS_FAILED', status: 503, spec: all }, false, 'not-retryable'],
    // limits
    ['maxRetries 0 disables', { method: 'GET', status: 503, spec: spec({ maxRetries: 0 }) }, false, 'disabled'],
    ['first retry of 2', { method: 'GET', status: 503, spec: spec({ maxRetries: 2 }), retriesSoFar: 0 }, true, 'status'],
    ['second retry of 2', { method: 'GET', status: 503, spec: spec({ maxRetries: 2 }), retriesSoFar: 1 }, true, 'status'],
    ['third retry of 2', { method: 'GET', status: 503, spec: spec({ maxRetries: 2 }), retriesSoFar: 2 }, false, 'exhausted'],
    ['streamed body cannot be replayed', { method: 'PUT', status: 503, spec: spec(), replayable: false }, false, 'not-replayable'],
    // gRPC Trailers-Only statuses (every gRPC call is a POST)
    ['gRPC POST grpc-status 14 when listed (method rule waived)', { method: 'POST', status: 200, grpcStatus: 14, spec: spec({ grpcStatusCodes: [14] }) }, true, 'grpc-status'],
    ['gRPC POST grpc-status 13 when only 14 listed', { method: 'POST', status: 200, grpcStatus: 13, spec: spec({ grpcStatusCodes: [14] }) }, false, 'method'],
    ['gRPC grpc-status 13 when only 14 listed, retryNonIdempotent', { method: 'POST', status: 200, grpcStatus: 13, spec: spec({ grpcStatusCodes: [14], retryNonIdempotent: true }) }, false, 'not-retryable'],
    ['gRPC grpc-status 14 without grpcStatusCodes', { method: 'POST', status: 200, grpcStatus: 14, spec: spec({ retryNonIdempotent: true }) }, false, 'not-retryable'],
    ['gRPC grpc-status 0 is never retried unless listed', { method: 'POST', status: 200, grpcStatus: 0, spec: spec({ grpcStatusCodes: [14], retryNonIdempotent: true }) }, false, 'not-retryable'],
    ['gRPC grpc-status 14 listed but maxRetries reached', { method: 'POST', grpcStatus: 14, spec: spec({ grpcStatusCodes: [14], maxRetries: 1 }), retriesSoFar: 1 }, false, 'exhausted'],
    ['gRPC grpc-status 14 listed but body not replayable', { method: 'POST', grpcStatus: 14, spec: spec({ grpcStatusCodes: [14] }), replayable: false }, false, 'not-replayable'],
    ['gRPC POST reset keeps the method rule', { method: 'POST', errorCode: 'UPSTREAM_RESET', grpcStatus: 14, spec: spec({ grpcStatusCodes: [14] }) }, false, 'method'],
  ])('%s → %s (%s)', (_name, input, retry, reason) => {
    expect(retryVerdict(input)).toEqual({ retry, reason });
    expect(isRetryable(input)).toBe(retry);
  });
});

describe('backoffMs', () => {
  const s = { backoffBaseMs: 25, backoffMaxMs: 250 };
  test.each([
    [1, 0, 12], // step 25: 12.5 + 0
    [1, 0.5, 18], // 12.5 + 6.25
    [1, 0.999999, 24],
    [2, 0, 25], // step 50
    [2, 0.5, 37],
    [3, 0, 50], // step 100
    [4, 0, 100], // step 200
    [5, 0, 125], // step 400 capped to 250
    [5, 0.999999, 249],
    [60, 0.5, 187], // still capped, no overflow
    [2000, 0, 125],
    [0, 0, 12], // attempt below 1 counts as the first
    [1, 1, 24], // random out of range is clamped below 1
    [1, -1, 12],
    [1, Number.NaN, 12],
  ])('attempt %d, random %p → %d ms', (attempt, random, expected) => {
    expect(backoffMs(attempt, s, random)).toBe(expected);
  });

  test('grows monotonically (at the same draw) until the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6].map((a) => backoffMs(a, { backoffBaseMs: 10, backoffMaxMs: 100 }, 0.3));
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]);
    expect(Math.max(...delays)).toBeLessThan(100);
    expect(delays[delays.length - 1]).toBe(delays[delays.length - 2]);
  });

  test('zero base means no delay', () => {
    expect(backoffMs(3, { backoffBaseMs: 0, backoffMaxMs: 100 }, 0.9)).toBe(0);
  });
});

describe('RetryBudget', () => {
  class Clock {
    public t = 1_000_000;
    public readonly now = () => this.t;
    public advance(ms: number): void {
      this.t += ms;
    }
  }

  const drain = (b: RetryBudget, limit = 10_000): number => {
    let n = 0;
    while (n < limit && b.tryAcquireRetry()) n++;
    return n;
  };

  test('with no traffic, minPerSecond × ttl retries are available', () => {
    const clock = new Clock();
    const b = new RetryBudget({ ratio: 0.2, minPerSecond: 10, ttlMs: 10_000, now: clock.now });
    expect(b.available()).toBe(100);
    expect(drain(b)).toBe(100);
    expect(b.tryAcquireRetry()).toBe(false);
    expect(b.window()).toEqual({ requests: 0, retries: 100 });
  });

  test('the ratio adds to the minimum (Linkerd: 20% more load plus 10 free retries per second)', () => {
    const clock = new Clock();
    const b = new RetryBudget({ ratio: 0.2, minPerSecond: 1, ttlMs: 1_000, now: clock.now });
    for (let i = 0; i < 50; i++) b.recordRequest();
    expect(b.available()).toBeCloseTo(11, 9);
    expect(drain(b)).toBe(11);
  });

  test('ratio only: one retry per five requests, and binary fractions do not lose one', () => {
    const clock = new Clock();
    const b = new RetryBudget({ ratio: 0.1, minPerSecond: 0, ttlMs: 1_000, now: clock.now });
    expect(b.tryAcquireRetry()).toBe(false);
    for (let i = 0; i < 9; i++) b.recordRequest();
    expect(b.tryAcquireRetry()).toBe(false);
    b.recordRequest();
    expect(b.tryAcquireRetry()).toBe(true);
    expect(b.tryAcquireRetry()).toBe(false);
    for (let i = 0; i < 30; i++) b.recordRequest();
    expect(drain(b)).toBe(3);
  });

  test('outage: the budget is spent, retries are refused, and it recovers after ttl', () => {
    const clock = new Clock();
    const b = RetryBudget.fromSpec({ budgetRatio: 0.2, budgetMinPerSecond: 10, budgetTtlMs: 10_000 }, clock.now);
    // 100 requests per second for 5 s, every one failing and asking for a retry.
    let granted = 0;
    let refused = 0;
    for (let ms = 0; ms < 5_000; ms += 10) {
      b.recordRequest();
      if (b.tryAcquireRetry()) granted++;
      else refused++;
      clock.advance(10);
    }
    // Budget over the window: 10/s × 10 s + 0.2 × 500 requests = 200 retries at most.
    expect(granted).toBe(200);
    expect(refused).toBe(300);
    expect(b.tryAcquireRetry()).toBe(false);
    expect(b.window()).toEqual({ requests: 500, retries: 200 });

    // Traffic stops; part of the window ages out, but not the spent retries yet.
    clock.advance(4_000);
    expect(b.tryAcquireRetry()).toBe(false);

    // A full ttl after the outage nothing is counted any more: the reserve is back.
    clock.advance(6_000);
    expect(b.window()).toEqual({ requests: 0, retries: 0 });
    expect(b.available()).toBe(100);
    expect(b.tryAcquireRetry()).toBe(true);
  });

  test('counts expire bucket by bucket', () => {
    const clock = new Clock();
    clock.t = 0;
    const fresh = new RetryBudget({ ratio: 1, minPerSecond: 0, ttlMs: 1_000, now: clock.now, slots: 10 });
    for (let i = 0; i < 4; i++) {
      fresh.recordRequest();
      clock.advance(100); // one bucket per request
    }
    expect(fresh.window().requests).toBe(4);
    clock.advance(600); // t = 1000: the first bucket (t 0-99) has left the window
    expect(fresh.window().requests).toBe(3);
    clock.advance(300);
    expect(fresh.window().requests).toBe(0);
  });

  test('a clock that steps backwards neither revives nor loses counts', () => {
    const clock = new Clock();
    const b = new RetryBudget({ ratio: 1, minPerSecond: 0, ttlMs: 1_000, now: clock.now });
    b.recordRequest();
    clock.advance(-5_000);
    b.recordRequest();
    expect(b.window().requests).toBe(2);
    expect(drain(b)).toBe(2);
  });

  test.each([
    [{ ratio: -0.1, minPerSecond: 1, ttlMs: 1000 }, /ratio -0.1/],
    [{ ratio: Number.NaN, minPerSecond: 1, ttlMs: 1000 }, /ratio NaN/],
    [{ ratio: 0.2, minPerSecond: -1, ttlMs: 1000 }, /minPerSecond -1/],
    [{ ratio: 0.2, minPerSecond: 1, ttlMs: 0 }, /ttlMs 0/],
    [{ ratio: 0.2, minPerSecond: 1, ttlMs: 1000, slots: 0 }, /slots 0/],
    [{ ratio: 0.2, minPerSecond: 1, ttlMs: 1000, slots: 1.5 }, /slots 1.5/],
  ])('throws when options are out of range: %j', (o, message) => {
    expect(() => new RetryBudget({ ...o, now: () => 0 })).toThrow(RangeError);
    expect(() => new RetryBudget({ ...o, now: () => 0 })).toThrow(message);
  });

  test('reports every bad option at once', () => {
    expect(() => new RetryBudget({ ratio: -1, minPerSecond: -1, ttlMs: -1, now: () => 0 })).toThrow(/ratio -1.*; minPerSecond -1.*; ttlMs -1/);
  });
});
