/*
 * test_bench_workload.c — the load generator's request bodies: random prompts
 * of the asked length with max_tokens and ignore_eos; shared-prefix follow-ups
 * carrying the conversation (answers included) and waiting for the previous
 * turn; a failed turn ending its conversation; JSONL files filled from flags.
 */
#include "t.h"

#include <stdlib.h>
#include <unistd.h>

#include "bench/bench_workload.c"

static void base_cfg(bench_config *c)
{
	memset(c, 0, sizeof(*c));
	c->stream = 1;
	c->max_tokens = -1;
	c->temperature = -1;
	c->ignore_eos = -1;
	c->input_len = 10;
	c->output_len = 7;
	c->groups = 2;
	c->users = 2;
	c->turns = 2;
	c->system_len = 300;
	c->seed = 5;
}

static json_doc *body_doc(wl_request *r)
{
	json_doc *d = json_parse(buf_rptr(&r->body), buf_rlen(&r->body), 0, NULL);
	T_CHECK(d != NULL);
	return d;
}

static size_t count_words(const char *s)
{
	size_t n = 0;
	for (int in = 0; *s; s++) {
		if (*s != ' ' && !in)
			n++;
		in = *s != ' ';
	}
	return n;
}

static void test_random_chat(void)
{
	bench_config c;
	base_cfg(&c);
	char err[256];
	workload *w = workload_new(&c, "m1", err, sizeof(err));
	T_CHECK(w != NULL);
	wl_request r;
	T_EQ_INT(workload_next(w, &r), WL_READY);
	T_EQ_STR(r.path, "/v1/chat/completions");
	json_doc *d = body_doc(&r);
	const json_val *root = json_root(d);
	T_EQ_STR(json_str(json_get(root, "model"), ""), "m1");
	T_EQ_INT(json_bool(json_get(root, "stream"), 0), 1);
	T_EQ_INT(json_bool(json_get(json_get(root, "stream_options"), "include_usage"), 0), 1);
	T_EQ_INT((int)json_num(json_get(root, "max_tokens"), 0), 7);
	T_EQ_INT(json_bool(json_get(root, "ignore_eos"), 0), 1);
	T_CHECK(json_get(root, "temperature") == NULL);
	const json_val *msgs = json_get(root, "messages");
	T_EQ_INT(json_count(msgs), 1);
	T_EQ_STR(json_str(json_get(json_at(msgs, 0), "role"), ""), "user");
	T_EQ_INT(count_words(json_str(json_get(json_at(msgs, 0), "content"), "")), 10);
	json_doc_free(d);
	/* The next prompt differs. */
	wl_request r2;
	T_EQ_INT(workload_next(w, &r2), WL_READY);
	T_CHECK(buf_rlen(&r.body) != buf_rlen(&r2.body) ||
		memcmp(buf_rptr(&r.body), buf_rptr(&r2.body), buf_rlen(&r.body)) != 0);
	T_EQ_INT(workload_size(w), 0);
	wl_request_free(&r);
	wl_request_free(&r2);
	workload_free(w);
}

static void test_random_completions_no_stream(void)
{
	bench_config c;
	base_cfg(&c);
	c.endpoint = BENCH_COMPLETIONS;
	c.stream = 0;
	c.temperature = 0;
	c.max_tokens = 3;
	char err[256];
	workload *w = workload_new(&c, "m1", err, sizeof(err));
	wl_request r;
	T_EQ_INT(workload_next(w, &r), WL_READY);
	T_EQ_STR(r.path, "/v1/completions");
	json_doc *d = body_doc(&r);
	const json_val *root = json_root(d);
	T_CHECK(json_is(json_get(root, "prompt"), JSON_STRING));
	T_CHECK(json_get(root, "stream_options") == NULL);
	T_EQ_INT((int)json_num(json_get(root, "max_tokens"), 0), 3);
	T_CHECK(json_is(json_get(root, "temperature"), JSON_NUMBER));
	json_doc_free(d);
	wl_request_free(&r);
	workload_free(w);
}

