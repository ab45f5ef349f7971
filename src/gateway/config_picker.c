/*
 * config_picker.c — the picker's configuration keys (config_picker.h). What
 * each key means is in docs/CONFIG.md; the defaults are set here only.
 */
#include "gateway/config_picker.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void config_picker_defaults(gw_pool_cfg *p)
{
	p->metrics.timeout_ms = 1000;
	p->metrics.stale_ms = 2000;
	p->metrics.metric[0] = 0;
	gw_picker_cfg *k = &p->picker;
	k->max_utilization = 0.6;
	k->return_margin = 0.1;
	k->region_hold_ms = 2000;
	k->max_waiting = 0;
	k->weight_kv = 1;
	k->weight_queue = 1;
	k->weight_inflight = 1;
	k->weight_prefix = 3;
	k->prefix_block_chars = 64;
	k->prefix_max_blocks = 256;
	k->prefix_index_blocks = 0;
	k->prefix_guard = -1; /* < 0: the same as max_utilization */
	k->prefix_guard_in_flight = 0;
	k->explain = 1;
	k->retry_after_ms = 1000;
}

/* Prometheus metric names, or the aliases of the KV usage. */
static int metric_ok(const char *s)
{
	if (!strcmp(s, "kv-cache") || !strcmp(s, "tpu-cache")) return 1;
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == ':')) return 0;
	for (const char *q = s; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_' ||
		      *q == ':'))
			return 0;
	return 1;
}

void config_scrape_parse(cfg_ctx *c, const json_val *m, const char *path, gw_scrape_cfg *out)
{
	cfg_duration_ms(c, m, path, "timeout", 0, out->timeout_ms, 1, 600000, &out->timeout_ms);
	cfg_duration_ms(c, m, path, "stale", 0, out->stale_ms, 1, 3600000, &out->stale_ms);
	const char *s;
	if (cfg_str(c, m, path, "metric", 0, out->metric, &s) > 0) {
		char full[256];
		cfg_path(full, sizeof(full), path, "metric");
		if (strlen(s) >= sizeof(out->metric) || !metric_ok(s))
			cfg_fail(c, json_get(m, "metric"), full,
				 "\"%.64s\" is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, or kv-cache / tpu-cache)", s);
		else
			str_copy(out->metric, s, sizeof(out->metric));
	}
	if (out->stale_ms < out->interval_ms) {
		char full[256];
		cfg_path(full, sizeof(full), path, "stale");
		cfg_fail(c, json_get(m, "stale"), full, "is shorter than the scrape interval");
	}
	if (out->timeout_ms > out->stale_ms) {
		char full[256];
		cfg_path(full, sizeof(full), path, "timeout");
		cfg_fail(c, json_get(m, "timeout"), full, "is longer than stale (a hung scrape would never count as stale)");
	}
}

static void parse_weights(cfg_ctx *c, const json_val *w, const char *path, gw_picker_cfg *out)
{
	static const char *const keys[] = {"kv", "queue", "in_flight", "prefix", NULL};
	if (cfg_check_keys(c, w, path, keys) < 0) return;
	cfg_double(c, w, path, "kv", 0, out->weight_kv, 0, 1000, &out->weight_kv);
	cfg_double(c, w, path, "queue", 0, out->weight_queue, 0, 1000, &out->weight_queue);
	cfg_double(c, w, path, "in_flight", 0, out->weight_inflight, 0, 1000, &out->weight_inflight);
	cfg_double(c, w, path, "prefix", 0, out->weight_prefix, 0, 1000, &out->weight_prefix);
}

static void parse_prefix(cfg_ctx *c, const json_val *p, const char *path, gw_picker_cfg *out)
{
	static const char *const keys[] = {"block_chars", "max_blocks", "index_blocks", "guard", "guard_in_flight", NULL};
	if (cfg_check_keys(c, p, path, keys) < 0) return;
	int64_t v;
	if (cfg_int(c, p, path, "block_chars", 0, out->prefix_block_chars, 8, 256, &v) >= 0) out->prefix_block_chars = (uint32_t)v;
	if (cfg_int(c, p, path, "max_blocks", 0, out->prefix_max_blocks, 0, 1024, &v) >= 0) out->prefix_max_blocks = (uint32_t)v;
	if (cfg_int(c, p, path, "index_blocks", 0, out->prefix_index_blocks, 0, 1 << 22, &v) >= 0)
		out->prefix_index_blocks = (uint32_t)v;
	if (json_get(p, "guard")) cfg_double(c, p, path, "guard", 0, 1, 0, 1, &out->prefix_guard);
	if (cfg_int(c, p, path, "guard_in_flight", 0, out->prefix_guard_in_flight, 0, 1000000, &v) >= 0)
		out->prefix_guard_in_flight = (uint32_t)v;
	if (out->prefix_index_blocks && out->prefix_index_blocks < 16) {
		char full[256];
		cfg_path(full, sizeof(full), path, "index_blocks");
		cfg_fail(c, json_get(p, "index_blocks"), full, "must be 0 (the server's KV blocks) or at least 16");
	}
}

