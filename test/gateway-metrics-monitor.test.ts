import { Chart, Duration, Testing } from 'cdk8s';
import { EgressGateway, GatewayDeployment, MetricsMonitorKind } from '../src';
import { validateObjects } from './mesh/validate';
import { errorOf } from './util/thrown';

function synth(props: ConstructorParameters<typeof EgressGateway>[2] = {}): { gateway: EgressGateway; all: any[] } {
  const chart = new Chart(Testing.app(), 'test');
  const gateway = new EgressGateway(chart, 'Gateway', props);
  return { gateway, all: Testing.synth(chart) };
}

describe('GatewayMetricsMonitor', () => {
  test('off by default: no monitor, only the prometheus.io annotations', () => {
    const { all } = synth();
    expect(all.filter((o) => o.apiVersion === 'monitoring.coreos.com/v1')).toEqual([]);
    const pod = all.find((o) => o.kind === 'Deployment').spec.template.metadata;
    expect(pod.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9901', 'prometheus.io/path': '/metrics' });
  });

  test('a ServiceMonitor scrapes the admin port the Service names, job = the gateway name, and validates against the CRD', () => {
    const { all } = synth({ name: 'gw', namespace: 'out', metricsMonitor: { labels: { release: 'kube-prometheus-stack' } } });
    const sm = all.find((o) => o.kind === 'ServiceMonitor');
    const svc = all.find((o) => o.kind === 'Service');
    expect(sm.metadata).toMatchObject({ name: 'gw', namespace: 'out', labels: { 'release': 'kube-prometheus-stack', 'app.kubernetes.io/instance': 'gw' } });
    expect(sm.spec.endpoints).toEqual([{ port: 'admin', path: '/metrics', scheme: 'http', interval: '30s', scrapeTimeout: '10s' }]);
    expect(svc.spec.ports.find((p: any) => p.name === sm.spec.endpoints[0].port)).toEqual({ name: 'admin', port: 9901, targetPort: 9901, protocol: 'TCP' });
    // The selector picks exactly the gateway's Service, and job comes from a label whose value is the gateway name.
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels[k]).toBe(v);
    expect(svc.metadata.labels[sm.spec.jobLabel]).toBe('gw');
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: ['out'] });
    const v = validateObjects([sm]);
    expect(v.output).toMatch(/1 passed, 0 failed/);
  });

  test('a PodMonitor selects the pods and their admin container port (node-local gateways too)', () => {
    const { all } = synth({
      deployment: GatewayDeployment.NODE_LOCAL,
      metricsMonitor: { kind: MetricsMonitorKind.POD_MONITOR, interval: Duration.seconds(15), scrapeTimeout: Duration.seconds(5) },
    });
    const pm = all.find((o) => o.kind === 'PodMonitor');
    const ds = all.find((o) => o.kind === 'DaemonSet');
    expect(pm.spec.podMetricsEndpoints).toEqual([{ port: 'admin', path: '/metrics', scheme: 'http', interval: '15s', scrapeTimeout: '5s' }]);
    expect(ds.spec.template.spec.containers[0].ports).toContainEqual({ containerPort: 9901, name: 'admin' });
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) expect(ds.spec.template.metadata.labels[k]).toBe(v);
    expect(ds.spec.template.metadata.labels[pm.spec.jobLabel]).toBe('egress-gateway');
    expect(validateObjects([pm]).output).toMatch(/1 passed, 0 failed/);
  });

  test('addMetricsMonitor() is the same as the prop; a second one throws', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gateway');
    const m = gw.addMetricsMonitor();
    expect(gw.metricsMonitor).toBe(m);
    expect(errorOf(() => gw.addMetricsMonitor({ kind: MetricsMonitorKind.POD_MONITOR }))).toMatch(/'metricsMonitor' is already added \(ServiceMonitor\)/);
  });

  test('throws when the timeout exceeds the interval, durations are not whole seconds, or labels are invalid, all at once', () => {
    const msg = errorOf(() => synth({ metricsMonitor: { interval: Duration.seconds(5), scrapeTimeout: Duration.millis(7500), labels: { 'bad key!': 'x' } } }));
    expect(msg).toMatch(/GatewayMetricsMonitor "test\/Gateway\/MetricsMonitor": 2 problems/);
    expect(msg).toMatch(/'scrapeTimeout' "7 seconds 500 millis" must be whole seconds/);
    expect(msg).toMatch(/'labels.bad key!' "bad key!" is not a valid label key/);
    expect(errorOf(() => synth({ metricsMonitor: { interval: Duration.seconds(5) } }))).toMatch(/'scrapeTimeout' "10s" is longer than 'interval' \(5s\)/);
  });

  test('an external service cannot take the admin port on the Service', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gateway');
    expect(errorOf(() => gw.addExternalService('x', { host: 'x.example.com', ports: [{ port: 9901 }] })))
      .toMatch(/'ports' 9901 of ExternalService "test\/Gateway\/x" \(http\) is already taken on Service "proxy" by the admin listener/);
  });
});
