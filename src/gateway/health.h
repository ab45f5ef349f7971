/*
 * health.h — is an endpoint fit for traffic: active checks, passive
 * detection and the state both lead to (health.c).
 */
#ifndef GATEWAY_HEALTH_H
#define GATEWAY_HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

/* The name of a state (enum gw_health): "unknown", "up", "down". */
const char *gw_health_name(int state);
/* Starts checking e (the first check at once). */
void health_start(gw_endpoint *e);
/* Stops checks of e (cancels the one in flight). */
void health_stop(gw_endpoint *e);
/* Passive results of real traffic. health_passive_failure returns 1 when
 * this failure ejected e. health_passive_error is the same for a transport
 * error of an attempt (an hc_err); when connect failures eject e, the
 * attempts still in flight on it are moved elsewhere (proxy_endpoint_down). */
int health_passive_failure(gw_endpoint *e, const char *why);
void health_passive_error(gw_endpoint *e, int err);
void health_passive_success(gw_endpoint *e);
/* 1 when e may take new requests (not DOWN, not removed); ignore_ejection
 * lets a pool whose every endpoint is ejected still serve. */
int health_available(const gw_endpoint *e, uint64_t now_ms, int ignore_ejection);
/* 1 while e is passively ejected. */
int health_ejected(const gw_endpoint *e, uint64_t now_ms);

#endif
