// Explain a request offline: what the proxy would decide for it under a config, and why. Runs the
// proxy's own stages (config validation, classify, caller identity, compilePolicy, decide) with no
// sockets, DNS or files, so a policy can be unit-tested the way it will be enforced.
import { CallerResolver, ISTIO_IDENTITY_HEADER, LINKERD_IDENTITY_HEADER, type CallerResolution, type UnknownCallerReason } from './caller';
import { classifyConnect, classifyHttp, classifySni, splitHostPort, SuffixMatcher, type ClassifiedRequest } from './classify';
import { ConfigError, validateConfig } from './config';
import { decide, pathRestricted, type CallerRefusal, type Decision, type Target } from './decide';
import { denialCode, errorResponse, isEgressError, type EgressErrorCode } from './errors';
import { compilePolicy, type CompiledPolicy } from './policy';
import { redirectLocation } from './route-match';
import type { ProxyConfig } from '../model/proxy-config';

/**
 * How the request reaches the proxy:
 * - http: the HTTP listener (a `Host: <name>.<suffix>` request, or absolute-form when the host has
 *   no egress suffix, as an `http_proxy` client sends it); gRPC by `content-type: application/grpc`.
 * - connect: a CONNECT tunnel to host:port on the HTTP listener (forward-proxy mode).
 * - tls: the TLS passthrough listener, by SNI.
 * - tcp: the TCP listener of the external service with this host and service port.
 */
export type ExplainProtocol = 'http' | 'connect' | 'tls' | 'tcp';

/** A request to explain. Only `host` (or, for tls, `sni`) is required. */
export interface ExplainRequest {
  /**
   * Who calls: a mesh identity as the configured source names it (Linkerd:
   * `<sa>.<ns>.serviceaccount.identity.linkerd.<td>`, Istio: `spiffe://<td>/ns/<ns>/sa/<sa>`), or a
   * ServiceAccount, turned into that identity. As if the gateway's sidecar had set the header.
   * Absent: the identity header in `headers`, if any, as the sidecar set it; else unknown.
   */
  readonly caller?: string | { readonly namespace: string; readonly serviceAccount: string };
  /** @default 'http' */
  readonly protocol?: ExplainProtocol;
  /**
   * The host as the client names it: `api.github.com.egress.local` (the egress suffix, as in a
   * Host header) or `api.github.com` (http: absolute-form, an `http_proxy` client; connect: the
   * CONNECT authority's host). tcp: the external service's host.
   */
  readonly host?: string;
  /**
   * http: the port in the Host header (default: the listener's parent port, 80); absolute-form and
   * connect: the target port (default 80 and 443); tcp: the service port.
   */
  readonly port?: number;
  /** @default 'GET' */
  readonly method?: string;
  /** Path and query. @default '/' */
  readonly path?: string;
  /** Request headers (names in any case). */
  readonly headers?: Readonly<Record<string, string>>;
  /** tls: the ClientHello's server name. @default host */
  readonly sni?: string;
  /** In [0, 1): the draw for weighted backends. @default 0 (the first backend with weight) */
  readonly pick?: number;
}

/** The route a request matched, as metrics label it. */
export interface ExplainedRoute {
  readonly group: string;
  /** HTTPRoute, GRPCRoute, TLSRoute, TCPRoute; 'ExternalService' (a declared service); 'default' (the parent's). */
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** Index of the matched rule in the route. */
  readonly rule?: number;
  readonly ruleName?: string;
}

export interface ExplainedCaller {
  /** A trusted identity named the caller. */
  readonly known: boolean;
  readonly identity?: string;
  readonly namespace?: string;
  readonly serviceAccount?: string;
  /** Why the caller is unknown (caller.ts UnknownCallerReason). */
  readonly unknown?: UnknownCallerReason;
}

