// Forwarding over real sockets: verified TLS origination, SNI and Host, keep-alive reuse, hop-by-hop
// hygiene, injected headers, filters, streaming of large bodies both ways, timeouts and failures.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Agent, request } from 'undici';
import {
  rawRequest, startHttpsUpstream, startHttpUpstream, startSilentServer, startTestProxy, testConfig, testPki, testService, viaProxy,
  type TestProxy, type TestUpstream,
} from './helpers';

const NAMES = { 'api.test.example': '127.0.0.1', 'other.test.example': '127.0.0.1' };

let upstream: TestUpstream | undefined;
let extra: Array<{ close(): Promise<void> }> = [];
let tp: TestProxy | undefined;

afterEach(async () => {
  await tp?.proxy.close();
  await upstream?.close();
  for (const e of extra) await e.close();
  tp = undefined;
  upstream = undefined;
  extra = [];
});

/** A proxy whose service api.test.example points at the given upstream port over verified TLS. */
async function proxyTo(port: number, svc: Record<string, unknown> = {}, cfg: Record<string, unknown> = {}, tls: Record<string, unknown> = {}) {
  tp = await startTestProxy(testConfig({
    externalServices: [testService('api', 'api.test.example', {
      ports: [{ port: 80, targetPort: port }], tls: { caFile: testPki().caFile, ...tls }, ...svc,
    })],
    ...cfg,
  }), NAMES);
  return tp;
}

