/**
 * TLS origination end to end: each case declares an ExternalService with the construct API,
 * synthesises the chart, runs the real proxy from the ConfigMap's config.json and sends a
 * plaintext request through it to a local TLS upstream. Covers Kuma's verification modes in both
 * directions, version bounds, client certificates, SAN Exact/Prefix matching and SNI override.
 */
import type * as http from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Chart, Testing } from 'cdk8s';
import {
  CertificateSource, EgressGateway, ExternalServiceProtocol, SubjectAltName, TlsOrigination, TlsVerification, TlsVersion,
  type TlsOriginationOptions,
} from '../src';
import {
  clientPair, Closer, diffPaths, handshakeOf, leafCert, metricSamples, startChartProxy, type HandshakeSeen, type Pair,
} from './e2e/tls-matrix-harness';
import { startHttpsUpstream, testPki, viaProxy, type HttpsUpstreamOptions, type TestUpstream } from './proxy/helpers';

const HOST = 'api.example.test';
const CA_SECRET = 'upstream-ca';
const CLIENT_SECRET = 'api-client';
const CA_FILE = `/var/run/egress/secrets/${CA_SECRET}/ca.crt`;

const closer = new Closer();
afterEach(() => closer.run());

/** A gateway serving HOST on port 80, TLS to 443 as `tls` says, trusting the CA Secret unless told otherwise. */
function chartWith(tls: TlsOriginationOptions): Chart {
  const chart = new Chart(Testing.app(), 'tls-origination');
  const gateway = new EgressGateway(chart, 'Gateway', { name: 'egress', namespace: 'egress-tls' });
  gateway.addExternalService('Api', {
    name: 'api',
    host: HOST,
    ports: [{ port: 80, protocol: ExternalServiceProtocol.HTTP }],
    tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromSecret(CA_SECRET, 'ca.crt'), ...tls }),
  });
  return chart;
}

interface Upstream extends TestUpstream {
  readonly handshakes: HandshakeSeen[];
}

/** An HTTPS upstream answering with the client certificate's CN, recording every handshake. */
async function upstreamWith(pair: Pair, options: HttpsUpstreamOptions = {}): Promise<Upstream> {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`client=${String((req.socket as TLSSocket).getPeerCertificate()?.subject?.CN ?? '')}`);
  };
  const u = closer.add(await startHttpsUpstream(handler, { ...options, cert: pair.cert, key: pair.key }));
  const handshakes: HandshakeSeen[] = [];
  u.server.on('secureConnection', (s: TLSSocket) => handshakes.push(handshakeOf(s)));
  return Object.assign(u, { handshakes });
}

/** Start the proxy from `chart` with the CA Secret (and client Secret) written where the config names them. */
async function proxyFor(chart: Chart, upstream: TestUpstream, files: Record<string, string> = {}) {
  const p = closer.add(await startChartProxy(chart, {
    names: { [HOST]: '127.0.0.1' },
    ports: { 443: upstream.port },
    files: { [CA_FILE]: testPki().caPem, ...files },
  }));
  // Trust and verification reach the proxy exactly as synthesised (only paths are re-rooted).
  expect(diffPaths(p.synthesised.externalServices, p.patched.externalServices)).toEqual(
    ['caFile', 'clientCertFile', 'clientKeyFile'].filter((k) => (p.synthesised.externalServices[0].tls as any)[k] !== undefined)
      .map((k) => `$[0].tls.${k}`));
  return p;
}

async function call(port: number) {
  return viaProxy(port, `${HOST}.egress.local`, '/resource');
}

/* ------------------------------------------------------------------------- certificates */

const CERTS = {
  'right CA, right SAN': () => leafCert([HOST]),
  'wrong CA': () => leafCert([HOST], { untrusted: true }),
  'wrong SAN': () => leafCert(['other.example.test']),
  'wrong CA and wrong SAN': () => leafCert(['other.example.test'], { untrusted: true }),
} as const;
type CertCase = keyof typeof CERTS;

