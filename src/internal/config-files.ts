// Splits a gateway's proxy config into files that each fit one ConfigMap: the main file, and
// past the size of one, shard files carrying the external services and routes.
import { createHash } from 'crypto';
import { stableJson, stableJsonValue } from './json';
import { Problem } from './problems';
import { CONFIG_FILE_LIMITS, ConfigFileLimits } from '../model/bounds';
import {
  ConfigShardRef, PROXY_CONFIG_FILE, PROXY_CONFIG_SHARD_KIND, ProxyConfig, ProxyConfigMain, ProxyConfigShard,
} from '../model/proxy-config';

/** One file of the config, as a ConfigMap key carries it. */
export interface ConfigFile {
  /** ConfigMap key and file name in the mount directory. */
  readonly file: string;
  readonly text: string;
}

/** Who declared each external service and route, for messages (construct paths). */
export interface ConfigOwners {
  readonly externalServices: readonly string[];
  readonly routes: readonly string[];
}

/** The files, or why the config cannot be split within the limits. */
export type SplitResult =
  | { readonly ok: true; readonly files: readonly ConfigFile[] }
  | { readonly ok: false; readonly problems: readonly Problem[] };

/** Characters of `text` once JSON-escaped inside a ConfigMap object (without the quotes). */
export function escapedSize(text: string): number {
  return JSON.stringify(text).length - 2;
}

/** File name of shard `n` (1-based). */
export function shardFileName(n: number): string {
  return `config-${n}.json`;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KiB`;
}

/**
 * The files for `config`: one `config.json` while it fits `limits.fileBytes`; beyond, a main
 * file with every setting and the list of shards, and as few shards as hold the external
 * services, then the routes, in order (a shard is filled before the next one starts).
 */
export function splitConfig(config: ProxyConfig, owners: ConfigOwners, limits: ConfigFileLimits = CONFIG_FILE_LIMITS): SplitResult {
  const whole = stableJson(config);
  if (escapedSize(whole) <= limits.fileBytes) return { ok: true, files: [{ file: PROXY_CONFIG_FILE, text: whole }] };

  type Item = { readonly list: 'externalServices' | 'routes'; readonly value: unknown; readonly size: number; readonly owner: string };
  const items: Item[] = [
    ...config.externalServices.map((value, i) => ({ list: 'externalServices' as const, value, owner: owners.externalServices[i] })),
    ...config.routes.map((value, i) => ({ list: 'routes' as const, value, owner: owners.routes[i] })),
  ].map((it) => ({ ...it, size: escapedSize(stableJsonValue(it.value)) + 1 }));

  // The shard's frame: apiVersion, kind and two empty lists.
  const frame = escapedSize(stableJson({ apiVersion: config.apiVersion, kind: PROXY_CONFIG_SHARD_KIND, externalServices: [], routes: [] }));
  const problems: Problem[] = [];
  for (const it of items) {
    if (frame + it.size > limits.fileBytes) {
      problems.push({
        prop: it.list === 'externalServices' ? 'externalServices' : 'routes',
        value: it.owner,
        rule: `renders to ${kib(it.size)} of proxy config, more than one ConfigMap holds (${kib(limits.fileBytes - frame)} for one entry; ConfigMaps stay under ${kib(limits.fileBytes)} so that the API server and kubectl apply accept them)`,
        fix: it.list === 'externalServices'
          ? 'split its hosts, ports or injected headers across several ExternalServices'
          : 'split its rules, matches or hostnames across several routes',
      });
    }
  }
  if (problems.length) return { ok: false, problems };

  const groups: Item[][] = [];
  let current: Item[] = [];
  let size = frame;
  for (const it of items) {
    if (current.length > 0 && size + it.size > limits.fileBytes) {
      groups.push(current);
      current = [];
      size = frame;
    }
    current.push(it);
    size += it.size;
  }
  if (current.length) groups.push(current);

  const shards: ConfigFile[] = groups.map((group, i) => {
    const doc: ProxyConfigShard = {
      apiVersion: config.apiVersion,
      kind: PROXY_CONFIG_SHARD_KIND,
      externalServices: group.filter((it) => it.list === 'externalServices').map((it) => it.value) as ProxyConfigShard['externalServices'],
      routes: group.filter((it) => it.list === 'routes').map((it) => it.value) as ProxyConfigShard['routes'],
    };
    return { file: shardFileName(i + 1), text: stableJson(doc) };
  });
  const refs: ConfigShardRef[] = shards.map((s) => ({ file: s.file, sha256: createHash('sha256').update(s.text).digest('hex') }));
  const { externalServices: _services, routes: _routes, ...settings } = config;
  const main: ProxyConfigMain = { ...settings, shards: refs };
  const files = [{ file: PROXY_CONFIG_FILE, text: stableJson(main) }, ...shards];

  const mainSize = escapedSize(files[0].text);
  if (mainSize > limits.fileBytes) {
    return {
      ok: false,
      problems: [{
        prop: 'config.json',
        value: `${kib(mainSize)} of gateway settings`,
        rule: `pass what one ConfigMap holds (${kib(limits.fileBytes)}) even with every external service and route moved to shards`,
        fix: 'shorten the lists on the gateway itself (suffixes, allowedCidrs, clusterCidrs, CA bundles given inline)',
      }],
    };
  }
  const total = files.reduce((n, f) => n + Buffer.byteLength(f.text), 0);
  if (files.length > limits.maxFiles || total > limits.maxTotalBytes) {
    return {
      ok: false,
      problems: [{
        prop: 'externalServices',
        value: `${config.externalServices.length} external services and ${config.routes.length} routes`,
        rule: `need ${files.length} config files (${kib(total)}), past what one gateway loads: ${limits.maxFiles} files of at most ${kib(limits.fileBytes)} each and ${kib(limits.maxTotalBytes)} in all`,
        fix: 'spread the services across several EgressGateways (each with its own name, serviceName or namespace), or merge hosts that share settings into wildcard services',
      }],
    };
  }
  return { ok: true, files };
}
