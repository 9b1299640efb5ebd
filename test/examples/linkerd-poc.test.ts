import { rmSync } from 'fs';
import { expectValidManifests, synthToTmp } from './synth';
import { buildApp, CLIENT_NAMESPACE, DnsChoice, GATEWAY_NAMESPACE } from '../../examples/linkerd-poc/main';
import { findRootServerBlock, parseCorefile, simulateRegexRewrite } from '../../src/internal/corefile';
import { NetworkPolicyEvaluator, PodInfo } from '../util/netpol-eval';

describe.each<DnsChoice>(['coredns', 'coredns-custom', 'kube-dns'])('examples/linkerd-poc (%s)', (dns) => {
  let outdir: string;
  let objects: any[];
  beforeAll(() => {
    ({ outdir, objects } = synthToTmp('linkerd-poc-', (dir) => buildApp(dir, dns)));
  });
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('passes validate-manifests with nothing failed', () => {
    expectValidManifests(outdir, objects);
  });

  test('the DNS rule sends <host>.egress.local, and only that, to the gateway Service', () => {
    const gatewaySvc = objects.find(o => o.kind === 'Service' && o.metadata.namespace === GATEWAY_NAMESPACE && o.metadata.name === 'proxy');
    expect(gatewaySvc).toBeDefined();
    let corefileText: string;
    if (dns === 'coredns') {
      corefileText = objects.find(o => o.kind === 'ConfigMap' && o.metadata.name === 'coredns').data.Corefile;
    } else if (dns === 'coredns-custom') {
      corefileText = `.:53 {\n${objects.find(o => o.metadata.name === 'coredns-custom').data['egress-rewrite.override']}}\n`;
    } else {
      const kubeDns = objects.find(o => o.metadata.name === 'kube-dns');
      expect(JSON.parse(kubeDns.data.stubDomains)).toEqual({ 'egress.local': ['10.96.0.53'] });
      corefileText = objects.find(o => o.kind === 'ConfigMap' && o.data?.Corefile).data.Corefile.replace('egress.local:1053', '.:53');
    }
    const root = findRootServerBlock(parseCorefile(corefileText))!;
    const [type, pattern, target, answer, auto] = root.directives.find(d => d.name === 'rewrite')!.block![0].args;
    expect([type, target, answer, auto]).toEqual(['regex', 'proxy.egress.svc.cluster.local.', 'answer', 'auto']);
    expect(simulateRegexRewrite(pattern, target, 'api.github.com.egress.local.')).toBe(target);
    expect(simulateRegexRewrite(pattern, target, 'api.github.com.')).toBeUndefined();
  });

  test('the client namespace reaches the gateway and DNS, and nothing else outside the cluster', () => {
    const namespaces = ['egress', 'apps', 'kube-system', 'linkerd', 'monitoring', 'default'].map(name => ({ name }));
    const evaluator = new NetworkPolicyEvaluator(objects, namespaces);
    const podOf = (namespace: string, name: string, ip: string): PodInfo => {
      const dep = objects.find(o => o.kind === 'Deployment' && o.metadata.namespace === namespace && o.metadata.name.includes(name));
      return { namespace, labels: dep.spec.template.metadata.labels, ip };
    };
    const client = podOf(CLIENT_NAMESPACE, 'client', '10.244.2.2');
    const gateway = podOf(GATEWAY_NAMESPACE, 'egress-gateway', '10.244.1.1');
    const coredns: PodInfo = { namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ip: '10.244.0.3' };
    const web: PodInfo = { namespace: 'default', labels: { app: 'web' }, ip: '10.244.3.3' };
    const flows: Array<[string, PodInfo, { pod: PodInfo } | { ip: string }, number, 'TCP' | 'UDP', boolean]> = [
      ['client -> gateway', client, { pod: gateway }, 8080, 'TCP', true],
      ['client -> dns', client, { pod: coredns }, 53, 'UDP', true],
      ['client -> api.github.com directly', client, { ip: '140.82.112.6' }, 443, 'TCP', false],
      ['client -> plaintext internet', client, { ip: '140.82.112.6' }, 80, 'TCP', false],
      ['client -> other namespace', client, { pod: web }, 80, 'TCP', false],
      ['client -> metadata', client, { ip: '169.254.169.254' }, 80, 'TCP', false],
      ['gateway -> api.github.com', gateway, { ip: '140.82.112.6' }, 443, 'TCP', true],
      ['gateway -> node network', gateway, { ip: '10.0.0.1' }, 443, 'TCP', false],
      ['gateway -> metadata', gateway, { ip: '169.254.169.254' }, 80, 'TCP', false],
      ['gateway -> pod range', gateway, { pod: web }, 443, 'TCP', false],
      ['other namespace -> gateway', web, { pod: gateway }, 8080, 'TCP', false],
    ];
    for (const [name, from, to, port, protocol, expected] of flows) {
      expect([name, evaluator.allowed({ from: { pod: from }, to, port, protocol })]).toEqual([name, expected]);
    }
  });
});
