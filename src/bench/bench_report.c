/*
 * bench_report.c — folds request records into results and writes them: the
 * text report (stdout), the JSON report (--json) and one JSONL line per
 * request (--per-request). The JSON field names are documented in
 * docs/bench.md; scripts depend on them, so change them only additively.
 */
#include "bench/bench.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"

#define ITL_MAX_KEPT (16u << 20) /* gaps kept exactly; a reservoir past it */
#define REQ_MAX_KEPT (4u << 20)
#define MAX_LABELS 1024

static const char *const err_names[ERR_KINDS] = {
	"none",
	"connect",
	"timeout",
	"http_4xx",
	"http_5xx",
	"stream_error",
	"protocol",
};

const char *bench_err_name(int kind)
{
	return kind >= 0 && kind < ERR_KINDS ? err_names[kind] : "unknown";
}

void bench_results_init(bench_results *r, uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	samples_init(&r->ttft, REQ_MAX_KEPT, seed + 1);
	samples_init(&r->itl, ITL_MAX_KEPT, seed + 2);
	samples_init(&r->tpot, REQ_MAX_KEPT, seed + 3);
	samples_init(&r->e2e, REQ_MAX_KEPT, seed + 4);
	samples_init(&r->lag, REQ_MAX_KEPT, seed + 5);
	counters_init(&r->regions, MAX_LABELS);
	counters_init(&r->endpoints, MAX_LABELS);
	counters_init(&r->statuses, 64);
	r->stop_reason = "done";
}

void bench_results_free(bench_results *r)
{
	samples_free(&r->ttft);
	samples_free(&r->itl);
	samples_free(&r->tpot);
	samples_free(&r->e2e);
	samples_free(&r->lag);
	counters_free(&r->regions);
	counters_free(&r->endpoints);
	counters_free(&r->statuses);
}

void bench_results_add(bench_results *r, const bench_record *rec, const float *itl_ms, size_t n_itl)
{
	if (rec->warmup) {
		r->warmup_finished++;
		if (rec->err != ERR_NONE)
			r->warmup_errors++;
		return;
	}
	r->finished++;
	if (!r->have_window || rec->scheduled_ns < r->window_start_ns)
		r->window_start_ns = rec->scheduled_ns;
	if (!r->have_window || rec->done_ns > r->window_end_ns)
		r->window_end_ns = rec->done_ns;
	r->have_window = 1;

	char code[16];
	snprintf(code, sizeof(code), "%d", rec->status);
	counters_add(&r->statuses, rec->status ? code : "none", strlen(rec->status ? code : "none"));
	counters_add(&r->regions, rec->region, strlen(rec->region));
	counters_add(&r->endpoints, rec->endpoint, strlen(rec->endpoint));
	samples_add(&r->lag, (double)(rec->sent_ns - rec->scheduled_ns) / 1e6);

	if (rec->err != ERR_NONE) {
		r->errors_by_kind[rec->err]++;
		return;
	}
	r->ok++;
	r->output_tokens += rec->output_tokens;
	r->prompt_tokens += rec->prompt_tokens;
	if (!rec->usage_seen)
		r->usage_missing++;
	samples_add(&r->ttft, rec->ttft_ms);
	samples_add(&r->e2e, rec->e2e_ms);
	if (rec->tpot_ms >= 0)
		samples_add(&r->tpot, rec->tpot_ms);
	for (size_t i = 0; i < n_itl; i++)
		samples_add(&r->itl, itl_ms[i]);
}

static uint64_t errors_total(const bench_results *r)
{
	uint64_t n = 0;
	for (int k = 1; k < ERR_KINDS; k++)
		n += r->errors_by_kind[k];
	return n;
}

static double window_s(const bench_results *r)
{
	if (!r->have_window || r->window_end_ns <= r->window_start_ns)
		return 0;
	return (double)(r->window_end_ns - r->window_start_ns) / 1e9;
}

static double per_s(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0;
}

