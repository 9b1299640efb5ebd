import { Chart, Duration, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  EgressNetwork, HeaderMatch, HttpMethod, HttpRetryStatus, HttpRoute, PathMatch, QueryParamMatch, RedirectPath, RedirectScheme,
  RouteBackend, RouteFilter,
} from '../src';
import { validateObjects } from './mesh/validate';
import { networkChart, synthRoute } from './util/route-chart';

const setup = networkChart;

function route(chart: Chart, name: string): any {
  return synthRoute(chart, 'HTTPRoute', name);
}

const PARENT = { group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', port: 80 };

describe('HttpRoute', () => {
  test('renders the seed\'s httpbin-get route', () => {
    const { chart, net } = setup();
    new HttpRoute(chart, 'HttpbinGet', { network: net, name: 'httpbin-get', rules: [{ matches: [{ path: PathMatch.prefix('/get') }] }] });
    const obj = route(chart, 'httpbin-get');
    expect(obj).toMatchSnapshot();
    expect(obj.apiVersion).toBe('gateway.networking.k8s.io/v1');
    expect(obj.metadata).toEqual({ name: 'httpbin-get', namespace: 'egress-test' });
    expect(obj.spec.parentRefs).toEqual([PARENT]);
    expect(obj.spec.hostnames).toBeUndefined();
    expect(obj.spec.rules).toEqual([{ matches: [{ path: { type: 'PathPrefix', value: '/get' } }] }]);
  });

  test('_toSpec: a rule without backends passes through its EgressNetwork, as Linkerd does', () => {
    const { net } = setup();
    const r = net.addHttpRoute('Get', { name: 'httpbin-get', rules: [{ matches: [{ path: PathMatch.exact('/get') }] }] });
    expect(r._toSpec(3)).toEqual({
      group: 'gateway.networking.k8s.io',
      kind: 'HTTPRoute',
      name: 'httpbin-get',
      namespace: 'egress-test',
      order: 3,
      parentPort: 80,
      hostnames: [],
      rules: [{
        name: undefined,
        matches: [{ path: { type: 'Exact', value: '/get' }, method: undefined, headers: [], queryParams: [] }],
        filters: [],
        backendRefs: [{ kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', weight: 1 }],
        requestTimeoutMs: undefined,
        backendRequestTimeoutMs: undefined,
        retry: undefined,
      }],
    });
  });

  test('a route without rules matches every request, in the object and the model', () => {
    const { chart, net } = setup();
    const r = net.addHttpRoute('All', { name: 'all', hostnames: ['httpbin.org', '*.example.com'] });
    const obj = route(chart, 'all');
    expect(obj.spec.hostnames).toEqual(['httpbin.org', '*.example.com']);
    expect(obj.spec.rules).toEqual([{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }]);
    const spec = r._toSpec(0);
    expect(spec.hostnames).toEqual(['httpbin.org', '*.example.com']);
    expect(spec.rules[0].matches[0].path).toEqual({ type: 'PathPrefix', value: '/' });
  });

  test('renders matches: path types, method, headers and query parameters', () => {
    const { chart, net } = setup();
    const r = net.addHttpRoute('Api', {
      name: 'api',
      port: 8080,
      rules: [{
        name: 'reads',
        matches: [
          {
            path: PathMatch.regex('/v[0-9]+/items/[a-z]+'),
            method: HttpMethod.GET,
            headers: [HeaderMatch.exact('x-tenant', 'a'), HeaderMatch.regex('user-agent', 'curl/.*')],
            queryParams: [QueryParamMatch.exact('page', '1'), QueryParamMatch.regex('q', '^[a-z]+$')],
          },
          { path: PathMatch.exact('/health'), method: HttpMethod.HEAD },
        ],
      }],
    });
    const obj = route(chart, 'api');
    expect(obj.spec.parentRefs[0].port).toBe(8080);
    expect(obj.spec.rules[0]).toEqual({
      name: 'reads',
      matches: [
        {
          path: { type: 'RegularExpression', value: '/v[0-9]+/items/[a-z]+' },
          method: 'GET',
          headers: [{ type: 'Exact', name: 'x-tenant', value: 'a' }, { type: 'RegularExpression', name: 'user-agent', value: 'curl/.*' }],
          queryParams: [{ type: 'Exact', name: 'page', value: '1' }, { type: 'RegularExpression', name: 'q', value: '^[a-z]+$' }],
        },
        { path: { type: 'Exact', value: '/health' }, method: 'HEAD' },
      ],
    });
    const m = r._toSpec(0).rules[0].matches;
    expect(m[0]).toEqual({
      path: { type: 'RegularExpression', value: '/v[0-9]+/items/[a-z]+' },
      method: 'GET',
      headers: [{ type: 'Exact', name: 'x-tenant', value: 'a' }, { type: 'RegularExpression', name: 'user-agent', value: 'curl/.*' }],
      queryParams: [{ type: 'Exact', name: 'page', value: '1' }, { type: 'RegularExpression', name: 'q', value: '^[a-z]+$' }],
    });
  });

  test('renders filters: header modifiers and a redirect', () => {
    const { chart, net } = setup();
    const r = net.addHttpRoute('Filters', {
      name: 'filters',
      rules: [
        {
          matches: [{ path: PathMatch.prefix('/api') }],
          filters: [
            RouteFilter.requestHeaderModifier({ set: { 'x-egress': 'linkerd' }, add: { 'x-trace': '1' }, remove: ['cookie'] }),
            RouteFilter.responseHeaderModifier({ remove: ['server'] }),
          ],
        },
        {
          matches: [{ path: PathMatch.prefix('/old') }],
          filters: [RouteFilter.requestRedirect({ scheme: RedirectScheme.HTTPS, hostname: 'httpbin.org', port: 443, path: RedirectPath.replacePrefixMatch('/new'), statusCode: 301 })],
        },
      ],
    });
    const obj = route(chart, 'filters');
    expect(obj.spec.rules).toMatchSnapshot();
    expect(obj.spec.rules[0].filters).toEqual([
      { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-egress', value: 'linkerd' }], add: [{ name: 'x-trace', value: '1' }], remove: ['cookie'] } },
      { type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['server'] } },
    ]);
    expect(obj.spec.rules[1].filters).toEqual([{
      type: 'RequestRedirect',
      requestRedirect: { scheme: 'https', hostname: 'httpbin.org', port: 443, path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 301 },
    }]);
    expect(obj.spec.rules[1].backendRefs).toBeUndefined();
    const rules = r._toSpec(0).rules;
    expect(rules[0].filters[0]).toEqual({ type: 'RequestHeaderModifier', headerModifier: { set: [{ name: 'x-egress', value: 'linkerd' }], add: [{ name: 'x-trace', value: '1' }], remove: ['cookie'] } });
    expect(rules[1].filters[0].requestRedirect).toEqual({ scheme: 'https', hostname: 'httpbin.org', port: 443, path: { type: 'ReplacePrefixMatch', value: '/new' }, statusCode: 301 });
    // a redirect answers the request itself: no backend in the model either
    expect(rules[1].backendRefs).toEqual([]);
  });

  test('renders backends: a cdk8s-plus Service, a Service reference and weights', () => {
    const { chart, net } = setup();
    const deployment = new kplus.Deployment(chart, 'Internal', { containers: [{ image: 'example/stand-in', portNumber: 8080 }] });
    const svc = deployment.exposeViaService({ name: 'internal-egress', ports: [{ port: 80, targetPort: 8080 }] });
    const r = net.addHttpRoute('Redirect', {
      name: 'unencrypted-http',
      rules: [{
        backends: [
          RouteBackend.service(svc, { weight: 90 }),
          RouteBackend.serviceRef('other', { namespace: 'legacy', port: 8080, weight: 10 }),
        ],
      }],
    });
    expect(route(chart, 'unencrypted-http').spec.rules[0].backendRefs).toEqual([
      { kind: 'Service', name: 'internal-egress', port: 80, weight: 90 },
      { kind: 'Service', name: 'other', namespace: 'legacy', port: 8080, weight: 10 },
    ]);
    expect(r._toSpec(0).rules[0].backendRefs).toEqual([
      { kind: 'Service', name: 'internal-egress', namespace: 'egress-test', port: 80, weight: 90, host: 'internal-egress.egress-test.svc.cluster.local' },
      { kind: 'Service', name: 'other', namespace: 'legacy', port: 8080, weight: 10, host: 'other.legacy.svc.cluster.local' },
    ]);
  });

  test('renders an explicit pass-through backend as the parent EgressNetwork', () => {
    const { chart, net } = setup();
    net.addHttpRoute('Pass', { name: 'pass', rules: [{ backends: [RouteBackend.egressNetwork(net, { weight: 5 })] }] });
    expect(route(chart, 'pass').spec.rules[0].backendRefs).toEqual([{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic', weight: 5 }]);
  });

  test('rules added with addRule() are rendered', () => {
    const { chart, net } = setup();
    const r = net.addHttpRoute('Later', { name: 'later' });
    r.addRule({ matches: [{ path: PathMatch.prefix('/a') }] });
    r.addRule({ matches: [{ path: PathMatch.prefix('/b') }] });
    expect(route(chart, 'later').spec.rules.map((x: any) => x.matches[0].path.value)).toEqual(['/a', '/b']);
    expect(r._toSpec(0).rules).toHaveLength(2);
  });

  test('renders Gateway API timeouts and Linkerd retry/timeout annotations', () => {
    const { chart, net } = setup();
    const r = net.addHttpRoute('Slow', {
      name: 'slow',
      retry: {
        on: [HttpRetryStatus.GATEWAY_ERROR, HttpRetryStatus.code(429), HttpRetryStatus.range(500, 501)],
        limit: 3,
        timeout: Duration.millis(1500),
      },
      timeouts: { idle: Duration.minutes(5) },
      rules: [{ timeout: Duration.seconds(90), backendTimeout: Duration.seconds(30) }],
    });
    const obj = route(chart, 'slow');
    expect(obj.metadata.annotations).toEqual({
      'retry.linkerd.io/http': 'gateway-error,429,500-501',
      'retry.linkerd.io/limit': '3',
      'retry.linkerd.io/timeout': '1500ms',
      'timeout.linkerd.io/idle': '5m',
    });
    expect(obj.spec.rules[0].timeouts).toEqual({ request: '1m30s', backendRequest: '30s' });
    const rule = r._toSpec(0).rules[0];
    expect(rule.requestTimeoutMs).toBe(90_000);
    expect(rule.backendRequestTimeoutMs).toBe(30_000);
    expect(rule.retry).toMatchObject({ maxRetries: 3, perTryTimeoutMs: 1500, statusCodes: [502, 503, 504, 429, 500, 501], retryNonIdempotent: true });
    expect(rule.retry!.conditions).toContain('timeout');
  });

  test('Linkerd request/response timeouts go to the model as the rule timeouts', () => {
    const { net } = setup();
    const r = net.addHttpRoute('T', { name: 't', timeouts: { request: Duration.seconds(10), response: Duration.seconds(4) }, retry: { on: [HttpRetryStatus.SERVER_ERROR] } });
    const rule = r._toSpec(0).rules[0];
    expect(rule.requestTimeoutMs).toBe(10_000);
    expect(rule.backendRequestTimeoutMs).toBe(4000);
    expect(rule.retry!.maxRetries).toBe(1);
    expect(rule.retry!.statusCodes).toHaveLength(100);
  });

  test('throws when a path does not start with "/" or is not normalised', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('Bad', { rules: [{ matches: [{ path: PathMatch.prefix('get') }, { path: PathMatch.exact('/a//b') }, { path: PathMatch.exact('/a b') }] }] }))
      .toThrow(/HttpRoute "test\/Net\/Bad": 3 problems:\n {2}- 'rules\[0\]\.matches\[0\]\.path' "get" must start with '\/'[^\n]*use "\/get"\n {2}- 'rules\[0\]\.matches\[1\]\.path' "\/a\/\/b" must not contain '\/\/'[^\n]*\n {2}- 'rules\[0\]\.matches\[2\]\.path' "\/a b" holds characters/);
  });

  test('throws when a regular expression does not compile or uses lookaround or backreferences', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('Re', {
      rules: [{
        matches: [
          { path: PathMatch.regex('/items/(') },
          { path: PathMatch.regex('/(?<!admin)/x') },
          { headers: [HeaderMatch.regex('x-a', '(a)\\1')] },
          { queryParams: [QueryParamMatch.regex('q', 'foo(?=bar)')] },
        ],
      }],
    })).toThrow(/4 problems:[\s\S]*'rules\[0\]\.matches\[0\]\.path' "\/items\/\(" does not compile[\s\S]*'rules\[0\]\.matches\[1\]\.path' "\/\(\?<!admin\)\/x" uses a lookbehind[\s\S]*'rules\[0\]\.matches\[2\]\.headers\[0\]\.value' "\(a\)\\\\1" uses a backreference[\s\S]*'rules\[0\]\.matches\[3\]\.queryParams\[0\]\.value' "foo\(\?=bar\)" uses a lookahead/);
    // escaped parentheses and classes are fine
    expect(() => net.addHttpRoute('Ok', { rules: [{ matches: [{ path: PathMatch.regex('/a\\(?=\\)[(?=]') }] }] })).not.toThrow();
  });

  test('throws when header names are invalid or repeated', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('H', {
      rules: [{
        matches: [{ headers: [HeaderMatch.exact('x tenant', 'a'), HeaderMatch.exact('X-A', '1'), HeaderMatch.exact('x-a', '2')] }],
        filters: [RouteFilter.requestHeaderModifier({ set: { 'bad:name': 'v' }, remove: ['x-b', 'X-B'] })],
      }],
    })).toThrow(/4 problems:[\s\S]*'rules\[0\]\.matches\[0\]\.headers\[0\]\.name' "x tenant" is not a valid HTTP header name[\s\S]*headers\[2\]\.name' "x-a" is matched twice[\s\S]*filters\[0\]\.set\.bad:name' "bad:name" is not a valid HTTP header name[\s\S]*filters\[0\]\.remove\.X-B' "X-B" is also edited by 'remove'/);
  });

  test('throws when a port is outside 1-65535', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('P', { port: 70000 })).toThrow(/'port' 70000 must be an integer port in 1-65535/);
    expect(() => net.addHttpRoute('Q', { port: 0 })).toThrow(/'port' 0 must be an integer port/);
  });

  test('throws when hostnames are invalid', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('H', { hostnames: ['HTTPBIN.org', 'api.*.com', '203.0.113.1', 'a..b'] }))
      .toThrow(/4 problems:[\s\S]*"HTTPBIN\.org" is not a valid hostname[^\n]*lower case: "httpbin\.org"[\s\S]*"api\.\*\.com"[^\n]*wildcard may only be the whole first label[\s\S]*"203\.0\.113\.1" is an IP address[\s\S]*"a\.\.b"[^\n]*"a\.b"/);
  });

  test('throws when rules, matches or hostnames exceed the CRD limits', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('Hosts', { hostnames: Array.from({ length: 17 }, (_, i) => `h${i}.example.com`) }))
      .toThrow(/'hostnames' "17 entries" exceed the HTTPRoute limit of 16/);
    const many = Array.from({ length: 65 }, (_, i) => ({ path: PathMatch.exact(`/p${i}`) }));
    expect(() => net.addHttpRoute('M', { rules: [{ matches: many }] })).toThrow(/'rules\[0\]\.matches' "65 entries" exceed the Gateway API limit of 64 per rule/);
    const fortyEach = Array.from({ length: 40 }, (_, i) => ({ path: PathMatch.exact(`/p${i}`) }));
    expect(() => net.addHttpRoute('T', { rules: [{ matches: fortyEach }, { matches: fortyEach }, { matches: fortyEach }, { matches: fortyEach }] }))
      .toThrow(/'rules\[3\]\.matches' "160 matches in the route" exceed the Gateway API limit of 128 per route/);
    const r = net.addHttpRoute('R', { rules: Array.from({ length: 16 }, () => ({})) });
    expect(() => r.addRule({})).toThrow(/'rules\[16\]' "\(rule\)" exceeds the Gateway API limit of 16 rules per HTTPRoute/);
  });

  test('throws when a backend is a different EgressNetwork', () => {
    const { chart, net } = setup();
    const other = new EgressNetwork(chart, 'Other', { name: 'other' });
    expect(() => net.addHttpRoute('X', { rules: [{ backends: [RouteBackend.egressNetwork(other)] }] }))
      .toThrow(/'rules\[0\]\.backends\[0\]' "EgressNetwork egress-test\/other" is not this route's parent \(egress-test\/all-egress-traffic\); Linkerd only passes traffic through the route's own EgressNetwork[^\n]*RouteBackend\.passthrough\(\)/);
  });

  test('throws when a backend weight or Service port is invalid', () => {
    const { chart, net } = setup();
    const svc = new kplus.Service(chart, 'Svc', { ports: [{ port: 80 }] });
    expect(() => net.addHttpRoute('W', {
      rules: [{ backends: [RouteBackend.passthrough({ weight: -1 }), RouteBackend.service(svc, { port: 81 }), RouteBackend.serviceRef('Bad_Name', { port: 0 })] }],
    })).toThrow(/4 problems:[\s\S]*backends\[0\]\.weight' -1 must be an integer in 0-1000000[\s\S]*backends\[1\]\.port' 81 is not a port of Service[\s\S]*backends\[2\]\.name' "Bad_Name" is not a DNS label[\s\S]*backends\[2\]\.port' 0 must be an integer port/);
  });

  test('throws when a redirect is combined with backends, repeated, or changes nothing', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('R', {
      rules: [{
        filters: [RouteFilter.requestRedirect({ scheme: RedirectScheme.HTTPS }), RouteFilter.requestRedirect({})],
        backends: [RouteBackend.passthrough()],
      }],
    })).toThrow(/'rules\[0\]\.filters\[0\]' "RequestRedirect" cannot be combined with backends[\s\S]*'rules\[0\]\.filters\[1\]' "RequestRedirect" appears twice[\s\S]*'rules\[0\]\.filters\[1\]' \{\} changes nothing/);
  });

  test('throws when a prefix redirect has no single PathPrefix match, or a status the proxy lacks', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('R', {
      rules: [{ matches: [{ path: PathMatch.exact('/a') }], filters: [RouteFilter.requestRedirect({ path: RedirectPath.replacePrefixMatch('/b'), statusCode: 307 })] }],
    })).toThrow(/'rules\[0\]\.filters\[0\]\.statusCode' 307 must be 301 or 302[\s\S]*'rules\[0\]\.filters\[0\]\.path' "ReplacePrefixMatch" needs the rule to have exactly one match/);
  });

  test('throws when a timeout is set both as annotation and rule field, or backendTimeout exceeds timeout', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('T', {
      timeouts: { request: Duration.seconds(5) },
      rules: [{ timeout: Duration.seconds(10) }, { timeout: Duration.seconds(1), backendTimeout: Duration.seconds(2) }],
    })).toThrow(/'rules\[0\]\.timeout' "10000ms" is overridden by the route's timeouts\.request \(5000ms\): Linkerd prefers the annotation[\s\S]*'rules\[1\]\.backendTimeout' "2000ms" is longer than the rule's timeout/);
  });

  test('throws when retry settings would be misread by Linkerd', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('R', { retry: { on: [], limit: 0, timeout: Duration.millis(0) } }))
      .toThrow(/3 problems:[\s\S]*'retry\.on' \[\] names no status[\s\S]*'retry\.limit' 0 is 0, which Linkerd reads as unset[\s\S]*'retry\.timeout' "0ms" is 0/);
    expect(() => net.addHttpRoute('L', { retry: { on: [HttpRetryStatus.SERVER_ERROR], limit: 11 } }))
      .toThrow(/'retry\.limit' 11 must be an integer in 1-10 \(the egress gateway's ceiling/);
    expect(() => net.addHttpRoute('S', { retry: { on: [HttpRetryStatus.range(504, 500), HttpRetryStatus.code(700)] } }))
      .toThrow(/'retry\.on\[0\]' "504-500" must be a status code or ascending range[\s\S]*'retry\.on\[1\]' "700"/);
  });

  test('throws when a rule name is repeated or addRule() gets a bad rule', () => {
    const { net } = setup();
    const r = net.addHttpRoute('N', { rules: [{ name: 'a' }] });
    expect(() => r.addRule({ name: 'a' })).toThrow(/'rules\[1\]\.name' "a" is already used by another rule/);
    expect(() => r.addRule({ matches: [{ path: PathMatch.exact('x') }] })).toThrow(/'rules\[1\]\.matches\[0\]\.path' "x" must start with '\/'/);
    expect(r._toSpec(0).rules).toHaveLength(1);
  });

  test('every field it renders passes the strict CRD validator', () => {
    const { chart, net } = setup();
    const svc = new kplus.Service(chart, 'Svc', { metadata: { name: 'stand-in' }, ports: [{ port: 80 }] });
    net.addHttpRoute('Rich', {
      name: 'rich',
      hostnames: ['httpbin.org', '*.example.com'],
      retry: { on: [HttpRetryStatus.GATEWAY_ERROR], limit: 2, timeout: Duration.seconds(2) },
      timeouts: { response: Duration.seconds(4) },
      rules: [
        {
          name: 'reads',
          matches: [{ path: PathMatch.regex('/v[0-9]+/.*'), method: HttpMethod.GET, headers: [HeaderMatch.exact('x-a', '1')], queryParams: [QueryParamMatch.regex('q', '[a-z]+')] }],
          filters: [RouteFilter.requestHeaderModifier({ set: { 'x-b': '2' }, add: { 'x-c': '3' }, remove: ['cookie'] }), RouteFilter.responseHeaderModifier({ remove: ['server'] })],
          backends: [RouteBackend.passthrough({ weight: 3 }), RouteBackend.service(svc, { weight: 1 })],
          timeout: Duration.seconds(90),
        },
        { matches: [{ path: PathMatch.prefix('/old') }], filters: [RouteFilter.requestRedirect({ scheme: RedirectScheme.HTTPS, path: RedirectPath.replacePrefixMatch('/new'), statusCode: 301 })] },
        { matches: [{ path: PathMatch.exact('/x') }], filters: [RouteFilter.requestRedirect({ hostname: 'example.com', port: 8443, path: RedirectPath.replaceFullPath('/y') })] },
      ],
    });
    const objs = Testing.synth(chart).filter((o) => o.kind !== 'Service');
    const result = validateObjects(objs);
    expect(result.messages).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.passed).toBe(2);
  });

  test('throws when backends exceed the CRD limit or a Service has no port to use', () => {
    const { chart, net } = setup();
    const portless = new kplus.Service(chart, 'Portless', { metadata: { name: 'portless' } });
    expect(() => net.addHttpRoute('B', {
      rules: [
        { backends: Array.from({ length: 17 }, () => RouteBackend.passthrough()) },
        { backends: [RouteBackend.service(portless)] },
      ],
    })).toThrow(/'rules\[0\]\.backends' "17 entries" exceed the Gateway API limit of 16 backends per rule[\s\S]*'rules\[1\]\.backends\[0\]\.port' \(unset\) is required: Service "portless" has no ports yet/);
  });

  test('throws when a header modifier edits nothing or too many headers', () => {
    const { net } = setup();
    const seventeen = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`x-h${i}`, 'v']));
    expect(() => net.addHttpRoute('M', {
      rules: [{ filters: [RouteFilter.requestHeaderModifier({}), RouteFilter.responseHeaderModifier({ add: seventeen })] }],
    })).toThrow(/'rules\[0\]\.filters\[0\]' \{\} edits no header[\s\S]*'rules\[0\]\.filters\[1\]\.add' "17 entries" exceed the Gateway API limit of 16/);
  });

  test('throws when a timeout is not a whole number of milliseconds', () => {
    const { net } = setup();
    expect(() => net.addHttpRoute('D', { rules: [{ timeout: Duration.millis(1.5) }] }))
      .toThrow(/'rules\[0\]\.timeout' "1\.5 millis" is not a whole[^\n]*number of milliseconds/);
  });
});
