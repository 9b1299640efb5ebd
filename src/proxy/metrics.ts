// Prometheus metrics named and labelled like Linkerd's outbound route metrics, on a registry of
// the proxy's own, plus config reload health. Label sets are cached per route and hostname.
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BaseLabels, PARENT_ROUTE_LABELS } from './metric-labels';
import { OperateMetrics } from './operate-metrics';
import type { RouteRef } from './policy';
import { CounterFamily, HistogramFamily } from './series';
import type { ParentSpec } from '../model/proxy-config';

/**
 * Declared on the route families but set only with callers.metricsLabel: prom-client leaves a
 * label out of a series that does not set it, so without the option the series are unchanged.
 */
const CALLER_LABEL = 'caller';

/** Seconds; Linkerd's buckets, covering a fast cache hit to a slow third-party API. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class ProxyMetrics {
  public readonly registry = new Registry();
  /** Updated once or twice per request: series resolved once per label object (series.ts). */
  public readonly httpStatuses: CounterFamily;
  public readonly httpDuration: HistogramFamily;
  public readonly grpcStatuses: CounterFamily;
  public readonly tlsOpen: Counter<string>;
  public readonly tlsClose: Counter<string>;
  public readonly tcpOpen: Counter<string>;
  public readonly tcpClose: Counter<string>;
  public readonly reloadFailures: Counter<string>;
  public readonly reloadSuccesses: Counter<string>;
  public readonly lastReloadSuccess: Gauge<string>;
  public readonly inflight: Gauge<string>;
  public readonly addressRefusals: Counter<string>;
  public readonly retryRequests: Counter<string>;
  public readonly retrySuccesses: Counter<string>;
  public readonly retryLimitExceeded: Counter<string>;
  public readonly retryOverflow: Counter<string>;
  public readonly clientConnections: Gauge<string>;
  public readonly clientConnectionsRefused: Counter<string>;
  public readonly clientHeadersTimeouts: Counter<string>;
  /** Route-backend and gRPC duration families, denials, readiness and the concurrency limit. */
  public readonly operate: OperateMetrics;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const base = [...PARENT_ROUTE_LABELS, CALLER_LABEL];
    this.httpStatuses = new CounterFamily({
      name: 'outbound_http_route_request_statuses_total',
      help: 'HTTP requests by route and response status',
      labelNames: [...base, 'http_status', 'error'],
      registers,
    });
    this.httpDuration = new HistogramFamily({
      name: 'outbound_http_route_request_duration_seconds',
      help: 'HTTP request duration, first byte in to response end',
      labelNames: [...base, 'http_status', 'error'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.grpcStatuses = new CounterFamily({
      name: 'outbound_grpc_route_request_statuses_total',
      help: 'gRPC requests by route and grpc-status',
      labelNames: [...base, 'grpc_status', 'error'],
      registers,
    });
    this.tlsOpen = new Counter({ name: 'outbound_tls_route_open_total', help: 'TLS passthrough connections opened', labelNames: base, registers });
    this.tlsClose = new Counter({ name: 'outbound_tls_route_close_total', help: 'TLS passthrough connections closed', labelNames: [...base, 'error'], registers });
    this.tcpOpen = new Counter({ name: 'outbound_tcp_route_open_total', help: 'TCP connections opened', labelNames: base, registers });
    this.tcpClose = new Counter({ name: 'outbound_tcp_route_close_total', help: 'TCP connections closed', labelNames: [...base, 'error'], registers });
    this.reloadFailures = new Counter({ name: 'egress_config_reload_failures_total', help: 'Config reloads rejected (last good config kept)', registers });
    this.reloadSuccesses = new Counter({ name: 'egress_config_reload_successes_total', help: 'Config reloads applied', registers });
    this.lastReloadSuccess = new Gauge({
      name: 'egress_config_last_reload_success_timestamp_seconds', help: 'Unix time of the last config (re)load that was applied', registers,
    });
    this.inflight = new Gauge({ name: 'egress_inflight', help: 'In-flight requests and tunnels', registers });
    this.addressRefusals = new Counter({
      name: 'egress_address_refusals_total', help: 'Resolved addresses refused by address vetting', labelNames: ['reason'], registers,
    });
    // Linkerd's route retry counters: retries sent, requests that a retry rescued, requests still
    // failing when maxRetries ran out, and retries the budget refused.
    this.retryRequests = new Counter({ name: 'outbound_http_route_retry_requests_total', help: 'Retries sent (each retried attempt)', labelNames: base, registers });
    this.retrySuccesses = new Counter({
      name: 'outbound_http_route_retry_successes_total', help: 'Retried requests whose final answer was not retryable', labelNames: base, registers,
    });
    this.retryLimitExceeded = new Counter({
      name: 'outbound_http_route_retry_limit_exceeded_total', help: 'Requests still retryable when maxRetries was reached', labelNames: base, registers,
    });
    this.retryOverflow = new Counter({
      name: 'outbound_http_route_retry_overflow_total', help: 'Retries not sent because the retry budget was spent', labelNames: base, registers,
    });
    this.clientConnections = new Gauge({
      name: 'egress_client_connections', help: 'Open client connections on the HTTP, TLS passthrough and TCP listeners', registers,
    });
    this.clientConnectionsRefused = new Counter({
      name: 'egress_client_connections_refused_total',
      help: 'Client connections closed at accept because limits.maxClientConnections were open',
      labelNames: ['listener'],
      registers,
    });
    this.clientHeadersTimeouts = new Counter({
      name: 'egress_client_request_headers_timeouts_total',
      help: 'Client connections closed because their first request headers were not complete within timeouts.requestHeadersMs of accept',
      registers,
    });
    this.operate = new OperateMetrics(this.registry);
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }
}

/** Caches BaseLabels so the hot path only does map lookups. One per loaded config. */
export class LabelCache {
  private readonly byPort = new Map<number, Map<string, Map<string, Map<string, Map<string, BaseLabels>>>>>();
  private readonly byCaller = new WeakMap<BaseLabels, Map<string, BaseLabels>>();
  constructor(private readonly parent: ParentSpec, private readonly sectionName = '') {}

  public get(parentPort: number, route: RouteRef, hostname: string): BaseLabels {
    let kinds = this.byPort.get(parentPort);
    if (!kinds) this.byPort.set(parentPort, (kinds = new Map()));
    let nss = kinds.get(route.kind);
    if (!nss) kinds.set(route.kind, (nss = new Map()));
    let names = nss.get(route.namespace);
    if (!names) nss.set(route.namespace, (names = new Map()));
    let hosts = names.get(route.name);
    if (!hosts) names.set(route.name, (hosts = new Map()));
    let labels = hosts.get(hostname);
    if (!labels) {
      labels = Object.freeze({
        parent_group: this.parent.group,
        parent_kind: this.parent.kind,
        parent_namespace: this.parent.namespace,
        parent_name: this.parent.name,
        parent_port: String(parentPort),
        parent_section_name: this.sectionName,
        route_group: route.group,
        route_kind: route.kind,
        route_namespace: route.namespace,
        route_name: route.name,
        hostname,
      });
      hosts.set(hostname, labels);
    }
    return labels;
  }

  /** `base` with a `caller` label (callers.metricsLabel), cached like the rest. */
  public withCaller(base: BaseLabels, caller: string): BaseLabels {
    let byCaller = this.byCaller.get(base);
    if (!byCaller) this.byCaller.set(base, (byCaller = new Map()));
    let labels = byCaller.get(caller);
    if (!labels) byCaller.set(caller, (labels = Object.freeze({ ...base, [CALLER_LABEL]: caller })));
    return labels;
  }
}

/** Per (base labels) cache of the full label objects with status and error. */
export class OutcomeLabels {
  private readonly cache = new WeakMap<BaseLabels, Map<string, Map<string, Record<string, string>>>>();
  constructor(private readonly statusLabel: 'http_status' | 'grpc_status') {}
  public get(base: BaseLabels, status: string, error: string): Record<string, string> {
    let byStatus = this.cache.get(base);
    if (!byStatus) this.cache.set(base, (byStatus = new Map()));
    let byError = byStatus.get(status);
    if (!byError) byStatus.set(status, (byError = new Map()));
    let labels = byError.get(error);
    if (!labels) {
      labels = { ...base, [this.statusLabel]: status, error };
      byError.set(error, labels);
    }
    return labels;
  }
}
