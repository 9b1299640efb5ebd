import { Chart, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { EgressGateway } from '../src/egress-gateway';
import {
  EgressClient, EgressClientMode, EgressGatewayPolicy, EgressGatewayTarget, EgressLockdown,
} from '../src/egress-lockdown';
import { ExternalServiceProtocol } from '../src/external-service';
import { Endpoint, NetworkPolicyEvaluator, PodInfo } from './util/netpol-eval';

const GATEWAY: EgressGatewayTarget = {
  namespace: 'egress',
  serviceName: 'proxy',
  podSelectorLabels: { 'app.kubernetes.io/name': 'egress-gateway' },
  proxyPorts: [8080, 8443],
  adminPort: 9901,
  externalPorts: [443],
};

const NAMESPACES = ['egress', 'apps', 'other', 'kube-system', 'monitoring', 'linkerd', 'linkerd-viz'].map(name => ({ name }));

const pods = {
  gateway: { name: 'gateway', namespace: 'egress', labels: { 'app.kubernetes.io/name': 'egress-gateway' }, ip: '10.244.1.10' },
  web: { name: 'web', namespace: 'apps', labels: { app: 'web' }, ip: '10.244.2.10' },
  worker: { name: 'worker', namespace: 'apps', labels: { app: 'worker' }, ip: '10.244.2.11' },
  db: { name: 'db', namespace: 'apps', labels: { app: 'db' }, ip: '10.244.2.12' },
  dns: { name: 'coredns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ip: '10.244.0.5' },
  stranger: { name: 'stranger', namespace: 'other', labels: { app: 'x' }, ip: '10.244.3.3' },
  labelled: { name: 'labelled', namespace: 'other', labels: { app: 'y', [EgressClient.LABEL]: 'proxy.egress' }, ip: '10.244.3.4' },
  prometheus: { name: 'prometheus', namespace: 'monitoring', labels: { app: 'prometheus' }, ip: '10.244.4.4' },
  linkerdDestination: { name: 'destination', namespace: 'linkerd', labels: { 'linkerd.io/control-plane-component': 'destination' }, ip: '10.244.5.5' },
} satisfies Record<string, PodInfo>;

function build(): { objs: any[]; gatewayPolicy: EgressGatewayPolicy } {
  const chart = new Chart(Testing.app(), 'test');
  const apps = kplus.Namespaces.select(chart, 'Apps', { names: ['apps'] });
  const linkerd = kplus.Namespaces.select(chart, 'Linkerd', { names: ['linkerd'] });
  const gatewayPolicy = new EgressGatewayPolicy(chart, 'GatewayPolicy', {
    gateway: GATEWAY,
    clusterCidrs: ['203.0.113.0/24', '2001:db8:1::/48'],
    allowEgressTo: [linkerd],
  });
  const lockdown = new EgressLockdown(chart, 'Lockdown', {
    selector: apps,
    gateway: GATEWAY,
    allowInCluster: [kplus.Pods.select(chart, 'Db', { labels: { app: 'db' } })],
  });
  lockdown.allowTo(linkerd, [kplus.NetworkPolicyPort.tcp(8086)]);
  gatewayPolicy.allowFrom(apps);
  gatewayPolicy.allowFrom(apps); // idempotent
  return { objs: Testing.synth(chart), gatewayPolicy };
}

const pod = (p: PodInfo): Endpoint => ({ pod: p });
const ip = (a: string): Endpoint => ({ ip: a });

describe('EgressGatewayPolicy and EgressLockdown', () => {
  const { objs } = build();
  const evaluator = new NetworkPolicyEvaluator(objs, NAMESPACES);

  test('synthesises two NetworkPolicies with the expected selectors and types', () => {
    expect(objs).toMatchSnapshot();
    expect(objs.map(o => o.kind)).toEqual(['NetworkPolicy', 'NetworkPolicy']);
    const [gw, lock] = objs;
    expect(gw.metadata.namespace).toBe('egress');
    expect(gw.spec.podSelector).toEqual({ matchLabels: GATEWAY.podSelectorLabels });
    expect([...gw.spec.policyTypes].sort()).toEqual(['Egress', 'Ingress']);
    expect(lock.metadata.namespace).toBe('apps');
    expect(lock.spec.podSelector).toEqual({});
    expect(lock.spec.policyTypes).toEqual(['Egress']);
    // apps was allowed twice: one ingress rule for it.
    const appsRules = gw.spec.ingress.filter((r: any) => r.from[0].namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'apps');
    expect(appsRules).toHaveLength(1);
    const v4 = gw.spec.egress.find((r: any) => r.to[0].ipBlock?.cidr === '0.0.0.0/0');
    expect(v4.to[0].ipBlock.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '203.0.113.0/24']));
    const v6 = gw.spec.egress.find((r: any) => r.to[0].ipBlock?.cidr === '::/0');
    expect(v6.to[0].ipBlock.except).toEqual([
      'fc00::/7', 'fe80::/10',
      '64:ff9b::a00:0/104', '64:ff9b::ac10:0/108', '64:ff9b::c0a8:0/112', '64:ff9b::6440:0/106', '64:ff9b::a9fe:0/112', '64:ff9b::7f00:0/104',
      '2002:a00::/24', '2002:ac10::/28', '2002:c0a8::/32', '2002:6440::/26', '2002:a9fe::/32', '2002:7f00::/24',
      '2001::/32',
      '2001:db8:1::/48',
    ]);
  });

  test.each<[string, Endpoint, Endpoint, number, 'TCP' | 'UDP', boolean]>([
    // A locked-down pod: the gateway, DNS and named in-cluster peers; nothing else.
    ['web -> gateway http', pod(pods.web), pod(pods.gateway), 8080, 'TCP', true],
    ['web -> gateway tls passthrough', pod(pods.web), pod(pods.gateway), 8443, 'TCP', true],
    ['web -> gateway admin', pod(pods.web), pod(pods.gateway), 9901, 'TCP', false],
    ['web -> dns udp', pod(pods.web), pod(pods.dns), 53, 'UDP', true],
    ['web -> dns tcp', pod(pods.web), pod(pods.dns), 53, 'TCP', true],
    ['web -> dns other port', pod(pods.web), pod(pods.dns), 8080, 'TCP', false],
    ['web -> db (allowed in cluster)', pod(pods.web), pod(pods.db), 5432, 'TCP', true],
    ['web -> linkerd destination', pod(pods.web), pod(pods.linkerdDestination), 8086, 'TCP', true],
    ['web -> linkerd other port', pod(pods.web), pod(pods.linkerdDestination), 9999, 'TCP', false],
    ['web -> other namespace pod', pod(pods.web), pod(pods.stranger), 80, 'TCP', false],
    ['web -> internet https', pod(pods.web), ip('8.8.8.8'), 443, 'TCP', false],
    ['web -> internet http', pod(pods.web), ip('1.1.1.1'), 80, 'TCP', false],
    ['web -> internet dns', pod(pods.web), ip('8.8.8.8'), 53, 'UDP', false],
    ['web -> cloud metadata', pod(pods.web), ip('169.254.169.254'), 80, 'TCP', false],
    ['web -> internet v6', pod(pods.web), ip('2001:4860:4860::8888'), 443, 'TCP', false],
    ['worker (same namespace) -> internet', pod(pods.worker), ip('8.8.8.8'), 443, 'TCP', false],
    ['worker -> gateway', pod(pods.worker), pod(pods.gateway), 8080, 'TCP', true],
    // The gateway: DNS and public addresses on the external ports only.
    ['gateway -> internet 443', pod(pods.gateway), ip('8.8.8.8'), 443, 'TCP', true],
    ['gateway -> internet v6 443', pod(pods.gateway), ip('2001:4860:4860::8888'), 443, 'TCP', true],
    ['gateway -> internet 80', pod(pods.gateway), ip('8.8.8.8'), 80, 'TCP', false],
    ['gateway -> private 10/8', pod(pods.gateway), ip('10.0.0.1'), 443, 'TCP', false],
    ['gateway -> 172.16/12', pod(pods.gateway), ip('172.20.1.1'), 443, 'TCP', false],
    ['gateway -> 192.168/16', pod(pods.gateway), ip('192.168.1.1'), 443, 'TCP', false],
    ['gateway -> CGNAT', pod(pods.gateway), ip('100.64.1.1'), 443, 'TCP', false],
    ['gateway -> cloud metadata 80', pod(pods.gateway), ip('169.254.169.254'), 80, 'TCP', false],
    ['gateway -> cloud metadata 443', pod(pods.gateway), ip('169.254.169.254'), 443, 'TCP', false],
    ['gateway -> cloud metadata through NAT64', pod(pods.gateway), ip('64:ff9b::a9fe:a9fe'), 443, 'TCP', false],
    ['gateway -> 10/8 through NAT64', pod(pods.gateway), ip('64:ff9b::a00:1'), 443, 'TCP', false],
    ['gateway -> public IPv4 through NAT64', pod(pods.gateway), ip('64:ff9b::808:808'), 443, 'TCP', true],
    ['gateway -> cloud metadata through 6to4', pod(pods.gateway), ip('2002:a9fe:a9fe::1'), 443, 'TCP', false],
    ['gateway -> 172.16/12 through 6to4', pod(pods.gateway), ip('2002:ac14:101::1'), 443, 'TCP', false],
    ['gateway -> public IPv4 through 6to4', pod(pods.gateway), ip('2002:808:808::1'), 443, 'TCP', true],
    ['gateway -> Teredo (client 10.0.0.1)', pod(pods.gateway), ip('2001:0:808:808:0:ffff:f5ff:fffe'), 443, 'TCP', false],
    ['gateway -> Teredo (public server and client)', pod(pods.gateway), ip('2001:0:808:808:0:ffff:f7f7:f7f7'), 443, 'TCP', false],
    ['gateway -> declared cluster CIDR', pod(pods.gateway), ip('203.0.113.7'), 443, 'TCP', false],
    ['gateway -> declared cluster CIDR v6', pod(pods.gateway), ip('2001:db8:1::7'), 443, 'TCP', false],
    ['gateway -> unique-local v6', pod(pods.gateway), ip('fd00::1'), 443, 'TCP', false],
    ['gateway -> link-local v6', pod(pods.gateway), ip('fe80::1'), 443, 'TCP', false],
    ['gateway -> dns', pod(pods.gateway), pod(pods.dns), 53, 'UDP', true],
    ['gateway -> in-cluster pod', pod(pods.gateway), pod(pods.stranger), 443, 'TCP', false],
    ['gateway -> linkerd (allowEgressTo)', pod(pods.gateway), pod(pods.linkerdDestination), 8086, 'TCP', true],
    // Who may use the gateway.
    ['stranger -> gateway', pod(pods.stranger), pod(pods.gateway), 8080, 'TCP', false],
    ['labelled client elsewhere -> gateway', pod(pods.labelled), pod(pods.gateway), 8080, 'TCP', true],
    ['labelled client -> gateway admin', pod(pods.labelled), pod(pods.gateway), 9901, 'TCP', false],
    ['prometheus -> gateway admin', pod(pods.prometheus), pod(pods.gateway), 9901, 'TCP', true],
    ['prometheus -> gateway proxy', pod(pods.prometheus), pod(pods.gateway), 8080, 'TCP', false],
    ['internet -> gateway', ip('8.8.8.8'), pod(pods.gateway), 8080, 'TCP', false],
    // Pods outside the lock-down keep their default.
    ['stranger -> internet (not locked down)', pod(pods.stranger), ip('8.8.8.8'), 443, 'TCP', true],
  ])('%s', (_name, from, to, port, protocol, expected) => {
    const verdict = evaluator.evaluate({ from, to, port, protocol });
    expect({ allowed: verdict.allowed, verdict }).toEqual(expect.objectContaining({ allowed: expected }));
  });

  test('throws when props are invalid, listing every problem', () => {
    const chart = new Chart(Testing.app(), 'test');
    expect(() => new EgressGatewayPolicy(chart, 'Bad', {
      gateway: { ...GATEWAY, proxyPorts: [], podSelectorLabels: {}, externalPorts: [70000] },
      clusterCidrs: ['10.244.0.0/33', 'pods'],
    })).toThrow(new RegExp([
      'EgressGatewayPolicy test/Bad: invalid props:',
      "- 'gateway' port 70000 is not a port number \\(1-65535\\)",
      "- 'gateway.proxyPorts' is empty.*",
      "- 'gateway.podSelectorLabels' is empty.*",
      "- 'clusterCidrs' entry \"10.244.0.0/33\" is not a CIDR.*",
      "- 'clusterCidrs' entry \"pods\" is not a CIDR.*",
    ].join('\n')));
    expect(() => new EgressLockdown(chart, 'BadLock', {
      selector: kplus.Pods.select(chart, 'P', { labels: { a: 'b' } }),
      gateway: { ...GATEWAY, proxyPorts: [] },
    })).toThrow(/EgressLockdown test\/BadLock: invalid props:\n- 'gateway.proxyPorts' is empty/);
  });
});

