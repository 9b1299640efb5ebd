// The data-plane listening sockets: how one is made, and how one is closed without resetting the
// connections the kernel has already completed for it. The single process, cluster workers that
// bind the port beside each other and the supervisor that accepts for its workers where they
// cannot (cluster.ts) close theirs the same way.
import { readFileSync } from 'node:fs';
import * as net from 'node:net';

/**
 * A data-plane listener. Half-open sockets, as node:http's own server uses them: a client's FIN is
 * not our cue to close. No Nagle: a proxy relays small writes (a response head, the last bytes of a
 * body) that must not wait for the peer's delayed ACK. `pauseOnConnect`: accepted sockets are not
 * read here (the supervisor hands them to a worker, which reads them).
 */
export function dataPlaneServer(onConnection: (socket: net.Socket) => void, pauseOnConnect = false): net.Server {
  return net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect }, onConnection);
}

/** Listen; resolves with the bound port (port 0: an ephemeral one). */
export function listenOn(server: net.Server, port: number, host: string, onError: (err: Error) => void, reusePort = false): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ...(reusePort ? { reusePort } : {}) }, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/**
 * Listening sockets per data-plane port. Node accepts one connection per listening socket per
 * event-loop turn, and a busy proxy's turn serves every connection that is ready: a burst of new
 * connections (clients reconnecting after a rollout, a load test starting) then waits hundreds of
 * turns, seconds under load, while the connections already accepted are served. With
 * SO_REUSEPORT the kernel spreads new connections over several sockets bound to the one port,
 * and each accepts once a turn. The spread is by hash, so some sockets get more than their share:
 * more sockets than the burst needs on average keep the unluckiest short.
 */
export const ACCEPT_SOCKETS = 32;

/** Listening sockets for all data-plane ports together: a config with many TCP listeners gets fewer per port. */
export const ACCEPT_SOCKETS_TOTAL = 128;

/**
 * Listening sockets per data-plane port for these listeners (HTTP, TLS passthrough if any, and
 * each TCP listener): 1 where SO_REUSEPORT is not available.
 */
export function acceptSocketsPerPort(
  listeners: { readonly tls?: unknown; readonly tcp: readonly unknown[] }, supported: boolean = reusePortSupported(),
): number {
  if (!supported) return 1;
  const ports = 1 + (listeners.tls ? 1 : 0) + listeners.tcp.length;
  return Math.max(1, Math.min(ACCEPT_SOCKETS, Math.floor(ACCEPT_SOCKETS_TOTAL / ports)));
}

/**
 * Whether this Node binds several sockets to one port: `reusePort` came in Node 22.12 and 23.1.
 * Linux only, where SO_REUSEPORT spreads connections over the sockets (elsewhere it may not).
 */
