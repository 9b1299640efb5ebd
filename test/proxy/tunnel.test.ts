// Tunnels over real sockets: TLS passthrough by SNI (end-to-end TLS, deny closes, no SNI closes),
// raw TCP listeners (plaintext and with TLS origination), tunnel idle timeout, and their metrics.
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  eventually, sample, scrape, startTestProxy, testConfig, testPki, testService, type TestProxy,
} from './helpers';

const NAMES = { 'api.test.example': '127.0.0.1', 'echo.test.example': '127.0.0.1' };

let tp: TestProxy | undefined;
let servers: net.Server[] = [];

afterEach(async () => {
  await tp?.proxy.close();
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  tp = undefined;
  servers = [];
});

/** An echo server, plaintext or TLS (test server cert), on loopback. */
async function echoServer(useTls: boolean): Promise<number> {
  const onSocket = (s: net.Socket) => {
    s.on('error', () => undefined);
    s.pipe(s);
  };
  const p = testPki();
  const server = useTls ? tls.createServer({ cert: p.serverCert, key: p.serverKey }, onSocket) : net.createServer(onSocket);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

/** Send `text` and resolve with what comes back before the connection ends or `expect` bytes arrive. */
function roundTrip(socket: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    socket.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.length >= text.length) {
        socket.end();
        resolve(got);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    socket.write(text);
  });
}

function closedWithoutData(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    socket.on('data', (c: Buffer) => { got += c.toString(); });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  });
}

function tlsListeners(extra: Record<string, unknown> = {}) {
  return { bindAddress: '127.0.0.1', http: { port: 0 }, tls: { port: 0, parentPort: 443 }, admin: { port: 0 }, ...extra };
}

describe('TLS passthrough by SNI', () => {
  test('allowed SNI is spliced to the vetted address; TLS is end to end (client verifies the upstream cert)', async () => {
    const port = await echoServer(true);
    tp = await startTestProxy(testConfig({
      listeners: tlsListeners(),
      externalServices: [testService('api', 'api.test.example', { ports: [{ port: 443, protocol: 'tcp', targetPort: port }] })],
    }), NAMES);
    const client = tls.connect({ host: '127.0.0.1', port: tp.proxy.ports.tls!, servername: 'api.test.example', ca: testPki().caPem });
    await new Promise<void>((r, j) => client.once('secureConnect', () => r()).once('error', j));
    expect(client.authorized).toBe(true);
    expect(await roundTrip(client, 'ping over tls')).toBe('ping over tls');
    expect(tp.dialer.calls).toEqual([{ address: '127.0.0.1', port }]);
    await eventually(async () => sample(await scrape(tp!.proxy.ports.admin), 'outbound_tls_route_close_total', {
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress',
      parent_name: 'all-egress',
      parent_port: '443',
      parent_section_name: '',
      route_group: '',
      route_kind: 'default',
      route_namespace: '',
      route_name: 'tls-egress-allow',
      hostname: 'api.test.example',
      error: '',
    }) === 1, 5_000, 'close counted');
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'outbound_tls_route_open_total', {
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress',
      parent_name: 'all-egress',
      parent_port: '443',
      parent_section_name: '',
      route_group: '',
      route_kind: 'default',
      route_namespace: '',
      route_name: 'tls-egress-allow',
      hostname: 'api.test.example',
    })).toBe(1);
  });

  test('denied SNI: closed without a byte, never dialled, counted with error="forbidden"', async () => {
    tp = await startTestProxy(testConfig({
      listeners: tlsListeners(),
      parent: { name: 'all-egress', namespace: 'egress', trafficPolicy: 'Deny' },
      routes: [{ kind: 'TLSRoute', name: 'tls-egress', namespace: 'egress', hostnames: ['api.test.example'], rules: [{}] }],
    }), NAMES);
    const client = tls.connect({ host: '127.0.0.1', port: tp.proxy.ports.tls!, servername: 'github.test.example', ca: testPki().caPem });
    client.on('error', () => undefined);
    await closedWithoutData(client);
    expect(tp.dialer.calls).toEqual([]);
    expect(tp.resolver.calls).toEqual([]);
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'outbound_tls_route_close_total', {
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress',
      parent_name: 'all-egress',
      parent_port: '443',
      parent_section_name: '',
      route_group: '',
      route_kind: 'default',
      route_namespace: '',
      route_name: 'tls-egress-deny',
      hostname: '',
      error: 'forbidden',
    })).toBe(1);
  });

  test('no SNI, or not TLS at all: closed, nothing resolved', async () => {
    tp = await startTestProxy(testConfig({ listeners: tlsListeners() }), NAMES);
    const noSni = tls.connect({ host: '127.0.0.1', port: tp.proxy.ports.tls!, rejectUnauthorized: false });
    noSni.on('error', () => undefined);
    await closedWithoutData(noSni);
    const plain = net.connect({ host: '127.0.0.1', port: tp.proxy.ports.tls! });
    plain.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    expect(await closedWithoutData(plain)).toBe('');
    expect(tp.resolver.calls).toEqual([]);
    expect(tp.dialer.calls).toEqual([]);
  });
});

