/*
 * ev_batch.c — batched socket I/O for the event loop (ev.h): send and recv
 * requests queued during an iteration are issued together through io_uring,
 * one system call for all of them, just before the loop sleeps.
 *
 * Every operation carries MSG_DONTWAIT, so the kernel completes it inside the
 * submitting call (bytes, 0 or -EAGAIN, exactly as send/recv would return):
 * nothing stays in flight across iterations, no buffer is written after the
 * flush, and readiness stays the business of the poller (ev_epoll.c). What it
 * saves is the system call per operation: on a machine where a call costs
 * microseconds (virtual machines), a hundred sockets served in one pass cost
 * one entry into the kernel instead of a hundred.
 *
 * Not here: timeouts, linked operations, registered buffers, SQPOLL. Without
 * io_uring (old kernel, seccomp, kernel.io_uring_disabled) ev_batch_enable
 * fails and callers keep their plain system calls.
 */
#include "core/ev.h"
#include "core/ev_batch.h"
#include "core/log.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH_RING_ENTRIES 256      /* operations per io_uring_enter */
#define BATCH_MAX_ROUNDS 64         /* flush rounds per iteration (callbacks queue more) */
#define BATCH_MAX_QUEUED (1u << 20) /* operations waiting for a flush */

enum { OP_FREE,
       OP_QUEUED,
       OP_CANCELLED,
       OP_SUBMITTED,
       OP_DEAD };
enum { KIND_SEND,
       KIND_SEND2,
       KIND_RECV };

typedef struct batch_op {
	int fd;
	int kind;
	int state;
	void *data;
	size_t len;
	const void *data2; /* KIND_SEND2: the second piece, sent after data */
	size_t len2;
	ev_io_fn *fn;
	void *arg;
	uint32_t gen;
	uint32_t next; /* the free list's or the queue's link (index + 1; 0 = end) */
} batch_op;

struct ev_batch {
	struct io_uring ring;
	batch_op *ops; /* recycled slots, named by id */
	uint32_t nops, cap_ops, free_head;
	uint32_t q_head, q_tail; /* queued slots in submission order (index + 1; 0 = none) */
	uint32_t qlen;
	uint64_t flushes_total, ops_total;
	int broken;      /* the ring failed: gone, nothing more is queued */
	int has_sendmsg; /* IORING_OP_SENDMSG: two-piece sends batched too */
	/* The message headers of a round's two-piece sends, by submission slot:
	 * stable while the kernel reads them (a slot is reused only next round). */
	struct msghdr msgs[BATCH_RING_ENTRIES];
	struct iovec iovs[BATCH_RING_ENTRIES][2];
};

ev_batch *ev_batch_new(char *why, size_t why_len)
{
	ev_batch *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	int rc = io_uring_queue_init(BATCH_RING_ENTRIES, &b->ring, 0);
	if (rc < 0) {
		snprintf(why, why_len, "io_uring_setup: %s", strerror(-rc));
		free(b);
		return NULL;
	}
	/* The operations must complete inside the submitting call: a kernel that
	 * ignores MSG_DONTWAIT for io_uring (before 5.x) would leave them in flight. */
	struct io_uring_probe *p = io_uring_get_probe_ring(&b->ring);
	int ok = p && io_uring_opcode_supported(p, IORING_OP_SEND) && io_uring_opcode_supported(p, IORING_OP_RECV) &&
		 (b->ring.features & IORING_FEAT_NODROP);
	b->has_sendmsg = p && io_uring_opcode_supported(p, IORING_OP_SENDMSG);
	if (p) io_uring_free_probe(p);
	if (!ok) {
		snprintf(why, why_len, "io_uring without send/recv (kernel too old)");
		io_uring_queue_exit(&b->ring);
		free(b);
		return NULL;
	}
	return b;
}

void ev_batch_free(ev_batch *b)
{
	if (!b) return;
	if (!b->broken) io_uring_queue_exit(&b->ring);
	free(b->ops);
	free(b);
}

static uint64_t op_id(const ev_batch *b, uint32_t idx) { return (uint64_t)b->ops[idx].gen << 32 | (idx + 1); }

