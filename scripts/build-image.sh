#!/usr/bin/env bash
# Builds the proxy image from the Dockerfile with the prebuilt bundle (BUNDLE_FROM=prebuilt): with
# docker when an engine answers, else with buildah (vfs storage, chroot isolation) on a base
# assembled here from the official Node binary of the Dockerfile's NODE_VERSION (npm registry).
#
#   scripts/build-image.sh            (or: npm run image)
#
# Environment:
#   IMAGE          reference to build (default localhost/cdk8s-egress-proxy:dev)
#   ENGINE         docker | buildah (default: docker if `docker info` succeeds, else buildah)
#   PLATFORM       linux/amd64, linux/arm64, or both comma-separated (one multi-platform image);
#                  default: this machine's. docker builds them with buildx (QEMU for a foreign one);
#                  buildah needs NODE_BASE for a platform that is not this machine's
#   PUSH           true: push IMAGE to its registry after the build (needs a login); default false
#   CONTEXT        build context: the repository (default) or an unpacked npm package of
#                  cdk8s-egress (its Dockerfile, .dockerignore and assets/proxy/main/index.js)
#   NODE_VERSION   Node.js release of the runtime; default: the Dockerfile's (an LTS)
#   NODE_BASE      runtime base image; default: docker uses the Dockerfile's official Node image
#                  (node:<NODE_VERSION>-trixie-slim), buildah assembles
#                  localhost/egress-node-base:<NODE_VERSION> (scripts/fetch-node.sh, assemble-base.sh)
#   VERSION, REVISION, CREATED   image labels (default: package.json version, git HEAD, now)
#   IMAGE_ARCHIVE  also write the image to this OCI archive (e.g. .image/proxy.oci.tar)
#   STORAGE_DRIVER, BUILDAH_ROOT, BUILDAH_RUNROOT   as in scripts/assemble-base.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE=${IMAGE:-localhost/cdk8s-egress-proxy:dev}
CONTEXT=${CONTEXT:-.}
BUNDLE=$CONTEXT/assets/proxy/main/index.js
PUSH=${PUSH:-false}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

log() { echo "build-image: $*"; }
die() { echo "build-image: $*" >&2; exit 1; }

[[ $PUSH == true || $PUSH == false ]] || die "PUSH must be true or false, not \"$PUSH\""
[[ -f $CONTEXT/Dockerfile ]] || die "CONTEXT $CONTEXT has no Dockerfile"

