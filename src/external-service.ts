// ExternalService: one third-party host the gateway serves, with its ports, endpoints, TLS,
// timeouts, retries, pool and injected headers; rendered into the proxy config and, through
// renderers, into mesh resources.
import { Duration } from 'cdk8s';
import { Construct } from 'constructs';
import type { Client } from './callers';
import type { IEgressGateway } from './egress-gateway-ref';
import { clientsToSpec } from './internal/caller-props';
import { dnsNameProblem, isIpAddress } from './internal/dns';
import { durationMs } from './internal/duration';
import { MountRef, mountedFile } from './internal/mounts';
import { Problems } from './internal/problems';
import { timeoutsToSpec } from './internal/timeouts';
import { ENDPOINT_PRIORITY_BOUNDS, HTTP_STATUS_BOUNDS, IntRange, POOL_BOUNDS, RETRY_BOUNDS } from './model/bounds';
import { DEFAULT_POOL, DEFAULT_RETRY, DEFAULT_TLS_TARGET_PORT } from './model/defaults';
import { dnsLabelProblem, dnsSubdomainProblem, suggestDnsLabel } from './model/names';
import type {
  ClientSpec, EndpointSpec, ExternalServicePortSpec, ExternalServiceSpec, InjectedHeaderSpec, RetrySpec, TimeoutsSpec,
} from './model/proxy-config';
import type { ProxyTimeouts } from './proxy-timeouts';
import { TlsOrigination } from './tls';

/**
 * Application protocol of an external service port (Kuma's MeshExternalService spelling).
 *
 * @see https://kuma.io/docs/latest/networking/meshexternalservice/
 */
export enum ExternalServiceProtocol {
  /** HTTP/1.1. */
  HTTP = 'http',
  /** HTTP/2. */
  HTTP2 = 'http2',
  /** gRPC (HTTP/2). */
  GRPC = 'grpc',
  /** Opaque TCP: the gateway gives the port its own listener and forwards bytes. */
  TCP = 'tcp',
}

/** A port clients address on an external service. */
export interface ExternalServicePort {
  /** The port clients address (`http://api.example.com.egress.local:<port>`). */
  readonly port: number;

  /**
   * The application protocol.
   * @default ExternalServiceProtocol.HTTP
   */
  readonly protocol?: ExternalServiceProtocol;

  /**
   * The upstream port the gateway connects to.
   * @default - 443 when TLS is originated and `port` is 80, else the same as `port`
   */
  readonly targetPort?: number;
}

/**
 * Where the gateway connects for an external service, instead of the host itself.
 *
 * @see https://kuma.io/docs/latest/networking/meshexternalservice/
 */
export interface ExternalServiceEndpoint {
  /** A DNS name, IPv4 or IPv6 address. */
  readonly address: string;

  /**
   * Upstream port.
   * @default - the service port's targetPort
   */
  readonly port?: number;

  /**
   * Lower is tried first; a higher priority only when every lower one failed to connect.
   * @default 0
   */
  readonly priority?: number;
}

/** Transport failures that may be retried. */
export enum RetryCondition {
  /** The upstream could not be connected to (nothing was sent). */
  CONNECT_FAILURE = 'connect-failure',
  /** The connection was reset before a response started. */
  RESET = 'reset',
  /** The attempt timed out. */
  TIMEOUT = 'timeout',
}

/**
 * How the gateway retries failed requests to an external service, bounded by a retry budget as
 * Linkerd bounds its retries.
 *
 * @see https://linkerd.io/2-edge/reference/retries/
 */
