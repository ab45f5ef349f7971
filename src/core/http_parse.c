/*
 * http_parse.c — HTTP/1.1 head parser, body framing, keep-alive rule and the
 * chunked decoder (see http.h for the contracts).
 *
 * Every scan is bounded by `end`: the parser never looks at buf[len] or
 * beyond, so it is safe on input that ends at the edge of a mapping. Each time
 * the input runs out in the middle of something that could still become valid
 * the answer is HTTP_INCOMPLETE; a byte that can never be part of a valid head
 * is HTTP_MALFORMED at once. Field values and request targets are skimmed 16
 * bytes at a time with SSE2 (baseline on x86-64), other bytes through 256-entry
 * tables; no function call per byte.
 *
 * This is not a full RFC validator: the request target is checked only for
 * bytes that could split the request line (controls, space, DEL), header values
 * only for controls.
 */
#include <limits.h>
#include <string.h>
#include "core/http.h"
#include "core/util.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* tchar (RFC 9110 5.6.2): ALPHA DIGIT ! # $ % & ' * + - . ^ _ ` | ~ */
static const unsigned char tchar_tab[256] = {
	['!'] = 1,
	['#'] = 1,
	['$'] = 1,
	['%'] = 1,
	['&'] = 1,
	['\''] = 1,
	['*'] = 1,
	['+'] = 1,
	['-'] = 1,
	['.'] = 1,
	['^'] = 1,
	['_'] = 1,
	['`'] = 1,
	['|'] = 1,
	['~'] = 1,
	['0'] = 1,
	['1'] = 1,
	['2'] = 1,
	['3'] = 1,
	['4'] = 1,
	['5'] = 1,
	['6'] = 1,
	['7'] = 1,
	['8'] = 1,
	['9'] = 1,
	['A'] = 1,
	['B'] = 1,
	['C'] = 1,
	['D'] = 1,
	['E'] = 1,
	['F'] = 1,
	['G'] = 1,
	['H'] = 1,
	['I'] = 1,
	['J'] = 1,
	['K'] = 1,
	['L'] = 1,
	['M'] = 1,
	['N'] = 1,
	['O'] = 1,
	['P'] = 1,
	['Q'] = 1,
	['R'] = 1,
	['S'] = 1,
	['T'] = 1,
	['U'] = 1,
	['V'] = 1,
	['W'] = 1,
	['X'] = 1,
	['Y'] = 1,
	['Z'] = 1,
	['a'] = 1,
	['b'] = 1,
	['c'] = 1,
	['d'] = 1,
	['e'] = 1,
	['f'] = 1,
	['g'] = 1,
	['h'] = 1,
	['i'] = 1,
	['j'] = 1,
	['k'] = 1,
	['l'] = 1,
	['m'] = 1,
	['n'] = 1,
	['o'] = 1,
	['p'] = 1,
	['q'] = 1,
	['r'] = 1,
	['s'] = 1,
	['t'] = 1,
	['u'] = 1,
	['v'] = 1,
	['w'] = 1,
	['x'] = 1,
	['y'] = 1,
	['z'] = 1,
};

/* Bytes allowed inside a field value or reason phrase: HTAB, SP..'~', obs-text.
 * Filled on first use would need a guard; a range test is as cheap. */
static inline int value_byte_ok(unsigned char c)
{
	return c >= 0x20 ? c != 0x7f : c == '\t';
}

/* Bytes allowed in a request target: VCHAR and obs-text (no space, no control). */
static inline int target_byte_ok(unsigned char c)
{
	return c > 0x20 && c != 0x7f;
}

/* Returns the first byte of [p, end) that is not allowed in a field value, or end. */
static inline const char *skip_value(const char *p, const char *end)
{
	for (;;) {
#ifdef __SSE2__
		const __m128i lo = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
		while (end - p >= 16) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
			unsigned ge = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(x, lo), x));
			unsigned bad = (~ge | (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, del))) & 0xffffu;
			if (bad) {
				p += __builtin_ctz(bad);
				goto stop;
			}
			p += 16;
		}
#endif
		while (p < end && value_byte_ok((unsigned char)*p))
			p++;
		return p;
#ifdef __SSE2__
	stop:
		if (*p != '\t')
			return p;
		p++;
#endif
	}
}

