// What the four route constructs share: attachment to an EgressNetwork (parentRef, namespace,
// port), hostnames, backends, header matches and filters, Linkerd retry/timeout annotations, and
// the checks that go with each. Each route keeps its own rule shape.
import { ApiObject, Chart, Duration } from 'cdk8s';
import type { Construct } from 'constructs';
import type { Client } from '../callers';
import { GatewayApiLimits, routeObject } from '../mesh/gateway-api';
import type {
  BackendRefL1, HeaderModifierL1, ParentReferenceL1, RequestRedirectL1, RouteFilterL1, RouteSpecL1, ValueMatchL1,
} from '../mesh/gateway-api';
import { EGRESS_NETWORK_KIND, LINKERD_POLICY_GROUP, LinkerdRouteAnnotation } from '../mesh/linkerd';
import { RETRY_BOUNDS } from '../model/bounds';
import { DEFAULT_RETRY } from '../model/defaults';
import type {
  BackendRefSpec, ClientSpec, HeaderModifierSpec, RetrySpec, RouteFilterSpec, RouteKindSpec, RouteSpec, ValueMatchSpec,
} from '../model/proxy-config';
import { RouteBackend, RouteBackendKind } from '../route-backend';
import { RedirectPathType, RouteFilter, RouteFilterType } from '../route-filter';
import type { HeaderModifierOptions } from '../route-filter';
import { HeaderMatch, QueryParamMatch, ValueMatchType } from '../route-match';
import type { IRouteParent } from '../route-parent';
import type { GrpcRetryStatus, GrpcRouteRetry, HttpRouteRetry, LinkerdRouteTimeouts } from '../route-retry';
import { otherAppProblem } from './app-tree';
import { clientsToSpec } from './caller-props';
import type { Problem } from './problems';
import { Problems } from './problems';
import {
  checkDnsLabel, checkDnsSubdomain, checkHeaderName, checkPort, checkRegex, checkRouteHostname, checkValueLength,
  formatLinkerdDuration,
} from './validate';

/** The EgressNetwork method that creates a route of each kind, for messages. */
const ADD_METHOD: Readonly<Record<RouteKindSpec, string>> = {
  HTTPRoute: 'addHttpRoute', GRPCRoute: 'addGrpcRoute', TLSRoute: 'addTlsRoute', TCPRoute: 'addTcpRoute',
};

/** The Kubernetes cluster DNS suffix the model uses for in-cluster Service backends. */
export const CLUSTER_DOMAIN = 'cluster.local';

/** What the shared rule checks read of a rule of any kind. */
export interface RuleShape {
  readonly name?: string;
  readonly matches?: readonly unknown[];
}

/** Props every route construct has, whatever its kind. */
export interface RouteCommonProps {
  readonly network: IRouteParent;
  readonly name?: string;
  readonly namespace?: string;
  readonly port?: number;
  readonly hostnames?: string[];
  readonly clients?: Client[];
}

export interface RouteCoreOptions {
  readonly kind: RouteKindSpec;
  /** API version without group, e.g. 'v1'. */
  readonly version: string;
  /** Port used when the props leave it unset; undefined: the route covers every port. */
  readonly defaultPort?: number;
  /** A port is required (TCPRoute: without it the route would capture every port). */
  readonly requirePort: boolean;
  /** Hostnames allowed at all (TCPRoute has none). */
  readonly hostnamesAllowed: boolean;
  /** At least one hostname required (TLSRoute v1). */
  readonly hostnamesRequired: boolean;
  readonly maxHostnames: number;
  /** How the hostname is matched, for messages ("the TLS SNI", "the HTTP Host header"). */
  readonly hostnamePurpose: string;
}

/**
 * The shared half of a route construct. Construct it first (it checks the common props into
 * `problems`), check the kind-specific props, throw, then call `create()`.
 */
export class RouteCore {
  public readonly network: IRouteParent;
  public readonly namespace: string;
  public readonly port?: number;
  public readonly hostnames: string[];
  private readonly clientSpecs?: ClientSpec[];
  private _apiObject?: ApiObject;