static const char *workload_name(enum bench_workload_kind k)
{
	return k == WL_SHARED_PREFIX ? "shared-prefix" : k == WL_FILE ? "file"
								      : "random";
}

/* ------------------------------------------------------------------- text */

static void text_row(FILE *f, const char *name, samples *s)
{
	stats_summary m;
	samples_summary(s, &m);
	if (m.n == 0) {
		fprintf(f, "%-10s %9s\n", name, "0");
		return;
	}
	fprintf(f, "%-10s %9llu %10.2f %10.2f %10.2f %10.2f %10.2f\n", name,
		(unsigned long long)m.n, m.mean, m.p50, m.p90, m.p99, m.max);
}

static void text_counters(FILE *f, const char *name, counters *c, uint64_t total)
{
	counters_sort(c);
	fprintf(f, "%-18s", name);
	if (c->n == 0 && c->other == 0)
		fprintf(f, " -");
	for (size_t i = 0; i < c->n && i < 16; i++)
		fprintf(f, "%s %s %llu (%.1f%%)", i ? "," : "", c->items[i].label,
			(unsigned long long)c->items[i].count,
			total ? 100.0 * (double)c->items[i].count / (double)total : 0.0);
	uint64_t rest = c->other;
	for (size_t i = 16; i < c->n; i++)
		rest += c->items[i].count;
	if (rest)
		fprintf(f, ", (other) %llu", (unsigned long long)rest);
	fputc('\n', f);
}

void bench_report_text(FILE *f, const bench_config *cfg, bench_results *r)
{
	double win = window_s(r);
	fprintf(f, "============ infergate-bench ============\n");
	fprintf(f, "%-18s %s%s  model %s\n", "target", cfg->url,
		cfg->endpoint == BENCH_COMPLETIONS ? " /v1/completions" : " /v1/chat/completions",
		r->model[0] ? r->model : "-");
	if (cfg->rate > 0)
		fprintf(f, "%-18s open loop, Poisson %.3g req/s, seed %llu, max in flight %d\n",
			"arrivals", cfg->rate, (unsigned long long)cfg->seed, cfg->max_inflight);
	else
		fprintf(f, "%-18s closed loop, concurrency %d\n", "arrivals", cfg->concurrency);
	fprintf(f, "%-18s %s, %s\n", "workload", workload_name(cfg->workload),
		cfg->stream ? "streaming" : "not streaming");
	fprintf(f, "%-18s %s after %.2f s\n", "stopped", r->stop_reason, r->elapsed_s);
	fprintf(f, "%-18s %llu measured: %llu ok, %llu errors; %llu warm-up; %llu unfinished\n",
		"requests", (unsigned long long)r->finished, (unsigned long long)r->ok,
		(unsigned long long)errors_total(r), (unsigned long long)r->warmup_finished,
		(unsigned long long)r->unfinished);
	fprintf(f, "%-18s %.3f s\n", "measured window", win);
	fprintf(f, "%-18s %.2f req/s, %.1f output tok/s, %.1f total tok/s\n", "throughput",
		per_s(r->finished, win), per_s(r->output_tokens, win),
		per_s(r->output_tokens + r->prompt_tokens, win));
	fprintf(f, "%-18s %llu output, %llu prompt%s\n", "tokens",
		(unsigned long long)r->output_tokens, (unsigned long long)r->prompt_tokens,
		r->usage_missing ? " (some outputs counted as chunks: no usage)" : "");
	fprintf(f, "%-18s", "errors");
	if (errors_total(r) == 0)
		fprintf(f, " none");
	for (int k = 1, first = 1; k < ERR_KINDS; k++) {
		if (!r->errors_by_kind[k])
			continue;
		fprintf(f, "%s %s %llu", first ? "" : ",", err_names[k],
			(unsigned long long)r->errors_by_kind[k]);
		first = 0;
	}
	fputc('\n', f);
	if (r->deferred_arrivals)
		fprintf(f, "%-18s %llu arrivals waited for a free conversation (raise --users or --groups)\n",
			"deferred", (unsigned long long)r->deferred_arrivals);
	if (r->conversations_abandoned)
		fprintf(f, "%-18s %llu conversations ended by an error\n", "abandoned",
			(unsigned long long)r->conversations_abandoned);
	fprintf(f, "\n%-10s %9s %10s %10s %10s %10s %10s   (ms)\n", "", "n", "mean", "p50", "p90", "p99",
		"max");
	text_row(f, "TTFT", &r->ttft);
	text_row(f, "ITL", &r->itl);
	text_row(f, "TPOT", &r->tpot);
	text_row(f, "E2E", &r->e2e);
	text_row(f, "send lag", &r->lag);
	fputc('\n', f);
	text_counters(f, "regions", &r->regions, r->finished);
	text_counters(f, "endpoints", &r->endpoints, r->finished);
	text_counters(f, "status codes", &r->statuses, r->finished);
}

