// The bundled proxy with `workers: 2` as real processes on loopback: both workers serve one
// listener, /metrics sums them in one scrape, reloads are applied or rejected by every worker,
// and SIGTERM drains every worker's in-flight requests before the supervisor exits 0. Each test
// runs on this Node and on the image's (which `npm test` fetches first): where SO_REUSEPORT is available
// (Node 22.12+ on Linux) the workers bind the port beside each other, elsewhere the supervisor
// accepts and hands each connection over.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { join, resolve } from 'node:path';
import { BUNDLE_RUNTIMES, acceptMode, collectJsonLines, eventually, startHttpsUpstream, testConfig, testPki, testService, type TestUpstream } from './helpers';
import { workerShare } from '../../src/proxy/cluster';
import { validateConfig } from '../../src/proxy/config';
import { listeningSockets, listenersOnPort } from '../../src/proxy/listeners';

// Several processes start, reload and drain per test; a shared machine needs more than the default.
jest.setTimeout(90_000);

const BUNDLE = resolve(__dirname, '../../assets/proxy/main/index.js');
const HOST = 'api.test.example.egress.local';

beforeAll(() => {
  if (!existsSync(BUNDLE)) {
    const r = spawnSync('npx', ['projen', 'bundle'], { cwd: resolve(__dirname, '../..'), stdio: 'pipe' });
    if (r.status !== 0) throw new Error(`bundle failed: ${r.stderr}`);
  }
});

type LogLine = Record<string, unknown> & { event?: string; msg?: string; worker?: number };

interface Running {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  readonly ports: { http: number; admin: number };
  readonly exited: Promise<number | null>;
}

let seq = 0;
/** Writes the config with a rename, as kubelet swaps a ConfigMap: a reader never sees half a file. */
function writeConfigFile(file: string, content: unknown): void {
  const tmp = `${file}.${++seq}.tmp`;
  writeFileSync(tmp, typeof content === 'string' ? content : JSON.stringify(content));
  renameSync(tmp, file);
}

let node = process.execPath;

