/*
 * fuzz_http_response.c — libFuzzer target for http_parse_response and the
 * response framing rules.
 *
 * The first input byte picks the request method and is not parsed; the rest
 * is the response. Checks the codes, that every pointer lies inside the head,
 * the status range, that the head alone parses the same and its prefixes need
 * more, and that framing answers are consistent with the status and method.
 * fuzz-max-len: 8192
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/http.h"

#define CAP 64

static void check(int cond)
{
	if (!cond)
		abort();
}

static int inside(const char *b, size_t len, const char *p, size_t n)
{
	return p >= b && n <= len && (size_t)(p - b) <= len - n;
}

/* Parses a heap copy of data[0..n) (headers in its own array: their pointers
 * go stale when the copy is freed); copies back the count and status. */
static int parse_copy(const char *data, size_t n, http_response_head *r)
{
	http_header h2[CAP];
	http_response_head r2 = {.headers = h2, .num_headers = r->num_headers};
	char *copy = malloc(n ? n : 1);
	check(copy != NULL);
	memcpy(copy, data, n);
	int ret = http_parse_response(copy, n, &r2);
	free(copy);
	r->num_headers = r2.num_headers;
	r->status = r2.status;
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "POST", "HEAD", "CONNECT", "head", NULL};
	if (size < 1)
		return 0;
	const char *method = methods[data[0] % 6];
	const char *in = (const char *)data + 1;
	size -= 1;

	http_header h[CAP];
	http_response_head r = {.headers = h, .num_headers = CAP};
	int ret = http_parse_response(in, size, &r);
	if (ret < 0) {
		check(ret == HTTP_MALFORMED || ret == HTTP_INCOMPLETE || ret == HTTP_TOO_MANY_HEADERS);
		check(r.num_headers == CAP);
		return 0;
	}
	size_t n = (size_t)ret;
	check(n > 0 && n <= size);
	check(r.status >= 100 && r.status <= 999);
	check(r.minor_version >= 0 && r.minor_version <= 9);
	check(inside(in, n, r.reason, r.reason_len));
	for (size_t i = 0; i < r.reason_len; i++) {
		unsigned char c = (unsigned char)r.reason[i];
		check(c == '\t' || (c >= 0x20 && c != 0x7f));
	}
	size_t num = r.num_headers;
	check(num <= CAP);
	for (size_t k = 0; k < num; k++) {
		check(inside(in, n, h[k].name, h[k].name_len) && h[k].name_len > 0);
		check(inside(in, n, h[k].value, h[k].value_len));
		check(memchr(h[k].value, '\r', h[k].value_len) == NULL);
		check(memchr(h[k].value, '\n', h[k].value_len) == NULL);
		check(memchr(h[k].name, ':', h[k].name_len) == NULL);
	}

	int status = r.status;
	r.num_headers = CAP;
	check(parse_copy(in, n, &r) == ret && r.num_headers == num && r.status == status);
	size_t step = n > 64 ? n / 16 : 1;
	for (size_t k = 0; k < n; k += step) {
		r.num_headers = CAP;
		check(parse_copy(in, k, &r) == HTTP_INCOMPLETE);
	}

	http_body_kind kind;
	uint64_t length;
	int fr = http_body_framing(h, num, 1, status, method, method ? strlen(method) : 0, &kind, &length);
	int bodyless = (status < 200) || status == 204 || status == 304 ||
		       (method && (strcmp(method, "HEAD") == 0 || strcmp(method, "head") == 0)) ||
		       (method && strcmp(method, "CONNECT") == 0 && status < 300);
	check(fr == 0 || fr == -1 || fr == HTTP_FRAMING_UNSUPPORTED);
	if (bodyless)
		check(fr == 0 && kind == HTTP_BODY_NONE && length == 0);
	if (fr == 0 && kind != HTTP_BODY_LENGTH)
		check(length == 0);
	int ka = http_keep_alive(r.minor_version, h, num);
	check(ka == 0 || ka == 1);
	return 0;
}
