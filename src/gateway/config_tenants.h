/*
 * config_tenants.h — the tenants' part of the configuration (config.h): the
 * top-level `tenants:` sequence, each a name, its API keys and its limits;
 * and the traffic splits between models, `model_rewrites:`.
 * Called by config.c; depends on src/core only, like it.
 */
#ifndef GATEWAY_CONFIG_TENANTS_H
#define GATEWAY_CONFIG_TENANTS_H

#include "core/cfg.h"
#include "gateway/config.h"

/* The top-level tenants (v a sequence), after api_keys: a key may belong to
 * one tenant only, and not to the anonymous api_keys too. */
void config_tenants_parse(cfg_ctx *c, const json_val *v, gw_config *cfg);
/* The top-level model_rewrites (v a sequence of {model, targets: [{model, weight}]}). */
void config_rewrites_parse(cfg_ctx *c, const json_val *v, gw_config *cfg);
/* 1 when v is a usable API key (1-255 visible ASCII characters), else 0
 * with the error reported at path (config.c). */
int config_api_key_ok(cfg_ctx *c, const json_val *v, const char *path);

#endif
