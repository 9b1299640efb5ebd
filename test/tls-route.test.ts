import { Chart, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { EgressNetwork, RouteApiVersion, RouteBackend, TlsRoute } from '../src';
import { validateObjects } from './mesh/validate';
import { networkChart, synthRoute } from './util/route-chart';

const setup = networkChart;

function route(chart: Chart, name: string): any {
  return synthRoute(chart, 'TLSRoute', name);
}

describe('TlsRoute', () => {
  test('renders the seed\'s tls-egress route (v1alpha2, port 443, pass-through)', () => {
    const { chart, net } = setup();
    const r = new TlsRoute(chart, 'TlsEgress', { network: net, name: 'tls-egress', hostnames: ['httpbin.org'] });
    const obj = route(chart, 'tls-egress');
    expect(obj).toMatchSnapshot();
    expect(obj.apiVersion).toBe('gateway.networking.k8s.io/v1alpha2');
    expect(obj.spec).toEqual({
      hostnames: ['httpbin.org'],
      parentRefs: [{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', port: 443 }],
      rules: [{ backendRefs: [{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic' }] }],
    });
    expect(TlsRoute.DEFAULT_PORT).toBe(443);
    expect(r.apiVersion).toBe(RouteApiVersion.V1ALPHA2);
    expect(r._toSpec(2)).toEqual({
      group: 'gateway.networking.k8s.io',
      kind: 'TLSRoute',
      name: 'tls-egress',
      namespace: 'egress-test',
      order: 2,
      parentPort: 443,
      hostnames: ['httpbin.org'],
      rules: [{ name: undefined, matches: [], filters: [], backendRefs: [{ kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', weight: 1 }] }],
    });
  });

  test('v1alpha2 without hostnames allows every SNI (the guide\'s "all TLS" route)', () => {
    const { chart, net } = setup();
    const r = net.addTlsRoute('All', { name: 'all-tls' });
    expect(route(chart, 'all-tls').spec.hostnames).toBeUndefined();
    expect(r._toSpec(0).hostnames).toEqual([]);
  });

  test('v1 is selectable and renders with hostnames', () => {
    const { chart, net } = setup();
    net.addTlsRoute('V1', { name: 'v1', hostnames: ['*.github.com'], apiVersion: RouteApiVersion.V1, port: 8443, ruleName: 'github' });
    const obj = route(chart, 'v1');
    expect(obj.apiVersion).toBe('gateway.networking.k8s.io/v1');
    expect(obj.spec.parentRefs[0].port).toBe(8443);
    expect(obj.spec.rules).toEqual([{ name: 'github', backendRefs: [{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic' }] }]);
  });

  test('renders Service backends with weights', () => {
    const { chart, net } = setup();
    const svc = new kplus.Service(chart, 'Svc', { metadata: { name: 'tls-stand-in', namespace: 'shared' }, ports: [{ port: 443 }] });
    const r = net.addTlsRoute('S', { name: 's', hostnames: ['legacy.example.com'], backends: [RouteBackend.service(svc, { weight: 1 }), RouteBackend.passthrough({ weight: 9 })] });
    expect(route(chart, 's').spec.rules[0].backendRefs).toEqual([
      { kind: 'Service', name: 'tls-stand-in', namespace: 'shared', port: 443, weight: 1 },
      { group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic', weight: 9 },
    ]);
    expect(r._toSpec(0).rules[0].backendRefs[0]).toEqual({ kind: 'Service', name: 'tls-stand-in', namespace: 'shared', port: 443, weight: 1, host: 'tls-stand-in.shared.svc.cluster.local' });
  });

  test('its objects pass the strict CRD validator in both versions', () => {
    const { chart, net } = setup();
    net.addTlsRoute('A', { name: 'a', hostnames: ['httpbin.org', '*.example.com'], ruleName: 'r' });
    net.addTlsRoute('B', { name: 'b', hostnames: ['api.github.com'], apiVersion: RouteApiVersion.V1, backends: [RouteBackend.serviceRef('stand-in', { port: 443, weight: 2 })] });
    net.addTlsRoute('C', { name: 'c' });
    const result = validateObjects(Testing.synth(chart));
    expect(result.messages).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.passed).toBe(4);
  });

  test('throws when v1 has no hostnames', () => {
    const { net } = setup();
    expect(() => net.addTlsRoute('T', { apiVersion: RouteApiVersion.V1 }))
      .toThrow(/TlsRoute "test\/Net\/T": 'hostnames' \[\] must name at least one host for TLSRoute v1 \(it routes by the TLS SNI name\)/);
  });

  test('throws when hostnames are invalid for SNI routing', () => {
    const { net } = setup();
    expect(() => net.addTlsRoute('T', { hostnames: ['203.0.113.10', 'HttpBin.org', 'httpbin.org', 'httpbin.org'] }))
      .toThrow(/3 problems:[\s\S]*"203\.0\.113\.10" is an IP address[\s\S]*"HttpBin\.org" is not a valid hostname[\s\S]*'hostnames\[3\]' "httpbin\.org" is listed twice/);
  });

  test('throws when backends are empty or name another EgressNetwork', () => {
    const { chart, net } = setup();
    const other = new EgressNetwork(chart, 'Other', { name: 'other' });
    expect(() => net.addTlsRoute('E', { backends: [] })).toThrow(/'backends' \[\] is empty; a TLSRoute needs at least one backend/);
    expect(() => net.addTlsRoute('O', { backends: [RouteBackend.egressNetwork(other)] })).toThrow(/'backends\[0\]' "EgressNetwork egress-test\/other" is not this route's parent/);
  });

  test('throws when the port is outside 1-65535 or not a number', () => {
    const { chart, net } = setup();
    expect(() => net.addTlsRoute('P', { port: 0 })).toThrow(/'port' 0 must be an integer port in 1-65535/);
    expect(() => new TlsRoute(chart, 'Q', { network: net, port: Number.NaN })).toThrow(/'port' NaN must be an integer port/);
  });
});
