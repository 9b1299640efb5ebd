/**
 * Kuma's MeshExternalService example matrix end to end: the configs come from
 * examples/kuma-external-services (three gateways: plaintext, TLS, mTLS), synthesised by the
 * constructs, and the real proxy carries TCP, TCP+TLS, TCP+mTLS, HTTP, HTTPS, gRPC and gRPCS
 * traffic to local stand-ins for tcpbin.com, httpbin.org and grpcbin.test.k6.io.
 */
import * as grpc from '@grpc/grpc-js';
import type { Chart } from 'cdk8s';
import {
  clientPair, Closer, diffPaths, grpcCall, leafCert, metricSamples, startChartProxy, startEchoServer, startGrpcServer, tcpRoundTrip,
  type ChartProxy,
} from './e2e/tls-matrix-harness';
import { startHttpsUpstream, startHttpUpstream, testPki, viaProxy } from './proxy/helpers';
import { buildApp, CLIENT_CERT_SECRET, CLIENT_KEY_SECRET } from '../examples/kuma-external-services/main';

const HOSTS = { tcpbin: 'tcpbin.com', httpbin: 'httpbin.org', grpcbin: 'grpcbin.test.k6.io' };
const NAMES = { [HOSTS.tcpbin]: '127.0.0.1', [HOSTS.httpbin]: '127.0.0.1', [HOSTS.grpcbin]: '127.0.0.1' };

function chart(id: 'plaintext' | 'tls' | 'mtls'): Chart {
  const app = buildApp('/nonexistent-not-written');
  const c = app.charts.find((x) => x.node.id === id);
  if (!c) throw new Error(`example has no chart ${id}`);
  return c as Chart;
}

const closer = new Closer();
afterEach(() => closer.run());

async function start(id: 'plaintext' | 'tls' | 'mtls', ports: Record<number, number>, extra: { files?: Record<string, string> } = {}): Promise<ChartProxy> {
  // The example's TLS services trust the system roots; the test CA stands in for them.
  const p = closer.add(await startChartProxy(chart(id), { names: NAMES, ports, files: extra.files, systemRootsPem: testPki().caPem }));
  // Nothing but the documented harness patches separates what runs from what was synthesised.
  const allowed = [/^\$\.listeners\.(bindAddress|http\.port|admin\.port|tcp\[\d+\]\.port)$/, /^\$\.addressPolicy\.allowCidrs\[\d+\]$/,
    /^\$\.externalServices\[\d+\]\.tls\.(caPem|clientCertFile|clientKeyFile)$/, /^\$\.defaultTls\.caPem$/];
  expect(diffPaths(p.synthesised, p.patched).filter((d) => !allowed.some((re) => re.test(d)))).toEqual([]);
  return p;
}

function tcpListenerPort(p: ChartProxy, servicePort: number): number {
  const i = p.patched.listeners.tcp.findIndex((t) => t.servicePort === servicePort);
  expect(i).toBeGreaterThanOrEqual(0);
  return p.proxy.ports.tcp[i];
}

