/*
 * config.c — the gateway's configuration file (YAML through core/cfg.h) and
 * quick-start flags, into the structs of config.h.
 *
 * The whole file is checked before anything is returned; the first error is
 * reported as "file:line: path: what" (cfg_ctx), so an unknown key, a bad
 * value or a reference to a pool that does not exist names where it is. What
 * each key means is in docs/CONFIG.md; the defaults are set here only.
 */
#include "gateway/config.h"
#include "gateway/config_picker.h"
#include "gateway/config_tenants.h"
#include "core/cfg.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ defaults */

static void limits_defaults(gw_limits_cfg *l)
{
	l->max_header_bytes = 16 * 1024;
	l->max_body_bytes = 16 * 1024 * 1024;
	l->header_timeout_ms = 10000;
	l->body_timeout_ms = 60000;
	l->keepalive_timeout_ms = 60000;
	l->max_connections = 10000;
	l->tls_handshake_timeout_ms = 10000;
}

void gw_pool_cfg_defaults(gw_pool_cfg *p)
{
	str_copy(p->health.path, "/health", sizeof(p->health.path));
	p->health.interval_ms = 2000;
	p->health.fast_interval_ms = 500;
	p->health.timeout_ms = 1000;
	p->health.rise = 2;
	p->health.fall = 3;
	p->health.enabled = 1;
	p->passive.failures = 3;
	p->passive.backoff_ms = 1000;
	p->passive.backoff_max_ms = 30000;
	str_copy(p->metrics.path, "/metrics", sizeof(p->metrics.path));
	p->metrics.interval_ms = 100;
	p->metrics.enabled = 1;
	p->backend.request_timeout_ms = 300000;
	p->backend.idle_timeout_ms = 60000;
	p->backend.connect_timeout_ms = 2000;
	p->backend.tries = 3;
	p->backend.retry_budget_ratio = 0.2;
	p->backend.retry_budget_min = 3;
	p->backend.max_idle_conns = 256;
	p->backend.max_resumes = 2;
	p->backend.tls_verify = 1;
	p->resume = 1;
	config_picker_defaults(p);
}

static void config_defaults(gw_config *c)
{
	limits_defaults(&c->limits);
	c->shutdown_grace_ms = 30000;
	c->io_uring = 1;
	c->dashboard.enabled = 1;
	c->dashboard.max_viewers = 16;
	c->fair_queuing = 1;
	str_copy(c->session_header, "x-session-id", sizeof(c->session_header));
}

/* ------------------------------------------------------------ helpers */

/* Region and pool names: letters, digits, '.', '_', '-' (they become metric
 * label values and log fields). */