describe('verified TLS origination', () => {
  test('forwards over TLS with SNI and Host set to the real host', async () => {
    upstream = await startHttpsUpstream();
    const { proxy } = await proxyTo(0 || (upstream.port));
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/get?x=1');
    expect(r.status).toBe(200);
    expect(r.body).toBe('hello GET /get?x=1');
    expect(upstream.seen[0].servername).toBe('api.test.example');
    expect(upstream.seen[0].headers.host).toBe(`api.test.example:${upstream.port}`);
  });

  test('untrusted CA → 502 TLS_FAILED and the upstream saw no request', async () => {
    const p = testPki();
    upstream = await startHttpsUpstream(undefined, { cert: p.untrustedCert, key: p.untrustedKey });
    const { proxy } = await proxyTo(upstream.port);
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(502);
    expect(r.headers['x-egress-error']).toBe('TLS_FAILED');
    expect(upstream.connections()).toBeGreaterThan(0);
    expect(upstream.requests()).toBe(0);
  });

  test('certificate for another name → 502 TLS_FAILED and no request', async () => {
    const p = testPki();
    upstream = await startHttpsUpstream(undefined, { cert: p.wrongNameCert, key: p.wrongNameKey });
    const { proxy } = await proxyTo(upstream.port);
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(502);
    expect(r.headers['x-egress-error']).toBe('TLS_FAILED');
    expect(upstream.requests()).toBe(0);
  });

  test('an inline caPem is trusted like a caFile; without either, the test CA is not trusted', async () => {
    upstream = await startHttpsUpstream();
    tp = await startTestProxy(testConfig({
      defaultTls: {},
      externalServices: [{ name: 'api', host: 'api.test.example', ports: [{ port: 80, targetPort: upstream.port }], tls: { caPem: testPki().caPem } }],
    }), NAMES);
    expect((await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
    await tp.proxy.close();
    tp = await startTestProxy(testConfig({
      defaultTls: {},
      externalServices: [{ name: 'api', host: 'api.test.example', ports: [{ port: 80, targetPort: upstream.port }] }],
    }), NAMES);
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.headers['x-egress-error']).toBe('TLS_FAILED');
  });

  test('SkipSAN accepts a wrong-name certificate from the trusted CA', async () => {
    const p = testPki();
    upstream = await startHttpsUpstream(undefined, { cert: p.wrongNameCert, key: p.wrongNameKey });
    const { proxy } = await proxyTo(upstream.port, {}, {}, { mode: 'SkipSAN' });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(200);
  });

  test('SkipCA still checks the name: untrusted CA with the right name passes, wrong name fails', async () => {
    const p = testPki();
    upstream = await startHttpsUpstream(undefined, { cert: p.untrustedCert, key: p.untrustedKey });
    const { proxy } = await proxyTo(upstream.port, {}, {}, { mode: 'SkipCA' });
    expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
    await proxy.close();
    await upstream.close();
    upstream = await startHttpsUpstream(undefined, { cert: p.wrongNameCert, key: p.wrongNameKey });
    const second = await proxyTo(upstream.port, {}, {}, { mode: 'SkipCA' });
    const r = await viaProxy(second.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(502);
    expect(r.headers['x-egress-error']).toBe('TLS_FAILED');
  });

  test('subjectAltNames Prefix match is enough; a non-matching list fails', async () => {
    upstream = await startHttpsUpstream();
    const { proxy } = await proxyTo(upstream.port, {}, {}, { serverName: 'api.test.example', subjectAltNames: [{ type: 'Prefix', value: 'api.' }] });
    expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
    await proxy.close();
    const second = await proxyTo(upstream.port, {}, {}, { subjectAltNames: [{ type: 'Exact', value: 'billing.test.example' }] });
    const r = await viaProxy(second.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.headers['x-egress-error']).toBe('TLS_FAILED');
  });

  test('mTLS: the client certificate is presented when configured, refused without it', async () => {
    const p = testPki();
    upstream = await startHttpsUpstream(undefined, { requestClientCert: true });
    const { proxy } = await proxyTo(upstream.port, {}, {}, { clientCertFile: p.clientCertFile, clientKeyFile: p.clientKeyFile });
    expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
    await proxy.close();
    const second = await proxyTo(upstream.port);
    const r = await viaProxy(second.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(502);
  });

  test('mTLS over TLS 1.3 without a client certificate → 502 TLS_FAILED, no request, and no retry under a reset policy', async () => {
    // TLS 1.3: the upstream refuses the missing certificate with an alert after the proxy's handshake completed.
    upstream = await startHttpsUpstream(undefined, { requestClientCert: true, minVersion: 'TLSv1.3' });
    const retry = { maxRetries: 3, statusCodes: [503], conditions: ['connect-failure', 'reset', 'timeout'], backoffBaseMs: 1, backoffMaxMs: 2 };
    const { proxy, logs } = await proxyTo(upstream.port, { retry });
    for (let i = 1; i <= 2; i++) {
      const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', `/r${i}`);
      expect([r.status, r.headers['x-egress-error']]).toEqual([502, 'TLS_FAILED']);
      // One connection per request: the refusal is final, so nothing was retried.
      expect(upstream.connections()).toBe(i);
    }
    expect(upstream.requests()).toBe(0);
    const lines = logs.lines.filter((l) => l.msg === 'request');
    expect(lines.map((l) => [l.error, l.errorDetail, l.attempts, l.retries])).toEqual([
      ['TLS_FAILED', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 1, undefined],
      ['TLS_FAILED', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 1, undefined],
    ]);
    const m = await (await request(`http://127.0.0.1:${proxy.ports.admin}/metrics`)).body.text();
    expect(m).not.toMatch(/outbound_http_route_retry_requests_total\{/);
  });

  test('server-initiated renegotiation is refused unless allowRenegotiation', async () => {
    upstream = await startHttpsUpstream((req, res) => {
      (req.socket as TLSSocket).renegotiate({ rejectUnauthorized: false }, (err) => res.end(err ? 'renegotiation failed' : 'renegotiated'));
    }, { maxVersion: 'TLSv1.2' }); // TLS 1.3 has no renegotiation
    const { proxy } = await proxyTo(upstream.port);
    const refused = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(refused.status).toBe(502);
    expect(refused.body).not.toContain('renegotiated');
    await proxy.close();
    const second = await proxyTo(upstream.port, {}, {}, { allowRenegotiation: true });
    const allowed = await viaProxy(second.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(allowed.body).toBe('renegotiated');
  });

  test('TLS 1.0 upstream works only when min version allows it (SECLEVEL handled)', async () => {
    upstream = await startHttpsUpstream(undefined, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    const { proxy } = await proxyTo(upstream.port);
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.headers['x-egress-error']).toBe('TLS_FAILED');
    await proxy.close();
    const second = await proxyTo(upstream.port, {}, {}, { minVersion: 'TLS10', maxVersion: 'TLS12' });
    expect((await viaProxy(second.proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(200);
  });
});

describe('connection reuse and headers', () => {
  test('50 requests reuse a few keep-alive connections', async () => {
    upstream = await startHttpsUpstream();
    const { proxy } = await proxyTo(upstream.port);
    const agent = new Agent({ connections: 4 });
    try {
      for (let i = 0; i < 50; i++) {
        const r = await request(`http://127.0.0.1:${proxy.ports.http}/n/${i}`, { headers: { host: 'api.test.example.egress.local' }, dispatcher: agent });
        expect(r.statusCode).toBe(200);
        await r.body.text();
      }
    } finally {
      await agent.close();
    }
    expect(upstream.requests()).toBe(50);
    expect(upstream.connections()).toBeLessThanOrEqual(3);
  });

  test('pool.maxConnections caps connections per upstream origin', async () => {
    const waiting: Array<() => void> = [];
    upstream = await startHttpsUpstream((_req, res) => {
      waiting.push(() => res.end('ok'));
      if (waiting.length === 1) setImmediate(() => waiting.splice(0).forEach((f) => f()));
    });
    const { proxy } = await proxyTo(upstream.port, { pool: { maxConnections: 1 } });
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => viaProxy(proxy.ports.http, 'api.test.example.egress.local', `/p/${i}`)));
    expect(all.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(upstream.requests()).toBe(8);
    expect(upstream.connections()).toBe(1);
  });

  test('the access log line: decision, upstream, bytes, and connect/TLS durations only when a connection was opened', async () => {
    upstream = await startHttpsUpstream();
    const { proxy } = await proxyTo(upstream.port);
    const agent = new Agent({ connections: 1 });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await request(`http://127.0.0.1:${proxy.ports.http}/log`, { headers: { host: 'api.test.example.egress.local' }, dispatcher: agent });
        await r.body.text();
      }
    } finally {
      await agent.close();
    }
    const lines = tp!.logs.lines.filter((l) => l.msg === 'request') as Array<Record<string, any>>;
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      kind: 'http',
      decision: 'allow',
      reason: 'default-allow',
      route: 'http-egress-allow',
      host: 'api.test.example',
      method: 'GET',
      path: '/log',
      upstream: { host: 'api.test.example', address: '127.0.0.1', port: upstream.port, tls: true },
      status: 200,
      bytesOut: 'hello GET /log'.length,
      attempts: 1,
    });
    expect(lines[0].durations.connect).toBeGreaterThanOrEqual(0);
    expect(lines[0].durations.tls).toBeGreaterThanOrEqual(0);
    expect(lines[0].durations.total).toBeGreaterThanOrEqual(lines[0].durations.ttfb);
    expect(lines[1].durations.connect).toBeUndefined();
    expect(lines[1].durations.tls).toBeUndefined();
  });

  test('hop-by-hop and proxy headers are removed, forwarding headers never added, end-to-end ones kept', async () => {
    upstream = await startHttpsUpstream((_req, res) => {
      res.writeHead(200, { 'x-keep': 'yes', 'x-drop-me': 'no', 'connection': 'x-drop-me', 'keep-alive': 'timeout=5' });
      res.end('ok');
    });
    const { proxy } = await proxyTo(upstream.port);
    // node:http, not undici: undici would rewrite the client's Connection header itself.
    const r = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({
        host: '127.0.0.1',
        port: proxy.ports.http,
        path: '/',
        agent: false,
        headers: {
          'host': 'api.test.example.egress.local',
          'x-custom': 'kept',
          'connection': 'x-secret-hop',
          'x-secret-hop': '1',
          'proxy-authorization': 'Basic Zm9vOmJhcg==',
          'x-forwarded-for': '10.1.2.3',
          'te': 'trailers',
        },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res));
      }).on('error', reject);
    });
    const h = upstream.seen[0].headers;
    expect(h['x-custom']).toBe('kept');
    expect(h['x-secret-hop']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h['x-forwarded-for']).toBeUndefined();
    expect(h.forwarded).toBeUndefined();
    expect(h.via).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(r.headers['x-keep']).toBe('yes');
    expect(r.headers['x-drop-me']).toBeUndefined();
  });

  test('response headers: repeated ones keep every value in order, names any case, proxy-* and listed ones dropped', async () => {
    upstream = await startHttpsUpstream((_req, res) => {
      // Raw pairs: the names' case and order as written here reach the proxy.
      res.writeHead(200, [
        'Set-Cookie', 'a=1', 'X-Listed', 'gone', 'X-Mixed-Case', 'v', 'Proxy-Status', 'x', 'Set-Cookie', 'b=2',
        'Connection', 'keep-alive', 'Connection', 'X-Listed', 'Vary', 'accept', 'vary', 'origin',
      ]);
      res.end('ok');
    });
    const { proxy } = await proxyTo(upstream.port);
    const r = await rawRequest(proxy.ports.http, { path: '/', headers: { host: 'api.test.example.egress.local' } });
    expect(r.status).toBe(200);
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-mixed-case']).toBe('v');
    expect(r.headers.vary).toBe('accept, origin');
    expect(r.headers['x-listed']).toBeUndefined();
    expect(r.headers['proxy-status']).toBeUndefined();
    // The lines keep the upstream's order on the wire to an HTTP/1.1 client (node:http adds its own framing).
    const own = new Set(['date', 'transfer-encoding', 'keep-alive', 'connection']);
    const names = (r.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => !own.has(n)))
      .toEqual(['set-cookie', 'x-mixed-case', 'set-cookie', 'vary', 'vary']);
    // The same answer to an HTTP/2 client, which gets it as a record.
    const client = http2.connect(`http://127.0.0.1:${proxy.ports.http}`);
    extra.push({ close: async () => { client.destroy(); } });
    const h2 = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = client.request({ ':method': 'GET', ':path': '/', ':authority': 'api.test.example.egress.local' });
      stream.on('response', resolve);
      stream.on('error', reject);
      stream.resume();
    });
    expect(h2[':status']).toBe(200);
    expect(h2['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(h2['x-mixed-case']).toBe('v');
    expect(h2['x-listed']).toBeUndefined();
    expect(h2['proxy-status']).toBeUndefined();
  });

  test('header bytes beyond ASCII pass through unchanged both ways (obs-text, e.g. UTF-8 in a value)', async () => {
    // Latin-1 strings are bytes on the wire in node:http: "\u00c3\u00a9" is é in UTF-8, C3 A9.
    const utf8 = Buffer.from('café ✓', 'utf8').toString('latin1');
    upstream = await startHttpsUpstream((req, res) => {
      res.writeHead(200, { 'x-name': utf8, 'x-echo': String(req.headers['x-sent']) });
      res.end('ok');
    });
    const { proxy } = await proxyTo(upstream.port);
    const raw = await new Promise<string>((resolve, reject) => {
      const c = net.connect(proxy.ports.http, '127.0.0.1', () => {
        c.write(Buffer.from(`GET / HTTP/1.1\r\nHost: api.test.example.egress.local\r\nX-Sent: ${utf8}\r\nConnection: close\r\n\r\n`, 'latin1'));
      });
      const got: Buffer[] = [];
      c.on('data', (b: Buffer) => got.push(b));
      c.on('end', () => resolve(Buffer.concat(got).toString('latin1')));
      c.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(raw).toContain(`\r\nx-name: ${utf8}\r\n`);
    expect(raw).toContain(`\r\nx-echo: ${utf8}\r\n`);
    expect(upstream.seen[0].headers['x-sent']).toBe(utf8);
    // The same answer to an HTTP/2 client.
    const client = http2.connect(`http://127.0.0.1:${proxy.ports.http}`);
    extra.push({ close: async () => { client.destroy(); } });
    const h2 = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = client.request({ ':method': 'GET', ':path': '/', ':authority': 'api.test.example.egress.local' });
      stream.on('response', resolve);
      stream.on('error', reject);
      stream.resume();
    });
    expect(h2[':status']).toBe(200);
    expect(h2['x-name']).toBe(utf8);
  });

  test('injected headers come from files, override the client, and never appear in logs', async () => {
    upstream = await startHttpsUpstream();
    const secretFile = join(testPki().dir, 'token');
    writeFileSync(secretFile, 'Bearer s3cr3t-value\n');
    const { proxy } = await proxyTo(upstream.port, { injectHeaders: [{ name: 'Authorization', valueFile: secretFile }] });
    await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/', { headers: { authorization: 'client-supplied' } });
    expect(upstream.seen[0].headers.authorization).toBe('Bearer s3cr3t-value');
    expect(JSON.stringify(tp!.logs.lines)).not.toContain('s3cr3t');
    const cfg = await request(`http://127.0.0.1:${proxy.ports.admin}/config`);
    const text = await cfg.body.text();
    expect(text).toContain(secretFile);
    expect(text).not.toContain('s3cr3t');
  });

  test('plaintext service (tls.enabled false) is reached over HTTP with Host port only when non-default', async () => {
    upstream = await startHttpUpstream();
    const { proxy } = await proxyTo(upstream.port, {}, {}, { enabled: false });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/plain');
    expect(r.status).toBe(200);
    expect(upstream.seen[0].headers.host).toBe(`api.test.example:${upstream.port}`);
  });

  test('endpoint priorities: a refused first endpoint fails over to the next', async () => {
    upstream = await startHttpsUpstream();
    const dead = await startSilentServer();
    await dead.close(); // a port nothing listens on: connection refused
    const { proxy } = await proxyTo(upstream.port, {
      endpoints: [{ address: '127.0.0.2', port: dead.port, priority: 0 }, { address: '127.0.0.1', port: upstream.port, priority: 1 }],
    });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(200);
    expect(tp!.dialer.calls.map((c) => c.address)).toEqual(['127.0.0.2', '127.0.0.1']);
  });
});

