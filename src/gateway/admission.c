/*
 * admission.c — the decision and the wait queues of admission.h.
 *
 * The queue is one array for the process (one gateway, one loop thread),
 * bounded by ADMISSION_MAX_QUEUED and by each objective's own queue length;
 * an entry holds its call, whose pool reference keeps the pool alive, and a
 * copy of its objective's name (the configuration may be reloaded, and freed,
 * while it waits). It is scanned on every tick of the proxy's queue timer
 * (every 50 ms): small, and only ever non-empty while a pool is saturated.
 */
#include "gateway/admission.h"
#include "gateway/gateway.h"
#include "gateway/picker.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct waiting {
	gw_call *c;
	int priority;
	char objective[GW_NAME_LEN];   /* a copy: the configuration may be freed by a reload meanwhile */
	uint64_t since_ms, deadline_ms;
} waiting;

static struct {
	waiting *v;
	size_t n, cap;
} queue;

size_t admission_queued(const gw *g) { return queue.n; }

size_t admission_queued_objective(const gw *g, const char *objective)
{
	size_t k = 0;
	for (size_t i = 0; i < queue.n; i++) k += !strcmp(queue.v[i].objective, objective);
	return k;
}

static uint32_t queued_for(const gw_call *c, const char *objective)
{
	uint32_t k = 0;
	for (size_t i = 0; i < queue.n; i++)
		if (queue.v[i].c->pool == c->pool && !strcmp(queue.v[i].objective, objective)) k++;
	return k;
}

/* The 429: Retry-After in whole seconds (at least 1), counted by reason. */
static void shed(gw_call *c, const char *reason, admission_verdict *v)
{
	uint64_t s = (c->pool->cfg.picker.retry_after_ms + 999) / 1000;
	v->action = ADMISSION_SHED;
	v->status = 429;
	snprintf(v->headers, sizeof(v->headers), "Retry-After: %llu\r\n", (unsigned long long)(s ? s : 1));
	picker_metrics_shed(c, reason);
}

static const gw_objective_cfg *objective_of(const gw_call *c)
{
	const char *name = picker_req_objective(c->pk);
	const gw_config *cfg = c->g->cfg;
	for (size_t i = 0; name && *name && i < cfg->n_objectives; i++)
		if (!strcmp(cfg->objectives[i].name, name)) return &cfg->objectives[i];
	return NULL;
}

void admission_admit(gw_call *c, admission_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->action = ADMISSION_ADMIT;
	const char *emsg;
	if (picker_req_error(c->pk, &emsg)) {
		v->action = ADMISSION_SHED;
		v->status = 400;
		snprintf(v->msg, sizeof(v->msg), "%s", emsg);
		return;
	}
	int prio = picker_req_priority(c->pk);
	if (prio >= 0) return;
	uint64_t now = ev_now_ms(c->g->loop);
	int sat = picker_pool_saturated(c->pool, now);
	const gw_objective_cfg *o = objective_of(c);
	const char *oname = o ? o->name : "";
	uint32_t cap = o ? o->queue : 0;
	int d = admission_decide(prio, sat, cap ? queued_for(c, oname) : 0, cap);
	if (d == ADMISSION_QUEUE && queue.n >= ADMISSION_MAX_QUEUED) d = ADMISSION_SHED;
	if (d == ADMISSION_QUEUE && queue.n == queue.cap) {
		size_t nc = queue.cap ? queue.cap * 2 : 64;
		waiting *nv = realloc(queue.v, nc * sizeof(*nv));
		if (!nv) d = ADMISSION_SHED;
		else queue.v = nv, queue.cap = nc;
	}
	switch (d) {
	case ADMISSION_ADMIT:
		return;
	case ADMISSION_QUEUE: {
		waiting *w = &queue.v[queue.n++];
		w->c = c;
		w->priority = prio;
		str_copy(w->objective, oname, sizeof(w->objective));
		w->since_ms = now;
		w->deadline_ms = now + o->queue_timeout_ms;
		v->action = ADMISSION_QUEUE;
		return;
	}
	default:
		snprintf(v->msg, sizeof(v->msg),
			 "Pool %.64s is saturated in every region; requests of objective `%.64s` (priority %d) are shed. Retry later.",
			 c->pool->cfg.name, oname, prio);
		shed(c, cap ? "queue_full" : "saturated", v);
		return;
	}
}

void admission_forget(gw_call *c)
{
	for (size_t i = 0; i < queue.n; i++)
		if (queue.v[i].c == c) {
			memmove(&queue.v[i], &queue.v[i + 1], (queue.n - i - 1) * sizeof(queue.v[0]));
			queue.n--;
			return;
		}
}

static uint64_t rank_now_ms;
static int cmp_waiting(const void *pa, const void *pb)
{
	const waiting *a = pa, *b = pb;
	double ra = admission_rank(a->priority, rank_now_ms - a->since_ms);
	double rb = admission_rank(b->priority, rank_now_ms - b->since_ms);
	if (ra != rb) return ra > rb ? -1 : 1;
	return a->since_ms < b->since_ms ? -1 : a->since_ms > b->since_ms;
}

size_t admission_tick(gw *g, uint64_t now_ms, gw_call **calls, admission_verdict *verdicts, size_t cap)
{
	if (!queue.n || !cap) return 0;
	rank_now_ms = now_ms;
	qsort(queue.v, queue.n, sizeof(queue.v[0]), cmp_waiting);
	const gw_pool *released_pool[ADMISSION_RELEASE_PER_TICK * 4];
	uint32_t released_n[ADMISSION_RELEASE_PER_TICK * 4];
	size_t n_pools = 0, out = 0, kept = 0;
	for (size_t i = 0; i < queue.n; i++) {
		waiting *w = &queue.v[i];
		gw_call *c = w->c;
		if (out == cap) {
			queue.v[kept++] = *w;
			continue;
		}
		admission_verdict *v = &verdicts[out];
		memset(v, 0, sizeof(*v));
		if (now_ms >= w->deadline_ms) {
			snprintf(v->msg, sizeof(v->msg),
				 "Pool %.64s stayed saturated for %llu ms; requests of objective `%.64s` (priority %d) are shed. Retry later.",
				 c->pool->cfg.name, (unsigned long long)(now_ms - w->since_ms), w->objective, w->priority);
			shed(c, "queue_timeout", v);
			calls[out++] = c;
			continue;
		}
		size_t k;
		for (k = 0; k < n_pools && released_pool[k] != c->pool; k++);
		int room = k < n_pools ? released_n[k] < ADMISSION_RELEASE_PER_TICK : n_pools < ARRAY_LEN(released_pool);
		if (room && !picker_pool_saturated(c->pool, now_ms)) {
			if (k == n_pools) released_pool[n_pools] = c->pool, released_n[n_pools++] = 0;
			released_n[k]++;
			v->action = ADMISSION_ADMIT;
			calls[out++] = c;
			continue;
		}
		queue.v[kept++] = *w; /* still waiting */
	}
	queue.n = kept;
	return out;
}

void admission_deinit(gw *g)
{
	free(queue.v);
	queue.v = NULL;
	queue.n = queue.cap = 0;
}
