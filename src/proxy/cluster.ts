// Multi-process mode (config `workers` above 1): a supervising process forks the workers
// (node:cluster), serves the admin listener with one /metrics summed across workers, runs each
// reload as a prepare/commit round so that every worker applies a config or none does, and on
// SIGTERM drains every worker before it exits.
//
// The data-plane ports, two ways:
// - where SO_REUSEPORT is available (Linux, Node 22.12+; the image), every worker binds each port
//   itself, the first one the config's ports (refusing one in use), the others and every
//   replacement the ports it got. The kernel spreads new connections over all the workers'
//   sockets; each worker accepts, and drains, as the single process does.
// - elsewhere the supervisor owns the listeners and hands each accepted connection to the next
//   worker over the IPC channel. That channel carries one socket at a time until the worker
//   acknowledges it, so a burst of new connections waits a worker's event-loop turn per
//   connection; owning the listeners lets a drain empty the kernel's accept queue before
//   closing them (with node:cluster's own round robin, connections still queued in the
//   supervisor were reset when the last worker closed).
import cluster, { type Worker } from 'node:cluster';
import { watch, type FSWatcher } from 'node:fs';
import type * as http from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';
import { dirname } from 'node:path';
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { createAdminServer } from './admin';
import { ConfigError, parseConfigSet, readConfigSet, type ConfigProblem, type ConfigSet } from './config';
import { sha256, statKey } from './file-identity';
import { acceptSocketsPerPort, closeAfterAcceptQueue, dataPlaneServer, listenDataPlane, reusePortSupported } from './listeners';
import type { Logger } from './log';
import { MaterialWatcher, materialFiles, materialHash } from './material-watch';
import {
  startProxy, type BoundListeners, type ClientListener, type PreparedConfig, type ProxyHandle, type ProxyPorts, type SharedListeners,
  type TcpListenerEntry,
} from './server';
import type { ProxyConfig } from '../model/proxy-config';

/** A worker that does not answer a reload or scrape step in this long is stuck: it is replaced. */
const WORKER_ANSWER_MS = 10_000;
/** A scrape that cannot reach every worker fails (a partial sum would look like a counter reset). */
const SCRAPE_TIMEOUT_MS = 5_000;
/** After the workers' own drain deadline, how long the supervisor waits before killing them. */
const SHUTDOWN_MARGIN_MS = 5_000;
/** Accepted connections held while no worker is ready (one is being replaced); beyond it they are closed. */
const MAX_HELD_CONNECTIONS = 4_096;
/** More crashes than this within RESTART_WINDOW_MS: the pod is broken; exit and let the kubelet restart it. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** A ConfigMap update is several renames; let them settle before reading. */
const RELOAD_DEBOUNCE_MS = 50;
const POLL_INTERVAL_MS = 2_000;

/**
 * Metrics every worker reports alike (each applies the same reloads and is ready or not): the
 * pod's value is one worker's, not their sum. Everything else is summed, histograms bucket by
 * bucket; prom-client's default process metrics carry aggregators of their own.
 */
const POD_LEVEL_AGGREGATORS: Readonly<Record<string, 'max' | 'min'>> = {
  egress_config_reload_successes_total: 'max',
  egress_config_reload_failures_total: 'max',
  egress_config_last_reload_success_timestamp_seconds: 'max',
  egress_ready: 'min',
};

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** Messages between the supervisor and its workers, tagged apart from prom-client's own. */
type ToWorker =
  /** `listen`: bind the data-plane ports beside the other workers; absent: the supervisor hands connections over. */
  | { egress: 'start'; text: string; workers: number; listen?: SharedListeners }
  | { egress: 'prepare'; round: number; text: string }
  | { egress: 'commit'; round: number }
  | { egress: 'abort'; round: number; problems: readonly ConfigProblem[]; key: string }
  | { egress: 'metrics'; id: number }
  | { egress: 'drain' }
  /** Sent with an accepted socket as the message's handle. */
  | { egress: 'conn'; listener: ClientListener; tcp?: TcpListenerEntry }
  /** The listeners are closed and every accepted connection was handed over. */
  | { egress: 'handoffs-ended' };

