/*
 * ev_batch.h — batched socket I/O of ev.c (internal to src/core; programs use
 * ev_batch_enable and ev_io_* from ev.h). One implementation: ev_batch.c,
 * io_uring.
 */
#ifndef CORE_EV_BATCH_H
#define CORE_EV_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include "core/ev.h"

typedef struct ev_batch ev_batch;

/* A batch, or NULL with the reason in why (no io_uring here). */
ev_batch *ev_batch_new(char *why, size_t why_len);
void ev_batch_free(ev_batch *b);
/* Queue one operation; its id (never 0), or 0 when b is NULL or full. */
uint64_t ev_batch_send(ev_batch *b, int fd, const void *data, size_t len, ev_io_fn *fn, void *arg);
/* A send of two pieces, a then c, as one sendmsg; 0 also when the kernel has
 * no batched sendmsg. */
uint64_t ev_batch_send2(ev_batch *b, int fd, const void *a, size_t alen, const void *c, size_t clen, ev_io_fn *fn,
			void *arg);
uint64_t ev_batch_recv(ev_batch *b, int fd, void *dst, size_t cap, ev_io_fn *fn, void *arg);
/* No callback will come for id (a dead id is ignored). */
void ev_batch_cancel(ev_batch *b, uint64_t id);
/* 1 while operations wait for a flush. */
int ev_batch_pending(const ev_batch *b);
/* Issues what is queued and runs the callbacks (with what they queue in turn,
 * for a bounded number of rounds). */
void ev_batch_flush(ev_loop *loop, ev_batch *b);
void ev_batch_stats(const ev_batch *b, uint64_t *flushes_total, uint64_t *ops_total);

#endif
