// Upstream connection pools: one undici Pool per vetted address, port, TLS profile, SNI and
// protocol, dialled through the vetted-address connector; the timings of new connections; and a
// one-off connection for resending a request that raced an idle close.
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import { Client, Pool, type Dispatcher } from 'undici';
import { toEgressError } from './errors';
import type { ProxyContext, RuntimeState } from './runtime';
import { originateTls, TlsSessionCache } from './tls-origin';
import { dialVetted, type Candidate, type UpstreamPlan } from './upstream';
import { DEFAULT_POOL } from '../model/defaults';

function noop(): void { /* handled elsewhere */ }

/**
 * Timings of connections a pool opened and no request has claimed yet. undici does not say
 * which connection served a request; a pool opens one only when a request waits for it, so the
 * next request to get its response head from that pool is the one that waited (approximately,
 * under concurrency), and its log line carries the connect and TLS durations.
 */
const freshConnections = new WeakMap<Pool, Array<{ connectMs: number; tlsMs?: number }>>();

/** When an upstream connection became usable (performance clock). */
interface ConnectionRecord {
  readonly readyAt: number;
}

/** How a pool dials, kept so a request can be sent again on a connection of its own. */
interface PoolDialer {
  readonly origin: string;
  readonly options: Pool.Options;
  /** The pool's connect hook, reporting a new connection's timings to `timings`. */
  readonly connect: (timings: ConnectTimings) => NonNullable<Pool.Options['connect']>;
  /** The connection whose 'close' is being handled, if any (see failedOnReusedConnection). */
  readonly closing: { record?: ConnectionRecord };
}

const poolDialers = new WeakMap<Dispatcher, PoolDialer>();
/** The connection a socket error object was raised on (undici hands requests the same object). */
const errorConnections = new WeakMap<object, ConnectionRecord>();

export type ConnectTimings = (t: { connectMs: number; tlsMs?: number }) => void;

/** undici's connect hook: dial the vetted address, originate TLS (resuming sessions), record the connection. */
function connector(
  ctx: ProxyContext, plan: UpstreamPlan, c: Candidate, h2: boolean, closing: { record?: ConnectionRecord },
  sessions: TlsSessionCache | undefined, timings: ConnectTimings,
): NonNullable<Pool.Options['connect']> {
  const timeouts = plan.timeouts;
  const tlsProfile = plan.tls;
  const servername = plan.servername ?? plan.host;
  const alpn = h2 ? ['h2'] : ['http/1.1'];
  return (_opts, callback) => {
    dialVetted(ctx, c.address, c.port, timeouts.connectMs)
      .then(async (d) => {
        if (!tlsProfile) {
          // h2c upstream (plaintext gRPC): undici picks HTTP/2 from this property.
          if (h2) Object.defineProperty(d.socket, 'alpnProtocol', { value: 'h2' });
          return { socket: d.socket, connectMs: d.connectMs, tlsMs: undefined as number | undefined };
        }
        const t = await originateTls(d.socket, tlsProfile, servername, timeouts.tlsHandshakeMs, alpn, sessions);
        return { socket: t.socket, connectMs: d.connectMs, tlsMs: t.tlsMs as number | undefined };
      })
      .then((r) => {
        ctx.logger.debug({ event: 'upstream-connect', address: c.address, port: c.port, servername: tlsProfile ? servername : undefined, connectMs: r.connectMs, tlsMs: r.tlsMs });
        timings(r);
        const record: ConnectionRecord = { readyAt: performance.now() };
        r.socket.on('error', (err: Error) => errorConnections.set(err, record));
        // undici's 'close' listener, added after this one, fails the request with an error naming no
        // socket; the request's handlers run (synchronously, then in microtasks) before any other
        // I/O callback, so until the next turn this close is the one that error is about.
        r.socket.once('close', () => {
          closing.record = record;
          setImmediate(() => {
            if (closing.record === record) closing.record = undefined;
          });
        });
        callback(null, r.socket);
      }, (err: unknown) => callback(toEgressError(err, 'CONNECT_FAILED'), null));
  };
}

/** One undici pool per vetted IP, port, TLS profile, SNI and protocol, owned by the generation. */
export function poolFor(ctx: ProxyContext, state: RuntimeState, plan: UpstreamPlan, c: Candidate, h2: boolean): Pool {
  const key = `${plan.tls ? plan.tls.key : 'plain'}|${plan.servername ?? ''}|${c.address}|${c.port}|${h2 ? 'h2' : 'h1'}`;
  state.poolLastUsed.set(key, performance.now());
  let pool = state.pools.get(key);
  if (pool) return pool;
  const poolSpec = plan.service?.spec.pool ?? DEFAULT_POOL;
  const origin = `http://${c.address.includes(':') ? `[${c.address}]` : c.address}:${c.port}`;
  const closing: { record?: ConnectionRecord } = {};
  const sessions = plan.tls ? new TlsSessionCache() : undefined;
  const timings: ConnectTimings = (t) => {
    // Handed to the request that waits on this pool next (see freshConnections).
    const q = freshConnections.get(pool!) ?? [];
    if (q.length < 64) q.push(t);
    freshConnections.set(pool!, q);
  };
  const options: Pool.Options = {
    connections: poolSpec.maxConnections,
    keepAliveTimeout: poolSpec.keepAliveTimeoutMs,
    keepAliveMaxTimeout: poolSpec.keepAliveTimeoutMs,
    allowH2: h2,
    connect: connector(ctx, plan, c, h2, closing, sessions, timings),
  };
  pool = new Pool(origin, options);
  pool.on('connectionError', noop);
  poolDialers.set(pool, {
    origin,
    options,
    connect: (t) => connector(ctx, plan, c, h2, closing, sessions, t),
    closing,
  });
  state.pools.set(key, pool);
  return pool;
}

/**
 * True when `err` ended an exchange on a connection that was open before the request was
 * dispatched: a pooled connection the upstream closed while idle, which the request raced.
 */
export function failedOnReusedConnection(pool: Pool, err: unknown, dispatchedAt: number): boolean {
  if (typeof err !== 'object' || err === null) return false;
  let record = errorConnections.get(err);
  if (!record && (err as { code?: unknown }).code === 'UND_ERR_SOCKET') record = poolDialers.get(pool)?.closing.record;
  return record !== undefined && record.readyAt < dispatchedAt;
}

/**
 * A client with one new connection (dialled as `pool` dials) for one request; the caller closes
 * it once that request is done. The connection's timings go to `timings`, not to the pool's queue.
 */
export function freshConnection(pool: Pool, timings: ConnectTimings): Client | undefined {
  const d = poolDialers.get(pool);
  if (!d) return undefined;
  const client = new Client(d.origin, { ...d.options, connect: d.connect(timings), pipelining: 1 });
  client.on('connectionError', noop);
  return client;
}

/** The timings of a connection `pool` opened for the request now getting its response head, if it opened one. */
export function takeFreshConnection(pool: Pool): { connectMs: number; tlsMs?: number } | undefined {
  return freshConnections.get(pool)?.shift();
}
