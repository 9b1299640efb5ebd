// OsmMeshConfig: OSM's mesh-wide egress switches (MeshConfig traffic.enableEgress and
// featureFlags.enableEgressPolicy), for platforms that manage their MeshConfig as code.
import { ApiObject, ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import { Problems } from './internal/problems';
import {
  DEFAULT_OSM_MESH_CONFIG_NAME, DEFAULT_OSM_NAMESPACE, renderOsmMeshConfig,
} from './mesh/osm';
import { dnsLabelProblem, dnsSubdomainProblem } from './model/names';

/** Props of `OsmMeshConfig`. */
export interface OsmMeshConfigProps {
  /**
   * Mesh-wide egress passthrough: every pod may reach any destination outside the mesh, with no
   * filtering. While it is on, OSM ignores every Egress policy, so the default is off.
   * @see https://docs.openservicemesh.io/docs/tasks/traffic_management/egress/
   * @default false
   */
  readonly enableEgress?: boolean;

  /**
   * The feature flag that makes OSM enforce Egress policies (`OsmEgress`).
   * @see https://docs.openservicemesh.io/docs/tasks/traffic_management/egress/
   * @default true
   */
  readonly enableEgressPolicy?: boolean;

  /**
   * Name of the MeshConfig osm-controller reads.
   * @default "osm-mesh-config"
   */
  readonly name?: string;

  /**
   * OSM's control plane namespace.
   * @default "osm-system"
   */
  readonly namespace?: string;
}

/**
 * OSM's MeshConfig with only the egress switches set. OSM installs its own `osm-mesh-config`;
 * apply this one only where the platform owns that object (server-side apply merges the two
 * fields and leaves the rest to OSM's defaults).
 *
 * The default (`enableEgress: false`, `enableEgressPolicy: true`) is the one this library is
 * about: nothing leaves the mesh except what an Egress policy allows. `enableEgress: true` is
 * OSM's global passthrough, which turns every Egress policy off.
 *
 * @see https://docs.openservicemesh.io/docs/tasks/traffic_management/egress/
 *
 * @example
 * // Turn OSM's global egress off, so only the OsmEgress policies let traffic out.
 * new OsmMeshConfig(chart, 'Mesh', { enableEgress: false, enableEgressPolicy: true });
 */
export class OsmMeshConfig extends Construct {
  /** Whether mesh-wide passthrough is on. */
  public readonly enableEgress: boolean;
  /** Whether Egress policies are enforced. */
  public readonly enableEgressPolicy: boolean;

  public constructor(scope: Construct, id: string, props: OsmMeshConfigProps = {}) {
    super(scope, id);
    const problems = new Problems(`OsmMeshConfig "${this.node.path}"`);
    const name = props.name ?? DEFAULT_OSM_MESH_CONFIG_NAME;
    const namespace = props.namespace ?? DEFAULT_OSM_NAMESPACE;
    const nameProblem = dnsSubdomainProblem(name, {
      what: 'a Kubernetes object name', fix: 'use the MeshConfig\'s name, "osm-mesh-config" unless OSM was installed otherwise',
    });
    if (nameProblem) problems.add('name', name, nameProblem.rule, nameProblem.fix);
    const nsProblem = dnsLabelProblem(namespace, { what: 'a namespace', fix: 'use the namespace OSM runs in, e.g. "osm-system"' });
    if (nsProblem) problems.add('namespace', namespace, nsProblem.rule, nsProblem.fix);
    problems.throwIfAny();
    this.enableEgress = props.enableEgress ?? false;
    this.enableEgressPolicy = props.enableEgressPolicy ?? true;
    const obj = renderOsmMeshConfig({ name, namespace, enableEgress: this.enableEgress, enableEgressPolicy: this.enableEgressPolicy });
    new ApiObject(this, 'Resource', JSON.parse(JSON.stringify(obj)) as ApiObjectProps);
  }
}
