/*
 * test_http.c — the HTTP/1.1 parser, body framing, keep-alive rule, chunked
 * decoder and writer, driven by tables of messages.
 *
 * Every valid head is also parsed at every prefix (each must say
 * HTTP_INCOMPLETE), and every input, valid or not, is parsed at every prefix
 * with its last byte against a PROT_NONE guard page, so a read past `len`
 * crashes the test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "t.h"
#include "core/buf.h"
#include "core/http.h"
#include "core/util.h"

#define MAXH 16

/* ---------------------------------------------------------------- guard page */

static char *guard_base;
static size_t guard_page;

/* Copies s[0..n) so that it ends exactly where the readable mapping ends. */
static char *guarded(const char *s, size_t n)
{
	if (!guard_base) {
		guard_page = (size_t)sysconf(_SC_PAGESIZE);
		void *m = mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			abort();
		if (mprotect((char *)m + guard_page, guard_page, PROT_NONE) != 0)
			abort();
		guard_base = m;
	}
	if (n > guard_page)
		abort();
	char *p = guard_base + guard_page - n;
	memcpy(p, s, n);
	return p;
}

/* ---------------------------------------------------------------- requests */

struct req_case {
	const char *in;
	const char *method, *target;
	int minor;
	size_t nh;
	const char *h0_name, *h0_value; /* first header, when nh > 0 */
	const char *hl_name, *hl_value; /* last header, when nh > 1 */
};

