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
 * The decision is pure (picker.c, with the rest of the picking policy); the
 * queue lives on the gateway's loop (admission.c). Calls go one way: the
 * proxy asks (admission_admit, admission_tick on its timer) and gets a
 * verdict back, which it carries out; admission never answers a client.
 *
 * Tenants (tenant.h): a request over one of its tenant's limits is shed
 * first (429, type rate_limit_exceeded), before it could queue. Fair
 * queuing (fair_queuing: true, the default): among the waiting requests of
 * the priority served next, the tenants take turns (round robin: the tenant
 * served longest ago goes first, then its oldest request), so one tenant's
 * flood cannot starve another's trickle; across priorities the aged rank
 * still decides. Off, the best aged rank goes first, oldest first.
 *
 * A waiting request owns what it keeps (its objective's name, copied): a
 * reload frees the configuration it was queued under while it waits.
 */
#ifndef GATEWAY_ADMISSION_H
#define GATEWAY_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#define ADMISSION_AGING_MS 1000       /* one priority level gained per second waited */
#define ADMISSION_MAX_QUEUED 10000    /* every queue of the gateway together */
#define ADMISSION_RELEASE_PER_TICK 16 /* waiting requests let go per pool per tick */

enum admission_action { ADMISSION_ADMIT = 0,
			ADMISSION_QUEUE,
			ADMISSION_SHED };

/* What to do with a request of priority when the pool is (or is not)
 * saturated and its objective's queue holds queued of queue_cap. */
int admission_decide(int priority, int saturated, uint32_t queued, uint32_t queue_cap);
/* The rank of a waiting request (higher leaves first). */
double admission_rank(int priority, uint64_t waited_ms);

/* A waiting request as admission_next sees it. */
typedef struct admission_cand {
	int priority; /* its objective's plus its tenant's */
	uint64_t waited_ms;
	uint32_t tenant;        /* tenant id */
	uint64_t tenant_served; /* its tenant's turn counter when last served (0: never) */
} admission_cand;
/* Which of v[0..n) (n > 0) leaves first: the priority of the best aged rank;
 * within it, with fair set, the tenant served longest ago (then the lowest
 * id), its longest waiting request; without, the best rank, longest waiting. */
size_t admission_next(const admission_cand *v, size_t n, int fair);

struct gw;
struct gw_call;
struct tenant_state;

/* What the proxy does with a request. */
typedef struct admission_verdict {
	int action;       /* enum admission_action */
	int status;       /* ADMISSION_SHED: 400 (unknown objective) or 429 */
	char headers[64]; /* ADMISSION_SHED 429: "Retry-After: N\r\n"; else "" */
	const char *type; /* the error's type when not the status's own (static); NULL */
	char msg[384];    /* ADMISSION_SHED: the OpenAI-style error's message */
} admission_verdict;

/* The verdict on a routed request, into v: ADMISSION_ADMIT (send it on),
 * ADMISSION_SHED (answer v->status), or ADMISSION_QUEUE (it waits; a later
 * admission_tick gives it back). */
void admission_admit(struct gw_call *c, admission_verdict *v);
/* The call ends while it may be queued (its client left): forget it. */
void admission_forget(struct gw_call *c);
/* Serves the queues at now_ms: takes out, best rank first, up to cap calls
 * whose wait is over: let go while their pool has capacity (ADMISSION_ADMIT)
 * or shed at their queue_timeout (ADMISSION_SHED, 429), into calls[i] and
 * verdicts[i]. Returns how many; the rest keep waiting. */
size_t admission_tick(struct gw *g, uint64_t now_ms, struct gw_call **calls, admission_verdict *verdicts, size_t cap);
/* Requests waiting now, in all queues (for /status and metrics). */
size_t admission_queued(const struct gw *g);
/* Requests of one objective waiting now, every pool together (the dashboard). */
size_t admission_queued_objective(const struct gw *g, const char *objective);
/* Requests of one tenant waiting now, every queue together (the dashboard). */
size_t admission_queued_tenant(const struct gw *g, const struct tenant_state *t);
void admission_deinit(struct gw *g);

#endif
