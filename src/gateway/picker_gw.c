/*
 * picker_gw.c — the picker's glue to the running gateway (picker.h): views of
 * a pool's endpoints for the pipeline, what a request brings (its prompt's
 * block chain, its objective, the explain opt-in), what each endpoint keeps
 * (its prefix index, its last filters and scores), the pool's region state,
 * the picker's metrics (the autoscaling signal among them) and the tick that
 * refreshes them.
 *
 * A run's views live in the caller's pick_result; picker_commit learns from
 * the very run picker_pick made, handed back by the caller.
 */
#include "gateway/picker.h"
#include "gateway/admission.h"
#include "gateway/gateway.h"
#include "gateway/health.h"
#include "gateway/pool.h"
#include "gateway/prefix_index.h"
#include "gateway/scrape.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PICKER_TICK_MS 50
#define PICKER_GAUGES_MS 250
#define PICKER_DEFAULT_INDEX_BLOCKS 16384

/* Per gateway. Owner: gw.pk. */
typedef struct picker_gw {
	gw *g;
	uint64_t tick_timer;
	uint64_t gauges_ms;
	prom_family *scrapes, *shed, *picks, *prefix_blocks, *spills;
	prom_family *kv_avg, *waiting, *running, *in_flight, *spilled, *saturated, *endpoints_fresh, *queued;
} picker_gw;

/* Per pool. Owner: gw_pool.pk (freed with the pool: a reload starts afresh). */
typedef struct picker_pool {
	region_state regions;
	uint64_t spills_seen[REGION_MAX];
} picker_pool;

/* Per endpoint. Owner: gw_endpoint.pk. */
typedef struct picker_ep {
	prefix_index *index;
	unsigned passed; /* filters passed in the last run that saw it */
	double score[PK_N_SCORERS], total;
	int guarded;
	int rank; /* position in the last order, -1 = not a candidate */
	uint32_t prefix_blocks;
	uint64_t run_ms;
} picker_ep;

struct picker_req {
	picker_req *next_free; /* in the list of recycled ones */
	uint32_t cap;          /* room in chain, in blocks */
	uint32_t n;            /* blocks in chain */
	int priority;
	int explain;
	int bad;          /* unknown objective: 400 */
	uint64_t session; /* hash of the session header's value (never the value); 0: none */
	char objective[GW_NAME_LEN];
	char err[GW_NAME_LEN + 64];
	char why[1200]; /* the explain text of the last attempt (kept last but chain: not cleared on reuse) */
	uint64_t chain[];
};

/* Requests' states are recycled (one loop thread): a request allocates none. */
#define PICKER_FREE_REQS_KEPT 1024
static picker_req *free_reqs;
static unsigned n_free_reqs;

/* ------------------------------------------------------------ requests */

/* The default objective of the route this request took (the rule of gw_route). */
static const char *route_objective(const gw *g, const char *path, const char *model)
{
	const gw_config *cfg = g->cfg;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const gw_route_cfg *r = &cfg->routes[i];
		if (strncmp(path, r->prefix, strlen(r->prefix))) continue;
		if ((size_t)r->pool_index >= g->n_pools) continue;
		gw_pool *p = g->pools[r->pool_index];
		if (r->model[0] ? !strcmp(r->model, model) : gw_pool_serves(p, model))
			return r->objective_index ? cfg->objectives[r->objective_index - 1].name : "";
	}
	return "";
}

static int truthy(const char *s, size_t n)
{
	return (n == 1 && (s[0] == '1' || s[0] == 'y' || s[0] == 'Y')) || str_ieq(s, n, "true") || str_ieq(s, n, "yes");
}

