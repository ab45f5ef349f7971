/*
 * sse.h — Server-Sent Events: an incremental parser for streams read from an
 * upstream (bytes fed as they arrive, split anywhere) and the writer helpers
 * for streams we send ("data: {...}\n\n", "data: [DONE]\n\n").
 *
 * The parser follows the WHATWG event-stream rules: lines end in \n, \r\n or
 * \r; ':' starts a comment; "field: value" drops one space after the colon; a
 * line without a colon is a field with an empty value; "data" lines of one event
 * are joined with \n; an empty line dispatches the event (none when it has no
 * data); a leading UTF-8 BOM is skipped; an event left unfinished at the end of
 * the stream is never dispatched. Hard cap: max_bytes on a line and on an
 * event's data.
 */
#ifndef CORE_SSE_H
#define CORE_SSE_H

#include <stddef.h>
#include "core/buf.h"

/* One event. event is "message" unless an "event:" field named it; data is
 * NUL-terminated (data_len excludes the NUL); id is the last "id:" seen on the
 * stream ("" if none). All valid only during the call. Return 0 to go on,
 * non-zero to stop (sse_feed then returns 1). */
typedef int sse_event_fn(void *arg, const char *event, const char *data, size_t data_len, const char *id);

/* Parser state; owner: whoever embeds it; sse_parser_free releases buffers. */
typedef struct sse_parser {
	buf line;  /* the current, unfinished line */
	buf data;  /* data of the current event, lines joined by \n */
	buf event; /* the current event's name */
	buf id;    /* last event id */
	size_t max_bytes;
	int after_cr; /* the last byte was \r: a \n right after it ends nothing */
	int started;  /* past the first bytes (BOM check done) */
	int has_data; /* a data field was seen in this event */
	int failed;   /* a cap was hit: every later feed fails */
	unsigned long long events_total;
	sse_event_fn *fn;
	void *arg;
} sse_parser;

/* max_bytes 0 means 1 MiB. */
void sse_parser_init(sse_parser *p, size_t max_bytes, sse_event_fn *fn, void *arg);
void sse_parser_free(sse_parser *p);
/* Feeds n bytes. Returns 0, 1 when the callback asked to stop (the rest of the
 * bytes are not parsed), or -1 when a line or an event's data went over the cap
 * (the parser stays failed). */
int sse_feed(sse_parser *p, const char *bytes, size_t n);

/* Writers: each appends one whole event to out and returns 0, or -1 at out's cap
 * (out is then left as it was). Data with line breaks is split into several
 * "data:" lines, so it reads back the same. */
int sse_write_data(buf *out, const char *data, size_t n); /* data: ...\n\n */
int sse_write_event(buf *out, const char *event, const char *data, size_t n);
int sse_write_done(buf *out);                      /* data: [DONE]\n\n */
int sse_write_comment(buf *out, const char *text); /* : text\n\n (keep-alive) */

#endif
