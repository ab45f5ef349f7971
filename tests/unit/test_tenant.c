/*
 * test_tenant.c — a tenant's limits (tenant.h) as pure arithmetic over time:
 * the requests-per-second bucket, the tokens-per-minute bucket reserved on
 * admission and settled on the answer's usage (overshoot bounded by one
 * request), in-flight caps, Retry-After, and limits changed by a reload
 * keeping the state; and the usage scanner (usage.h) over any split of an
 * answer's bytes; the weighted model rewrite's choice and body. Sources included.
 */
#include "../../src/gateway/tenant.c"
#include "../../src/gateway/usage.c"
#include "../../src/gateway/rewrite.c"
#include "../../src/gateway/picker.c"
#include "t.h"

static tenant_state make(double rps, uint64_t tpm, uint32_t mif)
{
	tenant_state t;
	memset(&t, 0, sizeof(t));
	gw_tenant_cfg tc;
	memset(&tc, 0, sizeof(tc));
	tc.requests_per_second = rps;
	tc.tokens_per_minute = tpm;
	tc.max_in_flight = mif;
	tenant_set_limits(&t, &tc, 1000);
	return t;
}

static void test_requests_per_second(void)
{
	tenant_state t = make(5, 0, 0);
	uint64_t ra = 0;
	for (int i = 0; i < 5; i++) T_EQ_INT(tenant_take(&t, 1000, 10, &ra), TENANT_OK);
	T_EQ_INT(tenant_take(&t, 1000, 10, &ra), TENANT_RPS);
	T_EQ_INT(ra, 200); /* one request refills in 1/5 s */
	T_EQ_INT(tenant_take(&t, 1100, 10, &ra), TENANT_RPS);
	T_EQ_INT(ra, 100);
	T_EQ_INT(tenant_take(&t, 1200, 10, &ra), TENANT_OK);
	/* A rate under 1 still lets one request through, then waits 1/rate. */
	tenant_state s = make(0.5, 0, 0);
	T_EQ_INT(tenant_take(&s, 1000, 0, &ra), TENANT_OK);
	T_EQ_INT(tenant_take(&s, 1000, 0, &ra), TENANT_RPS);
	T_EQ_INT(ra, 2000);
}

static void test_tokens_per_minute(void)
{
	tenant_state t = make(0, 600, 0); /* 10 tokens a second */
	uint64_t ra = 0;
	/* Admitted while the balance is positive: the reservation may take it below. */
	T_EQ_INT(tenant_take(&t, 1000, 500, &ra), TENANT_OK);
	T_EQ_INT(tenant_take(&t, 1000, 500, &ra), TENANT_OK);
	T_NEAR(t.token_level, -400, 1e-9);
	T_EQ_INT(tenant_take(&t, 1000, 1, &ra), TENANT_TPM);
	T_EQ_INT(ra, 40100); /* 401 tokens at 10 per second */
	/* Settled on the usage: the first used 100, the second 50 -> +850. */
	tenant_settle(&t, 1000, 500, 100);
	tenant_settle(&t, 1000, 500, 50);
	T_NEAR(t.token_level, 450, 1e-9);
	T_EQ_INT(t.in_flight, 0);
	/* One long answer: overshoots by at most itself, then everyone waits. */
	T_EQ_INT(tenant_take(&t, 1000, 10, &ra), TENANT_OK);
	tenant_settle(&t, 1000, 10, 2000);
	T_NEAR(t.token_level, 450 - 2000, 1e-9);
	T_EQ_INT(tenant_take(&t, 1000, 10, &ra), TENANT_TPM);
	T_EQ_INT(tenant_take(&t, 1000 + 155000, 10, &ra), TENANT_TPM); /* at 0 after 155 s */
	T_EQ_INT(tenant_take(&t, 1000 + 155100, 10, &ra), TENANT_OK);  /* positive again */
	/* The bucket never holds more than a minute's worth. */
	tenant_settle(&t, 10000000, 10, 0);
	T_NEAR(t.token_level, 600, 1e-9);
}

