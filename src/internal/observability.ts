// What the gateway's alerts and dashboard read: the proxy's metric names (src/proxy/metrics.ts and
// operate-metrics.ts export them), the PromQL of every alert, and the Grafana dashboard. Pure data,
// no constructs: the constructs render it, the tests parse it and check it against a live /metrics.

/** Metric families the alerts and the dashboard use, as the proxy exports them. */
export const METRICS = {
  httpStatuses: 'outbound_http_route_request_statuses_total',
  httpDuration: 'outbound_http_route_request_duration_seconds',
  httpBackendRequests: 'outbound_http_route_backend_requests_total',
  grpcStatuses: 'outbound_grpc_route_request_statuses_total',
  tcpOpen: 'outbound_tcp_route_open_total',
  tcpClose: 'outbound_tcp_route_close_total',
  tlsOpen: 'outbound_tls_route_open_total',
  tlsClose: 'outbound_tls_route_close_total',
  retryRequests: 'outbound_http_route_retry_requests_total',
  retrySuccesses: 'outbound_http_route_retry_successes_total',
  retryLimitExceeded: 'outbound_http_route_retry_limit_exceeded_total',
  retryOverflow: 'outbound_http_route_retry_overflow_total',
  denials: 'egress_policy_denials_total',
  addressRefusals: 'egress_address_refusals_total',
  reloadFailures: 'egress_config_reload_failures_total',
  reloadSuccesses: 'egress_config_reload_successes_total',
  ready: 'egress_ready',
  inflight: 'egress_inflight',
  inflightLimit: 'egress_inflight_limit',
  clientConnections: 'egress_client_connections',
  clientConnectionsRefused: 'egress_client_connections_refused_total',
} as const;

/**
 * Labels Prometheus adds to every scraped series (target labels), which the proxy itself never
 * exports. The ServiceMonitor and PodMonitor the library renders set `job` to the gateway's name;
 * `namespace` and `pod` come from the Kubernetes service discovery of both.
 */
export const TARGET_LABELS = ['job', 'namespace', 'pod', 'instance'] as const;

/** The error code of a TLS failure towards an upstream (src/proxy/errors.ts). */
export const TLS_FAILED = 'TLS_FAILED';

/** Escapes `s` for a PromQL double-quoted string. */
export function promString(s: string): string {
  return JSON.stringify(s);
}

/** Escapes `s` so that it matches itself literally in a PromQL (RE2) regular expression. */
export function regexLiteral(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

/** `name{a, b}` with empty parts left out. */
function sel(metric: string, ...matchers: string[]): string {
  const m = matchers.filter((x) => x.length > 0);
  return m.length > 0 ? `${metric}{${m.join(', ')}}` : metric;
}

/** Thresholds and windows of the alerts (validated by the EgressAlerts construct). */
export interface AlertSettings {
  /** PromQL label matchers that pick this gateway's series, e.g. `namespace="egress", job="egress-gateway"`. */
  readonly selector: string;
  /** Hostnames (as the `hostname` label carries them) whose error ratio is watched; empty: every host. */
  readonly hosts: readonly string[];
  readonly errorRatio: number;
  readonly minRequestRate: number;
  readonly tlsFailures: number;
  readonly denialRate: number;
  readonly denialSpikeFactor: number;
  readonly saturation: number;
  /** Rate window, e.g. "5m". */
  readonly window: string;
  readonly runbookUrl?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly gateway: { readonly name: string; readonly namespace: string };
}

/** One alerting rule in the Prometheus Operator's PrometheusRule shape. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

interface AlertDef {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly severity: 'critical' | 'warning';
  readonly summary: string;
  readonly description: string;
  /** The first thing an on-call engineer checks. */
  readonly runbook: string;
}

