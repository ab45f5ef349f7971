# bench/proxy/backend.sh — sourced: backend_start DIR PORT starts nginx (one
# worker, keep-alive) answering every request with a small fixed chat
# completion JSON on 127.0.0.1:PORT, its files in DIR; prints its pid.
# haproxy_conf writes the HAProxy peer's configuration (run.sh, instructions_per_request.sh).
backend_start() {
	cat >"$1/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $1;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$2;
		location / { default_type application/json; return 200 '{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gemma","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}'; }
	}
}
NGINX
	"$(command -v nginx || echo /usr/sbin/nginx)" -c "$1/nginx.conf" -e "$1/error.log" >/dev/null 2>&1 &
	echo $!
}

# haproxy_conf FILE PORT BACKPORT: HAProxy as the peer of the plaintext runs
# (one thread, round robin, keep-alive to the backend), listening on PORT.
haproxy_conf() {
	cat >"$1" <<HAP
global
	nbthread 1
	maxconn 4000
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 300s
	option http-keep-alive
	http-reuse always
frontend fe
	bind 127.0.0.1:$2
	default_backend be
backend be
	balance roundrobin
	server b1 127.0.0.1:$3
HAP
}
