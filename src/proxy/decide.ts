// Pure policy decision: given a classified target and the compiled config, pick the route, the
// action and the backend. No sockets, clocks, randomness or logging.
//
// The policy it decides with is compiled once per config load (policy.ts).
//
// API (stable):
//   decide(policy, target): Decision               see the evaluation order on decide()
//   defaultRoute(protocol, allow): RouteRef        'http-egress-allow', 'tls-egress-deny', ...
//   findExternalService(policy, host): ExternalServiceSpec | undefined
//   pathRestricted(policy, target): boolean          does a route that takes the host match on the path?
import type { Caller } from './caller';
import {
  HOST_WEIGHT, regexPathScore,
  type CandidateSet, type CompiledMatch, type CompiledPolicy, type CompiledRoute, type CompiledRule, type RankedRoute, type RouteRef,
} from './policy';
import { grpcMethodMatches, headersMatch, parseGrpcPath, parseQuery, pathMatches, queryMatches } from './route-match';
import type { BackendRefSpec, ExternalServiceSpec, RequestRedirectSpec, RouteKindSpec, RouteRuleSpec } from '../model/proxy-config';

export type TargetProtocol = 'http' | 'grpc' | 'tls' | 'tcp';

/** What the listener learned about a request or connection, normalised. */
export interface Target {
  readonly protocol: TargetProtocol;
  /** Destination host, lower case, without the egress suffix or port (a trailing dot is tolerated). */
  readonly host: string;
  /** The port the client addressed (the parent port). */
  readonly port: number;
  /** HTTP and gRPC only. Upper case, as Node reports it. */
  readonly method?: string;
  /**
   * HTTP and gRPC only: the path without the query, matched exactly as given. Classify should pass
   * route-match's normalizePath() result and forward that same path, so '/get/../admin' cannot
   * pass a '/get' rule.
   */
  readonly path?: string;
  /** Lower-case names. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
  /** Raw query string without '?'. */
  readonly query?: string;
  /** In [0, 1): the caller's random draw for weighted backend choice (keeps decide() pure). */
  readonly pick?: number;
  /**
   * Who is calling (caller.ts), when a trusted identity says so; undefined: unknown, as every
   * TLS passthrough and TCP connection is.
   */
  readonly caller?: Caller;
}

export type DecisionAction = 'allow' | 'deny' | 'redirect';

/**
 * Stable reason codes: logged, counted and asserted by tests. Responses (errors.ts maps them):
 * - 'route-matched'   allow through a declared route rule
 * - 'default-allow'   no route matched, trafficPolicy Allow
 * - 'default-deny'    no route matched, trafficPolicy Deny → 403
 * - 'no-backend'      the matched rule's backendRefs all have weight 0 → 500 (Gateway API)
 * - 'filter-redirect' the matched rule has a RequestRedirect filter → 3xx with Location
 * - 'report-only'     would have denied (see wouldReason), allowed because the parent is ReportOnly
 * - 'caller-not-allowed' a known caller the route's or the host's ExternalService's clients do not name → 403
 * - 'caller-unknown'   an unknown caller, where clients are declared or callers.unknown is Deny → 403
 * Set by the CONNECT tunnel after an allow, on the ClientHello the client sent (never by decide()):
 * - 'sni-mismatch'    the TLS server name is not the CONNECT host → tunnel closed
 * - 'sni-missing'     no server name, and connectSni is RequireMatch → tunnel closed
 * - 'sni-unreadable'  TLS, but no ClientHello that can be read → tunnel closed
 */
export type DecisionReason =
  | 'route-matched'
  | 'default-allow'
  | 'default-deny'
  | 'no-backend'
  | 'filter-redirect'
  | 'report-only'
  | 'declared-service'
  | 'caller-not-allowed'
  | 'caller-unknown'
  | 'sni-mismatch'
  | 'sni-missing'
  | 'sni-unreadable';

