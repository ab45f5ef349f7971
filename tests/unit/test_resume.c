/* test_resume.c — the pure rules of a stream resume (src/gateway/sse_splice.c
 * and the request reader that fills splice_req, request.c, compiled in here): which requests are resumable, the continuation body, and
 * the splice of a continuation's events into the client's stream. */
#include "gateway/sse_splice.c"
#include "gateway/request.c"
#include "t.h"

static splice_req req(const char *body, int chat)
{
	splice_req r;
	T_CHECK(splice_req_read(body, strlen(body), chat, &r) == 0);
	return r;
}

static void test_request(void)
{
	splice_req r = req("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":9,\"max_completion_tokens\":7,"
			   "\"stream_options\":{\"include_usage\":true}}",
			   1);
	T_CHECK(r.resumable);
	T_EQ_INT(r.max_tokens, 7); /* max_completion_tokens wins */
	T_EQ_INT(r.include_usage, 1);
	r = req("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":2}", 1);
	T_CHECK(!r.resumable && !strcmp(r.why, "n > 1"));
	r = req("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":1}", 1);
	T_CHECK(r.resumable);
	T_EQ_INT(r.max_tokens, -1);
	r = req("{\"prompt\":\"a b\"}", 0);
	T_CHECK(r.resumable);
	T_EQ_INT(r.max_tokens, 16); /* the completions default */
	r = req("{\"prompt\":[1,2,3]}", 0);
	T_CHECK(!r.resumable);
	r = req("{\"prompt\":[\"a\",\"b\"]}", 0);
	T_CHECK(!r.resumable);
	r = req("{\"prompt\":\"a\",\"echo\":true}", 0);
	T_CHECK(!r.resumable);
	splice_req x;
	T_CHECK(splice_req_read("[1]", 3, 1, &x) < 0);
	T_CHECK(splice_req_read("{", 1, 1, &x) < 0);
}

/* Feeds "data" events to s; returns what the client got. */
static const char *feed(splice *s, buf *out, const char *const events[])
{
	buf_reset(out);
	for (int i = 0; events[i]; i++) splice_event(s, events[i], strlen(events[i]), out);
	return buf_rptr(out);
}

#define CHUNK(id, content) "{\"id\":\"" id "\",\"object\":\"chat.completion.chunk\",\"created\":" \
			   "5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" content "\"},\"logprobs\":null,\"finish_reason\":null}]}"

static void test_chat_splice(void)
{
	const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5,\"stream\":true,"
			   "\"stream_options\":{\"include_usage\":true},\"temperature\":0}";
	splice_req rq = req(body, 1);
	splice s;
	splice_init(&s, &rq);
	buf out, cont;
	buf_init(&out, 0);
	buf_init(&cont, 0);
	const char *first[] = {
		"{\"id\":\"A\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}",
		CHUNK("A", "Hello"),
		CHUNK("A", " wor"),
		NULL,
	};
	const char *got = feed(&s, &out, first);
	T_CHECK(!strncmp(got, "data: {\"id\":\"A\"", 15)); /* the original stream as it came */
	T_EQ_INT(s.tokens, 2);
	T_EQ_STR(buf_rptr(&s.text), "Hello wor");
	T_CHECK(s.role_sent && !s.finished);

	T_EQ_INT(splice_continuation(&s, &rq, body, strlen(body), &cont), 0);
	T_EQ_STR(buf_rptr(&cont),
		 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"Hello wor\"}],"
		 "\"stream\":true,\"temperature\":0,\"max_tokens\":3,\"continue_final_message\":true,\"add_generation_prompt\":false,"
		 "\"stream_options\":{\"include_usage\":true}}");

	splice_next_attempt(&s);
	const char *second[] = {
		"{\"id\":\"B\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}",
		CHUNK("B", "ld"),
		"{\"id\":\"B\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"logprobs\":null,\"finish_reason\":\"length\"}]}",
		"{\"id\":\"B\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m2\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"total_tokens\":15,\"completion_tokens\":3}}",
		"[DONE]",
		NULL,
	};
	got = feed(&s, &out, second);
	T_EQ_STR(got,
		 "data: {\"id\":\"A\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ld\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
		 "data: {\"id\":\"A\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"logprobs\":null,\"finish_reason\":\"length\"}]}\n\n"
		 "data: {\"id\":\"A\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"total_tokens\":15,\"completion_tokens\":5}}\n\n"
		 "data: [DONE]\n\n");
	T_CHECK(s.done && s.finished && s.usage_sent);
	T_EQ_STR(buf_rptr(&s.text), "Hello world!");
	/* Nothing after [DONE]. */
	const char *late[] = {CHUNK("B", "x"), NULL};
	T_EQ_STR(feed(&s, &out, late), "");
	splice_free(&s);
	buf_free(&out);
	buf_free(&cont);
}

