import { DEFAULT_LIMITS, DEFAULT_POOL, DEFAULT_TIMEOUTS, DEFAULT_TLS } from '../../src/model/defaults';
import type {
  BackendRefSpec, CallersSpec, ClientSpec, ExternalServiceSpec, NetworkSpec, ProxyConfig, RouteKindSpec, RouteMatchSpec,
  RouteRuleSpec, RouteSpec,
} from '../../src/model/proxy-config';
import { CallerResolver, type Caller } from '../../src/proxy/caller';
import { decide, defaultRoute, findExternalService, pathRestricted, type Decision, type Target } from '../../src/proxy/decide';
import { PolicyCompileError, callerLabel, compilePolicy } from '../../src/proxy/policy';
import { redirectLocation } from '../../src/proxy/route-match';

/* ------------------------------------------------------------------ builders */

const NS = 'egress-test';
const PARENT = 'all-egress-traffic';

interface ConfigOptions {
  readonly trafficPolicy?: 'Allow' | 'Deny';
  readonly mode?: 'Enforce' | 'ReportOnly';
  readonly routes?: readonly RouteSpec[];
  readonly externalServices?: readonly ExternalServiceSpec[];
  readonly networks?: readonly NetworkSpec[];
}

function config(o: ConfigOptions = {}): ProxyConfig {
  return {
    apiVersion: 'egress.cdk8s.io/v1alpha1',
    kind: 'EgressProxyConfig',
    gateway: { name: 'gw', namespace: NS },
    listeners: {
      bindAddress: '127.0.0.1',
      http: { port: 8080, suffixes: ['egress.local'], forwardProxy: false, parentPort: 80, ambiguousPaths: 'Reject', connectSni: 'RequireMatch' },
      tcp: [],
      admin: { port: 9901 },
    },
    parent: {
      group: 'policy.linkerd.io',
      kind: 'EgressNetwork',
      name: PARENT,
      namespace: NS,
      trafficPolicy: o.trafficPolicy ?? 'Deny',
      networks: o.networks ?? [],
      mode: o.mode ?? 'Enforce',
    },
    externalServices: o.externalServices ?? [],
    routes: o.routes ?? [],
    addressPolicy: { allowCidrs: [], denyCidrs: [] },
    timeouts: DEFAULT_TIMEOUTS,
    limits: DEFAULT_LIMITS,
    workers: 1,
    defaultTls: DEFAULT_TLS,
  };
}

let nextOrder = 0;
interface RouteOptions {
  readonly ns?: string;
  readonly order?: number;
  readonly port?: number;
  readonly hostnames?: readonly string[];
  readonly rules?: readonly RouteRuleSpec[];
}
function route(kind: RouteKindSpec, name: string, o: RouteOptions = {}): RouteSpec {
  return {
    group: 'gateway.networking.k8s.io',
    kind,
    name,
    namespace: o.ns ?? NS,
    order: o.order ?? nextOrder++,
    parentPort: o.port,
    hostnames: o.hostnames ?? [],
    rules: o.rules ?? [rule()],
  };
}
const http = (name: string, o: RouteOptions = {}) => route('HTTPRoute', name, o);

function rule(o: Partial<RouteRuleSpec> = {}): RouteRuleSpec {
  return { matches: [], filters: [], backendRefs: [], ...o };
}
function match(o: Partial<RouteMatchSpec> = {}): RouteMatchSpec {
  return { headers: [], queryParams: [], ...o };
}
const prefix = (value: string) => match({ path: { type: 'PathPrefix', value } });
const exact = (value: string) => match({ path: { type: 'Exact', value } });
const regex = (value: string) => match({ path: { type: 'RegularExpression', value } });
const svc = (name: string, weight = 1): BackendRefSpec => ({ kind: 'Service', name, namespace: NS, port: 80, weight, host: `${name}.${NS}.svc.cluster.local` });
const egressRef = (weight = 1): BackendRefSpec => ({ kind: 'EgressNetwork', name: PARENT, namespace: NS, weight });

const httpTarget = (o: Partial<Target> = {}): Target => ({ protocol: 'http', host: 'httpbin.org', port: 80, method: 'GET', path: '/', ...o });

function summary(d: Decision) {
  return { action: d.action, reason: d.reason, kind: d.route.kind, route: d.route.name };
}
const routed = (name: string, kind = 'HTTPRoute') => ({ action: 'allow', reason: 'route-matched', kind, route: name });
const denied = (proto = 'http') => ({ action: 'deny', reason: 'default-deny', kind: 'default', route: `${proto}-egress-deny` });
const allowedByDefault = (proto = 'http') => ({ action: 'allow', reason: 'default-allow', kind: 'default', route: `${proto}-egress-allow` });

/* ------------------------------------------------------------------ defaults */

describe('default routes', () => {
  test.each([
    ['http', 'Allow', 'allow', 'default-allow', 'http-egress-allow'],
    ['http', 'Deny', 'deny', 'default-deny', 'http-egress-deny'],
    ['grpc', 'Allow', 'allow', 'default-allow', 'grpc-egress-allow'],
    ['grpc', 'Deny', 'deny', 'default-deny', 'grpc-egress-deny'],
    ['tls', 'Allow', 'allow', 'default-allow', 'tls-egress-allow'],
    ['tls', 'Deny', 'deny', 'default-deny', 'tls-egress-deny'],
    ['tcp', 'Allow', 'allow', 'default-allow', 'tcp-egress-allow'],
    ['tcp', 'Deny', 'deny', 'default-deny', 'tcp-egress-deny'],
  ] as const)('%s with trafficPolicy %s: %s (%s) via %s', (protocol, trafficPolicy, action, reason, name) => {
    const d = decide(compilePolicy(config({ trafficPolicy })), { protocol, host: 'example.com', port: 443 });
    expect(summary(d)).toEqual({ action, reason, kind: 'default', route: name });
    expect(d.route).toEqual({ group: '', kind: 'default', namespace: '', name });
    expect(d.backend).toBeUndefined();
    expect(d.reportOnly).toBe(false);
    expect(defaultRoute(protocol, trafficPolicy === 'Allow')).toEqual(d.route);
  });
});

/* ------------------------------------------------------------------ seed 001 */