export interface Explanation {
  /**
   * The policy lets it through: sent on (report-only included), or answered with the matched
   * rule's redirect (`status`, `location`). The proxy still resolves the name and
   * vets the addresses (address policy, parent networks), which this does not: an allowed request
   * can yet be refused there (ADDRESS_REFUSED).
   */
  readonly allowed: boolean;
  /** What the proxy itself answers (403, 400, 500, a redirect's 3xx); undefined when it forwards. */
  readonly status?: number;
  /** The `x-egress-error` code of that answer. */
  readonly code?: EgressErrorCode;
  /** decide()'s reason ('route-matched', 'default-deny', 'caller-not-allowed', ...), or 'not-classified'. */
  readonly reason: string;
  /** reportOnly: the reason it would have been denied for. */
  readonly wouldReason?: string;
  /** Whose consent a caller refusal lacked: 'route', 'external-service' or 'unknown-callers'. */
  readonly refusedBy?: CallerRefusal;
  readonly route?: ExplainedRoute;
  /** Name of the ExternalService declared for the host. */
  readonly externalService?: string;
  readonly reportOnly: boolean;
  readonly caller: ExplainedCaller;
  /** What the listener classified: protocol ('http', 'grpc', 'tls', 'tcp'), host without suffix, port. */
  readonly target?: { readonly protocol: string; readonly host: string; readonly port: number };
  /** A Service backend the route sends it to (else: the original destination). */
  readonly backend?: { readonly kind: string; readonly namespace: string; readonly name: string; readonly port?: number };
  /** A redirect's Location. */
  readonly location?: string;
  /** Why the request could not be classified (status 400 and the like). */
  readonly detail?: string;
}

/** A request that cannot be explained (missing host, no such listener): not a decision of the proxy. */
export class ExplainInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExplainInputError';
  }
}

/** A config compiled once, for explaining many requests. */
export interface Explainer {
  readonly config: ProxyConfig;
  explain(request: ExplainRequest): Explanation;
}

/**
 * Validates (defaults filled in, as the proxy loads it) and compiles a config. Throws ConfigError
 * listing every problem, as the proxy would refuse to load it.
 */
export function createExplainer(config: ProxyConfig): Explainer {
  const r = validateConfig(config);
  if (!r.ok) throw new ConfigError('config', r.problems);
  const policy = compilePolicy(r.config);
  const suffixes = new SuffixMatcher(r.config.listeners.http.suffixes);
  const callers = new CallerResolver(policy.callers);
  return { config: r.config, explain: (request) => explainWith(policy, suffixes, callers, request) };
}

/**
 * What the proxy would do with `request` under `config`: the decision, its route and reason, the
 * caller as the proxy sees it, and the status and `x-egress-error` code of its own answer. Throws
 * ConfigError for a config the proxy would refuse, ExplainInputError for a request it cannot state.
 */
export function explainRequest(config: ProxyConfig, request: ExplainRequest): Explanation {
  return createExplainer(config).explain(request);
}

