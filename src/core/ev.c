/*
 * ev.c — the event loop of ev.h: fd table, timer heap, deferred calls,
 * before-sleep hooks, signalfd and eventfd wake-ups. The poller is ev_epoll.c;
 * batched socket I/O (io_uring), flushed after the hooks, is ev_batch.c.
 *
 * Timers live in a recycled node array; the heap holds node indexes ordered by
 * (deadline, sequence), so timers due at the same ms fire in creation order. An
 * id is (generation << 32 | node index + 1): a stale id never touches a node
 * that was reused.
 */
#include "core/ev.h"
#include "core/ev_batch.h"
#include "core/ev_poll.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define EV_MAX_HOOKS 16
#define EV_FIRED_MAX 256
#define EV_SIG_MAX 65
#define EV_HOOK_PASSES 4 /* before-sleep rounds per iteration (see ev_run_once) */

typedef struct ev_fd {
	int mask;  /* EV_READ | EV_WRITE | EV_HUP interest; EV_NONE if unknown */
	int known; /* registered through ev_set */
	ev_file_fn *fn;
	void *arg;
} ev_fd;

#define TPOS_FREE (-1)
#define TPOS_RUNNING (-2)

typedef struct ev_tnode {
	uint64_t when_ms;
	uint64_t seq;
	ev_timer_fn *fn;
	void *arg;
	uint32_t gen;
	int32_t pos;        /* heap index, TPOS_FREE, or TPOS_RUNNING */
	uint32_t next_free; /* free list link (index + 1; 0 = end) */
	int deleted;        /* deleted while running */
} ev_tnode;

typedef struct ev_call {
	ev_fn *fn;
	void *arg;
} ev_call;

struct ev_loop {
	ev_poll *poll;
	ev_batch *batch; /* NULL unless ev_batch_enable */
	int stop;
	uint64_t now_ms;
	uint64_t iterations;

	ev_fd *fds;
	int nfds; /* size of fds */

	ev_tnode *tnodes;
	uint32_t ntnodes, cap_tnodes, free_head;
	uint32_t *heap;
	uint32_t heap_len, heap_cap;
	uint64_t tseq;

	ev_call *defers;
	size_t ndefers, defer_head, cap_defers;

	ev_call hooks[EV_MAX_HOOKS];
	int nhooks;

	int sigfd;
	sigset_t sigmask;
	struct {
		ev_signal_fn *fn;
		void *arg;
	} sigs[EV_SIG_MAX];

	ev_fired fired[EV_FIRED_MAX];
	void *iobufs[EV_IOBUF_KEEP]; /* spare read blocks, the last given back last */
	int niobufs;
};

struct ev_async {
	ev_loop *loop;
	int fd;
	ev_fn *fn;
	void *arg;
};

ev_loop *ev_new(void)
{
	ev_loop *l = calloc(1, sizeof(*l));
	if (!l) return NULL;
	l->poll = ev_poll_new();
	if (!l->poll) {
		free(l);
		return NULL;
	}
	l->sigfd = -1;
	sigemptyset(&l->sigmask);
	l->now_ms = time_mono_ms();
	return l;
}

void ev_free(ev_loop *l)
{
	if (!l) return;
	if (l->sigfd >= 0) close(l->sigfd);
	ev_batch_free(l->batch);
	while (l->niobufs) free(l->iobufs[--l->niobufs]);
	ev_poll_free(l->poll);
	free(l->fds);
	free(l->tnodes);
	free(l->heap);
	free(l->defers);
	free(l);
}

void ev_stop(ev_loop *l) { l->stop = 1; }
uint64_t ev_now_ms(const ev_loop *l) { return l->now_ms; }
uint64_t ev_now_update(ev_loop *l) { return l->now_ms = time_mono_ms(); }
uint64_t ev_iterations_total(const ev_loop *l) { return l->iterations; }
size_t ev_timers_pending(const ev_loop *l) { return l->heap_len; }

/* ------------------------------------------------------------ file events */

static int fd_grow(ev_loop *l, int fd)
{
	if (fd < l->nfds) return 0;
	int n = l->nfds ? l->nfds : 64;
	while (n <= fd) n *= 2;
	ev_fd *nf = realloc(l->fds, (size_t)n * sizeof(*nf));
	if (!nf) return -1;
	memset(nf + l->nfds, 0, (size_t)(n - l->nfds) * sizeof(*nf));
	l->fds = nf;
	l->nfds = n;
	return 0;
}

