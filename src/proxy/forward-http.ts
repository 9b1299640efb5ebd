// Forward one decided HTTP/gRPC exchange upstream: undici pool per vetted origin, verified TLS via
// the injected dialer, hop-by-hop hygiene, route filters, injected headers, streaming both ways.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { DEFAULT_POOL } from '../model/defaults';
import type { RouteRuleSpec } from '../model/proxy-config';
import type { Target } from './decide';
import { EgressError, errorResponse, isBeforeRequest, toEgressError, type EgressErrorCode } from './errors';
import { applyHeaderModifier, type HeaderRecord } from './route-match';
import type { ProxyContext, RuntimeState } from './runtime';
import { backoffMs, retryVerdict } from './retry';
import { originateTls } from './tls-origin';
import { candidates, dialVetted, type Candidate, type UpstreamPlan } from './upstream';

export type ClientRequest = IncomingMessage | Http2ServerRequest;
export type ClientResponse = ServerResponse | Http2ServerResponse;

/** Never forwarded in either direction (RFC 9110 §7.6.1), plus the proxy's own request headers. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'http2-settings',
]);
/** Client-side only: the proxy sets Host itself, never forwards addresses, and handles Expect. */
const REQUEST_ONLY_DROP = new Set([
  'host', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'via',
]);

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
}

/** Names listed in a Connection header are hop-by-hop for this message only. */
function connectionTokens(v: string | string[] | undefined): Set<string> | undefined {
  if (v === undefined) return undefined;
  const s = new Set<string>();
  for (const part of (Array.isArray(v) ? v.join(',') : v).split(',')) {
    const t = part.trim().toLowerCase();
    if (t) s.add(t);
  }
  return s;
}

/** Request headers for upstream, as a Record (route filters work on records). */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders | HeaderRecord, hostHeader: string): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection as string | string[] | undefined);
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* ':' h2 pseudo-header */) continue;
    if (HOP_BY_HOP.has(name) || REQUEST_ONLY_DROP.has(name) || name.startsWith('proxy-')) continue;
    if (listed?.has(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    out[name] = typeof v === 'string' ? v : [...v];
  }
  out.host = hostHeader;
  return out;
}

/** Response headers for the client: hop-by-hop removed (h2 clients would reject them anyway). */
export function clientResponseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    if (HOP_BY_HOP.has(name) || name.startsWith('proxy-') || listed?.has(name)) continue;
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

function hostHeaderFor(plan: UpstreamPlan): string {
  const defaultPort = plan.tls ? 443 : 80;
  const host = plan.host.includes(':') ? `[${plan.host}]` : plan.host;
  return plan.port === defaultPort ? host : `${host}:${plan.port}`;
}

function noop(): void { /* handled elsewhere */ }

/** One undici pool per vetted IP, port, TLS profile, SNI and protocol, owned by the generation. */
function poolFor(ctx: ProxyContext, state: RuntimeState, plan: UpstreamPlan, c: Candidate, h2: boolean): Pool {
  const key = `${plan.tls ? plan.tls.key : 'plain'}|${plan.servername ?? ''}|${c.address}|${c.port}|${h2 ? 'h2' : 'h1'}`;
  let pool = state.pools.get(key);
  if (pool) return pool;
  const poolSpec = plan.service?.spec.pool ?? DEFAULT_POOL;
  const timeouts = plan.timeouts;
  const tlsProfile = plan.tls;
  const servername = plan.servername ?? plan.host;
  const alpn = h2 ? ['h2'] : ['http/1.1'];
  const origin = `http://${c.address.includes(':') ? `[${c.address}]` : c.address}:${c.port}`;
  pool = new Pool(origin, {
    connections: poolSpec.maxConnections,
    keepAliveTimeout: poolSpec.keepAliveTimeoutMs,
    keepAliveMaxTimeout: poolSpec.keepAliveTimeoutMs,
    allowH2: h2,
    connect: (_opts, callback) => {
      dialVetted(ctx, c.address, c.port, timeouts.connectMs)
        .then(async (d) => {
          if (!tlsProfile) {
            // h2c upstream (plaintext gRPC): undici picks HTTP/2 from this property.
            if (h2) Object.defineProperty(d.socket, 'alpnProtocol', { value: 'h2' });
            return { socket: d.socket, connectMs: d.connectMs, tlsMs: undefined as number | undefined };
          }
          const t = await originateTls(d.socket, tlsProfile, servername, timeouts.tlsHandshakeMs, alpn);
          return { socket: t.socket, connectMs: d.connectMs, tlsMs: t.tlsMs as number | undefined };
        })
        .then((r) => {
          ctx.logger.debug({ event: 'upstream-connect', address: c.address, port: c.port, servername: tlsProfile ? servername : undefined, connectMs: r.connectMs, tlsMs: r.tlsMs });
          callback(null, r.socket);
        }, (err: unknown) => callback(toEgressError(err, 'CONNECT_FAILED'), null));
    },
  });
  pool.on('connectionError', noop);
  state.pools.set(key, pool);
  return pool;
}

