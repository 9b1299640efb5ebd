// explainRequest(): the proxy's own classify, caller and decide stages, offline. Each case states a
// request as a client would send it and checks the answer the listener would give, and why.
import type { ProxyConfig } from '../../src/model/proxy-config';
import { ConfigError } from '../../src/proxy/config';
import { createExplainer, explainRequest, ExplainInputError, type ExplainRequest, type Explanation } from '../../src/proxy/explain';

const L5D = (sa: string, ns: string) => `${sa}.${ns}.serviceaccount.identity.linkerd.cluster.local`;

function doc(o: { mode?: 'Enforce' | 'ReportOnly'; unknown?: 'AllowUnrestricted' | 'Deny'; source?: 'None' | 'Linkerd' | 'Istio'; forwardProxy?: boolean } = {}): ProxyConfig {
  return {
    apiVersion: 'egress.cdk8s.io/v1alpha1',
    kind: 'EgressProxyConfig',
    gateway: { name: 'gw', namespace: 'egress' },
    listeners: {
      http: { suffixes: ['egress.local'], forwardProxy: o.forwardProxy ?? true },
      tls: { port: 8443, parentPort: 443 },
      tcp: [{ port: 5432, externalService: 'db', servicePort: 5432 }],
    },
    parent: { name: 'all-egress', namespace: 'egress', trafficPolicy: 'Deny', mode: o.mode ?? 'Enforce' },
    callers: { source: o.source ?? 'Linkerd', unknown: o.unknown ?? 'AllowUnrestricted' },
    externalServices: [
      { name: 'stripe', host: 'api.stripe.com', clients: [{ namespace: 'payments' }] },
      { name: 'github', host: 'api.github.com' },
      { name: 'db', host: 'db.example.com', ports: [{ port: 5432, protocol: 'tcp', targetPort: 5432 }], endpoints: [{ address: '192.0.2.10' }], tls: { enabled: false } },
    ],
    routes: [
      {
        kind: 'HTTPRoute',
        name: 'stripe-charges',
        namespace: 'payments',
        hostnames: ['api.stripe.com'],
        clients: [{ serviceAccount: { namespace: 'payments', name: 'billing' } }],
        rules: [{ name: 'charges', matches: [{ path: { type: 'PathPrefix', value: '/v1/charges' } }] }],
      },
      { kind: 'HTTPRoute', name: 'stripe', namespace: 'payments', hostnames: ['api.stripe.com'], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/v1' } }] }] },
      {
        kind: 'HTTPRoute',
        name: 'github',
        namespace: 'egress',
        hostnames: ['api.github.com'],
        rules: [
          { matches: [{ path: { type: 'PathPrefix', value: '/old' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', value: '/new' }, statusCode: 301 } }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/repos' } }], backendRefs: [{ kind: 'Service', name: 'mirror', namespace: 'egress', port: 8080 }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/zero' } }], backendRefs: [{ kind: 'Service', name: 'mirror', namespace: 'egress', port: 8080, weight: 0 }] },
        ],
      },
      { kind: 'TLSRoute', name: 'stripe-tls', namespace: 'payments', hostnames: ['api.stripe.com'], rules: [{}] },
      { kind: 'TLSRoute', name: 'github-tls', namespace: 'egress', hostnames: ['api.github.com'], rules: [{}] },
      { kind: 'TCPRoute', name: 'db', namespace: 'egress', rules: [{}] },
    ],
  } as unknown as ProxyConfig;
}

const pick = (e: Explanation) => ({ allowed: e.allowed, status: e.status, code: e.code, reason: e.reason, route: e.route?.name });
const billing = { namespace: 'payments', serviceAccount: 'billing' };

describe('explainRequest', () => {
  const explainer = createExplainer(doc());

  test.each<[string, ExplainRequest, ReturnType<typeof pick>]>([
    ['a Host under the egress suffix, the caller the route names', { host: 'api.stripe.com.egress.local', path: '/v1/charges/ch_1', caller: billing },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'stripe-charges' }],
    ['another ServiceAccount of the namespace the service names', { host: 'api.stripe.com.egress.local', path: '/v1/charges', caller: { namespace: 'payments', serviceAccount: 'web' } },
      { allowed: false, status: 403, code: 'CALLER_NOT_ALLOWED', reason: 'caller-not-allowed', route: 'stripe-charges' }],
    ['the same caller on the open route of the host', { host: 'api.stripe.com.egress.local', path: '/v1/refunds', caller: L5D('web', 'payments') },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'stripe' }],
    ['another namespace: the service refuses', { host: 'api.stripe.com.egress.local', path: '/v1/refunds', caller: L5D('web', 'shop') },
      { allowed: false, status: 403, code: 'CALLER_NOT_ALLOWED', reason: 'caller-not-allowed', route: 'stripe' }],
    ['no caller where clients are declared', { host: 'api.stripe.com.egress.local', path: '/v1/refunds' },
      { allowed: false, status: 403, code: 'CALLER_UNKNOWN', reason: 'caller-unknown', route: 'stripe' }],
    ['the identity header as the sidecar set it', { host: 'api.stripe.com.egress.local', path: '/v1/refunds', headers: { 'L5D-Client-Id': L5D('web', 'payments') } },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'stripe' }],
    ['absolute-form (an http_proxy client): the real name', { host: 'api.github.com', path: '/repos/x' },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'github' }],
    ['a name the policy does not allow', { host: 'example.org.egress.local' },
      { allowed: false, status: 403, code: 'EGRESS_DENIED', reason: 'default-deny', route: 'http-egress-deny' }],
    ['a redirect rule', { host: 'api.github.com.egress.local', path: '/old/a?x=1' },
      { allowed: true, status: 301, code: undefined, reason: 'filter-redirect', route: 'github' }],
    ['backends whose weights add up to 0', { host: 'api.github.com.egress.local', path: '/zero' },
      { allowed: false, status: 500, code: 'NO_BACKEND', reason: 'no-backend', route: 'github' }],
    ['a path servers read in different ways where routes restrict paths', { host: 'api.stripe.com.egress.local', path: '/v1/charges/..%2f..%2fadmin', caller: billing },
      { allowed: false, status: 400, code: 'BAD_REQUEST', reason: 'not-classified', route: undefined }],
    ['an IP literal under the suffix', { host: '10.0.0.1.egress.local' },
      { allowed: false, status: 400, code: 'BAD_REQUEST', reason: 'not-classified', route: undefined }],
    ['CONNECT to the suffixed name: TLSRoute by port 443, caller from its headers', { protocol: 'connect', host: 'api.github.com.egress.local', port: 443 },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'github-tls' }],
    ['CONNECT where the service declares clients, caller known', { protocol: 'connect', host: 'api.stripe.com', port: 443, caller: billing },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'stripe-tls' }],
    ['CONNECT where the service declares clients, no caller', { protocol: 'connect', host: 'api.stripe.com', port: 443 },
      { allowed: false, status: 403, code: 'CALLER_UNKNOWN', reason: 'caller-unknown', route: 'stripe-tls' }],
    ['TLS passthrough: no headers, so no caller, whatever the request says', { protocol: 'tls', sni: 'api.stripe.com', caller: billing },
      { allowed: false, status: 403, code: 'CALLER_UNKNOWN', reason: 'caller-unknown', route: 'stripe-tls' }],
    ['TLS passthrough to an open name', { protocol: 'tls', sni: 'api.github.com' },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'github-tls' }],
    ['the TCP listener of a service', { protocol: 'tcp', host: 'db.example.com', port: 5432 },
      { allowed: true, status: undefined, code: undefined, reason: 'route-matched', route: 'db' }],
  ])('%s', (_what, request, expected) => {
    expect(pick(explainer.explain(request))).toEqual(expected);
  });

  test('the full answer: route and rule, service, caller and target', () => {
    expect(explainRequest(doc(), { host: 'api.stripe.com.egress.local', path: '/v1/charges', caller: billing })).toEqual({
      allowed: true,
      reason: 'route-matched',
      route: { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'payments', name: 'stripe-charges', rule: 0, ruleName: 'charges' },
      externalService: 'stripe',
      reportOnly: false,
      caller: { known: true, identity: L5D('billing', 'payments'), namespace: 'payments', serviceAccount: 'billing' },
      target: { protocol: 'http', host: 'api.stripe.com', port: 80 },
    });
  });

  test('a redirect says where to; a Service backend is named; a refusal says whose consent was missing', () => {
    expect(explainer.explain({ host: 'api.github.com.egress.local', path: '/old/a', headers: {} }).location).toBe('http://api.github.com.egress.local/new/a');
    expect(explainer.explain({ host: 'api.github.com.egress.local', path: '/repos' }).backend).toEqual({ kind: 'Service', namespace: 'egress', name: 'mirror', port: 8080 });
    expect(explainer.explain({ host: 'api.stripe.com.egress.local', path: '/v1/charges', caller: L5D('x', 'shop') }).refusedBy).toBe('route');
    expect(explainer.explain({ host: 'api.stripe.com.egress.local', path: '/v1/x', caller: L5D('x', 'shop') }).refusedBy).toBe('external-service');
  });

  test('the Host port names the service port the routes see', () => {
    expect(explainer.explain({ host: 'api.github.com.egress.local', port: 8080, path: '/repos/x' }).target).toEqual({ protocol: 'http', host: 'api.github.com', port: 8080 });
    expect(explainer.explain({ host: 'api.github.com', port: 8080, path: '/repos/x' }).target).toEqual({ protocol: 'http', host: 'api.github.com', port: 8080 });
  });

  test('gRPC by its content-type', () => {
    const e = explainer.explain({ host: 'api.github.com.egress.local', method: 'POST', path: '/pkg.Svc/Get', headers: { 'content-type': 'application/grpc' } });
    expect(e.target).toEqual({ protocol: 'grpc', host: 'api.github.com', port: 80 });
    expect(pick(e)).toEqual({ allowed: false, status: 403, code: 'EGRESS_DENIED', reason: 'default-deny', route: 'grpc-egress-deny' });
  });

  test('a caller the request names replaces any identity header it carries, as the sidecar does', () => {
    const e = explainer.explain({ host: 'api.stripe.com.egress.local', path: '/v1/refunds', caller: L5D('x', 'shop'), headers: { 'l5d-client-id': L5D('web', 'payments') } });
    expect(e.caller).toMatchObject({ known: true, namespace: 'shop' });
    expect(e.code).toBe('CALLER_NOT_ALLOWED');
  });

  test('an identity of another trust domain or mesh is an unknown caller, and says why', () => {
    expect(explainer.explain({ host: 'api.github.com.egress.local', caller: 'web.payments.serviceaccount.identity.linkerd.other.example' }).caller)
      .toEqual({ known: false, unknown: 'other-trust-domain' });
    expect(explainer.explain({ host: 'api.github.com.egress.local', caller: 'spiffe://cluster.local/ns/payments/sa/web' }).caller)
      .toEqual({ known: false, unknown: 'unparsable' });
  });

  test('Istio: SPIFFE IDs, ServiceAccounts named the Istio way, XFCC headers', () => {
    const istio = createExplainer(doc({ source: 'Istio' }));
    const ok = istio.explain({ host: 'api.stripe.com.egress.local', path: '/v1/charges', caller: billing });
    expect(ok.caller.identity).toBe('spiffe://cluster.local/ns/payments/sa/billing');
    expect(ok.allowed).toBe(true);
    const xfcc = istio.explain({ host: 'api.stripe.com.egress.local', path: '/v1/x', headers: { 'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/egress/sa/gw;URI=spiffe://cluster.local/ns/payments/sa/web' } });
    expect(xfcc.caller).toMatchObject({ known: true, namespace: 'payments', serviceAccount: 'web' });
  });

  test('source None: every caller is unknown, whatever the request names', () => {
    const e = explainRequest(doc({ source: 'None' }), { host: 'api.stripe.com.egress.local', path: '/v1/x', caller: billing });
    expect(e.caller).toEqual({ known: false, unknown: 'no-identity-source' });
    expect(e.code).toBe('CALLER_UNKNOWN');
  });

  test('unknown Deny refuses unknown callers everywhere, with refusedBy unknown-callers', () => {
    const e = explainRequest(doc({ unknown: 'Deny' }), { protocol: 'tls', sni: 'api.github.com' });
    expect(pick(e)).toEqual({ allowed: false, status: 403, code: 'CALLER_UNKNOWN', reason: 'caller-unknown', route: 'github-tls' });
    expect(e.refusedBy).toBe('unknown-callers');
  });

  test('ReportOnly: allowed, with the reason it would have been refused for', () => {
    const e = explainRequest(doc({ mode: 'ReportOnly' }), { host: 'api.stripe.com.egress.local', path: '/v1/charges', caller: L5D('x', 'shop') });
    expect(e).toMatchObject({ allowed: true, reason: 'report-only', wouldReason: 'caller-not-allowed', reportOnly: true, refusedBy: 'route' });
    expect(e.status).toBeUndefined();
  });

  test('without forwardProxy: absolute-form is not for the gateway, and CONNECT gets 405', () => {
    const off = createExplainer(doc({ forwardProxy: false }));
    expect(pick(off.explain({ host: 'api.github.com', path: '/repos' }))).toEqual({ allowed: false, status: 400, code: 'UNKNOWN_NAME', reason: 'not-classified', route: undefined });
    expect(pick(off.explain({ protocol: 'connect', host: 'api.github.com', port: 443 }))).toEqual({ allowed: false, status: 405, code: 'BAD_REQUEST', reason: 'not-classified', route: undefined });
  });

  test('throws ExplainInputError for a request it cannot state, ConfigError for a config the proxy would refuse', () => {
    expect(() => explainer.explain({ path: '/' })).toThrow(ExplainInputError);
    expect(() => explainer.explain({ protocol: 'tcp', host: 'db.example.com', port: 1 })).toThrow(/no TCP listener for host "db.example.com" and service port 1/);
    expect(() => explainer.explain({ protocol: 'udp' as 'tcp', host: 'x' })).toThrow(/protocol must be one of/);
    expect(() => explainer.explain({ host: 'x.egress.local', caller: { namespace: 'a' } as typeof billing })).toThrow(/caller must be/);
    const noTls = { ...doc(), listeners: { http: { suffixes: ['egress.local'] } } } as unknown as ProxyConfig;
    expect(() => explainRequest(noTls, { protocol: 'tls', sni: 'a.example' })).toThrow(/no TLS passthrough listener/);
    const bad = { ...doc(), callers: { source: 'Consul' } } as unknown as ProxyConfig;
    expect(() => explainRequest(bad, { host: 'x.egress.local' })).toThrow(ConfigError);
  });
});
