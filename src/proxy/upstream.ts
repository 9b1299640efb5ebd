// Where a decided request goes and how to reach it: plan the upstream (endpoints by priority,
// port, TLS profile, SNI), resolve and vet each candidate, dial the vetted IP with a deadline.
import type { Socket } from 'node:net';
import type { Decision, Target } from './decide';
import { EgressError, isEgressError } from './errors';
import { resolveAndVet, vetInHand, type VettedAddresses } from './resolve';
import type { CompiledService, ProxyContext, RuntimeState } from './runtime';
import { originateTls, serverNameFor, type TlsProfile } from './tls-origin';
import type { TimeoutsSpec } from '../model/proxy-config';

export interface UpstreamEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface UpstreamPlan {
  /** 'service': an in-cluster Service backend (plaintext, exempt from the address policy). */
  readonly kind: 'external' | 'service';
  /** The real host the request is for: Host header and, by default, SNI. */
  readonly host: string;
  /** The port the request goes to (for the Host header). */
  readonly port: number;
  /** Host header override: Service backends get the name the client asked for, as a mesh would. */
  readonly hostHeader?: string;
  readonly groups: ReadonlyArray<readonly UpstreamEndpoint[]>;
  readonly tls?: TlsProfile;
  readonly servername?: string;
  readonly exempt: boolean;
  readonly timeouts: TimeoutsSpec;
  readonly service?: CompiledService;
  /** Speak HTTP/2 upstream (the service port says http2 or grpc); ALPN h2, or h2c without TLS. */
  readonly http2?: boolean;
}

/** Plan an HTTP (or gRPC) exchange: TLS is originated unless the service says plaintext. */
export function planHttp(state: RuntimeState, decision: Decision, target: Target): UpstreamPlan {
  const backend = decision.backend;
  if (backend && backend.kind === 'Service') {
    const host = backend.host ?? `${backend.name}.${backend.namespace}.svc.cluster.local`;
    const port = backend.port ?? 80;
    return { kind: 'service', host, port, hostHeader: target.host, groups: [[{ host, port }]], exempt: true, timeouts: state.config.timeouts };
  }
  const service = decision.externalService ? state.services.get(decision.externalService) : undefined;
  const tls = service ? service.tls : state.defaultTls;
  const portSpec = service?.portsByPort.get(target.port);
  const defaultPort = tls.spec.enabled
    ? (target.port === state.config.listeners.http.parentPort ? 443 : target.port)
    : target.port;
  const port = portSpec?.targetPort ?? (service && tls.spec.enabled ? 443 : defaultPort);
  return {
    kind: 'external',
    host: target.host,
    port,
    groups: endpointGroups(service, target.host, port),
    tls: tls.spec.enabled ? tls : undefined,
    servername: tls.spec.enabled ? serverNameFor(tls, target.host) : undefined,
    exempt: false,
    timeouts: service?.timeouts ?? state.config.timeouts,
    service,
    http2: portSpec?.protocol === 'http2' || portSpec?.protocol === 'grpc',
  };
}

/**
 * Plan a tunnel (CONNECT, TLS passthrough): raw bytes to the requested host and port, or where
 * the host's ExternalService maps that port (ports[].targetPort) and its endpoints say.
 */
export function planTunnel(state: RuntimeState, decision: Decision, target: Target, port: number): UpstreamPlan {
  const service = decision.externalService ? state.services.get(decision.externalService) : undefined;
  const upstreamPort = service?.portsByPort.get(port)?.targetPort ?? port;
  return {
    kind: 'external',
    host: target.host,
    port: upstreamPort,
    groups: endpointGroups(service, target.host, upstreamPort),
    exempt: false,
    timeouts: service?.timeouts ?? state.config.timeouts,
    service,
  };
}

/** Plan a raw TCP listener's connection: the service's endpoints, TLS when the service says so. */
export function planTcp(service: CompiledService, servicePort: number): UpstreamPlan {
  const portSpec = service.portsByPort.get(servicePort);
  const port = portSpec?.targetPort ?? servicePort;
  const enabled = service.tls.spec.enabled;
  return {
    kind: 'external',
    host: service.spec.host,
    port,
    groups: endpointGroups(service, service.spec.host, port),
    tls: enabled ? service.tls : undefined,
    servername: enabled ? serverNameFor(service.tls, service.spec.host) : undefined,
    exempt: false,
    timeouts: service.timeouts,
    service,
  };
}

function endpointGroups(service: CompiledService | undefined, host: string, port: number): ReadonlyArray<readonly UpstreamEndpoint[]> {
  if (!service || service.endpointGroups.length === 0) return [[{ host, port }]];
  return service.endpointGroups.map((g) => g.map((e) => ({ host: e.address, port: e.port ?? port })));
}

/** A vetted address to dial, in failover order. */
export interface Candidate {
  readonly host: string;
  readonly address: string;
  readonly port: number;
  readonly dnsMs: number;
}

/**
 * Vetted addresses in failover order, lower priority groups first, a name resolved only when the
 * previous candidates failed. An answer already in hand (an IP literal, a cached resolution) is
 * handed over at once: the request path awaits nothing before it dials a known address.
 */
export class Candidates {
  private group = 0;
  private endpoint = 0;
  private ep: UpstreamEndpoint | undefined;
  private vetted: VettedAddresses | undefined;
  private address = 0;
  private lastError: EgressError | undefined;
  private yielded = false;

  constructor(private readonly ctx: ProxyContext, private readonly state: RuntimeState, private readonly plan: UpstreamPlan) {}

