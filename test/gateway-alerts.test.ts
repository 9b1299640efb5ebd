import { Chart, Duration, Testing } from 'cdk8s';
import { EgressGateway, EgressNetwork, TrafficPolicy } from '../src';
import { validateObjects } from './mesh/validate';
import { promqlErrors } from './util/promql';
import { errorOf } from './util/thrown';

const ALERTS = [
  'EgressHostErrorRatioHigh', 'EgressTlsVerificationFailures', 'EgressDenialsSpiking', 'EgressConfigReloadFailed', 'EgressRetryBudgetExhausted',
  'EgressGatewayNotReady', 'EgressGatewayAbsent', 'EgressGatewaySaturated', 'EgressClientConnectionsRefused',
];

function rulesOf(all: any[]): any[] {
  const rule = all.find((o) => o.kind === 'PrometheusRule');
  return rule.spec.groups.flatMap((g: any) => g.rules);
}

describe('GatewayAlerts', () => {
  test('off by default', () => {
    const chart = new Chart(Testing.app(), 'test');
    new EgressGateway(chart, 'Gateway');
    expect(Testing.synth(chart).filter((o) => o.kind === 'PrometheusRule')).toEqual([]);
  });

  test('every alert, each with severity, summary, description and a runbook line; validates against the CRD', () => {
    const chart = new Chart(Testing.app(), 'test');
    new EgressGateway(chart, 'Gateway', { metricsMonitor: {}, alerts: { runbookUrl: 'https://runbooks.example.com/egress', alertLabels: { team: 'platform' }, labels: { release: 'prom' } } });
    const all = Testing.synth(chart);
    const rule = all.find((o) => o.kind === 'PrometheusRule');
    expect(rule.metadata).toMatchObject({ name: 'egress-gateway-alerts', namespace: 'egress', labels: { release: 'prom' } });
    const rules = rulesOf(all);
    expect(rules.map((r) => r.alert)).toEqual(ALERTS);
    for (const r of rules) {
      expect(['critical', 'warning']).toContain(r.labels.severity);
      expect(r.labels.team).toBe('platform');
      expect(r.annotations.summary.length).toBeGreaterThan(10);
      expect(r.annotations.description.length).toBeGreaterThan(10);
      expect(r.annotations.runbook.length).toBeGreaterThan(40);
      expect(r.annotations.runbook_url).toBe(`https://runbooks.example.com/egress#${r.alert.toLowerCase()}`);
      expect(promqlErrors(r.expr)).toEqual([]);
      // With a monitor, job is the gateway's name: every selector picks this gateway only.
      for (const m of r.expr.matchAll(/\{([^}]*)\}/g)) expect(m[1]).toContain('namespace="egress", job="egress-gateway"');
    }
    expect(validateObjects([rule]).output).toMatch(/1 passed, 0 failed/);
  });

  test('thresholds are props; hosts are the declared services and route hostnames, including those added after the alerts', () => {
    const chart = new Chart(Testing.app(), 'test');
    const network = new EgressNetwork(chart, 'Net', { namespace: 'egress', trafficPolicy: TrafficPolicy.DENY });
    const gw = new EgressGateway(chart, 'Gateway', {
      network,
      alerts: {
        errorRatio: 0.1, minRequestRate: 1, tlsFailures: 3, denialRate: 5, denialSpikeFactor: 2, saturation: 0.9, window: Duration.minutes(10),
      },
    });
    gw.addExternalService('Api', { host: 'api.example.com' });
    network.addHttpRoute('Get', { hostnames: ['httpbin.org'] });
    const rules = rulesOf(Testing.synth(chart));
    const byName = (n: string) => rules.find((r) => r.alert === n).expr as string;
    expect(byName('EgressHostErrorRatioHigh')).toContain('hostname=~"api\\\\.example\\\\.com|httpbin\\\\.org"');
    expect(byName('EgressHostErrorRatioHigh')).toMatch(/> 0\.1 and .*\[10m\]\)\) > 1$/);
    expect(byName('EgressTlsVerificationFailures')).toMatch(/>= 3 or .* >= 3$/);
    expect(byName('EgressDenialsSpiking')).toMatch(/> 5 and .* > 2 \* \(sum\(rate\(.*\[1h\] offset 1h\)\) or vector\(0\)\)$/);
    expect(byName('EgressGatewaySaturated')).toMatch(/> 0\.9$/);
    // Without a monitor the job label is unknown: namespace only.
    expect(byName('EgressGatewayAbsent')).toBe('absent(egress_ready{namespace="egress"})');
  });

  test('a custom selector replaces the default one', () => {
    const chart = new Chart(Testing.app(), 'test');
    new EgressGateway(chart, 'Gateway', { alerts: { selector: 'kubernetes_namespace="egress", app=~"egress-.*"' } });
    const rules = rulesOf(Testing.synth(chart));
    expect(rules.find((r) => r.alert === 'EgressGatewayNotReady').expr).toBe('egress_ready{kubernetes_namespace="egress", app=~"egress-.*"} == 0');
  });

  test('throws listing every bad option at once', () => {
    const chart = new Chart(Testing.app(), 'test');
    const msg = errorOf(() => new EgressGateway(chart, 'Gateway', {
      alerts: { selector: 'namespace=egress', errorRatio: 5, saturation: 0, tlsFailures: 0.5, window: Duration.seconds(90), runbookUrl: 'runbooks', alertLabels: { severity: 'x' } },
    }));
    expect(msg).toMatch(/GatewayAlerts "test\/Gateway\/Alerts": 7 problems/);
    expect(msg).toMatch(/'selector' "namespace=egress" is not a list of PromQL label matchers/);
    expect(msg).toMatch(/'errorRatio' 5 must be a ratio above 0 and below 1/);
    expect(msg).toMatch(/'saturation' 0 must be a ratio/);
    expect(msg).toMatch(/'tlsFailures' 0.5 must be a whole number/);
    expect(msg).toMatch(/'window' "1 minute 30 seconds" must be whole minutes/);
    expect(msg).toMatch(/'runbookUrl' "runbooks" is not an http\(s\) URL/);
    expect(msg).toMatch(/'alertLabels.severity' "severity" is set by each alert/);
  });

  test('addAlerts() twice throws', () => {
    const gw = new EgressGateway(new Chart(Testing.app(), 'test'), 'Gateway', { alerts: {} });
    expect(errorOf(() => gw.addAlerts())).toMatch(/'alerts' are already added/);
  });
});
