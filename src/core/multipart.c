/*
 * multipart.c — multipart/form-data reading; see multipart.h.
 *
 * A body is: an optional preamble, "--boundary", then for each part CRLF,
 * header lines, an empty line and the data, up to "CRLF--boundary"; the last
 * delimiter is followed by "--". Padding spaces or tabs after a delimiter are
 * allowed (RFC 2046's transport padding). Header names are matched without
 * regard to case; only Content-Disposition and Content-Type are read.
 */
#include "core/multipart.h"

#include <string.h>
#include <strings.h>

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* Finds needle in hay[0..n). */
static const char *find(const char *hay, size_t n, const char *needle, size_t nl)
{
	if (nl == 0 || n < nl) return NULL;
	return memmem(hay, n, needle, nl);
}

/* Reads the parameter key of a header value v[0..n) ("form-data; name=x;
 * filename=\"y\""): 1 with the value (quotes dropped), 0 when absent. */
static int param(const char *v, size_t n, const char *key, const char **out, size_t *olen)
{
	size_t kl = strlen(key), i = 0;
	while (i < n) {
		/* to the next ';' outside quotes */
		int q = 0;
		while (i < n && (q || v[i] != ';')) {
			if (v[i] == '"' && (i == 0 || v[i - 1] != '\\')) q = !q;
			i++;
		}
		if (i >= n) return 0;
		i++; /* past ';' */
		while (i < n && is_space(v[i])) i++;
		if (n - i > kl && !strncasecmp(v + i, key, kl) && v[i + kl] == '=') {
			size_t s = i + kl + 1, e;
			if (s < n && v[s] == '"') {
				s++;
				for (e = s; e < n && !(v[e] == '"' && v[e - 1] != '\\'); e++) {}
				if (e >= n) return 0; /* an unterminated quote: not a value */
			} else {
				for (e = s; e < n && v[e] != ';' && !is_space(v[e]); e++) {}
			}
			*out = v + s;
			*olen = e - s;
			return 1;
		}
	}
	return 0;
}

int multipart_boundary(const char *ct, size_t ct_len, const char **b, size_t *blen)
{
	static const char type[] = "multipart/form-data";
	size_t i = 0;
	while (i < ct_len && is_space(ct[i])) i++;
	if (ct_len - i < sizeof(type) - 1 || strncasecmp(ct + i, type, sizeof(type) - 1)) return 0;
	i += sizeof(type) - 1;
	if (i < ct_len && ct[i] != ';' && !is_space(ct[i])) return 0; /* multipart/form-dataX */
	const char *v;
	size_t vl;
	/* param() expects the parameters after a first token: give it from here. */
	if (!param(ct + i, ct_len - i, "boundary", &v, &vl)) return -1;
	if (vl < 1 || vl > MULTIPART_BOUNDARY_MAX) return -1;
	for (size_t k = 0; k < vl; k++)
		if ((unsigned char)v[k] < 0x20 || (unsigned char)v[k] > 0x7e) return -1;
	*b = v;
	*blen = vl;
	return 1;
}

int multipart_begin(multipart_iter *it, const char *body, size_t len, const char *b, size_t blen)
{
	memset(it, 0, sizeof(*it));
	if (blen < 1 || blen > MULTIPART_BOUNDARY_MAX) return -1;
	it->body = body;
	it->len = len;
	memcpy(it->delim, "\r\n--", 4);
	memcpy(it->delim + 4, b, blen);
	it->delim_len = 4 + blen;
	return 0;
}

/* After a delimiter at it->off: "--" (the end) or padding and CRLF (a part
 * follows). Returns 1 for a part, 0 for the end, -1 otherwise. */
static int after_delim(multipart_iter *it)
{
	const char *s = it->body;
	size_t i = it->off, n = it->len;
	if (n - i >= 2 && s[i] == '-' && s[i + 1] == '-') {
		it->state = 2;
		return 0;
	}
	while (i < n && is_space(s[i])) i++;
	if (n - i < 2 || s[i] != '\r' || s[i + 1] != '\n') return -1;
	it->off = i + 2;
	return 1;
}

int multipart_next(multipart_iter *it, multipart_part *p)
{
	if (it->state == 2) return 0;
	if (it->state == 0) {
		/* The first delimiter may open the body (no CRLF before it). */
		const char *d = it->delim + 2;
		size_t dl = it->delim_len - 2;
		if (it->len >= dl && !memcmp(it->body, d, dl)) {
			it->off = dl;
		} else {
			const char *f = find(it->body, it->len, it->delim, it->delim_len);
			if (!f) return -1;
			it->off = (size_t)(f - it->body) + it->delim_len;
		}
		it->state = 1;
		int rc = after_delim(it);
		if (rc <= 0) return rc;
	}
	if (++it->parts > MULTIPART_MAX_PARTS) return -1;
	memset(p, 0, sizeof(*p));
	const char *s = it->body + it->off;
	size_t n = it->len - it->off;
	/* Header lines up to the empty line. */
	size_t i = 0;
	for (;;) {
		const char *eol = find(s + i, n - i, "\r\n", 2);
		if (!eol) return -1;
		size_t ll = (size_t)(eol - (s + i));
		if (ll == 0) {
			i += 2;
			break;
		}
		const char *line = s + i;
		const char *colon = memchr(line, ':', ll);
		if (colon) {
			size_t nl = (size_t)(colon - line), vs = nl + 1;
			while (vs < ll && is_space(line[vs])) vs++;
			const char *v = line + vs;
			size_t vl = ll - vs;
			while (vl && is_space(v[vl - 1])) vl--;
			if (nl == 19 && !strncasecmp(line, "Content-Disposition", 19)) {
				param(v, vl, "name", &p->name, &p->name_len);
				param(v, vl, "filename", &p->filename, &p->filename_len);
			} else if (nl == 12 && !strncasecmp(line, "Content-Type", 12)) {
				p->content_type = v;
				p->content_type_len = vl;
			}
		}
		i += ll + 2;
	}
	/* The data, up to the next delimiter (its CRLF belongs to the delimiter). */
	const char *data = s + i;
	const char *d = find(data, n - i, it->delim, it->delim_len);
	if (!d) return -1;
	p->data = data;
	p->len = (size_t)(d - data);
	it->off = (size_t)(d - it->body) + it->delim_len;
	int rc = after_delim(it);
	if (rc < 0) return -1;
	return 1;
}

int multipart_field(const char *body, size_t len, const char *b, size_t blen, const char *name,
		    const char **val, size_t *vlen)
{
	multipart_iter it;
	if (multipart_begin(&it, body, len, b, blen) < 0) return -1;
	size_t nl = strlen(name);
	multipart_part p;
	int rc;
	while ((rc = multipart_next(&it, &p)) == 1) {
		if (p.name && p.name_len == nl && !memcmp(p.name, name, nl)) {
			*val = p.data;
			*vlen = p.len;
			return 1;
		}
	}
	return rc;
}