  constructor(
    private readonly scope: Construct,
    props: RouteCommonProps,
    private readonly options: RouteCoreOptions,
    problems: Problems,
  ) {
    this.network = props.network;
    this.namespace = props.namespace ?? props.network.namespace;
    this.port = props.port ?? options.defaultPort;
    this.hostnames = [...(props.hostnames ?? [])];
    this.clientSpecs = clientsToSpec(problems, 'clients', props.clients);

    const foreign = otherAppProblem(scope, props.network);
    if (foreign) {
      problems.add('network', props.network.node.path,
        `${foreign}, so this ${options.kind} would be written to this App's manifests while the EgressNetwork it names, and the gateway that enforces its rules, are written to the other App's`,
        `create the route in the network's App (network.${ADD_METHOD[options.kind]}(...)), or give this App an EgressNetwork of its own`);
    }
    if (props.name !== undefined) problems.addAll('name', checkDnsSubdomain(props.name, 'a Kubernetes object name'));
    if (props.namespace !== undefined) problems.addAll('namespace', checkDnsLabel(props.namespace, 'a namespace'));
    if (this.port === undefined && options.requirePort) {
      problems.add('port', undefined, `is required for a ${options.kind} attached to an EgressNetwork (without it the route captures every port of the network)`,
        'set the port the clients dial, e.g. port: 5432');
    }
    problems.addAll('port', checkPort(this.port));
    if (!options.hostnamesAllowed && this.hostnames.length > 0) {
      problems.add('hostnames', this.hostnames, `are not part of a ${options.kind}`, 'remove them; a TCPRoute matches by port only');
    } else {
      this.checkHostnames(problems);
    }
  }

  private checkHostnames(problems: Problems): void {
    const o = this.options;
    if (o.hostnamesRequired && this.hostnames.length === 0) {
      problems.add('hostnames', this.hostnames, `must name at least one host for ${o.kind} ${o.version} (it routes by ${o.hostnamePurpose})`,
        'list the hosts, e.g. hostnames: ["httpbin.org"], or use RouteApiVersion.V1ALPHA2 to match every SNI');
    }
    if (this.hostnames.length > o.maxHostnames) {
      problems.add('hostnames', `${this.hostnames.length} entries`, `exceed the ${o.kind} limit of ${o.maxHostnames}`, 'split the hosts across routes');
    }
    const seen = new Set<string>();
    this.hostnames.forEach((h, i) => {
      problems.addAll(`hostnames[${i}]`, checkRouteHostname(h, { purpose: `matched against ${o.hostnamePurpose}` }));
      if (seen.has(h)) problems.add(`hostnames[${i}]`, h, 'is listed twice', 'remove the duplicate');
      seen.add(h);
    });
  }

  /** Adds the route object. `spec` is called at synth time. */
  public create(spec: () => RouteSpecL1, annotations?: Record<string, string>, name?: string): ApiObject {
    this._apiObject = routeObject(this.scope, 'Resource', {
      version: this.options.version,
      kind: this.options.kind,
      name,
      namespace: this.namespace,
      annotations: annotations && Object.keys(annotations).length ? annotations : undefined,
      spec,
    });
    return this._apiObject;
  }

  public get apiObject(): ApiObject {
    if (!this._apiObject) throw new Error('RouteCore.create() was not called');
    return this._apiObject;
  }

  public parentRef(): ParentReferenceL1 {
    return this.network._parentRef(this.port);
  }

  /** The fields of the model every route kind fills the same way. */
  public specHeader(order: number): Omit<RouteSpec, 'rules'> {
    return {
      group: 'gateway.networking.k8s.io',
      kind: this.options.kind,
      name: this.apiObject.name,
      namespace: this.namespace,
      order,
      parentPort: this.port,
      hostnames: [...this.hostnames],
      ...(this.clientSpecs ? { clients: this.clientSpecs.map((c) => ({ ...c })) } : {}),
    };
  }

