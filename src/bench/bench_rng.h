/*
 * bench_rng.h — the load generator's seeded pseudo-random numbers: splitmix64,
 * uniform integers and doubles, and exponential gaps for Poisson arrivals.
 * Deterministic for a seed, so two runs with the same flags send the same
 * prompts at the same planned times. Not cryptographic.
 */
#ifndef BENCH_RNG_H
#define BENCH_RNG_H

#include <math.h>
#include <stdint.h>

/* Next 64 random bits; *state is the whole generator (any value is valid). */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
static inline double rng_double(uint64_t *state)
{
	return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n); n 0 gives 0. (Multiply-shift; the bias is below 2^-64 * n.) */
static inline uint64_t rng_below(uint64_t *state, uint64_t n)
{
	if (n == 0)
		return 0;
	return (uint64_t)(((unsigned __int128)rng_next(state) * n) >> 64);
}

/* An exponential variate with the given rate (events per unit time): the gap
 * between two Poisson arrivals, in the rate's unit. */
static inline double rng_exponential(uint64_t *state, double rate)
{
	double u = rng_double(state); /* [0,1): 1-u is in (0,1], log is finite */
	return -log(1.0 - u) / rate;
}

#endif
