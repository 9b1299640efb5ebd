// Linkerd's "Managing egress traffic" walkthrough as a cdk8s app: an EgressNetwork in the
// egress-test namespace, first observing (Allow), then locked down (Deny) with routes that let
// httpbin.org/get and TLS to httpbin.org out and send all other plaintext HTTP to an in-cluster
// Service. Run: npx ts-node examples/linkerd-egress/main.ts [outdir] [--stage allow|deny] [--gateway]
import { App, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  EgressGateway, EgressNetwork, PathMatch, RouteBackend, TrafficPolicy,
} from '../../src';

/**
 * The walkthrough's two states of the same EgressNetwork. They are separate outputs because they
 * hold the same objects with different specs: apply `allow` first, watch the metrics, then `deny`.
 */
export type Stage = 'allow' | 'deny';

export const NAMESPACE = 'egress-test';
const INJECT = { 'linkerd.io/inject': 'enabled' };

/** Options of `buildApp()`. */
export interface BuildOptions {
  /**
   * Also render a cdk8s-egress EgressGateway in egress-test that enforces the same EgressNetwork
   * and its routes (plaintext on Service port 80, TLS passthrough by SNI on 443), declaring
   * httpbin.org so that TLS to it is originated and verified. Off: the guide's objects only.
   */
  readonly gateway?: boolean;
}

/** Builds the walkthrough at `stage` ('deny', the final state, unless told otherwise) into `outdir`. */
export function buildApp(outdir: string, stage: Stage = 'deny', options: BuildOptions = {}): App {
  const app = new App({ outdir });

  // Namespaces are cluster-scoped, so this chart has no namespace of its own.
  const nsChart = new Chart(app, 'namespace');
  new kplus.Namespace(nsChart, 'EgressTest', { metadata: { name: NAMESPACE } });

  // A meshed curl client to generate egress traffic from (kubectl exec ... curl http://httpbin.org/get).
  const clientChart = new Chart(app, 'client', { namespace: NAMESPACE });
  const client = new kplus.Pod(clientChart, 'Client', {
    metadata: { name: 'client', annotations: INJECT },
    securityContext: { ensureNonRoot: false },
  });
  client.addContainer({
    name: 'client',
    image: 'curlimages/curl',
    command: ['sh', '-c', 'sleep infinity'],
    securityContext: { ensureNonRoot: false, readOnlyRootFilesystem: false },
  });

  const egress = new Chart(app, 'egress', { namespace: NAMESPACE });
  const network = new EgressNetwork(egress, 'AllEgressTraffic', {
    name: 'all-egress-traffic',
    trafficPolicy: stage === 'allow' ? TrafficPolicy.ALLOW : TrafficPolicy.DENY,
  });
  if (options.gateway) {
    // The namespace is the guide's (nsChart), so the gateway does not create it again.
    const gateway = new EgressGateway(egress, 'Gateway', { namespace: NAMESPACE, createNamespace: false, tlsPassthrough: true, network });
    gateway.addExternalService('Httpbin', { host: 'httpbin.org' });
  }
  if (stage === 'allow') return app;

  // Plaintext HTTP may reach /get (on any host; the guide uses httpbin.org).
  network.addHttpRoute('HttpbinGet', {
    name: 'httpbin-get',
    port: 80,
    rules: [{ matches: [{ path: PathMatch.prefix('/get') }] }],
  });

  // TLS to httpbin.org goes through untouched, routed by the ClientHello's SNI.
  network.addTlsRoute('TlsEgress', {
    name: 'tls-egress',
    hostnames: ['httpbin.org'],
    port: 443,
    backends: [RouteBackend.passthrough()],
  });

  // Every other plaintext request is answered in the cluster by a stand-in.
  const internal = new Chart(app, 'internal-egress', { namespace: NAMESPACE });
  const deployment = new kplus.Deployment(internal, 'Deployment', {
    metadata: { name: 'internal-egress' },
    replicas: 1,
    select: false,
    podMetadata: { labels: { app: 'internal-egress' }, annotations: INJECT },
    securityContext: { ensureNonRoot: false },
  });
  deployment.select(kplus.LabelSelector.of({ labels: { app: 'internal-egress' } }));
  deployment.addContainer({
    name: 'legacy-app',
    image: 'buoyantio/bb:v0.0.5',
    command: ['sh', '-c'],
    args: ["/out/bb terminus --h1-server-port 80 --response-text 'You cannot go there right now' --fire-and-forget"],
    ports: [{ name: 'http-port', number: 80 }],
    // bb binds port 80 as root, as the guide's manifest runs it.
    securityContext: { ensureNonRoot: false, readOnlyRootFilesystem: false },
  });
  const service = new kplus.Service(internal, 'Service', {
    metadata: { name: 'internal-egress' },
    type: kplus.ServiceType.CLUSTER_IP,
    ports: [{ name: 'one', port: 80, targetPort: 80, protocol: kplus.Protocol.TCP }],
  });
  // The guide's selector, rather than the cdk8s address label a `selector: deployment` would use.
  service.selectLabel('app', 'internal-egress');

  network.addHttpRoute('UnencryptedHttp', {
    name: 'unencrypted-http',
    port: 80,
    rules: [{ backends: [RouteBackend.service(service, { port: 80 })] }],
  });
  return app;
}

/** `main.ts [outdir] [--stage allow|deny] [--gateway]`: synthesises one stage. */
function main(argv: readonly string[]): void {
  const stageAt = argv.indexOf('--stage');
  const stage = (stageAt >= 0 ? argv[stageAt + 1] : 'deny') as Stage;
  if (stage !== 'allow' && stage !== 'deny') throw new Error(`--stage must be allow or deny, not ${JSON.stringify(stage)}`);
  const positional = argv.filter((a, i) => !a.startsWith('--') && (stageAt < 0 || i !== stageAt + 1));
  const gateway = argv.includes('--gateway');
  buildApp(positional[0] ?? `dist/linkerd-egress${stage === 'allow' ? '-allow' : ''}`, stage, { gateway }).synth();
}

if (require.main === module) main(process.argv.slice(2));
