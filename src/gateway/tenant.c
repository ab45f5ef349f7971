/*
 * tenant.c — the limits of tenant.h and the process's table of tenants.
 *
 * The table is an array in configuration order plus the anonymous tenant; a
 * request's key is looked up in the current configuration's lists (so the
 * keys are never copied twice) and mapped to the state of the same index.
 * Per-tenant metric series are made when a tenant first appears and removed
 * when its last reference goes: their number is bounded by the
 * configuration (GW_MAX_TENANTS + 1 label values, plus those still draining).
 */
#include "gateway/tenant.h"
#include "gateway/gateway.h"
#include "core/json.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const limit_names[] = {"requests_per_second", "tokens_per_minute", "max_in_flight"};

const char *tenant_limit_name(int limit)
{
	return limit >= 0 && limit < (int)ARRAY_LEN(limit_names) ? limit_names[limit] : "none";
}

/* ------------------------------------------------------------ the limits (pure) */

static double rps_cap(const tenant_state *t) { return t->requests_per_second < 1 ? 1 : t->requests_per_second; }

/* Both buckets refilled up to now_ms. */
static void refill(tenant_state *t, uint64_t now_ms)
{
	if (now_ms <= t->refilled_ms) return;
	double dt_ms = (double)(now_ms - t->refilled_ms);
	t->refilled_ms = now_ms;
	if (t->requests_per_second > 0)
		t->request_level = fmin(rps_cap(t), t->request_level + dt_ms * t->requests_per_second / 1000.0);
	if (t->tokens_per_minute)
		t->token_level = fmin((double)t->tokens_per_minute, t->token_level + dt_ms * (double)t->tokens_per_minute / 60000.0);
}

void tenant_set_limits(tenant_state *t, const gw_tenant_cfg *tc, uint64_t now_ms)
{
	double rps = tc ? tc->requests_per_second : 0;
	uint64_t tpm = tc ? tc->tokens_per_minute : 0;
	refill(t, now_ms);
	/* A new or changed limit starts full; an unchanged one keeps its level. */
	if (rps != t->requests_per_second) t->request_level = rps < 1 ? 1 : rps;
	if (tpm != t->tokens_per_minute) t->token_level = (double)tpm;
	t->requests_per_second = rps;
	t->tokens_per_minute = tpm;
	t->max_in_flight = tc ? tc->max_in_flight : 0;
	t->priority = tc ? tc->priority : 0;
	t->refilled_ms = now_ms;
}

static uint64_t ms_until(double missing, double per_ms)
{
	double ms = ceil(missing / per_ms);
	return ms < 1 ? 1 : ms > 3600000.0 ? 3600000
					   : (uint64_t)ms;
}

int tenant_take(tenant_state *t, uint64_t now_ms, uint64_t reserve_tokens, uint64_t *retry_after_ms)
{
	refill(t, now_ms);
	if (t->max_in_flight && t->in_flight >= t->max_in_flight) {
		*retry_after_ms = 1000; /* unknown: when one of them ends */
		return TENANT_IN_FLIGHT;
	}
	if (t->requests_per_second > 0 && t->request_level < 1) {
		*retry_after_ms = ms_until(1 - t->request_level, t->requests_per_second / 1000.0);
		return TENANT_RPS;
	}
	if (t->tokens_per_minute && t->token_level <= 0) {
		*retry_after_ms = ms_until(1 - t->token_level, (double)t->tokens_per_minute / 60000.0);
		return TENANT_TPM;
	}
	if (t->requests_per_second > 0) t->request_level -= 1;
	if (t->tokens_per_minute) t->token_level -= (double)reserve_tokens;
	t->in_flight++;
	return TENANT_OK;
}

void tenant_settle(tenant_state *t, uint64_t now_ms, uint64_t reserve_tokens, uint64_t used_tokens)
{
	refill(t, now_ms);
	if (t->in_flight) t->in_flight--;
	if (t->tokens_per_minute) {
		t->token_level += (double)reserve_tokens - (double)used_tokens;
		if (t->token_level > (double)t->tokens_per_minute) t->token_level = (double)t->tokens_per_minute;
	}
}

/* ------------------------------------------------------------ the table */

