/**
 * Shared helpers for the proxy's real-socket tests. Everything here talks to loopback only:
 *
 * - testPki(): a CA, server certificates and an untrusted CA minted with the `openssl` CLI into a
 *   temp dir, once per test process (cached).
 * - startHttpsUpstream() / startHttpUpstream(): upstream servers that count connections and
 *   requests and record what they saw (Host, SNI, headers).
 * - loopbackResolver() / loopbackDialer(): the injected resolver and dialer. The dialer refuses
 *   anything outside 127.0.0.0/8 and ::1 and records every call, so a vetting bug fails a test
 *   instead of sending a packet anywhere.
 * - testConfig(): a valid config document bound to 127.0.0.1 with ephemeral ports and
 *   addressPolicy.allowCidrs ['127.0.0.0/8'] so vetted loopback upstreams are reachable.
 * - startTestProxy(): startProxy() with those seams and a silent (or captured) logger.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import pino from 'pino';
import { request as undiciRequest } from 'undici';
import { reusePortSupported } from '../../src/proxy/listeners';
import type { ResolvedAddress, Resolver } from '../../src/proxy/resolve';
import type { Dialer } from '../../src/proxy/runtime';
import { startProxy, type ProxyHandle, type StartProxyOptions } from '../../src/proxy/server';

/* ------------------------------------------------------------------------- PKI */

export interface TestPki {
  readonly dir: string;
  /** Trusted test CA (PEM file path and content). */
  readonly caFile: string;
  readonly caPem: string;
  /** Server cert for api.test.example, *.test.example, localhost and 127.0.0.1, signed by the CA. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** Signed by the trusted CA but only for wrong.example: hostname verification must fail. */
  readonly wrongNameCert: string;
  readonly wrongNameKey: string;
  /** A second CA nobody trusts, and a cert for api.test.example signed by it. */
  readonly untrustedCaFile: string;
  readonly untrustedCert: string;
  readonly untrustedKey: string;
  /** Client certificate for mTLS upstreams, signed by the trusted CA. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

let pki: TestPki | undefined;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

function mintCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
}

function mintLeaf(dir: string, name: string, ca: string, sans: string, usage = 'serverAuth'): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${sans}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`], dir);
}

/** Mint (once per process) the test PKI with the openssl CLI. */
export function testPki(): TestPki {
  if (pki) return pki;
  const dir = mkdtempSync(join(tmpdir(), 'egress-pki-'));
  mintCa(dir, 'ca');
  mintCa(dir, 'untrusted-ca');
  mintLeaf(dir, 'server', 'ca', 'DNS:api.test.example,DNS:*.test.example,DNS:localhost,IP:127.0.0.1');
  mintLeaf(dir, 'wrong', 'ca', 'DNS:wrong.example');
  mintLeaf(dir, 'untrusted', 'untrusted-ca', 'DNS:api.test.example');
  mintLeaf(dir, 'client', 'ca', 'DNS:client.test.example', 'clientAuth');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  pki = {
    dir,
    caFile: join(dir, 'ca.pem'),
    caPem: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    wrongNameCert: read('wrong.pem'),
    wrongNameKey: read('wrong.key'),
    untrustedCaFile: join(dir, 'untrusted-ca.pem'),
    untrustedCert: read('untrusted.pem'),
    untrustedKey: read('untrusted.key'),
    clientCertFile: join(dir, 'client.pem'),
    clientKeyFile: join(dir, 'client.key'),
  };
  return pki;
}

/* ------------------------------------------------------------------------- upstreams */

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  /** SNI the client sent (HTTPS upstreams only). */
  readonly servername?: string;
}

export interface TestUpstream {
  readonly port: number;
  /** TCP connections accepted (TLS handshakes attempted included). */
  readonly connections: () => number;
  /** Requests that reached the handler (a failed TLS handshake never counts). */
  readonly requests: () => number;
  readonly seen: SeenRequest[];
  /** SNI names of every TLS connection that completed its handshake. */
  readonly servernames: string[];
  readonly server: http.Server;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const defaultHandler: UpstreamHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
  res.end(`hello ${req.method} ${req.url}`);
};

