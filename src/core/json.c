/*
 * json.c — the JSON reader (RFC 8259, strict) and writer declared in json.h.
 *
 * Reader: one iterative pass over the text, no recursion (nesting costs a frame
 * on a heap stack, bounded by max_depth). Values, strings and child arrays are
 * carved out of one arena of growing chunks owned by the json_doc; children are
 * gathered on a scratch stack and copied to the arena when their container
 * closes, so a container's items are contiguous and there is no malloc per
 * value. Rejected: trailing commas, comments, leading zeros, raw control
 * characters in strings, invalid UTF-8, numbers that overflow a double, bytes
 * after the root value. Accepted: a lone surrogate in a \u escape (becomes
 * U+FFFD). Arena memory is proportional to the text (worst case about 40 times
 * for "[0,0,0,...]"); callers bound the text.
 *
 * Writer: the jw_* functions append to a buf with commas and escaping handled;
 * doubles are written in the shortest form that reads back to the same bits.
 *
 * Not here: streaming parse, JSON Pointer, schema checks.
 */
#include "core/json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------------------ arena */

typedef struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used; /* bytes of data[] */
	size_t map_bytes;  /* > 0: the chunk is an mmap of this many bytes */
	char data[];
} arena_chunk;

struct json_doc {
	arena_chunk *chunks;     /* newest first */
	size_t next_chunk_bytes; /* size of the next chunk; doubles up to 4 MiB */
	json_val *root;
};

#define ARENA_FIRST_BYTES 4096
#define ARENA_MAX_CHUNK_BYTES (4u << 20)
#define HUGE_PAGE_BYTES (2u << 20)

/* A chunk of at least sz data bytes. Big chunks are mapped on 2 MiB boundaries
 * and offered to transparent huge pages: a 33 MB document builds a tree of over
 * 100 MB, and faulting it in 4 KiB pages costs more than parsing it. */
static arena_chunk *chunk_new(size_t sz)
{
	arena_chunk *c;
	if (sz + sizeof(*c) < HUGE_PAGE_BYTES) {
		c = malloc(sizeof(*c) + sz);
		if (!c)
			return NULL;
		c->map_bytes = 0;
		c->size = sz;
		return c;
	}
	size_t want = (sizeof(*c) + sz + HUGE_PAGE_BYTES - 1) & ~(size_t)(HUGE_PAGE_BYTES - 1);
	size_t span = want + HUGE_PAGE_BYTES;
	char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)m + HUGE_PAGE_BYTES - 1) & ~(uintptr_t)(HUGE_PAGE_BYTES - 1);
	size_t head = a - (uintptr_t)m, tail = span - head - want;
	if (head)
		munmap(m, head);
	if (tail)
		munmap((char *)a + want, tail);
#ifdef MADV_HUGEPAGE
	madvise((void *)a, want, MADV_HUGEPAGE);
#endif
	c = (arena_chunk *)a;
	c->map_bytes = want;
	c->size = want - sizeof(*c);
	return c;
}

static void chunk_free(arena_chunk *c)
{
	if (c->map_bytes)
		munmap(c, c->map_bytes);
	else
		free(c);
}

/* Returns n bytes aligned to 8 from the document's arena, or NULL. */
static void *arena_alloc(json_doc *d, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	arena_chunk *c = d->chunks;
	if (c && c->size - c->used >= n) {
		void *p = c->data + c->used;
		c->used += n;
		return p;
	}
	size_t sz = d->next_chunk_bytes;
	if (sz < n)
		sz = n;
	c = chunk_new(sz);
	if (!c)
		return NULL;
	c->used = n;
	if (d->next_chunk_bytes < ARENA_MAX_CHUNK_BYTES)
		d->next_chunk_bytes *= 2;
	/* A chunk sized for one big request goes behind the current one so the
	 * current chunk's free space is still used. */
	if (d->chunks && sz == n && c->size - n < d->chunks->size - d->chunks->used) {
		c->next = d->chunks->next;
		d->chunks->next = c;
	} else {
		c->next = d->chunks;
		d->chunks = c;
	}
	return c->data;
}

void json_doc_free(json_doc *doc)
{
	if (!doc)
		return;
	arena_chunk *c = doc->chunks;
	while (c) {
		arena_chunk *n = c->next;
		chunk_free(c);
		c = n;
	}
	free(doc);
}

json_doc *json_doc_new(void)
{
	json_doc *doc = calloc(1, sizeof(*doc));
	if (doc)
		doc->next_chunk_bytes = ARENA_FIRST_BYTES;
	return doc;
}

void *json_doc_alloc(json_doc *doc, size_t n)
{
	return arena_alloc(doc, n ? n : 1);
}

void json_doc_set_root(json_doc *doc, json_val *root)
{
	doc->root = root;
}

const json_val *json_root(const json_doc *doc)
{
	return doc ? doc->root : NULL;
}

/* ------------------------------------------------------------------ numbers */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

