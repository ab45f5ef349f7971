/*
 * pick.h — which endpoint of a pool serves the next attempt of a request.
 *
 * The one decision the proxy asks for, behind one function, so a smarter
 * picker (scraped load, prefix affinity: a pipeline of filters and scorers,
 * each in its own file) can replace the body without touching the proxy.
 * The body is the picker's pipeline (picker.h): never an endpoint this
 * request already tried, never a DOWN one; the own region first while it has
 * capacity (waterfall with hysteresis); filters and scorers (KV headroom,
 * queue, in flight, prefix affinity); ties to the least loaded, then the
 * least picked, then the first in configuration order.
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
	struct picker_req *req;        /* the request's prefix chain etc.; may be NULL */
} pick_ctx;

/* The index into pool->eps of the endpoint to try, or -1 when none is left. */
int pick_endpoint(const gw_pool *pool, const pick_ctx *ctx);
/* The same by locality and weighted least in-flight only (no scraped load). */
int pick_endpoint_simple(const gw_pool *pool, const pick_ctx *ctx);

static inline int pick_tried(const uint64_t *bits, int i) { return (int)((bits[i >> 6] >> (i & 63)) & 1); }
static inline void pick_mark(uint64_t *bits, int i) { bits[i >> 6] |= 1ull << (i & 63); }

#endif
