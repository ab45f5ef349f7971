/*
 * pick.c — the endpoint picker of pick.h: the picker's pipeline (picker.h).
 */
#include "gateway/pick.h"
#include "gateway/picker.h"

/* 1 when a is a better choice than b (same region rank). Weighted least
 * in-flight compared by cross-multiplication: (a+1)/wa < (b+1)/wb. */
static int better(const gw_endpoint *a, const gw_endpoint *b)
{
	uint64_t la = (uint64_t)(a->in_flight + 1) * b->weight;
	uint64_t lb = (uint64_t)(b->in_flight + 1) * a->weight;
	if (la != lb) return la < lb;
	uint64_t pa = a->picked_total * b->weight, pb = b->picked_total * a->weight;
	return pa < pb;
}

static int pick_pass(const gw_pool *pool, const pick_ctx *ctx, int ignore_ejection)
{
	int best = -1;
	for (size_t i = 0; i < pool->n_eps; i++) {
		const gw_endpoint *e = pool->eps[i];
		if (pick_tried(ctx->tried, (int)i)) continue;
		if (!health_available(e, ctx->now_ms, ignore_ejection)) continue;
		if (best < 0) { best = (int)i; continue; }
		const gw_endpoint *b = pool->eps[best];
		if (e->region_rank < b->region_rank || (e->region_rank == b->region_rank && better(e, b)))
			best = (int)i;
	}
	return best;
}

int pick_endpoint(const gw_pool *pool, const pick_ctx *ctx)
{
	return picker_pick(pool, ctx);
}

/* The rule before the picker (locality, then weighted least in-flight), kept
 * for comparison in tests and benchmarks. */
int pick_endpoint_simple(const gw_pool *pool, const pick_ctx *ctx)
{
	int i = pick_pass(pool, ctx, 0);
	if (i < 0) i = pick_pass(pool, ctx, 1); /* every one ejected: ejection cannot empty a pool */
	return i;
}
