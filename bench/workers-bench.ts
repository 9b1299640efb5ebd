// 1 worker against 2 (`workers` in the proxy config): wrk at 256 connections through the bundled
// proxy to a local HTTPS upstream (verified TLS, keep-alive, 95-byte body), rows interleaved.
// Per row: req/s, p50/p99, errors, CPU µs per request of every proxy process (supervisor and
// workers, utime+stime from /proc), who accepts the connections (the workers or the supervisor,
// from the 'started' line), and a fixed-count phase whose requests must equal the aggregated
// /metrics counter. BENCH_PROXY_B adds a second build's rows, interleaved with the first's.
// Loopback only; every process it starts is stopped by PID.
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { Pool } from 'undici';
import { Child, freePorts, makePki, processCpuMicros, processRssMiB, runLoad, waitFor } from './harness';

const BUNDLE = process.env.BENCH_PROXY ?? path.resolve(__dirname, '../assets/proxy/main/index.js');
const UPSTREAM_NAME = 'upstream.bench.test';
const SUFFIX = 'egress.local';
const HOST = `${UPSTREAM_NAME}.${SUFFIX}`;
const BODY_BYTES = Number(process.env.BENCH_BODY_BYTES ?? 95);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 256);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 3);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);
const COUNTED_REQUESTS = Number(process.env.BENCH_COUNTED_REQUESTS ?? 20_000);
const WORKER_COUNTS = (process.env.BENCH_WORKERS ?? '1,2').split(',').map(Number);
/** BENCH_CLOSE=1: every wrk request on a new connection (`Connection: close`), as clients without keep-alive send them. */
const CLOSE = process.env.BENCH_CLOSE === '1';
const BUILDS: ReadonlyArray<{ name: string; bundle: string }> = [
  { name: 'A', bundle: BUNDLE },
  ...(process.env.BENCH_PROXY_B ? [{ name: 'B', bundle: path.resolve(process.env.BENCH_PROXY_B) }] : []),
];

interface Row {
  readonly build: string;
  readonly workers: number;
  /** Who accepts: 'workers', 'supervisor', or 'single' (one process). */
  readonly accept: string;
  readonly rps: number;
  readonly requests: number;
  readonly p50: string;
  readonly p99: string;
  readonly errors: number;
  readonly cpuMicrosPerRequest: number;
  readonly rssMiB: number;
  readonly counted: { sent: number; counter: number; perWorker: string };
}

/** The proxy config an EgressGateway renders by default (access log on), pinned to the local upstream. */
function config(workers: number, ports: { http: number; admin: number }, upstreamPort: number, caFile: string): unknown {
  return {
    apiVersion: 'egress.cdk8s.io/v1alpha1',
    kind: 'EgressProxyConfig',
    gateway: { name: 'bench', namespace: 'default' },
    listeners: { bindAddress: '127.0.0.1', http: { port: ports.http, suffixes: [SUFFIX] }, admin: { port: ports.admin } },
    parent: { name: 'bench', namespace: 'default', trafficPolicy: 'Allow' },
    externalServices: [{
      name: 'bench-upstream',
      host: UPSTREAM_NAME,
      ports: [{ port: 80, protocol: 'http', targetPort: upstreamPort }],
      endpoints: [{ address: '127.0.0.1', port: upstreamPort, priority: 0 }],
      tls: { caFile },
    }],
    routes: [],
    addressPolicy: { allowCidrs: ['127.0.0.0/8'] },
    timeouts: { shutdownGraceMs: 2_000, drainDelayMs: 0 },
    workers,
  };
}

/** The supervisor and every process whose parent it is (from /proc). */
function processTree(root: number): number[] {
  const pids = [root];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === root) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function treeCpu(pids: readonly number[]): number {
  return pids.reduce((sum, p) => sum + (processCpuMicros(p) ?? 0), 0);
}

