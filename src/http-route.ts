// HttpRoute: a Gateway API HTTPRoute attached to an EgressNetwork, allowing (or redirecting)
// plaintext HTTP egress by host, path, method, headers and query parameters.
import type { ApiObject, Duration } from 'cdk8s';
import { Construct } from 'constructs';
import type { Client } from './callers';
import {
  checkFilters, checkValueMatches, durationMs, filterSpecs, linkerdPolicy, Problems, renderFilters, renderValueMatches,
  RouteCore, subject, valueMatchSpecs,
} from './internal/route-core';
import type { LinkerdPolicy } from './internal/route-core';
import { checkPathValue, formatGatewayDuration } from './internal/validate';
import { GatewayApiLimits } from './mesh/gateway-api';
import type { HttpRouteMatchL1, HttpRouteRuleL1, HttpRouteSpecL1 } from './mesh/gateway-api';
import type { RouteMatchSpec, RouteRuleSpec, RouteSpec } from './model/proxy-config';
import type { RouteBackend } from './route-backend';
import { RouteFilterType } from './route-filter';
import type { RouteFilter } from './route-filter';
import { PathMatchType } from './route-match';
import type { HeaderMatch, HttpMethod, PathMatch, QueryParamMatch } from './route-match';
import type { IRoute, IRouteParent } from './route-parent';
import type { HttpRouteRetry, LinkerdRouteTimeouts } from './route-retry';

/** The plaintext HTTP port Linkerd's egress guide attaches HTTPRoutes to. */
const HTTP_ROUTE_DEFAULT_PORT = 80;

/**
 * Conditions a request must meet, all of them, for a match to apply.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#httproutematch
 */
export interface HttpRouteMatch {
  /**
   * Path condition.
   * @default - every path
   */
  readonly path?: PathMatch;
  /**
   * Method condition.
   * @default - every method
   */
  readonly method?: HttpMethod;
  /**
   * Header conditions (at most 16), all of which must hold.
   * @default - none
   */
  readonly headers?: HeaderMatch[];
  /**
   * Query parameter conditions (at most 16), all of which must hold.
   * @default - none
   */
  readonly queryParams?: QueryParamMatch[];
}

/**
 * One rule: requests meeting any of its matches get its filters and go to its backends.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#httprouterule
 */
export interface HttpRouteRule {
  /**
   * Rule name (DNS subdomain), shown in status and logs.
   * @default - unnamed
   */
  readonly name?: string;
  /**
   * Matches (at most 64 per rule and 128 per route); any one suffices.
   * @default - every request (path prefix '/')
   */
  readonly matches?: HttpRouteMatch[];
  /**
   * Filters: header modifiers and redirects (Linkerd rejects mirrors, rewrites and extensions).
   * @default - none
   */
  readonly filters?: RouteFilter[];
  /**
   * Where matching requests go.
   * @default - the original destination through the route's EgressNetwork (Linkerd's behaviour
   * for a rule without backendRefs on an EgressNetwork parent)
   */
  readonly backends?: RouteBackend[];
  /**
   * Gateway API `timeouts.request`: the whole exchange, retries included. Whole milliseconds.
   * @default - no limit
   */
  readonly timeout?: Duration;
  /**
   * Gateway API `timeouts.backendRequest`: each attempt to the backend. Linkerd ignores this
   * field (use `timeouts.response` on the route for Linkerd); the egress gateway enforces it.
   * @default - no limit
   */
  readonly backendTimeout?: Duration;
}

/** Everything of an HttpRoute but the network it attaches to. */
export interface HttpRouteOptions {
  /**
   * Object name.
   * @default - generated from the construct path
   */
  readonly name?: string;
  /**
   * Namespace of the route. In the EgressNetwork's namespace the route applies to every client of
   * the network; in another namespace (allowed for the global egress namespace), to that
   * namespace's clients only.
   * @default - the EgressNetwork's namespace
   */
  readonly namespace?: string;
  /**
   * The EgressNetwork port the route attaches to (parentRef port): the port clients dial.
   * @default 80
   */
  readonly port?: number;
  /**
   * Hosts (HTTP Host header) the route applies to, at most 16; '*.example.com' wildcards allowed.
   * @default - every host
   */
  readonly hostnames?: string[];
  /**
   * The callers allowed to use this route; every other caller gets 403 `CALLER_NOT_ALLOWED`
   * (`CALLER_UNKNOWN` when the gateway cannot tell who it is). Needs the gateway's
   * `callerIdentity`. A request for a host with an ExternalService that declares clients needs
   * the consent of both. Enforced by the egress gateway that serves the network; the Gateway API
   * object carries no such field.
   * @default - every caller
   */
  readonly clients?: Client[];
  /**
   * Rules, at most 16; more can be added with `addRule()`.
   * @default - one rule matching every request, passed through to its destination
   */
  readonly rules?: HttpRouteRule[];
  /**
   * Linkerd retries (retry.linkerd.io annotations), for idempotent routes: Linkerd retries
   * whatever the method.
   * @default - no retries
   */
  readonly retry?: HttpRouteRetry;
  /**
   * Linkerd timeouts (timeout.linkerd.io annotations). Linkerd prefers `request` over a rule's
   * `timeout`, so set one or the other.
   * @default - none
   */
  readonly timeouts?: LinkerdRouteTimeouts;
}

