/*
 * pick.h — which endpoint of a pool serves the next attempt of a request.
 *
 * The one decision the proxy asks for, behind one function, so a smarter
 * picker (scraped load, prefix affinity: a pipeline of filters and scorers,
 * each in its own file) can replace the body without touching the proxy.
 * Today's rule: never an endpoint this request already tried; only available
 * endpoints (health not DOWN, not passively ejected — unless every one is);
 * the lowest region rank first (own region, then nearest); within it, the
 * least in-flight requests per unit of weight, ties to the least picked so
 * far, then to the first in configuration order.
 */
#ifndef GATEWAY_PICK_H
#define GATEWAY_PICK_H

#include <stdint.h>
#include "gateway/gateway.h"

/* What the picker knows of the request. */
typedef struct pick_ctx {
	const uint64_t *tried;         /* bitmap over pool->eps indexes */
	const char *model;
	uint64_t now_ms;
} pick_ctx;

/* The index into pool->eps of the endpoint to try, or -1 when none is left. */
int pick_endpoint(const gw_pool *pool, const pick_ctx *ctx);

static inline int pick_tried(const uint64_t *bits, int i) { return (int)((bits[i >> 6] >> (i & 63)) & 1); }
static inline void pick_mark(uint64_t *bits, int i) { bits[i >> 6] |= 1ull << (i & 63); }

#endif
