import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { CidrParseError, parseCidr } from './internal/cidr';
import { DEFAULT_ADMIN_PORT, DEFAULT_EGRESS_SUFFIX, DEFAULT_TLS_TARGET_PORT } from './model/defaults';

/**
 * A plain description of an egress gateway: what NetworkPolicies and client settings need to
 * know about it. `EgressGateway` produces one; a gateway deployed some other way can be
 * described by hand.
 */
export interface EgressGatewayTarget {
  /** Namespace of the gateway's pods and Service. */
  readonly namespace: string;
  /** Name of the gateway's Service. */
  readonly serviceName: string;
  /** Labels that select exactly the gateway's pods. */
  readonly podSelectorLabels: { [key: string]: string };
  /**
   * Container ports clients connect to: the HTTP listener, and the TLS passthrough and TCP
   * listeners when there are any. NetworkPolicies see container ports, not Service ports.
   */
  readonly proxyPorts: number[];
  /**
   * The Service port clients address in `http_proxy` mode.
   * @default 80
   */
  readonly servicePort?: number;
  /**
   * Container port of the admin listener (/metrics, /live, /ready).
   * @default 9901
   */
  readonly adminPort?: number;
  /**
   * Upstream ports the gateway dials on the internet (its external services' target ports).
   * @default [443]
   */
  readonly externalPorts?: number[];
  /**
   * The gateway's egress suffix.
   * @default 'egress.local'
   */
  readonly suffix?: string;
  /**
   * The cluster's pod and service CIDRs, as the gateway knows them: cut out of its internet
   * egress and kept direct in clients' `NO_PROXY`.
   * @default []
   */
  readonly clusterCidrs?: string[];
  /**
   * Addresses inside the always-refused ranges that the gateway may still reach (an on-premises
   * API at 10.20.0.0/16): its egress policy allows them on the external ports too.
   * @default []
   */
  readonly allowedCidrs?: string[];
  /**
   * Whether the gateway accepts `http_proxy` requests and CONNECT tunnels.
   * @default false
   */
  readonly forwardProxy?: boolean;
  /**
   * Port of every node's IP where the node's own gateway pod listens for `http_proxy` requests
   * (a node-local gateway with a host port), for `EgressClientProxyAddress.NODE_IP` clients.
   * @default - none
   */
  readonly hostPort?: number;
}

/**
 * A kplus NetworkPolicy whose gateway-dependent rules are added when it is first rendered, so
 * that listeners and external services added to a gateway after the policy still count.
 */
class DeferredNetworkPolicy extends kplus.NetworkPolicy {
  private readonly deferred: Array<() => void> = [];
  private flushed = false;

  public defer(fn: () => void): void {
    if (this.flushed) fn();
    else this.deferred.push(fn);
  }

  /** @internal */
  public _toKube(): ReturnType<kplus.NetworkPolicy['_toKube']> {
    if (!this.flushed) {
      this.flushed = true;
      for (const fn of this.deferred) fn();
    }
    return super._toKube();
  }
}

/** Where a construct reads its gateway from: a fixed description or a live gateway. */
type TargetSource = () => EgressGatewayTarget;

function invalid(what: string, problems: string[]): Error {
  return new Error(`${what}: invalid props:\n- ${problems.join('\n- ')}`);
}

