// Side-by-side benchmark (not a test): nginx, a naive Node proxy and this proxy, each in front of
// the same local HTTPS upstream (verified TLS, keep-alive), loaded by wrk at 32 and 256
// connections with 95-byte and 16 KiB responses, rows interleaved and repeated. Loopback only.
// Usage: npm run bench   (knobs: see bench/README.md)
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { Chart, Testing } from 'cdk8s';
import {
  Child, freePorts, makePki, processTree, processRssMiB, processTreeCpuMicros, processTreeRssMiB, rssByMapping, runBench, waitFor,
} from './harness';
import { EgressGateway } from '../src/egress-gateway';
import { PROXY_RUNTIME_ENV } from '../src/internal/proxy-runtime';
import { CertificateSource, TlsOrigination } from '../src/tls';

const ROOT = path.resolve(__dirname, '..');
const BUNDLE = path.resolve(process.env.BENCH_PROXY ?? path.join(ROOT, 'assets', 'proxy', 'main', 'index.js'));
const UPSTREAM_NAME = 'upstream.bench.test';
const HOST_HEADER = `${UPSTREAM_NAME}.egress.local`;

const SECONDS = intEnv('BENCH_SECONDS', 4);
const WARMUP_SECONDS = intEnv('BENCH_WARMUP_SECONDS', 2);
const REPEATS = intEnv('BENCH_REPEATS', 3);
const WRK_THREADS = intEnv('BENCH_WRK_THREADS', 1);
const IDLE_CLIENTS = intEnv('BENCH_IDLE_CLIENTS', 1000);
/** How long the idle step waits for each client's one answer. */
const IDLE_ANSWER_MS = 10_000;
/**
 * The idle step reads RSS at once and again after this long without traffic: longer than this
 * proxy's default idle time before it gives memory back (EGRESS_IDLE_RECLAIM_MS, 60 s). By then
 * the 5 s client keep-alive timeout of this proxy and of node:http (the Node peers) has closed
 * their clients; nginx keeps its for 75 s.
 */
const IDLE_SETTLE_MS = intEnv('BENCH_IDLE_SETTLE_MS', 65_000);
const CONNECTIONS = listEnv('BENCH_CONNECTIONS', ['32', '256']).map(Number);
const BODIES = listEnv('BENCH_BODIES', ['95', '16384']).map(Number);
const PROXIES = listEnv('BENCH_PROXIES', ['nginx', 'naive', 'egress']) as ProxyName[];
/** Extra node flags for this proxy only, e.g. "--cpu-prof --cpu-prof-dir=prof". */
const EGRESS_NODE_ARGS = (process.env.BENCH_EGRESS_NODE_ARGS ?? '').split(' ').filter(Boolean);
/**
 * The upstream endpoint's address in this proxy's config: 127.0.0.1, or a name such as
 * `localhost` that the proxy resolves (cached) and vets per request, as for a DNS-named service.
 */
const UPSTREAM_ADDRESS = process.env.BENCH_UPSTREAM_ADDRESS || '127.0.0.1';
/** Node flags for the Node peers (naive, lean, …), e.g. to profile them as this proxy is profiled. */
const PEER_NODE_ARGS = (process.env.BENCH_PEER_NODE_ARGS ?? '').split(' ').filter(Boolean);
/**
 * The node binary every Node proxy runs on (egress, egress-b and the Node peers, so ratios compare
 * like with like), e.g. the image's Node release.
 */
const PROXY_NODE = process.env.BENCH_NODE || process.execPath;
/** This proxy's runtime environment: the image's (PROXY_RUNTIME_ENV) unless BENCH_EGRESS_ENV says otherwise. */
const EGRESS_ENV = runtimeEnv('BENCH_EGRESS_ENV', PROXY_RUNTIME_ENV);
/** Another build of this proxy for "egress-b" (an A/B of builds within one run); default: the same bundle. */
const BUNDLE_B = process.env.BENCH_PROXY_B || undefined;
/**
 * A second instance of this proxy ("egress-b" in the tables), for an A/B within one run of
 * builds (BENCH_PROXY_B), node flags (BENCH_EGRESS_B_NODE_ARGS="--max-semi-space-size=2") or
 * runtime environments (BENCH_EGRESS_B_ENV=none); any of the three adds it.
 */
