/*
 * config_tenants.c — strict parsing of the top-level `tenants:` (config_tenants.h):
 *
 *   tenants:
 *     - name: team-a
 *       api_keys: [KEY, ...]
 *       priority: 0
 *       limits: { requests_per_second: 5, tokens_per_minute: 20000, max_in_flight: 8 }
 *
 * Names become metric label values, so they are checked like pool names and
 * their number is capped (GW_MAX_TENANTS): the label's cardinality is bounded
 * by the configuration.
 */
#include "gateway/config_tenants.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tenant_name_ok(const char *s)
{
	if (!*s || !strcmp(s, "anonymous")) return 0; /* "anonymous" is the label of keyless requests */
	for (const char *p = s; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* 1 when key is already someone's: the anonymous api_keys, a tenant before,
 * or the one being read (cfg->tenants[cfg->n_tenants]). */
static int key_taken(const gw_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->n_api_keys; i++)
		if (!strcmp(cfg->api_keys[i], key)) return 1;
	for (size_t t = 0; t <= cfg->n_tenants; t++) {
		const gw_tenant_cfg *tc = &cfg->tenants[t];
		for (size_t i = 0; i < tc->n_api_keys; i++)
			if (!strcmp(tc->api_keys[i], key)) return 1;
	}
	return 0;
}

static void parse_keys(cfg_ctx *c, const json_val *o, const char *path, gw_config *cfg, gw_tenant_cfg *t)
{
	char full[96];
	const json_val *v = json_get(o, "api_keys");
	cfg_path(full, sizeof(full), path, "api_keys");
	if (!v || json_is(v, JSON_NULL)) {
		cfg_fail(c, o, full, "is required: the keys that identify the tenant");
		return;
	}
	if (!json_is(v, JSON_ARRAY) || json_count(v) == 0 || json_count(v) > GW_MAX_TENANT_KEYS) {
		cfg_fail(c, v, full, "must be a list of 1 to %d keys", GW_MAX_TENANT_KEYS);
		return;
	}
	for (size_t i = 0; i < json_count(v); i++) {
		char p[128];
		cfg_path_index(p, sizeof(p), full, i);
		const json_val *k = json_at(v, i);
		if (!config_api_key_ok(c, k, p)) continue;
		if (key_taken(cfg, k->u.str.s)) {
			cfg_fail(c, k, p, "this key is used twice (each key names one tenant)");
			continue;
		}
		str_copy(t->api_keys[t->n_api_keys++], k->u.str.s, GW_KEY_LEN);
	}
}

void config_tenants_parse(cfg_ctx *c, const json_val *v, gw_config *cfg)
{
	if (!json_is(v, JSON_ARRAY)) {
		cfg_fail(c, v, "tenants", "must be a sequence of {name, api_keys, limits}");
		return;
	}
	if (json_count(v) > GW_MAX_TENANTS) {
		cfg_fail(c, v, "tenants", "more than %d tenants", GW_MAX_TENANTS);
		return;
	}
	if (!json_count(v)) return;
	cfg->tenants = calloc(json_count(v), sizeof(*cfg->tenants));
	if (!cfg->tenants) {
		cfg_fail(c, v, "tenants", "out of memory");
		return;
	}
	static const char *const keys[] = {"name", "api_keys", "limits", "priority", NULL};
	static const char *const lkeys[] = {"requests_per_second", "tokens_per_minute", "max_in_flight", NULL};
	for (size_t i = 0; i < json_count(v); i++) {
		char path[64], full[96];
		cfg_path_index(path, sizeof(path), "tenants", i);
		const json_val *o = json_at(v, i);
		if (!json_is(o, JSON_OBJECT)) {
			cfg_fail(c, o, path, "must be a mapping {name, api_keys, limits}");
			continue;
		}
		if (cfg_check_keys(c, o, path, keys) < 0) continue;
		gw_tenant_cfg *t = &cfg->tenants[cfg->n_tenants];
		const char *name;
		if (cfg_str(c, o, path, "name", 1, NULL, &name) <= 0) continue;
		cfg_path(full, sizeof(full), path, "name");
		if (strlen(name) >= sizeof(t->name) || !tenant_name_ok(name)) {
			cfg_fail(c, json_get(o, "name"), full,
				 "\"%.64s\" is not a tenant name (letters, digits, . _ -; not \"anonymous\")", name);
			continue;
		}
		for (size_t k = 0; k < cfg->n_tenants; k++)
			if (!strcmp(cfg->tenants[k].name, name)) cfg_fail(c, json_get(o, "name"), full, "\"%s\" is used twice", name);
		str_copy(t->name, name, sizeof(t->name));
		parse_keys(c, o, path, cfg, t);
		int64_t n;
		if (cfg_int(c, o, path, "priority", 0, 0, -1000000, 1000000, &n) >= 0) t->priority = (int32_t)n;
		const json_val *l = json_get(o, "limits");
		if (l && !json_is(l, JSON_NULL)) {
			char lp[96];
			cfg_path(lp, sizeof(lp), path, "limits");
			if (!json_is(l, JSON_OBJECT)) {
				cfg_fail(c, l, lp, "must be a mapping {requests_per_second, tokens_per_minute, max_in_flight}");
			} else if (cfg_check_keys(c, l, lp, lkeys) == 0) {
				cfg_double(c, l, lp, "requests_per_second", 0, 0, 0, 1e6, &t->requests_per_second);
				if (cfg_int(c, l, lp, "tokens_per_minute", 0, 0, 0, (int64_t)1 << 40, &n) >= 0)
					t->tokens_per_minute = (uint64_t)n;
				if (cfg_int(c, l, lp, "max_in_flight", 0, 0, 0, 1000000, &n) >= 0) t->max_in_flight = (uint32_t)n;
			}
		}
		cfg->n_tenants++;
	}
}

/* A model name as a request may carry it: 1 to GW_NAME_LEN - 1 bytes, no
 * control characters (it is written back into JSON bodies). */
static int model_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n >= GW_NAME_LEN) return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20) return 0;
	return 1;
}

