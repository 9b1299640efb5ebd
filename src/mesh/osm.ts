// Open Service Mesh: typed shapes of the Egress policy and MeshConfig subset this library emits,
// and the pure rendering of one ExternalServiceSpec into an Egress (no constructs, no I/O).
import { isIP } from 'net';
import { checkGatewayOnlyFeatures, MeshRenderInput } from './render-input';
import { Problems } from '../internal/problems';
import { DEFAULT_TLS } from '../model/defaults';
import type { ExternalServiceSpec } from '../model/proxy-config';

export const OSM_POLICY_API_VERSION = 'policy.openservicemesh.io/v1alpha1';
export const OSM_CONFIG_API_VERSION = 'config.openservicemesh.io/v1alpha2';
/** OSM compares `matches[].apiGroup` with group/version, so the version is part of the value. */
export const SMI_SPECS_API_GROUP = 'specs.smi-spec.io/v1alpha4';
export const DEFAULT_OSM_NAMESPACE = 'osm-system';
/** The MeshConfig osm-controller reads, by name. */
export const DEFAULT_OSM_MESH_CONFIG_NAME = 'osm-mesh-config';
const TARGET = 'OSM';

/** Egress port protocols OSM acts on: HTTP by Host header, HTTPS by SNI, TCP by IP range and port. */
export type OsmEgressProtocol = 'http' | 'https' | 'tcp';

export interface OsmEgressSource {
  readonly kind: 'ServiceAccount';
  readonly name: string;
  readonly namespace: string;
}

/** Egress: lets the listed ServiceAccounts reach the hosts on the ports, straight from their sidecars. */
export interface OsmEgress {
  readonly apiVersion: typeof OSM_POLICY_API_VERSION;
  readonly kind: 'Egress';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly sources: readonly OsmEgressSource[];
    /** Matched against the Host header (http) or SNI (https); ignored for tcp. */
    readonly hosts?: readonly string[];
    /** IPv4 CIDRs the destination address must fall in (tcp and https). */
    readonly ipAddresses?: readonly string[];
    readonly ports: readonly { readonly number: number; readonly protocol: OsmEgressProtocol }[];
    /** HTTPRouteGroups in the Egress's namespace that narrow http ports to their paths and methods. */
    readonly matches?: readonly { readonly apiGroup: string; readonly kind: 'HTTPRouteGroup'; readonly name: string }[];
  };
}

/** The two MeshConfig switches that govern egress; the rest of the MeshConfig is left to OSM. */
export interface OsmMeshConfig {
  readonly apiVersion: typeof OSM_CONFIG_API_VERSION;
  readonly kind: 'MeshConfig';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly traffic: { readonly enableEgress: boolean };
    readonly featureFlags: { readonly enableEgressPolicy: boolean };
  };
}

export interface OsmEgressRenderOptions {
  readonly name: string;
  readonly namespace: string;
  /** ServiceAccounts allowed to reach the service. */
  readonly sources: readonly { readonly name: string; readonly namespace: string }[];
  /** Names of HTTPRouteGroups (in `namespace`) that narrow the http ports. */
  readonly httpRouteGroups?: readonly string[];
  /** How the caller is named in error messages. */
  readonly subject?: string;
}

/**
 * Renders one external service as an OSM Egress policy.
 *
 * OSM does not originate TLS: its sidecars pass egress traffic through to the address and port the
 * client dialled. A service the gateway would reach over TLS is therefore rendered as the client
 * speaking TLS itself: its target port with protocol `https`, matched by SNI. Everything the
 * gateway would do on the client's behalf (verification settings, client certificates, port
 * remapping, endpoints) has no OSM form and is an error.
 */
