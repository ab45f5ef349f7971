/*
 * sigv4.c — AWS Signature Version 4: canonical request, string to sign,
 * signing key chain, Authorization header. OpenSSL libcrypto does the hashing.
 * It signs; it does not send (see source.c for the S3 client).
 */
#include "weights/sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static void hex_of(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = 0;
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, len, md);
	hex_of(md, sizeof md, out);
}

int sigv4_uri_encode(buf *out, const char *s, int keep_slash)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int c = *p;
		int ok = isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
		if (ok ? buf_append(out, p, 1) : buf_printf(out, "%%%02X", c)) return -1;
	}
	return 0;
}

void sigv4_amz_date(long long unix_s, char out[17])
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* One header with its name lowercased and its value trimmed, spaces collapsed. */
typedef struct canon_hdr {
	char name[64];
	char value[1024];
} canon_hdr;

static int hdr_cmp(const void *a, const void *b)
{
	return strcmp(((const canon_hdr *)a)->name, ((const canon_hdr *)b)->name);
}

static int canon_headers(const sigv4_req *r, canon_hdr *h)
{
	if (r->n_headers > SIGV4_MAX_HEADERS) return -1;
	for (size_t i = 0; i < r->n_headers; i++) {
		const char *n = r->headers[i].name, *v = r->headers[i].value;
		size_t nl = strlen(n);
		if (nl == 0 || nl >= sizeof h[i].name) return -1;
		for (size_t k = 0; k <= nl; k++) h[i].name[k] = (char)tolower((unsigned char)n[k]);
		while (*v == ' ' || *v == '\t') v++;
		size_t o = 0;
		int sp = 0;
		for (; *v; v++) {
			if (*v == ' ' || *v == '\t') {
				sp = 1;
				continue;
			}
			if (sp && o) {
				if (o + 1 >= sizeof h[i].value) return -1;
				h[i].value[o++] = ' ';
			}
			sp = 0;
			if (o + 1 >= sizeof h[i].value) return -1;
			h[i].value[o++] = *v;
		}
		h[i].value[o] = 0;
	}
	qsort(h, r->n_headers, sizeof *h, hdr_cmp);
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the query's parameters by name (then value); a parameter with no '='
 * gets an empty value, as AWS canonicalises it. */
static int canon_query(const char *q, buf *out)
{
	if (!q || !*q) return 0;
	char *copy = strdup(q);
	if (!copy) return -1;
	char *parts[256];
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(copy, "&", &save); t; t = strtok_r(NULL, "&", &save)) {
		if (n == 256) {
			free(copy);
			return -1;
		}
		parts[n++] = t;
	}
	qsort(parts, n, sizeof parts[0], str_cmp);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (i) rc |= buf_puts(out, "&");
		rc |= buf_puts(out, parts[i]);
		if (!strchr(parts[i], '=')) rc |= buf_puts(out, "=");
	}
	free(copy);
	return rc ? -1 : 0;
}

int sigv4_canonical_request(const sigv4_req *r, buf *out)
{
	canon_hdr h[SIGV4_MAX_HEADERS];
	if (!r->method || !r->path || !r->payload_sha256 || canon_headers(r, h)) return -1;
	int rc = buf_printf(out, "%s\n%s\n", r->method, r->path);
	rc |= canon_query(r->query, out);
	rc |= buf_puts(out, "\n");
	for (size_t i = 0; i < r->n_headers; i++) rc |= buf_printf(out, "%s:%s\n", h[i].name, h[i].value);
	rc |= buf_puts(out, "\n");
	for (size_t i = 0; i < r->n_headers; i++) rc |= buf_printf(out, "%s%s", i ? ";" : "", h[i].name);
	rc |= buf_printf(out, "\n%s", r->payload_sha256);
	return rc ? -1 : 0;
}

static int scope(const sigv4_req *r, char *out, size_t n)
{
	if (!r->amz_date || strlen(r->amz_date) != 16 || !r->region || !r->service) return -1;
	int w = snprintf(out, n, "%.8s/%s/%s/aws4_request", r->amz_date, r->region, r->service);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int sigv4_string_to_sign(const sigv4_req *r, buf *out)
{
	char sc[256], hx[65];
	buf creq;
	buf_init(&creq, 1 << 20);
	if (scope(r, sc, sizeof sc) || sigv4_canonical_request(r, &creq)) {
		buf_free(&creq);
		return -1;
	}
	sigv4_sha256_hex(buf_rptr(&creq), buf_rlen(&creq), hx);
	buf_free(&creq);
	return buf_printf(out, "AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, sc, hx) ? -1 : 0;
}

static void hmac(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
	unsigned int olen = 32;
	HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen);
}

int sigv4_sign(const sigv4_req *r, char sig_hex[65], buf *auth)
{
	if (!r->access_key || !r->secret_key) return -1;
	buf sts;
	buf_init(&sts, 1 << 16);
	if (sigv4_string_to_sign(r, &sts)) {
		buf_free(&sts);
		return -1;
	}
	char kbuf[512];
	int kl = snprintf(kbuf, sizeof kbuf, "AWS4%s", r->secret_key);
	if (kl < 0 || (size_t)kl >= sizeof kbuf) {
		buf_free(&sts);
		return -1;
	}
	unsigned char k1[32], k2[32], k3[32], k[32];
	hmac(kbuf, (size_t)kl, r->amz_date, 8, k1);
	hmac(k1, 32, r->region, strlen(r->region), k2);
	hmac(k2, 32, r->service, strlen(r->service), k3);
	hmac(k3, 32, "aws4_request", 12, k);
	unsigned char sig[32];
	hmac(k, 32, buf_rptr(&sts), buf_rlen(&sts), sig);
	buf_free(&sts);
	hex_of(sig, 32, sig_hex);
	if (!auth) return 0;
	canon_hdr h[SIGV4_MAX_HEADERS];
	char sc[256];
	if (canon_headers(r, h) || scope(r, sc, sizeof sc)) return -1;
	int rc = buf_printf(auth, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=", r->access_key, sc);
	for (size_t i = 0; i < r->n_headers; i++) rc |= buf_printf(auth, "%s%s", i ? ";" : "", h[i].name);
	rc |= buf_printf(auth, ", Signature=%s", sig_hex);
	return rc ? -1 : 0;
}
