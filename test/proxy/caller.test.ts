// Who is calling: the identity parsers (Linkerd's l5d-client-id, Istio's XFCC and SPIFFE IDs), the
// trusted-peer rule, and the resolver that joins them, table by table.
import {
  CallerResolver, PeerTrust, clientKey, isLoopbackCidr, lastXfccElementUris, parseLinkerdIdentity, parseSpiffeId, parseXfcc,
  type CallerResolution,
} from '../../src/proxy/caller';

const TD = 'cluster.local';
const l5d = (sa: string, ns: string, td = TD) => `${sa}.${ns}.serviceaccount.identity.linkerd.${td}`;
const spiffe = (sa: string, ns: string, td = TD) => `spiffe://${td}/ns/${ns}/sa/${sa}`;
/** What Istio's sidecar appends: its own identity (By), the client's certificate hash and URI. */
const xfccElement = (uri: string) => `By=spiffe://${TD}/ns/egress/sa/egress-gateway;Hash=8c1b2f0a;Subject="";URI=${uri}`;

function who(r: ReturnType<typeof parseLinkerdIdentity>): unknown {
  return typeof r === 'string' ? r : { ns: r.namespace, sa: r.serviceAccount, identity: r.identity };
}

describe('parseLinkerdIdentity', () => {
  test.each<[string, string, unknown]>([
    ['a ServiceAccount identity', l5d('billing', 'payments'), { ns: 'payments', sa: 'billing', identity: l5d('billing', 'payments') }],
    ['a ServiceAccount name with dots', l5d('ci.deployer', 'ops'), { ns: 'ops', sa: 'ci.deployer', identity: l5d('ci.deployer', 'ops') }],
    ['another trust domain', l5d('billing', 'payments', 'other.example'), 'other-trust-domain'],
    ['a trust domain that only ends like ours', l5d('billing', 'payments', `x${TD}`), 'other-trust-domain'],
    ['no namespace', `billing.serviceaccount.identity.linkerd.${TD}`, 'unparsable'],
    ['an upper-case name', l5d('Billing', 'payments'), 'unparsable'],
    ['a namespace with an underscore', l5d('billing', 'pay_ments'), 'unparsable'],
    ['an empty label', l5d('billing.', 'payments'), 'unparsable'],
    ['two values joined by node:http', `${l5d('a', 'b')}, ${l5d('c', 'd')}`, 'unparsable'],
    ['a SPIFFE ID', spiffe('billing', 'payments'), 'unparsable'],
    ['empty', '', 'unparsable'],
  ])('%s', (_what, value, expected) => {
    expect(who(parseLinkerdIdentity(value, TD))).toEqual(expected);
  });
});

describe('parseSpiffeId', () => {
  test.each<[string, string, unknown]>([
    ['a workload identity', spiffe('billing', 'payments'), { ns: 'payments', sa: 'billing', identity: spiffe('billing', 'payments') }],
    ['another trust domain', spiffe('billing', 'payments', 'other.example'), 'other-trust-domain'],
    ['another path shape', `spiffe://${TD}/ns/payments/pod/x`, 'unparsable'],
    ['extra path segments', `spiffe://${TD}/ns/payments/sa/billing/extra`, 'unparsable'],
    ['no namespace', `spiffe://${TD}/ns//sa/billing`, 'unparsable'],
    ['not spiffe', `https://${TD}/ns/payments/sa/billing`, 'unparsable'],
    ['a Linkerd name', l5d('billing', 'payments'), 'unparsable'],
  ])('%s', (_what, value, expected) => {
    expect(who(parseSpiffeId(value, TD))).toEqual(expected);
  });
});

