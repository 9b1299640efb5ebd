// Proxy benchmark (not a test): requests/s, p50/p99 latency and CPU per request of calling a local
// HTTPS upstream directly with undici, versus through the bundled proxy (plaintext in, verified
// TLS out). Client, proxy and upstream are separate processes so each one's CPU is its own.
// Loopback only. Usage: npm run bench   (BENCH_REQUESTS, BENCH_CONCURRENCY, BENCH_BODY_BYTES)
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Pool } from 'undici';
import {
  DEFAULT_ADDRESS_POLICY, DEFAULT_LIMITS, DEFAULT_TIMEOUTS, DEFAULT_TLS,
} from '../src/model/defaults';
import { PROXY_CONFIG_API_VERSION, PROXY_CONFIG_KIND, type ProxyConfig } from '../src/model/proxy-config';
import {
  Child, freePorts, makePki, percentile, processCpuMicros, processRssMiB, runBench, runLoad, waitFor, type LoadResult,
} from './harness';

const ROOT = path.resolve(__dirname, '..');
// The shipped artifact by default; BENCH_PROXY points at another build of the proxy to compare.
const BUNDLE = path.resolve(process.env.BENCH_PROXY ?? path.join(ROOT, 'assets', 'proxy', 'main', 'index.js'));
const UPSTREAM_NAME = 'upstream.bench.test';
const SUFFIX = 'egress.local';

const REQUESTS = intEnv('BENCH_REQUESTS', 20_000);
const CONCURRENCY = intEnv('BENCH_CONCURRENCY', 32);
const WARMUP = intEnv('BENCH_WARMUP', 2_000);
const BODY_BYTES = intEnv('BENCH_BODY_BYTES', 1_024);
// The whole run is bounded: a stuck phase ends the process rather than the CI job.
const MAX_SECONDS = intEnv('BENCH_MAX_SECONDS', 300);

