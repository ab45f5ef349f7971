/*
 * test_openai_api.c — the OpenAI request checks and answer writers shared by
 * infergate-sim and infergate-server (core/openai_api.h), and vLLM's metric
 * families (core/vllm_metrics.h).
 */
#include <stdlib.h>
#include <string.h>
#include "core/openai_api.h"
#include "core/vllm_metrics.h"
#include "t.h"

static json_doc *doc_of(const char *text)
{
	oai_err e = {0};
	json_doc *d = oai_parse_body(text, strlen(text), &e);
	if (!d) fprintf(stderr, "  parse: %s\n", e.msg);
	return d;
}

static void test_body(void)
{
	oai_err e = {0};
	T_CHECK(oai_parse_body("{bad", 4, &e) == NULL);
	T_EQ_INT(e.status, 400);
	T_CHECK(strncmp(e.msg, "Invalid JSON at line 1 column", 29) == 0);
	T_CHECK(oai_parse_body("[1]", 3, &e) == NULL);
	T_EQ_STR(e.msg, "The request body must be a JSON object.");
}

/* Runs one sampling check and returns the message ("" when it passed). */
static const char *sampling_msg(const char *text, oai_sampling *s)
{
	static oai_err e;
	memset(&e, 0, sizeof e);
	json_doc *d = doc_of(text);
	int rc = oai_parse_sampling(json_root(d), s, &e);
	json_doc_free(d);
	return rc < 0 ? e.msg : "";
}

static void test_sampling(void)
{
	oai_sampling s;
	T_EQ_STR(sampling_msg("{}", &s), "");
	T_EQ_INT(s.has_temperature + s.has_top_p + s.has_min_p + s.has_top_k + s.has_seed, 0);
	T_EQ_STR(sampling_msg("{\"temperature\":0.5,\"top_k\":-1,\"seed\":7}", &s), "");
	T_CHECK(s.has_temperature && s.temperature == 0.5 && s.has_top_k && s.top_k == -1 && s.has_seed && s.seed == 7);
	T_EQ_STR(sampling_msg("{\"temperature\":-1}", &s), "temperature must be non-negative, got -1.");
	T_EQ_STR(sampling_msg("{\"temperature\":\"x\"}", &s), "temperature: Input should be a valid number");
	T_EQ_STR(sampling_msg("{\"top_p\":0}", &s), "top_p must be in (0, 1], got 0.");
	T_EQ_STR(sampling_msg("{\"min_p\":2}", &s), "min_p must be in [0, 1], got 2.");
	/* -2 is a value like any other (it was once a sentinel for "absent"). */
	T_EQ_STR(sampling_msg("{\"top_k\":-2}", &s), "top_k must be -1 (disable), or at least 1, got -2.");
	T_EQ_STR(sampling_msg("{\"seed\":\"s\"}", &s), "seed: Input should be a valid integer");
	T_EQ_STR(sampling_msg("{\"frequency_penalty\":-3}", &s), "frequency_penalty must be in [-2, 2], got -3.");
	T_EQ_STR(sampling_msg("{\"repetition_penalty\":0}", &s), "repetition_penalty must be greater than zero, got 0.");
}