  /** The next candidate; a promise only while a name is being resolved; undefined once none is left. */
  public next(): Candidate | undefined | Promise<Candidate | undefined> {
    for (;;) {
      const v = this.vetted;
      if (v !== undefined && this.address < v.addresses.length) {
        this.yielded = true;
        const ep = this.ep!;
        return { host: ep.host, address: v.addresses[this.address++], port: ep.port, dnsMs: v.dnsMs };
      }
      const ep = this.nextEndpoint();
      if (ep === undefined) return undefined;
      let inHand: VettedAddresses | undefined;
      try {
        inHand = vetInHand(this.ctx.resolver, ep.host, this.state.vetter, this.plan.exempt);
      } catch (err) {
        this.failed(err);
        continue;
      }
      if (inHand === undefined) {
        return resolveAndVet(this.ctx.resolver, ep.host, this.plan.timeouts.dnsMs, this.state.vetter, this.plan.exempt)
          .then((r) => this.take(r), (err: unknown) => this.failed(err))
          .then(() => this.next());
      }
      this.take(inHand);
    }
  }

  /**
   * Why nothing could be dialled, when no candidate was handed out: the most telling error. After
   * candidates were handed out the caller reports its own (connect) failure.
   */
  public failure(): EgressError | undefined {
    return this.yielded ? undefined : this.lastError ?? new EgressError('DNS_FAILED');
  }

  private nextEndpoint(): UpstreamEndpoint | undefined {
    const groups = this.plan.groups;
    while (this.group < groups.length) {
      const g = groups[this.group];
      if (this.endpoint < g.length) return (this.ep = g[this.endpoint++]);
      this.group++;
      this.endpoint = 0;
    }
    return undefined;
  }

  private take(v: VettedAddresses): void {
    const refusals = this.ctx.metrics.addressRefusals;
    for (const r of v.refused) if (!r.ok) refusals.inc({ reason: r.reason });
    for (const r of v.wouldRefuse) if (r.ok && r.wouldRefuse) refusals.inc({ reason: `report-only:${r.wouldRefuse}` });
    this.vetted = v;
    this.address = 0;
  }

  private failed(err: unknown): void {
    this.vetted = undefined;
    this.lastError = preferred(this.lastError, isEgressError(err) ? err : new EgressError('DNS_FAILED', undefined, { cause: err }));
    if (this.lastError.code === 'ADDRESS_REFUSED') this.ctx.metrics.addressRefusals.inc({ reason: 'all-answers-refused' });
  }
}

/** Every candidate of `plan` as an async iterable (tests, and callers off the request path). */
export async function* candidates(ctx: ProxyContext, state: RuntimeState, plan: UpstreamPlan): AsyncGenerator<Candidate> {
  const walk = new Candidates(ctx, state, plan);
  for (let c = await walk.next(); c !== undefined; c = await walk.next()) yield c;
  const failure = walk.failure();
  if (failure) throw failure;
}

/** A refusal is the most important thing to report: it is policy, not an outage. */
function preferred(a: EgressError | undefined, b: EgressError): EgressError {
  if (a?.code === 'ADDRESS_REFUSED') return a;
  return b;
}

export interface DialResult {
  readonly socket: Socket;
  readonly connectMs: number;
}

/** Dial a vetted IP within connectMs. Rejects with CONNECT_TIMEOUT or CONNECT_FAILED. */
export function dialVetted(ctx: ProxyContext, address: string, port: number, connectMs: number): Promise<DialResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let socket: Socket;
    try {
      socket = ctx.dial(address, port);
    } catch (err) {
      reject(new EgressError('CONNECT_FAILED', (err as { code?: string }).code, { cause: err }));
      return;
    }
    let done = false;
    const finish = (err?: EgressError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        socket.on('error', noop);
        // Whatever the dialler: relayed requests must not wait for delayed ACKs (Nagle).
        socket.setNoDelay(true);
        resolve({ socket, connectMs: performance.now() - started });
      }
    };
    const onConnect = () => finish();
    const onError = (err: NodeJS.ErrnoException) => finish(new EgressError('CONNECT_FAILED', err.code, { cause: err }));
    const timer = setTimeout(() => finish(new EgressError('CONNECT_TIMEOUT')), connectMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    // A dialer may hand back an already connected socket.
    if (!socket.connecting && !socket.destroyed && socket.remoteAddress) finish();
  });
}

function noop(): void { /* errors surface through the socket's owner */ }

export interface OpenedUpstream {
  readonly socket: Socket;
  readonly candidate: Candidate;
  readonly connectMs: number;
  readonly tlsMs?: number;
  readonly attempts: number;
}

/**
 * Open a connection for a tunnel or TCP listener: fail over across candidates on connect
 * failures only; TLS failures are final (the same name would fail the same way).
 */
export async function openUpstream(ctx: ProxyContext, state: RuntimeState, plan: UpstreamPlan, alpn?: readonly string[]): Promise<OpenedUpstream> {
  let attempts = 0;
  let lastError: EgressError | undefined;
  for await (const c of candidates(ctx, state, plan)) {
    attempts++;
    let dialled: DialResult;
    try {
      dialled = await dialVetted(ctx, c.address, c.port, plan.timeouts.connectMs);
    } catch (err) {
      lastError = err as EgressError;
      continue;
    }
    if (!plan.tls) return { socket: dialled.socket, candidate: c, connectMs: dialled.connectMs, attempts };
    const t = await originateTls(dialled.socket, plan.tls, plan.servername ?? plan.host, plan.timeouts.tlsHandshakeMs, alpn ?? []);
    return { socket: t.socket, candidate: c, connectMs: dialled.connectMs, tlsMs: t.tlsMs, attempts };
  }
  throw lastError ?? new EgressError('CONNECT_FAILED');
}
