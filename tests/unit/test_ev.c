/* test_ev.c — the event loop: timer order and re-arm, ids, defer, async wake-ups
 * from another thread, signals through signalfd, file events on a pipe. */
#include "core/ev.h"
#include "core/util.h"
#include "t.h"
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <sys/socket.h>

static char order[64];
static int order_len;

static int64_t t_mark(ev_loop *l, uint64_t id, void *arg)
{
	order[order_len++] = *(const char *)arg;
	return -1;
}

static int64_t t_stop(ev_loop *l, uint64_t id, void *arg)
{
	ev_stop(l);
	return -1;
}

static int repeat_count;
static int64_t t_repeat(ev_loop *l, uint64_t id, void *arg)
{
	order[order_len++] = 'r';
	return ++repeat_count < 3 ? 5 : -1;
}

static void test_timers(void)
{
	ev_loop *l = ev_new();
	order_len = 0;
	uint64_t t0 = time_mono_ms();
	ev_timer_add(l, 30, t_mark, "c");
	ev_timer_add(l, 10, t_mark, "a");
	ev_timer_add(l, 20, t_mark, "b");
	ev_timer_add(l, 10, t_mark, "A"); /* same deadline: creation order */
	uint64_t dead = ev_timer_add(l, 15, t_mark, "x");
	uint64_t moved = ev_timer_add(l, 1, t_mark, "m");
	T_CHECK(dead != 0 && moved != 0 && dead != moved);
	ev_timer_del(l, dead);
	ev_timer_del(l, dead); /* twice: no-op */
	T_EQ_INT(ev_timer_alive(l, dead), 0);
	T_EQ_INT(ev_timer_set(l, moved, 25), 0);
	ev_timer_add(l, 50, t_stop, NULL);
	T_EQ_INT(ev_run(l), 0);
	order[order_len] = 0;
	T_EQ_STR(order, "aAbmc");
	T_CHECK(time_mono_ms() - t0 >= 45);
	T_EQ_INT(ev_timers_pending(l), 0);

	/* Re-arming timer runs three times; its id stays alive until -1. */
	order_len = 0;
	repeat_count = 0;
	uint64_t r = ev_timer_add(l, 1, t_repeat, NULL);
	ev_timer_add(l, 60, t_stop, NULL);
	ev_run(l);
	order[order_len] = 0;
	T_EQ_STR(order, "rrr");
	T_EQ_INT(ev_timer_alive(l, r), 0);
	/* Many timers: the heap stays ordered. */
	order_len = 0;
	static char keys[40];
	for (int i = 0; i < 40; i++) {
		keys[i] = (char)('0' + (i * 7) % 40);
		ev_timer_add(l, (uint64_t)((i * 7) % 40), t_mark, &keys[i]);
	}
	ev_timer_add(l, 45, t_stop, NULL);
	ev_run(l);
	int sorted = order_len == 40;
	for (int i = 1; i < order_len; i++)
		if (order[i] < order[i - 1]) sorted = 0;
	T_CHECK(sorted);
	ev_free(l);
}

static int defer_seen;
static void d_second(ev_loop *l, void *arg) { defer_seen = defer_seen * 10 + 2; }
static void d_first(ev_loop *l, void *arg)
{
	defer_seen = defer_seen * 10 + 1;
	ev_defer(l, d_second, NULL); /* runs in the same pass */
}
static int hook_calls;
static void hook(ev_loop *l, void *arg) { hook_calls++; }

static void test_defer(void)
{
	ev_loop *l = ev_new();
	defer_seen = 0;
	ev_defer(l, d_first, NULL);
	T_CHECK(ev_before_sleep(l, hook, NULL) == 0);
	ev_run_once(l, 0);
	T_EQ_INT(defer_seen, 12);
	T_EQ_INT(hook_calls, 1);
	ev_before_sleep_del(l, hook, NULL);
	ev_run_once(l, 0);
	T_EQ_INT(hook_calls, 1);
	ev_free(l);
}

/* Output queued by a deferred call that runs after the before-sleep hooks
 * (an answer produced by a pipelined request resumed, or by a failed batched
 * send) is flushed before the loop sleeps: the hooks run again. */
static int queued, flushed, requeue_always;
static void d_queue(ev_loop *l, void *arg) { queued = 1; }
static void flush_hook(ev_loop *l, void *arg)
{
	hook_calls++;
	if (queued) {
		queued = 0;
		flushed++;
	}
	if (hook_calls == 1 || requeue_always) ev_defer(l, d_queue, NULL);
}

static void test_hook_after_defer(void)
{
	ev_loop *l = ev_new();
	hook_calls = flushed = queued = requeue_always = 0;
	T_CHECK(ev_before_sleep(l, flush_hook, NULL) == 0);
	ev_run_once(l, 0);
	T_EQ_INT(queued, 0); /* flushed before the poll, not at the next iteration */
	T_EQ_INT(flushed, 1);
	T_EQ_INT(hook_calls, 2);
	/* Work that keeps coming: the passes are bounded and the loop polls
	 * without sleeping, so the next iteration carries on. */
	requeue_always = 1;
	hook_calls = 0;
	uint64_t t0 = time_mono_ms();
	ev_run_once(l, 2000);
	T_CHECK(hook_calls >= 2 && hook_calls <= 8);
	T_CHECK(time_mono_ms() - t0 < 1000);
	ev_before_sleep_del(l, flush_hook, NULL);
	ev_free(l);
}

