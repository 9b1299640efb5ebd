// The proxy's lifecycle: bind listeners (HTTP/1.1 + h2c, TLS passthrough, TCP, admin), run each
// request through classify → decide → forward → observe, reload config atomically, drain.
import { createHash } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { dirname } from 'node:path';
import { createAdminServer } from './admin';
import { classifyHttp, requestAuthority, splitHostPort, type ClassifiedRequest, type RequestLike } from './classify';
import { ConfigError, parseConfigText, validateConfig, type ConfigProblem } from './config';
import { decide, pathRestricted, type Decision } from './decide';
import { EgressError, toEgressError } from './errors';
import { forwardHttp, sendError, type ClientRequest, type ClientResponse, type HttpOutcome } from './forward-http';
import { createLogger, type Logger } from './log';
import { MaterialWatcher, materialFiles, materialHash } from './material-watch';
import { ProxyMetrics } from './metrics';
import { observeHttp } from './observe';
import { systemResolver, type Resolver } from './resolve';
import { redirectLocation } from './route-match';
import { RuntimeState, defaultDialer, type Dialer, type ProxyContext } from './runtime';
import { handleConnect, handleTcp, handleTlsPassthrough, type TunnelDeps } from './tunnel';
import { handleUpgrade } from './upgrade';
import { planHttp, type UpstreamPlan } from './upstream';
import type { ProxyConfig } from '../model/proxy-config';

export interface StartProxyOptions {
  /** Config file to load and watch (a ConfigMap mount). One of configPath or config is required. */
  readonly configPath?: string;
  /** A config object (validated like a file; not watched). */
  readonly config?: ProxyConfig | Record<string, unknown>;
  /** Name resolution; default: the system resolver (all addresses). */
  readonly resolver?: Resolver;
  /** TCP dialler for upstream connections; default net.connect. */
  readonly dial?: Dialer;
  readonly logger?: Logger;
  /** Watch configPath for changes. @default true when configPath is given */
  readonly watch?: boolean;
  /** Fallback poll of the config file's content hash. @default 2000 */
  readonly pollIntervalMs?: number;
  /** Register Node process metrics on the registry. @default false */
  readonly processMetrics?: boolean;
}

export interface ProxyPorts {
  readonly http: number;
  readonly tls?: number;
  readonly tcp: readonly number[];
  readonly admin: number;
}

export interface ReloadResult {
  readonly ok: boolean;
  /** True when the file was unchanged and nothing was done. */
  readonly unchanged?: boolean;
  readonly problems: readonly ConfigProblem[];
  readonly generation: number;
}

export interface ProxyHandle {
  /** The bound ports (port 0 in the config means an ephemeral port, reported here). */
  readonly ports: ProxyPorts;
  readonly metrics: ProxyMetrics;
  /** The live config. */
  config(): ProxyConfig;
  /** Ready: config loaded and not draining. */
  isReady(): boolean;
  /** In-flight requests and tunnels. */
  inflight(): number;
  /** Re-read configPath now. Invalid: keeps the last good config and reports the problems. */
  reload(): Promise<ReloadResult>;
  /**
   * Graceful stop: not ready, stop accepting, let in-flight work finish for graceMs
   * (default timeouts.shutdownGraceMs), then close everything, admin last.
   */
  drain(graceMs?: number): Promise<void>;
  /** Immediate stop: every connection is closed. */
  close(): Promise<void>;
}

const H2_PREFACE_START = Buffer.from('PRI ');

/** What the proxy knows about one accepted client connection. */
interface ClientConn {
  readonly listener: 'http' | 'tls' | 'tcp';
  /** HTTP listener: the protocol the sniff chose; undefined while sniffing (and on other listeners). */
  protocol?: 'h1' | 'h2';
  session?: http2.Http2Session;
  /** Requests and tunnels in flight on it. */
  busy: number;
  /** Requests (tunnels, h2 streams) it has started. */
  requests: number;
  /** Runs from accept until the first request's headers are complete. */
  headersTimer?: NodeJS.Timeout;
}

/** Start the proxy. Rejects with ConfigError (every problem listed) before binding anything. */
export async function startProxy(options: StartProxyOptions): Promise<ProxyHandle> {
  const proxy = new Proxy(options);
  await proxy.start();
  return proxy;
}

