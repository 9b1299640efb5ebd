// OsmEgress: renders an ExternalService as an Open Service Mesh Egress policy for the
// ServiceAccounts allowed to call it.
import { ApiObject, ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import { Client } from './callers';
import type { ExternalService, IExternalServiceRenderer } from './external-service';
import { Problems } from './internal/problems';
import { renderOsmEgress } from './mesh/osm';
import { renderInputOf } from './mesh/render-input';
import { dnsLabelProblem, isDnsSubdomain } from './model/names';

/** A ServiceAccount whose pods may call the external service. */
export interface OsmEgressSource {
  /** ServiceAccount name. */
  readonly serviceAccount: string;
  /** ServiceAccount namespace. */
  readonly namespace: string;
}

/** Props of `OsmEgress`. */
export interface OsmEgressProps {
  /**
   * ServiceAccounts the policy applies to. OSM allows the egress for pods running as these
   * accounts and for no one else.
   * @see https://github.com/openservicemesh/osm/blob/v1.2.4/pkg/apis/policy/v1alpha1/egress.go
   */
  readonly sources: OsmEgressSource[];

  /**
   * Namespace of the Egress object (and of the HTTPRouteGroups it references). OSM reads Egress
   * policies only from namespaces it monitors, which the callers' namespace always is.
   * @default - the namespace of the first source
   */
  readonly namespace?: string;

  /**
   * Names of SMI HTTPRouteGroups (specs.smi-spec.io/v1alpha4, in `namespace`) that narrow the
   * plaintext HTTP ports to their paths, methods and headers.
   * @see https://docs.openservicemesh.io/docs/tasks/traffic_management/egress/
   * @default - every request to the host is allowed
   */
  readonly httpRouteGroups?: string[];
}

/**
 * Renders an `ExternalService` as an OSM Egress policy.
 *
 * OSM's sidecars pass egress traffic through unchanged to the address and port the client
 * dialled; they never originate TLS. A service with TLS origination is therefore rendered as the
 * client speaking TLS itself: its target port (443 by default) with protocol `https`, matched by
 * SNI. Plaintext HTTP, HTTP/2 and gRPC ports become `http` ports matched by Host header, and
 * plaintext TCP ports need IPv4 endpoints because OSM matches TCP by IP range only.
 *
 * Errors at bind time, naming OSM and the field: TLS origination settings (verification modes,
 * CA, client certificate, SNI, SANs, versions, renegotiation), port remapping for plaintext,
 * endpoints of HTTP services, retries, timeouts, injected headers and pool tuning.
 *
 * Egress policies only take effect with the `enableEgressPolicy` feature flag on and mesh-wide
 * egress off; see `OsmMeshConfig`.
 *
 * The same policy can be served by an `EgressGateway` instead: `clients` turns the sources into the
 * clients of the gateway's ExternalService for the host, which the gateway then enforces per
 * ServiceAccount (with a `callerIdentity` that names ServiceAccounts: Linkerd or Istio).
 *
 * @see https://docs.openservicemesh.io/docs/tasks/traffic_management/egress/
 *
 * @example
 * gateway.addExternalService('Github', { host: 'api.github.com' })
 *   .addRenderer(new OsmEgress({ sources: [{ serviceAccount: 'ci', namespace: 'builds' }] }));
 */
export class OsmEgress implements IExternalServiceRenderer {
  /** The ServiceAccounts the policy allows. */
  public readonly sources: OsmEgressSource[];
  private readonly namespace?: string;
  private readonly httpRouteGroups: string[];

  public constructor(props: OsmEgressProps) {
    const problems = new Problems('OsmEgress');
    this.sources = [...(props.sources ?? [])];
    if (this.sources.length === 0) {
      problems.add('sources', [], 'is empty; an Egress policy allows nothing without ServiceAccounts',
        'list the ServiceAccounts of the calling workloads, e.g. [{ serviceAccount: "curl", namespace: "curl" }]');
    }
    this.sources.forEach((s, i) => {
      if (typeof s.serviceAccount !== 'string' || !isDnsSubdomain(s.serviceAccount)) {
        problems.add(`sources[${i}].serviceAccount`, s.serviceAccount, 'is not a valid ServiceAccount name', 'use lower-case letters, digits, "-" and "."');
      }
      const nsProblem = dnsLabelProblem(s.namespace, { what: 'a namespace' });
      if (nsProblem) problems.add(`sources[${i}].namespace`, s.namespace, nsProblem.rule, nsProblem.fix);
    });
    const nsProblem = props.namespace !== undefined ? dnsLabelProblem(props.namespace, { what: 'a namespace' }) : undefined;
    if (nsProblem) problems.add('namespace', props.namespace, nsProblem.rule, nsProblem.fix);
    this.httpRouteGroups = [...(props.httpRouteGroups ?? [])];
    this.httpRouteGroups.forEach((n, i) => {
      if (typeof n !== 'string' || !isDnsSubdomain(n)) {
        problems.add(`httpRouteGroups[${i}]`, n, 'is not a valid object name', 'use the HTTPRouteGroup\'s metadata.name');
      }
    });
    problems.throwIfAny();
    this.namespace = props.namespace;
  }

  /**
   * The sources as gateway clients: the ServiceAccounts this policy allows, for the `clients` of
   * an ExternalService (or route) that an EgressGateway serves.
   *
   * @example
   * const policy = new OsmEgress({ sources: [{ serviceAccount: 'curl', namespace: 'curl' }] });
   * gateway.addExternalService('Httpbin', { host: 'httpbin.org', clients: policy.clients });
   */
  public get clients(): Client[] {
    return this.sources.map((s) => Client.serviceAccountNamed(s.namespace, s.serviceAccount));
  }

  /** Creates the Egress as a child of `service` (construct id `Osm`). */
  public bind(service: ExternalService): void {
    const egress = renderOsmEgress(renderInputOf(service), {
      name: service.name,
      namespace: this.namespace ?? this.sources[0].namespace,
      sources: this.sources.map((s) => ({ name: s.serviceAccount, namespace: s.namespace })),
      httpRouteGroups: this.httpRouteGroups,
      subject: `OsmEgress for ExternalService "${service.node.path}"`,
    });
    const scope = new Construct(service, 'Osm');
    new ApiObject(scope, 'Egress', JSON.parse(JSON.stringify(egress)) as ApiObjectProps);
  }
}