type FromWorker =
  | { egress: 'hello' }
  /** `bound`: the listeners it bound itself (SO_REUSEPORT), if any. */
  | { egress: 'ready'; ports: ProxyPorts; bound?: BoundListeners }
  | { egress: 'failed'; problems: readonly ConfigProblem[]; message: string }
  | { egress: 'prepared'; round: number; problems: readonly ConfigProblem[]; materialHash: string }
  | { egress: 'committed'; round: number; generation: number }
  | { egress: 'metrics'; id: number; metrics?: MetricsJson; error?: string };

/**
 * A worker's share of per-pod limits: connections are spread over the workers (by the kernel's
 * hash, or round robin by the supervisor), so each enforces its part of `maxConcurrent` and
 * `maxClientConnections` (rounded up).
 */
export function workerShare(config: ProxyConfig, workers: number): ProxyConfig {
  if (workers <= 1) return config;
  const share = (n: number) => Math.max(1, Math.ceil(n / workers));
  return {
    ...config,
    limits: { ...config.limits, maxConcurrent: share(config.limits.maxConcurrent), maxClientConnections: share(config.limits.maxClientConnections) },
  };
}

function problemsOf(err: unknown): readonly ConfigProblem[] {
  return err instanceof ConfigError ? err.problems : [{ path: '$', message: (err as Error).message }];
}

/**
 * The multi-process entry: in a worker, run it; in the first process, read the config and
 * supervise when it asks for more than one worker. Undefined: run as one process (also when
 * the file is unreadable or invalid, so that the single-process path reports it as always).
 */
export function runMultiProcess(file: string, logger: Logger, idleReclaimMs = 0): Promise<number> | undefined {
  if (cluster.isWorker) return runWorker(logger.child({ worker: cluster.worker!.id }), idleReclaimMs);
  let text: string;
  let config: ProxyConfig;
  try {
    const set = readConfigSet(file);
    config = parseConfigSet(set);
    text = wireConfigSet(set);
  } catch {
    return undefined;
  }
  if (config.workers <= 1) return undefined;
  return runSupervisor({ file, text, config, logger });
}

/* ------------------------------------------------------------------------ worker */

/**
 * A worker: take the config from the supervisor, serve it on the data-plane ports, its own
 * sockets beside its siblings' or connections the supervisor hands over (no admin listener, no
 * file watching), answer reload and scrape requests, drain when told (or signalled). Resolves
 * with the exit code.
 */
export async function runWorker(logger: Logger, idleReclaimMs = 0): Promise<number> {
  const send = (m: FromWorker) => {
    if (process.connected) process.send!(m);
  };
  const start = await new Promise<Extract<ToWorker, { egress: 'start' }>>((resolve) => {
    const onMessage = (m: ToWorker) => {
      if (m?.egress !== 'start') return;
      process.off('message', onMessage);
      resolve(m);
    };
    process.on('message', onMessage);
    send({ egress: 'hello' });
  });
  let proxy: ProxyHandle;
  try {
    const config = workerShare(parseConfigSet(unwireConfigSet(start.text)), start.workers);
    proxy = await startProxy({
      config,
      watch: false,
      adminListener: false,
      dataPlaneListeners: start.listen ?? false,
      logger,
      processMetrics: true,
      idleReclaim: { idleMs: idleReclaimMs },
    });
  } catch (err) {
    send({ egress: 'failed', problems: err instanceof ConfigError ? err.problems : [], message: (err as Error).message });
    return 1;
  }
  send({ egress: 'ready', ports: proxy.ports, bound: proxy.bound });

  let pending: { round: number; prepared: PreparedConfig } | undefined;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      proxy.drain().then(() => resolve(0), (err) => {
        logger.error({ err }, 'drain failed');
        resolve(1);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('message', (m: ToWorker, handle?: unknown) => {
      switch (m?.egress) {
        case 'conn':
          if (handle) proxy.acceptConnection(m.listener, handle as Socket, m.tcp);
          return;
        case 'handoffs-ended':
          proxy.endHandoffs();
          return;
        case 'prepare': {
          pending = undefined;
          let config: ProxyConfig;
          try {
            config = workerShare(parseConfigSet(unwireConfigSet(m.text)), start.workers);
          } catch (err) {
            send({ egress: 'prepared', round: m.round, problems: problemsOf(err), materialHash: '' });
            return;
          }
          const prepared = proxy.prepare(config);
          if (prepared.problems.length === 0) pending = { round: m.round, prepared };
          send({ egress: 'prepared', round: m.round, problems: prepared.problems, materialHash: prepared.materialHash });
          return;
        }
        case 'commit': {
          if (pending?.round !== m.round) return;
          const result = pending.prepared.commit();
          pending = undefined;
          send({ egress: 'committed', round: m.round, generation: result.generation });
          return;
        }
        case 'abort':
          pending = undefined;
          if (m.problems.length > 0) proxy.rejectConfig(m.problems, m.key);
          return;
        case 'metrics':
          proxy.metrics.registry.getMetricsAsJSON().then(
            (metrics) => send({ egress: 'metrics', id: m.id, metrics: metrics as MetricsJson }),
            (err) => send({ egress: 'metrics', id: m.id, error: (err as Error).message }),
          );
          return;
        case 'drain':
          stop();
          return;
        default:
      }
    });
  });
}