export interface RetryPolicy {
  /**
   * Retries after the first attempt. Zero disables retries.
   * @default 2
   */
  readonly maxRetries?: number;
  /**
   * Response statuses that are retried.
   * @default [502, 503, 504]
   */
  readonly retryOnStatuses?: number[];
  /**
   * Transport failures that are retried.
   * @default [RetryCondition.CONNECT_FAILURE, RetryCondition.RESET]
   */
  readonly retryOnConditions?: RetryCondition[];
  /**
   * Retry POST, PATCH and other non-idempotent methods too. Risks doing the same thing twice.
   * @default false
   */
  readonly retryNonIdempotent?: boolean;
  /**
   * Timeout of each attempt.
   * @default - only the overall timeouts apply
   */
  readonly perTryTimeout?: Duration;
  /**
   * First backoff between attempts (doubled each time, with jitter).
   * @default Duration.millis(25)
   */
  readonly backoffBase?: Duration;
  /**
   * Longest backoff between attempts.
   * @default Duration.millis(250)
   */
  readonly backoffMax?: Duration;
  /**
   * Retries may add at most this fraction of recent requests (0 to 1).
   * @default 0.2
   */
  readonly budgetRatio?: number;
  /**
   * Retries allowed per second whatever the ratio says.
   * @default 10
   */
  readonly budgetMinPerSecond?: number;
  /**
   * The window over which "recent requests" are counted.
   * @default Duration.seconds(10)
   */
  readonly budgetTtl?: Duration;
}

/** Connection pooling towards an external service's upstream. */
export interface ConnectionPool {
  /**
   * Connections per upstream origin. The pool opens one when a request finds none idle, up to this
   * bound; idle ones are kept for `keepAlive`.
   * @default 1024
   */
  readonly maxConnections?: number;
  /**
   * Idle keep-alive connections are closed after this.
   * @default Duration.seconds(30)
   */
  readonly keepAlive?: Duration;
}

// RFC 7230 token.
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
// Headers the proxy manages itself; injecting them would break framing or routing.
const RESERVED_HEADERS = new Set([
  'host', 'connection', 'content-length', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate',
]);
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;

/**
 * A header the gateway adds to every request to an external service, its value read from a
 * mounted Secret, so workloads never hold the third-party credential (Authorization, API keys).
 */
export class InjectedHeader {
  /**
   * @param headerName the header, e.g. `Authorization` or `X-Api-Key`
   * @param secretName a Secret in the gateway's namespace
   * @param key the key in the Secret holding the complete header value (e.g. `Bearer abc...`)
   */
  public static fromSecret(headerName: string, secretName: string, key: string): InjectedHeader {
    const problems = new Problems('InjectedHeader.fromSecret()');
    if (typeof headerName !== 'string' || !HEADER_NAME.test(headerName)) {
      problems.add('headerName', headerName, 'is not an HTTP header name (RFC 7230 token)', 'use a name such as "Authorization" or "X-Api-Key"');
    } else if (RESERVED_HEADERS.has(headerName.toLowerCase())) {
      problems.add('headerName', headerName, 'is managed by the proxy and cannot be injected', 'inject an application header such as "Authorization" instead');
    }
    const secretNameProblem = dnsSubdomainProblem(secretName, { what: 'a Secret name' });
    if (secretNameProblem) problems.add('secretName', secretName, secretNameProblem.rule, secretNameProblem.fix);
    if (typeof key !== 'string' || !DATA_KEY.test(key)) {
      problems.add('key', key, 'is not a valid Secret data key (letters, digits, "-", "_" and "." only)', 'use the key as it appears under data:');
    }
    problems.throwIfAny();
    return new InjectedHeader(headerName, secretName, key);
  }

  private constructor(
    /** The header name. */
    public readonly headerName: string,
    /** The Secret holding the value. */
    public readonly secretName: string,
    /** The key in the Secret. */
    public readonly key: string,
  ) {}

  /** @internal the Secret the gateway mounts. */
  public _mount(): MountRef {
    return { kind: 'secret', name: this.secretName };
  }

  /** @internal the proxy config form: a file path, never the value. */
  public _toSpec(): InjectedHeaderSpec {
    return { name: this.headerName, valueFile: mountedFile('secret', this.secretName, this.key) };
  }
}

/**
 * Renders an external service into something else (a mesh's custom resources, say). Meshes
 * plug in through this interface so that adding one changes no existing construct.
 */
