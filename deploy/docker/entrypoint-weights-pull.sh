#!/bin/sh
# The weights-pull role (an init container into a shared emptyDir, or the
# one-off Job that fills the bucket): infergate-weights pull SOURCE DEST.
#
#   WEIGHTS_SOURCE          hf://ORG/NAME[@REV], gs://BUCKET/PREFIX, s3://..., http(s)://... (required)
#   WEIGHTS_DEST            a folder, or a bucket location (default /models/gemma)
#   WEIGHTS_CONNECTIONS     parallel range requests (default 8)
#   WEIGHTS_ARGS            more flags, word-split (--hf-endpoint, --s3-endpoint, ...)
#   HF_TOKEN, GCS_TOKEN, AWS_*: credentials, as infergate-weights reads them
#   INFERGATE_BIN           where the programs are (default /usr/local/bin)
# A second pull into the same folder skips the files it already holds (the
# pull's manifest), and an interrupted one resumes (docs/weights.md).
set -eu
bin=${INFERGATE_BIN:-/usr/local/bin}
: "${WEIGHTS_SOURCE:?WEIGHTS_SOURCE is required (hf://google/gemma-3-27b-it, gs://BUCKET/PREFIX, ...)}"
dest=${WEIGHTS_DEST:-/models/gemma}
# shellcheck disable=SC2086
exec "$bin/infergate-weights" pull "$WEIGHTS_SOURCE" "$dest" --connections "${WEIGHTS_CONNECTIONS:-8}" \
	--no-progress ${WEIGHTS_ARGS:-}
