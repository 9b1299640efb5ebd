// The compiled runtime state of one config generation ({config, compiledPolicy, pools, ...}),
// swapped as a single reference on reload, and the injected I/O seams (dial, resolve, log).
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import type { Pool } from 'undici';
import { CallerResolver } from './caller';
import { SuffixMatcher } from './classify';
import { ConfigError, type ConfigProblem } from './config';
import type { Logger } from './log';
import { LabelCache, type ProxyMetrics } from './metrics';
import { compilePolicy, PolicyCompileError, type CompiledPolicy } from './policy';
import type { Resolver } from './resolve';
import { RetryBudget } from './retry';
import { compileTlsProfile, type TlsProfile } from './tls-origin';
import { AddressVetter } from './vet';
import type {
  EndpointSpec, ExternalServicePortSpec, ExternalServiceSpec, ProxyConfig, RetrySpec, TimeoutsSpec,
} from '../model/proxy-config';

/**
 * Opens a TCP connection to an already-vetted IP. The whole data path dials through this, so
 * tests inject one that refuses anything but loopback.
 */
export type Dialer = (address: string, port: number) => net.Socket;

/**
 * Half-open capable, so a tunnel can pass one side's FIN through while the other still talks.
 * 64 KiB buffered before reading stops: undici reads in paused mode, and at node's 16 KiB a
 * response of one 16 KiB read would stop and restart reading the socket (two epoll_ctl calls).
 */
// node passes highWaterMark on to the socket; @types/node leaves it out of the connect options.
const READ_BUFFER = { highWaterMark: 64 * 1024 } as Partial<net.TcpNetConnectOpts>;
export const defaultDialer: Dialer = (address, port) => net.connect({ ...READ_BUFFER, host: address, port, noDelay: true, allowHalfOpen: true });

/** Everything the data path needs from outside: injected once at start, shared by generations. */
export interface ProxyContext {
  readonly dial: Dialer;
  readonly resolver: Resolver;
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
}

export interface CompiledService {
  readonly spec: ExternalServiceSpec;
  readonly tls: TlsProfile;
  readonly timeouts: TimeoutsSpec;
  /** [lower-case name, value] read from the valueFiles at load; never logged or dumped. */
  readonly injected: ReadonlyArray<readonly [string, string]>;
  readonly portsByPort: ReadonlyMap<number, ExternalServicePortSpec>;
  /** Endpoints grouped by priority, lowest first. */
  readonly endpointGroups: ReadonlyArray<readonly EndpointSpec[]>;
}

export class RuntimeState {
  public readonly policy: CompiledPolicy;
  public readonly vetter: AddressVetter;
  public readonly suffixes: SuffixMatcher;
  /** Who is calling: the identity source, trust domain and trusted peers of this config. */
  public readonly callers: CallerResolver;
  public readonly labels: LabelCache;
  public readonly defaultTls: TlsProfile;
  public readonly services: ReadonlyMap<ExternalServiceSpec, CompiledService>;
  public readonly servicesByName: ReadonlyMap<string, CompiledService>;
  /** Declared route hostnames, for the bounded `hostname` metric label. */
  public readonly routeHostnames: readonly string[];
  /** undici pools of this generation, keyed by vetted IP, port, TLS profile and SNI. */
  public readonly pools = new Map<string, Pool>();
  /** Last use of each pool (ms, performance clock), for sweeping origins DNS no longer returns. */
  public readonly poolLastUsed = new Map<string, number>();
  private sweepTimer?: NodeJS.Timeout;
  private readonly budgets = new WeakMap<RetrySpec, RetryBudget>();

