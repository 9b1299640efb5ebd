// A gateway too large for one ConfigMap: 5,000 external services and a network's routes split
// across ConfigMaps that each stay under the API server's and kubectl apply's limits, mounted as
// one projected volume, and loaded (all or nothing) by the real proxy, which routes to a service
// that only the last shard declares.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chart, Testing } from 'cdk8s';
import {
  EgressGateway, EgressNetwork, ExternalServiceProtocol, TlsOrigination, TrafficPolicy,
} from '../src';
import { checkConfigWithBundle, mappingDialer } from './e2e/helpers';
import { capturingLogger, loopbackResolver, startHttpUpstream, viaProxy, type TestUpstream } from './proxy/helpers';
import { thrownMessage } from './util/thrown';
import { splitConfig } from '../src/internal/config-files';
import { CONFIG_FILE_LIMITS } from '../src/model/bounds';
import type { ProxyConfig } from '../src/model/proxy-config';
import { ConfigError, loadConfigFile, parseConfigSet, readConfigSet, validateConfig } from '../src/proxy/config';
import { startProxy, type ProxyHandle } from '../src/proxy/server';

const SERVICES = 5_000;
const ROUTES = 12;
const LAST_HOST = `svc-${SERVICES - 1}.example.com`;
/** The API server's limit on a ConfigMap's data, and on all annotations of one object. */
const CONFIGMAP_DATA_LIMIT = 1024 * 1024;
const ANNOTATIONS_LIMIT = 256 * 1024;

/** 5,000 services (the last one plaintext, for the loopback test) and a Deny network with routes. */
function largeChart(services = SERVICES): { chart: Chart; gateway: EgressGateway; network: EgressNetwork } {
  const chart = new Chart(Testing.app(), 'platform');
  const gateway = new EgressGateway(chart, 'Egress', { namespace: 'egress' });
  const network = new EgressNetwork(chart, 'Net', { namespace: 'egress', trafficPolicy: TrafficPolicy.DENY, gateway });
  for (let i = 0; i < services; i++) {
    const last = i === services - 1;
    gateway.addExternalService(`Svc${i}`, {
      host: `svc-${i}.example.com`,
      ...(last ? { tls: TlsOrigination.disabled(), ports: [{ port: 80, protocol: ExternalServiceProtocol.HTTP, targetPort: 80 }] } : {}),
    });
  }
  for (let r = 0; r < ROUTES; r++) {
    network.addHttpRoute(`Route${r}`, { port: 80, hostnames: [`svc-${services - 1 - r}.example.com`] });
  }
  return { chart, gateway, network };
}

/** The files of the config as the pod sees them: ConfigMap key -> text, from every ConfigMap. */
function configFiles(objects: readonly any[]): Map<string, string> {
  const files = new Map<string, string>();
  for (const o of objects) {
    if (o.kind !== 'ConfigMap') continue;
    for (const [k, v] of Object.entries(o.data ?? {})) if (/^config(-\d+)?\.json$/.test(k)) files.set(k, v as string);
  }
  return files;
}

/**
 * A directory laid out the way the kubelet writes a projected volume: every file in a timestamped
 * directory, `..data` pointing at it (swapped with one rename), and a symlink per file.
 */
function projectedDir(): { dir: string; write(files: ReadonlyMap<string, string>): void } {
  const dir = mkdtempSync(join(tmpdir(), 'egress-shards-'));
  let n = 0;
  return {
    dir,
    write(files) {
      const ts = join(dir, `..2026_${++n}`);
      mkdirSync(ts);
      for (const [name, text] of files) writeFileSync(join(ts, name), text);
      execFileSync('ln', ['-sfn', `..2026_${n}`, join(dir, '..data_tmp')]);
      execFileSync('mv', ['-Tf', join(dir, '..data_tmp'), join(dir, '..data')]);
      for (const name of files.keys()) execFileSync('ln', ['-sfn', `..data/${name}`, join(dir, name)]);
    },
  };
}

/** The only patch the loopback harness makes, to the main file alone: the shards stay byte for byte. */
function harnessMain(text: string): string {
  const c = JSON.parse(text);
  c.listeners.bindAddress = '127.0.0.1';
  c.listeners.http.port = 0;
  c.listeners.admin.port = 0;
  c.addressPolicy.allowCidrs = [...c.addressPolicy.allowCidrs, '127.0.0.0/8'];
  return JSON.stringify(c);
}

