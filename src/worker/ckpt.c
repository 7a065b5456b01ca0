/*
 * A job's checkpoint (see ckpt.h): the finished requests of the point in
 * progress, kept with their gaps, written to and read from the versioned
 * JSON format, and the merge of a point's segments into one run.
 */
#include "worker/ckpt.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

int worker_ckpt_init(struct worker_ckpt *ck, uint64_t seed)
{
    memset(ck, 0, sizeof(*ck));
    ck->seed = seed;
    ck->point = -1;
    ck->run_ids = json_array();
    return ck->run_ids ? 0 : ERR_NOMEM;
}

static void drop_requests(struct worker_ckpt *ck)
{
    for (size_t i = 0; i < ck->n; i++)
        mem_free(ck->reqs[i].itl_ns);
    ck->n = ck->nsealed = 0;
    ck->acc_ns = 0;
    ck->seg_start_ns = 0;
}

void worker_ckpt_free(struct worker_ckpt *ck)
{
    drop_requests(ck);
    mem_free(ck->reqs);
    mem_free(ck->index);
    json_decref(ck->run_ids);
    memset(ck, 0, sizeof(*ck));
    ck->point = -1;
}

void worker_ckpt_begin_point(struct worker_ckpt *ck, int point)
{
    if (ck->point != point)
        drop_requests(ck);
    ck->point = point;
    ck->seg_start_ns = 0;
}

static int held(const struct worker_ckpt *ck, size_t index)
{
    for (size_t i = 0; i < ck->n; i++)
        if (ck->index[i] == index)
            return 1;
    return 0;
}

static int grow(struct worker_ckpt *ck)
{
    if (ck->n < ck->cap)
        return 0;
    size_t cap = ck->cap ? ck->cap * 2 : 64;
    struct bench_req *r = mem_realloc(ck->reqs, cap * sizeof(*r));
    if (!r)
        return ERR_NOMEM;
    ck->reqs = r;
    size_t *ix = mem_realloc(ck->index, cap * sizeof(*ix));
    if (!ix)
        return ERR_NOMEM;
    ck->index = ix;
    ck->cap = cap;
    return 0;
}

/* Appends a copy of r (its gaps copied too) as index. */
static int append(struct worker_ckpt *ck, const struct bench_req *r, size_t index)
{
    if (grow(ck))
        return ERR_NOMEM;
    struct bench_req *c = &ck->reqs[ck->n];
    *c = *r;
    c->itl_ns = NULL;
    c->itl_cap = 0;
    if (r->itl_len > 0) {
        c->itl_ns = mem_malloc((size_t)r->itl_len * sizeof(int64_t));
        if (!c->itl_ns)
            return ERR_NOMEM;
        memcpy(c->itl_ns, r->itl_ns, (size_t)r->itl_len * sizeof(int64_t));
        c->itl_cap = r->itl_len;
    }
    ck->index[ck->n++] = index;
    return 0;
}

int worker_ckpt_add(struct worker_ckpt *ck, const struct bench_req *r, size_t index)
{
    if (held(ck, index)) /* O(n) per request: points are at most ~1e5 requests */
        return 0;
    if (append(ck, r, index))
        return ERR_NOMEM;
    if (!ck->seg_start_ns || r->scheduled_ns < ck->seg_start_ns)
        ck->seg_start_ns = r->scheduled_ns;
    return 0;
}

/* Moves time t of the open segment that began at start onto the timeline. */
static int64_t place(int64_t t, int64_t start, int64_t acc)
{
    if (!t)
        return 0;
    int64_t v = t - start + acc;
    return v > 0 ? v : 1; /* 0 means "none" for first/last */
}

void worker_ckpt_seal(struct worker_ckpt *ck, int64_t start_ns, int64_t end_ns)
{
    for (size_t i = ck->nsealed; i < ck->n; i++) {
        struct bench_req *r = &ck->reqs[i];
        r->scheduled_ns = place(r->scheduled_ns, start_ns, ck->acc_ns);
        r->sent_ns = place(r->sent_ns, start_ns, ck->acc_ns);
        r->first_ns = place(r->first_ns, start_ns, ck->acc_ns);
        r->last_ns = place(r->last_ns, start_ns, ck->acc_ns);
    }
    ck->nsealed = ck->n;
    if (end_ns > start_ns)
        ck->acc_ns += end_ns - start_ns;
    ck->seg_start_ns = 0;
}

