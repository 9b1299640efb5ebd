// Istio: typed shapes of the ServiceEntry and DestinationRule subset this library emits, and the
// pure rendering of one ExternalServiceSpec into them (no constructs, no I/O).
import { isIP } from 'net';
import {
  checkGatewayOnlyFeatures, CertSourceRef, isWildcardHost, MeshRenderInput, tlsSourcesOf,
} from './render-input';
import { Problems } from '../internal/problems';
import type { AppProtocolSpec } from '../model/proxy-config';

export const ISTIO_NETWORKING_API_VERSION = 'networking.istio.io/v1';
const TARGET = 'Istio';

export type IstioPortProtocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'TCP';

const PROTOCOLS: Record<AppProtocolSpec, IstioPortProtocol> = {
  http: 'HTTP',
  http2: 'HTTP2',
  grpc: 'GRPC',
  tcp: 'TCP',
};

export interface IstioServicePort {
  readonly number: number;
  /** Unique per ServiceEntry; endpoints refer to ports by this name. */
  readonly name: string;
  readonly protocol: IstioPortProtocol;
  /** Upstream port, when it differs from `number`. */
  readonly targetPort?: number;
}

export interface IstioWorkloadEntry {
  readonly address: string;
  /** Upstream port per service port name, overriding targetPort. */
  readonly ports?: Record<string, number>;
}

/** ServiceEntry: adds the external host to the mesh's registry so sidecars route to it. */
export interface IstioServiceEntry {
  readonly apiVersion: typeof ISTIO_NETWORKING_API_VERSION;
  readonly kind: 'ServiceEntry';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly hosts: readonly string[];
    readonly exportTo?: readonly string[];
    readonly location: 'MESH_EXTERNAL';
    /** DNS: resolve the host (or endpoint names); STATIC: endpoint IPs; NONE: the address the client dialled (wildcards). */
    readonly resolution: 'DNS' | 'STATIC' | 'NONE';
    readonly ports: readonly IstioServicePort[];
    readonly endpoints?: readonly IstioWorkloadEntry[];
  };
}

/** Client-side TLS of a DestinationRule: how the sidecar originates TLS to the upstream. */
export interface IstioClientTls {
  readonly mode: 'SIMPLE' | 'MUTUAL';
  readonly sni?: string;
  /** Exact names, any one of which the server certificate must carry. */
  readonly subjectAltNames?: readonly string[];
  /** Secret in the DestinationRule's namespace with the client certificate, key and/or CA. */
  readonly credentialName?: string;
  readonly insecureSkipVerify?: boolean;
}

/** DestinationRule: per-port TLS origination towards the ServiceEntry's host. */
export interface IstioDestinationRule {
  readonly apiVersion: typeof ISTIO_NETWORKING_API_VERSION;
  readonly kind: 'DestinationRule';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly host: string;
    readonly exportTo?: readonly string[];
    readonly trafficPolicy: {
      readonly portLevelSettings: readonly { readonly port: { readonly number: number }; readonly tls: IstioClientTls }[];
    };
  };
}

export interface IstioRenderOptions {
  readonly name: string;
  readonly namespace: string;
  /** Namespaces that see the objects; undefined: Istio's default (all). */
  readonly exportTo?: readonly string[];
  /** How the caller is named in error messages. */
  readonly subject?: string;
}

export interface IstioManifests {
  readonly serviceEntry: IstioServiceEntry;
  /** Present when the service originates TLS. */
  readonly destinationRule?: IstioDestinationRule;
}

/** Istio's two spellings of a credential Secret's keys: kubernetes.io/tls style, and generic. */
const CREDENTIAL_KEYS = [
  { ca: 'ca.crt', clientCert: 'tls.crt', clientKey: 'tls.key' },
  { ca: 'cacert', clientCert: 'cert', clientKey: 'key' },
] as const;

/**
 * Renders one external service for Istio: a ServiceEntry (the client calls the declared port in
 * plaintext) and, with TLS, a DestinationRule whose port-level TLS settings make the sidecar
 * originate TLS to the target port. Whatever Istio cannot express is thrown as one Error naming
 * Istio and the field.
 */
