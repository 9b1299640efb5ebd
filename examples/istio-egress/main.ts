// The same ExternalServices rendered for Istio: a ServiceEntry per service (clients call the
// declared plaintext port) and, where TLS is originated, a DestinationRule making the sidecar
// originate it (SIMPLE, or MUTUAL with a client certificate Secret), next to the egress gateway.
// Run: npx ts-node --project test/tsconfig.json examples/istio-egress/main.ts [outdir]
import { App, Chart } from 'cdk8s';
import {
  CertificateSource, EgressGateway, ExternalServiceProtocol, IstioExternalService, TlsOrigination,
} from '../../src';

export const NAMESPACE = 'egress';
/** Created out of band in the client namespace (Istio reads credentialName there): tls.crt, tls.key, ca.crt. */
export const PARTNER_SECRET = 'partner-mtls';

/** Builds the app into `outdir`. */
export function buildApp(outdir: string): App {
  const app = new App({ outdir });
  const chart = new Chart(app, 'egress', { namespace: NAMESPACE });
  const gateway = new EgressGateway(chart, 'Gateway', { namespace: NAMESPACE, linkerdInject: false });
  const istio = new IstioExternalService({ exportTo: ['.', 'apps'] });

  // HTTPS origination: clients call http://httpbin.org (port 80), the sidecar speaks TLS to 443.
  gateway.addExternalService('Httpbin', {
    name: 'httpbin', host: 'httpbin.org', ports: [{ port: 80, protocol: ExternalServiceProtocol.HTTP, targetPort: 443 }], renderers: [istio],
  });
  // Mutual TLS with a partner API, certificate, key and CA from one Secret.
  gateway.addExternalService('Partner', {
    name: 'partner',
    host: 'api.partner.example',
    tls: TlsOrigination.originate({
      caCertificate: CertificateSource.fromSecret(PARTNER_SECRET, 'ca.crt'),
      clientCertificate: CertificateSource.fromSecret(PARTNER_SECRET, 'tls.crt'),
      clientKey: CertificateSource.fromSecret(PARTNER_SECRET, 'tls.key'),
    }),
    renderers: [istio],
  });
  // A plaintext TCP service: a ServiceEntry only.
  gateway.addExternalService('Smtp', {
    name: 'smtp', host: 'smtp.partner.example', tls: TlsOrigination.disabled(), ports: [{ port: 25, protocol: ExternalServiceProtocol.TCP }], renderers: [istio],
  });
  return app;
}

if (require.main === module) {
  buildApp(process.argv[2] ?? 'dist/istio-egress').synth();
}
