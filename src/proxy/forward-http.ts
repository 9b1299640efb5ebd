// Forward one decided HTTP/gRPC exchange upstream through the pool of its vetted origin (pools.ts):
// hop-by-hop hygiene, route filters, injected headers, retries, streaming both ways.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Readable } from 'node:stream';
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import { util, type Dispatcher } from 'undici';
import { IDENTITY_HEADERS } from './caller';
import type { Target } from './decide';
import { EgressError, toEgressError, type EgressErrorCode } from './errors';
import type { HttpOutcome } from './observe';
import { failedOnReusedConnection, freshConnection, poolFor, takeFreshConnection } from './pools';
import { backoffMs, IDEMPOTENT_METHODS, retryVerdict } from './retry';
import { applyHeaderModifier, type HeaderRecord } from './route-match';
import type { ProxyContext, RuntimeState } from './runtime';
import { Candidates, type UpstreamPlan } from './upstream';
import type { RouteRuleSpec } from '../model/proxy-config';

export type ClientRequest = IncomingMessage | Http2ServerRequest;
export type ClientResponse = ServerResponse | Http2ServerResponse;

/** Never forwarded in either direction (RFC 9110 §7.6.1), plus the proxy's own request headers. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'http2-settings',
]);
/**
 * Client-side only: the proxy sets Host itself, never forwards addresses, and handles Expect. The
 * mesh identity headers (caller.ts) describe the hop into this pod: never sent on, whatever the
 * identity source, so a third party never learns (or is handed a forged) caller identity.
 */
const REQUEST_ONLY_DROP = new Set([
  'host', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'via',
  ...IDENTITY_HEADERS,
]);

/**
 * Request bodies up to this size are kept so that a retry can send them again (Linkerd's bound);
 * larger or unsized bodies stream and make the request unretryable once sent.
 */
export const MAX_REPLAY_BODY_BYTES = 64 * 1024;

/**
 * The Connection values nearly every message carries, parsed once: `keep-alive` or `close` name
 * no header (only a message's own `Keep-Alive` header, which is hop-by-hop anyway).
 */
const COMMON_CONNECTION: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  ['keep-alive', 'Keep-Alive', 'close', 'Close'].map((v) => [v, new Set([v.toLowerCase()])]),
);

