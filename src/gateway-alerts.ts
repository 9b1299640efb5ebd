// GatewayAlerts: a PrometheusRule with the alerts an on-call engineer wants for an egress gateway,
// each with a runbook line; thresholds are props, the PromQL lives in src/internal/observability.ts.
import { ApiObject, Duration, Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import type { IEgressGateway } from './egress-gateway-ref';
import { durationMs } from './internal/duration';
import { checkLabels } from './internal/labels';
import { alertRules, AlertRule } from './internal/observability';
import { Problems } from './internal/problems';

/** Options of the gateway's alerts (`EgressGatewayProps.alerts`). */
export interface GatewayAlertsOptions {
  /**
   * PromQL label matchers that select this gateway's series, e.g.
   * `kubernetes_namespace="egress", app="egress-gateway"` when Prometheus scrapes the
   * `prometheus.io` annotations with its own relabelling.
   * @default - `namespace="<namespace>", job="<gateway name>"` when the gateway has a metricsMonitor
   * (which sets job to the gateway's name), else `namespace="<namespace>"`
   */
  readonly selector?: string;

  /**
   * EgressHostErrorRatioHigh fires when more than this share of one host's calls get a 5xx.
   * From 0 to 1.
   * @default 0.05
   */
  readonly errorRatio?: number;

  /**
   * ... but only for hosts called at least this often (requests per second), so that one failure
   * out of two calls does not page anyone.
   * @default 0.1
   */
  readonly minRequestRate?: number;

  /**
   * EgressTlsVerificationFailures fires at this many TLS failures towards one host within `window`.
   * @default 1
   */
  readonly tlsFailures?: number;

  /**
   * EgressDenialsSpiking fires when enforced denials exceed this many per second ...
   * @default 1
   */
  readonly denialRate?: number;

  /**
   * ... and this many times the rate of the hour before.
   * @default 3
   */
  readonly denialSpikeFactor?: number;

  /**
   * EgressGatewaySaturated fires when a pod's in-flight requests exceed this share of
   * maxConcurrentRequests. From 0 to 1.
   * @default 0.8
   */
  readonly saturation?: number;

  /**
   * The window rates and increases are computed over. Whole minutes.
   * @default Duration.minutes(5)
   */
  readonly window?: Duration;

  /**
   * Base URL of the team's runbook; each alert gets `runbook_url: <url>#<alert name in lower case>`
   * next to its `runbook` annotation.
   * @default - only the `runbook` annotation
   */
  readonly runbookUrl?: string;

  /**
   * Labels added to every alert, for Alertmanager routing (e.g. `team: platform`).
   * @default - `severity` only
   */
  readonly alertLabels?: { [key: string]: string };

  /**
   * Labels on the PrometheusRule object, for the Prometheus resource's `ruleSelector`
   * (kube-prometheus-stack selects `release: <helm release>` by default).
   * @default - the gateway's labels only
   */
  readonly labels?: { [key: string]: string };
}

/** Props of `GatewayAlerts`. */
export interface GatewayAlertsProps extends GatewayAlertsOptions {
  /** The gateway the alerts watch. */
  readonly gateway: IEgressGateway;
}

const MATCHER = /^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*$/;

/**
 * A `PrometheusRule` (Prometheus Operator, `monitoring.coreos.com/v1`) with the gateway's alerts:
 *
 * | alert | fires when |
 * |---|---|
 * | EgressHostErrorRatioHigh | a declared host's calls get 5xx above `errorRatio` (for 10 minutes) |
 * | EgressTlsVerificationFailures | TLS towards a host fails `tlsFailures` times in `window` |
 * | EgressDenialsSpiking | enforced denials exceed `denialRate` and `denialSpikeFactor` times the hour before |
 * | EgressConfigReloadFailed | a pod rejected a config or rotated certificate in 15 minutes |
 * | EgressRetryBudgetExhausted | the retry budget refuses retries for 5 minutes |
 * | EgressGatewayNotReady | a pod reports not ready for 5 minutes |
 * | EgressGatewayAbsent | no pod of the gateway is scraped for 10 minutes |
 * | EgressGatewaySaturated | a pod's in-flight requests exceed `saturation` of its limit |
 * | EgressClientConnectionsRefused | a pod closes client connections at accept (maxClientConnections) |
 *
 * "Declared hosts" are the gateway's ExternalService hosts and the hostnames of its routes, read
 * at synth time; without any, every host is watched. Each alert carries a `runbook` annotation
 * with the first thing to check.
 */
export class GatewayAlerts extends Construct {
  /** The PrometheusRule object. */
  public readonly apiObject: ApiObject;
  private readonly gateway: IEgressGateway;
  private readonly props: GatewayAlertsProps;
  private readonly windowMin: number;

  public constructor(scope: Construct, id: string, props: GatewayAlertsProps) {
    super(scope, id);
    const problems = new Problems(`GatewayAlerts "${this.node.path}"`);
    this.gateway = props.gateway;
    this.props = props;
    if (props.selector !== undefined) {
      const parts = splitMatchers(props.selector);
      if (parts.length === 0 || !parts.every((p) => MATCHER.test(p))) {
        problems.add('selector', props.selector, 'is not a list of PromQL label matchers (name="value", name=~"regex", separated by commas)',
          'use e.g. namespace="egress", job="egress-gateway"');
      }
    }
    ratio(problems, 'errorRatio', props.errorRatio, 0.05);
    ratio(problems, 'saturation', props.saturation, 0.8);
    positive(problems, 'minRequestRate', props.minRequestRate, 0.1, true);
    positive(problems, 'denialRate', props.denialRate, 1, true);
    positive(problems, 'denialSpikeFactor', props.denialSpikeFactor, 3, false);
    if (props.tlsFailures !== undefined && (!Number.isInteger(props.tlsFailures) || props.tlsFailures < 1)) {
      problems.add('tlsFailures', props.tlsFailures, 'must be a whole number of at least 1', 'use 1 to hear of the first failure');
    }
    const windowMs = durationMs(problems, 'window', props.window) ?? 5 * 60_000;
    if (windowMs < 60_000 || windowMs % 60_000 !== 0) {
      problems.add('window', props.window?.toHumanString(), 'must be whole minutes, at least 1 (rates need several scrapes inside the window)', 'use Duration.minutes(5)');
    }
    this.windowMin = windowMs / 60_000;
    if (props.runbookUrl !== undefined && !/^https?:\/\/[^\s#]+$/.test(props.runbookUrl)) {
      problems.add('runbookUrl', props.runbookUrl, 'is not an http(s) URL without a fragment', 'use e.g. "https://runbooks.example.com/egress"');
    }
    checkLabels((...a) => problems.add(...a), 'labels', props.labels, '{ release: "kube-prometheus-stack" }');
    for (const k of Object.keys(props.alertLabels ?? {})) {
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k) || k === 'severity') {
        problems.add(`alertLabels.${k}`, k, k === 'severity' ? 'is set by each alert' : 'is not a Prometheus label name', 'use e.g. { team: "platform" }');
      }
    }
    problems.throwIfAny();

    const g = props.gateway;
    this.apiObject = new ApiObject(this, 'Resource', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: `${g.name}-alerts`, namespace: g.namespaceName, labels: { ...g.commonLabels, ...(props.labels ?? {}) } },
      spec: Lazy.any({ produce: () => ({ groups: [{ name: `egress-gateway.${g.namespaceName}.${g.name}`, rules: this._rules() }] }) }),
    });
  }

  /** @internal the alerting rules as rendered (read at synth time: hosts added later are included). */
  public _rules(): AlertRule[] {
    const g = this.gateway;
    const p = this.props;
    const config = g._renderConfig();
    const hosts = new Set<string>();
    for (const s of config.externalServices) hosts.add(s.host);
    for (const r of config.routes) for (const h of r.hostnames ?? []) hosts.add(h);
    return alertRules({
      selector: p.selector ?? (g.metricsMonitor ? `namespace="${g.namespaceName}", job="${g.name}"` : `namespace="${g.namespaceName}"`),
      hosts: [...hosts].sort(),
      errorRatio: p.errorRatio ?? 0.05,
      minRequestRate: p.minRequestRate ?? 0.1,
      tlsFailures: p.tlsFailures ?? 1,
      denialRate: p.denialRate ?? 1,
      denialSpikeFactor: p.denialSpikeFactor ?? 3,
      saturation: p.saturation ?? 0.8,
      window: `${this.windowMin}m`,
      runbookUrl: p.runbookUrl,
      labels: { ...(p.alertLabels ?? {}) },
      gateway: { name: g.name, namespace: g.namespaceName },
    });
  }
}

/** Splits `a="x", b=~"y,z"` at the commas outside quotes. */
function splitMatchers(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted && c === '\\') {
      cur += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  if (cur.trim() !== '' || out.length > 0) out.push(cur);
  return out;
}

function ratio(problems: Problems, prop: string, v: number | undefined, example: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v >= 1) problems.add(prop, v, 'must be a ratio above 0 and below 1', `use e.g. ${example}`);
}

function positive(problems: Problems, prop: string, v: number | undefined, example: number, zeroOk: boolean): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!zeroOk && v === 0)) {
    problems.add(prop, v, `must be a number ${zeroOk ? 'of at least 0' : 'above 0'}`, `use e.g. ${example}`);
  }
}