function adminGet(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

/** Every request the proxy counted, whatever its status (the exposition is already the pod's sum). */
function requestCounter(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('outbound_http_route_request_statuses_total{')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

/**
 * The request counter once nothing is in flight: wrk stops with requests still queued in the
 * proxy, which finish (and are counted) after it has gone.
 */
async function settledCounter(adminPort: number): Promise<number> {
  let last = -1;
  for (let i = 0; i < 600; i++) {
    const text = (await adminGet(adminPort, '/metrics')).body;
    const inflight = Number(/^egress_inflight (\S+)$/m.exec(text)?.[1] ?? 0);
    const n = requestCounter(text);
    if (inflight === 0 && n === last) return n;
    last = n;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('the proxy never became idle');
}

function wrk(port: number, seconds: number): { requests: number; rps: number; p50: string; p99: string; errors: number } {
  const close = CLOSE ? ['-H', 'Connection: close'] : [];
  const out = execFileSync('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-H', `Host: ${HOST}`, ...close, `http://127.0.0.1:${port}/bench`],
    { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  if (process.env.BENCH_VERBOSE) process.stderr.write(out);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + num(/Non-2xx or 3xx responses: (\d+)/);
  return {
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: /\s50%\s+(\S+)/.exec(out)?.[1] ?? 'n/a',
    p99: /\s99%\s+(\S+)/.exec(out)?.[1] ?? 'n/a',
    errors,
  };
}

/** A wrk latency ("850.00us", "12.34ms", "1.02s") in milliseconds. */
function latencyMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 1e-3 : m[2] === 's' ? 1e3 : 1);
}

async function runRow(build: { name: string; bundle: string }, workers: number, upstreamPort: number, caFile: string, dir: string): Promise<Row> {
  const [httpPort, adminPort] = await freePorts(2);
  const file = path.join(dir, `config-${workers}.json`);
  fs.writeFileSync(file, JSON.stringify(config(workers, { http: httpPort, admin: adminPort }, upstreamPort, caFile)));
  const logFile = path.join(dir, `proxy-${build.name}-${workers}.log`);
  const log = fs.openSync(logFile, 'w');
  // The access log goes to a file, as a node's log collector would read it, not through this process.
  const proxy: ChildProcess = spawn(process.execPath, [build.bundle, '--config', file], { stdio: ['ignore', log, 'inherit'] });
  fs.closeSync(log);
  try {
    await waitFor(`proxy with ${workers} worker(s)`, 20_000, async () => (await adminGet(adminPort, '/ready').catch(() => ({ status: 0 }))).status === 200);
    wrk(httpPort, WARMUP_SECONDS);
    const pids = processTree(proxy.pid!);
    const cpu0 = treeCpu(pids);
    const load = wrk(httpPort, SECONDS);
    const cpu1 = treeCpu(pids);
    const rss = pids.reduce((sum, p) => sum + (processRssMiB(p) ?? 0), 0);

    // Counted phase: a fixed number of requests, each answered in full; the scrape must match.
    const before = await settledCounter(adminPort);
    const logBefore = fs.statSync(logFile).size;
    const pool = new Pool(`http://127.0.0.1:${httpPort}`, { connections: CONNECTIONS, pipelining: 1 });
    const counted = await runLoad(COUNTED_REQUESTS, CONNECTIONS, async () => {
      const res = await pool.request({ path: '/counted', method: 'GET', headers: { host: HOST } });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    });
    await pool.close();
    const after = await settledCounter(adminPort);
    const perWorker = new Map<string, number>();
    const tail = fs.readFileSync(logFile, 'utf8').slice(logBefore);
    for (const line of tail.split('\n')) {
      if (!line.includes('"msg":"request"')) continue;
      const w = /"worker":(\d+)/.exec(line)?.[1] ?? '-';
      perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
    }
    const started = fs.readFileSync(logFile, 'utf8').split('\n').find((l) => l.includes('"event":"started"')) ?? '';
    return {
      build: build.name,
      workers,
      accept: workers > 1 ? (/"accept":"(\w+)"/.exec(started)?.[1] ?? 'supervisor') : 'single',
      rps: load.rps,
      requests: load.requests,
      p50: load.p50,
      p99: load.p99,
      errors: load.errors + counted.errors,
      cpuMicrosPerRequest: (cpu1 - cpu0) / load.requests,
      rssMiB: rss,
      counted: {
        sent: counted.requests,
        counter: after - before,
        perWorker: [...perWorker.entries()].sort().map(([w, n]) => `${w === '-' ? 'single' : `w${w}`}:${n}`).join(' '),
      },
    };
  } finally {
    if (proxy.exitCode === null) {
      proxy.kill('SIGTERM');
      await new Promise((r) => proxy.once('exit', r));
    }
  }
}

async function main(): Promise<void> {
  for (const b of BUILDS) if (!fs.existsSync(b.bundle)) throw new Error(`no bundle at ${b.bundle}: run npx projen bundle`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-workers-bench-'));
  const pki = makePki(dir, UPSTREAM_NAME);
  const upstream = Child.start('upstream', path.join(__dirname, 'https-upstream.js'), [pki.keyFile, pki.certFile, String(BODY_BYTES)]);
  const rows: Row[] = [];
  try {
    const { port } = await upstream.firstJsonLine<{ port: number }>(10_000);
    for (let r = 0; r < REPEATS; r++) {
      for (const w of WORKER_COUNTS) {
        for (const b of BUILDS) {
          const row = await runRow(b, w, port, pki.caFile, dir);
          rows.push(row);
          process.stderr.write(`repeat ${r + 1}, build ${b.name}, ${w} worker(s): ${row.rps.toFixed(0)} req/s, ${row.cpuMicrosPerRequest.toFixed(0)} µs/req\n`);
        }
      }
    }
  } finally {
    await upstream.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const head = ['build', 'workers', 'accept', 'req/s', 'requests', 'p50', 'p99', 'p99/p50', 'errors', 'proxy CPU µs/req', 'proxy RSS MiB',
    'counted: sent / /metrics / per worker'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---:').join('|')}|`];
  for (const r of rows) {
    lines.push(`| ${[r.build, r.workers, r.accept, r.rps.toFixed(0), r.requests, r.p50, r.p99, (latencyMs(r.p99) / latencyMs(r.p50)).toFixed(1), r.errors,
      r.cpuMicrosPerRequest.toFixed(0), r.rssMiB.toFixed(0), `${r.counted.sent} / ${r.counted.counter} / ${r.counted.perWorker}`].join(' | ')} |`);
  }
  const builds = BUILDS.map((b) => `${b.name} = ${b.bundle}`).join(', ');
  process.stdout.write(`wrk -t2 -c${CONNECTIONS} -d${SECONDS}s${CLOSE ? ', Connection: close' : ''}, ${BODY_BYTES}-byte body, ${os.cpus().length} cores shared by wrk, upstream and proxy; Node ${process.versions.node}; ${builds}\n${lines.join('\n')}\n`);
  if (rows.some((r) => r.counted.sent !== r.counted.counter)) {
    process.stderr.write('aggregated /metrics counter differs from the requests sent\n');
    process.exitCode = 1;
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