export interface IExternalServiceRenderer {
  /**
   * Called once when the renderer is added to the service; creates whatever the renderer emits,
   * typically as children of the service or of a chart.
   */
  bind(service: ExternalService): void;
}

/** Everything that describes an external service apart from where it lives. */
export interface ExternalServiceOptions {
  /**
   * The name clients call, as in `http://<host>.egress.local`: an exact DNS name
   * (`api.github.com`) or a leading wildcard (`*.s3.amazonaws.com`).
   */
  readonly host: string;

  /**
   * Identifier in the proxy config, logs, metrics and rendered resources (a DNS label).
   * @default - derived from the construct id
   */
  readonly name?: string;

  /**
   * Ports clients address.
   * @default [{ port: 80, protocol: ExternalServiceProtocol.HTTP }]
   */
  readonly ports?: ExternalServicePort[];

  /**
   * Where to connect instead of the host itself.
   * @default - the requested host itself
   */
  readonly endpoints?: ExternalServiceEndpoint[];

  /**
   * TLS origination towards the upstream. `TlsOrigination.disabled()` sends plaintext: read its
   * documentation before using it.
   * @default TlsOrigination.originate() - verified TLS 1.2+ to port 443
   */
  readonly tls?: TlsOrigination;

  /**
   * Per-phase timeouts for this service.
   * @default - the gateway's timeouts
   */
  readonly timeouts?: ProxyTimeouts;

  /**
   * Retries of failed requests.
   * @default - the proxy's behaviour without a retry policy
   */
  readonly retries?: RetryPolicy;

  /**
   * Upstream connection pool.
   * @default - up to 1024 connections per origin, opened as requests need them; 30 s keep-alive
   */
  readonly connectionPool?: ConnectionPool;

  /**
   * Headers added to every request, values read from Secrets mounted into the gateway.
   * @default - none
   */
  readonly injectHeaders?: InjectedHeader[];

  /**
   * Renderers to bind (Kuma, OSM, Istio, ...).
   * @default - none
   */
  readonly renderers?: IExternalServiceRenderer[];

  /**
   * The callers allowed to use this service; every other caller gets 403 `CALLER_NOT_ALLOWED`
   * (or `CALLER_UNKNOWN` when the gateway cannot tell who it is). Needs the gateway's
   * `callerIdentity`. A request that also matches a route with clients needs the consent of both.
   *
   * The caller is known on plaintext HTTP requests and CONNECT tunnels; TLS passthrough and TCP
   * listener connections carry no identity, so a service with clients refuses them (a service
   * whose ports are all TCP needs the gateway's `forwardProxy`). With
   * `CallerIdentitySource.LINKERD`, the gateway's Linkerd authorization admits these callers too.
   * Enforced by the gateway only: mesh renderers (Kuma, Istio, OSM) reject a service with clients.
   * @default - every caller
   */
  readonly clients?: Client[];
}

/** Props of `ExternalService`. */
export interface ExternalServiceProps extends ExternalServiceOptions {
  /**
   * The gateway that serves this service. Without one the service only feeds its renderers.
   * @default - none
   */
  readonly gateway?: IEgressGateway;

  /**
   * Namespace of the service's rendered resources.
   * @default - the gateway's namespace, or "default" without a gateway
   */
  readonly namespace?: string;
}

/** Derives a DNS label from a construct id: lower case, runs of other characters to '-'. */
function nameFromId(id: string): string {
  return suggestDnsLabel(id) || 'external-service';
}

/**
 * A third-party host the gateway serves: clients call `http://<host>.<suffix>` in plaintext
 * inside the cluster and the gateway connects to the host with verified TLS.
 *
 * @example
 * // Usually through the gateway: gateway.addExternalService('Payments', { ... }).
 * const payments = new ExternalService(chart, 'Payments', {
 *   gateway,
 *   host: 'api.payments.example',
 *   tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromSecret('payments-ca', 'ca.crt') }),
 *   retries: { maxRetries: 2 },
 * });
 * payments.addRenderer(new KumaExternalService());
 */
