// Metrics beyond the route statuses that alerts and the dashboard read: Linkerd's route-backend
// families and gRPC durations, policy denials by reason, readiness and the concurrency limit.
// eslint-disable-next-line import/no-extraneous-dependencies
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Decision } from './decide';
import type { BaseLabels } from './metric-labels';
import { CounterFamily, HistogramFamily } from './series';
import type { BackendRefSpec } from '../model/proxy-config';

/** Cache key of the parent-as-backend labels. */
const PARENT_BACKEND = Symbol('parent');

const BACKEND_LABELS = [
  'backend_group', 'backend_kind', 'backend_namespace', 'backend_name', 'backend_port', 'backend_section_name',
] as const;

/** Linkerd's backend reference labels (`backend_*`), next to the parent and route labels. */
export type BackendRefLabels = Readonly<Record<typeof BACKEND_LABELS[number], string>>;

/** Parent and route labels without `hostname`: Linkerd's route-backend families do not carry it. */
const ROUTE_BACKEND_BASE = [
  'parent_group', 'parent_kind', 'parent_namespace', 'parent_name', 'parent_port', 'parent_section_name',
  'route_group', 'route_kind', 'route_namespace', 'route_name',
] as const;

/** Seconds; the same buckets as the route histograms so the two can be compared. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Linkerd labels gRPC statuses by name; a missing or unknown code is UNKNOWN, as there. */
const GRPC_STATUS_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** The name Linkerd gives a grpc-status value ("14" → "UNAVAILABLE"). */
export function grpcStatusName(code: string): string {
  return /^\d{1,2}$/.test(code) ? (GRPC_STATUS_NAMES[Number(code)] ?? 'UNKNOWN') : 'UNKNOWN';
}

/** Where a denial was enforced or only reported (EnforcementMode). */
export type DenialMode = 'enforce' | 'report-only';

export class OperateMetrics {
  /** Per-request families: series resolved once per label object (series.ts). */
  public readonly httpBackendRequests: CounterFamily;
  public readonly httpBackendStatuses: CounterFamily;
  public readonly httpBackendDuration: HistogramFamily;
  public readonly grpcRouteDuration: HistogramFamily;
  public readonly grpcBackendRequests: CounterFamily;
  public readonly grpcBackendStatuses: CounterFamily;
  public readonly grpcBackendDuration: HistogramFamily;
  public readonly denials: Counter<string>;
  public readonly ready: Gauge<string>;
  public readonly inflightLimit: Gauge<string>;
  private readiness?: () => boolean;
  private limit?: () => number | undefined;
  /** Route-backend label objects, per route labels and backend. */
  private readonly backendCache = new WeakMap<BaseLabels, Map<BackendRefSpec | typeof PARENT_BACKEND, Record<string, string>>>();
  /** Route-backend labels with a status and error, per route-backend labels, status and error. */
  private readonly outcomeCache = new WeakMap<Record<string, string>, Map<string, Map<string, Record<string, string>>>>();

