/*
 * prom.c — the metrics registry and its Prometheus text writer (prom.h).
 *
 * A registry is a list of families; a family holds its series in an array of
 * pointers (each series allocated alone, so cached pointers stay valid while
 * the array grows). Lookups compare a hash of the label values first. One mutex
 * per registry guards values and structure: updates are a lock, a few adds and
 * an unlock. Not here: summaries, exemplars, OpenMetrics.
 */
#include "core/prom.h"
#include "core/json.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prom_series {
	prom_family *fam; /* NULL for the global sink */
	char **values;    /* n_labels label values */
	uint64_t hash;
	int hidden;        /* a sink: updated but never written */
	double value;      /* counter/gauge; histogram sum */
	uint64_t count;    /* histogram observations */
	uint64_t *buckets; /* histogram: n_bounds + 1 counts, not cumulative */
	prom_gauge_fn *fn;
	void *fn_arg;
};

struct prom_family {
	prom_registry *reg;
	prom_family *next;
	prom_type type;
	char *name, *help;
	char **labels;
	size_t n_labels;
	double *bounds;
	size_t n_bounds;
	prom_series **series;
	size_t n_series, cap_series;
	prom_series *sink; /* shared by label sets past the cap */
	prom_series *last; /* the series prom_series_get found last: checked first */
};

struct prom_registry {
	pthread_mutex_t mu;
	int single_thread; /* prom_registry_single_thread: mu is not taken */
	prom_family *first, *last;
	prom_collect_fn *collect;
	void *collect_arg;
};

static prom_series global_sink;

static inline void reg_lock(prom_registry *reg)
{
	if (!reg->single_thread) pthread_mutex_lock(&reg->mu);
}

static inline void reg_unlock(prom_registry *reg)
{
	if (!reg->single_thread) pthread_mutex_unlock(&reg->mu);
}

void prom_registry_single_thread(prom_registry *reg)
{
	reg->single_thread = 1;
}

prom_registry *prom_registry_new(void)
{
	prom_registry *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	pthread_mutex_init(&reg->mu, NULL);
	return reg;
}

static void series_free(prom_series *s, size_t n_labels)
{
	if (!s)
		return;
	if (s->values)
		for (size_t i = 0; i < n_labels; i++)
			free(s->values[i]);
	free(s->values);
	free(s->buckets);
	free(s);
}

static void family_free(prom_family *f)
{
	for (size_t i = 0; i < f->n_series; i++)
		series_free(f->series[i], f->n_labels);
	series_free(f->sink, 0);
	free(f->series);
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->labels);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
}

void prom_registry_free(prom_registry *reg)
{
	if (!reg)
		return;
	prom_family *f = reg->first;
	while (f) {
		prom_family *n = f->next;
		family_free(f);
		f = n;
	}
	pthread_mutex_destroy(&reg->mu);
	free(reg);
}

static int valid_name(const char *s, int colon_ok)
{
	if (!s || !*s)
		return 0;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':') ||
			 (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

static char *dup_s(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);
	if (d)
		memcpy(d, s, n + 1);
	return d;
}

static int same_labels(const prom_family *f, const char *const labels[])
{
	size_t n = 0;
	while (labels && labels[n])
		n++;
	if (n != f->n_labels)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(labels[i], f->labels[i]))
			return 0;
	return 1;
}

