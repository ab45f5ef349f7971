/*
 * metrics.h — the gateway's own Prometheus metrics (metrics.c, every name in
 * docs/METRICS.md). Each function records one event on the registry of g.
 */
#ifndef GATEWAY_METRICS_H
#define GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

int gw_metrics_init(gw *g);
void gw_metrics_free(gw *g);
void gw_metrics_endpoint_add(gw *g, gw_endpoint *e);
void gw_metrics_endpoint_remove(gw *g, gw_endpoint *e);
void gw_metrics_health_change(gw *g, gw_endpoint *e, int from, int to);
void gw_metrics_request(gw *g, const gw_call *c, uint64_t now_ms);
void gw_metrics_ttfb(gw *g, const gw_call *c, uint64_t ttfb_ms);
void gw_metrics_retry(gw *g, const gw_call *c, const char *reason);
void gw_metrics_ejection(gw *g, gw_endpoint *e);
void gw_metrics_check(gw *g, gw_endpoint *e, int ok);
void gw_metrics_reload(gw *g, int ok);
void gw_metrics_resume(gw *g, const gw_call *c, const char *outcome);

#endif
