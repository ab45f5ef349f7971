/*
 * source.h — the four kinds of model location the weights path reads from and
 * writes to, behind one interface:
 *
 *   hf://ORG/NAME[@REV]      Hugging Face (HF_ENDPOINT, HF_TOKEN)
 *   http(s)://HOST/PATH/     a bucket over HTTP: nginx JSON autoindex listings, Range
 *   s3://BUCKET/PREFIX       S3 API, path-style, Signature V4 (AWS_* variables)
 *   gs://BUCKET/PREFIX       GCS JSON API with a bearer token (GCS_TOKEN)
 *
 * A source lists its files (relative paths, sizes, checksums when known) and
 * builds the URL and headers of a ranged GET for any of them; a writable one
 * (http, s3, gs) accepts a whole-file upload. Relative paths are validated: no
 * "..", no empty or "." segments, no leading "/", no control bytes — a listing
 * can never name a file outside the destination.
 */
#ifndef WEIGHTS_SOURCE_H
#define WEIGHTS_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include "weights/weights.h"

typedef enum wsrc_kind { WSRC_HF,
			 WSRC_HTTP,
			 WSRC_S3,
			 WSRC_GS } wsrc_kind;

/* One file of a listing. Owner: the wlist. */
typedef struct wfile {
	char *path; /* relative, '/'-separated */
	uint64_t size;
	int size_known;
	char sha256[65]; /* hex, "" when the source does not give it */
	char md5[33];    /* hex, "" when unknown */
	char etag[160];  /* opaque version tag: ETag, generation, mtime; "" when unknown */
} wfile;

typedef struct wlist {
	wfile *files;
	size_t n, cap;
	char revision[96]; /* Hugging Face commit sha, else "" */
} wlist;

typedef struct wsrc wsrc;

/* Parses a location. Returns a source or NULL with err filled. o is borrowed and
 * must outlive the source. */
wsrc *wsrc_new(const char *url, const weights_opts *o, char *err, size_t errlen);
void wsrc_free(wsrc *s);
wsrc_kind wsrc_kind_of(const wsrc *s);
const char *wsrc_url(const wsrc *s);
/* 1 when url has a scheme this module knows (so "DEST" is a bucket, not a folder). */
int wsrc_is_url(const char *url);

/* Lists every file under the location (bounded: WEIGHTS_MAX_FILES files,
 * WEIGHTS_MAX_LISTING_BYTES per response, 10000 pages/directories). Sizes unknown
 * from the listing are asked with HEAD. Returns 0, or -1 with err filled (a
 * Hugging Face error names the cause: gated, not found, revision, entry). */
int wsrc_list(wsrc *s, wlist *out, char *err, size_t errlen);
void wlist_free(wlist *l);
int wlist_add(wlist *l, const char *path, size_t path_len, uint64_t size, int size_known);
/* Sorts by path and drops duplicates. */
void wlist_sort(wlist *l);

/* The URL and headers of a GET of bytes [off, off+len) of f (len 0: the whole
 * file), pinned to the version listed: If-Match with pin (an ETag an earlier
 * range of f came with; NULL or "" when none yet) or, for S3, the listed ETag;
 * GCS ifGenerationMatch with the listed generation; a Hugging Face file at the
 * commit its listing answered. *url and *hdrs are the caller's (free /
 * curl_slist_free_all). */
int wsrc_get_request(wsrc *s, const wfile *f, uint64_t off, uint64_t len, const char *pin,
		     char **url, struct curl_slist **hdrs);

struct xfer_resp;
/* Checks the headers of an answer to wsrc_get_request(f, off, len, pin):
 * a 206 must carry Content-Range exactly "bytes off-(off+len-1)/size"; a
 * 412, an ETag other than the pin (or S3's listed one), or an HTTP bucket's
 * Last-Modified other than its listed mtime means the object changed. Returns
 * 0 when good (or not a 200/206/412: the caller handles the status), 1 when
 * the object changed, -1 for a wrong range; why says it in words. */
int wsrc_check_range_answer(const wsrc *s, const wfile *f, const char *pin, uint64_t off, uint64_t len,
			    const struct xfer_resp *r, char *why, size_t n);

/* Uploads size bytes of fd as the object PATH under the location. sha256_hex
 * may be NULL. Returns 0 or -1 with err filled. */
int wsrc_put(wsrc *s, const char *path, int fd, uint64_t size, const char *sha256_hex,
	     char *err, size_t errlen);

/* Explains a failed HTTP answer about `what` (a file path or "the listing")
 * in words: Hugging Face error codes, 401/403/404. Writes into err. */
void wsrc_explain_status(const wsrc *s, long status, const char *error_code, const char *what,
			 char *err, size_t errlen);

/* 1 when p is an acceptable relative path. */
int wsrc_path_ok(const char *p, size_t n);
/* Why a listed name cannot be written, or NULL when it can: not a safe
 * relative path (wsrc_path_ok), a NUL byte in it, or under ".infergate/"
 * (a pull's own state folder). Listings are refused for such a name. */
const char *wsrc_name_problem(const char *p, size_t n);
/* Copies n bytes of p into out for a message: control bytes and '\' as \xNN,
 * cut with "..." to fit cap. */
void wsrc_name_show(char *out, size_t cap, const char *p, size_t n);

#endif
