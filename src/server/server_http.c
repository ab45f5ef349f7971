/*
 * server_http.c — routing and the small endpoints of infergate-server:
 * /health, /v1/models, /version, /metrics, /tokenize, /detokenize. The
 * completion endpoints are in server_openai.c.
 *
 * /health is 503 while the model loads, while draining after SIGTERM and when
 * the engine failed; 200 with an empty body otherwise, as vLLM answers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/log.h"
#include "core/openai_api.h"
#include "core/util.h"
#include "server/server.h"

void server_respond_json(httpd_req *r, int status, buf *body)
{
	httpd_respond(r, status, "application/json", NULL, buf_rptr(body), buf_rlen(body));
}

static int engine_broken(server *s)
{
	if (!s->sc) return 0;
	sched_stats st;
	sched_get_stats(s->sc, &st);
	return st.broken;
}

static void handle_health(server *s, httpd_req *r)
{
	int ok = s->ready && !s->draining && !engine_broken(s);
	httpd_respond(r, ok ? 200 : 503, NULL, NULL, "", 0);
}

static void handle_models(server *s, httpd_req *r)
{
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	oai_write_models(&w, &s->o.served_name, 1, s->o.model, s->created_s, s->max_model_len, 1);
	server_respond_json(r, 200, &s->scratch);
}

/* GET /v1/models/{id} (the OpenAI API's retrieve; the id percent-encoded as
 * clients send a name with a slash). */