describe('seed 001: Linkerd EgressNetwork with Gateway API routes', () => {
  const httpbinGet = http('httpbin-get', { port: 80, order: 1, rules: [rule({ matches: [prefix('/get')] })] });
  const tlsEgressHttpbin = route('TLSRoute', 'tls-egress', { port: 443, order: 2, hostnames: ['httpbin.org'], rules: [rule({ backendRefs: [egressRef()] })] });

  describe('Deny + httpbin-get + tls-egress for httpbin.org', () => {
    const policy = compilePolicy(config({ trafficPolicy: 'Deny', routes: [httpbinGet, tlsEgressHttpbin] }));
    test.each([
      ['GET /get', httpTarget({ path: '/get' }), routed('httpbin-get')],
      ['GET /get/ (trailing slash)', httpTarget({ path: '/get/' }), routed('httpbin-get')],
      ['GET /get?show_env=1', httpTarget({ path: '/get', query: 'show_env=1' }), routed('httpbin-get')],
      ['GET /ip', httpTarget({ path: '/ip' }), denied()],
      ['GET /getter (not a path element)', httpTarget({ path: '/getter' }), denied()],
      ['GET / ', httpTarget({ path: '/' }), denied()],
      ['GET /get on another port (parentPort 80)', httpTarget({ path: '/get', port: 8080 }), denied()],
      ['TLS httpbin.org', { protocol: 'tls', host: 'httpbin.org', port: 443 } as Target, routed('tls-egress', 'TLSRoute')],
      ['TLS github.com', { protocol: 'tls', host: 'github.com', port: 443 } as Target, { action: 'deny', reason: 'default-deny', kind: 'default', route: 'tls-egress-deny' }],
      ['TLS httpbin.org on 8443', { protocol: 'tls', host: 'httpbin.org', port: 8443 } as Target, denied('tls')],
    ])('%s', (_name, target, expected) => {
      expect(summary(decide(policy, target))).toEqual(expected);
    });

    test('httpbin-get has no backendRefs: Linkerd sends it to the original destination', () => {
      const d = decide(policy, httpTarget({ path: '/get' }));
      expect(d.backend).toBeUndefined();
      expect(d.backendRef).toBeUndefined();
      expect(d.route).toEqual({ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: NS, name: 'httpbin-get' });
      expect(d.rule).toBe(httpbinGet.rules[0]);
      expect(d.ruleIndex).toBe(0);
      expect(d.matchedPrefix).toBe('/get');
    });

    test('the TLSRoute backend is the EgressNetwork itself: pass through', () => {
      const d = decide(policy, { protocol: 'tls', host: 'httpbin.org', port: 443 });
      expect(d.backend).toBeUndefined();
      expect(d.backendRef).toEqual(egressRef());
    });
  });

  describe('redirecting plaintext to an internal service', () => {
    const tlsAll = route('TLSRoute', 'tls-egress', { port: 443, order: 2, rules: [rule({ backendRefs: [egressRef()] })] });
    const unencrypted = http('unencrypted-http', { port: 80, order: 3, rules: [rule({ backendRefs: [svc('internal-egress')] })] });
    const policy = compilePolicy(config({ trafficPolicy: 'Deny', routes: [httpbinGet, tlsAll, unencrypted] }));

    test.each([
      ['http://httpbin.org/get', httpTarget({ path: '/get' }), routed('httpbin-get'), undefined],
      ['http://httpbin.org/ip', httpTarget({ path: '/ip' }), routed('unencrypted-http'), 'internal-egress'],
      ['http://google.com/', httpTarget({ host: 'google.com', path: '/' }), routed('unencrypted-http'), 'internal-egress'],
      ['https://httpbin.org (TLS)', { protocol: 'tls', host: 'httpbin.org', port: 443 } as Target, routed('tls-egress', 'TLSRoute'), undefined],
      ['https://github.com (TLS)', { protocol: 'tls', host: 'github.com', port: 443 } as Target, routed('tls-egress', 'TLSRoute'), undefined],
    ])('%s', (_name, target, expected, backend) => {
      const d = decide(policy, target);
      expect(summary(d)).toEqual(expected);
      expect(d.backend?.name).toBe(backend);
    });

    test('httpbin-get wins for /get even when declared after the catch-all', () => {
      const later = { ...httpbinGet, order: 10 };
      const p = compilePolicy(config({ routes: [unencrypted, later] }));
      expect(summary(decide(p, httpTarget({ path: '/get' })))).toEqual(routed('httpbin-get'));
      expect(summary(decide(p, httpTarget({ path: '/anything' })))).toEqual(routed('unencrypted-http'));
    });
  });

  test('Allow: traffic no route matches still goes out through http-egress-allow', () => {
    const policy = compilePolicy(config({ trafficPolicy: 'Allow', routes: [httpbinGet] }));
    expect(summary(decide(policy, httpTarget({ path: '/get' })))).toEqual(routed('httpbin-get'));
    expect(summary(decide(policy, httpTarget({ path: '/ip' })))).toEqual(allowedByDefault());
  });
});

/* ------------------------------------------------------------------ match types */

describe('match types (one route, Deny otherwise)', () => {
  const one = (m: RouteMatchSpec | RouteMatchSpec[]) =>
    compilePolicy(config({ routes: [http('r', { rules: [rule({ matches: Array.isArray(m) ? m : [m] })] })] }));
  const hit = routed('r');
  const miss = denied();

  test.each([
    ['Exact /get on /get', exact('/get'), { path: '/get' }, hit],
    ['Exact /get on /get/', exact('/get'), { path: '/get/' }, miss],
    ['Exact /get on /get/x', exact('/get'), { path: '/get/x' }, miss],
    ['PathPrefix /get on /get/x', prefix('/get'), { path: '/get/x' }, hit],
    ['PathPrefix /get on /getter', prefix('/get'), { path: '/getter' }, miss],
    ['PathPrefix /get/ on /get', prefix('/get/'), { path: '/get' }, hit],
    ['PathPrefix / on /anything', prefix('/'), { path: '/anything' }, hit],
    ['RegularExpression on a match', regex('/users/[0-9]+'), { path: '/users/42' }, hit],
    ['RegularExpression is a full match', regex('/users/[0-9]+'), { path: '/users/42/edit' }, miss],
    ['path with an embedded query is matched without it', exact('/get'), { path: '/get?x=1' }, hit],
    ['method POST on POST', match({ method: 'POST' }), { method: 'POST' }, hit],
    ['method POST on GET', match({ method: 'POST' }), { method: 'GET' }, miss],
    ['header exact', match({ headers: [{ type: 'Exact', name: 'X-Env', value: 'prod' }] }), { headers: { 'x-env': 'prod' } }, hit],
    ['header exact, other value', match({ headers: [{ type: 'Exact', name: 'x-env', value: 'prod' }] }), { headers: { 'x-env': 'dev' } }, miss],
    ['header exact, absent', match({ headers: [{ type: 'Exact', name: 'x-env', value: 'prod' }] }), { headers: {} }, miss],
    ['header regex', match({ headers: [{ type: 'RegularExpression', name: 'x-env', value: 'prod-[a-z]+' }] }), { headers: { 'x-env': 'prod-eu' } }, hit],
    ['header regex, anchored', match({ headers: [{ type: 'RegularExpression', name: 'x-env', value: 'prod' }] }), { headers: { 'x-env': 'preprod' } }, miss],
    ['query exact', match({ queryParams: [{ type: 'Exact', name: 'page', value: '2' }] }), { query: 'page=2' }, hit],
    ['query exact, other value', match({ queryParams: [{ type: 'Exact', name: 'page', value: '2' }] }), { query: 'page=3' }, miss],
    ['query exact, no query', match({ queryParams: [{ type: 'Exact', name: 'page', value: '2' }] }), {}, miss],
    ['query regex', match({ queryParams: [{ type: 'RegularExpression', name: 'id', value: '[0-9]+' }] }), { query: 'id=77' }, hit],
    ['query regex, no match', match({ queryParams: [{ type: 'RegularExpression', name: 'id', value: '[0-9]+' }] }), { query: 'id=x' }, miss],
    ['all conditions of a match are ANDed', match({ path: { type: 'Exact', value: '/a' }, method: 'GET', headers: [{ type: 'Exact', name: 'h', value: '1' }] }), { path: '/a', headers: { h: '2' } }, miss],
    ['matches of a rule are ORed', [exact('/a'), exact('/b')], { path: '/b' }, hit],
  ])('%s', (_name, m, t, expected) => {
    expect(summary(decide(one(m), httpTarget(t)))).toEqual(expected);
  });

  describe('gRPC', () => {
    const grpcPolicy = (m: RouteMatchSpec) =>
      compilePolicy(config({ routes: [route('GRPCRoute', 'g', { rules: [rule({ matches: [m] })] })] }));
    const grpcTarget = (path: string, headers = {}): Target => ({ protocol: 'grpc', host: 'api.example.com', port: 443, method: 'POST', path, headers });
    const ghit = routed('g', 'GRPCRoute');
    const gmiss = denied('grpc');
    test.each([
      ['Exact service+method', { type: 'Exact' as const, service: 'pkg.Users', method: 'Get' }, '/pkg.Users/Get', ghit],
      ['Exact service+method, other method', { type: 'Exact' as const, service: 'pkg.Users', method: 'Get' }, '/pkg.Users/List', gmiss],
      ['Exact service only', { type: 'Exact' as const, service: 'pkg.Users' }, '/pkg.Users/List', ghit],
      ['Exact service only, other service', { type: 'Exact' as const, service: 'pkg.Users' }, '/pkg.Orders/List', gmiss],
      ['Exact method only', { type: 'Exact' as const, method: 'Get' }, '/any.Svc/Get', ghit],
      ['Regex service', { type: 'RegularExpression' as const, service: 'pkg\\..*' }, '/pkg.Users/Get', ghit],
      ['Regex service, no match', { type: 'RegularExpression' as const, service: 'pkg\\..*' }, '/other.Users/Get', gmiss],
      ['Regex method', { type: 'RegularExpression' as const, method: '(Get|List).*' }, '/pkg.Users/ListAll', ghit],
      ['Regex method, no match', { type: 'RegularExpression' as const, method: '(Get|List).*' }, '/pkg.Users/Delete', gmiss],
      ['not a gRPC path', { type: 'Exact' as const, service: 'pkg.Users' }, '/index.html', gmiss],
    ])('%s', (_name, grpcMethod, path, expected) => {
      expect(summary(decide(grpcPolicy(match({ grpcMethod })), grpcTarget(path)))).toEqual(expected);
    });

    test('gRPC header matches', () => {
      const p = grpcPolicy(match({ headers: [{ type: 'Exact', name: 'x-tenant', value: 'a' }] }));
      expect(summary(decide(p, grpcTarget('/s.S/M', { 'x-tenant': 'a' })))).toEqual(ghit);
      expect(summary(decide(p, grpcTarget('/s.S/M', { 'x-tenant': 'b' })))).toEqual(gmiss);
    });
  });
});