/** Names listed in a Connection header are hop-by-hop for this message only. */
function connectionTokens(v: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (v === undefined) return undefined;
  const common = typeof v === 'string' ? COMMON_CONNECTION.get(v) : undefined;
  if (common) return common;
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

/** Host for upstream: the real host, with the port only when it is not the scheme's default. */
export function hostHeaderFor(plan: UpstreamPlan): string {
  if (plan.hostHeader) return plan.hostHeader;
  const defaultPort = plan.tls ? 443 : 80;
  const host = plan.host.includes(':') ? `[${plan.host}]` : plan.host;
  return plan.port === defaultPort ? host : `${host}:${plan.port}`;
}

function noop(): void { /* handled elsewhere */ }

/**
 * Cancels one request without an AbortController or EventTarget: one listener at a time (the
 * dispatch or the backoff sleep in progress), set and cleared on the hot path.
 */
export class RequestControl {
  public reason: EgressError | undefined;
  private listener: ((reason: EgressError) => void) | undefined;

  public get aborted(): boolean {
    return this.reason !== undefined;
  }

  public abort(reason: EgressError): void {
    if (this.reason) return;
    this.reason = reason;
    const l = this.listener;
    this.listener = undefined;
    l?.(reason);
  }

  public listen(listener: (reason: EgressError) => void): void {
    this.listener = listener;
  }

  public unlisten(listener: (reason: EgressError) => void): void {
    if (this.listener === listener) this.listener = undefined;
  }
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
  /**
   * Aborted when the total timeout fires, or with CLIENT_CLOSED when the client goes away (an
   * exchange already sent then finishes cheaply, so its pooled connection survives; see drain).
   */
  readonly control: RequestControl;
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

  const timeouts = plan.timeouts;
  const retrySpec = o.rule?.retry ?? plan.service?.spec.retry;
  // gRPC calls the policy may retry by grpc-status (see retryVerdict for why the method rule is waived).
  const grpcStatusRetry = o.grpc && retrySpec !== undefined && retrySpec.maxRetries > 0 && (retrySpec.grpcStatusCodes ?? []).length > 0;
  let bodyStarted = false;
  const hasBody = requestHasBody(req, o.grpc);
  const replay = hasBody && retrySpec ? replayableLength(req, retrySpec, grpcStatusRetry) : undefined;
  // A small body the policy may retry is read first; a retry then sends the same bytes again.
  const buffered = replay !== undefined ? await readBody(req, replay, outcome, timeouts.idleMs) : undefined;
  // gRPC bodies rarely declare a length, and a streaming call may wait for answers before it ends:
  // such a body streams at once while a copy is kept, and is replayable only if it ended in bounds.
  const copy = hasBody && grpcStatusRetry && buffered === undefined && req.headers['content-length'] === undefined
    ? new ReplayCopy(MAX_REPLAY_BODY_BYTES)
    : undefined;
  let body: Buffer | AsyncIterable<Buffer> | null = buffered ?? (hasBody
    ? (async function* requestBody() {
      bodyStarted = true;
      // undici's watchdogs sleep while it waits on the request body: a stalled upload is ours.
      for await (const chunk of idleBounded(req as AsyncIterable<Buffer>, timeouts.idleMs)) {
        outcome.bytesIn += chunk.length;
        copy?.keep(chunk);
        yield chunk;
      }
      copy?.end();
    })()
    : null);

  const budget = retrySpec ? state.retryBudget(retrySpec) : undefined;
  budget?.recordRequest();
  // One watchdog covers both "no response headers" phases; the shorter bound names the error.
  let headersTimeout = Math.min(timeouts.responseHeadersMs, timeouts.idleMs);
  const headersTimeoutCode: EgressErrorCode = timeouts.idleMs < timeouts.responseHeadersMs ? 'IDLE_TIMEOUT' : 'RESPONSE_TIMEOUT';
  if (retrySpec?.perTryTimeoutMs) headersTimeout = Math.min(headersTimeout, retrySpec.perTryTimeoutMs);
  const backendTimeout = o.rule?.backendRequestTimeoutMs;
  if (backendTimeout) headersTimeout = Math.min(headersTimeout, backendTimeout);
  const started = performance.now();

  const h2 = o.grpc || plan.http2 === true;
  const method = req.method as string;
  const idempotent = IDEMPOTENT_METHODS.includes(method.toUpperCase());
  const track: DispatchTrack = { dispatchedAt: 0, written: false };
  let resent = false;

  /**
   * One attempt: fail over across vetted addresses while no request byte has been sent. A request
   * that failed on a reused pooled connection before any response byte arrived (the upstream closed
   * it while idle, racing this request) is sent once more on a new connection, as nginx and Envoy
   * do: when its method is idempotent, or when none of it was written; its body must be whole.
   */
  const attempt = async (): Promise<PendingResponse> => {
    let lastError: EgressError | undefined;
    const walk = new Candidates(ctx, state, plan);
    for (;;) {
      const next = walk.next();
      const c = next instanceof Promise ? await next : next;
      if (c === undefined) throw walk.failure() ?? lastError ?? new EgressError('CONNECT_FAILED');
      outcome.attempts++;
      outcome.candidate = c;
      const pool = poolFor(ctx, state, plan, c, h2);
      const opts: Dispatcher.DispatchOptions = {
        method,
        path: o.path,
        headers,
        // undici streams async iterables with backpressure; its types only list Readable.
        body: body as unknown as Readable | null,
        headersTimeout,
        bodyTimeout: timeouts.idleMs,
      };
      try {
        let head: PendingResponse;
        try {
          head = await dispatchOnce(pool, opts, o.control, track, h2);
        } catch (err) {
          if (resent || h2 || o.control.aborted || !(body === null || Buffer.isBuffer(body)) || !(idempotent || !track.written)
            || toEgressError(err).code !== 'UPSTREAM_RESET' || !failedOnReusedConnection(pool, err, track.dispatchedAt)) throw err;
          const client = freshConnection(pool, (t) => {
            outcome.connectMs = t.connectMs;
            outcome.tlsMs = t.tlsMs;
          });
          if (!client) throw err;
          resent = true;
          outcome.attempts++;
          const sent = dispatchOnce(client, opts, o.control, track, h2);
          // Closes once this one request is done.
          void client.close().catch(noop);
          return await sent;
        }
        const fresh = takeFreshConnection(pool);
        if (fresh) {
          outcome.connectMs = fresh.connectMs;
          outcome.tlsMs = fresh.tlsMs;
        }
        return head;
      } catch (err) {
        let e = toEgressError(err);
        if (e.code === 'RESPONSE_TIMEOUT') e = new EgressError(headersTimeoutCode, undefined, { cause: err });
        lastError = e;
        if (!bodyStarted && (e.code === 'CONNECT_FAILED' || e.code === 'CONNECT_TIMEOUT')) continue;
        throw e;
      }
    }
  };

  /**
   * Whether to retry after this attempt, recording how retrying ended for the retry metrics.
   * 'exhausted' with a retryable answer is Linkerd's limit-exceeded; a spent budget is overflow.
   */
  const shouldRetry = (retries: number, answer: { errorCode?: string; status?: number; grpcStatus?: number }): boolean => {
    if (!retrySpec || o.control.aborted) return false;
    const replayable = buffered !== undefined || !bodyStarted || copy?.complete() === true;
    const verdict = retryVerdict({ method, ...answer, spec: retrySpec, retriesSoFar: retries, replayable });
    if (verdict.retry) {
      if (budget!.tryAcquireRetry()) {
        outcome.retries = retries + 1;
        // The streamed gRPC body was consumed; its kept copy goes out again.
        if (copy && bodyStarted) body = copy.bytes();
        return true;
      }
      outcome.retryEnd = 'overflow';
      return false;
    }
    if (verdict.reason === 'exhausted' && retryVerdict({ method, ...answer, spec: retrySpec }).retry) {
      outcome.retryEnd = 'limit-exceeded';
    } else if (retries > 0) {
      outcome.retryEnd = 'success';
    }
    return false;
  };

  // The single place retries plug in: retry.ts decides, the budget caps, backoff spreads.
  for (let retries = 0; ; retries++) {
    let response: PendingResponse;
    try {
      response = await attempt();
    } catch (err) {
      const e = err as EgressError;
      if (shouldRetry(retries, { errorCode: e.code })) {
        await sleep(backoffMs(retries + 1, retrySpec!, Math.random()), o.control);
        continue;
      }
      throw e;
    }
    // gRPC: only a Trailers-Only answer can be retried. A status that comes in trailers follows
    // response messages the client may already have been sent, so the call cannot be replayed.
    const grpcStatus = o.grpc ? trailersOnlyGrpcStatus(response) : undefined;
    if (shouldRetry(retries, { status: response.statusCode, grpcStatus })) {
      response.discard();
      await sleep(backoffMs(retries + 1, retrySpec!, Math.random()), o.control);
      continue;
    }
    outcome.ttfbMs = performance.now() - started;
    outcome.status = response.statusCode;
    // An HTTP/1.1 client takes the lines as they are; filters and HTTP/2 work on a record.
    const out = responseModifier
      ? applyHeaderModifier(response.headers, responseModifier)
      : o.req.httpVersionMajor < 2 ? response.lines as string[] : response.headers;
    await streamResponse(res, response, out, o);
    return;
  }
}

/**
 * The declared body length when the policy could retry this request and the body is small enough
 * to keep; undefined otherwise (no content-length, too large, or a method the policy never retries).
 */
function replayableLength(req: ClientRequest, spec: NonNullable<RouteRuleSpec['retry']>, grpcStatusRetry: boolean): number | undefined {
  if (spec.maxRetries <= 0) return undefined;
  if (!grpcStatusRetry && !spec.retryNonIdempotent && !IDEMPOTENT_METHODS.includes((req.method ?? '').toUpperCase())) return undefined;
  const cl = req.headers['content-length'];
  if (typeof cl !== 'string' || !/^[0-9]{1,9}$/.test(cl)) return undefined;
  const n = Number(cl);
  return n <= MAX_REPLAY_BODY_BYTES ? n : undefined;
}

/**
 * A copy of a request body kept while it streams upstream (Linkerd's replay body), up to `limit`
 * bytes. A retry can resend it only when the body ended within the limit before the retry.
 */
class ReplayCopy {
  private chunks: Buffer[] = [];
  private size = 0;
  private overflowed = false;
  private ended = false;
  constructor(private readonly limit: number) {}
  public keep(chunk: Buffer): void {
    if (this.overflowed) return;
    this.size += chunk.length;
    if (this.size > this.limit) {
      // Too large to replay: stop holding memory for it.
      this.overflowed = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
  }
  public end(): void {
    this.ended = true;
  }
  public complete(): boolean {
    return this.ended && !this.overflowed;
  }
  public bytes(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

/**
 * The grpc-status of a Trailers-Only response: HTTP 200 whose headers already carry grpc-status
 * (the gRPC HTTP/2 protocol puts it there only when the call ends without any message).
 */
function trailersOnlyGrpcStatus(response: PendingResponse): number | undefined {
  if (response.statusCode !== 200) return undefined;
  const v = firstHeader(response.headers['grpc-status']);
  if (v === undefined || !/^[0-9]{1,2}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

/** Chunks of `source`, failing with IDLE_TIMEOUT when none arrives for idleMs. */
async function* idleBounded(source: AsyncIterable<Buffer>, idleMs: number): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      const next = await Promise.race([
        it.next(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new EgressError('IDLE_TIMEOUT', 'client stalled mid-upload')), idleMs);
        }),
      ]);
      clearTimeout(timer);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // No it.return(): that destroys the request, and with it the socket the error must go out on.
    clearTimeout(timer);
  }
}

/** Read a declared-length body whole; more bytes than declared is a bad request. */
async function readBody(req: ClientRequest, length: number, outcome: HttpOutcome, idleMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of idleBounded(req as AsyncIterable<Buffer>, idleMs)) {
    total += chunk.length;
    outcome.bytesIn += chunk.length;
    if (total > length) throw new EgressError('BAD_REQUEST', 'request body longer than its content-length');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function sleep(ms: number, control: RequestControl): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || control.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      control.unlisten(done);
      resolve();
    }
    control.listen(done);
  });
}

