// The forms of mesh identities the gateway reads: Linkerd names and SPIFFE IDs, and the trust
// domain each names. Shared by the Client factories and the gateway's caller-policy checks.

/** The trust domain Linkerd and Istio use unless installed with another one. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

// SPIFFE ID (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md): a trust domain of
// lower-case letters, digits, '.', '-' and '_', then a path of non-empty segments of letters,
// digits, '.', '-' and '_', none of them '.' or '..'.
const SPIFFE_TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SPIFFE_SEGMENT = /^[A-Za-z0-9._-]+$/;
const LINKERD_IDENTITY = /^([^.]+)\.([^.]+)\.serviceaccount\.identity\.linkerd\.(.+)$/;
const ISTIO_PATH = /^\/ns\/([^/]+)\/sa\/([^/]+)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** `<account>.<namespace>.serviceaccount.identity.linkerd.<trust domain>`, lower case, no wildcard. */
export function isLinkerdIdentity(identity: string): boolean {
  return typeof identity === 'string' && identity.length <= 253 && DNS_SUBDOMAIN.test(identity) && LINKERD_IDENTITY.test(identity);
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

