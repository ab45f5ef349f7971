/*
 * sse.c — the Server-Sent Events parser and writers declared in sse.h.
 *
 * The parser keeps the unfinished line in a buffer, so bytes may be split at any
 * position (inside a \r\n too: after_cr remembers a \r that already ended a
 * line). Complete lines are handled in place. Not here: reconnection, the
 * "retry" field (ignored), EventSource semantics beyond parsing.
 */
#include "core/sse.h"

#include <string.h>

#define SSE_DEFAULT_MAX_BYTES (1u << 20)
#define SSE_MAX_NAME_BYTES 256

void sse_parser_init(sse_parser *p, size_t max_bytes, sse_event_fn *fn, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->max_bytes = max_bytes ? max_bytes : SSE_DEFAULT_MAX_BYTES;
	buf_init(&p->line, p->max_bytes);
	buf_init(&p->data, p->max_bytes);
	buf_init(&p->event, SSE_MAX_NAME_BYTES);
	buf_init(&p->id, SSE_MAX_NAME_BYTES);
	p->fn = fn;
	p->arg = arg;
}

void sse_parser_free(sse_parser *p)
{
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->event);
	buf_free(&p->id);
}

/* An empty line: dispatches the event when it has data. Returns 0 or 1 (stop). */
static int dispatch(sse_parser *p)
{
	int rc = 0;
	if (p->has_data) {
		size_t n = buf_rlen(&p->data);
		char *d = buf_rptr(&p->data);
		if (n && d[n - 1] == '\n') /* the \n after the last data line */
			d[--n] = 0;
		p->events_total++;
		if (p->fn)
			rc = p->fn(p->arg, buf_rlen(&p->event) ? buf_rptr(&p->event) : "message", d, n, buf_rptr(&p->id)) != 0;
	}
	buf_reset(&p->data);
	buf_reset(&p->event);
	p->has_data = 0;
	return rc;
}

/* One complete line (without its end). Returns 0, 1 (stop) or -1 (cap). */
static int handle_line(sse_parser *p, const char *s, size_t n)
{
	if (n == 0)
		return dispatch(p);
	if (s[0] == ':')
		return 0;
	const char *colon = memchr(s, ':', n);
	size_t fl = colon ? (size_t)(colon - s) : n;
	const char *v = colon ? colon + 1 : s + n;
	size_t vl = (size_t)(s + n - v);
	if (vl && v[0] == ' ')
		v++, vl--;
	if (fl == 4 && !memcmp(s, "data", 4)) {
		if (buf_append(&p->data, v, vl) < 0 || buf_append(&p->data, "\n", 1) < 0)
			return -1;
		p->has_data = 1;
	} else if (fl == 5 && !memcmp(s, "event", 5)) {
		buf_reset(&p->event);
		if (buf_append(&p->event, v, vl) < 0)
			return -1;
	} else if (fl == 2 && !memcmp(s, "id", 2)) {
		if (!memchr(v, 0, vl)) {
			buf_reset(&p->id);
			if (buf_append(&p->id, v, vl) < 0)
				return -1;
		}
	}
	/* other fields (retry, unknown) are ignored */
	return 0;
}

int sse_feed(sse_parser *p, const char *bytes, size_t n)
{
	if (p->failed)
		return -1;
	const char *s = bytes, *end = bytes + n;
	if (!p->started && s < end) {
		/* A BOM may arrive split: hold up to 2 bytes of it in line. */
		static const char bom[3] = {(char)0xEF, (char)0xBB, (char)0xBF};
		while (s < end && buf_rlen(&p->line) < 3) {
			size_t have = buf_rlen(&p->line);
			if (*s != bom[have])
				break;
			if (buf_append(&p->line, s, 1) < 0)
				goto fail;
			s++;
		}
		size_t have = buf_rlen(&p->line);
		if (have == 3) {
			buf_reset(&p->line);
			p->started = 1;
		} else if (s < end) {
			p->started = 1; /* not a BOM: whatever was held is line text */
		} else {
			return 0;
		}
	}
	while (s < end) {
		if (p->after_cr) {
			p->after_cr = 0;
			if (*s == '\n') {
				s++;
				continue;
			}
		}
		/* find the next line end */
		const char *e = s;
		while (e < end && *e != '\n' && *e != '\r')
			e++;
		if (e == end) {
			if (buf_append(&p->line, s, (size_t)(e - s)) < 0)
				goto fail;
			return 0;
		}
		int rc;
		if (buf_rlen(&p->line)) {
			if (buf_append(&p->line, s, (size_t)(e - s)) < 0)
				goto fail;
			rc = handle_line(p, buf_rptr(&p->line), buf_rlen(&p->line));
			buf_reset(&p->line);
		} else {
			if ((size_t)(e - s) > p->max_bytes)
				goto fail;
			rc = handle_line(p, s, (size_t)(e - s));
		}
		if (*e == '\r')
			p->after_cr = 1;
		s = e + 1;
		if (rc < 0)
			goto fail;
		if (rc > 0)
			return 1;
	}
	return 0;
fail:
	p->failed = 1;
	return -1;
}

/* ---------------------------------------------------------------- writers */

/* Drops what a failed writer appended: keep is the unread length before it
 * (an append may have moved the unread bytes to the front). */
static int undo(buf *out, size_t keep)
{
	if (out->data && buf_rlen(out) >= keep) {
		out->len = out->rd + keep;
		out->data[out->len] = 0;
	}
	return -1;
}

/* Appends "data: line\n" for each line of data (split at \r\n, \n, \r). */
static int put_data_lines(buf *out, const char *data, size_t n)
{
	const char *s = data, *end = data + n;
	for (;;) {
		const char *e = s;
		while (e < end && *e != '\n' && *e != '\r')
			e++;
		if (buf_append(out, "data: ", 6) < 0 || buf_append(out, s, (size_t)(e - s)) < 0 ||
		    buf_append(out, "\n", 1) < 0)
			return -1;
		if (e == end)
			return 0;
		s = e + 1;
		if (*e == '\r' && s < end && *s == '\n')
			s++;
	}
}

int sse_write_data(buf *out, const char *data, size_t n)
{
	size_t len0 = buf_rlen(out);
	if (put_data_lines(out, data ? data : "", data ? n : 0) < 0 || buf_append(out, "\n", 1) < 0)
		return undo(out, len0);
	return 0;
}

int sse_write_event(buf *out, const char *event, const char *data, size_t n)
{
	size_t len0 = buf_rlen(out);
	if (event && *event && (buf_append(out, "event: ", 7) < 0 || buf_append(out, event, strcspn(event, "\r\n")) < 0 || buf_append(out, "\n", 1) < 0))
		return undo(out, len0);
	if (put_data_lines(out, data ? data : "", data ? n : 0) < 0 || buf_append(out, "\n", 1) < 0)
		return undo(out, len0);
	return 0;
}

int sse_write_done(buf *out)
{
	return buf_append(out, "data: [DONE]\n\n", 14);
}

int sse_write_comment(buf *out, const char *text)
{
	size_t len0 = buf_rlen(out);
	const char *t = text ? text : "";
	if (buf_append(out, ": ", 2) < 0 || buf_append(out, t, strcspn(t, "\r\n")) < 0 || buf_append(out, "\n\n", 2) < 0)
		return undo(out, len0);
	return 0;
}
