/*
 * ev_poll.h — the poller backend interface of ev.c (internal to src/core).
 * One implementation: ev_epoll.c. Masks are EV_READ/EV_WRITE/EV_HUP; fired masks
 * may carry EV_ERROR.
 */
#ifndef CORE_EV_POLL_H
#define CORE_EV_POLL_H

typedef struct ev_poll ev_poll;
typedef struct ev_fired {
	int fd;
	int mask;
} ev_fired;

ev_poll *ev_poll_new(void);
void ev_poll_free(ev_poll *p);
/* Changes fd's interest from old_mask to new_mask (EV_NONE = removed). 0 or -1. */
int ev_poll_update(ev_poll *p, int fd, int old_mask, int new_mask);
/* Waits up to timeout_ms (-1 forever); fills at most max entries. Returns the
 * count (0 on timeout or EINTR), or -1. */
int ev_poll_wait(ev_poll *p, int timeout_ms, ev_fired *fired, int max);

#endif
