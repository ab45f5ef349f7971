/*
 * config_picker.h — the picker's part of the configuration (config.h):
 * defaults and strict parsing of a pool's `picker:` section, the extra keys of
 * `metrics:` (timeout, stale, metric), the top-level `objectives:` and a
 * route's `objective:`. Called by config.c; depends on src/core only, like it.
 */
#ifndef GATEWAY_CONFIG_PICKER_H
#define GATEWAY_CONFIG_PICKER_H

#include "core/cfg.h"
#include "gateway/config.h"

/* Defaults of the picker and of the scrape keys added here. */
void config_picker_defaults(gw_pool_cfg *p);
/* pools[i].picker (v a mapping). */
void config_picker_parse(cfg_ctx *c, const json_val *v, const char *path, gw_picker_cfg *out);
/* The keys of pools[i].metrics this file owns; the allowed-key list is
 * CONFIG_SCRAPE_KEYS. */
#define CONFIG_SCRAPE_KEYS "timeout", "stale", "metric"
void config_scrape_parse(cfg_ctx *c, const json_val *m, const char *path, gw_scrape_cfg *out);
/* The top-level objectives (a sequence). */
void config_objectives_parse(cfg_ctx *c, const json_val *v, gw_config *cfg);
/* routes[i].objective, once the objectives are known. */
void config_route_objective(cfg_ctx *c, const json_val *r, const char *path, const gw_config *cfg, gw_route_cfg *out);

#endif
