/*
 * Random numbers and the arrival process of a benchmark run.
 *
 * struct rng is xoshiro256** (Blackman and Vigna) seeded through
 * splitmix64, so one uint64 seed reproduces a whole run: the same seed
 * gives the same sequence on every platform. It is not a CSPRNG.
 *
 * Request gaps follow vLLM's `bench serve`: a gamma distribution with
 * shape = burstiness and scale = 1 / (rate * burstiness), so the mean gap
 * is 1/rate and the coefficient of variation is 1/sqrt(burstiness).
 * Burstiness 1 is a Poisson process, below 1 burstier, above 1 smoother.
 */
#ifndef MC_BENCH_ARRIVAL_H
#define MC_BENCH_ARRIVAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"

/* The seeded generator is core/rng.h's; this file adds what arrivals need. */
/*
 * Gamma deviate with the given shape (k) and scale (theta): mean k*theta,
 * variance k*theta^2. Marsaglia and Tsang's method (2000); a shape below
 * 1 draws gamma(shape + 1) and multiplies by U^(1/shape). Returns NAN
 * when shape or scale is not a positive finite number.
 */
double bench_rng_gamma(struct rng *r, double shape, double scale);

/*
 * Gap in seconds before the next request: gamma(shape = burstiness,
 * scale = 1 / (rate * burstiness)), as vLLM draws it. rate = INFINITY
 * gives 0 (everything at once); burstiness = INFINITY gives exactly
 * 1/rate. Returns NAN when rate or burstiness is not > 0 (or is NaN);
 * bench_arrival_check says why, for the command line.
 */
double bench_arrival_gap_s(struct rng *r, double rate, double burstiness);

/* 0 when rate and burstiness are usable, else ERR_RANGE with detail. */
int bench_arrival_check(double rate, double burstiness, struct err_detail *d) MC_WUR;

/*
 * Fills at[0..n) with the send times in seconds from the start of the run
 * for n requests, as vLLM schedules them: the cumulative sum of n gaps,
 * then, when rate is finite, rescaled so that the last request goes at
 * exactly n / rate (vLLM does this to steady throughput across seeds).
 * With rate = INFINITY every time is 0. Returns 0, or ERR_RANGE as
 * bench_arrival_check; at is untouched on error.
 */
int bench_arrival_schedule(struct rng *r, size_t n, double rate, double burstiness,
                           double *at, struct err_detail *d) MC_WUR;

/*
 * A seed from the kernel's entropy pool (getrandom), for runs without
 * --seed. Falls back to the clock and pid if getrandom fails.
 */
uint64_t bench_seed_random(void);

#endif
