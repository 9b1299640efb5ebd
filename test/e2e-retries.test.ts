/**
 * Retries end to end: an ExternalService's retry policy, declared with the construct API and
 * synthesised into the gateway's ConfigMap, drives the real proxy against flaky local upstreams.
 * Counts are asserted at the upstream (what it saw) and in Linkerd's retry metrics.
 */
import type * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Chart, Duration, Testing } from 'cdk8s';
import {
  EgressGateway, EgressNetwork, ExternalServiceProtocol, GrpcRetryStatus, TlsOrigination, TrafficPolicy, type RetryPolicy,
} from '../src';
import { Closer, ECHO_METHOD, grpcCall, metricSamples, startChartProxy, type ChartProxy, type Sample } from './e2e/tls-matrix-harness';
import { startHttpUpstream, viaProxy, type TestUpstream } from './proxy/helpers';
import type { ProxyConfig, RetrySpec } from '../src/model/proxy-config';

const HOST = 'flaky.example.test';
const RETRY_METRICS = [
  'outbound_http_route_retry_requests_total',
  'outbound_http_route_retry_successes_total',
  'outbound_http_route_retry_limit_exceeded_total',
  'outbound_http_route_retry_overflow_total',
] as const;
type RetryMetric = typeof RETRY_METRICS[number];

const closer = new Closer();
afterEach(() => closer.run());

/** Backoff of a millisecond or two keeps the runs short; nothing below depends on it. */
const FAST: RetryPolicy = { backoffBase: Duration.millis(1), backoffMax: Duration.millis(2) };

function chartWith(retries: RetryPolicy): Chart {
  const chart = new Chart(Testing.app(), 'retries');
  const gateway = new EgressGateway(chart, 'Gateway', { name: 'egress', namespace: 'egress-retries' });
  // Plaintext is declared explicitly: retries are about HTTP semantics, not the transport.
  gateway.addExternalService('Flaky', {
    name: 'flaky', host: HOST, tls: TlsOrigination.disabled(), ports: [{ port: 80, protocol: ExternalServiceProtocol.HTTP }], retries,
  });
  return chart;
}

/** Answers 503 to the first `failures` requests (Infinity: always), then 200; records bodies. */
async function flakyUpstream(failures: number): Promise<TestUpstream & { bodies: string[] }> {
  const bodies: string[] = [];
  let n = 0;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      const fail = n++ < failures;
      res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(fail ? 'unavailable' : `ok after ${n}`);
    });
  };
  const u = closer.add(await startHttpUpstream(handler));
  return Object.assign(u, { bodies });
}

async function proxyFor(chart: Chart, upstreamPort: number): Promise<ChartProxy> {
  return closer.add(await startChartProxy(chart, { names: { [HOST]: '127.0.0.1' }, ports: { 80: upstreamPort } }));
}

function retrySpecOf(config: ProxyConfig): RetrySpec {
  const spec = config.externalServices[0].retry;
  if (!spec) throw new Error('the synthesised service has no retry spec');
  return spec;
}

/** The route labels every retry sample must carry: the parent from the config, the default route, the service host. */
function routeLabels(config: ProxyConfig): Record<string, string> {
  return {
    parent_group: 'policy.linkerd.io',
    parent_kind: 'EgressNetwork',
    parent_namespace: config.parent.namespace,
    parent_name: config.parent.name,
    parent_port: '80',
    parent_section_name: '',
    route_group: '',
    route_kind: 'default',
    route_namespace: '',
    route_name: 'http-egress-allow',
    hostname: HOST,
  };
}

/** Each retry counter as the exact list of samples it should expose (absent when zero). */
async function retryMetrics(p: ChartProxy): Promise<Record<RetryMetric, Sample[]>> {
  const out = {} as Record<RetryMetric, Sample[]>;
  for (const name of RETRY_METRICS) out[name] = await metricSamples(p.proxy.ports.admin, name);
  return out;
}

function expected(p: ChartProxy, counts: Partial<Record<RetryMetric, number>>): Record<RetryMetric, Sample[]> {
  const labels = routeLabels(p.synthesised);
  const out = {} as Record<RetryMetric, Sample[]>;
  for (const name of RETRY_METRICS) out[name] = counts[name] ? [{ labels, value: counts[name]! }] : [];
  return out;
}

