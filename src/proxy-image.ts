// The container image the egress gateway runs: a validated, pinned image reference.
import { IMAGE_REFERENCE, publishedImage } from './internal/image-reference';

/**
 * The egress proxy container image.
 *
 * The proxy reads the config this library renders, so the image and the library version must
 * agree; the default is the image published for this package version.
 */
export class ProxyImage {
  /**
   * The image the release of this package version publishes:
   * `ghcr.io/maintainers/cdk8s-egress-proxy:<version>`.
   *
   * Repository and version are read at synth time from this package's own package.json
   * (`proxyImage.repository` and `version`), the same values the release workflow pushes the
   * multi-platform (linux/amd64, linux/arm64) image under, so the proxy always understands the
   * config this library renders. A development checkout (version `0.0.0`) has no published
   * image: build one (`npm run image`) and pass it with `fromRegistry()`.
   */
  public static default(): ProxyImage {
    const { repository, tag } = publishedImage();
    return new ProxyImage(`${repository}:${tag}`);
  }

  /**
   * An image from any registry, e.g. a mirror: `registry.example.com/egress/proxy:1.4.0` or
   * `registry.example.com/egress/proxy@sha256:<64 hex digits>`.
   *
   * A tag or a digest is required, so what runs never changes under a moving `latest`.
   */
  public static fromRegistry(uri: string): ProxyImage {
    if (typeof uri !== 'string' || uri.length === 0 || uri.length > 512 || !IMAGE_REFERENCE.test(uri)) {
      throw new Error(`ProxyImage.fromRegistry(): 'uri' ${JSON.stringify(uri)} is not an image reference; write it as registry/repository:tag or registry/repository@sha256:<digest>, e.g. "ghcr.io/maintainers/cdk8s-egress-proxy:1.0.0"`);
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
