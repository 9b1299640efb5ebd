// Per-caller policy through the bundled proxy as a process (assets/proxy/main/index.js), with a
// stand-in for the gateway's sidecar on loopback: it authenticates clients (here: believes the
// x-test-as header), drops whatever identity header they sent and sets its own, as Linkerd's
// inbound proxy and Istio's Envoy do, then connects to the proxy from 127.0.0.1. A client that
// skips the sidecar connects from 127.0.0.2, which the config's trustedPeers leaves out: the
// proxy must ignore the identity it forges. Loopback only; every process and server is stopped.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { join, resolve } from 'node:path';
import { collectJsonLines, eventually, sample, scrape, startHttpUpstream, testConfig, testPki, type TestUpstream } from './helpers';

const BUNDLE = resolve(__dirname, '../../assets/proxy/main/index.js');
const TD = 'cluster.local';
const STRIPE = 'api.stripe.example';
const OPEN = 'open.example';
const FLAKY = 'flaky.example';

beforeAll(() => {
  if (!existsSync(BUNDLE)) {
    const r = spawnSync('npx', ['projen', 'bundle'], { cwd: resolve(__dirname, '../..'), stdio: 'pipe' });
    if (r.status !== 0) throw new Error(`bundle failed: ${r.stderr}`);
  }
});

type Source = 'Linkerd' | 'Istio';

/** What the sidecar sets for a client authenticated as namespace/serviceAccount. */
function identityHeader(source: Source, ns: string, sa: string, clientSent?: string): [string, string] {
  if (source === 'Linkerd') return ['l5d-client-id', `${sa}.${ns}.serviceaccount.identity.linkerd.${TD}`];
  // Envoy appends its element (APPEND_FORWARD): whatever the client sent comes first.
  const element = `By=spiffe://${TD}/ns/egress/sa/egress-gateway;Hash=0f1e2d;Subject="";URI=spiffe://${TD}/ns/${ns}/sa/${sa}`;
  return ['x-forwarded-client-cert', clientSent ? `${clientSent},${element}` : element];
}

interface Running {
  readonly child: ChildProcess;
  readonly ports: { http: number; admin: number };
  readonly lines: Array<Record<string, any>>;
  readonly exited: Promise<number | null>;
}