const EGRESS_B = BUNDLE_B !== undefined || process.env.BENCH_EGRESS_B_NODE_ARGS !== undefined || !!process.env.BENCH_EGRESS_B_ENV;
const EGRESS_B_NODE_ARGS = (process.env.BENCH_EGRESS_B_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** egress-b's runtime environment; default: egress's. */
const EGRESS_B_ENV = runtimeEnv('BENCH_EGRESS_B_ENV', EGRESS_ENV);
const MAX_SECONDS = intEnv('BENCH_MAX_SECONDS', 1800);
/** Count the proxies' system calls per request with `perf stat` (needs perf and tracepoint access). */
const SYSCALLS = process.env.BENCH_SYSCALLS === '1';
/** The system calls counted one by one; the rest are summed as "other". */
const SYSCALL_KINDS = ['read', 'write', 'writev', 'epoll_wait', 'epoll_ctl', 'futex', 'getsockopt', 'setsockopt', 'accept4', 'close'] as const;

/** nginx, this proxy (egress, egress-b), or a Node peer: `<name>` runs bench/<name>-proxy.js (naive, lean). */
type ProxyName = string;

function intEnv(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

function listEnv(name: string, dflt: string[]): string[] {
  const raw = process.env[name];
  return raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : dflt;
}

/**
 * The runtime environment a knob asks for: unset or empty, `dflt`; `none`, Node's and glibc's
 * plain defaults (none of PROXY_RUNTIME_ENV's variables); `K=V,K=V`, PROXY_RUNTIME_ENV with
 * these set (`K=` drops K).
 */
function runtimeEnv(name: string, dflt: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const raw = process.env[name]?.trim();
  if (!raw) return dflt;
  if (raw === 'none') return {};
  const env: Record<string, string> = { ...PROXY_RUNTIME_ENV };
  for (const pair of raw.split(',')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(pair);
    if (!m) throw new Error(`${name} must be "none" or K=V pairs separated by commas, got "${raw}" (at "${pair}")`);
    if (m[2] === '') delete env[m[1]];
    else env[m[1]] = m[2];
  }
  return env;
}

/** `env` as one line for the run's header ("defaults" when empty). */
function describeEnv(env: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return pairs.length > 0 ? pairs.join(' ') : 'defaults';
}

/**
 * The environment a proxy process runs with: this process's, without PROXY_RUNTIME_ENV's
 * variables (so a shell's NODE_OPTIONS cannot blur the comparison), plus `env`.
 */
function processEnv(env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in PROXY_RUNTIME_ENV)));
  return { ...inherited, ...env };
}

/** The absolute path of `cmd` on PATH (and the sbin directories a non-login shell may miss). */
function which(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

/* ------------------------------------------------------------------------------ the processes */

function tempPaths(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k) => `${k}_temp_path ${path.join(dir, `tmp-${k}`)};`).join('\n  ');
}

/** The upstream: nginx serving two static bodies over TLS, and stub_status for its accept count. */
export function upstreamNginxConf(dir: string, pki: { certFile: string; keyFile: string }, port: number, statusPort: number, www: string): string {
  return `worker_processes 1;
daemon off;
pid ${path.join(dir, 'upstream.pid')};
error_log ${path.join(dir, 'upstream-error.log')} warn;
events { worker_connections 16384; }
http {
  ${tempPaths(dir)}
  access_log off;
  # Pooled connections must outlive the run: every new one is counted as churn.
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  open_file_cache max=16;
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    server_name ${UPSTREAM_NAME};
    ssl_certificate ${pki.certFile};
    ssl_certificate_key ${pki.keyFile};
    ssl_session_cache shared:up:1m;
    root ${www};
    location / { default_type application/octet-stream; }
  }
  server {
    listen 127.0.0.1:${statusPort};
    access_log off;
    location / { stub_status; }
  }
}
`;
}

/** nginx as the egress proxy: one worker, verified TLS with SNI, keepalive 512, access log on. */
function proxyNginxConf(dir: string, caFile: string, port: number, upstreamPort: number): string {
  return `worker_processes 1;
daemon off;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'nginx-error.log')} warn;
events { worker_connections 16384; }
http {
  ${tempPaths(dir)}
  access_log ${path.join(dir, 'nginx-access.log')} combined buffer=64k flush=1s;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 512;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass https://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host ${UPSTREAM_NAME};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${caFile};
      proxy_ssl_server_name on;
      proxy_ssl_name ${UPSTREAM_NAME};
      proxy_ssl_session_reuse on;
    }
  }
}
`;
}