host_arch() {
  case $(uname -m) in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) uname -m ;;
  esac
}
# PLATFORM: a comma-separated list of linux/amd64 and linux/arm64, each at most once.
PLATFORM=${PLATFORM:-linux/$(host_arch)}
IFS=, read -r -a platforms <<<"$PLATFORM"
[[ ${#platforms[@]} -gt 0 ]] || die "PLATFORM is empty"
declare -A seen_platform=()
for p in "${platforms[@]}"; do
  [[ $p == linux/amd64 || $p == linux/arm64 ]] || die "PLATFORM \"$PLATFORM\": \"$p\" is not linux/amd64 or linux/arm64"
  [[ -z ${seen_platform[$p]:-} ]] || die "PLATFORM \"$PLATFORM\" names $p twice"
  seen_platform[$p]=1
done

NODE_VERSION=${NODE_VERSION:-$(sed -nE 's/^ARG NODE_VERSION=([0-9]+\.[0-9]+\.[0-9]+)[[:space:]]*$/\1/p' "$CONTEXT/Dockerfile" | head -n 1)}
[[ $NODE_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "no NODE_VERSION (set it, or ARG NODE_VERSION=x.y.z in $CONTEXT/Dockerfile)"
(( ${NODE_VERSION%%.*} >= 22 )) || die "NODE_VERSION $NODE_VERSION: Node ${NODE_VERSION%%.*} is end of life; use an LTS release (22 or later)"

buildah_() {
  local args=(--storage-driver "$STORAGE_DRIVER")
  [[ -n ${BUILDAH_ROOT:-} ]] && args+=(--root "$BUILDAH_ROOT")
  [[ -n ${BUILDAH_RUNROOT:-} ]] && args+=(--runroot "$BUILDAH_RUNROOT")
  buildah "${args[@]}" "$@"
}

# From the repository the image ships the bundle of the working tree (the one the tests ran), so
# make sure it exists and is not older than the proxy sources; a package ships its own.
if [[ $(cd "$CONTEXT" && pwd -P) == $(pwd -P) ]]; then
  if [[ ! -s $BUNDLE ]] || [[ -n $(find src -name '*.ts' -newer "$BUNDLE" -print -quit) ]]; then
    log "bundling the proxy ($BUNDLE missing or older than src/)"
    npm run --silent bundle
  fi
  [[ -s $BUNDLE ]] || die "$BUNDLE was not produced; run 'npm run bundle' and read its errors"
else
  [[ -s $BUNDLE ]] || die "CONTEXT $CONTEXT has no $BUNDLE (an unpacked cdk8s-egress npm package has it)"
fi

ENGINE=${ENGINE:-}
if [[ -z $ENGINE ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=buildah; fi
fi

VERSION=${VERSION:-$(node -p "require(process.argv[1]).version" "$(cd "$CONTEXT" && pwd)/package.json")}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
CREATED=${CREATED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
build_args=(--build-arg BUNDLE_FROM=prebuilt --build-arg "VERSION=$VERSION"
  --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" --build-arg "NODE_VERSION=$NODE_VERSION")

start=$(date +%s)
case $ENGINE in
  docker)
    [[ -n ${NODE_BASE:-} ]] && build_args+=(--build-arg "NODE_BASE=$NODE_BASE")
    if [[ ${#platforms[@]} -gt 1 || $PUSH == true || -n ${IMAGE_ARCHIVE:-} ]]; then
      # buildx: several platforms in one image index; pushed, or written as an OCI archive.
      outputs=()
      if [[ $PUSH == true ]]; then
        outputs+=(--push)
      elif [[ -n ${IMAGE_ARCHIVE:-} ]]; then
        mkdir -p "$(dirname "$IMAGE_ARCHIVE")"
        outputs+=(--output "type=oci,dest=$IMAGE_ARCHIVE")
      elif [[ ${#platforms[@]} -eq 1 ]]; then
        outputs+=(--load)
      else
        log "several platforms and neither PUSH=true nor IMAGE_ARCHIVE: the build is kept in the buildx cache only"
      fi
      log "docker buildx build --platform $PLATFORM -t $IMAGE (base: ${NODE_BASE:-node:$NODE_VERSION from the Dockerfile})"
      docker buildx build --platform "$PLATFORM" "${build_args[@]}" "${outputs[@]}" -t "$IMAGE" "$CONTEXT"
      [[ $PUSH == true ]] && log "pushed $IMAGE ($PLATFORM)"
      [[ -n ${IMAGE_ARCHIVE:-} && $PUSH != true ]] && log "wrote $IMAGE_ARCHIVE"
    else
      log "docker build --platform $PLATFORM -t $IMAGE (base: ${NODE_BASE:-node:$NODE_VERSION from the Dockerfile})"
      docker build --platform "$PLATFORM" "${build_args[@]}" -t "$IMAGE" "$CONTEXT"
      size="$(( $(docker image inspect --format '{{.Size}}' "$IMAGE") / 1000000 )) MB"
    fi
    ;;
  buildah)
    if ! command -v buildah >/dev/null; then
      if [[ $EUID == 0 && ${CI:-} == true ]] && command -v apt-get >/dev/null; then
        log "installing buildah (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
      else
        die "neither a docker engine nor buildah is available; install buildah (apt-get install buildah)"
      fi
    fi
    base_for() { # $1: arch; prints the base image for it, assembling it when needed
      local arch=$1 base node_bin have
      if [[ -n ${NODE_BASE:-} ]]; then echo "$NODE_BASE"; return; fi
      if [[ $arch != "$(host_arch)" ]]; then
        die "PLATFORM linux/$arch: the base is assembled from this machine's libraries, which are $(host_arch); set NODE_BASE to a linux/$arch (or multi-platform) image with node $NODE_VERSION, e.g. docker.io/library/node:$NODE_VERSION-trixie-slim, or use ENGINE=docker (buildx)"
      fi
      base=localhost/egress-node-base:$NODE_VERSION
      have=$(buildah_ inspect --type image --format '{{index .ImageAnnotations "org.opencontainers.image.version"}}{{index .Docker.Config.Labels "org.opencontainers.image.version"}}' "$base" 2>/dev/null || true)
      if [[ $have != *"$NODE_VERSION"* ]]; then
        node_bin=$(bash scripts/fetch-node.sh "$NODE_VERSION" "$arch") || die "could not fetch Node $NODE_VERSION for $arch"
        log "assembling $base from the official Node $NODE_VERSION binary (npm: node-linux-${arch/amd64/x64})" >&2
        NODE_BIN=$node_bin bash scripts/assemble-base.sh "$base" >&2
      else
        log "reusing $base (node $NODE_VERSION)" >&2
      fi
      echo "$base"
    }
    previous=$(buildah_ inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
    dangling_before=$(buildah_ images --quiet --noheading --filter dangling=true 2>/dev/null | sort -u)
    if [[ ${#platforms[@]} -eq 1 ]]; then
      base=$(base_for "${platforms[0]#linux/}")
      log "buildah bud --platform ${platforms[0]} -t $IMAGE (base: $base)"
      buildah_ bud --isolation chroot --quiet --platform "${platforms[0]}" "${build_args[@]}" \
        --build-arg "NODE_BASE=$base" -f "$CONTEXT/Dockerfile" -t "$IMAGE" "$CONTEXT" >/dev/null
      current=$(buildah_ inspect --type image --format '{{.FromImageID}}' "$IMAGE")
    else
      # One image per platform, gathered in a manifest list named IMAGE.
      buildah_ manifest rm "$IMAGE" >/dev/null 2>&1 || true
      buildah_ manifest create "$IMAGE" >/dev/null
      for p in "${platforms[@]}"; do
        base=$(base_for "${p#linux/}")
        log "buildah bud --platform $p --manifest $IMAGE (base: $base)"
        buildah_ bud --isolation chroot --quiet --platform "$p" "${build_args[@]}" \
          --build-arg "NODE_BASE=$base" -f "$CONTEXT/Dockerfile" --manifest "$IMAGE" "$CONTEXT" >/dev/null
      done
      current=""
      previous=""
    fi
    # A rebuild leaves the last image untagged, and stages can leave untagged images; vfs keeps
    # full copies, so drop those (and only those: images that were dangling before stay).
    dangling_after=$(buildah_ images --quiet --noheading --filter dangling=true 2>/dev/null | sort -u)
    for id in $(comm -13 <(echo "$dangling_before") <(echo "$dangling_after")); do
      buildah_ rmi "$id" >/dev/null 2>&1 || true
    done
    if [[ -n $previous && $previous != "$current" ]]; then
      buildah_ rmi "$previous" >/dev/null 2>&1 || true
    fi
    if [[ $PUSH == true ]]; then
      if [[ ${#platforms[@]} -eq 1 ]]; then
        buildah_ push --quiet "$IMAGE" "docker://$IMAGE"
      else
        buildah_ manifest push --quiet --all "$IMAGE" "docker://$IMAGE"
      fi
      log "pushed $IMAGE ($PLATFORM)"
    fi
    size=$(buildah_ images --noheading --format '{{.Size}}' "$IMAGE" 2>/dev/null || true)
    if [[ -n ${IMAGE_ARCHIVE:-} ]]; then
      mkdir -p "$(dirname "$IMAGE_ARCHIVE")"
      rm -f "$IMAGE_ARCHIVE"
      if [[ ${#platforms[@]} -eq 1 ]]; then
        buildah_ push --quiet "$IMAGE" "oci-archive:$IMAGE_ARCHIVE:$IMAGE"
      else
        buildah_ manifest push --quiet --all "$IMAGE" "oci-archive:$IMAGE_ARCHIVE:$IMAGE"
      fi
      log "wrote $IMAGE_ARCHIVE"
    fi
    ;;
  *) die "ENGINE must be docker or buildah, not \"$ENGINE\"" ;;
esac
elapsed=$(( $(date +%s) - start ))
log "built $IMAGE with $ENGINE in ${elapsed}s (${size:-size unknown})"