/* Returns the first byte of [p, end) that is not allowed in a request target, or end. */
static inline const char *skip_target(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i lo = _mm_set1_epi8(0x21), del = _mm_set1_epi8(0x7f);
	while (end - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned ge = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(x, lo), x));
		unsigned bad = (~ge | (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, del))) & 0xffffu;
		if (bad)
			return p + __builtin_ctz(bad);
		p += 16;
	}
#endif
	while (p < end && target_byte_ok((unsigned char)*p))
		p++;
	return p;
}

/* Consumes a line end (CRLF or LF) at p. Returns the byte after it, or NULL with
 * *ret set (incomplete at end of input, malformed on anything else). */
static inline const char *eat_eol(const char *p, const char *end, int *ret)
{
	if (p == end) {
		*ret = HTTP_INCOMPLETE;
		return NULL;
	}
	if (*p == '\r') {
		if (++p == end) {
			*ret = HTTP_INCOMPLETE;
			return NULL;
		}
		if (*p != '\n') {
			*ret = HTTP_MALFORMED;
			return NULL;
		}
		return p + 1;
	}
	if (*p == '\n')
		return p + 1;
	*ret = HTTP_MALFORMED;
	return NULL;
}

/* Parses "HTTP/D.D" at p (RFC 9112 2.3: one digit each); sets *major and
 * *minor. Returns the byte after it or NULL with *ret. Which versions are
 * served is the caller's choice (a request's unknown version is a 505, not a
 * malformed line). */
static const char *parse_version(const char *p, const char *end, int *major, int *minor, int *ret)
{
	/* '#' stands for a digit. */
	static const char shape[8] = {'H', 'T', 'T', 'P', '/', '#', '.', '#'};
	for (size_t i = 0; i < sizeof(shape); i++, p++) {
		if (p == end) {
			*ret = HTTP_INCOMPLETE;
			return NULL;
		}
		if (shape[i] == '#' ? (*p < '0' || *p > '9') : *p != shape[i]) {
			*ret = HTTP_MALFORMED;
			return NULL;
		}
	}
	*major = p[-3] - '0';
	*minor = p[-1] - '0';
	return p;
}

/* Parses header lines from p up to and including the blank line. Stores at most
 * cap headers in h and their count in *num. Returns the offset of the end of
 * the head from buf, or a negative HTTP_* code (*num untouched). */
static int parse_headers(const char *buf, const char *p, const char *end,
			 http_header *h, size_t *num, size_t cap)
{
	size_t n = 0;
	int ret;

	for (;;) {
		if (p == end)
			return HTTP_INCOMPLETE;
		if (*p == '\r' || *p == '\n') {
			if (!(p = eat_eol(p, end, &ret)))
				return ret;
			break;
		}
		if (n == cap)
			return HTTP_TOO_MANY_HEADERS;
		/* Name: one or more tchar, then ':' at once. A line that starts with
		 * whitespace (obs-fold) or has whitespace before the colon fails here. */
		const char *name = p;
		while (p < end && tchar_tab[(unsigned char)*p])
			p++;
		if (p == end)
			return HTTP_INCOMPLETE;
		if (p == name || *p != ':')
			return HTTP_MALFORMED;
		h[n].name = name;
		h[n].name_len = (size_t)(p - name);
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		const char *value = p;
		p = skip_value(p, end);
		const char *value_end = p;
		if (!(p = eat_eol(p, end, &ret)))
			return ret;
		while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
			value_end--;
		h[n].value = value;
		h[n].value_len = (size_t)(value_end - value);
		n++;
	}
	*num = n;
	return (int)(p - buf);
}

