/* test_ev.c — the event loop: timer order and re-arm, ids, defer, async wake-ups
 * from another thread, signals through signalfd, file events on a pipe. */
#include "core/ev.h"
#include "core/util.h"
#include "t.h"
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <fcntl.h>

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
	for (int i = 1; i < order_len; i++) if (order[i] < order[i - 1]) sorted = 0;
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
		if (r == 0) { ev_del(l, fd); ev_stop(l); }
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

int main(void)
{
	T_RUN(test_timers);
	T_RUN(test_defer);
	T_RUN(test_async);
	T_RUN(test_signal);
	T_RUN(test_file_events);
	return T_END();
}
