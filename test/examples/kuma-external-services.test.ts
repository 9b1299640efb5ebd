import { rmSync } from 'fs';
import { expectValidManifests, synthToTmp } from './synth';
import { buildApp, CLIENT_CERT_SECRET, CLIENT_KEY_SECRET, GATEWAY_NAMESPACES } from '../../examples/kuma-external-services/main';

describe('examples/kuma-external-services', () => {
  let outdir: string;
  let objects: any[];
  beforeAll(() => {
    ({ outdir, objects } = synthToTmp('kuma-example-', buildApp));
  });
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  const mes = (name: string) => {
    const found = objects.filter((o) => o.kind === 'MeshExternalService' && o.metadata.name === name);
    expect(found).toHaveLength(1);
    return found[0];
  };
  const proxyConfig = (namespace: string) => {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.namespace === namespace);
    expect(cm).toBeDefined();
    return JSON.parse(cm.data['config.json']);
  };

  test('passes validate-manifests with nothing failed', () => {
    expectValidManifests(outdir, objects);
  });

  test('renders Kuma\'s seven scenarios as MeshExternalServices, each with its HostnameGenerator', () => {
    const rows = objects.filter((o) => o.kind === 'MeshExternalService').map((o) => [
      o.metadata.name, o.spec.match.port, o.spec.match.protocol, `${o.spec.endpoints[0].address}:${o.spec.endpoints[0].port}`, o.spec.tls?.enabled ?? false,
    ]);
    expect(rows).toEqual(expect.arrayContaining([
      ['tcpbin', 4242, 'tcp', 'tcpbin.com:4242', false],
      ['httpbin', 80, 'http', 'httpbin.org:80', false],
      ['grpcbin', 9000, 'grpc', 'grpcbin.test.k6.io:9000', false],
      ['tcpbin-tls', 4243, 'tcp', 'tcpbin.com:4243', true],
      ['httpbin-tls', 80, 'http', 'httpbin.org:443', true],
      ['grpcbin-tls', 9001, 'grpc', 'grpcbin.test.k6.io:9001', true],
      ['tcpbin-mtls', 4244, 'tcp', 'tcpbin.com:4244', true],
    ]));
    expect(rows).toHaveLength(7);
    const generators = objects.filter((o) => o.kind === 'HostnameGenerator');
    expect(generators.map((g) => g.spec.selector.meshExternalService.matchLabels['egress.cdk8s.io/external-service']).sort())
      .toEqual(rows.map((r) => r[0]).sort());
    expect(generators.every((g) => g.spec.template === '{{ .DisplayName }}.extsvc.mesh.local')).toBe(true);
    expect(objects.filter((o) => o.apiVersion === 'kuma.io/v1alpha1').every((o) => o.metadata.namespace === 'kuma-system')).toBe(true);
  });

  test('the mTLS scenario reads the client certificate and key from Kuma Secrets', () => {
    expect(mes('tcpbin-mtls').spec.tls.verification).toEqual({
      mode: 'Secured', clientCert: { secret: CLIENT_CERT_SECRET }, clientKey: { secret: CLIENT_KEY_SECRET },
    });
  });

  test('each scenario is also in its gateway\'s proxy config, with the same TLS decision', () => {
    const served = (ns: string) => proxyConfig(ns).externalServices
      .map((s: any) => [s.name, s.host, s.ports[0].port, s.ports[0].targetPort, s.tls.enabled]);
    expect(served(GATEWAY_NAMESPACES.plaintext)).toEqual([
      ['tcpbin', 'tcpbin.com', 4242, 4242, false], ['httpbin', 'httpbin.org', 80, 80, false], ['grpcbin', 'grpcbin.test.k6.io', 9000, 9000, false],
    ]);
    expect(served(GATEWAY_NAMESPACES.tls)).toEqual([
      ['tcpbin-tls', 'tcpbin.com', 4243, 4243, true], ['httpbin-tls', 'httpbin.org', 80, 443, true], ['grpcbin-tls', 'grpcbin.test.k6.io', 9001, 9001, true],
    ]);
    const [mtls] = proxyConfig(GATEWAY_NAMESPACES.mtls).externalServices;
    expect(mtls.tls.clientCertFile).toMatch(new RegExp(`${CLIENT_CERT_SECRET}/value$`));
    expect(mtls.tls.clientKeyFile).toMatch(new RegExp(`${CLIENT_KEY_SECRET}/value$`));
  });
});
