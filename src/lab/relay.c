/*
 * relay.c — the lab's delaying TCP relay: `infergate-lab relay --delay-ms D
 * --map LISTEN=TARGET ...`. Each accepted connection is joined to a new
 * connection to TARGET, and every byte (and the end of each direction) is
 * held for D milliseconds before it is passed on, in each direction: the
 * latency between two regions where the kernel has no tc netem.
 *
 * One process serves every map on one core event loop. Per direction the
 * bytes wait in a capped buffer with a ring of (due time, end offset) marks;
 * a full buffer or ring stops reading that side (backpressure). A target that
 * refuses or cannot be reached resets the accepted connection, as a link to a
 * dead host would. The TCP handshake itself is not delayed (the first bytes
 * are). Runs until SIGTERM/SIGINT.
 *
 * Not here: bandwidth limits, loss, reordering.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/net.h"
#include "core/util.h"
#include "lab/lab.h"

#define RELAY_MAX_MAPS 64
#define RELAY_MARKS 512                /* pending reads per direction */
#define RELAY_DIR_CAP_BYTES (4u << 20) /* held bytes per direction */
#define RELAY_MAX_CONNS 4096
#define RELAY_CONNECT_TIMEOUT_MS 3000

typedef struct relay_map {
	net_addr listen, target;
	char listen_s[NET_ADDR_STRLEN], target_s[NET_ADDR_STRLEN];
	int fd;
} relay_map;

typedef struct relay_mark {
	uint64_t due_us;
	uint64_t end;
} relay_mark;

/* One direction: bytes read from `from`, due for `to`. Owner: its relay_conn. */
typedef struct relay_dir {
	buf data;                     /* held bytes not yet written */
	uint64_t in_total, out_total; /* bytes read and written, since the start */
	uint64_t released;            /* bytes whose due time has passed */
	relay_mark marks[RELAY_MARKS];
	size_t head, n;
	int eof; /* `from` reached EOF (recorded as a mark at in_total) */
	uint64_t eof_due_us;
	int shut; /* shutdown(to, SHUT_WR) done */
} relay_dir;

/* One relayed connection: a = accepted, b = to the target. d[0] a->b, d[1] b->a. */
typedef struct relay_conn {
	struct relay *r;
	int fd[2];
	int connected; /* b's connect finished */
	relay_dir d[2];
	uint64_t timer;
	uint64_t connect_timer;
	int closing;
	struct relay_conn *prev, *next; /* the relay's list of open connections */
} relay_conn;

typedef struct relay {
	ev_loop *loop;
	uint64_t delay_us;
	relay_map maps[RELAY_MAX_MAPS];
	size_t n_maps;
	size_t n_conns;
	uint64_t conns_total;
	relay_conn *conns; /* open connections, for the shutdown */
} relay;

static void conn_update(relay_conn *c);
static void conn_io(ev_loop *loop, int fd, int mask, void *arg);

static uint64_t now_us(void) { return time_mono_ns() / 1000; }

static void conn_free_later(ev_loop *loop, void *arg)
{
	relay_conn *c = arg;
	for (int i = 0; i < 2; i++) buf_free(&c->d[i].data);
	free(c);
}

/* Closes both sides; reset=1 makes the accepted side see a reset. */
static void conn_close(relay_conn *c, int reset)
{
	if (c->closing) return;
	c->closing = 1;
	ev_timer_del(c->r->loop, c->timer);
	ev_timer_del(c->r->loop, c->connect_timer);
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] < 0) continue;
		ev_del(c->r->loop, c->fd[i]);
		if (reset) {
			struct linger l = {1, 0};
			setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
		}
		close(c->fd[i]);
		c->fd[i] = -1;
	}
	c->r->n_conns--;
	if (c->prev) c->prev->next = c->next;
	else c->r->conns = c->next;
	if (c->next) c->next->prev = c->prev;
	ev_defer(c->r->loop, conn_free_later, c);
}

static int64_t on_timer(ev_loop *loop, uint64_t id, void *arg)
{
	relay_conn *c = arg;
	c->timer = 0;
	conn_update(c);
	return -1;
}

static int64_t on_connect_timeout(ev_loop *loop, uint64_t id, void *arg)
{
	relay_conn *c = arg;
	c->connect_timer = 0;
	if (!c->connected) conn_close(c, 1);
	return -1;
}