/** Options of `EgressGateway.lockDown()`, and the props of `EgressGatewayPolicy` but its gateway. */
export interface EgressGatewayLockDownOptions {
  /**
   * The cluster's pod and service CIDRs. They are cut out of the gateway's internet egress
   * (on top of the private, CGNAT and link-local ranges, always cut out, and of the gateway's
   * own `clusterCidrs`) so that it cannot be used to reach in-cluster addresses on clusters
   * with public pod ranges.
   * @default []
   */
  readonly clusterCidrs?: string[];
  /**
   * Peers allowed to send to the gateway's proxy ports, besides labelled clients.
   * More can be added with `allowFrom()`.
   * @default []
   */
  readonly allowFrom?: kplus.INetworkPolicyPeer[];
  /**
   * Admit pods labelled by `EgressClient.configure()` (or `EgressGateway.configureClient()`) for
   * this gateway, from the namespaces `clientNamespaces` selects. A label is not an
   * authorization boundary: anyone who may create pods there may set it. Turn off to admit only
   * `allowFrom` peers.
   * @default true
   */
  readonly allowLabelledClients?: boolean;
  /**
   * Namespaces labelled clients may run in.
   * @default - every namespace
   */
  readonly clientNamespaces?: kplus.Namespaces;
  /**
   * Who may scrape the admin port (/metrics).
   * @default - every pod in the namespace named 'monitoring'
   */
  readonly metricsScrapers?: kplus.INetworkPolicyPeer;
  /**
   * In-cluster peers the gateway may reach, on any port: in-cluster backends of routes, the
   * mesh control plane (Linkerd's `linkerd` namespace is added when an EgressGateway is meshed).
   * @default []
   */
  readonly allowEgressTo?: kplus.INetworkPolicyPeer[];
  /**
   * The cluster DNS the gateway resolves upstream names with.
   * @default - pods labelled k8s-app=kube-dns in kube-system
   */
  readonly dns?: kplus.INetworkPolicyPeer;
}

/** Options of `EgressGateway.restrictEgressOf()`. */
export interface EgressGatewayRestrictEgressOfOptions {
  /**
   * In-cluster peers the pods may still reach, on any port (their databases, the mesh control
   * plane when they are meshed).
   * @default []
   */
  readonly allowInCluster?: kplus.INetworkPolicyPeer[];
  /**
   * The cluster DNS.
   * @default - pods labelled k8s-app=kube-dns in kube-system
   */
  readonly dns?: kplus.INetworkPolicyPeer;
}

/** Options of `EgressGateway.configureClient()`. */
export interface EgressGatewayConfigureClientOptions {
  /**
   * How the workload reaches the gateway; FORWARD_PROXY needs the gateway's `forwardProxy`.
   * @default EgressClientMode.SUFFIX
   */
  readonly mode?: EgressClientMode;
  /**
   * Forward-proxy mode: which address `http_proxy` names. NODE_IP needs a node-local gateway
   * with a `hostPort`.
   * @default EgressClientProxyAddress.SERVICE
   */
  readonly proxyAddress?: EgressClientProxyAddress;
}

const GATEWAY_POLICY_ID = 'NetworkPolicy';
/** linkerd-proxy's tap (4190) and admin/metrics (4191) ports. */
const LINKERD_PROXY_ADMIN_PORTS = [4190, 4191];

/** Label `EgressClient.configure()` puts on client pods; its value names the gateway. */
const CLIENT_LABEL = 'egress.cdk8s.io/gateway';

/**
 * Address ranges that are never "the internet" for the gateway: RFC 1918 private ranges, CGNAT
 * (often node or pod networks), link-local (cloud metadata at 169.254.169.254), loopback, and
 * IPv6 unique-local and link-local; the IPv4 ones again inside the IPv6 forms that reach an IPv4
 * address through a translator: NAT64 (64:ff9b::/96, how an IPv6-only cluster reaches IPv4) and
 * 6to4 (2002::/16); and all of Teredo (2001::/32), whose IPv4 client address is bit-inverted and
 * so cannot be cut out by prefix. The gateway's own address vetting refuses them too; the
 * NetworkPolicy makes the refusal hold even if the proxy is compromised. `allowedCidrs` reopen
 * what they name with rules of their own.
 */