/* The exact fast path: [-+]digits[.digits] with at most 15 digits in all,
 * not followed by anything strtod would read on (an exponent, a hex prefix).
 * The digits make an integer below 2^53 and the power of ten (at most 1e15)
 * is exact, so one IEEE division gives the correctly rounded value, which is
 * what strtod returns. Returns 1 when it applied. Metric pages and JSON
 * bodies are mostly such numbers, and strtod_l costs several hundred
 * instructions each. */
static int strtod_fast(const char *s, char **end, double *out)
{
	static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
				       1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
	const char *p = s;
	int neg = 0;
	if (*p == '-' || *p == '+') neg = *p++ == '-';
	uint64_t m = 0;
	int digits = 0, frac = 0;
	for (; *p >= '0' && *p <= '9'; p++, digits++) m = m * 10 + (uint64_t)(*p - '0');
	if (!digits || digits > 15) return 0;
	if (*p == '.') {
		p++;
		for (; *p >= '0' && *p <= '9'; p++, frac++, digits++) {
			if (digits >= 15) return 0;
			m = m * 10 + (uint64_t)(*p - '0');
		}
	}
	if (*p == 'e' || *p == 'E' || *p == 'x' || *p == 'X' || *p == 'p' || *p == 'P') return 0;
	double v = (double)m;
	if (frac) v /= pow10[frac];
	*out = neg ? -v : v;
	if (end) *end = (char *)p;
	return 1;
}

double json_strtod(const char *s, char **end)
{
	double v;
	if (strtod_fast(s, end, &v)) return v;
	pthread_once(&c_locale_once, c_locale_init);
	if (c_locale)
		return strtod_l(s, end, c_locale);
	return strtod(s, end);
}

/* ------------------------------------------------------------------ reader */

typedef struct frame {
	json_val *v; /* the container being filled */
	size_t base; /* its first child on the scratch stack */
} frame;

typedef struct parser {
	const char *p, *end;
	const char *line_start;
	uint32_t line;
	json_doc *doc;
	json_member *scratch; /* children of open containers */
	size_t n_scratch, cap_scratch;
	frame *frames;
	size_t n_frames, cap_frames, max_depth;
	json_error *err;
	int failed;
	/* json_cursor only (doc is NULL): strings are decoded into sbuf, which
	 * holds the last one read; it grows to the longest string seen. */
	char *sbuf;
	size_t sbuf_cap;
} parser;

static uint32_t col_of(const parser *ps, const char *at)
{
	size_t c = (size_t)(at - ps->line_start) + 1;
	return c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

static int fail_at(parser *ps, const char *at, const char *msg)
{
	if (ps->failed)
		return -1;
	ps->failed = 1;
	if (ps->err) {
		ps->err->line = ps->line;
		ps->err->col = col_of(ps, at);
		snprintf(ps->err->msg, sizeof(ps->err->msg), "%s", msg);
	}
	return -1;
}

static inline void skip_ws(parser *ps)
{
	const char *p = ps->p, *end = ps->end;
	while (p < end) {
		char c = *p;
		if (c == ' ') {
			/* indentation comes in runs */
			p++;
			while (end - p >= 8 && memcmp(p, "        ", 8) == 0)
				p += 8;
		} else if (c == '\t' || c == '\r') {
			p++;
		} else if (c == '\n') {
			p++;
			ps->line++;
			ps->line_start = p;
		} else {
			break;
		}
	}
	ps->p = p;
}

static int scratch_push(parser *ps, const char *key, size_t key_len, json_val *v)
{
	if (ps->n_scratch == ps->cap_scratch) {
		size_t nc = ps->cap_scratch ? ps->cap_scratch * 2 : 256;
		json_member *ns = realloc(ps->scratch, nc * sizeof(*ns));
		if (!ns)
			return fail_at(ps, ps->p, "out of memory");
		ps->scratch = ns;
		ps->cap_scratch = nc;
	}
	json_member *m = &ps->scratch[ps->n_scratch++];
	m->key = key;
	m->key_len = key_len;
	m->val = v;
	return 0;
}

/* Room for a decoded string of n bytes: from the document's arena, or the
 * cursor's one reusable buffer. */
static char *string_room(parser *ps, size_t n)
{
	if (ps->doc)
		return arena_alloc(ps->doc, n);
	if (n > ps->sbuf_cap) {
		size_t nc = ps->sbuf_cap ? ps->sbuf_cap : 256;
		while (nc < n)
			nc *= 2;
		char *nb = realloc(ps->sbuf, nc);
		if (!nb)
			return NULL;
		ps->sbuf = nb;
		ps->sbuf_cap = nc;
	}
	return ps->sbuf;
}

/* Decodes 4 hex digits at p; returns the value or -1. */
static int hex4(const unsigned char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int c = p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0 when it is
 * invalid (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t avail = (size_t)(end - p);
	if (c >= 0xC2 && c <= 0xDF) {
		if (avail >= 2 && (p[1] & 0xC0) == 0x80)
			return 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && p[1] < 0xA0)
			return 0; /* overlong */
		if (c == 0xED && p[1] >= 0xA0)
			return 0; /* UTF-16 surrogate */
		return 3;
	} else if (c >= 0xF0 && c <= 0xF4) {
		if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && p[1] < 0x90)
			return 0; /* overlong */
		if (c == 0xF4 && p[1] >= 0x90)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0;
}

static char *put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3F));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* Parses the string whose opening quote is at ps->p. On success stores a
 * NUL-terminated copy in the arena and leaves ps->p after the closing quote. */
