// The data-plane listening sockets: how one is made, and how one is closed without resetting the
// connections the kernel has already completed for it. The single process and the multi-process
// supervisor (cluster.ts) close theirs the same way.
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
export function listenOn(server: net.Server, port: number, host: string, onError: (err: Error) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
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

/**
 * Connections completed by the kernel and waiting in the accept queues of listening sockets on
 * these ports (Linux: the rx_queue of a LISTEN entry in /proc/net/tcp{,6}). 0 where /proc is
 * unreadable: the caller's quiet event-loop turns are then the only evidence.
 */
export function acceptQueueLength(ports: ReadonlySet<number>, procFiles: readonly string[] = ['/proc/net/tcp', '/proc/net/tcp6']): number {
  let queued = 0;
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
      const port = parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16);
      if (!ports.has(port)) continue;
      queued += parseInt(f[4].slice(f[4].indexOf(':') + 1), 16) || 0;
    }
  }
  return queued;
}
