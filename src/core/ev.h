/*
 * ev.h — the one event loop of every program, in the spirit of redis' ae.
 *
 * One thread runs a loop; everything registered on it is called on that thread:
 *   - file events: a read/write interest mask per fd, one callback + arg per fd,
 *     level-triggered (a callback that does not drain its socket is called again);
 *   - timers: one-shot or periodic, named by ids; a timer callback returns the
 *     milliseconds until it runs again, or -1 to stop (its id is then dead);
 *   - deferred calls: run after the current batch of events, before the loop
 *     sleeps again — the safe place to free a connection another callback of the
 *     same batch may still touch;
 *   - before-sleep hooks: run each time the loop is about to wait (flush output
 *     buffers here, as redis does);
 *   - signals through signalfd, delivered as ordinary callbacks;
 *   - async wake-ups (eventfd): ev_async_send() may be called from any thread
 *     and makes the callback run once on the loop thread (several sends before it
 *     runs coalesce into one call).
 * The loop caches a monotonic clock (ev_now_ms), refreshed each time it wakes.
 *
 * Not thread-safe except ev_async_send. Not a scheduler: callbacks must not block.
 * The poller backend (epoll) is in ev_epoll.c alone.
 */
#ifndef CORE_EV_H
#define CORE_EV_H

#include <stddef.h>
#include <stdint.h>

typedef struct ev_loop ev_loop;

#define EV_NONE 0
#define EV_READ 1
#define EV_WRITE 2
/* Set in the fired mask (with EV_READ) on a hang-up or socket error, so a
 * callback waiting only for EV_WRITE still learns about it. */
#define EV_ERROR 4
/* Interest in the peer closing its side (or the connection breaking) without
 * reading: a socket whose input is paused still learns that its client left.
 * Fired as EV_HUP; level-triggered like the rest, so unregister or close. */
#define EV_HUP 8

typedef void ev_file_fn(ev_loop *loop, int fd, int mask, void *arg);
/* Returns the delay in ms before it runs again (0 = next iteration), or -1 to stop. */
typedef int64_t ev_timer_fn(ev_loop *loop, uint64_t id, void *arg);
typedef void ev_fn(ev_loop *loop, void *arg);
typedef void ev_signal_fn(ev_loop *loop, int signo, void *arg);

/* A loop. Returns NULL when the poller cannot be created (errno set). */
ev_loop *ev_new(void);
/* Frees the loop and its own fds (poller, signalfd); pending timers and deferred
 * calls are dropped without being called. Registered fds are not closed. */
void ev_free(ev_loop *loop);

/* Runs until ev_stop() (returns 0), or -1 if the poller fails. */
int ev_run(ev_loop *loop);
/* Makes ev_run return after the current iteration. Loop thread only (from
 * another thread, use an ev_async whose callback calls ev_stop). */
void ev_stop(ev_loop *loop);
/* Runs one iteration, waiting at most max_wait_ms (-1 = until something
 * happens or the next timer). Returns the number of file events handled, or -1. */
int ev_run_once(ev_loop *loop, int max_wait_ms);

/* Monotonic ms, cached at the start of each iteration. ev_now_update refreshes it. */
uint64_t ev_now_ms(const ev_loop *loop);
uint64_t ev_now_update(ev_loop *loop);

/* File events. ev_set registers fd (or replaces its callback) with an interest
 * mask; ev_mod changes the mask only (EV_NONE keeps the fd known but silent);
 * ev_del forgets it (call before close). Each returns 0 or -1 (errno). */
int ev_set(ev_loop *loop, int fd, int mask, ev_file_fn *fn, void *arg);
int ev_mod(ev_loop *loop, int fd, int mask);
int ev_add_mask(ev_loop *loop, int fd, int mask); /* mask |= m */
int ev_del_mask(ev_loop *loop, int fd, int mask); /* mask &= ~m */
void ev_del(ev_loop *loop, int fd);
int ev_mask(const ev_loop *loop, int fd); /* current interest, EV_NONE if unknown */

/* Timers. ev_timer_add returns an id (never 0), or 0 on allocation failure.
 * ev_timer_del on an id that already fired or was deleted is a no-op, so ids may
 * be kept in objects without care. ev_timer_set moves a live timer's deadline to
 * now + after_ms (returns 0, or -1 if the id is dead). No allocation in steady
 * state: timer nodes are recycled. */
uint64_t ev_timer_add(ev_loop *loop, uint64_t after_ms, ev_timer_fn *fn, void *arg);
void ev_timer_del(ev_loop *loop, uint64_t id);
int ev_timer_set(ev_loop *loop, uint64_t id, uint64_t after_ms);
int ev_timer_alive(const ev_loop *loop, uint64_t id);

