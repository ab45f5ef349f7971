/*
 * json.h — the one JSON reader and writer of every program.
 *
 * Reader: json_parse() turns a whole text into a read-only tree that lives in one
 * arena owned by a json_doc; json_doc_free() releases all of it at once. Strings
 * are unescaped, NUL-terminated and validated as UTF-8 (a lone surrogate in a
 * \u escape becomes U+FFFD). Every value knows the line and column where it
 * starts, so configuration errors can name them (the YAML loader in cfg.h builds
 * the same tree). Limits: nesting depth (default 128), and the text's size is the
 * caller's (they read it under their own cap). Fast enough for a 33 MB
 * tokenizer.json (one pass, no per-value malloc).
 *
 * Writer: json_w appends to a buf, with commas and escaping handled; invalid
 * UTF-8 in strings is written as U+FFFD so the output is always valid JSON.
 */
#ifndef CORE_JSON_H
#define CORE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

typedef enum json_type {
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT
} json_type;

typedef struct json_val json_val;
typedef struct json_member {
	const char *key;
	size_t key_len;
	json_val *val;
} json_member;

struct json_val {
	json_type type;
	uint32_t line, col; /* 1-based position of the value in the source */
	union {
		double num; /* JSON_NUMBER */
		struct {
			const char *s;
			size_t len;
		} str; /* JSON_STRING (NUL-terminated) */
		struct {
			json_val **items;
			size_t n;
		} arr; /* JSON_ARRAY */
		struct {
			json_member *members;
			size_t n;
		} obj; /* JSON_OBJECT, in source order */
	} u;
	/* JSON_NUMBER only: the number was an integer literal (no '.', no exponent)
	 * that fits int64; then `i` holds it exactly. */
	int is_int;
	int64_t i;
};

typedef struct json_doc json_doc;

typedef struct json_error {
	uint32_t line, col;
	char msg[128];
} json_error;

/* Parses len bytes (need not be NUL-terminated). Returns a document, or NULL with
 * *err filled (err may be NULL). max_depth 0 means the default (128). */
json_doc *json_parse(const char *text, size_t len, size_t max_depth, json_error *err);
const json_val *json_root(const json_doc *doc);
void json_doc_free(json_doc *doc);

/* The cursor: a reader that walks a text without building a tree, for
 * callers that need a few fields of a large document (the gateway reads a
 * request's model and stream flag, not its 16 MiB of prompt). The grammar,
 * the string decoding and the error messages are json_parse's. Memory: the
 * cursor, two bytes per nesting level, and one buffer that holds the last
 * string read (at most the longest string of the text): never more than
 * the text's size plus a constant, whatever its shape.
 *
 *   json_cursor *c = json_cursor_new(text, len, 64, &err);
 *   if (json_cursor_enter(c) == 0)             // the root object
 *       while ((r = json_cursor_next(c, &key, &key_len)) == 1)
 *           if (!strcmp(key, "model")) json_cursor_leaf(c, &v); else json_cursor_skip(c);
 *   ... r < 0 || json_cursor_end(c) < 0: err filled; json_cursor_free(c).
 *
 * Every function returns -1 once the text is found malformed (err then says
 * where and why, as json_parse's). Strings (values, and keys cut to
 * JSON_CURSOR_KEY_MAX bytes) are valid until the next call. */
#define JSON_CURSOR_KEY_MAX 63
typedef struct json_cursor json_cursor;
json_cursor *json_cursor_new(const char *text, size_t len, size_t max_depth, json_error *err);
void json_cursor_free(json_cursor *c);
/* Starts c over on another text, as json_cursor_new would with c's depth
 * limit, keeping its string buffer (up to JSON_CURSOR_KEEP_BYTES) so a cursor
 * reused for every request allocates nothing in steady state. */
#define JSON_CURSOR_KEEP_BYTES (64 * 1024)
void json_cursor_reset(json_cursor *c, const char *text, size_t len, json_error *err);
/* The type (json_type) of the value at the cursor, not consumed; -1 on error. */
int json_cursor_peek(json_cursor *c);
/* Steps into the object or array at the cursor. 0, or -1. */
int json_cursor_enter(json_cursor *c);
/* In the container last entered: 1 when an element follows (objects: its key
 * in *key, its full length in *key_len; the value is next at the cursor), 0
 * when the container ended (the cursor is after it), -1 on error. */