static prom_family *family_new(prom_registry *reg, prom_type type, const char *name, const char *help,
			       const char *const labels[], const double *bounds, size_t n_bounds)
{
	if (!reg || !valid_name(name, 1))
		return NULL;
	size_t n = 0;
	while (labels && labels[n]) {
		if (!valid_name(labels[n], 0) || (type == PROM_HISTOGRAM && !strcmp(labels[n], "le")))
			return NULL;
		for (size_t j = 0; j < n; j++)
			if (!strcmp(labels[j], labels[n]))
				return NULL;
		n++;
	}
	if (n > PROM_MAX_LABELS)
		return NULL;
	if (type == PROM_HISTOGRAM) {
		if (n_bounds > PROM_MAX_BUCKETS || (n_bounds && !bounds))
			return NULL;
		for (size_t i = 0; i < n_bounds; i++)
			if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
				return NULL;
	}
	reg_lock(reg);
	for (prom_family *f = reg->first; f; f = f->next) {
		if (strcmp(f->name, name))
			continue;
		int same = f->type == type && same_labels(f, labels) &&
			   (type != PROM_HISTOGRAM || (f->n_bounds == n_bounds &&
						       (!n_bounds || !memcmp(f->bounds, bounds, n_bounds * sizeof(double)))));
		reg_unlock(reg);
		return same ? f : NULL;
	}
	prom_family *f = calloc(1, sizeof(*f));
	if (!f)
		goto fail;
	f->reg = reg;
	f->type = type;
	f->name = dup_s(name);
	f->help = dup_s(help ? help : "");
	f->labels = calloc(n ? n : 1, sizeof(char *));
	if (!f->name || !f->help || !f->labels)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (!(f->labels[i] = dup_s(labels[i])))
			goto fail;
		f->n_labels = i + 1;
	}
	if (type == PROM_HISTOGRAM && n_bounds) {
		f->bounds = malloc(n_bounds * sizeof(double));
		if (!f->bounds)
			goto fail;
		memcpy(f->bounds, bounds, n_bounds * sizeof(double));
		f->n_bounds = n_bounds;
	}
	if (reg->last)
		reg->last->next = f;
	else
		reg->first = f;
	reg->last = f;
	reg_unlock(reg);
	return f;
fail:
	if (f)
		family_free(f);
	reg_unlock(reg);
	return NULL;
}

prom_family *prom_counter(prom_registry *reg, const char *name, const char *help, const char *const labels[])
{
	return family_new(reg, PROM_COUNTER, name, help, labels, NULL, 0);
}

prom_family *prom_gauge(prom_registry *reg, const char *name, const char *help, const char *const labels[])
{
	return family_new(reg, PROM_GAUGE, name, help, labels, NULL, 0);
}

prom_family *prom_histogram(prom_registry *reg, const char *name, const char *help, const char *const labels[],
			    const double *bounds, size_t n_bounds)
{
	return family_new(reg, PROM_HISTOGRAM, name, help, labels, bounds, n_bounds);
}

static uint64_t values_hash(const prom_family *f, const char *const values[])
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < f->n_labels; i++) {
		const char *v = values && values[i] ? values[i] : "";
		for (; *v; v++)
			h = (h ^ (unsigned char)*v) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL; /* separator */
	}
	return h;
}

static int same_values(const prom_family *f, const prom_series *s, const char *const values[])
{
	for (size_t k = 0; k < f->n_labels; k++)
		if (strcmp(s->values[k], values && values[k] ? values[k] : ""))
			return 0;
	return 1;
}

static size_t series_find(const prom_family *f, const char *const values[], uint64_t h)
{
	for (size_t i = 0; i < f->n_series; i++) {
		const prom_series *s = f->series[i];
		if (s->hash == h && same_values(f, s, values))
			return i;
	}
	return (size_t)-1;
}

static prom_series *series_alloc(const prom_family *f)
{
	prom_series *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (f->type == PROM_HISTOGRAM) {
		s->buckets = calloc(f->n_bounds + 1, sizeof(uint64_t));
		if (!s->buckets) {
			free(s);
			return NULL;
		}
	}
	return s;
}

/* The family's sink, made on first need; the registry is locked. */
static prom_series *family_sink(prom_family *f)
{
	if (!f->sink) {
		f->sink = series_alloc(f);
		if (f->sink) {
			f->sink->fam = f;
			f->sink->hidden = 1;
		}
	}
	return f->sink ? f->sink : &global_sink;
}

