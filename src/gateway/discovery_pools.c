/*
 * discovery_pools.c — the gateway's side of discovery: one discovery
 * (discovery.h) per endpoint entry with `resolve:`, and the pools built from
 * the configuration with each such entry expanded into the addresses it
 * currently resolves to.
 *
 * Both the boot, a reload (SIGHUP) and a discovered change go through
 * gw_discovery_apply -> gw_pools_apply, the same join/drain path: an address
 * that stays keeps its endpoint (health, counters, connections), a new one
 * joins — starting DOWN, so it takes traffic once its health checks pass (when
 * the pool has checks) —, one that is gone drains. A reload keeps the
 * discoveries whose entry did not change (and their known sets). A failed
 * resolution changes nothing (discovery.h).
 *
 * Metrics: infergate_discovery_resolutions_total, _failures_total and
 * infergate_discovery_addresses, by pool and name.
 */
#include "gateway/gateway.h"
#include "gateway/discovery_pools.h"
#include "gateway/metrics.h"
#include "gateway/pool.h"
#include "gateway/discovery.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One resolved entry. Owner: gw_discovery. */
typedef struct gw_disc {
	char pool[GW_NAME_LEN];
	gw_endpoint_cfg ec; /* the entry as configured */
	discovery *d;
	prom_series *m_res, *m_fail, *m_addrs;
	uint64_t res_seen, fail_seen; /* what the counters were given so far */
} gw_disc;

/* Owner: gw (g->discovery). */
struct gw_discovery {
	gw *g;
	gw_disc **v;
	size_t n;
	prom_family *f_res, *f_fail, *f_addrs;
	uint64_t sync_timer;
};

#define SYNC_MS 1000

static int same_entry(const gw_disc *x, const char *pool, const gw_endpoint_cfg *ec)
{
	return !strcmp(x->pool, pool) && !strcmp(x->ec.address, ec->address) && x->ec.resolve == ec->resolve &&
	       x->ec.resolve_interval_ms == ec->resolve_interval_ms && !strcmp(x->ec.resolver, ec->resolver);
}

static void disc_free(struct gw_discovery *D, gw_disc *x)
{
	discovery_free(x->d);
	const char *lv[] = {x->pool, x->ec.address};
	if (x->m_res) prom_series_remove(D->f_res, lv);
	if (x->m_fail) prom_series_remove(D->f_fail, lv);
	if (x->m_addrs) prom_series_remove(D->f_addrs, lv);
	free(x);
}

static void sync_metrics(struct gw_discovery *D)
{
	for (size_t i = 0; i < D->n; i++) {
		gw_disc *x = D->v[i];
		const discovery_stats *st = discovery_get_stats(x->d);
		if (x->m_res) prom_add(x->m_res, (double)(st->resolutions_total - x->res_seen));
		if (x->m_fail) prom_add(x->m_fail, (double)(st->failures_total - x->fail_seen));
		if (x->m_addrs) prom_set(x->m_addrs, (double)st->n_addrs);
		x->res_seen = st->resolutions_total;
		x->fail_seen = st->failures_total;
	}
}

static int64_t sync_cb(ev_loop *loop, uint64_t id, void *arg)
{
	sync_metrics(arg);
	return SYNC_MS;
}

/* ------------------------------------------------------------ expansion */

static int in_list(gw_endpoint *const *list, size_t n, const gw_endpoint *e)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == e) return 1;
	return 0;
}