static struct {
	tenant_state **v; /* n, in the configuration's order; each one ref */
	size_t n;
	tenant_state *anon; /* one ref */
	uint32_t next_id;
	prom_family *requests, *tokens, *limited, *in_flight, *queue;
	gw *g;
} tab;

static const double queue_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

int tenant_metrics_init(gw *g)
{
	static const char *const l_t[] = {"tenant", NULL};
	static const char *const l_tok[] = {"tenant", "kind", NULL};
	static const char *const l_lim[] = {"tenant", "limit", NULL};
	tab.g = g;
	tab.requests = prom_counter(g->reg, "infergate_tenant_requests_total",
				    "Requests of the tenant that reached admission (its key known), answered or not.", l_t);
	tab.tokens = prom_counter(g->reg, "infergate_tenant_tokens_total",
				  "Tokens of the tenant's answers (usage), by kind: prompt or completion.", l_tok);
	tab.limited = prom_counter(g->reg, "infergate_tenant_rate_limited_total",
				   "Requests of the tenant refused with 429 by one of its limits, by limit.", l_lim);
	tab.in_flight = prom_gauge(g->reg, "infergate_tenant_in_flight_requests",
				   "Requests of the tenant admitted and not yet answered.", l_t);
	tab.queue = prom_histogram(g->reg, "infergate_tenant_queue_seconds",
				   "Time the tenant's requests waited in an admission queue before going on (0 when they did not wait), seconds.",
				   l_t, queue_bounds, ARRAY_LEN(queue_bounds));
	return tab.requests && tab.tokens && tab.limited && tab.in_flight && tab.queue ? 0 : -1;
}

static void series_make(tenant_state *t)
{
	if (!tab.requests) return;
	const char *lv[] = {t->name};
	const char *lp[] = {t->name, "prompt"}, *lc[] = {t->name, "completion"};
	t->m_requests = prom_series_get(tab.requests, lv);
	t->m_prompt = prom_series_get(tab.tokens, lp);
	t->m_completion = prom_series_get(tab.tokens, lc);
	t->m_in_flight = prom_series_get(tab.in_flight, lv);
	t->m_queue = prom_series_get(tab.queue, lv);
	for (int i = 0; i < 3; i++) {
		const char *ll[] = {t->name, limit_names[i]};
		t->m_limited[i] = prom_series_get(tab.limited, ll);
	}
}

static void series_drop(tenant_state *t)
{
	if (!tab.requests || !t->m_requests) return;
	const char *lv[] = {t->name};
	const char *lp[] = {t->name, "prompt"}, *lc[] = {t->name, "completion"};
	prom_series_remove(tab.requests, lv);
	prom_series_remove(tab.tokens, lp);
	prom_series_remove(tab.tokens, lc);
	prom_series_remove(tab.in_flight, lv);
	prom_series_remove(tab.queue, lv);
	for (int i = 0; i < 3; i++) {
		const char *ll[] = {t->name, limit_names[i]};
		prom_series_remove(tab.limited, ll);
	}
}

static tenant_state *state_new(const char *name)
{
	tenant_state *t = calloc(1, sizeof(*t));
	if (!t) return NULL;
	str_copy(t->name, name, sizeof(t->name));
	t->refs = 1;
	t->id = ++tab.next_id;
	series_make(t);
	return t;
}

void tenant_ref(tenant_state *t)
{
	if (t) t->refs++;
}

void tenant_unref(tenant_state *t)
{
	if (!t || --t->refs > 0) return;
	/* A tenant that is back in the table under its name has a new state with
	 * the same series: drop them only when no state of that name is left. */
	int listed = 0;
	for (size_t i = 0; i < tab.n; i++) listed |= !strcmp(tab.v[i]->name, t->name);
	if (!listed && !(tab.anon && !strcmp(tab.anon->name, t->name))) series_drop(t);
	free(t);
}

void tenant_count_limited(tenant_state *t, int limit)
{
	if (limit >= 0 && limit < 3 && t->m_limited[limit]) prom_inc(t->m_limited[limit]);
}

void tenant_count_end(tenant_state *t, int status, uint64_t tokens)
{
	t->ended_total++;
	t->errors_total += status >= 500;
	t->shed_total += status == 429;
	t->tokens_total += tokens;
}

size_t tenant_table_size(void)
{
	return tab.anon ? 1 + tab.n : 0;
}

