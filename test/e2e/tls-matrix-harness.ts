/**
 * Harness for the TLS-origination, Kuma-matrix and retry end-to-end tests: synthesise a chart,
 * take config.json out of its ConfigMap, apply only the documented harness patches and run the
 * real proxy from it. Upstreams are local servers (TCP/TLS echo, HTTP(S), gRPC/gRPCS); the
 * injected dialer reaches loopback only and maps declared upstream ports to their ports.
 * Builds on test/e2e/helpers.ts (harness patch, loopback-only mapping dialer, startFromSynth,
 * certificates, metric samples) and test/proxy/helpers.ts (test PKI).
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Chart, Testing } from 'cdk8s';
import { startFromSynth, type Pair, type SynthProxy } from './helpers';
import { testPki } from '../proxy/helpers';

/* Shared with test/e2e/helpers.ts, re-exported under the names these tests use. */
export {
  changedPaths as diffPaths, leafCert, scrapeSamples as metricSamples, type Pair, type Sample,
} from './helpers';

/* ------------------------------------------------------------------------- synthesis */

/** The text of `config.json` in the one ConfigMap of `chart` that carries a proxy config. */
export function synthConfigText(chart: Chart): string {
  const found = Testing.synth(chart).filter((o: any) => o?.kind === 'ConfigMap' && typeof o.data?.['config.json'] === 'string');
  if (found.length !== 1) throw new Error(`expected one ConfigMap with config.json in chart ${chart.node.path}, found ${found.length}`);
  return found[0].data['config.json'];
}

/* ------------------------------------------------------------------------- seams */

export type ChartProxy = SynthProxy;

export interface StartChartProxyOptions {
  /** Host name → loopback address for the injected resolver. */
  readonly names: Record<string, string | string[]>;
  /** Declared upstream port → local stand-in port. */
  readonly ports: Readonly<Record<number, number>>;
  /** Pod path (under /var/run/egress/) → content, written under the mount root. */
  readonly files?: Readonly<Record<string, string>>;
  /**
   * PEM added as caPem to TLS settings that name no CA of their own: the stand-in for the
   * system trust store the pod would use (Kuma's "autodetected OS-specific CA"). Off by default,
   * unlike startFromSynth(), which trusts the test CA unless told otherwise.
   */
  readonly systemRootsPem?: string;
}

/**
 * Synthesise `chart` and start the proxy from its config through startFromSynth() (harnessPatch,
 * loopback resolver, mapping dialer), adding trust only when `systemRootsPem` is given.
 */
export async function startChartProxy(chart: Chart, o: StartChartProxyOptions): Promise<ChartProxy> {
  return startFromSynth({ configText: synthConfigText(chart), names: o.names, ports: o.ports, files: o.files, caPem: o.systemRootsPem ?? null });
}

/**
 * Closes everything registered during a test; call run() in afterEach. A registered proxy whose
 * dialer was asked for a non-loopback address fails the test there (after everything is closed).
 */
export class Closer {
  private readonly items: Array<() => Promise<void> | void> = [];
  private readonly refusals: Array<ReadonlyArray<{ address: string; port: number }>> = [];
  public add<T extends { dialer?: { refused: ReadonlyArray<{ address: string; port: number }> }; close(): Promise<void> | void }>(x: T): T {
    this.items.push(() => x.close());
    if (x.dialer) this.refusals.push(x.dialer.refused);
    return x;
  }
  public async run(): Promise<void> {
    const items = this.items.splice(0).reverse();
    for (const close of items) await close();
    const refused = this.refusals.splice(0).flat();
    if (refused.length > 0) throw new Error(`the proxy asked to dial non-loopback addresses: ${JSON.stringify(refused)}`);
  }
}

/* ------------------------------------------------------------------------- certificates */

/** The test client certificate (CN=client, signed by the test CA). */
export function clientPair(): Pair {
  const p = testPki();
  return { cert: readFileSync(p.clientCertFile, 'utf8'), key: readFileSync(p.clientKeyFile, 'utf8') };
}

/* ------------------------------------------------------------------------- upstreams */

/** What a TLS upstream saw of each completed handshake. */
export interface HandshakeSeen {
  readonly servername: string;
  readonly protocol: string;
  /** Subject CN of the client certificate, '' when none was presented. */
  readonly clientCn: string;
}

export interface EchoServer {
  readonly port: number;
  /** TCP connections accepted (failed handshakes included). */
  readonly connections: () => number;
  /** Connections that reached the echo (plaintext: all; TLS: handshake completed). */
  readonly sessions: () => number;
  readonly handshakes: HandshakeSeen[];
  close(): Promise<void>;
}

export interface TlsServerOptions extends Pair {
  /** Require a client certificate signed by the test CA. */
  readonly requireClientCert?: boolean;
  readonly minVersion?: tls.SecureVersion;
  readonly maxVersion?: tls.SecureVersion;
}

