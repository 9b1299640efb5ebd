import { identityTrustDomain, isLinkerdIdentity } from '../../src/internal/caller-identity';

test('identityTrustDomain tells the mesh and trust domain of an identity', () => {
  expect(identityTrustDomain('a.b.serviceaccount.identity.linkerd.prod.local')).toEqual({ mesh: 'Linkerd', trustDomain: 'prod.local', istioForm: false });
  expect(identityTrustDomain('spiffe://td/ns/a/sa/b')).toEqual({ mesh: 'SPIFFE', trustDomain: 'td', istioForm: true });
  expect(identityTrustDomain('spiffe://td/workload/b')).toEqual({ mesh: 'SPIFFE', trustDomain: 'td', istioForm: false });
});

test('isLinkerdIdentity accepts exactly the names Linkerd issues', () => {
  expect(isLinkerdIdentity('api.shop.serviceaccount.identity.linkerd.cluster.local')).toBe(true);
  expect(isLinkerdIdentity('*.shop.serviceaccount.identity.linkerd.cluster.local')).toBe(false);
  expect(isLinkerdIdentity('api.shop.serviceaccount.identity.linkerd')).toBe(false);
  expect(isLinkerdIdentity('Api.shop.serviceaccount.identity.linkerd.cluster.local')).toBe(false);
});
