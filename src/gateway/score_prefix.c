/*
 * score_prefix.c — the prefix-affinity scorer: the share of the request's
 * prompt blocks that the endpoint probably holds in its KV cache (the longest
 * prefix of the request's block chain found in the endpoint's index,
 * prefix_index.h), 0..1.
 *
 * The load guard: affinity never piles traffic onto a full endpoint. An
 * endpoint over prefix_guard utilization (stale metrics count as full), or
 * with more than prefix_guard_in_flight requests above the least busy
 * candidate, scores 0 here, so the other scorers spread the conversation
 * (it comes back once the endpoint has room: "sticky until saturated").
 */
#include "gateway/picker.h"

void score_prefix(pk_view *const cand[], size_t n, const pk_params *p)
{
	const gw_picker_cfg *c = p->cfg;
	double guard = c->prefix_guard < 0 ? c->max_utilization : c->prefix_guard;
	uint32_t least = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || cand[i]->in_flight < least) least = cand[i]->in_flight;
	for (size_t i = 0; i < n; i++) {
		pk_view *v = cand[i];
		v->guarded = 0;
		if (!p->request_blocks) {
			v->score[PK_S_PREFIX] = 0;
			continue;
		}
		double s = (double)v->prefix_blocks / (double)p->request_blocks;
		if (s > 1) s = 1;
		if (s > 0 && (v->stale || v->util > guard ||
			      (c->prefix_guard_in_flight && v->in_flight > least + c->prefix_guard_in_flight))) {
			v->guarded = 1;
			s = 0;
		}
		v->score[PK_S_PREFIX] = s;
	}
}