picker_req *picker_req_new(gw_call *c, const gw_request *rq)
{
	const gw_picker_cfg *pc = &c->pool->cfg.picker;
	uint32_t max = pc->prefix_max_blocks > PREFIX_MAX_BLOCKS ? PREFIX_MAX_BLOCKS : pc->prefix_max_blocks;
	picker_req *q = free_reqs;
	if (q && q->cap >= max) {
		free_reqs = q->next_free;
		n_free_reqs--;
	} else {
		q = malloc(sizeof(*q) + max * sizeof(uint64_t));
		if (!q) return NULL;
		q->cap = max;
	}
	uint32_t cap = q->cap;
	memset(q, 0, offsetof(picker_req, why)); /* chain is written before it is read (n blocks) */
	q->why[0] = 0;
	q->cap = cap;
	if (max && rq) {
		/* The chain of the prompt's head, as the front door gathered it. */
		size_t hl;
		const char *head = request_prompt_head(rq, &hl);
		prefix_hasher h;
		prefix_hasher_init(&h, c->model, pc->prefix_block_chars, q->chain, max);
		prefix_hasher_feed(&h, head, hl);
		q->n = h.n;
	}
	const gw_config *cfg = c->g->cfg;
	size_t hl = 0;
	const char *h = c->r && cfg->session_header[0] ? httpd_header(c->r, cfg->session_header, &hl) : NULL;
	if (h && hl) q->session = picker_session_hash(h, hl);
	hl = 0;
	h = c->r ? httpd_header(c->r, "x-infergate-objective", &hl) : NULL;
	if (h && hl) {
		size_t i;
		for (i = 0; i < cfg->n_objectives; i++)
			if (str_ieq(h, hl, cfg->objectives[i].name) && strlen(cfg->objectives[i].name) == hl) break;
		if (i == cfg->n_objectives) {
			q->bad = 1;
			snprintf(q->err, sizeof(q->err), "Unknown objective `%.*s` in x-infergate-objective.",
				 (int)(hl > 64 ? 64 : hl), h);
		} else {
			str_copy(q->objective, cfg->objectives[i].name, sizeof(q->objective));
			q->priority = cfg->objectives[i].priority;
		}
	} else {
		const char *name = route_objective(c->g, c->path, c->model);
		for (size_t i = 0; *name && i < cfg->n_objectives; i++)
			if (!strcmp(cfg->objectives[i].name, name)) {
				str_copy(q->objective, name, sizeof(q->objective));
				q->priority = cfg->objectives[i].priority;
			}
	}
	const char *x = c->r && pc->explain ? httpd_header(c->r, "x-infergate-explain", &hl) : NULL;
	q->explain = x && truthy(x, hl);
	return q;
}

void picker_req_free(picker_req *q)
{
	if (!q) return;
	if (n_free_reqs < PICKER_FREE_REQS_KEPT) {
		q->next_free = free_reqs;
		free_reqs = q;
		n_free_reqs++;
		return;
	}
	free(q);
}

static void free_reqs_release(void)
{
	while (free_reqs) {
		picker_req *q = free_reqs;
		free_reqs = q->next_free;
		free(q);
	}
	n_free_reqs = 0;
}
int picker_req_priority(const picker_req *q) { return q ? q->priority : 0; }
const char *picker_req_objective(const picker_req *q) { return q ? q->objective : ""; }

int picker_req_error(const picker_req *q, const char **msg)
{
	if (!q || !q->bad) return 0;
	*msg = q->err;
	return 400;
}

/* ------------------------------------------------------------ runs */

static picker_pool *pool_state(gw_pool *p)
{
	if (!p->pk) p->pk = calloc(1, sizeof(picker_pool));
	return p->pk;
}

static picker_ep *ep_state(gw_endpoint *e)
{
	if (!e->pk) {
		e->pk = calloc(1, sizeof(picker_ep));
		if (e->pk) e->pk->rank = -1;
	}
	return e->pk;
}

/* Where the request's adapter stands on e (enum pk_adapter); the number of
 * adapters running there into *running. */
static int adapter_state(const gw_endpoint *e, const char *model, const scrape_values *sv, uint32_t *running)
{
	*running = 0;
	if (sv && (sv->has & SCRAPE_HAS_LORA) && sv->lora_running[0]) {
		*running = 1;
		for (const char *q = sv->lora_running; *q; q++) *running += *q == ',';
	}
	if (!model || !e->adapters) return PK_ADAPTER_NONE;
	size_t i;
	for (i = 0; i < e->n_models && strcmp(e->models[i], model); i++)
		;
	if (i == e->n_models || !((e->adapters >> i) & 1)) return PK_ADAPTER_NONE;
	if (!sv || !(sv->has & SCRAPE_HAS_LORA)) return PK_ADAPTER_LISTED;
	size_t ml = strlen(model);
	for (const char *q = sv->lora_running; *q;) {
		const char *end = strchr(q, ',');
		size_t n = end ? (size_t)(end - q) : strlen(q);
		if (n == ml && !memcmp(q, model, n)) return PK_ADAPTER_RUNNING;
		q += n + (end != NULL);
	}
	return *running < sv->max_lora ? PK_ADAPTER_SLOT : PK_ADAPTER_LISTED;
}