/* Applies cfg with its resolved entries expanded through discs[n]. */
static int expand_apply(gw *g, const gw_config *cfg, gw_disc *const *discs, size_t n, char *err, size_t err_len)
{
	gw_config *x = malloc(sizeof(*x));
	gw_pool_cfg *pools = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof(*pools));
	gw_endpoint **before = malloc((g->n_all ? g->n_all : 1) * sizeof(*before));
	char(*found)[GW_ADDR_LEN] = calloc(GW_MAX_POOLS * 4, sizeof(*found)); /* discovered addresses, for DOWN */
	size_t n_found = 0, n_before = g->n_all;
	int rc = -1;
	if (!x || !pools || !before || !found) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	if (n_before) memcpy(before, g->all_eps, n_before * sizeof(*before));
	*x = *cfg;
	x->pools = pools;
	for (size_t i = 0; i < cfg->n_pools; i++) {
		const gw_pool_cfg *pc = &cfg->pools[i];
		gw_pool_cfg *xp = &pools[i];
		*xp = *pc;
		xp->n_endpoints = 0;
		xp->endpoints = calloc(GW_MAX_ENDPOINTS, sizeof(*xp->endpoints));
		if (!xp->endpoints) {
			snprintf(err, err_len, "out of memory");
			goto out;
		}
		for (size_t k = 0; k < pc->n_endpoints; k++) {
			const gw_endpoint_cfg *ec = &pc->endpoints[k];
			const discovery_addr *addrs = NULL;
			size_t na = 1;
			if (ec->resolve) {
				na = 0;
				for (size_t j = 0; j < n; j++)
					if (same_entry(discs[j], pc->name, ec)) addrs = discovery_addrs(discs[j]->d, &na);
			}
			for (size_t a = 0; a < na; a++) {
				const char *addr = addrs ? addrs[a].addr : ec->address;
				size_t q;
				for (q = 0; q < xp->n_endpoints; q++)
					if (!strcmp(xp->endpoints[q].address, addr)) break;
				if (q < xp->n_endpoints) continue; /* listed by an earlier entry */
				if (xp->n_endpoints == GW_MAX_ENDPOINTS) {
					log_ratelimited(LOG_WARN, "pool %s: more than %d endpoints, %s left out", pc->name,
							GW_MAX_ENDPOINTS, addr);
					continue;
				}
				gw_endpoint_cfg *xe = &xp->endpoints[xp->n_endpoints++];
				*xe = *ec;
				str_copy(xe->address, addr, sizeof(xe->address));
				xe->resolve = GW_RESOLVE_NONE;
				if (addrs && n_found < GW_MAX_POOLS * 4) str_copy(found[n_found++], addr, GW_ADDR_LEN);
			}
		}
	}
	rc = gw_pools_apply(g, x, err, err_len);
	if (rc == 0) {
		/* A discovered endpoint joins once its checks pass: new ones start
		 * DOWN (the first check is already under way). */
		for (size_t i = 0; i < g->n_pools; i++)
			for (size_t k = 0; k < g->pools[i]->n_eps; k++) {
				gw_endpoint *e = g->pools[i]->eps[k];
				if (e->state != GW_HEALTH_UNKNOWN || !e->hc.enabled || in_list(before, n_before, e)) continue;
				size_t f;
				for (f = 0; f < n_found; f++)
					if (!strcmp(found[f], e->address)) break;
				if (f == n_found) continue;
				e->state = GW_HEALTH_DOWN;
				e->health = 0;
				gw_metrics_health_change(g, e, GW_HEALTH_UNKNOWN, GW_HEALTH_DOWN);
			}
	}
out:
	if (pools)
		for (size_t i = 0; i < cfg->n_pools; i++) free(pools[i].endpoints);
	free(pools);
	free(x);
	free(before);
	free(found);
	return rc;
}

static void on_change(discovery *d, const discovery_addr *addrs, size_t n, void *arg)
{
	gw *g = arg;
	struct gw_discovery *D = g->discovery;
	char err[512];
	if (g->draining) return;
	if (expand_apply(g, g->cfg, D->v, D->n, err, sizeof(err)) < 0)
		log_ratelimited(LOG_ERROR, "discovery of %s: the new set could not be applied: %s",
				discovery_get_spec(d)->name, err);
	sync_metrics(D);
}

/* ------------------------------------------------------------ apply, free */

static gw_disc *disc_new(gw *g, const char *pool, const gw_endpoint_cfg *ec, char *err, size_t err_len)
{
	gw_disc *x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	str_copy(x->pool, pool, sizeof(x->pool));
	x->ec = *ec;
	discovery_spec sp = {.kind = ec->resolve, .interval_ms = ec->resolve_interval_ms};
	str_copy(sp.resolver, ec->resolver, sizeof(sp.resolver));
	/* "name:port" (dns), "name" (srv), "service[.namespace]:port" (kubernetes) */
	char host[GW_ADDR_LEN];
	str_copy(host, ec->address, sizeof(host));
	char *colon = ec->resolve == GW_RESOLVE_SRV ? NULL : strrchr(host, ':');
	if (colon) {
		*colon = '\0';
		sp.port = (uint16_t)atoi(colon + 1);
	}
	if (ec->resolve == GW_RESOLVE_KUBERNETES) {
		char *dot = strchr(host, '.');
		if (dot) {
			*dot = '\0';
			str_copy(sp.k8s_namespace, dot + 1, sizeof(sp.k8s_namespace));
		}
		str_copy(sp.k8s_service, host, sizeof(sp.k8s_service));
	} else {
		str_copy(sp.name, host, sizeof(sp.name));
	}
	char why[400];
	x->d = discovery_new(g->loop, &sp, on_change, g, why, sizeof(why));
	if (!x->d) {
		snprintf(err, err_len, "pool %s: endpoint %s: %s", pool, ec->address, why);
		free(x);
		return NULL;
	}
	return x;
}

