/*
 * test_sse.c — the SSE parser gives the same events for every split of the
 * input (including one byte at a time and inside \r\n), follows the WHATWG
 * line rules, holds its caps; the writers' exact output reads back.
 */
#include "core/sse.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

typedef struct got {
	buf log; /* "event|data|id\n" per event */
	int stop_after;
	int n;
} got;

static int on_event(void *arg, const char *event, const char *data, size_t len, const char *id)
{
	got *g = arg;
	T_EQ_INT(strlen(data) <= len, 1);
	buf_printf(&g->log, "%s|", event);
	buf_append(&g->log, data, len);
	buf_printf(&g->log, "|%s\n", id);
	g->n++;
	return g->stop_after && g->n >= g->stop_after;
}

/* Parses text fed in pieces cut at a and b; returns the log (caller frees). */
static char *run(const char *text, size_t n, size_t a, size_t b, size_t max, int *rc_out)
{
	got g = {0};
	buf_init(&g.log, 0);
	sse_parser p;
	sse_parser_init(&p, max, on_event, &g);
	int rc = sse_feed(&p, text, a);
	if (rc == 0)
		rc = sse_feed(&p, text + a, b - a);
	if (rc == 0)
		rc = sse_feed(&p, text + b, n - b);
	if (rc_out)
		*rc_out = rc;
	sse_parser_free(&p);
	size_t len;
	char *s = buf_detach(&g.log, &len);
	buf_free(&g.log);
	return s;
}

static const struct {
	const char *text;
	const char *want;
} cases[] = {
	{"data: {\"a\":1}\n\ndata: [DONE]\n\n", "message|{\"a\":1}|\nmessage|[DONE]|\n"},
	{"data: x\r\n\r\ndata: y\r\rdata: z\n\n", "message|x|\nmessage|y|\nmessage|z|\n"},
	{"data:line1\ndata: line2\ndata\n\n", "message|line1\nline2\n|\n"},
	{": comment\n\n:ping\ndata: a\n\n", "message|a|\n"},
	{"event: add\nid: 7\ndata: x\n\ndata: y\n\n", "add|x|7\nmessage|y|7\n"},
	{"event: e\n\ndata: after\n\n", "message|after|\n"},
	{"data:  two spaces\n\n", "message| two spaces|\n"},
	{"retry: 10\nfoo: bar\ndata: ok\n\n", "message|ok|\n"},
	{"data: unfinished\n", ""},
	{"data: no end", ""},
	{"\xEF\xBB\xBF"
	 "data: bom\n\n",
	 "message|bom|\n"},
	{"data: \xEF\xBB\xBF\n\n", "message|\xEF\xBB\xBF|\n"},
	{"data:\n\n", "message||\n"},
	{"\n\n\ndata: a\n\n\n\n", "message|a|\n"},
	{"data: a\r\n\r\n\r\n", "message|a|\n"},
	{"id: 1\ndata: a\n\nid\ndata: b\n\n", "message|a|1\nmessage|b|\n"},
};

static void test_every_split(void)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const char *t = cases[k].text;
		size_t n = strlen(t);
		int bad = 0;
		for (size_t a = 0; a <= n; a++) {
			for (size_t b = a; b <= n; b++) {
				int rc;
				char *s = run(t, n, a, b, 0, &rc);
				if (rc != 0 || strcmp(s, cases[k].want)) {
					if (!bad)
						fprintf(stderr, "  case %zu split %zu/%zu: got \"%s\"\n", k, a, b, s);
					bad++;
				}
				free(s);
			}
		}
		T_EQ_INT(bad, 0);
	}
}

static void test_byte_at_a_time(void)
{
	const char *t = "event: x\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\r";
	got g = {0};
	buf_init(&g.log, 0);
	sse_parser p;
	sse_parser_init(&p, 0, on_event, &g);
	for (size_t i = 0; t[i]; i++)
		T_EQ_INT(sse_feed(&p, t + i, 1), 0);
	T_EQ_STR(buf_rptr(&g.log), "x|1\n2|\nmessage|3|\n");
	T_EQ_INT(p.events_total, 2);
	sse_parser_free(&p);
	buf_free(&g.log);
}

static void test_caps_and_stop(void)
{
	/* A line over the cap fails, also when split, and stays failed. */
	char big[300];
	memset(big, 'x', sizeof(big));
	memcpy(big, "data: ", 6);
	big[sizeof(big) - 1] = '\n';
	int rc;
	char *s = run(big, sizeof(big), 0, 0, 100, &rc);
	T_EQ_INT(rc, -1);
	free(s);
	s = run(big, sizeof(big), 50, 150, 100, &rc);
	T_EQ_INT(rc, -1);
	free(s);
	/* Many short data lines add up past the cap. */
	buf b;
	buf_init(&b, 0);
	for (int i = 0; i < 50; i++)
		buf_puts(&b, "data: 0123456789\n");
	s = run(buf_rptr(&b), buf_rlen(&b), 0, 0, 100, &rc);
	T_EQ_INT(rc, -1);
	free(s);
	buf_free(&b);

	sse_parser p;
	got g = {0};
	buf_init(&g.log, 0);
	sse_parser_init(&p, 10, on_event, &g);
	T_EQ_INT(sse_feed(&p, "data: 0123456789\n", 17), -1);
	T_EQ_INT(sse_feed(&p, "\n", 1), -1);
	sse_parser_free(&p);

	/* The callback stops the parse. */
	g.stop_after = 1;
	g.n = 0;
	sse_parser_init(&p, 0, on_event, &g);
	T_EQ_INT(sse_feed(&p, "data: a\n\ndata: b\n\n", 18), 1);
	T_EQ_INT(g.n, 1);
	sse_parser_free(&p);
	buf_free(&g.log);
}

static void test_writers(void)
{
	buf out;
	buf_init(&out, 0);
	T_EQ_INT(sse_write_data(&out, "{\"a\":1}", 7), 0);
	T_EQ_INT(sse_write_done(&out), 0);
	T_EQ_STR(buf_rptr(&out), "data: {\"a\":1}\n\ndata: [DONE]\n\n");
	buf_reset(&out);
	T_EQ_INT(sse_write_data(&out, "a\nb\r\nc\rd", 8), 0);
	T_EQ_INT(sse_write_event(&out, "error", "{}", 2), 0);
	T_EQ_INT(sse_write_comment(&out, "ping"), 0);
	T_EQ_STR(buf_rptr(&out), "data: a\ndata: b\ndata: c\ndata: d\n\nevent: error\ndata: {}\n\n: ping\n\n");
	/* It reads back. */
	char *s = run(buf_rptr(&out), buf_rlen(&out), 0, 0, 0, NULL);
	T_EQ_STR(s, "message|a\nb\nc\nd|\nerror|{}|\n");
	free(s);
	buf_free(&out);

	/* At the cap, nothing is half-written. */
	buf small;
	buf_init(&small, 20);
	T_EQ_INT(sse_write_data(&small, "0123456", 7), 0);
	size_t before = buf_rlen(&small);
	T_EQ_INT(sse_write_data(&small, "0123456789", 10), -1);
	T_EQ_INT(buf_rlen(&small), before);
	T_EQ_STR(buf_rptr(&small), "data: 0123456\n\n");
	buf_free(&small);
}

int main(void)
{
	T_RUN(test_every_split);
	T_RUN(test_byte_at_a_time);
	T_RUN(test_caps_and_stop);
	T_RUN(test_writers);
	return T_END();
}
