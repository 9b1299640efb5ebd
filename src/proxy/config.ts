// The config boundary: parse the versioned JSON document, validate every field, fill defaults
// from the shared model, and return a deep-frozen ProxyConfig, or every problem at once.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { isLoopbackCidr, parseLinkerdIdentity, parseSpiffeId, clientKey } from './caller';
import { parseCidr } from './cidr';
import { compileRegex } from './route-match';
import {
  CONFIG_FILE_LIMITS, ENDPOINT_PRIORITY_BOUNDS, GATEWAY_ONLY_TIMEOUTS, GRPC_STATUS_BOUNDS, HTTP_STATUS_BOUNDS, LIMIT_BOUNDS, POOL_BOUNDS,
  RETRY_BOUNDS, TIMEOUT_BOUNDS, WORKER_BOUNDS,
} from '../model/bounds';
import {
  AMBIGUOUS_PATHS_VALUES, CALLER_SOURCE_VALUES, CONNECT_SNI_VALUES, DEFAULT_ADDRESS_POLICY, DEFAULT_CALLERS, TRUSTED_PEER_POD_IP,
  UNKNOWN_CALLER_VALUES, DEFAULT_ADMIN_PORT, DEFAULT_AMBIGUOUS_PATHS, DEFAULT_CONNECT_SNI,
  DEFAULT_EGRESS_SUFFIX,
  DEFAULT_HTTP_PARENT_PORT, DEFAULT_HTTP_PORT,
  DEFAULT_LIMITS, DEFAULT_POOL, DEFAULT_RETRY, DEFAULT_TIMEOUTS, DEFAULT_TLS, DEFAULT_TLS_PORT, DEFAULT_TLS_TARGET_PORT, DEFAULT_WORKERS,
} from '../model/defaults';
import { dnsLabelRule, dnsSubdomainRule, isDnsLabel, isDnsSubdomain, isHostName, isHostPattern } from '../model/names';
import {
  PROXY_CONFIG_API_VERSION, PROXY_CONFIG_KIND, PROXY_CONFIG_SHARD_KIND,
  type BackendRefSpec, type CallersSpec, type ClientSpec, type EndpointSpec, type ExternalServicePortSpec, type ExternalServiceSpec,
  type InjectedHeaderSpec,
  type LimitsSpec, type ListenersSpec, type NetworkSpec, type ParentSpec, type ProxyConfig, type RetrySpec, type RouteFilterSpec,
  type RouteMatchSpec, type RouteRuleSpec, type RouteSpec, type TcpListenerSpec, type TimeoutsSpec, type TlsOriginationSpec,
  type ValueMatchSpec,
} from '../model/proxy-config';

/** One problem: where (JSON path), what rule, and the offending value. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly value?: unknown;
}

export class ConfigError extends Error {
  public readonly problems: readonly ConfigProblem[];
  constructor(source: string, problems: readonly ConfigProblem[]) {
    super(`${source}: ${problems.length} problem(s) in the egress proxy config:\n${formatProblems(problems)}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `  - ${p.path}: ${p.message}${'value' in p ? ` (got ${show(p.value)})` : ''}`).join('\n');
}

function show(v: unknown): string {
  const s = v === undefined ? 'undefined' : JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

export type ValidationResult =
  | { readonly ok: true; readonly config: ProxyConfig }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

/** Read and validate a config file and the shard files it lists. Throws ConfigError listing every problem. */
export function loadConfigFile(file: string): ProxyConfig {
  return parseConfigSet(readConfigSet(file));
}

/** The bytes of a config as read from disk: the main file and the shard files it names. */
export interface ConfigSet {
  /** The main file's path (the source named in problems). */
  readonly file: string;
  readonly text: string;
  /** Shard file name to its text; undefined when it could not be read (and why). */
  readonly shards: ReadonlyMap<string, { readonly text?: string; readonly error?: string }>;
  /** SHA-256 over every file read: equal hashes mean nothing changed. */
  readonly hash: string;
  /** Bytes read in all. */
  readonly bytes: number;
}

/**
 * Reads the main file and, when it lists `shards`, each shard file from the same directory.
 * Throws ConfigError only when the main file cannot be read; the rest is judged by parseConfigSet.
 */