async function startBundle(name: string, config: Record<string, unknown>): Promise<Running> {
  const file = join(testPki().dir, `callers-${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [BUNDLE, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = collectJsonLines(child.stdout!);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await eventually(() => lines.some((l) => l.event === 'started') || child.exitCode !== null, 15_000, 'proxy start');
  const started = lines.find((l) => l.event === 'started');
  if (!started) throw new Error(`proxy did not start: ${stderr}`);
  return { child, ports: started.ports as { http: number; admin: number }, lines, exited };
}

async function stopBundle(r: Running | undefined): Promise<void> {
  if (!r) return;
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await r.exited;
}

/** The sidecar stand-in: one listener on 127.0.0.1, forwarding each request to the proxy from 127.0.0.1. */
function startSidecar(source: Source, proxyPort: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const as = String(req.headers['x-test-as'] ?? 'none');
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || ['x-test-as', 'connection', 'l5d-client-id'].includes(k)) continue;
      if (k === 'x-forwarded-client-cert' && source === 'Linkerd') continue;
      headers[k] = v;
    }
    const clientXfcc = req.headers['x-forwarded-client-cert'] as string | undefined;
    delete headers['x-forwarded-client-cert'];
    if (as !== 'none') {
      const [ns, sa] = as.split('/');
      const [name, value] = identityHeader(source, ns, sa, clientXfcc);
      headers[name] = value;
    }
    const up = http.request({ host: '127.0.0.1', port: proxyPort, localAddress: '127.0.0.1', method: req.method, path: req.url, headers, agent: false }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  })));
}

interface Answer { status: number; code?: string; body: string }

/** A request from 127.0.0.1 to `port` (the sidecar, or the proxy itself), or from another loopback address. */
function get(port: number, host: string, headers: Record<string, string> = {}, localAddress = '127.0.0.1'): Promise<Answer> {
  return new Promise((ok, fail) => {
    const req = http.request({ host: '127.0.0.1', port, localAddress, path: '/v1/charges', headers: { host: `${host}.egress.local`, ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => ok({ status: res.statusCode ?? 0, code: res.headers['x-egress-error'] as string | undefined, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

function proxyConfig(source: Source, upstreamPort: number, extra: { unknown?: 'AllowUnrestricted' | 'Deny'; mode?: 'Enforce' | 'ReportOnly' } = {}) {
  const service = (name: string, host: string, more: Record<string, unknown> = {}) => ({
    name, host, tls: { enabled: false }, ports: [{ port: 80, targetPort: upstreamPort }], endpoints: [{ address: '127.0.0.1' }], ...more,
  });
  return testConfig({
    parent: { name: 'all-egress', namespace: 'egress', trafficPolicy: 'Allow', mode: extra.mode ?? 'Enforce' },
    callers: { source, trustDomain: TD, unknown: extra.unknown ?? 'AllowUnrestricted', metricsLabel: true, trustedPeers: ['127.0.0.1/32', 'PodIP'] },
    externalServices: [
      service('stripe', STRIPE, { clients: [{ serviceAccount: { namespace: 'payments', name: 'billing' } }] }),
      service('open', OPEN),
      service('flaky', FLAKY, { retry: { maxRetries: 2, statusCodes: [503], backoffBaseMs: 1, backoffMaxMs: 5 } }),
    ],
  });
}

/** Every identity header any upstream request carried: must stay empty. */
function leakedIdentities(upstream: TestUpstream): string[] {
  return upstream.seen.flatMap((s) => ['l5d-client-id', 'x-forwarded-client-cert'].filter((h) => s.headers[h] !== undefined).map((h) => `${s.url} ${h}`));
}

describe.each<Source>(['Linkerd', 'Istio'])('%s identities through the bundled proxy', (source) => {
  let upstream: TestUpstream;
  let proxy: Running | undefined;
  let sidecar: { port: number; close(): Promise<void> } | undefined;
  const forged = Object.fromEntries([identityHeader(source, 'payments', 'billing')]);

  beforeAll(async () => {
    upstream = await startHttpUpstream();
  });
  afterAll(async () => {
    await upstream.close();
  });
  afterEach(async () => {
    await sidecar?.close();
    await stopBundle(proxy);
    sidecar = undefined;
    proxy = undefined;
  });

  test('unknown AllowUnrestricted: the client 200, another caller 403 CALLER_NOT_ALLOWED, unknown callers only where nothing declares clients, forged identities ignored', async () => {
    proxy = await startBundle(`${source}-allow`, proxyConfig(source, upstream.port));
    sidecar = await startSidecar(source, proxy.ports.http);
    const before = upstream.requests();

    expect(await get(sidecar.port, STRIPE, { 'x-test-as': 'payments/billing' })).toMatchObject({ status: 200, body: 'hello GET /v1/charges' });
    expect(await get(sidecar.port, STRIPE, { 'x-test-as': 'shop/web' })).toMatchObject({ status: 403, code: 'CALLER_NOT_ALLOWED' });
    // An unmeshed client: the sidecar sets no identity.
    expect(await get(sidecar.port, STRIPE, { 'x-test-as': 'none' })).toMatchObject({ status: 403, code: 'CALLER_UNKNOWN' });
    expect(await get(sidecar.port, OPEN, { 'x-test-as': 'none' })).toMatchObject({ status: 200 });
    // Skipping the sidecar, from another address, with the allowed client's identity.
    expect(await get(proxy.ports.http, STRIPE, forged, '127.0.0.2')).toMatchObject({ status: 403, code: 'CALLER_UNKNOWN' });
    expect(await get(proxy.ports.http, OPEN, forged, '127.0.0.2')).toMatchObject({ status: 200 });
    // A client of the sidecar that sends the header itself does not choose its identity.
    expect(await get(sidecar.port, STRIPE, { 'x-test-as': 'shop/web', ...forged })).toMatchObject({ status: 403, code: 'CALLER_NOT_ALLOWED' });

    expect(upstream.requests() - before).toBe(3);
    expect(leakedIdentities(upstream)).toEqual([]);

    await eventually(() => proxy!.lines.filter((l) => l.msg === 'request').length >= 7, 5_000, 'access log lines');
    const access = proxy.lines.filter((l) => l.msg === 'request');
    const billingId = identityHeader(source, 'payments', 'billing')[1];
    const expectedIdentity = source === 'Linkerd' ? billingId : `spiffe://${TD}/ns/payments/sa/billing`;
    expect(access[0]).toMatchObject({ status: 200, reason: 'default-allow', caller: { identity: expectedIdentity, trusted: true } });
    expect(access[1]).toMatchObject({ status: 403, error: 'CALLER_NOT_ALLOWED', reason: 'caller-not-allowed' });
    expect(access[2]).toMatchObject({ status: 403, error: 'CALLER_UNKNOWN', caller: { identity: null, trusted: true, unknown: 'no-header' } });
    expect(access[4]).toMatchObject({ status: 403, error: 'CALLER_UNKNOWN', caller: { identity: null, trusted: false, unknown: 'untrusted-peer' } });

    const metrics = await scrape(proxy.ports.admin);
    const route = {
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress',
      parent_name: 'all-egress',
      parent_port: '80',
      parent_section_name: '',
      route_group: '',
      route_kind: 'default',
      route_namespace: '',
      route_name: 'http-egress-allow',
    };
    expect(sample(metrics, 'outbound_http_route_request_statuses_total', { ...route, hostname: STRIPE, caller: 'sa:payments/billing', http_status: '200', error: '' })).toBe(1);
    expect(sample(metrics, 'outbound_http_route_request_statuses_total', { ...route, hostname: STRIPE, caller: 'other', http_status: '403', error: '' })).toBe(2);
    expect(sample(metrics, 'outbound_http_route_request_statuses_total', { ...route, hostname: STRIPE, caller: 'unknown', http_status: '403', error: '' })).toBe(2);
    const denial = { route_group: '', route_kind: 'default', route_namespace: '', route_name: 'http-egress-allow', hostname: STRIPE, protocol: 'http', mode: 'enforce' };
    expect(sample(metrics, 'egress_policy_denials_total', { ...denial, reason: 'caller-not-allowed', caller: 'other' })).toBe(2);
    expect(sample(metrics, 'egress_policy_denials_total', { ...denial, reason: 'caller-unknown', caller: 'unknown' })).toBe(2);
  });

  test('unknown Deny: an unknown caller is refused everywhere, a forged identity too; known callers pass where open', async () => {
    proxy = await startBundle(`${source}-deny`, proxyConfig(source, upstream.port, { unknown: 'Deny' }));
    sidecar = await startSidecar(source, proxy.ports.http);
    expect(await get(sidecar.port, OPEN, { 'x-test-as': 'none' })).toMatchObject({ status: 403, code: 'CALLER_UNKNOWN' });
    expect(await get(proxy.ports.http, OPEN, forged, '127.0.0.2')).toMatchObject({ status: 403, code: 'CALLER_UNKNOWN' });
    expect(await get(sidecar.port, OPEN, { 'x-test-as': 'shop/web' })).toMatchObject({ status: 200 });
    expect(await get(sidecar.port, STRIPE, { 'x-test-as': 'payments/billing' })).toMatchObject({ status: 200 });
    expect(leakedIdentities(upstream)).toEqual([]);
  });
});