/* ------------------------------------------------------------------ precedence */

describe('pathRestricted: does a route that takes the host look at the path?', () => {
  const p = compilePolicy(config({
    routes: [
      http('root-only', { hostnames: ['open.example'], rules: [rule({ matches: [prefix('/'), match({ headers: [{ type: 'Exact', name: 'x', value: '1' }] })] })] }),
      http('get-only', { hostnames: ['httpbin.org'], rules: [rule({ matches: [prefix('/get')] })] }),
      http('wild', { hostnames: ['*.wild.example'], rules: [rule({ matches: [exact('/x')] })] }),
      http('port-8080', { hostnames: ['ported.example'], port: 8080, rules: [rule({ matches: [regex('/a.*')] })] }),
      route('GRPCRoute', 'grpc-method', { hostnames: ['grpc.example'], rules: [rule({ matches: [match({ grpcMethod: { type: 'Exact', service: 'pkg.S' } })] })] }),
    ],
  }));
  test.each<[string, Partial<Target>, boolean]>([
    ['only PathPrefix "/" and header matches', { host: 'open.example' }, false],
    ['a PathPrefix /get route', { host: 'httpbin.org' }, true],
    ['a wildcard route with an Exact path', { host: 'a.wild.example' }, true],
    ['no route for the host', { host: 'other.example' }, false],
    ['a path route on another port', { host: 'ported.example', port: 80 }, false],
    ['a path route on this port', { host: 'ported.example', port: 8080 }, true],
    ['gRPC with a service match', { host: 'grpc.example', protocol: 'grpc' }, true],
    ['HTTP to a host only a GRPCRoute restricts', { host: 'grpc.example' }, false],
  ])('%s → %s', (_what, t, expected) => {
    expect(pathRestricted(p, httpTarget(t))).toBe(expected);
  });
});

describe('path precedence as linkerd2-proxy ranks it: the most path characters matched', () => {
  // Every route has one rule with one path match; the routes of a case are declared in the order
  // listed, so a winner declared later proves the ranking, not the declaration order.
  const ROUTES: Record<string, RouteMatchSpec> = {
    'prefix-root': prefix('/'),
    'prefix-foo': prefix('/foo'),
    'prefix-foo-slash': prefix('/foo/'),
    'prefix-foo-4': prefix('/foo/4'),
    'exact-foo-4': exact('/foo/4'),
    'regex-foo-num': regex('/foo/\\d+'),
    'regex-foo-any': regex('/foo/.*'),
    'regex-any': regex('/.*'),
    'get-regex-foo-num': match({ path: { type: 'RegularExpression', value: '/foo/\\d+' }, method: 'GET' }),
    'get-prefix-foo': match({ path: { type: 'PathPrefix', value: '/foo' }, method: 'GET' }),
  };
  const policy = (names: readonly string[]) => compilePolicy(config({
    routes: names.map((n, i) => http(n, { order: i + 1, rules: [rule({ matches: [ROUTES[n]] })] })),
  }));

  test.each<[string, string[], string, string | undefined]>([
    // The case: Linkerd sends /foo/4 to the regex (6 characters) over the prefix (4).
    ['regex covers the whole path, prefix 4 characters', ['prefix-foo', 'regex-foo-num'], '/foo/4', 'regex-foo-num'],
    ['same, the regex declared first', ['regex-foo-num', 'prefix-foo'], '/foo/4', 'regex-foo-num'],
    ['regex does not match: the prefix', ['prefix-foo', 'regex-foo-num'], '/foo/x', 'prefix-foo'],
    ['regex does not match the bare prefix', ['prefix-foo', 'regex-foo-num'], '/foo', 'prefix-foo'],
    ['regex with a trailing segment does not match', ['prefix-foo', 'regex-foo-num'], '/foo/4/edit', 'prefix-foo'],
    ['a longer prefix still loses to a regex over the whole longer path', ['prefix-foo-4', 'regex-foo-any'], '/foo/4/edit', 'regex-foo-any'],
    ['a prefix that is the whole path ties the regex: PathPrefix first', ['regex-foo-num', 'prefix-foo-4'], '/foo/4', 'prefix-foo-4'],
    ['trailing slash of the path: prefix counts 6, regex /foo/.* the whole 7', ['prefix-foo-4', 'regex-foo-any'], '/foo/4/', 'regex-foo-any'],
    ['Exact ties a regex on the same path: Exact first', ['regex-foo-num', 'exact-foo-4'], '/foo/4', 'exact-foo-4'],
    ['Exact over a prefix that is the whole path', ['prefix-foo-4', 'exact-foo-4'], '/foo/4', 'exact-foo-4'],
    ['Exact over everything at once', ['prefix-root', 'prefix-foo', 'regex-foo-num', 'regex-any', 'prefix-foo-4', 'exact-foo-4'], '/foo/4', 'exact-foo-4'],
    ['without Exact, the full set: PathPrefix /foo/4 ties the regexes and wins', ['prefix-root', 'regex-any', 'regex-foo-num', 'prefix-foo', 'prefix-foo-4'], '/foo/4', 'prefix-foo-4'],
    ['"/" counts 1: a regex over a longer path wins', ['prefix-root', 'regex-any'], '/a', 'regex-any'],
    ['"/" counts 1 and ties a regex on "/": PathPrefix', ['regex-any', 'prefix-root'], '/', 'prefix-root'],
    ['trailing slashes of a prefix do not count', ['prefix-foo-slash', 'prefix-foo'], '/foo/bar', 'prefix-foo-slash'],
    ['path kind ranks before a method match', ['get-regex-foo-num', 'prefix-foo-4'], '/foo/4', 'prefix-foo-4'],
    ['length ranks before a method match', ['get-prefix-foo', 'regex-foo-num'], '/foo/12', 'regex-foo-num'],
    ['equal path: the method match', ['prefix-foo', 'get-prefix-foo'], '/foo/x', 'get-prefix-foo'],
    ['nothing matches', ['exact-foo-4', 'regex-foo-num'], '/bar', undefined],
  ])('%s: %j, %s → %s', (_what, names, path, winner) => {
    const d = decide(policy(names), httpTarget({ path, method: 'GET' }));
    if (winner === undefined) expect(d.reason).not.toBe('route-matched');
    else expect({ reason: d.reason, route: d.route.name }).toEqual({ reason: 'route-matched', route: winner });
  });

  test('a rule with several matches is ranked by its best one for the request', () => {
    const p = compilePolicy(config({
      routes: [
        http('a', { order: 1, rules: [rule({ matches: [prefix('/foo/4')] })] }),
        http('b', { order: 2, rules: [rule({ matches: [prefix('/'), regex('/foo/[0-9]+/edit')] })] }),
      ],
    }));
    expect(decide(p, httpTarget({ path: '/foo/4/edit' })).route.name).toBe('b');
    expect(decide(p, httpTarget({ path: '/foo/4/view' })).route.name).toBe('a');
  });
});