describe('TCP listeners', () => {
  test('plaintext TCP service: bytes echo through the vetted endpoint', async () => {
    const port = await echoServer(false);
    tp = await startTestProxy(testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp: [{ port: 0, externalService: 'echo', servicePort: 7000 }] },
      externalServices: [testService('echo', 'echo.test.example', { ports: [{ port: 7000, protocol: 'tcp', targetPort: port }], tls: { enabled: false } })],
    }), NAMES);
    const client = net.connect({ host: '127.0.0.1', port: tp.proxy.ports.tcp[0] });
    expect(await roundTrip(client, 'echo this')).toBe('echo this');
    expect(tp.dialer.calls).toEqual([{ address: '127.0.0.1', port }]);
  });

  test('half-close: a client that sends and shuts down its side still gets the answer', async () => {
    const port = await echoServer(false);
    tp = await startTestProxy(testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp: [{ port: 0, externalService: 'echo', servicePort: 7000 }] },
      externalServices: [testService('echo', 'echo.test.example', { ports: [{ port: 7000, protocol: 'tcp', targetPort: port }], tls: { enabled: false } })],
    }), NAMES);
    const client = net.connect({ host: '127.0.0.1', port: tp.proxy.ports.tcp[0], allowHalfOpen: true });
    const answer = closedWithoutData(client);
    client.end('request then FIN');
    expect(await answer).toBe('request then FIN');
  });

  test('TCP service with tls.enabled: the proxy originates verified TLS (Kuma "TCP with TLS")', async () => {
    const port = await echoServer(true);
    tp = await startTestProxy(testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp: [{ port: 0, externalService: 'echo', servicePort: 4243 }] },
      externalServices: [testService('echo', 'api.test.example', { ports: [{ port: 4243, protocol: 'tcp', targetPort: port }] })],
    }), NAMES);
    const client = net.connect({ host: '127.0.0.1', port: tp.proxy.ports.tcp[0] });
    expect(await roundTrip(client, 'plaintext in, tls out')).toBe('plaintext in, tls out');
  });

  test('TCP service whose certificate is untrusted: closed, nothing echoed', async () => {
    const p = testPki();
    const server = tls.createServer({ cert: p.untrustedCert, key: p.untrustedKey }, (s) => s.pipe(s));
    server.on('tlsClientError', () => undefined);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    tp = await startTestProxy(testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp: [{ port: 0, externalService: 'echo', servicePort: 4243 }] },
      externalServices: [testService('echo', 'api.test.example', { ports: [{ port: 4243, protocol: 'tcp', targetPort: port }] })],
    }), NAMES);
    const client = net.connect({ host: '127.0.0.1', port: tp.proxy.ports.tcp[0] });
    client.write('secret');
    expect(await closedWithoutData(client)).toBe('');
    const m = await scrape(tp.proxy.ports.admin);
    expect(m).toMatch(/outbound_tcp_route_close_total\{[^}]*error="TLS_FAILED"\} 1/);
  });

  test('denied TCP: closed and counted with error="forbidden"', async () => {
    const port = await echoServer(false);
    tp = await startTestProxy(testConfig({
      parent: { name: 'all-egress', namespace: 'egress', trafficPolicy: 'Deny' },
      listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp: [{ port: 0, externalService: 'echo', servicePort: 7000 }] },
      externalServices: [testService('echo', 'echo.test.example', { ports: [{ port: 7000, protocol: 'tcp', targetPort: port }], tls: { enabled: false } })],
    }), NAMES);
    const client = net.connect({ host: '127.0.0.1', port: tp.proxy.ports.tcp[0] });
    client.write('hello?');
    expect(await closedWithoutData(client)).toBe('');
    expect(tp.dialer.calls).toEqual([]);
    const m = await scrape(tp.proxy.ports.admin);
    expect(sample(m, 'outbound_tcp_route_close_total', {
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress',
      parent_name: 'all-egress',
      parent_port: '7000',
      parent_section_name: '',
      route_group: '',
      route_kind: 'default',
      route_namespace: '',
      route_name: 'tcp-egress-deny',
      hostname: 'echo.test.example',
      error: 'forbidden',
    })).toBe(1);
  });

  test('tunnel idle timeout closes a silent tunnel and is logged', async () => {
    const port = await echoServer(false);
    tp = await startTestProxy(testConfig({
      timeouts: { tunnelIdleMs: 100 },
      listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp: [{ port: 0, externalService: 'echo', servicePort: 7000 }] },
      externalServices: [testService('echo', 'echo.test.example', { ports: [{ port: 7000, protocol: 'tcp', targetPort: port }], tls: { enabled: false } })],
    }), NAMES);
    const client = net.connect({ host: '127.0.0.1', port: tp.proxy.ports.tcp[0] });
    await closedWithoutData(client);
    const line = tp.logs.lines.find((l) => l.msg === 'connection');
    expect(line?.error).toBe('IDLE_TIMEOUT');
  });
});