class Proxy implements ProxyHandle {
  public readonly metrics: ProxyMetrics;
  public ports: ProxyPorts = { http: 0, tcp: [], admin: 0 };
  private readonly ctx: ProxyContext;
  private state!: RuntimeState;
  private generation = 0;
  private loadedAt = new Date();
  private lastHash = '';
  private draining = false;
  private closed = false;
  private active = 0;
  private readonly servers: net.Server[] = [];
  private adminServer?: http.Server;
  private h1!: http.Server;
  private h2!: http2.Http2Server;
  /** Every accepted data-plane client connection. */
  private readonly conns = new Map<net.Socket, ClientConn>();
  private readonly sessions = new Set<http2.Http2Session>();
  /** The connection whose h2 session the h2 server is creating (its 'session' event is synchronous). */
  private pendingH2?: ClientConn;
  /** Set while limits.maxClientConnections refuses connections: one log line when it starts and ends. */
  private limitBiting?: { refused: number };
  private watcher?: FSWatcher;
  private pollTimer?: NodeJS.Timeout;
  private reloadDebounce?: NodeJS.Timeout;
  private reloading: Promise<ReloadResult> | undefined;
  private idleWaiters: Array<() => void> = [];
  private lastFailedHash = '';
  private lastStatKey = '';
  private readonly tunnelDeps: TunnelDeps;
  /** Files the live config reads (certificates, keys, header values) and their content hash. */
  private material = { files: [] as string[], hash: '' };
  private materialWatcher?: MaterialWatcher;
  private lastFailedMaterialHash = '';

  constructor(private readonly options: StartProxyOptions) {
    this.metrics = new ProxyMetrics({ defaultMetrics: options.processMetrics });
    this.ctx = {
      dial: options.dial ?? defaultDialer,
      resolver: options.resolver ?? systemResolver,
      logger: options.logger ?? createLogger(),
      metrics: this.metrics,
    };
    this.metrics.operate.bind(() => this.isReady(), () => this.state?.config.limits.maxConcurrent);
    this.tunnelDeps = { ctx: this.ctx, getState: () => this.state, track: (socket) => this.admit(socket) };
  }

  public async start(): Promise<void> {
    const { config, hash } = this.readInitialConfig();
    // Hashed before compiling: a file that changes in between is seen as changed next time.
    this.material = { files: materialFiles(config), hash: '' };
    this.material.hash = materialHash(this.material.files);
    this.state = new RuntimeState(config, ++this.generation);
    this.state.startPoolSweeper();
    this.lastHash = hash;
    this.loadedAt = new Date();
    this.metrics.reloadSuccesses.inc();
    this.metrics.lastReloadSuccess.set(Date.now() / 1000);
    this.configureHttp(config);
    try {
      await this.bindAll(config);
    } catch (err) {
      // A port in use must not leave the listeners bound so far behind.
      await this.close();
      throw err;
    }
  }

  private async bindAll(config: ProxyConfig): Promise<void> {
    const l = config.listeners;
    const bind = l.bindAddress;
    // Half-open sockets, as node:http's own server uses them: a client's FIN is not our cue to close.
    const httpServer = net.createServer({ allowHalfOpen: true }, (s) => this.onHttpConnection(s));
    const httpPort = await this.listen(httpServer, l.http.port, bind);
    let tlsPort: number | undefined;
    if (l.tls) {
      const tlsServer = net.createServer({ allowHalfOpen: true }, (s) => {
        if (this.adopt(s, 'tls')) void handleTlsPassthrough(this.tunnelDeps, s);
      });
      tlsPort = await this.listen(tlsServer, l.tls.port, bind);
    }
    const tcpPorts: number[] = [];
    for (const t of l.tcp) {
      const srv = net.createServer({ allowHalfOpen: true }, (s) => {
        if (this.adopt(s, 'tcp')) void handleTcp(this.tunnelDeps, s, t.externalService, t.servicePort);
      });
      tcpPorts.push(await this.listen(srv, t.port, bind));
    }
    this.adminServer = createAdminServer({
      metrics: this.metrics,
      isReady: () => this.isReady(),
      currentConfig: () => this.state?.config,
      configInfo: () => ({ generation: this.generation, loadedAt: this.loadedAt.toISOString(), source: this.options.configPath ?? 'inline' }),
    });
    const adminPort = await this.listen(this.adminServer, l.admin.port, bind, false);
    this.ports = { http: httpPort, tls: tlsPort, tcp: tcpPorts, admin: adminPort };
    if (this.options.configPath && this.options.watch !== false) this.startWatching(this.options.configPath);
    if (this.options.watch ?? this.options.configPath !== undefined) {
      this.materialWatcher = new MaterialWatcher(() => this.reloadMaterial(), this.options.pollIntervalMs ?? 2_000);
      this.materialWatcher.track(this.material.files, this.material.hash);
    }
    this.ctx.logger.info({ event: 'started', ports: this.ports, gateway: config.gateway, generation: this.generation }, 'egress proxy listening');
  }