  /**
   * The checks every kind's rules share: the rule count, the rule name (a DNS subdomain, unique
   * in the route), and the match count per rule and per route. `before` are the route's rules
   * ahead of `rule`; `construct` names the route construct in fixes ("HttpRoute").
   */
  public checkRuleShape(
    rule: RuleShape, prop: string, before: readonly RuleShape[], construct: string, problems: Problems,
  ): void {
    const kind = this.options.kind;
    if (before.length + 1 > GatewayApiLimits.RULES) {
      problems.add(prop, rule.name ?? '(rule)', `exceeds the Gateway API limit of ${GatewayApiLimits.RULES} rules per ${kind}`, `move rules to another ${construct} on the same network`);
    }
    if (rule.name !== undefined) {
      problems.addAll(`${prop}.name`, checkDnsSubdomain(rule.name, 'a rule name'));
      if (before.some((b) => b.name === rule.name)) problems.add(`${prop}.name`, rule.name, 'is already used by another rule of this route', 'give each rule its own name');
    }
    const matches = rule.matches?.length ?? 0;
    if (matches > GatewayApiLimits.MATCHES_PER_RULE) {
      problems.add(`${prop}.matches`, `${matches} entries`, `exceed the Gateway API limit of ${GatewayApiLimits.MATCHES_PER_RULE} per rule`, 'split the rule');
    }
    const total = before.reduce((n, b) => n + (b.matches?.length ?? 0), 0) + matches;
    if (total > GatewayApiLimits.MATCHES_PER_ROUTE) {
      problems.add(`${prop}.matches`, `${total} matches in the route`, `exceed the Gateway API limit of ${GatewayApiLimits.MATCHES_PER_ROUTE} per route`, `move rules to another ${construct}`);
    }
  }

  /* ------------------------------------------------------------------------- backends */

  public checkBackends(backends: readonly RouteBackend[], prop: string, problems: Problems): void {
    if (backends.length > GatewayApiLimits.BACKENDS_PER_RULE) {
      problems.add(prop, `${backends.length} entries`, `exceed the Gateway API limit of ${GatewayApiLimits.BACKENDS_PER_RULE} backends per rule`, 'merge backends or split the rule');
    }
    backends.forEach((b, i) => {
      const p = `${prop}[${i}]`;
      if (b.weight !== undefined && (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > GatewayApiLimits.WEIGHT_MAX)) {
        problems.add(`${p}.weight`, b.weight, `must be an integer in 0-${GatewayApiLimits.WEIGHT_MAX}`, 'use a relative share such as 1, 10 or 90');
      }
      if (b.kind === RouteBackendKind.EGRESS_NETWORK) {
        if (b.network && b.network !== this.network) {
          problems.add(p, `EgressNetwork ${b.network.namespace}/${b.network.name}`,
            `is not this route's parent (${this.network.namespace}/${this.network.name}); Linkerd only passes traffic through the route's own EgressNetwork and marks the route InvalidKind`,
            'use RouteBackend.passthrough(), or attach the route to that network instead');
        }
        return;
      }
      if (b.serviceResource) {
        const foreign = otherAppProblem(this.scope, b.serviceResource);
        if (foreign) {
          problems.add(p, b.serviceResource.node.path, `${foreign}, so the route would send traffic to a Service this App never creates`,
            'create the Service in this App, or name it with RouteBackend.serviceRef(name, { port })');
        }
        const ports = b.serviceResource.ports.map((sp) => sp.port);
        if (b.port === undefined && ports.length === 0) {
          problems.add(`${p}.port`, undefined, `is required: Service "${b.serviceResource.name}" has no ports yet`, 'bind a port on the Service before adding the route, or pass port');
        } else if (b.port !== undefined && ports.length > 0 && !ports.includes(b.port)) {
          problems.add(`${p}.port`, b.port, `is not a port of Service "${b.serviceResource.name}" (it has ${ports.join(', ')})`, `use one of ${ports.join(', ')}`);
        }
        problems.addAll(`${p}.port`, checkPort(b.port));
        return;
      }
      problems.addAll(`${p}.name`, checkDnsLabel(b.serviceName ?? '', 'a Service name'));
      if (b.serviceNamespace !== undefined) problems.addAll(`${p}.namespace`, checkDnsLabel(b.serviceNamespace, 'a namespace'));
      problems.addAll(`${p}.port`, checkPort(b.port));
    });
  }

  private resolveBackend(b: RouteBackend): { kind: 'EgressNetwork' | 'Service'; name: string; namespace: string; port?: number } {
    if (b.kind === RouteBackendKind.EGRESS_NETWORK) {
      return { kind: 'EgressNetwork', name: this.network.name, namespace: this.network.namespace };
    }
    if (b.serviceResource) {
      const ns = b.serviceResource.metadata.namespace ?? Chart.of(b.serviceResource).namespace ?? this.namespace;
      return { kind: 'Service', name: b.serviceResource.name, namespace: ns, port: b.port ?? b.serviceResource.port };
    }
    return { kind: 'Service', name: b.serviceName!, namespace: b.serviceNamespace ?? this.namespace, port: b.port };
  }