static void test_fields(void)
{
	oai_err e = {0};
	int64_t v;
	int a, b;
	json_doc *d = doc_of("{\"max_tokens\":0}");
	T_EQ_INT(oai_parse_max_tokens(json_root(d), 1, &v, &e), -1);
	T_EQ_STR(e.msg, "max_tokens must be at least 1, got 0.");
	json_doc_free(d);
	d = doc_of("{\"max_tokens\":5,\"max_completion_tokens\":9}");
	T_EQ_INT(oai_parse_max_tokens(json_root(d), 1, &v, &e), 0);
	T_EQ_INT(v, 9);
	T_EQ_INT(oai_parse_max_tokens(json_root(d), 0, &v, &e), 0);
	T_EQ_INT(v, 5);
	json_doc_free(d);
	/* A NUL inside the model name: 400, not the name up to the NUL. */
	const char *model = "x";
	d = doc_of("{\"model\":\"gemma\\u0000x\"}");
	T_EQ_INT(oai_parse_model(json_root(d), &model, &e), -1);
	T_EQ_INT(e.status, 400);
	T_CHECK(model == NULL);
	json_doc_free(d);
	d = doc_of("{\"model\":\"gemma\"}");
	T_EQ_INT(oai_parse_model(json_root(d), &model, &e), 0);
	T_EQ_STR(model, "gemma");
	json_doc_free(d);
	d = doc_of("{\"n\":3}");
	T_EQ_INT(oai_parse_n(json_root(d), 2, &v, &e), -1);
	T_EQ_STR(e.msg, "n must be at most 2, got 3.");
	json_doc_free(d);
	d = doc_of("{\"stream_options\":{\"include_usage\":true}}");
	T_EQ_INT(oai_parse_stream(json_root(d), &a, &b, &e), -1);
	T_EQ_STR(e.msg, "Stream options can only be defined when `stream=True`.");
	json_doc_free(d);
	d = doc_of("{\"top_logprobs\":2}");
	T_EQ_INT(oai_parse_logprobs(json_root(d), 1, 20, &a, &e), -1);
	T_EQ_STR(e.msg, "when using `top_logprobs`, `logprobs` must be set to true.");
	json_doc_free(d);
	d = doc_of("{\"logprobs\":true,\"top_logprobs\":-5}");
	T_EQ_INT(oai_parse_logprobs(json_root(d), 1, 20, &a, &e), -1);
	T_EQ_STR(e.msg, "top_logprobs must be non-negative, got -5.");
	T_EQ_INT(oai_parse_logprobs(json_root(d), 1, -1, &a, &e), 0); /* not served: types only */
	T_EQ_INT(a, -1);
	json_doc_free(d);
	d = doc_of("{\"continue_final_message\":true}");
	T_EQ_INT(oai_parse_chat_flags(json_root(d), 1, &a, &b, &e), -1);
	T_EQ_INT(oai_parse_chat_flags(json_root(d), 0, &a, &b, &e), 0);
	json_doc_free(d);
	d = doc_of("{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}");
	const json_val *m;
	T_EQ_INT(oai_parse_messages(json_root(d), 0, &m, &e), 0);
	T_EQ_INT(oai_parse_messages(json_root(d), 1, &m, &e), -1);
	T_EQ_STR(e.msg, "messages.0.content.0: a part needs a type");
	json_doc_free(d);
}

/* Every integer field: a value beyond int64 (a Python int to vLLM) meets the
 * field's range check and its message, never a type error, a wrap or a
 * truncation; a fraction is a type error. */
enum { F_MAX_CHAT,
       F_MAX_COMP,
       F_N,
       F_SAMPLING,
       F_LP_CHAT,
       F_LP_COMP,
       F_PROMPT };

static const char *int_field_msg(int f, const char *text)
{
	static oai_err e;
	memset(&e, 0, sizeof e);
	json_doc *d = doc_of(text);
	if (!d) return "(no document)";
	const json_val *r = json_root(d), *pr;
	int64_t v;
	int lp, rc = -1;
	oai_sampling s;
	switch (f) {
	case F_MAX_CHAT: rc = oai_parse_max_tokens(r, 1, &v, &e); break;
	case F_MAX_COMP: rc = oai_parse_max_tokens(r, 0, &v, &e); break;
	case F_N: rc = oai_parse_n(r, 128, &v, &e); break;
	case F_SAMPLING: rc = oai_parse_sampling(r, &s, &e); break;
	case F_LP_CHAT: rc = oai_parse_logprobs(r, 1, 20, &lp, &e); break;
	case F_LP_COMP: rc = oai_parse_logprobs(r, 0, 20, &lp, &e); break;
	case F_PROMPT: rc = oai_parse_prompts(r, &pr, &e); break;
	}
	json_doc_free(d);
	return rc < 0 ? e.msg : "";
}

