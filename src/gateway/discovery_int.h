/*
 * discovery_int.h — what discovery.c shares with its backends
 * (discovery_dns.c, discovery_k8s.c). Not for other files: use discovery.h.
 */
#ifndef GATEWAY_DISCOVERY_INT_H
#define GATEWAY_DISCOVERY_INT_H

#include "gateway/discovery.h"
#include "core/log.h"

/* One discovery. Owner: whoever called discovery_new. */
struct discovery {
	ev_loop *loop;
	discovery_spec spec; /* copied, defaults filled */
	discovery_cb *on_change;
	void *arg;
	discovery_addr *cur; /* the current set, DISCOVERY_MAX_ADDRS slots */
	size_t n_cur;
	discovery_stats st;
	log_rl log_rl; /* its repeated warnings: a few lines per 10 s, the rest counted */
	void *impl;    /* the backend's state */
	int in_cb;     /* on_change is running */
	int dead;      /* discovery_free was called from on_change */
};

/* Backends: start (the first round at once; 0 or -1 with err) and stop (frees
 * impl, cancels everything; no callback after). */
int discovery_dns_start(discovery *d, char *err, size_t err_len);
void discovery_dns_stop(discovery *d);
int discovery_k8s_start(discovery *d, char *err, size_t err_len);
void discovery_k8s_stop(discovery *d);

/* A successful round found addrs[n] (any order, duplicates allowed; may be
 * modified). Normalizes, counts, calls on_change when the set changed or is the
 * first. Returns 1 when d was freed inside on_change (the backend must return at
 * once without touching d or its state), else 0. */
int discovery_publish(discovery *d, discovery_addr *addrs, size_t n);
/* A round failed: counted, remembered in stats.last_error, logged (rate-limited). */
void discovery_fail(discovery *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A random 16-bit query id / jitter source (getrandom-seeded xorshift). */
uint32_t discovery_random(void);

#endif
