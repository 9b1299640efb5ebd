// Seed 001 (Linkerd's "Managing egress traffic") end to end: examples/linkerd-egress is
// synthesised with its egress gateway, the gateway's ConfigMap is loaded into the real proxy, and
// curl and undici drive traffic through it to loopback stand-ins for httpbin.org and the
// internal-egress Service. Every observable result of the guide is asserted: statuses, bodies,
// and the Linkerd-named metrics scraped from the admin port with their exact label sets.
//
// The guide's intermediate steps (Deny with no routes; Deny plus httpbin-get) are not stages of
// the example, so guideStep() builds them with the example's constructs, names and gateway set-up.
//
// The `hostname` label: the seed shows hostname="github.com" for the denied TLS connection. This
// proxy labels a connection with the host as declared in its config (an ExternalService host or a
// route hostname) and "" for anything else, because a raw SNI or Host is client-supplied and would
// make the label set unbounded (STYLE.md: bounded metric labels). So github.com is labelled ""
// when nothing declares it, and exactly as in the seed once the gateway declares it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { App, Chart } from 'cdk8s';
import { buildApp, NAMESPACE, type Stage } from '../examples/linkerd-egress/main';
import { EgressGateway } from '../src/egress-gateway';
import { EgressNetwork } from '../src/egress-network';
import { PathMatch } from '../src/route-match';
import { EnforcementMode, TrafficPolicy } from '../src/traffic-policy';
import {
  curl, proxyConfigMap, readManifests, routeLabels, scrapeSamples, serverCertFor, startFromSynth, type SynthProxy,
} from './e2e/helpers';
import { validatePath } from './mesh/validate';
import { eventually, rawRequest, startHttpsUpstream, startHttpUpstream, testPki, viaProxy, type TestUpstream } from './proxy/helpers';

const INTERNAL_EGRESS = `internal-egress.${NAMESPACE}.svc.cluster.local`;
/** The loopback resolver's whole world: the guide's hosts and the in-cluster Service. */
const NAMES = { 'httpbin.org': '127.0.0.1', 'github.com': '127.0.0.1', 'google.com': '127.0.0.1', [INTERNAL_EGRESS]: '127.0.0.1' };
const HTTP_STATUSES = 'outbound_http_route_request_statuses_total';
const TLS_OPEN = 'outbound_tls_route_open_total';
const TLS_CLOSE = 'outbound_tls_route_close_total';

let httpbin: TestUpstream;
let internal: TestUpstream;
let sp: SynthProxy | undefined;
let dir: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-linkerd-egress-'));
  // httpbin.org stand-in: HTTPS with a certificate the test CA signed for the guide's hosts.
  httpbin = await startHttpsUpstream((req, res) => {
    const body = req.url === '/ip' ? { origin: '127.0.0.1' } : { args: {}, headers: { Host: req.headers.host }, url: `https://${req.headers.host}${req.url}` };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }, serverCertFor(['httpbin.org', 'github.com', 'google.com']));
  // internal-egress stand-in: the guide's `bb terminus --response-text 'You cannot go there right now'`.
  internal = await startHttpUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ requestUID: 'in:http-sid:terminus', payload: 'You cannot go there right now' }));
  });
});

afterEach(async () => {
  // The dialer throws for any address outside loopback; it must never have been asked for one.
  if (sp) expect(sp.dialer.refused).toEqual([]);
  await sp?.close();
  await httpbin.close();
  await internal.close();
  rmSync(dir, { recursive: true, force: true });
  sp = undefined;
});

/** The gateway the example renders with `{ gateway: true }`. */
function gatewayOf(app: App): EgressGateway {
  const found = app.node.findAll().filter((c): c is EgressGateway => c instanceof EgressGateway);
  expect(found).toHaveLength(1);
  return found[0];
}

/** The example at `stage`, with its gateway; `extra` may add to it before synthesis. */
function exampleApp(stage: Stage, extra?: (gateway: EgressGateway) => void): App {
  const app = buildApp(dir, stage, { gateway: true });
  extra?.(gatewayOf(app));
  return app;
}

