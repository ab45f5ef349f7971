/*
 * t.h — the unit-test harness: a handful of macros, no framework.
 *
 * A test file defines functions `static void test_xxx(void)` and a main() that
 * calls T_RUN(test_xxx) for each. A failed check prints file:line and the
 * expression and marks the current test failed; the test goes on, so one run
 * shows every failed check. T_END() prints the closing counts ("N passed,
 * N failed") and returns the exit status.
 */
#ifndef T_H
#define T_H

#include <stdio.h>
#include <string.h>
#include <math.h>

static int t_failed_checks, t_tests_passed, t_tests_failed, t_cur_failed;

#define T_CHECK(cond) \
	do { \
		if (!(cond)) { \
			t_failed_checks++; \
			t_cur_failed = 1; \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

#define T_EQ_INT(a, b) \
	do { \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b); \
		if (t_a_ != t_b_) { \
			t_failed_checks++; \
			t_cur_failed = 1; \
			fprintf(stderr, "  %s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, #a, #b, t_a_, t_b_); \
		} \
	} while (0)

#define T_EQ_STR(a, b) \
	do { \
		const char *t_a_ = (a), *t_b_ = (b); \
		if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) { \
			t_failed_checks++; \
			t_cur_failed = 1; \
			fprintf(stderr, "  %s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
				t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)"); \
		} \
	} while (0)

#define T_EQ_MEM(a, b, n) \
	do { \
		if (memcmp((a), (b), (n)) != 0) { \
			t_failed_checks++; \
			t_cur_failed = 1; \
			fprintf(stderr, "  %s:%d: %s and %s differ in their first %zu bytes\n", __FILE__, __LINE__, #a, #b, (size_t)(n)); \
		} \
	} while (0)

#define T_NEAR(a, b, tol) \
	do { \
		double t_a_ = (a), t_b_ = (b); \
		if (!(fabs(t_a_ - t_b_) <= (tol))) { \
			t_failed_checks++; \
			t_cur_failed = 1; \
			fprintf(stderr, "  %s:%d: %s ~ %s: %g vs %g (tol %g)\n", __FILE__, __LINE__, #a, #b, t_a_, t_b_, (double)(tol)); \
		} \
	} while (0)

#define T_RUN(fn) \
	do { \
		t_cur_failed = 0; \
		fn(); \
		if (t_cur_failed) { \
			t_tests_failed++; \
			fprintf(stderr, "FAIL %s\n", #fn); \
		} else { \
			t_tests_passed++; \
			fprintf(stderr, "ok   %s\n", #fn); \
		} \
	} while (0)

#define T_END() ( \
	printf("%d passed, %d failed\n", t_tests_passed, t_tests_failed), \
	t_tests_failed ? 1 : 0)

#endif
