/*
 * fuzz_json.c — libFuzzer target for the JSON reader and writer.
 *
 * The input is parsed from an exact-size heap copy (ASan catches any read past
 * its end). When it parses, the tree is written back with jw_value and that
 * text must parse again to an equal tree, and writing that one must give the
 * same bytes (the writer's output is a fixed point).
 * fuzz-max-len: 8192
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	json_error err, cerr;
	json_doc *a = json_parse(text, size, 0, &err);
	/* The cursor walks the same grammar: it accepts exactly what the parser
	 * does, and refuses at the same place with the same message. */
	json_cursor *cur = json_cursor_new(text, size, 0, &cerr);
	if (cur) {
		int ok = json_cursor_skip(cur) == 0 && json_cursor_end(cur) == 0;
		check(ok == (a != NULL));
		if (!ok && strcmp(err.msg, "out of memory") && strcmp(cerr.msg, "out of memory"))
			check(err.line == cerr.line && err.col == cerr.col && !strcmp(err.msg, cerr.msg));
		json_cursor_free(cur);
	}
	free(text);
	if (!a) {
		check(err.msg[0] != 0);
		return 0;
	}
	buf out1, out2;
	buf_init(&out1, 0);
	buf_init(&out2, 0);
	json_w w;
	jw_init(&w, &out1);
	jw_value(&w, json_root(a));
	/* The writer nests at most JSON_W_MAX_DEPTH; deeper trees set the flag. */
	if (!w.error) {
		check(w.depth == 0);
		json_doc *b = json_parse(buf_rptr(&out1), buf_rlen(&out1), 0, &err);
		check(b != NULL);
		check(json_equal(json_root(a), json_root(b)));
		jw_init(&w, &out2);
		jw_value(&w, json_root(b));
		check(!w.error);
		check(buf_rlen(&out1) == buf_rlen(&out2) && memcmp(buf_rptr(&out1), buf_rptr(&out2), buf_rlen(&out1)) == 0);
		json_doc_free(b);
	}
	buf_free(&out1);
	buf_free(&out2);
	json_doc_free(a);
	return 0;
}
