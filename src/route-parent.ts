// The seam between routes and what they attach to: a route names an IRouteParent (its
// parentRef), never a concrete parent construct, so a new kind of parent plugs in without
// editing the routes, and the parent's module may create routes without an import loop.
import type { IConstruct } from 'constructs';
import type { ParentReferenceL1 } from './mesh/gateway-api';
import type { ParentSpec, RouteKindSpec, RouteSpec } from './model/proxy-config';

/** A route as its parent sees it. */
export interface IRoute extends IConstruct {
  /** The route's object name. */
  readonly name: string;
  /** The route's namespace. */
  readonly namespace: string;

  /** @internal the route as the proxy config states it; `order` is its declaration index. */
  _toSpec(order: number): RouteSpec;
}

/**
 * What a route attaches to (its Gateway API parentRef) and what an egress gateway enforces:
 * an `EgressNetwork`.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#parentreference
 */
export interface IRouteParent extends IConstruct {
  /** The parent's object name. */
  readonly name: string;
  /** The parent's namespace: the default namespace of its routes. */
  readonly namespace: string;

  /**
   * @internal called by each route on construction; a second route of the same kind, namespace
   * and name would overwrite the first in the cluster, so it throws.
   */
  _attachRoute(route: IRoute, kind: RouteKindSpec): void;

  /** @internal the parentRef a route attached on `port` renders. */
  _parentRef(port?: number): ParentReferenceL1;

  /**
   * @internal called by an egress gateway before it enforces this parent; throws (naming
   * `gateway`) when the parent must not be enforced by a gateway.
   */
  _bindGateway(gateway: IConstruct): void;

  /** @internal the parent as the proxy config states it. */
  _renderParent(): ParentSpec;

  /** @internal the attached routes, in declaration order, as the proxy config states them. */
  _renderRoutes(): RouteSpec[];

  /** @internal construct paths of the attached routes, in the order of `_renderRoutes()`. */
  _routePaths(): string[];
}