export interface ForwardOptions {
  readonly ctx: ProxyContext;
  readonly state: RuntimeState;
  readonly plan: UpstreamPlan;
  readonly target: Target;
  readonly rule?: RouteRuleSpec;
  readonly req: ClientRequest;
  readonly res: ClientResponse;
  /** Origin-form path and query to request upstream. */
  readonly path: string;
  readonly grpc: boolean;
  /** Aborted when the client goes away or the total timeout fires. */
  readonly signal: AbortSignal;
  readonly outcome: HttpOutcome;
}

function requestHasBody(req: ClientRequest, grpc: boolean): boolean {
  if (grpc) return true;
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  if (cl !== undefined) return cl !== '0';
  // HTTP/2 requests may stream without content-length; HTTP/1.1 ones may not.
  return req.httpVersionMajor === 2 && !(req as Http2ServerRequest).stream?.readableEnded && req.method !== 'GET' && req.method !== 'HEAD';
}

/**
 * Forward and stream the response. Each attempt fails over across vetted addresses on
 * connect-phase errors (no request byte sent yet); whole attempts are retried as the route's or
 * service's RetrySpec says (retry.ts), within its budget, and only while the body is replayable.
 */
export async function forwardHttp(o: ForwardOptions): Promise<void> {
  const { ctx, state, plan, req, res, outcome } = o;
  let headers = upstreamRequestHeaders(req.headers as HeaderRecord, hostHeaderFor(plan));
  let responseModifier: RouteRuleSpec['filters'][number]['headerModifier'];
  for (const f of o.rule?.filters ?? []) {
    if (f.type === 'RequestHeaderModifier' && f.headerModifier) headers = applyHeaderModifier(headers, f.headerModifier);
    else if (f.type === 'ResponseHeaderModifier' && f.headerModifier) responseModifier = f.headerModifier;
  }
  for (const [name, value] of plan.service?.injected ?? []) headers[name] = value;

  let bodyStarted = false;
  const hasBody = requestHasBody(req, o.grpc);
  const body = hasBody
    ? (async function* requestBody() {
      bodyStarted = true;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        outcome.bytesIn += chunk.length;
        yield chunk;
      }
    })()
    : null;

  const timeouts = plan.timeouts;
  const retrySpec = o.rule?.retry ?? plan.service?.spec.retry;
  const budget = retrySpec ? state.retryBudget(retrySpec) : undefined;
  budget?.recordRequest();
  // One watchdog covers both "no response headers" phases; the shorter bound names the error.
  let headersTimeout = Math.min(timeouts.responseHeadersMs, timeouts.idleMs);
  const headersTimeoutCode: EgressErrorCode = timeouts.idleMs < timeouts.responseHeadersMs ? 'IDLE_TIMEOUT' : 'RESPONSE_TIMEOUT';
  if (retrySpec?.perTryTimeoutMs) headersTimeout = Math.min(headersTimeout, retrySpec.perTryTimeoutMs);
  const backendTimeout = o.rule?.backendRequestTimeoutMs;
  if (backendTimeout) headersTimeout = Math.min(headersTimeout, backendTimeout);
  const started = performance.now();

  /** One attempt: fail over across vetted addresses while no request byte has been sent. */
  const attempt = async (): Promise<UndiciResponse> => {
    let lastError: EgressError | undefined;
    for await (const c of candidates(ctx, state, plan)) {
      outcome.attempts++;
      outcome.candidate = c;
      const pool = poolFor(ctx, state, plan, c, o.grpc);
      try {
        return await pool.request({
          method: req.method as string,
          path: o.path,
          headers,
          // undici streams async iterables with backpressure; its types only list Readable.
          body: body as unknown as Readable | null,
          signal: o.signal,
          headersTimeout,
          bodyTimeout: timeouts.idleMs,
        });
      } catch (err) {
        let e = toEgressError(err);
        if (e.code === 'RESPONSE_TIMEOUT') e = new EgressError(headersTimeoutCode, undefined, { cause: err });
        lastError = e;
        if (!bodyStarted && (e.code === 'CONNECT_FAILED' || e.code === 'CONNECT_TIMEOUT')) continue;
        throw e;
      }
    }
    throw lastError ?? new EgressError('CONNECT_FAILED');
  };

  // The single place retries plug in: retry.ts decides, the budget caps, backoff spreads.
  for (let retries = 0; ; retries++) {
    let response: UndiciResponse;
    try {
      response = await attempt();
    } catch (err) {
      const e = err as EgressError;
      if (retrySpec && !o.signal.aborted && retryVerdict({
        method: req.method ?? 'GET', errorCode: e.code, spec: retrySpec, retriesSoFar: retries, replayable: !bodyStarted,
      }).retry && budget!.tryAcquireRetry()) {
        await sleep(backoffMs(retries + 1, retrySpec, Math.random()), o.signal);
        continue;
      }
      throw e;
    }
    if (retrySpec && !o.signal.aborted && retryVerdict({
      method: req.method ?? 'GET', status: response.statusCode, spec: retrySpec, retriesSoFar: retries, replayable: !bodyStarted,
    }).retry && budget!.tryAcquireRetry()) {
      await response.body.dump().catch(() => undefined);
      await sleep(backoffMs(retries + 1, retrySpec, Math.random()), o.signal);
      continue;
    }
    outcome.ttfbMs = performance.now() - started;
    outcome.status = response.statusCode;
    let out = clientResponseHeaders(response.headers);
    if (responseModifier) out = applyHeaderModifier(out, responseModifier);
    await streamResponse(res, response, out, o);
    return;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

type UndiciResponse = Awaited<ReturnType<Pool['request']>>;

async function streamResponse(res: ClientResponse, response: UndiciResponse, headers: Record<string, string | string[]>, o: ForwardOptions): Promise<void> {
  const { outcome } = o;
  if (res.writableEnded || res.destroyed) {
    response.body.destroy();
    return;
  }
  // Trailers are only meaningful end to end over HTTP/2 (gRPC status lives there).
  const h2 = o.req.httpVersionMajor === 2;
  (res as ServerResponse).writeHead(response.statusCode, headers);
  if (o.grpc) outcome.grpcStatus = firstHeader(response.headers['grpc-status']);
  await new Promise<void>((resolve, reject) => {
    const body = response.body;
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve();
    };
    body.on('data', (chunk: Buffer) => {
      outcome.bytesOut += chunk.length;
      if (!(res as ServerResponse).write(chunk)) {
        body.pause();
        res.once('drain', () => body.resume());
      }
    });
    body.once('error', (err) => {
      done(toEgressError(err, 'UPSTREAM_RESET'));
    });
    body.once('end', () => {
      const trailers = response.trailers;
      if (h2 && trailers && Object.keys(trailers).length > 0) {
        if (o.grpc && trailers['grpc-status'] !== undefined) outcome.grpcStatus = firstHeader(trailers['grpc-status']);
        (res as Http2ServerResponse).addTrailers(trailers as Record<string, string>);
      }
      res.end(() => done());
    });
    res.once('close', () => {
      if (!res.writableFinished) {
        body.destroy();
        done(new EgressError('UPSTREAM_RESET', 'client closed'));
      }
    });
  });
}

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** gRPC status for a proxy error (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
const GRPC_STATUS_FOR_HTTP: Record<number, string> = { 400: '3', 403: '7', 500: '13', 502: '14', 503: '14', 504: '4' };

/**
 * Send the mapped error response (or a trailers-only gRPC response). After the response started,
 * the only honest signal is to cut the stream.
 */
export function sendError(res: ClientResponse, code: EgressErrorCode, grpc: boolean, extraHeaders?: Record<string, string>): number {
  const r = errorResponse(code);
  if (res.headersSent) {
    destroyResponse(res);
    return r.status;
  }
  if (res.destroyed || res.writableEnded) return r.status;
  if (grpc) {
    const grpcStatus = GRPC_STATUS_FOR_HTTP[r.status] ?? '2';
    const headers = {
      'content-type': 'application/grpc',
      'grpc-status': grpcStatus,
      'grpc-message': encodeURIComponent(r.body.trim()),
      'x-egress-error': code,
    };
    const stream = (res as Http2ServerResponse).stream;
    if (stream && !stream.headersSent) {
      stream.respond({ ':status': 200, ...headers }, { endStream: true });
    } else {
      (res as ServerResponse).writeHead(200, headers);
      res.end();
    }
    return 200;
  }
  (res as ServerResponse).writeHead(r.status, extraHeaders ? { ...r.headers, ...extraHeaders } : r.headers);
  res.end(r.body);
  return r.status;
}

export function destroyResponse(res: ClientResponse): void {
  const stream = (res as Http2ServerResponse).stream;
  if (stream && typeof stream.close === 'function') stream.close(0x2 /* INTERNAL_ERROR */);
  else (res as ServerResponse).destroy();
}

export { isBeforeRequest };