/**
 * This proxy's config as an EgressGateway renders it by default, with one ExternalService for the
 * upstream, pinned to 127.0.0.1 (the name is never resolved; TLS still verifies it) and trusting the
 * bench CA (BENCH_UPSTREAM_ADDRESS=localhost has it resolve a name, through /etc/hosts, instead).
 * Only what a loopback run needs is patched: bind address, ports, 127.0.0.0/8 allowed.
 */
export function egressConfig(caPem: string, upstreamPort: number, port: number, adminPort: number): unknown {
  const chart = new Chart(Testing.app(), 'bench');
  const gateway = new EgressGateway(chart, 'Egress');
  gateway.addExternalService('Upstream', {
    host: UPSTREAM_NAME,
    endpoints: [{ address: UPSTREAM_ADDRESS, port: upstreamPort }],
    tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromInline(caPem) }),
  });
  const maps = Testing.synth(chart).filter((o) => o?.kind === 'ConfigMap' && typeof o.data?.['config.json'] === 'string');
  if (maps.length !== 1) throw new Error(`expected one ConfigMap with config.json, found ${maps.length}`);
  const config = JSON.parse(maps[0].data['config.json']);
  config.listeners.bindAddress = '127.0.0.1';
  config.listeners.http.port = port;
  config.listeners.admin.port = adminPort;
  if (config.listeners.tls) config.listeners.tls.port = 0;
  config.addressPolicy.allowCidrs = [...config.addressPolicy.allowCidrs, '127.0.0.0/8'];
  return config;
}

