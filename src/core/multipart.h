/*
 * multipart.h — reading multipart/form-data bodies (RFC 7578, RFC 2046 §5.1):
 * the boundary from a Content-Type value, then the parts one after another,
 * each with its field name, file name, content type and bytes.
 *
 * Pure functions over a body already in memory: nothing is allocated, parts
 * point into the body, every length is checked against it, and any input is
 * safe (tests/fuzz/fuzz_multipart.c). Used where a form carries what JSON
 * bodies carry elsewhere: the `model` field of an audio upload, which the
 * gateway routes on and the simulator answers.
 *
 * Not here: the HTTP side, charset conversion, nested multipart/mixed parts
 * (read as opaque data), RFC 2231 encoded parameter values (filename*=).
 */
#ifndef CORE_MULTIPART_H
#define CORE_MULTIPART_H

#include <stddef.h>

#define MULTIPART_BOUNDARY_MAX 70 /* RFC 2046's limit on a boundary */
#define MULTIPART_MAX_PARTS 256   /* a form with more is refused */

/* One part. name/filename are the Content-Disposition parameters (NULL when
 * absent; never unescaped beyond dropping the quotes); data is the part's
 * body, without the CRLF that precedes the next delimiter. */
typedef struct multipart_part {
	const char *name;
	size_t name_len;
	const char *filename;
	size_t filename_len;
	const char *content_type; /* the part's own Content-Type, NULL when absent */
	size_t content_type_len;
	const char *data;
	size_t len;
} multipart_part;

/* A walk over a body's parts. Owner: the caller (on the stack). */
typedef struct multipart_iter {
	const char *body;
	size_t len, off;
	char delim[MULTIPART_BOUNDARY_MAX + 4]; /* "\r\n--" boundary */
	size_t delim_len;
	int state; /* 0 before the first delimiter, 1 inside, 2 done */
	unsigned parts;
} multipart_iter;

/* The boundary parameter of a Content-Type value ("multipart/form-data;
 * boundary=..."; quoted or not). Returns 1 and sets *b and *blen (pointing into
 * ct), 0 when ct is no multipart/form-data type, -1 when it is one without a
 * valid boundary (1-70 characters). */
int multipart_boundary(const char *ct, size_t ct_len, const char **b, size_t *blen);

/* Starts a walk over body with boundary b. Returns 0, or -1 for a boundary
 * of a bad length. */
int multipart_begin(multipart_iter *it, const char *body, size_t len, const char *b, size_t blen);

/* The next part: 1 with *p filled, 0 after the closing delimiter, -1 when the
 * body is malformed (no delimiter, a part without its header block's end, no
 * closing delimiter, more than MULTIPART_MAX_PARTS parts). */
int multipart_next(multipart_iter *it, multipart_part *p);

/* The value of the first part whose field name is name: 1 with *val and *vlen,
 * 0 when no part has it, -1 when the body is malformed. */
int multipart_field(const char *body, size_t len, const char *b, size_t blen, const char *name,
		    const char **val, size_t *vlen);

#endif