static int name_ok(const char *s)
{
	if (!*s) return 0;
	for (const char *p = s; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* Model names: printable ASCII without spaces or quotes ("google/gemma-3-1b-it"). */
static int model_ok(const char *s)
{
	if (!*s) return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\') return 0;
	return 1;
}

static int path_ok(const char *s)
{
	if (s[0] != '/') return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) return 0;
	return 1;
}

/* A string into dst[size] with a check. Returns 1 present, 0 absent, -1 error. */
static int get_name(cfg_ctx *c, const json_val *obj, const char *path, const char *key, int required,
		    const char *dflt, int (*ok)(const char *), const char *what, char *dst, size_t size)
{
	const char *s;
	int r = cfg_str(c, obj, path, key, required, dflt, &s);
	if (r < 0) return -1;
	if (!s) {
		dst[0] = 0;
		return r;
	}
	char full[256];
	cfg_path(full, sizeof(full), path, key);
	if (strlen(s) >= size) {
		cfg_fail(c, json_get(obj, key), full, "longer than %zu bytes", size - 1);
		return -1;
	}
	if (ok && !ok(s)) {
		cfg_fail(c, json_get(obj, key), full, "\"%.64s\" is not %s", s, what);
		return -1;
	}
	str_copy(dst, s, size);
	return r;
}

static int check_hostport(cfg_ctx *c, const json_val *at, const char *path, const char *s, int allow0)
{
	char host[GW_ADDR_LEN];
	uint16_t port;
	if (strlen(s) >= GW_ADDR_LEN || cfg_parse_hostport(s, allow0, host, sizeof(host), &port) < 0) {
		cfg_fail(c, at, path, "\"%.64s\" is not host:port (port %d-65535; IPv6 in brackets)", s,
			 allow0 ? 0 : 1);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ sections */

static void parse_health(cfg_ctx *c, const json_val *h, const char *path, gw_health_cfg *out)
{
	static const char *const keys[] = {"enabled", "path", "interval", "fast_interval", "timeout",
					   "rise", "fall", "healthy_threshold", "unhealthy_threshold", NULL};
	if (cfg_check_keys(c, h, path, keys) < 0) return;
	int64_t v;
	cfg_bool(c, h, path, "enabled", 0, out->enabled, &out->enabled);
	get_name(c, h, path, "path", 0, out->path, path_ok, "a path starting with /", out->path, sizeof(out->path));
	cfg_duration_ms(c, h, path, "interval", 0, out->interval_ms, 10, 3600000, &out->interval_ms);
	uint64_t fast_dflt = MIN(out->fast_interval_ms, out->interval_ms);
	cfg_duration_ms(c, h, path, "fast_interval", 0, fast_dflt, 10, 3600000, &out->fast_interval_ms);
	cfg_duration_ms(c, h, path, "timeout", 0, out->timeout_ms, 1, 600000, &out->timeout_ms);
	if (json_get(h, "rise") && json_get(h, "healthy_threshold"))
		cfg_fail(c, json_get(h, "healthy_threshold"), path, "rise and healthy_threshold are the same setting: give one");
	if (json_get(h, "fall") && json_get(h, "unhealthy_threshold"))
		cfg_fail(c, json_get(h, "unhealthy_threshold"), path, "fall and unhealthy_threshold are the same setting: give one");
	if (cfg_int(c, h, path, json_get(h, "healthy_threshold") ? "healthy_threshold" : "rise", 0,
		    out->rise, 1, 100, &v) >= 0)
		out->rise = (uint32_t)v;
	if (cfg_int(c, h, path, json_get(h, "unhealthy_threshold") ? "unhealthy_threshold" : "fall", 0,
		    out->fall, 1, 100, &v) >= 0)
		out->fall = (uint32_t)v;
}

static void parse_passive(cfg_ctx *c, const json_val *p, const char *path, gw_passive_cfg *out)
{
	static const char *const keys[] = {"failures", "backoff", "backoff_max", NULL};
	if (cfg_check_keys(c, p, path, keys) < 0) return;
	int64_t v;
	if (cfg_int(c, p, path, "failures", 0, out->failures, 0, 1000, &v) >= 0) out->failures = (uint32_t)v;
	cfg_duration_ms(c, p, path, "backoff", 0, out->backoff_ms, 10, 3600000, &out->backoff_ms);
	cfg_duration_ms(c, p, path, "backoff_max", 0, MAX(out->backoff_max_ms, out->backoff_ms), 10, 86400000,
			&out->backoff_max_ms);
	if (out->backoff_max_ms < out->backoff_ms)
		cfg_fail(c, json_get(p, "backoff_max"), path, "backoff_max is shorter than backoff");
}

static void parse_scrape(cfg_ctx *c, const json_val *m, const char *path, gw_scrape_cfg *out)
{
	static const char *const keys[] = {"enabled", "path", "interval", CONFIG_SCRAPE_KEYS, NULL};
	if (cfg_check_keys(c, m, path, keys) < 0) return;
	cfg_bool(c, m, path, "enabled", 0, out->enabled, &out->enabled);
	get_name(c, m, path, "path", 0, out->path, path_ok, "a path starting with /", out->path, sizeof(out->path));
	cfg_duration_ms(c, m, path, "interval", 0, out->interval_ms, 10, 3600000, &out->interval_ms);
	config_scrape_parse(c, m, path, out);
}

/* An API key: 1-255 visible ASCII characters (a Bearer token). */
int config_api_key_ok(cfg_ctx *c, const json_val *v, const char *path)
{
	if (!json_is(v, JSON_STRING) || v->u.str.len == 0 || v->u.str.len >= GW_KEY_LEN) {
		cfg_fail(c, v, path, "must be a key of 1 to %d characters", GW_KEY_LEN - 1);
		return 0;
	}
	for (size_t i = 0; i < v->u.str.len; i++)
		if (v->u.str.s[i] < 0x21 || v->u.str.s[i] > 0x7e) {
			cfg_fail(c, v, path, "a key is visible ASCII characters only (no spaces)");
			return 0;
		}
	return 1;
}

static void parse_backend(cfg_ctx *c, const json_val *b, const char *path, gw_backend_cfg *out)
{
	static const char *const keys[] = {"request_timeout", "timeout", "idle_timeout", "connect_timeout",
					   "tries", "retry_budget", "retry_budget_min", "max_idle_connections",
					   "max_resumes", "api_key", "tls", NULL};
	if (cfg_check_keys(c, b, path, keys) < 0) return;
	const json_val *tv = cfg_obj(c, b, path, "tls", 0);
	if (tv) {
		static const char *const tkeys[] = {"ca", "server_name", "verify", "cert", "key", NULL};
		char tp[GW_PATH_LEN];
		cfg_path(tp, sizeof(tp), path, "tls");
		if (cfg_check_keys(c, tv, tp, tkeys) == 0) {
			out->tls = 1;
			get_name(c, tv, tp, "ca", 0, NULL, NULL, NULL, out->tls_ca_file, sizeof(out->tls_ca_file));
			get_name(c, tv, tp, "server_name", 0, NULL, NULL, NULL, out->tls_server_name, sizeof(out->tls_server_name));
			get_name(c, tv, tp, "cert", 0, NULL, NULL, NULL, out->tls_cert_file, sizeof(out->tls_cert_file));
			get_name(c, tv, tp, "key", 0, NULL, NULL, NULL, out->tls_key_file, sizeof(out->tls_key_file));
			cfg_bool(c, tv, tp, "verify", 0, 1, &out->tls_verify);
			if (!out->tls_cert_file[0] != !out->tls_key_file[0])
				cfg_fail(c, tv, tp, "cert and key go together");
		}
	}
	const json_val *key = json_get(b, "api_key");
	if (key && !json_is(key, JSON_NULL)) {
		char sub[GW_PATH_LEN];
		cfg_path(sub, sizeof(sub), path, "api_key");
		if (config_api_key_ok(c, key, sub)) str_copy(out->api_key, key->u.str.s, sizeof(out->api_key));
	}
	int64_t v;
	if (json_get(b, "timeout") && json_get(b, "request_timeout"))
		cfg_fail(c, json_get(b, "timeout"), path, "timeout and request_timeout are the same setting: give one");
	cfg_duration_ms(c, b, path, json_get(b, "timeout") ? "timeout" : "request_timeout", 0,
			out->request_timeout_ms, 1, 86400000, &out->request_timeout_ms);
	cfg_duration_ms(c, b, path, "idle_timeout", 0, out->idle_timeout_ms, 1, 86400000, &out->idle_timeout_ms);
	cfg_duration_ms(c, b, path, "connect_timeout", 0, out->connect_timeout_ms, 1, 600000, &out->connect_timeout_ms);
	if (cfg_int(c, b, path, "tries", 0, out->tries, 1, 16, &v) >= 0) out->tries = (uint32_t)v;
	cfg_double(c, b, path, "retry_budget", 0, out->retry_budget_ratio, 0, 1, &out->retry_budget_ratio);
	if (cfg_int(c, b, path, "retry_budget_min", 0, out->retry_budget_min, 0, 100000, &v) >= 0)
		out->retry_budget_min = (uint32_t)v;
	if (cfg_int(c, b, path, "max_idle_connections", 0, out->max_idle_conns, 0, 100000, &v) >= 0)
		out->max_idle_conns = (uint32_t)v;
	if (cfg_int(c, b, path, "max_resumes", 0, out->max_resumes, 0, 16, &v) >= 0) out->max_resumes = (uint32_t)v;
}

/* Takes an "https://" or "http://" prefix off addr in place: 1 for https. */
static int address_scheme(char *addr)
{
	size_t skip = !strncasecmp(addr, "https://", 8) ? 8 : !strncasecmp(addr, "http://", 7) ? 7
											       : 0;
	if (skip) memmove(addr, addr + skip, strlen(addr + skip) + 1);
	size_t n = strlen(addr);
	if (skip && n && addr[n - 1] == '/') addr[n - 1] = 0; /* "https://host:port/" */
	return skip == 8;
}

static void parse_endpoint(cfg_ctx *c, const gw_config *cfg, const json_val *e, const char *path,
			   gw_endpoint_cfg *out)
{
	static const char *const keys[] = {"address", "region", "weight", "resolve", "resolve_interval", "resolver",
					   NULL};
	if (cfg_check_keys(c, e, path, keys) < 0) return;
	out->line = e->line;
	char full[256], how[16];
	/* resolve: dns | srv | kubernetes (discovery.h); absent: the address as it is */
	if (get_name(c, e, path, "resolve", 0, NULL, NULL, NULL, how, sizeof(how)) > 0) {
		out->resolve = !strcmp(how, "dns") ? GW_RESOLVE_DNS : !strcmp(how, "srv")  ? GW_RESOLVE_SRV
							      : !strcmp(how, "kubernetes") ? GW_RESOLVE_KUBERNETES
											   : -1;
		cfg_path(full, sizeof(full), path, "resolve");
		if (out->resolve < 0) cfg_fail(c, json_get(e, "resolve"), full, "\"%s\" is not dns, srv or kubernetes", how);
	}
	cfg_duration_ms(c, e, path, "resolve_interval", 0, 0, 100, 3600000, &out->resolve_interval_ms);
	if (get_name(c, e, path, "resolver", 0, NULL, NULL, NULL, out->resolver, sizeof(out->resolver)) > 0) {
		cfg_path(full, sizeof(full), path, "resolver");
		check_hostport(c, json_get(e, "resolver"), full, out->resolver, 0);
	}
	if (get_name(c, e, path, "address", 1, NULL, NULL, NULL, out->address, sizeof(out->address)) > 0)
		out->tls = address_scheme(out->address);
	if (out->address[0] && out->resolve != GW_RESOLVE_SRV) { /* an SRV name carries no port */
		cfg_path(full, sizeof(full), path, "address");
		check_hostport(c, json_get(e, "address"), full, out->address, 0);
	}
	if (!out->resolve && (json_get(e, "resolver") || json_get(e, "resolve_interval"))) {
		cfg_path(full, sizeof(full), path, json_get(e, "resolver") ? "resolver" : "resolve_interval");
		cfg_fail(c, e, full, "only applies with resolve: dns, srv or kubernetes");
	}
	get_name(c, e, path, "region", 0, cfg->region, name_ok, "a region name (letters, digits, . _ -)",
		 out->region, sizeof(out->region));
	int64_t w;
	if (cfg_int(c, e, path, "weight", 0, 1, 1, 1000, &w) >= 0) out->weight = (uint32_t)w;
}

const char *const gw_dialect_names[] = {"auto", "vllm", "sglang", "llamacpp", "openai", NULL};

static void parse_pool(cfg_ctx *c, const gw_config *cfg, const json_val *p, const char *path, gw_pool_cfg *out)
{
	static const char *const keys[] = {"name", "models", "endpoints", "health", "passive", "metrics",
					   "backend", "picker", "resume", "dialect", NULL};
	char sub[256];
	gw_pool_cfg_defaults(out);
	if (cfg_check_keys(c, p, path, keys) < 0) return;
	get_name(c, p, path, "name", 1, NULL, name_ok, "a pool name (letters, digits, . _ -)", out->name,
		 sizeof(out->name));

	const json_val *models = json_get(p, "models");
	if (json_is(models, JSON_STRING)) {
		cfg_path(sub, sizeof(sub), path, "models");
		if (!json_cstr(models) || !model_ok(models->u.str.s) || models->u.str.len >= GW_NAME_LEN)
			cfg_fail(c, models, sub, "\"%.64s\" is not a model name", models->u.str.s);
		else
			str_copy(out->models[out->n_models++], models->u.str.s, GW_NAME_LEN);
	} else if ((models = cfg_arr(c, p, path, "models", 0))) {
		cfg_path(sub, sizeof(sub), path, "models");
		if (json_count(models) > GW_MAX_MODELS)
			cfg_fail(c, models, sub, "more than %d models", GW_MAX_MODELS);
		for (size_t i = 0; i < json_count(models) && i < GW_MAX_MODELS; i++) {
			const json_val *m = json_at(models, i);
			char mp[256];
			cfg_path_index(mp, sizeof(mp), sub, i);
			const char *s = json_cstr(m); /* NULL for a name with a NUL inside */
			if (!s || !model_ok(s) || strlen(s) >= GW_NAME_LEN) {
				cfg_fail(c, m, mp, "must be a model name (a string without spaces)");
				continue;
			}
			for (size_t k = 0; k < out->n_models; k++)
				if (!strcmp(out->models[k], s)) cfg_fail(c, m, mp, "\"%.64s\" is listed twice", s);
			str_copy(out->models[out->n_models++], s, GW_NAME_LEN);
		}
	}

	const json_val *eps = cfg_arr(c, p, path, "endpoints", 1);
	cfg_path(sub, sizeof(sub), path, "endpoints");
	if (eps && json_count(eps) == 0) cfg_fail(c, eps, sub, "needs at least one endpoint");
	if (eps && json_count(eps) > GW_MAX_ENDPOINTS) cfg_fail(c, eps, sub, "more than %d endpoints", GW_MAX_ENDPOINTS);
	if (eps && json_count(eps) && json_count(eps) <= GW_MAX_ENDPOINTS) {
		out->endpoints = calloc(json_count(eps), sizeof(*out->endpoints));
		if (!out->endpoints) {
			cfg_fail(c, eps, sub, "out of memory");
			return;
		}
		for (size_t i = 0; i < json_count(eps); i++) {
			char ep[256];
			cfg_path_index(ep, sizeof(ep), sub, i);
			gw_endpoint_cfg *e = &out->endpoints[out->n_endpoints++];
			parse_endpoint(c, cfg, json_at(eps, i), ep, e);
			for (size_t k = 0; k + 1 < out->n_endpoints; k++)
				if (e->address[0] && !strcmp(out->endpoints[k].address, e->address))
					cfg_fail(c, json_at(eps, i), ep, "address %s is listed twice in this pool", e->address);
		}
	}
	const json_val *v;
	cfg_path(sub, sizeof(sub), path, "health");
	if ((v = cfg_obj(c, p, path, "health", 0))) parse_health(c, v, sub, &out->health);
	cfg_path(sub, sizeof(sub), path, "passive");
	if ((v = cfg_obj(c, p, path, "passive", 0))) parse_passive(c, v, sub, &out->passive);
	cfg_path(sub, sizeof(sub), path, "metrics");
	if ((v = cfg_obj(c, p, path, "metrics", 0))) parse_scrape(c, v, sub, &out->metrics);
	cfg_path(sub, sizeof(sub), path, "backend");
	if ((v = cfg_obj(c, p, path, "backend", 0))) parse_backend(c, v, sub, &out->backend);
	cfg_path(sub, sizeof(sub), path, "picker");
	if ((v = cfg_obj(c, p, path, "picker", 0))) config_picker_parse(c, v, sub, &out->picker);
	cfg_bool(c, p, path, "resume", 0, out->resume, &out->resume);
	cfg_enum(c, p, path, "dialect", 0, GW_DIALECT_AUTO, gw_dialect_names, &out->dialect);
	if (out->health.timeout_ms > out->health.interval_ms) {
		cfg_path(sub, sizeof(sub), path, "health.timeout");
		cfg_fail(c, json_get(json_get(p, "health"), "timeout"), sub, "is longer than health.interval");
	}
}

static void parse_route(cfg_ctx *c, gw_config *cfg, const json_val *r, const char *path, gw_route_cfg *out)
{
	static const char *const keys[] = {"path", "model", "pool", "objective", "extra_paths", NULL};
	if (cfg_check_keys(c, r, path, keys) < 0) return;
	config_route_objective(c, r, path, cfg, out);
	get_name(c, r, path, "path", 0, "/", path_ok, "a path prefix starting with /", out->prefix, sizeof(out->prefix));
	const json_val *extra = cfg_arr(c, r, path, "extra_paths", 0);
	if (extra) {
		char sub[256];
		cfg_path(sub, sizeof(sub), path, "extra_paths");
		if (json_count(extra) > GW_ROUTE_MAX_EXTRA_PATHS)
			cfg_fail(c, extra, sub, "more than %d paths", GW_ROUTE_MAX_EXTRA_PATHS);
		for (size_t i = 0; i < json_count(extra) && i < GW_ROUTE_MAX_EXTRA_PATHS; i++) {
			const json_val *e = json_at(extra, i);
			const char *s = json_cstr(e);
			char ep[256];
			cfg_path_index(ep, sizeof(ep), sub, i);
			if (!s || !path_ok(s) || strlen(s) < 2 || strlen(s) >= GW_PATH_LEN) {
				cfg_fail(c, e, ep, "must be a path prefix starting with / (not / itself)");
				continue;
			}
			str_copy(out->extra_paths[out->n_extra_paths++], s, GW_PATH_LEN);
		}
	}
	get_name(c, r, path, "model", 0, NULL, model_ok, "a model name", out->model, sizeof(out->model));
	if (get_name(c, r, path, "pool", 1, NULL, name_ok, "a pool name", out->pool, sizeof(out->pool)) <= 0) return;
	char full[256];
	cfg_path(full, sizeof(full), path, "pool");
	out->pool_index = gw_config_pool_index(cfg, out->pool);
	if (out->pool_index < 0) {
		cfg_fail(c, json_get(r, "pool"), full, "no pool is named \"%s\"", out->pool);
		return;
	}
	const gw_pool_cfg *p = &cfg->pools[out->pool_index];
	if (out->model[0] && p->n_models) {
		size_t k;
		for (k = 0; k < p->n_models; k++)
			if (!strcmp(p->models[k], out->model)) break;
		if (k == p->n_models) {
			cfg_path(full, sizeof(full), path, "model");
			cfg_fail(c, json_get(r, "model"), full, "pool \"%s\" does not list model \"%s\" in its models",
				 p->name, out->model);
		}
	}
}

static void parse_limits(cfg_ctx *c, const json_val *l, gw_limits_cfg *out)
{
	static const char *const keys[] = {"max_header_bytes", "max_body_bytes", "header_timeout", "body_timeout",
					   "keepalive_timeout", "max_connections", "tls_handshake_timeout", NULL};
	if (cfg_check_keys(c, l, "limits", keys) < 0) return;
	cfg_size_bytes(c, l, "limits", "max_header_bytes", 0, out->max_header_bytes, 1024, 1 << 20, &out->max_header_bytes);
	cfg_size_bytes(c, l, "limits", "max_body_bytes", 0, out->max_body_bytes, 1024, 1ull << 30, &out->max_body_bytes);
	cfg_duration_ms(c, l, "limits", "header_timeout", 0, out->header_timeout_ms, 10, 3600000, &out->header_timeout_ms);
	cfg_duration_ms(c, l, "limits", "body_timeout", 0, out->body_timeout_ms, 10, 3600000, &out->body_timeout_ms);
	cfg_duration_ms(c, l, "limits", "keepalive_timeout", 0, out->keepalive_timeout_ms, 10, 3600000,
			&out->keepalive_timeout_ms);
	cfg_duration_ms(c, l, "limits", "tls_handshake_timeout", 0, out->tls_handshake_timeout_ms, 10, 3600000,
			&out->tls_handshake_timeout_ms);
	int64_t v;
	if (cfg_int(c, l, "limits", "max_connections", 0, (int64_t)out->max_connections, 1, 1000000, &v) >= 0)
		out->max_connections = (uint64_t)v;
}

static void parse_regions(cfg_ctx *c, const json_val *r, gw_config *out)
{
	/* regions: {europe-west4: 95ms, asia-east1: 180ms} */
	if (!json_is(r, JSON_OBJECT)) {
		cfg_fail(c, r, "regions", "must be a mapping of region name to latency (\"europe-west4: 95ms\")");
		return;
	}
	if (r->u.obj.n > GW_MAX_REGIONS) {
		cfg_fail(c, r, "regions", "more than %d regions", GW_MAX_REGIONS);
		return;
	}
	for (size_t i = 0; i < r->u.obj.n; i++) {
		const json_member *m = &r->u.obj.members[i];
		char full[256];
		cfg_path(full, sizeof(full), "regions", m->key);
		if (m->key_len >= GW_NAME_LEN || !name_ok(m->key)) {
			cfg_fail(c, m->val, full, "is not a region name (letters, digits, . _ -)");
			continue;
		}
		gw_region_cfg *g = &out->regions[out->n_regions++];
		str_copy(g->name, m->key, sizeof(g->name));
		cfg_duration_ms(c, r, "regions", m->key, 1, 0, 0, 3600000, &g->latency_ms);
	}
}

/* One listen entry: "host:port", or {address: "host:port", tls: {cert, key,
 * client_ca, ciphers}}. The files are loaded (and the key checked against the
 * certificate) when the listener opens, so --check and boot say the same. */
static void parse_listen_entry(cfg_ctx *c, const json_val *e, const char *path, gw_config *cfg)
{
	size_t i = cfg->n_listen;
	gw_listen_tls_cfg *t = &cfg->listen_tls[i];
	memset(t, 0, sizeof(*t));
	const char *s = json_str(e, NULL);
	if (s) {
		if (check_hostport(c, e, path, s, 1) == 0) str_copy(cfg->listen[cfg->n_listen++], s, GW_ADDR_LEN);
		return;
	}
	if (!json_is(e, JSON_OBJECT)) {
		cfg_fail(c, e, path, "must be a \"host:port\" string or a {address, tls} mapping");
		return;
	}
	static const char *const keys[] = {"address", "tls", NULL};
	if (cfg_check_keys(c, e, path, keys) < 0) return;
	char full[128];
	cfg_path(full, sizeof(full), path, "address");
	const char *a;
	if (cfg_str(c, e, path, "address", 1, NULL, &a) <= 0) return;
	if (check_hostport(c, json_get(e, "address"), full, a, 1) < 0) return;
	const json_val *tv = cfg_obj(c, e, path, "tls", 0);
	if (tv) {
		static const char *const tkeys[] = {"cert", "key", "client_ca", "ciphers", NULL};
		char tp[128];
		cfg_path(tp, sizeof(tp), path, "tls");
		if (cfg_check_keys(c, tv, tp, tkeys) < 0) return;
		if (get_name(c, tv, tp, "cert", 1, NULL, NULL, NULL, t->cert_file, sizeof(t->cert_file)) < 0 ||
		    get_name(c, tv, tp, "key", 1, NULL, NULL, NULL, t->key_file, sizeof(t->key_file)) < 0 ||
		    get_name(c, tv, tp, "client_ca", 0, NULL, NULL, NULL, t->client_ca_file, sizeof(t->client_ca_file)) < 0 ||
		    get_name(c, tv, tp, "ciphers", 0, NULL, NULL, NULL, t->ciphers, sizeof(t->ciphers)) < 0)
			return;
	}
	str_copy(cfg->listen[cfg->n_listen++], a, GW_ADDR_LEN);
}

int gw_config_listen_tls(gw_config *cfg, const char *cert_file, const char *key_file, char *err, size_t err_len)
{
	if (!cert_file != !key_file) {
		snprintf(err, err_len, "--tls-cert and --tls-key go together");
		return -1;
	}
	if (!cert_file) return 0;
	if (strlen(cert_file) >= GW_PATH_LEN || strlen(key_file) >= GW_PATH_LEN) {
		snprintf(err, err_len, "--tls-cert / --tls-key: path too long");
		return -1;
	}
	for (size_t i = 0; i < cfg->n_listen; i++) {
		memset(&cfg->listen_tls[i], 0, sizeof(cfg->listen_tls[i]));
		str_copy(cfg->listen_tls[i].cert_file, cert_file, GW_PATH_LEN);
		str_copy(cfg->listen_tls[i].key_file, key_file, GW_PATH_LEN);
	}
	return 0;
}

/* Everything but the pools' cross references, then those. */
static void parse_root(cfg_ctx *c, const json_val *root, gw_config *cfg)
{
	static const char *const keys[] = {"region", "listen", "regions", "limits", "shutdown_grace",
					   "access_log", "io_uring", "pools", "routes", "objectives", "api_keys", "dashboard",
					   "tenants", "fair_queuing", "session_header",
					   "model_rewrites", NULL};
	if (cfg_check_keys(c, root, "", keys) < 0) return;
	get_name(c, root, "", "region", 1, NULL, name_ok, "a region name (letters, digits, . _ -)", cfg->region,
		 sizeof(cfg->region));

	const json_val *l = json_get(root, "listen");
	if (!l || json_is(l, JSON_NULL)) {
		str_copy(cfg->listen[0], "127.0.0.1:8080", GW_ADDR_LEN);
		cfg->n_listen = 1;
	} else if (json_is(l, JSON_STRING) || json_is(l, JSON_OBJECT)) {
		parse_listen_entry(c, l, "listen", cfg);
	} else if (json_is(l, JSON_ARRAY) && json_count(l) >= 1 && json_count(l) <= GW_MAX_LISTEN) {
		for (size_t i = 0; i < json_count(l); i++) {
			char p[64];
			cfg_path_index(p, sizeof(p), "listen", i);
			parse_listen_entry(c, json_at(l, i), p, cfg);
		}
	} else {
		cfg_fail(c, l, "listen", "must be \"host:port\", a {address, tls} mapping, or a list of 1 to %d of them",
			 GW_MAX_LISTEN);
	}

	const json_val *v;
	if ((v = json_get(root, "regions")) && !json_is(v, JSON_NULL)) parse_regions(c, v, cfg);
	if ((v = cfg_obj(c, root, "", "limits", 0))) parse_limits(c, v, &cfg->limits);
	cfg_duration_ms(c, root, "", "shutdown_grace", 0, cfg->shutdown_grace_ms, 0, 3600000, &cfg->shutdown_grace_ms);
	const char *al;
	if (cfg_str(c, root, "", "access_log", 0, "", &al) >= 0) {
		if (!strcmp(al, "off")) al = "";
		if (!strcmp(al, "stdout")) al = "-";
		if (strlen(al) >= sizeof(cfg->access_log)) cfg_fail(c, json_get(root, "access_log"), "access_log", "path too long");
		else str_copy(cfg->access_log, al, sizeof(cfg->access_log));
	}

	const char *iu;
	if (cfg_str(c, root, "", "io_uring", 0, "auto", &iu) >= 0) {
		if (!strcmp(iu, "auto")) cfg->io_uring = 1;
		else if (!strcmp(iu, "off")) cfg->io_uring = 0;
		else cfg_fail(c, json_get(root, "io_uring"), "io_uring", "must be auto or off");
	}

	if ((v = json_get(root, "objectives")) && !json_is(v, JSON_NULL)) config_objectives_parse(c, v, cfg);

	if ((v = json_get(root, "api_keys")) && !json_is(v, JSON_NULL)) {
		if (json_is(v, JSON_STRING)) {
			if (config_api_key_ok(c, v, "api_keys")) str_copy(cfg->api_keys[cfg->n_api_keys++], v->u.str.s, GW_KEY_LEN);
		} else if (!json_is(v, JSON_ARRAY) || json_count(v) == 0 || json_count(v) > GW_MAX_API_KEYS) {
			cfg_fail(c, v, "api_keys", "must be a key or a list of 1 to %d keys", GW_MAX_API_KEYS);
		} else {
			for (size_t i = 0; i < json_count(v); i++) {
				char p[32];
				snprintf(p, sizeof p, "api_keys[%zu]", i);
				if (config_api_key_ok(c, json_at(v, i), p))
					str_copy(cfg->api_keys[cfg->n_api_keys++], json_at(v, i)->u.str.s, GW_KEY_LEN);
			}
		}
	}

	if ((v = cfg_obj(c, root, "", "dashboard", 0))) {
		static const char *const dk[] = {"enabled", "max_viewers", NULL};
		int64_t mv;
		if (cfg_check_keys(c, v, "dashboard", dk) == 0) {
			cfg_bool(c, v, "dashboard", "enabled", 0, 1, &cfg->dashboard.enabled);
			if (cfg_int(c, v, "dashboard", "max_viewers", 0, 16, 1, 256, &mv) >= 0) cfg->dashboard.max_viewers = (uint32_t)mv;
		}
	}
	if ((v = json_get(root, "tenants")) && !json_is(v, JSON_NULL)) config_tenants_parse(c, v, cfg);
	if ((v = json_get(root, "model_rewrites")) && !json_is(v, JSON_NULL)) config_rewrites_parse(c, v, cfg);
	cfg_bool(c, root, "", "fair_queuing", 0, 1, &cfg->fair_queuing);
	const char *sh;
	if (cfg_str(c, root, "", "session_header", 0, cfg->session_header, &sh) >= 0) {
		size_t i;
		for (i = 0; sh[i] && sh[i] > 0x20 && sh[i] < 0x7f && sh[i] != ':'; i++)
			;
		if (sh[i] || i >= sizeof(cfg->session_header)) cfg_fail(c, json_get(root, "session_header"), "session_header", "must be a header name (\"\" = off)");
		else if (sh != cfg->session_header) str_copy(cfg->session_header, sh, sizeof(cfg->session_header));
	}

	const json_val *pools = cfg_arr(c, root, "", "pools", 1);
	if (pools && json_count(pools) == 0) cfg_fail(c, pools, "pools", "needs at least one pool");
	if (pools && json_count(pools) > GW_MAX_POOLS) cfg_fail(c, pools, "pools", "more than %d pools", GW_MAX_POOLS);
	if (pools && json_count(pools) && json_count(pools) <= GW_MAX_POOLS) {
		cfg->pools = calloc(json_count(pools), sizeof(*cfg->pools));
		if (!cfg->pools) {
			cfg_fail(c, pools, "pools", "out of memory");
			return;
		}
		for (size_t i = 0; i < json_count(pools); i++) {
			char p[64];
			cfg_path_index(p, sizeof(p), "pools", i);
			gw_pool_cfg *pc = &cfg->pools[cfg->n_pools++];
			parse_pool(c, cfg, json_at(pools, i), p, pc);
			for (size_t k = 0; k + 1 < cfg->n_pools; k++)
				if (pc->name[0] && !strcmp(cfg->pools[k].name, pc->name))
					cfg_fail(c, json_get(json_at(pools, i), "name"), p, "pool name \"%s\" is used twice", pc->name);
		}
	}
	if (c->failed) return;

	const json_val *routes = cfg_arr(c, root, "", "routes", 0);
	if (routes && json_count(routes) > GW_MAX_ROUTES) {
		cfg_fail(c, routes, "routes", "more than %d routes", GW_MAX_ROUTES);
		return;
	}
	if (routes && json_count(routes)) {
		cfg->routes = calloc(json_count(routes), sizeof(*cfg->routes));
		if (!cfg->routes) {
			cfg_fail(c, routes, "routes", "out of memory");
			return;
		}
		for (size_t i = 0; i < json_count(routes); i++) {
			char p[64];
			cfg_path_index(p, sizeof(p), "routes", i);
			parse_route(c, cfg, json_at(routes, i), p, &cfg->routes[cfg->n_routes++]);
		}
	}
}

/* Without routes: every path to the first pool that serves the model. */
static int default_routes(gw_config *cfg)
{
	if (cfg->n_routes) return 0;
	cfg->routes = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof(*cfg->routes));
	if (!cfg->routes) return -1;
	for (size_t i = 0; i < cfg->n_pools; i++) {
		gw_route_cfg *r = &cfg->routes[cfg->n_routes++];
		str_copy(r->prefix, "/", sizeof(r->prefix));
		str_copy(r->pool, cfg->pools[i].name, sizeof(r->pool));
		r->pool_index = (int)i;
	}
	return 0;
}

/* ------------------------------------------------------------ entry points */

gw_config *gw_config_parse(const char *text, size_t len, const char *name, char *err, size_t err_len)
{
	json_doc *doc = cfg_load_yaml_text(text, len, name, err, err_len);
	if (!doc) return NULL;
	gw_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		json_doc_free(doc);
		snprintf(err, err_len, "%s: out of memory", name);
		return NULL;
	}
	config_defaults(cfg);
	str_copy(cfg->file, name, sizeof(cfg->file));
	cfg_ctx c;
	cfg_ctx_init(&c, name);
	parse_root(&c, json_root(doc), cfg);
	json_doc_free(doc);
	if (!c.failed && default_routes(cfg) < 0) cfg_fail(&c, NULL, "routes", "out of memory");
	if (c.failed) {
		snprintf(err, err_len, "%s", c.err);
		gw_config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* A configuration file is read whole before it is parsed: this bounds it. */
#define GW_CONFIG_MAX_BYTES (4u << 20)

gw_config *gw_config_load(const char *path, char *err, size_t err_len)
{
	size_t len;
	char *text = util_read_file(path, GW_CONFIG_MAX_BYTES, &len, err, err_len);
	if (!text) return NULL;
	gw_config *cfg = gw_config_parse(text, len, path, err, err_len);
	free(text);
	return cfg;
}

gw_config *gw_config_from_flags(const char *const listen[], size_t n_listen, const char *region,
				const char *const endpoints[], size_t n_endpoints, char *err, size_t err_len)
{
	if (!region || !name_ok(region) || strlen(region) >= GW_NAME_LEN) {
		snprintf(err, err_len, "--region: \"%s\" is not a region name (letters, digits, . _ -)", region ? region : "");
		return NULL;
	}
	if (n_endpoints == 0) {
		snprintf(err, err_len, "no --endpoint given (and no -c FILE)");
		return NULL;
	}
	if (n_endpoints > GW_MAX_ENDPOINTS || n_listen > GW_MAX_LISTEN) {
		snprintf(err, err_len, "too many --endpoint or --listen flags");
		return NULL;
	}
	gw_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg) goto nomem;
	config_defaults(cfg);
	str_copy(cfg->file, "(flags)", sizeof(cfg->file));
	str_copy(cfg->region, region, sizeof(cfg->region));
	char host[GW_ADDR_LEN];
	uint16_t port;
	for (size_t i = 0; i < n_listen; i++) {
		if (strlen(listen[i]) >= GW_ADDR_LEN || cfg_parse_hostport(listen[i], 1, host, sizeof(host), &port) < 0) {
			snprintf(err, err_len, "--listen: \"%s\" is not host:port", listen[i]);
			goto fail;
		}
		str_copy(cfg->listen[cfg->n_listen++], listen[i], GW_ADDR_LEN);
	}
	if (!cfg->n_listen) str_copy(cfg->listen[cfg->n_listen++], "127.0.0.1:8080", GW_ADDR_LEN);
	cfg->pools = calloc(1, sizeof(*cfg->pools));
	if (!cfg->pools) goto nomem;
	cfg->n_pools = 1;
	gw_pool_cfg *p = &cfg->pools[0];
	gw_pool_cfg_defaults(p);
	str_copy(p->name, "default", sizeof(p->name));
	p->endpoints = calloc(n_endpoints, sizeof(*p->endpoints));
	if (!p->endpoints) goto nomem;
	for (size_t i = 0; i < n_endpoints; i++) {
		/* host:port@region#weight */
		char tmp[512];
		if (strlen(endpoints[i]) >= sizeof(tmp)) {
			snprintf(err, err_len, "--endpoint: too long");
			goto fail;
		}
		str_copy(tmp, endpoints[i], sizeof(tmp));
		gw_endpoint_cfg *e = &p->endpoints[p->n_endpoints];
		e->weight = 1;
		char *hash = strchr(tmp, '#');
		if (hash) {
			int64_t w;
			*hash = 0;
			if (parse_int64(hash + 1, 1, 1000, &w) < 0) {
				snprintf(err, err_len, "--endpoint %s: weight must be 1..1000", endpoints[i]);
				goto fail;
			}
			e->weight = (uint32_t)w;
		}
		char *at = strrchr(tmp, '@');
		const char *reg = region;
		e->tls = address_scheme(tmp);
		if (at) at = strrchr(tmp, '@');
		if (at) {
			*at = 0;
			reg = at + 1;
		}
		if (!name_ok(reg) || strlen(reg) >= GW_NAME_LEN) {
			snprintf(err, err_len, "--endpoint %s: \"%s\" is not a region name", endpoints[i], reg);
			goto fail;
		}
		if (strlen(tmp) >= GW_ADDR_LEN || cfg_parse_hostport(tmp, 0, host, sizeof(host), &port) < 0) {
			snprintf(err, err_len, "--endpoint %s: expected host:port@region", endpoints[i]);
			goto fail;
		}
		for (size_t k = 0; k < p->n_endpoints; k++)
			if (!strcmp(p->endpoints[k].address, tmp)) {
				snprintf(err, err_len, "--endpoint %s: given twice", tmp);
				goto fail;
			}
		str_copy(e->address, tmp, sizeof(e->address));
		str_copy(e->region, reg, sizeof(e->region));
		p->n_endpoints++;
	}
	if (default_routes(cfg) < 0) goto nomem;
	return cfg;
nomem:
	snprintf(err, err_len, "out of memory");
fail:
	gw_config_free(cfg);
	return NULL;
}

void gw_config_free(gw_config *c)
{
	if (!c) return;
	for (size_t i = 0; i < c->n_pools; i++) free(c->pools[i].endpoints);
	free(c->pools);
	free(c->routes);
	free(c->tenants);
	free(c->rewrites);
	free(c);
}

int gw_config_pool_index(const gw_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_pools; i++)
		if (!strcmp(c->pools[i].name, name)) return (int)i;
	return -1;
}

int64_t gw_config_region_latency_ms(const gw_config *c, const char *region)
{
	if (!strcmp(region, c->region)) return 0;
	for (size_t i = 0; i < c->n_regions; i++)
		if (!strcmp(c->regions[i].name, region)) return (int64_t)c->regions[i].latency_ms;
	return -1;
}