export interface Decision {
  readonly action: DecisionAction;
  readonly reason: DecisionReason;
  /** The declared route that matched, or the parent's default route. Kept in report-only. */
  readonly route: RouteRef;
  readonly rule?: RouteRuleSpec;
  /** Index of `rule` in its route (metrics, logs). */
  readonly ruleIndex?: number;
  /**
   * Where to send it: a Service backendRef. Undefined means pass through to the original
   * destination (target.host:target.port): the default routes, an EgressNetwork backendRef, a
   * rule without backendRefs (Linkerd sends those to the parent, i.e. the original destination),
   * and report-only allows.
   */
  readonly backend?: BackendRefSpec;
  /** The backendRef the weighted pick chose, whatever its kind (EgressNetwork too). */
  readonly backendRef?: BackendRefSpec;
  /** The declared service for the host, if any (TLS, endpoints, retries, hostname label). */
  readonly externalService?: ExternalServiceSpec;
  /** True when the decision would deny but the parent is in ReportOnly mode. */
  readonly reportOnly: boolean;
  /** With reason 'report-only': the reason it would have been denied for. */
  readonly wouldReason?: DecisionReason;
  /** action 'redirect': the filter, for route-match's redirectLocation(). */
  readonly redirect?: RequestRedirectSpec;
  /** HTTP: the PathPrefix value that matched ('/' for rules without matches), for ReplacePrefixMatch. */
  readonly matchedPrefix?: string;
  /**
   * A caller refusal (reason or wouldReason caller-*): whose consent was missing, the matched
   * route's clients, the host's ExternalService's clients, or the gateway's callers.unknown Deny.
   */
  readonly refusedBy?: CallerRefusal;
}

export type CallerRefusal = 'route' | 'external-service' | 'unknown-callers';

/** The declared service for a host: an exact name first, else the longest matching wildcard. */
export function findExternalService(policy: CompiledPolicy, host: string): ExternalServiceSpec | undefined {
  const exact = policy.exactServices.get(host);
  if (exact) return exact;
  for (const svc of policy.wildcardServices) {
    const suffix = svc.host.slice(1); // '.example.com'
    if (host.endsWith(suffix) && host.length > suffix.length) return svc;
  }
  return undefined;
}

const DEFAULT_ROUTES: Record<TargetProtocol, { readonly allow: RouteRef; readonly deny: RouteRef }> = (() => {
  const make = (p: TargetProtocol, verdict: string): RouteRef => Object.freeze({ group: '', kind: 'default', namespace: '', name: `${p}-egress-${verdict}` });
  const both = (p: TargetProtocol) => ({ allow: make(p, 'allow'), deny: make(p, 'deny') });
  return { http: both('http'), grpc: both('grpc'), tls: both('tls'), tcp: both('tcp') };
})();

/** The parent's default route, named as Linkerd names it: 'http-egress-allow', 'tls-egress-deny', ... */
export function defaultRoute(protocol: TargetProtocol, allow: boolean): RouteRef {
  const r = DEFAULT_ROUTES[protocol];
  return allow ? r.allow : r.deny;
}

/* ------------------------------------------------------------------------- decide */

/** Host specificity: 0 for routes without hostnames, -1 when the route does not take this host. */
function hostScore(route: CompiledRoute, host: string): number {
  if (route.anyHost) return 0;
  if (route.exactHosts.has(host)) return host.length * 512 + host.length + 1;
  for (const w of route.wildcards) {
    if (host.length > w.suffix.length && host.endsWith(w.suffix)) return w.length + 1;
  }
  return -1;
}

/** Request facts derived lazily, once per decide() call. */
class RequestView {
  private queryMap?: ReadonlyMap<string, string>;
  private grpcParts?: { service: string; method: string };
  public readonly path: string;
  constructor(private readonly target: Target) {
    const p = target.path ?? '/';
    const q = p.indexOf('?');
    this.path = q === -1 ? p : p.slice(0, q);
  }
  public get query(): ReadonlyMap<string, string> {
    return (this.queryMap ??= parseQuery(this.target.query));
  }
  public get grpc(): { service: string; method: string } {
    return (this.grpcParts ??= parseGrpcPath(this.path) ?? { service: '', method: '' });
  }
}

function matchOne(kind: RouteKindSpec, m: CompiledMatch, target: Target, view: RequestView): boolean {
  if (kind === 'HTTPRoute') {
    if (!pathMatches(m.path!, view.path)) return false;
    if (m.method !== undefined && m.method !== target.method) return false;
    if (!headersMatch(m.headers, target.headers)) return false;
    return m.query.length === 0 || queryMatches(m.query, view.query);
  }
  if (kind === 'GRPCRoute') {
    const g = view.grpc;
    return grpcMethodMatches(m.grpc!, g.service, g.method) && headersMatch(m.headers, target.headers);
  }
  return true; // TLSRoute and TCPRoute rules have no matches
}

/** The best match so far while select() walks the candidates. */
class Best {
  public route?: RankedRoute;
  public rule?: CompiledRule;
  public match?: CompiledMatch;
  public score = -1;
  public hostAccepted = false;

  /** Ties go to the oldest route, then namespace/name (rank), then the first rule, as Gateway API requires. */
  public beats(score: number, route: RankedRoute, rule: CompiledRule): boolean {
    if (score !== this.score) return score > this.score;
    if (!this.route) return true;
    if (route.rank !== this.route.rank) return route.rank < this.route.rank;
    return rule.index < this.rule!.index;
  }
}

