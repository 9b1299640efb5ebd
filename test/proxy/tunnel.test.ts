// Tunnels over real sockets: TLS passthrough by SNI (end-to-end TLS, deny closes, no SNI closes),
// raw TCP listeners (plaintext and with TLS origination), tunnel idle timeout, and their metrics.
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  eventually, sample, scrape, startTestProxy, testConfig, testPki, testService, type TestProxy,
} from './helpers';
import { SuffixMatcher } from '../../src/proxy/classify';
import { validateConfig } from '../../src/proxy/config';
import { judgeConnectClientHello } from '../../src/proxy/tunnel';

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

  test('a reload that reorders or removes TCP listeners: each bound port keeps its entry until a restart, and a removed service closes the connection', async () => {
    const echoPort = await echoServer(false);
    // The second service answers with a prefix, so a connection that reached the wrong one shows.
    const prefix = net.createServer((c) => {
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => c.write(`B:${d.toString()}`));
    });
    servers.push(prefix);
    await new Promise<void>((r) => prefix.listen(0, '127.0.0.1', () => r()));
    const prefixPort = (prefix.address() as net.AddressInfo).port;
    const services = (withB: boolean) => [
      testService('echo', 'echo.test.example', { ports: [{ port: 7000, protocol: 'tcp', targetPort: echoPort }], tls: { enabled: false } }),
      ...(withB ? [testService('b', 'api.test.example', { ports: [{ port: 7001, protocol: 'tcp', targetPort: prefixPort }], tls: { enabled: false } })] : []),
    ];
    const a = { port: 0, externalService: 'echo', servicePort: 7000 };
    const b = { port: 0, externalService: 'b', servicePort: 7001 };
    const config = (tcp: unknown[], withB = true) => testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp },
      externalServices: services(withB),
    });
    tp = await startTestProxy(config([a, b]), NAMES);
    const [portA, portB] = tp.proxy.ports.tcp;
    const both = async () => [
      await roundTrip(net.connect({ host: '127.0.0.1', port: portA }), 'one'),
      await roundTrip(net.connect({ host: '127.0.0.1', port: portB }), 'two'),
    ];
    expect(await both()).toEqual(['one', 'B:two']);

    const reload = (c: Record<string, unknown>) => {
      const r = validateConfig(c);
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      const prepared = tp!.proxy.prepare(r.config);
      expect(prepared.problems).toEqual([]);
      expect(prepared.commit()).toMatchObject({ ok: true });
    };
    for (const tcp of [[b, a], []]) {
      reload(config(tcp));
      expect(await both()).toEqual(['one', 'B:two']);
    }
    expect(tp.logs.lines.filter((l) => l.event === 'config-restart-needed')).toHaveLength(2);

    // The service behind a port is the live config's: without it, its connections are closed.
    reload(config([], false));
    const gone = net.connect({ host: '127.0.0.1', port: portB });
    gone.write('anyone?');
    expect(await closedWithoutData(gone)).toBe('');
    await eventually(() => tp!.logs.lines.some((l) => l.msg === 'connection' && l.error === 'NO_BACKEND'), 2_000, 'NO_BACKEND logged');
    expect(await roundTrip(net.connect({ host: '127.0.0.1', port: portA }), 'still')).toBe('still');
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