describe('a gateway with 5,000 external services', () => {
  const { chart, gateway } = largeChart();
  const objects = Testing.synth(chart);
  const files = configFiles(objects);
  const configMaps = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.namespace === 'egress');

  test('splits its config across ConfigMaps that each stay under the API server\'s and kubectl apply\'s limits', () => {
    expect(configMaps.length).toBeGreaterThan(2);
    for (const o of objects) {
      // kubectl apply (client side) stores the whole object in one annotation.
      expect([o.metadata.name, JSON.stringify(o).length < ANNOTATIONS_LIMIT]).toEqual([o.metadata.name, true]);
    }
    for (const cm of configMaps) {
      const data = Object.entries(cm.data as Record<string, string>).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0);
      expect(data).toBeLessThan(CONFIGMAP_DATA_LIMIT);
      expect(JSON.stringify(cm.data).length).toBeLessThanOrEqual(CONFIG_FILE_LIMITS.fileBytes + 64);
    }
    // Without splitting, the pretty-printed document would pass the ConfigMap limit.
    const merged = loadFromFiles(files);
    expect(JSON.stringify(merged, undefined, 2).length).toBeGreaterThan(CONFIGMAP_DATA_LIMIT);
  });

  test('names each shard after the gateway, lists it with its hash in config.json, and keeps every service and route in order', () => {
    const main = JSON.parse(files.get('config.json')!);
    expect(main.externalServices).toBeUndefined();
    expect(main.shards.map((s: any) => s.file)).toEqual([...files.keys()].filter((f) => f !== 'config.json').sort((a, b) => shardNo(a) - shardNo(b)));
    expect(configMaps.map((c) => c.metadata.name).sort()).toEqual(
      ['egress-gateway-config', ...main.shards.map((_: unknown, i: number) => `egress-gateway-config-${i + 1}`)].sort());
    expect(gateway.configMaps.map((c) => c.name)).toEqual(['egress-gateway-config', ...main.shards.map((_: unknown, i: number) => `egress-gateway-config-${i + 1}`)]);
    const config = loadFromFiles(files);
    expect(config.externalServices.map((s) => s.host)).toEqual(Array.from({ length: SERVICES }, (_, i) => `svc-${i}.example.com`));
    expect(config.routes.map((r) => r.order)).toEqual(Array.from({ length: ROUTES }, (_, i) => i));
    // The last shard holds the last service.
    const last = JSON.parse(files.get(main.shards[main.shards.length - 1].file)!);
    expect(last.externalServices.map((s: any) => s.host)).toContain(LAST_HOST);
  });

  test('the Deployment mounts every ConfigMap of the config as one projected volume at the config directory', () => {
    const pod = objects.find((o) => o.kind === 'Deployment').spec.template.spec;
    const volume = pod.volumes.find((v: any) => v.name === 'config');
    expect(volume.configMap).toBeUndefined();
    expect(volume.projected.sources.map((s: any) => s.configMap.name)).toEqual(gateway.configMaps.map((c) => c.name));
    expect(pod.containers[0].volumeMounts).toContainEqual(expect.objectContaining({ name: 'config', mountPath: '/etc/egress', readOnly: true }));
    expect(pod.containers[0].args).toEqual(['--config', '/etc/egress/config.json']);
  });

  test('validateConfig refuses the main file alone: the shards are merged by the file loader', () => {
    const r = validateConfig(JSON.parse(files.get('config.json')!));
    expect(r.ok ? [] : r.problems.map((p) => p.path)).toEqual(['$.shards']);
  });

  describe('the real proxy', () => {
    let proxy: ProxyHandle | undefined;
    let upstream: TestUpstream | undefined;
    let dir: string | undefined;
    afterEach(async () => {
      await proxy?.close();
      await upstream?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
      proxy = upstream = dir = undefined;
    });

    test('loads the shards and routes to a service only the last shard declares; a half-updated set keeps the last good config', async () => {
      upstream = await startHttpUpstream();
      const volume = projectedDir();
      dir = volume.dir;
      const patched = new Map(files);
      patched.set('config.json', harnessMain(files.get('config.json')!));
      volume.write(patched);
      const dialer = mappingDialer({ 80: upstream.port });
      const { logger } = capturingLogger();
      proxy = await startProxy({
        configPath: join(volume.dir, 'config.json'),
        watch: false,
        logger,
        dial: dialer.dial,
        resolver: loopbackResolver({ [LAST_HOST]: '127.0.0.1' }).resolve,
      });
      expect(proxy.config().externalServices).toHaveLength(SERVICES);
      // The shipped bundle reads the same set offline.
      const checked = await checkConfigWithBundle(join(volume.dir, 'config.json'));
      expect([checked.code, checked.stdout]).toEqual([0, expect.stringContaining(`(${SERVICES} external services, ${ROUTES} routes)`)]);
      const ok = await viaProxy(proxy.ports.http, `${LAST_HOST}.egress.local`, '/last-shard');
      expect(ok.status).toBe(200);
      expect(upstream.seen.map((r) => [r.url, r.headers.host])).toEqual([['/last-shard', LAST_HOST]]);
      const denied = await viaProxy(proxy.ports.http, 'svc-0.example.com.egress.local', '/');
      expect(denied.status).toBe(403);
      expect(dialer.refused).toEqual([]);

      // The next config drops the first service of the last shard. Written with the last shard
      // still old (a ConfigMap update not yet arrived), the set is refused.
      const main = JSON.parse(patched.get('config.json')!);
      const lastRef = main.shards[main.shards.length - 1];
      const lastShard = JSON.parse(patched.get(lastRef.file)!);
      const dropped = lastShard.externalServices.shift().host;
      const nextShardText = JSON.stringify(lastShard);
      lastRef.sha256 = createHash('sha256').update(nextShardText).digest('hex');
      const half = new Map(patched);
      half.set('config.json', JSON.stringify(main));
      volume.write(half);
      const refused = await proxy.reload();
      expect(refused.ok).toBe(false);
      expect(refused.problems.map((p) => p.message).join('\n')).toMatch(/does not match config-\d+\.json .*different versions of the config/);
      expect(proxy.config().externalServices).toHaveLength(SERVICES);

      // The whole new set: swapped in at once.
      const whole = new Map(half);
      whole.set(lastRef.file, nextShardText);
      volume.write(whole);
      const reloaded = await proxy.reload();
      expect(reloaded.problems).toEqual([]);
      expect(proxy.config().externalServices).toHaveLength(SERVICES - 1);
      expect(proxy.config().externalServices.map((x) => x.host)).not.toContain(dropped);
    }, 120_000); // a 5,000-service set and a bundle run: seconds alone, more on a busy machine
  });
});