static int parse_string(parser *ps, const char **out, size_t *out_len)
{
	const unsigned char *start = (const unsigned char *)ps->p + 1;
	const unsigned char *p = start, *end = (const unsigned char *)ps->end;

	/* Fast path: plain ASCII up to the closing quote. */
	while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80)
		p++;
	if (p < end && *p == '"') {
		size_t n = (size_t)(p - start);
		char *s = string_room(ps, n + 1);
		if (!s)
			return fail_at(ps, ps->p, "out of memory");
		memcpy(s, start, n);
		s[n] = 0;
		*out = s;
		*out_len = n;
		ps->p = (const char *)p + 1;
		return 0;
	}

	/* Slow path: find the end (decoding never grows the text), then decode. */
	const unsigned char *q = p;
	while (q < end && *q != '"') {
		if (*q == '\\')
			q++;
		q++;
	}
	if (q >= end)
		return fail_at(ps, ps->p, "unterminated string");
	size_t bound = (size_t)(q - start);
	char *s = string_room(ps, bound + 1);
	if (!s)
		return fail_at(ps, ps->p, "out of memory");
	size_t head = (size_t)(p - start);
	memcpy(s, start, head);
	char *o = s + head;
	while (p < q) {
		unsigned c = *p;
		if (c == '\\') {
			unsigned e = p[1];
			p += 2;
			switch (e) {
			case '"': *o++ = '"'; break;
			case '\\': *o++ = '\\'; break;
			case '/': *o++ = '/'; break;
			case 'b': *o++ = '\b'; break;
			case 'f': *o++ = '\f'; break;
			case 'n': *o++ = '\n'; break;
			case 'r': *o++ = '\r'; break;
			case 't': *o++ = '\t'; break;
			case 'u': {
				int cp = (q - p >= 4) ? hex4(p) : -1;
				if (cp < 0)
					return fail_at(ps, (const char *)p - 2, "bad \\u escape");
				p += 4;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					int lo = -1;
					if (q - p >= 6 && p[0] == '\\' && p[1] == 'u')
						lo = hex4(p + 2);
					if (lo >= 0xDC00 && lo <= 0xDFFF) {
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						p += 6;
					} else {
						cp = 0xFFFD;
					}
				} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
					cp = 0xFFFD;
				}
				o = put_utf8(o, (unsigned)cp);
				break;
			}
			default:
				return fail_at(ps, (const char *)p - 2, "bad escape in string");
			}
		} else if (c < 0x20) {
			return fail_at(ps, (const char *)p, "control character in string");
		} else if (c < 0x80) {
			*o++ = (char)c;
			p++;
		} else {
			size_t n = utf8_seq_len(p, q);
			if (!n)
				return fail_at(ps, (const char *)p, "invalid UTF-8 in string");
			memcpy(o, p, n);
			o += n;
			p += n;
		}
	}
	*o = 0;
	*out = s;
	*out_len = (size_t)(o - s);
	ps->p = (const char *)q + 1;
	return 0;
}

