/*
 * events.h — the gateway's recent events, kept for the dashboard: health
 * changes, ejections, spills and returns of a region, reloads, retries,
 * resumes of broken streams, sheds (429).
 *
 * A bounded ring of EVENTS_RING entries, newest last; the oldest falls out.
 * An event that repeats the newest one (same kind, pool, subject and text)
 * within EVENTS_COALESCE_MS bumps its count instead of taking a new slot, so
 * a storm of sheds or retries is one line that counts, not a flushed ring.
 * One listener (the dashboard) hears each push as it happens.
 *
 * Usage: events_push("health", pool, endpoint, "down (%s)", why) from the
 * loop thread, anywhere. Not here: sending them (dashboard.c).
 */
#ifndef GATEWAY_EVENTS_H
#define GATEWAY_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#define EVENTS_RING 256
#define EVENTS_COALESCE_MS 1000
#define EVENTS_TEXT_LEN 160

struct json_w;

typedef struct gw_event {
	uint64_t id;            /* 1, 2, ... in push order; a coalesced repeat keeps its id */
	uint64_t first_wall_ms; /* wall clock, ms since the epoch */
	uint64_t last_wall_ms;  /* of the latest repeat */
	uint32_t count;         /* 1 + repeats folded in */
	char kind[16];          /* health, ejection, spill, return, reload, retry, resume, shed */
	char pool[64];
	char subject[96]; /* endpoint or region; "" for the gateway itself */
	char text[EVENTS_TEXT_LEN];
} gw_event;

/* Called after each push with the event as it now stands (new or bumped). */
typedef void events_listener_fn(const gw_event *ev, void *arg);

/* Records one event at the wall clock now; pool and subject may be NULL. */
void events_push(const char *kind, const char *pool, const char *subject, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same with an explicit clock (tests). Returns the event as it stands. */
const gw_event *events_push_at(uint64_t wall_ms, const char *kind, const char *pool, const char *subject,
			       const char *text);
/* Events held now, oldest first: events_at(0) .. events_at(events_count() - 1). */
size_t events_count(void);
const gw_event *events_at(size_t i);
/* Writes ev as a JSON object. */
void events_write(struct json_w *w, const gw_event *ev);
void events_set_listener(events_listener_fn *fn, void *arg);
/* Forgets every event (tests, exit). */
void events_clear(void);

#endif
