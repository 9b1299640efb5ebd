import { Chart, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  CallerIdentitySource, callersToSpec, Client, clientsToSpec, identityTrustDomain, spiffeReason, UnknownCallerPolicy,
} from '../src/callers';
import { errorOf } from './util/thrown';
import { Problems } from '../src/internal/problems';

describe('Client', () => {
  test('each factory renders exactly one field of the config and a stable key', () => {
    const cases: Array<[Client, object, string]> = [
      [Client.serviceAccountNamed('payments', 'api'), { serviceAccount: { namespace: 'payments', name: 'api' } }, 'sa:payments/api'],
      [Client.namespace('payments'), { namespace: 'payments' }, 'ns:payments'],
      [Client.linkerdIdentity('api.payments.serviceaccount.identity.linkerd.cluster.local'),
        { identity: 'api.payments.serviceaccount.identity.linkerd.cluster.local' }, 'id:api.payments.serviceaccount.identity.linkerd.cluster.local'],
      [Client.spiffe('spiffe://cluster.local/ns/payments/sa/api'), { identity: 'spiffe://cluster.local/ns/payments/sa/api' }, 'id:spiffe://cluster.local/ns/payments/sa/api'],
    ];
    for (const [client, spec, key] of cases) {
      expect(client._toSpec()).toEqual(spec);
      expect(client.key).toBe(key);
    }
  });

  test('serviceAccount() takes the namespace from the metadata, else from the chart', () => {
    const app = Testing.app();
    const plain = new Chart(app, 'plain');
    const inPayments = new Chart(app, 'payments', { namespace: 'payments' });
    const own = new kplus.ServiceAccount(plain, 'Own', { metadata: { name: 'curl', namespace: 'curl' } });
    const fromChart = new kplus.ServiceAccount(inPayments, 'FromChart', { metadata: { name: 'api' } });
    const imported = kplus.ServiceAccount.fromServiceAccountName(plain, 'Imported', 'ci', { namespaceName: 'builds' });
    expect(Client.serviceAccount(own)._toSpec()).toEqual({ serviceAccount: { namespace: 'curl', name: 'curl' } });
    expect(Client.serviceAccount(fromChart)._toSpec()).toEqual({ serviceAccount: { namespace: 'payments', name: 'api' } });
    expect(Client.serviceAccount(imported)._toSpec()).toEqual({ serviceAccount: { namespace: 'builds', name: 'ci' } });
  });

  test('throws when a ServiceAccount has no namespace anywhere', () => {
    const chart = new Chart(Testing.app(), 'plain');
    const sa = new kplus.ServiceAccount(chart, 'Nowhere', { metadata: { name: 'nowhere' } });
    expect(errorOf(() => Client.serviceAccount(sa))).toMatch(/ServiceAccount "plain\/Nowhere" has no namespace.*Client\.serviceAccountNamed\(namespace, name\)/);
  });

  test('throws when names are not Kubernetes names, listing every problem', () => {
    const message = errorOf(() => Client.serviceAccountNamed('Payments_Team', 'API'));
    expect(message).toMatch(/^Client\.serviceAccountNamed\(\): 2 problems:/);
    expect(message).toContain('\'namespace\' "Payments_Team" is not a namespace name');
    expect(message).toContain('use e.g. "payments-team"');
    expect(message).toContain('\'name\' "API" is not a ServiceAccount name');
    expect(errorOf(() => Client.namespace('a.b'))).toMatch(/'name' "a\.b" is not a namespace name.*use e\.g\. "a-b"/);
    expect(errorOf(() => Client.namespace(''))).toMatch(/'name' "" is not a namespace name/);
  });

  test('throws when a Linkerd identity is not of the form Linkerd issues', () => {
    for (const bad of ['payments', '*.payments.serviceaccount.identity.linkerd.cluster.local', 'API.payments.serviceaccount.identity.linkerd.cluster.local',
      'spiffe://cluster.local/ns/a/sa/b', 'api.payments.serviceaccount.identity.linkerd.']) {
      expect(errorOf(() => Client.linkerdIdentity(bad))).toMatch(/^Client\.linkerdIdentity\(\): 'identity' .* is not a Linkerd identity/);
    }
  });

  test('throws when a SPIFFE ID is malformed, saying why', () => {
    expect(errorOf(() => Client.spiffe('http://cluster.local/ns/a/sa/b'))).toMatch(/must start with "spiffe:\/\/"/);
    expect(errorOf(() => Client.spiffe('spiffe://cluster.local'))).toMatch(/needs a path/);
    expect(errorOf(() => Client.spiffe('spiffe://Cluster.Local/ns/a'))).toMatch(/trust domain must be lower-case/);
    expect(errorOf(() => Client.spiffe('spiffe://cluster.local/ns//sa/b'))).toMatch(/path segments must be non-empty/);
    expect(errorOf(() => Client.spiffe('spiffe://cluster.local/ns/../sa/b'))).toMatch(/never "\." or "\.\."/);
    expect(errorOf(() => Client.spiffe('spiffe://cluster.local/ns/a?x=1'))).toMatch(/no query or fragment/);
    expect(spiffeReason('spiffe://example.org/workload/web-1')).toBeUndefined();
  });
});

