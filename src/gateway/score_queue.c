/*
 * score_queue.c — the queue-depth scorer: the requests waiting in each
 * server's queue (as last scraped), normalised over the candidates: the
 * shortest queue scores 1, the longest 0, all equal 1.
 */
#include "gateway/picker.h"

void score_queue(pk_view *const cand[], size_t n, const pk_params *p)
{
	double lo = 0, hi = 0;
	for (size_t i = 0; i < n; i++) {
		double w = cand[i]->waiting;
		if (i == 0 || w < lo) lo = w;
		if (i == 0 || w > hi) hi = w;
	}
	for (size_t i = 0; i < n; i++)
		cand[i]->score[PK_S_QUEUE] = hi > lo ? (hi - cand[i]->waiting) / (hi - lo) : 1;
}
