import { readFileSync } from 'fs';
import { join } from 'path';
import { ProxyImage } from '../src/proxy-image';

describe('ProxyImage', () => {
  test('default() is the published image tagged with this package version', () => {
    const version = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf-8')).version;
    expect(ProxyImage.default().uri).toBe(`ghcr.io/cdk8s-egress/proxy:${version}`);
  });

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
