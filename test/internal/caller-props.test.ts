import { CallerIdentitySource, Client, UnknownCallerPolicy } from '../../src/callers';
import { callersToSpec, clientsToSpec } from '../../src/internal/caller-props';
import { Problems } from '../../src/internal/problems';
import { errorOf } from '../util/thrown';

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