describe('EgressClient.configure', () => {
  function deployment(chart: Chart, env?: Record<string, string>) {
    const d = new kplus.Deployment(chart, 'Web', { metadata: { namespace: 'apps' } });
    d.addContainer({
      name: 'web',
      image: 'example/web:1',
      envVariables: Object.fromEntries(Object.entries(env ?? {}).map(([k, v]) => [k, kplus.EnvValue.fromValue(v)])),
    });
    return d;
  }

  test('suffix mode: label and EGRESS_SUFFIX', () => {
    const chart = new Chart(Testing.app(), 'test');
    const d = deployment(chart);
    EgressClient.configure(d, { gateway: { ...GATEWAY, suffix: 'egress.internal' } });
    const [obj] = Testing.synth(chart);
    expect(obj.spec.template.metadata.labels[EgressClient.LABEL]).toBe('proxy.egress');
    expect(obj.spec.template.spec.containers[0].env).toEqual([{ name: 'EGRESS_SUFFIX', value: 'egress.internal' }]);
  });

  test('forward-proxy mode: proxy variables in both cases, NO_PROXY keeps the cluster direct', () => {
    const chart = new Chart(Testing.app(), 'test');
    const d = deployment(chart, { HTTP_PROXY: 'http://proxy.egress.svc.cluster.local:3128' });
    EgressClient.configure(d, {
      gateway: { ...GATEWAY, servicePort: 3128 },
      mode: EgressClientMode.FORWARD_PROXY,
      clusterCidrs: ['10.244.0.0/16', '10.96.0.0/12'],
    });
    const [obj] = Testing.synth(chart);
    const env = Object.fromEntries(obj.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]));
    expect(env.HTTP_PROXY).toBe('http://proxy.egress.svc.cluster.local:3128');
    expect(env.https_proxy).toBe('http://proxy.egress.svc.cluster.local:3128');
    expect(env.NO_PROXY).toBe('localhost,127.0.0.1,::1,.svc,.cluster.local,10.244.0.0/16,10.96.0.0/12');
    expect(env.no_proxy).toBe(env.NO_PROXY);
    expect(env.EGRESS_SUFFIX).toBeUndefined();
  });

  test('the label it sets is the one the gateway policy admits', () => {
    const chart = new Chart(Testing.app(), 'test');
    const d = deployment(chart);
    EgressClient.configure(d, { gateway: GATEWAY });
    new EgressGatewayPolicy(chart, 'Gw', { gateway: GATEWAY });
    const objs = Testing.synth(chart);
    const labels = objs.find(o => o.kind === 'Deployment').spec.template.metadata.labels;
    const evaluator = new NetworkPolicyEvaluator(objs, NAMESPACES);
    expect(evaluator.allowed({ from: pod({ namespace: 'apps', labels }), to: pod(pods.gateway), port: 8080 })).toBe(true);
    expect(evaluator.allowed({ from: pod({ namespace: 'apps', labels: { app: 'web' } }), to: pod(pods.gateway), port: 8080 })).toBe(false);
  });

  test('throws when a container already sets a variable differently', () => {
    const chart = new Chart(Testing.app(), 'test');
    const d = deployment(chart, { EGRESS_SUFFIX: 'other.local' });
    expect(() => EgressClient.configure(d, { gateway: GATEWAY }))
      .toThrow(/EgressClient.configure\(test\/Web\): invalid options:\n- container "web" already sets EGRESS_SUFFIX="other.local", not "egress.local"/);
  });

  test('throws when the workload has no containers', () => {
    const chart = new Chart(Testing.app(), 'test');
    const d = new kplus.Deployment(chart, 'Empty');
    expect(() => EgressClient.configure(d, { gateway: GATEWAY })).toThrow(/the workload has no containers yet/);
  });
});