int worker_ckpt_point_done(struct worker_ckpt *ck, const char *run_id)
{
    if (run_id && *run_id && json_array_append_new(ck->run_ids, json_string(run_id)))
        return ERR_NOMEM;
    ck->points_done = ck->point + 1;
    drop_requests(ck);
    ck->point = -1;
    return 0;
}

static json_t *req_json(const struct bench_req *r, size_t index, int64_t start, int64_t acc)
{
    json_t *itl = json_array();
    for (int32_t k = 0; itl && k < r->itl_len; k++)
        if (json_array_append_new(itl, json_integer(r->itl_ns[k]))) {
            json_decref(itl);
            return NULL;
        }
    if (!itl)
        return NULL;
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:o}",
                     "index", (json_int_t)index,
                     "scheduled_ns", (json_int_t)place(r->scheduled_ns, start, acc),
                     "sent_ns", (json_int_t)place(r->sent_ns, start, acc),
                     "first_ns", (json_int_t)place(r->first_ns, start, acc),
                     "last_ns", (json_int_t)place(r->last_ns, start, acc),
                     "input_tokens", (int)r->input_tokens, "output_tokens",
                     (int)r->output_tokens, "events", (int)r->events, "err", (int)r->err,
                     "http_status", (int)r->http_status, "tok_src", (int)r->tok_src,
                     "itl_ns", itl);
}

json_t *worker_ckpt_json(const struct worker_ckpt *ck, int64_t now_ns)
{
    json_t *j = json_pack("{s:i,s:I,s:i,s:O,s:n}", "v", WORKER_CKPT_VERSION, "seed",
                          (json_int_t)(ck->seed & INT64_MAX), "points_done", ck->points_done,
                          "run_ids", ck->run_ids, "partial");
    if (!j || ck->point < 0)
        return j;
    int64_t open = ck->n > ck->nsealed && ck->seg_start_ns ? now_ns - ck->seg_start_ns : 0;
    json_t *reqs = json_array();
    json_t *p = json_pack("{s:i,s:f,s:o}", "point", ck->point, "segments_duration_s",
                          (double)(ck->acc_ns + (open > 0 ? open : 0)) / 1e9, "requests", reqs);
    if (!p || json_object_set_new(j, "partial", p))
        goto fail;
    for (size_t i = 0; i < ck->n; i++) {
        int sealed = i < ck->nsealed;
        json_t *r = req_json(&ck->reqs[i], ck->index[i], sealed ? 0 : ck->seg_start_ns,
                             sealed ? 0 : ck->acc_ns);
        if (!r || json_array_append_new(reqs, r))
            goto fail;
    }
    return j;
fail:
    json_decref(j);
    return NULL;
}

