// The compiled policy: the config's routes, services and callers turned once per load into the
// ranked lookup tables decide() reads (regexes compiled, routes sorted by Gateway API precedence,
// candidates indexed by kind, port and host). Pure, like decide.
//
// API (stable):
//   compilePolicy(config): CompiledPolicy          throws PolicyCompileError listing every problem
//   routeRef(route): RouteRef
//   callerLabel(policy, caller): string             the bounded `caller` metric label
//   class PolicyCompileError extends Error { problems: string[] }
import { callersOf, clientKey, type Caller } from './caller';
import {
  compileGrpcMethodMatch, compilePathMatch, compileValueMatches,
  type CompiledGrpcMethodMatch, type CompiledPathMatch, type CompiledValueMatch,
} from './route-match';
import type {
  CallersSpec, ClientSpec, ExternalServiceSpec, ProxyConfig, RequestRedirectSpec, RouteKindSpec,
  RouteMatchSpec, RouteRuleSpec, RouteSpec,
} from '../model/proxy-config';

/** Linkerd's route labels: a declared route, or the default route of the parent. */
export interface RouteRef {
  readonly group: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

/* ------------------------------------------------------------------------- compiled form */

export interface CompiledMatch {
  readonly index: number;
  /**
   * Precedence (path length matched and kind, method, header and query counts). For a
   * RegularExpression path it leaves out the length matched, the request path's: see `regex`.
   */
  readonly score: number;
  /** A RegularExpression path: add regexPathScore(path length) to `score`. */
  readonly regex: boolean;
  readonly path?: CompiledPathMatch;
  readonly method?: string;
  readonly grpc?: CompiledGrpcMethodMatch;
  readonly headers: readonly CompiledValueMatch[];
  readonly query: readonly CompiledValueMatch[];
}

export interface CompiledRule {
  readonly index: number;
  readonly spec: RouteRuleSpec;
  readonly matches: readonly CompiledMatch[];
  readonly redirect?: RequestRedirectSpec;
  readonly totalWeight: number;
  /** Running sums of backendRefs weights, for the weighted pick. */
  readonly cumulative: readonly number[];
}

export interface CompiledRoute {
  readonly spec: RouteSpec;
  readonly ref: RouteRef;
  readonly anyHost: boolean;
  readonly exactHosts: ReadonlySet<string>;
  /** Wildcards as suffixes ('.example.com') with their pattern length, longest first. */
  readonly wildcards: readonly { readonly suffix: string; readonly length: number }[];
  readonly rules: readonly CompiledRule[];
  /** The best score a match of this route can reach; unbounded (Infinity) with a regex path match. */
  readonly maxScore: number;
  /** A match looks at the path: any HTTP path match but PathPrefix '/', any gRPC service or method match. */
  readonly restrictsPath: boolean;
  readonly needsQuery: boolean;
  /** The keys of the route's clients (clientKey()); undefined: open to every caller. */
  readonly clients?: ReadonlySet<string>;
}

/** The routes one (kind, port) can reach, indexed by the hostnames they take. */
export interface CandidateSet {
  /** All of them, in precedence-tie order (oldest, then namespace/name). */
  readonly routes: readonly RankedRoute[];
  readonly byExactHost: ReadonlyMap<string, readonly RankedRoute[]>;
  /** Keyed by wildcard suffix ('.example.com'). */
  readonly byWildcardSuffix: ReadonlyMap<string, readonly RankedRoute[]>;
  /** Routes without hostnames. */
  readonly anyHost: readonly RankedRoute[];
}

export interface RankedRoute extends CompiledRoute {
  /** Position in precedence-tie order among routes of its kind: lower wins a tie. */
  readonly rank: number;
}

export interface KindTable {
  /** Routes without parentPort. */
  readonly anyPort: CandidateSet;
  /** For each port some route names: routes without parentPort plus that port's. */
  readonly byPort: ReadonlyMap<number, CandidateSet>;
}

/** Config precompiled once per load (regexes, lookup tables) so decide() stays cheap. */
export interface CompiledPolicy {
  readonly config: ProxyConfig;
  readonly routes: readonly RouteSpec[];
  readonly exactServices: ReadonlyMap<string, ExternalServiceSpec>;
  /** Longest pattern first, so the most specific wildcard wins. */
  readonly wildcardServices: readonly ExternalServiceSpec[];
  readonly tables: Readonly<Record<RouteKindSpec, KindTable>>;
  /** Route labels of declared services, for parents with allowDeclaredServices (by service name). */
  readonly declaredRoutes: ReadonlyMap<string, RouteRef>;
  /** The callers section in force (defaults when the config has none). */
  readonly callers: CallersSpec;
  /** Some consent is ever needed: a route or service declares clients, or unknown callers are denied. */
  readonly callerChecks: boolean;
  /** The client keys of each service that declares clients. */
  readonly serviceClients: ReadonlyMap<ExternalServiceSpec, ReadonlySet<string>>;
  /** Every client key the config declares: the values the `caller` metric label may take, with 'other' and 'unknown'. */
  readonly clientKeys: ReadonlySet<string>;
}

export class PolicyCompileError extends Error {
  public readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid policy (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n- ${problems.join('\n- ')}`);
    this.name = 'PolicyCompileError';
    this.problems = problems;
  }
}

// Precedence is one number: host specificity above everything a match can score (below 2^32),
// and within a match, path length matched × 4 + kind, then method, header and query counts.
export const HOST_WEIGHT = 2 ** 32;
/** Ties in the length matched: Exact, then PathPrefix, then RegularExpression (Gateway API's order). */
const PATH_KIND: Record<NonNullable<RouteMatchSpec['path']>['type'], number> = { Exact: 2, PathPrefix: 1, RegularExpression: 0 };
/** Longer matches rank as this long: far past any request line the header limit lets in. */
const MAX_RANKED_PATH = 65_535;
/** One path character matched is worth 4 kinds × 2 method × 32 header × 32 query counts. */
const PATH_CHAR_WEIGHT = 4 * 2048;
const ROUTE_GROUP = 'gateway.networking.k8s.io';

export function routeRef(route: RouteSpec): RouteRef {
  return { group: route.group || ROUTE_GROUP, kind: route.kind, namespace: route.namespace, name: route.name };
}

/**
 * Characters of the path a match covers, as linkerd2-proxy counts them: an Exact match the whole
 * path (its own length), a PathPrefix its prefix without trailing slashes ('/' counts 1), a
 * RegularExpression the whole path (known per request: 0 here, see regexPathScore()).
 */
function matchedLength(path: CompiledPathMatch): number {
  if (path.type === 'Exact') return path.value.length;
  if (path.type === 'PathPrefix') return path.prefix === '' ? 1 : path.prefix.length;
  return 0;
}

function httpScore(path: CompiledPathMatch, method: boolean, headers: number, query: number): number {
  const len = Math.min(matchedLength(path), MAX_RANKED_PATH);
  return (len * 4 + PATH_KIND[path.type]) * 2048 + (method ? 1024 : 0) + Math.min(headers, 31) * 32 + Math.min(query, 31);
}

/** The length part of a RegularExpression match's score: it matched the whole request path. */
export function regexPathScore(pathLength: number): number {
  return Math.min(pathLength, MAX_RANKED_PATH) * PATH_CHAR_WEIGHT;
}

function grpcScore(m: CompiledGrpcMethodMatch, headers: number): number {
  const exact = m.type === 'Exact';
  const svc = exact ? Math.min(m.service?.length ?? 0, 2047) : 0;
  const meth = exact ? Math.min(m.method?.length ?? 0, 2047) : 0;
  const regex = !exact && (m.service !== undefined || m.method !== undefined) ? 1 : 0;
  return (((svc * 2048 + meth) * 2 + regex) * 32) + Math.min(headers, 31);
}

function compileRoute(route: RouteSpec, problems: string[]): CompiledRoute {
  const where = `${route.kind} ${route.namespace}/${route.name}`;
  const attempt = <T>(path: string, f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      problems.push(`${where} ${path}: ${(e as Error).message}`);
      return undefined;
    }
  };
  const exactHosts = new Set<string>();
  const wildcards: { suffix: string; length: number }[] = [];
  for (const h of route.hostnames) {
    const host = h.toLowerCase();
    if (host.startsWith('*.')) wildcards.push({ suffix: host.slice(1), length: host.length });
    else exactHosts.add(host);
  }
  wildcards.sort((a, b) => b.length - a.length);
  const http = route.kind === 'HTTPRoute';
  const grpc = route.kind === 'GRPCRoute';
  let needsQuery = false;
  let maxScore = 0;
  let restrictsPath = false;
  const rules = route.rules.map((rule, ri): CompiledRule => {
    const matchSpecs: readonly RouteMatchSpec[] = rule.matches.length > 0 ? rule.matches : [{ headers: [], queryParams: [] }];
    const matches: CompiledMatch[] = [];
    if (http || grpc) {
      matchSpecs.forEach((m, mi) => {
        const at = `rules[${ri}].matches[${mi}]`;
        const headers = attempt(`${at}.headers`, () => compileValueMatches(m.headers ?? [], true)) ?? [];
        if (http) {
          const path = attempt(`${at}.path`, () => compilePathMatch(m.path));
          const query = attempt(`${at}.queryParams`, () => compileValueMatches(m.queryParams ?? [], false)) ?? [];
          if (!path) return;
          if (query.length > 0) needsQuery = true;
          const score = httpScore(path, m.method !== undefined, headers.length, query.length);
          const regex = path.type === 'RegularExpression';
          if (path.type !== 'PathPrefix' || path.prefix !== '') restrictsPath = true;
          if (regex) maxScore = Infinity;
          matches.push({ index: mi, score, regex, path, method: m.method, headers, query });
        } else {
          const g = attempt(`${at}.method`, () => compileGrpcMethodMatch(m.grpcMethod));
          if (!g) return;
          if (g.service !== undefined || g.method !== undefined) restrictsPath = true;
          matches.push({ index: mi, score: grpcScore(g, headers.length), regex: false, grpc: g, headers, query: [] });
        }
      });
    } else {
      matches.push({ index: 0, score: 0, regex: false, headers: [], query: [] });
    }
    for (const m of matches) maxScore = Math.max(maxScore, m.score);
    const redirect = rule.filters.find((f) => f.type === 'RequestRedirect')?.requestRedirect;
    if (redirect?.path?.type === 'ReplacePrefixMatch' && matchSpecs.some((m) => (m.path?.type ?? 'PathPrefix') !== 'PathPrefix')) {
      problems.push(`${where} rules[${ri}]: a ReplacePrefixMatch redirect needs PathPrefix matches only (Gateway API); use ReplaceFullPath or change the matches`);
    }
    let total = 0;
    const cumulative = rule.backendRefs.map((b) => (total += Math.max(0, b.weight ?? 1)));
    return { index: ri, spec: rule, matches, redirect, totalWeight: total, cumulative };
  });
  return {
    spec: route,
    ref: routeRef(route),
    anyHost: route.hostnames.length === 0,
    exactHosts,
    wildcards,
    rules,
    maxScore,
    restrictsPath,
    needsQuery,
    clients: clientSet(route.clients),
  };
}

function clientSet(clients: readonly ClientSpec[] | undefined): ReadonlySet<string> | undefined {
  return clients === undefined ? undefined : new Set(clients.map(clientKey));
}

/** Gateway API tie order across routes: oldest (declaration order) first, then namespace/name. */
function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
  if (a.spec.order !== b.spec.order) return a.spec.order - b.spec.order;
  const ka = `${a.spec.namespace}/${a.spec.name}`;
  const kb = `${b.spec.namespace}/${b.spec.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function candidateSet(routes: readonly RankedRoute[]): CandidateSet {
  const byExactHost = new Map<string, RankedRoute[]>();
  const byWildcardSuffix = new Map<string, RankedRoute[]>();
  const push = (m: Map<string, RankedRoute[]>, key: string, r: RankedRoute) => {
    const list = m.get(key);
    if (!list) m.set(key, [r]);
    else if (list[list.length - 1] !== r) list.push(r);
  };
  for (const r of routes) {
    for (const h of r.exactHosts) push(byExactHost, h, r);
    for (const w of r.wildcards) push(byWildcardSuffix, w.suffix, r);
  }
  return { routes, byExactHost, byWildcardSuffix, anyHost: routes.filter((r) => r.anyHost) };
}

function buildTable(routes: readonly CompiledRoute[]): KindTable {
  const sorted: RankedRoute[] = [...routes].sort(compareRoutes).map((r, rank) => ({ ...r, rank }));
  const anyPort = candidateSet(sorted.filter((r) => r.spec.parentPort === undefined));
  const byPort = new Map<number, CandidateSet>();
  for (const port of new Set(sorted.map((r) => r.spec.parentPort).filter((p): p is number => p !== undefined))) {
    byPort.set(port, candidateSet(sorted.filter((r) => r.spec.parentPort === undefined || r.spec.parentPort === port)));
  }
  return { anyPort, byPort };
}

/** route_group of the route a declared ExternalService stands for (allowDeclaredServices). */
export const DECLARED_SERVICE_ROUTE_GROUP = 'egress.cdk8s.io';

/**
 * Compile once per config load. Throws PolicyCompileError naming every bad route (invalid
 * regexes, ReplacePrefixMatch without PathPrefix), all at once. The parent's networks are the
 * AddressVetter's (vet.ts), which applies them to resolved addresses.
 */
export function compilePolicy(config: ProxyConfig): CompiledPolicy {
  const problems: string[] = [];
  const exactServices = new Map<string, ExternalServiceSpec>();
  const wildcardServices: ExternalServiceSpec[] = [];
  for (const svc of config.externalServices) {
    if (svc.host.startsWith('*.')) wildcardServices.push(svc);
    else exactServices.set(svc.host.toLowerCase(), svc);
  }
  wildcardServices.sort((a, b) => b.host.length - a.host.length);
  const compiled = config.routes.map((r) => compileRoute(r, problems));
  const tables = {
    HTTPRoute: buildTable(compiled.filter((r) => r.spec.kind === 'HTTPRoute')),
    GRPCRoute: buildTable(compiled.filter((r) => r.spec.kind === 'GRPCRoute')),
    TLSRoute: buildTable(compiled.filter((r) => r.spec.kind === 'TLSRoute')),
    TCPRoute: buildTable(compiled.filter((r) => r.spec.kind === 'TCPRoute')),
  };
  if (problems.length > 0) throw new PolicyCompileError(problems);
  const declaredRoutes = new Map<string, RouteRef>();
  for (const svc of config.externalServices) {
    declaredRoutes.set(svc.name, { group: DECLARED_SERVICE_ROUTE_GROUP, kind: 'ExternalService', namespace: config.gateway.namespace, name: svc.name });
  }
  const serviceClients = new Map<ExternalServiceSpec, ReadonlySet<string>>();
  for (const svc of config.externalServices) {
    const set = clientSet(svc.clients);
    if (set) serviceClients.set(svc, set);
  }
  const clientKeys = new Set<string>();
  for (const set of [...serviceClients.values(), ...compiled.map((r) => r.clients)]) for (const k of set ?? []) clientKeys.add(k);
  const callers = callersOf(config);
  const callerChecks = clientKeys.size > 0 || callers.unknown === 'Deny';
  return {
    config,
    routes: config.routes,
    exactServices,
    wildcardServices,
    tables,
    declaredRoutes,
    callers,
    callerChecks,
    serviceClients,
    clientKeys,
  };
}

/**
 * The `caller` metric label: the most specific declared client key the caller has (identity,
 * then ServiceAccount, then namespace), 'other' for a known caller no client names, 'unknown'.
 * Bounded by the config, never a raw header value.
 */
export function callerLabel(policy: CompiledPolicy, caller: Caller | undefined): string {
  if (!caller) return 'unknown';
  const k = caller.keys;
  const keys = policy.clientKeys;
  return keys.has(k.id) ? k.id : keys.has(k.sa) ? k.sa : keys.has(k.ns) ? k.ns : 'other';
}