describe('streaming', () => {
  const SIZE = 100 * 1024 * 1024;

  test('100 MB upload and 100 MB download stream in bounded memory with matching bytes', async () => {
    let uploadHash = '';
    let uploadBytes = 0;
    upstream = await startHttpsUpstream((req, res) => {
      if (req.method === 'POST') {
        const h = createHash('sha256');
        req.on('data', (c: Buffer) => {
          uploadBytes += c.length;
          h.update(c);
        });
        req.on('end', () => {
          uploadHash = h.digest('hex');
          res.end('stored');
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let sent = 0;
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (sent < SIZE) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const { proxy } = await proxyTo(upstream.port);
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
    try {
      // Upload: a generated body; the client hashes what it sends.
      const sentHash = createHash('sha256');
      const chunk = Buffer.alloc(64 * 1024);
      const up = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: proxy.ports.http, method: 'POST', path: '/upload', headers: { 'host': 'api.test.example.egress.local', 'content-length': String(SIZE) } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        let written = 0;
        let i = 0;
        const write = () => {
          while (written < SIZE) {
            chunk.fill(i++ % 251);
            sentHash.update(chunk);
            written += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', write);
          }
          req.end();
        };
        write();
      });
      expect(up).toBe(200);
      expect(uploadBytes).toBe(SIZE);
      expect(uploadHash).toBe(sentHash.digest('hex'));

      // Download: hash on the client side as it arrives.
      const expected = createHash('sha256');
      const c7 = Buffer.alloc(64 * 1024, 7);
      for (let n = 0; n < SIZE; n += c7.length) expected.update(c7);
      const got = createHash('sha256');
      let gotBytes = 0;
      const r = await request(`http://127.0.0.1:${proxy.ports.http}/download`, { headers: { host: 'api.test.example.egress.local' } });
      for await (const c of r.body) {
        gotBytes += (c as Buffer).length;
        got.update(c as Buffer);
      }
      expect(gotBytes).toBe(SIZE);
      expect(got.digest('hex')).toBe(expected.digest('hex'));
    } finally {
      clearInterval(sampler);
    }
    // Proxy, upstream and client share this process: buffering either body would add ≥100 MB.
    expect(peak - rssBefore).toBeLessThan(100 * 1024 * 1024);
  }, 120_000);

  test('a streamed response reaches the client piece by piece: the upstream sends its second piece only once the first arrived', async () => {
    let firstArrived!: () => void;
    const gate = new Promise<void>((r) => (firstArrived = r));
    upstream = await startHttpsUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      // Were the proxy to hold the first piece until the response ends, this would never resolve.
      void gate.then(() => res.end('data: second\n\n'));
    });
    const { proxy } = await proxyTo(upstream.port);
    const r = await request(`http://127.0.0.1:${proxy.ports.http}/`, { headers: { host: 'api.test.example.egress.local' } });
    let text = '';
    for await (const chunk of r.body) {
      text += String(chunk);
      if (text.includes('first')) firstArrived();
    }
    expect(text).toBe('data: first\n\ndata: second\n\n');
  });

  test.each([
    ['read ahead whole', 40 * 1024],
    ['paused at the read-ahead bound and drained', 200 * 1024],
  ])('a retried 503 whose body was %s is dropped, not mixed into the answer', async (_name, size) => {
    let n = 0;
    upstream = await startHttpsUpstream((_req, res) => {
      n++;
      if (n === 1) {
        res.writeHead(503, { 'content-length': size });
        res.end(Buffer.alloc(size, 'b'));
        return;
      }
      res.writeHead(200);
      res.end('fine');
    });
    const retry = { maxRetries: 1, statusCodes: [503], conditions: [], backoffBaseMs: 1, backoffMaxMs: 2 };
    const { proxy } = await proxyTo(upstream.port, { retry });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(200);
    expect(r.body).toBe('fine');
    expect(upstream.requests()).toBe(2);
  });
});

describe('timeouts and failures', () => {
  test('connect timeout: a dial that never completes → 504 CONNECT_TIMEOUT', async () => {
    tp = await startTestProxy(testConfig({
      externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: 9 }] })],
      timeouts: { connectMs: 100 },
    }), NAMES, { neverConnect: true });
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(504);
    expect(r.headers['x-egress-error']).toBe('CONNECT_TIMEOUT');
  });

  test('TLS handshake timeout: a server that accepts and never speaks → 504 TLS_TIMEOUT', async () => {
    const silent = await startSilentServer();
    extra.push(silent);
    const { proxy } = await proxyTo(silent.port, {}, { timeouts: { tlsHandshakeMs: 150 } });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(504);
    expect(r.headers['x-egress-error']).toBe('TLS_TIMEOUT');
    expect(silent.connections()).toBe(1);
  });

  test('response headers timeout → 504 RESPONSE_TIMEOUT', async () => {
    upstream = await startHttpsUpstream(() => undefined /* never answers */);
    const { proxy } = await proxyTo(upstream.port, {}, { timeouts: { responseHeadersMs: 150 } });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(504);
    expect(r.headers['x-egress-error']).toBe('RESPONSE_TIMEOUT');
  });

  test('idle timeout (nothing either way) → 504 IDLE_TIMEOUT', async () => {
    upstream = await startHttpsUpstream(() => undefined);
    const { proxy } = await proxyTo(upstream.port, {}, { timeouts: { idleMs: 150 } });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(504);
    expect(r.headers['x-egress-error']).toBe('IDLE_TIMEOUT');
  });

  test('idle timeout mid-body cuts the response and logs IDLE_TIMEOUT', async () => {
    upstream = await startHttpsUpstream((_req, res) => {
      res.writeHead(200);
      res.write('partial');
    });
    const { proxy } = await proxyTo(upstream.port, {}, { timeouts: { idleMs: 150 } });
    const r = await request(`http://127.0.0.1:${proxy.ports.http}/`, { headers: { host: 'api.test.example.egress.local' } });
    expect(r.statusCode).toBe(200);
    await expect(r.body.text()).rejects.toThrow();
    const line = tp!.logs.lines.find((l) => l.msg === 'request');
    expect(line?.error).toBe('IDLE_TIMEOUT');
  });

  test('a client that stalls mid-upload gets 504 IDLE_TIMEOUT, not a hung exchange', async () => {
    upstream = await startHttpsUpstream((req, res) => {
      req.resume();
      req.on('end', () => res.end('never'));
    });
    const { proxy } = await proxyTo(upstream.port, {}, { timeouts: { idleMs: 150 } });
    const answer = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: proxy.ports.http });
      let got = '';
      s.on('data', (c: Buffer) => { got += c.toString(); });
      s.on('close', () => resolve(got));
      s.on('error', () => undefined);
      s.write('POST /upload HTTP/1.1\r\nhost: api.test.example.egress.local\r\ncontent-length: 100\r\n\r\nonly ten b');
      s.setTimeout(10_000, () => s.destroy());
      s.on('data', () => s.end());
    });
    expect(answer).toMatch(/^HTTP\/1\.1 504/);
    expect(answer).toContain('x-egress-error: IDLE_TIMEOUT');
  });

  test('total timeout → 504 TOTAL_TIMEOUT', async () => {
    upstream = await startHttpsUpstream(() => undefined);
    const { proxy } = await proxyTo(upstream.port, {}, { timeouts: { totalMs: 150 } });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(504);
    expect(r.headers['x-egress-error']).toBe('TOTAL_TIMEOUT');
  });

  test('upstream down → 502 CONNECT_FAILED', async () => {
    // Port 1 (tcpmux) on loopback: privileged, served by nothing here, so the refusal is certain.
    // (A closed test server's port can be taken again by another test worker.)
    const { proxy } = await proxyTo(1);
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(502);
    expect(r.headers['x-egress-error']).toBe('CONNECT_FAILED');
  });

  test('DNS failure → 502 DNS_FAILED', async () => {
    tp = await startTestProxy(testConfig(), {});
    const r = await viaProxy(tp.proxy.ports.http, 'nowhere.test.example.egress.local', '/');
    expect(r.status).toBe(502);
    expect(r.headers['x-egress-error']).toBe('DNS_FAILED');
    expect(tp.dialer.calls).toEqual([]);
  });

  test('upstream reset mid-request → 502 UPSTREAM_RESET', async () => {
    upstream = await startHttpsUpstream((req) => req.socket.destroy());
    const { proxy } = await proxyTo(upstream.port);
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(502);
    expect(r.headers['x-egress-error']).toBe('UPSTREAM_RESET');
  });
});