static int64_t int_of(json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

/* Reads one request into a bench_req (gaps owned by r). 0, ERR_PARSE or ERR_NOMEM. */
static int req_load(json_t *o, struct bench_req *r)
{
    json_t *itl = json_object_get(o, "itl_ns"), *e;
    size_t k;
    memset(r, 0, sizeof(*r));
    if (!json_is_object(o) || !json_is_integer(json_object_get(o, "index")) ||
        !json_is_array(itl) || json_array_size(itl) > WORKER_CKPT_ITL_MAX)
        return ERR_PARSE;
    r->scheduled_ns = int_of(o, "scheduled_ns");
    r->sent_ns = int_of(o, "sent_ns");
    r->first_ns = int_of(o, "first_ns");
    r->last_ns = int_of(o, "last_ns");
    r->input_tokens = (int32_t)int_of(o, "input_tokens");
    r->output_tokens = (int32_t)int_of(o, "output_tokens");
    r->events = (int32_t)int_of(o, "events");
    int64_t err = int_of(o, "err"), src = int_of(o, "tok_src");
    if (err < 0 || err >= BENCH_E__COUNT || src < 0 || src > BENCH_TOK_DETAILS)
        return ERR_PARSE;
    r->err = (uint8_t)err;
    r->tok_src = (uint8_t)src;
    r->http_status = (int32_t)int_of(o, "http_status");
    if (json_array_size(itl)) {
        r->itl_ns = mem_malloc(json_array_size(itl) * sizeof(int64_t));
        if (!r->itl_ns)
            return ERR_NOMEM;
        json_array_foreach(itl, k, e) r->itl_ns[k] = (int64_t)json_integer_value(e);
        r->itl_len = r->itl_cap = (int32_t)json_array_size(itl);
    }
    return 0;
}

static int load_partial(struct worker_ckpt *ck, json_t *p, size_t planned, struct err_detail *d)
{
    json_t *reqs = json_object_get(p, "requests"), *o;
    json_t *dur = json_object_get(p, "segments_duration_s");
    size_t i;
    if (!json_is_integer(json_object_get(p, "point")) || !json_is_array(reqs) ||
        !json_is_number(dur) || json_number_value(dur) < 0)
        return err_set(d, ERR_PARSE, "checkpoint", "the checkpoint's partial point is malformed");
    ck->point = (int)json_integer_value(json_object_get(p, "point"));
    ck->acc_ns = (int64_t)(json_number_value(dur) * 1e9);
    json_array_foreach(reqs, i, o) {
        struct bench_req r;
        int rc = req_load(o, &r);
        int64_t index = int_of(o, "index");
        if (rc == ERR_NOMEM)
            return err_set(d, rc, "checkpoint", "out of memory");
        if (rc)
            return err_set(d, rc, "checkpoint", "request %zu of the checkpoint is malformed", i);
        if (index < 0 || (size_t)index >= planned || held(ck, (size_t)index) ||
            (rc = append(ck, &r, (size_t)index))) {
            mem_free(r.itl_ns);
            if (rc)
                return err_set(d, rc, "checkpoint", "out of memory");
            continue;
        }
        mem_free(r.itl_ns);
    }
    ck->nsealed = ck->n;
    return 0;
}

int worker_ckpt_load(struct worker_ckpt *ck, json_t *j, size_t planned, struct err_detail *d)
{
    json_t *ids = json_object_get(j, "run_ids"), *p = json_object_get(j, "partial");
    if (!json_is_object(j) || int_of(j, "v") != WORKER_CKPT_VERSION ||
        !json_is_integer(json_object_get(j, "seed")) ||
        !json_is_integer(json_object_get(j, "points_done")) || !json_is_array(ids) ||
        (p && !json_is_null(p) && !json_is_object(p)))
        return err_set(d, ERR_PARSE, "checkpoint", "not a version %d checkpoint",
                       WORKER_CKPT_VERSION);
    worker_ckpt_free(ck);
    if (worker_ckpt_init(ck, (uint64_t)int_of(j, "seed")))
        return err_set(d, ERR_NOMEM, "checkpoint", "out of memory");
    ck->points_done = (int)int_of(j, "points_done");
    json_array_extend(ck->run_ids, ids);
    if (ck->points_done < 0)
        return err_set(d, ERR_PARSE, "checkpoint", "points_done is negative");
    return json_is_object(p) ? load_partial(ck, p, planned, d) : 0;
}

int worker_ckpt_todo(const struct worker_ckpt *ck, size_t planned, size_t **todo,
                     size_t *ntodo)
{
    unsigned char *done = mem_calloc(planned ? planned : 1, 1);
    size_t k = 0;
    *todo = NULL;
    *ntodo = 0;
    if (!done)
        return ERR_NOMEM;
    for (size_t i = 0; i < ck->n; i++)
        if (ck->index[i] < planned && !done[ck->index[i]])
            done[ck->index[i]] = 1, k++;
    if (planned - k) {
        *todo = mem_malloc((planned - k) * sizeof(size_t));
        if (!*todo) {
            mem_free(done);
            return ERR_NOMEM;
        }
        for (size_t i = 0; i < planned; i++)
            if (!done[i])
                (*todo)[(*ntodo)++] = i;
    }
    mem_free(done);
    return 0;
}

static int by_sent(const void *a, const void *b)
{
    const struct bench_req *x = a, *y = b;
    if (x->sent_ns != y->sent_ns)
        return x->sent_ns < y->sent_ns ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

double worker_ckpt_merge(struct worker_ckpt *ck)
{
    for (size_t i = 0; i < ck->n; i++)
        ck->reqs[i].id = ck->index[i];
    qsort(ck->reqs, ck->n, sizeof(*ck->reqs), by_sent);
    for (size_t i = 0; i < ck->n; i++)
        ck->index[i] = ck->reqs[i].id;
    return (double)ck->acc_ns / 1e9;
}
