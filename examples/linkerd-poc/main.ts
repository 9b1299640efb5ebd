// The seed's Linkerd proof of concept rebuilt: an egress gateway that originates TLS, a DNS rule
// sending `<host>.egress.local` to it (anchored, answer rewritten back), and a meshed client
// namespace whose only way out is the gateway. Outside the cluster `.egress.local` resolves
// nowhere, so a plaintext call that escapes the mesh fails instead of leaking.
// Run: npx ts-node --project test/tsconfig.json examples/linkerd-poc/main.ts [outdir] [coredns|coredns-custom|kube-dns]
import { App, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { DnsFlavor, DnsRewrite, EgressGateway, IDnsFlavor } from '../../src';

export const CLIENT_NAMESPACE = 'apps';
export const GATEWAY_NAMESPACE = 'egress';
/** Pod and service ranges of the example cluster (kubeadm defaults); adjust to yours. */
export const CLUSTER_CIDRS = ['10.244.0.0/16', '10.96.0.0/12'];

/** Which DNS the cluster runs, and so how the rewrite is delivered. */
export type DnsChoice = 'coredns' | 'coredns-custom' | 'kube-dns';

function dnsFlavor(choice: DnsChoice): IDnsFlavor {
  switch (choice) {
    // The whole coredns ConfigMap: kubeadm's Corefile with the rewrite in its root block.
    case 'coredns': return DnsFlavor.corednsConfigMap();
    // k3s and AKS: a key in coredns-custom, imported into the managed Corefile.
    case 'coredns-custom': return DnsFlavor.corednsCustom();
    // The seed's kube-dns.yml: a stub domain served by a small CoreDNS at a fixed ClusterIP.
    case 'kube-dns': return DnsFlavor.kubeDns({ clusterIp: '10.96.0.53' });
  }
}

/** Builds the proof of concept into `outdir`. */
export function buildApp(outdir: string, dns: DnsChoice = 'coredns'): App {
  const app = new App({ outdir });

  // The gateway, meshed by Linkerd (its default), originating verified TLS to api.github.com:
  // clients call http://api.github.com.egress.local/ and Linkerd mTLSes the hop to the gateway.
  const egress = new Chart(app, 'egress');
  const gateway = new EgressGateway(egress, 'Gateway', { namespace: GATEWAY_NAMESPACE, clusterCidrs: CLUSTER_CIDRS });
  gateway.addExternalService('GitHub', { host: 'api.github.com' });

  // DNS in a chart of its own (dist/.../dns.k8s.yaml): it changes cluster-wide configuration in
  // kube-system, which some teams apply separately. `gateway.addDnsRewrite()` does the same
  // inside the gateway's chart.
  new DnsRewrite(new Chart(app, 'dns'), 'Dns', {
    flavor: dnsFlavor(dns),
    serviceName: gateway.serviceName,
    serviceNamespace: gateway.namespaceName,
    suffixes: gateway.suffixes,
  });

  // The client namespace: meshed, and locked down so the gateway is its only way out.
  const clients = new Chart(app, 'clients');
  new kplus.Namespace(clients, 'Namespace', {
    metadata: { name: CLIENT_NAMESPACE, annotations: { 'linkerd.io/inject': 'enabled' } },
  });
  const client = new kplus.Deployment(clients, 'Client', {
    metadata: { name: 'client', namespace: CLIENT_NAMESPACE },
    replicas: 1,
  });
  client.addContainer({
    name: 'client',
    image: 'curlimages/curl:8.10.1',
    command: ['sh', '-c', 'sleep infinity'],
    securityContext: { user: 100, group: 101 },
  });
  gateway.configureClient(client);
  gateway.restrictEgressOf(kplus.Namespaces.select(clients, 'Apps', { names: [CLIENT_NAMESPACE] }), {
    // Linkerd's proxies in the client pods talk to its control plane (destination, identity, policy).
    allowInCluster: [kplus.Namespaces.select(clients, 'LinkerdControlPlane', { names: ['linkerd'] })],
  });

  return app;
}

if (require.main === module) {
  const [outdir = 'dist/linkerd-poc', dns = 'coredns'] = process.argv.slice(2);
  buildApp(outdir, dns as DnsChoice).synth();
}
