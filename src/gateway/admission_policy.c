/*
 * admission_policy.c — the pure part of admission.h: the verdict on one
 * request and the rank of a waiting one. No state, no clock.
 */
#include "gateway/admission.h"

int admission_decide(int priority, int saturated, uint32_t queued, uint32_t queue_cap)
{
	if (!saturated || priority >= 0) return ADMISSION_ADMIT;
	if (queue_cap && queued < queue_cap) return ADMISSION_QUEUE;
	return ADMISSION_SHED;
}

double admission_rank(int priority, uint64_t waited_ms)
{
	return (double)priority + (double)waited_ms / ADMISSION_AGING_MS;
}
