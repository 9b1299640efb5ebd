// EgressGateway: the egress proxy's Namespace, ServiceAccount, ConfigMap (the proxy config),
// hardened Deployment (or node-local DaemonSet), Service and PodDisruptionBudget, and the
// registry of what it serves. Its props are checked in internal/gateway-validation.ts, the proxy
// config rendered in internal/gateway-config.ts and the workload in internal/gateway-workload.ts.
import { ApiObject } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { CallerIdentitySource } from './callers';
import { CertManagerCertificate, CertManagerCertificateOptions } from './cert-manager-certificate';
import { DnsRewrite, EgressGatewayAddDnsRewriteOptions } from './dns-rewrite';
import { ConfigReload, EgressGatewayProps, GatewayDeployment } from './egress-gateway-props';
import type { IEgressGateway } from './egress-gateway-ref';
import {
  EgressClient, EgressGatewayConfigureClientOptions, EgressGatewayLockDownOptions, EgressGatewayPolicy,
  EgressGatewayRestrictEgressOfOptions, EgressGatewayTarget, EgressLockdown,
} from './egress-lockdown';
import { ExternalService, ExternalServiceOptions, ExternalServiceProtocol } from './external-service';
import { GatewayAlerts, GatewayAlertsOptions } from './gateway-alerts';
import { GatewayAutoscaling } from './gateway-autoscaling';
import { GatewayDashboard, GatewayDashboardOptions } from './gateway-dashboard';
import { GatewayMetricsMonitor, GatewayMetricsMonitorOptions } from './gateway-metrics-monitor';
import { GATEWAY_FACTS, GatewayFacts, otherAppProblem } from './internal/app-tree';
import { checkCallerPolicy } from './internal/caller-policy';
import { GatewayConfigMaps, renderProxyConfig } from './internal/gateway-config';
import { resolveGatewaySettings } from './internal/gateway-validation';
import { renderGatewayWorkload } from './internal/gateway-workload';
import { MountRef, mountDir, volumeName } from './internal/mounts';
import { Problems } from './internal/problems';
import { renderLinkerdAuthorization } from './mesh/linkerd-authorization';
import {
  DEFAULT_ADMIN_PORT, DEFAULT_HTTP_PARENT_PORT, DEFAULT_HTTP_PORT, DEFAULT_TLS_PORT, DEFAULT_TLS_TARGET_PORT,
} from './model/defaults';
import type { CallersSpec, ProxyConfig, TcpListenerSpec, TimeoutsSpec } from './model/proxy-config';
import type { IRouteParent } from './route-parent';
import type { TlsOrigination } from './tls';

const FIRST_TCP_LISTENER_PORT = 10000;
const LINKERD_OPAQUE_PORTS = 'config.linkerd.io/opaque-ports';

interface ServicePortUse {
  readonly protocol: 'http' | 'tcp' | 'tls' | 'admin';
  readonly owner: string;
}

/**
 * The egress gateway: the proxy that receives plaintext calls to `<host>.<suffix>` from
 * workloads and originates verified TLS to the host, with its Kubernetes objects.
 *
 * @example
 * const gateway = new EgressGateway(chart, 'Egress', {
 *   trafficPolicy: TrafficPolicy.DENY, // only the declared services leave the cluster
 *   tlsPassthrough: true,
 * });
 * gateway.addExternalService('Github', {
 *   host: 'api.github.com',
 *   injectHeaders: [InjectedHeader.fromSecret('Authorization', 'github-token', 'header')],
 * });
 * gateway.addDnsRewrite('Dns', { flavor: DnsFlavor.corednsCustom() });
 * gateway.restrictEgressOf(Namespaces.select(chart, 'Apps', { names: ['apps'] }));
 */
