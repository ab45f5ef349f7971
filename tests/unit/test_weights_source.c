/* test_weights_source.c — location parsing, relative-path safety, listing
 * helpers, Hugging Face error wording and ranged request construction. */
#include <stdlib.h>
#include "weights/source.h"
#include "weights/fetch.h"
#include "t.h"

static void test_path_ok(void)
{
	const char *good[] = { "a", "config.json", "a/b/c.bin", "dir.with.dots/x", "..a", "a..", "é/ü" };
	const char *bad[] = { "", "/abs", "a//b", "a/./b", "../x", "a/..", ".", "a/", "tab\there" };
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
	wfile f = { .path = "sub dir/model.safetensors", .size = 100, .size_known = 1 };
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
	wlist l = { 0 };
	T_EQ_INT(wlist_add(&l, "b", 1, 1, 1), 0);
	T_EQ_INT(wlist_add(&l, "a", 1, 2, 1), 0);
	T_EQ_INT(wlist_add(&l, "b", 1, 3, 1), 0);
	T_EQ_INT(wlist_add(&l, "../x", 4, 3, 1), -2);
	wlist_sort(&l);
	T_EQ_INT(l.n, 2);
	T_EQ_STR(l.files[0].path, "a");
	wlist_free(&l);
	fetch_file f = { 0 };
	fetch_file_plan(&f, 100, 16);
	T_EQ_INT(f.chunk_bytes, 4096);
	T_EQ_INT(f.n_chunks, 1);
	fetch_file_plan(&f, 0, 1 << 20);
	T_EQ_INT(f.n_chunks, 0);
	fetch_file_plan(&f, (1ull << 40) + 1, 4096); /* capped chunk count */
	T_CHECK(f.n_chunks <= FETCH_MAX_CHUNKS);
	T_CHECK((uint64_t)f.n_chunks * f.chunk_bytes >= (1ull << 40) + 1);
}

int main(void)
{
	T_RUN(test_path_ok);
	T_RUN(test_parse);
	T_RUN(test_hf_errors);
	T_RUN(test_list_and_plan);
	return T_END();
}
