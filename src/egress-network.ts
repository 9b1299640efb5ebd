// EgressNetwork: Linkerd's policy.linkerd.io EgressNetwork, the parent that captures traffic to
// destinations outside the cluster and decides, with the routes attached to it, what gets out.
import { ApiObject, Chart } from 'cdk8s';
import { Construct } from 'constructs';
import type { IConstruct } from 'constructs';
import type { IEgressGateway } from './egress-gateway-ref';
import { GrpcRoute } from './grpc-route';
import type { GrpcRouteOptions } from './grpc-route';
import { HttpRoute } from './http-route';
import type { HttpRouteOptions } from './http-route';
import { gatewayFacts } from './internal/app-tree';
import { CidrParseError, cidrsOverlap, parseCidr } from './internal/cidr';
import type { Cidr } from './internal/cidr';
import { Problems } from './internal/problems';
import { checkDnsLabel, checkDnsSubdomain } from './internal/validate';
import type { ParentReferenceL1 } from './mesh/gateway-api';
import { EGRESS_NETWORK_KIND, egressNetworkObject, LINKERD_GLOBAL_EGRESS_NAMESPACE, LINKERD_POLICY_GROUP } from './mesh/linkerd';
import type { EgressNetworkSpecL1 } from './mesh/linkerd';
import type { NetworkSpec, ParentSpec, RouteKindSpec, RouteSpec } from './model/proxy-config';
import type { IRoute, IRouteParent } from './route-parent';
import { TcpRoute } from './tcp-route';
import type { TcpRouteOptions } from './tcp-route';
import { TlsRoute } from './tls-route';
import type { TlsRouteOptions } from './tls-route';
import { EnforcementMode, TrafficPolicy } from './traffic-policy';

// Linkerd's default `clusterNetworks` (the in-cluster ranges an EgressNetwork must not cover).
const LINKERD_DEFAULT_CLUSTER_NETWORKS: readonly string[] = [
  '10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16', 'fd00::/8',
];

/** Options of `EgressNetworkCidr.of()`. */
export interface EgressNetworkCidrOptions {
  /**
   * Networks or single addresses inside the CIDR that the EgressNetwork does not cover.
   * @default - none
   */
  readonly except?: string[];
}

/**
 * A destination network an EgressNetwork covers: a CIDR minus some exceptions.
 * Checked by the EgressNetwork that uses it (valid CIDR, exceptions inside it, clear of the
 * cluster's own networks).
 * @see https://linkerd.io/2/reference/egress-network/#networks
 */
export class EgressNetworkCidr {
  /** `cidr` (e.g. '0.0.0.0/0' or '203.0.113.0/24'), minus `options.except`. */
  public static of(cidr: string, options: EgressNetworkCidrOptions = {}): EgressNetworkCidr {
    return new EgressNetworkCidr(cidr, [...(options.except ?? [])]);
  }

  private constructor(
    /** The network, in CIDR notation. */
    public readonly cidr: string,
    /** Networks or addresses left out. */
    public readonly except: string[],
  ) {}
}