int http_parse_request(const char *buf, size_t len, http_request_head *req)
{
	if (len > INT_MAX)
		len = INT_MAX; /* a head that long is never complete */
	const char *p = buf, *end = buf + len, *tok;
	int ret;

	/* Empty lines before the request line are ignored (RFC 9112 2.2). */
	for (;;) {
		if (p == end)
			return HTTP_INCOMPLETE;
		if (*p != '\r' && *p != '\n')
			break;
		if (!(p = eat_eol(p, end, &ret)))
			return ret;
	}

	tok = p;
	while (p < end && tchar_tab[(unsigned char)*p])
		p++;
	if (p == end)
		return HTTP_INCOMPLETE;
	if (p == tok || *p != ' ')
		return HTTP_MALFORMED;
	req->method = tok;
	req->method_len = (size_t)(p - tok);
	p++;

	tok = p;
	p = skip_target(p, end);
	if (p == end)
		return HTTP_INCOMPLETE;
	if (p == tok || *p != ' ')
		return HTTP_MALFORMED;
	req->target = tok;
	req->target_len = (size_t)(p - tok);
	p++;

	if (!(p = parse_version(p, end, &req->major_version, &req->minor_version, &ret)))
		return ret;
	if (!(p = eat_eol(p, end, &ret)))
		return ret;
	return parse_headers(buf, p, end, req->headers, &req->num_headers, req->num_headers);
}

int http_parse_response(const char *buf, size_t len, http_response_head *res)
{
	if (len > INT_MAX)
		len = INT_MAX;
	const char *p = buf, *end = buf + len;
	int ret, status = 0;

	int major;
	if (!(p = parse_version(p, end, &major, &res->minor_version, &ret)))
		return ret;
	if (major != 1)
		return HTTP_MALFORMED; /* an HTTP/1.x client reads HTTP/1.x answers only */
	if (p == end)
		return HTTP_INCOMPLETE;
	if (*p != ' ')
		return HTTP_MALFORMED;
	p++;
	for (int i = 0; i < 3; i++, p++) {
		if (p == end)
			return HTTP_INCOMPLETE;
		if (*p < '0' || *p > '9')
			return HTTP_MALFORMED;
		status = status * 10 + (*p - '0');
	}
	if (status < 100)
		return HTTP_MALFORMED;
	res->status = status;
	if (p == end)
		return HTTP_INCOMPLETE;
	/* "HTTP/1.1 200\r\n" without a reason (nor its space) is common enough. */
	const char *reason = p, *reason_end = p;
	if (*p == ' ') {
		reason = ++p;
		p = reason_end = skip_value(p, end);
		while (reason_end > reason && (reason_end[-1] == ' ' || reason_end[-1] == '\t'))
			reason_end--;
	}
	if (!(p = eat_eol(p, end, &ret)))
		return ret;
	res->reason = reason;
	res->reason_len = (size_t)(reason_end - reason);
	return parse_headers(buf, p, end, res->headers, &res->num_headers, res->num_headers);
}

/* ASCII case-insensitive equality of two counted strings. */
static int ieq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x != y) {
			if ((x | 0x20) != (y | 0x20) || (unsigned char)((x | 0x20) - 'a') > 'z' - 'a')
				return 0;
		}
	}
	return 1;
}

const http_header *http_find_header(const http_header *h, size_t n, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (ieq(h[i].name, h[i].name_len, name, len))
			return &h[i];
	return NULL;
}

/* Iterates the comma-separated elements of a list-valued field: on each call
 * returns the next element (whitespace trimmed, may be empty) through *el and
 * *el_len, advancing *pos; returns 0 when the value is exhausted. */
static int list_next(const char *v, size_t len, size_t *pos, const char **el, size_t *el_len)
{
	size_t i = *pos;
	if (i > len)
		return 0;
	size_t start = i;
	while (i < len && v[i] != ',')
		i++;
	size_t stop = i;
	while (start < stop && (v[start] == ' ' || v[start] == '\t'))
		start++;
	while (stop > start && (v[stop - 1] == ' ' || v[stop - 1] == '\t'))
		stop--;
	*el = v + start;
	*el_len = stop - start;
	*pos = i + 1; /* past the comma, or len + 1 at the end */
	return 1;
}

