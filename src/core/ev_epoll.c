/*
 * ev_epoll.c — the epoll backend of ev.c: level-triggered, one epoll_ctl per
 * interest change. Nothing else of the loop lives here.
 */
#include "core/ev.h"
#include "core/ev_poll.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EV_POLL_BATCH 256

struct ev_poll {
	int epfd;
	struct epoll_event events[EV_POLL_BATCH];
};

ev_poll *ev_poll_new(void)
{
	ev_poll *p = calloc(1, sizeof(*p));
	if (!p) return NULL;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0) {
		free(p);
		return NULL;
	}
	return p;
}

void ev_poll_free(ev_poll *p)
{
	if (!p) return;
	close(p->epfd);
	free(p);
}

int ev_poll_update(ev_poll *p, int fd, int old_mask, int new_mask)
{
	struct epoll_event ee = {0};
	ee.data.fd = fd;
	if (new_mask & EV_READ) ee.events |= EPOLLIN;
	if (new_mask & EV_WRITE) ee.events |= EPOLLOUT;
	if (new_mask & EV_HUP) ee.events |= EPOLLRDHUP;
	int op;
	if (new_mask == EV_NONE) {
		if (old_mask == EV_NONE) return 0;
		op = EPOLL_CTL_DEL;
	} else {
		op = old_mask == EV_NONE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	}
	if (epoll_ctl(p->epfd, op, fd, &ee) == 0) return 0;
	/* The fd may have been closed and reopened behind our back. */
	if (op == EPOLL_CTL_MOD && errno == ENOENT) return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ee);
	if (op == EPOLL_CTL_ADD && errno == EEXIST) return epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ee);
	if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF)) return 0;
	return -1;
}

int ev_poll_wait(ev_poll *p, int timeout_ms, ev_fired *fired, int max)
{
	if (max > EV_POLL_BATCH) max = EV_POLL_BATCH;
	int n = epoll_wait(p->epfd, p->events, max, timeout_ms);
	if (n < 0) return errno == EINTR ? 0 : -1;
	for (int i = 0; i < n; i++) {
		uint32_t e = p->events[i].events;
		int m = 0;
		if (e & EPOLLIN) m |= EV_READ;
		if (e & EPOLLOUT) m |= EV_WRITE;
		if (e & EPOLLRDHUP) m |= EV_HUP;
		if (e & (EPOLLERR | EPOLLHUP)) m |= EV_READ | EV_WRITE | EV_HUP | EV_ERROR;
		fired[i].fd = p->events[i].data.fd;
		fired[i].mask = m;
	}
	return n;
}