static void test_shared_prefix_conversation(void)
{
	bench_config c;
	base_cfg(&c);
	c.workload = WL_SHARED_PREFIX;
	char err[256];
	workload *w = workload_new(&c, "m", err, sizeof(err));
	T_CHECK(w != NULL);
	T_EQ_INT(workload_size(w), 8);
	T_EQ_INT(workload_wants_answers(w), 1);

	/* Four conversations, each first turn; then nothing until one finishes. */
	wl_request first[4];
	char sys_of_group[2][400] = {"", ""};
	int seen[4] = {0};
	for (int i = 0; i < 4; i++) {
		T_EQ_INT(workload_next(w, &first[i]), WL_READY);
		T_EQ_INT(first[i].turn, 0);
		T_CHECK(first[i].conv >= 0 && first[i].conv < 4);
		seen[first[i].conv]++;
		json_doc *d = body_doc(&first[i]);
		const json_val *msgs = json_get(json_root(d), "messages");
		T_EQ_INT(json_count(msgs), 2);
		const char *sys = json_str(json_get(json_at(msgs, 0), "content"), "");
		T_EQ_INT(strlen(sys), 300);
		int g = first[i].conv % 2;
		if (!sys_of_group[g][0])
			str_copy(sys_of_group[g], sys, sizeof(sys_of_group[g]));
		else
			T_EQ_STR(sys, sys_of_group[g]); /* same group, same system prompt */
		json_doc_free(d);
	}
	T_CHECK(strcmp(sys_of_group[0], sys_of_group[1]) != 0);
	for (int i = 0; i < 4; i++)
		T_EQ_INT(seen[i], 1);
	wl_request r;
	T_EQ_INT(workload_next(w, &r), WL_WAIT);

	/* Conversation A answers; its follow-up carries system, user, answer, user. */
	int a = first[0].conv;
	json_doc *d0 = body_doc(&first[0]);
	const char *u0 = json_str(json_get(json_at(json_get(json_root(d0), "messages"), 1), "content"), "");
	T_EQ_INT(workload_finish(w, a, 1, "the answer", 10), 0);
	T_EQ_INT(workload_next(w, &r), WL_READY);
	T_EQ_INT(r.conv, a);
	T_EQ_INT(r.turn, 1);
	json_doc *d = body_doc(&r);
	const json_val *msgs = json_get(json_root(d), "messages");
	T_EQ_INT(json_count(msgs), 4);
	T_EQ_STR(json_str(json_get(json_at(msgs, 0), "role"), ""), "system");
	T_EQ_STR(json_str(json_get(json_at(msgs, 0), "content"), ""), sys_of_group[a % 2]);
	T_EQ_STR(json_str(json_get(json_at(msgs, 1), "content"), ""), u0);
	T_EQ_STR(json_str(json_get(json_at(msgs, 2), "role"), ""), "assistant");
	T_EQ_STR(json_str(json_get(json_at(msgs, 2), "content"), ""), "the answer");
	T_EQ_STR(json_str(json_get(json_at(msgs, 3), "role"), ""), "user");
	T_CHECK(strcmp(json_str(json_get(json_at(msgs, 3), "content"), ""), u0) != 0);
	json_doc_free(d);
	json_doc_free(d0);

	/* A failed turn ends its conversation. */
	T_EQ_INT(workload_finish(w, first[1].conv, 0, NULL, 0), 1);
	T_EQ_INT(workload_finish(w, a, 1, "second", 6), 0); /* A is done: 2 turns */
	T_EQ_INT(workload_finish(w, first[2].conv, 1, "x", 1), 0);
	T_EQ_INT(workload_finish(w, first[3].conv, 1, "y", 1), 0);
	wl_request r3, r4;
	T_EQ_INT(workload_next(w, &r3), WL_READY);
	T_EQ_INT(workload_next(w, &r4), WL_READY);
	T_EQ_INT(r3.turn, 1);
	T_EQ_INT(r4.turn, 1);
	wl_request r5;
	T_EQ_INT(workload_next(w, &r5), WL_WAIT);
	workload_finish(w, r3.conv, 1, "z", 1);
	workload_finish(w, r4.conv, 1, "z", 1);
	T_EQ_INT(workload_next(w, &r5), WL_EXHAUSTED);
	for (int i = 0; i < 4; i++)
		wl_request_free(&first[i]);
	wl_request_free(&r);
	wl_request_free(&r3);
	wl_request_free(&r4);
	workload_free(w);
}