int http_body_framing(const http_header *h, size_t n, int is_response, int status,
		      const char *req_method, size_t req_method_len,
		      http_body_kind *kind, uint64_t *length)
{
	*kind = HTTP_BODY_NONE;
	*length = 0;
	if (is_response) {
		if ((status >= 100 && status < 200) || status == 204 || status == 304)
			return 0;
		if (req_method && ieq(req_method, req_method_len, "HEAD", 4))
			return 0;
		if (req_method && status >= 200 && status < 300 &&
		    ieq(req_method, req_method_len, "CONNECT", 7))
			return 0;
	}

	int have_te = 0, have_cl = 0, chunked_seen = 0, chunked_last = 0, te_codings = 0, other_codings = 0;
	uint64_t cl = 0;
	for (size_t i = 0; i < n; i++) {
		const http_header *f = &h[i];
		if (ieq(f->name, f->name_len, "transfer-encoding", 17)) {
			size_t pos = 0, el_len;
			const char *el;
			have_te = 1;
			while (list_next(f->value, f->value_len, &pos, &el, &el_len)) {
				if (el_len == 0)
					continue; /* empty list elements are allowed */
				te_codings++;
				/* A coding may carry parameters (";q=..."): compare its name. */
				size_t name_len = 0;
				while (name_len < el_len && el[name_len] != ';' && el[name_len] != ' ' &&
				       el[name_len] != '\t')
					name_len++;
				if (ieq(el, name_len, "chunked", 7)) {
					if (chunked_seen)
						return -1; /* chunked applied twice */
					chunked_seen = chunked_last = 1;
				} else {
					chunked_last = 0;
					other_codings++;
				}
			}
		} else if (ieq(f->name, f->name_len, "content-length", 14)) {
			size_t pos = 0, el_len;
			const char *el;
			while (list_next(f->value, f->value_len, &pos, &el, &el_len)) {
				uint64_t v = 0;
				if (el_len == 0)
					return -1;
				for (size_t k = 0; k < el_len; k++) {
					unsigned d = (unsigned char)el[k] - '0';
					if (d > 9 || v > (UINT64_MAX / 2 - 9) / 10)
						return -1; /* not a digit, or past 2^63 */
					v = v * 10 + d;
				}
				if (have_cl && v != cl)
					return -1;
				have_cl = 1;
				cl = v;
			}
			if (!have_cl)
				return -1;
		}
	}

	if (have_te) {
		if (have_cl || te_codings == 0)
			return -1;
		/* chunked not last cannot be framed; a request must end in chunked
		 * (RFC 9112 6.3 item 4): 400. */
		if (chunked_seen && !chunked_last)
			return -1;
		if (!is_response && !chunked_last)
			return -1;
		/* Only chunked is decoded here: with gzip (or anything) besides it
		 * the bytes handed on would not be the body the peer meant (a
		 * request: 501, RFC 9112 6.1; a response: a broken upstream). */
		if (other_codings)
			return HTTP_FRAMING_UNSUPPORTED;
		*kind = HTTP_BODY_CHUNKED;
		return 0;
	}
	if (have_cl) {
		*kind = HTTP_BODY_LENGTH;
		*length = cl;
		return 0;
	}
	*kind = is_response ? HTTP_BODY_UNTIL_CLOSE : HTTP_BODY_NONE;
	return 0;
}

int http_keep_alive(int minor_version, const http_header *h, size_t n)
{
	int close = 0, keep = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ieq(h[i].name, h[i].name_len, "connection", 10))
			continue;
		size_t pos = 0, el_len;
		const char *el;
		while (list_next(h[i].value, h[i].value_len, &pos, &el, &el_len)) {
			if (ieq(el, el_len, "close", 5))
				close = 1;
			else if (ieq(el, el_len, "keep-alive", 10))
				keep = 1;
		}
	}
	if (close)
		return 0;
	return minor_version >= 1 ? 1 : keep;
}

/* ---------------------------------------------------------------- chunked */

enum {
	CH_SIZE,        /* reading hex digits of a chunk size */
	CH_SIZE_WS,     /* whitespace after the size digits */
	CH_EXT,         /* after ';': extensions up to the line end */
	CH_SIZE_LF,     /* saw CR after the size line, want LF */
	CH_DATA,        /* copying bytes_left bytes of chunk data */
	CH_DATA_CR,     /* after the data: want CR or LF */
	CH_DATA_LF,     /* after the data and CR: want LF */
	CH_TRAILER_BOL, /* at the start of a trailer line (or the final blank line) */
	CH_TRAILER,     /* inside a trailer line */
	CH_TRAILER_LF,  /* saw CR in a trailer line, want LF */
	CH_END_LF,      /* saw CR on the final blank line, want LF */
	CH_DONE,        /* the body has ended */
};

void http_chunked_init(http_chunked *d)
{
	memset(d, 0, sizeof(*d));
	d->state = CH_SIZE;
}

