// Nagle's algorithm is off on every socket the proxy relays through: client sockets of the HTTP,
// TLS passthrough and TCP listeners, and every upstream socket, whatever dialler made it. Checked
// by what the proxy asked of each real socket, not by timing.
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  startHttpsUpstream, startTestProxy, testConfig, testPki, testService, type TestProxy, type TestUpstream,
} from './helpers';

let tp: TestProxy | undefined;
let upstream: TestUpstream | undefined;
let echo: net.Server | undefined;
let spy: jest.SpyInstance | undefined;
/** Every setNoDelay call made in this process: the socket's ports at the time and the value asked for. */
let calls: Array<{ local?: number; remote?: number; enable: boolean }> = [];

beforeEach(() => {
  calls = [];
  const original = net.Socket.prototype.setNoDelay;
  spy = jest.spyOn(net.Socket.prototype, 'setNoDelay').mockImplementation(function (this: net.Socket, enable?: boolean) {
    calls.push({ local: this.localPort, remote: this.remotePort, enable: enable !== false });
    return original.call(this, enable);
  });
});

afterEach(async () => {
  spy?.mockRestore();
  await tp?.proxy.close();
  await upstream?.close();
  await new Promise<void>((r) => (echo ? echo.close(() => r()) : r()));
  tp = undefined;
  upstream = undefined;
  echo = undefined;
});

/** The last value set on the socket with these ports; undefined when none was ever set. */
function noDelayOf(local: number, remote: number): boolean | undefined {
  const mine = calls.filter((c) => c.local === local && c.remote === remote);
  return mine.length === 0 ? undefined : mine[mine.length - 1].enable;
}

/** Ports of the upstream side of every connection `server` accepted (the proxy's local ports). */
function acceptedFrom(server: net.Server): number[] {
  const ports: number[] = [];
  server.on('connection', (s: net.Socket) => ports.push(s.remotePort!));
  return ports;
}

test('HTTP listener: the accepted client socket and the upstream TLS socket have noDelay', async () => {
  upstream = await startHttpsUpstream();
  const upstreamSides = acceptedFrom(upstream.server);
  tp = await startTestProxy(testConfig({
    externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
  }), { 'api.test.example': '127.0.0.1' });
  const { status, clientPort } = await new Promise<{ status: number; clientPort: number }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: tp!.proxy.ports.http, path: '/', headers: { host: 'api.test.example.egress.local' }, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode!, clientPort: req.socket!.localPort! }));
    });
    req.once('error', reject);
  });
  expect(status).toBe(200);
  // The proxy's side of the client connection: its remote port is the client's local port.
  expect(noDelayOf(tp.proxy.ports.http, clientPort)).toBe(true);
  expect(upstreamSides).toHaveLength(1);
  expect(noDelayOf(upstreamSides[0], upstream.port)).toBe(true);
});

test('TLS passthrough and TCP listeners: client and upstream sockets have noDelay', async () => {
  const pki = testPki();
  echo = tls.createServer({ cert: pki.serverCert, key: pki.serverKey }, (s) => s.pipe(s));
  await new Promise<void>((r) => echo!.listen(0, '127.0.0.1', r));
  const echoPort = (echo.address() as net.AddressInfo).port;
  const upstreamSides = acceptedFrom(echo);
  tp = await startTestProxy(testConfig({
    listeners: {
      bindAddress: '127.0.0.1',
      http: { port: 0 },
      tls: { port: 0, parentPort: 443 },
      admin: { port: 0 },
      tcp: [{ port: 0, externalService: 'echo', servicePort: 7000 }],
    },
    externalServices: [testService('echo', 'api.test.example', { ports: [{ port: 443, targetPort: echoPort }, { port: 7000, protocol: 'tcp', targetPort: echoPort }] })],
  }), { 'api.test.example': '127.0.0.1' });

  const roundTrip = (port: number, viaTls: boolean) => new Promise<number>((resolve, reject) => {
    const raw = net.connect(port, '127.0.0.1');
    const s = viaTls ? tls.connect({ socket: raw, servername: 'api.test.example', ca: pki.caPem }) : raw;
    s.once('error', reject);
    s.once(viaTls ? 'secureConnect' : 'connect', () => s.write('ping'));
    s.once('data', (d: Buffer) => {
      expect(d.toString()).toBe('ping');
      const local = raw.localPort!;
      s.destroy();
      resolve(local);
    });
  });

  // Passthrough: the client speaks TLS end to end through the proxy.
  const passthroughClient = await roundTrip(tp.proxy.ports.tls!, true);
  expect(noDelayOf(tp.proxy.ports.tls!, passthroughClient)).toBe(true);
  // TCP listener with the service's TLS: the proxy originates TLS to the echo server; plaintext in.
  const tcpClient = await roundTrip(tp.proxy.ports.tcp[0], false);
  expect(noDelayOf(tp.proxy.ports.tcp[0], tcpClient)).toBe(true);
  expect(upstreamSides).toHaveLength(2);
  for (const port of upstreamSides) expect(noDelayOf(port, echoPort)).toBe(true);
});