describe('the config loader', () => {
  const tmpDirs: string[] = [];
  afterAll(() => tmpDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  function writeSet(set: ReadonlyMap<string, string>): string {
    const d = mkdtempSync(join(tmpdir(), 'egress-shards-'));
    tmpDirs.push(d);
    for (const [name, text] of set) writeFileSync(join(d, name), text);
    return join(d, 'config.json');
  }

  /** A small config split with a small file size, so that each case builds in milliseconds. */
  function smallSplit(): Map<string, string> {
    const { gateway } = largeChart(40);
    const split = splitConfig(gateway._renderConfig(), { externalServices: [], routes: [] }, { ...CONFIG_FILE_LIMITS, fileBytes: 4096 });
    if (!split.ok) throw new Error('small split failed');
    return new Map(split.files.map((f) => [f.file, f.text]));
  }

  test('reports a problem inside a shard at its place in that shard', () => {
    const set = smallSplit();
    const shard = JSON.parse(set.get('config-2.json')!);
    shard.externalServices[1].host = 'bad..host';
    const text = JSON.stringify(shard);
    set.set('config-2.json', text);
    const main = JSON.parse(set.get('config.json')!);
    main.shards[1].sha256 = createHash('sha256').update(text).digest('hex');
    set.set('config.json', JSON.stringify(main));
    const e = thrownError(() => loadConfigFile(writeSet(set)));
    expect(e.problems.map((p) => p.path)).toEqual(['config-2.json: $.externalServices[1].host']);
  });

  test('refuses a missing shard, an unlisted path, a foreign kind, and a hash that does not match, all at once', () => {
    const set = smallSplit();
    const main = JSON.parse(set.get('config.json')!);
    main.shards[0].sha256 = '0'.repeat(64);
    main.shards[1].file = '../etc/passwd.json';
    main.shards.push({ file: 'config-99.json', sha256: 'a'.repeat(64) });
    set.set('config.json', JSON.stringify(main));
    set.set('config-3.json', JSON.stringify({ ...JSON.parse(set.get('config-3.json')!), kind: 'EgressProxyConfig' }));
    main.shards[2].sha256 = createHash('sha256').update(set.get('config-3.json')!).digest('hex');
    set.set('config.json', JSON.stringify(main));
    const e = thrownError(() => parseConfigSet(readConfigSet(writeSet(set))));
    expect(e.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      expect.stringMatching(/^\$\.shards\[0\]\.sha256: does not match config-1\.json/),
      expect.stringMatching(/^\$\.shards\[1\]\.file: must name a \.json file in the config's directory/),
      'config-3.json: $.kind: must be "EgressProxyConfigShard"',
      expect.stringMatching(/^\$\.shards\[\d+\]\.file: cannot read file: ENOENT/),
    ]);
  });
});

describe('limits', () => {
  const owners = (config: ProxyConfig) => ({
    externalServices: config.externalServices.map((s) => `platform/Egress/${s.name}`),
    routes: config.routes.map((r) => `platform/Net/${r.name}`),
  });

  test('one entry larger than a ConfigMap holds is named with its construct path, the size, the rule and a fix', () => {
    const { gateway } = largeChart(3);
    const config = gateway._renderConfig();
    const split = splitConfig(config, owners(config), { ...CONFIG_FILE_LIMITS, fileBytes: 400 });
    expect(split.ok).toBe(false);
    const problems = split.ok ? [] : split.problems;
    // Every service entry is over 400 characters; each is named, the first first.
    expect(problems.filter((p) => p.prop === 'externalServices').map((p) => p.value)).toEqual(['platform/Egress/svc0', 'platform/Egress/svc1', 'platform/Egress/svc2']);
    expect(problems[0]).toMatchObject({ prop: 'externalServices', rule: expect.stringMatching(/^renders to [\d.]+ KiB of proxy config, more than one ConfigMap holds/) });
    expect(problems[0].fix).toMatch(/split its hosts/);
  });

  test('the gateway fails at synth, before any limit, when the config needs more files than one gateway loads', () => {
    const small = { ...CONFIG_FILE_LIMITS, fileBytes: 4096, maxFiles: 3 };
    const { gateway } = largeChart(30);
    const config = gateway._renderConfig();
    const split = splitConfig(config, owners(config), small);
    expect(split.ok).toBe(false);
    expect(split.ok ? undefined : split.problems[0]).toMatchObject({
      prop: 'externalServices',
      value: `30 external services and ${ROUTES} routes`,
      rule: expect.stringMatching(/^need \d+ config files \([\d.]+ KiB\), past what one gateway loads: 3 files of at most 4\.0 KiB each/),
      fix: expect.stringMatching(/several EgressGateways/),
    });
    // The same rule, through the construct: the limits shared with the proxy, made small.
    jest.isolateModules(() => {
      jest.doMock('../src/model/bounds', () => ({ ...jest.requireActual('../src/model/bounds'), CONFIG_FILE_LIMITS: small }));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const lib = require('../src');
      const c = new Chart(Testing.app(), 'platform');
      const gw = new lib.EgressGateway(c, 'Egress', { namespace: 'egress' });
      for (let i = 0; i < 30; i++) gw.addExternalService(`Svc${i}`, { host: `svc-${i}.example.com` });
      const message = thrownMessage(() => Testing.synth(c));
      expect(message).toMatch(/\[platform\/Egress\] EgressGateway "platform\/Egress": 'externalServices' "30 external services and 0 routes" need \d+ config files/);
      expect(message).toMatch(/spread the services across several EgressGateways/);
    });
  });

  test('settings that alone pass one ConfigMap are refused, since shards carry only services and routes', () => {
    const gateway = new EgressGateway(new Chart(Testing.app(), 'platform'), 'Egress');
    const split = splitConfig(gateway._renderConfig(), { externalServices: [], routes: [] }, { ...CONFIG_FILE_LIMITS, fileBytes: 500 });
    expect(split.ok ? undefined : split.problems).toEqual([expect.objectContaining({
      prop: 'config.json', rule: expect.stringMatching(/^pass what one ConfigMap holds \(0\.5 KiB\)/), fix: expect.stringMatching(/shorten the lists on the gateway/),
    })]);
  });

  test('a gateway whose config fits one ConfigMap keeps one ConfigMap and a plain configMap volume', () => {
    const { chart } = largeChart(10);
    const objects = Testing.synth(chart);
    expect(objects.filter((o) => o.kind === 'ConfigMap').map((o) => Object.keys(o.data))).toEqual([['config.json']]);
    const volume = objects.find((o) => o.kind === 'Deployment').spec.template.spec.volumes.find((v: any) => v.name === 'config');
    expect(volume).toEqual({ name: 'config', configMap: { name: 'egress-gateway-config' } });
  });
});

function shardNo(file: string): number {
  return Number(/(\d+)/.exec(file)?.[1] ?? 0);
}

function loadFromFiles(files: ReadonlyMap<string, string>): ProxyConfig {
  const dir = mkdtempSync(join(tmpdir(), 'egress-shards-'));
  try {
    for (const [name, text] of files) writeFileSync(join(dir, name), text);
    return loadConfigFile(join(dir, 'config.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function thrownError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}