  public renderBackend(b: RouteBackend): BackendRefL1 {
    const r = this.resolveBackend(b);
    const namespace = r.namespace === this.namespace ? undefined : r.namespace;
    if (r.kind === 'EgressNetwork') {
      return { group: LINKERD_POLICY_GROUP, kind: EGRESS_NETWORK_KIND, name: r.name, namespace, weight: b.weight };
    }
    return { kind: 'Service', name: r.name, namespace, port: r.port, weight: b.weight };
  }

  public backendSpec(b: RouteBackend): BackendRefSpec {
    const r = this.resolveBackend(b);
    const base = { kind: r.kind, name: r.name, namespace: r.namespace, weight: b.weight ?? 1 };
    if (r.kind === 'EgressNetwork') return base;
    return { ...base, port: r.port, host: `${r.name}.${r.namespace}.svc.${CLUSTER_DOMAIN}` };
  }

  /**
   * Backends as the proxy should see them. Linkerd sends a rule without backendRefs on an
   * EgressNetwork parent to the original destination, so the model states that explicitly.
   */
  public backendSpecs(backends: readonly RouteBackend[], redirects: boolean): BackendRefSpec[] {
    if (backends.length === 0) return redirects ? [] : [this.backendSpec(RouteBackend.passthrough())];
    return backends.map((b) => this.backendSpec(b));
  }
}

/* --------------------------------------------------------------------- matches and filters */

type ValueMatch = HeaderMatch | QueryParamMatch;

/** Checks header or query parameter matches of one match entry. */
export function checkValueMatches(list: readonly ValueMatch[], prop: string, what: 'header' | 'query parameter', problems: Problems): void {
  const limit = what === 'header' ? GatewayApiLimits.HEADERS_PER_MATCH : GatewayApiLimits.QUERY_PARAMS_PER_MATCH;
  if (list.length > limit) problems.add(prop, `${list.length} entries`, `exceed the Gateway API limit of ${limit}`, 'split the match');
  const seen = new Set<string>();
  list.forEach((m, i) => {
    const p = `${prop}[${i}]`;
    problems.addAll(`${p}.name`, checkHeaderName(m.name));
    const key = what === 'header' ? m.name.toLowerCase() : m.name;
    if (seen.has(key)) {
      problems.add(`${p}.name`, m.name, `is matched twice in one match; the Gateway API only honours the first ${what} entry with a name`,
        'combine the conditions into one entry (a regular expression can express alternatives)');
    }
    seen.add(key);
    if (m.type === ValueMatchType.REGULAR_EXPRESSION) problems.addAll(`${p}.value`, checkRegex(m.value));
    else problems.addAll(`${p}.value`, checkValueLength(m.value, what === 'header' ? 4096 : 1024, `a ${what} value`));
  });
}

export function renderValueMatches(list: readonly ValueMatch[] | undefined): ValueMatchL1[] | undefined {
  if (!list || list.length === 0) return undefined;
  return list.map((m) => ({ type: m.type, name: m.name, value: m.value }));
}

export function valueMatchSpecs(list: readonly ValueMatch[] | undefined): ValueMatchSpec[] {
  return (list ?? []).map((m) => ({ type: m.type, name: m.name, value: m.value }));
}

export interface FilterCheckContext {
  readonly kind: RouteKindSpec;
  readonly hasBackends: boolean;
  /** Number of PathPrefix matches in the rule, and whether it has any other match. */
  readonly pathPrefixMatches: number;
  readonly totalMatches: number;
}

export function checkFilters(filters: readonly RouteFilter[], prop: string, ctx: FilterCheckContext, problems: Problems): void {
  if (filters.length > GatewayApiLimits.FILTERS_PER_RULE) {
    problems.add(prop, `${filters.length} entries`, `exceed the Gateway API limit of ${GatewayApiLimits.FILTERS_PER_RULE}`, 'merge the header edits into one filter');
  }
  const seen = new Set<RouteFilterType>();
  filters.forEach((f, i) => {
    const p = `${prop}[${i}]`;
    if (seen.has(f.type)) problems.add(p, f.type, 'appears twice in one rule; the Gateway API allows each filter type once', 'merge the two into one filter');
    seen.add(f.type);
    if (f.type === RouteFilterType.REQUEST_REDIRECT) {
      if (ctx.kind !== 'HTTPRoute') {
        problems.add(p, f.type, `is not supported on a ${ctx.kind} (Linkerd and the Gateway API offer redirects on HTTPRoute only)`,
          'remove it, or route HTTP traffic with an HttpRoute');
        return;
      }
      if (ctx.hasBackends) {
        problems.add(p, f.type, 'cannot be combined with backends in one rule (the Gateway API rejects it: a redirect answers the request itself)',
          'remove the rule\'s backends, or put the redirect in a rule of its own');
      }
      checkRedirect(f, p, ctx, problems);
    } else {
      checkHeaderModifier(f.headerModifier ?? {}, p, problems);
    }
  });
}