describe('retries', () => {
  const retry = { maxRetries: 2, statusCodes: [503], conditions: ['connect-failure', 'reset'], backoffBaseMs: 1, backoffMaxMs: 2 };

  test('a GET answered 503 is retried and the second answer is returned', async () => {
    let n = 0;
    upstream = await startHttpsUpstream((_req, res) => {
      n++;
      res.writeHead(n === 1 ? 503 : 200);
      res.end(n === 1 ? 'busy' : 'ok');
    });
    const { proxy } = await proxyTo(upstream.port, { retry });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
    expect(upstream.requests()).toBe(2);
  });

  test('retries stop at maxRetries and the last answer is returned', async () => {
    upstream = await startHttpsUpstream((_req, res) => {
      res.writeHead(503);
      res.end('busy');
    });
    const { proxy } = await proxyTo(upstream.port, { retry });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(503);
    expect(upstream.requests()).toBe(3);
  });

  test('a POST is not retried (not idempotent, body already streamed)', async () => {
    upstream = await startHttpsUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(503);
        res.end();
      });
    });
    const { proxy } = await proxyTo(upstream.port, { retry });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/', { method: 'POST', body: 'payload' });
    expect(r.status).toBe(503);
    expect(upstream.requests()).toBe(1);
  });

  test('a small POST is buffered when the policy may retry it, and replayed byte for byte', async () => {
    const bodies: string[] = [];
    upstream = await startHttpsUpstream((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => { b += c.toString(); });
      req.on('end', () => {
        bodies.push(b);
        res.writeHead(bodies.length === 1 ? 503 : 201);
        res.end();
      });
    });
    const { proxy } = await proxyTo(upstream.port, { retry: { ...retry, retryNonIdempotent: true } });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/', { method: 'POST', body: 'payload-123' });
    expect(r.status).toBe(201);
    expect(bodies).toEqual(['payload-123', 'payload-123']);
  });

  test('without a retry spec nothing is retried', async () => {
    upstream = await startHttpsUpstream((_req, res) => {
      res.writeHead(503);
      res.end();
    });
    const { proxy } = await proxyTo(upstream.port);
    expect((await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/')).status).toBe(503);
    expect(upstream.requests()).toBe(1);
  });
});

