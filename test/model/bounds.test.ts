// The shared bounds: a value at a bound passes both the construct and the proxy's config
// boundary; one just past it is refused by both, each naming the field.
import { Chart, Duration, Testing } from 'cdk8s';
import { ExternalService, ExternalServiceProps, RetryPolicy } from '../../src/external-service';
import { ENDPOINT_PRIORITY_BOUNDS, POOL_BOUNDS, RETRY_BOUNDS } from '../../src/model/bounds';
import { validateConfig } from '../../src/proxy/config';

interface Case {
  /** The ExternalService prop the construct names. */
  readonly prop: string;
  /** The proxy config path (under the service) the loader names. */
  readonly path: string;
  /** Props of the ExternalService with `v` in the field. */
  readonly props: (v: number) => Partial<ExternalServiceProps>;
  /** The service's proxy config with `v` in the field. */
  readonly spec: (v: number) => Record<string, unknown>;
  readonly min: number;
  readonly max: number;
  /** The smallest step past a bound (1 for whole numbers). */
  readonly step: number;
}

const retry = (r: RetryPolicy) => ({ retries: { backoffBase: Duration.millis(0), ...r } });
const retrySpec = (r: Record<string, number>) => ({ retry: { backoffBaseMs: 0, ...r } });
const ms = (v: number) => Duration.millis(v);

const CASES: Case[] = [
  { prop: 'retries.maxRetries', path: 'retry.maxRetries', props: (v) => retry({ maxRetries: v }), spec: (v) => retrySpec({ maxRetries: v }), ...RETRY_BOUNDS.maxRetries, step: 1 },
  { prop: 'retries.budgetRatio', path: 'retry.budgetRatio', props: (v) => retry({ budgetRatio: v }), spec: (v) => retrySpec({ budgetRatio: v }), ...RETRY_BOUNDS.budgetRatio, step: 0.01 },
  {
    prop: 'retries.budgetMinPerSecond',
    path: 'retry.budgetMinPerSecond',
    props: (v) => retry({ budgetMinPerSecond: v }),
    spec: (v) => retrySpec({ budgetMinPerSecond: v }),
    ...RETRY_BOUNDS.budgetMinPerSecond,
    step: 0.5,
  },
  { prop: 'retries.perTryTimeout', path: 'retry.perTryTimeoutMs', props: (v) => retry({ perTryTimeout: ms(v) }), spec: (v) => retrySpec({ perTryTimeoutMs: v }), ...RETRY_BOUNDS.perTryTimeoutMs, step: 1 },
  {
    prop: 'retries.backoffMax',
    path: 'retry.backoffMaxMs',
    props: (v) => retry({ backoffMax: ms(v) }),
    spec: (v) => retrySpec({ backoffMaxMs: v }),
    ...RETRY_BOUNDS.backoffMaxMs,
    step: 1,
  },
  {
    prop: 'retries.backoffBase',
    path: 'retry.backoffBaseMs',
    props: (v) => retry({ backoffBase: ms(v), backoffMax: ms(RETRY_BOUNDS.backoffMaxMs.max) }),
    spec: (v) => retrySpec({ backoffBaseMs: v, backoffMaxMs: RETRY_BOUNDS.backoffMaxMs.max }),
    ...RETRY_BOUNDS.backoffBaseMs,
    step: 1,
  },
  { prop: 'retries.budgetTtl', path: 'retry.budgetTtlMs', props: (v) => retry({ budgetTtl: ms(v) }), spec: (v) => retrySpec({ budgetTtlMs: v }), ...RETRY_BOUNDS.budgetTtlMs, step: 1 },
  {
    prop: 'connectionPool.maxConnections',
    path: 'pool.maxConnections',
    props: (v) => ({ connectionPool: { maxConnections: v } }),
    spec: (v) => ({ pool: { maxConnections: v } }),
    ...POOL_BOUNDS.maxConnections,
    step: 1,
  },
  {
    prop: 'connectionPool.keepAlive',
    path: 'pool.keepAliveTimeoutMs',
    props: (v) => ({ connectionPool: { keepAlive: ms(v) } }),
    spec: (v) => ({ pool: { keepAliveTimeoutMs: v } }),
    ...POOL_BOUNDS.keepAliveTimeoutMs,
    step: 1,
  },
  {
    prop: 'endpoints[0].priority',
    path: 'endpoints[0].priority',
    props: (v) => ({ endpoints: [{ address: '203.0.113.7', priority: v }] }),
    spec: (v) => ({ endpoints: [{ address: '203.0.113.7', priority: v }] }),
    ...ENDPOINT_PRIORITY_BOUNDS,
    step: 1,
  },
];

function constructError(c: Case, v: number): string | undefined {
  try {
    new ExternalService(new Chart(Testing.app(), 'test'), 'svc', { host: 'api.example.com', ...c.props(v) });
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function proxyProblemPaths(c: Case, v: number): string[] {
  const r = validateConfig({
    apiVersion: 'egress.cdk8s.io/v1alpha1',
    kind: 'EgressProxyConfig',
    gateway: { name: 'g', namespace: 'egress' },
    parent: { name: 'g', namespace: 'egress', trafficPolicy: 'Deny' },
    externalServices: [{ name: 'svc', host: 'api.example.com', ...c.spec(v) }],
  });
  return r.ok ? [] : r.problems.map((p) => p.path);
}

describe.each(CASES)('$prop / $path', (c) => {
  test.each([['min', c.min], ['max', c.max]])('passes both ends at its %s', (_, v) => {
    expect(constructError(c, v)).toBeUndefined();
    expect(proxyProblemPaths(c, v)).toEqual([]);
  });

  const past = [c.max + c.step, ...(c.min - c.step >= 0 || c.min > 0 ? [c.min - c.step] : [])];
  test.each(past)('throws at synth and is refused at the proxy for %p', (v) => {
    expect(constructError(c, v)).toContain(`'${c.prop}'`);
    expect(proxyProblemPaths(c, v)).toEqual([`$.externalServices[0].${c.path}`]);
  });
});
