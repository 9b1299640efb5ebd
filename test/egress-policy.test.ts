import { existsSync } from 'fs';
import { join } from 'path';
import { Chart, Testing } from 'cdk8s';
import { CallerIdentitySource, Client, UnknownCallerPolicy } from '../src/callers';
import { EgressGateway } from '../src/egress-gateway';
import type { EgressGatewayProps } from '../src/egress-gateway-props';
import { EgressNetwork } from '../src/egress-network';
import { EgressPolicy, EgressRequestProtocol } from '../src/egress-policy';
import { EnforcementMode, TrafficPolicy } from '../src/traffic-policy';
import { errorOf } from './util/thrown';

function gateway(props: EgressGatewayProps = {}): { chart: Chart; gateway: EgressGateway } {
  const chart = new Chart(Testing.app(), 'test');
  return { chart, gateway: new EgressGateway(chart, 'Egress', { trafficPolicy: TrafficPolicy.DENY, callerIdentity: CallerIdentitySource.LINKERD, ...props }) };
}

const PAYMENTS = Client.serviceAccountNamed('payments', 'api');
const SHOP = Client.serviceAccountNamed('shop', 'web');
const STRIPE = 'api.stripe.com.egress.local';

describe('EgressPolicy', () => {
  test('a service with clients: allowed caller, other caller, unknown caller, undeclared host', () => {
    const { gateway: g } = gateway();
    g.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    const policy = EgressPolicy.of(g);

    const ok = policy.explain({ host: STRIPE, path: '/v1/charges', method: 'POST', caller: PAYMENTS });
    expect(ok).toMatchObject({ allowed: true, reason: 'declared-service', externalService: 'stripe', reportOnly: false });
    expect(ok.status).toBeUndefined();
    expect(ok.route).toMatchObject({ kind: 'ExternalService', name: 'stripe' });
    expect(ok.caller).toMatchObject({ known: true, namespace: 'payments', serviceAccount: 'api', identity: 'api.payments.serviceaccount.identity.linkerd.cluster.local' });

    expect(policy.explain({ host: STRIPE, caller: SHOP })).toMatchObject({ allowed: false, status: 403, code: 'CALLER_NOT_ALLOWED', refusedBy: 'external-service' });
    const unknown = policy.explain({ host: STRIPE });
    expect(unknown).toMatchObject({ allowed: false, status: 403, code: 'CALLER_UNKNOWN' });
    expect(unknown.caller).toMatchObject({ known: false, unknownReason: 'no-header' });
    expect(policy.explain({ host: 'api.github.com.egress.local', caller: PAYMENTS })).toMatchObject({ allowed: false, status: 403, reason: 'default-deny' });
  });

  test('the identity header counts as from the sidecar; a caller given replaces it', () => {
    const { gateway: g } = gateway();
    g.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    const policy = EgressPolicy.of(g);
    const header = { 'L5D-Client-Id': 'api.payments.serviceaccount.identity.linkerd.cluster.local' };
    expect(policy.explain({ host: STRIPE, headers: header }).allowed).toBe(true);
    expect(policy.explain({ host: STRIPE, headers: header, caller: SHOP }).code).toBe('CALLER_NOT_ALLOWED');
    expect(policy.explain({ host: STRIPE, caller: Client.linkerdIdentity('ci.payments.serviceaccount.identity.linkerd.cluster.local') }).allowed).toBe(true);
  });

  test('route clients and service clients must both consent; report-only lets it through with the would-be reason', () => {
    const { chart, gateway: g } = gateway({ enforcement: EnforcementMode.REPORT_ONLY, trafficPolicy: undefined });
    const net = new EgressNetwork(chart, 'Net', { namespace: 'egress', trafficPolicy: TrafficPolicy.DENY });
    g.attachNetwork(net);
    g.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments'), Client.namespace('shop')] });
    net.addHttpRoute('Charges', { name: 'charges', hostnames: ['api.stripe.com'], clients: [Client.namespace('payments')] });
    const policy = EgressPolicy.of(g);
    expect(policy.explain({ host: STRIPE, caller: PAYMENTS })).toMatchObject({ allowed: true, reason: 'route-matched', route: { kind: 'HTTPRoute', name: 'charges' } });
    expect(policy.explain({ host: STRIPE, caller: SHOP })).toMatchObject({ allowed: true, reportOnly: true, reason: 'report-only', wouldReason: 'caller-not-allowed', refusedBy: 'route' });
  });

  test('TLS passthrough callers are always unknown', () => {
    const { gateway: g } = gateway({ tlsPassthrough: true, unknownCallers: UnknownCallerPolicy.ALLOW_UNRESTRICTED });
    g.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    g.addExternalService('Open', { host: 'open.example.com' });
    const policy = EgressPolicy.of(g);
    expect(policy.explain({ protocol: EgressRequestProtocol.TLS, sni: 'api.stripe.com', caller: PAYMENTS })).toMatchObject({ allowed: false, code: 'CALLER_UNKNOWN', caller: { known: false, unknownReason: 'no-headers' } });
    expect(policy.explain({ protocol: EgressRequestProtocol.TLS, sni: 'open.example.com' }).allowed).toBe(true);
  });

  test('explain() reads the gateway as it stands; of() keeps the policy it read', () => {
    const { gateway: g } = gateway();
    const before = EgressPolicy.of(g);
    g.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    expect(before.explain({ host: STRIPE, caller: PAYMENTS }).reason).toBe('default-deny');
    expect(EgressPolicy.explainRequest(g, { host: STRIPE, caller: PAYMENTS }).allowed).toBe(true);
  });

  test('throws when the gateway would not synthesise, or the caller is a namespace', () => {
    const { gateway: g } = gateway({ callerIdentity: undefined });
    g.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    expect(errorOf(() => EgressPolicy.of(g))).toMatch(/'clients' \["ns:payments"\] of ExternalService "test\/Egress\/Stripe" can never match/);
    const ok = gateway().gateway;
    expect(errorOf(() => EgressPolicy.explainRequest(ok, { host: STRIPE, caller: Client.namespace('payments') })))
      .toMatch(/'caller' "ns:payments" is a namespace, not one caller/);
  });
});

test('the bundled engine the package ships answers as the source does', () => {
  const bundled = join(__dirname, '..', 'assets', 'proxy', 'explain', 'index.js');
  if (!existsSync(bundled)) throw new Error(`${bundled} is missing: run \`npx projen bundle\` (npm test does it first)`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const engine = require(bundled) as typeof import('../src/proxy/explain');
  const { gateway: g } = gateway();
  g.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
  const fromBundle = engine.createExplainer(g._renderConfig());
  const policy = EgressPolicy.of(g);
  for (const caller of [PAYMENTS, SHOP]) {
    const spec = caller._toSpec().serviceAccount!;
    const b = fromBundle.explain({ host: STRIPE, caller: { namespace: spec.namespace, serviceAccount: spec.name } });
    const p = policy.explain({ host: STRIPE, caller });
    expect([b.allowed, b.code, b.reason]).toEqual([p.allowed, p.code, p.reason]);
  }
  expect(fromBundle.explain({ host: STRIPE }).code).toBe('CALLER_UNKNOWN');
});