describe('NetworkPolicyEvaluator (the test oracle itself)', () => {
  const ns = [{ name: 'a', labels: { team: 'x' } }, { name: 'b' }];
  const policy = (name: string, spec: any) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'a' }, spec });
  const p1 = { namespace: 'a', labels: { role: 'api', tier: 'web' }, ip: '10.1.0.1' };
  const p2 = { namespace: 'b', labels: { role: 'db' }, ip: '10.2.0.1' };

  test('no policy: everything allowed; an empty egress policy isolates and denies', () => {
    expect(new NetworkPolicyEvaluator([], ns).evaluate({ from: pod(p1), to: ip('8.8.8.8'), port: 1 }).egress.reason).toBe('not-isolated');
    const e = new NetworkPolicyEvaluator([policy('deny', { podSelector: {}, policyTypes: ['Egress'] })], ns);
    expect(e.allowed({ from: pod(p1), to: ip('8.8.8.8'), port: 1 })).toBe(false);
    expect(e.allowed({ from: pod(p2), to: ip('8.8.8.8'), port: 1 })).toBe(true);
  });

  test('policyTypes default to Ingress, plus Egress when egress rules exist', () => {
    const e = new NetworkPolicyEvaluator([policy('i', { podSelector: {} })], ns);
    expect(e.allowed({ from: pod(p1), to: ip('8.8.8.8'), port: 1 })).toBe(true);
    expect(e.allowed({ from: pod(p2), to: pod(p1), port: 1 })).toBe(false);
  });

  test('peers: namespaceSelector, podSelector, both, expressions and ipBlock families', () => {
    const e = new NetworkPolicyEvaluator([policy('eg', {
      podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['api'] }, { key: 'legacy', operator: 'DoesNotExist' }] },
      policyTypes: ['Egress'],
      egress: [
        { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'b' } }, podSelector: { matchLabels: { role: 'db' } } }], ports: [{ port: 5432 }] },
        { to: [{ ipBlock: { cidr: '::/0', except: ['fc00::/7'] } }], ports: [{ protocol: 'UDP', port: 1000, endPort: 2000 }] },
      ],
    })], ns);
    expect(e.allowed({ from: pod(p1), to: pod(p2), port: 5432 })).toBe(true);
    expect(e.allowed({ from: pod(p1), to: pod(p2), port: 5432, protocol: 'UDP' })).toBe(false);
    expect(e.allowed({ from: pod(p1), to: pod({ ...p2, labels: { role: 'cache' } }), port: 5432 })).toBe(false);
    expect(e.allowed({ from: pod(p1), to: ip('2001:db8::1'), port: 1500, protocol: 'UDP' })).toBe(true);
    expect(e.allowed({ from: pod(p1), to: ip('2001:db8::1'), port: 2001, protocol: 'UDP' })).toBe(false);
    expect(e.allowed({ from: pod(p1), to: ip('fd00::1'), port: 1500, protocol: 'UDP' })).toBe(false);
    // An IPv4 address is not inside ::/0 for NetworkPolicy purposes.
    expect(e.allowed({ from: pod(p1), to: ip('8.8.8.8'), port: 1500, protocol: 'UDP' })).toBe(false);
    // A pod the expressions exclude is not isolated.
    expect(e.allowed({ from: pod({ ...p1, labels: { role: 'api', legacy: 'y' } }), to: ip('8.8.8.8'), port: 1 })).toBe(true);
  });
});

