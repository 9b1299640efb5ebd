/**
 * Harness for the tests that join the two halves: take the proxy config out of synthesised
 * manifests, apply the few documented harness patches (loopback binds, loopback upstreams, test
 * trust, re-rooted mount paths) and run the real proxy from it with loopback-only seams.
 * Builds on test/proxy/helpers.ts (test PKI, upstreams, resolver, logger) and adds what the
 * end-to-end tests need on top: certificates for real hostnames, a port-mapping dialer that
 * throws on anything but loopback, and an exact Prometheus exposition parser.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { ProxyConfig } from '../../src/model/proxy-config';
import type { Dialer } from '../../src/proxy/runtime';
import { startProxy, type ProxyHandle } from '../../src/proxy/server';
import {
  capturingLogger, isLoopback, loopbackResolver, scrape, testPki, type CapturedLogs, type RecordingResolver,
} from '../proxy/helpers';

export const ROOT = resolve(__dirname, '..', '..');
/** The bundled proxy that ships in the image (`npx projen bundle`; `npm test` builds it first). */
export const BUNDLE = join(ROOT, 'assets', 'proxy', 'main', 'index.js');
/** Where gateway pods see mounted Secrets and ConfigMaps (src/internal/mounts.ts). */
export const POD_MOUNT_ROOT = '/var/run/egress/';

const run = promisify(execFile);

/* ------------------------------------------------------------------------- certificates */

export interface Pair {
  readonly cert: string;
  readonly key: string;
}

const leafCache = new Map<string, Pair>();

/**
 * A leaf certificate for `sans` (DNS names) signed by the test CA or, with `untrusted`, by the
 * CA nobody trusts (test/proxy/helpers.ts testPki()).
 */
