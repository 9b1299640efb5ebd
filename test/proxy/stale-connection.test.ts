// A pooled upstream connection the upstream closes while idle races the next request on it. Such
// a request, failed before any response byte, is sent once more on a new connection (idempotent
// methods, or nothing written), with no retry policy configured. Real TLS upstream sockets.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Client } from 'undici';
import { startTestProxy, testConfig, testPki, testService, type TestProxy } from './helpers';

const HOST = 'api.test.example.egress.local';

interface RawUpstream {
  readonly port: number;
  /** TLS connections that completed a handshake. */
  connections(): number;
  /** Requests answered. */
  answered(): number;
  close(): Promise<void>;
}

/**
 * A minimal HTTPS/1.1 upstream without a Keep-Alive header (so clients cannot see its idle
 * timeout, as with nginx): answers each request with "ok", and either closes a connection after
 * `idleCloseMs` without a request, or closes it, unanswered, when its request number `closeAt` arrives.
 */
function rawUpstream(opts: { idleCloseMs?: number; closeAt?: number }): Promise<RawUpstream> {
  const pki = testPki();
  let connections = 0;
  let answered = 0;
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: pki.serverCert, key: pki.serverKey }, (s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    let served = 0;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      if (opts.idleCloseMs !== undefined) idle = setTimeout(() => s.destroy(), opts.idleCloseMs);
    };
    armIdle();
    s.on('close', () => clearTimeout(idle));
    s.on('data', (d: Buffer) => {
      clearTimeout(idle);
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        buf = buf.slice(end + 4 + length);
        if (opts.closeAt === served + 1) {
          s.destroy();
          return;
        }
        served++;
        answered++;
        s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok');
      }
      armIdle();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: (server.address() as net.AddressInfo).port,
      connections: () => connections,
      answered: () => answered,
      close: () => new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
    }));
  });
}

let upstream: RawUpstream | undefined;
let tp: TestProxy | undefined;
let clients: Client[] = [];

afterEach(async () => {
  await Promise.all(clients.map((c) => c.destroy()));
  await tp?.proxy.close();
  await upstream?.close();
  clients = [];
  tp = undefined;
  upstream = undefined;
});

async function proxyTo(port: number): Promise<TestProxy> {
  // No retry policy: the resend is the proxy's own, as in nginx and Envoy.
  tp = await startTestProxy(testConfig({
    externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: port }] })],
  }), { 'api.test.example': '127.0.0.1' });
  return tp;
}

function keepAliveClient(port: number): Client {
  const c = new Client(`http://127.0.0.1:${port}`, { pipelining: 1, keepAliveTimeout: 60_000 });
  clients.push(c);
  return c;
}

async function send(c: Client, method: 'GET' | 'POST' = 'GET', body?: string): Promise<{ status: number; error?: string; body: string }> {
  const r = await c.request({ path: '/x', method, headers: { host: HOST }, body });
  const text = await r.body.text();
  return { status: r.statusCode, error: r.headers['x-egress-error'] as string | undefined, body: text };
}

function requestLines(t: TestProxy): Array<Record<string, unknown>> {
  return t.logs.lines.filter((l) => l.msg === 'request');
}

test('a GET on a reused connection the upstream closes is sent again on a new connection', async () => {
  upstream = await rawUpstream({ closeAt: 2 });
  const { proxy } = await proxyTo(upstream.port);
  const c = keepAliveClient(proxy.ports.http);
  const results = [];
  for (let i = 0; i < 6; i++) results.push(await send(c));
  expect(results).toEqual(Array.from({ length: 6 }, () => ({ status: 200, error: undefined, body: 'ok' })));
  // Every second request met a reused connection that the upstream closed, and went out again.
  const attempts = requestLines(tp!).map((l) => l.attempts);
  expect(attempts).toEqual([1, 2, 1, 2, 1, 2]);
  expect(upstream.answered()).toBe(6);
  expect(upstream.connections()).toBe(6);
});

test('a POST whose request reached the reused connection is not sent again: 502 UPSTREAM_RESET', async () => {
  upstream = await rawUpstream({ closeAt: 2 });
  const { proxy } = await proxyTo(upstream.port);
  const c = keepAliveClient(proxy.ports.http);
  expect(await send(c, 'POST', 'first')).toEqual({ status: 200, error: undefined, body: 'ok' });
  const second = await send(c, 'POST', 'second');
  expect(second.status).toBe(502);
  expect(second.error).toBe('UPSTREAM_RESET');
  expect(requestLines(tp!).map((l) => l.attempts)).toEqual([1, 1]);
  expect(upstream.connections()).toBe(1);
});

test('a request that fails on a new connection is not sent again (only reused ones race an idle close)', async () => {
  upstream = await rawUpstream({ closeAt: 1 });
  const { proxy } = await proxyTo(upstream.port);
  const r = await send(keepAliveClient(proxy.ports.http));
  expect(r.status).toBe(502);
  expect(r.error).toBe('UPSTREAM_RESET');
  expect(requestLines(tp!)[0].attempts).toBe(1);
  expect(upstream.connections()).toBe(1);
});

test('close-at-100 ms race: 1,000 GETs sent 92–108 ms after the previous one on each connection, none fails', async () => {
  upstream = await rawUpstream({ idleCloseMs: 100 });
  const { proxy } = await proxyTo(upstream.port);
  const chains = 40;
  const perChain = 25;
  const failures: string[] = [];
  await Promise.all(Array.from({ length: chains }, async (_v, i) => {
    const c = keepAliveClient(proxy.ports.http);
    for (let n = 0; n < perChain; n++) {
      const r = await send(c);
      if (r.status !== 200 || r.body !== 'ok') failures.push(`${r.status} ${r.error ?? ''}`);
      // Spread over the upstream's idle close: 92, 93, ... 108 ms.
      await new Promise((resolve) => setTimeout(resolve, 92 + ((i + n) % 17)));
    }
  }));
  expect(failures).toEqual([]);
  expect(requestLines(tp!)).toHaveLength(chains * perChain);
}, 300_000);