describe('EgressGateway lock-down methods', () => {
  function gatewayPod(objs: any[]): PodInfo {
    const dep = objs.find(o => o.kind === 'Deployment' && o.metadata.namespace === 'egress');
    return { name: 'gateway', namespace: 'egress', labels: dep.spec.template.metadata.labels, ip: '10.244.1.20' };
  }

  test('restrictEgressOf + services added afterwards: the fail-closed recipe, evaluated', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gw', { tlsPassthrough: true, clusterCidrs: ['10.244.0.0/16'], allowedCidrs: ['10.20.0.0/16'] });
    const apps = kplus.Namespaces.select(chart, 'Apps', { names: ['apps'] });
    gw.restrictEgressOf(apps, { allowInCluster: [kplus.Namespaces.select(chart, 'Linkerd', { names: ['linkerd'] })] });
    // Declared after the policies: their ports must still be in them.
    gw.addExternalService('GitHub', { host: 'api.github.com' });
    gw.addExternalService('Db', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
    const objs = Testing.synth(chart);
    const policies = objs.filter(o => o.kind === 'NetworkPolicy');
    expect(policies.map(p => p.metadata.namespace).sort()).toEqual(['apps', 'egress']);
    const evaluator = new NetworkPolicyEvaluator(objs, NAMESPACES);
    const g = gatewayPod(objs);
    const tcpListener = gw._egressTarget().proxyPorts.find(p => p >= 10000)!;
    expect(tcpListener).toBe(10000);
    const cases: Array<[Endpoint, Endpoint, number, boolean]> = [
      [pod(pods.web), pod(g), gw.httpPort, true],
      [pod(pods.web), pod(g), gw.tlsPort!, true],
      [pod(pods.web), pod(g), tcpListener, true],
      [pod(pods.web), pod(g), gw.adminPort, false],
      [pod(pods.web), ip('140.82.112.6'), 443, false],
      [pod(pods.web), pod(pods.linkerdDestination), 8086, true],
      [pod(pods.stranger), pod(g), gw.httpPort, false],
      [pod(g), ip('140.82.112.6'), 443, true],
      [pod(g), ip('192.0.2.80'), 5432, true],
      [pod(g), ip('192.0.2.80'), 80, false],
      [pod(g), ip('10.20.1.1'), 443, true], // allowedCidrs
      [pod(g), ip('10.0.0.1'), 443, false],
      [pod(g), ip('10.244.3.3'), 443, false],
      [pod(g), ip('169.254.169.254'), 80, false],
      [pod(g), pod(pods.linkerdDestination), 8086, true], // meshed gateway (linkerdInject defaults on)
      [pod(g), pod(pods.dns), 53, true],
      // linkerd-viz scrapes the gateway's sidecar, where the request metrics are.
      [pod({ namespace: 'linkerd-viz', labels: { app: 'prometheus' } }), pod(g), 4191, true],
      [pod({ namespace: 'linkerd-viz', labels: { app: 'prometheus' } }), pod(g), gw.httpPort, false],
      [pod(pods.web), pod(g), 4191, false],
    ];
    for (const [from, to, port, expected] of cases) {
      expect({ from, to, port, allowed: evaluator.allowed({ from, to, port }) }).toEqual({ from, to, port, allowed: expected });
    }
  });

  test('configureClient labels the workload so the locked-down gateway admits it', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gw', { suffix: 'egress.internal' });
    gw.lockDown({ metricsScrapers: kplus.Pods.select(chart, 'Prom', { labels: { app: 'prometheus' }, namespaces: kplus.Namespaces.select(chart, 'Mon', { names: ['monitoring'] }) }) });
    const web = new kplus.Deployment(chart, 'Web', { metadata: { namespace: 'other' } });
    web.addContainer({ image: 'example/web:1' });
    gw.configureClient(web);
    const objs = Testing.synth(chart);
    const webObj = objs.find(o => o.kind === 'Deployment' && o.metadata.namespace === 'other');
    expect(webObj.spec.template.spec.containers[0].env).toEqual([{ name: 'EGRESS_SUFFIX', value: 'egress.internal' }]);
    const evaluator = new NetworkPolicyEvaluator(objs, NAMESPACES);
    const g = gatewayPod(objs);
    expect(evaluator.allowed({ from: pod({ namespace: 'other', labels: webObj.spec.template.metadata.labels }), to: pod(g), port: gw.httpPort })).toBe(true);
    expect(evaluator.allowed({ from: pod(pods.stranger), to: pod(g), port: gw.httpPort })).toBe(false);
    expect(evaluator.allowed({ from: pod(pods.prometheus), to: pod(g), port: gw.adminPort })).toBe(true);
  });

  test('throws when lockDown options come after the policy exists', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gw');
    gw.allowFrom(kplus.Namespaces.select(chart, 'Apps', { names: ['apps'] }));
    expect(gw.lockDown()).toBe(gw.lockDown());
    expect(() => gw.lockDown({ allowLabelledClients: false })).toThrow(/EgressGateway "test\/Gw": lockDown\(\) options cannot apply because the gateway's NetworkPolicy already exists/);
  });

  test('throws when restrictEgressOf is called twice for one peer', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gw');
    const apps = kplus.Namespaces.select(chart, 'Apps', { names: ['apps'] });
    gw.restrictEgressOf(apps);
    expect(() => gw.restrictEgressOf(apps)).toThrow(/restrictEgressOf\(\) was already called for "test\/Apps"/);
    // A different peer that happens to share the construct id gets a policy of its own.
    const otherApps = kplus.Namespaces.select(new Chart(chart, 'nested'), 'Apps', { names: ['other'] });
    gw.restrictEgressOf(otherApps);
    const namespaces = Testing.synth(chart).filter(o => o.kind === 'NetworkPolicy').map(o => o.metadata.namespace).sort();
    expect(namespaces).toEqual(['apps', 'egress', 'other']);
  });

  test('throws when forward-proxy mode is asked of a gateway without forwardProxy', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gw');
    const web = new kplus.Deployment(chart, 'Web');
    web.addContainer({ image: 'example/web:1' });
    expect(() => gw.configureClient(web, { mode: EgressClientMode.FORWARD_PROXY }))
      .toThrow(/'mode' ForwardProxy needs a gateway that accepts http_proxy requests/);
    const fwd = new EgressGateway(chart, 'Fwd', { forwardProxy: true, namespace: 'edge', serviceName: 'gw' });
    fwd.configureClient(web, { mode: EgressClientMode.FORWARD_PROXY });
    const env = Testing.synth(chart).find(o => o.kind === 'Deployment' && o.metadata.name.includes('web')).spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: 'HTTPS_PROXY', value: 'http://gw.edge.svc.cluster.local:80' });
  });
});
