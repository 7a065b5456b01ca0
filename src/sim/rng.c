/*
 * The simulator's one source of randomness: output lengths, step-time
 * jitter and fault draws all come from a xoshiro256** generator seeded from
 * --seed (through splitmix64), so a run with the same seed and the same
 * order of arrivals makes the same choices. Not for anything secret.
 */
#include <math.h>

#include "sim/sim_int.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim__rng_seed(struct sim__rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim__rng_next(struct sim__rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double sim__rng_unit(struct sim__rng *r)
{
    return (double)(sim__rng_next(r) >> 11) * 0x1.0p-53;
}

int64_t sim__rng_range(struct sim__rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    if (span == 0) /* the whole 64-bit range */
        return (int64_t)sim__rng_next(r);
    /* Rejection sampling: no modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t v;
    do
        v = sim__rng_next(r);
    while (v >= limit);
    return lo + (int64_t)(v % span);
}

double sim__rng_normal(struct sim__rng *r)
{
    double u1 = sim__rng_unit(r), u2 = sim__rng_unit(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
