/*
 * log.c — leveled lines on stderr with a timestamp and the program name, plain
 * or JSON, and the per-call-site rate limiter. One write(2) per line so lines
 * from several threads or processes sharing stderr do not interleave.
 */
#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char log_prog[64] = "infergate";
static enum log_level log_level_min = LOG_INFO;
static int log_json;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *prog)
{
	const char *slash = prog ? strrchr(prog, '/') : NULL;
	str_copy(log_prog, slash ? slash + 1 : (prog ? prog : "infergate"), sizeof(log_prog));
}

void log_set_level(enum log_level level) { log_level_min = level; }
void log_set_json(int on) { log_json = on; }

int log_level_parse(const char *name)
{
	if (!name) return -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(name, level_names[i])) return i;
	if (!strcmp(name, "warning")) return LOG_WARN;
	return -1;
}

/* Appends s JSON-escaped into dst[*pos..cap), truncating safely. */
static void esc_append(char *dst, size_t *pos, size_t cap, const char *s)
{
	size_t p = *pos;
	for (; *s && p + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[p++] = '\\';
			dst[p++] = (char)c;
		} else if (c == '\n') {
			dst[p++] = '\\';
			dst[p++] = 'n';
		} else if (c == '\t') {
			dst[p++] = '\\';
			dst[p++] = 't';
		} else if (c == '\r') {
			dst[p++] = '\\';
			dst[p++] = 'r';
		} else if (c < 0x20) p += (size_t)snprintf(dst + p, cap - p, "\\u%04x", c);
		else dst[p++] = (char)c;
	}
	*pos = p;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level < log_level_min || level > LOG_ERROR) return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	uint64_t now = time_wall_ms();
	time_t secs = (time_t)(now / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char ts[80];
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % 1000));

	char line[4096 + 256];
	size_t n;
	if (log_json) {
		n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"prog\":\"", ts);
		esc_append(line, &n, sizeof(line) - 64, log_prog);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"level\":\"%s\",\"msg\":\"",
				      level_names[level]);
		esc_append(line, &n, sizeof(line) - 8, msg);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}\n");
	} else {
		int k = snprintf(line, sizeof(line), "%s %s[%d] %s: %s", ts, log_prog, (int)getpid(),
				 level_names[level], msg);
		n = k < 0 ? 0 : MIN((size_t)k, sizeof(line) - 2);
		while (n && line[n - 1] == '\n') n--;
		line[n++] = '\n';
	}
	const char *p = line;
	while (n) {
		ssize_t w = write(2, p, n);
		if (w < 0) break; /* EINTR: the line is lost, never block a loop on stderr */
		p += w;
		n -= (size_t)w;
	}
}

int log_rl_allow(log_rl *rl, unsigned interval_ms, unsigned burst)
{
	uint64_t now = time_mono_ms();
	if (now - rl->window_start_ms >= interval_ms) {
		unsigned long long dropped = rl->suppressed;
		rl->window_start_ms = now;
		rl->count = 0;
		rl->suppressed = 0;
		if (dropped) log_msg(LOG_WARN, "(%llu similar lines suppressed)", dropped);
	}
	if (rl->count < burst) {
		rl->count++;
		return 1;
	}
	rl->suppressed++;
	return 0;
}

void log_limited(log_rl *rl, unsigned interval_ms, unsigned burst, enum log_level level, const char *fmt, ...)
{
	if (level < log_level_min || level > LOG_ERROR) return;
	uint64_t now = time_mono_ms();
	unsigned long long dropped = 0;
	if (!rl->window_start_ms || now - rl->window_start_ms >= interval_ms) {
		dropped = rl->suppressed;
		rl->window_start_ms = now;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count >= burst) {
		rl->suppressed++;
		return;
	}
	rl->count++;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (dropped) log_msg(level, "%s (%llu similar lines suppressed before this one)", msg, dropped);
	else log_msg(level, "%s", msg);
}
