/*
 * http_write.c — HTTP/1.1 heads and chunk frames appended to a buffer, and the
 * table of status reasons (see http.h for the contracts).
 *
 * Each writer measures what it will append, reserves it with one buf_space()
 * and copies the pieces in, so a full buffer leaves nothing half-written and
 * the hot path has no printf. It is not a serializer of arbitrary headers:
 * extra headers are passed through verbatim and are the caller's to get right.
 */
#include <string.h>
#include "core/http.h"

int http_status_bodiless(int status)
{
	return (status >= 100 && status < 200) || status == 204 || status == 304;
}

const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	}
	switch (status / 100) {
	case 1: return "Informational";
	case 2: return "Success";
	case 3: return "Redirection";
	case 4: return "Client Error";
	case 5: return "Server Error";
	}
	return "Unknown";
}

/* Writes v in decimal at the end of tmp[0..24) and returns its first byte. */
static char *fmt_u64(char tmp[24], uint64_t v)
{
	char *p = tmp + 24;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return p;
}

/* 1 when s is non-empty and every byte is visible (no space, control or DEL). */
static int is_visible(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

/* 1 when s holds no CR, LF or NUL before its end (a header value that cannot
 * split the head). */
static int is_one_line(const char *s)
{
	return s[strcspn(s, "\r\n")] == '\0';
}

/* A piece list: the pieces of a head are gathered, measured, then copied once. */
typedef struct piece {
	const char *p;
	size_t n;
} piece;

#define PIECE(s) ((piece){(s), sizeof(s) - 1})
#define PIECE_STR(s) ((piece){(s), strlen(s)})

static int append_pieces(buf *out, const piece *pc, size_t count)
{
	size_t total = 0;
	for (size_t i = 0; i < count; i++)
		total += pc[i].n;
	char *w = buf_space(out, total);
	if (!w)
		return -1;
	for (size_t i = 0; i < count; i++) {
		memcpy(w, pc[i].p, pc[i].n);
		w += pc[i].n;
	}
	buf_commit(out, total);
	return 0;
}

int http_write_response_head(buf *out, int status, const char *content_type,
			     int64_t content_length, int keep_alive,
			     const char *extra_headers)
{
	piece pc[16];
	size_t k = 0;
	char status_tmp[24], len_tmp[24];

	if (status < 100 || status > 599) /* RFC 9110 15: nothing else is a status */
		return -1;
	if (content_type && !is_one_line(content_type))
		return -1;
	pc[k++] = PIECE("HTTP/1.1 ");
	pc[k++] = (piece){fmt_u64(status_tmp, (uint64_t)status), 3};
	pc[k++] = PIECE(" ");
	pc[k++] = PIECE_STR(http_status_reason(status));
	pc[k++] = PIECE("\r\n");
	if (content_type) {
		pc[k++] = PIECE("Content-Type: ");
		pc[k++] = PIECE_STR(content_type);
		pc[k++] = PIECE("\r\n");
	}
	/* RFC 9110 8.6, RFC 9112 6.3: 1xx, 204 and 304 have no body, so no
	 * framing either (a chunked 304 makes the client read a body that is
	 * not there and lose the connection's sync). */
	if (!http_status_bodiless(status)) {
		if (content_length < 0) {
			pc[k++] = PIECE("Transfer-Encoding: chunked\r\n");
		} else {
			char *d = fmt_u64(len_tmp, (uint64_t)content_length);
			pc[k++] = PIECE("Content-Length: ");
			pc[k++] = (piece){d, (size_t)(len_tmp + 24 - d)};
			pc[k++] = PIECE("\r\n");
		}
	}
	if (keep_alive)
		pc[k++] = PIECE("Connection: keep-alive\r\n");
	else
		pc[k++] = PIECE("Connection: close\r\n");
	if (extra_headers)
		pc[k++] = PIECE_STR(extra_headers);
	pc[k++] = PIECE("\r\n");
	return append_pieces(out, pc, k);
}

int http_write_request_head(buf *out, const char *method, const char *target,
			    const char *host, const char *extra_headers,
			    int64_t content_length)
{
	piece pc[16];
	size_t k = 0;
	char len_tmp[24];

	if (!is_visible(method) || !is_visible(target) || (host && !is_visible(host)))
		return -1;
	pc[k++] = PIECE_STR(method);
	pc[k++] = PIECE(" ");
	pc[k++] = PIECE_STR(target);
	pc[k++] = PIECE(" HTTP/1.1\r\n");
	if (host) {
		pc[k++] = PIECE("Host: ");
		pc[k++] = PIECE_STR(host);
		pc[k++] = PIECE("\r\n");
	}
	if (extra_headers)
		pc[k++] = PIECE_STR(extra_headers);
	if (content_length >= 0) {
		char *d = fmt_u64(len_tmp, (uint64_t)content_length);
		pc[k++] = PIECE("Content-Length: ");
		pc[k++] = (piece){d, (size_t)(len_tmp + 24 - d)};
		pc[k++] = PIECE("\r\n");
	}
	pc[k++] = PIECE("\r\n");
	return append_pieces(out, pc, k);
}

int http_write_chunk(buf *out, const void *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[20], *p = tmp + sizeof(tmp);
	size_t v = len;

	if (len == 0)
		return 0;
	*--p = '\n';
	*--p = '\r';
	do {
		*--p = hex[v & 15];
		v >>= 4;
	} while (v);
	size_t head = (size_t)(tmp + sizeof(tmp) - p);
	char *w = buf_space(out, head + len + 2);
	if (!w)
		return -1;
	memcpy(w, p, head);
	memcpy(w + head, data, len);
	memcpy(w + head + len, "\r\n", 2);
	buf_commit(out, head + len + 2);
	return 0;
}

int http_write_last_chunk(buf *out)
{
	return buf_append(out, "0\r\n\r\n", 5);
}
