/*
 * fuzz_scrape.c — libFuzzer target for the gateway's scrape page sieve
 * (src/gateway/scrape_parse.c, included: the gateway is a program).
 *
 * The input's first two bytes choose a cut and a piece size; the rest is a
 * page, parsed whole from an exact-size heap copy (no read past its end), then
 * fed in two pieces at the cut, then in pieces of the chosen size: all three
 * must agree on the result and the values, and give a reason on failure.
 * Values read are finite and fractions within 0..1.
 * fuzz-max-len: 8192
 */
#include "../../src/gateway/scrape_parse.c"

static void check(int cond)
{
	if (!cond) abort();
}

static void same(int rc, const scrape_values *v, const char *err, int rc2, const scrape_values *v2, const char *err2)
{
	check(rc == rc2);
	/* Garbage is garbage; which reason comes first may differ (a NUL byte late
	 * on the page is seen at once whole, after an earlier bad line in pieces). */
	if (rc == 0) check(!memcmp(v, v2, sizeof(*v)));
	else check(err[0] && err2[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2) return 0;
	size_t cut_at = data[0], step = 1 + data[1] % 64;
	data += 2;
	size -= 2;
	char *text = malloc(size ? size : 1);
	if (!text) return 0;
	memcpy(text, data, size);
	const char *metric = cut_at & 1 ? "vllm:num_requests_running" : NULL;
	scrape_values v, v2, v3;
	char err[160] = "", err2[160] = "", err3[160] = "";
	int rc = scrape_parse(text, size, metric, &v, err, sizeof(err));
	if (rc == 0) {
		check(v.kv_usage >= 0 && v.kv_usage <= 1 && v.metric >= 0 && v.metric <= 1);
		check(isfinite(v.waiting) && isfinite(v.running) && v.waiting >= 0 && v.running >= 0);
	} else {
		check(err[0] != 0);
	}
	scrape_parser *sp = scrape_parser_new();
	check(sp != NULL);
	size_t cut = size ? cut_at * 37 % (size + 1) : 0;
	scrape_parser_begin(sp, metric);
	scrape_parser_feed(sp, text, cut);
	scrape_parser_feed(sp, text + cut, size - cut);
	int rc2 = scrape_parser_end(sp, &v2, err2, sizeof(err2));
	same(rc, &v, err, rc2, &v2, err2);
	scrape_parser_begin(sp, metric);
	for (size_t at = 0; at < size; at += step) scrape_parser_feed(sp, text + at, MIN(step, size - at));
	int rc3 = scrape_parser_end(sp, &v3, err3, sizeof(err3));
	same(rc, &v, err, rc3, &v3, err3);
	scrape_parser_free(sp);
	free(text);
	return 0;
}
