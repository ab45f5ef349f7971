/*
 * fuzz_chunked.c — libFuzzer target for the chunked decoder.
 *
 * The input (after one byte that seeds the split points) is decoded three
 * ways: in one go, byte by byte, and in pieces of pseudo-random sizes, each
 * piece in a heap block of exactly its size so ASan sees any over-read or
 * over-write. All three must agree: the same verdict (malformed, incomplete,
 * or done), the same payload, and when done the same bytes after the body,
 * which must be the input's tail.
 * fuzz-max-len: 4096
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/http.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

struct result {
	long ret; /* HTTP_MALFORMED, HTTP_INCOMPLETE, or >= 0 (done) */
	char *payload;
	size_t payload_len;
	size_t rest_len; /* bytes after the body */
};

/* Decodes in[0..n) in pieces whose sizes come from next_piece. */
static void decode(const uint8_t *in, size_t n, uint32_t seed, int mode, struct result *res)
{
	http_chunked d;
	size_t off = 0;
	http_chunked_init(&d);
	res->ret = HTTP_INCOMPLETE;
	res->payload = malloc(n ? n : 1);
	check(res->payload != NULL);
	res->payload_len = res->rest_len = 0;
	while (off < n) {
		size_t piece;
		if (mode == 0)
			piece = n - off;
		else if (mode == 1)
			piece = 1;
		else {
			seed = seed * 1103515245u + 12345u;
			piece = 1 + (seed >> 16) % 64;
		}
		if (piece > n - off)
			piece = n - off;
		if (res->ret >= 0) { /* done: the rest follows the body */
			res->rest_len += piece;
			off += piece;
			continue;
		}
		char *b = malloc(piece);
		check(b != NULL);
		memcpy(b, in + off, piece);
		size_t len = piece;
		long ret = http_chunked_decode(&d, b, &len);
		if (ret == HTTP_MALFORMED) {
			free(b);
			res->ret = ret;
			return;
		}
		check(len <= piece);
		memcpy(res->payload + res->payload_len, b, len);
		res->payload_len += len;
		if (ret >= 0) {
			check(http_chunked_done(&d));
			check((size_t)ret <= piece - len);
			check(memcmp(b + len, in + off + piece - (size_t)ret, (size_t)ret) == 0);
			res->rest_len += (size_t)ret;
		} else {
			check(ret == HTTP_INCOMPLETE);
			check(!http_chunked_done(&d));
		}
		res->ret = ret;
		free(b);
		off += piece;
	}
	if (res->ret >= 0)
		res->ret = 0; /* the count depends on the split; compare rest_len */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t seed = data[0];
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	struct result a, b, c;

	decode(in, n, seed, 0, &a);
	decode(in, n, seed, 1, &b);
	decode(in, n, seed, 2, &c);
	check(a.ret == b.ret && a.ret == c.ret);
	if (a.ret != HTTP_MALFORMED) {
		check(a.payload_len == b.payload_len && a.payload_len == c.payload_len);
		check(memcmp(a.payload, b.payload, a.payload_len) == 0);
		check(memcmp(a.payload, c.payload, a.payload_len) == 0);
		check(a.payload_len <= n);
	}
	if (a.ret >= 0)
		check(a.rest_len == b.rest_len && a.rest_len == c.rest_len);
	free(a.payload);
	free(b.payload);
	free(c.payload);
	return 0;
}
