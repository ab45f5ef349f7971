/*
 * sim_server.c — routing and the small endpoints of infergate-sim: /health,
 * /v1/models, /version, /metrics, /sim/faults, and the faults that act on the
 * listener or on every path (refuse, hang). Completions are in sim_openai.c.
 */
#include "sim/sim_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/json.h"
#include "core/log.h"
#include "core/openai_api.h"
#include "core/util.h"

#define SIM_FAULT_BODY_MAX (64 * 1024)

const char *sim_server_model(const sim_server *s, const char *req_model)
{
	if (!req_model || s->cfg.llamacpp) return s->cfg.models[0]; /* llama.cpp serves its one model whatever the name */
	for (size_t i = 0; i < s->cfg.n_models; i++)
		if (!strcmp(req_model, s->cfg.models[i])) return s->cfg.models[i];
	return sim_lora_find(&s->cfg.lora, req_model);
}

static void respond_json(sim_server *s, httpd_req *r, int status, buf *body)
{
	httpd_respond(r, status, "application/json", s->region_hdr, buf_rptr(body), buf_rlen(body));
}

/* ---- faults */

static int64_t refuse_expired(ev_loop *loop, uint64_t id, void *arg)
{
	sim_server *s = arg;
	s->refuse_timer = 0;
	s->faults.refuse = 0;
	s->faults.refuse_ms = 0;
	sim_server_faults_changed(s);
	return -1;
}

void sim_server_faults_changed(sim_server *s)
{
	char err[256];
	sim_engine_set_slow(s->engine, s->faults.slow_factor);
	if (s->faults.refuse && s->listening) {
		if (httpd_unlisten(s->http, s->listener, 1) == 0) {
			s->listening = 0;
			log_info("fault: refusing connections on port %d", s->port);
		}
	} else if (!s->faults.refuse && !s->listening) {
		if (httpd_relisten(s->http, s->listener, err, sizeof(err)) == 0) {
			s->listening = 1;
			log_info("fault cleared: accepting connections on port %d again", s->port);
		} else {
			/* Keep the fault visible so GET shows why nothing answers. */
			log_warn("cannot listen on port %d again: %s", s->port, err);
			s->faults.refuse = 1;
		}
	}
	ev_timer_del(s->loop, s->refuse_timer);
	s->refuse_timer = 0;
	if (s->faults.refuse && s->faults.refuse_ms > 0)
		s->refuse_timer = ev_timer_add(s->loop, (uint64_t)s->faults.refuse_ms, refuse_expired, s);
}

static void write_faults(sim_server *s, httpd_req *r)
{
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	sim_faults_write(&s->faults, &w, s->cfg.region ? s->cfg.region : "");
	respond_json(s, r, 200, &s->scratch);
}

static void handle_faults(sim_server *s, httpd_req *r)
{
	if (httpd_method_is(r, "GET")) {
		write_faults(s, r);
	} else if (httpd_method_is(r, "DELETE")) {
		sim_faults_clear(&s->faults);
		sim_server_faults_changed(s);
		log_info("faults cleared");
		write_faults(s, r);
	} else if (httpd_method_is(r, "POST") || httpd_method_is(r, "PUT")) {
		size_t len;
		const char *body = httpd_body(r, &len);
		json_error jerr;
		char err[256];
		if (len > SIM_FAULT_BODY_MAX) {
			httpd_error(r, 413, "The faults body is too large.", NULL);
			return;
		}
		json_doc *doc = json_parse(body, len, 16, &jerr);
		if (!doc) {
			snprintf(err, sizeof(err), "Invalid JSON at line %u column %u: %s", jerr.line, jerr.col, jerr.msg);
			httpd_error(r, 400, err, NULL);
			return;
		}
		int rc = sim_faults_apply(&s->faults, json_root(doc), err, sizeof(err));
		json_doc_free(doc);
		if (rc < 0) {
			httpd_error(r, 400, err, NULL);
			return;
		}
		sim_server_faults_changed(s);
		log_info("faults set: %.*s", (int)MIN(len, 512), body);
		write_faults(s, r);
	} else {
		httpd_error(r, 405, "Method Not Allowed", NULL);
	}
}