static void test_integer_fields(void)
{
	static const struct {
		int f;
		const char *json, *msg;
	} cases[] = {
		{F_MAX_COMP, "{\"max_tokens\":99999999999999999999}", ""},
		{F_MAX_COMP, "{\"max_tokens\":1e30}", ""},
		{F_MAX_COMP, "{\"max_tokens\":-99999999999999999999}", "max_tokens must be at least 1, got -100000000000000000000."},
		{F_MAX_COMP, "{\"max_tokens\":-9223372036854775808}", "max_tokens must be at least 1, got -9223372036854775808."},
		{F_MAX_COMP, "{\"max_tokens\":2.5}", "max_tokens: Input should be a valid integer"},
		{F_MAX_COMP, "{\"max_tokens\":4.0}", ""},
		{F_MAX_CHAT, "{\"max_completion_tokens\":-1e19}", "max_completion_tokens must be at least 1, got -10000000000000000000."},
		{F_N, "{\"n\":99999999999999999999}", "n must be at most 128, got 100000000000000000000."},
		{F_N, "{\"n\":4294967297}", "n must be at most 128, got 4294967297."},
		{F_N, "{\"n\":-1e20}", "n must be at least 1, got -100000000000000000000."},
		{F_SAMPLING, "{\"seed\":9223372036854775807}", ""},
		{F_SAMPLING, "{\"seed\":9223372036854775808}", "seed: Input should be less than or equal to 9223372036854775807"},
		{F_SAMPLING, "{\"seed\":-1e19}", "seed: Input should be greater than or equal to -9223372036854775808"},
		{F_SAMPLING, "{\"seed\":1.5}", "seed: Input should be a valid integer"},
		{F_SAMPLING, "{\"top_k\":1e300}", ""},
		{F_SAMPLING, "{\"top_k\":-1e300}", "top_k must be -1 (disable), or at least 1, got -10000000000000000525*"},
		{F_LP_COMP, "{\"logprobs\":18446744073709551616}", "Requested sample logprobs of 18446744073709551616, which is greater than max allowed: 20"},
		{F_LP_COMP, "{\"logprobs\":-5e20}", "logprobs must be non-negative, got -500000000000000000000."},
		{F_LP_CHAT, "{\"logprobs\":true,\"top_logprobs\":4294967317}", "Requested sample logprobs of 4294967317, which is greater than max allowed: 20"},
		{F_PROMPT, "{\"prompt\":[4294967301]}", ""}, /* the vocabulary check is the server's */
		{F_PROMPT, "{\"prompt\":[[1,99999999999999999999]]}", ""},
		{F_PROMPT, "{\"prompt\":[1,-4294967301]}", "prompt: token ids must be non-negative integers"},
		{F_PROMPT, "{\"prompt\":[1,2.5]}", "prompt: token ids must be non-negative integers"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got = int_field_msg(cases[i].f, cases[i].json);
		const char *want = cases[i].msg;
		/* A text ending in '*' is a prefix (the digits of a huge double). */
		size_t wl = strlen(want);
		int ok = wl && want[wl - 1] == '*' ? strncmp(got, want, wl - 1) == 0 : strcmp(got, want) == 0;
		if (!ok) fprintf(stderr, "  case %s: \"%s\"\n", cases[i].json, got);
		T_CHECK(ok);
	}
	/* Saturated, not wrapped: the value a range check sees. */
	oai_err e = {0};
	int64_t v = 0;
	json_doc *d = doc_of("{\"max_tokens\":18446744073709551621}");
	T_EQ_INT(oai_parse_max_tokens(json_root(d), 0, &v, &e), 0);
	T_CHECK(v == INT64_MAX);
	json_doc_free(d);
	char t[40];
	d = doc_of("{\"a\":1e20,\"b\":7}");
	T_EQ_STR(oai_int_text(json_get(json_root(d), "a"), INT64_MAX, t, sizeof t), "100000000000000000000");
	T_EQ_STR(oai_int_text(json_get(json_root(d), "b"), 7, t, sizeof t), "7");
	json_doc_free(d);
}

static void test_prompts_and_stops(void)
{
	oai_err e = {0};
	const json_val *p;
	oai_stops st;
	json_doc *d = doc_of("{\"prompt\":[[1,2],[]]}");
	T_EQ_INT(oai_parse_prompts(json_root(d), &p, &e), -1);
	T_EQ_STR(e.msg, "prompt: each token-id list must be a non-empty list");
	json_doc_free(d);
	d = doc_of("{\"prompt\":[1,-2]}");
	T_EQ_INT(oai_parse_prompts(json_root(d), &p, &e), -1);
	T_EQ_STR(e.msg, "prompt: token ids must be non-negative integers");
	json_doc_free(d);
	d = doc_of("{\"prompt\":[\"a\",\"b\"],\"stop\":[\"ab\",\"\",\"xyz\"]}");
	T_EQ_INT(oai_parse_prompts(json_root(d), &p, &e), 0);
	T_EQ_INT(oai_parse_stop(json_root(d), &st, &e), 0);
	T_EQ_INT(st.n, 2);
	T_EQ_STR(st.s[1], "xyz");
	T_EQ_INT(st.max_len, 3);
	json_doc_free(d);
	d = doc_of("{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}");
	T_EQ_INT(oai_parse_stop(json_root(d), &st, &e), -1);
	T_EQ_STR(e.msg, "stop: at most 16 stop strings");
	json_doc_free(d);
}

static void plp_hook(json_w *w, void *arg, int choice)
{
	(void)arg;
	jw_arr_begin(w);
	jw_null(w);
	jw_int(w, choice);
	jw_arr_end(w);
}

static void test_writers(void)
{
	buf b;
	json_w w;
	buf_init(&b, 1 << 16);
	oai_answer a = {.id = "chatcmpl-1", .model = "m", .created = 5, .chat = 1, .vllm_nulls = 1};
	jw_init(&w, &b);
	oai_write_answer(&w, &a);
	oai_write_choice(&w, &a, 0, "hi", 2);
	jw_key(&w, "logprobs");
	jw_null(&w);
	oai_write_finish(&w, "stop", NULL, 106);
	oai_write_choice_end(&w, &a, 0);
	oai_write_answer_end(&w, &a, 3, 1);
	T_EQ_STR(buf_rptr(&b), "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"m\","
			       "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"reasoning_content\":null,"
			       "\"content\":\"hi\",\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":106}],"
			       "\"usage\":{\"prompt_tokens\":3,\"total_tokens\":4,\"completion_tokens\":1,\"prompt_tokens_details\":null},"
			       "\"prompt_logprobs\":null}");
	/* prompt_logprobs written by the caller's hook: per choice for completions. */
	a = (oai_answer){.id = "cmpl-2", .model = "m", .created = 5, .chat = 0, .prompt_logprobs = plp_hook};
	buf_reset(&b);
	jw_init(&w, &b);
	oai_write_answer(&w, &a);
	for (int i = 0; i < 2; i++) {
		oai_write_choice(&w, &a, i, "t", 1);
		oai_write_choice_end(&w, &a, i);
	}
	oai_write_answer_end(&w, &a, 1, 1);
	T_CHECK(strstr(buf_rptr(&b), "\"text\":\"t\",\"prompt_logprobs\":[null,0]}") != NULL);
	T_CHECK(strstr(buf_rptr(&b), "\"text\":\"t\",\"prompt_logprobs\":[null,1]}") != NULL);
	T_CHECK(strstr(buf_rptr(&b), "}}") != NULL && strstr(buf_rptr(&b), "\"usage\"") != NULL);
	a = (oai_answer){.id = "cmpl-1", .model = "m", .created = 5, .chat = 0};
	buf_reset(&b);
	jw_init(&w, &b);
	oai_write_chunk(&w, &a, 1, "x", 1);
	jw_key(&w, "logprobs");
	jw_null(&w);
	oai_write_no_finish(&w, &a);
	oai_write_chunk_end(&w);
	T_EQ_STR(buf_rptr(&b), "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m\","
			       "\"choices\":[{\"index\":1,\"text\":\"x\",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null}]}");
	buf_reset(&b);
	jw_init(&w, &b);
	oai_write_usage_chunk(&w, &a, 2, 3);
	T_EQ_STR(buf_rptr(&b), "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m\","
			       "\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"total_tokens\":5,\"completion_tokens\":3}}");
	a.chat = 1;
	buf_reset(&b);
	jw_init(&w, &b);
	oai_write_role_chunk(&w, &a, 0);
	T_EQ_STR(buf_rptr(&b), "{\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
			       "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
			       "\"finish_reason\":null}]}");
	char id[48];
	uint64_t seq = 0;
	oai_make_id(id, sizeof id, 1, &seq, 42);
	T_EQ_INT(strlen(id), 9 + 32);
	T_EQ_INT(seq, 1);
	buf_free(&b);
}

