// examples/osm-egress (seed 003): the mesh-wide switch in its three states, the curl namespace
// enrolled in the mesh, and the per-service Egress policy that goes beyond OSM's passthrough.
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { buildApp, CURL_NAMESPACE, GATEWAY_NAMESPACE, MESH_NAME, OSM_NAMESPACE, Stage } from '../../examples/osm-egress/main';
import { readManifests } from '../e2e/helpers';
import { validatePath } from '../mesh/validate';

const ROOT = resolve(__dirname, '..', '..');
const OSM_GROUPS = ['policy.openservicemesh.io', 'config.openservicemesh.io'];

function find(objects: any[], kind: string, name: string): any {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  expect(found).toHaveLength(1);
  return found[0];
}

interface Flow {
  readonly serviceAccount: string;
  readonly namespace: string;
  readonly host: string;
  readonly port: number;
  readonly protocol: 'http' | 'https' | 'tcp';
}

/**
 * OSM's documented egress rules applied to the synthesised objects: with `traffic.enableEgress`
 * every destination outside the mesh passes through; otherwise, with the `enableEgressPolicy`
 * flag, a flow leaves only if an Egress lists the pod's ServiceAccount as a source and the host
 * (by Host header for http, SNI for https) and the port with its protocol; otherwise nothing leaves.
 * Only namespaces the mesh monitors count, as OSM reads Egress policies only from those.
 */
function osmAllows(objects: any[], flow: Flow): boolean {
  const meshConfig = objects.find((o) => o.kind === 'MeshConfig');
  if (meshConfig.spec.traffic.enableEgress) return true;
  if (!meshConfig.spec.featureFlags.enableEgressPolicy) return false;
  const monitored = (ns: string) => objects.some((o) => o.kind === 'Namespace' && o.metadata.name === ns
    && o.metadata.labels?.['openservicemesh.io/monitored-by'] === MESH_NAME);
  return objects.filter((o) => o.kind === 'Egress' && monitored(o.metadata.namespace)).some((e) =>
    e.spec.sources.some((s: any) => s.kind === 'ServiceAccount' && s.name === flow.serviceAccount && s.namespace === flow.namespace)
    && (e.spec.hosts ?? []).includes(flow.host)
    && e.spec.ports.some((p: any) => p.number === flow.port && p.protocol === flow.protocol));
}

/** The stages OSM's sidecars enforce. */
type OsmStage = Exclude<Stage, 'gateway'>;

const CURL_TO_HTTPBIN: Flow = { serviceAccount: 'curl', namespace: CURL_NAMESPACE, host: 'httpbin.org', port: 443, protocol: 'https' };

