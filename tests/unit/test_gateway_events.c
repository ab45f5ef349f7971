/*
 * test_gateway_events.c — the gateway's ring of recent events (events.c):
 * order and ids, the cap (the oldest falls out), repeats folded into a count
 * within EVENTS_COALESCE_MS and not after, the listener, the JSON form.
 */
#include "gateway/events.c"
#include "t.h"

/* The text of event i, NULL past the end (a failed check, not a crash). */
static const char *event_text(size_t i)
{
	const gw_event *e = events_at(i);
	return e ? e->text : NULL;
}

static int heard;
static uint64_t heard_id;
static uint32_t heard_count;

static void listener(const gw_event *ev, void *arg)
{
	(void)arg;
	heard++;
	heard_id = ev->id;
	heard_count = ev->count;
}

static void test_order_and_cap(void)
{
	events_clear();
	char text[32];
	for (int i = 0; i < EVENTS_RING + 10; i++) {
		snprintf(text, sizeof text, "event %d", i);
		events_push_at(1000 + (uint64_t)i, "health", "p", "127.0.0.1:1", text);
	}
	T_EQ_INT(events_count(), EVENTS_RING);
	T_EQ_STR(event_text(0), "event 10"); /* the ten oldest fell out */
	T_EQ_STR(event_text(EVENTS_RING - 1), "event 265");
	T_CHECK(events_at(1)->id == events_at(0)->id + 1);
	T_CHECK(events_at(EVENTS_RING) == NULL);
}

static void test_coalesce(void)
{
	events_clear();
	events_set_listener(listener, NULL);
	heard = 0;
	const gw_event *a = events_push_at(5000, "shed", "p", "batch", "429");
	uint64_t id = a->id;
	const gw_event *b = events_push_at(5600, "shed", "p", "batch", "429");
	T_EQ_INT(events_count(), 1);
	T_CHECK(b->id == id);
	T_EQ_INT(b->count, 2);
	T_EQ_INT(b->first_wall_ms, 5000);
	T_EQ_INT(b->last_wall_ms, 5600);
	T_EQ_INT(heard, 2);
	T_CHECK(heard_id == id);
	T_EQ_INT(heard_count, 2);
	/* within a second of the last repeat, not of the first */
	events_push_at(6500, "shed", "p", "batch", "429");
	T_EQ_INT(events_count(), 1);
	T_EQ_INT(events_at(0)->count, 3);
	/* over a second later: a new line */
	events_push_at(7600, "shed", "p", "batch", "429");
	T_EQ_INT(events_count(), 2);
	/* another subject, pool or kind is another event */
	events_push_at(7601, "shed", "p", "critical", "429");
	events_push_at(7602, "shed", "q", "critical", "429");
	events_push_at(7603, "retry", "q", "critical", "429");
	T_EQ_INT(events_count(), 5);
	/* a repeat of an older event (not the newest) is a new line */
	events_push_at(7604, "shed", "p", "batch", "429");
	T_EQ_INT(events_count(), 6);
	/* a clock that went back does not fold */
	events_push_at(7000, "shed", "p", "batch", "429");
	T_EQ_INT(events_count(), 7);
	events_set_listener(NULL, NULL);
}

static void test_null_and_long(void)
{
	events_clear();
	char big[400];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	const gw_event *e = events_push_at(1, "reload", NULL, NULL, big);
	T_EQ_STR(e->pool, "");
	T_EQ_STR(e->subject, "");
	T_EQ_INT(strlen(e->text), EVENTS_TEXT_LEN - 1);
	/* the same long text again folds (compared as stored) */
	events_push_at(2, "reload", NULL, NULL, big);
	T_EQ_INT(events_count(), 1);
	T_EQ_INT(events_at(0)->count, 2);
	events_push("reload", NULL, "/etc/ig.yaml", "refused: %s at line %d", "bad", 3);
	T_EQ_STR(event_text(1), "refused: bad at line 3");
	T_CHECK(events_at(1)->first_wall_ms > 1000000000000ull); /* the wall clock, in ms */
}

static void test_json(void)
{
	events_clear();
	const gw_event *e = events_push_at(1234, "health", "pool \"a\"", "127.0.0.1:9", "up -> down (status 503)");
	buf b;
	buf_init(&b, 0);
	json_w w;
	jw_init(&w, &b);
	events_write(&w, e);
	buf_puts(&b, "");
	json_error je;
	json_doc *d = json_parse(buf_rptr(&b), buf_rlen(&b), 8, &je);
	T_CHECK(d != NULL);
	if (d) {
		const json_val *r = json_root(d);
		T_EQ_STR(json_str(json_get(r, "kind"), NULL), "health");
		T_EQ_STR(json_str(json_get(r, "pool"), NULL), "pool \"a\"");
		T_EQ_STR(json_str(json_get(r, "text"), NULL), "up -> down (status 503)");
		int64_t v = 0;
		T_CHECK(json_int64(json_get(r, "time_ms"), &v) == 0 && v == 1234);
		T_CHECK(json_int64(json_get(r, "count"), &v) == 0 && v == 1);
		json_doc_free(d);
	}
	buf_free(&b);
}

int main(void)
{
	T_RUN(test_order_and_cap);
	T_RUN(test_coalesce);
	T_RUN(test_null_and_long);
	T_RUN(test_json);
	return T_END();
}
