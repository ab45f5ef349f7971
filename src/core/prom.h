/*
 * prom.h — the one metrics library: a registry of counters, gauges and
 * histograms with labels, written as Prometheus text format 0.0.4 (prom.c), and
 * the parser of that format used to scrape model servers (prom_parse.c).
 *
 * Registry: families are registered at start-up; a series (one set of label
 * values) is looked up or created with prom_series_get and its pointer may be
 * cached for the life of the registry, unless it is removed with
 * prom_series_remove (then the pointer is dead). Every update and prom_write
 * take the registry's mutex, so an engine thread may update metrics while the
 * HTTP thread writes them out (a one-thread program may waive it:
 * prom_registry_single_thread). The series found last in a family is checked
 * before the hash, so a caller that updates one series over and over pays a
 * few string compares per lookup. Caps: PROM_MAX_SERIES per family (further label
 * sets share one hidden series that is never written), PROM_MAX_LABELS names.
 *
 * Numbers are written in the shortest form that reads back exactly ("1",
 * "0.0421", "1e+21"), and "+Inf", "-Inf", "NaN".
 */
#ifndef CORE_PROM_H
#define CORE_PROM_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

#define PROM_MAX_LABELS 16
#define PROM_MAX_SERIES 10000
#define PROM_MAX_BUCKETS 64

typedef enum prom_type { PROM_COUNTER,
			 PROM_GAUGE,
			 PROM_HISTOGRAM,
			 PROM_UNTYPED } prom_type;

typedef struct prom_registry prom_registry;
typedef struct prom_family prom_family;
typedef struct prom_series prom_series;

/* A registry and everything in it; freed at once by prom_registry_free. */
prom_registry *prom_registry_new(void);
void prom_registry_free(prom_registry *reg);
/* For a program whose every update and write happen on one thread (the
 * gateway's event loop): the registry's mutex is not taken from then on. Call
 * it before the first update. */
void prom_registry_single_thread(prom_registry *reg);

/*
 * Registers a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]* (counters should
 * end in _total), labels is a NULL-terminated list of names matching
 * [a-zA-Z_][a-zA-Z0-9_]* (NULL: no labels; "le" is refused for histograms).
 * Histograms take n_bounds strictly increasing finite upper bounds (+Inf is
 * implicit). Registering a name again with the same type and labels returns the
 * existing family. Returns NULL on a bad argument or out of memory.
 */
prom_family *prom_counter(prom_registry *reg, const char *name, const char *help, const char *const labels[]);
prom_family *prom_gauge(prom_registry *reg, const char *name, const char *help, const char *const labels[]);
prom_family *prom_histogram(prom_registry *reg, const char *name, const char *help, const char *const labels[],
			    const double *bounds, size_t n_bounds);

/* The series of these label values (one per label name; NULL for none), created
 * on first use. Never returns NULL: when the family is NULL, memory runs out or
 * PROM_MAX_SERIES is reached, a sink series that is never written is returned. */
prom_series *prom_series_get(prom_family *fam, const char *const values[]);
/* Removes the series (e.g. an endpoint that left); its cached pointers die.
 * Returns 0, or -1 when there was no such series. */
int prom_series_remove(prom_family *fam, const char *const values[]);

void prom_inc(prom_series *s);           /* counter or gauge += 1 */
void prom_add(prom_series *s, double v); /* counter (v >= 0) or gauge += v */
void prom_set(prom_series *s, double v); /* gauge = v */
/* Mirrors a running total kept elsewhere into counter s: adds what total grew
 * since *exported (nothing when it shrank) and sets *exported = total. */
void prom_add_total(prom_series *s, uint64_t total, uint64_t *exported);
void prom_observe(prom_series *s, double v); /* histogram */
double prom_value(prom_series *s);           /* counter/gauge value, histogram count */

/* A gauge whose value is computed when metrics are written. fn runs with the
 * registry locked: it must not call prom_* functions. fn NULL removes it. */
typedef double prom_gauge_fn(void *arg);
void prom_series_set_fn(prom_series *s, prom_gauge_fn *fn, void *arg);
/* Called at the start of every prom_write, without the lock held, so a program
 * can refresh many gauges at once (fn may call prom_set). */
typedef void prom_collect_fn(prom_registry *reg, void *arg);
void prom_registry_on_write(prom_registry *reg, prom_collect_fn *fn, void *arg);

/* Appends every family in registration order to out. Returns 0, or -1 when out
 * hit its cap (what fitted stays in out). */
int prom_write(prom_registry *reg, buf *out);
/* Content-Type of the text format. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Formats v as the writer does ("+Inf", "NaN", shortest round trip); returns
 * the length. out needs 40 bytes. */
int prom_format_value(char *out, size_t size, double v);

/* ---------------------------------------------------------------- parser */

#define PROM_PARSE_MAX_LINE 65536      /* bytes per line */
#define PROM_PARSE_MAX_LABELS 64       /* labels per sample */
#define PROM_PARSE_MAX_SAMPLES 1000000 /* samples per text */

typedef struct prom_label {
	const char *name, *value;
} prom_label;

/* One sample. Strings are NUL-terminated (label values unescaped) and live only
 * during the callback. */
typedef struct prom_sample {
	const char *name;
	const prom_label *labels;
	size_t n_labels;
	double value; /* may be +Inf, -Inf, NaN */
	int has_timestamp;
	int64_t timestamp_ms;
	/* The type from the last "# TYPE" line when it names this sample's family
	 * (name, or name minus _bucket/_sum/_count/_total/_created), else PROM_UNTYPED. */
	prom_type type;
	uint32_t line;
} prom_sample;

/* Returns 0 to go on, non-zero to stop parsing (prom_parse then returns the
 * samples seen so far). */
typedef int prom_sample_fn(void *arg, const prom_sample *s);

/* Parses len bytes of text format (need not be NUL-terminated): samples go to
 * fn; # HELP, # TYPE and other comments, empty lines and \r before \n are
 * skipped. Returns the number of samples, or -1 with "line N: what" in err
 * (samples before the bad line have been delivered). */
int prom_parse(const char *text, size_t len, prom_sample_fn *fn, void *arg, char *err, size_t errlen);
/* The label's value in s, or NULL. */
const char *prom_sample_label(const prom_sample *s, const char *name);

#endif