/**
 * The guide's steps between the example's stages, built like the example builds its egress chart:
 * 'deny-all' is the EgressNetwork patched to Deny with no routes; 'httpbin-get' adds the HTTPRoute.
 */
function guideStep(step: 'deny-all' | 'httpbin-get', enforcement = EnforcementMode.ENFORCE): App {
  const app = new App({ outdir: dir });
  const egress = new Chart(app, 'egress', { namespace: NAMESPACE });
  const network = new EgressNetwork(egress, 'AllEgressTraffic', { name: 'all-egress-traffic', trafficPolicy: TrafficPolicy.DENY, enforcement });
  const gateway = new EgressGateway(egress, 'Gateway', { namespace: NAMESPACE, createNamespace: false, tlsPassthrough: true, network });
  gateway.addExternalService('Httpbin', { host: 'httpbin.org' });
  if (step === 'httpbin-get') {
    network.addHttpRoute('HttpbinGet', { name: 'httpbin-get', port: 80, rules: [{ matches: [{ path: PathMatch.prefix('/get') }] }] });
  }
  return app;
}

/** Synthesise `app` to its directory, take the gateway ConfigMap out of the YAML, run the proxy on it. */
async function start(app: App): Promise<SynthProxy> {
  app.synth();
  const configText = proxyConfigMap(readManifests(dir)).data['config.json'];
  sp = await startFromSynth({ configText, names: NAMES, ports: { 443: httpbin.port, 80: internal.port } });
  return sp;
}

/** curl to the plaintext listener the way a meshed client calls http://<host>.egress.local. */
function curlPlain(p: SynthProxy, host: string, path: string) {
  const name = `${host}.egress.local`;
  return curl(['--connect-to', `${name}:80:127.0.0.1:${p.proxy.ports.http}`, '-w', '\n%{http_code}', `http://${name}${path}`]);
}

/** curl https://<host><path> through the TLS passthrough listener, trusting the test CA. */
function curlTls(p: SynthProxy, host: string, path: string) {
  return curl(['--cacert', testPki().caFile, '--connect-to', `${host}:443:127.0.0.1:${p.proxy.ports.tls}`, '-w', '\n%{http_code}', `https://${host}${path}`]);
}

/** A TLS handshake with `servername` through the passthrough listener: did it complete? */
function tlsHandshake(port: number, servername: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: testPki().caPem });
    s.setTimeout(10_000, () => s.destroy());
    s.once('secureConnect', () => {
      s.end();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
  });
}

const status = (labels: Record<string, string>, httpStatus: string) => ({ ...labels, http_status: httpStatus, error: '' });

describe('the example with its gateway', () => {
  test.each(['allow', 'deny'] as const)('%s stage: passes the strict validator, and the gateway enforces the example\'s EgressNetwork and routes', (stage) => {
    const app = exampleApp(stage);
    app.synth();
    const v = validatePath(dir);
    expect(v.messages).toEqual([]);
    expect(v.passed).toBeGreaterThan(0);
    const config = JSON.parse(proxyConfigMap(readManifests(dir)).data['config.json']);
    expect(config.parent).toEqual({
      group: 'policy.linkerd.io',
      kind: 'EgressNetwork',
      name: 'all-egress-traffic',
      namespace: NAMESPACE,
      trafficPolicy: stage === 'allow' ? 'Allow' : 'Deny',
      networks: [],
      mode: 'Enforce',
    });
    expect(config.routes.map((r: any) => `${r.kind}/${r.name}`)).toEqual(stage === 'allow' ? [] : ['HTTPRoute/httpbin-get', 'TLSRoute/tls-egress', 'HTTPRoute/unencrypted-http']);
    expect(config.listeners.http.parentPort).toBe(80);
    expect(config.listeners.tls.parentPort).toBe(443);
  });
});

