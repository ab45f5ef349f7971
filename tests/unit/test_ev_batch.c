/* test_ev_batch.c — the batch's failure path (src/core/ev_batch.c, compiled in
 * here with io_uring_submit_and_wait wrapped): when the ring fails, every
 * operation it held gets a result (-EIO) and later ones are refused, so their
 * owners go back to plain system calls. The working path is in test_ev.c. */
#include <liburing.h>
#include <errno.h>

static int fail_submit;
static int submit_and_wait_or_fail(struct io_uring *ring, unsigned wait_nr)
{
	return fail_submit ? -ENOMEM : io_uring_submit_and_wait(ring, wait_nr);
}
#define io_uring_submit_and_wait submit_and_wait_or_fail
#include "core/ev_batch.c"
#undef io_uring_submit_and_wait

#include "core/log.h"
#include "t.h"
#include <sys/socket.h>
#include <unistd.h>

static long results[8];
static int nresults;

static void done(ev_loop *l, long res, void *arg)
{
	if (nresults < 8) results[nresults++] = res;
}

static void test_broken_ring(void)
{
	ev_loop *l = ev_new();
	int sv[2];
	T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	char why[128];
	if (ev_batch_enable(l, why, sizeof(why)) < 0) {
		fprintf(stderr, "  io_uring unavailable here (%s): not tested\n", why);
		ev_free(l);
		close(sv[0]);
		close(sv[1]);
		return;
	}
	T_CHECK(ev_io_send(l, sv[0], "a", 1, done, NULL) != 0);
	ev_run_once(l, 0);
	T_EQ_INT(nresults, 1);
	T_EQ_INT(results[0], 1); /* working */
	fail_submit = 1;
	T_CHECK(ev_io_send(l, sv[0], "b", 1, done, NULL) != 0);
	T_CHECK(ev_io_send(l, sv[0], "c", 1, done, NULL) != 0);
	ev_run_once(l, 0);
	T_EQ_INT(nresults, 3); /* both answered */
	T_EQ_INT(results[1], -EIO);
	T_EQ_INT(results[2], -EIO);
	T_EQ_INT(ev_io_send(l, sv[0], "d", 1, done, NULL), 0); /* refused: send it yourself */
	ev_run_once(l, 0);
	T_EQ_INT(nresults, 3);
	char got[8] = "";
	T_EQ_INT(read(sv[1], got, sizeof(got)), 1);
	T_EQ_STR(got, "a");
	ev_free(l); /* a broken batch frees cleanly */
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	T_RUN(test_broken_ring);
	return T_END();
}
