/*
 * xfer.c — one HTTP request at a time over a libcurl easy handle, with the
 * weights path's timeouts, caps and retries. Not the parallel engine (fetch.c).
 */
#include "weights/xfer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

static pthread_once_t xfer_once = PTHREAD_ONCE_INIT;
static void xfer_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
void xfer_global_init(void) { pthread_once(&xfer_once, xfer_init_once); }

void weights_opts_default(weights_opts *o)
{
	memset(o, 0, sizeof *o);
	o->connections = 8;
	o->chunk_bytes = 16u << 20;
	o->connect_timeout_s = 10;
	o->stall_timeout_s = 30;
	o->request_timeout_s = 600;
	o->retries = 5;
	o->lock_timeout_s = 3600;
	o->progress = -1;
}

const char *weights_fmt_bytes(uint64_t b, char *out, size_t n)
{
	if (b >= 1000000000ull) snprintf(out, n, "%.2f GB", b / 1e9);
	else if (b >= 1000000ull) snprintf(out, n, "%.1f MB", b / 1e6);
	else if (b >= 1000ull) snprintf(out, n, "%.1f kB", b / 1e3);
	else snprintf(out, n, "%llu B", (unsigned long long)b);
	return out;
}

void xfer_setup(CURL *h, const weights_opts *o, int follow)
{
	weights_opts d;
	if (!o) {
		weights_opts_default(&d);
		o = &d;
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_s * 1000L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)o->stall_timeout_s);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->request_timeout_s * 1000L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 8L);
	curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "infergate-weights/1");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
}

static void copy_val(char *dst, size_t n, const char *v, size_t vl)
{
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
	if (vl >= n) vl = n - 1;
	memcpy(dst, v, vl);
	dst[vl] = 0;
}

/* "bytes F-L/T" (T may be "*"), or all -1. */
static void parse_content_range(xfer_resp *r, const char *v, size_t vl)
{
	char tmp[96];
	copy_val(tmp, sizeof tmp, v, vl);
	r->range_first = r->range_last = r->range_total = -1;
	if (strncmp(tmp, "bytes ", 6)) return;
	char *dash = strchr(tmp + 6, '-'), *slash = dash ? strchr(dash, '/') : NULL;
	if (!dash || !slash) return;
	*dash = *slash = 0;
	int64_t a, b, t = -1;
	if (parse_int64(tmp + 6, 0, INT64_MAX, &a) || parse_int64(dash + 1, 0, INT64_MAX, &b) || b < a) return;
	if (strcmp(slash + 1, "*") && (parse_int64(slash + 1, 0, INT64_MAX, &t) || t <= b)) return;
	r->range_first = a;
	r->range_last = b;
	r->range_total = t;
}

void xfer_parse_header(xfer_resp *r, const char *line, size_t n)
{
	if (n >= 5 && !memcmp(line, "HTTP/", 5)) {
		/* X-Linked-* and X-Repo-Commit come with the Hub's redirect and
		 * describe the file the redirect leads to: they are kept. */
		r->content_length = -1;
		r->range_first = r->range_last = r->range_total = -1;
		r->etag[0] = r->last_modified[0] = r->error_code[0] = r->error_message[0] = 0;
		return;
	}
	const char *colon = memchr(line, ':', n);
	if (!colon) return;
	size_t kl = (size_t)(colon - line);
	const char *v = colon + 1;
	size_t vl = n - kl - 1;
	char tmp[64];
	if (str_ieq(line, kl, "etag")) copy_val(r->etag, sizeof r->etag, v, vl);
	else if (str_ieq(line, kl, "x-linked-etag")) copy_val(r->linked_etag, sizeof r->linked_etag, v, vl);
	else if (str_ieq(line, kl, "last-modified")) copy_val(r->last_modified, sizeof r->last_modified, v, vl);
	else if (str_ieq(line, kl, "x-error-code")) copy_val(r->error_code, sizeof r->error_code, v, vl);
	else if (str_ieq(line, kl, "x-error-message")) copy_val(r->error_message, sizeof r->error_message, v, vl);
	else if (str_ieq(line, kl, "x-repo-commit")) copy_val(r->repo_commit, sizeof r->repo_commit, v, vl);
	else if (str_ieq(line, kl, "content-length")) {
		copy_val(tmp, sizeof tmp, v, vl);
		int64_t x;
		if (!parse_int64(tmp, 0, INT64_MAX, &x)) r->content_length = x;
	} else if (str_ieq(line, kl, "content-range")) {
		parse_content_range(r, v, vl);
	} else if (str_ieq(line, kl, "x-linked-size")) {
		copy_val(tmp, sizeof tmp, v, vl);
		int64_t x;
		if (!parse_int64(tmp, 0, INT64_MAX, &x)) r->linked_size = x;
	}
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
	xfer_resp *r = arg;
	size_t n = sz * nm;
	xfer_parse_header(r, p, n);
	return n;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	xfer_resp *r = arg;
	size_t n = sz * nm;
	return buf_append(&r->body, p, n) ? 0 : n;
}