static int async_calls;
static void on_async(ev_loop *l, void *arg)
{
	async_calls++;
	if (*(volatile int *)arg) ev_stop(l);
}
static ev_async *the_async;
static volatile int thread_done;
static void *sender(void *arg)
{
	for (int i = 0; i < 100; i++) ev_async_send(the_async);
	*(volatile int *)arg = 1;
	ev_async_send(the_async);
	return NULL;
}

static void test_async(void)
{
	ev_loop *l = ev_new();
	int done = 0;
	the_async = ev_async_new(l, on_async, &done);
	T_CHECK(the_async != NULL);
	ev_timer_add(l, 5000, t_stop, NULL); /* bound */
	pthread_t th;
	pthread_create(&th, NULL, sender, &done);
	uint64_t t0 = time_mono_ms();
	ev_run(l);
	pthread_join(th, NULL);
	T_CHECK(async_calls >= 1);
	T_CHECK(async_calls <= 101); /* sends coalesce */
	T_CHECK(time_mono_ms() - t0 < 4000);
	ev_async_free(the_async);
	ev_free(l);
}

static int sig_seen;
static void on_sig(ev_loop *l, int signo, void *arg)
{
	sig_seen = signo;
	ev_stop(l);
}

static void test_signal(void)
{
	ev_loop *l = ev_new();
	T_EQ_INT(ev_signal(l, SIGUSR1, on_sig, NULL), 0);
	T_EQ_INT(ev_signal(l, SIGUSR2, on_sig, NULL), 0);
	ev_timer_add(l, 3000, t_stop, NULL);
	kill(getpid(), SIGUSR2);
	ev_run(l);
	T_EQ_INT(sig_seen, SIGUSR2);
	ev_free(l);
}

static int pipe_reads;
static void on_pipe(ev_loop *l, int fd, int mask, void *arg)
{
	char b[16];
	if (mask & EV_READ) {
		ssize_t r = read(fd, b, sizeof(b));
		if (r > 0) pipe_reads++;
		if (r == 0) {
			ev_del(l, fd);
			ev_stop(l);
		}
	}
}

static void test_file_events(void)
{
	ev_loop *l = ev_new();
	int p[2];
	T_EQ_INT(pipe2(p, O_NONBLOCK), 0);
	T_EQ_INT(ev_set(l, p[0], EV_READ, on_pipe, NULL), 0);
	T_EQ_INT(ev_mask(l, p[0]), EV_READ);
	T_EQ_INT(write(p[1], "x", 1), 1);
	ev_run_once(l, 1000);
	T_EQ_INT(pipe_reads, 1);
	T_EQ_INT(ev_mod(l, p[0], EV_NONE), 0);
	T_EQ_INT(write(p[1], "y", 1), 1);
	ev_run_once(l, 20);
	T_EQ_INT(pipe_reads, 1); /* silenced */
	T_EQ_INT(ev_mod(l, p[0], EV_READ), 0);
	close(p[1]);
	ev_timer_add(l, 2000, t_stop, NULL);
	ev_run(l);
	T_EQ_INT(pipe_reads, 2);
	close(p[0]);
	ev_free(l);
}

/* Batched I/O: results as send/recv with MSG_DONTWAIT would give them, in
 * queue order, all within the iteration that queued them; cancelled ones
 * silent; callbacks may queue more and cancel others of the same flush. */
typedef struct io_rec {
	char log[64];
	long res[8];
	int n;
	uint64_t cancel_id;
	ev_loop *l;
	int fd;
	char rbuf[16];
} io_rec;
static io_rec rec;

static void io_done(ev_loop *l, long res, void *arg)
{
	const char *name = arg;
	strcat(rec.log, name);
	if (rec.n < 8) rec.res[rec.n++] = res;
	if (!strcmp(name, "C")) ev_io_cancel(l, rec.cancel_id);                                      /* D, same flush: no callback */
	if (!strcmp(name, "E")) ev_io_recv(l, rec.fd, rec.rbuf, sizeof(rec.rbuf) - 1, io_done, "F"); /* next round */
}

