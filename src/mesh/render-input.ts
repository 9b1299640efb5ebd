// What every mesh renderer takes: the model's ExternalServiceSpec plus what only Kubernetes knows
// (where TLS material lives), and the checks all meshes share for gateway-only features.
import type { ExternalService } from '../external-service';
import type { Problems } from '../internal/problems';
import { clientKey } from '../model/client-key';
import { DEFAULT_POOL } from '../model/defaults';
import type { ExternalServiceSpec } from '../model/proxy-config';
import type { CertificateSource } from '../tls';

/**
 * Where a certificate or key lives, in Kubernetes terms. The model only holds the file path
 * inside the gateway pods, which means nothing to a mesh control plane.
 */
export interface CertSourceRef {
  readonly kind: 'Secret' | 'ConfigMap' | 'Inline';
  /** Secret or ConfigMap name. */
  readonly name?: string;
  /** Data key inside the Secret or ConfigMap. */
  readonly key?: string;
  /** PEM text (Inline only). */
  readonly pem?: string;
}

export interface TlsSourceRefs {
  readonly ca?: CertSourceRef;
  readonly clientCert?: CertSourceRef;
  readonly clientKey?: CertSourceRef;
}

export interface MeshRenderInput {
  readonly service: ExternalServiceSpec;
  /**
   * Kubernetes sources of the TLS material. When absent, an inline CA is taken from
   * `service.tls.caPem`, and a mounted file (caFile, clientCertFile) is an error because its
   * Secret cannot be named.
   */
  readonly tlsSources?: TlsSourceRefs;
}

export function isWildcardHost(host: string): boolean {
  return host.startsWith('*.');
}

/** The TLS sources, falling back to what the model alone can tell. */
export function tlsSourcesOf(input: MeshRenderInput, target: string, problems: Problems): TlsSourceRefs {
  if (input.tlsSources) return input.tlsSources;
  const tls = input.service.tls;
  const fileOnly = (field: string, file: string | undefined) => {
    if (file !== undefined) {
      problems.add(field, file, `is a file inside the gateway pods, which ${target} cannot read`,
        'bind the renderer to an ExternalService so the Secret or ConfigMap behind the file is known');
    }
  };
  if (tls.enabled) {
    fileOnly('tls.caCertificate', tls.caFile);
    fileOnly('tls.clientCertificate', tls.clientCertFile);
    fileOnly('tls.clientKey', tls.clientKeyFile);
  }
  return tls.caPem !== undefined ? { ca: { kind: 'Inline', pem: tls.caPem } } : {};
}

/**
 * Retries, per-service timeouts, injected headers, pool tuning and clients are enforced by the egress
 * gateway's proxy. A mesh resource that routes around the gateway would silently lose them, so
 * each one is an error for a mesh target rather than a quiet drop.
 */
export function checkGatewayOnlyFeatures(spec: ExternalServiceSpec, target: string, problems: Problems): void {
  const fix = `remove it from this ExternalService, or send this service through the EgressGateway instead of ${target}`;
  if (spec.retry !== undefined && spec.retry.maxRetries > 0) {
    problems.add('retry', { maxRetries: spec.retry.maxRetries }, `is enforced by the egress gateway; ${target} has no retry field for an external service`, fix);
  }
  const timeouts = Object.entries(spec.timeouts ?? {}).filter(([, v]) => v !== undefined);
  if (timeouts.length > 0) {
    problems.add('timeouts', Object.fromEntries(timeouts), `are enforced by the egress gateway; ${target} has no timeout field for an external service`, fix);
  }
  if (spec.injectHeaders.length > 0) {
    problems.add('injectHeaders', spec.injectHeaders.map((h) => h.name),
      `are added by the egress gateway from mounted Secrets; ${target} cannot inject request headers into an external service`, fix);
  }
  if (spec.clients !== undefined) {
    problems.add('clients', spec.clients.map(clientKey),
      `are enforced by the egress gateway, which knows the caller; ${target} would let every caller reach the service`, fix);
  }
  if (spec.pool.maxConnections !== DEFAULT_POOL.maxConnections || spec.pool.keepAliveTimeoutMs !== DEFAULT_POOL.keepAliveTimeoutMs) {
    problems.add('pool', spec.pool, `tunes the egress gateway's connection pool; ${target} has no equivalent on an external service`, fix);
  }
}

/** The render input of a bound ExternalService: its spec plus the Kubernetes sources of its TLS material. */
export function renderInputOf(service: ExternalService): MeshRenderInput {
  const tls = service.tls;
  return {
    service: service._toSpec(),
    tlsSources: tls.enabled ? {
      ca: certRef(tls.caCertificate),
      clientCert: certRef(tls.clientCertificate),
      clientKey: certRef(tls.clientKey),
    } : {},
  };
}

function certRef(source: CertificateSource | undefined): CertSourceRef | undefined {
  if (!source) return undefined;
  return { kind: source.type as CertSourceRef['kind'], name: source.name, key: source.key, pem: source.pem };
}
