// Byte tunnels: CONNECT, TLS passthrough by SNI and raw TCP listeners. Decide, open the vetted
// upstream (originating TLS only for TCP services that ask for it), then splice with an idle bound.
import type { IncomingMessage } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { classifyConnect, classifySni, normaliseDnsName, requestAuthority, type SuffixMatcher } from './classify';
import { decide, type Decision, type DecisionReason, type Target } from './decide';
import { denialCode, EgressError, errorResponse, toEgressError, type EgressErrorCode } from './errors';
import { observeTunnel, type TunnelRecord } from './observe';
import type { CompiledService, ProxyContext, RuntimeState } from './runtime';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './sni';
import { openUpstream, planTcp, planTunnel, type OpenedUpstream } from './upstream';
import type { ConnectSniSpec } from '../model/proxy-config';

/** A tunnel the client's first bytes closed (see ClientGate). */
export interface GateRefusal {
  readonly pass: false;
  readonly reason: Extract<DecisionReason, 'sni-mismatch' | 'sni-missing' | 'sni-unreadable'>;
  /** For the log line only: may quote what the client sent. */
  readonly detail: string;
}

export type GateVerdict = { readonly pass: true } | GateRefusal;

const PASS: GateVerdict = Object.freeze({ pass: true });

/**
 * Holds the client's first bytes until `judge` has seen enough of them; the upstream's bytes reach
 * the client meanwhile, so a server that speaks first (SMTP, SSH) is never kept waiting.
 */
export interface ClientGate {
  /** Client bytes that arrived with the request head. */
  readonly head?: Buffer;
  /** Every byte the client has sent so far: a verdict, or 'need-more'. */
  judge(held: Buffer): GateVerdict | 'need-more';
}

export interface SpliceResult {
  bytesIn: number;
  bytesOut: number;
  error?: EgressErrorCode;
  /** The gate closed the tunnel. */
  refused?: GateRefusal;
}

/**
 * Copy bytes both ways; a FIN from one side is passed on (pipe ends the other's writable) while
 * the other direction keeps flowing, and the tunnel ends when both sockets have closed, on an
 * error, or after idleMs of silence. Backpressure comes from pipe(). With a `gate`, the client's
 * first bytes are held (bounded by the gate) until it passes them, while the upstream's flow at once.
 */
export function splice(
  client: Socket, upstream: Socket, idleMs: number, record: { bytesIn: number; bytesOut: number }, gate?: ClientGate,
): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let error: EgressErrorCode | undefined;
    let refused: GateRefusal | undefined;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      client.destroy();
      upstream.destroy();
      resolve({ bytesIn: record.bytesIn, bytesOut: record.bytesOut, error, refused });
    };
    client.on('data', (c: Buffer) => { record.bytesIn += c.length; });
    upstream.on('data', (c: Buffer) => { record.bytesOut += c.length; });
    const onIdle = () => {
      error = 'IDLE_TIMEOUT';
      finish();
    };
    client.setTimeout(idleMs, onIdle);
    upstream.setTimeout(idleMs, onIdle);
    client.on('error', () => finish());
    upstream.on('error', () => {
      error ??= 'UPSTREAM_RESET';
      finish();
    });
    client.on('close', finish);
    upstream.on('close', finish);
    upstream.pipe(client);
    if (gate) {
      holdUntilJudged(client, upstream, gate, (r) => {
        refused = r;
        finish();
      });
    } else {
      client.pipe(upstream);
    }
    client.resume();
  });
}

function holdUntilJudged(client: Socket, upstream: Socket, gate: ClientGate, refuse: (r: GateRefusal) => void): void {
  let held: Buffer = gate.head ?? Buffer.alloc(0);
  const stop = () => {
    client.off('data', onData);
    client.off('end', onEnd);
  };
  /** True once judged (passed on, or refused). */
  const judge = (): boolean => {
    const v = gate.judge(held);
    if (v === 'need-more') return false;
    stop();
    if (!v.pass) {
      refuse(v);
      return true;
    }
    if (held.length > 0) upstream.write(held);
    held = Buffer.alloc(0);
    client.pipe(upstream);
    return true;
  };
  const onData = (chunk: Buffer) => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    judge();
  };
  // A client that closes before saying anything passes its FIN on; one that stops mid-way was never judged.
  const onEnd = () => {
    stop();
    if (held.length === 0) upstream.end();
    else refuse({ pass: false, reason: 'sni-unreadable', detail: 'client closed the tunnel in the middle of its first TLS record' });
  };
  if (held.length > 0 && judge()) return;
  client.on('data', onData);
  client.once('end', onEnd);
}

/**
 * The gate of a CONNECT tunnel: a client that speaks TLS first must name the CONNECT host in its
 * ClientHello (SNI), or no name when connectSni is MatchIfPresent or the host is an IP address
 * (IP addresses are not valid SNI). Anything else than a TLS handshake record passes: the tunnel
 * does not carry TLS (or starts it later, as SMTP STARTTLS does, which this cannot see).
 */
