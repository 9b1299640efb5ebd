import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parse } from 'yaml';
import { findPackageManifest, readPublishedImage } from '../src/internal/image-reference';
import { ProxyImage } from '../src/proxy-image';

const ROOT = join(__dirname, '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf-8'));

describe('ProxyImage.default()', () => {
  test('is <proxyImage.repository>:<version> of this package', () => {
    expect(PKG.proxyImage.repository).toBe('ghcr.io/maintainers/cdk8s-egress-proxy');
    expect(ProxyImage.default().uri).toBe(`${PKG.proxyImage.repository}:${PKG.version}`);
  });

  test('names the repository and platforms the release workflow pushes, before npm and PyPI publish', () => {
    const workflow = parse(readFileSync(join(ROOT, '.github', 'workflows', 'release.yml'), 'utf-8'));
    const job = workflow.jobs.release_image;
    expect(job.env.IMAGE_REPOSITORY).toBe(PKG.proxyImage.repository);
    expect(job.env.PLATFORM.split(',').sort()).toEqual(['linux/amd64', 'linux/arm64']);
    expect(job.permissions).toEqual({ contents: 'read', packages: 'write' });
    expect(workflow.jobs.release_npm.needs).toContain('release_image');
    expect(workflow.jobs.release_pypi.needs).toContain('release_image');
  });
});

describe('the package.json lookup behind default()', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'proxy-image-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function pkg(at: string, body: object): string {
    mkdirSync(at, { recursive: true });
    writeFileSync(join(at, 'package.json'), JSON.stringify(body));
    return join(at, 'package.json');
  }
  const ours = { name: 'cdk8s-egress', version: '1.4.2', proxyImage: { repository: 'ghcr.io/acme/egress-proxy' } };

  test.each([
    ['lib/internal (compiled)', join('lib', 'internal')],
    ['src/internal (ts-node, jest)', join('src', 'internal')],
    ['lib (a flatter layout)', 'lib'],
  ])('finds the package from %s', (_, sub) => {
    const root = join(dir, 'node_modules', 'cdk8s-egress');
    const manifest = pkg(root, ours);
    mkdirSync(join(root, sub), { recursive: true });
    expect(findPackageManifest(join(root, sub))).toBe(manifest);
  });

  test('passes over a package.json of another name (an app that bundled the library)', () => {
    const manifest = pkg(dir, ours);
    pkg(join(dir, 'app'), { name: 'my-platform-app', version: '9.9.9' });
    mkdirSync(join(dir, 'app', 'dist'), { recursive: true });
    writeFileSync(join(dir, 'app', 'dist', 'package.json'), '{ not json');
    expect(findPackageManifest(join(dir, 'app', 'dist'))).toBe(manifest);
  });

  test('finds nothing where no package.json of cdk8s-egress is above', () => {
    pkg(join(dir, 'app'), { name: 'my-platform-app', version: '9.9.9' });
    // The temporary directory's ancestors hold no cdk8s-egress package.json.
    expect(findPackageManifest(join(dir, 'app'))).toBeUndefined();
  });

  test('reads repository and version; semver build metadata becomes a valid tag', () => {
    expect(readPublishedImage(pkg(dir, ours))).toEqual({ repository: 'ghcr.io/acme/egress-proxy', tag: '1.4.2' });
    expect(readPublishedImage(pkg(dir, { ...ours, version: '2.0.0-rc.1+build.7' })))
      .toEqual({ repository: 'ghcr.io/acme/egress-proxy', tag: '2.0.0-rc.1-build.7' });
  });

  test('throws when version and repository are unusable, naming both and the way out', () => {
    const manifest = pkg(dir, { name: 'cdk8s-egress', version: 'latest', proxyImage: { repository: 'ghcr.io/acme/egress-proxy:1.0.0' } });
    expect(() => readPublishedImage(manifest)).toThrow(
      /ProxyImage.default\(\): .*package.json: "version" "latest" is not a semantic version; "proxyImage.repository" "ghcr.io\/acme\/egress-proxy:1.0.0" is not an image repository without tag or digest; pass the image explicitly with ProxyImage.fromRegistry/,
    );
  });

  test('throws when the repository is missing', () => {
    expect(() => readPublishedImage(pkg(dir, { name: 'cdk8s-egress', version: '1.0.0' })))
      .toThrow(/"proxyImage.repository" undefined is not an image repository/);
  });
});

describe('ProxyImage.fromRegistry()', () => {

  test.each([
    'ghcr.io/cdk8s-egress/proxy:1.2.3',
    'registry.example.com:5000/platform/egress/proxy:1.2.3-rc.1',
    `registry.example.com/egress/proxy@sha256:${'a'.repeat(64)}`,
    `registry.example.com/egress/proxy:1.2.3@sha256:${'0123456789abcdef'.repeat(4)}`,
    'localhost:5000/proxy:dev',
    'proxy:local',
  ])('fromRegistry accepts %s', (uri) => {
    expect(ProxyImage.fromRegistry(uri).uri).toBe(uri);
  });

  test('throws when the reference has neither tag nor digest', () => {
    expect(() => ProxyImage.fromRegistry('registry.example.com:5000/egress/proxy'))
      .toThrow(/'uri' "registry.example.com:5000\/egress\/proxy" has neither a tag nor a digest; pin it, e.g. "registry.example.com:5000\/egress\/proxy:1.0.0"/);
  });

  test.each([
    ['', 'empty'],
    ['ghcr.io/Egress/Proxy:1.0', 'upper-case repository'],
    ['ghcr.io/egress/proxy:1.0 ', 'trailing space'],
    ['https://ghcr.io/egress/proxy:1.0', 'URL scheme'],
    ['ghcr.io/egress/proxy@sha256:abc', 'short digest'],
    ['ghcr.io//proxy:1.0', 'empty path component'],
  ])('throws when the reference is malformed (%j: %s)', (uri) => {
    expect(() => ProxyImage.fromRegistry(uri)).toThrow(/ProxyImage.fromRegistry\(\): 'uri' .* is not an image reference; write it as registry\/repository:tag/);
  });
});