/** A response whose head arrived; the body waits (paused) until commit() or discard(). */
interface PendingResponse {
  readonly statusCode: number;
  /** The end-to-end header lines, `[name, value, ...]`, names lower-cased, in the upstream's order. */
  readonly lines: readonly string[];
  /** The same as a record (repeated names as arrays), built on first use. */
  readonly headers: Record<string, string | string[]>;
  /** Stream the body into `sink`; resolves at the end (trailers included), rejects on failure. */
  commit(sink: ResponseSink): Promise<void>;
  /** Drop this response (a retry follows, or the client left). */
  discard(reason?: EgressError): void;
}

interface ResponseSink {
  write(chunk: Buffer): boolean;
  onDrain(resume: () => void): void;
  end(trailers: Record<string, string | string[]>): void;
}

/**
 * A response's end-to-end header lines `[name, value, ...]`, names lower-cased, in the upstream's
 * order, from what undici passes (raw [name, value, ...] buffers over HTTP/1.1, a plain object
 * over HTTP/2): hop-by-hop ones and those the Connection header lists are dropped (HTTP/2 clients
 * would reject them anyway), and so are pseudo-headers. One pass unless Connection lists a name.
 */
function endToEndLines(raw: unknown): string[] {
  const out: string[] = [];
  if (!raw) return out;
  /** Connection values that may list header names (not just `keep-alive` or `close`). */
  let listing: string | undefined;
  const add = (name: string, v: unknown, text: (v: unknown) => string) => {
    if (HOP_BY_HOP.has(name) || name.startsWith('proxy-')) {
      if (name !== 'connection') return;
      const value = Array.isArray(v) ? v.map(text).join(',') : text(v);
      if (!COMMON_CONNECTION.has(value)) listing = listing === undefined ? value : `${listing},${value}`;
      return;
    }
    if (Array.isArray(v)) for (const one of v) out.push(name, text(one));
    else out.push(name, text(v));
  };
  if (Array.isArray(raw)) {
    // undici's table of well-known names gives them lower-cased without building a string.
    for (let i = 0; i < raw.length; i += 2) add(util.headerNameToString(raw[i] as Buffer | string), raw[i + 1], bytesText);
  } else {
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (k.charCodeAt(0) !== 58 /* ':' */ && v !== undefined) add(k.toLowerCase(), v, String);
    }
  }
  const listed = connectionTokens(listing);
  if (listed === undefined) return out;
  let kept = 0;
  for (let i = 0; i < out.length; i += 2) {
    if (listed.has(out[i])) continue;
    out[kept++] = out[i];
    out[kept++] = out[i + 1];
  }
  out.length = kept;
  return out;
}

