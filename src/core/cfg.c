/*
 * cfg.c — YAML configuration through libyaml's event parser, into a json_val
 * tree, and the validation helpers declared in cfg.h.
 *
 * The loader walks the event stream recursively (bounded by CFG_MAX_DEPTH) and
 * gathers children on a scratch stack, copying them into the document's arena
 * when their collection ends, as the JSON reader does. Not here: anchors and
 * aliases (refused), merge keys, multi-document streams, custom tags.
 */
#include "core/cfg.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CFG_DEFAULT_MAX_BYTES (16u << 20)

/* ------------------------------------------------------------------ loader */

typedef struct loader {
	yaml_parser_t parser;
	json_doc *doc;
	json_member *scratch;
	size_t n_scratch, cap_scratch;
	const char *name;
	char *err;
	size_t errlen;
	int failed;
} loader;

static void load_fail(loader *ld, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void load_fail(loader *ld, const yaml_mark_t *m, const char *fmt, ...)
{
	if (ld->failed)
		return;
	ld->failed = 1;
	if (!ld->err || !ld->errlen)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m)
		snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s", ld->name, m->line + 1, m->column + 1, msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", ld->name, msg);
}

/* Pulls the next event; on a YAML syntax error reports it and returns -1. */
static int next_event(loader *ld, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&ld->parser, ev)) {
		yaml_parser_t *p = &ld->parser;
		const char *what = p->problem ? p->problem : "invalid YAML";
		if (p->context)
			load_fail(ld, &p->problem_mark, "%s %s", p->context, what);
		else
			load_fail(ld, &p->problem_mark, "%s", what);
		return -1;
	}
	return 0;
}

static json_val *new_val(loader *ld, json_type t, const yaml_mark_t *m)
{
	json_val *v = json_doc_alloc(ld->doc, sizeof(*v));
	if (!v) {
		load_fail(ld, m, "out of memory");
		return NULL;
	}
	memset(v, 0, sizeof(*v));
	v->type = t;
	v->line = m->line + 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(m->line + 1);
	v->col = m->column + 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(m->column + 1);
	return v;
}

static int scratch_push(loader *ld, const char *key, size_t key_len, json_val *v)
{
	if (ld->n_scratch == ld->cap_scratch) {
		size_t nc = ld->cap_scratch ? ld->cap_scratch * 2 : 64;
		json_member *ns = realloc(ld->scratch, nc * sizeof(*ns));
		if (!ns) {
			load_fail(ld, NULL, "out of memory");
			return -1;
		}
		ld->scratch = ns;
		ld->cap_scratch = nc;
	}
	ld->scratch[ld->n_scratch].key = key;
	ld->scratch[ld->n_scratch].key_len = key_len;
	ld->scratch[ld->n_scratch].val = v;
	ld->n_scratch++;
	return 0;
}

static int all_digits(const char *s, size_t n, int base)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int ok = base == 16  ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
			 : base == 8 ? (c >= '0' && c <= '7')
				     : (c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_core_float(const char *s, size_t n)
{
	size_t i = 0, d = 0;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, d++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, d++;
	}
	if (!d)
		return 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		size_t e = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, e++;
		if (!e)
			return 0;
	}
	return i == n;
}

static int eq_any(const char *s, size_t n, const char *const words[])
{
	for (size_t i = 0; words[i]; i++)
		if (strlen(words[i]) == n && memcmp(s, words[i], n) == 0)
			return 1;
	return 0;
}

/* Types a plain scalar by the YAML 1.2 core schema. Returns the type it took
 * (JSON_STRING when it is none of the others); v gets the value. */
