/*
 * sigv4.h — AWS Signature Version 4 for S3-compatible object stores.
 *
 * Pure functions over a described request: the canonical request, the string to
 * sign, the HMAC-SHA256 key chain and the Authorization header. No I/O, no
 * clock: the caller supplies the date (so the published test vectors can be
 * checked byte for byte). Not a general AWS SDK: headers with repeated names are
 * not merged, and the path and query must already be URI-encoded as the
 * request will send them (sigv4_uri_encode does that).
 */
#ifndef WEIGHTS_SIGV4_H
#define WEIGHTS_SIGV4_H

#include <stddef.h>
#include "core/buf.h"

typedef struct sigv4_header {
	const char *name;
	const char *value;
} sigv4_header;

/* A request to sign. Strings are borrowed. headers must include "host" and
 * "x-amz-date" (names in any case); every header given is signed. */
typedef struct sigv4_req {
	const char *method; /* "GET", "PUT", ... */
	const char *path;   /* encoded absolute path, "/" at least */
	const char *query;  /* encoded "k=v&k2=v2" (any order), or NULL */
	const sigv4_header *headers;
	size_t n_headers;           /* at most SIGV4_MAX_HEADERS */
	const char *payload_sha256; /* hex, or "UNSIGNED-PAYLOAD" */
	const char *access_key, *secret_key;
	const char *region, *service; /* "us-east-1", "s3" */
	const char *amz_date;         /* "20150830T123600Z" */
} sigv4_req;

#define SIGV4_MAX_HEADERS 16
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Each appends to out; returns 0, or -1 on a malformed request or a full buffer. */
int sigv4_canonical_request(const sigv4_req *r, buf *out);
int sigv4_string_to_sign(const sigv4_req *r, buf *out);
/* Writes the 64-hex signature into sig_hex and, when auth is not NULL, appends the
 * whole Authorization header value ("AWS4-HMAC-SHA256 Credential=..."). */
int sigv4_sign(const sigv4_req *r, char sig_hex[65], buf *auth);

/* Hex SHA-256 of len bytes. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);
/* Appends s URI-encoded as AWS wants (RFC 3986 unreserved kept; '/' kept when
 * keep_slash). Returns 0 or -1 when out is full. */
int sigv4_uri_encode(buf *out, const char *s, int keep_slash);
/* Formats a UNIX time as "YYYYMMDDTHHMMSSZ" (17 bytes with the NUL). */
void sigv4_amz_date(long long unix_s, char out[17]);

#endif
