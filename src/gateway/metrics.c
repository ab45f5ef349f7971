/*
 * metrics.c — the gateway's own Prometheus metrics, every name prefixed
 * infergate_ and documented in docs/METRICS.md (a test checks that every name
 * written here is documented there).
 *
 * Families are registered once at boot; per-endpoint series are created when
 * an endpoint joins and removed when it is freed. Values that live elsewhere
 * (connection pools, the server's counters) are copied in by a collector that
 * runs at each scrape. Not here: scraping the model servers (a later stage).
 */
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/health.h"
#include "gateway/dashboard.h"
#include "gateway/events.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

struct gw_metrics {
	prom_family *requests, *duration, *ttfb, *retries, *outside, *req_bytes, *resp_bytes;
	prom_family *ep_up, *ep_ejected, *ep_in_flight, *ep_changes, *ep_checks, *ep_ejections;
	prom_family *up_conns, *up_connects;
	prom_family *in_flight, *client_conns, *client_rejected, *client_closed, *tls_handshakes, *h2_conns, *healthy, *reloads, *draining;
	prom_family *resumes;
	prom_family *io_flushes, *io_ops;
};

static const double latency_bounds[] = {
	0.0005,
	0.001,
	0.0025,
	0.005,
	0.01,
	0.025,
	0.05,
	0.1,
	0.25,
	0.5,
	1,
	2.5,
	5,
	10,
	30,
	60,
	120,
	300,
	600,
};

/* Copies values kept elsewhere into their series before each scrape. */
static void collect(prom_registry *reg, void *arg)
{
	gw *g = arg;
	struct gw_metrics *m = g->m;
	prom_set(prom_series_get(m->in_flight, NULL), (double)g->in_flight);
	prom_set(prom_series_get(m->draining, NULL), g->draining);
	uint64_t flushes, ops;
	ev_io_stats(g->loop, &flushes, &ops);
	prom_series *fl = prom_series_get(m->io_flushes, NULL), *op = prom_series_get(m->io_ops, NULL);
	prom_add(fl, (double)flushes - prom_value(fl));
	prom_add(op, (double)ops - prom_value(op));
	if (g->httpd) {
		httpd_stats st;
		httpd_get_stats(g->httpd, &st);
		prom_set(prom_series_get(m->client_conns, NULL), (double)st.connections);
		prom_series *rj = prom_series_get(m->client_rejected, NULL);
		prom_add(rj, (double)st.rejected_total - prom_value(rj));
		prom_series *cc = prom_series_get(m->client_closed, NULL);
		prom_add(cc, (double)st.client_closed_total - prom_value(cc));
		const char *lv_ok[] = {"ok"}, *lv_res[] = {"resumed"}, *lv_fail[] = {"failed"};
		prom_series *hs = prom_series_get(m->tls_handshakes, lv_ok);
		prom_add(hs, (double)(st.tls_handshakes_total - st.tls_resumed_total) - prom_value(hs));
		hs = prom_series_get(m->tls_handshakes, lv_res);
		prom_add(hs, (double)st.tls_resumed_total - prom_value(hs));
		hs = prom_series_get(m->tls_handshakes, lv_fail);
		prom_add(hs, (double)st.tls_handshake_failures_total - prom_value(hs));
		prom_series *h2 = prom_series_get(m->h2_conns, NULL);
		prom_add(h2, (double)st.h2_connections_total - prom_value(h2));
	}
	for (size_t i = 0; i < g->n_all; i++) {
		gw_endpoint *e = g->all_eps[i];
		const char *lv_idle[] = {e->pool_name, e->label, "idle"};
		const char *lv_busy[] = {e->pool_name, e->label, "active"};
		prom_set(prom_series_get(m->up_conns, lv_idle), (double)hc_pool_idle(e->conns));
		prom_set(prom_series_get(m->up_conns, lv_busy), (double)hc_pool_active(e->conns));
		const char *lv[] = {e->pool_name, e->label};
		prom_series *s = prom_series_get(m->up_connects, lv);
		prom_add(s, (double)hc_pool_connects_total(e->conns) - prom_value(s));
		prom_set(e->m_in_flight, e->in_flight);
		prom_set(e->m_ejected, health_ejected(e, ev_now_ms(g->loop)));
	}
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		/* healthy endpoints per pool and region */
		for (size_t k = 0; k < p->n_eps; k++) {
			const char *region = p->eps[k]->region;
			size_t j;
			for (j = 0; j < k; j++)
				if (!strcmp(p->eps[j]->region, region)) break;
			if (j < k) continue;
			size_t n = 0;
			for (j = k; j < p->n_eps; j++)
				n += !strcmp(p->eps[j]->region, region) && p->eps[j]->state == GW_HEALTH_UP;
			const char *lv[] = {p->cfg.name, region};
			prom_set(prom_series_get(m->healthy, lv), (double)n);
		}
	}
}

