// Who may call what: the `Client` value (a ServiceAccount, a namespace or a mesh identity allowed
// to use an ExternalService or a route), the gateway's caller identity settings, and their checks.
import { Chart } from 'cdk8s';
import type * as kplus from 'cdk8s-plus-28';
import { dnsNameProblem, isDnsLabel, isDnsSubdomain } from './internal/dns';
import { Problems } from './internal/problems';
import type { CallersSpec, ClientSpec } from './model/proxy-config';

/**
 * Where the gateway learns who is calling. The identity header is trusted only on connections
 * from the gateway pod's own sidecar (a loopback peer), ignored on any other connection, and
 * never sent upstream.
 */
export enum CallerIdentitySource {
  /** No identity: every caller is unknown. */
  NONE = 'None',
  /**
   * Linkerd: the gateway's Linkerd proxy terminates the caller's mTLS and sets `l5d-client-id`
   * to its identity, `<serviceaccount>.<namespace>.serviceaccount.identity.linkerd.<trust domain>`.
   * Needs `linkerdInject`. The gateway also renders Linkerd's `Server`, `MeshTLSAuthentication`
   * and `AuthorizationPolicy` for its HTTP port, so that the mesh admits only the callers the
   * gateway's rules could allow.
   * @see https://linkerd.io/2-edge/reference/proxy-configuration/
   */
  LINKERD = 'Linkerd',
  /**
   * Istio: the gateway's Envoy sidecar sets `x-forwarded-client-cert`; the caller is the `URI`
   * of its last element, `spiffe://<trust domain>/ns/<namespace>/sa/<serviceaccount>`.
   * @see https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert
   */
  ISTIO = 'Istio',
}

/**
 * What a caller without a trusted identity may use. A caller is unknown when it has no identity
 * header, sent one on a connection the gateway does not trust, sent one that cannot be read or
 * that names another trust domain, and on every TLS passthrough and TCP listener connection,
 * which carry no headers. (CONNECT tunnels do: their caller is known.)
 */
export enum UnknownCallerPolicy {
  /** It may use what declares no clients, never what does (403 `CALLER_UNKNOWN`). */
  ALLOW_UNRESTRICTED = 'AllowUnrestricted',
  /** It is refused everything (403 `CALLER_UNKNOWN`). */
  DENY = 'Deny',
}

/** The trust domain Linkerd and Istio use unless installed with another one. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

// SPIFFE ID (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md): a trust domain of
// lower-case letters, digits, '.', '-' and '_', then a path of non-empty segments of letters,
// digits, '.', '-' and '_', none of them '.' or '..'.
const SPIFFE_TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SPIFFE_SEGMENT = /^[A-Za-z0-9._-]+$/;
const LINKERD_IDENTITY = /^([^.]+)\.([^.]+)\.serviceaccount\.identity\.linkerd\.(.+)$/;
const ISTIO_PATH = /^\/ns\/([^/]+)\/sa\/([^/]+)$/;

/**
 * A caller allowed to use an `ExternalService` or a route: the workloads running as a
 * ServiceAccount, every workload of a namespace, or one mesh identity. Declaring `clients`
 * closes the service or route to every other caller; a request needs the consent of both the
 * route it matched and the ExternalService of its host, where each declares clients.
 *
 * @example
 * gateway.addExternalService('Stripe', {
 *   host: 'api.stripe.com',
 *   clients: [Client.namespace('payments'), Client.serviceAccountNamed('billing', 'invoicer')],
 * });
 */
export class Client {
  /**
   * The workloads running as `serviceAccount`. Its namespace is the one in its metadata, or else
   * its chart's namespace.
   */
  public static serviceAccount(serviceAccount: kplus.IServiceAccount): Client {
    const subject = serviceAccount.toSubjectConfiguration();
    const namespace = subject.namespace ?? Chart.of(serviceAccount).namespace;
    if (namespace === undefined) {
      throw new Error(`Client.serviceAccount(): ServiceAccount "${serviceAccount.node.path}" has no namespace (neither in its metadata nor from its chart), so it names no identity; `
        + 'give it metadata.namespace, or use Client.serviceAccountNamed(namespace, name)');
    }
    return Client.serviceAccountNamed(namespace, subject.name);
  }

  /** The workloads running as the ServiceAccount `name` of `namespace`. */
  public static serviceAccountNamed(namespace: string, name: string): Client {
    const problems = new Problems('Client.serviceAccountNamed()');
    checkNamespace(problems, 'namespace', namespace);
    if (!isDnsSubdomain(name)) {
      problems.add('name', name, 'is not a ServiceAccount name (a DNS-1123 subdomain: lower-case letters, digits, "-" and ".")',
        `use the ServiceAccount's metadata.name, e.g. ${JSON.stringify(suggest(name) || 'default')}`);
    }
    problems.throwIfAny();
    return new Client({ serviceAccount: { namespace, name } }, `sa:${namespace}/${name}`);
  }