export class ExternalService extends Construct {
  /** Identifier in the proxy config, logs and metrics. */
  public readonly name: string;
  /** Exact DNS name or leading wildcard, lower case. */
  public readonly host: string;
  /** True when `host` is a leading wildcard. */
  public readonly isWildcard: boolean;
  /** Namespace for rendered resources. */
  public readonly namespace: string;
  /** Ports, with protocol and targetPort filled in. */
  public readonly ports: ExternalServicePort[];
  /** Endpoints, with priority filled in; empty means the host itself. */
  public readonly endpoints: ExternalServiceEndpoint[];
  /** TLS origination settings. */
  public readonly tls: TlsOrigination;
  /** Injected headers. */
  public readonly injectedHeaders: InjectedHeader[];
  /** Per-service timeouts, if any. */
  public readonly timeouts?: ProxyTimeouts;
  /** Retry policy, if any. */
  public readonly retries?: RetryPolicy;
  /** Connection pool settings, if any. */
  public readonly connectionPool?: ConnectionPool;
  /** The gateway serving this service, if any. */
  public readonly gateway?: IEgressGateway;
  /** The callers allowed to use this service; undefined: every caller. */
  public readonly clients?: Client[];

  private readonly renderers: IExternalServiceRenderer[] = [];
  private readonly timeoutsSpec?: Partial<TimeoutsSpec>;
  private readonly retrySpec?: RetrySpec;
  private readonly poolSpec = { ...DEFAULT_POOL };
  private readonly clientSpecs?: ClientSpec[];

  public constructor(scope: Construct, id: string, props: ExternalServiceProps) {
    super(scope, id);
    const problems = new Problems(`ExternalService "${this.node.path}"`);

    const host = props.host;
    const hostProblem = dnsNameProblem(host, { wildcard: true });
    if (hostProblem) problems.add('host', host, hostProblem.rule, hostProblem.fix);
    this.host = typeof host === 'string' ? host : String(host);
    this.isWildcard = this.host.startsWith('*.');

    this.name = props.name ?? nameFromId(id);
    const nameProblem = dnsLabelProblem(this.name, { fix: `use e.g. ${JSON.stringify(nameFromId(this.name))}` });
    if (nameProblem) {
      problems.add('name', this.name, nameProblem.rule, nameProblem.fix);
    }

    this.gateway = props.gateway;
    this.namespace = props.namespace ?? props.gateway?.namespaceName ?? 'default';
    if (props.gateway && props.namespace !== undefined && props.namespace !== props.gateway.namespaceName) {
      problems.add('namespace', props.namespace, `differs from the gateway's namespace ${JSON.stringify(props.gateway.namespaceName)}, where its Secrets are mounted`,
        'leave namespace unset or set it to the gateway\'s namespace');
    } else if (dnsLabelProblem(this.namespace)) {
      const p = dnsLabelProblem(this.namespace, { what: 'a namespace' })!;
      problems.add('namespace', this.namespace, p.rule, p.fix);
    }

    this.tls = props.tls ?? TlsOrigination.originate();
    this.ports = this.normalisePorts(problems, props.ports);
    this.endpoints = this.normaliseEndpoints(problems, props.endpoints ?? []);

    this.timeouts = props.timeouts;
    this.timeoutsSpec = props.timeouts ? timeoutsToSpec(problems, 'timeouts', props.timeouts) : undefined;
    this.retries = props.retries;
    this.retrySpec = props.retries ? retryToSpec(problems, props.retries) : undefined;
    this.connectionPool = props.connectionPool;
    if (props.connectionPool) {
      const { maxConnections, keepAlive } = props.connectionPool;
      if (maxConnections !== undefined) {
        if (!Number.isInteger(maxConnections) || maxConnections < POOL_BOUNDS.maxConnections.min) {
          problems.add('connectionPool.maxConnections', maxConnections, `must be a whole number of at least ${POOL_BOUNDS.maxConnections.min}`, 'use e.g. 1024');
        } else if (maxConnections > POOL_BOUNDS.maxConnections.max) {
          problems.add('connectionPool.maxConnections', maxConnections, `must be at most ${POOL_BOUNDS.maxConnections.max} (the proxy's bound)`, 'use e.g. 1024');
        } else {
          this.poolSpec.maxConnections = maxConnections;
        }
      }
      const keepAliveMs = durationMs(problems, 'connectionPool.keepAlive', keepAlive);
      if (keepAliveMs !== undefined && !outOfBoundsMs(problems, 'connectionPool.keepAlive', keepAliveMs, POOL_BOUNDS.keepAliveTimeoutMs, 'use e.g. Duration.seconds(30)')) {
        this.poolSpec.keepAliveTimeoutMs = keepAliveMs;
      }
    }

    this.injectedHeaders = [...(props.injectHeaders ?? [])];
    const seen = new Set<string>();
    for (const h of this.injectedHeaders) {
      const lower = h.headerName.toLowerCase();
      if (seen.has(lower)) {
        problems.add('injectHeaders', h.headerName, 'is injected twice', 'inject each header once');
      }
      seen.add(lower);
    }
    if (this.injectedHeaders.length > 0 && !this.tls.enabled) {
      problems.add('injectHeaders', this.injectedHeaders.map((h) => h.headerName),
        'would send credentials from Secrets in plaintext because \'tls\' is TlsOrigination.disabled()',
        'originate TLS to this service or stop injecting headers');
    }
    if (this.injectedHeaders.length > 0 && this.ports.every((p) => p.protocol === ExternalServiceProtocol.TCP)) {
      problems.add('injectHeaders', this.injectedHeaders.map((h) => h.headerName), 'has no effect: every port is TCP',
        'give the service an HTTP, HTTP2 or GRPC port or remove injectHeaders');
    }

    this.clients = props.clients ? [...props.clients] : undefined;
    this.clientSpecs = clientsToSpec(problems, 'clients', props.clients);

    problems.throwIfAny();

    // Registration can throw (duplicate host on the gateway); it comes after the props are known good.
    props.gateway?._registerExternalService(this);

    for (const renderer of props.renderers ?? []) this.addRenderer(renderer);
  }

