/* test_httpd.c — httpd and the HTTP client in one process over loopback:
 * keep-alive reuse, limits (431, 413, 408, CL+TE 400 and close), chunked request
 * bodies, streaming with backpressure to a paused reader, on_close on a client
 * leaving mid-stream, pipelining, graceful stop, client errors. */
#include "core/ev.h"
#include "core/httpd.h"
#include "core/http_client.h"
#include "core/util.h"
#include "t.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>

static ev_loop *loop;
static httpd *srv;
static int port;
static char hostport[64];

/* ---- the handler */

static int closed_seen;    /* on_close calls */
static size_t max_pending; /* largest pending output seen by the streamer */
static int stream_drains, stream_ended;

typedef struct streamer {
	httpd_req *req;
	size_t left;
} streamer;
static streamer the_stream;

static void on_req_close(httpd_req *r, void *arg) { closed_seen++; }

static void stream_pump(httpd_req *r, void *arg)
{
	streamer *s = arg;
	static char chunk[16384];
	memset(chunk, 'z', sizeof(chunk));
	while (s->left && httpd_stream_pending(r) < 256 * 1024) {
		size_t n = MIN(s->left, sizeof(chunk));
		if (httpd_stream_write(r, chunk, n) < 0) return;
		s->left -= n;
		max_pending = MAX(max_pending, httpd_stream_pending(r));
	}
	if (s->left) {
		stream_drains++;
		httpd_on_drain(r, stream_pump, s);
		return;
	}
	stream_ended = 1;
	httpd_stream_end(r);
}

static int64_t slow_answer(ev_loop *l, uint64_t id, void *arg)
{
	httpd_respond(arg, 200, "text/plain", NULL, "slow", 4);
	return -1;
}

static void handler(httpd_req *r, void *arg)
{
	const char *path = httpd_path(r);
	if (!strcmp(path, "/hello")) {
		httpd_respond(r, 200, "text/plain", "X-Test: 1\r\n", "hello", 5);
	} else if (!strcmp(path, "/echo")) {
		size_t n;
		const char *b = httpd_body(r, &n);
		T_EQ_INT(b[n], 0);
		httpd_respond(r, 200, "application/octet-stream", NULL, b, n);
	} else if (!strcmp(path, "/query")) {
		httpd_respond(r, 200, "text/plain", NULL, httpd_query(r), strlen(httpd_query(r)));
	} else if (!strcmp(path, "/slow")) {
		httpd_on_close(r, on_req_close, NULL);
		ev_timer_add(httpd_loop(r), 100, slow_answer, r);
	} else if (!strcmp(path, "/stream")) {
		the_stream.req = r;
		the_stream.left = (size_t)atoi(httpd_query(r));
		httpd_on_close(r, on_req_close, NULL);
		httpd_stream_start(r, 200, "text/event-stream", NULL, -1);
		stream_pump(r, &the_stream);
	} else if (!strcmp(path, "/big")) {
		/* More than the kernel's socket buffers hold: the rest waits in ours. */
		size_t n = 16u << 20;
		char *b = malloc(n);
		T_CHECK(b != NULL);
		memset(b, 'b', n);
		httpd_respond(r, 200, "application/octet-stream", NULL, b, n);
		free(b);
	} else if (!strcmp(path, "/status")) {
		/* Streams "body" under the status the query names, as a proxy
		 * relays whatever status its upstream sent. */
		httpd_stream_start(r, atoi(httpd_query(r)), "text/plain", NULL, -1);
		httpd_stream_write(r, "body", 4);
		httpd_stream_end(r);
	} else if (!strcmp(path, "/forever")) {
		httpd_on_close(r, on_req_close, NULL);
		httpd_stream_start(r, 200, "text/event-stream", NULL, -1);
		httpd_stream_write(r, "data: 1\n\n", 9);
	} else {
		httpd_error(r, 404, "no such path", "path");
	}
}

static int batched; /* the loop batches socket I/O (ev_batch_enable) */