/* Reads what `from` has into direction d. Returns -1 when the connection must close. */
static int dir_read(relay_conn *c, int from, relay_dir *d)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		if (d->eof || d->n >= RELAY_MARKS || buf_rlen(&d->data) >= RELAY_DIR_CAP_BYTES) return 0;
		char *p = buf_space(&d->data, 64 * 1024);
		if (!p) return 0;
		ssize_t k = read(c->fd[from], p, 64 * 1024);
		if (k == -1 && errno == EINTR) continue;
		if (k == -1 && errno == EAGAIN) return 0;
		if (k < 0) return -1;
		uint64_t due = now_us() + c->r->delay_us;
		if (k == 0) {
			d->eof = 1;
			d->eof_due_us = due;
			return 0;
		}
		buf_commit(&d->data, (size_t)k);
		d->in_total += (uint64_t)k;
		relay_mark *m = &d->marks[(d->head + d->n) % RELAY_MARKS];
		m->due_us = due;
		m->end = d->in_total;
		d->n++;
	}
	return 0;
}

/* Writes the released bytes of d to `to`. Returns -1 on a write error. */
static int dir_write(relay_conn *c, int to, relay_dir *d)
{
	uint64_t t = now_us();
	while (d->n && d->marks[d->head].due_us <= t) {
		d->released = d->marks[d->head].end;
		d->head = (d->head + 1) % RELAY_MARKS;
		d->n--;
	}
	while (d->out_total < d->released) {
		size_t want = (size_t)(d->released - d->out_total);
		ssize_t k = write(c->fd[to], buf_rptr(&d->data), want);
		if (k == -1 && errno == EINTR) continue;
		if (k == -1 && errno == EAGAIN) return 0;
		if (k <= 0) return -1;
		buf_consume(&d->data, (size_t)k);
		d->out_total += (uint64_t)k;
	}
	if (d->eof && !d->shut && d->out_total == d->in_total && d->eof_due_us <= t) {
		shutdown(c->fd[to], SHUT_WR);
		d->shut = 1;
	}
	return 0;
}

/* After any event: move bytes that are due, set interests, arm the timer, or
 * close when both directions are done. */
static void conn_update(relay_conn *c)
{
	if (c->closing) return;
	ev_loop *loop = c->r->loop;
	if (c->connected) {
		for (int i = 0; i < 2; i++)
			if (dir_write(c, 1 - i, &c->d[i]) < 0) {
				conn_close(c, 1);
				return;
			}
	}
	if (c->d[0].shut && c->d[1].shut) {
		conn_close(c, 0);
		return;
	}
	uint64_t next = UINT64_MAX;
	for (int i = 0; i < 2 && c->connected; i++) {
		relay_dir *d = &c->d[i];
		if (d->n && d->marks[d->head].due_us < next) next = d->marks[d->head].due_us;
		if (d->eof && !d->shut && d->n == 0 && d->eof_due_us < next) next = d->eof_due_us;
	}
	for (int side = 0; side < 2; side++) {
		if (side == 1 && !c->connected) continue;
		relay_dir *in = &c->d[side], *out = &c->d[1 - side];
		int mask = EV_NONE;
		if (!in->eof && in->n < RELAY_MARKS && buf_rlen(&in->data) < RELAY_DIR_CAP_BYTES) mask |= EV_READ;
		if (c->connected && out->out_total < out->released) mask |= EV_WRITE;
		ev_mod(loop, c->fd[side], mask);
	}
	ev_timer_del(loop, c->timer);
	c->timer = 0;
	if (next != UINT64_MAX) {
		uint64_t t = now_us();
		uint64_t after_ms = next > t ? (next - t + 999) / 1000 : 0;
		c->timer = ev_timer_add(loop, after_ms, on_timer, c);
	}
}

static void conn_io(ev_loop *loop, int fd, int mask, void *arg)
{
	relay_conn *c = arg;
	if (c->closing) return;
	int side = fd == c->fd[0] ? 0 : 1;
	if (side == 1 && !c->connected) {
		int e = net_connect_result(fd);
		if (e) {
			conn_close(c, 1);
			return;
		}
		c->connected = 1;
		ev_timer_del(loop, c->connect_timer);
		c->connect_timer = 0;
		net_set_nodelay(fd, 1);
		ev_set(loop, fd, EV_READ, conn_io, c);
		conn_update(c);
		return;
	}
	if (mask & (EV_READ | EV_ERROR)) {
		if (dir_read(c, side, &c->d[side]) < 0) {
			conn_close(c, 1);
			return;
		}
	}
	conn_update(c);
}