/** Header lines as a record: a repeated name's values in an array, in order. */
function linesRecord(lines: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i];
    const prev = out[name];
    if (prev === undefined) out[name] = lines[i + 1];
    else if (Array.isArray(prev)) prev.push(lines[i + 1]);
    else out[name] = [prev, lines[i + 1]];
  }
  return out;
}

/** Trailers as a record; the common empty case shares one frozen record. */
const NO_TRAILERS: Record<string, string | string[]> = Object.freeze({});
function trailerRecord(raw: unknown): Record<string, string | string[]> {
  if (!raw || (Array.isArray(raw) && raw.length === 0)) return NO_TRAILERS;
  return linesRecord(endToEndLines(raw));
}

/** A response head from upstream: its lines, and the record only when something asks for it. */
class ResponseHead implements PendingResponse {
  private record: Record<string, string | string[]> | undefined;
  constructor(
    public readonly statusCode: number,
    public readonly lines: readonly string[],
    public readonly commit: PendingResponse['commit'],
    public readonly discard: PendingResponse['discard'],
  ) {}

  public get headers(): Record<string, string | string[]> {
    return (this.record ??= linesRecord(this.lines));
  }
}

/**
 * A header name or value as node:http holds one: each byte one Latin-1 character, so bytes
 * beyond ASCII (obs-text, e.g. UTF-8 in a value) go out to the client exactly as they came.
 */