/** One request through `port`, checked: 200 and the whole body, so a misconfigured peer fails the run. */
async function checkPeer(name: string, port: number, body: number): Promise<void> {
  const { status, got } = await new Promise<{ status: number; got: Buffer }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/${body}`, headers: { host: HOST_HEADER }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, got: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  if (status !== 200 || got.length !== body) {
    throw new Error(`${name}: GET /${body} answered ${status} with ${got.length} bytes: ${got.toString('utf8', 0, 300)}`);
  }
}

interface Peer {
  readonly name: ProxyName;
  readonly port: number;
  readonly child: Child;
}

export async function waitListening(port: number, child: Child): Promise<void> {
  await waitFor(`${child.name} to listen on ${port}`, 15_000, () => new Promise<boolean>((resolve, reject) => {
    if (!child.alive) return reject(new Error(child.describeExit()));
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  })).catch((e: Error) => {
    throw new Error(`${e.message}; ${child.describeExit()}`);
  });
}

/* ------------------------------------------------------------------------------ measuring */

interface WrkResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly timeouts: number;
  /**
   * wrk completed no request at all: every connection waited the whole run. Counted as that many
   * errors, so a dead proxy never passes as "0 req/s, 0 errors".
   */
  readonly stalled: boolean;
}

function toMs(v: string, unit: string): number {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

export function parseWrk(out: string, connections: number): WrkResult {
  const m = (re: RegExp) => re.exec(out);
  const reqs = m(/(\d+) requests in ([\d.]+)(us|ms|s|m),/);
  if (!reqs) throw new Error(`cannot read wrk output:\n${out}`);
  const pct = (p: string) => {
    const r = m(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm'));
    return r ? toMs(r[1], r[2]) : NaN;
  };
  const sock = m(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = m(/Non-2xx or 3xx responses: (\d+)/);
  const seconds = toMs(reqs[2], reqs[3]) / 1000;
  const requests = Number(reqs[1]);
  const errors = (sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  const stalled = requests === 0;
  return {
    requests,
    seconds,
    rps: requests / seconds,
    p50Ms: stalled ? NaN : pct('50'),
    p99Ms: stalled ? NaN : pct('99'),
    errors: stalled ? Math.max(errors, connections) : errors,
    timeouts: sock ? Number(sock[4]) : 0,
    stalled,
  };
}

export function wrk(wrkPath: string, port: number, connections: number, seconds: number, body: number): Promise<WrkResult> {
  const args = [`-t${Math.min(WRK_THREADS, connections)}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency',
    '-H', `Host: ${HOST_HEADER}`, `http://127.0.0.1:${port}/${body}`];
  return new Promise((resolve, reject) => {
    const p = spawn(wrkPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.once('error', reject);
    p.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}: ${out}`));
      try {
        resolve(parseWrk(out, connections));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Connections the upstream has accepted so far (nginx stub_status), this query's own included. */
async function upstreamAccepts(statusPort: number): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    const s = net.connect(statusPort, '127.0.0.1');
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (buf += c));
    s.once('end', () => resolve(buf));
    s.once('error', reject);
    s.write('GET / HTTP/1.1\r\nHost: status\r\nConnection: close\r\n\r\n');
  });
  const m = /server accepts handled requests\s+(\d+)/.exec(text);
  if (!m) throw new Error(`unexpected stub_status answer: ${text}`);
  return Number(m[1]);
}

/** System calls per kind (and `total`) counted by `perf stat` over one measured run. */
type SyscallCounts = Record<string, number>;

/**
 * Starts counting the system calls of `pids` (every thread); the returned function stops perf and
 * gives the counts. Tracepoint counting costs the traced process little, unlike strace.
 */
function countSyscalls(perfPath: string, pids: readonly number[]): () => Promise<SyscallCounts> {
  const events = ['raw_syscalls:sys_enter', ...SYSCALL_KINDS.map((k) => `syscalls:sys_enter_${k}`)];
  const p = spawn(perfPath, ['stat', '-x', ',', '-e', events.join(','), '-p', pids.join(',')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  return async () => {
    p.kill('SIGINT');
    await exited;
    const counts: SyscallCounts = {};
    for (const line of err.split('\n')) {
      const [value, , event] = line.split(',');
      if (!event) continue;
      const kind = event === 'raw_syscalls:sys_enter' ? 'total' : event.replace('syscalls:sys_enter_', '');
      counts[kind] = Number(value);
    }
    if (!Number.isFinite(counts.total)) throw new Error(`perf stat gave no syscall count: ${err}`);
    return counts;
  };
}

interface Row {
  readonly repeat: number;
  readonly proxy: ProxyName;
  readonly connections: number;
  readonly body: number;
  readonly wrk: WrkResult;
  readonly cpuUsPerReq: number;
  readonly peakRssMiB: number;
  readonly newUpstreamConns: number;
  /** With BENCH_SYSCALLS=1: system calls per completed request, per kind and in total. */
  readonly syscallsPerReq?: SyscallCounts;
}

async function measureRow(wrkPath: string, peer: Peer, statusPort: number, connections: number, body: number, repeat: number,
  perfPath?: string): Promise<Row> {
  await wrk(wrkPath, peer.port, connections, WARMUP_SECONDS, body);
  const accepts0 = await upstreamAccepts(statusPort);
  const stopCounting = perfPath ? countSyscalls(perfPath, processTree(peer.child.pid)) : undefined;
  const cpu0 = processTreeCpuMicros(peer.child.pid);
  let peak = processTreeRssMiB(peer.child.pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, processTreeRssMiB(peer.child.pid));
  }, 200);
  let result: WrkResult;
  try {
    result = await wrk(wrkPath, peer.port, connections, SECONDS, body);
  } finally {
    clearInterval(sampler);
  }
  const syscalls = stopCounting ? await stopCounting() : undefined;
  const cpu1 = processTreeCpuMicros(peer.child.pid);
  peak = Math.max(peak, processTreeRssMiB(peer.child.pid));
  const accepts1 = await upstreamAccepts(statusPort);
  if (!peer.child.alive) throw new Error(peer.child.describeExit());
  return {
    repeat, proxy: peer.name, connections, body, wrk: result,
    cpuUsPerReq: result.requests > 0 ? (cpu1 - cpu0) / result.requests : NaN,
    peakRssMiB: peak,
    // The second stub_status query's own connection is not the proxy's.
    newUpstreamConns: accepts1 - accepts0 - 1,
    syscallsPerReq: syscalls && result.requests > 0
      ? Object.fromEntries(Object.entries(syscalls).map(([k, v]) => [k, v / result.requests]))
      : undefined,
  };
}

/** RSS of a peer's processes, in total and by mapping. */
function peerRss(peer: Peer): { rssMiB: number; parts: ReturnType<typeof rssByMapping> } {
  const pids = processTree(peer.child.pid);
  const rssMiB = pids.reduce((sum, pid) => sum + (processRssMiB(pid) ?? 0), 0);
  const parts = { binary: 0, brk: 0, anon: 0, libs: 0, other: 0 };
  for (const pid of pids) {
    const m = rssByMapping(pid);
    for (const k of Object.keys(parts) as (keyof typeof parts)[]) parts[k] += m[k];
  }
  return { rssMiB, parts };
}

/**
 * The floor under every Node peer: PROXY_NODE running nothing but the core modules a proxy loads
 * (http, https, http2, tls), with this proxy's runtime environment. RSS in total and by mapping.
 */
async function bareNodeRss(): Promise<{ rssMiB: number; parts: ReturnType<typeof rssByMapping> }> {
  const child = spawn(PROXY_NODE, ['-e', "for (const m of ['http', 'https', 'http2', 'tls']) require(m); setTimeout(() => undefined, 30000);"], {
    stdio: 'ignore', env: processEnv(EGRESS_ENV),
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return { rssMiB: processRssMiB(child.pid!) ?? 0, parts: rssByMapping(child.pid!) };
  } finally {
    child.kill('SIGKILL');
  }
}

/** Client sockets still open. */
const openCount = (sockets: readonly net.Socket[]) => sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;

/**
 * Opens `n` idle keep-alive client connections to a peer: all connect first, then each sends
 * one request (32 at a time) and reads its response; RSS is read at once. The caller reads it
 * again later and destroys the sockets.
 */
export async function holdIdleClients(peer: Peer, n: number): Promise<{ sockets: net.Socket[]; atOnceMiB: number; open: number }> {
  const sockets: net.Socket[] = [];
  try {
    // In batches, so the listen backlog never overflows.
    for (let i = 0; i < n; i += 200) {
      const batch = Array.from({ length: Math.min(200, n - i) }, () => {
        const s = net.connect(peer.port, '127.0.0.1');
        s.on('error', () => undefined);
        sockets.push(s);
        return new Promise<void>((resolve) => {
          s.once('connect', () => resolve());
          s.once('close', () => resolve());
        });
      });
      await Promise.all(batch);
    }
    // 32 requests at a time: the clients are idle keep-alive connections, not a burst of load.
    let unanswered = 0;
    const answer = (s: net.Socket) => new Promise<void>((resolve) => {
      // Bounded: a proxy that never answers is reported, not waited for.
      const timer = setTimeout(() => {
        unanswered++;
        resolve();
      }, IDLE_ANSWER_MS);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      let buf = '';
      s.setEncoding('latin1');
      s.on('data', (c: string) => {
        buf += c;
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = /content-length:\s*(\d+)/i.exec(buf.slice(0, end));
        if (len && buf.length >= end + 4 + Number(len[1])) done();
      });
      s.once('close', done);
      s.write(`GET /95 HTTP/1.1\r\nHost: ${HOST_HEADER}\r\n\r\n`);
    });
    for (let i = 0; i < sockets.length; i += 32) await Promise.all(sockets.slice(i, i + 32).map(answer));
    if (unanswered > 0) console.log(`bench: ${peer.name}: ${unanswered} of ${sockets.length} idle-step requests unanswered within ${IDLE_ANSWER_MS / 1000} s`);
    return { sockets, atOnceMiB: peerRss(peer).rssMiB, open: openCount(sockets) };
  } catch (e) {
    for (const s of sockets) s.destroy();
    throw e;
  }
}

/* ------------------------------------------------------------------------------ reporting */

function median(xs: readonly number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function f(n: number, digits = 0): string {
  return Number.isNaN(n) ? 'n/a' : n.toFixed(digits);
}

function bodyName(b: number): string {
  return b >= 1024 && b % 1024 === 0 ? `${b / 1024} KiB` : `${b} B`;
}

/** CPU ratio of `row` to the same scenario's `peer` row of the same repeat. */
function ratio(rows: readonly Row[], row: Row, peer: ProxyName): number {
  const p = rows.find((r) => r.repeat === row.repeat && r.proxy === peer && r.connections === row.connections && r.body === row.body);
  return p ? row.cpuUsPerReq / p.cpuUsPerReq : NaN;
}

function summary(rows: readonly Row[]): string {
  const head = ['proxy', 'conns', 'body', 'req/s', 'p50 ms', 'p99 ms', 'p99/p50', 'errors', 'timeouts', 'CPU µs/req',
    '× nginx', '× naive', 'peak RSS MiB', 'new upstream conns/s'];
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i < 3 ? '---' : '--:')).join('|')}|`];
  for (const c of CONNECTIONS) {
    for (const b of BODIES) {
      for (const p of [...PROXIES, 'egress-b'] as ProxyName[]) {
        const rs = rows.filter((r) => r.proxy === p && r.connections === c && r.body === b);
        if (rs.length === 0) continue;
        const p50 = median(rs.map((r) => r.wrk.p50Ms));
        const p99 = median(rs.map((r) => r.wrk.p99Ms));
        out.push(`| ${[
          p, String(c), bodyName(b),
          rs.some((r) => r.wrk.stalled) ? `${f(median(rs.map((r) => r.wrk.rps)))} (${rs.filter((r) => r.wrk.stalled).length} stalled)` : f(median(rs.map((r) => r.wrk.rps))),
          f(p50, 2), f(p99, 2), f(p99 / p50, 1),
          String(rs.reduce((a, r) => a + r.wrk.errors, 0)),
          String(rs.reduce((a, r) => a + r.wrk.timeouts, 0)),
          f(median(rs.map((r) => r.cpuUsPerReq))),
          f(median(rs.map((r) => ratio(rows, r, 'nginx'))), 2),
          f(median(rs.map((r) => ratio(rows, r, 'naive'))), 2),
          f(median(rs.map((r) => r.peakRssMiB))),
          f(median(rs.map((r) => r.newUpstreamConns / r.wrk.seconds)), 1),
        ].join(' | ')} |`);
      }
    }
  }
  return out.join('\n');
}