export function readConfigSet(file: string): ConfigSet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '$', message: `cannot read file: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }]);
  }
  const shards = new Map<string, { text?: string; error?: string }>();
  const hash = createHash('sha256').update(text);
  let bytes = Buffer.byteLength(text);
  for (const name of shardNames(text)) {
    if (shards.has(name) || !SHARD_FILE.test(name)) continue;
    try {
      const t = readFileSync(join(dirname(file), name), 'utf8');
      shards.set(name, { text: t });
      hash.update('\0').update(name).update('\0').update(t);
      bytes += Buffer.byteLength(t);
    } catch (err) {
      shards.set(name, { error: (err as NodeJS.ErrnoException).code ?? 'error' });
    }
  }
  return { file, text, shards, hash: hash.digest('hex'), bytes };
}

/** Shard file names the main file lists, read leniently (parseConfigSet checks them properly). */
function shardNames(text: string): string[] {
  try {
    const raw = JSON.parse(text) as Json;
    if (!raw || !Array.isArray(raw.shards)) return [];
    return raw.shards.flatMap((s: unknown) => (s && typeof (s as Json).file === 'string' ? [(s as Json).file as string] : []));
  } catch {
    return [];
  }
}

/** A shard's name: a plain file in the main file's directory, never a path. */
const SHARD_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.json$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Validates a config set: the main file alone, or with its shards, each checked against the
 * SHA-256 the main file pins, then merged (the shards' external services and routes appended in
 * the order listed) and validated as one document. A problem inside a shard is reported at its
 * place in that shard (`config-2.json: $.externalServices[3].host`). Throws ConfigError.
 */
export function parseConfigSet(set: ConfigSet): ProxyConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(set.text);
  } catch (err) {
    throw new ConfigError(set.file, [{ path: '$', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw) || !('shards' in raw)) {
    const r = validateConfig(raw);
    if (!r.ok) throw new ConfigError(set.file, r.problems);
    return r.config;
  }
  const main = raw as Json;
  const problems: ConfigProblem[] = [];
  if (set.bytes > CONFIG_FILE_LIMITS.maxTotalBytes) {
    problems.push({ path: '$.shards', message: `the files hold ${set.bytes} bytes together, more than the ${CONFIG_FILE_LIMITS.maxTotalBytes} one config may` });
  }
  const refs = main.shards;
  const lists = { externalServices: [] as unknown[], routes: [] as unknown[] };
  /** Where each merged entry came from: [list index] -> [file, index in that file]. */
  const origin = { externalServices: [] as [string, number][], routes: [] as [string, number][] };
  for (const list of ['externalServices', 'routes'] as const) {
    const own = main[list];
    if (own === undefined) continue;
    if (!Array.isArray(own)) {
      problems.push({ path: `$.${list}`, message: 'must be an array', value: own });
      continue;
    }
    own.forEach((x, i) => {
      lists[list].push(x);
      origin[list].push(['', i]);
    });
  }
  if (!Array.isArray(refs) || refs.length === 0 || refs.length > CONFIG_FILE_LIMITS.maxFiles - 1) {
    problems.push({ path: '$.shards', message: `must be an array of 1 to ${CONFIG_FILE_LIMITS.maxFiles - 1} {file, sha256} entries`, value: refs });
  } else {
    const seen = new Set<string>();
    refs.forEach((ref: unknown, i) => {
      const path = `$.shards[${i}]`;
      const r = ref as Json;
      if (!r || typeof r !== 'object' || Array.isArray(r)) {
        problems.push({ path, message: 'must be an object with file and sha256', value: ref });
        return;
      }
      for (const k of Object.keys(r)) if (k !== 'file' && k !== 'sha256') problems.push({ path: `${path}.${k}`, message: 'unknown field; expected one of file, sha256', value: r[k] });
      const name = r.file;
      if (typeof name !== 'string' || !SHARD_FILE.test(name) || name === basename(set.file)) {
        problems.push({ path: `${path}.file`, message: 'must name a .json file in the config\'s directory (letters, digits, ".", "_", "-"), other than the main file', value: name });
        return;
      }
      if (seen.has(name)) {
        problems.push({ path: `${path}.file`, message: 'is listed twice', value: name });
        return;
      }
      seen.add(name);
      if (typeof r.sha256 !== 'string' || !SHA256_HEX.test(r.sha256)) {
        problems.push({ path: `${path}.sha256`, message: 'must be the lower-case hex SHA-256 of the file', value: r.sha256 });
        return;
      }
      const read = set.shards.get(name);
      if (!read || read.text === undefined) {
        problems.push({ path: `${path}.file`, message: `cannot read file: ${read?.error ?? 'not read'}`, value: name });
        return;
      }
      const actual = createHash('sha256').update(read.text).digest('hex');
      if (actual !== r.sha256) {
        problems.push({
          path: `${path}.sha256`,
          message: `does not match ${name} (its SHA-256 is ${actual}): the files come from different versions of the config, e.g. a ConfigMap update still arriving`,
          value: r.sha256,
        });
        return;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(read.text);
      } catch (err) {
        problems.push({ path: `${name}: $`, message: `not valid JSON: ${(err as Error).message}` });
        return;
      }
      const d = doc as Json;
      if (!d || typeof d !== 'object' || Array.isArray(d)) {
        problems.push({ path: `${name}: $`, message: 'must be an object', value: doc });
        return;
      }
      for (const k of Object.keys(d)) {
        if (!['apiVersion', 'kind', 'externalServices', 'routes'].includes(k)) {
          problems.push({ path: `${name}: $.${k}`, message: 'unknown field; expected one of apiVersion, kind, externalServices, routes', value: d[k] });
        }
      }
      if (d.apiVersion !== main.apiVersion) problems.push({ path: `${name}: $.apiVersion`, message: `must be the main file's apiVersion ${JSON.stringify(main.apiVersion)}`, value: d.apiVersion });
      if (d.kind !== PROXY_CONFIG_SHARD_KIND) problems.push({ path: `${name}: $.kind`, message: `must be "${PROXY_CONFIG_SHARD_KIND}"`, value: d.kind });
      for (const list of ['externalServices', 'routes'] as const) {
        const items = d[list];
        if (items === undefined) continue;
        if (!Array.isArray(items)) {
          problems.push({ path: `${name}: $.${list}`, message: 'must be an array', value: items });
          continue;
        }
        items.forEach((x, j) => {
          lists[list].push(x);
          origin[list].push([name, j]);
        });
      }
    });
  }
  if (problems.length) throw new ConfigError(set.file, problems);
  const { shards: _shards, ...settings } = main;
  const r = validateConfig({ ...settings, externalServices: lists.externalServices, routes: lists.routes });
  if (r.ok) return r.config;
  // Name each problem where the user can find it: the shard file and the entry's index there.
  throw new ConfigError(set.file, r.problems.map((p) => {
    const m = /^\$\.(externalServices|routes)\[(\d+)\](.*)$/.exec(p.path);
    if (!m) return p;
    const [file, index] = origin[m[1] as 'externalServices' | 'routes'][Number(m[2])] ?? ['', Number(m[2])];
    const message = p.message.replace(/\$\.(externalServices|routes)\[(\d+)\]/g, (_all, list: string, i: string) => {
      const [f, j] = origin[list as 'externalServices' | 'routes'][Number(i)] ?? ['', Number(i)];
      return f ? `${f}: $.${list}[${j}]` : `$.${list}[${j}]`;
    });
    return { ...p, path: `${file ? `${file}: ` : ''}$.${m[1]}[${index}]${m[3]}`, message };
  }));
}