const NON_PUBLIC_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8'];
const NON_PUBLIC_V6 = [
  'fc00::/7', 'fe80::/10',
  // The same IPv4 ranges behind a NAT64 translator (64:ff9b::/96 + the IPv4 address).
  '64:ff9b::a00:0/104', '64:ff9b::ac10:0/108', '64:ff9b::c0a8:0/112', '64:ff9b::6440:0/106', '64:ff9b::a9fe:0/112', '64:ff9b::7f00:0/104',
  // ...and as 6to4 addresses (2002: + the IPv4 address in bits 16-47).
  '2002:a00::/24', '2002:ac10::/28', '2002:c0a8::/32', '2002:6440::/26', '2002:a9fe::/32', '2002:7f00::/24',
  // Teredo.
  '2001::/32',
];

function gatewayValue(gateway: EgressGatewayTarget): string {
  return `${gateway.serviceName}.${gateway.namespace}`;
}

function checkTarget(gateway: EgressGatewayTarget, problems: string[]): void {
  const ports = [
    ...gateway.proxyPorts, ...(gateway.externalPorts ?? []), gateway.adminPort ?? DEFAULT_ADMIN_PORT, gateway.servicePort ?? 80,
    ...(gateway.hostPort !== undefined ? [gateway.hostPort] : []),
  ];
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) problems.push(`'gateway' port ${JSON.stringify(p)} is not a port number (1-65535)`);
  }
  if (gateway.proxyPorts.length === 0) problems.push("'gateway.proxyPorts' is empty; list the listener ports clients connect to, e.g. [8080]");
  if (gatewayValue(gateway).length > 63) {
    problems.push(`'gateway' service and namespace "${gatewayValue(gateway)}" are longer than the 63 characters a label value holds; shorten the Service or namespace name`);
  }
  if (Object.keys(gateway.podSelectorLabels).length === 0) {
    problems.push("'gateway.podSelectorLabels' is empty, which would select every pod in the namespace; give the gateway pods' labels");
  }
}

/** Splits cluster CIDRs by family, reporting the ones that do not parse. */
function splitCidrs(prop: string, cidrs: readonly string[], problems: string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const c of cidrs) {
    try {
      const parsed = parseCidr(c);
      (parsed.family === 4 ? v4 : v6).push(c);
    } catch (e) {
      const detail = e instanceof CidrParseError ? e.message : String(e);
      problems.push(`'${prop}' entry ${JSON.stringify(c)} is not a CIDR (${detail}); write it like "10.244.0.0/16"`);
    }
  }
  return { v4, v6 };
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

function tcp(ports: readonly number[]): kplus.NetworkPolicyPort[] {
  return [...new Set(ports)].map(p => kplus.NetworkPolicyPort.tcp(p));
}

/** DNS on both protocols: UDP for queries, TCP for truncated answers. */
const DNS_PORTS = (): kplus.NetworkPolicyPort[] => [kplus.NetworkPolicyPort.udp(53), kplus.NetworkPolicyPort.tcp(53)];

function defaultDnsPeer(scope: Construct): kplus.INetworkPolicyPeer {
  // kube-dns and CoreDNS both run in kube-system behind pods labelled k8s-app=kube-dns.
  return kplus.Pods.select(scope, 'ClusterDns', {
    labels: { 'k8s-app': 'kube-dns' },
    namespaces: kplus.Namespaces.select(scope, 'KubeSystem', { names: ['kube-system'] }),
  });
}

/** Props of `EgressGatewayPolicy`. */
export interface EgressGatewayPolicyProps extends EgressGatewayLockDownOptions {
  /** The gateway whose pods the policy selects. */
  readonly gateway: EgressGatewayTarget;
}

/**
 * The egress gateway's own NetworkPolicy. Ingress: its proxy ports from the clients allowed
 * to use it, its admin port from the metrics scraper. Egress: DNS, and the external ports on
 * public addresses only (private, CGNAT, link-local and the cluster's CIDRs cut out), so the
 * gateway cannot be turned into a path into the cluster or to cloud metadata.
 *
 * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/
 *
 * @example
 * // Usually through the gateway: gateway.lockDown({ clusterCidrs: ['10.0.0.0/8'] }).
 * // For a gateway deployed some other way, describe it:
 * new EgressGatewayPolicy(chart, 'GatewayPolicy', {
 *   gateway: { namespace: 'egress', serviceName: 'proxy', podSelectorLabels: { app: 'proxy' }, proxyPorts: [8080] },
 *   clusterCidrs: ['10.0.0.0/8'],
 *   allowFrom: [Namespaces.select(chart, 'Apps', { names: ['apps'] })],
 * });
 */