function bytesText(v: unknown): string {
  return Buffer.isBuffer(v) ? v.toString('latin1') : String(v);
}

/**
 * A client that leaves while its request is already sent does not cost the pooled connection
 * (and a TLS handshake to replace it) when finishing the exchange is cheaper: the response is
 * read and dropped for at most this long and this many bytes, then the connection is cut.
 */
export const DRAIN_AFTER_CLIENT_CLOSE_MS = 1_000;
export const DRAIN_AFTER_CLIENT_CLOSE_BYTES = 256 * 1024;

/** What a dispatch tells its caller: when it was dispatched, and whether any request byte went out. */
interface DispatchTrack {
  dispatchedAt: number;
  written: boolean;
}

/**
 * Body bytes read ahead of commit() (the caller is still deciding on a retry): below this the
 * upstream connection keeps reading, so a response that arrived whole in one read is not paused
 * and resumed (two epoll_ctl calls, and an event-loop turn) on its way through.
 */
const EARLY_BODY_BYTES = 64 * 1024;

/**
 * Dispatch with undici's handler API rather than request(): the body waits (buffered up to
 * EARLY_BODY_BYTES, then paused) until the caller commits, so a retry can drop it; backpressure
 * goes straight to the upstream, and HTTP/2 trailers (gRPC status) arrive intact. A
 * CLIENT_CLOSED abort, or a discard, of an HTTP/1.1 exchange whose request was sent drains it
 * instead (bounded) to keep the connection.
 */
