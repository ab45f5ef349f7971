/*
 * retry.h — may an attempt that sent nothing to the client be tried again
 * elsewhere? One pure question, asked by the proxy (proxy.c) after a failed
 * attempt and when an endpoint goes down under its attempts in flight.
 *
 * Two kinds of failure, two rules (docs/gateway.md, "Retries"):
 *   - DEAD: the endpoint is gone (connection refused or reset, EOF before the
 *     head, or it is ejected or its health is down) and the attempt got no
 *     response byte. Retried while an endpoint not tried yet is available and
 *     time is left, whatever the budget and the tries: the request never
 *     reached a live server, so sending it elsewhere adds no load to one;
 *     the tried set (one attempt per endpoint) bounds it. HAProxy's
 *     `option redispatch`.
 *   - BUSY: the endpoint answered 502/503/504 or timed out. Retried within
 *     `tries` and the pool's retry budget (Envoy's: retries in progress at most
 *     retry_budget_min + retry_budget x requests in progress), so a fleet that
 *     is merely overloaded is not stormed with retries.
 * Not here: picking the endpoint (pick.c), counting and logging (proxy.c).
 */
#ifndef GATEWAY_RETRY_H
#define GATEWAY_RETRY_H

#include <stdint.h>

enum retry_failure {
	RETRY_FAILURE_FINAL = 0, /* not retried (a malformed answer, out of memory, ...) */
	RETRY_FAILURE_DEAD,      /* the endpoint is gone and nothing came back */
	RETRY_FAILURE_BUSY,      /* the endpoint is alive but failed: 5xx, timeout */
};

/* The kind of a failed attempt: hc_err its transport error (HC_OK when it
 * answered), status its response status (0 without a head), bytes_received 1
 * when any response byte came back, endpoint_dead 1 when the endpoint is now
 * ejected, down or removed. */
int retry_failure_of(int hc_err, int status, int bytes_received, int endpoint_dead);

/* Everything the verdict depends on; no pointer into the proxy's state. */
typedef struct retry_question {
	int failure;             /* enum retry_failure */
	uint32_t tries;          /* attempts made so far, dead endpoints' included */
	uint32_t max_tries;      /* the pool's backend.tries */
	int time_left;           /* 1 before the call's deadline */
	int endpoint_left;       /* 1 when an endpoint not tried yet is available */
	int counted;             /* 1 when the call already counts as a retry in progress */
	uint32_t active_retries; /* the pool's retries in progress */
	double budget;           /* retries in progress the pool allows */
} retry_question;

enum retry_verdict {
	RETRY_NO = 0, /* the failure is final */
	RETRY_YES,
	RETRY_NO_TIME,     /* the deadline passed */
	RETRY_NO_ENDPOINT, /* every available endpoint was tried */
	RETRY_NO_TRIES,    /* a BUSY failure after max_tries attempts */
	RETRY_NO_BUDGET,   /* a BUSY failure with the budget spent */
};

int retry_decide(const retry_question *q);
const char *retry_verdict_name(int verdict);

/* Envoy's budget: retries in progress allowed for active_requests. */
double retry_budget(uint32_t budget_min, double budget_ratio, uint32_t active_requests);

#endif
