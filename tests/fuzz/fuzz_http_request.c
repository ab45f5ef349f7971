/*
 * fuzz_http_request.c — libFuzzer target for http_parse_request and the
 * framing and keep-alive rules applied to what it returns.
 *
 * Checks, beyond "no crash": the result is one of the documented codes; a
 * complete head lies inside the input and every returned pointer points into
 * it; names are tokens and values hold no CR, LF, NUL or edge whitespace;
 * parsing just the head gives the same answer, and its prefixes (heap copies
 * of exactly that size, so ASan sees any over-read) need more; a malformed
 * input stays malformed whatever follows.
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

static int inside(const uint8_t *base, size_t len, const char *p, size_t n)
{
	const char *b = (const char *)base;
	return p >= b && n <= len && (size_t)(p - b) <= len - n;
}

static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parses a heap copy of data[0..n) into r2 (its own headers: the pointers go
 * stale when the copy is freed). */
static int parse_copy(const uint8_t *data, size_t n, http_request_head *r)
{
	http_header h2[CAP];
	http_request_head r2 = {.headers = h2, .num_headers = r->num_headers};
	char *copy = malloc(n ? n : 1);
	check(copy != NULL);
	memcpy(copy, data, n);
	int ret = http_parse_request(copy, n, &r2);
	free(copy);
	r->num_headers = r2.num_headers;
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	http_header h[CAP];
	http_request_head r = {.headers = h, .num_headers = CAP};
	int ret = http_parse_request((const char *)data, size, &r);

	if (ret < 0) {
		check(ret == HTTP_MALFORMED || ret == HTTP_INCOMPLETE || ret == HTTP_TOO_MANY_HEADERS);
		check(r.num_headers == CAP);
		if (ret == HTTP_MALFORMED) {
			uint8_t *more = malloc(size + 4);
			check(more != NULL);
			memcpy(more, data, size);
			memcpy(more + size, "\r\n\r\n", 4);
			r.num_headers = CAP;
			check(http_parse_request((const char *)more, size + 4, &r) == HTTP_MALFORMED);
			free(more);
		}
		return 0;
	}

	size_t n = (size_t)ret;
	check(n > 0 && n <= size);
	check(inside(data, n, r.method, r.method_len) && r.method_len > 0);
	check(inside(data, n, r.target, r.target_len) && r.target_len > 0);
	check(r.minor_version >= 0 && r.minor_version <= 9);
	check(r.major_version >= 0 && r.major_version <= 9);
	for (size_t i = 0; i < r.method_len; i++)
		check(is_tchar((unsigned char)r.method[i]));
	for (size_t i = 0; i < r.target_len; i++)
		check((unsigned char)r.target[i] > 0x20 && (unsigned char)r.target[i] != 0x7f);
	check(r.num_headers <= CAP);
	for (size_t k = 0; k < r.num_headers; k++) {
		const http_header *f = &h[k];
		check(inside(data, n, f->name, f->name_len) && f->name_len > 0);
		check(inside(data, n, f->value, f->value_len));
		for (size_t i = 0; i < f->name_len; i++)
			check(is_tchar((unsigned char)f->name[i]));
		for (size_t i = 0; i < f->value_len; i++) {
			unsigned char c = (unsigned char)f->value[i];
			check(c == '\t' || (c >= 0x20 && c != 0x7f));
		}
		if (f->value_len) {
			check(f->value[0] != ' ' && f->value[0] != '\t');
			check(f->value[f->value_len - 1] != ' ' && f->value[f->value_len - 1] != '\t');
		}
	}
	check(data[n - 1] == '\n');

	/* The head alone parses the same; shorter, it needs more. */
	size_t num = r.num_headers;
	r.num_headers = CAP;
	check(parse_copy(data, n, &r) == ret && r.num_headers == num);
	size_t step = n > 64 ? n / 16 : 1;
	for (size_t k = 0; k < n; k += step) {
		r.num_headers = CAP;
		check(parse_copy(data, k, &r) == HTTP_INCOMPLETE);
	}
	r.num_headers = CAP;
	check(parse_copy(data, n - 1, &r) == HTTP_INCOMPLETE);
	if (num > 0) {
		r.num_headers = num - 1;
		check(http_parse_request((const char *)data, size, &r) == HTTP_TOO_MANY_HEADERS);
	}

	/* Framing and keep-alive on whatever headers came out. */
	http_body_kind kind;
	uint64_t length;
	int fr = http_body_framing(h, num, 0, 0, NULL, 0, &kind, &length);
	check(fr == 0 || fr == -1 || fr == HTTP_FRAMING_UNSUPPORTED);
	if (fr == HTTP_FRAMING_UNSUPPORTED)
		check(http_find_header(h, num, "transfer-encoding") != NULL);
	if (fr == 0) {
		check(kind == HTTP_BODY_NONE || kind == HTTP_BODY_LENGTH || kind == HTTP_BODY_CHUNKED);
		if (kind == HTTP_BODY_CHUNKED)
			check(http_find_header(h, num, "content-length") == NULL);
		if (kind == HTTP_BODY_LENGTH)
			check(http_find_header(h, num, "transfer-encoding") == NULL);
		if (kind != HTTP_BODY_LENGTH)
			check(length == 0);
	}
	int ka = http_keep_alive(r.minor_version, h, num);
	check(ka == 0 || ka == 1);
	return 0;
}
