/*
 * The gamma-distributed request gaps of vLLM's `bench serve`, drawn from
 * the seeded generator of core/rng.h so that a run replays from its seed.
 */
#include "bench/arrival.h"

#include <errno.h>
#include <math.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Marsaglia & Tsang, "A simple method for generating gamma variables", shape >= 1. */
static double gamma_ge1(struct rng *r, double shape)
{
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = rng_unit(r);
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2)
            return d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double bench_rng_gamma(struct rng *r, double shape, double scale)
{
    if (!(shape > 0.0) || !isfinite(shape) || !(scale > 0.0) || !isfinite(scale))
        return NAN;
    if (shape >= 1.0)
        return gamma_ge1(r, shape) * scale;
    /* Boost: gamma(a) = gamma(a + 1) * U^(1/a) for 0 < a < 1. */
    double g = gamma_ge1(r, shape + 1.0);
    return g * pow(rng_unit(r), 1.0 / shape) * scale;
}

double bench_arrival_gap_s(struct rng *r, double rate, double burstiness)
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

int bench_arrival_schedule(struct rng *r, size_t n, double rate, double burstiness,
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
    struct rng r;
    rng_seed(&r, x); /* mixes the bits */
    return rng_next(&r);
}
