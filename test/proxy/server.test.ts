// The proxy as a whole over real sockets: addressing (suffix names, absolute-form, CONNECT with
// curl), policy responses, gRPC deny trailers, admin endpoints, overload, reload and drain.
import { execFile } from 'node:child_process';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { promisify } from 'node:util';
import { request } from 'undici';
import {
  configMapDir, eventually, rawRequest, sample, scrape, startHttpsUpstream, startHttpUpstream, startTestProxy, testConfig, testPki, testService,
  viaProxy, capturingLogger, loopbackDialer, loopbackResolver, type TestProxy, type TestUpstream,
} from './helpers';
import { startProxy } from '../../src/proxy/server';

const run = promisify(execFile);
const NAMES = { 'api.test.example': '127.0.0.1' };

let upstream: TestUpstream | undefined;
let tp: TestProxy | undefined;
let cleanups: Array<() => Promise<unknown> | void> = [];

afterEach(async () => {
  await tp?.proxy.close();
  await upstream?.close();
  for (const c of cleanups) await c();
  tp = undefined;
  upstream = undefined;
  cleanups = [];
});

function apiService(port: number, extra: Record<string, unknown> = {}) {
  return testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: port }], ...extra });
}

describe('addressing', () => {
  test('a Host outside every suffix gets 400 UNKNOWN_NAME with a clear body', async () => {
    tp = await startTestProxy(testConfig(), NAMES);
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example', '/');
    expect(r.status).toBe(400);
    expect(r.headers['x-egress-error']).toBe('UNKNOWN_NAME');
    expect(r.body).toContain('<name>.<egress suffix>');
    expect(tp.resolver.calls).toEqual([]);
  });

  test.each([
    ['IP literal under the suffix', '10.0.0.1.egress.local'],
    ['invalid label', 'bad_name!.egress.local'],
    ['empty label', 'api..example.egress.local'],
  ])('%s → 400 BAD_REQUEST, nothing resolved', async (_what, host) => {
    tp = await startTestProxy(testConfig(), NAMES);
    const r = await viaProxy(tp.proxy.ports.http, host, '/');
    expect(r.status).toBe(400);
    expect(r.headers['x-egress-error']).toBe('BAD_REQUEST');
    expect(tp.resolver.calls).toEqual([]);
    expect(tp.dialer.calls).toEqual([]);
  });

  test('names are normalised: upper case and a trailing dot reach the same service', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)] }), NAMES);
    const r = await viaProxy(tp.proxy.ports.http, 'API.Test.Example.EGRESS.local.', '/');
    expect(r.status).toBe(200);
    expect(tp.resolver.calls).toEqual(['api.test.example']);
  });

  test('a second configured suffix works like the first', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0, suffixes: ['egress.local', 'out.internal'] }, admin: { port: 0 } },
      externalServices: [apiService(upstream.port)],
    }), NAMES);
    expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.out.internal', '/')).status).toBe(200);
  });

  test('absolute-form request (http_proxy) with curl -x upgrades to verified TLS', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)] }), NAMES);
    const { stdout } = await run('curl', ['-s', '-x', `http://127.0.0.1:${tp.proxy.ports.http}`, '-D', '-', 'http://api.test.example/seed-002']);
    expect(stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(stdout).toContain('hello GET /seed-002');
    expect(upstream.seen[0].servername).toBe('api.test.example');
    expect(upstream.seen[0].url).toBe('/seed-002');
  });

  test('absolute-form is refused with 400 when forwardProxy is off', async () => {
    tp = await startTestProxy(testConfig({ listeners: { bindAddress: '127.0.0.1', http: { port: 0, forwardProxy: false }, admin: { port: 0 } } }), NAMES);
    const r = await rawRequest(tp.proxy.ports.http, { path: 'http://api.test.example/', headers: { host: 'api.test.example' } });
    expect(r.status).toBe(400);
    expect(tp.resolver.calls).toEqual([]);
  });

  test('CONNECT with curl -x: the tunnel reaches the vetted address and TLS is end to end', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig(), NAMES);
    const { stdout } = await run('curl', ['-s', '--cacert', testPki().caFile, '-x', `http://127.0.0.1:${tp.proxy.ports.http}`,
      `https://api.test.example:${upstream.port}/through-tunnel`]);
    expect(stdout).toBe('hello GET /through-tunnel');
    expect(upstream.seen[0].servername).toBe('api.test.example');
    expect(tp.dialer.calls).toEqual([{ address: '127.0.0.1', port: upstream.port }]);
  });

  test('CONNECT under Deny → 403 and no dial', async () => {
    tp = await startTestProxy(testConfig({ parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny' } }), NAMES);
    const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_connect}', '-x', `http://127.0.0.1:${tp.proxy.ports.http}`,
      'https://api.test.example/']).catch((e: { stdout: string }) => e);
    expect(r.stdout).toBe('403');
    expect(tp.dialer.calls).toEqual([]);
  });
});

/**
 * Raw bytes to a listener (as given: UTF-8 Host, repeated headers); resolves with everything the
 * proxy sent before closing. Without `end` no FIN follows, for answers that come after an upstream
 * exchange and end with `Connection: close`.
 */
function rawExchange(port: number, bytes: string | Buffer, end = true): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    s.on('data', (c: Buffer) => { got += c.toString(); });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.setTimeout(10_000, () => s.destroy());
    if (end) s.end(bytes);
    else s.write(bytes);
  });
}