/* The series of x, taken once the discoveries it replaces are gone (an entry
 * whose interval changed has the same labels as the one before it: removing
 * the old one's series must not free the new one's). */
static void disc_series(struct gw_discovery *D, gw_disc *x)
{
	const char *lv[] = {x->pool, x->ec.address};
	if (!x->m_res) x->m_res = prom_series_get(D->f_res, lv);
	if (!x->m_fail) x->m_fail = prom_series_get(D->f_fail, lv);
	if (!x->m_addrs) x->m_addrs = prom_series_get(D->f_addrs, lv);
}

int gw_discovery_apply(gw *g, const gw_config *cfg, char *err, size_t err_len)
{
	struct gw_discovery *D = g->discovery;
	if (!D) {
		D = calloc(1, sizeof(*D));
		if (!D) {
			snprintf(err, err_len, "out of memory");
			return -1;
		}
		static const char *const labels[] = {"pool", "name", NULL};
		D->g = g;
		D->f_res = prom_counter(g->reg, "infergate_discovery_resolutions_total",
					"Successful resolutions (DNS rounds, Kubernetes list and watch events) of an endpoint entry.",
					labels);
		D->f_fail = prom_counter(g->reg, "infergate_discovery_failures_total",
					 "Failed resolutions of an endpoint entry (the last known addresses stay).", labels);
		D->f_addrs = prom_gauge(g->reg, "infergate_discovery_addresses",
					"Addresses an endpoint entry resolves to now.", labels);
		D->sync_timer = ev_timer_add(g->loop, SYNC_MS, sync_cb, D);
		g->discovery = D;
	}
	size_t want = 0;
	for (size_t i = 0; i < cfg->n_pools; i++)
		for (size_t k = 0; k < cfg->pools[i].n_endpoints; k++) want += cfg->pools[i].endpoints[k].resolve != 0;
	gw_disc **nv = calloc(want ? want : 1, sizeof(*nv));
	char *fresh = calloc(want ? want : 1, 1);
	int *kept = calloc(D->n ? D->n : 1, sizeof(*kept));
	size_t nn = 0;
	int rc = -1;
	if (!nv || !fresh || !kept) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cfg->n_pools; i++)
		for (size_t k = 0; k < cfg->pools[i].n_endpoints; k++) {
			const gw_endpoint_cfg *ec = &cfg->pools[i].endpoints[k];
			if (!ec->resolve) continue;
			gw_disc *x = NULL;
			for (size_t j = 0; j < D->n && !x; j++)
				if (!kept[j] && same_entry(D->v[j], cfg->pools[i].name, ec)) {
					x = D->v[j];
					kept[j] = 1;
				}
			if (!x) {
				x = disc_new(g, cfg->pools[i].name, ec, err, err_len);
				if (!x) goto out;
				fresh[nn] = 1;
			}
			nv[nn++] = x;
		}
	rc = expand_apply(g, cfg, nv, nn, err, err_len);
out:
	if (rc < 0) { /* back to what ran: the new discoveries go */
		for (size_t j = 0; nv && j < nn; j++)
			if (fresh[j]) disc_free(D, nv[j]);
		free(nv);
	} else {
		for (size_t j = 0; j < D->n; j++)
			if (!kept[j]) disc_free(D, D->v[j]);
		free(D->v);
		D->v = nv;
		D->n = nn;
		for (size_t j = 0; j < nn; j++) disc_series(D, nv[j]);
	}
	free(fresh);
	free(kept);
	return rc;
}

void gw_discovery_free(gw *g)
{
	struct gw_discovery *D = g->discovery;
	if (!D) return;
	ev_timer_del(g->loop, D->sync_timer);
	for (size_t i = 0; i < D->n; i++) disc_free(D, D->v[i]);
	free(D->v);
	free(D);
	g->discovery = NULL;
}
