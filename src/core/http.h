/*
 * http.h — the HTTP/1.1 parser and writer of every program.
 *
 * The parser is stateless and zero-copy in the picohttpparser style: it is
 * handed the bytes received so far, never reads past `len`, allocates nothing,
 * and either returns the size of a complete head (request or status line,
 * headers, blank line) with every field pointing into the input, or says that
 * more bytes are needed (HTTP_INCOMPLETE) or that the head can never become
 * valid (HTTP_MALFORMED). Call it again with more bytes after HTTP_INCOMPLETE;
 * it starts over, which is cheap next to a read(2).
 *
 * It is strict where leniency lets requests be smuggled (bare CR, obs-fold, NUL
 * and control bytes, whitespace before the colon, bad token characters, a
 * version not of the form HTTP/D.D, for responses any but HTTP/1.x) and
 * tolerant of what clients commonly send (LF-only line endings, empty lines
 * before a request line).
 *
 * Body framing (Content-Length / Transfer-Encoding) and connection reuse are
 * decided by separate functions on the parsed headers; the chunked decoder is a
 * small resumable state machine that decodes in place.
 *
 * The writer appends heads and chunk frames to a core/buf.h buffer.
 * It is not an HTTP client or server: no sockets here.
 */
#ifndef CORE_HTTP_H
#define CORE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

/* One header field; name and value point into the parsed input (not
 * NUL-terminated). The value has its surrounding whitespace removed. */
typedef struct http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
} http_header;

/* A parsed request head. Owner: the caller, who provides `headers` and sets
 * `num_headers` to its capacity before the call; on success num_headers is the
 * count found. On a negative return num_headers is left unchanged (so the same
 * struct can be passed again when more bytes arrive) and the other fields are
 * unspecified. major_version and minor_version are the digits of HTTP/D.D
 * (0..9 each): any such version parses, the server decides which it serves. */
typedef struct http_request_head {
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	int major_version;
	int minor_version;
	http_header *headers;
	size_t num_headers; /* in: capacity; out: count */
} http_request_head;

/* A parsed response head; same conventions as http_request_head. status is
 * 100..999; the reason may be empty. */
typedef struct http_response_head {
	int minor_version;
	int status;
	const char *reason;
	size_t reason_len;
	http_header *headers;
	size_t num_headers; /* in: capacity; out: count */
} http_response_head;

#define HTTP_MALFORMED (-1)
#define HTTP_INCOMPLETE (-2)
#define HTTP_TOO_MANY_HEADERS (-3)

/* Parses a request head in buf[0..len). Returns the head's size in bytes
 * (including the blank line and any empty lines before the request line), or
 * HTTP_INCOMPLETE, HTTP_MALFORMED or HTTP_TOO_MANY_HEADERS. Every prefix of a
 * valid head gives HTTP_INCOMPLETE. Allocates nothing. */
int http_parse_request(const char *buf, size_t len, http_request_head *req);
/* The same for a response head (status line "HTTP/1.x DDD reason"). */
int http_parse_response(const char *buf, size_t len, http_response_head *res);

/* The first header named `name` (ASCII case-insensitive), or NULL. */
const http_header *http_find_header(const http_header *h, size_t n, const char *name);

typedef enum {
	HTTP_BODY_NONE,       /* no body at all */
	HTTP_BODY_LENGTH,     /* exactly *length bytes (may be 0) */
	HTTP_BODY_CHUNKED,    /* chunked transfer coding: use http_chunked_decode */
	HTTP_BODY_UNTIL_CLOSE /* responses only: the body ends when the connection closes */
} http_body_kind;

/* Decides how the body of a message is delimited (RFC 9112 section 6.3).
 * For a request pass is_response 0 (status and req_method are ignored); for a
 * response pass its status and the method of the request it answers (a response
 * to HEAD, a 1xx, 204 or 304 has no body whatever its headers say).
 * Returns 0 and sets *kind and *length (0 unless HTTP_BODY_LENGTH), or -1 when
 * the framing is invalid: Content-Length together with Transfer-Encoding; a
 * Content-Length that is not 1*DIGIT, overflows, or conflicts with another
 * (identical repeats are accepted); "chunked" applied twice or not last on a
 * request; an empty Transfer-Encoding. Returns HTTP_FRAMING_UNSUPPORTED (-2)
 * when the Transfer-Encoding names a coding besides chunked ("gzip, chunked"
 * on a request: a 501; "gzip" or "gzip, chunked" on a response: an error),
 * as no other coding is decoded and its bytes must not pass for the body. */