/* ------------------------------------------------------------------- JSON */

static void json_summary(json_w *w, const char *key, samples *s)
{
	stats_summary m;
	samples_summary(s, &m);
	jw_key(w, key);
	jw_obj_begin(w);
	jw_key(w, "n");
	jw_uint(w, m.n);
	jw_key(w, "mean");
	jw_double(w, m.mean);
	jw_key(w, "p50");
	jw_double(w, m.p50);
	jw_key(w, "p90");
	jw_double(w, m.p90);
	jw_key(w, "p99");
	jw_double(w, m.p99);
	jw_key(w, "max");
	jw_double(w, m.max);
	jw_obj_end(w);
}

static void json_counters(json_w *w, const char *key, counters *c)
{
	counters_sort(c);
	jw_key(w, key);
	jw_obj_begin(w);
	for (size_t i = 0; i < c->n; i++) {
		jw_key(w, c->items[i].label);
		jw_uint(w, c->items[i].count);
	}
	if (c->other) {
		jw_key(w, "(other)");
		jw_uint(w, c->other);
	}
	jw_obj_end(w);
}

static void json_config(json_w *w, const bench_config *c)
{
	jw_key(w, "config");
	jw_obj_begin(w);
	jw_key(w, "url");
	jw_str(w, c->url);
	jw_key(w, "endpoint");
	jw_str(w, c->endpoint == BENCH_COMPLETIONS ? "completions" : "chat");
	jw_key(w, "model");
	jw_str(w, c->model);
	jw_key(w, "arrival");
	jw_str(w, c->rate > 0 ? "poisson" : "closed");
	jw_key(w, "rate");
	jw_double(w, c->rate);
	jw_key(w, "concurrency");
	jw_int(w, c->concurrency);
	jw_key(w, "requests");
	jw_uint(w, c->requests);
	jw_key(w, "duration_s");
	jw_double(w, (double)c->duration_ms / 1000.0);
	jw_key(w, "warmup_requests");
	jw_uint(w, c->warmup_requests);
	jw_key(w, "warmup_s");
	jw_double(w, (double)c->warmup_ms / 1000.0);
	jw_key(w, "seed");
	jw_uint(w, c->seed);
	jw_key(w, "stream");
	jw_bool(w, c->stream);
	jw_key(w, "max_tokens");
	if (c->max_tokens > 0)
		jw_int(w, c->max_tokens);
	else
		jw_null(w);
	jw_key(w, "temperature");
	if (c->temperature >= 0)
		jw_double(w, c->temperature);
	else
		jw_null(w);
	jw_key(w, "workload");
	jw_str(w, workload_name(c->workload));
	jw_key(w, "input_len");
	jw_int(w, c->input_len);
	jw_key(w, "output_len");
	jw_int(w, c->output_len);
	jw_key(w, "len_jitter");
	jw_double(w, c->len_jitter);
	if (c->workload == WL_SHARED_PREFIX) {
		jw_key(w, "groups");
		jw_int(w, c->groups);
		jw_key(w, "system_len");
		jw_int(w, c->system_len);
		jw_key(w, "users");
		jw_int(w, c->users);
		jw_key(w, "turns");
		jw_int(w, c->turns);
	}
	if (c->workload == WL_FILE) {
		jw_key(w, "file");
		jw_str(w, c->file);
	}
	jw_key(w, "headers");
	jw_arr_begin(w);
	for (int i = 0; i < c->n_headers; i++) {
		/* Names only: values may be credentials. */
		const char *colon = strchr(c->headers[i], ':');
		jw_strn(w, c->headers[i], colon ? (size_t)(colon - c->headers[i]) : strlen(c->headers[i]));
	}
	jw_arr_end(w);
	jw_key(w, "timeout_s");
	jw_double(w, (double)c->timeout_ms / 1000.0);
	jw_key(w, "deadline_s");
	jw_double(w, (double)c->deadline_ms / 1000.0);
	jw_key(w, "max_inflight");
	jw_int(w, c->max_inflight);
	jw_obj_end(w);
}

