/*
 * xfer.h — single HTTP requests over libcurl for the weights path: listings,
 * HEAD, uploads and the odd range read. Every request has a connect timeout, a
 * stall timeout and a total timeout, and a cap on the body it keeps. The
 * parallel range engine (fetch.c) drives libcurl's multi interface itself but
 * shares xfer_setup for the same options.
 *
 * Redirects are followed (at most 8); libcurl sends a custom Authorization
 * header only to the original host, so a bearer token never leaks to a CDN.
 */
#ifndef WEIGHTS_XFER_H
#define WEIGHTS_XFER_H

#include <stdint.h>
#include <curl/curl.h>
#include "core/buf.h"
#include "weights/weights.h"

typedef struct xfer_req {
	const char *method; /* "GET" (default), "HEAD", "PUT", "POST" */
	const char *url;
	struct curl_slist *headers; /* borrowed */
	int no_follow;              /* do not follow redirects */
	size_t body_max;            /* keep at most this much body (0: 1 MiB); more is an error */
	int upload_fd;              /* PUT/POST body from this fd (from offset 0), or -1 */
	uint64_t upload_bytes;
	const weights_opts *o; /* timeouts */
} xfer_req;

/* Response facts the weights path needs. Owner: the caller; xfer_resp_free. */
typedef struct xfer_resp {
	long status;
	buf body;
	int64_t content_length; /* -1 when absent */
	int64_t linked_size;    /* X-Linked-Size, -1 when absent */
	/* Content-Range: bytes FIRST-LAST/TOTAL; all -1 when absent or not of that
	 * form, range_total -1 also for a "*" total. */
	int64_t range_first, range_last, range_total;
	char etag[160];
	char linked_etag[160]; /* X-Linked-Etag (Hugging Face: sha256 of an LFS file) */
	char last_modified[64];
	char error_code[64];            /* X-Error-Code */
	char error_message[256];        /* X-Error-Message */
	char repo_commit[80];           /* X-Repo-Commit */
	char err[CURL_ERROR_SIZE + 64]; /* transport error text */
} xfer_resp;

void xfer_global_init(void);
/* Applies the shared options (timeouts, redirects, user agent, no signals). */
void xfer_setup(CURL *h, const weights_opts *o, int follow);
/* Runs one request. Returns 0 when an HTTP response arrived (any status), -1 on a
 * transport error (r->err says what). r is initialised here. */
int xfer_do(const xfer_req *q, xfer_resp *r);
/* xfer_do with bounded retries and backoff on transport errors, 5xx, 408, 429. */
int xfer_do_retry(const xfer_req *q, xfer_resp *r);
void xfer_resp_free(xfer_resp *r);
/* Parses one header line into r if it is one we keep (used by fetch.c too).
 * A status line ("HTTP/...") starts a new response (after a redirect): the
 * facts of the previous one (length, range, ETag, dates, error) are cleared;
 * the Hub's X-Linked-* and X-Repo-Commit, which come with its redirect, stay. */
void xfer_parse_header(xfer_resp *r, const char *line, size_t n);
/* 1 when this status or transport error deserves another try. */
int xfer_transient_status(long status);

#endif
