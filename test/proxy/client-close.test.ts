// A client that goes away mid-exchange: when its request was sent and finishing the response is
// cheap, the proxy reads the rest and drops it so the pooled upstream connection (and its TLS
// session) survives; past the bound it cuts the connection. Real sockets, real TLS upstream.
import * as net from 'node:net';
import {
  eventually, startHttpsUpstream, startTestProxy, testConfig, testService, viaProxy, type TestProxy, type TestUpstream,
} from './helpers';
import { DRAIN_AFTER_CLIENT_CLOSE_BYTES } from '../../src/proxy/forward-http';

const HOST = 'api.test.example.egress.local';

let upstream: TestUpstream | undefined;
let tp: TestProxy | undefined;

afterEach(async () => {
  await tp?.proxy.close();
  await upstream?.close();
  tp = undefined;
  upstream = undefined;
});

/** Release functions of responses the upstream holds half-sent. */
let held: Array<() => void> = [];

/** /hold/N: 200 with an N-byte body whose first 5 bytes go out at once and the rest on release. */
async function holdingUpstream(): Promise<TestUpstream> {
  held = [];
  return startHttpsUpstream((req, res) => {
    const m = /^\/hold\/(\d+)$/.exec(req.url ?? '');
    if (!m) {
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
      return;
    }
    const total = Number(m[1]);
    res.writeHead(200, { 'content-length': String(total) });
    res.write('x'.repeat(5));
    held.push(() => res.end(Buffer.alloc(total - 5, 'y')));
  });
}

/** Send GET `path` on a raw socket, wait for the first body bytes, then close the socket. */
function readHeadAndLeave(port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\nxxxxx')) {
        s.destroy();
        resolve();
      }
    });
    s.write(`GET ${path} HTTP/1.1\r\nhost: ${HOST}\r\n\r\n`);
  });
}

/** The upstream's side of the proxy's first connection. */
let firstConnection: net.Socket | undefined;

async function start(): Promise<TestProxy> {
  upstream = await holdingUpstream();
  firstConnection = undefined;
  upstream.server.on('connection', (s: net.Socket) => {
    firstConnection ??= s;
  });
  tp = await startTestProxy(testConfig({
    externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
  }), { 'api.test.example': '127.0.0.1' });
  return tp;
}

function requestLines(t: TestProxy): Array<Record<string, unknown>> {
  return t.logs.lines.filter((l) => l.msg === 'request');
}

test('client leaves mid-response, the rest is small: drained, and the next request reuses the connection', async () => {
  const { proxy } = await start();
  await readHeadAndLeave(proxy.ports.http, '/hold/2048');
  await eventually(() => held.length === 1);
  // Released once the proxy has seen the client go (its request is no longer in flight).
  await eventually(() => proxy.inflight() === 0);
  held[0]();
  // The exchange ends for the request as the client cut it, and is logged so.
  await eventually(() => requestLines(tp!).length === 1);
  expect(requestLines(tp!)[0].error).toBe('CLIENT_CLOSED');
  const next = await viaProxy(proxy.ports.http, HOST, '/next');
  expect(next.status).toBe(200);
  expect(firstConnection!.destroyed).toBe(false);
  expect(upstream!.connections()).toBe(1);
  expect(upstream!.requests()).toBe(2);
});

test('client leaves and the rest is larger than the drain bound: the upstream connection is cut', async () => {
  const { proxy } = await start();
  await readHeadAndLeave(proxy.ports.http, `/hold/${DRAIN_AFTER_CLIENT_CLOSE_BYTES * 4}`);
  await eventually(() => held.length === 1);
  await eventually(() => proxy.inflight() === 0);
  held[0]();
  await eventually(() => requestLines(tp!).length === 1);
  expect(requestLines(tp!)[0].error).toBe('CLIENT_CLOSED');
  await eventually(() => firstConnection!.destroyed);
  const next = await viaProxy(proxy.ports.http, HOST, '/next');
  expect(next.status).toBe(200);
});

test('client leaves and the upstream never finishes: cut after the drain bound, not held forever', async () => {
  const { proxy } = await start();
  await readHeadAndLeave(proxy.ports.http, '/hold/2048');
  await eventually(() => held.length === 1);
  // Never released: the drain gives up and the connection is closed.
  await eventually(() => requestLines(tp!).length === 1, 10_000);
  expect(requestLines(tp!)[0].error).toBe('CLIENT_CLOSED');
  await eventually(() => firstConnection!.destroyed);
  const next = await viaProxy(proxy.ports.http, HOST, '/next');
  expect(next.status).toBe(200);
});
