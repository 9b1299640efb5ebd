// Open Service Mesh egress (seed 003) as a cdk8s app: the curl client namespace enrolled in the
// mesh, OSM's mesh-wide egress switch, and, beyond the seed, a per-service Egress policy that lets
// only the curl ServiceAccount reach httpbin.org on 443 while mesh-wide passthrough stays off; and
// the same Egress policy served by an egress gateway that enforces it per ServiceAccount.
// Run: npx ts-node --project test/tsconfig.json examples/osm-egress/main.ts [outdir] [policy|passthrough|disabled|gateway]
import { App, Chart, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  CallerIdentitySource, EgressGateway, ExternalService, OsmEgress, OsmMeshConfig, TrafficPolicy, UnknownCallerPolicy,
} from '../../src';

export const CURL_NAMESPACE = 'curl';
export const OSM_NAMESPACE = 'osm-system';
/** The mesh name `osm install` uses by default; `osm namespace add` labels namespaces with it. */
export const MESH_NAME = 'osm';
/** Namespace of the egress gateway (stage `gateway`). */
export const GATEWAY_NAMESPACE = 'egress';

/** The app's Egress policies: which ServiceAccounts may reach which host. */
export const POLICIES = [
  { id: 'Httpbin', name: 'httpbin', host: 'httpbin.org', sources: [{ serviceAccount: 'curl', namespace: CURL_NAMESPACE }] },
];

/**
 * The seed's states and the one this library adds:
 * - `passthrough`: `osm install --enable-egress` (the seed's step 1). Every meshed pod reaches any
 *   destination outside the mesh, unfiltered; OSM ignores Egress policies while it is on.
 * - `disabled`: `egress: false` (the seed's step 4). Nothing leaves the mesh: curl to
 *   httpbin.org fails.
 * - `policy` (default): egress off, Egress policies on, and one Egress for httpbin.org:443 whose
 *   only source is the curl ServiceAccount. curl reaches httpbin.org over HTTPS (matched by SNI)
 *   and nothing else; other ServiceAccounts reach nothing.
 * - `gateway`: the same Egress policies served by an egress gateway instead of OSM's sidecars. The
 *   gateway needs to know who calls, which OSM's sidecars do not tell it, so the app runs in
 *   Linkerd here (the curl namespace is injected by Linkerd, not OSM): each policy becomes an
 *   ExternalService whose clients are its sources. curl calls `http://httpbin.org.egress.local`,
 *   the gateway originates TLS; any other ServiceAccount gets 403 `CALLER_NOT_ALLOWED`, an
 *   unidentified caller 403 `CALLER_UNKNOWN`, and other hosts 403 (trafficPolicy Deny).
 */
export type Stage = 'passthrough' | 'disabled' | 'policy' | 'gateway';

/** Builds `stage` into `outdir`. */
export function buildApp(outdir: string, stage: Stage = 'policy'): App {
  const app = new App({ outdir });
  const gateway = stage === 'gateway';

  // The mesh-wide switches. OSM installs its own osm-mesh-config; apply this one only where the
  // platform owns it (server-side apply merges the two fields).
  if (!gateway) {
    new OsmMeshConfig(new Chart(app, 'mesh-config'), 'MeshConfig', {
      namespace: OSM_NAMESPACE,
      enableEgress: stage === 'passthrough',
      enableEgressPolicy: true,
    });
  }

  // `kubectl create namespace curl && osm namespace add curl`, and the seed's curl client. The
  // chart has no namespace of its own: the Namespace object is cluster-scoped.
  const curl = new Chart(app, 'curl');
  const inCurl = (name: string) => ({ name, namespace: CURL_NAMESPACE });
  const namespace = new kplus.Namespace(curl, 'Namespace', {
    metadata: gateway
      ? { name: CURL_NAMESPACE, annotations: { 'linkerd.io/inject': 'enabled' } }
      : {
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
    const chart = new Chart(app, 'egress-policy');
    for (const p of POLICIES) {
      new ExternalService(chart, p.id, {
        host: p.host,
        name: p.name,
        namespace: CURL_NAMESPACE,
        renderers: [new OsmEgress({ sources: p.sources })],
      });
    }
  }
  if (gateway) {
    // The gateway knows the caller from its Linkerd sidecar (l5d-client-id) and refuses callers it
    // cannot identify; only the declared hosts leave. Linkerd's Server, MeshTLSAuthentication and
    // AuthorizationPolicy admit the policies' ServiceAccounts to the gateway and nobody else.
    const chart = new Chart(app, 'egress-gateway');
    const egress = new EgressGateway(chart, 'Egress', {
      namespace: GATEWAY_NAMESPACE,
      trafficPolicy: TrafficPolicy.DENY,
      callerIdentity: CallerIdentitySource.LINKERD,
      unknownCallers: UnknownCallerPolicy.DENY,
    });
    for (const p of POLICIES) {
      egress.addExternalService(p.id, { host: p.host, name: p.name, clients: new OsmEgress({ sources: p.sources }).clients });
    }
    // The gateway is the namespace's only way out: default-deny egress but DNS, the gateway and the
    // Linkerd control plane (the sidecars' identity and discovery).
    egress.restrictEgressOf(namespace, {
      allowInCluster: [kplus.Namespaces.select(chart, 'LinkerdControlPlane', { names: ['linkerd'] })],
    });
  }
  return app;
}

if (require.main === module) {
  const [outdir = 'dist/osm-egress', stage = 'policy'] = process.argv.slice(2);
  if (!['passthrough', 'disabled', 'policy', 'gateway'].includes(stage)) throw new Error(`stage must be policy, passthrough, disabled or gateway, not ${JSON.stringify(stage)}`);
  buildApp(outdir, stage as Stage).synth();
}
