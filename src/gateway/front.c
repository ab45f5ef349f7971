/*
 * front.c — the front door: every request the HTTP server hands over lands
 * here and is dispatched on its path.
 *
 *   POST /v1/chat/completions, /v1/completions   the body read once into a
 *        request description (request.h: model, stream, the prompt's head,
 *        what a resume needs), routed to a pool, proxied byte for byte (proxy.c)
 *   GET  /v1/models    the models the pools serve (configured, or learned from
 *        the endpoints of pools that list none)
 *   GET  /metrics      the gateway's own metrics
 *   GET  /healthz      200 while the process runs
 *   GET  /readyz       200 when at least one endpoint is up (and not draining)
 *   GET  /status       JSON: region, pools, endpoints, health, in flight
 * Limits, framing and malformed requests are answered by core/httpd before
 * this runs. Every error is an OpenAI-style JSON error.
 */
#include "gateway/gateway.h"
#include "gateway/picker.h"
#include "gateway/request.h"
#include "gateway/rewrite.h"
#include "gateway/tenant.h"
#include "core/json.h"
#include "core/oai_error.h"
#include "core/openai_api.h"
#include "core/util.h"

#include <string.h>

static uint64_t boot_wall_s;

/* An error with an Allow header (405). */
static void method_not_allowed(gw *g, httpd_req *r, const char *allow)
{
	buf *b = &g->scratch;
	buf_reset(b);
	char msg[160];
	snprintf(msg, sizeof(msg), "Method %.16s is not allowed on %.64s (allowed: %s).", httpd_method(r), httpd_path(r), allow);
	oai_error_write(b, 405, msg, NULL);
	char hdr[64];
	snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
	httpd_respond(r, 405, "application/json", hdr, buf_rptr(b), buf_rlen(b));
}

static void respond_json(gw *g, httpd_req *r, int status)
{
	httpd_respond(r, status, "application/json", NULL, buf_rptr(&g->scratch), buf_rlen(&g->scratch));
}

/* ------------------------------------------------------------ completions */

static void unknown_model(httpd_req *r, const char *model)
{
	oai_err e;
	oai_fail_model(&e, model);
	httpd_error(r, e.status, e.msg, e.param);
}

static void completions(gw *g, httpd_req *r, tenant_state *t)
{
	if (!httpd_method_is(r, "POST")) {
		method_not_allowed(g, r, "POST");
		return;
	}
	size_t len;
	const char *body = httpd_body(r, &len);
	gw_request *rq = &g->req;
	char msg[256];
	const char *path = httpd_path(r);
	size_t pl = strlen(path), cl = strlen("/chat/completions");
	int chat = pl >= cl && !strcmp(path + pl - cl, "/chat/completions");
	int status = request_read(rq, body, len, chat, msg, sizeof(msg));
	if (status) {
		httpd_error(r, status, msg, NULL);
		return;
	}
	if (rq->model_state != REQUEST_MODEL_OK) {
		httpd_error(r, 400, rq->model_state != REQUEST_MODEL_MISSING ? "The field `model` must be a non-empty string." : "The field `model` is required.", "model");
		return;
	}
	rq->tenant = t;
	if (rq->stream_bad) {
		httpd_error(r, 400, "The field `stream` must be a boolean.", "stream");
		return;
	}
	const gw_rewrite_cfg *rw = rewrite_find(g->cfg, rq->model);
	if (rw) {
		/* A traffic split: the session's target, else the next in the sequence. */
		static uint64_t rewrite_seq;
		size_t hl = 0;
		const char *h = g->cfg->session_header[0] ? httpd_header(r, g->cfg->session_header, &hl) : NULL;
		size_t k = rewrite_pick(rw, h && hl ? picker_session_hash(h, hl) : 0, rewrite_seq++);
		str_copy(rq->model, rw->targets[k], sizeof(rq->model));
		rq->rewritten = 1;
	}
	gw_pool *p = gw_route(g, path, rq->model);
	if (!p) {
		unknown_model(r, rq->model);
		return;
	}
	proxy_start(g, r, p, rq);
}

/* ------------------------------------------------------------ admin */

/* Adds name to the list unless it is there. */
static size_t add_unique(const char **list, size_t n, size_t cap, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], name)) return n;
	if (n < cap) list[n++] = name;
	return n;
}

/* The models the pools serve, each once, with the first pool that names it:
 * a pool's configured list, or else what its endpoints' /v1/models said. */
