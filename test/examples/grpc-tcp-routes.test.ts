// examples/grpc-tcp-routes: a GRPCRoute and a TCPRoute on a Deny EgressNetwork, enforced by the
// gateway; the synthesised config decides as the routes say, in the real decide().
import { rmSync } from 'fs';
import { expectValidManifests, synthToTmp } from './synth';
import { buildApp, DB_HOST, GRPC_HOST, NAMESPACE } from '../../examples/grpc-tcp-routes/main';
import type { ProxyConfig } from '../../src/model/proxy-config';
import { decide } from '../../src/proxy/decide';
import { compilePolicy } from '../../src/proxy/policy';
import { proxyConfigMap } from '../e2e/helpers';

describe('examples/grpc-tcp-routes', () => {
  const { outdir, objects } = synthToTmp('grpc-tcp-routes-', (dir) => buildApp(dir));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('passes validate-manifests with nothing failed', () => {
    expectValidManifests(outdir, objects);
  });

  test('a GRPCRoute for the hello service with a Linkerd retry, and a TCPRoute for the database port', () => {
    const grpc = objects.find((o) => o.kind === 'GRPCRoute');
    const tcp = objects.find((o) => o.kind === 'TCPRoute');
    const parent = { group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'egress', namespace: NAMESPACE };
    expect(grpc.spec).toEqual({
      hostnames: [GRPC_HOST],
      parentRefs: [{ ...parent, port: 9001 }],
      rules: [{ matches: [{ method: { type: 'Exact', service: 'hello.HelloService' } }] }],
    });
    expect(grpc.metadata.annotations).toEqual({ 'retry.linkerd.io/grpc': 'unavailable', 'retry.linkerd.io/limit': '2' });
    expect(tcp.apiVersion).toBe('gateway.networking.k8s.io/v1alpha2');
    expect(tcp.spec.parentRefs).toEqual([{ ...parent, port: 5432 }]);
  });

  test('the gateway\'s config decides as the routes say', () => {
    const config = JSON.parse(proxyConfigMap(objects).data['config.json']) as ProxyConfig;
    const policy = compilePolicy(config);
    const grpc = (service: string) => decide(policy, {
      protocol: 'grpc', host: GRPC_HOST, port: 9001, method: 'POST', path: `/${service}/SayHello`, headers: { 'content-type': 'application/grpc' },
    });
    expect(grpc('hello.HelloService')).toMatchObject({ action: 'allow', route: { kind: 'GRPCRoute', name: 'grpcbin-hello' } });
    expect(grpc('grpcbin.GRPCBin')).toMatchObject({ action: 'deny' });
    expect(decide(policy, { protocol: 'tcp', host: DB_HOST, port: 5432 })).toMatchObject({ action: 'allow', route: { kind: 'TCPRoute', name: 'partner-db' } });
    expect(config.listeners.tcp).toEqual([{ port: 10000, externalService: 'partner-db', servicePort: 5432 }]);
  });
});
