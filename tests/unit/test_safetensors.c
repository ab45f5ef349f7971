/*
 * test_safetensors.c — the safetensors reader on good files and on every kind
 * of broken one: each must give a clear error naming the file and the tensor,
 * never a crash or a read outside the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "t.h"
#include "infer/safetensors.h"

static char dir[128];

/* Writes [u64 len][header][data_len bytes of pattern] to dir/name. */
static void put(const char *name, const char *header, size_t data_len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	uint64_t n = strlen(header);
	unsigned char le[8];
	for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n >> (8 * i));
	fwrite(le, 1, 8, f);
	fwrite(header, 1, n, f);
	for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
	fclose(f);
}

static void put_raw(const char *name, const void *data, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	fwrite(data, 1, n, f);
	fclose(f);
}

/* Opens dir/name expecting failure; the message must contain every needle. */
static void expect_error(const char *name, const char *needle1, const char *needle2)
{
	char path[512], err[512] = "";
	snprintf(path, sizeof path, "%s/%s", dir, name);
	st_set *s = st_open_file(path, err, sizeof err);
	T_CHECK(s == NULL);
	if (s) st_close(s);
	T_CHECK(strstr(err, name) != NULL);
	if (needle1 && !strstr(err, needle1)) {
		fprintf(stderr, "  error was: %s\n", err);
		T_CHECK(0);
	}
	if (needle2 && !strstr(err, needle2)) {
		fprintf(stderr, "  error was: %s\n", err);
		T_CHECK(0);
	}
}

static void test_good(void)
{
	put("good.safetensors",
	    "{\"__metadata__\":{\"format\":\"pt\"},"
	    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
	    "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
	    "\"z\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[20,20]}}   ",
	    20);
	char path[512], err[256];
	snprintf(path, sizeof path, "%s/good.safetensors", dir);
	st_set *s = st_open_file(path, err, sizeof err);
	T_CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	T_EQ_INT(st_count(s), 3);
	const st_tensor *a = st_find(s, "a"), *b = st_find(s, "b");
	T_CHECK(a && b && !st_find(s, "c") && !st_find(s, "__metadata__"));
	T_EQ_INT(a->dtype, ST_BF16);
	T_EQ_INT(a->ndim, 2);
	T_EQ_INT(a->shape[1], 3);
	T_EQ_INT(a->nbytes, 12);
	T_EQ_INT(b->nbytes, 8);
	T_EQ_INT(((const unsigned char *)b->data)[0], 12); /* data pattern: byte i = i */
	T_EQ_INT(((const char *)b->data - (const char *)a->data), 12);
	T_EQ_STR(st_at(s, 0)->name, "a");
	st_close(s);
}

/* A header with no tensor (only metadata, or nothing) is a valid, empty
 * file: it loads with zero tensors, not UndefinedBehaviorSanitizer's "null
 * pointer passed" from sorting the empty table (found by fuzz_safetensors). */
static void test_empty(void)
{
	put("empty.safetensors", "{\"__metadata__\":{\"format\":\"pt\"}}", 0);
	char path[512], err[256] = "";
	snprintf(path, sizeof path, "%s/empty.safetensors", dir);
	st_set *s = st_open_file(path, err, sizeof err);
	T_CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	T_EQ_INT(st_count(s), 0);
	T_CHECK(st_find(s, "a") == NULL);
	st_close(s);
}

