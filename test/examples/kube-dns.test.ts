// examples/kube-dns: the egress suffix delivered to a kube-dns cluster as a stub domain served by
// a small CoreDNS at a fixed ClusterIP that rewrites to the gateway's Service.
import { rmSync } from 'fs';
import { expectValidManifests, synthToTmp } from './synth';
import { buildApp, NAMESPACE, STUB_CLUSTER_IP, UPSTREAM_NAMESERVERS } from '../../examples/kube-dns/main';

describe('examples/kube-dns', () => {
  const { outdir, objects } = synthToTmp('kube-dns-', (dir) => buildApp(dir));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('passes validate-manifests with nothing failed', () => {
    expectValidManifests(outdir, objects);
  });

  test('kube-dns gets a stub domain for egress.local at the stub CoreDNS ClusterIP, and its upstream nameservers', () => {
    const kubeDns = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'kube-dns');
    expect(kubeDns.metadata.namespace).toBe('kube-system');
    expect(JSON.parse(kubeDns.data.stubDomains)).toEqual({ 'egress.local': [STUB_CLUSTER_IP] });
    expect(JSON.parse(kubeDns.data.upstreamNameservers)).toEqual(UPSTREAM_NAMESERVERS);
    const stubSvc = objects.find((o) => o.kind === 'Service' && o.spec.clusterIP === STUB_CLUSTER_IP);
    expect(stubSvc.metadata.namespace).toBe(NAMESPACE);
    const stubDeploy = objects.find((o) => o.kind === 'Deployment' && o.metadata.name !== 'egress-gateway');
    for (const [k, v] of Object.entries(stubSvc.spec.selector)) expect(stubDeploy.spec.template.metadata.labels[k]).toBe(v);
  });

  test('the stub CoreDNS rewrites <host>.egress.local to the gateway Service', () => {
    const corefile = objects.find((o) => o.kind === 'ConfigMap' && o.data?.Corefile).data.Corefile as string;
    expect(corefile).toContain('proxy.egress.svc.cluster.local');
    expect(corefile).toMatch(/egress\\\.local/);
  });
});
