/*
 * dashboard.c — the live dashboard's page and its event stream (dashboard.h).
 *
 * One dashboard per process, on the loop thread. The page is
 * src/gateway/dashboard.html, assembled into the binary by .incbin below (the
 * Makefile makes this object depend on the file). The stream is written with
 * core's SSE writer into httpd's streaming responses.
 */
#include "gateway/dashboard.h"
#include "gateway/events.h"
#include "gateway/gateway.h"
#include "gateway/health.h"
#include "gateway/picker.h"
#include "gateway/scrape.h"
#include "gateway/admission.h"
#include "gateway/tenant.h"
#include "core/json.h"
#include "core/log.h"
#include "core/oai_error.h"
#include "core/sse.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* The page, as bytes in .rodata: dashboard_html .. dashboard_html_end. */
__asm__(".section .rodata\n"
	".global dashboard_html\n"
	".global dashboard_html_end\n"
	".balign 16\n"
	"dashboard_html:\n"
	".incbin \"src/gateway/dashboard.html\"\n"
	"dashboard_html_end:\n"
	".byte 0\n"
	".previous\n");
extern const char dashboard_html[];
extern const char dashboard_html_end[];

#define DASH_OUT_MAX_BYTES (4u << 20) /* one message built for every viewer */
#define DASH_SAMPLE_EVERY 4           /* ticks per sample */
#define DASH_SHARE_DECAY 0.8          /* per second: shares weigh about the last 5 s */
#define DASH_MAX_OBJECTIVES 16

/* One second of one pool. */
typedef struct dash_point {
	float req_s, err_s, shed_s;
	float ttfb_p50_ms, ttfb_p99_ms; /* -1: no request this second */
	float out_kib_s;
	float tok_s; /* generated tokens/s as the servers count them; -1: unknown */
} dash_point;

/* The samples of one pool (by name: a reload keeps its history). */
typedef struct dash_series {
	char pool[GW_NAME_LEN];
	int used;
	dash_point pts[DASH_HISTORY_SAMPLES]; /* ring, aligned with dash.t */
	/* this second so far */
	uint32_t req, err, shed;
	uint64_t out_bytes;
	uint32_t n_ttfb;
	float ttfb_ms[DASH_TTFB_SAMPLES];
	double served[DASH_MAX_RANKS]; /* decayed counts by region rank */
	/* the servers' generation counters at the last sample (tokens/s) */
	double gen_prev;
	uint64_t gen_prev_sig, gen_prev_ms;
	float tok_s; /* for the next point; -1: unknown */
	/* the region states last seen (spill and return events) */
	const gw_pool *seen_pool;
	uint64_t spills_seen[DASH_MAX_RANKS], returns_seen[DASH_MAX_RANKS];
} dash_series;

typedef struct dash_objective {
	char name[GW_NAME_LEN];
	uint32_t req, shed;  /* this second */
	float req_s, shed_s; /* the last second */
} dash_objective;

/* One tenant's traffic, found by its tenant_state's id (a reload keeps the
 * state, so the history goes on). */
typedef struct dash_tenant {
	uint32_t id;                          /* 0: a free slot */
	uint64_t first_sample;                /* dash.samples when it was first seen */
	uint64_t ended, errors, shed, tokens; /* the tenant's totals at the last sample */
	float req_s, err_s, shed_s, tok_s;    /* the last second */
	/* ring: the point of sample k at k % DASH_TENANT_HISTORY */
	float req_hist[DASH_TENANT_HISTORY], err_hist[DASH_TENANT_HISTORY], shed_hist[DASH_TENANT_HISTORY];
} dash_tenant;

#define DASH_TENANT_SLOTS (GW_MAX_TENANTS + 1) /* the configured ones and the anonymous one */

/* A stream. Slot free when r is NULL. */
typedef struct dash_viewer {
	httpd_req *r;
	int closing; /* dropped or ended: on_close follows */
} dash_viewer;

static struct {
	gw *g;
	uint64_t timer;
	unsigned ticks;
	int state_dirty;
	uint64_t sent_id;                   /* the newest event sent to the viewers */
	uint32_t sent_count;                /* its count then */
	uint64_t t_s[DASH_HISTORY_SAMPLES]; /* wall seconds of each sample */
	size_t head, n;                     /* ring of samples: oldest at head */
	uint64_t samples;                   /* samples taken since boot */
	dash_series series[DASH_MAX_POOLS];
	dash_objective objectives[DASH_MAX_OBJECTIVES];
	size_t n_objectives;
	dash_tenant tenants[DASH_TENANT_SLOTS];
	dash_viewer viewers[DASH_MAX_VIEWERS_LIMIT];
	size_t n_viewers;
	buf json; /* a message's data as it is built */
	buf out;  /* one message for every viewer */
	prom_series *m_viewers, *m_dropped, *m_refused;
} dash;

/* ------------------------------------------------------------ samples */

