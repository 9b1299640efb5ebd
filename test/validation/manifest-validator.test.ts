import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ApiObject, App, Chart, Testing } from 'cdk8s';
import { stringify } from 'yaml';
import { EgressGateway } from '../../src/egress-gateway';
import { EgressNetwork } from '../../src/egress-network';
import { HttpRoute } from '../../src/http-route';
import { CrdCatalog, re2RegExp } from '../../src/validation/crd-schemas';
import { ManifestValidationReport } from '../../src/validation/manifest-validation-report';
import { ManifestValidator } from '../../src/validation/manifest-validator';

const validator = new ManifestValidator();
const yaml = (...objects: object[]): string => objects.map((o) => stringify(o)).join('---\n');
const lines = (...objects: object[]): string[] => validator.validateYaml(yaml(...objects), 'set.yaml').messages;

const NET = { apiVersion: 'policy.linkerd.io/v1alpha1', kind: 'EgressNetwork', metadata: { name: 'egress', namespace: 'apps' }, spec: { trafficPolicy: 'Deny' } };
const EGRESS = {
  apiVersion: 'policy.openservicemesh.io/v1alpha1',
  kind: 'Egress',
  metadata: { name: 'httpbin', namespace: 'curl', labels: { team: 'a' } },
  spec: { sources: [{ kind: 'ServiceAccount', name: 'curl', namespace: 'curl' }], hosts: ['httpbin.org'], ports: [{ number: 443, protocol: 'https' }] },
};
const DEPLOYMENT = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'api', namespace: 'apps' },
  spec: {
    selector: { matchLabels: { app: 'api' } },
    template: {
      metadata: { labels: { app: 'api' } },
      spec: {
        containers: [{ name: 'api', image: 'api:1', ports: [{ name: 'http', containerPort: 8080 }], volumeMounts: [{ name: 'cfg', mountPath: '/cfg' }] }],
        volumes: [{ name: 'cfg', configMap: { name: 'api-config' } }],
      },
    },
  },
};
const CONFIG_MAP = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'api-config', namespace: 'apps' }, data: { a: '1' } };
const SERVICE = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'apps' }, spec: { selector: { app: 'api' }, ports: [{ port: 80, targetPort: 'http' }] } };