static void server_start(void)
{
	loop = ev_new();
	if (batched) {
		char why[128];
		if (ev_batch_enable(loop, why, sizeof(why)) < 0) fprintf(stderr, "  no batched I/O here: %s\n", why);
	}
	httpd_limits lim = {0};
	lim.max_header_bytes = 1024;
	lim.max_body_bytes = 1000;
	lim.header_timeout_ms = 200;
	lim.body_timeout_ms = 300;
	lim.keepalive_idle_ms = 2000;
	srv = httpd_new(loop, &lim, handler, NULL);
	char err[128];
	T_EQ_INT(httpd_listen(srv, "127.0.0.1:0", NULL, err, sizeof(err)), 0);
	port = httpd_port(srv, 0);
	T_CHECK(port > 0);
	snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
}

static void server_stop(void)
{
	httpd_free(srv);
	ev_run_once(loop, 0);
	ev_free(loop);
}

/* ---- a raw client, pumped with the loop */

static int raw_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void raw_send(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;
	uint64_t end = time_mono_ms() + 2000;
	while (off < n && time_mono_ms() < end) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
		if (w > 0) off += (size_t)w;
		else ev_run_once(loop, 5);
	}
}

/* Reads until `until` appears (NULL: until EOF) or timeout_ms; returns 1 on EOF seen. */
static int raw_read(int fd, buf *out, const char *until, int timeout_ms)
{
	uint64_t end = time_mono_ms() + (uint64_t)timeout_ms;
	while (time_mono_ms() < end) {
		ev_run_once(loop, 5);
		char tmp[65536];
		ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
		if (r > 0) {
			buf_append(out, tmp, (size_t)r);
		} else if (r == 0 || (r < 0 && errno != EAGAIN)) return 1;
		if (until && strstr(buf_rptr(out), until)) return 0;
	}
	return 0;
}

static void pump_until(int *flag, int timeout_ms)
{
	uint64_t end = time_mono_ms() + (uint64_t)timeout_ms;
	while (!*flag && time_mono_ms() < end) ev_run_once(loop, 10);
}

/* ---- client callbacks */

typedef struct result {
	int done, err, status, any;
	buf body;
	int pause_ms; /* pause after the first body bytes */
	int cancel_on_body;
	hc_req *req;
} result;

static int64_t resume_timer(ev_loop *l, uint64_t id, void *arg)
{
	result *res = arg;
	T_EQ_INT(stream_ended, 0); /* the writer waited for the paused reader */
	hc_resume(res->req);
	return -1;
}

static void cb_body(hc_req *r, const char *d, size_t n, void *arg)
{
	result *res = arg;
	buf_append(&res->body, d, n);
	if (res->cancel_on_body) {
		hc_cancel(r);
		res->done = 1;
		return;
	}
	if (res->pause_ms) {
		hc_pause(r);
		ev_timer_add(loop, (uint64_t)res->pause_ms, resume_timer, res);
		res->pause_ms = 0;
	}
}

static void cb_done(hc_req *r, int err, void *arg)
{
	result *res = arg;
	res->done = 1;
	res->err = err;
	res->status = hc_status(r);
	res->any = hc_received_any(r);
}

static const hc_callbacks cbs = {NULL, cb_body, cb_done};

static void do_request(hc_pool *p, const char *method, const char *target, const char *body, result *res)
{
	memset(res, 0, sizeof(*res));
	buf_init(&res->body, 0);
	res->req = hc_request(p, method, target, NULL, body, body ? strlen(body) : 0, &cbs, res, NULL);
	T_CHECK(res->req != NULL);
	pump_until(&res->done, 3000);
	T_CHECK(res->done);
}

/* ---- tests */

static void test_keepalive_reuse(void)
{
	hc_pool *p = hc_pool_new(loop, hostport, 4, NULL, 0);
	result res;
	httpd_stats st0;
	httpd_get_stats(srv, &st0);
	for (int i = 0; i < 3; i++) {
		do_request(p, "GET", "/hello", NULL, &res);
		T_EQ_INT(res.err, HC_OK);
		T_EQ_INT(res.status, 200);
		T_EQ_STR(buf_rptr(&res.body), "hello");
		buf_free(&res.body);
	}
	do_request(p, "POST", "/echo", "{\"model\":\"m\"}", &res);
	T_EQ_STR(buf_rptr(&res.body), "{\"model\":\"m\"}");
	buf_free(&res.body);
	do_request(p, "GET", "/query?a=1&b=2", NULL, &res);
	T_EQ_STR(buf_rptr(&res.body), "a=1&b=2");
	buf_free(&res.body);
	do_request(p, "GET", "/nope", NULL, &res);
	T_EQ_INT(res.status, 404);
	T_CHECK(strstr(buf_rptr(&res.body), "\"type\":\"NotFoundError\"") != NULL);
	T_CHECK(strstr(buf_rptr(&res.body), "\"param\":\"path\"") != NULL);
	buf_free(&res.body);
	T_EQ_INT(hc_pool_connects_total(p), 1);
	T_EQ_INT(hc_pool_idle(p), 1);
	httpd_stats st;
	httpd_get_stats(srv, &st);
	T_EQ_INT(st.accepted_total - st0.accepted_total, 1);
	T_EQ_INT(st.requests_total - st0.requests_total, 6);
	hc_pool_free(p);
}

