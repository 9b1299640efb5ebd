import { Chart, Duration, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { EgressGateway, GatewayDeployment } from '../src';
import type { EgressGatewayProps } from '../src';
import { validateObjects } from './mesh/validate';
import { errorOf } from './util/thrown';

function synth(props: EgressGatewayProps): any[] {
  const chart = new Chart(Testing.app(), 'test');
  new EgressGateway(chart, 'Gateway', props);
  return Testing.synth(chart);
}
const one = (all: any[], kind: string) => {
  const found = all.filter((o) => o.kind === kind);
  expect(found).toHaveLength(1);
  return found[0];
};

describe('GatewayAutoscaling', () => {
  test('without autoscaling: replicas on the Deployment, no autoscaler', () => {
    const all = synth({ replicas: 3 });
    expect(one(all, 'Deployment').spec.replicas).toBe(3);
    expect(all.filter((o) => o.kind === 'HorizontalPodAutoscaler')).toEqual([]);
  });

  test('defaults: autoscaling/v2 on the proxy container CPU at 70 %, 2 to 10 pods, slow scale-down; replicas left to it; PDB maxUnavailable 1', () => {
    const all = synth({ autoscaling: {} });
    const hpa = one(all, 'HorizontalPodAutoscaler');
    const deploy = one(all, 'Deployment');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deploy.metadata.name });
    expect(hpa.metadata.namespace).toBe(deploy.metadata.namespace);
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 10]);
    expect(hpa.spec.metrics).toEqual([{ type: 'ContainerResource', containerResource: { name: 'cpu', container: 'proxy', target: { type: 'Utilization', averageUtilization: 70 } } }]);
    expect(deploy.spec.template.spec.containers.map((c: any) => c.name)).toContain('proxy');
    expect(hpa.spec.behavior.scaleDown).toEqual({ selectPolicy: 'Min', stabilizationWindowSeconds: 300, policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }] });
    expect(deploy.spec.replicas).toBeUndefined();
    expect(one(all, 'PodDisruptionBudget').spec.maxUnavailable).toBe(1);
    const v = validateObjects(all);
    expect(v.output).toMatch(new RegExp(`${all.length} passed, 0 failed`));
  });

  test('options: min, max, memory, scale-down; minAvailable consistent with minReplicas', () => {
    const all = synth({
      autoscaling: {
        minReplicas: 3,
        maxReplicas: 6,
        cpuUtilization: 60,
        memoryUtilization: 80,
        scaleDownStabilization: Duration.minutes(10),
        scaleDownMaxPods: 2,
        scaleDownPeriod: Duration.minutes(2),
      },
      minAvailable: 2,
    });
    const hpa = one(all, 'HorizontalPodAutoscaler');
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([3, 6]);
    expect(hpa.spec.metrics.map((m: any) => [m.containerResource.name, m.containerResource.target.averageUtilization])).toEqual([['cpu', 60], ['memory', 80]]);
    expect(hpa.spec.behavior.scaleDown).toEqual({ selectPolicy: 'Min', stabilizationWindowSeconds: 600, policies: [{ type: 'Pods', value: 2, periodSeconds: 120 }] });
    expect(one(all, 'PodDisruptionBudget').spec).toMatchObject({ minAvailable: 2 });
    expect(one(all, 'PodDisruptionBudget').spec.maxUnavailable).toBeUndefined();
  });

  test('minReplicas 1: no PodDisruptionBudget (it could never be satisfied without blocking drains)', () => {
    const all = synth({ autoscaling: { minReplicas: 1 } });
    expect(all.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
  });

  test('throws when minAvailable is not below the minimum number of pods', () => {
    expect(errorOf(() => synth({ autoscaling: { minReplicas: 2 }, minAvailable: 2 })))
      .toMatch(/'minAvailable' 2 must be below 'autoscaling.minReplicas' \(2\): with 2 of 2 pods required, no pod may ever be evicted and every node drain blocks; use at most 1, or raise autoscaling.minReplicas to 3/);
    expect(errorOf(() => synth({ replicas: 3, minAvailable: 3 }))).toMatch(/'minAvailable' 3 must be below 'replicas' \(3\)/);
    expect(errorOf(() => synth({ deployment: GatewayDeployment.NODE_LOCAL, minAvailable: 1 }))).toMatch(/'minAvailable' 1 cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL/);
  });

  test('throws when replicas and autoscaling are both set, with a node-local gateway, or with bad ranges', () => {
    expect(errorOf(() => synth({ replicas: 3, autoscaling: {} }))).toMatch(/'replicas' 3 cannot be set with 'autoscaling'.*set autoscaling.minReplicas: 3/);
    expect(errorOf(() => synth({ deployment: GatewayDeployment.NODE_LOCAL, autoscaling: {} }))).toMatch(/'autoscaling' \{\} cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL/);
    const msg = errorOf(() => synth({ autoscaling: { minReplicas: 4, maxReplicas: 3, cpuUtilization: 0, scaleDownPeriod: Duration.hours(1) } }));
    expect(msg).toMatch(/^EgressGateway "test\/Gateway": 3 problems/);
    expect(msg).toMatch(/'autoscaling.maxReplicas' 3 must be a whole number of at least 'minReplicas' \(4\)/);
    expect(msg).toMatch(/'autoscaling.cpuUtilization' 0 must be a whole percentage/);
    expect(msg).toMatch(/'autoscaling.scaleDownPeriod' "60 minutes" must be whole seconds, from 1 second to 30 minutes/);
  });

  test('throws when resources request no CPU while scaling on CPU', () => {
    const resources = { memory: { request: kplus.Cpu.millis(1) as any } } as kplus.ContainerResources;
    expect(errorOf(() => synth({ autoscaling: {}, resources }))).toMatch(/'resources' "no cpu.request" must request CPU when 'autoscaling' scales on CPU utilization/);
  });
});
