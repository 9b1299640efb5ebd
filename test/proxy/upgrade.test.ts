// HTTP Upgrade (WebSocket-style) through the egress name: decided like a request, TLS originated
// and verified, Upgrade kept end to end, bytes spliced; denied upgrades get 403.
import * as http from 'node:http';
import * as net from 'node:net';
import type { Socket } from 'node:net';
import { eventually, sample, scrape, startHttpsUpstream, startTestProxy, testConfig, testService, type TestProxy, type TestUpstream } from './helpers';
import { upgradeRequestHead } from '../../src/proxy/upgrade';

const NAMES = { 'api.test.example': '127.0.0.1' };
let tp: TestProxy | undefined;
let upstream: TestUpstream | undefined;

afterEach(async () => {
  await tp?.proxy.close();
  await upstream?.close();
  tp = undefined;
  upstream = undefined;
});

/** An HTTPS upstream that accepts `Upgrade: echo` and then echoes bytes. */
async function echoUpgradeUpstream(): Promise<{ seen: http.IncomingHttpHeaders[] }> {
  const seen: http.IncomingHttpHeaders[] = [];
  upstream = await startHttpsUpstream();
  upstream.server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
    seen.push(req.headers);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  return { seen };
}

function upgradeThrough(port: number, host: string): Promise<{ status?: number; socket?: Socket; body?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/stream', headers: { host, 'connection': 'Upgrade', 'upgrade': 'echo', 'proxy-authorization': 'x' } });
    req.on('upgrade', (res, socket) => resolve({ status: res.statusCode, socket }));
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('an allowed upgrade is spliced to the upstream over verified TLS', async () => {
  const { seen } = await echoUpgradeUpstream();
  tp = await startTestProxy(testConfig({
    externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream!.port }] })],
  }), NAMES);
  const r = await upgradeThrough(tp.proxy.ports.http, 'api.test.example.egress.local');
  expect(r.status).toBe(101);
  const echoed = await new Promise<string>((resolve) => {
    r.socket!.once('data', (c: Buffer) => resolve(c.toString()));
    r.socket!.write('ping through the upgrade');
  });
  expect(echoed).toBe('ping through the upgrade');
  r.socket!.destroy();
  expect(seen[0].host).toBe(`api.test.example:${upstream!.port}`);
  expect(seen[0].upgrade).toBe('echo');
  expect(seen[0]['proxy-authorization']).toBeUndefined();
  expect(upstream!.servernames).toEqual(['api.test.example']);
  // Counted when the upgraded exchange ends.
  const counted = /outbound_http_route_request_statuses_total\{[^}]*route_name="http-egress-allow"[^}]*http_status="101",error=""\} 1/;
  await eventually(async () => counted.test(await scrape(tp!.proxy.ports.admin)), 5_000, 'upgrade counted');
});

test('a denied upgrade gets 403 and nothing is dialled', async () => {
  tp = await startTestProxy(testConfig({ parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny' } }), NAMES);
  const r = await upgradeThrough(tp.proxy.ports.http, 'api.test.example.egress.local');
  expect(r.status).toBe(403);
  expect(r.body).toContain('EGRESS_DENIED');
  expect(tp.dialer.calls).toEqual([]);
  const m = await scrape(tp.proxy.ports.admin);
  expect(sample(m, 'outbound_http_route_request_statuses_total', {
    parent_group: 'policy.linkerd.io',
    parent_kind: 'EgressNetwork',
    parent_namespace: 'n',
    parent_name: 'p',
    parent_port: '80',
    parent_section_name: '',
    route_group: '',
    route_kind: 'default',
    route_namespace: '',
    route_name: 'http-egress-deny',
    hostname: '',
    http_status: '403',
    error: '',
  })).toBe(1);
});

test('an upgrade with an ambiguous path where a route restricts paths, or two Host lines, gets 400 and nothing is dialled', async () => {
  await echoUpgradeUpstream();
  tp = await startTestProxy(testConfig({
    parent: { name: 'p', namespace: 'n', trafficPolicy: 'Deny' },
    externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream!.port }] })],
    routes: [{ kind: 'HTTPRoute', name: 'stream-only', namespace: 'n', rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/stream' } }] }] }],
  }), NAMES);
  const raw = (head: string) => new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: tp!.proxy.ports.http });
    let got = '';
    s.on('data', (c: Buffer) => { got += c.toString(); });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.write(head);
  });
  const upgrade = 'Connection: Upgrade\r\nUpgrade: echo\r\n\r\n';
  expect(await raw(`GET /stream/..%2fadmin HTTP/1.1\r\nHost: api.test.example.egress.local\r\n${upgrade}`)).toMatch(/^HTTP\/1\.1 400[^]*x-egress-error: BAD_REQUEST/);
  expect(await raw(`GET /stream HTTP/1.1\r\nHost: api.test.example.egress.local\r\nHost: other.test.example.egress.local\r\n${upgrade}`))
    .toMatch(/^HTTP\/1\.1 400/);
  expect(tp.dialer.calls).toEqual([]);
});

test('the request head drops line-broken values rather than writing them raw', () => {
  const req = { method: 'GET', headers: { 'host': 'x', 'upgrade': 'websocket', 'x-ok': 'fine' } } as unknown as http.IncomingMessage;
  const plan = { kind: 'external', host: 'api.example', port: 443, groups: [], exempt: false, timeouts: {} } as never;
  const decision = {
    action: 'allow',
    reason: 'route-matched',
    reportOnly: false,
    route: { group: '', kind: 'HTTPRoute', namespace: 'n', name: 'r' },
    rule: { matches: [], backendRefs: [], filters: [{ type: 'RequestHeaderModifier', headerModifier: { set: [{ name: 'x-evil', value: 'a\r\nx-injected: 1' }], add: [], remove: [] } }] },
  } as never;
  const head = upgradeRequestHead(req, '/ws', plan, decision);
  expect(head).toBe('GET /ws HTTP/1.1\r\nx-ok: fine\r\nhost: api.example:443\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
});