describe('CONNECT carrying TLS: the ClientHello must name the CONNECT host', () => {
  /**
   * An upstream on loopback that counts the bytes it receives: a TLS echo server (test cert) behind
   * a counting TCP relay, or a plaintext server that speaks first (an SMTP-like banner) and echoes.
   */
  async function recordingServer(kind: 'tls-echo' | 'banner'): Promise<{ port: number; received: () => number }> {
    let received = 0;
    const listen = async (server: net.Server) => {
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      return (server.address() as net.AddressInfo).port;
    };
    const echo = (s: net.Socket) => {
      s.on('error', () => undefined);
      if (kind === 'banner') s.write('220 mail.test.example ESMTP ready\r\n');
      s.on('data', (c: Buffer) => s.write(c));
      s.on('end', () => s.end());
    };
    const p = testPki();
    if (kind === 'banner') {
      const port = await listen(net.createServer((s) => {
        s.on('data', (c: Buffer) => { received += c.length; });
        echo(s);
      }));
      return { port, received: () => received };
    }
    const tlsPort = await listen(tls.createServer({ cert: p.serverCert, key: p.serverKey }, echo).on('tlsClientError', () => undefined));
    const port = await listen(net.createServer((s) => {
      const d = net.connect({ host: '127.0.0.1', port: tlsPort });
      for (const x of [s, d]) x.on('error', () => { s.destroy(); d.destroy(); });
      s.on('data', (c: Buffer) => { received += c.length; });
      s.pipe(d);
      d.pipe(s);
    }));
    return { port, received: () => received };
  }

  /** CONNECT through the proxy; resolves once the 200 is in, with any bytes that came after it. */
  function connectTunnel(proxyPort: number, authority: string): Promise<{ socket: net.Socket; status: string; rest: Buffer }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: proxyPort });
      let buf = Buffer.alloc(0);
      const onData = (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.pause();
        resolve({ socket, status: buf.subarray(0, end).toString('latin1').split('\r\n')[0], rest: buf.subarray(end + 4) });
      };
      socket.on('data', onData);
      socket.on('error', reject);
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    });
  }

  /** TLS over the tunnel socket: resolves with the echo of `text`, or '' when the tunnel closes first. */
  function tlsEcho(socket: net.Socket, servername: string | undefined, text: string): Promise<string> {
    return new Promise((resolve) => {
      const t = tls.connect({ socket, servername: servername ?? '', ca: testPki().caPem, rejectUnauthorized: servername !== undefined });
      let got = '';
      t.on('secureConnect', () => t.write(text));
      t.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.length >= text.length) {
          t.end();
          resolve(got);
        }
      });
      t.on('error', () => resolve(got));
      t.on('close', () => resolve(got));
      socket.resume();
    });
  }

  const denials = (m: string, reason: string) => m.split('\n').filter((l) => l.startsWith('egress_policy_denials_total{') && l.includes(`reason="${reason}"`));

  test('matching SNI: the TLS session goes through end to end', async () => {
    const up = await recordingServer('tls-echo');
    tp = await startTestProxy(testConfig(), NAMES);
    const t = await connectTunnel(tp.proxy.ports.http, `api.test.example:${up.port}`);
    expect(t.status).toMatch(/^HTTP\/1\.1 200/);
    expect(await tlsEcho(t.socket, 'api.test.example', 'hello through the tunnel')).toBe('hello through the tunnel');
    await eventually(() => tp!.logs.lines.some((l) => l.kind === 'connect' && l.msg === 'connection'));
    expect(tp.logs.lines.find((l) => l.kind === 'connect' && l.msg === 'connection')).toMatchObject({ decision: 'allow', host: 'api.test.example' });
    expect(tp.logs.lines.find((l) => l.kind === 'connect' && l.msg === 'connection')?.error).toBeUndefined();
    expect(up.received()).toBeGreaterThan(0);
  });

  test('mismatching SNI: the tunnel is closed before the ClientHello reaches the upstream, counted as denied, logged with the reason', async () => {
    const up = await recordingServer('tls-echo');
    tp = await startTestProxy(testConfig(), NAMES);
    const t = await connectTunnel(tp.proxy.ports.http, `api.test.example:${up.port}`);
    expect(t.status).toMatch(/^HTTP\/1\.1 200/);
    expect(await tlsEcho(t.socket, 'evil.test.example', 'fronted')).toBe('');
    expect(up.received()).toBe(0);
    await eventually(() => tp!.logs.lines.some((l) => l.kind === 'connect' && l.msg === 'connection'));
    {
      const m = await scrape(tp.proxy.ports.admin);
      // hostname is the configured ExternalService's (none here), never the client's string.
      expect(denials(m, 'sni-mismatch')).toEqual([expect.stringMatching(/route_name="tcp-egress-allow",hostname="",protocol="connect",.*mode="enforce"\} 1$/)]);
      expect(m).toMatch(/outbound_tcp_route_close_total\{[^}]*route_name="tcp-egress-allow"[^}]*error="forbidden"\} 1/);
    }
    const line = tp.logs.lines.find((l) => l.kind === 'connect' && l.reason === 'sni-mismatch');
    expect(line).toMatchObject({ decision: 'deny', error: 'EGRESS_DENIED', host: 'api.test.example' });
    expect(String(line?.errorDetail)).toContain('"evil.test.example"');
  });

  test('SNI naming the host with its egress suffix, in another case, matches', async () => {
    const up = await recordingServer('tls-echo');
    tp = await startTestProxy(testConfig(), NAMES);
    const t = await connectTunnel(tp.proxy.ports.http, `api.test.example.egress.local:${up.port}`);
    // The certificate names api.test.example: verify against it while sending the suffixed SNI.
    const socket = t.socket;
    const echoed = await new Promise<string>((resolve) => {
      const s = tls.connect({ socket, servername: 'API.test.example.egress.local', ca: testPki().caPem, checkServerIdentity: (_h, cert) => tls.checkServerIdentity('api.test.example', cert) });
      let got = '';
      s.on('secureConnect', () => s.write('ok'));
      s.on('data', (c: Buffer) => { got += c.toString(); if (got.length >= 2) { s.end(); resolve(got); } });
      s.on('error', () => resolve(got));
      socket.resume();
    });
    expect(echoed).toBe('ok');
  });

  test.each([
    ['RequireMatch', '', 'sni-missing'],
    ['MatchIfPresent', 'no name needed', undefined],
  ])('no SNI with connectSni %s → %j', async (connectSni, expected, reason) => {
    const up = await recordingServer('tls-echo');
    tp = await startTestProxy(testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0, suffixes: ['egress.local'], forwardProxy: true, connectSni }, admin: { port: 0 } },
    }), NAMES);
    const t = await connectTunnel(tp.proxy.ports.http, `api.test.example:${up.port}`);
    expect(await tlsEcho(t.socket, undefined, 'no name needed')).toBe(expected);
    if (reason) {
      expect(up.received()).toBe(0);
      await eventually(() => tp!.logs.lines.some((l) => l.kind === 'connect' && l.msg === 'connection'));
      expect(denials(await scrape(tp.proxy.ports.admin), reason)).toHaveLength(1);
    }
  });

  test('a server that speaks first (SMTP banner) is relayed before the client has sent a byte', async () => {
    const up = await recordingServer('banner');
    tp = await startTestProxy(testConfig(), { 'mail.test.example': '127.0.0.1' });
    const t = await connectTunnel(tp.proxy.ports.http, `mail.test.example:${up.port}`);
    expect(t.status).toMatch(/^HTTP\/1\.1 200/);
    const banner = await new Promise<string>((resolve) => {
      let got = t.rest.toString();
      if (got.includes('\r\n')) return resolve(got);
      t.socket.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.includes('\r\n')) resolve(got);
      });
      t.socket.resume();
    });
    expect(banner).toBe('220 mail.test.example ESMTP ready\r\n');
    expect(up.received()).toBe(0);
    const reply = await new Promise<string>((resolve) => {
      let got = '';
      t.socket.removeAllListeners('data');
      t.socket.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.includes('\r\n')) resolve(got);
      });
      t.socket.resume();
      t.socket.write('EHLO client.test.example\r\n');
    });
    expect(reply).toBe('EHLO client.test.example\r\n');
    t.socket.destroy();
  });

  test('report-only parent: a mismatching SNI goes through and is counted as a would-be denial', async () => {
    const up = await recordingServer('tls-echo');
    tp = await startTestProxy(testConfig({ parent: { name: 'all-egress', namespace: 'egress', trafficPolicy: 'Allow', mode: 'ReportOnly' } }), NAMES);
    const t = await connectTunnel(tp.proxy.ports.http, `api.test.example:${up.port}`);
    const socket = t.socket;
    const echoed = await new Promise<string>((resolve) => {
      const s = tls.connect({ socket, servername: 'evil.test.example', ca: testPki().caPem, checkServerIdentity: () => undefined });
      let got = '';
      s.on('secureConnect', () => s.write('seen'));
      s.on('data', (c: Buffer) => { got += c.toString(); if (got.length >= 4) { s.end(); resolve(got); } });
      s.on('error', () => resolve(got));
      socket.resume();
    });
    expect(echoed).toBe('seen');
    await eventually(() => tp!.logs.lines.some((l) => l.kind === 'connect' && l.msg === 'connection'));
    expect(denials(await scrape(tp.proxy.ports.admin), 'sni-mismatch')).toEqual([expect.stringMatching(/mode="report-only"\} 1$/)]);
    expect(tp.logs.lines.find((l) => l.kind === 'connect' && l.msg === 'connection')).toMatchObject({ decision: 'allow', reason: 'report-only' });
  });
});

