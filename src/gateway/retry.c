/*
 * retry.c — the retry question of retry.h: pure, no sockets, no clock.
 */
#include "gateway/retry.h"
#include "core/http_client.h"

int retry_failure_of(int hc_err, int status, int bytes_received, int endpoint_dead)
{
	if (hc_err == HC_OK)
		return status == 502 || status == 503 || status == 504 ? RETRY_FAILURE_BUSY : RETRY_FAILURE_FINAL;
	switch (hc_err) {
	case HC_ERR_CONNECT_REFUSED:
	case HC_ERR_CONNECT:
	case HC_ERR_RESET:
	case HC_ERR_EOF:
		/* A byte of an answer means a live server may have begun on it. */
		return bytes_received ? RETRY_FAILURE_BUSY : RETRY_FAILURE_DEAD;
	case HC_ERR_TLS: /* a failed handshake: nothing of the request went out */
		return RETRY_FAILURE_BUSY;
	case HC_ERR_CONNECT_TIMEOUT:
	case HC_ERR_IDLE_TIMEOUT:
	case HC_ERR_ABORTED: /* let go by the proxy because its endpoint went down */
		/* Silence from an endpoint known dead is its death, not its load. */
		if (endpoint_dead && !bytes_received) return RETRY_FAILURE_DEAD;
		return hc_err == HC_ERR_ABORTED ? RETRY_FAILURE_FINAL : RETRY_FAILURE_BUSY;
	default:
		return RETRY_FAILURE_FINAL;
	}
}

int retry_decide(const retry_question *q)
{
	if (q->failure == RETRY_FAILURE_FINAL) return RETRY_NO;
	if (!q->time_left) return RETRY_NO_TIME;
	if (!q->endpoint_left) return RETRY_NO_ENDPOINT;
	if (q->failure == RETRY_FAILURE_DEAD) return RETRY_YES;
	if (q->tries >= q->max_tries) return RETRY_NO_TRIES;
	if (!q->counted && (double)q->active_retries + 1 > q->budget) return RETRY_NO_BUDGET;
	return RETRY_YES;
}

const char *retry_verdict_name(int verdict)
{
	switch (verdict) {
	case RETRY_YES: return "yes";
	case RETRY_NO_TIME: return "deadline";
	case RETRY_NO_ENDPOINT: return "no_endpoint";
	case RETRY_NO_TRIES: return "tries";
	case RETRY_NO_BUDGET: return "budget_exhausted";
	default: return "final";
	}
}

double retry_budget(uint32_t budget_min, double budget_ratio, uint32_t active_requests)
{
	return budget_min + budget_ratio * active_requests;
}