describe('precedence: every tie-break step, the winner declared second', () => {
  // Each case: two routes that both match the target; `b` must win although `a` is older and
  // alphabetically first, so only the criterion under test can explain the result.
  const pair = (a: Partial<RouteOptions>, b: Partial<RouteOptions>) =>
    compilePolicy(config({ routes: [http('a', { order: 1, ...a }), http('b', { order: 2, ...b })] }));
  const r = (...matches: RouteMatchSpec[]) => ({ rules: [rule({ matches })] });
  const hdr = (name: string) => ({ type: 'Exact' as const, name, value: '1' });
  const qp = (name: string) => ({ type: 'Exact' as const, name, value: '1' });

  test.each([
    ['exact hostname over wildcard', { hostnames: ['*.example.com'] }, { hostnames: ['api.example.com'] }, { host: 'api.example.com' }],
    ['longer wildcard over shorter', { hostnames: ['*.example.com'] }, { hostnames: ['*.eu.example.com'] }, { host: 'api.eu.example.com' }],
    ['any matching hostname over none', {}, { hostnames: ['*.example.com'] }, { host: 'api.example.com' }],
    ['hostname specificity before path specificity', { ...r(exact('/get')) }, { hostnames: ['httpbin.org'], ...r(prefix('/')) }, { path: '/get' }],
    ['Exact path over PathPrefix', r(prefix('/get')), r(exact('/get')), { path: '/get' }],
    ['Exact path over a longer PathPrefix', r(prefix('/get/')), r(exact('/get')), { path: '/get' }],
    ['longest PathPrefix', r(prefix('/api')), r(prefix('/api/v1')), { path: '/api/v1/users' }],
    ['RegularExpression (whole path matched) over a shorter PathPrefix', r(prefix('/api')), r(regex('/api/v1/.*')), { path: '/api/v1/users' }],
    ['PathPrefix over RegularExpression when the prefix is the whole path', r(regex('/api/v[0-9]')), r(prefix('/api/v1')), { path: '/api/v1' }],
    ['Exact over RegularExpression on the same path', r(regex('/api/v[0-9]')), r(exact('/api/v1')), { path: '/api/v1' }],
    ['method match', r(prefix('/api')), r(match({ path: { type: 'PathPrefix', value: '/api' }, method: 'GET' })), { path: '/api' }],
    ['method before headers', r(match({ headers: [hdr('h1'), hdr('h2')] })), r(match({ method: 'GET' })), { headers: { h1: '1', h2: '1' } }],
    ['more header matches', r(match({ headers: [hdr('h1')] })), r(match({ headers: [hdr('h1'), hdr('h2')] })), { headers: { h1: '1', h2: '1' } }],
    ['headers before query params', r(match({ queryParams: [qp('q1'), qp('q2')] })), r(match({ headers: [hdr('h1')] })), { headers: { h1: '1' }, query: 'q1=1&q2=1' }],
    ['more query param matches', r(match({ queryParams: [qp('q1')] })), r(match({ queryParams: [qp('q1'), qp('q2')] })), { query: 'q1=1&q2=1' }],
  ])('%s', (_name, a, b, t) => {
    const p = pair(a, b);
    expect(summary(decide(p, httpTarget(t)))).toEqual(routed('b'));
  });

  test('two RegularExpressions that both match count the same (the whole path): the older route wins, however long the pattern', () => {
    const p = pair(r(regex('/api/.*')), r(regex('/api/v[0-9]/[a-z]+')));
    expect(decide(p, httpTarget({ path: '/api/v1/users' })).route.name).toBe('a');
  });

  test('oldest route wins over alphabetical order', () => {
    const p = compilePolicy(config({ routes: [http('a', { order: 2 }), http('z', { order: 1 })] }));
    expect(decide(p, httpTarget()).route.name).toBe('z');
  });

  test('same age: "namespace/name" alphabetical, namespace first', () => {
    const p = compilePolicy(config({
      routes: [http('a', { ns: 'zeta', order: 1 }), http('b', { ns: 'alpha', order: 1 }), http('c', { ns: 'alpha', order: 1 })],
    }));
    const d = decide(p, httpTarget());
    expect(d.route).toMatchObject({ namespace: 'alpha', name: 'b' });
  });

  test('within a route: the first matching rule', () => {
    const p = compilePolicy(config({
      routes: [http('r', { rules: [rule({ matches: [exact('/other')] }), rule({ matches: [prefix('/x')], backendRefs: [svc('first')] }), rule({ matches: [prefix('/x')], backendRefs: [svc('second')] })] })],
    }));
    const d = decide(p, httpTarget({ path: '/x/y' }));
    expect(d.ruleIndex).toBe(1);
    expect(d.backend?.name).toBe('first');
  });

  test('within a route, a more specific later rule still wins', () => {
    const p = compilePolicy(config({
      routes: [http('r', { rules: [rule({ matches: [prefix('/')], backendRefs: [svc('catch-all')] }), rule({ matches: [exact('/x')], backendRefs: [svc('x')] })] })],
    }));
    expect(decide(p, httpTarget({ path: '/x' })).backend?.name).toBe('x');
    expect(decide(p, httpTarget({ path: '/y' })).backend?.name).toBe('catch-all');
  });

  test('precedence is per match, not per rule', () => {
    const p = compilePolicy(config({
      routes: [
        http('a', { order: 1, rules: [rule({ matches: [prefix('/'), exact('/x')] })] }),
        http('b', { order: 2, rules: [rule({ matches: [prefix('/x')] })] }),
      ],
    }));
    expect(decide(p, httpTarget({ path: '/x' })).route.name).toBe('a');
    expect(decide(p, httpTarget({ path: '/x/1' })).route.name).toBe('b');
  });

  describe('gRPC', () => {
    const gpair = (a: RouteMatchSpec, b: RouteMatchSpec) => compilePolicy(config({
      routes: [route('GRPCRoute', 'a', { order: 1, rules: [rule({ matches: [a] })] }), route('GRPCRoute', 'b', { order: 2, rules: [rule({ matches: [b] })] })],
    }));
    const t: Target = { protocol: 'grpc', host: 'api.example.com', port: 443, method: 'POST', path: '/pkg.Users/GetUser', headers: { h: '1' } };
    test.each([
      ['exact service over method only', match({ grpcMethod: { type: 'Exact', method: 'GetUser' } }), match({ grpcMethod: { type: 'Exact', service: 'pkg.Users' } })],
      ['service and method over service only', match({ grpcMethod: { type: 'Exact', service: 'pkg.Users' } }), match({ grpcMethod: { type: 'Exact', service: 'pkg.Users', method: 'GetUser' } })],
      ['exact over regex', match({ grpcMethod: { type: 'RegularExpression', service: 'pkg\\.Users', method: 'GetUser' } }), match({ grpcMethod: { type: 'Exact', method: 'GetUser' } })],
      ['regex over no method match', match({}), match({ grpcMethod: { type: 'RegularExpression', method: 'Get.*' } })],
      ['more header matches', match({}), match({ headers: [{ type: 'Exact', name: 'h', value: '1' }] })],
      ['method before headers', match({ headers: [{ type: 'Exact', name: 'h', value: '1' }] }), match({ grpcMethod: { type: 'Exact', method: 'GetUser' } })],
    ])('%s', (_name, a, b) => {
      expect(summary(decide(gpair(a, b), t))).toEqual(routed('b', 'GRPCRoute'));
    });

    test('hostname before service', () => {
      const p = compilePolicy(config({
        routes: [
          route('GRPCRoute', 'a', { order: 1, rules: [rule({ matches: [match({ grpcMethod: { type: 'Exact', service: 'pkg.Users', method: 'GetUser' } })] })] }),
          route('GRPCRoute', 'b', { order: 2, hostnames: ['api.example.com'] }),
        ],
      }));
      expect(decide(p, t).route.name).toBe('b');
    });
  });
});