int ev_set(ev_loop *l, int fd, int mask, ev_file_fn *fn, void *arg)
{
	if (fd < 0 || fd_grow(l, fd) < 0) {
		errno = fd < 0 ? EBADF : ENOMEM;
		return -1;
	}
	ev_fd *e = &l->fds[fd];
	mask &= EV_READ | EV_WRITE | EV_HUP;
	/* The same interest again (a new callback only) costs no system call. */
	if (!(e->known && e->mask == mask) &&
	    ev_poll_update(l->poll, fd, e->known ? e->mask : EV_NONE, mask) < 0)
		return -1;
	e->mask = mask;
	e->known = 1;
	e->fn = fn;
	e->arg = arg;
	return 0;
}

int ev_mod(ev_loop *l, int fd, int mask)
{
	if (fd < 0 || fd >= l->nfds || !l->fds[fd].known) {
		errno = EBADF;
		return -1;
	}
	ev_fd *e = &l->fds[fd];
	mask &= EV_READ | EV_WRITE | EV_HUP;
	if (mask == e->mask) return 0;
	if (ev_poll_update(l->poll, fd, e->mask, mask) < 0) return -1;
	e->mask = mask;
	return 0;
}

int ev_add_mask(ev_loop *l, int fd, int mask)
{
	return ev_mod(l, fd, ev_mask(l, fd) | mask);
}

int ev_del_mask(ev_loop *l, int fd, int mask)
{
	return ev_mod(l, fd, ev_mask(l, fd) & ~mask);
}

void ev_del(ev_loop *l, int fd)
{
	if (fd < 0 || fd >= l->nfds || !l->fds[fd].known) return;
	ev_fd *e = &l->fds[fd];
	ev_poll_update(l->poll, fd, e->mask, EV_NONE);
	memset(e, 0, sizeof(*e));
}

int ev_mask(const ev_loop *l, int fd)
{
	if (fd < 0 || fd >= l->nfds) return EV_NONE;
	return l->fds[fd].mask;
}

/* ------------------------------------------------------------ timers */

static int t_less(const ev_loop *l, uint32_t a, uint32_t b)
{
	const ev_tnode *x = &l->tnodes[a], *y = &l->tnodes[b];
	return x->when_ms < y->when_ms || (x->when_ms == y->when_ms && x->seq < y->seq);
}

static void heap_place(ev_loop *l, uint32_t i, uint32_t node)
{
	l->heap[i] = node;
	l->tnodes[node].pos = (int32_t)i;
}

static void heap_up(ev_loop *l, uint32_t i)
{
	uint32_t node = l->heap[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!t_less(l, node, l->heap[p])) break;
		heap_place(l, i, l->heap[p]);
		i = p;
	}
	heap_place(l, i, node);
}

static void heap_down(ev_loop *l, uint32_t i)
{
	uint32_t node = l->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= l->heap_len) break;
		if (c + 1 < l->heap_len && t_less(l, l->heap[c + 1], l->heap[c])) c++;
		if (!t_less(l, l->heap[c], node)) break;
		heap_place(l, i, l->heap[c]);
		i = c;
	}
	heap_place(l, i, node);
}

static void heap_remove(ev_loop *l, uint32_t i)
{
	l->heap_len--;
	if (i == l->heap_len) return;
	uint32_t moved = l->heap[l->heap_len];
	heap_place(l, i, moved);
	heap_down(l, i);
	heap_up(l, (uint32_t)l->tnodes[moved].pos);
}

static int heap_push(ev_loop *l, uint32_t node)
{
	if (l->heap_len == l->heap_cap) {
		uint32_t nc = l->heap_cap ? l->heap_cap * 2 : 64;
		uint32_t *nh = realloc(l->heap, nc * sizeof(*nh));
		if (!nh) return -1;
		l->heap = nh;
		l->heap_cap = nc;
	}
	l->tnodes[node].seq = ++l->tseq;
	heap_place(l, l->heap_len++, node);
	heap_up(l, l->heap_len - 1);
	return 0;
}

