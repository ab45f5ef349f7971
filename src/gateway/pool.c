/*
 * pool.c — pools and endpoints, built from a configuration and rebuilt on
 * reload, and the routing of a request to a pool.
 *
 * An endpoint is known by its pool name and address: a reload that keeps it
 * keeps the object (health, counters, keep-alive connections) and updates its
 * region, weight and policies. An endpoint that leaves is marked removed: no
 * new request picks it (its pool is gone from gw.pools), its checks stop, and
 * it is freed when the last request in flight on it lets go.
 */
#include "gateway/gateway.h"
#include "gateway/pool.h"
#include "gateway/health.h"
#include "gateway/metrics.h"
#include "gateway/picker.h"
#include "gateway/scrape.h"
#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ references */

static void all_eps_del(gw *g, gw_endpoint *e)
{
	for (size_t i = 0; i < g->n_all; i++)
		if (g->all_eps[i] == e) {
			g->all_eps[i] = g->all_eps[--g->n_all];
			return;
		}
}

static void endpoint_free(gw_endpoint *e)
{
	gw *g = e->g;
	health_stop(e);
	scrape_free(e);
	picker_endpoint_free(e);
	if (e->models_req) hc_cancel(e->models_req);
	buf_free(&e->models_body);
	gw_metrics_endpoint_remove(g, e);
	all_eps_del(g, e);
	hc_pool_free(e->conns);
	free(e->models);
	free(e);
}

static void endpoint_free_cb(ev_loop *loop, void *arg)
{
	endpoint_free(arg);
}

void gw_endpoint_ref(gw_endpoint *e) { e->refs++; }

/* The last reference is often let go from inside a callback of the endpoint's
 * own connection pool: the endpoint is freed from the loop, after it returns. */
void gw_endpoint_unref(gw_endpoint *e)
{
	if (!e) return;
	BUG_ON(e->refs <= 0);
	if (--e->refs == 0) {
		if (e->removed) log_info("endpoint %s of pool %s: drained, gone", e->address, e->pool_name);
		health_stop(e);
		if (ev_defer(e->g->loop, endpoint_free_cb, e) < 0) endpoint_free(e);
	}
}

void gw_pool_ref(gw_pool *p) { p->refs++; }

void gw_pool_unref(gw_pool *p)
{
	if (!p) return;
	BUG_ON(p->refs <= 0);
	if (--p->refs) return;
	for (size_t i = 0; i < p->n_eps; i++) gw_endpoint_unref(p->eps[i]);
	picker_pool_free(p);
	free(p->eps);
	free(p);
}

/* ------------------------------------------------------------ building */

static gw_endpoint *endpoint_new(gw *g, const gw_pool_cfg *pc, const gw_endpoint_cfg *ec, char *err, size_t err_len)
{
	gw_endpoint *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	char why[256] = "";
	e->conns = hc_pool_new(g->loop, ec->address, pc->backend.max_idle_conns, why, sizeof(why));
	if (!e->conns) {
		snprintf(err, err_len, "pool %s: endpoint %s: %s", pc->name, ec->address, why[0] ? why : "out of memory");
		free(e);
		return NULL;
	}
	if (ec->tls || pc->backend.tls) {
		/* One client context per endpoint: its CA file is read now, so a bad
		 * one fails the boot or refuses the reload. */
		const gw_backend_cfg *b = &pc->backend;
		tls_client_opts to = {
			.ca_file = b->tls_ca_file[0] ? b->tls_ca_file : NULL,
			.insecure = !b->tls_verify,
			.cert_file = b->tls_cert_file[0] ? b->tls_cert_file : NULL,
			.key_file = b->tls_key_file[0] ? b->tls_key_file : NULL,
		};
		tls_ctx *tc = tls_client_new(&to, why, sizeof(why));
		if (!tc) {
			snprintf(err, err_len, "pool %s: endpoint %s: TLS: %s", pc->name, ec->address, why);
			hc_pool_free(e->conns);
			free(e);
			return NULL;
		}
		hc_pool_set_tls(e->conns, tc, b->tls_server_name[0] ? b->tls_server_name : NULL);
		tls_ctx_free(tc); /* the pool holds its own reference */
	}
	if (g->n_all == g->cap_all) {
		size_t nc = g->cap_all ? g->cap_all * 2 : 16;
		gw_endpoint **n = realloc(g->all_eps, nc * sizeof(*n));
		if (!n) {
			hc_pool_free(e->conns);
			free(e);
			snprintf(err, err_len, "out of memory");
			return NULL;
		}
		g->all_eps = n;
		g->cap_all = nc;
	}
	g->all_eps[g->n_all++] = e;
	e->g = g;
	str_copy(e->address, ec->address, sizeof(e->address));
	str_copy(e->label, ec->address, sizeof(e->label));
	str_copy(e->pool_name, pc->name, sizeof(e->pool_name));
	str_copy(e->region, ec->region, sizeof(e->region));
	e->state = GW_HEALTH_UNKNOWN;
	e->state_since_ms = ev_now_ms(g->loop);
	gw_metrics_endpoint_add(g, e);
	return e;
}

