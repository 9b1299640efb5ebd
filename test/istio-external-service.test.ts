import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, Chart } from 'cdk8s';
import {
  CertificateSource, ExternalService, ExternalServiceProps, ExternalServiceProtocol, IstioExternalService,
  SubjectAltName, TlsOrigination, TlsVerification, TlsVersion,
} from '../src';
import { validatePath } from './mesh/validate';
import { synthExternalService } from './util/external-service-chart';
import { expectThrownMessage } from './util/thrown';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n';

function synth(props: ExternalServiceProps, renderer = new IstioExternalService()): any[] {
  return synthExternalService(props, renderer);
}
const byKind = (objs: any[], kind: string) => objs.find((o) => o.kind === kind);
const tlsOf = (props: ExternalServiceProps) => byKind(synth(props), 'DestinationRule').spec.trafficPolicy.portLevelSettings[0].tls;

describe('IstioExternalService', () => {
  test('HTTPS to httpbin.org: snapshot; plaintext client port 80, TLS originated to 443', () => {
    const objs = synth({ host: 'httpbin.org', name: 'httpbin', namespace: 'apps' });
    expect(objs).toMatchSnapshot();
    expect(objs.map((o) => o.kind)).toEqual(['ServiceEntry', 'DestinationRule']);
    const [se, dr] = objs;
    expect(se.apiVersion).toBe('networking.istio.io/v1');
    expect(se.metadata).toEqual({ name: 'httpbin', namespace: 'apps' });
    expect(se.spec).toEqual({
      hosts: ['httpbin.org'], location: 'MESH_EXTERNAL', resolution: 'DNS', ports: [{ number: 80, name: 'http-80', protocol: 'HTTP', targetPort: 443 }],
    });
    expect(dr.spec).toEqual({ host: 'httpbin.org', trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, tls: { mode: 'SIMPLE', sni: 'httpbin.org' } }] } });
  });

  test('plaintext renders a ServiceEntry only', () => {
    const objs = synth({ host: 'tcpbin.com', tls: TlsOrigination.disabled(), ports: [{ port: 4242, protocol: ExternalServiceProtocol.TCP }] });
    expect(objs.map((o) => o.kind)).toEqual(['ServiceEntry']);
    expect(objs[0].spec.ports).toEqual([{ number: 4242, name: 'tcp-4242', protocol: 'TCP' }]);
  });

  test.each([
    [ExternalServiceProtocol.HTTP, 'HTTP'], [ExternalServiceProtocol.HTTP2, 'HTTP2'], [ExternalServiceProtocol.GRPC, 'GRPC'], [ExternalServiceProtocol.TCP, 'TCP'],
  ])('protocol %s maps to %s', (protocol, istio) => {
    expect(synth({ host: 'grpcbin.test.k6.io', ports: [{ port: 9001, protocol, targetPort: 9001 }] })[0].spec.ports[0].protocol).toBe(istio);
  });

  test('Secured sets no skip; SkipAll sets insecureSkipVerify', () => {
    expect(tlsOf({ host: 'httpbin.org', tls: TlsOrigination.originate({ verification: TlsVerification.secured() }) })).toEqual({ mode: 'SIMPLE', sni: 'httpbin.org' });
    expect(tlsOf({ host: 'httpbin.org', tls: TlsOrigination.originate({ verification: TlsVerification.skipAll() }) }).insecureSkipVerify).toBe(true);
  });

  test('serverName becomes sni and Exact SANs become subjectAltNames; TLS12/AUTO versions are accepted', () => {
    const tls = tlsOf({
      host: 'httpbin.org',
      tls: TlsOrigination.originate({ minVersion: TlsVersion.TLS12, maxVersion: TlsVersion.AUTO, serverName: 'origin.httpbin.org', subjectAltNames: [SubjectAltName.exact('httpbin.org')] }),
    });
    expect(tls).toEqual({ mode: 'SIMPLE', sni: 'origin.httpbin.org', subjectAltNames: ['httpbin.org'] });
  });

  test('client certificate, key and CA from one Secret: MUTUAL with credentialName', () => {
    const tls = tlsOf({
      host: 'tcpbin.com',
      ports: [{ port: 4244, protocol: ExternalServiceProtocol.TCP, targetPort: 4244 }],
      tls: TlsOrigination.originate({
        caCertificate: CertificateSource.fromSecret('tcpbin-client', 'ca.crt'),
        clientCertificate: CertificateSource.fromSecret('tcpbin-client', 'tls.crt'),
        clientKey: CertificateSource.fromSecret('tcpbin-client', 'tls.key'),
      }),
    });
    expect(tls).toEqual({ mode: 'MUTUAL', sni: 'tcpbin.com', credentialName: 'tcpbin-client' });
  });

  test('CA alone from a Secret: SIMPLE with credentialName', () => {
    expect(tlsOf({ host: 'httpbin.org', tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromSecret('private-ca', 'cacert') }) }).credentialName).toBe('private-ca');
  });

  test('endpoints: STATIC for IPs, DNS for names, endpoint ports per port name', () => {
    const [se] = synth({ host: 'api.example.com', endpoints: [{ address: '203.0.113.4', port: 8443 }] });
    expect(se.spec.resolution).toBe('STATIC');
    expect(se.spec.endpoints).toEqual([{ address: '203.0.113.4', ports: { 'http-80': 8443 } }]);
    expect(synth({ host: 'api.example.com', endpoints: [{ address: 'eu.example.com' }] })[0].spec.resolution).toBe('DNS');
  });

  test('wildcard hosts resolve NONE', () => {
    const [se, dr] = synth({ host: '*.example.com', ports: [{ port: 443, targetPort: 443 }] });
    expect(se.spec.resolution).toBe('NONE');
    expect(dr.spec.trafficPolicy.portLevelSettings[0].tls).toEqual({ mode: 'SIMPLE' });
  });

  test('namespace and exportTo are configurable', () => {
    const objs = synth({ host: 'httpbin.org', namespace: 'apps' }, new IstioExternalService({ namespace: 'mesh-egress', exportTo: ['.'] }));
    expect(objs.every((o) => o.metadata.namespace === 'mesh-egress' && o.spec.exportTo[0] === '.')).toBe(true);
  });

  describe('throws', () => {
    const expectThrow = (props: ExternalServiceProps, ...parts: (string | RegExp)[]) => {
      expectThrownMessage(() => synth(props), /^IstioExternalService for ExternalService "test\/svc"/, ...parts);
    };
    test.each([
      ['SkipCA', TlsVerification.skipCa()], ['SkipSAN', TlsVerification.skipSan()],
    ])('throws when verification is %s', (mode, verification) => {
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.originate({ verification }) }, `'tls.verification' "${mode}"`);
    });
    test('throws when TLS versions are pinned', () => {
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.originate({ minVersion: TlsVersion.TLS13, maxVersion: TlsVersion.TLS13 }) },
        '\'tls.minVersion\' "TLS13"', '\'tls.maxVersion\' "TLS13"');
    });
    test('throws when renegotiation is allowed', () => {
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.originate({ allowRenegotiation: true }) }, '\'tls.allowRenegotiation\' true');
    });
    test('throws when a SAN is a prefix', () => {
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.originate({ subjectAltNames: [SubjectAltName.prefix('httpbin')] }) }, '\'tls.subjectAltNames[0]\' "Prefix httpbin"');
    });
    test('throws when the CA is inline or from a ConfigMap', () => {
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromInline(PEM) }) }, '\'tls.caCertificate\' "inline PEM"');
      expectThrow({ host: 'httpbin.org', tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromConfigMap('ca', 'ca.crt') }) }, '\'tls.caCertificate\' "ConfigMap ca key ca.crt"');
    });
    test('throws when the client certificate and key are in different Secrets', () => {
      expectThrow({
        host: 'httpbin.org',
        tls: TlsOrigination.originate({ clientCertificate: CertificateSource.fromSecret('cert', 'tls.crt'), clientKey: CertificateSource.fromSecret('key', 'tls.key') }),
      }, /several Secrets/);
    });
    test('throws when endpoint priorities differ', () => {
      expectThrow({ host: 'httpbin.org', endpoints: [{ address: 'a.httpbin.org' }, { address: 'b.httpbin.org', priority: 1 }] }, '\'endpoints[].priority\' [0,1]');
    });
    test('throws when retries and pool tuning are set', () => {
      expectThrow({ host: 'httpbin.org', connectionPool: { maxConnections: 1 }, retries: {} }, /2 problems/, '\'retry\'', '\'pool\'');
    });
    test('throws when the renderer props are invalid', () => {
      expect(() => new IstioExternalService({ namespace: 'Apps', exportTo: ['ok', 'not ok'] }))
        .toThrow(/IstioExternalService: 2 problems:[\s\S]*'namespace' "Apps"[\s\S]*'exportTo\[1\]' "not ok"/);
    });
  });

  test('a synthesised app passes the strict validator', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'istio-synth-'));
    try {
      const app = new App({ outdir });
      const chart = new Chart(app, 'istio');
      const istio = new IstioExternalService();
      new ExternalService(chart, 'httpbin', { host: 'httpbin.org', namespace: 'apps', renderers: [istio] });
      new ExternalService(chart, 'tcpbin', {
        host: 'tcpbin.com',
        namespace: 'apps',
        ports: [{ port: 4244, protocol: ExternalServiceProtocol.TCP, targetPort: 4244 }],
        endpoints: [{ address: '203.0.113.4' }],
        tls: TlsOrigination.originate({
          verification: TlsVerification.skipAll(),
          clientCertificate: CertificateSource.fromSecret('tcpbin-client', 'tls.crt'),
          clientKey: CertificateSource.fromSecret('tcpbin-client', 'tls.key'),
        }),
        renderers: [istio],
      });
      new ExternalService(chart, 'wild', { host: '*.example.com', namespace: 'apps', tls: TlsOrigination.disabled(), renderers: [istio] });
      app.synth();
      const result = validatePath(outdir);
      expect(result.messages).toEqual([]);
      expect(result).toMatchObject({ passed: 5, failed: 0 });
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