/* The idle timeout of a kept-alive connection counts from its last request:
 * each request pushes it later (the timer armed for the first deadline finds
 * a later one and waits the rest), and a deadline that comes earlier (the
 * head timeout of a request begun) is kept to. */
static void test_keepalive_deadlines(void)
{
	int fd = raw_connect();
	T_CHECK(fd >= 0);
	for (int i = 0; i < 3; i++) {
		if (i) {
			buf idle;
			buf_init(&idle, 0);
			T_EQ_INT(raw_read(fd, &idle, NULL, 1200), 0); /* 1.2 s idle: still open (timeout 2 s) */
			buf_free(&idle);
		}
		raw_send(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
		buf out;
		buf_init(&out, 0);
		T_EQ_INT(raw_read(fd, &out, "hello", 2000), 0);
		T_CHECK(strstr(buf_rptr(&out), "HTTP/1.1 200") != NULL);
		buf_free(&out);
	}
	/* 2.4 s after the first request, 1.2 s after the last: a half head
	 * gets its 408 after the head timeout (200 ms), not the idle one. */
	uint64_t t0 = time_mono_ms();
	raw_send(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");
	buf out;
	buf_init(&out, 0);
	T_EQ_INT(raw_read(fd, &out, NULL, 3000), 1);
	uint64_t dt = time_mono_ms() - t0;
	T_CHECK(strncmp(buf_rptr(&out), "HTTP/1.1 408", 12) == 0);
	T_CHECK(dt >= 150 && dt < 1500);
	buf_free(&out);
	close(fd);
}

static void expect_reject(const char *req, const char *status_line)
{
	int fd = raw_connect();
	T_CHECK(fd >= 0);
	raw_send(fd, req);
	buf out;
	buf_init(&out, 0);
	int eof = raw_read(fd, &out, NULL, 2000);
	T_CHECK(eof);
	if (strncmp(buf_rptr(&out), status_line, strlen(status_line)) != 0)
		fprintf(stderr, "  got: %.80s\n", buf_rptr(&out));
	T_CHECK(strncmp(buf_rptr(&out), status_line, strlen(status_line)) == 0);
	T_CHECK(strstr(buf_rptr(&out), "Connection: close") != NULL);
	T_CHECK(strstr(buf_rptr(&out), "{\"error\":{") != NULL);
	buf_free(&out);
	close(fd);
}

static void test_limits(void)
{
	char big[3000];
	snprintf(big, sizeof(big), "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %02000d\r\n\r\n", 0);
	expect_reject(big, "HTTP/1.1 431");
	expect_reject("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413");
	expect_reject("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		      "HTTP/1.1 400");
	expect_reject("GET /hello HTTP/1.1\r\nHo st: x\r\n\r\n", "HTTP/1.1 400");
	/* A chunked body growing over the cap. */
	char chunked[4000];
	int n = snprintf(chunked, sizeof(chunked), "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) n += snprintf(chunked + n, sizeof(chunked) - (size_t)n, "190\r\n%0400d\r\n", 0);
	expect_reject(chunked, "HTTP/1.1 413");
	/* Slow head: 408 after header_timeout_ms. */
	uint64_t t0 = time_mono_ms();
	expect_reject("GET /hello HTTP/1.1\r\nHost: x\r\n", "HTTP/1.1 408");
	uint64_t dt = time_mono_ms() - t0;
	T_CHECK(dt >= 150 && dt < 1500);
	/* Slow body: 408 too. */
	expect_reject("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", "HTTP/1.1 408");
	httpd_stats st;
	httpd_get_stats(srv, &st);
	T_CHECK(st.rejected_total >= 7);
}

static void test_chunked_request(void)
{
	int fd = raw_connect();
	raw_send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
	buf out;
	buf_init(&out, 0);
	raw_read(fd, &out, NULL, 50);
	T_EQ_INT(buf_rlen(&out), 0); /* body not complete yet */
	raw_send(fd, "6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n");
	raw_read(fd, &out, "hello world", 2000);
	T_CHECK(strstr(buf_rptr(&out), "Content-Length: 11\r\n") != NULL);
	T_CHECK(strstr(buf_rptr(&out), "\r\n\r\nhello world") != NULL);
	/* Expect: 100-continue gets its interim answer. */
	buf_reset(&out);
	raw_send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
	raw_read(fd, &out, "100 Continue\r\n\r\n", 1000);
	T_CHECK(strncmp(buf_rptr(&out), "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
	raw_send(fd, "ok");
	raw_read(fd, &out, "\r\n\r\nok", 1000);
	T_CHECK(strstr(buf_rptr(&out), "HTTP/1.1 200") != NULL);
	buf_free(&out);
	close(fd);
}

static void test_pipelined(void)
{
	int fd = raw_connect();
	raw_send(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
		     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
		     "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	buf out;
	buf_init(&out, 0);
	int eof = raw_read(fd, &out, NULL, 3000);
	T_CHECK(eof);
	const char *s = buf_rptr(&out);
	const char *a = strstr(s, "\r\n\r\nslow"), *b = strstr(s, "\r\n\r\nabc"), *c = strstr(s, "\r\n\r\nhello");
	T_CHECK(a && b && c && a < b && b < c);
	buf_free(&out);
	close(fd);
}

static void test_stream_backpressure(void)
{
	hc_pool *p = hc_pool_new(loop, hostport, 4, NULL, 0);
	result res;
	memset(&res, 0, sizeof(res));
	buf_init(&res.body, 0);
	res.pause_ms = 300;
	max_pending = 0;
	stream_drains = stream_ended = 0;
	size_t total = 24u << 20;
	char target[64];
	snprintf(target, sizeof(target), "/stream?%zu", total);
	res.req = hc_request(p, "GET", target, NULL, NULL, 0, &cbs, &res, NULL);
	pump_until(&res.done, 10000);
	T_EQ_INT(res.err, HC_OK);
	T_EQ_INT(buf_rlen(&res.body), total);
	T_CHECK(stream_drains > 0);
	T_CHECK(stream_ended);
	T_CHECK(max_pending < 256 * 1024 + 16384 + 64);
	buf_free(&res.body);
	hc_pool_free(p);
}

static void test_close_mid_stream(void)
{
	hc_pool *p = hc_pool_new(loop, hostport, 4, NULL, 0);
	closed_seen = 0;
	result res;
	memset(&res, 0, sizeof(res));
	buf_init(&res.body, 0);
	res.cancel_on_body = 1;
	res.req = hc_request(p, "GET", "/forever", NULL, NULL, 0, &cbs, &res, NULL);
	pump_until(&res.done, 3000);
	T_EQ_INT(res.err, 0); /* cancelled: no on_done */
	pump_until(&closed_seen, 3000);
	T_EQ_INT(closed_seen, 1);
	T_EQ_INT(httpd_in_flight(srv), 0);
	T_EQ_INT(hc_pool_idle(p), 0); /* never pooled */
	buf_free(&res.body);
	hc_pool_free(p);
}

static void test_client_errors(void)
{
	/* A port nobody listens on. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	socklen_t al = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &al);
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", ntohs(a.sin_port));
	hc_pool *p = hc_pool_new(loop, hp, 4, NULL, 0);
	result res;
	do_request(p, "GET", "/", NULL, &res);
	T_EQ_INT(res.err, HC_ERR_CONNECT_REFUSED);
	T_EQ_INT(res.any, 0);
	buf_free(&res.body);
	hc_pool_free(p);
	close(fd);

	/* Idle timeout: the server holds the answer longer than the client waits. */
	p = hc_pool_new(loop, hostport, 4, NULL, 0);
	memset(&res, 0, sizeof(res));
	buf_init(&res.body, 0);
	hc_timeouts to = {0, 30, 0};
	res.req = hc_request(p, "GET", "/slow", NULL, NULL, 0, &cbs, &res, &to);
	pump_until(&res.done, 3000);
	T_EQ_INT(res.err, HC_ERR_IDLE_TIMEOUT);
	buf_free(&res.body);
	hc_pool_free(p);

	/* hc_fetch error path: a port nobody listens on. */
	buf body;
	buf_init(&body, 0);
	int status = 0;
	T_EQ_INT(hc_fetch(hp, "GET", "/", NULL, NULL, 0, 500, &status, &body), HC_ERR_CONNECT_REFUSED);
	buf_free(&body);
}

/* A hand-driven upstream: accept, read a head, answer raw bytes. */
static int upstream_accept(int lfd)
{
	uint64_t end = time_mono_ms() + 2000;
	while (time_mono_ms() < end) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
		if (fd >= 0) return fd;
		ev_run_once(loop, 5);
	}
	return -1;
}

static void upstream_exchange(int fd, const char *answer)
{
	buf in;
	buf_init(&in, 0);
	raw_read(fd, &in, "\r\n\r\n", 2000);
	T_CHECK(strstr(buf_rptr(&in), "\r\n\r\n") != NULL);
	buf_free(&in);
	raw_send(fd, answer);
}

static void test_client_stale_retry_and_eof(void)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	T_EQ_INT(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	listen(lfd, 16);
	socklen_t al = sizeof(a);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", ntohs(a.sin_port));
	hc_pool *p = hc_pool_new(loop, hp, 4, NULL, 0);

	result r1;
	memset(&r1, 0, sizeof(r1));
	buf_init(&r1.body, 0);
	r1.req = hc_request(p, "GET", "/a", NULL, NULL, 0, &cbs, &r1, NULL);
	int s1 = upstream_accept(lfd);
	T_CHECK(s1 >= 0);
	upstream_exchange(s1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
	pump_until(&r1.done, 2000);
	T_EQ_INT(r1.err, HC_OK);
	T_EQ_INT(hc_pool_idle(p), 1);
	/* The upstream drops the idle connection; the pool has not noticed yet. */
	close(s1);
	result r2;
	memset(&r2, 0, sizeof(r2));
	buf_init(&r2.body, 0);
	r2.req = hc_request(p, "GET", "/b", NULL, NULL, 0, &cbs, &r2, NULL);
	int s2 = upstream_accept(lfd);
	T_CHECK(s2 >= 0);
	upstream_exchange(s2, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nbb\r\n0\r\n\r\n");
	pump_until(&r2.done, 2000);
	T_EQ_INT(r2.err, HC_OK);
	T_EQ_STR(buf_rptr(&r2.body), "bb");
	T_EQ_INT(hc_pool_connects_total(p), 2);
	close(s2);

	/* EOF in the middle of a body: HC_ERR_EOF with bytes received. */
	for (int i = 0; i < 5; i++) ev_run_once(loop, 5); /* the pool notices s2's close */
	result r3;
	memset(&r3, 0, sizeof(r3));
	buf_init(&r3.body, 0);
	r3.req = hc_request(p, "GET", "/c", NULL, NULL, 0, &cbs, &r3, NULL);
	int s3 = upstream_accept(lfd);
	upstream_exchange(s3, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
	for (int i = 0; i < 5; i++) ev_run_once(loop, 5);
	close(s3);
	pump_until(&r3.done, 2000);
	T_EQ_INT(r3.err, HC_ERR_EOF);
	T_EQ_INT(r3.any, 1);
	T_EQ_STR(buf_rptr(&r3.body), "abc");

	/* A malformed status line. */
	result r4;
	memset(&r4, 0, sizeof(r4));
	buf_init(&r4.body, 0);
	r4.req = hc_request(p, "GET", "/d", NULL, NULL, 0, &cbs, &r4, NULL);
	int s4 = upstream_accept(lfd);
	upstream_exchange(s4, "HTTP/1.1 2x0 OK\r\n\r\n");
	pump_until(&r4.done, 2000);
	T_EQ_INT(r4.err, HC_ERR_MALFORMED);
	close(s4);

	buf_free(&r1.body);
	buf_free(&r2.body);
	buf_free(&r3.body);
	buf_free(&r4.body);
	hc_pool_free(p);
	close(lfd);
}

/* hc_fetch against an httpd running on its own loop in another thread, stopped
 * through ev_async. */
static ev_loop *tloop;
static void tstop(ev_loop *l, void *arg) { ev_stop(l); }
static void *tmain(void *arg)
{
	ev_run(tloop);
	return NULL;
}
static void thandler(httpd_req *r, void *arg)
{
	size_t n;
	const char *b = httpd_body(r, &n);
	httpd_stream_start(r, 200, "text/plain", NULL, -1);
	httpd_stream_write(r, "got:", 4);
	httpd_stream_write(r, b, n);
	httpd_stream_end(r);
}

static void test_fetch_threaded(void)
{
	tloop = ev_new();
	httpd *s2 = httpd_new(tloop, NULL, thandler, NULL);
	T_EQ_INT(httpd_listen(s2, "127.0.0.1:0", NULL, NULL, 0), 0);
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", httpd_port(s2, 0));
	ev_async *stop = ev_async_new(tloop, tstop, NULL);
	pthread_t th;
	pthread_create(&th, NULL, tmain, NULL);
	buf body;
	buf_init(&body, 0);
	int status = 0;
	T_EQ_INT(hc_fetch(hp, "POST", "/x", "Content-Type: text/plain\r\n", "abc", 3, 2000, &status, &body), HC_OK);
	T_EQ_INT(status, 200);
	T_EQ_STR(buf_rptr(&body), "got:abc");
	ev_async_send(stop);
	pthread_join(th, NULL);
	ev_async_free(stop);
	httpd_free(s2);
	ev_run_once(tloop, 0);
	ev_free(tloop);
	buf_free(&body);
}

static void test_graceful_stop(void)
{
	/* One idle keep-alive connection, one request in flight. */
	int idle = raw_connect();
	raw_send(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	buf out;
	buf_init(&out, 0);
	raw_read(idle, &out, "hello", 1000);
	buf_reset(&out);
	hc_pool *p = hc_pool_new(loop, hostport, 4, NULL, 0);
	result res;
	memset(&res, 0, sizeof(res));
	buf_init(&res.body, 0);
	closed_seen = 0;
	res.req = hc_request(p, "GET", "/slow", NULL, NULL, 0, &cbs, &res, NULL);
	for (int i = 0; i < 5; i++) ev_run_once(loop, 5); /* the request reaches the handler */
	T_EQ_INT(httpd_in_flight(srv), 1);
	httpd_stop_accepting(srv);
	T_EQ_INT(raw_read(idle, &out, NULL, 1000), 1); /* idle connection closed */
	pump_until(&res.done, 3000);
	T_EQ_INT(res.err, HC_OK);
	T_EQ_INT(res.status, 200);
	T_EQ_STR(buf_rptr(&res.body), "slow");
	T_EQ_INT(closed_seen, 0);
	T_EQ_INT(hc_pool_idle(p), 0); /* Connection: close */
	for (int i = 0; i < 5; i++) ev_run_once(loop, 5);
	T_EQ_INT(httpd_connections(srv), 0);
	T_CHECK(raw_connect() < 0); /* listener closed */
	buf_free(&out);
	buf_free(&res.body);
	close(idle);
	hc_pool_free(p);
}

/* A response that has ended but is not all written keeps the server busy
 * (what a draining program waits for), though no request is in flight. */
static void test_busy_until_written(void)
{
	int fd = raw_connect();
	raw_send(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int i = 0; i < 10; i++) ev_run_once(loop, 5);
	T_EQ_INT(httpd_in_flight(srv), 0);
	T_EQ_INT(httpd_busy(srv), 1);
	size_t got = 0;
	uint64_t end = time_mono_ms() + 5000;
	while (got < (16u << 20) && time_mono_ms() < end) {
		ev_run_once(loop, 1);
		char tmp[65536];
		ssize_t r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (r > 0) got += (size_t)r;
	}
	T_CHECK(got > (16u << 20)); /* the head and the whole body */
	for (int i = 0; i < 5; i++) ev_run_once(loop, 5);
	T_EQ_INT(httpd_busy(srv), 0);
	close(fd);
	for (int i = 0; i < 5; i++) ev_run_once(loop, 5);
}

/* Bodiless statuses streamed (a relayed 204 or 304) carry no framing and no
 * body: the next answer on the connection must start right after the head
 * (a chunked 304, or "0\r\n\r\n" after a 204, desynchronised clients). */
static void test_bodiless_stream(void)
{
	static const char *const statuses[] = {"204", "304"};
	for (size_t i = 0; i < ARRAY_LEN(statuses); i++) {
		for (int minor = 0; minor <= 1; minor++) {
			int fd = raw_connect();
			char req[256];
			snprintf(req, sizeof(req), "GET /status?%s HTTP/1.%d\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
						   "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
				 statuses[i], minor);
			raw_send(fd, req);
			buf out;
			buf_init(&out, 0);
			T_CHECK(raw_read(fd, &out, NULL, 2000));
			const char *o = buf_rptr(&out);
			const char *end = strstr(o, "\r\n\r\n");
			T_CHECK(strncmp(o, "HTTP/1.1 ", 9) == 0 && strncmp(o + 9, statuses[i], 3) == 0);
			T_CHECK(end != NULL);
			if (end) {
				T_CHECK(strncmp(end + 4, "HTTP/1.1 200 OK\r\n", 17) == 0);
				T_CHECK(memmem(o, (size_t)(end - o), "Transfer-Encoding", 17) == NULL);
				T_CHECK(memmem(o, (size_t)(end - o), "Content-Length", 14) == NULL);
			}
			T_CHECK(strstr(o, "\r\n\r\nhello") != NULL);
			buf_free(&out);
			close(fd);
		}
	}
}

/* Request lines: absolute-form targets route by their path (RFC 9112
 * 3.2.2); an unknown version is a 505; a transfer coding other than chunked
 * is a 501, not its coded bytes handed on as the body. */
static void test_request_line_forms(void)
{
	int fd = raw_connect();
	raw_send(fd, "GET http://gw.example:8080/query?a=b HTTP/1.1\r\nHost: gw.example\r\n\r\n"
		     "GET HTTPS://gw.example?c=d HTTP/1.1\r\nHost: x\r\n\r\n"
		     "GET http://gw.example/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	buf out;
	buf_init(&out, 0);
	T_CHECK(raw_read(fd, &out, NULL, 2000));
	const char *o = buf_rptr(&out);
	const char *a = strstr(o, "\r\n\r\na=b"), *b = strstr(o, "HTTP/1.1 404"), *c = strstr(o, "\r\n\r\nhello");
	T_CHECK(a && b && c && a < b && b < c); /* "/?c=d": no such path, but parsed */
	buf_free(&out);
	close(fd);
	expect_reject("GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505");
	expect_reject("GET /hello HTTP/1.2\r\nHost: x\r\n\r\n", "HTTP/1.1 505");
	expect_reject("GET /hello HTTP/0.9\r\nHost: x\r\n\r\n", "HTTP/1.1 505");
	expect_reject("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		      "HTTP/1.1 501");
	expect_reject("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc", "HTTP/1.1 400");
}

/* The client reads an upstream's answers by the same rules: interim 1xx
 * skipped, 204/304 without a body whatever their headers say, 101 (never
 * asked for) and statuses beyond 599 malformed. */
static void test_client_statuses(void)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	T_EQ_INT(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	listen(lfd, 16);
	socklen_t al = sizeof(a);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	char hp[64];
	snprintf(hp, sizeof(hp), "127.0.0.1:%d", ntohs(a.sin_port));
	static const struct {
		const char *answer;
		int err, status;
		const char *body;
	} cases[] = {
		{"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
		 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		 HC_OK, 200, "ok"},
		{"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", HC_OK, 204, ""},
		{"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", HC_OK, 304, ""},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
		 HC_ERR_MALFORMED, 0, ""},
		{"HTTP/1.1 600 Beyond\r\nContent-Length: 2\r\n\r\nno", HC_ERR_MALFORMED, 0, ""},
		{"HTTP/1.1 999 Beyond\r\nContent-Length: 2\r\n\r\nno", HC_ERR_MALFORMED, 0, ""},
		/* gzip under chunked: decoding only chunked would hand on gzip bytes as the body */
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n", HC_ERR_MALFORMED, 0, ""},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		hc_pool *p = hc_pool_new(loop, hp, 4, NULL, 0);
		result res;
		memset(&res, 0, sizeof(res));
		buf_init(&res.body, 0);
		res.req = hc_request(p, "GET", "/", NULL, NULL, 0, &cbs, &res, NULL);
		int s1 = upstream_accept(lfd);
		T_CHECK(s1 >= 0);
		upstream_exchange(s1, cases[i].answer);
		pump_until(&res.done, 2000);
		if (res.err != cases[i].err) fprintf(stderr, "  case %zu: err %s\n", i, hc_err_name(res.err));
		T_EQ_INT(res.err, cases[i].err);
		if (cases[i].err == HC_OK) T_EQ_INT(res.status, cases[i].status);
		T_EQ_INT(buf_rlen(&res.body), strlen(cases[i].body));
		buf_free(&res.body);
		close(s1);
		hc_pool_free(p);
	}
	close(lfd);
}

/* CPU time this process used, ms. */
static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs the loop for ms; returns the file events it handled. */
static long run_for(int ms)
{
	long events = 0;
	uint64_t end = time_mono_ms() + (uint64_t)ms;
	while (time_mono_ms() < end) {
		int n = ev_run_once(loop, 20);
		if (n > 0) events += n;
	}
	return events;
}

/* Pipelined requests behind an answer the client never reads: output
 * pauses the pipeline, the read buffer fills, and the loop must then sleep
 * (it used to keep read interest armed on a level-triggered poller and spin:
 * thousands of wake-ups a second, a whole core). */
static void test_paused_pipeline_sleeps(void)
{
	int fd = raw_connect();
	T_CHECK(fd >= 0);
	size_t conns0 = httpd_connections(srv);
	raw_send(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
	static char many[40000];
	size_t n = 0;
	while (n + 32 < sizeof(many)) n += (size_t)snprintf(many + n, sizeof(many) - n, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_send(fd, many);
	run_for(200); /* the server fills its buffers */
	double c0 = cpu_ms();
	long events = run_for(1000);
	double used = cpu_ms() - c0;
	fprintf(stderr, "  paused pipeline: %ld events, %.0f ms CPU in 1000 ms\n", events, used);
	T_CHECK(events < 20);
	T_CHECK(used < 150);
	T_EQ_INT(httpd_connections(srv), conns0 + 1);
	close(fd); /* unread answers: a reset */
	run_for(100);
	T_EQ_INT(httpd_connections(srv), conns0);
}

/* A client that pipelines more than the read buffer holds while its
 * request is in the handler's hands, reads what it got and closes (a FIN
 * behind unread input): the request must be cancelled (on_close), not left
 * running until it ends by itself. */
static void test_leave_with_full_buffer(void)
{
	int fd = raw_connect();
	T_CHECK(fd >= 0);
	closed_seen = 0;
	size_t busy0 = httpd_in_flight(srv);
	static char req[100000];
	size_t n = (size_t)snprintf(req, sizeof(req), "GET /forever HTTP/1.1\r\nHost: x\r\n\r\n");
	while (n + 32 < sizeof(req)) n += (size_t)snprintf(req + n, sizeof(req) - n, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_send(fd, req);
	buf out;
	buf_init(&out, 0);
	raw_read(fd, &out, "data: 1\n\n", 2000);
	T_CHECK(strstr(buf_rptr(&out), "data: 1") != NULL);
	T_EQ_INT(httpd_in_flight(srv), busy0 + 1);
	double c0 = cpu_ms();
	long events = run_for(300);
	T_CHECK(events < 20);
	T_CHECK(cpu_ms() - c0 < 100);
	close(fd);
	pump_until(&closed_seen, 2000);
	T_EQ_INT(closed_seen, 1);
	T_EQ_INT(httpd_in_flight(srv), busy0);
	buf_free(&out);
}

/* Every test twice: with plain sends, then with the loop's batched I/O
 * (io_uring), where the server's replies leave from its before-sleep flush
 * in one system call per pass. */
int main(void)
{
	for (batched = 0; batched < 2; batched++) {
		server_start();
		if (batched && !ev_batch_enabled(loop)) {
			server_stop();
			break;
		}
		T_RUN(test_keepalive_reuse);
		T_RUN(test_limits);
		T_RUN(test_chunked_request);
		T_RUN(test_pipelined);
		T_RUN(test_keepalive_deadlines);
		T_RUN(test_stream_backpressure);
		T_RUN(test_close_mid_stream);
		T_RUN(test_client_errors);
		T_RUN(test_client_stale_retry_and_eof);
		T_RUN(test_fetch_threaded);
		T_RUN(test_busy_until_written);
		T_RUN(test_paused_pipeline_sleeps);
		T_RUN(test_bodiless_stream);
		T_RUN(test_request_line_forms);
		T_RUN(test_client_statuses);
		T_RUN(test_leave_with_full_buffer);
		T_RUN(test_graceful_stop);
		server_stop();
	}
	return T_END();
}