describe('Kuma example matrix through configs synthesised from examples/kuma-external-services', () => {
  test('TCP: bytes sent to the tcpbin listener come back from the plaintext echo server', async () => {
    const echo = closer.add(await startEchoServer());
    const p = await start('plaintext', { 4242: echo.port });
    expect(p.synthesised.listeners.tcp).toEqual([{ port: expect.any(Number), externalService: 'tcpbin', servicePort: 4242 }]);
    const r = await tcpRoundTrip(tcpListenerPort(p, 4242), 'echo this');
    expect(r.echoed).toBe('echo this');
    expect(echo.sessions()).toBe(1);
    expect(p.dialer.calls).toEqual([{ address: '127.0.0.1', port: 4242 }]);
    expect(p.dialer.refused).toEqual([]);
  });

  test('TCP with TLS: the proxy originates verified TLS (SNI tcpbin.com) to the TLS echo server on 4243', async () => {
    const echo = closer.add(await startEchoServer(leafCert([HOSTS.tcpbin])));
    const p = await start('tls', { 4243: echo.port });
    const r = await tcpRoundTrip(tcpListenerPort(p, 4243), 'echo this');
    expect(r.echoed).toBe('echo this');
    expect(echo.handshakes).toEqual([{ servername: HOSTS.tcpbin, protocol: 'TLSv1.3', clientCn: '' }]);
    expect(p.dialer.calls).toEqual([{ address: '127.0.0.1', port: 4243 }]);
  });

  test('TCP with TLS: a certificate from an untrusted CA closes the connection; nothing is echoed', async () => {
    const echo = closer.add(await startEchoServer(leafCert([HOSTS.tcpbin], { untrusted: true })));
    const p = await start('tls', { 4243: echo.port });
    const r = await tcpRoundTrip(tcpListenerPort(p, 4243), 'echo this');
    expect(r).toEqual({ echoed: '', closed: true });
    expect(echo.sessions()).toBe(0);
    expect(echo.connections()).toBe(1);
  });

  test('TCP with mTLS: the client certificate from the mounted Secrets is presented; the echo server requires it', async () => {
    const echo = closer.add(await startEchoServer({ ...leafCert([HOSTS.tcpbin]), requireClientCert: true }));
    const client = clientPair();
    const p = await start('mtls', { 4244: echo.port }, {
      files: {
        [`/var/run/egress/secrets/${CLIENT_CERT_SECRET}/value`]: client.cert,
        [`/var/run/egress/secrets/${CLIENT_KEY_SECRET}/value`]: client.key,
      },
    });
    const svc = p.synthesised.externalServices.find((s) => s.name === 'tcpbin-mtls')!;
    expect(svc.tls.clientCertFile).toBe(`/var/run/egress/secrets/${CLIENT_CERT_SECRET}/value`);
    const r = await tcpRoundTrip(tcpListenerPort(p, 4244), 'echo this');
    expect(r.echoed).toBe('echo this');
    expect(echo.handshakes).toEqual([{ servername: HOSTS.tcpbin, protocol: 'TLSv1.3', clientCn: 'client' }]);
  });

  test('TCP with mTLS: the TLS-only gateway presents no certificate, and the mTLS echo server refuses it', async () => {
    const echo = closer.add(await startEchoServer({ ...leafCert([HOSTS.tcpbin]), requireClientCert: true }));
    // The TLS gateway's tcpbin service is the same host without a client certificate.
    const p = await start('tls', { 4243: echo.port });
    const r = await tcpRoundTrip(tcpListenerPort(p, 4243), 'echo this');
    expect(r.echoed).toBe('');
    expect(r.closed).toBe(true);
    expect(echo.sessions()).toBe(0);
  });

  test('HTTP: plaintext to the explicitly declared plaintext upstream on port 80', async () => {
    const upstream = closer.add(await startHttpUpstream());
    const p = await start('plaintext', { 80: upstream.port });
    expect(p.synthesised.externalServices.find((s) => s.name === 'httpbin')!.tls.enabled).toBe(false);
    const r = await viaProxy(p.proxy.ports.http, `${HOSTS.httpbin}.egress.local`, '/get');
    expect(r.status).toBe(200);
    expect(r.body).toBe('hello GET /get');
    expect(upstream.seen.map((s) => [s.url, s.headers.host, s.servername])).toEqual([['/get', HOSTS.httpbin, undefined]]);
    expect(p.dialer.calls).toEqual([{ address: '127.0.0.1', port: 80 }]);
  });

  test('HTTPS: the client speaks plaintext on 80, the proxy originates verified TLS to 443', async () => {
    const pair = leafCert([HOSTS.httpbin]);
    const upstream = closer.add(await startHttpsUpstream(undefined, pair));
    const p = await start('tls', { 443: upstream.port });
    const r = await viaProxy(p.proxy.ports.http, `${HOSTS.httpbin}.egress.local`, '/get');
    expect(r.status).toBe(200);
    expect(upstream.seen.map((s) => [s.url, s.headers.host, s.servername])).toEqual([['/get', HOSTS.httpbin, HOSTS.httpbin]]);
    expect(p.dialer.calls).toEqual([{ address: '127.0.0.1', port: 443 }]);
    const statuses = await metricSamples(p.proxy.ports.admin, 'outbound_http_route_request_statuses_total');
    expect(statuses.map((s) => [s.labels.hostname, s.labels.http_status, s.labels.error, s.value])).toEqual([[HOSTS.httpbin, '200', '', 1]]);
  });

  test('gRPC: a grpc-js client speaks h2c to the proxy, which carries the call to the plaintext h2c server on 9000', async () => {
    const server = closer.add(await startGrpcServer());
    const p = await start('plaintext', { 9000: server.port });
    const r = await grpcCall(p.proxy.ports.http, `${HOSTS.grpcbin}.egress.local:9000`, 'ping');
    expect(r).toEqual({ code: grpc.status.OK, reply: 'echo:ping' });
    expect(server.calls).toEqual([{ authority: `${HOSTS.grpcbin}:9000`, request: 'ping' }]);
    expect(p.dialer.calls).toEqual([{ address: '127.0.0.1', port: 9000 }]);
    const statuses = await metricSamples(p.proxy.ports.admin, 'outbound_grpc_route_request_statuses_total');
    expect(statuses.map((s) => [s.labels.hostname, s.labels.grpc_status, s.value])).toEqual([[HOSTS.grpcbin, 'OK', 1]]);
  });

  test('gRPCS: the same plaintext call leaves the proxy as gRPC over verified TLS to 9001', async () => {
    const server = closer.add(await startGrpcServer(leafCert([HOSTS.grpcbin])));
    const p = await start('tls', { 9001: server.port });
    const r = await grpcCall(p.proxy.ports.http, `${HOSTS.grpcbin}.egress.local:9001`, 'ping');
    expect(r).toEqual({ code: grpc.status.OK, reply: 'echo:ping' });
    expect(server.calls).toEqual([{ authority: `${HOSTS.grpcbin}:9001`, request: 'ping' }]);
    expect(server.handshakes.map((h) => h.servername)).toEqual([HOSTS.grpcbin]);
  });

  test('gRPCS: an untrusted server certificate fails the call with UNAVAILABLE and x-egress-error TLS_FAILED', async () => {
    const server = closer.add(await startGrpcServer(leafCert([HOSTS.grpcbin], { untrusted: true })));
    const p = await start('tls', { 9001: server.port });
    const r = await grpcCall(p.proxy.ports.http, `${HOSTS.grpcbin}.egress.local:9001`, 'ping');
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.metadata?.['x-egress-error']).toBe('TLS_FAILED');
    expect(server.calls).toEqual([]);
  });
});