export function renderIstio(input: MeshRenderInput, options: IstioRenderOptions): IstioManifests {
  const spec = input.service;
  const problems = new Problems(options.subject ?? `ExternalService "${spec.name}" rendered for ${TARGET}`);
  checkGatewayOnlyFeatures(spec, TARGET, problems);
  const wildcard = isWildcardHost(spec.host);

  const ports: IstioServicePort[] = spec.ports.map((p) => ({
    number: p.port,
    name: `${p.protocol}-${p.port}`,
    protocol: PROTOCOLS[p.protocol],
    ...(p.targetPort !== p.port ? { targetPort: p.targetPort } : {}),
  }));

  let resolution: 'DNS' | 'STATIC' | 'NONE' = 'DNS';
  let endpoints: IstioWorkloadEntry[] | undefined;
  if (wildcard) {
    // A wildcard has no single name to resolve: the sidecar forwards to the address the client
    // dialled, on the port it dialled.
    resolution = 'NONE';
    if (spec.endpoints.length > 0) {
      problems.add('endpoints', spec.endpoints.map((e) => e.address), 'cannot be combined with wildcard host in Istio (resolution NONE forwards to the address the client dialled)',
        'remove the endpoints, or declare an exact host');
    }
    spec.ports.forEach((p, i) => {
      if (p.port !== p.targetPort) {
        problems.add(`ports[${i}].targetPort`, p.targetPort, `differs from port ${p.port}; Istio forwards a wildcard host to the port the client dialled`,
          `have clients call port ${p.targetPort}, or declare an exact host`);
      }
    });
  } else if (spec.endpoints.length > 0) {
    resolution = spec.endpoints.every((e) => isIP(e.address) !== 0) ? 'STATIC' : 'DNS';
    endpoints = spec.endpoints.map((e) => ({
      address: e.address,
      ...(e.port !== undefined ? { ports: Object.fromEntries(ports.map((p) => [p.name, e.port!])) } : {}),
    }));
    if (new Set(spec.endpoints.map((e) => e.priority)).size > 1) {
      problems.add('endpoints[].priority', spec.endpoints.map((e) => e.priority),
        'cannot be expressed: a ServiceEntry balances over its endpoints and has no priority order (Istio fails over by locality only)',
        'give every endpoint the same priority, or send this service through the EgressGateway');
    }
  }

  const tls = spec.tls.enabled ? renderTls(input, wildcard, problems) : undefined;
  problems.throwIfAny();

  const exportTo = options.exportTo ? { exportTo: [...options.exportTo] } : {};
  const serviceEntry: IstioServiceEntry = {
    apiVersion: ISTIO_NETWORKING_API_VERSION,
    kind: 'ServiceEntry',
    metadata: { name: options.name, namespace: options.namespace },
    spec: {
      hosts: [spec.host],
      ...exportTo,
      location: 'MESH_EXTERNAL',
      resolution,
      ports,
      ...(endpoints ? { endpoints } : {}),
    },
  };
  if (!tls) return { serviceEntry };
  const destinationRule: IstioDestinationRule = {
    apiVersion: ISTIO_NETWORKING_API_VERSION,
    kind: 'DestinationRule',
    metadata: { name: options.name, namespace: options.namespace },
    spec: {
      host: spec.host,
      ...exportTo,
      trafficPolicy: { portLevelSettings: ports.map((p) => ({ port: { number: p.number }, tls })) },
    },
  };
  return { serviceEntry, destinationRule };
}

