// Pure policy decision: given a classified target and the compiled config, pick the route, the
// action and the backend. No sockets, clocks, randomness or logging.
import type {
  BackendRefSpec, ExternalServiceSpec, ProxyConfig, RouteRuleSpec, RouteSpec,
} from '../model/proxy-config';

export type TargetProtocol = 'http' | 'grpc' | 'tls' | 'tcp';

/** What the listener learned about a request or connection, normalised. */
export interface Target {
  readonly protocol: TargetProtocol;
  /** Destination host, lower case, without the egress suffix or port. */
  readonly host: string;
  /** The port the client addressed (the parent port). */
  readonly port: number;
  /** HTTP and gRPC only. */
  readonly method?: string;
  readonly path?: string;
  /** Lower-case names. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
  /** Raw query string without '?'. */
  readonly query?: string;
  /** In [0, 1): the caller's random draw for weighted backend choice (keeps decide() pure). */
  readonly pick?: number;
}

/** Linkerd's route labels: a declared route, or the default route of the parent. */
export interface RouteRef {
  readonly group: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export type DecisionAction = 'allow' | 'deny' | 'redirect';

/** Stable reason codes: logged, counted and asserted by tests. */
export type DecisionReason =
  | 'route-matched'
  | 'default-allow'
  | 'default-deny'
  | 'no-backend'
  | 'filter-redirect'
  | 'report-only';

export interface Decision {
  readonly action: DecisionAction;
  readonly reason: DecisionReason;
  readonly route: RouteRef;
  readonly rule?: RouteRuleSpec;
  /** Chosen backend; undefined means pass through to the original destination. */
  readonly backend?: BackendRefSpec;
  /** The declared service for the host, if any (TLS, endpoints, retries, hostname label). */
  readonly externalService?: ExternalServiceSpec;
  /** True when the decision would deny but the parent is in ReportOnly mode. */
  readonly reportOnly: boolean;
}

/** Config precompiled once per load (regexes, lookup tables) so decide() stays cheap. */
export interface CompiledPolicy {
  readonly config: ProxyConfig;
  readonly routes: readonly RouteSpec[];
  readonly exactServices: ReadonlyMap<string, ExternalServiceSpec>;
  readonly wildcardServices: readonly ExternalServiceSpec[];
}

export function compilePolicy(config: ProxyConfig): CompiledPolicy {
  const exactServices = new Map<string, ExternalServiceSpec>();
  const wildcardServices: ExternalServiceSpec[] = [];
  for (const svc of config.externalServices) {
    if (svc.host.startsWith('*.')) wildcardServices.push(svc);
    else exactServices.set(svc.host.toLowerCase(), svc);
  }
  return { config, routes: config.routes, exactServices, wildcardServices };
}

export function findExternalService(policy: CompiledPolicy, host: string): ExternalServiceSpec | undefined {
  const exact = policy.exactServices.get(host);
  if (exact) return exact;
  for (const svc of policy.wildcardServices) {
    const suffix = svc.host.slice(1); // '.example.com'
    if (host.endsWith(suffix) && host.length > suffix.length) return svc;
  }
  return undefined;
}

const DEFAULT_ROUTE_PREFIX: Record<TargetProtocol, string> = { http: 'http', grpc: 'grpc', tls: 'tls', tcp: 'tcp' };

/** The parent's default route, named as Linkerd names it: 'http-egress-allow', 'tls-egress-deny', ... */
export function defaultRoute(protocol: TargetProtocol, allow: boolean): RouteRef {
  return { group: '', kind: 'default', namespace: '', name: `${DEFAULT_ROUTE_PREFIX[protocol]}-egress-${allow ? 'allow' : 'deny'}` };
}

/**
 * Evaluation order (first version: no declared routes yet):
 * 1. the parent's trafficPolicy decides, through its default route;
 * 2. ReportOnly turns a deny into an allow flagged reportOnly.
 */
export function decide(policy: CompiledPolicy, target: Target): Decision {
  const externalService = findExternalService(policy, target.host);
  const allow = policy.config.parent.trafficPolicy === 'Allow';
  const route = defaultRoute(target.protocol, allow);
  if (allow) return { action: 'allow', reason: 'default-allow', route, externalService, reportOnly: false };
  if (policy.config.parent.mode === 'ReportOnly') {
    return { action: 'allow', reason: 'report-only', route, externalService, reportOnly: true };
  }
  return { action: 'deny', reason: 'default-deny', route, externalService, reportOnly: false };
}
