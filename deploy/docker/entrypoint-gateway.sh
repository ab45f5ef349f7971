#!/bin/sh
# The gateway role: infergate with the configuration a ConfigMap mounts.
#
#   INFERGATE_CONFIG        the YAML file (default /etc/infergate/gateway.yaml)
#   INFERGATE_LOG_LEVEL     debug|info|warn|error (default info)
#   INFERGATE_LOG_JSON      1: log lines as JSON
#   INFERGATE_ACCESS_LOG    a file, or - for stdout (default: the configuration's)
#   INFERGATE_RELOAD_POLL_SECONDS  check the file this often and send SIGHUP when
#                           its content changed (Kubernetes swaps ConfigMap files
#                           without a signal); 0 = never (default 10)
#   INFERGATE_BIN           where the programs are (default /usr/local/bin)
# The configuration is checked first (--check): a bad one stops the pod before
# it listens. SIGTERM and SIGINT go to the gateway, which drains and exits.
set -eu
bin=${INFERGATE_BIN:-/usr/local/bin}
cfg=${INFERGATE_CONFIG:-/etc/infergate/gateway.yaml}
poll=${INFERGATE_RELOAD_POLL_SECONDS:-10}
set -- -c "$cfg" --log-level "${INFERGATE_LOG_LEVEL:-info}"
[ "${INFERGATE_LOG_JSON:-0}" = 1 ] && set -- "$@" --log-json
[ -n "${INFERGATE_ACCESS_LOG:-}" ] && set -- "$@" --access-log "$INFERGATE_ACCESS_LOG"
"$bin/infergate" --check -c "$cfg"
if [ "$poll" = 0 ]; then
	exec "$bin/infergate" "$@"
fi
"$bin/infergate" "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM INT
sum() { cksum <"$cfg" 2>/dev/null || echo missing; }
last=$(sum)
while kill -0 "$pid" 2>/dev/null; do
	sleep "$poll" &
	wait $! 2>/dev/null || true
	now=$(sum)
	if [ "$now" != "$last" ]; then
		last=$now
		echo "entrypoint-gateway: $cfg changed, reloading" >&2
		kill -HUP "$pid" 2>/dev/null || true
	fi
done
rc=0
wait "$pid" || rc=$?
exit "$rc"
