/*
 * discovery.h — where a pool's endpoints come from when the configuration
 * names a service instead of an address: DNS names re-resolved at an interval
 * (A and AAAA, or SRV), or the Kubernetes API's EndpointSlices of a Service,
 * watched.
 *
 * A discovery reports the full current set of addresses ("10.0.0.5:8000",
 * "[fd00::5]:8000"), sorted and without duplicates, each time it changes (and
 * once after the first successful resolution, even when empty). The caller
 * diffs it against what it has (discovery_diff) and lets new addresses join and
 * missing ones drain. A failed resolution (timeout, SERVFAIL, REFUSED, a
 * malformed answer, an API error) changes nothing: the last known set stays,
 * the failure is counted and logged (rate-limited). NXDOMAIN and an empty
 * answer are answers: the set becomes empty.
 *
 * Everything runs on the caller's ev.h loop: DNS over UDP with our own codec
 * (dns.h) and the nameserver of /etc/resolv.conf or a configured one;
 * Kubernetes over HTTPS with OpenSSL, the core HTTP parser and the core JSON
 * reader. Nothing blocks: the only files read (resolv.conf, the service
 * account token) are small local files read at the start of a round.
 *
 * Not here: health checks and the endpoints themselves (the gateway's pool.c).
 */
#ifndef GATEWAY_DISCOVERY_H
#define GATEWAY_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>
#include "core/ev.h"
#include "core/net.h"

enum discovery_kind {
	DISCOVERY_DNS = 1,    /* A and AAAA records of name, each at port */
	DISCOVERY_SRV,        /* SRV records of name: targets and their ports */
	DISCOVERY_KUBERNETES, /* EndpointSlices of a Service, watched */
};

#define DISCOVERY_MAX_ADDRS 1024 /* a set never holds more (extra ones dropped, counted) */
#define DISCOVERY_NAME_LEN 256

/* What to discover and how. Owner: the caller; discovery_new copies it.
 * Zero fields take the defaults named here. */
typedef struct discovery_spec {
	int kind;                       /* enum discovery_kind */
	char name[DISCOVERY_NAME_LEN];  /* DNS: "vllm-gemma-headless.default.svc.cluster.local";
	                                  SRV: "_http._tcp.vllm-gemma.default.svc.cluster.local" */
	uint16_t port;                  /* DNS: every address's port; KUBERNETES: the port when
	                                  the slice names none; SRV: unused */
	int no_ipv4, no_ipv6;           /* DNS/SRV: skip A or AAAA */
	uint64_t interval_ms;           /* DNS/SRV: between resolutions (5000);
	                                  KUBERNETES: wait before reconnecting after an error */
	uint64_t timeout_ms;            /* DNS/SRV: per attempt (1000); KUBERNETES: connect + TLS (5000) */
	uint32_t attempts;              /* DNS/SRV: attempts per round, rotating nameservers (2) */
	char resolver[NET_ADDR_STRLEN]; /* "127.0.0.1:53"; "" = the nameservers of resolv_conf */
	char resolv_conf[256];          /* "" = /etc/resolv.conf */

	/* KUBERNETES */
	char k8s_namespace[64];        /* "" = the pod's (namespace file beside the token), else "default" */
	char k8s_service[64];          /* the Service whose slices are watched */
	char k8s_port_name[64];        /* the slice port of this name; "" = the slice's first port */
	char k8s_api[NET_ADDR_STRLEN]; /* "host:port"; "" = $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT */
	char k8s_token_path[256];      /* "" = /var/run/secrets/kubernetes.io/serviceaccount/token */
	char k8s_ca_path[256];         /* "" = .../serviceaccount/ca.crt */
	char k8s_server_name[256];     /* name the API's certificate must carry; "" = the host of k8s_api */
	uint32_t k8s_watch_timeout_s;  /* the server ends a watch after this long, we re-watch (300) */
} discovery_spec;

/* One discovered address, as text. */
typedef struct discovery_addr {
	char addr[NET_ADDR_STRLEN]; /* "10.0.0.5:8000", "[fd00::5]:8000" */
} discovery_addr;

typedef struct discovery discovery;

/* Called on the loop thread with the full current set when it changed (and
 * after the first successful round). addrs is valid during the call only. */
typedef void discovery_cb(discovery *d, const discovery_addr *addrs, size_t n, void *arg);

typedef struct discovery_stats {
	uint64_t resolutions_total; /* rounds (DNS) or list/watch events (Kubernetes) that succeeded */
	uint64_t failures_total;    /* rounds or connections that failed */
	uint64_t changes_total;     /* times on_change was called */
	uint64_t dropped_total;     /* addresses over DISCOVERY_MAX_ADDRS, and records over caps */
	uint64_t last_ok_ms;        /* loop time of the last success; 0 = never */
	size_t n_addrs;             /* in the current set */
	int have_set;               /* 1 once a first set was known */
	char last_error[160];       /* "" when the last round succeeded */
} discovery_stats;

/* Checks spec and starts discovering at once (the first round now). Returns the
 * discovery, or NULL with the reason in err. The caller owns it
 * (discovery_free). */
discovery *discovery_new(ev_loop *loop, const discovery_spec *spec, discovery_cb *on_change, void *arg,
			 char *err, size_t err_len);
/* Stops (sockets closed, timers deleted, no further callback) and frees.
 * Safe from inside on_change. NULL is a no-op. */
void discovery_free(discovery *d);
const discovery_stats *discovery_get_stats(const discovery *d);
const discovery_spec *discovery_get_spec(const discovery *d);
/* The current set (valid until the next loop iteration). */
const discovery_addr *discovery_addrs(const discovery *d, size_t *n);
/* "dns", "srv", "kubernetes", or NULL; and the reverse (-1 when unknown). */
const char *discovery_kind_name(int kind);
int discovery_kind_parse(const char *s);

/* ---- pure helpers (discovery.c) */

/* Sorts addrs and removes duplicates in place; returns the new count. */
size_t discovery_addrs_normalize(discovery_addr *addrs, size_t n);
/* 1 when the two normalized sets are equal. */
int discovery_addrs_equal(const discovery_addr *a, size_t na, const discovery_addr *b, size_t nb);
/* Diffs two normalized sets: indices into cur of the addresses not in old
 * (added, capacity n_cur) and into old of those not in cur (removed, capacity
 * n_old). Either output may be NULL to only count. */
void discovery_diff(const discovery_addr *old, size_t n_old, const discovery_addr *cur, size_t n_cur,
		    size_t *added, size_t *n_added, size_t *removed, size_t *n_removed);
/* Formats an IPv4 (4 bytes) or IPv6 (16 bytes) address and a port as
 * "a.b.c.d:port" or "[v6]:port". Returns 0 or -1. */
int discovery_addr_format(discovery_addr *out, int family, const void *ip, uint16_t port);
/* Reads the nameservers ("nameserver X" lines) of a resolv.conf file into
 * out[max] as "X:53" (IPv6 in brackets). Returns the count (0 when none or
 * unreadable). */
size_t discovery_read_resolv_conf(const char *path, char out[][NET_ADDR_STRLEN], size_t max);

#endif
