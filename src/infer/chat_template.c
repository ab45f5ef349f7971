/*
 * chat_template.c — Gemma 3's chat template in C (see chat_template.h).
 *
 * The rendering follows the official template statement by statement, with
 * Python jinja2's semantics where they matter (this is what transformers, and so
 * vLLM, run): a missing key is "undefined" (iterable and empty, an error when
 * added to a string or indexed), `| trim` strips Python's str.isspace() set, a
 * non-string role cannot be concatenated. Where @huggingface/jinja (the JS port)
 * differs from jinja2 on malformed input, jinja2 wins; the cases are listed in
 * tests/chat_template/cases.jsonl.
 *
 * continue_final_message is transformers' algorithm, not "drop the last
 * <end_of_turn>": find the last occurrence of the final message's stripped text
 * in the rendering and cut after it.
 */
#include "infer/chat_template.h"
#include "infer/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

#define CHAT_MAX_TEMPLATE_BYTES (1u << 20)

/* The official Gemma 3 template (tokenizer_config.json of google/gemma-3-*-it). */
static const char gemma3_template[] =
	"{{ bos_token }}\n"
	"{%- if messages[0]['role'] == 'system' -%}\n"
	"    {%- if messages[0]['content'] is string -%}\n"
	"        {%- set first_user_prefix = messages[0]['content'] + '\n"
	"\n"
	"' -%}\n"
	"    {%- else -%}\n"
	"        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n"
	"\n"
	"' -%}\n"
	"    {%- endif -%}\n"
	"    {%- set loop_messages = messages[1:] -%}\n"
	"{%- else -%}\n"
	"    {%- set first_user_prefix = \"\" -%}\n"
	"    {%- set loop_messages = messages -%}\n"
	"{%- endif -%}\n"
	"{%- for message in loop_messages -%}\n"
	"    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
	"        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
	"    {%- endif -%}\n"
	"    {%- if (message['role'] == 'assistant') -%}\n"
	"        {%- set role = \"model\" -%}\n"
	"    {%- else -%}\n"
	"        {%- set role = message['role'] -%}\n"
	"    {%- endif -%}\n"
	"    {{ '<start_of_turn>' + role + '\n"
	"' + (first_user_prefix if loop.first else \"\") }}\n"
	"    {%- if message['content'] is string -%}\n"
	"        {{ message['content'] | trim }}\n"
	"    {%- elif message['content'] is iterable -%}\n"
	"        {%- for item in message['content'] -%}\n"
	"            {%- if item['type'] == 'image' -%}\n"
	"                {{ '<start_of_image>' }}\n"
	"            {%- elif item['type'] == 'text' -%}\n"
	"                {{ item['text'] | trim }}\n"
	"            {%- endif -%}\n"
	"        {%- endfor -%}\n"
	"    {%- else -%}\n"
	"        {{ raise_exception(\"Invalid content type\") }}\n"
	"    {%- endif -%}\n"
	"    {{ '<end_of_turn>\n"
	"' }}\n"
	"{%- endfor -%}\n"
	"{%- if add_generation_prompt -%}\n"
	"    {{'<start_of_turn>model\n"
	"'}}\n"
	"{%- endif -%}\n";

/* ------------------------------------------------------------------ strings */

/* Python's str.isspace(). */
static int py_space(uint32_t c)
{
	if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
	return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
	       c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decodes the character at s[i] (UTF-8, validated by the JSON reader);
 * sets *n to its length. */
static uint32_t decode_at(const unsigned char *s, size_t len, size_t i, size_t *n)
{
	unsigned char c = s[i];
	if (c < 0x80 || i + 1 >= len) {
		*n = 1;
		return c;
	}
	if (c < 0xE0) {
		*n = 2;
		return ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
	}
	if (c < 0xF0 || i + 3 >= len) {
		if (i + 2 >= len) {
			*n = 1;
			return c;
		}
		*n = 3;
		return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
	}
	*n = 4;
	return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
	       ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
}

/* Python's s.strip() / lstrip() / rstrip() as a [*b, *e) range of s. */
static void py_strip(const char *str, size_t len, int left, int right, size_t *b, size_t *e)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, j = len, n;
	if (left)
		while (i < j && py_space(decode_at(s, len, i, &n))) i += n;
	if (right)
		while (j > i) {
			size_t k = j - 1;
			while (k > i && (s[k] & 0xC0) == 0x80) k--;
			if (!py_space(decode_at(s, len, k, &n))) break;
			j = k;
		}
	*b = i;
	*e = j;
}

static int put(buf *out, const char *s, size_t n) { return buf_append(out, s, n); }
static int puts_(buf *out, const char *s) { return buf_append(out, s, strlen(s)); }

static int put_trimmed(buf *out, const char *s, size_t n)
{
	size_t b, e;
	py_strip(s, n, 1, 1, &b, &e);
	return put(out, s + b, e - b);
}

