import { Chart, Testing } from 'cdk8s';
import { EgressGateway, GatewayDashboard } from '../src';
import { validateObjects } from './mesh/validate';
import { errorOf } from './util/thrown';

describe('GatewayDashboard', () => {
  test('off by default', () => {
    const chart = new Chart(Testing.app(), 'test');
    new EgressGateway(chart, 'Gateway');
    expect(Testing.synth(chart).filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard)).toEqual([]);
  });

  test('a ConfigMap labelled for Grafana\'s sidecar, in the gateway namespace, holding the dashboard JSON', () => {
    const chart = new Chart(Testing.app(), 'test');
    const gw = new EgressGateway(chart, 'Gateway', { dashboard: {} });
    const cm = Testing.synth(chart).find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'egress-gateway-dashboard');
    expect(cm.metadata.namespace).toBe('egress');
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    expect(cm.metadata.annotations).toBeUndefined();
    expect(Object.keys(cm.data)).toEqual(['egress-gateway.json']);
    const d = JSON.parse(cm.data['egress-gateway.json']);
    expect(d.uid).toBe(GatewayDashboard.UID);
    expect(d.templating.list.map((v: any) => v.name)).toEqual(['datasource', 'namespace', 'job', 'hostname']);
    expect(gw.dashboard!.configMap.name).toBe('egress-gateway-dashboard');
    expect(validateObjects([cm]).output).toMatch(/1 passed, 0 failed/);
  });

  test('namespace, label and folder are props', () => {
    const chart = new Chart(Testing.app(), 'test');
    new EgressGateway(chart, 'Gateway', { dashboard: { namespace: 'monitoring', labelKey: 'dashboards', labelValue: 'egress', folder: 'Platform' } });
    const cm = Testing.synth(chart).find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'egress-gateway-dashboard');
    expect(cm.metadata.namespace).toBe('monitoring');
    expect(cm.metadata.labels.dashboards).toBe('egress');
    expect(cm.metadata.labels.grafana_dashboard).toBeUndefined();
    expect(cm.metadata.annotations).toEqual({ grafana_folder: 'Platform' });
  });

  test('throws for a bad namespace, label or folder, all at once; addDashboard() twice throws', () => {
    const chart = new Chart(Testing.app(), 'test');
    const msg = errorOf(() => new EgressGateway(chart, 'Gateway', { dashboard: { namespace: 'Mon', labelKey: '-x', labelValue: 'a b', folder: '' } }));
    expect(msg).toMatch(/GatewayDashboard "test\/Gateway\/Dashboard": 4 problems/);
    for (const p of ['namespace', 'labelKey', 'labelValue', 'folder']) expect(msg).toContain(`'${p}'`);
    const gw = new EgressGateway(new Chart(Testing.app(), 'test'), 'Gateway', { dashboard: {} });
    expect(errorOf(() => gw.addDashboard())).toMatch(/'dashboard' is already added/);
  });
});