static dash_series *series_for(const char *pool, int create)
{
	dash_series *free_slot = NULL;
	for (size_t i = 0; i < DASH_MAX_POOLS; i++) {
		dash_series *s = &dash.series[i];
		if (s->used && !strcmp(s->pool, pool)) return s;
		if (!s->used && !free_slot) free_slot = s;
	}
	if (create && !free_slot) {
		/* Full: take the slot of a pool a reload removed. */
		for (size_t i = 0; i < DASH_MAX_POOLS && !free_slot; i++) {
			int live = 0;
			for (size_t k = 0; dash.g && k < dash.g->n_pools && !live; k++)
				live = !strcmp(dash.g->pools[k]->cfg.name, dash.series[i].pool);
			if (!live) free_slot = &dash.series[i];
		}
	}
	if (!create || !free_slot) return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = 1;
	str_copy(free_slot->pool, pool, sizeof(free_slot->pool));
	for (size_t i = 0; i < DASH_HISTORY_SAMPLES; i++)
		free_slot->pts[i].ttfb_p50_ms = free_slot->pts[i].ttfb_p99_ms = free_slot->pts[i].tok_s = -1;
	free_slot->tok_s = -1;
	return free_slot;
}

static dash_objective *objective_for(const char *name)
{
	for (size_t i = 0; i < dash.n_objectives; i++)
		if (!strcmp(dash.objectives[i].name, name)) return &dash.objectives[i];
	if (dash.n_objectives == DASH_MAX_OBJECTIVES) return NULL;
	dash_objective *o = &dash.objectives[dash.n_objectives++];
	memset(o, 0, sizeof(*o));
	str_copy(o->name, name, sizeof(o->name));
	return o;
}

void dashboard_request(gw *g, const gw_call *c, uint64_t now_ms)
{
	(void)now_ms;
	if (!c->pool) return;
	dash_series *s = series_for(c->pool->cfg.name, 1);
	const char *objective = c->pk ? picker_req_objective(c->pk) : NULL;
	if (c->status == 429 && c->tenant_limit && c->tenant)
		events_push("shed", c->pool->cfg.name, c->tenant->name, "429: tenant %s over its %s limit",
			    c->tenant->name, c->tenant_limit);
	else if (c->status == 429)
		events_push("shed", c->pool->cfg.name, objective && *objective ? objective : NULL,
			    "429: request shed, no capacity for its priority");
	dash_objective *o = objective && *objective ? objective_for(objective) : NULL;
	if (o) {
		o->req++;
		if (c->status == 429) o->shed++;
	}
	if (!s) return;
	s->req++;
	if (c->status >= 500) s->err++;
	if (c->status == 429) s->shed++;
	s->out_bytes += c->bytes_out;
	if (c->first_byte_ms && c->status < 400) {
		/* Past the cap, a slot is overwritten at random: still a fair sample. */
		float ms = (float)(c->first_byte_ms - c->start_ms);
		uint32_t at = s->n_ttfb < DASH_TTFB_SAMPLES ? s->n_ttfb : (uint32_t)(hash64(&s->req, sizeof s->req, c->start_ms) % DASH_TTFB_SAMPLES);
		s->ttfb_ms[at] = ms;
		s->n_ttfb++;
	}
	if (c->ep && c->status > 0 && c->status < 400) {
		int rank = c->ep->region_rank;
		if (rank >= 0) s->served[rank < DASH_MAX_RANKS ? rank : DASH_MAX_RANKS - 1] += 1;
	}
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted v[0..n), nearest rank. */
static float quantile(const float *v, uint32_t n, double q)
{
	size_t k = (size_t)(q * n + 0.999999);
	if (k < 1) k = 1;
	if (k > n) k = n;
	return v[k - 1];
}

/* Closes the second: one point per series, at wall second now_s. */
static void sample(uint64_t now_s)
{
	size_t at;
	if (dash.n < DASH_HISTORY_SAMPLES) {
		at = (dash.head + dash.n) % DASH_HISTORY_SAMPLES;
		dash.n++;
	} else {
		at = dash.head;
		dash.head = (dash.head + 1) % DASH_HISTORY_SAMPLES;
	}
	dash.t_s[at] = now_s;
	dash.samples++;
	for (size_t i = 0; i < DASH_MAX_POOLS; i++) {
		dash_series *s = &dash.series[i];
		if (!s->used) continue;
		dash_point *p = &s->pts[at];
		p->req_s = (float)s->req;
		p->err_s = (float)s->err;
		p->shed_s = (float)s->shed;
		p->out_kib_s = (float)s->out_bytes / 1024.0f;
		p->tok_s = s->tok_s;
		s->tok_s = -1;
		p->ttfb_p50_ms = p->ttfb_p99_ms = -1;
		uint32_t n = s->n_ttfb < DASH_TTFB_SAMPLES ? s->n_ttfb : DASH_TTFB_SAMPLES;
		if (n) {
			qsort(s->ttfb_ms, n, sizeof(float), cmp_float);
			p->ttfb_p50_ms = quantile(s->ttfb_ms, n, 0.5);
			p->ttfb_p99_ms = quantile(s->ttfb_ms, n, 0.99);
		}
		s->req = s->err = s->shed = s->n_ttfb = 0;
		s->out_bytes = 0;
	}
	for (size_t i = 0; i < dash.n_objectives; i++) {
		dash_objective *o = &dash.objectives[i];
		o->req_s = (float)o->req;
		o->shed_s = (float)o->shed;
		o->req = o->shed = 0;
	}
}

/* Tokens/s per pool from its endpoints' vllm:generation_tokens_total (all
 * their traffic, not only this gateway's): the growth of the sum since the
 * last sample, over the endpoints with fresh values. Unknown when that set
 * changed (one joining would look like a burst) or a counter went back. */
static void measure_tokens(gw *g, uint64_t now_ms)
{
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		dash_series *s = series_for(p->cfg.name, 1);
		if (!s) continue;
		double sum = 0;
		uint64_t sig = 0;
		for (size_t k = 0; k < p->n_eps; k++) {
			const gw_endpoint *e = p->eps[k];
			const scrape_values *sv = scrape_last(e);
			int stale;
			scrape_util(e, now_ms, &stale);
			if (!sv || stale || !(sv->has & SCRAPE_HAS_GEN_TOKENS)) continue;
			sum += sv->generation_tokens_total;
			sig ^= hash64(e->label, strlen(e->label), 0x70c5);
		}
		s->tok_s = -1;
		if (sig && sig == s->gen_prev_sig && sum >= s->gen_prev && now_ms > s->gen_prev_ms)
			s->tok_s = (float)((sum - s->gen_prev) * 1000.0 / (double)(now_ms - s->gen_prev_ms));
		s->gen_prev = sum;
		s->gen_prev_sig = sig;
		s->gen_prev_ms = now_ms;
	}
}