  /** Binds a renderer (a mesh integration) to this service and returns it. */
  public addRenderer(renderer: IExternalServiceRenderer): IExternalServiceRenderer {
    if (this.renderers.includes(renderer)) {
      throw new Error(`ExternalService "${this.node.path}": this renderer is already bound; add each renderer once`);
    }
    this.renderers.push(renderer);
    renderer.bind(this);
    return renderer;
  }

  /** @internal the Secrets and ConfigMaps the gateway must mount for this service. */
  public _mounts(): MountRef[] {
    return [...this.tls._mounts(), ...this.injectedHeaders.map((h) => h._mount())];
  }

  /** @internal the service as the proxy config states it. */
  public _toSpec(): ExternalServiceSpec {
    const ports: ExternalServicePortSpec[] = this.ports.map((p) => ({ port: p.port, protocol: p.protocol!, targetPort: p.targetPort! }));
    const endpoints: EndpointSpec[] = this.endpoints.map((e) => ({ address: e.address, port: e.port, priority: e.priority ?? 0 }));
    return {
      name: this.name,
      host: this.host,
      ports,
      endpoints,
      tls: this.tls._toSpec(),
      timeouts: this.timeoutsSpec,
      retry: this.retrySpec,
      pool: { ...this.poolSpec },
      injectHeaders: this.injectedHeaders.map((h) => h._toSpec()),
      ...(this.clientSpecs ? { clients: this.clientSpecs.map((c) => ({ ...c })) } : {}),
    };
  }

