/*
 * source.c — Hugging Face, HTTP bucket, S3 and GCS locations: parsing, listing,
 * ranged GET requests and uploads. The transfers themselves are xfer.c (single
 * requests) and fetch.c (parallel ranges); this file only knows each protocol's
 * addresses, headers, listings and errors.
 */
#include "weights/source.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "weights/sigv4.h"
#include "weights/xfer.h"

#define MAX_PAGES 10000 /* listing pages or directories visited */
#define MAX_DEPTH 64    /* directory depth of an HTTP bucket */

struct wsrc {
	wsrc_kind kind;
	char *url;                        /* as given */
	const weights_opts *o;            /* borrowed */
	char *base;                       /* scheme://host[:port] (hf: the endpoint, may carry a path) */
	char *host;                       /* host[:port] as sent in Host (s3 signing) */
	char *path;                       /* http: the folder path, "/" terminated; or the file path */
	int single_file;                  /* http: the URL names one file */
	char *repo, *rev;                 /* hf */
	char *pinned_rev;                 /* hf: the commit sha the listing answered for rev; files are read at it */
	char *bucket, *prefix;            /* s3, gs: prefix "" or ending in "/" */
	char *token;                      /* hf, gs: bearer token or NULL */
	char *ak, *sk, *session, *region; /* s3 */
};

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int wsrc_is_url(const char *u)
{
	return !strncmp(u, "hf://", 5) || !strncmp(u, "s3://", 5) || !strncmp(u, "gs://", 5) ||
	       !strncmp(u, "http://", 7) || !strncmp(u, "https://", 8);
}

wsrc_kind wsrc_kind_of(const wsrc *s) { return s->kind; }
const char *wsrc_url(const wsrc *s) { return s->url; }

int wsrc_path_ok(const char *p, size_t n)
{
	if (n == 0 || n > WEIGHTS_MAX_PATH || p[0] == '/') return 0;
	size_t seg = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == '/') {
			size_t len = i - seg;
			if (len == 0) return 0;
			if (len == 1 && p[seg] == '.') return 0;
			if (len == 2 && p[seg] == '.' && p[seg + 1] == '.') return 0;
			seg = i + 1;
		} else if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
			return 0;
		}
	}
	return 1;
}

const char *wsrc_name_problem(const char *p, size_t n)
{
	if (memchr(p, 0, n)) return "contains a NUL byte";
	if (n > WEIGHTS_MAX_PATH) return "is too long";
	if (!wsrc_path_ok(p, n))
		return "is not a safe relative path (an empty, \".\" or \"..\" segment, a leading \"/\" or a control byte)";
	/* A pull into a folder keeps its partial files and manifest in
	 * DEST/.infergate: a listed file there would overwrite them. */
	if (n >= 10 && !memcmp(p, ".infergate", 10) && (n == 10 || p[10] == '/'))
		return "collides with the pull's own state folder .infergate";
	return NULL;
}

void wsrc_name_show(char *out, size_t cap, const char *p, size_t n)
{
	size_t o = 0;
	if (!cap) return;
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f || c == '\\') o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		else out[o++] = (char)c;
	}
	if (o + 5 >= cap && n) {
		o = MIN(o, cap - 4);
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = 0;
}

/* Adds a listed name, or refuses the listing naming the entry and why. 0 or -1. */
static int add_listed(const wsrc *s, wlist *l, const char *name, size_t n, uint64_t size, int size_known,
		      char *err, size_t errlen)
{
	const char *why = wsrc_name_problem(name, n);
	if (why) {
		char shown[300];
		wsrc_name_show(shown, sizeof shown, name, n);
		util_errf(err, errlen, "refusing the listing of %s: the name \"%s\" %s", s->url, shown, why);
		return -1;
	}
	int a = wlist_add(l, name, n, size, size_known);
	if (a) {
		util_errf(err, errlen, "listing too large (more than %d files)", WEIGHTS_MAX_FILES);
		return -1;
	}
	return 0;
}

/* A JSON string and its length (which counts any \u0000 in it), or NULL. */
static const char *jstr_n(const json_val *v, size_t *n)
{
	if (!json_is(v, JSON_STRING)) return NULL;
	*n = v->u.str.len;
	return v->u.str.s;
}

/* Splits "scheme://host[:port][/path]" into base (scheme://host[:port]), host and path. */
static int split_url(const char *u, char **base, char **host, char **path)
{
	const char *p = strstr(u, "://");
	if (!p) return -1;
	p += 3;
	const char *slash = strchr(p, '/');
	size_t hl = slash ? (size_t)(slash - p) : strlen(p);
	if (hl == 0) return -1;
	*base = str_ndup(u, (size_t)(p - u) + hl);
	*host = str_ndup(p, hl);
	*path = str_dup(slash ? slash : "/");
	return *base && *host && *path ? 0 : -1;
}

static char *trim_slash_dup(const char *s)
{
	char *d = str_dup(s);
	if (d) {
		size_t n = strlen(d);
		while (n && d[n - 1] == '/') d[--n] = 0;
	}
	return d;
}

