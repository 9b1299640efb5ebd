// Route-backend families (Linkerd's names and labels), gRPC durations, denials by reason and mode,
// readiness and the concurrency limit, read from a running proxy's /metrics after real traffic.
import * as http2 from 'node:http2';
import { sample, scrape, startHttpsUpstream, startTestProxy, testConfig, testService, viaProxy, type TestProxy, type TestUpstream } from './helpers';
import { grpcStatusName } from '../../src/proxy/operate-metrics';

const PARENT = {
  parent_group: 'policy.linkerd.io',
  parent_kind: 'EgressNetwork',
  parent_namespace: 'egress-test',
  parent_name: 'all-egress-traffic',
  parent_port: '80',
  parent_section_name: '',
};
/** The parent as backend: Linkerd's labels when traffic goes to the original destination. */
const PARENT_AS_BACKEND = {
  backend_group: 'policy.linkerd.io',
  backend_kind: 'EgressNetwork',
  backend_namespace: 'egress-test',
  backend_name: 'all-egress-traffic',
  backend_port: '80',
  backend_section_name: '',
};
const DEFAULT_ALLOW = { route_group: '', route_kind: 'default', route_namespace: '', route_name: 'http-egress-allow' };

let tp: TestProxy | undefined;
let upstream: TestUpstream | undefined;
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await tp?.proxy.close();
  await upstream?.close();
  for (const c of closers.splice(0)) await c();
  tp = undefined;
  upstream = undefined;
});

function parent(trafficPolicy: 'Allow' | 'Deny', mode?: 'ReportOnly') {
  return { name: 'all-egress-traffic', namespace: 'egress-test', trafficPolicy, ...(mode ? { mode } : {}) };
}

describe('HTTP route-backend metrics', () => {
  test('an allowed request counts at the parent-as-backend, without hostname, with status and duration', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      parent: parent('Allow'),
      externalServices: [testService('httpbin', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
    }), { 'api.test.example': '127.0.0.1' });
    for (let i = 0; i < 2; i++) expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/get')).status).toBe(200);
    const m = await scrape(tp.proxy.ports.admin);
    const labels = { ...PARENT, ...DEFAULT_ALLOW, ...PARENT_AS_BACKEND };
    expect(sample(m, 'outbound_http_route_backend_requests_total', labels)).toBe(2);
    expect(sample(m, 'outbound_http_route_backend_response_statuses_total', { ...labels, http_status: '200', error: '' })).toBe(2);
    expect(sample(m, 'outbound_http_route_backend_response_duration_seconds_count', labels)).toBe(2);
    expect(sample(m, 'outbound_http_route_backend_response_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBe(2);
    expect(m).not.toMatch(/outbound_http_route_backend_[a-z_]+\{[^}]*hostname=/);
  });

  test('a failed upstream is counted with its error; a denied request never reaches a backend', async () => {
    tp = await startTestProxy(testConfig({
      parent: { ...parent('Deny'), allowDeclaredServices: true },
      // Nothing listens on port 1 of loopback: connect refused, 502.
      externalServices: [testService('down', 'down.test.example', { ports: [{ port: 80, targetPort: 1 }] })],
    }), { 'down.test.example': '127.0.0.1' });
    expect((await viaProxy(tp.proxy.ports.http, 'down.test.example.egress.local', '/')).status).toBe(502);
    expect((await viaProxy(tp.proxy.ports.http, 'other.test.example.egress.local', '/')).status).toBe(403);
    const m = await scrape(tp.proxy.ports.admin);
    const statuses = m.split('\n').filter((l) => l.startsWith('outbound_http_route_backend_response_statuses_total{'));
    expect(statuses).toHaveLength(1);
    expect(statuses[0]).toMatch(/route_kind="ExternalService",route_namespace="egress",route_name="down",/);
    expect(statuses[0]).toMatch(/http_status="502",error="CONNECT_FAILED"\} 1$/);
  });
});

