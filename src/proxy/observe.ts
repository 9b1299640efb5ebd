// Observe: turn one finished request or connection into its metrics (Linkerd-named, bounded
// labels) and its single canonical log line. The last stage: it owns HttpOutcome, the record the
// forward stage fills in as an exchange goes.
import type { CallerResolution } from './caller';
import type { Decision, Target } from './decide';
import { POLICY_DENIAL_CODES, type EgressErrorCode } from './errors';
import { ms, type AccessRecord } from './log';
import type { BaseLabels } from './metric-labels';
import { OutcomeLabels } from './metrics';
import { grpcStatusName } from './operate-metrics';
import { callerLabel, type RouteRef } from './policy';
import type { ProxyContext, RuntimeState } from './runtime';
import type { Candidate, OpenedUpstream, UpstreamPlan } from './upstream';

const httpOutcomeLabels = new OutcomeLabels('http_status');
const grpcOutcomeLabels = new OutcomeLabels('grpc_status');

function routeText(r: RouteRef): string {
  return r.kind === 'default' ? r.name : `${r.kind}/${r.namespace}/${r.name}`;
}

/** What became of one HTTP or gRPC exchange, filled in as it goes and observed when it ends. */
export interface HttpOutcome {
  status: number;
  error?: EgressErrorCode;
  errorDetail?: string;
  grpcStatus?: string;
  bytesIn: number;
  bytesOut: number;
  candidate?: Candidate;
  attempts: number;
  ttfbMs?: number;
  /** Set when this request waited for a new upstream connection (else it reused one). */
  connectMs?: number;
  tlsMs?: number;
  /** Retries sent for this request (Linkerd's retry_requests). */
  retries?: number;
  /**
   * How retrying ended, when it mattered: 'success' (a retried request got an answer the policy
   * does not retry), 'limit-exceeded' (still retryable at maxRetries), 'overflow' (budget spent).
   */
  retryEnd?: 'success' | 'limit-exceeded' | 'overflow';
}

export interface HttpRecord {
  readonly target?: Target;
  readonly decision?: Decision;
  readonly plan?: UpstreamPlan;
  readonly parentPort: number;
  readonly grpc: boolean;
  readonly outcome: HttpOutcome;
  readonly started: number;
  readonly method?: string;
  /** Who called; undefined when callers are not identified (source None). */
  readonly caller?: CallerResolution;
}

/** The access log's caller: the identity (null when unknown, and why) and whether the peer was trusted. */
function callerField(c: CallerResolution | undefined): AccessRecord['caller'] {
  if (!c) return undefined;
  return c.caller ? { identity: c.caller.identity, trusted: c.trustedPeer } : { identity: null, trusted: c.trustedPeer, unknown: c.unknown };
}

/** The `caller` metric label, when callers.metricsLabel asks for it (bounded: see callerLabel()). */
function metricCaller(state: RuntimeState, c: CallerResolution | undefined): string | undefined {
  return state.policy.callers.metricsLabel ? callerLabel(state.policy, c?.caller) : undefined;
}

/** The route labels with that `caller` label; `base` itself without one (nothing allocated per request). */
function routeLabelsOf(state: RuntimeState, base: BaseLabels, caller: string | undefined): BaseLabels {
  return caller === undefined ? base : state.labels.withCaller(base, caller);
}