  /** Every workload of the namespace `name`, whatever its ServiceAccount. */
  public static namespace(name: string): Client {
    const problems = new Problems('Client.namespace()');
    checkNamespace(problems, 'name', name);
    problems.throwIfAny();
    return new Client({ namespace: name }, `ns:${name}`);
  }

  /**
   * One Linkerd identity, exactly as `l5d-client-id` carries it:
   * `<serviceaccount>.<namespace>.serviceaccount.identity.linkerd.<trust domain>`. Only for a
   * gateway whose `callerIdentity` is `CallerIdentitySource.LINKERD`, in its trust domain.
   * @see https://linkerd.io/2-edge/features/automatic-mtls/
   */
  public static linkerdIdentity(identity: string): Client {
    const problems = new Problems('Client.linkerdIdentity()');
    if (typeof identity !== 'string' || identity.includes('*') || !LINKERD_IDENTITY.test(identity) || !isDnsSubdomain(identity)) {
      problems.add('identity', identity,
        'is not a Linkerd identity (<serviceaccount>.<namespace>.serviceaccount.identity.linkerd.<trust domain>, lower case, no wildcards)',
        'use e.g. "checkout.shop.serviceaccount.identity.linkerd.cluster.local", or Client.namespace() for every account of a namespace');
    }
    problems.throwIfAny();
    return new Client({ identity }, `id:${identity}`);
  }

  /**
   * One SPIFFE ID, exactly as the `URI` of Istio's `x-forwarded-client-cert` carries it:
   * `spiffe://<trust domain>/ns/<namespace>/sa/<serviceaccount>`. Only for a gateway whose
   * `callerIdentity` is `CallerIdentitySource.ISTIO`, in its trust domain.
   * @see https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md
   */
  public static spiffe(uri: string): Client {
    const problems = new Problems('Client.spiffe()');
    const reason = spiffeReason(uri);
    if (reason) {
      problems.add('uri', uri, `is not a SPIFFE ID (${reason})`, 'use e.g. "spiffe://cluster.local/ns/shop/sa/checkout"');
    }
    problems.throwIfAny();
    return new Client({ identity: uri }, `id:${uri}`);
  }

  /**
   * Stable key of this client: `sa:<namespace>/<name>`, `ns:<namespace>` or `id:<identity>`. The
   * gateway's `caller` metric label takes these values (with `callerMetrics`).
   */
  public readonly key: string;

  private readonly spec: ClientSpec;

  private constructor(spec: ClientSpec, key: string) {
    this.spec = spec;
    this.key = key;
  }

  /** @internal the client as the proxy config carries it. */
  public _toSpec(): ClientSpec {
    const s = this.spec;
    if (s.serviceAccount) return { serviceAccount: { ...s.serviceAccount } };
    return { ...s };
  }
}

/**
 * Checks a `clients` prop: a list of Client values, at least one, each once. Returns the specs,
 * or undefined when the prop is unset (open to every caller).
 */
export function clientsToSpec(problems: Problems, prop: string, clients: readonly Client[] | undefined): ClientSpec[] | undefined {
  if (clients === undefined) return undefined;
  if (!Array.isArray(clients)) {
    problems.add(prop, clients, 'is not a list of Client values', 'write e.g. clients: [Client.namespace("payments")]');
    return undefined;
  }
  if (clients.length === 0) {
    problems.add(prop, [], 'is empty, which would let nobody use it',
      'list the callers, e.g. [Client.namespace("payments")], or leave clients unset to allow every caller');
    return undefined;
  }
  const seen = new Set<string>();
  const out: ClientSpec[] = [];
  clients.forEach((c, i) => {
    if (!(c instanceof Client)) {
      problems.add(`${prop}[${i}]`, c, 'is not a Client', 'create it with Client.serviceAccount(), Client.namespace(), Client.linkerdIdentity() or Client.spiffe()');
    } else if (seen.has(c.key)) {
      problems.add(`${prop}[${i}]`, c.key, 'is listed twice', 'list each client once');
    } else {
      seen.add(c.key);
      out.push(c._toSpec());
    }
  });
  return out;
}

/** The caller identity props of EgressGateway. */
export interface CallerIdentityProps {
  readonly callerIdentity?: CallerIdentitySource;
  readonly unknownCallers?: UnknownCallerPolicy;
  readonly callerMetrics?: boolean;
  readonly trustDomain?: string;
  readonly linkerdInject?: boolean;
}

/**
 * Checks the gateway's caller identity props and returns the config's `callers`, or undefined
 * when `callerIdentity` is unset (the config then carries no `callers`: source None).
 */
