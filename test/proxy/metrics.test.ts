// Metrics: Linkerd-compatible names and exact label sets for allowed, denied and failed HTTP
// requests, bounded hostname labels, and the label caches.
import { sample, scrape, startHttpsUpstream, startTestProxy, testConfig, testService, viaProxy, type TestProxy, type TestUpstream } from './helpers';
import { LabelCache, OutcomeLabels, ProxyMetrics } from '../../src/proxy/metrics';

const PARENT = {
  parent_group: 'policy.linkerd.io',
  parent_kind: 'EgressNetwork',
  parent_namespace: 'egress-test',
  parent_name: 'all-egress-traffic',
  parent_port: '80',
  parent_section_name: '',
};
const DEFAULT_ROUTE = { route_group: '', route_kind: 'default', route_namespace: '' };

let tp: TestProxy | undefined;
let upstream: TestUpstream | undefined;
afterEach(async () => {
  await tp?.proxy.close();
  await upstream?.close();
  tp = undefined;
  upstream = undefined;
});

function parent(trafficPolicy: 'Allow' | 'Deny') {
  return { name: 'all-egress-traffic', namespace: 'egress-test', trafficPolicy };
}

describe('HTTP route metrics', () => {
  test('allowed requests: http-egress-allow, declared hostname, status and duration', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      parent: parent('Allow'),
      externalServices: [testService('httpbin', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
    }), { 'api.test.example': '127.0.0.1' });
    for (let i = 0; i < 3; i++) await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/get');
    const m = await scrape(tp.proxy.ports.admin);
    const labels = { ...PARENT, ...DEFAULT_ROUTE, route_name: 'http-egress-allow', hostname: 'api.test.example', http_status: '200', error: '' };
    expect(sample(m, 'outbound_http_route_request_statuses_total', labels)).toBe(3);
    expect(sample(m, 'outbound_http_route_request_duration_seconds_count', labels)).toBe(3);
    expect(sample(m, 'outbound_http_route_request_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBe(3);
  });

  test('denied requests (seed 001): http-egress-deny, http_status="403", error=""', async () => {
    tp = await startTestProxy(testConfig({ parent: parent('Deny') }));
    await viaProxy(tp.proxy.ports.http, 'httpbin.org.egress.local', '/get');
    await viaProxy(tp.proxy.ports.http, 'httpbin.org.egress.local', '/post');
    const m = await scrape(tp.proxy.ports.admin);
    // httpbin.org is not declared anywhere: the label stays empty, never the client's string.
    expect(sample(m, 'outbound_http_route_request_statuses_total', {
      ...PARENT, ...DEFAULT_ROUTE, route_name: 'http-egress-deny', hostname: '', http_status: '403', error: '',
    })).toBe(2);
    expect(m).not.toContain('httpbin.org');
  });

  test('an HTTPRoute match is labelled with the route; a declared service names the hostname', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      parent: parent('Deny'),
      externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
      routes: [{
        kind: 'HTTPRoute',
        name: 'httpbin-get',
        namespace: 'egress-test',
        hostnames: ['*.test.example'],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/get' } }] }],
      }],
    }), { 'api.test.example': '127.0.0.1' });
    await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/get');
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'outbound_http_route_request_statuses_total', {
      ...PARENT,
      route_group: 'gateway.networking.k8s.io',
      route_kind: 'HTTPRoute',
      route_namespace: 'egress-test',
      route_name: 'httpbin-get',
      hostname: 'api.test.example',
      http_status: '200',
      error: '',
    })).toBe(1);
  });

  test('without a service, a wildcard route hostname is the label, not the requested name', async () => {
    tp = await startTestProxy(testConfig({
      parent: parent('Deny'),
      routes: [{
        kind: 'HTTPRoute',
        name: 'moved',
        namespace: 'egress-test',
        hostnames: ['*.old.example'],
        rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'new.example', statusCode: 302 } }] }],
      }],
    }));
    await viaProxy(tp.proxy.ports.http, 'user-1234.old.example.egress.local', '/');
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'outbound_http_route_request_statuses_total', {
      ...PARENT,
      route_group: 'gateway.networking.k8s.io',
      route_kind: 'HTTPRoute',
      route_namespace: 'egress-test',
      route_name: 'moved',
      hostname: '*.old.example',
      http_status: '302',
      error: '',
    })).toBe(1);
    expect(m).not.toContain('user-1234');
  });

  test('proxy failures carry their code in error and the status sent', async () => {
    tp = await startTestProxy(testConfig({ parent: parent('Allow') }), {});
    await viaProxy(tp.proxy.ports.http, 'missing.test.example.egress.local', '/');
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'outbound_http_route_request_statuses_total', {
      ...PARENT, ...DEFAULT_ROUTE, route_name: 'http-egress-allow', hostname: '', http_status: '502', error: 'DNS_FAILED',
    })).toBe(1);
  });

  test('requests refused before a decision (unknown name) are not counted per route', async () => {
    tp = await startTestProxy(testConfig({ parent: parent('Allow') }));
    await viaProxy(tp.proxy.ports.http, 'example.com', '/');
    const m = await scrape(tp.proxy.ports.admin);
    expect(m).not.toMatch(/^outbound_http_route_request_statuses_total\{/m);
  });
});

describe('label caches', () => {
  test('LabelCache returns the same frozen object per (port, route, hostname)', () => {
    const cache = new LabelCache({ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'n', namespace: 'ns', trafficPolicy: 'Allow', networks: [], mode: 'Enforce' });
    const route = { group: '', kind: 'default', namespace: '', name: 'http-egress-allow' };
    const a = cache.get(80, route, 'h');
    expect(cache.get(80, { ...route }, 'h')).toBe(a);
    expect(cache.get(443, route, 'h')).not.toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.parent_port).toBe('80');
    const outcomes = new OutcomeLabels('http_status');
    expect(outcomes.get(a, '200', '')).toBe(outcomes.get(a, '200', ''));
    expect(outcomes.get(a, '200', '')).toEqual({ ...a, http_status: '200', error: '' });
  });

  test('each ProxyMetrics has its own registry', async () => {
    const a = new ProxyMetrics();
    const b = new ProxyMetrics();
    a.reloadFailures.inc();
    expect(await a.registry.metrics()).toContain('egress_config_reload_failures_total 1');
    expect(await b.registry.metrics()).toContain('egress_config_reload_failures_total 0');
  });
});