/** Props of an EgressNetwork. */
export interface EgressNetworkProps {
  /**
   * Object name.
   * @default - generated from the construct path
   */
  readonly name?: string;
  /**
   * Namespace. An EgressNetwork applies to clients in its own namespace, except in Linkerd's
   * global egress namespace, where it applies to every namespace (namespace-local ones win).
   * @default - the chart's namespace, else "default"; "linkerd-egress" when `global` is true
   */
  readonly namespace?: string;
  /**
   * Put the network in Linkerd's global egress namespace (`EgressNetwork.GLOBAL_NAMESPACE`,
   * "linkerd-egress"), so it governs clients in every namespace. If your Linkerd install changed
   * `egress.globalEgressNetworkNamespace`, set `namespace` to that value instead.
   * @default false
   */
  readonly global?: boolean;
  /**
   * What traffic no route matches gets: ALLOW lets it out (observe first, as Linkerd's guide
   * does), DENY refuses it (HTTP 403, TLS/TCP connections closed).
   * @see https://linkerd.io/2/reference/egress-network/#trafficpolicy
   * @default TrafficPolicy.ALLOW
   */
  readonly trafficPolicy?: TrafficPolicy;
  /**
   * Destination networks the EgressNetwork captures; more with `addNetwork()`.
   * @default - every address outside the cluster's networks
   */
  readonly networks?: EgressNetworkCidr[];
  /**
   * The cluster's own networks, as configured in Linkerd's `clusterNetworks`. Linkerd refuses an
   * EgressNetwork whose networks overlap them (unless an `except` cuts them out); so does synth.
   * @default EgressNetwork.LINKERD_DEFAULT_CLUSTER_NETWORKS
   */
  readonly clusterNetworks?: string[];
  /**
   * This network is enforced by Linkerd's proxies only, on purpose: no EgressGateway attaches
   * it. Synth refuses an EgressNetwork that no gateway attaches when an EgressGateway in the
   * same chart has `trafficPolicy: DENY` and no network, because that gateway then refuses
   * every host but its declared services, whatever this network's routes allow; `meshOnly: true`
   * says that the two are meant to stay apart. A gateway cannot attach a meshOnly network.
   * @default false
   */
  readonly meshOnly?: boolean;
  /**
   * Whether the egress gateway enforces denials or only reports them. Linkerd's proxies always
   * enforce; this affects the cdk8s-egress gateway only.
   * @default EnforcementMode.ENFORCE
   */
  readonly enforcement?: EnforcementMode;
  /**
   * An egress gateway that enforces this network too (calls `gateway.attachNetwork(this)`).
   * @default - Linkerd only
   */
  readonly gateway?: IEgressGateway;
}

/**
 * Linkerd's EgressNetwork (policy.linkerd.io/v1alpha1): captures meshed clients' traffic to
 * destinations outside the cluster, reports it under Linkerd's route metrics, and lets the
 * HTTPRoutes, GRPCRoutes, TLSRoutes and TCPRoutes attached to it decide what gets through.
 *
 * Two mistakes fail at synth. A route (or a route's backend Service, or a gateway attaching the
 * network) from another cdk8s App: each App writes its own manifests, so the route and the
 * network it names would never be applied together. And a network no gateway attaches, in a
 * chart whose EgressGateway has `trafficPolicy: DENY` and no network: that gateway lets only its
 * declared services out, so everything the network's routes allow would be refused at the
 * gateway without a word. Attach the network (`gateway` prop or `gateway.attachNetwork()`, with
 * trafficPolicy on the network), or set `meshOnly: true` when only Linkerd enforces it.
 * @see https://linkerd.io/2/reference/egress-network/
 * @see https://linkerd.io/2/tasks/managing-egress-traffic/
 *
 * @example
 * // Linkerd's guide: deny by default, let GET /get on httpbin.org out; the gateway enforces it too.
 * const network = new EgressNetwork(chart, 'Egress', { trafficPolicy: TrafficPolicy.DENY, gateway });
 * network.addHttpRoute('Get', {
 *   hostnames: ['httpbin.org'],
 *   rules: [{ matches: [{ path: PathMatch.exact('/get'), method: HttpMethod.GET }] }],
 * });
 */
export class EgressNetwork extends Construct implements IRouteParent {
  /** Linkerd's default global egress namespace. */
  public static readonly GLOBAL_NAMESPACE = LINKERD_GLOBAL_EGRESS_NAMESPACE;
  /**
   * Linkerd's default `clusterNetworks` Helm value: what `clusterNetworks` defaults to.
   * @see https://linkerd.io/2/reference/egress-network/
   */
  public static readonly LINKERD_DEFAULT_CLUSTER_NETWORKS: string[] = [...LINKERD_DEFAULT_CLUSTER_NETWORKS];