export function reusePortSupported(version: string = process.versions.node, platform: string = process.platform): boolean {
  if (platform !== 'linux') return false;
  const [major, minor] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** How listenDataPlane shares a port. */
export interface ShareOptions {
  /**
   * SO_REUSEPORT even for one socket: the port is shared with sibling processes (cluster workers
   * that each bind it). Implied by more than one socket.
   */
  readonly reusePort?: boolean;
  /**
   * The port is already bound by siblings of this process (with SO_REUSEPORT): join them rather
   * than refuse it as in use.
   */
  readonly join?: boolean;
  /** The kernel's socket tables (tests). */
  readonly procFiles?: readonly string[];
}

/**
 * Bind one data-plane port: `sockets` listening sockets made by `make`, all on the port the first
 * one got (port 0: an ephemeral one), or a single socket where SO_REUSEPORT is not available. A
 * port something already listens on is refused as a plain bind would refuse it (EADDRINUSE),
 * rather than shared with a process of the same user that set SO_REUSEPORT too (another copy of
 * this proxy), unless `share.join` says that the listeners there are this proxy's own. On a
 * failure the sockets already bound are closed and the error is thrown.
 */
export async function listenDataPlane(
  make: () => net.Server, port: number, host: string, onError: (err: Error) => void, sockets: number,
  share: ShareOptions = {},
): Promise<{ port: number; servers: net.Server[] }> {
  const reusePort = sockets > 1 || share.reusePort === true;
  if (reusePort && !share.join && port !== 0 && listenersOnPort(port, share.procFiles) > 0) {
    throw Object.assign(new Error(`listen EADDRINUSE: port ${port} already has a listening socket (on some address); `
      + 'stop what listens there or choose another port'), { code: 'EADDRINUSE', port, address: host });
  }
  const servers: net.Server[] = [];
  try {
    let bound = port;
    for (let i = 0; i < sockets; i++) {
      const server = make();
      servers.push(server);
      bound = await listenOn(server, bound, host, onError, reusePort);
    }
    return { port: bound, servers };
  } catch (err) {
    for (const s of servers) if (s.listening) s.close();
    throw err;
  }
}

/**
 * Close the listeners, but first accept every connection the kernel has already completed:
 * closing a listening socket resets whatever is still queued in it. Node accepts about one
 * connection per listener per event-loop turn, so a busy proxy can have hundreds queued. Turn
 * the loop until two turns in a row accept nothing (`accepted` counts what the listeners took)
 * and, where /proc tells, the kernel's accept queues are empty; bounded by `untilMs`
 * (performance.now() time) should connections keep arriving. close()'s callback waits for every
 * connection, so it is not awaited.
 */
export async function closeAfterAcceptQueue(servers: readonly net.Server[], accepted: () => number, untilMs: number): Promise<void> {
  let quiet = 0;
  let seen = accepted();
  const ports = new Set(servers.map((s) => (s.address() as net.AddressInfo | null)?.port).filter((p): p is number => p !== undefined));
  while (performance.now() < untilMs) {
    await new Promise<void>((r) => setImmediate(r));
    if (accepted() !== seen) {
      quiet = 0;
      seen = accepted();
      continue;
    }
    if (++quiet < 2) continue;
    if (acceptQueueLength(ports) === 0) break;
    quiet = 0;
  }
  for (const s of servers) if (s.listening) s.close();
}

/** The kernel's socket tables (the network namespace's), IPv4 and IPv6. */
const PROC_TCP: readonly string[] = ['/proc/net/tcp', '/proc/net/tcp6'];

/**
 * Connections completed by the kernel and waiting in the accept queues of listening sockets on
 * these ports (Linux: the rx_queue of a LISTEN entry in /proc/net/tcp{,6}). 0 where /proc is
 * unreadable: the caller's quiet event-loop turns are then the only evidence.
 */
export function acceptQueueLength(ports: ReadonlySet<number>, procFiles: readonly string[] = PROC_TCP): number {
  let queued = 0;
  for (const l of listeningSockets(procFiles)) if (ports.has(l.port)) queued += l.queued;
  return queued;
}

/** Listening sockets on this port, whoever holds them, on any address; 0 where /proc is unreadable. */
export function listenersOnPort(port: number, procFiles: readonly string[] = PROC_TCP): number {
  return listeningSockets(procFiles).filter((l) => l.port === port).length;
}

/**
 * Every listening socket in the kernel's tables: its port, the connections queued for accept and
 * its inode (what /proc/<pid>/fd links name as `socket:[inode]`).
 */
export function listeningSockets(procFiles: readonly string[] = PROC_TCP): { port: number; queued: number; inode: string }[] {
  const out: { port: number; queued: number; inode: string }[] = [];
  for (const file of procFiles) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      // "  sl  local_address rem_address   st tx_queue:rx_queue ..."; LISTEN is state 0A.
      const f = line.trim().split(/\s+/);
      if (f.length < 5 || f[3] !== '0A') continue;
      out.push({
        port: parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16),
        queued: parseInt(f[4].slice(f[4].indexOf(':') + 1), 16) || 0,
        inode: f[9] ?? '',
      });
    }
  }
  return out;
}
