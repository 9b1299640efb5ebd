// TlsRoute: a Gateway API TLSRoute attached to an EgressNetwork, allowing TLS egress by the SNI
// name of the ClientHello (the payload stays encrypted end to end).
import type { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { Client } from './callers';
import { Problems, RouteCore, subject } from './internal/route-core';
import { checkDnsSubdomain } from './internal/validate';
import { GatewayApiLimits } from './mesh/gateway-api';
import type { TlsRouteSpecL1 } from './mesh/gateway-api';
import type { RouteSpec } from './model/proxy-config';
import { RouteApiVersion } from './route-api-version';
import { RouteBackend } from './route-backend';
import type { IRoute, IRouteParent } from './route-parent';

/** The TLS port Linkerd's egress guide attaches TLSRoutes to. */
const TLS_ROUTE_DEFAULT_PORT = 443;

/** Everything of a TlsRoute but the network it attaches to. */
export interface TlsRouteOptions {
  /**
   * Object name.
   * @default - generated from the construct path
   */
  readonly name?: string;
  /**
   * Namespace of the route.
   * @default - the EgressNetwork's namespace
   */
  readonly namespace?: string;
  /**
   * The EgressNetwork port the route attaches to.
   * @default 443
   */
  readonly port?: number;
  /**
   * SNI names the route allows ('*.example.com' wildcards allowed). Required for v1.
   * @default - every SNI name (v1alpha2 only)
   */
  readonly hostnames?: string[];
  /**
   * The callers allowed to use this route. Only CONNECT tunnels (`forwardProxy`) carry the
   * caller's identity; TLS passthrough connections carry none, so the route closes them as
   * from an unknown caller. It therefore needs the gateway's `callerIdentity` and `forwardProxy`
   * (a synth error otherwise). To restrict TLS passthrough callers, restrict who reaches the gateway
   * with `allowFrom()` (NetworkPolicy).
   * @default - every caller
   */
  readonly clients?: Client[];
  /**
   * Where the connections go (Linkerd takes one rule per TLSRoute).
   * @default - [RouteBackend.passthrough()]: the original destination
   */
  readonly backends?: RouteBackend[];
  /**
   * Name of the route's single rule.
   * @default - unnamed
   */
  readonly ruleName?: string;
  /**
   * API version of the object.
   * @default RouteApiVersion.V1ALPHA2 (the version Linkerd reads)
   */
  readonly apiVersion?: RouteApiVersion;
}

/** Props of a TlsRoute. */
export interface TlsRouteProps extends TlsRouteOptions {
  /** The EgressNetwork the route attaches to. */
  readonly network: IRouteParent;
}

/**
 * A Gateway API TLSRoute on an EgressNetwork: TLS connections whose SNI matches go through.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#tlsroute
 * @see https://linkerd.io/2/tasks/managing-egress-traffic/
 *
 * @example
 * // Usually through the network: network.addTlsRoute('Httpbin', { ... }).
 * new TlsRoute(chart, 'Httpbin', { network, hostnames: ['httpbin.org'], port: 443 });
 */
export class TlsRoute extends Construct implements IRoute {
  /** The parentRef port used when `port` is unset: HTTPS. */
  public static readonly DEFAULT_PORT = TLS_ROUTE_DEFAULT_PORT;

  /** The object name. */
  public readonly name: string;
  /** The route's namespace. */
  public readonly namespace: string;
  /** The EgressNetwork the route attaches to. */
  public readonly network: IRouteParent;
  /** The parentRef port. */
  public readonly port?: number;
  /** API version the object is written in. */
  public readonly apiVersion: RouteApiVersion;
  /** The TLSRoute object. */
  public readonly apiObject: ApiObject;
  private readonly core: RouteCore;
  private readonly backends: RouteBackend[];
  private readonly ruleName?: string;

  constructor(scope: Construct, id: string, props: TlsRouteProps) {
    super(scope, id);
    const problems = new Problems(subject('TlsRoute', this));
    this.apiVersion = props.apiVersion ?? RouteApiVersion.V1ALPHA2;
    this.core = new RouteCore(this, props, {
      kind: 'TLSRoute',
      version: this.apiVersion,
      defaultPort: TLS_ROUTE_DEFAULT_PORT,
      requirePort: true,
      hostnamesAllowed: true,
      hostnamesRequired: this.apiVersion === RouteApiVersion.V1,
      maxHostnames: GatewayApiLimits.HOSTNAMES_TLS,
      hostnamePurpose: 'the TLS SNI name',
    }, problems);
    this.backends = [...(props.backends ?? [RouteBackend.passthrough()])];
    if (props.backends !== undefined && props.backends.length === 0) {
      problems.add('backends', [], 'is empty; a TLSRoute needs at least one backend', 'leave backends out to pass connections through, or name a Service');
    }
    this.core.checkBackends(this.backends, 'backends', problems);
    if (props.ruleName !== undefined) problems.addAll('ruleName', checkDnsSubdomain(props.ruleName, 'a rule name'));
    problems.throwIfAny();

    this.ruleName = props.ruleName;
    this.network = props.network;
    this.namespace = this.core.namespace;
    this.port = this.core.port;
    this.apiObject = this.core.create(() => this.renderSpec(), undefined, props.name);
    this.name = this.apiObject.name;
    props.network._attachRoute(this, 'TLSRoute');
  }

  private renderSpec(): TlsRouteSpecL1 {
    return {
      parentRefs: [this.core.parentRef()],
      hostnames: this.core.hostnames.length ? [...this.core.hostnames] : undefined,
      rules: [{ name: this.ruleName, backendRefs: this.backends.map((b) => this.core.renderBackend(b)) }],
    };
  }

  /** @internal the route as the proxy config states it; `order` is its declaration index. */
  public _toSpec(order: number): RouteSpec {
    return {
      ...this.core.specHeader(order),
      rules: [{ name: this.ruleName, matches: [], filters: [], backendRefs: this.backends.map((b) => this.core.backendSpec(b)) }],
    };
  }
}