static void tnode_release(ev_loop *l, uint32_t idx)
{
	ev_tnode *t = &l->tnodes[idx];
	t->gen++;
	if (t->gen == 0) t->gen = 1;
	t->pos = TPOS_FREE;
	t->deleted = 0;
	t->fn = NULL;
	t->next_free = l->free_head;
	l->free_head = idx + 1;
}

static ev_tnode *tnode_lookup(const ev_loop *l, uint64_t id, uint32_t *idx)
{
	uint32_t i = (uint32_t)(id & 0xffffffffu);
	if (i == 0 || i > l->ntnodes) return NULL;
	ev_tnode *t = &l->tnodes[i - 1];
	if (t->gen != (uint32_t)(id >> 32) || t->pos == TPOS_FREE) return NULL;
	*idx = i - 1;
	return t;
}

uint64_t ev_timer_add(ev_loop *l, uint64_t after_ms, ev_timer_fn *fn, void *arg)
{
	uint32_t idx;
	if (l->free_head) {
		idx = l->free_head - 1;
		l->free_head = l->tnodes[idx].next_free;
	} else {
		if (l->ntnodes == l->cap_tnodes) {
			uint32_t nc = l->cap_tnodes ? l->cap_tnodes * 2 : 64;
			ev_tnode *nt = realloc(l->tnodes, nc * sizeof(*nt));
			if (!nt) return 0;
			l->tnodes = nt;
			l->cap_tnodes = nc;
		}
		idx = l->ntnodes++;
		memset(&l->tnodes[idx], 0, sizeof(ev_tnode));
		l->tnodes[idx].gen = 1;
	}
	ev_tnode *t = &l->tnodes[idx];
	t->when_ms = l->now_ms + after_ms;
	t->fn = fn;
	t->arg = arg;
	t->deleted = 0;
	if (heap_push(l, idx) < 0) {
		tnode_release(l, idx);
		return 0;
	}
	return ((uint64_t)t->gen << 32) | (idx + 1);
}

void ev_timer_del(ev_loop *l, uint64_t id)
{
	uint32_t idx;
	ev_tnode *t = tnode_lookup(l, id, &idx);
	if (!t) return;
	if (t->pos == TPOS_RUNNING) {
		t->deleted = 1;
		return;
	}
	heap_remove(l, (uint32_t)t->pos);
	tnode_release(l, idx);
}

int ev_timer_set(ev_loop *l, uint64_t id, uint64_t after_ms)
{
	uint32_t idx;
	ev_tnode *t = tnode_lookup(l, id, &idx);
	if (!t || t->pos == TPOS_RUNNING || t->deleted) return -1;
	heap_remove(l, (uint32_t)t->pos);
	t->when_ms = l->now_ms + after_ms;
	return heap_push(l, idx);
}

int ev_timer_alive(const ev_loop *l, uint64_t id)
{
	uint32_t idx;
	ev_tnode *t = tnode_lookup(l, id, &idx);
	return t && !t->deleted;
}

/* Runs the timers due now; at most as many calls as timers were pending, so a
 * timer re-armed with 0 runs again on the next iteration, not forever. */
static void run_timers(ev_loop *l)
{
	uint32_t budget = l->heap_len;
	while (budget-- && l->heap_len) {
		uint32_t idx = l->heap[0];
		ev_tnode *t = &l->tnodes[idx];
		if (t->when_ms > l->now_ms) break;
		heap_remove(l, 0);
		t->pos = TPOS_RUNNING;
		uint64_t id = ((uint64_t)t->gen << 32) | (idx + 1);
		int64_t again = t->fn(l, id, t->arg);
		t = &l->tnodes[idx]; /* the array may have moved */
		if (again >= 0 && !t->deleted) {
			t->when_ms = l->now_ms + (uint64_t)again;
			if (heap_push(l, idx) == 0) continue;
			log_ratelimited(LOG_ERROR, "ev: out of memory re-arming a timer");
		}
		tnode_release(l, idx);
	}
}

static int next_timer_wait_ms(const ev_loop *l)
{
	if (!l->heap_len) return -1;
	uint64_t when = l->tnodes[l->heap[0]].when_ms;
	if (when <= l->now_ms) return 0;
	uint64_t d = when - l->now_ms;
	return d > 3600000 ? 3600000 : (int)d;
}

/* ------------------------------------------------------------ deferred, hooks */

