// The data-plane listening sockets (listeners.ts): several sockets on one port where Node and the
// kernel can share it (SO_REUSEPORT), one elsewhere; a port something already listens on refused.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptQueueLength, acceptSocketsPerPort, listenDataPlane, listenersOnPort, reusePortSupported } from '../../src/proxy/listeners';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'egress-listeners-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A /proc/net/tcp-shaped table: a LISTEN entry on 127.0.0.1:port with `queued` waiting, and an established one. */
function procTable(name: string, port: number, queued: number): string {
  const hex = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, '0');
  const file = join(dir, name);
  writeFileSync(file, [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    `   0: 0100007F:${hex(port, 4)} 00000000:0000 0A 00000000:${hex(queued, 8)} 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0`,
    `   1: 0100007F:${hex(port, 4)} 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1`,
  ].join('\n'));
  return file;
}

function closeAll(servers: readonly net.Server[]): Promise<void> {
  return Promise.all(servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r())))).then(() => undefined);
}

/** Connect to the port `n` times at once and read the one line each accepted socket is sent. */
async function greetings(port: number, n: number): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<string>((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    c.setEncoding('latin1');
    c.on('data', (d) => {
      got += d;
    });
    c.on('end', () => resolve(got));
    c.on('error', reject);
    c.setTimeout(5_000, () => c.destroy(new Error('no greeting within 5 s')));
  })));
}

test('reusePortSupported: Node 22.12+ and 23.1+ on Linux only', () => {
  expect(reusePortSupported('20.20.2', 'linux')).toBe(false);
  expect(reusePortSupported('22.11.0', 'linux')).toBe(false);
  expect(reusePortSupported('22.12.0', 'linux')).toBe(true);
  expect(reusePortSupported('23.0.0', 'linux')).toBe(false);
  expect(reusePortSupported('23.1.0', 'linux')).toBe(true);
  expect(reusePortSupported('24.22.3', 'linux')).toBe(true);
  expect(reusePortSupported('24.22.3', 'darwin')).toBe(false);
  expect(reusePortSupported('24.22.3', 'win32')).toBe(false);
});

test('acceptSocketsPerPort: 32 per port, 128 in all, at least one; one without SO_REUSEPORT', () => {
  const tcp = (n: number) => Array.from({ length: n }, (_, i) => ({ port: 7000 + i }));
  // HTTP alone; with TLS; with TCP listeners: 4, 5, 8, 100 and 200 ports in all.
  expect(acceptSocketsPerPort({ tcp: [] }, true)).toBe(32);
  expect(acceptSocketsPerPort({ tls: { port: 8443 }, tcp: [] }, true)).toBe(32);
  expect([2, 3, 6, 98, 198].map((n) => acceptSocketsPerPort({ tls: { port: 8443 }, tcp: tcp(n) }, true))).toEqual([32, 25, 16, 1, 1]);
  expect(acceptSocketsPerPort({ tcp: [] }, false)).toBe(1);
});

test('the LISTEN entries of the socket tables: accept queue length and listeners per port', () => {
  const file = procTable('tcp-a', 40_123, 7);
  expect(acceptQueueLength(new Set([40_123]), [file, join(dir, 'absent')])).toBe(7);
  expect(acceptQueueLength(new Set([40_124]), [file])).toBe(0);
  // The established entry on the same port is not a listener.
  expect(listenersOnPort(40_123, [file])).toBe(1);
  expect(listenersOnPort(40_123, [file, procTable('tcp6-a', 40_123, 0)])).toBe(2);
  expect(listenersOnPort(40_124, [file])).toBe(0);
  expect(listenersOnPort(40_123, [join(dir, 'absent')])).toBe(0);
});

test('one socket: binds an ephemeral port and serves it', async () => {
  const { port, servers } = await listenDataPlane(() => net.createServer((s) => s.end('hi\n')), 0, '127.0.0.1', () => undefined, 1);
  try {
    expect(servers).toHaveLength(1);
    expect(port).toBeGreaterThan(0);
    expect(await greetings(port, 3)).toEqual(['hi\n', 'hi\n', 'hi\n']);
  } finally {
    await closeAll(servers);
  }
});

test(`several sockets: all on one port and all serving where reusePort works (${reusePortSupported() ? 'here' : 'not here'}), else refused with nothing left bound`, async () => {
  const made: net.Server[] = [];
  const make = () => {
    const i = made.length;
    const s = net.createServer((c) => c.end(`socket ${i}\n`));
    made.push(s);
    return s;
  };
  if (reusePortSupported()) {
    const { port, servers } = await listenDataPlane(make, 0, '127.0.0.1', () => undefined, 4);
    try {
      expect(servers).toHaveLength(4);
      for (const s of servers) expect((s.address() as net.AddressInfo).port).toBe(port);
      // The kernel spreads connections by hash: over 64 of them every socket answers some.
      const seen = new Set(await greetings(port, 64));
      expect([...seen].sort()).toEqual(['socket 0\n', 'socket 1\n', 'socket 2\n', 'socket 3\n']);
    } finally {
      await closeAll(servers);
    }
  } else {
    // Without reusePort the second bind to the port fails: the first socket must not stay bound.
    await expect(listenDataPlane(make, 0, '127.0.0.1', () => undefined, 4)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(made.length).toBeGreaterThanOrEqual(2);
    for (const s of made) expect(s.listening).toBe(false);
  }
});

test('several sockets on a port something already listens on: refused before binding, as a plain bind would be', async () => {
  const made: net.Server[] = [];
  const table = procTable('tcp-b', 40_125, 0);
  await expect(listenDataPlane(() => {
    const s = net.createServer();
    made.push(s);
    return s;
  }, 40_125, '127.0.0.1', () => undefined, 4, { procFiles: [table] })).rejects.toThrow(
    'listen EADDRINUSE: port 40125 already has a listening socket (on some address); stop what listens there or choose another port',
  );
  expect(made).toHaveLength(0);
});

test('a taken port fails the bind and leaves nothing listening', async () => {
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  const port = (taken.address() as net.AddressInfo).port;
  try {
    const made: net.Server[] = [];
    await expect(listenDataPlane(() => {
      const s = net.createServer();
      made.push(s);
      return s;
    }, port, '127.0.0.1', () => undefined, 1)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    // Several sockets: the kernel's own table shows the listener, found before any bind.
    await expect(listenDataPlane(() => {
      const s = net.createServer();
      made.push(s);
      return s;
    }, port, '127.0.0.1', () => undefined, 4)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    for (const s of made) expect(s.listening).toBe(false);
  } finally {
    await closeAll([taken]);
  }
});
