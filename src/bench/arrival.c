/*
 * Seeded random numbers for the benchmark (xoshiro256** over splitmix64)
 * and the gamma-distributed request gaps of vLLM's `bench serve`. Written
 * here rather than taken from OpenSSL because runs must replay exactly from
 * a seed, which a CSPRNG does not offer; the generators are a few lines.
 */
#include "bench/arrival.h"

#include <errno.h>
#include <math.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    /* splitmix64 never yields four zero words, but keep the invariant. */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

uint64_t bench_rng_next(struct bench_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t bench_rng_below(struct bench_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the top partial block so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = bench_rng_next(r);
    while (x >= limit);
    return x % n;
}

double bench_rng_unit(struct bench_rng *r)
{
    /* 53 random bits, centred in their cell: (k + 0.5) / 2^53. */
    return ((double)(bench_rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

double bench_rng_normal(struct bench_rng *r)
{
    double u1 = bench_rng_unit(r), u2 = bench_rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Marsaglia & Tsang, "A simple method for generating gamma variables", shape >= 1. */
static double gamma_ge1(struct bench_rng *r, double shape)
{
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = bench_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = bench_rng_unit(r);
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2)
            return d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double bench_rng_gamma(struct bench_rng *r, double shape, double scale)
{
    if (!(shape > 0.0) || !isfinite(shape) || !(scale > 0.0) || !isfinite(scale))
        return NAN;
    if (shape >= 1.0)
        return gamma_ge1(r, shape) * scale;
    /* Boost: gamma(a) = gamma(a + 1) * U^(1/a) for 0 < a < 1. */
    double g = gamma_ge1(r, shape + 1.0);
    return g * pow(bench_rng_unit(r), 1.0 / shape) * scale;
}

double bench_arrival_gap_s(struct bench_rng *r, double rate, double burstiness)
{
    if (!(rate > 0.0) || !(burstiness > 0.0))
        return NAN;
    if (isinf(rate))
        return 0.0;
    if (isinf(burstiness))
        return 1.0 / rate;
    return bench_rng_gamma(r, burstiness, 1.0 / (rate * burstiness));
}

int bench_arrival_check(double rate, double burstiness, struct err_detail *d)
{
    if (!(rate > 0.0))
        return err_set(d, ERR_RANGE, "request_rate",
                       "request rate must be > 0 requests/s (inf for no pacing)");
    if (!(burstiness > 0.0))
        return err_set(d, ERR_RANGE, "burstiness",
                       "burstiness must be > 0 (1 is a Poisson process)");
    /* A finite gap needs a representable scale 1 / (rate * burstiness). */
    if (isfinite(rate) && isfinite(burstiness) && !(rate * burstiness < INFINITY))
        return err_set(d, ERR_RANGE, "request_rate",
                       "request rate times burstiness overflows");
    if (isfinite(rate) && isfinite(burstiness) && !(1.0 / (rate * burstiness) < INFINITY))
        return err_set(d, ERR_RANGE, "request_rate",
                       "request rate times burstiness is too small");
    return 0;
}

int bench_arrival_schedule(struct bench_rng *r, size_t n, double rate, double burstiness,
                           double *at, struct err_detail *d)
{
    int rc = bench_arrival_check(rate, burstiness, d);
    if (rc)
        return rc;
    double t = 0.0;
    for (size_t i = 0; i < n; i++) {
        t += bench_arrival_gap_s(r, rate, burstiness);
        at[i] = t;
    }
    if (n > 0 && isfinite(rate) && t > 0.0) {
        double k = ((double)n / rate) / t;
        for (size_t i = 0; i < n; i++)
            at[i] *= k;
    }
    return 0;
}

uint64_t bench_seed_random(void)
{
    uint64_t seed;
    ssize_t got;
    do
        got = getrandom(&seed, sizeof(seed), 0);
    while (got < 0 && errno == EINTR);
    if (got == (ssize_t)sizeof(seed))
        return seed;
    /* Not expected on Linux >= 3.17; still give distinct runs distinct seeds. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)getpid() << 32;
    return splitmix64(&x);
}
