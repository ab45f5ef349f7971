/* test_gateway_core.c — the two core changes the gateway's hot path relies on:
 * ev_set with an unchanged interest mask (only the callback changes) still
 * delivers events, to the new callback; and an HTTP client request reusing a
 * pooled keep-alive connection, which now starts with read interest only,
 * still sends a body far larger than the socket buffer (EV_WRITE asked on
 * EAGAIN) — twice on one connection; and a request body is sent from the
 * caller's memory, never copied per attempt, yet every attempt (the caller's
 * retries, the client's own retry on a stale pooled connection) sends the
 * same bytes: over plaintext (writev), batched I/O (one sendmsg) and TLS. */
#include "core/ev.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/tls.h"
#include "core/util.h"
#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int calls_a, calls_b;
static void fn_a(ev_loop *l, int fd, int mask, void *arg)
{
	calls_a++;
	char c;
	(void)!read(fd, &c, 1);
}
static void fn_b(ev_loop *l, int fd, int mask, void *arg)
{
	calls_b++;
	char c;
	(void)!read(fd, &c, 1);
}

static void test_ev_set_same_mask(void)
{
	ev_loop *l = ev_new();
	int p[2];
	T_CHECK(pipe(p) == 0);
	T_EQ_INT(ev_set(l, p[0], EV_READ, fn_a, NULL), 0);
	T_EQ_INT(ev_set(l, p[0], EV_READ, fn_b, NULL), 0); /* same mask: no poller call, new callback */
	T_EQ_INT(write(p[1], "x", 1), 1);
	ev_run_once(l, 1000);
	T_EQ_INT(calls_a, 0);
	T_EQ_INT(calls_b, 1);
	T_EQ_INT(ev_mask(l, p[0]), EV_READ);
	T_EQ_INT(ev_set(l, p[0], EV_NONE, fn_a, NULL), 0);
	T_EQ_INT(write(p[1], "y", 1), 1);
	ev_run_once(l, 50);
	T_EQ_INT(calls_a + calls_b, 1); /* silenced */
	T_EQ_INT(ev_set(l, p[0], EV_READ, fn_a, NULL), 0);
	ev_run_once(l, 1000);
	T_EQ_INT(calls_a, 1);
	ev_del(l, p[0]);
	close(p[0]);
	close(p[1]);
	ev_free(l);
}

/* ---- a server that answers the size of the body it got */
static void handler(httpd_req *r, void *arg)
{
	size_t n;
	httpd_body(r, &n);
	char out[32];
	int k = snprintf(out, sizeof(out), "%zu", n);
	httpd_respond(r, 200, "text/plain", NULL, out, (size_t)k);
}

typedef struct result {
	int done, err, status;
	char body[32];
} result;
static void on_body(hc_req *q, const char *d, size_t n, void *arg)
{
	result *r = arg;
	size_t have = strlen(r->body);
	if (have + n < sizeof(r->body)) memcpy(r->body + have, d, n), r->body[have + n] = 0;
}
static void on_done(hc_req *q, int err, void *arg)
{
	result *r = arg;
	r->done = 1;
	r->err = err;
	r->status = hc_status(q);
}

static void test_reused_connection_big_body(void)
{
	ev_loop *l = ev_new();
	httpd_limits lim = {.max_body_bytes = 64 << 20};
	httpd *s = httpd_new(l, &lim, handler, NULL);
	char err[128];
	T_EQ_INT(httpd_listen(s, "127.0.0.1:0", NULL, err, sizeof(err)), 0);
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", httpd_port(s, 0));
	hc_pool *p = hc_pool_new(l, hp, 4, err, sizeof(err));
	size_t big = 8u << 20;
	char *body = malloc(big);
	memset(body, 'x', big);
	hc_callbacks cb = {NULL, on_body, on_done};
	for (int i = 0; i < 3; i++) {
		result r = {0};
		size_t len = i == 1 ? 10 : big;
		T_CHECK(hc_request(p, "POST", "/", NULL, body, len, &cb, &r, NULL) != NULL);
		for (int k = 0; k < 2000 && !r.done; k++) ev_run_once(l, 10);
		T_EQ_INT(r.done, 1);
		T_EQ_INT(r.err, HC_OK);
		T_EQ_INT(r.status, 200);
		char want[32];
		snprintf(want, sizeof(want), "%zu", len);
		T_EQ_STR(r.body, want);
	}
	T_EQ_INT(hc_pool_connects_total(p), 1); /* one connection, reused twice */
	free(body);
	hc_pool_free(p);
	httpd_free(s);
	ev_run_once(l, 0);
	ev_free(l);
}

/* ---- a server that answers the length and FNV-1a hash of the body it got */
static uint64_t fnv1a(const char *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)d[i]) * 1099511628211ull;
	return h;
}

static void hash_handler(httpd_req *r, void *arg)
{
	size_t n;
	const char *d = httpd_body(r, &n);
	char out[64];
	int k = snprintf(out, sizeof(out), "%zu %016llx", n, (unsigned long long)fnv1a(d, n));
	httpd_respond(r, 200, "text/plain", NULL, out, (size_t)k);
}

