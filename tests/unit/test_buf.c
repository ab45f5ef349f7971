/* test_buf.c — the byte buffer: appends, caps, consume and reclaim, printf, detach. */
#include "core/buf.h"
#include "t.h"
#include <stdlib.h>

static void test_append_consume(void)
{
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(buf_rlen(&b), 0);
	T_EQ_STR(buf_rptr(&b), "");
	T_EQ_INT(buf_puts(&b, "hello "), 0);
	T_EQ_INT(buf_append(&b, "world", 5), 0);
	T_EQ_STR(buf_rptr(&b), "hello world");
	buf_consume(&b, 6);
	T_EQ_STR(buf_rptr(&b), "world");
	T_EQ_INT(buf_rlen(&b), 5);
	buf_consume(&b, 100);
	T_EQ_INT(buf_rlen(&b), 0);
	T_EQ_INT(b.rd, 0);
	buf_free(&b);
}

static void test_cap(void)
{
	buf b;
	buf_init(&b, 8);
	T_EQ_INT(buf_append(&b, "12345678", 8), 0);
	T_EQ_INT(buf_append(&b, "9", 1), -1);
	T_EQ_STR(buf_rptr(&b), "12345678");
	buf_consume(&b, 4);
	T_EQ_INT(buf_append(&b, "abcd", 4), 0);
	T_EQ_STR(buf_rptr(&b), "5678abcd");
	T_CHECK(buf_space(&b, 1) == NULL);
	T_EQ_INT(buf_printf(&b, "%d", 1), -1);
	T_EQ_STR(buf_rptr(&b), "5678abcd");
	buf_free(&b);
}

static void test_reclaim(void)
{
	buf b;
	buf_init(&b, 0);
	char chunk[100];
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 1000; i++) {
		T_EQ_INT(buf_append(&b, chunk, sizeof(chunk)), 0);
		buf_consume(&b, 60);
		if (buf_rlen(&b) > 500) buf_consume(&b, buf_rlen(&b) - 100);
	}
	T_CHECK(b.cap <= 2048);
	buf_free(&b);
}

static void test_printf(void)
{
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(buf_printf(&b, "%s=%d", "a", 42), 0);
	char big[5000];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	T_EQ_INT(buf_printf(&b, ";%s;", big), 0);
	T_EQ_INT(buf_rlen(&b), 4 + 2 + 4999);
	T_CHECK(memcmp(buf_rptr(&b), "a=42;yyy", 8) == 0);
	T_EQ_INT(buf_rptr(&b)[buf_rlen(&b)], 0);
	buf_free(&b);
}

static void test_space_commit_detach(void)
{
	buf b;
	buf_init(&b, 0);
	char *p = buf_space(&b, 3);
	T_CHECK(p != NULL);
	memcpy(p, "abc", 3);
	buf_commit(&b, 3);
	buf_consume(&b, 1);
	size_t n = 0;
	char *s = buf_detach(&b, &n);
	T_EQ_STR(s, "bc");
	T_EQ_INT(n, 2);
	free(s);
	T_EQ_INT(buf_rlen(&b), 0);
	s = buf_detach(&b, &n);
	T_EQ_STR(s, "");
	free(s);
	buf_free(&b);
}

/* Storage lent in and taken back out whole, as the loop's read blocks are. */
static void test_attach_take(void)
{
	buf b;
	buf_init(&b, 0);
	size_t cap = 0;
	T_CHECK(buf_take_storage(&b, &cap) == NULL); /* none */
	char *blk = malloc(64);
	buf_attach(&b, blk, 64);
	T_CHECK(b.data == blk && b.cap == 64 && buf_rlen(&b) == 0);
	buf_attach(&b, (char *)"other", 6); /* has storage: ignored */
	T_CHECK(b.data == blk);
	T_EQ_INT(buf_append(&b, "hello", 5), 0);
	T_CHECK(b.data == blk);                      /* fits: no reallocation */
	T_CHECK(buf_take_storage(&b, &cap) == NULL); /* still holds bytes */
	buf_consume(&b, 5);
	T_CHECK(buf_take_storage(&b, &cap) == blk);
	T_EQ_INT(cap, 64);
	T_CHECK(b.data == NULL && b.cap == 0);
	buf_attach(&b, blk, 64);
	T_EQ_INT(buf_append(&b, "0123456789012345678901234567890123456789012345678901234567890123456789", 70), 0);
	T_EQ_INT(buf_rlen(&b), 70); /* grew past the block: reallocated */
	buf_free(&b);
}

int main(void)
{
	T_RUN(test_append_consume);
	T_RUN(test_cap);
	T_RUN(test_reclaim);
	T_RUN(test_printf);
	T_RUN(test_space_commit_detach);
	T_RUN(test_attach_take);
	return T_END();
}