static json_type resolve_plain(const char *s, size_t n, json_val *v)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
	static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
	static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
	if (eq_any(s, n, nulls))
		return v->type = JSON_NULL;
	if (eq_any(s, n, trues))
		return v->type = JSON_TRUE;
	if (eq_any(s, n, falses))
		return v->type = JSON_FALSE;
	v->is_int = 0;
	if (eq_any(s, n, infs)) {
		v->u.num = INFINITY;
		return v->type = JSON_NUMBER;
	}
	if (eq_any(s, n, ninfs)) {
		v->u.num = -INFINITY;
		return v->type = JSON_NUMBER;
	}
	if (eq_any(s, n, nans)) {
		v->u.num = NAN;
		return v->type = JSON_NUMBER;
	}
	int base = 0;
	size_t skip = 0;
	if (n > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s + 2, n - 2, 16))
		base = 16, skip = 2;
	else if (n > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s + 2, n - 2, 8))
		base = 8, skip = 2;
	else if (n > 0 && (s[0] == '-' || s[0] == '+') && all_digits(s + 1, n - 1, 10))
		base = 10, skip = 1;
	else if (all_digits(s, n, 10))
		base = 10;
	if (base && n - skip <= 64) {
		int neg = s[0] == '-';
		uint64_t u = 0;
		int over = 0;
		for (size_t i = skip; i < n; i++) {
			char c = s[i];
			unsigned d = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
			if (u > (UINT64_MAX - d) / (unsigned)base) {
				over = 1;
				break;
			}
			u = u * (unsigned)base + d;
		}
		if (!over && (neg ? u <= (uint64_t)INT64_MAX + 1 : u <= (uint64_t)INT64_MAX)) {
			v->is_int = 1;
			v->i = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
			v->u.num = (double)v->i;
			return v->type = JSON_NUMBER;
		}
		if (base != 10)
			return JSON_STRING; /* hex/octal beyond int64: left as text */
	}
	if (is_core_float(s, n) && n < 512) {
		char tmp[512];
		memcpy(tmp, s, n);
		tmp[n] = 0;
		v->u.num = json_strtod(tmp, NULL);
		return v->type = JSON_NUMBER;
	}
	return JSON_STRING;
}

static int tag_is(const yaml_char_t *tag, const char *full)
{
	return tag && strcmp((const char *)tag, full) == 0;
}

static json_val *load_scalar(loader *ld, yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	const yaml_char_t *tag = ev->data.scalar.tag;
	json_val *v = new_val(ld, JSON_STRING, &ev->start_mark);
	if (!v)
		return NULL;
	int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	if (tag && !tag_is(tag, YAML_STR_TAG)) {
		static const struct {
			const char *tag;
			json_type t;
		} known[] = {
			{YAML_NULL_TAG, JSON_NULL},
			{YAML_BOOL_TAG, JSON_TRUE},
			{YAML_INT_TAG, JSON_NUMBER},
			{YAML_FLOAT_TAG, JSON_NUMBER},
		};
		size_t k;
		for (k = 0; k < ARRAY_LEN(known); k++)
			if (tag_is(tag, known[k].tag))
				break;
		if (k == ARRAY_LEN(known)) {
			load_fail(ld, &ev->start_mark, "tag %s is not supported", (const char *)tag);
			return NULL;
		}
		json_type t = resolve_plain(s, n, v);
		if (t == JSON_FALSE)
			t = JSON_TRUE;
		if (t != known[k].t || (tag_is(tag, YAML_INT_TAG) && !v->is_int)) {
			load_fail(ld, &ev->start_mark, "\"%.40s\" is not a valid %s", s, (const char *)tag);
			return NULL;
		}
		return v;
	}
	if (!tag && plain && resolve_plain(s, n, v) != JSON_STRING)
		return v;
	char *copy = json_doc_alloc(ld->doc, n + 1);
	if (!copy) {
		load_fail(ld, &ev->start_mark, "out of memory");
		return NULL;
	}
	memcpy(copy, s, n);
	copy[n] = 0;
	v->type = JSON_STRING;
	v->is_int = 0;
	v->u.str.s = copy;
	v->u.str.len = n;
	return v;
}

