/*
 * test_multipart.c — multipart/form-data: the boundary from Content-Type
 * values, the parts of bodies as curl, browsers and the openai client write
 * them, empty parts, padding, and malformed bodies (every strict prefix of a
 * good body is malformed, never a crash, ASan watching a heap copy).
 */
#include "core/multipart.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

static void test_boundary(void)
{
	const char *b;
	size_t bl;
	const char *ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
	T_EQ_INT(multipart_boundary(ct, strlen(ct), &b, &bl), 1);
	T_EQ_INT(bl, strlen("----WebKitFormBoundary7MA4YWxkTrZu0gW"));
	T_CHECK(!memcmp(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW", bl));
	ct = "Multipart/Form-Data;charset=utf-8; boundary=\"a b:c\"";
	T_EQ_INT(multipart_boundary(ct, strlen(ct), &b, &bl), 1);
	T_EQ_INT(bl, 5);
	T_CHECK(!memcmp(b, "a b:c", 5));
	ct = "application/json";
	T_EQ_INT(multipart_boundary(ct, strlen(ct), &b, &bl), 0);
	ct = "multipart/form-dataX; boundary=x";
	T_EQ_INT(multipart_boundary(ct, strlen(ct), &b, &bl), 0);
	ct = "multipart/form-data";
	T_EQ_INT(multipart_boundary(ct, strlen(ct), &b, &bl), -1);
	ct = "multipart/form-data; boundary=";
	T_EQ_INT(multipart_boundary(ct, strlen(ct), &b, &bl), -1);
	ct = "multipart/form-data; boundary=\"unterminated";
	T_EQ_INT(multipart_boundary(ct, strlen(ct), &b, &bl), -1);
	char longb[120] = "multipart/form-data; boundary=";
	memset(longb + strlen(longb), 'x', 71);
	T_EQ_INT(multipart_boundary(longb, strlen(longb), &b, &bl), -1);
}

static const char form[] =
	"preamble to ignore\r\n"
	"--XyZ\r\n"
	"Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
	"Content-Type: audio/wav\r\n"
	"\r\n"
	"RIFF\r\n--Xy not a delimiter\r\n"
	"--XyZ  \r\n"
	"content-disposition: form-data; name=model\r\n"
	"\r\n"
	"whisper-1\r\n"
	"--XyZ\r\n"
	"Content-Disposition: form-data; name=\"empty\"\r\n"
	"\r\n"
	"\r\n"
	"--XyZ--\r\n"
	"epilogue";

static void test_parts(void)
{
	multipart_iter it;
	multipart_part p;
	T_EQ_INT(multipart_begin(&it, form, sizeof(form) - 1, "XyZ", 3), 0);
	T_EQ_INT(multipart_next(&it, &p), 1);
	T_EQ_INT(p.name_len, 4);
	T_CHECK(!memcmp(p.name, "file", 4));
	T_EQ_INT(p.filename_len, 5);
	T_CHECK(!memcmp(p.filename, "a.wav", 5));
	T_EQ_INT(p.content_type_len, 9);
	T_EQ_INT(p.len, strlen("RIFF\r\n--Xy not a delimiter"));
	T_CHECK(!memcmp(p.data, "RIFF\r\n--Xy not a delimiter", p.len));
	T_EQ_INT(multipart_next(&it, &p), 1);
	T_CHECK(p.name_len == 5 && !memcmp(p.name, "model", 5));
	T_CHECK(p.filename == NULL && p.content_type == NULL);
	T_CHECK(p.len == 9 && !memcmp(p.data, "whisper-1", 9));
	T_EQ_INT(multipart_next(&it, &p), 1);
	T_CHECK(p.name_len == 5 && !memcmp(p.name, "empty", 5));
	T_EQ_INT(p.len, 0);
	T_EQ_INT(multipart_next(&it, &p), 0);
	T_EQ_INT(multipart_next(&it, &p), 0);

	const char *v;
	size_t vl;
	T_EQ_INT(multipart_field(form, sizeof(form) - 1, "XyZ", 3, "model", &v, &vl), 1);
	T_CHECK(vl == 9 && !memcmp(v, "whisper-1", 9));
	T_EQ_INT(multipart_field(form, sizeof(form) - 1, "XyZ", 3, "nope", &v, &vl), 0);
	T_EQ_INT(multipart_field(form, sizeof(form) - 1, "other", 5, "model", &v, &vl), -1);

	/* A body that opens with the delimiter (no preamble), as most clients send. */
	static const char plain[] = "--b\r\nContent-Disposition: form-data; name=\"m\"\r\n\r\nx\r\n--b--";
	T_EQ_INT(multipart_field(plain, sizeof(plain) - 1, "b", 1, "m", &v, &vl), 1);
	T_CHECK(vl == 1 && v[0] == 'x');
}

/* Every strict prefix of the form is malformed (no closing delimiter before
 * the end); read from an exact-size heap copy so ASan sees any overread. */
static void test_prefixes(void)
{
	size_t n = sizeof(form) - 1;
	size_t end = strstr(form, "--XyZ--") - form + 5; /* up to the closing "--" */
	for (size_t k = 0; k < n; k++) {
		char *c = malloc(k ? k : 1);
		memcpy(c, form, k);
		multipart_iter it;
		multipart_part p;
		multipart_begin(&it, c, k, "XyZ", 3);
		int rc, parts = 0;
		while ((rc = multipart_next(&it, &p)) == 1) parts++;
		if (k < end + 2) T_EQ_INT(rc, -1);
		else T_EQ_INT(rc, 0);
		free(c);
	}
}

static void test_limits(void)
{
	/* More parts than MULTIPART_MAX_PARTS: refused. */
	size_t cap = (MULTIPART_MAX_PARTS + 2) * 64 + 16, len = 0;
	char *b = malloc(cap);
	for (int i = 0; i < MULTIPART_MAX_PARTS + 1; i++)
		len += (size_t)snprintf(b + len, cap - len, "--q\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n", i);
	len += (size_t)snprintf(b + len, cap - len, "--q--");
	multipart_iter it;
	multipart_part p;
	multipart_begin(&it, b, len, "q", 1);
	int rc, parts = 0;
	while ((rc = multipart_next(&it, &p)) == 1) parts++;
	T_EQ_INT(rc, -1);
	T_EQ_INT(parts, MULTIPART_MAX_PARTS);
	free(b);
	/* Garbage after a delimiter. */
	static const char bad[] = "--q\r\n\r\nv\r\n--qX";
	multipart_begin(&it, bad, sizeof(bad) - 1, "q", 1);
	T_EQ_INT(multipart_next(&it, &p), -1);
	T_EQ_INT(multipart_begin(&it, bad, 1, "", 0), -1);
}

int main(void)
{
	T_RUN(test_boundary);
	T_RUN(test_parts);
	T_RUN(test_prefixes);
	T_RUN(test_limits);
	return T_END();
}