  /** The object name. */
  public readonly name: string;
  /** The namespace. */
  public readonly namespace: string;
  /** The traffic policy. */
  public readonly trafficPolicy: TrafficPolicy;
  /** The gateway enforcement mode. */
  public readonly enforcement: EnforcementMode;
  /** The cluster networks the EgressNetwork must stay clear of. */
  public readonly clusterNetworks: string[];
  /** The EgressNetwork object. */
  public readonly apiObject: ApiObject;
  /** Whether this network is declared as enforced by Linkerd only (`meshOnly`). */
  public readonly meshOnly: boolean;
  private readonly networks: EgressNetworkCidr[] = [];
  private readonly routes: { readonly route: IRoute; readonly kind: RouteKindSpec }[] = [];

  constructor(scope: Construct, id: string, props: EgressNetworkProps = {}) {
    super(scope, id);
    const problems = new Problems(`EgressNetwork "${this.node.path}"`);
    if (props.name !== undefined) problems.addAll('name', checkDnsSubdomain(props.name, 'a Kubernetes object name'));
    if (props.namespace !== undefined) problems.addAll('namespace', checkDnsLabel(props.namespace, 'a namespace'));
    if (props.global && props.namespace !== undefined && props.namespace !== EgressNetwork.GLOBAL_NAMESPACE) {
      problems.add('namespace', props.namespace, `contradicts 'global: true', which means namespace "${EgressNetwork.GLOBAL_NAMESPACE}"`,
        'drop global and keep namespace when Linkerd uses a custom global egress namespace, or drop namespace');
    }
    this.clusterNetworks = [...(props.clusterNetworks ?? LINKERD_DEFAULT_CLUSTER_NETWORKS)];
    const cluster: Cidr[] = [];
    this.clusterNetworks.forEach((c, i) => {
      const parsed = tryCidr(c, `clusterNetworks[${i}]`, problems, false);
      if (parsed) cluster.push(parsed);
    });
    const networks = props.networks ?? [];
    networks.forEach((n, i) => {
      checkNetwork(n, `networks[${i}]`, cluster, this.clusterNetworks, problems);
      checkDuplicate(n, `networks[${i}]`, networks.slice(0, i), problems);
    });
    if (props.meshOnly && props.gateway) {
      problems.add('meshOnly', true, `contradicts 'gateway' EgressGateway "${props.gateway.node.path}": meshOnly states that no gateway enforces this network`,
        'remove meshOnly to have the gateway enforce the network, or remove gateway');
    }
    problems.throwIfAny();

    this.meshOnly = props.meshOnly ?? false;
    this.namespace = props.namespace ?? (props.global ? EgressNetwork.GLOBAL_NAMESPACE : Chart.of(this).namespace ?? 'default');
    this.trafficPolicy = props.trafficPolicy ?? TrafficPolicy.ALLOW;
    this.enforcement = props.enforcement ?? EnforcementMode.ENFORCE;
    this.networks.push(...networks);
    this.apiObject = egressNetworkObject(this, 'Resource', {
      name: props.name,
      namespace: this.namespace,
      spec: () => this.renderSpec(),
    });
    this.name = this.apiObject.name;
    props.gateway?.attachNetwork(this);
    this.node.addValidation({ validate: () => this.checkEnforced() });
  }

  /** Adds a destination network (checked now against the cluster networks). */
  public addNetwork(network: EgressNetworkCidr): void {
    const problems = new Problems(`EgressNetwork "${this.node.path}"`);
    const cluster = this.clusterNetworks.map((c) => parseCidr(c));
    checkNetwork(network, `networks[${this.networks.length}]`, cluster, this.clusterNetworks, problems);
    checkDuplicate(network, `networks[${this.networks.length}]`, this.networks, problems);
    problems.throwIfAny();
    this.networks.push(network);
  }

  /** Attaches a new HttpRoute to this network and returns it. */
  public addHttpRoute(id: string, options: HttpRouteOptions = {}): HttpRoute {
    this.checkFreeId(id, 'addHttpRoute');
    return new HttpRoute(this, id, { ...options, network: this });
  }

  /** Attaches a new GrpcRoute to this network and returns it. */
  public addGrpcRoute(id: string, options: GrpcRouteOptions = {}): GrpcRoute {
    this.checkFreeId(id, 'addGrpcRoute');
    return new GrpcRoute(this, id, { ...options, network: this });
  }