  private normalisePorts(problems: Problems, ports: ExternalServicePort[] | undefined): ExternalServicePort[] {
    const list = ports ?? [{ port: 80, protocol: ExternalServiceProtocol.HTTP }];
    if (list.length === 0) {
      problems.add('ports', [], 'is empty', 'leave ports unset for port 80 HTTP, or list at least one port');
    }
    const protocols = Object.values(ExternalServiceProtocol) as string[];
    const seen = new Set<number>();
    const out: ExternalServicePort[] = [];
    list.forEach((p, i) => {
      const at = `ports[${i}]`;
      if (!isPort(p.port)) problems.add(`${at}.port`, p.port, 'must be a whole number from 1 to 65535', 'use the port clients address, e.g. 80');
      else if (seen.has(p.port)) problems.add(`${at}.port`, p.port, 'is listed twice', 'list each port once');
      seen.add(p.port);
      const protocol = p.protocol ?? ExternalServiceProtocol.HTTP;
      if (!protocols.includes(protocol)) problems.add(`${at}.protocol`, protocol, `is not one of ${protocols.join(', ')}`, 'use an ExternalServiceProtocol member');
      // Plain HTTP's port 80 becomes HTTPS's 443; any other port keeps its number (Kuma's TLS examples).
      const targetPort = p.targetPort ?? (this.tls.enabled && p.port === 80 ? DEFAULT_TLS_TARGET_PORT : p.port);
      if (p.targetPort !== undefined && !isPort(targetPort)) problems.add(`${at}.targetPort`, targetPort, 'must be a whole number from 1 to 65535', 'use the upstream port, e.g. 443');
      out.push({ port: p.port, protocol, targetPort });
    });
    return out;
  }

  private normaliseEndpoints(problems: Problems, endpoints: ExternalServiceEndpoint[]): ExternalServiceEndpoint[] {
    return endpoints.map((e, i) => {
      const at = `endpoints[${i}]`;
      if (!isIpAddress(e.address)) {
        const p = dnsNameProblem(e.address);
        if (p) problems.add(`${at}.address`, e.address, p.rule.replace('is not a valid DNS name', 'is neither an IP address nor a valid DNS name'), p.fix);
      }
      if (e.port !== undefined && !isPort(e.port)) problems.add(`${at}.port`, e.port, 'must be a whole number from 1 to 65535', 'use the upstream port, e.g. 443');
      const priority = e.priority ?? 0;
      if (!Number.isInteger(priority) || priority < ENDPOINT_PRIORITY_BOUNDS.min) {
        problems.add(`${at}.priority`, priority, 'must be a whole number, zero or more', 'use 0 for primary endpoints and higher numbers for fallbacks');
      } else if (priority > ENDPOINT_PRIORITY_BOUNDS.max) {
        problems.add(`${at}.priority`, priority, `must be at most ${ENDPOINT_PRIORITY_BOUNDS.max}`, 'number the fallbacks 1, 2, 3 and so on');
      }
      return { address: e.address, port: e.port, priority };
    });
  }
}

function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * Adds a problem when `ms` (a Duration read as milliseconds) is outside a bound the proxy
 * enforces too (src/model/bounds.ts); returns whether it is.
 */
function outOfBoundsMs(problems: Problems, prop: string, ms: number, range: IntRange, fix: string): boolean {
  if (ms >= range.min && ms <= range.max) return false;
  problems.add(prop, `${ms}ms`, `must be from ${range.min} ms to ${range.max} ms`, fix);
  return true;
}

