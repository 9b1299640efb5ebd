// Test helper for the route construct tests: a chart holding the seeds' deny-all EgressNetwork,
// and the one synthesised route of a kind and name.
import { Chart, Testing } from 'cdk8s';
import { EgressNetwork, TrafficPolicy } from '../../src';

/** A chart in namespace egress-test with EgressNetwork "all-egress-traffic" (Deny). */
export function networkChart(): { chart: Chart; net: EgressNetwork } {
  const chart = new Chart(Testing.app(), 'test', { namespace: 'egress-test' });
  const net = new EgressNetwork(chart, 'Net', { name: 'all-egress-traffic', trafficPolicy: TrafficPolicy.DENY });
  return { chart, net };
}

/** The one object of `kind` named `name` that `chart` synthesises. */
export function synthRoute(chart: Chart, kind: string, name: string): any {
  const found = Testing.synth(chart).filter((o) => o.kind === kind && o.metadata.name === name);
  expect(found).toHaveLength(1);
  return found[0];
}