  /** Compiles everything a request needs; throws ConfigError when a referenced file is unusable. */
  constructor(public readonly config: ProxyConfig, public readonly generation: number) {
    const problems: ConfigProblem[] = [];
    let policy: CompiledPolicy | undefined;
    try {
      policy = compilePolicy(config);
    } catch (err) {
      const list = err instanceof PolicyCompileError ? err.problems : [(err as Error).message];
      throw new ConfigError('routes', list.map((message) => ({ path: '$.routes', message })));
    }
    this.policy = policy;
    this.vetter = new AddressVetter(config.addressPolicy, config.parent.networks, config.parent.mode === 'ReportOnly');
    this.suffixes = new SuffixMatcher(config.listeners.http.suffixes);
    this.callers = new CallerResolver(policy.callers);
    this.labels = new LabelCache(config.parent);
    this.defaultTls = this.profile('$.defaultTls', () => compileTlsProfile(config.defaultTls, `g${generation}:default`), problems)!;
    const services = new Map<ExternalServiceSpec, CompiledService>();
    const byName = new Map<string, CompiledService>();
    config.externalServices.forEach((spec, i) => {
      const tls = this.profile(`$.externalServices[${i}].tls`, () => compileTlsProfile(spec.tls, `g${generation}:svc:${spec.name}`), problems);
      const injected: Array<readonly [string, string]> = [];
      spec.injectHeaders.forEach((h, j) => {
        const where = `$.externalServices[${i}].injectHeaders[${j}].valueFile`;
        try {
          // Secrets are mounted with or without a final newline; the value never has one.
          const value = readFileSync(h.valueFile, 'utf8').replace(/\r?\n$/, '');
          if (/[\r\n\0]/.test(value)) problems.push({ path: where, message: 'file content is not a valid header value (line break or NUL)', value: h.valueFile });
          else injected.push([h.name.toLowerCase(), value]);
        } catch (err) {
          problems.push({ path: where, message: `cannot read file: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, value: h.valueFile });
        }
      });
      const groups = new Map<number, EndpointSpec[]>();
      for (const e of spec.endpoints) {
        const g = groups.get(e.priority) ?? [];
        g.push(e);
        groups.set(e.priority, g);
      }
      const compiled: CompiledService = {
        spec,
        tls: tls ?? this.defaultTls,
        timeouts: { ...config.timeouts, ...(spec.timeouts ?? {}) },
        injected,
        portsByPort: new Map(spec.ports.map((p) => [p.port, p])),
        endpointGroups: [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => g),
      };
      services.set(spec, compiled);
      byName.set(spec.name, compiled);
    });
    this.services = services;
    this.servicesByName = byName;
    this.routeHostnames = [...new Set(config.routes.flatMap((r) => r.hostnames))];
    if (problems.length > 0) throw new ConfigError('config files', problems);
  }

  private profile(path: string, build: () => TlsProfile, problems: ConfigProblem[]): TlsProfile | undefined {
    try {
      return build();
    } catch (err) {
      problems.push({ path, message: `cannot load TLS material: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return undefined;
    }
  }

  /** The declared host a target matches, for metrics: service host (pattern), route hostname, or ''. */
  public hostnameLabel(host: string, service: ExternalServiceSpec | undefined): string {
    if (service) return service.host;
    for (const h of this.routeHostnames) {
      if (h === host) return h;
      if (h.startsWith('*.') && host.endsWith(h.slice(1)) && host.length > h.length - 1) return h;
    }
    return '';
  }

  /** One retry budget per retry spec (a service's or a route rule's), for this generation. */
  public retryBudget(spec: RetrySpec): RetryBudget {
    let b = this.budgets.get(spec);
    if (!b) this.budgets.set(spec, (b = RetryBudget.fromSpec(spec, () => performance.now())));
    return b;
  }

  /**
   * Close pools unused for `idleMs`: upstream IPs rotate (CDNs, failover), and a long-lived
   * generation must not keep one pool per address it ever resolved.
   */
  public startPoolSweeper(idleMs = 300_000, everyMs = 60_000): void {
    this.sweepTimer = setInterval(() => {
      const cutoff = performance.now() - idleMs;
      for (const [key, last] of this.poolLastUsed) {
        if (last > cutoff) continue;
        const pool = this.pools.get(key);
        this.pools.delete(key);
        this.poolLastUsed.delete(key);
        void pool?.close().catch(() => undefined);
      }
    }, everyMs);
    this.sweepTimer.unref();
  }

  /** Close every pool: in-flight requests finish, idle connections close. */
  public async closePools(): Promise<void> {
    clearInterval(this.sweepTimer);
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.close()));
  }

  public destroyPools(): void {
    clearInterval(this.sweepTimer);
    for (const p of this.pools.values()) p.destroy().catch(() => undefined);
    this.pools.clear();
  }
}
