#!/bin/sh
# debian_kubectl.sh — prints the path of Debian 12's kubectl (package
# kubernetes-client: kubectl 1.20, kustomize v2.0.3), unpacked into a cache
# folder without installing it, so the manifests can be rendered with it beside
# a newer kubectl on PATH (the two packages conflict). Fetches the package with
# `apt-get download` when the cache lacks it (and `apt-get update` once when
# the download fails and we are root). Not an installer: nothing outside the
# cache folder is touched.
#   sh tests/lib/k8s/debian_kubectl.sh [CACHE_DIR]    (default build/debian-kubectl)
# Exit 0 with the path on stdout; exit 2 with the reason on stderr when the
# package cannot be had here (no apt-get, no network, no such package).
set -u
top=$(cd "$(dirname "$0")/../../.." && pwd)
cache=${1:-$top/build/debian-kubectl}
bin="$cache/root/usr/bin/kubectl"
if [ -x "$bin" ] && "$bin" version --client >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "no apt-get here: cannot fetch Debian's kubernetes-client" >&2; exit 2; }
command -v dpkg >/dev/null 2>&1 || { echo "no dpkg here: cannot unpack Debian's kubernetes-client" >&2; exit 2; }
mkdir -p "$cache" || { echo "cannot create $cache" >&2; exit 2; }
work=$(mktemp -d "$cache/fetch.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
download() { (cd "$work" && timeout 180 apt-get download -q kubernetes-client >"$work/apt.log" 2>&1); }
if ! download; then
	if [ "$(id -u)" = 0 ]; then
		timeout 300 apt-get update -q >"$work/update.log" 2>&1
		download
	fi
fi
deb=$(ls "$work"/kubernetes-client_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
	why=$(grep -E '^(E|W):' "$work/apt.log" | head -n 2 | tr '\n' ' ')
	echo "apt-get download kubernetes-client failed: ${why:-$(tail -n 1 "$work/apt.log")}" >&2
	exit 2
fi
dpkg -x "$deb" "$work/root" || { echo "dpkg -x $deb failed" >&2; exit 2; }
[ -x "$work/root/usr/bin/kubectl" ] || { echo "$(basename "$deb") holds no usr/bin/kubectl" >&2; exit 2; }
# Several runs may fetch at once: the first complete unpacking wins.
if [ ! -x "$bin" ]; then
	rm -rf "$cache/root"
	mv "$work/root" "$cache/root" 2>/dev/null || true
	cp "$deb" "$cache/" 2>/dev/null || true
fi
"$bin" version --client >/dev/null 2>&1 || { echo "$bin does not run" >&2; exit 2; }
echo "$bin"