static size_t collect_models(gw *g, const char **names, const char **owner, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		size_t before = n;
		for (size_t k = 0; k < p->cfg.n_models; k++) n = add_unique(names, n, cap, p->cfg.models[k]);
		if (!p->cfg.n_models)
			for (size_t k = 0; k < p->n_eps; k++)
				for (size_t j = 0; j < p->eps[k]->n_models; j++)
					n = add_unique(names, n, cap, p->eps[k]->models[j]);
		for (size_t k = before; k < n; k++) owner[k] = p->cfg.name;
	}
	return n;
}

static void model_card(json_w *w, const char *name, const char *pool)
{
	oai_write_model_begin(w, name, "infergate", name, (int64_t)boot_wall_s);
	jw_key(w, "pool"); jw_str(w, pool);
	jw_obj_end(w);
}

/* GET /v1/models, or GET /v1/models/{id} when enc (percent-encoded) is given. */
static void models(gw *g, httpd_req *r, const char *enc)
{
	const char *names[1024];
	const char *owner[1024];
	size_t n = collect_models(g, names, owner, ARRAY_LEN(names));
	buf *b = &g->scratch;
	buf_reset(b);
	json_w w;
	jw_init(&w, b);
	if (enc) {
		char id[GW_PATH_LEN + 1];
		const char *want = pct_decode(enc, strlen(enc), id, sizeof id) < 0 ? enc : id;
		size_t i = 0;
		while (i < n && strcmp(names[i], want)) i++;
		if (i == n) {
			unknown_model(r, want);
			return;
		}
		model_card(&w, names[i], owner[i]);
		respond_json(g, r, 200);
		return;
	}
	jw_obj_begin(&w);
	jw_key(&w, "object"); jw_str(&w, "list");
	jw_key(&w, "data"); jw_arr_begin(&w);
	for (size_t i = 0; i < n; i++) model_card(&w, names[i], owner[i]);
	jw_arr_end(&w);
	jw_obj_end(&w);
	respond_json(g, r, 200);
}

static void status_endpoint(json_w *w, const gw_endpoint *e, uint64_t now)
{
	jw_obj_begin(w);
	jw_key(w, "address"); jw_str(w, e->address);
	jw_key(w, "region"); jw_str(w, e->region);
	jw_key(w, "region_rank"); jw_int(w, e->region_rank);
	jw_key(w, "weight"); jw_uint(w, e->weight);
	jw_key(w, "state"); jw_str(w, e->removed ? "draining" : gw_health_name(e->state));
	jw_key(w, "health"); jw_str(w, gw_health_name(e->state));
	jw_key(w, "health_counter"); jw_uint(w, e->health);
	jw_key(w, "rise"); jw_uint(w, e->hc.rise);
	jw_key(w, "fall"); jw_uint(w, e->hc.fall);
	jw_key(w, "state_for_ms"); jw_uint(w, now - e->state_since_ms);
	jw_key(w, "last_check"); jw_str(w, e->last_check);
	jw_key(w, "checks_total"); jw_uint(w, e->checks_total);
	jw_key(w, "checks_failed_total"); jw_uint(w, e->checks_failed_total);
	jw_key(w, "state_changes_total"); jw_uint(w, e->state_changes_total);
	jw_key(w, "ejected"); jw_bool(w, health_ejected(e, now));
	jw_key(w, "ejected_for_ms"); jw_uint(w, health_ejected(e, now) ? e->ejected_until_ms - now : 0);
	jw_key(w, "ejections_total"); jw_uint(w, e->ejections_total);
	jw_key(w, "consecutive_failures"); jw_uint(w, e->consecutive_failures);
	jw_key(w, "in_flight"); jw_uint(w, e->in_flight);
	jw_key(w, "requests_total"); jw_uint(w, e->requests_total);
	jw_key(w, "failures_total"); jw_uint(w, e->failures_total);
	jw_key(w, "connections_idle"); jw_uint(w, hc_pool_idle(e->conns));
	jw_key(w, "models"); jw_arr_begin(w);
	for (size_t i = 0; i < e->n_models; i++) jw_str(w, e->models[i]);
	jw_arr_end(w);
	picker_status_endpoint(w, e, now);
	jw_obj_end(w);
}

