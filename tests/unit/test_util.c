/* test_util.c — durations, sizes, integers, string helpers, hash stability, log limiter. */
#include "core/util.h"
#include "core/log.h"
#include "t.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_duration(void)
{
	uint64_t ms = 0;
	T_EQ_INT(parse_duration_ms("1.5s", 1000, &ms), 0);
	T_EQ_INT(ms, 1500);
	T_EQ_INT(parse_duration_ms("100ms", 1000, &ms), 0);
	T_EQ_INT(ms, 100);
	T_EQ_INT(parse_duration_ms("2m", 1000, &ms), 0);
	T_EQ_INT(ms, 120000);
	T_EQ_INT(parse_duration_ms("1h", 1000, &ms), 0);
	T_EQ_INT(ms, 3600000);
	T_EQ_INT(parse_duration_ms("2500us", 1000, &ms), 0);
	T_EQ_INT(ms, 3);
	T_EQ_INT(parse_duration_ms("7", 1000, &ms), 0);
	T_EQ_INT(ms, 7000);
	T_EQ_INT(parse_duration_ms("7", 1, &ms), 0);
	T_EQ_INT(ms, 7);
	T_EQ_INT(parse_duration_ms("", 1000, &ms), -1);
	T_EQ_INT(parse_duration_ms("1x", 1000, &ms), -1);
	T_EQ_INT(parse_duration_ms("-1s", 1000, &ms), -1);
	T_EQ_INT(parse_duration_ms("s", 1000, &ms), -1);
}

static void test_size(void)
{
	uint64_t b = 0;
	T_EQ_INT(parse_size_bytes("512", &b), 0);
	T_EQ_INT(b, 512);
	T_EQ_INT(parse_size_bytes("64KiB", &b), 0);
	T_EQ_INT(b, 65536);
	T_EQ_INT(parse_size_bytes("10MB", &b), 0);
	T_EQ_INT(b, 10000000);
	T_EQ_INT(parse_size_bytes("2GiB", &b), 0);
	T_EQ_INT(b, 2147483648ll);
	T_EQ_INT(parse_size_bytes("1G", &b), 0);
	T_EQ_INT(b, 1073741824ll);
	T_EQ_INT(parse_size_bytes("1Q", &b), -1);
	T_EQ_INT(parse_size_bytes("", &b), -1);
}

static void test_int(void)
{
	int64_t v = 0;
	T_EQ_INT(parse_int64("42", 0, 100, &v), 0);
	T_EQ_INT(v, 42);
	T_EQ_INT(parse_int64("-5", -10, 10, &v), 0);
	T_EQ_INT(v, -5);
	T_EQ_INT(parse_int64("101", 0, 100, &v), -1);
	T_EQ_INT(parse_int64("4x", 0, 100, &v), -1);
	T_EQ_INT(parse_int64("", 0, 100, &v), -1);
	T_EQ_INT(parse_int64(" 4", 0, 100, &v), -1);
	T_EQ_INT(parse_int64("99999999999999999999", 0, INT64_MAX, &v), -1);
}

static void test_strings(void)
{
	char d[4];
	T_EQ_INT(str_copy(d, "hello", sizeof(d)), 5);
	T_EQ_STR(d, "hel");
	T_CHECK(str_ieq("Content-Length", 14, "content-length"));
	T_CHECK(!str_ieq("Content-Length", 13, "content-length"));
	char *s = str_ndup("abcdef", 3);
	T_EQ_STR(s, "abc");
	free(s);
	s = str_dup("x");
	T_EQ_STR(s, "x");
	free(s);
}

static void test_pct_decode(void)
{
	char out[16];
	T_EQ_INT(pct_decode("org%2Fname", 10, out, sizeof out), 8);
	T_EQ_STR(out, "org/name");
	T_EQ_INT(pct_decode("a%2fb%20c", 9, out, sizeof out), 5);
	T_EQ_STR(out, "a/b c");
	T_EQ_INT(pct_decode("plain", 5, out, sizeof out), 5);
	T_EQ_STR(out, "plain");
	T_EQ_INT(pct_decode("", 0, out, sizeof out), 0);
	T_EQ_STR(out, "");
	T_EQ_INT(pct_decode("%zz", 3, out, sizeof out), -1);  /* not hex */
	T_EQ_INT(pct_decode("ab%2", 4, out, sizeof out), -1); /* cut short */
	T_EQ_INT(pct_decode("%00", 3, out, sizeof out), -1);  /* an encoded NUL */
	T_EQ_INT(pct_decode("abcd", 4, out, 4), -1);          /* no room for the NUL */
	T_EQ_INT(pct_decode("abc", 3, out, 4), 3);
	T_EQ_INT(pct_decode("a", 1, out, 0), -1);
}

