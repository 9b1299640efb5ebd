// The proxy's lifecycle: bind listeners (HTTP/1.1 + h2c, TLS passthrough, TCP, admin), run each
// request through classify → decide → forward → observe, reload config atomically, drain.
import { watch, type FSWatcher } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { dirname } from 'node:path';
import { createAdminServer } from './admin';
import type { CallerResolution } from './caller';
import { classifyHttp, requestAuthority, splitHostPort, type ClassifiedRequest, type RequestLike } from './classify';
import { ConfigError, parseConfigSet, readConfigSet, validateConfig, type ConfigProblem, type ConfigSet } from './config';
import { decide, pathRestricted, type Decision } from './decide';
import { denialCode, EgressError, sendError, toEgressError } from './errors';
import { sha256, statKey } from './file-identity';
import { forwardHttp, RequestControl, type ClientRequest, type ClientResponse } from './forward-http';
import { exposedGc, startIdleReclaim, type GcFunction, type IdleReclaimer } from './idle-memory';
import { acceptSocketsPerPort, closeAfterAcceptQueue, dataPlaneServer, listenDataPlane, listenOn, type ShareOptions } from './listeners';
import { createLogger, type Logger } from './log';
import { MaterialWatcher, materialFiles, materialHash } from './material-watch';
import { ProxyMetrics } from './metrics';
import { observeHttp, type HttpOutcome } from './observe';
import { systemResolver, type Resolver } from './resolve';
import { redirectLocation } from './route-match';
import { RuntimeState, defaultDialer, type Dialer, type ProxyContext } from './runtime';
import { handleConnect, handleTcp, handleTlsPassthrough, type TunnelDeps } from './tunnel';
import { handleUpgrade } from './upgrade';
import { planHttp, type UpstreamPlan } from './upstream';
import { CONFIG_FILE_LIMITS } from '../model/bounds';
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
  /** Bind the admin listener. Off in a cluster worker: the supervising process serves admin. @default true */
  readonly adminListener?: boolean;
  /**
   * Bind the data-plane listeners. A cluster worker binds them beside its siblings where
   * SO_REUSEPORT is available (SharedListeners); elsewhere it binds none (false): the supervising
   * process owns them and hands each accepted connection over (acceptConnection), so that its
   * drain can empty the kernel's accept queue before anything is closed. @default true
   */
  readonly dataPlaneListeners?: boolean | SharedListeners;
  /**
   * Give memory back after a burst (idle-memory.ts): once nothing has been admitted for idleMs
   * and nothing is in flight, and resident memory has grown by growthBytes since the last time, one
   * memory-reducing garbage collection. Unset, or idleMs 0: off.
   */
  readonly idleReclaim?: { readonly idleMs: number; readonly growthBytes?: number; readonly gc?: GcFunction };
}

/**
 * What a TCP listener forwards to: the config entry it was bound for. A listener keeps it until a
 * restart (a reload that reorders or removes `listeners.tcp` does not move a bound port to
 * another service); the service itself is looked up in the live config per connection.
 */
export interface TcpListenerEntry {
  readonly externalService: string;
  readonly servicePort: number;
}

/** Data-plane listeners as bound: their ports, and each TCP port's entry. */
export interface BoundListeners {
  readonly http: number;
  readonly tls?: number;
  readonly tcp: ReadonlyArray<TcpListenerEntry & { readonly port: number }>;
}

