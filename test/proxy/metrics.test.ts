// Metrics: Linkerd-compatible names and exact label sets for allowed, denied and failed HTTP
// requests, bounded hostname labels, counts and buckets that match the requests sent (also
// between requests and across a reload), and the label caches.
import {
  capturingLogger, configMapDir, eventually, loopbackDialer, loopbackResolver, sample, scrape, startHttpsUpstream, startTestProxy,
  testConfig, testService, viaProxy, type TestProxy, type TestUpstream, type UpstreamHandler,
} from './helpers';
import { LabelCache, OutcomeLabels, ProxyMetrics } from '../../src/proxy/metrics';
import { startProxy } from '../../src/proxy/server';

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

/** The upstream answers with the status its path names: /status/404 → 404. */
const statusFromPath: UpstreamHandler = (req, res) => {
  const status = Number(/^\/status\/(\d{3})$/.exec(req.url ?? '')?.[1] ?? 200);
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(`status ${status}`);
};

/** Sum of every sample of `name` whose labels include `match` (0 when there is none). */
function total(metricsText: string, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

type AccessLine = { msg?: string; status?: number; attempts?: number; durations?: { total?: number } };

/** Bounds of the duration histograms, seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** The access log rounds durations to 0.1 ms: a logged total is within this of the observed one, in seconds. */
const LOG_ROUNDING_S = 0.00005;

describe('counts match the requests sent', () => {
  test('statuses, histogram counts, buckets and sums equal what was sent, and every scrape in between sees every finished request', async () => {
    upstream = await startHttpsUpstream(statusFromPath);
    tp = await startTestProxy(testConfig({
      parent: { ...parent('Deny'), allowDeclaredServices: true },
      externalServices: [
        testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] }),
        // Nothing listens on loopback port 1: connect refused, 502 CONNECT_FAILED.
        testService('down', 'down.test.example', { ports: [{ port: 80, targetPort: 1 }] }),
      ],
    }), { 'api.test.example': '127.0.0.1', 'down.test.example': '127.0.0.1' });
    const sent: Array<{ host: string; path: string; status: number; error: string }> = [
      ...Array.from({ length: 4 }, () => ({ host: 'api', path: '/status/200', status: 200, error: '' })),
      ...Array.from({ length: 3 }, () => ({ host: 'api', path: '/status/404', status: 404, error: '' })),
      ...Array.from({ length: 2 }, () => ({ host: 'api', path: '/status/201', status: 201, error: '' })),
      { host: 'down', path: '/', status: 502, error: 'CONNECT_FAILED' },
      { host: 'api', path: '/status/410', status: 410, error: '' },
    ];
    const logged = () => tp!.logs.lines.filter((l) => l.msg === 'request') as AccessLine[];
    for (let i = 0; i < sent.length; i++) {
      const r = sent[i];
      expect((await viaProxy(tp.proxy.ports.http, `${r.host}.test.example.egress.local`, r.path)).status).toBe(r.status);
      // Counted in the same step as it is logged: once logged, the next scrape has it.
      await eventually(() => logged().length === i + 1, 5_000, `request ${i + 1} logged`);
      const m = await scrape(tp.proxy.ports.admin);
      expect(total(m, 'outbound_http_route_request_statuses_total')).toBe(i + 1);
      expect(total(m, 'outbound_http_route_request_duration_seconds_count')).toBe(i + 1);
      expect(total(m, 'outbound_http_route_backend_response_statuses_total')).toBe(i + 1);
      expect(total(m, 'outbound_http_route_backend_requests_total')).toBe(logged().reduce((n, l) => n + Math.max(1, l.attempts ?? 0), 0));
    }

    const m = await scrape(tp.proxy.ports.admin);
    for (const [status, error] of [['200', ''], ['404', ''], ['201', ''], ['410', ''], ['502', 'CONNECT_FAILED']]) {
      const n = sent.filter((r) => String(r.status) === status).length;
      const route = { route_name: status === '502' ? 'down' : 'api', http_status: status, error };
      expect(total(m, 'outbound_http_route_request_statuses_total', route)).toBe(n);
      expect(total(m, 'outbound_http_route_request_duration_seconds_count', route)).toBe(n);
      expect(total(m, 'outbound_http_route_request_duration_seconds_bucket', { ...route, le: '+Inf' })).toBe(n);
      expect(total(m, 'outbound_http_route_backend_response_statuses_total', route)).toBe(n);
    }
    // One series per status: no label set was split into two.
    expect(m.split('\n').filter((l) => l.startsWith('outbound_http_route_request_statuses_total{'))).toHaveLength(5);

    // Buckets and the sum agree with the durations the access log wrote for the same requests.
    const seconds = logged().map((l) => l.durations!.total! / 1000);
    for (const le of BUCKETS) {
      const bucket = total(m, 'outbound_http_route_request_duration_seconds_bucket', { le: String(le) });
      expect(bucket).toBeGreaterThanOrEqual(seconds.filter((s) => s + LOG_ROUNDING_S <= le).length);
      expect(bucket).toBeLessThanOrEqual(seconds.filter((s) => s - LOG_ROUNDING_S <= le).length);
      // The route-backend histogram times each request from dispatch: never longer than the route's.
      expect(total(m, 'outbound_http_route_backend_response_duration_seconds_bucket', { le: String(le) })).toBeGreaterThanOrEqual(bucket);
    }
    const logSum = seconds.reduce((a, b) => a + b, 0);
    expect(Math.abs(total(m, 'outbound_http_route_request_duration_seconds_sum') - logSum)).toBeLessThanOrEqual(sent.length * LOG_ROUNDING_S + 1e-9);
  });

  test('a reload keeps every series\' counts: the same labels continue, a removed service\'s stay', async () => {
    upstream = await startHttpsUpstream(statusFromPath);
    const cm = configMapDir();
    const api = testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] });
    const old = testService('old', 'old.test.example', { ports: [{ port: 80, targetPort: upstream.port }] });
    const first = testConfig({ parent: { ...parent('Deny'), allowDeclaredServices: true }, externalServices: [api, old] });
    cm.write(first);
    const names = { 'api.test.example': '127.0.0.1', 'old.test.example': '127.0.0.1' };
    const proxy = await startProxy({
      configPath: cm.file, resolver: loopbackResolver(names).resolve, dial: loopbackDialer().dial, logger: capturingLogger().logger,
    });
    tp = { proxy } as TestProxy;
    for (let i = 0; i < 2; i++) expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
    expect((await viaProxy(proxy.ports.http, 'old.test.example.egress.local', '/')).status).toBe(200);

    // The next config drops `old` and changes a timeout: new label caches, the same series for `api`.
    cm.write({ ...first, externalServices: [api], timeouts: { connectMs: 4_000 } });
    expect(await proxy.reload()).toMatchObject({ ok: true, problems: [] });
    for (let i = 0; i < 3; i++) expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
    expect((await viaProxy(proxy.ports.http, 'old.test.example.egress.local', '/')).status).toBe(403);
    await eventually(async () => sample(await scrape(proxy.ports.admin), 'egress_config_reload_successes_total', {}) === 2, 5_000, 'reload counted');

    const m = await scrape(proxy.ports.admin);
    const apiOk = { route_name: 'api', http_status: '200' };
    expect(m.split('\n').filter((l) => l.startsWith('outbound_http_route_request_statuses_total{') && l.includes('route_name="api"'))).toHaveLength(1);
    expect(total(m, 'outbound_http_route_request_statuses_total', apiOk)).toBe(5);
    expect(total(m, 'outbound_http_route_request_duration_seconds_count', apiOk)).toBe(5);
    expect(total(m, 'outbound_http_route_backend_requests_total', { route_name: 'api' })).toBe(5);
    expect(total(m, 'outbound_http_route_request_statuses_total', { route_name: 'old', http_status: '200' })).toBe(1);
    expect(total(m, 'outbound_http_route_backend_response_duration_seconds_count', { route_name: 'old' })).toBe(1);
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