static void test_in_flight_and_reload(void)
{
	tenant_state t = make(0, 0, 2);
	uint64_t ra = 0;
	T_EQ_INT(tenant_take(&t, 1000, 0, &ra), TENANT_OK);
	T_EQ_INT(tenant_take(&t, 1000, 0, &ra), TENANT_OK);
	T_EQ_INT(tenant_take(&t, 1000, 0, &ra), TENANT_IN_FLIGHT);
	T_CHECK(ra >= 1000);
	/* A reload raising the cap keeps the two in flight. */
	gw_tenant_cfg tc;
	memset(&tc, 0, sizeof(tc));
	tc.max_in_flight = 3;
	tenant_set_limits(&t, &tc, 2000);
	T_EQ_INT(t.in_flight, 2);
	T_EQ_INT(tenant_take(&t, 2000, 0, &ra), TENANT_OK);
	T_EQ_INT(tenant_take(&t, 2000, 0, &ra), TENANT_IN_FLIGHT);
	tenant_settle(&t, 2000, 0, 0);
	T_EQ_INT(tenant_take(&t, 2000, 0, &ra), TENANT_OK);
	/* No limits: always admitted. */
	tenant_set_limits(&t, NULL, 3000);
	for (int i = 0; i < 100; i++) T_EQ_INT(tenant_take(&t, 3000, 1000000, &ra), TENANT_OK);
	T_EQ_STR(tenant_limit_name(TENANT_TPM), "tokens_per_minute");
}

/* Feeds text cut at every position into two pieces, checks the counts. */
static void scan_split(const char *text, int64_t prompt, int64_t completion, uint64_t chunks)
{
	size_t n = strlen(text);
	for (size_t cut = 0; cut <= n; cut++) {
		usage_scan u;
		usage_init(&u);
		usage_feed(&u, text, cut);
		usage_feed(&u, text + cut, n - cut);
		T_EQ_INT(u.prompt_tokens, prompt);
		T_EQ_INT(u.completion_tokens, completion);
		T_EQ_INT(u.choice_chunks, chunks);
	}
}

static void test_usage_scan(void)
{
	scan_split("{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}],"
		   "\"usage\":{\"prompt_tokens\":12,\"total_tokens\":19,\"completion_tokens\":7}}",
		   12, 7, 1);
	/* The keys inside a generated text are escaped: not taken. */
	scan_split("{\"choices\":[{\"text\":\"say \\\"prompt_tokens\\\": 99\"}],\"usage\":{\"prompt_tokens\" : 3,"
		   "\"completion_tokens\":\n4}}",
		   3, 4, 0);
	/* A stream: chunks counted; its usage chunk read when present. */
	scan_split("data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n"
		   "data: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"length\"}]}\n\n"
		   "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
		   5, 2, 2);
	scan_split("data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n", -1, -1, 1);
	/* A string where a number should be, or a key as a value: not counted. */
	scan_split("{\"prompt_tokens\":\"5\",\"x\":\"completion_tokens\",\"y\":1}", -1, -1, 0);
}

/* The machine one byte at a time, as usage.c's head describes it: the
 * reference the skipping scanner must agree with. */
static void ref_feed(usage_scan *u, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (u->in_string) {
			if (u->escaped) u->escaped = 0;
			else if (ch == '\\') u->escaped = 1;
			else if (ch == '"') {
				u->in_string = 0;
				string_end(u);
				continue;
			}
			if (u->key_len < sizeof(u->key)) u->key[u->key_len] = ch;
			if (u->key_len <= sizeof(u->key)) u->key_len++;
			continue;
		}
		if (u->in_number) {
			if (ch >= '0' && ch <= '9') {
				if (u->number < (INT64_MAX - 9) / 10) u->number = u->number * 10 + (ch - '0');
				continue;
			}
			number_end(u);
		}
		if (ch == '"') {
			u->in_string = 1;
			u->escaped = 0;
			u->key_len = 0;
			if (u->want && u->after_colon) u->want = 0;
			continue;
		}
		if (!u->want) continue;
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
		if (ch == ':' && !u->after_colon) {
			u->after_colon = 1;
			continue;
		}
		if (u->after_colon && ch >= '0' && ch <= '9') {
			u->in_number = 1;
			u->number = ch - '0';
			continue;
		}
		u->want = 0;
		u->after_colon = 0;
	}
}

/* Random answers made of the pieces that move the machine, fed in random
 * pieces: the same counts and state as the reference, byte for byte. */
static void test_usage_scan_reference(void)
{
	static const char *const pieces[] = {
		"\"", "\\", "\\\"", ":", " ", "\n", "7", "42", ",", "{", "}", "x", "prompt_tokens", "completion_tokens",
		"finish_reason", "\"prompt_tokens\":", "\"completion_tokens\" : ", "\"finish_reason\"",
		"a string of more than twenty-four bytes ", "data: ", "\\\\"};
	uint64_t seed = 88172645463325252ull;
	for (int round = 0; round < 3000; round++) {
		char text[512];
		size_t n = 0;
		while (n < 300) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			const char *p = pieces[seed % (sizeof(pieces) / sizeof(pieces[0]))];
			size_t k = strlen(p);
			memcpy(text + n, p, k);
			n += k;
		}
		usage_scan a, b;
		usage_init(&a);
		usage_init(&b);
		ref_feed(&b, text, n);
		for (size_t at = 0; at < n;) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			size_t k = MIN(n - at, 1 + seed % 40);
			usage_feed(&a, text + at, k);
			at += k;
		}
		T_EQ_INT(a.prompt_tokens, b.prompt_tokens);
		T_EQ_INT(a.completion_tokens, b.completion_tokens);
		T_EQ_INT(a.choice_chunks, b.choice_chunks);
		T_EQ_INT(a.in_string, b.in_string);
		T_EQ_INT(a.escaped, b.escaped);
		T_EQ_INT(a.key_len, b.key_len);
		T_EQ_INT(a.want, b.want);
		T_EQ_INT(a.in_number, b.in_number);
		if (t_cur_failed) break;
	}
}