export class EgressGateway extends Construct implements IEgressGateway {
  /** Gateway name (Deployment, ServiceAccount, implicit parent). */
  public readonly name: string;
  /** Namespace of the gateway's objects. */
  public readonly namespaceName: string;
  /** Name of the gateway's Service. */
  public readonly serviceName: string;
  /** `<service>.<namespace>.svc.<clusterDomain>`: the DNS rewrite target. */
  public readonly serviceFqdn: string;
  /** The main suffix (`egress.local`). */
  public readonly suffix: string;
  /** Every suffix the gateway accepts, the main one first. */
  public readonly suffixes: string[];
  /** Container port of the HTTP listener. */
  public readonly httpPort: number;
  /** Service port clients address for HTTP (80). */
  public readonly servicePort: number;
  /** Container port of the TLS passthrough listener, when enabled. */
  public readonly tlsPort?: number;
  /** Service port of the TLS passthrough listener (443), when enabled. */
  public readonly tlsServicePort?: number;
  /** Container port of the admin listener (/metrics, /live, /ready). */
  public readonly adminPort: number;
  /** Labels that select the gateway pods. */
  public readonly podSelectorLabels: { [key: string]: string };
  /** Labels every object of the gateway carries (the selector labels and `part-of`). */
  public readonly commonLabels: { [key: string]: string };
  /** The HorizontalPodAutoscaler, when `autoscaling` is set. */
  public readonly autoscaling?: GatewayAutoscaling;
  /** The Namespace object, when the gateway creates it. */
  public readonly namespace?: kplus.Namespace;
  /** The pods' ServiceAccount. */
  public readonly serviceAccount: kplus.ServiceAccount;
  /**
   * The ConfigMap holding the proxy config under `config.json`. A config past one ConfigMap's
   * size is split: this one keeps the settings and lists the shard ConfigMaps (`configMaps`).
   */
  public readonly configMap: kplus.ConfigMap;
  /** How the pods run. */
  public readonly deploymentMode: GatewayDeployment;
  /** The proxy Deployment (GatewayDeployment.DEPLOYMENT). */
  public readonly deployment?: kplus.Deployment;
  /** The proxy DaemonSet (GatewayDeployment.NODE_LOCAL). */
  public readonly daemonSet?: kplus.DaemonSet;
  /** The proxy workload, whichever kind it is: pod template, containers, scheduling. */
  public readonly workload: kplus.Workload;
  /** Port of every node's IP the HTTP listener is also exposed on (node-local gateways only). */
  public readonly hostPort?: number;
  /** The proxy container. */
  public readonly container: kplus.Container;
  /** The gateway's Service. */
  public readonly service: kplus.Service;
  /** How config changes reach the pods. */
  public readonly configReload: ConfigReload;
  /** Proxy worker processes per pod. */
  public readonly workers: number;
  /** Whether the HTTP listener accepts `http_proxy` requests and CONNECT tunnels. */
  public readonly forwardProxy: boolean;
  /** Destination ranges allowed although the built-in address policy refuses them. */
  public readonly allowedCidrs: string[];
  /** The cluster's pod and service ranges, always refused as destinations. */
  public readonly clusterCidrs: string[];

  private readonly props: EgressGatewayProps;
  private readonly config: GatewayConfigMaps;
  private readonly services: ExternalService[] = [];
  private readonly servicesByHost = new Map<string, ExternalService>();
  private readonly servicesByName = new Map<string, ExternalService>();
  private readonly mounted = new Set<string>();
  private readonly servicePorts = new Map<number, ServicePortUse>();
  private readonly tcpListeners: TcpListenerSpec[] = [];
  private readonly timeoutsSpec: TimeoutsSpec;
  private readonly defaultTls: TlsOrigination;
  private readonly callersSpec?: CallersSpec;
  private attached?: IRouteParent;
  private monitor?: GatewayMetricsMonitor;
  private alertsConstruct?: GatewayAlerts;
  private dashboardConstruct?: GatewayDashboard;