void config_rewrites_parse(cfg_ctx *c, const json_val *v, gw_config *cfg)
{
	if (!json_is(v, JSON_ARRAY) || json_count(v) > GW_MAX_REWRITES) {
		cfg_fail(c, v, "model_rewrites", "must be a sequence of at most %d {model, targets}", GW_MAX_REWRITES);
		return;
	}
	if (!json_count(v)) return;
	cfg->rewrites = calloc(json_count(v), sizeof(*cfg->rewrites));
	if (!cfg->rewrites) {
		cfg_fail(c, v, "model_rewrites", "out of memory");
		return;
	}
	static const char *const keys[] = {"model", "targets", NULL};
	static const char *const tkeys[] = {"model", "weight", NULL};
	for (size_t i = 0; i < json_count(v); i++) {
		char path[64], full[128];
		cfg_path_index(path, sizeof(path), "model_rewrites", i);
		const json_val *o = json_at(v, i);
		if (!json_is(o, JSON_OBJECT)) {
			cfg_fail(c, o, path, "must be a mapping {model, targets}");
			continue;
		}
		if (cfg_check_keys(c, o, path, keys) < 0) continue;
		gw_rewrite_cfg *rw = &cfg->rewrites[cfg->n_rewrites];
		const char *name;
		if (cfg_str(c, o, path, "model", 1, NULL, &name) <= 0) continue;
		cfg_path(full, sizeof(full), path, "model");
		if (!model_name_ok(name)) {
			cfg_fail(c, json_get(o, "model"), full, "is not a model name");
			continue;
		}
		for (size_t k = 0; k < cfg->n_rewrites; k++)
			if (!strcmp(cfg->rewrites[k].model, name)) cfg_fail(c, json_get(o, "model"), full, "\"%.64s\" is rewritten twice", name);
		str_copy(rw->model, name, sizeof(rw->model));
		const json_val *t = json_get(o, "targets");
		cfg_path(full, sizeof(full), path, "targets");
		if (!t || !json_is(t, JSON_ARRAY) || !json_count(t) || json_count(t) > GW_MAX_REWRITE_TARGETS) {
			cfg_fail(c, t ? t : o, full, "must be a list of 1 to %d {model, weight}", GW_MAX_REWRITE_TARGETS);
			continue;
		}
		uint64_t sum = 0;
		for (size_t k = 0; k < json_count(t); k++) {
			char tp[160], tf[192];
			cfg_path_index(tp, sizeof(tp), full, k);
			const json_val *x = json_at(t, k);
			if (!json_is(x, JSON_OBJECT)) {
				cfg_fail(c, x, tp, "must be a mapping {model, weight}");
				continue;
			}
			if (cfg_check_keys(c, x, tp, tkeys) < 0) continue;
			const char *tm;
			int64_t w;
			if (cfg_str(c, x, tp, "model", 1, NULL, &tm) <= 0) continue;
			cfg_path(tf, sizeof(tf), tp, "model");
			if (!model_name_ok(tm)) {
				cfg_fail(c, json_get(x, "model"), tf, "is not a model name");
				continue;
			}
			if (cfg_int(c, x, tp, "weight", 1, 0, 0, 1000000, &w) <= 0) continue;
			str_copy(rw->targets[rw->n_targets], tm, GW_NAME_LEN);
			rw->weights[rw->n_targets++] = (uint32_t)w;
			sum += (uint64_t)w;
		}
		if (!sum && rw->n_targets == json_count(t)) cfg_fail(c, t, full, "the weights add up to 0");
		cfg->n_rewrites++;
	}
}