/* ------------------------------------------------------------------ hostnames and ports */

describe('hostnames', () => {
  const policy = compilePolicy(config({
    routes: [
      http('exact', { hostnames: ['api.example.com'] }),
      http('wild', { hostnames: ['*.example.com'] }),
    ],
  }));
  test.each([
    ['api.example.com', 'exact'],
    ['www.example.com', 'wild'],
    ['a.b.example.com', 'wild'],
    ['example.com', 'http-egress-deny'],
    ['badexample.com', 'http-egress-deny'],
    ['api.example.com.', 'exact'],
    ['api.example.org', 'http-egress-deny'],
  ])('%s → %s', (host, name) => {
    expect(decide(policy, httpTarget({ host })).route.name).toBe(name);
  });

  test('equal wildcards: the oldest route, whatever the declaration order', () => {
    const p = compilePolicy(config({
      routes: [http('newer', { order: 5, hostnames: ['*.example.com'] }), http('older', { order: 1, hostnames: ['*.example.com'] })],
    }));
    expect(decide(p, httpTarget({ host: 'deep.a.b.example.com' })).route.name).toBe('older');
  });

  test('a route listing exact and wildcard names ranks by the best one that matches', () => {
    const p = compilePolicy(config({
      routes: [
        http('mixed', { order: 2, hostnames: ['*.example.com', 'api.example.com'] }),
        http('wild-longer', { order: 1, hostnames: ['*.api.example.com', '*.eu.example.com'] }),
      ],
    }));
    expect(decide(p, httpTarget({ host: 'api.example.com' })).route.name).toBe('mixed'); // exact
    expect(decide(p, httpTarget({ host: 'v1.api.example.com' })).route.name).toBe('wild-longer'); // longer wildcard
    expect(decide(p, httpTarget({ host: 'x.eu.example.com' })).route.name).toBe('wild-longer');
    expect(decide(p, httpTarget({ host: 'www.example.com' })).route.name).toBe('mixed');
  });

  test('hostnames are compared case-insensitively on the route side', () => {
    const p = compilePolicy(config({ routes: [http('r', { hostnames: ['API.Example.com'] })] }));
    expect(decide(p, httpTarget({ host: 'api.example.com' })).route.name).toBe('r');
  });

  test('TLSRoute wildcard by SNI', () => {
    const p = compilePolicy(config({ routes: [route('TLSRoute', 't', { hostnames: ['*.github.com'] })] }));
    expect(summary(decide(p, { protocol: 'tls', host: 'api.github.com', port: 443 }))).toEqual(routed('t', 'TLSRoute'));
    expect(summary(decide(p, { protocol: 'tls', host: 'github.com', port: 443 }))).toEqual(denied('tls'));
  });
});

describe('parentPort filtering', () => {
  const policy = compilePolicy(config({
    routes: [
      http('any-port', { order: 1, rules: [rule({ matches: [prefix('/')] })] }),
      http('port-80', { order: 2, port: 80, rules: [rule({ matches: [prefix('/p')] })] }),
      http('port-8080', { order: 3, port: 8080, rules: [rule({ matches: [prefix('/p/q')] })] }),
    ],
  }));
  test.each([
    [80, '/p/q', 'port-80'],
    [8080, '/p/q', 'port-8080'],
    [8080, '/p', 'any-port'],
    [9000, '/p/q', 'any-port'],
    [80, '/x', 'any-port'],
  ])('port %d path %s → %s', (port, path, name) => {
    expect(decide(policy, httpTarget({ port, path })).route.name).toBe(name);
  });

  test('a route for another port does not apply', () => {
    const p = compilePolicy(config({ routes: [route('TCPRoute', 'db', { port: 5432 })] }));
    expect(summary(decide(p, { protocol: 'tcp', host: 'db.example.com', port: 5432 }))).toEqual(routed('db', 'TCPRoute'));
    expect(summary(decide(p, { protocol: 'tcp', host: 'db.example.com', port: 5433 }))).toEqual(denied('tcp'));
  });

  test('route kinds do not mix: an HTTPRoute does not admit TLS or TCP', () => {
    const p = compilePolicy(config({ routes: [http('h')] }));
    expect(summary(decide(p, { protocol: 'tls', host: 'httpbin.org', port: 80 }))).toEqual(denied('tls'));
    expect(summary(decide(p, { protocol: 'tcp', host: 'httpbin.org', port: 80 }))).toEqual(denied('tcp'));
  });

  test('TCPRoute: the oldest route and its first rule', () => {
    const p = compilePolicy(config({
      routes: [
        route('TCPRoute', 'new', { order: 2, rules: [rule({ backendRefs: [svc('n')] })] }),
        route('TCPRoute', 'old', { order: 1, rules: [rule({ backendRefs: [svc('o1')] }), rule({ backendRefs: [svc('o2')] })] }),
      ],
    }));
    const d = decide(p, { protocol: 'tcp', host: '203.0.113.7', port: 5432 });
    expect(summary(d)).toEqual(routed('old', 'TCPRoute'));
    expect(d.backend?.name).toBe('o1');
  });
});

describe('gRPC falls back to HTTPRoute', () => {
  const t: Target = { protocol: 'grpc', host: 'api.example.com', port: 443, method: 'POST', path: '/pkg.Users/Get' };
  test('no GRPCRoute: HTTPRoutes match the call as POST /service/method; default route stays grpc-', () => {
    const p = compilePolicy(config({ routes: [http('h', { rules: [rule({ matches: [match({ path: { type: 'PathPrefix', value: '/pkg.Users' }, method: 'POST' })] })] })] }));
    expect(summary(decide(p, t))).toEqual(routed('h'));
    expect(summary(decide(p, { ...t, path: '/pkg.Orders/Get' }))).toEqual(denied('grpc'));
  });

  test('a GRPCRoute taking the host shadows HTTPRoutes, one for another host does not', () => {
    const p = compilePolicy(config({
      routes: [
        http('h'),
        route('GRPCRoute', 'g', { hostnames: ['api.example.com'], rules: [rule({ matches: [match({ grpcMethod: { type: 'Exact', service: 'pkg.Orders' } })] })] }),
      ],
    }));
    expect(summary(decide(p, t))).toEqual(denied('grpc'));
    expect(summary(decide(p, { ...t, path: '/pkg.Orders/Get' }))).toEqual(routed('g', 'GRPCRoute'));
    expect(summary(decide(p, { ...t, host: 'other.example.com' }))).toEqual(routed('h'));
  });
});

/* ------------------------------------------------------------------ backends */