describe('policy denials', () => {
  test('enforced denials count by route, reason and protocol; the hostname label stays bounded', async () => {
    tp = await startTestProxy(testConfig({ parent: parent('Deny') }));
    await viaProxy(tp.proxy.ports.http, 'httpbin.org.egress.local', '/get');
    await viaProxy(tp.proxy.ports.http, 'example.org.egress.local', '/get');
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'egress_policy_denials_total', {
      route_group: '', route_kind: 'default', route_namespace: '', route_name: 'http-egress-deny', hostname: '', protocol: 'http', reason: 'default-deny', mode: 'enforce',
    })).toBe(2);
    expect(m).not.toContain('httpbin.org');
  });

  test('report-only: the request goes through and the denial it would have been is counted', async () => {
    tp = await startTestProxy(testConfig({
      parent: parent('Deny', 'ReportOnly'),
      defaultTls: testService('x', 'x').tls,
    }), { 'api.test.example': '127.0.0.1' });
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/', {});
    // The default TLS dials port 443, which nothing serves here: what matters is the count below.
    expect([200, 502]).toContain(r.status);
    const m = await scrape(tp.proxy.ports.admin);
    expect(m).toMatch(/egress_policy_denials_total\{[^}]*route_name="http-egress-deny"[^}]*reason="default-deny",mode="report-only"\} 1/);
  });
});

describe('gRPC metrics', () => {
  test('a gRPC call fills the gRPC route duration and the gRPC route-backend families, statuses by name', async () => {
    const h2server = http2.createServer();
    h2server.on('stream', (stream) => {
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '5' }));
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      });
    });
    await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
    closers.push(() => new Promise<void>((r) => h2server.close(() => r())));
    const port = (h2server.address() as { port: number }).port;
    tp = await startTestProxy(testConfig({
      parent: parent('Allow'),
      externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, protocol: 'grpc', targetPort: port }], tls: { enabled: false } })],
    }), { 'api.test.example': '127.0.0.1' });
    const client = http2.connect(`http://127.0.0.1:${tp.proxy.ports.http}`);
    closers.push(async () => { client.destroy(); });
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = client.request({
        ':method': 'POST', ':path': '/grpc.test.Echo/Say', ':authority': 'api.test.example.egress.local', 'content-type': 'application/grpc', 'te': 'trailers',
      });
      stream.on('trailers', (t) => resolve(t));
      stream.on('error', reject);
      stream.resume();
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    expect(trailers['grpc-status']).toBe('5');
    const m = await scrape(tp.proxy.ports.admin);
    const route = { ...PARENT, route_group: '', route_kind: 'default', route_namespace: '', route_name: 'grpc-egress-allow' };
    expect(sample(m, 'outbound_grpc_route_request_duration_seconds_count', { ...route, hostname: 'api.test.example' })).toBe(1);
    const backend = { ...route, ...PARENT_AS_BACKEND };
    expect(sample(m, 'outbound_grpc_route_backend_requests_total', backend)).toBe(1);
    expect(sample(m, 'outbound_grpc_route_backend_response_statuses_total', { ...backend, grpc_status: 'NOT_FOUND', error: '' })).toBe(1);
    // The route family names the status the same way the backend family does.
    expect(sample(m, 'outbound_grpc_route_request_statuses_total', { ...route, hostname: 'api.test.example', grpc_status: 'NOT_FOUND', error: '' })).toBe(1);
    expect(sample(m, 'outbound_grpc_route_backend_response_duration_seconds_count', backend)).toBe(1);
    // gRPC calls are not counted twice in the HTTP backend family.
    expect(m).not.toMatch(/^outbound_http_route_backend_requests_total\{/m);
  });

  test.each([['0', 'OK'], ['14', 'UNAVAILABLE'], ['16', 'UNAUTHENTICATED'], ['17', 'UNKNOWN'], ['', 'UNKNOWN'], ['abc', 'UNKNOWN']])(
    'grpc-status %j is labelled %s', (code, name) => {
      expect(grpcStatusName(code)).toBe(name);
    });
});

describe('readiness and limit gauges', () => {
  test('egress_ready is 1 while serving and egress_inflight_limit is limits.maxConcurrent', async () => {
    tp = await startTestProxy(testConfig({ limits: { maxConcurrent: 321 } }));
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'egress_ready', {})).toBe(1);
    expect(sample(m, 'egress_inflight_limit', {})).toBe(321);
  });

  test('egress_ready drops to 0 while draining', async () => {
    tp = await startTestProxy(testConfig());
    const proxy = tp.proxy;
    // A long grace keeps the admin listener up; nothing is in flight, so drain proceeds at once
    // to closing listeners: read the gauge through the metrics registry while not ready.
    const draining = proxy.drain(50);
    expect(proxy.isReady()).toBe(false);
    const text = await proxy.metrics.registry.metrics();
    expect(sample(text, 'egress_ready', {})).toBe(0);
    await draining;
  });
});