describe('retry policy from the ExternalService construct', () => {
  test('a flaky GET (503 twice) succeeds within 3 retries; the upstream saw 3 requests; metrics count 2 retries, 1 success', async () => {
    const upstream = await flakyUpstream(2);
    const p = await proxyFor(chartWith({ ...FAST, maxRetries: 3, retryOnStatuses: [503] }), upstream.port);
    expect(retrySpecOf(p.synthesised)).toMatchObject({ maxRetries: 3, statusCodes: [503], retryNonIdempotent: false });
    const r = await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, '/thing');
    expect([r.status, r.body]).toEqual([200, 'ok after 3']);
    expect(upstream.requests()).toBe(3);
    expect(upstream.seen.map((s) => s.url)).toEqual(['/thing', '/thing', '/thing']);
    expect(await retryMetrics(p)).toEqual(expected(p, {
      outbound_http_route_retry_requests_total: 2, outbound_http_route_retry_successes_total: 1,
    }));
    // The client saw one request with one status.
    const statuses = await metricSamples(p.proxy.ports.admin, 'outbound_http_route_request_statuses_total');
    expect(statuses.map((s) => [s.labels.http_status, s.value])).toEqual([['200', 1]]);
  });

  test('an outage longer than maxRetries returns the last 503; the upstream saw maxRetries + 1; limit exceeded once', async () => {
    const upstream = await flakyUpstream(Infinity);
    const p = await proxyFor(chartWith({ ...FAST, maxRetries: 2, retryOnStatuses: [503] }), upstream.port);
    const r = await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, '/');
    expect([r.status, r.body]).toEqual([503, 'unavailable']);
    expect(upstream.requests()).toBe(3);
    expect(await retryMetrics(p)).toEqual(expected(p, {
      outbound_http_route_retry_requests_total: 2, outbound_http_route_retry_limit_exceeded_total: 1,
    }));
  });

  test('a status not listed is not retried', async () => {
    const upstream = closer.add(await startHttpUpstream((_req, res) => {
      res.writeHead(500);
      res.end();
    }));
    const p = await proxyFor(chartWith({ ...FAST, maxRetries: 3, retryOnStatuses: [503] }), upstream.port);
    expect((await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, '/')).status).toBe(500);
    expect(upstream.requests()).toBe(1);
    expect(await retryMetrics(p)).toEqual(expected(p, {}));
  });

  test('a POST is not retried by default: the upstream saw 1 request and the client gets the 503', async () => {
    const upstream = await flakyUpstream(1);
    const p = await proxyFor(chartWith({ ...FAST, maxRetries: 3, retryOnStatuses: [503] }), upstream.port);
    const r = await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, '/orders', { method: 'POST', body: 'payload' });
    expect(r.status).toBe(503);
    expect(upstream.requests()).toBe(1);
    expect(upstream.bodies).toEqual(['payload']);
    expect(await retryMetrics(p)).toEqual(expected(p, {}));
  });

  test('with retryNonIdempotent a POST is retried, and each attempt carries the same body', async () => {
    const upstream = await flakyUpstream(1);
    const p = await proxyFor(chartWith({ ...FAST, maxRetries: 3, retryOnStatuses: [503], retryNonIdempotent: true }), upstream.port);
    expect(retrySpecOf(p.synthesised).retryNonIdempotent).toBe(true);
    const r = await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, '/orders', { method: 'POST', body: 'payload' });
    expect([r.status, r.body]).toEqual([200, 'ok after 2']);
    expect(upstream.requests()).toBe(2);
    expect(upstream.seen.map((s) => [s.method, s.headers['content-length']])).toEqual([['POST', '7'], ['POST', '7']]);
    expect(upstream.bodies).toEqual(['payload', 'payload']);
    expect(await retryMetrics(p)).toEqual(expected(p, {
      outbound_http_route_retry_requests_total: 1, outbound_http_route_retry_successes_total: 1,
    }));
  });

  test('a body over 64 KiB is never retried (it streams), even with retryNonIdempotent', async () => {
    const upstream = await flakyUpstream(1);
    const p = await proxyFor(chartWith({ ...FAST, maxRetries: 3, retryOnStatuses: [503], retryNonIdempotent: true }), upstream.port);
    const big = 'x'.repeat(64 * 1024 + 1);
    const r = await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, '/upload', { method: 'PUT', body: big });
    expect(r.status).toBe(503);
    expect(upstream.requests()).toBe(1);
    expect(upstream.bodies.map((b) => b.length)).toEqual([big.length]);
  });

  test('a connect failure is retried under the connect-failure condition, then reported as 502 CONNECT_FAILED', async () => {
    // A port that was just bound and released: nothing listens there.
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const p = await proxyFor(chartWith({ ...FAST, maxRetries: 2 }), closed);
    expect(retrySpecOf(p.synthesised).conditions).toEqual(['connect-failure', 'reset']);
    const r = await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, '/');
    expect([r.status, r.headers['x-egress-error']]).toEqual([502, 'CONNECT_FAILED']);
    expect(p.dialer.calls).toEqual([1, 2, 3].map(() => ({ address: '127.0.0.1', port: 80 })));
    expect(await retryMetrics(p)).toEqual(expected(p, {
      outbound_http_route_retry_requests_total: 2, outbound_http_route_retry_limit_exceeded_total: 1,
    }));
  });
});

