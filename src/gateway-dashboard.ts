// GatewayDashboard: the Grafana dashboard of the egress gateway in a ConfigMap that Grafana's
// dashboard sidecar loads (label grafana_dashboard). The same JSON ships in the package.
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { labelKeyOk, labelValueOk } from './internal/labels';
import { DASHBOARD_UID, grafanaDashboard } from './internal/observability';
import { Problems } from './internal/problems';
import { dnsLabelProblem } from './model/names';

/** Options of the gateway's dashboard ConfigMap (`EgressGatewayProps.dashboard`). */
export interface GatewayDashboardOptions {
  /**
   * Namespace of the ConfigMap: where Grafana's sidecar looks for dashboards (kube-prometheus-stack
   * watches its own namespace unless `sidecar.dashboards.searchNamespace` says otherwise).
   * @default - the gateway's namespace
   */
  readonly namespace?: string;

  /**
   * The label the sidecar selects dashboards by (`sidecar.dashboards.label`).
   * @see https://github.com/grafana/helm-charts/tree/main/charts/grafana#sidecar-for-dashboards
   * @default "grafana_dashboard"
   */
  readonly labelKey?: string;

  /**
   * Its value (`sidecar.dashboards.labelValue`).
   * @default "1"
   */
  readonly labelValue?: string;

  /**
   * Grafana folder, written to the `grafana_folder` annotation (read when the sidecar's
   * `folderAnnotation` is `grafana_folder`).
   * @default - no annotation: the sidecar's default folder
   */
  readonly folder?: string;
}

/** Props of `GatewayDashboard`. */
export interface GatewayDashboardProps extends GatewayDashboardOptions {
  /** Name of the ConfigMap. */
  readonly name: string;
  /** Namespace used when `namespace` is not set (the gateway's). */
  readonly defaultNamespace: string;
  /** Labels every object of the gateway carries. */
  readonly commonLabels: { [key: string]: string };
}

/** Key of the dashboard JSON in the ConfigMap. */
const DASHBOARD_KEY = 'egress-gateway.json';

/**
 * The Grafana dashboard of the egress gateway (a ConfigMap for Grafana's dashboard sidecar).
 * Per host: request rate, success rate, p50 and p99 latency, statuses, errors by code; denials by
 * route, TLS failures, refused addresses, config reloads; open tunnels, client connections,
 * in-flight requests against the limit, and retries. One dashboard serves every gateway: its
 * variables pick the namespace, gateway (job) and hosts. The JSON also ships in the npm package
 * as `dashboards/egress-gateway.json` for importing by hand.
 */
export class GatewayDashboard extends Construct {
  /** The dashboard's uid. */
  public static readonly UID = DASHBOARD_UID;

  /** The dashboard JSON model (uid `cdk8s-egress-gateway`), as a string. */
  public static json(): string {
    return `${JSON.stringify(grafanaDashboard(), null, 2)}\n`;
  }

  /** The ConfigMap. */
  public readonly configMap: kplus.ConfigMap;

  public constructor(scope: Construct, id: string, props: GatewayDashboardProps) {
    super(scope, id);
    const problems = new Problems(`GatewayDashboard "${this.node.path}"`);
    const namespace = props.namespace ?? props.defaultNamespace;
    const nsProblem = dnsLabelProblem(namespace, { what: 'a namespace', fix: 'use e.g. "monitoring"' });
    if (nsProblem) problems.add('namespace', namespace, nsProblem.rule, nsProblem.fix);
    const labelKey = props.labelKey ?? 'grafana_dashboard';
    const labelValue = props.labelValue ?? '1';
    if (!labelKeyOk(labelKey)) problems.add('labelKey', labelKey, 'is not a valid label key', 'use "grafana_dashboard"');
    if (!labelValueOk(labelValue)) problems.add('labelValue', labelValue, 'is not a valid label value', 'use "1"');
    if (props.folder !== undefined && (typeof props.folder !== 'string' || props.folder.trim() === '' || /[\n\r]/.test(props.folder))) {
      problems.add('folder', props.folder, 'must be a non-empty single-line folder name', 'use e.g. "Egress"');
    }
    problems.throwIfAny();
    this.configMap = new kplus.ConfigMap(this, 'Resource', {
      metadata: {
        name: props.name,
        namespace,
        labels: { ...props.commonLabels, [labelKey]: labelValue },
        ...(props.folder !== undefined ? { annotations: { grafana_folder: props.folder } } : {}),
      },
      data: { [DASHBOARD_KEY]: GatewayDashboard.json() },
    });
  }
}
