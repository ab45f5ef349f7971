/*
 * discovery.c — the part of discovery every backend shares: the spec's
 * defaults, the current address set and its publication, counters, and the
 * pure helpers (normalize, diff, format, resolv.conf). The backends are
 * discovery_dns.c (DNS over UDP) and discovery_k8s.c (EndpointSlice watch).
 */
#include "gateway/discovery_int.h"
#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const kind_names[] = {
	[DISCOVERY_DNS] = "dns",
	[DISCOVERY_SRV] = "srv",
	[DISCOVERY_KUBERNETES] = "kubernetes",
};

const char *discovery_kind_name(int kind)
{
	if (kind < DISCOVERY_DNS || kind > DISCOVERY_KUBERNETES) return NULL;
	return kind_names[kind];
}

int discovery_kind_parse(const char *s)
{
	for (int k = DISCOVERY_DNS; k <= DISCOVERY_KUBERNETES; k++)
		if (strcmp(s, kind_names[k]) == 0) return k;
	return -1;
}

uint32_t discovery_random(void)
{
	static uint64_t state;
	if (!state) {
		if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != sizeof(state)) state = time_mono_ns();
		state |= 1;
	}
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return (uint32_t)(state >> 16);
}

/* ------------------------------------------------------------ pure helpers */

static int addr_cmp(const void *a, const void *b)
{
	return strcmp(((const discovery_addr *)a)->addr, ((const discovery_addr *)b)->addr);
}

size_t discovery_addrs_normalize(discovery_addr *addrs, size_t n)
{
	if (n < 2) return n;
	qsort(addrs, n, sizeof(*addrs), addr_cmp);
	size_t o = 1;
	for (size_t i = 1; i < n; i++)
		if (strcmp(addrs[i].addr, addrs[o - 1].addr) != 0) addrs[o++] = addrs[i];
	return o;
}

int discovery_addrs_equal(const discovery_addr *a, size_t na, const discovery_addr *b, size_t nb)
{
	if (na != nb) return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].addr, b[i].addr) != 0) return 0;
	return 1;
}

void discovery_diff(const discovery_addr *old, size_t n_old, const discovery_addr *cur, size_t n_cur,
		    size_t *added, size_t *n_added, size_t *removed, size_t *n_removed)
{
	size_t i = 0, j = 0, na = 0, nr = 0;
	while (i < n_old || j < n_cur) {
		int c = i == n_old ? 1 : j == n_cur ? -1
						    : strcmp(old[i].addr, cur[j].addr);
		if (c == 0) {
			i++, j++;
		} else if (c < 0) {
			if (removed) removed[nr] = i;
			nr++, i++;
		} else {
			if (added) added[na] = j;
			na++, j++;
		}
	}
	*n_added = na;
	*n_removed = nr;
}

int discovery_addr_format(discovery_addr *out, int family, const void *ip, uint16_t port)
{
	char text[INET6_ADDRSTRLEN];
	if (!inet_ntop(family, ip, text, sizeof(text))) return -1;
	int n = family == AF_INET6 ? snprintf(out->addr, sizeof(out->addr), "[%s]:%u", text, port)
				   : snprintf(out->addr, sizeof(out->addr), "%s:%u", text, port);
	return n > 0 && (size_t)n < sizeof(out->addr) ? 0 : -1;
}

size_t discovery_read_resolv_conf(const char *path, char out[][NET_ADDR_STRLEN], size_t max)
{
	FILE *f = fopen(path, "re");
	if (!f) return 0;
	char line[512];
	size_t n = 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char word[32], host[48];
		if (sscanf(line, "%31s %47s", word, host) != 2 || strcmp(word, "nameserver") != 0) continue;
		char *pct = strchr(host, '%'); /* a zone id: not ours to handle */
		if (pct) continue;
		unsigned char ip[16];
		if (inet_pton(AF_INET, host, ip) == 1)
			snprintf(out[n++], NET_ADDR_STRLEN, "%s:53", host);
		else if (inet_pton(AF_INET6, host, ip) == 1)
			snprintf(out[n++], NET_ADDR_STRLEN, "[%s]:53", host);
	}
	fclose(f);
	return n;
}

/* ------------------------------------------------------------ the object */

