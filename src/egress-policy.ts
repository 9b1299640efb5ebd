// EgressPolicy: the gateway's policy asked offline, with the proxy's own engine. Synthesises the
// gateway's proxy config and runs the proxy's explain (config validation, classify, caller
// identity, decide) on a request: the decision, its route and reason, and the caller as seen.
import * as path from 'path';
import { Client } from './callers';
import type { EgressGateway } from './egress-gateway';
import type { ProxyConfig } from './model/proxy-config';
import type { Explainer, ExplainRequest, Explanation } from './proxy/explain';

/** How a request reaches the gateway. */
export enum EgressRequestProtocol {
  /**
   * The HTTP listener: `http://<host>.<suffix>/...` (a Host header under the egress suffix), or
   * an `http_proxy` absolute-form request for a host without it; gRPC by its content type.
   */
  HTTP = 'http',
  /** A CONNECT tunnel to host:port on the HTTP listener (needs `forwardProxy`). */
  CONNECT = 'connect',
  /** The TLS passthrough listener, routed by SNI (needs `tlsPassthrough`); the caller is unknown. */
  TLS = 'tls',
  /** The TCP listener of an ExternalService's TCP port; the caller is unknown. */
  TCP = 'tcp',
}

/** A request to explain. */
export interface EgressRequest {
  /**
   * The host as the client names it: `api.github.com.egress.local` (under the egress suffix, as
   * in a Host header) or `api.github.com` (an `http_proxy` client, a CONNECT authority, a TCP
   * service's host). Required except for TLS, which may give `sni` instead.
   * @default - none
   */
  readonly host?: string;

  /**
   * How the request reaches the gateway.
   * @default EgressRequestProtocol.HTTP
   */
  readonly protocol?: EgressRequestProtocol;

  /**
   * Who calls, as the gateway's sidecar would name them: `Client.serviceAccountNamed()` (or
   * `Client.serviceAccount()`), `Client.linkerdIdentity()` or `Client.spiffe()`. A namespace is not
   * one caller. Ignored for TLS and TCP, whose callers are always unknown.
   * @default - the identity header in `headers`, if any, as the sidecar set it; else an unknown caller
   */
  readonly caller?: Client;

  /**
   * HTTP: the port in the Host header; absolute-form and CONNECT: the target port; TCP: the
   * service port.
   * @default - 80 for HTTP, 443 for CONNECT
   */
  readonly port?: number;

  /**
   * The request method.
   * @default "GET"
   */
  readonly method?: string;

  /**
   * Path and query.
   * @default "/"
   */
  readonly path?: string;

  /**
   * Request headers (names in any case).
   * @default - none
   */
  readonly headers?: { [name: string]: string };

  /**
   * TLS: the ClientHello's server name.
   * @default - the host
   */
  readonly sni?: string;
}

/** The route a request matched, labelled as the gateway's metrics label it. */
export interface EgressPolicyRoute {
  /** API group (`gateway.networking.k8s.io`), empty for the parent's default routes. */
  readonly group: string;
  /** HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, `ExternalService` (a declared service) or `default`. */
  readonly kind: string;
  /** Namespace of the route. */
  readonly namespace: string;
  /** Name of the route (`http-egress-deny` and the like for default routes). */
  readonly name: string;
  /**
   * Index of the matched rule.
   * @default - no rule (a default route)
   */
  readonly rule?: number;
  /**
   * Name of the matched rule.
   * @default - unnamed
   */
  readonly ruleName?: string;
}

/** The caller as the gateway sees it. */
export interface EgressPolicyCaller {
  /** A trusted identity named the caller. */
  readonly known: boolean;
  /**
   * The caller's mesh identity.
   * @default - unknown caller
   */
  readonly identity?: string;
  /**
   * The caller's namespace.
   * @default - unknown caller
   */
  readonly namespace?: string;
  /**
   * The caller's ServiceAccount.
   * @default - unknown caller
   */
  readonly serviceAccount?: string;
  /**
   * Why the caller is unknown: `no-identity-source`, `no-header`, `untrusted-peer`,
   * `multiple-headers`, `unparsable`, `other-trust-domain` or `no-headers` (TLS passthrough, TCP).
   * @default - the caller is known
   */
  readonly unknownReason?: string;
}

