#!/usr/bin/env bash
# Builds kmsd's default container image (the "static" stage of the
# Containerfile) from a kmsd binary built elsewhere, without pulling any
# base image, and writes it as a docker-archive:
#
#   CGO_ENABLED=0 go build -o kmsd ./cmd/kmsd
#   container/build-offline.sh ./kmsd kmsd.tar [TAG]
#   podman load -i kmsd.tar          # or: docker load -i kmsd.tar
#
# How: the Containerfile's build stage is replaced by a local folder laid
# out by container/rootfs.sh (buildah's --build-context), so every
# instruction of the image's own stage (user, environment, volume, port,
# health check, entrypoint) comes from the Containerfile itself. buildah
# runs with the vfs storage driver and chroot isolation in private
# storage folders, which work where no container runtime does. Run as root
# (the data folder's owner is set to the image's user).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
archive=$2
tag=${3:-localhost/kmsd:offline}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/rootfs.sh" "$bin" "$work/ctx/out"
chown 65532:65532 "$work/ctx/out/volume/data"

b=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
"${b[@]}" build --quiet --isolation chroot --format docker --target static \
  --build-context build="$work/ctx" -t "$tag" -f "$here/../Containerfile" "$here" >/dev/null
rm -f "$archive"
"${b[@]}" push --quiet "$tag" "docker-archive:$archive:$tag" >/dev/null
# buildah's vfs layers are read-only copies: make them removable.
chmod -R u+w "$work" 2>/dev/null || true
echo "$archive"