const MODES: ReadonlyArray<[string, () => TlsVerification, Record<CertCase, 200 | 502>]> = [
  ['Secured', TlsVerification.secured, { 'right CA, right SAN': 200, 'wrong CA': 502, 'wrong SAN': 502, 'wrong CA and wrong SAN': 502 }],
  ['SkipSAN', TlsVerification.skipSan, { 'right CA, right SAN': 200, 'wrong CA': 502, 'wrong SAN': 200, 'wrong CA and wrong SAN': 502 }],
  ['SkipCA', TlsVerification.skipCa, { 'right CA, right SAN': 200, 'wrong CA': 200, 'wrong SAN': 502, 'wrong CA and wrong SAN': 502 }],
  ['SkipAll', TlsVerification.skipAll, { 'right CA, right SAN': 200, 'wrong CA': 200, 'wrong SAN': 200, 'wrong CA and wrong SAN': 200 }],
];

const TABLE = MODES.flatMap(([mode, verification, expected]) =>
  (Object.keys(CERTS) as CertCase[]).map((cert) => [mode, cert, expected[cert], verification] as const));

describe('verification modes, each way', () => {
  test.each(TABLE)('%s, upstream certificate with %s → %d', async (mode, cert, status, verification) => {
    const upstream = await upstreamWith(CERTS[cert]());
    const chart = chartWith({ verification: verification() });
    const p = await proxyFor(chart, upstream);
    expect(p.synthesised.externalServices[0].tls).toMatchObject({ enabled: true, mode, caFile: CA_FILE });
    const r = await call(p.proxy.ports.http);
    expect(r.status).toBe(status);
    if (status === 200) {
      expect(upstream.requests()).toBe(1);
      expect(upstream.seen[0].headers.host).toBe(HOST);
      expect(upstream.handshakes.map((h) => h.servername)).toEqual([HOST]);
    } else {
      // The handshake was attempted and refused: no request byte reached the upstream.
      expect(r.headers['x-egress-error']).toBe('TLS_FAILED');
      expect(upstream.connections()).toBeGreaterThanOrEqual(1);
      expect(upstream.requests()).toBe(0);
    }
    const statuses = await metricSamples(p.proxy.ports.admin, 'outbound_http_route_request_statuses_total');
    expect(statuses.map((s) => [s.labels.hostname, s.labels.http_status, s.labels.error, s.value]))
      .toEqual([[HOST, String(status), status === 200 ? '' : 'TLS_FAILED', 1]]);
  });
});

