// TcpRoute: a Gateway API TCPRoute attached to an EgressNetwork, allowing opaque TCP egress to
// one port of the network.
import type { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { Client } from './callers';
import { Problems, RouteCore, subject } from './internal/route-core';
import { checkDnsSubdomain } from './internal/validate';
import type { TcpRouteSpecL1 } from './mesh/gateway-api';
import type { RouteSpec } from './model/proxy-config';
import { RouteApiVersion } from './route-api-version';
import { RouteBackend } from './route-backend';
import type { IRoute, IRouteParent } from './route-parent';

/** Everything of a TcpRoute but the network it attaches to. */
export interface TcpRouteOptions {
  /** The EgressNetwork port the route attaches to: the port clients dial, e.g. 5432. */
  readonly port: number;
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
   * The callers allowed to use this route. Only CONNECT tunnels (`forwardProxy`) carry the
   * caller's identity; TCP listener connections carry none, so the route closes them as
   * from an unknown caller. It therefore needs the gateway's `callerIdentity` and `forwardProxy`
   * (a synth error otherwise). To restrict TCP listener callers, restrict who reaches the gateway
   * with `allowFrom()` (NetworkPolicy).
   * @default - every caller
   */
  readonly clients?: Client[];
  /**
   * Where the connections go (Linkerd takes one rule per TCPRoute).
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

/** Props of a TcpRoute. */
export interface TcpRouteProps extends TcpRouteOptions {
  /** The EgressNetwork the route attaches to. */
  readonly network: IRouteParent;
}

/**
 * A Gateway API TCPRoute on an EgressNetwork: connections to the port go through.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#tcproute
 *
 * @example
 * // Usually through the network: network.addTcpRoute('Postgres', { ... }).
 * new TcpRoute(chart, 'Postgres', { network, port: 5432 });
 */
export class TcpRoute extends Construct implements IRoute {
  /** The object name. */
  public readonly name: string;
  /** The route's namespace. */
  public readonly namespace: string;
  /** The EgressNetwork the route attaches to. */
  public readonly network: IRouteParent;
  /** The parentRef port. */
  public readonly port: number;
  /** API version the object is written in. */
  public readonly apiVersion: RouteApiVersion;
  /** The TCPRoute object. */
  public readonly apiObject: ApiObject;
  private readonly core: RouteCore;
  private readonly backends: RouteBackend[];
  private readonly ruleName?: string;

  constructor(scope: Construct, id: string, props: TcpRouteProps) {
    super(scope, id);
    const problems = new Problems(subject('TcpRoute', this));
    this.apiVersion = props.apiVersion ?? RouteApiVersion.V1ALPHA2;
    this.core = new RouteCore(this, props, {
      kind: 'TCPRoute',
      version: this.apiVersion,
      requirePort: true,
      hostnamesAllowed: false,
      hostnamesRequired: false,
      maxHostnames: 0,
      hostnamePurpose: 'nothing (TCP has no name)',
    }, problems);
    this.backends = [...(props.backends ?? [RouteBackend.passthrough()])];
    if (props.backends !== undefined && props.backends.length === 0) {
      problems.add('backends', [], 'is empty; a TCPRoute needs at least one backend', 'leave backends out to pass connections through, or name a Service');
    }
    this.core.checkBackends(this.backends, 'backends', problems);
    if (props.ruleName !== undefined) problems.addAll('ruleName', checkDnsSubdomain(props.ruleName, 'a rule name'));
    problems.throwIfAny();

    this.ruleName = props.ruleName;
    this.network = props.network;
    this.namespace = this.core.namespace;
    this.port = props.port;
    this.apiObject = this.core.create(() => this.renderSpec(), undefined, props.name);
    this.name = this.apiObject.name;
    props.network._attachRoute(this, 'TCPRoute');
  }

  private renderSpec(): TcpRouteSpecL1 {
    return {
      parentRefs: [this.core.parentRef()],
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
