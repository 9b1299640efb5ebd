// Typed proxy errors with stable codes, and the one place that maps a code to the HTTP status,
// the `x-egress-error` header and the short body a client sees, and sends it. Nothing branches on
// message text.
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';

export type EgressErrorCode =
  | 'EGRESS_DENIED'
  | 'CALLER_NOT_ALLOWED'
  | 'CALLER_UNKNOWN'
  | 'ADDRESS_REFUSED'
  | 'BAD_REQUEST'
  | 'UNKNOWN_NAME'
  | 'NO_BACKEND'
  | 'DNS_FAILED'
  | 'CONNECT_FAILED'
  | 'TLS_FAILED'
  | 'UPSTREAM_RESET'
  | 'UPSTREAM_ERROR'
  | 'DNS_TIMEOUT'
  | 'CONNECT_TIMEOUT'
  | 'TLS_TIMEOUT'
  | 'RESPONSE_TIMEOUT'
  | 'IDLE_TIMEOUT'
  | 'TOTAL_TIMEOUT'
  | 'DRAINING'
  | 'OVERLOADED'
  | 'CLIENT_CLOSED'
  | 'INTERNAL';

interface CodeInfo {
  readonly status: number;
  /** Short, fixed, safe for clients: never includes addresses or upstream error text. */
  readonly text: string;
}

const CODES: Readonly<Record<EgressErrorCode, CodeInfo>> = {
  EGRESS_DENIED: { status: 403, text: 'egress denied by policy' },
  CALLER_NOT_ALLOWED: { status: 403, text: 'caller is not a client of this route or service' },
  CALLER_UNKNOWN: { status: 403, text: 'caller has no trusted identity, which this route or service requires' },
  ADDRESS_REFUSED: { status: 403, text: 'destination address refused by policy' },
  BAD_REQUEST: { status: 400, text: 'bad request' },
  UNKNOWN_NAME: { status: 400, text: 'request is not addressed to an egress name (expected Host: <name>.<egress suffix>)' },
  NO_BACKEND: { status: 500, text: 'route has no backend' },
  DNS_FAILED: { status: 502, text: 'upstream name did not resolve' },
  CONNECT_FAILED: { status: 502, text: 'could not connect to upstream' },
  TLS_FAILED: { status: 502, text: 'upstream TLS handshake or verification failed' },
  UPSTREAM_RESET: { status: 502, text: 'upstream closed the connection' },
  UPSTREAM_ERROR: { status: 502, text: 'upstream protocol error' },
  DNS_TIMEOUT: { status: 504, text: 'upstream name resolution timed out' },
  CONNECT_TIMEOUT: { status: 504, text: 'upstream connect timed out' },
  TLS_TIMEOUT: { status: 504, text: 'upstream TLS handshake timed out' },
  RESPONSE_TIMEOUT: { status: 504, text: 'upstream did not send response headers in time' },
  IDLE_TIMEOUT: { status: 504, text: 'upstream exchange was idle too long' },
  TOTAL_TIMEOUT: { status: 504, text: 'request exceeded its total time limit' },
  DRAINING: { status: 503, text: 'proxy is shutting down' },
  OVERLOADED: { status: 503, text: 'proxy is at its concurrency limit' },
  // nginx's 499: the client went away; nobody reads the response, but logs and metrics do.
  CLIENT_CLOSED: { status: 499, text: 'client closed the request' },
  INTERNAL: { status: 500, text: 'internal proxy error' },
};

/** The policy's refusals: 403s the policy decided, not failures of the proxy (metrics: error=""). */
export const POLICY_DENIAL_CODES: ReadonlySet<EgressErrorCode> = new Set<EgressErrorCode>(['EGRESS_DENIED', 'CALLER_NOT_ALLOWED', 'CALLER_UNKNOWN']);

/** The code of a deny decision, by its reason: the caller refusals have their own. */
export function denialCode(reason: string): EgressErrorCode {
  return reason === 'caller-not-allowed' ? 'CALLER_NOT_ALLOWED' : reason === 'caller-unknown' ? 'CALLER_UNKNOWN' : 'EGRESS_DENIED';
}

export class EgressError extends Error {
  public readonly code: EgressErrorCode;
  /** Set only for diagnostics in logs; never sent to clients. */
  public readonly detail?: string;
  constructor(code: EgressErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${code}: ${detail}` : code, options);
    this.name = 'EgressError';
    this.code = code;
    this.detail = detail;
  }
}

export function isEgressError(err: unknown): err is EgressError {
  return err instanceof EgressError;
}

export function statusOf(code: EgressErrorCode): number {
  return CODES[code].status;
}

/** What a client receives for an error: status, headers and a one-line body. */
export interface ErrorResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

const RESPONSES = new Map<EgressErrorCode, ErrorResponse>(
  (Object.keys(CODES) as EgressErrorCode[]).map((code) => {
    const body = `${CODES[code].text} (${code})\n`;
    return [code, {
      status: CODES[code].status,
      headers: {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
        'x-egress-error': code,
      },
      body,
    }];
  }),
);

/** The precomputed response for a code (the only code → status mapping in the proxy). */
export function errorResponse(code: EgressErrorCode): ErrorResponse {
  return RESPONSES.get(code)!;
}

/**
 * Translate anything thrown on the data path into a typed error, by error code only.
 * Node and undici codes are stable API; their messages are not.
 */
export function toEgressError(err: unknown, fallback: EgressErrorCode = 'UPSTREAM_ERROR'): EgressError {
  if (err instanceof EgressError) return err;
  // A TLS alert after the handshake (TLS 1.3 servers refuse a client certificate only then)
  // reaches us as "other side closed" with the alert as its cause: it is a TLS failure, not a reset.
  const tlsCause = tlsLayerError(err);
  if (tlsCause) return new EgressError('TLS_FAILED', tlsCause.code, { cause: err });
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT': return new EgressError('RESPONSE_TIMEOUT', undefined, { cause: err });
    case 'UND_ERR_BODY_TIMEOUT': return new EgressError('IDLE_TIMEOUT', undefined, { cause: err });
    case 'UND_ERR_CONNECT_TIMEOUT': return new EgressError('CONNECT_TIMEOUT', undefined, { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return new EgressError('UPSTREAM_RESET', String(code), { cause: err });
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new EgressError('CONNECT_FAILED', String(code), { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ENODATA':
      return new EgressError('DNS_FAILED', String(code), { cause: err });
    default:
      return new EgressError(fallback, typeof code === 'string' ? code : undefined, { cause: err });
  }
}

/** True for an error raised by the TLS layer itself (OpenSSL), such as an alert from the peer. */
export function isTlsLayerError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; library?: unknown };
  return (typeof e.code === 'string' && e.code.startsWith('ERR_SSL_')) || e.library === 'SSL routines';
}

/** The TLS-layer error in `err` or its cause chain (bounded: causes may be cyclic), if any. */
function tlsLayerError(err: unknown): { code?: string } | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    if (isTlsLayerError(e)) {
      const code = (e as { code?: unknown }).code;
      return { code: typeof code === 'string' ? code : undefined };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/* ------------------------------------------------------------------------- responses */

/** The response to a client, HTTP/1.1 or HTTP/2. */
type ClientResponse = ServerResponse | Http2ServerResponse;

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