function wrapUpstream(server: http.Server, tls: boolean, handler: UpstreamHandler): Promise<TestUpstream> {
  let connections = 0;
  let requests = 0;
  const seen: SeenRequest[] = [];
  const servernames: string[] = [];
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  if (tls) server.on('secureConnection', (s: TLSSocket) => servernames.push((s as TLSSocket & { servername?: string }).servername || ''));
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests++;
    const servername = tls ? ((req.socket as TLSSocket & { servername?: string }).servername || undefined) : undefined;
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, servername });
    handler(req, res);
  });
  server.on('tlsClientError', () => undefined);
  server.on('clientError', (_e, s) => s.destroy());
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        connections: () => connections,
        requests: () => requests,
        seen,
        servernames,
        server,
        close: () => new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
      });
    });
  });
}

export interface HttpsUpstreamOptions {
  /** PEM certificate and key; default: the test server cert (api.test.example). */
  readonly cert?: string;
  readonly key?: string;
  /** Require and verify a client certificate signed by the test CA. */
  readonly requestClientCert?: boolean;
  readonly minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly ciphers?: string;
}

export function startHttpsUpstream(handler: UpstreamHandler = defaultHandler, options: HttpsUpstreamOptions = {}): Promise<TestUpstream> {
  const p = testPki();
  const server = https.createServer({
    cert: options.cert ?? p.serverCert,
    key: options.key ?? p.serverKey,
    ca: options.requestClientCert ? p.caPem : undefined,
    requestCert: options.requestClientCert ?? false,
    rejectUnauthorized: options.requestClientCert ?? false,
    minVersion: options.minVersion,
    maxVersion: options.maxVersion,
    ciphers: options.ciphers,
  });
  return wrapUpstream(server, true, handler);
}

export function startHttpUpstream(handler: UpstreamHandler = defaultHandler): Promise<TestUpstream> {
  return wrapUpstream(http.createServer(), false, handler);
}

/** A TCP server that accepts and never speaks (TLS handshake timeouts), counting connections. */
export function startSilentServer(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  })));
}

/* ------------------------------------------------------------------------- seams */

export function isLoopback(address: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) || address === '::1';
}

export interface RecordingResolver {
  readonly resolve: Resolver;
  readonly calls: string[];
}

/**
 * Resolver over a fixed table (name → addresses). Unknown names fail like NXDOMAIN. Addresses may
 * be anything (tests of vetting map names to private ranges); only the dialer limits where
 * connections can go.
 */