tenant_state *tenant_at(size_t i)
{
	if (!tab.anon) return NULL;
	return i == 0 ? tab.anon : i - 1 < tab.n ? tab.v[i - 1]
						 : NULL;
}

int tenant_apply(gw *g, const gw_config *cfg, uint64_t now_ms)
{
	if (!tab.anon && !(tab.anon = state_new("anonymous"))) return -1;
	tenant_state **nv = cfg->n_tenants ? calloc(cfg->n_tenants, sizeof(*nv)) : NULL;
	if (cfg->n_tenants && !nv) return -1;
	for (size_t i = 0; i < cfg->n_tenants; i++) {
		const gw_tenant_cfg *tc = &cfg->tenants[i];
		for (size_t k = 0; k < tab.n && !nv[i]; k++)
			if (!strcmp(tab.v[k]->name, tc->name)) (nv[i] = tab.v[k])->refs++;
		if (!nv[i] && !(nv[i] = state_new(tc->name))) {
			for (size_t k = 0; k < i; k++) tenant_unref(nv[k]);
			free(nv);
			return -1;
		}
		tenant_set_limits(nv[i], tc, now_ms);
	}
	tenant_state **old = tab.v;
	size_t n_old = tab.n;
	tab.v = nv;
	tab.n = cfg->n_tenants;
	for (size_t k = 0; k < n_old; k++) tenant_unref(old[k]); /* those still in use stay alive for their calls */
	free(old);
	return 0;
}

tenant_state *tenant_identify(gw *g, httpd_req *r)
{
	const gw_config *cfg = g->cfg;
	tenant_state *t = NULL;
	/* Every key is compared, the match or not, so the time taken does not
	 * tell which tenant's key was close. */
	for (size_t i = 0; i < cfg->n_tenants && i < tab.n; i++)
		for (size_t k = 0; k < cfg->tenants[i].n_api_keys; k++)
			if (httpd_bearer_is(r, cfg->tenants[i].api_keys[k]) && !t) t = tab.v[i];
	int anon_ok = cfg->n_api_keys == 0 && cfg->n_tenants == 0;
	for (size_t i = 0; i < cfg->n_api_keys; i++) anon_ok |= httpd_bearer_is(r, cfg->api_keys[i]);
	if (!t && anon_ok) t = tab.anon;
	if (t) t->refs++;
	return t;
}

void tenant_free_all(gw *g)
{
	/* Out of the table first: tenant_unref looks names up in it. */
	tenant_state **v = tab.v, *anon = tab.anon;
	size_t n = tab.n;
	tab.v = NULL;
	tab.n = 0;
	tab.anon = NULL;
	for (size_t k = 0; k < n; k++) tenant_unref(v[k]);
	free(v);
	tenant_unref(anon);
}

static void status_one(json_w *w, tenant_state *t, uint64_t now_ms)
{
	refill(t, now_ms);
	jw_obj_begin(w);
	jw_key(w, "name");
	jw_str(w, t->name);
	jw_key(w, "priority");
	jw_int(w, t->priority);
	jw_key(w, "in_flight");
	jw_uint(w, t->in_flight);
	jw_key(w, "max_in_flight");
	if (t->max_in_flight) jw_uint(w, t->max_in_flight);
	else jw_null(w);
	jw_key(w, "requests_per_second");
	if (t->requests_per_second > 0) jw_double(w, t->requests_per_second);
	else jw_null(w);
	jw_key(w, "requests_available");
	if (t->requests_per_second > 0) jw_double(w, t->request_level);
	else jw_null(w);
	jw_key(w, "tokens_per_minute");
	if (t->tokens_per_minute) jw_uint(w, t->tokens_per_minute);
	else jw_null(w);
	jw_key(w, "tokens_available");
	if (t->tokens_per_minute) jw_double(w, t->token_level);
	else jw_null(w);
	jw_obj_end(w);
}

void tenant_status(json_w *w, uint64_t now_ms)
{
	jw_key(w, "tenants");
	jw_arr_begin(w);
	if (tab.anon) status_one(w, tab.anon, now_ms);
	for (size_t i = 0; i < tab.n; i++) status_one(w, tab.v[i], now_ms);
	jw_arr_end(w);
}