function checkHeaderModifier(h: HeaderModifierOptions, prop: string, problems: Problems): void {
  const seen = new Map<string, string>();
  const visit = (list: string, name: string, value?: string): void => {
    const p = `${prop}.${list}`;
    problems.addAll(`${p}.${name}`, checkHeaderName(name));
    if (value !== undefined) problems.addAll(`${p}.${name}`, checkValueLength(value, 4096, 'a header value'));
    const key = name.toLowerCase();
    if (seen.has(key)) {
      problems.add(`${p}.${name}`, name, `is also edited by '${seen.get(key)}'; the Gateway API leaves the outcome of editing one header twice undefined`,
        'edit each header in one list only');
    } else {
      seen.set(key, list);
    }
  };
  for (const list of ['set', 'add'] as const) {
    const entries = Object.entries(h[list] ?? {});
    if (entries.length > GatewayApiLimits.HEADER_EDITS_PER_LIST) {
      problems.add(`${prop}.${list}`, `${entries.length} entries`, `exceed the Gateway API limit of ${GatewayApiLimits.HEADER_EDITS_PER_LIST}`, 'split the edits');
    }
    for (const [name, value] of entries) visit(list, name, value);
  }
  const remove = h.remove ?? [];
  if (remove.length > GatewayApiLimits.HEADER_EDITS_PER_LIST) {
    problems.add(`${prop}.remove`, `${remove.length} entries`, `exceed the Gateway API limit of ${GatewayApiLimits.HEADER_EDITS_PER_LIST}`, 'split the edits');
  }
  for (const name of remove) visit('remove', name);
  if (seen.size === 0) problems.add(prop, h, 'edits no header', 'give set, add or remove, or drop the filter');
}

function checkRedirect(f: RouteFilter, prop: string, ctx: FilterCheckContext, problems: Problems): void {
  const r = f.redirect ?? {};
  if (r.hostname !== undefined) problems.addAll(`${prop}.hostname`, checkDnsSubdomain(r.hostname, 'a redirect host, no wildcard'));
  problems.addAll(`${prop}.port`, checkPort(r.port));
  if (r.statusCode !== undefined && r.statusCode !== 301 && r.statusCode !== 302) {
    problems.add(`${prop}.statusCode`, r.statusCode, 'must be 301 or 302 (the codes the egress proxy implements)', 'use 302 for a temporary or 301 for a permanent redirect');
  }
  if (r.path) {
    if (r.path.value.length > 1024) problems.add(`${prop}.path`, r.path.value, 'is longer than 1024 characters', 'shorten it');
    if (r.path.type === RedirectPathType.REPLACE_PREFIX_MATCH && (ctx.pathPrefixMatches !== 1 || ctx.totalMatches !== 1)) {
      problems.add(`${prop}.path`, r.path.type, 'needs the rule to have exactly one match, a PathPrefix one (the Gateway API rejects it otherwise)',
        'give the rule a single PathMatch.prefix() match, or use RedirectPath.replaceFullPath()');
    }
  }
  if (r.scheme === undefined && r.hostname === undefined && r.port === undefined && r.path === undefined && r.statusCode === undefined) {
    problems.add(prop, r, 'changes nothing, so the client would be sent to the URL it asked for, in a loop', 'set scheme, hostname, port or path');
  }
}

function headerModifierL1(h: HeaderModifierOptions | undefined): HeaderModifierL1 {
  const toList = (m?: { [name: string]: string }) => {
    const entries = Object.entries(m ?? {});
    return entries.length ? entries.map(([name, value]) => ({ name, value })) : undefined;
  };
  return { set: toList(h?.set), add: toList(h?.add), remove: h?.remove?.length ? [...h.remove] : undefined };
}

