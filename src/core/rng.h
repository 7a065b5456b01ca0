/*
 * Seeded, reproducible random numbers: xoshiro256** seeded through
 * splitmix64. For workloads that must replay exactly from a seed (the
 * benchmark's prompts and arrivals, the simulator's lengths, jitter and
 * faults); never for anything secret (use getrandom for that).
 */
#ifndef MC_CORE_RNG_H
#define MC_CORE_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* Seeds r from seed (any value, 0 included). */
void rng_seed(struct rng *r, uint64_t seed);
/* Next 64 uniformly distributed bits; advances r. */
uint64_t rng_next(struct rng *r);
/* Uniform integer in [0, n) without modulo bias; 0 when n is 0. */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Uniform integer in [lo, hi] (hi >= lo) without modulo bias. */
int64_t rng_range(struct rng *r, int64_t lo, int64_t hi);
/* Uniform double in the open interval (0, 1): never 0, never 1. */
double rng_unit(struct rng *r);
/* Standard normal deviate (mean 0, variance 1), by Box-Muller. */
double rng_normal(struct rng *r);

#endif