export class EgressGatewayPolicy extends Construct {
  /**
   * @internal EgressGateway's seam: the gateway's policy, created under it on first use.
   * `meshNamespace` names the mesh control plane the gateway's sidecar must reach.
   */
  public static _ofGateway(
    gateway: Construct, source: () => EgressGatewayTarget, options?: EgressGatewayLockDownOptions, meshNamespace?: string,
  ): EgressGatewayPolicy {
    const existing = gateway.node.tryFindChild(GATEWAY_POLICY_ID);
    if (existing) {
      if (options) {
        throw new Error(`EgressGateway "${gateway.node.path}": lockDown() options cannot apply because the gateway's NetworkPolicy already exists (an earlier lockDown(), allowFrom() or restrictEgressOf() created it); call lockDown(options) first`);
      }
      return existing as EgressGatewayPolicy;
    }
    const policy = new EgressGatewayPolicy(gateway, GATEWAY_POLICY_ID, { ...options, gateway: source() });
    policy._useTarget(source);
    if (meshNamespace) {
      // The sidecar talks to its control plane, and linkerd-viz scrapes (4191) and taps (4190) it:
      // the gateway's request metrics come from there.
      policy.allowEgressTo(kplus.Namespaces.select(policy, 'MeshControlPlane', { names: [meshNamespace] }));
      policy.policy.addIngressRule(kplus.Namespaces.select(policy, 'MeshViz', { names: [`${meshNamespace}-viz`] }), tcp(LINKERD_PROXY_ADMIN_PORTS));
    }
    return policy;
  }

  /** The NetworkPolicy. */
  public readonly policy: kplus.NetworkPolicy;
  private readonly deferredPolicy: DeferredNetworkPolicy;
  private targetSource: TargetSource;
  private readonly peers = new Set<kplus.INetworkPolicyPeer>();

  constructor(scope: Construct, id: string, props: EgressGatewayPolicyProps) {
    super(scope, id);
    const problems: string[] = [];
    checkTarget(props.gateway, problems);
    splitCidrs('clusterCidrs', [...(props.clusterCidrs ?? []), ...(props.gateway.clusterCidrs ?? [])], problems);
    splitCidrs('gateway.allowedCidrs', props.gateway.allowedCidrs ?? [], problems);
    if (problems.length) throw invalid(`EgressGatewayPolicy ${this.node.path}`, problems);
    const fixed = props.gateway;
    this.targetSource = () => fixed;
    const gw = props.gateway;

    this.deferredPolicy = new DeferredNetworkPolicy(this, 'Resource', {
      metadata: { namespace: gw.namespace },
      selector: kplus.Pods.select(this, 'GatewayPods', { labels: gw.podSelectorLabels }),
      ingress: { default: kplus.NetworkPolicyTrafficDefault.DENY },
      egress: { default: kplus.NetworkPolicyTrafficDefault.DENY },
    });
    this.policy = this.deferredPolicy;

    if (props.allowLabelledClients ?? true) {
      this.allowFrom(kplus.Pods.select(this, 'LabelledClients', {
        labels: { [CLIENT_LABEL]: gatewayValue(gw) },
        namespaces: props.clientNamespaces ?? kplus.Namespaces.all(this, 'AnyNamespace'),
      }));
    }
    for (const peer of props.allowFrom ?? []) this.allowFrom(peer);

    const scrapers = props.metricsScrapers ?? kplus.Namespaces.select(this, 'Monitoring', { names: ['monitoring'] });
    this.deferredPolicy.defer(() => this.policy.addIngressRule(scrapers, tcp([this.target().adminPort ?? DEFAULT_ADMIN_PORT])));

    this.policy.addEgressRule(props.dns ?? defaultDnsPeer(this), DNS_PORTS());
    // The ipBlock peers are constructs, created now (the tree is locked during synthesis); only
    // their ports, which grow with the gateway's external services, wait for rendering.
    const cidrs = splitCidrs('clusterCidrs', [...(props.clusterCidrs ?? []), ...(gw.clusterCidrs ?? [])], problems);
    const publicV4 = kplus.NetworkPolicyIpBlock.ipv4(this, 'PublicIpv4', '0.0.0.0/0', unique([...NON_PUBLIC_V4, ...cidrs.v4]));
    const publicV6 = kplus.NetworkPolicyIpBlock.ipv6(this, 'PublicIpv6', '::/0', unique([...NON_PUBLIC_V6, ...cidrs.v6]));
    const allowed = (gw.allowedCidrs ?? []).map((c, i) => (parseCidr(c).family === 4
      ? kplus.NetworkPolicyIpBlock.ipv4(this, `AllowedCidr${i}`, c)
      : kplus.NetworkPolicyIpBlock.ipv6(this, `AllowedCidr${i}`, c)));
    this.deferredPolicy.defer(() => {
      const target = this.target();
      const external = tcp(target.externalPorts?.length ? target.externalPorts : [DEFAULT_TLS_TARGET_PORT]);
      this.policy.addEgressRule(publicV4, external);
      this.policy.addEgressRule(publicV6, external);
      for (const block of allowed) this.policy.addEgressRule(block, external);
    });
    for (const peer of props.allowEgressTo ?? []) this.allowEgressTo(peer);
  }

