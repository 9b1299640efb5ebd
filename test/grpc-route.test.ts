import { Chart, Duration, Testing } from 'cdk8s';
import {
  EgressNetwork, GrpcMethodMatch, GrpcRetryStatus, GrpcRoute, HeaderMatch, RouteBackend, RouteFilter,
} from '../src';
import { validateObjects } from './mesh/validate';
import { networkChart, synthRoute } from './util/route-chart';

const setup = networkChart;

function route(chart: Chart, name: string): any {
  return synthRoute(chart, 'GRPCRoute', name);
}

describe('GrpcRoute', () => {
  test('renders a GRPCRoute v1 on the EgressNetwork', () => {
    const { chart, net } = setup();
    const r = new GrpcRoute(chart, 'Greeter', {
      network: net,
      name: 'greeter',
      port: 50051,
      hostnames: ['grpc.example.com'],
      rules: [{
        name: 'say-hello',
        matches: [
          { method: GrpcMethodMatch.exact({ service: 'helloworld.Greeter', method: 'SayHello' }), headers: [HeaderMatch.exact('x-tenant', 'a')] },
          { method: GrpcMethodMatch.regex({ service: 'helloworld\\..*' }) },
        ],
        filters: [RouteFilter.requestHeaderModifier({ set: { 'x-egress': 'linkerd' } })],
      }],
    });
    const obj = route(chart, 'greeter');
    expect(obj).toMatchSnapshot();
    expect(obj.apiVersion).toBe('gateway.networking.k8s.io/v1');
    expect(obj.spec.parentRefs).toEqual([{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', port: 50051 }]);
    expect(obj.spec.hostnames).toEqual(['grpc.example.com']);
    expect(obj.spec.rules[0].matches).toEqual([
      { method: { type: 'Exact', service: 'helloworld.Greeter', method: 'SayHello' }, headers: [{ type: 'Exact', name: 'x-tenant', value: 'a' }] },
      { method: { type: 'RegularExpression', service: 'helloworld\\..*' } },
    ]);
    expect(r.port).toBe(50051);
    const spec = r._toSpec(7);
    expect(spec).toMatchObject({ kind: 'GRPCRoute', name: 'greeter', order: 7, parentPort: 50051, hostnames: ['grpc.example.com'] });
    expect(spec.rules[0].matches[0]).toEqual({
      grpcMethod: { type: 'Exact', service: 'helloworld.Greeter', method: 'SayHello' },
      headers: [{ type: 'Exact', name: 'x-tenant', value: 'a' }],
      queryParams: [],
    });
    expect(spec.rules[0].backendRefs).toEqual([{ kind: 'EgressNetwork', name: 'all-egress-traffic', namespace: 'egress-test', weight: 1 }]);
    expect(spec.rules[0].filters).toEqual([{ type: 'RequestHeaderModifier', headerModifier: { set: [{ name: 'x-egress', value: 'linkerd' }], add: [], remove: [] } }]);
  });

  test('without a port or rules it covers every port and every request', () => {
    const { chart, net } = setup();
    const r = net.addGrpcRoute('All', { name: 'all' });
    const obj = route(chart, 'all');
    expect(obj.spec.parentRefs[0].port).toBeUndefined();
    expect(obj.spec.rules).toEqual([{}]);
    const spec = r._toSpec(0);
    expect(spec.parentPort).toBeUndefined();
    expect(spec.rules).toHaveLength(1);
    expect(spec.rules[0].matches).toEqual([]);
  });

  test('renders Linkerd gRPC retries and timeouts as annotations and in the model', () => {
    const { chart, net } = setup();
    const r = net.addGrpcRoute('R', {
      name: 'retrying',
      retry: { on: [GrpcRetryStatus.UNAVAILABLE, GrpcRetryStatus.DEADLINE_EXCEEDED], limit: 2 },
      timeouts: { request: Duration.seconds(3) },
    });
    expect(route(chart, 'retrying').metadata.annotations).toEqual({
      'retry.linkerd.io/grpc': 'unavailable,deadline-exceeded',
      'retry.linkerd.io/limit': '2',
      'timeout.linkerd.io/request': '3s',
    });
    const rule = r._toSpec(0).rules[0];
    expect(rule.retry).toMatchObject({ maxRetries: 2, statusCodes: [] });
    // unavailable 14, deadline-exceeded 4: the proxy retries Trailers-Only answers with these
    expect(rule.retry!.grpcStatusCodes).toEqual([14, 4]);
    expect(rule.requestTimeoutMs).toBe(3000);
  });

  test('rules added with addRule() are rendered', () => {
    const { chart, net } = setup();
    const r = net.addGrpcRoute('L', { name: 'later', port: 50051 });
    r.addRule({ matches: [{ method: GrpcMethodMatch.exact({ service: 'a.B' }) }], backends: [RouteBackend.serviceRef('grpc-stub', { port: 50051 })] });
    expect(route(chart, 'later').spec.rules).toEqual([{
      matches: [{ method: { type: 'Exact', service: 'a.B' } }],
      backendRefs: [{ kind: 'Service', name: 'grpc-stub', port: 50051 }],
    }]);
    expect(r._toSpec(0).rules[0].backendRefs[0].host).toBe('grpc-stub.egress-test.svc.cluster.local');
  });

  test('its objects pass the strict CRD validator', () => {
    const { chart, net } = setup();
    net.addGrpcRoute('G', {
      name: 'g',
      port: 50051,
      retry: { on: [GrpcRetryStatus.UNAVAILABLE] },
      rules: [{
        name: 'r',
        matches: [{ method: GrpcMethodMatch.exact({ service: 'helloworld.Greeter', method: 'SayHello' }), headers: [HeaderMatch.regex('x-a', 'b.*')] }],
        filters: [RouteFilter.requestHeaderModifier({ add: { 'x-b': '1' } }), RouteFilter.responseHeaderModifier({ remove: ['x-c'] })],
        backends: [RouteBackend.passthrough({ weight: 2 })],
      }],
    });
    const result = validateObjects(Testing.synth(chart));
    expect(result.messages).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.passed).toBe(2);
  });

  test('throws when a filter is unsupported on a GRPCRoute', () => {
    const { net } = setup();
    expect(() => net.addGrpcRoute('G', { rules: [{ filters: [RouteFilter.requestRedirect({ hostname: 'example.com' })] }] }))
      .toThrow(/GrpcRoute "test\/Net\/G": 'rules\[0\]\.filters\[0\]' "RequestRedirect" is not supported on a GRPCRoute/);
  });

  test('throws when a method match is empty, malformed or an unsupported regex', () => {
    const { net } = setup();
    expect(() => net.addGrpcRoute('G', {
      rules: [{
        matches: [
          { method: GrpcMethodMatch.exact({}) },
          { method: GrpcMethodMatch.exact({ service: 'helloworld/Greeter', method: 'Say-Hello' }) },
          { method: GrpcMethodMatch.regex({ method: '(?<=Say)Hello' }) },
        ],
      }],
    })).toThrow(/4 problems:[\s\S]*matches\[0\]\.method' \{\} names neither service nor method[\s\S]*matches\[1\]\.method\.service' "helloworld\/Greeter" is not a fully qualified gRPC service name[\s\S]*matches\[1\]\.method\.method' "Say-Hello" is not a gRPC method name[\s\S]*matches\[2\]\.method\.method' "\(\?<=Say\)Hello" uses a lookbehind/);
  });

  test('throws when a backend is a different EgressNetwork, or the port is out of range', () => {
    const { chart, net } = setup();
    const other = new EgressNetwork(chart, 'Other', { name: 'other' });
    expect(() => net.addGrpcRoute('G', { port: 65536, rules: [{ backends: [RouteBackend.egressNetwork(other)] }] }))
      .toThrow(/2 problems:[\s\S]*'port' 65536 must be an integer port in 1-65535[\s\S]*'rules\[0\]\.backends\[0\]' "EgressNetwork egress-test\/other" is not this route's parent/);
  });

  test('throws when rules exceed the CRD limit', () => {
    const { net } = setup();
    expect(() => net.addGrpcRoute('G', { rules: Array.from({ length: 17 }, () => ({})) }))
      .toThrow(/'rules\[16\]' "\(rule\)" exceeds the Gateway API limit of 16 rules per GRPCRoute/);
  });
});
