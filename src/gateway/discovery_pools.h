/*
 * discovery_pools.h — the pools of a configuration whose `resolve:` entries
 * are expanded into the addresses they resolve to, and kept so
 * (discovery_pools.c; the resolvers are discovery.h).
 */
#ifndef GATEWAY_DISCOVERY_POOLS_H
#define GATEWAY_DISCOVERY_POOLS_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

/* gw_pools_apply for cfg with each `resolve:` entry expanded into the addresses
 * it resolves to, and kept so: each change of a set applies again (new
 * addresses join after their checks pass, gone ones drain). Discoveries of
 * entries that did not change are kept. Returns 0, or -1 with err (then what
 * ran before stays). */
int gw_discovery_apply(gw *g, const gw_config *cfg, char *err, size_t err_len);
void gw_discovery_free(gw *g);

#endif