static int parse_number(parser *ps, json_val *v)
{
	const char *start = ps->p, *p = start, *end = ps->end;
	int neg = 0, is_int = 1;
	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	if (p >= end || *p < '0' || *p > '9')
		return fail_at(ps, start, "bad number");
	const char *digits = p;
	if (*p == '0') {
		p++;
		if (p < end && *p >= '0' && *p <= '9')
			return fail_at(ps, start, "leading zeros are not allowed");
	} else {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	const char *digits_end = p;
	if (p < end && *p == '.') {
		is_int = 0;
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail_at(ps, start, "bad number: digit expected after '.'");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		is_int = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail_at(ps, start, "bad number: digit expected in exponent");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	v->type = JSON_NUMBER;
	v->is_int = 0;
	v->i = 0;
	ps->p = p;
	if (is_int && digits_end - digits <= 19) {
		uint64_t u = 0;
		for (const char *d = digits; d < digits_end; d++)
			u = u * 10 + (uint64_t)(*d - '0'); /* 19 digits cannot overflow uint64 */
		if (!neg && u <= (uint64_t)INT64_MAX) {
			v->is_int = 1;
			v->i = (int64_t)u;
		} else if (neg && u <= (uint64_t)INT64_MAX + 1) {
			v->is_int = 1;
			v->i = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
		}
		if (v->is_int) {
			v->u.num = (double)v->i; /* int64 -> double rounds to nearest, like strtod */
			if (neg && u == 0)
				v->u.num = -0.0;
			return 0;
		}
	}
	size_t n = (size_t)(p - start);
	char local[128];
	char *tmp = n < sizeof(local) ? local : malloc(n + 1);
	if (!tmp)
		return fail_at(ps, start, "out of memory");
	memcpy(tmp, start, n);
	tmp[n] = 0;
	char *e;
	double d = json_strtod(tmp, &e);
	int ok = e == tmp + n;
	if (tmp != local)
		free(tmp);
	if (!ok)
		return fail_at(ps, start, "bad number");
	if (isinf(d))
		return fail_at(ps, start, "number out of range");
	v->u.num = d;
	return 0;
}

static int match_word(parser *ps, const char *w, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
		return fail_at(ps, ps->p, "unexpected character");
	ps->p += n;
	return 0;
}

/* After '{' or ',' in an object: parses `"key" :` and pushes the member. */
static int parse_key(parser *ps)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail_at(ps, ps->p, "unexpected end of text, object key expected");
	if (*ps->p != '"')
		return fail_at(ps, ps->p, "object key (a string) expected");
	const char *k;
	size_t kl;
	if (parse_string(ps, &k, &kl) < 0)
		return -1;
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p != ':')
		return fail_at(ps, ps->p, "':' expected after object key");
	ps->p++;
	return scratch_push(ps, k, kl, NULL);
}

/* Pops the top frame: copies its children from the scratch stack to the arena. */
static int close_container(parser *ps)
{
	frame *f = &ps->frames[--ps->n_frames];
	json_val *v = f->v;
	size_t n = ps->n_scratch - f->base;
	json_member *kids = n ? ps->scratch + f->base : NULL;
	if (v->type == JSON_ARRAY) {
		json_val **items = NULL;
		if (n) {
			items = arena_alloc(ps->doc, n * sizeof(*items));
			if (!items)
				return fail_at(ps, ps->p, "out of memory");
			for (size_t i = 0; i < n; i++)
				items[i] = kids[i].val;
		}
		v->u.arr.items = items;
		v->u.arr.n = n;
	} else {
		json_member *m = NULL;
		if (n) {
			m = arena_alloc(ps->doc, n * sizeof(*m));
			if (!m)
				return fail_at(ps, ps->p, "out of memory");
			memcpy(m, kids, n * sizeof(*m));
		}
		v->u.obj.members = m;
		v->u.obj.n = n;
	}
	ps->n_scratch = f->base;
	return 0;
}

static int open_container(parser *ps, json_val *v)
{
	if (ps->n_frames >= ps->max_depth)
		return fail_at(ps, ps->p, "nesting too deep");
	if (ps->n_frames == ps->cap_frames) {
		size_t nc = ps->cap_frames ? ps->cap_frames * 2 : 32;
		frame *nf = realloc(ps->frames, nc * sizeof(*nf));
		if (!nf)
			return fail_at(ps, ps->p, "out of memory");
		ps->frames = nf;
		ps->cap_frames = nc;
	}
	ps->frames[ps->n_frames].v = v;
	ps->frames[ps->n_frames].base = ps->n_scratch;
	ps->n_frames++;
	return 0;
}