static void test_rewrite(void)
{
	gw_rewrite_cfg rw;
	memset(&rw, 0, sizeof(rw));
	strcpy(rw.model, "gemma");
	strcpy(rw.targets[0], "gemma-3-27b-it");
	strcpy(rw.targets[1], "gemma-3-27b-it-v2");
	rw.weights[0] = 90;
	rw.weights[1] = 10;
	rw.n_targets = 2;
	/* Without sessions: over any 1,000 requests in a row, 10% within 0.5%. */
	for (uint64_t start = 0; start < 5000; start += 1234) {
		int n1 = 0;
		for (uint64_t i = start; i < start + 1000; i++) n1 += rewrite_pick(&rw, 0, i) == 1;
		T_CHECK(n1 >= 95 && n1 <= 105);
	}
	/* With sessions: each session always the same target; about 10% of them go to v2. */
	int s1 = 0;
	for (int k = 0; k < 2000; k++) {
		char key[32];
		snprintf(key, sizeof key, "user-%d", k);
		uint64_t h = picker_session_hash(key, strlen(key));
		size_t t = rewrite_pick(&rw, h, 1);
		T_EQ_INT(rewrite_pick(&rw, h, 77), t);
		s1 += t == 1;
	}
	T_CHECK(s1 > 140 && s1 < 260);
	/* A weight of 0: never. */
	rw.weights[1] = 0;
	for (uint64_t i = 0; i < 100; i++) T_EQ_INT(rewrite_pick(&rw, i % 3 ? 0 : i * 7919 + 1, i), 0);
	/* The body: only the model's bytes change. */
	const char *body = "{\"messages\":[],\"model\": \"gemma\",\"max_tokens\":5}";
	size_t at = strstr(body, "\"gemma\"") - body;
	buf out;
	buf_init(&out, 0);
	T_EQ_INT(rewrite_body(&out, body, strlen(body), at, 7, "gemma-3-27b-it-v2\"x", 0, NULL), 0);
	buf_puts(&out, "");
	T_EQ_MEM(buf_rptr(&out), "{\"messages\":[],\"model\": \"gemma-3-27b-it-v2\\\"x\",\"max_tokens\":5}", buf_rlen(&out));
	T_EQ_INT(rewrite_body(&out, body, strlen(body), at, 999, "x", 0, NULL), -1);
	/* The usage member after the '{', with the model rewritten in the same copy. */
	T_EQ_INT(rewrite_body(&out, body, strlen(body), at, 7, "v2", 0, REWRITE_USAGE_MEMBER), 0);
	T_EQ_MEM(buf_rptr(&out), "{\"stream_options\":{\"include_usage\":true},\"messages\":[],\"model\": \"v2\",\"max_tokens\":5}", buf_rlen(&out));
	/* Alone (no model change), after leading blanks; and into an empty object. */
	T_EQ_INT(rewrite_body(&out, "  {\"a\":1}", 9, 0, 0, NULL, 2, REWRITE_USAGE_MEMBER), 0);
	T_EQ_MEM(buf_rptr(&out), "  {\"stream_options\":{\"include_usage\":true},\"a\":1}", buf_rlen(&out));
	T_EQ_INT(rewrite_body(&out, "{ }", 3, 0, 0, NULL, 0, REWRITE_USAGE_MEMBER), 0);
	T_EQ_MEM(buf_rptr(&out), "{\"stream_options\":{\"include_usage\":true} }", buf_rlen(&out));
	T_EQ_INT(rewrite_body(&out, "[1]", 3, 0, 0, NULL, 0, REWRITE_USAGE_MEMBER), -1);
	buf_free(&out);
}

int main(void)
{
	T_RUN(test_requests_per_second);
	T_RUN(test_tokens_per_minute);
	T_RUN(test_in_flight_and_reload);
	T_RUN(test_usage_scan);
	T_RUN(test_usage_scan_reference);
	T_RUN(test_rewrite);
	return T_END();
}