  /** Lets `peer` send to the gateway's proxy ports. Adding the same peer twice is a no-op. */
  public allowFrom(peer: kplus.INetworkPolicyPeer): void {
    if (this.peers.has(peer)) return;
    this.peers.add(peer);
    this.deferredPolicy.defer(() => this.policy.addIngressRule(peer, tcp(this.target().proxyPorts)));
  }

  /**
   * Lets the gateway reach an in-cluster peer.
   * @param ports the ports; default every port
   */
  public allowEgressTo(peer: kplus.INetworkPolicyPeer, ports?: kplus.NetworkPolicyPort[]): void {
    this.policy.addEgressRule(peer, ports);
  }

  /**
   * @internal reads the gateway from `source` when rendering, so ports added to a live
   * gateway after this policy was created are covered.
   */
  public _useTarget(source: () => EgressGatewayTarget): void {
    this.targetSource = source;
  }

  private target(): EgressGatewayTarget {
    const target = this.targetSource();
    const problems: string[] = [];
    checkTarget(target, problems);
    if (problems.length) throw invalid(`EgressGatewayPolicy ${this.node.path}`, problems);
    return target;
  }
}

/** Props of `EgressLockdown`. */
export interface EgressLockdownProps {
  /**
   * The pods whose egress is locked down: a workload, `Pods.select(...)`, or
   * `Namespaces.select(..., { names: [ns] })` for a whole namespace.
   */
  readonly selector: kplus.INetworkPolicyPeer;
  /** The gateway that stays reachable (its pods, on its proxy ports). */
  readonly gateway: EgressGatewayTarget;
  /**
   * In-cluster peers the pods may still reach, on any port: their databases, other services,
   * and the mesh control plane when they are meshed (Linkerd's proxies need the `linkerd`
   * namespace). Add more with `allowTo()`.
   * @default []
   */
  readonly allowInCluster?: kplus.INetworkPolicyPeer[];
  /**
   * The cluster DNS the pods resolve with.
   * @default - pods labelled k8s-app=kube-dns in kube-system
   */
  readonly dns?: kplus.INetworkPolicyPeer;
}

