/*
 * fuzz_sse.c — libFuzzer target for the SSE parser.
 *
 * The first byte seeds the split points; the rest is fed three ways (in one go,
 * byte by byte, in pseudo-random pieces each in an exact-size heap block). The
 * three event logs must be identical, and so must the verdicts.
 * fuzz-max-len: 4096
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/sse.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static int on_event(void *arg, const char *event, const char *data, size_t len, const char *id)
{
	buf *log = arg;
	check(data[len] == 0);
	buf_printf(log, "%s|%zu|%s|", event, len, id);
	buf_append(log, data, len);
	buf_append(log, "\n", 1);
	return 0;
}

/* Feeds in pieces: size 0 means "one go", else pieces from the seed. */
static int feed_all(const uint8_t *in, size_t n, unsigned seed, int mode, buf *log)
{
	sse_parser p;
	sse_parser_init(&p, 512, on_event, log);
	int rc = 0;
	size_t off = 0;
	while (off < n && rc == 0) {
		size_t piece = n - off;
		if (mode == 1)
			piece = 1;
		else if (mode == 2) {
			seed = seed * 1103515245u + 12345u;
			piece = 1 + (seed >> 16) % 17;
			if (piece > n - off)
				piece = n - off;
		}
		char *blk = malloc(piece);
		if (!blk)
			break;
		memcpy(blk, in + off, piece);
		rc = sse_feed(&p, blk, piece);
		free(blk);
		off += piece;
	}
	sse_parser_free(&p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned seed = data[0];
	data++;
	size--;
	buf l0, l1, l2;
	buf_init(&l0, 0);
	buf_init(&l1, 0);
	buf_init(&l2, 0);
	int r0 = feed_all(data, size, seed, 0, &l0);
	int r1 = feed_all(data, size, seed, 1, &l1);
	int r2 = feed_all(data, size, seed, 2, &l2);
	check(r0 == r1 && r1 == r2);
	/* A cap failure may come at different points; compare logs only on success. */
	if (r0 == 0) {
		check(buf_rlen(&l0) == buf_rlen(&l1) && !memcmp(buf_rptr(&l0), buf_rptr(&l1), buf_rlen(&l0)));
		check(buf_rlen(&l0) == buf_rlen(&l2) && !memcmp(buf_rptr(&l0), buf_rptr(&l2), buf_rlen(&l0)));
	}
	buf_free(&l0);
	buf_free(&l1);
	buf_free(&l2);
	return 0;
}
