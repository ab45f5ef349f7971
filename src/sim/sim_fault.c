/*
 * sim_fault.c — fault state, its JSON form and the budget-consuming decisions
 * (see sim_fault.h). No I/O.
 */
#include "sim/sim_fault.h"

#include <stdio.h>
#include <string.h>
#include "core/util.h"

const sim_fault_key sim_fault_keys[] = {
	{"health_fail", 'b', "/health answers 503"},
	{"error_status", 'n', "answer this 5xx status to completion requests"},
	{"error_rate", 'n', "chance (0..1] that a completion gets error_status (default 1)"},
	{"error_count", 'n', "answer error_status to the next N completions only"},
	{"refuse", 'b', "close the listening socket: connections are refused"},
	{"refuse_ms", 'n', "re-open the listener after this many ms (0: when cleared)"},
	{"hang", 's', "\"request\": never answer; \"head\": send the head, then stall"},
	{"hang_path", 's', "path prefix the hang applies to (default: every path but /sim/)"},
	{"close_after_chunks", 'n', "close streams abruptly after N data events (no [DONE])"},
	{"close_count", 'n', "cut the next N streams only"},
	{"slow_factor", 'n', "multiply every latency by this factor"},
	{"kv_usage", 'n', "report this kv_cache_usage_perc (0..1)"},
	{"waiting", 'n', "report this num_requests_waiting"},
	{"die_after_requests", 'n', "the process dies (SIGKILL) after N more completions"},
	{"metrics_garbage", 'b', "/metrics answers text that is not Prometheus"},
	{NULL, 0, NULL},
};

void sim_faults_clear(sim_faults *f)
{
	uint64_t rng = f->rng;
	memset(f, 0, sizeof(*f));
	f->error_rate = 1.0;
	f->close_after_chunks = -1;
	f->slow_factor = 1.0;
	f->kv_usage = -1.0;
	f->waiting = -1;
	f->rng = rng ? rng : (time_mono_ns() | 1);
}

#define FAIL(...) \
	do { \
		snprintf(err, err_len, __VA_ARGS__); \
		return -1; \
	} while (0)

static int want_bool(const json_val *v, int *out)
{
	if (json_is(v, JSON_NULL)) {
		*out = 0;
		return 0;
	}
	if (!json_is(v, JSON_TRUE) && !json_is(v, JSON_FALSE)) return -1;
	*out = json_bool(v, 0);
	return 0;
}

/* An integer in [min, max]; null gives off_value. */
static int want_int(const json_val *v, int64_t min, int64_t max, int64_t off_value, int64_t *out)
{
	int64_t x;
	if (json_is(v, JSON_NULL)) {
		*out = off_value;
		return 0;
	}
	if (json_int64(v, &x) < 0 || x < min || x > max) return -1;
	*out = x;
	return 0;
}

int sim_faults_apply(sim_faults *f, const json_val *obj, char *err, size_t err_len)
{
	sim_faults t = *f;
	int64_t x;
	if (!json_is(obj, JSON_OBJECT)) FAIL("the faults must be a JSON object");
	for (size_t i = 0; i < obj->u.obj.n; i++) {
		const char *k = obj->u.obj.members[i].key;
		const json_val *v = obj->u.obj.members[i].val;
		if (!strcmp(k, "health_fail")) {
			if (want_bool(v, &t.health_fail) < 0) FAIL("health_fail: expected true or false");
		} else if (!strcmp(k, "error_status")) {
			if (want_int(v, 0, 599, 0, &x) < 0 || (x != 0 && x < 400))
				FAIL("error_status: expected a status 400..599 or null");
			t.error_status = (int)x;
		} else if (!strcmp(k, "error_rate")) {
			double r = json_is(v, JSON_NULL) ? 1.0 : json_num(v, -1);
			if (!(r > 0 && r <= 1)) FAIL("error_rate: expected a number in (0, 1]");
			t.error_rate = r;
		} else if (!strcmp(k, "error_count")) {
			if (want_int(v, 0, INT64_MAX, 0, &t.error_count) < 0)
				FAIL("error_count: expected an integer >= 0");
		} else if (!strcmp(k, "refuse")) {
			if (want_bool(v, &t.refuse) < 0) FAIL("refuse: expected true or false");
		} else if (!strcmp(k, "refuse_ms")) {
			if (want_int(v, 0, INT64_MAX / 2, 0, &t.refuse_ms) < 0)
				FAIL("refuse_ms: expected an integer >= 0");
		} else if (!strcmp(k, "hang")) {
			const char *s = json_is(v, JSON_NULL)    ? "off"
					: json_is(v, JSON_FALSE) ? "off"
								 : json_str(v, NULL);
			if (!s) FAIL("hang: expected \"request\", \"head\" or \"off\"");
			if (!strcmp(s, "off") || !strcmp(s, "")) t.hang = SIM_HANG_OFF;
			else if (!strcmp(s, "request")) t.hang = SIM_HANG_REQUEST;
			else if (!strcmp(s, "head")) t.hang = SIM_HANG_HEAD;
			else FAIL("hang: expected \"request\", \"head\" or \"off\"");
		} else if (!strcmp(k, "hang_path")) {
			const char *s = json_is(v, JSON_NULL) ? "" : json_str(v, NULL);
			if (!s || strlen(s) >= sizeof(t.hang_path) || (s[0] && s[0] != '/'))
				FAIL("hang_path: expected a path prefix starting with /");
			str_copy(t.hang_path, s, sizeof(t.hang_path));
		} else if (!strcmp(k, "close_after_chunks")) {
			if (want_int(v, 0, INT64_MAX, -1, &t.close_after_chunks) < 0)
				FAIL("close_after_chunks: expected an integer >= 0 or null");
		} else if (!strcmp(k, "close_count")) {
			if (want_int(v, 0, INT64_MAX, 0, &t.close_count) < 0)
				FAIL("close_count: expected an integer >= 0");
		} else if (!strcmp(k, "slow_factor")) {
			double r = json_is(v, JSON_NULL) ? 1.0 : json_num(v, -1);
			if (!(r > 0 && r <= 10000)) FAIL("slow_factor: expected a number in (0, 10000]");
			t.slow_factor = r;
		} else if (!strcmp(k, "kv_usage")) {
			double r = json_is(v, JSON_NULL) ? -1.0 : json_num(v, -2);
			if (!json_is(v, JSON_NULL) && !(r >= 0 && r <= 1))
				FAIL("kv_usage: expected a number in [0, 1] or null");
			t.kv_usage = r;
		} else if (!strcmp(k, "waiting")) {
			if (want_int(v, 0, 1000000000, -1, &t.waiting) < 0)
				FAIL("waiting: expected an integer >= 0 or null");
		} else if (!strcmp(k, "die_after_requests")) {
			if (want_int(v, 0, INT64_MAX, 0, &t.die_after_requests) < 0)
				FAIL("die_after_requests: expected an integer >= 0 or null");
		} else if (!strcmp(k, "metrics_garbage")) {
			if (want_bool(v, &t.metrics_garbage) < 0) FAIL("metrics_garbage: expected true or false");
		} else if (!strcmp(k, "region")) {
			/* GET's output may be posted back as is; the region is not a fault. */
		} else {
			FAIL("unknown fault \"%.64s\"", k);
		}
	}
	*f = t;
	return 0;
}