/**
 * A default-deny egress NetworkPolicy for the selected pods that still allows DNS, the
 * in-cluster peers named, and the egress gateway: the gateway becomes the only way out, and
 * a call that bypasses it fails closed. Ingress to the pods is left as it was.
 *
 * Pair it with the gateway admitting the same pods (`EgressGatewayPolicy.allowFrom`).
 *
 * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-deny-all-egress-traffic
 *
 * @example
 * // Usually through the gateway: gateway.restrictEgressOf(app). For a gateway deployed
 * // some other way, describe it:
 * const app = new Deployment(chart, 'App', { containers: [{ image: 'my/app' }] });
 * new EgressLockdown(chart, 'AppLockdown', {
 *   selector: app,
 *   gateway: { namespace: 'egress', serviceName: 'proxy', podSelectorLabels: { app: 'proxy' }, proxyPorts: [8080] },
 *   allowInCluster: [Pods.select(chart, 'Db', { labels: { app: 'postgres' } })],
 * });
 */
export class EgressLockdown extends Construct {
  /** @internal EgressGateway's seam: a lock-down of `peer` towards the gateway, created under it. */
  public static _forGateway(
    gateway: Construct, source: () => EgressGatewayTarget, peer: kplus.INetworkPolicyPeer, options: EgressGatewayRestrictEgressOfOptions = {},
  ): EgressLockdown {
    let id = `Lockdown${peer.node.id}`;
    const existing = gateway.node.tryFindChild(id);
    if (existing instanceof EgressLockdown && existing.peer === peer) {
      throw new Error(`EgressGateway "${gateway.node.path}": restrictEgressOf() was already called for "${peer.node.path}"; call it once per workload or namespace and add peers with allowTo()`);
    }
    // Another peer with the same construct id: keep both, told apart by the peer's address.
    if (existing) id = `${id}-${peer.node.addr.slice(0, 8)}`;
    const lockdown = new EgressLockdown(gateway, id, { ...options, selector: peer, gateway: source() });
    lockdown.peer = peer;
    lockdown._useTarget(source);
    return lockdown;
  }

  /** The NetworkPolicy. */
  public readonly policy: kplus.NetworkPolicy;
  private targetSource: TargetSource;
  private peer?: kplus.INetworkPolicyPeer;

  constructor(scope: Construct, id: string, props: EgressLockdownProps) {
    super(scope, id);
    const problems: string[] = [];
    checkTarget(props.gateway, problems);
    const selector = props.selector.toPodSelector();
    if (!selector) problems.push(`'selector' ${props.selector.node.path} selects addresses, not pods; give a workload, Pods.select() or Namespaces.select()`);
    if (problems.length) throw invalid(`EgressLockdown ${this.node.path}`, problems);
    const fixed = props.gateway;
    this.targetSource = () => fixed;
    const gw = props.gateway;
    const policy = new DeferredNetworkPolicy(this, 'Resource', {
      selector,
      egress: { default: kplus.NetworkPolicyTrafficDefault.DENY },
    });
    this.policy = policy;
    this.policy.addEgressRule(props.dns ?? defaultDnsPeer(this), DNS_PORTS());
    const gatewayPods = kplus.Pods.select(this, 'Gateway', {
      labels: gw.podSelectorLabels,
      namespaces: kplus.Namespaces.select(this, 'GatewayNamespace', { names: [gw.namespace] }),
    });
    policy.defer(() => {
      const target = this.targetSource();
      const problems2: string[] = [];
      checkTarget(target, problems2);
      if (problems2.length) throw invalid(`EgressLockdown ${this.node.path}`, problems2);
      this.policy.addEgressRule(gatewayPods, tcp(target.proxyPorts));
    });
    for (const peer of props.allowInCluster ?? []) this.allowTo(peer);
  }

  /**
   * Lets the pods reach an in-cluster peer.
   * @param ports the ports; default every port
   */
  public allowTo(peer: kplus.INetworkPolicyPeer, ports?: kplus.NetworkPolicyPort[]): void {
    this.policy.addEgressRule(peer, ports);
  }