static int serves(const gw_endpoint *e, const char *model)
{
	if (!model || !*model || !e->learn_models || !e->n_models) return 1; /* "": the server's default */
	for (size_t i = 0; i < e->n_models; i++)
		if (!strcmp(e->models[i], model)) return 1;
	return 0;
}

int picker_pick(gw_pool *pool, const pick_ctx *ctx, pick_result *out)
{
	const picker_req *q = ctx->req;
	uint64_t now = ctx->now_ms;
	size_t n = pool->n_eps < GW_MAX_ENDPOINTS ? pool->n_eps : GW_MAX_ENDPOINTS;
	for (size_t i = 0; i < n; i++) {
		gw_endpoint *e = pool->eps[i];
		pk_view *v = &out->views[i];
		memset(v, 0, sizeof(*v));
		v->index = (int)i;
		v->label = e->label;
		v->region = e->region;
		v->region_rank = e->region_rank;
		v->tried = ctx->tried ? pick_tried(ctx->tried, (int)i) : 0;
		v->available = !e->removed && e->state != GW_HEALTH_DOWN;
		v->ejected = health_ejected(e, now);
		v->serves_model = serves(e, ctx->model);
		v->util = scrape_util(e, now, &v->stale);
		const scrape_values *sv = scrape_last(e);
		if (sv) {
			v->waiting = sv->waiting;
			v->running = sv->running;
			v->max_lora = sv->max_lora;
		}
		v->adapter = adapter_state(e, ctx->model, sv, &v->adapters_running);
		v->in_flight = e->in_flight;
		v->weight = e->weight ? e->weight : 1;
		v->picked_total = e->picked_total;
		if (q && q->n && e->pk && e->pk->index) v->prefix_blocks = prefix_index_match(e->pk->index, q->chain, q->n);
	}
	out->n_views = n;
	out->now_ms = now;
	picker_pool *pp = pool_state(pool);
	region_state scratch; /* out of memory: no hysteresis, still a pick */
	if (!pp) memset(&scratch, 0, sizeof(scratch));
	pk_params p = {&pool->cfg.picker, q ? q->n : 0, now, q ? q->session : 0};
	picker_run(out->views, n, &p, pp ? &pp->regions : &scratch, &out->res);
	out->best = out->res.n_order ? out->views[out->res.order[0]].index : -1;
	return out->best;
}

int picker_any_left(const gw_pool *pool, const pick_ctx *ctx)
{
	/* The pipeline's hard filters, alone: what it would order is exactly the
	 * untried endpoints that are not down (the soft ones never empty a set). */
	size_t n = pool->n_eps < GW_MAX_ENDPOINTS ? pool->n_eps : GW_MAX_ENDPOINTS;
	for (size_t i = 0; i < n; i++) {
		const gw_endpoint *e = pool->eps[i];
		if (ctx->tried && pick_tried(ctx->tried, (int)i)) continue;
		if (!e->removed && e->state != GW_HEALTH_DOWN) return 1;
	}
	return 0;
}

static const char *decision(const pk_result *r)
{
	return r->saturated ? "saturated" : r->region_rank > 0 ? "spill"
							       : "local";
}