prom_series *prom_series_get(prom_family *f, const char *const values[])
{
	if (!f)
		return &global_sink;
	reg_lock(f->reg);
	if (f->last && same_values(f, f->last, values)) {
		prom_series *s = f->last;
		reg_unlock(f->reg);
		return s;
	}
	uint64_t h = values_hash(f, values);
	size_t i = series_find(f, values, h);
	if (i != (size_t)-1) {
		prom_series *s = f->last = f->series[i];
		reg_unlock(f->reg);
		return s;
	}
	prom_series *s = NULL;
	if (f->n_series >= PROM_MAX_SERIES)
		goto sink;
	if (f->n_series == f->cap_series) {
		size_t nc = f->cap_series ? f->cap_series * 2 : 4;
		prom_series **ns = realloc(f->series, nc * sizeof(*ns));
		if (!ns)
			goto sink;
		f->series = ns;
		f->cap_series = nc;
	}
	s = series_alloc(f);
	if (!s)
		goto sink;
	s->fam = f;
	s->hash = h;
	s->values = calloc(f->n_labels ? f->n_labels : 1, sizeof(char *));
	if (!s->values)
		goto sink;
	for (size_t k = 0; k < f->n_labels; k++)
		if (!(s->values[k] = dup_s(values && values[k] ? values[k] : "")))
			goto sink;
	f->series[f->n_series++] = s;
	f->last = s;
	reg_unlock(f->reg);
	return s;
sink:
	series_free(s, f->n_labels);
	s = family_sink(f);
	reg_unlock(f->reg);
	return s;
}

int prom_series_remove(prom_family *f, const char *const values[])
{
	if (!f)
		return -1;
	uint64_t h = values_hash(f, values);
	reg_lock(f->reg);
	size_t i = series_find(f, values, h);
	if (i == (size_t)-1) {
		reg_unlock(f->reg);
		return -1;
	}
	if (f->last == f->series[i])
		f->last = NULL;
	series_free(f->series[i], f->n_labels);
	memmove(&f->series[i], &f->series[i + 1], (f->n_series - i - 1) * sizeof(*f->series));
	f->n_series--;
	reg_unlock(f->reg);
	return 0;
}

static inline prom_registry *reg_of(prom_series *s)
{
	return s && s->fam ? s->fam->reg : NULL;
}

void prom_add(prom_series *s, double v)
{
	prom_registry *mu = reg_of(s);
	if (!mu)
		return;
	reg_lock(mu);
	if (s->fam->type == PROM_GAUGE || (s->fam->type == PROM_COUNTER && v >= 0))
		s->value += v;
	reg_unlock(mu);
}

void prom_add_total(prom_series *s, uint64_t total, uint64_t *exported)
{
	if (total > *exported)
		prom_add(s, (double)(total - *exported));
	*exported = total;
}

void prom_inc(prom_series *s)
{
	prom_add(s, 1.0);
}

void prom_set(prom_series *s, double v)
{
	prom_registry *mu = reg_of(s);
	if (!mu)
		return;
	reg_lock(mu);
	if (s->fam->type == PROM_GAUGE)
		s->value = v;
	reg_unlock(mu);
}

void prom_observe(prom_series *s, double v)
{
	prom_registry *mu = reg_of(s);
	if (!mu)
		return;
	reg_lock(mu);
	prom_family *f = s->fam;
	if (f->type == PROM_HISTOGRAM && !isnan(v)) {
		/* first bound >= v; past the last: the +Inf bucket */
		size_t lo = 0, hi = f->n_bounds;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (f->bounds[mid] >= v)
				hi = mid;
			else
				lo = mid + 1;
		}
		s->buckets[lo]++;
		s->count++;
		s->value += v;
	}
	reg_unlock(mu);
}

double prom_value(prom_series *s)
{
	prom_registry *mu = reg_of(s);
	if (!mu)
		return 0;
	reg_lock(mu);
	double v = s->fam->type == PROM_HISTOGRAM ? (double)s->count : s->fn ? s->fn(s->fn_arg)
									     : s->value;
	reg_unlock(mu);
	return v;
}

void prom_series_set_fn(prom_series *s, prom_gauge_fn *fn, void *arg)
{
	prom_registry *mu = reg_of(s);
	if (!mu)
		return;
	reg_lock(mu);
	if (s->fam->type == PROM_GAUGE) {
		s->fn = fn;
		s->fn_arg = arg;
	}
	reg_unlock(mu);
}

void prom_registry_on_write(prom_registry *reg, prom_collect_fn *fn, void *arg)
{
	reg_lock(reg);
	reg->collect = fn;
	reg->collect_arg = arg;
	reg_unlock(reg);
}