static httpd *hash_server(ev_loop *l, const char *addr, tls_ctx *tls, char *hp, size_t hp_len)
{
	httpd_limits lim = {.max_body_bytes = 64 << 20};
	httpd *s = httpd_new(l, &lim, hash_handler, NULL);
	char err[128];
	T_EQ_INT(httpd_listen(s, addr, NULL, err, sizeof(err)), 0);
	if (tls) T_EQ_INT(httpd_set_tls(s, 0, tls), 0);
	snprintf(hp, hp_len, "127.0.0.1:%d", httpd_port(s, 0));
	return s;
}

/* Sends body once on p and checks the server got exactly it. */
static void send_and_check(ev_loop *l, hc_pool *p, const char *body, size_t len)
{
	result r = {0};
	hc_callbacks cb = {NULL, on_body, on_done};
	T_CHECK(hc_request(p, "POST", "/", NULL, body, len, &cb, &r, NULL) != NULL);
	for (int k = 0; k < 3000 && !r.done; k++) ev_run_once(l, 10);
	T_EQ_INT(r.done, 1);
	T_EQ_INT(r.err, HC_OK);
	T_EQ_INT(r.status, 200);
	char want[64];
	snprintf(want, sizeof(want), "%zu %016llx", len, (unsigned long long)fnv1a(body, len));
	T_EQ_STR(r.body, want);
}

/* mode 0: plaintext, 1: batched I/O (io_uring), 2: TLS. */
static void body_shared(int mode)
{
	ev_loop *l = ev_new();
	char why[128], hp[64], dir[64] = "/tmp/test_gw_core.XXXXXX", cert[128], key[128], cmd[512];
	if (mode == 1 && ev_batch_enable(l, why, sizeof(why)) < 0) {
		printf("# batched I/O unavailable here (%s): skipped\n", why);
		ev_free(l);
		return;
	}
	tls_ctx *srv = NULL, *cli = NULL;
	if (mode == 2) {
		T_CHECK(mkdtemp(dir) != NULL);
		snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
		snprintf(key, sizeof(key), "%s/key.pem", dir);
		snprintf(cmd, sizeof(cmd),
			 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
			 "-subj /CN=localhost -keyout %s -out %s >/dev/null 2>&1",
			 key, cert);
		if (system(cmd) != 0) {
			printf("# openssl could not make a certificate: TLS skipped\n");
			rmdir(dir);
			ev_free(l);
			return;
		}
		tls_server_opts so = {.cert_file = cert, .key_file = key};
		tls_client_opts co = {.insecure = 1};
		srv = tls_server_new(&so, why, sizeof(why));
		cli = tls_client_new(&co, why, sizeof(why));
		T_CHECK(srv && cli);
	}
	httpd *s = hash_server(l, "127.0.0.1:0", srv, hp, sizeof(hp));
	char err[128];
	hc_pool *p = hc_pool_new(l, hp, 4, err, sizeof(err));
	if (cli) hc_pool_set_tls(p, cli, NULL);
	size_t big = 8u << 20;
	char *body = malloc(big);
	for (size_t i = 0; i < big; i++) body[i] = (char)(i * 31 + i / 4099);
	/* A proxy's three attempts of one request: one body, sent three times. */
	for (int i = 0; i < 3; i++) send_and_check(l, p, body, big);
	T_EQ_INT(hc_pool_body_bytes_copied_total(p), 0);
	/* A small body goes with its head, copied (counted). */
	send_and_check(l, p, body, 10);
	T_EQ_INT(hc_pool_body_bytes_copied_total(p), 10);
	/* The pooled connection goes stale (the server restarts on its port): the
	 * client's own retry on a fresh connection sends the same bytes again. */
	uint64_t connects = hc_pool_connects_total(p);
	T_EQ_INT(hc_pool_idle(p), 1);
	char addr[64];
	snprintf(addr, sizeof(addr), "%s", hp);
	if (srv) tls_ctx_ref(srv); /* for the second server: the first frees its own */
	httpd_free(s);
	ev_run_once(l, 10);
	s = hash_server(l, addr, srv, hp, sizeof(hp));
	send_and_check(l, p, body, big);
	T_EQ_INT(hc_pool_connects_total(p), connects + 1);
	T_EQ_INT(hc_pool_body_bytes_copied_total(p), 10);
	free(body);
	hc_pool_free(p);
	httpd_free(s);
	tls_ctx_free(cli);
	ev_run_once(l, 0);
	ev_free(l);
	if (mode == 2) {
		unlink(cert);
		unlink(key);
		rmdir(dir);
	}
}

static void test_body_shared_plain(void) { body_shared(0); }
static void test_body_shared_batched(void) { body_shared(1); }
static void test_body_shared_tls(void) { body_shared(2); }

int main(void)
{
	T_RUN(test_ev_set_same_mask);
	T_RUN(test_reused_connection_big_body);
	T_RUN(test_body_shared_plain);
	T_RUN(test_body_shared_batched);
	T_RUN(test_body_shared_tls);
	return T_END();
}
