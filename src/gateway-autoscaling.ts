// Autoscaling of the gateway's Deployment: a HorizontalPodAutoscaler (autoscaling/v2) on the proxy
// container's CPU (and optionally memory) with a slow, one-pod-at-a-time scale-down.
import { Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { durationMs } from './internal/duration';
import { Problems } from './internal/problems';

/** Options of the gateway's HorizontalPodAutoscaler (`EgressGatewayProps.autoscaling`). */
export interface GatewayAutoscalingOptions {
  /**
   * Fewest pods. With 2 or more the PodDisruptionBudget keeps all but one available.
   * @default 2
   */
  readonly minReplicas?: number;

  /**
   * Most pods.
   * @default 10
   */
  readonly maxReplicas?: number;

  /**
   * Target average CPU use of the proxy container, in percent of its CPU request.
   * @default 70
   */
  readonly cpuUtilization?: number;

  /**
   * Also scale on the proxy container's memory, in percent of its memory request.
   * @default - CPU only
   */
  readonly memoryUtilization?: number;

  /**
   * How long the load must stay low before pods are removed (`behavior.scaleDown.stabilizationWindowSeconds`).
   * @default Duration.minutes(5)
   */
  readonly scaleDownStabilization?: Duration;

  /**
   * Most pods removed per `scaleDownPeriod`. Each removed pod drains its tunnels and in-flight
   * requests, so go slowly.
   * @default 1
   */
  readonly scaleDownMaxPods?: number;

  /**
   * The period of `scaleDownMaxPods`.
   * @default Duration.minutes(1)
   */
  readonly scaleDownPeriod?: Duration;
}

/** Props of `GatewayAutoscaling`. */
export interface GatewayAutoscalingProps extends GatewayAutoscalingOptions {
  /** The gateway's Deployment. */
  readonly target: kplus.Deployment;
  /** The proxy container, whose CPU (and memory) the autoscaler reads. */
  readonly container: kplus.Container;
  /** Name of the HorizontalPodAutoscaler. */
  readonly name: string;
  /** Namespace of the gateway. */
  readonly namespace: string;
  /** Labels every object of the gateway carries. */
  readonly commonLabels?: { [key: string]: string };
}

const DEFAULT_CPU = 70;
const DEFAULT_MIN_REPLICAS = 2;
const DEFAULT_MAX_REPLICAS = 10;

/**
 * A HorizontalPodAutoscaler (`autoscaling/v2`) for the gateway's Deployment, which then renders no
 * `replicas` of its own. The metric is the proxy container's own CPU (a `ContainerResource`
 * metric, on by default since Kubernetes 1.27), so a Linkerd sidecar without a CPU request does
 * not break it. Scale-up is Kubernetes' default (double or add 4 pods a minute); scale-down waits
 * `scaleDownStabilization` and removes `scaleDownMaxPods` per `scaleDownPeriod`.
 */
export class GatewayAutoscaling extends Construct {
  /**
   * @internal the checks of the options, shared with EgressGateway (which sizes its disruption
   * budget from minReplicas before it creates the autoscaler): adds a problem per bad option
   * (props named `<prefix><option>`) and returns [minReplicas, maxReplicas].
   */
  public static _checkOptions(problems: Problems, prefix: string, options: GatewayAutoscalingOptions): [number, number] {
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

  /** Fewest pods. */
  public readonly minReplicas: number;
  /** Most pods. */
  public readonly maxReplicas: number;
  /** The HorizontalPodAutoscaler. */
  public readonly autoscaler: kplus.HorizontalPodAutoscaler;

  public constructor(scope: Construct, id: string, props: GatewayAutoscalingProps) {
    super(scope, id);
    const problems = new Problems(`GatewayAutoscaling "${this.node.path}"`);
    const [min, max] = GatewayAutoscaling._checkOptions(problems, 'autoscaling.', props);
    problems.throwIfAny();
    this.minReplicas = min;
    this.maxReplicas = max;
    const container = props.container;
    const metrics = [kplus.Metric.containerCpu({ container, target: kplus.MetricTarget.averageUtilization(props.cpuUtilization ?? DEFAULT_CPU) })];
    if (props.memoryUtilization !== undefined) {
      metrics.push(kplus.Metric.containerMemory({ container, target: kplus.MetricTarget.averageUtilization(props.memoryUtilization) }));
    }
    this.autoscaler = new kplus.HorizontalPodAutoscaler(this, 'Resource', {
      metadata: { name: props.name, namespace: props.namespace, ...(props.commonLabels ? { labels: { ...props.commonLabels } } : {}) },
      target: props.target,
      minReplicas: min,
      maxReplicas: max,
      metrics,
      scaleUp: {
        strategy: kplus.ScalingStrategy.MAX_CHANGE,
        stabilizationWindow: Duration.seconds(0),
        policies: [
          { replicas: kplus.Replicas.percent(100), duration: Duration.minutes(1) },
          { replicas: kplus.Replicas.absolute(4), duration: Duration.minutes(1) },
        ],
      },
      scaleDown: {
        strategy: kplus.ScalingStrategy.MIN_CHANGE,
        stabilizationWindow: props.scaleDownStabilization ?? Duration.minutes(5),
        policies: [{ replicas: kplus.Replicas.absolute(props.scaleDownMaxPods ?? 1), duration: props.scaleDownPeriod ?? Duration.minutes(1) }],
      },
    });
  }
}