typedef struct upload_src {
	int fd;
	uint64_t off, len;
} upload_src;

static size_t on_read(char *p, size_t sz, size_t nm, void *arg)
{
	upload_src *u = arg;
	size_t want = sz * nm;
	if (want > u->len - u->off) want = (size_t)(u->len - u->off);
	if (!want) return 0;
	for (;;) {
		ssize_t got = pread(u->fd, p, want, (off_t)u->off);
		if (got < 0 && errno == EINTR) continue;
		if (got <= 0) return CURL_READFUNC_ABORT;
		u->off += (uint64_t)got;
		return (size_t)got;
	}
}

int xfer_do(const xfer_req *q, xfer_resp *r)
{
	xfer_global_init();
	memset(r, 0, sizeof *r);
	r->content_length = r->linked_size = -1;
	r->range_first = r->range_last = r->range_total = -1;
	buf_init(&r->body, q->body_max ? q->body_max : (1u << 20));
	CURL *h = curl_easy_init();
	if (!h) {
		snprintf(r->err, sizeof r->err, "out of memory");
		return -1;
	}
	char ebuf[CURL_ERROR_SIZE] = "";
	xfer_setup(h, q->o, !q->no_follow);
	curl_easy_setopt(h, CURLOPT_URL, q->url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (q->headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, q->headers);
	const char *m = q->method ? q->method : "GET";
	upload_src up = {q->upload_fd, 0, q->upload_bytes};
	if (!strcmp(m, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(m, "PUT") || !strcmp(m, "POST")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->upload_bytes);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &up);
		if (!strcmp(m, "POST")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
	} else if (strcmp(m, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	}
	CURLcode c = curl_easy_perform(h);
	int rc = 0;
	if (c != CURLE_OK) {
		if (c == CURLE_WRITE_ERROR && buf_rlen(&r->body) + CURL_MAX_WRITE_SIZE >= r->body.max)
			snprintf(r->err, sizeof r->err, "response body larger than %zu bytes", r->body.max);
		else
			snprintf(r->err, sizeof r->err, "%s", ebuf[0] ? ebuf : curl_easy_strerror(c));
		rc = -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(h);
	return rc;
}

int xfer_transient_status(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

int xfer_do_retry(const xfer_req *q, xfer_resp *r)
{
	int retries = q->o ? q->o->retries : 5;
	unsigned backoff_ms = 200;
	for (int attempt = 0;; attempt++) {
		int rc = xfer_do(q, r);
		int again = (rc < 0 && !strstr(r->err, "larger than")) || (rc == 0 && xfer_transient_status(r->status));
		if (!again || attempt >= retries) return rc;
		log_warn("%s %s: %s; retrying in %u ms", q->method ? q->method : "GET", q->url,
			 rc < 0 ? r->err : "server error", backoff_ms);
		xfer_resp_free(r);
		usleep(backoff_ms * 1000u);
		backoff_ms = MIN(backoff_ms * 2, 5000u);
	}
}

void xfer_resp_free(xfer_resp *r)
{
	buf_free(&r->body);
}
