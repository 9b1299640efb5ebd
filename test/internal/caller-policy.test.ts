import { checkCallerPolicy } from '../../src/internal/caller-policy';
import { Problems } from '../../src/internal/problems';
import type { CallersSpec, ClientSpec, ProxyConfig } from '../../src/model/proxy-config';
import { thrownMessage } from '../util/thrown';

const LINKERD: CallersSpec = { source: 'Linkerd', trustDomain: 'cluster.local', unknown: 'AllowUnrestricted', metricsLabel: false };
const ISTIO: CallersSpec = { ...LINKERD, source: 'Istio' };

interface Shape {
  callers?: CallersSpec;
  forwardProxy?: boolean;
  tls?: boolean;
  tcp?: boolean;
  serviceClients?: ClientSpec[];
  servicePorts?: Array<'http' | 'tcp'>;
  routeKind?: 'HTTPRoute' | 'TLSRoute' | 'TCPRoute';
  routeClients?: ClientSpec[];
}

function config(s: Shape): ProxyConfig {
  return {
    callers: s.callers,
    listeners: {
      http: { forwardProxy: s.forwardProxy ?? false },
      tls: s.tls ? { port: 8443, parentPort: 443 } : undefined,
      tcp: s.tcp ? [{ port: 10000, externalService: 'db', servicePort: 5432 }] : [],
    },
    externalServices: [{ name: 'api', host: 'api.example.com', ports: (s.servicePorts ?? ['http']).map((protocol, i) => ({ port: 80 + i, protocol, targetPort: 443 })), clients: s.serviceClients }],
    routes: s.routeKind ? [{ kind: s.routeKind, name: 'r', namespace: 'egress', hostnames: [], rules: [], clients: s.routeClients }] : [],
  } as unknown as ProxyConfig;
}

/** The message checkCallerPolicy's problems make ('' when none). */
function check(s: Shape): string {
  const problems = new Problems('EgressGateway "c/G"');
  checkCallerPolicy(config(s), problems, (kind, name) => `c/${kind}/${name}`);
  return thrownMessage(() => problems.throwIfAny());
}

test('a consistent policy has no problems', () => {
  expect(check({ callers: LINKERD, serviceClients: [{ namespace: 'a' }, { identity: 'x.y.serviceaccount.identity.linkerd.cluster.local' }] })).toBe('');
  expect(check({ callers: ISTIO, serviceClients: [{ identity: 'spiffe://cluster.local/ns/y/sa/x' }] })).toBe('');
  expect(check({ callers: LINKERD, forwardProxy: true, routeKind: 'TLSRoute', routeClients: [{ namespace: 'a' }] })).toBe('');
  expect(check({})).toBe('');
});

test('throws when clients are declared but no caller is ever identified', () => {
  expect(check({ serviceClients: [{ namespace: 'a' }] }))
    .toMatch(/'clients' \["ns:a"\] of ExternalService "c\/ExternalService\/api" can never match: the gateway identifies no callers \(callerIdentity unset\).*set callerIdentity/);
  expect(check({ callers: { ...LINKERD, source: 'None' }, routeKind: 'HTTPRoute', routeClients: [{ namespace: 'a' }] }))
    .toMatch(/of HTTPRoute "c\/HTTPRoute\/r" can never match: the gateway identifies no callers \(callerIdentity None\)/);
});

test('throws when an identity has the other mesh\'s form or another trust domain', () => {
  expect(check({ callers: ISTIO, serviceClients: [{ identity: 'x.y.serviceaccount.identity.linkerd.cluster.local' }] }))
    .toMatch(/is a Linkerd identity, but the gateway reads Istio's x-forwarded-client-cert/);
  expect(check({ callers: LINKERD, serviceClients: [{ identity: 'spiffe://cluster.local/ns/y/sa/x' }] }))
    .toMatch(/is a SPIFFE ID, but the gateway reads Linkerd's l5d-client-id/);
  expect(check({ callers: LINKERD, serviceClients: [{ identity: 'x.y.serviceaccount.identity.linkerd.other.org' }] }))
    .toMatch(/is in trust domain "other\.org", but the gateway's is "cluster\.local".*set the gateway's trustDomain to "other\.org"/);
  expect(check({ callers: ISTIO, serviceClients: [{ identity: 'spiffe://cluster.local/workload/x' }] }))
    .toMatch(/is not an Istio workload identity/);
});

test('throws when TLS or TCP routes declare clients on a gateway without CONNECT', () => {
  expect(check({ callers: LINKERD, routeKind: 'TLSRoute', routeClients: [{ namespace: 'a' }] }))
    .toMatch(/of TLSRoute "c\/TLSRoute\/r" can never match: without 'forwardProxy'.*carry no caller identity; turn forwardProxy on/);
  expect(check({ callers: LINKERD, routeKind: 'TCPRoute', routeClients: [{ namespace: 'a' }] })).toMatch(/of TCPRoute/);
  expect(check({ callers: LINKERD, routeKind: 'HTTPRoute', routeClients: [{ namespace: 'a' }] })).toBe('');
});

test('throws when a TCP-only service declares clients without CONNECT, not when it has an HTTP port', () => {
  expect(check({ callers: LINKERD, servicePorts: ['tcp'], serviceClients: [{ namespace: 'a' }] })).toMatch(/its ports are all TCP/);
  expect(check({ callers: LINKERD, servicePorts: ['tcp', 'http'], serviceClients: [{ namespace: 'a' }] })).toBe('');
  expect(check({ callers: LINKERD, forwardProxy: true, servicePorts: ['tcp'], serviceClients: [{ namespace: 'a' }] })).toBe('');
});

test('throws when Deny for unknown callers would close a listener that never knows its callers', () => {
  const message = check({ callers: { ...LINKERD, unknown: 'Deny' }, tls: true, tcp: true });
  expect(message).toMatch(/2 problems/);
  expect(message).toMatch(/'unknownCallers' "Deny" would refuse every connection of the TLS passthrough listener/);
  expect(message).toMatch(/every connection of the TCP listener for ExternalService "c\/ExternalService\/db" port 5432/);
});