wsrc *wsrc_new(const char *url, const weights_opts *o, char *err, size_t errlen)
{
	wsrc *s = calloc(1, sizeof *s);
	if (!s) {
		util_errf(err, errlen, "out of memory");
		return NULL;
	}
	s->url = str_dup(url);
	s->o = o;
	if (!strncmp(url, "hf://", 5)) {
		s->kind = WSRC_HF;
		const char *r = url + 5;
		const char *at = strchr(r, '@');
		s->repo = at ? str_ndup(r, (size_t)(at - r)) : str_dup(r);
		s->rev = str_dup(at ? at + 1 : "main");
		size_t rl = strlen(s->repo);
		while (rl && s->repo[rl - 1] == '/') s->repo[--rl] = 0;
		const char *sl = strchr(s->repo, '/');
		if (!sl || sl == s->repo || !sl[1] || strchr(sl + 1, '/') || !wsrc_path_ok(s->repo, rl) ||
		    !*s->rev || !wsrc_path_ok(s->rev, strlen(s->rev))) {
			util_errf(err, errlen, "bad Hugging Face location %s: expected hf://ORG/NAME[@REVISION]", url);
			goto fail;
		}
		const char *ep = o && o->hf_endpoint ? o->hf_endpoint : env("HF_ENDPOINT");
		s->base = trim_slash_dup(ep ? ep : "https://huggingface.co");
		const char *tok = env("HF_TOKEN") ? env("HF_TOKEN") : env("HUGGING_FACE_HUB_TOKEN");
		s->token = tok ? str_dup(tok) : NULL;
		if (strncmp(s->base, "http://", 7) && strncmp(s->base, "https://", 8)) {
			util_errf(err, errlen, "HF_ENDPOINT must be an http(s) address, not %s", s->base);
			goto fail;
		}
	} else if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) {
		s->kind = WSRC_HTTP;
		if (split_url(url, &s->base, &s->host, &s->path) || strchr(s->path, '?') || strchr(s->path, '#')) {
			util_errf(err, errlen, "bad HTTP location %s: expected http(s)://HOST[:PORT]/PATH/", url);
			goto fail;
		}
		size_t pl = strlen(s->path);
		s->single_file = s->path[pl - 1] != '/';
	} else if (!strncmp(url, "s3://", 5) || !strncmp(url, "gs://", 5)) {
		s->kind = url[0] == 's' ? WSRC_S3 : WSRC_GS;
		const char *b = url + 5;
		const char *sl = strchr(b, '/');
		s->bucket = sl ? str_ndup(b, (size_t)(sl - b)) : str_dup(b);
		const char *pfx = sl ? sl + 1 : "";
		size_t pl = strlen(pfx);
		s->prefix = malloc(pl + 2);
		if (!s->bucket || !s->prefix || !*s->bucket) {
			util_errf(err, errlen, "bad bucket location %s: expected %.2s://BUCKET[/PREFIX]", url, url);
			goto fail;
		}
		memcpy(s->prefix, pfx, pl + 1);
		if (pl && s->prefix[pl - 1] != '/') {
			s->prefix[pl] = '/';
			s->prefix[pl + 1] = 0;
		}
		if (pl && !wsrc_path_ok(s->prefix, strlen(s->prefix) - 1)) {
			util_errf(err, errlen, "bad prefix in %s", url);
			goto fail;
		}
		const char *ep;
		char def[128];
		if (s->kind == WSRC_S3) {
			const char *region = o && o->s3_region ? o->s3_region : env("AWS_REGION") ? env("AWS_REGION")
												  : env("AWS_DEFAULT_REGION");
			s->region = str_dup(region ? region : "us-east-1");
			ep = o && o->s3_endpoint ? o->s3_endpoint : env("AWS_ENDPOINT_URL_S3") ? env("AWS_ENDPOINT_URL_S3")
											       : env("AWS_ENDPOINT_URL");
			if (!ep) {
				snprintf(def, sizeof def, "https://s3.%s.amazonaws.com", s->region);
				ep = def;
			}
			if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
				s->ak = str_dup(env("AWS_ACCESS_KEY_ID"));
				s->sk = str_dup(env("AWS_SECRET_ACCESS_KEY"));
				if (env("AWS_SESSION_TOKEN")) s->session = str_dup(env("AWS_SESSION_TOKEN"));
			}
		} else {
			ep = o && o->gcs_endpoint ? o->gcs_endpoint : env("STORAGE_EMULATOR_HOST");
			if (!ep) ep = "https://storage.googleapis.com";
			const char *tok = env("GCS_TOKEN") ? env("GCS_TOKEN") : env("GOOGLE_OAUTH_ACCESS_TOKEN");
			s->token = tok ? str_dup(tok) : NULL;
		}
		char epbuf[512];
		if (!strstr(ep, "://")) {
			snprintf(epbuf, sizeof epbuf, "http://%s", ep);
			ep = epbuf;
		}
		char *p = NULL;
		if (split_url(ep, &s->base, &s->host, &p)) {
			free(p);
			util_errf(err, errlen, "bad endpoint %s", ep);
			goto fail;
		}
		free(p);
	} else {
		util_errf(err, errlen, "unknown location %s: use hf://, http(s)://, s3:// or gs://", url);
		goto fail;
	}
	return s;
fail:
	wsrc_free(s);
	return NULL;
}

void wsrc_free(wsrc *s)
{
	if (!s) return;
	free(s->url);
	free(s->base);
	free(s->host);
	free(s->path);
	free(s->repo);
	free(s->rev);
	free(s->bucket);
	free(s->prefix);
	free(s->token);
	free(s->ak);
	free(s->sk);
	free(s->session);
	free(s->region);
	free(s->pinned_rev);
	free(s);
}

/* ---------------------------------------------------------------- lists */

int wlist_add(wlist *l, const char *path, size_t n, uint64_t size, int size_known)
{
	if (wsrc_name_problem(path, n)) return -2;
	if (l->n >= WEIGHTS_MAX_FILES) return -1;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		wfile *nf = realloc(l->files, nc * sizeof *nf);
		if (!nf) return -1;
		l->files = nf;
		l->cap = nc;
	}
	wfile *f = &l->files[l->n];
	memset(f, 0, sizeof *f);
	f->path = str_ndup(path, n);
	if (!f->path) return -1;
	f->size = size;
	f->size_known = size_known;
	l->n++;
	return 0;
}

static int wfile_cmp(const void *a, const void *b)
{
	return strcmp(((const wfile *)a)->path, ((const wfile *)b)->path);
}