int json_cursor_next(json_cursor *c, const char **key, size_t *key_len);
/* Reads the value at the cursor into v: a string (v->u.str valid until the
 * next call), a number, true, false, null; an object or array is skipped
 * (v->type says which, with no members). 0, or -1. */
int json_cursor_leaf(json_cursor *c, json_val *v);
/* Skips the value at the cursor, checking it whole. 0, or -1. */
int json_cursor_skip(json_cursor *c);
/* After the root value: 0 when only whitespace follows, else -1. */
int json_cursor_end(json_cursor *c);
/* Where the cursor is in the text it reads (after json_cursor_peek: the
 * first byte of the next value); for callers that rewrite a value in place. */
const char *json_cursor_pos(const json_cursor *c);
/* Containers open now; 1 once an error was found. */
size_t json_cursor_depth(const json_cursor *c);
int json_cursor_failed(const json_cursor *c);

/* Building a tree by hand (the YAML loader does): an empty document, memory from
 * its arena (8-byte aligned, freed with the document), and its root. */
json_doc *json_doc_new(void);
void *json_doc_alloc(json_doc *doc, size_t n);
void json_doc_set_root(json_doc *doc, json_val *root);

/* Accessors; all accept NULL and answer "absent". */
const json_val *json_get(const json_val *obj, const char *key); /* last duplicate wins */
const json_val *json_getn(const json_val *obj, const char *key, size_t key_len);
size_t json_count(const json_val *v); /* array/object size */
const json_val *json_at(const json_val *arr, size_t i);
int json_is(const json_val *v, json_type t);
const char *json_str(const json_val *v, const char *dflt); /* strings only */
/* The string when it holds no NUL ("a\u0000b" unescapes to one), so that it
 * means the same as a C string as it does in JSON; else NULL. Use it wherever
 * a string names something (a model, a key compared with strcmp). */
const char *json_cstr(const json_val *v);
double json_num(const json_val *v, double dflt); /* numbers only */
int json_bool(const json_val *v, int dflt);      /* true/false only */
const char *json_type_name(json_type t);         /* "string", ... */
/* An integral number that fits int64 (1, -3, 2.0, 1e3): 0 and *out set; else -1. */
int json_int64(const json_val *v, int64_t *out);
/* Deep equality: same types, numbers equal, strings byte-equal, members in order. */
int json_equal(const json_val *a, const json_val *b);

/* Writer. depth is bounded (64); going deeper sets the error flag. */
#define JSON_W_MAX_DEPTH 64
typedef struct json_w {
	buf *out;
	int depth;
	int error;                             /* set when out hit its cap or depth overflowed */
	unsigned char first[JSON_W_MAX_DEPTH]; /* 1 while no element written at that depth */
	int after_key;
} json_w;

void jw_init(json_w *w, buf *out);
void jw_obj_begin(json_w *w);
void jw_obj_end(json_w *w);
void jw_arr_begin(json_w *w);
void jw_arr_end(json_w *w);
void jw_key(json_w *w, const char *key);
void jw_keyn(json_w *w, const char *key, size_t n);
void jw_str(json_w *w, const char *s); /* NULL writes null */
void jw_strn(json_w *w, const char *s, size_t n);
void jw_int(json_w *w, int64_t v);
void jw_uint(json_w *w, uint64_t v);
void jw_double(json_w *w, double v); /* shortest round-trip form; NaN/inf -> null */
void jw_bool(json_w *w, int v);
void jw_null(json_w *w);
void jw_raw(json_w *w, const char *json, size_t n); /* an already-encoded value */
void jw_value(json_w *w, const json_val *v);        /* a parsed tree, written back */
/* Shortest "%.*g" form of a finite double that reads back to the same bits, into
 * out (40 bytes are enough). Returns its length, or -1 for NaN/inf. */
int json_format_double(char *out, size_t size, double v);
/* strtod in the C locale, whatever the program's locale. */
double json_strtod(const char *s, char **end);
/* Appends s escaped as JSON string contents (no quotes) to out. */
int json_escape(buf *out, const char *s, size_t n);

#endif
