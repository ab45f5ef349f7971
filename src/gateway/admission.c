/*
 * admission.c — the decision and the wait queues of admission.h.
 *
 * The queue is one array for the process (one gateway, one loop thread),
 * bounded by ADMISSION_MAX_QUEUED and by each objective's own queue length;
 * an entry holds its call, whose pool reference keeps the pool alive. It is
 * scanned on every tick (every 50 ms): small, and only ever non-empty while a
 * pool is saturated.
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
	const char *objective;         /* the configuration's, alive while the call holds its pool */
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

/* The 429: OpenAI-style body, Retry-After in whole seconds (at least 1). */
static void shed(gw_call *c, const char *reason, const char *fmt_msg)
{
	char hdr[64], msg[512];
	uint64_t s = (c->pool->cfg.picker.retry_after_ms + 999) / 1000;
	snprintf(hdr, sizeof(hdr), "Retry-After: %llu\r\n", (unsigned long long)(s ? s : 1));
	snprintf(msg, sizeof(msg), "%s", fmt_msg);
	picker_metrics_shed(c, reason);
	proxy_admission_done(c, 429, hdr, msg);
}

static const gw_objective_cfg *objective_of(const gw_call *c)
{
	const char *name = picker_req_objective(c->pk);
	const gw_config *cfg = c->g->cfg;
	for (size_t i = 0; name && *name && i < cfg->n_objectives; i++)
		if (!strcmp(cfg->objectives[i].name, name)) return &cfg->objectives[i];
	return NULL;
}

int admission_admit(gw_call *c)
{
	const char *emsg;
	if (picker_req_error(c->pk, &emsg)) {
		proxy_admission_done(c, 400, NULL, emsg);
		return ADMISSION_SHED;
	}
	int prio = picker_req_priority(c->pk);
	if (prio >= 0) return ADMISSION_ADMIT;
	uint64_t now = ev_now_ms(c->g->loop);
	int sat = picker_pool_saturated(c->pool, now);
	const gw_objective_cfg *o = objective_of(c);
	const char *oname = o ? o->name : "";
	uint32_t cap = o ? o->queue : 0;
	int v = admission_decide(prio, sat, cap ? queued_for(c, oname) : 0, cap);
	if (v == ADMISSION_QUEUE && queue.n >= ADMISSION_MAX_QUEUED) v = ADMISSION_SHED;
	if (v == ADMISSION_QUEUE && queue.n == queue.cap) {
		size_t nc = queue.cap ? queue.cap * 2 : 64;
		waiting *nv = realloc(queue.v, nc * sizeof(*nv));
		if (!nv) v = ADMISSION_SHED;
		else queue.v = nv, queue.cap = nc;
	}
	char msg[384];
	switch (v) {
	case ADMISSION_ADMIT:
		return ADMISSION_ADMIT;
	case ADMISSION_QUEUE:
		queue.v[queue.n++] = (waiting){ c, prio, oname, now, now + o->queue_timeout_ms };
		return ADMISSION_QUEUE;
	default:
		snprintf(msg, sizeof(msg),
			 "Pool %.64s is saturated in every region; requests of objective `%.64s` (priority %d) are shed. Retry later.",
			 c->pool->cfg.name, oname, prio);
		shed(c, cap ? "queue_full" : "saturated", msg);
		return ADMISSION_SHED;
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

void admission_tick(gw *g, uint64_t now_ms)
{
	if (!queue.n) return;
	rank_now_ms = now_ms;
	qsort(queue.v, queue.n, sizeof(queue.v[0]), cmp_waiting);
	/* Take the entries out first: answering a call may end it (and call
	 * admission_forget, which must not find it again). */
	size_t n = queue.n;
	waiting *batch = malloc(n * sizeof(*batch));
	if (!batch) return;
	memcpy(batch, queue.v, n * sizeof(*batch));
	queue.n = 0;
	const gw_pool *released_pool[ADMISSION_RELEASE_PER_TICK * 4];
	uint32_t released_n[ADMISSION_RELEASE_PER_TICK * 4];
	size_t n_pools = 0;
	for (size_t i = 0; i < n; i++) {
		waiting *w = &batch[i];
		gw_call *c = w->c;
		if (now_ms >= w->deadline_ms) {
			char msg[384];
			snprintf(msg, sizeof(msg),
				 "Pool %.64s stayed saturated for %llu ms; requests of objective `%.64s` (priority %d) are shed. Retry later.",
				 c->pool->cfg.name, (unsigned long long)(now_ms - w->since_ms), w->objective, w->priority);
			shed(c, "queue_timeout", msg);
			continue;
		}
		size_t k;
		for (k = 0; k < n_pools && released_pool[k] != c->pool; k++);
		int room = k < n_pools ? released_n[k] < ADMISSION_RELEASE_PER_TICK : n_pools < ARRAY_LEN(released_pool);
		if (room && !picker_pool_saturated(c->pool, now_ms)) {
			if (k == n_pools) released_pool[n_pools] = c->pool, released_n[n_pools++] = 0;
			released_n[k]++;
			proxy_admission_done(c, 0, NULL, NULL);
			continue;
		}
		queue.v[queue.n++] = *w; /* still waiting (capacity cannot shrink below n) */
	}
	free(batch);
}

void admission_deinit(gw *g)
{
	free(queue.v);
	queue.v = NULL;
	queue.n = queue.cap = 0;
}
