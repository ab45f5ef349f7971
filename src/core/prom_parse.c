/*
 * prom_parse.c — the Prometheus text format (0.0.4) parser, for scraping model
 * servers (vLLM, SGLang, llama.cpp, infergate-server).
 *
 * One pass, line by line, within [text, text+len): it never reads past len.
 * Names and unescaped label values are copied into a scratch area for the
 * callback, part of a state allocated once per thread and kept. Tolerated: \r\n, leading and
 * trailing blanks, empty lines, comments, a trailing comma in a label set,
 * OpenMetrics "# EOF" and exemplars (" # {...} v" after the value). Refused,
 * naming the line: anything else that is not a sample, lines over
 * PROM_PARSE_MAX_LINE, more than PROM_PARSE_MAX_LABELS labels, more than
 * PROM_PARSE_MAX_SAMPLES samples.
 */
#include "core/prom.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pstate {
	char scratch[PROM_PARSE_MAX_LINE + 64]; /* names and label values of one line */
	size_t used;
	prom_label labels[PROM_PARSE_MAX_LABELS];
	char type_name[256]; /* family named by the last # TYPE */
	prom_type type;
	uint32_t line;
	char *err;
	size_t errlen;
} pstate;

static int perr(pstate *ps, const char *what)
{
	if (ps->err && ps->errlen)
		snprintf(ps->err, ps->errlen, "line %u: %s", ps->line, what);
	return -1;
}

/* Name bytes by class: one table load per byte. */
enum { C_ALPHA = 1,
       C_DIGIT = 2,
       C_COLON = 4 };
static const unsigned char name_class[256] = {
	['a' ... 'z'] = C_ALPHA,
	['A' ... 'Z'] = C_ALPHA,
	['_'] = C_ALPHA,
	['0' ... '9'] = C_DIGIT,
	[':'] = C_COLON,
};

static inline int is_name_start(char c, int colon_ok)
{
	return name_class[(unsigned char)c] & (C_ALPHA | (colon_ok ? C_COLON : 0));
}

static inline int is_name_char(char c, int colon_ok)
{
	return name_class[(unsigned char)c] & (C_ALPHA | C_DIGIT | (colon_ok ? C_COLON : 0));
}

/* Copies a name at *p (within end) to scratch; returns it or NULL. */
static const char *take_name(pstate *ps, const char **p, const char *end, int colon_ok)
{
	const char *s = *p;
	if (s >= end || !is_name_start(*s, colon_ok))
		return NULL;
	const char *e = s + 1;
	while (e < end && is_name_char(*e, colon_ok))
		e++;
	size_t n = (size_t)(e - s);
	char *d = ps->scratch + ps->used; /* a line is at most PROM_PARSE_MAX_LINE: fits */
	memcpy(d, s, n);
	d[n] = 0;
	ps->used += n + 1;
	*p = e;
	return d;
}

static inline const char *skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static prom_type type_of(const char *s, size_t n)
{
	if (n == 7 && !memcmp(s, "counter", 7))
		return PROM_COUNTER;
	if (n == 5 && !memcmp(s, "gauge", 5))
		return PROM_GAUGE;
	if (n == 9 && !memcmp(s, "histogram", 9))
		return PROM_HISTOGRAM;
	return PROM_UNTYPED;
}

/* "# TYPE name type": remembered for the samples that follow. */
static void comment_line(pstate *ps, const char *p, const char *end)
{
	p = skip_blank(p + 1, end);
	if (end - p < 5 || memcmp(p, "TYPE", 4) || (p[4] != ' ' && p[4] != '\t'))
		return;
	p = skip_blank(p + 4, end);
	const char *n = p;
	while (p < end && is_name_char(*p, 1))
		p++;
	size_t nl = (size_t)(p - n);
	if (!nl || nl >= sizeof(ps->type_name))
		return;
	memcpy(ps->type_name, n, nl);
	ps->type_name[nl] = 0;
	p = skip_blank(p, end);
	const char *t = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	ps->type = type_of(t, (size_t)(p - t));
}

static prom_type sample_type(const pstate *ps, const char *name)
{
	if (!ps->type_name[0])
		return PROM_UNTYPED;
	size_t tl = strlen(ps->type_name);
	if (strncmp(name, ps->type_name, tl))
		return PROM_UNTYPED;
	const char *rest = name + tl;
	static const char *const sfx[] = {"", "_bucket", "_sum", "_count", "_total", "_created"};
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++)
		if (!strcmp(rest, sfx[i]))
			return ps->type;
	return PROM_UNTYPED;
}

/* Parses a number token [s, e): floats, +Inf/-Inf/Inf, NaN (any case). */
static int parse_value(pstate *ps, const char *s, const char *e, double *out)
{
	size_t n = (size_t)(e - s);
	if (!n || n > 64)
		return -1;
	char tmp[72];
	memcpy(tmp, s, n);
	tmp[n] = 0;
	char *end;
	double v = json_strtod(tmp, &end);
	if (end != tmp + n)
		return -1;
	*out = v;
	return 0;
}

