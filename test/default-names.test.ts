// Every construct created without an explicit name: each object it synthesises carries the name
// cdk8s generates (or the documented default), every reference points at an object that exists,
// and two synths of the same app give the same names.
import { Chart, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  DnsFlavor, DnsRewrite, EgressGateway, EgressGatewayPolicy, EgressGatewayTarget, EgressLockdown, EgressNetwork, GatewayDeployment,
  GrpcRoute, HttpRoute, IstioExternalService, KumaExternalService, OsmEgress,
  OsmMeshConfig, RouteApiVersion, RouteBackend, TlsRoute, TrafficPolicy,
} from '../src';
import { validateObjects } from './mesh/validate';
import { validateConfig } from '../src/proxy/config';

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
  network.addTcpRoute('Tcp', { port: 5432, backends: [RouteBackend.egressNetwork(network)] });
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
    expect(valid.ok ? [] : valid.problems).toEqual([]);
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

/**
 * The constructs the first app leaves out, again without a `name` anywhere: a node-local gateway
 * with no network (its implicit parent), standalone NetworkPolicies built from a described
 * gateway, and the DNS flavours that synthesise objects of their own.
 */
function buildEdge(): Chart {
  const chart = new Chart(Testing.app(), 'edge');
  const gateway = new EgressGateway(chart, 'NodeProxy', { deployment: GatewayDeployment.NODE_LOCAL, trafficPolicy: TrafficPolicy.DENY });
  gateway.addExternalService('Api', { host: 'api.example.com' });
  gateway.addDnsRewrite('KubeDns', { flavor: DnsFlavor.kubeDns({ clusterIp: '10.96.0.53' }) });
  new DnsRewrite(chart, 'Coredns', { flavor: DnsFlavor.corednsConfigMap() });
  const described: EgressGatewayTarget = { namespace: 'egress', serviceName: 'proxy', podSelectorLabels: { app: 'proxy' }, proxyPorts: [8080] };
  const app = new kplus.Deployment(chart, 'App', { containers: [{ image: 'curlimages/curl' }] });
  new EgressLockdown(chart, 'Lockdown', { selector: app, gateway: described });
  new EgressGatewayPolicy(chart, 'GatewayPolicy', { gateway: described, allowFrom: [app] });
  gateway.restrictEgressOf(kplus.Namespaces.select(chart, 'Team', { names: ['team-a'] }));
  return chart;
}

describe('default names of the remaining kinds', () => {
  const objects = Testing.synth(buildEdge());
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);

  test('every object has a valid metadata.name, unique per kind and namespace', () => {
    expect(new Set(objects.map((o) => o.kind))).toEqual(new Set([
      'Namespace', 'ServiceAccount', 'ConfigMap', 'DaemonSet', 'Service', 'Deployment', 'NetworkPolicy',
    ]));
    for (const o of objects) {
      expect(`${o.kind} ${typeof o.metadata.name}`).toBe(`${o.kind} string`);
      expect(o.metadata.name).toMatch(DNS_SUBDOMAIN);
    }
    expect(new Set(names(objects)).size).toBe(objects.length);
    expect(byKind('NetworkPolicy')).toHaveLength(4);
  });

  test('workloads mount ConfigMaps and use ServiceAccounts that exist; Services select pods that exist', () => {
    const configMaps = new Set(byKind('ConfigMap').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
    const accounts = new Set(byKind('ServiceAccount').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
    const workloads = [...byKind('Deployment'), ...byKind('DaemonSet')];
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      for (const v of pod.volumes ?? []) {
        // This app names no ConfigMap of its own (no CA bundles): every one mounted is generated.
        if (v.configMap) expect(configMaps).toContain(`${w.metadata.namespace}/${v.configMap.name}`);
      }
      if (pod.serviceAccountName) expect(accounts).toContain(`${w.metadata.namespace}/${pod.serviceAccountName}`);
    }
    for (const svc of byKind('Service')) {
      const selected = workloads.filter((w) => w.metadata.namespace === svc.metadata.namespace
        && Object.entries(svc.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
      expect(`${svc.metadata.name}: ${selected.length}`).toBe(`${svc.metadata.name}: 1`);
    }
  });

  test('the gateway\'s implicit parent is named after the gateway, and its ConfigMap is the one mounted', () => {
    const ds = byKind('DaemonSet')[0];
    const cm = byKind('ConfigMap').find((o) => o.data?.['config.json']);
    const volumes = ds.spec.template.spec.volumes.filter((v: any) => v.configMap);
    expect(volumes.map((v: any) => v.configMap.name)).toContain(cm.metadata.name);
    const config = JSON.parse(cm.data['config.json']);
    expect([config.parent.name, config.gateway.name]).toEqual([ds.metadata.name, ds.metadata.name]);
  });

  test('names are the same in a second synth of a freshly built app', () => {
    expect(names(Testing.synth(buildEdge()))).toEqual(names(objects));
  });

  test('the objects validate, with every reference resolved inside the set', () => {
    const result = validateObjects(objects);
    expect(result.messages).toEqual([]);
    expect(result.failed).toBe(0);
  });
});