static int parse_doc(parser *ps)
{
	json_val *v;
	for (;;) {
		/* A value is expected here. */
		skip_ws(ps);
		if (ps->p >= ps->end)
			return fail_at(ps, ps->p, "unexpected end of text, value expected");
		v = arena_alloc(ps->doc, sizeof(*v));
		if (!v)
			return fail_at(ps, ps->p, "out of memory");
		memset(v, 0, sizeof(*v));
		v->line = ps->line;
		v->col = col_of(ps, ps->p);
		switch (*ps->p) {
		case '{':
			v->type = JSON_OBJECT;
			if (open_container(ps, v) < 0)
				return -1;
			ps->p++;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == '}') {
				ps->p++;
				if (close_container(ps) < 0)
					return -1;
				break;
			}
			if (parse_key(ps) < 0)
				return -1;
			continue;
		case '[':
			v->type = JSON_ARRAY;
			if (open_container(ps, v) < 0)
				return -1;
			ps->p++;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ']') {
				ps->p++;
				if (close_container(ps) < 0)
					return -1;
				break;
			}
			continue;
		case '"':
			v->type = JSON_STRING;
			if (parse_string(ps, &v->u.str.s, &v->u.str.len) < 0)
				return -1;
			break;
		case 't':
			v->type = JSON_TRUE;
			if (match_word(ps, "true", 4) < 0)
				return -1;
			break;
		case 'f':
			v->type = JSON_FALSE;
			if (match_word(ps, "false", 5) < 0)
				return -1;
			break;
		case 'n':
			v->type = JSON_NULL;
			if (match_word(ps, "null", 4) < 0)
				return -1;
			break;
		default:
			if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
				if (parse_number(ps, v) < 0)
					return -1;
				break;
			}
			if (*ps->p == ']' || *ps->p == '}')
				return fail_at(ps, ps->p, "value expected (trailing comma?)");
			return fail_at(ps, ps->p, "unexpected character, value expected");
		}

		/* v is complete: attach it, then look for ',' or the container's end. */
		for (;;) {
			if (ps->n_frames == 0) {
				ps->doc->root = v;
				skip_ws(ps);
				if (ps->p != ps->end)
					return fail_at(ps, ps->p, "unexpected text after the value");
				return 0;
			}
			frame *f = &ps->frames[ps->n_frames - 1];
			if (f->v->type == JSON_OBJECT)
				ps->scratch[ps->n_scratch - 1].val = v;
			else if (scratch_push(ps, NULL, 0, v) < 0)
				return -1;
			skip_ws(ps);
			if (ps->p >= ps->end)
				return fail_at(ps, ps->p, "unexpected end of text, ',' or end of container expected");
			char c = *ps->p;
			if (c == ',') {
				ps->p++;
				if (f->v->type == JSON_OBJECT && parse_key(ps) < 0)
					return -1;
				break; /* next value */
			}
			if ((c == '}' && f->v->type == JSON_OBJECT) || (c == ']' && f->v->type == JSON_ARRAY)) {
				ps->p++;
				v = f->v;
				if (close_container(ps) < 0)
					return -1;
				continue; /* the container is a complete value of its parent */
			}
			return fail_at(ps, ps->p, f->v->type == JSON_OBJECT ? "',' or '}' expected" : "',' or ']' expected");
		}
	}
}

json_doc *json_parse(const char *text, size_t len, size_t max_depth, json_error *err)
{
	if (err) {
		err->line = err->col = 0;
		err->msg[0] = 0;
	}
	json_doc *doc = json_doc_new();
	if (!doc) {
		if (err)
			snprintf(err->msg, sizeof(err->msg), "out of memory");
		return NULL;
	}
	if (!text)
		text = "";
	parser ps = {
		.p = text,
		.end = text + len,
		.line_start = text,
		.line = 1,
		.doc = doc,
		.max_depth = max_depth ? max_depth : 128,
		.err = err,
	};
	int rc = parse_doc(&ps);
	free(ps.scratch);
	free(ps.frames);
	if (rc < 0) {
		json_doc_free(doc);
		return NULL;
	}
	return doc;
}

/* ------------------------------------------------------------------ cursor */

struct json_cursor {
	parser ps;
	unsigned char *kind;  /* per open container: '{' or '[' */
	unsigned char *first; /* per open container: 1 while no element was read */
	size_t depth;
	char key[JSON_CURSOR_KEY_MAX + 1];
};

json_cursor *json_cursor_new(const char *text, size_t len, size_t max_depth, json_error *err)
{
	if (err) {
		err->line = err->col = 0;
		err->msg[0] = 0;
	}
	if (!max_depth)
		max_depth = 128;
	/* One allocation: the cursor, then two bytes per level. */
	json_cursor *c = calloc(1, sizeof(*c) + 2 * max_depth);
	if (!c)
		return NULL;
	c->kind = (unsigned char *)(c + 1);
	c->first = c->kind + max_depth;
	if (!text)
		text = "";
	c->ps.p = text;
	c->ps.end = text + len;
	c->ps.line_start = text;
	c->ps.line = 1;
	c->ps.max_depth = max_depth;
	c->ps.err = err;
	return c;
}

void json_cursor_reset(json_cursor *c, const char *text, size_t len, json_error *err)
{
	if (err) {
		err->line = err->col = 0;
		err->msg[0] = 0;
	}
	size_t max_depth = c->ps.max_depth;
	char *sbuf = c->ps.sbuf;
	size_t sbuf_cap = c->ps.sbuf_cap;
	if (sbuf_cap > JSON_CURSOR_KEEP_BYTES) {
		free(sbuf);
		sbuf = NULL;
		sbuf_cap = 0;
	}
	unsigned char *kind = c->kind;
	memset(c, 0, sizeof(*c));
	memset(kind, 0, 2 * max_depth);
	c->kind = kind;
	c->first = kind + max_depth;
	if (!text)
		text = "";
	c->ps.p = text;
	c->ps.end = text + len;
	c->ps.line_start = text;
	c->ps.line = 1;
	c->ps.max_depth = max_depth;
	c->ps.err = err;
	c->ps.sbuf = sbuf;
	c->ps.sbuf_cap = sbuf_cap;
}

void json_cursor_free(json_cursor *c)
{
	if (!c)
		return;
	free(c->ps.sbuf);
	free(c);
}

int json_cursor_failed(const json_cursor *c) { return c->ps.failed; }
size_t json_cursor_depth(const json_cursor *c) { return c->depth; }