static int parse_ts(const char *s, const char *e, int64_t *out)
{
	int neg = 0;
	if (s < e && (*s == '-' || *s == '+'))
		neg = *s++ == '-';
	if (s >= e || e - s > 18)
		return -1;
	int64_t v = 0;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

/* One sample line [p, end), already trimmed of the line end. */
static int sample_line(pstate *ps, const char *p, const char *end, prom_sample *smp)
{
	ps->used = 0;
	const char *name = take_name(ps, &p, end, 1);
	if (!name)
		return perr(ps, "metric name expected");
	size_t nl = 0;
	const char *brace = skip_blank(p, end);
	if (brace < end && *brace == '{') {
		p = brace + 1;
		for (;;) {
			p = skip_blank(p, end);
			if (p < end && *p == '}') {
				p++;
				break;
			}
			if (nl == PROM_PARSE_MAX_LABELS)
				return perr(ps, "too many labels");
			const char *ln = take_name(ps, &p, end, 0);
			if (!ln)
				return perr(ps, "label name expected");
			p = skip_blank(p, end);
			if (p >= end || *p != '=')
				return perr(ps, "'=' expected after label name");
			p = skip_blank(p + 1, end);
			if (p >= end || *p != '"')
				return perr(ps, "'\"' expected before label value");
			p++;
			char *d = ps->scratch + ps->used, *o = d;
			for (;;) {
				/* A run of plain bytes at once, then the byte that ends it. */
				const char *run = p;
				while (p < end && *p != '"' && *p != '\\')
					p++;
				memcpy(o, run, (size_t)(p - run));
				o += p - run;
				if (p >= end)
					return perr(ps, "unterminated label value");
				char c = *p++;
				if (c == '"')
					break;
				if (c == '\\') {
					if (p >= end)
						return perr(ps, "unterminated label value");
					c = *p++;
					if (c == 'n')
						c = '\n';
					else if (c != '\\' && c != '"')
						return perr(ps, "bad escape in label value");
				}
				*o++ = c;
			}
			*o = 0;
			ps->used += (size_t)(o - d) + 1;
			ps->labels[nl].name = ln;
			ps->labels[nl].value = d;
			nl++;
			p = skip_blank(p, end);
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				break;
			}
			return perr(ps, "',' or '}' expected in labels");
		}
	}
	const char *vs = skip_blank(p, end);
	if (vs == p || vs >= end)
		return perr(ps, vs >= end ? "value expected" : "space expected before value");
	const char *ve = vs;
	while (ve < end && *ve != ' ' && *ve != '\t')
		ve++;
	double v;
	if (parse_value(ps, vs, ve, &v) < 0)
		return perr(ps, "bad sample value");
	smp->has_timestamp = 0;
	smp->timestamp_ms = 0;
	const char *ts = skip_blank(ve, end);
	if (ts < end && *ts != '#') {
		const char *te = ts;
		while (te < end && *te != ' ' && *te != '\t')
			te++;
		if (parse_ts(ts, te, &smp->timestamp_ms) < 0)
			return perr(ps, "bad timestamp");
		smp->has_timestamp = 1;
		ts = skip_blank(te, end);
	}
	if (ts < end && *ts != '#')
		return perr(ps, "unexpected text after the sample");
	smp->name = name;
	smp->labels = ps->labels;
	smp->n_labels = nl;
	smp->value = v;
	smp->type = sample_type(ps, name);
	smp->line = ps->line;
	return 0;
}

/* The state of the last prom_parse of this thread, kept for the next: a
 * scraper parses a page per endpoint several times a second, and a fresh
 * 66 KB block each time cost more than the few lines it parsed. A parse
 * started from a callback (the kept state is busy) takes its own. Reachable
 * until the thread ends, never freed. */
static __thread pstate *kept_state;
static __thread int kept_busy;

int prom_parse(const char *text, size_t len, prom_sample_fn *fn, void *arg, char *err, size_t errlen)
{
	int kept = 0;
	pstate *ps;
	if (!kept_busy && (kept_state || (kept_state = malloc(sizeof(*kept_state))))) {
		ps = kept_state;
		kept = kept_busy = 1;
	} else {
		ps = malloc(sizeof(*ps));
	}
	if (!ps) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return -1;
	}
	ps->err = err;
	ps->errlen = errlen;
	ps->type_name[0] = 0;
	ps->type = PROM_UNTYPED;
	ps->line = 0;
	if (err && errlen)
		err[0] = 0;
	const char *p = text ? text : "", *end = p + (text ? len : 0);
	int count = 0, rc = 0;
	while (p < end) {
		ps->line++;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;
		if ((size_t)(le - p) > PROM_PARSE_MAX_LINE) {
			rc = perr(ps, "line too long");
			break;
		}
		/* trim: blanks and \r at both ends */
		while (le > p && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
			le--;
		const char *s = skip_blank(p, le);
		p = next;
		if (s == le)
			continue;
		if (*s == '#') {
			comment_line(ps, s, le);
			continue;
		}
		if (count >= PROM_PARSE_MAX_SAMPLES) {
			rc = perr(ps, "too many samples");
			break;
		}
		prom_sample smp;
		if (sample_line(ps, s, le, &smp) < 0) {
			rc = -1;
			break;
		}
		count++;
		if (fn && fn(arg, &smp))
			break;
	}
	if (kept) kept_busy = 0;
	else free(ps);
	return rc < 0 ? -1 : count;
}

const char *prom_sample_label(const prom_sample *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (!strcmp(s->labels[i].name, name))
			return s->labels[i].value;
	return NULL;
}
