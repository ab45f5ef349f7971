/*
 * util.h — small helpers every program needs: clocks, hashing, parsing of sizes
 * and durations, checked string copies. No allocation unless stated.
 */
#ifndef CORE_UTIL_H
#define CORE_UTIL_H

#include <stdint.h>
#include <stddef.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Invariant checks: a broken invariant is a bug, reported with its place, then abort. */
#define BUG_ON(cond) \
	do { \
		if (cond) util_bug(__FILE__, __LINE__, #cond); \
	} while (0)
void util_bug(const char *file, int line, const char *expr) __attribute__((noreturn));

uint64_t time_mono_ns(void); /* CLOCK_MONOTONIC */
uint64_t time_mono_ms(void);
uint64_t time_wall_ms(void); /* CLOCK_REALTIME, ms since the epoch */
double time_wall_s(void);

/* A fast, well-mixed 64-bit hash of bytes with a seed (for chained block
 * hashes and hash tables; not cryptographic). */
uint64_t hash64(const void *data, size_t len, uint64_t seed);

/* "1.5s", "100ms", "2m", "1h", "250us", or a bare number of `bare_unit_ms`
 * milliseconds (1000 for seconds). Returns 0 and sets *ms, or -1. */
int parse_duration_ms(const char *s, uint64_t bare_unit_ms, uint64_t *ms);
/* "512", "64KiB", "10MB", "2GiB", "1G" (G = GiB). Returns 0 and sets *bytes, or -1. */
int parse_size_bytes(const char *s, uint64_t *bytes);
/* Strict whole-string integer parse in [min, max]. Returns 0 or -1. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Copies at most dst_size-1 bytes, always NUL-terminates; returns strlen(src). */
size_t str_copy(char *dst, const char *src, size_t dst_size);
/* Case-insensitive comparison of a counted string with a C string (ASCII). */
int str_ieq(const char *s, size_t len, const char *cstr);
/* Formats a message into err (err may be NULL) and returns -1: the one way
 * library code reports an error to a caller-owned buffer. */
int util_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reads a whole small file (at most max_bytes) into a malloc'd, NUL-terminated
 * buffer the caller frees; *len gets its size; memory grows with the file, not
 * with max_bytes. NULL with a message naming the file in err, and errno set,
 * when it cannot be opened or read (open's or read's errno, EISDIR for a
 * folder), is larger (EFBIG), or memory runs out (ENOMEM). */
char *util_read_file(const char *path, size_t max_bytes, size_t *len, char *err, size_t errlen);
/* The value of a hexadecimal digit (either case), or -1. */
static inline int hex_digit(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}
/* Percent-decodes src[0, n) (a URL path segment) into out, NUL-terminated.
 * Returns the length, or -1 for a malformed escape, an encoded NUL, or a
 * result that does not fit cap bytes. */
long pct_decode(const char *src, size_t n, char *out, size_t cap);
/* strdup/strndup that return NULL on failure (callers check). */
char *str_dup(const char *s);
char *str_ndup(const char *s, size_t n);

#endif
