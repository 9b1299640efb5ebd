import { Chart, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Client } from '../src/callers';
import { errorOf } from './util/thrown';
import { spiffeReason } from '../src/internal/caller-identity';

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
    expect(message).toContain('\'namespace\' "Payments_Team" is not a DNS label (a namespace:');
    expect(message).toContain('use e.g. "payments-team"');
    expect(message).toContain('\'name\' "API" is not a DNS subdomain (a ServiceAccount name:');
    expect(errorOf(() => Client.namespace('a.b'))).toMatch(/'name' "a\.b" is not a DNS label \(a namespace: .*use e\.g\. "a-b"/);
    expect(errorOf(() => Client.namespace(''))).toMatch(/'name' "" is not a DNS label \(a namespace: .*use e\.g\. "default"/);
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