describe('underscores and internationalised names', () => {

  test('a Host with "_" reaches its declared service', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny', allowDeclaredServices: true },
      externalServices: [testService('tenant', 'my_tenant.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
    }), { 'my_tenant.test.example': '127.0.0.1' });
    const r = await viaProxy(tp.proxy.ports.http, 'My_Tenant.test.example.egress.local', '/underscore');
    expect(r.status).toBe(200);
    expect(tp.resolver.calls).toEqual(['my_tenant.test.example']);
    expect(upstream.seen[0].servername).toBe('my_tenant.test.example');
  });

  test('a raw UTF-8 IDN Host is matched, resolved, logged and counted as its A-label', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny', allowDeclaredServices: true },
      externalServices: [testService('books', 'xn--bcher-kva.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
    }), { 'xn--bcher-kva.test.example': '127.0.0.1' });
    const answer = await rawExchange(tp.proxy.ports.http,
      Buffer.from('GET /idn HTTP/1.1\r\nHost: Bücher.test.example.egress.local\r\nConnection: close\r\n\r\n', 'utf8'), false);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(tp.resolver.calls).toEqual(['xn--bcher-kva.test.example']);
    expect(upstream.seen[0].servername).toBe('xn--bcher-kva.test.example');
    const line = tp.logs.lines.find((l) => l.status === 200);
    expect(line?.host).toBe('xn--bcher-kva.test.example');
    const metrics = await scrape(tp.proxy.ports.admin);
    expect(metrics).toContain('hostname="xn--bcher-kva.test.example"');
    expect(metrics).not.toMatch(/hostname="[^"]*[^\x00-\x7f]/);
  });

  test('CONNECT to a name with "_" is tunnelled to the vetted address', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig(), { 'my_tenant.test.example': '127.0.0.1' });
    const answer = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: tp!.proxy.ports.http });
      let got = '';
      s.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.includes('\r\n\r\n')) s.destroy();
      });
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
      s.write(`CONNECT my_tenant.test.example:${upstream!.port} HTTP/1.1\r\nHost: my_tenant.test.example:${upstream!.port}\r\n\r\n`);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(tp.resolver.calls).toEqual(['my_tenant.test.example']);
    expect(tp.dialer.calls).toEqual([{ address: '127.0.0.1', port: upstream.port }]);
  });
});

describe('policy responses', () => {
  test('Deny → 403 EGRESS_DENIED; nothing resolved or dialled', async () => {
    tp = await startTestProxy(testConfig({ parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny' } }), NAMES);
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-error']).toBe('EGRESS_DENIED');
    expect(tp.resolver.calls).toEqual([]);
    expect(tp.dialer.calls).toEqual([]);
  });

  test('Deny with an HTTPRoute allowing /get (Linkerd seed 001): /get passes, /post is denied', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      parent: { name: 'all-egress-traffic', namespace: 'egress-test', trafficPolicy: 'Deny' },
      externalServices: [apiService(upstream.port)],
      routes: [{ kind: 'HTTPRoute', name: 'httpbin-get', namespace: 'egress-test', rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/get' } }] }] }],
    }), NAMES);
    expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/get')).status).toBe(200);
    expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/post')).status).toBe(403);
  });

  test('a Service backendRef sends plaintext to the in-cluster name (exempt from private-range refusal)', async () => {
    const internal = await startHttpUpstream((_req, res) => res.end('You cannot go there right now'));
    cleanups.push(() => internal.close());
    tp = await startTestProxy(testConfig({
      addressPolicy: { allowCidrs: [] },
      routes: [{
        kind: 'HTTPRoute',
        name: 'unencrypted-http',
        namespace: 'egress-test',
        rules: [{ backendRefs: [{ kind: 'Service', name: 'internal-egress', namespace: 'egress-test', port: internal.port }] }],
      }],
    }), { 'internal-egress.egress-test.svc.cluster.local': '127.0.0.1' });
    const r = await viaProxy(tp.proxy.ports.http, 'google.com.egress.local', '/');
    expect(r.body).toBe('You cannot go there right now');
    expect(tp.resolver.calls).toEqual(['internal-egress.egress-test.svc.cluster.local']);
    expect(internal.seen[0].headers.host).toBe('google.com');
  });

  test('RequestRedirect filter answers with Location and never dials', async () => {
    tp = await startTestProxy(testConfig({
      routes: [{
        kind: 'HTTPRoute',
        name: 'moved',
        namespace: 'n',
        hostnames: ['old.test.example'],
        rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'new.test.example', statusCode: 301 } }] }],
      }],
    }), NAMES);
    const r = await viaProxy(tp.proxy.ports.http, 'old.test.example.egress.local', '/a?b=1');
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('http://new.test.example/a?b=1');
    expect(tp.dialer.calls).toEqual([]);
  });

  test('request and response header modifiers apply', async () => {
    upstream = await startHttpsUpstream((req, res) => {
      res.setHeader('server', 'upstream');
      res.end(String(req.headers['x-added']));
    });
    tp = await startTestProxy(testConfig({
      externalServices: [apiService(upstream.port)],
      routes: [{
        kind: 'HTTPRoute',
        name: 'mods',
        namespace: 'n',
        rules: [{
          filters: [
            { type: 'RequestHeaderModifier', headerModifier: { set: [{ name: 'x-added', value: 'by-route' }], add: [], remove: ['x-remove'] } },
            { type: 'ResponseHeaderModifier', headerModifier: { set: [], add: [], remove: ['server'] } },
          ],
        }],
      }],
    }), NAMES);
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/', { headers: { 'x-remove': 'gone' } });
    expect(r.body).toBe('by-route');
    expect(r.headers.server).toBeUndefined();
    expect(upstream.seen[0].headers['x-remove']).toBeUndefined();
  });

  test('gRPC denied: HTTP 200 with grpc-status 7 in a trailers-only response', async () => {
    tp = await startTestProxy(testConfig({ parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny' } }), NAMES);
    const client = http2.connect(`http://127.0.0.1:${tp.proxy.ports.http}`);
    cleanups.push(() => client.destroy());
    const result = await new Promise<{ headers: http2.IncomingHttpHeaders; flags: number; ended: boolean }>((resolve, reject) => {
      const stream = client.request({
        ':method': 'POST',
        ':path': '/grpc.test.Echo/Say',
        ':authority': 'api.test.example.egress.local',
        'content-type': 'application/grpc',
        'te': 'trailers',
      });
      stream.on('response', (headers, flags) => {
        stream.on('end', () => resolve({ headers, flags, ended: true }));
        stream.resume();
      });
      stream.on('error', reject);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    expect(result.headers[':status']).toBe(200);
    expect(result.headers['grpc-status']).toBe('7');
    expect(result.headers['x-egress-error']).toBe('EGRESS_DENIED');
    // END_STREAM on the HEADERS frame: a trailers-only response.
    // eslint-disable-next-line no-bitwise
    expect(result.flags & http2.constants.NGHTTP2_FLAG_END_STREAM).toBeTruthy();
    const metrics = await scrape(tp.proxy.ports.admin);
    expect(metrics).toMatch(/outbound_grpc_route_request_statuses_total\{[^}]*route_name="grpc-egress-deny"[^}]*grpc_status="PERMISSION_DENIED"[^}]*\} 1/);
  });

  test('over maxConcurrent → 503 OVERLOADED while one request is in flight', async () => {
    let release: () => void = () => undefined;
    upstream = await startHttpsUpstream((_req, res) => {
      release = () => res.end('slow');
    });
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)], limits: { maxConcurrent: 1 } }), NAMES);
    const slow = viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/slow');
    await eventually(() => upstream!.requests() === 1, 5_000, 'slow request at upstream');
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/fast');
    expect(r.status).toBe(503);
    expect(r.headers['x-egress-error']).toBe('OVERLOADED');
    release();
    expect((await slow).body).toBe('slow');
  });
});