function intEnv(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

interface Row {
  readonly scenario: string;
  readonly load: LoadResult;
  readonly proxyCpuMicros?: number;
  readonly upstreamCpuMicros?: number;
  readonly proxyRssMiB?: number;
}

function proxyConfig(ports: { http: number; admin: number }, upstreamPort: number, caFile: string): ProxyConfig {
  return {
    apiVersion: PROXY_CONFIG_API_VERSION,
    kind: PROXY_CONFIG_KIND,
    gateway: { name: 'bench', namespace: 'default' },
    listeners: {
      bindAddress: '127.0.0.1',
      http: { port: ports.http, suffixes: [SUFFIX], forwardProxy: false, parentPort: 80, ambiguousPaths: 'Reject', connectSni: 'RequireMatch' },
      tcp: [],
      admin: { port: ports.admin },
    },
    parent: {
      group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'bench', namespace: 'default',
      trafficPolicy: 'Allow', networks: [], mode: 'Enforce',
    },
    externalServices: [{
      name: 'bench-upstream',
      host: UPSTREAM_NAME,
      ports: [{ port: 80, protocol: 'http', targetPort: upstreamPort }],
      // Pinned to loopback: the name is never resolved, and TLS still verifies it (SNI + SAN).
      endpoints: [{ address: '127.0.0.1', port: upstreamPort, priority: 0 }],
      tls: { ...DEFAULT_TLS, caFile },
      // As many upstream connections as the direct client gets, so both sides compare alike.
      pool: { maxConnections: CONCURRENCY, keepAliveTimeoutMs: 60_000 },
      injectHeaders: [],
    }],
    routes: [],
    addressPolicy: { ...DEFAULT_ADDRESS_POLICY, allowCidrs: ['127.0.0.0/8'] },
    timeouts: { ...DEFAULT_TIMEOUTS, shutdownGraceMs: 2_000 },
    limits: { ...DEFAULT_LIMITS, maxConcurrent: Math.max(DEFAULT_LIMITS.maxConcurrent, CONCURRENCY * 4) },
    workers: 1,
    defaultTls: DEFAULT_TLS,
  };
}

/** One request on `pool`, its response read in full and checked. */
function sender(pool: Pool, headers: Record<string, string>): () => Promise<void> {
  return async () => {
    const res = await pool.request({ path: '/bench', method: 'GET', headers });
    const body = await res.body.arrayBuffer();
    if (res.statusCode !== 200) {
      const code = res.headers['x-egress-error'];
      throw new Error(`status ${res.statusCode}${code ? ` (${String(code)})` : ''}: ${Buffer.from(body).toString('utf8', 0, 200)}`);
    }
    if (body.byteLength !== BODY_BYTES) throw new Error(`body of ${body.byteLength} bytes, expected ${BODY_BYTES}`);
  };
}

/** Warm up (connections, TLS sessions, JIT), then measure with every process's CPU counted. */
async function measure(scenario: string, send: () => Promise<void>, upstream: Child, proxy?: Child): Promise<Row> {
  const warm = await runLoad(WARMUP, CONCURRENCY, send);
  if (warm.errors > 0) throw new Error(`${scenario}: ${warm.errors} warm-up requests failed; first: ${warm.firstError}`);
  const up0 = processCpuMicros(upstream.pid);
  const px0 = proxy ? processCpuMicros(proxy.pid) : undefined;
  const load = await runLoad(REQUESTS, CONCURRENCY, send);
  const up1 = processCpuMicros(upstream.pid);
  const px1 = proxy ? processCpuMicros(proxy.pid) : undefined;
  return {
    scenario,
    load,
    upstreamCpuMicros: up0 !== undefined && up1 !== undefined ? up1 - up0 : undefined,
    proxyCpuMicros: px0 !== undefined && px1 !== undefined ? px1 - px0 : undefined,
    proxyRssMiB: proxy ? processRssMiB(proxy.pid) : undefined,
  };
}

function fmt(n: number | undefined, digits: number): string {
  return n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(digits);
}

function table(rows: readonly Row[]): string {
  const head = ['scenario', 'requests', 'errors', 'req/s', 'p50 ms', 'p99 ms',
    'client CPU µs/req', 'proxy CPU µs/req', 'upstream CPU µs/req', 'proxy RSS MiB'];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|${head.map((_h, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
  ];
  for (const r of rows) {
    const l = r.load;
    const per = (micros: number | undefined) => (micros === undefined ? undefined : micros / l.requests);
    lines.push(`| ${[
      r.scenario, String(l.requests), String(l.errors),
      fmt(l.requests / (l.elapsedMs / 1000), 0),
      fmt(percentile(l.latenciesMs, 50), 2), fmt(percentile(l.latenciesMs, 99), 2),
      fmt(per(l.clientCpuMicros), 0), fmt(per(r.proxyCpuMicros), 0), fmt(per(r.upstreamCpuMicros), 0),
      fmt(r.proxyRssMiB, 0),
    ].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** True when the bundle is missing or any proxy or model source is newer than it. */
function bundleIsStale(): boolean {
  if (!fs.existsSync(BUNDLE)) return true;
  const built = fs.statSync(BUNDLE).mtimeMs;
  const newer = (dir: string): boolean => fs.readdirSync(dir, { withFileTypes: true }).some((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? newer(p) : e.name.endsWith('.ts') && fs.statSync(p).mtimeMs > built;
  });
  return newer(path.join(ROOT, 'src', 'proxy')) || newer(path.join(ROOT, 'src', 'model'));
}

/** Module-level so the time guard can stop them too. */
const children: Child[] = [];

async function main(): Promise<void> {
  if (process.env.BENCH_PROXY === undefined && bundleIsStale()) {
    console.log('bench: bundling the proxy (missing or older than src/proxy)');
    execFileSync('npm', ['run', '--silent', 'bundle'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-bench-'));
  const pools: Pool[] = [];
  try {
    const pki = makePki(tmp, UPSTREAM_NAME);
    const upstream = Child.start('upstream', path.join(__dirname, 'https-upstream.js'), [pki.keyFile, pki.certFile, String(BODY_BYTES)]);
    children.push(upstream);
    const { port: upstreamPort } = await upstream.firstJsonLine<{ port: number }>(10_000);

    const [httpPort, adminPort] = await freePorts(2);
    const configFile = path.join(tmp, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify(proxyConfig({ http: httpPort, admin: adminPort }, upstreamPort, pki.caFile), null, 2));
    const proxy = Child.start('proxy', BUNDLE, ['--config', configFile]);
    children.push(proxy);
    proxy.proc.stdout!.resume(); // one log line per request: read and dropped, as a log shipper would
    const admin = new Pool(`http://127.0.0.1:${adminPort}`, { connections: 1 });
    pools.push(admin);
    await waitFor('the proxy to be ready', 15_000, async () => {
      if (!proxy.alive) throw new Error(proxy.describeExit());
      const res = await admin.request({ path: '/ready', method: 'GET' });
      await res.body.dump();
      return res.statusCode === 200;
    }).catch((e: Error) => {
      throw new Error(`${e.message}; ${proxy.describeExit()}`);
    });

    const ca = fs.readFileSync(pki.caFile);
    const direct = new Pool(`https://127.0.0.1:${upstreamPort}`, {
      connections: CONCURRENCY,
      connect: { ca, servername: UPSTREAM_NAME },
    });
    const viaProxy = new Pool(`http://127.0.0.1:${httpPort}`, { connections: CONCURRENCY });
    pools.push(direct, viaProxy);

    const rows: Row[] = [];
    rows.push(await measure('direct: undici → HTTPS upstream', sender(direct, {}), upstream));
    rows.push(await measure('via proxy: plaintext → proxy → TLS upstream',
      sender(viaProxy, { host: `${UPSTREAM_NAME}.${SUFFIX}` }), upstream, proxy));
    if (!proxy.alive) throw new Error(proxy.describeExit());

    const cpu = os.cpus();
    console.log(`\n## Proxy benchmark\n`);
    console.log(`${REQUESTS} requests per scenario after ${WARMUP} warm-up, concurrency ${CONCURRENCY}, `
      + `${BODY_BYTES}-byte responses, HTTP/1.1 keep-alive, loopback; node ${process.version}, `
      + `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}.\n`);
    console.log(table(rows));
    console.log('\nCPU is user+system time of each process during the measured requests (client: this process; '
      + 'proxy and upstream: /proc), divided by the request count. Client, proxy and upstream share the same cores.');
    const failed = rows.filter((r) => r.load.errors > 0);
    if (failed.length > 0) {
      throw new Error(failed.map((r) => `${r.scenario}: ${r.load.errors} errors, first: ${r.load.firstError}`).join('\n'));
    }
  } finally {
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
    await Promise.all(children.map((c) => c.stop()));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

runBench(main, children, MAX_SECONDS);