static batch_op *op_lookup(ev_batch *b, uint64_t id, uint32_t *idx)
{
	uint32_t i = (uint32_t)(id & 0xffffffffu);
	if (!i || i > b->nops) return NULL;
	batch_op *o = &b->ops[i - 1];
	if (o->gen != (uint32_t)(id >> 32) || o->state == OP_FREE) return NULL;
	*idx = i - 1;
	return o;
}

static void op_release(ev_batch *b, uint32_t idx)
{
	batch_op *o = &b->ops[idx];
	o->state = OP_FREE;
	o->gen++;
	o->next = b->free_head;
	b->free_head = idx + 1;
}

static uint64_t queue_op(ev_batch *b, int kind, int fd, void *data, size_t len, ev_io_fn *fn, void *arg)
{
	if (b->broken || b->qlen >= BATCH_MAX_QUEUED) return 0;
	uint32_t idx;
	if (b->free_head) {
		idx = b->free_head - 1;
		b->free_head = b->ops[idx].next;
	} else {
		if (b->nops == b->cap_ops) {
			uint32_t nc = b->cap_ops ? b->cap_ops * 2 : 256;
			batch_op *no = realloc(b->ops, nc * sizeof(*no));
			if (!no) return 0;
			b->ops = no;
			b->cap_ops = nc;
		}
		idx = b->nops++;
		b->ops[idx].gen = 1;
	}
	batch_op *o = &b->ops[idx];
	o->fd = fd;
	o->kind = kind;
	o->state = OP_QUEUED;
	o->data = data;
	o->len = len;
	o->data2 = NULL;
	o->len2 = 0;
	o->fn = fn;
	o->arg = arg;
	o->next = 0;
	if (b->q_tail) b->ops[b->q_tail - 1].next = idx + 1;
	else b->q_head = idx + 1;
	b->q_tail = idx + 1;
	b->qlen++;
	return op_id(b, idx);
}

uint64_t ev_batch_send(ev_batch *b, int fd, const void *data, size_t len, ev_io_fn *fn, void *arg)
{
	return b ? queue_op(b, KIND_SEND, fd, (void *)data, len, fn, arg) : 0;
}

uint64_t ev_batch_send2(ev_batch *b, int fd, const void *a, size_t alen, const void *c, size_t clen, ev_io_fn *fn,
			void *arg)
{
	if (!b || !b->has_sendmsg) return 0;
	uint64_t id = queue_op(b, KIND_SEND2, fd, (void *)a, alen, fn, arg);
	if (id) {
		batch_op *o = &b->ops[(uint32_t)(id & 0xffffffffu) - 1];
		o->data2 = c;
		o->len2 = clen;
	}
	return id;
}

uint64_t ev_batch_recv(ev_batch *b, int fd, void *dst, size_t cap, ev_io_fn *fn, void *arg)
{
	return b ? queue_op(b, KIND_RECV, fd, dst, cap, fn, arg) : 0;
}

void ev_batch_cancel(ev_batch *b, uint64_t id)
{
	uint32_t idx;
	batch_op *o = b && id ? op_lookup(b, id, &idx) : NULL;
	if (!o) return;
	if (o->state == OP_QUEUED) o->state = OP_CANCELLED;    /* released when the flush reaches it */
	else if (o->state == OP_SUBMITTED) o->state = OP_DEAD; /* done by the kernel; no callback */
}

int ev_batch_pending(const ev_batch *b) { return b && b->qlen > 0; }

/* The ring failed (a system call error that should not happen, or completions
 * that never came): it is torn down, which cancels whatever the kernel still
 * held, and every operation not completed gets a result that sends its owner
 * back to plain system calls: -EIO for those the kernel may have done in
 * part, -EAGAIN (wait for readiness, then call again) for those never
 * submitted. Later operations are refused (0), so callers go direct. */
static void batch_break(ev_loop *loop, ev_batch *b)
{
	log_error("ev_batch: io_uring failed; plain system calls from now on");
	io_uring_queue_exit(&b->ring);
	b->broken = 1;
	for (uint32_t idx = 0; idx < b->nops; idx++) {
		batch_op *o = &b->ops[idx];
		if (o->state != OP_SUBMITTED && o->state != OP_QUEUED && o->state != OP_DEAD && o->state != OP_CANCELLED)
			continue;
		int live = o->state == OP_SUBMITTED || o->state == OP_QUEUED;
		long res = o->state == OP_QUEUED ? -EAGAIN : -EIO;
		ev_io_fn *fn = o->fn;
		void *arg = o->arg;
		op_release(b, idx);
		if (live) fn(loop, res, arg);
	}
	b->q_head = b->q_tail = b->qlen = 0;
}

