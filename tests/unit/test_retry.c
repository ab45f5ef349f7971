/* test_retry.c — the retry question (src/gateway/retry.c): a dead endpoint's
 * requests go elsewhere whatever the budget and the tries; 5xx answers and
 * timeouts stay within both. */
#include "gateway/retry.c"
#include "t.h"

static void test_failure_kinds(void)
{
	T_EQ_INT(retry_failure_of(HC_ERR_CONNECT_REFUSED, 0, 0, 0), RETRY_FAILURE_DEAD);
	T_EQ_INT(retry_failure_of(HC_ERR_CONNECT, 0, 0, 0), RETRY_FAILURE_DEAD);
	T_EQ_INT(retry_failure_of(HC_ERR_RESET, 0, 0, 0), RETRY_FAILURE_DEAD);
	T_EQ_INT(retry_failure_of(HC_ERR_EOF, 0, 0, 0), RETRY_FAILURE_DEAD);
	/* a byte came back: a live server may have begun, the budget decides */
	T_EQ_INT(retry_failure_of(HC_ERR_EOF, 0, 1, 0), RETRY_FAILURE_BUSY);
	T_EQ_INT(retry_failure_of(HC_ERR_RESET, 0, 1, 1), RETRY_FAILURE_BUSY);
	/* silence: load, unless the endpoint is known dead */
	T_EQ_INT(retry_failure_of(HC_ERR_IDLE_TIMEOUT, 0, 0, 0), RETRY_FAILURE_BUSY);
	T_EQ_INT(retry_failure_of(HC_ERR_CONNECT_TIMEOUT, 0, 0, 0), RETRY_FAILURE_BUSY);
	T_EQ_INT(retry_failure_of(HC_ERR_IDLE_TIMEOUT, 0, 0, 1), RETRY_FAILURE_DEAD);
	T_EQ_INT(retry_failure_of(HC_ERR_IDLE_TIMEOUT, 0, 1, 1), RETRY_FAILURE_BUSY);
	/* let go because the endpoint went down */
	T_EQ_INT(retry_failure_of(HC_ERR_ABORTED, 0, 0, 1), RETRY_FAILURE_DEAD);
	T_EQ_INT(retry_failure_of(HC_ERR_ABORTED, 0, 1, 1), RETRY_FAILURE_FINAL);
	T_EQ_INT(retry_failure_of(HC_ERR_ABORTED, 0, 0, 0), RETRY_FAILURE_FINAL);
	/* answers */
	T_EQ_INT(retry_failure_of(HC_OK, 503, 1, 0), RETRY_FAILURE_BUSY);
	T_EQ_INT(retry_failure_of(HC_OK, 502, 1, 0), RETRY_FAILURE_BUSY);
	T_EQ_INT(retry_failure_of(HC_OK, 504, 1, 0), RETRY_FAILURE_BUSY);
	T_EQ_INT(retry_failure_of(HC_OK, 500, 1, 0), RETRY_FAILURE_FINAL);
	T_EQ_INT(retry_failure_of(HC_OK, 429, 1, 0), RETRY_FAILURE_FINAL);
	T_EQ_INT(retry_failure_of(HC_ERR_MALFORMED, 0, 1, 0), RETRY_FAILURE_FINAL);
	T_EQ_INT(retry_failure_of(HC_ERR_NOMEM, 0, 0, 1), RETRY_FAILURE_FINAL);
	T_EQ_INT(retry_failure_of(HC_ERR_TOTAL_TIMEOUT, 0, 0, 1), RETRY_FAILURE_FINAL);
}

/* The case: 8 requests in progress, 5 retries already (budget 3 +
 * 0.2 x 8 = 4.6): a dead endpoint's request still goes to the healthy
 * region, a 503 does not. */
static void test_budget_spent(void)
{
	double budget = retry_budget(3, 0.2, 8);
	T_NEAR(budget, 4.6, 1e-9);
	retry_question q = {RETRY_FAILURE_DEAD, 1, 3, 1, 1, 0, 5, budget};
	T_EQ_INT(retry_decide(&q), RETRY_YES);
	q.failure = RETRY_FAILURE_BUSY;
	T_EQ_INT(retry_decide(&q), RETRY_NO_BUDGET);
	q.counted = 1; /* already a retry in progress: it does not add to the count */
	T_EQ_INT(retry_decide(&q), RETRY_YES);
	q.counted = 0;
	q.active_retries = 3; /* 3 + 1 <= 4.6 */
	T_EQ_INT(retry_decide(&q), RETRY_YES);
	q.active_retries = 4; /* 4 + 1 > 4.6 */
	T_EQ_INT(retry_decide(&q), RETRY_NO_BUDGET);
	T_EQ_STR(retry_verdict_name(retry_decide(&q)), "budget_exhausted");
}

static void test_limits(void)
{
	/* tries bound BUSY failures only: a region of dead endpoints is walked */
	retry_question q = {RETRY_FAILURE_DEAD, 3, 3, 1, 1, 1, 0, 10};
	T_EQ_INT(retry_decide(&q), RETRY_YES);
	q.failure = RETRY_FAILURE_BUSY;
	T_EQ_INT(retry_decide(&q), RETRY_NO_TRIES);
	q.tries = 2;
	T_EQ_INT(retry_decide(&q), RETRY_YES);
	/* the deadline and the endpoints left bound both */
	for (int f = RETRY_FAILURE_DEAD; f <= RETRY_FAILURE_BUSY; f++) {
		retry_question d = {f, 1, 3, 0, 1, 0, 0, 10};
		T_EQ_INT(retry_decide(&d), RETRY_NO_TIME);
		d.time_left = 1;
		d.endpoint_left = 0;
		T_EQ_INT(retry_decide(&d), RETRY_NO_ENDPOINT);
	}
	retry_question fin = {RETRY_FAILURE_FINAL, 0, 3, 1, 1, 0, 0, 10};
	T_EQ_INT(retry_decide(&fin), RETRY_NO);
	/* a budget of 0 (retry_budget_min 0, ratio 0) refuses every BUSY retry */
	retry_question zero = {RETRY_FAILURE_BUSY, 1, 3, 1, 1, 0, 0, retry_budget(0, 0, 100)};
	T_EQ_INT(retry_decide(&zero), RETRY_NO_BUDGET);
	zero.failure = RETRY_FAILURE_DEAD;
	T_EQ_INT(retry_decide(&zero), RETRY_YES);
}

int main(void)
{
	T_RUN(test_failure_kinds);
	T_RUN(test_budget_spent);
	T_RUN(test_limits);
	return T_END();
}