export function callersToSpec(problems: Problems, props: CallerIdentityProps): CallersSpec | undefined {
  const source = props.callerIdentity;
  const sources = Object.values(CallerIdentitySource) as string[];
  const unknowns = Object.values(UnknownCallerPolicy) as string[];
  if (source !== undefined && !sources.includes(source)) {
    problems.add('callerIdentity', source, `is not one of ${sources.map((v) => JSON.stringify(v)).join(', ')}`, 'use a CallerIdentitySource member');
  }
  if (props.unknownCallers !== undefined && !unknowns.includes(props.unknownCallers)) {
    problems.add('unknownCallers', props.unknownCallers, `is not one of ${unknowns.map((v) => JSON.stringify(v)).join(', ')}`, 'use an UnknownCallerPolicy member');
  }
  const trustDomain = props.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  if (props.trustDomain !== undefined) {
    const p = dnsNameProblem(props.trustDomain);
    if (p) problems.add('trustDomain', props.trustDomain, `is not a trust domain: ${p.rule.replace(/^is /, '')}`, p.fix);
  }
  if (source === undefined || source === CallerIdentitySource.NONE) {
    const identifies = 'has no effect unless the gateway identifies its callers';
    const fix = 'set callerIdentity: CallerIdentitySource.LINKERD (or ISTIO), or remove it';
    if (props.unknownCallers !== undefined) problems.add('unknownCallers', props.unknownCallers, `${identifies}: with callerIdentity ${source ?? 'unset'} every caller is unknown`, fix);
    if (props.callerMetrics !== undefined) problems.add('callerMetrics', props.callerMetrics, `${identifies}: with callerIdentity ${source ?? 'unset'} every caller is "unknown"`, fix);
    if (props.trustDomain !== undefined) problems.add('trustDomain', props.trustDomain, `${identifies}: no identity is read with callerIdentity ${source ?? 'unset'}`, fix);
  }
  if (source === CallerIdentitySource.LINKERD && props.linkerdInject === false) {
    problems.add('callerIdentity', source, "needs the Linkerd sidecar, which sets l5d-client-id, but 'linkerdInject' is false",
      'remove linkerdInject: false, or choose the identity source of the mesh the gateway is in');
  }
  if (source === undefined) return undefined;
  return {
    source: source,
    trustDomain,
    unknown: props.unknownCallers ?? UnknownCallerPolicy.ALLOW_UNRESTRICTED,
    metricsLabel: props.callerMetrics ?? false,
  };
}

/** Why `uri` is not a SPIFFE ID with a workload path, or undefined. */
export function spiffeReason(uri: string): string | undefined {
  if (typeof uri !== 'string') return 'not a string';
  if (!uri.startsWith('spiffe://')) return 'must start with "spiffe://"';
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const domain = slash < 0 ? rest : rest.slice(0, slash);
  if (domain.length === 0 || !SPIFFE_TRUST_DOMAIN.test(domain)) return 'the trust domain must be lower-case letters, digits, ".", "-" and "_"';
  if (slash < 0 || slash === rest.length - 1) return 'a workload ID needs a path after the trust domain';
  if (/[?#]/.test(rest)) return 'no query or fragment is allowed';
  const segments = rest.slice(slash + 1).split('/');
  if (segments.some((s) => s.length === 0 || s === '.' || s === '..' || !SPIFFE_SEGMENT.test(s))) {
    return 'path segments must be non-empty letters, digits, ".", "-" and "_", never "." or ".."';
  }
  return undefined;
}

/** The trust domain an identity client names, when its form tells (Linkerd name or SPIFFE ID). */
export function identityTrustDomain(identity: string): { readonly mesh: 'Linkerd' | 'SPIFFE'; readonly trustDomain: string; readonly istioForm: boolean } {
  if (identity.startsWith('spiffe://')) {
    const rest = identity.slice('spiffe://'.length);
    const slash = rest.indexOf('/');
    return { mesh: 'SPIFFE', trustDomain: rest.slice(0, slash), istioForm: ISTIO_PATH.test(rest.slice(slash)) };
  }
  const m = LINKERD_IDENTITY.exec(identity);
  return { mesh: 'Linkerd', trustDomain: m ? m[3] : '', istioForm: false };
}

function checkNamespace(problems: Problems, prop: string, value: string): void {
  if (!isDnsLabel(value)) {
    problems.add(prop, value, 'is not a namespace name (a DNS-1123 label: lower-case letters, digits and "-", at most 63 characters)',
      `use e.g. ${JSON.stringify(suggest(String(value)).replace(/\./g, '-').slice(0, 63) || 'default')}`);
  }
}

function suggest(value: string): string {
  return String(value).toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '');
}