int prom_format_value(char *out, size_t size, double v)
{
	const char *s = NULL;
	if (isnan(v))
		s = "NaN";
	else if (isinf(v))
		s = v > 0 ? "+Inf" : "-Inf";
	if (s)
		return snprintf(out, size, "%s", s);
	int n = json_format_double(out, size, v);
	return n < 0 ? snprintf(out, size, "NaN") : n;
}

/* Appends a label value with \\, \" and \n escaped. */
static int put_label_value(buf *out, const char *v)
{
	const char *run = v;
	for (; *v; v++) {
		const char *e = *v == '\\' ? "\\\\" : *v == '"' ? "\\\""
					      : *v == '\n'      ? "\\n"
								: NULL;
		if (!e)
			continue;
		if (buf_append(out, run, (size_t)(v - run)) < 0 || buf_append(out, e, 2) < 0)
			return -1;
		run = v + 1;
	}
	return buf_append(out, run, (size_t)(v - run));
}

/* Appends HELP text with \\ and \n escaped. */
static int put_help(buf *out, const char *v)
{
	const char *run = v;
	for (; *v; v++) {
		const char *e = *v == '\\' ? "\\\\" : *v == '\n' ? "\\n"
								 : NULL;
		if (!e)
			continue;
		if (buf_append(out, run, (size_t)(v - run)) < 0 || buf_append(out, e, 2) < 0)
			return -1;
		run = v + 1;
	}
	return buf_append(out, run, (size_t)(v - run));
}

/* name{labels[,le="x"]} value\n */
static int put_sample(buf *out, const prom_family *f, const prom_series *s, const char *suffix,
		      const char *le, double v)
{
	char num[48];
	int rc = buf_puts(out, f->name) | buf_puts(out, suffix);
	if (f->n_labels || le) {
		rc |= buf_append(out, "{", 1);
		for (size_t i = 0; i < f->n_labels; i++) {
			rc |= buf_puts(out, i ? "," : "") | buf_puts(out, f->labels[i]) | buf_append(out, "=\"", 2);
			rc |= put_label_value(out, s->values[i]) | buf_append(out, "\"", 1);
		}
		if (le)
			rc |= buf_puts(out, f->n_labels ? ",le=\"" : "le=\"") | buf_puts(out, le) | buf_append(out, "\"", 1);
		rc |= buf_append(out, "}", 1);
	}
	int n = prom_format_value(num, sizeof(num), v);
	rc |= buf_append(out, " ", 1) | buf_append(out, num, (size_t)n) | buf_append(out, "\n", 1);
	return rc ? -1 : 0;
}

static int write_family(buf *out, prom_family *f)
{
	static const char *const tnames[] = {"counter", "gauge", "histogram", "untyped"};
	int rc = 0;
	if (f->help[0])
		rc |= buf_printf(out, "# HELP %s ", f->name) < 0 || put_help(out, f->help) < 0 || buf_append(out, "\n", 1) < 0;
	rc |= buf_printf(out, "# TYPE %s %s\n", f->name, tnames[f->type]) < 0;
	for (size_t i = 0; i < f->n_series && !rc; i++) {
		prom_series *s = f->series[i];
		if (f->type != PROM_HISTOGRAM) {
			rc |= put_sample(out, f, s, "", NULL, s->fn ? s->fn(s->fn_arg) : s->value);
			continue;
		}
		uint64_t cum = 0;
		char le[48];
		for (size_t b = 0; b < f->n_bounds; b++) {
			cum += s->buckets[b];
			prom_format_value(le, sizeof(le), f->bounds[b]);
			rc |= put_sample(out, f, s, "_bucket", le, (double)cum);
		}
		rc |= put_sample(out, f, s, "_bucket", "+Inf", (double)s->count);
		rc |= put_sample(out, f, s, "_sum", NULL, s->value);
		rc |= put_sample(out, f, s, "_count", NULL, (double)s->count);
	}
	return rc ? -1 : 0;
}

int prom_write(prom_registry *reg, buf *out)
{
	reg_lock(reg);
	prom_collect_fn *collect = reg->collect;
	void *arg = reg->collect_arg;
	reg_unlock(reg);
	if (collect)
		collect(reg, arg);
	int rc = 0;
	reg_lock(reg);
	for (prom_family *f = reg->first; f && !rc; f = f->next)
		rc = write_family(out, f);
	reg_unlock(reg);
	return rc;
}
