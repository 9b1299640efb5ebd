import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, Chart } from 'cdk8s';
import {
  CertificateSource, ExternalService, ExternalServiceProps, ExternalServiceProtocol, OsmEgress, OsmEgressProps, OsmMeshConfig,
  SubjectAltName, TlsOrigination, TlsVerification, TlsVersion,
} from '../src';
import { validatePath } from './mesh/validate';
import { synthExternalService } from './util/external-service-chart';
import { expectThrownMessage } from './util/thrown';

const CURL: OsmEgressProps = { sources: [{ serviceAccount: 'curl', namespace: 'curl' }] };

function synth(props: ExternalServiceProps, renderer = new OsmEgress(CURL)): any[] {
  return synthExternalService(props, renderer);
}

describe('OsmEgress', () => {
  test('HTTPS to httpbin.org: snapshot; the client speaks TLS to 443, matched by SNI', () => {
    const objs = synth({ host: 'httpbin.org', name: 'httpbin', namespace: 'curl' });
    expect(objs).toMatchSnapshot();
    expect(objs).toHaveLength(1);
    expect(objs[0]).toEqual({
      apiVersion: 'policy.openservicemesh.io/v1alpha1',
      kind: 'Egress',
      metadata: { name: 'httpbin', namespace: 'curl' },
      spec: {
        sources: [{ kind: 'ServiceAccount', name: 'curl', namespace: 'curl' }],
        hosts: ['httpbin.org'],
        ports: [{ number: 443, protocol: 'https' }],
      },
    });
  });

  test('the namespace defaults to the first source\'s (OSM monitors it) and can be set; several sources', () => {
    const [egress] = synth({ host: 'httpbin.org', namespace: 'apps' }, new OsmEgress({
      sources: [{ serviceAccount: 'curl', namespace: 'curl' }, { serviceAccount: 'worker', namespace: 'jobs' }], namespace: 'egress-policies',
    }));
    expect(egress.metadata.namespace).toBe('egress-policies');
    expect(egress.spec.sources.map((s: any) => `${s.namespace}/${s.name}`)).toEqual(['curl/curl', 'jobs/worker']);
    expect(synth({ host: 'httpbin.org', namespace: 'apps' })[0].metadata.namespace).toBe('curl');
  });

  test('plaintext HTTP and gRPC ports become http ports; HTTPRouteGroups become matches', () => {
    const [egress] = synth({
      host: 'httpbin.org',
      tls: TlsOrigination.disabled(),
      ports: [{ port: 80 }, { port: 9000, protocol: ExternalServiceProtocol.GRPC }],
    }, new OsmEgress({ ...CURL, httpRouteGroups: ['httpbin-get'] }));
    expect(egress.spec.ports).toEqual([{ number: 80, protocol: 'http' }, { number: 9000, protocol: 'http' }]);
    expect(egress.spec.matches).toEqual([{ apiGroup: 'specs.smi-spec.io/v1alpha4', kind: 'HTTPRouteGroup', name: 'httpbin-get' }]);
  });

  test('plaintext TCP with IPv4 endpoints: tcp port and ipAddresses', () => {
    const [egress] = synth({
      host: 'tcpbin.com', tls: TlsOrigination.disabled(), ports: [{ port: 4242, protocol: ExternalServiceProtocol.TCP }], endpoints: [{ address: '203.0.113.20' }],
    });
    expect(egress.spec.ports).toEqual([{ number: 4242, protocol: 'tcp' }]);
    expect(egress.spec.ipAddresses).toEqual(['203.0.113.20/32']);
  });

  test('TLS with a custom target port renders that port as https', () => {
    const [egress] = synth({ host: 'tcpbin.com', ports: [{ port: 4243, protocol: ExternalServiceProtocol.TCP, targetPort: 4243 }] });
    expect(egress.spec.ports).toEqual([{ number: 4243, protocol: 'https' }]);
  });

  describe('throws', () => {
    const expectThrow = (props: ExternalServiceProps, ...parts: (string | RegExp)[]) => {
      expectThrownMessage(() => synth(props), /^OsmEgress for ExternalService "test\/svc"/, ...parts);
    };
    test.each([
      ['tls.verification', TlsOrigination.originate({ verification: TlsVerification.skipAll() })],
      ['tls.minVersion', TlsOrigination.originate({ minVersion: TlsVersion.TLS13 })],
      ['tls.maxVersion', TlsOrigination.originate({ maxVersion: TlsVersion.TLS12 })],
      ['tls.caCertificate', TlsOrigination.originate({ caCertificate: CertificateSource.fromSecret('ca', 'ca.crt') })],
      ['tls.clientCertificate', TlsOrigination.originate({ clientCertificate: CertificateSource.fromSecret('c', 'tls.crt'), clientKey: CertificateSource.fromSecret('c', 'tls.key') })],
      ['tls.serverName', TlsOrigination.originate({ serverName: 'origin.httpbin.org' })],
      ['tls.subjectAltNames', TlsOrigination.originate({ subjectAltNames: [SubjectAltName.exact('httpbin.org')] })],
      ['tls.allowRenegotiation', TlsOrigination.originate({ allowRenegotiation: true })],
    ])('throws when %s is set (OSM does not originate TLS)', (field, tls) => {
      expectThrow({ host: 'httpbin.org', tls }, `'${field}'`, /OSM does not originate TLS/);
    });
    test('throws when a plaintext port is remapped', () => {
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.disabled(), ports: [{ port: 8080, targetPort: 80 }] }, '\'ports[0]\' {"port":8080,"targetPort":80}');
    });
    test('throws when plaintext TCP has no IPv4 endpoints', () => {
      expectThrow({ host: 'tcpbin.com', tls: TlsOrigination.disabled(), ports: [{ port: 4242, protocol: ExternalServiceProtocol.TCP }] }, '\'ports\' [4242]');
    });
    test('throws when an HTTPS service has endpoints', () => {
      expectThrow({ host: 'httpbin.org', endpoints: [{ address: '203.0.113.1' }] }, '\'endpoints\' ["203.0.113.1"]');
    });
    test('throws when retries are set', () => {
      expectThrow({ host: 'httpbin.org', retries: {} }, '\'retry\'');
    });
    test('throws when the renderer props are invalid', () => {
      expect(() => new OsmEgress({ sources: [] })).toThrow(/OsmEgress: 'sources' \[\] is empty/);
      expect(() => new OsmEgress({ sources: [{ serviceAccount: 'Curl', namespace: 'a.b' }], namespace: 'X', httpRouteGroups: ['ok', 'Not OK'] }))
        .toThrow(/4 problems[\s\S]*'sources\[0\].serviceAccount' "Curl"[\s\S]*'sources\[0\].namespace' "a.b"[\s\S]*'namespace' "X"[\s\S]*'httpRouteGroups\[1\]' "Not OK"/);
    });
  });

  test('a synthesised app with the MeshConfig passes the strict validator', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'osm-synth-'));
    try {
      const app = new App({ outdir });
      const chart = new Chart(app, 'osm');
      new OsmMeshConfig(chart, 'MeshConfig');
      const osm = new OsmEgress(CURL);
      new ExternalService(chart, 'httpbin', { host: 'httpbin.org', namespace: 'curl', renderers: [osm] });
      new ExternalService(chart, 'httpbin-plain', {
        host: 'httpbin.org', namespace: 'curl', tls: TlsOrigination.disabled(), renderers: [new OsmEgress({ ...CURL, httpRouteGroups: ['httpbin-get'] })],
      });
      new ExternalService(chart, 'tcpbin', {
        host: 'tcpbin.com',
        namespace: 'curl',
        tls: TlsOrigination.disabled(),
        ports: [{ port: 4242, protocol: ExternalServiceProtocol.TCP }],
        endpoints: [{ address: '203.0.113.20' }],
        renderers: [osm],
      });
      app.synth();
      const result = validatePath(outdir);
      expect(result.messages).toEqual([]);
      expect(result).toMatchObject({ passed: 4, failed: 0 });
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

test('clients: the sources as gateway clients, one ServiceAccount each', () => {
  const policy = new OsmEgress({ sources: [{ serviceAccount: 'curl', namespace: 'curl' }, { serviceAccount: 'ci', namespace: 'builds' }] });
  expect(policy.clients.map((c) => c._toSpec())).toEqual([
    { serviceAccount: { namespace: 'curl', name: 'curl' } },
    { serviceAccount: { namespace: 'builds', name: 'ci' } },
  ]);
});