function syscallTable(rows: readonly Row[]): string {
  const kinds = ['total', ...SYSCALL_KINDS, 'other'];
  const head = ['proxy', 'conns', 'body', ...kinds];
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i < 3 ? '---' : '--:')).join('|')}|`];
  for (const c of CONNECTIONS) {
    for (const b of BODIES) {
      for (const p of [...PROXIES, 'egress-b'] as ProxyName[]) {
        const rs = rows.filter((r) => r.proxy === p && r.connections === c && r.body === b && r.syscallsPerReq);
        if (rs.length === 0) continue;
        const of = (k: string) => median(rs.map((r) => {
          const s = r.syscallsPerReq!;
          return k === 'other' ? s.total - SYSCALL_KINDS.reduce((a, x) => a + (s[x] ?? 0), 0) : s[k] ?? NaN;
        }));
        out.push(`| ${[p, String(c), bodyName(b), ...kinds.map((k) => f(of(k), 2))].join(' | ')} |`);
      }
    }
  }
  return out.join('\n');
}

function allRows(rows: readonly Row[]): string {
  const head = ['rep', 'proxy', 'conns', 'body', 'req/s', 'p50 ms', 'p99 ms', 'err', 'timeouts', 'CPU µs/req', 'peak RSS', 'new up conns'];
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '--').join('|')}|`];
  for (const r of rows) {
    out.push(`| ${[r.repeat, r.proxy, r.connections, bodyName(r.body), r.wrk.stalled ? 'STALLED' : f(r.wrk.rps), f(r.wrk.p50Ms, 2), f(r.wrk.p99Ms, 2),
      r.wrk.errors, r.wrk.timeouts, f(r.cpuUsPerReq), f(r.peakRssMiB), r.newUpstreamConns].join(' | ')} |`);
  }
  return out.join('\n');
}

