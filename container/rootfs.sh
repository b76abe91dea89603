#!/bin/sh
# Lays out the files of kmsd's container image around a kmsd binary:
#
#   container/rootfs.sh BINARY OUT
#
# writes OUT/rootfs (the image's root filesystem: /kmsd, /etc/passwd and
# /etc/group naming the unprivileged user 65532 "kmsd", /tmp, and the
# system's CA bundle when the build machine has one) and OUT/volume/data
# (the data folder's mount point, mode 0700: copied with its parent, so
# that the folder itself keeps its mode). The Containerfile runs it in its build
# stage; container/build-offline.sh runs it on a binary built elsewhere, so
# both paths produce the same files.
set -eu
bin=$1
out=$2
rootfs=$out/rootfs

rm -rf "$rootfs" "$out/volume"
mkdir -p "$rootfs/etc" "$rootfs/tmp" "$out/volume/data"
install -m 0755 "$bin" "$rootfs/kmsd"
chmod 1777 "$rootfs/tmp"
# kmsd refuses a data folder that others can read.
chmod 0700 "$out/volume/data"
printf 'root:x:0:0:root:/:/sbin/nologin\nkmsd:x:65532:65532:kmsd:/data:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nkmsd:x:65532:\n' >"$rootfs/etc/group"
# For TLS to a PostgreSQL server with sslmode=verify-full.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$rootfs/etc/ssl/certs"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi
