/*
 * drill_report.c — what the drill shows: a phase table and the verdict on the
 * terminal, a JSON report (--json), and a hand-written SVG timeline (--svg):
 * every request a dot at (start time, latency) coloured by the region that
 * served it, failed requests a red cross, broken streams a red ring, the
 * outages shaded and the restores marked, an axis in seconds.
 *
 * Not here: running the drill (drill.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/util.h"
#include "lab/drill.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double drill_phase_pct(const drill_result *r, int ph, double p)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_recs; i++)
		if (r->recs[i].phase == ph && r->recs[i].outcome == 1) n++;
	if (!n) return -1;
	double *v = malloc(n * sizeof *v);
	if (!v) return -1;
	size_t k = 0;
	for (size_t i = 0; i < r->n_recs; i++)
		if (r->recs[i].phase == ph && r->recs[i].outcome == 1) v[k++] = r->recs[i].t_end_ms - r->recs[i].t_start_ms;
	qsort(v, n, sizeof *v, cmp_double);
	size_t idx = (size_t)ceil(p / 100.0 * (double)n);
	if (idx > 0) idx--;
	if (idx >= n) idx = n - 1;
	double out = v[idx];
	free(v);
	return out;
}

typedef struct phase_count {
	size_t total, ok, failed, broken, local, remote;
} phase_count;

static phase_count count_phase(const drill_result *r, int ph)
{
	phase_count c = {0};
	for (size_t i = 0; i < r->n_recs; i++) {
		const drill_rec *rec = &r->recs[i];
		if (rec->phase != ph) continue;
		c.total++;
		c.ok += rec->outcome == 1;
		c.failed += rec->outcome == 2;
		c.broken += rec->outcome == 3;
		c.local += rec->region == 0 && rec->status == 200;
		c.remote += rec->region == 1 && rec->status == 200;
	}
	return c;
}

static void fmt_ms(char *out, size_t len, double ms)
{
	if (ms < 0) snprintf(out, len, "-");
	else if (ms >= 10000) snprintf(out, len, "%.1fs", ms / 1000.0);
	else snprintf(out, len, "%.0f", ms);
}

void drill_report_table(const drill_result *r)
{
	printf("failover drill: client in %s through %s; %s; servers %s; %.1f req/s steady\n", r->local_region,
	       r->gateway_local, r->mode, r->backend, r->rate);
	printf("%-20s %7s %6s %7s %6s %6s %9s %12s %7s %7s %7s\n", "phase", "seconds", "reqs", "skipped", "failed", "broken",
	       r->local_region, r->remote_region, "p50 ms", "p90 ms", "max ms");
	for (size_t p = 0; p < r->n_phases; p++) {
		const drill_phase *ph = &r->phases[p];
		phase_count c = count_phase(r, (int)p);
		char a[16], b[16], m[16];
		fmt_ms(a, sizeof a, drill_phase_pct(r, (int)p, 50));
		fmt_ms(b, sizeof b, drill_phase_pct(r, (int)p, 90));
		fmt_ms(m, sizeof m, drill_phase_pct(r, (int)p, 100));
		printf("%-20s %7.1f %6zu %7zu %6zu %6zu %9zu %12zu %7s %7s %7s\n", ph->name,
		       (ph->t_end_ms - ph->t_begin_ms) / 1000.0, c.total, ph->skipped, c.failed, c.broken, c.local, c.remote,
		       a, b, m);
	}
	printf("\n%-10s %22s %18s %18s %8s %8s\n", "outage", "first answer from", "servers ready", "back in rotation",
	       "failed", "broken");
	printf("%-10s %22s %18s %18s %8s %8s\n", "", r->remote_region, "after restore", "after restore", "", "");
	for (size_t i = 0; i < r->n_fl; i++) {
		const drill_flavour *f = &r->fl[i];
		char a[24], b[24], c[24];
		if (f->failover_ms >= 0) snprintf(a, sizeof a, "%.2f s", f->failover_ms / 1000.0);
		else str_copy(a, "never", sizeof a);
		if (f->ready_ms >= 0) snprintf(b, sizeof b, "%.2f s", f->ready_ms / 1000.0);
		else str_copy(b, "-", sizeof b);
		if (f->back_ms >= 0) snprintf(c, sizeof c, "%.2f s", f->back_ms / 1000.0);
		else str_copy(c, "never", sizeof c);
		printf("%-10s %22s %18s %18s %8d %8d\n", f->name, a, b, c, f->failed, f->broken);
	}
	size_t failed = 0, broken = 0;
	for (size_t i = 0; i < r->n_recs; i++) {
		failed += r->recs[i].outcome == 2;
		broken += r->recs[i].outcome == 3;
	}
	printf("\nrequests %zu, failed %zu, streams broken %zu, steady arrivals skipped %zu (in-flight cap %d)\n",
	       r->n_recs, failed, broken, r->skipped, r->max_inflight);
	size_t shown = 0;
	for (size_t i = 0; i < r->n_recs && shown < 10; i++) {
		const drill_rec *rec = &r->recs[i];
		if (rec->outcome != 2 && rec->outcome != 3) continue;
		printf("  %s at %.2fs (%s, %s): %s\n", rec->outcome == 2 ? "failed" : "broken", rec->t_start_ms / 1000.0,
		       r->phases[rec->phase].name, rec->stream ? "stream" : "whole", rec->detail);
		shown++;
	}
	printf("drill %s\n", r->passed ? "PASSED" : "FAILED");
}

/* ------------------------------------------------------------ JSON */

static void jw_ms(json_w *w, const char *key, double ms)
{
	jw_key(w, key);
	if (ms < 0) jw_null(w);
	else jw_double(w, round(ms * 10.0) / 10.0);
}

static const char *region_name(const drill_result *r, int region)
{
	return region == 0 ? r->local_region : region == 1 ? r->remote_region
				       : region == 2       ? "other"
							   : NULL;
}

static const char *outcome_name(int o)
{
	static const char *const names[] = {"pending", "ok", "failed", "broken"};
	return o >= 0 && o < 4 ? names[o] : "?";
}

static void jw_rec_brief(json_w *w, const drill_result *r, int idx)
{
	if (idx < 0) {
		jw_null(w);
		return;
	}
	const drill_rec *q = &r->recs[idx];
	jw_obj_begin(w);
	jw_key(w, "outcome");
	jw_str(w, outcome_name(q->outcome));
	jw_key(w, "status");
	jw_int(w, q->status);
	jw_key(w, "region");
	jw_str(w, region_name(r, q->region));
	jw_key(w, "endpoint");
	jw_str(w, q->endpoint);
	jw_ms(w, "latency_ms", q->t_end_ms - q->t_start_ms);
	jw_key(w, "answer");
	jw_str(w, q->detail);
	jw_obj_end(w);
}

int drill_report_json(const drill_result *r, const char *path)
{
	buf b;
	buf_init(&b, 64 << 20);
	json_w w;
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "passed");
	jw_bool(&w, r->passed);
	jw_key(&w, "mode");
	jw_str(&w, r->mode);
	jw_key(&w, "servers");
	jw_str(&w, r->backend);
	jw_key(&w, "local_region");
	jw_str(&w, r->local_region);
	jw_key(&w, "remote_region");
	jw_str(&w, r->remote_region);
	jw_key(&w, "gateway");
	jw_str(&w, r->gateway_local);
	jw_key(&w, "remote_gateway");
	jw_str(&w, r->gateway_remote);
	jw_key(&w, "rate_per_s");
	jw_double(&w, r->rate);
	jw_key(&w, "max_tokens");
	jw_int(&w, r->max_tokens_steady);
	jw_key(&w, "question_max_tokens");
	jw_int(&w, r->max_tokens_question);
	jw_key(&w, "strict_streams");
	jw_bool(&w, r->strict_streams);
	jw_ms(&w, "duration_ms", r->t_total_ms);
	size_t failed = 0, broken = 0;
	for (size_t i = 0; i < r->n_recs; i++) {
		failed += r->recs[i].outcome == 2;
		broken += r->recs[i].outcome == 3;
	}
	jw_key(&w, "requests_total");
	jw_uint(&w, r->n_recs);
	jw_key(&w, "requests_failed");
	jw_uint(&w, failed);
	jw_key(&w, "streams_broken");
	jw_uint(&w, broken);
	jw_key(&w, "steady_skipped");
	jw_uint(&w, r->skipped);
	jw_key(&w, "max_inflight");
	jw_int(&w, r->max_inflight);
	jw_key(&w, "baseline");
	jw_rec_brief(&w, r, r->baseline_rec);
	jw_key(&w, "outages");
	jw_arr_begin(&w);
	for (size_t i = 0; i < r->n_fl; i++) {
		const drill_flavour *f = &r->fl[i];
		jw_obj_begin(&w);
		jw_key(&w, "flavour");
		jw_str(&w, f->name);
		jw_ms(&w, "outage_at_ms", f->t_outage_ms);
		jw_ms(&w, "restore_at_ms", f->t_restore_ms);
		jw_ms(&w, "failover_ms", f->failover_ms);
		jw_ms(&w, "drain_ms", f->drain_ms);
		jw_ms(&w, "servers_ready_ms", f->ready_ms);
		jw_ms(&w, "back_in_rotation_ms", f->back_ms);
		jw_key(&w, "requests_failed");
		jw_int(&w, f->failed);
		jw_key(&w, "streams_broken");
		jw_int(&w, f->broken);
		jw_key(&w, "served_locally_during_outage");
		jw_int(&w, f->wrong_region);
		jw_key(&w, "failover_question");
		jw_rec_brief(&w, r, f->question_rec);
		jw_key(&w, "check_local");
		jw_rec_brief(&w, r, f->verify_local_rec);
		jw_key(&w, "check_remote");
		jw_rec_brief(&w, r, f->verify_remote_rec);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "phases");
	jw_arr_begin(&w);
	for (size_t p = 0; p < r->n_phases; p++) {
		const drill_phase *ph = &r->phases[p];
		phase_count c = count_phase(r, (int)p);
		jw_obj_begin(&w);
		jw_key(&w, "name");
		jw_str(&w, ph->name);
		jw_ms(&w, "begin_ms", ph->t_begin_ms);
		jw_ms(&w, "end_ms", ph->t_end_ms);
		jw_key(&w, "requests");
		jw_uint(&w, c.total);
		jw_key(&w, "skipped");
		jw_uint(&w, ph->skipped);
		jw_key(&w, "ok");
		jw_uint(&w, c.ok);
		jw_key(&w, "failed");
		jw_uint(&w, c.failed);
		jw_key(&w, "broken");
		jw_uint(&w, c.broken);
		jw_key(&w, "served_by");
		jw_obj_begin(&w);
		jw_key(&w, r->local_region);
		jw_uint(&w, c.local);
		jw_key(&w, r->remote_region);
		jw_uint(&w, c.remote);
		jw_obj_end(&w);
		jw_key(&w, "latency_ms");
		jw_obj_begin(&w);
		jw_ms(&w, "p50", drill_phase_pct(r, (int)p, 50));
		jw_ms(&w, "p90", drill_phase_pct(r, (int)p, 90));
		jw_ms(&w, "max", drill_phase_pct(r, (int)p, 100));
		jw_obj_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "checks");
	jw_arr_begin(&w);
	for (size_t i = 0; i < r->n_checks; i++) {
		jw_obj_begin(&w);
		jw_key(&w, "ok");
		jw_bool(&w, r->check_ok[i]);
		jw_key(&w, "what");
		jw_str(&w, r->checks[i]);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "requests");
	jw_arr_begin(&w);
	static const char *const kinds[] = {"steady", "question", "check"};
	for (size_t i = 0; i < r->n_recs; i++) {
		const drill_rec *q = &r->recs[i];
		jw_obj_begin(&w);
		jw_key(&w, "kind");
		jw_str(&w, kinds[q->kind % 3]);
		jw_key(&w, "stream");
		jw_bool(&w, q->stream);
		jw_key(&w, "via");
		jw_str(&w, q->via ? r->remote_region : r->local_region);
		jw_key(&w, "phase");
		jw_str(&w, q->phase >= 0 ? r->phases[q->phase].name : NULL);
		jw_ms(&w, "start_ms", q->t_start_ms);
		jw_ms(&w, "first_byte_ms", q->t_head_ms > 0 ? q->t_head_ms - q->t_start_ms : -1);
		jw_ms(&w, "latency_ms", q->t_end_ms - q->t_start_ms);
		jw_key(&w, "status");
		jw_int(&w, q->status);
		jw_key(&w, "region");
		jw_str(&w, region_name(r, q->region));
		jw_key(&w, "endpoint");
		jw_str(&w, q->endpoint);
		jw_key(&w, "outcome");
		jw_str(&w, outcome_name(q->outcome));
		if (q->outcome == 2 || q->outcome == 3) {
			jw_key(&w, "error");
			jw_str(&w, q->detail);
		}
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	buf_puts(&b, "\n");
	int rc = -1;
	FILE *f = w.error ? NULL : fopen(path, "w");
	if (f) {
		rc = fwrite(buf_rptr(&b), 1, buf_rlen(&b), f) == buf_rlen(&b) ? 0 : -1;
		if (fclose(f) != 0) rc = -1;
	}
	buf_free(&b);
	return rc;
}

