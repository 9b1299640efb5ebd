// EgressGateway with caller identity: the callers and clients it renders into the proxy config,
// the Linkerd authorization objects it renders for its HTTP port, and the synth errors for
// clients the proxy could never match.
import { Chart, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { CallerIdentitySource, Client, UnknownCallerPolicy } from '../src/callers';
import { EgressGateway } from '../src/egress-gateway';
import type { EgressGatewayProps } from '../src/egress-gateway-props';
import { EgressNetwork } from '../src/egress-network';
import { ExternalService, ExternalServiceProtocol } from '../src/external-service';
import { KumaExternalService } from '../src/kuma-external-service';
import type { ProxyConfig } from '../src/model/proxy-config';
import { ProxyImage } from '../src/proxy-image';
import { EnforcementMode, TrafficPolicy } from '../src/traffic-policy';
import { validateObjects } from './mesh/validate';
import { errorOf } from './util/thrown';

const IMAGE = ProxyImage.fromRegistry('registry.example.com/egress/proxy:1.0.0');
const LINKERD_KINDS = ['Server', 'MeshTLSAuthentication', 'AuthorizationPolicy'];

function gatewayIn(props: EgressGatewayProps = {}): { chart: Chart; gateway: EgressGateway } {
  const chart = new Chart(Testing.app(), 'test');
  return { chart, gateway: new EgressGateway(chart, 'Egress', { image: IMAGE, ...props }) };
}

function configOf(all: any[]): ProxyConfig {
  const maps = all.filter((o) => o.kind === 'ConfigMap' && o.data?.['config.json']);
  expect(maps).toHaveLength(1);
  return JSON.parse(maps[0].data['config.json']);
}

function linkerdObjects(all: any[]): any[] {
  return all.filter((o) => LINKERD_KINDS.includes(o.kind) && o.apiVersion.startsWith('policy.linkerd.io/'));
}

describe('proxy config', () => {
  test('without callerIdentity the config carries no callers and no Linkerd authorization is rendered', () => {
    const { chart, gateway } = gatewayIn();
    gateway.addExternalService('Api', { host: 'api.example.com' });
    const all = Testing.synth(chart);
    expect(configOf(all)).not.toHaveProperty('callers');
    expect(configOf(all).externalServices[0]).not.toHaveProperty('clients');
    expect(linkerdObjects(all)).toEqual([]);
  });

  test('callers, and the clients of services and of every route kind, in the order declared', () => {
    const { chart, gateway } = gatewayIn({
      callerIdentity: CallerIdentitySource.ISTIO,
      unknownCallers: UnknownCallerPolicy.DENY,
      callerMetrics: true,
      trustDomain: 'prod.example.com',
      forwardProxy: true,
    });
    const sa = new kplus.ServiceAccount(chart, 'Checkout', { metadata: { name: 'checkout', namespace: 'shop' } });
    gateway.addExternalService('Stripe', {
      host: 'api.stripe.com',
      clients: [Client.serviceAccount(sa), Client.namespace('payments'), Client.spiffe('spiffe://prod.example.com/ns/ops/sa/runner')],
    });
    const net = new EgressNetwork(chart, 'Net', { namespace: 'egress', trafficPolicy: TrafficPolicy.DENY });
    gateway.attachNetwork(net);
    net.addHttpRoute('Http', { name: 'http', hostnames: ['api.stripe.com'], clients: [Client.namespace('payments')] });
    net.addGrpcRoute('Grpc', { name: 'grpc', hostnames: ['grpc.example.com'], clients: [Client.namespace('a')] });
    net.addTlsRoute('Tls', { name: 'tls', hostnames: ['db.example.com'], clients: [Client.namespace('b')] });
    net.addTcpRoute('Tcp', { name: 'tcp', port: 5432, clients: [Client.serviceAccountNamed('c', 'd')] });
    net.addHttpRoute('Open', { name: 'open', hostnames: ['open.example.com'] });

    const config = configOf(Testing.synth(chart));
    expect(config.callers).toEqual({ source: 'Istio', trustDomain: 'prod.example.com', unknown: 'Deny', metricsLabel: true });
    expect(config.externalServices[0].clients).toEqual([
      { serviceAccount: { namespace: 'shop', name: 'checkout' } },
      { namespace: 'payments' },
      { identity: 'spiffe://prod.example.com/ns/ops/sa/runner' },
    ]);
    expect(config.routes.map((r) => [r.name, r.clients])).toEqual([
      ['http', [{ namespace: 'payments' }]],
      ['grpc', [{ namespace: 'a' }]],
      ['tls', [{ namespace: 'b' }]],
      ['tcp', [{ serviceAccount: { namespace: 'c', name: 'd' } }]],
      ['open', undefined],
    ]);
    // Istio identifies callers through its own sidecar: nothing Linkerd is rendered.
    expect(linkerdObjects(Testing.synth(chart))).toEqual([]);
  });
});

describe('Linkerd authorization', () => {
  test('a Deny gateway whose services all declare clients admits exactly their union', () => {
    const { chart, gateway } = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD, trafficPolicy: TrafficPolicy.DENY });
    gateway.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    gateway.addExternalService('Github', {
      host: 'api.github.com',
      clients: [Client.serviceAccountNamed('ci', 'runner'), Client.linkerdIdentity('bot.ops.serviceaccount.identity.linkerd.cluster.local')],
    });
    const all = Testing.synth(chart);
    const objects = linkerdObjects(all);
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'Server/egress/egress-gateway-http',
      'MeshTLSAuthentication/egress/egress-gateway-callers-accounts',
      'AuthorizationPolicy/egress/egress-gateway-callers-accounts',
      'MeshTLSAuthentication/egress/egress-gateway-callers-identities',
      'AuthorizationPolicy/egress/egress-gateway-callers-identities',
    ]);
    const server = objects[0];
    const deployment = all.find((o) => o.kind === 'Deployment');
    // The Server selects the gateway's pods and its HTTP container port, not the admin port.
    expect(server.spec.podSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    const ports = deployment.spec.template.spec.containers[0].ports;
    expect(ports.find((p: any) => p.name === 'http').containerPort).toBe(server.spec.port);
    expect(ports.find((p: any) => p.name === 'admin').containerPort).not.toBe(server.spec.port);
    expect(server.spec.accessPolicy).toBe('deny');
    expect(objects[1].spec.identityRefs).toEqual([
      { kind: 'Namespace', name: 'payments' },
      { kind: 'ServiceAccount', name: 'runner', namespace: 'ci' },
    ]);
    expect(objects[3].spec.identities).toEqual(['bot.ops.serviceaccount.identity.linkerd.cluster.local']);
    const result = validateObjects(all);
    expect(result.messages).toEqual([]);
  });

  test('the default Allow policy is open: every meshed identity with Deny for unknown callers, everyone without', () => {
    const meshed = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD, unknownCallers: UnknownCallerPolicy.DENY });
    meshed.gateway.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    const m = linkerdObjects(Testing.synth(meshed.chart));
    expect(m.map((o) => o.kind)).toEqual(['Server', 'MeshTLSAuthentication', 'AuthorizationPolicy']);
    expect(m[1].spec).toEqual({ identities: ['*'] });

    const anyone = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD });
    const a = linkerdObjects(Testing.synth(anyone.chart));
    expect(a.map((o) => o.kind)).toEqual(['Server']);
    expect(a[0].spec.accessPolicy).toBe('all-unauthenticated');
  });

  test('ReportOnly audits instead of refusing', () => {
    const { chart, gateway } = gatewayIn({
      callerIdentity: CallerIdentitySource.LINKERD, trafficPolicy: TrafficPolicy.DENY, enforcement: EnforcementMode.REPORT_ONLY,
    });
    gateway.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    expect(linkerdObjects(Testing.synth(chart))[0].spec.accessPolicy).toBe('audit');
  });

  test('follows services added after construction and re-synthesis without duplicates', () => {
    const { chart, gateway } = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD, trafficPolicy: TrafficPolicy.DENY });
    expect(linkerdObjects(Testing.synth(chart)).map((o) => o.kind)).toEqual(['Server']);
    gateway.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    expect(linkerdObjects(Testing.synth(chart)).map((o) => o.kind)).toEqual(['Server', 'MeshTLSAuthentication', 'AuthorizationPolicy']);
    gateway.addExternalService('Open', { host: 'open.example.com' });
    const again = linkerdObjects(Testing.synth(chart));
    expect(again.map((o) => o.kind)).toEqual(['Server']);
    expect(again[0].spec.accessPolicy).toBe('all-unauthenticated');
  });
});