int json_cursor_peek(json_cursor *c)
{
	parser *ps = &c->ps;
	if (ps->failed)
		return -1;
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail_at(ps, ps->p, "unexpected end of text, value expected");
	switch (*ps->p) {
	case '{': return JSON_OBJECT;
	case '[': return JSON_ARRAY;
	case '"': return JSON_STRING;
	case 't': return JSON_TRUE;
	case 'f': return JSON_FALSE;
	case 'n': return JSON_NULL;
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return JSON_NUMBER;
		if (*ps->p == ']' || *ps->p == '}')
			return fail_at(ps, ps->p, "value expected (trailing comma?)");
		return fail_at(ps, ps->p, "unexpected character, value expected");
	}
}

int json_cursor_enter(json_cursor *c)
{
	parser *ps = &c->ps;
	int t = json_cursor_peek(c);
	if (t != JSON_OBJECT && t != JSON_ARRAY)
		return t < 0 ? -1 : fail_at(ps, ps->p, "object or array expected");
	if (c->depth >= ps->max_depth)
		return fail_at(ps, ps->p, "nesting too deep");
	c->kind[c->depth] = (unsigned char)*ps->p;
	c->first[c->depth] = 1;
	c->depth++;
	ps->p++;
	return 0;
}

/* After '{' or ',' in an object: `"key" :`, the key decoded into c->key
 * (a longer key is cut; its full length is returned in *key_len). */
static int cursor_key(json_cursor *c, const char **key, size_t *key_len)
{
	parser *ps = &c->ps;
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail_at(ps, ps->p, "unexpected end of text, object key expected");
	if (*ps->p != '"')
		return fail_at(ps, ps->p, "object key (a string) expected");
	const char *k;
	size_t kl;
	if (parse_string(ps, &k, &kl) < 0)
		return -1;
	size_t n = kl < JSON_CURSOR_KEY_MAX ? kl : JSON_CURSOR_KEY_MAX;
	memcpy(c->key, k, n);
	c->key[n] = 0;
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p != ':')
		return fail_at(ps, ps->p, "':' expected after object key");
	ps->p++;
	if (key)
		*key = c->key;
	if (key_len)
		*key_len = kl;
	return 0;
}

int json_cursor_next(json_cursor *c, const char **key, size_t *key_len)
{
	parser *ps = &c->ps;
	if (ps->failed || !c->depth)
		return -1;
	size_t d = c->depth - 1;
	int obj = c->kind[d] == '{';
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail_at(ps, ps->p, c->first[d] ? (obj ? "unexpected end of text, object key expected" : "unexpected end of text, value expected") : "unexpected end of text, ',' or end of container expected");
	char ch = *ps->p;
	if (ch == (obj ? '}' : ']')) {
		ps->p++;
		c->depth--;
		return 0;
	}
	if (!c->first[d]) {
		if (ch != ',')
			return fail_at(ps, ps->p, obj ? "',' or '}' expected" : "',' or ']' expected");
		ps->p++;
	}
	c->first[d] = 0;
	if (obj && cursor_key(c, key, key_len) < 0)
		return -1;
	return 1;
}

const char *json_cursor_pos(const json_cursor *c) { return c->ps.p; }

int json_cursor_leaf(json_cursor *c, json_val *v)
{
	parser *ps = &c->ps;
	int t = json_cursor_peek(c);
	if (t < 0)
		return -1;
	memset(v, 0, sizeof(*v));
	v->line = ps->line;
	v->col = col_of(ps, ps->p);
	v->type = (json_type)t;
	switch (t) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		return json_cursor_skip(c);
	case JSON_STRING: return parse_string(ps, &v->u.str.s, &v->u.str.len);
	case JSON_TRUE: return match_word(ps, "true", 4);
	case JSON_FALSE: return match_word(ps, "false", 5);
	case JSON_NULL: return match_word(ps, "null", 4);
	default: return parse_number(ps, v);
	}
}

int json_cursor_skip(json_cursor *c)
{
	size_t base = c->depth;
	json_val v;
	for (;;) {
		int t = json_cursor_peek(c);
		if (t < 0)
			return -1;
		if (t == JSON_OBJECT || t == JSON_ARRAY) {
			if (json_cursor_enter(c) < 0)
				return -1;
		} else if (json_cursor_leaf(c, &v) < 0) {
			return -1;
		}
		for (;;) {
			if (c->depth == base)
				return 0;
			int r = json_cursor_next(c, NULL, NULL);
			if (r < 0)
				return -1;
			if (r == 1)
				break;
		}
	}
}

int json_cursor_end(json_cursor *c)
{
	parser *ps = &c->ps;
	if (ps->failed)
		return -1;
	skip_ws(ps);
	if (ps->p != ps->end)
		return fail_at(ps, ps->p, "unexpected text after the value");
	return 0;
}

/* ------------------------------------------------------------------ accessors */

