/*
 * front.c — the front door: every request the HTTP server hands over lands
 * here and is dispatched on its path.
 *
 *   POST /v1/chat/completions, /v1/completions   the body read once into a
 *        request description (request.h: model, stream, the prompt's head,
 *        what a resume needs), routed to a pool, proxied byte for byte (proxy.c)
 *   every other API of vLLM's server (front_apis: embeddings, responses,
 *        audio, score, rerank, pooling, classify, tokenize, ...) and a
 *        route's extra_paths: the model read from the JSON body or the
 *        multipart form, routed and proxied the same way
 *   GET|POST /ping     200 (vLLM's liveness path)
 *   GET  /v1/models    the models the pools serve (configured, or learned from
 *        the endpoints of pools that list none)
 *   GET  /metrics      the gateway's own metrics
 *   GET  /healthz      200 while the process runs
 *   GET  /readyz       200 when at least one endpoint is up (and not draining)
 *   GET  /status       JSON: region, pools, endpoints, health, in flight
 *   GET  /dashboard    the live dashboard and its event stream (dashboard.c)
 * Limits, framing and malformed requests are answered by core/httpd before
 * this runs. Every error is an OpenAI-style JSON error.
 */
#include "gateway/gateway.h"
#include "gateway/front.h"
#include "gateway/health.h"
#include "gateway/pool.h"
#include "gateway/proxy.h"
#include "gateway/dashboard.h"
#include "gateway/picker.h"
#include "gateway/request.h"
#include "gateway/resume.h"
#include "gateway/rewrite.h"
#include "gateway/tenant.h"
#include "core/json.h"
#include "core/multipart.h"
#include "core/oai_error.h"
#include "core/openai_api.h"
#include "core/util.h"

#include <string.h>
#include <strings.h>

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

/* The APIs of vLLM's OpenAI server the gateway carries, beside chat and
 * completions (whose body also feeds the picker's prefix chain and resume):
 * the pool is chosen by the request's `model` exactly as for chat (a JSON
 * body's field, or a multipart form's field), and without one by the route's
 * pool. Paths without a body (a stored response) go to the route's pool too,
 * and are looked for on each of its endpoints in turn (FRONT_SEEK). Kept in
 * vLLM's order; docs/gateway.md lists them. */
enum { FRONT_JSON = 1,
       FRONT_FORM = 2,
       FRONT_NONE = 3 };
enum { FRONT_GET = 1,
       FRONT_POST = 2,
       FRONT_DELETE = 4 };
typedef struct front_api {
	const char *path;
	unsigned char prefix;  /* path is a prefix ("/v1/responses/" + id) */
	unsigned char body;    /* FRONT_JSON, FRONT_FORM, FRONT_NONE */
	unsigned char methods; /* FRONT_GET | FRONT_POST | FRONT_DELETE */
	unsigned char seek;    /* a stored object: a 404 tries the next endpoint */
} front_api;

