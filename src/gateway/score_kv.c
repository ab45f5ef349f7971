/*
 * score_kv.c — the KV-cache headroom scorer: 1 - utilization (the balancing
 * metric, the KV-cache usage by default). An absolute score: an empty cache
 * is worth the same whatever the others hold.
 */
#include "gateway/picker.h"

void score_kv(pk_view *const cand[], size_t n, const pk_params *p)
{
	for (size_t i = 0; i < n; i++) {
		double u = cand[i]->stale ? 1 : cand[i]->util;
		cand[i]->score[PK_S_KV] = u < 0 ? 1 : u > 1 ? 0 : 1 - u;
	}
}