export function leafCert(sans: readonly string[], opts: { untrusted?: boolean; cn?: string; usage?: 'serverAuth' | 'clientAuth' } = {}): Pair {
  const id = `${opts.untrusted ? 'u' : 't'}|${opts.cn ?? ''}|${opts.usage ?? 'serverAuth'}|${sans.join(',')}`;
  const cached = leafCache.get(id);
  if (cached) return cached;
  const pki = testPki();
  const ca = opts.untrusted ? 'untrusted-ca' : 'ca';
  const dir = mkdtempSync(join(tmpdir(), 'egress-e2e-leaf-'));
  const sh = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  sh(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${opts.cn ?? sans[0]}`,
    '-keyout', 'leaf.key', '-out', 'leaf.csr']);
  writeFileSync(join(dir, 'leaf.ext'),
    `subjectAltName=${sans.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=${opts.usage ?? 'serverAuth'}\nbasicConstraints=CA:FALSE\n`);
  sh(['x509', '-req', '-in', 'leaf.csr', '-CA', join(pki.dir, `${ca}.pem`), '-CAkey', join(pki.dir, `${ca}.key`),
    '-CAserial', join(dir, 'ca.srl'), '-CAcreateserial', '-days', '2', '-out', 'leaf.pem', '-extfile', 'leaf.ext']);
  const pair = { cert: readFileSync(join(dir, 'leaf.pem'), 'utf8'), key: readFileSync(join(dir, 'leaf.key'), 'utf8') };
  rmSync(dir, { recursive: true, force: true });
  leafCache.set(id, pair);
  return pair;
}

/**
 * A server certificate for `names` (the real hostnames the seeds use: httpbin.org, ...), signed by
 * the test CA of test/proxy/helpers.ts, so a client or the proxy trusting that CA verifies it.
 */
export function serverCertFor(names: readonly string[]): Pair {
  return leafCert(names);
}

/* ------------------------------------------------------------------------- manifests */

/** Every object of every YAML file in `dir` (what `app.synth()` wrote), sorted by file name. */
export function readManifests(dir: string): any[] {
  return readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS()))
    .filter((o) => o);
}

/** The one ConfigMap carrying a proxy config (`data['config.json']`) among `manifests`. */
export function proxyConfigMap(manifests: readonly any[]): any {
  const found = manifests.filter((o) => o?.kind === 'ConfigMap' && typeof o.data?.['config.json'] === 'string');
  if (found.length !== 1) throw new Error(`expected one ConfigMap with config.json, found ${found.length}`);
  return found[0];
}

/* ------------------------------------------------------------------------- harness patches */

export interface HarnessPatchOptions {
  /**
   * Trusted as an extra CA by the proxy (usually the test CA). Without it no trust is added, so
   * TLS settings naming no CA keep relying on the system roots.
   */
  readonly caPem?: string;
  /** Directory standing in for `/` under the pod's mount root (`/var/run/egress/...`). */
  readonly mountRoot: string;
}

/** Where a pod path lives on the test machine. Paths outside the mount root are left alone. */
export function remapPodPath(path: string, mountRoot: string): string {
  return path.startsWith(POD_MOUNT_ROOT) ? join(mountRoot, path) : path;
}

/**
 * The harness patches, all of them, in one place. A synthesised config describes a pod; a test
 * process differs from a pod in exactly these ways, and nothing else is changed:
 *
 * 1. listeners: bindAddress 127.0.0.1 and every port 0 (ephemeral), so tests bind nothing
 *    public and never collide. parentPort values (what metrics call parent_port) stay.
 * 2. addressPolicy.allowCidrs += 127.0.0.0/8: the upstream stand-ins listen on loopback, which
 *    the built-in address vetting refuses (rightly) in production.
 * 3. trust (only when `caPem` is given): caPem in defaultTls and in every TLS-originating
 *    external service that names no CA of its own (a service with caFile keeps only the trust
 *    its config names).
 * 4. mounted files: every path under /var/run/egress/ (the pod's Secret and ConfigMap mounts)
 *    is re-rooted under `mountRoot`, where the test writes the files the config names.
 *
 * Policy is never patched: parent (trafficPolicy, mode, networks), routes, hosts, ports,
 * endpoints, injected header names, timeouts and limits reach the proxy as synthesised.
 * `harnessChanges()` checks a patched config against this list.
 */
export function harnessPatch(config: ProxyConfig, options: HarnessPatchOptions): ProxyConfig {
  const c = JSON.parse(JSON.stringify(config)) as any;
  const l = c.listeners;
  l.bindAddress = '127.0.0.1';
  l.http.port = 0;
  if (l.tls) l.tls.port = 0;
  for (const t of l.tcp ?? []) t.port = 0;
  l.admin.port = 0;
  c.addressPolicy.allowCidrs = [...c.addressPolicy.allowCidrs, '127.0.0.0/8'];
  const remap = (tls: any) => {
    for (const k of ['caFile', 'clientCertFile', 'clientKeyFile']) if (tls[k]) tls[k] = remapPodPath(tls[k], options.mountRoot);
  };
  const trust = (tls: any) => {
    if (options.caPem && tls.enabled !== false && !tls.caFile && !tls.caPem) tls.caPem = options.caPem;
  };
  remap(c.defaultTls);
  trust(c.defaultTls);
  for (const s of c.externalServices) {
    remap(s.tls);
    trust(s.tls);
    for (const h of s.injectHeaders) h.valueFile = remapPodPath(h.valueFile, options.mountRoot);
  }
  return c as ProxyConfig;
}

/** JSON paths at which `patched` differs from `original` (added, removed or changed leaves). */
export function changedPaths(original: unknown, patched: unknown, path = '$'): string[] {
  if (JSON.stringify(original) === JSON.stringify(patched)) return [];
  const isObj = (v: unknown) => typeof v === 'object' && v !== null;
  if (!isObj(original) || !isObj(patched) || Array.isArray(original) !== Array.isArray(patched)) return [path];
  if (Array.isArray(original)) {
    const b = patched as unknown[];
    const out: string[] = [];
    for (let i = 0; i < Math.max(original.length, b.length); i++) out.push(...changedPaths(original[i], b[i], `${path}[${i}]`));
    return out;
  }
  const a = original as Record<string, unknown>;
  const b = patched as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((k) => changedPaths(a[k], b[k], `${path}.${k}`));
}

const HARNESS_PATHS = [
  /^\$\.listeners\.bindAddress$/,
  /^\$\.listeners\.(http|tls|admin)\.port$/,
  /^\$\.listeners\.tcp\[\d+\]\.port$/,
  /^\$\.addressPolicy\.allowCidrs\[\d+\]$/,
  /^\$\.(defaultTls|externalServices\[\d+\]\.tls)\.(caPem|caFile|clientCertFile|clientKeyFile)$/,
  /^\$\.externalServices\[\d+\]\.injectHeaders\[\d+\]\.valueFile$/,
];

/** The changes between two configs that are NOT one of harnessPatch()'s documented patches. */
export function nonHarnessChanges(original: unknown, patched: unknown): string[] {
  return changedPaths(original, patched).filter((p) => !HARNESS_PATHS.some((re) => re.test(p)));
}

/* ------------------------------------------------------------------------- seams */

export interface MappingDialer {
  readonly dial: Dialer;
  /** Every (address, port) the proxy asked for. */
  readonly calls: Array<{ address: string; port: number }>;
  /** Requests for a non-loopback address (each one also threw): must stay empty. */
  readonly refused: Array<{ address: string; port: number }>;
}

/**
 * The only way out of the proxy in these tests: the port the proxy dials (443 for TLS to a real
 * hostname, 80 for an in-cluster Service) is mapped to a local stand-in's ephemeral port. It
 * throws for any address outside loopback, and for a port nothing stands in for.
 */
export function mappingDialer(ports: Readonly<Record<number, number>>): MappingDialer {
  const calls: Array<{ address: string; port: number }> = [];
  const refused: Array<{ address: string; port: number }> = [];
  const dial: Dialer = (address, port) => {
    calls.push({ address, port });
    if (!isLoopback(address)) {
      refused.push({ address, port });
      throw Object.assign(new Error(`e2e dialer refuses non-loopback address ${address}`), { code: 'EACCES' });
    }
    const mapped = ports[port];
    if (mapped === undefined) throw Object.assign(new Error(`e2e dialer has no stand-in for port ${port}`), { code: 'ECONNREFUSED' });
    return net.connect({ host: address, port: mapped });
  };
  return { dial, calls, refused };
}

export interface SynthProxy {
  readonly proxy: ProxyHandle;
  readonly resolver: RecordingResolver;
  readonly dialer: MappingDialer;
  readonly logs: CapturedLogs;
  /** The config exactly as synthesised (parsed), and the file it was written to. */
  readonly synthesised: ProxyConfig;
  readonly synthesisedFile: string;
  /** The config after harnessPatch(), and the file the proxy was started from. */
  readonly patched: ProxyConfig;
  readonly patchedFile: string;
  readonly mountRoot: string;
  close(): Promise<void>;
}

export interface StartFromSynthOptions {
  /** `data['config.json']` of the synthesised ConfigMap, verbatim. */
  readonly configText: string;
  /** Name → address table for the injected resolver (loopback addresses only in these tests). */
  readonly names: Record<string, string | string[]>;
  /** Dialled port → local stand-in port. */
  readonly ports: Readonly<Record<number, number>>;
  /** Files to create at the pod paths the config names (remapped under the mount root). */
  readonly files?: Readonly<Record<string, string>>;
  /** harnessPatch()'s caPem; `null` adds no trust. @default the test CA */
  readonly caPem?: string | null;
}

/**
 * Write the synthesised text to a file, patch it (harnessPatch, nothing else), write the patched
 * file and start the real proxy from that file with the loopback resolver and mapping dialer.
 */
export async function startFromSynth(o: StartFromSynthOptions): Promise<SynthProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'egress-e2e-'));
  const mountRoot = join(dir, 'pod');
  const synthesisedFile = join(dir, 'config.synth.json');
  writeFileSync(synthesisedFile, o.configText);
  const synthesised = JSON.parse(o.configText) as ProxyConfig;
  const patched = harnessPatch(synthesised, { caPem: o.caPem === null ? undefined : o.caPem ?? testPki().caPem, mountRoot });
  for (const [podPath, content] of Object.entries(o.files ?? {})) {
    const local = remapPodPath(podPath, mountRoot);
    mkdirSync(dirname(local), { recursive: true });
    writeFileSync(local, content);
  }
  const patchedFile = join(dir, 'config.json');
  writeFileSync(patchedFile, JSON.stringify(patched, null, 2));
  const resolver = loopbackResolver(o.names);
  const dialer = mappingDialer(o.ports);
  const { logger, logs } = capturingLogger();
  let proxy: ProxyHandle;
  try {
    proxy = await startProxy({ configPath: patchedFile, watch: false, resolver: resolver.resolve, dial: dialer.dial, logger });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    proxy,
    resolver,
    dialer,
    logs,
    synthesised,
    synthesisedFile,
    patched,
    patchedFile,
    mountRoot,
    close: async () => {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/* ------------------------------------------------------------------------- metrics */

export interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(["\\n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/**
 * Every sample of `name` in Prometheus text exposition, with all its labels. Used with toEqual on
 * the whole list, so an extra label, an extra series or a wrong count fails the test.
 */
export function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    if (line.startsWith(`${name} `)) {
      out.push({ labels: {}, value: Number(line.slice(name.length + 1).trim()) });
      continue;
    }
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels: Record<string, string> = {};
    for (const m of line.slice(name.length + 1, close).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = unescapeLabel(m[2]);
    out.push({ labels, value: Number(line.slice(close + 1).trim()) });
  }
  return out;
}

/** Scrape the admin listener and return the samples of `name`. */
export async function scrapeSamples(adminPort: number, name: string): Promise<Sample[]> {
  return samples(await scrape(adminPort), name);
}

/** The labels of a Linkerd route metric, in the seed's order; pass the ones that differ. */
export function routeLabels(l: {
  parentPort: number;
  routeKind: string;
  routeName: string;
  hostname: string;
  routeNamespace?: string;
  routeGroup?: string;
  parentName?: string;
  parentNamespace?: string;
}): Record<string, string> {
  const isDefault = l.routeKind === 'default';
  return {
    parent_group: 'policy.linkerd.io',
    parent_kind: 'EgressNetwork',
    parent_namespace: l.parentNamespace ?? 'egress-test',
    parent_name: l.parentName ?? 'all-egress-traffic',
    parent_port: String(l.parentPort),
    parent_section_name: '',
    route_group: l.routeGroup ?? (isDefault ? '' : 'gateway.networking.k8s.io'),
    route_kind: l.routeKind,
    route_namespace: l.routeNamespace ?? (isDefault ? '' : 'egress-test'),
    route_name: l.routeName,
    hostname: l.hostname,
  };
}

/* ------------------------------------------------------------------------- clients */

export interface CurlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run curl (bounded by --max-time) and report its exit code instead of throwing. */
export async function curl(args: readonly string[]): Promise<CurlResult> {
  try {
    const { stdout, stderr } = await run('curl', ['-sS', '--max-time', '10', ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The bundled proxy's --check-config verdict on `file`. */
export async function checkConfigWithBundle(file: string): Promise<CurlResult> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npx projen bundle\` (npm test does it first)`);
  try {
    const { stdout, stderr } = await run(process.execPath, [BUNDLE, '--check-config', file], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