/* ------------------------------------------------------------------------------ main */

const children: Child[] = [];

async function main(): Promise<void> {
  const wrkPath = which('wrk');
  const nginxPath = which('nginx');
  if (!wrkPath || !nginxPath) {
    throw new Error(`this benchmark needs ${[!wrkPath && 'wrk', !nginxPath && 'nginx'].filter(Boolean).join(' and ')}; `
      + 'on Debian or Ubuntu: apt-get install wrk nginx-light');
  }
  const perfPath = SYSCALLS ? which('perf') : undefined;
  if (SYSCALLS && !perfPath) throw new Error('BENCH_SYSCALLS=1 needs perf; on Debian: apt-get install linux-perf');
  const egress = PROXIES.includes('egress') || EGRESS_B;
  if (egress && process.env.BENCH_PROXY === undefined) {
    console.log('bench: bundling the proxy');
    execFileSync('npm', ['run', '--silent', 'bundle'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (egress && !fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing`);
  let nodeVersion: string | undefined;
  try {
    nodeVersion = egress || PROXIES.some((p) => p !== 'nginx') ? execFileSync(PROXY_NODE, ['--version'], { encoding: 'utf8' }).trim() : undefined;
  } catch (e) {
    throw new Error(`BENCH_NODE "${PROXY_NODE}" does not run: ${(e as Error).message}`);
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-side-by-side-'));
  try {
    const pki = makePki(tmp, UPSTREAM_NAME);
    // nginx started as root serves files as an unprivileged user: the bodies must be world-readable.
    fs.chmodSync(tmp, 0o755);
    const www = path.join(tmp, 'www');
    fs.mkdirSync(www, { mode: 0o755 });
    for (const b of BODIES) fs.writeFileSync(path.join(www, String(b)), Buffer.alloc(b, 'x'));
    const nodePeers = PROXIES.filter((p) => p !== 'nginx' && p !== 'egress');
    const [upPort, statusPort, nginxPort, egressPort, adminPort, egressBPort, adminBPort, ...nodePeerPorts] = await freePorts(7 + nodePeers.length);

    const upConf = path.join(tmp, 'upstream.conf');
    fs.writeFileSync(upConf, upstreamNginxConf(tmp, pki, upPort, statusPort, www));
    const upstream = Child.exec('upstream nginx', nginxPath, ['-p', tmp, '-e', path.join(tmp, 'upstream-error.log'), '-c', upConf]);
    children.push(upstream);
    await waitListening(upPort, upstream);

    const peers: Peer[] = [];
    if (PROXIES.includes('nginx')) {
      const conf = path.join(tmp, 'nginx.conf');
      fs.writeFileSync(conf, proxyNginxConf(tmp, pki.caFile, nginxPort, upPort));
      const child = Child.exec('nginx', nginxPath, ['-p', tmp, '-e', path.join(tmp, 'nginx-error.log'), '-c', conf]);
      children.push(child);
      await waitListening(nginxPort, child);
      peers.push({ name: 'nginx', port: nginxPort, child });
    }
    if (nodePeers.length > 0) console.log(`bench: ${nodePeers.join(', ')} on node ${nodeVersion}`);
    for (const [i, name] of nodePeers.entries()) {
      // A Node peer: argv <port> <upstream port> <servername> <ca.pem>.
      const script = path.join(__dirname, `${name}-proxy.js`);
      if (!fs.existsSync(script)) throw new Error(`BENCH_PROXIES: no peer "${name}" (${script} is missing)`);
      const port = nodePeerPorts[i];
      const child = Child.start(name, script, [String(port), String(upPort), UPSTREAM_NAME, pki.caFile], { node: PROXY_NODE, nodeArgs: PEER_NODE_ARGS, cwd: tmp });
      children.push(child);
      await waitListening(port, child);
      peers.push({ name, port, child });
    }
    const variants: { name: ProxyName; on: boolean; nodeArgs: string[]; env: Readonly<Record<string, string>>; port: number; admin: number }[] = [
      { name: 'egress', on: PROXIES.includes('egress'), nodeArgs: EGRESS_NODE_ARGS, env: EGRESS_ENV, port: egressPort, admin: adminPort },
      { name: 'egress-b', on: EGRESS_B, nodeArgs: EGRESS_B_NODE_ARGS, env: EGRESS_B_ENV, port: egressBPort, admin: adminBPort },
    ];
    for (const { name, on, nodeArgs, env, port, admin } of variants) {
      if (!on) continue;
      const configFile = path.join(tmp, `${name}.json`);
      fs.writeFileSync(configFile, JSON.stringify(egressConfig(fs.readFileSync(pki.caFile, 'utf8'), upPort, port, admin), null, 2));
      const bundle = name === 'egress-b' && BUNDLE_B ? path.resolve(BUNDLE_B) : BUNDLE;
      console.log(`bench: ${name} on node ${nodeVersion}${nodeArgs.length > 0 ? ` ${nodeArgs.join(' ')}` : ''}, env ${describeEnv(env)}`);
      const child = Child.start(name, bundle, ['--config', configFile], { node: PROXY_NODE, nodeArgs, env: processEnv(env), cwd: tmp });
      children.push(child);
      // One JSON line per request, read and dropped as a log shipper would.
      child.proc.stdout!.resume();
      await waitListening(port, child);
      peers.push({ name, port, child });
    }

    for (const peer of peers) for (const b of BODIES) await checkPeer(peer.name, peer.port, b);
    // Before any load: each peer's RSS alone, then with the idle clients (closed again at once).
    const fresh = new Map<string, { aloneMiB: number; withClientsMiB: number }>();
    for (const peer of peers) {
      const aloneMiB = peerRss(peer).rssMiB;
      const h = await holdIdleClients(peer, IDLE_CLIENTS);
      for (const s of h.sockets) s.destroy();
      fresh.set(peer.name, { aloneMiB, withClientsMiB: h.atOnceMiB });
    }
    const cpu = os.cpus();
    console.log(`bench: ${REPEATS} repeats × ${CONNECTIONS.length * BODIES.length} scenarios × ${peers.length} proxies, `
      + `${WARMUP_SECONDS} s warm-up + ${SECONDS} s each; node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? 'CPU'}`);
    const rows: Row[] = [];
    for (let repeat = 1; repeat <= REPEATS; repeat++) {
      for (const c of CONNECTIONS) {
        for (const b of BODIES) {
          // Rotated per repeat, so no proxy always runs first after a pause.
          const order = peers.map((_p, i) => peers[(i + repeat - 1) % peers.length]);
          for (const peer of order) {
            const row = await measureRow(wrkPath, peer, statusPort, c, b, repeat, perfPath);
            rows.push(row);
            console.log(`  rep ${repeat} ${peer.name.padEnd(6)} c=${String(c).padEnd(3)} ${bodyName(b).padEnd(6)} `
              + `${f(row.wrk.rps).padStart(6)} req/s  p50 ${f(row.wrk.p50Ms, 2)} p99 ${f(row.wrk.p99Ms, 2)} ms  `
              + `cpu ${f(row.cpuUsPerReq)} µs/req  err ${row.wrk.errors} to ${row.wrk.timeouts}  new up ${row.newUpstreamConns}`
              + `${row.wrk.stalled ? '  STALLED: no request completed' : ''}`);
          }
        }
      }
    }
    // Every peer holds its idle clients at once, so one wait serves them all.
    const idle: string[] = [];
    const held: Awaited<ReturnType<typeof holdIdleClients>>[] = [];
    try {
      for (const peer of peers) held.push(await holdIdleClients(peer, IDLE_CLIENTS));
      await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS));
      for (const [i, peer] of peers.entries()) {
        const h = held[i];
        const { rssMiB, parts: p } = peerRss(peer);
        const before = fresh.get(peer.name)!;
        idle.push(`| ${peer.name} | ${f(before.aloneMiB)} | ${f(before.withClientsMiB)} | ${h.open} | ${f(h.atOnceMiB)} | ${openCount(h.sockets)} | ${f(rssMiB)} | ${f(p.binary)} | ${f(p.brk)} | ${f(p.anon)} | ${f(p.libs + p.other)} |`);
      }
    } finally {
      for (const h of held) for (const s of h.sockets) s.destroy();
    }

    console.log(`\n## Side by side: medians of ${REPEATS} interleaved repeats (${SECONDS} s each)\n`);
    console.log(summary(rows));
    console.log(`\n### RSS with ${IDLE_CLIENTS} idle keep-alive clients (before any load, and after the runs above)\n`);
    const later = `after ${f(IDLE_SETTLE_MS / 1000)} s`;
    console.log(`| proxy | before load: RSS MiB | before load, with the clients | open clients | RSS MiB | open ${later} | RSS ${later} | binary | brk heap | anonymous | libraries, other |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|`);
    console.log(idle.join('\n'));
    if (PROXIES.some((p) => p !== 'nginx')) {
      const bare = await bareNodeRss();
      const b = bare.parts;
      console.log(`| node ${nodeVersion} alone (core http, https, http2, tls loaded) | ${f(bare.rssMiB)} | | | | | | ${f(b.binary)} | ${f(b.brk)} | ${f(b.anon)} | ${f(b.libs + b.other)} |`);
    }
    if (SYSCALLS) {
      console.log('\n### System calls per request (perf stat, medians over repeats)\n');
      console.log(syscallTable(rows));
    }
    console.log('\n### Every row\n');
    console.log(allRows(rows));
    console.log('\nCPU: utime+stime of the proxy\'s processes (/proc) over the measured run / requests wrk completed. '
      + '× nginx, × naive: that CPU over the peer\'s in the same repeat (median). errors: wrk socket errors and non-2xx (a row where wrk completed nothing is STALLED and counts every connection); '
      + 'timeouts: no answer within 5 s. New upstream conns: accepts counted by the upstream (stub_status).');
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) runBench(main, children, MAX_SECONDS);