function consider(
  kind: RouteKindSpec, routes: readonly RankedRoute[] | undefined, host: string, target: Target, view: RequestView, best: Best,
): void {
  if (!routes) return;
  for (const route of routes) {
    const hs = hostScore(route, host);
    if (hs < 0) continue;
    best.hostAccepted = true;
    const base = hs * HOST_WEIGHT;
    if (base + route.maxScore < best.score) continue;
    for (const rule of route.rules) {
      for (const m of rule.matches) {
        const score = base + (m.regex ? m.score + regexPathScore(view.path.length) : m.score);
        if (!best.beats(score, route, rule)) continue;
        if (!matchOne(kind, m, target, view)) continue;
        best.route = route;
        best.rule = rule;
        best.match = m;
        best.score = score;
      }
    }
  }
}

/**
 * Best rule across the candidate routes that take this host: those naming it exactly, those
 * with a wildcard covering it (one map lookup per label), and those naming no host. Precedence
 * is explicit (score, then rank, then rule index), so the visiting order does not matter.
 */
function select(kind: RouteKindSpec, set: CandidateSet, host: string, target: Target, view: RequestView): Best {
  const best = new Best();
  consider(kind, set.byExactHost.get(host), host, target, view, best);
  if (set.byWildcardSuffix.size > 0) {
    for (let dot = host.indexOf('.', 1); dot !== -1; dot = host.indexOf('.', dot + 1)) {
      consider(kind, set.byWildcardSuffix.get(host.slice(dot)), host, target, view, best);
    }
  }
  consider(kind, set.anyHost, host, target, view, best);
  return best;
}

function pickBackend(rule: CompiledRule, pick: number | undefined): BackendRefSpec | undefined {
  const refs = rule.spec.backendRefs;
  let x = pick !== undefined && pick > 0 ? pick : 0; // also maps NaN to 0
  if (x >= 1) x = 1 - Number.EPSILON;
  const point = x * rule.totalWeight;
  for (let i = 0; i < refs.length; i++) if (point < rule.cumulative[i]) return refs[i];
  // Rounding at the top end: the last ref that carries weight.
  for (let i = refs.length - 1; i >= 0; i--) if ((refs[i].weight ?? 1) > 0) return refs[i];
  return undefined;
}

function reportOnlyOr(policy: CompiledPolicy, d: Decision): Decision {
  if (d.action !== 'deny' || policy.config.parent.mode !== 'ReportOnly') return d;
  return {
    action: 'allow',
    reason: 'report-only',
    wouldReason: d.reason,
    route: d.route,
    rule: d.rule,
    ruleIndex: d.ruleIndex,
    externalService: d.externalService,
    reportOnly: true,
  };
}

