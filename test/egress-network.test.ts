import { Chart, Duration, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  EgressGateway, EgressNetwork, EgressNetworkCidr, EnforcementMode, GrpcMethodMatch, GrpcRetryStatus, GrpcRoute, HeaderMatch, HttpMethod,
  HttpRetryStatus, HttpRoute, PathMatch, QueryParamMatch, RedirectPath, RedirectScheme, RouteBackend, RouteFilter, TcpRoute, TlsRoute,
  TrafficPolicy,
} from '../src';
import { expectThrownMessage, thrownMessage } from './util/thrown';
import { validateConfig } from '../src/proxy/config';

function chart(namespace?: string): Chart {
  return new Chart(Testing.app(), 'test', namespace ? { namespace } : {});
}

function objects(c: Chart, kind?: string): any[] {
  const all = Testing.synth(c);
  return kind ? all.filter((o) => o.kind === kind) : all;
}

describe('EgressNetwork', () => {
  test('renders the seed\'s EgressNetwork', () => {
    const c = chart('egress-test');
    new EgressNetwork(c, 'AllEgressTraffic', { name: 'all-egress-traffic', trafficPolicy: TrafficPolicy.ALLOW });
    const out = objects(c);
    expect(out).toMatchSnapshot();
    expect(out).toHaveLength(1);
    expect(out[0]).toEqual({
      apiVersion: 'policy.linkerd.io/v1alpha1',
      kind: 'EgressNetwork',
      metadata: { name: 'all-egress-traffic', namespace: 'egress-test' },
      spec: { trafficPolicy: 'Allow' },
    });
  });

  test('defaults: Allow, the chart namespace or "default", a generated DNS name', () => {
    const withNs = chart('team-a');
    const a = new EgressNetwork(withNs, 'Net');
    expect(a.namespace).toBe('team-a');
    expect(a.trafficPolicy).toBe(TrafficPolicy.ALLOW);
    expect(a.enforcement).toBe(EnforcementMode.ENFORCE);
    expect(a.name).toMatch(/^test-net-c8[0-9a-f]+$/);
    expect(objects(withNs)[0].spec).toEqual({ trafficPolicy: 'Allow' });

    const noNs = chart();
    expect(new EgressNetwork(noNs, 'Net').namespace).toBe('default');
  });

  test('global: true puts the network in Linkerd\'s global egress namespace', () => {
    const c = chart('egress-test');
    const net = new EgressNetwork(c, 'Net', { global: true, trafficPolicy: TrafficPolicy.DENY });
    expect(EgressNetwork.GLOBAL_NAMESPACE).toBe('linkerd-egress');
    expect(net.namespace).toBe('linkerd-egress');
    expect(objects(c)[0].metadata.namespace).toBe('linkerd-egress');
    // a custom global namespace is just a namespace
    expect(new EgressNetwork(c, 'Custom', { namespace: 'my-egress' }).namespace).toBe('my-egress');
  });

  test('renders networks with exceptions, including ones added after construction', () => {
    const c = chart('egress-test');
    const net = new EgressNetwork(c, 'Net', {
      name: 'public',
      trafficPolicy: TrafficPolicy.DENY,
      networks: [EgressNetworkCidr.of('0.0.0.0/0', { except: ['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16', '169.254.169.254'] })],
    });
    net.addNetwork(EgressNetworkCidr.of('2001:db8::/32'));
    const spec = objects(c)[0].spec;
    expect(spec).toMatchSnapshot();
    expect(spec.trafficPolicy).toBe('Deny');
    expect(spec.networks).toEqual([
      { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16', '169.254.169.254'] },
      { cidr: '2001:db8::/32' },
    ]);
    expect(net.destinationNetworks.map((n) => n.cidr)).toEqual(['0.0.0.0/0', '2001:db8::/32']);
  });

  test('_renderParent states the parent as the proxy config does', () => {
    const c = chart('egress-test');
    const net = new EgressNetwork(c, 'Net', {
      name: 'all-egress-traffic',
      trafficPolicy: TrafficPolicy.DENY,
      enforcement: EnforcementMode.REPORT_ONLY,
      networks: [EgressNetworkCidr.of('203.0.113.0/24', { except: ['203.0.113.7/32'] })],
    });
    expect(net._renderParent()).toEqual({
      group: 'policy.linkerd.io',
      kind: 'EgressNetwork',
      name: 'all-egress-traffic',
      namespace: 'egress-test',
      trafficPolicy: 'Deny',
      networks: [{ cidr: '203.0.113.0/24', except: ['203.0.113.7/32'] }],
      mode: 'ReportOnly',
    });
    expect(new EgressNetwork(c, 'Open')._renderParent()).toMatchObject({ trafficPolicy: 'Allow', networks: [], mode: 'Enforce' });
  });

  test('addXRoute() returns the route constructs, attached in declaration order', () => {
    const c = chart('egress-test');
    const net = new EgressNetwork(c, 'Net', { name: 'all-egress-traffic' });
    const http = net.addHttpRoute('Get', { name: 'httpbin-get' });
    const tls = net.addTlsRoute('Tls', { name: 'tls-egress', hostnames: ['httpbin.org'] });
    const grpc = net.addGrpcRoute('Grpc', { name: 'grpc', port: 50051 });
    const tcp = net.addTcpRoute('Pg', { name: 'pg', port: 5432 });
    expect(http).toBeInstanceOf(HttpRoute);
    expect(tls).toBeInstanceOf(TlsRoute);
    expect(grpc).toBeInstanceOf(GrpcRoute);
    expect(tcp).toBeInstanceOf(TcpRoute);
    const routes = net._renderRoutes();
    expect(routes.map((r) => [r.kind, r.name, r.order, r.parentPort])).toEqual([
      ['HTTPRoute', 'httpbin-get', 0, 80],
      ['TLSRoute', 'tls-egress', 1, 443],
      ['GRPCRoute', 'grpc', 2, 50051],
      ['TCPRoute', 'pg', 3, 5432],
    ]);
    expect(objects(c).map((o) => o.kind)).toEqual(['EgressNetwork', 'HTTPRoute', 'TLSRoute', 'GRPCRoute', 'TCPRoute']);
  });

  test('a route constructed elsewhere attaches to the network it names', () => {
    const c = chart('egress-test');
    const net = new EgressNetwork(c, 'Net', { name: 'n' });
    new HttpRoute(c, 'Elsewhere', { network: net, name: 'elsewhere' });
    expect(net._renderRoutes().map((r) => r.name)).toEqual(['elsewhere']);
  });

  test('gateway: attaches the network to the EgressGateway', () => {
    const c = chart('egress-test');
    const gateway = new EgressGateway(c, 'Gateway');
    const net = new EgressNetwork(c, 'Net', { name: 'n', trafficPolicy: TrafficPolicy.DENY, gateway });
    expect(gateway.network).toBe(net);
    net.addHttpRoute('Get', { name: 'get' });
    const config = gateway._renderConfig();
    expect(config.parent).toMatchObject({ name: 'n', namespace: 'egress-test', trafficPolicy: 'Deny' });
    expect(config.routes.map((r) => r.name)).toEqual(['get']);
  });

  test('the proxy\'s config boundary accepts the parent and every kind of route it renders', () => {
    const c = chart('egress-test');
    const gateway = new EgressGateway(c, 'Gateway');
    const net = new EgressNetwork(c, 'Net', {
      name: 'all-egress-traffic',
      trafficPolicy: TrafficPolicy.DENY,
      enforcement: EnforcementMode.REPORT_ONLY,
      networks: [EgressNetworkCidr.of('0.0.0.0/0', { except: ['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16'] })],
      gateway,
    });
    net.addHttpRoute('Get', {
      name: 'httpbin-get',
      hostnames: ['httpbin.org'],
      retry: { on: [HttpRetryStatus.GATEWAY_ERROR], limit: 2, timeout: Duration.seconds(1) },
      rules: [
        {
          matches: [{ path: PathMatch.regex('/get.*'), method: HttpMethod.GET, headers: [HeaderMatch.exact('x-a', '1')], queryParams: [QueryParamMatch.exact('q', 'x')] }],
          filters: [RouteFilter.requestHeaderModifier({ set: { 'x-b': '2' } }), RouteFilter.responseHeaderModifier({ remove: ['server'] })],
          timeout: Duration.seconds(10),
          backendTimeout: Duration.seconds(5),
        },
        { matches: [{ path: PathMatch.prefix('/old') }], filters: [RouteFilter.requestRedirect({ scheme: RedirectScheme.HTTPS, path: RedirectPath.replacePrefixMatch('/new') })] },
        { backends: [RouteBackend.serviceRef('internal-egress', { port: 80, weight: 3 }), RouteBackend.passthrough()] },
      ],
    });
    net.addGrpcRoute('Grpc', {
      name: 'grpc',
      port: 50051,
      retry: { on: [GrpcRetryStatus.UNAVAILABLE] },
      rules: [{ matches: [{ method: GrpcMethodMatch.exact({ service: 'helloworld.Greeter' }) }] }],
    });
    net.addTlsRoute('Tls', { name: 'tls-egress', hostnames: ['httpbin.org'] });
    net.addTcpRoute('Pg', { name: 'pg', port: 5432 });
    const config = JSON.parse(JSON.stringify(gateway._renderConfig()));
    const result = validateConfig(config);
    expect(result.ok ? [] : result.problems).toEqual([]);
    expect(config.parent).toEqual(net._renderParent());
    expect(config.routes).toEqual(JSON.parse(JSON.stringify(net._renderRoutes())));
    expect(config.routes.map((r: any) => r.name)).toEqual(['httpbin-get', 'grpc', 'tls-egress', 'pg']);
  });

  test('accepts a network that cuts the cluster networks out with except', () => {
    const c = chart();
    expect(() => new EgressNetwork(c, 'Net', {
      clusterNetworks: ['10.0.0.0/8'],
      networks: [EgressNetworkCidr.of('0.0.0.0/0', { except: ['10.0.0.0/8'] })],
    })).not.toThrow();
    expect(() => new EgressNetwork(c, 'Wide', {
      networks: [EgressNetworkCidr.of('0.0.0.0/0', { except: ['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16'] })],
    })).not.toThrow();
    expect(EgressNetwork.LINKERD_DEFAULT_CLUSTER_NETWORKS).toEqual(['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16', 'fd00::/8']);
  });

  test('throws when a network overlaps the declared cluster networks', () => {
    const c = chart();
    expect(() => new EgressNetwork(c, 'Net', {
      clusterNetworks: ['10.96.0.0/12', '10.244.0.0/16'],
      networks: [EgressNetworkCidr.of('10.0.0.0/8')],
    })).toThrow(/EgressNetwork "test\/Net": 2 problems:\n {2}- 'networks\[0\]\.cidr' "10\.0\.0\.0\/8" overlaps the cluster network "10\.96\.0\.0\/12"; Linkerd refuses .*add "10\.96\.0\.0\/12" to except/);
  });

  test('throws when a network overlaps Linkerd\'s default cluster networks', () => {
    expect(() => new EgressNetwork(chart(), 'Net', { networks: [EgressNetworkCidr.of('0.0.0.0/0')] }))
      .toThrow(/overlaps the cluster network "10\.0\.0\.0\/8"/);
  });

  test('throws when addNetwork() adds an overlapping network', () => {
    const net = new EgressNetwork(chart(), 'Net', { clusterNetworks: ['192.168.0.0/16'] });
    expect(() => net.addNetwork(EgressNetworkCidr.of('192.168.1.0/24'))).toThrow(/'networks\[0\]\.cidr' "192\.168\.1\.0\/24" overlaps the cluster network "192\.168\.0\.0\/16"/);
    expect(net.destinationNetworks).toHaveLength(0);
  });

  test('throws when a cidr is invalid or has host bits set', () => {
    expect(() => new EgressNetwork(chart(), 'Net', { networks: [EgressNetworkCidr.of('203.0.113.0/33')] }))
      .toThrow(/'networks\[0\]\.cidr' "203\.0\.113\.0\/33" is not a valid CIDR/);
    expect(() => new EgressNetwork(chart(), 'Net', { networks: [EgressNetworkCidr.of('203.0.113.5/24')] }))
      .toThrow(/host bits are set beyond \/24; did you mean "203\.0\.113\.0\/24"/);
    expect(() => new EgressNetwork(chart(), 'Net', { networks: [EgressNetworkCidr.of('api.example.com')] }))
      .toThrow(/is not a valid CIDR/);
  });

  test('throws when an except entry lies outside its cidr', () => {
    expect(() => new EgressNetwork(chart(), 'Net', {
      networks: [EgressNetworkCidr.of('203.0.113.0/24', { except: ['198.51.100.0/24', 'not-an-ip'] })],
    })).toThrow(/'networks\[0\]\.except\[0\]' "198\.51\.100\.0\/24" is not inside the network's cidr "203\.0\.113\.0\/24"[\s\S]*'networks\[0\]\.except\[1\]' "not-an-ip" is not a valid CIDR or IP address/);
  });

  test('throws when a network is listed twice', () => {
    const net = new EgressNetwork(chart(), 'Net', { networks: [EgressNetworkCidr.of('203.0.113.0/24')] });
    expect(() => net.addNetwork(EgressNetworkCidr.of('203.0.113.0/24', { except: ['203.0.113.1'] })))
      .toThrow(/'networks\[1\]\.cidr' "203\.0\.113\.0\/24" is already a network of this EgressNetwork; merge the two entries/);
    expect(() => new EgressNetwork(chart(), 'Twice', { networks: [EgressNetworkCidr.of('2001:db8::/32'), EgressNetworkCidr.of('2001:db8::/32')] }))
      .toThrow(/'networks\[1\]\.cidr' "2001:db8::\/32" is already a network/);
  });

  test('throws when a cluster network is invalid', () => {
    expect(() => new EgressNetwork(chart(), 'Net', { clusterNetworks: ['10.0.0.0'] }))
      .toThrow(/'clusterNetworks\[0\]' "10\.0\.0\.0" is not a valid CIDR \(missing prefix length/);
  });

  test('throws when global contradicts namespace, and when names are not DNS names', () => {
    expect(() => new EgressNetwork(chart(), 'Net', { global: true, namespace: 'egress-test', name: 'All_Egress' }))
      .toThrow(/2 problems:[\s\S]*'name' "All_Egress" is not a DNS subdomain[\s\S]*'namespace' "egress-test" contradicts 'global: true'/);
    expect(() => new EgressNetwork(chart(), 'Net', { namespace: 'Egress.Test' })).toThrow(/'namespace' "Egress\.Test" is not a DNS label \(a namespace: [^)]*\); use e\.g\. "egress-test"/);
  });

  test('throws when a route id is used twice', () => {
    const net = new EgressNetwork(chart(), 'Net');
    net.addHttpRoute('Get');
    expect(() => net.addTlsRoute('Get')).toThrow(/EgressNetwork "test\/Net": addTlsRoute\('Get'\) "Get" is already used by "test\/Net\/Get"/);
  });

  test('throws when two routes of one kind share a name and namespace', () => {
    const net = new EgressNetwork(chart('egress-test'), 'Net');
    net.addHttpRoute('A', { name: 'get' });
    expect(() => net.addHttpRoute('B', { name: 'get' })).toThrow(/HTTPRoute "test\/Net\/B": 'name' "get" is already used by HTTPRoute "test\/Net\/A" in namespace "egress-test"/);
    // another kind or namespace is another object
    expect(() => net.addTlsRoute('C', { name: 'get' })).not.toThrow();
    expect(() => net.addHttpRoute('D', { name: 'get', namespace: 'other' })).not.toThrow();
  });
});

describe('mistakes across Apps and charts', () => {
  test('throws when a route is created in another App than its EgressNetwork, for every route kind', () => {
    const network = new EgressNetwork(chart('a'), 'Net');
    const other = chart('b');
    const makers: Array<[string, () => unknown]> = [
      ['HTTPRoute', () => new HttpRoute(other, 'Http', { network })],
      ['GRPCRoute', () => new GrpcRoute(other, 'Grpc', { network, hostnames: ['grpc.example.com'] })],
      ['TLSRoute', () => new TlsRoute(other, 'Tls', { network, hostnames: ['example.com'] })],
      ['TCPRoute', () => new TcpRoute(other, 'Tcp', { network, port: 5432 })],
    ];
    const methods: Record<string, string> = { HTTPRoute: 'addHttpRoute', GRPCRoute: 'addGrpcRoute', TLSRoute: 'addTlsRoute', TCPRoute: 'addTcpRoute' };
    for (const [kind, make] of makers) {
      expectThrownMessage(make,
        new RegExp(`^${kind.replace('Route', '')}Route "test/\\w+": 'network' "test/Net" belongs to another cdk8s App`, 'i'),
        'the EgressNetwork it names, and the gateway that enforces its rules, are written to the other App\'s',
        `network.${methods[kind]}(...)`);
    }
    // Nothing was attached to the network: its App's gateway config would not carry the route.
    const gateway = new EgressGateway(network.node.scope as Chart, 'Gw', { network });
    expect(gateway._renderConfig().routes).toEqual([]);
  });

  test('throws when a route backend is a Service of another App', () => {
    const network = new EgressNetwork(chart('a'), 'Net');
    const foreign = new kplus.Service(chart('b'), 'Stub', { ports: [{ port: 80 }] });
    expectThrownMessage(() => network.addHttpRoute('Http', { rules: [{ backends: [RouteBackend.service(foreign)] }] }),
      /^HttpRoute "test\/Net\/Http": 'rules\[0\]\.backends\[0\]' "test\/Stub" belongs to another cdk8s App/, /RouteBackend\.serviceRef\(name, \{ port \}\)/);
  });

  test('throws when a gateway attaches an EgressNetwork of another App', () => {
    const network = new EgressNetwork(chart('a'), 'Net');
    expectThrownMessage(() => new EgressGateway(chart('b'), 'Gw', { network }),
      /^EgressGateway "test\/Gw": 'network' EgressNetwork "test\/Net" belongs to another cdk8s App/, /attach a network of this App/);
  });

  test('throws at synth when a Deny gateway in the chart leaves an EgressNetwork unattached', () => {
    const c = chart('egress');
    new EgressGateway(c, 'Gw', { trafficPolicy: TrafficPolicy.DENY });
    const network = new EgressNetwork(c, 'Net');
    network.addHttpRoute('Get', { hostnames: ['httpbin.org'] });
    expectThrownMessage(() => Testing.synth(c),
      /EgressNetwork "test\/Net": 'gateway' \(unset\) leaves this network attached to no gateway/,
      /EgressGateway "test\/Gw" in the same chart has trafficPolicy Deny and no network/,
      /refuses every host but its 0 declared service\(s\), and the 1 route\(s\) of this network never reach it/,
      /gateway\.attachNetwork\(network\)/, /meshOnly: true/);
  });

  test('an EgressNetwork a Deny gateway leaves alone is fine when attached elsewhere, meshOnly, in another chart, or next to an Allow gateway', () => {
    const app = Testing.app();
    const a = new Chart(app, 'a');
    new EgressGateway(a, 'Deny', { trafficPolicy: TrafficPolicy.DENY });
    const attached = new EgressNetwork(a, 'Attached');
    new EgressGateway(new Chart(app, 'b'), 'Other', { network: attached, namespace: 'other' });
    new EgressNetwork(a, 'Mesh', { meshOnly: true });
    const elsewhere = new Chart(app, 'c');
    new EgressNetwork(elsewhere, 'Net');
    const allow = new Chart(app, 'd');
    new EgressGateway(allow, 'Allow');
    new EgressNetwork(allow, 'Net');
    for (const c of [a, elsewhere, allow]) expect(thrownMessage(() => Testing.synth(c))).toBe('');
  });

  test('throws when meshOnly is combined with a gateway, or a gateway attaches a meshOnly network', () => {
    const c = chart('egress');
    const gateway = new EgressGateway(c, 'Gw');
    expectThrownMessage(() => new EgressNetwork(c, 'Both', { meshOnly: true, gateway }),
      /EgressNetwork "test\/Both": 'meshOnly' true contradicts 'gateway' EgressGateway "test\/Gw"/, /remove meshOnly/);
    const mesh = new EgressNetwork(c, 'Mesh', { meshOnly: true });
    expectThrownMessage(() => gateway.attachNetwork(mesh), /EgressGateway "test\/Gw": 'network' EgressNetwork "test\/Mesh" has meshOnly: true/);
  });
});
