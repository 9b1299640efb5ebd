// Observe: turn one finished request or connection into its metrics (Linkerd-named, bounded
// labels) and its single canonical log line. The last stage: it owns HttpOutcome, the record the
// forward stage fills in as an exchange goes.
import type { CallerResolution } from './caller';
import type { Decision, Target } from './decide';
import { POLICY_DENIAL_CODES, type EgressErrorCode } from './errors';
import { ACCESS_LEVEL, jsonNumber, jsonString, ms, writeAccessLine } from './log';
import type { BaseLabels } from './metric-labels';
import { OutcomeLabels } from './metrics';
import { grpcStatusName } from './operate-metrics';
import { callerLabel, type RouteRef } from './policy';
import type { ProxyContext, RuntimeState } from './runtime';
import type { Candidate, OpenedUpstream, UpstreamPlan } from './upstream';

const httpOutcomeLabels = new OutcomeLabels('http_status');
const grpcOutcomeLabels = new OutcomeLabels('grpc_status');

/** The route as the access line names it, JSON-quoted; RouteRefs live as long as their config. */
const routeJson = new WeakMap<RouteRef, string>();
function routeText(r: RouteRef): string {
  let s = routeJson.get(r);
  if (s === undefined) {
    s = jsonString(r.kind === 'default' ? r.name : `${r.kind}/${r.namespace}/${r.name}`);
    routeJson.set(r, s);
  }
  return s;
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

/** The access line's caller: the identity (null when unknown, and why) and whether the peer was trusted. */
function callerJson(c: CallerResolution | undefined): string {
  if (!c) return '';
  if (c.caller) return `,"caller":{"identity":${jsonString(c.caller.identity)},"trusted":${c.trustedPeer}}`;
  return `,"caller":{"identity":null,"trusted":${c.trustedPeer}${c.unknown === undefined ? '' : `,"unknown":${jsonString(c.unknown)}`}}`;
}

/** `key` (`,"name":`) and the string, or nothing when it is undefined (as JSON.stringify omits it). */
function str(key: string, v: string | undefined): string {
  return v === undefined ? '' : key + jsonString(v);
}

/** `key` (`,"name":`) and the number, or nothing when it is undefined. */
function num(key: string, v: number | undefined): string {
  return v === undefined ? '' : key + jsonNumber(v);
}

/** The durations object (milliseconds, rounded to 0.1 ms); its absent members are omitted. */
function durationsJson(
  dns: number | undefined, connect: number | undefined, tls: number | undefined, ttfb: number | undefined, total: number,
): string {
  const d = num(',"dns":', ms(dns)) + num(',"connect":', ms(connect)) + num(',"tls":', ms(tls)) + num(',"ttfb":', ms(ttfb)) + num(',"total":', ms(total));
  return `,"durations":{${d.slice(1)}}`;
}

/**
 * The access line of one HTTP or gRPC exchange as JSON members (see writeAccessLine), written
 * straight from the record: the AccessRecord shape (log.ts), its members in that order.
 */
export function httpAccessFields(r: HttpRecord, totalMs: number): string {
  const o = r.outcome;
  const d = r.decision;
  const t = r.target;
  const c = o.candidate;
  const p = r.plan;
  let s = r.grpc ? ',"kind":"grpc"' : ',"kind":"http"';
  if (d) s += `,"decision":${jsonString(d.action)},"reason":${jsonString(d.reason)},"route":${routeText(d.route)}`;
  if (t) s += str(',"host":', t.host) + num(',"port":', t.port);
  s += str(',"method":', r.method) + str(',"path":', t?.path) + callerJson(r.caller);
  if (p) {
    s += `,"upstream":{"host":${jsonString(p.host)}${str(',"address":', c?.address)}${num(',"port":', c?.port ?? p.port)},"tls":${p.tls !== undefined}}`;
  }
  s += num(',"status":', o.status) + str(',"error":', o.error) + str(',"errorDetail":', o.errorDetail)
    + num(',"bytesIn":', o.bytesIn) + num(',"bytesOut":', o.bytesOut) + num(',"attempts":', o.attempts) + num(',"retries":', o.retries)
    + durationsJson(c?.dnsMs, o.connectMs, o.tlsMs, o.ttfbMs, totalMs);
  return d?.reportOnly ? `${s},"reportOnly":true` : s;
}

/** The access line of one tunnel or TCP connection as JSON members (see httpAccessFields). */
export function tunnelAccessFields(r: TunnelRecord, totalMs: number): string {
  const d = r.decision;
  const t = r.target;
  const op = r.opened;
  const c = op?.candidate;
  let s = `,"kind":${jsonString(r.kind)}`;
  if (d) s += `,"decision":${jsonString(d.action)},"reason":${jsonString(d.reason)},"route":${routeText(d.route)}`;
  if (t) s += str(',"host":', t.host) + num(',"port":', t.port);
  s += callerJson(r.caller);
  if (c) s += `,"upstream":{"host":${jsonString(c.host)}${str(',"address":', c.address)}${num(',"port":', c.port)},"tls":${op?.tlsMs !== undefined}}`;
  return s + str(',"error":', r.error) + str(',"errorDetail":', r.errorDetail) + num(',"bytesIn":', r.bytesIn) + num(',"bytesOut":', r.bytesOut)
    + num(',"attempts":', op?.attempts) + durationsJson(c?.dnsMs, op?.connectMs, op?.tlsMs, undefined, totalMs);
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
  if (ctx.logger.isLevelEnabled(ACCESS_LEVEL)) writeAccessLine(ctx.logger, httpAccessFields(r, totalMs), 'request');
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
  if (ctx.logger.isLevelEnabled(ACCESS_LEVEL)) writeAccessLine(ctx.logger, tunnelAccessFields(r, performance.now() - r.started), 'connection');
}