static dash_tenant *tenant_slot(uint32_t id)
{
	for (size_t i = 0; i < DASH_TENANT_SLOTS; i++)
		if (dash.tenants[i].id == id) return &dash.tenants[i];
	return NULL;
}

/* Closes the second of every tenant in the table (after sample): the growth
 * of its totals. A tenant first seen starts from its totals now; the slot of
 * one no longer in the table (a reload dropped it) is freed. */
static void measure_tenants(void)
{
	size_t n = tenant_table_size();
	size_t at = (size_t)((dash.samples - 1) % DASH_TENANT_HISTORY);
	for (size_t i = 0; i < DASH_TENANT_SLOTS; i++) {
		dash_tenant *d = &dash.tenants[i];
		int listed = 0;
		for (size_t k = 0; k < n && d->id && !listed; k++) listed = tenant_at(k)->id == d->id;
		if (!listed) d->id = 0;
	}
	for (size_t k = 0; k < n; k++) {
		const tenant_state *t = tenant_at(k);
		dash_tenant *d = tenant_slot(t->id);
		if (!d) {
			if (!(d = tenant_slot(0))) continue; /* not charted (cannot happen: the table holds at most the slots) */
			memset(d, 0, sizeof(*d));
			d->id = t->id;
			d->first_sample = dash.samples - 1;
			d->ended = t->ended_total;
			d->errors = t->errors_total;
			d->shed = t->shed_total;
			d->tokens = t->tokens_total;
		}
		d->req_s = (float)(t->ended_total - d->ended);
		d->err_s = (float)(t->errors_total - d->errors);
		d->shed_s = (float)(t->shed_total - d->shed);
		d->tok_s = (float)(t->tokens_total - d->tokens);
		d->ended = t->ended_total;
		d->errors = t->errors_total;
		d->shed = t->shed_total;
		d->tokens = t->tokens_total;
		d->req_hist[at] = d->req_s;
		d->err_hist[at] = d->err_s;
		d->shed_hist[at] = d->shed_s;
	}
}

/* Samples of d held: the last min(samples, history) that are its own. */
static size_t tenant_points(const dash_tenant *d)
{
	uint64_t own = dash.samples - d->first_sample;
	return own < DASH_TENANT_HISTORY ? (size_t)own : DASH_TENANT_HISTORY;
}

/* The tenants a message carries, into v (table order), at most
 * DASH_MAX_TENANTS: none without configured tenants; the anonymous one only
 * when api_keys let requests in without a tenant. When more qualify, the
 * busiest: requests of the last minute plus those in flight. Returns how
 * many qualified (more than it put in v when capped). */