/** What the gateway would do with a request, and why. */
export interface EgressPolicyDecision {
  /**
   * The policy lets it through (sent on, report-only included, or answered with a redirect). The
   * gateway still resolves the name and vets the addresses, which this does not.
   */
  readonly allowed: boolean;
  /**
   * The status of the gateway's own answer (403, 400, 500, a redirect's 3xx).
   * @default - the request is forwarded
   */
  readonly status?: number;
  /**
   * The `x-egress-error` code of that answer, e.g. `CALLER_NOT_ALLOWED`, `CALLER_UNKNOWN`.
   * @default - no error
   */
  readonly code?: string;
  /** The decision's reason: `route-matched`, `declared-service`, `default-deny`, `caller-not-allowed`, ... */
  readonly reason: string;
  /**
   * Under EnforcementMode.REPORT_ONLY: the reason it would have been denied for.
   * @default - not a report-only allowance
   */
  readonly wouldReason?: string;
  /**
   * Whose consent a caller refusal lacked: `route`, `external-service` or `unknown-callers`.
   * @default - not a caller refusal
   */
  readonly refusedBy?: string;
  /**
   * The route that decided.
   * @default - the request could not be classified
   */
  readonly route?: EgressPolicyRoute;
  /**
   * The ExternalService declared for the host.
   * @default - none
   */
  readonly externalService?: string;
  /** The parent only reports denials (EnforcementMode.REPORT_ONLY). */
  readonly reportOnly: boolean;
  /** The caller as the gateway sees it. */
  readonly caller: EgressPolicyCaller;
  /**
   * A redirect's Location.
   * @default - not a redirect
   */
  readonly location?: string;
  /**
   * Why the request could not be classified (status 400 and the like).
   * @default - it was classified
   */
  readonly detail?: string;
}

interface ExplainModule {
  createExplainer(config: ProxyConfig): Explainer;
}

/** The published package ships the proxy's explain as one bundled file; a source tree has the module. */
const BUNDLED_EXPLAIN = path.join(__dirname, '..', 'assets', 'proxy', 'explain', 'index.js');

function loadExplain(): ExplainModule {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('./proxy/explain') as ExplainModule;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(BUNDLED_EXPLAIN) as ExplainModule;
  }
}

/**
 * An EgressGateway's policy, asked offline with the engine the gateway's proxy runs: for unit
 * tests of who may call what, before the manifests ship.
 *
 * The gateway's config is read when the policy is created: create it after the last
 * `addExternalService()` and route. The gateway's synth-time checks run first, so a policy that
 * would not synthesise cannot be explained either.
 *
 * @example
 * const policy = EgressPolicy.of(gateway);
 * const d = policy.explain({ host: 'api.stripe.com.egress.local', caller: Client.serviceAccountNamed('payments', 'api') });
 * expect(d.allowed).toBe(true);
 */
export class EgressPolicy {
  /** The policy of `gateway` as it stands now. */
  public static of(gateway: EgressGateway): EgressPolicy {
    const errors = gateway.node.validate();
    if (errors.length > 0) throw new Error(errors.join('\n'));
    return new EgressPolicy(loadExplain().createExplainer(gateway._renderConfig()));
  }

  /** What `gateway` would do with `request`. Shorthand for `EgressPolicy.of(gateway).explain(request)`. */
  public static explainRequest(gateway: EgressGateway, request: EgressRequest): EgressPolicyDecision {
    return EgressPolicy.of(gateway).explain(request);
  }

  private readonly explainer: Explainer;

  private constructor(explainer: Explainer) {
    this.explainer = explainer;
  }

  /** What the gateway would do with `request`, and why. */
  public explain(request: EgressRequest): EgressPolicyDecision {
    return toDecision(this.explainer.explain(toExplainRequest(request)));
  }
}

function toExplainRequest(r: EgressRequest): ExplainRequest {
  let caller: ExplainRequest['caller'];
  if (r.caller !== undefined) {
    if (!(r.caller instanceof Client)) throw new Error(`EgressPolicy.explain(): 'caller' ${JSON.stringify(r.caller)} is not a Client; use Client.serviceAccountNamed(), Client.linkerdIdentity() or Client.spiffe()`);
    const spec = r.caller._toSpec();
    if (spec.serviceAccount) caller = { namespace: spec.serviceAccount.namespace, serviceAccount: spec.serviceAccount.name };
    else if (spec.identity !== undefined) caller = spec.identity;
    else throw new Error(`EgressPolicy.explain(): 'caller' "${r.caller.key}" is a namespace, not one caller; use Client.serviceAccountNamed(namespace, name)`);
  }
  return {
    caller,
    protocol: r.protocol,
    host: r.host,
    port: r.port,
    method: r.method,
    path: r.path,
    headers: r.headers,
    sni: r.sni,
  };
}

function toDecision(e: Explanation): EgressPolicyDecision {
  return {
    allowed: e.allowed,
    status: e.status,
    code: e.code,
    reason: e.reason,
    wouldReason: e.wouldReason,
    refusedBy: e.refusedBy,
    route: e.route ? { ...e.route } : undefined,
    externalService: e.externalService,
    reportOnly: e.reportOnly,
    caller: {
      known: e.caller.known,
      identity: e.caller.identity,
      namespace: e.caller.namespace,
      serviceAccount: e.caller.serviceAccount,
      unknownReason: e.caller.unknown,
    },
    location: e.location,
    detail: e.detail,
  };
}