describe('judgeConnectClientHello', () => {
  /** The first record a real TLS client sends, captured on a loopback listener. */
  async function hello(servername: string): Promise<Buffer> {
    const server = net.createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => {
      let buf = Buffer.alloc(0);
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          s.destroy();
          resolve(buf);
        }
      });
    }));
    const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername, rejectUnauthorized: false });
    c.on('error', () => undefined);
    const b = await got;
    c.destroy();
    return b;
  }
  const suffixes = new SuffixMatcher(['egress.local']);
  const verdict = (v: ReturnType<typeof judgeConnectClientHello>) => (v === 'need-more' ? v : v.pass ? 'pass' : v.reason);

  test('names, absence, IP hosts, partial and hostile records', async () => {
    const named = await hello('api.test.example');
    const none = await hello('');
    expect(verdict(judgeConnectClientHello(named, 'api.test.example', suffixes, 'RequireMatch'))).toBe('pass');
    expect(verdict(judgeConnectClientHello(named, 'other.test.example', suffixes, 'MatchIfPresent'))).toBe('sni-mismatch');
    expect(verdict(judgeConnectClientHello(none, 'api.test.example', suffixes, 'RequireMatch'))).toBe('sni-missing');
    expect(verdict(judgeConnectClientHello(none, 'api.test.example', suffixes, 'MatchIfPresent'))).toBe('pass');
    // A CONNECT to an IP address: no name is the only correct ClientHello; any name is another server.
    expect(verdict(judgeConnectClientHello(none, '127.0.0.1', suffixes, 'RequireMatch'))).toBe('pass');
    expect(verdict(judgeConnectClientHello(named, '127.0.0.1', suffixes, 'MatchIfPresent'))).toBe('sni-mismatch');
    // Byte by byte: undecided until the record is complete.
    expect(judgeConnectClientHello(named.subarray(0, 3), 'api.test.example', suffixes, 'RequireMatch')).toBe('need-more');
    expect(judgeConnectClientHello(named.subarray(0, named.length - 1), 'api.test.example', suffixes, 'RequireMatch')).toBe('need-more');
    expect(judgeConnectClientHello(Buffer.alloc(0), 'api.test.example', suffixes, 'RequireMatch')).toBe('need-more');
    // Not TLS: passes at the first byte.
    expect(verdict(judgeConnectClientHello(Buffer.from('EHLO x\r\n'), 'api.test.example', suffixes, 'RequireMatch'))).toBe('pass');
    expect(verdict(judgeConnectClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 0, 0]), 'api.test.example', suffixes, 'RequireMatch'))).toBe('sni-unreadable');
    expect(verdict(judgeConnectClientHello(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), 'api.test.example', suffixes, 'RequireMatch'))).toBe('sni-unreadable');
  });
});