export function renderFilters(filters: readonly RouteFilter[]): RouteFilterL1[] | undefined {
  if (filters.length === 0) return undefined;
  return filters.map((f) => {
    switch (f.type) {
      case RouteFilterType.REQUEST_HEADER_MODIFIER:
        return { type: f.type, requestHeaderModifier: headerModifierL1(f.headerModifier) };
      case RouteFilterType.RESPONSE_HEADER_MODIFIER:
        return { type: f.type, responseHeaderModifier: headerModifierL1(f.headerModifier) };
      default: {
        const r = f.redirect ?? {};
        const path: RequestRedirectL1['path'] = r.path === undefined ? undefined
          : r.path.type === RedirectPathType.REPLACE_FULL_PATH
            ? { type: 'ReplaceFullPath', replaceFullPath: r.path.value }
            : { type: 'ReplacePrefixMatch', replacePrefixMatch: r.path.value };
        return { type: 'RequestRedirect', requestRedirect: { scheme: r.scheme, hostname: r.hostname, port: r.port, path, statusCode: r.statusCode } };
      }
    }
  });
}

function headerModifierSpec(h: HeaderModifierOptions | undefined): HeaderModifierSpec {
  const toList = (m?: { [name: string]: string }) => Object.entries(m ?? {}).map(([name, value]) => ({ name, value }));
  return { set: toList(h?.set), add: toList(h?.add), remove: [...(h?.remove ?? [])] };
}

export function filterSpecs(filters: readonly RouteFilter[]): RouteFilterSpec[] {
  return filters.map((f) => {
    if (f.type !== RouteFilterType.REQUEST_REDIRECT) return { type: f.type, headerModifier: headerModifierSpec(f.headerModifier) };
    const r = f.redirect ?? {};
    return {
      type: f.type,
      requestRedirect: {
        scheme: r.scheme,
        hostname: r.hostname,
        port: r.port,
        path: r.path ? { type: r.path.type, value: r.path.value } : undefined,
        statusCode: r.statusCode === 301 ? 301 : 302,
      },
    };
  });
}

/* ---------------------------------------------------------------- Linkerd retries and timeouts */

/** Milliseconds of a Duration, or a problem when it is not a whole number of them. */
export function durationMs(d: Duration | undefined, prop: string, problems: Problems): number | undefined {
  if (d === undefined) return undefined;
  let ms: number;
  try {
    ms = d.toMilliseconds();
  } catch {
    problems.add(prop, d.toHumanString(), 'is not a whole number of milliseconds', 'round it, e.g. Duration.millis(1500)');
    return undefined;
  }
  if (!Number.isInteger(ms) || ms < 0) {
    problems.add(prop, d.toHumanString(), 'is not a whole, non-negative number of milliseconds', 'round it, e.g. Duration.millis(1500)');
    return undefined;
  }
  return ms;
}

export interface LinkerdPolicy {
  readonly annotations: Record<string, string>;
  readonly retry?: RetrySpec;
  readonly requestTimeoutMs?: number;
  readonly responseTimeoutMs?: number;
}

/** The egress proxy's ceiling on retries per request (its config boundary rejects more). */
const MAX_RETRY_LIMIT = RETRY_BOUNDS.maxRetries.max;
/** The proxy accepts and honours RetrySpec.grpcStatusCodes (Trailers-Only answers). */
const EMIT_GRPC_STATUS_CODES = true;

const GRPC_CODES: Record<string, number> = {
  'cancelled': 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, 'internal': 13, 'unavailable': 14,
};