export function loopbackResolver(table: Record<string, string | string[]>): RecordingResolver {
  const calls: string[] = [];
  const resolve: Resolver = async (host) => {
    calls.push(host);
    const v = table[host];
    if (v === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    const list = Array.isArray(v) ? v : [v];
    return list.map((address): ResolvedAddress => ({ address, family: net.isIP(address) }));
  };
  return { resolve, calls };
}

export interface RecordingDialer {
  readonly dial: Dialer;
  /** Every (address, port) the proxy asked to dial, refused ones included. */
  readonly calls: Array<{ address: string; port: number }>;
  /** Calls for non-loopback addresses: any entry is a vetting bug. */
  readonly refused: Array<{ address: string; port: number }>;
}

/**
 * A dialer that connects only to loopback. Anything else is recorded in `refused` and gets a
 * socket that errors with EACCES, and no packet is sent. `neverConnect` makes loopback dials hang
 * (a connect that is never answered) to exercise connect timeouts.
 */
export function loopbackDialer(options: { neverConnect?: boolean } = {}): RecordingDialer {
  const calls: Array<{ address: string; port: number }> = [];
  const refused: Array<{ address: string; port: number }> = [];
  const dial: Dialer = (address, port) => {
    calls.push({ address, port });
    if (!isLoopback(address)) {
      refused.push({ address, port });
      const s = new net.Socket();
      process.nextTick(() => s.destroy(Object.assign(new Error(`test dialer refuses ${address}`), { code: 'EACCES' })));
      return s;
    }
    if (options.neverConnect) return new net.Socket();
    return net.connect({ host: address, port, allowHalfOpen: true });
  };
  return { dial, calls, refused };
}

/* ------------------------------------------------------------------------- config */

/** A valid config as plain JSON: loopback binds, ephemeral ports, loopback upstreams allowed. */
export function testConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    apiVersion: 'egress.cdk8s.io/v1alpha1',
    kind: 'EgressProxyConfig',
    gateway: { name: 'egress-gateway', namespace: 'egress' },
    listeners: { bindAddress: '127.0.0.1', http: { port: 0, suffixes: ['egress.local'], forwardProxy: true }, admin: { port: 0 } },
    parent: { name: 'all-egress', namespace: 'egress', trafficPolicy: 'Allow' },
    externalServices: [],
    routes: [],
    addressPolicy: { allowCidrs: ['127.0.0.0/8'] },
    defaultTls: { caFile: testPki().caFile },
  };
  return { ...base, ...overrides };
}

/** An ExternalService entry whose TLS trusts the test CA. */
export function testService(name: string, host: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, host, tls: { caFile: testPki().caFile }, ...extra };
}

export interface CapturedLogs {
  readonly lines: Array<Record<string, unknown>>;
}

/** A pino logger that keeps every line in memory (to assert on logs, e.g. that no secret leaks). */
export function capturingLogger(): { logger: pino.Logger; logs: CapturedLogs } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), logs: { lines } };
}

export interface TestProxy {
  readonly proxy: ProxyHandle;
  readonly resolver: RecordingResolver;
  readonly dialer: RecordingDialer;
  readonly logs: CapturedLogs;
}

/** startProxy with a loopback resolver over `names` and the recording loopback dialer. */
export async function startTestProxy(
  config: Record<string, unknown>,
  names: Record<string, string | string[]> = {},
  options: Partial<StartProxyOptions> & { neverConnect?: boolean } = {},
): Promise<TestProxy> {
  const resolver = loopbackResolver(names);
  const dialer = loopbackDialer({ neverConnect: options.neverConnect });
  const { logger, logs } = capturingLogger();
  const proxy = await startProxy({ config, resolver: resolver.resolve, dial: dialer.dial, logger, ...options });
  return { proxy, resolver, dialer, logs };
}

/* ------------------------------------------------------------------------- clients */

export interface ProxyResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** The header lines as received, `[name, value, ...]` (rawRequest only). */
  readonly rawHeaders?: readonly string[];
}

/** One request to the proxy's HTTP listener with an explicit Host (undici, fresh connection). */
export async function viaProxy(
  port: number, host: string, path = '/', init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<ProxyResponse> {
  const r = await undiciRequest(`http://127.0.0.1:${port}${path}`, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { host, ...(init.headers ?? {}) },
    body: init.body,
    reset: true,
  });
  return { status: r.statusCode, headers: r.headers as Record<string, string | string[] | undefined>, body: await r.body.text() };
}

/**
 * A request with node:http, which sends the request target and headers as given: absolute-form
 * (`GET http://host/path`, the http_proxy way) or a Connection header undici would rewrite.
 */
export function rawRequest(
  port: number, init: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: init.method ?? 'GET', path: init.path, headers: init.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), rawHeaders: res.rawHeaders,
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Prometheus text of the admin listener. */
export async function scrape(adminPort: number): Promise<string> {
  const r = await undiciRequest(`http://127.0.0.1:${adminPort}/metrics`);
  return r.body.text();
}