static size_t tenants_shown(const gw *g, const tenant_state **v, size_t *n_out)
{
	const tenant_state *all[DASH_TENANT_SLOTS];
	double busy[DASH_TENANT_SLOTS];
	size_t n = 0;
	*n_out = 0;
	if (!g->cfg->n_tenants) return 0;
	for (size_t k = 0; k < tenant_table_size() && n < DASH_TENANT_SLOTS; k++) {
		const tenant_state *t = tenant_at(k);
		if (k == 0 && !g->cfg->n_api_keys) continue;
		const dash_tenant *d = tenant_slot(t->id);
		busy[n] = t->in_flight;
		for (size_t i = 0; d && i < tenant_points(d); i++) busy[n] += d->req_hist[(dash.samples - 1 - i) % DASH_TENANT_HISTORY];
		all[n++] = t;
	}
	/* Past the cap, leave out the least busy one at a time (the later one on a tie). */
	size_t keep = n;
	int out[DASH_TENANT_SLOTS] = {0};
	while (keep > DASH_MAX_TENANTS) {
		size_t least = 0;
		while (out[least]) least++;
		for (size_t i = least + 1; i < n; i++)
			if (!out[i] && busy[i] <= busy[least]) least = i;
		out[least] = 1;
		keep--;
	}
	for (size_t i = 0; i < n; i++)
		if (!out[i]) v[(*n_out)++] = all[i];
	return n;
}

static void decay_shares(void)
{
	for (size_t i = 0; i < DASH_MAX_POOLS; i++)
		for (int r = 0; r < DASH_MAX_RANKS; r++) dash.series[i].served[r] *= DASH_SHARE_DECAY;
}

/* A region of a pool spilled or came back since the last look: an event. */
static void watch_regions(gw *g)
{
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		const region_state *rs = picker_pool_regions(p);
		dash_series *s = series_for(p->cfg.name, 1);
		if (!rs || !s) continue;
		int fresh = s->seen_pool != p; /* a new pool (reload): its counts start again */
		s->seen_pool = p;
		for (int r = 0; r < DASH_MAX_RANKS; r++) {
			const region_entry *re = &rs->r[r];
			if (!fresh && (re->spills_total != s->spills_seen[r] || re->returns_total != s->returns_seen[r])) {
				const char *name = NULL;
				for (size_t k = 0; k < p->n_eps && !name; k++)
					if (p->eps[k]->region_rank == r) name = p->eps[k]->region;
				if (re->spilled)
					events_push("spill", p->cfg.name, name,
						    "no endpoint under max_utilization %.2f: traffic spills to the next region",
						    p->cfg.picker.max_utilization);
				else
					events_push("return", p->cfg.name, name, "capacity back under %.2f: traffic returns",
						    p->cfg.picker.max_utilization - p->cfg.picker.return_margin);
			}
			s->spills_seen[r] = re->spills_total;
			s->returns_seen[r] = re->returns_total;
		}
	}
}

/* ------------------------------------------------------------ the state */

static void write_tenant(gw *g, json_w *w, const tenant_state *t)
{
	const dash_tenant *d = tenant_slot(t->id);
	jw_obj_begin(w);
	jw_key(w, "name");
	jw_str(w, t->name);
	jw_key(w, "anonymous");
	jw_bool(w, t == tenant_at(0));
	jw_key(w, "priority");
	jw_int(w, t->priority);
	jw_key(w, "req_s");
	jw_double(w, d ? d->req_s : 0);
	jw_key(w, "err_s");
	jw_double(w, d ? d->err_s : 0);
	jw_key(w, "shed_s");
	jw_double(w, d ? d->shed_s : 0);
	jw_key(w, "tok_s");
	jw_double(w, d ? d->tok_s : 0);
	jw_key(w, "requests_total");
	jw_uint(w, t->ended_total);
	jw_key(w, "errors_total");
	jw_uint(w, t->errors_total);
	jw_key(w, "shed_total");
	jw_uint(w, t->shed_total);
	jw_key(w, "tokens_total");
	jw_uint(w, t->tokens_total);
	jw_key(w, "in_flight");
	jw_uint(w, t->in_flight);
	jw_key(w, "max_in_flight");
	if (t->max_in_flight) jw_uint(w, t->max_in_flight);
	else jw_null(w);
	jw_key(w, "queued");
	jw_uint(w, admission_queued_tenant(g, t));
	jw_key(w, "requests_per_second");
	if (t->requests_per_second > 0) jw_double(w, t->requests_per_second);
	else jw_null(w);
	jw_key(w, "tokens_per_minute");
	if (t->tokens_per_minute) jw_uint(w, t->tokens_per_minute);
	else jw_null(w);
	jw_obj_end(w);
}

static void write_tenants(gw *g, json_w *w)
{
	const tenant_state *v[DASH_MAX_TENANTS];
	size_t n;
	size_t total = tenants_shown(g, v, &n);
	jw_key(w, "tenants_configured");
	jw_uint(w, g->cfg->n_tenants);
	jw_key(w, "tenants_total");
	jw_uint(w, total);
	jw_key(w, "tenants_max");
	jw_uint(w, DASH_MAX_TENANTS);
	jw_key(w, "tenants");
	jw_arr_begin(w);
	for (size_t i = 0; i < n; i++) write_tenant(g, w, v[i]);
	jw_arr_end(w);
}

/* The last minute of the tenants a message carries: {name: {"req_s": [...],
 * "err_s": [...], "shed_s": [...]}}, aligned with the end of history.t,
 * null before the tenant was first seen. */