int bench_report_json(const char *path, const bench_config *cfg, bench_results *r)
{
	buf out;
	buf_init(&out, 0);
	json_w w;
	jw_init(&w, &out);
	double win = window_s(r);
	jw_obj_begin(&w);
	json_config(&w, cfg);
	jw_key(&w, "model");
	jw_str(&w, r->model);
	jw_key(&w, "stop_reason");
	jw_str(&w, r->stop_reason);
	jw_key(&w, "elapsed_s");
	jw_double(&w, r->elapsed_s);
	jw_key(&w, "duration_s");
	jw_double(&w, win);
	jw_key(&w, "requests");
	jw_uint(&w, r->finished);
	jw_key(&w, "ok");
	jw_uint(&w, r->ok);
	jw_key(&w, "errors");
	jw_uint(&w, errors_total(r));
	jw_key(&w, "unfinished");
	jw_uint(&w, r->unfinished);
	jw_key(&w, "warmup_requests");
	jw_uint(&w, r->warmup_finished);
	jw_key(&w, "warmup_errors");
	jw_uint(&w, r->warmup_errors);
	jw_key(&w, "deferred_arrivals");
	jw_uint(&w, r->deferred_arrivals);
	jw_key(&w, "conversations_abandoned");
	jw_uint(&w, r->conversations_abandoned);
	jw_key(&w, "output_tokens");
	jw_uint(&w, r->output_tokens);
	jw_key(&w, "prompt_tokens");
	jw_uint(&w, r->prompt_tokens);
	jw_key(&w, "usage_missing");
	jw_uint(&w, r->usage_missing);
	jw_key(&w, "throughput");
	jw_obj_begin(&w);
	jw_key(&w, "requests_per_s");
	jw_double(&w, per_s(r->finished, win));
	jw_key(&w, "output_tokens_per_s");
	jw_double(&w, per_s(r->output_tokens, win));
	jw_key(&w, "total_tokens_per_s");
	jw_double(&w, per_s(r->output_tokens + r->prompt_tokens, win));
	jw_obj_end(&w);
	jw_key(&w, "errors_by_kind");
	jw_obj_begin(&w);
	for (int k = 1; k < ERR_KINDS; k++) {
		jw_key(&w, err_names[k]);
		jw_uint(&w, r->errors_by_kind[k]);
	}
	jw_obj_end(&w);
	json_summary(&w, "ttft_ms", &r->ttft);
	json_summary(&w, "itl_ms", &r->itl);
	json_summary(&w, "tpot_ms", &r->tpot);
	json_summary(&w, "e2e_ms", &r->e2e);
	json_summary(&w, "send_lag_ms", &r->lag);
	json_counters(&w, "regions", &r->regions);
	json_counters(&w, "endpoints", &r->endpoints);
	json_counters(&w, "status_codes", &r->statuses);
	jw_obj_end(&w);
	buf_append(&out, "\n", 1);

	int rc = 0;
	if (w.error) {
		fprintf(stderr, "infergate-bench: the JSON report could not be built\n");
		rc = -1;
	} else if (strcmp(path, "-") == 0) {
		fwrite(buf_rptr(&out), 1, buf_rlen(&out), stdout);
		fflush(stdout);
	} else {
		FILE *f = fopen(path, "w");
		if (!f || fwrite(buf_rptr(&out), 1, buf_rlen(&out), f) != buf_rlen(&out)) {
			fprintf(stderr, "infergate-bench: --json %s: %s\n", path, strerror(errno));
			rc = -1;
		}
		if (f && fclose(f) != 0 && rc == 0) {
			fprintf(stderr, "infergate-bench: --json %s: %s\n", path, strerror(errno));
			rc = -1;
		}
	}
	buf_free(&out);
	return rc;
}

