import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, Chart, Duration, Testing } from 'cdk8s';
import {
  CertificateSource, EgressGateway, ExternalService, ExternalServiceProps, ExternalServiceProtocol, InjectedHeader,
  KumaExternalService, SubjectAltName, TlsOrigination, TlsVerification, TlsVersion,
} from '../src';
import { validatePath } from './mesh/validate';
import { synthExternalService } from './util/external-service-chart';
import { expectThrownMessage } from './util/thrown';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n';

function synth(props: ExternalServiceProps, renderer = new KumaExternalService()): any[] {
  return synthExternalService(props, renderer);
}
const mesOf = (objs: any[]) => objs.filter((o) => o.kind === 'MeshExternalService');
const tlsOf = (props: ExternalServiceProps) => {
  const mes = mesOf(synth(props));
  expect(mes).toHaveLength(1);
  return mes[0].spec.tls;
};

describe('KumaExternalService', () => {
  test('HTTPS to httpbin.org: snapshot, plus MeshExternalService and HostnameGenerator fields', () => {
    const objs = synth({ host: 'httpbin.org', name: 'httpbin' });
    expect(objs).toMatchSnapshot();
    expect(objs.map((o) => o.kind)).toEqual(['MeshExternalService', 'HostnameGenerator']);
    const [mes, hg] = objs;
    expect(mes.apiVersion).toBe('kuma.io/v1alpha1');
    expect(mes.metadata).toEqual({ name: 'httpbin', namespace: 'kuma-system', labels: { 'kuma.io/mesh': 'default', 'egress.cdk8s.io/external-service': 'httpbin' } });
    expect(mes.spec.match).toEqual({ type: 'HostnameGenerator', port: 80, protocol: 'http' });
    expect(mes.spec.endpoints).toEqual([{ address: 'httpbin.org', port: 443 }]);
    expect(mes.spec.tls).toEqual({ enabled: true, allowRenegotiation: false, version: { min: 'TLS12', max: 'TLSAuto' }, verification: { mode: 'Secured' } });
    expect(hg.metadata).toMatchObject({ name: 'httpbin', namespace: 'kuma-system' });
    expect(hg.spec).toEqual({
      selector: { meshExternalService: { matchLabels: { 'egress.cdk8s.io/external-service': 'httpbin' } } },
      template: '{{ .DisplayName }}.extsvc.mesh.local',
    });
  });

  test('mesh, system namespace and hostname template are configurable; the generator can be left out', () => {
    const objs = synth({ host: 'httpbin.org', name: 'httpbin' },
      new KumaExternalService({ mesh: 'payments', systemNamespace: 'kong-mesh-system', hostnameTemplate: '{{ .DisplayName }}.ext.internal' }));
    expect(objs[0].metadata.labels['kuma.io/mesh']).toBe('payments');
    expect(objs.every((o) => o.metadata.namespace === 'kong-mesh-system')).toBe(true);
    expect(objs[1].spec.template).toBe('{{ .DisplayName }}.ext.internal');
    expect(synth({ host: 'httpbin.org' }, new KumaExternalService({ hostnameGenerator: false })).map((o) => o.kind)).toEqual(['MeshExternalService']);
  });

  test('plaintext TCP renders no tls block and targets the same port', () => {
    const [mes] = synth({ host: 'tcpbin.com', name: 'tcpbin', ports: [{ port: 4242, protocol: ExternalServiceProtocol.TCP }], tls: TlsOrigination.disabled() });
    expect(mes.spec).toEqual({ match: { type: 'HostnameGenerator', port: 4242, protocol: 'tcp' }, endpoints: [{ address: 'tcpbin.com', port: 4242 }] });
  });

  test.each([
    ['Secured', TlsVerification.secured()], ['SkipSAN', TlsVerification.skipSan()], ['SkipCA', TlsVerification.skipCa()], ['SkipAll', TlsVerification.skipAll()],
  ])('verification mode %s maps one to one', (mode, verification) => {
    expect(tlsOf({ host: 'httpbin.org', tls: TlsOrigination.originate({ verification }) }).verification.mode).toBe(mode);
  });

  test('versions, renegotiation, serverName and Exact/Prefix SANs map one to one', () => {
    const tls = tlsOf({
      host: 'httpbin.org',
      tls: TlsOrigination.originate({
        minVersion: TlsVersion.TLS13,
        maxVersion: TlsVersion.TLS13,
        allowRenegotiation: true,
        serverName: 'origin.httpbin.org',
        subjectAltNames: [SubjectAltName.exact('httpbin.org'), SubjectAltName.prefix('spiffe://httpbin/')],
      }),
    });
    expect(tls.version).toEqual({ min: 'TLS13', max: 'TLS13' });
    expect(tls.allowRenegotiation).toBe(true);
    expect(tls.verification).toEqual({
      mode: 'Secured',
      serverName: 'origin.httpbin.org',
      subjectAltNames: [{ type: 'Exact', value: 'httpbin.org' }, { type: 'Prefix', value: 'spiffe://httpbin/' }],
    });
  });

  test('CA from a Secret or inline, client certificate and key from Secrets', () => {
    const fromSecrets = tlsOf({
      host: 'tcpbin.com',
      ports: [{ port: 4244, protocol: ExternalServiceProtocol.TCP, targetPort: 4244 }],
      tls: TlsOrigination.originate({
        caCertificate: CertificateSource.fromSecret('tcpbin-ca', 'value'),
        clientCertificate: CertificateSource.fromSecret('tcpbin-client-cert', 'value'),
        clientKey: CertificateSource.fromSecret('tcpbin-client-key', 'value'),
      }),
    }).verification;
    expect(fromSecrets).toEqual({
      mode: 'Secured', caCert: { secret: 'tcpbin-ca' }, clientCert: { secret: 'tcpbin-client-cert' }, clientKey: { secret: 'tcpbin-client-key' },
    });
    const inline = tlsOf({ host: 'httpbin.org', tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromInline(PEM) }) }).verification;
    expect(inline.caCert).toEqual({ inlineString: PEM });
  });

  test('endpoints with priorities and ports; the host stays the SNI', () => {
    const [mes] = synth({ host: 'api.example.com', endpoints: [{ address: '203.0.113.10' }, { address: 'backup.example.com', port: 8443, priority: 3 }] });
    expect(mes.spec.endpoints).toEqual([{ address: '203.0.113.10', port: 443, priority: 0 }, { address: 'backup.example.com', port: 8443, priority: 3 }]);
    expect(mes.spec.tls.verification.serverName).toBe('api.example.com');
  });

  test('one MeshExternalService per port, named <name>-<port>, under one generator', () => {
    const objs = synth({ host: 'grpcbin.test.k6.io', name: 'grpcbin', ports: [{ port: 9000, protocol: ExternalServiceProtocol.GRPC, targetPort: 9001 }, { port: 9443, protocol: ExternalServiceProtocol.GRPC, targetPort: 9001 }] });
    expect(mesOf(objs).map((m) => m.metadata.name)).toEqual(['grpcbin-9000', 'grpcbin-9443']);
    expect(objs.filter((o) => o.kind === 'HostnameGenerator')).toHaveLength(1);
  });

  test('objects live under the service as Kuma/MeshExternalService and Kuma/HostnameGenerator', () => {
    const chart = Testing.chart();
    const svc = new ExternalService(chart, 'httpbin', { host: 'httpbin.org', renderers: [new KumaExternalService()] });
    expect(svc.node.findChild('Kuma').node.children.map((c) => c.node.id)).toEqual(['MeshExternalService', 'HostnameGenerator']);
  });

  test('renders alongside an EgressGateway that serves the same service', () => {
    const chart = Testing.chart();
    const gw = new EgressGateway(chart, 'gw');
    gw.addExternalService('httpbin', { host: 'httpbin.org', renderers: [new KumaExternalService()] });
    const kinds = Testing.synth(chart).map((o: any) => o.kind);
    expect(kinds).toEqual(expect.arrayContaining(['Deployment', 'ConfigMap', 'MeshExternalService', 'HostnameGenerator']));
  });

  describe('throws', () => {
    const expectThrow = (props: ExternalServiceProps, ...parts: (string | RegExp)[]) => {
      expectThrownMessage(() => synth(props), /^KumaExternalService for ExternalService "test\/svc"/, ...parts);
    };
    test('throws when the host is a wildcard', () => {
      expectThrow({ host: '*.example.com' }, '\'host\' "*.example.com"', /MeshPassthrough/);
    });
    test('throws when the CA comes from a ConfigMap', () => {
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromConfigMap('ca', 'ca.crt') }) }, '\'tls.caCertificate\'', /ConfigMap/);
    });
    test('throws when a Secret key is not "value"', () => {
      expectThrow({
        host: 'httpbin.org',
        tls: TlsOrigination.originate({ clientCertificate: CertificateSource.fromSecret('client', 'tls.crt'), clientKey: CertificateSource.fromSecret('client', 'tls.key') }),
      }, /2 problems/, '\'tls.clientCertificate\' "Secret client key tls.crt"', '\'tls.clientKey\' "Secret client key tls.key"');
    });
    test('throws when retries are set', () => {
      expectThrow({ host: 'httpbin.org', retries: { maxRetries: 2 } }, '\'retry\'');
    });
    test('throws when timeouts are set', () => {
      expectThrow({ host: 'httpbin.org', timeouts: { connect: Duration.seconds(2) } }, '\'timeouts\' {"connectMs":2000}');
    });
    test('throws when headers are injected', () => {
      expectThrow({ host: 'httpbin.org', injectHeaders: [InjectedHeader.fromSecret('Authorization', 'token', 'value')] }, '\'injectHeaders\' ["Authorization"]');
    });
    test('throws when the connection pool is tuned', () => {
      expectThrow({ host: 'httpbin.org', connectionPool: { maxConnections: 4 } }, '\'pool\'');
    });
    test('throws when an endpoint priority is above 128', () => {
      expectThrow({ host: 'httpbin.org', endpoints: [{ address: 'a.httpbin.org', priority: 129 }] }, '\'endpoints[0].priority\' 129');
    });
    test('throws when the renderer props are invalid', () => {
      expect(() => new KumaExternalService({ mesh: 'Bad_Mesh', systemNamespace: '', hostnameTemplate: 'static.name' }))
        .toThrow(/KumaExternalService: 3 problems:[\s\S]*'mesh' "Bad_Mesh"[\s\S]*'systemNamespace' ""[\s\S]*'hostnameTemplate' "static.name"/);
      expect(() => new KumaExternalService({ hostnameGenerator: false, hostnameTemplate: '{{ .DisplayName }}.x' })).toThrow(/'hostnameTemplate'.*no effect/);
    });
  });

  test('a synthesised app passes the strict validator', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'kuma-synth-'));
    try {
      const app = new App({ outdir });
      const chart = new Chart(app, 'kuma');
      const kuma = new KumaExternalService();
      new ExternalService(chart, 'httpbin', { host: 'httpbin.org', renderers: [kuma] });
      new ExternalService(chart, 'tcpbin', {
        host: 'tcpbin.com',
        ports: [{ port: 4244, protocol: ExternalServiceProtocol.TCP, targetPort: 4244 }],
        endpoints: [{ address: 'tcpbin.com' }, { address: '203.0.113.9', priority: 1 }],
        tls: TlsOrigination.originate({
          minVersion: TlsVersion.TLS12,
          maxVersion: TlsVersion.TLS13,
          verification: TlsVerification.skipSan(),
          allowRenegotiation: true,
          caCertificate: CertificateSource.fromInline(PEM),
          clientCertificate: CertificateSource.fromSecret('tcpbin-client-cert', 'value'),
          clientKey: CertificateSource.fromSecret('tcpbin-client-key', 'value'),
        }),
        renderers: [kuma],
      });
      new ExternalService(chart, 'grpcbin', {
        host: 'grpcbin.test.k6.io',
        ports: [
          { port: 9000, protocol: ExternalServiceProtocol.GRPC, targetPort: 9001 },
          { port: 9443, protocol: ExternalServiceProtocol.HTTP2, targetPort: 9001 },
        ],
        tls: TlsOrigination.originate({ serverName: 'grpcbin.test.k6.io', subjectAltNames: [SubjectAltName.exact('grpcbin.test.k6.io'), SubjectAltName.prefix('grpcbin')] }),
        renderers: [kuma],
      });
      app.synth();
      const result = validatePath(outdir);
      expect(result.messages).toEqual([]);
      expect(result).toMatchObject({ passed: 7, failed: 0 });
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
