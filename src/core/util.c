/*
 * util.c — clocks, hashing, parsing of sizes and durations, checked string
 * copies, error messages into caller buffers, small whole-file reads. Nothing
 * here allocates except str_dup/str_ndup and util_read_file.
 */
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void util_bug(const char *file, int line, const char *expr)
{
	fprintf(stderr, "BUG at %s:%d: %s\n", file, line, expr);
	fflush(stderr);
	abort();
}

uint64_t time_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t time_mono_ms(void)
{
	return time_mono_ns() / 1000000ull;
}

uint64_t time_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

double time_wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A wyhash-style mixer over 8-byte words: fast and well distributed. */
static inline uint64_t mix64(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

uint64_t hash64(const void *data, size_t len, uint64_t seed)
{
	const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
		       k2 = 0x8ebc6af09c88c6e3ull, k3 = 0x589965cc75374cc3ull;
	const unsigned char *p = data;
	uint64_t h = seed ^ mix64(seed ^ k0, k1) ^ (uint64_t)len;
	size_t i = len;
	while (i >= 16) {
		h = mix64(rd64(p) ^ k1, rd64(p + 8) ^ h);
		p += 16;
		i -= 16;
	}
	uint64_t a = 0, b = 0;
	if (i >= 8) {
		a = rd64(p);
		b = 0;
		for (size_t j = 8; j < i; j++) b |= (uint64_t)p[j] << (8 * (j - 8));
	} else {
		for (size_t j = 0; j < i; j++) a |= (uint64_t)p[j] << (8 * j);
	}
	h = mix64(a ^ k2 ^ h, b ^ k3 ^ (uint64_t)len);
	return mix64(h ^ k0, h ^ k1 ^ (uint64_t)len);
}

/* Parses a non-negative decimal with an optional fraction; sets *end. */
static int parse_decimal(const char *s, double *out, const char **end)
{
	const char *p = s;
	double v = 0;
	int digits = 0;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p - '0');
		p++;
		digits++;
	}
	if (*p == '.') {
		double f = 0.1;
		p++;
		while (*p >= '0' && *p <= '9') {
			v += (*p - '0') * f;
			f /= 10;
			p++;
			digits++;
		}
	}
	if (!digits) return -1;
	*out = v;
	*end = p;
	return 0;
}

int parse_duration_ms(const char *s, uint64_t bare_unit_ms, uint64_t *ms)
{
	if (!s) return -1;
	while (isspace((unsigned char)*s)) s++;
	double v;
	const char *p;
	if (parse_decimal(s, &v, &p) < 0) return -1;
	double mult;
	if (*p == 0) mult = (double)bare_unit_ms;
	else if (!strcmp(p, "ms")) mult = 1;
	else if (!strcmp(p, "s")) mult = 1000;
	else if (!strcmp(p, "m")) mult = 60000;
	else if (!strcmp(p, "h")) mult = 3600000;
	else if (!strcmp(p, "us")) mult = 0.001;
	else return -1;
	double r = v * mult;
	if (r > 1.8e19) return -1;
	*ms = (uint64_t)(r + 0.5);
	return 0;
}

int parse_size_bytes(const char *s, uint64_t *bytes)
{
	if (!s) return -1;
	while (isspace((unsigned char)*s)) s++;
	double v;
	const char *p;
	if (parse_decimal(s, &v, &p) < 0) return -1;
	static const struct {
		const char *sfx;
		double mult;
	} units[] = {
		{"", 1},
		{"B", 1},
		{"K", 1024.0},
		{"KiB", 1024.0},
		{"KB", 1e3},
		{"k", 1024.0},
		{"kB", 1e3},
		{"M", 1048576.0},
		{"MiB", 1048576.0},
		{"MB", 1e6},
		{"G", 1073741824.0},
		{"GiB", 1073741824.0},
		{"GB", 1e9},
		{"T", 1099511627776.0},
		{"TiB", 1099511627776.0},
		{"TB", 1e12},
	};
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (!strcmp(p, units[i].sfx)) {
			double r = v * units[i].mult;
			if (r > 1.8e19) return -1;
			*bytes = (uint64_t)(r + 0.5);
			return 0;
		}
	}
	return -1;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s || isspace((unsigned char)*s)) return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s) return -1;
	if (v < min || v > max) return -1;
	*out = v;
	return 0;
}

size_t str_copy(char *dst, const char *src, size_t dst_size)
{
	size_t n = strlen(src);
	if (dst_size) {
		size_t c = n < dst_size - 1 ? n : dst_size - 1;
		memcpy(dst, src, c);
		dst[c] = 0;
	}
	return n;
}

int str_ieq(const char *s, size_t len, const char *cstr)
{
	size_t n = strlen(cstr);
	return n == len && strncasecmp(s, cstr, len) == 0;
}

char *str_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *str_ndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (!p) return NULL;
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

int util_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

char *util_read_file(const char *path, size_t max_bytes, size_t *len, char *err, size_t errlen)
{
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		util_errf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		errno = e;
		return NULL;
	}
	/* Sized by fstat (a file that says 0, as /proc's do, still reads whole):
	 * a large max_bytes costs nothing for a small file. */
	struct stat st;
	size_t cap = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size : 4096;
	if (cap > max_bytes) cap = max_bytes;
	char *b = malloc(cap + 1);
	size_t n = 0;
	int oom = !b, over = 0, e = 0; /* e: the errno of a failed read */
	while (!oom) {
		if (n == cap) {
			if (cap == max_bytes) { /* full: one more byte says whether it is larger */
				char c;
				ssize_t k = read(fd, &c, 1);
				if (k < 0 && errno == EINTR) continue;
				if (k < 0) e = errno;
				over = k > 0;
				break;
			}
			size_t nc = cap > max_bytes / 2 ? max_bytes : cap * 2;
			char *nb = realloc(b, nc + 1);
			if (!nb) {
				oom = 1;
				break;
			}
			b = nb;
			cap = nc;
		}
		ssize_t k = read(fd, b + n, cap - n);
		if (k < 0 && errno == EINTR) continue;
		if (k < 0) e = errno;
		if (k <= 0) break;
		n += (size_t)k;
	}
	close(fd);
	if (oom || over || e) {
		free(b);
		if (oom) util_errf(err, errlen, "%s: out of memory", path);
		else if (over) util_errf(err, errlen, "%s: larger than %zu bytes", path, max_bytes);
		else util_errf(err, errlen, "%s: read: %s", path, strerror(e));
		errno = oom ? ENOMEM : over ? EFBIG
					    : e;
		return NULL;
	}
	b[n] = 0;
	*len = n;
	return b;
}

long pct_decode(const char *src, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			int hi = i + 2 < n ? hex_digit(src[i + 1]) : -1, lo = hi >= 0 ? hex_digit(src[i + 2]) : -1;
			if (lo < 0 || (hi | lo) == 0) return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (o + 1 >= cap) return -1;
		out[o++] = (char)c;
	}
	if (!cap) return -1;
	out[o] = 0;
	return (long)o;
}
