/*
 * filter_utilization.c — the picker's capacity filter: endpoints at or under
 * the pool's max utilization (the balancing metric; stale metrics count as 1)
 * and, when max_waiting is set, with at most that many requests queued.
 * Soft: when every candidate is full, all stay (and the pool is saturated).
 */
#include "gateway/picker.h"

int filter_utilization(const pk_view *v, const pk_params *p)
{
	const gw_picker_cfg *c = p->cfg;
	if (v->stale || v->util > c->max_utilization) return 0;
	if (c->max_waiting > 0 && v->waiting > c->max_waiting) return 0;
	return 1;
}