export function judgeConnectClientHello(held: Buffer, host: string, suffixes: SuffixMatcher, mode: ConnectSniSpec): GateVerdict | 'need-more' {
  if (held.length === 0) return 'need-more';
  if (held[0] !== 0x16) return PASS;
  const hello = parseClientHello(held);
  if (hello.kind === 'need-more') {
    if (held.length <= MAX_CLIENT_HELLO_BYTES) return 'need-more';
    return { pass: false, reason: 'sni-unreadable', detail: 'ClientHello larger than one TLS record' };
  }
  if (hello.kind === 'invalid') return { pass: false, reason: 'sni-unreadable', detail: `unreadable ClientHello: ${hello.why}` };
  const literal = isIP(host) !== 0;
  if (hello.serverName === undefined) {
    if (literal || mode === 'MatchIfPresent') return PASS;
    return { pass: false, reason: 'sni-missing', detail: `ClientHello without a server name in a tunnel to "${host}"` };
  }
  const name = normaliseDnsName(hello.serverName);
  const stripped = name === undefined ? undefined : suffixes.strip(name) ?? name;
  if (!literal && stripped === host) return PASS;
  return { pass: false, reason: 'sni-mismatch', detail: `ClientHello names ${JSON.stringify(hello.serverName.slice(0, 253))}, not the CONNECT host "${host}"` };
}

export interface TunnelDeps {
  readonly ctx: ProxyContext;
  readonly getState: () => RuntimeState;
  /** Registers the tunnel for drain/overload accounting; returns a release function. */
  readonly track: (socket: Socket) => (() => void) | undefined;
}

function httpStatusLine(code: EgressErrorCode): string {
  const r = errorResponse(code);
  const reason = r.status === 403 ? 'Forbidden' : r.status === 400 ? 'Bad Request' : r.status === 503 ? 'Service Unavailable'
    : r.status === 504 ? 'Gateway Timeout' : r.status === 502 ? 'Bad Gateway' : 'Internal Server Error';
  return `HTTP/1.1 ${r.status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\nx-egress-error: ${code}\r\n` +
    `content-length: ${Buffer.byteLength(r.body)}\r\nconnection: close\r\n\r\n${r.body}`;
}

function newRecord(kind: TunnelRecord['kind'], parentPort: number): TunnelRecord {
  return { kind, parentPort, bytesIn: 0, bytesOut: 0, started: performance.now() };
}

/** `CONNECT host:port`: policy as 'tls' (port 443) or 'tcp', then splice to the vetted address. */
export async function handleConnect(deps: TunnelDeps, req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
  const state = deps.getState();
  const { ctx } = deps;
  const record = newRecord('connect', 0);
  client.on('error', () => undefined);
  const release = deps.track(client);
  if (!release) {
    client.end(httpStatusLine('DRAINING'));
    return;
  }
  try {
    let target: Target;
    try {
      requestAuthority(req);
      // A CONNECT request has headers, so the sidecar's identity header names the caller of the tunnel.
      record.caller = state.callers.ofRequest(req, client);
      target = classifyConnect(req.url ?? '', state.suffixes, record.caller?.caller);
    } catch (err) {
      record.error = toEgressError(err, 'BAD_REQUEST').code;
      client.end(httpStatusLine(record.error));
      observeTunnel(ctx, state, record);
      return;
    }
    record.parentPort = target.port;
    record.target = target;
    const decision = decide(state.policy, target);
    record.decision = decision;
    if (decision.action !== 'allow') {
      record.error = denialCode(decision.reason);
      client.end(httpStatusLine(record.error));
      observeTunnel(ctx, state, record);
      return;
    }
    let opened: OpenedUpstream;
    try {
      opened = await openUpstream(ctx, state, planTunnel(state, decision, target, target.port));
    } catch (err) {
      const e = toEgressError(err, 'CONNECT_FAILED');
      record.error = e.code;
      record.errorDetail = e.detail;
      client.end(httpStatusLine(e.code));
      observeTunnel(ctx, state, record);
      return;
    }
    record.opened = opened;
    observeTunnel(ctx, state, record, 'open');
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    record.bytesIn += head.length;
    // The upstream is connected and relayed before the client's first bytes are in: a server that
    // speaks first (SMTP, SSH) must not wait for a client that is waiting for it.
    const mode = state.config.listeners.http.connectSni;
    const reportOnly = state.config.parent.mode === 'ReportOnly';
    let wouldRefuse: GateRefusal | undefined;
    const gate: ClientGate = {
      head,
      judge: (held) => {
        const v = judgeConnectClientHello(held, target.host, state.suffixes, mode);
        if (v === 'need-more' || v.pass || !reportOnly) return v;
        wouldRefuse = v;
        return PASS;
      },
    };
    const r = await splice(client, opened.socket, timeoutsOf(state, decision).tunnelIdleMs, record, gate);
    record.error = r.error;
    if (r.refused) {
      record.decision = { ...decision, action: 'deny', reason: r.refused.reason };
      record.error = 'EGRESS_DENIED';
      record.errorDetail = r.refused.detail;
    } else if (wouldRefuse) {
      record.decision = { ...decision, reason: 'report-only', wouldReason: wouldRefuse.reason, reportOnly: true };
      record.errorDetail = wouldRefuse.detail;
    }
    observeTunnel(ctx, state, record, 'close');
  } finally {
    release();
  }
}

