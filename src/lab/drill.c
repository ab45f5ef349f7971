/*
 * drill.c — `infergate-lab drill`: the reference system's failover test, phase
 * by phase, with its fixed waits (20 s + 45 s, checked by eye) replaced by
 * measurement.
 *
 *   1 verify    every server answers /health 200, both gateways are ready
 *   2 client    the drill runs as the client inside the US region
 *   3 baseline  "What is the capital of France?" through the US gateway,
 *               served in the US; the steady client stream starts
 *   4-6 outage  for each flavour (graceful SIGTERM, crash SIGKILL, network
 *               partition): the outage and, with it, one streamed client
 *               request; the time until the first answer from Europe, then
 *               "What is the capital of Germany?" through the same US
 *               gateway, served by Europe with a normal answer
 *   7 restore   servers started again / link up; time until they are ready and
 *               until the US gateway serves from the US again
 *   8 check     the US gateway serves from the US, the European one from Europe
 *   9 cleanup   the steady stream stops; in-flight requests finish
 * During all of it a steady stream of requests (streaming and not, at --rate,
 * in-flight capped) runs through the US gateway. Failed requests (no answer,
 * an error status, a non-streaming body cut) and broken streams (cut after
 * their first byte) are counted apart, so the drill can require zero of the
 * first now and zero of both with --strict-streams.
 *
 * One event loop (core ev.h) drives everything: the phases are written as
 * sequential code that runs the loop until a condition holds or a time limit
 * passes (run_until), so the steady stream never stops while the drill waits.
 * Outage and restore steps are lab actions, or shell commands for a real
 * deployment (--outage-cmd/--restore-cmd). Not here: the report (drill_report.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/http_client.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sse.h"
#include "core/util.h"
#include "lab/drill.h"
#include "lab/lab.h"

#define DRILL_MAX_INFLIGHT_DEFAULT 32

typedef struct drill_opts {
	const char *state;
	double rate; /* steady requests per second */
	int max_tokens_steady, max_tokens_question;
	uint64_t baseline_ms, outage_ms, settle_ms;
	uint64_t failover_timeout_ms, restore_timeout_ms;
	char flavours[128];
	int strict_streams;
	const char *json_path, *svg_path;
	int max_inflight;
	const char *gateway_local, *gateway_remote;
	const char *outage_cmd, *restore_cmd;
	const char *model;
	const char *local_region, *remote_region;
	int quiet;
} drill_opts;

typedef struct drill drill;

/* A request in flight. Owner: the drill; freed in on_done. */
typedef struct drill_call {
	drill *d;
	size_t rec;
	sse_parser sse;
	int saw_done, saw_error, saw_content;
	buf req_body;                   /* the request's, sent from here until on_done */
	buf body;                       /* non-streaming answers, and question texts */
	buf text;                       /* streamed content, questions only */
	struct drill_call *prev, *next; /* the drill's list of calls in flight */
} drill_call;

/* A health probe of one address on the loop. */
typedef struct drill_probe {
	hc_pool *pool;
	int in_flight;
	int last_status;
	uint64_t last_ms;
} drill_probe;

struct drill {
	ev_loop *loop;
	drill_opts o;
	lab_state *lab; /* NULL for an external deployment */
	drill_result r;
	hc_pool *gw[2]; /* 0 the local gateway, 1 the remote one */
	uint64_t t0_ns;
	int cur_phase;
	int steady_on;
	uint64_t steady_timer;
	uint64_t steady_seq;
	size_t in_flight;
	drill_call *calls; /* in flight, freed at the end if still there */
	int stop;          /* SIGINT/SIGTERM */
	drill_probe probes[LAB_MAX_NODES];
};

static double now_ms(const drill *d) { return (double)(time_mono_ns() - d->t0_ns) / 1e6; }