describe('weighted backends', () => {
  const policy = compilePolicy(config({ routes: [http('split', { rules: [rule({ backendRefs: [svc('a', 1), svc('b', 3)] })] })] }));
  test.each([
    [0, 'a'],
    [0.2499, 'a'],
    [0.25, 'b'],
    [0.5, 'b'],
    [0.9999999, 'b'],
    [1, 'b'], // out of range: clamped
    [-0.5, 'a'],
    [Number.NaN, 'a'],
    [undefined, 'a'],
  ])('pick %p → %s', (pick, name) => {
    const d = decide(policy, httpTarget({ pick }));
    expect(summary(d)).toEqual(routed('split'));
    expect(d.backend?.name).toBe(name);
    expect(d.backendRef).toBe(d.backend);
  });

  test.each([
    [0, 'a'],
    [0.4999, 'a'],
    [0.5, 'c'],
    [0.9999, 'c'],
    [1, 'c'],
  ])('a zero-weight ref is never picked: pick %p → %s', (pick, name) => {
    const p = compilePolicy(config({ routes: [http('s', { rules: [rule({ backendRefs: [svc('a', 1), svc('b', 0), svc('c', 1), svc('d', 0)] })] })] }));
    expect(decide(p, httpTarget({ pick })).backend?.name).toBe(name);
  });

  test('an EgressNetwork ref in a split passes through', () => {
    const p = compilePolicy(config({ routes: [http('s', { rules: [rule({ backendRefs: [egressRef(1), svc('mirror', 1)] })] })] }));
    const through = decide(p, httpTarget({ pick: 0.1 }));
    expect(through.backend).toBeUndefined();
    expect(through.backendRef?.kind).toBe('EgressNetwork');
    expect(decide(p, httpTarget({ pick: 0.9 })).backend?.name).toBe('mirror');
  });

  test('all weights zero: no-backend (500), route kept', () => {
    const p = compilePolicy(config({ trafficPolicy: 'Allow', routes: [http('zero', { rules: [rule({ backendRefs: [svc('a', 0), svc('b', 0)] })] })] }));
    const d = decide(p, httpTarget());
    expect(summary(d)).toEqual({ action: 'deny', reason: 'no-backend', kind: 'HTTPRoute', route: 'zero' });
    expect(d.backend).toBeUndefined();
  });
});

describe('redirect', () => {
  const redirect = { scheme: 'https' as const, statusCode: 301 as const, path: { type: 'ReplacePrefixMatch' as const, value: '/v2' } };
  const policy = compilePolicy(config({
    routes: [http('up', { rules: [rule({ matches: [prefix('/v1')], filters: [{ type: 'RequestRedirect', requestRedirect: redirect }], backendRefs: [svc('ignored')] })] })],
  }));

  test('a RequestRedirect filter redirects, with the matched prefix for ReplacePrefixMatch', () => {
    const target = httpTarget({ path: '/v1/users', query: 'a=1' });
    const d = decide(policy, target);
    expect(summary(d)).toEqual({ action: 'redirect', reason: 'filter-redirect', kind: 'HTTPRoute', route: 'up' });
    expect(d.redirect).toEqual(redirect);
    expect(d.matchedPrefix).toBe('/v1');
    expect(d.backend).toBeUndefined();
    expect(redirectLocation(target, d.redirect!, d.matchedPrefix)).toBe('https://httpbin.org/v2/users?a=1');
  });

  test('report-only does not change a redirect', () => {
    const p = compilePolicy(config({ mode: 'ReportOnly', routes: policy.routes }));
    const d = decide(p, httpTarget({ path: '/v1' }));
    expect(d.action).toBe('redirect');
    expect(d.reportOnly).toBe(false);
  });
});

describe('report-only', () => {
  test.each([
    ['http', 'http-egress-deny'],
    ['tls', 'tls-egress-deny'],
    ['tcp', 'tcp-egress-deny'],
    ['grpc', 'grpc-egress-deny'],
  ] as const)('%s default deny becomes allow, keeping %s', (protocol, name) => {
    const d = decide(compilePolicy(config({ mode: 'ReportOnly' })), { protocol, host: 'example.com', port: 443 });
    expect(summary(d)).toEqual({ action: 'allow', reason: 'report-only', kind: 'default', route: name });
    expect(d.reportOnly).toBe(true);
    expect(d.wouldReason).toBe('default-deny');
    expect(d.backend).toBeUndefined();
  });

  test('no-backend becomes allow to the original destination, keeping the route', () => {
    const p = compilePolicy(config({ mode: 'ReportOnly', routes: [http('zero', { rules: [rule({ backendRefs: [svc('a', 0)] })] })] }));
    const d = decide(p, httpTarget());
    expect(summary(d)).toEqual({ action: 'allow', reason: 'report-only', kind: 'HTTPRoute', route: 'zero' });
    expect(d.wouldReason).toBe('no-backend');
    expect(d.ruleIndex).toBe(0);
  });

  test('allowed traffic is not flagged', () => {
    const p = compilePolicy(config({ mode: 'ReportOnly', routes: [http('r', { rules: [rule({ matches: [prefix('/get')] })] })] }));
    const d = decide(p, httpTarget({ path: '/get' }));
    expect(summary(d)).toEqual(routed('r'));
    expect(d.reportOnly).toBe(false);
    expect(d.wouldReason).toBeUndefined();
  });
});

/* ------------------------------------------------------------------ external services */

describe('findExternalService', () => {
  const es = (name: string, host: string): ExternalServiceSpec => ({
    name, host, ports: [{ port: 443, protocol: 'http', targetPort: 443 }], endpoints: [], tls: DEFAULT_TLS, pool: DEFAULT_POOL, injectHeaders: [],
  });
  const policy = compilePolicy(config({ externalServices: [es('wide', '*.example.com'), es('narrow', '*.api.example.com'), es('exact', 'x.api.example.com')] }));
  test.each([
    ['x.api.example.com', 'exact'],
    ['y.api.example.com', 'narrow'],
    ['api.example.com', 'wide'],
    ['example.com', undefined],
    ['other.org', undefined],
  ])('%s → %s', (host, name) => {
    expect(findExternalService(policy, host)?.name).toBe(name);
    expect(decide(policy, httpTarget({ host })).externalService?.name).toBe(name);
  });
});

describe('declared services on a parent with allowDeclaredServices (a gateway without a network)', () => {
  const es = (name: string, host: string): ExternalServiceSpec => ({
    name, host, ports: [{ port: 80, protocol: 'http', targetPort: 443 }], endpoints: [], tls: DEFAULT_TLS, pool: DEFAULT_POOL, injectHeaders: [],
  });
  const declared = [es('github', 'api.github.com'), es('buckets', '*.s3.example.com')];
  function policyWith(o: ConfigOptions & { allowDeclared?: boolean }) {
    const base = config({ externalServices: declared, ...o });
    return compilePolicy({ ...base, parent: { ...base.parent, allowDeclaredServices: o.allowDeclared } });
  }

  test.each([
    ['api.github.com', 'http', 'allow', 'declared-service', 'ExternalService', 'github'],
    ['eu.s3.example.com', 'http', 'allow', 'declared-service', 'ExternalService', 'buckets'],
    ['api.github.com', 'tls', 'allow', 'declared-service', 'ExternalService', 'github'],
    ['example.org', 'http', 'deny', 'default-deny', 'default', 'http-egress-deny'],
    ['s3.example.com', 'http', 'deny', 'default-deny', 'default', 'http-egress-deny'],
  ] as const)('Deny: %s over %s → %s (%s) via %s %s', (host, protocol, action, reason, kind, name) => {
    const d = decide(policyWith({ trafficPolicy: 'Deny', allowDeclared: true }), { protocol, host, port: 80, method: 'GET', path: '/' });
    expect(summary(d)).toEqual({ action, reason, kind, route: name });
    if (kind === 'ExternalService') {
      expect(d.route).toEqual({ group: 'egress.cdk8s.io', kind: 'ExternalService', namespace: NS, name });
      expect(d.externalService?.name).toBe(name);
    }
  });

  test('without the flag (an attached EgressNetwork) a declared host is denied under Deny', () => {
    expect(summary(decide(policyWith({ trafficPolicy: 'Deny' }), httpTarget({ host: 'api.github.com' })))).toEqual(denied());
  });

  test('a matching route still wins over the declared-service allowance, and its deny rules apply', () => {
    const routes = [http('github-read', { hostnames: ['api.github.com'], rules: [rule({ matches: [match({ method: 'GET' })] })] })];
    const p = policyWith({ trafficPolicy: 'Deny', allowDeclared: true, routes });
    expect(summary(decide(p, httpTarget({ host: 'api.github.com' })))).toEqual(routed('github-read'));
    // A POST matches no route: the host is declared, so it is allowed as the declared service.
    expect(summary(decide(p, httpTarget({ host: 'api.github.com', method: 'POST' })))).toEqual(
      { action: 'allow', reason: 'declared-service', kind: 'ExternalService', route: 'github' });
  });

  test('under Allow the flag changes nothing: every host goes out on http-egress-allow', () => {
    const p = policyWith({ trafficPolicy: 'Allow', allowDeclared: true });
    expect(summary(decide(p, httpTarget({ host: 'api.github.com' })))).toEqual(allowedByDefault());
    expect(summary(decide(p, httpTarget({ host: 'example.org' })))).toEqual(allowedByDefault());
  });
});