static void jw_ms(json_w *w, const char *key, double v)
{
	jw_key(w, key);
	/* Round to a microsecond: the clock is ns but the JSON stays short. */
	jw_double(w, round(v * 1000.0) / 1000.0);
}

void bench_report_record(FILE *f, const bench_record *rec)
{
	buf out;
	buf_init(&out, 1 << 20);
	json_w w;
	jw_init(&w, &out);
	jw_obj_begin(&w);
	jw_key(&w, "id");
	jw_uint(&w, rec->id);
	jw_key(&w, "warmup");
	jw_bool(&w, rec->warmup);
	if (rec->conv >= 0) {
		jw_key(&w, "conversation");
		jw_int(&w, rec->conv);
		jw_key(&w, "turn");
		jw_int(&w, rec->turn);
	}
	jw_ms(&w, "scheduled_ms", (double)rec->scheduled_ns / 1e6);
	jw_ms(&w, "sent_ms", (double)rec->sent_ns / 1e6);
	jw_ms(&w, "done_ms", (double)rec->done_ns / 1e6);
	jw_key(&w, "ttft_ms");
	if (rec->err == ERR_NONE && rec->ttft_ms >= 0)
		jw_double(&w, round(rec->ttft_ms * 1000.0) / 1000.0);
	else
		jw_null(&w);
	jw_ms(&w, "e2e_ms", rec->e2e_ms);
	jw_key(&w, "tpot_ms");
	if (rec->tpot_ms >= 0)
		jw_double(&w, round(rec->tpot_ms * 1000.0) / 1000.0);
	else
		jw_null(&w);
	jw_key(&w, "itl_count");
	jw_uint(&w, rec->itl_count);
	jw_ms(&w, "itl_mean_ms", rec->itl_mean_ms);
	jw_ms(&w, "itl_max_ms", rec->itl_max_ms);
	jw_key(&w, "output_tokens");
	jw_uint(&w, rec->output_tokens);
	jw_key(&w, "prompt_tokens");
	jw_uint(&w, rec->prompt_tokens);
	jw_key(&w, "chunks");
	jw_uint(&w, rec->chunks);
	jw_key(&w, "usage");
	jw_bool(&w, rec->usage_seen);
	jw_key(&w, "status");
	jw_int(&w, rec->status);
	jw_key(&w, "error");
	if (rec->err == ERR_NONE)
		jw_null(&w);
	else
		jw_str(&w, bench_err_name(rec->err));
	if (rec->err != ERR_NONE && rec->err_detail[0]) {
		jw_key(&w, "error_detail");
		jw_str(&w, rec->err_detail);
	}
	jw_key(&w, "region");
	jw_str(&w, rec->region);
	jw_key(&w, "endpoint");
	jw_str(&w, rec->endpoint);
	jw_obj_end(&w);
	buf_append(&out, "\n", 1);
	if (!w.error)
		fwrite(buf_rptr(&out), 1, buf_rlen(&out), f);
	buf_free(&out);
}