int gw_metrics_init(gw *g)
{
	struct gw_metrics *m = calloc(1, sizeof(*m));
	if (!m) return -1;
	prom_registry *r = prom_registry_new();
	if (!r) {
		free(m);
		return -1;
	}
	/* Every metric of the gateway is updated and written on its event loop. */
	prom_registry_single_thread(r);
	g->reg = r;
	g->m = m;
	static const char *const l_req[] = {"pool", "region", "endpoint", "code", NULL};
	static const char *const l_pool[] = {"pool", NULL};
	static const char *const l_retry[] = {"pool", "reason", NULL};
	static const char *const l_out[] = {"pool", "region", NULL};
	static const char *const l_ep[] = {"pool", "endpoint", "region", NULL};
	static const char *const l_change[] = {"pool", "endpoint", "region", "to", NULL};
	static const char *const l_check[] = {"pool", "endpoint", "result", NULL};
	static const char *const l_ep2[] = {"pool", "endpoint", NULL};
	static const char *const l_conn[] = {"pool", "endpoint", "state", NULL};
	static const char *const l_reload[] = {"result", NULL};
	size_t nb = ARRAY_LEN(latency_bounds);
	m->requests = prom_counter(r, "infergate_requests_total",
				   "Requests answered, by pool, serving region and endpoint, and HTTP status (499: the client left first).", l_req);
	m->duration = prom_histogram(r, "infergate_request_duration_seconds",
				     "Time from the request's arrival to the end of its response, seconds.", l_pool, latency_bounds, nb);
	m->ttfb = prom_histogram(r, "infergate_time_to_first_byte_seconds",
				 "Time from the request's arrival to the response head relayed to the client, seconds.", l_pool, latency_bounds, nb);
	m->retries = prom_counter(r, "infergate_retries_total",
				  "Attempts made again on another endpoint, by cause; budget_exhausted counts retries refused.", l_retry);
	m->outside = prom_counter(r, "infergate_requests_outside_region_total",
				  "Requests served by an endpoint outside the gateway's own region, by serving region.", l_out);
	m->req_bytes = prom_counter(r, "infergate_request_body_bytes_total", "Request body bytes received from clients.", l_pool);
	m->resp_bytes = prom_counter(r, "infergate_response_body_bytes_total", "Response body bytes relayed to clients.", l_pool);
	m->ep_up = prom_gauge(r, "infergate_endpoint_up",
			      "1 when the endpoint's active health checks say up, 0 when down or not checked yet.", l_ep);
	m->ep_ejected = prom_gauge(r, "infergate_endpoint_ejected",
				   "1 while the endpoint is taken out by passive detection (failures of real traffic).", l_ep);
	m->ep_in_flight = prom_gauge(r, "infergate_endpoint_in_flight", "Requests in flight on the endpoint.", l_ep);
	m->ep_changes = prom_counter(r, "infergate_endpoint_state_changes_total",
				     "Health state changes of the endpoint, by the state entered.", l_change);
	m->ep_checks = prom_counter(r, "infergate_endpoint_checks_total", "Active health checks, by result.", l_check);
	m->ep_ejections = prom_counter(r, "infergate_endpoint_ejections_total", "Passive ejections of the endpoint.", l_ep2);
	m->up_conns = prom_gauge(r, "infergate_upstream_connections",
				 "Connections to the endpoint: idle in its keep-alive pool, or active (carrying a request).", l_conn);
	m->up_connects = prom_counter(r, "infergate_upstream_connects_total", "Connections opened to the endpoint.", l_ep2);
	m->in_flight = prom_gauge(r, "infergate_in_flight_requests", "Client requests being proxied now.", NULL);
	m->client_conns = prom_gauge(r, "infergate_client_connections", "Client connections open now.", NULL);
	m->client_rejected = prom_counter(r, "infergate_client_rejected_total",
					  "Requests refused by the HTTP layer itself (431, 413, 408, 400 malformed or bad framing).", NULL);
	m->client_closed = prom_counter(r, "infergate_client_closed_total",
					"Requests whose client left before the response ended.", NULL);
	static const char *const l_tls[] = {"result", NULL};
	m->tls_handshakes = prom_counter(r, "infergate_tls_handshakes_total",
					 "TLS handshakes with clients, by result: ok (full), resumed (a session resumed), failed (bad "
					 "handshake, timed out, or the client left during it).",
					 l_tls);
	m->h2_conns = prom_counter(r, "infergate_client_http2_connections_total",
				   "Client connections that spoke HTTP/2 (ALPN h2 over TLS, or the h2c preface in cleartext).", NULL);
	m->healthy = prom_gauge(r, "infergate_healthy_endpoints", "Endpoints up, by pool and region.", l_out);
	m->reloads = prom_counter(r, "infergate_config_reloads_total", "Configuration reloads (SIGHUP), by result.", l_reload);
	m->draining = prom_gauge(r, "infergate_draining", "1 while the gateway drains before exiting.", NULL);
	static const char *const l_resume[] = {"pool", "outcome", NULL};
	m->resumes = prom_counter(r, "infergate_resumes_total",
				  "Streams broken after their first byte, by what followed: resumed (a continuation sent), completed "
				  "(a resumed stream reached [DONE]), finished, exhausted, deadline, no_endpoint, not_resumable.",
				  l_resume);
	m->io_flushes = prom_counter(r, "infergate_io_uring_submits_total",
				     "System calls that issued batched sends, upstream and to clients (io_uring: auto; 0 when off or unavailable).", NULL);
	m->io_ops = prom_counter(r, "infergate_io_uring_sends_total", "Sends (upstream requests, plaintext HTTP/1.1 answers to clients) issued through those system calls.", NULL);
	if (!m->resumes || !m->io_flushes || !m->io_ops) return -1;
	if (!m->requests || !m->duration || !m->ttfb || !m->retries || !m->outside || !m->req_bytes || !m->resp_bytes ||
	    !m->ep_up || !m->ep_ejected || !m->ep_in_flight || !m->ep_changes || !m->ep_checks || !m->ep_ejections ||
	    !m->up_conns || !m->up_connects || !m->in_flight || !m->client_conns || !m->client_rejected ||
	    !m->client_closed || !m->tls_handshakes || !m->h2_conns || !m->healthy || !m->reloads || !m->draining)
		return -1;
	prom_registry_on_write(r, collect, g);
	return 0;
}

