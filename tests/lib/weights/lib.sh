# lib.sh — shared helpers of the weights integration tests (sourced).
# Gives: a temp dir $T, a port $PORT, nginx_start/nginx_stop, wait_port, fail,
# check, need_fuse, make_files, hf_repo, and a trap that kills what the test started.
set -u
IG_TOP=${IG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
IG_BIN=${IG_BIN:-$IG_TOP/build/san/bin}
W="$IG_BIN/infergate-weights"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
T=$(mktemp -d /tmp/ig-weights.XXXXXX)
# A port from the test's name, so tests running side by side do not clash.
PORT=$(( 10000 + $(printf '%s' "$(basename "$0")" | cksum | cut -d' ' -f1) % 20000 ))
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for m in "$T"/mnt*; do [ -d "$m" ] && mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null; done
	sleep 0.2
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*"; [ -f "$T/ng/error.log" ] && tail -5 "$T/ng/error.log"; exit 1; }
check() { echo "ok: $*"; }

# need_fuse: a mount test's preconditions; skips the test (exit 0, with a
# message) without FUSE or python3, and sets RC, the read checker.
need_fuse() {
	if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
		echo "SKIP: FUSE is not available here (/dev/fuse or fusermount3 missing)"
		exit 0
	fi
	command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 0; }
	RC="$IG_TOP/tests/lib/weights/readcheck.py"
}

# wait_port PORT [ADDR]: up to 10 s for a listener.
wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

NGINX_PID=""
nginx_start() {
	mkdir -p "$T/ng"
	sed -e "s#@PORT@#$PORT#g" -e "s#@ROOT@#$T/www#g" -e "s#@PREFIX@#$T/ng#g" \
		"$IG_TOP/tests/lib/weights/nginx.conf.in" >"$T/ng/nginx.conf"
	/usr/sbin/nginx -p "$T/ng" -c "$T/ng/nginx.conf" 2>>"$T/ng/stderr.log" &
	NGINX_PID=$!
	PIDS="$PIDS $NGINX_PID"
	wait_port "$PORT" || fail "nginx did not start: $(cat "$T/ng/stderr.log")"
}
nginx_stop() {
	[ -n "$NGINX_PID" ] && kill -9 "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
	NGINX_PID=""
}

# make_files DIR: a small model-shaped file set (config, tokenizer, two shards, a nested file).
make_files() {
	mkdir -p "$1/sub"
	printf '{"architectures":["Gemma3ForCausalLM"],"hidden_size":640}\n' >"$1/config.json"
	head -c 300000 /dev/urandom >"$1/tokenizer.json"
	head -c 5000000 /dev/urandom >"$1/model-00001-of-00002.safetensors"
	head -c 3333333 /dev/urandom >"$1/model-00002-of-00002.safetensors"
	head -c 1234 /dev/urandom >"$1/sub/extra.bin"
	: >"$1/empty.txt"
}

# hf_repo ORG NAME SRC: lays SRC out as a Hugging Face mirror under $T/www/hf
# (small files under resolve/main, files over 1 MB under lfs/ behind a 302).
hf_repo() {
	org=$1 name=$2 src=$3
	api="$T/www/hf/api/models/$org/$name/revision"
	res="$T/www/hf/$org/$name/resolve/main"
	lfs="$T/www/lfs/$org/$name"
	mkdir -p "$api" "$res" "$lfs"
	{
		printf '{"id":"%s/%s","sha":"0123456789abcdef0123456789abcdef01234567","siblings":[' "$org" "$name"
		first=1
		(cd "$src" && find . -type f | sed 's#^\./##' | sort) | while read -r f; do
			size=$(stat -c %s "$src/$f")
			[ $first = 1 ] || printf ','
			first=0
			if [ "$size" -gt 1000000 ]; then
				sha=$(sha256sum "$src/$f" | cut -d' ' -f1)
				printf '{"rfilename":"%s","size":%s,"lfs":{"sha256":"%s","size":%s}}' "$f" "$size" "$sha" "$size"
				mkdir -p "$(dirname "$lfs/$f")"; cp "$src/$f" "$lfs/$f"
			else
				printf '{"rfilename":"%s","size":%s}' "$f" "$size"
				mkdir -p "$(dirname "$res/$f")"; cp "$src/$f" "$res/$f"
			fi
		done
		printf ']}\n'
	} >"$api/main"
	# Files are read at the commit the listing names, as on the Hub.
	ln -sfn main "$T/www/hf/$org/$name/resolve/0123456789abcdef0123456789abcdef01234567"
}

# same_tree A B: every file of A is byte-identical in B.
same_tree() {
	(cd "$1" && find . -type f | sort) >"$T/list.a"
	(cd "$2" && find . -type f ! -path './.infergate/*' | sort) >"$T/list.b"
	cmp -s "$T/list.a" "$T/list.b" || { diff "$T/list.a" "$T/list.b" | head; return 1; }
	while read -r f; do cmp -s "$1/$f" "$2/$f" || { echo "differs: $f"; return 1; }; done <"$T/list.a"
}