function timeoutsOf(state: RuntimeState, decision: Decision) {
  const svc = decision.externalService ? state.services.get(decision.externalService) : undefined;
  return svc?.timeouts ?? state.config.timeouts;
}

/** Read the ClientHello without consuming it for the upstream: returns every byte read so far. */
function readClientHello(client: Socket, timeoutMs: number): Promise<{ buffered: Buffer; serverName?: string }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new EgressError('BAD_REQUEST', 'no ClientHello in time')), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('error', onEnd);
    };
    const fail = (e: EgressError) => {
      cleanup();
      reject(e);
    };
    const onEnd = () => fail(new EgressError('BAD_REQUEST', 'closed before ClientHello'));
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseClientHello(buf);
      if (r.kind === 'need-more') {
        if (buf.length > MAX_CLIENT_HELLO_BYTES) fail(new EgressError('BAD_REQUEST', 'ClientHello too large'));
        return;
      }
      cleanup();
      client.pause();
      if (r.kind === 'invalid') reject(new EgressError('BAD_REQUEST', r.why));
      else if (!r.serverName) reject(new EgressError('BAD_REQUEST', 'no SNI'));
      else resolve({ buffered: buf, serverName: r.serverName });
    };
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('error', onEnd);
  });
}

/** TLS passthrough: decide on the SNI name and splice to it on 443 without terminating TLS. */
export async function handleTlsPassthrough(deps: TunnelDeps, client: Socket): Promise<void> {
  const state = deps.getState();
  const { ctx } = deps;
  const parentPort = state.config.listeners.tls?.parentPort ?? 443;
  const record = newRecord('tls', parentPort);
  client.on('error', () => undefined);
  // Admitted once the ClientHello is in: a connection that sends none holds no request slot.
  let hello;
  try {
    hello = await readClientHello(client, state.config.timeouts.requestHeadersMs);
  } catch (err) {
    record.error = toEgressError(err, 'BAD_REQUEST').code;
    record.errorDetail = (err as EgressError).detail;
    client.destroy();
    observeTunnel(ctx, state, record);
    return;
  }
  const release = deps.track(client);
  if (!release) {
    client.destroy();
    return;
  }
  try {
    let target: Target;
    try {
      target = classifySni(hello.serverName!, parentPort);
    } catch (err) {
      record.error = 'BAD_REQUEST';
      client.destroy();
      observeTunnel(ctx, state, record);
      return;
    }
    record.target = target;
    await admitAndSplice(deps, state, record, client, target, hello.buffered, (decision) => planTunnel(state, decision, target, parentPort));
  } finally {
    release();
  }
}

/** A raw TCP listener bound to one external service port. */
export async function handleTcp(deps: TunnelDeps, client: Socket, serviceName: string, servicePort: number): Promise<void> {
  const state = deps.getState();
  const { ctx } = deps;
  const record = newRecord('tcp', servicePort);
  client.on('error', () => undefined);
  client.pause();
  const release = deps.track(client);
  if (!release) {
    client.destroy();
    return;
  }
  try {
    const svc: CompiledService | undefined = state.servicesByName.get(serviceName);
    if (!svc) {
      record.error = 'NO_BACKEND';
      client.destroy();
      observeTunnel(ctx, state, record);
      return;
    }
    const target: Target = { protocol: 'tcp', host: svc.spec.host, port: servicePort };
    record.target = target;
    await admitAndSplice(deps, state, record, client, target, undefined, () => planTcp(svc, servicePort));
  } finally {
    release();
  }
}

async function admitAndSplice(
  deps: TunnelDeps, state: RuntimeState, record: TunnelRecord, client: Socket, target: Target, buffered: Buffer | undefined,
  plan: (d: Decision) => ReturnType<typeof planTunnel>,
): Promise<void> {
  const { ctx } = deps;
  // TLS passthrough and TCP carry no headers: the caller is unknown (target.caller undefined), so
  // what declares clients refuses these connections, and so does callers.unknown Deny.
  if (state.callers.active) record.caller = state.callers.connection();
  const decision = decide(state.policy, target);
  record.decision = decision;
  if (decision.action !== 'allow') {
    record.error = denialCode(decision.reason);
    client.destroy();
    observeTunnel(ctx, state, record);
    return;
  }
  let opened: OpenedUpstream;
  try {
    opened = await openUpstream(ctx, state, plan(decision));
  } catch (err) {
    const e = toEgressError(err, 'CONNECT_FAILED');
    record.error = e.code;
    record.errorDetail = e.detail;
    client.destroy();
    observeTunnel(ctx, state, record);
    return;
  }
  record.opened = opened;
  observeTunnel(ctx, state, record, 'open');
  if (buffered) {
    record.bytesIn += buffered.length;
    opened.socket.write(buffered);
  }
  const r = await splice(client, opened.socket, timeoutsOf(state, decision).tunnelIdleMs, record);
  record.error = r.error;
  observeTunnel(ctx, state, record, 'close');
}