/* message['key'] as jinja2 sees it: NULL when undefined (missing key, or the
 * message is not a mapping). */
static const json_val *item(const json_val *obj, const char *key)
{
	return json_is(obj, JSON_OBJECT) ? json_get(obj, key) : NULL;
}

static int str_is(const json_val *v, const char *s)
{
	return json_is(v, JSON_STRING) && v->u.str.len == strlen(s) && memcmp(v->u.str.s, s, v->u.str.len) == 0;
}

/* ------------------------------------------------------------------ render */

/* The template, statement by statement. Returns 0, or -1 with err set. */
static int render(const json_val *messages, int add_generation_prompt, buf *out, char *err, size_t errlen)
{
	if (!json_is(messages, JSON_ARRAY)) {
		util_errf(err, errlen, "messages must be an array");
		return -1;
	}
	size_t n = json_count(messages);
	if (n == 0) {
		/* jinja2: messages[0]['role'] on an empty list is an undefined error. */
		util_errf(err, errlen, "messages must not be empty");
		return -1;
	}
	if (puts_(out, "<bos>") < 0) goto full;
	const json_val *first = json_at(messages, 0);
	const char *prefix = "";
	size_t prefix_len = 0, start = 0;
	if (str_is(item(first, "role"), "system")) {
		const json_val *c = item(first, "content");
		if (json_is(c, JSON_STRING)) {
			prefix = c->u.str.s;
			prefix_len = c->u.str.len;
		} else {
			/* messages[0]['content'][0]['text'] + '\n\n' */
			const json_val *t = json_is(c, JSON_ARRAY) ? item(json_at(c, 0), "text") : NULL;
			if (!json_is(t, JSON_STRING)) {
				util_errf(err, errlen, "the system message's content must be a string or a list "
						       "starting with a text part");
				return -1;
			}
			prefix = t->u.str.s;
			prefix_len = t->u.str.len;
		}
		start = 1;
	}
	for (size_t i = start; i < n; i++) {
		size_t index0 = i - start;
		const json_val *m = json_at(messages, i);
		const json_val *role = item(m, "role");
		if (str_is(role, "user") != (index0 % 2 == 0)) {
			util_errf(err, errlen, "%s", CHAT_ERR_ALTERNATE);
			return -1;
		}
		if (!json_is(role, JSON_STRING)) {
			/* '<start_of_turn>' + role: undefined or not a string */
			util_errf(err, errlen, "message %zu: role must be a string", i);
			return -1;
		}
		if (puts_(out, "<start_of_turn>") < 0) goto full;
		if (str_is(role, "assistant")) {
			if (puts_(out, "model") < 0) goto full;
		} else if (put(out, role->u.str.s, role->u.str.len) < 0) {
			goto full;
		}
		if (puts_(out, "\n") < 0) goto full;
		if (i == start && put(out, prefix, prefix_len) < 0) goto full;
		if (start && i == start && puts_(out, "\n\n") < 0) goto full;
		const json_val *c = item(m, "content");
		if (json_is(c, JSON_STRING)) {
			if (put_trimmed(out, c->u.str.s, c->u.str.len) < 0) goto full;
		} else if (!c && json_is(m, JSON_OBJECT)) {
			/* jinja2: an undefined value is iterable and empty. */
		} else if (json_is(c, JSON_ARRAY)) {
			for (size_t k = 0; k < json_count(c); k++) {
				const json_val *part = json_at(c, k);
				const json_val *type = item(part, "type");
				if (str_is(type, "image")) {
					if (puts_(out, "<start_of_image>") < 0) goto full;
				} else if (str_is(type, "text")) {
					const json_val *t = item(part, "text");
					if (!t) continue; /* undefined | trim == "" */
					if (!json_is(t, JSON_STRING)) {
						util_errf(err, errlen, "message %zu: a text part's text must be a string", i);
						return -1;
					}
					if (put_trimmed(out, t->u.str.s, t->u.str.len) < 0) goto full;
				}
			}
		} else {
			util_errf(err, errlen, "Invalid content type");
			return -1;
		}
		if (puts_(out, "<end_of_turn>\n") < 0) goto full;
	}
	if (add_generation_prompt && puts_(out, "<start_of_turn>model\n") < 0) goto full;
	return 0;
full:
	util_errf(err, errlen, "the rendered prompt is too long");
	return -1;
}

/* Last occurrence of needle in hay, or -1. */
static long rfind(const char *hay, size_t hay_len, const char *needle, size_t n)
{
	if (n > hay_len) return -1;
	for (size_t i = hay_len - n + 1; i-- > 0;)
		if (memcmp(hay + i, needle, n) == 0) return (long)i;
	return -1;
}