void sim_faults_write(const sim_faults *f, json_w *w, const char *region)
{
	static const char *const hang_names[] = {"off", "request", "head"};
	jw_obj_begin(w);
	if (region) {
		jw_key(w, "region");
		jw_str(w, region);
	}
	jw_key(w, "health_fail");
	jw_bool(w, f->health_fail);
	jw_key(w, "error_status");
	if (f->error_status) jw_int(w, f->error_status);
	else jw_null(w);
	jw_key(w, "error_rate");
	jw_double(w, f->error_rate);
	jw_key(w, "error_count");
	jw_int(w, f->error_count);
	jw_key(w, "refuse");
	jw_bool(w, f->refuse);
	jw_key(w, "refuse_ms");
	jw_int(w, f->refuse_ms);
	jw_key(w, "hang");
	jw_str(w, hang_names[f->hang]);
	jw_key(w, "hang_path");
	jw_str(w, f->hang_path);
	jw_key(w, "close_after_chunks");
	if (f->close_after_chunks >= 0) jw_int(w, f->close_after_chunks);
	else jw_null(w);
	jw_key(w, "close_count");
	jw_int(w, f->close_count);
	jw_key(w, "slow_factor");
	jw_double(w, f->slow_factor);
	jw_key(w, "kv_usage");
	if (f->kv_usage >= 0) jw_double(w, f->kv_usage);
	else jw_null(w);
	jw_key(w, "waiting");
	if (f->waiting >= 0) jw_int(w, f->waiting);
	else jw_null(w);
	jw_key(w, "die_after_requests");
	if (f->die_after_requests) jw_int(w, f->die_after_requests);
	else jw_null(w);
	jw_key(w, "metrics_garbage");
	jw_bool(w, f->metrics_garbage);
	jw_obj_end(w);
}

/* xorshift64*: uniform in [0, 1). */
static double draw(sim_faults *f)
{
	uint64_t x = f->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	f->rng = x;
	return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

int sim_faults_take_error(sim_faults *f)
{
	if (!f->error_status) return 0;
	if (f->error_rate < 1.0 && draw(f) >= f->error_rate) return 0;
	int status = f->error_status;
	if (f->error_count > 0 && --f->error_count == 0) f->error_status = 0;
	return status;
}

int64_t sim_faults_take_close(sim_faults *f)
{
	if (f->close_after_chunks < 0) return -1;
	int64_t n = f->close_after_chunks;
	if (f->close_count > 0 && --f->close_count == 0) f->close_after_chunks = -1;
	return n;
}

int sim_faults_hang_for(const sim_faults *f, const char *path)
{
	/* /sim/ never hangs, so a hang can always be cleared. */
	if (f->hang == SIM_HANG_OFF || !strncmp(path, "/sim/", 5)) return SIM_HANG_OFF;
	if (f->hang_path[0]) return strncmp(path, f->hang_path, strlen(f->hang_path)) ? SIM_HANG_OFF : f->hang;
	return f->hang;
}
