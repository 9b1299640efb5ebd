// Every construct created without an explicit name: each object it synthesises carries the name
// cdk8s generates (or the documented default), every reference points at an object that exists,
// and two synths of the same app give the same names.
import { Chart, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  DnsFlavor, EgressGateway, EgressNetwork, GrpcRoute, HttpRoute, IstioExternalService, KumaExternalService, OsmEgress,
  OsmMeshConfig, RouteApiVersion, RouteBackend, TcpRoute, TlsRoute, TrafficPolicy,
} from '../src';
import { validateConfig } from '../src/proxy/config';
import { validateObjects } from './mesh/validate';

const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute'];
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** An app using every construct kind with no `name` prop anywhere. */
function build(): { chart: Chart; gateway: EgressGateway; network: EgressNetwork } {
  const chart = new Chart(Testing.app(), 'platform', { namespace: 'egress' });
  const gateway = new EgressGateway(chart, 'Gateway', { tlsPassthrough: true });
  const network = new EgressNetwork(chart, 'Net', { trafficPolicy: TrafficPolicy.DENY, gateway });
  const github = gateway.addExternalService('Github', { host: 'api.github.com' });
  github.addRenderer(new KumaExternalService());
  github.addRenderer(new IstioExternalService());
  github.addRenderer(new OsmEgress({ sources: [{ serviceAccount: 'client', namespace: 'team-a' }] }));
  new OsmMeshConfig(chart, 'OsmMesh');
  network.addHttpRoute('Http', { hostnames: ['api.github.com'] });
  new GrpcRoute(chart, 'Grpc', { network, port: 443, hostnames: ['grpc.example.com'] });
  network.addTlsRoute('Tls', { hostnames: ['httpbin.org'], port: 443 });
  new TlsRoute(chart, 'TlsAlpha', { network, port: 8443, apiVersion: RouteApiVersion.V1ALPHA2 });
  network.addTcpRoute('Tcp', { port: 5432, rules: [{ backends: [RouteBackend.egressNetwork(network)] }] });
  const client = new kplus.Deployment(chart, 'Client', { containers: [{ image: 'curlimages/curl' }] });
  gateway.restrictEgressOf(client);
  gateway.addDnsRewrite('Dns', { flavor: DnsFlavor.corednsCustom() });
  new HttpRoute(chart, 'Outside', { network });
  return { chart, gateway, network };
}

function names(objects: any[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
}

describe('default names', () => {
  const { chart, gateway, network } = build();
  const objects = Testing.synth(chart);

  test('every object has a valid metadata.name, unique per kind and namespace', () => {
    for (const o of objects) {
      expect(`${o.kind} ${typeof o.metadata.name}`).toBe(`${o.kind} string`);
      expect(o.metadata.name).toMatch(DNS_SUBDOMAIN);
      expect(o.metadata.name.length).toBeLessThanOrEqual(253);
    }
    expect(new Set(names(objects)).size).toBe(objects.length);
  });

  test('the EgressNetwork and each route kind carry the name cdk8s generates from the construct path', () => {
    const net = objects.find((o) => o.kind === 'EgressNetwork');
    expect(net.metadata.name).toBe(network.name);
    expect(network.name).toMatch(/^platform-net-c8[0-9a-f]{6}$/);
    for (const kind of ROUTE_KINDS) {
      const routes = objects.filter((o) => o.kind === kind);
      expect(routes.length).toBeGreaterThan(0);
      for (const r of routes) expect(r.metadata.name).toMatch(/^platform-[a-z0-9-]+-c8[0-9a-f]{6}$/);
    }
    expect(objects.filter((o) => o.kind === 'HTTPRoute').map((o) => o.metadata.name).sort())
      .toEqual([...network.node.findAll()].filter((c) => c instanceof HttpRoute).map((r) => (r as HttpRoute).name).concat(
        (chart.node.findChild('Outside') as HttpRoute).name).sort());
  });

  test('route parentRefs and EgressNetwork backendRefs name the EgressNetwork object that exists', () => {
    const net = objects.find((o) => o.kind === 'EgressNetwork');
    const routes = objects.filter((o) => ROUTE_KINDS.includes(o.kind));
    expect(routes).toHaveLength(6);
    for (const r of routes) {
      for (const p of r.spec.parentRefs) {
        expect(p).toMatchObject({ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: net.metadata.name, namespace: net.metadata.namespace });
      }
      for (const rule of r.spec.rules) {
        for (const b of rule.backendRefs ?? []) {
          if (b.kind === 'EgressNetwork') expect([b.name, b.namespace ?? r.metadata.namespace]).toEqual([net.metadata.name, net.metadata.namespace]);
        }
      }
    }
  });

  test('the gateway config names its parent and routes by the objects\' real names', () => {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${gateway.name}-config`);
    const config = JSON.parse(cm.data['config.json']);
    const valid = validateConfig(config);
    expect(valid.ok ? [] : valid.errors).toEqual([]);
    const net = objects.find((o) => o.kind === 'EgressNetwork');
    expect([config.parent.name, config.parent.namespace]).toEqual([net.metadata.name, net.metadata.namespace]);
    const routeObjects = objects.filter((o) => ROUTE_KINDS.includes(o.kind));
    expect(config.routes.map((r: any) => `${r.kind}/${r.namespace}/${r.name}`).sort())
      .toEqual(routeObjects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort());
  });

  test('names are the same in a second synth of a freshly built app', () => {
    const again = Testing.synth(build().chart);
    expect(names(again)).toEqual(names(objects));
    expect(again.find((o) => o.kind === 'ConfigMap' && o.data?.['config.json']).data['config.json'])
      .toBe(objects.find((o) => o.kind === 'ConfigMap' && o.data?.['config.json']).data['config.json']);
  });

  test('the objects validate, with every reference resolved inside the set', () => {
    const result = validateObjects(objects);
    expect(result.messages).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.passed).toBe(objects.length);
  });
});