/**
 * Evaluation order:
 * 1. Candidates: routes of the target's kind (http → HTTPRoute, grpc → GRPCRoute, tls → TLSRoute,
 *    tcp → TCPRoute) whose parentPort is unset or equals target.port (precomputed per port).
 *    gRPC falls back to HTTPRoutes (matching the call as the HTTP/2 POST to /service/method it
 *    is) when no GRPCRoute at this port takes the host, as Linkerd serves HTTPRoutes to gRPC
 *    clients when no GRPCRoute is attached; once one does, HTTPRoutes are not consulted.
 *    parentSectionName is not used: an EgressNetwork has no sections.
 * 2. Hostnames: a route naming hostnames takes the host only if one matches (exact, or '*.x'
 *    matching any name ending in '.x'). Precedence: most characters in a matching exact hostname,
 *    then in a matching wildcard; routes without hostnames take every host with the lowest rank.
 * 3. Matches, across ALL candidate rules, continuing on ties:
 *    HTTP, as linkerd2-proxy ranks them (linkerd/http/route, PathMatch): the most path
 *    characters matched first, where an Exact match and a RegularExpression match (which must
 *    match the whole path) count the whole request path, and a PathPrefix its prefix without
 *    trailing slashes ('/' counts 1; prefixes match whole path elements). So with PathPrefix
 *    '/foo' and RegularExpression '/foo/\d+', '/foo/4' goes to the regex (6 characters over 4),
 *    and Exact always beats a PathPrefix. Equal lengths (a prefix that is the whole path, an
 *    Exact and a regex on the same path): Exact, then PathPrefix, then RegularExpression, in
 *    Gateway API's order. Then a method match; then more header matches; then more query param
 *    matches. A rule without matches is PathPrefix '/'.
 *    gRPC: more characters of exact service, then of exact method, then a regex method match
 *    over none, then more header matches.
 *    TLS/TCP: no matches; the route's first rule.
 *    Then the oldest route (RouteSpec.order), then "namespace/name" alphabetically, then the
 *    first rule in list order.
 * 4. The matched rule: a RequestRedirect filter → 'redirect' (reason filter-redirect); no
 *    backendRefs → allow to the original destination (Linkerd: the parent EgressNetwork is the
 *    backend; seed 001's httpbin-get route has none); backendRefs whose weights sum to 0 →
 *    'deny' with reason no-backend (HTTP 500); else a weighted pick by target.pick in [0, 1)
 *    over the cumulative weights ([a:1, b:3]: pick < 0.25 → a). A Service ref is returned as
 *    `backend`; an EgressNetwork ref passes through (backend undefined, backendRef set).
 * 5. Nothing matched, the parent is Deny with allowDeclaredServices, and the host is a declared
 *    ExternalService → allow (reason declared-service) on the route
 *    {group 'egress.cdk8s.io', kind 'ExternalService', name: the service's name}.
 * 6. Nothing matched otherwise → the parent's default route by trafficPolicy: '<proto>-egress-allow'
 *    (default-allow) or '<proto>-egress-deny' (default-deny). With Allow, traffic the declared
 *    routes do not match still goes out, as in Linkerd. (A Gateway answers 404 here; an
 *    EgressNetwork answers with its trafficPolicy.)
 * 7. Callers: an allow or redirect from steps 4-6 needs the consent of the matched route's
 *    clients and of the host's ExternalService's clients, where each declares any: an unknown
 *    caller (target.caller undefined) gets 'caller-unknown', a known one neither names
 *    'caller-not-allowed' (refusedBy says whose consent was missing). With callers.unknown Deny,
 *    an unknown caller is refused every allow ('caller-unknown', refusedBy 'unknown-callers').
 *    Denials from steps 4-6 keep their own reason.
 * 8. ReportOnly parent: a deny becomes an allow to the original destination with reportOnly
 *    true, reason 'report-only', wouldReason the original reason, and the would-be route kept;
 *    a caller refusal keeps the allow it refused (backend, redirect) the same way.
 * The parent's networks need the resolved address: after DNS, the I/O shell's AddressVetter
 * (vet.ts) refuses an address outside them, with the address policy's refusals.
 */
export function decide(policy: CompiledPolicy, target: Target): Decision {
  let host = target.host;
  if (host.endsWith('.')) host = host.slice(0, -1);
  const externalService = findExternalService(policy, host);
  const view = new RequestView(target);

  let found: Best | undefined;
  if (target.protocol === 'grpc') {
    const g = candidates(policy, 'GRPCRoute', target.port);
    found = g.routes.length > 0 ? select('GRPCRoute', g, host, target, view) : undefined;
    if (!found?.hostAccepted) {
      const h = candidates(policy, 'HTTPRoute', target.port);
      found = h.routes.length > 0 ? select('HTTPRoute', h, host, target, view) : undefined;
    }
  } else {
    const kind = KIND_OF[target.protocol];
    const c = candidates(policy, kind, target.port);
    found = c.routes.length > 0 ? select(kind, c, host, target, view) : undefined;
  }

  if (!found?.route) {
    if (externalService && policy.config.parent.allowDeclaredServices && policy.config.parent.trafficPolicy === 'Deny') {
      const route = policy.declaredRoutes.get(externalService.name)!;
      return consent(policy, target, { action: 'allow', reason: 'declared-service', route, externalService, reportOnly: false }, undefined);
    }
    if (policy.config.parent.trafficPolicy === 'Allow') {
      return consent(policy, target,
        { action: 'allow', reason: 'default-allow', route: defaultRoute(target.protocol, true), externalService, reportOnly: false }, undefined);
    }
    return reportOnlyOr(policy, { action: 'deny', reason: 'default-deny', route: defaultRoute(target.protocol, false), externalService, reportOnly: false });
  }

  const route = found.route;
  const rule = found.rule!;
  const match = found.match!;
  const matchedPrefix = match.path?.type === 'PathPrefix' ? match.path.value : undefined;
  if (rule.redirect) {
    const d = ruleDecision('redirect', 'filter-redirect', route, rule, externalService, undefined, rule.redirect, matchedPrefix);
    return consent(policy, target, d, route.clients);
  }
  if (rule.spec.backendRefs.length === 0) {
    return consent(policy, target, ruleDecision('allow', 'route-matched', route, rule, externalService, undefined, undefined, matchedPrefix), route.clients);
  }
  if (rule.totalWeight === 0) {
    return reportOnlyOr(policy, ruleDecision('deny', 'no-backend', route, rule, externalService, undefined, undefined, matchedPrefix));
  }
  const ref = pickBackend(rule, target.pick);
  return consent(policy, target, ruleDecision('allow', 'route-matched', route, rule, externalService, ref, undefined, matchedPrefix), route.clients);
}

