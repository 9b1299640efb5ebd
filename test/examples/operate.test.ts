// examples/operate: the gateway with every operations object of issue 13, validated against the
// Prometheus Operator and cert-manager CRDs, consistent with each other, and its config accepted
// by the real proxy's --check-config.
import { rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { expectValidManifests, synthToTmp } from './synth';
import { buildApp, MONITORING_NAMESPACE, NAMESPACE, PARTNER_HOST, RELEASE_LABELS } from '../../examples/operate/main';
import { checkConfigWithBundle, proxyConfigMap } from '../e2e/helpers';

describe('examples/operate', () => {
  const { outdir, objects } = synthToTmp('operate-', (dir) => buildApp(dir));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));
  const one = (kind: string) => {
    const found = objects.filter((o) => o.kind === kind);
    expect(found).toHaveLength(1);
    return found[0];
  };

  test('passes validate-manifests with nothing failed', () => {
    expectValidManifests(outdir, objects);
  });

  test('ServiceMonitor and PrometheusRule carry the release label; the rule selects the monitor\'s job', () => {
    const sm = one('ServiceMonitor');
    const rule = one('PrometheusRule');
    expect(sm.metadata.labels).toMatchObject(RELEASE_LABELS);
    expect(rule.metadata.labels).toMatchObject(RELEASE_LABELS);
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'admin', interval: '15s' });
    const rules = rule.spec.groups[0].rules;
    expect(rules.length).toBe(9);
    for (const r of rules) {
      expect(r.expr).toContain(`namespace="${NAMESPACE}", job="egress-gateway"`);
      expect(r.labels.team).toBe('platform');
      expect(r.annotations.runbook_url).toMatch(/^https:\/\/runbooks\.example\.com\/egress-gateway#egress/);
    }
    expect(rules.find((r: any) => r.alert === 'EgressHostErrorRatioHigh').expr).toContain('hostname=~"api\\\\.github\\\\.com|api\\\\.partner\\\\.example"');
  });

  test('the dashboard ConfigMap is in the monitoring namespace with the sidecar label and folder', () => {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
    expect(cm.metadata.namespace).toBe(MONITORING_NAMESPACE);
    expect(cm.metadata.annotations).toEqual({ grafana_folder: 'Egress' });
  });

  test('the autoscaler owns replicas; the budget keeps 2 of at least 3 pods', () => {
    expect(one('Deployment').spec.replicas).toBeUndefined();
    expect(one('HorizontalPodAutoscaler').spec).toMatchObject({ minReplicas: 3, maxReplicas: 12 });
    expect(one('PodDisruptionBudget').spec.minAvailable).toBe(2);
  });

  test('the NetworkPolicy admits the monitoring namespace on the admin port the ServiceMonitor scrapes', () => {
    const np = one('NetworkPolicy');
    const admin = np.spec.ingress.find((r: any) => r.ports?.some((p: any) => p.port === 9901));
    expect(admin.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': MONITORING_NAMESPACE } }, podSelector: {} }]);
  });

  test('the cert-manager Secret is what the partner service presents, and the real proxy accepts the config', async () => {
    const cert = one('Certificate');
    const config = JSON.parse(proxyConfigMap(objects).data['config.json']);
    const partner = config.externalServices.find((s: any) => s.host === PARTNER_HOST);
    expect(partner.tls.clientCertFile).toBe(`/var/run/egress/secrets/${cert.spec.secretName}/tls.crt`);
    expect(partner.tls.clientKeyFile).toBe(`/var/run/egress/secrets/${cert.spec.secretName}/tls.key`);
    const file = join(outdir, 'config.json');
    writeFileSync(file, JSON.stringify(config));
    const r = await checkConfigWithBundle(file);
    expect([r.code, r.stderr]).toEqual([0, '']);
  });
});