  /** Attaches a new TlsRoute to this network and returns it. */
  public addTlsRoute(id: string, options: TlsRouteOptions = {}): TlsRoute {
    this.checkFreeId(id, 'addTlsRoute');
    return new TlsRoute(this, id, { ...options, network: this });
  }

  /** Attaches a new TcpRoute to this network and returns it. */
  public addTcpRoute(id: string, options: TcpRouteOptions): TcpRoute {
    this.checkFreeId(id, 'addTcpRoute');
    return new TcpRoute(this, id, { ...options, network: this });
  }

  /** The destination networks, as given. */
  public get destinationNetworks(): EgressNetworkCidr[] {
    return [...this.networks];
  }

  private checkFreeId(id: string, method: string): void {
    if (this.node.tryFindChild(id)) {
      throw new Error(`EgressNetwork "${this.node.path}": ${method}('${id}') "${id}" is already used by "${this.node.tryFindChild(id)!.node.path}"; route ids must be unique per network, so give the new route another id`);
    }
  }

  /**
   * @internal called by each route on construction; a second route of the same kind, namespace
   * and name would overwrite the first in the cluster, so it throws.
   */
  public _attachRoute(route: IRoute, kind: RouteKindSpec): void {
    const twin = this.routes.find((r) => r.kind === kind && r.route.namespace === route.namespace && r.route.name === route.name);
    if (twin) {
      throw new Error(`${kind} "${route.node.path}": 'name' "${route.name}" is already used by ${kind} "${twin.route.node.path}" in namespace "${route.namespace}", so one would overwrite the other; give one of them another name`);
    }
    this.routes.push({ route, kind });
  }

  /**
   * The rule for a network no gateway attaches: it is an error when an EgressGateway in the same
   * chart has trafficPolicy Deny and no network of its own. That gateway enforces only its
   * declared services, so whatever this network's routes allow is refused at the gateway, and
   * nothing says so until traffic fails. A gateway anywhere in the App that attaches the network,
   * or `meshOnly: true`, satisfies the rule.
   */
  private checkEnforced(): string[] {
    if (this.meshOnly) return [];
    const gateways = this.node.root.node.findAll().flatMap((c) => {
      const facts = gatewayFacts(c);
      return facts ? [{ c, facts }] : [];
    });
    if (gateways.some((g) => g.facts.network === this)) return [];
    const chart = Chart.of(this);
    const denying = gateways.filter((g) => Chart.of(g.c) === chart && !g.facts.network && g.facts.trafficPolicy === TrafficPolicy.DENY);
    if (denying.length === 0) return [];
    const problems = new Problems(`EgressNetwork "${this.node.path}"`);
    for (const g of denying) {
      problems.add('gateway', undefined,
        `leaves this network attached to no gateway, while EgressGateway "${g.c.node.path}" in the same chart has trafficPolicy Deny and no network: that gateway refuses every host but its ${g.facts.declaredServices} declared service(s), and the ${this.routes.length} route(s) of this network never reach it`,
        'attach the network (gateway: <the gateway>, or gateway.attachNetwork(network)) and move trafficPolicy: TrafficPolicy.DENY from the gateway to the network; or set meshOnly: true if only Linkerd is meant to enforce this network');
    }
    try {
      problems.throwIfAny();
    } catch (e) {
      return [(e as Error).message];
    }
    return [];
  }

  private renderSpec(): EgressNetworkSpecL1 {
    return {
      trafficPolicy: this.trafficPolicy === TrafficPolicy.DENY ? 'Deny' : 'Allow',
      networks: this.networks.length
        ? this.networks.map((n) => ({ cidr: n.cidr, except: n.except.length ? [...n.except] : undefined }))
        : undefined,
    };
  }

  /** @internal the parentRef a route attached on `port` renders. */
  public _parentRef(port?: number): ParentReferenceL1 {
    return { group: LINKERD_POLICY_GROUP, kind: EGRESS_NETWORK_KIND, name: this.name, namespace: this.namespace, port };
  }