describe('XFCC: the URI of the last element', () => {
  test.each<[string, string, string[] | undefined]>([
    ['one element', xfccElement(spiffe('a', 'b')), [spiffe('a', 'b')]],
    ['the last of several elements (the sidecar appends its own)', `${xfccElement(spiffe('forged', 'x'))},${xfccElement(spiffe('a', 'b'))}`, [spiffe('a', 'b')]],
    ['commas, semicolons and equals signs inside quotes do not split',
      `By=x;Subject="CN=a,O=b;c";URI=${spiffe('forged', 'x')},Subject="OU=q,r=s";URI=${spiffe('a', 'b')}`, [spiffe('a', 'b')]],
    ['an escaped quote inside a quoted value', `Subject="a\\"b,c";URI="${spiffe('a', 'b')}"`, [spiffe('a', 'b')]],
    ['keys are case-insensitive', `uri=${spiffe('a', 'b')}`, [spiffe('a', 'b')]],
    ['several URI SANs', `URI=${spiffe('a', 'b')};URI=${spiffe('c', 'd')}`, [spiffe('a', 'b'), spiffe('c', 'd')]],
    ['no URI', 'By=x;Hash=y', []],
    ['an unterminated quote', 'Subject="abc;URI=x', undefined],
  ])('%s', (_what, header, expected) => {
    expect(lastXfccElementUris(header)).toEqual(expected);
  });

  test.each<[string, string, unknown]>([
    ['the client the sidecar authenticated', `${xfccElement(spiffe('forged', 'x'))},${xfccElement(spiffe('billing', 'payments'))}`,
      { ns: 'payments', sa: 'billing', identity: spiffe('billing', 'payments') }],
    ['several URIs in the last element: no one caller', `URI=${spiffe('a', 'b')};URI=${spiffe('c', 'd')}`, 'unparsable'],
    ['no URI (a client certificate without SPIFFE ID)', 'By=x;Hash=y;Subject="CN=legacy"', 'unparsable'],
    ['another trust domain', xfccElement(spiffe('a', 'b', 'other.example')), 'other-trust-domain'],
  ])('parseXfcc: %s', (_what, header, expected) => {
    expect(who(parseXfcc(header, TD))).toEqual(expected);
  });
});

describe('trusted peers', () => {
  const defaults = new PeerTrust();
  test.each<[string, string | undefined, string | undefined, boolean]>([
    ['IPv4 loopback (Linkerd before 2.11)', '127.0.0.1', '10.1.2.3', true],
    ["Istio's inbound source", '127.0.0.6', '10.1.2.3', true],
    ['IPv6 loopback', '::1', '::1', true],
    ['IPv4-mapped loopback on a dual-stack listener', '::ffff:127.0.0.6', '::ffff:10.1.2.3', true],
    ['the pod IP to the pod IP (Linkerd since 2.11)', '10.1.2.3', '10.1.2.3', true],
    ['the pod IP, mapped on one side', '::ffff:10.1.2.3', '10.1.2.3', true],
    ['another pod', '10.1.2.4', '10.1.2.3', false],
    ['another pod over IPv6', 'fd00::4', 'fd00::3', false],
    ['a mapped private address', '::ffff:10.1.2.4', '::ffff:10.1.2.3', false],
    ['no address (a destroyed socket)', undefined, '10.1.2.3', false],
  ])('defaults: %s', (_what, remote, local, trusted) => {
    expect(defaults.trusts(remote, local)).toBe(trusted);
  });

  test('narrowed to where the sidecar connects from: other loopback peers and the pod IP are not trusted', () => {
    const istio = new PeerTrust(['127.0.0.6/32']);
    expect(istio.trusts('127.0.0.6', '10.1.2.3')).toBe(true);
    expect(istio.trusts('::ffff:127.0.0.6', '::ffff:10.1.2.3')).toBe(true);
    expect(istio.trusts('127.0.0.1', '10.1.2.3')).toBe(false);
    expect(istio.trusts('10.1.2.3', '10.1.2.3')).toBe(false);
    const linkerd = new PeerTrust(['PodIP']);
    expect(linkerd.trusts('10.1.2.3', '10.1.2.3')).toBe(true);
    expect(linkerd.trusts('127.0.0.1', '10.1.2.3')).toBe(false);
  });

  test.each<[string, boolean]>([
    ['127.0.0.0/8', true], ['127.0.0.6/32', true], ['::1/128', true], ['::ffff:127.0.0.0/104', true], ['::ffff:127.0.0.6/128', true],
    ['0.0.0.0/0', false], ['10.0.0.0/8', false], ['126.0.0.0/7', false], ['::/0', false], ['::/127', false], ['::ffff:0.0.0.0/96', false],
  ])('isLoopbackCidr(%s) = %s', (cidr, expected) => {
    expect(isLoopbackCidr(cidr)).toBe(expected);
  });
});