/** The alerting rules of one gateway. */
export function alertRules(s: AlertSettings): AlertRule[] {
  const S = s.selector;
  const W = s.window;
  const hosts = s.hosts.length > 0 ? `hostname=~${promString(s.hosts.map(regexLiteral).join('|'))}` : '';
  const byHost = 'sum by (hostname)';
  const requests = `${byHost} (rate(${sel(METRICS.httpStatuses, S, hosts)}[${W}]))`;
  const errors = `${byHost} (rate(${sel(METRICS.httpStatuses, S, hosts, 'http_status=~"5.."')}[${W}]))`;
  const denials = (range: string, offset = '') => `sum(rate(${sel(METRICS.denials, S, 'mode="enforce"')}[${range}]${offset}))`;
  const gw = `${s.gateway.namespace}/${s.gateway.name}`;

  const defs: AlertDef[] = [
    {
      alert: 'EgressHostErrorRatioHigh',
      expr: `(${errors} / ${requests}) > ${s.errorRatio} and ${requests} > ${s.minRequestRate}`,
      for: '10m',
      severity: 'warning',
      summary: 'Calls to an external host through the egress gateway fail',
      description: `More than ${pct(s.errorRatio)} of the calls to {{ $labels.hostname }} through egress gateway ${gw} got a 5xx answer over ${W} ({{ $value | humanizePercentage }}).`,
      runbook: 'Look at the error label of outbound_http_route_request_statuses_total for the host: UPSTREAM_* and 5xx statuses point at the provider (check its status page), DNS_*/CONNECT_* at the network path, *_TIMEOUT at timeouts too short for the API.',
    },
    {
      alert: 'EgressTlsVerificationFailures',
      expr: `${byHost} (increase(${sel(METRICS.httpStatuses, S, `error="${TLS_FAILED}"`)}[${W}])) >= ${s.tlsFailures}`
        + ` or ${byHost} (increase(${sel(METRICS.tcpClose, S, `error="${TLS_FAILED}"`)}[${W}])) >= ${s.tlsFailures}`,
      for: '0m',
      severity: 'critical',
      summary: 'The egress gateway cannot verify an upstream\'s TLS certificate',
      description: `TLS towards {{ $labels.hostname }} failed {{ $value }} times in ${W} at egress gateway ${gw}; the calls were refused, never sent unverified.`,
      runbook: 'Read the errorDetail of the gateway\'s log lines for the host (expired or self-signed certificate, wrong name, unknown CA, client certificate refused): renew or fix the trust (caCertificate, serverName, subjectAltNames) or the client certificate; never switch verification off to make it pass.',
    },
    {
      alert: 'EgressDenialsSpiking',
      expr: `${denials(W)} > ${s.denialRate} and ${denials(W)} > ${s.denialSpikeFactor} * (${denials('1h', ' offset 1h')} or vector(0))`,
      for: '5m',
      severity: 'warning',
      summary: 'The egress gateway denies far more calls than an hour ago',
      description: `Egress gateway ${gw} denies {{ $value | humanize }} calls per second, over ${s.denialSpikeFactor} times the rate of the hour before: a policy change that left out a host, or a new workload calling an undeclared host.`,
      runbook: 'Group egress_policy_denials_total by route_name, hostname and reason to see what is denied, then compare with the last change to the EgressNetwork, routes or ExternalServices (git log of the cdk8s app); roll back, or declare the host.',
    },
    {
      alert: 'EgressConfigReloadFailed',
      expr: `increase(${sel(METRICS.reloadFailures, S)}[15m]) > 0`,
      for: '0m',
      severity: 'warning',
      summary: 'An egress gateway pod rejected a new config or certificate',
      description: `Pod {{ $labels.pod }} of egress gateway ${gw} rejected a config or rotated certificate file in the last 15 minutes and keeps serving the last good one.`,
      runbook: 'The pod\'s log has a config-reload-failed or material-reload-failed line listing every problem; fix the ConfigMap or the Secret (a certificate that does not match its key, a missing key), or run the proxy with --check-config on the file.',
    },
    {
      alert: 'EgressRetryBudgetExhausted',
      expr: `sum by (route_kind, route_namespace, route_name, hostname) (rate(${sel(METRICS.retryOverflow, S)}[${W}])) > 0`,
      for: '5m',
      severity: 'warning',
      summary: 'The egress gateway\'s retry budget is spent',
      description: `Retries towards {{ $labels.hostname }} (route {{ $labels.route_name }}) at egress gateway ${gw} are refused by the retry budget: the upstream fails more than retries can hide.`,
      runbook: 'The upstream is failing persistently: check EgressHostErrorRatioHigh for the same host and the provider\'s status. Raising the budget only multiplies the load on a failing upstream.',
    },
    {
      alert: 'EgressGatewayNotReady',
      expr: `${sel(METRICS.ready, S)} == 0`,
      for: '5m',
      severity: 'critical',
      summary: 'An egress gateway pod is not ready',
      description: `Pod {{ $labels.pod }} of egress gateway ${gw} has reported not ready for 5 minutes: it has no valid config or is stuck draining.`,
      runbook: 'kubectl describe the pod and read its log: a first config that failed validation is listed problem by problem; a pod that drains for longer than shutdownGrace is killed by Kubernetes.',
    },
    {
      alert: 'EgressGatewayAbsent',
      expr: `absent(${sel(METRICS.ready, S)})`,
      for: '10m',
      severity: 'critical',
      summary: 'No egress gateway pod is scraped',
      description: `Prometheus has scraped no pod of egress gateway ${gw} for 10 minutes: the gateway is down, or its ServiceMonitor, PodMonitor or NetworkPolicy keeps the scraper out.`,
      runbook: 'kubectl get pods for the gateway; if they run, check the Prometheus targets page for the gateway\'s job and that the gateway\'s NetworkPolicy admits the scraper on the admin port (metricsScrapers).',
    },
    {
      alert: 'EgressGatewaySaturated',
      expr: `${sel(METRICS.inflight, S)} / ${sel(METRICS.inflightLimit, S)} > ${s.saturation}`,
      for: '5m',
      severity: 'warning',
      summary: 'An egress gateway pod is close to its concurrency limit',
      description: `Pod {{ $labels.pod }} of egress gateway ${gw} holds {{ $value | humanizePercentage }} of its concurrent request limit; at the limit new calls get 503.`,
      runbook: 'Slow upstreams hold requests open: check the latency panel for the hosts. Add replicas (or autoscaling), or raise maxConcurrentRequests if the pods have CPU and memory to spare.',
    },
    {
      alert: 'EgressClientConnectionsRefused',
      expr: `sum by (pod, listener) (rate(${sel(METRICS.clientConnectionsRefused, S)}[${W}])) > 0`,
      for: '5m',
      severity: 'warning',
      summary: 'An egress gateway pod refuses client connections',
      description: `Pod {{ $labels.pod }} of egress gateway ${gw} closes new {{ $labels.listener }} connections at accept: maxClientConnections are open.`,
      runbook: 'Clients open more connections than the pod admits: look for a client that does not reuse connections (egress_client_connections per pod), add replicas, or raise maxClientConnections.',
    },
  ];
  return defs.map((d) => ({
    alert: d.alert,
    expr: d.expr,
    for: d.for,
    labels: { severity: d.severity, ...s.labels },
    annotations: {
      summary: d.summary,
      description: d.description,
      runbook: d.runbook,
      ...(s.runbookUrl ? { runbook_url: `${s.runbookUrl}#${d.alert.toLowerCase()}` } : {}),
    },
  }));
}