describe('TLS versions against upstreams limited to other versions', () => {
  test('upstream at most TLS 1.2, proxy minVersion TLS13 → 502, no request', async () => {
    const upstream = await upstreamWith(leafCert([HOST]), { maxVersion: 'TLSv1.2' });
    const p = await proxyFor(chartWith({ minVersion: TlsVersion.TLS13 }), upstream);
    expect(p.synthesised.externalServices[0].tls).toMatchObject({ minVersion: 'TLS13', maxVersion: 'TLSAuto' });
    const r = await call(p.proxy.ports.http);
    expect([r.status, r.headers['x-egress-error']]).toEqual([502, 'TLS_FAILED']);
    expect(upstream.requests()).toBe(0);
    expect(upstream.handshakes).toEqual([]);
  });

  test('upstream at least TLS 1.3, proxy maxVersion TLS12 → 502, no request', async () => {
    const upstream = await upstreamWith(leafCert([HOST]), { minVersion: 'TLSv1.3' });
    const p = await proxyFor(chartWith({ maxVersion: TlsVersion.TLS12 }), upstream);
    expect(p.synthesised.externalServices[0].tls).toMatchObject({ minVersion: 'TLS12', maxVersion: 'TLS12' });
    const r = await call(p.proxy.ports.http);
    expect([r.status, r.headers['x-egress-error']]).toEqual([502, 'TLS_FAILED']);
    expect(upstream.requests()).toBe(0);
    expect(upstream.handshakes).toEqual([]);
  });

  test.each([
    ['TLS12', 'TLS12', 'TLSv1.2', 'TLSv1.2', 'TLSv1.2'],
    ['TLS13', 'TLS13', 'TLSv1.3', 'TLSv1.3', 'TLSv1.3'],
    ['TLS12', 'TLSAuto', 'TLSv1.2', 'TLSv1.2', 'TLSv1.2'],
    ['TLS12', 'TLSAuto', 'TLSv1.3', 'TLSv1.3', 'TLSv1.3'],
  ] as const)('proxy %s..%s, upstream %s..%s → 200 over %s', async (min, max, upMin, upMax, negotiated) => {
    const upstream = await upstreamWith(leafCert([HOST]), { minVersion: upMin, maxVersion: upMax });
    const p = await proxyFor(chartWith({ minVersion: min as TlsVersion, maxVersion: max as TlsVersion }), upstream);
    const r = await call(p.proxy.ports.http);
    expect(r.status).toBe(200);
    expect(upstream.handshakes.map((h) => h.protocol)).toEqual([negotiated]);
  });

  test('a TLS 1.1-only legacy upstream is refused by default and reached with min and max TLS11', async () => {
    const legacy: HttpsUpstreamOptions = { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' };
    const first = await upstreamWith(leafCert([HOST]), legacy);
    const refused = await call((await proxyFor(chartWith({}), first)).proxy.ports.http);
    expect([refused.status, refused.headers['x-egress-error'], first.requests()]).toEqual([502, 'TLS_FAILED', 0]);
    const second = await upstreamWith(leafCert([HOST]), legacy);
    const p = await proxyFor(chartWith({ minVersion: TlsVersion.TLS11, maxVersion: TlsVersion.TLS11 }), second);
    expect((await call(p.proxy.ports.http)).status).toBe(200);
    expect(second.handshakes.map((h) => h.protocol)).toEqual(['TLSv1.1']);
  });
});

describe('client certificates (mTLS to the upstream)', () => {
  const clientTls = (): TlsOriginationOptions => ({
    clientCertificate: CertificateSource.fromSecret(CLIENT_SECRET, 'tls.crt'),
    clientKey: CertificateSource.fromSecret(CLIENT_SECRET, 'tls.key'),
  });

  test('the client certificate from the Secret is presented and the upstream sees its subject', async () => {
    const upstream = await upstreamWith(leafCert([HOST]), { requestClientCert: true });
    const client = clientPair();
    const chart = chartWith(clientTls());
    const p = await proxyFor(chart, upstream, {
      [`/var/run/egress/secrets/${CLIENT_SECRET}/tls.crt`]: client.cert,
      [`/var/run/egress/secrets/${CLIENT_SECRET}/tls.key`]: client.key,
    });
    expect(p.synthesised.externalServices[0].tls).toMatchObject({
      clientCertFile: `/var/run/egress/secrets/${CLIENT_SECRET}/tls.crt`, clientKeyFile: `/var/run/egress/secrets/${CLIENT_SECRET}/tls.key`,
    });
    // The gateway mounts that Secret where the config says.
    const deployment = Testing.synth(chart).find((o: any) => o.kind === 'Deployment');
    const mounts = deployment.spec.template.spec.containers[0].volumeMounts.map((m: any) => m.mountPath);
    expect(mounts).toContain(`/var/run/egress/secrets/${CLIENT_SECRET}`);
    const r = await call(p.proxy.ports.http);
    expect([r.status, r.body]).toEqual([200, 'client=client']);
    expect(upstream.handshakes.map((h) => h.clientCn)).toEqual(['client']);
  });

  test('without a client certificate the TLS 1.3 mTLS upstream refuses: 502 TLS_FAILED and no request', async () => {
    const upstream = await upstreamWith(leafCert([HOST]), { requestClientCert: true, minVersion: 'TLSv1.3' });
    const p = await proxyFor(chartWith({}), upstream);
    const r = await call(p.proxy.ports.http);
    // Over TLS 1.3 the server checks the certificate after the client's handshake has finished;
    // its alert (certificate_required) still names the failure: TLS, not a reset.
    expect([r.status, r.headers['x-egress-error']]).toEqual([502, 'TLS_FAILED']);
    expect(upstream.requests()).toBe(0);
    expect(upstream.connections()).toBe(1);
    expect(upstream.handshakes).toEqual([]);
  });

  test('without a client certificate over TLS 1.2 the refusal is a handshake failure: 502 TLS_FAILED', async () => {
    const upstream = await upstreamWith(leafCert([HOST]), { requestClientCert: true, maxVersion: 'TLSv1.2' });
    const p = await proxyFor(chartWith({}), upstream);
    const r = await call(p.proxy.ports.http);
    expect([r.status, r.headers['x-egress-error']]).toEqual([502, 'TLS_FAILED']);
    expect(upstream.requests()).toBe(0);
  });
});

describe('subjectAltNames and serverName', () => {
  const euCert = () => leafCert(['api.eu-1.example.test']);

  test('Prefix "api.eu-" accepts a certificate for api.eu-1.example.test', async () => {
    const upstream = await upstreamWith(euCert());
    const p = await proxyFor(chartWith({ subjectAltNames: [SubjectAltName.prefix('api.eu-')] }), upstream);
    expect(p.synthesised.externalServices[0].tls.subjectAltNames).toEqual([{ type: 'Prefix', value: 'api.eu-' }]);
    expect((await call(p.proxy.ports.http)).status).toBe(200);
    expect(upstream.requests()).toBe(1);
  });

  test('Exact "api.example.test" refuses the same certificate: 502 and no request', async () => {
    const upstream = await upstreamWith(euCert());
    const p = await proxyFor(chartWith({ subjectAltNames: [SubjectAltName.exact('api.example.test')] }), upstream);
    expect(p.synthesised.externalServices[0].tls.subjectAltNames).toEqual([{ type: 'Exact', value: 'api.example.test' }]);
    const r = await call(p.proxy.ports.http);
    expect([r.status, r.headers['x-egress-error'], upstream.requests()]).toEqual([502, 'TLS_FAILED', 0]);
  });

  test('Exact "api.eu-1.example.test" accepts it, and a Prefix that is not a prefix refuses it', async () => {
    const ok = await upstreamWith(euCert());
    const exact = await proxyFor(chartWith({ subjectAltNames: [SubjectAltName.exact('api.eu-1.example.test')] }), ok);
    expect((await call(exact.proxy.ports.http)).status).toBe(200);
    const refused = await upstreamWith(euCert());
    const prefix = await proxyFor(chartWith({ subjectAltNames: [SubjectAltName.prefix('api.us-')] }), refused);
    expect((await call(prefix.proxy.ports.http)).status).toBe(502);
    expect(refused.requests()).toBe(0);
  });

  test('SkipCA with subjectAltNames checks the list, not the chain', async () => {
    const upstream = await upstreamWith(leafCert(['api.eu-1.example.test'], { untrusted: true }));
    const p = await proxyFor(chartWith({ verification: TlsVerification.skipCa(), subjectAltNames: [SubjectAltName.prefix('api.eu-')] }), upstream);
    expect((await call(p.proxy.ports.http)).status).toBe(200);
    const other = await upstreamWith(leafCert(['api.eu-1.example.test'], { untrusted: true }));
    const q = await proxyFor(chartWith({ verification: TlsVerification.skipCa(), subjectAltNames: [SubjectAltName.exact(HOST)] }), other);
    expect((await call(q.proxy.ports.http)).status).toBe(502);
    expect(other.requests()).toBe(0);
  });

  test('serverName overrides SNI (observed at the upstream) and is the name verified; Host stays the service host', async () => {
    const upstream = await upstreamWith(leafCert(['sni.example.test']));
    const p = await proxyFor(chartWith({ serverName: 'sni.example.test' }), upstream);
    expect(p.synthesised.externalServices[0].tls.serverName).toBe('sni.example.test');
    expect((await call(p.proxy.ports.http)).status).toBe(200);
    expect(upstream.handshakes.map((h) => h.servername)).toEqual(['sni.example.test']);
    expect(upstream.seen.map((s) => s.headers.host)).toEqual([HOST]);
  });

  test('without serverName the SNI is the service host, so a certificate for the override name alone is refused', async () => {
    const upstream = await upstreamWith(leafCert(['sni.example.test']));
    const p = await proxyFor(chartWith({}), upstream);
    const r = await call(p.proxy.ports.http);
    expect([r.status, upstream.requests()]).toEqual([502, 0]);
  });
});
