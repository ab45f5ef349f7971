/*
 * score_inflight.c — the in-flight scorer: requests the gateway itself has
 * on each endpoint now, per unit of weight, normalised over the candidates
 * (the least busy scores 1, the busiest 0). It moves with every request, so a
 * burst that arrives between two scrapes still spreads.
 */
#include "gateway/picker.h"

static double load(const pk_view *v) { return (double)v->in_flight / (double)(v->weight ? v->weight : 1); }

void score_inflight(pk_view *const cand[], size_t n, const pk_params *p)
{
	double lo = 0, hi = 0;
	for (size_t i = 0; i < n; i++) {
		double l = load(cand[i]);
		if (i == 0 || l < lo) lo = l;
		if (i == 0 || l > hi) hi = l;
	}
	for (size_t i = 0; i < n; i++)
		cand[i]->score[PK_S_INFLIGHT] = hi > lo ? (hi - load(cand[i])) / (hi - lo) : 1;
}
