#!/bin/sh
# The model-server role: infergate-server, vLLM's flags where they mean the same.
#
#   MODEL                   folder of the weights (an init container's pull, or a
#                           FUSE mount), or a URL (hf://, gs://, s3://, http(s)://)
#                           pulled through CACHE_DIR (default /models/gemma)
#   SERVED_MODEL_NAME       the model's name in the API (default: MODEL)
#   HOST, PORT              listen address (default 0.0.0.0:8000)
#   CACHE_DIR               weights cache for a URL model (default /cache)
#   MAX_NUM_SEQS, MAX_MODEL_LEN, KV_CACHE_MEMORY, THREADS   engine sizes (defaults: the server's)
#   SHUTDOWN_GRACE          SIGTERM: requests in flight get this long (default 30s)
#   INFERGATE_SERVER_ARGS   more flags, word-split
#   INFERGATE_BIN           where the programs are (default /usr/local/bin)
set -eu
bin=${INFERGATE_BIN:-/usr/local/bin}
model=${MODEL:-/models/gemma}
set -- --model "$model" --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
	--shutdown-grace "${SHUTDOWN_GRACE:-30s}"
[ -n "${SERVED_MODEL_NAME:-}" ] && set -- "$@" --served-model-name "$SERVED_MODEL_NAME"
case "$model" in *://*) set -- "$@" --cache-dir "${CACHE_DIR:-/cache}" ;; esac
[ -n "${MAX_NUM_SEQS:-}" ] && set -- "$@" --max-num-seqs "$MAX_NUM_SEQS"
[ -n "${MAX_MODEL_LEN:-}" ] && set -- "$@" --max-model-len "$MAX_MODEL_LEN"
[ -n "${KV_CACHE_MEMORY:-}" ] && set -- "$@" --kv-cache-memory "$KV_CACHE_MEMORY"
[ -n "${THREADS:-}" ] && set -- "$@" --threads "$THREADS"
# shellcheck disable=SC2086
exec "$bin/infergate-server" "$@" ${INFERGATE_SERVER_ARGS:-}
