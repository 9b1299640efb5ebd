// Image references: the distribution grammar, and the image this package version publishes
// (repository and version read from the package's own package.json).
import { existsSync, readFileSync } from 'fs';
import { dirname, join } from 'path';

// The distribution reference grammar (docker/distribution `reference`), tag or digest required.
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\\[[0-9a-fA-F:]+\\](?::[0-9]+)?)';
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const DIGEST = 'sha256:[a-f0-9]{64}';
export const IMAGE_REFERENCE = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`);

/** The name in this package's package.json: what `default()` looks for while walking up. */
const PACKAGE_NAME = 'cdk8s-egress';

/** What `default()` needs from this package's package.json. */
export interface PublishedImage {
  /** Where the release process pushes the proxy image (`proxyImage.repository`). */
  readonly repository: string;
  /** The package version, as an image tag. */
  readonly tag: string;
}

let published: PublishedImage | undefined;

/**
 * Finds this package's own package.json by walking up from `startDir`: one level from `lib/`
 * (compiled) and from `src/` (ts-node, jest), and it keeps working if the file moves deeper.
 * A package.json of another name (an app that bundled this library) is passed over.
 */
export function findPackageManifest(startDir: string): string | undefined {
  let dir = startDir;
  for (let depth = 0; depth < 8; depth++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        if ((JSON.parse(readFileSync(candidate, 'utf-8')) as { name?: unknown }).name === PACKAGE_NAME) {
          return candidate;
        }
      } catch {
        // An unreadable or malformed package.json on the way up is not ours; keep looking.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

/**
 * Reads the published image from a package.json: the repository the release pushes to and the
 * package version as the tag. Every problem is reported with the way out (`fromRegistry()`).
 */
export function readPublishedImage(manifestPath: string): PublishedImage {
  const pkg = JSON.parse(readFileSync(manifestPath, 'utf-8')) as { version?: unknown; proxyImage?: { repository?: unknown } };
  const problems: string[] = [];
  const version = pkg.version;
  if (typeof version !== 'string' || !/^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.test(version)) {
    problems.push(`"version" ${JSON.stringify(version)} is not a semantic version`);
  }
  const repository = pkg.proxyImage?.repository;
  if (typeof repository !== 'string' || !IMAGE_REFERENCE.test(repository) || /[:@][^/]*$/.test(repository.slice(repository.lastIndexOf('/') + 1))) {
    problems.push(`"proxyImage.repository" ${JSON.stringify(repository)} is not an image repository without tag or digest`);
  }
  if (problems.length > 0) {
    throw new Error(`ProxyImage.default(): ${manifestPath}: ${problems.join('; ')}; pass the image explicitly with ProxyImage.fromRegistry("<registry>/<repository>:<tag>")`);
  }
  // '+' (semver build metadata) is not allowed in image tags; the release pushes it as '-'.
  return { repository: repository as string, tag: (version as string).replace(/\+/g, '-') };
}

export function publishedImage(): PublishedImage {
  if (!published) {
    const manifest = findPackageManifest(__dirname);
    if (!manifest) {
      throw new Error(`ProxyImage.default(): the package.json of ${PACKAGE_NAME} was not found above ${__dirname} (was the library bundled into an app?); pass the image explicitly with ProxyImage.fromRegistry("<registry>/<repository>:<tag>")`);
    }
    published = readPublishedImage(manifest);
  }
  return published;
}
