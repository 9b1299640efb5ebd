// Kuma: typed shapes of the MeshExternalService and HostnameGenerator subset this library emits,
// and the pure rendering of one ExternalServiceSpec into them (no constructs, no I/O).
import {
  checkGatewayOnlyFeatures, CertSourceRef, isWildcardHost, MeshRenderInput, tlsSourcesOf,
} from './render-input';
import { Problems } from '../internal/problems';
import { dnsLabelProblem, isDnsLabel } from '../model/names';
import type { AppProtocolSpec, ExternalServicePortSpec, TlsVersionSpec, VerificationModeSpec } from '../model/proxy-config';

export const KUMA_API_VERSION = 'kuma.io/v1alpha1';
/** Label that puts a Kuma resource into a mesh. */
export const KUMA_MESH_LABEL = 'kuma.io/mesh';
/** Label this library puts on every MeshExternalService so its HostnameGenerator can select it. */
export const KUMA_SERVICE_LABEL = 'egress.cdk8s.io/external-service';
export const DEFAULT_KUMA_MESH = 'default';
export const DEFAULT_KUMA_SYSTEM_NAMESPACE = 'kuma-system';
/** The template of Kuma's own examples: `<name>.extsvc.mesh.local`. */
export const DEFAULT_KUMA_HOSTNAME_TEMPLATE = '{{ .DisplayName }}.extsvc.mesh.local';
/** Kuma maps endpoint priorities to Envoy priority levels, 0 to 128. */
const KUMA_MAX_PRIORITY = 128;
const TARGET = 'Kuma';

export interface KumaObjectMeta {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
}

/**
 * One of `secret` (the name of a Kuma Secret: type `system.kuma.io/secret`, in the control
 * plane's namespace, payload under key `value`) or `inlineString` (PEM text in the object).
 */
export interface KumaDataSource {
  readonly secret?: string;
  readonly inlineString?: string;
}

export interface KumaTls {
  /** The sidecar originates TLS to the endpoints. */
  readonly enabled: true;
  readonly allowRenegotiation: boolean;
  readonly version: { readonly min: TlsVersionSpec; readonly max: TlsVersionSpec };
  readonly verification: {
    readonly mode: VerificationModeSpec;
    /** SNI sent and name checked, instead of the endpoint address. */
    readonly serverName?: string;
    readonly subjectAltNames?: readonly { readonly type: 'Exact' | 'Prefix'; readonly value: string }[];
    readonly caCert?: KumaDataSource;
    readonly clientCert?: KumaDataSource;
    readonly clientKey?: KumaDataSource;
  };
}

export interface KumaEndpoint {
  /** DNS name or IP address. */
  readonly address: string;
  readonly port: number;
  /** Envoy priority level; lower is tried first. Omitted means 0. */
  readonly priority?: number;
}

/** MeshExternalService: a destination outside the mesh, reached through a generated hostname. */
export interface KumaMeshExternalService {
  readonly apiVersion: typeof KUMA_API_VERSION;
  readonly kind: 'MeshExternalService';
  readonly metadata: KumaObjectMeta;
  readonly spec: {
    /** What the sidecar intercepts: the generated hostname (VIP) at `port`, spoken in `protocol`. */
    readonly match: { readonly type: 'HostnameGenerator'; readonly port: number; readonly protocol: AppProtocolSpec };
    readonly endpoints: readonly KumaEndpoint[];
    readonly tls?: KumaTls;
  };
}

/** HostnameGenerator: gives the MeshExternalServices it selects a DNS name and a VIP. */
export interface KumaHostnameGenerator {
  readonly apiVersion: typeof KUMA_API_VERSION;
  readonly kind: 'HostnameGenerator';
  readonly metadata: KumaObjectMeta;
  readonly spec: {
    readonly selector: { readonly meshExternalService: { readonly matchLabels: Record<string, string> } };
    /** Go template; `{{ .DisplayName }}` is the MeshExternalService's name. */
    readonly template: string;
  };
}

export interface KumaRenderOptions {
  /** Base name of the objects (one MeshExternalService per port; see renderKuma). */
  readonly name: string;
  /** Kuma's system namespace, where Kuma requires MeshExternalServices to live. */
  readonly namespace: string;
  readonly mesh: string;
  /** HostnameGenerator template; undefined renders no generator (the platform has one). */
  readonly hostnameTemplate?: string;
  /** How the caller is named in error messages, e.g. `KumaExternalService "app/chart/github"`. */
  readonly subject?: string;
}

export interface KumaManifests {
  readonly meshExternalServices: readonly KumaMeshExternalService[];
  readonly hostnameGenerator?: KumaHostnameGenerator;
}

/**
 * Renders one external service for Kuma.
 *
 * A MeshExternalService matches exactly one port, so a service with several ports becomes one
 * object per port, named `<name>-<port>`, each with its own hostname (Kuma's own examples declare
 * plaintext and TLS httpbin.org as two services); a single-port service keeps `<name>`. Whatever Kuma
 * cannot express is collected and thrown as one Error naming Kuma and the field.
 */