function retryToSpec(problems: Problems, r: RetryPolicy): RetrySpec {
  const b = RETRY_BOUNDS;
  const maxRetries = r.maxRetries ?? DEFAULT_RETRY.maxRetries;
  if (!Number.isInteger(maxRetries) || maxRetries < b.maxRetries.min || maxRetries > b.maxRetries.max) {
    problems.add('retries.maxRetries', maxRetries, `must be a whole number from ${b.maxRetries.min} to ${b.maxRetries.max}`, 'use 1-3: each retry multiplies load on a struggling upstream');
  }
  const statusCodes = r.retryOnStatuses ?? [...DEFAULT_RETRY.statusCodes];
  const { min: s0, max: s1 } = HTTP_STATUS_BOUNDS;
  for (const s of statusCodes) {
    if (!Number.isInteger(s) || s < s0 || s > s1) problems.add('retries.retryOnStatuses', s, `is not an HTTP status (${s0}-${s1})`, 'use statuses such as 502, 503, 504 or 429');
  }
  const known = Object.values(RetryCondition) as string[];
  const conditions = r.retryOnConditions ?? (DEFAULT_RETRY.conditions as RetryCondition[]);
  for (const c of conditions) {
    if (!known.includes(c)) problems.add('retries.retryOnConditions', c, `is not one of ${known.join(', ')}`, 'use a RetryCondition member');
  }
  const ratio = r.budgetRatio ?? DEFAULT_RETRY.budgetRatio;
  if (typeof ratio !== 'number' || !(ratio >= b.budgetRatio.min && ratio <= b.budgetRatio.max)) {
    problems.add('retries.budgetRatio', ratio, `must be a fraction from ${b.budgetRatio.min} to ${b.budgetRatio.max}`, 'use e.g. 0.2 (retries add at most 20% load)');
  }
  const minPerSecond = r.budgetMinPerSecond ?? DEFAULT_RETRY.budgetMinPerSecond;
  if (typeof minPerSecond !== 'number' || !(minPerSecond >= b.budgetMinPerSecond.min) || !Number.isFinite(minPerSecond)) {
    problems.add('retries.budgetMinPerSecond', minPerSecond, 'must be zero or more', 'use e.g. 10');
  } else if (minPerSecond > b.budgetMinPerSecond.max) {
    problems.add('retries.budgetMinPerSecond', minPerSecond, `must be at most ${b.budgetMinPerSecond.max}`, 'use e.g. 10');
  }
  const perTryTimeoutMs = durationMs(problems, 'retries.perTryTimeout', r.perTryTimeout) ?? DEFAULT_RETRY.perTryTimeoutMs;
  outOfBoundsMs(problems, 'retries.perTryTimeout', perTryTimeoutMs, b.perTryTimeoutMs, 'use e.g. Duration.seconds(2)');
  const backoffBaseMs = durationMs(problems, 'retries.backoffBase', r.backoffBase) ?? DEFAULT_RETRY.backoffBaseMs;
  outOfBoundsMs(problems, 'retries.backoffBase', backoffBaseMs, b.backoffBaseMs, 'use e.g. Duration.millis(25)');
  const backoffMaxMs = durationMs(problems, 'retries.backoffMax', r.backoffMax) ?? DEFAULT_RETRY.backoffMaxMs;
  outOfBoundsMs(problems, 'retries.backoffMax', backoffMaxMs, b.backoffMaxMs, 'use e.g. Duration.millis(250)');
  if (backoffBaseMs > backoffMaxMs) {
    problems.add('retries.backoffBase', `${backoffBaseMs}ms`, `is longer than 'retries.backoffMax' (${backoffMaxMs}ms)`, 'raise backoffMax or lower backoffBase');
  }
  const budgetTtlMs = durationMs(problems, 'retries.budgetTtl', r.budgetTtl) ?? DEFAULT_RETRY.budgetTtlMs;
  if (budgetTtlMs < b.budgetTtlMs.min) problems.add('retries.budgetTtl', `${budgetTtlMs}ms`, 'must be longer than zero', 'use e.g. Duration.seconds(10)');
  else outOfBoundsMs(problems, 'retries.budgetTtl', budgetTtlMs, b.budgetTtlMs, 'use e.g. Duration.seconds(10)');
  return {
    maxRetries,
    statusCodes: [...statusCodes],
    conditions: [...conditions],
    retryNonIdempotent: r.retryNonIdempotent ?? false,
    perTryTimeoutMs,
    backoffBaseMs,
    backoffMaxMs,
    budgetRatio: ratio,
    budgetMinPerSecond: minPerSecond,
    budgetTtlMs,
  };
}