static const struct req_case req_valid[] = {
	{"GET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0},
	{"GET / HTTP/1.0\r\n\r\n", "GET", "/", 0, 0},
	{"GET /v1/models HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/v1/models", 1, 1,
	 "Host", "example.com"},
	{"POST /v1/chat/completions HTTP/1.1\r\nHost: a:8080\r\nContent-Type: application/json\r\n"
	 "Content-Length: 17\r\nAuthorization: Bearer sk-0123456789abcdefghijklmnop\r\n\r\n",
	 "POST", "/v1/chat/completions", 1, 4, "Host", "a:8080", "Authorization",
	 "Bearer sk-0123456789abcdefghijklmnop"},
	/* LF-only line ends */
	{"GET / HTTP/1.1\nHost: a\n\n", "GET", "/", 1, 1, "Host", "a"},
	/* mixed line ends */
	{"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\n", "GET", "/", 1, 2, "Host", "a", "X", "y"},
	/* empty lines before the request line */
	{"\r\n\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0},
	{"\nGET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0},
	/* whitespace around values is trimmed; inside it is kept */
	{"GET / HTTP/1.1\r\nUser-Agent:  \t curl/8.1 (x86_64)\t \r\n\r\n", "GET", "/", 1, 1,
	 "User-Agent", "curl/8.1 (x86_64)"},
	{"GET / HTTP/1.1\r\nX:\r\nY: \r\n\r\n", "GET", "/", 1, 2, "X", "", "Y", ""},
	{"GET / HTTP/1.1\r\nX-Long: 0123456789abcdef\t0123456789abcdef0123456789abcdef\t\t\r\n\r\n",
	 "GET", "/", 1, 1, "X-Long", "0123456789abcdef\t0123456789abcdef0123456789abcdef"},
	{"GET / HTTP/1.1\r\nX: a:b:c\r\n\r\n", "GET", "/", 1, 1, "X", "a:b:c"},
	/* obs-text in values and targets */
	{"GET /caf\xc3\xa9 HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", "GET", "/caf\xc3\xa9", 1, 1, "X",
	 "caf\xc3\xa9"},
	/* token methods and odd but valid targets */
	{"M-SEARCH * HTTP/1.1\r\n\r\n", "M-SEARCH", "*", 1, 0},
	{"OPTIONS http://h/p?q=%20&r=[x] HTTP/1.1\r\n\r\n", "OPTIONS", "http://h/p?q=%20&r=[x]", 1, 0},
	{"GET /0123456789/0123456789/0123456789/0123456789?a=b HTTP/1.1\r\n\r\n", "GET",
	 "/0123456789/0123456789/0123456789/0123456789?a=b", 1, 0},
	{"GET / HTTP/1.9\r\n\r\n", "GET", "/", 9, 0},
	{"GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", "GET", "/", 1, 1,
	 "!#$%&'*+-.^_`|~09azAZ", "v"},
};

struct bad_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	int want;
};

#define BAD(s) \
	{ \
		s, sizeof(s) - 1, HTTP_MALFORMED \
	}

static const struct bad_case req_bad[] = {
	BAD(" GET / HTTP/1.1\r\n\r\n"),  /* space before method */
	BAD("\rGET / HTTP/1.1\r\n\r\n"), /* bare CR before the request line */
	BAD("GET  / HTTP/1.1\r\n\r\n"),  /* two spaces */
	BAD("GET\t/ HTTP/1.1\r\n\r\n"),  /* tab as separator */
	BAD("GET / HTTP/1.1 \r\n\r\n"),  /* space after version */
	BAD("GET /  HTTP/1.1\r\n\r\n"),
	BAD("GET HTTP/1.1\r\n\r\n"),   /* no target */
	BAD("GET /\r\n\r\n"),          /* HTTP/0.9 */
	BAD("G(T / HTTP/1.1\r\n\r\n"), /* bad token in method */
	BAD("G\xc3\x89T / HTTP/1.1\r\n\r\n"),
	BAD("GE\0T / HTTP/1.1\r\n\r\n"),
	BAD("GET /a\0b HTTP/1.1\r\n\r\n"),  /* NUL in target */
	BAD("GET /a\x7f HTTP/1.1\r\n\r\n"), /* DEL in target */
	BAD("GET /a\tb HTTP/1.1\r\n\r\n"),
	BAD("GET /a\rb HTTP/1.1\r\n\r\n"),
	BAD("GET / HTTP/1.10\r\n\r\n"), /* absurd versions */
	BAD("GET / HTTP/11.1\r\n\r\n"),
	BAD("GET / HTTP/1\r\n\r\n"),
	BAD("GET / HTTP/1.\r\n\r\n"),
	BAD("GET / http/1.1\r\n\r\n"),
	BAD("GET / HTTP/1.x\r\n\r\n"),
	BAD("GET / HTTP/1.1\rHost: a\r\n\r\n"),         /* bare CR ending the request line */
	BAD("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), /* bare CR in a value */
	BAD("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n"), /* bare CR on the blank line */
	BAD("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), /* obs-fold */
	BAD("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), /* whitespace before the first header */
	BAD("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), /* whitespace before the colon */
	BAD("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\n: a\r\n\r\n"),    /* empty name */
	BAD("GET / HTTP/1.1\r\nHost a\r\n\r\n"), /* no colon */
	BAD("GET / HTTP/1.1\r\nHost\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), /* bad token in name */
	BAD("GET / HTTP/1.1\r\nH\xc3\xb6st: a\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"),   /* NUL in a value */
	BAD("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n"), /* control bytes in a value */
	BAD("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789\x0b\r\n\r\n"),
	BAD("GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789\rabcdef\r\n\r\n"),
	{"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0, HTTP_TOO_MANY_HEADERS}, /* cap 2 */
};

static void check_req(const struct req_case *c, const http_request_head *r, const http_header *h)
{
	T_EQ_INT(r->method_len, strlen(c->method));
	T_CHECK(memcmp(r->method, c->method, r->method_len) == 0);
	T_EQ_INT(r->target_len, strlen(c->target));
	T_CHECK(memcmp(r->target, c->target, r->target_len) == 0);
	T_EQ_INT(r->minor_version, c->minor);
	T_EQ_INT(r->num_headers, c->nh);
	if (c->nh > 0 && r->num_headers == c->nh) {
		T_EQ_INT(h[0].name_len, strlen(c->h0_name));
		T_CHECK(memcmp(h[0].name, c->h0_name, h[0].name_len) == 0);
		T_EQ_INT(h[0].value_len, strlen(c->h0_value));
		T_CHECK(memcmp(h[0].value, c->h0_value, h[0].value_len) == 0);
	}
	if (c->nh > 1 && r->num_headers == c->nh) {
		const http_header *l = &h[c->nh - 1];
		T_EQ_INT(l->name_len, strlen(c->hl_name));
		T_CHECK(memcmp(l->name, c->hl_name, l->name_len) == 0);
		T_EQ_INT(l->value_len, strlen(c->hl_value));
		T_CHECK(memcmp(l->value, c->hl_value, l->value_len) == 0);
	}
}

static void test_request_valid(void)
{
	for (size_t i = 0; i < ARRAY_LEN(req_valid); i++) {
		const struct req_case *c = &req_valid[i];
		size_t n = strlen(c->in);
		http_header h[MAXH];
		http_request_head r = {.headers = h, .num_headers = MAXH};

		int ret = http_parse_request(c->in, n, &r);
		if (ret != (int)n)
			fprintf(stderr, "  case %zu: %d for %zu bytes\n", i, ret, n);
		T_EQ_INT(ret, n);
		check_req(c, &r, h);

		/* A body after the head is not part of it. */
		char with_body[1024];
		snprintf(with_body, sizeof(with_body), "%s{\"x\":1}", c->in);
		r.num_headers = MAXH;
		T_EQ_INT(http_parse_request(with_body, n + 7, &r), n);

		/* Every prefix, each ending on the guard page, needs more. */
		for (size_t k = 0; k < n; k++) {
			r.num_headers = MAXH;
			ret = http_parse_request(guarded(c->in, k), k, &r);
			if (ret != HTTP_INCOMPLETE)
				fprintf(stderr, "  case %zu prefix %zu: %d\n", i, k, ret);
			T_EQ_INT(ret, HTTP_INCOMPLETE);
			T_EQ_INT(r.num_headers, MAXH); /* untouched when not complete */
		}
		r.num_headers = MAXH;
		T_EQ_INT(http_parse_request(guarded(c->in, n), n, &r), n);
		check_req(c, &r, h);
	}
}

static void test_request_invalid(void)
{
	for (size_t i = 0; i < ARRAY_LEN(req_bad); i++) {
		const struct bad_case *c = &req_bad[i];
		size_t n = c->len ? c->len : strlen(c->in);
		http_header h[MAXH];
		size_t cap = c->want == HTTP_TOO_MANY_HEADERS ? 2 : MAXH;
		http_request_head r = {.headers = h, .num_headers = cap};
		int ret = http_parse_request(guarded(c->in, n), n, &r);
		if (ret != c->want)
			fprintf(stderr, "  bad case %zu: %d\n", i, ret);
		T_EQ_INT(ret, c->want);
		/* No prefix of a bad head is complete, and none reads past its end. */
		for (size_t k = 0; k < n; k++) {
			r.num_headers = cap;
			ret = http_parse_request(guarded(c->in, k), k, &r);
			T_CHECK(ret < 0);
		}
	}
}

/* One odd byte at every position of values and targets of many lengths, so
 * the 16-byte scans and the byte tail both meet it. */
static void test_scan_boundaries(void)
{
	static const struct {
		char c;
		int ok;
	} bytes[] = {
		{'\t', 1},
		{'\x80', 1},
		{'\xff', 1},
		{'~', 1},
		{'\0', 0},
		{'\x01', 0},
		{'\x1f', 0},
		{'\x7f', 0},
		{'\r', 0},
	};
	char in[256], val[64];
	http_header h[MAXH];
	http_request_head r = {.headers = h};
	for (size_t len = 1; len < 48; len++) {
		for (size_t at = 0; at < len; at++) {
			for (size_t b = 0; b < ARRAY_LEN(bytes); b++) {
				memset(val, 'v', len);
				val[at] = bytes[b].c;
				/* value: edge tabs are trimmed, so keep the odd byte inside */
				int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nX: v");
				memcpy(in + n, val, len);
				n += (int)len;
				n += snprintf(in + n, sizeof(in) - (size_t)n, "v\r\n\r\n");
				r.num_headers = MAXH;
				int ret = http_parse_request(guarded(in, (size_t)n), (size_t)n, &r);
				T_EQ_INT(ret, bytes[b].ok ? n : HTTP_MALFORMED);
				if (ret == n)
					T_EQ_INT(h[0].value_len, len + 2);
				/* target: a tab is not allowed there */
				n = snprintf(in, sizeof(in), "GET /");
				memcpy(in + n, val, len);
				n += (int)len;
				n += snprintf(in + n, sizeof(in) - (size_t)n, " HTTP/1.1\r\n\r\n");
				r.num_headers = MAXH;
				ret = http_parse_request(guarded(in, (size_t)n), (size_t)n, &r);
				int ok = bytes[b].ok && bytes[b].c != '\t';
				T_EQ_INT(ret, ok ? n : HTTP_MALFORMED);
			}
		}
	}
}

static void test_request_header_cap(void)
{
	const char *in = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
	http_header h[2];
	http_request_head r = {.headers = h, .num_headers = 2};
	T_EQ_INT(http_parse_request(in, strlen(in), &r), strlen(in));
	T_EQ_INT(r.num_headers, 2);
	r.num_headers = 1;
	T_EQ_INT(http_parse_request(in, strlen(in), &r), HTTP_TOO_MANY_HEADERS);
	r.num_headers = 0;
	T_EQ_INT(http_parse_request(in, strlen(in), &r), HTTP_TOO_MANY_HEADERS);
	const char *none = "GET / HTTP/1.1\r\n\r\n";
	T_EQ_INT(http_parse_request(none, strlen(none), &r), strlen(none));
	T_EQ_INT(r.num_headers, 0);
}

/* ---------------------------------------------------------------- responses */

struct res_case {
	const char *in;
	int minor, status;
	const char *reason;
	size_t nh;
};

static const struct res_case res_valid[] = {
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1, 200, "OK", 1},
	{"HTTP/1.1 200\r\n\r\n", 1, 200, "", 0},
	{"HTTP/1.1 200 \r\n\r\n", 1, 200, "", 0},
	{"HTTP/1.0 404 Not Found\n\n", 0, 404, "Not Found", 0},
	{"HTTP/1.1 500 Internal\tServer Error\r\nA: b\r\nC: d\r\n\r\n", 1, 500, "Internal\tServer Error", 2},
	{"HTTP/1.1 503 Service Unavailable, Please Retry Later\r\nRetry-After: 1\r\n\r\n", 1, 503,
	 "Service Unavailable, Please Retry Later", 1},
	{"HTTP/1.1 100 Continue\r\n\r\n", 1, 100, "Continue", 0},
	{"HTTP/1.1 999 \xc3\xa9\r\n\r\n", 1, 999, "\xc3\xa9", 0},
	{"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
	 "x-infergate-endpoint: 127.0.0.1:8001\r\n\r\n",
	 1, 200, "OK", 3},
};

static const struct bad_case res_bad[] = {
	BAD("HTTP/1.1 20 OK\r\n\r\n"),
	BAD("HTTP/1.1 2000 OK\r\n\r\n"),
	BAD("HTTP/1.1 099 Low\r\n\r\n"),
	BAD("HTTP/1.1 abc OK\r\n\r\n"),
	BAD("HTTP/2 200 OK\r\n\r\n"),
	BAD("HTTP/2.0 200 OK\r\n\r\n"),
	BAD("HTTP/1.1  200 OK\r\n\r\n"),
	BAD("HTTP/1.1 200 O\rK\r\n\r\n"),
	BAD("HTTP/1.1 200 O\x01K\r\n\r\n"),
	BAD("HTTP/1.1 200 OK\r\nX : y\r\n\r\n"),
	BAD("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n"),
	BAD("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"),
	BAD("\r\nHTTP/1.1 200 OK\r\n\r\n"),
	BAD("ICY 200 OK\r\n\r\n"),
	BAD("HTTP/1.1\t200 OK\r\n\r\n"),
};

/* Any HTTP/D.D parses with its digits, so a server can answer 505 to the
 * versions it does not speak rather than 400 to a line it misread. */
static void test_request_versions(void)
{
	static const struct {
		const char *v;
		int major, minor;
	} cases[] = {
		{"HTTP/1.1", 1, 1},
		{"HTTP/1.0", 1, 0},
		{"HTTP/2.0", 2, 0},
		{"HTTP/0.9", 0, 9},
		{"HTTP/3.0", 3, 0},
		{"HTTP/1.2", 1, 2},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char in[64];
		snprintf(in, sizeof(in), "GET / %s\r\nHost: a\r\n\r\n", cases[i].v);
		http_header h[MAXH];
		http_request_head r = {.headers = h, .num_headers = MAXH};
		T_EQ_INT(http_parse_request(in, strlen(in), &r), strlen(in));
		T_EQ_INT(r.major_version, cases[i].major);
		T_EQ_INT(r.minor_version, cases[i].minor);
	}
	/* A response must be HTTP/1.x. */
	http_header h[MAXH];
	http_response_head res = {.headers = h, .num_headers = MAXH};
	const char *r2 = "HTTP/2.0 200 OK\r\n\r\n";
	T_EQ_INT(http_parse_response(r2, strlen(r2), &res), HTTP_MALFORMED);
}

static void test_response_valid(void)
{
	for (size_t i = 0; i < ARRAY_LEN(res_valid); i++) {
		const struct res_case *c = &res_valid[i];
		size_t n = strlen(c->in);
		http_header h[MAXH];
		http_response_head r = {.headers = h, .num_headers = MAXH};
		int ret = http_parse_response(c->in, n, &r);
		if (ret != (int)n)
			fprintf(stderr, "  case %zu: %d\n", i, ret);
		T_EQ_INT(ret, n);
		T_EQ_INT(r.minor_version, c->minor);
		T_EQ_INT(r.status, c->status);
		T_EQ_INT(r.reason_len, strlen(c->reason));
		T_CHECK(memcmp(r.reason, c->reason, r.reason_len) == 0);
		T_EQ_INT(r.num_headers, c->nh);
		for (size_t k = 0; k < n; k++) {
			r.num_headers = MAXH;
			ret = http_parse_response(guarded(c->in, k), k, &r);
			if (ret != HTTP_INCOMPLETE)
				fprintf(stderr, "  case %zu prefix %zu: %d\n", i, k, ret);
			T_EQ_INT(ret, HTTP_INCOMPLETE);
		}
	}
}

static void test_response_invalid(void)
{
	for (size_t i = 0; i < ARRAY_LEN(res_bad); i++) {
		const struct bad_case *c = &res_bad[i];
		size_t n = c->len;
		http_header h[MAXH];
		http_response_head r = {.headers = h, .num_headers = MAXH};
		int ret = http_parse_response(guarded(c->in, n), n, &r);
		if (ret != c->want)
			fprintf(stderr, "  bad case %zu: %d\n", i, ret);
		T_EQ_INT(ret, c->want);
		for (size_t k = 0; k < n; k++) {
			r.num_headers = MAXH;
			T_CHECK(http_parse_response(guarded(c->in, k), k, &r) < 0);
		}
	}
}

static void test_find_header(void)
{
	const char *in = "GET / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 3\r\nX-Y: 1\r\nx-y: 2\r\n\r\n";
	http_header h[MAXH];
	http_request_head r = {.headers = h, .num_headers = MAXH};
	T_EQ_INT(http_parse_request(in, strlen(in), &r), strlen(in));
	const http_header *f = http_find_header(h, r.num_headers, "Content-Length");
	T_CHECK(f && f->value_len == 1 && f->value[0] == '3');
	f = http_find_header(h, r.num_headers, "x-y");
	T_CHECK(f == &h[2]);
	T_CHECK(http_find_header(h, r.num_headers, "HOST") == &h[0]);
	T_CHECK(http_find_header(h, r.num_headers, "Hos") == NULL);
	T_CHECK(http_find_header(h, r.num_headers, "Hostx") == NULL);
	T_CHECK(http_find_header(h, r.num_headers, "X_Y") == NULL);
	T_CHECK(http_find_header(h, 0, "Host") == NULL);
	/* '[' and '{' differ only in bit 5 as letters do: punctuation must not fold. */
	http_header odd = {"a[", 2, "v", 1};
	T_CHECK(http_find_header(&odd, 1, "a{") == NULL);
}

/* ---------------------------------------------------------------- framing */

struct framing_case {
	int is_response, status;
	const char *method;
	const char *headers; /* "Name: value\r\n"... */
	int want_ret;
	http_body_kind kind;
	uint64_t length;
};

static const struct framing_case framing[] = {
	/* requests */
	{0, 0, NULL, "", 0, HTTP_BODY_NONE, 0},
	{0, 0, NULL, "Content-Length: 10\r\n", 0, HTTP_BODY_LENGTH, 10},
	{0, 0, NULL, "Content-Length: 0\r\n", 0, HTTP_BODY_LENGTH, 0},
	{0, 0, NULL, "Content-Length: 007\r\n", 0, HTTP_BODY_LENGTH, 7},
	{0, 0, NULL, "Content-Length: 1000000000000\r\n", 0, HTTP_BODY_LENGTH, 1000000000000ull},
	{0, 0, NULL, "content-length: 5\r\nContent-Length: 5\r\n", 0, HTTP_BODY_LENGTH, 5},
	{0, 0, NULL, "Content-Length: 5, 5\r\n", 0, HTTP_BODY_LENGTH, 5},
	{0, 0, NULL, "Content-Length: 5\r\nContent-Length: 6\r\n", -1},
	{0, 0, NULL, "Content-Length: 5, 6\r\n", -1},
	{0, 0, NULL, "Content-Length: 5,\r\n", -1},
	{0, 0, NULL, "Content-Length:\r\n", -1},
	{0, 0, NULL, "Content-Length: -1\r\n", -1},
	{0, 0, NULL, "Content-Length: +5\r\n", -1},
	{0, 0, NULL, "Content-Length: 5a\r\n", -1},
	{0, 0, NULL, "Content-Length: 0x10\r\n", -1},
	{0, 0, NULL, "Content-Length: 1 0\r\n", -1},
	{0, 0, NULL, "Content-Length: 18446744073709551616\r\n", -1},
	{0, 0, NULL, "Content-Length: 99999999999999999999999\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: chunked\r\n", 0, HTTP_BODY_CHUNKED, 0},
	{0, 0, NULL, "Transfer-Encoding: CHUNKED\r\n", 0, HTTP_BODY_CHUNKED, 0},
	/* A coding under chunked is not decoded: 501, not the coded bytes as the body. */
	{0, 0, NULL, "Transfer-Encoding: gzip, chunked\r\n", HTTP_FRAMING_UNSUPPORTED},
	{0, 0, NULL, "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", HTTP_FRAMING_UNSUPPORTED},
	{0, 0, NULL, "Transfer-Encoding: identity, chunked\r\n", HTTP_FRAMING_UNSUPPORTED},
	{0, 0, NULL, "Transfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: chunked;q=1, \r\n", 0, HTTP_BODY_CHUNKED, 0},
	{0, 0, NULL, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", -1},
	{0, 0, NULL, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: gzip\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: identity\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: chunked, gzip\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: chunked, chunked\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding:\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: chunkedx\r\n", -1},
	{0, 0, NULL, "Transfer-Encoding: xchunked\r\n", -1},
	/* responses */
	{1, 200, "GET", "", 0, HTTP_BODY_UNTIL_CLOSE, 0},
	{1, 200, "GET", "Content-Length: 5\r\n", 0, HTTP_BODY_LENGTH, 5},
	{1, 200, "POST", "Transfer-Encoding: chunked\r\n", 0, HTTP_BODY_CHUNKED, 0},
	/* A coding the client does not decode must not pass for the body. */
	{1, 200, "GET", "Transfer-Encoding: gzip\r\n", HTTP_FRAMING_UNSUPPORTED},
	{1, 200, "GET", "Transfer-Encoding: gzip, chunked\r\n", HTTP_FRAMING_UNSUPPORTED},
	{1, 200, "GET", "Transfer-Encoding: identity\r\n", HTTP_FRAMING_UNSUPPORTED},
	{1, 204, "GET", "Transfer-Encoding: gzip, chunked\r\n", 0, HTTP_BODY_NONE, 0},
	{1, 200, "GET", "Transfer-Encoding: chunked, gzip\r\n", -1},
	{1, 200, "GET", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", -1},
	{1, 200, "GET", "Content-Length: 5\r\nContent-Length: 7\r\n", -1},
	{1, 200, "GET", "Content-Length: abc\r\n", -1},
	{1, 204, "GET", "Content-Length: 5\r\n", 0, HTTP_BODY_NONE, 0},
	{1, 304, "GET", "Content-Length: 5\r\n", 0, HTTP_BODY_NONE, 0},
	{1, 100, "POST", "", 0, HTTP_BODY_NONE, 0},
	{1, 101, "GET", "", 0, HTTP_BODY_NONE, 0},
	{1, 200, "HEAD", "Content-Length: 100\r\n", 0, HTTP_BODY_NONE, 0},
	{1, 200, "head", "Transfer-Encoding: chunked\r\n", 0, HTTP_BODY_NONE, 0},
	{1, 404, "HEAD", "", 0, HTTP_BODY_NONE, 0},
	{1, 200, "CONNECT", "", 0, HTTP_BODY_NONE, 0},
	{1, 502, NULL, "Content-Length: 0\r\n", 0, HTTP_BODY_LENGTH, 0},
};

static void test_body_framing(void)
{
	for (size_t i = 0; i < ARRAY_LEN(framing); i++) {
		const struct framing_case *c = &framing[i];
		char in[512];
		snprintf(in, sizeof(in), "POST / HTTP/1.1\r\n%s\r\n", c->headers);
		http_header h[MAXH];
		http_request_head r = {.headers = h, .num_headers = MAXH};
		T_EQ_INT(http_parse_request(in, strlen(in), &r), strlen(in));
		http_body_kind kind = (http_body_kind)99;
		uint64_t length = 99;
		int ret = http_body_framing(h, r.num_headers, c->is_response, c->status, c->method,
					    c->method ? strlen(c->method) : 0, &kind, &length);
		if (ret != c->want_ret || (ret == 0 && (kind != c->kind || length != c->length)))
			fprintf(stderr, "  framing case %zu (%s): ret %d kind %d length %llu\n", i,
				c->headers, ret, (int)kind, (unsigned long long)length);
		T_EQ_INT(ret, c->want_ret);
		if (ret == 0) {
			T_EQ_INT(kind, c->kind);
			T_EQ_INT(length, c->length);
		}
	}
}

/* ---------------------------------------------------------------- keep-alive */

struct ka_case {
	int minor;
	const char *headers;
	int want;
};

static const struct ka_case keep_alive[] = {
	{1, "", 1},
	{0, "", 0},
	{1, "Connection: close\r\n", 0},
	{1, "Connection: Close\r\n", 0},
	{1, "Connection: keep-alive\r\n", 1},
	{1, "Connection: Upgrade, close\r\n", 0},
	{1, "Connection: te\r\nConnection: close\r\n", 0},
	{1, "Connection: closed\r\n", 1},
	{0, "Connection: keep-alive\r\n", 1},
	{0, "Connection: Keep-Alive\r\n", 1},
	{0, "Connection: foo ,  keep-alive \r\n", 1},
	{0, "Connection: keep-alive, close\r\n", 0},
	{0, "Keep-Alive: timeout=5\r\n", 0},
	{9, "", 1},
};

static void test_keep_alive(void)
{
	for (size_t i = 0; i < ARRAY_LEN(keep_alive); i++) {
		const struct ka_case *c = &keep_alive[i];
		char in[256];
		snprintf(in, sizeof(in), "GET / HTTP/1.%d\r\n%s\r\n", c->minor, c->headers);
		http_header h[MAXH];
		http_request_head r = {.headers = h, .num_headers = MAXH};
		T_EQ_INT(http_parse_request(in, strlen(in), &r), strlen(in));
		int got = http_keep_alive(r.minor_version, h, r.num_headers);
		if (got != c->want)
			fprintf(stderr, "  keep-alive case %zu\n", i);
		T_EQ_INT(got, c->want);
	}
}

/* ---------------------------------------------------------------- chunked */

struct chunked_case {
	const char *in;
	size_t len;
	const char *payload; /* NULL: malformed */
	const char *rest;    /* bytes after the body */
};

#define CH(s) s, sizeof(s) - 1
static const struct chunked_case chunked[] = {
	{CH("0\r\n\r\n"), "", ""},
	{CH("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia", ""},
	{CH("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), "Wikipedia", "GET / HTTP/1.1\r\n"},
	{CH("4\nWiki\n5\npedia\n0\n\nXY"), "Wikipedia", "XY"}, /* LF only */
	{CH("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"), "0123456789abcdefghij", ""},
	{CH("000004\r\nWiki\r\n0000\r\n\r\n"), "Wiki", ""},
	{CH("4;name=value;x\r\nWiki\r\n0;last\r\n\r\n"), "Wiki", ""}, /* extensions */
	{CH("4 ;a=\"b c\"\r\nWiki\r\n0 \r\n\r\n"), "Wiki", ""},
	{CH("4\r\nWiki\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nrest"), "Wiki", "rest"}, /* trailers */
	{CH("4\r\nWiki\r\n0\r\nX: 1\n\nr"), "Wiki", "r"},
	{CH("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n"), "\r\n", ""}, /* CR/LF as data */
	{CH("ffffffffffffffff\r\n"), NULL, NULL},            /* never ends here: incomplete (see below) */
	{CH("10000000000000000\r\nx"), NULL, NULL},          /* 2^64: overflow */
	{CH("\r\n"), NULL, NULL},                            /* no size */
	{CH("x\r\n"), NULL, NULL},
	{CH(" 4\r\nWiki\r\n0\r\n\r\n"), NULL, NULL},
	{CH("-4\r\nWiki\r\n0\r\n\r\n"), NULL, NULL},
	{CH("4 x\r\nWiki\r\n0\r\n\r\n"), NULL, NULL},
	{CH("4\rWiki\r\n0\r\n\r\n"), NULL, NULL},    /* bare CR after the size */
	{CH("4\r\nWikiX\r\n0\r\n\r\n"), NULL, NULL}, /* data longer than its size */
	{CH("4\r\nWiki\rX0\r\n\r\n"), NULL, NULL},
	{CH("4;a\0b\r\nWiki\r\n0\r\n\r\n"), NULL, NULL}, /* NUL in an extension */
	{CH("4;a\rb\r\nWiki\r\n0\r\n\r\n"), NULL, NULL},
	{CH("0\r\nX: 1\rY: 2\r\n\r\n"), NULL, NULL}, /* bare CR in a trailer */
	{CH("0\r\n\rX"), NULL, NULL},
	{CH("0\r\nX: \x01\r\n\r\n"), NULL, NULL},
};

/* Decodes in[0..n) in pieces split at the given offsets (an ascending list
 * ending with n). Returns the final return value; the payload and rest are
 * written to out/rest with their lengths. */
static long decode_split(const char *in, size_t n, const size_t *cuts, size_t ncuts,
			 char *payload, size_t *payload_len, char *rest, size_t *rest_len)
{
	http_chunked d;
	size_t prev = 0;
	long ret = HTTP_INCOMPLETE;

	http_chunked_init(&d);
	*payload_len = *rest_len = 0;
	for (size_t i = 0; i < ncuts; i++) {
		size_t piece = cuts[i] - prev;
		if (ret >= 0) { /* already done: the rest is all after the body */
			memcpy(rest + *rest_len, in + prev, piece);
			*rest_len += piece;
			prev = cuts[i];
			continue;
		}
		char *w = guarded(in + prev, piece); /* ends on the guard page */
		size_t len = piece;
		ret = http_chunked_decode(&d, w, &len);
		if (ret == HTTP_MALFORMED)
			return ret;
		memcpy(payload + *payload_len, w, len);
		*payload_len += len;
		if (ret >= 0) {
			T_CHECK((size_t)ret <= piece - len);
			memcpy(rest + *rest_len, w + len, (size_t)ret);
			*rest_len += (size_t)ret;
			T_CHECK(http_chunked_done(&d));
		}
		prev = cuts[i];
	}
	return ret;
}

static void test_chunked(void)
{
	for (size_t i = 0; i < ARRAY_LEN(chunked); i++) {
		const struct chunked_case *c = &chunked[i];
		size_t n = c->len;
		char payload[512], rest[512];
		size_t pl, rl;

		/* In one go. */
		size_t whole[1] = {n};
		long ret = decode_split(c->in, n, whole, 1, payload, &pl, rest, &rl);
		if (!c->payload) {
			if (i == 11) /* a huge chunk announced, no data yet */
				T_EQ_INT(ret, HTTP_INCOMPLETE);
			else
				T_EQ_INT(ret, HTTP_MALFORMED);
			if ((i == 11) != (ret == HTTP_INCOMPLETE))
				fprintf(stderr, "  chunked case %zu: %ld\n", i, ret);
			continue;
		}
		if (ret < 0)
			fprintf(stderr, "  chunked case %zu: %ld\n", i, ret);
		T_EQ_INT(ret, strlen(c->rest));
		T_EQ_INT(pl, strlen(c->payload));
		T_CHECK(memcmp(payload, c->payload, pl) == 0);
		T_EQ_INT(rl, strlen(c->rest));
		T_CHECK(memcmp(rest, c->rest, rl) == 0);

		/* Split at every position, and at every pair of positions. */
		for (size_t a = 0; a <= n; a++) {
			for (size_t b = a; b <= n; b++) {
				size_t cuts[3] = {a, b, n};
				ret = decode_split(c->in, n, cuts, 3, payload, &pl, rest, &rl);
				T_CHECK(ret >= 0);
				T_EQ_INT(pl, strlen(c->payload));
				T_CHECK(memcmp(payload, c->payload, pl) == 0);
				T_EQ_INT(rl, strlen(c->rest));
				T_CHECK(memcmp(rest, c->rest, rl) == 0);
			}
		}
		/* Byte by byte. */
		size_t cuts[256];
		for (size_t k = 0; k < n; k++)
			cuts[k] = k + 1;
		ret = decode_split(c->in, n, cuts, n, payload, &pl, rest, &rl);
		T_CHECK(ret >= 0);
		T_EQ_INT(pl, strlen(c->payload));
		T_CHECK(memcmp(payload, c->payload, pl) == 0);
		T_EQ_INT(rl, strlen(c->rest));

		/* Every prefix of a body is incomplete (the body has not ended). */
		size_t body_len = n - strlen(c->rest);
		for (size_t k = 0; k < body_len; k++) {
			size_t cut[1] = {k};
			T_EQ_INT(decode_split(c->in, k, cut, 1, payload, &pl, rest, &rl), HTTP_INCOMPLETE);
		}
	}
}

static void test_chunked_after_done(void)
{
	http_chunked d;
	char b[32] = "0\r\n\r\n";
	size_t len = 5;
	http_chunked_init(&d);
	T_EQ_INT(http_chunked_decode(&d, b, &len), 0);
	T_EQ_INT(len, 0);
	T_CHECK(http_chunked_done(&d));
	memcpy(b, "abc", 3);
	len = 3;
	T_EQ_INT(http_chunked_decode(&d, b, &len), 3);
	T_EQ_INT(len, 0);
	len = 0;
	T_EQ_INT(http_chunked_decode(&d, b, &len), 0);
}

static void test_chunked_trailer_cap(void)
{
	static char in[HTTP_CHUNKED_MAX_TRAILER_BYTES + 64];
	http_chunked d;
	size_t n = 0;
	memcpy(in, "0\r\n", 3);
	n = 3;
	while (n < sizeof(in) - 8) {
		memcpy(in + n, "X: y\r\n", 6);
		n += 6;
	}
	http_chunked_init(&d);
	size_t len = n;
	T_EQ_INT(http_chunked_decode(&d, in, &len), HTTP_MALFORMED);
}

/* ---------------------------------------------------------------- writer */

static void test_write_response(void)
{
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(http_write_response_head(&b, 200, "application/json", 17, 1, NULL), 0);
	T_EQ_STR(buf_rptr(&b), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			       "Content-Length: 17\r\nConnection: keep-alive\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_response_head(&b, 200, "text/event-stream", -1, 1,
					  "Cache-Control: no-cache\r\nx-infergate-region: us-east5\r\n"),
		 0);
	T_EQ_STR(buf_rptr(&b), "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			       "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
			       "Cache-Control: no-cache\r\nx-infergate-region: us-east5\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_response_head(&b, 431, NULL, 0, 0, NULL), 0);
	T_EQ_STR(buf_rptr(&b), "HTTP/1.1 431 Request Header Fields Too Large\r\n"
			       "Content-Length: 0\r\nConnection: close\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_response_head(&b, 204, NULL, 0, 1, NULL), 0);
	T_EQ_STR(buf_rptr(&b), "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_response_head(&b, 599, NULL, 12345678901234LL, 1, NULL), 0);
	T_EQ_STR(buf_rptr(&b), "HTTP/1.1 599 Server Error\r\nContent-Length: 12345678901234\r\n"
			       "Connection: keep-alive\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_response_head(&b, 200, "text/plain\r\nX: y", 0, 1, NULL), -1);
	T_EQ_INT(http_write_response_head(&b, 99, NULL, 0, 1, NULL), -1);
	T_EQ_INT(http_write_response_head(&b, 1000, NULL, 0, 1, NULL), -1);
	T_EQ_INT(http_write_response_head(&b, 600, NULL, 0, 1, NULL), -1);
	T_EQ_INT(buf_rlen(&b), 0);
	/* 304 and 1xx: no framing, whatever length is asked (a chunked 304 made
	 * clients wait for a body that never comes). */
	T_EQ_INT(http_write_response_head(&b, 304, NULL, -1, 1, "ETag: \"x\"\r\n"), 0);
	T_EQ_STR(buf_rptr(&b), "HTTP/1.1 304 Not Modified\r\nConnection: keep-alive\r\nETag: \"x\"\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_response_head(&b, 304, NULL, 5, 1, NULL), 0);
	T_CHECK(strstr(buf_rptr(&b), "Content-Length") == NULL);
	buf_reset(&b);
	T_EQ_INT(http_write_response_head(&b, 103, NULL, -1, 1, NULL), 0);
	T_CHECK(strstr(buf_rptr(&b), "Transfer-Encoding") == NULL);
	buf_reset(&b);
	T_CHECK(http_status_bodiless(100) && http_status_bodiless(101) && http_status_bodiless(204) &&
		http_status_bodiless(304));
	T_CHECK(!http_status_bodiless(200) && !http_status_bodiless(205) && !http_status_bodiless(404));
	T_EQ_INT(buf_rlen(&b), 0);

	/* What it writes parses back. */
	T_EQ_INT(http_write_response_head(&b, 503, "application/json", 42, 0, "Retry-After: 1\r\n"), 0);
	http_header h[MAXH];
	http_response_head r = {.headers = h, .num_headers = MAXH};
	T_EQ_INT(http_parse_response(buf_rptr(&b), buf_rlen(&b), &r), buf_rlen(&b));
	T_EQ_INT(r.status, 503);
	T_EQ_INT(http_keep_alive(r.minor_version, h, r.num_headers), 0);
	http_body_kind kind;
	uint64_t length;
	T_EQ_INT(http_body_framing(h, r.num_headers, 1, 503, "POST", 4, &kind, &length), 0);
	T_EQ_INT(kind, HTTP_BODY_LENGTH);
	T_EQ_INT(length, 42);
	buf_free(&b);

	/* At the cap nothing is written. */
	buf_init(&b, 20);
	T_EQ_INT(http_write_response_head(&b, 200, "application/json", 17, 1, NULL), -1);
	T_EQ_INT(buf_rlen(&b), 0);
	buf_free(&b);
}

static void test_write_request(void)
{
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(http_write_request_head(&b, "POST", "/v1/chat/completions", "127.0.0.1:8001",
					 "Content-Type: application/json\r\n", 123),
		 0);
	T_EQ_STR(buf_rptr(&b), "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n"
			       "Content-Type: application/json\r\nContent-Length: 123\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_request_head(&b, "GET", "/health", "h", NULL, -1), 0);
	T_EQ_STR(buf_rptr(&b), "GET /health HTTP/1.1\r\nHost: h\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_request_head(&b, "GET", "/", NULL, NULL, 0), 0);
	T_EQ_STR(buf_rptr(&b), "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	buf_reset(&b);
	T_EQ_INT(http_write_request_head(&b, "GET", "/a b", "h", NULL, -1), -1);
	T_EQ_INT(http_write_request_head(&b, "GET", "/a\r\nX: y", "h", NULL, -1), -1);
	T_EQ_INT(http_write_request_head(&b, "", "/", "h", NULL, -1), -1);
	T_EQ_INT(http_write_request_head(&b, "GET", "/", "h\r\nX: y", NULL, -1), -1);
	T_EQ_INT(buf_rlen(&b), 0);
	buf_free(&b);
}

static void test_write_chunks(void)
{
	buf b;
	buf_init(&b, 0);
	T_EQ_INT(http_write_chunk(&b, "hello", 5), 0);
	T_EQ_INT(http_write_chunk(&b, "", 0), 0);
	char big[300];
	memset(big, 'x', sizeof(big));
	T_EQ_INT(http_write_chunk(&b, big, sizeof(big)), 0);
	T_EQ_INT(http_write_last_chunk(&b), 0);
	char want[400];
	snprintf(want, sizeof(want), "5\r\nhello\r\n12c\r\n%.*s\r\n0\r\n\r\n", 300, big);
	T_EQ_STR(buf_rptr(&b), want);

	/* And decodes back. */
	http_chunked d;
	http_chunked_init(&d);
	size_t len = buf_rlen(&b);
	T_EQ_INT(http_chunked_decode(&d, buf_rptr(&b), &len), 0);
	T_EQ_INT(len, 305);
	T_CHECK(memcmp(buf_rptr(&b), "hello", 5) == 0);
	buf_free(&b);

	buf_init(&b, 8);
	T_EQ_INT(http_write_chunk(&b, "hello", 5), -1);
	T_EQ_INT(buf_rlen(&b), 0);
	buf_free(&b);
}

static void test_status_reason(void)
{
	T_EQ_STR(http_status_reason(200), "OK");
	T_EQ_STR(http_status_reason(404), "Not Found");
	T_EQ_STR(http_status_reason(413), "Content Too Large");
	T_EQ_STR(http_status_reason(429), "Too Many Requests");
	T_EQ_STR(http_status_reason(504), "Gateway Timeout");
	T_EQ_STR(http_status_reason(418), "Client Error");
	T_EQ_STR(http_status_reason(0), "Unknown");
	T_EQ_STR(http_status_reason(-5), "Unknown");
}

int main(void)
{
	T_RUN(test_request_valid);
	T_RUN(test_request_invalid);
	T_RUN(test_request_header_cap);
	T_RUN(test_request_versions);
	T_RUN(test_scan_boundaries);
	T_RUN(test_response_valid);
	T_RUN(test_response_invalid);
	T_RUN(test_find_header);
	T_RUN(test_body_framing);
	T_RUN(test_keep_alive);
	T_RUN(test_chunked);
	T_RUN(test_chunked_after_done);
	T_RUN(test_chunked_trailer_cap);
	T_RUN(test_write_response);
	T_RUN(test_write_request);
	T_RUN(test_write_chunks);
	T_RUN(test_status_reason);
	return T_END();
}
