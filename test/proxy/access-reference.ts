// The access record as observe.ts built it before the lean line: an AccessRecord object per
// request or connection, handed to logger.info(record, msg). The reference the lean line must equal.
import type { CallerResolution } from '../../src/proxy/caller';
import { ms, type AccessRecord } from '../../src/proxy/log';
import type { HttpRecord, TunnelRecord } from '../../src/proxy/observe';
import type { RouteRef } from '../../src/proxy/policy';

function routeText(r: RouteRef): string {
  return r.kind === 'default' ? r.name : `${r.kind}/${r.namespace}/${r.name}`;
}

function callerField(c: CallerResolution | undefined): AccessRecord['caller'] {
  if (!c) return undefined;
  return c.caller ? { identity: c.caller.identity, trusted: c.trustedPeer } : { identity: null, trusted: c.trustedPeer, unknown: c.unknown };
}

/** The object observeHttp handed to pino before the lean line. */
export function httpRecordObject(r: HttpRecord, totalMs: number): AccessRecord {
  const o = r.outcome;
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
  return line;
}

/** The object observeTunnel handed to pino before the lean line. */
export function tunnelRecordObject(r: TunnelRecord, totalMs: number): AccessRecord {
  const c = r.opened?.candidate;
  return {
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
    durations: { dns: ms(c?.dnsMs), connect: ms(r.opened?.connectMs), tls: ms(r.opened?.tlsMs), total: ms(totalMs) },
  };
}