static void say(drill *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(drill *d, const char *fmt, ...)
{
	if (d->o.quiet) return;
	va_list ap;
	va_start(ap, fmt);
	printf("[%7.2fs] ", now_ms(d) / 1000.0);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static void add_check(drill *d, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_check(drill *d, int ok, const char *fmt, ...)
{
	drill_result *r = &d->r;
	if (r->n_checks >= ARRAY_LEN(r->checks)) return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->checks[r->n_checks], sizeof r->checks[0], fmt, ap);
	va_end(ap);
	r->check_ok[r->n_checks++] = ok;
	say(d, "%s %s", ok ? "ok:  " : "FAIL:", r->checks[r->n_checks - 1]);
}

static int phase_begin(drill *d, const char *name, int kind, int flavour)
{
	drill_result *r = &d->r;
	double t = now_ms(d);
	if (r->n_phases) {
		drill_phase *prev = &r->phases[r->n_phases - 1];
		prev->t_end_ms = t;
		say(d, "phase %s: %.1f s", prev->name, (prev->t_end_ms - prev->t_begin_ms) / 1000.0);
	}
	if (r->n_phases >= DRILL_MAX_PHASES) return d->cur_phase;
	drill_phase *p = &r->phases[r->n_phases];
	str_copy(p->name, name, sizeof p->name);
	p->kind = kind;
	p->flavour = flavour;
	p->t_begin_ms = t;
	p->t_end_ms = t;
	d->cur_phase = (int)r->n_phases++;
	return d->cur_phase;
}

/* ------------------------------------------------------------ requests */

static int region_of(const drill *d, const char *v, size_t n)
{
	if (n == strlen(d->r.local_region) && !memcmp(v, d->r.local_region, n)) return 0;
	if (n == strlen(d->r.remote_region) && !memcmp(v, d->r.remote_region, n)) return 1;
	return 2;
}

static int on_head(hc_req *req, int status, const http_header *h, size_t n, void *arg)
{
	drill_call *c = arg;
	drill_rec *rec = &c->d->r.recs[c->rec];
	rec->t_head_ms = now_ms(c->d);
	rec->status = status;
	for (size_t i = 0; i < n; i++) {
		if (str_ieq(h[i].name, h[i].name_len, "x-infergate-region"))
			rec->region = (int16_t)region_of(c->d, h[i].value, h[i].value_len);
		else if (str_ieq(h[i].name, h[i].name_len, "x-infergate-endpoint"))
			snprintf(rec->endpoint, sizeof rec->endpoint, "%.*s", (int)h[i].value_len, h[i].value);
	}
	return 0;
}

static int on_event(void *arg, const char *event, const char *data, size_t len, const char *id)
{
	drill_call *c = arg;
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		c->saw_done = 1;
		return 0;
	}
	json_doc *doc = json_parse(data, len, 0, NULL);
	if (!doc) {
		c->saw_error = 1;
		return 0;
	}
	const json_val *root = json_root(doc);
	if (json_get(root, "error") || strcmp(event, "message")) c->saw_error = 1;
	const json_val *delta = json_get(json_at(json_get(root, "choices"), 0), "delta");
	const char *content = json_str(json_get(delta, "content"), NULL);
	if (content) {
		c->saw_content = 1;
		if (buf_rlen(&c->text) < 4096) buf_puts(&c->text, content);
	}
	json_doc_free(doc);
	return 0;
}

static void on_body(hc_req *req, const char *data, size_t len, void *arg)
{
	drill_call *c = arg;
	drill_rec *rec = &c->d->r.recs[c->rec];
	if (rec->stream && rec->status == 200) {
		if (sse_feed(&c->sse, data, len) < 0) c->saw_error = 1;
	} else {
		buf_append(&c->body, data, len);
	}
}

/* The text of a non-streaming chat answer into rec->detail; 0 when it is one. */
static int check_answer(drill_call *c, drill_rec *rec)
{
	json_doc *doc = json_parse(buf_rptr(&c->body), buf_rlen(&c->body), 0, NULL);
	if (!doc) {
		snprintf(rec->detail, sizeof rec->detail, "answer is not JSON");
		return -1;
	}
	const json_val *ch = json_at(json_get(json_root(doc), "choices"), 0);
	const json_val *msg = json_get(ch, "message");
	int ok = msg && json_get(ch, "finish_reason");
	if (ok) {
		const char *t = json_str(json_get(msg, "content"), "");
		buf_reset(&c->text);
		buf_puts(&c->text, t);
	} else {
		snprintf(rec->detail, sizeof rec->detail, "answer has no choices[0].message");
	}
	json_doc_free(doc);
	return ok ? 0 : -1;
}

static void call_free(drill *d, drill_call *c)
{
	if (c->prev) c->prev->next = c->next;
	else d->calls = c->next;
	if (c->next) c->next->prev = c->prev;
	sse_parser_free(&c->sse);
	buf_free(&c->req_body);
	buf_free(&c->body);
	buf_free(&c->text);
	free(c);
	d->in_flight--;
}

static void on_done(hc_req *req, int err, void *arg)
{
	drill_call *c = arg;
	drill *d = c->d;
	drill_rec *rec = &d->r.recs[c->rec];
	rec->t_end_ms = now_ms(d);
	rec->err = err;
	if (rec->status != 200) {
		rec->outcome = DRILL_FAILED;
		if (err != HC_OK && !rec->status) snprintf(rec->detail, sizeof rec->detail, "%s", hc_err_name(err));
		else snprintf(rec->detail, sizeof rec->detail, "status %d %.60s", rec->status, buf_rptr(&c->body));
	} else if (rec->stream) {
		if (err == HC_OK && c->saw_done && !c->saw_error) rec->outcome = DRILL_OK;
		else {
			rec->outcome = DRILL_BROKEN;
			snprintf(rec->detail, sizeof rec->detail, "stream cut: %s%s%s", hc_err_name(err),
				 c->saw_done ? "" : ", no [DONE]", c->saw_error ? ", error event" : "");
		}
	} else if (err != HC_OK) {
		rec->outcome = DRILL_FAILED;
		snprintf(rec->detail, sizeof rec->detail, "body cut: %s", hc_err_name(err));
	} else {
		rec->outcome = check_answer(c, rec) == 0 ? DRILL_OK : DRILL_FAILED;
	}
	if (rec->outcome == DRILL_OK && rec->kind != DRILL_STEADY)
		snprintf(rec->detail, sizeof rec->detail, "%.78s", buf_rptr(&c->text));
	call_free(d, c);
}

static const char *const steady_prompts[] = {
	"What is the capital of Italy?",
	"Name three rivers in Europe.",
	"Write one sentence about the sea.",
	"What is two plus two?",
	"Say hello in French.",
};

/* Starts one request; returns its record index, or -1 (cap or allocation). */
static int send_req(drill *d, int via, int kind, int stream, const char *question, int max_tokens)
{
	drill_result *r = &d->r;
	if (r->n_recs >= DRILL_MAX_RECS) return -1;
	drill_call *c = calloc(1, sizeof *c);
	if (!c) return -1;
	size_t idx = r->n_recs++;
	drill_rec *rec = &r->recs[idx];
	memset(rec, 0, sizeof *rec);
	rec->kind = (uint8_t)kind;
	rec->stream = (uint8_t)stream;
	rec->via = (uint8_t)via;
	rec->phase = (int16_t)d->cur_phase;
	rec->region = -1;
	rec->t_start_ms = now_ms(d);
	c->d = d;
	c->rec = idx;
	buf_init(&c->body, 1 << 20);
	buf_init(&c->text, 8192);
	sse_parser_init(&c->sse, 0, on_event, c);

	buf body;
	buf_init(&body, 8192);
	json_w w;
	jw_init(&w, &body);
	jw_obj_begin(&w);
	jw_key(&w, "model");
	jw_str(&w, d->o.model);
	jw_key(&w, "messages");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_key(&w, "role");
	jw_str(&w, "user");
	jw_key(&w, "content");
	jw_str(&w, question);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_key(&w, "max_tokens");
	jw_int(&w, max_tokens);
	if (stream) {
		jw_key(&w, "stream");
		jw_bool(&w, 1);
	}
	jw_obj_end(&w);
	hc_callbacks cb = {on_head, on_body, on_done};
	/* Longer than the lab gateway's own limits (idle 150 s, whole 240 s),
	 * so its verdict reaches the client. */
	hc_timeouts to = {2000, 200000, 300000};
	d->in_flight++;
	c->next = d->calls;
	if (d->calls) d->calls->prev = c;
	d->calls = c;
	hc_req *req = hc_request(d->gw[via], "POST", "/v1/chat/completions", "Content-Type: application/json\r\n",
				 buf_rptr(&body), buf_rlen(&body), &cb, c, &to);
	c->req_body = body; /* hc_request sends it from here: freed with the call */
	if (!req) {
		rec->outcome = DRILL_FAILED;
		rec->t_end_ms = rec->t_start_ms;
		snprintf(rec->detail, sizeof rec->detail, "could not start");
		call_free(d, c);
	}
	return (int)idx;
}

static int64_t on_steady(ev_loop *loop, uint64_t id, void *arg)
{
	drill *d = arg;
	if (!d->steady_on) {
		d->steady_timer = 0;
		return -1;
	}
	if (d->in_flight >= (size_t)d->o.max_inflight) {
		/* Counted, never hidden: a skipped arrival is load the servers did not get. */
		d->r.skipped++;
		if (d->r.n_phases) d->r.phases[d->cur_phase].skipped++;
	} else {
		uint64_t k = d->steady_seq++;
		send_req(d, 0, DRILL_STEADY, (int)(k & 1), steady_prompts[k % ARRAY_LEN(steady_prompts)],
			 d->o.max_tokens_steady);
	}
	return (int64_t)(1000.0 / d->o.rate);
}

/* ------------------------------------------------------------ waiting */

typedef int drill_cond(drill *d, void *arg);

/* Runs the loop until cond holds (1), timeout_ms passes or a signal stops the
 * drill. Returns 0 when the condition held, -1 otherwise. cond NULL: just wait. */
static int run_until(drill *d, drill_cond *cond, void *arg, uint64_t timeout_ms)
{
	uint64_t deadline = time_mono_ms() + timeout_ms;
	for (;;) {
		if (cond && cond(d, arg)) return 0;
		if (d->stop) return -1;
		uint64_t t = time_mono_ms();
		if (t >= deadline) return cond ? -1 : 0;
		uint64_t left = deadline - t;
		ev_run_once(d->loop, (int)MIN(left, 20));
		lab_reap();
	}
}

static int cond_rec_done(drill *d, void *arg)
{
	return d->r.recs[(size_t)(intptr_t)arg].outcome != DRILL_PENDING;
}

/* Asks one question and waits for the whole answer. Returns the record index. */
static int ask(drill *d, int via, int kind, const char *question, int max_tokens)
{
	int idx = send_req(d, via, kind, 0, question, max_tokens);
	if (idx < 0) return -1;
	run_until(d, cond_rec_done, (void *)(intptr_t)idx, 310000);
	return idx;
}

typedef struct first_from {
	int region;
	double after_ms;
	double at_ms;
} first_from;

/* The first response head from a region, for requests started after a time. */
static int cond_first_from(drill *d, void *arg)
{
	first_from *f = arg;
	for (size_t i = 0; i < d->r.n_recs; i++) {
		const drill_rec *rec = &d->r.recs[i];
		if (rec->region == f->region && rec->status == 200 && rec->t_head_ms >= f->after_ms &&
		    (f->at_ms < 0 || rec->t_head_ms < f->at_ms))
			f->at_ms = rec->t_head_ms;
	}
	return f->at_ms >= 0;
}

/* For the restore: a request *started* after the time and served by the region. */
static int cond_started_from(drill *d, void *arg)
{
	first_from *f = arg;
	for (size_t i = d->r.n_recs; i-- > 0;) {
		const drill_rec *rec = &d->r.recs[i];
		if (rec->t_start_ms < f->after_ms) break;
		if (rec->region == f->region && rec->status == 200 && (f->at_ms < 0 || rec->t_head_ms < f->at_ms))
			f->at_ms = rec->t_head_ms;
	}
	return f->at_ms >= 0;
}

static void probe_done(hc_req *req, int err, void *arg)
{
	drill_probe *p = arg;
	p->in_flight = 0;
	p->last_status = err == HC_OK ? hc_status(req) : 0;
}

/* 1 when every local server answers /health 200 (probes sent as needed). */
static int cond_local_ready(drill *d, void *arg)
{
	int all = 1;
	for (size_t i = 0; i < d->lab->n_nodes; i++) {
		lab_node *n = &d->lab->nodes[i];
		if (strcmp(n->role, "server") || (arg == NULL && n->region != 0)) continue;
		drill_probe *p = &d->probes[i];
		if (!p->pool) {
			char e[128];
			p->pool = hc_pool_new(d->loop, n->addr, 2, e, sizeof e);
			if (!p->pool) return 0;
		}
		if (p->last_status == 200) continue;
		all = 0;
		uint64_t t = time_mono_ms();
		if (!p->in_flight && t - p->last_ms >= 100) {
			hc_callbacks cb = {NULL, NULL, probe_done};
			hc_timeouts to = {500, 1000, 1000};
			p->in_flight = 1;
			p->last_ms = t;
			if (!hc_request(p->pool, "GET", "/health", NULL, NULL, 0, &cb, p, &to)) p->in_flight = 0;
		}
	}
	return all;
}

static void probes_reset(drill *d)
{
	for (size_t i = 0; i < LAB_MAX_NODES; i++) d->probes[i].last_status = 0;
}

/* ------------------------------------------------------------ outages */

typedef struct cmd_wait {
	pid_t pid;
	int status;
} cmd_wait;

static int cond_cmd_done(drill *d, void *arg)
{
	cmd_wait *w = arg;
	int st;
	pid_t r = waitpid(w->pid, &st, WNOHANG);
	if (r == w->pid) {
		w->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		return 1;
	}
	if (r == -1 && errno != EINTR) {
		w->status = 127;
		return 1;
	}
	return 0;
}

/* Runs a shell command while the loop goes on. Returns its exit status, -1 on timeout. */
static int run_cmd(drill *d, const char *cmd, const char *what)
{
	pid_t pid = fork();
	if (pid == -1) return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	cmd_wait w = {pid, -1};
	if (run_until(d, cond_cmd_done, &w, 300000) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		say(d, "%s command timed out: %s", what, cmd);
		return -1;
	}
	if (w.status) say(d, "%s command exited %d: %s", what, w.status, cmd);
	return w.status;
}

static int cond_local_exited(drill *d, void *arg)
{
	for (size_t i = 0; i < d->lab->n_nodes; i++) {
		lab_node *n = &d->lab->nodes[i];
		if (!strcmp(n->role, "server") && n->region == 0 && lab_pid_alive(n->pid)) return 0;
	}
	return 1;
}

static void signal_local(drill *d, int sig)
{
	for (size_t i = 0; i < d->lab->n_nodes; i++) {
		lab_node *n = &d->lab->nodes[i];
		if (!strcmp(n->role, "server") && n->region == 0 && n->pid > 0) kill(n->pid, sig);
	}
}

static int do_outage(drill *d, drill_flavour *f)
{
	if (!d->lab) return run_cmd(d, d->o.outage_cmd, "outage") == 0 ? 0 : -1;
	if (!strcmp(f->name, "graceful") || !strcmp(f->name, "crash")) {
		signal_local(d, !strcmp(f->name, "crash") ? SIGKILL : SIGTERM);
		return 0;
	}
	/* partition */
	for (size_t i = 0; i < d->lab->n_nodes; i++) {
		lab_node *n = &d->lab->nodes[i];
		if (strcmp(n->role, "server") || n->region != 0) continue;
		if (d->lab->netns) {
			if (lab_net_link(d->lab, n, 0) != 0) return -1;
		} else {
			kill(n->pid, SIGSTOP);
		}
	}
	return 0;
}

static int do_restore(drill *d, drill_flavour *f)
{
	if (!d->lab) return run_cmd(d, d->o.restore_cmd, "restore") == 0 ? 0 : -1;
	if (!strcmp(f->name, "partition")) {
		for (size_t i = 0; i < d->lab->n_nodes; i++) {
			lab_node *n = &d->lab->nodes[i];
			if (strcmp(n->role, "server") || n->region != 0) continue;
			if (d->lab->netns) {
				if (lab_net_link(d->lab, n, 1) != 0) return -1;
			} else {
				kill(n->pid, SIGCONT);
			}
		}
		return 0;
	}
	/* A server still draining holds its address: wait, then insist. */
	if (run_until(d, cond_local_exited, NULL, 30000) < 0) {
		signal_local(d, SIGKILL);
		run_until(d, cond_local_exited, NULL, 5000);
	}
	for (size_t i = 0; i < d->lab->n_nodes; i++) {
		lab_node *n = &d->lab->nodes[i];
		if (strcmp(n->role, "server") || n->region != 0) continue;
		char err[256];
		if (lab_start_node(d->lab, n, err, sizeof err) < 0) {
			say(d, "cannot start %s again: %s", n->name, err);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ the drill */

static void run_flavour(drill *d, drill_flavour *f, int fi)
{
	drill_result *r = &d->r;
	char pname[48];
	snprintf(pname, sizeof pname, "%s outage", f->name);
	phase_begin(d, pname, PH_OUTAGE, fi);
	f->t_outage_ms = now_ms(d);
	const char *how = !d->lab                        ? d->o.outage_cmd
			  : !strcmp(f->name, "graceful") ? "SIGTERM to the servers (scale to zero)"
			  : !strcmp(f->name, "crash")    ? "SIGKILL to the servers"
			  : d->lab->netns                ? "the servers' links cut (ip link set down)"
							 : "the servers stopped (SIGSTOP: no link to cut on loopback)";
	say(d, "outage %s of %s: %s", f->name, r->local_region, how);
	if (do_outage(d, f) < 0) add_check(d, 0, "%s: the outage step failed", f->name);
	/* A client arriving with the outage (streamed: its head comes with the
	 * first token), so the figure below is the system's, not the wait for the
	 * steady stream's next tick. Outside the in-flight cap: one request. */
	uint64_t k = d->steady_seq++;
	send_req(d, 0, DRILL_STEADY, 1, steady_prompts[k % ARRAY_LEN(steady_prompts)], d->o.max_tokens_steady);
	first_from ff = {1, f->t_outage_ms, -1};
	if (run_until(d, cond_first_from, &ff, d->o.failover_timeout_ms) == 0) {
		f->failover_ms = ff.at_ms - f->t_outage_ms;
		say(d, "first answer from %s %.0f ms after the outage", r->remote_region, f->failover_ms);
	} else {
		f->failover_ms = -1;
	}
	add_check(d, f->failover_ms >= 0, "%s: traffic served by %s after the outage (%s)", f->name, r->remote_region,
		  f->failover_ms >= 0 ? "measured" : "never within the time limit");
	f->question_rec = ask(d, 0, DRILL_QUESTION, "What is the capital of Germany?", d->o.max_tokens_question);
	if (f->question_rec >= 0) {
		drill_rec *q = &r->recs[f->question_rec];
		add_check(d, q->outcome == DRILL_OK && q->region == 1,
			  "%s: \"What is the capital of Germany?\" through the %s gateway: %s by %s in %.0f ms", f->name,
			  r->local_region, q->outcome == DRILL_OK ? "answered" : "FAILED",
			  q->region == 0 ? r->local_region : q->region == 1 ? r->remote_region
									    : "nobody",
			  q->t_end_ms - q->t_start_ms);
	}
	if (!strcmp(f->name, "graceful") && d->lab) {
		if (run_until(d, cond_local_exited, NULL, 30000) == 0) f->drain_ms = now_ms(d) - f->t_outage_ms;
	}
	double hold_until = f->t_outage_ms + (double)d->o.outage_ms;
	if (now_ms(d) < hold_until) run_until(d, NULL, NULL, (uint64_t)(hold_until - now_ms(d)));

	snprintf(pname, sizeof pname, "%s restore", f->name);
	phase_begin(d, pname, PH_RESTORE, fi);
	f->t_restore_ms = now_ms(d);
	say(d, "restore %s: %s", r->local_region,
	    !d->lab ? d->o.restore_cmd : !strcmp(f->name, "partition") ? (d->lab->netns ? "link up" : "SIGCONT")
								       : "servers started again");
	if (do_restore(d, f) < 0) add_check(d, 0, "%s: the restore step failed", f->name);
	if (d->lab) {
		probes_reset(d);
		if (run_until(d, cond_local_ready, NULL, d->o.restore_timeout_ms) == 0)
			f->ready_ms = now_ms(d) - f->t_restore_ms;
	}
	first_from back = {0, f->t_restore_ms, -1};
	if (run_until(d, cond_started_from, &back, d->o.restore_timeout_ms) == 0) {
		f->back_ms = back.at_ms - f->t_restore_ms;
		say(d, "%s back in rotation %.0f ms after the restore (servers ready after %.0f ms)", r->local_region,
		    f->back_ms, f->ready_ms);
	} else {
		f->back_ms = -1;
	}
	add_check(d, f->back_ms >= 0, "%s: %s back in rotation after the restore", f->name, r->local_region);

	snprintf(pname, sizeof pname, "%s check", f->name);
	phase_begin(d, pname, PH_CHECK, fi);
	/* Both gateways at once: each region answers its own. */
	f->verify_local_rec = send_req(d, 0, DRILL_VERIFY, 0, "What is the capital of France?", d->o.max_tokens_steady);
	f->verify_remote_rec = send_req(d, 1, DRILL_VERIFY, 0, "What is the capital of Spain?", d->o.max_tokens_steady);
	if (f->verify_local_rec >= 0) run_until(d, cond_rec_done, (void *)(intptr_t)f->verify_local_rec, 310000);
	if (f->verify_remote_rec >= 0) run_until(d, cond_rec_done, (void *)(intptr_t)f->verify_remote_rec, 310000);
	const drill_rec *vl = f->verify_local_rec >= 0 ? &r->recs[f->verify_local_rec] : NULL;
	const drill_rec *vr = f->verify_remote_rec >= 0 ? &r->recs[f->verify_remote_rec] : NULL;
	add_check(d, vl && vr && vl->outcome == DRILL_OK && vl->region == 0 && vr->outcome == DRILL_OK && vr->region == 1,
		  "%s: both regions serve again (%s gateway -> %s, %s gateway -> %s)", f->name, r->local_region,
		  vl && vl->region == 0 ? r->local_region : "WRONG", r->remote_region,
		  vr && vr->region == 1 ? r->remote_region : "WRONG");
	run_until(d, NULL, NULL, d->o.settle_ms);
}

static void on_stop_signal(ev_loop *loop, int signo, void *arg)
{
	drill *d = arg;
	d->stop = 1;
}

static void tally(drill *d)
{
	drill_result *r = &d->r;
	for (size_t i = 0; i < r->n_recs; i++) {
		const drill_rec *rec = &r->recs[i];
		int fi = rec->phase >= 0 ? r->phases[rec->phase].flavour : -1;
		/* A request cut by an outage belongs to that outage, whichever
		 * phase it started in. */
		for (size_t k = 0; k < r->n_fl; k++)
			if (r->fl[k].t_outage_ms >= rec->t_start_ms && r->fl[k].t_outage_ms <= rec->t_end_ms) fi = (int)k;
		if (fi < 0) continue;
		drill_flavour *f = &r->fl[fi];
		if (rec->outcome == DRILL_FAILED) f->failed++;
		if (rec->outcome == DRILL_BROKEN) f->broken++;
		fi = rec->phase >= 0 ? r->phases[rec->phase].flavour : -1;
		if (fi < 0) continue;
		f = &r->fl[fi];
		/* Before the gateway has noticed, the dead region may still be
		 * tried (and a partitioned one may answer late); once the failover
		 * question has been answered elsewhere, nothing may go there. */
		double settled = f->question_rec >= 0 ? r->recs[f->question_rec].t_end_ms : f->t_outage_ms;
		if (r->phases[rec->phase].kind == PH_OUTAGE && rec->region == 0 && rec->t_start_ms >= settled)
			f->wrong_region++;
	}
}

static int drill_run(drill *d)
{
	drill_result *r = &d->r;
	d->t0_ns = time_mono_ns();
	say(d, "drill: client in %s -> gateway %s; %zu outage flavour%s; steady %.1f req/s (half streaming), max_tokens %d",
	    r->local_region, r->gateway_local, r->n_fl, r->n_fl == 1 ? "" : "s", d->o.rate, d->o.max_tokens_steady);

	/* 1-2: verify state; the client runs in the local region. */
	phase_begin(d, "verify", PH_VERIFY, -1);
	if (d->lab) {
		int ok = run_until(d, cond_local_ready, (void *)1, 60000) == 0;
		add_check(d, ok, "model servers of both regions answer /health 200");
		if (!ok) return -1;
		/* No traffic yet: a blocking wait is harmless here. */
		ok = lab_wait_gateway_all_up(r->gateway_local, 30000) == 0 && lab_wait_gateway_all_up(r->gateway_remote, 30000) == 0;
		add_check(d, ok, "both gateways see every endpoint up");
		if (!ok) return -1;
	}
	/* 3: baseline. */
	phase_begin(d, "baseline", PH_BASELINE, -1);
	d->steady_on = 1;
	d->steady_timer = ev_timer_add(d->loop, 0, on_steady, d);
	r->baseline_rec = ask(d, 0, DRILL_QUESTION, "What is the capital of France?", d->o.max_tokens_question);
	if (r->baseline_rec >= 0) {
		const drill_rec *b = &r->recs[r->baseline_rec];
		add_check(d, b->outcome == DRILL_OK && b->region == 0,
			  "baseline: \"What is the capital of France?\" through the %s gateway: %s by %s in %.0f ms",
			  r->local_region, b->outcome == DRILL_OK ? "answered" : "FAILED",
			  b->region == 0 ? r->local_region : b->region == 1 ? r->remote_region
									    : "nobody",
			  b->t_end_ms - b->t_start_ms);
	}
	run_until(d, NULL, NULL, d->o.baseline_ms);

	/* 4-8: each outage flavour. */
	for (size_t i = 0; i < r->n_fl && !d->stop; i++) run_flavour(d, &r->fl[i], (int)i);

	/* 9: stop the client; let what is in flight finish. */
	phase_begin(d, "cleanup", PH_CLEANUP, -1);
	d->steady_on = 0;
	ev_timer_del(d->loop, d->steady_timer);
	uint64_t deadline = time_mono_ms() + 120000;
	while (d->in_flight && time_mono_ms() < deadline && !d->stop) ev_run_once(d->loop, 20);
	drill_phase *last = &r->phases[r->n_phases - 1];
	last->t_end_ms = now_ms(d);
	say(d, "phase %s: %.1f s", last->name, (last->t_end_ms - last->t_begin_ms) / 1000.0);
	r->t_total_ms = now_ms(d);
	say(d, "drill: %.1f s", r->t_total_ms / 1000.0);
	if (d->stop) add_check(d, 0, "the drill was interrupted");
	return 0;
}

static void finish_checks(drill *d)
{
	drill_result *r = &d->r;
	tally(d);
	size_t failed = 0, broken = 0, wrong_baseline = 0, pending = 0;
	/* A baseline request still in flight when the first outage began may
	 * rightly be retried elsewhere: it belongs to that outage (tally). */
	double first_outage_ms = r->n_fl && r->fl[0].t_outage_ms > 0 ? r->fl[0].t_outage_ms : r->t_total_ms + 1;
	for (size_t i = 0; i < r->n_recs; i++) {
		const drill_rec *rec = &r->recs[i];
		failed += rec->outcome == DRILL_FAILED;
		broken += rec->outcome == DRILL_BROKEN;
		pending += rec->outcome == DRILL_PENDING;
		if (rec->phase >= 0 && r->phases[rec->phase].kind == PH_BASELINE && rec->outcome == DRILL_OK &&
		    rec->region != 0 && rec->t_end_ms < first_outage_ms)
			wrong_baseline++;
	}
	add_check(d, failed == 0, "requests failed: %zu of %zu (goal: none)", failed, r->n_recs);
	if (r->strict_streams) add_check(d, broken == 0, "streams broken: %zu (--strict-streams: goal none)", broken);
	else if (broken) say(d, "note: %zu streams broken mid-stream (not counted as failures without --strict-streams)", broken);
	add_check(d, wrong_baseline == 0, "baseline served in %s only (%zu elsewhere)", r->local_region, wrong_baseline);
	for (size_t i = 0; i < r->n_fl; i++)
		add_check(d, r->fl[i].wrong_region == 0, "%s: no request served by %s after the failover (%d were)",
			  r->fl[i].name, r->local_region, r->fl[i].wrong_region);
	if (pending) add_check(d, 0, "%zu requests never finished", pending);
	r->passed = 1;
	for (size_t i = 0; i < r->n_checks; i++) r->passed &= r->check_ok[i];
}

void drill_usage(void)
{
	fprintf(stderr,
		"usage: infergate-lab drill [--state DIR] [flags]\n"
		"  --flavours LIST        outages to run, in order (default graceful,crash,partition)\n"
		"  --rate R               steady client requests per second (default 5; half streaming)\n"
		"  --max-tokens N         max_tokens of the steady requests (default 16)\n"
		"  --question-max-tokens N  of the France/Germany questions (default 100)\n"
		"  --baseline SECONDS     baseline phase (default 3)\n"
		"  --outage SECONDS       each outage lasts at least this long (default 6)\n"
		"  --settle SECONDS       pause after each flavour (default 1)\n"
		"  --failover-timeout S   limit for the first answer from the other region (default 30)\n"
		"  --restore-timeout S    limit for servers ready / back in rotation (default 300)\n"
		"  --max-inflight N       steady requests in flight at most (default 32)\n"
		"  --strict-streams       broken streams fail the drill too\n"
		"  --json FILE            JSON report\n"
		"  --svg FILE             timeline picture\n"
		"  --quiet                only the table and the verdict\n"
		"a real deployment instead of the lab (docs/lab.md):\n"
		"  --gateway HOST:PORT    the local region's gateway (the client's)\n"
		"  --remote-gateway HOST:PORT  the other region's gateway\n"
		"  --outage-cmd CMD       shell command that takes the local region down\n"
		"  --restore-cmd CMD      shell command that brings it back\n"
		"  --model NAME           model name of the requests\n"
		"  --local-region NAME --remote-region NAME  (default us-east5, europe-west4)\n");
}

static int parse_secs(const char *v, uint64_t *ms)
{
	return parse_duration_ms(v, 1000, ms);
}

int drill_main(int argc, char **argv, lab_state *lab_given)
{
	static drill dd;
	drill *d = &dd;
	memset(d, 0, sizeof *d);
	drill_opts *o = &d->o;
	o->rate = 5;
	o->max_tokens_steady = 16;
	o->max_tokens_question = 100;
	o->baseline_ms = 3000;
	o->outage_ms = 6000;
	o->settle_ms = 1000;
	o->failover_timeout_ms = 30000;
	o->restore_timeout_ms = 300000;
	o->max_inflight = DRILL_MAX_INFLIGHT_DEFAULT;
	str_copy(o->flavours, "graceful,crash,partition", sizeof o->flavours);
	o->local_region = lab_region_names[0];
	o->remote_region = lab_region_names[1];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t n;
		int bad = 0;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			drill_usage();
			return 0;
		} else if (!strcmp(a, "--strict-streams")) {
			o->strict_streams = 1;
			continue;
		} else if (!strcmp(a, "--quiet")) {
			o->quiet = 1;
			continue;
		}
		if (!v) {
			fprintf(stderr, "drill: %s needs a value (or is unknown)\n", a);
			drill_usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--state")) o->state = v;
		else if (!strcmp(a, "--flavours")) str_copy(o->flavours, v, sizeof o->flavours);
		else if (!strcmp(a, "--rate")) {
			o->rate = atof(v);
			bad = o->rate <= 0 || o->rate > 1000;
		} else if (!strcmp(a, "--max-tokens")) {
			bad = parse_int64(v, 1, 100000, &n) < 0;
			o->max_tokens_steady = (int)n;
		} else if (!strcmp(a, "--question-max-tokens")) {
			bad = parse_int64(v, 1, 100000, &n) < 0;
			o->max_tokens_question = (int)n;
		} else if (!strcmp(a, "--baseline")) bad = parse_secs(v, &o->baseline_ms) < 0;
		else if (!strcmp(a, "--outage")) bad = parse_secs(v, &o->outage_ms) < 0;
		else if (!strcmp(a, "--settle")) bad = parse_secs(v, &o->settle_ms) < 0;
		else if (!strcmp(a, "--failover-timeout")) bad = parse_secs(v, &o->failover_timeout_ms) < 0;
		else if (!strcmp(a, "--restore-timeout")) bad = parse_secs(v, &o->restore_timeout_ms) < 0;
		else if (!strcmp(a, "--max-inflight")) {
			bad = parse_int64(v, 1, 10000, &n) < 0;
			o->max_inflight = (int)n;
		} else if (!strcmp(a, "--json")) o->json_path = v;
		else if (!strcmp(a, "--svg")) o->svg_path = v;
		else if (!strcmp(a, "--gateway")) o->gateway_local = v;
		else if (!strcmp(a, "--remote-gateway")) o->gateway_remote = v;
		else if (!strcmp(a, "--outage-cmd")) o->outage_cmd = v;
		else if (!strcmp(a, "--restore-cmd")) o->restore_cmd = v;
		else if (!strcmp(a, "--model")) o->model = v;
		else if (!strcmp(a, "--local-region")) o->local_region = v;
		else if (!strcmp(a, "--remote-region")) o->remote_region = v;
		else {
			fprintf(stderr, "drill: unknown flag %s\n", a);
			drill_usage();
			return 2;
		}
		if (bad) {
			fprintf(stderr, "drill: bad value for %s: %s\n", a, v);
			return 2;
		}
	}

	drill_result *r = &d->r;
	static lab_state loaded;
	if (lab_given) {
		/* The demo removes the lab afterwards: keep the reports beside it. */
		if (!o->json_path) o->json_path = "lab-drill.json";
		if (!o->svg_path) o->svg_path = "lab-drill.svg";
	}
	if (o->gateway_local) {
		if (!o->gateway_remote || !o->outage_cmd || !o->restore_cmd || !o->model) {
			fprintf(stderr, "drill: --gateway needs --remote-gateway, --outage-cmd, --restore-cmd and --model\n");
			return 2;
		}
		str_copy(r->mode, "external", sizeof r->mode);
		str_copy(r->backend, "external", sizeof r->backend);
		str_copy(o->flavours, "custom", sizeof o->flavours);
		str_copy(r->gateway_local, o->gateway_local, sizeof r->gateway_local);
		str_copy(r->gateway_remote, o->gateway_remote, sizeof r->gateway_remote);
	} else {
		if (!lab_given) {
			char dir[LAB_PATH_LEN], err[512];
			lab_state_dir_default(dir, sizeof dir, o->state);
			lab_state_init(&loaded, dir);
			if (lab_state_load(&loaded, err, sizeof err) < 0 || !loaded.complete) {
				fprintf(stderr, "drill: no complete lab in %s (%s): run `infergate-lab up` first, or give --gateway\n",
					dir, err);
				lab_state_free(&loaded);
				return 2;
			}
			lab_given = &loaded;
		}
		d->lab = lab_given;
		if (d->lab->netns && d->lab->client_ns[0] && lab_enter_netns(d->lab->client_ns) < 0) {
			fprintf(stderr, "drill: cannot enter the client namespace %s: %s\n", d->lab->client_ns, strerror(errno));
			return 1;
		}
		snprintf(r->mode, sizeof r->mode, "lab %s, latency by %s", d->lab->netns ? "netns" : "loopback",
			 d->lab->netem ? "tc netem" : "the relay");
		str_copy(r->backend, d->lab->sim ? "infergate-sim" : "infergate-server", sizeof r->backend);
		str_copy(r->gateway_local, d->lab->gateway[0], sizeof r->gateway_local);
		str_copy(r->gateway_remote, d->lab->gateway[1], sizeof r->gateway_remote);
		if (!o->model) o->model = d->lab->model_name;
	}
	str_copy(r->local_region, o->local_region, sizeof r->local_region);
	str_copy(r->remote_region, o->remote_region, sizeof r->remote_region);
	r->rate = o->rate;
	r->max_tokens_steady = o->max_tokens_steady;
	r->max_tokens_question = o->max_tokens_question;
	r->strict_streams = o->strict_streams;
	r->max_inflight = o->max_inflight;
	r->baseline_rec = -1;
	char fl[128];
	str_copy(fl, o->flavours, sizeof fl);
	for (char *t = strtok(fl, ","); t && r->n_fl < DRILL_MAX_FLAVOURS; t = strtok(NULL, ",")) {
		if (strcmp(t, "graceful") && strcmp(t, "crash") && strcmp(t, "partition") && strcmp(t, "custom")) {
			fprintf(stderr, "drill: unknown flavour %s (graceful, crash, partition)\n", t);
			return 2;
		}
		drill_flavour *f = &r->fl[r->n_fl++];
		memset(f, 0, sizeof *f);
		str_copy(f->name, t, sizeof f->name);
		f->failover_ms = f->ready_ms = f->back_ms = f->drain_ms = -1;
		f->question_rec = f->verify_local_rec = f->verify_remote_rec = -1;
	}
	r->recs = calloc(DRILL_MAX_RECS, sizeof *r->recs);
	d->loop = ev_new();
	if (!r->recs || !d->loop) {
		fprintf(stderr, "drill: out of memory\n");
		return 1;
	}
	char err[256];
	d->gw[0] = hc_pool_new(d->loop, r->gateway_local, 64, err, sizeof err);
	d->gw[1] = hc_pool_new(d->loop, r->gateway_remote, 8, err, sizeof err);
	if (!d->gw[0] || !d->gw[1]) {
		fprintf(stderr, "drill: gateway address: %s\n", err);
		return 2;
	}
	ev_signal(d->loop, SIGINT, on_stop_signal, d);
	ev_signal(d->loop, SIGTERM, on_stop_signal, d);

	drill_run(d);
	finish_checks(d);
	if (!o->quiet) printf("\n");
	drill_report_table(r);
	if (o->json_path) {
		if (drill_report_json(r, o->json_path) < 0) fprintf(stderr, "drill: cannot write %s: %s\n", o->json_path, strerror(errno));
		else printf("report: %s\n", o->json_path);
	}
	if (o->svg_path) {
		if (drill_report_svg(r, o->svg_path) < 0) fprintf(stderr, "drill: cannot write %s: %s\n", o->svg_path, strerror(errno));
		else printf("timeline: %s\n", o->svg_path);
	}
	int rc = r->passed ? 0 : 1;

	for (size_t i = 0; i < LAB_MAX_NODES; i++)
		if (d->probes[i].pool) hc_pool_free(d->probes[i].pool);
	hc_pool_free(d->gw[0]);
	hc_pool_free(d->gw[1]);
	while (d->calls) call_free(d, d->calls);
	ev_run_once(d->loop, 0);
	ev_free(d->loop);
	free(r->recs);
	if (d->lab == &loaded) lab_state_free(&loaded);
	return rc;
}