const json_val *json_getn(const json_val *obj, const char *key, size_t key_len)
{
	if (!obj || obj->type != JSON_OBJECT || !key)
		return NULL;
	for (size_t i = obj->u.obj.n; i-- > 0;) {
		const json_member *m = &obj->u.obj.members[i];
		if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0)
			return m->val;
	}
	return NULL;
}

const json_val *json_get(const json_val *obj, const char *key)
{
	return key ? json_getn(obj, key, strlen(key)) : NULL;
}

size_t json_count(const json_val *v)
{
	if (!v)
		return 0;
	if (v->type == JSON_ARRAY)
		return v->u.arr.n;
	if (v->type == JSON_OBJECT)
		return v->u.obj.n;
	return 0;
}

const json_val *json_at(const json_val *arr, size_t i)
{
	if (!arr || arr->type != JSON_ARRAY || i >= arr->u.arr.n)
		return NULL;
	return arr->u.arr.items[i];
}

int json_is(const json_val *v, json_type t)
{
	return v && v->type == t;
}

const char *json_str(const json_val *v, const char *dflt)
{
	return v && v->type == JSON_STRING ? v->u.str.s : dflt;
}

const char *json_cstr(const json_val *v)
{
	if (!v || v->type != JSON_STRING || memchr(v->u.str.s, 0, v->u.str.len)) return NULL;
	return v->u.str.s;
}

double json_num(const json_val *v, double dflt)
{
	return v && v->type == JSON_NUMBER ? v->u.num : dflt;
}

int json_int64(const json_val *v, int64_t *out)
{
	if (!v || v->type != JSON_NUMBER)
		return -1;
	if (v->is_int) {
		*out = v->i;
		return 0;
	}
	double d = v->u.num;
	/* 1e3 or 2.0: integral values within int64 (strictly below 2^63). */
	if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == floor(d)) {
		*out = (int64_t)d;
		return 0;
	}
	return -1;
}

int json_bool(const json_val *v, int dflt)
{
	if (v && v->type == JSON_TRUE)
		return 1;
	if (v && v->type == JSON_FALSE)
		return 0;
	return dflt;
}

const char *json_type_name(json_type t)
{
	switch (t) {
	case JSON_NULL: return "null";
	case JSON_FALSE: return "false";
	case JSON_TRUE: return "true";
	case JSON_NUMBER: return "number";
	case JSON_STRING: return "string";
	case JSON_ARRAY: return "array";
	case JSON_OBJECT: return "object";
	}
	return "unknown";
}

int json_equal(const json_val *a, const json_val *b)
{
	if (!a || !b)
		return a == b;
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case JSON_NULL:
	case JSON_TRUE:
	case JSON_FALSE:
		return 1;
	case JSON_NUMBER:
		if (a->is_int != b->is_int)
			return a->u.num == b->u.num;
		return a->is_int ? a->i == b->i : a->u.num == b->u.num;
	case JSON_STRING:
		return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
	case JSON_ARRAY:
		if (a->u.arr.n != b->u.arr.n)
			return 0;
		for (size_t i = 0; i < a->u.arr.n; i++)
			if (!json_equal(a->u.arr.items[i], b->u.arr.items[i]))
				return 0;
		return 1;
	case JSON_OBJECT:
		if (a->u.obj.n != b->u.obj.n)
			return 0;
		for (size_t i = 0; i < a->u.obj.n; i++) {
			const json_member *x = &a->u.obj.members[i], *y = &b->u.obj.members[i];
			if (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) != 0 ||
			    !json_equal(x->val, y->val))
				return 0;
		}
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ writer */

void jw_init(json_w *w, buf *out)
{
	memset(w, 0, sizeof(*w));
	w->out = out;
	w->first[0] = 1;
}

static void jw_put(json_w *w, const char *s, size_t n)
{
	if (!w->error && buf_append(w->out, s, n) < 0)
		w->error = 1;
}

/* Writes the comma that separates this value from the previous one, if any. */
static void jw_sep(json_w *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->depth > 0 && !w->first[w->depth])
		jw_put(w, ",", 1);
	w->first[w->depth] = 0;
}

static void jw_open(json_w *w, char c)
{
	jw_sep(w);
	if (w->depth + 1 >= JSON_W_MAX_DEPTH) {
		w->error = 1;
		return;
	}
	jw_put(w, &c, 1);
	w->depth++;
	w->first[w->depth] = 1;
}

static void jw_close(json_w *w, char c)
{
	if (w->depth <= 0) {
		w->error = 1;
		return;
	}
	w->depth--;
	jw_put(w, &c, 1);
}

void jw_obj_begin(json_w *w) { jw_open(w, '{'); }
void jw_obj_end(json_w *w) { jw_close(w, '}'); }
void jw_arr_begin(json_w *w) { jw_open(w, '['); }
void jw_arr_end(json_w *w) { jw_close(w, ']'); }

static const char hexd[] = "0123456789abcdef";