/* ------------------------------------------------------------ SVG */

/* A "nice" tick step (1, 2, 5 x 10^k) giving at most max_ticks ticks over span. */
static double nice_step(double span, int max_ticks)
{
	double raw = span / max_ticks;
	double p = pow(10, floor(log10(raw > 0 ? raw : 1)));
	double steps[] = {1, 2, 5, 10};
	for (int i = 0; i < 4; i++)
		if (steps[i] * p >= raw) return steps[i] * p;
	return 10 * p;
}

static void xml_text(buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '<') buf_puts(b, "&lt;");
		else if (*s == '>') buf_puts(b, "&gt;");
		else if (*s == '&') buf_puts(b, "&amp;");
		else if (*s == '"') buf_puts(b, "&quot;");
		else buf_append(b, s, 1);
	}
}

int drill_report_svg(const drill_result *r, const char *path)
{
	const double W = 1120, H = 440, L = 70, R = 190, T = 50, B = 60;
	const double pw = W - L - R, ph = H - T - B;
	double tmax = r->t_total_ms > 1 ? r->t_total_ms / 1000.0 : 1;
	double ymax = 0;
	for (size_t i = 0; i < r->n_recs; i++) {
		double lat = r->recs[i].t_end_ms - r->recs[i].t_start_ms;
		if (lat > ymax) ymax = lat;
	}
	if (ymax < 100) ymax = 100;
	double ystep = nice_step(ymax, 6);
	ymax = ceil(ymax / ystep) * ystep;
	double xstep = nice_step(tmax, 15);
#define X(t) (L + (t) / tmax * pw)
#define Y(ms) (T + ph - (ms) / ymax * ph)
	buf b;
	buf_init(&b, 64 << 20);
	buf_printf(&b,
		   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
		   "font-family=\"sans-serif\" font-size=\"12\">\n"
		   "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n",
		   W, H, W, H, W, H);
	buf_puts(&b, "<text x=\"70\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Failover drill: requests through the ");
	xml_text(&b, r->local_region);
	buf_puts(&b, " gateway, by the region that served them</text>\n");
	/* outages shaded, restores marked */
	for (size_t i = 0; i < r->n_fl; i++) {
		const drill_flavour *f = &r->fl[i];
		double a = f->t_outage_ms / 1000.0, z = f->t_restore_ms / 1000.0;
		if (z < a) z = a;
		buf_printf(&b, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"#e6e6e6\"/>\n", X(a), T,
			   X(z) - X(a), ph);
		buf_printf(&b, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\" fill=\"#555\">", X(a) + 3, T + 14);
		xml_text(&b, f->name);
		buf_puts(&b, " outage</text>\n");
		buf_printf(&b, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#2a9d2a\" stroke-dasharray=\"4 3\"/>\n",
			   X(z), T, X(z), T + ph);
		buf_printf(&b, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\" fill=\"#2a9d2a\">restore</text>\n", X(z) + 3, T + 28);
	}
	/* axes */
	buf_printf(&b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T + ph, L + pw, T + ph);
	buf_printf(&b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T, L, T + ph);
	for (double t = 0; t <= tmax + 1e-9; t += xstep) {
		buf_printf(&b, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"black\"/>", X(t), T + ph, X(t), T + ph + 5);
		buf_printf(&b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n", X(t), T + ph + 18, t);
	}
	buf_printf(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">seconds since the drill started</text>\n",
		   L + pw / 2, H - 18);
	for (double y = 0; y <= ymax + 1e-9; y += ystep) {
		buf_printf(&b, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>", L, Y(y), L + pw, Y(y));
		buf_printf(&b, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6, Y(y) + 4, y);
	}
	buf_printf(&b, "<text x=\"18\" y=\"%.0f\" transform=\"rotate(-90 18 %.0f)\" text-anchor=\"middle\">latency (ms)</text>\n",
		   T + ph / 2, T + ph / 2);
	/* requests */
	for (size_t i = 0; i < r->n_recs; i++) {
		const drill_rec *q = &r->recs[i];
		double x = X(q->t_start_ms / 1000.0), y = Y(q->t_end_ms - q->t_start_ms);
		if (q->outcome == 2) {
			buf_printf(&b, "<path d=\"M%.1f %.1fl6 6m0 -6l-6 6\" stroke=\"#d62728\" stroke-width=\"2\"/>\n", x - 3, y - 3);
		} else if (q->outcome == 3) {
			buf_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n", x, y);
		} else {
			const char *col = q->region == 0 ? "#1f77b4" : q->region == 1 ? "#ff7f0e"
										      : "#7f7f7f";
			const char *shape = q->kind == 0 ? "" : " stroke=\"black\"";
			buf_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\"%s/>\n", x, y, q->kind == 0 ? "2.5" : "4.5",
				   col, shape);
		}
	}
	/* legend */
	double lx = L + pw + 20, ly = T + 10;
	buf_printf(&b, "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"4\" fill=\"#1f77b4\"/><text x=\"%.0f\" y=\"%.0f\">served by ", lx, ly, lx + 10, ly + 4);
	xml_text(&b, r->local_region);
	buf_puts(&b, "</text>\n");
	ly += 20;
	buf_printf(&b, "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"4\" fill=\"#ff7f0e\"/><text x=\"%.0f\" y=\"%.0f\">served by ", lx, ly, lx + 10, ly + 4);
	xml_text(&b, r->remote_region);
	buf_puts(&b, "</text>\n");
	ly += 20;
	buf_printf(&b, "<path d=\"M%.0f %.0fl6 6m0 -6l-6 6\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">failed</text>\n",
		   lx - 3, ly - 3, lx + 10, ly + 4);
	ly += 20;
	buf_printf(&b, "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"4\" fill=\"none\" stroke=\"#d62728\"/><text x=\"%.0f\" y=\"%.0f\">stream broken</text>\n",
		   lx, ly, lx + 10, ly + 4);
	ly += 20;
	buf_printf(&b, "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"4.5\" fill=\"#ccc\" stroke=\"black\"/><text x=\"%.0f\" y=\"%.0f\">question / check</text>\n",
		   lx, ly, lx + 10, ly + 4);
	ly += 20;
	buf_printf(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"#e6e6e6\"/><text x=\"%.0f\" y=\"%.0f\">outage</text>\n",
		   lx - 5, ly - 5, lx + 10, ly + 4);
	ly += 30;
	for (size_t i = 0; i < r->n_fl; i++) {
		const drill_flavour *f = &r->fl[i];
		buf_printf(&b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">", lx - 5, ly);
		xml_text(&b, f->name);
		if (f->failover_ms >= 0) buf_printf(&b, ": failover %.2f s", f->failover_ms / 1000.0);
		else buf_puts(&b, ": no failover");
		buf_puts(&b, "</text>\n");
		ly += 16;
	}
	buf_puts(&b, "</svg>\n");
#undef X
#undef Y
	int rc = -1;
	FILE *f = fopen(path, "w");
	if (f) {
		rc = fwrite(buf_rptr(&b), 1, buf_rlen(&b), f) == buf_rlen(&b) ? 0 : -1;
		if (fclose(f) != 0) rc = -1;
	}
	buf_free(&b);
	return rc;
}