static void test_batch(void)
{
	ev_loop *l = ev_new();
	int sv[2];
	T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	T_EQ_INT(ev_batch_enabled(l), 0);
	T_EQ_INT(ev_io_send(l, sv[0], "x", 1, io_done, "x"), 0); /* not enabled: the caller sends */
	char why[128] = "";
	if (ev_batch_enable(l, why, sizeof(why)) < 0) {
		fprintf(stderr, "  io_uring unavailable here (%s): batched I/O not tested\n", why);
		close(sv[0]);
		close(sv[1]);
		ev_free(l);
		return;
	}
	T_EQ_INT(ev_batch_enabled(l), 1);
	memset(&rec, 0, sizeof(rec));
	rec.l = l;
	rec.fd = sv[1];
	uint64_t a = ev_io_send(l, sv[0], "a", 1, io_done, "A");
	uint64_t b = ev_io_send(l, sv[0], "b", 1, io_done, "B");
	uint64_t c = ev_io_send(l, sv[0], "c", 1, io_done, "C");
	rec.cancel_id = ev_io_send(l, sv[0], "d", 1, io_done, "D");
	T_CHECK(a && b && c && rec.cancel_id && a != b);
	ev_io_cancel(l, b); /* before the flush: never sent */
	T_EQ_INT(ev_run_once(l, 0), 0);
	T_EQ_STR(rec.log, "AC");
	T_EQ_INT(rec.res[0], 1);
	T_EQ_INT(rec.res[1], 1);
	char got[8] = "";
	T_EQ_INT(read(sv[1], got, sizeof(got) - 1), 3); /* D was issued with C: sent, no callback */
	T_EQ_STR(got, "acd");
	ev_io_cancel(l, a); /* a dead id: nothing */

	/* recv: nothing there is -EAGAIN; a callback's recv runs in the same flush. */
	rec.log[0] = 0;
	rec.n = 0;
	ev_io_recv(l, sv[1], rec.rbuf, sizeof(rec.rbuf) - 1, io_done, "R");
	T_EQ_INT(write(sv[0], "xyz", 3), 3);
	ev_io_send(l, sv[1], "q", 1, io_done, "E");
	ev_run_once(l, 0);
	T_EQ_STR(rec.log, "REF");
	T_EQ_INT(rec.res[0], 3);       /* R read "xyz" */
	T_EQ_INT(rec.res[2], -EAGAIN); /* F: nothing more on sv[1] */
	T_EQ_INT(memcmp(rec.rbuf, "xyz", 3), 0);

	/* A full socket: -EAGAIN, never a wait. */
	static char big[1 << 20];
	rec.log[0] = 0;
	rec.n = 0;
	for (int i = 0; i < 8 && !(rec.n && rec.res[rec.n - 1] == -EAGAIN); i++) {
		ev_io_send(l, sv[0], big, sizeof(big), io_done, "S");
		ev_run_once(l, 0);
	}
	T_CHECK(rec.n >= 1 && rec.res[rec.n - 1] == -EAGAIN);
	T_CHECK(rec.res[0] > 0 && rec.res[0] < (long)sizeof(big));

	/* EOF and errors come back as recv/send would give them. */
	close(sv[0]);
	rec.log[0] = 0;
	rec.n = 0;
	char sink[1 << 16];
	while (read(sv[1], sink, sizeof(sink)) > 0) {}
	ev_io_recv(l, sv[1], rec.rbuf, sizeof(rec.rbuf), io_done, "R");
	ev_io_send(l, sv[1], "z", 1, io_done, "S");
	ev_run_once(l, 0);
	T_EQ_STR(rec.log, "RS");
	T_EQ_INT(rec.res[0], 0);
	T_EQ_INT(rec.res[1], -EPIPE);

	uint64_t flushes, ops;
	ev_io_stats(l, &flushes, &ops);
	T_CHECK(flushes >= 5 && ops >= flushes);
	close(sv[1]);
	/* Queued and never flushed: dropped with the loop, no callback. */
	ev_io_send(l, 12345, "x", 1, io_done, "never");
	ev_free(l);
}

/* Read blocks come back most recently given first; at most EV_IOBUF_KEEP kept. */
static void test_iobuf(void)
{
	ev_loop *l = ev_new();
	void *a = ev_iobuf_get(l), *b = ev_iobuf_get(l);
	T_CHECK(a && b && a != b);
	memset(a, 1, EV_IOBUF_BYTES);
	ev_iobuf_put(l, a);
	ev_iobuf_put(l, b);
	T_CHECK(ev_iobuf_get(l) == b);
	T_CHECK(ev_iobuf_get(l) == a);
	void *many[EV_IOBUF_KEEP + 4];
	for (int i = 0; i < EV_IOBUF_KEEP + 4; i++) many[i] = ev_iobuf_get(l);
	for (int i = 0; i < EV_IOBUF_KEEP + 4; i++) ev_iobuf_put(l, many[i]); /* the last 4 are freed */
	ev_iobuf_put(l, NULL);
	ev_iobuf_put(l, a);
	ev_iobuf_put(l, b);
	ev_free(l); /* frees the kept ones: the leak checker agrees */
}

int main(void)
{
	T_RUN(test_timers);
	T_RUN(test_defer);
	T_RUN(test_hook_after_defer);
	T_RUN(test_async);
	T_RUN(test_signal);
	T_RUN(test_file_events);
	T_RUN(test_batch);
	T_RUN(test_iobuf);
	return T_END();
}
