/*
 * access_log.c — one JSON object per line per proxied request, to stdout or a
 * file, buffered by stdio and flushed before the loop sleeps (so a busy
 * gateway writes in large pieces and an idle one shows every line at once).
 *
 * Fields: time (RFC 3339, UTC, ms), client, method, path, model, stream,
 * status, pool, endpoint, region, tries, ttfb_ms, duration_ms, bytes (response
 * body bytes relayed), and error when the upstream failed. Not here: logs of
 * the admin paths (/metrics, /status...), which are not requests to models.
 */
#include "gateway/gateway.h"
#include "gateway/access_log.h"
#include "gateway/tenant.h"
#include "core/json.h"
#include "core/log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static void flush_hook(ev_loop *loop, void *arg)
{
	access_log_flush(arg);
}

int access_log_open(gw *g, const char *where, char *err, size_t err_len)
{
	access_log_close(g);
	if (!where || !*where) return 0;
	if (!strcmp(where, "-")) {
		g->access_log = stdout;
		g->access_log_owned = 0;
	} else {
		g->access_log = fopen(where, "ae");
		if (!g->access_log) {
			snprintf(err, err_len, "access log %s: %s", where, strerror(errno));
			return -1;
		}
		g->access_log_owned = 1;
	}
	buf_init(&g->log_line, 64 * 1024);
	ev_before_sleep(g->loop, flush_hook, g);
	return 0;
}

void access_log_close(gw *g)
{
	if (!g->access_log) return;
	ev_before_sleep_del(g->loop, flush_hook, g);
	fflush(g->access_log);
	if (g->access_log_owned) fclose(g->access_log);
	g->access_log = NULL;
	buf_free(&g->log_line);
}

void access_log_flush(gw *g)
{
	if (g->access_log) fflush(g->access_log);
}

void access_log_write(gw *g, const gw_call *c, uint64_t now_ms)
{
	if (!g->access_log) return;
	buf *b = &g->log_line;
	buf_reset(b);
	json_w w;
	jw_init(&w, b);
	char ts[40];
	double t = c->start_wall_s;
	time_t secs = (time_t)t;
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)((t - (double)secs) * 1000.0) % 1000);
	jw_obj_begin(&w);
	jw_key(&w, "time");
	jw_str(&w, ts);
	jw_key(&w, "client");
	jw_str(&w, c->client);
	jw_key(&w, "method");
	jw_str(&w, "POST");
	jw_key(&w, "path");
	jw_str(&w, c->path);
	jw_key(&w, "model");
	jw_str(&w, c->model);
	jw_key(&w, "tenant");
	jw_str(&w, c->tenant ? c->tenant->name : NULL);
	jw_key(&w, "stream");
	jw_bool(&w, c->stream);
	jw_key(&w, "status");
	jw_int(&w, c->status);
	jw_key(&w, "pool");
	jw_str(&w, c->pool->cfg.name);
	jw_key(&w, "endpoint");
	jw_str(&w, c->ep ? c->ep->label : NULL);
	jw_key(&w, "region");
	jw_str(&w, c->ep ? c->ep->region : NULL);
	jw_key(&w, "tries");
	jw_int(&w, c->tries);
	jw_key(&w, "resumes");
	jw_int(&w, c->resumes);
	jw_key(&w, "ttfb_ms");
	if (c->first_byte_ms) jw_int(&w, (int64_t)(c->first_byte_ms - c->start_ms));
	else jw_null(&w);
	jw_key(&w, "duration_ms");
	jw_int(&w, (int64_t)(now_ms - c->start_ms));
	jw_key(&w, "bytes");
	jw_uint(&w, c->bytes_out);
	jw_key(&w, "prompt_tokens");
	if (c->usage.prompt_tokens >= 0) jw_int(&w, c->usage.prompt_tokens);
	else jw_null(&w);
	jw_key(&w, "completion_tokens");
	if (c->usage.completion_tokens >= 0) jw_int(&w, c->usage.completion_tokens);
	else jw_null(&w);
	if (c->last_err) {
		jw_key(&w, "error");
		jw_str(&w, hc_err_name(c->last_err));
	}
	jw_obj_end(&w);
	if (w.error) return;
	buf_puts(b, "\n");
	if (fwrite(buf_rptr(b), 1, buf_rlen(b), g->access_log) != buf_rlen(b))
		log_ratelimited(LOG_WARN, "access log: write failed: %s", strerror(errno));
}