describe.each<OsmStage>(['passthrough', 'disabled', 'policy'])('examples/osm-egress (%s)', (stage) => {
  let outdir: string;
  let objects: any[];
  beforeAll(() => {
    outdir = mkdtempSync(join(tmpdir(), 'osm-egress-'));
    buildApp(join(outdir, 'osm-egress'), stage).synth();
    objects = readManifests(join(outdir, 'osm-egress'));
  });
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('every object passes the strict validator, the OSM ones included', () => {
    const result = validatePath(join(outdir, 'osm-egress'));
    expect(result.messages).toEqual([]);
    expect(objects.filter((o) => OSM_GROUPS.includes(o.apiVersion.split('/')[0])).length).toBeGreaterThan(0);
    expect(result).toMatchObject({ passed: objects.length, failed: 0 });
  });

  test('scripts/validate-examples.sh passes the example with the project\'s validator alone', () => {
    const r = spawnSync('bash', [join(ROOT, 'scripts', 'validate-examples.sh'), 'osm-egress'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      // The independent second check is for CI; the test must not depend on it.
      env: { ...process.env, DIST_DIR: outdir, VALIDATE_MANIFESTS: join(outdir, 'no-second-validator') },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`${objects.length} passed, 0 failed`);
    expect(r.stdout).not.toMatch(/FAIL|set aside/);
  });

  test('the MeshConfig carries the seed\'s switch for this stage, policies enforced', () => {
    const mc = find(objects, 'MeshConfig', 'osm-mesh-config');
    expect(mc.apiVersion).toBe('config.openservicemesh.io/v1alpha2');
    expect(mc.metadata.namespace).toBe(OSM_NAMESPACE);
    expect(mc.spec).toEqual({ traffic: { enableEgress: stage === 'passthrough' }, featureFlags: { enableEgressPolicy: true } });
  });

  test('the curl namespace is enrolled in the mesh and runs the seed\'s curl client as ServiceAccount curl', () => {
    const ns = find(objects, 'Namespace', CURL_NAMESPACE);
    expect(ns.metadata.namespace).toBeUndefined();
    expect(ns.metadata.labels).toEqual({ 'openservicemesh.io/monitored-by': MESH_NAME });
    expect(ns.metadata.annotations).toEqual({ 'openservicemesh.io/sidecar-injection': 'enabled' });
    const curl = find(objects, 'Deployment', 'curl');
    expect(curl.metadata.namespace).toBe(CURL_NAMESPACE);
    expect(curl.spec.template.spec.serviceAccountName).toBe('curl');
    expect(curl.spec.template.metadata.labels.app).toBe('curl');
    expect(find(objects, 'ServiceAccount', 'curl').metadata.namespace).toBe(CURL_NAMESPACE);
  });

  test('the seed\'s outcomes: who reaches what', () => {
    const flows: Array<[string, Flow, Record<OsmStage, boolean>]> = [
      ['curl -> https://httpbin.org', CURL_TO_HTTPBIN, { passthrough: true, disabled: false, policy: true }],
      ['curl -> http://httpbin.org', { ...CURL_TO_HTTPBIN, port: 80, protocol: 'http' }, { passthrough: true, disabled: false, policy: false }],
      ['curl -> https://example.com', { ...CURL_TO_HTTPBIN, host: 'example.com' }, { passthrough: true, disabled: false, policy: false }],
      ['other account -> https://httpbin.org', { ...CURL_TO_HTTPBIN, serviceAccount: 'default' }, { passthrough: true, disabled: false, policy: false }],
    ];
    for (const [name, flow, expected] of flows) expect([name, osmAllows(objects, flow)]).toEqual([name, expected[stage]]);
  });

  test(stage === 'policy' ? 'one Egress: httpbin.org on 443 by SNI, for the curl ServiceAccount only' : 'no Egress policy', () => {
    const egresses = objects.filter((o) => o.kind === 'Egress');
    if (stage !== 'policy') {
      expect(egresses).toEqual([]);
      return;
    }
    expect(egresses).toEqual([{
      apiVersion: 'policy.openservicemesh.io/v1alpha1',
      kind: 'Egress',
      metadata: { name: 'httpbin', namespace: CURL_NAMESPACE },
      spec: {
        sources: [{ kind: 'ServiceAccount', name: 'curl', namespace: CURL_NAMESPACE }],
        hosts: ['httpbin.org'],
        ports: [{ number: 443, protocol: 'https' }],
      },
    }]);
  });
});

describe('examples/osm-egress (gateway): the Egress policies served by the egress gateway', () => {
  let outdir: string;
  let objects: any[];
  beforeAll(() => {
    outdir = mkdtempSync(join(tmpdir(), 'osm-egress-'));
    buildApp(join(outdir, 'osm-egress'), 'gateway').synth();
    objects = readManifests(join(outdir, 'osm-egress'));
  });
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('every object passes the strict validator; nothing of OSM is rendered', () => {
    const result = validatePath(join(outdir, 'osm-egress'));
    expect(result.messages).toEqual([]);
    expect(result).toMatchObject({ passed: objects.length, failed: 0 });
    expect(objects.filter((o) => OSM_GROUPS.includes(o.apiVersion.split('/')[0]))).toEqual([]);
  });

  test('each policy becomes an ExternalService whose clients are its sources; unknown callers are refused', () => {
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.data?.['config.json']);
    const config = JSON.parse(configMap.data['config.json']);
    expect(config.callers).toEqual({ source: 'Linkerd', trustDomain: 'cluster.local', unknown: 'Deny', metricsLabel: false });
    expect(config.parent.trafficPolicy).toBe('Deny');
    expect(config.externalServices.map((s: any) => [s.name, s.host, s.clients])).toEqual([
      ['httpbin', 'httpbin.org', [{ serviceAccount: { namespace: CURL_NAMESPACE, name: 'curl' } }]],
    ]);
  });

  test('Linkerd admits only the policies\' ServiceAccounts to the gateway\'s HTTP port', () => {
    const server = find(objects, 'Server', 'egress-gateway-http');
    expect(server.metadata.namespace).toBe(GATEWAY_NAMESPACE);
    expect(server.spec.accessPolicy).toBe('deny');
    expect(find(objects, 'MeshTLSAuthentication', 'egress-gateway-callers-accounts').spec)
      .toEqual({ identityRefs: [{ kind: 'ServiceAccount', name: 'curl', namespace: CURL_NAMESPACE }] });
    expect(find(objects, 'AuthorizationPolicy', 'egress-gateway-callers-accounts').spec.targetRef).toEqual({ group: 'policy.linkerd.io', kind: 'Server', name: 'egress-gateway-http' });
  });

  test('curl runs in Linkerd, and its namespace may leave only through the gateway', () => {
    const ns = find(objects, 'Namespace', CURL_NAMESPACE);
    expect(ns.metadata.annotations).toEqual({ 'linkerd.io/inject': 'enabled' });
    expect(ns.metadata.labels?.['openservicemesh.io/monitored-by']).toBeUndefined();
    const lockdown = objects.filter((o) => o.kind === 'NetworkPolicy' && o.metadata.namespace === CURL_NAMESPACE);
    expect(lockdown).toHaveLength(1);
    expect(lockdown[0].spec.policyTypes).toEqual(['Egress']);
    const namespacesReached = lockdown[0].spec.egress.flatMap((r: any) => r.to.map((t: any) => t.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name']));
    expect(namespacesReached.sort()).toEqual(['egress', 'kube-system', 'linkerd']);
  });
});
