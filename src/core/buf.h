/*
 * buf.h — a growable byte buffer with a read offset, for sockets and writers.
 *
 * Bytes are appended at the end and consumed from the front; consuming only
 * moves `rd`, and the space is reclaimed (memmove) when more is appended.
 * Every buffer has a hard cap (`max`, 0 = unlimited): an append that would go
 * past it fails with -1 and leaves the buffer unchanged. The data is always
 * followed by a NUL byte that is not part of its length, so a buffer of text can
 * be read as a C string.
 * Owner: whoever embeds the struct; buf_free releases the storage.
 */
#ifndef CORE_BUF_H
#define CORE_BUF_H

#include <stddef.h>
#include <stdarg.h>

typedef struct buf {
	char *data; /* storage, cap bytes; NULL until the first append */
	size_t rd;  /* first unread byte */
	size_t len; /* end of data: unread bytes are data[rd..len) */
	size_t cap; /* allocated bytes */
	size_t max; /* hard cap on len - rd, bytes; 0 = none */
} buf;

void buf_init(buf *b, size_t max_bytes);
void buf_free(buf *b);
/* Unread bytes and their count. */
static inline char *buf_rptr(const buf *b) { return b->data ? b->data + b->rd : (char *)""; }
static inline size_t buf_rlen(const buf *b) { return b->len - b->rd; }
/* Makes room for n more bytes; returns a pointer to write them at, or NULL
 * (cap reached or out of memory). Call buf_commit(b, written) afterwards. */
char *buf_space(buf *b, size_t n);
void buf_commit(buf *b, size_t n);
int buf_append(buf *b, const void *p, size_t n); /* 0, or -1 at the cap */
int buf_puts(buf *b, const char *s);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);
void buf_consume(buf *b, size_t n); /* drops n unread bytes */
void buf_reset(buf *b);             /* drops everything, keeps storage */
/* Takes the storage out as a NUL-terminated string the caller frees; the buffer is
 * left empty. Returns "" (allocated) for an empty buffer, NULL on failure. */
char *buf_detach(buf *b, size_t *len);
/* Storage handed in and out whole, for recycling blocks: buf_attach gives a
 * buffer without storage the malloc'd block data of cap bytes (cap >= 1);
 * buf_take_storage takes an empty buffer's storage back out and sets *cap
 * (NULL, buffer unchanged, if it has none or still holds bytes). */
void buf_attach(buf *b, char *data, size_t cap);
char *buf_take_storage(buf *b, size_t *cap);

#endif