int http_chunked_done(const http_chunked *d)
{
	return d->state == CH_DONE;
}


long http_chunked_decode(http_chunked *d, char *buf, size_t *len)
{
	size_t src = 0, dst = 0, n = *len;

	if (d->state == CH_DONE)
		goto done;
	while (src < n) {
		unsigned char c = (unsigned char)buf[src];
		switch (d->state) {
		case CH_SIZE: {
			int v = hex_digit(c);
			if (v >= 0) {
				if (d->bytes_left >> 60)
					return HTTP_MALFORMED; /* would overflow 64 bits */
				d->bytes_left = d->bytes_left << 4 | (uint64_t)v;
				d->hex_digits++;
				src++;
				break;
			}
			if (d->hex_digits == 0)
				return HTTP_MALFORMED;
			if (c == ';') {
				d->state = CH_EXT;
				src++;
			} else if (c == ' ' || c == '\t') {
				d->state = CH_SIZE_WS;
				src++;
			} else if (c == '\r') {
				d->state = CH_SIZE_LF;
				src++;
			} else if (c == '\n') {
				goto size_line_done;
			} else {
				return HTTP_MALFORMED;
			}
			break;
		}
		case CH_SIZE_WS:
			/* Only whitespace before ';' or the line end. */
			if (c == ';')
				d->state = CH_EXT;
			else if (c == '\r')
				d->state = CH_SIZE_LF;
			else if (c == '\n')
				goto size_line_done;
			else if (c != ' ' && c != '\t')
				return HTTP_MALFORMED;
			src++;
			break;
		case CH_EXT:
			/* Extensions are ignored but must not hide a line break or control. */
			if (c == '\r') {
				d->state = CH_SIZE_LF;
			} else if (c == '\n') {
				goto size_line_done;
			} else if (!value_byte_ok(c)) {
				return HTTP_MALFORMED;
			}
			src++;
			break;
		case CH_SIZE_LF:
			if (c != '\n')
				return HTTP_MALFORMED;
		size_line_done:
			src++;
			d->hex_digits = 0;
			if (d->bytes_left == 0) {
				d->state = CH_TRAILER_BOL;
				d->trailer_bytes = 0;
			} else {
				d->state = CH_DATA;
			}
			break;
		case CH_DATA: {
			size_t avail = n - src;
			size_t take = d->bytes_left < avail ? (size_t)d->bytes_left : avail;
			if (dst != src)
				memmove(buf + dst, buf + src, take);
			dst += take;
			src += take;
			d->bytes_left -= take;
			if (d->bytes_left == 0)
				d->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (c == '\r')
				d->state = CH_DATA_LF;
			else if (c == '\n')
				d->state = CH_SIZE;
			else
				return HTTP_MALFORMED;
			src++;
			break;
		case CH_DATA_LF:
			if (c != '\n')
				return HTTP_MALFORMED;
			d->state = CH_SIZE;
			src++;
			break;
		case CH_TRAILER_BOL:
			if (c == '\r') {
				d->state = CH_END_LF;
				src++;
				break;
			}
			if (c == '\n') {
				src++;
				goto done;
			}
			d->state = CH_TRAILER;
			/* fall through */
		case CH_TRAILER:
			if (++d->trailer_bytes > HTTP_CHUNKED_MAX_TRAILER_BYTES)
				return HTTP_MALFORMED;
			if (c == '\r')
				d->state = CH_TRAILER_LF;
			else if (c == '\n')
				d->state = CH_TRAILER_BOL;
			else if (!value_byte_ok(c))
				return HTTP_MALFORMED;
			src++;
			break;
		case CH_TRAILER_LF:
			if (c != '\n')
				return HTTP_MALFORMED;
			d->trailer_bytes++;
			d->state = CH_TRAILER_BOL;
			src++;
			break;
		case CH_END_LF:
			if (c != '\n')
				return HTTP_MALFORMED;
			src++;
			goto done;
		case CH_DONE:
			goto done;
		default:
			return HTTP_MALFORMED;
		}
	}
	*len = dst;
	return HTTP_INCOMPLETE;

done:
	d->state = CH_DONE;
	if (dst != src)
		memmove(buf + dst, buf + src, n - src);
	*len = dst;
	return (long)(n - src);
}
