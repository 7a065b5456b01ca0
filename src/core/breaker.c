/*
 * The circuit breaker (see breaker.h): a three-state machine under one
 * mutex. The failure ratio is counted over a ring of the last W call
 * outcomes, kept with a running failure count so each report is O(1).
 */
#include "core/breaker.h"

#include <string.h>

void breaker_default_opts(struct breaker_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->failures = 5;
    o->window = 20;
    o->min_calls = 10;
    o->failure_ratio = 0.5;
    o->open_ns = 1000000000;
    o->half_open_max = 1;
    o->half_open_successes = 1;
}

int breaker_init(struct breaker *b, const struct breaker_opts *o)
{
    struct breaker_opts def;
    if (!o) {
        breaker_default_opts(&def);
        o = &def;
    }
    if (o->failures < 0 || o->window < 0 || o->window > BREAKER_WINDOW_MAX ||
        (o->window > 0 && (o->min_calls < 1 || o->min_calls > o->window ||
                           !(o->failure_ratio > 0 && o->failure_ratio <= 1))) ||
        (o->failures == 0 && o->window == 0) || o->open_ns < 0 ||
        o->half_open_max < 1 || o->half_open_successes < 1)
        return ERR_INVAL;
    memset(b, 0, sizeof(*b));
    if (pthread_mutex_init(&b->mu, NULL))
        return ERR_NOMEM;
    b->o = *o;
    b->state = BREAKER_CLOSED;
    return 0;
}

void breaker_destroy(struct breaker *b)
{
    pthread_mutex_destroy(&b->mu);
}

/* Forgets the outcomes counted while closed. */
static void reset_counts(struct breaker *b)
{
    b->consecutive = 0;
    b->ring_pos = b->ring_len = b->ring_fail = 0;
    b->probes = b->probe_ok = 0;
}

static void move_to(struct breaker *b, enum breaker_state s, int64_t now_ns)
{
    b->state = s;
    b->since_ns = now_ns;
    b->transitions++;
    b->transitions_to[s]++;
    reset_counts(b);
}

/* Adds one outcome to the window of the last W calls. */
static void ring_push(struct breaker *b, int failed)
{
    int w = b->o.window;
    if (w == 0)
        return;
    if (b->ring_len == w) { /* full: the newest takes the oldest's slot */
        b->ring_fail -= b->ring[b->ring_pos];
        b->ring[b->ring_pos] = (unsigned char)failed;
        b->ring_pos = (b->ring_pos + 1) % w;
    } else {
        b->ring[(b->ring_pos + b->ring_len) % w] = (unsigned char)failed;
        b->ring_len++;
    }
    b->ring_fail += failed;
}

static int ratio_trips(const struct breaker *b)
{
    return b->o.window > 0 && b->ring_len >= b->o.min_calls &&
           (double)b->ring_fail >= b->o.failure_ratio * (double)b->ring_len;
}

int breaker_allow(struct breaker *b, int64_t now_ns)
{
    int ok = 0;
    pthread_mutex_lock(&b->mu);
    if (b->state == BREAKER_OPEN && now_ns - b->since_ns >= b->o.open_ns)
        move_to(b, BREAKER_HALF_OPEN, now_ns);
    switch (b->state) {
    case BREAKER_CLOSED:
        ok = 1;
        break;
    case BREAKER_OPEN:
        break;
    case BREAKER_HALF_OPEN:
        if (b->probes < b->o.half_open_max) {
            b->probes++;
            ok = 1;
        }
        break;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void breaker_success(struct breaker *b, int64_t now_ns)
{
    pthread_mutex_lock(&b->mu);
    switch (b->state) {
    case BREAKER_CLOSED:
        b->consecutive = 0;
        ring_push(b, 0);
        break;
    case BREAKER_OPEN:
        break;
    case BREAKER_HALF_OPEN:
        if (b->probes > 0) {
            b->probes--;
            if (++b->probe_ok >= b->o.half_open_successes)
                move_to(b, BREAKER_CLOSED, now_ns);
        }
        break;
    }
    pthread_mutex_unlock(&b->mu);
}

void breaker_failure(struct breaker *b, int64_t now_ns)
{
    pthread_mutex_lock(&b->mu);
    switch (b->state) {
    case BREAKER_CLOSED:
        b->consecutive++;
        ring_push(b, 1);
        if ((b->o.failures > 0 && b->consecutive >= b->o.failures) || ratio_trips(b))
            move_to(b, BREAKER_OPEN, now_ns);
        break;
    case BREAKER_OPEN:
        break;
    case BREAKER_HALF_OPEN:
        if (b->probes > 0)
            move_to(b, BREAKER_OPEN, now_ns);
        break;
    }
    pthread_mutex_unlock(&b->mu);
}

enum breaker_state breaker_state(struct breaker *b)
{
    pthread_mutex_lock(&b->mu);
    enum breaker_state s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

const char *breaker_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED: return "closed";
    case BREAKER_OPEN: return "open";
    case BREAKER_HALF_OPEN: return "half-open";
    }
    return "unknown";
}

void breaker_info(struct breaker *b, struct breaker_info *out)
{
    pthread_mutex_lock(&b->mu);
    out->state = b->state;
    out->transitions = b->transitions;
    for (int i = 0; i < 3; i++)
        out->transitions_to[i] = b->transitions_to[i];
    out->last_transition_ns = b->transitions ? b->since_ns : 0;
    out->consecutive_failures = b->consecutive;
    out->window_calls = b->ring_len;
    out->window_failures = b->ring_fail;
    out->probes = b->probes;
    pthread_mutex_unlock(&b->mu);
}