static const front_api front_apis[] = {
	{"/v1/chat/completions", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v1/completions", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v1/embeddings", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v1/responses", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v1/responses/", 1, FRONT_NONE, FRONT_GET | FRONT_POST | FRONT_DELETE, 1},
	{"/v1/messages", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v1/audio/transcriptions", 0, FRONT_FORM, FRONT_POST, 0},
	{"/v1/audio/translations", 0, FRONT_FORM, FRONT_POST, 0},
	{"/pooling", 0, FRONT_JSON, FRONT_POST, 0},
	{"/classify", 0, FRONT_JSON, FRONT_POST, 0},
	{"/score", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v1/score", 0, FRONT_JSON, FRONT_POST, 0},
	{"/rerank", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v1/rerank", 0, FRONT_JSON, FRONT_POST, 0},
	{"/v2/rerank", 0, FRONT_JSON, FRONT_POST, 0},
	{"/tokenize", 0, FRONT_JSON, FRONT_POST, 0},
	{"/detokenize", 0, FRONT_JSON, FRONT_POST, 0},
	{"/invocations", 0, FRONT_JSON, FRONT_POST, 0},
};

/* The API entry of path, or NULL. */
static const front_api *front_api_of(const char *path)
{
	for (size_t i = 0; i < sizeof(front_apis) / sizeof(front_apis[0]); i++) {
		const front_api *a = &front_apis[i];
		if (a->prefix ? !strncmp(path, a->path, strlen(a->path)) && path[strlen(a->path)]
			      : !strcmp(path, a->path))
			return a;
	}
	return NULL;
}

static int method_bits(const httpd_req *r)
{
	return httpd_method_is(r, "GET") ? FRONT_GET : httpd_method_is(r, "POST") ? FRONT_POST
					       : httpd_method_is(r, "DELETE")     ? FRONT_DELETE
										  : 0;
}

static void method_list(char *out, size_t size, int bits)
{
	snprintf(out, size, "%s%s%s%s%s", bits & FRONT_GET ? "GET" : "", (bits & FRONT_GET) && (bits & ~FRONT_GET) ? ", " : "",
		 bits & FRONT_POST ? "POST" : "", (bits & FRONT_POST) && (bits & FRONT_DELETE) ? ", " : "",
		 bits & FRONT_DELETE ? "DELETE" : "");
}

/* Reads the model (and stream) of a multipart form into rq: the `model` and
 * `stream` fields. Returns 0, or 400 with msg. */
static int form_read(gw_request *rq, httpd_req *r, const char *body, size_t len, char *msg, size_t msg_size)
{
	size_t ctl = 0;
	const char *ct = httpd_header(r, "content-type", &ctl), *b;
	size_t bl;
	if (!ct || multipart_boundary(ct, ctl, &b, &bl) != 1) {
		snprintf(msg, msg_size, "The request must be multipart/form-data with a boundary.");
		return 400;
	}
	const char *v;
	size_t vl;
	int rc = multipart_field(body, len, b, bl, "model", &v, &vl);
	if (rc < 0) {
		snprintf(msg, msg_size, "The multipart body is malformed.");
		return 400;
	}
	if (rc == 1) {
		rq->model_state = !vl ? REQUEST_MODEL_EMPTY : memchr(v, 0, vl) ? REQUEST_MODEL_NUL
									       : REQUEST_MODEL_OK;
		size_t k = MIN(vl, sizeof(rq->model) - 1);
		memcpy(rq->model, v, k);
		rq->model[k] = 0;
	}
	if (multipart_field(body, len, b, bl, "stream", &v, &vl) == 1) rq->stream = vl == 4 && !memcmp(v, "true", 4);
	return 0;
}

/* A request for one of front_apis (or a route's extra path, api NULL): the
 * body read once into the description, a pool chosen, proxied. */
static void api_request(gw *g, httpd_req *r, const front_api *api, tenant_state *t)
{
	int have = method_bits(r);
	int want = api ? api->methods : FRONT_GET | FRONT_POST | FRONT_DELETE;
	if (!(have & want)) {
		char allow[32];
		method_list(allow, sizeof(allow), want);
		method_not_allowed(g, r, allow);
		return;
	}
	size_t len;
	const char *body = httpd_body(r, &len);
	gw_request *rq = &g->req;
	char msg[256];
	const char *path = httpd_path(r);
	int chat = api && !strcmp(api->path, "/v1/chat/completions");
	int kind = api ? api->body : len ? FRONT_JSON
					 : FRONT_NONE;
	size_t ctl = 0;
	const char *ct = httpd_header(r, "content-type", &ctl);
	if (!api && ct && ctl >= 19 && !strncasecmp(ct, "multipart/form-data", 19)) kind = FRONT_FORM;
	int status = 0;
	request_clear(rq, chat);
	if (kind == FRONT_JSON && (have == FRONT_POST || len)) status = request_read(rq, body, len, chat, msg, sizeof(msg));
	else if (kind == FRONT_FORM) status = form_read(rq, r, body, len, msg, sizeof(msg));
	if (status) {
		httpd_error(r, status, msg, NULL);
		return;
	}
	rq->seek = api && api->seek;
	gw_pool *p = NULL;
	if (rq->seek && rq->model_state == REQUEST_MODEL_MISSING) {
		/* A stored response: the pool that made it, when this gateway saw it. */
		const char *id = path + strlen(api->path), *slash = strchr(id, '/');
		p = gw_response_pool(g, id, slash ? (size_t)(slash - id) : strlen(id));
		if (!p && !gw_route_default(g, path)) p = gw_route_first(g, path); /* made elsewhere: look in the first */
	}
	if (p || (rq->model_state == REQUEST_MODEL_MISSING && (p = gw_route_default(g, path)))) {
		/* The server defaults it too; the picker and the logs see the pool's first name. */
		str_copy(rq->model, p->cfg.n_models ? p->cfg.models[0] : "", sizeof(rq->model));
	} else if (rq->model_state != REQUEST_MODEL_OK) {
		httpd_error(r, 400, rq->model_state == REQUEST_MODEL_NUL ? "The field `model` must not contain NUL characters." : rq->model_state != REQUEST_MODEL_MISSING ? "The field `model` must be a non-empty string."
																					   : "The field `model` is required: this gateway serves several pools (GET /v1/models lists the models).",
			    "model");
		return;
	}
	rq->tenant = t;
	if (rq->stream_bad) {
		httpd_error(r, 400, "The field `stream` must be a boolean.", "stream");
		return;
	}
	rq->tenant = t;
	/* A split rewrites the JSON body's model in place: only when the body named one. */
	const gw_rewrite_cfg *rw = p || !rq->model_len ? NULL : rewrite_find(g->cfg, rq->model);
	if (rw) {
		/* A traffic split: the session's target, else the next in the sequence. */
		static uint64_t rewrite_seq;
		size_t hl = 0;
		const char *h = g->cfg->session_header[0] ? httpd_header(r, g->cfg->session_header, &hl) : NULL;
		size_t k = rewrite_pick(rw, h && hl ? picker_session_hash(h, hl) : 0, rewrite_seq++);
		str_copy(rq->model, rw->targets[k], sizeof(rq->model));
		rq->rewritten = 1;
	}
	if (!p) p = gw_route(g, path, rq->model);
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
	jw_key(w, "pool");
	jw_str(w, pool);
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
	jw_key(&w, "object");
	jw_str(&w, "list");
	jw_key(&w, "data");
	jw_arr_begin(&w);
	for (size_t i = 0; i < n; i++) model_card(&w, names[i], owner[i]);
	jw_arr_end(&w);
	jw_obj_end(&w);
	respond_json(g, r, 200);
}

static void status_endpoint(json_w *w, const gw_endpoint *e, uint64_t now)
{
	jw_obj_begin(w);
	jw_key(w, "address");
	jw_str(w, e->address);
	jw_key(w, "region");
	jw_str(w, e->region);
	jw_key(w, "region_rank");
	jw_int(w, e->region_rank);
	jw_key(w, "weight");
	jw_uint(w, e->weight);
	jw_key(w, "state");
	jw_str(w, e->removed ? "draining" : gw_health_name(e->state));
	jw_key(w, "health");
	jw_str(w, gw_health_name(e->state));
	jw_key(w, "health_counter");
	jw_uint(w, e->health);
	jw_key(w, "rise");
	jw_uint(w, e->hc.rise);
	jw_key(w, "fall");
	jw_uint(w, e->hc.fall);
	jw_key(w, "state_for_ms");
	jw_uint(w, now - e->state_since_ms);
	jw_key(w, "last_check");
	jw_str(w, e->last_check);
	jw_key(w, "checks_total");
	jw_uint(w, e->checks_total);
	jw_key(w, "checks_failed_total");
	jw_uint(w, e->checks_failed_total);
	jw_key(w, "state_changes_total");
	jw_uint(w, e->state_changes_total);
	jw_key(w, "ejected");
	jw_bool(w, health_ejected(e, now));
	jw_key(w, "ejected_for_ms");
	jw_uint(w, health_ejected(e, now) ? e->ejected_until_ms - now : 0);
	jw_key(w, "ejections_total");
	jw_uint(w, e->ejections_total);
	jw_key(w, "consecutive_failures");
	jw_uint(w, e->consecutive_failures);
	jw_key(w, "in_flight");
	jw_uint(w, e->in_flight);
	jw_key(w, "requests_total");
	jw_uint(w, e->requests_total);
	jw_key(w, "failures_total");
	jw_uint(w, e->failures_total);
	jw_key(w, "connections_idle");
	jw_uint(w, hc_pool_idle(e->conns));
	jw_key(w, "models");
	jw_arr_begin(w);
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
	jw_key(&w, "region");
	jw_str(&w, g->cfg->region);
	jw_key(&w, "config");
	jw_str(&w, g->cfg->file);
	jw_key(&w, "started");
	jw_uint(&w, boot_wall_s);
	jw_key(&w, "draining");
	jw_bool(&w, g->draining);
	jw_key(&w, "in_flight");
	jw_uint(&w, g->in_flight);
	jw_key(&w, "connections");
	jw_uint(&w, httpd_connections(g->httpd));
	jw_key(&w, "reloads_total");
	jw_uint(&w, g->reloads_total);
	jw_key(&w, "reload_failures_total");
	jw_uint(&w, g->reload_failures_total);
	jw_key(&w, "pools");
	jw_arr_begin(&w);
	for (size_t i = 0; i < g->n_pools; i++) {
		gw_pool *p = g->pools[i];
		jw_obj_begin(&w);
		jw_key(&w, "name");
		jw_str(&w, p->cfg.name);
		jw_key(&w, "models");
		jw_arr_begin(&w);
		for (size_t k = 0; k < p->cfg.n_models; k++) jw_str(&w, p->cfg.models[k]);
		jw_arr_end(&w);
		jw_key(&w, "active_requests");
		jw_uint(&w, p->active_requests);
		jw_key(&w, "active_retries");
		jw_uint(&w, p->active_retries);
		jw_key(&w, "request_timeout_ms");
		jw_uint(&w, p->cfg.backend.request_timeout_ms);
		jw_key(&w, "tries");
		jw_uint(&w, p->cfg.backend.tries);
		jw_key(&w, "dialect");
		jw_str(&w, gw_dialect_names[resume_dialect(p)]);
		picker_status_pool(&w, p, now);
		jw_key(&w, "endpoints");
		jw_arr_begin(&w);
		for (size_t k = 0; k < p->n_eps; k++) status_endpoint(&w, p->eps[k], now);
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	tenant_status(&w, now);
	jw_key(&w, "draining_endpoints");
	jw_arr_begin(&w);
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
	const front_api *api = front_api_of(path);
	if (!t && api && !(t = tenant_identify(g, r))) { /* vLLM guards these too */
		httpd_error(r, 401, "Unauthorized: a valid API key is needed (Authorization: Bearer KEY).", NULL);
		return;
	}
	if (api || gw_route_extra_path(g, path)) {
		if (!t && !(t = tenant_identify(g, r))) {
			httpd_error(r, 401, "Unauthorized: a valid API key is needed (Authorization: Bearer KEY).", NULL);
			return;
		}
		api_request(g, r, api, t);
		g->req.tenant = NULL;
		tenant_unref(t);
		return;
	}
	if (!strcmp(path, "/ping")) { /* vLLM's liveness path (SageMaker's) */
		tenant_unref(t);
		if (!httpd_method_is(r, "GET") && !httpd_method_is(r, "POST")) {
			method_not_allowed(g, r, "GET, POST");
			return;
		}
		httpd_respond(r, 200, NULL, NULL, "", 0);
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
	if (dashboard_handle(g, r, path)) return;
	char msg[GW_PATH_LEN + 32];
	snprintf(msg, sizeof(msg), "Not found: %.*s", GW_PATH_LEN, path);
	httpd_error(r, 404, msg, NULL);
}