static int cmp_member(const void *a, const void *b)
{
	const json_member *x = *(json_member *const *)a, *y = *(json_member *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	if (c)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	/* equal keys: the later one sorts last, so it is the one reported */
	return x < y ? -1 : x > y;
}

/* Refuses a mapping with a key twice (n log n, so a big mapping stays cheap). */
static int check_duplicates(loader *ld, json_member *m, size_t n)
{
	if (n < 2)
		return 0;
	json_member **idx = malloc(n * sizeof(*idx));
	if (!idx) {
		load_fail(ld, NULL, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		idx[i] = &m[i];
	qsort(idx, n, sizeof(*idx), cmp_member);
	int rc = 0;
	for (size_t i = 1; i < n; i++) {
		if (idx[i]->key_len == idx[i - 1]->key_len && memcmp(idx[i]->key, idx[i - 1]->key, idx[i]->key_len) == 0) {
			yaml_mark_t mk = {0, idx[i]->val->line - 1, idx[i]->val->col - 1};
			load_fail(ld, &mk, "duplicate key \"%.64s\"", idx[i]->key);
			rc = -1;
			break;
		}
	}
	free(idx);
	return rc;
}

static json_val *load_node(loader *ld, yaml_event_t *ev, int depth);

/* ev is a SEQUENCE_START or MAPPING_START; consumes through the matching end. */
static json_val *load_collection(loader *ld, yaml_event_t *ev, int depth)
{
	int is_map = ev->type == YAML_MAPPING_START_EVENT;
	json_val *v = new_val(ld, is_map ? JSON_OBJECT : JSON_ARRAY, &ev->start_mark);
	if (!v)
		return NULL;
	if (depth >= CFG_MAX_DEPTH) {
		load_fail(ld, &ev->start_mark, "nesting deeper than %d levels", CFG_MAX_DEPTH);
		return NULL;
	}
	size_t base = ld->n_scratch;
	for (;;) {
		yaml_event_t e;
		if (next_event(ld, &e) < 0)
			return NULL;
		if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&e);
			break;
		}
		const char *key = NULL;
		size_t key_len = 0;
		if (is_map) {
			if (e.type != YAML_SCALAR_EVENT) {
				load_fail(ld, &e.start_mark, e.type == YAML_ALIAS_EVENT ? "aliases are not allowed" : "mapping keys must be plain strings");
				yaml_event_delete(&e);
				return NULL;
			}
			if (e.data.scalar.anchor) {
				load_fail(ld, &e.start_mark, "anchors are not allowed");
				yaml_event_delete(&e);
				return NULL;
			}
			char *k = json_doc_alloc(ld->doc, e.data.scalar.length + 1);
			if (!k) {
				load_fail(ld, &e.start_mark, "out of memory");
				yaml_event_delete(&e);
				return NULL;
			}
			memcpy(k, e.data.scalar.value, e.data.scalar.length);
			k[e.data.scalar.length] = 0;
			key = k;
			key_len = e.data.scalar.length;
			if (key_len == 2 && !memcmp(k, "<<", 2) && e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
				load_fail(ld, &e.start_mark, "merge keys (<<) are not allowed");
				yaml_event_delete(&e);
				return NULL;
			}
			yaml_event_delete(&e);
			if (next_event(ld, &e) < 0)
				return NULL;
		}
		json_val *child = load_node(ld, &e, depth + 1);
		yaml_event_delete(&e);
		if (!child || scratch_push(ld, key, key_len, child) < 0)
			return NULL;
	}
	size_t n = ld->n_scratch - base;
	json_member *kids = n ? ld->scratch + base : NULL;
	if (is_map) {
		if (check_duplicates(ld, kids, n) < 0)
			return NULL;
		json_member *m = n ? json_doc_alloc(ld->doc, n * sizeof(*m)) : NULL;
		if (n && !m) {
			load_fail(ld, NULL, "out of memory");
			return NULL;
		}
		if (n)
			memcpy(m, kids, n * sizeof(*m));
		v->u.obj.members = m;
		v->u.obj.n = n;
	} else {
		json_val **items = n ? json_doc_alloc(ld->doc, n * sizeof(*items)) : NULL;
		if (n && !items) {
			load_fail(ld, NULL, "out of memory");
			return NULL;
		}
		for (size_t i = 0; i < n; i++)
			items[i] = kids[i].val;
		v->u.arr.items = items;
		v->u.arr.n = n;
	}
	ld->n_scratch = base;
	return v;
}

/* Builds the value that starts with event ev (which the caller deletes). */
static json_val *load_node(loader *ld, yaml_event_t *ev, int depth)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		load_fail(ld, &ev->start_mark, "aliases are not allowed");
		return NULL;
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor) {
			load_fail(ld, &ev->start_mark, "anchors are not allowed");
			return NULL;
		}
		return load_scalar(ld, ev);
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		if (tag && !tag_is(tag, YAML_SEQ_TAG))
			break;
		if (anchor) {
			load_fail(ld, &ev->start_mark, "anchors are not allowed");
			return NULL;
		}
		return load_collection(ld, ev, depth);
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		if (tag && !tag_is(tag, YAML_MAP_TAG))
			break;
		if (anchor) {
			load_fail(ld, &ev->start_mark, "anchors are not allowed");
			return NULL;
		}
		return load_collection(ld, ev, depth);
	default:
		load_fail(ld, &ev->start_mark, "unexpected YAML event");
		return NULL;
	}
	load_fail(ld, &ev->start_mark, "tag %s is not supported", (const char *)tag);
	return NULL;
}