/* Calls fn(loop, arg) once, after the current batch of events (or at the start
 * of the next iteration if called outside one). Calls made from a deferred call
 * run in the same pass. Returns 0, or -1 on allocation failure. */
int ev_defer(ev_loop *loop, ev_fn *fn, void *arg);
/* Drops every pending deferred call of fn with arg (before freeing arg). */
void ev_defer_cancel(ev_loop *loop, ev_fn *fn, void *arg);

/* Before-sleep hooks, in registration order; at most 16. Returns 0 or -1.
 * They run again after any deferred call or batched completion that follows
 * them, so whatever those queue is flushed before the loop sleeps: output
 * queued for a hook needs no EV_WRITE interest. Batched I/O (ev_io_send)
 * queued by the hooks is issued right after them, before any deferred call. */
int ev_before_sleep(ev_loop *loop, ev_fn *fn, void *arg);
void ev_before_sleep_del(ev_loop *loop, ev_fn *fn, void *arg);

/* Routes signo to fn on the loop thread through a signalfd. The signal is blocked
 * for the calling thread (pthread_sigmask): call this on the loop thread before
 * starting other threads so they inherit the block. Returns 0 or -1. */
int ev_signal(ev_loop *loop, int signo, ev_signal_fn *fn, void *arg);

/* Cross-thread wake-up. ev_async_new/free on the loop thread; ev_async_send
 * from any thread (async-signal-safe too: one write to an eventfd). */
typedef struct ev_async ev_async;
ev_async *ev_async_new(ev_loop *loop, ev_fn *fn, void *arg);
void ev_async_send(ev_async *a);
void ev_async_free(ev_async *a);

/* Batched socket I/O (ev_batch.c, io_uring). Once enabled on a loop, ev_io_send
 * and ev_io_recv queue a nonblocking send or recv; everything queued during an
 * iteration is issued with one system call just before the loop sleeps, and
 * each callback gets what send()/recv() with MSG_DONTWAIT would have returned:
 * bytes, 0 (EOF) or -errno (-EAGAIN: wait for readiness as usual). The memory
 * must stay valid until the callback or ev_io_cancel. A queued operation never
 * outlives the flush: nothing is in flight while the loop sleeps.
 * ev_batch_enable returns 0, or -1 with the reason in why (no io_uring: then
 * ev_io_send/recv return 0 and the caller makes the system call itself). */
typedef void ev_io_fn(ev_loop *loop, long res, void *arg);
int ev_batch_enable(ev_loop *loop, char *why, size_t why_len);
int ev_batch_enabled(const ev_loop *loop);
/* The operation's id (never 0), or 0 when batching is off or the queue full. */
uint64_t ev_io_send(ev_loop *loop, int fd, const void *data, size_t len, ev_io_fn *fn, void *arg);
/* A send of two pieces, a then b (a request's head and its body), as one
 * sendmsg: both stay valid until the callback. 0 also when the kernel offers
 * no batched sendmsg (the caller then calls writev itself). */
uint64_t ev_io_send2(ev_loop *loop, int fd, const void *a, size_t alen, const void *b, size_t blen, ev_io_fn *fn,
		     void *arg);
uint64_t ev_io_recv(ev_loop *loop, int fd, void *dst, size_t cap, ev_io_fn *fn, void *arg);
/* No callback comes for id afterwards (call before freeing the memory or closing
 * the fd). A dead id or 0 is ignored. */
void ev_io_cancel(ev_loop *loop, uint64_t id);
/* Flushes done (system calls) and operations issued through them. */
void ev_io_stats(const ev_loop *loop, uint64_t *flushes_total, uint64_t *ops_total);

/* Read buffers for sockets: blocks of EV_IOBUF_BYTES from malloc, recycled
 * most recently used first (up to EV_IOBUF_KEEP kept per loop, the rest freed),
 * so the connections that read in one pass share a few warm blocks, instead of
 * each keeping its own cold one or giving it back to malloc (which trims the
 * heap and faults the pages in again). */
#define EV_IOBUF_BYTES 32768
#define EV_IOBUF_KEEP 64
void *ev_iobuf_get(ev_loop *loop);             /* NULL when out of memory */
void ev_iobuf_put(ev_loop *loop, void *block); /* NULL is ignored */

/* Counters, for metrics and tests. */
uint64_t ev_iterations_total(const ev_loop *loop);
size_t ev_timers_pending(const ev_loop *loop);

#endif