function pct(ratio: number): string {
  return `${Number((ratio * 100).toFixed(4))}%`;
}

/* ------------------------------------------------------------------------- dashboard */

/** The dashboard's uid: stable, so a re-import replaces the dashboard instead of copying it. */
export const DASHBOARD_UID = 'cdk8s-egress-gateway';

const DS = { type: 'prometheus', uid: '${datasource}' };
const G = 'namespace=~"$namespace", job=~"$job"';
const GH = `${G}, hostname=~"$hostname"`;
const RI = '$__rate_interval';

interface PanelDef {
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly targets: ReadonlyArray<{ readonly expr: string; readonly legend: string }>;
  readonly w?: number;
  readonly type?: 'timeseries' | 'stat';
  readonly min?: number;
  readonly max?: number;
}

const rate = (metric: string, matchers: string, by: string) => `sum by (${by}) (rate(${metric}{${matchers}}[${RI}]))`;
/** Counter of opened minus counter of closed connections: what is open now (0 for a host with no close yet). */
const openNow = (open: string, close: string) =>
  `sum by (hostname) (${open}{${GH}}) - (sum by (hostname) (${close}{${GH}}) or sum by (hostname) (${open}{${GH}}) * 0)`;
const quantile = (q: number) =>
  `histogram_quantile(${q}, sum by (hostname, le) (rate(${METRICS.httpDuration}_bucket{${GH}}[${RI}])))`;