void wlist_sort(wlist *l)
{
	if (!l->n) return;
	qsort(l->files, l->n, sizeof *l->files, wfile_cmp);
	size_t w = 1;
	for (size_t i = 1; i < l->n; i++) {
		if (!strcmp(l->files[i].path, l->files[w - 1].path)) {
			free(l->files[i].path);
			continue;
		}
		l->files[w++] = l->files[i];
	}
	l->n = w;
}

void wlist_free(wlist *l)
{
	for (size_t i = 0; i < l->n; i++) free(l->files[i].path);
	free(l->files);
	memset(l, 0, sizeof *l);
}

static void strip_quotes(char *dst, size_t n, const char *v)
{
	while (*v == ' ' || *v == '"' || (v[0] == 'W' && v[1] == '/')) v += (*v == 'W') ? 2 : 1;
	str_copy(dst, v, n);
	size_t l = strlen(dst);
	while (l && (dst[l - 1] == '"' || dst[l - 1] == ' ')) dst[--l] = 0;
}

static int is_hex(const char *s, size_t n)
{
	if (strlen(s) != n) return 0;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i])) return 0;
	return 1;
}

static void lower(char *s)
{
	for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

/* ---------------------------------------------------------------- errors */

void wsrc_explain_status(const wsrc *s, long st, const char *code, const char *what, char *err, size_t n)
{
	code = code ? code : "";
	if (s->kind == WSRC_HF) {
		if (!strcmp(code, "GatedRepo") || ((st == 401 || st == 403) && !strcmp(code, ""))) {
			if (!s->token)
				util_errf(err, n, "hf://%s is a gated repository (HTTP %ld): set HF_TOKEN to a token of an "
						  "account that has accepted the model's licence at %s/%s",
					  s->repo, st, s->base, s->repo);
			else
				util_errf(err, n, "hf://%s: the token in HF_TOKEN was refused (HTTP %ld, %s): accept the "
						  "model's licence at %s/%s with that account, or set HF_TOKEN to another token",
					  s->repo, st, *code ? code : "forbidden", s->base, s->repo);
			return;
		}
		if (!strcmp(code, "RepoNotFound")) {
			util_errf(err, n, "repository not found: %s on %s (HTTP %ld)%s", s->repo, s->base, st,
				  s->token ? "" : "; if it is private, set HF_TOKEN");
			return;
		}
		if (!strcmp(code, "RevisionNotFound")) {
			util_errf(err, n, "revision not found: %s in %s (HTTP %ld)", s->rev, s->repo, st);
			return;
		}
		if (!strcmp(code, "EntryNotFound")) {
			util_errf(err, n, "file not found: %s in %s@%s (HTTP %ld)", what, s->repo, s->rev, st);
			return;
		}
	}
	if (st == 404) util_errf(err, n, "not found (HTTP 404): %s in %s", what, s->url);
	else if (st == 401) util_errf(err, n, "unauthorised (HTTP 401) for %s in %s: check the credentials", what, s->url);
	else if (st == 403) util_errf(err, n, "forbidden (HTTP 403) for %s in %s: check the credentials", what, s->url);
	else util_errf(err, n, "HTTP %ld for %s in %s%s%s", st, what, s->url, *code ? ": " : "", code);
}

/* ---------------------------------------------------------------- headers */

static struct curl_slist *add_hdr(struct curl_slist *l, int *bad, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static struct curl_slist *add_hdr(struct curl_slist *l, int *bad, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= sizeof line) {
		*bad = 1;
		return l;
	}
	struct curl_slist *n = curl_slist_append(l, line);
	if (!n) {
		*bad = 1;
		return l;
	}
	return n;
}

/* S3 headers for a request: Host, x-amz-*, Range, Authorization when signed. */
static struct curl_slist *s3_headers(const wsrc *s, const char *method, const char *path,
				     const char *query, const char *range, const char *if_match,
				     const char *payload_sha)
{
	int bad = 0;
	struct curl_slist *l = NULL;
	char date[17];
	sigv4_amz_date((long long)time(NULL), date);
	sigv4_header h[7];
	size_t n = 0;
	h[n++] = (sigv4_header){"host", s->host};
	if (if_match) h[n++] = (sigv4_header){"if-match", if_match};
	if (range) h[n++] = (sigv4_header){"range", range};
	h[n++] = (sigv4_header){"x-amz-content-sha256", payload_sha};
	h[n++] = (sigv4_header){"x-amz-date", date};
	if (s->session) h[n++] = (sigv4_header){"x-amz-security-token", s->session};
	for (size_t i = 0; i < n; i++) l = add_hdr(l, &bad, "%s: %s", h[i].name, h[i].value);
	if (s->ak) {
		sigv4_req r = {.method = method, .path = path, .query = query, .headers = h, .n_headers = n, .payload_sha256 = payload_sha, .access_key = s->ak, .secret_key = s->sk, .region = s->region, .service = "s3", .amz_date = date};
		buf auth;
		buf_init(&auth, 4096);
		char sig[65];
		if (sigv4_sign(&r, sig, &auth)) bad = 1;
		else l = add_hdr(l, &bad, "Authorization: %s", buf_rptr(&auth));
		buf_free(&auth);
	}
	if (bad) {
		curl_slist_free_all(l);
		return NULL;
	}
	return l;
}

static struct curl_slist *bearer_headers(const wsrc *s, const char *range, const char *if_match)
{
	int bad = 0;
	struct curl_slist *l = NULL;
	if (s->token) l = add_hdr(l, &bad, "Authorization: Bearer %s", s->token);
	if (range) l = add_hdr(l, &bad, "Range: %s", range);
	if (if_match) l = add_hdr(l, &bad, "If-Match: %s", if_match);
	l = add_hdr(l, &bad, "Accept-Encoding: identity");
	if (bad) {
		curl_slist_free_all(l);
		return NULL;
	}
	return l;
}

/* ---------------------------------------------------------------- ranged GET */

/* The If-Match value pinning f: the pin an earlier answer gave, else (S3) the
 * listing's ETag, quoted; "" when there is none. */
static void if_match_value(const wsrc *s, const wfile *f, const char *pin, char *out, size_t n)
{
	out[0] = 0;
	if (pin && *pin) str_copy(out, pin, n);
	else if (s->kind == WSRC_S3 && f->etag[0]) snprintf(out, n, "\"%s\"", f->etag);
	/* A header value never holds CR, LF or NUL; anything else is quoted
	 * text from a listing or an answer. */
	if (strpbrk(out, "\r\n")) out[0] = 0;
}

static int all_digits(const char *p)
{
	if (!*p) return 0;
	for (; *p; p++)
		if (*p < '0' || *p > '9') return 0;
	return 1;
}

int wsrc_get_request(wsrc *s, const wfile *f, uint64_t off, uint64_t len, const char *pin, char **url,
		     struct curl_slist **hdrs)
{
	char im[200];
	if_match_value(s, f, pin, im, sizeof im);
	char range[64] = "";
	if (len) snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)off,
			  (unsigned long long)(off + len - 1));
	const char *rg = len ? range : NULL;
	buf u;
	buf_init(&u, 16384);
	int rc = 0;
	*hdrs = NULL;
	switch (s->kind) {
	case WSRC_HF:
		rc |= buf_printf(&u, "%s/%s/resolve/", s->base, s->repo);
		rc |= sigv4_uri_encode(&u, s->pinned_rev ? s->pinned_rev : s->rev, 0);
		rc |= buf_puts(&u, "/");
		rc |= sigv4_uri_encode(&u, f->path, 1);
		/* Pinned by the commit in the URL; no If-Match, since the Hub and
		 * its CDN do not share ETags. */
		*hdrs = bearer_headers(s, rg, NULL);
		break;
	case WSRC_HTTP:
		rc |= buf_puts(&u, s->base);
		if (s->single_file) rc |= buf_puts(&u, s->path);
		else {
			rc |= buf_puts(&u, s->path);
			rc |= sigv4_uri_encode(&u, f->path, 1);
		}
		*hdrs = bearer_headers(s, rg, im[0] ? im : NULL);
		break;
	case WSRC_S3: {
		buf p;
		buf_init(&p, 8192);
		rc |= buf_puts(&p, "/");
		rc |= sigv4_uri_encode(&p, s->bucket, 0);
		rc |= buf_puts(&p, "/");
		rc |= sigv4_uri_encode(&p, s->prefix, 1);
		rc |= sigv4_uri_encode(&p, f->path, 1);
		rc |= buf_printf(&u, "%s%s", s->base, buf_rptr(&p));
		if (!rc) *hdrs = s3_headers(s, "GET", buf_rptr(&p), NULL, rg, im[0] ? im : NULL, SIGV4_EMPTY_SHA256);
		buf_free(&p);
		break;
	}
	case WSRC_GS:
		rc |= buf_printf(&u, "%s/storage/v1/b/", s->base);
		rc |= sigv4_uri_encode(&u, s->bucket, 0);
		rc |= buf_puts(&u, "/o/");
		rc |= sigv4_uri_encode(&u, s->prefix, 0);
		rc |= sigv4_uri_encode(&u, f->path, 0);
		rc |= buf_puts(&u, "?alt=media");
		/* The generation the listing named: a replaced object answers 412. */
		if (all_digits(f->etag)) rc |= buf_printf(&u, "&ifGenerationMatch=%s", f->etag);
		*hdrs = bearer_headers(s, rg, NULL);
		break;
	}
	if (rc || !*hdrs) {
		curl_slist_free_all(*hdrs);
		*hdrs = NULL;
		buf_free(&u);
		return -1;
	}
	*url = buf_detach(&u, NULL);
	return *url ? 0 : -1;
}

