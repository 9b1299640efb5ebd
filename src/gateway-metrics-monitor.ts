// GatewayMetricsMonitor: the Prometheus Operator object (ServiceMonitor or PodMonitor) that makes
// Prometheus scrape the gateway's admin port, next to the prometheus.io annotations kept as fallback.
import { ApiObject, Duration } from 'cdk8s';
import { Construct } from 'constructs';
import { durationMs } from './internal/duration';
import { checkLabels } from './internal/labels';
import { Problems } from './internal/problems';

/** Which Prometheus Operator object finds the gateway's pods. */
export enum MetricsMonitorKind {
  /**
   * A `ServiceMonitor` selecting the gateway's Service and scraping its `admin` port on every
   * endpoint (every ready and not-ready pod behind it).
   * @see https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.ServiceMonitor
   */
  SERVICE_MONITOR = 'ServiceMonitor',
  /**
   * A `PodMonitor` selecting the gateway's pods directly and scraping their `admin` container
   * port: for Prometheus setups that only read PodMonitors.
   * @see https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.PodMonitor
   */
  POD_MONITOR = 'PodMonitor',
}

/** Options of the gateway's ServiceMonitor or PodMonitor (`EgressGatewayProps.metricsMonitor`). */
export interface GatewayMetricsMonitorOptions {
  /**
   * ServiceMonitor or PodMonitor.
   * @default MetricsMonitorKind.SERVICE_MONITOR
   */
  readonly kind?: MetricsMonitorKind;

  /**
   * How often Prometheus scrapes each pod. Whole seconds.
   * @default Duration.seconds(30)
   */
  readonly interval?: Duration;

  /**
   * How long one scrape may take; at most `interval`. Whole seconds.
   * @default Duration.seconds(10)
   */
  readonly scrapeTimeout?: Duration;

  /**
   * Labels on the monitor object itself, for the Prometheus resource's `serviceMonitorSelector`
   * or `podMonitorSelector` (kube-prometheus-stack selects `release: <helm release>` by default).
   * @default - the gateway's labels only
   */
  readonly labels?: { [key: string]: string };
}

/** Props of `GatewayMetricsMonitor`. */
export interface GatewayMetricsMonitorProps extends GatewayMetricsMonitorOptions {
  /** Name of the monitor object (the gateway's name). */
  readonly name: string;
  /** Namespace of the gateway. */
  readonly namespace: string;
  /** Labels of the gateway's Service and pods, which the monitor selects. */
  readonly selectorLabels: { [key: string]: string };
  /** Labels every object of the gateway carries. */
  readonly commonLabels: { [key: string]: string };
  /** Name of the admin port on the Service and on the container. */
  readonly portName: string;
}

/** Path of the proxy's Prometheus exposition on the admin port. */
const METRICS_PATH = '/metrics';
/**
 * The label whose value becomes the `job` target label: the gateway's name, so alerts and the
 * dashboard can tell gateways apart whichever monitor kind scraped them.
 */
const JOB_LABEL = 'app.kubernetes.io/instance';

const DEFAULT_INTERVAL_S = 30;
const DEFAULT_TIMEOUT_S = 10;

/**
 * A ServiceMonitor or PodMonitor for an egress gateway (Prometheus Operator CRDs
 * `monitoring.coreos.com/v1`). Created by `EgressGateway` from its `metricsMonitor` prop or
 * `addMetricsMonitor()`.
 *
 * The job label is the gateway's name and the `namespace` and `pod` labels come from the
 * Kubernetes discovery, which is what `GatewayAlerts` and the dashboard select on. One scrape per
 * pod covers every worker of the pod: the proxy aggregates its workers' metrics on the admin port.
 * When the gateway is locked down (`lockDown()`), its NetworkPolicy admits the scraper on the
 * admin port from `metricsScrapers` (the `monitoring` namespace by default): set it to where
 * Prometheus runs.
 */
export class GatewayMetricsMonitor extends Construct {
  /** ServiceMonitor or PodMonitor. */
  public readonly kind: MetricsMonitorKind;
  /** The monitor object. */
  public readonly apiObject: ApiObject;

  public constructor(scope: Construct, id: string, props: GatewayMetricsMonitorProps) {
    super(scope, id);
    const problems = new Problems(`GatewayMetricsMonitor "${this.node.path}"`);
    this.kind = props.kind ?? MetricsMonitorKind.SERVICE_MONITOR;
    const kinds = Object.values(MetricsMonitorKind) as string[];
    if (!kinds.includes(this.kind)) problems.add('kind', this.kind, `is not one of ${kinds.join(', ')}`, 'use a MetricsMonitorKind member');
    const before = problems.count;
    const intervalS = wholeSeconds(problems, 'interval', props.interval) ?? DEFAULT_INTERVAL_S;
    const timeoutS = wholeSeconds(problems, 'scrapeTimeout', props.scrapeTimeout) ?? DEFAULT_TIMEOUT_S;
    // Compared only when both are valid: a default standing in for a bad value would be a false report.
    if (problems.count === before && timeoutS > intervalS) {
      problems.add('scrapeTimeout', `${timeoutS}s`, `is longer than 'interval' (${intervalS}s); Prometheus rejects such a scrape config`,
        `use at most Duration.seconds(${intervalS})`);
    }
    checkLabels((...a) => problems.add(...a), 'labels', props.labels, '{ release: "kube-prometheus-stack" }');
    problems.throwIfAny();

    const endpoint = {
      port: props.portName,
      path: METRICS_PATH,
      scheme: 'http',
      interval: `${intervalS}s`,
      scrapeTimeout: `${timeoutS}s`,
    };
    const selector = { matchLabels: { ...props.selectorLabels } };
    this.apiObject = new ApiObject(this, 'Resource', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: this.kind,
      metadata: { name: props.name, namespace: props.namespace, labels: { ...props.commonLabels, ...(props.labels ?? {}) } },
      spec: this.kind === MetricsMonitorKind.SERVICE_MONITOR
        ? { jobLabel: JOB_LABEL, selector, namespaceSelector: { matchNames: [props.namespace] }, endpoints: [endpoint] }
        : { jobLabel: JOB_LABEL, selector, namespaceSelector: { matchNames: [props.namespace] }, podMetricsEndpoints: [endpoint] },
    });
  }
}

function wholeSeconds(problems: Problems, prop: string, d: Duration | undefined): number | undefined {
  const ms = durationMs(problems, prop, d);
  if (ms === undefined) return undefined;
  if (ms < 1000 || ms % 1000 !== 0) {
    problems.add(prop, d!.toHumanString(), 'must be whole seconds, at least 1', 'use Duration.seconds(n)');
    return undefined;
  }
  return ms / 1000;
}