/* Region ranks of this configuration: 0 for the own region, then by latency
 * (known before unknown), then by name. */
static int region_rank(const gw_config *cfg, const char *region)
{
	if (!strcmp(region, cfg->region)) return 0;
	int64_t mine = gw_config_region_latency_ms(cfg, region);
	int rank = 1;
	/* Count the distinct regions of the configuration that sort before this one. */
	const char *seen[GW_MAX_POOLS * 4];
	size_t n_seen = 0;
	for (size_t i = 0; i < cfg->n_pools; i++)
		for (size_t k = 0; k < cfg->pools[i].n_endpoints; k++) {
			const char *r = cfg->pools[i].endpoints[k].region;
			if (!strcmp(r, cfg->region) || !strcmp(r, region)) continue;
			size_t s;
			for (s = 0; s < n_seen; s++)
				if (!strcmp(seen[s], r)) break;
			if (s < n_seen) continue;
			if (n_seen < ARRAY_LEN(seen)) seen[n_seen++] = r;
			int64_t lat = gw_config_region_latency_ms(cfg, r);
			int before;
			if (lat >= 0 && mine >= 0) before = lat < mine || (lat == mine && strcmp(r, region) < 0);
			else if (lat >= 0) before = 1;
			else if (mine >= 0) before = 0;
			else before = strcmp(r, region) < 0;
			rank += before;
		}
	return rank;
}

static gw_endpoint *find_endpoint(gw *g, const char *pool, const char *address)
{
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		if (strcmp(p->cfg.name, pool)) continue;
		for (size_t k = 0; k < p->n_eps; k++)
			if (!strcmp(p->eps[k]->address, address)) return p->eps[k];
	}
	return NULL;
}

static int health_cfg_same(const gw_health_cfg *a, const gw_health_cfg *b)
{
	return !strcmp(a->path, b->path) && a->interval_ms == b->interval_ms &&
	       a->fast_interval_ms == b->fast_interval_ms && a->timeout_ms == b->timeout_ms &&
	       a->rise == b->rise && a->fall == b->fall && a->enabled == b->enabled;
}