/* -------------------------------------------------------------------- supervisor */

interface WorkerState {
  readonly proc: Worker;
  /** Got its config ('start' sent). */
  started: boolean;
  /** Serving. */
  ready: boolean;
  ports?: ProxyPorts;
}

interface Round {
  readonly id: number;
  readonly text: string;
  readonly config: ProxyConfig;
  readonly key: string;
  readonly material: { files: string[]; hash: string };
  phase: 'prepare' | 'commit';
  /** Workers still to answer this phase. */
  readonly waiting: Set<number>;
  readonly problems: ConfigProblem[];
  readonly materialHashes: Set<string>;
  timer?: NodeJS.Timeout;
}

export interface SupervisorOptions {
  readonly file: string;
  /** The config files as read (main file and shards, see wireConfigSet), validated by the caller. */
  readonly text: string;
  readonly config: ProxyConfig;
  readonly logger: Logger;
  /** Watch the config file and the files it names. @default true */
  readonly watch?: boolean;
  readonly pollIntervalMs?: number;
}

/** Runs the supervisor until SIGTERM or SIGINT has drained every worker; resolves with the exit code. */
export async function runSupervisor(options: SupervisorOptions): Promise<number> {
  const s = new Supervisor(options);
  // A signal during startup is held until every worker serves, then drains them.
  let started = false;
  let pending: string | undefined;
  const onSignal = (signal: string) => {
    if (started) s.drain(signal);
    else pending ??= signal;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  const code = await s.start();
  if (code !== undefined) return code;
  started = true;
  if (pending) s.drain(pending);
  return s.done;
}

class Supervisor {
  public readonly done: Promise<number>;
  private finish!: (code: number) => void;
  private readonly logger: Logger;
  private readonly registry = new Registry();
  private readonly restarts: Counter<string>;
  private readonly workers = new Map<number, WorkerState>();
  private readonly count: number;
  private config: ProxyConfig;
  private text: string;
  private committedKey: string;
  private lastFailedKey = '';
  private generation = 1;
  private loadedAt = new Date();
  private material: { files: string[]; hash: string };
  private admin?: http.Server;
  /** Each worker binds the data-plane ports itself (SO_REUSEPORT), with this many sockets per port. */
  private readonly sharedSockets?: number;
  /** The listeners the first worker bound: the others, and every replacement, join them. */
  private sharedJoin?: BoundListeners;
  /** The supervisor's data-plane listeners (without SO_REUSEPORT); their connections go to the workers in turn. */
  private readonly servers: Server[] = [];
  private ports: ProxyPorts = { http: 0, tcp: [], admin: 0 };
  /** Connections accepted on the data-plane listeners, ever. */
  private acceptedTotal = 0;
  private nextWorker = 0;
  /** Accepted while no worker was ready to take them. */
  private held: Array<{ listener: ClientListener; tcp?: TcpListenerEntry; socket: Socket }> = [];
  private started = false;
  private draining = false;
  private exitCode = 0;
  private round?: Round;
  private roundId = 0;
  private recheck = false;
  private readonly restartTimes: number[] = [];
  private scrapeId = 0;
  /** Each worker's counters and histograms as last scraped: what it had served so far. */
  private readonly lastScraped = new Map<number, MetricsJson>();
  /** Counters and histograms of workers that exited unexpectedly, summed, as last scraped. */
  private retired: MetricsJson = [];
  private readonly scrapes = new Map<number, { waiting: Set<number>; results: MetricsJson[]; done: (err?: Error) => void }>();
  private watcher?: FSWatcher;
  private pollTimer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private materialWatcher?: MaterialWatcher;
  private lastStatKey = '';
  /** Set while the first workers start. */
  private onStartupReady?: () => void;
  private onStartupFailure?: (message: string) => void;

  constructor(private readonly options: SupervisorOptions) {
    this.done = new Promise((r) => (this.finish = r));
    this.logger = options.logger.child({ worker: 0 });
    this.config = options.config;
    this.text = options.text;
    this.count = options.config.workers;
    // The port's sockets shared out: each worker accepts on its part of them.
    if (reusePortSupported()) this.sharedSockets = Math.max(1, Math.ceil(acceptSocketsPerPort(this.config.listeners) / this.count));
    this.material = { files: materialFiles(this.config), hash: '' };
    this.material.hash = materialHash(this.material.files);
    this.committedKey = `${sha256(this.text)}:${this.material.hash}`;
    const registers = [this.registry];
    this.restarts = new Counter({ name: 'egress_worker_restarts_total', help: 'Worker processes that exited unexpectedly and were replaced', registers });
    const workers = this.workers;
    new Gauge({
      name: 'egress_workers_ready',
      help: 'Worker processes serving the listeners (configured: egress_workers)',
      registers,
      collect() {
        this.set([...workers.values()].filter((w) => w.ready).length);
      },
    });
    new Gauge({ name: 'egress_workers', help: 'Worker processes configured', registers }).set(this.count);
    collectDefaultMetrics({ register: this.registry });
  }

  /** Binds admin and starts every worker. Resolves undefined when all serve, else with an exit code. */
  public async start(): Promise<number | undefined> {
    const l = this.config.listeners;
    this.admin = createAdminServer({
      metrics: { registry: { metrics: () => this.scrape(), contentType: this.registry.contentType } },
      isReady: () => this.isReady(),
      currentConfig: () => this.config,
      configInfo: () => ({ generation: this.generation, loadedAt: this.loadedAt.toISOString(), source: this.options.file }),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        this.admin!.once('error', reject);
        this.admin!.listen({ port: l.admin.port, host: l.bindAddress }, () => {
          this.admin!.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.logger.fatal({ err }, 'cannot start: admin listener');
      return 1;
    }
    cluster.setupPrimary({ silent: false });
    const outcome = new Promise<number | undefined>((resolve) => {
      const onReady = () => {
        if ([...this.workers.values()].filter((w) => w.ready).length === this.count) resolve(undefined);
      };
      this.onStartupReady = onReady;
      this.onStartupFailure = (message) => {
        this.logger.fatal({ event: 'worker-start-failed', message }, 'a worker could not start; stopping');
        resolve(1);
      };
    });
    for (let i = 0; i < this.count; i++) this.fork();
    const code = await outcome;
    this.onStartupReady = undefined;
    this.onStartupFailure = undefined;
    if (code !== undefined) {
      this.draining = true;
      for (const w of this.workers.values()) w.proc.process.kill('SIGKILL');
      await this.closeAdmin();
      return code;
    }
    try {
      const join = this.sharedJoin;
      if (join) this.ports = { http: join.http, tls: join.tls, tcp: join.tcp.map((t) => t.port), admin: (this.admin!.address() as AddressInfo).port };
      else await this.bindDataPlane();
    } catch (err) {
      this.logger.fatal({ err }, 'cannot start: data-plane listener');
      this.draining = true;
      for (const s of this.servers) s.close();
      for (const w of this.workers.values()) w.proc.process.kill('SIGKILL');
      await this.closeAdmin();
      return 1;
    }
    this.started = true;
    this.logger.info({
      event: 'started',
      workers: this.count,
      generation: this.generation,
      gateway: this.config.gateway,
      ports: this.ports,
      // Per port, all processes together.
      acceptSockets: this.sharedSockets !== undefined ? this.sharedSockets * this.count : acceptSocketsPerPort(this.config.listeners),
      accept: this.sharedSockets !== undefined ? 'workers' : 'supervisor',
    }, 'egress proxy listening');
    if (this.options.watch !== false) this.startWatching();
    return undefined;
  }

  /** Bind the data-plane listeners once every worker serves; accepted sockets are not read here. */
  private async bindDataPlane(): Promise<void> {
    const l = this.config.listeners;
    const sockets = acceptSocketsPerPort(l);
    const listen = async (listener: ClientListener, port: number, tcp?: TcpListenerEntry) => {
      const bound = await listenDataPlane(() => dataPlaneServer((socket) => this.handOff(listener, tcp, socket), true),
        port, l.bindAddress, (err) => this.logger.error({ err }, 'listener error'), sockets);
      this.servers.push(...bound.servers);
      return bound.port;
    };
    const http = await listen('http', l.http.port);
    const tls = l.tls ? await listen('tls', l.tls.port) : undefined;
    const tcp: number[] = [];
    // Each TCP port keeps the entry it was bound for until a restart, whatever a reload says.
    for (const t of l.tcp) tcp.push(await listen('tcp', t.port, { externalService: t.externalService, servicePort: t.servicePort }));
    this.ports = { http, tls, tcp, admin: (this.admin!.address() as AddressInfo).port };
  }

  /**
   * Give an accepted connection to the next worker that serves (round robin: an even spread,
   * where a shared accept lets the kernel wake the same, busiest, process). With none ready (one
   * is being replaced) it is held until one is.
   */
  private handOff(listener: ClientListener, tcp: TcpListenerEntry | undefined, socket: Socket, attempts = 0): void {
    if (attempts === 0) {
      this.acceptedTotal++;
      socket.on('error', () => undefined);
    }
    const ready = [...this.workers.values()].filter((w) => w.ready && w.proc.isConnected());
    if (ready.length === 0 || attempts > ready.length) {
      if (this.held.length < MAX_HELD_CONNECTIONS && ready.length === 0) this.held.push({ listener, tcp, socket });
      else socket.destroy();
      return;
    }
    const w = ready[this.nextWorker++ % ready.length];
    const message: ToWorker = tcp ? { egress: 'conn', listener, tcp } : { egress: 'conn', listener };
    w.proc.send(message, socket, (err: Error | null) => {
      // The worker went away between the pick and the send: another one takes it.
      if (err && !socket.destroyed) this.handOff(listener, tcp, socket, attempts + 1);
    });
  }

  private releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) if (!h.socket.destroyed) this.handOff(h.listener, h.tcp, h.socket, 1);
  }

  /**
   * The drain's accepting end: keep handing connections over through the drain delay, then empty
   * the kernel's accept queues, close the listeners, and tell every worker that nothing more comes
   * (the IPC channel keeps order, so each has had its last connection before it hears that).
   */
  private async stopAccepting(): Promise<void> {
    const t = this.config.timeouts;
    if (t.drainDelayMs > 0) await new Promise((r) => setTimeout(r, t.drainDelayMs));
    await closeAfterAcceptQueue(this.servers, () => this.acceptedTotal, performance.now() + t.shutdownGraceMs);
    this.logger.info({ event: 'listeners-closed', accepted: this.acceptedTotal }, 'stopped accepting; the workers serve what was received');
    for (const h of this.held) h.socket.destroy();
    this.held = [];
    for (const w of this.workers.values()) this.send(w, { egress: 'handoffs-ended' });
  }

  public isReady(): boolean {
    if (!this.started || this.draining || this.workers.size === 0) return false;
    for (const w of this.workers.values()) if (!w.ready) return false;
    return true;
  }

  private fork(): void {
    const proc = cluster.fork();
    const state: WorkerState = { proc, started: false, ready: false };
    this.workers.set(proc.id, state);
    proc.on('message', (m: FromWorker) => this.onMessage(state, m));
    proc.on('exit', (code, signal) => this.onExit(state, code, signal));
  }

  private send(w: WorkerState, m: ToWorker): void {
    if (w.proc.isConnected()) w.proc.send(m);
  }

  private onMessage(w: WorkerState, m: FromWorker): void {
    switch (m?.egress) {
      case 'hello':
        // A worker starting while a round runs would miss it: it gets the outcome instead.
        if (this.round) this.recheck = true;
        else this.startWorker(w);
        return;
      case 'ready':
        w.ready = true;
        w.ports = m.ports;
        if (m.bound && !this.sharedJoin) {
          // The first worker has bound the listeners: the others join them.
          this.sharedJoin = m.bound;
          if (!this.round) for (const o of this.workers.values()) if (!o.started) this.startWorker(o);
        }
        this.onStartupReady?.();
        if (this.held.length > 0) this.releaseHeld();
        if (this.recheck) this.scheduleCheck();
        return;
      case 'failed':
        this.logger.error({ event: 'worker-failed', worker: w.proc.id, problems: m.problems, message: m.message }, 'worker could not start');
        if (m.problems.length > 0 && !this.started) {
          process.stderr.write(`${this.options.file}: ${m.problems.length} problem(s):\n${m.problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}\n`);
        }
        return;
      case 'prepared':
      case 'committed':
        this.onRoundAnswer(w, m);
        return;
      case 'metrics': {
        const scrape = this.scrapes.get(m.id);
        if (!scrape || !scrape.waiting.delete(w.proc.id)) return;
        if (m.error || !m.metrics) {
          scrape.done(new Error(m.error ?? 'no metrics'));
          return;
        }
        scrape.results.push(m.metrics);
        this.lastScraped.set(w.proc.id, m.metrics.filter((x) => (String(x.type) === 'counter' || String(x.type) === 'histogram') && !POD_LEVEL_AGGREGATORS[x.name]));
        if (scrape.waiting.size === 0) scrape.done();
        return;
      }
      default:
    }
  }

  private startWorker(w: WorkerState): void {
    const shared = this.sharedSockets;
    // Until the first worker has bound the ports (port 0: which ones), the others wait.
    if (shared !== undefined && !this.sharedJoin && [...this.workers.values()].some((o) => o !== w && o.started)) return;
    w.started = true;
    const listen: SharedListeners | undefined = shared === undefined ? undefined : { sockets: shared, join: this.sharedJoin };
    this.send(w, { egress: 'start', text: this.text, workers: this.count, ...(listen ? { listen } : {}) });
  }

  private onExit(w: WorkerState, code: number | null, signal: string | null): void {
    this.workers.delete(w.proc.id);
    this.retire(w.proc.id);
    for (const scrape of this.scrapes.values()) if (scrape.waiting.delete(w.proc.id) && scrape.waiting.size === 0) scrape.done();
    if (this.round?.waiting.delete(w.proc.id)) this.advanceRound();
    if (this.draining) {
      if (code !== 0) this.exitCode = 1;
      this.logger.info({ event: 'worker-stopped', worker: w.proc.id, code, signal, remaining: this.workers.size }, 'worker stopped');
      if (this.workers.size === 0) void this.stopped();
      return;
    }
    if (!this.started) {
      this.onStartupFailure?.(`worker ${w.proc.id} exited with ${signal ?? code} before serving`);
      return;
    }
    this.restarts.inc();
    const now = Date.now();
    this.restartTimes.push(now);
    while (this.restartTimes.length && this.restartTimes[0] < now - RESTART_WINDOW_MS) this.restartTimes.shift();
    if (this.restartTimes.length > MAX_RESTARTS) {
      this.logger.fatal({ event: 'worker-crash-loop', restarts: this.restartTimes.length, windowMs: RESTART_WINDOW_MS }, 'workers keep exiting; stopping');
      this.exitCode = 1;
      this.drain('crash-loop');
      return;
    }
    const delay = Math.min(5_000, 100 * 2 ** (this.restartTimes.length - 1));
    this.logger.error({ event: 'worker-exited', worker: w.proc.id, code, signal, restartInMs: delay }, 'worker exited unexpectedly; replacing it');
    setTimeout(() => {
      if (!this.draining) this.fork();
    }, delay);
  }

  /* ---------------------------------------------------------------- metrics */

  /** Every worker's registry and the supervisor's own, summed into one exposition. */
  private async scrape(): Promise<string> {
    const id = ++this.scrapeId;
    const waiting = new Set([...this.workers.values()].filter((w) => w.ready && w.proc.isConnected()).map((w) => w.proc.id));
    const results: MetricsJson[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`workers ${[...waiting].join(', ')} did not answer the scrape`)), SCRAPE_TIMEOUT_MS);
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.scrapes.delete(id);
        if (err) reject(err);
        else resolve();
      };
      this.scrapes.set(id, { waiting, results, done });
      for (const wid of waiting) this.send(this.workers.get(wid)!, { egress: 'metrics', id });
      if (waiting.size === 0) done();
    });
    results.push(await this.registry.getMetricsAsJSON() as MetricsJson);
    if (this.retired.length > 0) results.push(this.retired);
    for (const metrics of results) {
      for (const m of metrics) {
        const agg = POD_LEVEL_AGGREGATORS[m.name];
        if (agg) (m as { aggregator: string }).aggregator = agg;
      }
    }
    return AggregatorRegistry.aggregate(results).metrics();
  }

  /**
   * A worker is gone: keep the counts it had reported, so that the pod's sums never go down
   * (Prometheus would read a drop as a reset and count everything again). What it served after
   * its last scrape is lost.
   */
  private retire(id: number): void {
    const last = this.lastScraped.get(id);
    this.lastScraped.delete(id);
    if (!last || this.draining) return;
    const merged = AggregatorRegistry.aggregate(this.retired.length > 0 ? [this.retired, last] : [last]);
    void merged.getMetricsAsJSON().then((json) => {
      this.retired = json as MetricsJson;
    });
  }

  /* ----------------------------------------------------------------- reload */

  private startWatching(): void {
    const file = this.options.file;
    const interval = this.options.pollIntervalMs ?? POLL_INTERVAL_MS;
    this.lastStatKey = statKey(file);
    try {
      // The directory, not the file: kubelet swaps the `..data` symlink, the file's inode never changes.
      this.watcher = watch(dirname(file), { persistent: false }, () => this.scheduleCheck());
      this.watcher.on('error', () => undefined);
    } catch (err) {
      this.logger.warn({ err }, 'cannot watch config directory; relying on polling');
    }
    this.pollTimer = setInterval(() => {
      const key = statKey(file);
      if (key === this.lastStatKey) return;
      this.lastStatKey = key;
      this.check();
    }, interval);
    this.pollTimer.unref();
    this.materialWatcher = new MaterialWatcher(() => this.check(), interval);
    this.materialWatcher.track(this.material.files, this.material.hash);
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.materialWatcher?.close();
    clearInterval(this.pollTimer);
    clearTimeout(this.debounce);
  }

  private scheduleCheck(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.check(), RELOAD_DEBOUNCE_MS);
  }

  /** Read the file and the files it names; when either changed, run a round. */
  private check(): void {
    if (this.draining) return;
    if (this.round || [...this.workers.values()].some((w) => !w.ready)) {
      this.recheck = true;
      return;
    }
    this.recheck = false;
    let set: ConfigSet;
    try {
      set = readConfigSet(this.options.file);
    } catch (err) {
      // Mid-swap the file can be briefly absent; the next event or poll picks it up.
      this.rejectAll(problemsOf(err), sha256(''));
      return;
    }
    const text = wireConfigSet(set);
    const hash = sha256(text);
    let config: ProxyConfig;
    try {
      config = parseConfigSet(set);
    } catch (err) {
      this.rejectAll(problemsOf(err), hash);
      return;
    }
    const material = { files: materialFiles(config), hash: '' };
    material.hash = materialHash(material.files);
    const key = `${hash}:${material.hash}`;
    if (key === this.committedKey || key === this.lastFailedKey) return;
    const round: Round = {
      id: ++this.roundId,
      text,
      config,
      key,
      material,
      phase: 'prepare',
      waiting: new Set(this.workers.keys()),
      problems: [],
      materialHashes: new Set(),
    };
    this.round = round;
    this.armRound(round);
    for (const w of this.workers.values()) this.send(w, { egress: 'prepare', round: round.id, text });
  }

  private armRound(round: Round): void {
    clearTimeout(round.timer);
    round.timer = setTimeout(() => {
      // Its event loop has been blocked for seconds: replace it (it restarts on the committed config).
      for (const wid of round.waiting) {
        this.logger.error({ event: 'worker-stuck', worker: wid, phase: round.phase }, 'worker did not answer a reload; replacing it');
        this.workers.get(wid)?.proc.process.kill('SIGKILL');
      }
    }, WORKER_ANSWER_MS);
  }

  private onRoundAnswer(w: WorkerState, m: Extract<FromWorker, { egress: 'prepared' | 'committed' }>): void {
    const round = this.round;
    if (!round || round.id !== m.round || !round.waiting.delete(w.proc.id)) return;
    if (m.egress === 'prepared') {
      for (const p of m.problems) {
        if (!round.problems.some((q) => q.path === p.path && q.message === p.message)) round.problems.push(p);
      }
      if (m.problems.length === 0) round.materialHashes.add(m.materialHash);
    }
    this.advanceRound();
  }

  private advanceRound(): void {
    const round = this.round;
    if (!round || round.waiting.size > 0) return;
    if (round.phase === 'prepare') {
      const agreed = round.materialHashes.size <= 1 && [...round.materialHashes].every((h) => h === round.material.hash);
      if (round.problems.length > 0) {
        this.endRound(round);
        this.rejectAll(round.problems, round.key);
        return;
      }
      if (!agreed || this.workers.size === 0) {
        // A file changed while the workers read it: they compiled different contents. Try again.
        for (const w of this.workers.values()) this.send(w, { egress: 'abort', round: round.id, problems: [], key: '' });
        this.endRound(round);
        this.scheduleCheck();
        return;
      }
      round.phase = 'commit';
      for (const wid of this.workers.keys()) round.waiting.add(wid);
      this.armRound(round);
      for (const w of this.workers.values()) this.send(w, { egress: 'commit', round: round.id });
      return;
    }
    this.config = round.config;
    this.text = round.text;
    this.committedKey = round.key;
    this.material = round.material;
    this.generation++;
    this.loadedAt = new Date();
    this.materialWatcher?.track(round.material.files, round.material.hash);
    if (round.config.workers !== this.count) {
      this.logger.warn({ event: 'config-restart-needed', workers: this.count, configured: round.config.workers }, 'a new worker count takes effect after a restart');
    }
    this.logger.info({ event: 'config-reloaded', generation: this.generation, workers: this.workers.size }, 'config reloaded by every worker');
    this.endRound(round);
  }

  private endRound(round: Round): void {
    clearTimeout(round.timer);
    this.round = undefined;
    // Workers that said hello during the round start on its outcome.
    for (const w of this.workers.values()) if (!w.started) this.startWorker(w);
    if (this.recheck) this.scheduleCheck();
  }

  /** Every worker counts and logs the rejection, and keeps its config. */
  private rejectAll(problems: readonly ConfigProblem[], hash: string): void {
    const key = hash.includes(':') ? hash : `${hash}:`;
    for (const w of this.workers.values()) this.send(w, { egress: 'abort', round: 0, problems, key });
    if (key === this.lastFailedKey) return;
    this.lastFailedKey = key;
    this.logger.error({ event: 'config-reload-failed', problems, generation: this.generation }, 'config reload rejected by the workers; every worker keeps the last good config');
  }

  /* ---------------------------------------------------------------- shutdown */

  /** Not ready at once; every worker drains within its grace; exit when all are gone. */
  public drain(reason: string): void {
    if (this.draining) return;
    this.draining = true;
    this.stopWatching();
    const t = this.config.timeouts;
    const deadline = t.drainDelayMs + t.shutdownGraceMs + SHUTDOWN_MARGIN_MS;
    this.logger.info({ event: 'draining', reason, workers: this.workers.size, graceMs: t.shutdownGraceMs }, 'draining every worker');
    // A signal, not only a message: the IPC channel may still be carrying accepted connections,
    // and a response sent meanwhile should already say `Connection: close`.
    for (const w of this.workers.values()) {
      w.proc.process.kill('SIGTERM');
      this.send(w, { egress: 'drain' });
    }
    // Workers with listeners of their own close them in their drain, as the single process does.
    if (this.sharedSockets === undefined) void this.stopAccepting();
    if (this.workers.size === 0) {
      void this.stopped();
      return;
    }
    setTimeout(() => {
      for (const w of this.workers.values()) {
        this.logger.error({ event: 'worker-killed', worker: w.proc.id }, 'worker still running after the grace period; killing it');
        this.exitCode = 1;
        w.proc.process.kill('SIGKILL');
      }
    }, deadline).unref();
  }

  private async stopped(): Promise<void> {
    for (const s of this.servers) if (s.listening) s.close();
    await this.closeAdmin();
    this.logger.info({ event: 'stopped', code: this.exitCode }, 'egress proxy stopped');
    this.finish(this.exitCode);
  }

  private async closeAdmin(): Promise<void> {
    if (!this.admin?.listening) return;
    this.admin.closeAllConnections();
    await new Promise<void>((r) => this.admin!.close(() => r()));
  }
}

/**
 * A config as read from disk (the main file and the shards it names), in the form workers
 * receive it: each worker parses and validates the same files the supervisor read.
 */
function wireConfigSet(set: ConfigSet): string {
  return JSON.stringify({ file: set.file, text: set.text, shards: [...set.shards], hash: set.hash, bytes: set.bytes });
}

function unwireConfigSet(wire: string): ConfigSet {
  const w = JSON.parse(wire) as Omit<ConfigSet, 'shards'> & { shards: [string, { text?: string; error?: string }][] };
  return { ...w, shards: new Map(w.shards) };
}


