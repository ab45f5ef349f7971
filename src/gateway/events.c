/*
 * events.c — the bounded ring of the gateway's recent events (events.h).
 * One ring per process, touched only from the loop thread.
 */
#include "gateway/events.h"
#include "core/json.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static struct {
	gw_event ring[EVENTS_RING];
	size_t head; /* slot of the oldest */
	size_t n;
	uint64_t next_id;
	events_listener_fn *fn;
	void *arg;
} ev_ring;

size_t events_count(void)
{
	return ev_ring.n;
}

const gw_event *events_at(size_t i)
{
	if (i >= ev_ring.n) return NULL;
	return &ev_ring.ring[(ev_ring.head + i) % EVENTS_RING];
}

void events_set_listener(events_listener_fn *fn, void *arg)
{
	ev_ring.fn = fn;
	ev_ring.arg = arg;
}

void events_clear(void)
{
	ev_ring.head = ev_ring.n = 0;
}

static int same(const gw_event *e, const char *kind, const char *pool, const char *subject, const char *text)
{
	return !strcmp(e->kind, kind) && !strcmp(e->pool, pool) && !strcmp(e->subject, subject) &&
	       !strncmp(e->text, text, sizeof(e->text) - 1);
}

const gw_event *events_push_at(uint64_t wall_ms, const char *kind, const char *pool, const char *subject,
			       const char *text)
{
	if (!pool) pool = "";
	if (!subject) subject = "";
	gw_event *last = ev_ring.n ? (gw_event *)events_at(ev_ring.n - 1) : NULL;
	if (last && same(last, kind, pool, subject, text) && wall_ms >= last->last_wall_ms &&
	    wall_ms - last->last_wall_ms <= EVENTS_COALESCE_MS) {
		last->count++;
		last->last_wall_ms = wall_ms;
		if (ev_ring.fn) ev_ring.fn(last, ev_ring.arg);
		return last;
	}
	gw_event *e;
	if (ev_ring.n < EVENTS_RING) {
		e = &ev_ring.ring[(ev_ring.head + ev_ring.n) % EVENTS_RING];
		ev_ring.n++;
	} else {
		e = &ev_ring.ring[ev_ring.head]; /* the oldest goes */
		ev_ring.head = (ev_ring.head + 1) % EVENTS_RING;
	}
	memset(e, 0, sizeof(*e));
	e->id = ++ev_ring.next_id;
	e->first_wall_ms = e->last_wall_ms = wall_ms;
	e->count = 1;
	str_copy(e->kind, kind, sizeof(e->kind));
	str_copy(e->pool, pool, sizeof(e->pool));
	str_copy(e->subject, subject, sizeof(e->subject));
	str_copy(e->text, text, sizeof(e->text));
	if (ev_ring.fn) ev_ring.fn(e, ev_ring.arg);
	return e;
}

void events_push(const char *kind, const char *pool, const char *subject, const char *fmt, ...)
{
	char text[EVENTS_TEXT_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	events_push_at(time_wall_ms(), kind, pool, subject, text);
}

void events_write(json_w *w, const gw_event *ev)
{
	jw_obj_begin(w);
	jw_key(w, "id");
	jw_uint(w, ev->id);
	jw_key(w, "time_ms");
	jw_uint(w, ev->first_wall_ms);
	jw_key(w, "last_ms");
	jw_uint(w, ev->last_wall_ms);
	jw_key(w, "count");
	jw_uint(w, ev->count);
	jw_key(w, "kind");
	jw_str(w, ev->kind);
	jw_key(w, "pool");
	jw_str(w, ev->pool);
	jw_key(w, "subject");
	jw_str(w, ev->subject);
	jw_key(w, "text");
	jw_str(w, ev->text);
	jw_obj_end(w);
}
