import { Chart, Testing } from 'cdk8s';
import { DnsFlavor, DnsRewrite } from '../src/dns-rewrite';
import { EgressGateway } from '../src/egress-gateway';
import { thrownMessage } from './util/thrown';
import { findRootServerBlock, parseCorefile, simulateRegexRewrite } from '../src/internal/corefile';

function synth(build: (chart: Chart) => void): any[] {
  const app = Testing.app();
  const chart = new Chart(app, 'test');
  build(chart);
  return Testing.synth(chart);
}

const byKind = (objs: any[], kind: string) => objs.filter(o => o.kind === kind);

describe('EgressGateway.addDnsRewrite', () => {
  test('uses the gateway\'s Service, namespace, cluster domain and every suffix', () => {
    let rewrite!: DnsRewrite;
    synth(c => {
      const gw = new EgressGateway(c, 'Gw', { namespace: 'edge', serviceName: 'gw', clusterDomain: 'k8s.example', suffix: 'egress.internal', additionalSuffixes: ['egress.local'] });
      rewrite = gw.addDnsRewrite('Dns', { flavor: DnsFlavor.snippetOnly() });
    });
    expect(rewrite.targetName).toBe('gw.edge.svc.k8s.example');
    expect(rewrite.suffixes).toEqual(['egress.internal', 'egress.local']);
    expect(rewrite.snippet).toContain('name regex ^(.+)\\.egress\\.internal\\.$ gw.edge.svc.k8s.example. answer auto');
    expect(rewrite.snippet).toContain('name regex ^(.+)\\.egress\\.local\\.$ gw.edge.svc.k8s.example. answer auto');
  });

  test('throws when hosts are hijacked without the TLS passthrough listener', () => {
    expect(() => synth(c => new EgressGateway(c, 'Gw').addDnsRewrite('Dns', { flavor: DnsFlavor.snippetOnly(), hijackHosts: ['api.github.com'] })))
      .toThrow(/EgressGateway "test\/Gw": addDnsRewrite\(\) 'hijackHosts' \["api.github.com"\] needs the gateway's TLS passthrough listener/);
    const objs = synth(c => new EgressGateway(c, 'Gw', { tlsPassthrough: true }).addDnsRewrite('Dns', { flavor: DnsFlavor.corednsCustom(), hijackHosts: ['api.github.com'] }));
    expect(objs.find(o => o.metadata.name === 'coredns-custom').data['egress-rewrite.override']).toContain('rewrite stop name exact api.github.com. proxy.egress.svc.cluster.local.');
  });
});

describe('DnsRewrite', () => {
  test('snippet: anchored regex with answer auto, nothing synthesised', () => {
    let rewrite!: DnsRewrite;
    const objs = synth(c => { rewrite = new DnsRewrite(c, 'Dns', { flavor: DnsFlavor.snippetOnly() }); });
    expect(objs).toEqual([]);
    expect(rewrite.targetName).toBe('proxy.egress.svc.cluster.local');
    expect(rewrite.snippet).toBe([
      'rewrite stop {',
      '    name regex ^(.+)\\.egress\\.local\\.$ proxy.egress.svc.cluster.local. answer auto',
      '}',
      '',
    ].join('\n'));
  });

  test('coredns ConfigMap: default base gets the rewrite in its root block before kubernetes', () => {
    const objs = synth(c => new DnsRewrite(c, 'Dns', {
      flavor: DnsFlavor.corednsConfigMap(),
      serviceName: 'gw',
      serviceNamespace: 'edge',
      clusterDomain: 'k8s.example',
      suffixes: ['egress.local', 'egress.internal'],
    }));
    expect(objs).toMatchSnapshot();
    expect(objs).toHaveLength(1);
    const cm = objs[0];
    expect([cm.kind, cm.metadata.name, cm.metadata.namespace]).toEqual(['ConfigMap', 'coredns', 'kube-system']);
    const corefile = parseCorefile(cm.data.Corefile);
    const root = findRootServerBlock(corefile)!;
    const names = root.directives.map(d => d.name);
    expect(names.filter(n => n === 'rewrite')).toHaveLength(2);
    expect(names.lastIndexOf('rewrite')).toBeLessThan(names.indexOf('kubernetes'));
    expect(names.lastIndexOf('rewrite')).toBeLessThan(names.indexOf('forward'));
    expect(root.directives.find(d => d.name === 'kubernetes')!.args[0]).toBe('k8s.example');
    // Each rule, run as CoreDNS would, sends its suffix (and only it) to the gateway.
    const rules = root.directives.filter(d => d.name === 'rewrite').map(d => d.block![0].args);
    for (const [type, pattern, to, answer, auto] of rules) {
      expect([type, to, answer, auto]).toEqual(['regex', 'gw.edge.svc.k8s.example.', 'answer', 'auto']);
      expect(simulateRegexRewrite(pattern, to, 'api.github.com.egress.local.') !== undefined
        || simulateRegexRewrite(pattern, to, 'api.github.com.egress.internal.') !== undefined).toBe(true);
      expect(simulateRegexRewrite(pattern, to, 'api.github.com.')).toBeUndefined();
    }
  });

  test('coredns ConfigMap: a user Corefile keeps its other blocks and comments', () => {
    const base = '# platform DNS\nconsul:53 {\n  forward . 10.0.0.5\n}\n.:53 {\n  errors\n  # cluster names\n  kubernetes cluster.local\n  forward . 1.1.1.1\n}\n';
    const objs = synth(c => new DnsRewrite(c, 'Dns', { flavor: DnsFlavor.corednsConfigMap({ baseCorefile: base }) }));
    const text: string = objs[0].data.Corefile;
    expect(text).toBe('# platform DNS\nconsul:53 {\n  forward . 10.0.0.5\n}\n.:53 {\n  errors\n  # cluster names\n'
      + '  rewrite stop {\n      name regex ^(.+)\\.egress\\.local\\.$ proxy.egress.svc.cluster.local. answer auto\n  }\n'
      + '  kubernetes cluster.local\n  forward . 1.1.1.1\n}\n');
  });

  test('throws when the base Corefile has no root block', () => {
    expect(() => synth(c => new DnsRewrite(c, 'Dns', {
      flavor: DnsFlavor.corednsConfigMap({ baseCorefile: 'example.com {\n  forward . 1.1.1.1\n}\n' }),
    }))).toThrow(/DnsRewrite test\/Dns: DnsFlavor.corednsConfigMap\(\) 'baseCorefile' cannot take the rewrite: the Corefile has no root server block/);
  });

  test('throws when the base Corefile already carries the egress rewrite', () => {
    const first = synth(c => new DnsRewrite(c, 'Dns', { flavor: DnsFlavor.corednsConfigMap() }))[0].data.Corefile;
    expect(() => synth(c => new DnsRewrite(c, 'Dns', { flavor: DnsFlavor.corednsConfigMap({ baseCorefile: first }) })))
      .toThrow(/'baseCorefile' cannot take the rewrite: its root block already rewrites to "proxy.egress.svc.cluster.local." on line 7; give the Corefile without the egress rewrite\.$/);
  });

  test('coredns ConfigMap: hijacked hosts get exact rules, answered back automatically', () => {
    const objs = synth(c => new DnsRewrite(c, 'Dns', { flavor: DnsFlavor.corednsConfigMap(), hijackHosts: ['api.github.com', 'uploads.github.com'] }));
    const root = findRootServerBlock(parseCorefile(objs[0].data.Corefile))!;
    const exact = root.directives.filter(d => d.name === 'rewrite' && d.args[1] === 'name').map(d => d.args);
    expect(exact).toEqual([
      ['stop', 'name', 'exact', 'api.github.com.', 'proxy.egress.svc.cluster.local.'],
      ['stop', 'name', 'exact', 'uploads.github.com.', 'proxy.egress.svc.cluster.local.'],
    ]);
  });

  test('coredns-custom: one .override key with the rewrite lines', () => {
    const objs = synth(c => new DnsRewrite(c, 'Dns', { flavor: DnsFlavor.corednsCustom(), hijackHosts: ['api.github.com'] }));
    expect(objs).toMatchSnapshot();
    expect(objs).toHaveLength(1);
    expect(objs[0].metadata).toEqual({ name: 'coredns-custom', namespace: 'kube-system' });
    const data: string = objs[0].data['egress-rewrite.override'];
    // The override is imported inside the root block: wrap it in one to check it parses.
    const root = parseCorefile(`.:53 {\n${data}}\n`).serverBlocks[0];
    expect(root.directives.map(d => [d.name, ...d.args])).toEqual([
      ['rewrite', 'stop'],
      ['rewrite', 'stop', 'name', 'exact', 'api.github.com.', 'proxy.egress.svc.cluster.local.'],
    ]);
  });

  test('throws when the coredns-custom key would not be imported', () => {
    expect(() => synth(c => new DnsRewrite(c, 'Dns', { flavor: DnsFlavor.corednsCustom({ key: 'egress.server' }) })))
      .toThrow(/'key' "egress.server" must be a ConfigMap key ending in '.override'/);
  });

  test('kube-dns: stubDomains to a fixed-IP CoreDNS that rewrites and forwards to the cluster DNS', () => {
    const objs = synth(c => new DnsRewrite(c, 'Dns', {
      flavor: DnsFlavor.kubeDns({ clusterIp: '10.96.0.53', upstreamNameservers: ['8.8.8.8'] }),
      suffixes: ['egress.internal'],
    }));
    expect(objs).toMatchSnapshot();
    const kubeDns = byKind(objs, 'ConfigMap').find(o => o.metadata.name === 'kube-dns')!;
    expect(kubeDns.metadata.namespace).toBe('kube-system');
    expect(JSON.parse(kubeDns.data.stubDomains)).toEqual({ 'egress.internal': ['10.96.0.53'] });
    expect(JSON.parse(kubeDns.data.upstreamNameservers)).toEqual(['8.8.8.8']);

    const [svc] = byKind(objs, 'Service');
    expect(svc.metadata.namespace).toBe('egress');
    expect(svc.spec.clusterIP).toBe('10.96.0.53');
    expect(svc.spec.ports.map((p: any) => [p.port, p.protocol, p.targetPort])).toEqual([[53, 'UDP', 1053], [53, 'TCP', 1053]]);

    const [dep] = byKind(objs, 'Deployment');
    expect(svc.spec.selector).toEqual(dep.spec.selector.matchLabels);
    const container = dep.spec.template.spec.containers[0];
    expect(container.image).toMatch(/^registry\.k8s\.io\/coredns\/coredns:v1\.1\d\.\d+$/);
    expect(container.args).toEqual(['-conf', '/etc/coredns/Corefile']);
    expect(dep.spec.template.spec.dnsPolicy).toBe('ClusterFirst');

    const stubConfig = byKind(objs, 'ConfigMap').find(o => o.data.Corefile)!;
    const cf = parseCorefile(stubConfig.data.Corefile);
    expect(cf.serverBlocks).toHaveLength(1);
    const block = cf.serverBlocks[0];
    expect(block.keys).toEqual(['egress.internal:1053']);
    const names = block.directives.map(d => d.name);
    expect(names).toEqual(['errors', 'health', 'ready', 'rewrite', 'template', 'forward', 'cache', 'reload']);
    expect(block.directives.find(d => d.name === 'template')!.block!.map(d => [d.name, ...d.args])).toEqual([['rcode', 'NXDOMAIN']]);
    const rule = block.directives.find(d => d.name === 'rewrite')!.block![0].args;
    expect(simulateRegexRewrite(rule[1], rule[2], 'api.github.com.egress.internal.')).toBe('proxy.egress.svc.cluster.local.');
    expect(simulateRegexRewrite(rule[1], rule[2], 'api.github.com.egress.local.')).toBeUndefined();
  });

  test('throws when kube-dns options are wrong, listing every problem', () => {
    expect(() => synth(c => new DnsRewrite(c, 'Dns', {
      flavor: DnsFlavor.kubeDns({ clusterIp: 'None', replicas: 0, upstreamNameservers: ['dns.google'] }),
    }))).toThrow(/DnsRewrite test\/Dns: DnsFlavor.kubeDns\(\) options are invalid:\n- 'clusterIp' "None" is not an IP address.*\n- 'replicas' 0 must be.*\n- 'upstreamNameservers' entry "dns.google"/);
  });

  test('throws when names are invalid, collecting every problem', () => {
    const message = thrownMessage(() => synth(c => new DnsRewrite(c, 'Dns', {
      flavor: DnsFlavor.snippetOnly(),
      suffixes: ['Egress..Local', 'egress.local', 'egress.local', 'svc.cluster.local'],
      hijackHosts: ['api.github.com.egress.local', 'kubernetes.default.svc.cluster.local'],
    })));
    expect(message).toMatch(/^DnsRewrite test\/Dns: invalid props:/);
    expect(message).toContain('\'suffixes\' "Egress..Local" is not a valid DNS name: it has upper-case letters (CoreDNS matches lower-cased names); did you mean "egress.local"?');
    expect(message).toContain('\'suffixes\' lists "egress.local" twice');
    expect(message).toContain('\'suffixes\' entry "svc.cluster.local" overlaps the cluster domain');
    expect(message).toContain('\'hijackHosts\' entry "api.github.com.egress.local" is already under the suffix "egress.local"');
    expect(message).toContain('\'hijackHosts\' entry "kubernetes.default.svc.cluster.local" is a cluster name');
  });
});