static void test_usage_not_asked_and_errors(void)
{
	const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"Sure: \"}],"
			   "\"continue_final_message\":true,\"add_generation_prompt\":false,\"max_completion_tokens\":4,\"min_tokens\":3}";
	splice_req rq = req(body, 1);
	T_CHECK(rq.resumable);
	splice s;
	splice_init(&s, &rq);
	buf out, cont;
	buf_init(&out, 0);
	buf_init(&cont, 0);
	const char *first[] = {CHUNK("A", "one"), "{\"error\":{\"message\":\"engine died\",\"code\":500}}", NULL};
	buf_reset(&out);
	T_EQ_INT(splice_event(&s, first[0], strlen(first[0]), &out), SPLICE_GO_ON);
	T_EQ_INT(splice_event(&s, first[1], strlen(first[1]), &out), SPLICE_ERROR);
	T_CHECK(strstr(buf_rptr(&s.error_event), "engine died") != NULL);
	T_CHECK(strstr(buf_rptr(&out), "engine died") == NULL); /* held, not relayed */
	/* The client's own continued message gets the text; the budget and min_tokens shrink. */
	T_EQ_INT(splice_continuation(&s, &rq, body, strlen(body), &cont), 0);
	T_EQ_STR(buf_rptr(&cont),
		 "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"Sure: one\"}],"
		 "\"min_tokens\":2,\"max_completion_tokens\":3,\"continue_final_message\":true,\"add_generation_prompt\":false,"
		 "\"stream_options\":{\"include_usage\":true}}");
	splice_next_attempt(&s);
	const char *second[] = {
		"{\"id\":\"B\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":12,\"completion_tokens\":3}}",
		"[DONE]",
		NULL,
	};
	T_EQ_STR(feed(&s, &out, second), "data: [DONE]\n\n"); /* usage the client did not ask for is dropped */
	splice_free(&s);

	/* The budget spent before the break: the gateway ends the stream itself. */
	splice_init(&s, &rq);
	const char *all[] = {CHUNK("A", "a"), CHUNK("A", "b"), CHUNK("A", "c"), CHUNK("A", "d"), NULL};
	feed(&s, &out, all);
	T_EQ_INT(splice_continuation(&s, &rq, body, strlen(body), &cont), 1);
	buf_reset(&out);
	T_EQ_INT(splice_end(&s, 1, &out), 0);
	T_CHECK(strstr(buf_rptr(&out), "\"finish_reason\":\"length\"") != NULL);
	T_CHECK(strstr(buf_rptr(&out), "\"id\":\"A\"") != NULL);
	T_CHECK(strstr(buf_rptr(&out), "data: [DONE]\n\n") != NULL);
	splice_free(&s);
	buf_free(&out);
	buf_free(&cont);
}

static void test_completions(void)
{
	const char *body = "{\"prompt\":\"Once upon\",\"stream\":true}";
	splice_req rq = req(body, 0);
	splice s;
	splice_init(&s, &rq);
	buf out, cont;
	buf_init(&out, 0);
	buf_init(&cont, 0);
	const char *ev[] = {"{\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\" a\",\"finish_reason\":null}]}",
			    "{\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\" time\",\"finish_reason\":null}]}", NULL};
	feed(&s, &out, ev);
	T_EQ_INT(splice_continuation(&s, &rq, body, strlen(body), &cont), 0);
	T_EQ_STR(buf_rptr(&cont), "{\"prompt\":\"Once upon a time\",\"stream\":true,\"max_tokens\":14,\"stream_options\":{\"include_usage\":true}}");
	/* The text cap: beyond it, not resumable. */
	char big[4096];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	char ev_big[4200];
	snprintf(ev_big, sizeof(ev_big), "{\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\"%s\",\"finish_reason\":null}]}", big);
	for (int i = 0; i < 300 && !s.text_over; i++) splice_event(&s, ev_big, strlen(ev_big), &out), buf_reset(&out);
	T_CHECK(s.text_over);
	splice_free(&s);
	buf_free(&out);
	buf_free(&cont);
}

/* llama.cpp continues a final assistant message unasked (prefill_assistant):
 * the text goes on the client's message, never a second assistant message
 * (which llama.cpp refuses); without prefill a new message is added. */
static void test_llamacpp_prefill(void)
{
	const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"Sure: \"}],"
			   "\"stream\":true,\"max_tokens\":4}";
	splice_req rq = req(body, 1);
	T_CHECK(rq.resumable);
	rq.prefill = 1;
	splice s;
	splice_init(&s, &rq);
	buf out, cont;
	buf_init(&out, 0);
	buf_init(&cont, 0);
	const char *first[] = {CHUNK("A", "one"), NULL};
	feed(&s, &out, first);
	T_EQ_INT(splice_continuation(&s, &rq, body, strlen(body), &cont), 0);
	T_EQ_STR(buf_rptr(&cont),
		 "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"Sure: one\"}],"
		 "\"stream\":true,\"max_tokens\":3,\"continue_final_message\":true,\"add_generation_prompt\":false,"
		 "\"stream_options\":{\"include_usage\":true}}");
	rq.prefill = 0; /* vLLM: the client's message was answered, not continued */
	T_EQ_INT(splice_continuation(&s, &rq, body, strlen(body), &cont), 0);
	T_CHECK(strstr(buf_rptr(&cont), "{\"role\":\"assistant\",\"content\":\"Sure: \"},{\"role\":\"assistant\",\"content\":\"one\"}") != NULL);
	splice_free(&s);
	buf_free(&out);
	buf_free(&cont);
}

int main(void)
{
	T_RUN(test_request);
	T_RUN(test_chat_splice);
	T_RUN(test_usage_not_asked_and_errors);
	T_RUN(test_completions);
	T_RUN(test_llamacpp_prefill);
	return T_END();
}
