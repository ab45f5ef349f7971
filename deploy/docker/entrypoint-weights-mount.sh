#!/bin/sh
# The weights-mount role: a read-only FUSE mount of the bucket, files fetched
# on first read into a local cache (the reference system's Cloud Storage FUSE
# with its file cache). Runs in the foreground until SIGTERM, then unmounts.
#
#   WEIGHTS_SOURCE          gs://BUCKET/PREFIX, s3://..., http(s)://..., hf://... (required)
#   WEIGHTS_MOUNT           the mount point (default /models/gemma)
#   WEIGHTS_CACHE_DIR       the file cache (default /cache)
#   WEIGHTS_CACHE_CAPACITY  evict least-recently-used files beyond this ("100GiB"; default unlimited)
#   WEIGHTS_ARGS            more flags, word-split
#   INFERGATE_BIN           where the programs are (default /usr/local/bin)
# Needs /dev/fuse and CAP_SYS_ADMIN in the container; for the mount to reach the
# model server's container it must run with mountPropagation: Bidirectional
# (which Kubernetes allows only to privileged containers). See docs/kubernetes.md.
set -eu
bin=${INFERGATE_BIN:-/usr/local/bin}
: "${WEIGHTS_SOURCE:?WEIGHTS_SOURCE is required (gs://BUCKET/PREFIX, ...)}"
mnt=${WEIGHTS_MOUNT:-/models/gemma}
mkdir -p "$mnt" "${WEIGHTS_CACHE_DIR:-/cache}"
set -- mount "$WEIGHTS_SOURCE" "$mnt" --cache-dir "${WEIGHTS_CACHE_DIR:-/cache}" --foreground
[ -n "${WEIGHTS_CACHE_CAPACITY:-}" ] && set -- "$@" --cache-capacity "$WEIGHTS_CACHE_CAPACITY"
# shellcheck disable=SC2086
exec "$bin/infergate-weights" "$@" ${WEIGHTS_ARGS:-}
