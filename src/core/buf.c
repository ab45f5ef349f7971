/*
 * buf.c — the growable byte buffer of buf.h. Storage grows by doubling; bytes
 * consumed from the front are reclaimed by one memmove when an append needs the
 * room, so a socket buffer that is drained as fast as it fills never grows.
 */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf *b, size_t max_bytes)
{
	b->data = NULL;
	b->rd = b->len = b->cap = 0;
	b->max = max_bytes;
}

void buf_free(buf *b)
{
	free(b->data);
	b->data = NULL;
	b->rd = b->len = b->cap = 0;
}

char *buf_space(buf *b, size_t n)
{
	size_t unread = b->len - b->rd;
	if (b->max && (n > b->max || unread > b->max - n)) return NULL;
	if (b->len + n + 1 <= b->cap) return b->data + b->len;
	/* Reclaim consumed bytes first when that makes enough room. */
	if (b->rd && unread + n + 1 <= b->cap) {
		memmove(b->data, b->data + b->rd, unread);
		b->rd = 0;
		b->len = unread;
		b->data[b->len] = 0;
		return b->data + b->len;
	}
	size_t need = unread + n + 1;
	if (need < unread) return NULL; /* overflow */
	size_t ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > ((size_t)-1) / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	char *nd;
	if (b->rd) {
		nd = malloc(ncap);
		if (!nd) return NULL;
		memcpy(nd, b->data + b->rd, unread);
		free(b->data);
	} else {
		nd = realloc(b->data, ncap);
		if (!nd) return NULL;
	}
	b->data = nd;
	b->cap = ncap;
	b->rd = 0;
	b->len = unread;
	b->data[b->len] = 0;
	return b->data + b->len;
}

void buf_commit(buf *b, size_t n)
{
	b->len += n;
	b->data[b->len] = 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
	if (n == 0) {
		return buf_space(b, 0) ? 0 : -1;
	}
	char *dst = buf_space(b, n);
	if (!dst) return -1;
	memcpy(dst, p, n);
	buf_commit(b, n);
	return 0;
}

int buf_puts(buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_vprintf(buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	/* Try in the room already there, then grow once to the exact size. */
	size_t room = 0;
	char *dst = buf_space(b, 0);
	if (dst) room = b->cap - b->len; /* includes the NUL's byte */
	int n = dst ? vsnprintf(dst, room, fmt, ap) : -1;
	if (n < 0) {
		if (dst) b->data[b->len] = 0;
		va_end(ap2);
		return -1;
	}
	if ((size_t)n < room) {
		if (b->max && b->len - b->rd + (size_t)n > b->max) {
			b->data[b->len] = 0;
			va_end(ap2);
			return -1;
		}
		buf_commit(b, (size_t)n);
		va_end(ap2);
		return 0;
	}
	b->data[b->len] = 0;
	dst = buf_space(b, (size_t)n);
	if (!dst) {
		va_end(ap2);
		return -1;
	}
	vsnprintf(dst, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	buf_commit(b, (size_t)n);
	return 0;
}

int buf_printf(buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_consume(buf *b, size_t n)
{
	size_t unread = b->len - b->rd;
	if (n >= unread) {
		/* Empty: rewind for free so the next append starts at the front. */
		b->rd = b->len = 0;
		if (b->data) b->data[0] = 0;
		return;
	}
	b->rd += n;
}

void buf_reset(buf *b)
{
	b->rd = b->len = 0;
	if (b->data) b->data[0] = 0;
}

char *buf_detach(buf *b, size_t *len)
{
	size_t n = b->len - b->rd;
	char *s;
	if (!b->data) {
		s = malloc(1);
		if (!s) return NULL;
		s[0] = 0;
	} else if (b->rd) {
		memmove(b->data, b->data + b->rd, n);
		b->data[n] = 0;
		s = b->data;
	} else {
		s = b->data;
	}
	if (len) *len = n;
	b->data = NULL;
	b->rd = b->len = b->cap = 0;
	return s;
}

void buf_attach(buf *b, char *data, size_t cap)
{
	if (b->data || !data || !cap) return;
	b->data = data;
	b->cap = cap;
	b->rd = b->len = 0;
	b->data[0] = 0;
}

char *buf_take_storage(buf *b, size_t *cap)
{
	if (!b->data || b->len != b->rd) return NULL;
	char *d = b->data;
	*cap = b->cap;
	b->data = NULL;
	b->rd = b->len = b->cap = 0;
	return d;
}