void picker_commit(gw_pool *pool, const pick_ctx *ctx, const pick_result *pr)
{
	int i = pr->best;
	if (i < 0 || (size_t)i >= pool->n_eps || (size_t)i >= pr->n_views) return;
	const pk_result *res = &pr->res;
	picker_req *q = ctx->req;
	gw_endpoint *e = pool->eps[i];
	/* What every endpoint looked like in this run, for /status. */
	for (size_t k = 0; k < pr->n_views; k++) {
		picker_ep *s = ep_state(pool->eps[k]);
		if (!s) continue;
		const pk_view *v = &pr->views[k];
		s->passed = v->passed;
		memcpy(s->score, v->score, sizeof(s->score));
		s->total = v->total;
		s->guarded = v->guarded;
		s->prefix_blocks = v->prefix_blocks;
		s->run_ms = pr->now_ms;
		s->rank = -1;
	}
	for (size_t k = 0; k < res->n_order; k++) {
		picker_ep *s = pool->eps[pr->views[res->order[k]].index]->pk;
		if (s) s->rank = (int)k;
	}
	/* Learn: this endpoint now (probably) holds the request's prefix. */
	picker_ep *s = ep_state(e);
	if (s && q && q->n) {
		if (!s->index) {
			uint32_t cap = pool->cfg.picker.prefix_index_blocks;
			const scrape_values *sv = scrape_last(e);
			if (!cap) cap = sv && sv->num_gpu_blocks ? sv->num_gpu_blocks : PICKER_DEFAULT_INDEX_BLOCKS;
			s->index = prefix_index_new(cap);
		}
		if (s->index) prefix_index_add(s->index, q->chain, q->n);
	}
	picker_gw *pg = e->g->pk;
	if (pg) {
		const char *lv[] = {pool->cfg.name, e->region, decision(res)};
		prom_inc(prom_series_get(pg->picks, lv));
		if (q && q->n) {
			const char *lr[] = {pool->cfg.name, "requested"}, *lm[] = {pool->cfg.name, "matched"};
			prom_add(prom_series_get(pg->prefix_blocks, lr), q->n);
			prom_add(prom_series_get(pg->prefix_blocks, lm), pr->views[i].prefix_blocks);
		}
	}
	if (q && q->explain) {
		const pk_view *v = &pr->views[i];
		char filters[128], relaxed[128];
		picker_filter_names(v->passed, filters, sizeof(filters));
		picker_filter_names(res->relaxed, relaxed, sizeof(relaxed));
		snprintf(q->why, sizeof(q->why),
			 "endpoint=%s; region=%s; decision=%s; util=%.3f%s; score=%.3f (kv=%.3f queue=%.3f in_flight=%.3f "
			 "prefix=%.3f%s); prefix_blocks=%u/%u; candidates=%zu; filters=%s; relaxed=%s; session=%s; adapter=%s (%u of %u slots running)",
			 e->label, e->region, decision(res), v->util, v->stale ? " stale" : "", v->total,
			 v->score[PK_S_KV], v->score[PK_S_QUEUE], v->score[PK_S_INFLIGHT], v->score[PK_S_PREFIX],
			 v->guarded ? " guarded" : "", v->prefix_blocks, q->n, res->n_order, filters,
			 relaxed[0] ? relaxed : "none", !q->session ? "none" : res->session_kept ? "kept"
												 : "moved",
			 picker_adapter_name(v->adapter), v->adapters_running, v->max_lora);
	}
}

void picker_explain_header(const gw_call *c, void *headers_buf)
{
	if (!c->pk || !c->pk->explain || !c->pk->why[0]) return;
	buf_printf(headers_buf, "x-infergate-pick: %s\r\n", c->pk->why);
}

/* One pick_result for the loop thread (hundreds of KiB at GW_MAX_ENDPOINTS:
 * neither the stack nor a malloc per attempt, which glibc would serve with
 * mmap and munmap). A nested use while it is lent gets its own. */
static pick_result *scratch;
static int scratch_lent;

pick_result *picker_result_get(void)
{
	if (scratch_lent) return malloc(sizeof(pick_result));
	if (!scratch) scratch = malloc(sizeof(*scratch));
	if (scratch) scratch_lent = 1;
	return scratch;
}

void picker_result_put(pick_result *pr)
{
	if (pr && pr == scratch) scratch_lent = 0;
	else free(pr);
}

void picker_result_free_all(void)
{
	free(scratch);
	scratch = NULL;
	scratch_lent = 0;
}