/**
 * What the documented budget allows for `n` sequential requests that all fail retryably, with
 * nothing ageing out of the window: after request i, retries so far may not exceed
 * minPerSecond × ttl + ratio × i; a request stops at maxRetries (limit exceeded) or when the
 * budget says no (overflow).
 */
function budgetModel(spec: RetrySpec, n: number): { retries: number; overflow: number; limitExceeded: number } {
  const reserve = spec.budgetMinPerSecond * (spec.budgetTtlMs / 1000);
  let retries = 0;
  let overflow = 0;
  let limitExceeded = 0;
  for (let i = 1; i <= n; i++) {
    let mine = 0;
    for (;;) {
      if (mine === spec.maxRetries) {
        limitExceeded++;
        break;
      }
      if (reserve + spec.budgetRatio * i - retries < 1 - 1e-9) {
        overflow++;
        break;
      }
      retries++;
      mine++;
    }
  }
  return { retries, overflow, limitExceeded };
}

describe('retry budget during an outage', () => {
  test('50 failing GETs: retries stop at the budget bound computed from the synthesised config', async () => {
    const upstream = await flakyUpstream(Infinity);
    // A minute-long window: no count ages out while the test runs, so the bound is exact.
    const p = await proxyFor(chartWith({
      ...FAST, maxRetries: 3, retryOnStatuses: [503], budgetRatio: 0.1, budgetMinPerSecond: 0.1, budgetTtl: Duration.minutes(1),
    }), upstream.port);
    const spec = retrySpecOf(p.synthesised);
    expect(spec).toMatchObject({ maxRetries: 3, budgetRatio: 0.1, budgetMinPerSecond: 0.1, budgetTtlMs: 60_000 });
    const n = 50;
    for (let i = 0; i < n; i++) {
      const r = await viaProxy(p.proxy.ports.http, `${HOST}.egress.local`, `/r${i}`);
      expect(r.status).toBe(503);
    }
    const bound = Math.floor(spec.budgetMinPerSecond * (spec.budgetTtlMs / 1000) + spec.budgetRatio * n + 1e-9);
    const model = budgetModel(spec, n);
    expect(bound).toBe(11);
    expect(model).toEqual({ retries: 11, overflow: 48, limitExceeded: 2 });
    // Without a budget the upstream would have seen n × (maxRetries + 1) = 200 requests.
    expect(upstream.requests() - n).toBe(model.retries);
    expect(upstream.requests() - n).toBeLessThanOrEqual(bound);
    expect(await retryMetrics(p)).toEqual(expected(p, {
      outbound_http_route_retry_requests_total: model.retries,
      outbound_http_route_retry_overflow_total: model.overflow,
      outbound_http_route_retry_limit_exceeded_total: model.limitExceeded,
    }));
  });
});

/* ------------------------------------------------------------------------- gRPC */

const GRPC_HOST = 'grpc.example.test';

/** A GRPCRoute retrying `on` (at most `limit` times) to a plaintext gRPC ExternalService on 9000. */
function grpcChart(on: GrpcRetryStatus[], limit: number): Chart {
  const chart = new Chart(Testing.app(), 'grpc-retries', { namespace: 'egress-retries' });
  const network = new EgressNetwork(chart, 'Net', { name: 'all-egress-traffic', trafficPolicy: TrafficPolicy.DENY });
  const gateway = new EgressGateway(chart, 'Gateway', { name: 'egress', namespace: 'egress-retries', createNamespace: false, network });
  gateway.addExternalService('Grpc', {
    name: 'grpc', host: GRPC_HOST, tls: TlsOrigination.disabled(), ports: [{ port: 9000, protocol: ExternalServiceProtocol.GRPC }],
  });
  network.addGrpcRoute('Echo', { name: 'echo', port: 9000, hostnames: [GRPC_HOST], retry: { on, limit } });
  return chart;
}

interface GrpcCallSeen {
  readonly path: string;
  readonly body: Buffer;
}

/**
 * A raw h2c gRPC server: the first `failures` calls get a Trailers-Only answer (HTTP 200,
 * grpc-status `failStatus` in the headers, no body); later ones a message and grpc-status 0.
 */