  public constructor(scope: Construct, id: string, props: EgressGatewayProps = {}) {
    super(scope, id);
    this.props = props;
    const settings = resolveGatewaySettings(`EgressGateway "${this.node.path}"`, props);
    this.name = settings.name;
    this.namespaceName = settings.namespaceName;
    this.serviceName = settings.serviceName;
    this.serviceFqdn = `${this.serviceName}.${this.namespaceName}.svc.${settings.clusterDomain}`;
    this.suffix = settings.suffixes[0];
    this.suffixes = [...settings.suffixes];
    this.timeoutsSpec = settings.timeouts;
    this.allowedCidrs = settings.allowedCidrs;
    this.clusterCidrs = settings.clusterCidrs;
    this.defaultTls = settings.defaultTls;
    this.workers = settings.workers;
    this.callersSpec = settings.callers;

    this.configReload = props.configReload ?? ConfigReload.HOT;
    this.deploymentMode = props.deployment ?? GatewayDeployment.DEPLOYMENT;
    this.forwardProxy = props.forwardProxy ?? settings.nodeLocal;
    this.hostPort = props.hostPort;
    this.httpPort = DEFAULT_HTTP_PORT;
    this.servicePort = DEFAULT_HTTP_PARENT_PORT;
    this.adminPort = DEFAULT_ADMIN_PORT;
    if (props.tlsPassthrough) {
      this.tlsPort = DEFAULT_TLS_PORT;
      this.tlsServicePort = 443;
    }
    this.podSelectorLabels = {
      'app.kubernetes.io/name': 'egress-gateway',
      'app.kubernetes.io/instance': this.name,
    };
    const labels = { ...this.podSelectorLabels, 'app.kubernetes.io/part-of': 'cdk8s-egress' };
    this.commonLabels = { ...labels };
    const metadata = (name: string) => ({ name, namespace: this.namespaceName, labels });

    if (props.createNamespace ?? true) {
      this.namespace = new kplus.Namespace(this, 'Namespace', { metadata: { name: this.namespaceName, labels } });
    }

    this.serviceAccount = new kplus.ServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(this.name),
      automountToken: false,
    });

    this.config = new GatewayConfigMaps({
      scope: this,
      subject: `EgressGateway "${this.node.path}"`,
      name: this.name,
      metadata,
      render: () => this._renderConfig(),
      owners: () => ({
        externalServices: this.services.map((svc) => svc.node.path),
        routes: this.attached ? this.attached._routePaths() : [],
      }),
    });
    this.configMap = this.config.main;

    const workload = renderGatewayWorkload(this, {
      props,
      settings,
      ports: {
        http: this.httpPort,
        service: this.servicePort,
        admin: this.adminPort,
        tls: this.tlsPort && this.tlsServicePort ? { container: this.tlsPort, service: this.tlsServicePort } : undefined,
        host: this.hostPort,
      },
      configReload: this.configReload,
      serviceAccount: this.serviceAccount,
      configMaps: this.config,
      podSelectorLabels: this.podSelectorLabels,
      labels,
      metadata,
    });
    this.deployment = workload.deployment;
    this.daemonSet = workload.daemonSet;
    this.workload = workload.workload;
    this.container = workload.container;
    this.service = workload.service;
    this.servicePorts.set(this.servicePort, { protocol: 'http', owner: 'the HTTP listener' });
    this.servicePorts.set(this.adminPort, { protocol: 'admin', owner: 'the admin listener (/metrics, /ready, /live)' });
    if (this.tlsServicePort) this.servicePorts.set(this.tlsServicePort, { protocol: 'tls', owner: 'the TLS passthrough listener' });

    if (props.autoscaling !== undefined && this.deployment) {
      this.autoscaling = new GatewayAutoscaling(this, 'Autoscaling', {
        ...props.autoscaling,
        target: this.deployment,
        container: this.container,
        name: this.name,
        namespace: this.namespaceName,
        commonLabels: labels,
      });
    }

    this.mount(this.defaultTls._mounts());
    if (props.network) this.attachNetwork(props.network);
    if (props.metricsMonitor !== undefined) this.addMetricsMonitor(props.metricsMonitor);
    if (props.alerts !== undefined) this.addAlerts(props.alerts);
    if (props.dashboard !== undefined) this.addDashboard(props.dashboard);

    this.node.addValidation({ validate: () => this.crossChecks() });
    this.node.addValidation({ validate: () => this.config.prepare() });
    if (this.callersSpec?.source === CallerIdentitySource.LINKERD) {
      this.node.addValidation({ validate: () => this.prepareLinkerdAuthorization() });
    }
    Object.defineProperty(this, GATEWAY_FACTS, {
      value: (): GatewayFacts => ({ network: this.attached, trafficPolicy: props.trafficPolicy, declaredServices: this.services.length }),
    });
  }

  /** The attached EgressNetwork, if any. */
  public get network(): IRouteParent | undefined {
    return this.attached;
  }

  /** The ServiceMonitor or PodMonitor, once added. */
  public get metricsMonitor(): GatewayMetricsMonitor | undefined {
    return this.monitor;
  }

  /** The PrometheusRule of the gateway's alerts, once added. */
  public get alerts(): GatewayAlerts | undefined {
    return this.alertsConstruct;
  }

  /** The Grafana dashboard ConfigMap, once added. */
  public get dashboard(): GatewayDashboard | undefined {
    return this.dashboardConstruct;
  }

  /**
   * Renders a ServiceMonitor (default) or PodMonitor named after the gateway that scrapes the
   * admin port of every pod (Prometheus Operator CRDs). One per gateway.
   */
  public addMetricsMonitor(options: GatewayMetricsMonitorOptions = {}): GatewayMetricsMonitor {
    if (this.monitor) throw new Error(`EgressGateway "${this.node.path}": 'metricsMonitor' is already added (${this.monitor.kind}); a gateway has one, so set it once, in props or with addMetricsMonitor()`);
    this.monitor = new GatewayMetricsMonitor(this, 'MetricsMonitor', {
      ...options, name: this.name, namespace: this.namespaceName, selectorLabels: this.podSelectorLabels, commonLabels: this.commonLabels, portName: 'admin',
    });
    return this.monitor;
  }

  /** Renders the PrometheusRule with the gateway's alerts (Prometheus Operator CRDs). One per gateway. */
  public addAlerts(options: GatewayAlertsOptions = {}): GatewayAlerts {
    if (this.alertsConstruct) throw new Error(`EgressGateway "${this.node.path}": 'alerts' are already added; set them once, in props or with addAlerts()`);
    this.alertsConstruct = new GatewayAlerts(this, 'Alerts', { ...options, gateway: this });
    return this.alertsConstruct;
  }

  /** Renders the Grafana dashboard ConfigMap (`<name>-dashboard`). One per gateway. */
  public addDashboard(options: GatewayDashboardOptions = {}): GatewayDashboard {
    if (this.dashboardConstruct) throw new Error(`EgressGateway "${this.node.path}": 'dashboard' is already added; set it once, in props or with addDashboard()`);
    this.dashboardConstruct = new GatewayDashboard(this, 'Dashboard', {
      ...options, name: `${this.name}-dashboard`, defaultNamespace: this.namespaceName, commonLabels: this.commonLabels,
    });
    return this.dashboardConstruct;
  }

  /**
   * Renders a cert-manager Certificate for a client certificate in the gateway's namespace and
   * returns it; pass its `certificate`, `privateKey` (and `caBundle`) to `TlsOrigination.originate()`.
   * The gateway mounts its Secret like any other, and the proxy picks up renewals without a restart.
   */
  public addClientCertificate(id: string, options: CertManagerCertificateOptions): CertManagerCertificate {
    // `<id>Certificate`, so the certificate and the ExternalService that uses it can share an id.
    return new CertManagerCertificate(this, `${id}Certificate`, {
      ...options,
      namespace: this.namespaceName,
      defaultName: `${this.name}-${id.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '')}`,
      defaultCommonName: this.name,
      commonLabels: this.commonLabels,
    });
  }

  /**
   * Container ports clients' connections arrive on: the HTTP listener, the TLS passthrough
   * listener when enabled, and one per TCP external service port (grows as services are added).
   */
  public get proxyPorts(): number[] {
    return [this.httpPort, ...(this.tlsPort ? [this.tlsPort] : []), ...this.tcpListeners.map((l) => l.port)];
  }

  /**
   * Upstream ports the gateway dials: 443 (TLS to undeclared hosts) plus every external
   * service's target ports and explicit endpoint ports, sorted (grows as services are added).
   */
  public get upstreamPorts(): number[] {
    const ports = new Set<number>([DEFAULT_TLS_TARGET_PORT]);
    for (const svc of this.services) {
      for (const p of svc.ports) ports.add(p.targetPort!);
      for (const e of svc.endpoints) if (e.port !== undefined) ports.add(e.port);
    }
    return [...ports].sort((a, b) => a - b);
  }

  /** The external services this gateway serves, in the order they were added. */
  public get externalServices(): ExternalService[] {
    return [...this.services];
  }

  /**
   * Makes `network` the parent this gateway enforces: its trafficPolicy, networks and routes go
   * into the proxy config. A gateway has one parent.
   */
  public attachNetwork(network: IRouteParent): void {
    if (this.attached === network) return;
    this.config.invalidate();
    const foreign = otherAppProblem(this, network);
    if (foreign) {
      throw new Error(`EgressGateway "${this.node.path}": 'network' EgressNetwork "${network.node.path}" ${foreign}, so the gateway would enforce routes whose objects are written to the other App's manifests; attach a network of this App, or create the gateway in the network's App`);
    }
    network._bindGateway(this);
    if (this.attached) {
      throw new Error(`EgressGateway "${this.node.path}": 'network' EgressNetwork "${network.node.path}" cannot be attached because EgressNetwork "${this.attached.node.path}" already is, and a gateway enforces exactly one parent; attach "${network.node.path}" to another EgressGateway, or move its routes to "${this.attached.node.path}"`);
    }
    this.attached = network;
  }

  /** Declares an external service this gateway serves and returns it. */
  public addExternalService(id: string, options: ExternalServiceOptions): ExternalService {
    return new ExternalService(this, id, { ...options, gateway: this });
  }

  /**
   * @internal called by ExternalService: checks that its host, name and client ports are free on
   * this gateway, then mounts what it reads and exposes its ports.
   */
  public _registerExternalService(svc: ExternalService): void {
    this.config.invalidate();
    const problems = new Problems(`EgressGateway "${this.node.path}"`);
    // Indexed, not scanned: a large gateway declares thousands of services.
    const sameHost = this.servicesByHost.get(svc.host);
    if (sameHost) {
      problems.add('host', svc.host, `of ExternalService "${svc.node.path}" is already served by ExternalService "${sameHost.node.path}"`,
        'declare each host once per gateway: merge the two services\' ports into one');
    }
    const sameName = this.servicesByName.get(svc.name);
    if (sameName) {
      problems.add('name', svc.name, `of ExternalService "${svc.node.path}" is already used by ExternalService "${sameName.node.path}"`,
        'give one of them another construct id or an explicit name');
    }
    const claims = new Map<number, ServicePortUse>();
    for (const p of svc.ports) {
      const wanted: ServicePortUse['protocol'] = p.protocol === ExternalServiceProtocol.TCP ? 'tcp' : 'http';
      const taken = this.servicePorts.get(p.port) ?? claims.get(p.port);
      // HTTP-family ports share the HTTP listener; anything else needs the Service port to itself.
      if (taken && !(taken.protocol === 'http' && wanted === 'http')) {
        problems.add('ports', p.port, `of ExternalService "${svc.node.path}" (${p.protocol}) is already taken on Service "${this.serviceName}" by ${taken.owner}`,
          wanted === 'tcp' ? 'give the TCP service a client port no other service uses' : 'use another client port for this service');
      }
      if (!taken) claims.set(p.port, { protocol: wanted, owner: wanted === 'tcp' ? `TCP port of ExternalService "${svc.node.path}"` : `HTTP port of ExternalService "${svc.node.path}"` });
    }
    problems.throwIfAny();

    this.services.push(svc);
    this.servicesByHost.set(svc.host, svc);
    this.servicesByName.set(svc.name, svc);
    this.mount(svc._mounts());
    for (const p of svc.ports) {
      if (!claims.has(p.port)) continue;
      const use = claims.get(p.port)!;
      this.servicePorts.set(p.port, use);
      if (use.protocol === 'http') {
        this.service.bind(p.port, { name: `http-${p.port}`, targetPort: this.httpPort, protocol: kplus.Protocol.TCP });
      } else {
        const containerPort = FIRST_TCP_LISTENER_PORT + this.tcpListeners.length;
        this.tcpListeners.push({ port: containerPort, externalService: svc.name, servicePort: p.port });
        this.container.addPort({ number: containerPort, name: `tcp-${containerPort}` });
        this.service.bind(p.port, { name: `tcp-${p.port}`, targetPort: containerPort, protocol: kplus.Protocol.TCP });
        this.markOpaque();
      }
    }
  }

  /**
   * Locks the gateway down with its own NetworkPolicy: proxy ports only from allowed clients,
   * the admin port only from the metrics scraper, egress only to DNS and to public addresses
   * on its external services' ports. Call it before `allowFrom()`/`restrictEgressOf()` to pass
   * options; they create it with defaults otherwise.
   */
  public lockDown(options?: EgressGatewayLockDownOptions): EgressGatewayPolicy {
    return EgressGatewayPolicy._ofGateway(this, () => this._egressTarget(), options, (this.props.linkerdInject ?? true) ? 'linkerd' : undefined);
  }

  /** Lets `peer` (a workload, `Pods.select()`, `Namespaces.select()`) use the gateway; locks the gateway down. */
  public allowFrom(peer: kplus.INetworkPolicyPeer): void {
    this.lockDown().allowFrom(peer);
  }

  /**
   * Makes the gateway the only way out for `peer`'s pods: default-deny egress except DNS, the
   * gateway and `allowInCluster`; the gateway admits them (and is locked down).
   */
  public restrictEgressOf(peer: kplus.INetworkPolicyPeer, options: EgressGatewayRestrictEgressOfOptions = {}): EgressLockdown {
    const lockdown = EgressLockdown._forGateway(this, () => this._egressTarget(), peer, options);
    this.allowFrom(peer);
    return lockdown;
  }

  /** Labels `workload` as a client of this gateway and sets its environment (`EgressClient.configure()`). */
  public configureClient(workload: kplus.AbstractPod, options: EgressGatewayConfigureClientOptions = {}): void {
    EgressClient.configure(workload, { ...options, gateway: this._egressTarget(), clusterDomain: this.props.clusterDomain });
  }

  /** Adds the DNS rewrite that sends `<name>.<suffix>` for every suffix of this gateway to its Service. */
  public addDnsRewrite(id: string, options: EgressGatewayAddDnsRewriteOptions): DnsRewrite {
    return DnsRewrite._forGateway(this, id, {
      serviceName: this.serviceName,
      namespace: this.namespaceName,
      clusterDomain: this.props.clusterDomain ?? 'cluster.local',
      suffixes: [...this.suffixes],
      tlsPassthrough: this.tlsPort !== undefined,
    }, options);
  }

  /** @internal the gateway as lock-down policies and clients see it; read again at synth time. */
  public _egressTarget(): EgressGatewayTarget {
    return {
      namespace: this.namespaceName,
      serviceName: this.serviceName,
      podSelectorLabels: { ...this.podSelectorLabels },
      proxyPorts: this.proxyPorts,
      servicePort: this.servicePort,
      adminPort: this.adminPort,
      externalPorts: this.upstreamPorts,
      suffix: this.suffix,
      clusterCidrs: [...this.clusterCidrs],
      allowedCidrs: [...this.allowedCidrs],
      forwardProxy: this.forwardProxy,
      hostPort: this.hostPort,
    };
  }

  /** @internal the complete proxy config, as the ConfigMap carries it. */
  public _renderConfig(): ProxyConfig {
    return renderProxyConfig({
      props: this.props,
      name: this.name,
      namespaceName: this.namespaceName,
      suffixes: this.suffixes,
      forwardProxy: this.forwardProxy,
      httpPort: this.httpPort,
      servicePort: this.servicePort,
      tlsPort: this.tlsPort,
      tlsServicePort: this.tlsServicePort,
      adminPort: this.adminPort,
      tcpListeners: this.tcpListeners,
      parent: this.attached,
      services: this.services,
      allowedCidrs: this.allowedCidrs,
      clusterCidrs: this.clusterCidrs,
      timeouts: this.timeoutsSpec,
      workers: this.workers,
      defaultTls: this.defaultTls,
      callers: this.callersSpec,
    });
  }

  /**
   * Clients the proxy could never match, and listeners an unknown-caller Deny would close. Read
   * from the rendered config, so it sees what the proxy will; a config that cannot be rendered is
   * reported by the render itself.
   */
  private checkCallers(problems: Problems): void {
    let config: ProxyConfig;
    try {
      config = this._renderConfig();
    } catch {
      return;
    }
    const routePaths = new Map<string, string>();
    if (this.attached) {
      const paths = this.attached._routePaths();
      config.routes.forEach((r, i) => routePaths.set(`${r.kind}/${r.namespace}/${r.name}`, paths[i]));
    }
    checkCallerPolicy(config, problems, (kind, name, namespace) => (kind === 'ExternalService'
      ? this.servicesByName.get(name)?.node.path
      : routePaths.get(`${kind}/${namespace}/${name}`)) ?? name);
  }

  /**
   * Validation time, with `CallerIdentitySource.LINKERD`: (re)creates the Linkerd Server,
   * MeshTLSAuthentication and AuthorizationPolicy objects of the HTTP port from the config as it
   * now stands (which objects exist depends on every service and route), under `LinkerdAuthorization`.
   */
  private prepareLinkerdAuthorization(): string[] {
    let config: ProxyConfig;
    try {
      config = this._renderConfig();
    } catch {
      return [];
    }
    const scope = this.node.tryFindChild('LinkerdAuthorization') as Construct | undefined ?? new Construct(this, 'LinkerdAuthorization');
    for (const child of [...scope.node.children]) scope.node.tryRemoveChild(child.node.id);
    const objects = renderLinkerdAuthorization(config, {
      name: this.name,
      namespace: this.namespaceName,
      podSelector: this.podSelectorLabels,
      port: this.httpPort,
    });
    for (const o of objects) {
      new ApiObject(scope, `${o.kind}-${o.metadata.name}`, {
        apiVersion: o.apiVersion,
        kind: o.kind,
        metadata: { ...o.metadata, labels: { ...this.commonLabels } },
        spec: o.spec,
      });
    }
    return [];
  }

  /**
   * Linkerd sniffs the protocol of every new connection, and a server-speaks-first protocol on a
   * TCP listener (SMTP, MySQL) would stall until the sniff times out; opaque ports skip the sniff.
   * The Service carries client-facing ports (read by meshed clients), the pods container ports.
   */
  private markOpaque(): void {
    if (!(this.props.linkerdInject ?? true)) return;
    this.workload.podMetadata.addAnnotation(LINKERD_OPAQUE_PORTS, this.tcpListeners.map((l) => l.port).join(','));
    this.service.metadata.addAnnotation(LINKERD_OPAQUE_PORTS, this.tcpListeners.map((l) => l.servicePort).join(','));
  }

  /**
   * The ConfigMaps carrying the proxy config: `configMap`, then the shards a large config needs.
   * The shards are created when the app is synthesised (validation time), once every service and
   * route is known.
   */
  public get configMaps(): kplus.ConfigMap[] {
    return this.config.all;
  }

  /** One read-only volume per Secret or ConfigMap, mounted once whoever references it. */
  private mount(refs: MountRef[]): void {
    for (const ref of refs) {
      const vol = volumeName(ref.kind, ref.name);
      if (this.mounted.has(vol)) continue;
      this.mounted.add(vol);
      const volume = ref.kind === 'secret'
        ? kplus.Volume.fromSecret(this, `Volume-${vol}`, kplus.Secret.fromSecretName(this, `Secret-${vol}`, ref.name), { name: vol, defaultMode: 0o440 })
        : kplus.Volume.fromConfigMap(this, `Volume-${vol}`, kplus.ConfigMap.fromConfigMapName(this, `ConfigMapRef-${vol}`, ref.name), { name: vol, defaultMode: 0o444 });
      this.container.mount(mountDir(ref.kind, ref.name), volume, { readOnly: true });
    }
  }

  private crossChecks(): string[] {
    const problems = new Problems(`EgressGateway "${this.node.path}"`);
    if (this.attached && this.props.trafficPolicy !== undefined) {
      problems.add('trafficPolicy', this.props.trafficPolicy, `is set although EgressNetwork "${this.attached.node.path}" is attached and decides what unmatched traffic gets`,
        'set trafficPolicy on the EgressNetwork and remove it from the gateway');
    }
    this.checkCallers(problems);
    for (const svc of this.services) {
      const bare = svc.host.replace(/^\*\./, '');
      for (const s of this.suffixes) {
        if (bare === s || bare.endsWith(`.${s}`)) {
          problems.add('host', svc.host, `of ExternalService "${svc.node.path}" is under the gateway suffix "${s}", so the gateway would call itself`,
            `use the real upstream name, e.g. ${JSON.stringify(bare.slice(0, -(s.length + 1)) || 'api.example.com')}`);
        }
      }
    }
    try {
      problems.throwIfAny();
    } catch (e) {
      return [(e as Error).message];
    }
    return [];
  }
}
