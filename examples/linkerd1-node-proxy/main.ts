// Linkerd 1's per-node proxy rebuilt: one egress proxy per node (a DaemonSet), used by the
// "hello" workload through `http_proxy`, that upgrades its plaintext calls to `http://world.example.com/`
// to verified mutual TLS with the CA, certificate and key distributed as a Secret. Plaintext
// never leaves the node; anything not declared is refused.
// Run: npx ts-node --project test/tsconfig.json examples/linkerd1-node-proxy/main.ts [outdir] [service|node-ip]
import { App, Chart, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  CertificateSource, EgressClientMode, EgressClientProxyAddress, EgressGateway, EgressNetwork, GatewayDeployment,
  TlsOrigination, TrafficPolicy,
} from '../../src';

export const GATEWAY_NAMESPACE = 'egress';
export const APP_NAMESPACE = 'hello';
/** The upstream the hello service calls, in plaintext, through its node's proxy. */
export const WORLD_HOST = 'world.example.com';
/** The Secret holding the CA, the mesh certificate and its key (the seed's certificates, as a Secret). */
export const CERTIFICATES_SECRET = 'mesh-certificates';
/** Linkerd 1's http_proxy port, kept so the seed's `http_proxy=$HOST_IP:4140` habit still works. */
export const HOST_PORT = 4140;
/** Pod and service ranges of the example cluster (kubeadm defaults); adjust to yours. */
export const CLUSTER_CIDRS = ['10.244.0.0/16', '10.96.0.0/12'];

/**
 * How hello finds its node's proxy: `service` (recommended) names the gateway Service, whose
 * `internalTrafficPolicy: Local` keeps the call on the node; `node-ip` is the seed's hostIP way,
 * `http://$(NODE_IP):4140` from the downward API, which needs the proxy on a host port.
 */
export type ClientPath = 'service' | 'node-ip';

/** Builds the example into `outdir`. */
export function buildApp(outdir: string, path: ClientPath = 'service'): App {
  const app = new App({ outdir });

  // One proxy per node. The hop from hello to it never leaves the node, so it needs no mesh
  // (Linkerd 2 injection off); TLS is originated by the proxy, as linkerd 1 did on each host.
  const egress = new Chart(app, 'egress');
  const gateway = new EgressGateway(egress, 'NodeProxy', {
    name: 'node-proxy',
    namespace: GATEWAY_NAMESPACE,
    serviceName: 'node-proxy',
    deployment: GatewayDeployment.NODE_LOCAL,
    hostPort: path === 'node-ip' ? HOST_PORT : undefined,
    linkerdInject: false,
    clusterCidrs: CLUSTER_CIDRS,
  });

  // The protocol upgrade: hello calls http://world.example.com/ (port 80); the proxy connects to
  // port 443 with TLS, verifies world's certificate against the mesh CA and presents the mesh
  // certificate, all three read from the Secret mounted into the proxy pods.
  gateway.addExternalService('World', {
    host: WORLD_HOST,
    tls: TlsOrigination.originate({
      caCertificate: CertificateSource.fromSecret(CERTIFICATES_SECRET, 'cacertificate.pem'),
      clientCertificate: CertificateSource.fromSecret(CERTIFICATES_SECRET, 'certificate.pem'),
      clientKey: CertificateSource.fromSecret(CERTIFICATES_SECRET, 'key.pem'),
    }),
  });

  // What may leave: world, in plaintext from the client's side, and nothing else (403 for any
  // other host, CONNECT tunnels included). The proxies enforce this from their ConfigMap; the
  // EgressNetwork and HTTPRoute objects are Linkerd 2's and only matter where it is installed,
  // so they get a chart (file) of their own.
  const network = new EgressNetwork(new Chart(app, 'policy'), 'Egress', {
    name: 'node-egress',
    namespace: GATEWAY_NAMESPACE,
    trafficPolicy: TrafficPolicy.DENY,
    gateway,
  });
  network.addHttpRoute('World', { name: 'world', port: 80, hostnames: [WORLD_HOST] });

  // The hello service: any HTTP client that honours http_proxy (curl here) calling world.
  const apps = new Chart(app, 'hello');
  new kplus.Namespace(apps, 'Namespace', { metadata: { name: APP_NAMESPACE } });
  const hello = new kplus.Deployment(apps, 'Hello', {
    metadata: { name: 'hello', namespace: APP_NAMESPACE },
    replicas: 2,
  });
  hello.addContainer({
    name: 'hello',
    image: 'curlimages/curl:8.10.1',
    command: ['sh', '-c', `while true; do curl -sS http://${WORLD_HOST}/; sleep 10; done`],
    securityContext: { user: 100, group: 101 },
    resources: {
      cpu: { request: kplus.Cpu.millis(10), limit: kplus.Cpu.millis(200) },
      memory: { request: Size.mebibytes(16), limit: Size.mebibytes(64) },
    },
  });
  gateway.configureClient(hello, {
    mode: EgressClientMode.FORWARD_PROXY,
    proxyAddress: path === 'node-ip' ? EgressClientProxyAddress.NODE_IP : EgressClientProxyAddress.SERVICE,
  });
  // The proxy is hello's only way out (DNS and the node's proxy, nothing else).
  gateway.restrictEgressOf(kplus.Namespaces.select(apps, 'HelloNamespace', { names: [APP_NAMESPACE] }));

  return app;
}

if (require.main === module) {
  const [outdir = 'dist/linkerd1-node-proxy', path = 'service'] = process.argv.slice(2);
  if (path !== 'service' && path !== 'node-ip') throw new Error(`client path must be service or node-ip, not ${JSON.stringify(path)}`);
  buildApp(outdir, path).synth();
}
