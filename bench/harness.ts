// Benchmark plumbing: throwaway PKI, child processes with their CPU read from /proc, a fixed-count
// closed-loop load generator and the numbers it reports. Loopback only; everything is stopped.
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

export interface Pki {
  readonly dir: string;
  readonly caFile: string;
  readonly keyFile: string;
  readonly certFile: string;
}

/** A CA and a server certificate for `serverName`, made with openssl into `dir`. */
export function makePki(dir: string, serverName: string): Pki {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-days', '1', '-subj', '/CN=egress bench CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  run('req', ...ec, '-subj', `/CN=${serverName}`, '-keyout', 'server.key', '-out', 'server.csr');
  fs.writeFileSync(path.join(dir, 'ext.cnf'), `subjectAltName=DNS:${serverName}\nextendedKeyUsage=serverAuth\n`);
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1',
    '-extfile', 'ext.cnf', '-out', 'server.pem');
  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    keyFile: path.join(dir, 'server.key'),
    certFile: path.join(dir, 'server.pem'),
  };
}

/** Distinct free TCP ports on 127.0.0.1 (released before return; fine for a single-user bench). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer());
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User+system CPU of another process in microseconds, from /proc (undefined where there is none). */
export function processCpuMicros(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses; fields are counted after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in MiB, from /proc. */
export function processRssMiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resident MiB of `pid` by kind of mapping, from /proc/<pid>/smaps: the executable's own file
 * (binary), `[heap]` (the brk heap: malloc), other anonymous memory (the V8 heap, large mallocs,
 * thread stacks), shared libraries and the rest.
 */
export function rssByMapping(pid: number): Record<'binary' | 'brk' | 'anon' | 'libs' | 'other', number> {
  const out = { binary: 0, brk: 0, anon: 0, libs: 0, other: 0 };
  let exe = '';
  let text = '';
  try {
    exe = fs.readlinkSync(`/proc/${pid}/exe`);
    text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return out;
  }
  let kind: keyof typeof out = 'other';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1];
      kind = name === exe ? 'binary' : name === '[heap]' ? 'brk' : name === '' ? 'anon' : /\.so(\.|$)/.test(name) ? 'libs' : 'other';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB$/.exec(line);
    if (rss) out[kind] += Number(rss[1]) / 1024;
  }
  return out;
}

/** `pid` and every process below it (nginx workers, cluster workers), from /proc. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch { /* exited meanwhile */ }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** User+system CPU of a process and its descendants, in microseconds (exited ones not counted). */
export function processTreeCpuMicros(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + (processCpuMicros(p) ?? 0), 0);
}

/** Resident set size of a process and its descendants, in MiB. */
export function processTreeRssMiB(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + (processRssMiB(p) ?? 0), 0);
}

/** How Child.start runs a Node script. */
export interface ChildOptions {
  /** The node binary. Default: this process's (process.execPath). */
  readonly node?: string;
  /** Node flags before the script. */
  readonly nodeArgs?: readonly string[];
  readonly cwd?: string;
  /** The child's whole environment. Default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
}

/** A child process we started, with the tail of its stderr for error messages. */
export class Child {
  /**
   * A Node script: by default on this process's node, with its environment; optionally another
   * node binary, node flags (e.g. --cpu-prof), a working directory and the whole environment.
   */
  public static start(name: string, file: string, args: readonly string[], options: ChildOptions = {}): Child {
    const proc = spawn(options.node ?? process.execPath, [...(options.nodeArgs ?? []), file, ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd, env: options.env });
    return new Child(name, proc);
  }

  /** Any executable (nginx). */
  public static exec(name: string, command: string, args: readonly string[]): Child {
    return new Child(name, spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  private stderrTail = '';
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exitPromise: Promise<void>;

  private constructor(public readonly name: string, public readonly proc: ChildProcess) {
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    this.exitPromise = new Promise((resolve) => proc.once('exit', (code, signal) => {
      this.exited = { code, signal };
      resolve();
    }));
  }

  public get pid(): number {
    return this.proc.pid!;
  }

  public get alive(): boolean {
    return this.exited === undefined;
  }

  public describeExit(): string {
    const how = this.exited ? `exited (code ${this.exited.code}, signal ${this.exited.signal})` : 'is running';
    return `${this.name} ${how}${this.stderrTail ? `; stderr:\n${this.stderrTail}` : ''}`;
  }

  /** The first stdout line, parsed as JSON (how the upstream reports its port). */
  public async firstJsonLine<T>(timeoutMs: number): Promise<T> {
    const stdout = this.proc.stdout!;
    stdout.setEncoding('utf8');
    return new Promise<T>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`${this.name}: no output within ${timeoutMs} ms; ${this.describeExit()}`)), timeoutMs);
      const onData = (chunk: string) => {
        buf += chunk;
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        stdout.off('data', onData);
        stdout.resume(); // drain the rest so the child never blocks on a full pipe
        try {
          resolve(JSON.parse(buf.slice(0, nl)) as T);
        } catch (e) {
          reject(new Error(`${this.name}: first line is not JSON: ${buf.slice(0, nl)}`));
        }
      };
      stdout.on('data', onData);
      void this.exitPromise.then(() => {
        clearTimeout(timer);
        reject(new Error(this.describeExit()));
      });
    });
  }

  /**
   * SIGTERM, then SIGKILL if it has not exited within `graceMs`. The default outlasts the proxy's
   * drain delay (5 s by default): a killed process never writes its --cpu-prof profile.
   */
  public async stop(graceMs = 15_000): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}

export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly elapsedMs: number;
  /** Sorted ascending. */
  readonly latenciesMs: Float64Array;
  readonly clientCpuMicros: number;
}

/**
 * Closed loop: `concurrency` workers each send one request at a time until `total` have been
 * sent. `send` resolves when the whole response has been read and checked, or throws.
 */
export async function runLoad(total: number, concurrency: number, send: () => Promise<void>): Promise<LoadResult> {
  const latencies = new Float64Array(total);
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    for (let i = next++; i < total; i = next++) {
      const start = process.hrtime.bigint();
      try {
        await send();
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
      }
      latencies[i] = Number(process.hrtime.bigint() - start) / 1e6;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort();
  return { requests: total, errors, firstError, elapsedMs, latenciesMs: latencies, clientCpuMicros: cpu.user + cpu.system };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Poll `check` every 50 ms until it resolves true, or fail after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs a benchmark's main: gives up after maxSeconds (killing what it started), stops what it
 * started on Ctrl-C or a kill, and sets a failing exit code when main throws.
 */
export function runBench(main: () => Promise<void>, children: readonly Child[], maxSeconds: number): void {
  const guard = setTimeout(() => {
    console.error(`bench: gave up after ${maxSeconds} s`);
    for (const c of children) c.proc.kill('SIGKILL');
    process.exit(1);
  }, maxSeconds * 1000);
  guard.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench: ${signal}; stopping`);
      void Promise.all(children.map((c) => c.stop(1_000))).finally(() => process.exit(130));
    });
  }
  main().then(() => clearTimeout(guard), (e: Error) => {
    console.error(`bench: ${e.message}`);
    process.exitCode = 1;
    clearTimeout(guard);
  });
}