export function renderKuma(input: MeshRenderInput, options: KumaRenderOptions): KumaManifests {
  const spec = input.service;
  const problems = new Problems(options.subject ?? `ExternalService "${spec.name}" rendered for ${TARGET}`);

  if (isWildcardHost(spec.host)) {
    problems.add('host', spec.host, 'is a wildcard; a Kuma MeshExternalService sends traffic to concrete endpoints and cannot follow the name a client asked for',
      'declare one ExternalService per host, or use Kuma\'s MeshPassthrough (wildcard domains) for this traffic');
  }
  checkGatewayOnlyFeatures(spec, TARGET, problems);

  const names = spec.ports.length === 1 ? [options.name] : spec.ports.map((p) => `${options.name}-${p.port}`);
  // Each name becomes {{ .DisplayName }}, the first label of the generated hostname, and the base
  // name is the selector label's value: both must be DNS labels.
  const badName = [options.name, ...names].find((n) => !isDnsLabel(n));
  if (badName !== undefined) {
    const p = dnsLabelProblem(badName, { what: 'the first label of the hostname Kuma generates', fix: 'give the ExternalService a shorter lower-case name' })!;
    problems.add('name', badName, p.rule, p.fix);
  }

  spec.endpoints.forEach((e, i) => {
    if (!Number.isInteger(e.priority) || e.priority < 0 || e.priority > KUMA_MAX_PRIORITY) {
      problems.add(`endpoints[${i}].priority`, e.priority, `is outside Kuma's priority levels 0..${KUMA_MAX_PRIORITY}`, 'use a priority between 0 and 128');
    }
  });
  const tls = spec.tls.enabled ? renderTls(input, problems) : undefined;
  problems.throwIfAny();

  const labels = { [KUMA_MESH_LABEL]: options.mesh, [KUMA_SERVICE_LABEL]: options.name };
  const meshExternalServices = spec.ports.map((port, i): KumaMeshExternalService => ({
    apiVersion: KUMA_API_VERSION,
    kind: 'MeshExternalService',
    metadata: { name: names[i], namespace: options.namespace, labels: { ...labels } },
    spec: {
      match: { type: 'HostnameGenerator', port: port.port, protocol: port.protocol },
      endpoints: renderEndpoints(input, port, spec.endpoints.some((e) => e.priority !== 0)),
      ...(tls ? { tls } : {}),
    },
  }));

  const hostnameGenerator: KumaHostnameGenerator | undefined = options.hostnameTemplate === undefined ? undefined : {
    apiVersion: KUMA_API_VERSION,
    kind: 'HostnameGenerator',
    metadata: { name: options.name, namespace: options.namespace, labels: { [KUMA_SERVICE_LABEL]: options.name } },
    spec: {
      selector: { meshExternalService: { matchLabels: { [KUMA_SERVICE_LABEL]: options.name } } },
      template: options.hostnameTemplate,
    },
  };
  return { meshExternalServices, ...(hostnameGenerator ? { hostnameGenerator } : {}) };
}

function renderEndpoints(input: MeshRenderInput, port: ExternalServicePortSpec, withPriority: boolean): KumaEndpoint[] {
  const spec = input.service;
  if (spec.endpoints.length === 0) return [{ address: spec.host, port: port.targetPort }];
  return spec.endpoints.map((e) => ({
    address: e.address,
    port: e.port ?? port.targetPort,
    ...(withPriority ? { priority: e.priority } : {}),
  }));
}

function renderTls(input: MeshRenderInput, problems: Problems): KumaTls {
  const spec = input.service;
  const tls = spec.tls;
  const sources = tlsSourcesOf(input, TARGET, problems);
  // The proxy sends the service's host as SNI whatever address it dials; Kuma sends the endpoint
  // address, so endpoints elsewhere need the host spelt out to keep SNI and name checks the same.
  const endpointsElsewhere = spec.endpoints.some((e) => e.address !== spec.host);
  const serverName = tls.serverName ?? (endpointsElsewhere && !isWildcardHost(spec.host) ? spec.host : undefined);
  const caCert = dataSource('tls.caCertificate', sources.ca, problems);
  const clientCert = dataSource('tls.clientCertificate', sources.clientCert, problems);
  const clientKey = dataSource('tls.clientKey', sources.clientKey, problems);
  return {
    enabled: true,
    allowRenegotiation: tls.allowRenegotiation,
    version: { min: tls.minVersion, max: tls.maxVersion },
    verification: {
      mode: tls.mode,
      ...(serverName !== undefined ? { serverName } : {}),
      ...(tls.subjectAltNames.length > 0 ? { subjectAltNames: tls.subjectAltNames.map((s) => ({ type: s.type, value: s.value })) } : {}),
      ...(caCert ? { caCert } : {}),
      ...(clientCert ? { clientCert } : {}),
      ...(clientKey ? { clientKey } : {}),
    },
  };
}

/**
 * Kuma reads TLS material from its own Secrets (type `system.kuma.io/secret`, in the control
 * plane's namespace, payload under key `value`) or inline; it cannot read ConfigMaps or other keys.
 */
function dataSource(field: string, source: CertSourceRef | undefined, problems: Problems): KumaDataSource | undefined {
  if (!source) return undefined;
  switch (source.kind) {
    case 'Inline':
      return { inlineString: source.pem };
    case 'Secret':
      if (source.key !== 'value') {
        problems.add(field, `Secret ${source.name} key ${source.key}`,
          'cannot be read by Kuma, which takes the whole payload of a Kuma Secret (type system.kuma.io/secret, in the Kuma system namespace) from its key "value"',
          `store the PEM under key "value" of a Kuma Secret named "${source.name}" and use CertificateSource.fromSecret("${source.name}", "value")`);
        return undefined;
      }
      return { secret: source.name };
    case 'ConfigMap':
      problems.add(field, `ConfigMap ${source.name} key ${source.key}`, 'cannot be read by Kuma, which reads TLS material from Kuma Secrets or inline text only',
        'use CertificateSource.fromSecret(name, "value") with a Kuma Secret, or CertificateSource.fromInline(pem) for a CA');
      return undefined;
    default:
      return undefined;
  }
}