describe('seed 001, step by step, through the real proxy', () => {
  test('Allow: GET http://httpbin.org/get reaches httpbin over verified TLS and is counted on http-egress-allow', async () => {
    const p = await start(exampleApp('allow'));
    const viaUndici = await viaProxy(p.proxy.ports.http, 'httpbin.org.egress.local', '/get');
    expect(viaUndici.status).toBe(200);
    expect(JSON.parse(viaUndici.body)).toEqual({ args: {}, headers: { Host: 'httpbin.org' }, url: 'https://httpbin.org/get' });
    const viaCurl = await curlPlain(p, 'httpbin.org', '/get');
    expect(viaCurl.code).toBe(0);
    expect(viaCurl.stdout.split('\n').pop()).toBe('200');

    expect(httpbin.seen.map((s) => [s.headers.host, s.servername, s.url])).toEqual([['httpbin.org', 'httpbin.org', '/get'], ['httpbin.org', 'httpbin.org', '/get']]);
    expect(await scrapeSamples(p.proxy.ports.admin, HTTP_STATUSES)).toEqual([{
      // The seed's line, label for label.
      labels: {
        parent_group: 'policy.linkerd.io',
        parent_kind: 'EgressNetwork',
        parent_namespace: 'egress-test',
        parent_name: 'all-egress-traffic',
        parent_port: '80',
        parent_section_name: '',
        route_group: '',
        route_kind: 'default',
        route_namespace: '',
        route_name: 'http-egress-allow',
        hostname: 'httpbin.org',
        http_status: '200',
        error: '',
      },
      value: 2,
    }]);
  });

  test('Deny, no routes: 403 on http-egress-deny, and nothing leaves', async () => {
    const p = await start(guideStep('deny-all'));
    const viaUndici = await viaProxy(p.proxy.ports.http, 'httpbin.org.egress.local', '/get');
    expect(viaUndici.status).toBe(403);
    expect(viaUndici.headers['x-egress-error']).toBe('EGRESS_DENIED');
    const viaCurl = await curlPlain(p, 'httpbin.org', '/get');
    expect(viaCurl.stdout.split('\n').pop()).toBe('403');
    expect(httpbin.connections()).toBe(0);
    expect(p.dialer.calls).toEqual([]);
    expect(await scrapeSamples(p.proxy.ports.admin, HTTP_STATUSES)).toEqual([
      { labels: status(routeLabels({ parentPort: 80, routeKind: 'default', routeName: 'http-egress-deny', hostname: 'httpbin.org' }), '403'), value: 2 },
    ]);
  });

  test('Deny + HTTPRoute httpbin-get: /get passes on the route, /ip gets 403, HTTPS is not allowed yet', async () => {
    const p = await start(guideStep('httpbin-get'));
    expect((await viaProxy(p.proxy.ports.http, 'httpbin.org.egress.local', '/get')).status).toBe(200);
    expect((await curlPlain(p, 'httpbin.org', '/get')).stdout.split('\n').pop()).toBe('200');
    expect((await viaProxy(p.proxy.ports.http, 'httpbin.org.egress.local', '/ip')).status).toBe(403);
    // Dot segments cannot smuggle /ip past the /get rule: the path is resolved before matching.
    // (node:http sends the path as written; a URL-parsing client would resolve it first.)
    expect((await rawRequest(p.proxy.ports.http, { path: '/get/../ip', headers: { host: 'httpbin.org.egress.local' } })).status).toBe(403);
    expect(httpbin.seen.map((s) => [s.servername, s.url])).toEqual([['httpbin.org', '/get'], ['httpbin.org', '/get']]);

    // "curl -v https://httpbin.org/get ... TLS connect error": no TLSRoute yet, so the connection is closed.
    const connectionsBefore = httpbin.connections();
    const https = await curlTls(p, 'httpbin.org', '/get');
    expect(https.code).toBe(35); // CURLE_SSL_CONNECT_ERROR, as in the guide
    expect(httpbin.connections()).toBe(connectionsBefore);
    expect(httpbin.requests()).toBe(2);

    expect(await scrapeSamples(p.proxy.ports.admin, HTTP_STATUSES)).toEqual([
      { labels: status(routeLabels({ parentPort: 80, routeKind: 'HTTPRoute', routeName: 'httpbin-get', hostname: 'httpbin.org' }), '200'), value: 2 },
      // /ip and /get/../ip.
      { labels: status(routeLabels({ parentPort: 80, routeKind: 'default', routeName: 'http-egress-deny', hostname: 'httpbin.org' }), '403'), value: 2 },
    ]);
    await eventually(async () => (await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).length > 0, 10_000, 'the TLS close to be counted');
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).toEqual([
      { labels: { ...routeLabels({ parentPort: 443, routeKind: 'default', routeName: 'tls-egress-deny', hostname: 'httpbin.org' }), error: 'forbidden' }, value: 1 },
    ]);
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_OPEN)).toEqual([]);
  });

  test('Deny + TLSRoute tls-egress: TLS with SNI httpbin.org passes end to end and is counted on tls-egress', async () => {
    const p = await start(exampleApp('deny'));
    const r = await curlTls(p, 'httpbin.org', '/ip');
    expect(r.code).toBe(0);
    const [body, code] = r.stdout.split('\n');
    expect(code).toBe('200');
    expect(JSON.parse(body)).toEqual({ origin: '127.0.0.1' });
    // Passthrough: the client's own TLS session reached httpbin; the proxy only read the SNI.
    expect(httpbin.seen.map((s) => [s.servername, s.url])).toEqual([['httpbin.org', '/ip']]);

    const tlsEgress = routeLabels({ parentPort: 443, routeKind: 'TLSRoute', routeName: 'tls-egress', hostname: 'httpbin.org' });
    // The seed's line, label for label.
    expect(tlsEgress).toEqual({
      parent_group: 'policy.linkerd.io',
      parent_kind: 'EgressNetwork',
      parent_namespace: 'egress-test',
      parent_name: 'all-egress-traffic',
      parent_port: '443',
      parent_section_name: '',
      route_group: 'gateway.networking.k8s.io',
      route_kind: 'TLSRoute',
      route_namespace: 'egress-test',
      route_name: 'tls-egress',
      hostname: 'httpbin.org',
    });
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_OPEN)).toEqual([{ labels: tlsEgress, value: 1 }]);
    await eventually(async () => (await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).length > 0, 10_000, 'the TLS close to be counted');
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).toEqual([{ labels: { ...tlsEgress, error: '' }, value: 1 }]);
  });

  test('Deny + TLSRoute tls-egress: SNI github.com is closed on tls-egress-deny with error="forbidden" (hostname "": undeclared)', async () => {
    const p = await start(exampleApp('deny'));
    expect(await tlsHandshake(p.proxy.ports.tls!, 'github.com')).toBe(false);
    expect(p.resolver.calls).toEqual([]);
    expect(p.dialer.calls).toEqual([]);
    expect(httpbin.connections()).toBe(0);
    await eventually(async () => (await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).length > 0, 10_000, 'the TLS close to be counted');
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).toEqual([
      { labels: { ...routeLabels({ parentPort: 443, routeKind: 'default', routeName: 'tls-egress-deny', hostname: '' }), error: 'forbidden' }, value: 1 },
    ]);
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_OPEN)).toEqual([]);
  });

  test('with github.com declared on the gateway, the close is labelled exactly as in the seed', async () => {
    const p = await start(exampleApp('deny', (gateway) => gateway.addExternalService('Github', { host: 'github.com' })));
    expect(await tlsHandshake(p.proxy.ports.tls!, 'github.com')).toBe(false);
    await eventually(async () => (await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).length > 0, 10_000, 'the TLS close to be counted');
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_CLOSE)).toEqual([{
      labels: {
        parent_group: 'policy.linkerd.io',
        parent_kind: 'EgressNetwork',
        parent_namespace: 'egress-test',
        parent_name: 'all-egress-traffic',
        parent_port: '443',
        parent_section_name: '',
        route_group: '',
        route_kind: 'default',
        route_namespace: '',
        route_name: 'tls-egress-deny',
        hostname: 'github.com',
        error: 'forbidden',
      },
      value: 1,
    }]);
    expect(p.dialer.calls).toEqual([]);
  });

  test('redirect: other plaintext goes to internal-egress ("You cannot go there right now"); httpbin.org/get still reaches httpbin', async () => {
    const p = await start(exampleApp('deny'));
    const google = await curlPlain(p, 'google.com', '/');
    expect(google.code).toBe(0);
    const [googleBody, googleCode] = google.stdout.split('\n');
    expect(googleCode).toBe('200');
    expect(JSON.parse(googleBody).payload).toBe('You cannot go there right now');
    const viaUndici = await viaProxy(p.proxy.ports.http, 'google.com.egress.local', '/search?q=egress');
    expect(JSON.parse(viaUndici.body).payload).toBe('You cannot go there right now');
    // The in-cluster Service got the request in plaintext, for the name the client asked for.
    expect(internal.seen.map((s) => [s.headers.host, s.url])).toEqual([['google.com', '/'], ['google.com', '/search?q=egress']]);

    const get = await curlPlain(p, 'httpbin.org', '/get');
    expect(get.stdout.split('\n').pop()).toBe('200');
    expect(JSON.parse(get.stdout.split('\n')[0]).url).toBe('https://httpbin.org/get');
    expect(httpbin.seen.map((s) => [s.servername, s.url])).toEqual([['httpbin.org', '/get']]);
    // internal-egress was resolved (once per request) as the Service's cluster name and dialled on
    // its port 80; google.com itself was never resolved.
    expect(p.resolver.calls.filter((n) => n !== 'httpbin.org')).toEqual([INTERNAL_EGRESS, INTERNAL_EGRESS]);
    expect(p.dialer.calls).toEqual(expect.arrayContaining([{ address: '127.0.0.1', port: 80 }, { address: '127.0.0.1', port: 443 }]));
    expect(p.dialer.calls.every((c) => c.port === 80 || c.port === 443)).toBe(true);

    expect(await scrapeSamples(p.proxy.ports.admin, HTTP_STATUSES)).toEqual([
      { labels: status(routeLabels({ parentPort: 80, routeKind: 'HTTPRoute', routeName: 'unencrypted-http', hostname: '' }), '200'), value: 2 },
      { labels: status(routeLabels({ parentPort: 80, routeKind: 'HTTPRoute', routeName: 'httpbin-get', hostname: 'httpbin.org' }), '200'), value: 1 },
    ]);
  });
});

