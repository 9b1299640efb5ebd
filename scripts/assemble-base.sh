#!/usr/bin/env bash
# Assembles a minimal Node runtime image from this machine, for builds where no container
# registry is reachable: the `node` binary, the shared libraries `ldd` lists, the CA bundle and
# passwd/group entries for the non-root user, committed from scratch with buildah. No network.
#
#   scripts/assemble-base.sh [TAG]          default TAG: localhost/egress-node-base:<node major>
#
# Environment:
#   NODE_BIN          node binary to copy (default: `command -v node`)
#   STRIP_NODE        1 (default): drop debug sections from the copy (a few MB, never needed
#                     at run time); 0 keeps the binary byte-for-byte
#   STORAGE_DRIVER    buildah storage driver (default vfs: works without overlay or fuse)
#   BUILDAH_ROOT      buildah --root (default: buildah's own, /var/lib/containers/storage as root)
#   BUILDAH_RUNROOT   buildah --runroot (default: buildah's own)
#   NONROOT_UID       uid/gid of the runtime user (default 65532, distroless' `nonroot`)
#   CA_BUNDLE         PEM bundle to ship as /etc/ssl/certs/ca-certificates.crt; default: the
#                     Mozilla roots of Debian's ca-certificates package, without the machine's
#                     local additions (a build host's own or intercepting CAs must not ship)
set -euo pipefail

NODE_BIN=${NODE_BIN:-$(command -v node || true)}
[[ -x $NODE_BIN ]] || { echo "assemble-base: no node binary (set NODE_BIN)" >&2; exit 2; }
NODE_BIN=$(readlink -f "$NODE_BIN")
NODE_VERSION=$("$NODE_BIN" -p 'process.versions.node')
TAG=${1:-localhost/egress-node-base:${NODE_VERSION%%.*}}
STRIP_NODE=${STRIP_NODE:-1}
NONROOT_UID=${NONROOT_UID:-65532}
MOZILLA_CAS=/usr/share/ca-certificates/mozilla
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

buildah_() {
  local args=(--storage-driver "$STORAGE_DRIVER")
  [[ -n ${BUILDAH_ROOT:-} ]] && args+=(--root "$BUILDAH_ROOT")
  [[ -n ${BUILDAH_RUNROOT:-} ]] && args+=(--runroot "$BUILDAH_RUNROOT")
  buildah "${args[@]}" "$@"
}

command -v buildah >/dev/null || { echo "assemble-base: buildah is not installed" >&2; exit 2; }
if [[ -n ${CA_BUNDLE:-} ]]; then
  [[ -r $CA_BUNDLE ]] || { echo "assemble-base: CA_BUNDLE $CA_BUNDLE is not readable" >&2; exit 2; }
elif ! compgen -G "$MOZILLA_CAS/*.crt" >/dev/null; then
  echo "assemble-base: no $MOZILLA_CAS/*.crt (apt-get install ca-certificates) and no CA_BUNDLE given" >&2
  exit 2
fi

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/egress-node-base.XXXXXX")
ctr=""
cleanup() {
  [[ -n $ctr ]] && buildah_ rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$rootfs"
}
trap cleanup EXIT

# The binary under the path the official images use, so `node` resolves the same way in both.
install -D -m 0755 "$NODE_BIN" "$rootfs/usr/local/bin/node"
if [[ $STRIP_NODE == 1 ]] && command -v strip >/dev/null; then
  strip --strip-debug "$rootfs/usr/local/bin/node"
fi

# Every library the dynamic loader will map, at the path ldd resolved it from (content of the
# final symlink target, so the image holds files, not dangling links into the host).
libs=$(ldd "$NODE_BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
[[ -n $libs ]] || { echo "assemble-base: ldd listed no libraries for $NODE_BIN (static binary?)" >&2; exit 2; }
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
cas=$(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" || true)
[[ $cas -gt 0 ]] || { echo "assemble-base: the CA bundle holds no certificates" >&2; exit 2; }

# Only the users the image needs; nothing from the host's databases leaks in.
mkdir -p "$rootfs/etc" "$rootfs/home/nonroot" "$rootfs/tmp"
cat > "$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:${NONROOT_UID}:${NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin
EOF
cat > "$rootfs/etc/group" <<EOF
root:x:0:
nonroot:x:${NONROOT_UID}:
EOF
# glibc's built-in default asks DNS before /etc/hosts; files first is what every distro ships.
cat > "$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group:  files
hosts:  files dns
EOF
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
chown "$NONROOT_UID:$NONROOT_UID" "$rootfs/home/nonroot"
chmod 1777 "$rootfs/tmp"

# Prove the copy runs with only what was gathered before committing it (chroot needs root).
if [[ $EUID == 0 ]] && ! out=$(chroot "$rootfs" /usr/local/bin/node -e 'process.stdout.write(process.version)' 2>&1); then
  echo "assemble-base: the assembled node does not start in its own root: $out" >&2
  exit 1
fi

ctr=$(buildah_ from scratch)
buildah_ copy --quiet "$ctr" "$rootfs" / >/dev/null
buildah_ config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$NODE_VERSION" \
  --label org.opencontainers.image.title=egress-node-base \
  --label org.opencontainers.image.description="Node.js $NODE_VERSION runtime assembled from the build machine: node, its libraries, CA bundle" \
  --label org.opencontainers.image.version="$NODE_VERSION" \
  --cmd '["node"]' \
  "$ctr"
buildah_ commit --quiet --rm "$ctr" "$TAG" >/dev/null
ctr=""
size=$(du -sh "$rootfs" | cut -f1)
echo "assemble-base: $TAG (node $NODE_VERSION, $(wc -w <<<"$libs") libraries, $cas CA certificates, $size)"