int chat_render(const json_val *messages, int add_generation_prompt, int continue_final_message,
		buf *out, char *err, size_t errlen)
{
	if (continue_final_message && add_generation_prompt) {
		util_errf(err, errlen, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
		return -1;
	}
	size_t base = out->len;
	if (render(messages, add_generation_prompt, out, err, errlen) < 0) {
		out->len = base;
		if (out->data) out->data[base] = 0;
		return -1;
	}
	if (!continue_final_message) return 0;
	/* transformers' apply_chat_template, continue_final_message branch. */
	const json_val *last = json_at(messages, json_count(messages) - 1);
	const json_val *c = item(last, "content");
	const json_val *text = NULL;
	if (json_is(c, JSON_ARRAY)) {
		for (size_t k = json_count(c); k-- > 0;) {
			const json_val *t = item(json_at(c, k), "text");
			if (t) {
				text = t;
				break;
			}
		}
		if (!text) {
			util_errf(err, errlen, "continue_final_message is set but we could not find any text to "
					       "continue in the final message!");
			goto fail;
		}
	} else {
		text = c;
	}
	if (!json_is(text, JSON_STRING)) {
		util_errf(err, errlen, "continue_final_message is set but the final message's content is not text");
		goto fail;
	}
	const char *rendered = out->data + base;
	size_t rlen = out->len - base, sb, se, lb, le;
	py_strip(text->u.str.s, text->u.str.len, 1, 1, &sb, &se);
	long loc = rfind(rendered, rlen, text->u.str.s + sb, se - sb);
	if (loc < 0) {
		util_errf(err, errlen, "continue_final_message is set but the final message does not appear in the "
				       "chat after applying the chat template! This can happen if the chat template deletes "
				       "portions of the final message. Please verify the chat template and final message in your "
				       "chat to ensure they are compatible.");
		goto fail;
	}
	py_strip(text->u.str.s, text->u.str.len, 1, 0, &lb, &le);
	size_t keep;
	size_t full_len = text->u.str.len, lstripped = le - lb;
	if ((size_t)loc + lstripped <= rlen && lstripped == full_len - 0 &&
	    memcmp(rendered + loc, text->u.str.s, full_len) == 0)
		keep = (size_t)loc + lstripped; /* the template kept the message as it was */
	else
		keep = (size_t)loc + (se - sb); /* trailing space was trimmed: cut after the stripped text */
	out->len = base + keep;
	out->data[out->len] = 0;
	return 0;
fail:
	out->len = base;
	if (out->data) out->data[base] = 0;
	return -1;
}

/* ------------------------------------------------------------------ recognising the template */

/* Appends a normal form of a Jinja template to out: inside {{ }} and {% %} every
 * whitespace character outside string literals is dropped; between tags, a
 * whitespace-only text that a "-" on either side strips is dropped; any other
 * text is kept as it is. Two templates with the same normal form render the same
 * output. Comments ({# #}) make it fail (returns -1), as does an unclosed tag. */
static int normalise(const char *s, buf *out)
{
	size_t n = strlen(s), i = 0;
	int prev_dash = 0; /* the previous tag ended with "-%}" or "-}}" */
	while (i < n) {
		const char *open = NULL;
		size_t j = i;
		for (; j + 1 < n; j++)
			if (s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#')) {
				open = s + j;
				break;
			}
		if (!open) j = n;
		/* Text from i to j. */
		int next_dash = open && j + 2 < n && s[j + 2] == '-';
		int blank = 1;
		for (size_t k = i; k < j; k++)
			if (!strchr(" \t\r\n", s[k])) blank = 0;
		if (!(blank && (prev_dash || next_dash)) && buf_append(out, s + i, j - i) < 0) return -1;
		if (!open) break;
		if (open[1] == '#') return -1;
		char close = open[1] == '{' ? '}' : '%';
		if (buf_append(out, open, 2) < 0) return -1;
		size_t k = j + 2;
		int closed = 0;
		while (k < n) {
			char c = s[k];
			if (c == '\'' || c == '"') {
				size_t q = k + 1;
				while (q < n && s[q] != c) q += s[q] == '\\' ? 2 : 1;
				if (q >= n) return -1;
				if (buf_append(out, s + k, q + 1 - k) < 0) return -1;
				k = q + 1;
				continue;
			}
			if (c == close && k + 1 < n && s[k + 1] == '}') {
				prev_dash = k > j + 2 && s[k - 1] == '-';
				if (buf_append(out, s + k, 2) < 0) return -1;
				k += 2;
				closed = 1;
				break;
			}
			if (!strchr(" \t\r\n", c) && buf_append(out, &c, 1) < 0) return -1;
			k++;
		}
		if (!closed) return -1;
		i = k;
	}
	return 0;
}

int chat_template_supported(const char *template_text, char *err, size_t errlen)
{
	if (!template_text) {
		util_errf(err, errlen, "the model has no chat template");
		return 0;
	}
	buf a, b;
	buf_init(&a, 4 * CHAT_MAX_TEMPLATE_BYTES);
	buf_init(&b, 4 * CHAT_MAX_TEMPLATE_BYTES);
	int ok = normalise(gemma3_template, &a) == 0 && normalise(template_text, &b) == 0 &&
		 buf_rlen(&a) == buf_rlen(&b) && memcmp(buf_rptr(&a), buf_rptr(&b), buf_rlen(&a)) == 0;
	buf_free(&a);
	buf_free(&b);
	if (!ok)
		util_errf(err, errlen, "unsupported chat template: only Gemma 3's official template can be rendered "
				       "(the engine does not interpret Jinja)");
	return ok;
}

/* Maps a file read-only (the JSON reader copies what it keeps): no copy and
 * no fresh pages for a megabyte of tokenizer_config.json. Returns the mapping
 * (munmap it with *len; "" for an empty file) or NULL with errno set. */
static const char *map_text(const char *path, size_t max_bytes, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max_bytes) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	*len = (size_t)st.st_size;
	void *p = *len ? mmap(NULL, *len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0) : (void *)"";
	int e = errno;
	close(fd);
	errno = e;
	return p == MAP_FAILED ? NULL : p;
}