static void test_broken(void)
{
	const char *t = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}";
	put("truncated.safetensors", t, 5);
	expect_error("truncated.safetensors", "tensor w", "truncated");
	put("long.safetensors", t, 9);
	expect_error("long.safetensors", "9 data bytes", NULL);
	put("shape.safetensors", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[0,8]}}", 8);
	expect_error("shape.safetensors", "tensor w", "need 10");
	put("dtype.safetensors", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8);
	expect_error("dtype.safetensors", "tensor w", "unknown dtype");
	put("overlap.safetensors",
	    "{\"u\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
	    "\"v\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
	    8);
	expect_error("overlap.safetensors", "overlaps", NULL);
	put("gap.safetensors",
	    "{\"u\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
	    "\"v\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}",
	    8);
	expect_error("gap.safetensors", "tensor v", "gap");
	put("offsets.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,0]}}", 8);
	expect_error("offsets.safetensors", "tensor w", "data_offsets");
	put("negative.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[-4],\"data_offsets\":[0,4]}}", 4);
	expect_error("negative.safetensors", "tensor w", "shape");
	put("overflow.safetensors", "{\"w\":{\"dtype\":\"F64\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]}}", 8);
	expect_error("overflow.safetensors", "tensor w", NULL);
	put("json.safetensors", "{\"w\":{\"dtype\":", 8);
	expect_error("json.safetensors", "JSON", NULL);
	put("array.safetensors", "[1,2]", 0);
	expect_error("array.safetensors", "object", NULL);
	put("dup.safetensors",
	    "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
	    "\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
	    8);
	expect_error("dup.safetensors", "tensor w", "twice");
	/* a header length past the end, and a huge one */
	unsigned char past[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
	put_raw("past.safetensors", past, 10);
	expect_error("past.safetensors", "past the end", NULL);
	unsigned char huge[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}'};
	put_raw("huge.safetensors", huge, 10);
	expect_error("huge.safetensors", "exceeds the limit", NULL);
	put_raw("short.safetensors", "abc", 3);
	expect_error("short.safetensors", "too short", NULL);
	char err[256];
	T_CHECK(st_open_file("/nonexistent/x.safetensors", err, sizeof err) == NULL);
	T_CHECK(strstr(err, "/nonexistent/x.safetensors") != NULL);
}

static void test_sharded(void)
{
	char sub[256], err[512];
	snprintf(sub, sizeof sub, "%s/sharded", dir);
	T_CHECK(mkdir(sub, 0755) == 0);
	char saved[128];
	memcpy(saved, dir, sizeof saved);
	if (strlen(sub) >= sizeof dir) return;
	memcpy(dir, sub, strlen(sub) + 1);
	put("m-1.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
	put("m-2.safetensors", "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
	const char *idx = "{\"metadata\":{},\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}";
	put_raw("model.safetensors.index.json", idx, strlen(idx));
	st_set *s = st_open_dir(sub, err, sizeof err);
	T_CHECK(s != NULL);
	if (s) {
		T_EQ_INT(st_count(s), 2);
		T_CHECK(strstr(st_file_path(s, st_find(s, "b")->file), "m-2.safetensors") != NULL);
		st_close(s);
	}
	idx = "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"c\":\"m-2.safetensors\"}}";
	put_raw("model.safetensors.index.json", idx, strlen(idx));
	T_CHECK(st_open_dir(sub, err, sizeof err) == NULL);
	T_CHECK(strstr(err, "tensor c") != NULL);
	idx = "{\"weight_map\":{\"a\":\"../m-1.safetensors\"}}";
	put_raw("model.safetensors.index.json", idx, strlen(idx));
	T_CHECK(st_open_dir(sub, err, sizeof err) == NULL);
	T_CHECK(strstr(err, "plain file name") != NULL);
	idx = "{\"weight_map\":{\"a\":\"missing.safetensors\"}}";
	put_raw("model.safetensors.index.json", idx, strlen(idx));
	T_CHECK(st_open_dir(sub, err, sizeof err) == NULL);
	T_CHECK(strstr(err, "missing.safetensors") != NULL);
	memcpy(dir, saved, sizeof saved);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", sub);
	T_CHECK(system(cmd) == 0);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/ig-st.XXXXXX");
	if (!mkdtemp(dir)) return 1;
	T_RUN(test_good);
	T_RUN(test_empty);
	T_RUN(test_broken);
	T_RUN(test_sharded);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0) return 1;
	return T_END();
}