void gw_metrics_free(gw *g)
{
	if (g->reg) prom_registry_free(g->reg);
	free(g->m);
	g->reg = NULL;
	g->m = NULL;
}

void gw_metrics_endpoint_add(gw *g, gw_endpoint *e)
{
	struct gw_metrics *m = g->m;
	const char *lv[] = {e->pool_name, e->label, e->region};
	e->m_up = prom_series_get(m->ep_up, lv);
	e->m_ejected = prom_series_get(m->ep_ejected, lv);
	e->m_in_flight = prom_series_get(m->ep_in_flight, lv);
	prom_set(e->m_up, e->state == GW_HEALTH_UP);
}

void gw_metrics_endpoint_remove(gw *g, gw_endpoint *e)
{
	struct gw_metrics *m = g->m;
	const char *lv[] = {e->pool_name, e->label, e->region};
	prom_series_remove(m->ep_up, lv);
	prom_series_remove(m->ep_ejected, lv);
	prom_series_remove(m->ep_in_flight, lv);
	const char *lv_idle[] = {e->pool_name, e->label, "idle"};
	const char *lv_busy[] = {e->pool_name, e->label, "active"};
	prom_series_remove(m->up_conns, lv_idle);
	prom_series_remove(m->up_conns, lv_busy);
	e->m_up = e->m_ejected = e->m_in_flight = NULL;
}