describe('report-only', () => {
  test('a Deny network in ReportOnly lets requests and TLS through and counts them on the deny routes as would-deny', async () => {
    const p = await start(guideStep('deny-all', EnforcementMode.REPORT_ONLY));
    expect(p.synthesised.parent).toMatchObject({ trafficPolicy: 'Deny', mode: 'ReportOnly' });
    const r = await viaProxy(p.proxy.ports.http, 'httpbin.org.egress.local', '/get');
    expect(r.status).toBe(200);
    expect(await tlsHandshake(p.proxy.ports.tls!, 'github.com')).toBe(true);
    await eventually(() => httpbin.servernames.length === 2, 10_000, 'the upstream to finish the github.com handshake');
    expect(httpbin.servernames).toEqual(['httpbin.org', 'github.com']);

    expect(await scrapeSamples(p.proxy.ports.admin, HTTP_STATUSES)).toEqual([
      { labels: status(routeLabels({ parentPort: 80, routeKind: 'default', routeName: 'http-egress-deny', hostname: 'httpbin.org' }), '200'), value: 1 },
    ]);
    expect(await scrapeSamples(p.proxy.ports.admin, TLS_OPEN)).toEqual([
      { labels: routeLabels({ parentPort: 443, routeKind: 'default', routeName: 'tls-egress-deny', hostname: '' }), value: 1 },
    ]);
    const request = p.logs.lines.find((l) => l.msg === 'request');
    expect(request).toMatchObject({ decision: 'allow', reason: 'report-only', reportOnly: true, route: 'http-egress-deny', host: 'httpbin.org', status: 200 });
  });
});