describe('CallerResolver.resolve', () => {
  const linkerd = new CallerResolver({ source: 'Linkerd', trustDomain: TD, unknown: 'AllowUnrestricted', metricsLabel: false });
  const istio = new CallerResolver({ source: 'Istio', trustDomain: TD, unknown: 'AllowUnrestricted', metricsLabel: false });
  const none = new CallerResolver();
  const summary = (r: CallerResolution) => ({ identity: r.caller?.identity ?? null, trustedPeer: r.trustedPeer, unknown: r.unknown });
  const id = l5d('billing', 'payments');

  test.each<[string, CallerResolver, Record<string, string | string[]>, string[] | undefined, string, unknown]>([
    ['Linkerd, from the sidecar', linkerd, { 'l5d-client-id': id }, undefined, '127.0.0.1',
      { identity: id, trustedPeer: true, unknown: undefined }],
    ['surrounding whitespace is not part of the name', linkerd, { 'l5d-client-id': ` ${id} ` }, undefined, '127.0.0.1',
      { identity: id, trustedPeer: true, unknown: undefined }],
    ['a header from another pod is ignored, never grants', linkerd, { 'l5d-client-id': id }, undefined, '10.9.9.9',
      { identity: null, trustedPeer: false, unknown: 'untrusted-peer' }],
    ['an unmeshed client: no header', linkerd, {}, undefined, '127.0.0.1', { identity: null, trustedPeer: true, unknown: 'no-header' }],
    ['no header from another pod', linkerd, {}, undefined, '10.9.9.9', { identity: null, trustedPeer: false, unknown: 'no-header' }],
    ['the header twice (node:http joins the lines)', linkerd, { 'l5d-client-id': `${id}, ${id}` },
      ['L5D-Client-Id', id, 'l5d-client-id', id], '127.0.0.1', { identity: null, trustedPeer: true, unknown: 'multiple-headers' }],
    ['the header as a list (HTTP/2)', linkerd, { 'l5d-client-id': [id, id] }, undefined, '127.0.0.1',
      { identity: null, trustedPeer: true, unknown: 'multiple-headers' }],
    ['another trust domain', linkerd, { 'l5d-client-id': l5d('billing', 'payments', 'other.example') }, undefined, '127.0.0.1',
      { identity: null, trustedPeer: true, unknown: 'other-trust-domain' }],
    ['Linkerd ignores the Istio header', linkerd, { 'x-forwarded-client-cert': xfccElement(spiffe('billing', 'payments')) }, undefined, '127.0.0.1',
      { identity: null, trustedPeer: true, unknown: 'no-header' }],
    ['Istio, from its inbound source 127.0.0.6', istio, { 'x-forwarded-client-cert': xfccElement(spiffe('billing', 'payments')) }, undefined,
      '127.0.0.6', { identity: spiffe('billing', 'payments'), trustedPeer: true, unknown: undefined }],
    ['Istio ignores l5d-client-id', istio, { 'l5d-client-id': id }, undefined, '127.0.0.6', { identity: null, trustedPeer: true, unknown: 'no-header' }],
    ['source None identifies nobody', none, { 'l5d-client-id': id }, undefined, '127.0.0.1',
      { identity: null, trustedPeer: false, unknown: 'no-identity-source' }],
  ])('%s', (_what, resolver, headers, raw, remote, expected) => {
    expect(summary(resolver.resolve(headers, raw, remote, '10.1.2.3'))).toEqual(expected);
  });

  test('an identified caller carries the keys a client entry can have', () => {
    const r = linkerd.resolve({ 'l5d-client-id': id }, undefined, '127.0.0.1', undefined);
    expect(r.caller!.keys).toEqual({ id: `id:${id}`, sa: 'sa:payments/billing', ns: 'ns:payments' });
    expect(clientKey({ serviceAccount: { namespace: 'payments', name: 'billing' } })).toBe(r.caller!.keys.sa);
    expect(clientKey({ namespace: 'payments' })).toBe(r.caller!.keys.ns);
    expect(clientKey({ identity: id })).toBe(r.caller!.keys.id);
  });

  test('TLS passthrough and TCP connections have no headers: unknown', () => {
    expect(linkerd.connection()).toEqual({ caller: undefined, trustedPeer: false, unknown: 'no-headers' });
    expect(none.connection().unknown).toBe('no-identity-source');
  });

  test('identityOf and fromIdentity: the name each mesh gives a ServiceAccount, read back', () => {
    expect(linkerd.identityOf('payments', 'billing')).toBe(id);
    expect(istio.identityOf('payments', 'billing')).toBe(spiffe('billing', 'payments'));
    expect(none.identityOf('payments', 'billing')).toBeUndefined();
    expect(summary(istio.fromIdentity(spiffe('billing', 'payments')))).toEqual({ identity: spiffe('billing', 'payments'), trustedPeer: true, unknown: undefined });
    expect(istio.fromIdentity(id).unknown).toBe('unparsable');
  });
});