const ROWS: ReadonlyArray<{ readonly title: string; readonly panels: readonly PanelDef[] }> = [
  {
    title: 'Gateway',
    panels: [
      { type: 'stat', w: 6, title: 'Ready pods', unit: 'none', description: 'Pods reporting ready (config loaded, not draining).', targets: [{ expr: `sum(${METRICS.ready}{${G}})`, legend: 'ready' }] },
      { type: 'stat', w: 6, title: 'Requests', unit: 'reqps', description: 'HTTP and gRPC requests per second, every host.', targets: [{ expr: `sum(rate(${METRICS.httpStatuses}{${GH}}[${RI}]))`, legend: 'requests' }] },
      {
        type: 'stat',
        w: 6,
        title: 'Success rate',
        unit: 'percentunit',
        description: 'Share of requests not answered with a 5xx (denials are 403 and count as answered).',
        targets: [{ expr: `1 - (sum(rate(${METRICS.httpStatuses}{${GH}, http_status=~"5.."}[${RI}])) or vector(0)) / sum(rate(${METRICS.httpStatuses}{${GH}}[${RI}]))`, legend: 'success' }],
      },
      { type: 'stat', w: 6, title: 'Denials', unit: 'reqps', description: 'Requests and connections the policy denied per second.', targets: [{ expr: `sum(rate(${METRICS.denials}{${G}, mode="enforce"}[${RI}]))`, legend: 'denied' }] },
    ],
  },
  {
    title: 'Per host',
    panels: [
      { title: 'Request rate by host', unit: 'reqps', description: 'HTTP and gRPC requests per second, by configured hostname ("" is an undeclared host).', targets: [{ expr: rate(METRICS.httpStatuses, GH, 'hostname'), legend: '{{hostname}}' }] },
      {
        title: 'Success rate by host',
        unit: 'percentunit',
        min: 0,
        max: 1,
        description: 'Share of requests to each host not answered with a 5xx.',
        targets: [{
          expr: `1 - (${rate(METRICS.httpStatuses, `${GH}, http_status=~"5.."`, 'hostname')} or ${rate(METRICS.httpStatuses, GH, 'hostname')} * 0) / ${rate(METRICS.httpStatuses, GH, 'hostname')}`,
          legend: '{{hostname}}',
        }],
      },
      { title: 'Latency p50 by host', unit: 's', description: 'Median time from the first request byte to the end of the response.', targets: [{ expr: quantile(0.5), legend: '{{hostname}}' }] },
      { title: 'Latency p99 by host', unit: 's', description: '99th percentile of the time from the first request byte to the end of the response.', targets: [{ expr: quantile(0.99), legend: '{{hostname}}' }] },
      { title: 'Responses by status', unit: 'reqps', description: 'Responses per second by HTTP status.', targets: [{ expr: rate(METRICS.httpStatuses, GH, 'http_status'), legend: '{{http_status}}' }] },
      { title: 'Errors by code', unit: 'reqps', description: 'Failed requests per second by the proxy\'s error code (x-egress-error).', targets: [{ expr: rate(METRICS.httpStatuses, `${GH}, error!=""`, 'hostname, error'), legend: '{{hostname}} {{error}}' }] },
      { title: 'gRPC statuses', unit: 'reqps', description: 'gRPC calls per second by grpc-status name.', targets: [{ expr: rate(METRICS.grpcStatuses, GH, 'hostname, grpc_status'), legend: '{{hostname}} {{grpc_status}}' }] },
      { title: 'Route backends', unit: 'reqps', description: 'HTTP requests per second dispatched to each route backend, retries included.', targets: [{ expr: rate(METRICS.httpBackendRequests, G, 'route_name, backend_kind, backend_name'), legend: '{{route_name}} → {{backend_kind}}/{{backend_name}}' }] },
    ],
  },
  {
    title: 'Policy and TLS',
    panels: [
      { title: 'Denials by route', unit: 'reqps', description: 'Denied requests and connections per second by route and reason; mode="report-only" would have been denied.', targets: [{ expr: rate(METRICS.denials, G, 'route_kind, route_name, reason, mode'), legend: '{{route_kind}}/{{route_name}} {{reason}} ({{mode}})' }] },
      {
        title: 'TLS failures',
        unit: 'reqps',
        description: 'Requests and connections refused because the upstream\'s certificate did not verify (or the handshake failed).',
        targets: [
          { expr: rate(METRICS.httpStatuses, `${GH}, error="${TLS_FAILED}"`, 'hostname'), legend: 'http {{hostname}}' },
          { expr: rate(METRICS.tcpClose, `${GH}, error="${TLS_FAILED}"`, 'hostname'), legend: 'tcp {{hostname}}' },
        ],
      },
      { title: 'Refused addresses', unit: 'reqps', description: 'Resolved addresses the address policy refused (private, cluster and metadata ranges).', targets: [{ expr: rate(METRICS.addressRefusals, G, 'reason'), legend: '{{reason}}' }] },
      {
        title: 'Config reloads',
        unit: 'none',
        description: 'Config and certificate reloads applied and rejected (the last good config is kept).',
        targets: [
          { expr: `sum(increase(${METRICS.reloadSuccesses}{${G}}[${RI}]))`, legend: 'applied' },
          { expr: `sum(increase(${METRICS.reloadFailures}{${G}}[${RI}]))`, legend: 'rejected' },
        ],
      },
    ],
  },
  {
    title: 'Connections and retries',
    panels: [
      {
        title: 'Open tunnels',
        unit: 'none',
        description: 'CONNECT and TCP tunnels, and TLS passthrough connections, open now.',
        targets: [
          { expr: openNow(METRICS.tcpOpen, METRICS.tcpClose), legend: 'tcp {{hostname}}' },
          { expr: openNow(METRICS.tlsOpen, METRICS.tlsClose), legend: 'tls {{hostname}}' },
        ],
      },
      {
        title: 'Client connections',
        unit: 'none',
        description: 'Open client connections per pod, and connections refused at accept because maxClientConnections were open.',
        targets: [
          { expr: `sum by (pod) (${METRICS.clientConnections}{${G}})`, legend: 'open {{pod}}' },
          { expr: rate(METRICS.clientConnectionsRefused, G, 'pod, listener'), legend: 'refused/s {{pod}} {{listener}}' },
        ],
      },
      {
        title: 'In flight',
        unit: 'none',
        description: 'Concurrent requests and tunnels per pod against the limit (maxConcurrentRequests).',
        targets: [
          { expr: `sum by (pod) (${METRICS.inflight}{${G}})`, legend: 'in flight {{pod}}' },
          { expr: `max by (pod) (${METRICS.inflightLimit}{${G}})`, legend: 'limit {{pod}}' },
        ],
      },
      {
        title: 'Retries',
        unit: 'reqps',
        description: 'Retries sent, requests a retry rescued, requests still failing at maxRetries, and retries the budget refused.',
        targets: [
          { expr: rate(METRICS.retryRequests, GH, 'hostname'), legend: 'retries {{hostname}}' },
          { expr: rate(METRICS.retrySuccesses, GH, 'hostname'), legend: 'rescued {{hostname}}' },
          { expr: rate(METRICS.retryLimitExceeded, GH, 'hostname'), legend: 'limit exceeded {{hostname}}' },
          { expr: rate(METRICS.retryOverflow, GH, 'hostname'), legend: 'budget spent {{hostname}}' },
        ],
      },
    ],
  },
];