int gw_pools_apply(gw *g, const gw_config *cfg, char *err, size_t err_len)
{
	gw_pool **np = calloc(cfg->n_pools, sizeof(*np));
	if (!np) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	/* Pass 1: build every pool; new endpoints are made, kept ones shared. */
	size_t built = 0;
	for (; built < cfg->n_pools; built++) {
		const gw_pool_cfg *pc = &cfg->pools[built];
		gw_pool *p = calloc(1, sizeof(*p));
		if (!p || !(p->eps = calloc(pc->n_endpoints, sizeof(*p->eps)))) {
			free(p);
			snprintf(err, err_len, "out of memory");
			goto fail;
		}
		p->cfg = *pc;
		p->cfg.endpoints = NULL;
		p->cfg.n_endpoints = 0;
		p->refs = 1;
		p->g = g;
		np[built] = p;
		for (size_t k = 0; k < pc->n_endpoints; k++) {
			gw_endpoint *e = find_endpoint(g, pc->name, pc->endpoints[k].address);
			if (!e) e = endpoint_new(g, pc, &pc->endpoints[k], err, err_len);
			if (!e) goto fail;
			gw_endpoint_ref(e);
			p->eps[p->n_eps++] = e;
		}
	}
	/* Pass 2: nothing can fail now; update kept endpoints, start new ones. */
	for (size_t i = 0; i < cfg->n_pools; i++) {
		gw_pool *p = np[i];
		const gw_pool_cfg *pc = &cfg->pools[i];
		for (size_t k = 0; k < p->n_eps; k++) {
			gw_endpoint *e = p->eps[k];
			const gw_endpoint_cfg *ec = &pc->endpoints[k];
			int fresh = e->refs == 1;
			int region_changed = strcmp(e->region, ec->region) != 0;
			if (region_changed && !fresh) gw_metrics_endpoint_remove(g, e);
			str_copy(e->region, ec->region, sizeof(e->region));
			if (region_changed && !fresh) gw_metrics_endpoint_add(g, e);
			e->weight = ec->weight;
			e->region_rank = region_rank(cfg, e->region);
			e->pc = pc->passive;
			e->learn_models = pc->n_models == 0;
			str_copy(e->api_key, pc->backend.api_key, sizeof(e->api_key));
			int restart = !fresh && !health_cfg_same(&e->hc, &pc->health);
			e->hc = pc->health;
			if (fresh) health_start(e);
			else if (restart) {
				health_stop(e);
				health_start(e);
			}
			if (scrape_apply(e, &pc->metrics) < 0)
				log_warn("endpoint %s of pool %s: out of memory: not scraped", e->address, pc->name);
		}
	}
	/* Release the old pools; endpoints they alone held are marked removed. */
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		for (size_t k = 0; k < p->n_eps; k++) {
			gw_endpoint *e = p->eps[k];
			int still = 0;
			for (size_t j = 0; j < cfg->n_pools && !still; j++)
				for (size_t q = 0; q < np[j]->n_eps; q++)
					if (np[j]->eps[q] == e) {
						still = 1;
						break;
					}
			if (!still && !e->removed) {
				e->removed = 1;
				health_stop(e);
				log_info("endpoint %s of pool %s: removed from the configuration, draining (%u in flight)",
					 e->address, e->pool_name, e->in_flight);
			}
		}
		gw_pool_unref(p);
	}
	free(g->pools);
	g->pools = np;
	g->n_pools = cfg->n_pools;
	return 0;
fail:
	for (size_t i = 0; i < built + 1 && i < cfg->n_pools; i++) {
		gw_pool *p = np[i];
		if (!p) continue;
		for (size_t k = 0; k < p->n_eps; k++) {
			gw_endpoint *e = p->eps[k];
			if (--e->refs == 0) endpoint_free(e);
		}
		free(p->eps);
		free(p);
	}
	free(np);
	return -1;
}

void gw_pools_free(gw *g)
{
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		for (size_t k = 0; k < p->n_eps; k++) health_stop(p->eps[k]);
		gw_pool_unref(p);
	}
	free(g->pools);
	g->pools = NULL;
	g->n_pools = 0;
	free(g->all_eps);
	g->all_eps = NULL;
	g->n_all = g->cap_all = 0;
	free(g->response_ids);
	g->response_ids = NULL;
}

/* ------------------------------------------------------------ routing */

int gw_pool_serves(const gw_pool *p, const char *model)
{
	if (!p->cfg.n_models) return 1;
	for (size_t i = 0; i < p->cfg.n_models; i++)
		if (!strcmp(p->cfg.models[i], model)) return 1;
	return 0;
}

/* 1 when route r takes path: its prefix, or one of its extra paths. */
static int route_takes(const gw_route_cfg *r, const char *path)
{
	if (!strncmp(path, r->prefix, strlen(r->prefix))) return 1;
	for (size_t k = 0; k < r->n_extra_paths; k++)
		if (!strncmp(path, r->extra_paths[k], strlen(r->extra_paths[k]))) return 1;
	return 0;
}

int gw_route_extra_path(const gw *g, const char *path)
{
	const gw_config *cfg = g->cfg;
	for (size_t i = 0; i < cfg->n_routes; i++)
		for (size_t k = 0; k < cfg->routes[i].n_extra_paths; k++)
			if (!strncmp(path, cfg->routes[i].extra_paths[k], strlen(cfg->routes[i].extra_paths[k]))) return 1;
	return 0;
}