/** Node's TLS server options for a stand-in, trusting the test CA for client certificates. */
export function tlsServerOptions(o: TlsServerOptions): tls.TlsOptions {
  return {
    cert: o.cert,
    key: o.key,
    ca: o.requireClientCert ? testPki().caPem : undefined,
    requestCert: o.requireClientCert ?? false,
    rejectUnauthorized: o.requireClientCert ?? false,
    minVersion: o.minVersion,
    maxVersion: o.maxVersion,
  };
}

export function handshakeOf(s: tls.TLSSocket): HandshakeSeen {
  const peer = s.getPeerCertificate();
  const cn = peer && peer.subject ? String(peer.subject.CN ?? '') : '';
  return { servername: (s as tls.TLSSocket & { servername?: string | false }).servername || '', protocol: s.getProtocol() ?? '', clientCn: cn };
}

/** A TCP echo server (tcpbin.com stand-in); with `tls`, a TLS echo server. */
export function startEchoServer(tlsOptions?: TlsServerOptions): Promise<EchoServer> {
  let connections = 0;
  let sessions = 0;
  const handshakes: HandshakeSeen[] = [];
  const sockets = new Set<net.Socket>();
  const echo = (s: net.Socket) => {
    sessions++;
    s.on('error', () => undefined);
    s.pipe(s);
  };
  const server: net.Server = tlsOptions
    ? tls.createServer(tlsServerOptions(tlsOptions), (s) => {
      handshakes.push(handshakeOf(s));
      echo(s);
    })
    : net.createServer(echo);
  server.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    sessions: () => sessions,
    handshakes,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  })));
}

/**
 * Connect to a proxy TCP listener, send `text`, and resolve with whatever comes back before the
 * connection closes or `text.length` bytes have arrived.
 */
export function tcpRoundTrip(port: number, text: string): Promise<{ echoed: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ echoed: got, closed });
    };
    s.on('connect', () => s.write(text));
    s.on('data', (c: Buffer) => {
      got += c.toString('utf8');
      if (got.length >= text.length) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? finish(true) : reject(err)));
  });
}

/* ------------------------------------------------------------------------- gRPC */

const identity = (b: Buffer) => b;
/** A unary echo method carried as raw bytes: no .proto needed to prove the transport. */
export const ECHO_METHOD = '/egress.test.Echo/Say';
const ECHO_SERVICE: grpc.ServiceDefinition = {
  Say: {
    path: ECHO_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface GrpcSeen {
  readonly authority: string;
  readonly request: string;
}

export interface GrpcServer {
  readonly port: number;
  readonly calls: GrpcSeen[];
  /** TLS handshakes (gRPCS only). */
  readonly handshakes: HandshakeSeen[];
  close(): Promise<void>;
}

/**
 * A grpc-js server answering `echo:<request>`: plaintext h2c (grpcbin on 9000) or, with `tls`,
 * gRPC over TLS (9001). TLS handshakes are recorded through a tap on the server's secure sessions.
 */
export async function startGrpcServer(tlsPair?: Pair): Promise<GrpcServer> {
  const calls: GrpcSeen[] = [];
  const handshakes: HandshakeSeen[] = [];
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls.push({ authority: call.getHost(), request: call.request.toString('utf8') });
      cb(null, Buffer.from(`echo:${call.request.toString('utf8')}`));
    },
  });
  const creds = tlsPair
    ? grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tlsPair.key), cert_chain: Buffer.from(tlsPair.cert) }], false)
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  if (tlsPair) {
    // grpc-js keeps its http2 servers private; their secureConnection events are the only tap.
    const http2Servers = (server as unknown as { http2Servers: Map<any, any> }).http2Servers;
    for (const s of http2Servers?.keys() ?? []) s.on?.('secureConnection', (t: tls.TLSSocket) => handshakes.push(handshakeOf(t)));
  }
  return {
    port,
    calls,
    handshakes,
    close: () => new Promise<void>((r) => server.tryShutdown(() => {
      server.forceShutdown();
      r();
    })),
  };
}

/** A call's status code, and the reply or the error details and metadata. */
export interface GrpcResult {
  readonly code: number;
  readonly reply?: string;
  readonly details?: string;
  readonly metadata?: Record<string, unknown>;
}

/**
 * One unary call with a grpc-js client connected to the proxy's HTTP listener in plaintext (h2c
 * with prior knowledge), addressing `authority` as a client of the gateway Service would.
 */
export async function grpcCall(proxyPort: number, authority: string, text: string): Promise<GrpcResult> {
  const client = new grpc.Client(`127.0.0.1:${proxyPort}`, grpc.credentials.createInsecure(), {
    'grpc.default_authority': authority,
    // A failed call must fail now, not wait for reconnect backoff.
    'grpc.initial_reconnect_backoff_ms': 50,
    'grpc.max_reconnect_backoff_ms': 50,
  });
  try {
    return await new Promise((resolve) => {
      client.makeUnaryRequest(ECHO_METHOD, identity, identity, Buffer.from(text), new grpc.Metadata(), { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, value?: Buffer) => {
          if (err) resolve({ code: err.code, details: err.details, metadata: err.metadata?.getMap() });
          else resolve({ code: grpc.status.OK, reply: value?.toString('utf8') });
        });
    });
  } finally {
    client.close();
  }
}