  /** @internal reads the gateway's ports from `source` when rendering (see EgressGatewayPolicy). */
  public _useTarget(source: () => EgressGatewayTarget): void {
    this.targetSource = source;
  }
}

/** How a client reaches the gateway. */
export enum EgressClientMode {
  /** Calls `http://<host>.<suffix>/`; the client learns the suffix from `EGRESS_SUFFIX`. */
  SUFFIX = 'Suffix',
  /**
   * The gateway runs as a forward proxy: `HTTP_PROXY`/`HTTPS_PROXY` (and lower-case forms,
   * which curl and many libraries read) point at it, `NO_PROXY` keeps in-cluster calls direct.
   */
  FORWARD_PROXY = 'ForwardProxy',
}

/** Which address a forward-proxy client's `http_proxy` names. */
export enum EgressClientProxyAddress {
  /**
   * The gateway's Service by name. With a node-local gateway its `internalTrafficPolicy: Local`
   * keeps the traffic on the client's node.
   */
  SERVICE = 'Service',
  /**
   * The client's own node: `NODE_IP` is set from the downward API (`status.hostIP`) and
   * `http_proxy` is `http://$(NODE_IP):<hostPort>`, the way Linkerd 1's clients found their
   * node's proxy. Needs a node-local gateway with a `hostPort`; read the trade-offs there.
   * @see https://kubernetes.io/docs/concepts/workloads/pods/downward-api/
   */
  NODE_IP = 'NodeIP',
}

/** The downward-API variable that carries the node's IP for NODE_IP clients. */
const NODE_IP_VAR = 'NODE_IP';

/** Options of `EgressClient.configure()`. */
export interface EgressClientOptions {
  /** The gateway the workload uses. */
  readonly gateway: EgressGatewayTarget;
  /**
   * How the workload reaches the gateway.
   * @default EgressClientMode.SUFFIX
   */
  readonly mode?: EgressClientMode;
  /**
   * Forward-proxy mode: which address `http_proxy` names. NODE_IP needs `gateway.hostPort`.
   * @default EgressClientProxyAddress.SERVICE
   */
  readonly proxyAddress?: EgressClientProxyAddress;
  /**
   * The cluster's DNS domain, kept direct in `NO_PROXY`.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
  /**
   * Pod and service CIDRs, kept direct in `NO_PROXY`. Go and Python honour CIDRs there;
   * curl and Node's proxy agents match names only, so call in-cluster services by name.
   * @default []
   */
  readonly clusterCidrs?: string[];
}

/**
 * Client-side settings for workloads that call out through an egress gateway.
 *
 * @example
 * // Usually through the gateway: gateway.configureClient(app).
 * EgressClient.configure(app, {
 *   gateway: { namespace: 'egress', serviceName: 'proxy', podSelectorLabels: { app: 'proxy' }, proxyPorts: [8080], forwardProxy: true },
 *   mode: EgressClientMode.FORWARD_PROXY,
 * });
 */
export class EgressClient {
  /** The pod label `configure()` sets; its value is `<service>.<namespace>` of the gateway. */
  public static readonly LABEL = CLIENT_LABEL;

