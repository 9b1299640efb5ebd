import { validateObjects } from './validate';
import { httpCallerAdmission, renderLinkerdAuthorization } from '../../src/mesh/linkerd-authorization';
import type { ClientSpec, ExternalServiceSpec, ProxyConfig, RouteSpec } from '../../src/model/proxy-config';

const SA: ClientSpec = { serviceAccount: { namespace: 'payments', name: 'api' } };
const NS: ClientSpec = { namespace: 'billing' };
const ID: ClientSpec = { identity: 'ci.builds.serviceaccount.identity.linkerd.cluster.local' };

function service(host: string, clients?: ClientSpec[]): ExternalServiceSpec {
  return { name: host.replace(/[^a-z0-9]+/g, '-'), host, ports: [{ port: 80, protocol: 'http', targetPort: 443 }], clients } as unknown as ExternalServiceSpec;
}

function route(hostnames: string[], clients?: ClientSpec[], kind: RouteSpec['kind'] = 'HTTPRoute'): RouteSpec {
  return { group: 'gateway.networking.k8s.io', kind, name: `r-${hostnames.join('-') || 'any'}`, namespace: 'egress', order: 0, hostnames, rules: [], clients } as unknown as RouteSpec;
}

/** The parts of a config the admission reads; everything else is irrelevant to it. */
function config(o: { policy?: 'Allow' | 'Deny'; unknown?: 'AllowUnrestricted' | 'Deny'; mode?: 'Enforce' | 'ReportOnly'; services?: ExternalServiceSpec[]; routes?: RouteSpec[] }): ProxyConfig {
  return {
    parent: { trafficPolicy: o.policy ?? 'Deny', mode: o.mode ?? 'Enforce' },
    externalServices: o.services ?? [],
    routes: o.routes ?? [],
    callers: { source: 'Linkerd', trustDomain: 'cluster.local', unknown: o.unknown ?? 'Deny', metricsLabel: false },
  } as unknown as ProxyConfig;
}

const OPTIONS = { name: 'egress-gateway', namespace: 'egress', podSelector: { 'app.kubernetes.io/instance': 'egress-gateway' }, port: 8080 };

describe('httpCallerAdmission', () => {
  test.each([
    ['trafficPolicy Allow opens undeclared hosts', { policy: 'Allow' as const, services: [service('a.com', [SA])] }, 'meshed'],
    ['a service without clients is open', { services: [service('a.com', [SA]), service('b.com')] }, 'meshed'],
    ['a route without hostnames matches any host', { services: [service('a.com', [SA])], routes: [route([])] }, 'meshed'],
    ['a route to a host no guarded service takes', { services: [service('a.com', [SA])], routes: [route(['b.com'])] }, 'meshed'],
    ['a route over a wildcard host only partly guarded', { services: [service('a.example.com', [SA])], routes: [route(['*.example.com'])] }, 'meshed'],
    ['a TCPRoute without clients', { services: [service('a.com', [SA])], routes: [route([], undefined, 'TCPRoute')] }, 'meshed'],
  ])('open, unknown callers refused: %s', (_name, o, kind) => {
    expect(httpCallerAdmission(config(o)).kind).toBe(kind);
  });

  test('open with unknown callers allowed admits anyone', () => {
    expect(httpCallerAdmission(config({ policy: 'Allow', unknown: 'AllowUnrestricted' }))).toEqual({ kind: 'anyone' });
  });

  test('everything closed: the union of the declared clients, each once', () => {
    const admission = httpCallerAdmission(config({
      services: [service('a.com', [SA, NS]), service('*.example.com', [ID])],
      // Open routes whose every host is guarded by a service that declares clients stay closed.
      routes: [route(['a.com']), route(['x.example.com', '*.y.example.com']), route(['z.com'], [SA, { namespace: 'ops' }])],
    }));
    expect(admission).toEqual({ kind: 'clients', clients: [SA, NS, ID, { namespace: 'ops' }] });
  });

  test('nothing declared under Deny: nobody', () => {
    expect(httpCallerAdmission(config({}))).toEqual({ kind: 'clients', clients: [] });
  });

  test('a wildcard service does not take its bare domain', () => {
    expect(httpCallerAdmission(config({ services: [service('*.example.com', [SA])], routes: [route(['example.com'])] })).kind).toBe('meshed');
  });
});

describe('renderLinkerdAuthorization', () => {
  test('clients: a deny Server, and one authentication and policy per kind of reference', () => {
    const objects = renderLinkerdAuthorization(config({ services: [service('a.com', [SA, NS, ID])] }), OPTIONS);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Server/egress-gateway-http',
      'MeshTLSAuthentication/egress-gateway-callers-accounts', 'AuthorizationPolicy/egress-gateway-callers-accounts',
      'MeshTLSAuthentication/egress-gateway-callers-identities', 'AuthorizationPolicy/egress-gateway-callers-identities',
    ]);
    expect(objects[0].spec).toEqual({ podSelector: { matchLabels: OPTIONS.podSelector }, port: 8080, accessPolicy: 'deny' });
    expect(objects[1].spec).toEqual({
      identityRefs: [
        { kind: 'ServiceAccount', name: 'api', namespace: 'payments' },
        { kind: 'Namespace', name: 'billing' },
      ],
    });
    expect(objects[3].spec).toEqual({ identities: ['ci.builds.serviceaccount.identity.linkerd.cluster.local'] });
    for (const [authn, policy] of [[objects[1], objects[2]], [objects[3], objects[4]]]) {
      expect(policy.spec).toEqual({
        targetRef: { group: 'policy.linkerd.io', kind: 'Server', name: 'egress-gateway-http' },
        requiredAuthenticationRefs: [{ group: 'policy.linkerd.io', kind: 'MeshTLSAuthentication', name: authn.metadata.name }],
      });
    }
    const result = validateObjects(objects);
    expect(result.messages).toEqual([]);
    expect(result.passed).toBe(5);
  });

  test('meshed: every meshed identity ("*")', () => {
    const objects = renderLinkerdAuthorization(config({ policy: 'Allow' }), OPTIONS);
    expect(objects.map((o) => o.kind)).toEqual(['Server', 'MeshTLSAuthentication', 'AuthorizationPolicy']);
    expect(objects[1].spec).toEqual({ identities: ['*'] });
    expect(validateObjects(objects).messages).toEqual([]);
  });

  test('anyone: the Server alone, open to unauthenticated callers', () => {
    const objects = renderLinkerdAuthorization(config({ policy: 'Allow', unknown: 'AllowUnrestricted' }), OPTIONS);
    expect(objects).toHaveLength(1);
    expect(objects[0].spec.accessPolicy).toBe('all-unauthenticated');
    expect(validateObjects(objects).messages).toEqual([]);
  });

  test('nobody: the Server alone, denying', () => {
    const objects = renderLinkerdAuthorization(config({}), OPTIONS);
    expect(objects).toHaveLength(1);
    expect(objects[0].spec.accessPolicy).toBe('deny');
  });

  test('ReportOnly: unauthorized callers are audited, not refused, as the proxy only reports', () => {
    const objects = renderLinkerdAuthorization(config({ mode: 'ReportOnly', services: [service('a.com', [SA])] }), OPTIONS);
    expect(objects[0].spec.accessPolicy).toBe('audit');
    expect(objects.map((o) => o.kind)).toEqual(['Server', 'MeshTLSAuthentication', 'AuthorizationPolicy']);
  });
});