int picker_pool_saturated(gw_pool *pool, uint64_t now_ms)
{
	pick_result *pr = picker_result_get();
	if (!pr) return 0;
	pick_ctx ctx = {NULL, NULL, now_ms, NULL};
	picker_pick(pool, &ctx, pr);
	int sat = pr->res.saturated;
	picker_result_put(pr);
	return sat;
}

/* ------------------------------------------------------------ status */

void picker_status_endpoint(json_w *w, const gw_endpoint *e, uint64_t now)
{
	scrape_stats st;
	scrape_get_stats(e, &st);
	const scrape_values *sv = scrape_last(e);
	int stale;
	double util = scrape_util(e, now, &stale);
	jw_key(w, "load");
	jw_obj_begin(w);
	jw_key(w, "scraping");
	jw_bool(w, st.enabled);
	jw_key(w, "utilization");
	jw_double(w, util);
	jw_key(w, "stale");
	jw_bool(w, stale);
	jw_key(w, "age_ms");
	jw_int(w, scrape_age_ms(e, now));
	if (sv) {
		jw_key(w, "dialect");
		jw_str(w, sv->dialect);
		jw_key(w, "kv_usage");
		if (sv->has & SCRAPE_HAS_KV) jw_double(w, sv->kv_usage);
		else jw_null(w);
		jw_key(w, "waiting");
		if (sv->has & SCRAPE_HAS_WAITING) jw_double(w, sv->waiting);
		else jw_null(w);
		jw_key(w, "running");
		if (sv->has & SCRAPE_HAS_RUNNING) jw_double(w, sv->running);
		else jw_null(w);
		jw_key(w, "metric");
		if (sv->has & SCRAPE_HAS_METRIC) jw_double(w, sv->metric);
		else jw_null(w);
		jw_key(w, "block_size");
		jw_uint(w, sv->block_size);
		jw_key(w, "num_gpu_blocks");
		jw_uint(w, sv->num_gpu_blocks);
	}
	jw_key(w, "scrapes_total");
	jw_uint(w, st.scrapes_total);
	jw_key(w, "scrape_failures_total");
	jw_uint(w, st.failures_total);
	jw_key(w, "scrape_timeouts_total");
	jw_uint(w, st.timeouts_total);
	jw_key(w, "scrape_garbage_total");
	jw_uint(w, st.garbage_total);
	jw_key(w, "last_scrape_us");
	jw_uint(w, st.last_duration_us);
	jw_key(w, "last_scrape_error");
	jw_str(w, st.last_error);
	jw_obj_end(w);
	const picker_ep *s = e->pk;
	jw_key(w, "picker");
	jw_obj_begin(w);
	if (s && s->run_ms) {
		char f[128];
		picker_filter_names(s->passed, f, sizeof(f));
		jw_key(w, "last_run_age_ms");
		jw_uint(w, now - s->run_ms);
		jw_key(w, "filters_passed");
		jw_str(w, f);
		jw_key(w, "rank");
		jw_int(w, s->rank);
		jw_key(w, "scores");
		jw_obj_begin(w);
		for (int k = 0; k < PK_N_SCORERS; k++) {
			jw_key(w, picker_scorer_name(k));
			jw_double(w, s->score[k]);
		}
		jw_obj_end(w);
		jw_key(w, "total");
		jw_double(w, s->total);
		jw_key(w, "prefix_guarded");
		jw_bool(w, s->guarded);
		jw_key(w, "prefix_blocks_matched");
		jw_uint(w, s->prefix_blocks);
	}
	jw_key(w, "prefix_index_blocks");
	jw_uint(w, s && s->index ? prefix_index_size(s->index) : 0);
	jw_key(w, "prefix_index_capacity");
	jw_uint(w, s && s->index ? prefix_index_capacity(s->index) : 0);
	jw_obj_end(w);
}

const region_state *picker_pool_regions(const gw_pool *pool)
{
	return pool->pk ? &pool->pk->regions : NULL;
}