/** Props of an HttpRoute. */
export interface HttpRouteProps extends HttpRouteOptions {
  /** The EgressNetwork the route attaches to (its parentRef). */
  readonly network: IRouteParent;
}

/**
 * A Gateway API HTTPRoute (gateway.networking.k8s.io/v1) on an EgressNetwork: which plaintext
 * HTTP requests to external hosts are allowed, edited, redirected or sent to an in-cluster Service.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#httproute
 * @see https://linkerd.io/2/tasks/managing-egress-traffic/
 *
 * @example
 * // Usually through the network: network.addHttpRoute('Get', { ... }).
 * new HttpRoute(chart, 'Get', {
 *   network,
 *   hostnames: ['httpbin.org'],
 *   rules: [{ matches: [{ path: PathMatch.prefix('/get') }] }],
 * });
 */
export class HttpRoute extends Construct implements IRoute {
  /** The parentRef port used when `port` is unset: plaintext HTTP. */
  public static readonly DEFAULT_PORT = HTTP_ROUTE_DEFAULT_PORT;

  /** The object name. */
  public readonly name: string;
  /** The route's namespace. */
  public readonly namespace: string;
  /** The EgressNetwork the route attaches to. */
  public readonly network: IRouteParent;
  /** The parentRef port. */
  public readonly port?: number;
  /** The HTTPRoute object. */
  public readonly apiObject: ApiObject;
  private readonly core: RouteCore;
  private readonly rules: HttpRouteRule[] = [];
  private readonly policy: LinkerdPolicy;

  constructor(scope: Construct, id: string, props: HttpRouteProps) {
    super(scope, id);
    const problems = new Problems(subject('HttpRoute', this));
    this.core = new RouteCore(this, props, {
      kind: 'HTTPRoute',
      version: 'v1',
      defaultPort: HTTP_ROUTE_DEFAULT_PORT,
      requirePort: false,
      hostnamesAllowed: true,
      hostnamesRequired: false,
      maxHostnames: GatewayApiLimits.HOSTNAMES_HTTP,
      hostnamePurpose: 'the HTTP Host header',
    }, problems);
    this.policy = linkerdPolicy(props.retry, false, props.timeouts, problems);
    const rules = props.rules ?? [];
    rules.forEach((r, i) => this.checkRule(r, `rules[${i}]`, problems, rules.slice(0, i)));
    problems.throwIfAny();

    this.network = props.network;
    this.namespace = this.core.namespace;
    this.port = this.core.port;
    this.apiObject = this.core.create(() => this.renderSpec(), this.policy.annotations, props.name);
    this.name = this.apiObject.name;
    this.rules.push(...rules);
    props.network._attachRoute(this, 'HTTPRoute');
  }

  /** Adds a rule (checked now; rendered at synth). */
  public addRule(rule: HttpRouteRule): void {
    const problems = new Problems(subject('HttpRoute', this));
    this.checkRule(rule, `rules[${this.rules.length}]`, problems, this.rules);
    problems.throwIfAny();
    this.rules.push(rule);
  }

