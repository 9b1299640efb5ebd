// The container image the egress gateway runs: a validated, pinned image reference.
import { readFileSync } from 'fs';
import { join } from 'path';

// The distribution reference grammar (docker/distribution `reference`), tag or digest required.
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\\[[0-9a-fA-F:]+\\](?::[0-9]+)?)';
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const DIGEST = 'sha256:[a-f0-9]{64}';
const REFERENCE = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`);

/** Repository of the published proxy image; the tag is the version of this package. */
const DEFAULT_REPOSITORY = 'ghcr.io/cdk8s-egress/proxy';

function packageVersion(): string {
  // src/ and lib/ both sit next to package.json; read at synth time so the default image always
  // matches the library that renders the config it must understand.
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf-8')) as { version?: unknown };
  if (typeof pkg.version !== 'string' || !/^[0-9A-Za-z][0-9A-Za-z.+-]*$/.test(pkg.version)) {
    throw new Error(`ProxyImage: package.json next to ${__dirname} has no usable "version" (${JSON.stringify(pkg.version)}); pass an image with ProxyImage.fromRegistry()`);
  }
  // '+' (semver build metadata) is not allowed in image tags; registries conventionally use '-'.
  return pkg.version.replace(/\+/g, '-');
}

/**
 * The egress proxy container image.
 *
 * The proxy reads the config this library renders, so the image and the library version must
 * agree; the default is the image published for this package version.
 */
export class ProxyImage {
  /**
   * The image published with this package version: `ghcr.io/cdk8s-egress/proxy:<version>`,
   * the version read from this package's package.json at synth time.
   */
  public static default(): ProxyImage {
    return new ProxyImage(`${DEFAULT_REPOSITORY}:${packageVersion()}`);
  }

  /**
   * An image from any registry, e.g. a mirror: `registry.example.com/egress/proxy:1.4.0` or
   * `registry.example.com/egress/proxy@sha256:<64 hex digits>`.
   *
   * A tag or a digest is required, so what runs never changes under a moving `latest`.
   */
  public static fromRegistry(uri: string): ProxyImage {
    if (typeof uri !== 'string' || uri.length === 0 || uri.length > 512 || !REFERENCE.test(uri)) {
      throw new Error(`ProxyImage.fromRegistry(): 'uri' ${JSON.stringify(uri)} is not an image reference; write it as registry/repository:tag or registry/repository@sha256:<digest>, e.g. "ghcr.io/cdk8s-egress/proxy:1.0.0"`);
    }
    const lastSlash = uri.lastIndexOf('/');
    const name = uri.slice(lastSlash + 1);
    if (!name.includes(':') && !name.includes('@')) {
      throw new Error(`ProxyImage.fromRegistry(): 'uri' ${JSON.stringify(uri)} has neither a tag nor a digest; pin it, e.g. "${uri}:1.0.0" or "${uri}@sha256:<digest>"`);
    }
    return new ProxyImage(uri);
  }

  private constructor(
    /** The full image reference. */
    public readonly uri: string,
  ) {}
}
