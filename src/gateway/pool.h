/*
 * pool.h — pools and endpoints built from a configuration (a reload keeps
 * what stays), their reference counts, and routing a request to a pool
 * (pool.c). The structs are in gateway.h.
 */
#ifndef GATEWAY_POOL_H
#define GATEWAY_POOL_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

/* Builds g->pools from cfg (reusing endpoints of the current pools that have the
 * same pool name and address). Returns 0, or -1 with err. On success the old
 * pools are released; endpoints that are in no pool any more drain. */
int gw_pools_apply(gw *g, const gw_config *cfg, char *err, size_t err_len);
void gw_pool_ref(gw_pool *p);
void gw_pool_unref(gw_pool *p);
void gw_endpoint_ref(gw_endpoint *e);
void gw_endpoint_unref(gw_endpoint *e);
/* The pool a request goes to: the first route whose prefix matches path and
 * whose model (or pool) serves model. Returns the pool, or NULL. */
gw_pool *gw_route(gw *g, const char *path, const char *model);
/* The pool of a request without `model` (vLLM and llama.cpp default it to the
 * model they serve): the one pool every route matching path leads to; NULL
 * when none or several do. */
gw_pool *gw_route_default(gw *g, const char *path);
/* Stored responses (the Responses API keeps them on the server that made
 * them): remember which pool answered id; the pool of id, or NULL. */
void gw_response_remember(gw *g, const char *id, size_t n, const gw_pool *p);
gw_pool *gw_response_pool(gw *g, const char *id, size_t n);
/* The pool of the first route that takes path, whatever the model. */
gw_pool *gw_route_first(gw *g, const char *path);
/* 1 when some route names path among its extra_paths (config.h). */
int gw_route_extra_path(const gw *g, const char *path);
/* 1 when the pool serves model: its list names it, or it has no list. */
int gw_pool_serves(const gw_pool *p, const char *model);
/* Number of endpoints in state UP across every pool. */
size_t gw_healthy_endpoints(const gw *g);
/* Frees every pool and endpoint (at exit). */
void gw_pools_free(gw *g);

#endif