function dispatchOnce(
  dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, control: RequestControl, track: DispatchTrack, h2: boolean,
): Promise<PendingResponse> {
  return new Promise((resolveHead, rejectHead) => {
    let abortFn: ((reason?: Error) => void) | undefined;
    let resumeFn: (() => void) | undefined;
    /** undici was told to stop (a handler returned false) and waits for resume(). */
    let paused = false;
    let sink: ResponseSink | undefined;
    /** Body read before commit(), and the trailers when the exchange completed before it. */
    let early: Buffer[] | undefined;
    let earlyBytes = 0;
    let earlyTrailers: Record<string, string | string[]> | undefined;
    let headSettled = false;
    let bodyResolve: (() => void) | undefined;
    let bodyReject: ((err: unknown) => void) | undefined;
    let finished = false;
    let failure: unknown;
    let requestSent = false;
    /** Set while the exchange is drained: the reason it ends with, and the bound on it. */
    let draining: { reason: EgressError; timer: NodeJS.Timeout; bytes: number } | undefined;
    const resume = () => {
      if (!paused) return;
      paused = false;
      resumeFn?.();
    };
    const stop = (reason: EgressError) => {
      if (!finished) abortFn?.(reason);
    };
    const drain = (reason: EgressError) => {
      if (finished || draining) return;
      if (h2 || !requestSent || abortFn === undefined) return stop(reason);
      sink = undefined;
      draining = { reason, timer: setTimeout(() => stop(reason), DRAIN_AFTER_CLIENT_CLOSE_MS), bytes: earlyBytes };
      early = undefined;
      if (draining.bytes > DRAIN_AFTER_CLIENT_CLOSE_BYTES) return stop(reason);
      resume();
    };
    const onAbort = (reason: EgressError) => (reason.code === 'CLIENT_CLOSED' ? drain(reason) : stop(reason));
    if (control.reason) return rejectHead(control.reason);
    control.listen(onAbort);
    const settle = () => {
      finished = true;
      control.unlisten(onAbort);
      if (draining) clearTimeout(draining.timer);
    };
    const handler = {
      onConnect(abort: (reason?: Error) => void) {
        abortFn = abort;
        // Aborted while it waited for a connection: undici then writes nothing and keeps the connection.
        if (control.reason) return abort(control.reason);
        track.written = true;
      },
      onRequestSent() {
        requestSent = true;
      },
      onHeaders(statusCode: number, rawHeaders: unknown, resumeUpstream: () => void): boolean {
        if (statusCode < 200) return true; // 1xx: undici handles 100-continue; nothing to relay
        resumeFn = resumeUpstream;
        if (draining) return true; // nobody to tell: read on to the end
        headSettled = true;
        resolveHead(new ResponseHead(
          statusCode,
          endToEndLines(rawHeaders),
          (s: ResponseSink) => {
            s.onDrain(resume);
            return new Promise<void>((res, rej) => {
              if (failure) return rej(failure);
              let more = true;
              if (early) for (const chunk of early) more = s.write(chunk);
              early = undefined;
              if (finished) {
                s.end(earlyTrailers ?? NO_TRAILERS);
                return res();
              }
              sink = s;
              bodyResolve = res;
              bodyReject = rej;
              if (more) resume();
            });
          },
          (why?: EgressError) => {
            drain(why ?? new EgressError('UPSTREAM_RESET', 'discarded for retry'));
          },
        ));
        return true;
      },
      onData(chunk: Buffer): boolean {
        if (draining) {
          draining.bytes += chunk.length;
          if (draining.bytes > DRAIN_AFTER_CLIENT_CLOSE_BYTES) stop(draining.reason);
          return true;
        }
        if (sink) {
          if (sink.write(chunk)) return true;
        } else {
          (early ??= []).push(chunk);
          earlyBytes += chunk.length;
          if (earlyBytes < EARLY_BODY_BYTES) return true;
        }
        paused = true;
        return false;
      },
      onComplete(trailers: unknown) {
        const drained = draining;
        settle();
        if (drained) {
          // The exchange finished for the pool's sake; for the request it ended as it was cut.
          failure = drained.reason;
          if (!headSettled) rejectHead(drained.reason);
          else bodyReject?.(drained.reason);
          return;
        }
        if (!sink) {
          earlyTrailers = trailerRecord(trailers);
          return;
        }
        sink.end(trailerRecord(trailers));
        bodyResolve?.();
      },
      onError(err: Error) {
        settle();
        failure = err;
        early = undefined;
        if (!headSettled) rejectHead(err);
        else bodyReject?.(err);
      },
    };
    track.dispatchedAt = performance.now();
    track.written = false;
    dispatcher.dispatch(opts, handler as unknown as Parameters<Dispatcher['dispatch']>[1]);
  });
}

/** Response headers for writeHead: a record, or (HTTP/1.1 clients only) flat `[name, value, ...]` lines. */
type OutHeaders = Record<string, string | string[]> | string[];

