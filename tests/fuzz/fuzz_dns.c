/*
 * fuzz_dns.c — libFuzzer target for the DNS response reader of the gateway's
 * discovery (src/gateway/dns.c).
 *
 * The input, copied into an exact-size heap block, is read as a response with
 * room for 4 and for 64 records: both must agree on the verdict and on the
 * records they share (field by field); every name read must be a NUL-terminated, lowercase
 * string within DNS_NAME_MAX.
 * fuzz-max-len: 2048
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/dns.c"

static void check(int cond)
{
	if (!cond)
		abort();
}

static void check_name(const char *s)
{
	size_t n = strnlen(s, DNS_NAME_MAX);
	check(n < DNS_NAME_MAX);
	for (size_t i = 0; i < n; i++) check(!(s[i] >= 'A' && s[i] <= 'Z'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *msg = malloc(size ? size : 1);
	if (!msg) return 0;
	memcpy(msg, data, size);
	static dns_rr few[4], many[64];
	dns_response a = {.rrs = few, .max_rrs = 4}, b = {.rrs = many, .max_rrs = 64};
	int ra = dns_response_parse(msg, size, &a), rb = dns_response_parse(msg, size, &b);
	check(ra == rb);
	if (ra == 0) {
		check(a.n_rrs + a.dropped_rrs == b.n_rrs + b.dropped_rrs);
		check_name(a.qname);
		for (size_t i = 0; i < a.n_rrs; i++) {
			const dns_rr *x = &few[i], *y = &many[i];
			check(x->type == y->type && x->section == y->section && x->ttl_s == y->ttl_s);
			check(!strcmp(x->name, y->name) && !strcmp(x->target, y->target));
			if (x->type == DNS_TYPE_A) check(!memcmp(x->u.a, y->u.a, 4));
			if (x->type == DNS_TYPE_AAAA) check(!memcmp(x->u.aaaa, y->u.aaaa, 16));
			if (x->type == DNS_TYPE_SRV) check(x->u.srv.port == y->u.srv.port && x->u.srv.weight == y->u.srv.weight);
			check_name(few[i].name);
			check_name(few[i].target);
		}
	}
	free(msg);
	return 0;
}
