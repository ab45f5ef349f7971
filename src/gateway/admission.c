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
#include "gateway/tenant.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct waiting {
	gw_call *c; /* holds its tenant (c->tenant) while it waits */
	int priority;
	char objective[GW_NAME_LEN]; /* a copy: the configuration may be freed by a reload meanwhile */
	uint64_t since_ms, deadline_ms;
} waiting;

static struct {
	waiting *v;
	size_t n, cap;
	uint64_t turn; /* fair queuing: counts releases; a tenant's served_seq is its last */
} queue;

size_t admission_queued(const gw *g) { return queue.n; }

size_t admission_queued_objective(const gw *g, const char *objective)
{
	size_t k = 0;
	for (size_t i = 0; i < queue.n; i++) k += !strcmp(queue.v[i].objective, objective);
	return k;
}

size_t admission_queued_tenant(const gw *g, const tenant_state *t)
{
	(void)g;
	size_t k = 0;
	for (size_t i = 0; i < queue.n; i++) k += queue.v[i].c->tenant == t;
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

/* 1 (v filled: 429) when c is over one of t's limits; 0 when it was taken. */
static int tenant_over(gw_call *c, tenant_state *t, uint64_t now, admission_verdict *v)
{
	if (t->m_requests) prom_inc(t->m_requests);
	uint64_t retry_ms;
	int lim = tenant_take(t, now, c->reserve_tokens, &retry_ms);
	if (lim == TENANT_OK) {
		c->tenant_taken = 1;
		if (t->m_in_flight) prom_set(t->m_in_flight, t->in_flight);
		return 0;
	}
	tenant_count_limited(t, lim);
	c->tenant_limit = tenant_limit_name(lim);
	uint64_t s = (retry_ms + 999) / 1000;
	v->action = ADMISSION_SHED;
	v->status = 429;
	v->type = "rate_limit_exceeded";
	snprintf(v->headers, sizeof(v->headers), "Retry-After: %llu\r\n", (unsigned long long)(s ? s : 1));
	if (lim == TENANT_TPM)
		snprintf(v->msg, sizeof(v->msg), "Rate limit reached for tenant %.64s on tokens per minute: limit %llu. Retry after %llu s.",
			 t->name, (unsigned long long)t->tokens_per_minute, (unsigned long long)(s ? s : 1));
	else if (lim == TENANT_RPS)
		snprintf(v->msg, sizeof(v->msg), "Rate limit reached for tenant %.64s on requests per second: limit %g. Retry after %llu s.",
			 t->name, t->requests_per_second, (unsigned long long)(s ? s : 1));
	else
		snprintf(v->msg, sizeof(v->msg), "Rate limit reached for tenant %.64s on requests in flight: limit %u. Retry when one ends.",
			 t->name, t->max_in_flight);
	return 1;
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
	uint64_t now = ev_now_ms(c->g->loop);
	tenant_state *t = c->tenant;
	if (t && tenant_over(c, t, now, v)) return;
	int prio = picker_req_priority(c->pk) + (t ? t->priority : 0);
	if (prio >= 0) {
		if (t && t->m_queue) prom_observe(t->m_queue, 0);
		return;
	}
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

/* The request leaves the queue at now_ms (its tenant's turn and wait noted). */
static void leave(waiting *w, uint64_t now_ms)
{
	tenant_state *t = w->c->tenant;
	w->c->queued_ms = now_ms - w->since_ms;
	if (!t) return;
	t->served_seq = ++queue.turn;
	if (t->m_queue) prom_observe(t->m_queue, (double)w->c->queued_ms / 1000.0);
}

size_t admission_tick(gw *g, uint64_t now_ms, gw_call **calls, admission_verdict *verdicts, size_t cap)
{
	if (!queue.n || !cap) return 0;
	size_t out = 0, kept = 0;
	/* Waits that are over first: shed at their queue_timeout. */
	for (size_t i = 0; i < queue.n; i++) {
		waiting *w = &queue.v[i];
		if (out == cap || now_ms < w->deadline_ms) {
			queue.v[kept++] = *w;
			continue;
		}
		gw_call *c = w->c;
		admission_verdict *v = &verdicts[out];
		memset(v, 0, sizeof(*v));
		snprintf(v->msg, sizeof(v->msg),
			 "Pool %.64s stayed saturated for %llu ms; requests of objective `%.64s` (priority %d) are shed. Retry later.",
			 c->pool->cfg.name, (unsigned long long)(now_ms - w->since_ms), w->objective, w->priority);
		shed(c, "queue_timeout", v);
		c->queued_ms = now_ms - w->since_ms;
		calls[out++] = c;
	}
	queue.n = kept;
	/* Then, one at a time, the next to leave (admission_next) among those
	 * whose pool has capacity and has not let ADMISSION_RELEASE_PER_TICK go
	 * this tick; a pool without either holds all of its requests. */
	const gw_pool *blocked[64];
	const gw_pool *released_pool[64];
	uint32_t released_n[64];
	size_t n_blocked = 0, n_pools = 0;
	admission_cand *cand = queue.n ? malloc(queue.n * sizeof(*cand)) : NULL;
	size_t *idx = queue.n ? malloc(queue.n * sizeof(*idx)) : NULL;
	int fair = g->cfg->fair_queuing;
	while (out < cap && cand && idx) {
		size_t m = 0;
		for (size_t i = 0; i < queue.n; i++) {
			const waiting *w = &queue.v[i];
			size_t k;
			for (k = 0; k < n_blocked && blocked[k] != w->c->pool; k++)
				;
			if (k < n_blocked) continue;
			const tenant_state *t = w->c->tenant;
			cand[m] = (admission_cand){w->priority, now_ms - w->since_ms, t ? t->id : 0, t ? t->served_seq : 0};
			idx[m++] = i;
		}
		if (!m) break;
		size_t i = idx[admission_next(cand, m, fair)];
		waiting *w = &queue.v[i];
		gw_call *c = w->c;
		size_t k;
		for (k = 0; k < n_pools && released_pool[k] != c->pool; k++)
			;
		int room = k < n_pools ? released_n[k] < ADMISSION_RELEASE_PER_TICK : n_pools < ARRAY_LEN(released_pool);
		if (!room || picker_pool_saturated(c->pool, now_ms)) {
			if (n_blocked == ARRAY_LEN(blocked)) break;
			blocked[n_blocked++] = c->pool;
			continue;
		}
		if (k == n_pools) released_pool[n_pools] = c->pool, released_n[n_pools++] = 0;
		released_n[k]++;
		leave(w, now_ms);
		admission_verdict *v = &verdicts[out];
		memset(v, 0, sizeof(*v));
		v->action = ADMISSION_ADMIT;
		calls[out++] = c;
		memmove(&queue.v[i], &queue.v[i + 1], (queue.n - i - 1) * sizeof(queue.v[0]));
		queue.n--;
	}
	free(cand);
	free(idx);
	return out;
}

void admission_deinit(gw *g)
{
	free(queue.v);
	queue.v = NULL;
	queue.n = queue.cap = 0;
}
