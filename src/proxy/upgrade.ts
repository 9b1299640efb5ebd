// HTTP/1.1 Upgrade (WebSocket): decide like any HTTP request, open the vetted upstream (TLS
// originated as for plain requests), send the rewritten request head, then splice the bytes.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { CallerResolution } from './caller';
import { classifyHttp, requestAuthority, type ClassifiedRequest } from './classify';
import { decide, pathRestricted, type Decision } from './decide';
import { denialCode, EgressError, errorResponse, toEgressError, type EgressErrorCode } from './errors';
import { hostHeaderFor, upstreamRequestHeaders } from './forward-http';
import { observeHttp, type HttpOutcome } from './observe';
import { applyHeaderModifier, type HeaderRecord } from './route-match';
import type { RuntimeState } from './runtime';
import { splice, type TunnelDeps } from './tunnel';
import { openUpstream, planHttp, type UpstreamPlan } from './upstream';

function statusReason(status: number): string {
  switch (status) {
    case 400: return 'Bad Request';
    case 403: return 'Forbidden';
    case 500: return 'Internal Server Error';
    case 502: return 'Bad Gateway';
    case 503: return 'Service Unavailable';
    case 504: return 'Gateway Timeout';
    default: return 'Error';
  }
}

function errorHead(code: EgressErrorCode): string {
  const r = errorResponse(code);
  return `HTTP/1.1 ${r.status} ${statusReason(r.status)}\r\ncontent-type: text/plain; charset=utf-8\r\nx-egress-error: ${code}\r\n` +
    `content-length: ${Buffer.byteLength(r.body)}\r\nconnection: close\r\n\r\n${r.body}`;
}

/** The request head for upstream: the client's, hop-by-hop cleaned, Upgrade kept, Host rewritten. */
export function upgradeRequestHead(req: IncomingMessage, path: string, plan: UpstreamPlan, decision: Decision): string {
  let headers = upstreamRequestHeaders(req.headers as HeaderRecord, hostHeaderFor(plan));
  for (const f of decision.rule?.filters ?? []) {
    if (f.type === 'RequestHeaderModifier' && f.headerModifier) headers = applyHeaderModifier(headers, f.headerModifier);
  }
  for (const [name, value] of plan.service?.injected ?? []) headers[name] = value;
  headers.connection = 'Upgrade';
  headers.upgrade = String(req.headers.upgrade);
  let head = `${req.method} ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      // This head is written raw: a line break in a value would smuggle a header.
      if (/[\r\n\0]/.test(v)) continue;
      head += `${name}: ${v}\r\n`;
    }
  }
  return `${head}\r\n`;
}

/** Parse 'HTTP/1.1 101 ...' from the first bytes of the upstream's answer. */
function upstreamStatus(chunk: Buffer): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(chunk.subarray(0, 16).toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

export async function handleUpgrade(deps: TunnelDeps, req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
  const { ctx } = deps;
  const state: RuntimeState = deps.getState();
  const started = performance.now();
  const parentPort = state.config.listeners.http.parentPort;
  const outcome: HttpOutcome = { status: 0, bytesIn: 0, bytesOut: 0, attempts: 0 };
  client.on('error', () => undefined);
  const release = deps.track(client);
  if (!release) {
    outcome.error = 'DRAINING';
    outcome.status = 503;
    client.end(errorHead('DRAINING'));
    return;
  }
  let classified: ClassifiedRequest | undefined;
  let decision: Decision | undefined;
  let plan: UpstreamPlan | undefined;
  let who: CallerResolution | undefined;
  try {
    who = state.callers.ofRequest(req, client);
    classified = classifyHttp({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers }, requestAuthority(req), state.suffixes,
      state.config.listeners.http.forwardProxy, parentPort, Math.random(), state.config.listeners.http.ambiguousPaths, who?.caller);
    if (classified.ambiguity && pathRestricted(state.policy, classified.target)) {
      throw new EgressError('BAD_REQUEST', `ambiguous path (${classified.ambiguity}) where routes restrict paths`);
    }
    decision = decide(state.policy, classified.target);
    if (decision.reason === 'no-backend') throw new EgressError('NO_BACKEND');
    if (decision.action !== 'allow') throw new EgressError(decision.action === 'deny' ? denialCode(decision.reason) : 'EGRESS_DENIED');
    plan = planHttp(state, decision, classified.target);
    const opened = await openUpstream(ctx, state, plan, ['http/1.1']);
    outcome.attempts = opened.attempts;
    outcome.candidate = opened.candidate;
    outcome.connectMs = opened.connectMs;
    outcome.tlsMs = opened.tlsMs;
    opened.socket.write(upgradeRequestHead(req, classified.path, plan, decision));
    if (head.length > 0) {
      outcome.bytesIn += head.length;
      opened.socket.write(head);
    }
    opened.socket.once('data', (chunk: Buffer) => {
      outcome.status = upstreamStatus(chunk) ?? 0;
      outcome.ttfbMs = performance.now() - started;
    });
    const r = await splice(client, opened.socket, plan.timeouts.tunnelIdleMs, outcome);
    if (r.error) outcome.error = r.error;
  } catch (err) {
    const e = toEgressError(err, 'INTERNAL');
    outcome.error = e.code;
    outcome.errorDetail = e.detail;
    outcome.status = errorResponse(e.code).status;
    client.end(errorHead(e.code));
  } finally {
    release();
    observeHttp(ctx, state, {
      target: classified?.target, decision, plan, parentPort, grpc: false, outcome, started, method: req.method, caller: who,
    });
  }
}