static json_doc *load_stream(loader *ld)
{
	yaml_event_t ev;
	json_val *root = NULL;
	int docs = 0;
	for (;;) {
		if (next_event(ld, &ev) < 0)
			return NULL;
		yaml_event_type_t t = ev.type;
		if (t == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (t == YAML_DOCUMENT_START_EVENT) {
			if (++docs > 1) {
				load_fail(ld, &ev.start_mark, "only one YAML document is allowed");
				yaml_event_delete(&ev);
				return NULL;
			}
			yaml_event_delete(&ev);
			if (next_event(ld, &ev) < 0)
				return NULL;
			root = load_node(ld, &ev, 0);
			yaml_event_delete(&ev);
			if (!root)
				return NULL;
			continue;
		}
		/* STREAM_START, DOCUMENT_END */
		yaml_event_delete(&ev);
	}
	if (!root) {
		yaml_mark_t m = {0, 0, 0};
		root = new_val(ld, JSON_OBJECT, &m); /* an empty file: an empty mapping */
		if (!root)
			return NULL;
	}
	json_doc_set_root(ld->doc, root);
	return ld->doc;
}

json_doc *cfg_load_yaml_text(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	loader ld;
	memset(&ld, 0, sizeof(ld));
	ld.name = name ? name : "(config)";
	ld.err = err;
	ld.errlen = errlen;
	if (err && errlen)
		err[0] = 0;
	if (!yaml_parser_initialize(&ld.parser)) {
		load_fail(&ld, NULL, "out of memory");
		return NULL;
	}
	ld.doc = json_doc_new();
	if (!ld.doc) {
		yaml_parser_delete(&ld.parser);
		load_fail(&ld, NULL, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&ld.parser, (const unsigned char *)(text ? text : ""), text ? len : 0);
	json_doc *doc = load_stream(&ld);
	yaml_parser_delete(&ld.parser);
	free(ld.scratch);
	if (!doc)
		json_doc_free(ld.doc);
	return doc;
}

json_doc *cfg_load_yaml(const char *path, size_t max_bytes, char *err, size_t errlen)
{
	if (!max_bytes)
		max_bytes = CFG_DEFAULT_MAX_BYTES;
	size_t len;
	char *text = util_read_file(path, max_bytes, &len, err, errlen);
	if (!text)
		return NULL;
	json_doc *doc = cfg_load_yaml_text(text, len, path, err, errlen);
	free(text);
	return doc;
}

/* ------------------------------------------------------------------ validation */

void cfg_ctx_init(cfg_ctx *c, const char *file)
{
	memset(c, 0, sizeof(*c));
	c->file = file ? file : "(config)";
}

void cfg_fail(cfg_ctx *c, const json_val *at, const char *path, const char *fmt, ...)
{
	if (c->failed++)
		return;
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *file = c->file ? c->file : "(config)";
	const char *p = path && *path ? path : "(top)";
	if (at && at->line)
		snprintf(c->err, sizeof(c->err), "%s:%u: %s: %s", file, at->line, p, msg);
	else
		snprintf(c->err, sizeof(c->err), "%s: %s: %s", file, p, msg);
}

void cfg_path(char *out, size_t size, const char *parent, const char *key)
{
	if (parent && *parent)
		snprintf(out, size, "%s.%s", parent, key);
	else
		snprintf(out, size, "%s", key);
}

void cfg_path_index(char *out, size_t size, const char *parent, size_t i)
{
	snprintf(out, size, "%s[%zu]", parent ? parent : "", i);
}

int cfg_check_keys(cfg_ctx *c, const json_val *obj, const char *path, const char *const allowed[])
{
	if (!json_is(obj, JSON_OBJECT)) {
		cfg_fail(c, obj, path, "must be a mapping, not %s", obj ? json_type_name(obj->type) : "absent");
		return -1;
	}
	for (size_t i = 0; i < obj->u.obj.n; i++) {
		const json_member *m = &obj->u.obj.members[i];
		size_t k;
		for (k = 0; allowed[k]; k++)
			if (strlen(allowed[k]) == m->key_len && memcmp(allowed[k], m->key, m->key_len) == 0)
				break;
		if (allowed[k])
			continue;
		char list[256] = "", p[256];
		size_t used = 0;
		for (k = 0; allowed[k] && used < sizeof(list) - 1; k++) {
			int w = snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "", allowed[k]);
			if (w < 0)
				break;
			used += (size_t)w;
		}
		cfg_path(p, sizeof(p), path, m->key);
		cfg_fail(c, m->val, p, "unknown key (allowed: %s)", list);
		return -1;
	}
	return 0;
}

/* Looks key up: 0 absent (or null), 1 present (*v set). Reports a missing
 * required key. full gets the key's path. */
static int lookup(cfg_ctx *c, const json_val *obj, const char *path, const char *key, int required,
		  const json_val **v, char *full, size_t fullsize)
{
	cfg_path(full, fullsize, path, key);
	*v = json_get(obj, key);
	if (*v && (*v)->type != JSON_NULL)
		return 1;
	if (required)
		cfg_fail(c, *v ? *v : obj, full, "is required");
	return required ? -1 : 0;
}

static const char *kind(const json_val *v)
{
	if (v->type == JSON_TRUE || v->type == JSON_FALSE)
		return "a boolean";
	if (v->type == JSON_NUMBER)
		return v->is_int ? "an integer" : "a number";
	if (v->type == JSON_STRING)
		return "a string";
	if (v->type == JSON_ARRAY)
		return "a sequence";
	if (v->type == JSON_OBJECT)
		return "a mapping";
	return "null";
}

int cfg_str(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	    int required, const char *dflt, const char **out)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r <= 0) {
		if (r == 0)
			*out = dflt;
		return r;
	}
	if (v->type != JSON_STRING) {
		cfg_fail(c, v, full, "must be a string, not %s (quote it)", kind(v));
		return -1;
	}
	if (strlen(v->u.str.s) != v->u.str.len) {
		cfg_fail(c, v, full, "must not contain NUL characters");
		return -1;
	}
	*out = v->u.str.s;
	return 1;
}