describe('custom resources, strictly against the bundled CRDs', () => {
  test('every served version of every bundled CRD compiles (Gateway API, Linkerd, Kuma, OSM, Istio, Prometheus Operator, cert-manager)', () => {
    const catalog = new CrdCatalog([join(__dirname, '..', '..', 'crds')]);
    const all = catalog.list();
    // A fresh catalogue finds each kind by the group and kind it read from the file's text alone.
    const fresh = new CrdCatalog([join(__dirname, '..', '..', 'crds')]);
    for (const gvk of all) {
      const [gv, kind] = gvk.split(' ');
      const slash = gv.lastIndexOf('/');
      expect(fresh.lookup(gv.slice(0, slash), gv.slice(slash + 1), kind).found).toBe('version');
    }
    expect(all.length).toBeGreaterThanOrEqual(53);
    const groups = new Set(all.map((g) => g.split('/')[0]));
    for (const g of ['gateway.networking.k8s.io', 'policy.linkerd.io', 'kuma.io', 'policy.openservicemesh.io', 'config.openservicemesh.io', 'networking.istio.io', 'monitoring.coreos.com', 'cert-manager.io']) {
      expect(groups).toContain(g);
    }
    expect(ManifestValidator.bundledCustomResources()).toEqual(all);
  });

  test('apiVersion, kind and metadata are accepted at the root of OSM and Istio objects, whose schemas declare only spec', () => {
    const serviceEntry = { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'httpbin', namespace: 'apps' }, spec: { hosts: ['httpbin.org'], resolution: 'DNS', ports: [{ number: 443, name: 'https', protocol: 'TLS' }] } };
    expect(lines(EGRESS, serviceEntry)).toEqual([]);
  });

  test('throws when a field is unknown, anywhere: the field is named by its JSON pointer', () => {
    expect(lines({ ...EGRESS, spec: { ...EGRESS.spec, ports: [{ number: 443, protocol: 'https', tls: true }] } })).toEqual([
      'Egress curl/httpbin (set.yaml#0) /spec/ports/0/tls: unknown field "tls": the schema does not declare it (an API server would drop it) [unknown-field]',
    ]);
    expect(lines({ ...EGRESS, extra: 1 })).toEqual([expect.stringMatching(/^Egress curl\/httpbin \(set\.yaml#0\) \/extra: unknown field "extra".*\[unknown-field\]$/)]);
  });

  test('x-kubernetes-preserve-unknown-fields keeps an object open', () => {
    const dir = mkdtempSync(join(tmpdir(), 'crd-'));
    try {
      writeFileSync(join(dir, 'widgets.yaml'), yaml(crd('Widget', {
        type: 'object',
        properties: {
          spec: {
            type: 'object',
            properties: {
              open: { 'type': 'object', 'x-kubernetes-preserve-unknown-fields': true, 'properties': { known: { type: 'string' } } },
              closed: { type: 'object', properties: { known: { type: 'string' } } },
              port: { 'x-kubernetes-int-or-string': true },
              policy: { type: 'string', pattern: '^(?i)(abort|warn)?$' },
            },
          },
        },
      })));
      const v = new ManifestValidator({ crdPaths: [dir] });
      const widget = (spec: object) => v.validateYaml(yaml({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec }), 'w.yaml').messages;
      expect(widget({ open: { anything: [1] }, closed: { known: 'x' }, port: 8080, policy: 'WARN' })).toEqual([]);
      expect(widget({ port: 'http', policy: 'Abort' })).toEqual([]);
      expect(widget({ closed: { anything: 1 } })).toEqual(['Widget w (w.yaml#0) /spec/closed/anything: unknown field "anything": the schema does not declare it (an API server would drop it) [unknown-field]']);
      expect(widget({ port: true })).toEqual(['Widget w (w.yaml#0) /spec/port: must be an integer or a string [type]']);
      expect(widget({ policy: 'retry' })).toEqual(['Widget w (w.yaml#0) /spec/policy: must match pattern "^(?i)(abort|warn)?$" [pattern]']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('throws with enum, required and type rules named', () => {
    expect(lines({ ...NET, spec: { trafficPolicy: 'Maybe' } })).toEqual(['EgressNetwork apps/egress (set.yaml#0) /spec/trafficPolicy: must be one of "Allow", "Deny" [enum]']);
    expect(lines({ ...NET, spec: {} })).toEqual(['EgressNetwork apps/egress (set.yaml#0) /spec/trafficPolicy: required field "trafficPolicy" is missing [required]']);
    expect(lines({ ...EGRESS, spec: { ...EGRESS.spec, hosts: 'httpbin.org' } })).toEqual(['Egress curl/httpbin (set.yaml#0) /spec/hosts: must be array [type]']);
  });

  test('throws when a version is not served, naming the served ones', () => {
    expect(lines({ ...NET, apiVersion: 'policy.linkerd.io/v1beta9' })).toEqual([
      'EgressNetwork apps/egress (set.yaml#0) /apiVersion: EgressNetwork is not served as policy.linkerd.io/v1beta9; its CRD serves policy.linkerd.io/v1alpha1 [served-version]',
    ]);
  });

  test('PrometheusRule compiles despite its RE2 (?i) pattern, and the flag applies', () => {
    const rule = (strategy: string) => ({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'r', namespace: 'm' },
      spec: { groups: [{ name: 'g', partial_response_strategy: strategy, rules: [{ alert: 'A', expr: 'up == 0' }] }] },
    });
    expect(lines(rule('ABORT'))).toEqual([]);
    expect(lines(rule('never'))).toEqual([expect.stringContaining('/spec/groups/0/partial_response_strategy: must match pattern')]);
    expect(re2RegExp('^(?i)a$', 'u').flags).toBe('iu');
    expect(() => re2RegExp('^(?U)a$', 'u')).toThrow(/ungreedy/);
  });

  test('labels on a custom resource must be strings (the API server checks metadata itself)', () => {
    expect(lines({ ...NET, metadata: { ...NET.metadata, labels: { tier: 1 } } })).toEqual(['EgressNetwork apps/egress (set.yaml#0) /metadata/labels/tier: must be a string, got 1 [type]']);
  });
});

describe('built-in kinds and object metadata', () => {
  test('a consistent Deployment, Service and ConfigMap pass', () => {
    expect(lines(DEPLOYMENT, SERVICE, CONFIG_MAP)).toEqual([]);
  });

  test('throws when a built-in object breaks the Kubernetes schema', () => {
    expect(lines(DEPLOYMENT, { ...SERVICE, spec: { ...SERVICE.spec, ports: [{ port: 'eighty', targetPort: 'http' }] } }, CONFIG_MAP))
      .toEqual(['Service apps/api (set.yaml#1) /spec/ports/0/port: must be integer [type]']);
  });

  test('throws when a name or namespace is missing or malformed', () => {
    expect(lines({ ...CONFIG_MAP, metadata: { namespace: 'apps' } })).toEqual(['ConfigMap apps/(no name) (set.yaml#0) /metadata/name: metadata.name is required [required]']);
    expect(lines({ ...CONFIG_MAP, metadata: { name: 'Api_Config', namespace: 'Apps.x' } })).toEqual([
      expect.stringMatching(/^ConfigMap Apps\.x\/Api_Config \(set\.yaml#0\) \/metadata\/name: "Api_Config" is not a DNS subdomain.*\[name-format\]$/),
      expect.stringMatching(/\/metadata\/namespace: "Apps\.x" is not a DNS label.*\[name-format\]$/),
    ]);
    expect(lines(DEPLOYMENT, CONFIG_MAP, { ...SERVICE, metadata: { name: '1api', namespace: 'apps' } })).toEqual([expect.stringMatching(/\/metadata\/name: "1api" is not a DNS-1035 label.*\[name-format\]$/)]);
  });

  test('throws when the kind is unknown, unless unknown kinds are allowed', () => {
    const widget = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };
    expect(lines(widget)).toEqual([expect.stringMatching(/^Widget w \(set\.yaml#0\) \/kind: example\.com\/v1 Widget is neither a built-in kind nor defined by a known CRD.*\[unknown-kind\]$/)]);
    expect(new ManifestValidator({ allowUnknownKinds: true }).validateYaml(yaml(widget)).valid).toBe(true);
    expect(lines({ kind: 'ConfigMap', metadata: { name: 'x' } })).toEqual(['ConfigMap x (set.yaml#0) /apiVersion: "apiVersion" is required (a non-empty string) [required]']);
  });

  test('the items of a List are objects of the set, numbered file#doc.item', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [CONFIG_MAP, { ...CONFIG_MAP, data: { a: 1 } }] };
    const report = validator.validateYaml(yaml(list), 'list.yaml');
    expect(report.objectCount).toBe(2);
    expect(report.messages).toEqual(['ConfigMap apps/api-config (list.yaml#0.1) /data/a: must be string [type]', expect.stringContaining('[duplicate-object]')]);
  });

  test('throws on a YAML syntax error, naming the document', () => {
    const report = validator.validateYaml(`${yaml(CONFIG_MAP)}---\na: [1\n`, 'broken.yaml');
    expect(report.messages).toEqual([expect.stringMatching(/^\(object without kind\) \(broken\.yaml#1\) \/: YAML error: Flow sequence .* at line 10, column 1 \[syntax\]$/)]);
  });
});

describe('references inside the set', () => {
  test('throws when the same object is defined twice', () => {
    expect(lines(CONFIG_MAP, CONFIG_MAP)).toEqual([expect.stringMatching(/^ConfigMap apps\/api-config \(set\.yaml#1\) \/metadata\/name: ConfigMap apps\/api-config is defined twice \(also at set\.yaml#0\).*\[duplicate-object\]$/)]);
  });

  test('throws when a Service selects no pod, or names a port no container has', () => {
    expect(lines(SERVICE)).toEqual([expect.stringMatching(/\/spec\/selector: selector \{"app":"api"\} matches the pods of no workload in namespace "apps".*\[service-selector\]$/)]);
    expect(lines(DEPLOYMENT, CONFIG_MAP, { ...SERVICE, spec: { ...SERVICE.spec, ports: [{ port: 80, targetPort: 'grpc' }] } }))
      .toEqual(['Service apps/api (set.yaml#2) /spec/ports/0/targetPort: targetPort "grpc" names no container port of the selected pods [service-target-port]']);
  });

  test('throws when a pod mounts a ConfigMap that is not in the set (optional ones excepted)', () => {
    expect(lines(DEPLOYMENT)).toEqual(['Deployment apps/api (set.yaml#0) /spec/template/spec/volumes/0/configMap/name: volume "cfg" mounts ConfigMap "api-config", which is not in this set (namespace "apps") [configmap-volume]']);
    const optional = JSON.parse(JSON.stringify(DEPLOYMENT));
    optional.spec.template.spec.volumes[0].configMap.optional = true;
    expect(lines(optional)).toEqual([]);
  });

  test('throws when an HPA or a PodDisruptionBudget finds no workload', () => {
    const hpa = { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'api', namespace: 'apps' }, spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, minReplicas: 1, maxReplicas: 3 } };
    const pdb = { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'api', namespace: 'apps' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } };
    expect(lines(DEPLOYMENT, CONFIG_MAP, hpa, pdb)).toEqual([
      expect.stringMatching(/^HorizontalPodAutoscaler apps\/api \(set\.yaml#2\) \/spec\/scaleTargetRef: scaleTargetRef Deployment\/web is not in this set.*\[hpa-target\]$/),
      expect.stringMatching(/^PodDisruptionBudget apps\/api \(set\.yaml#3\) \/spec\/selector\/matchLabels: .*\[pdb-selector\]$/),
    ]);
  });

  test('throws when a route\'s parentRef names an EgressNetwork that is not in the set', () => {
    const route = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'r', namespace: 'apps' },
      spec: { parentRefs: [{ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'egress' }, { group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'other' }], rules: [{}] },
    };
    expect(lines(NET, route)).toEqual(['HTTPRoute apps/r (set.yaml#1) /spec/parentRefs/1: parentRef EgressNetwork "apps/other" is not in this set [parent-ref]']);
  });

  test('reference checks can be turned off for a partial set', () => {
    expect(new ManifestValidator({ checkReferences: false }).validateYaml(yaml(SERVICE)).valid).toBe(true);
  });
});

describe('ManifestValidator on apps, charts and files', () => {
  function gatewayApp(): { app: App; chart: Chart } {
    const app = Testing.app();
    const chart = new Chart(app, 'egress', { namespace: 'egress' });
    const gw = new EgressGateway(chart, 'gateway');
    gw.addExternalService('github', { host: 'api.github.com' });
    const net = new EgressNetwork(chart, 'net', { namespace: 'apps' });
    new HttpRoute(chart, 'route', { network: net, namespace: 'apps', hostnames: ['api.github.com'] });
    return { app, chart };
  }

  test('validateApp and validateChart pass the library\'s own output, sources named chart:<path>#<index>', () => {
    const { app, chart } = gatewayApp();
    const report = new ManifestValidator().validateApp(app);
    expect(report.messages).toEqual([]);
    expect(report.objectCount).toBe(Testing.synth(chart).length);
    expect(new ManifestValidator().validateChart(chart).valid).toBe(true);
  });

  test('assertValid throws listing every problem of the set, with object, source, field and rule', () => {
    const { app, chart } = gatewayApp();
    new ApiObject(chart, 'BadNet', { apiVersion: 'policy.linkerd.io/v1alpha1', kind: 'EgressNetwork', metadata: { name: 'bad', namespace: 'apps' }, spec: { trafficPolicy: 'Open', colour: 'red' } });
    const report = new ManifestValidator().validateApp(app);
    expect(report.valid).toBe(false);
    expect(report.failedObjectCount).toBe(1);
    expect(() => report.assertValid()).toThrow(new RegExp([
      `2 problem\\(s\\) in 1 of ${report.objectCount} Kubernetes objects:`,
      '  - EgressNetwork apps/bad \\(chart:egress#\\d+\\) /spec/colour: unknown field "colour".*\\[unknown-field\\]',
      '  - EgressNetwork apps/bad \\(chart:egress#\\d+\\) /spec/trafficPolicy: must be one of "Allow", "Deny" \\[enum\\]',
    ].join('\n')));
    expect(report.problems[1]).toMatchObject({ kind: 'EgressNetwork', namespace: 'apps', name: 'bad', apiVersion: 'policy.linkerd.io/v1alpha1', field: '/spec/trafficPolicy', rule: 'enum' });
  });

  test('validateFiles reads folders of YAML and JSON, naming file#doc', () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-files-'));
    try {
      writeFileSync(join(dir, 'a.k8s.yaml'), yaml(DEPLOYMENT, CONFIG_MAP));
      writeFileSync(join(dir, 'b.json'), JSON.stringify({ ...SERVICE, spec: { ...SERVICE.spec, type: 'Open' } }));
      writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
      const report = new ManifestValidator().validateFiles([dir]);
      expect(report.objectCount).toBe(3);
      expect(report.messages).toEqual([`Service apps/api (${join(dir, 'b.json')}#0) /spec/type: must be one of "ClusterIP", "ExternalName", "LoadBalancer", "NodePort" [enum]`]);
      expect(new ManifestValidator().validateFiles([join(dir, 'missing')]).messages).toEqual([expect.stringMatching(/does not exist \[file\]$/)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('toString ends with the N passed, N failed line', () => {
    expect(new ManifestValidationReport(3, []).toString()).toBe('3 passed, 0 failed');
  });
});

function crd(kind: string, schema: object): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${kind.toLowerCase()}s.example.com` },
    spec: { group: 'example.com', scope: 'Namespaced', names: { kind, plural: `${kind.toLowerCase()}s` }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: schema } }] },
  };
}