  constructor(registry: Registry) {
    const registers = [registry];
    const rb = [...ROUTE_BACKEND_BASE, ...BACKEND_LABELS];
    this.httpBackendRequests = new CounterFamily({
      name: 'outbound_http_route_backend_requests_total', help: 'HTTP requests dispatched to a route backend (each attempt)', labelNames: rb, registers,
    });
    this.httpBackendStatuses = new CounterFamily({
      name: 'outbound_http_route_backend_response_statuses_total', help: 'HTTP responses from a route backend by status', labelNames: [...rb, 'http_status', 'error'], registers,
    });
    this.httpBackendDuration = new HistogramFamily({
      name: 'outbound_http_route_backend_response_duration_seconds', help: 'HTTP request duration at a route backend, dispatch to response end', labelNames: rb, buckets: DURATION_BUCKETS, registers,
    });
    this.grpcRouteDuration = new HistogramFamily({
      name: 'outbound_grpc_route_request_duration_seconds',
      help: 'gRPC call duration by route, first byte in to response end',
      labelNames: [...ROUTE_BACKEND_BASE, 'hostname'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.grpcBackendRequests = new CounterFamily({
      name: 'outbound_grpc_route_backend_requests_total', help: 'gRPC calls dispatched to a route backend (each attempt)', labelNames: rb, registers,
    });
    this.grpcBackendStatuses = new CounterFamily({
      name: 'outbound_grpc_route_backend_response_statuses_total', help: 'gRPC responses from a route backend by grpc-status', labelNames: [...rb, 'grpc_status', 'error'], registers,
    });
    this.grpcBackendDuration = new HistogramFamily({
      name: 'outbound_grpc_route_backend_response_duration_seconds', help: 'gRPC call duration at a route backend, dispatch to response end', labelNames: rb, buckets: DURATION_BUCKETS, registers,
    });
    this.denials = new Counter({
      name: 'egress_policy_denials_total',
      help: 'Requests and connections the policy denied (mode="report-only": would have denied), by route and reason',
      labelNames: ['route_group', 'route_kind', 'route_namespace', 'route_name', 'hostname', 'protocol', 'reason', 'mode', 'caller'],
      registers,
    });
    // Workers of one pod are ready only together: the aggregated value is the lowest.
    const self = this;
    this.ready = new Gauge({
      name: 'egress_ready',
      help: '1 when the proxy has a config and is not draining, else 0',
      registers,
      aggregator: 'min',
      collect() {
        this.set(self.readiness?.() ? 1 : 0);
      },
    });
    this.inflightLimit = new Gauge({
      name: 'egress_inflight_limit',
      help: 'Concurrent requests and tunnels allowed before new ones get 503 (limits.maxConcurrent)',
      registers,
      collect() {
        const l = self.limit?.();
        if (l !== undefined) this.set(l);
      },
    });
  }

  /** Reads readiness and the live concurrency limit at scrape time. */
  public bind(readiness: () => boolean, limit: () => number | undefined): void {
    this.readiness = readiness;
    this.limit = limit;
  }

  /**
   * Route-backend labels: the route's labels without hostname, plus the backend's. The backend is
   * the backendRef the route picked; without one the request went to the original destination,
   * and, as in Linkerd, the parent (the EgressNetwork) is then the backend. Cached per config object.
   */
  public backendLabels(base: BaseLabels, ref: BackendRefSpec | undefined): Record<string, string> {
    let byRef = this.backendCache.get(base);
    if (!byRef) this.backendCache.set(base, (byRef = new Map()));
    const key = ref ?? PARENT_BACKEND;
    let labels = byRef.get(key);
    if (!labels) {
      const { hostname: _hostname, ...route } = base;
      const backend: BackendRefLabels = ref === undefined
        ? {
          backend_group: base.parent_group,
          backend_kind: base.parent_kind,
          backend_namespace: base.parent_namespace,
          backend_name: base.parent_name,
          backend_port: base.parent_port,
          backend_section_name: base.parent_section_name,
        }
        : {
          backend_group: ref.kind === 'Service' ? 'core' : 'policy.linkerd.io',
          backend_kind: ref.kind,
          backend_namespace: ref.namespace,
          backend_name: ref.name,
          backend_port: ref.port === undefined ? '' : String(ref.port),
          backend_section_name: '',
        };
      labels = { ...route, ...backend };
      byRef.set(key, labels);
    }
    return labels;
  }

  /** Route-backend labels with a status label and error. Cached. */
  public outcomeLabels(labels: Record<string, string>, statusLabel: 'http_status' | 'grpc_status', status: string, error: string): Record<string, string> {
    let byStatus = this.outcomeCache.get(labels);
    if (!byStatus) this.outcomeCache.set(labels, (byStatus = new Map()));
    let byError = byStatus.get(status);
    if (!byError) byStatus.set(status, (byError = new Map()));
    let out = byError.get(error);
    if (!out) {
      out = { ...labels, [statusLabel]: status, error };
      byError.set(error, out);
    }
    return out;
  }

  /**
   * One finished HTTP or gRPC exchange the policy allowed: the route-backend families (gRPC calls
   * in the gRPC ones, as Linkerd splits them) and the gRPC route duration.
   */
  public observeExchange(base: BaseLabels, decision: Decision, x: {
    grpc: boolean; httpStatus: string; grpcStatus: string; error: string; seconds: number; attempts: number;
  }): void {
    if (decision.action !== 'allow') return;
    const labels = this.backendLabels(base, decision.backendRef);
    const attempts = Math.max(1, x.attempts);
    if (x.grpc) {
      this.grpcRouteDuration.observe(base, x.seconds);
      this.grpcBackendRequests.inc(labels, attempts);
      this.grpcBackendStatuses.inc(this.outcomeLabels(labels, 'grpc_status', grpcStatusName(x.grpcStatus), x.error));
      this.grpcBackendDuration.observe(labels, x.seconds);
    } else {
      this.httpBackendRequests.inc(labels, attempts);
      this.httpBackendStatuses.inc(this.outcomeLabels(labels, 'http_status', x.httpStatus, x.error));
      this.httpBackendDuration.observe(labels, x.seconds);
    }
  }

  /**
   * Counts a denial (or, in report-only mode, a denial that was only reported). `caller`: the
   * bounded caller label, only with callers.metricsLabel.
   */
  public observeDecision(base: BaseLabels, decision: Decision, protocol: string, caller?: string): void {
    let reason: string;
    let mode: DenialMode;
    if (decision.action === 'deny') {
      reason = decision.reason;
      mode = 'enforce';
    } else if (decision.reportOnly && decision.wouldReason) {
      reason = decision.wouldReason;
      mode = 'report-only';
    } else {
      return;
    }
    const labels: Record<string, string> = {
      route_group: base.route_group,
      route_kind: base.route_kind,
      route_namespace: base.route_namespace,
      route_name: base.route_name,
      hostname: base.hostname,
      protocol,
      reason,
      mode,
    };
    if (caller !== undefined) labels.caller = caller;
    this.denials.inc(labels);
  }
}
