// Checks of a whole proxy config's caller policy, at synth time: clients the proxy could never
// match (no identity source, another mesh's identity form, another trust domain), clients on
// traffic that carries no identity, and listeners an unknown-caller Deny would close entirely.
import { identityTrustDomain } from './caller-identity';
import type { Problems } from './problems';
import { clientKey } from '../model/client-key';
import type { ClientSpec, ProxyConfig, RouteKindSpec } from '../model/proxy-config';

/** How a service or route of the config is named in messages (its construct path when known). */
export type DescribeOwner = (kind: 'ExternalService' | RouteKindSpec, name: string, namespace?: string) => string;

/** Adds to `problems` every caller-policy problem of `config`, naming services and routes with `describe`. */
export function checkCallerPolicy(config: ProxyConfig, problems: Problems, describe: DescribeOwner): void {
  const callers = config.callers;
  const source = callers?.source ?? 'None';
  const forwardProxy = config.listeners.http.forwardProxy;
  const owners: Array<{ what: string; clients: readonly ClientSpec[] }> = [];
  for (const s of config.externalServices) {
    if (s.clients) owners.push({ what: `ExternalService "${describe('ExternalService', s.name)}"`, clients: s.clients });
  }
  for (const r of config.routes) {
    if (r.clients) owners.push({ what: `${r.kind} "${describe(r.kind, r.name, r.namespace)}"`, clients: r.clients });
  }

  for (const o of owners) {
    if (source === 'None') {
      problems.add('clients', o.clients.map(clientKey), `of ${o.what} can never match: the gateway identifies no callers (callerIdentity ${callers ? 'None' : 'unset'}), so every caller is unknown and refused`,
        'set callerIdentity on the EgressGateway (CallerIdentitySource.LINKERD or ISTIO), or remove clients');
      continue;
    }
    for (const c of o.clients) {
      if (c.identity === undefined) continue;
      const id = identityTrustDomain(c.identity);
      if (source === 'Istio' && id.mesh !== 'SPIFFE') {
        problems.add('clients', clientKey(c), `of ${o.what} is a Linkerd identity, but the gateway reads Istio's x-forwarded-client-cert, which carries SPIFFE IDs`,
          'use Client.spiffe("spiffe://<trust domain>/ns/<namespace>/sa/<account>") or Client.serviceAccountNamed()');
      } else if (source === 'Linkerd' && id.mesh !== 'Linkerd') {
        problems.add('clients', clientKey(c), `of ${o.what} is a SPIFFE ID, but the gateway reads Linkerd's l5d-client-id, which carries Linkerd identities`,
          'use Client.linkerdIdentity("<account>.<namespace>.serviceaccount.identity.linkerd.<trust domain>") or Client.serviceAccountNamed()');
      } else if (id.trustDomain !== callers!.trustDomain) {
        problems.add('clients', clientKey(c), `of ${o.what} is in trust domain "${id.trustDomain}", but the gateway's is "${callers!.trustDomain}"; an identity from another trust domain is an unknown caller`,
          `name an identity in "${callers!.trustDomain}", or set the gateway's trustDomain to "${id.trustDomain}"`);
      } else if (source === 'Istio' && !id.istioForm) {
        problems.add('clients', clientKey(c), `of ${o.what} is not an Istio workload identity (spiffe://<trust domain>/ns/<namespace>/sa/<account>), so no Istio caller carries it`,
          'use the form Istio issues, or Client.serviceAccountNamed()');
      }
    }
  }

  if (source === 'None') return;
  // Tunnels without headers: the caller is unknown there, so clients can only match on CONNECT.
  for (const r of config.routes) {
    if (!r.clients || (r.kind !== 'TLSRoute' && r.kind !== 'TCPRoute') || forwardProxy) continue;
    problems.add('clients', r.clients.map(clientKey),
      `of ${r.kind} "${describe(r.kind, r.name, r.namespace)}" can never match: without 'forwardProxy' its traffic arrives as TLS passthrough or TCP listener connections, which carry no caller identity`,
      'turn forwardProxy on so callers use CONNECT (which carries their identity), or remove clients and restrict callers with NetworkPolicies (allowFrom)');
  }
  for (const s of config.externalServices) {
    if (!s.clients || forwardProxy || s.ports.some((p) => p.protocol !== 'tcp')) continue;
    problems.add('clients', s.clients.map(clientKey),
      `of ExternalService "${describe('ExternalService', s.name)}" can never match: its ports are all TCP, whose listener connections carry no caller identity`,
      'turn forwardProxy on so callers use CONNECT (which carries their identity), or remove clients');
  }
  if (callers!.unknown === 'Deny') {
    if (config.listeners.tls) {
      problems.add('unknownCallers', 'Deny', "would refuse every connection of the TLS passthrough listener ('tlsPassthrough'): TLS passthrough carries no caller identity",
        'use UnknownCallerPolicy.ALLOW_UNRESTRICTED (unknown callers then reach only what declares no clients), or turn tlsPassthrough off');
    }
    for (const l of config.listeners.tcp) {
      problems.add('unknownCallers', 'Deny', `would refuse every connection of the TCP listener for ExternalService "${describe('ExternalService', l.externalService)}" port ${l.servicePort}: TCP listener connections carry no caller identity`,
        'use UnknownCallerPolicy.ALLOW_UNRESTRICTED, or reach the service through CONNECT (forwardProxy) instead of a TCP port');
    }
  }
}
