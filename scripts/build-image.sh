#!/usr/bin/env bash
# Builds the proxy image from the repository's Dockerfile: with docker when an engine answers,
# else with buildah (vfs storage, chroot isolation) on a base assembled from this machine.
#
#   scripts/build-image.sh            (or: npm run image)
#
# Environment:
#   IMAGE          tag to build (default localhost/cdk8s-egress-proxy:dev)
#   ENGINE         docker | buildah (default: docker if `docker info` succeeds, else buildah)
#   NODE_BASE      runtime base image; default: docker uses the Dockerfile's official Node image,
#                  buildah assembles localhost/egress-node-base:<major> (scripts/assemble-base.sh)
#   IMAGE_ARCHIVE  also write the image to this OCI archive (e.g. .image/proxy.oci.tar)
#   STORAGE_DRIVER, BUILDAH_ROOT, BUILDAH_RUNROOT   as in scripts/assemble-base.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE=${IMAGE:-localhost/cdk8s-egress-proxy:dev}
BUNDLE=assets/proxy/main/index.js
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

log() { echo "build-image: $*"; }
die() { echo "build-image: $*" >&2; exit 1; }

buildah_() {
  local args=(--storage-driver "$STORAGE_DRIVER")
  [[ -n ${BUILDAH_ROOT:-} ]] && args+=(--root "$BUILDAH_ROOT")
  [[ -n ${BUILDAH_RUNROOT:-} ]] && args+=(--runroot "$BUILDAH_RUNROOT")
  buildah "${args[@]}" "$@"
}

# The image ships the bundle from the working tree (the one the tests ran), so make sure it
# exists and is not older than the proxy sources.
if [[ ! -s $BUNDLE ]] || [[ -n $(find src -name '*.ts' -newer "$BUNDLE" -print -quit) ]]; then
  log "bundling the proxy ($BUNDLE missing or older than src/)"
  npm run --silent bundle
fi
[[ -s $BUNDLE ]] || die "$BUNDLE was not produced; run 'npm run bundle' and read its errors"

ENGINE=${ENGINE:-}
if [[ -z $ENGINE ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=buildah; fi
fi

VERSION=${VERSION:-$(node -p "require('./package.json').version")}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
CREATED=${CREATED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
build_args=(--build-arg BUNDLE_FROM=prebuilt --build-arg "VERSION=$VERSION"
  --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED")

start=$(date +%s)
case $ENGINE in
  docker)
    [[ -n ${NODE_BASE:-} ]] && build_args+=(--build-arg "NODE_BASE=$NODE_BASE")
    log "docker build -t $IMAGE (base: ${NODE_BASE:-the Dockerfile default})"
    docker build "${build_args[@]}" -t "$IMAGE" .
    size="$(( $(docker image inspect --format '{{.Size}}' "$IMAGE") / 1000000 )) MB"
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
    if [[ -z ${NODE_BASE:-} ]]; then
      node_version=$(node -p 'process.versions.node')
      NODE_BASE=localhost/egress-node-base:${node_version%%.*}
      have=$(buildah_ inspect --type image --format '{{index .ImageAnnotations "org.opencontainers.image.version"}}{{index .Docker.Config.Labels "org.opencontainers.image.version"}}' "$NODE_BASE" 2>/dev/null || true)
      if [[ $have != *"$node_version"* ]]; then
        log "assembling $NODE_BASE from this machine's node $node_version"
        bash scripts/assemble-base.sh "$NODE_BASE"
      else
        log "reusing $NODE_BASE (node $node_version)"
      fi
    fi
    previous=$(buildah_ inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
    dangling_before=$(buildah_ images --quiet --noheading --filter dangling=true 2>/dev/null | sort -u)
    log "buildah bud -t $IMAGE (base: $NODE_BASE)"
    buildah_ bud --isolation chroot --quiet "${build_args[@]}" --build-arg "NODE_BASE=$NODE_BASE" \
      -f Dockerfile -t "$IMAGE" . >/dev/null
    current=$(buildah_ inspect --type image --format '{{.FromImageID}}' "$IMAGE")
    # A rebuild leaves the last image untagged, and stages can leave untagged images; vfs keeps
    # full copies, so drop those (and only those: images that were dangling before stay).
    dangling_after=$(buildah_ images --quiet --noheading --filter dangling=true 2>/dev/null | sort -u)
    for id in $(comm -13 <(echo "$dangling_before") <(echo "$dangling_after")); do
      buildah_ rmi "$id" >/dev/null 2>&1 || true
    done
    if [[ -n $previous && $previous != "$current" ]]; then
      buildah_ rmi "$previous" >/dev/null 2>&1 || true
    fi
    size=$(buildah_ images --noheading --format '{{.Size}}' "$IMAGE" 2>/dev/null || true)
    if [[ -n ${IMAGE_ARCHIVE:-} ]]; then
      mkdir -p "$(dirname "$IMAGE_ARCHIVE")"
      rm -f "$IMAGE_ARCHIVE"
      buildah_ push --quiet "$IMAGE" "oci-archive:$IMAGE_ARCHIVE:$IMAGE"
      log "wrote $IMAGE_ARCHIVE"
    fi
    ;;
  *) die "ENGINE must be docker or buildah, not \"$ENGINE\"" ;;
esac
elapsed=$(( $(date +%s) - start ))
log "built $IMAGE with $ENGINE in ${elapsed}s (${size:-size unknown})"