function explainWith(policy: CompiledPolicy, suffixes: SuffixMatcher, callers: CallerResolver, request: ExplainRequest): Explanation {
  const config = policy.config;
  const protocol = request.protocol ?? 'http';
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers ?? {})) headers[k.toLowerCase()] = String(v);
  const pick = request.pick ?? 0;

  let who: CallerResolution = callers.connection();
  let target: Target;
  let classified: ClassifiedRequest | undefined;
  let authority: string | undefined;
  try {
    if (protocol === 'http') {
      const host = required(request.host, 'host');
      who = callerOf(callers, request, headers);
      const bare = host.toLowerCase().replace(/\.$/, '');
      const addressed = suffixes.strip(bare) !== undefined;
      // As the listener reads it: a name under an egress suffix is a Host header; any other an absolute-form target.
      authority = request.port === undefined ? host : `${host.includes(':') ? `[${host}]` : host}:${request.port}`;
      const url = addressed ? (request.path ?? '/') : `http://${authority}${request.path ?? '/'}`;
      headers.host = authority;
      classified = classifyHttp({ method: (request.method ?? 'GET').toUpperCase(), url, headers }, authority, suffixes,
        config.listeners.http.forwardProxy, config.listeners.http.parentPort, pick, config.listeners.http.ambiguousPaths, who.caller);
      target = classified.target;
      if (classified.ambiguity && pathRestricted(policy, target)) {
        return refused('BAD_REQUEST', who, `ambiguous path (${classified.ambiguity}) where routes restrict paths`, target);
      }
    } else if (protocol === 'connect') {
      const host = required(request.host, 'host');
      who = callerOf(callers, request, headers);
      if (!config.listeners.http.forwardProxy) {
        return { ...refused('BAD_REQUEST', who, 'CONNECT needs listeners.http.forwardProxy'), status: 405 };
      }
      const port = request.port ?? 443;
      target = classifyConnect(`${host.includes(':') ? `[${host}]` : host}:${port}`, suffixes, who.caller);
    } else if (protocol === 'tls') {
      if (!config.listeners.tls) throw new ExplainInputError('the config has no TLS passthrough listener (listeners.tls)');
      who = callers.connection();
      target = classifySni(required(request.sni ?? request.host, 'sni'), config.listeners.tls.parentPort);
    } else if (protocol === 'tcp') {
      const host = required(request.host, 'host').toLowerCase();
      const listener = config.listeners.tcp.find((t) => t.servicePort === request.port
        && config.externalServices.some((s) => s.name === t.externalService && s.host === host));
      if (!listener) throw new ExplainInputError(`the config has no TCP listener for host "${host}" and service port ${request.port}`);
      who = callers.connection();
      target = { protocol: 'tcp', host, port: listener.servicePort };
    } else {
      throw new ExplainInputError(`protocol must be one of http, connect, tls, tcp (got ${JSON.stringify(protocol)})`);
    }
  } catch (err) {
    if (!isEgressError(err)) throw err;
    return refused(err.code, who, err.detail ?? err.code);
  }

  const decision = decide(policy, target);
  const base = {
    reason: decision.reason,
    wouldReason: decision.wouldReason,
    refusedBy: decision.refusedBy,
    route: routeOf(decision),
    externalService: decision.externalService?.name,
    reportOnly: decision.reportOnly,
    caller: explainedCaller(who),
    target: { protocol: target.protocol, host: target.host, port: target.port },
  };
  if (decision.reason === 'no-backend') return { ...base, allowed: false, status: errorResponse('NO_BACKEND').status, code: 'NO_BACKEND' };
  if (decision.action === 'deny') {
    const code = denialCode(decision.reason);
    return { ...base, allowed: false, status: errorResponse(code).status, code };
  }
  if (decision.action === 'redirect' && decision.redirect && classified) {
    // Location names the host the way the client addressed it, as the listener writes it.
    const clientHost = classified.absolute ? target.host : splitHostPort(authority ?? '')?.host ?? target.host;
    const asked = { host: clientHost, port: target.port, path: target.path, query: target.query };
    const location = redirectLocation(asked, decision.redirect, decision.matchedPrefix);
    return { ...base, allowed: true, status: decision.redirect.statusCode, location };
  }
  const b = decision.backend;
  return { ...base, allowed: true, backend: b ? { kind: b.kind, namespace: b.namespace, name: b.name, port: b.port } : undefined };
}

function required(v: string | undefined, name: string): string {
  if (typeof v !== 'string' || v === '') throw new ExplainInputError(`the request needs ${name}`);
  return v;
}

/** The caller the request names, else the identity header it carries, as from the gateway's sidecar. */
function callerOf(callers: CallerResolver, request: ExplainRequest, headers: Record<string, string>): CallerResolution {
  const c = request.caller;
  if (c === undefined) {
    // The sidecar connects from loopback: the header counts as the proxy would count it from there.
    return callers.resolve(headers, undefined, '127.0.0.1', undefined);
  }
  // The sidecar replaces whatever identity header the client sent.
  delete headers[LINKERD_IDENTITY_HEADER];
  delete headers[ISTIO_IDENTITY_HEADER];
  if (typeof c === 'string') return callers.fromIdentity(c);
  if (!c || typeof c.namespace !== 'string' || typeof c.serviceAccount !== 'string') {
    throw new ExplainInputError('caller must be an identity string or {namespace, serviceAccount}');
  }
  const identity = callers.identityOf(c.namespace, c.serviceAccount);
  return identity === undefined ? callers.connection() : callers.fromIdentity(identity);
}

function explainedCaller(who: CallerResolution): ExplainedCaller {
  if (who.caller) return { known: true, identity: who.caller.identity, namespace: who.caller.namespace, serviceAccount: who.caller.serviceAccount };
  return { known: false, unknown: who.unknown };
}

function routeOf(d: Decision): ExplainedRoute {
  const r = d.route;
  return { group: r.group, kind: r.kind, namespace: r.namespace, name: r.name, rule: d.ruleIndex, ruleName: d.rule?.name };
}

function refused(code: EgressErrorCode, who: CallerResolution, detail: string, target?: Target): Explanation {
  return {
    allowed: false,
    status: errorResponse(code).status,
    code,
    reason: 'not-classified',
    reportOnly: false,
    caller: explainedCaller(who),
    target: target ? { protocol: target.protocol, host: target.host, port: target.port } : undefined,
    detail,
  };
}
