#!/usr/bin/env bash
# Assembles a Node runtime base image for builds where no container registry is reachable,
# committed from scratch with buildah. Two ways:
#   host (default)  this machine's `node`, the libraries `ldd` lists, Debian's Mozilla CA roots
#                   and passwd/group entries for the non-root user. Seconds, no network.
#   --debootstrap   a Debian trixie minbase with nodejs and ca-certificates (Node 20 from Debian;
#                   bookworm only has 18) plus the non-root user. About a minute, Debian mirror.
#
#   scripts/assemble-base.sh [--debootstrap] [TAG]
#       default TAG: localhost/egress-node-base:<node major>, or :<major>-trixie with --debootstrap
#
# Environment:
#   NODE_BIN          host: node binary to copy (default: `command -v node`)
#   STRIP_NODE        host: 1 (default) drops debug sections from the copy (a few MB, never
#                     needed at run time); 0 keeps the binary byte-for-byte
#   CA_BUNDLE         host: PEM bundle to ship as /etc/ssl/certs/ca-certificates.crt; default:
#                     the Mozilla roots of Debian's ca-certificates package, without the machine's
#                     local additions (a build host's own or intercepting CAs must not ship)
#   DEBIAN_MIRROR     debootstrap: mirror (default http://deb.debian.org/debian)
#   NONROOT_UID       uid/gid of the runtime user (default 65532, distroless' `nonroot`)
#   STORAGE_DRIVER    buildah storage driver (default vfs: works without overlay or fuse)
#   BUILDAH_ROOT      buildah --root (default: buildah's own, /var/lib/containers/storage as root)
#   BUILDAH_RUNROOT   buildah --runroot (default: buildah's own)
set -euo pipefail

METHOD=host
if [[ ${1:-} == --debootstrap ]]; then
  METHOD=debootstrap
  shift
fi
TAG_ARG=${1:-}
NONROOT_UID=${NONROOT_UID:-65532}
STRIP_NODE=${STRIP_NODE:-1}
MOZILLA_CAS=/usr/share/ca-certificates/mozilla
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

die() { echo "assemble-base: $*" >&2; exit 2; }

buildah_() {
  local args=(--storage-driver "$STORAGE_DRIVER")
  [[ -n ${BUILDAH_ROOT:-} ]] && args+=(--root "$BUILDAH_ROOT")
  [[ -n ${BUILDAH_RUNROOT:-} ]] && args+=(--runroot "$BUILDAH_RUNROOT")
  buildah "${args[@]}" "$@"
}

command -v buildah >/dev/null || die "buildah is not installed"

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/egress-node-base.XXXXXX")
ctr=""
cleanup() {
  if [[ -n $ctr ]]; then buildah_ rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$rootfs"
}
trap cleanup EXIT

# Host method: copy node and exactly what the dynamic loader needs into an empty root.
populate_from_host() {
  local node_bin lib crt
  node_bin=${NODE_BIN:-$(command -v node || true)}
  [[ -x $node_bin ]] || die "no node binary (set NODE_BIN)"
  node_bin=$(readlink -f "$node_bin")
  if [[ -n ${CA_BUNDLE:-} ]]; then
    [[ -r $CA_BUNDLE ]] || die "CA_BUNDLE $CA_BUNDLE is not readable"
  elif ! compgen -G "$MOZILLA_CAS/*.crt" >/dev/null; then
    die "no $MOZILLA_CAS/*.crt (apt-get install ca-certificates) and no CA_BUNDLE given"
  fi

  # The binary under the path the official images use, so `node` resolves the same way in both.
  install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  if [[ $STRIP_NODE == 1 ]] && command -v strip >/dev/null; then
    strip --strip-debug "$rootfs/usr/local/bin/node"
  fi

  # Every library the loader will map, at the path ldd resolved it from (content of the final
  # symlink target, so the image holds files, not links dangling into the host).
  libs=$(ldd "$node_bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  [[ -n $libs ]] || die "ldd listed no libraries for $node_bin (static binary?)"
  for lib in $libs; do
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done

  mkdir -p "$rootfs/etc/ssl/certs"
  if [[ -n ${CA_BUNDLE:-} ]]; then
    install -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  else
    for crt in "$MOZILLA_CAS"/*.crt; do cat "$crt"; echo; done | sed '/^$/d' > "$rootfs/etc/ssl/certs/ca-certificates.crt"
    chmod 0644 "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi

  # Only the users the image needs; nothing from the host's databases leaks in.
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\n' > "$rootfs/etc/group"
  # glibc's built-in default asks DNS before /etc/hosts; files first is what every distro ships.
  printf 'passwd: files\ngroup:  files\nhosts:  files dns\n' > "$rootfs/etc/nsswitch.conf"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
  chmod 1777 "$rootfs/tmp"
  details="$(wc -w <<<"$libs") libraries"
}

# Debootstrap method: a real (small) Debian with Debian's own Node build.
populate_from_debootstrap() {
  [[ $EUID == 0 ]] || die "--debootstrap needs root"
  if ! command -v debootstrap >/dev/null; then
    if [[ ${CI:-} != true ]] || ! command -v apt-get >/dev/null; then
      die "debootstrap is not installed (apt-get install debootstrap)"
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  debootstrap --variant=minbase --include=nodejs,ca-certificates trixie "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  # Package caches and logs are build leftovers, not runtime.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs/debootstrap"
  details="Debian trixie minbase"
}

add_nonroot_user() {
  printf 'nonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' "$NONROOT_UID" "$NONROOT_UID" >> "$rootfs/etc/passwd"
  printf 'nonroot:x:%s:\n' "$NONROOT_UID" >> "$rootfs/etc/group"
  mkdir -p "$rootfs/home/nonroot"
  chown "$NONROOT_UID:$NONROOT_UID" "$rootfs/home/nonroot"
}

details=""
libs=""
"populate_from_$METHOD"
add_nonroot_user

# Prove the root runs node with only what was gathered before committing it (chroot needs root).
if [[ $EUID == 0 ]]; then
  NODE_VERSION=$(chroot "$rootfs" node -p 'process.versions.node' 2>&1) \
    || die "the assembled node does not start in its own root: $NODE_VERSION"
else
  NODE_VERSION=$("${NODE_BIN:-node}" -p 'process.versions.node')
fi
cas=$(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" || true)
[[ $cas -gt 0 ]] || die "the CA bundle holds no certificates"
suffix=""
[[ $METHOD == debootstrap ]] && suffix=-trixie
TAG=${TAG_ARG:-localhost/egress-node-base:${NODE_VERSION%%.*}$suffix}

ctr=$(buildah_ from scratch)
buildah_ copy --quiet "$ctr" "$rootfs" / >/dev/null
buildah_ config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$NODE_VERSION" \
  --label org.opencontainers.image.title=egress-node-base \
  --label org.opencontainers.image.description="Node.js $NODE_VERSION runtime ($METHOD): node, its libraries, CA roots, a non-root user" \
  --label org.opencontainers.image.version="$NODE_VERSION" \
  --cmd '["node"]' \
  "$ctr"
buildah_ commit --quiet --rm "$ctr" "$TAG" >/dev/null
ctr=""
echo "assemble-base: $TAG (node $NODE_VERSION, $details, $cas CA certificates, $(du -sh "$rootfs" | cut -f1))"