static int etag_same(const char *a, const char *b)
{
	char x[200], y[200];
	strip_quotes(x, sizeof x, a);
	strip_quotes(y, sizeof y, b);
	return !strcmp(x, y);
}

int wsrc_check_range_answer(const wsrc *s, const wfile *f, const char *pin, uint64_t off, uint64_t len,
			    const xfer_resp *r, char *why, size_t n)
{
	why[0] = 0;
	if (r->status == 412) {
		util_errf(why, n, "%s changed at the source during the download (HTTP 412: no longer the version "
				  "listed)",
			  f->path);
		return 1;
	}
	if (r->status == 206) {
		if (r->range_first < 0) {
			util_errf(why, n, "%s: a 206 answer without a usable Content-Range for bytes %llu-%llu", f->path,
				  (unsigned long long)off, (unsigned long long)(off + len - 1));
			return -1;
		}
		if ((uint64_t)r->range_first != off || (uint64_t)r->range_last != off + len - 1 ||
		    (uint64_t)r->range_total != f->size) {
			char tot[32];
			if (r->range_total < 0) str_copy(tot, "*", sizeof tot);
			else snprintf(tot, sizeof tot, "%lld", (long long)r->range_total);
			util_errf(why, n, "%s: asked for bytes %llu-%llu of %llu, the server answered bytes %lld-%lld/%s "
					  "(another range or another file)",
				  f->path, (unsigned long long)off,
				  (unsigned long long)(off + len - 1), (unsigned long long)f->size,
				  (long long)r->range_first, (long long)r->range_last, tot);
			return -1;
		}
	}
	if (r->status != 206 && r->status != 200) return 0;
	/* The version: an ETag pinned by earlier ranges (or, for S3, listed) must
	 * not change; an HTTP bucket's listing gives the mtime, which nginx also
	 * sends as Last-Modified in the same form. */
	char im[200];
	if_match_value(s, f, pin, im, sizeof im);
	if (im[0] && r->etag[0] && !etag_same(im, r->etag)) {
		util_errf(why, n, "%s changed at the source during the download (ETag %s, then %s)", f->path, im, r->etag);
		return 1;
	}
	if (s->kind == WSRC_HTTP && !s->single_file && f->etag[0] && r->last_modified[0] &&
	    strcmp(f->etag, r->last_modified)) {
		util_errf(why, n, "%s changed at the source since it was listed (listed with mtime %s, now Last-Modified %s)",
			  f->path, f->etag, r->last_modified);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- listings */

static json_doc *get_json(wsrc *s, const char *url, struct curl_slist *h, const char *what,
			  xfer_resp *r, char *err, size_t n)
{
	xfer_req q = {.url = url, .headers = h, .body_max = WEIGHTS_MAX_LISTING_BYTES, .upload_fd = -1, .o = s->o};
	if (xfer_do_retry(&q, r)) {
		util_errf(err, n, "listing %s: %s", url, r->err);
		return NULL;
	}
	if (r->status != 200) {
		wsrc_explain_status(s, r->status, r->error_code, what, err, n);
		return NULL;
	}
	json_error je;
	json_doc *d = json_parse(buf_rptr(&r->body), buf_rlen(&r->body), 0, &je);
	if (!d) util_errf(err, n, "listing %s: bad JSON at %u:%u: %s", url, je.line, je.col, je.msg);
	return d;
}

/* Asks the size (and Hugging Face sha256) of a file with HEAD. */
static int head_file(wsrc *s, wfile *f, char *err, size_t n)
{
	char *url = NULL;
	struct curl_slist *h = NULL;
	if (wsrc_get_request(s, f, 0, 0, NULL, &url, &h)) {
		util_errf(err, n, "out of memory");
		return -1;
	}
	xfer_req q = {.method = "HEAD", .url = url, .headers = h, .upload_fd = -1, .o = s->o};
	xfer_resp r;
	int rc = xfer_do_retry(&q, &r);
	if (rc) util_errf(err, n, "HEAD %s: %s", url, r.err);
	else if (r.status != 200) {
		wsrc_explain_status(s, r.status, r.error_code, f->path, err, n);
		rc = -1;
	} else {
		int64_t sz = r.linked_size >= 0 ? r.linked_size : r.content_length;
		if (sz >= 0) {
			f->size = (uint64_t)sz;
			f->size_known = 1;
		}
		char le[160];
		strip_quotes(le, sizeof le, r.linked_etag);
		if (is_hex(le, 64) && !f->sha256[0]) {
			lower(le);
			str_copy(f->sha256, le, sizeof f->sha256);
		}
		if (!f->etag[0]) strip_quotes(f->etag, sizeof f->etag, r.etag[0] ? r.etag : r.last_modified);
		if (!f->size_known) {
			util_errf(err, n, "%s: the server gives no size", f->path);
			rc = -1;
		}
	}
	xfer_resp_free(&r);
	curl_slist_free_all(h);
	free(url);
	return rc;
}

static int list_hf(wsrc *s, wlist *l, char *err, size_t n)
{
	buf u;
	buf_init(&u, 8192);
	buf_printf(&u, "%s/api/models/%s/revision/", s->base, s->repo);
	sigv4_uri_encode(&u, s->rev, 0);
	buf_puts(&u, "?blobs=true");
	struct curl_slist *h = bearer_headers(s, NULL, NULL);
	xfer_resp r;
	json_doc *d = get_json(s, buf_rptr(&u), h, "the repository listing", &r, err, n);
	curl_slist_free_all(h);
	buf_free(&u);
	xfer_resp_free(&r);
	if (!d) return -1;
	const json_val *root = json_root(d);
	str_copy(l->revision, json_str(json_get(root, "sha"), ""), sizeof l->revision);
	/* Every file is then read at that commit, not at whatever the branch
	 * points to when its ranges are asked: a push during the pull cannot mix
	 * two revisions. */
	free(s->pinned_rev);
	s->pinned_rev = is_hex(l->revision, 40) ? str_dup(l->revision) : NULL;
	const json_val *sib = json_get(root, "siblings");
	int rc = 0;
	if (!json_is(sib, JSON_ARRAY)) {
		util_errf(err, n, "repository listing of %s has no siblings", s->repo);
		rc = -1;
	}
	for (size_t i = 0; !rc && i < json_count(sib); i++) {
		const json_val *e = json_at(sib, i);
		size_t nl;
		const char *name = jstr_n(json_get(e, "rfilename"), &nl);
		if (!name) continue;
		const json_val *lfs = json_get(e, "lfs");
		double sz = json_num(json_get(lfs, "size"), json_num(json_get(e, "size"), -1));
		if (add_listed(s, l, name, nl, sz >= 0 ? (uint64_t)sz : 0, sz >= 0, err, n)) {
			rc = -1;
			break;
		}
		wfile *f = &l->files[l->n - 1];
		const char *sha = json_str(json_get(lfs, "sha256"), "");
		if (is_hex(sha, 64)) {
			str_copy(f->sha256, sha, sizeof f->sha256);
			lower(f->sha256);
		}
		const char *blob = json_str(json_get(e, "blobId"), "");
		str_copy(f->etag, f->sha256[0] ? f->sha256 : blob, sizeof f->etag);
	}
	json_doc_free(d);
	for (size_t i = 0; !rc && i < l->n; i++)
		if (!l->files[i].size_known) rc = head_file(s, &l->files[i], err, n);
	return rc;
}

static int list_http(wsrc *s, wlist *l, char *err, size_t n)
{
	if (s->single_file) {
		const char *name = strrchr(s->path, '/') + 1;
		char dec[WEIGHTS_MAX_PATH + 1];
		int dl = 0;
		char *d = curl_easy_unescape(NULL, name, 0, &dl);
		str_copy(dec, d ? d : name, sizeof dec);
		curl_free(d);
		if (wlist_add(l, dec, strlen(dec), 0, 0)) {
			util_errf(err, n, "bad file name %s", name);
			return -1;
		}
		return head_file(s, &l->files[0], err, n);
	}
	/* Breadth-first over directories; each queue entry is a relative folder, "" or ending in "/". */
	char **queue = calloc(MAX_PAGES, sizeof *queue);
	if (!queue) {
		util_errf(err, n, "out of memory");
		return -1;
	}
	size_t qh = 0, qt = 0;
	queue[qt++] = str_dup("");
	int rc = 0;
	while (!rc && qh < qt) {
		char *dir = queue[qh++];
		buf u;
		buf_init(&u, 16384);
		buf_printf(&u, "%s%s", s->base, s->path);
		sigv4_uri_encode(&u, dir, 1);
		struct curl_slist *h = bearer_headers(s, NULL, NULL);
		xfer_resp r;
		char what[WEIGHTS_MAX_PATH + 32];
		snprintf(what, sizeof what, "the listing of /%s", dir);
		json_doc *d = get_json(s, buf_rptr(&u), h, what, &r, err, n);
		curl_slist_free_all(h);
		xfer_resp_free(&r);
		const json_val *root = d ? json_root(d) : NULL;
		if (!d) rc = -1;
		else if (!json_is(root, JSON_ARRAY)) {
			util_errf(err, n, "%s is not a JSON directory listing (nginx: autoindex on; autoindex_format json;)",
				  buf_rptr(&u));
			rc = -1;
		}
		for (size_t i = 0; !rc && i < json_count(root); i++) {
			const json_val *e = json_at(root, i);
			size_t nl;
			const char *name = jstr_n(json_get(e, "name"), &nl);
			const char *type = json_str(json_get(e, "type"), "file");
			if (!name) continue;
			if (memchr(name, '/', nl) || memchr(name, 0, nl)) {
				char shown[300];
				wsrc_name_show(shown, sizeof shown, name, nl);
				util_errf(err, n, "refusing the listing of %s: the name \"%s\" in /%s %s", s->url, shown, dir,
					  memchr(name, 0, nl) ? "contains a NUL byte" : "contains a \"/\"");
				rc = -1;
				break;
			}
			char rel[WEIGHTS_MAX_PATH + 2];
			int w = snprintf(rel, sizeof rel, "%s%s", dir, name);
			if (w < 0 || (size_t)w >= sizeof rel - 1) {
				util_errf(err, n, "path too long: %s%s", dir, name);
				rc = -1;
				break;
			}
			if (!strcmp(type, "directory")) {
				size_t depth = 0;
				for (const char *p = rel; *p; p++) depth += *p == '/';
				if (qt >= MAX_PAGES || depth >= MAX_DEPTH) {
					util_errf(err, n, "too many or too deep directories");
					rc = -1;
					break;
				}
				const char *why = wsrc_name_problem(rel, strlen(rel));
				if (why) {
					char shown[300];
					wsrc_name_show(shown, sizeof shown, rel, strlen(rel));
					util_errf(err, n, "refusing the listing of %s: the folder \"%s\" %s", s->url, shown, why);
					rc = -1;
					break;
				}
				strcat(rel, "/");
				queue[qt++] = str_dup(rel);
				continue;
			}
			if (strcmp(type, "file")) continue;
			double sz = json_num(json_get(e, "size"), -1);
			if (add_listed(s, l, rel, strlen(rel), sz >= 0 ? (uint64_t)sz : 0, sz >= 0, err, n)) {
				rc = -1;
				break;
			}
			str_copy(l->files[l->n - 1].etag, json_str(json_get(e, "mtime"), ""), sizeof l->files[0].etag);
		}
		json_doc_free(d);
		buf_free(&u);
	}
	for (size_t i = 0; i < qt; i++) free(queue[i]);
	free(queue);
	for (size_t i = 0; !rc && i < l->n; i++)
		if (!l->files[i].size_known) rc = head_file(s, &l->files[i], err, n);
	return rc;
}

/* Finds the next <tag>...</tag> in [p, end); returns the text between, or NULL. */
static const char *xml_find(const char *p, const char *end, const char *tag, size_t *len, const char **after)
{
	char open[64], close[64];
	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	const char *a = memmem(p, (size_t)(end - p), open, strlen(open));
	if (!a) return NULL;
	a += strlen(open);
	const char *b = memmem(a, (size_t)(end - a), close, strlen(close));
	if (!b) return NULL;
	*len = (size_t)(b - a);
	if (after) *after = b + strlen(close);
	return a;
}

/* Copies XML text with the five entities and numeric references decoded;
 * *out_len is its length (a decoded &#0; is kept, so the caller sees it). */
static int xml_text_n(char *dst, size_t n, const char *s, size_t len, size_t *out_len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '&') {
			static const struct {
				const char *e;
				char c;
			} ents[] = {
				{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
			size_t k;
			for (k = 0; k < ARRAY_LEN(ents); k++) {
				size_t el = strlen(ents[k].e);
				if (i + el <= len && !memcmp(s + i, ents[k].e, el)) {
					c = ents[k].c;
					i += el - 1;
					break;
				}
			}
			if (k == ARRAY_LEN(ents) && i + 2 < len && s[i + 1] == '#') {
				char *e;
				long v = s[i + 2] == 'x' ? strtol(s + i + 3, &e, 16) : strtol(s + i + 2, &e, 10);
				if (*e != ';' || v < 0 || v > 127) return -1; /* non-ASCII references are not expected */
				c = (char)v;
				i = (size_t)(e - s);
			}
		}
		if (o + 1 >= n) return -1;
		dst[o++] = c;
	}
	dst[o] = 0;
	*out_len = o;
	return 0;
}

/* xml_text_n for values that must not hold a NUL (sizes, tokens, ETags). */
static int xml_text(char *dst, size_t n, const char *s, size_t len)
{
	size_t got;
	if (xml_text_n(dst, n, s, len, &got)) return -1;
	return memchr(dst, 0, got) ? -1 : 0;
}

static int list_s3(wsrc *s, wlist *l, char *err, size_t n)
{
	char token[2048] = "";
	int rc = 0;
	for (int page = 0; !rc; page++) {
		if (page >= MAX_PAGES) {
			util_errf(err, n, "listing has too many pages");
			return -1;
		}
		buf q, path, u;
		buf_init(&q, 8192);
		buf_init(&path, 1024);
		buf_init(&u, 16384);
		if (token[0]) {
			buf_puts(&q, "continuation-token=");
			sigv4_uri_encode(&q, token, 0);
			buf_puts(&q, "&");
		}
		buf_puts(&q, "list-type=2&prefix=");
		sigv4_uri_encode(&q, s->prefix, 0);
		buf_puts(&path, "/");
		sigv4_uri_encode(&path, s->bucket, 0);
		buf_printf(&u, "%s%s?%s", s->base, buf_rptr(&path), buf_rptr(&q));
		struct curl_slist *h = s3_headers(s, "GET", buf_rptr(&path), buf_rptr(&q), NULL, NULL, SIGV4_EMPTY_SHA256);
		xfer_req rq = {.url = buf_rptr(&u), .headers = h, .body_max = WEIGHTS_MAX_LISTING_BYTES, .upload_fd = -1, .o = s->o};
		xfer_resp r;
		if (!h) {
			util_errf(err, n, "cannot sign the listing request");
			rc = -1;
		} else if (xfer_do_retry(&rq, &r)) {
			util_errf(err, n, "listing %s: %s", buf_rptr(&u), r.err);
			rc = -1;
			xfer_resp_free(&r);
		} else if (r.status != 200) {
			wsrc_explain_status(s, r.status, NULL, "the listing", err, n);
			size_t cl;
			const char *code = xml_find(buf_rptr(&r.body), buf_rptr(&r.body) + buf_rlen(&r.body), "Code", &cl, NULL);
			if (code) {
				size_t el = strlen(err);
				snprintf(err + el, n - el, " (%.*s)", (int)MIN(cl, 64), code);
			}
			rc = -1;
			xfer_resp_free(&r);
		}
		curl_slist_free_all(h);
		buf_free(&q);
		buf_free(&path);
		buf_free(&u);
		if (rc) return rc;
		const char *p = buf_rptr(&r.body), *end = p + buf_rlen(&r.body);
		size_t cl;
		const char *c;
		while (!rc && (c = xml_find(p, end, "Contents", &cl, &p))) {
			const char *ce = c + cl;
			size_t kl, zl, el;
			const char *k = xml_find(c, ce, "Key", &kl, NULL);
			const char *z = xml_find(c, ce, "Size", &zl, NULL);
			const char *e = xml_find(c, ce, "ETag", &el, NULL);
			char key[WEIGHTS_MAX_PATH * 2], num[32], etag[160] = "";
			if (!k || !z || xml_text(num, sizeof num, z, zl)) continue;
			size_t keyl;
			if (xml_text_n(key, sizeof key, k, kl, &keyl)) {
				char shown[300];
				wsrc_name_show(shown, sizeof shown, k, kl);
				util_errf(err, n, "refusing the listing of %s: the key \"%s\" is too long or has a character "
						  "reference this client does not accept",
					  s->url, shown);
				rc = -1;
				break;
			}
			if (e && xml_text(etag, sizeof etag, e, el)) etag[0] = 0;
			size_t pl = strlen(s->prefix);
			if (keyl < pl || memcmp(key, s->prefix, pl) || keyl == pl || key[keyl - 1] == '/') continue;
			int64_t size;
			if (parse_int64(num, 0, INT64_MAX, &size)) continue;
			if (add_listed(s, l, key + pl, keyl - pl, (uint64_t)size, 1, err, n)) {
				rc = -1;
				break;
			}
			wfile *f = &l->files[l->n - 1];
			strip_quotes(f->etag, sizeof f->etag, etag);
			if (is_hex(f->etag, 32)) {
				str_copy(f->md5, f->etag, sizeof f->md5);
				lower(f->md5);
			}
		}
		const char *b = buf_rptr(&r.body);
		size_t tl;
		const char *tr = xml_find(b, end, "IsTruncated", &tl, NULL);
		const char *nt = xml_find(b, end, "NextContinuationToken", &cl, NULL);
		int more = tr && tl == 4 && !memcmp(tr, "true", 4) && nt;
		if (more && xml_text(token, sizeof token, nt, cl)) {
			util_errf(err, n, "continuation token too long");
			rc = -1;
		}
		xfer_resp_free(&r);
		if (!more) break;
	}
	return rc;
}

/* GCS gives md5Hash in base64; the cache compares hex. */
static void b64_to_hex(const char *b64, char *hex, size_t n)
{
	unsigned char raw[64];
	hex[0] = 0;
	size_t bl = strlen(b64);
	if (bl != 24) return;
	int got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl);
	if (got < 16 || n < 33) return;
	for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
}

static int list_gs(wsrc *s, wlist *l, char *err, size_t n)
{
	char token[2048] = "";
	int rc = 0;
	for (int page = 0; !rc; page++) {
		if (page >= MAX_PAGES) {
			util_errf(err, n, "listing has too many pages");
			return -1;
		}
		buf u;
		buf_init(&u, 16384);
		buf_printf(&u, "%s/storage/v1/b/", s->base);
		sigv4_uri_encode(&u, s->bucket, 0);
		buf_puts(&u, "/o?maxResults=1000&prefix=");
		sigv4_uri_encode(&u, s->prefix, 0);
		if (token[0]) {
			buf_puts(&u, "&pageToken=");
			sigv4_uri_encode(&u, token, 0);
		}
		struct curl_slist *h = bearer_headers(s, NULL, NULL);
		xfer_resp r;
		json_doc *d = get_json(s, buf_rptr(&u), h, "the listing", &r, err, n);
		curl_slist_free_all(h);
		xfer_resp_free(&r);
		buf_free(&u);
		if (!d) return -1;
		const json_val *root = json_root(d);
		const json_val *items = json_get(root, "items");
		size_t pl = strlen(s->prefix);
		for (size_t i = 0; i < json_count(items); i++) {
			const json_val *e = json_at(items, i);
			size_t nl;
			const char *name = jstr_n(json_get(e, "name"), &nl);
			const char *size = json_str(json_get(e, "size"), NULL);
			int64_t sz;
			if (!name || !size || nl < pl || memcmp(name, s->prefix, pl) || nl == pl || name[nl - 1] == '/' ||
			    parse_int64(size, 0, INT64_MAX, &sz)) continue;
			if (add_listed(s, l, name + pl, nl - pl, (uint64_t)sz, 1, err, n)) {
				rc = -1;
				break;
			}
			wfile *f = &l->files[l->n - 1];
			b64_to_hex(json_str(json_get(e, "md5Hash"), ""), f->md5, sizeof f->md5);
			const char *gen = json_str(json_get(e, "generation"), NULL);
			str_copy(f->etag, gen ? gen : json_str(json_get(e, "etag"), ""), sizeof f->etag);
		}
		const char *next = json_str(json_get(root, "nextPageToken"), NULL);
		if (next && strlen(next) >= sizeof token) {
			util_errf(err, n, "page token too long");
			rc = -1;
		} else if (next) str_copy(token, next, sizeof token);
		json_doc_free(d);
		if (!next) break;
	}
	return rc;
}

int wsrc_list(wsrc *s, wlist *l, char *err, size_t n)
{
	memset(l, 0, sizeof *l);
	int rc;
	switch (s->kind) {
	case WSRC_HF: rc = list_hf(s, l, err, n); break;
	case WSRC_HTTP: rc = list_http(s, l, err, n); break;
	case WSRC_S3: rc = list_s3(s, l, err, n); break;
	default: rc = list_gs(s, l, err, n); break;
	}
	if (rc) {
		wlist_free(l);
		return -1;
	}
	wlist_sort(l);
	if (l->n == 0) {
		util_errf(err, n, "no files at %s", s->url);
		wlist_free(l);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- upload */

int wsrc_put(wsrc *s, const char *path, int fd, uint64_t size, const char *sha, char *err, size_t n)
{
	if (!wsrc_path_ok(path, strlen(path))) {
		util_errf(err, n, "bad path %s", path);
		return -1;
	}
	buf u, p;
	buf_init(&u, 16384);
	buf_init(&p, 16384);
	struct curl_slist *h = NULL;
	const char *method = "PUT";
	int bad = 0;
	switch (s->kind) {
	case WSRC_HF:
		buf_free(&u);
		buf_free(&p);
		util_errf(err, n, "a Hugging Face repository is not a writable destination here");
		return -1;
	case WSRC_HTTP:
		if (s->single_file) {
			buf_free(&u);
			buf_free(&p);
			util_errf(err, n, "an HTTP destination must end with /");
			return -1;
		}
		buf_printf(&u, "%s%s", s->base, s->path);
		sigv4_uri_encode(&u, path, 1);
		h = bearer_headers(s, NULL, NULL);
		h = add_hdr(h, &bad, "Content-Type: application/octet-stream");
		break;
	case WSRC_S3:
		buf_puts(&p, "/");
		sigv4_uri_encode(&p, s->bucket, 0);
		buf_puts(&p, "/");
		sigv4_uri_encode(&p, s->prefix, 1);
		sigv4_uri_encode(&p, path, 1);
		buf_printf(&u, "%s%s", s->base, buf_rptr(&p));
		h = s3_headers(s, "PUT", buf_rptr(&p), NULL, NULL, NULL, sha && *sha ? sha : "UNSIGNED-PAYLOAD");
		break;
	case WSRC_GS:
		method = "POST";
		buf_printf(&u, "%s/upload/storage/v1/b/", s->base);
		sigv4_uri_encode(&u, s->bucket, 0);
		buf_puts(&u, "/o?uploadType=media&name=");
		sigv4_uri_encode(&u, s->prefix, 0);
		sigv4_uri_encode(&u, path, 0);
		h = bearer_headers(s, NULL, NULL);
		h = add_hdr(h, &bad, "Content-Type: application/octet-stream");
		break;
	}
	h = add_hdr(h, &bad, "Expect:");
	xfer_req q = {.method = method, .url = buf_rptr(&u), .headers = h, .upload_fd = fd, .upload_bytes = size, .o = s->o};
	xfer_resp r;
	int rc = bad ? -1 : xfer_do_retry(&q, &r);
	if (bad) util_errf(err, n, "cannot build the upload request for %s", path);
	else if (rc) util_errf(err, n, "uploading %s to %s: %s", path, s->url, r.err);
	else if (r.status < 200 || r.status > 299) {
		wsrc_explain_status(s, r.status, r.error_code, path, err, n);
		rc = -1;
	}
	if (!bad) xfer_resp_free(&r);
	curl_slist_free_all(h);
	buf_free(&u);
	buf_free(&p);
	return rc;
}
