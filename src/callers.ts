// Who may call what: the `Client` value (a ServiceAccount, a namespace or a mesh identity allowed
// to use an ExternalService or a route) and the gateway's choices of identity source and unknown-caller policy.
import { Chart } from 'cdk8s';
import type * as kplus from 'cdk8s-plus-28';
import { isLinkerdIdentity, spiffeReason } from './internal/caller-identity';
import { Problems } from './internal/problems';
import { clientKey } from './model/client-key';
import { dnsLabelProblem, dnsSubdomainProblem, suggestDnsSubdomain } from './model/names';
import type { ClientSpec } from './model/proxy-config';

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
    const nameProblem = dnsSubdomainProblem(name, {
      what: 'a ServiceAccount name', fix: `use the ServiceAccount's metadata.name, e.g. ${JSON.stringify(suggestDnsSubdomain(String(name)) || 'default')}`,
    });
    if (nameProblem) problems.add('name', name, nameProblem.rule, nameProblem.fix);
    problems.throwIfAny();
    return new Client({ serviceAccount: { namespace, name } });
  }

  /** Every workload of the namespace `name`, whatever its ServiceAccount. */
  public static namespace(name: string): Client {
    const problems = new Problems('Client.namespace()');
    checkNamespace(problems, 'name', name);
    problems.throwIfAny();
    return new Client({ namespace: name });
  }

  /**
   * One Linkerd identity, exactly as `l5d-client-id` carries it:
   * `<serviceaccount>.<namespace>.serviceaccount.identity.linkerd.<trust domain>`. Only for a
   * gateway whose `callerIdentity` is `CallerIdentitySource.LINKERD`, in its trust domain.
   * @see https://linkerd.io/2-edge/features/automatic-mtls/
   */
  public static linkerdIdentity(identity: string): Client {
    const problems = new Problems('Client.linkerdIdentity()');
    if (typeof identity !== 'string' || !isLinkerdIdentity(identity)) {
      problems.add('identity', identity,
        'is not a Linkerd identity (<serviceaccount>.<namespace>.serviceaccount.identity.linkerd.<trust domain>, lower case, no wildcards)',
        'use e.g. "checkout.shop.serviceaccount.identity.linkerd.cluster.local", or Client.namespace() for every account of a namespace');
    }
    problems.throwIfAny();
    return new Client({ identity });
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
    return new Client({ identity: uri });
  }

  /**
   * Stable key of this client: `sa:<namespace>/<name>`, `ns:<namespace>` or `id:<identity>`. The
   * gateway's `caller` metric label takes these values (with `callerMetrics`).
   */
  public readonly key: string;

  private readonly spec: ClientSpec;

  private constructor(spec: ClientSpec) {
    this.spec = spec;
    this.key = clientKey(spec);
  }

  /** @internal the client as the proxy config carries it. */
  public _toSpec(): ClientSpec {
    const s = this.spec;
    if (s.serviceAccount) return { serviceAccount: { ...s.serviceAccount } };
    return { ...s };
  }
}

function checkNamespace(problems: Problems, prop: string, value: string): void {
  const p = dnsLabelProblem(value, { what: 'a namespace', fallback: 'default' });
  if (p) problems.add(prop, value, p.rule, p.fix);
}