describe('hostile clients', () => {
  test('slowloris: headers not complete within requestHeadersMs → 408 and closed', async () => {
    tp = await startTestProxy(testConfig({ timeouts: { requestHeadersMs: 200 } }), NAMES);
    const answer = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: tp!.proxy.ports.http });
      let got = '';
      s.on('data', (c: Buffer) => { got += c.toString(); });
      s.on('close', () => resolve(got));
      s.on('error', () => undefined);
      s.write('GET / HTTP/1.1\r\nhost: api.test.example.egress.local\r\nx-slow: ');
      s.setTimeout(10_000, () => s.destroy());
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  test('oversized headers → 431; garbage → 400; a broken h2 preface → closed; the proxy keeps serving', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)], limits: { maxHeaderBytes: 2048 } }), NAMES);
    const raw = (bytes: string | Buffer) => new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: tp!.proxy.ports.http });
      let got = '';
      s.on('data', (c: Buffer) => { got += c.toString(); });
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
      s.end(bytes);
    });
    expect(await raw(`GET / HTTP/1.1\r\nhost: api.test.example.egress.local\r\nx-big: ${'a'.repeat(4096)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431/);
    expect(await raw('\x00\x01\x02 not http at all\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff garbage frames')).not.toContain('hello');
    expect(await raw(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10]))).toMatch(/^HTTP\/1\.1 400|^$/);
    expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/still-alive')).status).toBe(200);
  });
});

describe('ambiguous paths', () => {
  const GET_ONLY = [{ kind: 'HTTPRoute', name: 'httpbin-get', namespace: 'egress-test', rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/get' } }] }] }];
  const DENY = { name: 'all-egress-traffic', namespace: 'egress-test', trafficPolicy: 'Deny' };
  const listeners = (ambiguousPaths?: string) => ({
    bindAddress: '127.0.0.1', http: { port: 0, suffixes: ['egress.local'], forwardProxy: true, ...(ambiguousPaths ? { ambiguousPaths } : {}) }, admin: { port: 0 },
  });
  /** The request line as written (undici and fetch would normalise the path). */
  const rawGet = (port: number, path: string) => new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    s.on('data', (c: Buffer) => { got += c.toString(); });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.setTimeout(10_000, () => s.destroy());
    s.write(`GET ${path} HTTP/1.1\r\nHost: api.test.example.egress.local\r\nConnection: close\r\n\r\n`);
  });

  test.each(['/get/..%2fip', '/get/..%2Fip', '/get/%2e%2e%2fip', '/get/%2e%2e/ip', '/get/..;/ip', '/get/..%5cip', '/get/..\\ip'])(
    'default (Reject), a PathPrefix /get route: %s → 400 BAD_REQUEST, nothing sent upstream', async (path) => {
      upstream = await startHttpsUpstream();
      const config = testConfig({ listeners: listeners(), parent: DENY, externalServices: [apiService(upstream.port)], routes: GET_ONLY });
      tp = await startTestProxy(config, NAMES);
      const answer = await rawGet(tp.proxy.ports.http, path);
      expect(answer).toMatch(/^HTTP\/1\.1 400/);
      expect(answer.toLowerCase()).toContain('x-egress-error: bad_request');
      expect(upstream.requests()).toBe(0);
      expect(tp.dialer.calls).toEqual([]);
      const line = tp.logs.lines.find((l) => l.error === 'BAD_REQUEST');
      expect(String(line?.errorDetail)).toContain('ambiguous path');
      expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/get/ok')).status).toBe(200);
    });

  test('Reject where no route looks at the path: forwarded as received', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({ listeners: listeners('Reject'), externalServices: [apiService(upstream.port)] }), NAMES);
    expect(await rawGet(tp.proxy.ports.http, '/files/a%2Fb')).toMatch(/^HTTP\/1\.1 200/);
    expect(upstream.seen.map((r) => r.url)).toEqual(['/files/a%2Fb']);
  });

  test('UnescapeAndForward: the decoded path is matched and forwarded (denied outside /get, sent as decoded inside)', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      listeners: listeners('UnescapeAndForward'), parent: DENY, externalServices: [apiService(upstream.port)], routes: GET_ONLY,
    }), NAMES);
    for (const path of ['/get/..%2fip', '/get/%2e%2e%2fip', '/get/..;/ip']) expect(await rawGet(tp.proxy.ports.http, path)).toMatch(/^HTTP\/1\.1 403/);
    expect(upstream.requests()).toBe(0);
    expect(await rawGet(tp.proxy.ports.http, '/get/a%2Fb/..%2fc?q=%2F')).toMatch(/^HTTP\/1\.1 200/);
    expect(upstream.seen.map((r) => r.url)).toEqual(['/get/a/c?q=%2F']);
  });

  test('KeepUnchanged: matched and forwarded as received', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      listeners: listeners('KeepUnchanged'), parent: DENY, externalServices: [apiService(upstream.port)], routes: GET_ONLY,
    }), NAMES);
    expect(await rawGet(tp.proxy.ports.http, '/get/..%2fip')).toMatch(/^HTTP\/1\.1 200/);
    expect(await rawGet(tp.proxy.ports.http, '/other/..%2fget')).toMatch(/^HTTP\/1\.1 403/);
    expect(upstream.seen.map((r) => r.url)).toEqual(['/get/..%2fip']);
  });
});

describe('Host header', () => {

  test('two Host lines → 400 BAD_REQUEST with the error header, whichever comes first; nothing resolved or dialled', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)] }), { ...NAMES, 'evil.example': '127.0.0.1' });
    for (const [first, second] of [['api.test.example.egress.local', 'evil.example.egress.local'], ['evil.example.egress.local', 'api.test.example.egress.local']]) {
      const answer = await rawExchange(tp.proxy.ports.http, `GET /get HTTP/1.1\r\nHost: ${first}\r\nHost: ${second}\r\nConnection: close\r\n\r\n`);
      expect(answer).toMatch(/^HTTP\/1\.1 400/);
      expect(answer.toLowerCase()).toContain('x-egress-error: bad_request');
    }
    expect(tp.resolver.calls).toEqual([]);
    expect(tp.dialer.calls).toEqual([]);
    expect(upstream.requests()).toBe(0);
    expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/one-host')).status).toBe(200);
  });

  test('absolute-form whose Host names another server → 400; a matching Host goes through', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)] }), NAMES);
    const bad = await rawRequest(tp.proxy.ports.http, { path: 'http://api.test.example/x', headers: { host: 'evil.example' } });
    expect(bad.status).toBe(400);
    expect(bad.headers['x-egress-error']).toBe('BAD_REQUEST');
    expect(tp.resolver.calls).toEqual([]);
    const good = await rawRequest(tp.proxy.ports.http, { path: 'http://api.test.example/x', headers: { host: 'api.test.example' } });
    expect(good.status).toBe(200);
  });

  test('HTTP/2: a host header that differs from :authority → 400', async () => {
    tp = await startTestProxy(testConfig(), NAMES);
    const session = http2.connect(`http://127.0.0.1:${tp.proxy.ports.http}`);
    cleanups.push(() => { session.destroy(); });
    const status = await new Promise<{ status: number; code: unknown }>((resolve, reject) => {
      const stream = session.request({ ':path': '/', ':authority': 'api.test.example.egress.local', 'host': 'evil.example.egress.local' });
      stream.on('response', (h) => resolve({ status: Number(h[':status']), code: h['x-egress-error'] }));
      stream.on('error', reject);
      stream.end();
    });
    expect(status).toEqual({ status: 400, code: 'BAD_REQUEST' });
    expect(tp.resolver.calls).toEqual([]);
  });

  test('CONNECT with two Host lines → 400, no dial', async () => {
    tp = await startTestProxy(testConfig(), NAMES);
    const answer = await rawExchange(tp.proxy.ports.http,
      'CONNECT api.test.example:443 HTTP/1.1\r\nHost: api.test.example:443\r\nHost: evil.example:443\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(tp.dialer.calls).toEqual([]);
  });
});

