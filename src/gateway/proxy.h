/*
 * proxy.h — one client request sent to an endpoint of its pool and answered
 * back, with retries, admission queues and resumes carried out here
 * (proxy.c). Owns every state change of a gw_call.
 */
#ifndef GATEWAY_PROXY_H
#define GATEWAY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include "gateway/gateway.h"

/* Takes over a routed request (pool ref taken here). rq is the front door's
 * description of its body, read only during the call (the picker hashes the
 * prompt's head, resume copies what it needs). */
void proxy_start(gw *g, httpd_req *r, gw_pool *pool, const gw_request *rq);
void proxy_free_calls(gw *g);
/* Stops serving the admission queues, frees the pick scratch (at exit). */
void proxy_free_admission(gw *g);
/* e went hard down (its checks got no answer, or connect failures ejected
 * it): an attempt in flight on it would wait for a dead peer until a timeout.
 * Each one that has had no response byte is let go and retried elsewhere
 * (the normal retry path: tries, deadline, budget, the tried set); each
 * resumable stream whose head went out is resumed elsewhere (resume.h).
 * Attempts that cannot go anywhere are left as they are. Returns how many
 * attempts were moved. */
size_t proxy_endpoint_down(gw_endpoint *e, const char *why);

#endif
