/* test_gateway_core.c — the two core changes the gateway's hot path relies on:
 * ev_set with an unchanged interest mask (only the callback changes) still
 * delivers events, to the new callback; and an HTTP client request reusing a
 * pooled keep-alive connection, which now starts with read interest only,
 * still sends a body far larger than the socket buffer (EV_WRITE asked on
 * EAGAIN) — twice on one connection. */
#include "core/ev.h"
#include "core/http_client.h"
#include "core/httpd.h"
#include "core/util.h"
#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int calls_a, calls_b;
static void fn_a(ev_loop *l, int fd, int mask, void *arg) { calls_a++; char c; (void)!read(fd, &c, 1); }
static void fn_b(ev_loop *l, int fd, int mask, void *arg) { calls_b++; char c; (void)!read(fd, &c, 1); }

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

typedef struct result { int done, err, status; char body[32]; } result;
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
	httpd_limits lim = { .max_body_bytes = 64 << 20 };
	httpd *s = httpd_new(l, &lim, handler, NULL);
	char err[128];
	T_EQ_INT(httpd_listen(s, "127.0.0.1:0", NULL, err, sizeof(err)), 0);
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", httpd_port(s, 0));
	hc_pool *p = hc_pool_new(l, hp, 4, err, sizeof(err));
	size_t big = 8u << 20;
	char *body = malloc(big);
	memset(body, 'x', big);
	hc_callbacks cb = { NULL, on_body, on_done };
	for (int i = 0; i < 3; i++) {
		result r = { 0 };
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

int main(void)
{
	T_RUN(test_ev_set_same_mask);
	T_RUN(test_reused_connection_big_body);
	return T_END();
}