void gw_metrics_health_change(gw *g, gw_endpoint *e, int from, int to)
{
	const char *lv[] = {e->pool_name, e->label, e->region, gw_health_name(to)};
	prom_inc(prom_series_get(g->m->ep_changes, lv));
	events_push("health", e->pool_name, e->label, "%s -> %s (%s)", gw_health_name(from), gw_health_name(to), e->last_check);
	if (e->m_up) prom_set(e->m_up, to == GW_HEALTH_UP);
}

void gw_metrics_check(gw *g, gw_endpoint *e, int ok)
{
	const char *lv[] = {e->pool_name, e->label, ok ? "ok" : "fail"};
	prom_inc(prom_series_get(g->m->ep_checks, lv));
}

void gw_metrics_ejection(gw *g, gw_endpoint *e)
{
	const char *lv[] = {e->pool_name, e->label};
	prom_inc(prom_series_get(g->m->ep_ejections, lv));
	events_push("ejection", e->pool_name, e->label, "ejected after %u failures in a row", e->pc.failures);
}

void gw_metrics_retry(gw *g, const gw_call *c, const char *reason)
{
	const char *lv[] = {c->pool->cfg.name, reason};
	prom_inc(prom_series_get(g->m->retries, lv));
	events_push("retry", c->pool->cfg.name, c->ep ? c->ep->label : NULL, "failover to another endpoint: %s", reason);
}

void gw_metrics_ttfb(gw *g, const gw_call *c, uint64_t ttfb_ms)
{
	const char *lv[] = {c->pool->cfg.name};
	prom_observe(prom_series_get(g->m->ttfb, lv), (double)ttfb_ms / 1000.0);
}

void gw_metrics_request(gw *g, const gw_call *c, uint64_t now_ms)
{
	struct gw_metrics *m = g->m;
	char code[16]; /* "%d" of the status, without printf */
	{
		char *w = code + sizeof(code) - 1;
		unsigned v = c->status < 0 ? 0u - (unsigned)c->status : (unsigned)c->status;
		*w = 0;
		do *--w = (char)('0' + v % 10);
		while (v /= 10);
		if (c->status < 0) *--w = '-';
		memmove(code, w, (size_t)(code + sizeof(code) - w));
	}
	const char *pool = c->pool->cfg.name;
	dashboard_request(g, c, now_ms);
	const char *region = c->ep ? c->ep->region : "";
	const char *endpoint = c->ep ? c->ep->label : "";
	const char *lv[] = {pool, region, endpoint, code};
	prom_inc(prom_series_get(m->requests, lv));
	const char *lp[] = {pool};
	prom_observe(prom_series_get(m->duration, lp), (double)(now_ms - c->start_ms) / 1000.0);
	prom_add(prom_series_get(m->req_bytes, lp), (double)c->body_len);
	prom_add(prom_series_get(m->resp_bytes, lp), (double)c->bytes_out);
	if (c->served_remote && c->ep) {
		const char *lo[] = {pool, c->ep->region};
		prom_inc(prom_series_get(m->outside, lo));
	}
}

void gw_metrics_resume(gw *g, const gw_call *c, const char *outcome)
{
	const char *lv[] = {c->pool->cfg.name, outcome};
	prom_inc(prom_series_get(g->m->resumes, lv));
	events_push("resume", c->pool->cfg.name, c->ep ? c->ep->label : NULL, "broken stream: %s", outcome);
}

void gw_metrics_reload(gw *g, int ok)
{
	const char *lv[] = {ok ? "ok" : "refused"};
	prom_inc(prom_series_get(g->m->reloads, lv));
	events_push("reload", NULL, g->cfg_path, ok ? "configuration reloaded" : "reload refused: the running configuration stays");
}
