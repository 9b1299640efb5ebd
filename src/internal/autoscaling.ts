// Checks of the gateway's autoscaling options, shared by EgressGateway (which sizes its disruption
// budget from minReplicas first) and GatewayAutoscaling.
import type { GatewayAutoscalingOptions } from '../gateway-autoscaling';
import { durationMs } from './duration';
import type { Problems } from './problems';

export const DEFAULT_MIN_REPLICAS = 2;
export const DEFAULT_MAX_REPLICAS = 10;

/** Adds a problem per bad option (props named `<prefix><option>`) and returns [minReplicas, maxReplicas]. */
export function checkAutoscaling(problems: Problems, prefix: string, options: GatewayAutoscalingOptions): [number, number] {
  const min = options.minReplicas ?? DEFAULT_MIN_REPLICAS;
  const max = options.maxReplicas ?? Math.max(DEFAULT_MAX_REPLICAS, min);
  if (!Number.isInteger(min) || min < 1) problems.add(`${prefix}minReplicas`, min, 'must be a whole number of at least 1', 'use 2 or more so a node failure or rollout never stops egress');
  if (!Number.isInteger(max) || max < min) {
    problems.add(`${prefix}maxReplicas`, max, `must be a whole number of at least 'minReplicas' (${min})`, `use e.g. ${Math.max(min, DEFAULT_MAX_REPLICAS)}`);
  }
  for (const [prop, v] of [['cpuUtilization', options.cpuUtilization], ['memoryUtilization', options.memoryUtilization]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 1000)) {
      problems.add(`${prefix}${prop}`, v, 'must be a whole percentage from 1 to 1000 (of the container\'s request)', 'use e.g. 70');
    }
  }
  if (options.scaleDownMaxPods !== undefined && (!Number.isInteger(options.scaleDownMaxPods) || options.scaleDownMaxPods < 1)) {
    problems.add(`${prefix}scaleDownMaxPods`, options.scaleDownMaxPods, 'must be a whole number of at least 1', 'use 1');
  }
  const win = durationMs(problems, `${prefix}scaleDownStabilization`, options.scaleDownStabilization);
  if (win !== undefined && (win % 1000 !== 0 || win > 3_600_000)) {
    problems.add(`${prefix}scaleDownStabilization`, options.scaleDownStabilization!.toHumanString(), 'must be whole seconds, at most one hour', 'use e.g. Duration.minutes(5)');
  }
  const period = durationMs(problems, `${prefix}scaleDownPeriod`, options.scaleDownPeriod);
  if (period !== undefined && (period % 1000 !== 0 || period < 1000 || period > 1_800_000)) {
    problems.add(`${prefix}scaleDownPeriod`, options.scaleDownPeriod!.toHumanString(), 'must be whole seconds, from 1 second to 30 minutes', 'use e.g. Duration.minutes(1)');
  }
  return [min, max];
}