static void test_hash(void)
{
	const char *a = "the quick brown fox jumps over the lazy dog";
	T_CHECK(hash64(a, strlen(a), 1) == hash64(a, strlen(a), 1));
	T_CHECK(hash64(a, strlen(a), 1) != hash64(a, strlen(a), 2));
	T_CHECK(hash64(a, 10, 1) != hash64(a, 11, 1));
	T_CHECK(hash64("", 0, 0) != hash64("", 0, 1));
	/* Every length up to 40 hashes differently from its neighbour. */
	for (size_t n = 1; n < 40; n++) T_CHECK(hash64(a, n, 7) != hash64(a, n - 1, 7));
	T_CHECK(time_mono_ms() > 0 && time_wall_ms() > 1600000000000ull);
}

static void test_log_rl(void)
{
	log_rl rl = {0};
	int allowed = 0;
	for (int i = 0; i < 50; i++) allowed += log_rl_allow(&rl, 100000, 10);
	T_EQ_INT(allowed, 10);
	T_EQ_INT(rl.suppressed, 40);
	T_EQ_INT(log_level_parse("warn"), LOG_WARN);
	T_EQ_INT(log_level_parse("nope"), -1);
}

/* log_limited: burst lines per window per limiter, the rest counted and
 * reported (then reset) by the first line of the next window. */
static void test_log_limited(void)
{
	log_set_level(LOG_ERROR); /* warnings below the level: nothing counted, nothing written */
	log_rl rl = {0};
	for (int i = 0; i < 5; i++) log_limited(&rl, 10000, 3, LOG_WARN, "endpoint x: line %d", i);
	T_EQ_INT(rl.count, 0);
	log_rl a = {0}, b = {0};
	for (int i = 0; i < 5; i++) log_limited(&a, 10000, 3, LOG_ERROR, "endpoint a: line %d", i);
	log_limited(&b, 10000, 3, LOG_ERROR, "endpoint b: line");
	T_EQ_INT(a.count, 3);
	T_EQ_INT(a.suppressed, 2);
	T_EQ_INT(b.count, 1); /* one endpoint's flood leaves another's lines alone */
	T_EQ_INT(b.suppressed, 0);
	a.window_start_ms -= 20000; /* the window ends: the next line carries the count */
	log_limited(&a, 10000, 3, LOG_ERROR, "endpoint a: again");
	T_EQ_INT(a.count, 1);
	T_EQ_INT(a.suppressed, 0);
	log_set_level(LOG_INFO);
}

/* util_read_file: the one whole-file reader (weights cache, tokenizer, model
 * config, templates, safetensors headers). A file at its cap reads, one byte
 * over is refused; a huge cap costs a small file nothing; a file whose size
 * says 0 (/proc) reads whole; a missing one keeps errno and names the path. */
static void test_read_file(void)
{
	char path[] = "/tmp/test_util_read.XXXXXX", err[256];
	int fd = mkstemp(path);
	T_CHECK(fd >= 0);
	char data[10000];
	for (size_t i = 0; i < sizeof(data); i++) data[i] = (char)('a' + i % 26);
	T_EQ_INT(write(fd, data, sizeof(data)), (long)sizeof(data));
	close(fd);
	size_t len = 1;
	char *b = util_read_file(path, sizeof(data), &len, err, sizeof(err));
	T_CHECK(b != NULL);
	T_EQ_INT(len, sizeof(data));
	T_CHECK(b && memcmp(b, data, sizeof(data)) == 0 && b[len] == 0);
	free(b);
	b = util_read_file(path, (size_t)1 << 40, &len, err, sizeof(err)); /* a cap far beyond memory */
	T_CHECK(b != NULL && len == sizeof(data));
	free(b);
	T_CHECK(util_read_file(path, sizeof(data) - 1, &len, err, sizeof(err)) == NULL);
	T_EQ_INT(errno, EFBIG);
	T_CHECK(strstr(err, "larger than 9999 bytes") && strstr(err, path));
	T_EQ_INT(len, 0);
	unlink(path);
	errno = 0;
	T_CHECK(util_read_file(path, 100, &len, err, sizeof(err)) == NULL);
	T_EQ_INT(errno, ENOENT);
	T_CHECK(strstr(err, "cannot open") && strstr(err, path));
	b = util_read_file("/proc/self/status", 1 << 20, &len, err, sizeof(err));
	T_CHECK(b && len > 0 && strstr(b, "Name:"));
	free(b);
	b = util_read_file("/proc/self/status", 8, &len, err, sizeof(err));
	T_CHECK(b == NULL && strstr(err, "larger than 8 bytes"));
	T_CHECK(util_read_file("/tmp", 100, &len, err, sizeof(err)) == NULL); /* a folder opens, its read fails */
	T_EQ_INT(errno, EISDIR);
	T_CHECK(strstr(err, "/tmp: read: ") != NULL);
}

int main(void)
{
	T_RUN(test_duration);
	T_RUN(test_size);
	T_RUN(test_int);
	T_RUN(test_strings);
	T_RUN(test_pct_decode);
	T_RUN(test_read_file);
	T_RUN(test_hash);
	T_RUN(test_log_rl);
	T_RUN(test_log_limited);
	return T_END();
}