  /**
   * Labels the workload's pods as clients of the gateway (the label `EgressGatewayPolicy`
   * admits) and sets the environment of every container it has now: `EGRESS_SUFFIX`, or the
   * proxy variables in forward-proxy mode (with `NODE_IP` from the downward API first when they
   * name the node's IP). Call it after adding the containers. Throws when a container already
   * sets one of the variables to something else.
   */
  public static configure(workload: kplus.AbstractPod, options: EgressClientOptions): void {
    const gw = options.gateway;
    const problems: string[] = [];
    checkTarget(gw, problems);
    const cidrs = splitCidrs('clusterCidrs', unique([...(options.clusterCidrs ?? []), ...(gw.clusterCidrs ?? [])]), problems);
    if (workload.containers.length === 0) {
      problems.push('the workload has no containers yet; add them before calling EgressClient.configure()');
    }
    const env: Record<string, string> = {};
    const mode = options.mode ?? EgressClientMode.SUFFIX;
    const viaNode = options.proxyAddress === EgressClientProxyAddress.NODE_IP;
    if (options.proxyAddress !== undefined && !Object.values(EgressClientProxyAddress).includes(options.proxyAddress)) {
      problems.push(`'proxyAddress' ${JSON.stringify(options.proxyAddress)} is not one of ${Object.values(EgressClientProxyAddress).map((v) => JSON.stringify(v)).join(', ')}; use an EgressClientProxyAddress member`);
    }
    if (viaNode && mode !== EgressClientMode.FORWARD_PROXY) {
      problems.push("'proxyAddress' NodeIP only applies to http_proxy clients; set 'mode' EgressClientMode.FORWARD_PROXY or remove proxyAddress");
    }
    if (viaNode && gw.hostPort === undefined) {
      problems.push(`'proxyAddress' NodeIP needs the gateway's pods on every node's IP, but gateway "${gatewayValue(gw)}" has no 'hostPort'; give the node-local gateway a hostPort (e.g. 4140) or use EgressClientProxyAddress.SERVICE`);
    }
    if (mode === EgressClientMode.SUFFIX) {
      env.EGRESS_SUFFIX = gw.suffix ?? DEFAULT_EGRESS_SUFFIX;
    } else {
      if (gw.forwardProxy === false) {
        problems.push(`'mode' ForwardProxy needs a gateway that accepts http_proxy requests; enable 'forwardProxy' on gateway "${gatewayValue(gw)}" or use EgressClientMode.SUFFIX`);
      }
      const domain = options.clusterDomain ?? 'cluster.local';
      // $(NODE_IP) is expanded by the kubelet because NODE_IP is defined earlier in the list.
      const proxy = viaNode
        ? `http://$(${NODE_IP_VAR}):${gw.hostPort}`
        : `http://${gw.serviceName}.${gw.namespace}.svc.${domain}:${gw.servicePort ?? 80}`;
      const noProxy = ['localhost', '127.0.0.1', '::1', '.svc', `.${domain}`, ...cidrs.v4, ...cidrs.v6].join(',');
      Object.assign(env, {
        HTTP_PROXY: proxy,
        HTTPS_PROXY: proxy,
        NO_PROXY: noProxy,
        http_proxy: proxy,
        https_proxy: proxy,
        no_proxy: noProxy,
      });
    }
    for (const c of workload.containers) {
      const existing = c.env.variables;
      const nodeIp = existing[NODE_IP_VAR];
      if (viaNode && nodeIp && nodeIp.valueFrom?.fieldRef?.fieldPath !== kplus.EnvFieldPaths.NODE_IP) {
        problems.push(`container "${c.name}" already sets ${NODE_IP_VAR} to something other than the downward API's ${kplus.EnvFieldPaths.NODE_IP}; rename that variable or configure the client by hand`);
      }
      for (const [name, value] of Object.entries(env)) {
        const current = existing[name];
        if (current && current.value !== value) {
          problems.push(`container "${c.name}" already sets ${name}=${JSON.stringify(current.value ?? '(from a reference)')}, not ${JSON.stringify(value)}; remove it or configure the client by hand`);
        }
      }
    }
    if (problems.length) throw new Error(`EgressClient.configure(${workload.node.path}): invalid options:\n- ${problems.join('\n- ')}`);
    workload.podMetadata.addLabel(CLIENT_LABEL, gatewayValue(gw));
    for (const c of workload.containers) {
      // First, so that the proxy variables after it can refer to it.
      if (viaNode && !c.env.variables[NODE_IP_VAR]) c.env.addVariable(NODE_IP_VAR, kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.NODE_IP));
      for (const [name, value] of Object.entries(env)) c.env.addVariable(name, kplus.EnvValue.fromValue(value));
    }
  }

  private constructor() {}
}