int json_escape(buf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		const unsigned char *run = p;
		while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80)
			p++;
		if (p > run && buf_append(out, run, (size_t)(p - run)) < 0)
			return -1;
		if (p >= end)
			break;
		unsigned c = *p;
		char e[8];
		size_t en;
		if (c >= 0x80) {
			size_t sl = utf8_seq_len(p, end);
			if (sl) {
				if (buf_append(out, p, sl) < 0)
					return -1;
				p += sl;
			} else {
				if (buf_append(out, "\xEF\xBF\xBD", 3) < 0)
					return -1;
				p++;
			}
			continue;
		}
		e[0] = '\\';
		switch (c) {
		case '"':
			e[1] = '"';
			en = 2;
			break;
		case '\\':
			e[1] = '\\';
			en = 2;
			break;
		case '\b':
			e[1] = 'b';
			en = 2;
			break;
		case '\f':
			e[1] = 'f';
			en = 2;
			break;
		case '\n':
			e[1] = 'n';
			en = 2;
			break;
		case '\r':
			e[1] = 'r';
			en = 2;
			break;
		case '\t':
			e[1] = 't';
			en = 2;
			break;
		default:
			e[1] = 'u';
			e[2] = '0';
			e[3] = '0';
			e[4] = hexd[c >> 4];
			e[5] = hexd[c & 15];
			en = 6;
		}
		if (buf_append(out, e, en) < 0)
			return -1;
		p++;
	}
	return 0;
}

static void jw_quoted(json_w *w, const char *s, size_t n)
{
	jw_put(w, "\"", 1);
	if (!w->error && json_escape(w->out, s, n) < 0)
		w->error = 1;
	jw_put(w, "\"", 1);
}

void jw_key(json_w *w, const char *key)
{
	jw_keyn(w, key ? key : "", key ? strlen(key) : 0);
}

void jw_keyn(json_w *w, const char *key, size_t n)
{
	jw_sep(w);
	jw_quoted(w, key, n);
	jw_put(w, ":", 1);
	w->after_key = 1;
}

void jw_str(json_w *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	jw_strn(w, s, strlen(s));
}

void jw_strn(json_w *w, const char *s, size_t n)
{
	jw_sep(w);
	jw_quoted(w, s ? s : "", s ? n : 0);
}

void jw_int(json_w *w, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
	jw_sep(w);
	jw_put(w, tmp, (size_t)n);
}

void jw_uint(json_w *w, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	jw_sep(w);
	jw_put(w, tmp, (size_t)n);
}

int json_format_double(char *out, size_t size, double v)
{
	if (!isfinite(v))
		return -1;
	char tmp[40];
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (prec == 17 || json_strtod(tmp, NULL) == v)
			break;
	}
	/* A locale with a decimal comma would break JSON; the C locale has '.'. */
	for (int i = 0; i < n; i++)
		if (tmp[i] == ',')
			tmp[i] = '.';
	if ((size_t)n >= size)
		return -1;
	memcpy(out, tmp, (size_t)n + 1);
	return n;
}

void jw_double(json_w *w, double v)
{
	char tmp[40];
	int n = json_format_double(tmp, sizeof(tmp), v);
	if (n < 0) {
		jw_null(w);
		return;
	}
	jw_sep(w);
	jw_put(w, tmp, (size_t)n);
}

void jw_bool(json_w *w, int v)
{
	jw_sep(w);
	if (v)
		jw_put(w, "true", 4);
	else
		jw_put(w, "false", 5);
}

void jw_null(json_w *w)
{
	jw_sep(w);
	jw_put(w, "null", 4);
}

void jw_raw(json_w *w, const char *json, size_t n)
{
	jw_sep(w);
	jw_put(w, json, n);
}

void jw_value(json_w *w, const json_val *v)
{
	if (!v) {
		jw_null(w);
		return;
	}
	switch (v->type) {
	case JSON_NULL: jw_null(w); break;
	case JSON_TRUE: jw_bool(w, 1); break;
	case JSON_FALSE: jw_bool(w, 0); break;
	case JSON_NUMBER:
		if (v->is_int && !(v->i == 0 && signbit(v->u.num)))
			jw_int(w, v->i);
		else
			jw_double(w, v->u.num);
		break;
	case JSON_STRING: jw_strn(w, v->u.str.s, v->u.str.len); break;
	case JSON_ARRAY:
		jw_arr_begin(w);
		for (size_t i = 0; i < v->u.arr.n && !w->error; i++)
			jw_value(w, v->u.arr.items[i]);
		jw_arr_end(w);
		break;
	case JSON_OBJECT:
		jw_obj_begin(w);
		for (size_t i = 0; i < v->u.obj.n && !w->error; i++) {
			jw_keyn(w, v->u.obj.members[i].key, v->u.obj.members[i].key_len);
			jw_value(w, v->u.obj.members[i].val);
		}
		jw_obj_end(w);
		break;
	}
}