  /** @internal called by an egress gateway before it enforces this network: a meshOnly network refuses. */
  public _bindGateway(gateway: IConstruct): void {
    if (this.meshOnly) {
      throw new Error(`EgressGateway "${gateway.node.path}": 'network' EgressNetwork "${this.node.path}" has meshOnly: true, which states that no gateway enforces it; remove meshOnly from the network, or do not attach it`);
    }
  }

  /** @internal the parent this network is, as the proxy config states it. */
  public _renderParent(): ParentSpec {
    return {
      group: 'policy.linkerd.io',
      kind: 'EgressNetwork',
      name: this.name,
      namespace: this.namespace,
      trafficPolicy: this.trafficPolicy === TrafficPolicy.DENY ? 'Deny' : 'Allow',
      networks: this.networks.map((n): NetworkSpec => ({ cidr: n.cidr, except: [...n.except] })),
      mode: this.enforcement === EnforcementMode.REPORT_ONLY ? 'ReportOnly' : 'Enforce',
    };
  }

  /** @internal construct paths of the attached routes, in the order of `_renderRoutes()`. */
  public _routePaths(): string[] {
    return this.routes.map((r) => r.route.node.path);
  }

  /** @internal the routes attached to this network, in declaration order, as the proxy config states them. */
  public _renderRoutes(): RouteSpec[] {
    return this.routes.map((r, i) => r.route._toSpec(i));
  }
}

function tryCidr(text: string, prop: string, problems: Problems, bareAddress: boolean): Cidr | undefined {
  try {
    return parseCidr(text, { allowBareAddress: bareAddress });
  } catch (e) {
    const detail = e instanceof CidrParseError ? e.message.replace(/^invalid [^:]+: /, '') : String(e);
    problems.add(prop, text, `is not a valid ${bareAddress ? 'CIDR or IP address' : 'CIDR'} (${detail})`, 'write it like "203.0.113.0/24" or "2001:db8::/32"');
    return undefined;
  }
}

/** `inner` lies wholly inside `outer`. */
function covers(outer: Cidr, inner: Cidr): boolean {
  // Compare prefixes in the IPv6 space when the families differ (IPv4 lives at ::ffff:0:0/96).
  const lift = (c: Cidr) => (c.family === 4 && outer.family !== inner.family ? c.prefix + 96 : c.prefix);
  return lift(outer) <= lift(inner) && cidrsOverlap(outer, inner);
}

/**
 * Linkerd's rule: a network overlaps a cluster network when one contains the other, unless one
 * of its `except` entries contains the cluster network.
 */
function checkNetwork(n: EgressNetworkCidr, prop: string, cluster: readonly Cidr[], clusterText: readonly string[], problems: Problems): void {
  const cidr = tryCidr(n.cidr, `${prop}.cidr`, problems, false);
  const except: Cidr[] = [];
  n.except.forEach((e, j) => {
    const parsed = tryCidr(e, `${prop}.except[${j}]`, problems, true);
    if (!parsed) return;
    except.push(parsed);
    if (cidr && !covers(cidr, parsed)) {
      problems.add(`${prop}.except[${j}]`, e, `is not inside the network's cidr "${n.cidr}", so it excludes nothing`, 'remove it, or widen the cidr to cover it');
    }
  });
  if (!cidr) return;
  cluster.forEach((c, k) => {
    if (!cidrsOverlap(cidr, c)) return;
    if (except.some((e) => covers(e, c))) return;
    problems.add(`${prop}.cidr`, n.cidr, `overlaps the cluster network "${clusterText[k]}"; Linkerd refuses such an EgressNetwork (EgressReasonNetworkOverlap) because in-cluster traffic must not be captured`,
      `add "${clusterText[k]}" to except, or narrow the cidr`);
  });
}

function checkDuplicate(n: EgressNetworkCidr, prop: string, before: readonly EgressNetworkCidr[], problems: Problems): void {
  if (before.some((b) => b.cidr === n.cidr)) {
    problems.add(`${prop}.cidr`, n.cidr, 'is already a network of this EgressNetwork', 'merge the two entries (one cidr with all its exceptions)');
  }
}
