// Linkerd authorization for the gateway's HTTP port, derived from the proxy config alone: which
// callers the proxy's rules could ever allow there, and the policy.linkerd.io Server,
// MeshTLSAuthentication and AuthorizationPolicy objects that admit exactly those at the mesh.
import { LINKERD_POLICY_GROUP } from './linkerd';
import { clientKey } from '../model/client-key';
import type { ClientSpec, ProxyConfig, RouteSpec } from '../model/proxy-config';

export const SERVER_API_VERSION = 'policy.linkerd.io/v1beta3';
export const AUTHORIZATION_API_VERSION = 'policy.linkerd.io/v1alpha1';

/**
 * Who the proxy could let through on its HTTP listener (requests and CONNECT tunnels):
 * - anyone: something is open to every caller and unknown callers may use it
 *   (UnknownCallerPolicy AllowUnrestricted), so unmeshed callers too;
 * - meshed: something is open to every caller, but unknown callers are refused (Deny), so only
 *   callers with a mesh identity;
 * - clients: everything declares clients, so only the union of the declared clients (an empty
 *   union: nobody, when nothing at all is allowed).
 */
export type CallerAdmission =
  | { readonly kind: 'anyone' }
  | { readonly kind: 'meshed' }
  | { readonly kind: 'clients'; readonly clients: readonly ClientSpec[] };

/**
 * The callers the proxy could allow on its HTTP port under `config`. A superset is always safe
 * (the proxy still decides per request); this errs on the open side wherever the exact answer
 * would need the request:
 * - the parent's trafficPolicy Allow opens every undeclared host;
 * - an ExternalService without clients is open (reachable as a declared service or by a route);
 * - a route without clients is open unless every hostname it matches belongs to an
 *   ExternalService that declares clients (whose consent the request then also needs); a route
 *   without hostnames (or a TCPRoute) matches any host, so it is open.
 */
export function httpCallerAdmission(config: ProxyConfig): CallerAdmission {
  const unknownAllowed = (config.callers?.unknown ?? 'AllowUnrestricted') === 'AllowUnrestricted';
  const open: CallerAdmission = unknownAllowed ? { kind: 'anyone' } : { kind: 'meshed' };
  if (config.parent.trafficPolicy === 'Allow') return open;
  if (config.externalServices.some((s) => !s.clients)) return open;
  const guardedHosts = config.externalServices.map((s) => s.host);
  if (config.routes.some((r) => !r.clients && !everyHostGuarded(r, guardedHosts))) return open;

  const union = new Map<string, ClientSpec>();
  for (const list of [...config.externalServices.map((s) => s.clients), ...config.routes.map((r) => r.clients)]) {
    for (const c of list ?? []) union.set(clientKey(c), c);
  }
  return { kind: 'clients', clients: [...union.values()] };
}

/** Every ExternalService here declares clients (checked before), so a covered host is guarded. */
function everyHostGuarded(route: RouteSpec, hosts: readonly string[]): boolean {
  if (route.hostnames.length === 0) return false;
  return route.hostnames.every((h) => hosts.some((s) => covers(s, h)));
}

/** Does ExternalService host `service` take every request for route hostname `name`? */
function covers(service: string, name: string): boolean {
  if (service === name) return true;
  if (!service.startsWith('*.')) return false;
  const domain = service.slice(1); // '.example.com'
  // '*.example.com' takes 'a.example.com' and '*.a.example.com', never 'example.com' itself.
  return name.endsWith(domain) && name.length > domain.length;
}

/** The shape of one policy.linkerd.io object this module writes. */
export interface LinkerdPolicyObject {
  readonly apiVersion: string;
  readonly kind: 'Server' | 'MeshTLSAuthentication' | 'AuthorizationPolicy';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: Record<string, unknown>;
}

export interface LinkerdAuthorizationOptions {
  /** Prefix of every object's name (the gateway's name). */
  readonly name: string;
  readonly namespace: string;
  /** Labels that select the gateway's pods. */
  readonly podSelector: Readonly<Record<string, string>>;
  /** Container port of the HTTP listener. */
  readonly port: number;
}

/**
 * The Linkerd objects that admit `httpCallerAdmission(config)` to the HTTP port and nobody else.
 *
 * A Server on the port (its pods' other ports, the admin port with /live, /ready and /metrics,
 * keep their default policy, so kubelet probes and Prometheus scrapes are unaffected). Its
 * `accessPolicy`, what traffic no authorization matches gets, is `all-unauthenticated` when
 * anyone may call, `audit` when the parent only reports denials (ReportOnly: the mesh lets it
 * through and flags it, as the proxy does), and `deny` otherwise. Then, when the admission is
 * not "anyone", one AuthorizationPolicy per MeshTLSAuthentication (several authentications in one
 * policy would all be required; separate policies are alternatives):
 * - `<name>-callers-accounts`: identityRefs, a ServiceAccount per ServiceAccount client and a
 *   Namespace (every account of it) per namespace client;
 * - `<name>-callers-identities`: identities, the identity clients, or `*` (every meshed
 *   identity) when the admission is "meshed".
 * An empty union renders the Server alone: nothing could be allowed, and the mesh refuses all.
 *
 * @see https://linkerd.io/2-edge/reference/authorization-policy/
 */
export function renderLinkerdAuthorization(config: ProxyConfig, options: LinkerdAuthorizationOptions): LinkerdPolicyObject[] {
  const admission = httpCallerAdmission(config);
  const reportOnly = config.parent.mode === 'ReportOnly';
  const meta = (suffix: string) => ({ name: `${options.name}-${suffix}`, namespace: options.namespace });
  const server: LinkerdPolicyObject = {
    apiVersion: SERVER_API_VERSION,
    kind: 'Server',
    metadata: meta('http'),
    spec: {
      podSelector: { matchLabels: { ...options.podSelector } },
      port: options.port,
      accessPolicy: admission.kind === 'anyone' ? 'all-unauthenticated' : reportOnly ? 'audit' : 'deny',
    },
  };
  const out: LinkerdPolicyObject[] = [server];
  if (admission.kind === 'anyone') return out;

  const refs: Array<Record<string, string>> = [];
  const identities: string[] = [];
  if (admission.kind === 'meshed') {
    identities.push('*');
  } else {
    for (const c of admission.clients) {
      if (c.serviceAccount) refs.push({ kind: 'ServiceAccount', name: c.serviceAccount.name, namespace: c.serviceAccount.namespace });
      else if (c.namespace !== undefined) refs.push({ kind: 'Namespace', name: c.namespace });
      else if (c.identity !== undefined) identities.push(c.identity);
    }
  }
  const authorize = (suffix: string, spec: Record<string, unknown>) => {
    const authn: LinkerdPolicyObject = { apiVersion: AUTHORIZATION_API_VERSION, kind: 'MeshTLSAuthentication', metadata: meta(suffix), spec };
    const policy: LinkerdPolicyObject = {
      apiVersion: AUTHORIZATION_API_VERSION,
      kind: 'AuthorizationPolicy',
      metadata: meta(suffix),
      spec: {
        targetRef: { group: LINKERD_POLICY_GROUP, kind: 'Server', name: server.metadata.name },
        requiredAuthenticationRefs: [{ group: LINKERD_POLICY_GROUP, kind: 'MeshTLSAuthentication', name: authn.metadata.name }],
      },
    };
    out.push(authn, policy);
  };
  if (refs.length > 0) authorize('callers-accounts', { identityRefs: refs });
  if (identities.length > 0) authorize('callers-identities', { identities });
  return out;
}