int cfg_bool(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	     int required, int dflt, int *out)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r <= 0) {
		if (r == 0)
			*out = dflt;
		return r;
	}
	if (v->type != JSON_TRUE && v->type != JSON_FALSE) {
		cfg_fail(c, v, full, "must be true or false, not %s", kind(v));
		return -1;
	}
	*out = v->type == JSON_TRUE;
	return 1;
}

int cfg_int(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	    int required, int64_t dflt, int64_t min, int64_t max, int64_t *out)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r <= 0) {
		if (r == 0)
			*out = dflt;
		return r;
	}
	int64_t x;
	if (json_int64(v, &x) < 0) {
		cfg_fail(c, v, full, "must be an integer, not %s", kind(v));
		return -1;
	}
	if (x < min || x > max) {
		cfg_fail(c, v, full, "%lld is out of range [%lld, %lld]", (long long)x, (long long)min, (long long)max);
		return -1;
	}
	*out = x;
	return 1;
}

int cfg_double(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	       int required, double dflt, double min, double max, double *out)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r <= 0) {
		if (r == 0)
			*out = dflt;
		return r;
	}
	if (v->type != JSON_NUMBER) {
		cfg_fail(c, v, full, "must be a number, not %s", kind(v));
		return -1;
	}
	double x = v->u.num;
	if (isnan(x) || x < min || x > max) {
		cfg_fail(c, v, full, "%g is out of range [%g, %g]", x, min, max);
		return -1;
	}
	*out = x;
	return 1;
}

int cfg_duration_ms(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
		    int required, uint64_t dflt_ms, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r <= 0) {
		if (r == 0)
			*out_ms = dflt_ms;
		return r;
	}
	uint64_t ms;
	if (v->type == JSON_NUMBER) {
		double s = v->u.num;
		if (!(s >= 0 && s * 1000.0 < 1.8e19)) {
			cfg_fail(c, v, full, "must be a duration such as \"100ms\", \"2s\", \"5m\" or seconds >= 0");
			return -1;
		}
		ms = (uint64_t)(s * 1000.0 + 0.5);
	} else if (v->type != JSON_STRING || parse_duration_ms(v->u.str.s, 1000, &ms) < 0) {
		cfg_fail(c, v, full, "must be a duration such as \"100ms\", \"2s\", \"5m\" or a number of seconds");
		return -1;
	}
	if (ms < min_ms || ms > max_ms) {
		cfg_fail(c, v, full, "%llums is out of range [%llums, %llums]", (unsigned long long)ms,
			 (unsigned long long)min_ms, (unsigned long long)max_ms);
		return -1;
	}
	*out_ms = ms;
	return 1;
}

