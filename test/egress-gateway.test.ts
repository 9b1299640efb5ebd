import { mkdtempSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ApiObject, App, Chart, Duration, Size, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { EgressGateway } from '../src/egress-gateway';
import { AmbiguousPathAction, ConfigReload, ConnectSniPolicy, GatewayDeployment, LogLevel, type EgressGatewayProps } from '../src/egress-gateway-props';
import { EgressClientMode, EgressClientProxyAddress } from '../src/egress-lockdown';
import { EgressNetwork } from '../src/egress-network';
import { ExternalServiceProtocol, InjectedHeader } from '../src/external-service';
import { PROXY_RUNTIME_ENV } from '../src/internal/proxy-runtime';
import { LIMIT_BOUNDS, WORKER_BOUNDS } from '../src/model/bounds';
import { DEFAULT_IDLE_RECLAIM_MS, DEFAULT_LIMITS, DEFAULT_TIMEOUTS, DEFAULT_TLS } from '../src/model/defaults';
import type { ProxyConfig } from '../src/model/proxy-config';
import { validateConfig } from '../src/proxy/config';
import { idleReclaimMsFromEnv } from '../src/proxy/idle-memory';
import { ProxyImage } from '../src/proxy-image';
import { CertificateSource, TlsOrigination } from '../src/tls';
import { EnforcementMode, TrafficPolicy } from '../src/traffic-policy';
import { validatePath } from './mesh/validate';
import { errorOf } from './util/thrown';

const IMAGE = ProxyImage.fromRegistry('registry.example.com/egress/proxy:1.0.0');

function newChart(): Chart {
  return new Chart(Testing.app(), 'test');
}

interface Manifest {
  kind: string;
  apiVersion: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any;
}

function objects(chart: Chart): Manifest[] {
  return Testing.synth(chart) as Manifest[];
}

function one(all: Manifest[], kind: string): Manifest {
  const found = all.filter((o) => o.kind === kind);
  expect(found).toHaveLength(1);
  return found[0];
}

function config(all: Manifest[]): ProxyConfig {
  return JSON.parse(one(all, 'ConfigMap').data['config.json']);
}

function podSpec(all: Manifest[]): any {
  return one(all, 'Deployment').spec.template.spec;
}

function proxyContainer(all: Manifest[]): any {
  const containers = podSpec(all).containers;
  expect(containers).toHaveLength(1);
  return containers[0];
}

describe('EgressGateway defaults', () => {
  const chart = newChart();
  const gateway = new EgressGateway(chart, 'egress', { image: IMAGE });
  const all = objects(chart);

  test('snapshot', () => {
    expect(all).toMatchSnapshot();
  });

  test('emits Namespace, ServiceAccount, ConfigMap, Deployment, Service and PodDisruptionBudget', () => {
    expect(all.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`)).toEqual([
      'v1 Namespace egress',
      'v1 ServiceAccount egress-gateway',
      'v1 ConfigMap egress-gateway-config',
      'apps/v1 Deployment egress-gateway',
      'v1 Service proxy',
      'policy/v1 PodDisruptionBudget egress-gateway',
    ]);
    for (const o of all.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace).toBe('egress');
  });

  test('exposes the names and ports other constructs need', () => {
    expect(gateway.namespaceName).toBe('egress');
    expect(gateway.serviceName).toBe('proxy');
    expect(gateway.serviceFqdn).toBe('proxy.egress.svc.cluster.local');
    expect(gateway.suffix).toBe('egress.local');
    expect(gateway.httpPort).toBe(8080);
    expect(gateway.servicePort).toBe(80);
    expect(gateway.adminPort).toBe(9901);
    expect(gateway.tlsPort).toBeUndefined();
    expect(gateway.configReload).toBe(ConfigReload.HOT);
    expect(gateway.deployment).toBeInstanceOf(kplus.Deployment);
    expect(gateway.service).toBeInstanceOf(kplus.Service);
    expect(gateway.configMap).toBeInstanceOf(kplus.ConfigMap);
  });

  test('the Service and the Deployment select exactly the pod labels', () => {
    const labels = one(all, 'Deployment').spec.template.metadata.labels;
    expect(one(all, 'Deployment').spec.selector).toEqual({ matchLabels: gateway.podSelectorLabels });
    expect(one(all, 'Service').spec.selector).toEqual(gateway.podSelectorLabels);
    expect(one(all, 'PodDisruptionBudget').spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: gateway.podSelectorLabels } });
    for (const [k, v] of Object.entries(gateway.podSelectorLabels)) expect(labels[k]).toBe(v);
  });

  test('the Service maps port 80 to the HTTP listener and names the admin port for a ServiceMonitor', () => {
    expect(one(all, 'Service').spec.ports).toEqual([
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
      { name: 'admin', port: 9901, protocol: 'TCP', targetPort: 9901 },
    ]);
    expect(proxyContainer(all).ports).toContainEqual({ containerPort: 9901, name: 'admin' });
  });

  test('the pods run hardened: non-root, read-only root, no capabilities, RuntimeDefault seccomp, no token', () => {
    const spec = podSpec(all);
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.serviceAccountName).toBe('egress-gateway');
    expect(one(all, 'ServiceAccount').automountServiceAccountToken).toBe(false);
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532 });
    expect(proxyContainer(all).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: 65532,
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(proxyContainer(all).resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } });
  });

  test('the proxy container reads its config from the mounted ConfigMap directory', () => {
    const c = proxyContainer(all);
    expect(c.image).toBe('registry.example.com/egress/proxy:1.0.0');
    expect(c.args).toEqual(['--config', '/etc/egress/config.json']);
    expect(c.volumeMounts).toContainEqual({ mountPath: '/etc/egress', name: 'config', readOnly: true });
    expect(podSpec(all).volumes).toContainEqual({ name: 'config', configMap: { name: 'egress-gateway-config' } });
    expect(c.ports).toEqual([{ containerPort: 8080, name: 'http' }, { containerPort: 9901, name: 'admin' }]);
    expect(c.env).toEqual([
      { name: 'EGRESS_LOG_LEVEL', value: 'info' },
      { name: 'NODE_OPTIONS', value: '--max-semi-space-size=16 --expose-gc' },
      { name: 'MALLOC_ARENA_MAX', value: '2' },
    ]);
  });

  test('the proxy runs with the runtime memory settings the image also sets (PROXY_RUNTIME_ENV)', () => {
    const env: Array<{ name: string; value: string }> = proxyContainer(all).env;
    expect(Object.keys(PROXY_RUNTIME_ENV).length).toBeGreaterThan(0);
    for (const [name, value] of Object.entries(PROXY_RUNTIME_ENV)) expect(env).toContainEqual({ name, value });
  });

  test('a variable added through gateway.container.env replaces the runtime default', () => {
    const c = newChart();
    const g = new EgressGateway(c, 'egress', { image: IMAGE });
    g.container.env.addVariable('NODE_OPTIONS', kplus.EnvValue.fromValue('--max-old-space-size=256'));
    const env: Array<{ name: string; value: string }> = proxyContainer(objects(c)).env;
    expect(env.filter((e) => e.name === 'NODE_OPTIONS')).toEqual([{ name: 'NODE_OPTIONS', value: '--max-old-space-size=256' }]);
    expect(env).toContainEqual({ name: 'MALLOC_ARENA_MAX', value: '2' });
  });

  test('idleMemoryReclaim renders EGRESS_IDLE_RECLAIM_MS as the proxy reads it; unset leaves the proxy default', () => {
    const envOf = (props: EgressGatewayProps) => {
      const c = newChart();
      new EgressGateway(c, 'egress', { image: IMAGE, ...props });
      return (proxyContainer(objects(c)).env as Array<{ name: string; value: string }>).filter((e) => e.name === 'EGRESS_IDLE_RECLAIM_MS');
    };
    expect(envOf({})).toEqual([]);
    expect(idleReclaimMsFromEnv({})).toBe(DEFAULT_IDLE_RECLAIM_MS);
    for (const [d, ms] of [[Duration.minutes(5), 300_000], [Duration.seconds(0), 0], [Duration.millis(1500), 1500]] as const) {
      const env = envOf({ idleMemoryReclaim: d });
      expect(env).toEqual([{ name: 'EGRESS_IDLE_RECLAIM_MS', value: String(ms) }]);
      expect(idleReclaimMsFromEnv({ EGRESS_IDLE_RECLAIM_MS: env[0].value })).toBe(ms);
    }
  });

  test('liveness and readiness probes hit the admin port', () => {
    const c = proxyContainer(all);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/live', port: 9901, scheme: 'HTTP' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/ready', port: 9901, scheme: 'HTTP' });
  });

  test('pod annotations: Linkerd injection and Prometheus scraping, no checksum under HOT reload', () => {
    expect(one(all, 'Deployment').spec.template.metadata.annotations).toEqual({
      'linkerd.io/inject': 'enabled',
      // The sidecar keeps serving while the proxy drains: drain delay 5 s + shutdown grace 20 s.
      'config.alpha.linkerd.io/proxy-wait-before-exit-seconds': '25',
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9901',
      'prometheus.io/path': '/metrics',
    });
  });

  test('replicas spread across nodes and outlive the proxy\'s drain delay and shutdown grace', () => {
    const d = one(all, 'Deployment');
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.template.spec.topologySpreadConstraints).toEqual([{
      maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: gateway.podSelectorLabels },
    }]);
    expect(d.spec.template.spec.terminationGracePeriodSeconds).toBe(35);
    expect(config(all).timeouts.shutdownGraceMs).toBe(20_000);
    expect(config(all).timeouts.drainDelayMs).toBe(5_000);
    // The proxy waits out the drain delay itself: no preStop hook (the image has no sleep binary).
    expect(proxyContainer(all).lifecycle).toBeUndefined();
    expect(d.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
  });

  test('the ConfigMap holds the rendered proxy config', () => {
    const parsed = config(all);
    expect(parsed).toEqual(JSON.parse(JSON.stringify(gateway._renderConfig())));
    expect(parsed.apiVersion).toBe('egress.cdk8s.io/v1alpha1');
    expect(parsed.kind).toBe('EgressProxyConfig');
    expect(parsed.gateway).toEqual({ name: 'egress-gateway', namespace: 'egress' });
    expect(parsed.listeners).toEqual({
      bindAddress: '0.0.0.0',
      http: { port: 8080, suffixes: ['egress.local'], forwardProxy: false, parentPort: 80, ambiguousPaths: 'Reject', connectSni: 'RequireMatch' },
      tcp: [],
      admin: { port: 9901 },
    });
    expect(parsed.parent).toEqual({
      group: 'policy.linkerd.io',
      kind: 'EgressNetwork',
      name: 'egress-gateway',
      namespace: 'egress',
      trafficPolicy: 'Allow',
      networks: [],
      mode: 'Enforce',
      // The implicit parent: under Deny, the services declared on the gateway still leave.
      allowDeclaredServices: true,
    });
    expect(parsed.externalServices).toEqual([]);
    expect(parsed.routes).toEqual([]);
    expect(parsed.addressPolicy).toEqual({ allowCidrs: [], denyCidrs: [] });
    expect(parsed.timeouts).toEqual(DEFAULT_TIMEOUTS);
    expect(parsed.limits).toEqual(DEFAULT_LIMITS);
    expect(parsed.defaultTls).toEqual(DEFAULT_TLS);
  });

  test('the config JSON has a stable key order (apiVersion and kind first, then sorted)', () => {
    const text: string = one(all, 'ConfigMap').data['config.json'];
    expect(Object.keys(JSON.parse(text))).toEqual([
      'apiVersion', 'kind', 'addressPolicy', 'defaultTls', 'externalServices', 'gateway', 'limits', 'listeners', 'parent', 'routes', 'timeouts', 'workers',
    ]);
    expect(Object.keys(JSON.parse(text).parent)).toEqual(['allowDeclaredServices', 'group', 'kind', 'mode', 'name', 'namespace', 'networks', 'trafficPolicy']);
  });
});

describe('EgressGateway props', () => {
  test('renders every config-level prop', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', {
      name: 'edge',
      namespace: 'egress-system',
      serviceName: 'egress',
      clusterDomain: 'corp.internal',
      suffix: 'out.internal',
      additionalSuffixes: ['egress.local'],
      trafficPolicy: TrafficPolicy.DENY,
      enforcement: EnforcementMode.REPORT_ONLY,
      forwardProxy: true,
      tlsPassthrough: true,
      timeouts: { connect: Duration.seconds(3), total: Duration.minutes(5) },
      shutdownGrace: Duration.seconds(40),
      drainDelay: Duration.millis(7_500),
      allowedCidrs: ['10.20.0.0/16'],
      clusterCidrs: ['10.0.0.0/14', 'fd00:10::/64'],
      maxConcurrentRequests: 500,
      maxHeaderBytes: 32768,
      maxClientConnections: 3000,
      clientKeepAliveTimeout: Duration.seconds(75),
      ambiguousPaths: AmbiguousPathAction.UNESCAPE_AND_FORWARD,
      connectSni: ConnectSniPolicy.MATCH_IF_PRESENT,
      logLevel: LogLevel.DEBUG,
      image: IMAGE,
    });
    const all = objects(chart);
    const parsed = config(all);
    expect(gw.serviceFqdn).toBe('egress.egress-system.svc.corp.internal');
    expect(gw.suffixes).toEqual(['out.internal', 'egress.local']);
    expect(parsed.gateway).toEqual({ name: 'edge', namespace: 'egress-system' });
    expect(parsed.listeners.http).toEqual({
      port: 8080, suffixes: ['out.internal', 'egress.local'], forwardProxy: true, parentPort: 80, ambiguousPaths: 'UnescapeAndForward', connectSni: 'MatchIfPresent',
    });
    expect(parsed.listeners.tls).toEqual({ port: 8443, parentPort: 443 });
    expect(parsed.parent).toMatchObject({ name: 'edge', namespace: 'egress-system', trafficPolicy: 'Deny', mode: 'ReportOnly' });
    expect(parsed.addressPolicy).toEqual({ allowCidrs: ['10.20.0.0/16'], denyCidrs: ['10.0.0.0/14', 'fd00:10::/64'] });
    expect(parsed.timeouts).toEqual({
      ...DEFAULT_TIMEOUTS, connectMs: 3000, totalMs: 300_000, shutdownGraceMs: 40_000, drainDelayMs: 7_500, clientKeepAliveMs: 75_000,
    });
    expect(parsed.limits).toEqual({ maxConcurrent: 500, maxHeaderBytes: 32768, maxClientConnections: 3000 });
    expect(parsed.timeouts.clientKeepAliveMs).toBe(75_000);
    expect(one(all, 'Service').metadata.name).toBe('egress');
    expect(one(all, 'Service').spec.ports).toEqual([
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
      { name: 'admin', port: 9901, protocol: 'TCP', targetPort: 9901 },
      { name: 'tls', port: 443, protocol: 'TCP', targetPort: 8443 },
    ]);
    expect(proxyContainer(all).ports).toContainEqual({ containerPort: 8443, name: 'tls' });
    expect(proxyContainer(all).env.filter((e: { name: string }) => e.name === 'EGRESS_LOG_LEVEL')).toEqual([{ name: 'EGRESS_LOG_LEVEL', value: 'debug' }]);
    // 7.5 s + 40 s, rounded up, + 10 s.
    expect(podSpec(all).terminationGracePeriodSeconds).toBe(58);
    const annotations = one(all, 'Deployment').spec.template.metadata.annotations;
    expect(annotations['config.alpha.linkerd.io/proxy-wait-before-exit-seconds']).toBe('48');
  });

  test('createNamespace: false leaves the Namespace out', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { createNamespace: false, image: IMAGE });
    expect(objects(chart).map((o) => o.kind)).not.toContain('Namespace');
  });

  test('a single replica gets no PodDisruptionBudget', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { replicas: 1, image: IMAGE });
    const all = objects(chart);
    expect(all.map((o) => o.kind)).not.toContain('PodDisruptionBudget');
    expect(one(all, 'Deployment').spec.replicas).toBe(1);
  });

  test('three replicas keep the budget at one pod down', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { replicas: 3, image: IMAGE });
    expect(one(objects(chart), 'PodDisruptionBudget').spec.maxUnavailable).toBe(1);
  });

  test('Linkerd injection and Prometheus annotations can be switched off', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { linkerdInject: false, prometheusScrape: false, image: IMAGE });
    expect(one(objects(chart), 'Deployment').spec.template.metadata.annotations).toBeUndefined();
  });

  test('custom resources replace the defaults', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { image: IMAGE, resources: { cpu: { request: kplus.Cpu.millis(250) }, memory: { request: Size.mebibytes(64), limit: Size.mebibytes(256) } } });
    expect(proxyContainer(objects(chart)).resources).toEqual({ requests: { cpu: '250m', memory: '64Mi' }, limits: { memory: '256Mi' } });
  });

  test('an explicit terminationGracePeriod above the drain delay and shutdown grace is used', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { image: IMAGE, drainDelay: Duration.seconds(2), shutdownGrace: Duration.seconds(5), terminationGracePeriod: Duration.seconds(8) });
    expect(podSpec(objects(chart)).terminationGracePeriodSeconds).toBe(8);
  });
});

describe('EgressGateway config reload', () => {
  const checksum = (all: Manifest[]) => one(all, 'Deployment').spec.template.metadata.annotations?.['egress.cdk8s.io/config-checksum'];

  test('ROLLING puts a checksum of the config on the pod template, and it changes with the config', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { configReload: ConfigReload.ROLLING, image: IMAGE });
    const before = checksum(objects(chart));
    expect(before).toMatch(/^[a-f0-9]{64}$/);
    expect(checksum(objects(chart))).toBe(before);
    gw.addExternalService('github', { host: 'api.github.com' });
    const after = checksum(objects(chart));
    expect(after).toMatch(/^[a-f0-9]{64}$/);
    expect(after).not.toBe(before);
  });

  test('HOT leaves the pod template alone when the config changes', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    const before = JSON.stringify(one(objects(chart), 'Deployment'));
    gw.addExternalService('github', { host: 'api.github.com' });
    const all = objects(chart);
    expect(checksum(all)).toBeUndefined();
    expect(JSON.stringify(one(all, 'Deployment'))).toBe(before);
  });
});

describe('EgressGateway external services', () => {
  test('a service added after construction lands in the ConfigMap', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    const svc = gw.addExternalService('github', { host: 'api.github.com' });
    expect(svc.node.scope).toBe(gw);
    expect(svc.namespace).toBe('egress');
    const parsed = config(objects(chart));
    expect(parsed.externalServices).toEqual([JSON.parse(JSON.stringify(svc._toSpec()))]);
    expect(parsed.externalServices[0]).toMatchObject({ name: 'github', host: 'api.github.com', ports: [{ port: 80, protocol: 'http', targetPort: 443 }] });
  });

  test('Secrets and ConfigMaps are mounted once each, read-only, where the config points', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    gw.addExternalService('github', { host: 'api.github.com', injectHeaders: [InjectedHeader.fromSecret('Authorization', 'api-tokens', 'github')] });
    gw.addExternalService('stripe', {
      host: 'api.stripe.com',
      injectHeaders: [InjectedHeader.fromSecret('Authorization', 'api-tokens', 'stripe')],
      tls: TlsOrigination.originate({
        caCertificate: CertificateSource.fromConfigMap('corp.ca', 'ca.crt'),
        clientCertificate: CertificateSource.fromSecret('stripe-mtls', 'tls.crt'),
        clientKey: CertificateSource.fromSecret('stripe-mtls', 'tls.key'),
      }),
    });
    const all = objects(chart);
    const spec = podSpec(all);
    const secretVolumes = spec.volumes.filter((v: any) => v.secret);
    expect(secretVolumes).toEqual([
      { name: 'secret-api-tokens', secret: { secretName: 'api-tokens', defaultMode: 0o440 } },
      { name: 'secret-stripe-mtls', secret: { secretName: 'stripe-mtls', defaultMode: 0o440 } },
    ]);
    const caVolume = spec.volumes.find((v: any) => v.configMap?.name === 'corp.ca');
    expect(caVolume.name).toMatch(/^configmap-corp-ca-[a-f0-9]{8}$/);
    const mounts = proxyContainer(all).volumeMounts;
    expect(mounts).toContainEqual({ name: 'secret-api-tokens', mountPath: '/var/run/egress/secrets/api-tokens', readOnly: true });
    expect(mounts).toContainEqual({ name: 'secret-stripe-mtls', mountPath: '/var/run/egress/secrets/stripe-mtls', readOnly: true });
    expect(mounts).toContainEqual({ name: caVolume.name, mountPath: '/var/run/egress/configmaps/corp.ca', readOnly: true });

    const parsed = config(all);
    const stripe = parsed.externalServices.find((s) => s.name === 'stripe')!;
    expect(stripe.injectHeaders).toEqual([{ name: 'Authorization', valueFile: '/var/run/egress/secrets/api-tokens/stripe' }]);
    expect(stripe.tls.clientKeyFile).toBe('/var/run/egress/secrets/stripe-mtls/tls.key');
    expect(stripe.tls.caFile).toBe('/var/run/egress/configmaps/corp.ca/ca.crt');
    // every file the config names sits under a mounted directory
    const files = [
      stripe.tls.caFile!, stripe.tls.clientCertFile!, stripe.tls.clientKeyFile!,
      ...parsed.externalServices.flatMap((s) => s.injectHeaders.map((h) => h.valueFile)),
    ];
    for (const f of files) expect(mounts.some((m: any) => f.startsWith(`${m.mountPath}/`))).toBe(true);
  });

  test('an object name too long for a volume name gets a shortened, hashed, stable volume name', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    const longName = `partner-${'x'.repeat(70)}`;
    gw.addExternalService('partner', { host: 'api.partner.example', injectHeaders: [InjectedHeader.fromSecret('X-Api-Key', longName, 'key')] });
    const volume = podSpec(objects(chart)).volumes.find((v: any) => v.secret?.secretName === longName);
    expect(volume.name.length).toBeLessThanOrEqual(63);
    expect(volume.name).toMatch(/^secret-partner-x+-[a-f0-9]{8}$/);
    expect(podSpec(objects(chart)).volumes.find((v: any) => v.secret?.secretName === longName).name).toBe(volume.name);
  });

  test('a CA for undeclared hosts (defaultTls) is mounted and named in the config', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { image: IMAGE, defaultTls: TlsOrigination.originate({ caCertificate: CertificateSource.fromConfigMap('corp-ca', 'ca.crt') }) });
    const all = objects(chart);
    expect(config(all).defaultTls.caFile).toBe('/var/run/egress/configmaps/corp-ca/ca.crt');
    expect(podSpec(all).volumes).toContainEqual({ name: 'configmap-corp-ca', configMap: { name: 'corp-ca', defaultMode: 0o444 } });
    expect(proxyContainer(all).volumeMounts).toContainEqual({ name: 'configmap-corp-ca', mountPath: '/var/run/egress/configmaps/corp-ca', readOnly: true });
  });

  test('a TCP port gets its own listener, container port and Service port; other HTTP ports share the HTTP listener', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    gw.addExternalService('pg', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
    gw.addExternalService('grpc', { host: 'grpc.example.com', ports: [{ port: 9000, protocol: ExternalServiceProtocol.GRPC }] });
    gw.addExternalService('grpc2', { host: 'grpc2.example.com', ports: [{ port: 9000, protocol: ExternalServiceProtocol.GRPC }] });
    const all = objects(chart);
    expect(config(all).listeners.tcp).toEqual([{ port: 10000, externalService: 'pg', servicePort: 5432 }]);
    expect(proxyContainer(all).ports).toContainEqual({ containerPort: 10000, name: 'tcp-10000' });
    expect(one(all, 'Service').spec.ports).toEqual([
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
      { name: 'admin', port: 9901, protocol: 'TCP', targetPort: 9901 },
      { name: 'tcp-5432', port: 5432, protocol: 'TCP', targetPort: 10000 },
      { name: 'http-9000', port: 9000, protocol: 'TCP', targetPort: 8080 },
    ]);
  });

  test('proxyPorts and upstreamPorts follow the services added', () => {
    const gw = new EgressGateway(newChart(), 'egress', { image: IMAGE, tlsPassthrough: true, allowedCidrs: ['10.20.0.0/16'], clusterCidrs: ['10.96.0.0/12'] });
    expect(gw.proxyPorts).toEqual([8080, 8443]);
    expect(gw.upstreamPorts).toEqual([443]);
    gw.addExternalService('pg', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
    gw.addExternalService('api', { host: 'api.example.com', ports: [{ port: 80, targetPort: 8443 }], endpoints: [{ address: '203.0.113.5', port: 9443 }] });
    expect(gw.proxyPorts).toEqual([8080, 8443, 10000]);
    expect(gw.upstreamPorts).toEqual([443, 5432, 8443, 9443]);
    expect(gw.allowedCidrs).toEqual(['10.20.0.0/16']);
    expect(gw.clusterCidrs).toEqual(['10.96.0.0/12']);
    expect(gw.forwardProxy).toBe(false);
  });

  test('TCP listener ports are opaque to Linkerd (no protocol sniffing), on pods and Service', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    gw.addExternalService('pg', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
    gw.addExternalService('smtp', { host: 'smtp.example.com', ports: [{ port: 25, protocol: ExternalServiceProtocol.TCP }] });
    const all = objects(chart);
    expect(one(all, 'Deployment').spec.template.metadata.annotations['config.linkerd.io/opaque-ports']).toBe('10000,10001');
    expect(one(all, 'Service').metadata.annotations).toEqual({ 'config.linkerd.io/opaque-ports': '5432,25' });
  });

  test('without Linkerd injection no opaque-ports annotation is written', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE, linkerdInject: false });
    gw.addExternalService('pg', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
    const all = objects(chart);
    expect(one(all, 'Deployment').spec.template.metadata.annotations['config.linkerd.io/opaque-ports']).toBeUndefined();
    expect(one(all, 'Service').metadata.annotations).toBeUndefined();
  });

  test('throws when a host is declared twice on one gateway', () => {
    const gw = new EgressGateway(newChart(), 'egress', { image: IMAGE });
    gw.addExternalService('github', { host: 'api.github.com' });
    expect(() => gw.addExternalService('github2', { host: 'api.github.com' }))
      .toThrow(/EgressGateway "test\/egress": 'host' "api.github.com" of ExternalService "test\/egress\/github2" is already served by ExternalService "test\/egress\/github"; declare each host once per gateway/);
    expect(gw.externalServices).toHaveLength(1);
  });

  test('throws when two services get the same name', () => {
    const gw = new EgressGateway(newChart(), 'egress', { image: IMAGE });
    gw.addExternalService('GitHub', { host: 'api.github.com' });
    expect(() => gw.addExternalService('github', { host: 'github.com' })).toThrow(/'name' "github" of ExternalService "test\/egress\/github" is already used/);
  });

  test('throws when a TCP port collides with another service\'s port', () => {
    const gw = new EgressGateway(newChart(), 'egress', { image: IMAGE });
    gw.addExternalService('pg', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
    expect(() => gw.addExternalService('pg2', { host: 'db2.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] }))
      .toThrow(/'ports' 5432 of ExternalService "test\/egress\/pg2" \(tcp\) is already taken on Service "proxy" by TCP port of ExternalService "test\/egress\/pg"/);
  });

  test('throws when a TCP port would take the HTTP listener\'s port 80', () => {
    const gw = new EgressGateway(newChart(), 'egress', { image: IMAGE });
    expect(() => gw.addExternalService('raw', { host: 'raw.example.com', ports: [{ port: 80, protocol: ExternalServiceProtocol.TCP }] }))
      .toThrow(/'ports' 80 .* is already taken on Service "proxy" by the HTTP listener/);
  });

  test('throws when an HTTP port would take the TLS passthrough port', () => {
    const gw = new EgressGateway(newChart(), 'egress', { image: IMAGE, tlsPassthrough: true });
    expect(() => gw.addExternalService('x', { host: 'x.example.com', ports: [{ port: 443 }] }))
      .toThrow(/is already taken on Service "proxy" by the TLS passthrough listener/);
  });

  test('throws at synth when a host is under the gateway suffix (the gateway would call itself)', () => {
    const app = Testing.app();
    const chart = new Chart(app, 'test');
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    gw.addExternalService('loop', { host: 'api.github.com.egress.local' });
    expect(() => app.synthYaml()).toThrow(/'host' "api.github.com.egress.local" of ExternalService "test\/egress\/loop" is under the gateway suffix "egress.local", so the gateway would call itself; use the real upstream name, e.g. "api.github.com"/);
  });
});

describe('EgressGateway networks', () => {
  test('an attached network is the parent and supplies the routes', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    const net = new EgressNetwork(chart, 'internet', { namespace: 'apps' });
    gw.attachNetwork(net);
    gw.attachNetwork(net); // the same network again is a no-op
    expect(gw.network).toBe(net);
    const parsed = config(objects(chart));
    expect(parsed.parent).toEqual(JSON.parse(JSON.stringify(net._renderParent())));
    expect(parsed.parent.namespace).toBe('apps');
    // An attached network's routes decide: declared services get no allowance of their own.
    expect(parsed.parent.allowDeclaredServices).toBeUndefined();
    expect(parsed.routes).toEqual(JSON.parse(JSON.stringify(net._renderRoutes())));
  });

  test('the network prop attaches it too, and the gateway\'s enforcement overrides its mode', () => {
    const chart = newChart();
    const net = new EgressNetwork(chart, 'internet', { namespace: 'apps' });
    new EgressGateway(chart, 'egress', { image: IMAGE, network: net, enforcement: EnforcementMode.REPORT_ONLY });
    const parent = config(objects(chart)).parent;
    expect(parent.name).toBe(net._renderParent().name);
    expect(parent.mode).toBe('ReportOnly');
  });

  test('throws when a second network is attached', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', { image: IMAGE });
    gw.attachNetwork(new EgressNetwork(chart, 'a', { namespace: 'apps' }));
    expect(() => gw.attachNetwork(new EgressNetwork(chart, 'b', { namespace: 'apps' })))
      .toThrow(/EgressGateway "test\/egress": 'network' EgressNetwork "test\/b" cannot be attached because EgressNetwork "test\/a" already is, and a gateway enforces exactly one parent; attach "test\/b" to another EgressGateway/);
  });

  test('throws at synth when trafficPolicy is set on a gateway with a network', () => {
    const app = Testing.app();
    const chart = new Chart(app, 'test');
    const net = new EgressNetwork(chart, 'internet', { namespace: 'apps' });
    new EgressGateway(chart, 'egress', { image: IMAGE, network: net, trafficPolicy: TrafficPolicy.DENY });
    expect(() => app.synthYaml()).toThrow(/'trafficPolicy' "Deny" is set although EgressNetwork "test\/internet" is attached and decides what unmatched traffic gets; set trafficPolicy on the EgressNetwork/);
  });
});

describe('EgressGateway validation', () => {
  test('throws when several props are wrong, listing every problem in one error', () => {
    const message = errorOf(() => new EgressGateway(newChart(), 'egress', {
      namespace: 'Egress_NS',
      suffix: 'egress..local',
      replicas: 0,
      allowedCidrs: ['10.0.0.0'],
      clusterCidrs: ['10.0.0.1/8'],
      maxHeaderBytes: 10,
    }));
    expect(message.split('\n')[0]).toBe('EgressGateway "test/egress": 6 problems:');
    expect(message).toContain("'namespace' \"Egress_NS\" is not a DNS label");
    expect(message).toContain("'suffix' \"egress..local\" is not a valid DNS name (empty label); did you mean \"egress.local\"?");
    expect(message).toContain("'replicas' 0 must be a whole number of at least 1");
    expect(message).toContain("'allowedCidrs[0]' \"10.0.0.0\" is not a CIDR");
    expect(message).toContain("'clusterCidrs[0]' \"10.0.0.1/8\" is not a CIDR");
    expect(message).toContain("'maxHeaderBytes' 10");
  });

  test('throws when the connection settings are outside the bounds the proxy enforces', () => {
    const message = errorOf(() => new EgressGateway(newChart(), 'egress', {
      maxClientConnections: 0,
      clientKeepAliveTimeout: Duration.millis(50),
    }));
    expect(message).toContain(`'maxClientConnections' 0 must be a whole number from 1 to ${LIMIT_BOUNDS.maxClientConnections.max}; use e.g. 20000`);
    expect(message).toContain("'clientKeepAliveTimeout' \"50 millis\" must be from 100 ms to 3600 s; use e.g. Duration.seconds(5)");
  });

  test('throws when idleMemoryReclaim is past an hour or not whole milliseconds', () => {
    const long = errorOf(() => new EgressGateway(newChart(), 'egress', { idleMemoryReclaim: Duration.minutes(90) }));
    expect(long).toContain("EgressGateway \"test/egress\": 'idleMemoryReclaim' \"1 hour 30 minutes\" must be zero (off) or up to 60 minutes; use e.g. Duration.minutes(1), or Duration.seconds(0) to turn it off");
    const fraction = errorOf(() => new EgressGateway(newChart(), 'egress', { idleMemoryReclaim: Duration.millis(0.5) }));
    expect(fraction).toContain("'idleMemoryReclaim' \"0.5 millis\" must be a whole number of milliseconds, zero or more");
  });

  test('ambiguous paths are rejected unless told otherwise', () => {
    const all = objects((() => {
      const chart = newChart();
      new EgressGateway(chart, 'egress');
      return chart;
    })());
    expect(config(all).listeners.http.ambiguousPaths).toBe('Reject');
    expect(config(all).listeners.http.connectSni).toBe('RequireMatch');
  });

  test('throws when connectSni is not a ConnectSniPolicy, with the other problems', () => {
    const message = errorOf(() => new EgressGateway(newChart(), 'egress', {
      connectSni: 'Always' as ConnectSniPolicy, ambiguousPaths: 'x' as AmbiguousPathAction,
    }));
    expect(message).toContain("'connectSni' \"Always\" is not one of \"RequireMatch\", \"MatchIfPresent\"; use a ConnectSniPolicy member");
    expect(message).toContain("'ambiguousPaths' \"x\"");
  });

  test('throws when ambiguousPaths is not an AmbiguousPathAction', () => {
    const message = errorOf(() => new EgressGateway(newChart(), 'egress', { ambiguousPaths: 'Unescape' as AmbiguousPathAction }));
    expect(message).toContain("'ambiguousPaths' \"Unescape\" is not one of \"Reject\", \"UnescapeAndForward\", \"KeepUnchanged\"; use a AmbiguousPathAction member");
  });

  test('throws when terminationGracePeriod is not above drainDelay plus shutdownGrace', () => {
    expect(() => new EgressGateway(newChart(), 'egress', { shutdownGrace: Duration.seconds(30), terminationGracePeriod: Duration.seconds(31) }))
      .toThrow(/'terminationGracePeriod' "31 seconds" must be whole seconds and longer than 'drainDelay' plus 'shutdownGrace' \(5 s \+ 30 s\).*use at least Duration.seconds\(36\)/);
    expect(() => new EgressGateway(newChart(), 'egress', { drainDelay: Duration.seconds(0), shutdownGrace: Duration.seconds(30), terminationGracePeriod: Duration.seconds(31) }))
      .not.toThrow();
  });

  test('drainDelay 0 stops listening at once; the Linkerd sidecar waits for the grace alone', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { image: IMAGE, drainDelay: Duration.seconds(0) });
    const all = objects(chart);
    expect(config(all).timeouts.drainDelayMs).toBe(0);
    expect(podSpec(all).terminationGracePeriodSeconds).toBe(30);
    expect(one(all, 'Deployment').spec.template.metadata.annotations['config.alpha.linkerd.io/proxy-wait-before-exit-seconds']).toBe('20');
  });

  test('throws when drainDelay is negative or longer than 5 minutes', () => {
    expect(errorOf(() => new EgressGateway(newChart(), 'egress', { drainDelay: Duration.minutes(6) })))
      .toContain("'drainDelay' \"6 minutes\" must be at most 300 s: endpoint removal does not take longer; use e.g. Duration.seconds(5), or Duration.seconds(0) to stop listening at once");
    expect(errorOf(() => new EgressGateway(newChart(), 'egress', { drainDelay: Duration.millis(0.5) })))
      .toContain("'drainDelay' \"0.5 millis\" must be a whole number of milliseconds");
  });

  test('throws when the suffix is a wildcard', () => {
    expect(() => new EgressGateway(newChart(), 'egress', { suffix: '*.egress.local' })).toThrow(/'suffix' "\*.egress.local" is not a valid DNS name \(wildcards are not allowed here\)/);
  });

  test('throws when an additional suffix repeats the main one', () => {
    expect(() => new EgressGateway(newChart(), 'egress', { additionalSuffixes: ['egress.local'] })).toThrow(/'additionalSuffixes\[0\]' "egress.local" is already accepted/);
  });

  test('throws when the default TLS is disabled', () => {
    expect(() => new EgressGateway(newChart(), 'egress', { defaultTls: TlsOrigination.disabled() }))
      .toThrow(/'defaultTls' "TlsOrigination.disabled\(\)" would send every undeclared host plaintext/);
  });

  test('throws when the service name is not a DNS label', () => {
    expect(() => new EgressGateway(newChart(), 'egress', { serviceName: 'Proxy.Svc' })).toThrow(/'serviceName' "Proxy.Svc" is not a DNS label.*use e.g. "proxy-svc"/);
  });
});

describe('EgressGateway config contract', () => {
  test('a full-featured config passes the proxy\'s own boundary validation unchanged', () => {
    const chart = newChart();
    const gw = new EgressGateway(chart, 'egress', {
      image: IMAGE,
      tlsPassthrough: true,
      forwardProxy: true,
      trafficPolicy: TrafficPolicy.DENY,
      enforcement: EnforcementMode.REPORT_ONLY,
      allowedCidrs: ['10.20.0.0/16'],
      clusterCidrs: ['10.0.0.0/14', 'fd00:10::/64'],
      additionalSuffixes: ['out.internal'],
      timeouts: { total: Duration.minutes(1) },
      maxConcurrentRequests: 100,
    });
    gw.addExternalService('github', {
      host: 'api.github.com',
      injectHeaders: [InjectedHeader.fromSecret('Authorization', 'tokens', 'github')],
      retries: { maxRetries: 1, perTryTimeout: Duration.seconds(2) },
      timeouts: { connect: Duration.seconds(1) },
      connectionPool: { maxConnections: 4 },
    });
    gw.addExternalService('s3', {
      host: '*.s3.amazonaws.com',
      endpoints: [{ address: '203.0.113.1', port: 443 }, { address: 'backup.example.com', priority: 1 }, { address: '2001:db8::1', priority: 2 }],
    });
    gw.addExternalService('pg', {
      host: 'db.example.com',
      ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }, { port: 9000, protocol: ExternalServiceProtocol.GRPC }],
      tls: TlsOrigination.originate({
        caCertificate: CertificateSource.fromConfigMap('corp-ca', 'ca.crt'),
        clientCertificate: CertificateSource.fromSecret('pg-mtls', 'tls.crt'),
        clientKey: CertificateSource.fromSecret('pg-mtls', 'tls.key'),
        serverName: 'db.internal.example.com',
      }),
    });
    gw.addExternalService('legacy', { host: 'legacy.example.com', tls: TlsOrigination.disabled() });
    const parsed = config(objects(chart));
    const result = validateConfig(parsed);
    expect(result.ok ? [] : result.problems).toEqual([]);
    // The proxy's only normalisation: header names to lower case (HTTP names are case-insensitive).
    const expected = {
      ...parsed,
      externalServices: parsed.externalServices.map((e) => ({
        ...e,
        injectHeaders: e.injectHeaders.map((h) => ({ ...h, name: h.name.toLowerCase() })),
      })),
    };
    expect(result.ok && JSON.parse(JSON.stringify(result.config))).toEqual(expected);
  });
});

describe('EgressGateway manifests', () => {
  test('a full-featured chart passes the strict validator against the Kubernetes schemas', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'egress-gateway-'));
    try {
      const app = new App({ outdir });
      const chart = new Chart(app, 'egress');
      const gw = new EgressGateway(chart, 'gateway', {
        image: IMAGE, tlsPassthrough: true, forwardProxy: true, configReload: ConfigReload.ROLLING, replicas: 3,
      });
      // The CA bundle is part of the set, as the validator checks ConfigMap references.
      new ApiObject(chart, 'CorpCa', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'corp-ca', namespace: 'egress' }, data: { 'ca.crt': 'x' } });
      gw.addExternalService('github', { host: 'api.github.com', injectHeaders: [InjectedHeader.fromSecret('Authorization', 'github-token', 'token')] });
      gw.addExternalService('pg', {
        host: 'db.example.com',
        ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }],
        tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromConfigMap('corp-ca', 'ca.crt') }),
      });
      gw.addExternalService('s3', { host: '*.s3.amazonaws.com', ports: [{ port: 80 }, { port: 8080, protocol: ExternalServiceProtocol.HTTP2 }] });
      app.synth();
      expect(readdirSync(outdir).length).toBeGreaterThan(0);
      const result = validatePath(outdir);
      expect(result.messages).toEqual([]);
      expect(result.passed).toBeGreaterThan(5);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe('EgressGateway node-local (GatewayDeployment.NODE_LOCAL)', () => {
  function nodeLocal(extra: Record<string, unknown> = {}): { chart: Chart; gateway: EgressGateway } {
    const chart = newChart();
    const gateway = new EgressGateway(chart, 'egress', { image: IMAGE, deployment: GatewayDeployment.NODE_LOCAL, ...extra });
    return { chart, gateway };
  }

  function client(chart: Chart, name = 'hello'): kplus.Deployment {
    const d = new kplus.Deployment(chart, name, { metadata: { name, namespace: 'apps' }, replicas: 1 });
    d.addContainer({ name, image: 'curlimages/curl:8.10.1', securityContext: { user: 100, group: 101 } });
    return d;
  }

  function envOf(all: Manifest[], name: string): Array<{ name: string; value?: string; valueFrom?: unknown }> {
    const dep = all.find((o) => o.kind === 'Deployment' && o.metadata.name === name)!;
    return dep.spec.template.spec.containers[0].env;
  }

  const { chart, gateway } = nodeLocal();
  const all = objects(chart);
  const daemonSet = one(all, 'DaemonSet');

  test('snapshot', () => {
    expect(all).toMatchSnapshot();
  });

  test('emits a DaemonSet instead of the Deployment, and no PodDisruptionBudget', () => {
    expect(all.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`)).toEqual([
      'v1 Namespace egress',
      'v1 ServiceAccount egress-gateway',
      'v1 ConfigMap egress-gateway-config',
      'apps/v1 DaemonSet egress-gateway',
      'v1 Service proxy',
    ]);
    expect(gateway.deploymentMode).toBe(GatewayDeployment.NODE_LOCAL);
    expect(gateway.daemonSet).toBeInstanceOf(kplus.DaemonSet);
    expect(gateway.deployment).toBeUndefined();
    expect(gateway.workload).toBe(gateway.daemonSet);
    expect(daemonSet.metadata.namespace).toBe('egress');
  });

  test('the Service keeps traffic on the client\'s node and selects the DaemonSet\'s pods', () => {
    const svc = one(all, 'Service');
    expect(svc.spec.internalTrafficPolicy).toBe('Local');
    expect(svc.spec.selector).toEqual(gateway.podSelectorLabels);
    expect(daemonSet.spec.selector).toEqual({ matchLabels: gateway.podSelectorLabels });
    expect(daemonSet.spec.template.metadata.labels).toMatchObject(gateway.podSelectorLabels);
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }, { name: 'admin', port: 9901, protocol: 'TCP', targetPort: 9901 }]);
  });

  test('the default Deployment gateway\'s Service keeps the cluster-wide traffic policy', () => {
    const c = newChart();
    new EgressGateway(c, 'egress', { image: IMAGE });
    expect(one(objects(c), 'Service').spec.internalTrafficPolicy).toBeUndefined();
  });

  test('the pod template is the Deployment\'s, hardening, probes, annotations and mounts included, minus the topology spread', () => {
    const c = newChart();
    new EgressGateway(c, 'egress', { image: IMAGE });
    const deploymentPod = JSON.parse(JSON.stringify(one(objects(c), 'Deployment').spec.template));
    delete deploymentPod.spec.topologySpreadConstraints;
    expect(daemonSet.spec.template).toEqual(deploymentPod);
    expect(daemonSet.spec.template.spec.topologySpreadConstraints).toBeUndefined();
    // Spot checks, so this test does not pass merely because both sides lost something.
    const pod = daemonSet.spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    expect(pod.containers[0].readinessProbe.httpGet).toEqual({ path: '/ready', port: 9901, scheme: 'HTTP' });
    expect(daemonSet.spec.template.metadata.annotations).toMatchObject({ 'linkerd.io/inject': 'enabled', 'prometheus.io/scrape': 'true' });
    expect(pod.volumes.find((v: any) => v.name === 'config').configMap.name).toBe('egress-gateway-config');
  });

  test('rollouts surge first: each node\'s new proxy is ready before the old one stops', () => {
    expect(daemonSet.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  });

  test('forwardProxy is on by default (clients use http_proxy), and can be turned off', () => {
    expect(gateway.forwardProxy).toBe(true);
    expect(config(all).listeners.http.forwardProxy).toBe(true);
    const off = nodeLocal({ forwardProxy: false });
    expect(config(objects(off.chart)).listeners.http.forwardProxy).toBe(false);
  });

  test('no hostPort unless asked', () => {
    expect(gateway.hostPort).toBeUndefined();
    for (const p of daemonSet.spec.template.spec.containers[0].ports) expect(p.hostPort).toBeUndefined();
  });

  test('hostPort exposes the HTTP listener on the node, and rollouts replace each node\'s pod in place', () => {
    const { chart: c, gateway: g } = nodeLocal({ hostPort: 4140 });
    const ds = one(objects(c), 'DaemonSet');
    expect(g.hostPort).toBe(4140);
    expect(ds.spec.template.spec.containers[0].ports).toEqual([
      { containerPort: 8080, name: 'http', hostPort: 4140 },
      { containerPort: 9901, name: 'admin' },
    ]);
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
    expect(g._egressTarget().hostPort).toBe(4140);
  });

  test('ROLLING reload and TCP listeners annotate the DaemonSet\'s pods', () => {
    const { chart: c, gateway: g } = nodeLocal({ configReload: ConfigReload.ROLLING });
    g.addExternalService('pg', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
    const annotations = one(objects(c), 'DaemonSet').spec.template.metadata.annotations;
    expect(annotations['egress.cdk8s.io/config-checksum']).toMatch(/^[0-9a-f]{64}$/);
    expect(annotations['config.linkerd.io/opaque-ports']).toBe('10000');
  });

  test('configureClient in forward-proxy mode points http_proxy at the node-local Service', () => {
    const { chart: c, gateway: g } = nodeLocal();
    g.configureClient(client(c), { mode: EgressClientMode.FORWARD_PROXY });
    const env = envOf(objects(c), 'hello');
    const proxy = 'http://proxy.egress.svc.cluster.local:80';
    expect(env.map((e) => e.name)).toEqual(['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']);
    expect(env.find((e) => e.name === 'http_proxy')!.value).toBe(proxy);
    expect(env.find((e) => e.name === 'HTTP_PROXY')!.value).toBe(proxy);
  });

  test('configureClient with NODE_IP sets NODE_IP from the downward API first, then http_proxy to the node\'s host port', () => {
    const { chart: c, gateway: g } = nodeLocal({ hostPort: 4140 });
    g.configureClient(client(c), { mode: EgressClientMode.FORWARD_PROXY, proxyAddress: EgressClientProxyAddress.NODE_IP });
    const all2 = objects(c);
    const env = envOf(all2, 'hello');
    // NODE_IP must come first: the kubelet expands $(VAR) only from variables defined earlier.
    expect(env[0]).toEqual({ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) {
      expect(env.find((e) => e.name === name)!.value).toBe('http://$(NODE_IP):4140');
    }
    const labels = all2.find((o) => o.kind === 'Deployment' && o.metadata.name === 'hello')!.spec.template.metadata.labels;
    expect(labels['egress.cdk8s.io/gateway']).toBe('proxy.egress');
  });

  test('the gateway NetworkPolicy selects the DaemonSet\'s pods and admits labelled clients on the container port', () => {
    const { chart: c, gateway: g } = nodeLocal({ hostPort: 4140 });
    g.lockDown();
    const all2 = objects(c);
    const policy = all2.find((o) => o.kind === 'NetworkPolicy')!;
    const podLabels = one(all2, 'DaemonSet').spec.template.metadata.labels;
    for (const [k, v] of Object.entries(policy.spec.podSelector.matchLabels)) expect(podLabels[k]).toBe(v);
    expect(Object.keys(policy.spec.podSelector.matchLabels).length).toBeGreaterThan(0);
    const clientRule = policy.spec.ingress.find((r: any) => r.from.some((f: any) => f.podSelector?.matchLabels?.['egress.cdk8s.io/gateway'] === 'proxy.egress'));
    expect(clientRule.ports).toEqual([{ port: 8080, protocol: 'TCP' }]);
  });

  test('throws when replicas is set on a node-local gateway', () => {
    expect(() => nodeLocal({ replicas: 3 })).toThrow(
      "EgressGateway \"test/egress\": 'replicas' 3 cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL, which runs exactly one proxy per node; remove replicas");
  });

  test('throws when hostPort is set on a Deployment gateway', () => {
    expect(() => new EgressGateway(newChart(), 'egress', { hostPort: 4140 })).toThrow(
      /'hostPort' 4140 needs 'deployment' GatewayDeployment.NODE_LOCAL.*; set deployment: GatewayDeployment.NODE_LOCAL, or remove hostPort/);
  });

  test.each([
    [80, /'hostPort' 80 must be a whole number from 1024 to 65535/],
    [4140.5, /'hostPort' 4140.5 must be a whole number from 1024 to 65535/],
    [70000, /'hostPort' 70000 must be a whole number from 1024 to 65535/],
    [10250, /'hostPort' 10250 is in 10248-10259, where the kubelet and kube-proxy listen/],
    [30080, /'hostPort' 30080 is in the NodePort range 30000-32767/],
  ])('throws when hostPort is %p', (port, message) => {
    expect(() => nodeLocal({ hostPort: port })).toThrow(message);
  });

  test('throws when hostPort is combined with forwardProxy: false, listing every problem at once', () => {
    const message = errorOf(() => nodeLocal({ hostPort: 80, forwardProxy: false, replicas: 2 }));
    expect(message.split('\n')[0]).toBe('EgressGateway "test/egress": 3 problems:');
    expect(message).toContain("'forwardProxy' false cannot be combined with 'hostPort' 80");
    expect(message).toContain("'hostPort' 80 must be a whole number");
    expect(message).toContain("'replicas' 2 cannot be set");
  });

  test('throws when deployment is not a GatewayDeployment', () => {
    expect(() => nodeLocal({ deployment: 'DaemonSet' })).toThrow(/'deployment' "DaemonSet" is not one of "Deployment", "NodeLocal"; use a GatewayDeployment member/);
  });

  test('throws when a NODE_IP client\'s gateway has no hostPort', () => {
    const { chart: c, gateway: g } = nodeLocal();
    expect(() => g.configureClient(client(c), { mode: EgressClientMode.FORWARD_PROXY, proxyAddress: EgressClientProxyAddress.NODE_IP }))
      .toThrow(/'proxyAddress' NodeIP needs the gateway's pods on every node's IP, but gateway "proxy.egress" has no 'hostPort'/);
  });

  test('throws when NODE_IP is asked for outside forward-proxy mode', () => {
    const { chart: c, gateway: g } = nodeLocal({ hostPort: 4140 });
    expect(() => g.configureClient(client(c), { proxyAddress: EgressClientProxyAddress.NODE_IP }))
      .toThrow(/'proxyAddress' NodeIP only applies to http_proxy clients; set 'mode' EgressClientMode.FORWARD_PROXY/);
  });

  test('throws when a client container already has its own NODE_IP', () => {
    const { chart: c, gateway: g } = nodeLocal({ hostPort: 4140 });
    const d = client(c);
    d.containers[0].env.addVariable('NODE_IP', kplus.EnvValue.fromValue('10.0.0.1'));
    expect(() => g.configureClient(d, { mode: EgressClientMode.FORWARD_PROXY, proxyAddress: EgressClientProxyAddress.NODE_IP }))
      .toThrow(/container "hello" already sets NODE_IP to something other than the downward API's status.hostIP/);
  });

  test('a node-local chart with hostPort, clients and lock-down passes the strict validator', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'egress-gateway-node-'));
    try {
      const app = new App({ outdir });
      const c = new Chart(app, 'egress');
      const g = new EgressGateway(c, 'gateway', { image: IMAGE, deployment: GatewayDeployment.NODE_LOCAL, hostPort: 4140, tlsPassthrough: true });
      g.addExternalService('pg', { host: 'db.example.com', ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }] });
      new kplus.Namespace(c, 'Apps', { metadata: { name: 'apps' } });
      g.configureClient(client(c, 'hello'), { mode: EgressClientMode.FORWARD_PROXY, proxyAddress: EgressClientProxyAddress.NODE_IP });
      g.configureClient(client(c, 'world'), { mode: EgressClientMode.FORWARD_PROXY });
      g.restrictEgressOf(kplus.Namespaces.select(c, 'AppsNs', { names: ['apps'] }));
      app.synth();
      const result = validatePath(outdir);
      expect(result.messages).toEqual([]);
      expect(result.passed).toBeGreaterThan(5);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe('EgressGateway workers', () => {
  function synth(props: ConstructorParameters<typeof EgressGateway>[2]): { gateway: EgressGateway; all: Manifest[] } {
    const chart = newChart();
    const gateway = new EgressGateway(chart, 'egress', { image: IMAGE, ...props });
    return { gateway, all: objects(chart) };
  }

  test('default: one worker, rendered in the config, with the single-process resources', () => {
    const { gateway, all } = synth({});
    expect(gateway.workers).toBe(1);
    expect(config(all).workers).toBe(1);
    expect(proxyContainer(all).resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } });
  });

  test('workers: 3 renders the count and CPU and memory requests and limits that follow it', () => {
    const { gateway, all } = synth({ workers: 3 });
    expect(gateway.workers).toBe(3);
    const c = config(all);
    expect(c.workers).toBe(3);
    // Limits stay per pod; the proxy splits them among its workers.
    expect(c.limits).toEqual(DEFAULT_LIMITS);
    expect(proxyContainer(all).resources).toEqual({ requests: { cpu: '3', memory: '384Mi' }, limits: { cpu: '3', memory: '1536Mi' } });
    const v = validateConfig(c);
    if (!v.ok) throw new Error(JSON.stringify(v.problems));
    expect(v.config.workers).toBe(3);
  });

  test('without workers, one per whole CPU requested (the limit when only a limit is set), at least 1', () => {
    const cases: Array<[kplus.CpuResources, number]> = [
      [{ request: kplus.Cpu.units(2), limit: kplus.Cpu.units(4) }, 2],
      [{ request: kplus.Cpu.millis(2500) }, 2],
      [{ limit: kplus.Cpu.units(3) }, 3],
      [{ request: kplus.Cpu.millis(250) }, 1],
    ];
    for (const [cpu, expected] of cases) {
      const { gateway, all } = synth({ resources: { cpu } });
      const seen = [cpu.request?.amount, cpu.limit?.amount, gateway.workers, config(all).workers];
      expect(seen).toEqual([cpu.request?.amount, cpu.limit?.amount, expected, expected]);
      // Given resources are rendered as given.
      expect(proxyContainer(all).resources.requests?.cpu).toBe(cpu.request?.amount);
    }
    expect(synth({ resources: { cpu: { request: kplus.Cpu.units(100) } } }).gateway.workers).toBe(WORKER_BOUNDS.max);
  });

  test('given resources whose CPU limit leaves every worker a core are kept as they are', () => {
    const { all } = synth({ workers: 2, resources: { cpu: { request: kplus.Cpu.millis(500), limit: kplus.Cpu.units(2) } } });
    expect(config(all).workers).toBe(2);
    expect(proxyContainer(all).resources).toEqual({ requests: { cpu: '500m' }, limits: { cpu: '2' } });
  });

  test('node-local gateways run workers too', () => {
    const chart = newChart();
    new EgressGateway(chart, 'egress', { image: IMAGE, deployment: GatewayDeployment.NODE_LOCAL, workers: 2 });
    const all = objects(chart);
    expect(config(all).workers).toBe(2);
    expect(one(all, 'DaemonSet').spec.template.spec.containers[0].resources.limits.cpu).toBe('2');
  });

  test.each([0, 1.5, -1, WORKER_BOUNDS.max + 1])('throws when workers is %p', (n) => {
    expect(errorOf(() => synth({ workers: n }))).toBe(
      `EgressGateway "test/egress": 'workers' ${n} must be a whole number from 1 to ${WORKER_BOUNDS.max}; use e.g. 2, or leave it out for one worker per CPU the container requests`);
  });

  test('throws when the CPU limit is below the worker count, naming prop, value, rule and fix', () => {
    expect(errorOf(() => synth({ workers: 4, resources: { cpu: { limit: kplus.Cpu.millis(2500) } } }))).toBe(
      'EgressGateway "test/egress": \'workers\' 4 needs a CPU limit of at least 4 cores, but \'resources.cpu.limit\' is "2500m": '
      + 'the workers would share fewer cores than there are of them and be throttled together, adding latency for no throughput; '
      + 'raise \'resources.cpu.limit\' to Cpu.units(4), or set \'workers\' to 2');
  });

  test('throws when the CPU request is above the limit, together with the other problems', () => {
    const message = errorOf(() => synth({ workers: 3, replicas: 0, resources: { cpu: { request: kplus.Cpu.units(3), limit: kplus.Cpu.units(2) } } }));
    expect(message).toContain('3 problems');
    expect(message).toContain("'replicas' 0");
    expect(message).toContain('\'resources.cpu.request\' "3" is above \'resources.cpu.limit\' "2" (Kubernetes rejects the pod); raise the limit to at least Cpu.millis(3000) or lower the request');
    expect(message).toContain("'workers' 3 needs a CPU limit of at least 3 cores");
  });
});