/** The value of one sample with exactly these labels, or undefined. */
export function sample(metricsText: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of metricsText.split('\n')) {
    if (line.startsWith(`${name} `) && Object.keys(labels).length === 0) return Number(line.slice(name.length + 1).trim());
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const body = line.slice(name.length + 1, close);
    const got: Record<string, string> = {};
    for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[m[1]] = m[2];
    const keys = Object.keys(labels);
    if (keys.length !== Object.keys(got).length) continue;
    if (keys.every((k) => got[k] === labels[k])) return Number(line.slice(close + 1).trim());
  }
  return undefined;
}

/** Write a config the way kubelet does for a ConfigMap volume: ..data symlink → timestamped dir. */
export function configMapDir(): { dir: string; file: string; write(content: unknown): void } {
  const dir = mkdtempSync(join(tmpdir(), 'egress-cm-'));
  let n = 0;
  const write = (content: unknown) => {
    const ts = join(dir, `..2026_${++n}`);
    mkdirSync(ts);
    writeFileSync(join(ts, 'config.json'), typeof content === 'string' ? content : JSON.stringify(content));
    const tmpLink = join(dir, '..data_tmp');
    execFileSync('ln', ['-sfn', `..2026_${n}`, tmpLink]);
    // rename(2) over the old link: the atomic swap kubelet performs.
    execFileSync('mv', ['-Tf', tmpLink, join(dir, '..data')]);
    if (!existsSync(join(dir, 'config.json'))) execFileSync('ln', ['-s', '..data/config.json', join(dir, 'config.json')]);
  };
  return { dir, file: join(dir, 'config.json'), write };
}

/** Resolve when `predicate` holds, polling every 20 ms, failing after `timeoutMs`. */
export async function eventually(predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Collects the JSON log lines a proxy process writes to `stream` (one object per line; anything
 * else is skipped) into the returned array, which grows as the process runs.
 */
export function collectJsonLines<T = Record<string, unknown>>(stream: NodeJS.ReadableStream): T[] {
  const lines: T[] = [];
  let buffered = '';
  stream.on('data', (c: Buffer) => {
    buffered += c.toString();
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith('{')) lines.push(JSON.parse(line));
    }
  });
  return lines;
}

/** A Node to run the bundled proxy on: its path and version. */
export interface BundleRuntime {
  readonly name: string;
  /** Its path and version. */
  readonly resolve: () => { node: string; version: string };
}

/**
 * The image's Node from the repository's cache (.image/node), where `npm test` has put it
 * (scripts/fetch-node.sh) before the tests: they never download it themselves.
 */
function imageNode(): { node: string; version: string } {
  const r = spawnSync('bash', [resolvePath(__dirname, '../../scripts/fetch-node.sh')], {
    encoding: 'utf8', timeout: 30_000, env: { ...process.env, FETCH_NODE_CACHED_ONLY: '1' },
  });
  if (r.status !== 0) throw new Error(`scripts/fetch-node.sh failed: ${r.stderr}`);
  const node = r.stdout.trim();
  return { node, version: spawnSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim() };
}

/**
 * The Nodes the process-level tests run the bundle on: this one, and on Linux the image's. Where
 * one has SO_REUSEPORT (22.12+) and the other not, both ways of sharing a port are tested: several
 * sockets per port and workers binding it beside each other, or one socket and a supervisor that
 * accepts for its workers.
 */
export const BUNDLE_RUNTIMES: readonly BundleRuntime[] = [
  { name: `this Node (${process.versions.node})`, resolve: () => ({ node: process.execPath, version: process.versions.node }) },
  ...(process.platform === 'linux' ? [{ name: "the image's Node", resolve: imageNode }] : []),
];

/** How a Node of this version shares the ports among workers (the supervisor's 'started' line says it as `accept`). */
export function acceptMode(version: string): 'workers' | 'supervisor' {
  return reusePortSupported(version) ? 'workers' : 'supervisor';
}