/* A GGUF file's tokenizer.chat_template, checked as the folder's would be. */
static int check_gguf(const char *model_path, char *err, size_t errlen)
{
	char why[256];
	gguf_set *g = gguf_open(model_path, why, sizeof why);
	if (!g) {
		util_errf(err, errlen, "%s", why);
		return -1;
	}
	const char *p;
	size_t n;
	int ok = 0;
	if (gguf_kv_str(gguf_find_kv(g, "tokenizer.chat_template"), &p, &n) < 0) {
		util_errf(err, errlen, "%s: no tokenizer.chat_template", gguf_part_path(g, 0));
	} else if (n > CHAT_MAX_TEMPLATE_BYTES || memchr(p, 0, n)) {
		util_errf(err, errlen, "%s: tokenizer.chat_template is too long or contains a NUL byte", gguf_part_path(g, 0));
	} else {
		char *text = str_ndup(p, n);
		ok = text && chat_template_supported(text, why, sizeof why);
		if (!ok) util_errf(err, errlen, "%s: tokenizer.chat_template: %s", gguf_part_path(g, 0), text ? why : "out of memory");
		free(text);
	}
	gguf_close(g);
	return ok ? 0 : -1;
}

int chat_template_check_dir(const char *model_dir, char *err, size_t errlen)
{
	char path[4096];
	size_t len;
	if (gguf_is_model_path(model_dir)) return check_gguf(model_dir, err, errlen);
	snprintf(path, sizeof(path), "%s/chat_template.jinja", model_dir);
	char *text = util_read_file(path, CHAT_MAX_TEMPLATE_BYTES, &len, NULL, 0);
	if (text) {
		int ok = strlen(text) == len && chat_template_supported(text, err, errlen);
		if (!ok && strlen(text) != len) util_errf(err, errlen, "%s: contains a NUL byte", path);
		else if (!ok) {
			char why[256];
			str_copy(why, err ? err : "", sizeof(why));
			util_errf(err, errlen, "%s: %s", path, why);
		}
		free(text);
		return ok ? 0 : -1;
	}
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", model_dir);
	const char *mapped = map_text(path, 64u << 20, &len);
	if (!mapped) {
		util_errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	json_error jerr;
	json_doc *doc = json_parse(mapped, len, 0, &jerr);
	if (len) munmap((void *)mapped, len);
	if (!doc) {
		util_errf(err, errlen, "%s:%u:%u: %s", path, jerr.line, jerr.col, jerr.msg);
		return -1;
	}
	const json_val *t = json_get(json_root(doc), "chat_template");
	const char *tmpl = json_str(t, NULL);
	if (json_is(t, JSON_ARRAY)) {
		/* [{"name": "default", "template": ...}, ...] */
		for (size_t i = 0; i < json_count(t); i++)
			if (str_is(json_get(json_at(t, i), "name"), "default"))
				tmpl = json_str(json_get(json_at(t, i), "template"), NULL);
	}
	int ok = 0;
	if (!tmpl) {
		util_errf(err, errlen, "%s: no chat_template", path);
	} else if (strlen(tmpl) != json_get(json_root(doc), "chat_template")->u.str.len && json_is(t, JSON_STRING)) {
		util_errf(err, errlen, "%s: chat_template contains a NUL byte", path);
	} else {
		char why[256];
		ok = chat_template_supported(tmpl, why, sizeof(why));
		if (!ok) util_errf(err, errlen, "%s: %s", path, why);
	}
	json_doc_free(doc);
	return ok ? 0 : -1;
}
