/*
 * fuzz_h2.c — libFuzzer target for httpd's HTTP/2 glue (httpd_h2.c): the
 * input is what a client sends after the connection preface, fed over a
 * socketpair into a real httpd on a real event loop (httpd_adopt), with a
 * test handler that answers at once, streams, streams without end, or holds
 * the request; the loop runs a bounded number of passes while the answers
 * are read and dropped, then the client leaves.
 *
 * Checks, beyond "no crash, no leak": every request handed to the handler is
 * either answered or gets its on_close once the connection is gone (none
 * left held), and the server ends with no connection and nothing in flight.
 * fuzz-max-len: 16384
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "core/ev.h"
#include "core/httpd.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MAX_HELD 256

static ev_loop *loop;
static httpd *srv;
static int held; /* requests handed out and neither answered nor closed */

static void check(int cond)
{
	if (!cond) abort();
}

static void on_close(httpd_req *r, void *arg)
{
	held--;
}

static void on_drain(httpd_req *r, void *arg)
{
	/* The stream's buffer went low: end it (and the request). */
	if (httpd_stream_end(r) == 0) held--;
}

static void handler(httpd_req *r, void *arg)
{
	size_t blen = 0;
	const char *body = httpd_body(r, &blen);
	const char *path = httpd_path(r);
	check(path != NULL && body != NULL && httpd_method(r) != NULL);
	(void)httpd_header(r, "content-type", NULL);
	char c = path[1];
	held++;
	httpd_on_close(r, on_close, NULL);
	if (c == 's') {
		/* A stream of some kilobytes, ended when it drains. */
		static char chunk[4096];
		if (httpd_stream_start(r, 200, "text/event-stream", "x-a: 1\r\nConnection: keep-alive\r\n", -1) < 0) return;
		for (int i = 0; i < 8; i++)
			if (httpd_stream_write(r, chunk, sizeof(chunk)) < 0) return;
		httpd_on_drain(r, on_drain, NULL);
	} else if (c == 'h') {
		/* Held until the client goes (on_close). */
	} else if (c == 'a') {
		httpd_stream_start(r, 200, NULL, NULL, 100);
		httpd_stream_write(r, "short", 5);
		if (httpd_stream_end(r) == 0) held--;
	} else {
		if (httpd_respond(r, blen ? 200 : 204, "application/json", "X-Test: yes\r\n", body, blen) == 0) held--;
	}
}

static void setup(void)
{
	loop = ev_new();
	check(loop != NULL);
	httpd_limits lim = {0};
	lim.max_body_bytes = 64 * 1024;
	lim.max_header_bytes = 8 * 1024;
	lim.max_concurrent_streams = 16;
	srv = httpd_new(loop, &lim, handler, NULL);
	check(srv != NULL);
}

static void drain_client(int fd)
{
	char sink[65536];
	for (int i = 0; i < 64; i++)
		if (read(fd, sink, sizeof(sink)) <= 0) break;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loop) setup();
	int sv[2];
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	int big = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	check(httpd_adopt(srv, sv[0]) == 0);
	check(write(sv[1], PREFACE, sizeof(PREFACE) - 1) == (ssize_t)(sizeof(PREFACE) - 1));
	size_t off = 0;
	for (int pass = 0; pass < 32; pass++) {
		if (off < size) {
			ssize_t w = write(sv[1], data + off, size - off);
			if (w > 0) off += (size_t)w;
		}
		ev_run_once(loop, 0);
		drain_client(sv[1]);
		if (off == size && httpd_connections(srv) == 0) break;
	}
	close(sv[1]);
	for (int pass = 0; pass < 64 && httpd_connections(srv); pass++) ev_run_once(loop, 1);
	ev_run_once(loop, 0); /* deferred releases */
	check(httpd_connections(srv) == 0);
	check(httpd_in_flight(srv) == 0);
	check(held == 0);
	return 0;
}