int cfg_size_bytes(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
		   int required, uint64_t dflt, uint64_t min, uint64_t max, uint64_t *out)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r <= 0) {
		if (r == 0)
			*out = dflt;
		return r;
	}
	uint64_t b;
	int64_t x;
	if (v->type == JSON_NUMBER) {
		if (json_int64(v, &x) < 0 || x < 0) {
			cfg_fail(c, v, full, "must be a size such as \"64KiB\", \"10MB\" or a number of bytes");
			return -1;
		}
		b = (uint64_t)x;
	} else if (v->type != JSON_STRING || parse_size_bytes(v->u.str.s, &b) < 0) {
		cfg_fail(c, v, full, "must be a size such as \"64KiB\", \"10MB\" or a number of bytes");
		return -1;
	}
	if (b < min || b > max) {
		cfg_fail(c, v, full, "%llu bytes is out of range [%llu, %llu]", (unsigned long long)b,
			 (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = b;
	return 1;
}

int cfg_enum(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
	     int required, int dflt, const char *const names[], int *out)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r <= 0) {
		if (r == 0)
			*out = dflt;
		return r;
	}
	if (v->type == JSON_STRING) {
		for (int i = 0; names[i]; i++) {
			if (strcmp(names[i], v->u.str.s) == 0) {
				*out = i;
				return 1;
			}
		}
	}
	char list[256] = "";
	size_t used = 0;
	for (int i = 0; names[i] && used < sizeof(list) - 1; i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (v->type == JSON_STRING)
		cfg_fail(c, v, full, "\"%.64s\" is not one of: %s", v->u.str.s, list);
	else
		cfg_fail(c, v, full, "must be one of: %s (not %s)", list, kind(v));
	return -1;
}

int cfg_parse_hostport(const char *s, int allow_port0, char *host, size_t hostlen, uint16_t *port)
{
	if (!s || !*s)
		return -1;
	const char *h = s, *colon;
	size_t hl;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -1; /* none, or a bare IPv6 address: brackets needed */
		hl = (size_t)(colon - s);
	}
	if (!hl || hl >= hostlen)
		return -1;
	for (size_t i = 0; i < hl; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '[' || h[i] == ']')
			return -1;
	int64_t p;
	if (parse_int64(colon + 1, allow_port0 ? 0 : 1, 65535, &p) < 0 || colon[1] == '+' || colon[1] == '-')
		return -1;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (uint16_t)p;
	return 0;
}

int cfg_hostport(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
		 int required, const char *dflt, int allow_port0, char *host, size_t hostlen, uint16_t *port)
{
	const json_val *v;
	char full[256];
	int r = lookup(c, obj, path, key, required, &v, full, sizeof(full));
	if (r < 0)
		return r;
	const char *s = r ? json_str(v, NULL) : dflt;
	if (r && !s) {
		cfg_fail(c, v, full, "must be a \"host:port\" string, not %s", kind(v));
		return -1;
	}
	if (!s)
		return 0;
	if (cfg_parse_hostport(s, allow_port0, host, hostlen, port) < 0) {
		cfg_fail(c, r ? v : obj, full, "\"%.64s\" is not host:port (port %d-65535; IPv6 in brackets)",
			 s, allow_port0 ? 0 : 1);
		return -1;
	}
	return r;
}

static const json_val *cfg_typed(cfg_ctx *c, const json_val *obj, const char *path, const char *key,
				 int required, json_type t)
{
	const json_val *v;
	char full[256];
	if (lookup(c, obj, path, key, required, &v, full, sizeof(full)) <= 0)
		return NULL;
	if (v->type != t) {
		cfg_fail(c, v, full, "must be %s, not %s", t == JSON_OBJECT ? "a mapping" : "a sequence", kind(v));
		return NULL;
	}
	return v;
}

const json_val *cfg_obj(cfg_ctx *c, const json_val *obj, const char *path, const char *key, int required)
{
	return cfg_typed(c, obj, path, key, required, JSON_OBJECT);
}

const json_val *cfg_arr(cfg_ctx *c, const json_val *obj, const char *path, const char *key, int required)
{
	return cfg_typed(c, obj, path, key, required, JSON_ARRAY);
}