function renderTls(input: MeshRenderInput, wildcard: boolean, problems: Problems): IstioClientTls {
  const spec = input.service;
  const tls = spec.tls;
  const sources = tlsSourcesOf(input, TARGET, problems);

  // DestinationRule TLS has no protocol version fields; Istio's client defaults (TLS 1.2 and up)
  // are what TLS12/TLSAuto mean, anything else cannot be honoured.
  if (tls.minVersion !== 'TLS12' && tls.minVersion !== 'TLSAuto') {
    problems.add('tls.minVersion', tls.minVersion, 'cannot be expressed: an Istio DestinationRule has no TLS version setting (the sidecar offers TLS 1.2 and up)',
      'use TlsVersion.TLS12 or AUTO, or send this service through the EgressGateway');
  }
  if (tls.maxVersion !== 'TLSAuto') {
    problems.add('tls.maxVersion', tls.maxVersion, 'cannot be expressed: an Istio DestinationRule has no TLS version setting',
      'leave maxVersion at TlsVersion.AUTO, or send this service through the EgressGateway');
  }
  if (tls.allowRenegotiation) {
    problems.add('tls.allowRenegotiation', true, 'cannot be expressed: an Istio DestinationRule has no renegotiation setting',
      'remove it, or send this service through the EgressGateway');
  }
  if (tls.mode === 'SkipCA' || tls.mode === 'SkipSAN') {
    problems.add('tls.verification', tls.mode,
      `cannot be expressed: Istio's insecureSkipVerify skips the chain and the name together, and there is no switch for only the ${tls.mode === 'SkipCA' ? 'chain' : 'name'}`,
      tls.mode === 'SkipCA' ? 'trust the server\'s CA with caCertificate and keep verification secured, or use TlsVerification.skipAll()'
        : 'list the names the certificate does carry in subjectAltNames, or use TlsVerification.skipAll()');
  }
  tls.subjectAltNames.forEach((s, i) => {
    if (s.type === 'Prefix') {
      problems.add(`tls.subjectAltNames[${i}]`, `Prefix ${s.value}`, 'cannot be expressed: Istio matches subjectAltNames exactly',
        'list the exact names with SubjectAltName.exact()');
    }
  });

  const credentialName = credentialSecret(sources.ca, sources.clientCert, sources.clientKey, problems);
  const mutual = sources.clientCert !== undefined || sources.clientKey !== undefined;
  // Without an explicit name the sidecar would send no SNI for TCP; the proxy always sends the
  // host, so spell it out. Wildcards rely on Istio's automatic SNI from the request's host.
  const sni = tls.serverName ?? (wildcard ? undefined : spec.host);
  if (wildcard && tls.serverName === undefined && spec.ports.some((p) => p.protocol === 'tcp')) {
    problems.add('ports', spec.ports.filter((p) => p.protocol === 'tcp').map((p) => p.port),
      'are TCP on a wildcard host with TLS origination; Istio can only derive SNI from an HTTP request\'s host',
      'declare an exact host, or set tls serverName');
  }
  const exact = tls.subjectAltNames.filter((s) => s.type === 'Exact').map((s) => s.value);
  return {
    mode: mutual ? 'MUTUAL' : 'SIMPLE',
    ...(sni !== undefined ? { sni } : {}),
    ...(exact.length > 0 ? { subjectAltNames: exact } : {}),
    ...(credentialName !== undefined ? { credentialName } : {}),
    ...(tls.mode === 'SkipAll' ? { insecureSkipVerify: true } : {}),
  };
}

/**
 * Istio takes all TLS material of one DestinationRule from a single Secret (`credentialName`) in
 * the client's namespace, under fixed keys; other layouts, ConfigMaps and inline PEM cannot be read.
 */
function credentialSecret(ca: CertSourceRef | undefined, cert: CertSourceRef | undefined, key: CertSourceRef | undefined,
  problems: Problems): string | undefined {
  type Role = 'ca' | 'clientCert' | 'clientKey';
  const entries: [string, Role, CertSourceRef][] = [];
  if (ca) entries.push(['tls.caCertificate', 'ca', ca]);
  if (cert) entries.push(['tls.clientCertificate', 'clientCert', cert]);
  if (key) entries.push(['tls.clientKey', 'clientKey', key]);
  if (entries.length === 0) return undefined;
  let ok = true;
  for (const [field, , src] of entries) {
    if (src.kind !== 'Secret') {
      ok = false;
      problems.add(field, src.kind === 'Inline' ? 'inline PEM' : `ConfigMap ${src.name} key ${src.key}`,
        'cannot be read by Istio, which takes TLS material from one Secret named by credentialName',
        'put the material into one Secret under keys ca.crt / tls.crt / tls.key and use CertificateSource.fromSecret()');
    }
  }
  if (!ok) return undefined;
  const names = [...new Set(entries.map(([, , s]) => s.name))];
  if (names.length > 1) {
    problems.add('tls', entries.map(([f, , s]) => `${f}: Secret ${s.name}`), 'names several Secrets; an Istio DestinationRule reads all TLS material from one Secret (credentialName)',
      'keep the CA, client certificate and key in one Secret');
    return undefined;
  }
  const layout = CREDENTIAL_KEYS.find((k) => entries.every(([, role, s]) => k[role] === s.key));
  if (!layout) {
    problems.add('tls', entries.map(([f, , s]) => `${f}: key ${s.key}`), 'uses keys Istio does not read from a credentialName Secret',
      'use keys ca.crt, tls.crt and tls.key (or cacert, cert and key)');
    return undefined;
  }
  return names[0];
}