static int spec_check(discovery_spec *s, char *err, size_t err_len)
{
	if (!s->interval_ms) s->interval_ms = 5000;
	if (!s->timeout_ms) s->timeout_ms = s->kind == DISCOVERY_KUBERNETES ? 5000 : 1000;
	if (!s->attempts) s->attempts = 2;
	if (!s->resolv_conf[0]) str_copy(s->resolv_conf, "/etc/resolv.conf", sizeof(s->resolv_conf));
	if (!s->k8s_watch_timeout_s) s->k8s_watch_timeout_s = 300;
	switch (s->kind) {
	case DISCOVERY_DNS:
		if (!s->port) {
			snprintf(err, err_len, "discovery of %s: a port is needed", s->name);
			return -1;
		}
		/* fall through */
	case DISCOVERY_SRV:
		if (!s->name[0]) {
			snprintf(err, err_len, "discovery: no name to resolve");
			return -1;
		}
		if (s->no_ipv4 && s->no_ipv6) {
			snprintf(err, err_len, "discovery of %s: neither IPv4 nor IPv6", s->name);
			return -1;
		}
		return 0;
	case DISCOVERY_KUBERNETES:
		if (!s->k8s_service[0]) {
			snprintf(err, err_len, "discovery: kubernetes needs a service name");
			return -1;
		}
		return 0;
	default:
		snprintf(err, err_len, "discovery: unknown kind %d", s->kind);
		return -1;
	}
}

discovery *discovery_new(ev_loop *loop, const discovery_spec *spec, discovery_cb *on_change, void *arg,
			 char *err, size_t err_len)
{
	discovery *d = calloc(1, sizeof(*d));
	if (d) d->cur = calloc(DISCOVERY_MAX_ADDRS, sizeof(*d->cur));
	if (!d || !d->cur) {
		if (d) free(d);
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	d->loop = loop;
	d->spec = *spec;
	d->on_change = on_change;
	d->arg = arg;
	if (spec_check(&d->spec, err, err_len) < 0) {
		free(d->cur);
		free(d);
		return NULL;
	}
	int rc = d->spec.kind == DISCOVERY_KUBERNETES ? discovery_k8s_start(d, err, err_len)
						      : discovery_dns_start(d, err, err_len);
	if (rc < 0) {
		free(d->cur);
		free(d);
		return NULL;
	}
	return d;
}

void discovery_free(discovery *d)
{
	if (!d || d->dead) return;
	if (d->spec.kind == DISCOVERY_KUBERNETES)
		discovery_k8s_stop(d);
	else
		discovery_dns_stop(d);
	if (d->in_cb) { /* discovery_publish frees it when on_change returns */
		d->dead = 1;
		return;
	}
	free(d->cur);
	free(d);
}

const discovery_stats *discovery_get_stats(const discovery *d) { return &d->st; }
const discovery_spec *discovery_get_spec(const discovery *d) { return &d->spec; }

const discovery_addr *discovery_addrs(const discovery *d, size_t *n)
{
	*n = d->n_cur;
	return d->cur;
}

int discovery_publish(discovery *d, discovery_addr *addrs, size_t n)
{
	n = discovery_addrs_normalize(addrs, n);
	if (n > DISCOVERY_MAX_ADDRS) {
		d->st.dropped_total += n - DISCOVERY_MAX_ADDRS;
		log_limited(&d->log_rl, 10000, 3, LOG_WARN, "discovery of %s: %zu addresses, keeping the first %d",
			    d->spec.name, n, DISCOVERY_MAX_ADDRS);
		n = DISCOVERY_MAX_ADDRS;
	}
	d->st.resolutions_total++;
	d->st.last_ok_ms = ev_now_ms(d->loop);
	d->st.last_error[0] = '\0';
	if (d->st.have_set && discovery_addrs_equal(d->cur, d->n_cur, addrs, n)) return 0;
	size_t n_added, n_removed;
	discovery_diff(d->cur, d->n_cur, addrs, n, NULL, &n_added, NULL, &n_removed);
	log_info("discovery of %s: %zu addresses (%zu new, %zu gone)", d->spec.name, n, n_added, n_removed);
	memcpy(d->cur, addrs, n * sizeof(*addrs));
	d->n_cur = n;
	d->st.n_addrs = n;
	d->st.have_set = 1;
	d->st.changes_total++;
	if (!d->on_change) return 0;
	d->in_cb = 1;
	d->on_change(d, d->cur, d->n_cur, d->arg);
	d->in_cb = 0;
	if (d->dead) {
		free(d->cur);
		free(d);
		return 1;
	}
	return 0;
}

void discovery_fail(discovery *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->st.last_error, sizeof(d->st.last_error), fmt, ap);
	va_end(ap);
	d->st.failures_total++;
	log_limited(&d->log_rl, 10000, 3, LOG_WARN, "discovery of %s: %s (keeping %zu known addresses)", d->spec.name,
		    d->st.last_error, d->n_cur);
}