  private readInitialConfig(): { config: ProxyConfig; hash: string } {
    if (this.options.configPath) {
      let text: string;
      try {
        text = readFileSync(this.options.configPath, 'utf8');
      } catch (err) {
        throw new ConfigError(this.options.configPath, [{ path: '$', message: `cannot read file: ${(err as NodeJS.ErrnoException).code}` }]);
      }
      return { config: parseConfigText(text, this.options.configPath), hash: sha256(text) };
    }
    if (!this.options.config) throw new ConfigError('options', [{ path: '$', message: 'startProxy needs configPath or config' }]);
    const r = validateConfig(this.options.config);
    if (!r.ok) throw new ConfigError('config', r.problems);
    return { config: r.config, hash: '' };
  }

  private configureHttp(config: ProxyConfig): void {
    const t = config.timeouts;
    this.h1 = http.createServer({
      maxHeaderSize: config.limits.maxHeaderBytes,
      // How often node:http enforces headersTimeout (its default, 30 s, would blunt a short one).
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(t.requestHeadersMs / 4))),
    }, (req, res) => this.onRequest(req, res));
    // This server never listens itself (connections come from the sniffing listener), and
    // node:http only starts tracking connections, and so the headers timeout, on 'listening'.
    this.h1.emit('listening');
    this.h2 = http2.createServer({ settings: { maxHeaderListSize: config.limits.maxHeaderBytes } }, (req, res) => this.onRequest(req, res));
    // Slowloris bound; long uploads are bounded by idle and total timeouts instead.
    this.h1.headersTimeout = t.requestHeadersMs;
    this.h1.requestTimeout = 0;
    // No socket inactivity timeout on the client side: a stalled upload trips the upstream
    // watchdog (undici refreshes it per body write) and gets a 504 instead of a silent close.
    this.h1.keepAliveTimeout = t.clientKeepAliveMs;
    this.h1.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.requestStarted(this.conns.get(socket));
      if (!this.state.config.listeners.http.forwardProxy) {
        socket.on('error', () => undefined);
        socket.end('HTTP/1.1 405 Method Not Allowed\r\nx-egress-error: BAD_REQUEST\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      void handleConnect(this.tunnelDeps, req, socket, head);
    });
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.requestStarted(this.conns.get(socket));
      void handleUpgrade(this.tunnelDeps, req, socket, head);
    });
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      if (socket.writable && !socket.destroyed) {
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nx-egress-error: BAD_REQUEST\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      }
      socket.destroy();
    });
    this.h2.on('session', (session: http2.Http2Session) => {
      const conn = this.pendingH2;
      this.pendingH2 = undefined;
      if (conn) {
        conn.session = session;
        session.once('stream', () => this.requestStarted(conn));
      }
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => undefined);
      if (this.draining) session.close();
    });
    this.h2.on('sessionError', () => undefined);
    // An HTTP/2 client connection silent for idleMs is closed, as an idle upstream exchange is.
    this.h2.setTimeout(t.idleMs);
  }


  private listen(server: net.Server, port: number, host: string, dataPlane = true): Promise<number> {
    if (dataPlane) this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.ctx.logger.error({ err }, 'listener error'));
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Sniff the HTTP/2 preface: gRPC clients speak h2c with prior knowledge, others HTTP/1.1. The
   * request-headers timeout runs from accept, through the sniff, to the first request's headers.
   */
  private onHttpConnection(socket: net.Socket): void {
    if (this.draining) {
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    const conn = this.adopt(socket, 'http');
    if (!conn) return;
    conn.headersTimer = setTimeout(() => this.onHeadersTimeout(socket, conn), this.state.config.timeouts.requestHeadersMs);
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE_START.length);
      const maybeH2 = head.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n));
      if (maybeH2 && n < H2_PREFACE_START.length) return; // 'P', 'PR', 'PRI': wait for the 4th byte
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      socket.unshift(head);
      if (maybeH2) {
        conn.protocol = 'h2';
        this.pendingH2 = conn;
        // The session reads the unshifted bytes itself on the next tick; resuming would drop them.
        this.h2.emit('connection', socket);
        this.pendingH2 = undefined;
      } else {
        conn.protocol = 'h1';
        this.h1.emit('connection', socket);
        socket.resume();
      }
    };
    // Half-open listener: a client that leaves before its first byte would otherwise stay until the timer.
    const onEnd = () => socket.destroy();
    socket.on('data', onData);
    socket.once('end', onEnd);
  }

  /** No complete first request within requestHeadersMs of accept: 408 where HTTP/1.1 was spoken, else close. */
  private onHeadersTimeout(socket: net.Socket, conn: ClientConn): void {
    conn.headersTimer = undefined;
    this.metrics.clientHeadersTimeouts.inc();
    if (conn.protocol === 'h1' && socket.writable) {
      socket.end('HTTP/1.1 408 Request Timeout\r\nx-egress-error: BAD_REQUEST\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    }
    socket.destroySoon();
  }

  /** A connection's request (or tunnel, or h2 stream) arrived: its headers are in, so the accept bound ends. */
  private requestStarted(conn: ClientConn | undefined): void {
    if (!conn) return;
    conn.requests++;
    if (conn.headersTimer) {
      clearTimeout(conn.headersTimer);
      conn.headersTimer = undefined;
    }
  }

  /**
   * Track a data-plane connection so shutdown can close it, or close it at once when
   * limits.maxClientConnections are open (undefined then).
   */
  private adopt(socket: net.Socket, listener: ClientConn['listener']): ClientConn | undefined {
    socket.on('error', () => undefined);
    const limit = this.state.config.limits.maxClientConnections;
    if (this.conns.size >= limit) {
      this.metrics.clientConnectionsRefused.inc({ listener });
      if (!this.limitBiting) {
        this.limitBiting = { refused: 0 };
        this.ctx.logger.warn({ event: 'connection-limit', limit, open: this.conns.size, listener },
          'client connection limit reached; closing new connections at accept');
      }
      this.limitBiting.refused++;
      socket.destroy();
      return undefined;
    }
    const conn: ClientConn = { listener, busy: 0, requests: 0 };
    this.conns.set(socket, conn);
    this.metrics.clientConnections.inc();
    socket.once('close', () => {
      clearTimeout(conn.headersTimer);
      this.conns.delete(socket);
      this.metrics.clientConnections.dec();
      if (this.limitBiting && this.conns.size < this.state.config.limits.maxClientConnections) {
        this.ctx.logger.info({ event: 'connection-limit-cleared', refused: this.limitBiting.refused, open: this.conns.size },
          'client connections below the limit again');
        this.limitBiting = undefined;
      }
    });
    return conn;
  }

  /**
   * Admission for a request or tunnel: undefined when draining or overloaded. `socket` (HTTP/1.1
   * and tunnels) is marked busy, so a drain closes only connections with nothing in flight.
   */
  private admit(socket?: net.Socket): (() => void) | undefined {
    if (this.draining || this.active >= this.state.config.limits.maxConcurrent) return undefined;
    this.active++;
    this.metrics.inflight.inc();
    const conn = socket ? this.conns.get(socket) : undefined;
    if (conn) conn.busy++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.metrics.inflight.dec();
      if (conn) {
        conn.busy = Math.max(0, conn.busy - 1);
        if (this.draining && conn.busy === 0) socket!.destroySoon();
      }
      if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
  }

  private onRequest(req: ClientRequest, res: ClientResponse): void {
    const started = performance.now();
    const state = this.state;
    const grpc = typeof req.headers['content-type'] === 'string' && req.headers['content-type'].startsWith('application/grpc');
    const outcome: HttpOutcome = { status: 0, bytesIn: 0, bytesOut: 0, attempts: 0 };
    const parentPort = state.config.listeners.http.parentPort;
    const h1 = req.httpVersionMajor < 2;
    if (h1) this.requestStarted(this.conns.get(req.socket as net.Socket));
    const release = this.admit(h1 ? req.socket as net.Socket : undefined);
    if (!release) {
      outcome.error = this.draining ? 'DRAINING' : 'OVERLOADED';
      outcome.status = sendError(res, outcome.error, grpc, h1 ? { connection: 'close' } : undefined);
      observeHttp(this.ctx, state, { parentPort, grpc, outcome, started, method: req.method });
      return;
    }
    res.once('close', release);
    if (h1 && this.draining) res.setHeader('connection', 'close');
    void this.serve(state, req, res, grpc, outcome, started, parentPort);
  }

  private async serve(
    state: RuntimeState, req: ClientRequest, res: ClientResponse, grpc: boolean, outcome: HttpOutcome, started: number, parentPort: number,
  ): Promise<void> {
    let classified: ClassifiedRequest | undefined;
    let decision: Decision | undefined;
    let plan: UpstreamPlan | undefined;
    let authority: string | undefined;
    const controller = new AbortController();
    let totalTimer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new EgressError('CLIENT_CLOSED'));
    };
    res.once('close', onClose);
    try {
      authority = requestAuthority(req);
      classified = classifyHttp(req as RequestLike, authority, state.suffixes,
        state.config.listeners.http.forwardProxy, parentPort, Math.random(), state.config.listeners.http.ambiguousPaths);
      const target = classified.target;
      if (classified.ambiguity && pathRestricted(state.policy, target)) {
        throw new EgressError('BAD_REQUEST', `ambiguous path (${classified.ambiguity}) where routes restrict paths`);
      }
      decision = decide(state.policy, target);
      if (decision.reason === 'no-backend') throw new EgressError('NO_BACKEND');
      if (decision.action === 'deny') {
        outcome.error = 'EGRESS_DENIED';
        outcome.status = sendError(res, 'EGRESS_DENIED', grpc);
        if (grpc) outcome.grpcStatus = '7';
        return;
      }
      if (decision.action === 'redirect') {
        outcome.status = this.redirect(res, decision, classified, authority);
        return;
      }
      plan = planHttp(state, decision, target);
      const timeouts = plan.timeouts;
      const limit = minPositive(timeouts.totalMs, decision.rule?.requestTimeoutMs);
      if (limit > 0) {
        totalTimer = setTimeout(() => {
          timedOut = true;
          controller.abort(new EgressError('TOTAL_TIMEOUT'));
        }, limit);
      }
      await forwardHttp({
        ctx: this.ctx, state, plan, target, rule: decision.rule, req, res, path: classified.path, grpc, signal: controller.signal, outcome,
      });
    } catch (err) {
      const e = timedOut ? new EgressError('TOTAL_TIMEOUT') : toEgressError(err, 'INTERNAL');
      outcome.error = e.code;
      outcome.errorDetail = e.detail;
      if (!res.headersSent) outcome.status = sendError(res, e.code, grpc);
      else sendError(res, e.code, grpc);
      if (e.code === 'INTERNAL') this.ctx.logger.error({ err }, 'internal error on the request path');
    } finally {
      clearTimeout(totalTimer);
      res.off('close', onClose);
      observeHttp(this.ctx, state, {
        target: classified?.target, decision, plan, parentPort, grpc, outcome, started, method: req.method,
      });
    }
  }

  private redirect(res: ClientResponse, decision: Decision, c: ClassifiedRequest, authority: string | undefined): number {
    const spec = decision.redirect;
    if (!spec) return sendError(res, 'NO_BACKEND', false);
    // Location names the host the way the client addressed it (with its egress suffix).
    const clientHost = c.absolute ? c.target.host : splitHostPort(authority ?? '')?.host ?? c.target.host;
    const request = { host: clientHost, port: c.target.port, path: c.target.path, query: c.target.query };
    const location = redirectLocation(request, spec, decision.matchedPrefix);
    (res as http.ServerResponse).writeHead(spec.statusCode, { location, 'content-length': '0' });
    res.end();
    return spec.statusCode;
  }

  public config(): ProxyConfig {
    return this.state.config;
  }

  public isReady(): boolean {
    return !this.draining && !this.closed && this.state !== undefined;
  }

  public inflight(): number {
    return this.active;
  }

  /* ------------------------------------------------------------------ reload */

  private startWatching(file: string): void {
    const dir = dirname(file);
    this.lastStatKey = statKey(file);
    const schedule = () => {
      clearTimeout(this.reloadDebounce);
      // A ConfigMap update is several renames; let them settle.
      this.reloadDebounce = setTimeout(() => void this.reload(), 50);
    };
    try {
      // The directory, not the file: kubelet swaps the `..data` symlink, the file's inode never changes.
      this.watcher = watch(dir, { persistent: false }, schedule);
      this.watcher.on('error', () => undefined);
    } catch (err) {
      this.ctx.logger.warn({ err, dir }, 'cannot watch config directory; relying on polling');
    }
    const interval = this.options.pollIntervalMs ?? 2_000;
    this.pollTimer = setInterval(() => {
      // Cheap check first: stat follows the ..data symlink, so a swap changes inode or mtime.
      const key = statKey(file);
      if (key === this.lastStatKey) return;
      this.lastStatKey = key;
      void this.reload();
    }, interval);
    this.pollTimer.unref();
  }

  public reload(): Promise<ReloadResult> {
    // One reload at a time; a burst of events coalesces into the running one plus a re-check.
    if (this.reloading) return this.reloading.then(() => this.doReload());
    this.reloading = this.doReload().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async doReload(): Promise<ReloadResult> {
    const file = this.options.configPath;
    if (!file || this.closed) return { ok: false, problems: [{ path: '$', message: 'no config file to reload' }], generation: this.generation };
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      // Mid-swap the file can be briefly absent; the next event or poll picks it up.
      return this.reloadFailed([{ path: '$', message: `cannot read file: ${(err as NodeJS.ErrnoException).code}` }], sha256(''));
    }
    if (text.length > MAX_CONFIG_BYTES) {
      return this.reloadFailed([{ path: '$', message: `file is larger than ${MAX_CONFIG_BYTES} bytes` }], sha256(text));
    }
    const hash = sha256(text);
    if (hash === this.lastHash) return { ok: true, unchanged: true, problems: [], generation: this.generation };
    let next: RuntimeState;
    let material: { files: string[]; hash: string };
    try {
      const config = parseConfigText(text, file);
      material = { files: materialFiles(config), hash: '' };
      material.hash = materialHash(material.files);
      next = new RuntimeState(config, this.generation + 1);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [{ path: '$', message: (err as Error).message }];
      return this.reloadFailed(problems, hash);
    }
    this.warnUnreloadable(this.state.config, next.config);
    this.swapState(next, material);
    this.lastHash = hash;
    this.ctx.logger.info({ event: 'config-reloaded', generation: this.generation }, 'config reloaded');
    return { ok: true, problems: [], generation: this.generation };
  }

  /**
   * A file the live config reads (a rotated certificate, key or header value) changed: compile
   * the same config again with it. New connections use the new material; pooled ones finish on
   * the old. An unusable file keeps the last good state, as a bad config does.
   */
  private reloadMaterial(): void {
    if (this.closed || this.draining) return;
    const config = this.state.config;
    const material = { files: materialFiles(config), hash: '' };
    material.hash = materialHash(material.files);
    if (material.hash === this.material.hash) return;
    let next: RuntimeState;
    try {
      next = new RuntimeState(config, this.generation + 1);
    } catch (err) {
      if (material.hash !== this.lastFailedMaterialHash) {
        this.lastFailedMaterialHash = material.hash;
        this.metrics.reloadFailures.inc();
        const problems = err instanceof ConfigError ? err.problems : [{ path: '$', message: (err as Error).message }];
        this.ctx.logger.error({ event: 'material-reload-failed', problems, generation: this.generation },
          'changed certificate or secret files rejected; keeping the last good ones');
      }
      return;
    }
    this.swapState(next, material);
    this.ctx.logger.info({ event: 'material-reloaded', generation: this.generation, files: material.files }, 'certificate or secret files reloaded');
  }

  /** The one atomic swap: config, compiled policy, TLS contexts and pools travel together. */
  private swapState(next: RuntimeState, material: { files: string[]; hash: string }): void {
    const prev = this.state;
    this.state = next;
    this.h1.keepAliveTimeout = next.config.timeouts.clientKeepAliveMs;
    this.h1.headersTimeout = next.config.timeouts.requestHeadersMs;
    next.startPoolSweeper();
    this.generation = next.generation;
    this.loadedAt = new Date();
    this.material = material;
    this.materialWatcher?.track(material.files, material.hash);
    this.metrics.reloadSuccesses.inc();
    this.metrics.lastReloadSuccess.set(Date.now() / 1000);
    void prev.closePools();
  }

  private reloadFailed(problems: readonly ConfigProblem[], hash: string): ReloadResult {
    // Count a bad file once, not on every poll while it stays bad.
    if (hash !== this.lastFailedHash) {
      this.lastFailedHash = hash;
      this.metrics.reloadFailures.inc();
      this.ctx.logger.error({ event: 'config-reload-failed', problems, generation: this.generation }, 'config reload rejected; keeping the last good config');
    }
    return { ok: false, problems, generation: this.generation };
  }

  private warnUnreloadable(a: ProxyConfig, b: ProxyConfig): void {
    // Per-request settings of the HTTP listener apply to the next request; only what binds sockets needs a restart.
    const bound = (l: ProxyConfig['listeners']) => JSON.stringify({ ...l, http: { ...l.http, ambiguousPaths: undefined, connectSni: undefined } });
    if (bound(a.listeners) !== bound(b.listeners) || a.limits.maxHeaderBytes !== b.limits.maxHeaderBytes) {
      this.ctx.logger.warn({ event: 'config-restart-needed' }, 'listener changes take effect after a restart');
    }
  }

  /* ------------------------------------------------------------------ shutdown */

  public async drain(graceMs?: number): Promise<void> {
    if (this.closed) return;
    const grace = graceMs ?? this.state.config.timeouts.shutdownGraceMs;
    this.draining = true;
    this.stopWatching();
    this.ctx.logger.info({ event: 'draining', inflight: this.active, graceMs: grace }, 'draining');
    const closing = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const [socket, conn] of this.conns) if (conn.busy === 0 && conn.protocol !== 'h2') socket.destroySoon();
    for (const s of this.sessions) s.close();
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, grace);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.shutdown(closing);
  }

  public async close(): Promise<void> {
    if (this.closed) return;
    this.draining = true;
    this.stopWatching();
    const closing = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    await this.shutdown(closing);
  }

  private async shutdown(closing: Promise<void>[]): Promise<void> {
    this.closed = true;
    // Stops node:http's connection checker; the server never listened, so close() only reports that.
    this.h1?.close(() => undefined);
    for (const s of this.sessions) s.destroy();
    for (const [socket, conn] of this.conns) {
      clearTimeout(conn.headersTimer);
      socket.destroy();
    }
    this.state.destroyPools();
    await Promise.all(closing);
    if (this.adminServer) {
      this.adminServer.closeAllConnections();
      await new Promise<void>((r) => this.adminServer!.close(() => r()));
    }
    this.ctx.logger.info({ event: 'stopped' }, 'egress proxy stopped');
  }

  private stopWatching(): void {
    this.materialWatcher?.close();
    this.watcher?.close();
    clearInterval(this.pollTimer);
    clearTimeout(this.reloadDebounce);
  }
}

/** A ConfigMap holds at most 1 MiB; anything far beyond that is not a config. */
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

function statKey(file: string): string {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function minPositive(a: number, b: number | undefined): number {
  if (!b) return a;
  if (!a) return b;
  return Math.min(a, b);
}
