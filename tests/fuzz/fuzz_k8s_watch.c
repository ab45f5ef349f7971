/*
 * fuzz_k8s_watch.c — the Kubernetes EndpointSlice watch stream
 * (src/gateway/discovery_k8s.c, compiled in here with discovery.c and, for
 * the link, discovery_dns.c and dns.c): the input
 * is a watch body, newline-separated JSON events, split into lines as the
 * connection does and applied with watch_apply, then published to a
 * discovery as a CHANGED event is. No socket is opened: watch_apply does no
 * I/O. The first byte picks the port name the slices are read with.
 *
 * Checks: the slice table stays within K8S_MAX_SLICES with unique,
 * NUL-terminated names and at most DISCOVERY_MAX_ADDRS addresses a slice,
 * each an address with a port; the version stays a string shorter than its
 * buffer; a published set stays within DISCOVERY_MAX_ADDRS.
 * fuzz-max-len: 8192
 * fuzz-libs: -lssl -lcrypto
 */
#include "../../src/gateway/discovery.c"
#include "../../src/gateway/dns.c"
#include "../../src/gateway/discovery_dns.c"
#include "../../src/gateway/discovery_k8s.c"

#include <stdint.h>
#include <stdlib.h>

static void check(int cond)
{
	if (!cond) abort();
}

static ev_loop *fz_loop;

static void check_table(const k8s_state *s)
{
	check(s->n_slices <= K8S_MAX_SLICES);
	check(memchr(s->rv, 0, sizeof(s->rv)) != NULL);
	for (size_t i = 0; i < s->n_slices; i++) {
		const k8s_slice *sl = &s->slices[i];
		check(memchr(sl->name, 0, sizeof(sl->name)) != NULL && sl->name[0]);
		check(sl->n <= DISCOVERY_MAX_ADDRS);
		for (size_t k = 0; k < sl->n; k++) {
			const char *a = sl->addrs[k].addr;
			check(memchr(a, 0, sizeof(sl->addrs[k].addr)) != NULL && strrchr(a, ':') != NULL);
		}
		for (size_t j = 0; j < i; j++) check(strcmp(s->slices[j].name, sl->name) != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_loop) {
		log_set_level(LOG_ERROR);
		fz_loop = ev_new();
		if (!fz_loop) abort();
	}
	if (size < 1) return 0;
	discovery *d = calloc(1, sizeof(*d));
	k8s_state *s = calloc(1, sizeof(*s));
	if (!d || !s || !(d->cur = calloc(DISCOVERY_MAX_ADDRS, sizeof(*d->cur)))) abort();
	d->loop = fz_loop;
	d->spec.kind = DISCOVERY_KUBERNETES;
	str_copy(d->spec.name, "fuzz", sizeof(d->spec.name));
	d->spec.port = 8000;
	static const char *const port_names[] = {"", "http", "metrics", "a"};
	str_copy(d->spec.k8s_port_name, port_names[data[0] & 3], sizeof(d->spec.k8s_port_name));
	s->d = d;
	s->fd = -1;
	s->mode = K8S_WATCH;
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len) {
			char why[192];
			int rc = watch_apply(s, p, len, why, sizeof(why));
			check(rc >= K8S_W_IGNORED && rc <= K8S_W_MALFORMED);
			check(memchr(why, 0, sizeof(why)) != NULL);
			check_table(s);
			if (rc == K8S_W_CHANGED) {
				check(publish(s) == 0);
				check(d->n_cur <= DISCOVERY_MAX_ADDRS);
			}
		}
		p += len + 1;
	}
	slices_clear(s);
	free(s);
	free(d->cur);
	free(d);
	return 0;
}