describe('client going away', () => {
  test('a client that disconnects mid-request aborts the upstream exchange and is logged CLIENT_CLOSED', async () => {
    let upstreamClosed = false;
    upstream = await startHttpsUpstream((req) => {
      req.socket.on('close', () => { upstreamClosed = true; });
    });
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)] }), NAMES);
    const controller = new AbortController();
    const pending = request(`http://127.0.0.1:${tp.proxy.ports.http}/hang`, {
      headers: { host: 'api.test.example.egress.local' }, signal: controller.signal,
    }).catch((e: Error) => e);
    await eventually(() => upstream!.requests() === 1, 5_000, 'request at upstream');
    controller.abort();
    await pending;
    await eventually(() => tp!.logs.lines.some((l) => l.msg === 'request'), 5_000, 'access log');
    const line = tp.logs.lines.find((l) => l.msg === 'request')!;
    expect(line.error).toBe('CLIENT_CLOSED');
    expect(line.status).toBe(499);
    await eventually(() => upstreamClosed, 5_000, 'upstream exchange aborted');
  });
});

describe('admin', () => {
  test('/live, /ready and /config', async () => {
    tp = await startTestProxy(testConfig(), NAMES);
    const base = `http://127.0.0.1:${tp.proxy.ports.admin}`;
    expect((await request(`${base}/live`)).statusCode).toBe(200);
    expect((await request(`${base}/ready`)).statusCode).toBe(200);
    const cfg = await (await request(`${base}/config`)).body.json() as { generation: number; config: { gateway: { name: string } } };
    expect(cfg.generation).toBe(1);
    expect(cfg.config.gateway.name).toBe('egress-gateway');
    expect((await request(`${base}/nope`)).statusCode).toBe(404);
  });

  test('a port already in use rejects startProxy and releases the ports bound so far', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const busy = (blocker.address() as net.AddressInfo).port;
    const cfg = testConfig({ listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: busy } } });
    const { logger, logs } = capturingLogger();
    await expect(startProxy({ config: cfg, logger, resolver: loopbackResolver({}).resolve, dial: loopbackDialer().dial })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(logs.lines.some((l) => l.event === 'stopped')).toBe(true);
  });

  test('an invalid config rejects startProxy with every problem and binds nothing', async () => {
    const bad = testConfig({ parent: { name: 'p', namespace: 'n', trafficPolicy: 'Sometimes' }, timeouts: { connectMs: 0 } });
    await expect(startProxy({ config: bad })).rejects.toMatchObject({
      name: 'ConfigError',
      problems: [
        expect.objectContaining({ path: '$.parent.trafficPolicy', value: 'Sometimes' }),
        expect.objectContaining({ path: '$.timeouts.connectMs', value: 0 }),
      ],
    });
  });
});