int ev_defer(ev_loop *l, ev_fn *fn, void *arg)
{
	if (l->ndefers == l->cap_defers) {
		size_t nc = l->cap_defers ? l->cap_defers * 2 : 64;
		ev_call *nd = realloc(l->defers, nc * sizeof(*nd));
		if (!nd) return -1;
		l->defers = nd;
		l->cap_defers = nc;
	}
	l->defers[l->ndefers].fn = fn;
	l->defers[l->ndefers].arg = arg;
	l->ndefers++;
	return 0;
}

static void defer_noop(ev_loop *l, void *arg) {}

void ev_defer_cancel(ev_loop *l, ev_fn *fn, void *arg)
{
	for (size_t i = l->defer_head; i < l->ndefers; i++)
		if (l->defers[i].fn == fn && l->defers[i].arg == arg) l->defers[i].fn = defer_noop;
}

/* Runs the deferred calls (and those they defer). Returns how many ran. */
static size_t run_defers(ev_loop *l)
{
	while (l->defer_head < l->ndefers) {
		ev_call c = l->defers[l->defer_head++];
		c.fn(l, c.arg);
	}
	size_t n = l->ndefers;
	l->defer_head = l->ndefers = 0;
	return n;
}

int ev_before_sleep(ev_loop *l, ev_fn *fn, void *arg)
{
	if (l->nhooks == EV_MAX_HOOKS) return -1;
	l->hooks[l->nhooks].fn = fn;
	l->hooks[l->nhooks].arg = arg;
	l->nhooks++;
	return 0;
}

void ev_before_sleep_del(ev_loop *l, ev_fn *fn, void *arg)
{
	for (int i = 0; i < l->nhooks; i++) {
		if (l->hooks[i].fn == fn && l->hooks[i].arg == arg) {
			memmove(&l->hooks[i], &l->hooks[i + 1], (size_t)(l->nhooks - i - 1) * sizeof(ev_call));
			l->nhooks--;
			return;
		}
	}
}

/* ------------------------------------------------------------ batched I/O */

int ev_batch_enable(ev_loop *l, char *why, size_t why_len)
{
	if (l->batch) return 0;
	l->batch = ev_batch_new(why, why_len);
	return l->batch ? 0 : -1;
}

int ev_batch_enabled(const ev_loop *l) { return l->batch != NULL; }

uint64_t ev_io_send(ev_loop *l, int fd, const void *data, size_t len, ev_io_fn *fn, void *arg)
{
	return ev_batch_send(l->batch, fd, data, len, fn, arg);
}

uint64_t ev_io_send2(ev_loop *l, int fd, const void *a, size_t alen, const void *b, size_t blen, ev_io_fn *fn,
		     void *arg)
{
	return ev_batch_send2(l->batch, fd, a, alen, b, blen, fn, arg);
}

uint64_t ev_io_recv(ev_loop *l, int fd, void *dst, size_t cap, ev_io_fn *fn, void *arg)
{
	return ev_batch_recv(l->batch, fd, dst, cap, fn, arg);
}

void ev_io_cancel(ev_loop *l, uint64_t id) { ev_batch_cancel(l->batch, id); }

void ev_io_stats(const ev_loop *l, uint64_t *flushes_total, uint64_t *ops_total)
{
	ev_batch_stats(l->batch, flushes_total, ops_total);
}

/* ------------------------------------------------------------ read buffers */

void *ev_iobuf_get(ev_loop *l)
{
	return l->niobufs ? l->iobufs[--l->niobufs] : malloc(EV_IOBUF_BYTES);
}

void ev_iobuf_put(ev_loop *l, void *block)
{
	if (!block) return;
	if (l->niobufs < EV_IOBUF_KEEP) l->iobufs[l->niobufs++] = block;
	else free(block);
}

/* ------------------------------------------------------------ the loop */