static void status(gw *g, httpd_req *r)
{
	uint64_t now = ev_now_ms(g->loop);
	buf *b = &g->scratch;
	buf_reset(b);
	json_w w;
	jw_init(&w, b);
	jw_obj_begin(&w);
	jw_key(&w, "region"); jw_str(&w, g->cfg->region);
	jw_key(&w, "config"); jw_str(&w, g->cfg->file);
	jw_key(&w, "started"); jw_uint(&w, boot_wall_s);
	jw_key(&w, "draining"); jw_bool(&w, g->draining);
	jw_key(&w, "in_flight"); jw_uint(&w, g->in_flight);
	jw_key(&w, "connections"); jw_uint(&w, httpd_connections(g->httpd));
	jw_key(&w, "reloads_total"); jw_uint(&w, g->reloads_total);
	jw_key(&w, "reload_failures_total"); jw_uint(&w, g->reload_failures_total);
	jw_key(&w, "pools"); jw_arr_begin(&w);
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		jw_obj_begin(&w);
		jw_key(&w, "name"); jw_str(&w, p->cfg.name);
		jw_key(&w, "models"); jw_arr_begin(&w);
		for (size_t k = 0; k < p->cfg.n_models; k++) jw_str(&w, p->cfg.models[k]);
		jw_arr_end(&w);
		jw_key(&w, "active_requests"); jw_uint(&w, p->active_requests);
		jw_key(&w, "active_retries"); jw_uint(&w, p->active_retries);
		jw_key(&w, "request_timeout_ms"); jw_uint(&w, p->cfg.backend.request_timeout_ms);
		jw_key(&w, "tries"); jw_uint(&w, p->cfg.backend.tries);
		picker_status_pool(&w, p, now);
		jw_key(&w, "endpoints"); jw_arr_begin(&w);
		for (size_t k = 0; k < p->n_eps; k++) status_endpoint(&w, p->eps[k], now);
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	tenant_status(&w, now);
	jw_key(&w, "draining_endpoints"); jw_arr_begin(&w);
	for (size_t i = 0; i < g->n_all; i++)
		if (g->all_eps[i]->removed) status_endpoint(&w, g->all_eps[i], now);
	jw_arr_end(&w);
	jw_obj_end(&w);
	buf_puts(b, "\n");
	respond_json(g, r, 200);
}

static void admin_get(gw *g, httpd_req *r, const char *path)
{
	if (!strcmp(path, "/v1/models")) {
		models(g, r, NULL);
	} else if (!strncmp(path, "/v1/models/", 11)) {
		models(g, r, path + 11);
	} else if (!strcmp(path, "/metrics")) {
		buf *b = &g->scratch;
		buf_reset(b);
		prom_write(g->reg, b);
		httpd_respond(r, 200, PROM_CONTENT_TYPE, NULL, buf_rptr(b), buf_rlen(b));
	} else if (!strcmp(path, "/healthz")) {
		buf_reset(&g->scratch);
		buf_puts(&g->scratch, "{\"status\":\"alive\"}\n");
		respond_json(g, r, 200);
	} else if (!strcmp(path, "/readyz")) {
		size_t n = gw_healthy_endpoints(g);
		buf_reset(&g->scratch);
		if (g->draining) {
			oai_error_write(&g->scratch, 503, "The gateway is draining.", NULL);
			respond_json(g, r, 503);
		} else if (!n) {
			oai_error_write(&g->scratch, 503, "No healthy endpoint.", NULL);
			respond_json(g, r, 503);
		} else {
			buf_printf(&g->scratch, "{\"status\":\"ready\",\"healthy_endpoints\":%zu}\n", n);
			respond_json(g, r, 200);
		}
	} else if (!strcmp(path, "/status")) {
		status(g, r);
	}
}

void front_handle(httpd_req *r, void *arg)
{
	gw *g = arg;
	const char *path = httpd_path(r);
	if (!boot_wall_s) boot_wall_s = (uint64_t)time_wall_s();
	/* With api_keys or tenants configured, the API (paths under /v1) needs
	 * one of their keys as a Bearer token, as vLLM's --api-key; the key names
	 * the tenant. The admin paths stay open. */
	tenant_state *t = NULL;
	if (!strncmp(path, "/v1", 3) && !(t = tenant_identify(g, r))) {
		httpd_error(r, 401, "Unauthorized: a valid API key is needed (Authorization: Bearer KEY).", NULL);
		return;
	}
	if (!strcmp(path, "/v1/chat/completions") || !strcmp(path, "/v1/completions")) {
		completions(g, r, t);
		g->req.tenant = NULL;
		tenant_unref(t);
		return;
	}
	tenant_unref(t);
	if (!strcmp(path, "/v1/models") || (!strncmp(path, "/v1/models/", 11) && path[11]) ||
	    !strcmp(path, "/metrics") || !strcmp(path, "/healthz") || !strcmp(path, "/readyz") ||
	    !strcmp(path, "/status")) {
		if (!httpd_method_is(r, "GET") && !httpd_method_is(r, "HEAD")) {
			method_not_allowed(g, r, "GET, HEAD");
			return;
		}
		admin_get(g, r, path);
		return;
	}
	char msg[GW_PATH_LEN + 32];
	snprintf(msg, sizeof(msg), "Not found: %.*s", GW_PATH_LEN, path);
	httpd_error(r, 404, msg, NULL);
}