/** Count and log one HTTP or gRPC exchange. Requests refused before a decision are logged only. */
export function observeHttp(ctx: ProxyContext, state: RuntimeState, r: HttpRecord): void {
  const totalMs = performance.now() - r.started;
  const o = r.outcome;
  if (r.decision && r.target) {
    // parent_port is the port the client addressed (the Host port names a service port).
    const base = state.labels.get(r.target.port, r.decision.route, state.hostnameLabel(r.target.host, r.decision.externalService));
    // Linkerd reports a policy deny as a plain 403 response (error=""); proxy failures name their code.
    const error = o.error && !POLICY_DENIAL_CODES.has(o.error) ? o.error : '';
    const status = String(o.status);
    const caller = metricCaller(state, r.caller);
    const routeLabels = routeLabelsOf(state, base, caller);
    const labels = httpOutcomeLabels.get(routeLabels, status, error);
    ctx.metrics.httpStatuses.inc(labels);
    ctx.metrics.httpDuration.observe(labels, totalMs / 1000);
    // Linkerd names gRPC statuses ("UNAVAILABLE"), a missing or unknown one being UNKNOWN, on the
    // route and the route-backend families alike.
    if (r.grpc) ctx.metrics.grpcStatuses.inc(grpcOutcomeLabels.get(routeLabels, grpcStatusName(o.grpcStatus ?? ''), error));
    if (o.retries) ctx.metrics.retryRequests.inc(base, o.retries);
    if (o.retryEnd === 'success') ctx.metrics.retrySuccesses.inc(base);
    else if (o.retryEnd === 'limit-exceeded') ctx.metrics.retryLimitExceeded.inc(base);
    else if (o.retryEnd === 'overflow') ctx.metrics.retryOverflow.inc(base);
    ctx.metrics.operate.observeDecision(base, r.decision, r.grpc ? 'grpc' : 'http', caller);
    ctx.metrics.operate.observeExchange(base, r.decision, {
      grpc: r.grpc, httpStatus: status, grpcStatus: o.grpcStatus ?? '', error, seconds: totalMs / 1000, attempts: o.attempts,
    });
  }
  const c = o.candidate;
  const line: AccessRecord = {
    kind: r.grpc ? 'grpc' : 'http',
    decision: r.decision?.action,
    reason: r.decision?.reason,
    route: r.decision ? routeText(r.decision.route) : undefined,
    host: r.target?.host,
    port: r.target?.port,
    method: r.method,
    path: r.target?.path,
    caller: callerField(r.caller),
    upstream: r.plan ? { host: r.plan.host, address: c?.address, port: c?.port ?? r.plan.port, tls: r.plan.tls !== undefined } : undefined,
    status: o.status,
    error: o.error,
    errorDetail: o.errorDetail,
    bytesIn: o.bytesIn,
    bytesOut: o.bytesOut,
    attempts: o.attempts,
    retries: o.retries,
    durations: { dns: ms(c?.dnsMs), connect: ms(o.connectMs), tls: ms(o.tlsMs), ttfb: ms(o.ttfbMs), total: ms(totalMs) },
  };
  if (r.decision?.reportOnly) (line as AccessRecord & { reportOnly: boolean }).reportOnly = true;
  ctx.logger.info(line, 'request');
}

export interface TunnelRecord {
  kind: 'connect' | 'tls' | 'tcp';
  parentPort: number;
  target?: Target;
  decision?: Decision;
  opened?: OpenedUpstream;
  error?: EgressErrorCode;
  errorDetail?: string;
  bytesIn: number;
  bytesOut: number;
  started: number;
  /** Who called (CONNECT: from its headers; TLS passthrough and TCP: always unknown). Undefined with source None. */
  caller?: CallerResolution;
}

/**
 * 'open' counts the opened connection; 'close' (the default) counts its end and writes the log
 * line. A denied or failed connection is only ever closed, with error="forbidden" for a deny.
 */
export function observeTunnel(ctx: ProxyContext, state: RuntimeState, r: TunnelRecord, phase: 'open' | 'close' = 'close'): void {
  if (r.decision && r.target) {
    const base = state.labels.get(r.parentPort, r.decision.route, state.hostnameLabel(r.target.host, r.decision.externalService));
    const caller = metricCaller(state, r.caller);
    const routeLabels = routeLabelsOf(state, base, caller);
    const tls = r.target.protocol === 'tls';
    if (phase === 'open') {
      (tls ? ctx.metrics.tlsOpen : ctx.metrics.tcpOpen).inc(routeLabels);
      return;
    }
    ctx.metrics.operate.observeDecision(base, r.decision, r.kind, caller);
    const error = r.error && POLICY_DENIAL_CODES.has(r.error) ? 'forbidden' : (r.error ?? '');
    (tls ? ctx.metrics.tlsClose : ctx.metrics.tcpClose).inc({ ...routeLabels, error });
  } else if (phase === 'open') {
    return;
  }
  const c = r.opened?.candidate;
  const line: AccessRecord = {
    kind: r.kind,
    decision: r.decision?.action,
    reason: r.decision?.reason,
    route: r.decision ? routeText(r.decision.route) : undefined,
    host: r.target?.host,
    port: r.target?.port,
    caller: callerField(r.caller),
    upstream: c ? { host: c.host, address: c.address, port: c.port, tls: r.opened?.tlsMs !== undefined } : undefined,
    error: r.error,
    errorDetail: r.errorDetail,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    attempts: r.opened?.attempts,
    durations: { dns: ms(c?.dnsMs), connect: ms(r.opened?.connectMs), tls: ms(r.opened?.tlsMs), total: ms(performance.now() - r.started) },
  };
  ctx.logger.info(line, 'connection');
}