/** A cluster worker's data-plane listeners, bound beside its siblings' on the same ports (SO_REUSEPORT). */
export interface SharedListeners {
  /** Listening sockets per port in this process. */
  readonly sockets: number;
  /**
   * The listeners the first worker bound, which this one joins, whatever the config says now.
   * Absent for the first worker: it binds the config's, refusing a port something listens on.
   */
  readonly join?: BoundListeners;
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

/** A config compiled but not applied yet: one half of a reload coordinated across workers (cluster.ts). */
export interface PreparedConfig {
  /** Empty when the config compiled (every file it names was usable). */
  readonly problems: readonly ConfigProblem[];
  /** Hash of the files the config reads, as this process read them. */
  readonly materialHash: string;
  /** Swap it in (only when `problems` is empty). */
  commit(): ReloadResult;
}

export interface ProxyHandle {
  /** The bound ports (port 0 in the config means an ephemeral port, reported here). */
  readonly ports: ProxyPorts;
  /** The data-plane listeners as bound, with each TCP port's entry; undefined when it binds none. */
  readonly bound?: BoundListeners;
  readonly metrics: ProxyMetrics;
  /** The live config. */
  config(): ProxyConfig;
  /** Ready: config loaded and not draining. */
  isReady(): boolean;
  /** In-flight requests and tunnels. */
  inflight(): number;
  /** Re-read configPath now. Invalid: keeps the last good config and reports the problems. */
  reload(): Promise<ReloadResult>;
  /** Compile `config` without applying it; see PreparedConfig. */
  prepare(config: ProxyConfig): PreparedConfig;
  /** Count and log a rejected config (once per `key`), keeping the live one. */
  rejectConfig(problems: readonly ConfigProblem[], key: string): ReloadResult;
  /**
   * Graceful stop that never resets a request the proxy has received. Readiness fails at once;
   * for delayMs (default timeouts.drainDelayMs) the listeners keep accepting while Kubernetes
   * removes the endpoint, every HTTP/1.1 response closes its connection and HTTP/2 sessions get
   * GOAWAY. Then the listeners close, and what was accepted keeps being served for graceMs
   * (default timeouts.shutdownGraceMs): requests, pipelined ones, connections whose request has
   * not been read yet, tunnels. A request still without a response then gets 503 DRAINING;
   * everything left is closed, admin last. Resolves when the proxy has stopped.
   */
  drain(graceMs?: number, delayMs?: number): Promise<void>;
  /** Immediate stop: every connection is closed. */
  close(): Promise<void>;
  /**
   * Serve a connection another process accepted (dataPlaneListeners off): `listener` names the
   * listener it came in on, `tcp` the entry that listener was bound for if it is a TCP one.
   */
  acceptConnection(listener: ClientListener, socket: net.Socket, tcp?: TcpListenerEntry): void;
  /**
   * dataPlaneListeners off: the process that accepts for this one has closed its listeners and
   * handed over everything it accepted; a drain then moves on from the drain delay to the grace.
   */
  endHandoffs(): void;
}

export type ClientListener = 'http' | 'tls' | 'tcp';

const H2_PREFACE_START = Buffer.from('PRI ');

/** What the proxy knows about one accepted client connection. */
interface ClientConn {
  readonly listener: ClientListener;
  /** HTTP listener: the protocol the sniff chose; undefined while sniffing (and on other listeners). */
  protocol?: 'h1' | 'h2';
  session?: http2.Http2Session;
  /** Requests and tunnels in flight on it. */
  busy: number;
  /** Requests (tunnels, h2 streams) it has started. */
  requests: number;
  /** Runs from accept until the first request's headers are complete. */
  headersTimer?: NodeJS.Timeout;
  /** A response with `Connection: close` was sent (drain): a request pipelined after it is not served. */
  closeSent?: boolean;
  /** It carries a tunnel (CONNECT, Upgrade, TLS passthrough, TCP) rather than requests. */
  tunnel?: boolean;
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
  public bound?: BoundListeners;
  private readonly ctx: ProxyContext;
  private state!: RuntimeState;
  private generation = 0;
  private loadedAt = new Date();
  private lastHash = '';
  /** SIGTERM seen: readiness fails and every response closes its connection. */
  private draining = false;
  /** The grace period is over: no request is admitted any more. */
  private cutting = false;
  private closed = false;
  /** The running drain, so a second SIGTERM (or drain() call) joins it. */
  private drainPromise?: Promise<void>;
  /** Wakes the drain when it may be done: nothing in flight, no client connection left. */
  private drainWaiter?: () => void;
  /** The controls of in-flight HTTP requests: the grace period's end answers them 503 DRAINING. */
  private readonly inflightRequests = new Set<RequestControl>();
  /** Connections accepted on the data-plane listeners, ever (refused ones included). */
  private acceptedTotal = 0;
  /** dataPlaneListeners off: the supervisor has handed over its last connection (endHandoffs). */
  private handoffsEnded = false;
  private active = 0;
  /** Requests and tunnels admitted, ever (the idle reclaimer's activity count). */
  private admittedTotal = 0;
  private idleReclaimer?: IdleReclaimer;
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
    this.tunnelDeps = { ctx: this.ctx, getState: () => this.state, track: (socket) => this.admitTunnel(socket) };
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
    const reclaim = this.options.idleReclaim;
    if (!reclaim?.idleMs) return;
    const gc = reclaim.gc ?? exposedGc();
    if (!gc) {
      this.ctx.logger.warn({ event: 'idle-reclaim-off', idleMs: reclaim.idleMs },
        'idle memory reclaim is off: node runs without --expose-gc; put it in NODE_OPTIONS (the image and the rendered container do) or set EGRESS_IDLE_RECLAIM_MS=0');
      return;
    }
    this.idleReclaimer = startIdleReclaim({
      ...reclaim,
      gc,
      activity: () => ({ admitted: this.admittedTotal, inflight: this.active }),
      onReclaim: (r) => this.ctx.logger.debug({
        event: 'memory-reclaimed',
        rssMiB: [mib(r.rssBeforeBytes), mib(r.rssAfterBytes)],
        pauseMs: Math.round(r.pauseMs),
      }, 'idle: memory reclaimed'),
    });
  }

