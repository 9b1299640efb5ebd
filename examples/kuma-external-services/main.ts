// Kuma's MeshExternalService examples as a cdk8s app: TCP, TCP with TLS, TCP with mTLS, HTTP,
// HTTPS, gRPC and gRPCS, each declared once as an ExternalService and rendered both for Kuma
// (MeshExternalService + HostnameGenerator) and for the egress gateway's proxy config.
// Run: npx ts-node --project test/tsconfig.json examples/kuma-external-services/main.ts [outdir]
import { App, Chart } from 'cdk8s';
import {
  CertificateSource, EgressGateway, ExternalServiceProtocol, KumaExternalService, TlsOrigination,
} from '../../src';

/**
 * One gateway per upstream security level. A gateway serves each host once, and Kuma's scenarios
 * reach the same hosts both in plaintext and over TLS (and tcpbin.com also over mTLS), so the
 * three levels cannot share one gateway.
 */
export const GATEWAY_NAMESPACES = { plaintext: 'egress-plaintext', tls: 'egress-tls', mtls: 'egress-mtls' } as const;

/**
 * The Secrets holding the mTLS client certificate and key, created out of band (never in the
 * repository). Each exists twice under the same name with the PEM under key `value`: in
 * kuma-system with type `system.kuma.io/secret` and label `kuma.io/mesh: default` (what Kuma
 * reads), and in the egress-mtls namespace (what the gateway mounts).
 */
export const CLIENT_CERT_SECRET = 'tcpbin-client-cert';
export const CLIENT_KEY_SECRET = 'tcpbin-client-key';

/** Builds the app into `outdir`; every ExternalService renders for Kuma and for its gateway. */
export function buildApp(outdir: string): App {
  const app = new App({ outdir });
  // One renderer for every service: mesh "default", objects in kuma-system, and a generator per
  // service naming it <name>.extsvc.mesh.local, as in Kuma's examples.
  const kuma = new KumaExternalService();

  // Plaintext all the way: the proxy (or sidecar) forwards what it receives.
  const plaintext = new EgressGateway(new Chart(app, 'plaintext'), 'Gateway', { name: 'egress-plaintext', namespace: GATEWAY_NAMESPACES.plaintext });
  // TCP: nc tcpbin.extsvc.mesh.local 4242 echoes back.
  plaintext.addExternalService('Tcpbin', {
    name: 'tcpbin', host: 'tcpbin.com', tls: TlsOrigination.disabled(),
    ports: [{ port: 4242, protocol: ExternalServiceProtocol.TCP }], renderers: [kuma],
  });
  // HTTP: curl http://httpbin.extsvc.mesh.local
  plaintext.addExternalService('Httpbin', {
    name: 'httpbin', host: 'httpbin.org', tls: TlsOrigination.disabled(),
    ports: [{ port: 80, protocol: ExternalServiceProtocol.HTTP }], renderers: [kuma],
  });
  // gRPC: grpcurl -plaintext grpcbin.extsvc.mesh.local:9000 list
  plaintext.addExternalService('Grpcbin', {
    name: 'grpcbin', host: 'grpcbin.test.k6.io', tls: TlsOrigination.disabled(),
    ports: [{ port: 9000, protocol: ExternalServiceProtocol.GRPC }], renderers: [kuma],
  });

  // Clients speak plaintext; TLS verified against the system roots is originated for them.
  const tls = new EgressGateway(new Chart(app, 'tls'), 'Gateway', { name: 'egress-tls', namespace: GATEWAY_NAMESPACES.tls });
  // TCP with TLS: the TLS port of tcpbin.com is 4243.
  tls.addExternalService('Tcpbin', {
    name: 'tcpbin-tls', host: 'tcpbin.com', tls: TlsOrigination.originate(),
    ports: [{ port: 4243, protocol: ExternalServiceProtocol.TCP, targetPort: 4243 }], renderers: [kuma],
  });
  // HTTPS: curl http://httpbin-tls.extsvc.mesh.local (port 80 in plaintext, 443 upstream).
  tls.addExternalService('Httpbin', {
    name: 'httpbin-tls', host: 'httpbin.org', tls: TlsOrigination.originate(),
    ports: [{ port: 80, protocol: ExternalServiceProtocol.HTTP, targetPort: 443 }], renderers: [kuma],
  });
  // gRPCS: grpcurl -plaintext grpcbin-tls.extsvc.mesh.local:9001 list (TLS on 9001 upstream).
  tls.addExternalService('Grpcbin', {
    name: 'grpcbin-tls', host: 'grpcbin.test.k6.io', tls: TlsOrigination.originate(),
    ports: [{ port: 9001, protocol: ExternalServiceProtocol.GRPC, targetPort: 9001 }], renderers: [kuma],
  });

  // TCP with mTLS: tcpbin.com asks for a client certificate on 4244.
  const mtls = new EgressGateway(new Chart(app, 'mtls'), 'Gateway', { name: 'egress-mtls', namespace: GATEWAY_NAMESPACES.mtls });
  mtls.addExternalService('Tcpbin', {
    name: 'tcpbin-mtls',
    host: 'tcpbin.com',
    tls: TlsOrigination.originate({
      clientCertificate: CertificateSource.fromSecret(CLIENT_CERT_SECRET, 'value'),
      clientKey: CertificateSource.fromSecret(CLIENT_KEY_SECRET, 'value'),
    }),
    ports: [{ port: 4244, protocol: ExternalServiceProtocol.TCP, targetPort: 4244 }],
    renderers: [kuma],
  });

  return app;
}

if (require.main === module) {
  buildApp(process.argv[2] ?? 'dist/kuma-external-services').synth();
}