#define HTTP_FRAMING_UNSUPPORTED (-2)
int http_body_framing(const http_header *h, size_t n, int is_response, int status,
		      const char *req_method, size_t req_method_len,
		      http_body_kind *kind, uint64_t *length);

/* 1 when the connection may carry another message after this one: HTTP/1.1 (and
 * later minors) unless a Connection header lists "close"; HTTP/1.0 only when it
 * lists "keep-alive" (and not "close"). 0 otherwise. */
int http_keep_alive(int minor_version, const http_header *h, size_t n);

/* Resumable decoder of the chunked transfer coding. Owner: the caller (embed it
 * in the connection); no storage of its own. */
typedef struct http_chunked {
	uint64_t bytes_left;    /* of the current chunk's data, bytes */
	uint64_t trailer_bytes; /* trailer section read so far, capped */
	unsigned hex_digits;    /* significant digits of the size read so far */
	int state;              /* internal, see http_parse.c */
} http_chunked;

/* Hard cap on the trailer section; more is HTTP_MALFORMED. */
#define HTTP_CHUNKED_MAX_TRAILER_BYTES 16384

void http_chunked_init(http_chunked *d);
/* Decodes buf[0..*len) in place (picohttpparser semantics): on return
 * buf[0..*len) holds the payload decoded by this call. Returns HTTP_INCOMPLETE
 * when the body has not ended yet (call again with the next bytes, appended
 * after the payload or in a fresh buffer), HTTP_MALFORMED, or — once the last
 * chunk and trailers are consumed — the count of bytes received after the end
 * of the body, left at buf[*len..*len + ret). Chunk extensions are ignored,
 * trailers consumed and dropped; a chunk size that does not fit in 64 bits is
 * malformed. Line ends may be CRLF or LF; a bare CR is malformed. */
long http_chunked_decode(http_chunked *d, char *buf, size_t *len);
/* 1 once the decoder has seen the end of the body. */
int http_chunked_done(const http_chunked *d);

/* 1 for the statuses that never carry a body whatever the request: 1xx, 204
 * and 304 (RFC 9112 6.3); their heads carry no framing. */
int http_status_bodiless(int status);

/* The reason phrase of a status ("Not Found"); a generic one for the class of
 * an unknown status; never NULL. */
const char *http_status_reason(int status);

/* Appends a response head:
 *   HTTP/1.1 <status> <reason>\r\n
 *   Content-Type: <content_type>\r\n           (when content_type is not NULL)
 *   Content-Length: <n>\r\n | Transfer-Encoding: chunked\r\n (content_length -1)
 *                                              (neither for 1xx, 204 and 304)
 *   Connection: keep-alive\r\n | Connection: close\r\n
 *   <extra_headers, verbatim: "Name: v\r\n"...>
 *   \r\n
 * Returns 0, or -1 when the buffer's cap is reached (the buffer is then
 * unchanged), status is outside 100..599 or content_type holds a CR or LF. */
int http_write_response_head(buf *out, int status, const char *content_type,
			     int64_t content_length, int keep_alive,
			     const char *extra_headers);
/* Appends a request head:
 *   <method> <target> HTTP/1.1\r\n
 *   Host: <host>\r\n                           (when host is not NULL)
 *   <extra_headers, verbatim>
 *   Content-Length: <n>\r\n                    (when content_length >= 0)
 *   \r\n
 * Returns 0, or -1 at the buffer's cap or when method, target or host is empty
 * or holds a space or control byte (the buffer is then unchanged). */
int http_write_request_head(buf *out, const char *method, const char *target,
			    const char *host, const char *extra_headers,
			    int64_t content_length);
/* Appends one chunk frame "<hex len>\r\n<data>\r\n"; len 0 writes nothing.
 * Returns 0 or -1 at the cap (buffer unchanged). */
int http_write_chunk(buf *out, const void *data, size_t len);
/* Appends the last chunk "0\r\n\r\n" (no trailers). Returns 0 or -1. */
int http_write_last_chunk(buf *out);

#endif