  private async bindAll(config: ProxyConfig): Promise<void> {
    const l = config.listeners;
    const bind = l.bindAddress;
    const own = this.options.dataPlaneListeners ?? true;
    if (own !== false) {
      const shared = own === true ? undefined : own;
      const sockets = shared?.sockets ?? acceptSocketsPerPort(l);
      const join = shared?.join;
      const share = { reusePort: shared !== undefined, join: join !== undefined };
      const listen = (make: () => net.Server, port: number) => this.listenDataPlane(make, port, bind, sockets, share);
      const httpPort = await listen(() => dataPlaneServer((s) => this.onHttpConnection(s)), join ? join.http : l.http.port);
      const tlsAt = join ? join.tls : l.tls?.port;
      const tlsPort = tlsAt === undefined ? undefined : await listen(() => dataPlaneServer((s) => this.onTlsConnection(s)), tlsAt);
      const tcp: Array<TcpListenerEntry & { port: number }> = [];
      for (const t of join ? join.tcp : l.tcp) {
        const entry: TcpListenerEntry = { externalService: t.externalService, servicePort: t.servicePort };
        tcp.push({ ...entry, port: await listen(() => dataPlaneServer((s) => this.onTcpConnection(s, entry)), t.port) });
      }
      this.bound = { http: httpPort, tls: tlsPort, tcp };
    }
    this.adminServer = createAdminServer({
      metrics: this.metrics,
      isReady: () => this.isReady(),
      currentConfig: () => this.state?.config,
      configInfo: () => ({ generation: this.generation, loadedAt: this.loadedAt.toISOString(), source: this.options.configPath ?? 'inline' }),
    });
    const adminPort = this.options.adminListener === false ? 0
      : await listenOn(this.adminServer, l.admin.port, bind, (err) => this.ctx.logger.error({ err }, 'listener error'));
    this.ports = { http: this.bound?.http ?? 0, tls: this.bound?.tls, tcp: this.bound?.tcp.map((t) => t.port) ?? [], admin: adminPort };
    if (this.options.configPath && this.options.watch !== false) this.startWatching(this.options.configPath);
    if (this.options.watch ?? this.options.configPath !== undefined) {
      this.materialWatcher = new MaterialWatcher(() => this.reloadMaterial(), this.options.pollIntervalMs ?? 2_000);
      this.materialWatcher.track(this.material.files, this.material.hash);
    }
    if (own !== true) {
      // A worker: the supervisor says 'started' with the ports once every worker serves.
      this.ctx.logger.info({
        event: 'worker-serving', ...(own ? { ports: this.ports, acceptSockets: own.sockets } : {}), gateway: config.gateway, generation: this.generation,
      }, 'egress proxy worker serving');
    } else {
      this.ctx.logger.info({
        event: 'started', ports: this.ports, acceptSockets: acceptSocketsPerPort(config.listeners), gateway: config.gateway, generation: this.generation,
      }, 'egress proxy listening');
    }
  }

  private readInitialConfig(): { config: ProxyConfig; hash: string } {
    if (this.options.configPath) {
      const set = readConfigSet(this.options.configPath);
      return { config: parseConfigSet(set), hash: set.hash };
    }
    if (!this.options.config) throw new ConfigError('options', [{ path: '$', message: 'startProxy needs configPath or config' }]);
    const r = validateConfig(this.options.config);
    if (!r.ok) throw new ConfigError('config', r.problems);
    return { config: r.config, hash: '' };
  }