int ev_run_once(ev_loop *l, int max_wait_ms)
{
	l->iterations++;
	ev_now_update(l);
	run_defers(l);
	/* The hooks flush what this pass produced (a server's replies). A deferred
	 * call or a batched completion that runs after them may produce more (an
	 * error answered for a failed upstream send): the hooks run again then, a
	 * few times at most, and past that the loop polls without sleeping. So
	 * output queued for a hook needs no write interest in the poller. */
	int more = 1;
	for (int pass = 0; more && pass < EV_HOOK_PASSES; pass++) {
		for (int i = 0; i < l->nhooks; i++) l->hooks[i].fn(l, l->hooks[i].arg);
		/* Right after the hooks: a send they queued reads its buffer before
		 * any deferred call may add to it. */
		more = ev_batch_pending(l->batch);
		if (more) ev_batch_flush(l, l->batch);
		if (run_defers(l)) more = 1;
	}

	int wait = next_timer_wait_ms(l);
	if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms)) wait = max_wait_ms;
	if (l->stop || more || ev_batch_pending(l->batch)) wait = 0;
	int n = ev_poll_wait(l->poll, wait, l->fired, EV_FIRED_MAX);
	if (n < 0) return -1;
	ev_now_update(l);
	for (int i = 0; i < n; i++) {
		int fd = l->fired[i].fd;
		if (fd >= l->nfds) continue;
		ev_fd *e = &l->fds[fd];
		if (!e->known) continue;
		int m = l->fired[i].mask & (e->mask | EV_ERROR);
		if (!(m & (EV_READ | EV_WRITE | EV_HUP))) continue;
		/* A hang-up is reported to whichever interest the fd has. */
		if ((m & EV_ERROR) && !(m & e->mask)) m |= e->mask;
		m &= e->mask | EV_ERROR;
		if (!(m & (EV_READ | EV_WRITE | EV_HUP))) continue;
		e->fn(l, fd, m, e->arg);
	}
	run_defers(l);
	run_timers(l);
	run_defers(l);
	return n;
}

int ev_run(ev_loop *l)
{
	l->stop = 0;
	while (!l->stop) {
		if (ev_run_once(l, -1) < 0) {
			log_error("ev: poller failed: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ signals */

static void on_signalfd(ev_loop *l, int fd, int mask, void *arg)
{
	struct signalfd_siginfo si[8];
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t r = read(fd, si, sizeof(si));
		if (r < 0) {
			if (errno == EINTR) continue;
			return;
		}
		if (r == 0) return;
		for (size_t i = 0; i < (size_t)r / sizeof(si[0]); i++) {
			int s = (int)si[i].ssi_signo;
			if (s > 0 && s < EV_SIG_MAX && l->sigs[s].fn) l->sigs[s].fn(l, s, l->sigs[s].arg);
		}
	}
}

int ev_signal(ev_loop *l, int signo, ev_signal_fn *fn, void *arg)
{
	if (signo <= 0 || signo >= EV_SIG_MAX) {
		errno = EINVAL;
		return -1;
	}
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (pthread_sigmask(SIG_BLOCK, &one, NULL) != 0) return -1;
	sigaddset(&l->sigmask, signo);
	int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) return -1;
	if (l->sigfd < 0) {
		l->sigfd = fd;
		if (ev_set(l, fd, EV_READ, on_signalfd, NULL) < 0) return -1;
	}
	l->sigs[signo].fn = fn;
	l->sigs[signo].arg = arg;
	return 0;
}

/* ------------------------------------------------------------ async */

static void on_eventfd(ev_loop *l, int fd, int mask, void *arg)
{
	ev_async *a = arg;
	uint64_t v;
	ssize_t r;
	do r = read(fd, &v, sizeof(v));
	while (r < 0 && errno == EINTR);
	if (r == (ssize_t)sizeof(v)) a->fn(l, a->arg);
}

ev_async *ev_async_new(ev_loop *l, ev_fn *fn, void *arg)
{
	ev_async *a = calloc(1, sizeof(*a));
	if (!a) return NULL;
	a->loop = l;
	a->fn = fn;
	a->arg = arg;
	a->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->fd < 0 || ev_set(l, a->fd, EV_READ, on_eventfd, a) < 0) {
		if (a->fd >= 0) close(a->fd);
		free(a);
		return NULL;
	}
	return a;
}

void ev_async_send(ev_async *a)
{
	uint64_t one = 1;
	ssize_t r;
	do r = write(a->fd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
	/* EAGAIN: the counter is saturated, the loop will wake anyway. */
}

void ev_async_free(ev_async *a)
{
	if (!a) return;
	ev_del(a->loop, a->fd);
	close(a->fd);
	free(a);
}
