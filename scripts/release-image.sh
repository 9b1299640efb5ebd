#!/usr/bin/env bash
# The image step of a release: builds the proxy image from the npm package the release produced
# (the bundle and Dockerfile users get, not a rebuild) for every platform, and pushes it as
# <proxyImage.repository>:<version>, the reference ProxyImage.default() of that package renders.
#
#   scripts/release-image.sh DIST        DIST: the release artifacts (dist/js/*.tgz, dist/version.txt)
#
# Environment:
#   IMAGE_REPOSITORY  where to push; must equal the package's proxyImage.repository
#   PLATFORM          default linux/amd64,linux/arm64
#   PUSH              true (default) or false (build only: a dry run)
#   ENGINE            default docker (buildx; the release runner has QEMU for arm64)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "release-image: $*" >&2; exit 1; }

DIST=${1:-}
[[ -n $DIST && -d $DIST ]] || die "usage: scripts/release-image.sh DIST (the directory holding js/*.tgz and version.txt)"
shopt -s nullglob
tarballs=("$DIST"/js/*.tgz)
[[ ${#tarballs[@]} -eq 1 ]] || die "expected one npm tarball in $DIST/js/, found ${#tarballs[@]}"
[[ -s $DIST/version.txt ]] || die "$DIST/version.txt is missing"
version=$(tr -d '[:space:]' < "$DIST/version.txt")

pkg=$(mktemp -d "${TMPDIR:-/tmp}/egress-release.XXXXXX")
trap 'rm -rf "$pkg"' EXIT
tar -xzf "${tarballs[0]}" -C "$pkg"
context=$pkg/package

# The package must carry everything the Dockerfile reads, and name the same image it will render.
for f in Dockerfile .dockerignore package.json assets/proxy/main/index.js; do
  [[ -s $context/$f ]] || die "the npm package has no $f; the image cannot be built from it"
done
read -r pkg_version pkg_repository < <(node -e '
  const p = require(process.argv[1]);
  console.log(p.version, (p.proxyImage && p.proxyImage.repository) || "-");' "$context/package.json")
[[ $pkg_version == "$version" ]] || die "the package is version $pkg_version, the release is $version"
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-$pkg_repository}
[[ $IMAGE_REPOSITORY == "$pkg_repository" ]] \
  || die "IMAGE_REPOSITORY $IMAGE_REPOSITORY differs from the package's proxyImage.repository $pkg_repository: ProxyImage.default() would name an image nobody pushed"

tag=${version//+/-}  # semver build metadata is not valid in a tag; ProxyImage.default() does the same
echo "release-image: $IMAGE_REPOSITORY:$tag for ${PLATFORM:-linux/amd64,linux/arm64} from $(basename "${tarballs[0]}")"
CONTEXT=$context \
  IMAGE="$IMAGE_REPOSITORY:$tag" \
  PLATFORM=${PLATFORM:-linux/amd64,linux/arm64} \
  PUSH=${PUSH:-true} \
  ENGINE=${ENGINE:-docker} \
  VERSION=$version \
  REVISION=${REVISION:-${GITHUB_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}} \
  bash scripts/build-image.sh