static void test_shared_prefix_completions(void)
{
	bench_config c;
	base_cfg(&c);
	c.workload = WL_SHARED_PREFIX;
	c.endpoint = BENCH_COMPLETIONS;
	c.groups = 1;
	c.users = 1;
	char err[256];
	workload *w = workload_new(&c, "m", err, sizeof(err));
	wl_request r;
	T_EQ_INT(workload_next(w, &r), WL_READY);
	wl_request_free(&r);
	workload_finish(w, 0, 1, "ANSWER-ONE", 10);
	T_EQ_INT(workload_next(w, &r), WL_READY);
	json_doc *d = body_doc(&r);
	const char *p = json_str(json_get(json_root(d), "prompt"), "");
	T_CHECK(strstr(p, "Assistant: ANSWER-ONE\nUser: ") != NULL);
	T_CHECK(strncmp(p, "You are assistant 0. ", 21) == 0);
	json_doc_free(d);
	wl_request_free(&r);
	workload_free(w);
}

static void test_file(void)
{
	char path[] = "/tmp/test_bench_workload_XXXXXX";
	int fd = mkstemp(path);
	T_CHECK(fd >= 0);
	const char text[] =
		"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5}\n"
		"\n"
		"{\"prompt\":\"once\",\"model\":\"other\",\"stream\":false}\r\n";
	T_EQ_INT(write(fd, text, sizeof(text) - 1), (long)(sizeof(text) - 1));
	close(fd);
	bench_config c;
	base_cfg(&c);
	c.workload = WL_FILE;
	c.file = path;
	c.max_tokens = 9;
	c.temperature = 0.5;
	char err[256];
	workload *w = workload_new(&c, "m", err, sizeof(err));
	T_CHECK(w != NULL);
	T_EQ_INT(workload_size(w), 2);
	wl_request r;
	T_EQ_INT(workload_next(w, &r), WL_READY);
	T_EQ_STR(r.path, "/v1/chat/completions");
	json_doc *d = body_doc(&r);
	const json_val *root = json_root(d);
	T_EQ_INT((int)json_num(json_get(root, "max_tokens"), 0), 5); /* kept */
	T_EQ_STR(json_str(json_get(root, "model"), ""), "m");        /* filled */
	T_EQ_INT(json_bool(json_get(root, "stream"), 0), 1);
	T_CHECK(json_get(root, "stream_options") != NULL);
	T_CHECK(json_get(root, "ignore_eos") == NULL);
	json_doc_free(d);
	wl_request_free(&r);
	T_EQ_INT(workload_next(w, &r), WL_READY);
	T_EQ_STR(r.path, "/v1/completions");
	d = body_doc(&r);
	root = json_root(d);
	T_EQ_STR(json_str(json_get(root, "model"), ""), "other");
	T_EQ_INT(json_bool(json_get(root, "stream"), 1), 0);
	T_CHECK(json_get(root, "stream_options") == NULL);
	T_EQ_INT((int)json_num(json_get(root, "max_tokens"), 0), 9);
	json_doc_free(d);
	wl_request_free(&r);
	T_EQ_INT(workload_next(w, &r), WL_EXHAUSTED);
	workload_free(w);

	/* A bad line is named. */
	FILE *f = fopen(path, "w");
	fputs("{\"prompt\":\"a\"}\n[1,2]\n", f);
	fclose(f);
	T_CHECK(workload_new(&c, "m", err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, ":2:") != NULL);
	f = fopen(path, "w");
	fputs("{\"input\":\"a\"}\n", f);
	fclose(f);
	T_CHECK(workload_new(&c, "m", err, sizeof(err)) == NULL);
	T_CHECK(strstr(err, "messages") != NULL);
	unlink(path);
}

int main(void)
{
	T_RUN(test_random_chat);
	T_RUN(test_random_completions_no_stream);
	T_RUN(test_shared_prefix_conversation);
	T_RUN(test_shared_prefix_completions);
	T_RUN(test_file);
	return T_END();
}