async function startBundle(file: string): Promise<Running> {
  const child = spawn(node, [BUNDLE, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = collectJsonLines<LogLine>(child.stdout!);
  // 'close', not 'exit': the last log lines are read by then.
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  children.push(child);
  // The supervisor logs as worker 0, once every worker serves.
  await eventually(() => lines.some((l) => l.event === 'started' && l.worker === 0), 20_000, 'supervisor start');
  const ports = lines.find((l) => l.event === 'started' && l.worker === 0)!.ports as { http: number; admin: number };
  return { child, lines, ports, exited };
}

/** One request on a connection of its own: connections, not requests, are spread over the workers. */
function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolveGet({ status: res.statusCode!, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function adminGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolveGet({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

/** Sum of a sample family's values whose labels include `match` (the exposition is already the pod's sum). */
function sample(text: string, name: string, match: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (!Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
    found = true;
  }
  if (!found) throw new Error(`no sample ${name} ${JSON.stringify(match)} in:\n${text}`);
  return total;
}

/** The processes whose parent is `pid` (its workers), from /proc. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Listening sockets on `port` held by each of these processes (the kernel's table against each one's fds). */
function listenSocketsByPid(port: number, pids: readonly number[]): number[] {
  const inodes = new Set(listeningSockets().filter((l) => l.port === port).map((l) => l.inode));
  return pids.map((pid) => readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
    } catch {
      return false;
    }
  }).length);
}

function accessLines(lines: LogLine[]): LogLine[] {
  return lines.filter((l) => l.msg === 'request');
}

const children: ChildProcess[] = [];
let upstream: TestUpstream | undefined;

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  await upstream?.close();
  upstream = undefined;
});

function serviceConfig(port: number, extra: Record<string, unknown> = {}, serviceExtra: Record<string, unknown> = {}): Record<string, unknown> {
  return testConfig({
    workers: 2,
    externalServices: [testService('api', 'api.test.example', {
      ports: [{ port: 80, targetPort: port }], endpoints: [{ address: '127.0.0.1', priority: 0 }], ...serviceExtra,
    })],
    ...extra,
  });
}

describe('workerShare', () => {
  test('splits the per-pod limits among the workers, rounding up; one worker keeps them', () => {
    const v = validateConfig(testConfig({ workers: 3, limits: { maxConcurrent: 10, maxClientConnections: 1 } }));
    if (!v.ok) throw new Error(JSON.stringify(v.problems));
    expect(workerShare(v.config, 3).limits).toEqual({ ...v.config.limits, maxConcurrent: 4, maxClientConnections: 1 });
    expect(workerShare(v.config, 1)).toBe(v.config);
  });
});

describe.each(BUNDLE_RUNTIMES)('two workers (bundle) on $name', (runtime) => {
  let version = '';
  beforeAll(() => {
    ({ node, version } = runtime.resolve());
  }, 300_000);

  test('both workers serve one listener; one scrape sums their counters to the requests sent', async () => {
    upstream = await startHttpsUpstream();
    const file = join(testPki().dir, 'cluster-serve.json');
    writeConfigFile(file, serviceConfig(upstream.port));
    const p = await startBundle(file);
    expect((await adminGet(p.ports.admin, '/ready')).status).toBe(200);
    // Who holds the port's listening sockets: each worker its share, or the supervisor all of them.
    const started = p.lines.find((l) => l.event === 'started' && l.worker === 0)!;
    const mode = acceptMode(version);
    expect(started.accept).toBe(mode);
    expect(listenersOnPort(p.ports.http)).toBe(started.acceptSockets);
    const workers = childPids(p.child.pid!);
    const total = started.acceptSockets as number;
    expect(listenSocketsByPid(p.ports.http, [p.child.pid!, ...workers]))
      .toEqual(mode === 'workers' ? [0, total / 2, total / 2] : [total, 0, 0]);

    const sent = 24;
    const results = await Promise.all(Array.from({ length: sent }, (_, i) => get(p.ports.http, `/r${i}`)));
    expect(results.map((r) => r.status)).toEqual(Array(sent).fill(200));
    expect(upstream.requests()).toBe(sent);
    await eventually(() => accessLines(p.lines).length === sent, 5_000, 'access log lines');
    const byWorker = new Map<number, number>();
    for (const l of accessLines(p.lines)) byWorker.set(l.worker!, (byWorker.get(l.worker!) ?? 0) + 1);
    expect([...byWorker.keys()].sort()).toEqual([1, 2]);

    const metrics = (await adminGet(p.ports.admin, '/metrics')).body;
    expect(sample(metrics, 'outbound_http_route_request_statuses_total', { http_status: '200' })).toBe(sent);
    expect(sample(metrics, 'outbound_http_route_request_duration_seconds_count', { http_status: '200' })).toBe(sent);
    expect(sample(metrics, 'outbound_http_route_request_duration_seconds_bucket', { http_status: '200', le: '+Inf' })).toBe(sent);
    // Pod-level facts are one worker's value, not the sum; the supervisor adds its own.
    expect(sample(metrics, 'egress_config_reload_successes_total')).toBe(1);
    expect(sample(metrics, 'egress_ready')).toBe(1);
    expect(sample(metrics, 'egress_workers')).toBe(2);
    expect(sample(metrics, 'egress_workers_ready')).toBe(2);
    // Each worker enforces half of the pod's limit; together they report the pod's.
    expect(sample(metrics, 'egress_inflight_limit')).toBe(10_000);
    const config = JSON.parse((await adminGet(p.ports.admin, '/config')).body);
    expect(config).toMatchObject({ generation: 1, config: { workers: 2, limits: { maxConcurrent: 10_000 } } });
  });

  test('known statuses: every route and route-backend family sums across the workers to what was sent, scrape after scrape', async () => {
    // The upstream answers with the status its path names: /status/404 → 404.
    upstream = await startHttpsUpstream((req, res) => {
      res.writeHead(Number(/^\/status\/(\d{3})$/.exec(req.url ?? '')?.[1] ?? 200));
      res.end();
    });
    const file = join(testPki().dir, 'cluster-statuses.json');
    writeConfigFile(file, serviceConfig(upstream.port));
    const p = await startBundle(file);
    const statuses = [200, 404, 201];
    let sent = 0;
    for (const round of [1, 2]) {
      // Per round: 6 of each status, each on a connection of its own (both workers serve).
      const paths = statuses.flatMap((s) => Array.from({ length: 6 }, () => `/status/${s}`));
      const results = await Promise.all(paths.map((path) => get(p.ports.http, path)));
      expect(results.map((r) => r.status).sort()).toEqual(paths.map((path) => Number(path.slice(8))).sort());
      sent += paths.length;
      await eventually(() => accessLines(p.lines).length === sent, 5_000, `round ${round} logged`);
      expect(new Set(accessLines(p.lines).map((l) => l.worker)).size).toBe(2);

      const metrics = (await adminGet(p.ports.admin, '/metrics')).body;
      for (const status of statuses.map(String)) {
        const each = 6 * round;
        expect(sample(metrics, 'outbound_http_route_request_statuses_total', { http_status: status })).toBe(each);
        expect(sample(metrics, 'outbound_http_route_request_duration_seconds_count', { http_status: status })).toBe(each);
        expect(sample(metrics, 'outbound_http_route_request_duration_seconds_bucket', { http_status: status, le: '+Inf' })).toBe(each);
        expect(sample(metrics, 'outbound_http_route_backend_response_statuses_total', { http_status: status })).toBe(each);
      }
      expect(sample(metrics, 'outbound_http_route_backend_requests_total')).toBe(sent);
      expect(sample(metrics, 'outbound_http_route_backend_response_duration_seconds_count')).toBe(sent);
      // Buckets are cumulative after the sum across workers too.
      const buckets = metrics.split('\n').filter((l) => l.startsWith('outbound_http_route_request_duration_seconds_bucket{') && l.includes('http_status="200"'))
        .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
      expect(buckets).toHaveLength(14);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
      expect(buckets[13]).toBe(6 * round);
    }
  });

  test('reload: every worker applies a good config and a rotated secret; a bad one, invalid or naming an unreadable file, is rejected by all', async () => {
    upstream = await startHttpsUpstream();
    const dir = testPki().dir;
    const file = join(dir, 'cluster-reload.json');
    const tokenFile = join(dir, 'cluster-token');
    writeFileSync(tokenFile, 's3cret\n');
    writeConfigFile(file, serviceConfig(upstream.port));
    const p = await startBundle(file);

    // Good: an injected header every worker must add from now on.
    writeConfigFile(file, serviceConfig(upstream.port, {}, { injectHeaders: [{ name: 'x-token', valueFile: tokenFile }] }));
    await eventually(async () => JSON.parse((await adminGet(p.ports.admin, '/config')).body).generation === 2, 20_000, 'generation 2');
    // Log lines of three processes reach the pipe in any order, and after /config may have answered.
    await eventually(() => p.lines.filter((l) => l.event === 'config-reloaded').length === 3, 5_000, 'three reload lines');
    expect(p.lines.filter((l) => l.event === 'config-reloaded').map((l) => l.worker).sort()).toEqual([0, 1, 2]);
    const before = upstream.seen.length;
    await Promise.all(Array.from({ length: 8 }, () => get(p.ports.http)));
    expect(upstream.seen.slice(before).map((s) => s.headers['x-token'])).toEqual(Array(8).fill('s3cret'));

    // A rotated secret file: the same config compiled again by every worker.
    writeConfigFile(tokenFile, 'rotated\n');
    await eventually(async () => JSON.parse((await adminGet(p.ports.admin, '/config')).body).generation === 3, 20_000, 'generation 3');
    const rotated = upstream.seen.length;
    await Promise.all(Array.from({ length: 8 }, () => get(p.ports.http)));
    expect(upstream.seen.slice(rotated).map((s) => s.headers['x-token'])).toEqual(Array(8).fill('rotated'));

    // Bad at compile time only (the supervisor's validation passes; each worker's compile fails).
    writeConfigFile(file, serviceConfig(upstream.port, {}, { injectHeaders: [{ name: 'x-token', valueFile: join(dir, 'no-such-token') }] }));
    await eventually(() => p.lines.some((l) => l.event === 'config-reload-failed' && l.worker === 0), 20_000, 'rejected by the supervisor');
    await eventually(() => p.lines.filter((l) => l.event === 'config-reload-failed' && l.worker !== 0).length === 2, 5_000, 'rejected by both workers');
    // Invalid: every worker keeps the last good config too.
    writeConfigFile(file, { ...serviceConfig(upstream.port), timeouts: { idleMs: -5 } });
    await eventually(() => p.lines.filter((l) => l.event === 'config-reload-failed' && l.worker !== 0).length === 4, 20_000, 'second rejection');
    await eventually(() => p.lines.filter((l) => l.event === 'config-reload-failed' && l.worker === 0).length === 2, 5_000, 'second rejection logged');
    const failed = p.lines.filter((l) => l.event === 'config-reload-failed' && l.worker === 0) as Array<{ problems: Array<{ path: string }> }>;
    expect(failed.map((l) => l.problems.map((x) => x.path))).toEqual([['$.externalServices[0].injectHeaders[0].valueFile'], ['$.timeouts.idleMs']]);

    expect(JSON.parse((await adminGet(p.ports.admin, '/config')).body).generation).toBe(3);
    const after = upstream.seen.length;
    await Promise.all(Array.from({ length: 8 }, () => get(p.ports.http)));
    expect(upstream.seen.slice(after).map((s) => s.headers['x-token'])).toEqual(Array(8).fill('rotated'));
    const metrics = (await adminGet(p.ports.admin, '/metrics')).body;
    expect(sample(metrics, 'egress_config_reload_successes_total')).toBe(3);
    expect(sample(metrics, 'egress_config_reload_failures_total')).toBe(2);
    expect((await adminGet(p.ports.admin, '/ready')).status).toBe(200);
  });

  test('SIGTERM: not ready at once, every worker finishes its in-flight requests, then the supervisor exits 0', async () => {
    const held: Array<() => void> = [];
    upstream = await startHttpsUpstream((_req, res) => {
      res.writeHead(200);
      res.write('first half, ');
      held.push(() => res.end('second half'));
    });
    const file = join(testPki().dir, 'cluster-drain.json');
    writeConfigFile(file, serviceConfig(upstream.port, { timeouts: { shutdownGraceMs: 15_000, drainDelayMs: 0 } }));
    const p = await startBundle(file);

    // Enough that both workers hold some, however the kernel spreads the connections.
    const inflight = 16;
    const pending = Array.from({ length: inflight }, (_, i) => get(p.ports.http, `/slow${i}`));
    await eventually(() => held.length === inflight, 5_000, 'requests at the upstream');

    process.kill(p.child.pid!, 'SIGTERM');
    await eventually(async () => (await adminGet(p.ports.admin, '/ready').catch(() => ({ status: 0 }))).status === 503, 5_000, '/ready 503');
    await eventually(() => p.lines.filter((l) => l.event === 'draining' && l.worker !== 0).length === 2, 5_000, 'both workers draining');
    expect(p.child.exitCode).toBeNull();
    for (const finish of held) finish();
    const results = await Promise.all(pending);
    expect(results).toEqual(Array(inflight).fill({ status: 200, body: 'first half, second half' }));
    expect(await p.exited).toBe(0);
    const served = new Set(accessLines(p.lines).map((l) => l.worker));
    expect([...served].sort()).toEqual([1, 2]);
    expect(p.lines.filter((l) => l.event === 'worker-stopped').map((l) => l.code)).toEqual([0, 0]);
  });

  test('a worker that dies is replaced, and the summed counters keep what it had served', async () => {
    upstream = await startHttpsUpstream();
    const file = join(testPki().dir, 'cluster-crash.json');
    writeConfigFile(file, serviceConfig(upstream.port));
    const p = await startBundle(file);
    await Promise.all(Array.from({ length: 10 }, () => get(p.ports.http)));
    const count = async () => sample((await adminGet(p.ports.admin, '/metrics')).body, 'outbound_http_route_request_statuses_total', { http_status: '200' });
    expect(await count()).toBe(10);

    const workers = childPids(p.child.pid!);
    expect(workers).toHaveLength(2);
    process.kill(workers[0], 'SIGKILL');
    await eventually(() => p.lines.some((l) => l.event === 'worker-exited'), 5_000, 'the supervisor sees the exit');
    // The replacement has logged that it serves, and the supervisor counts it ready (the pod is
    // ready with one worker too, until the replacement is forked 100 ms after the exit).
    await eventually(async () => p.lines.filter((l) => l.event === 'worker-serving').length === 3
      && (await adminGet(p.ports.admin, '/ready')).status === 200, 10_000, 'a replacement serving');
    const metrics = (await adminGet(p.ports.admin, '/metrics')).body;
    expect(sample(metrics, 'egress_worker_restarts_total')).toBe(1);
    expect(sample(metrics, 'egress_workers_ready')).toBe(2);
    expect(await count()).toBe(10);
    // The replacement holds the port as the one it replaced did.
    const started = p.lines.find((l) => l.event === 'started' && l.worker === 0)!;
    expect(listenersOnPort(p.ports.http)).toBe(started.acceptSockets);
    const now = childPids(p.child.pid!);
    expect(now).not.toContain(workers[0]);
    const total = started.acceptSockets as number;
    expect(listenSocketsByPid(p.ports.http, [p.child.pid!, ...now]))
      .toEqual(acceptMode(version) === 'workers' ? [0, total / 2, total / 2] : [total, 0, 0]);
    const results = await Promise.all(Array.from({ length: 10 }, () => get(p.ports.http)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(await count()).toBe(20);
  });

  test('an invalid config at startup: exit 1 before any worker starts', () => {
    const file = join(testPki().dir, 'cluster-bad.json');
    writeConfigFile(file, { ...testConfig({ workers: 2 }), timeouts: { idleMs: -5 } });
    const r = spawnSync(node, [BUNDLE, '--config', file], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('$.timeouts.idleMs');
    expect(r.stdout).not.toContain('"event":"started"');
  });

  test('a data-plane port something else listens on: exit 1 naming the port, nothing left listening', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const file = join(testPki().dir, 'cluster-taken.json');
      writeConfigFile(file, testConfig({ workers: 2, listeners: { bindAddress: '127.0.0.1', http: { port }, admin: { port: 0 } } }));
      const child = spawn(node, [BUNDLE, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const lines = collectJsonLines<LogLine>(child.stdout!);
      const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
      expect(code).toBe(1);
      expect(JSON.stringify(lines)).toContain('EADDRINUSE');
      expect(JSON.stringify(lines)).toContain(String(port));
      expect(lines.some((l) => l.event === 'started')).toBe(false);
      expect(listenersOnPort(port)).toBe(1);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  test('a TCP listener: its connections reach both workers; a client that half-closes still gets its answer', async () => {
    const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    try {
      const echoPort = (echo.address() as net.AddressInfo).port;
      const dir = testPki().dir;
      const file = join(dir, 'cluster-tcp.json');
      writeConfigFile(file, testConfig({
        workers: 2,
        listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp: [{ port: 0, externalService: 'echo', servicePort: 7000 }] },
        externalServices: [testService('echo', 'echo.test.example', {
          ports: [{ port: 7000, protocol: 'tcp', targetPort: echoPort }], tls: { enabled: false }, endpoints: [{ address: '127.0.0.1', priority: 0 }],
        })],
      }));
      const { lines } = await startBundle(file);
      const tcpPort = (lines.find((l) => l.event === 'started' && l.worker === 0)!.ports as { tcp: number[] }).tcp[0];
      const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => new Promise<string>((resolveAnswer, reject) => {
        const client = net.connect({ host: '127.0.0.1', port: tcpPort, allowHalfOpen: true });
        let got = '';
        client.setEncoding('utf8');
        client.on('data', (c: string) => { got += c; });
        client.once('error', reject);
        client.once('close', () => resolveAnswer(got));
        // Written and half-closed at once: the worker gets a socket whose client has already sent FIN.
        client.end(`message ${i}`);
      })));
      expect(answers).toEqual(Array.from({ length: 16 }, (_, i) => `message ${i}`));
      await eventually(() => lines.filter((l) => l.msg === 'connection').length === 16, 10_000, 'connection log lines');
      const workersServing = new Set(lines.filter((l) => l.msg === 'connection').map((l) => l.worker));
      expect([...workersServing].sort()).toEqual([1, 2]);
    } finally {
      await new Promise<void>((r) => echo.close(() => r()));
    }
  });

  test('TCP listeners reordered by a reload, and a worker replaced after it: every port still reaches the service it was bound for', async () => {
    // Two TCP services told apart by their answer: one echoes, the other prefixes "B:".
    const upstreams = [(c: net.Socket) => c.pipe(c), (c: net.Socket) => c.on('data', (d: Buffer) => c.end(`B:${d.toString()}`))]
      .map((serve) => net.createServer({ allowHalfOpen: true }, (c) => {
        c.on('error', () => undefined);
        serve(c);
      }));
    for (const u of upstreams) await new Promise<void>((r) => u.listen(0, '127.0.0.1', () => r()));
    try {
      const [echoPort, prefixPort] = upstreams.map((u) => (u.address() as net.AddressInfo).port);
      const a = { port: 0, externalService: 'echo', servicePort: 7000 };
      const b = { port: 0, externalService: 'prefix', servicePort: 7001 };
      const config = (tcp: unknown[]) => testConfig({
        workers: 2,
        listeners: { bindAddress: '127.0.0.1', http: { port: 0 }, admin: { port: 0 }, tcp },
        externalServices: [
          testService('echo', 'echo.test.example', {
            ports: [{ port: 7000, protocol: 'tcp', targetPort: echoPort }], tls: { enabled: false }, endpoints: [{ address: '127.0.0.1', priority: 0 }],
          }),
          testService('prefix', 'prefix.test.example', {
            ports: [{ port: 7001, protocol: 'tcp', targetPort: prefixPort }], tls: { enabled: false }, endpoints: [{ address: '127.0.0.1', priority: 0 }],
          }),
        ],
      });
      const file = join(testPki().dir, 'cluster-tcp-reorder.json');
      writeConfigFile(file, config([a, b]));
      const p = await startBundle(file);
      const [portA, portB] = (p.lines.find((l) => l.event === 'started' && l.worker === 0)!.ports as { tcp: number[] }).tcp;
      const ask = (port: number, text: string) => new Promise<string>((resolveAnswer, reject) => {
        const client = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        let got = '';
        client.setEncoding('utf8');
        client.on('data', (c: string) => { got += c; });
        client.once('error', reject);
        client.once('close', () => resolveAnswer(got));
        client.end(text);
      });
      // Enough connections per port that both workers serve each.
      const round = async () => (await Promise.all(Array.from({ length: 12 }, (_, i) => Promise.all([ask(portA, `a${i}`), ask(portB, `b${i}`)])))).flat();
      const expected = Array.from({ length: 12 }, (_, i) => [`a${i}`, `B:b${i}`]).flat();
      expect(await round()).toEqual(expected);

      writeConfigFile(file, config([b, a]));
      await eventually(() => p.lines.some((l) => l.event === 'config-reloaded' && l.worker === 0), 10_000, 'the reload');
      // Each worker says so (its log lines may come after the supervisor's).
      await eventually(() => p.lines.filter((l) => l.event === 'config-restart-needed').length === 2, 5_000, 'restart-needed warnings');
      expect(await round()).toEqual(expected);

      // A worker started after the reload serves the listeners as they were bound, not as reordered.
      process.kill(childPids(p.child.pid!)[0], 'SIGKILL');
      await eventually(async () => p.lines.filter((l) => l.event === 'worker-serving').length === 3
        && (await adminGet(p.ports.admin, '/ready')).status === 200, 10_000, 'a replacement serving');
      const before = p.lines.filter((l) => l.msg === 'connection').length;
      expect(await round()).toEqual(expected);
      await eventually(() => p.lines.filter((l) => l.msg === 'connection').length === before + 24, 10_000, 'connection log lines');
      const replacement = Math.max(...p.lines.filter((l) => l.event === 'worker-serving').map((l) => l.worker!));
      expect(p.lines.slice(before).some((l) => l.msg === 'connection' && l.worker === replacement)).toBe(true);
    } finally {
      for (const u of upstreams) await new Promise<void>((r) => u.close(() => r()));
    }
  });
});