/* ------------------------------------------------------------------ compile errors */

describe('compilePolicy', () => {
  test('throws when a regex is invalid, naming the route and field', () => {
    const bad = http('bad-regex', { rules: [rule({ matches: [regex('/a(')] })] });
    expect(() => compilePolicy(config({ routes: [bad] }))).toThrow(PolicyCompileError);
    expect(() => compilePolicy(config({ routes: [bad] }))).toThrow(/HTTPRoute egress-test\/bad-regex rules\[0\]\.matches\[0\]\.path: regular expression "\/a\(" is not supported/);
  });

  test('throws when several things are wrong, listing all of them', () => {
    const routes = [
      http('one', { rules: [rule({ matches: [match({ headers: [{ type: 'RegularExpression', name: 'h', value: '(?=x)' }] })] })] }),
      http('two', { rules: [rule({ matches: [match({ queryParams: [{ type: 'RegularExpression', name: 'q', value: '\\1' }] })] })] }),
      route('GRPCRoute', 'three', { rules: [rule({ matches: [match({ grpcMethod: { type: 'RegularExpression', service: '[' } })] })] }),
      http('four', { rules: [rule({ matches: [exact('/x')], filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 302, path: { type: 'ReplacePrefixMatch', value: '/y' } } }] })] }),
    ];
    try {
      compilePolicy(config({ routes }));
      throw new Error('expected a throw');
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyCompileError);
      const problems = (e as PolicyCompileError).problems;
      expect(problems).toHaveLength(4);
      expect(problems[0]).toMatch(/^HTTPRoute egress-test\/one rules\[0\]\.matches\[0\]\.headers: .*lookaround/);
      expect(problems[1]).toMatch(/^HTTPRoute egress-test\/two rules\[0\]\.matches\[0\]\.queryParams: .*backreference/);
      expect(problems[2]).toMatch(/^GRPCRoute egress-test\/three rules\[0\]\.matches\[0\]\.method: /);
      expect(problems[3]).toMatch(/^HTTPRoute egress-test\/four rules\[0\]: a ReplacePrefixMatch redirect needs PathPrefix/);
      expect((e as Error).message).toMatch(/^invalid policy \(4 problems\)/);
    }
  });

  test('indexes routes by kind and port', () => {
    const p = compilePolicy(config({ routes: [http('a'), http('b', { port: 80 }), route('TLSRoute', 't', { port: 443 })] }));
    expect(p.tables.HTTPRoute.anyPort.routes.map((r) => r.ref.name)).toEqual(['a']);
    expect(p.tables.HTTPRoute.byPort.get(80)?.routes.map((r) => r.ref.name)).toEqual(['a', 'b']);
    expect(p.tables.TLSRoute.byPort.get(443)?.routes.map((r) => r.ref.name)).toEqual(['t']);
    expect(p.tables.GRPCRoute.anyPort.routes).toHaveLength(0);
  });
});


/* ------------------------------------------------------------------ callers */