describe('synth errors', () => {
  test('throws when clients are declared on a gateway that identifies no callers', () => {
    const { chart, gateway } = gatewayIn();
    gateway.addExternalService('Stripe', { host: 'api.stripe.com', clients: [Client.namespace('payments')] });
    expect(errorOf(() => Testing.synth(chart)))
      .toMatch(/EgressGateway "test\/Egress": 'clients' \["ns:payments"\] of ExternalService "test\/Egress\/Stripe" can never match: the gateway identifies no callers.*set callerIdentity/);
  });

  test('throws when a TLSRoute declares clients on a gateway without CONNECT, naming the route', () => {
    const { chart, gateway } = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD });
    const net = new EgressNetwork(chart, 'Net', { namespace: 'egress', trafficPolicy: TrafficPolicy.DENY });
    gateway.attachNetwork(net);
    net.addTlsRoute('Tls', { hostnames: ['db.example.com'], clients: [Client.namespace('b')] });
    expect(errorOf(() => Testing.synth(chart))).toMatch(/of TLSRoute "test\/Net\/Tls" can never match: without 'forwardProxy'/);
  });

  test('throws when unknown callers are denied on a gateway with TLS passthrough', () => {
    const { chart } = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD, unknownCallers: UnknownCallerPolicy.DENY, tlsPassthrough: true });
    expect(errorOf(() => Testing.synth(chart))).toMatch(/'unknownCallers' "Deny" would refuse every connection of the TLS passthrough listener/);
  });

  test('throws when a TCP-only service declares clients without CONNECT', () => {
    const { chart, gateway } = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD });
    gateway.addExternalService('Db', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }], clients: [Client.namespace('a')] });
    expect(errorOf(() => Testing.synth(chart))).toMatch(/of ExternalService "test\/Egress\/Db" can never match: its ports are all TCP/);
  });

  test('throws in the constructor for caller props without an identity source or a sidecar', () => {
    expect(errorOf(() => gatewayIn({ unknownCallers: UnknownCallerPolicy.DENY })))
      .toMatch(/EgressGateway "test\/Egress": 'unknownCallers' "Deny" has no effect unless the gateway identifies its callers/);
    expect(errorOf(() => gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD, linkerdInject: false })))
      .toMatch(/'callerIdentity' "Linkerd" needs the Linkerd sidecar/);
  });

  test('throws when a service or route lists no clients', () => {
    const { chart, gateway } = gatewayIn({ callerIdentity: CallerIdentitySource.LINKERD });
    expect(errorOf(() => gateway.addExternalService('Stripe', { host: 'api.stripe.com', clients: [] })))
      .toMatch(/ExternalService "test\/Egress\/Stripe": 'clients' \[\] is empty, which would let nobody use it/);
    const net = new EgressNetwork(chart, 'Net', { namespace: 'egress' });
    expect(errorOf(() => net.addHttpRoute('Http', { clients: [Client.namespace('a'), Client.namespace('a')] })))
      .toMatch(/^HttpRoute "test\/Net\/Http": 'clients\[1\]' "ns:a" is listed twice/);
  });

  test('throws when a mesh renderer would bypass the clients of a service', () => {
    const chart = new Chart(Testing.app(), 'test');
    const service = new ExternalService(chart, 'Api', { host: 'api.example.com', clients: [Client.namespace('payments')] });
    expect(errorOf(() => service.addRenderer(new KumaExternalService()))).toMatch(/'clients' \["ns:payments"\] are enforced by the egress gateway, which knows the caller/);
  });
});