/** Why a caller may not use what `d` allows, or undefined when every party consents (decide() step 7). */
function callerRefusal(
  policy: CompiledPolicy, caller: Caller | undefined, d: Decision, routeClients: ReadonlySet<string> | undefined,
): { reason: DecisionReason; by: CallerRefusal } | undefined {
  if (!caller && policy.callers.unknown === 'Deny') return { reason: 'caller-unknown', by: 'unknown-callers' };
  const serviceClients = d.externalService ? policy.serviceClients.get(d.externalService) : undefined;
  for (const [set, by] of [[routeClients, 'route'], [serviceClients, 'external-service']] as const) {
    if (!set) continue;
    if (!caller) return { reason: 'caller-unknown', by };
    const k = caller.keys;
    if (!set.has(k.id) && !set.has(k.sa) && !set.has(k.ns)) return { reason: 'caller-not-allowed', by };
  }
  return undefined;
}

/**
 * An allow or redirect stands only with the consent of the caller's clients (decide() step 7);
 * without it: a 403 deny, or in ReportOnly the same allow (backend and all), marked report-only.
 */
function consent(policy: CompiledPolicy, target: Target, d: Decision, routeClients: ReadonlySet<string> | undefined): Decision {
  if (!policy.callerChecks) return d;
  const refusal = callerRefusal(policy, target.caller, d, routeClients);
  if (!refusal) return d;
  if (policy.config.parent.mode === 'ReportOnly') {
    return { ...d, reason: 'report-only', wouldReason: refusal.reason, reportOnly: true, refusedBy: refusal.by };
  }
  return {
    action: 'deny',
    reason: refusal.reason,
    route: d.route,
    rule: d.rule,
    ruleIndex: d.ruleIndex,
    externalService: d.externalService,
    reportOnly: false,
    refusedBy: refusal.by,
  };
}

/** One object shape for every rule decision keeps decide()'s call sites monomorphic. */
function ruleDecision(
  action: DecisionAction, reason: DecisionReason, route: RankedRoute, rule: CompiledRule,
  externalService: ExternalServiceSpec | undefined, ref: BackendRefSpec | undefined,
  redirect: RequestRedirectSpec | undefined, matchedPrefix: string | undefined,
): Decision {
  return {
    action,
    reason,
    route: route.ref,
    rule: rule.spec,
    ruleIndex: rule.index,
    backend: ref?.kind === 'EgressNetwork' ? undefined : ref,
    backendRef: ref,
    externalService,
    reportOnly: false,
    wouldReason: undefined,
    redirect,
    matchedPrefix,
  };
}

const KIND_OF: Record<Exclude<TargetProtocol, 'grpc'>, RouteKindSpec> = { http: 'HTTPRoute', tls: 'TLSRoute', tcp: 'TCPRoute' };

function candidates(policy: CompiledPolicy, kind: RouteKindSpec, port: number): CandidateSet {
  const t = policy.tables[kind];
  return t.byPort.get(port) ?? t.anyPort;
}

/**
 * Whether a route that takes the target's host at its port looks at the path (an HTTPRoute path
 * match other than PathPrefix '/'; for gRPC, a GRPCRoute service or method match too). Where none
 * does, the path cannot change the decision. Walks only the routes for this host; for the rare
 * request whose path is ambiguous, never on the common path.
 */
export function pathRestricted(policy: CompiledPolicy, target: Target): boolean {
  let host = target.host;
  if (host.endsWith('.')) host = host.slice(0, -1);
  const restricts = (routes: readonly RankedRoute[] | undefined) => routes?.some((r) => r.restrictsPath) ?? false;
  const kinds: RouteKindSpec[] = target.protocol === 'grpc' ? ['GRPCRoute', 'HTTPRoute'] : ['HTTPRoute'];
  for (const kind of kinds) {
    const set = candidates(policy, kind, target.port);
    if (restricts(set.byExactHost.get(host)) || restricts(set.anyHost)) return true;
    for (let dot = host.indexOf('.', 1); dot !== -1; dot = host.indexOf('.', dot + 1)) {
      if (restricts(set.byWildcardSuffix.get(host.slice(dot)))) return true;
    }
  }
  return false;
}