/** Parse JSON text and validate. Throws ConfigError. */
export function parseConfigText(text: string, source = 'config'): ProxyConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, [{ path: '$', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  const r = validateConfig(raw);
  if (!r.ok) throw new ConfigError(source, r.problems);
  return r.config;
}

/** Validate a parsed document (hand-written or synthesised alike); never throws. */
export function validateConfig(raw: unknown): ValidationResult {
  const c = new Checker();
  const config = c.document(raw);
  if (c.problems.length > 0 || !config) return { ok: false, problems: c.problems };
  return { ok: true, config: deepFreeze(config) };
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

type Json = Record<string, unknown>;
const MISSING = Symbol('missing');
const TLS_VERSIONS = ['TLSAuto', 'TLS10', 'TLS11', 'TLS12', 'TLS13'] as const;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HTTP_METHOD = /^[A-Z]+$/;
const RETRY_CONDITIONS = ['connect-failure', 'reset', 'timeout'] as const;

/** Collects problems while building the typed config; every accessor returns a usable value. */
class Checker {
  public readonly problems: ConfigProblem[] = [];
  /** The callers section in force while clients are checked. */
  private callerSpec: CallersSpec = DEFAULT_CALLERS;

  private problem(path: string, message: string, value?: unknown): void {
    this.problems.push(arguments.length >= 3 ? { path, message, value } : { path, message });
  }

  /** An object with only `allowed` keys; undefined (and a problem) otherwise. */
  private obj(path: string, v: unknown, allowed: readonly string[], required = true): Json | undefined {
    if (v === undefined) {
      if (required) this.problem(path, 'is required');
      return undefined;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.problem(path, 'must be an object', v);
      return undefined;
    }
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.problem(`${path}.${k}`, `unknown field; expected one of ${allowed.join(', ')}`, (v as Json)[k]);
    }
    return v as Json;
  }

  private arr<T>(path: string, v: unknown, item: (p: string, x: unknown, i: number) => T | undefined, dflt: T[] = []): T[] {
    if (v === undefined) return dflt;
    if (!Array.isArray(v)) {
      this.problem(path, 'must be an array', v);
      return dflt;
    }
    const out: T[] = [];
    v.forEach((x, i) => {
      const r = item(`${path}[${i}]`, x, i);
      if (r !== undefined) out.push(r);
    });
    return out;
  }

  private str(path: string, v: unknown, dflt: string | typeof MISSING = MISSING): string {
    if (v === undefined) {
      if (dflt === MISSING) {
        this.problem(path, 'is required');
        return '';
      }
      return dflt;
    }
    if (typeof v !== 'string') {
      this.problem(path, 'must be a string', v);
      return dflt === MISSING ? '' : dflt;
    }
    return v;
  }

  private optStr(path: string, v: unknown): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') {
      this.problem(path, 'must be a non-empty string', v);
      return undefined;
    }
    return v;
  }

  private oneOf<T extends string>(path: string, v: unknown, choices: readonly T[], dflt: T | typeof MISSING = MISSING): T {
    const s = this.str(path, v, dflt);
    if (v !== undefined && typeof v === 'string' && !choices.includes(s as T)) {
      this.problem(path, `must be one of ${choices.map((x) => `"${x}"`).join(', ')}`, v);
      return (dflt === MISSING ? choices[0] : dflt);
    }
    return (s || (dflt === MISSING ? choices[0] : dflt)) as T;
  }

  private int(path: string, v: unknown, min: number, max: number, dflt: number | typeof MISSING = MISSING): number {
    if (v === undefined) {
      if (dflt === MISSING) {
        this.problem(path, 'is required');
        return min;
      }
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problem(path, `must be an integer from ${min} to ${max}`, v);
      return dflt === MISSING ? min : dflt;
    }
    return v;
  }

  private num(path: string, v: unknown, min: number, max: number, dflt: number): number {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      this.problem(path, `must be a number from ${min} to ${max}`, v);
      return dflt;
    }
    return v;
  }

  private bool(path: string, v: unknown, dflt: boolean): boolean {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') {
      this.problem(path, 'must be true or false', v);
      return dflt;
    }
    return v;
  }

  private dnsName(path: string, v: unknown, wildcard: boolean): string {
    const s = this.str(path, v);
    if (typeof v !== 'string') return s;
    const ok = wildcard ? isHostPattern(s) : isHostName(s);
    if (!ok) {
      this.problem(path, `must be a lower-case DNS name${wildcard ? " or a leading wildcard like '*.example.com'" : ''}`, v);
    }
    return s;
  }

  private ipAddress(path: string, v: unknown, dflt: string): string {
    const s = this.str(path, v, dflt);
    if (typeof v === 'string' && isIP(v) === 0) this.problem(path, 'must be an IP address to bind to, like "0.0.0.0" or "::"', v);
    return s;
  }

  private cidr(path: string, v: unknown): string | undefined {
    if (typeof v !== 'string') {
      this.problem(path, 'must be a CIDR string like "10.0.0.0/8"', v);
      return undefined;
    }
    try {
      parseCidr(v);
      return v;
    } catch (err) {
      this.problem(path, (err as Error).message, v);
      return undefined;
    }
  }

  private regex(path: string, v: string): void {
    try {
      compileRegex(v);
    } catch (err) {
      // Same compiler as the matcher, so a config that validates is a config that runs.
      this.problem(path, (err as Error).message, v);
    }
  }

  public document(raw: unknown): ProxyConfig | undefined {
    const o = this.obj('$', raw, [
      'apiVersion', 'kind', 'gateway', 'listeners', 'parent', 'externalServices', 'routes', 'addressPolicy', 'timeouts', 'limits', 'workers', 'defaultTls',
      'callers', 'shards',
    ]);
    if (!o) return undefined;
    if (o.shards !== undefined) {
      this.problem('$.shards', 'lists shard files, which only the file loader reads and merges; load the file (loadConfigFile(), --check-config or --config)', o.shards);
    }
    if (o.apiVersion !== PROXY_CONFIG_API_VERSION) this.problem('$.apiVersion', `must be "${PROXY_CONFIG_API_VERSION}"`, o.apiVersion);
    if (o.kind !== PROXY_CONFIG_KIND) this.problem('$.kind', `must be "${PROXY_CONFIG_KIND}"`, o.kind);
    const g = this.obj('$.gateway', o.gateway, ['name', 'namespace']);
    const gateway = { name: this.str('$.gateway.name', g?.name, g ? MISSING : ''), namespace: this.str('$.gateway.namespace', g?.namespace, g ? MISSING : '') };
    // First: clients are checked against the identity source and trust domain.
    const callers = o.callers === undefined ? undefined : this.callers('$.callers', o.callers);
    this.callerSpec = callers ?? DEFAULT_CALLERS;
    const externalServices = this.arr('$.externalServices', o.externalServices, (p, x) => this.externalService(p, x));
    const seen = new Map<string, number>();
    externalServices.forEach((s, i) => {
      const prev = seen.get(s.name);
      if (prev !== undefined) this.problem(`$.externalServices[${i}].name`, `duplicates $.externalServices[${prev}].name; names must be unique`, s.name);
      else seen.set(s.name, i);
    });
    const hosts = new Map<string, number>();
    externalServices.forEach((s, i) => {
      const prev = hosts.get(s.host);
      if (prev !== undefined) this.problem(`$.externalServices[${i}].host`, `duplicates $.externalServices[${prev}].host; one service per host`, s.host);
      else hosts.set(s.host, i);
    });
    const config: ProxyConfig = {
      apiVersion: PROXY_CONFIG_API_VERSION,
      kind: PROXY_CONFIG_KIND,
      gateway,
      listeners: this.listeners('$.listeners', o.listeners, externalServices),
      parent: this.parent('$.parent', o.parent),
      externalServices,
      routes: this.arr('$.routes', o.routes, (p, x, i) => this.route(p, x, i)),
      addressPolicy: this.addressPolicy('$.addressPolicy', o.addressPolicy),
      timeouts: this.timeouts('$.timeouts', o.timeouts, DEFAULT_TIMEOUTS) as TimeoutsSpec,
      limits: this.limits('$.limits', o.limits),
      workers: this.int('$.workers', o.workers, WORKER_BOUNDS.min, WORKER_BOUNDS.max, DEFAULT_WORKERS),
      defaultTls: this.tls('$.defaultTls', o.defaultTls),
      ...(callers ? { callers } : {}),
    };
    return config;
  }

  private listeners(path: string, v: unknown, services: readonly ExternalServiceSpec[]): ListenersSpec {
    const o = this.obj(path, v, ['bindAddress', 'http', 'tls', 'tcp', 'admin'], false) ?? {};
    const h = this.obj(`${path}.http`, o.http, ['port', 'suffixes', 'forwardProxy', 'parentPort', 'ambiguousPaths', 'connectSni'], false) ?? {};
    const suffixes = this.arr(`${path}.http.suffixes`, h.suffixes, (p, x) => {
      const s = this.dnsName(p, x, false);
      return s || undefined;
    }, [DEFAULT_EGRESS_SUFFIX]);
    if (Array.isArray(h.suffixes) && h.suffixes.length === 0) this.problem(`${path}.http.suffixes`, 'must list at least one suffix', h.suffixes);
    const http = {
      port: this.int(`${path}.http.port`, h.port, 0, 65535, DEFAULT_HTTP_PORT),
      suffixes,
      forwardProxy: this.bool(`${path}.http.forwardProxy`, h.forwardProxy, false),
      parentPort: this.int(`${path}.http.parentPort`, h.parentPort, 1, 65535, DEFAULT_HTTP_PARENT_PORT),
      ambiguousPaths: this.oneOf(`${path}.http.ambiguousPaths`, h.ambiguousPaths, AMBIGUOUS_PATHS_VALUES, DEFAULT_AMBIGUOUS_PATHS),
      connectSni: this.oneOf(`${path}.http.connectSni`, h.connectSni, CONNECT_SNI_VALUES, DEFAULT_CONNECT_SNI),
    };
    let tls: ListenersSpec['tls'];
    if (o.tls !== undefined) {
      const t = this.obj(`${path}.tls`, o.tls, ['port', 'parentPort']) ?? {};
      tls = { port: this.int(`${path}.tls.port`, t.port, 0, 65535, DEFAULT_TLS_PORT), parentPort: this.int(`${path}.tls.parentPort`, t.parentPort, 1, 65535, 443) };
    }
    const tcp = this.arr(`${path}.tcp`, o.tcp, (p, x): TcpListenerSpec | undefined => {
      const t = this.obj(p, x, ['port', 'externalService', 'servicePort']);
      if (!t) return undefined;
      const spec = {
        port: this.int(`${p}.port`, t.port, 0, 65535),
        externalService: this.str(`${p}.externalService`, t.externalService),
        servicePort: this.int(`${p}.servicePort`, t.servicePort, 1, 65535),
      };
      const svc = services.find((s) => s.name === spec.externalService);
      if (typeof t.externalService === 'string' && !svc) {
        this.problem(`${p}.externalService`, `names no entry of $.externalServices (known: ${services.map((s) => s.name).join(', ') || 'none'})`, t.externalService);
      } else if (svc && !svc.ports.some((sp) => sp.port === spec.servicePort)) {
        this.problem(`${p}.servicePort`, `is not a port of external service "${svc.name}" (ports: ${svc.ports.map((sp) => sp.port).join(', ')})`, t.servicePort);
      } else if (svc && svc.host.startsWith('*.') && svc.endpoints.length === 0) {
        this.problem(`${p}.externalService`, `service "${svc.name}" has a wildcard host and no endpoints, so a TCP listener has nowhere to connect`, t.externalService);
      }
      return spec;
    });
    const a = this.obj(`${path}.admin`, o.admin, ['port'], false) ?? {};
    const listeners: ListenersSpec = {
      bindAddress: this.ipAddress(`${path}.bindAddress`, o.bindAddress, '0.0.0.0'),
      http,
      tls,
      tcp,
      admin: { port: this.int(`${path}.admin.port`, a.port, 0, 65535, DEFAULT_ADMIN_PORT) },
    };
    const used = new Map<number, string>();
    const claim = (port: number, where: string) => {
      if (port === 0) return; // ephemeral: never collides
      const prev = used.get(port);
      if (prev) this.problem(where, `port ${port} is already used by ${prev}`, port);
      else used.set(port, where);
    };
    claim(http.port, `${path}.http.port`);
    if (tls) claim(tls.port, `${path}.tls.port`);
    tcp.forEach((t, i) => claim(t.port, `${path}.tcp[${i}].port`));
    claim(listeners.admin.port, `${path}.admin.port`);
    return listeners;
  }

  private parent(path: string, v: unknown): ParentSpec {
    const o = this.obj(path, v, ['group', 'kind', 'name', 'namespace', 'trafficPolicy', 'networks', 'mode', 'allowDeclaredServices']) ?? {};
    const present = v !== undefined;
    const networks = this.arr(`${path}.networks`, o.networks, (p, x): NetworkSpec | undefined => {
      const n = this.obj(p, x, ['cidr', 'except']);
      if (!n) return undefined;
      const cidr = this.cidr(`${p}.cidr`, n.cidr) ?? '';
      const except = this.arr(`${p}.except`, n.except, (pp, e) => this.cidr(pp, e));
      return { cidr, except };
    });
    return {
      group: this.oneOf(`${path}.group`, o.group, ['policy.linkerd.io'] as const, 'policy.linkerd.io'),
      kind: this.oneOf(`${path}.kind`, o.kind, ['EgressNetwork'] as const, 'EgressNetwork'),
      name: present ? this.str(`${path}.name`, o.name) : '',
      namespace: present ? this.str(`${path}.namespace`, o.namespace) : '',
      trafficPolicy: present ? this.oneOf(`${path}.trafficPolicy`, o.trafficPolicy, ['Allow', 'Deny'] as const) : 'Deny',
      networks,
      mode: this.oneOf(`${path}.mode`, o.mode, ['Enforce', 'ReportOnly'] as const, 'Enforce'),
      ...(o.allowDeclaredServices !== undefined
        ? { allowDeclaredServices: this.bool(`${path}.allowDeclaredServices`, o.allowDeclaredServices, false) } : {}),
    };
  }

  private addressPolicy(path: string, v: unknown) {
    const o = this.obj(path, v, ['allowCidrs', 'denyCidrs'], false) ?? {};
    return {
      allowCidrs: this.arr(`${path}.allowCidrs`, o.allowCidrs, (p, x) => this.cidr(p, x), [...DEFAULT_ADDRESS_POLICY.allowCidrs]),
      denyCidrs: this.arr(`${path}.denyCidrs`, o.denyCidrs, (p, x) => this.cidr(p, x), [...DEFAULT_ADDRESS_POLICY.denyCidrs]),
    };
  }

  /**
   * Full timeouts (with defaults) or, with `base` undefined, only the fields given (an
   * ExternalService's overrides, which cannot name the gateway-only phases).
   */
  private timeouts(path: string, v: unknown, base: TimeoutsSpec | undefined): Partial<TimeoutsSpec> {
    const all = Object.keys(DEFAULT_TIMEOUTS) as (keyof TimeoutsSpec)[];
    const keys = base ? all : all.filter((k) => !GATEWAY_ONLY_TIMEOUTS.includes(k));
    const o = this.obj(path, v, keys, false) ?? {};
    const out: Partial<Record<keyof TimeoutsSpec, number>> = {};
    for (const k of keys) {
      const { min, max } = TIMEOUT_BOUNDS[k];
      if (o[k] !== undefined || base) out[k] = this.int(`${path}.${k}`, o[k], min, max, base ? base[k] : DEFAULT_TIMEOUTS[k]);
    }
    return out;
  }

  private limits(path: string, v: unknown): LimitsSpec {
    const keys = Object.keys(LIMIT_BOUNDS) as (keyof LimitsSpec)[];
    const o = this.obj(path, v, keys, false) ?? {};
    const out = {} as Record<keyof LimitsSpec, number>;
    for (const k of keys) out[k] = this.int(`${path}.${k}`, o[k], LIMIT_BOUNDS[k].min, LIMIT_BOUNDS[k].max, DEFAULT_LIMITS[k]);
    return out;
  }

  private tls(path: string, v: unknown): TlsOriginationSpec {
    const o = this.obj(path, v, [
      'enabled', 'minVersion', 'maxVersion', 'mode', 'caFile', 'caPem', 'clientCertFile', 'clientKeyFile', 'serverName', 'subjectAltNames', 'allowRenegotiation',
    ], false) ?? {};
    const minVersion = this.oneOf(`${path}.minVersion`, o.minVersion, TLS_VERSIONS, DEFAULT_TLS.minVersion);
    const maxVersion = this.oneOf(`${path}.maxVersion`, o.maxVersion, TLS_VERSIONS, DEFAULT_TLS.maxVersion);
    const rank = (x: string, isMin: boolean) => (x === 'TLSAuto' ? (isMin ? 2 : 3) : TLS_VERSIONS.indexOf(x as typeof TLS_VERSIONS[number]) - 1);
    if (rank(minVersion, true) > rank(maxVersion, false)) {
      this.problem(`${path}.minVersion`, `is above maxVersion "${maxVersion}"`, minVersion);
    }
    const spec: { -readonly [K in keyof TlsOriginationSpec]: TlsOriginationSpec[K] } = {
      enabled: this.bool(`${path}.enabled`, o.enabled, DEFAULT_TLS.enabled),
      minVersion,
      maxVersion,
      mode: this.oneOf(`${path}.mode`, o.mode, ['Secured', 'SkipSAN', 'SkipCA', 'SkipAll'] as const, DEFAULT_TLS.mode),
      subjectAltNames: this.arr(`${path}.subjectAltNames`, o.subjectAltNames, (p, x) => {
        const s = this.obj(p, x, ['type', 'value']);
        if (!s) return undefined;
        return { type: this.oneOf(`${p}.type`, s.type, ['Exact', 'Prefix'] as const, 'Exact'), value: this.str(`${p}.value`, s.value) };
      }),
      allowRenegotiation: this.bool(`${path}.allowRenegotiation`, o.allowRenegotiation, DEFAULT_TLS.allowRenegotiation),
    };
    const caFile = this.optStr(`${path}.caFile`, o.caFile);
    if (caFile) spec.caFile = caFile;
    const caPem = this.optStr(`${path}.caPem`, o.caPem);
    if (caPem) {
      if (!caPem.includes('-----BEGIN CERTIFICATE-----')) this.problem(`${path}.caPem`, 'must hold PEM certificates (-----BEGIN CERTIFICATE-----)', `${caPem.slice(0, 40)}`);
      spec.caPem = caPem;
    }
    const cert = this.optStr(`${path}.clientCertFile`, o.clientCertFile);
    const key = this.optStr(`${path}.clientKeyFile`, o.clientKeyFile);
    if ((cert === undefined) !== (key === undefined)) {
      this.problem(cert ? `${path}.clientKeyFile` : `${path}.clientCertFile`, 'client certificate and key must be given together', cert ?? key);
    }
    if (cert) spec.clientCertFile = cert;
    if (key) spec.clientKeyFile = key;
    if (o.serverName !== undefined) spec.serverName = this.dnsName(`${path}.serverName`, o.serverName, false);
    return spec;
  }

  private externalService(path: string, v: unknown): ExternalServiceSpec | undefined {
    const o = this.obj(path, v, ['name', 'host', 'ports', 'endpoints', 'tls', 'timeouts', 'retry', 'pool', 'injectHeaders', 'clients']);
    if (!o) return undefined;
    const tls = this.tls(`${path}.tls`, o.tls);
    const ports = this.arr(`${path}.ports`, o.ports, (p, x): ExternalServicePortSpec | undefined => {
      const po = this.obj(p, x, ['port', 'protocol', 'targetPort']);
      if (!po) return undefined;
      const port = this.int(`${p}.port`, po.port, 1, 65535);
      return {
        port,
        protocol: this.oneOf(`${p}.protocol`, po.protocol, ['http', 'http2', 'grpc', 'tcp'] as const, 'http'),
        targetPort: this.int(`${p}.targetPort`, po.targetPort, 1, 65535, tls.enabled ? DEFAULT_TLS_TARGET_PORT : port),
      };
    }, [{ port: DEFAULT_HTTP_PARENT_PORT, protocol: 'http' as const, targetPort: tls.enabled ? DEFAULT_TLS_TARGET_PORT : DEFAULT_HTTP_PARENT_PORT }]);
    const portSeen = new Set<number>();
    ports.forEach((p, i) => {
      if (portSeen.has(p.port)) this.problem(`${path}.ports[${i}].port`, 'is listed twice', p.port);
      portSeen.add(p.port);
    });
    const endpoints = this.arr(`${path}.endpoints`, o.endpoints, (p, x): EndpointSpec | undefined => {
      const e = this.obj(p, x, ['address', 'port', 'priority']);
      if (!e) return undefined;
      const address = this.str(`${p}.address`, e.address);
      if (typeof e.address === 'string' && !isHostName(address) && !isIpText(address)) {
        this.problem(`${p}.address`, 'must be a DNS name or an IP address', e.address);
      }
      const ep: { -readonly [K in keyof EndpointSpec]: EndpointSpec[K] } = { address, priority: this.int(`${p}.priority`, e.priority, ENDPOINT_PRIORITY_BOUNDS.min, ENDPOINT_PRIORITY_BOUNDS.max, 0) };
      if (e.port !== undefined) ep.port = this.int(`${p}.port`, e.port, 1, 65535);
      return ep;
    });
    const injectHeaders = this.arr(`${path}.injectHeaders`, o.injectHeaders, (p, x): InjectedHeaderSpec | undefined => {
      const h = this.obj(p, x, ['name', 'valueFile']);
      if (!h) return undefined;
      const name = this.str(`${p}.name`, h.name);
      if (typeof h.name === 'string' && !HEADER_NAME.test(name)) this.problem(`${p}.name`, 'is not a valid HTTP header name', h.name);
      if (typeof h.name === 'string' && HOP_BY_HOP_OR_HOST.has(name.toLowerCase())) {
        this.problem(`${p}.name`, 'names a hop-by-hop or Host header, which the proxy controls', h.name);
      }
      return { name: name.toLowerCase(), valueFile: this.str(`${p}.valueFile`, h.valueFile) };
    });
    const pool = this.obj(`${path}.pool`, o.pool, ['maxConnections', 'keepAliveTimeoutMs'], false) ?? {};
    const spec: { -readonly [K in keyof ExternalServiceSpec]: ExternalServiceSpec[K] } = {
      name: this.str(`${path}.name`, o.name),
      host: this.dnsName(`${path}.host`, o.host, true),
      ports,
      endpoints,
      tls,
      pool: {
        maxConnections: this.int(`${path}.pool.maxConnections`, pool.maxConnections, POOL_BOUNDS.maxConnections.min, POOL_BOUNDS.maxConnections.max, DEFAULT_POOL.maxConnections),
        keepAliveTimeoutMs: this.int(`${path}.pool.keepAliveTimeoutMs`, pool.keepAliveTimeoutMs, POOL_BOUNDS.keepAliveTimeoutMs.min, POOL_BOUNDS.keepAliveTimeoutMs.max, DEFAULT_POOL.keepAliveTimeoutMs),
      },
      injectHeaders,
    };
    if (o.timeouts !== undefined) spec.timeouts = this.timeouts(`${path}.timeouts`, o.timeouts, undefined);
    if (o.retry !== undefined) spec.retry = this.retry(`${path}.retry`, o.retry);
    if (o.clients !== undefined) spec.clients = this.clients(`${path}.clients`, o.clients);
    return spec;
  }

  private callers(path: string, v: unknown): CallersSpec {
    const o = this.obj(path, v, ['source', 'trustDomain', 'unknown', 'metricsLabel', 'trustedPeers']) ?? {};
    const d = DEFAULT_CALLERS;
    const trustDomain = this.str(`${path}.trustDomain`, o.trustDomain, d.trustDomain);
    if (typeof o.trustDomain === 'string' && !isHostName(trustDomain)) {
      this.problem(`${path}.trustDomain`, 'must be a lower-case DNS name like "cluster.local" (the mesh\'s trust domain)', o.trustDomain);
    }
    const spec: { -readonly [K in keyof CallersSpec]: CallersSpec[K] } = {
      source: this.oneOf(`${path}.source`, o.source, CALLER_SOURCE_VALUES, d.source),
      trustDomain,
      unknown: this.oneOf(`${path}.unknown`, o.unknown, UNKNOWN_CALLER_VALUES, d.unknown),
      metricsLabel: this.bool(`${path}.metricsLabel`, o.metricsLabel, d.metricsLabel),
    };
    if (o.trustedPeers !== undefined) {
      if (Array.isArray(o.trustedPeers) && o.trustedPeers.length === 0) {
        this.problem(`${path}.trustedPeers`, 'must list at least one peer; leave it out for loopback and the pod IP', o.trustedPeers);
      }
      spec.trustedPeers = this.arr(`${path}.trustedPeers`, o.trustedPeers, (p, x) => {
        if (x === TRUSTED_PEER_POD_IP) return x;
        const cidr = this.cidr(p, x);
        if (cidr === undefined) return undefined;
        if (!isLoopbackCidr(cidr)) {
          this.problem(p, `must be "${TRUSTED_PEER_POD_IP}" or a CIDR inside loopback (127.0.0.0/8, ::1/128): a peer anywhere else may be another pod`, x);
          return undefined;
        }
        return cidr;
      });
    }
    return spec;
  }

  /** A non-empty list of clients, each naming exactly one of serviceAccount, namespace, identity. */
  private clients(path: string, v: unknown): ClientSpec[] {
    if (Array.isArray(v) && v.length === 0) {
      this.problem(path, 'must list at least one client; leave clients out to open it to every caller', v);
    }
    const seen = new Map<string, number>();
    return this.arr(path, v, (p, x, i): ClientSpec | undefined => {
      const o = this.obj(p, x, ['serviceAccount', 'namespace', 'identity']);
      if (!o) return undefined;
      const set = (['serviceAccount', 'namespace', 'identity'] as const).filter((k) => o[k] !== undefined);
      if (set.length !== 1) {
        this.problem(p, `must set exactly one of serviceAccount, namespace, identity${set.length ? ` (sets ${set.join(', ')})` : ''}`, x);
        return undefined;
      }
      let client: ClientSpec | undefined;
      if (o.serviceAccount !== undefined) {
        const sa = this.obj(`${p}.serviceAccount`, o.serviceAccount, ['namespace', 'name']);
        if (!sa) return undefined;
        const namespace = this.str(`${p}.serviceAccount.namespace`, sa.namespace);
        const name = this.str(`${p}.serviceAccount.name`, sa.name);
        if (typeof sa.namespace === 'string' && !isDnsLabel(namespace)) this.problem(`${p}.serviceAccount.namespace`, NAMESPACE_RULE, sa.namespace);
        if (typeof sa.name === 'string' && !isDnsSubdomain(name)) {
          this.problem(`${p}.serviceAccount.name`, SERVICE_ACCOUNT_RULE, sa.name);
        }
        client = { serviceAccount: { namespace, name } };
      } else if (o.namespace !== undefined) {
        const namespace = this.str(`${p}.namespace`, o.namespace);
        if (typeof o.namespace === 'string' && !isDnsLabel(namespace)) this.problem(`${p}.namespace`, NAMESPACE_RULE, o.namespace);
        client = { namespace };
      } else {
        const identity = this.str(`${p}.identity`, o.identity);
        if (typeof o.identity === 'string') this.identity(`${p}.identity`, identity);
        client = { identity };
      }
      const key = clientKey(client);
      const prev = seen.get(key);
      if (prev !== undefined) this.problem(p, `duplicates ${path}[${prev}]`, x);
      else seen.set(key, i);
      return client;
    });
  }

  /** An identity must be one the configured source can produce, or no caller could ever match it. */
  private identity(path: string, identity: string): void {
    const { source, trustDomain } = this.callerSpec;
    if (source === 'Linkerd' && typeof parseLinkerdIdentity(identity, trustDomain) === 'string') {
      this.problem(path, `must be a Linkerd identity of trust domain "${trustDomain}": <serviceaccount>.<namespace>.serviceaccount.identity.linkerd.${trustDomain}`, identity);
    } else if (source === 'Istio' && typeof parseSpiffeId(identity, trustDomain) === 'string') {
      this.problem(path, `must be a SPIFFE ID of trust domain "${trustDomain}": spiffe://${trustDomain}/ns/<namespace>/sa/<serviceaccount>`, identity);
    } else if (source === 'None' && identity === '') {
      this.problem(path, 'must be a non-empty mesh identity', identity);
    }
  }

  private retry(path: string, v: unknown): RetrySpec {
    const o = this.obj(path, v, [...Object.keys(DEFAULT_RETRY), 'grpcStatusCodes']) ?? {};
    const d = DEFAULT_RETRY;
    const b = RETRY_BOUNDS;
    const r: RetrySpec = {
      maxRetries: this.int(`${path}.maxRetries`, o.maxRetries, b.maxRetries.min, b.maxRetries.max, d.maxRetries),
      statusCodes: this.arr(`${path}.statusCodes`, o.statusCodes, (p, x) => this.int(p, x, HTTP_STATUS_BOUNDS.min, HTTP_STATUS_BOUNDS.max), [...d.statusCodes]),
      conditions: this.arr(`${path}.conditions`, o.conditions, (p, x) => this.oneOf(p, x, RETRY_CONDITIONS), [...d.conditions]),
      retryNonIdempotent: this.bool(`${path}.retryNonIdempotent`, o.retryNonIdempotent, d.retryNonIdempotent),
      perTryTimeoutMs: this.int(`${path}.perTryTimeoutMs`, o.perTryTimeoutMs, b.perTryTimeoutMs.min, b.perTryTimeoutMs.max, d.perTryTimeoutMs),
      backoffBaseMs: this.int(`${path}.backoffBaseMs`, o.backoffBaseMs, b.backoffBaseMs.min, b.backoffBaseMs.max, d.backoffBaseMs),
      backoffMaxMs: this.int(`${path}.backoffMaxMs`, o.backoffMaxMs, b.backoffMaxMs.min, b.backoffMaxMs.max, d.backoffMaxMs),
      budgetRatio: this.num(`${path}.budgetRatio`, o.budgetRatio, b.budgetRatio.min, b.budgetRatio.max, d.budgetRatio),
      budgetMinPerSecond: this.num(`${path}.budgetMinPerSecond`, o.budgetMinPerSecond, b.budgetMinPerSecond.min, b.budgetMinPerSecond.max, d.budgetMinPerSecond),
      budgetTtlMs: this.int(`${path}.budgetTtlMs`, o.budgetTtlMs, b.budgetTtlMs.min, b.budgetTtlMs.max, d.budgetTtlMs),
    };
    if (r.backoffBaseMs > r.backoffMaxMs) this.problem(`${path}.backoffBaseMs`, `is above backoffMaxMs (${r.backoffMaxMs})`, r.backoffBaseMs);
    // gRPC status codes are 0 (OK) to 16 (UNAUTHENTICATED); optional, so configs without it keep their shape.
    if (o.grpcStatusCodes !== undefined) {
      return { ...r, grpcStatusCodes: this.arr(`${path}.grpcStatusCodes`, o.grpcStatusCodes, (p, x) => this.int(p, x, GRPC_STATUS_BOUNDS.min, GRPC_STATUS_BOUNDS.max)) };
    }
    return r;
  }

  private route(path: string, v: unknown, index: number): RouteSpec | undefined {
    const o = this.obj(path, v, ['group', 'kind', 'name', 'namespace', 'order', 'parentPort', 'parentSectionName', 'hostnames', 'rules', 'clients']);
    if (!o) return undefined;
    const kind = this.oneOf(`${path}.kind`, o.kind, ['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute'] as const);
    const namespace = this.str(`${path}.namespace`, o.namespace);
    const r: { -readonly [K in keyof RouteSpec]: RouteSpec[K] } = {
      group: this.oneOf(`${path}.group`, o.group, ['gateway.networking.k8s.io'] as const, 'gateway.networking.k8s.io'),
      kind,
      name: this.str(`${path}.name`, o.name),
      namespace,
      order: this.int(`${path}.order`, o.order, 0, Number.MAX_SAFE_INTEGER, index),
      hostnames: this.arr(`${path}.hostnames`, o.hostnames, (p, x) => this.dnsName(p, x, true)),
      rules: this.arr(`${path}.rules`, o.rules, (p, x) => this.rule(p, x, kind, namespace)),
    };
    if (o.parentPort !== undefined) r.parentPort = this.int(`${path}.parentPort`, o.parentPort, 1, 65535);
    if (o.parentSectionName !== undefined) r.parentSectionName = this.optStr(`${path}.parentSectionName`, o.parentSectionName);
    if (kind === 'TCPRoute' && r.hostnames.length > 0) this.problem(`${path}.hostnames`, 'TCPRoute has no hostnames', o.hostnames);
    if (o.clients !== undefined) r.clients = this.clients(`${path}.clients`, o.clients);
    return r;
  }

  private rule(path: string, v: unknown, kind: RouteSpec['kind'], namespace: string): RouteRuleSpec | undefined {
    const o = this.obj(path, v, ['name', 'matches', 'filters', 'backendRefs', 'requestTimeoutMs', 'backendRequestTimeoutMs', 'retry']);
    if (!o) return undefined;
    const l4 = kind === 'TLSRoute' || kind === 'TCPRoute';
    if (l4 && Array.isArray(o.matches) && o.matches.length > 0) this.problem(`${path}.matches`, `${kind} rules have no matches`, o.matches);
    if (l4 && Array.isArray(o.filters) && o.filters.length > 0) this.problem(`${path}.filters`, `${kind} rules have no filters`, o.filters);
    const r: { -readonly [K in keyof RouteRuleSpec]: RouteRuleSpec[K] } = {
      matches: this.arr(`${path}.matches`, o.matches, (p, x) => this.match(p, x, kind)),
      filters: this.arr(`${path}.filters`, o.filters, (p, x) => this.filter(p, x)),
      backendRefs: this.arr(`${path}.backendRefs`, o.backendRefs, (p, x) => this.backendRef(p, x, namespace)),
    };
    if (o.name !== undefined) r.name = this.optStr(`${path}.name`, o.name);
    if (o.requestTimeoutMs !== undefined) r.requestTimeoutMs = this.int(`${path}.requestTimeoutMs`, o.requestTimeoutMs, 0, 86_400_000);
    if (o.backendRequestTimeoutMs !== undefined) r.backendRequestTimeoutMs = this.int(`${path}.backendRequestTimeoutMs`, o.backendRequestTimeoutMs, 0, 86_400_000);
    if (o.retry !== undefined) r.retry = this.retry(`${path}.retry`, o.retry);
    return r;
  }

  private valueMatches(path: string, v: unknown): ValueMatchSpec[] {
    return this.arr(path, v, (p, x) => {
      const m = this.obj(p, x, ['type', 'name', 'value']);
      if (!m) return undefined;
      const type = this.oneOf(`${p}.type`, m.type, ['Exact', 'RegularExpression'] as const, 'Exact');
      const value = this.str(`${p}.value`, m.value);
      if (type === 'RegularExpression') this.regex(`${p}.value`, value);
      return { type, name: this.str(`${p}.name`, m.name), value };
    });
  }

  private match(path: string, v: unknown, kind: RouteSpec['kind']): RouteMatchSpec | undefined {
    const o = this.obj(path, v, ['path', 'method', 'grpcMethod', 'headers', 'queryParams']);
    if (!o) return undefined;
    const m: { -readonly [K in keyof RouteMatchSpec]: RouteMatchSpec[K] } = {
      headers: this.valueMatches(`${path}.headers`, o.headers),
      queryParams: this.valueMatches(`${path}.queryParams`, o.queryParams),
    };
    if (kind !== 'HTTPRoute') {
      // The model always carries queryParams (an empty list for gRPC matches); only entries are wrong.
      for (const k of ['path', 'method', 'queryParams'] as const) {
        if (o[k] !== undefined && !(k === 'queryParams' && Array.isArray(o[k]) && o[k].length === 0)) this.problem(`${path}.${k}`, `only HTTPRoute matches have ${k}`, o[k]);
      }
    }
    if (kind !== 'GRPCRoute' && o.grpcMethod !== undefined) this.problem(`${path}.grpcMethod`, 'only GRPCRoute matches have grpcMethod', o.grpcMethod);
    if (o.path !== undefined) {
      const p = this.obj(`${path}.path`, o.path, ['type', 'value']) ?? {};
      const type = this.oneOf(`${path}.path.type`, p.type, ['Exact', 'PathPrefix', 'RegularExpression'] as const, 'PathPrefix');
      const value = this.str(`${path}.path.value`, p.value, '/');
      if (type === 'RegularExpression') this.regex(`${path}.path.value`, value);
      else if (!value.startsWith('/')) this.problem(`${path}.path.value`, "must start with '/'", value);
      m.path = { type, value };
    }
    if (o.method !== undefined) {
      const method = this.str(`${path}.method`, o.method);
      if (!HTTP_METHOD.test(method)) this.problem(`${path}.method`, 'must be an upper-case HTTP method like "GET"', o.method);
      m.method = method;
    }
    if (o.grpcMethod !== undefined) {
      const g = this.obj(`${path}.grpcMethod`, o.grpcMethod, ['type', 'service', 'method']) ?? {};
      const type = this.oneOf(`${path}.grpcMethod.type`, g.type, ['Exact', 'RegularExpression'] as const, 'Exact');
      const gm: { type: 'Exact' | 'RegularExpression'; service?: string; method?: string } = { type };
      if (g.service !== undefined) gm.service = this.optStr(`${path}.grpcMethod.service`, g.service);
      if (g.method !== undefined) gm.method = this.optStr(`${path}.grpcMethod.method`, g.method);
      if (type === 'RegularExpression') {
        if (gm.service) this.regex(`${path}.grpcMethod.service`, gm.service);
        if (gm.method) this.regex(`${path}.grpcMethod.method`, gm.method);
      }
      if (!gm.service && !gm.method) this.problem(`${path}.grpcMethod`, 'needs service, method or both', o.grpcMethod);
      m.grpcMethod = gm;
    }
    return m;
  }

  private filter(path: string, v: unknown): RouteFilterSpec | undefined {
    const o = this.obj(path, v, ['type', 'headerModifier', 'requestRedirect']);
    if (!o) return undefined;
    const type = this.oneOf(`${path}.type`, o.type, ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect'] as const);
    if (type === 'RequestRedirect') {
      const r = this.obj(`${path}.requestRedirect`, o.requestRedirect, ['scheme', 'hostname', 'port', 'path', 'statusCode']) ?? {};
      const redirect: { -readonly [K in keyof NonNullable<RouteFilterSpec['requestRedirect']>]: NonNullable<RouteFilterSpec['requestRedirect']>[K] } = {
        statusCode: this.int(`${path}.requestRedirect.statusCode`, r.statusCode, 301, 302, 302) as 301 | 302,
      };
      if (r.scheme !== undefined) redirect.scheme = this.oneOf(`${path}.requestRedirect.scheme`, r.scheme, ['http', 'https'] as const);
      if (r.hostname !== undefined) redirect.hostname = this.dnsName(`${path}.requestRedirect.hostname`, r.hostname, false);
      if (r.port !== undefined) redirect.port = this.int(`${path}.requestRedirect.port`, r.port, 1, 65535);
      if (r.path !== undefined) {
        const p = this.obj(`${path}.requestRedirect.path`, r.path, ['type', 'value']) ?? {};
        redirect.path = {
          type: this.oneOf(`${path}.requestRedirect.path.type`, p.type, ['ReplaceFullPath', 'ReplacePrefixMatch'] as const),
          value: this.str(`${path}.requestRedirect.path.value`, p.value),
        };
      }
      return { type, requestRedirect: redirect };
    }
    const h = this.obj(`${path}.headerModifier`, o.headerModifier, ['set', 'add', 'remove']) ?? {};
    const pairs = (p: string, x: unknown) => this.arr(p, x, (pp, e) => {
      const kv = this.obj(pp, e, ['name', 'value']);
      if (!kv) return undefined;
      const name = this.str(`${pp}.name`, kv.name);
      if (typeof kv.name === 'string' && !HEADER_NAME.test(name)) this.problem(`${pp}.name`, 'is not a valid HTTP header name', kv.name);
      return { name, value: this.str(`${pp}.value`, kv.value) };
    });
    return {
      type,
      headerModifier: {
        set: pairs(`${path}.headerModifier.set`, h.set),
        add: pairs(`${path}.headerModifier.add`, h.add),
        remove: this.arr(`${path}.headerModifier.remove`, h.remove, (p, x) => this.str(p, x)),
      },
    };
  }

  private backendRef(path: string, v: unknown, namespace: string): BackendRefSpec | undefined {
    const o = this.obj(path, v, ['kind', 'name', 'namespace', 'port', 'weight', 'host']);
    if (!o) return undefined;
    const kind = this.oneOf(`${path}.kind`, o.kind, ['EgressNetwork', 'Service'] as const, 'Service');
    const name = this.str(`${path}.name`, o.name);
    const ns = this.str(`${path}.namespace`, o.namespace, namespace);
    const b: { -readonly [K in keyof BackendRefSpec]: BackendRefSpec[K] } = {
      kind, name, namespace: ns, weight: this.int(`${path}.weight`, o.weight, 0, 1_000_000, 1),
    };
    if (o.port !== undefined) b.port = this.int(`${path}.port`, o.port, 1, 65535);
    if (kind === 'Service') {
      b.host = o.host !== undefined ? this.dnsName(`${path}.host`, o.host, false) : `${name}.${ns}.svc.cluster.local`;
      if (o.port === undefined) this.problem(`${path}.port`, 'is required for a Service backend (Gateway API)');
    } else if (o.host !== undefined) {
      this.problem(`${path}.host`, 'only Service backends have a host', o.host);
    }
    return b;
  }
}

const SERVICE_ACCOUNT_RULE = dnsSubdomainRule('a ServiceAccount name');
const NAMESPACE_RULE = dnsLabelRule('a namespace');

const HOP_BY_HOP_OR_HOST = new Set(['host', 'connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length']);

function isIpText(s: string): boolean {
  return isIP(s) !== 0;
}