void config_picker_parse(cfg_ctx *c, const json_val *v, const char *path, gw_picker_cfg *out)
{
	static const char *const keys[] = {"max_utilization", "return_margin", "region_hold", "max_waiting", "weights",
					   "prefix", "explain", "retry_after", NULL};
	if (cfg_check_keys(c, v, path, keys) < 0) return;
	cfg_double(c, v, path, "max_utilization", 0, out->max_utilization, 0, 1, &out->max_utilization);
	cfg_double(c, v, path, "return_margin", 0, out->return_margin, 0, 1, &out->return_margin);
	cfg_duration_ms(c, v, path, "region_hold", 0, out->region_hold_ms, 0, 3600000, &out->region_hold_ms);
	cfg_double(c, v, path, "max_waiting", 0, out->max_waiting, 0, 1e9, &out->max_waiting);
	cfg_bool(c, v, path, "explain", 0, out->explain, &out->explain);
	cfg_duration_ms(c, v, path, "retry_after", 0, out->retry_after_ms, 0, 3600000, &out->retry_after_ms);
	char sub[256];
	const json_val *w;
	cfg_path(sub, sizeof(sub), path, "weights");
	if ((w = cfg_obj(c, v, path, "weights", 0))) parse_weights(c, w, sub, out);
	cfg_path(sub, sizeof(sub), path, "prefix");
	if ((w = cfg_obj(c, v, path, "prefix", 0))) parse_prefix(c, w, sub, out);
	if (out->return_margin > out->max_utilization) {
		cfg_path(sub, sizeof(sub), path, "return_margin");
		cfg_fail(c, json_get(v, "return_margin"), sub, "is larger than max_utilization (a spilled region could never return)");
	}
	if (out->weight_kv + out->weight_queue + out->weight_inflight + out->weight_prefix <= 0) {
		cfg_path(sub, sizeof(sub), path, "weights");
		cfg_fail(c, json_get(v, "weights"), sub, "every weight is 0: nothing would tell endpoints apart");
	}
}

static int objective_name_ok(const char *s)
{
	if (!*s) return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-'))
			return 0;
	return 1;
}

void config_objectives_parse(cfg_ctx *c, const json_val *v, gw_config *cfg)
{
	if (!json_is(v, JSON_ARRAY)) {
		cfg_fail(c, v, "objectives", "must be a sequence of {name, priority}");
		return;
	}
	if (json_count(v) > GW_MAX_OBJECTIVES) {
		cfg_fail(c, v, "objectives", "more than %d objectives", GW_MAX_OBJECTIVES);
		return;
	}
	static const char *const keys[] = {"name", "priority", "queue", "queue_timeout", NULL};
	for (size_t i = 0; i < json_count(v); i++) {
		char path[64], full[96];
		cfg_path_index(path, sizeof(path), "objectives", i);
		const json_val *o = json_at(v, i);
		if (!json_is(o, JSON_OBJECT)) {
			cfg_fail(c, o, path, "must be a mapping {name, priority}");
			continue;
		}
		if (cfg_check_keys(c, o, path, keys) < 0) continue;
		gw_objective_cfg *ob = &cfg->objectives[cfg->n_objectives];
		const char *name;
		int64_t n;
		if (cfg_str(c, o, path, "name", 1, NULL, &name) <= 0) continue;
		cfg_path(full, sizeof(full), path, "name");
		if (strlen(name) >= sizeof(ob->name) || !objective_name_ok(name)) {
			cfg_fail(c, json_get(o, "name"), full, "\"%.64s\" is not an objective name (letters, digits, . _ -)", name);
			continue;
		}
		for (size_t k = 0; k < cfg->n_objectives; k++)
			if (!strcmp(cfg->objectives[k].name, name)) cfg_fail(c, json_get(o, "name"), full, "\"%s\" is used twice", name);
		str_copy(ob->name, name, sizeof(ob->name));
		if (cfg_int(c, o, path, "priority", 1, 0, -1000000, 1000000, &n) >= 0) ob->priority = (int32_t)n;
		if (cfg_int(c, o, path, "queue", 0, 0, 0, 100000, &n) >= 0) ob->queue = (uint32_t)n;
		cfg_duration_ms(c, o, path, "queue_timeout", 0, 5000, 1, 3600000, &ob->queue_timeout_ms);
		cfg->n_objectives++;
	}
}

void config_route_objective(cfg_ctx *c, const json_val *r, const char *path, const gw_config *cfg, gw_route_cfg *out)
{
	const char *s;
	if (cfg_str(c, r, path, "objective", 0, "", &s) <= 0) return;
	char full[256];
	cfg_path(full, sizeof(full), path, "objective");
	for (size_t i = 0; i < cfg->n_objectives; i++)
		if (!strcmp(cfg->objectives[i].name, s)) {
			str_copy(out->objective, s, sizeof(out->objective));
			out->objective_index = (int)i + 1;
			return;
		}
	cfg_fail(c, json_get(r, "objective"), full, "no objective is named \"%.64s\" (see objectives)", s);
}
