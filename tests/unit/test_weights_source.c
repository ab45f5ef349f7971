/* test_weights_source.c — location parsing, relative-path safety, listing
 * helpers, Hugging Face error wording and ranged request construction. */
#include <stdlib.h>
#include "core/util.h"
#include "weights/source.h"
#include "weights/fetch.h"
#include "weights/xfer.h"
#include "t.h"

static void test_path_ok(void)
{
	const char *good[] = {"a", "config.json", "a/b/c.bin", "dir.with.dots/x", "..a", "a..", "é/ü"};
	const char *bad[] = {"", "/abs", "a//b", "a/./b", "../x", "a/..", ".", "a/", "tab\there"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) T_CHECK(wsrc_path_ok(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) T_CHECK(!wsrc_path_ok(bad[i], strlen(bad[i])));
}

static void test_parse(void)
{
	weights_opts o;
	weights_opts_default(&o);
	o.hf_endpoint = "http://127.0.0.1:9/hf/";
	char err[512];
	wsrc *s = wsrc_new("hf://google/gemma-3-270m@refs/pr/1", &o, err, sizeof err);
	T_CHECK(s != NULL);
	T_EQ_INT(wsrc_kind_of(s), WSRC_HF);
	wfile f = {.path = "sub dir/model.safetensors", .size = 100, .size_known = 1};
	char *url = NULL;
	struct curl_slist *h = NULL;
	T_EQ_INT(wsrc_get_request(s, &f, 10, 20, NULL, &url, &h), 0);
	T_EQ_STR(url, "http://127.0.0.1:9/hf/google/gemma-3-270m/resolve/refs%2Fpr%2F1/sub%20dir/model.safetensors");
	int has_range = 0;
	for (struct curl_slist *p = h; p; p = p->next) has_range |= !strcmp(p->data, "Range: bytes=10-29");
	T_CHECK(has_range);
	free(url);
	curl_slist_free_all(h);
	wsrc_free(s);

	T_CHECK(wsrc_new("hf://justname", &o, err, sizeof err) == NULL);
	T_CHECK(strstr(err, "hf://ORG/NAME") != NULL);
	T_CHECK(wsrc_new("hf://a/../b", &o, err, sizeof err) == NULL);
	T_CHECK(wsrc_new("ftp://x/y", &o, err, sizeof err) == NULL);
	T_CHECK(wsrc_new("s3://", &o, err, sizeof err) == NULL);

	o.gcs_endpoint = "127.0.0.1:4443";
	s = wsrc_new("gs://bucket/models/gemma", &o, err, sizeof err);
	T_CHECK(s != NULL);
	f.path = "a/b.bin";
	T_EQ_INT(wsrc_get_request(s, &f, 0, 0, NULL, &url, &h), 0);
	T_EQ_STR(url, "http://127.0.0.1:4443/storage/v1/b/bucket/o/models%2Fgemma%2Fa%2Fb.bin?alt=media");
	free(url);
	curl_slist_free_all(h);
	wsrc_free(s);

	o.s3_endpoint = "http://127.0.0.1:9000";
	s = wsrc_new("s3://bkt/p", &o, err, sizeof err);
	T_CHECK(s != NULL);
	T_EQ_INT(wsrc_get_request(s, &f, 0, 5, NULL, &url, &h), 0);
	T_EQ_STR(url, "http://127.0.0.1:9000/bkt/p/a/b.bin");
	free(url);
	curl_slist_free_all(h);
	wsrc_free(s);
	T_CHECK(wsrc_is_url("s3://x") && wsrc_is_url("https://x/") && !wsrc_is_url("/tmp/x"));
}

static void test_hf_errors(void)
{
	weights_opts o;
	weights_opts_default(&o);
	o.hf_endpoint = "http://hub";
	char err[512];
	unsetenv("HF_TOKEN");
	unsetenv("HUGGING_FACE_HUB_TOKEN");
	wsrc *s = wsrc_new("hf://org/gated", &o, err, sizeof err);
	wsrc_explain_status(s, 401, "GatedRepo", "x", err, sizeof err);
	T_CHECK(strstr(err, "gated repository") && strstr(err, "set HF_TOKEN"));
	wsrc_explain_status(s, 404, "EntryNotFound", "w.bin", err, sizeof err);
	T_CHECK(strstr(err, "file not found: w.bin in org/gated@main") != NULL);
	wsrc_explain_status(s, 404, "RevisionNotFound", "x", err, sizeof err);
	T_CHECK(strstr(err, "revision not found: main") != NULL);
	wsrc_free(s);
	setenv("HF_TOKEN", "t", 1);
	s = wsrc_new("hf://org/gated", &o, err, sizeof err);
	wsrc_explain_status(s, 403, "GatedRepo", "x", err, sizeof err);
	T_CHECK(strstr(err, "refused") && strstr(err, "accept the model's licence at http://hub/org/gated"));
	wsrc_free(s);
	unsetenv("HF_TOKEN");
}

static void test_list_and_plan(void)
{
	wlist l = {0};
	T_EQ_INT(wlist_add(&l, "b", 1, 1, 1), 0);
	T_EQ_INT(wlist_add(&l, "a", 1, 2, 1), 0);
	T_EQ_INT(wlist_add(&l, "b", 1, 3, 1), 0);
	T_EQ_INT(wlist_add(&l, "../x", 4, 3, 1), -2);
	wlist_sort(&l);
	T_EQ_INT(l.n, 2);
	T_EQ_STR(l.files[0].path, "a");
	wlist_free(&l);
	fetch_file f = {0};
	fetch_file_plan(&f, 100, 16);
	T_EQ_INT(f.chunk_bytes, 4096);
	T_EQ_INT(f.n_chunks, 1);
	fetch_file_plan(&f, 0, 1 << 20);
	T_EQ_INT(f.n_chunks, 0);
	fetch_file_plan(&f, (1ull << 40) + 1, 4096); /* capped chunk count */
	T_CHECK(f.n_chunks <= FETCH_MAX_CHUNKS);
	T_CHECK((uint64_t)f.n_chunks * f.chunk_bytes >= (1ull << 40) + 1);
}

/* Names a listing may not give: the listing is refused, never truncated at
 * a NUL nor written into the pull's own state folder. */
static void test_name_problem(void)
{
	T_CHECK(wsrc_name_problem("a/b.bin", 7) == NULL);
	T_CHECK(wsrc_name_problem(".infergatex", 11) == NULL);
	T_CHECK(wsrc_name_problem("sub/.infergate/x", 16) == NULL);
	T_CHECK(strstr(wsrc_name_problem("a\0b", 3), "NUL") != NULL);
	T_CHECK(strstr(wsrc_name_problem(".infergate/manifest.json", 24), "state folder") != NULL);
	T_CHECK(strstr(wsrc_name_problem(".infergate", 10), "state folder") != NULL);
	T_CHECK(wsrc_name_problem("../x", 4) != NULL);
	T_CHECK(wsrc_name_problem("/abs", 4) != NULL);
	T_CHECK(wsrc_name_problem("a\x1b[2Jb", 8) != NULL);
	wlist l = {0};
	T_EQ_INT(wlist_add(&l, "ok\0.x", 5, 1, 1), -2);
	T_EQ_INT(wlist_add(&l, ".infergate/manifest.json", 24, 1, 1), -2);
	T_EQ_INT(l.n, 0);
	wlist_free(&l);
	char shown[64];
	wsrc_name_show(shown, sizeof shown, "a\0b\n\\", 5);
	T_EQ_STR(shown, "a\\x00b\\x0a\\x5c");
	wsrc_name_show(shown, 12, "0123456789abcdef", 16);
	T_CHECK(strlen(shown) < 12 && strstr(shown, "...") != NULL);
}

static void hdr(xfer_resp *r, const char *line) { xfer_parse_header(r, line, strlen(line)); }

/* Content-Range must be exactly the range asked; ETag changes and 412 mean
 * the object changed; the pin goes out as If-Match (S3: the listed ETag, signed),
 * GCS as ifGenerationMatch. */
static void test_range_answer(void)
{
	xfer_resp r;
	memset(&r, 0, sizeof r);
	r.range_first = r.range_last = r.range_total = -1;
	hdr(&r, "Content-Range: bytes 100-199/1000\r\n");
	T_EQ_INT(r.range_first, 100);
	T_EQ_INT(r.range_last, 199);
	T_EQ_INT(r.range_total, 1000);
	hdr(&r, "HTTP/1.1 206 Partial Content\r\n"); /* a new response forgets the old one */
	T_EQ_INT(r.range_first, -1);
	hdr(&r, "content-range: bytes 5-4/10\r\n");
	T_EQ_INT(r.range_first, -1);
	hdr(&r, "Content-Range: bytes 0-9/*\r\n");
	T_EQ_INT(r.range_last, 9);
	T_EQ_INT(r.range_total, -1);
	hdr(&r, "Content-Range: bytes 0-9/9\r\n"); /* last beyond total */
	T_EQ_INT(r.range_first, -1);

	weights_opts o;
	weights_opts_default(&o);
	char err[512], why[400];
	wsrc *s = wsrc_new("http://127.0.0.1:9/m/", &o, err, sizeof err);
	T_CHECK(s != NULL);
	wfile f = {.path = "w.bin", .size = 1000, .size_known = 1};
	str_copy(f.etag, "Mon, 07 Dec 2026 04:00:00 GMT", sizeof f.etag);
	memset(&r, 0, sizeof r);
	r.status = 206;
	r.range_first = 100, r.range_last = 199, r.range_total = 1000;
	T_EQ_INT(wsrc_check_range_answer(s, &f, "", 100, 100, &r, why, sizeof why), 0);
	r.range_first = 0, r.range_last = 99;
	T_EQ_INT(wsrc_check_range_answer(s, &f, "", 100, 100, &r, why, sizeof why), -1);
	T_CHECK(strstr(why, "asked for bytes 100-199 of 1000, the server answered bytes 0-99/1000") != NULL);
	r.range_first = 100, r.range_last = 199, r.range_total = 2000; /* another file */
	T_EQ_INT(wsrc_check_range_answer(s, &f, "", 100, 100, &r, why, sizeof why), -1);
	r.range_total = -1;
	T_EQ_INT(wsrc_check_range_answer(s, &f, "", 100, 100, &r, why, sizeof why), -1);
	r.range_first = -1; /* a 206 without Content-Range */
	T_EQ_INT(wsrc_check_range_answer(s, &f, "", 100, 100, &r, why, sizeof why), -1);
	r.range_first = 100, r.range_last = 199, r.range_total = 1000;
	str_copy(r.etag, "\"v2\"", sizeof r.etag);
	T_EQ_INT(wsrc_check_range_answer(s, &f, "\"v1\"", 100, 100, &r, why, sizeof why), 1);
	T_CHECK(strstr(why, "changed at the source") != NULL);
	T_EQ_INT(wsrc_check_range_answer(s, &f, "\"v2\"", 100, 100, &r, why, sizeof why), 0);
	str_copy(r.last_modified, "Tue, 08 Dec 2026 04:00:00 GMT", sizeof r.last_modified);
	T_EQ_INT(wsrc_check_range_answer(s, &f, "\"v2\"", 100, 100, &r, why, sizeof why), 1);
	T_CHECK(strstr(why, "since it was listed") != NULL);
	r.status = 412;
	T_EQ_INT(wsrc_check_range_answer(s, &f, "\"v2\"", 100, 100, &r, why, sizeof why), 1);
	char *url = NULL;
	struct curl_slist *h = NULL;
	T_EQ_INT(wsrc_get_request(s, &f, 0, 10, "\"v1\"", &url, &h), 0);
	int has = 0;
	for (struct curl_slist *p = h; p; p = p->next) has |= !strcmp(p->data, "If-Match: \"v1\"");
	T_CHECK(has);
	free(url);
	curl_slist_free_all(h);
	wsrc_free(s);

	o.s3_endpoint = "http://127.0.0.1:9000";
	s = wsrc_new("s3://bkt/p", &o, err, sizeof err);
	wfile g = {.path = "a.bin", .size = 10, .size_known = 1};
	str_copy(g.etag, "0123abcd", sizeof g.etag);
	T_EQ_INT(wsrc_get_request(s, &g, 0, 5, NULL, &url, &h), 0);
	has = 0;
	for (struct curl_slist *p = h; p; p = p->next) has |= !strcmp(p->data, "if-match: \"0123abcd\"");
	T_CHECK(has);
	free(url);
	curl_slist_free_all(h);
	wsrc_free(s);

	o.gcs_endpoint = "127.0.0.1:4443";
	s = wsrc_new("gs://bucket/m", &o, err, sizeof err);
	str_copy(g.etag, "1712345678901234", sizeof g.etag);
	T_EQ_INT(wsrc_get_request(s, &g, 0, 5, NULL, &url, &h), 0);
	T_EQ_STR(url, "http://127.0.0.1:4443/storage/v1/b/bucket/o/m%2Fa.bin?alt=media&ifGenerationMatch=1712345678901234");
	free(url);
	curl_slist_free_all(h);
	wsrc_free(s);
}

int main(void)
{
	T_RUN(test_name_problem);
	T_RUN(test_range_answer);
	T_RUN(test_path_ok);
	T_RUN(test_parse);
	T_RUN(test_hf_errors);
	T_RUN(test_list_and_plan);
	return T_END();
}