describe('callers: the clients of routes and external services consent (decide step 7)', () => {
  const LINKERD: CallersSpec = { source: 'Linkerd', trustDomain: 'cluster.local', unknown: 'AllowUnrestricted', metricsLabel: true };
  const resolver = new CallerResolver(LINKERD);
  /** A caller as the Linkerd sidecar names it. */
  const as = (ns: string, sa: string): Caller => resolver.fromIdentity(resolver.identityOf(ns, sa)!).caller!;
  const DEPLOYER = 'deployer.ops.serviceaccount.identity.linkerd.cluster.local';
  const sa = (namespace: string, name: string): ClientSpec => ({ serviceAccount: { namespace, name } });
  const es = (name: string, host: string, clients?: ClientSpec[]): ExternalServiceSpec => ({
    name,
    host,
    ports: [{ port: 80, protocol: 'http', targetPort: 443 }],
    endpoints: [],
    tls: DEFAULT_TLS,
    pool: DEFAULT_POOL,
    injectHeaders: [],
    ...(clients ? { clients } : {}),
  });
  const services = [
    es('stripe', 'api.stripe.com', [{ namespace: 'payments' }]),
    es('github', 'api.github.com'),
    es('vault', 'vault.example.com', [sa('ops', 'deployer')]),
  ];
  const routes = [
    { ...http('stripe-charges', { hostnames: ['api.stripe.com'], rules: [rule({ matches: [prefix('/v1/charges')], backendRefs: [svc('charges')] })] }), clients: [sa('payments', 'billing')] },
    http('github', { hostnames: ['api.github.com'] }),
    { ...http('github-admin', { hostnames: ['api.github.com'], rules: [rule({ matches: [exact('/admin')] })] }), clients: [{ identity: DEPLOYER }] },
    {
      ...http('moved', { hostnames: ['api.github.com'], rules: [rule({ matches: [prefix('/old')], filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 301, path: { type: 'ReplaceFullPath', value: '/new' } } }] })] }),
      clients: [{ namespace: 'ops' }],
    },
  ];
  const policyWith = (o: { unknown?: 'AllowUnrestricted' | 'Deny'; mode?: 'Enforce' | 'ReportOnly'; trafficPolicy?: 'Allow' | 'Deny' } = {}) => compilePolicy({
    ...config({ trafficPolicy: o.trafficPolicy ?? 'Allow', mode: o.mode, externalServices: services, routes }),
    callers: { ...LINKERD, unknown: o.unknown ?? 'AllowUnrestricted' },
  });
  const brief = (d: Decision) => ({ action: d.action, reason: d.reason, route: d.route.name, refusedBy: d.refusedBy });
  const billing = as('payments', 'billing');
  const web = as('payments', 'web');
  const shop = as('shop', 'web');
  const deployer = as('ops', 'deployer');

  test.each<[string, Caller | undefined, string, string, ReturnType<typeof brief>]>([
    ['route and service both name the caller', billing, 'api.stripe.com', '/v1/charges',
      { action: 'allow', reason: 'route-matched', route: 'stripe-charges', refusedBy: undefined }],
    ['the service names its namespace, the route does not name it', web, 'api.stripe.com', '/v1/charges',
      { action: 'deny', reason: 'caller-not-allowed', route: 'stripe-charges', refusedBy: 'route' }],
    ['no route matches: only the service consents (namespace payments)', web, 'api.stripe.com', '/v1/refunds',
      { action: 'allow', reason: 'default-allow', route: 'http-egress-allow', refusedBy: undefined }],
    ['neither route nor service names it: the route is asked first', shop, 'api.stripe.com', '/v1/charges',
      { action: 'deny', reason: 'caller-not-allowed', route: 'stripe-charges', refusedBy: 'route' }],
    ['the service refuses where no route matched', shop, 'api.stripe.com', '/v1/refunds',
      { action: 'deny', reason: 'caller-not-allowed', route: 'http-egress-allow', refusedBy: 'external-service' }],
    ['an unknown caller where the service declares clients', undefined, 'api.stripe.com', '/v1/refunds',
      { action: 'deny', reason: 'caller-unknown', route: 'http-egress-allow', refusedBy: 'external-service' }],
    ['an unknown caller where the route declares clients', undefined, 'api.stripe.com', '/v1/charges',
      { action: 'deny', reason: 'caller-unknown', route: 'stripe-charges', refusedBy: 'route' }],
    ['open route, open service: anyone, unknown too', undefined, 'api.github.com', '/repos',
      { action: 'allow', reason: 'route-matched', route: 'github', refusedBy: undefined }],
    ['undeclared host under Allow: anyone', undefined, 'example.org', '/',
      { action: 'allow', reason: 'default-allow', route: 'http-egress-allow', refusedBy: undefined }],
    ['a route naming an identity: that identity', deployer, 'api.github.com', '/admin',
      { action: 'allow', reason: 'route-matched', route: 'github-admin', refusedBy: undefined }],
    ['a route naming an identity: another one', billing, 'api.github.com', '/admin',
      { action: 'deny', reason: 'caller-not-allowed', route: 'github-admin', refusedBy: 'route' }],
    ['a ServiceAccount client', deployer, 'vault.example.com', '/',
      { action: 'allow', reason: 'default-allow', route: 'http-egress-allow', refusedBy: undefined }],
    ['a ServiceAccount client: same name, other namespace', as('payments', 'deployer'), 'vault.example.com', '/',
      { action: 'deny', reason: 'caller-not-allowed', route: 'http-egress-allow', refusedBy: 'external-service' }],
    ["a redirect is the route's too: its clients consent", deployer, 'api.github.com', '/old',
      { action: 'redirect', reason: 'filter-redirect', route: 'moved', refusedBy: undefined }],
    ['a redirect refused to a caller the route does not name', billing, 'api.github.com', '/old',
      { action: 'deny', reason: 'caller-not-allowed', route: 'moved', refusedBy: 'route' }],
  ])('%s', (_what, caller, host, path, expected) => {
    expect(brief(decide(policyWith(), httpTarget({ host, path, caller })))).toEqual(expected);
  });

  test('a denial keeps the route, rule and service it refused, and no backend', () => {
    const d = decide(policyWith(), httpTarget({ host: 'api.stripe.com', path: '/v1/charges', caller: shop }));
    expect(d.ruleIndex).toBe(0);
    expect(d.externalService?.name).toBe('stripe');
    expect(d.backend).toBeUndefined();
    expect(d.reportOnly).toBe(false);
  });

  test('unknown Deny: an unknown caller is refused every allow; known callers are not', () => {
    const p = policyWith({ unknown: 'Deny' });
    expect(brief(decide(p, httpTarget({ host: 'api.github.com', path: '/repos' }))))
      .toEqual({ action: 'deny', reason: 'caller-unknown', route: 'github', refusedBy: 'unknown-callers' });
    expect(brief(decide(p, httpTarget({ host: 'example.org' }))))
      .toEqual({ action: 'deny', reason: 'caller-unknown', route: 'http-egress-allow', refusedBy: 'unknown-callers' });
    expect(brief(decide(p, httpTarget({ host: 'example.org', caller: shop })))).toEqual(expect.objectContaining({ action: 'allow', reason: 'default-allow' }));
    // TLS passthrough and TCP connections never carry an identity.
    expect(brief(decide(p, { protocol: 'tls', host: 'api.github.com', port: 443 })))
      .toEqual({ action: 'deny', reason: 'caller-unknown', route: 'tls-egress-allow', refusedBy: 'unknown-callers' });
  });

  test('a policy denial keeps its own reason: callers only narrow what would be allowed', () => {
    const p = policyWith({ unknown: 'Deny', trafficPolicy: 'Deny' });
    expect(brief(decide(p, httpTarget({ host: 'example.org' })))).toEqual({ action: 'deny', reason: 'default-deny', route: 'http-egress-deny', refusedBy: undefined });
  });

  test('declared services on a parent with allowDeclaredServices need their clients too', () => {
    const base = config({ externalServices: services });
    const p = compilePolicy({ ...base, parent: { ...base.parent, allowDeclaredServices: true }, callers: LINKERD });
    expect(brief(decide(p, httpTarget({ host: 'api.stripe.com', caller: web })))).toEqual(expect.objectContaining({ action: 'allow', reason: 'declared-service' }));
    expect(brief(decide(p, httpTarget({ host: 'api.stripe.com', caller: shop }))))
      .toEqual({ action: 'deny', reason: 'caller-not-allowed', route: 'stripe', refusedBy: 'external-service' });
  });

  test('ReportOnly: a refusal becomes the allow it refused, backend and all, with wouldReason', () => {
    const p = policyWith({ mode: 'ReportOnly' });
    const d = decide(p, httpTarget({ host: 'api.stripe.com', path: '/v1/charges', caller: shop }));
    expect(brief(d)).toEqual({ action: 'allow', reason: 'report-only', route: 'stripe-charges', refusedBy: 'route' });
    expect(d).toMatchObject({ reportOnly: true, wouldReason: 'caller-not-allowed' });
    expect(d.backend?.name).toBe('charges');
    const unknown = decide(p, httpTarget({ host: 'api.stripe.com', path: '/v1/refunds' }));
    expect(unknown).toMatchObject({ action: 'allow', reason: 'report-only', wouldReason: 'caller-unknown', reportOnly: true });
    const redirect = decide(p, httpTarget({ host: 'api.github.com', path: '/old', caller: billing }));
    expect(redirect).toMatchObject({ action: 'redirect', reason: 'report-only', wouldReason: 'caller-not-allowed', reportOnly: true });
    expect(redirect.redirect?.statusCode).toBe(301);
  });

  test('without clients or unknown Deny, callers change nothing', () => {
    const p = compilePolicy({ ...config({ trafficPolicy: 'Allow' }), callers: LINKERD });
    expect(p.callerChecks).toBe(false);
    expect(summary(decide(p, httpTarget()))).toEqual(allowedByDefault());
  });

  test('no callers section: source None, so a service with clients refuses everyone as unknown', () => {
    const p = compilePolicy(config({ trafficPolicy: 'Allow', externalServices: services }));
    expect(p.callers).toEqual({ source: 'None', trustDomain: 'cluster.local', unknown: 'AllowUnrestricted', metricsLabel: false });
    expect(brief(decide(p, httpTarget({ host: 'api.stripe.com' })))).toEqual(expect.objectContaining({ reason: 'caller-unknown' }));
    expect(brief(decide(p, httpTarget({ host: 'api.github.com' })))).toEqual(expect.objectContaining({ action: 'allow' }));
  });

  test.each<[string, Caller | undefined, string]>([
    ['a declared identity', deployer, `id:${DEPLOYER}`],
    ['a declared ServiceAccount', billing, 'sa:payments/billing'],
    ['a declared namespace', web, 'ns:payments'],
    ['a known caller no client names', shop, 'other'],
    ['an unknown caller', undefined, 'unknown'],
  ])('the caller metric label, bounded by the config: %s', (_what, caller, label) => {
    expect(callerLabel(policyWith(), caller)).toBe(label);
  });
});