describe('HTTP/2 upstreams', () => {
  test('a service port with protocol http2 is spoken to over HTTP/2 (ALPN h2) from an HTTP/1.1 client', async () => {
    const p = testPki();
    const h2server = http2.createSecureServer({ cert: p.serverCert, key: p.serverKey, allowHTTP1: false }, (req, res) => {
      res.setHeader('x-http-version', req.httpVersion);
      res.end(`h2 says hi to ${req.url}`);
    });
    await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
    extra.push({ close: () => new Promise<void>((r) => h2server.close(() => r())) });
    const port = (h2server.address() as { port: number }).port;
    const { proxy } = await proxyTo(port, { ports: [{ port: 80, protocol: 'http2', targetPort: port }] });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/two');
    expect(r.status).toBe(200);
    expect(r.body).toBe('h2 says hi to /two');
    expect(r.headers['x-http-version']).toBe('2.0');
  });
});

describe('HTTP/2 upstreams over mTLS', () => {
  test('TLS 1.3 refusal of a missing client certificate over HTTP/2 → 502 TLS_FAILED, one connection, no retry', async () => {
    const p = testPki();
    const h2server = http2.createSecureServer({
      cert: p.serverCert, key: p.serverKey, ca: p.caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', allowHTTP1: false,
    }, (_req, res) => res.end('never'));
    let connections = 0;
    let requests = 0;
    h2server.on('connection', () => connections++);
    h2server.on('request', () => requests++);
    await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
    extra.push({ close: () => new Promise<void>((r) => h2server.close(() => r())) });
    const port = (h2server.address() as { port: number }).port;
    const retry = { maxRetries: 2, conditions: ['connect-failure', 'reset'], backoffBaseMs: 1, backoffMaxMs: 2 };
    const { proxy, logs } = await proxyTo(port, { ports: [{ port: 80, protocol: 'http2', targetPort: port }], retry });
    const r = await viaProxy(proxy.ports.http, 'api.test.example.egress.local', '/');
    expect([r.status, r.headers['x-egress-error']]).toEqual([502, 'TLS_FAILED']);
    expect([connections, requests]).toEqual([1, 0]);
    expect(logs.lines.filter((l) => l.msg === 'request').map((l) => [l.error, l.errorDetail, l.retries]))
      .toEqual([['TLS_FAILED', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', undefined]]);
  });
});

describe('gRPC', () => {
  test('plaintext gRPC (h2c prior knowledge) both sides when the service disables TLS', async () => {
    const h2server = http2.createServer();
    h2server.on('stream', (stream) => {
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      });
    });
    await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
    extra.push({ close: () => new Promise<void>((r) => h2server.close(() => r())) });
    const port = (h2server.address() as { port: number }).port;
    const { proxy } = await proxyTo(port, { ports: [{ port: 80, protocol: 'grpc', targetPort: port }] }, {}, { enabled: false });
    const client = http2.connect(`http://127.0.0.1:${proxy.ports.http}`);
    extra.push({ close: async () => { client.destroy(); } });
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = client.request({
        ':method': 'POST', ':path': '/grpc.test.Echo/Say', ':authority': 'api.test.example.egress.local', 'content-type': 'application/grpc', 'te': 'trailers',
      });
      stream.on('trailers', (t) => resolve(t));
      stream.on('error', reject);
      stream.resume();
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    expect(trailers['grpc-status']).toBe('0');
    const m = await (await request(`http://127.0.0.1:${proxy.ports.admin}/metrics`)).body.text();
    expect(m).toMatch(/outbound_grpc_route_request_statuses_total\{[^}]*route_name="grpc-egress-allow"[^}]*grpc_status="OK"[^}]*\} 1/);
  });

  /**
   * An h2c gRPC upstream; `answer(n)` says how call n (1-based) ends: Trailers-Only with a status,
   * or a message followed by trailers with a status. Records each call's request body.
   */
  async function grpcUpstream(answer: (n: number) => { trailersOnly: boolean; status: number }) {
    const bodies: Buffer[] = [];
    const h2server = http2.createServer();
    h2server.on('stream', (stream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        bodies.push(Buffer.concat(chunks));
        const a = answer(bodies.length);
        if (a.trailersOnly) {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(a.status) }, { endStream: true });
          return;
        }
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(a.status) }));
        stream.end(Buffer.from([0, 0, 0, 0, 1, 42]));
      });
    });
    await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
    extra.push({ close: () => new Promise<void>((r) => h2server.close(() => r())) });
    return { port: (h2server.address() as { port: number }).port, bodies };
  }

  /** One gRPC call over h2c through the proxy: the grpc-status from headers or trailers, and the body. */
  async function grpcThroughProxy(proxyPort: number, body: Buffer) {
    const client = http2.connect(`http://127.0.0.1:${proxyPort}`);
    extra.push({ close: async () => { client.destroy(); } });
    return new Promise<{ grpcStatus: unknown; body: Buffer }>((resolve, reject) => {
      const stream = client.request({
        ':method': 'POST', ':path': '/grpc.test.Echo/Say', ':authority': 'api.test.example.egress.local', 'content-type': 'application/grpc', 'te': 'trailers',
      });
      const chunks: Buffer[] = [];
      let grpcStatus: unknown;
      stream.on('response', (h) => { grpcStatus = h['grpc-status'] ?? grpcStatus; });
      stream.on('trailers', (t) => { grpcStatus = t['grpc-status']; });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ grpcStatus, body: Buffer.concat(chunks) }));
      stream.on('error', reject);
      stream.end(body);
    });
  }

  const grpcRetry = { maxRetries: 2, statusCodes: [503], conditions: ['connect-failure', 'reset'], backoffBaseMs: 1, backoffMaxMs: 2, grpcStatusCodes: [14] };
  const grpcPort = (port: number) => ({ ports: [{ port: 80, protocol: 'grpc', targetPort: port }], retry: grpcRetry });

  test('gRPC: a Trailers-Only UNAVAILABLE is retried with the same body although retryNonIdempotent is off', async () => {
    const up = await grpcUpstream((n) => (n === 1 ? { trailersOnly: true, status: 14 } : { trailersOnly: false, status: 0 }));
    const { proxy } = await proxyTo(up.port, grpcPort(up.port), {}, { enabled: false });
    const message = Buffer.from([0, 0, 0, 0, 3, 1, 2, 3]);
    const r = await grpcThroughProxy(proxy.ports.http, message);
    expect(r).toEqual({ grpcStatus: '0', body: Buffer.from([0, 0, 0, 0, 1, 42]) });
    expect(up.bodies).toEqual([message, message]);
  });

  test('gRPC: UNAVAILABLE in trailers after a message is relayed, not retried (the message may already be with the client)', async () => {
    const up = await grpcUpstream(() => ({ trailersOnly: false, status: 14 }));
    const { proxy } = await proxyTo(up.port, grpcPort(up.port), {}, { enabled: false });
    const r = await grpcThroughProxy(proxy.ports.http, Buffer.from([0, 0, 0, 0, 0]));
    expect(r).toEqual({ grpcStatus: '14', body: Buffer.from([0, 0, 0, 0, 1, 42]) });
    expect(up.bodies).toHaveLength(1);
  });

  test('gRPC: a request body over 64 KiB streams and is not retried; the Trailers-Only status reaches the client', async () => {
    const up = await grpcUpstream(() => ({ trailersOnly: true, status: 14 }));
    const { proxy } = await proxyTo(up.port, grpcPort(up.port), {}, { enabled: false });
    const big = Buffer.alloc(5 + 64 * 1024 + 1, 7);
    big.writeUInt8(0, 0);
    big.writeUInt32BE(64 * 1024 + 1, 1);
    const r = await grpcThroughProxy(proxy.ports.http, big);
    expect(r).toEqual({ grpcStatus: '14', body: Buffer.alloc(0) });
    expect(up.bodies.map((b) => b.length)).toEqual([big.length]);
  });

  test('an allowed gRPC call goes over HTTP/2 + TLS upstream and its trailers come back', async () => {
    const p = testPki();
    const h2server = http2.createSecureServer({ cert: p.serverCert, key: p.serverKey, allowHTTP1: false });
    let seenPath = '';
    let seenAuthority = '';
    h2server.on('stream', (stream, headers) => {
      seenPath = String(headers[':path']);
      seenAuthority = String(headers[':authority']);
      stream.on('data', () => undefined);
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' }));
        stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
      });
    });
    await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
    extra.push({ close: () => new Promise<void>((r) => h2server.close(() => r())) });
    const port = (h2server.address() as { port: number }).port;
    const { proxy } = await proxyTo(port, { ports: [{ port: 80, protocol: 'grpc', targetPort: port }] });

    const client = http2.connect(`http://127.0.0.1:${proxy.ports.http}`);
    extra.push({ close: async () => { client.destroy(); } });
    const result = await new Promise<{ status: unknown; trailers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const stream = client.request({
        ':method': 'POST', ':path': '/grpc.test.Echo/Say', ':authority': 'api.test.example.egress.local', 'content-type': 'application/grpc', 'te': 'trailers',
      });
      const chunks: Buffer[] = [];
      let status: unknown;
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on('response', (h) => { status = h[':status']; });
      stream.on('trailers', (t) => { trailers = t; });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status, trailers, body: Buffer.concat(chunks) }));
      stream.on('error', reject);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    expect(result.status).toBe(200);
    expect(result.trailers['grpc-status']).toBe('0');
    expect(result.body).toEqual(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    expect(seenPath).toBe('/grpc.test.Echo/Say');
    expect(seenAuthority).toBe(`api.test.example:${port}`);
  });
});