  private checkRule(rule: HttpRouteRule, prop: string, problems: Problems, before: readonly HttpRouteRule[]): void {
    this.core.checkRuleShape(rule, prop, before, 'HttpRoute', problems);
    const matches = rule.matches ?? [];
    matches.forEach((m, j) => {
      const p = `${prop}.matches[${j}]`;
      if (m.path) problems.addAll(`${p}.path`, checkPathValue(m.path.type, m.path.value));
      checkValueMatches(m.headers ?? [], `${p}.headers`, 'header', problems);
      checkValueMatches(m.queryParams ?? [], `${p}.queryParams`, 'query parameter', problems);
    });
    const backends = rule.backends ?? [];
    this.core.checkBackends(backends, `${prop}.backends`, problems);
    checkFilters(rule.filters ?? [], `${prop}.filters`, {
      kind: 'HTTPRoute',
      hasBackends: backends.length > 0,
      pathPrefixMatches: matches.filter((m) => m.path?.type === PathMatchType.PATH_PREFIX).length,
      totalMatches: matches.length,
    }, problems);
    const request = durationMs(rule.timeout, `${prop}.timeout`, problems);
    const backend = durationMs(rule.backendTimeout, `${prop}.backendTimeout`, problems);
    for (const [p, ms] of [[`${prop}.timeout`, request], [`${prop}.backendTimeout`, backend]] as const) {
      if (ms !== undefined && formatGatewayDuration(ms) === undefined) problems.add(p, `${ms}ms`, 'cannot be written as a Gateway API duration', 'use at most 99999 hours');
    }
    if (request && backend !== undefined && backend > request) {
      problems.add(`${prop}.backendTimeout`, `${backend}ms`, `is longer than the rule's timeout (${request}ms); the Gateway API rejects it`, 'make it at most the timeout');
    }
    if (request !== undefined && this.policy.requestTimeoutMs !== undefined) {
      problems.add(`${prop}.timeout`, `${request}ms`, `is overridden by the route's timeouts.request (${this.policy.requestTimeoutMs}ms): Linkerd prefers the annotation`,
        'set the timeout in one place only');
    }
    if (backend !== undefined && this.policy.responseTimeoutMs !== undefined) {
      problems.add(`${prop}.backendTimeout`, `${backend}ms`, `conflicts with the route's timeouts.response (${this.policy.responseTimeoutMs}ms)`, 'set the timeout in one place only');
    }
  }

  private renderSpec(): HttpRouteSpecL1 {
    const rules: HttpRouteRuleL1[] = this.rules.length === 0
      ? [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }]
      : this.rules.map((r) => {
        const request = r.timeout ? formatGatewayDuration(r.timeout.toMilliseconds()) : undefined;
        const backendRequest = r.backendTimeout ? formatGatewayDuration(r.backendTimeout.toMilliseconds()) : undefined;
        return {
          name: r.name,
          matches: r.matches?.length ? r.matches.map(renderMatch) : undefined,
          filters: renderFilters(r.filters ?? []),
          backendRefs: r.backends?.length ? r.backends.map((b) => this.core.renderBackend(b)) : undefined,
          timeouts: request || backendRequest ? { request, backendRequest } : undefined,
        };
      });
    return {
      parentRefs: [this.core.parentRef()],
      hostnames: this.core.hostnames.length ? [...this.core.hostnames] : undefined,
      rules,
    };
  }

  /** @internal the route as the proxy config states it; `order` is its declaration index. */
  public _toSpec(order: number): RouteSpec {
    const rules: RouteRuleSpec[] = (this.rules.length ? this.rules : [{} as HttpRouteRule]).map((r) => {
      const redirects = (r.filters ?? []).some((f) => f.type === RouteFilterType.REQUEST_REDIRECT);
      const matches: RouteMatchSpec[] = r.matches?.length
        ? r.matches.map(matchSpec)
        : [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }];
      return {
        name: r.name,
        matches,
        filters: filterSpecs(r.filters ?? []),
        backendRefs: this.core.backendSpecs(r.backends ?? [], redirects),
        requestTimeoutMs: this.policy.requestTimeoutMs ?? positive(r.timeout?.toMilliseconds()),
        backendRequestTimeoutMs: this.policy.responseTimeoutMs ?? positive(r.backendTimeout?.toMilliseconds()),
        retry: this.policy.retry,
      };
    });
    return { ...this.core.specHeader(order), rules };
  }
}

function positive(ms: number | undefined): number | undefined {
  return ms ? ms : undefined;
}

function renderMatch(m: HttpRouteMatch): HttpRouteMatchL1 {
  return {
    path: m.path ? { type: m.path.type, value: m.path.value } : undefined,
    method: m.method,
    headers: renderValueMatches(m.headers),
    queryParams: renderValueMatches(m.queryParams),
  };
}

function matchSpec(m: HttpRouteMatch): RouteMatchSpec {
  return {
    path: m.path ? { type: m.path.type, value: m.path.value } : undefined,
    method: m.method,
    headers: valueMatchSpecs(m.headers),
    queryParams: valueMatchSpecs(m.queryParams),
  };
}
