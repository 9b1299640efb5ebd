// GrpcRoute: a Gateway API GRPCRoute attached to an EgressNetwork, allowing plaintext gRPC egress
// by service, method and headers, with Linkerd's gRPC retries.
import type { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { Client } from './callers';
import {
  checkFilters, checkValueMatches, filterSpecs, linkerdPolicy, Problems, renderFilters, renderValueMatches, RouteCore,
  subject, valueMatchSpecs,
} from './internal/route-core';
import type { LinkerdPolicy } from './internal/route-core';
import { checkRegex } from './internal/validate';
import { GatewayApiLimits } from './mesh/gateway-api';
import type { GrpcRouteMatchL1, GrpcRouteSpecL1 } from './mesh/gateway-api';
import type { RouteMatchSpec, RouteRuleSpec, RouteSpec } from './model/proxy-config';
import type { RouteBackend } from './route-backend';
import type { RouteFilter } from './route-filter';
import { ValueMatchType } from './route-match';
import type { GrpcMethodMatch, HeaderMatch } from './route-match';
import type { IRoute, IRouteParent } from './route-parent';
import type { GrpcRouteRetry, LinkerdRouteTimeouts } from './route-retry';

// The GRPCRoute CRD's CEL rules for exact service and method names.
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

/**
 * Conditions a gRPC request must meet, all of them.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#grpcroutematch
 */
export interface GrpcRouteMatch {
  /**
   * Service and/or method condition.
   * @default - every method of every service
   */
  readonly method?: GrpcMethodMatch;
  /**
   * Metadata (header) conditions, at most 16.
   * @default - none
   */
  readonly headers?: HeaderMatch[];
}

/** One rule of a GrpcRoute. */
export interface GrpcRouteRule {
  /**
   * Rule name (DNS subdomain).
   * @default - unnamed
   */
  readonly name?: string;
  /**
   * Matches (at most 64 per rule and 128 per route); any one suffices.
   * @default - every request
   */
  readonly matches?: GrpcRouteMatch[];
  /**
   * Header modifier filters (GRPCRoute has no redirect).
   * @default - none
   */
  readonly filters?: RouteFilter[];
  /**
   * Where matching requests go.
   * @default - the original destination through the route's EgressNetwork
   */
  readonly backends?: RouteBackend[];
}

/** Everything of a GrpcRoute but the network it attaches to. */
export interface GrpcRouteOptions {
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
   * @default - every port of the network
   */
  readonly port?: number;
  /**
   * Hosts (the :authority) the route applies to, at most 16.
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
  readonly rules?: GrpcRouteRule[];
  /**
   * Linkerd gRPC retries (retry.linkerd.io annotations).
   * @default - no retries
   */
  readonly retry?: GrpcRouteRetry;
  /**
   * Linkerd timeouts (timeout.linkerd.io annotations); GRPCRoute v1 has no timeout fields.
   * @default - none
   */
  readonly timeouts?: LinkerdRouteTimeouts;
}

/** Props of a GrpcRoute. */
export interface GrpcRouteProps extends GrpcRouteOptions {
  /** The EgressNetwork the route attaches to. */
  readonly network: IRouteParent;
}

/**
 * A Gateway API GRPCRoute (gateway.networking.k8s.io/v1) on an EgressNetwork.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#grpcroute
 *
 * @example
 * // Usually through the network: network.addGrpcRoute('Pubsub', { ... }).
 * new GrpcRoute(chart, 'Pubsub', {
 *   network,
 *   hostnames: ['pubsub.googleapis.com'],
 *   rules: [{ matches: [{ method: GrpcMethodMatch.exact({ service: 'google.pubsub.v1.Publisher' }) }] }],
 * });
 */
export class GrpcRoute extends Construct implements IRoute {
  /** The object name. */
  public readonly name: string;
  /** The route's namespace. */
  public readonly namespace: string;
  /** The EgressNetwork the route attaches to. */
  public readonly network: IRouteParent;
  /** The parentRef port; undefined: every port of the network. */
  public readonly port?: number;
  /** The GRPCRoute object. */
  public readonly apiObject: ApiObject;
  private readonly core: RouteCore;
  private readonly rules: GrpcRouteRule[] = [];
  private readonly policy: LinkerdPolicy;

  constructor(scope: Construct, id: string, props: GrpcRouteProps) {
    super(scope, id);
    const problems = new Problems(subject('GrpcRoute', this));
    this.core = new RouteCore(this, props, {
      kind: 'GRPCRoute',
      version: 'v1',
      requirePort: false,
      hostnamesAllowed: true,
      hostnamesRequired: false,
      maxHostnames: GatewayApiLimits.HOSTNAMES_HTTP,
      hostnamePurpose: 'the gRPC :authority',
    }, problems);
    this.policy = linkerdPolicy(props.retry, true, props.timeouts, problems);
    const rules = props.rules ?? [];
    rules.forEach((r, i) => this.checkRule(r, `rules[${i}]`, problems, rules.slice(0, i)));
    problems.throwIfAny();

    this.network = props.network;
    this.namespace = this.core.namespace;
    this.port = this.core.port;
    this.apiObject = this.core.create(() => this.renderSpec(), this.policy.annotations, props.name);
    this.name = this.apiObject.name;
    this.rules.push(...rules);
    props.network._attachRoute(this, 'GRPCRoute');
  }

  /** Adds a rule (checked now; rendered at synth). */
  public addRule(rule: GrpcRouteRule): void {
    const problems = new Problems(subject('GrpcRoute', this));
    this.checkRule(rule, `rules[${this.rules.length}]`, problems, this.rules);
    problems.throwIfAny();
    this.rules.push(rule);
  }

  private checkRule(rule: GrpcRouteRule, prop: string, problems: Problems, before: readonly GrpcRouteRule[]): void {
    this.core.checkRuleShape(rule, prop, before, 'GrpcRoute', problems);
    const matches = rule.matches ?? [];
    matches.forEach((m, j) => {
      const p = `${prop}.matches[${j}]`;
      if (m.method) checkMethod(m.method, `${p}.method`, problems);
      checkValueMatches(m.headers ?? [], `${p}.headers`, 'header', problems);
    });
    const backends = rule.backends ?? [];
    this.core.checkBackends(backends, `${prop}.backends`, problems);
    checkFilters(rule.filters ?? [], `${prop}.filters`, { kind: 'GRPCRoute', hasBackends: backends.length > 0, pathPrefixMatches: 0, totalMatches: matches.length }, problems);
  }

  private renderSpec(): GrpcRouteSpecL1 {
    return {
      parentRefs: [this.core.parentRef()],
      hostnames: this.core.hostnames.length ? [...this.core.hostnames] : undefined,
      rules: this.rules.length === 0 ? [{}] : this.rules.map((r) => ({
        name: r.name,
        matches: r.matches?.length ? r.matches.map(renderMatch) : undefined,
        filters: renderFilters(r.filters ?? []),
        backendRefs: r.backends?.length ? r.backends.map((b) => this.core.renderBackend(b)) : undefined,
      })),
    };
  }

  /** @internal the route as the proxy config states it; `order` is its declaration index. */
  public _toSpec(order: number): RouteSpec {
    const rules: RouteRuleSpec[] = (this.rules.length ? this.rules : [{} as GrpcRouteRule]).map((r) => ({
      name: r.name,
      matches: (r.matches ?? []).map(matchSpec),
      filters: filterSpecs(r.filters ?? []),
      backendRefs: this.core.backendSpecs(r.backends ?? [], false),
      requestTimeoutMs: this.policy.requestTimeoutMs,
      backendRequestTimeoutMs: this.policy.responseTimeoutMs,
      retry: this.policy.retry,
    }));
    return { ...this.core.specHeader(order), rules };
  }
}

function checkMethod(m: GrpcMethodMatch, prop: string, problems: Problems): void {
  if (m.service === undefined && m.method === undefined) {
    problems.add(prop, {}, 'names neither service nor method (the Gateway API requires one)', 'leave method out to match every method, or name a service');
    return;
  }
  for (const [field, value, pattern] of [['service', m.service, GRPC_SERVICE], ['method', m.method, GRPC_METHOD]] as const) {
    if (value === undefined) continue;
    if (value.length > 1024) problems.add(`${prop}.${field}`, value, 'is longer than 1024 characters', 'shorten it');
    if (m.type === ValueMatchType.REGULAR_EXPRESSION) {
      problems.addAll(`${prop}.${field}`, checkRegex(value));
    } else if (!pattern.test(value)) {
      problems.add(`${prop}.${field}`, value, field === 'service'
        ? 'is not a fully qualified gRPC service name (dot-separated identifiers, e.g. "helloworld.Greeter")'
        : 'is not a gRPC method name (an identifier, e.g. "SayHello")', 'write the name as it appears in the .proto file, without slashes');
    }
  }
}

function renderMatch(m: GrpcRouteMatch): GrpcRouteMatchL1 {
  return {
    method: m.method ? { type: m.method.type, service: m.method.service, method: m.method.method } : undefined,
    headers: renderValueMatches(m.headers),
  };
}

function matchSpec(m: GrpcRouteMatch): RouteMatchSpec {
  return {
    grpcMethod: m.method ? { type: m.method.type, service: m.method.service, method: m.method.method } : undefined,
    headers: valueMatchSpecs(m.headers),
    queryParams: [],
  };
}