/* One round: up to a ring's worth of queued operations submitted, waited for
 * (they complete inside the call) and their callbacks run. */
static void flush_round(ev_loop *loop, ev_batch *b)
{
	uint32_t nsub = 0;
	while (b->q_head && nsub < BATCH_RING_ENTRIES) {
		uint32_t idx = b->q_head - 1;
		batch_op *o = &b->ops[idx];
		struct io_uring_sqe *sqe = NULL;
		if (o->state == OP_QUEUED && !(sqe = io_uring_get_sqe(&b->ring)))
			break; /* cannot happen: the ring holds BATCH_RING_ENTRIES */
		b->q_head = o->next;
		if (!b->q_head) b->q_tail = 0;
		b->qlen--;
		if (!sqe) {
			op_release(b, idx); /* cancelled before the flush */
			continue;
		}
		if (o->kind == KIND_SEND) {
			io_uring_prep_send(sqe, o->fd, o->data, o->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		} else if (o->kind == KIND_SEND2) {
			struct iovec *iov = b->iovs[nsub];
			struct msghdr *m = &b->msgs[nsub];
			iov[0] = (struct iovec){o->data, o->len};
			iov[1] = (struct iovec){(void *)o->data2, o->len2};
			memset(m, 0, sizeof(*m));
			m->msg_iov = iov;
			m->msg_iovlen = 2;
			io_uring_prep_sendmsg(sqe, o->fd, m, MSG_NOSIGNAL | MSG_DONTWAIT);
		} else {
			io_uring_prep_recv(sqe, o->fd, o->data, o->len, MSG_DONTWAIT);
		}
		io_uring_sqe_set_data64(sqe, idx);
		o->state = OP_SUBMITTED;
		nsub++;
	}
	if (!nsub) return;
	b->flushes_total++;
	b->ops_total += nsub;
	/* Every submitted operation completes inside the submission (MSG_DONTWAIT):
	 * wait for each, resubmitting what a short or interrupted submit left. */
	uint32_t submitted = 0, done = 0;
	for (int tries = 0; done < nsub && tries < 1000; tries++) {
		if (submitted < nsub) {
			int rc = io_uring_submit_and_wait(&b->ring, nsub - done);
			if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
				log_error("ev_batch: io_uring_enter: %s", strerror(-rc));
				break;
			}
			if (rc > 0) submitted += (uint32_t)rc;
		}
		struct io_uring_cqe *cqe;
		struct __kernel_timespec limit = {.tv_sec = 1}; /* they are done already: a wait is a failure */
		int w = submitted < nsub ? io_uring_peek_cqe(&b->ring, &cqe) : io_uring_wait_cqe_timeout(&b->ring, &cqe, &limit);
		if (w == -ETIME) {
			log_error("ev_batch: %u operations not completed after 1 s", nsub - done);
			break;
		}
		if (w < 0) continue;
		uint32_t idx = (uint32_t)io_uring_cqe_get_data64(cqe);
		long res = cqe->res;
		io_uring_cqe_seen(&b->ring, cqe);
		done++;
		if (idx >= b->nops) continue;
		batch_op *o = &b->ops[idx];
		int live = o->state == OP_SUBMITTED;
		ev_io_fn *fn = o->fn;
		void *arg = o->arg;
		op_release(b, idx); /* before the callback, which may queue again */
		if (live) fn(loop, res, arg);
	}
	if (done < nsub) batch_break(loop, b);
}

void ev_batch_flush(ev_loop *loop, ev_batch *b)
{
	for (int round = 0; b && !b->broken && b->qlen && round < BATCH_MAX_ROUNDS; round++) flush_round(loop, b);
}

void ev_batch_stats(const ev_batch *b, uint64_t *flushes_total, uint64_t *ops_total)
{
	*flushes_total = b ? b->flushes_total : 0;
	*ops_total = b ? b->ops_total : 0;
}