static void test_vllm_metrics(void)
{
	static const char *const reasons[] = {"stop", "length"};
	vllm_metrics m;
	buf b;
	prom_registry *r = prom_registry_new();
	vllm_metrics_opts o = {.model_name = "m", .finish_reasons = reasons, .n_finish_reasons = 2, .with_tpot = 1};
	T_EQ_INT(vllm_metrics_register(&m, r, &o), 0);
	vllm_metrics_totals t = {.running = 2, .generation_tokens_total = 10, .finished_total = {3, 1}};
	vllm_metrics_update(&m, &t);
	t.generation_tokens_total = 15;
	vllm_metrics_update(&m, &t);
	vllm_metrics_cache_info(&m, 16, 1, 100);
	vllm_metrics_observe_itl(&m, 0.02);
	buf_init(&b, 1 << 20);
	T_EQ_INT(prom_write(r, &b), 0);
	const char *text = buf_rptr(&b);
	T_CHECK(strstr(text, "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 2\n") != NULL);
	T_CHECK(strstr(text, "vllm:generation_tokens_total{engine=\"0\",model_name=\"m\"} 15\n") != NULL);
	T_CHECK(strstr(text, "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"} 3\n") != NULL);
	T_CHECK(strstr(text, "vllm:time_per_output_token_seconds_count{engine=\"0\",model_name=\"m\"} 1\n") != NULL);
	T_CHECK(strstr(text, "vllm:inter_token_latency_seconds_bucket{engine=\"0\",model_name=\"m\",le=\"0.025\"} 1\n") != NULL);
	T_CHECK(strstr(text, "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",enable_prefix_caching=\"True\","
			     "engine=\"0\",num_gpu_blocks=\"100\"} 1\n") != NULL);
	buf_free(&b);
	prom_registry_free(r);
}

int main(void)
{
	T_RUN(test_body);
	T_RUN(test_sampling);
	T_RUN(test_fields);
	T_RUN(test_integer_fields);
	T_RUN(test_prompts_and_stops);
	T_RUN(test_writers);
	T_RUN(test_vllm_metrics);
	return T_END();
}
