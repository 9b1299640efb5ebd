// Open Service Mesh egress (seed 003) as a cdk8s app: the curl client namespace enrolled in the
// mesh, OSM's mesh-wide egress switch, and, beyond the seed, a per-service Egress policy that lets
// only the curl ServiceAccount reach httpbin.org on 443 while mesh-wide passthrough stays off.
// Run: npx ts-node --project test/tsconfig.json examples/osm-egress/main.ts [outdir] [policy|passthrough|disabled]
import { App, Chart, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { ExternalService, OsmEgress, OsmMeshConfig } from '../../src';

export const CURL_NAMESPACE = 'curl';
export const OSM_NAMESPACE = 'osm-system';
/** The mesh name `osm install` uses by default; `osm namespace add` labels namespaces with it. */
export const MESH_NAME = 'osm';

/**
 * The seed's states and the one this library adds:
 * - `passthrough`: `osm install --enable-egress` (the seed's step 1). Every meshed pod reaches any
 *   destination outside the mesh, unfiltered; OSM ignores Egress policies while it is on.
 * - `disabled`: `egress: false` (the seed's step 4). Nothing leaves the mesh: curl to
 *   httpbin.org fails.
 * - `policy` (default): egress off, Egress policies on, and one Egress for httpbin.org:443 whose
 *   only source is the curl ServiceAccount. curl reaches httpbin.org over HTTPS (matched by SNI)
 *   and nothing else; other ServiceAccounts reach nothing.
 */
export type Stage = 'passthrough' | 'disabled' | 'policy';

/** Builds `stage` into `outdir`. */
export function buildApp(outdir: string, stage: Stage = 'policy'): App {
  const app = new App({ outdir });

  // The mesh-wide switches. OSM installs its own osm-mesh-config; apply this one only where the
  // platform owns it (server-side apply merges the two fields).
  new OsmMeshConfig(new Chart(app, 'mesh-config'), 'MeshConfig', {
    namespace: OSM_NAMESPACE,
    enableEgress: stage === 'passthrough',
    enableEgressPolicy: true,
  });

  // `kubectl create namespace curl && osm namespace add curl`, and the seed's curl client. The
  // chart has no namespace of its own: the Namespace object is cluster-scoped.
  const curl = new Chart(app, 'curl');
  const inCurl = (name: string) => ({ name, namespace: CURL_NAMESPACE });
  new kplus.Namespace(curl, 'Namespace', {
    metadata: {
      name: CURL_NAMESPACE,
      labels: { 'openservicemesh.io/monitored-by': MESH_NAME },
      annotations: { 'openservicemesh.io/sidecar-injection': 'enabled' },
    },
  });
  // OSM's identity for the pod is its ServiceAccount: the Egress policy names it as the source.
  const serviceAccount = new kplus.ServiceAccount(curl, 'ServiceAccount', { metadata: inCurl('curl') });
  const deployment = new kplus.Deployment(curl, 'Curl', {
    metadata: inCurl('curl'),
    replicas: 1,
    select: false,
    podMetadata: { labels: { app: 'curl' } },
    serviceAccount,
    securityContext: { user: 100, group: 101 },
  });
  deployment.select(kplus.LabelSelector.of({ labels: { app: 'curl' } }));
  deployment.addContainer({
    name: 'curl',
    image: 'curlimages/curl:8.10.1',
    command: ['sh', '-c', 'sleep infinity'],
    securityContext: { user: 100, group: 101 },
    resources: {
      cpu: { request: kplus.Cpu.millis(10), limit: kplus.Cpu.millis(200) },
      memory: { request: Size.mebibytes(16), limit: Size.mebibytes(64) },
    },
  });

  if (stage === 'policy') {
    // httpbin.org as an ExternalService served by no gateway: it only feeds its renderer. OSM does
    // not originate TLS, so the default TLS origination renders as the client's own HTTPS to 443.
    new ExternalService(new Chart(app, 'egress-policy'), 'Httpbin', {
      host: 'httpbin.org',
      name: 'httpbin',
      namespace: CURL_NAMESPACE,
      renderers: [new OsmEgress({ sources: [{ serviceAccount: serviceAccount.name, namespace: CURL_NAMESPACE }] })],
    });
  }
  return app;
}

if (require.main === module) {
  const [outdir = 'dist/osm-egress', stage = 'policy'] = process.argv.slice(2);
  if (!['passthrough', 'disabled', 'policy'].includes(stage)) throw new Error(`stage must be policy, passthrough or disabled, not ${JSON.stringify(stage)}`);
  buildApp(outdir, stage as Stage).synth();
}
