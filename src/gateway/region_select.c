/*
 * region_select.c — the waterfall's hysteresis (region_select.h): one flag and
 * one timestamp per region, moved only here.
 */
#include "gateway/region_select.h"

int region_update(region_state *rs, int rank, double best_util, uint32_t available, double max_util,
		  double return_margin, uint64_t hold_ms, uint64_t now_ms)
{
	if (rank < 0) return 0;
	if (rank >= REGION_MAX) rank = REGION_MAX - 1;
	region_entry *e = &rs->r[rank];
	e->best_util = available ? best_util : 2;
	e->available = available;
	if (!e->spilled) {
		if (!available || best_util > max_util) {
			e->spilled = 1;
			e->since_ms = now_ms;
			e->spills_total++;
		}
	} else {
		double back = max_util - return_margin;
		if (available && best_util <= back && now_ms - e->since_ms >= hold_ms) {
			e->spilled = 0;
			e->since_ms = now_ms;
			e->returns_total++;
		}
	}
	return !e->spilled;
}