  private configureHttp(config: ProxyConfig): void {
    const t = config.timeouts;
    this.h1 = http.createServer({
      ServerResponse: drainAwareResponse((res) => this.beforeHead(res)),
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
      // node:http's own headers timer can fire before ours (same duration): count it the same.
      const conn = this.conns.get(socket);
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && conn?.headersTimer) {
        clearTimeout(conn.headersTimer);
        conn.headersTimer = undefined;
        this.metrics.clientHeadersTimeouts.inc();
      }
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
      if (this.draining) this.goAway(session, conn);
    });
    this.h2.on('sessionError', () => undefined);
    // An HTTP/2 client connection silent for idleMs is closed, as an idle upstream exchange is.
    this.h2.setTimeout(t.idleMs);
  }


  private async listenDataPlane(make: () => net.Server, port: number, host: string, sockets: number, share: ShareOptions): Promise<number> {
    const bound = await listenDataPlane(make, port, host, (err) => this.ctx.logger.error({ err }, 'listener error'), sockets, share);
    this.servers.push(...bound.servers);
    return bound.port;
  }

  public acceptConnection(listener: ClientListener, socket: net.Socket, tcp?: TcpListenerEntry): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    // A socket passed between processes arrives without the listener's options.
    socket.allowHalfOpen = true;
    if (listener === 'http') this.onHttpConnection(socket);
    else if (listener === 'tls') this.onTlsConnection(socket);
    else if (tcp) this.onTcpConnection(socket, tcp);
    else socket.destroy();
  }

  public endHandoffs(): void {
    this.handoffsEnded = true;
    this.drainWaiter?.();
  }

  private onTlsConnection(socket: net.Socket): void {
    const conn = this.adopt(socket, 'tls');
    if (!conn) return;
    // The ClientHello is this listener's request head: bounded from accept like one.
    conn.headersTimer = setTimeout(() => this.onHeadersTimeout(socket, conn), this.state.config.timeouts.requestHeadersMs);
    void handleTlsPassthrough(this.tunnelDeps, socket);
  }

  private onTcpConnection(socket: net.Socket, entry: TcpListenerEntry): void {
    if (this.adopt(socket, 'tcp')) void handleTcp(this.tunnelDeps, socket, entry.externalService, entry.servicePort);
  }

  /**
   * Sniff the HTTP/2 preface: gRPC clients speak h2c with prior knowledge, others HTTP/1.1. The
   * request-headers timeout runs from accept, through the sniff, to the first request's headers.
   */
  private onHttpConnection(socket: net.Socket): void {
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

  /**
   * Draining, just before an HTTP/1.1 response head is written: the response that is the last
   * one in flight on its connection says `Connection: close` (node:http then closes after it).
   * One with requests pipelined behind it keeps the connection for them.
   */
  private beforeHead(res: http.ServerResponse): void {
    if (!this.draining || !res.shouldKeepAlive) return;
    // A pipelined response waiting for its turn has no socket yet; the one before it decides.
    const conn = res.socket ? this.conns.get(res.socket) : undefined;
    if (!conn || conn.busy > 1) return;
    res.shouldKeepAlive = false;
    conn.closeSent = true;
  }

  /**
   * GOAWAY for an HTTP/2 session, streams already received still served: at once for a session
   * that has carried a request, after its first stream for a new one (during the drain delay a
   * client that reconnects here is served once, not sent away empty-handed again and again).
   */
  private goAway(session: http2.Http2Session, conn: ClientConn | undefined): void {
    if (session.closed || session.destroyed) return;
    if (!conn || conn.requests > 0) session.close();
    else session.once('stream', () => session.close());
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
  private adopt(socket: net.Socket, listener: ClientListener): ClientConn | undefined {
    this.acceptedTotal++;
    socket.on('error', () => undefined);
    // node:http sets this only on sockets it accepts itself; these come from our own listeners.
    socket.setNoDelay(true);
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
      if (this.draining) this.drainWaiter?.();
      if (this.limitBiting && this.conns.size < this.state.config.limits.maxClientConnections) {
        this.ctx.logger.info({ event: 'connection-limit-cleared', refused: this.limitBiting.refused, open: this.conns.size },
          'client connections below the limit again');
        this.limitBiting = undefined;
      }
    });
    return conn;
  }

  /**
   * Admission for a request or tunnel: undefined when overloaded or when a drain's grace period
   * is over (a drain admits until then: what was received is served). `socket` (HTTP/1.1 and
   * tunnels) is marked busy while it runs.
   */
  private admit(socket?: net.Socket): (() => void) | undefined {
    if (this.cutting || this.closed || this.active >= this.state.config.limits.maxConcurrent) return undefined;
    this.active++;
    this.admittedTotal++;
    this.metrics.inflight.inc();
    const conn = socket ? this.conns.get(socket) : undefined;
    if (conn) conn.busy++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.metrics.inflight.dec();
      if (conn) conn.busy = Math.max(0, conn.busy - 1);
      if (this.draining) this.drainWaiter?.();
    };
  }

  /** A tunnel asks for admission once its target is known (after the ClientHello on the TLS listener). */
  private admitTunnel(socket: net.Socket): (() => void) | undefined {
    const conn = this.conns.get(socket);
    if (conn) {
      conn.tunnel = true;
      clearTimeout(conn.headersTimer);
      conn.headersTimer = undefined;
    }
    return this.admit(socket);
  }

  private onRequest(req: ClientRequest, res: ClientResponse): void {
    const started = performance.now();
    const state = this.state;
    const grpc = typeof req.headers['content-type'] === 'string' && req.headers['content-type'].startsWith('application/grpc');
    const outcome: HttpOutcome = { status: 0, bytesIn: 0, bytesOut: 0, attempts: 0 };
    const parentPort = state.config.listeners.http.parentPort;
    const h1 = req.httpVersionMajor < 2;
    const conn = h1 ? this.conns.get(req.socket as net.Socket) : undefined;
    if (h1) this.requestStarted(conn);
    // Pipelined behind a `Connection: close` response: node:http never writes this response, and
    // the client, told the connection closes, knows the request was not processed.
    const release = conn?.closeSent ? undefined : this.admit(h1 ? req.socket as net.Socket : undefined);
    if (!release) {
      outcome.error = this.draining || this.closed ? 'DRAINING' : 'OVERLOADED';
      outcome.status = sendError(res, outcome.error, grpc, h1 ? { connection: 'close' } : undefined);
      observeHttp(this.ctx, state, { parentPort, grpc, outcome, started, method: req.method });
      return;
    }
    const control = new RequestControl();
    // One listener for both: the admission slot is held until the response closes, and a client
    // that leaves first cancels the exchange (a no-op once serve() is done with the control).
    res.once('close', () => {
      release();
      if (!res.writableFinished) control.abort(new EgressError('CLIENT_CLOSED'));
    });
    void this.serve(state, req, res, grpc, outcome, started, parentPort, control);
  }

  private async serve(
    state: RuntimeState, req: ClientRequest, res: ClientResponse, grpc: boolean, outcome: HttpOutcome, started: number, parentPort: number,
    control: RequestControl,
  ): Promise<void> {
    let classified: ClassifiedRequest | undefined;
    let decision: Decision | undefined;
    let plan: UpstreamPlan | undefined;
    let authority: string | undefined;
    this.inflightRequests.add(control);
    let totalTimer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let who: CallerResolution | undefined;
    try {
      authority = requestAuthority(req);
      who = state.callers.ofRequest(req, req.socket);
      classified = classifyHttp(req as RequestLike, authority, state.suffixes,
        state.config.listeners.http.forwardProxy, parentPort, Math.random(), state.config.listeners.http.ambiguousPaths, who?.caller);
      const target = classified.target;
      if (classified.ambiguity && pathRestricted(state.policy, target)) {
        throw new EgressError('BAD_REQUEST', `ambiguous path (${classified.ambiguity}) where routes restrict paths`);
      }
      decision = decide(state.policy, target);
      if (decision.reason === 'no-backend') throw new EgressError('NO_BACKEND');
      if (decision.action === 'deny') {
        outcome.error = denialCode(decision.reason);
        outcome.status = sendError(res, outcome.error, grpc);
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
          control.abort(new EgressError('TOTAL_TIMEOUT'));
        }, limit);
      }
      await forwardHttp({
        ctx: this.ctx, state, plan, target, rule: decision.rule, req, res, path: classified.path, grpc, control, outcome,
      });
    } catch (err) {
      const cut = control.reason?.code === 'DRAINING';
      const e = timedOut ? new EgressError('TOTAL_TIMEOUT') : cut ? control.reason! : toEgressError(err, 'INTERNAL');
      outcome.error = e.code;
      outcome.errorDetail = e.detail;
      if (!res.headersSent) outcome.status = sendError(res, e.code, grpc);
      else sendError(res, e.code, grpc);
      if (e.code === 'INTERNAL') this.ctx.logger.error({ err }, 'internal error on the request path');
    } finally {
      this.inflightRequests.delete(control);
      clearTimeout(totalTimer);
      observeHttp(this.ctx, state, {
        target: classified?.target, decision, plan, parentPort, grpc, outcome, started, method: req.method, caller: who,
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
    let set: ConfigSet;
    try {
      // The main file and the shard files it lists; their hash covers them all.
      set = readConfigSet(file);
    } catch (err) {
      // Mid-swap the file can be briefly absent; the next event or poll picks it up.
      return this.reloadFailed((err as ConfigError).problems, sha256(''));
    }
    if (set.bytes > MAX_CONFIG_BYTES) {
      return this.reloadFailed([{ path: '$', message: `the config's files hold ${set.bytes} bytes, more than ${MAX_CONFIG_BYTES}` }], set.hash);
    }
    const hash = set.hash;
    if (hash === this.lastHash) return { ok: true, unchanged: true, problems: [], generation: this.generation };
    let next: RuntimeState;
    let material: { files: string[]; hash: string };
    try {
      const config = parseConfigSet(set);
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

  public prepare(config: ProxyConfig): PreparedConfig {
    const material = { files: materialFiles(config), hash: '' };
    material.hash = materialHash(material.files);
    let next: RuntimeState | undefined;
    let problems: readonly ConfigProblem[] = [];
    try {
      next = new RuntimeState(config, this.generation + 1);
    } catch (err) {
      problems = err instanceof ConfigError ? err.problems : [{ path: '$', message: (err as Error).message }];
    }
    return {
      problems,
      materialHash: material.hash,
      commit: () => {
        if (!next || this.closed) return { ok: false, problems, generation: this.generation };
        this.warnUnreloadable(this.state.config, next.config);
        this.swapState(next, material);
        this.ctx.logger.info({ event: 'config-reloaded', generation: this.generation }, 'config reloaded');
        return { ok: true, problems: [], generation: this.generation };
      },
    };
  }

  public rejectConfig(problems: readonly ConfigProblem[], key: string): ReloadResult {
    return this.reloadFailed(problems, key);
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
    if (bound(a.listeners) !== bound(b.listeners) || a.limits.maxHeaderBytes !== b.limits.maxHeaderBytes || a.workers !== b.workers) {
      this.ctx.logger.warn({ event: 'config-restart-needed' }, 'listener changes take effect after a restart');
    }
  }

  /* ------------------------------------------------------------------ shutdown */

  public drain(graceMs?: number, delayMs?: number): Promise<void> {
    if (this.closed) return this.drainPromise ?? Promise.resolve();
    this.drainPromise ??= this.runDrain(graceMs ?? this.state.config.timeouts.shutdownGraceMs, delayMs ?? this.state.config.timeouts.drainDelayMs);
    return this.drainPromise;
  }

  private async runDrain(graceMs: number, delayMs: number): Promise<void> {
    this.draining = true;
    this.stopWatching();
    this.ctx.logger.info({ event: 'draining', inflight: this.active, connections: this.conns.size, delayMs, graceMs }, 'draining');
    const sent = new Set<http2.Http2Session>();
    for (const conn of this.conns.values()) {
      if (conn.session) {
        this.goAway(conn.session, conn);
        sent.add(conn.session);
      }
    }
    for (const s of this.sessions) if (!sent.has(s)) this.goAway(s, undefined);
    // Drain delay: endpoints are still being removed everywhere, so keep accepting and serving.
    if (delayMs > 0) await this.sleepUnlessClosed(delayMs);
    if (this.closed) return;
    const graceEnd = performance.now() + graceMs;
    await this.stopListening(graceEnd);
    this.ctx.logger.info({ event: 'listeners-closed', inflight: this.active, connections: this.conns.size }, 'stopped accepting; serving what was received');
    // Grace: in-flight requests and tunnels finish; connections not yet read send their request and
    // are served (each bounded by its request-headers timer); idle keep-alive connections close
    // on their keep-alive timer, which clients know from the Keep-Alive header, so none is cut
    // while its client sends.
    await this.waitWhile(() => !this.closed && (this.active > 0 || this.conns.size > 0), graceEnd);
    if (this.closed) return;
    if (this.active > 0 || this.conns.size > 0) await this.cut();
    await this.shutdown();
  }

  /**
   * The grace period is over. Tunnels are closed. Every request still without a response is
   * answered 503 DRAINING (its upstream exchange aborted), and so is any request read in the
   * next moments from a connection accepted but not read yet; idle keep-alive connections are
   * ended. Whatever is left after CUT_FLUSH_MS is closed by shutdown().
   */
  private async cut(): Promise<void> {
    this.cutting = true;
    const requests = this.inflightRequests.size;
    let tunnels = 0;
    for (const [socket, conn] of this.conns) {
      if (conn.tunnel && conn.busy > 0) {
        tunnels++;
        socket.destroy();
      } else if (conn.protocol === 'h1' && conn.busy === 0 && conn.requests > 0) {
        socket.end();
      }
    }
    for (const c of this.inflightRequests) c.abort(new EgressError('DRAINING'));
    this.ctx.logger.warn({ event: 'drain-cut', requests, tunnels, connections: this.conns.size },
      'grace period over; answering what is left 503 DRAINING and closing');
    // The answers are written from the requests' own error paths; node:http closes each
    // connection after its `Connection: close` answer.
    await this.waitWhile(() => this.conns.size > 0, performance.now() + CUT_FLUSH_MS);
  }

  /**
   * Close the listeners, but first accept every connection the kernel has already completed:
   * closing a listening socket resets whatever is still queued in it. Node accepts about one
   * connection per listener per event-loop turn, so a busy proxy can have hundreds queued. Turn
   * the loop until two turns in a row accept nothing and (where /proc tells) the kernel's accept
   * queues are empty, bounded by `untilMs` should connections keep arriving.
   */
  private async stopListening(untilMs: number): Promise<void> {
    if (this.options.dataPlaneListeners !== false) {
      await closeAfterAcceptQueue(this.servers, () => this.acceptedTotal, untilMs);
      return;
    }
    // The supervisor accepts for this worker: it says when it has handed over its last connection.
    await this.waitWhile(() => !this.closed && !this.handoffsEnded, untilMs);
  }

  /**
   * Wait while `cond` holds, until `untilMs` (performance.now() time) at the latest; what may end
   * the wait (a request done, a connection closed, the last handoff) wakes it through drainWaiter.
   */
  private async waitWhile(cond: () => boolean, untilMs: number): Promise<void> {
    while (cond()) {
      const left = untilMs - performance.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.drainWaiter = done;
      });
      this.drainWaiter = undefined;
    }
  }

  private sleepUnlessClosed(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.drainWaiter = () => {
        if (this.closed) done();
      };
    }).then(() => {
      this.drainWaiter = undefined;
    });
  }

  public async close(): Promise<void> {
    if (this.closed) return;
    this.draining = true;
    this.stopWatching();
    const waiter = this.drainWaiter;
    await this.shutdown();
    waiter?.();
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.idleReclaimer?.stop();
    this.cutting = true;
    const closing = this.servers.map((s) => new Promise<void>((r) => {
      if (s.listening) s.close(() => r());
      else r();
    }));
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

const mib = (bytes: number) => Math.round(bytes / 1048576);

/**
 * After the grace period, how long the 503 DRAINING answers get to be written before every socket
 * is closed; well inside the 10 s EgressGateway adds to terminationGracePeriodSeconds.
 */
const CUT_FLUSH_MS = 2_000;

/**
 * node:http's ServerResponse with a hook just before the head is written (every head goes
 * through writeHead, implicit ones included), where a drain decides on `Connection: close`.
 */
function drainAwareResponse(beforeHead: (res: http.ServerResponse) => void): typeof http.ServerResponse {
  class DrainAwareResponse extends http.ServerResponse {
    // Named parameters rather than a rest array: no array per response.
    public override writeHead(statusCode: number, reason?: unknown, headers?: unknown): this {
      beforeHead(this);
      return (http.ServerResponse.prototype.writeHead as (...a: unknown[]) => this).call(this, statusCode, reason, headers);
    }
  }
  return DrainAwareResponse as unknown as typeof http.ServerResponse;
}

/** A ConfigMap holds at most 1 MiB; anything far beyond that is not a config. */
const MAX_CONFIG_BYTES = CONFIG_FILE_LIMITS.maxTotalBytes;


function minPositive(a: number, b: number | undefined): number {
  if (!b) return a;
  if (!a) return b;
  return Math.min(a, b);
}