describe('reload', () => {
  test('a ConfigMap ..data swap is picked up; a bad file keeps the last good config and is counted', async () => {
    upstream = await startHttpsUpstream();
    const cm = configMapDir();
    const allow = testConfig({ externalServices: [apiService(upstream.port)] });
    cm.write(allow);
    const { logger, logs } = capturingLogger();
    const resolver = loopbackResolver(NAMES);
    const proxy = await startProxy({ configPath: cm.file, resolver: resolver.resolve, dial: loopbackDialer().dial, logger, pollIntervalMs: 100 });
    cleanups.push(() => proxy.close());
    const host = 'api.test.example.egress.local';
    expect((await viaProxy(proxy.ports.http, host, '/')).status).toBe(200);

    // Good change: Deny.
    cm.write({ ...allow, parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny' } });
    await eventually(async () => (await viaProxy(proxy.ports.http, host, '/')).status === 403, 5_000, 'Deny to apply');
    let m = await scrape(proxy.ports.admin);
    expect(sample(m, 'egress_config_reload_successes_total', {})).toBe(2);
    expect(sample(m, 'egress_config_reload_failures_total', {})).toBe(0);
    expect(sample(m, 'egress_config_last_reload_success_timestamp_seconds', {})).toBeGreaterThan(0);

    // Bad change: every problem logged, old (Deny) config kept.
    cm.write({ ...allow, parent: { name: 'p', namespace: 'n', trafficPolicy: 'Open' }, limits: { maxConcurrent: -1 } });
    await eventually(async () => sample(await scrape(proxy.ports.admin), 'egress_config_reload_failures_total', {}) === 1, 5_000, 'failure counted');
    expect((await viaProxy(proxy.ports.http, host, '/')).status).toBe(403);
    const failure = logs.lines.find((l) => l.event === 'config-reload-failed') as { problems: Array<{ path: string }> };
    expect(failure.problems.map((p) => p.path)).toEqual(['$.parent.trafficPolicy', '$.limits.maxConcurrent']);
    expect(proxy.config().parent.trafficPolicy).toBe('Deny');

    // And back to a good one.
    cm.write(allow);
    await eventually(async () => (await viaProxy(proxy.ports.http, host, '/')).status === 200, 5_000, 'Allow to apply');
    m = await scrape(proxy.ports.admin);
    expect(sample(m, 'egress_config_reload_successes_total', {})).toBe(3);
  });

  test('reload() reports unchanged content without counting', async () => {
    const cm = configMapDir();
    cm.write(testConfig());
    const proxy = await startProxy({
      configPath: cm.file, resolver: loopbackResolver({}).resolve, dial: loopbackDialer().dial, logger: capturingLogger().logger, watch: false,
    });
    cleanups.push(() => proxy.close());
    const r = await proxy.reload();
    expect(r).toMatchObject({ ok: true, unchanged: true, generation: 1 });
  });
});

describe('drain', () => {
  test('drain(): not ready at once, in-flight request completes, new connections refused', async () => {
    let finish: () => void = () => undefined;
    upstream = await startHttpsUpstream((_req, res) => {
      finish = () => res.end('finished');
    });
    tp = await startTestProxy(testConfig({ externalServices: [apiService(upstream.port)] }), NAMES);
    const { proxy } = tp;
    const inflight = viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/slow');
    await eventually(() => upstream!.requests() === 1, 5_000, 'request at upstream');
    const drained = proxy.drain(10_000, 0);
    expect(proxy.isReady()).toBe(false);
    expect((await request(`http://127.0.0.1:${proxy.ports.admin}/ready`)).statusCode).toBe(503);
    await eventually(() => tp!.logs.lines.some((l) => l.event === 'listeners-closed'), 5_000, 'listeners closed');
    await expect(viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/new')).rejects.toThrow(/ECONNREFUSED/);
    finish();
    const done = await inflight;
    expect(done.body).toBe('finished');
    expect(done.headers.connection).toBe('close');
    await drained;
    expect(proxy.inflight()).toBe(0);
  });

  test('during the drain delay new connections are accepted and served with Connection: close, readiness failing', async () => {
    upstream = await startHttpUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [plainService(upstream.port)] }), NAMES);
    const { proxy } = tp;
    const drained = proxy.drain(5_000, 60_000);
    expect((await request(`http://127.0.0.1:${proxy.ports.admin}/ready`)).statusCode).toBe(503);
    const conns = await Promise.all(Array.from({ length: 20 }, () => rawConnect(proxy.ports.http, 'GET /late HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n')));
    cleanups.push(() => conns.forEach((c) => c.socket.destroy()));
    // The proxy closes each connection after its response.
    for (const r of await Promise.all(conns.map((c) => c.closed))) {
      expect(r.data).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(r.data).toMatch(/\r\nconnection: close\r\n/i);
      expect(r.data).toContain('hello GET /late');
    }
    expect(tp.logs.lines.some((l) => l.event === 'listeners-closed')).toBe(false);
    await proxy.close();
    await drained;
  });

  test('a keep-alive connection idle when the drain starts gets Connection: close on its next response', async () => {
    upstream = await startHttpUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [plainService(upstream.port)] }), NAMES);
    const c = await rawConnect(tp.proxy.ports.http, 'GET /one HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n');
    cleanups.push(() => void c.socket.destroy());
    const seen: string[] = [];
    c.socket.on('data', (b: Buffer) => seen.push(b.toString('latin1')));
    await eventually(() => seen.join('').includes('hello GET /one'), 5_000, 'first response');
    expect(seen.join('')).toMatch(/\r\nconnection: keep-alive\r\n/i);
    const drained = tp.proxy.drain(5_000, 60_000);
    c.socket.write('GET /two HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n');
    const closed = await c.closed;
    const second = closed.data.slice(closed.data.indexOf('HTTP/1.1', 10));
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(second).toMatch(/\r\nconnection: close\r\n/i);
    expect(second).toContain('hello GET /two');
    await tp.proxy.close();
    await drained;
  });

  test('a connection accepted before the listeners close is served when its request comes after', async () => {
    upstream = await startHttpUpstream();
    tp = await startTestProxy(testConfig({ externalServices: [plainService(upstream.port)] }), NAMES);
    const c = await rawConnect(tp.proxy.ports.http);
    cleanups.push(() => void c.socket.destroy());
    await eventually(async () => sample(await scrape(tp!.proxy.ports.admin), 'egress_client_connections', {}) === 1, 5_000, 'connection accepted');
    const drained = tp.proxy.drain(5_000, 0);
    await eventually(() => tp!.logs.lines.some((l) => l.event === 'listeners-closed'), 5_000, 'listeners closed');
    c.socket.write('GET /after HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n');
    const closed = await c.closed;
    expect(closed.data).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(closed.data).toMatch(/\r\nconnection: close\r\n/i);
    expect(closed.data).toContain('hello GET /after');
    await drained;
    expect(tp.logs.lines.some((l) => l.event === 'drain-cut')).toBe(false);
  });

  test('pipelined requests received before the drain are all answered, in order', async () => {
    // /p3 answers last, after the first two responses are out: it is then the last in flight.
    upstream = await startHttpUpstream((req, res) => {
      setTimeout(() => res.end(`done ${req.url}`), req.url === '/p3' ? 800 : 200);
    });
    tp = await startTestProxy(testConfig({ externalServices: [plainService(upstream.port)] }), NAMES);
    const head = (path: string) => `GET ${path} HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n`;
    const c = await rawConnect(tp.proxy.ports.http, head('/p1') + head('/p2') + head('/p3'));
    cleanups.push(() => void c.socket.destroy());
    await eventually(() => upstream!.requests() >= 1, 5_000, 'first request at upstream');
    const drained = tp.proxy.drain(5_000, 0);
    let errored: string | undefined;
    c.socket.on('error', (err: NodeJS.ErrnoException) => {
      errored = err.code;
    });
    const closed = await c.closed;
    expect(errored).toBeUndefined();
    const statuses = closed.data.match(/HTTP\/1\.1 \d{3}/g);
    expect(statuses).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    expect(closed.data.match(/done \/p\d/g)).toEqual(['done /p1', 'done /p2', 'done /p3']);
    // Only the last response closes the connection; the ones before it keep it for what follows.
    expect(closed.data.match(/\r\nconnection: [a-z-]+/gi)!.map((h) => h.slice(2).toLowerCase())).toEqual([
      'connection: keep-alive', 'connection: keep-alive', 'connection: close',
    ]);
    await drained;
  });

  test('at the end of the grace period: an unanswered request gets 503 DRAINING with Connection: close, a tunnel is closed', async () => {
    upstream = await startHttpUpstream((req, res) => {
      if (req.url === '/hang') return; // never answers
      res.end('ok');
    });
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => echo.close(() => r())));
    const echoPort = (echo.address() as net.AddressInfo).port;
    tp = await startTestProxy(testConfig({ externalServices: [plainService(upstream.port)] }), NAMES);
    const { proxy } = tp;
    const hanging = viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/hang');
    const tunnel = await rawConnect(proxy.ports.http, `CONNECT api.test.example:${echoPort} HTTP/1.1\r\nHost: api.test.example:${echoPort}\r\n\r\n`);
    cleanups.push(() => void tunnel.socket.destroy());
    const got: string[] = [];
    tunnel.socket.on('data', (b: Buffer) => got.push(b.toString('latin1')));
    await eventually(() => got.join('').startsWith('HTTP/1.1 200'), 5_000, 'tunnel established');
    await eventually(() => upstream!.requests() === 1, 5_000, 'hanging request at upstream');

    const drained = proxy.drain(1_000, 0);
    await eventually(() => tp!.logs.lines.some((l) => l.event === 'listeners-closed'), 5_000, 'listeners closed');
    // Within the grace period the tunnel still carries bytes both ways.
    tunnel.socket.write('ping');
    await eventually(() => got.join('').endsWith('ping'), 5_000, 'echo through the tunnel while draining');

    const answered = await hanging;
    expect(answered.status).toBe(503);
    expect(answered.headers['x-egress-error']).toBe('DRAINING');
    expect(answered.headers.connection).toBe('close');
    await tunnel.closed;
    await drained;
    expect(tp.logs.lines.find((l) => l.event === 'drain-cut')).toMatchObject({ requests: 1, tunnels: 1 });
    const access = tp.logs.lines.find((l) => l.msg === 'request' && l.status === 503);
    expect(access).toMatchObject({ error: 'DRAINING' });
  });

  test('HTTP/2: the session gets GOAWAY, the stream in flight completes', async () => {
    let finish: () => void = () => undefined;
    upstream = await startHttpUpstream((_req, res) => {
      finish = () => res.end('h2 finished');
    });
    tp = await startTestProxy(testConfig({ externalServices: [plainService(upstream.port)] }), NAMES);
    const client = http2.connect(`http://127.0.0.1:${tp.proxy.ports.http}`);
    cleanups.push(() => client.destroy());
    let goaway = false;
    client.on('goaway', () => {
      goaway = true;
    });
    const stream = client.request({ ':path': '/h2', ':authority': 'api.test.example.egress.local' });
    const body = new Promise<{ status: number; text: string }>((resolve, reject) => {
      let status = 0;
      let text = '';
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.on('data', (c: Buffer) => {
        text += c.toString();
      });
      stream.on('end', () => resolve({ status, text }));
      stream.on('error', reject);
    });
    stream.end();
    await eventually(() => upstream!.requests() === 1, 5_000, 'stream at upstream');
    const drained = tp.proxy.drain(5_000, 0);
    await eventually(() => goaway, 5_000, 'GOAWAY');
    finish();
    expect(await body).toEqual({ status: 200, text: 'h2 finished' });
    await drained;
  });
});