async function streamResponse(
  res: ClientResponse, response: PendingResponse, headers: OutHeaders, o: ForwardOptions,
): Promise<void> {
  const { outcome } = o;
  if (res.writableEnded || res.destroyed) {
    response.discard(new EgressError('CLIENT_CLOSED'));
    return;
  }
  // Trailers are only meaningful end to end over HTTP/2 (gRPC status lives there).
  const h2 = o.req.httpVersionMajor === 2;
  if (o.grpc) outcome.grpcStatus = firstHeader(response.headers['grpc-status']);
  // A Trailers-Only answer must reach gRPC clients as one HEADERS frame that ends the stream:
  // they read grpc-status from the headers only then. Its head waits to see whether a body follows.
  const stream = (res as Http2ServerResponse).stream;
  let headPending = h2 && o.grpc && stream !== undefined && trailersOnlyGrpcStatus(response) !== undefined;
  const writeHead = () => {
    if (!headPending) return;
    headPending = false;
    (res as ServerResponse).writeHead(response.statusCode, headers);
  };
  if (!headPending) (res as ServerResponse).writeHead(response.statusCode, headers);
  const coalesce = h2 ? undefined : new Coalescer((res as ServerResponse).socket);
  let ended: Promise<void> | undefined;
  // A client that leaves now aborts o.control with CLIENT_CLOSED: the dispatch drains or cuts.
  try {
    await response.commit({
      write: (chunk) => {
        writeHead();
        outcome.bytesOut += chunk.length;
        // Corked before the write, node:http does not cork (and schedule an uncork) itself.
        coalesce?.wrote();
        const ok = (res as ServerResponse).write(chunk);
        if (!coalesce) return ok;
        // Held back only by the coalescing: the upstream keeps reading until SINK_BUFFER_BYTES.
        return ok || res.writableLength < SINK_BUFFER_BYTES;
      },
      onDrain: (resume) => res.on('drain', resume),
      end: (trailers) => {
        if (headPending && Object.keys(trailers).length === 0 && !stream.headersSent) {
          headPending = false;
          // Not awaiting 'close': a streaming client may keep its own half open a while longer.
          stream.respond({ ':status': response.statusCode, ...headers as Record<string, string | string[]> }, { endStream: true });
          return;
        }
        writeHead();
        if (h2 && Object.keys(trailers).length > 0) {
          if (o.grpc && trailers['grpc-status'] !== undefined) outcome.grpcStatus = firstHeader(trailers['grpc-status']);
          (res as Http2ServerResponse).addTrailers(trailers as Record<string, string>);
        }
        // 'finish' never comes when the client is gone by then; its 'close' aborts o.control.
        ended = new Promise<void>((r) => {
          if (o.control.aborted) {
            res.end();
            return r();
          }
          const done = () => {
            o.control.unlisten(done);
            r();
          };
          o.control.listen(done);
          res.end(done);
        });
        coalesce?.flush();
      },
    });
    await ended;
  } catch (err) {
    throw res.writableFinished ? err : toEgressError(err, 'UPSTREAM_RESET');
  } finally {
    coalesce?.flush();
  }
}

/**
 * Bytes of a response held in the client socket before the upstream is paused. Above node's
 * 16 KiB high-water mark, so a 16 KiB body read in two pieces is not paused between them.
 */
const SINK_BUFFER_BYTES = 64 * 1024;

/**
 * Keeps an HTTP/1.1 response's writes in one system call: the client socket stays corked while
 * the pieces of the response that one upstream read delivered arrive (node:http otherwise
 * flushes after each, with an empty write for end()), and is uncorked at the end of the
 * response or when the event loop has handled that read's events, so a streamed response is
 * never held back longer than that.
 */
class Coalescer {
  private corked = false;
  private scheduled: NodeJS.Immediate | undefined;
  constructor(private readonly socket: import('node:net').Socket | null) {}

  public wrote(): void {
    if (this.corked || !this.socket || this.socket.destroyed) return;
    this.socket.cork();
    this.corked = true;
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      this.flush();
    });
  }

  public flush(): void {
    if (!this.corked) return;
    this.corked = false;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.socket!.uncork();
  }
}

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