static void on_accept(ev_loop *loop, int lfd, int mask, void *arg)
{
	relay *r = arg;
	relay_map *m = NULL;
	for (size_t i = 0; i < r->n_maps; i++)
		if (r->maps[i].fd == lfd) m = &r->maps[i];
	if (!m) return;
	for (int k = 0; k < 64; k++) {
		int a = net_accept(lfd, NULL);
		if (a == -1) return;
		if (r->n_conns >= RELAY_MAX_CONNS) {
			close(a);
			continue;
		}
		int b = net_connect(&m->target);
		if (b == -1) {
			struct linger l = {1, 0};
			setsockopt(a, SOL_SOCKET, SO_LINGER, &l, sizeof l);
			close(a);
			continue;
		}
		relay_conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(a);
			close(b);
			continue;
		}
		c->r = r;
		c->fd[0] = a;
		c->fd[1] = b;
		for (int i = 0; i < 2; i++) buf_init(&c->d[i].data, RELAY_DIR_CAP_BYTES + 64 * 1024);
		net_set_nodelay(a, 1);
		r->n_conns++;
		r->conns_total++;
		c->next = r->conns;
		if (r->conns) r->conns->prev = c;
		r->conns = c;
		ev_set(loop, a, EV_READ, conn_io, c);
		ev_set(loop, b, EV_WRITE, conn_io, c);
		c->connect_timer = ev_timer_add(loop, RELAY_CONNECT_TIMEOUT_MS, on_connect_timeout, c);
	}
}

static void on_stop(ev_loop *loop, int signo, void *arg)
{
	log_info("signal %d: stopping", signo);
	ev_stop(loop);
}

static void relay_usage(void)
{
	fprintf(stderr,
		"usage: infergate-lab relay [--delay-ms D] --map LISTEN=TARGET [--map ...]\n"
		"  Relays TCP from each LISTEN address to its TARGET, holding every byte D ms\n"
		"  (default 22.5) in each direction. Runs until SIGTERM.\n");
}

int relay_main(int argc, char **argv)
{
	static relay r;
	memset(&r, 0, sizeof r);
	double delay_ms = 22.5;
	log_init("infergate-lab-relay");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--delay-ms") && v) {
			delay_ms = atof(v);
			i++;
			continue;
		}
		if (!strcmp(a, "--state") && v) {
			i++;
			continue;
		} /* marks the process as the lab's */
		if (!strcmp(a, "--map") && v) {
			if (r.n_maps >= RELAY_MAX_MAPS) {
				fprintf(stderr, "relay: too many maps\n");
				return 2;
			}
			const char *eq = strchr(v, '=');
			relay_map *m = &r.maps[r.n_maps];
			char l[NET_ADDR_STRLEN];
			if (!eq || (size_t)(eq - v) >= sizeof l) {
				fprintf(stderr, "relay: bad --map %s\n", v);
				return 2;
			}
			memcpy(l, v, (size_t)(eq - v));
			l[eq - v] = 0;
			if (net_addr_parse_numeric(l, &m->listen) < 0 || net_addr_parse_numeric(eq + 1, &m->target) < 0) {
				fprintf(stderr, "relay: bad --map %s (numeric host:port=host:port)\n", v);
				return 2;
			}
			str_copy(m->listen_s, l, sizeof m->listen_s);
			str_copy(m->target_s, eq + 1, sizeof m->target_s);
			r.n_maps++;
			i++;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			relay_usage();
			return 0;
		}
		relay_usage();
		return 2;
	}
	if (!r.n_maps || delay_ms < 0 || delay_ms > 10000) {
		relay_usage();
		return 2;
	}
	r.delay_us = (uint64_t)(delay_ms * 1000.0 + 0.5);
	signal(SIGPIPE, SIG_IGN);
	r.loop = ev_new();
	if (!r.loop) {
		perror("ev_new");
		return 1;
	}
	for (size_t i = 0; i < r.n_maps; i++) {
		char err[256];
		r.maps[i].fd = net_listen(&r.maps[i].listen, NULL, err, sizeof err);
		if (r.maps[i].fd < 0) {
			fprintf(stderr, "relay: listen %s: %s\n", r.maps[i].listen_s, err);
			return 1;
		}
		ev_set(r.loop, r.maps[i].fd, EV_READ, on_accept, &r);
		log_info("relay %s -> %s, %.1f ms each way", r.maps[i].listen_s, r.maps[i].target_s, delay_ms);
	}
	ev_signal(r.loop, SIGTERM, on_stop, NULL);
	ev_signal(r.loop, SIGINT, on_stop, NULL);
	int rc = ev_run(r.loop);
	while (r.conns) conn_close(r.conns, 0);
	ev_run_once(r.loop, 0);
	for (size_t i = 0; i < r.n_maps; i++) {
		ev_del(r.loop, r.maps[i].fd);
		close(r.maps[i].fd);
	}
	ev_free(r.loop);
	return rc == 0 ? 0 : 1;
}