describe('clientsToSpec', () => {
  test('unset means open to every caller; a list renders in order', () => {
    const p = new Problems('X');
    expect(clientsToSpec(p, 'clients', undefined)).toBeUndefined();
    expect(clientsToSpec(p, 'clients', [Client.namespace('b'), Client.namespace('a')])).toEqual([{ namespace: 'b' }, { namespace: 'a' }]);
    expect(p.count).toBe(0);
  });

  test('throws when the list is empty, has a duplicate or holds something else', () => {
    const p = new Problems('ExternalService "c/S"');
    clientsToSpec(p, 'clients', []);
    clientsToSpec(p, 'clients', [Client.namespace('a'), Client.namespace('a')]);
    clientsToSpec(p, 'clients', ['payments' as unknown as Client]);
    const message = errorOf(() => p.throwIfAny());
    expect(message).toContain('\'clients\' [] is empty, which would let nobody use it');
    expect(message).toContain('\'clients[1]\' "ns:a" is listed twice');
    expect(message).toContain('\'clients[0]\' "payments" is not a Client');
  });
});

describe('callersToSpec', () => {
  test('unset callerIdentity renders no callers; the defaults fill the rest', () => {
    const p = new Problems('G');
    expect(callersToSpec(p, {})).toBeUndefined();
    expect(callersToSpec(p, { callerIdentity: CallerIdentitySource.LINKERD })).toEqual({
      source: 'Linkerd', trustDomain: 'cluster.local', unknown: 'AllowUnrestricted', metricsLabel: false,
    });
    expect(callersToSpec(p, {
      callerIdentity: CallerIdentitySource.ISTIO, unknownCallers: UnknownCallerPolicy.DENY, callerMetrics: true, trustDomain: 'prod.example.com',
    })).toEqual({ source: 'Istio', trustDomain: 'prod.example.com', unknown: 'Deny', metricsLabel: true });
    expect(p.count).toBe(0);
  });

  test('throws when caller settings are given without an identity source', () => {
    const p = new Problems('EgressGateway "c/G"');
    callersToSpec(p, { unknownCallers: UnknownCallerPolicy.DENY, callerMetrics: true, trustDomain: 'x.org' });
    const message = errorOf(() => p.throwIfAny());
    expect(message).toContain('\'unknownCallers\' "Deny" has no effect unless the gateway identifies its callers');
    expect(message).toContain('\'callerMetrics\' true has no effect');
    expect(message).toContain('\'trustDomain\' "x.org" has no effect');
    expect(message).toContain('set callerIdentity: CallerIdentitySource.LINKERD');
  });

  test('throws when Linkerd identities are asked of a gateway without the Linkerd sidecar', () => {
    const p = new Problems('EgressGateway "c/G"');
    callersToSpec(p, { callerIdentity: CallerIdentitySource.LINKERD, linkerdInject: false });
    expect(errorOf(() => p.throwIfAny())).toMatch(/'callerIdentity' "Linkerd" needs the Linkerd sidecar.*'linkerdInject' is false/);
  });

  test('throws when values are outside the enums or the trust domain is not a name', () => {
    const p = new Problems('G');
    callersToSpec(p, { callerIdentity: 'Consul' as CallerIdentitySource, unknownCallers: 'Maybe' as UnknownCallerPolicy, trustDomain: 'Bad Domain' });
    const message = errorOf(() => p.throwIfAny());
    expect(message).toContain('\'callerIdentity\' "Consul" is not one of "None", "Linkerd", "Istio"');
    expect(message).toContain('\'unknownCallers\' "Maybe" is not one of "AllowUnrestricted", "Deny"');
    expect(message).toMatch(/'trustDomain' "Bad Domain" is not a trust domain/);
  });
});

test('identityTrustDomain tells the mesh and trust domain of an identity', () => {
  expect(identityTrustDomain('a.b.serviceaccount.identity.linkerd.prod.local')).toEqual({ mesh: 'Linkerd', trustDomain: 'prod.local', istioForm: false });
  expect(identityTrustDomain('spiffe://td/ns/a/sa/b')).toEqual({ mesh: 'SPIFFE', trustDomain: 'td', istioForm: true });
  expect(identityTrustDomain('spiffe://td/workload/b')).toEqual({ mesh: 'SPIFFE', trustDomain: 'td', istioForm: false });
});