async function grpcFlakyUpstream(failures: number, failStatus: number): Promise<{ port: number; calls: GrpcCallSeen[]; close(): Promise<void> }> {
  const calls: GrpcCallSeen[] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      calls.push({ path: String(headers[':path']), body: Buffer.concat(chunks) });
      if (calls.length <= failures) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(failStatus), 'grpc-message': 'try%20again' }, { endStream: true });
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(grpcFrame(`ok after ${calls.length}`));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    calls,
    close: () => new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    }),
  };
}

/** One uncompressed, length-prefixed gRPC message carrying `text` (what grpc-js sends for a unary request). */
function grpcFrame(text: string): Buffer {
  const msg = Buffer.from(text);
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  return frame;
}

describe('gRPC retries on grpc-status from the GRPCRoute construct', () => {
  async function grpcProxy(chart: Chart, port: number): Promise<ChartProxy> {
    return closer.add(await startChartProxy(chart, { names: { [GRPC_HOST]: '127.0.0.1' }, ports: { 9000: port } }));
  }

  function grpcRouteLabels(p: ChartProxy): Record<string, string> {
    return {
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: p.synthesised.parent.namespace,
      parent_name: 'all-egress-traffic',
      parent_port: '9000',
      parent_section_name: '',
      route_group: 'gateway.networking.k8s.io',
      route_kind: 'GRPCRoute',
      route_namespace: 'egress-retries',
      route_name: 'echo',
      hostname: GRPC_HOST,
    };
  }

  test('UNAVAILABLE (Trailers-Only) twice, then OK: the call succeeds, the upstream saw 3 identical calls, metrics count 2 retries, 1 success', async () => {
    const upstream = closer.add(await grpcFlakyUpstream(2, grpc.status.UNAVAILABLE));
    const p = await grpcProxy(grpcChart([GrpcRetryStatus.UNAVAILABLE], 3), upstream.port);
    const spec = p.synthesised.routes[0].rules[0].retry;
    expect(spec).toMatchObject({ maxRetries: 3, grpcStatusCodes: [14] });
    const r = await grpcCall(p.proxy.ports.http, `${GRPC_HOST}.egress.local:9000`, 'ping');
    expect(r).toEqual({ code: grpc.status.OK, reply: 'ok after 3' });
    // Each retry replayed the request body byte for byte.
    expect(upstream.calls).toEqual([1, 2, 3].map(() => ({ path: ECHO_METHOD, body: grpcFrame('ping') })));
    const labels = grpcRouteLabels(p);
    expect(await retryMetrics(p)).toEqual({
      outbound_http_route_retry_requests_total: [{ labels, value: 2 }],
      outbound_http_route_retry_successes_total: [{ labels, value: 1 }],
      outbound_http_route_retry_limit_exceeded_total: [],
      outbound_http_route_retry_overflow_total: [],
    });
    const statuses = await metricSamples(p.proxy.ports.admin, 'outbound_grpc_route_request_statuses_total');
    expect(statuses.map((s) => [s.labels.route_name, s.labels.grpc_status, s.value])).toEqual([['echo', 'OK', 1]]);
  });

  test('an outage longer than the limit returns UNAVAILABLE after limit + 1 calls; limit exceeded once', async () => {
    const upstream = closer.add(await grpcFlakyUpstream(Infinity, grpc.status.UNAVAILABLE));
    const p = await grpcProxy(grpcChart([GrpcRetryStatus.UNAVAILABLE], 2), upstream.port);
    const r = await grpcCall(p.proxy.ports.http, `${GRPC_HOST}.egress.local:9000`, 'ping');
    expect([r.code, r.details]).toEqual([grpc.status.UNAVAILABLE, 'try again']);
    expect(upstream.calls).toHaveLength(3);
    const labels = grpcRouteLabels(p);
    expect(await retryMetrics(p)).toEqual({
      outbound_http_route_retry_requests_total: [{ labels, value: 2 }],
      outbound_http_route_retry_successes_total: [],
      outbound_http_route_retry_limit_exceeded_total: [{ labels, value: 1 }],
      outbound_http_route_retry_overflow_total: [],
    });
  });

  test('a grpc-status the route does not list (INTERNAL) is not retried', async () => {
    const upstream = closer.add(await grpcFlakyUpstream(1, grpc.status.INTERNAL));
    const p = await grpcProxy(grpcChart([GrpcRetryStatus.UNAVAILABLE], 3), upstream.port);
    const r = await grpcCall(p.proxy.ports.http, `${GRPC_HOST}.egress.local:9000`, 'ping');
    // The upstream's own status and message reach the client (Trailers-Only relayed as such).
    expect([r.code, r.details]).toEqual([grpc.status.INTERNAL, 'try again']);
    expect(upstream.calls).toHaveLength(1);
    expect(await retryMetrics(p)).toEqual(expected(p, {}));
  });
});