void picker_status_pool(json_w *w, gw_pool *pool, uint64_t now)
{
	int sat = picker_pool_saturated(pool, now);
	const picker_pool *pp = pool->pk;
	jw_key(w, "saturated");
	jw_bool(w, sat);
	jw_key(w, "max_utilization");
	jw_double(w, pool->cfg.picker.max_utilization);
	jw_key(w, "regions");
	jw_arr_begin(w);
	for (int r = 0; pp && r < REGION_MAX; r++) {
		const char *name = NULL;
		for (size_t k = 0; k < pool->n_eps && !name; k++)
			if (pool->eps[k]->region_rank == r) name = pool->eps[k]->region;
		if (!name) continue;
		const region_entry *re = &pp->regions.r[r];
		jw_obj_begin(w);
		jw_key(w, "region");
		jw_str(w, name);
		jw_key(w, "rank");
		jw_int(w, r);
		jw_key(w, "spilled");
		jw_bool(w, re->spilled);
		jw_key(w, "for_ms");
		jw_uint(w, re->since_ms ? now - re->since_ms : 0);
		jw_key(w, "best_utilization");
		if (re->available) jw_double(w, re->best_util);
		else jw_null(w);
		jw_key(w, "available");
		jw_uint(w, re->available);
		jw_key(w, "spills_total");
		jw_uint(w, re->spills_total);
		jw_key(w, "returns_total");
		jw_uint(w, re->returns_total);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

/* ------------------------------------------------------------ metrics and tick */

prom_series *picker_metrics_scrape_series(gw_endpoint *e, const char *result)
{
	picker_gw *pg = e->g->pk;
	if (!pg) return NULL;
	const char *lv[] = {e->pool_name, e->label, result};
	return prom_series_get(pg->scrapes, lv);
}

void picker_metrics_scrape(gw_endpoint *e, const char *result)
{
	prom_series *s = picker_metrics_scrape_series(e, result);
	if (s) prom_inc(s);
}

void picker_metrics_shed(gw_call *c, const char *reason)
{
	picker_gw *pg = c->g->pk;
	if (!pg) return;
	const char *lv[] = {c->pool->cfg.name, picker_req_objective(c->pk), reason};
	prom_inc(prom_series_get(pg->shed, lv));
}

/* The autoscaling signal: per pool and region, the average utilization of
 * the endpoints with fresh metrics, the queued, running and in-flight totals. */
static void update_gauges(picker_gw *pg, uint64_t now)
{
	gw *g = pg->g;
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		const char *lp[] = {p->cfg.name};
		prom_set(prom_series_get(pg->saturated, lp), picker_pool_saturated(p, now));
		picker_pool *pp = p->pk;
		for (int r = 0; r < REGION_MAX; r++) {
			const char *name = NULL;
			double kv = 0, waiting = 0, running = 0, in_flight = 0;
			uint32_t fresh = 0;
			for (size_t k = 0; k < p->n_eps; k++) {
				gw_endpoint *e = p->eps[k];
				if (e->region_rank != r) continue;
				name = e->region;
				in_flight += e->in_flight;
				int stale;
				double u = scrape_util(e, now, &stale);
				const scrape_values *sv = scrape_last(e);
				if (stale || !sv || e->state == GW_HEALTH_DOWN) continue;
				fresh++;
				kv += u;
				waiting += sv->waiting;
				running += sv->running;
			}
			if (!name) continue;
			const char *lv[] = {p->cfg.name, name};
			prom_set(prom_series_get(pg->kv_avg, lv), fresh ? kv / fresh : 0);
			prom_set(prom_series_get(pg->waiting, lv), waiting);
			prom_set(prom_series_get(pg->running, lv), running);
			prom_set(prom_series_get(pg->in_flight, lv), in_flight);
			prom_set(prom_series_get(pg->endpoints_fresh, lv), fresh);
			if (pp) {
				prom_set(prom_series_get(pg->spilled, lv), pp->regions.r[r].spilled);
				uint64_t t = pp->regions.r[r].spills_total;
				if (t > pp->spills_seen[r]) prom_add(prom_series_get(pg->spills, lv), (double)(t - pp->spills_seen[r]));
				pp->spills_seen[r] = t;
			}
		}
	}
	prom_set(prom_series_get(pg->queued, NULL), (double)admission_queued(g));
}

static int64_t tick(ev_loop *loop, uint64_t id, void *arg)
{
	picker_gw *pg = arg;
	uint64_t now = ev_now_ms(loop);
	if (now - pg->gauges_ms >= PICKER_GAUGES_MS) {
		pg->gauges_ms = now;
		update_gauges(pg, now);
	}
	return PICKER_TICK_MS;
}

int picker_init(gw *g)
{
	picker_gw *pg = calloc(1, sizeof(*pg));
	if (!pg) return -1;
	pg->g = g;
	prom_registry *r = g->reg;
	static const char *const l_scrape[] = {"pool", "endpoint", "result", NULL};
	static const char *const l_shed[] = {"pool", "objective", "reason", NULL};
	static const char *const l_pick[] = {"pool", "region", "decision", NULL};
	static const char *const l_prefix[] = {"pool", "kind", NULL};
	static const char *const l_region[] = {"pool", "region", NULL};
	static const char *const l_pool[] = {"pool", NULL};
	pg->scrapes = prom_counter(r, "infergate_scrapes_total",
				   "Metric scrapes of the endpoint, by result: ok, failed (connection or status), timeout, garbage (not Prometheus text, or no load metric).", l_scrape);
	pg->shed = prom_counter(r, "infergate_shed_total",
				"Requests refused with 429 because every region of the pool was saturated, by objective and reason (saturated, queue_full, queue_timeout).", l_shed);
	pg->picks = prom_counter(r, "infergate_picks_total",
				 "Endpoints picked, by the region picked and the decision: local (own region had capacity), spill (the waterfall went to another region), saturated (no region had capacity).", l_pick);
	pg->prefix_blocks = prom_counter(r, "infergate_prefix_blocks_total",
					 "Prompt blocks of picked requests (requested) and how many the picked endpoint was believed to hold (matched).", l_prefix);
	pg->spills = prom_counter(r, "infergate_region_spills_total",
				  "Times the region lost its last endpoint under the max utilization and traffic spilled to the next region.", l_region);
	pg->kv_avg = prom_gauge(r, "infergate_pool_kv_usage_avg",
				"Average balancing metric (KV-cache usage by default, 0..1) of the region's endpoints with fresh metrics: the autoscaling signal.", l_region);
	pg->waiting = prom_gauge(r, "infergate_pool_waiting_requests",
				 "Requests queued in the region's model servers, as last scraped.", l_region);
	pg->running = prom_gauge(r, "infergate_pool_running_requests",
				 "Requests running in the region's model servers, as last scraped.", l_region);
	pg->in_flight = prom_gauge(r, "infergate_pool_in_flight_requests",
				   "Requests this gateway has in flight on the region's endpoints.", l_region);
	pg->endpoints_fresh = prom_gauge(r, "infergate_pool_endpoints_scraped",
					 "Endpoints of the region with fresh metrics (counted in the average).", l_region);
	pg->spilled = prom_gauge(r, "infergate_pool_region_spilled",
				 "1 while the region has no capacity and its traffic goes to the next region.", l_region);
	pg->saturated = prom_gauge(r, "infergate_pool_saturated",
				   "1 while no region of the pool has capacity (negative priorities are shed).", l_pool);
	pg->queued = prom_gauge(r, "infergate_admission_queued_requests",
				"Requests waiting in the admission queues for capacity.", NULL);
	if (!pg->scrapes || !pg->shed || !pg->picks || !pg->prefix_blocks || !pg->spills || !pg->kv_avg ||
	    !pg->waiting || !pg->running || !pg->in_flight || !pg->endpoints_fresh || !pg->spilled ||
	    !pg->saturated || !pg->queued) {
		free(pg);
		return -1;
	}
	pg->tick_timer = ev_timer_add(g->loop, PICKER_TICK_MS, tick, pg);
	g->pk = pg;
	return 0;
}

void picker_deinit(gw *g)
{
	free_reqs_release();
	picker_gw *pg = g->pk;
	if (!pg) return;
	ev_timer_del(g->loop, pg->tick_timer);
	admission_deinit(g);
	free(pg);
	g->pk = NULL;
}

void picker_pool_free(gw_pool *pool)
{
	free(pool->pk);
	pool->pk = NULL;
}

void picker_endpoint_free(gw_endpoint *e)
{
	if (e->pk) prefix_index_free(e->pk->index);
	free(e->pk);
	e->pk = NULL;
}