describe('report-only, CONNECT, HTTP/2 and retries (Linkerd)', () => {
  let upstream: TestUpstream;
  let proxy: Running | undefined;
  const id = (ns: string, sa: string) => identityHeader('Linkerd', ns, sa)[1];
  afterEach(async () => {
    await stopBundle(proxy);
    await upstream?.close();
    proxy = undefined;
  });

  test('ReportOnly: a caller refusal is served and counted as a report-only denial', async () => {
    upstream = await startHttpUpstream();
    proxy = await startBundle('report-only', proxyConfig('Linkerd', upstream.port, { mode: 'ReportOnly' }));
    expect(await get(proxy.ports.http, STRIPE, { 'l5d-client-id': id('shop', 'web') })).toMatchObject({ status: 200 });
    expect(await get(proxy.ports.http, STRIPE)).toMatchObject({ status: 200 });
    const metrics = await scrape(proxy.ports.admin);
    const denial = { route_group: '', route_kind: 'default', route_namespace: '', route_name: 'http-egress-allow', hostname: STRIPE, protocol: 'http', mode: 'report-only' };
    expect(sample(metrics, 'egress_policy_denials_total', { ...denial, reason: 'caller-not-allowed', caller: 'other' })).toBe(1);
    expect(sample(metrics, 'egress_policy_denials_total', { ...denial, reason: 'caller-unknown', caller: 'unknown' })).toBe(1);
    await eventually(() => proxy!.lines.filter((l) => l.msg === 'request').length >= 2, 5_000, 'access log lines');
    expect(proxy.lines.find((l) => l.msg === 'request')).toMatchObject({ reason: 'report-only', reportOnly: true, status: 200 });
    expect(leakedIdentities(upstream)).toEqual([]);
  });

  test('CONNECT carries headers: its identity decides the tunnel', async () => {
    upstream = await startHttpUpstream();
    proxy = await startBundle('connect', proxyConfig('Linkerd', upstream.port));
    const connect = (identity?: string) => new Promise<string>((ok, fail) => {
      const s = net.connect({ host: '127.0.0.1', port: proxy!.ports.http });
      let got = '';
      s.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        if (got.includes('\r\n\r\n')) {
          s.destroy();
          ok(got.split('\r\n')[0] + (/x-egress-error: (\S+)/.exec(got)?.[1] ? ` ${/x-egress-error: (\S+)/.exec(got)![1]}` : ''));
        }
      });
      s.on('error', fail);
      s.write(`CONNECT ${STRIPE}:80 HTTP/1.1\r\nHost: ${STRIPE}:80\r\n${identity ? `l5d-client-id: ${identity}\r\n` : ''}\r\n`);
    });
    expect(await connect(id('payments', 'billing'))).toBe('HTTP/1.1 200 Connection Established');
    expect(await connect(id('shop', 'web'))).toBe('HTTP/1.1 403 Forbidden CALLER_NOT_ALLOWED');
    expect(await connect()).toBe('HTTP/1.1 403 Forbidden CALLER_UNKNOWN');
  });

  test('identity headers never go upstream: HTTP/1.1 and HTTP/2 clients, first attempts and retries', async () => {
    let flaky = 0;
    upstream = await startHttpUpstream((req, res) => {
      if (req.headers.host?.startsWith(FLAKY) && flaky++ % 2 === 0) {
        res.writeHead(503);
        res.end('try again');
        return;
      }
      res.writeHead(200);
      res.end('ok');
    });
    proxy = await startBundle('strip', proxyConfig('Linkerd', upstream.port));
    const both = { 'l5d-client-id': id('payments', 'billing'), 'x-forwarded-client-cert': `URI=spiffe://${TD}/ns/payments/sa/billing` };
    expect(await get(proxy.ports.http, FLAKY, both)).toMatchObject({ status: 200 });
    expect(await get(proxy.ports.http, STRIPE, both)).toMatchObject({ status: 200 });
    const session = http2.connect(`http://127.0.0.1:${proxy.ports.http}`);
    try {
      const h2 = (host: string) => new Promise<number>((ok, fail) => {
        const stream = session.request({ ':method': 'GET', ':path': '/v1/charges', ':authority': `${host}.egress.local`, ...both });
        stream.on('response', (h) => {
          stream.resume();
          stream.on('end', () => ok(Number(h[':status'])));
        });
        stream.on('error', fail);
        stream.end();
      });
      expect(await h2(FLAKY)).toBe(200);
      expect(await h2(STRIPE)).toBe(200);
    } finally {
      session.destroy();
    }
    // Two retried requests (503, then 200) and two plain ones: six requests reached the upstream.
    expect(upstream.requests()).toBe(6);
    expect(upstream.seen.filter((s) => s.headers.host?.startsWith(FLAKY))).toHaveLength(4);
    expect(leakedIdentities(upstream)).toEqual([]);
  });
});
