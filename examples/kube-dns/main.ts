// An egress gateway on a cluster that runs kube-dns (older GKE, some on-premises kubeadm): a
// stub domain for the egress suffix sends `<host>.egress.local` to a small CoreDNS at a fixed
// ClusterIP, which rewrites it to the gateway's Service. The kube-dns ConfigMap is owned here.
// Run: npx ts-node --project test/tsconfig.json examples/kube-dns/main.ts [outdir]
import { App, Chart } from 'cdk8s';
import { DnsFlavor, EgressGateway, TrafficPolicy } from '../../src';

export const NAMESPACE = 'egress';
/** A free address of the cluster's service range for the stub CoreDNS (kube-dns stub domains need an IP). */
export const STUB_CLUSTER_IP = '10.96.0.53';
export const UPSTREAM_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

/** Builds the app into `outdir`. */
export function buildApp(outdir: string): App {
  const app = new App({ outdir });
  const chart = new Chart(app, 'egress');
  const gateway = new EgressGateway(chart, 'Gateway', { namespace: NAMESPACE, trafficPolicy: TrafficPolicy.DENY });
  gateway.addExternalService('GitHub', { host: 'api.github.com' });
  gateway.addExternalService('Stripe', { host: 'api.stripe.com' });
  gateway.addDnsRewrite('Dns', {
    flavor: DnsFlavor.kubeDns({ clusterIp: STUB_CLUSTER_IP, upstreamNameservers: UPSTREAM_NAMESERVERS }),
  });
  return app;
}

if (require.main === module) {
  buildApp(process.argv[2] ?? 'dist/kube-dns').synth();
}