static void write_tenant_history(gw *g, json_w *w)
{
	const tenant_state *v[DASH_MAX_TENANTS];
	size_t n;
	tenants_shown(g, v, &n);
	size_t len = dash.samples < DASH_TENANT_HISTORY ? (size_t)dash.samples : DASH_TENANT_HISTORY;
	jw_obj_begin(w);
	for (size_t i = 0; i < n; i++) {
		const dash_tenant *d = tenant_slot(v[i]->id);
		if (!d) continue;
		size_t own = tenant_points(d);
		jw_key(w, v[i]->name);
		jw_obj_begin(w);
		for (int k = 0; k < 3; k++) {
			const float *h = k == 0 ? d->req_hist : k == 1 ? d->err_hist
								       : d->shed_hist;
			jw_key(w, k == 0 ? "req_s" : k == 1 ? "err_s"
							    : "shed_s");
			jw_arr_begin(w);
			for (size_t j = 0; j < len; j++) {
				size_t back = len - 1 - j; /* samples before the newest */
				if (back >= own) jw_null(w);
				else jw_double(w, h[(dash.samples - 1 - back) % DASH_TENANT_HISTORY]);
			}
			jw_arr_end(w);
		}
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

static const char *endpoint_state(const gw_endpoint *e, uint64_t now)
{
	if (e->removed) return "draining";
	if (e->state == GW_HEALTH_DOWN) return "down";
	if (health_ejected(e, now)) return "ejected";
	return gw_health_name(e->state);
}

static void write_endpoint(json_w *w, const gw_endpoint *e, uint64_t now)
{
	int stale;
	double util = scrape_util(e, now, &stale);
	const scrape_values *sv = scrape_last(e);
	scrape_stats st;
	scrape_get_stats(e, &st);
	jw_obj_begin(w);
	jw_key(w, "address");
	jw_str(w, e->address);
	jw_key(w, "region");
	jw_str(w, e->region);
	jw_key(w, "state");
	jw_str(w, endpoint_state(e, now));
	jw_key(w, "state_for_ms");
	jw_uint(w, now - e->state_since_ms);
	jw_key(w, "last_check");
	jw_str(w, e->last_check);
	jw_key(w, "in_flight");
	jw_uint(w, e->in_flight);
	jw_key(w, "requests_total");
	jw_uint(w, e->requests_total);
	jw_key(w, "failures_total");
	jw_uint(w, e->failures_total);
	jw_key(w, "scraping");
	jw_bool(w, st.enabled);
	jw_key(w, "utilization");
	jw_double(w, util);
	jw_key(w, "stale");
	jw_bool(w, stale);
	jw_key(w, "age_ms");
	jw_int(w, scrape_age_ms(e, now));
	jw_key(w, "kv_usage");
	if (sv && (sv->has & SCRAPE_HAS_KV)) jw_double(w, sv->kv_usage);
	else jw_null(w);
	jw_key(w, "waiting");
	if (sv && (sv->has & SCRAPE_HAS_WAITING)) jw_double(w, sv->waiting);
	else jw_null(w);
	jw_key(w, "running");
	if (sv && (sv->has & SCRAPE_HAS_RUNNING)) jw_double(w, sv->running);
	else jw_null(w);
	jw_obj_end(w);
}

static void write_state(gw *g, json_w *w)
{
	uint64_t now = ev_now_ms(g->loop);
	jw_key(w, "region");
	jw_str(w, g->cfg->region);
	jw_key(w, "now_ms");
	jw_uint(w, time_wall_ms());
	jw_key(w, "draining");
	jw_bool(w, g->draining);
	jw_key(w, "in_flight");
	jw_uint(w, g->in_flight);
	jw_key(w, "connections");
	jw_uint(w, httpd_connections(g->httpd));
	jw_key(w, "queued");
	jw_uint(w, admission_queued(g));
	jw_key(w, "viewers");
	jw_uint(w, dash.n_viewers);
	jw_key(w, "reloads_total");
	jw_uint(w, g->reloads_total);
	write_tenants(g, w);
	jw_key(w, "objectives");
	jw_arr_begin(w);
	for (size_t i = 0; i < g->cfg->n_objectives; i++) {
		const gw_objective_cfg *oc = &g->cfg->objectives[i];
		const dash_objective *o = NULL;
		for (size_t k = 0; k < dash.n_objectives && !o; k++)
			if (!strcmp(dash.objectives[k].name, oc->name)) o = &dash.objectives[k];
		jw_obj_begin(w);
		jw_key(w, "name");
		jw_str(w, oc->name);
		jw_key(w, "priority");
		jw_int(w, oc->priority);
		jw_key(w, "queue");
		jw_uint(w, oc->queue);
		jw_key(w, "queue_timeout_ms");
		jw_uint(w, oc->queue_timeout_ms);
		jw_key(w, "queued");
		jw_uint(w, admission_queued_objective(g, oc->name));
		jw_key(w, "req_s");
		jw_double(w, o ? o->req_s : 0);
		jw_key(w, "shed_s");
		jw_double(w, o ? o->shed_s : 0);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "pools");
	jw_arr_begin(w);
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		const dash_series *s = series_for(p->cfg.name, 0);
		jw_obj_begin(w);
		jw_key(w, "name");
		jw_str(w, p->cfg.name);
		jw_key(w, "active_requests");
		jw_uint(w, p->active_requests);
		jw_key(w, "return_margin");
		jw_double(w, p->cfg.picker.return_margin);
		jw_key(w, "region_hold_ms");
		jw_uint(w, p->cfg.picker.region_hold_ms);
		picker_status_pool(w, p, now); /* saturated, max_utilization, regions[] */
		jw_key(w, "shares");
		jw_obj_begin(w);
		double total = 0;
		for (int r = 0; s && r < DASH_MAX_RANKS; r++) total += s->served[r];
		for (int r = 0; s && total > 0 && r < DASH_MAX_RANKS; r++) {
			const char *name = NULL;
			for (size_t k = 0; k < p->n_eps && !name; k++)
				if (p->eps[k]->region_rank == r) name = p->eps[k]->region;
			if (name) {
				jw_key(w, name);
				jw_double(w, s->served[r] / total);
			}
		}
		jw_obj_end(w);
		jw_key(w, "endpoints");
		jw_arr_begin(w);
		for (size_t k = 0; k < p->n_eps; k++) write_endpoint(w, p->eps[k], now);
		for (size_t k = 0; k < g->n_all; k++)
			if (g->all_eps[k]->removed && !strcmp(g->all_eps[k]->pool_name, p->cfg.name)) write_endpoint(w, g->all_eps[k], now);
		jw_arr_end(w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

static void write_point(json_w *w, const dash_point *p)
{
	jw_key(w, "req_s");
	jw_double(w, p->req_s);
	jw_key(w, "err_s");
	jw_double(w, p->err_s);
	jw_key(w, "shed_s");
	jw_double(w, p->shed_s);
	jw_key(w, "ttfb_p50_ms");
	if (p->ttfb_p50_ms >= 0) jw_double(w, p->ttfb_p50_ms);
	else jw_null(w);
	jw_key(w, "ttfb_p99_ms");
	if (p->ttfb_p99_ms >= 0) jw_double(w, p->ttfb_p99_ms);
	else jw_null(w);
	jw_key(w, "out_kib_s");
	jw_double(w, p->out_kib_s);
	jw_key(w, "tok_s");
	if (p->tok_s >= 0) jw_double(w, p->tok_s);
	else jw_null(w);
}

/* The last sample: {"t": s, "pools": {name: point}}. */
static void write_sample(json_w *w)
{
	size_t at = (dash.head + dash.n - 1) % DASH_HISTORY_SAMPLES;
	jw_key(w, "t");
	jw_uint(w, dash.t_s[at]);
	jw_key(w, "pools");
	jw_obj_begin(w);
	for (size_t i = 0; i < DASH_MAX_POOLS; i++) {
		const dash_series *s = &dash.series[i];
		if (!s->used) continue;
		jw_key(w, s->pool);
		jw_obj_begin(w);
		write_point(w, &s->pts[at]);
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

/* Every sample held: {"t": [...], "pools": {name: {"req_s": [...], ...}}}. */
static void write_history(json_w *w)
{
	static const char *const keys[] = {"req_s", "err_s", "shed_s", "ttfb_p50_ms", "ttfb_p99_ms", "out_kib_s", "tok_s"};
	jw_key(w, "t");
	jw_arr_begin(w);
	for (size_t i = 0; i < dash.n; i++) jw_uint(w, dash.t_s[(dash.head + i) % DASH_HISTORY_SAMPLES]);
	jw_arr_end(w);
	jw_key(w, "pools");
	jw_obj_begin(w);
	for (size_t i = 0; i < DASH_MAX_POOLS; i++) {
		const dash_series *s = &dash.series[i];
		if (!s->used) continue;
		jw_key(w, s->pool);
		jw_obj_begin(w);
		for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
			jw_key(w, keys[k]);
			jw_arr_begin(w);
			for (size_t j = 0; j < dash.n; j++) {
				const dash_point *p = &s->pts[(dash.head + j) % DASH_HISTORY_SAMPLES];
				float v = k == 0 ? p->req_s : k == 1 ? p->err_s
						      : k == 2       ? p->shed_s
						      : k == 3       ? p->ttfb_p50_ms
						      : k == 4       ? p->ttfb_p99_ms
						      : k == 5       ? p->out_kib_s
								     : p->tok_s;
				if (v < 0) jw_null(w);
				else jw_double(w, v);
			}
			jw_arr_end(w);
		}
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

/* ------------------------------------------------------------ viewers */

static void viewer_gone(httpd_req *r, void *arg)
{
	dash_viewer *v = arg;
	(void)r;
	v->r = NULL;
	v->closing = 0;
	dash.n_viewers--;
	if (dash.m_viewers) prom_set(dash.m_viewers, (double)dash.n_viewers);
}

/* Queues n bytes on v, or drops v when its unsent output would pass the cap.
 * A message alone may be larger than the cap (the snapshot of a big fleet):
 * only a backlog drops, else a large fleet's viewers would reconnect forever.
 * So a viewer holds at most the cap plus one message (DASH_OUT_MAX_BYTES). */
static void viewer_send(dash_viewer *v, const char *p, size_t n)
{
	if (!v->r || v->closing) return;
	size_t pending = httpd_stream_pending(v->r);
	if (pending && pending + n > DASH_VIEWER_MAX_PENDING_BYTES) {
		log_ratelimited(LOG_WARN, "dashboard: viewer %s reads too slowly (%zu bytes unsent): dropped",
				httpd_peer(v->r), httpd_stream_pending(v->r));
		if (dash.m_dropped) prom_inc(dash.m_dropped);
		v->closing = 1;
		httpd_abort(v->r);
		return;
	}
	if (httpd_stream_write(v->r, p, n) < 0) v->closing = 1;
}

static void broadcast(void)
{
	for (size_t i = 0; i < DASH_MAX_VIEWERS_LIMIT && dash.n_viewers; i++)
		viewer_send(&dash.viewers[i], buf_rptr(&dash.out), buf_rlen(&dash.out));
}

/* Builds "event: NAME\ndata: JSON\n\n" in dash.out from what fill writes into
 * the object. Returns 0, or -1 when it passed the cap (nothing to send). */
static int build(gw *g, const char *name, void (*fill)(gw *g, json_w *w, const void *arg), const void *arg)
{
	buf *b = &dash.json;
	buf_reset(b);
	json_w w;
	jw_init(&w, b);
	jw_obj_begin(&w);
	fill(g, &w, arg);
	jw_obj_end(&w);
	buf_reset(&dash.out);
	if (w.error) {
		log_ratelimited(LOG_WARN, "dashboard: the %s message passed %u bytes: not sent", name, DASH_OUT_MAX_BYTES);
		return -1;
	}
	return sse_write_event(&dash.out, name, buf_rptr(b), buf_rlen(b));
}

static void fill_state(gw *g, json_w *w, const void *arg)
{
	(void)arg;
	jw_key(w, "state");
	jw_obj_begin(w);
	write_state(g, w);
	jw_obj_end(w);
}

static void fill_sample(gw *g, json_w *w, const void *arg)
{
	fill_state(g, w, arg);
	jw_key(w, "sample");
	jw_obj_begin(w);
	write_sample(w);
	jw_obj_end(w);
}

static void fill_snapshot(gw *g, json_w *w, const void *arg)
{
	fill_state(g, w, arg);
	jw_key(w, "history_seconds");
	jw_uint(w, DASH_HISTORY_SAMPLES);
	jw_key(w, "history");
	jw_obj_begin(w);
	write_history(w);
	jw_key(w, "tenants");
	write_tenant_history(g, w);
	jw_obj_end(w);
	jw_key(w, "events");
	jw_arr_begin(w);
	for (size_t i = 0; i < events_count(); i++) events_write(w, events_at(i));
	jw_arr_end(w);
}

static void fill_event(gw *g, json_w *w, const void *arg)
{
	(void)g;
	const gw_event *ev = arg;
	jw_key(w, "event");
	events_write(w, ev);
}

static void on_event(const gw_event *ev, void *arg)
{
	(void)ev;
	(void)arg;
	dash.state_dirty = 1;
}

/* Sends the events pushed or bumped since the last tick, oldest first: at
 * most the ring's worth per tick, however fast they come (a storm of sheds
 * is one bumped event, sent once per tick with its latest count). */
static void send_events(gw *g)
{
	size_t n = events_count();
	for (size_t i = 0; i < n; i++) {
		const gw_event *ev = events_at(i);
		int fresh = ev->id > dash.sent_id;
		int bumped = ev->id == dash.sent_id && ev->count != dash.sent_count;
		if (!fresh && !bumped) continue;
		if (dash.n_viewers && build(g, "event", fill_event, ev) == 0) broadcast();
		dash.sent_id = ev->id;
		dash.sent_count = ev->count;
	}
}

/* Ends every stream (draining, or the dashboard turned off). */
static void end_viewers(void)
{
	for (size_t i = 0; i < DASH_MAX_VIEWERS_LIMIT && dash.n_viewers; i++) {
		dash_viewer *v = &dash.viewers[i];
		if (!v->r || v->closing) continue;
		httpd_req *r = v->r;
		httpd_on_close(r, NULL, NULL);
		v->r = NULL;
		dash.n_viewers--;
		httpd_stream_end(r);
	}
	if (dash.m_viewers) prom_set(dash.m_viewers, (double)dash.n_viewers);
}

static int64_t tick(ev_loop *loop, uint64_t id, void *arg)
{
	gw *g = arg;
	(void)id;
	watch_regions(g);
	send_events(g);
	if (g->draining || !g->cfg->dashboard.enabled) end_viewers();
	if (++dash.ticks % DASH_SAMPLE_EVERY == 0) {
		measure_tokens(g, ev_now_ms(loop));
		sample(time_wall_ms() / 1000);
		measure_tenants();
		decay_shares();
		if (dash.n_viewers && build(g, "sample", fill_sample, NULL) == 0) broadcast();
		dash.state_dirty = 0;
	} else if (dash.state_dirty) {
		if (dash.n_viewers && build(g, "state", fill_state, NULL) == 0) broadcast();
		dash.state_dirty = 0;
	}
	return DASH_TICK_MS;
}

/* GET /dashboard/events: a new viewer, or 503 at the cap. */
static void events_stream(gw *g, httpd_req *r)
{
	size_t cap = g->cfg->dashboard.max_viewers;
	if (g->draining) {
		httpd_error(r, 503, "The gateway is draining.", NULL);
		return;
	}
	dash_viewer *v = NULL;
	for (size_t i = 0; i < DASH_MAX_VIEWERS_LIMIT && !v && dash.n_viewers < cap; i++)
		if (!dash.viewers[i].r) v = &dash.viewers[i];
	if (!v) {
		if (dash.m_refused) prom_inc(dash.m_refused);
		char msg[128];
		snprintf(msg, sizeof msg, "The dashboard has its %zu viewers already (dashboard.max_viewers); retry later.", cap);
		httpd_error(r, 503, msg, NULL);
		return;
	}
	if (httpd_stream_start(r, 200, "text/event-stream",
			       "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n", -1) < 0)
		return; /* the client is gone; httpd closes it */
	v->r = r;
	v->closing = 0;
	dash.n_viewers++;
	if (dash.m_viewers) prom_set(dash.m_viewers, (double)dash.n_viewers);
	httpd_on_close(r, viewer_gone, v);
	/* A browser that loses the stream asks again after a second. */
	static const char retry[] = "retry: 1000\n\n";
	viewer_send(v, retry, sizeof retry - 1);
	if (build(g, "snapshot", fill_snapshot, NULL) == 0) viewer_send(v, buf_rptr(&dash.out), buf_rlen(&dash.out));
}

int dashboard_handle(gw *g, httpd_req *r, const char *path)
{
	int page = !strcmp(path, "/dashboard") || !strcmp(path, "/dashboard/");
	int stream = !strcmp(path, "/dashboard/events");
	if (!page && !stream) return 0;
	if (!g->cfg->dashboard.enabled) {
		char msg[GW_PATH_LEN + 64];
		snprintf(msg, sizeof msg, "Not found: %.*s (the dashboard is off)", GW_PATH_LEN, path);
		httpd_error(r, 404, msg, NULL);
		return 1;
	}
	if (stream ? !httpd_method_is(r, "GET") : (!httpd_method_is(r, "GET") && !httpd_method_is(r, "HEAD"))) {
		char msg[160], hdr[64];
		const char *allow = stream ? "GET" : "GET, HEAD";
		buf *b = &g->scratch;
		buf_reset(b);
		snprintf(msg, sizeof msg, "Method %.16s is not allowed on %s (allowed: %s).", httpd_method(r), path, allow);
		oai_error_write(b, 405, msg, NULL);
		snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
		httpd_respond(r, 405, "application/json", hdr, buf_rptr(b), buf_rlen(b));
		return 1;
	}
	if (stream) {
		events_stream(g, r);
		return 1;
	}
	httpd_respond(r, 200, "text/html; charset=utf-8",
		      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
		      "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
		      "connect-src 'self'; img-src data:\r\n",
		      dashboard_html, (size_t)(dashboard_html_end - dashboard_html));
	return 1;
}

/* ------------------------------------------------------------ life */

int dashboard_init(gw *g)
{
	memset(&dash, 0, sizeof dash);
	dash.g = g;
	buf_init(&dash.json, DASH_OUT_MAX_BYTES);
	buf_init(&dash.out, DASH_OUT_MAX_BYTES + 4096);
	dash.m_viewers = prom_series_get(prom_gauge(g->reg, "infergate_dashboard_viewers",
						    "Dashboard event streams open now.", NULL),
					 NULL);
	dash.m_dropped = prom_series_get(prom_counter(g->reg, "infergate_dashboard_viewers_dropped_total",
						      "Dashboard viewers dropped because they read too slowly (their unsent output passed 1 MiB).", NULL),
					 NULL);
	dash.m_refused = prom_series_get(prom_counter(g->reg, "infergate_dashboard_viewers_refused_total",
						      "Dashboard event streams refused with 503 at dashboard.max_viewers.", NULL),
					 NULL);
	events_set_listener(on_event, g);
	dash.timer = ev_timer_add(g->loop, DASH_TICK_MS, tick, g);
	return dash.timer ? 0 : -1;
}

void dashboard_free(gw *g)
{
	events_set_listener(NULL, NULL);
	if (dash.timer && g->loop) ev_timer_del(g->loop, dash.timer);
	dash.timer = 0;
	buf_free(&dash.json);
	buf_free(&dash.out);
	events_clear();
}