static void handle_model(server *s, httpd_req *r, const char *enc)
{
	char id[512];
	oai_err e = {0};
	if (server_check_model(s, pct_decode(enc, strlen(enc), id, sizeof id) < 0 ? enc : id, &e) < 0) {
		httpd_error(r, e.status, e.msg, e.param);
		return;
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	oai_write_model(&w, s->o.served_name, s->o.model, s->created_s, s->max_model_len, 1);
	server_respond_json(r, 200, &s->scratch);
}

static void handle_metrics(server *s, httpd_req *r)
{
	buf_reset(&s->scratch);
	if (prom_write(s->m.reg, &s->scratch) < 0) {
		httpd_error(r, 500, "The metrics output is too large.", NULL);
		return;
	}
	httpd_respond(r, 200, PROM_CONTENT_TYPE, NULL, buf_rptr(&s->scratch), buf_rlen(&s->scratch));
}

/* Parses the JSON body; answers 400 itself and returns NULL when it is bad
 * (too long for the context: server_check_body, before parsing). */
static json_doc *parse_body(server *s, httpd_req *r)
{
	size_t len;
	const char *body = httpd_body(r, &len);
	oai_err e = {0};
	if (server_check_body(s, len, &e) < 0) {
		httpd_error(r, e.status, e.msg, e.param);
		return NULL;
	}
	json_doc *doc = oai_parse_body(body, len, &e);
	if (!doc) httpd_error(r, e.status, e.msg, e.param);
	return doc;
}

/* A model field, when present, must name the served model: else 404. */
static int check_model(server *s, httpd_req *r, const json_val *root)
{
	const char *model;
	oai_err e = {0};
	if (oai_parse_model(root, &model, &e) < 0 || server_check_model(s, model, &e) < 0) {
		httpd_error(r, e.status, e.msg, e.param);
		return -1;
	}
	return 0;
}

/* Checks the fields; the tokenizing itself is the tokenizer thread's
 * (server_openai_tokenize), off the loop. */
static void handle_tokenize(server *s, httpd_req *r)
{
	json_doc *doc = parse_body(s, r);
	if (!doc) return;
	const json_val *root = json_root(doc);
	oai_err e = {0};
	if (check_model(s, r, root) < 0) goto out;
	const json_val *prompt = json_get(root, "prompt"), *messages = json_get(root, "messages");
	if (json_is(messages, JSON_ARRAY)) {
		int agp = json_bool(json_get(root, "add_generation_prompt"), 1);
		int cfm = json_bool(json_get(root, "continue_final_message"), 0);
		if (agp && cfm && json_get(root, "add_generation_prompt")) {
			httpd_error(r, 400, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.", NULL);
			goto out;
		}
		if (cfm) agp = 0;
		if (server_check_prompt_bytes(s, server_messages_bytes(messages), &e) < 0) {
			httpd_error(r, e.status, e.msg, e.param);
			goto out;
		}
		server_openai_tokenize(s, r, doc, messages, agp, cfm, NULL, 0);
		return;
	}
	if (json_is(prompt, JSON_STRING)) {
		int add = json_bool(json_get(root, "add_special_tokens"), 1);
		if (server_check_prompt_bytes(s, prompt->u.str.len, &e) < 0) {
			httpd_error(r, e.status, e.msg, e.param);
			goto out;
		}
		server_openai_tokenize(s, r, doc, NULL, 0, 0, prompt, add);
		return;
	}
	httpd_error(r, 400, "Either `prompt` (a string) or `messages` (a list) is required.", NULL);
out:
	json_doc_free(doc);
}

static void handle_detokenize(server *s, httpd_req *r)
{
	json_doc *doc = parse_body(s, r);
	if (!doc) return;
	const json_val *root = json_root(doc), *toks = json_get(root, "tokens");
	int64_t id;
	int32_t one;
	buf text;
	buf_init(&text, 64u << 20);
	if (check_model(s, r, root) < 0) goto out;
	if (!json_is(toks, JSON_ARRAY)) {
		httpd_error(r, 400, "tokens: Field required (a list of token ids)", "tokens");
		goto out;
	}
	for (size_t i = 0; i < json_count(toks); i++) {
		if (oai_int_sat(json_at(toks, i), &id) < 0 || id < 0 || id >= (int64_t)tokenizer_vocab_size(s->tok)) {
			httpd_error(r, 400, "tokens: each token id must be an integer in the vocabulary", "tokens");
			goto out;
		}
		one = (int32_t)id;
		if (tokenizer_decode(s->tok, &one, 1, 0, &text) < 0) {
			httpd_error(r, 400, "The text is too large.", "tokens");
			goto out;
		}
	}
	json_w w;
	buf_reset(&s->scratch);
	jw_init(&w, &s->scratch);
	jw_obj_begin(&w);
	jw_key(&w, "prompt");
	jw_strn(&w, buf_rptr(&text), buf_rlen(&text));
	jw_obj_end(&w);
	server_respond_json(r, 200, &s->scratch);
out:
	buf_free(&text);
	json_doc_free(doc);
}

void server_on_request(httpd_req *r, void *arg)
{
	server *s = arg;
	const char *path = httpd_path(r);
	/* As vLLM's --api-key: the API under /v1, and /tokenize and /detokenize
	 * (they run the tokenizer for anyone otherwise); health, metrics and
	 * version stay open. */
	int keyed = !strncmp(path, "/v1", 3) || !strcmp(path, "/tokenize") || !strcmp(path, "/detokenize");
	if (s->o.api_key && keyed && !httpd_bearer_is(r, s->o.api_key)) {
		httpd_error(r, 401, "Unauthorized", NULL);
		return;
	}
	if (!strcmp(path, "/health") || !strcmp(path, "/ping")) {
		if (httpd_method_or_405(r, "GET")) handle_health(s, r);
		return;
	}
	if (!strcmp(path, "/metrics")) {
		if (httpd_method_or_405(r, "GET")) handle_metrics(s, r);
		return;
	}
	if (!strcmp(path, "/version")) {
		static const char v[] = "{\"version\":\"" SERVER_VERSION "\"}";
		if (httpd_method_or_405(r, "GET")) httpd_respond(r, 200, "application/json", NULL, v, sizeof v - 1);
		return;
	}
	int one_model = !strncmp(path, "/v1/models/", 11) && path[11];
	int known = !strcmp(path, "/v1/chat/completions") || !strcmp(path, "/v1/completions") ||
		    !strcmp(path, "/v1/models") || one_model || !strcmp(path, "/tokenize") || !strcmp(path, "/detokenize");
	if (!known) {
		httpd_error(r, 404, "Not Found", NULL);
		return;
	}
	if (s->draining) {
		httpd_error(r, 503, "The server is shutting down.", NULL);
		return;
	}
	if (!s->ready) {
		httpd_error(r, 503, "The model is still loading.", NULL);
		return;
	}
	if (engine_broken(s)) {
		httpd_error(r, 503, "The engine is out of service.", NULL);
		return;
	}
	if (!strcmp(path, "/v1/chat/completions")) {
		if (httpd_method_or_405(r, "POST")) server_openai_handle(s, r, 1);
	} else if (!strcmp(path, "/v1/completions")) {
		if (httpd_method_or_405(r, "POST")) server_openai_handle(s, r, 0);
	} else if (!strcmp(path, "/v1/models")) {
		if (httpd_method_or_405(r, "GET")) handle_models(s, r);
	} else if (one_model) {
		if (httpd_method_or_405(r, "GET")) handle_model(s, r, path + 11);
	} else if (!strcmp(path, "/tokenize")) {
		if (httpd_method_or_405(r, "POST")) handle_tokenize(s, r);
	} else {
		if (httpd_method_or_405(r, "POST")) handle_detokenize(s, r);
	}
}
