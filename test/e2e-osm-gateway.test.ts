// examples/osm-egress, stage `gateway`, end to end: the synthesised config runs in the real proxy on
// loopback, behind a stand-in for the gateway pod's Linkerd sidecar. The stand-in does what the
// sidecar does for a meshed caller: it drops any l5d-client-id the caller sent and sets the
// caller's mTLS identity, connecting to the proxy from loopback (the only peer the proxy trusts).
// The policy the example declares (curl/curl may reach httpbin.org; unknown callers are refused)
// is asserted per caller: allowed ServiceAccount 200, another ServiceAccount 403
// CALLER_NOT_ALLOWED, no identity 403 CALLER_UNKNOWN, and another host 403.
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigWithBundle, proxyConfigMap, readManifests, serverCertFor, startFromSynth, type SynthProxy } from './e2e/helpers';
import { startHttpsUpstream, type TestUpstream } from './proxy/helpers';
import { buildApp, CURL_NAMESPACE } from '../examples/osm-egress/main';

const IDENTITY_HEADER = 'l5d-client-id';
const identity = (sa: string, ns: string) => `${sa}.${ns}.serviceaccount.identity.linkerd.cluster.local`;

interface Sidecar {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The gateway pod's Linkerd proxy, reduced to what matters here: each inbound request is sent on to
 * the egress proxy from 127.0.0.1 with l5d-client-id replaced by the identity the caller's mTLS
 * certificate names (`undefined`: an unmeshed caller, so no header at all).
 */
function startSidecar(proxyPort: number, callerIdentity: string | undefined): Promise<Sidecar> {
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    delete headers[IDENTITY_HEADER];
    if (callerIdentity !== undefined) headers[IDENTITY_HEADER] = callerIdentity;
    const out = http.request({ host: '127.0.0.1', port: proxyPort, method: req.method, path: req.url, headers, agent: false }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    }),
  })));
}

interface Answer {
  readonly status: number;
  readonly code?: string;
  readonly body: string;
}

/** A caller's request through `sidecar`: `http://<host>.egress.local<path>`, optionally forging the header. */
function call(sidecar: Sidecar, host: string, path: string, forged?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: `${host}.egress.local` };
    if (forged !== undefined) headers[IDENTITY_HEADER] = forged;
    const req = http.request({ host: '127.0.0.1', port: sidecar.port, path, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => body += c);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: res.headers['x-egress-error'] as string | undefined, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

let dir: string;
let httpbin: TestUpstream;
let sp: SynthProxy;
const seen: Array<Record<string, unknown>> = [];
const sidecars: Sidecar[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'e2e-osm-gateway-'));
  buildApp(dir, 'gateway').synth();
  httpbin = await startHttpsUpstream((req, res) => {
    seen.push({ ...req.headers });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: `https://${req.headers.host}${req.url}` }));
  }, serverCertFor(['httpbin.org', 'example.com']));
  const configText = proxyConfigMap(readManifests(dir)).data['config.json'];
  sp = await startFromSynth({ configText, names: { 'httpbin.org': '127.0.0.1', 'example.com': '127.0.0.1' }, ports: { 443: httpbin.port } });
});

afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.close()));
  // The dialer throws for any address outside loopback; it must never have been asked for one.
  expect(sp.dialer.refused).toEqual([]);
  await sp.close();
  await httpbin.close();
  rmSync(dir, { recursive: true, force: true });
});

async function sidecarFor(callerIdentity: string | undefined): Promise<Sidecar> {
  const s = await startSidecar(sp.proxy.ports.http, callerIdentity);
  sidecars.push(s);
  return s;
}

test('the synthesised config is the one the bundled proxy accepts', async () => {
  const r = await checkConfigWithBundle(sp.synthesisedFile);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});

test('the Egress policy\'s ServiceAccount reaches httpbin.org; the identity header never goes upstream', async () => {
  const curl = await sidecarFor(identity('curl', CURL_NAMESPACE));
  const r = await call(curl, 'httpbin.org', '/get');
  expect(r.status).toBe(200);
  expect(JSON.parse(r.body).url).toBe('https://httpbin.org/get');
  expect(seen.length).toBeGreaterThan(0);
  for (const headers of seen) expect(headers).not.toHaveProperty(IDENTITY_HEADER);
});

test('another ServiceAccount, even of the same namespace, gets 403 CALLER_NOT_ALLOWED and nothing is dialled', async () => {
  const before = sp.dialer.calls.length;
  const other = await sidecarFor(identity('default', CURL_NAMESPACE));
  expect(await call(other, 'httpbin.org', '/get')).toMatchObject({ status: 403, code: 'CALLER_NOT_ALLOWED' });
  expect(sp.dialer.calls.length).toBe(before);
});

test('a caller without an identity gets 403 CALLER_UNKNOWN, and cannot forge one through the sidecar', async () => {
  const unmeshed = await sidecarFor(undefined);
  expect(await call(unmeshed, 'httpbin.org', '/get')).toMatchObject({ status: 403, code: 'CALLER_UNKNOWN' });
  // The sidecar replaces what the caller sent: a forged curl identity from another account is dropped.
  const other = await sidecarFor(identity('default', CURL_NAMESPACE));
  expect(await call(other, 'httpbin.org', '/get', identity('curl', CURL_NAMESPACE))).toMatchObject({ status: 403, code: 'CALLER_NOT_ALLOWED' });
});

test('the allowed ServiceAccount still reaches nothing the policies do not declare', async () => {
  const curl = await sidecarFor(identity('curl', CURL_NAMESPACE));
  const r = await call(curl, 'example.com', '/');
  expect(r.status).toBe(403);
  expect(r.code).not.toMatch(/^CALLER_/);
});