/* ---- small endpoints */

static void handle_models(sim_server *s, httpd_req *r)
{
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	if (!s->cfg.lora.n) {
		oai_write_models(&w, s->cfg.models, s->cfg.n_models, s->cfg.models[0], s->created_s, s->cfg.max_model_len, 0);
	} else { /* the served names, then the adapters with their parent, as vLLM lists them */
		jw_obj_begin(&w);
		jw_key(&w, "object");
		jw_str(&w, "list");
		jw_key(&w, "data");
		jw_arr_begin(&w);
		for (size_t i = 0; i < s->cfg.n_models; i++)
			oai_write_model(&w, s->cfg.models[i], s->cfg.models[0], s->created_s, s->cfg.max_model_len, 0);
		sim_lora_write_cards(&s->cfg.lora, &w, s->cfg.models[0], s->created_s, s->cfg.max_model_len);
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	respond_json(s, r, 200, &s->scratch);
}

static void handle_metrics(sim_server *s, httpd_req *r)
{
	buf_reset(&s->scratch);
	if (s->faults.metrics_garbage) {
		buf_puts(&s->scratch, "vllm:kv_cache_usage_perc{engine=\"0\" 0.5 not prometheus\n\x01{{{\n");
		httpd_respond(r, 200, PROM_CONTENT_TYPE, s->region_hdr, buf_rptr(&s->scratch), buf_rlen(&s->scratch));
		return;
	}
	if ((s->cfg.llamacpp ? sim_metrics_write_llamacpp(s, &s->scratch) : sim_metrics_write(&s->metrics, s, &s->scratch)) < 0) {
		httpd_error(r, 500, "metrics output too large", NULL);
		return;
	}
	httpd_respond(r, 200, PROM_CONTENT_TYPE, s->region_hdr, buf_rptr(&s->scratch), buf_rlen(&s->scratch));
}

static void on_request(httpd_req *r, void *arg)
{
	sim_server *s = arg;
	const char *path = httpd_path(r);
	int hang = sim_faults_hang_for(&s->faults, path);
	if (hang == SIM_HANG_REQUEST) {
		/* Never answered; httpd frees it when the client leaves. */
		return;
	}
	if (hang == SIM_HANG_HEAD) {
		httpd_stream_start(r, 200, strncmp(path, "/v1/", 4) ? "text/plain" : "text/event-stream",
				   s->region_hdr, -1);
		return;
	}
	if (s->cfg.api_key && !strncmp(path, "/v1", 3) && !httpd_bearer_is(r, s->cfg.api_key)) {
		httpd_error(r, 401, "Unauthorized", NULL); /* as vLLM's --api-key */
		return;
	}
	if (!strcmp(path, "/health")) {
		if (!httpd_method_or_405(r, "GET")) return;
		if (s->cfg.llamacpp) { /* llama.cpp's answers, 503 while its model loads */
			static const char ok[] = "{\"status\":\"ok\"}";
			static const char loading[] = "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}";
			if (s->faults.health_fail) httpd_respond(r, 503, "application/json", s->region_hdr, loading, sizeof(loading) - 1);
			else httpd_respond(r, 200, "application/json", s->region_hdr, ok, sizeof(ok) - 1);
		} else if (s->faults.health_fail) httpd_respond(r, 503, NULL, s->region_hdr, "", 0);
		else httpd_respond(r, 200, NULL, s->region_hdr, "", 0);
	} else if (!strcmp(path, "/v1/chat/completions")) {
		if (httpd_method_or_405(r, "POST")) sim_openai_handle(s, r, 1);
	} else if (!strcmp(path, "/v1/completions")) {
		if (httpd_method_or_405(r, "POST")) sim_openai_handle(s, r, 0);
	} else if (!strcmp(path, "/v1/models")) {
		if (httpd_method_or_405(r, "GET")) handle_models(s, r);
	} else if (!strcmp(path, "/metrics")) {
		if (httpd_method_or_405(r, "GET")) handle_metrics(s, r);
	} else if (!strcmp(path, "/version")) {
		static const char v[] = "{\"version\":\"0.0.0+infergate-sim\"}";
		if (httpd_method_or_405(r, "GET"))
			httpd_respond(r, 200, "application/json", s->region_hdr, v, sizeof(v) - 1);
	} else if (!strcmp(path, "/sim/faults")) {
		handle_faults(s, r);
	} else if (sim_apis_handle(s, r, path)) {
		/* embeddings, score, rerank, tokenize, responses, audio: sim_apis.c */
	} else {
		httpd_error(r, 404, "Not Found", NULL);
	}
}

int sim_server_init(sim_server *s, ev_loop *loop, const sim_server_cfg *cfg,
		    const sim_faults *faults, char *err, size_t err_len)
{
	char addr[300];
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->cfg = *cfg;
	s->listener = s->control_listener = -1;
	s->created_s = (int64_t)time_wall_s();
	s->id_salt = time_mono_ns() ^ ((uint64_t)getpid() << 32);
	buf_init(&s->scratch, 64 * 1024 * 1024);
	buf_init(&s->event, 64 * 1024 * 1024);
	if (cfg->region && cfg->region[0])
		snprintf(s->region_hdr, sizeof(s->region_hdr), "x-sim-region: %s\r\n", cfg->region);
	if (faults) s->faults = *faults;
	else sim_faults_clear(&s->faults);
	s->cfg.engine.model = cfg->models[0];
	s->engine = sim_engine_new(loop, &s->cfg.engine);
	if (!s->engine) {
		snprintf(err, err_len, "cannot create the engine (out of memory?)");
		return -1;
	}
	if (sim_metrics_init(&s->metrics, s) < 0) {
		snprintf(err, err_len, "cannot create the metrics registry");
		return -1;
	}
	s->http = httpd_new(loop, NULL, on_request, s);
	if (!s->http) {
		snprintf(err, err_len, "cannot create the HTTP server");
		return -1;
	}
	const char *host = cfg->host ? cfg->host : "127.0.0.1";
	int v6 = strchr(host, ':') != NULL;
	snprintf(addr, sizeof(addr), v6 ? "[%s]:%d" : "%s:%d", host, cfg->port);
	s->listener = httpd_listen(s->http, addr, NULL, err, err_len);
	if (s->listener < 0) return -1;
	if (cfg->tls_cert || cfg->tls_key) {
		tls_server_opts to = {.cert_file = cfg->tls_cert, .key_file = cfg->tls_key, .alpn_h2 = 1};
		char e[400];
		tls_ctx *tc = tls_server_new(&to, e, sizeof(e));
		if (!tc) {
			snprintf(err, err_len, "TLS: %s", e);
			return -1;
		}
		httpd_set_tls(s->http, s->listener, tc);
	}
	s->port = httpd_port(s->http, s->listener);
	s->listening = 1;
	if (cfg->control_port >= 0) {
		snprintf(addr, sizeof(addr), v6 ? "[%s]:%d" : "%s:%d", host, cfg->control_port);
		s->control_listener = httpd_listen(s->http, addr, NULL, err, err_len);
		if (s->control_listener < 0) return -1;
	}
	sim_server_faults_changed(s);
	return 0;
}

void sim_server_deinit(sim_server *s)
{
	if (s->refuse_timer) ev_timer_del(s->loop, s->refuse_timer);
	/* httpd first: on_close of requests in flight aborts them in the engine. */
	httpd_free(s->http);
	sim_engine_free(s->engine);
	sim_metrics_deinit(&s->metrics);
	buf_free(&s->scratch);
	buf_free(&s->event);
	s->http = NULL;
	s->engine = NULL;
}