export function renderOsmEgress(input: MeshRenderInput, options: OsmEgressRenderOptions): OsmEgress {
  const spec = input.service;
  const problems = new Problems(options.subject ?? `ExternalService "${spec.name}" rendered for ${TARGET}`);
  checkGatewayOnlyFeatures(spec, TARGET, problems);
  if (options.sources.length === 0) {
    problems.add('sources', [], 'is empty; an OSM Egress policy applies to the ServiceAccounts it lists and to nothing else',
      'list the ServiceAccounts of the workloads that call this service');
  }

  const ports: { number: number; protocol: OsmEgressProtocol }[] = [];
  const add = (number: number, protocol: OsmEgressProtocol) => {
    if (!ports.some((p) => p.number === number && p.protocol === protocol)) ports.push({ number, protocol });
  };
  spec.ports.forEach((p, i) => {
    if (spec.tls.enabled) {
      add(p.targetPort, 'https');
    } else if (p.port !== p.targetPort) {
      problems.add(`ports[${i}]`, { port: p.port, targetPort: p.targetPort },
        'maps one port to another, but OSM passes plaintext traffic through to the port the client dialled',
        `have clients call port ${p.targetPort} directly (port: ${p.targetPort}), or send this service through the EgressGateway`);
    } else {
      // HTTP/2 and gRPC ride OSM's http ports: the listener detects the codec and the upstream
      // cluster speaks the downstream protocol.
      add(p.port, p.protocol === 'tcp' ? 'tcp' : 'http');
    }
  });
  if (spec.tls.enabled) checkTlsIsClientSide(spec, problems);

  // OSM ignores hosts for tcp and matches the destination IP range instead; without addresses a
  // tcp port would open every destination on that port.
  const tcp = ports.some((p) => p.protocol === 'tcp');
  let ipAddresses: string[] | undefined;
  if (spec.endpoints.length > 0) {
    if (!tcp) {
      problems.add('endpoints', spec.endpoints.map((e) => e.address),
        'cannot be expressed: OSM sends traffic to the address the client resolved and cannot redirect it to other endpoints',
        'remove the endpoints (clients resolve the host themselves), or send this service through the EgressGateway');
    } else {
      ipAddresses = [];
      spec.endpoints.forEach((e, i) => {
        if (isIP(e.address) !== 4) {
          problems.add(`endpoints[${i}].address`, e.address, 'is not an IPv4 address; OSM matches TCP egress by IPv4 range only',
            'list the IPv4 addresses of the service as endpoints');
        } else {
          ipAddresses!.push(`${e.address}/32`);
        }
        if (e.port !== undefined && !spec.ports.some((p) => p.targetPort === e.port)) {
          problems.add(`endpoints[${i}].port`, e.port, 'differs from the service ports; OSM passes traffic through to the port the client dialled',
            'remove the endpoint port or make it the service port');
        }
      });
      if (new Set(spec.endpoints.map((e) => e.priority)).size > 1) {
        problems.add('endpoints[].priority', spec.endpoints.map((e) => e.priority),
          'cannot be expressed: with OSM the client picks the address, so there is no failover order', 'give every endpoint the same priority');
      }
    }
  } else if (tcp) {
    problems.add('ports', ports.filter((p) => p.protocol === 'tcp').map((p) => p.number),
      `are plaintext TCP, which OSM matches by destination IP range and port only; host "${spec.host}" cannot be matched and the policy would open that port to every address`,
      'list the service\'s IPv4 addresses as endpoints, or enable TLS so OSM can match the host by SNI');
  }

  const httpRouteGroups = options.httpRouteGroups ?? [];
  if (httpRouteGroups.length > 0 && !ports.some((p) => p.protocol === 'http')) {
    problems.add('httpRouteGroups', httpRouteGroups, 'only narrow OSM http ports, and this service renders none',
      'remove httpRouteGroups, or declare a plaintext http port');
  }
  problems.throwIfAny();

  return {
    apiVersion: OSM_POLICY_API_VERSION,
    kind: 'Egress',
    metadata: { name: options.name, namespace: options.namespace },
    spec: {
      sources: options.sources.map((s) => ({ kind: 'ServiceAccount', name: s.name, namespace: s.namespace })),
      hosts: [spec.host],
      ...(ipAddresses && ipAddresses.length > 0 ? { ipAddresses } : {}),
      ports,
      ...(httpRouteGroups.length > 0
        ? { matches: httpRouteGroups.map((name) => ({ apiGroup: SMI_SPECS_API_GROUP, kind: 'HTTPRouteGroup' as const, name })) }
        : {}),
    },
  };
}

/**
 * With OSM the client's own TLS stack does the handshake; settings meant for the gateway's
 * handshake would be dropped, so any that differ from the defaults are errors.
 */
function checkTlsIsClientSide(spec: ExternalServiceSpec, problems: Problems): void {
  const tls = spec.tls;
  const why = 'is a TLS origination setting, but OSM does not originate TLS: the client\'s own TLS stack makes the handshake';
  const fix = 'configure it in the client and remove it here, or send this service through the EgressGateway';
  if (tls.minVersion !== DEFAULT_TLS.minVersion && tls.minVersion !== 'TLSAuto') problems.add('tls.minVersion', tls.minVersion, why, fix);
  if (tls.maxVersion !== DEFAULT_TLS.maxVersion) problems.add('tls.maxVersion', tls.maxVersion, why, fix);
  if (tls.mode !== DEFAULT_TLS.mode) problems.add('tls.verification', tls.mode, why, fix);
  if (tls.caFile !== undefined || tls.caPem !== undefined) problems.add('tls.caCertificate', tls.caFile ?? 'inline PEM', why, fix);
  if (tls.clientCertFile !== undefined) problems.add('tls.clientCertificate', tls.clientCertFile, why, fix);
  if (tls.clientKeyFile !== undefined) problems.add('tls.clientKey', tls.clientKeyFile, why, fix);
  if (tls.serverName !== undefined) problems.add('tls.serverName', tls.serverName, why, fix);
  if (tls.subjectAltNames.length > 0) problems.add('tls.subjectAltNames', tls.subjectAltNames.map((s) => s.value), why, fix);
  if (tls.allowRenegotiation) problems.add('tls.allowRenegotiation', true, why, fix);
}

export interface OsmMeshConfigRenderOptions {
  readonly name: string;
  readonly namespace: string;
  readonly enableEgress: boolean;
  readonly enableEgressPolicy: boolean;
}

/** The MeshConfig carrying OSM's two egress switches. */
export function renderOsmMeshConfig(options: OsmMeshConfigRenderOptions): OsmMeshConfig {
  return {
    apiVersion: OSM_CONFIG_API_VERSION,
    kind: 'MeshConfig',
    metadata: { name: options.name, namespace: options.namespace },
    spec: {
      traffic: { enableEgress: options.enableEgress },
      featureFlags: { enableEgressPolicy: options.enableEgressPolicy },
    },
  };
}