function plainService(port: number) {
  return testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: port }], tls: { enabled: false } });
}

/** A raw client connection to the proxy; `closed` settles with the bytes received when the proxy closes it. */
interface RawConn {
  readonly socket: net.Socket;
  readonly openedAt: number;
  readonly closed: Promise<{ data: string; afterMs: number }>;
}

function rawConnect(port: number, send?: string): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let openedAt = 0;
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<{ data: string; afterMs: number }>((r) => {
      socket.on('close', () => r({ data: Buffer.concat(chunks).toString('latin1'), afterMs: performance.now() - openedAt }));
    });
    socket.once('error', (err) => {
      if (openedAt === 0) reject(err);
    });
    socket.once('connect', () => {
      openedAt = performance.now();
      if (send !== undefined) socket.write(send);
      resolve({ socket, openedAt, closed });
    });
  });
}

describe('client connections', () => {
  test('a connection that sends nothing, "PRI" and stops, or half a request head is closed within requestHeadersMs of accept', async () => {
    tp = await startTestProxy(testConfig({ timeouts: { requestHeadersMs: 400 } }), NAMES);
    const port = tp.proxy.ports.http;
    const silent = await Promise.all(Array.from({ length: 40 }, () => rawConnect(port)));
    const pri = await Promise.all(Array.from({ length: 20 }, () => rawConnect(port, 'PRI')));
    const h2Preface = await Promise.all(Array.from({ length: 10 }, () => rawConnect(port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')));
    const halfHead = await Promise.all(Array.from({ length: 10 }, () => rawConnect(port, 'GET / HTTP/1.1\r\nHost: api.test.example.egress.local\r\n')));
    const all = [...silent, ...pri, ...h2Preface, ...halfHead];
    cleanups.push(() => all.forEach((c) => c.socket.destroy()));
    const results = await Promise.all(all.map((c) => c.closed));
    // Bounded from below by the timeout itself (a little slack for timer granularity)...
    for (const r of results) expect(r.afterMs).toBeGreaterThanOrEqual(350);
    // ...and closed by the proxy (the test never closes them before this point).
    for (const r of results.slice(0, 60)) expect(r.data).toBe('');
    for (const r of results.slice(70)) expect(r.data).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(sample(await scrape(tp.proxy.ports.admin), 'egress_client_request_headers_timeouts_total', {})).toBe(80);
    await eventually(async () => sample(await scrape(tp!.proxy.ports.admin), 'egress_client_connections', {}) === 0, 5_000, 'gauge back to 0');
  });

  test('TLS passthrough listener: nothing or part of a ClientHello is closed after requestHeadersMs, counted, and holds no request slot', async () => {
    tp = await startTestProxy(testConfig({
      listeners: { bindAddress: '127.0.0.1', http: { port: 0, suffixes: ['egress.local'] }, tls: { port: 0, parentPort: 443 }, admin: { port: 0 } },
      timeouts: { requestHeadersMs: 2_000 },
      limits: { maxConcurrent: 5 },
    }), NAMES);
    const port = tp.proxy.ports.tls!;
    const silent = await Promise.all(Array.from({ length: 10 }, () => rawConnect(port)));
    // A TLS record header announcing a 512-byte handshake, then only its first bytes.
    const partial = await Promise.all(Array.from({ length: 5 }, () => rawConnect(port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')));
    const all = [...silent, ...partial];
    cleanups.push(() => all.forEach((c) => c.socket.destroy()));
    await eventually(async () => sample(await scrape(tp!.proxy.ports.admin), 'egress_client_connections', {}) === 15, 5_000, '15 accepted');
    // 15 connections wait for a ClientHello, maxConcurrent is 5: requests are still admitted.
    expect(tp.proxy.inflight()).toBe(0);
    const r = await viaProxy(tp.proxy.ports.http, 'unknown.example', '/');
    expect(r.status).toBe(400);
    expect(r.headers['x-egress-error']).toBe('UNKNOWN_NAME');
    const results = await Promise.all(all.map((c) => c.closed));
    for (const x of results) {
      expect(x.afterMs).toBeGreaterThanOrEqual(1_950);
      expect(x.data).toBe('');
    }
    expect(sample(await scrape(tp.proxy.ports.admin), 'egress_client_request_headers_timeouts_total', {})).toBe(15);
    await eventually(async () => sample(await scrape(tp!.proxy.ports.admin), 'egress_client_connections', {}) === 0, 5_000, 'gauge back to 0');
  });

  test('the accept bound ends with the first request: a keep-alive connection may idle past requestHeadersMs', async () => {
    upstream = await startHttpUpstream();
    tp = await startTestProxy(testConfig({
      externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }], tls: { enabled: false } })],
      timeouts: { requestHeadersMs: 300, clientKeepAliveMs: 5_000 },
    }), NAMES);
    const req = 'GET /one HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n';
    const c = await rawConnect(tp.proxy.ports.http, req);
    cleanups.push(() => void c.socket.destroy());
    const seen: string[] = [];
    c.socket.on('data', (b: Buffer) => seen.push(b.toString('latin1')));
    await eventually(() => seen.join('').includes('hello GET /one'), 5_000, 'first response');
    await new Promise((r) => setTimeout(r, 800));
    expect(c.socket.destroyed).toBe(false);
    c.socket.write('GET /two HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n');
    await eventually(() => seen.join('').includes('hello GET /two'), 5_000, 'second response on the same connection');
    expect(upstream.requests()).toBe(2);
  });

  test('timeouts.clientKeepAliveMs closes an idle keep-alive connection', async () => {
    upstream = await startHttpUpstream();
    tp = await startTestProxy(testConfig({
      externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }], tls: { enabled: false } })],
      timeouts: { requestHeadersMs: 20_000, clientKeepAliveMs: 300 },
    }), NAMES);
    const c = await rawConnect(tp.proxy.ports.http, 'GET / HTTP/1.1\r\nHost: api.test.example.egress.local\r\n\r\n');
    cleanups.push(() => void c.socket.destroy());
    const closed = await c.closed;
    expect(closed.data).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(closed.data).toMatch(/\r\nkeep-alive: timeout=/i);
    expect(closed.afterMs).toBeGreaterThanOrEqual(300);
    expect(closed.afterMs).toBeLessThan(10_000);
  });

  test('limits.maxClientConnections: connections over the limit are closed at accept, counted and logged once', async () => {
    tp = await startTestProxy(testConfig({ limits: { maxClientConnections: 50 }, timeouts: { requestHeadersMs: 20_000 } }), NAMES);
    const port = tp.proxy.ports.http;
    const conns = await Promise.all(Array.from({ length: 200 }, () => rawConnect(port)));
    cleanups.push(() => conns.forEach((c) => c.socket.destroy()));
    let closedByProxy = 0;
    for (const c of conns) void c.closed.then(() => closedByProxy++);
    await eventually(() => closedByProxy === 150, 10_000, '150 connections closed by the proxy');
    const metrics = await scrape(tp.proxy.ports.admin);
    expect(sample(metrics, 'egress_client_connections_refused_total', { listener: 'http' })).toBe(150);
    expect(sample(metrics, 'egress_client_connections', {})).toBe(50);
    expect(tp.logs.lines.filter((l) => l.event === 'connection-limit')).toEqual([
      expect.objectContaining({ limit: 50, open: 50, listener: 'http' }),
    ]);
    // The open ones are still served, and once they close the limit clears.
    const open = conns.filter((c) => !c.socket.destroyed);
    expect(open).toHaveLength(50);
    for (const c of open) c.socket.destroy();
    await eventually(() => tp!.logs.lines.some((l) => l.event === 'connection-limit-cleared'), 5_000, 'limit cleared log');
    expect(tp.logs.lines.find((l) => l.event === 'connection-limit-cleared')).toMatchObject({ refused: 150 });
    const after = await viaProxy(port, 'unknown.example', '/');
    expect(after.status).toBe(400);
  });
});
