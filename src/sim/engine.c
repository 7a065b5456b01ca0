/*
 * The engine model: continuous batching driven by the clock, with no GPU.
 *
 * DESIGN
 * At most max_num_seqs sequences are "running"; the rest wait FIFO. A
 * sequence admitted to a slot is prefilled by a single prefill unit that
 * processes prefill_tok_per_s prompt tokens per second, in admission order:
 * its first token is due prompt_tokens / rate after the unit is free (for a
 * lone request: exactly its own prefill time). Prefill completions are
 * therefore ordered like admissions, so the prefill list is a FIFO whose
 * head is always the next one due: O(1), no heap.
 *
 * Decoding advances in steps. A step starts with the sequences then in the
 * decode list, lasts (itl_ms + itl_ms_per_seq x running) x (1 + jitter x
 * N(0,1)) (clamped at 0), and at its end gives each member one token. A
 * sequence that finishes prefill during a step joins at the next one. The
 * next step starts when the last one ends (or at once when the loop ran
 * late by more than a step), so the average inter-token time does not drift.
 *
 * The whole engine is one timer: sim__engine_next() is the earlier of the
 * prefill head and the step end, and the caller arms one event for it.
 * Nothing here reads a clock; `now` comes in, so tests drive time.
 */
#include <math.h>
#include <string.h>

#include "sim/sim_int.h"

static void list_push(struct sim__list *l, struct sim__seq *s)
{
    s->next = NULL;
    s->prev = l->tail;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    l->n++;
}

static void list_unlink(struct sim__list *l, struct sim__seq *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
    l->n--;
}

static struct sim__list *list_of(struct sim__engine *e, const struct sim__seq *s)
{
    switch (s->state) {
    case SIM_SEQ_WAITING: return &e->waiting;
    case SIM_SEQ_PREFILL: return &e->prefill;
    case SIM_SEQ_DECODE: return &e->decode;
    case SIM_SEQ_JOINING: return &e->joining;
    default: return NULL;
    }
}

void sim__engine_init(struct sim__engine *e, const struct sim__engine_cfg *cfg,
                      struct rng *rng, sim__token_fn fn, void *arg)
{
    memset(e, 0, sizeof(*e));
    e->cfg = *cfg;
    if (e->cfg.max_num_seqs < 1)
        e->cfg.max_num_seqs = 1;
    e->rng = rng;
    e->on_token = fn;
    e->arg = arg;
    e->step_end = -1;
}

static int64_t prefill_ns(const struct sim__engine *e, const struct sim__seq *s)
{
    if (e->cfg.prefill_tok_per_s <= 0 || s->prompt_tokens <= 0)
        return 0;
    return llround((double)s->prompt_tokens * 1e9 / e->cfg.prefill_tok_per_s);
}

/* Length of a step that starts now with e->running sequences. */
static int64_t step_ns(struct sim__engine *e)
{
    double ms = e->cfg.itl_ms + e->cfg.itl_ms_per_seq * (double)e->running;
    if (e->cfg.jitter > 0) {
        double f = 1.0 + e->cfg.jitter * rng_normal(e->rng);
        ms *= f < 0 ? 0 : f;
    }
    double ns = ms * 1e6;
    return ns < 0 ? 0 : ns > 3.6e12 ? (int64_t)3.6e12 : llround(ns);
}

static void start_step(struct sim__engine *e, int64_t at)
{
    e->step_len = step_ns(e);
    e->step_end = at + e->step_len;
}

static void admit(struct sim__engine *e, int64_t now)
{
    while (e->waiting.head && e->running < (size_t)e->cfg.max_num_seqs) {
        struct sim__seq *s = e->waiting.head;
        list_unlink(&e->waiting, s);
        int64_t start = e->prefill_free_ns > now ? e->prefill_free_ns : now;
        s->ready_ns = start + prefill_ns(e, s);
        e->prefill_free_ns = s->ready_ns;
        s->state = SIM_SEQ_PREFILL;
        list_push(&e->prefill, s);
        e->running++;
    }
}

/* s leaves its list and its slot; the engine forgets it. */
static void retire(struct sim__engine *e, struct sim__seq *s)
{
    struct sim__list *l = list_of(e, s);
    if (l)
        list_unlink(l, s);
    if (s->state != SIM_SEQ_WAITING && s->state != SIM_SEQ_IDLE)
        e->running--;
    s->state = SIM_SEQ_IDLE;
}

/* s finished prefill: into the step in flight's successors, or a new step. */
static void join(struct sim__engine *e, struct sim__seq *s, int64_t now)
{
    if (e->step_end >= 0) {
        s->state = SIM_SEQ_JOINING;
        list_push(&e->joining, s);
    } else {
        s->state = SIM_SEQ_DECODE;
        list_push(&e->decode, s);
        start_step(e, now);
    }
}

/* Gives s its next token: bookkeeping first, then the owner's callback. */
static void emit(struct sim__engine *e, struct sim__seq *s, int64_t now)
{
    s->emitted++;
    if (s->emitted == s->stall_at)
        s->stall_until = now + s->stall_ns;
    if (s->emitted >= s->out_target)
        retire(e, s);
    e->on_token(e->arg, s, now);
}

static void first_tokens(struct sim__engine *e, int64_t now)
{
    struct sim__seq *s;
    while ((s = e->prefill.head) && s->ready_ns <= now) {
        list_unlink(&e->prefill, s);
        if (s->stall_at == 0) { /* a stall before the first token */
            s->stall_until = now + s->stall_ns;
            join(e, s, now);
            continue;
        }
        if (s->out_target > 1) {
            join(e, s, now);
        } else { /* done with its first token */
            e->running--;
            s->state = SIM_SEQ_IDLE;
        }
        emit(e, s, now);
    }
}

static void finish_step(struct sim__engine *e, int64_t now)
{
    struct sim__seq *s = e->decode.head, *next;
    for (; s; s = next) {
        next = s->next; /* the callback may cancel and free s */
        if (s->stall_until > now)
            continue;
        emit(e, s, now);
    }
    while ((s = e->joining.head)) {
        list_unlink(&e->joining, s);
        s->state = SIM_SEQ_DECODE;
        list_push(&e->decode, s);
    }
    e->steps++;
    if (!e->decode.head) {
        e->step_end = -1;
        return;
    }
    /* Back to back with the last step, unless the loop ran a step late. */
    start_step(e, now - e->step_end > e->step_len ? now : e->step_end);
}

void sim__engine_submit(struct sim__engine *e, struct sim__seq *s, int64_t now)
{
    s->state = SIM_SEQ_WAITING;
    s->emitted = 0;
    s->stall_until = 0;
    list_push(&e->waiting, s);
    admit(e, now);
}

void sim__engine_cancel(struct sim__engine *e, struct sim__seq *s, int64_t now)
{
    if (s->state == SIM_SEQ_IDLE)
        return;
    retire(e, s);
    admit(e, now);
}

void sim__engine_run(struct sim__engine *e, int64_t now)
{
    first_tokens(e, now);
    if (e->step_end >= 0 && e->step_end <= now)
        finish_step(e, now);
    admit(e, now);
}

int64_t sim__engine_next(const struct sim__engine *e)
{
    int64_t t = e->step_end;
    if (e->prefill.head && (t < 0 || e->prefill.head->ready_ns < t))
        t = e->prefill.head->ready_ns;
    return t;
}
