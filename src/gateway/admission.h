/*
 * admission.h — objectives, priorities and load shedding: whether a request
 * goes on to the picker now, waits for capacity, or gets 429.
 *
 * A request's objective comes from its x-infergate-objective header, else its
 * route's default; the objective gives an integer priority (none: 0). While
 * some region of the pool has capacity, everything goes on. When every region
 * is saturated (picker_pool_saturated), requests of priority >= 0 still go on
 * (to the least loaded endpoint), and those with a negative priority are shed:
 * 429 with an OpenAI-style error and Retry-After — or, when their objective
 * has a queue, they wait in it (bounded in length and in time) and go on as
 * soon as capacity returns.
 *
 * Nothing starves: a waiting request's rank is its priority plus one level per
 * ADMISSION_AGING_MS waited, so an old low-priority request passes newer
 * higher ones; and every wait ends by queue_timeout at the latest.
 *
 * The decision is pure (admission_policy.c); the queue lives on
 * the gateway's loop (admission.c), served by the picker's tick.
 */
#ifndef GATEWAY_ADMISSION_H
#define GATEWAY_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#define ADMISSION_AGING_MS 1000        /* one priority level gained per second waited */
#define ADMISSION_MAX_QUEUED 10000     /* every queue of the gateway together */
#define ADMISSION_RELEASE_PER_TICK 16  /* waiting requests let go per pool per tick */

enum admission_verdict { ADMISSION_ADMIT = 0, ADMISSION_QUEUE, ADMISSION_SHED };

/* What to do with a request of priority when the pool is (or is not)
 * saturated and its objective's queue holds queued of queue_cap. */
int admission_decide(int priority, int saturated, uint32_t queued, uint32_t queue_cap);
/* The rank of a waiting request (higher leaves first). */
double admission_rank(int priority, uint64_t waited_ms);

struct gw;
struct gw_call;

/* Takes a routed request: ADMISSION_ADMIT (the caller sends it on), or the
 * request was answered 429 (ADMISSION_SHED) or queued (ADMISSION_QUEUE; it
 * continues through proxy_admission_done later). */
int admission_admit(struct gw_call *c);
/* The call ends while it may be queued (its client left): forget it. */
void admission_forget(struct gw_call *c);
/* Serves the queues: lets requests go on while their pool has capacity, sheds
 * those whose wait is over. Called by the picker's tick. */
void admission_tick(struct gw *g, uint64_t now_ms);
/* Requests waiting now, in all queues (for /status and metrics). */
size_t admission_queued(const struct gw *g);
/* Requests of one objective waiting now, every pool together (the dashboard). */
size_t admission_queued_objective(const struct gw *g, const char *objective);
void admission_deinit(struct gw *g);

#endif