gw_pool *gw_route(gw *g, const char *path, const char *model)
{
	const gw_config *cfg = g->cfg;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const gw_route_cfg *r = &cfg->routes[i];
		if (!route_takes(r, path)) continue;
		if ((size_t)r->pool_index >= g->n_pools) continue;
		gw_pool *p = g->pools[r->pool_index];
		if (r->model[0] ? !strcmp(r->model, model) : gw_pool_serves(p, model)) return p;
	}
	return NULL;
}

gw_pool *gw_route_default(gw *g, const char *path)
{
	const gw_config *cfg = g->cfg;
	gw_pool *only = NULL;
	/* A server's own path named by a route goes to that route's pool. */
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const gw_route_cfg *r = &cfg->routes[i];
		for (size_t k = 0; k < r->n_extra_paths; k++)
			if (!strncmp(path, r->extra_paths[k], strlen(r->extra_paths[k])) && (size_t)r->pool_index < g->n_pools)
				return g->pools[r->pool_index];
	}
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const gw_route_cfg *r = &cfg->routes[i];
		if (!route_takes(r, path)) continue;
		if ((size_t)r->pool_index >= g->n_pools) continue;
		gw_pool *p = g->pools[r->pool_index];
		if (only && only != p) return NULL; /* several: the client must say which model */
		only = p;
	}
	return only;
}

gw_pool *gw_route_first(gw *g, const char *path)
{
	const gw_config *cfg = g->cfg;
	for (size_t i = 0; i < cfg->n_routes; i++)
		if (route_takes(&cfg->routes[i], path) && (size_t)cfg->routes[i].pool_index < g->n_pools)
			return g->pools[cfg->routes[i].pool_index];
	return NULL;
}

size_t gw_healthy_endpoints(const gw *g)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n_pools; i++)
		for (size_t k = 0; k < g->pools[i]->n_eps; k++)
			n += g->pools[i]->eps[k]->state == GW_HEALTH_UP;
	return n;
}

/* ---- where stored responses live: response id -> pool name. A fixed table
 * (GW_RESPONSE_IDS slots, open addressing by the id's hash, a new id over an
 * old one when its probe run is full), so memory never grows and a reload
 * (pools by name) never leaves a pointer behind. */

#define GW_RESPONSE_IDS 4096
#define GW_RESPONSE_PROBE 8

typedef struct response_slot {
	uint64_t hash; /* 0 = empty */
	char pool[GW_NAME_LEN];
} response_slot;

static uint64_t id_hash(const char *id, size_t n)
{
	uint64_t h = hash64(id, n, 0x7e5b0a5e) | 1;
	return h;
}

void gw_response_remember(gw *g, const char *id, size_t n, const gw_pool *p)
{
	if (!g->response_ids) g->response_ids = calloc(GW_RESPONSE_IDS, sizeof(response_slot));
	response_slot *t = g->response_ids;
	if (!t || !n) return;
	uint64_t h = id_hash(id, n);
	size_t at = h % GW_RESPONSE_IDS, pick = at;
	for (size_t k = 0; k < GW_RESPONSE_PROBE; k++) {
		size_t i = (at + k) % GW_RESPONSE_IDS;
		if (t[i].hash == h || t[i].hash == 0) {
			pick = i;
			break;
		}
	}
	t[pick].hash = h;
	str_copy(t[pick].pool, p->cfg.name, sizeof(t[pick].pool));
}

gw_pool *gw_response_pool(gw *g, const char *id, size_t n)
{
	const response_slot *t = g->response_ids;
	if (!t || !n) return NULL;
	uint64_t h = id_hash(id, n);
	for (size_t k = 0; k < GW_RESPONSE_PROBE; k++) {
		const response_slot *e = &t[(h % GW_RESPONSE_IDS + k) % GW_RESPONSE_IDS];
		if (e->hash != h) continue;
		for (size_t i = 0; i < g->n_pools; i++)
			if (!strcmp(g->pools[i]->cfg.name, e->pool)) return g->pools[i];
		return NULL;
	}
	return NULL;
}
