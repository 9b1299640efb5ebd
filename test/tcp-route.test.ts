import { Chart, Testing } from 'cdk8s';
import { EgressNetwork, RouteApiVersion, RouteBackend, TcpRoute } from '../src';
import { validateObjects } from './mesh/validate';
import { networkChart, synthRoute } from './util/route-chart';

const setup = networkChart;

function route(chart: Chart, name: string): any {
  return synthRoute(chart, 'TCPRoute', name);
}

describe('TcpRoute', () => {
  test('renders a TCPRoute v1alpha2 on one port of the EgressNetwork', () => {
    const { chart, net } = setup();
    const r = new TcpRoute(chart, 'Postgres', { network: net, name: 'postgres', port: 5432 });
    const obj = route(chart, 'postgres');
    expect(obj).toMatchSnapshot();
    expect(obj.apiVersion).toBe('gateway.networking.k8s.io/v1alpha2');
    expect(obj.spec).toEqual({
      parentRefs: [{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', port: 5432 }],
      rules: [{ backendRefs: [{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic' }] }],
    });
    expect(r._toSpec(1)).toEqual({
      group: 'gateway.networking.k8s.io',
      kind: 'TCPRoute',
      name: 'postgres',
      namespace: 'egress-test',
      order: 1,
      parentPort: 5432,
      hostnames: [],
      rules: [{ name: undefined, matches: [], filters: [], backendRefs: [{ kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', weight: 1 }] }],
    });
  });

  test('v1 is selectable; Service backends render with port and model host', () => {
    const { chart, net } = setup();
    const r = net.addTcpRoute('Redis', {
      name: 'redis',
      port: 6379,
      apiVersion: RouteApiVersion.V1,
      ruleName: 'cache',
      backends: [RouteBackend.serviceRef('redis-proxy', { port: 6379, namespace: 'cache' })],
    });
    const obj = route(chart, 'redis');
    expect(obj.apiVersion).toBe('gateway.networking.k8s.io/v1');
    expect(obj.spec.rules).toEqual([{ name: 'cache', backendRefs: [{ kind: 'Service', name: 'redis-proxy', namespace: 'cache', port: 6379 }] }]);
    expect(r._toSpec(0).rules[0].backendRefs).toEqual([{ kind: 'Service', name: 'redis-proxy', namespace: 'cache', port: 6379, weight: 1, host: 'redis-proxy.cache.svc.cluster.local' }]);
  });

  test('its objects pass the strict CRD validator in both versions', () => {
    const { chart, net } = setup();
    net.addTcpRoute('A', { name: 'a', port: 5432 });
    net.addTcpRoute('B', { name: 'b', port: 6379, apiVersion: RouteApiVersion.V1, backends: [RouteBackend.passthrough({ weight: 1 })] });
    const result = validateObjects(Testing.synth(chart));
    expect(result.messages).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.passed).toBe(3);
  });

  test('throws when the port is missing (JavaScript callers) or out of range', () => {
    const { chart, net } = setup();
    expect(() => new TcpRoute(chart, 'NoPort', { network: net } as any))
      .toThrow(/TcpRoute "test\/NoPort": 'port' \(unset\) is required for a TCPRoute attached to an EgressNetwork/);
    expect(() => net.addTcpRoute('Big', { port: 99999 })).toThrow(/'port' 99999 must be an integer port in 1-65535/);
  });

  test('throws when given hostnames, empty backends or another EgressNetwork', () => {
    const { chart, net } = setup();
    const other = new EgressNetwork(chart, 'Other', { name: 'other' });
    expect(() => new TcpRoute(chart, 'H', { network: net, port: 5432, hostnames: ['db.example.com'] } as any))
      .toThrow(/'hostnames' \["db\.example\.com"\] are not part of a TCPRoute/);
    expect(() => net.addTcpRoute('E', { port: 5432, backends: [] })).toThrow(/'backends' \[\] is empty; a TCPRoute needs at least one backend/);
    expect(() => net.addTcpRoute('O', { port: 5432, backends: [RouteBackend.egressNetwork(other)] })).toThrow(/is not this route's parent/);
  });
});
