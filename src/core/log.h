/*
 * log.h — the one logger of every program: leveled lines on stderr, with the
 * program name and a wall-clock timestamp, and a rate limit per call site so a
 * misbehaving peer cannot flood the log.
 *
 * Format: `2026-11-29T14:25:57.123Z infergate[1234] warn: message`.
 * With log_set_json(1), each line is one JSON object
 * {"ts":"…","prog":"…","level":"warn","msg":"…"} instead.
 */
#ifndef CORE_LOG_H
#define CORE_LOG_H

enum log_level { LOG_DEBUG = 0,
		 LOG_INFO = 1,
		 LOG_WARN = 2,
		 LOG_ERROR = 3 };

void log_init(const char *prog);
void log_set_level(enum log_level level);
int log_level_parse(const char *name); /* "debug".."error" -> level, or -1 */
void log_set_json(int on);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns 1 when a line from this call site may be written now (at most `burst`
 * lines per `interval_ms`), counting those suppressed; 0 otherwise. */
typedef struct log_rl {
	unsigned long long window_start_ms;
	unsigned count, suppressed;
} log_rl;
int log_rl_allow(log_rl *rl, unsigned interval_ms, unsigned burst);

/* A line about one subject (an endpoint, a discovery) that may repeat: at
 * most `burst` lines per `interval_ms` per limiter (each subject owns one);
 * the first line of a window says how many were suppressed in the window
 * before, so an outage's count is never lost, only its copies. */
void log_limited(log_rl *rl, unsigned interval_ms, unsigned burst, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
/* At most 10 lines per second from this call site. */
#define log_ratelimited(level, ...) \
	do { \
		static log_rl log_rl_site_; \
		if (log_rl_allow(&log_rl_site_, 1000, 10)) log_msg(level, __VA_ARGS__); \
	} while (0)

#endif
