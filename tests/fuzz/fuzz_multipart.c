/*
 * fuzz_multipart.c — libFuzzer target for the multipart/form-data reader.
 *
 * The first byte is the boundary's length (1-8, taken from the following
 * bytes); the rest is the body, in an exact-size heap block. Every part must
 * lie inside the body, parts must come in order, and multipart_field must
 * agree with the walk on the first part's name. The Content-Type reader gets
 * the whole input as a header value.
 * fuzz-max-len: 4096
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/multipart.h"

static void check(int cond)
{
	if (!cond) abort();
}

static int inside(const char *p, size_t n, const char *base, size_t len)
{
	return !p || (p >= base && p + n <= base + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *b;
	size_t bl;
	if (multipart_boundary((const char *)data, size, &b, &bl) == 1)
		check(bl >= 1 && bl <= MULTIPART_BOUNDARY_MAX && inside(b, bl, (const char *)data, size));
	if (size < 2) return 0;
	size_t blen = 1 + data[0] % 8;
	if (size < 1 + blen) return 0;
	char bound[9];
	memcpy(bound, data + 1, blen);
	size_t len = size - 1 - blen;
	char *body = malloc(len ? len : 1);
	memcpy(body, data + 1 + blen, len);
	multipart_iter it;
	multipart_part p;
	check(multipart_begin(&it, body, len, bound, blen) == 0);
	int rc, n = 0;
	const char *last_end = body, *first_name = NULL;
	size_t first_name_len = 0;
	while ((rc = multipart_next(&it, &p)) == 1) {
		check(inside(p.data, p.len, body, len));
		check(inside(p.name, p.name_len, body, len));
		check(inside(p.filename, p.filename_len, body, len));
		check(inside(p.content_type, p.content_type_len, body, len));
		check(p.data >= last_end);
		last_end = p.data + p.len;
		if (n++ == 0 && p.name) {
			first_name = p.name;
			first_name_len = p.name_len;
		}
		check(n <= MULTIPART_MAX_PARTS);
	}
	check(rc == 0 || rc == -1);
	if (first_name && first_name_len < 64 && !memchr(first_name, 0, first_name_len)) {
		char name[64];
		memcpy(name, first_name, first_name_len);
		name[first_name_len] = 0;
		const char *v;
		size_t vl;
		int frc = multipart_field(body, len, bound, blen, name, &v, &vl);
		check(frc == 1 && inside(v, vl, body, len));
	}
	free(body);
	return 0;
}