/** Checks and renders retry and timeout settings as Linkerd route annotations and as the model. */
export function linkerdPolicy(
  retry: HttpRouteRetry | GrpcRouteRetry | undefined,
  grpc: boolean,
  timeouts: LinkerdRouteTimeouts | undefined,
  problems: Problems,
): LinkerdPolicy {
  const annotations: Record<string, string> = {};
  let retrySpec: RetrySpec | undefined;
  if (retry) {
    const found: Problem[] = [];
    if (retry.on.length === 0) {
      found.push({ prop: '.on', value: [], rule: 'names no status, so nothing would be retried', fix: grpc ? 'list e.g. GrpcRetryStatus.UNAVAILABLE' : 'list e.g. HttpRetryStatus.GATEWAY_ERROR' });
    }
    if (retry.limit !== undefined && (!Number.isInteger(retry.limit) || retry.limit < 1 || retry.limit > MAX_RETRY_LIMIT)) {
      found.push({
        prop: '.limit',
        value: retry.limit,
        rule: retry.limit === 0 ? 'is 0, which Linkerd reads as unset and so retries once'
          : `must be an integer in 1-${MAX_RETRY_LIMIT} (the egress gateway's ceiling; more retries multiply load on a struggling upstream)`,
        fix: retry.limit === 0 ? 'to turn retries off, leave retry out' : 'use a small number such as 2',
      });
    }
    problems.addAll('retry', found);
    const perTryMs = durationMs(retry.timeout, 'retry.timeout', problems);
    if (perTryMs === 0) problems.add('retry.timeout', '0ms', 'is 0, which Linkerd reads as unset', 'leave it out for no per-attempt deadline');
    const statusCodes: number[] = [];
    let grpcCodes: number[] | undefined;
    if (grpc) {
      const on = retry.on as GrpcRetryStatus[];
      annotations[LinkerdRouteAnnotation.RETRY_GRPC] = on.join(',');
      // The proxy retries a gRPC call whose Trailers-Only answer carries one of these statuses.
      grpcCodes = EMIT_GRPC_STATUS_CODES ? on.map((s) => GRPC_CODES[s]) : undefined;
    } else {
      const on = (retry as HttpRouteRetry).on;
      on.forEach((s, i) => {
        if (!Number.isInteger(s.minStatus) || !Number.isInteger(s.maxStatus) || s.minStatus < 100 || s.maxStatus > 599 || s.minStatus > s.maxStatus) {
          problems.add(`retry.on[${i}]`, s.value, 'must be a status code or ascending range within 100-599', 'use e.g. HttpRetryStatus.code(503) or HttpRetryStatus.range(500, 504)');
          return;
        }
        for (let c = s.minStatus; c <= s.maxStatus; c++) if (!statusCodes.includes(c)) statusCodes.push(c);
      });
      annotations[LinkerdRouteAnnotation.RETRY_HTTP] = on.map((s) => s.value).join(',');
    }
    if (retry.limit !== undefined) annotations[LinkerdRouteAnnotation.RETRY_LIMIT] = String(retry.limit);
    if (perTryMs) annotations[LinkerdRouteAnnotation.RETRY_TIMEOUT] = formatLinkerdDuration(perTryMs)!;
    retrySpec = {
      ...DEFAULT_RETRY,
      maxRetries: retry.limit ?? 1,
      statusCodes,
      // Linkerd retries whatever the method (bodies up to 64 KiB); the gateway does the same.
      retryNonIdempotent: true,
      perTryTimeoutMs: perTryMs ?? 0,
      conditions: perTryMs ? [...DEFAULT_RETRY.conditions, 'timeout'] : [...DEFAULT_RETRY.conditions],
      ...(grpcCodes ? { grpcStatusCodes: grpcCodes } : {}),
    };
  }
  const t = timeouts ?? {};
  const requestTimeoutMs = durationMs(t.request, 'timeouts.request', problems);
  const responseTimeoutMs = durationMs(t.response, 'timeouts.response', problems);
  const idleMs = durationMs(t.idle, 'timeouts.idle', problems);
  if (requestTimeoutMs !== undefined) annotations[LinkerdRouteAnnotation.TIMEOUT_REQUEST] = formatLinkerdDuration(requestTimeoutMs)!;
  if (responseTimeoutMs !== undefined) annotations[LinkerdRouteAnnotation.TIMEOUT_RESPONSE] = formatLinkerdDuration(responseTimeoutMs)!;
  if (idleMs !== undefined) annotations[LinkerdRouteAnnotation.TIMEOUT_IDLE] = formatLinkerdDuration(idleMs)!;
  return {
    annotations,
    retry: retrySpec,
    // 0 means "no timeout" to Linkerd; the model has no field for it, so leave it out.
    requestTimeoutMs: requestTimeoutMs || undefined,
    responseTimeoutMs: responseTimeoutMs || undefined,
  };
}

/** `Kind "path"` as constructs name themselves in errors. */
export function subject(kind: string, scope: Construct): string {
  return `${kind} "${scope.node.path}"`;
}

export { Problems };
