/*
 * region_select.h — which region serves: the gateway's own while it has
 * capacity, else the next one in waterfall order (nearest first), and back
 * when capacity returns, with hysteresis so traffic does not flap.
 *
 * A region has capacity while one of its endpoints is available (healthy,
 * serving the model, metrics fresh) and its utilization is at most
 * max_utilization. Once it has none, the region is marked spilled; it is
 * taken back only when an endpoint is under max_utilization - return_margin
 * and the region has been spilled for at least region_hold (both, so neither
 * a level hovering at the limit nor a single good scrape brings traffic back).
 * This is the cloud load balancer's max-utilization waterfall, with the
 * "return" threshold of a thermostat.
 *
 * Not here: which endpoint of the region (the picker's scorers). Pure: the
 * caller passes the clock.
 */
#ifndef GATEWAY_REGION_SELECT_H
#define GATEWAY_REGION_SELECT_H

#include <stddef.h>
#include <stdint.h>

#define REGION_MAX 64                  /* region ranks tracked per pool */

typedef struct region_entry {
	int spilled;                   /* 1: traffic goes elsewhere */
	uint64_t since_ms;             /* when spilled last changed */
	uint64_t spills_total, returns_total;
	double best_util;              /* lowest utilization of an available endpoint (last look), 2 = none */
	uint32_t available;            /* endpoints available (last look) */
} region_entry;

/* The state of one pool's regions, indexed by region rank. Owner: the pool's
 * picker state. Zeroed = nothing spilled. */
typedef struct region_state {
	region_entry r[REGION_MAX];
} region_state;

/* Feeds one look at region rank: the lowest utilization among its available
 * endpoints (best_util; > 1 or available 0 when none), and returns whether it
 * has capacity now (1) after applying the hysteresis. */
int region_update(region_state *rs, int rank, double best_util, uint32_t available, double max_util,
		  double return_margin, uint64_t hold_ms, uint64_t now_ms);

#endif