/** Template variables: the data source, then namespace, job and hostname read from the gateway's own series. */
const VARIABLES = [
  { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus' },
  { name: 'namespace', label: 'Namespace', query: `label_values(${METRICS.ready}, namespace)`, includeAll: false },
  { name: 'job', label: 'Gateway', query: `label_values(${METRICS.ready}{namespace=~"$namespace"}, job)`, includeAll: true },
  { name: 'hostname', label: 'Host', query: `label_values(${METRICS.httpStatuses}{namespace=~"$namespace", job=~"$job"}, hostname)`, includeAll: true },
] as const;

/** The Grafana dashboard (JSON model, schema 39), the same for every gateway: pick one with the variables. */
export function grafanaDashboard(): Record<string, unknown> {
  let id = 0;
  let y = 0;
  const panels: Record<string, unknown>[] = [];
  for (const row of ROWS) {
    panels.push({ id: ++id, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y: y++ }, panels: [] });
    let x = 0;
    for (const p of row.panels) {
      const w = p.w ?? 12;
      const h = p.type === 'stat' ? 4 : 8;
      if (x + w > 24) {
        x = 0;
        y += h;
      }
      panels.push({
        id: ++id,
        type: p.type ?? 'timeseries',
        title: p.title,
        description: p.description,
        datasource: DS,
        gridPos: { h, w, x, y },
        fieldConfig: {
          defaults: { unit: p.unit, ...(p.min !== undefined ? { min: p.min } : {}), ...(p.max !== undefined ? { max: p.max } : {}) },
          overrides: [],
        },
        options: p.type === 'stat'
          ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area' }
          : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
        targets: p.targets.map((t, i) => ({ refId: String.fromCharCode(65 + i), datasource: DS, expr: t.expr, legendFormat: t.legend, range: true })),
      });
      x += w;
      if (x >= 24) {
        x = 0;
        y += h;
      }
    }
    if (x > 0) y += 8;
  }
  return {
    uid: DASHBOARD_UID,
    title: 'Egress gateway',
    description: 'cdk8s-egress gateway: calls leaving the cluster by host, policy denials, TLS, tunnels, retries and connections.',
    tags: ['egress', 'cdk8s-egress', 'linkerd'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    annotations: { list: [] },
    links: [],
    templating: {
      list: VARIABLES.map((v) => (v.name === 'datasource'
        ? { name: v.name, label: v.label, type: 'datasource', query: v.query, current: {}, hide: 0, refresh: 1 }
        : {
          name: v.name,
          label: v.label,
          type: 'query',
          datasource: DS,
          query: { query: v.query, refId: `${v.name}-query` },
          definition: v.query,
          refresh: 2,
          sort: 1,
          current: {},
          hide: 0,
          multi: v.includeAll,
          includeAll: v.includeAll,
          ...(v.includeAll ? { allValue: '.*' } : {}),
        })),
    },
    panels,
  };
}
